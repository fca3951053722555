/**
 * The Raft driver: the only place where the consensus core meets I/O (DESIGN.md §2). It owns the
 * loop documented in core/types.ts:
 *
 *   1. persist the Ready (hard state, entries, snapshot) together with the application state it
 *      produces and the applied index, as ONE LevelDB batch, synced when the Ready says mustSync;
 *   2. only then send the Ready's messages;
 *   3. only then acknowledge clients and hand out read states;
 *   4. advance the core.
 *
 * Applying committed entries is computed before the batch is written so the application's state
 * and its applied index land in the same atomic batch as the log (apply is exactly-once across
 * restarts) and share its fsync. Nothing computed from an entry is visible outside the process
 * (no client ack, no message) until that batch is durable.
 *
 * Everything that touches the core runs inside the loop, one step at a time: incoming messages,
 * ticks and proposals queue in an inbox while a batch is being written, and are all handed to the
 * core before the next Ready. That queueing is the group commit: whatever arrived during one fsync
 * shares the next.
 *
 * Client proposals carry (client id, sequence) (Raft thesis §6.3): the state machine keeps the
 * last sequence and result per client, so a proposal applied twice (a retry after a timeout, a
 * re-forward after a leader change) takes effect once and the retry gets the original result.
 */
import { createHash, randomBytes } from 'node:crypto';
import { CustodyError, assert } from '../proto/errors.js';
import { raft as raftLimits, node as nodeLimits, tlog as tlogLimits } from '../proto/limits.js';
import type { ReasonCode } from '../proto/reasons.js';
import type { ConfChange, ConfGuard, ConfState, Entry, Message, NodeId, ProposeResult, RaftApi, RaftConfig, Ready, Role, Snapshot, SnapshotMeta, Status, Storage } from './core/types.js';
import { applyConfChange, decodeConfChange } from './core/confchange.js';
import type { AppWrite, LevelStorage, PersistStats } from './storage/leveldb.js';
import type { Clock, Timer, Transport } from './transport.js';

/** The replicated state machine the driver applies committed commands to. Deterministic. */
export interface Application {
  /** Load state persisted under the application's keys (relative to `sm/`). */
  load(get: (key: string) => Uint8Array | undefined, keys: () => Iterable<string>): void;
  /** Apply one command; returns its result and the state writes (keys relative to `sm/`). */
  apply(index: number, command: Uint8Array): { result: Uint8Array; writes: AppWrite[] } | { reason: ReasonCode; detail: string };
  /**
   * Optional: called with the commands of the committed entries of one batch before any of them is
   * applied, so an application that keeps part of its state on disk can read what `apply` will
   * need (apply stays synchronous). Nothing is applied or written while it runs.
   */
  prepare?(commands: readonly Uint8Array[]): Promise<void>;
  /**
   * Optional, with prepare: called after the batch's commands are applied; returns writes that
   * belong once per batch (the state as it stands after the batch), persisted in the same batch.
   */
  finish?(): AppWrite[];
  /** The whole state as bytes (for a Raft snapshot); the loop waits, so it is consistent. */
  snapshot(): Uint8Array | Promise<Uint8Array>;
  /** Replace the whole state; returns writes that replace the persisted state (deletes included). */
  restore(data: Uint8Array): AppWrite[] | Promise<AppWrite[]>;
  /** A digest of the state, comparable across nodes at the same applied index. */
  root(): string;
}

/**
 * Certification of Raft snapshots (node/snapshot-cert.ts): a follower installs a snapshot only
 * when a majority of the voters certified its content. With it, the driver takes its snapshots at
 * the same indexes on every node (each multiple of snapshotEveryEntries, captured while the batch
 * is applied), so every node can vouch for the snapshot a leader sends: it holds its own at that
 * index.
 */
export interface SnapshotCertification {
  /** The statement (the text voters cosign) of this node's own snapshot, or null when it cannot be certified. */
  statement(meta: SnapshotMeta, data: Uint8Array): string | null;
  /**
   * A statement of this node's own replica at Raft index `index`: recorded by the driver in the
   * batch that applied the index (so it survives a crash with that batch), and handed back at start.
   */
  recorded(index: number, term: number, text: string): void;
  /**
   * The certificate of this node's stored snapshot, or null while it has none (the certifier then
   * gathers one beside the loop, at most once per retry interval). Asked after every batch, so the
   * certificate is gathered while the voters that applied the index still hold their statements,
   * and before the snapshot is needed. A snapshot installed from a leader carries its certificate:
   * it is returned once checked. The driver keeps the certified snapshot to send, durably
   * (LevelStorage.keepSendable), and compacts its log only up to it.
   */
  certificate(meta: SnapshotMeta, data: Uint8Array): string | null;
  /** The certificate of the snapshot this node kept to send, from before it restarted. */
  certified(meta: SnapshotMeta, note: string): void;
  /** Whether a received snapshot may be installed: null, or why not. Synchronous; changes nothing. */
  check(meta: SnapshotMeta, data: Uint8Array): { readonly reason: ReasonCode; readonly detail: string } | null;
}

export type Outcome =
  | { readonly ok: true; readonly index: number; readonly result: Uint8Array; readonly duplicate: boolean }
  | { readonly ok: false; readonly reason: ReasonCode; readonly detail: string };

export interface DriverMetrics {
  persisted?(stats: PersistStats, synced: boolean, entries: number): void;
  applied?(count: number): void;
  proposal?(result: 'committed' | 'duplicate' | 'refused' | 'timeout'): void;
  dropped?(what: 'inbound' | 'proposal'): void;
  /** A received snapshot was refused (SnapshotCertification.check). */
  snapshotRefused?(reason: ReasonCode): void;
  /** A received snapshot was installed. */
  snapshotInstalled?(): void;
}

/** Planted bugs, each on its own switch; set only by node/test-faults.ts (which documents them). */
export interface TestFaults {
  readonly ackBeforeFsync: boolean;
  readonly readWithoutReadIndex: boolean;
  readonly applyRetryTwice: boolean;
}

/** A node's durable Raft state: Figure 2's persistent term and vote, and where its log ends. */
export interface DurableRaftState {
  readonly term: number;
  readonly vote: NodeId | null;
  readonly lastIndex: number;
  /** Term of the last entry (of the snapshot when the log is empty). */
  readonly lastLogTerm: number;
}

/**
 * Checks that run beside Raft in the node (node/splitbrain/): the rollback gate and witness book
 * (rollback.ts) and signed votes and leader announcements (equivocation.ts).
 *
 * - `received` sees every message from an authenticated peer before the core steps it, with the
 *   boot id the peer's stream named (the run of the peer's process that sent it), if any.
 * - While `mayVote` says no, incoming vote requests of the node's own term or earlier are dropped (a
 *   lost message, which Raft tolerates); one of a later term moves the node into that term without
 *   a grant; outgoing vote grants are dropped (pre-vote grants, which bind nothing, are not), and so
 *   is a leader's request to take over (timeoutNow);
 *   a node that is not leader does not tick, so it never starts an election. It still follows a
 *   leader and acknowledges appends.
 * - `takeWrites` is called once per batch; its writes land in that batch, before any message the
 *   batch releases; when `hasWrites` says so between batches, they are written on their own. `sync` forces the batch to be fsynced (a witnessed vote must be durable
 *   before the leadership it helped win acts on it).
 * - `voted` / `leads` report, after the batch is durable, a vote this node granted and a term it
 *   began to lead with the index of its first entry in that term.
 */
