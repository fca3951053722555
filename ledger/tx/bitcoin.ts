/**
 * Bitcoin: a PSBT (BIP 174 v0 or BIP 370 v2) spending Taproot key-path outputs of the group key.
 *
 * The key. The kernel's taproot suite (kernel/suites.ts, noble's schnorr_FROST) applies the BIP 86
 * TapTweak with the empty merkle root to the DKG output, so the group key the ledger holds IS the
 * Taproot output key Q (33-byte compressed; x-only Q is what BIP 340 verifies under). Our
 * scriptPubKey is therefore `OP_1 <x(Q)>` and our address bech32m(x(Q)): no further tweak here.
 * A PSBT input may name the untweaked internal key P (PSBT_IN_TAP_INTERNAL_KEY); if it does, it
 * must tweak to Q (BIP 86: Q = P + H_TapTweak(x(P))·G), otherwise the input is someone else's.
 *
 * What is checked, and why it is enough (safety argument):
 *   - Every input's previous output (witnessUtxo: amount + script) is present and its script is
 *     exactly `OP_1 <x(Q)>`: we only ever sign for coins locked to our own key, key path.
 *   - BIP 341 SIGHASH_DEFAULT commits to every input's amount and scriptPubKey, every outpoint and
 *     sequence, every output, the version and the locktime. A witnessUtxo that lies about an
 *     amount or script therefore yields a signature that is invalid on chain, never one that
 *     spends more than the display shows: the fee the display states is the fee the signature
 *     commits to. This is why SIGHASH_DEFAULT is the only type accepted (ANYONECANPAY, NONE and
 *     SINGLE would let a third party change inputs or outputs after we sign).
 *   - Script-path data (leaf scripts, merkle roots, script signatures), partial or final
 *     signatures, unknown and proprietary fields are refused: nothing in the PSBT may carry a
 *     meaning the display does not show. Derivation paths (BIP 32/371) are tolerated: they are
 *     wallet hints that change neither the transaction nor the signature hash.
 *   - Outputs are scripts, which carry no network; they are rendered as addresses of the key's
 *     network (bech32/bech32m, base58 for legacy types), so the address an approver sees is the
 *     one the chain of the key's network pays. Scripts without an address (OP_RETURN, bare
 *     multisig, unknown witness versions) are refused.
 *   - Fee = inputs − outputs, refused if negative or above limits.tx.btcFeeSatMax.
 *
 * messages[i] = the BIP 341 sighash of input i (hash type 0x00), computed by @scure/btc-signer.
 * The display lists each coin spent (txid:vout, amount), the version and the locktime besides the
 * outputs and fee.
 */
import { Address, NETWORK, OutScript, TEST_NETWORK, Transaction, p2tr } from '@scure/btc-signer';
import { RawPSBTV0, RawPSBTV2 } from '@scure/btc-signer/psbt.js';
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import { CustodyError } from '../../proto/errors.js';
import { tx as limits } from '../../proto/limits.js';
import { bytesEqual, toHex } from '../encoding.js';
import { nativeAsset } from './assets.js';
import { formatUnits, type ParsedBody } from './display.js';
import type { AssetTable, KeyContext, Network, TxOutput } from './types.js';

/** The largest amount that can exist (21 million BTC), in satoshi. */
const MAX_MONEY = 21_000_000n * 100_000_000n;
const SIGHASH_DEFAULT = 0;

type BtcNetwork = { bech32: string; pubKeyHash: number; scriptHash: number; wif: number };
const REGTEST: BtcNetwork = { bech32: 'bcrt', pubKeyHash: 0x6f, scriptHash: 0xc4, wif: 0xef };

function btcNetwork(network: Network): BtcNetwork {
  switch (network) {
    case 'bitcoin-mainnet': return NETWORK;
    case 'bitcoin-testnet': return TEST_NETWORK;
    case 'bitcoin-regtest': return REGTEST;
    default: throw new CustodyError('TX_NETWORK_MISMATCH', `a Bitcoin PSBT cannot be signed by a key of network ${network}`);
  }
}

/** The PSBT fields we accept; anything else is refused rather than ignored. */
const GLOBAL_FIELDS = new Set(['unsignedTx', 'txVersion', 'fallbackLocktime', 'inputCount', 'outputCount', 'txModifiable', 'version']);
const INPUT_FIELDS = new Set([
  'txid', 'index', 'sequence', 'witnessUtxo', 'nonWitnessUtxo', 'sighashType', 'tapInternalKey', 'tapBip32Derivation',
  'requiredTimeLocktime', 'requiredHeightLocktime',
]);
const OUTPUT_FIELDS = new Set(['amount', 'script', 'tapInternalKey', 'tapBip32Derivation']);

function refuseFields(what: string, obj: object, allowed: Set<string>): void {
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    if (!allowed.has(k)) throw new CustodyError('TX_UNSUPPORTED', `${what} carries the PSBT field ${k}, which the parser does not accept`);
  }
}

