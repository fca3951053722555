/**
 * GovernanceDecision: one action, bound to a cluster, a governance epoch, a parent and an expiry,
 * carrying k-of-n Ed25519 approver signatures. This file is pure (no clock, no I/O) so the ledger
 * and the secret kernel verify decisions with the same code and reach the same answer.
 *
 * Public API (stable; kernel/ and node/ import it):
 *
 *   interface GovernanceDecision { body: DecisionBody; approvals: Approval[] }
 *   decisionSigningBytes(body): Uint8Array   exactly the bytes each approver signs:
 *                                            "custody-ledger/v1/decision" || 0x00 || CBOR(body)
 *   decisionCid(body): Uint8Array            sha256 of the signing bytes: the decision's identity.
 *                                            Signatures are not part of it, so adding or reordering
 *                                            approvals never changes what was decided.
 *   verifyDecision(decision, rosterInForce, clusterId, governanceEpoch, nowMs): DecisionVerdict
 *       ok: { ok: true, cid, approvers }   or   { ok: false, reason, detail }
 *       Checks, in this order (the first failure is reported):
 *         QUORUM_NOT_MET     no approvals at all
 *         PAYLOAD_REJECTED   malformed approvals or expiry (too many, an approver listed twice,
 *                            not 64 bytes, expiry not within decisionTtlMsMax after issue)
 *         BINDING_MISMATCH   body.clusterId !== clusterId
 *         STALE_EPOCH        body.governanceEpoch !== governanceEpoch
 *         DECISION_EXPIRED   nowMs >= body.expiresMs
 *         UNKNOWN_APPROVER   a signer is not on rosterInForce
 *         SIGNATURE_INVALID  any signature fails (one bad signature refuses the whole decision)
 *         ROLE_NOT_ALLOWED   a signer lacks a role that may approve this action
 *         QUORUM_NOT_MET     fewer valid signers than the quorum policy requires
 *       `nowMs` is the stamp of the log entry that carries the decision (the time it takes
 *       effect), never a host clock; a kernel re-verifying an activation later passes the stamp
 *       and epoch recorded with it. The parent binding (body.parentCid) depends on ledger state
 *       and is checked by the ledger's apply, not here.
 *   validateRoster(roster): { ok: true } | { ok: false, reason, detail }
 *   makeApproverKey(seed?): ApproverKey      test/demo helper: an Ed25519 key pair
 *   signDecision(body, keys): GovernanceDecision   test/demo helper: every key signs `body`
 *   rosterToCbor / decisionToCbor / decisionFromCbor   canonical value forms
 *
 * Signature scheme: Ed25519 (RFC 8032) verified with node:crypto (OpenSSL), chosen by measurement
 * (bench/ledger.ts, CPU time on a shared 2-core machine): node:crypto verifies one approver
 * signature in ~0.13 ms, @noble/curves in ~1.6 ms (12x). Verification is ~75-80% (2-of-3) and
 * ~80-85% (3-of-5) of the whole cost of applying a decision with node:crypto, and would be 98%
 * with noble: apply runs at ~2,900 / ~2,100 decisions/s instead of ~300 / ~200.
 * Every node must reach the same verdict for the state root to agree, so inputs where RFC 8032
 * implementations are known to differ are refused before either library sees them: a
 * non-canonical S (S >= L, RFC 8032 §5.1.7 step 1) and, at roster admission, public keys that are
 * non-canonical encodings or of small order. The noble verifier stays for the benchmark and for
 * the test that both libraries agree.
 */
