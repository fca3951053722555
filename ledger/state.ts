/**
 * The whole ledger state, its canonical form, the state root and snapshot / restore.
 *
 *   emptyState(): LedgerState            before genesis
 *   stateRoot(state): Uint8Array         sha256("custody-ledger/v1/state" || 0 || CBOR(state)):
 *                                        equal on every node that applied the same log
 *   snapshot(state): Uint8Array          the canonical CBOR of the state
 *   restore(bytes): LedgerState          strict inverse of snapshot (refuses anything else)
 *
 * The state holds only values of the canonical data model (maps with text keys, arrays, byte
 * strings, integers, text, booleans, null), so its canonical encoding is itself; amounts are
 * bigint throughout. Maps are keyed by ids and persistent (ledger/pmap.ts): apply shares what it
 * does not change with the previous state. Nothing depends on property order: the encoding sorts
 * keys, and apply never iterates a map to decide anything order-dependent.
 */
import { ledger as limits, shareBackup as shareBackupLimits, tlog as tlogLimits, tx as txLimits } from '../proto/limits.js';
import { type BackupPolicyRecord, type BackupRecord, type DestroyedRecord, type DrillRecord, type RecoveryRecord, backupRecordKey, drillRecordKey, validateBackupRecipients, type RepairRecord } from './backup-policy.js';
import { isReasonCode, type ReasonCode } from '../proto/reasons.js';
import { type CborValue, decode, digest, encode } from './encoding.js';
import {
  type ApproverRoster, type GovernanceDecision, type KeyScheme, KEY_SCHEMES, ShapeError, decisionFromCbor, decisionToCbor,
  obj, str, int, bytes, arr, oneOf, uniqueStrings, policyFromCbor, policyToCbor, rosterFromCbor, rosterToCbor, SERIAL_RE,
} from './decision.js';
import { type Act, type SignedStatement, type SigningSetMember, actFromCbor, actToCbor, memberFromCbor, memberToCbor, statementFromCbor, statementToCbor } from './events.js';
import { CustodyError } from '../proto/errors.js';
import { type SignedActRequest, actRequestFromCbor, actRequestToCbor } from './act-request.js';
import { pmapFrom } from './pmap.js';
import { NETWORKS, type KeyContext, type Network } from './tx/types.js';
import { ACTION_KINDS, type ActionKind, type PolicyDocument } from './policy-engine/types.js';
import { type PolicyHistory, historyFromCbor, historyToCbor, horizonsOf } from './policy-engine/history.js';

/** Count and running hash of the ended acts (ledger/archive.ts archiveLink). */
export interface ArchiveHead {
  readonly count: number;
  readonly head: Uint8Array;
}

export type NodeStatus = 'active' | 'fenced' | 'removed';
export const NODE_STATUSES: readonly NodeStatus[] = ['active', 'fenced', 'removed'];

export interface NodeRecord {
  readonly id: string;
  readonly identityKey: Uint8Array;
  readonly passport: string;
  readonly status: NodeStatus;
  /** Every passport ever fenced for this node; none of them is accepted again. */
  readonly fencedPassports: readonly string[];
  /** Set by validated EquivocationEvidence; cleared only by a NodeRebound decision. */
  readonly equivocated: boolean;
}

/**
 * The voters of the roster, sorted by id: every node not removed (fenced nodes still count). One
 * definition for everything a majority of voters vouches for: cosigned checkpoints
 * (node/checkpoints.ts), which the kernels follow, and attested clock readings (ledger/clock-reading.ts).
 */
