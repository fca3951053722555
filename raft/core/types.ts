/**
 * The contract of the pure Raft core (etcd-io/raft's split).
 *
 * The core is a deterministic state machine: its only inputs are `step(msg)`, `tick()` and the
 * API calls below; its only output is a `Ready`. It performs no I/O, owns no timer, and draws
 * randomness only from the injected `Rng`. The driver (real daemon or simulator) loops:
 *
 *   rd = core.ready()
 *   1. persist rd.hardState, rd.entries, rd.snapshot   (one durable batch, sync if rd.mustSync)
 *   2. send rd.messages                                 (only after 1 is durable)
 *   3. apply rd.committedEntries, hand out rd.readStates
 *   4. core.advance(rd)
 *
 * Step 1 before 2 is the persistence contract of Raft (§5.1, Figure 2 "Persistent state ... updated
 * on stable storage before responding to RPCs"): a vote or an append acknowledgement must never
 * leave before the state it promises is durable.
 */

export type NodeId = string;

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

export type EntryType = 'normal' | 'conf';

/** One log entry. `data` of a `conf` entry is an encoded `ConfChange` (see confchange.ts). */
export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** The state Raft requires to be durable before answering any RPC (Figure 2). */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId | null;
  readonly commit: number;
}

/**
 * Membership. `voters` is the incoming (or only) configuration; `votersOutgoing` is non-empty only
 * while in a joint configuration (§6 of the Raft thesis: decisions need majorities of both).
 */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  readonly votersOutgoing: readonly NodeId[];
  /** Learners that become voters when the joint configuration is left. */
  readonly learnersNext: readonly NodeId[];
  /** Leave the joint configuration automatically once it commits. */
  readonly autoLeave: boolean;
}

export interface SnapshotMeta {
  readonly index: number;
  readonly term: number;
  readonly conf: ConfState;
}

export interface Snapshot {
  readonly meta: SnapshotMeta;
  /** The application's state machine image at meta.index (opaque to the core). */
  readonly data: Uint8Array;
}

export type ConfChangeType = 'addVoter' | 'addLearner' | 'remove';

export interface ConfChangeSingle {
  readonly type: ConfChangeType;
  readonly node: NodeId;
  /**
   * The governance decision that asks for this change (node/membership/guard.ts): its ledger index
   * and cid (hex). Opaque to the core; a ConfGuard reads it.
   */
  readonly decision?: DecisionRef;
}

/** Names an applied governance decision: the ledger index it was applied at and its cid (hex). */
export interface DecisionRef {
  readonly index: number;
  readonly cid: string;
}

/**
 * Judges a membership change before this node appends it to its log (as a follower) or proposes
 * it (as a leader). The core calls it only once every entry before the change is applied, so the
 * guard reads the state machine exactly as it stands just before the change, the same state on
 * every replica: `conf` is the configuration in force there. Returns null to accept, or why the
 * change is refused. A guard must be a pure function of that state (no clock, no randomness).
 */
export type ConfGuard = (cc: ConfChange, conf: ConfState) => string | null;

/**
 * A membership change (etcd's ConfChangeV2). One voter change alone is applied directly (one
 * server at a time, thesis §4.1); anything else goes through a joint configuration, which is left
 * by an empty ConfChange ("leave joint"), proposed automatically when `transition` is 'auto'.
 */
export interface ConfChange {
  readonly changes: readonly ConfChangeSingle[];
  readonly transition: 'auto' | 'explicit';
}

export type MessageType =
  | 'app' // AppendEntries (§5.3)
  | 'appResp'
  | 'vote' // RequestVote (§5.2)
  | 'voteResp'
  | 'preVote' // Pre-vote (thesis §9.6): would you vote for me?
  | 'preVoteResp'
  | 'heartbeat' // empty append carrying only commit and a ReadIndex context
  | 'heartbeatResp'
  | 'snap' // one chunk of InstallSnapshot (§7)
  | 'snapResp'
  | 'timeoutNow' // leader transfer (thesis §3.10): campaign now, ignoring lease
  | 'prop' // a proposal forwarded by a follower to the leader
  | 'readIndex' // a ReadIndex request forwarded to the leader (thesis §6.4)
  | 'readIndexResp'
  | 'transferLeader'; // a leader-transfer request forwarded to the leader

/** One chunk of a snapshot in flight. The follower assembles chunks in offset order. */
export interface SnapshotChunk {
  readonly meta: SnapshotMeta;
  /** Total size of the snapshot data in bytes. */
  readonly size: number;
  readonly offset: number;
  readonly data: Uint8Array;
  readonly last: boolean;
}

/**
 * One peer message. Fields not meaningful for a type are zero/empty. Every field is validated by
 * the core on receipt (a peer may be buggy or hostile); invalid messages are dropped and counted.
 */
export interface Message {
  readonly type: MessageType;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  /** app: term of the entry before `entries`; vote/preVote: term of the candidate's last entry. */
  readonly logTerm: number;
  /** app: index of the entry before `entries`; vote: candidate's last index; appResp: match/hint index. */
  readonly index: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
  readonly reject: boolean;
  /** appResp rejection: the follower's last index, so the leader can back off fast. */
  readonly rejectHint: number;
  /** ReadIndex context / campaign reason (e.g. 'transfer') / proposal id. */
  readonly context: Uint8Array;
  readonly snapshot: SnapshotChunk | null;
}

/** A linearizable read point: once `index` is applied locally, a read for `context` may be served. */
export interface ReadState {
  readonly index: number;
  readonly context: Uint8Array;
}

export interface SoftState {
  readonly leader: NodeId | null;
  readonly role: Role;
}