import { createPublicKey, createPrivateKey, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import type { ReasonCode } from '../proto/reasons.js';
import { kernel as kernelLimits, ledger as limits, shareBackup as shareBackupLimits } from '../proto/limits.js';
import { type BackupRecipient, RECIPIENT_TEXT_BYTES_MAX } from './backup-policy.js';
import { type CborValue, digest, domainMessage, encode, toHex, bytesEqual } from './encoding.js';
import { NETWORKS, type Network } from './tx/types.js';
import { LEDGER_ASSETS } from './asset-table.js';
import type { PolicyDocument } from './policy-engine/types.js';
import { PolicyDocumentError, decodeDocument, encodeDocument } from './policy-engine/yaml.js';

// ------------------------------------------------------------------------------------------------
// Types
// ------------------------------------------------------------------------------------------------

/**
 * Approver roles. `governor` approves every action; `security` may only freeze or fence a node (an emergency stop
 * must not wait for a full governance quorum); `auditor` holds a key for attestations but its
 * signature never counts toward a quorum; `custodian` signs act requests (ledger/act-request.ts):
 * the only signature an act can start from, and one that never counts toward a governance quorum.
 * A custodian key holds no other role (validateRoster), so asking for an act and approving it are
 * always two keys. ApproversChanged adds and removes custodians like any approver: a custodian
 * removed (or its key replaced) can no longer start an act from the entry that applies the change.
 */
export type ApproverRole = 'governor' | 'security' | 'auditor' | 'custodian';
export const APPROVER_ROLES: readonly ApproverRole[] = ['governor', 'security', 'auditor', 'custodian'];

export interface Approver {
  readonly id: string;
  /** Raw 32-byte Ed25519 public key (RFC 8032 §5.1.5). */
  readonly publicKey: Uint8Array;
  readonly roles: readonly ApproverRole[];
}

/**
 * How many distinct approvers must sign. `threshold` applies to every action except
 * EmergencyFreeze, which needs `freezeThreshold` signers holding `governor` or `security`.
 */
export interface QuorumPolicy {
  readonly threshold: number;
  readonly freezeThreshold: number;
}

export interface ApproverRoster {
  readonly approvers: readonly Approver[];
  readonly quorum: QuorumPolicy;
}

export type KeyScheme = 'ed25519' | 'secp256k1' | 'taproot';
export const KEY_SCHEMES: readonly KeyScheme[] = ['ed25519', 'secp256k1', 'taproot'];

/** The test and demo network of a scheme's keys: Solana devnet, Bitcoin regtest, or raw messages only. */
export function networkForScheme(scheme: KeyScheme): Network {
  return scheme === 'ed25519' ? 'solana-devnet' : scheme === 'taproot' ? 'bitcoin-regtest' : 'none';
}

export interface NodeInfo {
  readonly id: string;
  /** Raw 32-byte Ed25519 identity key; signs the node's statements (DKG, KeyReady, fencing). */
  readonly identityKey: Uint8Array;
  /** The node's current passport: the binding under which its proposals are accepted. */
  readonly passport: string;
}

/** The one action a decision authorizes. `kind` names the cluster event it brings about. */
export type DecisionAction =
  /** `network`: the chain the key signs for; a transaction of another network is refused (ledger/tx). */
  | { readonly kind: 'DkgAuthorized'; readonly keyId: string; readonly scheme: KeyScheme; readonly network: Network; readonly threshold: number; readonly participants: readonly string[] }
  | { readonly kind: 'KeyActivated'; readonly keyId: string; readonly keyEpoch: number; readonly keyReadyCid: Uint8Array }
  | { readonly kind: 'KeyRefreshed'; readonly keyId: string; readonly keyEpoch: number }
  | { readonly kind: 'KeyReshared'; readonly keyId: string; readonly keyEpoch: number; readonly threshold: number; readonly participants: readonly string[] }
  | { readonly kind: 'KeyRetired'; readonly keyId: string }
  | { readonly kind: 'NodeAdded'; readonly node: NodeInfo }
  | { readonly kind: 'NodeRemoved'; readonly nodeId: string }
  | { readonly kind: 'NodeRebound'; readonly nodeId: string; readonly passport: string }
  /**
   * The node's passport `passport` (its current one) loses its standing: the ledger refuses its
   * proposals and statements, its kernel takes no part (SPLIT_BRAIN_FENCED), until a NodeRebound
   * decision gives the node a fresh passport. Quorum: EmergencyFreeze's (quorumFor).
   */
  | { readonly kind: 'NodeFenced'; readonly nodeId: string; readonly passport: string; readonly reason: string }
  | { readonly kind: 'ApproversChanged'; readonly roster: ApproverRoster }
  | { readonly kind: 'PolicyChanged'; readonly policy: PolicyDocument }
  | { readonly kind: 'EmergencyFreeze'; readonly reason: string }
  | { readonly kind: 'Unfreeze' }
  /** `displayHash`: the digest of the transaction display the approvers were shown (ledger/tx/display.ts). */
  | { readonly kind: 'ActApproved'; readonly opId: string; readonly actCid: Uint8Array; readonly displayHash: Uint8Array }
  | { readonly kind: 'PublicationReleased'; readonly opId: string; readonly actCid: Uint8Array; readonly displayHash: Uint8Array }
  /**
   * A certificate from the cluster CA is no longer accepted: `serial` is its serial number
   * (lowercase hex, no leading zeros, as X509Certificate.serialNumber prints it lowercased),
   * `operatorId` / `nodeId` the CN it names, `notAfterMs` its own notAfter. The ledger keeps the
   * revocation until its ledger clock passes notAfterMs (plus limits.revocationExpiryGraceMs): from
   * then on TLS itself refuses the certificate, so the entry can go (ledger/apply.ts).
   */
  | { readonly kind: 'OperatorRevoked'; readonly serial: string; readonly operatorId: string; readonly reason: string; readonly notAfterMs: number }
  | { readonly kind: 'NodeCertificateRevoked'; readonly serial: string; readonly nodeId: string; readonly reason: string; readonly notAfterMs: number }
  /**
   * The custodians every kernel encrypts its share backups to (ledger/backup-policy.ts): each an
   * age X25519 recipient with a label, 1 to shareBackup.recipientsMax of them. Replaces the policy
   * in force; a kernel encrypts to no other recipients (kernel/kernel.ts shareBackup).
   */
  | { readonly kind: 'BackupPolicy'; readonly recipients: readonly BackupRecipient[] }
  /**
   * The kernel of `nodeId` may import its share of `keyId` epoch `keyEpoch` (participant
   * `identifier`) recovered from the backup file whose sha256 is `backupCid` (kernel/recovery.ts).
   * `groupKey` and `verifyingShare` are what the kernel checks the share against: the ledger
   * requires the group key it committed for the epoch and a KeyBackedUp of that participant with
   * that cid; the verifying share is the approvers' word, read from the backup's metadata.
   */
  | {
      readonly kind: 'RecoveryAuthorized'; readonly nodeId: string; readonly keyId: string; readonly keyEpoch: number; readonly identifier: string;
      readonly backupCid: Uint8Array; readonly groupKey: Uint8Array; readonly verifyingShare: Uint8Array;
    }
  /**
   * The share backups of retired key `keyId`, epochs `epochs` (distinct, 1 to
   * shareBackup.destroyEpochsMax), are to be destroyed: KeyRetired keeps them, this decision ends
   * them. Every node deletes the backup files of those epochs it wrote; the ledger records the
   * decision per epoch and keeps the KeyBackedUp records (ledger/apply.ts backupsDestroyed).
   */
  | { readonly kind: 'BackupsDestroyed'; readonly keyId: string; readonly epochs: readonly number[] }
  /**
   * The kernels of `helpers` (at least t current participants of `keyId` epoch `keyEpoch`, node
   * ids) rebuild the share of `nodeId` under `identifier` with the Repairable Threshold Scheme
   * (kernel/repair.ts), with no backup: a participant that lost its share (its own identifier), or
   * a node enrolled as a new participant of the epoch (a new identifier). `groupKey` is the key the
   * ledger committed for the epoch; the kernels check the repair's public package against it. The
   * decision's cid names the repair: every package of it is bound to that cid.
   */
  | {
      readonly kind: 'RepairAuthorized'; readonly nodeId: string; readonly keyId: string; readonly keyEpoch: number; readonly identifier: string;
      readonly helpers: readonly string[]; readonly groupKey: Uint8Array;
    }
  /**
   * The witnesses (C2SP tlog-witness) whose cosignatures a checkpoint needs under the cluster's
   * trust policy: each a cosignature/v1 vkey as `custody witness keygen` prints it, `quorum` of
   * them (1 to their number; no witness and quorum 0 name none). Replaces the set in force; the
   * ledger checks the keys (ledger/apply.ts witnessesChanged) and the next trust policy block
   * names them (ledger/trust-chain.ts).
   */
  | { readonly kind: 'WitnessesChanged'; readonly witnesses: readonly string[]; readonly quorum: number };

export type DecisionKind = DecisionAction['kind'];

export interface DecisionBody {
  readonly clusterId: string;
  readonly governanceEpoch: number;
  /**
   * What this decision follows. For governance actions: the cid of the last applied governance
   * decision (the genesis cid before the first), so decisions form one chain and none can be
   * replayed or reordered. For ActApproved / PublicationReleased: the cid of the act approved.
   */
  readonly parentCid: Uint8Array;
  readonly action: DecisionAction;
  readonly issuedMs: number;
  readonly expiresMs: number;
}

export interface Approval {
  readonly approverId: string;
  /** Raw 64-byte Ed25519 signature over decisionSigningBytes(body). */
  readonly signature: Uint8Array;
}

export interface GovernanceDecision {
  readonly body: DecisionBody;
  readonly approvals: readonly Approval[];
}

export type Refusal = { readonly ok: false; readonly reason: ReasonCode; readonly detail: string };

export type DecisionVerdict =
  | { readonly ok: true; readonly cid: Uint8Array; readonly approvers: readonly string[] }
  | Refusal;

export const DECISION_DOMAIN = 'custody-ledger/v1/decision';

// ------------------------------------------------------------------------------------------------
// Canonical forms
// ------------------------------------------------------------------------------------------------

export function rosterToCbor(r: ApproverRoster): CborValue {
  return {
    approvers: r.approvers.map((a) => ({ id: a.id, publicKey: a.publicKey, roles: [...a.roles] })),
    quorum: { threshold: r.quorum.threshold, freezeThreshold: r.quorum.freezeThreshold },
  };
}

/**
 * The act policy as the ledger carries it (ClusterGenesis, PolicyChanged, the state): the bytes of
 * its canonical CBOR encoding (ledger/policy-engine/yaml.ts encodeDocument). A decision's
 * signers sign exactly these bytes, and two documents that mean the same encode the same.
 */
export function policyToCbor(p: PolicyDocument): CborValue {
  return encodeDocument(p);
}

export function nodeToCbor(n: NodeInfo): CborValue {
  return { id: n.id, identityKey: n.identityKey, passport: n.passport };
}

function actionToCbor(a: DecisionAction): CborValue {
  switch (a.kind) {
    case 'DkgAuthorized':
    case 'KeyReshared':
      return { ...a, participants: [...a.participants] };
    case 'NodeAdded':
      return { kind: a.kind, node: nodeToCbor(a.node) };
    case 'ApproversChanged':
      return { kind: a.kind, roster: rosterToCbor(a.roster) };
    case 'PolicyChanged':
      return { kind: a.kind, policy: policyToCbor(a.policy) };
    case 'BackupPolicy':
      return { kind: a.kind, recipients: a.recipients.map((r) => ({ label: r.label, recipient: r.recipient })) };
    case 'BackupsDestroyed':
      return { kind: a.kind, keyId: a.keyId, epochs: [...a.epochs] };
    case 'RepairAuthorized':
      return { ...a, helpers: [...a.helpers] };
    case 'WitnessesChanged':
      return { kind: a.kind, witnesses: [...a.witnesses], quorum: a.quorum };
    default:
      return { ...a };
  }
}

export function decisionBodyToCbor(b: DecisionBody): CborValue {
  return {
    clusterId: b.clusterId,
    governanceEpoch: b.governanceEpoch,
    parentCid: b.parentCid,
    action: actionToCbor(b.action),
    issuedMs: b.issuedMs,
    expiresMs: b.expiresMs,
  };
}

export function decisionToCbor(d: GovernanceDecision): CborValue {
  return {
    body: decisionBodyToCbor(d.body),
    approvals: d.approvals.map((a) => ({ approverId: a.approverId, signature: a.signature })),
  };
}

/** The bytes every approver signs: domain tag, a zero byte, then the canonical body. */
export function decisionSigningBytes(body: DecisionBody): Uint8Array {
  return domainMessage(DECISION_DOMAIN, encode(decisionBodyToCbor(body)));
}

export function decisionCid(body: DecisionBody): Uint8Array {
  return digest(DECISION_DOMAIN, encode(decisionBodyToCbor(body)));
}

// ------------------------------------------------------------------------------------------------
// Decoding from the canonical value form (strict: every field checked, nothing extra)
// ------------------------------------------------------------------------------------------------

/** Thrown by the shape readers below; callers turn it into a PAYLOAD_REJECTED refusal. */
export class ShapeError extends Error {
  override readonly name = 'ShapeError';
}

type Obj = { readonly [k: string]: CborValue | undefined };

export function obj(v: CborValue | undefined, what: string, keys: readonly string[], optional: readonly string[] = []): Obj {
  if (v === null || v === undefined || typeof v !== 'object' || v instanceof Uint8Array || Array.isArray(v)) {
    throw new ShapeError(`${what}: expected a map`);
  }
  const o = v as Obj;
  for (const k of Object.keys(o)) {
    if (!keys.includes(k) && !optional.includes(k)) throw new ShapeError(`${what}: unexpected field ${k}`);
  }
  for (const k of keys) if (o[k] === undefined) throw new ShapeError(`${what}: missing field ${k}`);
  return o;
}

export function str(v: CborValue | undefined, what: string, maxBytes: number = limits.idBytesMax): string {
  if (typeof v !== 'string') throw new ShapeError(`${what}: expected text`);
  if (v.length === 0 || Buffer.byteLength(v, 'utf8') > maxBytes) throw new ShapeError(`${what}: empty or longer than ${maxBytes} bytes`);
  return v;
}

export function int(v: CborValue | undefined, what: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) throw new ShapeError(`${what}: expected an integer in [${min}, ${max}]`);
  return v;
}

