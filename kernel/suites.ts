/**
 * The three FROST ciphersuites the kernel speaks (RFC 9591 §6), each an instance of noble's
 * generic FROST plus the group arithmetic the kernel needs beside it (refresh/reshare in
 * kernel/redeal.ts works on points and scalars directly).
 *
 *   ed25519       FROST(Ed25519, SHA-512)            RFC 9591 §6.1; signatures verify under RFC 8032
 *   secp256k1     FROST(secp256k1, SHA-256)          RFC 9591 §6.5
 *   taproot       FROST(secp256k1, SHA-256) with BIP340/BIP341 conventions (x-only keys, even Y,
 *                 TapTweak with the empty merkle root on DKG output); signatures verify under BIP340
 */
import { ed25519, ed25519_FROST } from '@noble/curves/ed25519.js';
import { schnorr_FROST, secp256k1, secp256k1_FROST } from '@noble/curves/secp256k1.js';
import type { FROST } from '@noble/curves/abstract/frost.js';
import { CustodyError } from '../proto/errors.js';

export const SUITE_NAMES = ['ed25519', 'secp256k1', 'taproot'] as const;
export type SuiteName = (typeof SUITE_NAMES)[number];

/** The slice of a noble point the kernel uses. */
export interface GroupPoint {
  add(rhs: GroupPoint): GroupPoint;
  multiply(scalar: bigint): GroupPoint;
  equals(rhs: GroupPoint): boolean;
  toBytes(): Uint8Array;
  is0(): boolean;
}

export interface GroupField {
  ORDER: bigint;
  BYTES: number;
  add(a: bigint, b: bigint): bigint;
  mul(a: bigint, b: bigint): bigint;
  sub(a: bigint, b: bigint): bigint;
  div(a: bigint, b: bigint): bigint;
  fromBytes(b: Uint8Array): bigint;
  toBytes(n: bigint): Uint8Array;
  isValid(n: bigint): boolean;
}

/** A key's public package (noble's FrostPublic without its branded byte types). */
export interface PublicKeyPackage {
  signers: { min: number; max: number };
  /** commitments[0] is the group public key. */
  commitments: Uint8Array[];
  verifyingShares: Record<string, Uint8Array>;
}

/** Random bytes source, injectable so fixed vectors run the production path (RFC 9591 App. E). */
export type Rng = (bytesLength?: number) => Uint8Array;

export interface Suite {
  readonly name: SuiteName;
  readonly frost: FROST;
  readonly Fn: GroupField;
  readonly base: GroupPoint;
  /** Parses and validates a serialized group element (rejects identity and small-order points). */
  parsePoint(bytes: Uint8Array): GroupPoint;
}

function mk(name: SuiteName, frost: FROST, Point: any): Suite {
  const Fn = frost.utils.Fn as unknown as GroupField;
  return Object.freeze({
    name,
    frost,
    Fn,
    base: Point.BASE as GroupPoint,
    parsePoint(bytes: Uint8Array): GroupPoint {
      const p = Point.fromBytes(bytes);
      p.assertValidity();
      if (p.is0()) throw new Error('identity point');
      if (!p.isTorsionFree()) throw new Error('point outside the prime-order subgroup');
      return p as GroupPoint;
    },
  });
}

const SUITES: Record<SuiteName, Suite> = {
  ed25519: mk('ed25519', ed25519_FROST, ed25519.Point),
  secp256k1: mk('secp256k1', secp256k1_FROST, secp256k1.Point),
  'taproot': mk('taproot', schnorr_FROST, secp256k1.Point),
};

export function isSuiteName(x: unknown): x is SuiteName {
  return typeof x === 'string' && (SUITE_NAMES as readonly string[]).includes(x);
}

export function suiteOf(name: string): Suite {
  if (!isSuiteName(name)) throw new CustodyError('PAYLOAD_REJECTED', `unknown ciphersuite ${JSON.stringify(name)}`);
  return SUITES[name];
}

/**
 * The group public key in the form its ecosystem's verifiers take: 32-byte RFC 8032 key for
 * ed25519, 33-byte SEC1 compressed for secp256k1, 32-byte x-only (BIP340) for the Taproot suite.
 */
export function externalPublicKey(suite: Suite, groupKey: Uint8Array): Uint8Array {
  if (suite.name === 'taproot') return groupKey.slice(1);
  return groupKey.slice();
}
