/**
 * Solana: a serialized legacy or v0 message (exactly the bytes the fee payer's signature covers)
 * whose fee payer and only signer is the key's address (base58 of the 32-byte Ed25519 group key).
 *
 * Decoding uses the official codecs: @solana/transaction-messages decodes the compiled message
 * and decompiles it into instructions with account roles, @solana-program/system and
 * @solana-program/token identify and parse the transfers; all are pure functions of the bytes.
 * The two Compute Budget instructions are read by hand (see COMPUTE_BUDGET_PROGRAM_ADDRESS).
 * The decoder tolerates trailing bytes, so the message is re-encoded and must equal the input:
 * one transaction has one accepted byte string, and nothing unparsed rides along.
 *
 * Accepted instructions (anything else is refused TX_UNSUPPORTED):
 *   - System Transfer: source = the key; pays SOL (lamports) to the destination.
 *   - SPL Token (the original Token program) TransferChecked: authority = the key, no multisig
 *     signers; the mint must be in the asset table on the key's network and its decimals must
 *     equal the table's (the runtime also checks them against the mint, so the amount the display
 *     shows in units is the amount that moves). The destination is the token account.
 *   - Compute Budget SetComputeUnitLimit / SetComputeUnitPrice, at most one of each.
 *
 * Safety argument: with exactly one required signature (ours), every authority that can move
 * value in this message is the key; each transfer's source or authority is checked to be the key
 * anyway. One asset per act (TX_MULTI_ASSET otherwise). v0 messages with address lookup tables
 * are refused: their accounts are not in the bytes, so no node could show them. Durable nonce
 * messages are refused (their first instruction is AdvanceNonceAccount). The message names no
 * cluster: the network is the key's (a blockhash of another cluster simply never lands); the
 * display shows the recent blockhash so an approver can check it.
 *
 * Fee (an upper bound, in lamports) = 5000 × signatures + ⌈price (micro-lamports per CU) × limit
 * / 10^6⌉, where limit is the requested limit, or 200,000 per non-budget instruction when none
 * is requested, capped at 1,400,000 (the runtime's maximum).
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { getAddressDecoder, getAddressEncoder, type Address } from '@solana/addresses';
import { getBase58Decoder } from '@solana/codecs';
import { getTransactionEncoder, type Transaction } from '@solana/transactions';
import {
  decompileTransactionMessage,
  getCompiledTransactionMessageDecoder,
  getCompiledTransactionMessageEncoder,
} from '@solana/transaction-messages';
import { SYSTEM_PROGRAM_ADDRESS, SystemInstruction, identifySystemInstruction, parseTransferSolInstruction } from '@solana-program/system';
import { TOKEN_PROGRAM_ADDRESS, TokenInstruction, identifyTokenInstruction, parseTransferCheckedInstruction } from '@solana-program/token';
import { CustodyError } from '../../proto/errors.js';
import { tx as limits } from '../../proto/limits.js';
import { bytesEqual } from '../encoding.js';
import { mintAsset, nativeAsset, type ResolvedAsset } from './assets.js';
import type { ParsedBody } from './display.js';
import type { AssetTable, KeyContext, Network, TxOutput } from './types.js';

const LAMPORTS_PER_SIGNATURE = 5000n;
/**
 * The Compute Budget program. @solana/transaction-messages 8.4 builds these instructions but does
 * not export its readers, so the two accepted ones are read here from their documented layout:
 * SetComputeUnitLimit = [2, u32 LE units], SetComputeUnitPrice = [3, u64 LE micro-lamports].
 */
const COMPUTE_BUDGET_PROGRAM_ADDRESS = 'ComputeBudget111111111111111111111111111111';
const SET_COMPUTE_UNIT_LIMIT = 2;
const SET_COMPUTE_UNIT_PRICE = 3;
const MAX_COMPUTE_UNIT_LIMIT = 1_400_000;
const DEFAULT_UNITS_PER_INSTRUCTION = 200_000;
const MICRO_LAMPORTS_PER_LAMPORT = 1_000_000n;
/** Exact data lengths: discriminator + fields (the parsers read fixed-size data and would ignore a tail). */
const TRANSFER_SOL_DATA_BYTES = 4 + 8;
const TRANSFER_CHECKED_DATA_BYTES = 1 + 8 + 1;
const UNIT_LIMIT_DATA_BYTES = 1 + 4;
const UNIT_PRICE_DATA_BYTES = 1 + 8;

