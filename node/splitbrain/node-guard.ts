/**
 * The split-brain, equivocation and rollback checks inside a `custody node` daemon: the
 * SplitBrainMonitor (monitor.ts) wired to the Raft driver, the peer transport and the ledger.
 *
 *   driver receive      every authenticated peer message, with the boot id its stream named (the
 *                       sender's run, BOOT_METADATA_KEY) -> WitnessBook; the book is written under
 *                       `meta/witnesses` in the batch of the step that changed it (fsynced when a
 *                       vote was witnessed), before any message that batch releases; likewise
 *                       RESTORE_PENDING_KEY while the gate waits for every voter
 *   driver votes        while the RollbackGate withholds the vote (rollback.ts: a quorum's answers
 *                       after a plain restart, every voter's after a restore): vote and pre-vote requests are
 *                       dropped, grants are not sent, and the node starts no election
 *   driver outgoing     a vote this node granted -> signed RaftVote; a term it began to lead ->
 *                       signed LeaderAnnouncement (equivocation.ts), both after they are durable
 *   every observationIntervalMs, and at once to a peer that asks (at most once per
 *                       immediateAnswerIntervalMs per peer; the next round answers the rest)
 *                       own observation (term, leader, applied index, state root) -> detector;
 *                       one exchange per peer (exchange.ts) on the peer stream (proto/raft.proto
 *                       Batch.exchange); the next is built only once the last one has left
 *   exchange received   -> detector, equivocation detector, rollback gate (monitor.incoming)
 *   ledger entries      the signed node statements every log entry carries (DKG round-1 packages,
 *                       KeyReady, fencing reports), accepted or refused by the ledger: a second,
 *                       different package for one key epoch is equivocation like a double vote
 *   evidence            each EquivocationEvidence found is proposed to the ledger until the ledger
 *                       has ruled on it (accepted, or refused as already recorded); the ledger
 *                       verifies both signatures against its roster again
 *
 * Signing needs the node's identity key and the cluster's roster, which only a ledger node has
 * (`<config>.lifecycle.yaml`); a node without them still exchanges observations and runs the
 * rollback gate, and relays and checks the statements of others when it can verify them.
 */
import { splitBrain as limits } from '../../proto/limits.js';
import type { ReasonCode } from '../../proto/reasons.js';
import type { AppWrite } from '../../raft/storage/leveldb.js';
import { META_RECOVERING, type DurableRaftState, type VoteGuard } from '../../raft/driver.js';
import type { Clock, Timer } from '../../raft/transport.js';
import type { ConfState, Message, NodeId } from '../../raft/core/types.js';
import type { CatalogMetrics } from '../metrics-catalog.js';
import { signLeaderAnnouncement, signVote, type EquivocationEvidence, type SignedStatement } from './equivocation.js';
import { bootOf, decodeExchange, encodeExchange, newBootId } from './exchange.js';
import { SplitBrainMonitor } from './monitor.js';
import { storeHistoryOf, type PeerWitness, type StoreHistory, type Witness } from './rollback.js';

/** Where the witness book lives in the node's store (beside the Raft hard state). */
export const WITNESS_KEY = 'meta/witnesses';
/**
 * Present while the rollback gate holds to its rule for a store that may have lost a vote
 * (rollback.ts rule (b)) and has not yet let the node vote under it: a node restarted meanwhile
 * holds to the rule again, even once the wipe's own marker (META_RECOVERING) is gone.
 */
export const RESTORE_PENDING_KEY = 'meta/rollback-restore-pending';

/**
 * The store's history (rollback.ts StoreHistory) from its markers: the one `custody node wipe`
 * leaves (META_RECOVERING, with the term it kept, until the driver has recovered) and the gate's
 * own RESTORE_PENDING_KEY. A wipe marker that cannot be read says nothing of what was kept: the
 * vote may be lost.
 */
export function storeHistory(appValue: (key: string) => Uint8Array | undefined): { history: StoreHistory; restorePendingStored: boolean } {
  const restorePendingStored = appValue(RESTORE_PENDING_KEY) !== undefined;
  if (restorePendingStored) return { history: 'vote_lost', restorePendingStored };
  const raw = appValue(META_RECOVERING);
  if (raw === undefined) return { history: storeHistoryOf(null), restorePendingStored };
  let keptTerm: number | null = null;
  try {
    const m = JSON.parse(Buffer.from(raw).toString('utf8')) as { keptTerm?: unknown };
    if (Number.isSafeInteger(m.keptTerm)) keptTerm = m.keptTerm as number;
  } catch {
    keptTerm = null;
  }
  return { history: storeHistoryOf({ keptTerm }), restorePendingStored };
}

