/**
 * Raw: bytes signed as they are (off-chain attestations). Nothing is derived from them: no asset
 * moves (asset 'RAW', amount 0, no outputs, no fee) and the one message is the bytes themselves.
 * The display shows every byte in hex and, when the bytes are printable UTF-8, the text as a JSON
 * string, so an approver reads exactly what the key will sign. Policy never auto-allows this kind.
 */
import { CustodyError } from '../../proto/errors.js';
import { tx as limits } from '../../proto/limits.js';
import { toHex } from '../encoding.js';
import type { ParsedBody } from './display.js';
import type { KeyContext } from './types.js';

export const RAW_ASSET = 'RAW';

/**
 * The text, if the bytes are well-formed UTF-8 without control characters or the bidirectional
 * overrides that make text display in another order than it is stored.
 */
function printableText(bytes: Uint8Array): string | undefined {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return undefined;
  }
  if (/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]/u.test(text)) return undefined;
  return text;
}

export function parseRaw(bytes: Uint8Array, key: KeyContext): ParsedBody {
  if (bytes.length === 0) throw new CustodyError('TX_UNPARSEABLE', 'a raw message is at least one byte');
  if (bytes.length > limits.rawBytesMax) throw new CustodyError('LIMIT_EXCEEDED', `the raw message is ${bytes.length} bytes (at most ${limits.rawBytesMax})`);
  const text = printableText(bytes);
  const details: [string, string][] = [['bytes', `${bytes.length} ${toHex(bytes)}`]];
  if (text !== undefined) details.push(['text', JSON.stringify(text)]);
  return {
    kind: 'raw',
    network: key.network,
    asset: RAW_ASSET,
    outputs: [],
    amount: 0n,
    fee: 0n,
    feeAsset: RAW_ASSET,
    messages: [Uint8Array.from(bytes)],
    decimals: {},
    details,
    messageForm: 'sha256',
  };
}