/** The P2TR scriptPubKey of the group key (the key already is the BIP 86 output key). */
export function taprootScript(key: KeyContext): Uint8Array {
  if (key.scheme !== 'taproot') throw new CustodyError('TX_UNSUPPORTED', `a Bitcoin PSBT needs a taproot key, not ${key.scheme}`);
  if (key.groupKey.length !== 33) throw new CustodyError('INVALID_ARGUMENT', 'a taproot group key is 33 bytes (compressed)');
  let xOnly: Uint8Array;
  try {
    xOnly = secp256k1.Point.fromBytes(key.groupKey).toBytes(true).slice(1);
  } catch {
    throw new CustodyError('INVALID_ARGUMENT', 'the key is not a valid compressed secp256k1 point');
  }
  return OutScript.encode({ type: 'tr', pubkey: xOnly });
}

/** The key's own address on its network (bech32m of x(Q)). */
export function taprootAddress(key: KeyContext): string {
  return Address(btcNetwork(key.network)).encode(OutScript.decode(taprootScript(key)));
}

/** The same version choice as Transaction.fromPSBT: v0 when it decodes as v0, else v2. */
function rawGlobal(bytes: Uint8Array): object {
  try {
    return RawPSBTV0.decode(bytes).global;
  } catch {
    return RawPSBTV2.decode(bytes).global;
  }
}

function decodePsbt(bytes: Uint8Array): Transaction {
  if (bytes.length > limits.psbtBytesMax) throw new CustodyError('LIMIT_EXCEEDED', `the PSBT is ${bytes.length} bytes (at most ${limits.psbtBytesMax})`);
  let tx: Transaction;
  let global: object;
  try {
    // 'ignore' keeps unknown and proprietary fields (the default would strip them silently);
    // the field lists below then refuse them by name.
    // disableScriptCheck: the library's redeem/witness-script and Taproot commitment checks are
    // replaced by stricter ones of our own (the script must be exactly ours, an internal key must
    // tweak to it, script-path fields are refused), which name the reason precisely.
    tx = Transaction.fromPSBT(bytes, { unknown: 'ignore', proprietary: 'ignore', disableScriptCheck: true });
    // The global map as the PSBT states it (Transaction keeps its own copy private).
    global = rawGlobal(bytes);
  } catch (e) {
    throw new CustodyError('TX_UNPARSEABLE', `not a PSBT: ${(e as Error).message}`.slice(0, limits.refusalDetailCharsMax));
  }
  refuseFields('the PSBT', global, GLOBAL_FIELDS);
  return tx;
}

interface Prevouts { readonly scripts: Uint8Array[]; readonly amounts: bigint[] }

function prevouts(tx: Transaction): Prevouts {
  const scripts: Uint8Array[] = [];
  const amounts: bigint[] = [];
  for (let i = 0; i < tx.inputsLength; i++) {
    const w = tx.getInput(i).witnessUtxo;
    if (!w) throw new CustodyError('TX_INPUT_INCOMPLETE', `input ${i} has no witnessUtxo (amount and script of the coin it spends)`);
    scripts.push(w.script);
    amounts.push(w.amount);
  }
  return { scripts, amounts };
}

function sighashes(tx: Transaction, p: Prevouts): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < tx.inputsLength; i++) out.push(tx.preimageWitnessV1(i, p.scripts, SIGHASH_DEFAULT, p.amounts));
  return out;
}

