/**
 * Keys, asset tables and real transactions for the transaction parser tests, built with the
 * chains' own libraries (@scure/btc-signer for PSBTs, the official @solana packages for messages).
 */
import { createHash } from 'node:crypto';
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { Transaction, OutScript } from '@scure/btc-signer';
import type { Test } from 'tap';
import type { AssetTable, KeyContext, Network } from '../../ledger/tx/types.js';
import { isCustodyError } from '../../proto/errors.js';
import type { ReasonCode } from '../../proto/reasons.js';

export const REGTEST = { bech32: 'bcrt', pubKeyHash: 0x6f, scriptHash: 0xc4, wif: 0xef };
export const USDC_MINT = '4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU';

export const ASSETS: AssetTable = {
  BTC: { symbol: 'BTC', network: 'bitcoin-regtest', onChain: 'native', decimals: 8 },
  SOL: { symbol: 'SOL', network: 'solana-devnet', onChain: 'native', decimals: 9 },
  USDC: { symbol: 'USDC', network: 'solana-devnet', onChain: { mint: USDC_MINT }, decimals: 6 },
};

function seedBytes(label: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(`tx-test/${label}`).digest());
}

export interface TaprootTestKey {
  /** The BIP 86 internal key P (x-only), as a wallet would name it in PSBT_IN_TAP_INTERNAL_KEY. */
  readonly internal: Uint8Array;
  /** The secret of the output key Q = P + H_TapTweak(P)·G: what the threshold key holds after DKG. */
  readonly outputSecret: Uint8Array;
  /** x(Q): what BIP 340 verifies under. */
  readonly outputXOnly: Uint8Array;
  readonly key: KeyContext;
}

/** A plain (single-party) Taproot key, tweaked per BIP 86 the way the kernel's suite tweaks its DKG output. */
export function taprootKey(label: string, network: Network = 'bitcoin-regtest'): TaprootTestKey {
  const Fn = secp256k1.Point.Fn;
  let d = Fn.fromBytes(seedBytes(label)) % Fn.ORDER;
  let P = secp256k1.Point.BASE.multiply(d);
  if (P.y % 2n === 1n) { d = Fn.neg(d); P = P.negate(); }
  const internal = P.toBytes(true).slice(1);
  const t = Fn.fromBytes(schnorr.utils.taggedHash('TapTweak', internal));
  const Q = P.add(secp256k1.Point.BASE.multiply(t));
  const outputSecret = Fn.toBytes(Fn.add(d, t));
  return {
    internal,
    outputSecret,
    outputXOnly: Q.toBytes(true).slice(1),
    key: { keyId: `key-${label}`, scheme: 'taproot', groupKey: Q.toBytes(true), network },
  };
}

export function p2trScript(xOnly: Uint8Array): Uint8Array {
  return OutScript.encode({ type: 'tr', pubkey: xOnly });
}

export interface PsbtSpec {
  readonly inputs: readonly { txid: string; index: number; amount: bigint; script: Uint8Array; internal?: Uint8Array; extra?: Record<string, unknown> }[];
  readonly outputs: readonly { address?: string; script?: Uint8Array; amount: bigint }[];
  readonly psbtVersion?: 0 | 2;
}

export function buildPsbt(spec: PsbtSpec): Uint8Array {
  // No script checks: attack PSBTs carry inconsistent fields on purpose.
  const tx = new Transaction({ allowUnknownOutputs: true, disableScriptCheck: true, version: 2 });
  for (const i of spec.inputs) {
    tx.addInput({
      txid: i.txid,
      index: i.index,
      witnessUtxo: { script: i.script, amount: i.amount },
      ...(i.internal ? { tapInternalKey: i.internal } : {}),
    });
  }
  for (const o of spec.outputs) {
    if (o.address !== undefined) tx.addOutputAddress(o.address, o.amount, REGTEST);
    else tx.addOutput({ script: o.script!, amount: o.amount });
  }
  // Extra fields last: a signature field would otherwise freeze the inputs and outputs.
  spec.inputs.forEach((i, idx) => { if (i.extra) tx.updateInput(idx, i.extra as never, true); });
  return tx.toPSBT(spec.psbtVersion ?? 0);
}

export function txidOf(label: string): string {
  return createHash('sha256').update(`prev/${label}`).digest('hex');
}

/** An Ed25519 key (plain secret) as a Solana group key. */
export function ed25519Key(label: string, network: Network = 'solana-devnet'): { secret: Uint8Array; key: KeyContext } {
  const secret = seedBytes(label);
  return { secret, key: { keyId: `key-${label}`, scheme: 'ed25519', groupKey: ed25519.getPublicKey(secret), network } };
}

/** Asserts that f throws a CustodyError with exactly this reason code. */
export function refusedWith(t: Test, f: () => unknown, code: ReasonCode, what: string): void {
  try {
    f();
    t.fail(`${what}: accepted`);
  } catch (e) {
    t.ok(isCustodyError(e), `${what}: a CustodyError`);
    t.equal(isCustodyError(e) ? e.reason : String(e), code, `${what}: refused ${code}${isCustodyError(e) ? ` (${e.detail})` : ""}`);
  }
}