/** A non-negative amount; decoded integers are numbers when safe, so widen them to bigint. */
export function amount(v: CborValue | undefined, what: string): bigint {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  if (typeof v === 'bigint' && v >= 0n) return v;
  throw new ShapeError(`${what}: expected a non-negative integer`);
}

export function bytes(v: CborValue | undefined, what: string, len?: number): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new ShapeError(`${what}: expected bytes`);
  if (len !== undefined && v.length !== len) throw new ShapeError(`${what}: expected ${len} bytes`);
  return v;
}

export function arr(v: CborValue | undefined, what: string, max: number): readonly CborValue[] {
  if (!Array.isArray(v)) throw new ShapeError(`${what}: expected an array`);
  if (v.length > max) throw new ShapeError(`${what}: more than ${max} items`);
  return v as readonly CborValue[];
}

export function oneOf<T extends string>(v: CborValue | undefined, what: string, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) throw new ShapeError(`${what}: expected one of ${allowed.join(', ')}`);
  return v as T;
}

export function uniqueStrings(v: CborValue | undefined, what: string, max: number): string[] {
  const out = arr(v, what, max).map((x, i) => str(x, `${what}[${i}]`));
  if (new Set(out).size !== out.length) throw new ShapeError(`${what}: duplicate entries`);
  return out;
}

