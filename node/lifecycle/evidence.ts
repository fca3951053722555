/**
 * The evidence bundle of one act: the ledger's bundle (ledger/receipts.ts: act, approval,
 * hash-linked receipts) plus what an outside verifier needs to check the public effect itself:
 *
 *   "signature": { "ciphersuite": "ed25519" | "taproot" | "secp256k1",
 *                  "groupPublicKey": hex (the key as its ecosystem's verifiers take it),
 *                  "message": hex (the act's 32-byte digest, the exact bytes signed),
 *                  "signature": hex,
 *                  "signers": [ { "node", "identifier", "hiding", "binding" }, ... ] }
 *
 * `signers` is the signing set the ledger fixed for the act's permit (ActSigningSetFixed): the
 * nodes whose kernels produced a share, with their FROST identifiers and nonce commitments,
 * sorted by identifier (RFC 9591 §5.2).
 *
 * verifyBundleSignature checks that block against the bundle: the message is the act's digest,
 * the PublicationReceipt names the digest of this very signature, and the signature verifies
 * under the group key with an independent verifier (verify.ts). For ed25519 it also recomputes the
 * group commitment R of the listed set (RFC 9591 §4.4, §4.5), which must be the signature's first
 * 32 bytes: the signature was aggregated over exactly those signers. For the secp256k1 suites the
 * list is checked for shape (sorted identifiers, valid group elements) only, as the ledger does.
 */
import { CustodyError } from '../../proto/errors.js';
import { bytesEqual, decode, fromHex, toHex } from '../../ledger/encoding.js';
import { artifactDigest } from '../../ledger/apply.js';
import { actFromCbor } from '../../ledger/events.js';
import { exportEvidenceBundle, type EvidenceBundle } from '../../ledger/receipts.js';
import type { GovernanceDecision, KeyScheme } from '../../ledger/decision.js';
import { KEY_SCHEMES } from '../../ledger/decision.js';
import type { ClusterState, OpRecord } from '../../ledger/state.js';
import { ed25519GroupCommitment, isGroupElement, type ListEntry } from '../../ledger/signing-set.js';
import { verifierKey, verifySignature } from './verify.js';

export interface SignerEntry {
  readonly node: string;
  readonly identifier: string;
  readonly hiding: string;
  readonly binding: string;
}

export interface SignatureBlock {
  readonly ciphersuite: KeyScheme;
  readonly groupPublicKey: string;
  readonly message: string;
  readonly signature: string;
  readonly signers?: readonly SignerEntry[];
}

export type Bundle = EvidenceBundle & { readonly signature?: SignatureBlock };

export function evidenceBundle(c: ClusterState, opId: string, approval: GovernanceDecision | null): Bundle {
  const op = c.ops[opId];
  if (op === undefined) throw new CustodyError('UNKNOWN_SESSION', `no act ${opId}`);
  return evidenceBundleOf(c, op, approval);
}

/** The bundle of an act read from memory or from the archive (an ended act keeps every receipt). */
export function evidenceBundleOf(c: ClusterState, op: OpRecord, approval: GovernanceDecision | null): Bundle {
  const base = exportEvidenceBundle(c.clusterId, op, approval);
  const k = c.keys[op.act.keyId];
  if (op.signature === null || k === undefined || k.publicKey === null) return base;
  return {
    ...base,
    signature: {
      ciphersuite: k.scheme, groupPublicKey: toHex(verifierKey(k.scheme, k.publicKey)), message: toHex(op.act.messageDigest), signature: toHex(op.signature),
      ...(op.signingSet === null ? {} : { signers: op.signingSet.commitments.map((m) => ({ node: m.nodeId, identifier: m.identifier, hiding: toHex(m.hiding), binding: toHex(m.binding) })) }),
    },
  };
}

export type SignatureVerdict = { readonly ok: true } | { readonly ok: false; readonly reason: 'BINDING_MISMATCH' | 'SIGNATURE_INVALID' | 'PAYLOAD_REJECTED'; readonly detail: string };

export function verifyBundleSignature(b: Bundle): SignatureVerdict {
  const s = b.signature;
  if (s === undefined) return { ok: false, reason: 'PAYLOAD_REJECTED', detail: 'the bundle carries no signature block' };
  try {
    if (!KEY_SCHEMES.includes(s.ciphersuite)) return { ok: false, reason: 'PAYLOAD_REJECTED', detail: `unknown ciphersuite ${String(s.ciphersuite)}` };
    const act = actFromCbor(decode(fromHex(b.act)));
    const message = fromHex(s.message);
    const signature = fromHex(s.signature);
    const pk = fromHex(s.groupPublicKey);
    if (!bytesEqual(message, act.messageDigest)) return { ok: false, reason: 'BINDING_MISMATCH', detail: 'the signed message is not the act\'s digest' };
    const pub = b.receipts.find((r) => r.type === 'PublicationReceipt');
    if (pub === undefined) return { ok: false, reason: 'BINDING_MISMATCH', detail: 'no PublicationReceipt: the signature was never released' };
    const r = decode(fromHex(pub.cbor)) as { signatureDigest?: unknown };
    if (!(r.signatureDigest instanceof Uint8Array) || !bytesEqual(r.signatureDigest, artifactDigest(signature))) {
      return { ok: false, reason: 'BINDING_MISMATCH', detail: 'the PublicationReceipt names another signature' };
    }
    // The verifier takes the external key form; re-derive nothing from it, verify as given.
    const ok = s.ciphersuite === 'taproot'
      ? verifySignature('taproot', Uint8Array.of(0x02, ...pk), message, signature)
      : verifySignature(s.ciphersuite, pk, message, signature);
    if (!ok) return { ok: false, reason: 'SIGNATURE_INVALID', detail: `the ${s.ciphersuite} signature does not verify under the group key` };
    return s.signers === undefined ? { ok: true } : checkSigners(s.ciphersuite, s.signers, pk, message, signature);
  } catch (e) {
    return { ok: false, reason: 'PAYLOAD_REJECTED', detail: `signature block: ${(e as Error).message}` };
  }
}

/** The signing set block: well formed, and for ed25519 the set the signature was aggregated over. */
function checkSigners(scheme: KeyScheme, signers: readonly SignerEntry[], pk: Uint8Array, message: Uint8Array, signature: Uint8Array): SignatureVerdict {
  if (!Array.isArray(signers) || signers.length === 0) return { ok: false, reason: 'PAYLOAD_REJECTED', detail: 'signers: a non-empty list' };
  const list: ListEntry[] = signers.map((m, i) => {
    if (typeof m?.node !== 'string' || typeof m.identifier !== 'string' || !/^[0-9a-f]{64}$/.test(m.identifier)) throw new Error(`signers[${i}]: node and a 32-byte hex identifier`);
    const e = { identifier: m.identifier, hiding: fromHex(m.hiding), binding: fromHex(m.binding) };
    if (!isGroupElement(scheme, e.hiding) || !isGroupElement(scheme, e.binding)) throw new Error(`signers[${i}]: a commitment is not a valid ${scheme} group element`);
    return e;
  });
  if (!list.every((e, i) => i === 0 || (list[i - 1] as ListEntry).identifier < e.identifier)) return { ok: false, reason: 'PAYLOAD_REJECTED', detail: 'signers: not sorted by identifier' };
  if (scheme === 'ed25519' && !bytesEqual(ed25519GroupCommitment(pk, message, list).R, signature.subarray(0, 32))) {
    return { ok: false, reason: 'BINDING_MISMATCH', detail: `the signature was not aggregated over the listed signers (${signers.map((m) => m.node).join(', ')})` };
  }
  return { ok: true };
}