const SOLANA_NETWORKS: readonly Network[] = ['solana-mainnet', 'solana-devnet', 'solana-testnet'];

/** The key's Solana address: base58 of the Ed25519 group key. */
export function solanaAddress(key: KeyContext): Address {
  if (key.scheme !== 'ed25519') throw new CustodyError('TX_UNSUPPORTED', `a Solana message needs an ed25519 key, not ${key.scheme}`);
  if (key.groupKey.length !== 32) throw new CustodyError('INVALID_ARGUMENT', 'an ed25519 group key is 32 bytes');
  return getAddressDecoder().decode(key.groupKey);
}

type Compiled = ReturnType<ReturnType<typeof getCompiledTransactionMessageDecoder>['decode']>;

function decodeMessage(bytes: Uint8Array): Compiled {
  if (bytes.length > limits.solanaMessageBytesMax) {
    throw new CustodyError('LIMIT_EXCEEDED', `the message is ${bytes.length} bytes (at most ${limits.solanaMessageBytesMax})`);
  }
  let compiled: Compiled;
  let again: Uint8Array;
  try {
    compiled = getCompiledTransactionMessageDecoder().decode(bytes);
    again = Uint8Array.from(getCompiledTransactionMessageEncoder().encode(compiled));
  } catch (e) {
    throw new CustodyError('TX_UNPARSEABLE', `not a Solana message: ${(e as Error).message}`.slice(0, limits.refusalDetailCharsMax));
  }
  if (!bytesEqual(again, bytes)) throw new CustodyError('TX_UNPARSEABLE', 'the message does not re-encode to the same bytes (trailing or non-canonical data)');
  return compiled;
}

function exact(data: Uint8Array | undefined, n: number, what: string, i: number): Uint8Array {
  if (!data || data.length !== n) throw new CustodyError('TX_UNPARSEABLE', `instruction ${i} (${what}) carries ${data?.length ?? 0} data bytes, not ${n}`);
  return data;
}

