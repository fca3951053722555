/**
 * Custodian age identities for backup tests, reproducible from a label: the identity is the
 * Bech32 (BIP 173) encoding of sha256(label) under "AGE-SECRET-KEY-" (age v1, X25519 identity),
 * and its recipient is what age-encryption itself derives from it, so a failing seed replays with
 * the same custodians.
 */
import { createHash } from 'node:crypto';
import { identityToRecipient } from 'age-encryption';
import { bech32 } from '@scure/base';

/** Bech32 of `bytes` under the lowercase human-readable part `hrp` (BIP 173). */
export function bech32Encode(hrp: string, bytes: Uint8Array): string {
  return bech32.encode(hrp, bech32.toWords(bytes), false);
}

export interface Custodian {
  label: string;
  identity: string;
  recipient: string;
}

export async function custodian(label: string): Promise<Custodian> {
  const scalar = createHash('sha256').update(`custodian/${label}`).digest();
  const identity = bech32Encode('age-secret-key-', scalar).toUpperCase();
  return { label, identity, recipient: await identityToRecipient(identity) };
}

export async function custodians(...labels: string[]): Promise<Custodian[]> {
  return Promise.all(labels.map(custodian));
}
