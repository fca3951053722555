/**
 * Unsigned transactions an operator hands to `custody admin act submit`, built offline (no chain
 * access) for a threshold key from its group public key alone:
 *
 *   buildTaprootPsbt   a BIP 174 PSBT (v0) spending Taproot key-path outputs of the key's own
 *                      address: every input's witnessUtxo is the key's P2TR script and the amount
 *                      the operator states; the payments in order; the change (inputs - payments
 *                      - fee) back to the key's own script when there is any.
 *   buildSolanaTransfer a legacy Solana message paid for by the key: System Transfers of SOL, or
 *                      SPL Token TransferChecked instructions from the key's associated token
 *                      account of one mint.
 *
 * Trust: nothing here is trusted by the cluster. Every node re-parses what it is given
 * (ledger/tx/parse.ts) and refuses anything the parser refuses; the builders exist so that an
 * operator and the demo need no wallet. The amounts of the coins spent are the operator's word:
 * a wrong one only yields a signature the chain rejects (BIP 341 sighashes commit to every
 * input's amount and script), never a payment other than the display shows.
 */
import { Address, NETWORK, OutScript, TEST_NETWORK, Transaction } from '@scure/btc-signer';
import type { Address as SolAddress } from '@solana/addresses';
import { address as solAddress } from '@solana/addresses';
import {
  appendTransactionMessageInstructions, compileTransactionMessage, createTransactionMessage, getCompiledTransactionMessageEncoder,
  setTransactionMessageFeePayer, setTransactionMessageLifetimeUsingBlockhash,
} from '@solana/transaction-messages';
import { getTransferSolInstruction } from '@solana-program/system';
import { TOKEN_PROGRAM_ADDRESS, findAssociatedTokenPda, getTransferCheckedInstruction } from '@solana-program/token';
import { CustodyError } from '../../proto/errors.js';
import { tx as limits } from '../../proto/limits.js';
import { solanaAddress, taprootScript } from '../../ledger/tx/parse.js';
import type { KeyContext, Network } from '../../ledger/tx/types.js';

/** The smallest output a standard relay policy forwards for a P2TR script (sat). */
export const P2TR_DUST_SAT = 330n;

export interface CoinSpent {
  /** The previous transaction's id, hex in display order (as block explorers show it). */
  readonly txid: string;
  readonly vout: number;
  /** The amount of the coin, in satoshi (the operator's statement; the sighash commits to it). */
  readonly amountSat: bigint;
}

export interface Payment {
  readonly address: string;
  /** In the asset's smallest unit (satoshi, lamport, token base unit). */
  readonly amount: bigint;
}

const REGTEST = { bech32: 'bcrt', pubKeyHash: 0x6f, scriptHash: 0xc4, wif: 0xef };

function btcNet(network: Network): typeof NETWORK {
  switch (network) {
    case 'bitcoin-mainnet': return NETWORK;
    case 'bitcoin-testnet': return TEST_NETWORK;
    case 'bitcoin-regtest': return REGTEST;
    default: throw new CustodyError('TX_NETWORK_MISMATCH', `a PSBT is built for a Bitcoin key, not one of network ${network}`);
  }
}

function decodes(net: typeof NETWORK, address: string): boolean {
  try {
    Address(net).decode(address);
    return true;
  } catch {
    return false;
  }
}

/** `TXID:VOUT:AMOUNT_SAT` as the CLI takes it. */
export function parseCoin(s: string): CoinSpent {
  const m = /^([0-9a-fA-F]{64}):([0-9]{1,10}):([0-9]{1,16})$/.exec(s);
  if (m === null) throw new CustodyError('INVALID_ARGUMENT', `input ${JSON.stringify(s)} is not TXID:VOUT:AMOUNT_SAT (64 hex digits, output index, satoshi)`);
  const vout = Number(m[2]);
  if (vout > 0xffffffff) throw new CustodyError('INVALID_ARGUMENT', `input ${s}: output index above 2^32 - 1`);
  return { txid: m[1]!.toLowerCase(), vout, amountSat: BigInt(m[3]!) };
}

/** `ADDRESS:AMOUNT` (amount an integer in the smallest unit) as the CLI takes it. */
export function parsePayment(s: string): Payment {
  const i = s.lastIndexOf(':');
  const amount = i < 0 ? '' : s.slice(i + 1);
  if (i <= 0 || !/^[0-9]{1,20}$/.test(amount)) throw new CustodyError('INVALID_ARGUMENT', `payment ${JSON.stringify(s)} is not ADDRESS:AMOUNT (amount an integer in the smallest unit)`);
  const a = BigInt(amount);
  if (a === 0n) throw new CustodyError('INVALID_ARGUMENT', `payment ${s} pays nothing`);
  return { address: s.slice(0, i), amount: a };
}