export function parseSolana(bytes: Uint8Array, key: KeyContext, assets: AssetTable): ParsedBody {
  if (!SOLANA_NETWORKS.includes(key.network)) throw new CustodyError('TX_NETWORK_MISMATCH', `a Solana message cannot be signed by a key of network ${key.network}`);
  const me = solanaAddress(key);
  const sol = nativeAsset(assets, key.network);
  const compiled = decodeMessage(bytes);

  if (compiled.version !== 'legacy' && compiled.version !== 0) throw new CustodyError('TX_UNSUPPORTED', `message version ${String(compiled.version)} (legacy and v0 are accepted)`);
  if (compiled.version === 0 && (compiled.addressTableLookups?.length ?? 0) > 0) {
    throw new CustodyError('TX_UNSUPPORTED', 'the message loads accounts from address lookup tables, which the parser cannot resolve');
  }
  if (compiled.staticAccounts[0] !== me) throw new CustodyError('TX_FOREIGN_INPUT', `the fee payer is ${String(compiled.staticAccounts[0])}, not the key's address ${me}`);
  if (compiled.header.numSignerAccounts !== 1) throw new CustodyError('TX_UNSUPPORTED', `the message needs ${compiled.header.numSignerAccounts} signatures; only the key's is accepted`);
  if (compiled.instructions.length > limits.solanaInstructionsMax) {
    throw new CustodyError('LIMIT_EXCEEDED', `${compiled.instructions.length} instructions (at most ${limits.solanaInstructionsMax})`);
  }

  let message: ReturnType<typeof decompileTransactionMessage>;
  try {
    message = decompileTransactionMessage(compiled);
  } catch (e) {
    throw new CustodyError('TX_UNPARSEABLE', `the message does not decompile: ${(e as Error).message}`.slice(0, limits.refusalDetailCharsMax));
  }
  const lifetime = message.lifetimeConstraint;
  if (!('blockhash' in lifetime)) throw new CustodyError('TX_UNSUPPORTED', 'durable nonce messages are not accepted');

  const outputs: TxOutput[] = [];
  const moved = new Map<string, ResolvedAsset>();
  let unitLimit: number | undefined;
  let unitPrice: bigint | undefined;
  let budgetInstructions = 0;
  const tokenLines: [string, string][] = [];
  message.instructions.forEach((ins, i) => {
    const data = ins.data === undefined ? undefined : Uint8Array.from(ins.data);
    const accounts = ins.accounts ?? [];
    if (ins.programAddress === SYSTEM_PROGRAM_ADDRESS) {
      let type: SystemInstruction;
      try { type = identifySystemInstruction(exact(data, TRANSFER_SOL_DATA_BYTES, 'System', i)); } catch { type = -1 as SystemInstruction; }
      if (type !== SystemInstruction.TransferSol) throw new CustodyError('TX_UNSUPPORTED', `instruction ${i} is a System instruction other than Transfer`);
      if (accounts.length !== 2) throw new CustodyError('TX_UNSUPPORTED', `instruction ${i} (System Transfer) has ${accounts.length} accounts, not 2`);
      const t = parseTransferSolInstruction({ programAddress: ins.programAddress, accounts: [accounts[0]!, accounts[1]!], data: data! });
      if (t.accounts.source.address !== me) throw new CustodyError('TX_FOREIGN_INPUT', `instruction ${i} transfers SOL from ${t.accounts.source.address}, not the key`);
      const to = t.accounts.destination.address;
      outputs.push({ address: to, asset: sol.symbol, amount: t.data.amount, change: to === me });
      moved.set(sol.symbol, sol);
    } else if (ins.programAddress === TOKEN_PROGRAM_ADDRESS) {
      let type: TokenInstruction;
      try { type = identifyTokenInstruction(exact(data, TRANSFER_CHECKED_DATA_BYTES, 'SPL Token', i)); } catch { type = -1 as TokenInstruction; }
      if (type !== TokenInstruction.TransferChecked) throw new CustodyError('TX_UNSUPPORTED', `instruction ${i} is an SPL Token instruction other than TransferChecked`);
      if (accounts.length !== 4) throw new CustodyError('TX_UNSUPPORTED', `instruction ${i} (TransferChecked) has ${accounts.length} accounts; multisig authorities are not accepted`);
      const t = parseTransferCheckedInstruction({ programAddress: ins.programAddress, accounts: [accounts[0]!, accounts[1]!, accounts[2]!, accounts[3]!], data: data! });
      if (t.accounts.authority.address !== me) throw new CustodyError('TX_FOREIGN_INPUT', `instruction ${i} moves tokens under the authority of ${t.accounts.authority.address}, not the key`);
      const asset = mintAsset(assets, key.network, t.accounts.mint.address);
      if (t.data.decimals !== asset.info.decimals) {
        throw new CustodyError('TX_ASSET_MISMATCH', `instruction ${i} states ${t.data.decimals} decimals for ${asset.symbol}; the asset table says ${asset.info.decimals}`);
      }
      const from = t.accounts.source.address;
      const to = t.accounts.destination.address;
      outputs.push({ address: to, asset: asset.symbol, amount: t.data.amount, change: to === from });
      moved.set(asset.symbol, asset);
      tokenLines.push([`token transfer ${outputs.length - 1}`, `from ${from} mint ${t.accounts.mint.address}`]);
    } else if (ins.programAddress === COMPUTE_BUDGET_PROGRAM_ADDRESS) {
      budgetInstructions++;
      if (accounts.length !== 0) throw new CustodyError('TX_UNSUPPORTED', `instruction ${i} (Compute Budget) names accounts`);
      const view = data && data.length > 0 ? new DataView(data.buffer, data.byteOffset, data.byteLength) : undefined;
      if (data?.[0] === SET_COMPUTE_UNIT_LIMIT && unitLimit === undefined) {
        exact(data, UNIT_LIMIT_DATA_BYTES, 'SetComputeUnitLimit', i);
        unitLimit = view!.getUint32(1, true);
      } else if (data?.[0] === SET_COMPUTE_UNIT_PRICE && unitPrice === undefined) {
        exact(data, UNIT_PRICE_DATA_BYTES, 'SetComputeUnitPrice', i);
        unitPrice = view!.getBigUint64(1, true);
      } else {
        throw new CustodyError('TX_UNSUPPORTED', `instruction ${i} is a Compute Budget instruction other than one unit limit and one unit price`);
      }
    } else {
      throw new CustodyError('TX_UNSUPPORTED', `instruction ${i} calls program ${ins.programAddress}, which the parser does not accept`);
    }
  });

  if (moved.size === 0) throw new CustodyError('TX_UNSUPPORTED', 'the message transfers nothing');
  if (moved.size > 1) throw new CustodyError('TX_MULTI_ASSET', `the message moves ${[...moved.keys()].sort().join(' and ')}; an act moves one asset`);
  const asset = [...moved.values()][0]!;

  const units = Math.min(MAX_COMPUTE_UNIT_LIMIT, unitLimit ?? DEFAULT_UNITS_PER_INSTRUCTION * (message.instructions.length - budgetInstructions));
  const priority = ((unitPrice ?? 0n) * BigInt(units) + MICRO_LAMPORTS_PER_LAMPORT - 1n) / MICRO_LAMPORTS_PER_LAMPORT;
  const fee = LAMPORTS_PER_SIGNATURE * BigInt(compiled.header.numSignerAccounts) + priority;
  if (fee > BigInt(limits.solanaFeeLamportsMax)) throw new CustodyError('TX_FEE_INVALID', `the fee may reach ${fee} lamports (at most ${limits.solanaFeeLamportsMax})`);

  const details: [string, string][] = [
    ['message version', String(compiled.version)],
    ['fee payer', me],
    ['recent blockhash', lifetime.blockhash],
    ['cluster', 'not named by the message; the key\'s network applies'],
  ];
  details.push(...tokenLines);
  if (unitLimit !== undefined) details.push(['compute unit limit', String(unitLimit)]);
  if (unitPrice !== undefined) details.push(['compute unit price', `${unitPrice} micro-lamports`]);

  return {
    kind: 'solana',
    network: key.network,
    asset: asset.symbol,
    outputs,
    amount: outputs.reduce((sum, o) => (o.change ? sum : sum + o.amount), 0n),
    fee,
    feeAsset: sol.symbol,
    messages: [Uint8Array.from(bytes)],
    decimals: { [sol.symbol]: sol.info.decimals, [asset.symbol]: asset.info.decimals },
    details,
    messageForm: 'sha256',
  };
}

