/**
 * apply(state, entry) -> { state, result }: the deterministic state machine of the ledger.
 *
 * Pure: no clock, no randomness, no I/O; the input state is never modified. Time is the entry's
 * stamp, clamped so it never runs backwards (`clockMs = max(clockMs, stampMs)`), so a proposer with
 * a slow clock cannot revive an expired decision or reopen a policy window.
 *
 * Every entry advances `index` and `clockMs`. Then one of three things happens:
 *   accepted  the event takes effect and extends the hash chain            result.ok = true
 *   recorded  the event is journaled as a denial (a Denied act, equivocation caught in the act)
 *             and extends the chain, but what it asked for did not happen  result.ok = false, applied = true
 *   refused   nothing else changes                                          result.ok = false, applied = false
 * Every refusal and denial carries one code from proto/reasons.ts.
 *
 * Hash chain: chainHead' = sha256("custody-ledger/v1/chain" || 0 || CBOR({prev, index, stampMs,
 * eventCid})) for each accepted or recorded event; eventCid = sha256("custody-ledger/v1/event" ||
 * 0 || event bytes). The state root after any index is stateRoot(state) (ledger/state.ts).
 *
 * Invariants it enforces (DESIGN §3): no key transition without a valid approver quorum from the
 * roster in force; KeyActivated only after KeyObjectPublished whose key_ready_cid it names, after
 * the ceremony completed; signing only for an active key at its current epoch; an act's fields are
 * the ones its transaction says, re-derived on every node by parsing it against the key's own
 * context (ledger/tx), and an approval or release binds the display it renders; idempotency keys
 * and one-time step permits, each with at most one signing set (one nonce pair per message per
 * signer), fixed before execution, and an execution only by one signature per message over that
 * set (checked for Ed25519, each against its own list); a fenced passport is refused; admission
 * and publication stop while frozen; the policy's verdict on an act (the rule that matched and why) never enters the state;
 * a share backup is recorded only for a participant of an active key epoch, in its own name, under the
 * BackupPolicy in force (ledger/backup-policy.ts).
 */
import { CustodyError, assert, isCustodyError } from '../proto/errors.js';
import { drill as drillLimits, kernel as kernelLimits, ledger as limits } from '../proto/limits.js';
import type { ReasonCode } from '../proto/reasons.js';
import { type CborValue, bytesEqual, decode, digest, encode, toHex } from './encoding.js';
import {
  type DecisionAction, type GovernanceDecision, type NodeInfo, ShapeError, obj, bytes,
  decisionToCbor, ed25519Verify, isAcceptablePublicKey, validateRoster, verifyDecision,
} from './decision.js';
import {
  type Act, type EventType, type LedgerEntry, type LedgerEvent, type SignedStatement,
  type SigningSetMember, actCid, actToCbor, decisionCidOrNull, eventCid, eventFromCbor, lastCounter, listFor, memberToCbor, statementCid, verifyStatement,
} from './events.js';
import { type AdmissionVerdict, assetTable, judgeAdmission, judgePublication, pruneHistory } from './admission.js';
import { emptyHistory, withPolicy } from './policy-engine/history.js';
import { declaredMismatch, deriveActFields, fieldsOf as deriveFieldsOf } from './tx/act.js';
import type { AssetTable, KeyContext, Network, TxFacts } from './tx/types.js';
import { pmapDelete, pmapSet } from './pmap.js';
import { type SignedActRequest, actRequestToCbor } from './act-request.js';
import { requestDeclaredMismatch, verifyActRequest } from './act-request-check.js';
import { type ArchiveReader, type ArchiveRecord, type MemoryArchive, EMPTY_ARCHIVE_HEAD, archiveLink, encodeArchived } from './archive.js';
import { ed25519GroupCommitment, frostIdentifier, isGroupElement } from './signing-set.js';
import { enrolledPosition, epochSigners } from './signers.js';
import { attestedTime } from './clock-reading.js';
import { dealersReadyOf, redealDealerSet, redealReadyRefusal } from './dealer-set.js';
import { type ProposedEvent, verifyProposed } from './proposer-sig.js';
import { checkTrustSignature, headKeyOf, pendingTrustBlock, trustChainAfter, trustChainFull, withTrustSignature } from './trust-chain.js';
import { policyDigest, witnessSetRefusal } from './tlog/trust-policy.js';
import { checkpointOrigin } from './tlog/ledger-log.js';
import { admissionReceipt, permitReceipt, publicationReceipt, type ReceiptAnchor } from './receipts.js';
import { type FenceReport, backupsOf, destroyedBackupsOf, drillsOf, fenceReportsOf, recoveriesOf, repairsOf } from './state.js';
import { type BackupRecord, type DrillRecord, type RecoveryRecord, backupRecipientsDigest, backupRecordKey, drillRecordKey, validateBackupRecipients, type RepairRecord } from './backup-policy.js';
import { type ClusterState, type EpochRecord, type KeyRecord, type LedgerState, type NodeRecord, type OpRecord, type OpState, type PermitRecord, type RuleRecord, type RevocationRecord, revocationsOf, OP_TRANSITIONS, TERMINAL_OP_STATES, clipRuleDetail, consumedKey, keyContextOf, ruleToCbor } from './state.js';

export type ApplyResult =
  | {
    readonly ok: true;
    readonly index: number;
    readonly type: EventType;
    readonly eventCid: Uint8Array;
    /** What took effect, for logs and operators. */
    readonly effect: string;
    /** The entry repeated an earlier one (same idempotency key and content, or the same statement). */
    readonly replayed: boolean;
    readonly opState?: OpState;
    readonly permitId?: Uint8Array;
    /** The policy's verdict on an ActSubmitted (the rule that matched and why). Local only: never stored in the ledger state. */
    readonly admission?: AdmissionVerdict;
  }
  | {
    readonly ok: false;
    readonly index: number;
    readonly type: EventType | null;
    readonly reason: ReasonCode;
    readonly detail: string;
    /** True when the refusal itself was journaled (a Denied act, equivocation) and chained. */
    readonly applied: boolean;
    readonly eventCid: Uint8Array | null;
    readonly replayed: boolean;
    readonly opState?: OpState;
    readonly admission?: AdmissionVerdict;
  };

export const CHAIN_DOMAIN = 'custody-ledger/v1/chain';
const SLOT_DOMAIN = 'custody-ledger/v1/slot';
const EVIDENCE_DOMAIN = 'custody-ledger/v1/evidence';
const PERMIT_DOMAIN = 'custody-ledger/v1/permit';
const SUBMISSION_DOMAIN = 'custody-ledger/v1/submission';
const KEY_READY_DOMAIN = 'custody-ledger/v1/key-ready';
const ARTIFACT_DOMAIN = 'custody-ledger/v1/artifact';

export function chainLink(prev: Uint8Array, index: number, stampMs: number, evCid: Uint8Array): Uint8Array {
  return digest(CHAIN_DOMAIN, encode({ prev, index, stampMs, eventCid: evCid }));
}

/** The cid a KeyObjectPublished must name: the participants' KeyReady statements, in roster order. */
export function keyReadyCid(keyId: string, keyEpoch: number, groupKey: Uint8Array, readyStatementCids: readonly Uint8Array[]): Uint8Array {
  return digest(KEY_READY_DOMAIN, encode({ keyId, keyEpoch, groupKey, ready: [...readyStatementCids] }));
}

export function permitIdOf(p: { clusterId: string; opId: string; keyId: string; keyEpoch: number; messageDigest: Uint8Array; index: number; nodeId: string }): Uint8Array {
  return digest(PERMIT_DOMAIN, encode({ ...p }));
}

/** The submission's content: the same opId with other content (another request included) conflicts. */
export function submissionCid(opId: string, act: Act, approval: GovernanceDecision | null, request: SignedActRequest | null): Uint8Array {
  return digest(SUBMISSION_DOMAIN, encode({ opId, act: actToCbor(act), approval: approval === null ? null : decisionToCbor(approval), request: request === null ? null : actRequestToCbor(request) }));
}

/** The digest the publication receipt names: the act's signatures, one per message, in order. */
export function artifactDigest(signatures: readonly Uint8Array[]): Uint8Array {
  return digest(ARTIFACT_DOMAIN, encode([...signatures]));
}

/**
 * The networks a key of each scheme can sign for: FROST(Ed25519) signs Solana messages, Taproot
 * (BIP 340 over a BIP 341 tweaked key) Bitcoin transactions; any key may sign raw messages only.
 */
const SCHEME_NETWORKS: { readonly [scheme: string]: readonly Network[] } = {
  ed25519: ['solana-mainnet', 'solana-devnet', 'solana-testnet', 'none'],
  taproot: ['bitcoin-mainnet', 'bitcoin-testnet', 'bitcoin-regtest', 'none'],
  secp256k1: ['none'],
};

/**
 * The facts of an act's transaction, parsed again from its bytes against the key's context and
 * the asset table (deterministic, so every node gets the same ones; never stored in the state).
 * Memoized per act object and context: a memo only, it never changes the answer.
 */
const factsMemo = new WeakMap<object, { key: KeyContext; assets: AssetTable; facts: TxFacts }>();

function parsedFacts(act: Act, key: KeyContext, assets: AssetTable): TxFacts {
  const m = factsMemo.get(act);
  if (m !== undefined && m.assets === assets && m.key.keyId === key.keyId && m.key.scheme === key.scheme && m.key.network === key.network && bytesEqual(m.key.groupKey, key.groupKey)) return m.facts;
  const facts = deriveActFields(act.kind, act.tx, key, assets).facts;
  factsMemo.set(act, { key, assets, facts });
  return facts;
}

/** The facts of an admitted act (its transaction parsed at admission, so a refusal here means the asset table changed since). */
function factsOfOp(c: ClusterState, op: OpRecord): TxFacts | Outcome {
  const key = keyContextOf(c, op.act.keyId);
  if (key === null) return refuse('UNKNOWN_KEY', `no group key for ${op.act.keyId}`);
  try {
    return parsedFacts(op.act, key, assetTable(c));
  } catch (e) {
    if (isCustodyError(e)) return refuse(e.reason, `the transaction of ${op.opId} no longer parses: ${e.detail}`);
    throw e;
  }
}

// ------------------------------------------------------------------------------------------------
// Outcomes of one handler
// ------------------------------------------------------------------------------------------------

interface Extra {
  readonly opState?: OpState;
  readonly permitId?: Uint8Array;
  readonly admission?: AdmissionVerdict;
}

type Outcome =
  | { readonly kind: 'accept'; readonly cluster: ClusterState; readonly effect: string; readonly extra?: Extra }
  | { readonly kind: 'record'; readonly cluster: ClusterState; readonly reason: ReasonCode; readonly detail: string; readonly extra?: Extra }
  | { readonly kind: 'refuse'; readonly reason: ReasonCode; readonly detail: string; readonly extra?: Extra }
  | { readonly kind: 'replay'; readonly ok: boolean; readonly reason: ReasonCode | null; readonly detail: string; readonly extra?: Extra };

const refuse = (reason: ReasonCode, detail: string, extra?: Extra): Outcome => ({ kind: 'refuse', reason, detail, ...(extra ? { extra } : {}) });

/** Everything a handler may read about the entry being applied. */
interface Ctx {
  readonly index: number;
  readonly stampMs: number;
  readonly nowMs: number;
  readonly eventCid: Uint8Array;
  /** Chain head after this event, if it is accepted or recorded (receipts name it). */
  readonly chainHead: Uint8Array;
  /** Where ended acts are, when they are not kept in memory. */
  readonly archive: ArchiveReader | null;
  /** Acts that end in this entry, in the order they end (moved to the archive after the handler). */
  readonly ended: string[];
}

function own<T>(m: { readonly [k: string]: T }, k: string): T | undefined {
  return Object.hasOwn(m, k) ? m[k] : undefined;
}

/** Every map of the state is persistent (ledger/pmap.ts): a write shares all but one shard. */
function put<T>(m: { readonly [k: string]: T }, k: string, v: T): { readonly [k: string]: T } {
  return pmapSet(m, k, v);
}

// ------------------------------------------------------------------------------------------------
// apply
// ------------------------------------------------------------------------------------------------

/**
 * Applies one entry. With `archive`, acts that end leave the state and come back in `archived`
 * (ledger/archive.ts): the caller must make the archive answer for them before the next entry.
 */
export function apply(state: LedgerState, entry: LedgerEntry, archive?: ArchiveReader): { state: LedgerState; result: ApplyResult; archived: readonly ArchiveRecord[] } {
  // The driver hands entries in log order; anything else is a bug upstream, not an input error.
  assert(Number.isSafeInteger(entry.index) && entry.index > state.index, `entry index ${entry.index} after ${state.index}`);
  assert(Number.isSafeInteger(entry.stampMs) && entry.stampMs >= 0, `entry stamp ${entry.stampMs}`);
  const nowMs = Math.max(state.clockMs, entry.stampMs);
  const base: LedgerState = { ...state, index: entry.index, clockMs: nowMs };

  const refused = (reason: ReasonCode, detail: string, type: EventType | null, evCid: Uint8Array | null) => ({
    state: base,
    result: { ok: false as const, index: entry.index, type, reason, detail, applied: false, eventCid: evCid, replayed: false },
    archived: [],
  });

  if (entry.event.length > limits.eventBytesMax) {
    return refused('PAYLOAD_REJECTED', `event of ${entry.event.length} bytes exceeds ${limits.eventBytesMax}`, null, null);
  }
  let event: LedgerEvent;
  try {
    event = eventFromCbor(decode(entry.event));
  } catch (e) {
    if (e instanceof ShapeError || (e instanceof CustodyError && e.reason === 'PAYLOAD_REJECTED')) {
      return refused('PAYLOAD_REJECTED', e.message, null, null);
    }
    throw e;
  }
  const evCid = eventCid(entry.event);
  const ahead = stampRefusal(state, event, entry.stampMs);
  if (ahead !== null) {
    // Refused, and the clock stays where it was: a stamp too far ahead moves nothing.
    return { state: { ...state, index: entry.index }, result: { ok: false, index: entry.index, type: event.type, reason: 'STAMP_AHEAD', detail: ahead, applied: false, eventCid: evCid, replayed: false }, archived: [] };
  }
  const ctx: Ctx = { index: entry.index, stampMs: entry.stampMs, nowMs, eventCid: evCid, chainHead: chainLink(state.chainHead, entry.index, entry.stampMs, evCid), archive: archive ?? null, ended: [] };

  let out: Outcome;
  if (event.type === 'ClusterGenesis') {
    out = state.cluster !== null ? refuse('GENESIS_EXISTS', 'the cluster already has a genesis') : genesis(event, ctx);
  } else if (state.cluster === null) {
    out = refuse('GENESIS_MISSING', `${event.type} before genesis`);
  } else {
    out = dispatch(state.cluster, event, ctx);
  }

  const extra = out.extra ?? {};
  switch (out.kind) {
    case 'accept':
    case 'record': {
      const ended = endActs(out.cluster, ctx);
      const next: LedgerState = { ...base, cluster: ended.cluster, chainHead: ctx.chainHead, height: state.height + 1 };
      const result: ApplyResult = out.kind === 'accept'
        ? { ok: true, index: entry.index, type: event.type, eventCid: evCid, effect: out.effect, replayed: false, ...extra }
        : { ok: false, index: entry.index, type: event.type, reason: out.reason, detail: out.detail, applied: true, eventCid: evCid, replayed: false, ...extra };
      return { state: next, result, archived: ended.archived };
    }
    case 'refuse':
      return { state: base, result: { ok: false, index: entry.index, type: event.type, reason: out.reason, detail: out.detail, applied: false, eventCid: evCid, replayed: false, ...extra }, archived: [] };
    case 'replay':
      return {
        state: base,
        archived: [],
        result: out.ok
          ? { ok: true, index: entry.index, type: event.type, eventCid: evCid, effect: out.detail, replayed: true, ...extra }
          : { ok: false, index: entry.index, type: event.type, reason: out.reason as ReasonCode, detail: out.detail, applied: false, eventCid: evCid, replayed: true, ...extra },
      };
  }
}