export function rosterFromCbor(v: CborValue | undefined): ApproverRoster {
  const o = obj(v, 'roster', ['approvers', 'quorum']);
  const q = obj(o.quorum, 'roster.quorum', ['threshold', 'freezeThreshold']);
  return {
    approvers: arr(o.approvers, 'roster.approvers', limits.approversMax).map((a, i) => {
      const ao = obj(a, `roster.approvers[${i}]`, ['id', 'publicKey', 'roles']);
      return {
        id: str(ao.id, 'approver.id'),
        publicKey: bytes(ao.publicKey, 'approver.publicKey', 32),
        roles: arr(ao.roles, 'approver.roles', APPROVER_ROLES.length).map((r) => oneOf(r, 'approver.role', APPROVER_ROLES)),
      };
    }),
    quorum: {
      threshold: int(q.threshold, 'quorum.threshold', 1, limits.approversMax),
      freezeThreshold: int(q.freezeThreshold, 'quorum.freezeThreshold', 1, limits.approversMax),
    },
  };
}

/** Strict: the bytes must be the canonical encoding of a valid document over the ledger's asset table. */
export function policyFromCbor(v: CborValue | undefined): PolicyDocument {
  const b = bytes(v, 'policy');
  try {
    return decodeDocument(b, LEDGER_ASSETS);
  } catch (e) {
    if (e instanceof PolicyDocumentError) throw new ShapeError(`policy: ${e.message}`);
    throw e;
  }
}

export function nodeFromCbor(v: CborValue | undefined): NodeInfo {
  const o = obj(v, 'node', ['id', 'identityKey', 'passport']);
  return { id: str(o.id, 'node.id'), identityKey: bytes(o.identityKey, 'node.identityKey', 32), passport: str(o.passport, 'node.passport') };
}