export function rosterVoters(nodes: { readonly [id: string]: NodeRecord }): NodeRecord[] {
  return Object.values(nodes).filter((n) => n.status !== 'removed').sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Per key epoch: the ceremony (DKG, refresh or reshare), its publication and activation. */
export type EpochStatus = 'ceremony' | 'published' | 'active' | 'superseded' | 'aborted' | 'retired';
export const EPOCH_STATUSES: readonly EpochStatus[] = ['ceremony', 'published', 'active', 'superseded', 'aborted', 'retired'];

export interface EpochRecord {
  readonly epoch: number;
  readonly threshold: number;
  readonly participants: readonly string[];
  readonly authorizedBy: Uint8Array;
  readonly status: EpochStatus;
  /** node id -> cid of its DkgRound1Published statement. */
  readonly round1: { readonly [nodeId: string]: Uint8Array };
  /** node id -> cid of its KeyReady statement and the group key it states. */
  readonly ready: { readonly [nodeId: string]: { readonly statementCid: Uint8Array; readonly groupKey: Uint8Array } };
  readonly keyReadyCid: Uint8Array | null;
  readonly groupKey: Uint8Array | null;
  readonly activatedBy: Uint8Array | null;
  /**
   * A refresh / reshare epoch: the holders of the epoch redealt that stated RedealReady, in log
   * order, at most its threshold; the first t of them are the dealers (ledger/dealer-set.ts).
   * Absent until the first; the canonical form leaves it out, so other epochs keep their root.
   */
  readonly dealersReady?: readonly string[];
}

export type KeyStatus = 'pending' | 'active' | 'retired';
export const KEY_STATUSES: readonly KeyStatus[] = ['pending', 'active', 'retired'];

export interface KeyRecord {
  readonly id: string;
  readonly scheme: KeyScheme;
  /** The chain the key signs for (DkgAuthorized): its acts' transactions must belong to it. */
  readonly network: Network;
  readonly status: KeyStatus;
  readonly activeEpoch: number | null;
  /** The group public key, fixed by the first published epoch; refresh and reshare keep it. */
  readonly publicKey: Uint8Array | null;
  /** Epoch number (decimal text) -> record. */
  readonly epochs: { readonly [epoch: string]: EpochRecord };
}

export type OpState = 'Submitted' | 'Admitted' | 'PendingRemote' | 'Executed' | 'Published' | 'Settled' | 'Denied' | 'Aborted';
export const OP_STATES: readonly OpState[] = ['Submitted', 'Admitted', 'PendingRemote', 'Executed', 'Published', 'Settled', 'Denied', 'Aborted'];
export const TERMINAL_OP_STATES: readonly OpState[] = ['Settled', 'Denied', 'Aborted'];

/** The transitions of a signing act (DESIGN §3). */
export const OP_TRANSITIONS: { readonly [s in OpState]: readonly OpState[] } = {
  Submitted: ['Admitted', 'Denied'],
  Admitted: ['PendingRemote', 'Aborted'],
  PendingRemote: ['Executed', 'Aborted'],
  Executed: ['Published', 'Aborted'],
  Published: ['Settled'],
  Settled: [],
  Denied: [],
  Aborted: [],
};

export interface OpRecord {
  readonly opId: string;
  /** cid of the submission (act, approval, proposer): an idempotency key re-used with other content conflicts. */
  readonly submissionCid: Uint8Array;
  readonly act: Act;
  readonly actCid: Uint8Array;
  readonly nodeId: string;
  readonly state: OpState;
  readonly reason: ReasonCode | null;
  readonly history: readonly { readonly state: OpState; readonly index: number }[];
  readonly approvalCid: Uint8Array | null;
  /**
   * The approval the act was submitted with, approver signatures included (its cid is
   * approvalCid): kept with the act so its evidence carries the signatures wherever the act goes,
   * in memory while in flight and in the archive (and every snapshot, fetch and backup of it) once
   * it ended, bounded by one approval per act.
   */
  readonly approval: GovernanceDecision | null;
  /**
   * The custodian's signed request the act is (ledger/act-request.ts), kept with it wherever it
   * goes like the approval, so its evidence shows who asked for it and proves it; null only for
   * an act Denied REQUEST_UNSIGNED.
   */
  readonly request: SignedActRequest | null;
  readonly permitId: Uint8Array | null;
  /** The permit's one signing set (ActSigningSetFixed), null until it is fixed. */
  readonly signingSet: SigningSetRecord | null;
  readonly releasedBy: Uint8Array | null;
  /** One signature per message of the act's transaction, in order (ActExecuted); null before. */
  readonly signatures: readonly Uint8Array[] | null;
  readonly confirmation: string | null;
  /** Hash-linked receipts, each a canonical value (ledger/receipts.ts). */
  readonly receipts: readonly CborValue[];
  /**
   * The policy's verdict on the act, kept with it wherever it goes (followers, snapshots, the
   * archive, backups): set when the rules decided its admission (Admitted, or Denied by a rule or
   * by default deny); null when a check outside the rules decided (frozen, key, TX_* refusals,
   * approval binding).
   */
  readonly rule: RuleRecord | null;
}

/** The rule that decided an act's admission, as the engine answered on every node. */
export interface RuleRecord {
  /** The rule's id; null when no rule matched (default deny) or the facts were refused before any rule. */
  readonly id: string | null;
  /**
   * The verdict's action: the rule's own, except that a rule whose rolling window or lifetime cap
   * the act would exceed blocks (BLOCK with that rule's id), and default deny is BLOCK.
   */
  readonly action: ActionKind;
  /** The engine's explanation, clipped to ruleDetailBytesMax bytes (clipRuleDetail). */
  readonly detail: string;
}

const CLIP_MARK = '\u2026';

/**
 * `detail` in at most limits.ruleDetailBytesMax UTF-8 bytes: unchanged when it fits, else the
 * longest prefix of whole code points that fits with a trailing ellipsis. A pure function of the
 * text, so every replica records the same bytes.
 */
export function clipRuleDetail(detail: string): string {
  const max = limits.ruleDetailBytesMax;
  if (Buffer.byteLength(detail, 'utf8') <= max) return detail;
  const room = max - Buffer.byteLength(CLIP_MARK, 'utf8');
  let used = 0;
  let out = '';
  for (const ch of detail) {
    const n = Buffer.byteLength(ch, 'utf8');
    if (used + n > room) break;
    used += n;
    out += ch;
  }
  return out + CLIP_MARK;
}

export function ruleToCbor(r: RuleRecord): CborValue {
  return { id: r.id, action: r.action, detail: r.detail };
}

export function ruleFromCbor(v: CborValue): RuleRecord {
  const o = obj(v, 'op.rule', ['id', 'action', 'detail']);
  const detail = o.detail;
  if (typeof detail !== 'string' || Buffer.byteLength(detail, 'utf8') > limits.ruleDetailBytesMax) {
    throw new ShapeError(`op.rule.detail: expected text of at most ${limits.ruleDetailBytesMax} bytes`);
  }
  return { id: nullable(o.id, (x) => str(x, 'op.rule.id')), action: oneOf(o.action, 'op.rule.action', ACTION_KINDS), detail };
}

export interface SigningSetRecord {
  /** Raft index of the ActSigningSetFixed entry. */
  readonly index: number;
  /** The commitment list, sorted by identifier (RFC 9591 §5.2). */
  readonly commitments: readonly SigningSetMember[];
}

export interface PermitRecord {
  readonly opId: string;
  readonly nodeId: string;
  readonly keyId: string;
  readonly keyEpoch: number;
  readonly messageDigest: Uint8Array;
  readonly index: number;
  readonly used: boolean;
}

export interface StatementRecord {
  readonly statement: SignedStatement;
}

export interface GovernanceState {
  readonly epoch: number;
  /** cid of the last applied governance decision (the genesis cid before the first). */
  readonly headCid: Uint8Array;
  readonly roster: ApproverRoster;
  /** The act policy in force: rules, first match, default deny (ledger/policy-engine). */
  readonly policy: PolicyDocument;
  readonly frozen: null | { readonly reason: string; readonly decisionCid: Uint8Array; readonly sinceIndex: number };
  /**
   * Certificates revoked by decision (OperatorRevoked, NodeCertificateRevoked), in the order they
   * were revoked, at most limits.revokedMax. Absent and empty mean the same; the canonical form
   * leaves an empty list out, so states without revocations keep the root they always had.
   */
  readonly revoked?: readonly RevocationRecord[];
  /**
   * The BackupPolicy decision in force (ledger/backup-policy.ts): the custodians share backups
   * are encrypted to. Absent until the first; the canonical form leaves it out while absent, so
   * states without one keep the root they always had.
   */
  readonly backupPolicy?: BackupPolicyRecord;
}

export const REVOKED_HOLDERS = ['operator', 'node'] as const;

export interface RevocationRecord {
  /** Canonical serial (ledger/decision.ts canonicalSerial). */
  readonly serial: string;
  readonly holder: (typeof REVOKED_HOLDERS)[number];
  /** The operator id or node id the certificate names. */
  readonly id: string;
  readonly reason: string;
  readonly notAfterMs: number;
  readonly decisionCid: Uint8Array;
  readonly sinceIndex: number;
}

/** The revocations in force of a governance state. */
export function revocationsOf(g: GovernanceState): readonly RevocationRecord[] {
  return g.revoked ?? [];
}

/** The revocation of certificate `serial` held by a `holder`, if the ledger holds one. */
export function revocationOf(g: GovernanceState, holder: RevocationRecord['holder'], serial: string): RevocationRecord | undefined {
  return revocationsOf(g).find((r) => r.holder === holder && r.serial === serial);
}

/**
 * Fencing reports not yet at a majority (ledger/apply.ts fencing): the target node, the passport
 * reported (always the target's current one when recorded), and the distinct voters that reported
 * it, sorted. At most one per target node, at most limits.fenceReportsMax.
 */
export interface FenceReport {
  readonly nodeId: string;
  readonly passport: string;
  readonly reporters: readonly string[];
  readonly sinceIndex: number;
}

export interface ClusterState {
  readonly clusterId: string;
  readonly genesisCid: Uint8Array;
  readonly governance: GovernanceState;
  readonly nodes: { readonly [id: string]: NodeRecord };
  readonly keys: { readonly [id: string]: KeyRecord };
  /**
   * Acts by idempotency key. With an archive (ledger/archive.ts) only acts in flight stay here: an
   * act that ends (Settled, Denied, Aborted) moves to the archive with its permit. Without one,
   * ended acts stay too; the state root counts them through `archived` either way.
   */
  readonly ops: { readonly [opId: string]: OpRecord };
  /** Acts ever journaled (in flight, ended, archived). */
  readonly opCount: number;
  /** Acts not yet ended: what `ledger.actsInFlightMax` bounds. */
  readonly inFlight: number;
  /** The running accumulator over every ended act, in the order they ended (ledger/archive.ts). */
  readonly archived: ArchiveHead;
  /** Ended acts by final state (Settled, Denied, Aborted): operators' counts, archive or not. */
  readonly endedByState: { readonly [state: string]: number };
  /** hex(permit id) -> permit (with an archive: permits of acts in flight only). */
  readonly permits: { readonly [permitHex: string]: PermitRecord };
  /**
   * The admissions the policy's rolling windows and lifetime caps read (policy-engine/history.ts):
   * per scope pruned to the longest window of that scope the policy in force uses, so it stays
   * bounded; lifetime sums per (key, asset) and per asset.
   */
  readonly policyHistory: PolicyHistory;
  /**
   * consumedKey(key, epoch, node) -> the highest nonce counter of that node in the signing set of
   * an executed act of that key epoch: what the ledger proves the node's kernel consumed, kept
   * here because the executed acts themselves may have moved to the archive.
   */
  readonly consumed: { readonly [keyEpochNode: string]: number };
  /** hex(slot id) -> the first statement a node signed for that slot. */
  readonly statements: { readonly [slotHex: string]: StatementRecord };
  /** hex(evidence cid) -> the offender, for operator review. */
  readonly evidence: { readonly [evidenceHex: string]: { readonly nodeId: string; readonly kind: string; readonly index: number } };
  /**
   * Pending fencing reports, sorted by target node id. Absent and empty mean the same; the
   * canonical form leaves an empty list out, so states without pending reports keep their root.
   */
  readonly fenceReports?: readonly FenceReport[];
  /**
   * backupRecordKey(key, epoch, node) -> the last KeyBackedUp of that participant of that key
   * epoch (ledger/backup-policy.ts). At most one per participant of an epoch the ledger holds.
   * Absent and empty mean the same; the canonical form leaves an empty map out.
   */
  readonly backups?: { readonly [keyEpochNode: string]: BackupRecord };
  /** drillRecordKey(key, epoch) -> the last BackupDrilled of that key epoch (absent: none yet). */
  readonly drills?: { readonly [keyEpoch: string]: DrillRecord };
  /**
   * backupRecordKey(key, epoch, node) -> the last RecoveryAuthorized of that participant of that
   * key epoch and its ShareRecovered, if reported (ledger/apply.ts). Absent and empty mean the
   * same; the canonical form leaves an empty map out.
   */
  readonly recoveries?: { readonly [keyEpochNode: string]: RecoveryRecord };
  /**
   * drillRecordKey(key, epoch) -> the BackupsDestroyed decision that ended the share backups of
   * that epoch of a retired key (ledger/apply.ts). Absent and empty mean the same; the canonical
   * form leaves an empty map out.
   */
  readonly destroyedBackups?: { readonly [keyEpoch: string]: DestroyedRecord };
  /**
   * backupRecordKey(key, epoch, node) -> the last RepairAuthorized of that node for that key epoch
   * and its ShareRepaired, if reported (ledger/apply.ts). Absent and empty mean the same; the
   * canonical form leaves an empty map out.
   */
  readonly repairs?: { readonly [keyEpochNode: string]: RepairRecord };
  /**
   * The trust policy chain past genesis (ledger/trust-chain.ts): absent until the voters first
   * change, so a cluster whose voters never changed keeps its root.
   */
  readonly trustChain?: TrustChainRecord;
  /**
   * The witness set of the last WitnessesChanged decision (canonical cosignature/v1 vkeys and how
   * many must cosign); absent while none is named.
   */
  readonly witnesses?: { readonly vkeys: readonly string[]; readonly quorum: number };
}

/** One node's cosignature/v1 signature (8-byte timestamp || Ed25519) over a trust policy block. */
export interface TrustSignature {
  readonly nodeId: string;
  readonly signature: Uint8Array;
}

/** A completed block of the trust policy chain: its text and a quorum of the previous block's nodes' signatures, sorted by node id. */
export interface TrustBlockRecord {
  readonly text: string;
  readonly signatures: readonly TrustSignature[];
}

export interface TrustChainRecord {
  /** The genesis block's text (serial 0): the voters before the first change. */
  readonly genesis: string;
  /** The completed blocks after genesis, serial 1 first. */
  readonly blocks: readonly TrustBlockRecord[];
  /** The signatures kept for the waiting block with that block's digest (null: none kept). */
  readonly pending: { readonly digest: Uint8Array; readonly signatures: readonly TrustSignature[] } | null;
}

/** The key epochs whose share backups a BackupsDestroyed decision ended. */
export function destroyedBackupsOf(c: ClusterState): { readonly [keyEpoch: string]: DestroyedRecord } {
  return c.destroyedBackups ?? {};
}

/** The share repairs the ledger records. */
export function repairsOf(c: ClusterState): { readonly [keyEpochNode: string]: RepairRecord } {
  return c.repairs ?? {};
}

/** The last backup drill of each key epoch the ledger records. */
export function drillsOf(c: ClusterState): { readonly [keyEpoch: string]: DrillRecord } {
  return c.drills ?? {};
}

/** The share recoveries the ledger records. */
export function recoveriesOf(c: ClusterState): { readonly [keyEpochNode: string]: RecoveryRecord } {
  return c.recoveries ?? {};
}

/** The share backups the ledger records. */
export function backupsOf(c: ClusterState): { readonly [keyEpochNode: string]: BackupRecord } {
  return c.backups ?? {};
}

/** The pending fencing reports of a cluster state. */
export function fenceReportsOf(c: ClusterState): readonly FenceReport[] {
  return c.fenceReports ?? [];
}

export interface LedgerState {
  /** Raft index of the last entry applied (accepted or refused). */
  readonly index: number;
  /** Largest entry stamp seen: time never runs backwards inside the ledger. */
  readonly clockMs: number;
  /** Head of the hash chain over accepted events; 32 zero bytes before the first. */
  readonly chainHead: Uint8Array;
  /** Accepted events so far (length of the hash chain). */
  readonly height: number;
  readonly cluster: ClusterState | null;
}

export function emptyState(): LedgerState {
  return { index: 0, clockMs: 0, chainHead: new Uint8Array(32), height: 0, cluster: null };
}

// ------------------------------------------------------------------------------------------------
// Canonical form
// ------------------------------------------------------------------------------------------------

function mapValues<T>(m: { readonly [k: string]: T }, f: (v: T) => CborValue): CborValue {
  const out: { [k: string]: CborValue } = {};
  for (const k of Object.keys(m)) Object.defineProperty(out, k, { value: f(m[k] as T), enumerable: true, writable: true, configurable: true });
  return out;
}

export function opToCbor(o: OpRecord): CborValue {
  return {
    ...o, act: actToCbor(o.act), signatures: o.signatures === null ? null : [...o.signatures], approval: o.approval === null ? null : decisionToCbor(o.approval), request: o.request === null ? null : actRequestToCbor(o.request), history: o.history.map((h) => ({ ...h })), receipts: [...o.receipts],
    rule: o.rule === null ? null : ruleToCbor(o.rule),
    signingSet: o.signingSet === null ? null : { index: o.signingSet.index, commitments: o.signingSet.commitments.map(memberToCbor) },
  };
}

export function permitToCbor(p: PermitRecord): CborValue {
  return { ...p };
}

const isEnded = (o: OpRecord): boolean => TERMINAL_OP_STATES.includes(o.state);

/** The acts in flight and their permits: what the state root commits to directly. */
function liveOnly(c: ClusterState): Pick<ClusterState, 'ops' | 'permits'> {
  const ops: { [k: string]: OpRecord } = {};
  const permits: { [k: string]: PermitRecord } = {};
  for (const k of Object.keys(c.ops)) {
    const o = c.ops[k] as OpRecord;
    if (!isEnded(o)) Object.defineProperty(ops, k, { value: o, enumerable: true, writable: true, configurable: true });
  }
  for (const k of Object.keys(c.permits)) {
    const p = c.permits[k] as PermitRecord;
    const o = Object.hasOwn(c.ops, p.opId) ? c.ops[p.opId] : undefined;
    if (o === undefined || !isEnded(o)) Object.defineProperty(permits, k, { value: p, enumerable: true, writable: true, configurable: true });
  }
  return { ops, permits };
}

/**
 * The canonical value of a state. `rootForm` leaves out ended acts and their permits, which the
 * root commits to through `archived` instead (see stateRoot).
 */
export function stateToCbor(s0: LedgerState, rootForm = false): CborValue {
  const s = rootForm && s0.cluster !== null ? { ...s0, cluster: { ...s0.cluster, ...liveOnly(s0.cluster) } } : s0;
  const c = s.cluster;
  return {
    index: s.index,
    clockMs: s.clockMs,
    chainHead: s.chainHead,
    height: s.height,
    cluster: c === null ? null : {
      clusterId: c.clusterId,
      genesisCid: c.genesisCid,
      governance: {
        epoch: c.governance.epoch,
        headCid: c.governance.headCid,
        roster: rosterToCbor(c.governance.roster),
        policy: policyToCbor(c.governance.policy),
        frozen: c.governance.frozen === null ? null : { ...c.governance.frozen },
        ...(revocationsOf(c.governance).length > 0 ? { revoked: revocationsOf(c.governance).map((r) => ({ ...r })) } : {}),
        ...(c.governance.backupPolicy === undefined ? {} : { backupPolicy: backupPolicyToCbor(c.governance.backupPolicy) }),
      },
      nodes: mapValues(c.nodes, (n) => ({ ...n, fencedPassports: [...n.fencedPassports] })),
      keys: mapValues(c.keys, (k) => ({ ...k, epochs: mapValues(k.epochs, (e) => ({
        ...e, participants: [...e.participants], round1: { ...e.round1 }, ready: mapValues(e.ready, (r) => ({ ...r })),
        ...(e.dealersReady === undefined || e.dealersReady.length === 0 ? { dealersReady: undefined } : { dealersReady: [...e.dealersReady] }),
      })) })),
      ops: mapValues(c.ops, opToCbor),
      opCount: c.opCount,
      inFlight: c.inFlight,
      archived: { count: c.archived.count, head: c.archived.head },
      endedByState: mapValues(c.endedByState, (n) => n),
      permits: mapValues(c.permits, permitToCbor),
      policyHistory: historyToCbor(c.policyHistory),
      consumed: mapValues(c.consumed, (n) => n),
      statements: mapValues(c.statements, (r) => ({ statement: statementToCbor(r.statement) })),
      evidence: mapValues(c.evidence, (e) => ({ ...e })),
      ...(fenceReportsOf(c).length > 0 ? { fenceReports: fenceReportsOf(c).map((r) => ({ ...r, reporters: [...r.reporters] })) } : {}),
      ...(Object.keys(backupsOf(c)).length > 0 ? { backups: mapValues(backupsOf(c), (b) => ({ ...b })) } : {}),
      ...(Object.keys(drillsOf(c)).length > 0 ? { drills: mapValues(drillsOf(c), (d) => ({ ...d, backupCids: [...d.backupCids] })) } : {}),
      ...(Object.keys(recoveriesOf(c)).length > 0 ? { recoveries: mapValues(recoveriesOf(c), (r) => ({ ...r, recovered: r.recovered === null ? null : { ...r.recovered } })) } : {}),
      ...(Object.keys(destroyedBackupsOf(c)).length > 0 ? { destroyedBackups: mapValues(destroyedBackupsOf(c), (d) => ({ ...d })) } : {}),
      ...(Object.keys(repairsOf(c)).length > 0 ? { repairs: mapValues(repairsOf(c), (r) => ({ ...r, helpers: [...r.helpers], repaired: r.repaired === null ? null : { ...r.repaired } })) } : {}),
      ...(c.trustChain === undefined ? {} : { trustChain: trustChainToCbor(c.trustChain) }),
      ...(c.witnesses === undefined ? {} : { witnesses: { vkeys: [...c.witnesses.vkeys], quorum: c.witnesses.quorum } }),
    },
  };
}

export const STATE_DOMAIN = 'custody-ledger/v1/state';

/**
 * What a transaction of an act of `keyId` is parsed against (ledger/tx/parse.ts): the key's id,
 * scheme, group key and network, as the ledger holds them. Null for an unknown key or one whose
 * group key is not yet published.
 */
export function keyContextOf(c: ClusterState, keyId: string): KeyContext | null {
  const k = Object.hasOwn(c.keys, keyId) ? c.keys[keyId] : undefined;
  if (k === undefined || k.publicKey === null) return null;
  return { keyId: k.id, scheme: k.scheme, groupKey: k.publicKey, network: k.network };
}

/** The key of ClusterState.consumed. */
export function consumedKey(keyId: string, keyEpoch: number, nodeId: string): string {
  return JSON.stringify([keyId, keyEpoch, nodeId]);
}

const roots = new WeakMap<LedgerState, Uint8Array>();

/**
 * The state root: equal on two nodes iff they hold the same state. Memoized per state object.
 *
 * What it commits to: the canonical encoding of the state with the acts in flight and their
 * permits, and `archived` = (count, head) for every act that ended. `head` is a hash chain over
 * the ended acts' archive records (the act with every receipt, and its permit) in the order they
 * ended (ledger/archive.ts). An ended act never changes again (no transition leaves Settled,
 * Denied or Aborted, and an ended act's permit is spent), so its record is final when it is
 * chained. Two nodes that applied the same log end the same acts in the same order (apply is
 * deterministic, and the order within one entry is the persistent map's content order), so they
 * hold equal heads; two nodes with equal roots hold equal live states and, by collision
 * resistance of SHA-256, archives with the same records in the same order. Whether the ended
 * acts are kept in memory (no archive) or moved to a store (an archive) does not change the root.
 */
export function stateRoot(s: LedgerState): Uint8Array {
  let r = roots.get(s);
  if (r === undefined) {
    r = digest(STATE_DOMAIN, encode(stateToCbor(s, true)));
    roots.set(s, r);
  }
  return r;
}

export function snapshot(s: LedgerState): Uint8Array {
  return encode(stateToCbor(s));
}

/**
 * Restores a snapshot. Anything but the canonical encoding of a well-formed state is refused with
 * STORAGE_CORRUPT: a snapshot is our own stored data, so a bad one means damage, not bad input.
 */
export function restore(b: Uint8Array): LedgerState {
  try {
    return stateFromCbor(decode(b, { bytesMax: limits.snapshotBytesMax }));
  } catch (e) {
    if (e instanceof ShapeError || e instanceof CustodyError) throw new CustodyError('STORAGE_CORRUPT', `snapshot: ${e.message}`, { cause: e });
    throw e;
  }
}

type Obj = { readonly [k: string]: CborValue | undefined };

/** Restored maps are persistent maps, like the live state's, so both iterate alike. */
function mapOf<T>(v: CborValue | undefined, what: string, f: (key: string, v: CborValue) => T): { readonly [k: string]: T } {
  if (v === null || v === undefined || typeof v !== 'object' || v instanceof Uint8Array || Array.isArray(v)) throw new ShapeError(`${what}: expected a map`);
  return pmapFrom(Object.keys(v).map((k) => [k, f(k, (v as Obj)[k] as CborValue)] as const));
}

/** The policy history of a snapshot, in its canonical form (a refusal of it is a shape error of the state). */
function historyOf(v: CborValue | undefined): PolicyHistory {
  if (v === undefined) throw new ShapeError('cluster: missing field policyHistory');
  try {
    return historyFromCbor(v);
  } catch (e) {
    if (e instanceof CustodyError) throw new ShapeError(`policyHistory: ${e.detail}`);
    throw e;
  }
}

function nullable<T>(v: CborValue | undefined, f: (v: CborValue) => T): T | null {
  return v === null ? null : f(v as CborValue);
}

function bool(v: CborValue | undefined, what: string): boolean {
  if (typeof v !== 'boolean') throw new ShapeError(`${what}: expected a boolean`);
  return v;
}

function reason(v: CborValue | undefined): ReasonCode | null {
  if (v === null) return null;
  if (!isReasonCode(v)) throw new ShapeError('reason: not a reason code');
  return v;
}

const IDS = Number.MAX_SAFE_INTEGER;

function revokedFromCbor(v: CborValue): RevocationRecord[] {
  const list = arr(v, 'governance.revoked', limits.revokedMax);
  // The canonical form leaves an empty list out: an empty one present is not canonical.
  if (list.length === 0) throw new ShapeError('governance.revoked: an empty list is left out');
  return list.map((r) => {
    const ro = obj(r, 'revoked', ['serial', 'holder', 'id', 'reason', 'notAfterMs', 'decisionCid', 'sinceIndex']);
    const serial = str(ro.serial, 'revoked.serial');
    if (!SERIAL_RE.test(serial)) throw new ShapeError('revoked.serial: not a canonical serial');
    return {
      serial, holder: oneOf(ro.holder, 'revoked.holder', REVOKED_HOLDERS), id: str(ro.id, 'revoked.id'), reason: str(ro.reason, 'revoked.reason', limits.textBytesMax),
      notAfterMs: int(ro.notAfterMs, 'revoked.notAfterMs'), decisionCid: bytes(ro.decisionCid, 'revoked.decisionCid', 32), sinceIndex: int(ro.sinceIndex, 'revoked.sinceIndex'),
    };
  });
}

export function stateFromCbor(v: CborValue): LedgerState {
  const o = obj(v, 'state', ['index', 'clockMs', 'chainHead', 'height', 'cluster']);
  return {
    index: int(o.index, 'index'),
    clockMs: int(o.clockMs, 'clockMs'),
    chainHead: bytes(o.chainHead, 'chainHead', 32),
    height: int(o.height, 'height'),
    cluster: nullable(o.cluster, clusterFromCbor),
  };
}

function clusterFromCbor(v: CborValue): ClusterState {
  const o = obj(v, 'cluster', ['clusterId', 'genesisCid', 'governance', 'nodes', 'keys', 'ops', 'opCount', 'inFlight', 'archived', 'endedByState', 'permits', 'policyHistory', 'consumed', 'statements', 'evidence'], ['fenceReports', 'backups', 'drills', 'recoveries', 'destroyedBackups', 'repairs', 'trustChain', 'witnesses']);
  const ar = obj(o.archived, 'archived', ['count', 'head']);
  const g = obj(o.governance, 'governance', ['epoch', 'headCid', 'roster', 'policy', 'frozen'], ['revoked', 'backupPolicy']);
  const policy = policyFromCbor(g.policy);
  const policyHistory = historyOf(o.policyHistory);
  // The history keeps what the policy in force reads (genesis and PolicyChanged set its horizons).
  const h = horizonsOf(policy);
  if (h.key !== policyHistory.horizons.key || h.asset !== policyHistory.horizons.asset || h.initiator !== policyHistory.horizons.initiator) {
    throw new ShapeError('policyHistory: horizons differ from the windows of the policy in force');
  }
  return {
    clusterId: str(o.clusterId, 'clusterId'),
    genesisCid: bytes(o.genesisCid, 'genesisCid', 32),
    governance: {
      epoch: int(g.epoch, 'governance.epoch'),
      headCid: bytes(g.headCid, 'governance.headCid', 32),
      roster: rosterFromCbor(g.roster),
      policy,
      frozen: nullable(g.frozen, (f) => {
        const fo = obj(f, 'frozen', ['reason', 'decisionCid', 'sinceIndex']);
        return { reason: str(fo.reason, 'frozen.reason', limits.textBytesMax), decisionCid: bytes(fo.decisionCid, 'frozen.decisionCid', 32), sinceIndex: int(fo.sinceIndex, 'frozen.sinceIndex') };
      }),
      ...(g.revoked === undefined ? {} : { revoked: revokedFromCbor(g.revoked) }),
      ...(g.backupPolicy === undefined ? {} : { backupPolicy: backupPolicyFromCbor(g.backupPolicy) }),
    },
    nodes: mapOf(o.nodes, 'nodes', (id, n) => {
      const no = obj(n, 'node', ['id', 'identityKey', 'passport', 'status', 'fencedPassports', 'equivocated']);
      if (no.id !== id) throw new ShapeError('node: id differs from its key');
      return {
        id, identityKey: bytes(no.identityKey, 'node.identityKey', 32), passport: str(no.passport, 'node.passport'),
        status: oneOf(no.status, 'node.status', NODE_STATUSES), fencedPassports: uniqueStrings(no.fencedPassports, 'node.fencedPassports', IDS),
        equivocated: bool(no.equivocated, 'node.equivocated'),
      };
    }),
    keys: mapOf(o.keys, 'keys', (id, k) => {
      const ko = obj(k, 'key', ['id', 'scheme', 'network', 'status', 'activeEpoch', 'publicKey', 'epochs']);
      if (ko.id !== id) throw new ShapeError('key: id differs from its key');
      return {
        id, scheme: oneOf(ko.scheme, 'key.scheme', KEY_SCHEMES), network: oneOf(ko.network, 'key.network', NETWORKS), status: oneOf(ko.status, 'key.status', KEY_STATUSES),
        activeEpoch: nullable(ko.activeEpoch, (x) => int(x, 'key.activeEpoch')), publicKey: nullable(ko.publicKey, (x) => bytes(x, 'key.publicKey')),
        epochs: mapOf(ko.epochs, 'key.epochs', (e, r) => epochFromCbor(e, r)),
      };
    }),
    ops: mapOf(o.ops, 'ops', (id, op) => opFromCbor(id, op)),
    opCount: int(o.opCount, 'opCount'),
    inFlight: int(o.inFlight, 'inFlight'),
    archived: { count: int(ar.count, 'archived.count'), head: bytes(ar.head, 'archived.head', 32) },
    endedByState: mapOf(o.endedByState, 'endedByState', (k, n) => {
      oneOf(k, 'endedByState state', TERMINAL_OP_STATES);
      return int(n, 'endedByState count');
    }),
    permits: mapOf(o.permits, 'permits', (_, p) => permitFromCbor(p)),
    policyHistory,
    consumed: mapOf(o.consumed, 'consumed', (_, n) => int(n, 'consumed counter')),
    statements: mapOf(o.statements, 'statements', (_, r) => ({ statement: statementFromCbor(obj(r, 'statement record', ['statement']).statement) })),
    evidence: mapOf(o.evidence, 'evidence', (_, e) => {
      const eo = obj(e, 'evidence', ['nodeId', 'kind', 'index']);
      return { nodeId: str(eo.nodeId, 'evidence.nodeId'), kind: str(eo.kind, 'evidence.kind'), index: int(eo.index, 'evidence.index') };
    }),
    ...(o.fenceReports === undefined ? {} : { fenceReports: fenceReportsFromCbor(o.fenceReports) }),
    ...(o.backups === undefined ? {} : { backups: backupsFromCbor(o.backups) }),
    ...(o.drills === undefined ? {} : { drills: drillsFromCbor(o.drills) }),
    ...(o.recoveries === undefined ? {} : { recoveries: recoveriesFromCbor(o.recoveries) }),
    ...(o.destroyedBackups === undefined ? {} : { destroyedBackups: destroyedFromCbor(o.destroyedBackups) }),
    ...(o.repairs === undefined ? {} : { repairs: repairsFromCbor(o.repairs) }),
    ...(o.trustChain === undefined ? {} : { trustChain: trustChainFromCbor(o.trustChain) }),
    ...(o.witnesses === undefined ? {} : { witnesses: witnessesFromCbor(o.witnesses) }),
  };
}

function witnessesFromCbor(v: CborValue): { vkeys: string[]; quorum: number } {
  const o = obj(v, 'witnesses', ['vkeys', 'quorum']);
  const vkeys = arr(o.vkeys, 'witnesses.vkeys', limits.witnessesMax).map((x, i) => str(x, `witnesses.vkeys[${i}]`, limits.textBytesMax));
  if (vkeys.length === 0) throw new ShapeError('witnesses: kept only when one is named');
  return { vkeys, quorum: int(o.quorum, 'witnesses.quorum') };
}

function trustSignaturesToCbor(s: readonly TrustSignature[]): CborValue {
  return s.map((x) => ({ nodeId: x.nodeId, signature: x.signature }));
}

function trustChainToCbor(t: TrustChainRecord): CborValue {
  return {
    genesis: t.genesis,
    blocks: t.blocks.map((b) => ({ text: b.text, signatures: trustSignaturesToCbor(b.signatures) })),
    pending: t.pending === null ? null : { digest: t.pending.digest, signatures: trustSignaturesToCbor(t.pending.signatures) },
  };
}

function trustSignaturesFromCbor(v: CborValue | undefined, what: string): TrustSignature[] {
  const out = arr(v, what, limits.nodesMax).map((x, i) => {
    const so = obj(x, `${what}[${i}]`, ['nodeId', 'signature']);
    return { nodeId: str(so.nodeId, `${what}[${i}].nodeId`), signature: bytes(so.signature, `${what}[${i}].signature`, 72) };
  });
  // Sorted by node id, each once: the one order apply keeps them in.
  for (let i = 1; i < out.length; i++) if (!((out[i - 1] as TrustSignature).nodeId < (out[i] as TrustSignature).nodeId)) throw new ShapeError(`${what}: node ids are not strictly ascending`);
  return out;
}

function trustChainFromCbor(v: CborValue): TrustChainRecord {
  const o = obj(v, 'trustChain', ['genesis', 'blocks', 'pending']);
  const text = (x: CborValue | undefined, what: string): string => {
    if (typeof x !== 'string' || Buffer.byteLength(x) > tlogLimits.policyBytesMax) throw new ShapeError(`${what}: expected a policy block's text`);
    return x;
  };
  const blocks = arr(o.blocks, 'trustChain.blocks', limits.trustChainBlocksMax).map((b, i) => {
    const bo = obj(b, `trustChain.blocks[${i}]`, ['text', 'signatures']);
    return { text: text(bo.text, `trustChain.blocks[${i}].text`), signatures: trustSignaturesFromCbor(bo.signatures, `trustChain.blocks[${i}].signatures`) };
  });
  const pending = nullable(o.pending, (p) => {
    const po = obj(p, 'trustChain.pending', ['digest', 'signatures']);
    const signatures = trustSignaturesFromCbor(po.signatures, 'trustChain.pending.signatures');
    if (signatures.length === 0) throw new ShapeError('trustChain.pending: kept only with a signature');
    return { digest: bytes(po.digest, 'trustChain.pending.digest', 32), signatures };
  });
  return { genesis: text(o.genesis, 'trustChain.genesis'), blocks, pending };
}

function destroyedFromCbor(v: CborValue): { readonly [k: string]: DestroyedRecord } {
  const m = mapOf(v, 'destroyedBackups', (k, r) => {
    const ro = obj(r, 'destroyed', ['keyId', 'keyEpoch', 'decisionCid', 'index', 'stampMs']);
    const rec: DestroyedRecord = {
      keyId: str(ro.keyId, 'destroyed.keyId'), keyEpoch: int(ro.keyEpoch, 'destroyed.keyEpoch'), decisionCid: bytes(ro.decisionCid, 'destroyed.decisionCid', 32),
      index: int(ro.index, 'destroyed.index'), stampMs: int(ro.stampMs, 'destroyed.stampMs'),
    };
    if (drillRecordKey(rec.keyId, rec.keyEpoch) !== k) throw new ShapeError('destroyed: key differs from its record');
    return rec;
  });
  // The canonical form leaves an empty map out: an empty one present is not canonical.
  if (Object.keys(m).length === 0) throw new ShapeError('destroyedBackups: an empty map is left out');
  return m;
}

function backupPolicyToCbor(p: BackupPolicyRecord): CborValue {
  return { recipients: p.recipients.map((r) => ({ label: r.label, recipient: r.recipient })), decisionCid: p.decisionCid, sinceIndex: p.sinceIndex };
}

function backupPolicyFromCbor(v: CborValue): BackupPolicyRecord {
  const o = obj(v, 'governance.backupPolicy', ['recipients', 'decisionCid', 'sinceIndex']);
  const recipients = arr(o.recipients, 'backupPolicy.recipients', shareBackupLimits.recipientsMax).map((x, i) => {
    const ro = obj(x, `backupPolicy.recipients[${i}]`, ['label', 'recipient']);
    return { label: str(ro.label, 'backupPolicy.label', shareBackupLimits.labelBytesMax), recipient: str(ro.recipient, 'backupPolicy.recipient') };
  });
  const bad = validateBackupRecipients(recipients);
  if (bad !== null) throw new ShapeError(`backupPolicy: ${bad}`);
  return { recipients, decisionCid: bytes(o.decisionCid, 'backupPolicy.decisionCid', 32), sinceIndex: int(o.sinceIndex, 'backupPolicy.sinceIndex') };
}

function backupsFromCbor(v: CborValue): { readonly [k: string]: BackupRecord } {
  const m = mapOf(v, 'backups', (k, r) => {
    const ro = obj(r, 'backup', ['keyId', 'keyEpoch', 'nodeId', 'identifier', 'fileCid', 'recipientsDigest', 'index', 'stampMs']);
    const rec: BackupRecord = {
      keyId: str(ro.keyId, 'backup.keyId'), keyEpoch: int(ro.keyEpoch, 'backup.keyEpoch'), nodeId: str(ro.nodeId, 'backup.nodeId'), identifier: str(ro.identifier, 'backup.identifier'),
      fileCid: bytes(ro.fileCid, 'backup.fileCid', 32), recipientsDigest: bytes(ro.recipientsDigest, 'backup.recipientsDigest', 32),
      index: int(ro.index, 'backup.index'), stampMs: int(ro.stampMs, 'backup.stampMs'),
    };
    if (backupRecordKey(rec.keyId, rec.keyEpoch, rec.nodeId) !== k) throw new ShapeError('backup: key differs from its record');
    return rec;
  });
  // The canonical form leaves an empty map out: an empty one present is not canonical.
  if (Object.keys(m).length === 0) throw new ShapeError('backups: an empty map is left out');
  return m;
}

function drillsFromCbor(v: CborValue): { readonly [k: string]: DrillRecord } {
  const m = mapOf(v, 'drills', (k, r) => {
    const ro = obj(r, 'drill', ['keyId', 'keyEpoch', 'backupCids', 'passed', 'reportDigest', 'drilledAtMs', 'nodeId', 'index', 'stampMs']);
    if (typeof ro.passed !== 'boolean') throw new ShapeError('drill.passed: expected a boolean');
    const rec: DrillRecord = {
      keyId: str(ro.keyId, 'drill.keyId'), keyEpoch: int(ro.keyEpoch, 'drill.keyEpoch'),
      backupCids: arr(ro.backupCids, 'drill.backupCids', limits.nodesMax).map((c, i) => bytes(c, `drill.backupCids[${i}]`, 32)),
      passed: ro.passed, reportDigest: bytes(ro.reportDigest, 'drill.reportDigest', 32), drilledAtMs: int(ro.drilledAtMs, 'drill.drilledAtMs'),
      nodeId: str(ro.nodeId, 'drill.nodeId'), index: int(ro.index, 'drill.index'), stampMs: int(ro.stampMs, 'drill.stampMs'),
    };
    if (drillRecordKey(rec.keyId, rec.keyEpoch) !== k) throw new ShapeError('drill: key differs from its record');
    return rec;
  });
  // The canonical form leaves an empty map out: an empty one present is not canonical.
  if (Object.keys(m).length === 0) throw new ShapeError('drills: an empty map is left out');
  return m;
}

function repairsFromCbor(v: CborValue): { readonly [k: string]: RepairRecord } {
  const m = mapOf(v, 'repairs', (k, r) => {
    const ro = obj(r, 'repair', ['keyId', 'keyEpoch', 'nodeId', 'identifier', 'helpers', 'enrol', 'decisionCid', 'authorizedIndex', 'repaired']);
    let repaired: RepairRecord['repaired'] = null;
    if (ro.repaired !== null) {
      const x = obj(ro.repaired, 'repair.repaired', ['index', 'stampMs', 'verifyingShare']);
      repaired = { index: int(x.index, 'repair.repaired.index'), stampMs: int(x.stampMs, 'repair.repaired.stampMs'), verifyingShare: bytes(x.verifyingShare, 'repair.repaired.verifyingShare') };
    }
    if (typeof ro.enrol !== 'boolean') throw new ShapeError('repair.enrol: expected a boolean');
    const rec: RepairRecord = {
      keyId: str(ro.keyId, 'repair.keyId'), keyEpoch: int(ro.keyEpoch, 'repair.keyEpoch'), nodeId: str(ro.nodeId, 'repair.nodeId'), identifier: str(ro.identifier, 'repair.identifier'),
      helpers: uniqueStrings(ro.helpers, 'repair.helpers', limits.nodesMax), enrol: ro.enrol, decisionCid: bytes(ro.decisionCid, 'repair.decisionCid', 32),
      authorizedIndex: int(ro.authorizedIndex, 'repair.authorizedIndex'), repaired,
    };
    if (backupRecordKey(rec.keyId, rec.keyEpoch, rec.nodeId) !== k) throw new ShapeError('repair: key differs from its record');
    return rec;
  });
  // The canonical form leaves an empty map out: an empty one present is not canonical.
  if (Object.keys(m).length === 0) throw new ShapeError('repairs: an empty map is left out');
  return m;
}

function recoveriesFromCbor(v: CborValue): { readonly [k: string]: RecoveryRecord } {
  const m = mapOf(v, 'recoveries', (k, r) => {
    const ro = obj(r, 'recovery', ['keyId', 'keyEpoch', 'nodeId', 'identifier', 'backupCid', 'decisionCid', 'authorizedIndex', 'recovered']);
    let recovered: RecoveryRecord['recovered'] = null;
    if (ro.recovered !== null) {
      const x = obj(ro.recovered, 'recovery.recovered', ['index', 'stampMs']);
      recovered = { index: int(x.index, 'recovery.recovered.index'), stampMs: int(x.stampMs, 'recovery.recovered.stampMs') };
    }
    const rec: RecoveryRecord = {
      keyId: str(ro.keyId, 'recovery.keyId'), keyEpoch: int(ro.keyEpoch, 'recovery.keyEpoch'), nodeId: str(ro.nodeId, 'recovery.nodeId'), identifier: str(ro.identifier, 'recovery.identifier'),
      backupCid: bytes(ro.backupCid, 'recovery.backupCid', 32), decisionCid: bytes(ro.decisionCid, 'recovery.decisionCid', 32),
      authorizedIndex: int(ro.authorizedIndex, 'recovery.authorizedIndex'), recovered,
    };
    if (backupRecordKey(rec.keyId, rec.keyEpoch, rec.nodeId) !== k) throw new ShapeError('recovery: key differs from its record');
    return rec;
  });
  // The canonical form leaves an empty map out: an empty one present is not canonical.
  if (Object.keys(m).length === 0) throw new ShapeError('recoveries: an empty map is left out');
  return m;
}

function fenceReportsFromCbor(v: CborValue): FenceReport[] {
  const list = arr(v, 'fenceReports', limits.fenceReportsMax);
  // The canonical form leaves an empty list out: an empty one present is not canonical.
  if (list.length === 0) throw new ShapeError('fenceReports: an empty list is left out');
  const out = list.map((r) => {
    const ro = obj(r, 'fenceReport', ['nodeId', 'passport', 'reporters', 'sinceIndex']);
    const reporters = uniqueStrings(ro.reporters, 'fenceReport.reporters', limits.nodesMax);
    if (reporters.length === 0 || reporters.some((x, i) => i > 0 && (reporters[i - 1] as string) >= x)) throw new ShapeError('fenceReport.reporters: at least one, sorted');
    return { nodeId: str(ro.nodeId, 'fenceReport.nodeId'), passport: str(ro.passport, 'fenceReport.passport'), reporters, sinceIndex: int(ro.sinceIndex, 'fenceReport.sinceIndex') };
  });
  if (out.some((r, i) => i > 0 && (out[i - 1] as FenceReport).nodeId >= r.nodeId)) throw new ShapeError('fenceReports: one per node, sorted by node id');
  return out;
}

export function permitFromCbor(p: CborValue): PermitRecord {
  const po = obj(p, 'permit', ['opId', 'nodeId', 'keyId', 'keyEpoch', 'messageDigest', 'index', 'used']);
  return {
    opId: str(po.opId, 'permit.opId'), nodeId: str(po.nodeId, 'permit.nodeId'), keyId: str(po.keyId, 'permit.keyId'),
    keyEpoch: int(po.keyEpoch, 'permit.keyEpoch'), messageDigest: bytes(po.messageDigest, 'permit.messageDigest', 32),
    index: int(po.index, 'permit.index'), used: bool(po.used, 'permit.used'),
  };
}

function epochFromCbor(key: string, v: CborValue): EpochRecord {
  const o = obj(v, 'epoch', ['epoch', 'threshold', 'participants', 'authorizedBy', 'status', 'round1', 'ready', 'keyReadyCid', 'groupKey', 'activatedBy'], ['dealersReady']);
  const epoch = int(o.epoch, 'epoch.epoch');
  if (String(epoch) !== key) throw new ShapeError('epoch: number differs from its key');
  return {
    epoch, threshold: int(o.threshold, 'epoch.threshold', 1), participants: uniqueStrings(o.participants, 'epoch.participants', limits.nodesMax),
    authorizedBy: bytes(o.authorizedBy, 'epoch.authorizedBy', 32), status: oneOf(o.status, 'epoch.status', EPOCH_STATUSES),
    round1: mapOf(o.round1, 'epoch.round1', (_, c) => bytes(c, 'round1 cid', 32)),
    ready: mapOf(o.ready, 'epoch.ready', (_, r) => {
      const ro = obj(r, 'ready', ['statementCid', 'groupKey']);
      return { statementCid: bytes(ro.statementCid, 'ready.statementCid', 32), groupKey: bytes(ro.groupKey, 'ready.groupKey') };
    }),
    keyReadyCid: nullable(o.keyReadyCid, (x) => bytes(x, 'epoch.keyReadyCid', 32)),
    groupKey: nullable(o.groupKey, (x) => bytes(x, 'epoch.groupKey')),
    activatedBy: nullable(o.activatedBy, (x) => bytes(x, 'epoch.activatedBy', 32)),
    ...(o.dealersReady === undefined ? {} : { dealersReady: dealersReadyFromCbor(o.dealersReady) }),
  };
}

function dealersReadyFromCbor(v: CborValue): string[] {
  const d = uniqueStrings(v, 'epoch.dealersReady', limits.nodesMax);
  // The canonical form leaves an empty list out: an empty one present is not canonical.
  if (d.length === 0) throw new ShapeError('epoch.dealersReady: an empty list is left out');
  return d;
}

export function opFromCbor(id: string, v: CborValue): OpRecord {
  const o = obj(v, 'op', ['opId', 'submissionCid', 'act', 'actCid', 'nodeId', 'state', 'reason', 'history', 'approvalCid', 'approval', 'request', 'permitId', 'signingSet', 'releasedBy', 'signatures', 'confirmation', 'receipts', 'rule']);
  if (o.opId !== id) throw new ShapeError('op: id differs from its key');
  return {
    opId: id, submissionCid: bytes(o.submissionCid, 'op.submissionCid', 32), act: actFromCbor(o.act), actCid: bytes(o.actCid, 'op.actCid', 32),
    nodeId: str(o.nodeId, 'op.nodeId'), state: oneOf(o.state, 'op.state', OP_STATES), reason: reason(o.reason),
    history: arr(o.history, 'op.history', OP_STATES.length).map((h) => {
      const ho = obj(h, 'op.history', ['state', 'index']);
      return { state: oneOf(ho.state, 'history.state', OP_STATES), index: int(ho.index, 'history.index') };
    }),
    approvalCid: nullable(o.approvalCid, (x) => bytes(x, 'op.approvalCid', 32)),
    approval: nullable(o.approval, (x) => decisionFromCbor(x)),
    request: nullable(o.request, (x) => actRequestFromCbor(x)),
    permitId: nullable(o.permitId, (x) => bytes(x, 'op.permitId', 32)),
    signingSet: nullable(o.signingSet, (x) => {
      const so = obj(x, 'op.signingSet', ['index', 'commitments']);
      return { index: int(so.index, 'signingSet.index'), commitments: arr(so.commitments, 'signingSet.commitments', limits.nodesMax).map((m, i) => memberFromCbor(m, `signingSet.commitments[${i}]`)) };
    }),
    releasedBy: nullable(o.releasedBy, (x) => bytes(x, 'op.releasedBy', 32)),
    signatures: nullable(o.signatures, (x) => arr(x, 'op.signatures', txLimits.messagesPerActMax).map((b, i) => bytes(b, `op.signatures[${i}]`))),
    confirmation: nullable(o.confirmation, (x) => str(x, 'op.confirmation', limits.textBytesMax)),
    receipts: arr(o.receipts, 'op.receipts', 3),
    rule: nullable(o.rule, ruleFromCbor),
  };
}