/** Applies entries in order (ended acts going to `archive` when one is given); returns the final state and every result. */
export function applyAll(state: LedgerState, entries: readonly LedgerEntry[], archive?: MemoryArchive): { state: LedgerState; results: ApplyResult[] } {
  const results: ApplyResult[] = [];
  let s = state;
  for (const e of entries) {
    const r = apply(s, e, archive);
    archive?.add(r.archived);
    s = r.state;
    results.push(r.result);
  }
  return { state: s, results };
}

/**
 * Acts that ended in this entry are chained into `archived` (with or without an archive, so the
 * root is the same either way) and, with an archive, leave the in-memory maps with their permits.
 */
function endActs(c0: ClusterState, ctx: Ctx): { cluster: ClusterState; archived: readonly ArchiveRecord[] } {
  if (ctx.ended.length === 0) return { cluster: c0, archived: [] };
  let c = c0;
  let acc = c.archived;
  let inFlight = c.inFlight;
  let byState = c.endedByState;
  const archived: ArchiveRecord[] = [];
  for (const id of ctx.ended) {
    const op = own(c.ops, id) as OpRecord;
    assert(TERMINAL_OP_STATES.includes(op.state), `act ${id} ended as ${op.state}`);
    const hex = op.permitId === null ? null : toHex(op.permitId);
    const permit = hex === null ? null : (own(c.permits, hex) ?? null);
    const bytes = encodeArchived({ op, permit });
    archived.push({ op, permit, bytes, seq: acc.count });
    acc = archiveLink(acc, bytes);
    // A Denied act ends at its submission: it was never in flight.
    if (op.state !== 'Denied') inFlight--;
    byState = put(byState, op.state, (own(byState, op.state) ?? 0) + 1);
    if (ctx.archive !== null) {
      c = { ...c, ops: pmapDelete(c.ops, id), permits: hex === null ? c.permits : pmapDelete(c.permits, hex) };
    }
  }
  return { cluster: { ...c, archived: acc, inFlight, endedByState: byState }, archived };
}

/** An act by idempotency key: in flight (or kept in memory), else from the archive. */
function opById(c: ClusterState, opId: string, ctx: Ctx): OpRecord | undefined {
  return own(c.ops, opId) ?? ctx.archive?.act(opId);
}

function permitByHex(c: ClusterState, hex: string, ctx: Ctx): PermitRecord | undefined {
  return own(c.permits, hex) ?? ctx.archive?.permit(hex);
}

function dispatch(c: ClusterState, e: Exclude<LedgerEvent, { type: 'ClusterGenesis' }>, ctx: Ctx): Outcome {
  switch (e.type) {
    case 'GovernanceDecision': return governanceDecision(c, e.decision, ctx);
    case 'DkgRound1Published': return round1(c, e.statement, ctx);
    case 'KeyReady': return keyReady(c, e.statement, ctx);
    case 'RedealReady': return redealReady(c, e.statement, ctx);
    case 'KeyObjectPublished': return keyObjectPublished(c, e, ctx);
    case 'FencingRecord': return fencing(c, e.statement, ctx);
    case 'EquivocationEvidence': return equivocationEvidence(c, e.first, e.second, ctx);
    case 'ActSubmitted': return actSubmitted(c, e, ctx);
    case 'ActPermitIssued': return actPermitIssued(c, e, ctx);
    case 'ActSigningSetFixed': return actSigningSetFixed(c, e, ctx);
    case 'ActExecuted': return actExecuted(c, e, ctx);
    case 'ActPublished': return actPublished(c, e, ctx);
    case 'ActSettled': return actSettled(c, e, ctx);
    case 'ActAborted': return actAborted(c, e, ctx);
    case 'ActDenialRecorded': return denialRecorded(c, e, ctx);
    case 'ClockTick': return clockTick(c, e, ctx);
    case 'KeyBackedUp': return keyBackedUp(c, e, ctx);
    case 'BackupDrilled': return backupDrilled(c, e, ctx);
    case 'ShareRecovered': return shareRecovered(c, e, ctx);
    case 'ShareRepaired': return shareRepaired(c, e, ctx);
    case 'OperatorCall': return operatorCall(c, e);
    case 'TrustPolicySigned': return trustPolicySigned(c, e);
  }
}

// ------------------------------------------------------------------------------------------------
// Time
// ------------------------------------------------------------------------------------------------

/*
 * How far a stamp may run ahead (STAMP_AHEAD). The ledger's only time is its entries' stamps,
 * clamped so it never runs backwards; before this bound, one proposer whose clock ran a year ahead
 * moved the ledger clock a year ahead for good, expiring every decision and approval and closing
 * every policy window.
 *
 * Rule (pure: it reads the state and the entry only). After genesis, an entry stamped more than
 * `ledger.stampAheadMs` (B) after the ledger clock is refused STAMP_AHEAD and the clock stays
 * where it was. One exception lets time jump further: a GovernanceDecision whose approver quorum
 * verifies at that stamp, stamped at most B after the decision's own `issuedMs`: a quorum of
 * approvers, each with their own clock and key, vouches for that time, which no node can forge.
 *
 * Why honest entries are never refused: honest clocks agree to far less than B (NTP keeps them
 * within milliseconds; B is minutes). While the ledger is idle its leader proposes a ClockTick
 * every `ledger.clockTickIdleMs` (< B) of ledger silence (node/lifecycle/clock.ts), so the ledger
 * clock trails real time by less than that, and the next honest stamp is within B of it, however
 * long the idle gap. Only when no leader ran for longer than B (the whole cluster, or a majority,
 * down) is the first stamp after it further ahead: then the leader's first tick carrying a
 * majority of voters' signed clock readings moves the clock (attested time, below), or a
 * quorum-signed decision does; until then each node refuses its own proposals locally (below), so
 * nothing goes to Raft that would be refused.
 *
 * Local refusal (node/lifecycle/driver-ledger.ts): a node applies this same rule to its own
 * proposal, stamped with its own clock, before it reaches Raft: a node whose clock is implausibly
 * ahead of the ledger's time (more than B, which the ticks make "more than B ahead of every honest
 * clock") proposes nothing and says STAMP_AHEAD.
 *
 * What a node with a fast clock can and cannot do afterwards:
 *  - running this software, nothing: every proposal it makes, ticks included, is refused locally
 *    (and would be refused at apply), for as long as its clock is more than B ahead; the ledger
 *    clock stays with the honest nodes' stamps, so decisions, approvals and windows expire on time.
 *  - a clock up to B ahead moves the ledger clock up to B ahead of real time, once; honest stamps
 *    then clamp to it (time never runs backwards) until real time catches up. B bounds that skew.
 *  - a node that lies on purpose (compromised, not merely misconfigured) can stamp each of its
 *    entries just under B ahead of the last, and so push the ledger clock forward by B per entry it
 *    gets committed (STAMP_AHEAD makes each step at most B, no longer a year at once).
 *
 * Attested time (the second exception, so that time can catch up without approvers). When no
 * leader ran for longer than B (a majority outage, a cluster restored from an old snapshot or
 * seeded from old journals), every honest stamp is more than B past the ledger clock, and without
 * this exception every proposal stayed refused until approvers signed a decision. A ClockTick may
 * carry clock readings (ledger/clock-reading.ts): each a voter's statement "my clock read T",
 * signed with its identity key over domain `custody-ledger/v1/clock-reading`, the cluster id, its
 * node id and T. Rule: count the readings of this cluster by voters of the applied roster
 * (rosterVoters, the voter set cosigned checkpoints use) whose signatures verify, one voter once;
 * if they come from a majority of the voters, the attested time A is the smallest counted reading,
 * and the tick's bound is max(ledger clock, A) + B instead of ledger clock + B. Otherwise the tick
 * is judged as any entry.
 *
 *   Message flow (node/lifecycle/clock.ts): the leader, finding its ledger clock more than B
 *   behind its own, asks every voter (itself included, peer RPC ClockReading, bounded by
 *   lifecycle.clockReadingWaitMs) for a reading of its own clock; each voter signs what its clock
 *   reads now, never a time it is given; the leader keeps the answers that verify, one per voter,
 *   the latest majority of them (chooseReadings), and proposes a ClockTick stamped with its own
 *   clock carrying them. Its local refusal (driver-ledger.ts) and every replica apply this rule.
 *
 *   Safety (trusted: a majority of voters keep their keys and report their clocks honestly; not
 *   trusted: the proposer, any minority of voters, the network). Any majority of the voters holds
 *   an honest one, so A, the smallest reading of a majority, is at most an honest clock's reading
 *   when it was signed, which is at most honest time now. So the tick's stamp, and the ledger
 *   clock after it, is at most honest time + B: a leader with a fast clock, or a compromised one
 *   with its own reading a year ahead and the readings of lying minority voters, still cannot take
 *   the ledger clock further than B past honest time; its forged readings of others do not verify.
 *   Replayed old readings are harmless: they vouch for a past time, and time never runs backwards
 *   (apply takes max(ledger clock, stamp)), so an old majority bounds the tick by the old time + B.
 *   Readings of another cluster, by a removed node or a non-voter, or with a bad signature are not
 *   counted, and a second reading by one voter adds no voter, so no one reaches a majority alone.
 *   The proposer chooses which valid readings to carry; that choice cannot break the bound (every
 *   majority contains an honest voter), and it lets an honest leader leave out a lagging or lying
 *   minority's low readings, so such a minority cannot hold the clock back either.
 *
 *   Liveness: with a majority of voters up, reachable and honest, the first leader tick after the
 *   outage carries their readings (A is their time, within NTP skew) and is accepted; from then on
 *   honest stamps are within B of the ledger clock again, with no governance decision.
 *
 *   Cost: readings are verified only for a tick stamped past the ordinary bound, at most
 *   ledger.clockReadingsMax signatures (bounded at decode); an ordinary entry pays nothing.
 */
export function stampRefusal(state: LedgerState, event: LedgerEvent, stampMs: number): string | null {
  const c = state.cluster;
  if (c === null) return null;
  const bound = state.clockMs + limits.stampAheadMs;
  if (stampMs <= bound) return null;
  if (event.type === 'GovernanceDecision') {
    const d = event.decision;
    const g = c.governance;
    if (stampMs <= d.body.issuedMs + limits.stampAheadMs && verifyDecision(d, g.roster, c.clusterId, g.epoch, stampMs).ok) return null;
  }
  if (event.type === 'ClockTick' && event.readings !== undefined) {
    const attested = attestedTime(c.nodes, c.clusterId, event.readings);
    if (attested !== null && stampMs <= Math.max(state.clockMs, attested) + limits.stampAheadMs) return null;
    if (attested !== null) return `stamp ${stampMs} is ${stampMs - attested} ms after the time ${attested} a majority of the voters attests: more than ${limits.stampAheadMs} ms ahead`;
  }
  return `stamp ${stampMs} is ${stampMs - state.clockMs} ms after the ledger clock ${state.clockMs}: more than ${limits.stampAheadMs} ms ahead, and no approver quorum or majority of voter clock readings vouches for that time`;
}

function clockTick(c: ClusterState, e: Extract<LedgerEvent, { type: 'ClockTick' }>, ctx: Ctx): Outcome {
  const bad = checkProposer(c, e);
  if (bad !== null) return bad;
  return { kind: 'accept', cluster: c, effect: `ledger clock at ${ctx.nowMs}` };
}

// ------------------------------------------------------------------------------------------------
// Genesis
// ------------------------------------------------------------------------------------------------

function validateNewNode(c: { readonly nodes: { readonly [id: string]: NodeRecord } }, n: NodeInfo): Outcome | null {
  if (own(c.nodes, n.id) !== undefined) return refuse('INVALID_TRANSITION', `node id ${n.id} is already in use`);
  if (!isAcceptablePublicKey(n.identityKey)) return refuse('PAYLOAD_REJECTED', `node ${n.id} has an unacceptable identity key`);
  for (const other of Object.values(c.nodes)) {
    if (bytesEqual(other.identityKey, n.identityKey)) return refuse('PAYLOAD_REJECTED', `node ${n.id} shares an identity key with ${other.id}`);
  }
  if (Object.keys(c.nodes).length >= limits.nodesMax) return refuse('LIMIT_EXCEEDED', `more than ${limits.nodesMax} nodes`);
  return null;
}

function newNode(n: NodeInfo): NodeRecord {
  return { id: n.id, identityKey: n.identityKey, passport: n.passport, status: 'active', fencedPassports: [], equivocated: false };
}

function genesis(e: Extract<LedgerEvent, { type: 'ClusterGenesis' }>, ctx: Ctx): Outcome {
  const rv = validateRoster(e.roster);
  if (!rv.ok) return refuse(rv.reason, rv.detail);
  let nodes: { readonly [id: string]: NodeRecord } = {};
  if (e.nodes.length === 0) return refuse('PAYLOAD_REJECTED', 'genesis needs at least one node');
  for (const n of e.nodes) {
    const bad = validateNewNode({ nodes }, n);
    if (bad !== null) return bad;
    nodes = put(nodes, n.id, newNode(n));
  }
  const cluster: ClusterState = {
    clusterId: e.clusterId,
    genesisCid: ctx.eventCid,
    governance: { epoch: 0, headCid: ctx.eventCid, roster: e.roster, policy: e.policy, frozen: null },
    nodes, keys: {}, ops: {}, opCount: 0, inFlight: 0, archived: EMPTY_ARCHIVE_HEAD, endedByState: {}, permits: {}, policyHistory: emptyHistory(e.policy), consumed: {}, statements: {}, evidence: {},
  };
  return { kind: 'accept', cluster, effect: `genesis of ${e.clusterId} with ${e.nodes.length} nodes and ${e.roster.approvers.length} approvers` };
}

// ------------------------------------------------------------------------------------------------
// Governance decisions
// ------------------------------------------------------------------------------------------------

/** Actions still allowed under an emergency freeze: leaving it and containing a compromise. */
const ALLOWED_WHILE_FROZEN: readonly DecisionAction['kind'][] = ['Unfreeze', 'EmergencyFreeze', 'ApproversChanged', 'NodeRemoved', 'NodeRebound', 'KeyRetired', 'OperatorRevoked', 'NodeCertificateRevoked', 'NodeFenced'];

