/**
 * The whole-node simulator: every simulated node is the daemon's own stack — the Raft driver
 * (raft/driver.ts) with its vote handling and wiped-store recovery, the real store
 * (raft/storage/leveldb.ts LevelStorage) on a simulated LevelDB (disk.ts), the NodeGuard with
 * its split-brain monitor, equivocation detector and rollback gate (node/splitbrain/), and the
 * ledger application (node/ledger-app.ts) — wired as node/daemon.ts wires them. Only the
 * process's surroundings are simulated: the clock and timers, the loop scheduler, the disk, the
 * peer network (Raft messages and the observation exchange with its RollbackQuery, each on its
 * own faulty links), and the operator (restarts, restores, wipes).
 *
 * Determinism. The driver is asynchronous (it awaits its writes). Its loop turns are queued on
 * the simulator's scheduler (DriverOptions.schedule), its timers on the simulated clock, and its
 * writes complete when the simulated disk says; after every step the simulator runs the queued
 * turns and lets their promise continuations settle (one macrotask hop drains the microtask
 * queue, and nothing else in the process schedules work), until no node has work left. The
 * order of everything is then a function of the seed.
 *
 * Faults (per tick, drawn from the seed): message loss, duplication, delay and reordering on both
 * networks; symmetric and one-way partitions and an isolated leader; power loss (unsynced writes
 * lost, the last one possibly torn); process restarts of intact stores; restores of a stopped
 * node's store from an older copy of itself, with or without the operator's marker
 * (`meta/recovering`, the marker `custody node wipe` leaves); a corrupt stored value, which the
 * store refuses at open, followed by the operator's wipe; a node failing for good; rolling
 * restarts of every node one at a time; slow and stalled fsyncs; paused clocks.
 *
 * Which faults may overlap, and what is then asserted:
 * - A restore or a wipe is drawn only while no node has failed for good and no other restored
 *   or wiped node is still unsettled (not yet voting, recovering, or behind the commit index it
 *   was restored under), and a permanent failure only while no restored node is unsettled. Two
 *   stores rolled back at once, and a restore whose witnesses are gone for good, are not generated.
 *   A node whose driver begins a recovery later (a rollback proven late) is unsettled again; a
 *   settled node whose store comes back still marked as recovering fails `recovery-durable` (the
 *   driver makes the end of a recovery durable before it reports it).
 * - Marked restores (`meta/recovering` with no kept term: the store may have lost a vote) and
 *   wipes: every safety property is asserted, always.
 * - Restores without any marker (a VM snapshot put back by hand): the store looks intact, and the
 *   gate lets it vote after a quorum's answers unless an answer contradicts it
 *   (node/splitbrain/rollback.ts rule (a)); a promise no answering peer witnessed — a vote to a
 *   candidate that has not answered, or entries the node held as leader, which no one acknowledges
 *   to it — cannot be caught. So every property is asserted up to the step where such a node
 *   votes again before any answer proved it behind; a property failing after that step is reported
 *   as `outsideClaim` (with the seed, for replay), not as a violation. A restore the gate proved
 *   (verdict rolled_back) before the node voted again stays fully asserted, as does everything
 *   in a run where no unproven restore voted.
 * - Liveness is asserted after the heal, when every node but the permanently failed ones (fewer
 *   than half) runs and every link delivers: a leader commits a new proposal within
 *   wholeLivenessTicksMax.
 */
import { Driver, META_RECOVERING, type DurableRaftState, type Outcome, type VoteGuard } from '../../../raft/driver.js';
import { COLD_PREFIX, LevelStorage, wipedStoreOps, type PersistBatch } from '../../../raft/storage/leveldb.js';
import { APP_PREFIX, KEY_HS, KEY_SNAP, LOG_PREFIX, decodeHardState, unseal } from '../../../raft/storage/codec.js';
import { RaftCore } from '../../../raft/core/raft.js';
import { governedConfGuard } from '../../../node/membership/guard.js';
import { SeededRng } from '../../../raft/core/rng.js';
import type { ConfState, HardState, Message, NodeId } from '../../../raft/core/types.js';
import type { Clock } from '../../../raft/transport.js';
import { CustodyError } from '../../../proto/errors.js';
import { raft } from '../../../proto/limits.js';
import { SnapshotCertifier } from '../../../node/snapshot-cert.js';
import { type ArchiveSource, LedgerApp, levelColdStore } from '../../../node/ledger-app.js';
import type { CatalogMetrics } from '../../../node/metrics-catalog.js';
import { NodeGuard, WITNESS_KEY, storeHistory } from '../../../node/splitbrain/node-guard.js';
import { decodeExchange } from '../../../node/splitbrain/exchange.js';
import { contradiction } from '../../../node/splitbrain/rollback.js';
import { decodeEvent } from '../../../ledger/events.js';
import { SimViolation, fail, type CheckerName } from '../checkers.js';
import { SimNetwork } from '../network.js';
import { Trace } from '../trace.js';
import { WholeCheckers } from './checks.js';
import { SimKvDisk } from './disk.js';
import { ELECTION_TICKS, TICK_MS, drawWholeParams, wholeLivenessTicksMax, type WholeOptions, type WholeParams } from './options.js';
import { workloadFor, type Workload } from './workload.js';

export interface WholeFaultStats {
  dropped: number;
  duplicated: number;
  delayedLong: number;
  partitions: number;
  asymmetric: number;
  isolations: number;
  powerLosses: number;
  restarts: number;
  torn: number;
  lostBatches: number;
  restoresMarked: number;
  restoresUnmarked: number;
  wipes: number;
  permanentFailures: number;
  rollingRestarts: number;
  fsyncStalls: number;
  clockFaults: number;
}

export interface WholeStats {
  ticks: number;
  steps: number;
  elections: number;
  committed: number;
  proposals: number;
  acked: number;
  /** Highest ledger height any node reached. */
  ledgerHeight: number;
  exchanges: number;
  /** Rollback gates that found their store behind what peers witnessed. */
  rollbacksDetected: number;
  /**
   * Rollback answers a node gave after restarting while the asking node, started before it, still
   * waited for them, where its whole record of the asker (what the asking run said too) would have
   * contradicted the asker's store and the answer (every other run's) did not: each one a false
   * rollback alarm had the answer counted what the asking run said itself.
   */
  staleAnswersAvoided: number;
  /** Runs that ended with a node whose store may have lost a vote waiting for a voter failed for good (the runbook's operator case). */
  operatorWaits: number;
  /** Most ticks a started node waited before its vote was allowed (among those that got there). */
  recoveryTicksMax: number;
  /** Snapshots followers installed from a leader, and snapshots they refused (node/snapshot-cert.ts). */
  snapshotsInstalled: number;
  snapshotsRefused: number;
  livenessTicks: number | null;
  faults: WholeFaultStats;
}