export interface VoteGuard {
  received(m: Message, boot?: string): void;
  mayVote(now: DurableRaftState): boolean;
  takeWrites(): { readonly writes: AppWrite[]; readonly sync: boolean };
  /** True when `takeWrites` has something to write; the driver then writes it even without a Raft step. */
  hasWrites?(): boolean;
  voted(term: number, candidate: NodeId): void;
  leads(term: number, startIndex: number): void;
}

export interface DriverOptions {
  readonly id: NodeId;
  readonly storage: LevelStorage;
  readonly app: Application;
  readonly transport: Transport;
  readonly clock: Clock;
  /** Builds the core; the driver supplies storage, applied index and the tunables. */
  readonly newCore: (cfg: RaftConfig) => RaftApi;
  readonly rng: RaftConfig['rng'];
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly snapshotEveryEntries: number;
  readonly compactionKeepEntries: number;
  /** Most client commands packed into one entry (default nodeLimits.proposalsPerEntryMax). */
  readonly proposalsPerEntryMax?: number;
  readonly metrics?: DriverMetrics;
  readonly guard?: VoteGuard;
  /** Judges every membership change before the core appends or proposes it (raft/core/types.ts ConfGuard). */
  readonly confGuard?: ConfGuard;
  /** Install only certified snapshots, and send them with their certificate (see SnapshotCertification). */
  readonly snapshotCert?: SnapshotCertification;
  /**
   * Runs a loop turn soon, after the current one returns (default: setImmediate). The simulator
   * passes its own queue so that every node's loop runs in an order its seed decides.
   */
  readonly schedule?: (turn: () => void) => void;
  /** Called when the driver cannot go on (a failed disk write): the process must stop. */
  readonly onFatal: (e: unknown) => void;
  readonly log?: (line: string) => void;
  /** Planted bugs for the Jepsen campaign's self-test (node/test-faults.ts); absent in production. */
  readonly testFaults?: TestFaults;
}

export interface DriverStatus extends Status {
  readonly appliedIndex: number;
  readonly snapshotIndex: number;
  readonly firstIndex: number;
  readonly root: string;
  /** Recovering a lost log (a wipe, or a rollback its peers proved): it grants no votes until it holds what was committed. */
  readonly recovering: boolean;
}

const META_APPLIED = 'meta/applied';
/** Set by `custody node wipe` (storage/leveldb.ts wipeStore); see `Recovering` below. */
export const META_RECOVERING = 'meta/recovering';
const SESSION_PREFIX = 'session/';
/** With certified snapshots: this node's statements of its own snapshots, by Raft index. */
const STATEMENT_PREFIX = 'snapcert/';
const statementKey = (index: number): string => `${STATEMENT_PREFIX}${String(index).padStart(16, '0')}`;
export const SM_PREFIX = 'sm/';
const ENVELOPE_VERSION = 1;
/** Leader-to-follower messages that promise nothing about the leader's own disk (see handle()). */
const LEADER_EARLY: ReadonlySet<Message['type']> = new Set(['app', 'heartbeat', 'snap']);
const CLIENT_ID_BYTES_MAX = 128;

interface Session {
  seq: number;
  digest: string;
  index: number;
  outcome: Outcome;
}

interface PendingProposal {
  readonly key: string;
  readonly data: Uint8Array;
  readonly digest: string;
  readonly deadlineMs: number;
  nextTryMs: number;
  lastReason: ReasonCode | null;
  readonly waiters: ((o: Outcome) => void)[];
}

/**
 * A node whose log was wiped (after corruption) has lost entries it may have acknowledged, some
 * possibly committed with its help. Raft assumes acknowledged entries are never lost (§5.4), so
 * until the node again holds everything that was committed when it came back, it:
 * - grants no votes (dropping a grant is always safe: it is a lost message). Otherwise it could
 *   help elect a candidate missing a committed entry that only the crashed majority held;
 * - if the leader keeps probing it above its (now empty) log — a leader never backs off below a
 *   follower's match index, which the wipe made stale — asks for leadership to move to another
 *   voter; the new leader starts progress afresh and sends the node a snapshot and the log.
 * It ends once the node has applied the leader commit index seen in its first append.
 */
interface Recovering {
  leaderCommit: number | null;
  lastIndexSeen: number;
  lastProgressMs: number;
  done: boolean;
}

interface PendingRead {
  readonly ctx: Uint8Array;
  readonly deadlineMs: number;
  nextTryMs: number;
  index: number | null;
  readonly resolve: (index: number) => void;
  readonly reject: (e: CustodyError) => void;
}

/** Encodes a client command: version | clientIdLen:u16 | clientId | seq:u64 | payload. */
export function encodeCommand(clientId: string, seq: number, payload: Uint8Array): Uint8Array {
  const id = Buffer.from(clientId, 'utf8');
  const b = Buffer.alloc(1 + 2 + id.length + 8 + payload.length);
  b[0] = ENVELOPE_VERSION;
  b.writeUInt16BE(id.length, 1);
  id.copy(b, 3);
  b.writeBigUInt64BE(BigInt(seq), 3 + id.length);
  b.set(payload, 11 + id.length);
  return b;
}

