/**
 * One object per node that holds the three checks of this folder and their metrics, so the
 * daemon wires them with a handful of calls and no logic of its own:
 *
 *   const sb = new SplitBrainMonitor({ self, clusterId, voters, identityKey, atStart, metrics, log });
 *   driver receive path:   sb.noteMessage(m)                    every authenticated peer message
 *                          sb.mayVote(durableNow)               false: drop vote/preVote, skip campaigns
 *   every observationIntervalMs, per peer:
 *                          send encodeExchange(sb.outgoing(peer, ownObservation))
 *   on an exchange from an authenticated peer:
 *                          sb.incoming(peer, decodeExchange(bytes, peer))
 *   on granting a vote / winning an election:
 *                          sb.statement(signVote(...)) / sb.statement(signLeaderAnnouncement(...))
 *   each apply loop:       for (const ev of sb.takeEvidence()) propose(encodeEvent(ev))
 *
 * Pure: no timers, sockets or storage. The design and safety arguments are in detector.ts,
 * equivocation.ts and rollback.ts; the daemon's wiring is node-guard.ts.
 */
import { splitBrain as limits } from '../../proto/limits.js';
import type { CatalogMetrics, SplitBrainKind } from '../metrics-catalog.js';
import { SplitBrainDetector, describeAlarm, type Alarm, type Observation, type ObserveResult } from './detector.js';
import { EquivocationDetector, type EquivocationEvidence, type SignedStatement, type SubmitResult } from './equivocation.js';
import type { Decoded, Exchange } from './exchange.js';
import { RollbackGate, WitnessBook, describeVerdict, type DurableState, type StoreHistory, type Verdict, type Witness } from './rollback.js';
import type { Message } from '../../raft/core/types.js';

export interface MonitorOptions {
  readonly self: string;
  readonly clusterId: string;
  /** Voters of the configuration in force at start (rollback check asks each of them); `reconfigure` follows changes. */
  readonly voters: readonly string[];
  /** Learners of that configuration: witnessed and relayed to like voters, never asked. */
  readonly learners?: readonly string[];
  /** Identity key of a roster node, from the ledger's node roster. */
  readonly identityKey: (nodeId: string) => Uint8Array | undefined;
  /** The node's durable Raft state as loaded at start. */
  readonly atStart: DurableState;
  readonly metrics?: CatalogMetrics;
  readonly log?: (line: string) => void;
  /**
   * What the store's marker says it lost (`custody node wipe`, rollback.ts StoreHistory). The
   * gate's rule depends on it; and a rollback it explains is withheld for, but not an alarm:
   * `log_lost` explains evidence about the log only, `vote_lost` any evidence.
   */
  readonly history?: StoreHistory;
  /** Stop waiting for voters that have not answered (`custody node --trust-store`, rollback.ts GateOptions). */
  readonly waiveSilent?: boolean;
  /**
   * This run's boot id (exchange.ts newBootId): named in its queries, and only answers that name
   * it count. Absent: queries name no boot and only answers that name none count.
   */
  readonly boot?: string;
}

export interface IncomingOutcome {
  readonly alarms: readonly Alarm[];
  readonly evidence: readonly EquivocationEvidence[];
  readonly verdict: Verdict | null;
}

export class SplitBrainMonitor {
  readonly detector = new SplitBrainDetector();
  readonly equivocation: EquivocationDetector;
  readonly witnesses: WitnessBook;
  readonly gate: RollbackGate;
  /** Statements new to this node, waiting to be relayed to each peer. */
  private readonly relay = new Map<string, SignedStatement[]>();
  private readonly evidence: EquivocationEvidence[] = [];
  /** Peers that asked what this node witnessed of them, with the boot they asked from, answered in the next exchange to them. */
  private readonly asked = new Map<string, string | undefined>();
  private evidenceDropped = 0;

  constructor(private readonly o: MonitorOptions) {
    this.equivocation = new EquivocationDetector({ clusterId: o.clusterId, identityKey: o.identityKey });
    const members = [...o.voters, ...(o.learners ?? [])];
    this.witnesses = new WitnessBook(o.self, new Set(members));
    this.gate = new RollbackGate(o.self, o.voters, o.atStart, { history: o.history ?? 'intact', waiveSilent: o.waiveSilent === true });
    this.setPeers(members);
    this.noteVerdict(this.gate.verdict());
  }