export interface FinalizedSolana {
  /** The wire transaction (signature count, the fee payer's signature, the message), ready to send. */
  readonly tx: Uint8Array;
  /** Its id: the fee payer's signature in base58. */
  readonly signature: string;
}

/**
 * Puts the fee payer's 64-byte Ed25519 signature beside the message and encodes the wire
 * transaction with the official encoder. The signature is checked first against the fee payer
 * (the message's first account) over the message bytes: a wrong signature is refused
 * (SIGNATURE_INVALID), never encoded into a transaction the cluster would reject.
 */
export function finalizeSolana(messageBytes: Uint8Array, signature: Uint8Array): FinalizedSolana {
  const compiled = decodeMessage(messageBytes);
  const payer = compiled.staticAccounts[0];
  if (payer === undefined || compiled.header.numSignerAccounts !== 1) {
    throw new CustodyError('TX_UNSUPPORTED', 'only messages with one signer, the fee payer, are finalized');
  }
  let valid = false;
  try {
    valid = signature.length === 64 && ed25519.verify(signature, messageBytes, Uint8Array.from(getAddressEncoder().encode(payer)));
  } catch {
    valid = false;
  }
  if (!valid) throw new CustodyError('SIGNATURE_INVALID', 'the signature does not verify over the message under the fee payer\'s key');
  const tx = { messageBytes, signatures: { [payer]: signature } } as unknown as Transaction;
  return { tx: Uint8Array.from(getTransactionEncoder().encode(tx)), signature: getBase58Decoder().decode(signature) };
}