export function decodeCommand(data: Uint8Array): { clientId: string; seq: number; payload: Uint8Array } | null {
  const b = Buffer.from(data.buffer, data.byteOffset, data.length);
  if (b.length < 11 || b[0] !== ENVELOPE_VERSION) return null;
  const n = b.readUInt16BE(1);
  if (n === 0 || n > CLIENT_ID_BYTES_MAX || b.length < 11 + n) return null;
  const seq = b.readBigUInt64BE(3 + n);
  if (seq > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return { clientId: b.subarray(3, 3 + n).toString('utf8'), seq: Number(seq), payload: b.subarray(11 + n) };
}

const BATCH_VERSION = 2;

/**
 * Many client commands in one Raft entry: version 2 | count:u32 | (length:u32 | command)*. The
 * driver packs every proposal waiting in one loop turn into one entry (up to proposalBytesMax), so
 * a burst of N proposals costs one append message per follower and one acknowledgement, not N.
 */
export function encodeBatch(commands: readonly Uint8Array[]): Uint8Array {
  let n = 5;
  for (const c of commands) n += 4 + c.length;
  const b = Buffer.alloc(n);
  b[0] = BATCH_VERSION;
  b.writeUInt32BE(commands.length, 1);
  let o = 5;
  for (const c of commands) {
    b.writeUInt32BE(c.length, o);
    b.set(c, o + 4);
    o += 4 + c.length;
  }
  return b;
}

/** The client commands an entry carries (one, or a batch), or null if it carries none. */
export function decodeEntryCommands(data: Uint8Array): Uint8Array[] | null {
  if (data.length === 0) return null;
  if (data[0] === ENVELOPE_VERSION) return [data];
  if (data[0] !== BATCH_VERSION || data.length < 5) return null;
  const b = Buffer.from(data.buffer, data.byteOffset, data.length);
  const count = b.readUInt32BE(1);
  const out: Uint8Array[] = [];
  let o = 5;
  for (let i = 0; i < count; i++) {
    if (o + 4 > b.length) return null;
    const n = b.readUInt32BE(o);
    if (o + 4 + n > b.length) return null;
    out.push(b.subarray(o + 4, o + 4 + n));
    o += 4 + n;
  }
  return o === b.length ? out : null;
}

function digestOf(payload: Uint8Array): string {
  return createHash('sha256').update(payload).digest('hex');
}

export class Driver {
  private core!: RaftApi;
  private readonly o: DriverOptions;
  private inbox: (() => void)[] = [];
  private ticksDue = 0;
  private running = false;
  private stopped = false;
  private fatal = false;
  private timer: Timer | null = null;
  private appliedIndex = 0;
  private appliedTerm = 0;
  /** With certified snapshots: the snapshot captured at the last aligned index applied, until stored. */
  private aligned: Snapshot | null = null;
  /** With certified snapshots: the stored snapshot with its certificate, until kept durably. */
  private freshSendable: Snapshot | null = null;
  private readonly sessions = new Map<string, Session>();
  private readonly proposals = new Map<string, PendingProposal>();
  private readonly reads = new Map<string, PendingRead>();
  private role: Role = 'follower';
  private leader: NodeId | null = null;
  private idleWaiters: (() => void)[] = [];
  private recovering: Recovering | null = null;
  /** recover() began a recovery whose marker is not yet written. */
  private recoveryMarkPending = false;
  /** Proposals to hand to the core at the next loop turn, packed into batch entries. */
  private toPropose: PendingProposal[] = [];
  /** When each peer was last heard from (driver clock), for membership and status. */
  private readonly lastHeard = new Map<NodeId, number>();

  constructor(o: DriverOptions) {
    this.o = o;
  }

  /** Load persisted state, build the core and start ticking. */
  start(): void {
    const st = this.o.storage;
    const applied = st.appValue(META_APPLIED);
    // A fresh store has applied everything up to its bootstrap snapshot (the roster, no data).
    this.appliedIndex = st.snapshot().meta.index;
    this.appliedTerm = st.snapshot().meta.term;
    if (applied) {
      const a = JSON.parse(Buffer.from(applied).toString('utf8')) as { index: number; term: number };
      this.appliedIndex = a.index;
      this.appliedTerm = a.term;
    }
    for (const k of st.appKeys()) {
      if (!k.startsWith(SESSION_PREFIX)) continue;
      const s = JSON.parse(Buffer.from(st.appValue(k) as Uint8Array).toString('utf8')) as SessionJson;
      this.sessions.set(k.slice(SESSION_PREFIX.length), sessionFromJson(s));
    }
    if (this.o.snapshotCert) {
      const kept = st.sendableSnapshot();
      if (kept !== null) {
        const carried = parseSnapshotEnvelope(kept.data).cert;
        if (carried !== undefined) this.o.snapshotCert.certified(kept.meta, carried);
      }
      for (const k of st.appKeys()) {
        if (!k.startsWith(STATEMENT_PREFIX)) continue;
        const v = JSON.parse(Buffer.from(st.appValue(k) as Uint8Array).toString('utf8')) as { term: number; text: string };
        this.o.snapshotCert.recorded(Number(k.slice(STATEMENT_PREFIX.length)), v.term, v.text);
      }
    }
    // Sessions are evicted oldest-applied first; a Map iterates in insertion order.
    const sorted = [...this.sessions.entries()].sort((a, b) => a[1].index - b[1].index);
    this.sessions.clear();
    for (const [k, v] of sorted) this.sessions.set(k, v);
    this.o.app.load(
      (k) => st.appValue(SM_PREFIX + k),
      function* () {
        for (const k of st.appKeys()) if (k.startsWith(SM_PREFIX)) yield k.slice(SM_PREFIX.length);
      },
    );
    if (st.appValue(META_RECOVERING)) this.beginRecovery('after a wipe');
    const snapIndex = st.snapshot().meta.index;
    assert(this.appliedIndex >= snapIndex, `applied index ${this.appliedIndex} is at or past the snapshot ${snapIndex}`);
    // The application's applied index is durable with its state, so the core resumes right after
    // it (it replays membership changes from the log up to there by itself). The driver still
    // skips any committed entry at or below appliedIndex: the application applies each entry
    // exactly once.
    const cert = this.o.snapshotCert;
    this.core = this.o.newCore({
      id: this.o.id,
      storage: cert === undefined ? (st as Storage) : this.certifyingStorage(st as Storage, cert),
      ...(cert === undefined ? {} : { snapshotAccepted: (s: Snapshot) => this.snapshotAccepted(cert, s) }),
      rng: this.o.rng,
      electionTicks: this.o.electionTicks,
      heartbeatTicks: this.o.heartbeatTicks,
      preVote: this.o.preVote,
      checkQuorum: this.o.checkQuorum,
      applied: this.appliedIndex,
      appendBytesMax: raftLimits.appendBytesMax,
      inflightMsgsMax: raftLimits.inflightMsgsMax,
      inflightBytesMax: raftLimits.inflightBytesMax,
      uncommittedBytesMax: raftLimits.uncommittedBytesMax,
      snapshotChunkBytes: raftLimits.snapshotChunkBytes,
      readIndexPendingMax: raftLimits.readIndexPendingMax,
      ...(this.o.confGuard ? { confGuard: this.o.confGuard } : {}),
    });
    this.timer = this.o.clock.every(this.o.tickMs, () => {
      this.ticksDue++;
      this.kick();
    });
    this.kick();
  }

  /** Stop ticking and wait for the batch in flight; pending clients are refused. */
  async stop(): Promise<void> {
    this.timer?.cancel();
    this.timer = null;
    this.stopped = true;
    await this.idle();
    for (const p of this.proposals.values()) this.finish(p, { ok: false, reason: 'PROPOSAL_DROPPED', detail: 'the node is shutting down' });
    for (const [k, r] of this.reads) {
      this.reads.delete(k);
      r.reject(new CustodyError('PROPOSAL_DROPPED', 'the node is shutting down'));
    }
  }

  /**
   * A message from a peer (already authenticated and validated by the transport); `boot`: the
   * sender's boot id as its stream named it (for the vote guard's witness book).
   */
  receive(msg: Message, boot?: string): void {
    if (this.stopped) return;
    if (this.inbox.length >= nodeLimits.driverInboxMax) {
      this.o.metrics?.dropped?.('inbound');
      return; // Raft tolerates a lost message; an unbounded queue would not be tolerated by memory.
    }
    if (this.recovering && this.recovering.leaderCommit === null && msg.type === 'app' && msg.term >= this.o.storage.hardState().term) {
      this.recovering.leaderCommit = msg.commit;
    }
    this.lastHeard.set(msg.from, this.o.clock.now());
    const g = this.o.guard;
    if (g) {
      g.received(msg, boot);
      // A withheld vote covers the node's own: a leadership transfer (timeoutNow) would have it
      // campaign and vote for itself. Dropping it is a lost message; the transfer times out.
      if ((msg.type === 'vote' || msg.type === 'timeoutNow') && !g.mayVote(this.durableState())) {
        if (msg.type === 'timeoutNow') this.o.log?.(`not taking over leadership from ${msg.from}: this node's vote is withheld until its peers confirm its stored state`);
        // A vote request of a later term still moves this node into that term, as an append of a
        // later term does; no grant leaves while the vote is withheld (the batch's messages are
        // filtered, below). A gate that releases the vote only past a term this node may have
        // voted in (node/splitbrain/rollback.ts caughtUp) needs this: with no leader, a vote
        // request is the only way past that term, and a cluster whose one candidate needs this
        // node's vote would otherwise stay in it.
        if (msg.type !== 'vote' || msg.term <= this.o.storage.hardState().term) return;
      }
    }
    // A leader handing over to this node: refused (a lost message) while it may not campaign.
    if (msg.type === 'timeoutNow' && !this.mayCampaign()) return;
    this.inbox.push(() => this.core.step(msg));
    this.kick();
  }

  /**
   * Propose a client command and wait until it is applied (locally) or the deadline passes.
   * Idempotent per (clientId, seq): a retry returns the original outcome.
   */
  propose(clientId: string, seq: number, payload: Uint8Array, timeoutMs: number): Promise<Outcome> {
    if (this.stopped) return Promise.resolve(refuse('PROPOSAL_DROPPED', 'the node is shutting down'));
    const idBytes = Buffer.byteLength(clientId, 'utf8');
    if (idBytes === 0 || idBytes > CLIENT_ID_BYTES_MAX) return Promise.resolve(refuse('INVALID_ARGUMENT', `client id must be 1..${CLIENT_ID_BYTES_MAX} bytes`));
    if (!Number.isSafeInteger(seq) || seq < 1) return Promise.resolve(refuse('INVALID_ARGUMENT', 'sequence must be a positive integer'));
    if (payload.length > raftLimits.proposalBytesMax - CLIENT_ID_BYTES_MAX - 11) {
      return Promise.resolve(refuse('LIMIT_EXCEEDED', `proposal of ${payload.length} bytes exceeds ${raftLimits.proposalBytesMax}`));
    }
    const digest = digestOf(payload);
    const known = this.o.testFaults?.applyRetryTwice ? null : this.sessionOutcome(clientId, seq, digest);
    if (known) return Promise.resolve(known);
    const key = `${clientId}\u0000${seq}`;
    const existing = this.proposals.get(key);
    if (existing) {
      if (existing.digest !== digest) return Promise.resolve(refuse('REPLAY_OR_CONFLICT', `client ${clientId} sequence ${seq} is pending with different content`));
      return new Promise((res) => existing.waiters.push(res));
    }
    if (this.proposals.size >= nodeLimits.pendingProposalsMax) {
      this.o.metrics?.dropped?.('proposal');
      return Promise.resolve(refuse('LIMIT_EXCEEDED', `more than ${nodeLimits.pendingProposalsMax} proposals pending on this node`));
    }
    const now = this.o.clock.now();
    const p: PendingProposal = { key, data: encodeCommand(clientId, seq, payload), digest, deadlineMs: now + timeoutMs, nextTryMs: now, lastReason: null, waiters: [] };
    this.proposals.set(key, p);
    const done = new Promise<Outcome>((res) => p.waiters.push(res));
    this.toPropose.push(p);
    this.kick();
    return done;
  }

  /**
   * A linearizable read point (ReadIndex, thesis §6.4): resolves with an index once the local
   * state machine has applied at least that index, so a read served now reflects every write
   * acknowledged before the call.
   */
  readIndex(timeoutMs: number): Promise<number> {
    if (this.stopped) return Promise.reject(new CustodyError('PROPOSAL_DROPPED', 'the node is shutting down'));
    if (this.reads.size >= raftLimits.readIndexPendingMax) return Promise.reject(new CustodyError('LIMIT_EXCEEDED', 'too many reads pending'));
    if (this.o.testFaults?.readWithoutReadIndex) return Promise.resolve(this.appliedIndex);
    const ctx = randomBytes(16);
    const now = this.o.clock.now();
    return new Promise<number>((resolve, reject) => {
      const r: PendingRead = { ctx, deadlineMs: now + timeoutMs, nextTryMs: now, index: null, resolve, reject };
      this.reads.set(ctx.toString('hex'), r);
      this.inbox.push(() => this.tryRead(r));
      this.kick();
    });
  }

  /**
   * Propose a membership change (raft/core/confchange.ts) on this node's core. Resolves with the
   * core's answer: the index of the conf entry on a leader, or why it was refused (a change still
   * pending, not the leader, an invalid change). The change takes effect when that entry applies.
   */
  proposeConfChange(cc: ConfChange): Promise<ProposeResult> {
    if (this.stopped) return Promise.resolve({ ok: false, reason: 'PROPOSAL_DROPPED', detail: 'the node is shutting down' });
    return new Promise((res) => {
      this.inbox.push(() => res(this.core.proposeConfChange(cc)));
      this.kick();
    });
  }

  /** When (driver clock, milliseconds) each peer was last heard from. */
  peerContacts(): Record<NodeId, number> {
    return Object.fromEntries(this.lastHeard);
  }

  /** The driver's clock, in the unit of peerContacts(). */
  nowMs(): number {
    return this.o.clock.now();
  }

  transferLeadership(to: NodeId): void {
    this.inbox.push(() => this.core.transferLeadership(to));
    this.kick();
  }

  /**
   * This node's store lost entries it had acknowledged (its peers proved it: a store restored
   * from an old copy, node/splitbrain/rollback.ts). It recovers as a wiped node does (`Recovering`
   * above): no votes until it holds what was committed, and if the leader keeps probing it above
   * its log — its match index for this node is stale — it asks for leadership to move, so a new
   * leader's fresh progress sends it the log.
   */
  recover(why: string, holds?: { readonly term: number; readonly index: number }): void {
    this.inbox.push(() => {
      if (this.recovering) return;
      // This node has applied, that is holds as committed, every index up to the highest one the
      // peers saw it acknowledge (it caught up since, as a wiped node's recovery in this run
      // does): an acknowledgement only ever counts toward committing its entry, and the entry
      // committed at that index is final and is the one this node holds. Nothing is left to fetch;
      // the vote guard still withholds the vote until the node is past the term it may have voted
      // in. A longer log alone does not count: a restored copy may hold other, uncommitted entries.
      if (holds !== undefined && holds.index > 0 && this.appliedIndex >= holds.index) {
        this.o.log?.(`not recovering ${why}: it has applied index ${this.appliedIndex}, past the acknowledged index ${holds.index}`);
        return;
      }
      this.beginRecovery(why);
      // Durable, as a wipe's marker is: a restart before the node caught up must not forget
      // that its log is behind what it acknowledged (written with the next batch, synced).
      this.recoveryMarkPending = true;
    });
    this.kick();
  }

  private beginRecovery(why: string): void {
    this.recovering = { leaderCommit: null, lastIndexSeen: this.o.storage.lastIndex(), lastProgressMs: this.o.clock.now(), done: false };
    this.o.log?.(`recovering ${why}: this node grants no votes until it holds everything committed`);
  }

  /** The durable Raft state as of the last persisted batch. */
  durableState(): DurableRaftState {
    const st = this.o.storage;
    const hs = st.hardState();
    const lastIndex = st.lastIndex();
    return { term: hs.term, vote: hs.vote, lastIndex, lastLogTerm: st.term(lastIndex) };
  }

  /** False while the vote guard withholds this node's vote (it then starts no elections either). */
  private votingAllowed(): boolean {
    return this.o.guard?.mayVote(this.durableState()) ?? true;
  }

  /**
   * A node that may not vote may not stand for election either: a candidate votes for itself.
   * A node recovering a lost log could otherwise win with the vote of a peer that lacks the same
   * committed entries (both missing what the crashed or restored majority held), and lead without
   * them: no ticks toward an election, no campaign, and no leadership handed to it.
   */
  private mayCampaign(): boolean {
    return this.recovering === null && this.votingAllowed();
  }

  campaign(): void {
    if (!this.mayCampaign()) {
      this.o.log?.('not campaigning: this node\'s vote is withheld until its peers confirm its stored state, or until it holds the log it lost');
      return;
    }
    this.inbox.push(() => this.core.campaign());
    this.kick();
  }

  status(): DriverStatus {
    const s = this.core.status();
    const snap = this.o.storage.snapshot();
    return { ...s, appliedIndex: this.appliedIndex, snapshotIndex: snap.meta.index, firstIndex: this.o.storage.firstIndex(), root: this.o.app.root(), recovering: this.recovering !== null };
  }

  /**
   * The applied index, its term and the membership, for a copy of the application's state taken
   * in the same synchronous step (node/backup/): entries are applied to the application and the
   * applied index moves together inside one loop turn, so nothing is applied in between.
   */
  appliedPoint(): { readonly index: number; readonly term: number; readonly conf: ConfState } {
    return { index: this.appliedIndex, term: this.appliedTerm, conf: this.core.status().conf };
  }

  /** The core's own counters (elections, leader changes, ...) when it keeps them, for metrics. */
  coreStats(): { readonly elections: number; readonly leaderChanges: number; readonly confChangesRefused?: number } | null {
    return (this.core as unknown as { stats?: { elections: number; leaderChanges: number; confChangesRefused?: number } }).stats ?? null;
  }

  get isLeader(): boolean {
    return this.role === 'leader';
  }
  get leaderId(): NodeId | null {
    return this.leader;
  }

  // --- the loop ---

  private kick(): void {
    if (this.running || this.fatal) return;
    this.running = true;
    (this.o.schedule ?? setImmediate)(() => void this.loop());
  }

  private idle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((res) => this.idleWaiters.push(res));
  }

  private async loop(): Promise<void> {
    try {
      for (;;) {
        const ops = this.inbox;
        this.inbox = [];
        for (const op of ops) op();
        if (!this.stopped) {
          // One tick per turn, and ticks that piled up while a batch was being written are
          // dropped: a node stalled by a slow fsync or a starved CPU must not wake up and fire a
          // whole election timeout's worth of ticks at once, before the heartbeats that arrived
          // meanwhile have been handed to the core. Losing ticks only slows this node's timers,
          // which Raft's safety does not depend on (reads use ReadIndex, not clock leases).
          if (this.ticksDue > 0) {
            // A node whose vote is withheld starts no election; its election clock still runs, so
            // the lease of a leader it no longer hears from expires and a later term reaches it.
            this.core.tick(this.role === 'leader' || this.mayCampaign());
            this.ticksDue = 0;
          }
          this.onTime();
        }
        if (this.toPropose.length > 0) this.flushProposals();
        if (this.core.hasReady()) {
          const rd = this.core.ready();
          await this.handle(rd);
          this.core.advance(rd);
          await this.maybeSnapshot();
          continue;
        }
        if (this.o.guard?.hasWrites?.()) {
          // The guard's state changed with no Raft step to carry it (a node whose vote is
          // withheld may have no Ready for a long time): write it on its own.
          const g = this.o.guard.takeWrites();
          if (g.writes.length > 0) await this.o.storage.persist({ hardState: null, entries: [], snapshot: null, app: g.writes, sync: true });
          continue;
        }
        if (this.inbox.length === 0 && this.toPropose.length === 0 && (this.ticksDue === 0 || this.stopped)) break;
      }
    } catch (e) {
      this.fatal = true;
      this.running = false;
      this.o.onFatal(e);
      return;
    }
    this.running = false;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  private async handle(rd: Ready): Promise<void> {
    const wasLeader = this.role === 'leader';
    if (rd.softState) {
      this.role = rd.softState.role;
      this.leader = rd.softState.leader;
    }
    const writes: AppWrite[] = [];
    const guarded = this.o.guard?.takeWrites() ?? { writes: [], sync: false };
    writes.push(...guarded.writes);
    const acks: [PendingProposal | undefined, Outcome][] = [];
    if (rd.snapshot) {
      writes.push(...(await this.restoreFrom(rd.snapshot.data, rd.snapshot.meta.index, rd.snapshot.meta.term)));
      this.o.metrics?.snapshotInstalled?.();
    }
    if (this.o.app.prepare) {
      const cmds: Uint8Array[] = [];
      for (const e of rd.committedEntries) {
        if (e.index <= this.appliedIndex || e.type !== 'normal' || e.data.length === 0) continue;
        for (const c of decodeEntryCommands(e.data) ?? []) {
          const cmd = decodeCommand(c);
          if (cmd) cmds.push(cmd.payload);
        }
      }
      if (cmds.length > 0) await this.o.app.prepare(cmds);
    }
    let appliedNow = 0;
    // With certified snapshots: the membership as of each entry (the core applies this batch's
    // configuration changes on advance, exactly so), for the snapshot taken at an aligned index.
    let conf = this.o.snapshotCert ? this.core.status().conf : null;
    for (const e of rd.committedEntries) {
      if (e.index <= this.appliedIndex) continue; // applied before a restart: exactly once
      assert(e.index === this.appliedIndex + 1, `committed entries are applied in order (got ${e.index} after ${this.appliedIndex})`);
      this.applyEntry(e, writes, acks);
      appliedNow++;
      if (conf === null) continue;
      if (e.type === 'conf') {
        try {
          const next = applyConfChange(conf, decodeConfChange(e.data));
          if (typeof next !== 'string') conf = next;
        } catch {
          // skipped by every replica, as the core does
        }
      }
      if (e.index % this.o.snapshotEveryEntries === 0) {
        const snap: Snapshot = { meta: { index: e.index, term: e.term, conf }, data: await this.snapshotData() };
        this.aligned = snap;
        // The statement this node cosigns for its snapshot at e.index, durable with the batch (a
        // snapshot write lost in a crash must not leave it unable to vouch for what it applied).
        const cert = this.o.snapshotCert as SnapshotCertification;
        const text = cert.statement(snap.meta, snap.data);
        if (text !== null) {
          writes.push({ key: statementKey(e.index), value: Buffer.from(JSON.stringify({ term: e.term, text }), 'utf8') });
          cert.recorded(e.index, e.term, text);
        }
        const old = e.index - tlogLimits.snapshotStatementsKeptMax * this.o.snapshotEveryEntries;
        if (old > 0) writes.push({ key: statementKey(old), value: null });
      }
    }
    if (appliedNow > 0 && this.o.app.finish) for (const w of this.o.app.finish()) writes.push({ key: SM_PREFIX + w.key, value: w.value });
    let markSync = false;
    if (this.recoveryMarkPending) {
      this.recoveryMarkPending = false;
      markSync = true;
      writes.push({ key: META_RECOVERING, value: Buffer.from(JSON.stringify({ keptTerm: this.o.storage.hardState().term })) });
    }
    // The end of a recovery is written synced, and the node counts as recovered (votes, reports
    // it, shows it in status) only once that write is durable. Why: clearing the marker promises
    // nothing a crash could break (a node that comes back still marked only recovers again, which
    // is always safe: it withholds votes), but it is what the operator and the other nodes go by.
    // Unsynced, a power loss before the node's next synced write brings the marker back, and a
    // node that said "recovered" restarts recovering. If the operator, seeing it recovered, has
    // meanwhile wiped or restored another voter, a 3-voter cluster then holds two recovering
    // nodes: each grants no vote until a leader tells it the commit index, and the third cannot
    // become that leader without one of their votes, so no leader is ever elected. Synced, a
    // crash either loses the whole batch (the node never reported recovered, and finishes its
    // recovery again after the restart) or keeps the cleared marker.
    const recoveredNow = this.recovering?.done === true;
    if (recoveredNow) writes.push({ key: META_RECOVERING, value: null });
    if (appliedNow > 0 || rd.snapshot) {
      writes.push({ key: META_APPLIED, value: Buffer.from(JSON.stringify({ index: this.appliedIndex, term: this.appliedTerm })) });
    }
    const sync = rd.mustSync || rd.snapshot !== null || guarded.sync || markSync || recoveredNow;
    // Raft thesis §10.2.1: a leader may send its appends in parallel with writing them to its own
    // disk, because it counts itself toward a commit quorum only for entries it has made durable
    // (the core's advance() does exactly that). This holds only while the Ready changes neither
    // term nor vote: those must be durable before anything that depends on them leaves. Every
    // other message (votes, acknowledgements) still waits for the batch.
    const early: Message[] = [];
    let late: readonly Message[] = rd.messages;
    const durable = this.o.storage.hardState();
    if (this.role === 'leader' && (!rd.hardState || (rd.hardState.term === durable.term && rd.hardState.vote === durable.vote))) {
      const rest: Message[] = [];
      for (const m of rd.messages) (LEADER_EARLY.has(m.type) ? early : rest).push(m);
      late = rest;
      if (early.length > 0) this.o.transport.send(early);
    }
    const write = this.o.storage.persist({ hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot, app: writes, sync });
    // A synced batch must be durable before anything that depends on it leaves. An unsynced one
    // (only the commit index and applied state changed) promises no durability, so waiting for it
    // would delay acknowledgements without making anything safer: the acknowledged entries are
    // already durable in a majority's logs, and the applied state is re-derived from the log if
    // this batch is lost. The loop still waits for it before the next batch, so batches land on
    // disk in order and the applied index never moves backwards.
    if (sync) await write;
    if (recoveredNow && this.recovering?.done === true) {
      this.recovering = null;
      this.o.log?.(`recovered: applied ${this.appliedIndex}, holding everything committed when the node came back; voting again`);
    }
    // A wiped node in recovery, or one whose vote the guard withholds, grants no vote. A pre-vote
    // it may grant: it changes no term and binds no vote (Raft thesis §9.6; the candidate still
    // needs real votes, which are withheld), and withholding it too would leave a cluster whose
    // only candidate needs this node with no election at all, so never past the term this node
    // waits to be past.
    const withhold = this.recovering !== null || !this.votingAllowed();
    const out = withhold ? late.filter((m) => !(m.type === 'voteResp' && !m.reject)) : late;
    const g = this.o.guard;
    if (g) {
      for (const m of out) if (m.type === 'voteResp' && !m.reject) g.voted(m.term, m.to);
      if (this.role === 'leader' && !wasLeader) {
        const term = this.o.storage.hardState().term;
        const first = rd.entries.find((e) => e.term === term);
        if (first) g.leads(term, first.index);
      }
    }
    if (out.length > 0) this.o.transport.send(out);
    for (const [p, o] of acks) if (p) this.finish(p, o);
    for (const rs of rd.readStates) {
      const r = this.reads.get(Buffer.from(rs.context).toString('hex'));
      if (r && r.index === null) r.index = rs.index;
    }
    const stats = await write;
    this.o.metrics?.persisted?.(stats, sync, rd.entries.length);
    if (appliedNow > 0) this.o.metrics?.applied?.(appliedNow);
    this.serveReads();
  }

  private applyEntry(e: Entry, writes: AppWrite[], acks: [PendingProposal | undefined, Outcome][]): void {
    this.appliedIndex = e.index;
    this.appliedTerm = e.term;
    // Conf entries change the core's membership on advance(); empty entries are a new leader's
    // no-op (§5.4.2 commits it to commit earlier terms' entries). Neither reaches the application.
    if (e.type !== 'normal' || e.data.length === 0) return;
    // Anything that is not a client command is skipped identically on every node.
    for (const c of decodeEntryCommands(e.data) ?? []) this.applyCommand(e, c, writes, acks);
  }

  private applyCommand(e: Entry, data: Uint8Array, writes: AppWrite[], acks: [PendingProposal | undefined, Outcome][]): void {
    const cmd = decodeCommand(data);
    if (!cmd) return;
    const digest = digestOf(cmd.payload);
    const key = `${cmd.clientId}\u0000${cmd.seq}`;
    const s = this.sessions.get(cmd.clientId);
    if (s && cmd.seq <= s.seq && this.o.testFaults?.applyRetryTwice !== true) {
      // A duplicate of an applied command (a retry or a re-forward): never applied twice.
      acks.push([this.proposals.get(key), this.sessionOutcome(cmd.clientId, cmd.seq, digest) as Outcome]);
      return;
    }
    const r = this.o.app.apply(e.index, cmd.payload);
    let outcome: Outcome;
    if ('reason' in r) outcome = { ok: false, reason: r.reason, detail: r.detail };
    else {
      outcome = { ok: true, index: e.index, result: r.result, duplicate: false };
      for (const w of r.writes) writes.push({ key: SM_PREFIX + w.key, value: w.value });
    }
    const ns: Session = { seq: cmd.seq, digest, index: e.index, outcome };
    this.sessions.delete(cmd.clientId);
    this.sessions.set(cmd.clientId, ns);
    writes.push({ key: SESSION_PREFIX + cmd.clientId, value: Buffer.from(JSON.stringify(sessionToJson(ns))) });
    // Bounded sessions, evicted oldest-applied first: deterministic on every node.
    while (this.sessions.size > raftLimits.clientSessionsMax) {
      const oldest = this.sessions.keys().next().value as string;
      this.sessions.delete(oldest);
      writes.push({ key: SESSION_PREFIX + oldest, value: null });
    }
    acks.push([this.proposals.get(key), outcome]);
  }

  private sessionOutcome(clientId: string, seq: number, digest: string): Outcome | null {
    const s = this.sessions.get(clientId);
    if (!s || seq > s.seq) return null;
    if (seq < s.seq) return refuse('REPLAY_OR_CONFLICT', `client ${clientId} already applied sequence ${s.seq}; ${seq} is older`);
    if (s.digest !== digest) return refuse('REPLAY_OR_CONFLICT', `client ${clientId} sequence ${seq} was applied with different content`);
    return s.outcome.ok ? { ...s.outcome, duplicate: true } : s.outcome;
  }

  private finish(p: PendingProposal, o: Outcome): void {
    this.proposals.delete(p.key);
    this.o.metrics?.proposal?.(o.ok ? (o.duplicate ? 'duplicate' : 'committed') : 'refused');
    for (const w of p.waiters) w(o);
  }

  /** Retry interval for proposals and reads that may have been lost (a leader change, a drop). */
  private retryMs(): number {
    return this.o.tickMs * this.o.electionTicks;
  }

  private flushProposals(): void {
    const queued = this.toPropose;
    this.toPropose = [];
    const seen = new Set<string>();
    const perEntry = this.o.proposalsPerEntryMax ?? nodeLimits.proposalsPerEntryMax;
    let group: PendingProposal[] = [];
    let bytes = 5;
    const send = (): void => {
      if (group.length === 0) return;
      const data = group.length === 1 ? (group[0] as PendingProposal).data : encodeBatch(group.map((p) => p.data));
      const r = this.core.propose(data);
      const now = this.o.clock.now();
      for (const p of group) {
        if (r.ok) {
          p.nextTryMs = now + this.retryMs();
          p.lastReason = null;
          // Planted bug (node/test-faults.ts): answered before any fsync or quorum holds the entry.
          if (this.o.testFaults?.ackBeforeFsync) this.finish(p, { ok: true, index: r.forwarded ? 0 : r.index, result: new Uint8Array(0), duplicate: false });
        } else {
          // No leader yet, or a transfer in progress: try again soon, until the deadline.
          p.nextTryMs = now + this.o.tickMs * this.o.heartbeatTicks * 2;
          p.lastReason = r.reason;
        }
      }
      group = [];
      bytes = 5;
    };
    for (const p of queued) {
      if (!this.proposals.has(p.key) || seen.has(p.key)) continue;
      seen.add(p.key);
      if (group.length > 0 && (bytes + 4 + p.data.length > raftLimits.proposalBytesMax || group.length >= perEntry)) send();
      group.push(p);
      bytes += 4 + p.data.length;
    }
    send();
  }

  private tryRead(r: PendingRead): void {
    if (!this.reads.has(Buffer.from(r.ctx).toString('hex')) || r.index !== null) return;
    this.core.readIndex(r.ctx);
    r.nextTryMs = this.o.clock.now() + (this.leader ? this.retryMs() : this.o.tickMs * this.o.heartbeatTicks * 2);
  }

  private serveReads(): void {
    for (const [k, r] of this.reads) {
      if (r.index !== null && r.index <= this.appliedIndex) {
        this.reads.delete(k);
        r.resolve(r.index);
      }
    }
  }

  /** Deadlines and retries, checked once per loop turn after ticks. */
  private onTime(): void {
    const now = this.o.clock.now();
    if (this.recovering && !this.recovering.done) this.checkRecovery(now);
    for (const p of this.proposals.values()) {
      if (now >= p.deadlineMs) {
        this.proposals.delete(p.key);
        this.o.metrics?.proposal?.('timeout');
        const reason: ReasonCode = p.lastReason ?? 'REMOTE_TIMEOUT';
        const detail = p.lastReason
          ? `the proposal could not be placed before its deadline (last refusal: ${p.lastReason}); retry with the same client id and sequence`
          : 'the proposal was not applied before its deadline (it may still commit; retry with the same client id and sequence to learn its result)';
        for (const w of p.waiters) w({ ok: false, reason, detail });
      } else if (now >= p.nextTryMs) {
        p.nextTryMs = Infinity; // queued; flushProposals sets the next retry
        this.toPropose.push(p);
      }
    }
    for (const [k, r] of this.reads) {
      if (now >= r.deadlineMs) {
        this.reads.delete(k);
        r.reject(new CustodyError(this.leader ? 'REMOTE_TIMEOUT' : 'NOT_LEADER', this.leader ? 'the read point was not reached before the deadline' : 'no leader is known: the read cannot be linearized'));
      } else if (r.index === null && now >= r.nextTryMs) this.tryRead(r);
    }
  }

  private checkRecovery(now: number): void {
    const r = this.recovering as Recovering;
    // A leader's commit index may lag what was committed before its term (a new leader, or one
    // restarted after a crash lost its unsynced commit index), until it commits an entry of its
    // own term (§5.4.2). Only an applied entry of the current term proves this node holds every
    // entry committed in earlier terms (the leader's no-op follows them in the leader's log), so
    // the recovery also waits for one: otherwise it could vote a node lacking a committed entry.
    if (r.leaderCommit !== null && this.appliedIndex >= r.leaderCommit && this.appliedTerm === this.o.storage.hardState().term) {
      r.done = true; // cleared durably with the next batch
      this.inbox.push(() => {}); // make sure a loop turn follows
      return;
    }
    const last = this.o.storage.lastIndex();
    if (last !== r.lastIndexSeen) {
      r.lastIndexSeen = last;
      r.lastProgressMs = now;
      return;
    }
    const stuckMs = 3 * this.o.tickMs * this.o.electionTicks;
    if (this.leader && this.leader !== this.o.id && now - r.lastProgressMs > stuckMs) {
      // Only to a voter this node can reach: a transfer to a node that is down only stalls the
      // leader's proposals until the transfer times out.
      const to = this.core.status().conf.voters.find((v) => v !== this.leader && v !== this.o.id && this.o.transport.reachable(v));
      r.lastProgressMs = now;
      if (to) {
        this.o.log?.(`recovering: leader ${this.leader} is not sending the log this node lost; asking it to hand leadership to ${to}`);
        this.core.transferLeadership(to);
      }
    }
  }

  private async maybeSnapshot(): Promise<void> {
    const st = this.o.storage;
    const cert = this.o.snapshotCert;
    if (cert !== undefined) {
      // The snapshot captured at the last aligned index this batch applied (see handle). Stored
      // without compacting: entries are dropped only below a snapshot this node can send, a
      // certified one. Otherwise a follower missing entries the log no longer holds would need a
      // snapshot that only the nodes which applied its index can vouch for: if those are this
      // node alone (the others lag, or lost their disks), no majority ever certifies it and the
      // follower waits for good. Kept entries let it catch up by log, apply the index itself,
      // and then cosign.
      const a = this.aligned;
      this.aligned = null;
      if (a !== null && a.meta.index > st.snapshot().meta.index) await st.snapshotAndCompact(a.meta.index, a.meta.conf, a.data, st.firstIndex() - 1);
      // Asks for the stored snapshot's certificate (gathered beside the loop, early, while the
      // voters that applied its index still hold their statements).
      this.sendableSnapshot(cert);
      const fresh = this.freshSendable;
      if (fresh !== null) {
        await st.keepSendable(fresh);
        if (this.freshSendable === fresh) this.freshSendable = null;
      }
      const kept = st.sendableSnapshot();
      if (kept !== null) {
        // Entry kept.index itself stays on disk: after a restart the first entry on disk only
        // carries its term (LevelStorage reopens with it as the mirror's dummy), and a follower
        // sent the kept snapshot continues with the entry right after it.
        const compactTo = Math.min(kept.meta.index - 1, this.appliedIndex - this.o.compactionKeepEntries);
        if (compactTo >= st.firstIndex()) await st.compact(compactTo);
      }
      return;
    }
    if (this.appliedIndex - st.snapshot().meta.index < this.o.snapshotEveryEntries) return;
    const data = await this.snapshotData();
    const compactTo = Math.max(st.firstIndex() - 1, this.appliedIndex - this.o.compactionKeepEntries);
    await st.snapshotAndCompact(this.appliedIndex, this.core.status().conf, data, compactTo);
  }

  private async snapshotData(): Promise<Uint8Array> {
    const sessions: [string, SessionJson][] = [];
    for (const [k, s] of this.sessions) sessions.push([k, sessionToJson(s)]);
    return snapshotEnvelope(this.appliedTerm, sessions, await this.o.app.snapshot());
  }

  /** The core's view of the log, sending only certified snapshots (with their certificate). */
  private certifyingStorage(st: Storage, cert: SnapshotCertification): Storage {
    return {
      initialState: () => st.initialState(),
      entries: (lo, hi, maxBytes) => st.entries(lo, hi, maxBytes),
      term: (i) => st.term(i),
      firstIndex: () => st.firstIndex(),
      lastIndex: () => st.lastIndex(),
      snapshot: () => st.snapshot(),
      snapshotToSend: () => {
        const k = this.sendableSnapshot(cert);
        // Older than the log's start (this node installed a newer snapshot since): useless.
        return k !== null && k.meta.index >= st.firstIndex() - 1 ? k : null;
      },
    };
  }

  /**
   * The certified snapshot this node sends followers (with its certificate in the envelope): the
   * stored snapshot once its certificate is in, else the last certified one kept
   * (LevelStorage.sendableSnapshot), which the log still extends, since it is compacted only up
   * to that one. Null before any snapshot of this node was certified.
   */
  private sendableSnapshot(cert: SnapshotCertification): Snapshot | null {
    const st = this.o.storage;
    const s = st.snapshot();
    const kept = this.freshSendable ?? st.sendableSnapshot();
    if (s.data.length > 0 && (kept === null || kept.meta.index < s.meta.index || kept.meta.term !== s.meta.term && kept.meta.index === s.meta.index)) {
      const note = cert.certificate(s.meta, s.data);
      if (note !== null) {
        this.freshSendable = { meta: s.meta, data: snapshotWithCertificate(s.data, note) };
        return this.freshSendable;
      }
    }
    return kept;
  }

  private snapshotAccepted(cert: SnapshotCertification, s: Snapshot): boolean {
    const refused = cert.check(s.meta, s.data);
    if (refused === null) return true;
    this.o.metrics?.snapshotRefused?.(refused.reason);
    this.o.log?.(`snapshot at index ${s.meta.index} (term ${s.meta.term}) refused, the replica is kept: ${refused.reason}: ${refused.detail}`);
    return false;
  }

  /** Replace sessions and application state with a snapshot's; returns the writes doing so. */
  private async restoreFrom(data: Uint8Array, index: number, term: number): Promise<AppWrite[]> {
    const writes: AppWrite[] = [];
    for (const k of this.sessions.keys()) writes.push({ key: SESSION_PREFIX + k, value: null });
    this.sessions.clear();
    if (index === 0 || data.length === 0) {
      for (const w of await this.o.app.restore(new Uint8Array(0))) writes.push({ key: SM_PREFIX + w.key, value: w.value });
    } else {
      const b = Buffer.from(data.buffer, data.byteOffset, data.length);
      const n = b.readUInt32BE(0);
      const head = JSON.parse(b.subarray(4, 4 + n).toString('utf8')) as { v: number; sessions: [string, SessionJson][] };
      assert(head.v === 1, 'snapshot envelope version');
      for (const [k, s] of head.sessions) {
        const ss = sessionFromJson(s);
        this.sessions.set(k, ss);
        writes.push({ key: SESSION_PREFIX + k, value: Buffer.from(JSON.stringify(s)) });
      }
      for (const w of await this.o.app.restore(b.subarray(4 + n))) writes.push({ key: SM_PREFIX + w.key, value: w.value });
    }
    this.appliedIndex = index;
    this.appliedTerm = term;
    return writes;
  }
}

/** A Raft snapshot's data, parsed: the envelope's head and the application's state. */
export interface SnapshotEnvelope {
  readonly appliedTerm: number;
  /** Client sessions in eviction order (oldest applied first), as JSON. */
  readonly sessions: readonly [string, unknown][];
  /** The certificate a leader sends with the snapshot (node/snapshot-cert.ts), if any. */
  readonly cert?: string;
  readonly app: Uint8Array;
}

/** Parses a snapshot's data (any fault: STORAGE_CORRUPT; the data may come from a peer). */
export function parseSnapshotEnvelope(data: Uint8Array): SnapshotEnvelope {
  const b = Buffer.from(data.buffer, data.byteOffset, data.length);
  if (b.length < 4 || b.readUInt32BE(0) > b.length - 4) throw new CustodyError('STORAGE_CORRUPT', 'snapshot envelope: truncated');
  const n = b.readUInt32BE(0);
  let head: { v?: unknown; appliedTerm?: unknown; sessions?: unknown; cert?: unknown };
  try {
    head = JSON.parse(b.subarray(4, 4 + n).toString('utf8')) as typeof head;
  } catch (e) {
    throw new CustodyError('STORAGE_CORRUPT', `snapshot envelope: ${(e as Error).message}`);
  }
  if (head === null || typeof head !== 'object' || head.v !== 1 || !Number.isSafeInteger(head.appliedTerm) || !Array.isArray(head.sessions)
    || !head.sessions.every((x) => Array.isArray(x) && x.length === 2 && typeof x[0] === 'string') || (head.cert !== undefined && typeof head.cert !== 'string')) {
    throw new CustodyError('STORAGE_CORRUPT', 'snapshot envelope: malformed head');
  }
  return { appliedTerm: head.appliedTerm as number, sessions: head.sessions as [string, unknown][], ...(head.cert !== undefined ? { cert: head.cert as string } : {}), app: b.subarray(4 + n) };
}

/** The snapshot data `data` carrying `cert` in its head (any certificate it carried is replaced). */
export function snapshotWithCertificate(data: Uint8Array, cert: string): Uint8Array {
  const e = parseSnapshotEnvelope(data);
  return envelopeOf({ v: 1, appliedTerm: e.appliedTerm, sessions: e.sessions, cert }, e.app);
}

/** A Raft snapshot's data: headLen:u32be | JSON {v: 1, appliedTerm, sessions[, cert]} | application state. */
export function snapshotEnvelope(appliedTerm: number, sessions: [string, SessionJson][], state: Uint8Array): Buffer {
  return envelopeOf({ v: 1, appliedTerm, sessions }, state);
}

function envelopeOf(headJson: object, state: Uint8Array): Buffer {
  const sm = Buffer.from(state.buffer, state.byteOffset, state.length);
  const head = Buffer.from(JSON.stringify(headJson), 'utf8');
  const b = Buffer.alloc(4 + head.length + sm.length);
  b.writeUInt32BE(head.length, 0);
  head.copy(b, 4);
  sm.copy(b, 4 + head.length);
  return b;
}

/**
 * Seeds an empty store with the application's state at (index, term), as a follower that
 * installed that snapshot from a leader would hold it: the Raft snapshot (membership `conf`, no
 * client sessions), the application's state and applied index, and a hard state at `term` with
 * commit `index` and no vote; `extra` writes land in the same synced batch. `custody cluster
 * restore` starts each node of a new cluster this way (node/backup/restore.ts); a node started on
 * the store resumes exactly as after a restart.
 */
export async function seedStore(storage: LevelStorage, app: Application, s: { readonly index: number; readonly term: number; readonly conf: ConfState; readonly state: Uint8Array }, extra: readonly AppWrite[]): Promise<void> {
  assert(storage.hardState().term === 0 && storage.lastIndex() <= 1 && storage.appValue(META_APPLIED) === undefined, 'only an empty store is seeded');
  assert(s.index > storage.snapshot().meta.index && s.term >= 1, 'the seed is past the bootstrap point');
  const writes: AppWrite[] = (await app.restore(s.state)).map((w) => ({ key: SM_PREFIX + w.key, value: w.value }));
  writes.push({ key: META_APPLIED, value: Buffer.from(JSON.stringify({ index: s.index, term: s.term })) }, ...extra);
  await storage.persist({
    hardState: { term: s.term, vote: null, commit: s.index },
    entries: [],
    snapshot: { meta: { index: s.index, term: s.term, conf: s.conf }, data: snapshotEnvelope(s.term, [], s.state) },
    app: writes,
    sync: true,
  });
}

function refuse(reason: ReasonCode, detail: string): Outcome {
  return { ok: false, reason, detail };
}

interface SessionJson {
  seq: number;
  digest: string;
  index: number;
  ok: boolean;
  result?: string;
  reason?: ReasonCode;
  detail?: string;
}

function sessionToJson(s: Session): SessionJson {
  return s.outcome.ok
    ? { seq: s.seq, digest: s.digest, index: s.index, ok: true, result: Buffer.from(s.outcome.result).toString('base64') }
    : { seq: s.seq, digest: s.digest, index: s.index, ok: false, reason: s.outcome.reason, detail: s.outcome.detail };
}

function sessionFromJson(j: SessionJson): Session {
  const outcome: Outcome = j.ok
    ? { ok: true, index: j.index, result: Buffer.from(j.result ?? '', 'base64'), duplicate: false }
    : { ok: false, reason: j.reason as ReasonCode, detail: j.detail ?? '' };
  return { seq: j.seq, digest: j.digest, index: j.index, outcome };
}