function governanceDecision(c: ClusterState, d: GovernanceDecision, ctx: Ctx): Outcome {
  const g = c.governance;
  const v = verifyDecision(d, g.roster, c.clusterId, g.epoch, ctx.nowMs);
  if (!v.ok) return refuse(v.reason, v.detail);
  const a = d.body.action;
  if (a.kind === 'ActApproved') return refuse('PAYLOAD_REJECTED', 'an ActApproved decision travels inside its ActSubmitted');
  if (g.frozen !== null && !ALLOWED_WHILE_FROZEN.includes(a.kind)) return refuse('FROZEN', `${a.kind} while frozen since index ${g.frozen.sinceIndex}`);
  if (a.kind === 'PublicationReleased') return publicationReleased(c, d, a, v.cid, ctx);
  // Governance actions form one chain: each names the decision before it (authority continuity).
  if (!bytesEqual(d.body.parentCid, g.headCid)) {
    return refuse('BINDING_MISMATCH', `decision follows ${toHex(d.body.parentCid)}, the governance head is ${toHex(g.headCid)}`);
  }
  const r = governanceAction(c, a, v.cid, ctx);
  if (r.kind !== 'accept') return r;
  const bump = a.kind === 'ApproversChanged' || a.kind === 'PolicyChanged';
  const cluster: ClusterState = {
    ...r.cluster,
    governance: { ...r.cluster.governance, headCid: v.cid, epoch: bump ? g.epoch + 1 : g.epoch },
  };
  const withChain = trustChainAfter(c, cluster);
  return typeof withChain === 'string' ? refuse('PAYLOAD_REJECTED', withChain) : { ...r, cluster: withChain };
}

function activeNodeForCeremony(c: ClusterState, id: string): Outcome | null {
  const n = own(c.nodes, id);
  if (n === undefined || n.status === 'removed') return refuse('UNKNOWN_NODE', `participant ${id} is not on the roster`);
  if (n.status === 'fenced') return refuse('SPLIT_BRAIN_FENCED', `participant ${id} is fenced`);
  if (n.equivocated) return refuse('EQUIVOCATION', `participant ${id} is flagged for equivocation`);
  return null;
}

function newEpoch(epoch: number, threshold: number, participants: readonly string[], authorizedBy: Uint8Array): EpochRecord {
  return { epoch, threshold, participants: [...participants], authorizedBy, status: 'ceremony', round1: {}, ready: {}, keyReadyCid: null, groupKey: null, activatedBy: null };
}

function epochsOf(k: KeyRecord): EpochRecord[] {
  return Object.values(k.epochs);
}

function nextEpoch(k: KeyRecord): number {
  return epochsOf(k).reduce((m, e) => Math.max(m, e.epoch), -1) + 1;
}

function withKey(c: ClusterState, k: KeyRecord): ClusterState {
  return { ...c, keys: put(c.keys, k.id, k) };
}

function withEpoch(k: KeyRecord, e: EpochRecord): KeyRecord {
  return { ...k, epochs: put(k.epochs, String(e.epoch), e) };
}

function ceremonyCheck(c: ClusterState, threshold: number, participants: readonly string[]): Outcome | null {
  // t >= 2: one compromised node must never be able to sign alone (DESIGN §4).
  if (threshold < 2 || threshold > participants.length) return refuse('PAYLOAD_REJECTED', `threshold ${threshold} must be in [2, ${participants.length}]`);
  for (const p of participants) {
    const bad = activeNodeForCeremony(c, p);
    if (bad !== null) return bad;
  }
  return null;
}

function governanceAction(c: ClusterState, a: Exclude<DecisionAction, { kind: 'ActApproved' | 'PublicationReleased' }>, dCid: Uint8Array, ctx: Ctx): Outcome {
  const accept = (cluster: ClusterState, effect: string): Outcome => ({ kind: 'accept', cluster, effect });
  switch (a.kind) {
    case 'DkgAuthorized': {
      if (own(c.keys, a.keyId) !== undefined) return refuse('INVALID_TRANSITION', `key ${a.keyId} already exists`);
      const bad = ceremonyCheck(c, a.threshold, a.participants);
      if (bad !== null) return bad;
      if (!(SCHEME_NETWORKS[a.scheme] ?? []).includes(a.network)) return refuse('PAYLOAD_REJECTED', `a ${a.scheme} key cannot sign for ${a.network}`);
      const k: KeyRecord = { id: a.keyId, scheme: a.scheme, network: a.network, status: 'pending', activeEpoch: null, publicKey: null, epochs: {} };
      return accept(withKey(c, withEpoch(k, newEpoch(0, a.threshold, a.participants, dCid))), `DKG authorized for ${a.keyId}`);
    }
    case 'KeyActivated': {
      const k = own(c.keys, a.keyId);
      if (k === undefined) return refuse('UNKNOWN_KEY', `no key ${a.keyId}`);
      if (k.status === 'retired') return refuse('KEY_NOT_ACTIVE', `key ${a.keyId} is retired`);
      const e = own(k.epochs, String(a.keyEpoch));
      if (e === undefined) return refuse('STALE_EPOCH', `key ${a.keyId} has no epoch ${a.keyEpoch}`);
      if (e.status === 'ceremony') {
        const missing = e.participants.filter((p) => own(e.ready, p) === undefined);
        if (missing.length > 0) return refuse('DKG_INCOMPLETE', `no KeyReady yet from ${missing.join(', ')}`);
        return refuse('KEY_NOT_PUBLISHED', `key ${a.keyId} epoch ${a.keyEpoch} has no KeyObjectPublished`);
      }
      if (e.status === 'active') return refuse('INVALID_TRANSITION', `key ${a.keyId} epoch ${a.keyEpoch} is already active`);
      if (e.status !== 'published') return refuse('STALE_EPOCH', `key ${a.keyId} epoch ${a.keyEpoch} is ${e.status}`);
      if (e.keyReadyCid === null || !bytesEqual(e.keyReadyCid, a.keyReadyCid)) {
        return refuse('BINDING_MISMATCH', 'the activation names another key_ready_cid than the published key object');
      }
      let next: KeyRecord = { ...k, status: 'active', activeEpoch: a.keyEpoch };
      if (k.activeEpoch !== null) {
        const old = own(k.epochs, String(k.activeEpoch)) as EpochRecord;
        next = withEpoch(next, { ...old, status: 'superseded' });
      }
      next = withEpoch(next, { ...e, status: 'active', activatedBy: dCid });
      return accept(withKey(c, next), `key ${a.keyId} active at epoch ${a.keyEpoch}`);
    }
    case 'KeyRefreshed':
    case 'KeyReshared': {
      const k = own(c.keys, a.keyId);
      if (k === undefined) return refuse('UNKNOWN_KEY', `no key ${a.keyId}`);
      if (k.status !== 'active' || k.activeEpoch === null) return refuse('KEY_NOT_ACTIVE', `key ${a.keyId} is ${k.status}`);
      const expected = nextEpoch(k);
      if (a.keyEpoch !== expected) return refuse('STALE_EPOCH', `the next epoch of ${a.keyId} is ${expected}, not ${a.keyEpoch}`);
      const current = own(k.epochs, String(k.activeEpoch)) as EpochRecord;
      const threshold = a.kind === 'KeyReshared' ? a.threshold : current.threshold;
      const participants = a.kind === 'KeyReshared' ? a.participants : current.participants;
      const bad = ceremonyCheck(c, threshold, participants);
      if (bad !== null) return bad;
      // A ceremony still open (stuck on a removed or silent participant) is superseded: the new
      // decision aborts it, so one decision is always enough to get a key moving again.
      let next = k;
      for (const e of epochsOf(k)) if (e.status === 'ceremony' || e.status === 'published') next = withEpoch(next, { ...e, status: 'aborted' });
      return accept(withKey(c, withEpoch(next, newEpoch(a.keyEpoch, threshold, participants, dCid))), `${a.kind === 'KeyRefreshed' ? 'refresh' : 'reshare'} of ${a.keyId} to epoch ${a.keyEpoch} authorized`);
    }
    case 'KeyRetired': {
      const k = own(c.keys, a.keyId);
      if (k === undefined) return refuse('UNKNOWN_KEY', `no key ${a.keyId}`);
      if (k.status === 'retired') return refuse('INVALID_TRANSITION', `key ${a.keyId} is already retired`);
      let next: KeyRecord = { ...k, status: 'retired', activeEpoch: null };
      for (const e of epochsOf(k)) {
        if (e.status === 'active' || e.status === 'ceremony' || e.status === 'published') next = withEpoch(next, { ...e, status: 'retired' });
      }
      return accept(withKey(c, next), `key ${a.keyId} retired`);
    }
    case 'NodeAdded': {
      const bad = validateNewNode(c, a.node);
      if (bad !== null) return bad;
      return accept({ ...c, nodes: put(c.nodes, a.node.id, newNode(a.node)) }, `node ${a.node.id} added`);
    }
    case 'NodeRemoved': {
      const n = own(c.nodes, a.nodeId);
      if (n === undefined || n.status === 'removed') return refuse('UNKNOWN_NODE', `no node ${a.nodeId}`);
      return accept(dropFenceReports({ ...c, nodes: put(c.nodes, n.id, { ...n, status: 'removed' }) }, n.id), `node ${a.nodeId} removed`);
    }
    case 'NodeRebound': {
      const n = own(c.nodes, a.nodeId);
      if (n === undefined || n.status === 'removed') return refuse('UNKNOWN_NODE', `no node ${a.nodeId}`);
      if (a.passport === n.passport || n.fencedPassports.includes(a.passport)) {
        return refuse('BINDING_MISMATCH', `passport ${a.passport} was used before; a rebind needs a fresh one`);
      }
      // The old passport is retired with the rebind: whatever still holds it stays fenced.
      const fenced = n.fencedPassports.includes(n.passport) ? n.fencedPassports : [...n.fencedPassports, n.passport];
      return accept(dropFenceReports({ ...c, nodes: put(c.nodes, n.id, { ...n, passport: a.passport, status: 'active', fencedPassports: fenced, equivocated: false }) }, n.id), `node ${a.nodeId} rebound`);
    }
    case 'NodeFenced': {
      // Approver-signed (verifyDecision checked the quorum before this): see fencing() above.
      const n = own(c.nodes, a.nodeId);
      if (n === undefined || n.status === 'removed') return refuse('UNKNOWN_NODE', `no node ${a.nodeId}`);
      if (n.fencedPassports.includes(a.passport)) return refuse('INVALID_TRANSITION', `passport ${a.passport} of ${a.nodeId} is already fenced`);
      if (a.passport !== n.passport) return refuse('BINDING_MISMATCH', `${a.nodeId} holds another passport than ${a.passport}`);
      const next: NodeRecord = { ...n, status: 'fenced', fencedPassports: [...n.fencedPassports, a.passport] };
      return accept(dropFenceReports({ ...c, nodes: put(c.nodes, n.id, next) }, n.id), `passport ${a.passport} of ${a.nodeId} fenced by decision: ${a.reason}`);
    }
    case 'ApproversChanged': {
      const rv = validateRoster(a.roster);
      if (!rv.ok) return refuse(rv.reason, rv.detail);
      return accept({ ...c, governance: { ...c.governance, roster: a.roster } }, `approver roster replaced (${a.roster.approvers.length} approvers, ${a.roster.quorum.threshold} to decide)`);
    }
    case 'PolicyChanged': {
      // An approver group naming someone off the roster could never gather that approval: a typo
      // that would hold acts for good is refused before it takes effect.
      const roster = new Set(c.governance.roster.approvers.map((x) => x.id));
      const strangers = a.policy.approverGroups.flatMap((gr) => gr.members.filter((m) => !roster.has(m)).map((m) => `${m} (group ${gr.name})`));
      if (strangers.length > 0) return refuse('POLICY_DOCUMENT_INVALID', `approver group members not on the roster in force: ${strangers.join(', ')}`);
      // The next act is judged by the new document; acts already admitted keep their admission
      // (the publication gate applies the new one to them, ledger/admission.ts). The history keeps
      // the admissions the new document's windows read; lifetime sums carry over.
      return accept({ ...c, governance: { ...c.governance, policy: a.policy }, policyHistory: pruneHistory(withPolicy(c.policyHistory, a.policy), ctx.nowMs) }, `act policy replaced (${a.policy.rules.length} rules)`);
    }
    case 'EmergencyFreeze':
      if (c.governance.frozen !== null) return refuse('INVALID_TRANSITION', 'already frozen');
      return accept({ ...c, governance: { ...c.governance, frozen: { reason: a.reason, decisionCid: dCid, sinceIndex: ctx.index } } }, `frozen: ${a.reason}`);
    case 'Unfreeze':
      if (c.governance.frozen === null) return refuse('INVALID_TRANSITION', 'not frozen');
      return accept({ ...c, governance: { ...c.governance, frozen: null } }, 'unfrozen');
    case 'OperatorRevoked':
    case 'NodeCertificateRevoked':
      return certificateRevoked(c, a, dCid, ctx);
    case 'BackupPolicy': {
      // The same verdict every kernel reaches on this decision (kernel/authority.ts): a policy
      // the ledger refuses is one no kernel encrypts to.
      const bad = validateBackupRecipients(a.recipients);
      if (bad !== null) return refuse('BACKUP_POLICY_INVALID', bad);
      const backupPolicy = { recipients: a.recipients.map((r) => ({ label: r.label, recipient: r.recipient })), decisionCid: dCid, sinceIndex: ctx.index };
      return accept({ ...c, governance: { ...c.governance, backupPolicy } }, `share backups go to ${a.recipients.map((r) => r.label).join(', ')}`);
    }
    case 'RecoveryAuthorized':
      return recoveryAuthorized(c, a, dCid, ctx);
    case 'BackupsDestroyed':
      return backupsDestroyed(c, a, dCid, ctx);
    case 'RepairAuthorized':
      return repairAuthorized(c, a, dCid, ctx);
    case 'WitnessesChanged':
      return witnessesChanged(c, a);
  }
}

/**
 * The witness set of the trust policy (ledger/trust-chain.ts): checked as a policy's witness lines
 * (witnessSetRefusal, PAYLOAD_REJECTED otherwise), then recorded; the next block names it.
 */
function witnessesChanged(c: ClusterState, a: Extract<DecisionAction, { kind: 'WitnessesChanged' }>): Outcome {
  const bad = witnessSetRefusal(checkpointOrigin(c.clusterId), a.witnesses, a.quorum);
  if (bad !== null) return refuse('PAYLOAD_REJECTED', bad);
  const cluster: ClusterState = { ...c };
  delete (cluster as { witnesses?: unknown }).witnesses;
  return {
    kind: 'accept', cluster: a.witnesses.length === 0 ? cluster : { ...cluster, witnesses: { vkeys: [...a.witnesses], quorum: a.quorum } },
    effect: a.witnesses.length === 0 ? 'the trust policy names no witness' : `the trust policy names ${a.witnesses.length} witnesses, ${a.quorum} to cosign`,
  };
}

/**
 * KeyRetired ends a key's shares in the kernels but not its backups: the KeyBackedUp records and
 * the files stay (an institution may have to keep or restore a retired key's material). Only this
 * decision ends them, per epoch: refused for a key that is not retired (KEY_NOT_RETIRED), an
 * unknown key (UNKNOWN_KEY), or an epoch with no recorded backup or whose destruction was already
 * decided (BACKUPS_NOT_FOUND), so the decision names exactly backups that exist. It is recorded
 * per epoch; the KeyBackedUp records stay for audit, and every node deletes the files of those
 * epochs it wrote (node/lifecycle/backups.ts).
 */
