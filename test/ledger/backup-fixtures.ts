/**
 * Custodian age identities for backup tests, reproducible from a label: the identity is the
 * Bech32 (BIP 173) encoding of sha256(label) under "AGE-SECRET-KEY-" (age v1, X25519 identity),
 * and its recipient is what age-encryption itself derives from it, so a failing seed replays with
 * the same custodians.
 */
import { createHash } from 'node:crypto';
import { identityToRecipient } from 'age-encryption';

const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
const GEN = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];

function polymod(values: readonly number[]): number {
  let chk = 1;
  for (const v of values) {
    const top = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= GEN[i] as number;
  }
  return chk >>> 0;
}

/** Bech32 of `bytes` under the lowercase human-readable part `hrp` (BIP 173). */
export function bech32Encode(hrp: string, bytes: Uint8Array): string {
  const words: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      words.push((acc >>> bits) & 31);
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) words.push((acc << (5 - bits)) & 31);
  const expanded = [...[...hrp].map((c) => c.charCodeAt(0) >> 5), 0, ...[...hrp].map((c) => c.charCodeAt(0) & 31)];
  const mod = polymod([...expanded, ...words, 0, 0, 0, 0, 0, 0]) ^ 1;
  const checksum = Array.from({ length: 6 }, (_, i) => (mod >>> (5 * (5 - i))) & 31);
  return `${hrp}1${[...words, ...checksum].map((w) => CHARSET[w]).join('')}`;
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
