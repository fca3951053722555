/**
 * The canonical display of a transaction: the text a person approves, recomputed by every node
 * and every kernel from the parsed facts. One fact per line, "label: value", in a fixed order:
 *
 *   custody-ledger transaction v1
 *   kind: btc-psbt
 *   network: bitcoin-regtest
 *   key: "treasury" taproot 02…                       (key id as a JSON string, scheme, group key hex)
 *   asset: BTC
 *   output 0: bcrt1p… 0.00150000 BTC
 *   output 1: bcrt1p… 0.00849000 BTC change
 *   amount: 0.00150000 BTC                            (non-change outputs)
 *   fee: 0.00001000 BTC
 *   <kind-specific lines: locktime, recent blockhash, raw bytes …>
 *   message 0 sighash: 6f…                            (32-byte BIP 341 sighash, as signed)
 *   message 0 sha256: 6f…                             (SHA-256 of a longer message: Solana, raw)
 *
 * Amounts are rendered exactly from bigints with the asset table's decimals (never floating point),
 * every decimal place shown, so two amounts that differ by one base unit render differently.
 * Values that are not produced by a codec we trust to be printable ASCII (the key id, raw text) are
 * JSON strings, so no value can contain a line break or forge another line.
 *
 * displayHash = digest('custody-ledger/v1/tx-display', UTF-8 of the display): what an approval signs.
 */
import { createHash } from 'node:crypto';
import { assert } from '../../proto/errors.js';
import { digest, toHex } from '../encoding.js';
import type { KeyContext, TxFacts } from './types.js';

export const TX_DISPLAY_DOMAIN = 'custody-ledger/v1/tx-display';
const HEADER = 'custody-ledger transaction v1';

/** What a kind's parser hands to the display: the facts less the display, plus its own lines. */
export interface ParsedBody extends Omit<TxFacts, 'display' | 'displayHash'> {
  /** Decimals of every symbol the outputs and fee name (the raw kind renders no amounts). */
  readonly decimals: { readonly [symbol: string]: number };
  /** Kind-specific facts, shown between the fee and the messages, already escaped. */
  readonly details: readonly (readonly [label: string, value: string])[];
  /** `sighash`: each message is a 32-byte digest, shown as it is; `sha256`: shown as its SHA-256. */
  readonly messageForm: 'sighash' | 'sha256';
}

/** `amount` base units as a decimal with exactly `decimals` places: 150000n, 8 -> "0.00150000". */
export function formatUnits(amount: bigint, decimals: number): string {
  assert(amount >= 0n, 'amounts are not negative');
  assert(Number.isInteger(decimals) && decimals >= 0, 'decimals are a natural number');
  if (decimals === 0) return amount.toString();
  const s = amount.toString().padStart(decimals + 1, '0');
  return `${s.slice(0, s.length - decimals)}.${s.slice(s.length - decimals)}`;
}

function units(body: ParsedBody, amount: bigint, symbol: string): string {
  const d = body.decimals[symbol];
  assert(d !== undefined, `decimals known for ${symbol}`);
  return `${formatUnits(amount, d)} ${symbol}`;
}

export function renderDisplay(body: ParsedBody, key: KeyContext): string {
  const lines: string[] = [
    HEADER,
    `kind: ${body.kind}`,
    `network: ${body.network}`,
    `key: ${JSON.stringify(key.keyId)} ${key.scheme} ${toHex(key.groupKey)}`,
    `asset: ${body.asset}`,
  ];
  body.outputs.forEach((o, i) => {
    lines.push(`output ${i}: ${o.address} ${units(body, o.amount, o.asset)}${o.change ? ' change' : ''}`);
  });
  if (body.kind !== 'raw') {
    lines.push(`amount: ${units(body, body.amount, body.asset)}`);
    lines.push(`fee: ${units(body, body.fee, body.feeAsset)}`);
  }
  for (const [label, value] of body.details) {
    assert(/^[a-z0-9 ]+$/.test(label) && !/[\r\n]/.test(value), 'display details are one line each');
    lines.push(`${label}: ${value}`);
  }
  body.messages.forEach((m, i) => {
    if (body.messageForm === 'sighash') {
      assert(m.length === 32, 'a sighash message is 32 bytes');
      lines.push(`message ${i} sighash: ${toHex(m)}`);
    } else {
      lines.push(`message ${i} sha256: ${createHash('sha256').update(m).digest('hex')}`);
    }
  });
  return lines.join('\n') + '\n';
}

export function displayHash(display: string): Uint8Array {
  return digest(TX_DISPLAY_DOMAIN, new TextEncoder().encode(display));
}

/** The full facts: the body's own fields, its display and the display digest. */
export function finishFacts(body: ParsedBody, key: KeyContext): TxFacts {
  const display = renderDisplay(body, key);
  return Object.freeze({
    kind: body.kind,
    network: body.network,
    asset: body.asset,
    outputs: Object.freeze(body.outputs.map((o) => Object.freeze({ ...o }))),
    amount: body.amount,
    fee: body.fee,
    feeAsset: body.feeAsset,
    messages: Object.freeze(body.messages.map((m) => Uint8Array.from(m))),
    display,
    displayHash: displayHash(display),
  });
}