function backupsDestroyed(c: ClusterState, a: Extract<DecisionAction, { kind: 'BackupsDestroyed' }>, dCid: Uint8Array, ctx: Ctx): Outcome {
  const k = own(c.keys, a.keyId);
  if (k === undefined) return refuse('UNKNOWN_KEY', `no key ${a.keyId}`);
  if (k.status !== 'retired') return refuse('KEY_NOT_RETIRED', `key ${a.keyId} is ${k.status}: its backups are destroyed only after KeyRetired`);
  let destroyed = destroyedBackupsOf(c);
  for (const epoch of a.epochs) {
    const rk = drillRecordKey(a.keyId, epoch);
    const prev = own(destroyed, rk);
    if (prev !== undefined) return refuse('BACKUPS_NOT_FOUND', `the backups of ${a.keyId} epoch ${epoch} were destroyed by the decision at index ${prev.index}`);
    const held = Object.values(backupsOf(c)).some((b) => b.keyId === a.keyId && b.keyEpoch === epoch);
    if (!held) return refuse('BACKUPS_NOT_FOUND', `the ledger records no backup of ${a.keyId} epoch ${epoch}`);
    destroyed = put(destroyed, rk, { keyId: a.keyId, keyEpoch: epoch, decisionCid: dCid, index: ctx.index, stampMs: ctx.stampMs });
  }
  return { kind: 'accept', cluster: { ...c, destroyedBackups: destroyed }, effect: `share backups of ${a.keyId} epochs ${a.epochs.join(', ')} destroyed` };
}

// ------------------------------------------------------------------------------------------------
// Share backups
// ------------------------------------------------------------------------------------------------

/**
 * The key and its epoch when the key is live (not retired) and the epoch active; otherwise the
 * refusal: UNKNOWN_KEY, KEY_NOT_ACTIVE (retired), STALE_EPOCH (any other epoch state). The rule
 * every backup, recovery and repair record of a key epoch is taken under.
 */
function liveEpoch(c: ClusterState, keyId: string, keyEpoch: number): { readonly k: KeyRecord; readonly ep: EpochRecord } | Outcome {
  const k = own(c.keys, keyId);
  if (k === undefined) return refuse('UNKNOWN_KEY', `no key ${keyId}`);
  if (k.status === 'retired') return refuse('KEY_NOT_ACTIVE', `key ${keyId} is retired`);
  const ep = own(k.epochs, String(keyEpoch));
  if (ep === undefined || ep.status !== 'active') return refuse('STALE_EPOCH', `key ${keyId} epoch ${keyEpoch} is ${ep?.status ?? 'unknown'}, not active`);
  return { k, ep };
}

/**
 * A node records that it wrote the backup of its share of a key epoch (ledger/backup-policy.ts).
 * Accepted only in the proposer's own name (checkProposer), for an epoch that is active and that
 * the proposer holds a share of under the identifier named, and under the BackupPolicy in force
 * (its recipients digest). One record per participant and epoch: the same record again is a
 * replay, another file under the same policy conflicts, and a backup under a later policy
 * replaces the record (its file is encrypted to the custodians now in force).
 */
function keyBackedUp(c: ClusterState, e: Extract<LedgerEvent, { type: 'KeyBackedUp' }>, ctx: Ctx): Outcome {
  const bad = checkProposer(c, e);
  if (bad !== null) return bad;
  const policy = c.governance.backupPolicy;
  if (policy === undefined) return refuse('BACKUP_POLICY_MISSING', 'no BackupPolicy decision is in force');
  if (!bytesEqual(e.recipientsDigest, backupRecipientsDigest(policy.recipients))) {
    return refuse('BACKUP_RECIPIENTS_MISMATCH', `the backup names recipients ${toHex(e.recipientsDigest)}, the policy in force (index ${policy.sinceIndex}) has ${toHex(backupRecipientsDigest(policy.recipients))}`);
  }
  const live = liveEpoch(c, e.keyId, e.keyEpoch);
  if ('kind' in live) return live;
  const { k, ep } = live;
  const at = ep.participants.indexOf(e.nodeId);
  if (at < 0) return refuse('WRONG_RECIPIENT', `${e.nodeId} holds no share of ${e.keyId} epoch ${e.keyEpoch}`);
  const identifier = frostIdentifier(k.scheme, at + 1);
  if (e.identifier !== identifier) return refuse('BINDING_MISMATCH', `${e.nodeId} is identifier ${identifier} in ${e.keyId} epoch ${e.keyEpoch}, not ${e.identifier}`);
  const rk = backupRecordKey(e.keyId, e.keyEpoch, e.nodeId);
  const prev = own(backupsOf(c), rk);
  if (prev !== undefined && bytesEqual(prev.recipientsDigest, e.recipientsDigest)) {
    if (bytesEqual(prev.fileCid, e.fileCid)) return { kind: 'replay', ok: true, reason: null, detail: `the backup of ${e.nodeId} for ${e.keyId} epoch ${e.keyEpoch} is already recorded` };
    return refuse('REPLAY_OR_CONFLICT', `${e.nodeId} already recorded backup ${toHex(prev.fileCid)} of ${e.keyId} epoch ${e.keyEpoch} under this policy (index ${prev.index})`);
  }
  const rec: BackupRecord = { keyId: e.keyId, keyEpoch: e.keyEpoch, nodeId: e.nodeId, identifier, fileCid: e.fileCid, recipientsDigest: e.recipientsDigest, index: ctx.index, stampMs: ctx.stampMs };
  return { kind: 'accept', cluster: { ...c, backups: put(backupsOf(c), rk, rec) }, effect: `backup ${toHex(e.fileCid)} of ${e.keyId} epoch ${e.keyEpoch} by ${e.nodeId} recorded` };
}

/**
 * BackupDrilled: the proposing node records that an operator drilled the backups of a key epoch
 * through it (node/guardian/drill.ts). Like every journal event it is signed by its proposer
 * (checkProposer); the ledger cannot re-run the drill (it never sees a share or an identity), so
 * `passed` and the report digest are that node's word, and what the ledger does check is that
 * the record is about what it records: a live key's epoch that is active, and `backupCids` each
 * the cid of that epoch's KeyBackedUp of a distinct participant (DRILL_RECORD_INVALID otherwise),
 * all of them when `passed` (a drill that opened fewer backups did not prove every share). To keep
 * a signed record from being replayed to make an old drill look recent, `drilledAtMs` must be
 * later than the last drill recorded for the epoch and within drill.recordSkewMs of the entry's
 * stamp (REPLAY_OR_CONFLICT / DRILL_RECORD_INVALID).
 */
function backupDrilled(c: ClusterState, e: Extract<LedgerEvent, { type: 'BackupDrilled' }>, ctx: Ctx): Outcome {
  const bad = checkProposer(c, e);
  if (bad !== null) return bad;
  const live = liveEpoch(c, e.keyId, e.keyEpoch);
  if ('kind' in live) return live;
  const { k, ep } = live;
  if (Math.abs(e.drilledAtMs - ctx.stampMs) > drillLimits.recordSkewMs) {
    return refuse('DRILL_RECORD_INVALID', `the drill ran at ${e.drilledAtMs}, more than ${drillLimits.recordSkewMs} ms from the entry's stamp ${ctx.stampMs}`);
  }
  const seen = new Set<string>();
  for (const cid of e.backupCids) {
    const hex = toHex(cid);
    const holder = ep.participants.find((n) => { const r = own(backupsOf(c), backupRecordKey(e.keyId, e.keyEpoch, n)); return r !== undefined && bytesEqual(r.fileCid, cid); });
    if (holder === undefined) return refuse('DRILL_RECORD_INVALID', `${hex} is not the recorded backup of any participant of ${e.keyId} epoch ${e.keyEpoch}`);
    if (seen.has(holder)) return refuse('DRILL_RECORD_INVALID', `the backup of ${holder} is named twice`);
    seen.add(holder);
  }
  if (e.passed && seen.size !== ep.participants.length) {
    return refuse('DRILL_RECORD_INVALID', `a drill that passed opened every participant's backup; this one names ${seen.size} of ${ep.participants.length}`);
  }
  const rk = drillRecordKey(e.keyId, e.keyEpoch);
  const prev = own(drillsOf(c), rk);
  if (prev !== undefined && e.drilledAtMs <= prev.drilledAtMs) {
    return refuse('REPLAY_OR_CONFLICT', `a drill of ${e.keyId} epoch ${e.keyEpoch} at ${prev.drilledAtMs} is already recorded (index ${prev.index}); this one ran at ${e.drilledAtMs}`);
  }
  const rec: DrillRecord = {
    keyId: e.keyId, keyEpoch: e.keyEpoch, backupCids: [...e.backupCids], passed: e.passed, reportDigest: e.reportDigest, drilledAtMs: e.drilledAtMs,
    nodeId: e.nodeId, index: ctx.index, stampMs: ctx.stampMs,
  };
  return { kind: 'accept', cluster: { ...c, drills: put(drillsOf(c), rk, rec) }, effect: `drill of ${e.keyId} epoch ${e.keyEpoch} ${e.passed ? 'passed' : 'failed'} (${e.backupCids.length} backups) recorded by ${e.nodeId}` };
}

/**
 * A RecoveryAuthorized decision (kernel/recovery.ts): the kernel of `nodeId` may import its share
 * of an active key epoch recovered from one recorded backup. Accepted only for an active epoch of
 * a live key that `nodeId` holds a share of under `identifier`, with the group key the ledger
 * committed for that epoch, and naming exactly the backup file the ledger records for that
 * participant (RECOVERY_BACKUP_MISSING without one, RECOVERY_BACKUP_MISMATCH for another cid,
 * identifier or group key). The ledger cannot check the verifying share (it records only the
 * group key): that is the approvers' word, and the kernel checks the share against it. The
 * decision itself is what each kernel follows; the ledger records it per participant (replacing an
 * earlier one of the same key epoch and node) so a ShareRecovered can name it.
 */
function recoveryAuthorized(c: ClusterState, a: Extract<DecisionAction, { kind: 'RecoveryAuthorized' }>, dCid: Uint8Array, ctx: Ctx): Outcome {
  const live = liveEpoch(c, a.keyId, a.keyEpoch);
  if ('kind' in live) return live;
  const { k, ep } = live;
  const at = ep.participants.indexOf(a.nodeId);
  if (at < 0) return refuse('WRONG_RECIPIENT', `${a.nodeId} holds no share of ${a.keyId} epoch ${a.keyEpoch}`);
  const identifier = frostIdentifier(k.scheme, at + 1);
  if (a.identifier !== identifier) return refuse('RECOVERY_BACKUP_MISMATCH', `${a.nodeId} is identifier ${identifier} in ${a.keyId} epoch ${a.keyEpoch}, not ${a.identifier}`);
  if (ep.groupKey === null || !bytesEqual(ep.groupKey, a.groupKey)) return refuse('RECOVERY_BACKUP_MISMATCH', `the group key named is not the one the ledger committed for ${a.keyId} epoch ${a.keyEpoch}`);
  const rec = own(backupsOf(c), backupRecordKey(a.keyId, a.keyEpoch, a.nodeId));
  if (rec === undefined) return refuse('RECOVERY_BACKUP_MISSING', `the ledger records no backup of ${a.nodeId}'s share of ${a.keyId} epoch ${a.keyEpoch}`);
  if (rec.identifier !== a.identifier || !bytesEqual(rec.fileCid, a.backupCid)) {
    return refuse('RECOVERY_BACKUP_MISMATCH', `the ledger records backup ${toHex(rec.fileCid)} of ${a.nodeId}'s share of ${a.keyId} epoch ${a.keyEpoch}, not ${toHex(a.backupCid)}`);
  }
  const rk = backupRecordKey(a.keyId, a.keyEpoch, a.nodeId);
  const recovery: RecoveryRecord = { keyId: a.keyId, keyEpoch: a.keyEpoch, nodeId: a.nodeId, identifier, backupCid: a.backupCid, decisionCid: dCid, authorizedIndex: ctx.index, recovered: null };
  return { kind: 'accept', cluster: { ...c, recoveries: put(recoveriesOf(c), rk, recovery) }, effect: `${a.nodeId} may import its share of ${a.keyId} epoch ${a.keyEpoch} from backup ${toHex(a.backupCid)}` };
}

/**
 * A node reports that its kernel imported its share of a key epoch recovered from its backup
 * (node/lifecycle/share-import.ts). Accepted only in the proposer's own name (checkProposer), for
 * an active epoch of a live key, naming the RecoveryAuthorized the ledger recorded last for that
 * node, key and epoch (RECOVERY_NOT_AUTHORIZED without one, BINDING_MISMATCH for another decision
 * or identifier), once: the same report again is a replay and changes nothing. The ledger cannot
 * see the import; what it records is the node's word, signed, beside the decision that allowed it,
 * so auditors see when and under which decision each share came back.
 */
function shareRecovered(c: ClusterState, e: Extract<LedgerEvent, { type: 'ShareRecovered' }>, ctx: Ctx): Outcome {
  const bad = checkProposer(c, e);
  if (bad !== null) return bad;
  const live = liveEpoch(c, e.keyId, e.keyEpoch);
  if ('kind' in live) return live;
  const { k, ep } = live;
  const rk = backupRecordKey(e.keyId, e.keyEpoch, e.nodeId);
  const rec = own(recoveriesOf(c), rk);
  if (rec === undefined) return refuse('RECOVERY_NOT_AUTHORIZED', `no RecoveryAuthorized names ${e.nodeId} for ${e.keyId} epoch ${e.keyEpoch}`);
  if (!bytesEqual(rec.decisionCid, e.decisionCid)) return refuse('BINDING_MISMATCH', `the RecoveryAuthorized of ${e.nodeId} for ${e.keyId} epoch ${e.keyEpoch} is ${toHex(rec.decisionCid)}, not ${toHex(e.decisionCid)}`);
  if (rec.identifier !== e.identifier) return refuse('BINDING_MISMATCH', `${e.nodeId} is identifier ${rec.identifier} in ${e.keyId} epoch ${e.keyEpoch}, not ${e.identifier}`);
  if (rec.recovered !== null) return { kind: 'replay', ok: true, reason: null, detail: `the recovery of ${e.nodeId}'s share of ${e.keyId} epoch ${e.keyEpoch} is already recorded (index ${rec.recovered.index})` };
  const next: RecoveryRecord = { ...rec, recovered: { index: ctx.index, stampMs: ctx.stampMs } };
  return { kind: 'accept', cluster: { ...c, recoveries: put(recoveriesOf(c), rk, next) }, effect: `${e.nodeId} recovered its share of ${e.keyId} epoch ${e.keyEpoch} under decision ${toHex(e.decisionCid)}` };
}

// ------------------------------------------------------------------------------------------------
// Share repair (kernel/repair.ts)
// ------------------------------------------------------------------------------------------------

/**
 * A RepairAuthorized decision: the kernels of `helpers` rebuild the share of `nodeId` of an
 * active key epoch, with no backup. Accepted only for an active epoch of a live key, with the group
 * key the ledger committed for it (BINDING_MISMATCH), and a helper set of at least the epoch's
 * threshold of distinct participants on the roster, without the target, at most
 * kernel.repairHelpersMax (REPAIR_HELPERS_INVALID). The target is either a participant of the
 * epoch, under its own identifier (a rebuild), or a node of the roster that is none, under an
 * identifier past the epoch's participants that no other node was enrolled under (an enrolment;
 * BINDING_MISMATCH otherwise). The ledger records it per (key, epoch, node), replacing an earlier
 * one, so the node's ShareRepaired can name it; every kernel follows the decision itself.
 */