function actionFromCbor(v: CborValue | undefined): DecisionAction {
  const kind = (v !== null && typeof v === 'object' && !(v instanceof Uint8Array) && !Array.isArray(v)) ? (v as Obj).kind : undefined;
  switch (kind) {
    case 'DkgAuthorized': {
      const o = obj(v, 'action', ['kind', 'keyId', 'scheme', 'network', 'threshold', 'participants']);
      return { kind, keyId: str(o.keyId, 'keyId'), scheme: oneOf(o.scheme, 'scheme', KEY_SCHEMES), network: oneOf(o.network, 'network', NETWORKS), threshold: int(o.threshold, 'threshold', 1, limits.nodesMax), participants: uniqueStrings(o.participants, 'participants', limits.nodesMax) };
    }
    case 'KeyActivated': {
      const o = obj(v, 'action', ['kind', 'keyId', 'keyEpoch', 'keyReadyCid']);
      return { kind, keyId: str(o.keyId, 'keyId'), keyEpoch: int(o.keyEpoch, 'keyEpoch'), keyReadyCid: bytes(o.keyReadyCid, 'keyReadyCid', 32) };
    }
    case 'KeyRefreshed': {
      const o = obj(v, 'action', ['kind', 'keyId', 'keyEpoch']);
      return { kind, keyId: str(o.keyId, 'keyId'), keyEpoch: int(o.keyEpoch, 'keyEpoch') };
    }
    case 'KeyReshared': {
      const o = obj(v, 'action', ['kind', 'keyId', 'keyEpoch', 'threshold', 'participants']);
      return { kind, keyId: str(o.keyId, 'keyId'), keyEpoch: int(o.keyEpoch, 'keyEpoch'), threshold: int(o.threshold, 'threshold', 1, limits.nodesMax), participants: uniqueStrings(o.participants, 'participants', limits.nodesMax) };
    }
    case 'KeyRetired': {
      const o = obj(v, 'action', ['kind', 'keyId']);
      return { kind, keyId: str(o.keyId, 'keyId') };
    }
    case 'NodeAdded': {
      const o = obj(v, 'action', ['kind', 'node']);
      return { kind, node: nodeFromCbor(o.node) };
    }
    case 'NodeRemoved': {
      const o = obj(v, 'action', ['kind', 'nodeId']);
      return { kind, nodeId: str(o.nodeId, 'nodeId') };
    }
    case 'NodeRebound': {
      const o = obj(v, 'action', ['kind', 'nodeId', 'passport']);
      return { kind, nodeId: str(o.nodeId, 'nodeId'), passport: str(o.passport, 'passport') };
    }
    case 'NodeFenced': {
      const o = obj(v, 'action', ['kind', 'nodeId', 'passport', 'reason']);
      return { kind, nodeId: str(o.nodeId, 'nodeId'), passport: str(o.passport, 'passport'), reason: str(o.reason, 'reason', limits.textBytesMax) };
    }
    case 'ApproversChanged': {
      const o = obj(v, 'action', ['kind', 'roster']);
      return { kind, roster: rosterFromCbor(o.roster) };
    }
    case 'PolicyChanged': {
      const o = obj(v, 'action', ['kind', 'policy']);
      return { kind, policy: policyFromCbor(o.policy) };
    }
    case 'EmergencyFreeze': {
      const o = obj(v, 'action', ['kind', 'reason']);
      return { kind, reason: str(o.reason, 'reason', limits.textBytesMax) };
    }
    case 'Unfreeze':
      obj(v, 'action', ['kind']);
      return { kind };
    case 'ActApproved':
    case 'PublicationReleased': {
      const o = obj(v, 'action', ['kind', 'opId', 'actCid', 'displayHash']);
      return { kind, opId: str(o.opId, 'opId'), actCid: bytes(o.actCid, 'actCid', 32), displayHash: bytes(o.displayHash, 'displayHash', 32) };
    }
    case 'OperatorRevoked': {
      const o = obj(v, 'action', ['kind', 'serial', 'operatorId', 'reason', 'notAfterMs']);
      return { kind, serial: serialOf(o.serial), operatorId: str(o.operatorId, 'operatorId'), reason: str(o.reason, 'reason', limits.textBytesMax), notAfterMs: int(o.notAfterMs, 'notAfterMs') };
    }
    case 'NodeCertificateRevoked': {
      const o = obj(v, 'action', ['kind', 'serial', 'nodeId', 'reason', 'notAfterMs']);
      return { kind, serial: serialOf(o.serial), nodeId: str(o.nodeId, 'nodeId'), reason: str(o.reason, 'reason', limits.textBytesMax), notAfterMs: int(o.notAfterMs, 'notAfterMs') };
    }
    case 'BackupPolicy': {
      // Shape only (text, bounded): whether each is an age recipient is the ledger's verdict at
      // apply (BACKUP_POLICY_INVALID, ledger/backup-policy.ts), shared with the kernel.
      const o = obj(v, 'action', ['kind', 'recipients']);
      const recipients = arr(o.recipients, 'recipients', shareBackupLimits.recipientsMax).map((x, i) => {
        const ro = obj(x, `recipients[${i}]`, ['label', 'recipient']);
        return { label: str(ro.label, `recipients[${i}].label`, shareBackupLimits.labelBytesMax), recipient: str(ro.recipient, `recipients[${i}].recipient`, RECIPIENT_TEXT_BYTES_MAX) };
      });
      return { kind, recipients };
    }
    case 'RecoveryAuthorized': {
      const o = obj(v, 'action', ['kind', 'nodeId', 'keyId', 'keyEpoch', 'identifier', 'backupCid', 'groupKey', 'verifyingShare']);
      const point = (x: CborValue | undefined, what: string): Uint8Array => {
        const b = bytes(x, what);
        if (b.length < 32 || b.length > 33) throw new ShapeError(`${what}: expected a 32- or 33-byte group element`);
        return b;
      };
      const identifier = str(o.identifier, 'identifier', shareBackupLimits.identifierBytesMax);
      if (!/^[0-9a-f]+$/.test(identifier)) throw new ShapeError('identifier: expected lowercase hex');
      return {
        kind, nodeId: str(o.nodeId, 'nodeId'), keyId: str(o.keyId, 'keyId'), keyEpoch: int(o.keyEpoch, 'keyEpoch'), identifier,
        backupCid: bytes(o.backupCid, 'backupCid', 32), groupKey: point(o.groupKey, 'groupKey'), verifyingShare: point(o.verifyingShare, 'verifyingShare'),
      };
    }
    case 'BackupsDestroyed': {
      const o = obj(v, 'action', ['kind', 'keyId', 'epochs']);
      const epochs = arr(o.epochs, 'epochs', shareBackupLimits.destroyEpochsMax).map((x, i) => int(x, `epochs[${i}]`));
      if (epochs.length === 0) throw new ShapeError('epochs: at least one');
      if (new Set(epochs).size !== epochs.length) throw new ShapeError('epochs: an epoch is named twice');
      return { kind, keyId: str(o.keyId, 'keyId'), epochs };
    }
    case 'RepairAuthorized': {
      const o = obj(v, 'action', ['kind', 'nodeId', 'keyId', 'keyEpoch', 'identifier', 'helpers', 'groupKey']);
      const identifier = str(o.identifier, 'identifier', shareBackupLimits.identifierBytesMax);
      if (!/^[0-9a-f]+$/.test(identifier)) throw new ShapeError('identifier: expected lowercase hex');
      const groupKey = bytes(o.groupKey, 'groupKey');
      if (groupKey.length < 32 || groupKey.length > 33) throw new ShapeError('groupKey: expected a 32- or 33-byte group element');
      return {
        kind, nodeId: str(o.nodeId, 'nodeId'), keyId: str(o.keyId, 'keyId'), keyEpoch: int(o.keyEpoch, 'keyEpoch'), identifier,
        helpers: arr(o.helpers, 'helpers', kernelLimits.repairHelpersMax).map((h, i) => str(h, `helpers[${i}]`)), groupKey,
      };
    }
    case 'WitnessesChanged': {
      // Shape only (bounded text): whether each is a witness key is the ledger's verdict at apply.
      const o = obj(v, 'action', ['kind', 'witnesses', 'quorum']);
      return { kind, witnesses: arr(o.witnesses, 'witnesses', limits.witnessesMax).map((x, i) => str(x, `witnesses[${i}]`, limits.textBytesMax)), quorum: int(o.quorum, 'quorum') };
    }
    default:
      throw new ShapeError(`action: unknown kind ${String(kind)}`);
  }
}