export interface NodeIdentity {
  readonly clusterId: string;
  /** The node's Ed25519 identity seed (32 bytes). */
  readonly secretKey: Uint8Array;
  /** A roster node's identity public key, as the ledger (or the genesis) records it. */
  readonly publicKey: (nodeId: NodeId) => Uint8Array | undefined;
}

export interface NodeGuardOptions {
  readonly self: NodeId;
  /**
   * Voters of the configuration the store holds (not the genesis: a node added later is not in
   * it). The guard then follows each configuration the driver applies (`configure`, or
   * NodeGuardIo.configuration each round).
   */
  readonly voters: readonly NodeId[];
  /** Learners of that configuration (witnessed like voters, never asked for a rollback answer). */
  readonly learners?: readonly NodeId[];
  readonly atStart: DurableRaftState;
  /** The witness book as stored (WITNESS_KEY), if any. */
  readonly stored: Uint8Array | undefined;
  readonly identity: NodeIdentity | null;
  readonly metrics?: CatalogMetrics;
  readonly log: (line: string) => void;
  /** What the store's marker says it lost (rollback.ts StoreHistory; default `intact`). */
  readonly history?: StoreHistory;
  /** RESTORE_PENDING_KEY was in the store at start. */
  readonly restorePendingStored?: boolean;
  /**
   * The operator vouches that voters which have not answered hold no promise from this node that
   * the answering ones did not witness (`custody node --trust-store`): vote without waiting for
   * them. Matters only where the gate waits for every voter (a store marked as having lost its
   * vote, or contradicted by a peer); a contradicting answer still withholds the vote until the
   * node has caught up past it, and raises the alarm.
   */
  readonly trustStore?: boolean;
  /** Paces the observation exchange (default: the process's timers). The simulator passes its clock. */
  readonly clock?: Clock;
  /**
   * This run's boot id (exchange.ts newBootId; default: a fresh one). The peer transport names it
   * on every stream, so peers keep what this run says apart from what earlier runs said.
   */
  readonly boot?: string;
}

/** What the guard needs of the running node once it has started. */
export interface NodeGuardIo {
  readonly peers: readonly NodeId[];
  /**
   * The configuration the node has applied (Driver.status().conf), read each round so the rollback
   * gate, the witness book and the relay follow membership changes. Absent: the configuration
   * given at construction (or to `configure`) stays in force.
   */
  configuration?(): ConfState;
  exchangeWanted(peer: NodeId): boolean;
  sendExchange(peer: NodeId, bytes: Uint8Array): boolean;
  /** The node's current view: term, known leader, applied index and the state root after it. */
  view(): { readonly term: number; readonly leader: NodeId | null; readonly appliedIndex: number; readonly root: string };
  /** The peers proved this node's store went backwards: catch up as a wiped node does (Driver.recover). */
  onRolledBack?(why: string, catchUp: { readonly term: number; readonly index: number }): void;
  /** Proposes an evidence event; resolves once the ledger ruled (either way), rejects if it could not be placed. */
  proposeEvidence?(ev: EquivocationEvidence): Promise<{ readonly accepted: boolean; readonly reason?: ReasonCode }>;
}

/**
 * The stored witness book: `{ v: 2, peers: [[node, rest, [[boot, term, vote, ackIndex], ...]], ...] }`
 * with `rest` null or `[term, vote, ackIndex]` (rollback.ts PeerWitness). A book stored before
 * boots were kept apart (an array of `[node, term, vote, ackIndex]`) is read as `rest`: what it
 * holds counts against every asker, as it did then.
 */
export function encodeWitnesses(entries: readonly [NodeId, PeerWitness][]): Uint8Array {
  const w = (x: Witness): [number, NodeId | null, number] => [x.term, x.vote, x.ackIndex];
  const peers = entries.map(([id, p]) => [id, p.rest === null ? null : w(p.rest), p.boots.map((b) => [b.boot, ...w(b.saw)])]);
  return Buffer.from(JSON.stringify({ v: 2, peers }), 'utf8');
}