function repairAuthorized(c: ClusterState, a: Extract<DecisionAction, { kind: 'RepairAuthorized' }>, dCid: Uint8Array, ctx: Ctx): Outcome {
  const live = liveEpoch(c, a.keyId, a.keyEpoch);
  if ('kind' in live) return live;
  const { k, ep } = live;
  if (ep.groupKey === null || !bytesEqual(ep.groupKey, a.groupKey)) return refuse('BINDING_MISMATCH', `the group key named is not the one the ledger committed for ${a.keyId} epoch ${a.keyEpoch}`);
  const target = own(c.nodes, a.nodeId);
  if (target === undefined || target.status === 'removed') return refuse('UNKNOWN_NODE', `no node ${a.nodeId}`);
  if (a.helpers.length < ep.threshold) return refuse('REPAIR_HELPERS_INVALID', `${a.helpers.length} helpers cannot repair a share of a ${ep.threshold}-of-${ep.participants.length} key`);
  if (a.helpers.length > kernelLimits.repairHelpersMax) return refuse('REPAIR_HELPERS_INVALID', `${a.helpers.length} helpers, at most ${kernelLimits.repairHelpersMax}`);
  const seen = new Set<string>();
  for (const h of a.helpers) {
    if (seen.has(h)) return refuse('REPAIR_HELPERS_INVALID', `helper ${h} is listed twice`);
    seen.add(h);
    if (h === a.nodeId) return refuse('REPAIR_HELPERS_INVALID', `${h} cannot help repair its own share`);
    if (!ep.participants.includes(h)) return refuse('REPAIR_HELPERS_INVALID', `helper ${h} holds no share of ${a.keyId} epoch ${a.keyEpoch}`);
    const n = own(c.nodes, h);
    if (n === undefined || n.status !== 'active') return refuse('REPAIR_HELPERS_INVALID', `helper ${h} is ${n?.status ?? 'unknown'}: its kernel takes no part`);
  }
  const at = ep.participants.indexOf(a.nodeId);
  const enrol = at < 0;
  if (!enrol) {
    const identifier = frostIdentifier(k.scheme, at + 1);
    if (a.identifier !== identifier) return refuse('BINDING_MISMATCH', `${a.nodeId} is identifier ${identifier} in ${a.keyId} epoch ${a.keyEpoch}, not ${a.identifier}`);
  } else {
    // A new identifier: one past the participants, at most the kernels' committee bound, and not
    // one another node was enrolled under for this epoch (two holders of one point would be one).
    if (enrolledPosition(k.scheme, ep, a.identifier) === 0) return refuse('BINDING_MISMATCH', `${a.identifier} is not the identifier of a new participant of ${a.keyId} epoch ${a.keyEpoch} (positions ${ep.participants.length + 1} to ${kernelLimits.participantsMax})`);
    const taken = Object.values(repairsOf(c)).find((r) => r.keyId === a.keyId && r.keyEpoch === a.keyEpoch && r.nodeId !== a.nodeId && r.identifier === a.identifier);
    if (taken !== undefined) return refuse('BINDING_MISMATCH', `${taken.nodeId} is enrolled under ${a.identifier} in ${a.keyId} epoch ${a.keyEpoch}`);
    const earlier = own(repairsOf(c), backupRecordKey(a.keyId, a.keyEpoch, a.nodeId));
    if (earlier !== undefined && earlier.identifier !== a.identifier) return refuse('BINDING_MISMATCH', `${a.nodeId} is enrolled under ${earlier.identifier} in ${a.keyId} epoch ${a.keyEpoch}, not ${a.identifier}`);
  }
  const rk = backupRecordKey(a.keyId, a.keyEpoch, a.nodeId);
  const rec: RepairRecord = { keyId: a.keyId, keyEpoch: a.keyEpoch, nodeId: a.nodeId, identifier: a.identifier, helpers: [...a.helpers], enrol, decisionCid: dCid, authorizedIndex: ctx.index, repaired: null };
  return { kind: 'accept', cluster: { ...c, repairs: put(repairsOf(c), rk, rec) }, effect: `${a.helpers.join(', ')} may ${enrol ? 'enrol' : 'rebuild the share of'} ${a.nodeId} in ${a.keyId} epoch ${a.keyEpoch}` };
}

/**
 * A node reports that its kernel holds its share rebuilt under a RepairAuthorized
 * (node/lifecycle/repair.ts): in its own name (checkProposer), for an active epoch of a live key,
 * naming the decision the ledger recorded last for that node, key and epoch
 * (REPAIR_NOT_AUTHORIZED without one, BINDING_MISMATCH for another decision or identifier), with a
 * verifying share that is a group element (PAYLOAD_REJECTED). Once: the same report again is a
 * replay; another verifying share under the same decision is REPLAY_OR_CONFLICT. The kernel
 * checked share·G against the verifying share before it kept the share; the ledger records the
 * node's signed word beside the decision.
 */
function shareRepaired(c: ClusterState, e: Extract<LedgerEvent, { type: 'ShareRepaired' }>, ctx: Ctx): Outcome {
  const bad = checkProposer(c, e);
  if (bad !== null) return bad;
  const live = liveEpoch(c, e.keyId, e.keyEpoch);
  if ('kind' in live) return live;
  const { k, ep } = live;
  const rk = backupRecordKey(e.keyId, e.keyEpoch, e.nodeId);
  const rec = own(repairsOf(c), rk);
  if (rec === undefined) return refuse('REPAIR_NOT_AUTHORIZED', `no RepairAuthorized names ${e.nodeId} for ${e.keyId} epoch ${e.keyEpoch}`);
  if (!bytesEqual(rec.decisionCid, e.decisionCid)) return refuse('BINDING_MISMATCH', `the RepairAuthorized of ${e.nodeId} for ${e.keyId} epoch ${e.keyEpoch} is ${toHex(rec.decisionCid)}, not ${toHex(e.decisionCid)}`);
  if (rec.identifier !== e.identifier) return refuse('BINDING_MISMATCH', `${e.nodeId} is repaired as identifier ${rec.identifier} in ${e.keyId} epoch ${e.keyEpoch}, not ${e.identifier}`);
  if (!isGroupElement(k.scheme, e.verifyingShare)) return refuse('PAYLOAD_REJECTED', `the verifying share is not a ${k.scheme} group element`);
  if (rec.repaired !== null) {
    if (bytesEqual(rec.repaired.verifyingShare, e.verifyingShare)) return { kind: 'replay', ok: true, reason: null, detail: `the repair of ${e.nodeId}'s share of ${e.keyId} epoch ${e.keyEpoch} is already recorded (index ${rec.repaired.index})` };
    return refuse('REPLAY_OR_CONFLICT', `the repair of ${e.nodeId}'s share of ${e.keyId} epoch ${e.keyEpoch} is recorded with verifying share ${toHex(rec.repaired.verifyingShare)}`);
  }
  const next: RepairRecord = { ...rec, repaired: { index: ctx.index, stampMs: ctx.stampMs, verifyingShare: e.verifyingShare } };
  return { kind: 'accept', cluster: { ...c, repairs: put(repairsOf(c), rk, next) }, effect: `${e.nodeId} holds its share of ${e.keyId} epoch ${e.keyEpoch} again, rebuilt under decision ${toHex(e.decisionCid)}` };
}

/**
 * An admin API call a node served (node/admin/audit.ts), recorded so it is in the Merkle tree
 * (cosigned with every checkpoint) and exported to auditors. Accepted only in the proposer's own
 * name (checkProposer): a record says which node served the call, and that node signed it. The
 * ledger cannot see the call; the record is the serving node's word, and the state does not
 * change (only the chain and the tree grow).
 */
function operatorCall(c: ClusterState, e: Extract<LedgerEvent, { type: 'OperatorCall' }>): Outcome {
  const bad = checkProposer(c, e);
  if (bad !== null) return bad;
  return { kind: 'accept', cluster: c, effect: `${e.method} by ${e.operatorId || '(no operator)'} served by ${e.nodeId}: ${e.verdict}${e.reason === '' ? '' : ` ${e.reason}`}` };
}

/**
 * A certificate revocation. Safety of the bounded list: an entry leaves only once the ledger clock
 * (the largest entry stamp, never a host clock) is past the certificate's notAfter by
 * limits.revocationExpiryGraceMs; from notAfter on every TLS handshake refuses the certificate
 * (RFC 5280 §6.1.3 (a)(2), checked by OpenSSL on the host clock), and the grace covers a host clock
 * behind the ledger's by less than it. notAfterMs is part of what the approvers sign (the CLI reads
 * it from the certificate), so a wrong one is a governance error, not something a node can inject.
 * Expired entries are pruned here, when a new one needs room, identically on every replica.
 */
function certificateRevoked(c: ClusterState, a: Extract<DecisionAction, { kind: 'OperatorRevoked' | 'NodeCertificateRevoked' }>, dCid: Uint8Array, ctx: Ctx): Outcome {
  const holder = a.kind === 'OperatorRevoked' ? 'operator' : 'node';
  const id = a.kind === 'OperatorRevoked' ? a.operatorId : a.nodeId;
  if (a.kind === 'NodeCertificateRevoked' && own(c.nodes, a.nodeId) === undefined) return refuse('UNKNOWN_NODE', `no node ${a.nodeId}`);
  const live = revocationsOf(c.governance).filter((r) => r.notAfterMs + limits.revocationExpiryGraceMs > ctx.nowMs);
  if (live.some((r) => r.holder === holder && r.serial === a.serial)) return refuse('INVALID_TRANSITION', `${holder} certificate ${a.serial} is already revoked`);
  if (a.notAfterMs + limits.revocationExpiryGraceMs <= ctx.nowMs) return refuse('INVALID_TRANSITION', `${holder} certificate ${a.serial} expired at ${a.notAfterMs}; TLS refuses it already`);
  if (live.length >= limits.revokedMax) return refuse('LIMIT_EXCEEDED', `${limits.revokedMax} certificates are revoked and not yet expired`);
  const rec: RevocationRecord = { serial: a.serial, holder, id, reason: a.reason, notAfterMs: a.notAfterMs, decisionCid: dCid, sinceIndex: ctx.index };
  const revoked = [...live, rec];
  return { kind: 'accept', cluster: { ...c, governance: { ...c.governance, revoked } }, effect: `${holder} certificate ${a.serial} of ${id} revoked: ${a.reason}` };
}

function publicationReleased(c: ClusterState, d: GovernanceDecision, a: Extract<DecisionAction, { kind: 'PublicationReleased' }>, dCid: Uint8Array, ctx: Ctx): Outcome {
  const op = opById(c, a.opId, ctx);
  if (op === undefined) return refuse('UNKNOWN_SESSION', `no act ${a.opId}`);
  if (!bytesEqual(a.actCid, op.actCid) || !bytesEqual(d.body.parentCid, op.actCid)) return refuse('BINDING_MISMATCH', 'the release names another act');
  // The act's displayHash was re-derived from its transaction at admission: a release signed over
  // another display released something its approvers were not shown.
  if (!bytesEqual(a.displayHash, op.act.displayHash)) return refuse('BINDING_MISMATCH', 'the release was signed over another display than the act\'s transaction');
  if (!['Admitted', 'PendingRemote', 'Executed'].includes(op.state)) return refuse('INVALID_TRANSITION', `act ${a.opId} is ${op.state}`);
  if (op.releasedBy !== null) return refuse('INVALID_TRANSITION', `act ${a.opId} is already released`);
  return { kind: 'accept', cluster: putOp(c, { ...op, releasedBy: dCid }), effect: `publication of ${a.opId} released by decision`, extra: { opState: op.state } };
}

// ------------------------------------------------------------------------------------------------
// Node statements: DKG, KeyReady, fencing, equivocation
// ------------------------------------------------------------------------------------------------

function slotId(s: SignedStatement): string {
  return toHex(digest(SLOT_DOMAIN, encode({ nodeId: s.nodeId, kind: s.kind, slot: s.slot })));
}

function evidenceId(a: SignedStatement, b: SignedStatement): string {
  const [x, y] = [statementCid(a), statementCid(b)].sort((p, q) => (toHex(p) < toHex(q) ? -1 : 1)) as [Uint8Array, Uint8Array];
  return toHex(digest(EVIDENCE_DOMAIN, encode({ first: x, second: y })));
}

/**
 * Flags a node that signed two conflicting statements: recorded for operator review, its
 * ceremonies and in-flight acts aborted (its word can no longer be relied on), until a NodeRebound
 * decision clears it.
 */
function flagEquivocation(c: ClusterState, nodeId: string, kind: string, evId: string, ctx: Ctx): ClusterState {
  const n = own(c.nodes, nodeId) as NodeRecord;
  let next: ClusterState = { ...c, nodes: put(c.nodes, nodeId, { ...n, equivocated: true }), evidence: put(c.evidence, evId, { nodeId, kind, index: ctx.index }) };
  for (const k of Object.values(c.keys)) {
    let nk = k;
    for (const e of epochsOf(k)) {
      if ((e.status === 'ceremony' || e.status === 'published') && e.participants.includes(nodeId)) nk = withEpoch(nk, { ...e, status: 'aborted' });
    }
    if (nk !== k) next = withKey(next, nk);
  }
  for (const op of Object.values(c.ops)) {
    if (op.state === 'PendingRemote' && op.permitId !== null) {
      const p = own(c.permits, toHex(op.permitId)) as PermitRecord;
      if (p.nodeId === nodeId) next = abortOp(next, op, 'EQUIVOCATION', ctx);
    }
  }
  return next;
}

/**
 * Checks a node statement's signer and signature, then its slot: the same statement again is a
 * replay, a different one for the same slot is equivocation (recorded, refused EQUIVOCATION).
 * Returns null when the statement is new and valid.
 */
function admitStatement(c: ClusterState, s: SignedStatement, kind: string, ctx: Ctx, slotted = true): Outcome | null {
  if (s.kind !== kind) return refuse('PAYLOAD_REJECTED', `statement kind ${s.kind} in a ${kind} event`);
  if (s.clusterId !== c.clusterId) return refuse('BINDING_MISMATCH', `statement for cluster ${s.clusterId}`);
  const n = own(c.nodes, s.nodeId);
  if (n === undefined || n.status === 'removed') return refuse('UNKNOWN_NODE', `no node ${s.nodeId}`);
  if (!verifyStatement(s, n.identityKey)) return refuse('SIGNATURE_INVALID', `the statement is not signed by ${s.nodeId}`);
  const prior = slotted ? own(c.statements, slotId(s)) : undefined;
  if (prior !== undefined) {
    if (bytesEqual(statementCid(prior.statement), statementCid(s))) return { kind: 'replay', ok: true, reason: null, detail: `${kind} already recorded` };
    const evId = evidenceId(prior.statement, s);
    if (own(c.evidence, evId) !== undefined) return { kind: 'replay', ok: false, reason: 'EQUIVOCATION', detail: 'equivocation already recorded' };
    return { kind: 'record', cluster: flagEquivocation(c, s.nodeId, kind, evId, ctx), reason: 'EQUIVOCATION', detail: `${s.nodeId} signed two different ${kind} statements for one slot` };
  }
  if (n.status === 'fenced') return refuse('SPLIT_BRAIN_FENCED', `node ${s.nodeId} is fenced`);
  if (n.equivocated) return refuse('EQUIVOCATION', `node ${s.nodeId} is flagged for equivocation`);
  return null;
}

function recordStatement(c: ClusterState, s: SignedStatement): ClusterState {
  return { ...c, statements: put(c.statements, slotId(s), { statement: s }) };
}

function keyEpochSlot(s: SignedStatement): { keyId: string; keyEpoch: number } | null {
  try {
    const o = obj(s.slot, 'slot', ['keyId', 'keyEpoch']);
    if (typeof o.keyId !== 'string' || typeof o.keyEpoch !== 'number' || !Number.isSafeInteger(o.keyEpoch) || o.keyEpoch < 0) return null;
    return { keyId: o.keyId, keyEpoch: o.keyEpoch };
  } catch {
    return null;
  }
}