/**
 * A certificate serial number in the one form every comparison uses: lowercase hex without
 * leading zeros (RFC 5280 §4.1.2.2 allows up to 20 octets: at most 40 digits).
 */
export const SERIAL_RE = /^(0|[1-9a-f][0-9a-f]{0,39})$/;

/** The canonical form of a serial as X509Certificate.serialNumber or `openssl x509 -serial` print it. */
export function canonicalSerial(s: string): string {
  const t = s.trim().toLowerCase().replace(/^0x/, '').replace(/:/g, '').replace(/^0+(?=.)/, '');
  if (!SERIAL_RE.test(t)) throw new ShapeError(`serial: "${s}" is not a certificate serial number in hex (at most 20 octets)`);
  return t;
}

function serialOf(v: CborValue | undefined): string {
  if (typeof v !== 'string' || !SERIAL_RE.test(v)) throw new ShapeError('serial: expected lowercase hex without leading zeros, at most 40 digits');
  return v;
}

export function decisionBodyFromCbor(v: CborValue | undefined): DecisionBody {
  const o = obj(v, 'decision.body', ['clusterId', 'governanceEpoch', 'parentCid', 'action', 'issuedMs', 'expiresMs']);
  return {
    clusterId: str(o.clusterId, 'clusterId'),
    governanceEpoch: int(o.governanceEpoch, 'governanceEpoch'),
    parentCid: bytes(o.parentCid, 'parentCid', 32),
    action: actionFromCbor(o.action),
    issuedMs: int(o.issuedMs, 'issuedMs'),
    expiresMs: int(o.expiresMs, 'expiresMs'),
  };
}

/** Reads a decision from its canonical value form; throws ShapeError on any deviation. */
export function decisionFromCbor(v: CborValue | undefined): GovernanceDecision {
  const o = obj(v, 'decision', ['body', 'approvals']);
  return {
    body: decisionBodyFromCbor(o.body),
    approvals: arr(o.approvals, 'decision.approvals', limits.approversMax).map((a, i) => {
      const ao = obj(a, `decision.approvals[${i}]`, ['approverId', 'signature']);
      return { approverId: str(ao.approverId, 'approverId'), signature: bytes(ao.signature, 'signature', 64) };
    }),
  };
}

// ------------------------------------------------------------------------------------------------
// Ed25519
// ------------------------------------------------------------------------------------------------

/** The group order L (RFC 8032 §5.1). */
const ED25519_L = ed25519.Point.Fn.ORDER;

// SubjectPublicKeyInfo and PKCS#8 prefixes for raw Ed25519 keys (RFC 8410 §4, §7).
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** Parsed public keys, keyed by hex. A memo only: it never changes what verify returns. */
const keyObjects = new Map<string, KeyObject>();
const KEY_CACHE_MAX = 4096;