function witnessOf(r: unknown[]): Witness {
  const [term, vote, ackIndex] = r;
  if (!Number.isSafeInteger(term) || !Number.isSafeInteger(ackIndex) || (vote !== null && typeof vote !== 'string')) throw new Error('witness book: malformed record');
  return { term: term as number, vote: vote as NodeId | null, ackIndex: ackIndex as number };
}

export function decodeWitnesses(bytes: Uint8Array): [NodeId, PeerWitness][] {
  const raw = JSON.parse(Buffer.from(bytes).toString('utf8')) as unknown;
  if (Array.isArray(raw)) {
    return raw.map((r: unknown) => {
      if (!Array.isArray(r) || r.length !== 4 || typeof r[0] !== 'string') throw new Error('witness book: expected [node, term, vote, ackIndex]');
      return [r[0], { boots: [], rest: witnessOf(r.slice(1)) }];
    });
  }
  const book = raw as { v?: unknown; peers?: unknown };
  if (typeof raw !== 'object' || raw === null || book.v !== 2 || !Array.isArray(book.peers)) throw new Error('witness book: expected { v: 2, peers }');
  return book.peers.map((r: unknown) => {
    if (!Array.isArray(r) || r.length !== 3 || typeof r[0] !== 'string' || (r[1] !== null && !Array.isArray(r[1])) || !Array.isArray(r[2])) throw new Error('witness book: expected [node, rest, boots]');
    const boots = (r[2] as unknown[]).map((b) => {
      if (!Array.isArray(b) || b.length !== 4 || bootOf(b[0]) === undefined) throw new Error('witness book: expected [boot, term, vote, ackIndex]');
      return { boot: b[0] as string, saw: witnessOf(b.slice(1)) };
    });
    return [r[0], { boots, rest: r[1] === null ? null : witnessOf(r[1] as unknown[]) }];
  });
}

function confKeyOf(c: { readonly voters: readonly NodeId[]; readonly learners: readonly NodeId[]; readonly votersOutgoing?: readonly NodeId[]; readonly learnersNext?: readonly NodeId[] }): string {
  const part = (l: readonly NodeId[] | undefined): string => [...new Set(l ?? [])].sort().join(',');
  return [part(c.voters), part(c.votersOutgoing), part(c.learners), part(c.learnersNext)].join('|');
}

export class NodeGuard implements VoteGuard {
  readonly monitor: SplitBrainMonitor;
  private dirty = false;
  private voteWitnessed = false;
  private io: NodeGuardIo | null = null;
  private timer: Timer | null = null;
  /** Evidence waiting for the ledger's ruling, by a key of the pair. */
  private readonly evidence = new Map<string, { ev: EquivocationEvidence; inFlight: boolean }>();
  private recoveryAsked = false;
  /** Whether RESTORE_PENDING_KEY is in the store (as far as this process wrote it). */
  private pendingStored: boolean;
  /**
   * The witness book as stored, until the first `configure`: the roster given at construction may
   * lack members the store's configuration has (added after its last snapshot), whose records are
   * merged then. Later members joined after this start: the stored book has nothing of them.
   */
  private storedBook: [NodeId, PeerWitness][];
  /** The configuration last applied to the monitor, as a comparable key. */
  private confKey: string;
  /** `configure` was called once (the driver's configuration at start). */
  private configured = false;

  /** This run's boot id (NodeGuardOptions.boot). */
  readonly boot: string;
  /** When an exchange last went to each peer at once because it asked (immediateAnswerIntervalMs). */
  private readonly answeredAt = new Map<NodeId, number>();