function ceremonyFor(c: ClusterState, s: SignedStatement): { k: KeyRecord; e: EpochRecord } | Outcome {
  const slot = keyEpochSlot(s);
  if (slot === null) return refuse('PAYLOAD_REJECTED', 'slot must be { keyId, keyEpoch }');
  const k = own(c.keys, slot.keyId);
  if (k === undefined) return refuse('UNKNOWN_KEY', `no key ${slot.keyId}`);
  const e = own(k.epochs, String(slot.keyEpoch));
  if (e === undefined) return refuse('STALE_EPOCH', `key ${slot.keyId} has no epoch ${slot.keyEpoch}`);
  if (e.status !== 'ceremony') return refuse('INVALID_TRANSITION', `the ceremony of ${slot.keyId} epoch ${slot.keyEpoch} is ${e.status}`);
  if (!e.participants.includes(s.nodeId)) return refuse('WRONG_RECIPIENT', `${s.nodeId} is not a participant of ${slot.keyId} epoch ${slot.keyEpoch}`);
  return { k, e };
}

const OUTCOME_KINDS: readonly unknown[] = ['accept', 'record', 'refuse', 'replay'];

function isOutcome(x: unknown): x is Outcome {
  return typeof x === 'object' && x !== null && 'kind' in x && OUTCOME_KINDS.includes((x as { kind: unknown }).kind) && !('messages' in x);
}

function round1(c: ClusterState, s: SignedStatement, ctx: Ctx): Outcome {
  const early = admitStatement(c, s, 'DkgRound1Published', ctx);
  if (early !== null) return early;
  const ce = ceremonyFor(c, s);
  if (isOutcome(ce)) return ce;
  let round1Cid: Uint8Array;
  try {
    round1Cid = bytes(obj(s.content, 'content', ['round1Cid']).round1Cid, 'round1Cid', 32);
  } catch (e) {
    return refuse('PAYLOAD_REJECTED', (e as Error).message);
  }
  const e: EpochRecord = { ...ce.e, round1: put(ce.e.round1, s.nodeId, round1Cid) };
  return { kind: 'accept', cluster: recordStatement(withKey(c, withEpoch(ce.k, e)), s), effect: `DKG round 1 of ${s.nodeId} for ${ce.k.id} epoch ${e.epoch}` };
}

function keyReady(c: ClusterState, s: SignedStatement, ctx: Ctx): Outcome {
  const early = admitStatement(c, s, 'KeyReady', ctx);
  if (early !== null) return early;
  const ce = ceremonyFor(c, s);
  if (isOutcome(ce)) return ce;
  const missing = ce.e.participants.filter((p) => own(ce.e.round1, p) === undefined);
  if (missing.length > 0) return refuse('DKG_INCOMPLETE', `round 1 missing from ${missing.join(', ')}`);
  let groupKey: Uint8Array;
  try {
    groupKey = bytes(obj(s.content, 'content', ['groupKey']).groupKey, 'groupKey');
    if (groupKey.length !== 32 && groupKey.length !== 33) throw new ShapeError('groupKey: expected 32 or 33 bytes');
  } catch (e) {
    return refuse('PAYLOAD_REJECTED', (e as Error).message);
  }
  const e: EpochRecord = { ...ce.e, ready: put(ce.e.ready, s.nodeId, { statementCid: statementCid(s), groupKey }) };
  return { kind: 'accept', cluster: recordStatement(withKey(c, withEpoch(ce.k, e)), s), effect: `KeyReady from ${s.nodeId} for ${ce.k.id} epoch ${e.epoch}` };
}

/**
 * A holder of the key's active epoch can deal the refresh / reshare the ceremony epoch runs
 * (ledger/dealer-set.ts has the message flow and the safety argument): accepted from a member of
 * the ceremony that holds a share of the active epoch, until t holders have said so; the t-th
 * fixes the dealers, and every later one is refused DEALERS_FIXED.
 */
function redealReady(c: ClusterState, s: SignedStatement, ctx: Ctx): Outcome {
  const early = admitStatement(c, s, 'RedealReady', ctx);
  if (early !== null) return early;
  const ce = ceremonyFor(c, s);
  if (isOutcome(ce)) return ce;
  let fromEpoch: number;
  try {
    const v = obj(s.content, 'content', ['fromEpoch']).fromEpoch;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new ShapeError('fromEpoch: expected an epoch number');
    fromEpoch = v;
  } catch (e) {
    return refuse('PAYLOAD_REJECTED', (e as Error).message);
  }
  const bad = redealReadyRefusal(ce.k, ce.e, s.nodeId, fromEpoch);
  if (bad !== null) return refuse(bad.reason, bad.detail);
  const e: EpochRecord = { ...ce.e, dealersReady: [...dealersReadyOf(ce.e), s.nodeId] };
  const old = own(ce.k.epochs, String(fromEpoch)) as EpochRecord;
  const fixed = redealDealerSet(old, e);
  const effect = fixed === null ? `${s.nodeId} can deal ${ce.k.id} epoch ${e.epoch}` : `dealers of ${ce.k.id} epoch ${e.epoch} fixed: ${fixed.join(', ')}`;
  return { kind: 'accept', cluster: recordStatement(withKey(c, withEpoch(ce.k, e)), s), effect };
}

function keyObjectPublished(c: ClusterState, ev: Extract<LedgerEvent, { type: 'KeyObjectPublished' }>, _ctx: Ctx): Outcome {
  const k = own(c.keys, ev.keyId);
  if (k === undefined) return refuse('UNKNOWN_KEY', `no key ${ev.keyId}`);
  const e = own(k.epochs, String(ev.keyEpoch));
  if (e === undefined) return refuse('STALE_EPOCH', `key ${ev.keyId} has no epoch ${ev.keyEpoch}`);
  if (e.status !== 'ceremony') return refuse('INVALID_TRANSITION', `key ${ev.keyId} epoch ${ev.keyEpoch} is ${e.status}`);
  const ready = e.participants.map((p) => own(e.ready, p));
  const missing = e.participants.filter((_, i) => ready[i] === undefined);
  if (missing.length > 0) return refuse('DKG_INCOMPLETE', `no KeyReady yet from ${missing.join(', ')}`);
  const readies = ready as { statementCid: Uint8Array; groupKey: Uint8Array }[];
  const groupKey = (readies[0] as { groupKey: Uint8Array }).groupKey;
  if (!readies.every((r) => bytesEqual(r.groupKey, groupKey))) return refuse('BINDING_MISMATCH', 'participants report different group keys');
  // Refresh and reshare change the shares, never the public key (DESIGN §4).
  if (k.publicKey !== null && !bytesEqual(k.publicKey, groupKey)) return refuse('BINDING_MISMATCH', 'the new epoch reports another public key');
  const want = keyReadyCid(k.id, e.epoch, groupKey, readies.map((r) => r.statementCid));
  if (!bytesEqual(want, ev.keyReadyCid)) return refuse('BINDING_MISMATCH', 'key_ready_cid does not name the recorded KeyReady statements');
  const next = withEpoch({ ...k, publicKey: groupKey }, { ...e, status: 'published', keyReadyCid: want, groupKey });
  return { kind: 'accept', cluster: withKey(c, next), effect: `key object ${k.id} epoch ${e.epoch} published` };
}

/*
 * Fencing from node evidence (FencingRecord) and by decision (NodeFenced).
 *
 * Message flow. A node that sees a peer misbehave (two leaders in one term, a rolled-back state,
 * a forged vote) signs a FencingRecord with its identity key: slot {nodeId, passport} of the
 * target, content {reason}. Every node applies it here:
 *   1. the reporter must be a voter in good standing: on the roster, not removed, not fenced, not
 *      flagged for equivocation, and the statement must verify under its identity key
 *      (admitStatement: UNKNOWN_NODE, SPLIT_BRAIN_FENCED, EQUIVOCATION, SIGNATURE_INVALID);
 *   2. the target must be on the roster and not removed (UNKNOWN_NODE), and the passport must be
 *      its current one (BINDING_MISMATCH): older passports were fenced by the rebind that retired
 *      them, so a report never needs to name one, and a report cannot grow the state with
 *      invented passports;
 *   3. the report joins the pending report of that (node, passport) (ClusterState.fenceReports).
 *      The same reporter again, with any reason text, counts once (a replay, FENCE_PENDING).
 *      The reporters counted are those still voters in good standing at this entry;
 *   4. once the counted reporters are a majority of the voters (floor(V/2) + 1, V = the nodes on
 *      the roster not removed, fenced ones included, as the Raft configuration keeps them), the
 *      passport is fenced and the pending report goes. Below that, the report is recorded
 *      (journaled and visible in the state and in `custody admin status`) and the entry answers
 *      FENCE_PENDING: it fences nothing.
 * The target counts like any voter: its own report about itself is evidence against itself, and
 * no one else's standing depends on it.
 *
 * Safety argument (Raft tolerates crashes, not lies). The promise is that no single compromised
 * host can take another node's standing. One host holds one identity key, so it can sign one
 * distinct report; a majority needs floor(V/2) + 1 >= 2 distinct keys whenever V >= 2, hence at
 * least one honest node's word (with at most a minority of hosts compromised, any majority holds
 * an honest one). Fewer reports than a majority change nothing but the pending list (the fast-check
 * property in test/ledger/fencing.test.ts). A host that holds one key cannot count twice (reporters
 * are distinct ids, each a distinct roster key, validateNewNode), cannot count for a removed or
 * unknown node (step 1), and cannot keep a report alive for a passport the target no longer holds
 * (a rebind or removal drops it). A single-node cluster (V = 1) is fenced by its own report: there
 * is no one else to protect.
 *
 * Operators fence by decision: NodeFenced, signed by approvers with EmergencyFreeze's quorum
 * (ledger/decision.ts quorumFor has the argument), verified here and by every kernel like any
 * governance decision. No node signs fencing on an operator's behalf: an operator certificate
 * alone fences nothing (node/admin/backend.ts fenceNode refuses FENCE_UNSIGNED).
 *
 * Self-proving evidence still acts at once: EquivocationEvidence is two conflicting statements
 * signed by the target's own identity key, which no one but the holder of that key can produce,
 * so a node cannot be framed without its own key; it flags the node (equivocated) without waiting
 * for reports.
 *
 * Unfencing stays with the full governor quorum: a NodeRebound decision gives the node a fresh
 * passport (the fenced one stays fenced for good).
 */
function fencing(c: ClusterState, s: SignedStatement, ctx: Ctx): Outcome {
  // Reports for one passport with other words for the reason do not conflict: they are not
  // slotted for equivocation, and the same reporter again counts once (below).
  const early = admitStatement(c, s, 'FencingRecord', ctx, false);
  if (early !== null) return early;
  let target: { nodeId: string; passport: string };
  try {
    const o = obj(s.slot, 'slot', ['nodeId', 'passport']);
    obj(s.content, 'content', ['reason']);
    if (typeof o.nodeId !== 'string' || typeof o.passport !== 'string') throw new ShapeError('slot: nodeId and passport are text');
    target = { nodeId: o.nodeId, passport: o.passport };
  } catch (e) {
    return refuse('PAYLOAD_REJECTED', (e as Error).message);
  }
  const n = own(c.nodes, target.nodeId);
  if (n === undefined || n.status === 'removed') return refuse('UNKNOWN_NODE', `no node ${target.nodeId}`);
  if (n.fencedPassports.includes(target.passport)) return { kind: 'replay', ok: true, reason: null, detail: 'passport already fenced' };
  if (target.passport !== n.passport) return refuse('BINDING_MISMATCH', `${n.id} holds another passport; a report names the current one`);
  const reports = fenceReportsOf(c);
  const prior = reports.find((r) => r.nodeId === n.id && r.passport === target.passport);
  const needed = fenceMajority(c);
  const counted = countedReporters(c, [...(prior?.reporters ?? []), s.nodeId]);
  const others = reports.filter((r) => r.nodeId !== n.id);
  // A report repeated after the voters shrank (NodeRemoved lowers the majority) fences if the
  // counted reporters are now a majority; otherwise the same reporter again counts once.
  if (counted.length < needed && prior?.reporters.includes(s.nodeId)) {
    return { kind: 'replay', ok: false, reason: 'FENCE_PENDING', detail: `${s.nodeId} already reported passport ${target.passport} of ${n.id}; ${counted.length} of ${needed} voters` };
  }
  if (counted.length >= needed) {
    const next: NodeRecord = { ...n, status: 'fenced', fencedPassports: [...n.fencedPassports, target.passport] };
    return { kind: 'accept', cluster: withFenceReports({ ...c, nodes: put(c.nodes, n.id, next) }, others), effect: `passport ${target.passport} of ${n.id} fenced: reported by ${counted.join(', ')} (${counted.length} of ${needed} voters)` };
  }
  if (prior === undefined && others.length >= limits.fenceReportsMax) return refuse('LIMIT_EXCEEDED', `${limits.fenceReportsMax} fencing reports are pending`);
  const report: FenceReport = { nodeId: n.id, passport: target.passport, reporters: counted, sinceIndex: prior?.sinceIndex ?? ctx.index };
  const list = [...others, report].sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  return { kind: 'record', cluster: withFenceReports(c, list), reason: 'FENCE_PENDING', detail: `passport ${target.passport} of ${n.id} reported by ${counted.join(', ')}: ${counted.length} of ${needed} voters; a majority of voters' reports or an approver-signed NodeFenced decision fences it` };
}

/** The voters whose reports fence: a majority of the nodes on the roster not removed. */
export function fenceMajority(c: ClusterState): number {
  const voters = Object.values(c.nodes).filter((n) => n.status !== 'removed').length;
  return Math.floor(voters / 2) + 1;
}

/** The reporters that count now: distinct voters in good standing (active, not equivocated), sorted. */
function countedReporters(c: ClusterState, ids: readonly string[]): string[] {
  return [...new Set(ids)].filter((id) => {
    const r = own(c.nodes, id);
    return r !== undefined && r.status === 'active' && !r.equivocated;
  }).sort();
}

/** The state with `list` as its pending reports (left out when empty, keeping the canonical form). */
function withFenceReports(c: ClusterState, list: readonly FenceReport[]): ClusterState {
  if (list.length > 0) return { ...c, fenceReports: list };
  if (c.fenceReports === undefined) return c;
  const { fenceReports: _, ...rest } = c;
  return rest;
}

/** Drops the pending report of `nodeId` (its passport changed, it was fenced or removed). */
function dropFenceReports(c: ClusterState, nodeId: string): ClusterState {
  const reports = fenceReportsOf(c);
  return reports.some((r) => r.nodeId === nodeId) ? withFenceReports(c, reports.filter((r) => r.nodeId !== nodeId)) : c;
}