  /**
   * A configuration came into force (the node applied a membership change): the gate asks and
   * counts its voters (rollback.ts RollbackGate), the witness book records its members, and
   * statements are relayed to them. True when the witness book forgot records (persist it).
   * `atStart`: the store's own configuration, as the driver loaded it (RollbackGate.reconfigure).
   */
  reconfigure(c: { readonly voters: readonly string[]; readonly votersOutgoing?: readonly string[]; readonly learners?: readonly string[]; readonly learnersNext?: readonly string[] }, atStart = false): boolean {
    const members = [...c.voters, ...(c.votersOutgoing ?? []), ...(c.learners ?? []), ...(c.learnersNext ?? [])];
    const forgot = this.witnesses.setRoster(new Set(members));
    this.setPeers(members);
    const before = this.gate.verdict();
    const v = this.gate.reconfigure({ voters: c.voters, votersOutgoing: c.votersOutgoing ?? [] }, atStart);
    if (v.kind !== before.kind || v.missing.join() !== before.missing.join()) this.noteVerdict(v);
    return forgot;
  }

  /** Relay queues for exactly the members other than this node (a new member starts with an empty queue). */
  private setPeers(members: readonly string[]): void {
    const peers = new Set(members.filter((m) => m !== this.o.self));
    for (const p of [...this.relay.keys()]) if (!peers.has(p)) this.relay.delete(p);
    for (const p of peers) if (!this.relay.has(p)) this.relay.set(p, []);
  }

  // -------------------------------------------------------------------------------------------
  // Observations
  // -------------------------------------------------------------------------------------------

  /** This node's own observation (call each interval, before building exchanges). */
  observeLocal(obs: Observation): Alarm | null {
    return this.observe(obs);
  }

  private observe(obs: Observation): Alarm | null {
    const before: Record<ObserveResult, number> = { ...this.detector.counts };
    const a = this.detector.observe(obs);
    for (const r of Object.keys(before) as ObserveResult[]) {
      const d = this.detector.counts[r] - before[r];
      if (d > 0) this.o.metrics?.observations.inc({ result: r }, d);
    }
    if (a) this.raise(a.kind, describeAlarm(a));
    return a;
  }

  private raise(kind: SplitBrainKind, line: string): void {
    this.o.metrics?.splitBrainActive.set({ kind }, 1);
    this.o.metrics?.splitBrainAlarms.inc({ kind });
    this.o.log?.(line);
  }

  // -------------------------------------------------------------------------------------------
  // Signed statements
  // -------------------------------------------------------------------------------------------

  /** A statement this node signed or received. New ones are relayed to every peer. */
  statement(s: SignedStatement, from: string | null = null): SubmitResult {
    const r = this.equivocation.submit(s);
    switch (r.kind) {
      case 'new':
        this.enqueue(s, from);
        break;
      case 'rejected':
        this.o.metrics?.statementsRejected.inc({ reason: r.reason });
        break;
      case 'equivocation':
        this.o.metrics?.equivocationEvidence.inc({ kind: r.evidence.first.kind });
        this.o.log?.(`equivocation: ${r.evidence.first.nodeId} signed two different ${r.evidence.first.kind} statements for one slot`);
        if (this.evidence.length < limits.evidencePendingMax) this.evidence.push(r.evidence);
        else this.evidenceDropped++;
        // Relay the second statement too, so every node can build the same evidence.
        this.enqueue(s, from);
        break;
      case 'duplicate':
        break;
    }
    return r;
  }

  /**
   * Queues a statement for every peer but the one it came from. Bounded by
   * `statementsRelayQueuedMax` per peer: beyond it the oldest unsent statement goes, which other
   * nodes cover (every node that saw a statement new relays it too).
   */
  private enqueue(s: SignedStatement, from: string | null): void {
    for (const [peer, q] of this.relay) {
      if (peer === from) continue;
      if (q.length >= limits.statementsRelayQueuedMax) q.shift();
      q.push(s);
    }
  }

  /** Evidence to propose to the ledger as EquivocationEvidence events; each is handed out once. */
  takeEvidence(): EquivocationEvidence[] {
    return this.evidence.splice(0, this.evidence.length);
  }

