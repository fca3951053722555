/**
 * The digest that binds an act, its step permit and every kernel to the exact list of messages the
 * threshold key signs for it (TxFacts.messages: one BIP 341 sighash per PSBT input, one Solana
 * message, or the raw bytes):
 *
 *   messagesDigest = digest('custody-ledger/v1/act-messages', u32be(n) || SHA-256(m_0) || ... || SHA-256(m_{n-1}))
 *
 * The count and each message's own hash go in, in order, so no two lists share a digest unless
 * SHA-256 collides: a permit names this digest, and a kernel recomputes it from the messages it is
 * asked to sign before it uses a single nonce.
 */
import { createHash } from 'node:crypto';
import { CustodyError } from '../../proto/errors.js';
import { tx as limits } from '../../proto/limits.js';
import { digest } from '../encoding.js';

export const MESSAGES_DOMAIN = 'custody-ledger/v1/act-messages';

export function messagesDigest(messages: readonly Uint8Array[]): Uint8Array {
  if (messages.length < 1 || messages.length > limits.messagesPerActMax) {
    throw new CustodyError('PAYLOAD_REJECTED', `an act signs 1 to ${limits.messagesPerActMax} messages, not ${messages.length}`);
  }
  const body = new Uint8Array(4 + 32 * messages.length);
  new DataView(body.buffer).setUint32(0, messages.length);
  messages.forEach((m, i) => body.set(createHash('sha256').update(m).digest(), 4 + 32 * i));
  return digest(MESSAGES_DOMAIN, body);
}
