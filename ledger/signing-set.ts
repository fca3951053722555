/**
 * What the ledger checks about a permit's signing set (ActSigningSetFixed) and the signature
 * ActExecuted carries for it, deterministically and without any secret:
 *
 *   frostIdentifier(scheme, n)   the serialized FROST identifier of the n-th participant (RFC 9591
 *                                §4.1: the scalar n, SerializeScalar of the suite: little-endian
 *                                for Ed25519 (§6.1), big-endian for secp256k1 (§6.5))
 *   isGroupElement(scheme, b)    b is a serialized element of the suite's prime-order group that
 *                                is not the identity (RFC 9591 §3.1 DeserializeElement)
 *   ed25519GroupCommitment(...)  the group commitment R of FROST(Ed25519, SHA-512) for a
 *                                commitment list (RFC 9591 §4.4 binding factors, §4.5 group
 *                                commitment): a signature aggregated over that list (§5.3) is
 *                                (R, z), so its first 32 bytes must equal R.
 *
 * For the secp256k1 and Taproot suites the ledger checks the list's shape and elements only; the
 * coordinator aggregates with the fixed list, and the publisher verifies the signature.
 */
import { ECDH } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { concatBytes as concat } from '@noble/hashes/utils.js';
import type { KeyScheme } from './decision.js';
import { fromHex, toHex } from './encoding.js';

const ED25519_CONTEXT = 'FROST-ED25519-SHA512-v1';
const L = ed25519.Point.Fn.ORDER;

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

function bytesToBigintLE(b: Uint8Array): bigint {
  let x = 0n;
  for (let i = b.length - 1; i >= 0; i--) x = (x << 8n) | BigInt(b[i] as number);
  return x;
}

/** The serialized identifier of the participant at 1-based position n (RFC 9591 §4.1). */
export function frostIdentifier(scheme: KeyScheme, n: number): string {
  const b = new Uint8Array(32);
  let x = BigInt(n);
  for (let i = 0; i < 32 && x > 0n; i++, x >>= 8n) b[scheme === 'ed25519' ? i : 31 - i] = Number(x & 0xffn);
  return toHex(b);
}

/** A valid, non-identity element of the suite's prime-order group. */
export function isGroupElement(scheme: KeyScheme, b: Uint8Array): boolean {
  if (scheme !== 'ed25519') return isSecp256k1Element(b);
  try {
    if (b.length !== 32) return false;
    const p = ed25519.Point.fromBytes(b);
    return !p.is0() && p.isTorsionFree();
  } catch {
    return false;
  }
}

/**
 * A compressed point (SEC 1 §2.3.3: 0x02 or 0x03, then x < p) is an element exactly when x^3 + 7
 * has a square root mod p, and never the identity, which has no compressed form; every point of
 * secp256k1 is in the prime-order group (cofactor 1). OpenSSL decompresses it and checks the
 * result is on the curve, refusing x >= p: the same answer as noble's Point.fromBytes +
 * assertValidity (test/ledger/signing-set.test.ts compares them) at a fraction of the cost of the
 * BigInt square root, on the path every signing set takes. An OpenSSL without secp256k1 (a FIPS
 * build) answers through noble, so every node gives the same answer whatever its build.
 */
function isSecp256k1Element(b: Uint8Array): boolean {
  if (b.length !== 33 || (b[0] !== 2 && b[0] !== 3)) return false;
  try {
    if (!OPENSSL_SECP256K1) {
      const p = secp256k1.Point.fromBytes(b);
      p.assertValidity();
      return !p.is0();
    }
    return ECDH.convertKey(b, 'secp256k1', undefined, undefined, 'uncompressed').length === 65;
  } catch {
    return false;
  }
}

const OPENSSL_SECP256K1 = ((): boolean => {
  try {
    return ECDH.convertKey(secp256k1.Point.BASE.toBytes(true), 'secp256k1', undefined, undefined, 'uncompressed').length === 65;
  } catch {
    return false;
  }
})();

/** A commitment list entry as RFC 9591 §4.3 encodes it. */
export interface ListEntry {
  readonly identifier: string;
  readonly hiding: Uint8Array;
  readonly binding: Uint8Array;
}

function h(tag: string, ...parts: Uint8Array[]): Uint8Array {
  return sha512(concat(utf8(ED25519_CONTEXT + tag), ...parts));
}

/**
 * R = sum over the list of D_i + rho_i * E_i, with rho_i = H1(PK || H4(msg) || H5(encoded list)
 * || id_i) (RFC 9591 §4.3-§4.5; H1, H4, H5 of §6.1). `list` must be sorted by identifier and
 * hold valid elements (the ledger checked both when the set was fixed). Returns R serialized and
 * each entry's binding factor, in list order.
 */
export function ed25519GroupCommitment(groupKey: Uint8Array, message: Uint8Array, list: readonly ListEntry[]): { R: Uint8Array; bindingFactors: bigint[] } {
  const ids = list.map((c) => fromHex(c.identifier));
  const encoded = concat(...list.flatMap((c, i) => [ids[i] as Uint8Array, c.hiding, c.binding]));
  const prefix = concat(groupKey, h('msg', message), h('com', encoded));
  const bindingFactors = ids.map((id) => bytesToBigintLE(h('rho', prefix, id)) % L);
  let R = ed25519.Point.ZERO;
  list.forEach((c, i) => {
    const rho = bindingFactors[i] as bigint;
    const E = ed25519.Point.fromBytes(c.binding);
    R = R.add(ed25519.Point.fromBytes(c.hiding)).add(rho === 0n ? ed25519.Point.ZERO : E.multiply(rho));
  });
  return { R: R.toBytes(), bindingFactors };
}