export interface WholeResult {
  readonly options: WholeOptions;
  readonly stats: WholeStats;
  readonly violation: { readonly checker: CheckerName; readonly detail: string } | null;
  /**
   * A property that failed after a store restored without any marker voted again before any
   * answer proved it behind: outside what the gate can promise (see the header), so reported,
   * not counted as a violation.
   */
  readonly outsideClaim: { readonly checker: CheckerName; readonly detail: string } | null;
  readonly tick: number;
  readonly step: number;
  readonly traceHash: string;
  readonly traceTail: string[];
}

interface Alarms {
  rollback: number;
  two_leaders: number;
  two_roots: number;
  equivocation: number;
}

/** The six metrics the split-brain monitor reports through, counting what it raises. */
function alarmMetrics(a: Alarms): CatalogMetrics {
  const nop = { set: (): void => {}, inc: (): void => {} };
  return {
    splitBrainActive: nop,
    splitBrainAlarms: { inc: (l: { kind: keyof Alarms }) => void (a[l.kind] += 1) },
    observations: nop,
    rollbackVoteWithheld: nop,
    equivocationEvidence: { inc: () => void (a.equivocation += 1) },
    statementsRejected: nop,
  } as unknown as CatalogMetrics;
}

interface SimTimer {
  readonly ms: number;
  next: number;
  readonly fn: () => void;
  cancelled: boolean;
}

type RestoreKind = 'marked' | 'unmarked' | 'wiped';

interface WNode {
  readonly id: NodeId;
  readonly disk: SimKvDisk;
  readonly rng: SeededRng;
  /** Milliseconds this node's clock is ahead of the simulation's (its ticks are out of phase). */
  readonly offsetMs: number;
  up: boolean;
  failed: boolean;
  inc: number;
  driver: Driver | null;
  guard: NodeGuard | null;
  vote: VoteGuard | null;
  store: LevelStorage | null;
  app: LedgerApp | null;
  /** Certifies this run's snapshots; its peers answer in process (a twin of the peer service's Cosign). */
  snapshotCert: SnapshotCertifier | null;
  timers: SimTimer[];
  /** Chain of each stored entry (index -> chain), for log matching. */
  chains: Map<number, number>;
  downUntil: number | null;
  pausedUntilStep: number;
  copies: ReadonlyMap<string, Buffer>[];
  /** Set when the store went backwards (a restore or a wipe) in this run. */
  everRestored: boolean;
  /** A restore or wipe whose node does not vote yet. */
  unsettled: RestoreKind | null;
  /** The commit index it must apply before it counts as settled again. */
  settleIndex: number;
  startedTick: number;
  startedStep: number;
  /** Restored without a marker, and not yet proven behind by its gate. */
  unprovenRestore: boolean;
  voteAllowedSeen: boolean;
  rollbackCounted: boolean;
  readonly alarms: Alarms;
}

interface Client {
  readonly id: string;
  seq: number;
  pending: { seq: number; payload: Uint8Array; sentTick: number; refused: boolean } | null;
  readonly payload: (seq: number) => Uint8Array | null;
  done: boolean;
}

interface Rolling {
  readonly queue: NodeId[];
  current: NodeId | null;
  phase: 'down' | 'settle';
  until: number;
}

interface Exchange {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly bytes: Uint8Array;
}

const LIVENESS_CLIENT = 'liveness';

class WholeCluster {
  private readonly params: WholeParams;
  private readonly rng: SeededRng;
  private readonly faultRng: SeededRng;
  private readonly workRng: SeededRng;
  private readonly net: SimNetwork;
  /** The boot (node run) that sent each Raft message in flight, as the daemon's peer stream names it. */
  private readonly bootOfMessage = new WeakMap<Message, string>();
  private readonly exNet: SimNetwork<Exchange>;
  private readonly nodes: WNode[] = [];
  private readonly byId = new Map<NodeId, WNode>();
  private readonly chk = new WholeCheckers();
  private readonly trace = new Trace(Number(process.env["SIM_TRACE_KEEP"] ?? 48));
  private readonly work: Workload;
  private readonly voters: NodeId[];
  private readonly bootstrapConf: ConfState;
  private immediates: { n: WNode; inc: number; fn: () => void }[] = [];
  private step = 0;
  private tick = 0;
  private violation: SimViolation | null = null;
  private partitionEnd: number | null = null;
  private rolling: Rolling | null = null;
  private faultsOn = true;
  private readonly clients: Client[];
  private readonly liveClient: Client;
  private liveAcked = false;
  /** The first node restored without a marker that voted again before any answer proved it behind. */
  private undetectedRestore: { node: NodeId; step: number } | null = null;
  private outsideClaim: { checker: CheckerName; detail: string } | null = null;
  readonly stats: WholeStats;

