/**
 * Real transactions for the test clusters' acts: a SOL transfer for an ed25519 key
 * (solana-devnet), a one-coin Taproot PSBT with change for a taproot key (bitcoin-regtest), built
 * for the key as the node reports it, paying one of the named payees (addresses of keys nobody in
 * the tests holds). Each call builds a distinct transaction (a fresh coin, a fresh blockhash), so
 * two acts never carry the same bytes by accident.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getAddressDecoder } from '@solana/addresses';
import type { ActView, AdminClient } from '../../node/admin/client.js';
import { assetTableOf, keyContextOfView } from '../../node/commands/act.js';
import { buildSolanaTransfer, buildTaprootPsbt } from '../../node/lifecycle/tx-build.js';
import { parseTransaction, solanaAddress, taprootAddress } from '../../ledger/tx/parse.js';
import type { KeyContext, TxKind } from '../../ledger/tx/types.js';
import { ed25519Key, taprootKey } from '../ledger/tx-fixtures.js';

/** The payees the test policies name, by the name the tests use. */
export const PAYEES = {
  'sol-treasury': solanaAddress(ed25519Key('payee-sol-treasury').key) as string,
  'sol-exchange': solanaAddress(ed25519Key('payee-sol-exchange').key) as string,
  /** On no allow list: an act paying it is denied. */
  'sol-elsewhere': solanaAddress(ed25519Key('payee-sol-elsewhere').key) as string,
  'bc1p-treasury': taprootAddress(taprootKey('payee-btc-treasury').key),
} as const;
export type Payee = keyof typeof PAYEES;

export interface Payment {
  readonly keyId: string;
  readonly kind: TxKind;
  readonly tx: Uint8Array;
}

const keys = new WeakMap<AdminClient, Map<string, KeyContext>>();

async function keyOf(c: AdminClient, keyId: string): Promise<KeyContext> {
  let m = keys.get(c);
  if (m === undefined) keys.set(c, (m = new Map()));
  const known = m.get(keyId);
  if (known !== undefined) return known;
  const view = (await c.status()).keys.find((k) => k.id === keyId);
  if (view === undefined) throw new Error(`no key ${keyId}`);
  const k = keyContextOfView(view);
  m.set(keyId, k);
  return k;
}

/** A payment of `amount` base units (lamports or satoshi) from `keyId` to `to` (default: the treasury of the key's chain). */
export async function payment(c: AdminClient, keyId: string, amount: bigint | number | string, to?: Payee): Promise<Payment> {
  const k = await keyOf(c, keyId);
  const a = BigInt(amount);
  if (k.scheme === 'taproot') {
    const coin = { txid: randomBytes(32).toString('hex'), vout: 0, amountSat: a + 2_000n };
    return { keyId, kind: 'btc-psbt', tx: buildTaprootPsbt(k, [coin], [{ address: PAYEES[to ?? 'bc1p-treasury'], amount: a }], 1_000n) };
  }
  const blockhash = getAddressDecoder().decode(randomBytes(32));
  return { keyId, kind: 'solana', tx: await buildSolanaTransfer(k, [{ address: PAYEES[to ?? 'sol-treasury'], amount: a }], blockhash) };
}

/** The same payment written to a file in `dir`, with the `custody admin act submit` options naming it. */
export async function paymentArgs(c: AdminClient, dir: string, keyId: string, amount: bigint | number | string, to?: Payee): Promise<string[]> {
  const p = await payment(c, keyId, amount, to);
  const file = join(dir, `${keyId}-${randomBytes(6).toString('hex')}.${p.kind === 'btc-psbt' ? 'psbt' : 'msg'}`);
  writeFileSync(file, p.tx);
  return ['--key', keyId, p.kind === 'btc-psbt' ? '--psbt' : '--solana', file];
}

/**
 * The messages an act's signatures cover, re-derived here from the act's transaction (the ledger's
 * own parser, against the key and asset table the node reports), in order.
 */
export async function messagesOf(c: AdminClient, view: ActView): Promise<readonly Uint8Array[]> {
  const s = await c.status();
  const key = s.keys.find((k) => k.id === view.keyId);
  if (key === undefined) throw new Error(`no key ${view.keyId}`);
  return parseTransaction(view.kind as TxKind, new Uint8Array(view.tx), keyContextOfView(key), assetTableOf(s.assets)).messages;
}