/**
 * Everything the driver must do, in order. A Ready is handed out once; `advance(rd)` acknowledges
 * it. Arrays are owned by the driver after `ready()` returns.
 */
export interface Ready {
  readonly softState: SoftState | null;
  /** Persist if non-null. */
  readonly hardState: HardState | null;
  /** Append to stable storage, truncating any conflicting suffix first. */
  readonly entries: readonly Entry[];
  /** Persist and install (replaces the state machine) if non-null. */
  readonly snapshot: Snapshot | null;
  /** Send only after everything above is durable. */
  readonly messages: readonly Message[];
  /** Apply in order. Conf entries are applied to the core's membership on advance(). */
  readonly committedEntries: readonly Entry[];
  readonly readStates: readonly ReadState[];
  /** True when term, vote or entries changed: the persist must be synced. */
  readonly mustSync: boolean;
}

/**
 * Read access to the stable log, owned by the driver (etcd's Storage). All methods are
 * synchronous: the real node keeps the live suffix of the log in memory beside LevelDB.
 *
 * Errors: `entries` and `term` throw `CompactedError` for indexes at or below the snapshot and
 * `UnavailableError` past lastIndex. Returned arrays must not be mutated by the caller.
 */
export interface Storage {
  initialState(): { hardState: HardState; conf: ConfState };
  /** Entries in [lo, hi), at most maxBytes of data (but always at least one if any). */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  term(index: number): number;
  /** Index of the first entry still in the log (snapshot index + 1). */
  firstIndex(): number;
  lastIndex(): number;
  snapshot(): Snapshot;
  /**
   * Optional: the snapshot to send a follower that needs one, or null while none may be sent yet
   * (the node's snapshot is not certified yet: node/snapshot-cert.ts). The leader then keeps
   * probing the follower and asks again on its next answer. Without it, `snapshot()` is sent.
   */
  snapshotToSend?(): Snapshot | null;
}

/** Deterministic randomness, injected (never Math.random in the core). */
export interface Rng {
  /** A uniform integer in [0, n). */
  int(n: number): number;
}

/**
 * Test-only switches that break the core on purpose, so the simulator's checkers can be shown to
 * catch real bugs. Never set in production; the daemon refuses to start with any set.
 */
export interface FaultSwitches {
  /** Count votes granted in an earlier term as if they were for the current one. */
  readonly countStaleTermVotes?: boolean;
  /** Commit entries of an earlier term by counting replicas (violates §5.4.2). */
  readonly commitOldTermByCounting?: boolean;
  /** Grant a vote without checking that the candidate's log is up to date (violates §5.4.1). */
  readonly voteIgnoringLog?: boolean;
}

export interface RaftConfig {
  readonly id: NodeId;
  readonly storage: Storage;
  readonly rng: Rng;
  /** Minimum election timeout in ticks; each timeout is drawn from [min, 2*min). */
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /** Index already applied by the state machine (on restart: the snapshot or ledger index). */
  readonly applied: number;
  readonly appendBytesMax: number;
  readonly inflightMsgsMax: number;
  readonly inflightBytesMax: number;
  readonly uncommittedBytesMax: number;
  readonly snapshotChunkBytes: number;
  readonly readIndexPendingMax: number;
  /**
   * Optional: decides whether a fully received snapshot may be installed, before anything of the
   * follower's log or state changes (node/snapshot-cert.ts: only a snapshot a majority of voters
   * certified). Synchronous and free of side effects on the core. A refused snapshot is counted
   * (stats.snapshotsRefused) and not answered: the leader's heartbeats make it send again.
   */
  readonly snapshotAccepted?: (s: Snapshot) => boolean;
  readonly faults?: FaultSwitches;
  /** When set, every membership change is judged by it before it is appended or proposed (raft.ts). */
  readonly confGuard?: ConfGuard;
}

export type ProposeResult =
  | { readonly ok: true; readonly index: number; readonly term: number; readonly forwarded: false }
  | { readonly ok: true; readonly forwarded: true }
  | { readonly ok: false; readonly reason: 'NOT_LEADER' | 'PROPOSAL_DROPPED' | 'LIMIT_EXCEEDED' | 'CONF_CHANGE_UNAUTHORIZED'; readonly detail: string };

export interface Progress {
  readonly match: number;
  readonly next: number;
  readonly state: 'probe' | 'replicate' | 'snapshot';
  readonly inflightMsgs: number;
  readonly inflightBytes: number;
  readonly recentActive: boolean;
}

export interface Status {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly vote: NodeId | null;
  readonly leader: NodeId | null;
  readonly commit: number;
  readonly applied: number;
  readonly lastIndex: number;
  readonly conf: ConfState;
  readonly leadTransferee: NodeId | null;
  /** Only on the leader. */
  readonly progress: Readonly<Record<NodeId, Progress>> | null;
}

/** The core's API. Implemented by `RaftCore` in raft.ts. */
export interface RaftApi {
  /** One logical tick; `mayCampaign` false keeps the election clock running without starting an election. */
  tick(mayCampaign?: boolean): void;
  step(msg: Message): void;
  /** On the leader: append. On a follower with a known leader: forward ('prop'). */
  propose(data: Uint8Array): ProposeResult;
  proposeConfChange(cc: ConfChange): ProposeResult;
  /** Request a linearizable read point; answered later by a ReadState carrying `context`. */
  readIndex(context: Uint8Array): void;
  /** Ask the leader to hand leadership to `to` (forwarded if this node is a follower). */
  transferLeadership(to: NodeId): void;
  /** Start an election now (bootstrap/testing). */
  campaign(): void;
  hasReady(): boolean;
  ready(): Ready;
  advance(rd: Ready): void;
  status(): Status;
}