  /** Evidence pairs dropped because `evidencePendingMax` were already waiting. */
  droppedEvidence(): number {
    return this.evidenceDropped;
  }

  // -------------------------------------------------------------------------------------------
  // Rollback
  // -------------------------------------------------------------------------------------------

  /**
   * Every Raft message received from an authenticated peer, with the boot of the peer's stream
   * it came on (undefined: the stream named none). True: persist the witness book.
   */
  noteMessage(m: Pick<Message, 'type' | 'from' | 'to' | 'term' | 'index' | 'reject'>, boot?: string): boolean {
    return this.witnesses.noteMessage(m, boot);
  }

  mayVote(now: DurableState): boolean {
    const ok = this.gate.mayVote(now);
    this.o.metrics?.rollbackVoteWithheld.set(ok ? 0 : 1);
    return ok;
  }

  private noteVerdict(v: Verdict): void {
    this.o.metrics?.rollbackVoteWithheld.set(this.gate.mayVote(this.o.atStart) ? 0 : 1);
    this.o.log?.(describeVerdict(this.o.self, v));
  }

  // -------------------------------------------------------------------------------------------
  // The exchange
  // -------------------------------------------------------------------------------------------

  /** The exchange to send to `peer` now. Asks `peer` for its rollback witness until it has answered. */
  outgoing(peer: string, own: Observation): Exchange {
    const q = this.relay.get(peer) ?? [];
    const statements = q.splice(0, limits.statementsPerExchangeMax);
    const query = this.gate.wantsAnswer(peer);
    const e: Exchange = { from: this.o.self, observation: own, statements, query, ...(this.o.boot !== undefined ? { boot: this.o.boot } : {}) };
    if (!this.asked.has(peer)) return e;
    const boot = this.asked.get(peer);
    this.asked.delete(peer);
    // What every other run of the asker said (rollback.ts WitnessBook.report), never its own.
    const answer: Witness | null = this.witnesses.report(peer, boot);
    return { ...e, answer, ...(boot !== undefined ? { answerFor: boot } : {}) };
  }

  /** True while `peer` has asked for a rollback answer that no exchange carried yet. */
  answerOwed(peer: string): boolean {
    return this.asked.has(peer);
  }

  /** An exchange received from `peer` (already authenticated and decoded). */
  incoming(peer: string, d: Decoded): IncomingOutcome {
    if (!d.ok) {
      this.o.log?.(`refused exchange from ${peer}: ${d.reason}: ${d.detail}`);
      return { alarms: [], evidence: [], verdict: null };
    }
    const e = d.exchange;
    const alarms: Alarm[] = [];
    const a = this.observe(e.observation);
    if (a) alarms.push(a);
    const evidence: EquivocationEvidence[] = [];
    for (const s of e.statements) {
      const r = this.statement(s, peer);
      if (r.kind === 'equivocation') evidence.push(r.evidence);
    }
    if (e.query) this.asked.set(peer, e.boot);
    let verdict: Verdict | null = null;
    if (e.answer !== undefined && e.answerFor !== this.o.boot) {
      // An answer to another run's query (an earlier run of this node, or a peer that names no
      // boot): it may hold what this run said itself. This run keeps asking.
      this.o.log?.(`${this.o.self}: ignoring ${peer}'s rollback answer for ${e.answerFor === undefined ? 'a query that named no boot' : `boot ${e.answerFor}`} (this run is ${this.o.boot ?? 'unnamed'})`);
    } else if (e.answer !== undefined) {
      const before = this.gate.verdict();
      verdict = this.gate.answer(peer, e.answer);
      const lastAnswer = verdict.kind === 'consistent' && before.kind === 'consistent' && verdict.missing.length === 0 && before.missing.length > 0;
      if (verdict.kind !== before.kind || verdict.kind === 'rolled_back' || lastAnswer) {
        const history = this.o.history ?? 'intact';
        const expected = verdict.kind === 'rolled_back' && (history === 'vote_lost' || (history === 'log_lost' && verdict.evidence.every((x) => x.what === 'log')));
        if (verdict.kind === 'rolled_back' && before.kind !== 'rolled_back' && !expected) this.raise('rollback', describeVerdict(this.o.self, verdict));
        else this.noteVerdict(verdict);
      }
    }
    return { alarms, evidence, verdict };
  }
}