function equivocationEvidence(c: ClusterState, a: SignedStatement, b: SignedStatement, ctx: Ctx): Outcome {
  if (a.nodeId !== b.nodeId || a.kind !== b.kind || !bytesEqual(encode(a.slot), encode(b.slot))) {
    return refuse('PAYLOAD_REJECTED', 'evidence must be two statements by one node about one slot');
  }
  if (bytesEqual(statementCid(a), statementCid(b))) return refuse('PAYLOAD_REJECTED', 'the two statements are the same');
  if (a.kind === 'FencingRecord') return refuse('PAYLOAD_REJECTED', 'fencing reports for one passport do not conflict');
  if (a.clusterId !== c.clusterId || b.clusterId !== c.clusterId) return refuse('BINDING_MISMATCH', 'evidence from another cluster');
  const n = own(c.nodes, a.nodeId);
  if (n === undefined) return refuse('UNKNOWN_NODE', `no node ${a.nodeId}`);
  if (!verifyStatement(a, n.identityKey) || !verifyStatement(b, n.identityKey)) return refuse('SIGNATURE_INVALID', `a statement is not signed by ${a.nodeId}`);
  const evId = evidenceId(a, b);
  if (own(c.evidence, evId) !== undefined) return { kind: 'replay', ok: true, reason: null, detail: 'evidence already recorded' };
  return { kind: 'accept', cluster: flagEquivocation(c, a.nodeId, a.kind, evId, ctx), effect: `${a.nodeId} flagged for equivocation (${a.kind})` };
}

/**
 * A node of the trust policy chain's head signed the block that waits (ledger/trust-chain.ts has
 * the message flow, the safety argument and the threat). In the proposer's own name, like every
 * proposed event, except that a removed node of the head may still sign (it is a voter of the
 * head); then: the block this replica computes (BINDING_MISMATCH), a node of the head under the
 * key it names (UNKNOWN_NODE), a valid cosignature/v1 over the block's text by that key
 * (SIGNATURE_INVALID), once per node (replay; other bytes REPLAY_OR_CONFLICT). A quorum of the
 * head completes the block.
 */
function trustPolicySigned(c: ClusterState, e: Extract<LedgerEvent, { type: 'TrustPolicySigned' }>): Outcome {
  const n = own(c.nodes, e.nodeId);
  if (n === undefined) return refuse('UNKNOWN_NODE', `no node ${e.nodeId}`);
  const bad = n.status === 'removed' ? proposedByRemoved(c, n, e) : checkProposer(c, e);
  if (bad !== null) return bad;
  const pending = pendingTrustBlock(c);
  if (pending === null) {
    // The block it names may have completed since: its signer's place in it is a replay.
    const t = c.trustChain;
    const done = t?.blocks[e.serial - 1];
    if (done !== undefined && bytesEqual(policyDigest(done.text), e.blockDigest) && done.signatures.some((s) => s.nodeId === e.nodeId)) {
      return { kind: 'replay', ok: true, reason: null, detail: `trust policy serial ${e.serial} is complete` };
    }
    return refuse('INVALID_TRANSITION', `no trust policy block waits for signatures: the chain's head names the voters in force`);
  }
  if (e.serial !== pending.serial || !bytesEqual(e.blockDigest, pending.digest)) {
    return refuse('BINDING_MISMATCH', `the signed block is serial ${e.serial} ${toHex(e.blockDigest)}, the block that waits serial ${pending.serial} ${toHex(pending.digest)}`);
  }
  const key = headKeyOf(pending.head, e.nodeId);
  if (key === undefined || !bytesEqual(key.publicKey, n.identityKey)) return refuse('UNKNOWN_NODE', `${e.nodeId} is no node of trust policy serial ${pending.head.serial}`);
  if (!checkTrustSignature(key, pending.text, e.signature)) return refuse('SIGNATURE_INVALID', `the signature is not ${key.name}'s cosignature of trust policy serial ${pending.serial}`);
  const kept = pending.signatures.find((s) => s.nodeId === e.nodeId);
  if (kept !== undefined) {
    return bytesEqual(kept.signature, e.signature)
      ? { kind: 'replay', ok: true, reason: null, detail: `${e.nodeId} already signed trust policy serial ${pending.serial}` }
      : refuse('REPLAY_OR_CONFLICT', `${e.nodeId} already signed trust policy serial ${pending.serial} with another signature`);
  }
  if (trustChainFull(c)) return refuse('LIMIT_EXCEEDED', `the trust policy chain holds ${limits.trustChainBlocksMax} blocks`);
  const r = withTrustSignature(c, pending, { nodeId: e.nodeId, signature: e.signature });
  const count = pending.signatures.length + 1;
  return {
    kind: 'accept', cluster: r.cluster,
    effect: r.completed ? `trust policy serial ${pending.serial} complete (${count} of ${pending.head.quorum} signatures)` : `${e.nodeId} signed trust policy serial ${pending.serial} (${count} of ${pending.head.quorum})`,
  };
}

/** checkProposer for a removed node: its last passport, not fenced, and its signature. */
function proposedByRemoved(c: ClusterState, n: NodeRecord, p: ProposedEvent): Outcome | null {
  if (n.fencedPassports.includes(p.passport)) return refuse('SPLIT_BRAIN_FENCED', `passport ${p.passport} of ${p.nodeId} is fenced`);
  if (p.passport !== n.passport) return refuse('BINDING_MISMATCH', `${p.nodeId} held another passport`);
  if (!verifyProposed(c.clusterId, p, n.identityKey)) return refuse('PROPOSER_SIGNATURE_INVALID', `the event is not signed by ${p.nodeId}'s identity key for cluster ${c.clusterId}`);
  return null;
}

// ------------------------------------------------------------------------------------------------
// The operation journal
// ------------------------------------------------------------------------------------------------

/**
 * The proposer of a journal event: a known node, under its current passport (a fenced one is
 * refused), and the event signed by that node's identity key (ledger/proposer-sig.ts).
 *
 * Why the signature: passports are public (genesis, status), so without it any host that can
 * append to the log (a hostile leader, above all) could journal an act's abort, permit or
 * publication in another node's name and every replica would apply it. With it, an event in a
 * node's name is one that node signed for this cluster; what a hostile appender can still do with
 * it (restamp within the stamp bound, replay it, withhold it) is argued harmless in
 * ledger/proposer-sig.ts: act states only move forward, so a replay is INVALID_TRANSITION.
 * Missing or invalid: refused PROPOSER_SIGNATURE_INVALID, nothing moves. The cheap checks run
 * first; the signature costs one Ed25519 verification per journal event (node:crypto).
 */
function checkProposer(c: ClusterState, p: ProposedEvent): Outcome | null {
  const n = own(c.nodes, p.nodeId);
  if (n === undefined || n.status === 'removed') return refuse('UNKNOWN_NODE', `no node ${p.nodeId}`);
  if (n.fencedPassports.includes(p.passport) || (n.status === 'fenced' && p.passport === n.passport)) {
    return refuse('SPLIT_BRAIN_FENCED', `passport ${p.passport} of ${p.nodeId} is fenced`);
  }
  if (p.passport !== n.passport) return refuse('BINDING_MISMATCH', `${p.nodeId} holds another passport`);
  if (!verifyProposed(c.clusterId, p, n.identityKey)) {
    return refuse('PROPOSER_SIGNATURE_INVALID', p.sig === undefined ? `the event names ${p.nodeId} as proposer and carries no signature` : `the event is not signed by ${p.nodeId}'s identity key for cluster ${c.clusterId}`);
  }
  return null;
}

function putOp(c: ClusterState, op: OpRecord): ClusterState {
  return { ...c, ops: put(c.ops, op.opId, op) };
}

function moved(op: OpRecord, to: OpState, ctx: Ctx): Pick<OpRecord, 'state' | 'history'> {
  assert((OP_TRANSITIONS[op.state] as readonly OpState[]).includes(to), `act transition ${op.state} -> ${to}`);
  return { state: to, history: [...op.history, { state: to, index: ctx.index }] };
}

function abortOp(c: ClusterState, op: OpRecord, reason: ReasonCode, ctx: Ctx): ClusterState {
  let next = putOp(c, { ...op, ...moved(op, 'Aborted', ctx), reason });
  ctx.ended.push(op.opId);
  // An aborted act's permit can never be used: mark it spent.
  if (op.permitId !== null) {
    const hex = toHex(op.permitId);
    const p = own(c.permits, hex) as PermitRecord;
    if (!p.used) next = { ...next, permits: put(next.permits, hex, { ...p, used: true }) };
  }
  return next;
}

function anchor(c: ClusterState, opId: string, ctx: Ctx): ReceiptAnchor {
  return { clusterId: c.clusterId, opId, index: ctx.index, stampMs: ctx.stampMs, eventCid: ctx.eventCid, chainHead: ctx.chainHead };
}

/** Key usable for signing at `epoch`: active, and `epoch` is its current epoch. */
function keyUsable(c: ClusterState, keyId: string, epoch: number): Outcome | KeyRecord {
  const k = own(c.keys, keyId);
  if (k === undefined) return refuse('UNKNOWN_KEY', `no key ${keyId}`);
  if (k.status !== 'active' || k.activeEpoch === null) return refuse('KEY_NOT_ACTIVE', `key ${keyId} is ${k.status}`);
  if (epoch !== k.activeEpoch) return refuse('STALE_EPOCH', `key ${keyId} is at epoch ${k.activeEpoch}, not ${epoch}`);
  return k;
}

/** The rule record of a policy verdict: what every node keeps with the act (OpRecord.rule). */
export function ruleRecordOf(v: AdmissionVerdict): RuleRecord {
  return { id: v.ruleId, action: v.action, detail: clipRuleDetail(v.detail) };
}

/**
 * An act enters the journal only as a custodian's signed request (ledger/act-request-check.ts has
 * the threat and the checks): no request, a signer who is not a custodian of the roster in force,
 * a bad signature, an act that is not the request, or a request outside the window around the
 * ledger clock is recorded Denied with its code before any policy, approval or permit.
 *
 * One request, one act. The request id is the act's opId, and an opId names one act for good:
 * `opById` finds it in memory while it is in flight and in the archive once it ended (Settled,
 * Denied, Aborted). The archive is never pruned: every node writes an ended act to it in the same
 * batch as the applied index, and a node that installs a snapshot fetches every archive record
 * its snapshot counts, checked against the state root's running hash, before it applies any entry
 * after it (README "Long histories"). So a replay of the same signed request, at any later time,
 * finds the first act and returns its result (the same submission) or REPLAY_OR_CONFLICT (other
 * content), and can never create a second act. The window (ledger.actRequestAgeMsMax) is a second,
 * independent bound: a request cannot wait to be used long after it was signed.
 */
function actSubmitted(c: ClusterState, e: Extract<LedgerEvent, { type: 'ActSubmitted' }>, ctx: Ctx): Outcome {
  const bad = checkProposer(c, e);
  if (bad !== null) return bad;
  const subCid = submissionCid(e.opId, e.act, e.approval, e.request);
  const prior = opById(c, e.opId, ctx);
  if (prior !== undefined) {
    if (!bytesEqual(prior.submissionCid, subCid)) return refuse('REPLAY_OR_CONFLICT', `idempotency key ${e.opId} was used for other content`);
    // Same content: the original result, unchanged.
    const admitted = prior.state !== 'Denied';
    return { kind: 'replay', ok: admitted, reason: prior.reason, detail: `act ${e.opId} already ${prior.state}`, extra: { opState: prior.state } };
  }
  if (c.inFlight >= limits.actsInFlightMax) return refuse('LIMIT_EXCEEDED', `${limits.actsInFlightMax} acts are in flight; settle or abort some first`);

  const aCid = actCid(e.act);
  const g = c.governance;
  const deny = (reason: ReasonCode, detail: string, admission?: AdmissionVerdict): Outcome => {
    const op: OpRecord = {
      opId: e.opId, submissionCid: subCid, act: e.act, actCid: aCid, nodeId: e.nodeId, state: 'Denied', reason,
      history: [{ state: 'Submitted', index: ctx.index }, { state: 'Denied', index: ctx.index }],
      approvalCid: decisionCidOrNull(e.approval), approval: e.approval, request: e.request, permitId: null, signingSet: null, releasedBy: null, signatures: null, confirmation: null, receipts: [],
      rule: admission === undefined ? null : ruleRecordOf(admission),
    };
    ctx.ended.push(e.opId);
    return { kind: 'record', cluster: { ...putOp(c, op), opCount: c.opCount + 1 }, reason, detail, extra: { opState: 'Denied', ...(admission ? { admission } : {}) } };
  };
  const rv = verifyActRequest(e, { clusterId: c.clusterId, roster: g.roster, nowMs: ctx.nowMs });
  if (!rv.ok) return deny(rv.reason, rv.detail);
  if (g.frozen !== null) return deny('FROZEN', `admission refused: frozen since index ${g.frozen.sinceIndex}`);
  const k = keyUsable(c, e.act.keyId, e.act.keyEpoch);
  if (isOutcome(k)) return deny((k as { reason: ReasonCode }).reason, (k as { detail: string }).detail);

  // The transaction is parsed here, on every node, against the key's own context: what policy,
  // approvals and the kernels see is what the bytes say, never what the submitter declared. A
  // transaction that does not parse, or belongs to another network, or spends from another key,
  // is recorded Denied with its TX_* reason before any permit exists.
  const key = keyContextOf(c, k.id) as KeyContext;
  let facts: TxFacts;
  try {
    facts = parsedFacts(e.act, key, assetTable(c));
  } catch (err) {
    if (isCustodyError(err)) return deny(err.reason, err.detail);
    throw err;
  }
  const derived = deriveFieldsOf(facts);
  const mismatch = declaredMismatch(e.act, derived) ?? requestDeclaredMismatch(e.request as SignedActRequest, derived);
  if (mismatch !== null) return deny('TX_DECLARED_MISMATCH', mismatch);

  let approvers: readonly string[] = [];
  if (e.approval !== null) {
    const v = verifyDecision(e.approval, g.roster, c.clusterId, g.epoch, ctx.nowMs);
    if (!v.ok) return deny(v.reason, `approval: ${v.detail}`);
    const a = e.approval.body.action;
    if (a.kind !== 'ActApproved' || a.opId !== e.opId || !bytesEqual(a.actCid, aCid) || !bytesEqual(e.approval.body.parentCid, aCid)) {
      return deny('BINDING_MISMATCH', 'the approval does not approve this act');
    }
    // The approvers signed a display digest: it must be the one this node derived from the bytes.
    if (!bytesEqual(a.displayHash, facts.displayHash)) return deny('BINDING_MISMATCH', 'the approval was signed over another display than the transaction\'s');
    approvers = v.approvers;
  }
  const judged = judgeAdmission(c, {
    opId: e.opId, initiator: e.act.initiator, keyId: e.act.keyId, facts, approvers,
    approvedAtMs: e.approval?.body.issuedMs ?? null, nowMs: ctx.nowMs,
  });
  const verdict = judged.verdict;
  if (!verdict.allowed) return deny(verdict.reason ?? 'POLICY_DENIED', verdict.detail, verdict);

  const approvalCid = decisionCidOrNull(e.approval);
  const rule = ruleRecordOf(verdict);
  const receipt = admissionReceipt(anchor(c, e.opId, ctx), { actCid: aCid, keyId: e.act.keyId, keyEpoch: e.act.keyEpoch, governanceEpoch: g.epoch, approvalCid, ruleId: rule.id });
  const op: OpRecord = {
    opId: e.opId, submissionCid: subCid, act: e.act, actCid: aCid, nodeId: e.nodeId, state: 'Admitted', reason: null,
    history: [{ state: 'Submitted', index: ctx.index }, { state: 'Admitted', index: ctx.index }],
    approvalCid, approval: e.approval, request: e.request, permitId: null, signingSet: null, releasedBy: null, signatures: null, confirmation: null, receipts: [receipt], rule,
  };
  const base = judged.cluster;
  const cluster: ClusterState = { ...putOp(base, op), opCount: base.opCount + 1, inFlight: base.inFlight + 1 };
  return { kind: 'accept', cluster, effect: `act ${e.opId} admitted by ${verdict.ruleId === null ? 'the policy' : `rule ${verdict.ruleId}`}`, extra: { opState: 'Admitted', admission: verdict } };
}