  constructor(private readonly o: NodeGuardOptions) {
    this.boot = o.boot ?? newBootId();
    this.pendingStored = o.restorePendingStored === true;
    this.monitor = new SplitBrainMonitor({
      self: o.self,
      clusterId: o.identity?.clusterId ?? '',
      voters: o.voters,
      learners: o.learners ?? [],
      identityKey: (id) => o.identity?.publicKey(id),
      atStart: o.atStart,
      ...(o.metrics ? { metrics: o.metrics } : {}),
      log: o.log,
      history: o.history ?? 'intact',
      waiveSilent: o.trustStore === true,
      boot: this.boot,
    });
    if (o.trustStore) o.log(`${o.self}: the operator vouches for this store (--trust-store): not waiting for voters that have not answered; an answer that contradicts the store still withholds the vote`);
    let stored: [NodeId, PeerWitness][] = [];
    if (o.stored) {
      try {
        stored = decodeWitnesses(o.stored);
        this.monitor.witnesses.restore(stored);
      } catch (e) {
        // The book only strengthens peers' rollback checks; a node never refuses to start over it.
        o.log(`${o.self}: ignoring an unreadable witness book (${(e as Error).message}); peers restarted after this one cannot be checked against it`);
      }
    }
    this.storedBook = stored;
    this.confKey = confKeyOf({ voters: o.voters, learners: o.learners ?? [] });
  }

  /**
   * The configuration in force changed (the node applied a membership change, or the driver
   * loaded the store's): the rollback gate asks and counts its voters (rollback.ts RollbackGate
   * for the safety argument), the witness book records its members. The first call gives the
   * configuration the driver loaded from the store (the snapshot's and the changes applied
   * since): its voters are the gate's start voters, like those given at construction.
   */
  configure(conf: Pick<ConfState, 'voters' | 'learners' | 'votersOutgoing' | 'learnersNext'>): void {
    const atStart = !this.configured;
    this.configured = true;
    const key = confKeyOf(conf);
    if (key === this.confKey) {
      this.storedBook = [];
      return;
    }
    this.confKey = key;
    if (this.monitor.reconfigure(conf, atStart)) this.dirty = true;
    // restore() keeps only what is newer than the record already held.
    this.monitor.witnesses.restore(this.storedBook);
    this.storedBook = [];
    this.o.log(`${this.o.self}: split-brain checks follow the configuration: voters ${[...conf.voters, ...(conf.votersOutgoing ?? [])].join(', ')}${conf.learners.length > 0 ? `, learners ${conf.learners.join(', ')}` : ''}`);
  }

  // --- VoteGuard (called by the driver) ---

  received(m: Message, boot?: string): void {
    if (!this.monitor.noteMessage(m, boot)) return;
    this.dirty = true;
    if (m.type === 'voteResp' && !m.reject) this.voteWitnessed = true;
  }

  mayVote(now: DurableRaftState): boolean {
    return this.monitor.mayVote(now);
  }

  hasWrites(): boolean {
    return this.dirty || this.monitor.gate.restorePending() !== this.pendingStored;
  }

  takeWrites(): { writes: AppWrite[]; sync: boolean } {
    const writes: AppWrite[] = [];
    let sync = false;
    const pending = this.monitor.gate.restorePending();
    if (pending !== this.pendingStored) {
      writes.push({ key: RESTORE_PENDING_KEY, value: pending ? Buffer.from(JSON.stringify({ since: this.monitor.gate.verdict().kind })) : null });
      this.pendingStored = pending;
      // Synced, as the wipe marker's removal is (raft/driver.ts): a change lost on power loss
      // would bring the node back waiting for every voter again, a voter failed for good
      // included. It changes about once per restore, so the fsync costs nothing that matters.
      sync = true;
    }
    if (this.dirty) {
      sync ||= this.voteWitnessed;
      this.dirty = false;
      this.voteWitnessed = false;
      writes.push({ key: WITNESS_KEY, value: encodeWitnesses(this.monitor.witnesses.entries()) });
    }
    return { writes, sync };
  }

  voted(term: number, candidate: NodeId): void {
    const id = this.o.identity;
    if (!id || term < 1) return;
    this.monitor.statement(signVote(id.clusterId, this.o.self, term, candidate, id.secretKey));
  }

  leads(term: number, startIndex: number): void {
    const id = this.o.identity;
    if (!id || term < 1 || startIndex < 1) return;
    this.monitor.statement(signLeaderAnnouncement(id.clusterId, this.o.self, term, startIndex, id.secretKey));
  }

  /** A signed node statement carried by a log entry (ledger statements share the detector). */
  statementInLog(s: SignedStatement): void {
    if (!this.o.identity) return;
    this.monitor.statement(s);
    this.collectEvidence();
  }

  // --- the exchange ---

