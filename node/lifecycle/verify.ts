/**
 * Signature checks with verifiers independent of the FROST code that produced the signature:
 * OpenSSL Ed25519 (RFC 8032, via the ledger's node:crypto verifier) for ed25519, BIP340 Schnorr
 * for taproot. The FROST(secp256k1) suite has no verifier outside RFC 9591 itself, so its own
 * single-party verification is used.
 */
import { schnorr } from '@noble/curves/secp256k1.js';
import { ed25519Verify } from '../../ledger/decision.js';
import { externalPublicKey, suiteOf } from '../../kernel/suites.js';
import type { KeyScheme } from '../../ledger/decision.js';

/** The group key as its ecosystem's verifiers take it (x-only for taproot). */
export function verifierKey(scheme: KeyScheme, groupKey: Uint8Array): Uint8Array {
  return externalPublicKey(suiteOf(scheme), groupKey);
}

export function verifySignature(scheme: KeyScheme, groupKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  const pk = verifierKey(scheme, groupKey);
  try {
    if (scheme === 'ed25519') return ed25519Verify(signature, message, pk);
    if (scheme === 'taproot') return schnorr.verify(signature, message, pk);
    return suiteOf(scheme).frost.verify(signature, message, pk);
  } catch {
    return false;
  }
}