export function parseBitcoin(bytes: Uint8Array, key: KeyContext, assets: AssetTable): ParsedBody {
  const net = btcNetwork(key.network);
  const ours = taprootScript(key);
  const btc = nativeAsset(assets, key.network);
  const tx = decodePsbt(bytes);

  if (tx.inputsLength === 0 || tx.outputsLength === 0) throw new CustodyError('TX_UNPARSEABLE', 'a transaction needs at least one input and one output');
  if (tx.inputsLength > limits.btcInputsMax) throw new CustodyError('LIMIT_EXCEEDED', `${tx.inputsLength} inputs (at most ${limits.btcInputsMax})`);
  if (tx.outputsLength > limits.btcOutputsMax) throw new CustodyError('LIMIT_EXCEEDED', `${tx.outputsLength} outputs (at most ${limits.btcOutputsMax})`);

  const seen = new Set<string>();
  const spent: { outpoint: string; amount: bigint }[] = [];
  let inSum = 0n;
  for (let i = 0; i < tx.inputsLength; i++) {
    const input = tx.getInput(i);
    refuseFields(`input ${i}`, input, INPUT_FIELDS);
    if (input.sighashType !== undefined && input.sighashType !== SIGHASH_DEFAULT) {
      throw new CustodyError('TX_UNSUPPORTED', `input ${i} asks for sighash type 0x${input.sighashType.toString(16)}; only SIGHASH_DEFAULT is signed`);
    }
    const outpoint = `${toHex(input.txid!)}:${input.index!}`;
    if (seen.has(outpoint)) throw new CustodyError('TX_UNPARSEABLE', `input ${i} spends ${outpoint} a second time`);
    seen.add(outpoint);
    const w = input.witnessUtxo;
    if (!w) throw new CustodyError('TX_INPUT_INCOMPLETE', `input ${i} has no witnessUtxo (amount and script of the coin it spends)`);
    if (!bytesEqual(w.script, ours)) throw new CustodyError('TX_FOREIGN_INPUT', `input ${i} spends a coin that is not locked to the key's Taproot output key`);
    if (input.tapInternalKey && !bytesEqual(p2tr(input.tapInternalKey).script, ours)) {
      throw new CustodyError('TX_FOREIGN_INPUT', `input ${i} names an internal key that does not tweak (BIP 86) to the key`);
    }
    if (w.amount <= 0n || w.amount > MAX_MONEY) throw new CustodyError('TX_UNPARSEABLE', `input ${i} spends ${w.amount} sat`);
    inSum += w.amount;
    spent.push({ outpoint, amount: w.amount });
  }
  if (inSum > MAX_MONEY) throw new CustodyError('TX_UNPARSEABLE', 'the inputs add up to more than can exist');

  const outputs: TxOutput[] = [];
  let outSum = 0n;
  let amount = 0n;
  for (let i = 0; i < tx.outputsLength; i++) {
    const o = tx.getOutput(i);
    refuseFields(`output ${i}`, o, OUTPUT_FIELDS);
    const script = o.script!;
    const value = o.amount!;
    if (value < 0n || value > MAX_MONEY) throw new CustodyError('TX_UNPARSEABLE', `output ${i} pays ${value} sat`);
    let address: string;
    try {
      const decoded = OutScript.decode(script);
      // The address must stand for exactly this script: a non-minimal encoding of the same
      // type and key would show a familiar address for an output the chain treats differently.
      if (!bytesEqual(OutScript.encode(decoded), script)) throw new Error('non-canonical script');
      address = Address(net).encode(decoded);
    } catch {
      throw new CustodyError('TX_UNSUPPORTED', `output ${i} pays a script without an address of its own (${toHex(script).slice(0, limits.refusalDetailCharsMax)})`);
    }
    const change = bytesEqual(script, ours);
    outputs.push({ address, asset: btc.symbol, amount: value, change });
    outSum += value;
    if (!change) amount += value;
  }
  const fee = inSum - outSum;
  if (fee < 0n) throw new CustodyError('TX_FEE_INVALID', `the outputs (${outSum} sat) exceed the inputs (${inSum} sat)`);
  if (fee > BigInt(limits.btcFeeSatMax)) throw new CustodyError('TX_FEE_INVALID', `the fee is ${fee} sat (at most ${limits.btcFeeSatMax})`);

  return {
    kind: 'btc-psbt',
    network: key.network,
    asset: btc.symbol,
    outputs,
    amount,
    fee,
    feeAsset: btc.symbol,
    messages: sighashes(tx, prevouts(tx)),
    decimals: { [btc.symbol]: btc.info.decimals },
    details: [
      ...spent.map((s, i) => [`input ${i}`, `${s.outpoint} ${formatUnits(s.amount, btc.info.decimals)} ${btc.symbol} key path`] as [string, string]),
      ['version', String(tx.version)],
      ['locktime', String(tx.lockTime)],
    ],
    messageForm: 'sighash',
  };
}

export interface FinalizedBitcoin {
  /** The PSBT with every input finalized (PSBT_IN_FINAL_SCRIPTWITNESS = [signature]). */
  readonly psbt: Uint8Array;
  /** The network transaction, ready to broadcast. */
  readonly tx: Uint8Array;
  /** Its txid (display byte order, hex). */
  readonly txid: string;
}

/**
 * Puts one 64-byte BIP 340 signature per input (in input order) into the PSBT, as the key-path
 * witness, and extracts the transaction. Each signature is checked against the input's output
 * key over the input's BIP 341 sighash first: a wrong or misplaced signature is refused
 * (SIGNATURE_INVALID), never finalized into a transaction the chain would reject.
 */
export function finalizeBitcoin(psbtBytes: Uint8Array, signatures: readonly Uint8Array[]): FinalizedBitcoin {
  const tx = decodePsbt(psbtBytes);
  if (signatures.length !== tx.inputsLength) {
    throw new CustodyError('INVALID_ARGUMENT', `${signatures.length} signatures for ${tx.inputsLength} inputs`);
  }
  const p = prevouts(tx);
  const hashes = sighashes(tx, p);
  for (let i = 0; i < tx.inputsLength; i++) {
    const sig = signatures[i]!;
    const decoded = OutScript.decode(p.scripts[i]!);
    if (decoded.type !== 'tr') throw new CustodyError('TX_FOREIGN_INPUT', `input ${i} is not a Taproot output`);
    if (sig.length !== 64 || !schnorr.verify(sig, hashes[i]!, decoded.pubkey)) {
      throw new CustodyError('SIGNATURE_INVALID', `the signature for input ${i} does not verify over its BIP 341 sighash`);
    }
    tx.updateInput(i, { tapKeySig: sig }, true);
  }
  try {
    tx.finalize();
    return { psbt: tx.toPSBT(), tx: tx.extract(), txid: tx.id };
  } catch (e) {
    throw new CustodyError('TX_UNPARSEABLE', `the PSBT cannot be finalized: ${(e as Error).message}`.slice(0, limits.refusalDetailCharsMax));
  }
}