function publicKeyObject(pk: Uint8Array): KeyObject {
  const hex = toHex(pk);
  let k = keyObjects.get(hex);
  if (k === undefined) {
    k = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, pk]), format: 'der', type: 'spki' });
    if (keyObjects.size >= KEY_CACHE_MAX) keyObjects.clear();
    keyObjects.set(hex, k);
  }
  return k;
}

/** S as the little-endian integer in the second half of the signature. */
function sIsCanonical(sig: Uint8Array): boolean {
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i] as number);
  return s < ED25519_L;
}

/**
 * Ed25519 verification used by the ledger and the kernel. `pk` must already have passed
 * `isAcceptablePublicKey` (rosters and node identities are checked when they enter the ledger).
 */
export function ed25519Verify(sig: Uint8Array, msg: Uint8Array, pk: Uint8Array): boolean {
  if (sig.length !== 64 || pk.length !== 32 || !sIsCanonical(sig)) return false;
  return nodeVerify(null, msg, publicKeyObject(pk), sig);
}

/** Same contract with @noble/curves (bench/ledger.ts compares the two). */
export function ed25519VerifyNoble(sig: Uint8Array, msg: Uint8Array, pk: Uint8Array): boolean {
  if (sig.length !== 64 || pk.length !== 32 || !sIsCanonical(sig)) return false;
  return ed25519.verify(sig, msg, pk, { zip215: false });
}

/** A canonical point encoding that is not of small order (no key any forger can satisfy). */
export function isAcceptablePublicKey(pk: Uint8Array): boolean {
  if (pk.length !== 32) return false;
  try {
    const p = ed25519.Point.fromBytes(pk, false);
    return !p.isSmallOrder() && bytesEqual(p.toBytes(), pk);
  } catch {
    return false;
  }
}

// ------------------------------------------------------------------------------------------------
// Verification
// ------------------------------------------------------------------------------------------------

function refuse(reason: ReasonCode, detail: string): Refusal {
  return { ok: false, reason, detail };
}

/**
 * Roles whose signature counts toward the quorum of an action, and the count needed.
 *
 * NodeFenced takes EmergencyFreeze's quorum (`freezeThreshold` signers holding governor or
 * security). Why that is safe: like a freeze, fencing only takes standing away. A fenced node's
 * proposals and statements are refused and its kernel takes no part, so fencing can stop signing
 * (at worst, fencing enough nodes that fewer than a key's threshold remain), never make a
 * signature happen: every signature still needs a threshold of kernels that each verify the act
 * themselves. Who can do what: `freezeThreshold` approvers can already stop every signature with
 * a freeze; fencing gives them nothing more than stopping some. Undoing either needs the full
 * governor quorum (Unfreeze, NodeRebound), so a rogue freezer's outage is ended by the majority
 * of governors, not by the freezer. Why not the full quorum: fencing is what operators do while a
 * host is being compromised (equivocation seen, a leaked identity key); it must not wait for the
 * whole governance quorum to assemble, as a freeze does not.
 */
export function quorumFor(kind: DecisionKind, q: QuorumPolicy): { roles: readonly ApproverRole[]; needed: number } {
  if (kind === 'EmergencyFreeze' || kind === 'NodeFenced') return { roles: ['governor', 'security'], needed: q.freezeThreshold };
  return { roles: ['governor'], needed: q.threshold };
}

/** A roster may enter the ledger (genesis or ApproversChanged) only if it can ever reach quorum. */
export function validateRoster(r: ApproverRoster): { ok: true } | Refusal {
  if (r.approvers.length === 0 || r.approvers.length > limits.approversMax) {
    return refuse('PAYLOAD_REJECTED', `roster needs 1..${limits.approversMax} approvers`);
  }
  const ids = new Set<string>();
  const keys = new Set<string>();
  for (const a of r.approvers) {
    if (ids.has(a.id)) return refuse('PAYLOAD_REJECTED', `approver ${a.id} listed twice`);
    ids.add(a.id);
    const hex = toHex(a.publicKey);
    if (keys.has(hex)) return refuse('PAYLOAD_REJECTED', `approver ${a.id} shares a key with another approver`);
    keys.add(hex);
    if (!isAcceptablePublicKey(a.publicKey)) return refuse('PAYLOAD_REJECTED', `approver ${a.id} has an unacceptable public key`);
    if (new Set(a.roles).size !== a.roles.length) return refuse('PAYLOAD_REJECTED', `approver ${a.id} lists a role twice`);
    if (a.roles.includes('custodian') && a.roles.length > 1) return refuse('PAYLOAD_REJECTED', `custodian ${a.id} holds another role: the key that asks for an act never approves one`);
  }
  const governors = r.approvers.filter((a) => a.roles.includes('governor')).length;
  const freezers = r.approvers.filter((a) => a.roles.includes('governor') || a.roles.includes('security')).length;
  // A threshold of 1 would let one stolen key rule the cluster; a threshold above the number of
  // eligible signers would lock governance forever. Both are refused at the door.
  if (r.quorum.threshold < 2 || r.quorum.threshold > governors) {
    return refuse('PAYLOAD_REJECTED', `threshold ${r.quorum.threshold} must be in [2, ${governors}] governors`);
  }
  if (r.quorum.freezeThreshold < 1 || r.quorum.freezeThreshold > freezers) {
    return refuse('PAYLOAD_REJECTED', `freezeThreshold ${r.quorum.freezeThreshold} must be in [1, ${freezers}]`);
  }
  return { ok: true };
}