function opFor(c: ClusterState, opId: string, ctx: Ctx): OpRecord | Outcome {
  const op = opById(c, opId, ctx);
  return op === undefined ? refuse('UNKNOWN_SESSION', `no act ${opId}`) : op;
}

function actPermitIssued(c: ClusterState, e: Extract<LedgerEvent, { type: 'ActPermitIssued' }>, ctx: Ctx): Outcome {
  const bad = checkProposer(c, e);
  if (bad !== null) return bad;
  const op = opFor(c, e.opId, ctx);
  if (isOutcome(op)) return op;
  if (op.state !== 'Admitted') return refuse('INVALID_TRANSITION', `act ${e.opId} is ${op.state}`);
  if (c.governance.frozen !== null) return refuse('FROZEN', 'no permits while frozen');
  if ((own(c.nodes, e.nodeId) as NodeRecord).equivocated) return refuse('EQUIVOCATION', `${e.nodeId} is flagged for equivocation`);
  const k = keyUsable(c, op.act.keyId, op.act.keyEpoch);
  if (isOutcome(k)) return k;
  const p = { clusterId: c.clusterId, opId: op.opId, keyId: op.act.keyId, keyEpoch: op.act.keyEpoch, messageDigest: op.act.messageDigest, index: ctx.index, nodeId: e.nodeId };
  const permitId = permitIdOf(p);
  const permit: PermitRecord = { opId: op.opId, nodeId: e.nodeId, keyId: p.keyId, keyEpoch: p.keyEpoch, messageDigest: p.messageDigest, index: ctx.index, used: false };
  const receipt = permitReceipt(anchor(c, op.opId, ctx), op.receipts[0] as CborValue, { permitId, nodeId: e.nodeId, keyId: p.keyId, keyEpoch: p.keyEpoch, messageDigest: p.messageDigest });
  const next = putOp({ ...c, permits: put(c.permits, toHex(permitId), permit) }, { ...op, ...moved(op, 'PendingRemote', ctx), permitId, receipts: [...op.receipts, receipt] });
  return { kind: 'accept', cluster: next, effect: `step permit issued for ${op.opId}`, extra: { opState: 'PendingRemote', permitId } };
}

/**
 * The one signing set of a permit (RFC 9591 §5.2: every share binds the whole commitment list, so
 * one list is one possible signature). Fixed once, before any signer is asked for a share; the
 * same list again is a replay, another list under the permit is refused STEP_PERMIT_REUSED.
 */
/** The act and step permit a signing event names, once its proposer may propose and the permit is the act's. */
function actAndPermit(c: ClusterState, e: ProposedEvent & { readonly opId: string; readonly permitId: Uint8Array }, ctx: Ctx): { op: OpRecord; permit: PermitRecord } | Outcome {
  const bad = checkProposer(c, e);
  if (bad !== null) return bad;
  const op = opFor(c, e.opId, ctx);
  if (isOutcome(op)) return op;
  const permit = permitByHex(c, toHex(e.permitId), ctx);
  if (permit === undefined) return refuse('PERMIT_MISSING', 'no such step permit');
  if (permit.opId !== op.opId) return refuse('BINDING_MISMATCH', `the permit belongs to act ${permit.opId}`);
  return { op, permit };
}

function actSigningSetFixed(c: ClusterState, e: Extract<LedgerEvent, { type: 'ActSigningSetFixed' }>, ctx: Ctx): Outcome {
  const found = actAndPermit(c, e, ctx);
  if (isOutcome(found)) return found;
  const { op, permit } = found;
  if (op.signingSet !== null) {
    const same = op.signingSet.commitments.length === e.commitments.length && op.signingSet.commitments.every((m, i) => bytesEqual(encode(memberToCbor(m)), encode(memberToCbor(e.commitments[i] as SigningSetMember))));
    if (same) return { kind: 'replay', ok: true, reason: null, detail: `the signing set of ${op.opId} is already fixed`, extra: { opState: op.state } };
    return refuse('STEP_PERMIT_REUSED', `the permit of ${op.opId} already has another signing set (fixed at index ${op.signingSet.index})`);
  }
  if (permit.used) return refuse('STEP_PERMIT_REUSED', `the permit of ${op.opId} was already used`);
  if (op.state !== 'PendingRemote') return refuse('INVALID_TRANSITION', `act ${e.opId} is ${op.state}`);
  if ((own(c.nodes, e.nodeId) as NodeRecord).equivocated) return refuse('EQUIVOCATION', `${e.nodeId} is flagged for equivocation`);
  const k = keyUsable(c, permit.keyId, permit.keyEpoch);
  if (isOutcome(k)) return k;
  const ep = own(k.epochs, String(permit.keyEpoch)) as EpochRecord;
  const facts = factsOfOp(c, op);
  if (isOutcome(facts)) return facts;
  const count = facts.messages.length;
  const n = e.commitments.length;
  // The holders: the epoch's participants and the nodes enrolled by repair that reported their
  // share (ledger/signers.ts, which says why an enrolled holder keeps the threshold).
  const signers = epochSigners(c, k.scheme, k.id, ep);
  if (n < ep.threshold || n > signers.length) return refuse('PAYLOAD_REJECTED', `a signing set of ${n} for a ${ep.threshold}-of-${ep.participants.length} key with ${signers.length} holders`);
  let last = 0;
  for (const m of e.commitments) {
    const holder = signers.find((s) => s.nodeId === m.nodeId);
    if (holder === undefined) return refuse('WRONG_RECIPIENT', `${m.nodeId} holds no share of ${k.id} epoch ${ep.epoch}`);
    // Sorted by identifier, each once: the list has one encoding, so "the same list" is byte equality.
    if (holder.position <= last) return refuse('PAYLOAD_REJECTED', 'the signing set is not sorted by identifier, or names a signer twice');
    last = holder.position;
    if (m.identifier !== holder.identifier) return refuse('BINDING_MISMATCH', `${m.nodeId} is identifier ${holder.identifier} in this key epoch`);
    const node = own(c.nodes, m.nodeId);
    if (node === undefined || node.status !== 'active') return refuse('SPLIT_BRAIN_FENCED', `${m.nodeId} is ${node?.status ?? 'unknown'}: its kernel takes no part`);
    if (node.equivocated) return refuse('EQUIVOCATION', `${m.nodeId} is flagged for equivocation`);
    // One nonce pair per message: a pair used for two messages would reveal the share (RFC 9591 §10.4).
    if (m.nonces.length !== count) return refuse('PAYLOAD_REJECTED', `${m.nodeId} commits ${m.nonces.length} nonce pairs for an act of ${count} messages`);
    for (const x of m.nonces) {
      if (!isGroupElement(k.scheme, x.hiding) || !isGroupElement(k.scheme, x.binding)) return refuse('PAYLOAD_REJECTED', `the commitments of ${m.nodeId} are not ${k.scheme} group elements`);
    }
  }
  const next = putOp(c, { ...op, signingSet: { index: ctx.index, commitments: e.commitments } });
  return { kind: 'accept', cluster: next, effect: `signing set of ${op.opId} fixed: ${e.commitments.map((m) => m.nodeId).join(', ')}`, extra: { opState: 'PendingRemote' } };
}

function actExecuted(c: ClusterState, e: Extract<LedgerEvent, { type: 'ActExecuted' }>, ctx: Ctx): Outcome {
  const found = actAndPermit(c, e, ctx);
  if (isOutcome(found)) return found;
  const { op, permit } = found;
  if (permit.used) return refuse('STEP_PERMIT_REUSED', `the permit of ${op.opId} was already used`);
  if (op.state !== 'PendingRemote') return refuse('INVALID_TRANSITION', `act ${e.opId} is ${op.state}`);
  if ((own(c.nodes, e.nodeId) as NodeRecord).equivocated) return refuse('EQUIVOCATION', `${e.nodeId} is flagged for equivocation`);
  const k = keyUsable(c, permit.keyId, permit.keyEpoch);
  if (isOutcome(k)) return k;
  const set = op.signingSet;
  if (set === null) return refuse('INVALID_TRANSITION', `act ${e.opId} has no signing set fixed under its permit`);
  const facts = factsOfOp(c, op);
  if (isOutcome(facts)) return facts;
  const messages = facts.messages;
  if (e.signatures.length !== messages.length) return refuse('PAYLOAD_REJECTED', `${e.signatures.length} signatures for ${messages.length} messages`);
  const sigLength = k.scheme === 'secp256k1' ? 65 : 64;
  if (e.signatures.some((s) => s.length !== sigLength)) return refuse('PAYLOAD_REJECTED', `a ${k.scheme} signature is ${sigLength} bytes`);
  if (k.scheme === 'ed25519') {
    // FROST over Ed25519 yields a plain RFC 8032 signature over each message (RFC 9591 §6.1), so
    // the ledger checks every one against the group key. A FROST signature is (R, z) with R the
    // group commitment of the list it was aggregated over (RFC 9591 §5.3): the ledger recomputes
    // R from message i and list i of the fixed set, so no signature made with other nonces (a
    // set other than the one fixed, or one list used for another message) is accepted. The
    // Taproot and secp256k1 suites are verified by the coordinator before it proposes, and by
    // the chain.
    const pk = k.publicKey as Uint8Array;
    for (let i = 0; i < messages.length; i++) {
      const sig = e.signatures[i] as Uint8Array;
      const msg = messages[i] as Uint8Array;
      if (!ed25519Verify(sig, msg, pk)) return refuse('SIGNATURE_INVALID', `signature ${i} does not verify under the group key over message ${i}`);
      if (!bytesEqual(sig.subarray(0, 32), ed25519GroupCommitment(pk, msg, listFor(set.commitments, i)).R)) {
        return refuse('BINDING_MISMATCH', `signature ${i} is not over list ${i} of the fixed signing set`);
      }
    }
  }
  // Every member of the set gave a share for every message, so each consumed every nonce it
  // committed to: the ledger keeps the last (highest) counter per member.
  let consumed = c.consumed;
  for (const m of set.commitments) {
    const ck = consumedKey(permit.keyId, permit.keyEpoch, m.nodeId);
    const last = lastCounter(m);
    if (last > (own(consumed, ck) ?? 0)) consumed = put(consumed, ck, last);
  }
  const next = putOp({ ...c, consumed, permits: put(c.permits, toHex(e.permitId), { ...permit, used: true }) }, { ...op, ...moved(op, 'Executed', ctx), signatures: [...e.signatures] });
  return { kind: 'accept', cluster: next, effect: `act ${op.opId} executed; waiting at the publication gate`, extra: { opState: 'Executed' } };
}

function actPublished(c: ClusterState, e: Extract<LedgerEvent, { type: 'ActPublished' }>, ctx: Ctx): Outcome {
  const bad = checkProposer(c, e);
  if (bad !== null) return bad;
  const op = opFor(c, e.opId, ctx);
  if (isOutcome(op)) return op;
  if (op.state !== 'Executed') return refuse('INVALID_TRANSITION', `act ${e.opId} is ${op.state}`);
  if (c.governance.frozen !== null) return refuse('FROZEN', 'publication held while frozen');
  // The gate applies the policy in force now, not at admission (ledger/admission.ts): a rule
  // changed since then still holds the publication.
  const facts = factsOfOp(c, op);
  if (isOutcome(facts)) return facts;
  const gate = judgePublication(c, op, facts, ctx.nowMs);
  if (!gate.ok) return refuse(gate.reason ?? 'PUBLICATION_DENIED', gate.detail);
  const receipt = publicationReceipt(anchor(c, op.opId, ctx), op.receipts[1] as CborValue, { signatureDigest: artifactDigest(op.signatures as readonly Uint8Array[]), releasedBy: op.releasedBy });
  return { kind: 'accept', cluster: putOp(c, { ...op, ...moved(op, 'Published', ctx), receipts: [...op.receipts, receipt] }), effect: `act ${op.opId} published`, extra: { opState: 'Published' } };
}

function actSettled(c: ClusterState, e: Extract<LedgerEvent, { type: 'ActSettled' }>, ctx: Ctx): Outcome {
  const bad = checkProposer(c, e);
  if (bad !== null) return bad;
  const op = opFor(c, e.opId, ctx);
  if (isOutcome(op)) return op;
  if (op.state !== 'Published') return refuse('INVALID_TRANSITION', `act ${e.opId} is ${op.state}`);
  ctx.ended.push(op.opId);
  return { kind: 'accept', cluster: putOp(c, { ...op, ...moved(op, 'Settled', ctx), confirmation: e.confirmation }), effect: `act ${op.opId} settled`, extra: { opState: 'Settled' } };
}

/**
 * The digest a Denied act's ActDenialRecorded names for the rule record the ledger kept with it
 * (null when a check outside the rules denied it): SHA-256 under its own domain of the record's
 * canonical CBOR, so an auditor recomputes it from the rule a bundle shows.
 */
export function denialRuleDigest(rule: RuleRecord | null): Uint8Array {
  return digest('custody-ledger/denial-rule/v1', encode(rule === null ? null : ruleToCbor(rule)));
}

/**
 * A Denied act's verdict entered in the log (events.ts ActDenialRecorded), so that evidence of
 * the denial rests on an entry a quorum cosigns rather than on the exporting node's word
 * (node/lifecycle/evidence-proof.ts). Accepted only in the proposer's own name, for an act the
 * ledger recorded Denied (UNKNOWN_SESSION, INVALID_TRANSITION otherwise), naming exactly the
 * reason code and rule it recorded (BINDING_MISMATCH): every replica checks the entry against its
 * own record, so the entry can only repeat the ledger's verdict. The state does not change; a
 * second record of the same verdict is harmless (it says the same), so none is kept to refuse it.
 */
function denialRecorded(c: ClusterState, e: Extract<LedgerEvent, { type: 'ActDenialRecorded' }>, ctx: Ctx): Outcome {
  const bad = checkProposer(c, e);
  if (bad !== null) return bad;
  const op = opFor(c, e.opId, ctx);
  if (isOutcome(op)) return op;
  if (op.state !== 'Denied') return refuse('INVALID_TRANSITION', `act ${e.opId} is ${op.state}, not Denied`);
  if (op.reason !== e.reason) return refuse('BINDING_MISMATCH', `act ${e.opId} was denied ${op.reason ?? ''}, not ${e.reason}`);
  if (!bytesEqual(denialRuleDigest(op.rule), e.ruleDigest)) return refuse('BINDING_MISMATCH', `the rule digest is not that of the rule recorded with act ${e.opId}`);
  return { kind: 'accept', cluster: c, effect: `denial of act ${e.opId} (${e.reason}${op.rule?.id ? `, rule ${op.rule.id}` : ''}) entered in the log` };
}

function actAborted(c: ClusterState, e: Extract<LedgerEvent, { type: 'ActAborted' }>, ctx: Ctx): Outcome {
  const bad = checkProposer(c, e);
  if (bad !== null) return bad;
  const op = opFor(c, e.opId, ctx);
  if (isOutcome(op)) return op;
  if (!(OP_TRANSITIONS[op.state] as readonly OpState[]).includes('Aborted')) return refuse('INVALID_TRANSITION', `act ${e.opId} is ${op.state}`);
  return { kind: 'accept', cluster: abortOp(c, op, e.reason, ctx), effect: `act ${op.opId} aborted: ${e.reason}`, extra: { opState: 'Aborted' } };
}