  start(io: NodeGuardIo): void {
    this.io = io;
    this.round();
    if (this.o.clock) {
      this.timer = this.o.clock.every(limits.observationIntervalMs, () => this.round());
    } else {
      const h = setInterval(() => this.round(), limits.observationIntervalMs);
      h.unref();
      this.timer = { cancel: () => clearInterval(h) };
    }
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
    this.io = null;
  }

  /**
   * This node's stream to `peer` is up: ask it at once if its rollback answer is still wanted,
   * rather than at the next round, so a restarted node votes as soon as its peers have answered.
   */
  peerUp(peer: NodeId): void {
    if (this.monitor.gate.wantsAnswer(peer)) this.sendTo(peer);
  }

  /** An exchange received from the authenticated peer `peer`. */
  incoming(peer: NodeId, bytes: Uint8Array): void {
    const d = decodeExchange(bytes, peer);
    const out = this.monitor.incoming(peer, d);
    if (out.verdict?.kind === 'rolled_back' && !this.recoveryAsked) {
      this.recoveryAsked = true;
      this.io?.onRolledBack?.(`because ${peer} witnessed this node beyond its stored state (restored from an old copy?)`, out.verdict.catchUp);
    }
    this.collectEvidence(); // the monitor logged any alarm and counted it
    // A peer that asks what this node witnessed of it is waiting to vote: answer now, at most
    // once per immediateAnswerIntervalMs per peer. Two waiting nodes would otherwise answer each
    // other's queries back and forth without end (each answer carries this node's own query), and
    // duplicated messages multiply that; a query inside the interval is answered by the next round.
    if (d.ok && d.exchange.query && this.monitor.answerOwed(peer)) {
      const now = this.now();
      const last = this.answeredAt.get(peer);
      if (last === undefined || now - last >= limits.immediateAnswerIntervalMs) {
        this.answeredAt.set(peer, now);
        this.sendTo(peer);
      }
    }
  }

  private now(): number {
    return this.o.clock ? this.o.clock.now() : Date.now();
  }

  private round(): void {
    const io = this.io;
    if (!io) return;
    const conf = io.configuration?.();
    if (conf) this.configure(conf);
    this.monitor.observeLocal(this.own(io));
    for (const p of io.peers) this.sendTo(p);
    this.collectEvidence();
    this.proposeEvidence(); // retries what could not be placed before
  }

  private own(io: NodeGuardIo): { node: NodeId; term: number; leader: NodeId | null; appliedIndex: number; stateRoot: string } {
    const v = io.view();
    return { node: this.o.self, term: v.term, leader: v.leader, appliedIndex: v.appliedIndex, stateRoot: v.root };
  }

  private sendTo(peer: NodeId): void {
    const io = this.io;
    if (!io || !io.exchangeWanted(peer)) return;
    io.sendExchange(peer, encodeExchange(this.monitor.outgoing(peer, this.own(io))));
  }

  // --- evidence to the ledger ---

  /** Moves what the monitor found into the queue of evidence waiting for the ledger's ruling. */
  private collectEvidence(): void {
    let added = false;
    for (const ev of this.monitor.takeEvidence()) {
      const key = `${ev.first.nodeId}|${ev.first.kind}|${Buffer.from(ev.first.signature).toString('hex')}|${Buffer.from(ev.second.signature).toString('hex')}`;
      if (this.evidence.has(key) || this.evidence.size >= limits.evidencePendingMax) continue;
      this.evidence.set(key, { ev, inFlight: false });
      added = true;
    }
    if (added) this.proposeEvidence();
  }

  private proposeEvidence(): void {
    const propose = this.io?.proposeEvidence;
    if (!propose) return;
    for (const [key, e] of this.evidence) {
      if (e.inFlight) continue;
      e.inFlight = true;
      propose(e.ev).then(
        (v) => {
          this.evidence.delete(key);
          this.o.log(`equivocation evidence against ${e.ev.first.nodeId} (${e.ev.first.kind}): ${v.accepted ? 'recorded in the ledger' : `not recorded (${v.reason ?? 'refused'}): the ledger already holds it or refuses it`}`);
        },
        () => {
          e.inFlight = false; // not placed (no leader yet, timeout): the next round retries it
        },
      );
    }
  }
}