  constructor(readonly o: WholeOptions) {
    this.rng = new SeededRng(o.seed);
    this.params = drawWholeParams(this.rng.fork(), o);
    this.faultRng = this.rng.fork();
    this.workRng = this.rng.fork();
    const p = this.params;
    this.net = new SimNetwork(this.rng.fork(), {
      dropRate: p.dropRate, duplicateRate: p.duplicateRate, delayStepsMax: p.delayStepsMax, longDelayRate: p.longDelayRate, longDelayStepsMax: p.longDelayStepsMax, fifo: false,
    });
    // The exchange rides the peer stream (one TCP connection per pair): delayed and lost when the
    // link is down, but never duplicated or reordered.
    this.exNet = new SimNetwork<Exchange>(this.rng.fork(), {
      dropRate: p.dropRate, duplicateRate: 0, delayStepsMax: p.delayStepsMax, longDelayRate: 0, longDelayStepsMax: 1, fifo: true,
    });
    this.work = workloadFor(o.nodes);
    this.voters = [...this.work.ids].sort();
    this.bootstrapConf = { voters: this.voters, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
    const msPerStep = TICK_MS / p.stepsPerTick;
    for (const id of this.voters) {
      const rng = this.rng.fork();
      const n: WNode = {
        id, rng, offsetMs: rng.int(p.stepsPerTick) * msPerStep,
        disk: new SimKvDisk(rng.fork(), { stepsMax: p.fsyncStepsMax, stallRate: p.stallRate, stallSteps: p.stallSteps }, () => this.step),
        up: false, failed: false, inc: 0, driver: null, guard: null, vote: null, store: null, app: null, snapshotCert: null, timers: [], chains: new Map(),
        downUntil: null, pausedUntilStep: 0, copies: [], everRestored: false, unsettled: null, settleIndex: 0, startedTick: 0, startedStep: 0, unprovenRestore: false, voteAllowedSeen: false, rollbackCounted: false,
        alarms: { rollback: 0, two_leaders: 0, two_roots: 0, equivocation: 0 },
      };
      this.nodes.push(n);
      this.byId.set(id, n);
    }
    const commands = this.work.commands;
    this.clients = [
      // The governance and journal history, in order: each entry once the previous one is applied.
      { id: 'ledger', seq: 0, pending: null, done: false, payload: (seq) => commands[seq - 1] ?? null },
      // Bytes that are no ledger command: refused by the ledger, identically on every node.
      { id: 'junk', seq: 0, pending: null, done: false, payload: (seq) => Buffer.from(`not a ledger command ${seq}`) },
    ];
    this.liveClient = { id: LIVENESS_CLIENT, seq: 0, pending: null, done: false, payload: (seq) => (seq === 1 ? Buffer.from(`liveness ${o.seed}`) : null) };
    this.stats = {
      ticks: 0, steps: 0, elections: 0, committed: 0, proposals: 0, acked: 0, ledgerHeight: 0, exchanges: 0, rollbacksDetected: 0, staleAnswersAvoided: 0, operatorWaits: 0, recoveryTicksMax: 0, snapshotsInstalled: 0, snapshotsRefused: 0, livenessTicks: null,
      faults: {
        dropped: 0, duplicated: 0, delayedLong: 0, partitions: 0, asymmetric: 0, isolations: 0, powerLosses: 0, restarts: 0, torn: 0, lostBatches: 0,
        restoresMarked: 0, restoresUnmarked: 0, wipes: 0, permanentFailures: 0, rollingRestarts: 0, fsyncStalls: 0, clockFaults: 0,
      },
    };
  }

  // -------------------------------------------------------------------------------------------
  // The run
  // -------------------------------------------------------------------------------------------

  async run(): Promise<WholeResult> {
    try {
      for (const n of this.nodes) await this.start(n);
      for (let t = 0; t < this.o.ticks; t++) await this.runTick();
      await this.liveness();
    } catch (e) {
      if (!(e instanceof SimViolation)) throw e;
      this.trace.add(this.step, 'violation', '-', [], `${e.checker}: ${e.detail}`);
      // A violation found inside a callback was recorded before it was thrown: it is outside the
      // claim all the same when an unproven restore voted first.
      if (this.undetectedRestore !== null) {
        this.outsideClaim = { checker: e.checker, detail: `${e.detail} (after ${this.undetectedRestore.node}, restored without a marker, voted unproven at step ${this.undetectedRestore.step})` };
        this.violation = null;
      } else this.violation = e;
    }
    const f = this.stats.faults;
    f.dropped = this.net.stats.dropped + this.exNet.stats.dropped;
    f.duplicated = this.net.stats.duplicated + this.exNet.stats.duplicated;
    f.delayedLong = this.net.stats.delayedLong + this.exNet.stats.delayedLong;
    f.fsyncStalls = this.nodes.reduce((s, n) => s + n.disk.stalls, 0);
    this.stats.elections = this.chk.electionsSeen();
    this.stats.committed = this.chk.committedHigh;
    this.stats.ticks = this.tick;
    this.stats.steps = this.step;
    return {
      options: this.o,
      stats: this.stats,
      violation: this.violation ? { checker: this.violation.checker, detail: this.violation.detail } : null,
      outsideClaim: this.outsideClaim,
      tick: this.tick,
      step: this.step,
      traceHash: this.trace.hash(),
      traceTail: this.trace.tail(),
    };
  }

  private async runTick(): Promise<void> {
    if (this.faultsOn) this.faults();
    this.restarts();
    this.workload();
    for (const c of [...this.starting]) await c;
    this.starting = [];
    for (let s = 0; s < this.params.stepsPerTick; s++) await this.runStep();
    this.tick++;
  }

  private starting: Promise<void>[] = [];

  private async runStep(): Promise<void> {
    this.step++;
    for (const m of this.net.due(this.step)) {
      const n = this.byId.get(m.to);
      if (!n?.up || !n.driver) continue;
      this.trace.deliver(this.step, m);
      n.driver.receive(m, this.bootOfMessage.get(m));
    }
    for (const x of this.exNet.due(this.step)) {
      const n = this.byId.get(x.to);
      if (!n?.up || !n.guard) continue;
      this.stats.exchanges++;
      this.trace.mix(this.step, 'exchange', `${x.from}>${x.to}`);
      this.noteStaleAnswerAvoided(n, x);
      n.guard.incoming(x.from, x.bytes);
    }
    for (const n of this.nodes) if (n.up) n.disk.completeSyncs();
    for (const n of this.nodes) this.fireTimers(n);
    await this.drain();
    this.check();
  }

  /**
   * Counts the situation the boot-separated answers exist for (WholeStats.staleAnswersAvoided):
   * `x` answers `n`'s query from a peer that started after `n` and `n` still waits for it.
   */
  private noteStaleAnswerAvoided(n: WNode, x: Exchange): void {
    const from = this.byId.get(x.from);
    const g = n.guard as NodeGuard;
    if (!from?.guard || from.startedStep <= n.startedStep || !g.monitor.gate.wantsAnswer(x.from)) return;
    const d = decodeExchange(x.bytes, x.from);
    if (!d.ok || d.exchange.answerFor !== g.boot) return;
    const whole = from.guard.monitor.witnesses.report(n.id);
    const atStart = g.monitor.gate.atStart;
    if (whole !== null && contradiction(from.id, whole, atStart) !== null && (d.exchange.answer == null || contradiction(from.id, d.exchange.answer, atStart) === null)) {
      this.stats.staleAnswersAvoided++;
      this.trace.add(this.step, 'exchange', n.id, [], `${from.id} restarted after ${n.id} and answered with what every other run of ${n.id} said, not what this run said since`);
    }
  }

  /** Run every queued loop turn and let its continuations settle, until no node has work left. */
  private async drain(): Promise<void> {
    for (;;) {
      while (this.immediates.length > 0) {
        const q = this.immediates;
        this.immediates = [];
        for (const it of q) if (it.n.up && it.n.inc === it.inc) it.fn();
      }
      await new Promise<void>((r) => setImmediate(r));
      if (this.violation) throw this.violation;
      if (this.immediates.length === 0) return;
    }
  }

  private nodeNow(n: WNode): number {
    return this.step * (TICK_MS / this.params.stepsPerTick) + n.offsetMs;
  }

  private fireTimers(n: WNode): void {
    if (!n.up || this.step < n.pausedUntilStep) return;
    const now = this.nodeNow(n);
    const inc = n.inc;
    for (const t of n.timers) {
      if (t.cancelled || n.inc !== inc || now < t.next) continue;
      t.next += t.ms;
      if (t.next <= now) t.next = now + t.ms; // a paused clock fires once when it resumes
      t.fn();
    }
  }

  /** Records a violation found inside a callback (a client's outcome, an apply hook). */
  private guarded(f: () => void): void {
    try {
      f();
    } catch (e) {
      if (e instanceof SimViolation) this.violation ??= e;
      else this.violation ??= new SimViolation('node-fatal', `simulator callback threw: ${(e as Error).stack ?? String(e)}`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // A node's life
  // -------------------------------------------------------------------------------------------

  /** The peers a node fetches archived records from: the others that are up, by id. */
  private archiveSource(self: WNode): ArchiveSource {
    const up = (): WNode[] => this.nodes.filter((p) => p !== self && p.up && p.app !== null);
    return {
      peers: () => up().map((p) => p.id),
      fetch: async (peer, fromSeq, n) => {
        const p = up().find((x) => x.id === peer);
        if (p === undefined || p.app === null) throw new CustodyError('ARCHIVE_UNAVAILABLE', `${peer} is down`);
        return p.app.archiveRange(fromSeq, n);
      },
      // Between rounds (every peer down or refusing), two election timeouts of simulated time.
      pause: () => new Promise<void>((res) => {
        const inc = self.inc;
        const t: SimTimer = { ms: 2 * ELECTION_TICKS * TICK_MS, next: this.nodeNow(self) + 2 * ELECTION_TICKS * TICK_MS, fn: () => {
          t.cancelled = true;
          if (self.inc === inc) res();
        }, cancelled: false };
        self.timers.push(t);
      }),
    };
  }

  private async start(n: WNode): Promise<void> {
    n.inc++;
    const inc = n.inc;
    const live = (): boolean => n.up && n.inc === inc;
    const opts = { dir: `sim/${n.id}`, bootstrapConf: this.bootstrapConf, recoveryHint: 'custody node wipe --config <file>' };
    let st: LevelStorage;
    try {
      st = await LevelStorage.openOn(n.disk.handle(), opts);
    } catch (e) {
      if (!(e instanceof CustodyError) || e.reason !== 'STORAGE_CORRUPT') throw e;
      // The operator's procedure for a store that refuses to open: wipe it (keeping term and
      // vote), then start the node again; it re-syncs from its peers.
      const kept = await this.keptHardState(n);
      n.disk.replace(wipedStoreOps(kept));
      this.stats.faults.wipes++;
      this.unsettle(n, 'wiped');
      this.trace.add(this.step, 'wipe', n.id, [kept?.term ?? 0], e.message.slice(0, 80));
      st = await LevelStorage.openOn(n.disk.handle(), opts);
    }
    if (n.inc !== inc) return;
    n.store = st;
    // A node the simulator counts as settled reported its recovery done (it voted, applied what
    // was committed when its store went back, and saw a leader), and no recovery began since. Its
    // store must not come back marked as recovering: the end of a recovery is durable before the
    // node reports it (raft/driver.ts), and the rule that draws one restore at a time rests on it.
    if (n.unsettled === null && st.appValue(META_RECOVERING) !== undefined) {
      fail('recovery-durable', `${n.id} restarted still recovering a lost log, though it had reported its recovery done and voted since (the marker's removal was not durable)`);
    }
    // Chains of what the store holds, from its snapshot point on.
    n.chains = new Map();
    const snap = st.snapshot().meta;
    const base = snap.index <= 1 ? 0 : this.chk.chainOfSnapshot(n.id, snap.index, snap.term);
    n.chains.set(snap.index, base);
    if (st.lastIndex() > snap.index) this.chk.stored(n.id, base, st.entries(snap.index + 1, st.lastIndex() + 1, Number.MAX_SAFE_INTEGER), n.chains);
    const persist = st.persist.bind(st);
    st.persist = async (b: PersistBatch) => {
      const r = await persist(b);
      if (n.inc === inc) this.onPersisted(n, b);
      return r;
    };
    // Ended acts go to the archive on the simulated disk, as in the node. A node installing a
    // snapshot fetches the archived records it lacks from a peer that is up, by reading that
    // peer's application (archiveRange, what its gRPC handler serves): the simulated network
    // carries Raft messages only, and a fetch answer is checked against the snapshot's hash chain
    // whatever path it took, so this runs the install under the simulator's disk faults, crashes
    // and restores (a crash between the fetch and the install included).
    const app = new LedgerApp({ cold: levelColdStore(st), archiveSource: this.archiveSource(n) });
    let lastRaftIndex = -1;
    let k = 0;
    const track = app.apply.bind(app);
    app.apply = (raftIndex, command) => {
      const r = track(raftIndex, command);
      k = raftIndex === lastRaftIndex ? k + 1 : 0;
      lastRaftIndex = raftIndex;
      this.chk.applied(n.id, raftIndex, k, command, app.state.index, app.root());
      this.stats.ledgerHeight = Math.max(this.stats.ledgerHeight, app.state.height);
      return r;
    };
    const restore = app.restore.bind(app);
    app.restore = (data) => {
      const restored = (w: ReturnType<typeof restore>): ReturnType<typeof restore> => {
        lastRaftIndex = -1;
        this.chk.restored(n.id, app.state.index, app.root());
        return w;
      };
      const w = restore(data);
      return w instanceof Promise ? w.then(restored) : restored(w);
    };
    n.app = app;
    const clock: Clock = {
      now: () => this.nodeNow(n),
      every: (ms, fn) => {
        const t: SimTimer = { ms, next: this.nodeNow(n) + ms, fn, cancelled: false };
        n.timers.push(t);
        return { cancel: () => void (t.cancelled = true) };
      },
    };
    const hs = st.hardState();
    const last = st.lastIndex();
    const atStart: DurableRaftState = { term: hs.term, vote: hs.vote, lastIndex: last, lastLogTerm: st.term(last) };
    const guard = new NodeGuard({
      self: n.id,
      voters: this.voters,
      atStart,
      stored: st.appValue(WITNESS_KEY),
      ...storeHistory((k) => st.appValue(k)),
      identity: this.work.identity(n.id),
      metrics: alarmMetrics(n.alarms),
      log: (line) => this.trace.add(this.step, 'guard', n.id, [], line.slice(0, 160)),
      clock,
      boot: `${n.id}.${inc}`,
    });
    const vote = this.voteGuard(guard);
    // Certified snapshots (node/snapshot-cert.ts): the nodes that are up cosign in process, each
    // from its own replica; until its ledger holds the cluster a node checks against the genesis.
    const identity = this.work.identity(n.id);
    const snapshotCert = new SnapshotCertifier({
      nodeId: n.id, identitySecretKey: identity.secretKey, app, stored: () => st.snapshot(), now: () => this.nodeNow(n),
      anchor: { clusterId: this.work.clusterId, voters: this.work.ids.map((id) => ({ id, identityKey: identity.publicKey(id) as Uint8Array })) },
      peers: () => this.nodes.filter((p) => p !== n && p.up && p.snapshotCert !== null).map((p) => ({ nodeId: p.id, cosignSnapshot: async (index: number) => (p.snapshotCert as SnapshotCertifier).cosign(index) })),
      log: (line) => this.trace.add(this.step, 'guard', n.id, [], line.slice(0, 160)),
    });
    n.snapshotCert = snapshotCert;
    const driver = new Driver({
      id: n.id,
      storage: st,
      app,
      transport: {
        send: (msgs: readonly Message[]) => {
          if (!live()) return;
          for (const m of msgs) {
            this.bootOfMessage.set(m, guard.boot);
            this.net.send(m, this.step);
          }
        },
        reachable: () => true,
      },
      clock,
      newCore: (c) => new RaftCore(c),
      rng: new SeededRng(n.rng.u32()),
      tickMs: TICK_MS,
      electionTicks: ELECTION_TICKS,
      heartbeatTicks: raft.heartbeatTicks,
      preVote: this.params.preVote,
      checkQuorum: this.params.checkQuorum,
      snapshotEveryEntries: this.params.snapshotEveryEntries,
      compactionKeepEntries: this.params.compactionKeepEntries,
      guard: vote,
      confGuard: governedConfGuard(app, (line) => this.trace.add(this.step, 'guard', n.id, [], line.slice(0, 160))),
      snapshotCert,
      metrics: { snapshotInstalled: () => this.stats.snapshotsInstalled++, snapshotRefused: () => this.stats.snapshotsRefused++ },
      schedule: (fn) => this.immediates.push({ n, inc, fn }),
      onFatal: (e) => {
        if (!live()) return;
        this.violation ??= e instanceof SimViolation ? e : new SimViolation('node-fatal', `${n.id}: ${(e as Error).stack ?? String(e)}`);
      },
      log: (line) => this.trace.add(this.step, 'guard', n.id, [], line.slice(0, 160)),
    });
    n.driver = driver;
    n.guard = guard;
    n.vote = vote;
    n.up = true;
    n.startedTick = this.tick;
    n.startedStep = this.step;
    n.voteAllowedSeen = false;
    n.rollbackCounted = false;
    driver.start();
    guard.start({
      peers: this.voters.filter((v) => v !== n.id),
      exchangeWanted: () => live(),
      sendExchange: (peer, bytes) => {
        if (!live()) return false;
        this.exNet.send({ from: n.id, to: peer, bytes }, this.step);
        return true;
      },
      view: () => {
        const s = driver.status();
        return { term: s.term, leader: s.leader, appliedIndex: s.appliedIndex, root: s.root };
      },
      onRolledBack: (why, catchUp) => driver.recover(why, catchUp),
    });
    // The streams are up: a node waiting for rollback answers asks at once (daemon: reachability).
    for (const p of this.nodes) {
      if (p === n || !p.up || !p.guard) continue;
      guard.peerUp(p.id);
      p.guard.peerUp(n.id);
    }
    app.subscribe((entry) => {
      const ev = decodeEventOrNull(entry.event);
      if (ev !== null && 'statement' in ev) guard.statementInLog(ev.statement);
    });
    this.trace.add(this.step, 'restart', n.id, [hs.term, last]);
    await this.drain();
  }

  /** The guard the driver consults: the node's own, or one broken on purpose by a fault switch. */
  private voteGuard(g: NodeGuard): VoteGuard {
    const fault = this.o.fault;
    if (fault === null) return g;
    const gate = g.monitor.gate;
    const mayVote = fault === 'voteDespiteGuard'
      ? (): boolean => true
      : fault === 'gateIgnoresContradiction'
        ? (now: DurableRaftState): boolean => gate.verdict().kind === 'rolled_back' || g.mayVote(now)
        : (now: DurableRaftState): boolean => g.mayVote(now) && gate.verdict().missing.length === 0;
    return {
      received: (m) => g.received(m),
      mayVote,
      takeWrites: () => g.takeWrites(),
      voted: (term, c) => g.voted(term, c),
      leads: (term, i) => g.leads(term, i),
    };
  }

  private async keptHardState(n: WNode): Promise<HardState | null> {
    const raw = await n.disk.handle().get(KEY_HS);
    if (raw === undefined) return null;
    const p = unseal(raw);
    const d = typeof p === 'string' ? p : decodeHardState(p);
    return typeof d === 'string' ? null : d;
  }

  private onPersisted(n: WNode, b: PersistBatch): void {
    if (b.snapshot) {
      const m = b.snapshot.meta;
      n.chains = new Map([[m.index, m.index <= 1 ? 0 : this.chk.chainOfSnapshot(n.id, m.index, m.term)]]);
    }
    if (b.entries.length > 0) {
      const first = (b.entries[0] as { index: number }).index;
      for (const i of [...n.chains.keys()]) if (i >= first) n.chains.delete(i);
      const prev = n.chains.get(first - 1);
      if (prev === undefined) fail('log-matching', `${n.id} stored entries from ${first} with nothing stored at ${first - 1}`);
      this.chk.stored(n.id, prev, b.entries, n.chains);
    }
  }

  /** The process stops: power loss (unsynced writes may be lost) or a plain process restart. */
  private stop(n: WNode, powerLoss: boolean, why: string): void {
    if (!n.up) return;
    n.up = false;
    n.inc++;
    n.guard?.stop();
    n.driver = null;
    n.guard = null;
    n.vote = null;
    n.store = null;
    n.app = null;
    n.snapshotCert = null;
    n.timers = [];
    if (powerLoss) {
      const c = n.disk.crash(this.faultRng.chance(this.params.partialFlush));
      this.stats.faults.powerLosses++;
      this.stats.faults.lostBatches += c.lostBatches;
      if (c.torn) this.stats.faults.torn++;
      this.trace.add(this.step, 'crash', n.id, [c.lostBatches, c.torn ? 1 : 0], why);
    } else {
      n.disk.stop();
      this.stats.faults.restarts++;
      this.trace.add(this.step, 'crash', n.id, [], why);
    }
  }

  private restarts(): void {
    for (const n of this.nodes) {
      if (n.up || n.failed || n.downUntil === null || this.tick < n.downUntil) continue;
      n.downUntil = null;
      this.starting.push(this.start(n));
    }
  }

  // -------------------------------------------------------------------------------------------
  // Faults
  // -------------------------------------------------------------------------------------------

  private between([a, b]: readonly [number, number]): number {
    return a + this.faultRng.int(b - a + 1);
  }

  private upNodes(): WNode[] {
    return this.nodes.filter((n) => n.up);
  }

  private leaderNode(): WNode | null {
    let best: WNode | null = null;
    let term = -1;
    for (const n of this.upNodes()) {
      const s = n.driver?.status();
      if (s && s.role === 'leader' && s.term > term) {
        best = n;
        term = s.term;
      }
    }
    return best;
  }

  private failedCount(): number {
    return this.nodes.filter((n) => n.failed).length;
  }

  private faults(): void {
    const p = this.params;
    const r = this.faultRng;
    // Partitions.
    if (this.partitionEnd !== null && this.tick >= this.partitionEnd) {
      this.net.healLinks();
      this.exNet.healLinks();
      this.partitionEnd = null;
      this.trace.add(this.step, 'heal', '-');
    } else if (this.partitionEnd === null && p.partitionRate > 0 && r.chance(p.partitionRate)) this.partition();
    // Store faults and restarts; the rolling restart in progress keeps its node to itself.
    const busy = (n: WNode): boolean => this.rolling?.current === n.id;
    const pickUp = (): WNode | null => {
      const c = this.upNodes().filter((n) => !busy(n));
      return c.length > 0 ? r.pick(c) : null;
    };
    if (p.crashRate > 0 && r.chance(p.crashRate)) {
      const n = pickUp();
      if (n) {
        this.stop(n, true, 'power loss');
        n.downUntil = this.tick + this.between(p.downTicks);
      }
    }
    if (p.restartRate > 0 && r.chance(p.restartRate)) {
      const n = pickUp();
      if (n) {
        this.stop(n, false, 'process restart');
        n.downUntil = this.tick + 1 + r.int(5);
      }
    }
    const quiet = (): boolean => this.failedCount() === 0 && !this.nodes.some((n) => n.unsettled !== null);
    if (p.restoreRate > 0 && r.chance(p.restoreRate) && quiet()) {
      const c = this.nodes.filter((n) => !busy(n) && n.copies.length > 0);
      if (c.length > 0) this.restore(r.pick(c));
    }
    if (p.corruptRate > 0 && r.chance(p.corruptRate) && quiet()) {
      const n = pickUp();
      if (n) {
        this.stop(n, true, 'media error');
        // Values the store checks when it opens: a corrupt one stops the node there and the
        // operator wipes it. Archived records are read on demand, never at open (cold keys), so
        // their corruption is a different fault, found by the read that meets it.
        if (n.disk.corrupt([LOG_PREFIX, APP_PREFIX, KEY_SNAP], [Buffer.concat([APP_PREFIX, Buffer.from(COLD_PREFIX, 'utf8')])])) {
          this.trace.add(this.step, 'wipe', n.id, [], 'a stored value is corrupt');
          this.unsettle(n, 'wiped');
        }
        n.downUntil = this.tick + this.between(p.downTicks);
      }
    }
    if (p.permanentRate > 0 && r.chance(p.permanentRate) && !this.nodes.some((n) => n.unsettled !== null) && this.failedCount() < Math.floor((this.nodes.length - 1) / 2)) {
      const c = this.nodes.filter((n) => !n.failed && !busy(n));
      if (c.length > 0) {
        const n = r.pick(c);
        this.stop(n, true, 'fails for good');
        n.failed = true;
        n.downUntil = null;
        this.stats.faults.permanentFailures++;
        this.trace.add(this.step, 'fail', n.id);
      }
    }
    if (this.rolling === null && p.rollingRate > 0 && r.chance(p.rollingRate)) {
      this.rolling = { queue: this.nodes.filter((n) => !n.failed).map((n) => n.id), current: null, phase: 'down', until: 0 };
      this.trace.add(this.step, 'rolling', '-', [], 'rolling restart begins');
    }
    this.rollingStep();
    // Clocks.
    if (p.clockFaultRate > 0 && r.chance(p.clockFaultRate)) {
      const n = pickUp();
      if (n) {
        n.pausedUntilStep = this.step + (1 + r.int(2 * ELECTION_TICKS)) * p.stepsPerTick;
        this.stats.faults.clockFaults++;
        this.trace.add(this.step, 'clock', n.id, [n.pausedUntilStep]);
      }
    }
    // Old copies of each store, for restores.
    if (this.tick % p.copyEveryTicks === 0) {
      for (const n of this.upNodes()) {
        n.copies.push(n.disk.copy());
        if (n.copies.length > 4) n.copies.shift();
      }
    }
  }

  private partition(): void {
    const r = this.faultRng;
    const ids = this.nodes.map((n) => n.id);
    const kind = r.int(3);
    const cut = (a: NodeId, b: NodeId): void => {
      this.net.cut(a, b);
      this.exNet.cut(a, b);
    };
    if (kind === 0) {
      const a = ids.filter(() => r.chance(0.5));
      const b = ids.filter((x) => !a.includes(x));
      for (const x of a) for (const y of b) {
        cut(x, y);
        cut(y, x);
      }
      this.stats.faults.partitions++;
    } else if (kind === 1) {
      const a = r.pick(ids);
      const b = r.pick(ids.filter((x) => x !== a));
      cut(a, b);
      this.stats.faults.asymmetric++;
    } else {
      const l = this.leaderNode();
      if (!l) return;
      for (const x of ids) if (x !== l.id) {
        cut(l.id, x);
        cut(x, l.id);
      }
      this.stats.faults.isolations++;
    }
    this.partitionEnd = this.tick + this.between(this.params.partitionTicks);
    this.trace.add(this.step, 'partition', '-', [kind, this.partitionEnd]);
  }

  /** `n`'s store went backwards: until it votes again and holds what was committed, no other store may. */
  private unsettle(n: WNode, kind: RestoreKind): void {
    n.everRestored = true;
    n.unsettled = kind;
    n.settleIndex = Math.max(n.settleIndex, this.chk.committedHigh);
  }

  /** Stop a node and replace its store with one of its older copies, marked or not. */
  private restore(n: WNode): void {
    const copy = n.copies[this.faultRng.int(n.copies.length)] as ReadonlyMap<string, Buffer>;
    if (n.up) this.stop(n, true, 'stopped to restore an old copy');
    const marked = this.faultRng.chance(this.params.restoreMarked);
    n.disk.restore(copy, marked ? wipedStoreOps(null) : []);
    this.unsettle(n, marked ? 'marked' : 'unmarked');
    n.unprovenRestore = !marked;
    if (marked) this.stats.faults.restoresMarked++;
    else this.stats.faults.restoresUnmarked++;
    if (!n.failed) n.downUntil = this.tick + 1 + this.faultRng.int(10);
    this.trace.add(this.step, 'restore', n.id, [copy.size], marked ? 'with the marker' : 'without a marker');
  }

  private rollingStep(): void {
    const ro = this.rolling;
    if (!ro) return;
    if (ro.current === null) {
      const next = ro.queue.shift();
      if (next === undefined) {
        this.rolling = null;
        this.stats.faults.rollingRestarts++;
        this.trace.add(this.step, 'rolling', '-', [], 'rolling restart done');
        return;
      }
      const n = this.byId.get(next) as WNode;
      if (n.failed) return;
      ro.current = next;
      ro.phase = 'down';
      ro.until = this.tick + 1 + this.faultRng.int(4);
      n.downUntil = null;
      if (n.up) this.stop(n, false, 'rolling restart');
      return;
    }
    const n = this.byId.get(ro.current) as WNode;
    if (ro.phase === 'down') {
      if (this.tick < ro.until) return;
      if (!n.up && !n.failed) this.starting.push(this.start(n));
      ro.phase = 'settle';
      ro.until = this.tick + 4 * ELECTION_TICKS;
      return;
    }
    // The next node goes once this one is back in a cluster with a leader, or after 4E.
    const l = this.leaderNode();
    const caughtUp = l !== null && n.up && n.driver !== null && n.driver.status().appliedIndex >= (l.driver?.status().commit ?? 0) - 1;
    if (caughtUp || this.tick >= ro.until) ro.current = null;
  }

  // -------------------------------------------------------------------------------------------
  // Workload
  // -------------------------------------------------------------------------------------------

  private workload(): void {
    const p = this.params;
    for (const c of this.clients) {
      if (c.done) continue;
      if (c.pending === null) {
        if (c.id === 'junk' ? !this.workRng.chance(0.1) : this.tick % p.proposeEveryTicks !== 0) continue;
        const payload = c.payload(c.seq + 1);
        if (payload === null) {
          c.done = true;
          continue;
        }
        c.seq++;
        c.pending = { seq: c.seq, payload, sentTick: this.tick, refused: false };
        this.submit(c, null);
      } else if (c.pending.refused || this.tick - c.pending.sentTick >= p.retryTicks) {
        // Heard nothing (or a refusal): retry the same (client, seq), possibly at another node.
        this.submit(c, null);
      }
    }
  }

  private submit(c: Client, to: WNode | null): void {
    const pend = c.pending;
    if (!pend) return;
    const up = this.upNodes();
    const n = to ?? (up.length > 0 ? this.workRng.pick(up) : null);
    pend.sentTick = this.tick;
    pend.refused = false;
    if (!n?.driver) return;
    this.stats.proposals++;
    const { seq, payload } = pend;
    const id = n.id;
    n.driver.propose(c.id, seq, payload, this.params.retryTicks * TICK_MS).then(
      (o: Outcome) => this.guarded(() => this.outcome(c, id, seq, payload, o)),
      (e: unknown) => this.guarded(() => fail('node-fatal', `${id}: propose rejected: ${String(e)}`)),
    );
  }

  private outcome(c: Client, node: NodeId, seq: number, payload: Uint8Array, o: Outcome): void {
    if (!o.ok) {
      if (c.pending?.seq === seq) c.pending.refused = true;
      return;
    }
    this.chk.ack(node, c.id, seq, o.index, payload);
    this.stats.acked++;
    this.trace.add(this.step, 'ack', node, [seq, o.index], c.id);
    if (c.pending?.seq === seq) c.pending = null;
    if (c === this.liveClient) this.liveAcked = true;
  }

  // -------------------------------------------------------------------------------------------
  // Checks after every step
  // -------------------------------------------------------------------------------------------

  private check(): void {
    if (this.violation) throw this.violation;
    for (const n of this.nodes) {
      const a = n.alarms;
      if (a.two_leaders > 0 || a.two_roots > 0) fail('false-alarm', `${n.id} raised a split-brain alarm (${a.two_leaders > 0 ? 'two leaders' : 'two state roots'}) in a run where no safety property failed`);
      if (a.equivocation > 0) fail('false-alarm', `${n.id} found equivocation evidence (two signed votes or announcements for one slot)`);
      if (a.rollback > 0 && !n.everRestored) fail('false-alarm', `${n.id} raised a rollback alarm though its store never went backwards (crashes lose only unsynced writes)`);
      if (!n.up || !n.driver || !n.store || !n.vote) continue;
      const d = n.driver;
      const st = n.store;
      const s = d.status();
      const snapIndex = st.snapshot().meta.index;
      const chains = n.chains;
      const lastIndex = st.lastIndex();
      const chainAt = (i: number): number | undefined => (i >= snapIndex && i <= lastIndex ? chains.get(i) : undefined);
      if (s.role === 'leader') this.chk.leader(n.id, s.term, chainAt, snapIndex);
      // The stored commit index: it names entries of the stored log (the core's may name entries
      // it has appended but not yet written, while the store still holds the ones they replace).
      this.chk.committed(n.id, st.hardState().commit, chainAt);
      // The real gate's opinion (a fault switch may make the driver ignore it).
      const votesNow = !s.recovering && n.guard !== null && n.guard.mayVote(d.durableState());
      if (votesNow && n.unprovenRestore && this.undetectedRestore === null) {
        // A store restored out of band votes with no peer having proved it behind: from here on,
        // safety rests on what the restore happened to keep (see the header).
        this.undetectedRestore = { node: n.id, step: this.step };
        this.trace.add(this.step, 'restore', n.id, [], 'votes again, its restore unproven by any answer');
      }
      if (!n.voteAllowedSeen && votesNow) {
        n.voteAllowedSeen = true;
        this.stats.recoveryTicksMax = Math.max(this.stats.recoveryTicksMax, this.tick - n.startedTick);
      }
      if (n.unsettled !== null && votesNow && s.appliedIndex >= n.settleIndex && s.leader !== null) n.unsettled = null;
      // A recovery begun since (a rollback its peers proved late): unsettled again, as the store says.
      if (n.unsettled === null && s.recovering) {
        n.unsettled = n.unprovenRestore ? 'unmarked' : 'marked';
        n.settleIndex = Math.max(n.settleIndex, this.chk.committedHigh);
      }
      if (!n.rollbackCounted && n.guard?.monitor.gate.verdict().kind === 'rolled_back') {
        n.rollbackCounted = true;
        n.unprovenRestore = false;
        this.stats.rollbacksDetected++;
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Heal and liveness
  // -------------------------------------------------------------------------------------------

  private heal(): void {
    this.faultsOn = false;
    this.net.healLinks();
    this.exNet.healLinks();
    this.partitionEnd = null;
    const delay = Math.min(this.params.delayStepsMax, raft.simHealedDelayTicksMax * this.params.stepsPerTick);
    const calm = { dropRate: 0, duplicateRate: 0, delayStepsMax: delay, longDelayRate: 0, longDelayStepsMax: 1, fifo: true };
    this.net.faults = { ...calm };
    this.exNet.faults = { ...calm };
    this.rolling = null;
    for (const n of this.nodes) {
      n.pausedUntilStep = 0;
      n.disk.calm();
      if (!n.up && !n.failed) n.downUntil = this.tick;
    }
    this.trace.add(this.step, 'heal', '-', [], 'all faults healed');
  }

  private async liveness(): Promise<void> {
    this.heal();
    const start = this.tick;
    for (let k = 0; k < wholeLivenessTicksMax; k++) {
      const c = this.liveClient;
      if (!this.liveAcked && (c.pending === null || c.pending.refused || this.tick - c.pending.sentTick >= 2)) {
        if (c.pending === null) {
          c.seq = 1;
          c.pending = { seq: 1, payload: c.payload(1) as Uint8Array, sentTick: this.tick, refused: false };
        }
        this.submit(c, this.leaderNode());
      }
      await this.runTick();
      if (this.liveAcked) {
        this.stats.livenessTicks = this.tick - start;
        this.trace.add(this.step, 'liveness', '-', [this.stats.livenessTicks], 'new proposal committed');
        return;
      }
    }
    const l = this.leaderNode();
    const waiting = this.nodes.filter((n) => n.up && n.vote && n.driver && (n.driver.status().recovering || !n.vote.mayVote(n.driver.durableState()))).map((n) => n.id);
    const failed = this.nodes.filter((n) => n.failed).map((n) => n.id);
    // The operator's case of the runbook (README, "Restarts, restores and the rollback gate"): a
    // node whose store may have lost a vote (a marked restore, a proven rollback) waits for every
    // voter by design, since only the candidate that got a vote can tell of it; a voter failed for
    // good never answers. Two faults at once (a lost store and a lost voter); the cluster needs the
    // operator (`member remove` of the dead voter, or `--trust-store`), not a bug in the rule.
    const failedIds = new Set(failed);
    const operatorCase = waiting.length > 0 && failed.length > 0 && this.nodes.filter((n) => waiting.includes(n.id)).every((n) => {
      const v = n.guard?.monitor.gate.verdict();
      return v !== undefined && v.kind !== 'consistent' && v.missing.length > 0 && v.missing.every((m) => failedIds.has(m)) && (v.kind === 'rolled_back' || n.guard?.monitor.gate.history === 'vote_lost');
    });
    if (operatorCase) {
      this.stats.operatorWaits++;
      this.trace.add(this.step, 'liveness', '-', [], `${waiting.join(',')} wait for voters failed for good (${failed.join(',')}): the runbook's operator case`);
      return;
    }
    fail('liveness', `no new proposal committed within ${wholeLivenessTicksMax} ticks of healing (leader: ${l ? l.id : 'none'}; ` +
      `failed for good: ${failed.join(',') || 'none'}; vote withheld by: ${waiting.join(',') || 'none'})`);
  }
}

function decodeEventOrNull(bytes: Uint8Array): ReturnType<typeof decodeEvent> | null {
  try {
    return decodeEvent(bytes);
  } catch {
    return null; // the ledger refused it already; there is no statement to check
  }
}

/** One whole-node run: a pure function of its options. */
export async function runWholeSim(o: WholeOptions): Promise<WholeResult> {
  return new WholeCluster(o).run();
}