/**
 * Verifies a decision against the roster in force. Pure: same inputs, same verdict, on every node
 * and in every kernel. See the file header for the order of checks.
 */
export function verifyDecision(
  decision: GovernanceDecision,
  rosterInForce: ApproverRoster,
  clusterId: string,
  governanceEpoch: number,
  nowMs: number,
): DecisionVerdict {
  const { body, approvals } = decision;
  if (approvals.length === 0) return refuse('QUORUM_NOT_MET', 'the decision carries no approvals');
  if (approvals.length > limits.approversMax) return refuse('PAYLOAD_REJECTED', `more than ${limits.approversMax} approvals`);
  if (body.expiresMs <= body.issuedMs || body.expiresMs - body.issuedMs > limits.decisionTtlMsMax) {
    return refuse('PAYLOAD_REJECTED', `expiry must fall within ${limits.decisionTtlMsMax} ms after issue`);
  }
  const seen = new Set<string>();
  for (const a of approvals) {
    if (seen.has(a.approverId)) return refuse('PAYLOAD_REJECTED', `approver ${a.approverId} signed twice`);
    seen.add(a.approverId);
    if (a.signature.length !== 64) return refuse('PAYLOAD_REJECTED', `approval by ${a.approverId} is not a 64-byte signature`);
  }
  if (body.clusterId !== clusterId) return refuse('BINDING_MISMATCH', `decision is for cluster ${body.clusterId}, not ${clusterId}`);
  if (body.governanceEpoch !== governanceEpoch) {
    return refuse('STALE_EPOCH', `decision is for governance epoch ${body.governanceEpoch}; the epoch in force is ${governanceEpoch}`);
  }
  if (nowMs >= body.expiresMs) return refuse('DECISION_EXPIRED', `decision expired at ${body.expiresMs}, now ${nowMs}`);

  const byId = new Map(rosterInForce.approvers.map((a) => [a.id, a] as const));
  const signers: Approver[] = [];
  for (const a of approvals) {
    const approver = byId.get(a.approverId);
    if (approver === undefined) return refuse('UNKNOWN_APPROVER', `${a.approverId} is not on the roster of epoch ${governanceEpoch}`);
    signers.push(approver);
  }
  let enc: Uint8Array;
  try {
    enc = encode(decisionBodyToCbor(body));
  } catch (e) {
    return refuse('PAYLOAD_REJECTED', `decision body has no canonical encoding: ${(e as Error).message}`);
  }
  const msg = domainMessage(DECISION_DOMAIN, enc);
  for (let i = 0; i < approvals.length; i++) {
    const a = approvals[i] as Approval;
    const approver = signers[i] as Approver;
    if (!ed25519Verify(a.signature, msg, approver.publicKey)) {
      return refuse('SIGNATURE_INVALID', `the signature of ${a.approverId} does not verify`);
    }
  }
  const { roles, needed } = quorumFor(body.action.kind, rosterInForce.quorum);
  for (const s of signers) {
    if (!s.roles.some((r) => roles.includes(r))) {
      return refuse('ROLE_NOT_ALLOWED', `${s.id} (${s.roles.join(', ') || 'no role'}) may not approve ${body.action.kind}`);
    }
  }
  if (signers.length < needed) {
    return refuse('QUORUM_NOT_MET', `${signers.length} of ${needed} required approvals for ${body.action.kind}`);
  }
  return { ok: true, cid: digest(DECISION_DOMAIN, enc), approvers: signers.map((s) => s.id) };
}

// ------------------------------------------------------------------------------------------------
// Helpers for tests, the demo and operator tooling (never on the apply path)
// ------------------------------------------------------------------------------------------------

export interface ApproverKey {
  readonly id: string;
  /** 32-byte RFC 8032 private key seed. Keep secret. */
  readonly secretKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

/**
 * An approver key pair. With `seed` (32 bytes) the pair is reproducible (tests, fixtures);
 * without it the seed comes from the platform CSPRNG.
 */
export function makeApproverKey(id: string, seed?: Uint8Array): ApproverKey {
  const { secretKey, publicKey } = ed25519.keygen(seed);
  return { id, secretKey, publicKey };
}

/** Signs `msg` with a raw 32-byte Ed25519 seed (node:crypto; deterministic per RFC 8032). */
export function ed25519Sign(msg: Uint8Array, secretKey: Uint8Array): Uint8Array {
  const hex = toHex(secretKey);
  let key = privateKeys.get(hex);
  if (key === undefined) {
    key = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, secretKey]), format: 'der', type: 'pkcs8' });
    if (privateKeys.size >= KEY_CACHE_MAX) privateKeys.clear();
    privateKeys.set(hex, key);
  }
  return new Uint8Array(nodeSign(null, msg, key));
}

/** Parsed signing keys of the helpers above (tests and the demo sign many times with few keys). */
const privateKeys = new Map<string, KeyObject>();

/** Every key in `keys` signs `body`; approvals keep the order of `keys`. */
export function signDecision(body: DecisionBody, keys: readonly ApproverKey[]): GovernanceDecision {
  const msg = decisionSigningBytes(body);
  return { body, approvals: keys.map((k) => ({ approverId: k.id, signature: ed25519Sign(msg, k.secretKey) })) };
}

/** Adds signatures to an existing decision (approvers sign one at a time in a ceremony). */
export function addApprovals(d: GovernanceDecision, keys: readonly ApproverKey[]): GovernanceDecision {
  return { body: d.body, approvals: [...d.approvals, ...signDecision(d.body, keys).approvals] };
}