export function buildTaprootPsbt(key: KeyContext, coins: readonly CoinSpent[], payments: readonly Payment[], feeSat: bigint): Uint8Array {
  const net = btcNet(key.network);
  const ours = taprootScript(key);
  if (coins.length === 0) throw new CustodyError('INVALID_ARGUMENT', 'a PSBT spends at least one coin (--input TXID:VOUT:AMOUNT_SAT)');
  if (payments.length === 0) throw new CustodyError('INVALID_ARGUMENT', 'a PSBT pays at least one output (--to ADDRESS:SAT)');
  if (coins.length > limits.btcInputsMax) throw new CustodyError('LIMIT_EXCEEDED', `${coins.length} inputs (at most ${limits.btcInputsMax})`);
  if (payments.length + 1 > limits.btcOutputsMax) throw new CustodyError('LIMIT_EXCEEDED', `${payments.length} payments and change (at most ${limits.btcOutputsMax} outputs)`);
  if (feeSat < 0n || feeSat > BigInt(limits.btcFeeSatMax)) throw new CustodyError('TX_FEE_INVALID', `a fee of ${feeSat} sat (0..${limits.btcFeeSatMax})`);
  const inSum = coins.reduce((s, c) => s + c.amountSat, 0n);
  const paySum = payments.reduce((s, p) => s + p.amount, 0n);
  const change = inSum - paySum - feeSat;
  if (change < 0n) throw new CustodyError('TX_FEE_INVALID', `the inputs (${inSum} sat) do not cover the payments (${paySum} sat) and the fee (${feeSat} sat)`);
  if (change > 0n && change < P2TR_DUST_SAT) {
    throw new CustodyError('TX_FEE_INVALID', `the change would be ${change} sat, below the ${P2TR_DUST_SAT}-sat dust limit: raise the fee by ${change} sat or pay it out`);
  }
  const tx = new Transaction({ version: 2 });
  for (const c of coins) tx.addInput({ txid: c.txid, index: c.vout, witnessUtxo: { script: ours, amount: c.amountSat } });
  for (const p of payments) {
    let script: Uint8Array;
    try {
      script = OutScript.encode(Address(net).decode(p.address));
    } catch (e) {
      const elsewhere = [NETWORK, TEST_NETWORK, REGTEST].some((n) => n !== net && decodes(n, p.address));
      throw new CustodyError(elsewhere ? 'TX_NETWORK_MISMATCH' : 'INVALID_ARGUMENT', `${p.address} is not an address of ${key.network}: ${(e as Error).message}`.slice(0, limits.refusalDetailCharsMax));
    }
    tx.addOutput({ script, amount: p.amount });
  }
  if (change > 0n) tx.addOutput({ script: ours, amount: change });
  return tx.toPSBT(0);
}

function solAddr(s: string, what: string): SolAddress {
  try {
    return solAddress(s);
  } catch {
    throw new CustodyError('INVALID_ARGUMENT', `${what} ${JSON.stringify(s)} is not a Solana address (base58 of 32 bytes)`);
  }
}

/** A signer that only names the key's address: the message is compiled, never signed here. */
function payerOnly(a: SolAddress): never {
  return { address: a, signTransactions: () => Promise.reject(new Error('the threshold key signs through the cluster')) } as never;
}

export interface SplToken {
  readonly mint: string;
  readonly decimals: number;
}

/**
 * A legacy message paid by the key: one transfer per payment, SOL, or with `token` the SPL token
 * of that mint from the key's associated token account to each payment's token account.
 */
export async function buildSolanaTransfer(key: KeyContext, payments: readonly Payment[], blockhash: string, token?: SplToken): Promise<Uint8Array> {
  const me = solanaAddress(key);
  if (payments.length === 0) throw new CustodyError('INVALID_ARGUMENT', 'a transfer pays at least one address (--to ADDRESS:AMOUNT)');
  if (payments.length > limits.solanaInstructionsMax) throw new CustodyError('LIMIT_EXCEEDED', `${payments.length} transfers (at most ${limits.solanaInstructionsMax})`);
  const hash = solAddr(blockhash, 'the recent blockhash');
  let ixs;
  if (token === undefined) {
    ixs = payments.map((p) => getTransferSolInstruction({ source: payerOnly(me), destination: solAddr(p.address, 'destination'), amount: p.amount }));
  } else {
    if (!Number.isInteger(token.decimals) || token.decimals < 0 || token.decimals > 255) throw new CustodyError('INVALID_ARGUMENT', `decimals ${token.decimals} (0..255)`);
    const mint = solAddr(token.mint, 'the mint');
    const [source] = await findAssociatedTokenPda({ owner: me, mint, tokenProgram: TOKEN_PROGRAM_ADDRESS });
    ixs = payments.map((p) => getTransferCheckedInstruction({
      source, mint, destination: solAddr(p.address, 'destination token account'), authority: payerOnly(me), amount: p.amount, decimals: token.decimals,
    }));
  }
  let m: any = createTransactionMessage({ version: 'legacy' });
  m = setTransactionMessageFeePayer(me, m);
  // lastValidBlockHeight is not part of the message bytes; the chain enforces the blockhash's age.
  m = setTransactionMessageLifetimeUsingBlockhash({ blockhash: hash as never, lastValidBlockHeight: 0n }, m);
  m = appendTransactionMessageInstructions(ixs as never[], m);
  return Uint8Array.from(getCompiledTransactionMessageEncoder().encode(compileTransactionMessage(m)));
}
