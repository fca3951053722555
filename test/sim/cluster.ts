/**
 * The deterministic cluster simulator (after TigerBeetle's VOPR): the real Raft core on every
 * node, over a simulated network, simulated disks and a simulated clock, with faults, membership
 * changes, leader transfers and a client workload all drawn from one seed. The checkers run after
 * every event; a run ends with a liveness phase in which every fault is healed and a leader must
 * commit a new proposal within a bound derived from the election timeout.
 *
 * The driver loop per node is the one types.ts documents: persist (hard state, entries, snapshot),
 * then — once the write is durable — send the Ready's messages, apply its committed entries and
 * advance. While a node's fsync is in flight its Ready stays outstanding and its messages are
 * held; it still receives messages and ticks, as a real node's event loop would.
 */
import { SeededRng } from '../../raft/core/rng.js';
import { emptyConf } from '../../raft/core/storage.js';
import type { ConfChange, ConfState, Entry, Message, NodeId, RaftApi, RaftConfig, Ready, Status } from '../../raft/core/types.js';
import { raft } from '../../proto/limits.js';
import { AppState, decodeOp, encodeOp } from './app.js';
import { Checkers, SimViolation, fail, type CheckerName } from './checkers.js';
import { decodeConfChange, newCore } from './core.js';
import { SimDisk } from './disk.js';
import { entryDigest } from './hash.js';
import { SimNetwork } from './network.js';
import { drawParams, livenessTicksMax, type SimOptions, type SimParams } from './options.js';
import { Trace } from './trace.js';

/** Message types only a leader of `term` sends: seeing one is seeing a leader. */
const LEADER_MESSAGES = new Set<Message['type']>(['app', 'heartbeat', 'snap', 'timeoutNow']);

/** The client id reserved for the liveness phase's proposal. */
const LIVENESS_CLIENT = 1_000_000;

export interface FaultStats {
  dropped: number;
  duplicated: number;
  delayedLong: number;
  cut: number;
  partitions: number;
  asymmetric: number;
  isolations: number;
  crashes: number;
  torn: number;
  lostWrites: number;
  fsyncStalls: number;
  clockFaults: number;
  forgottenVotes: number;
}

export interface SimStats {
  ticks: number;
  steps: number;
  elections: number;
  committed: number;
  acked: number;
  proposals: number;
  proposalsRefused: number;
  confChanges: number;
  confRefused: number;
  /** Membership changes seen applied, and of those the ones entering a joint configuration. */
  confApplied: number;
  jointApplied: number;
  transfers: number;
  retired: number;
  snapshots: number;
  readsIssued: number;
  readsServed: number;
  livenessTicks: number | null;
  faults: FaultStats;
}

export interface SimResult {
  readonly options: SimOptions;
  readonly violation: { readonly checker: CheckerName; readonly detail: string } | null;
  readonly tick: number;
  readonly step: number;
  readonly traceHash: string;
  readonly traceTail: readonly string[];
  readonly stats: SimStats;
}

interface SimNode {
  readonly id: NodeId;
  core: RaftApi | null;
  disk: SimDisk;
  app: AppState;
  alive: boolean;
  retired: boolean;
  downUntilTick: number;
  /** The outstanding Ready and the step its fsync completes. */
  pending: { rd: Ready; doneAt: number } | null;
  /** Step offset of this node's ticks within a tick (clocks are not in phase). */
  readonly phase: number;
  skipTicks: number;
  extraTicks: number;
  stallNext: boolean;
  /** A crash scheduled for this step (a new leader failing early), or null. */
  crashAtStep: number | null;
  /** The last term whose leadership by this node has been checked for completeness. */
  completeTerm: number;
  /** Reads answered with a read index, waiting until this node has applied through it. */
  readsWaiting: { read: PendingRead; index: number }[];
}

/** A linearizable read: issued at `node` when `ackedAtIssue` had been acknowledged. */
interface PendingRead {
  readonly id: number;
  readonly node: NodeId;
  readonly issuedTick: number;
  readonly ackedAtIssue: ReadonlyMap<number, number>;
}

interface Client {
  readonly id: number;
  seq: number;
  /** The outstanding proposal; `refused` when the node said no at once (retry next tick). */
  pending: { seq: number; sentTick: number; target: NodeId; refused: boolean } | null;
}

function members(c: ConfState): NodeId[] {
  return [...new Set([...c.voters, ...c.votersOutgoing, ...c.learners, ...c.learnersNext])];
}

export interface SimHooks {
  /** Run the checkers (default true); the benchmark turns them off to time the core alone. */
  readonly checks?: boolean;
  /** Instead of the client workload, propose this many entries on the leader every tick. */
  readonly firehosePerTick?: number;
  /** Skip the liveness phase (the benchmark). */
  readonly skipLiveness?: boolean;
  /** Override parameters drawn from the seed (the benchmark uses the production limits). */
  readonly params?: Partial<SimParams>;
}

export class Simulation {
  readonly params: SimParams;
  private readonly checks: boolean;
  private readonly chk = new Checkers();
  private readonly trace = new Trace();
  private readonly net: SimNetwork;
  private readonly faultRng: SeededRng;
  private readonly workRng: SeededRng;
  private readonly coreRng: SeededRng;
  private readonly diskRng: SeededRng;
  private readonly readRng: SeededRng;
  /** Reads issued and not yet answered, by id. */
  private readonly reads = new Map<number, PendingRead>();
  private nextReadId = 1;
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly order: SimNode[] = [];
  private readonly clients: Client[] = [];
  private readonly liveClient: Client = { id: LIVENESS_CLIENT, seq: 0, pending: null };
  private readonly removedAt = new Map<NodeId, number>();
  /** The leader's applied index when a removed node was first seen outside its configuration. */
  private readonly excludedAt = new Map<NodeId, number>();
  private readonly confSeen = new Set<number>();
  private nextId: number;
  private readonly idsMax: number;
  private now = 0;
  private tick = 0;
  private faultsOn = true;
  private liveApplied = false;
  private partitionEndTick: number | null = null;
  readonly stats: SimStats;

  constructor(
    readonly options: SimOptions,
    private readonly hooks: SimHooks = {},
  ) {
    const root = new SeededRng(options.seed);
    this.params = { ...drawParams(root.fork(), options), ...hooks.params };
    this.net = new SimNetwork(root.fork(), {
      dropRate: this.params.dropRate,
      duplicateRate: this.params.duplicateRate,
      delayStepsMax: this.params.delayStepsMax,
      longDelayRate: this.params.longDelayRate,
      longDelayStepsMax: this.params.longDelayStepsMax,
      fifo: false,
    });
    this.faultRng = root.fork();
    this.workRng = root.fork();
    this.coreRng = root.fork();
    this.diskRng = root.fork();
    this.readRng = root.fork();
    this.checks = hooks.checks ?? true;
    this.stats = {
      ticks: 0, steps: 0, elections: 0, committed: 0, acked: 0, proposals: 0, proposalsRefused: 0,
      confChanges: 0, confRefused: 0, confApplied: 0, jointApplied: 0, transfers: 0, retired: 0, snapshots: 0, readsIssued: 0, readsServed: 0, livenessTicks: null,
      faults: {
        dropped: 0, duplicated: 0, delayedLong: 0, cut: 0, partitions: 0, asymmetric: 0, isolations: 0, crashes: 0,
        torn: 0, lostWrites: 0, fsyncStalls: 0, clockFaults: 0, forgottenVotes: 0,
      },
    };
    const voters: NodeId[] = [];
    for (let i = 1; i <= options.nodes; i++) voters.push(`n${i}`);
    const conf: ConfState = { voters, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
    for (const id of voters) this.addNode(id, conf);
    this.nextId = options.nodes + 1;
    this.idsMax = options.nodes + this.params.sparesMax;
    for (let c = 1; c <= this.params.clients; c++) this.clients.push({ id: c, seq: 0, pending: null });
    const p = this.params;
    this.trace.add(0, 'config', '-', [options.seed, options.nodes, options.ticks],
      `drop ${p.dropRate} dup ${p.duplicateRate} delay ${p.delayStepsMax} preVote ${p.preVote} checkQuorum ${p.checkQuorum}`);
  }

  // -------------------------------------------------------------------------------------------
  // Running
  // -------------------------------------------------------------------------------------------

  run(): SimResult {
    let violation: SimResult['violation'] = null;
    try {
      for (const n of this.order) this.boot(n);
      for (let t = 0; t < this.options.ticks; t++) this.runTick();
      if (!this.hooks.skipLiveness) this.liveness();
    } catch (e) {
      if (!(e instanceof SimViolation)) throw e;
      violation = { checker: e.checker, detail: e.detail };
      this.trace.add(this.now, 'violation', '-', [], `${e.checker}: ${e.detail}`);
    }
    return this.result(violation);
  }

  private result(violation: SimResult['violation']): SimResult {
    const f = this.stats.faults;
    f.dropped = this.net.stats.dropped;
    f.duplicated = this.net.stats.duplicated;
    f.delayedLong = this.net.stats.delayedLong;
    f.cut = this.net.stats.cut;
    this.stats.ticks = this.tick;
    this.stats.steps = this.now;
    this.stats.elections = this.chk.electionsSeen();
    this.stats.committed = this.checks ? this.chk.committedHigh : this.highestCommit();
    return {
      options: this.options,
      violation,
      tick: this.tick,
      step: this.now,
      traceHash: this.trace.hash(),
      traceTail: this.trace.tail(),
      stats: this.stats,
    };
  }

  private highestCommit(): number {
    let c = 0;
    for (const n of this.order) if (n.core) c = Math.max(c, n.core.status().commit);
    return c;
  }

  private runTick(): void {
    this.tick++;
    this.onTick();
    for (let s = 0; s < this.params.stepsPerTick; s++) this.step();
  }

  /** Everything decided once per tick: restarts, faults, clients, membership. */
  private onTick(): void {
    for (const n of this.order) if (!n.alive && !n.retired && this.tick >= n.downUntilTick) this.restart(n);
    if (this.faultsOn) this.injectFaults();
    this.retireRemoved();
    if (this.hooks.firehosePerTick !== undefined) this.firehose(this.hooks.firehosePerTick);
    else this.workload();
    this.expireReads();
    if (this.params.readRate > 0 && this.readRng.chance(this.params.readRate)) this.issueRead();
    if (this.faultsOn) {
      if (this.params.confChangeRate > 0 && this.workRng.chance(this.params.confChangeRate)) this.changeMembership();
      if (this.params.transferRate > 0 && this.workRng.chance(this.params.transferRate)) this.transferLeader();
    }
  }

  private step(): void {
    const now = ++this.now;
    for (const n of this.order) {
      if (n.alive && n.crashAtStep !== null && n.crashAtStep <= now) {
        n.crashAtStep = null;
        if (this.faultsOn) {
          const [lo, hi] = this.params.downTicks;
          this.crash(n, lo + this.faultRng.int(hi - lo + 1));
        }
      }
    }
    for (const n of this.order) {
      if (n.alive && n.pending !== null && n.pending.doneAt <= now) {
        this.complete(n, true);
        this.drain(n);
      }
    }
    for (const m of this.net.due(now)) this.deliver(m);
    for (const n of this.order) if (n.alive && now % this.params.stepsPerTick === n.phase) this.tickNode(n);
    if (this.checks) this.checkLeadersByStatus();
  }

  private deliver(m: Message): void {
    const n = this.nodes.get(m.to);
    if (!n || !n.alive || !n.core) return;
    this.trace.deliver(this.now, m);
    this.callCore(n, 'step', (c) => c.step(m));
    this.drain(n);
  }

  private tickNode(n: SimNode): void {
    if (n.skipTicks > 0) {
      n.skipTicks--;
      return;
    }
    for (let k = n.extraTicks > 0 ? 2 : 1; k > 0; k--) {
      this.trace.mix(this.now, 'tick', n.id);
      this.callCore(n, 'tick', (c) => c.tick());
      this.drain(n);
    }
    if (n.extraTicks > 0) n.extraTicks--;
  }

  private callCore<T>(n: SimNode, what: string, f: (c: RaftApi) => T): T {
    const core = n.core;
    if (!core) throw new Error(`simulator: ${n.id} has no core`);
    try {
      return f(core);
    } catch (e) {
      if (e instanceof SimViolation) throw e;
      fail('core-threw', `${n.id} ${what}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private checkLeadersByStatus(): void {
    for (const n of this.order) {
      if (!n.alive || !n.core) continue;
      const s = n.core.status();
      if (s.role === 'leader') this.chk.leader(n.id, s.term);
    }
  }

  // -------------------------------------------------------------------------------------------
  // The driver loop: persist, (fsync), send, apply, advance
  // -------------------------------------------------------------------------------------------

  private drain(n: SimNode): void {
    // Bounded: a core that always has a Ready is caught by the liveness phase, not a hang here.
    for (let k = 0; k < 16 && n.alive && n.pending === null; k++) {
      if (!this.callCore(n, 'hasReady', (c) => c.hasReady())) return;
      const rd = this.callCore(n, 'ready', (c) => c.ready());
      this.persist(n, rd);
    }
  }

  private persist(n: SimNode, rd: Ready): void {
    const core = n.core as RaftApi;
    const st = this.checks || rd.softState ? core.status() : null;
    if (this.checks) {
      if (st && st.role === 'leader') this.chk.leader(n.id, st.term);
      for (const m of rd.messages) if (LEADER_MESSAGES.has(m.type)) this.chk.leader(m.from, m.term);
    }
    const snapChain = rd.snapshot && this.checks ? this.chk.snapshotChain(n.id, rd.snapshot.meta.index, rd.snapshot.meta.term) : 0;
    let written;
    try {
      written = n.disk.write({ snapshot: rd.snapshot, snapshotChain: snapChain, entries: rd.entries, hardState: rd.hardState });
    } catch (e) {
      fail('driver-contract', `${n.id} Ready entries do not continue its log: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (rd.entries.length > 0 || rd.snapshot || rd.softState) {
      this.trace.add(this.now, 'ready', n.id, [st?.term ?? 0, rd.entries.length, rd.hardState?.commit ?? -1, rd.messages.length],
        rd.softState ? `${rd.softState.role}${rd.snapshot ? ` snap@${rd.snapshot.meta.index}` : ''}` : rd.snapshot ? `snap@${rd.snapshot.meta.index}` : '');
    }
    if (rd.softState?.role === 'leader' && this.faultsOn && n.crashAtStep === null && this.params.newLeaderCrashRate > 0 && this.faultRng.chance(this.params.newLeaderCrashRate)) {
      n.crashAtStep = this.now + 1 + this.faultRng.int(2 * this.params.stepsPerTick);
    }
    if (this.checks) {
      this.chk.written(n.id, written);
      if (rd.hardState) this.chk.committed(n.id, rd.hardState.commit, rd.hardState.term, n.disk.view);
      if (st && st.role === 'leader' && n.completeTerm !== st.term) {
        n.completeTerm = st.term;
        this.chk.leaderComplete(n.id, st.term, n.disk.view);
      }
    }
    // Figure 2: term, vote and log are on stable storage before any message that depends on them.
    const mustSync = rd.mustSync || rd.snapshot !== null;
    if (!mustSync) {
      this.complete(n, false, rd);
      return;
    }
    let latency: number;
    if (n.stallNext) {
      n.stallNext = false;
      const [lo, hi] = this.params.stallSteps;
      latency = lo + this.diskRng.int(hi - lo + 1);
      this.stats.faults.fsyncStalls++;
      this.trace.add(this.now, 'stall', n.id, [latency]);
    } else {
      latency = this.params.fsyncStepsMax > 0 ? this.diskRng.int(this.params.fsyncStepsMax + 1) : 0;
    }
    n.pending = { rd, doneAt: this.now + latency };
    if (latency === 0) this.complete(n, true);
  }

  /** The write is durable (or needed no sync): send, apply, advance. */
  private complete(n: SimNode, synced: boolean, direct?: Ready): void {
    const rd = direct ?? n.pending?.rd;
    if (!rd) throw new Error(`simulator: ${n.id} has nothing to complete`);
    if (synced) n.disk.sync();
    n.pending = null;
    if (rd.snapshot) {
      n.app = this.restoreApp(n, rd.snapshot.meta.index, rd.snapshot.data);
    }
    for (const m of rd.messages) this.net.send(m, this.now);
    for (const e of rd.committedEntries) this.applyEntry(n, e);
    this.callCore(n, 'advance', (c) => c.advance(rd));
    for (const rs of rd.readStates) this.readAnswered(n, rs.context, rs.index);
    if (rd.committedEntries.length > 0 || rd.snapshot) {
      this.maybeSnapshot(n);
      this.ackClients(n);
      if (this.checks) this.chk.ackedKept(n.id, n.app);
    }
    if (n.readsWaiting.length > 0) this.serveReads(n);
  }

  // -------------------------------------------------------------------------------------------
  // Linearizable reads (ReadIndex, thesis §6.4)
  // -------------------------------------------------------------------------------------------

  private issueRead(): void {
    const live = this.liveNodes();
    if (live.length === 0 || this.reads.size >= 16) return;
    const n = this.readRng.pick(live);
    const id = this.nextReadId++;
    const read: PendingRead = { id, node: n.id, issuedTick: this.tick, ackedAtIssue: this.checks ? this.chk.ackedNow() : new Map() };
    this.reads.set(id, read);
    this.stats.readsIssued++;
    const ctx = new Uint8Array(4);
    new DataView(ctx.buffer).setUint32(0, id);
    this.callCore(n, 'readIndex', (c) => c.readIndex(ctx));
    this.drain(n);
  }

  private readAnswered(n: SimNode, ctx: Uint8Array, index: number): void {
    if (ctx.length !== 4) return;
    const id = new DataView(ctx.buffer, ctx.byteOffset, 4).getUint32(0);
    const read = this.reads.get(id);
    if (!read || read.node !== n.id) return;
    this.reads.delete(id);
    this.trace.add(this.now, 'read', n.id, [id, index]);
    n.readsWaiting.push({ read, index });
  }

  /** Serve every waiting read whose read index this node has applied. */
  private serveReads(n: SimNode): void {
    const still: SimNode['readsWaiting'] = [];
    for (const w of n.readsWaiting) {
      if (n.app.applied < w.index) {
        still.push(w);
        continue;
      }
      if (this.checks) this.chk.readSeesAcked(n.id, w.read.id, w.read.ackedAtIssue, w.index, n.app);
      this.stats.readsServed++;
    }
    n.readsWaiting = still;
  }

  /** A read unanswered for a while was lost with a message or a crash; the client gives up. */
  private expireReads(): void {
    for (const [id, r] of this.reads) if (this.tick - r.issuedTick > 4 * raft.electionTicksMin) this.reads.delete(id);
  }

  private restoreApp(n: SimNode, index: number, data: Uint8Array): AppState {
    // The bootstrap snapshot (membership only, at index 1) carries no state machine image.
    const app = data.length === 0 ? AppState.empty(index) : AppState.decode(data);
    if (app.applied !== index) fail('driver-contract', `${n.id} snapshot at ${index} carries state applied through ${app.applied}`);
    if (this.checks) this.chk.restored(n.id, index, app.root);
    return app;
  }

  private applyEntry(n: SimNode, e: Entry): void {
    if (e.index !== n.app.applied + 1) fail('driver-contract', `${n.id} asked to apply index ${e.index} after ${n.app.applied}`);
    const kind = n.app.apply(e);
    if (this.checks) this.chk.applied(n.id, e, entryDigest(e), n.app.root);
    if (kind === 'conf' && !this.confSeen.has(e.index)) {
      this.confSeen.add(e.index);
      this.noteRemovals(e);
    }
    if (kind === 'op' || kind === 'duplicate') {
      const op = decodeOp(e.data);
      if (op && op.client === LIVENESS_CLIENT) this.liveApplied = true;
    }
  }

  private noteRemovals(e: Entry): void {
    let cc: ConfChange;
    try {
      cc = decodeConfChange(e.data);
    } catch {
      return;
    }
    for (const c of cc.changes) if (c.type === 'remove' && !this.removedAt.has(c.node)) this.removedAt.set(c.node, e.index);
    if (cc.changes.length > 0) this.stats.confApplied++;
    if (cc.changes.length > 1) this.stats.jointApplied++;
    this.trace.add(this.now, 'conf', '-', [e.index], cc.changes.map((c) => `${c.type} ${c.node}`).join(', ') || 'leave joint');
  }

  /** The state machine snapshots itself every so many entries and compacts the log behind it. */
  private maybeSnapshot(n: SimNode): void {
    const applied = n.app.applied;
    if (applied - n.disk.view.snapshotIndex() < this.params.snapshotEveryEntries) return;
    const conf = this.callCore(n, 'status', (c) => c.status()).conf;
    n.disk.snapshotAndCompact(applied, conf, n.app.encode(), applied - this.params.compactionKeepEntries);
    this.stats.snapshots++;
  }

  // -------------------------------------------------------------------------------------------
  // Nodes: boot, crash, restart, retire
  // -------------------------------------------------------------------------------------------

  private addNode(id: NodeId, conf: ConfState): SimNode {
    const n: SimNode = {
      id,
      core: null,
      disk: new SimDisk(conf, this.checks),
      app: new AppState(),
      alive: false,
      retired: false,
      downUntilTick: 0,
      pending: null,
      phase: this.faultRng.int(this.params.stepsPerTick),
      skipTicks: 0,
      extraTicks: 0,
      stallNext: false,
      crashAtStep: null,
      completeTerm: 0,
      readsWaiting: [],
    };
    this.nodes.set(id, n);
    this.order.push(n);
    return n;
  }

  /** Build the core from the node's durable disk image (a fresh start or a restart). */
  private boot(n: SimNode): void {
    const view = n.disk.view;
    const p = this.params;
    const f = this.options.fault;
    const cfg: RaftConfig = {
      id: n.id,
      storage: view.store,
      rng: this.coreRng.fork(),
      electionTicks: raft.electionTicksMin,
      heartbeatTicks: raft.heartbeatTicks,
      preVote: p.preVote,
      checkQuorum: p.checkQuorum,
      applied: view.snapshotIndex(),
      appendBytesMax: p.appendBytesMax,
      inflightMsgsMax: p.inflightMsgsMax,
      inflightBytesMax: p.inflightBytesMax,
      uncommittedBytesMax: p.uncommittedBytesMax,
      snapshotChunkBytes: p.snapshotChunkBytes,
      readIndexPendingMax: raft.readIndexPendingMax,
      faults: {
        countStaleTermVotes: f === 'countStaleTermVotes',
        commitOldTermByCounting: f === 'commitOldTermByCounting',
        voteIgnoringLog: f === 'voteIgnoringLog',
      },
    };
    n.alive = true;
    n.pending = null;
    n.completeTerm = 0;
    try {
      n.core = newCore(cfg);
    } catch (e) {
      fail('core-threw', `${n.id} constructor: ${e instanceof Error ? e.message : String(e)}`);
    }
    n.app = this.restoreApp(n, view.snapshotIndex(), view.store.snapshot().data);
    if (this.checks) this.chk.ackedKept(n.id, n.app);
  }

  private crash(n: SimNode, downTicks: number): void {
    n.alive = false;
    n.core = null;
    n.pending = null;
    n.crashAtStep = null;
    n.readsWaiting = [];
    n.downUntilTick = this.tick + downTicks;
    const out = n.disk.crash(this.diskRng, this.params.tornRate > 0 && this.diskRng.chance(this.params.tornRate));
    this.stats.faults.crashes++;
    this.stats.faults.lostWrites += out.lostBatches;
    if (out.torn) this.stats.faults.torn++;
    this.trace.add(this.now, 'crash', n.id, [downTicks, out.lostBatches], out.torn ? 'torn' : '');
  }

  private restart(n: SimNode): void {
    if (this.options.fault === 'forgetVoteOnRestart' && n.disk.forgetVote()) this.stats.faults.forgottenVotes++;
    const hs = n.disk.durable.hardState();
    this.trace.add(this.now, 'restart', n.id, [hs.term, hs.commit, n.disk.durable.lastIndex()], `vote ${hs.vote ?? '-'}`);
    this.boot(n);
  }

  /**
   * A removed node is shut down for good, as an operator would — but only once every voter of the
   * configuration without it has that configuration durably committed. The core adopts a
   * configuration when it applies it (etcd's rule, not the thesis's "use the latest in the log"),
   * so a voter that has not yet learned the leave-joint entry is committed still needs the
   * outgoing half, removed node included, to elect a leader. Ids are never reused, so the
   * removal is final.
   */
  private retireRemoved(): void {
    if (this.removedAt.size === 0) return;
    const lead = this.leader();
    if (!lead) return;
    const conf = lead.status.conf;
    for (const [id, at] of this.removedAt) {
      const n = this.nodes.get(id);
      if (!n || n.retired || id === lead.node.id || lead.status.applied < at || members(conf).includes(id)) continue;
      const ex = this.excludedAt.get(id) ?? lead.status.applied;
      this.excludedAt.set(id, ex);
      const known = conf.voters.every((v) => {
        const x = this.nodes.get(v);
        return x !== undefined && !x.retired && x.disk.durable.hardState().commit >= ex;
      });
      if (!known) continue;
      n.retired = true;
      n.alive = false;
      n.core = null;
      n.pending = null;
      this.stats.retired++;
      this.trace.add(this.now, 'retire', id, [at, ex]);
    }
  }

  /** The live node that leads the highest term, if any. */
  private leader(): { node: SimNode; status: Status } | null {
    let best: { node: SimNode; status: Status } | null = null;
    for (const n of this.order) {
      if (!n.alive || !n.core) continue;
      const s = n.core.status();
      if (s.role === 'leader' && (!best || s.term > best.status.term)) best = { node: n, status: s };
    }
    return best;
  }

  private liveNodes(): SimNode[] {
    return this.order.filter((n) => n.alive && n.core !== null);
  }

  // -------------------------------------------------------------------------------------------
  // Faults
  // -------------------------------------------------------------------------------------------

  private injectFaults(): void {
    const p = this.params;
    const r = this.faultRng;
    if (this.partitionEndTick !== null && this.tick >= this.partitionEndTick) {
      this.net.healLinks();
      this.partitionEndTick = null;
      this.trace.add(this.now, 'heal', '-');
    }
    if (this.partitionEndTick === null && p.partitionRate > 0 && r.chance(p.partitionRate)) this.partition();
    if (p.crashRate > 0 && r.chance(p.crashRate)) {
      const up = this.order.filter((n) => n.alive && !n.retired);
      const down = this.order.filter((n) => !n.alive && !n.retired).length;
      // At most half the nodes down at once: a majority may be lost (safety is still checked) but
      // the cluster is not kept dark for the whole run.
      if (up.length > 0 && down < Math.ceil(this.order.length / 2)) {
        const [lo, hi] = p.downTicks;
        // Half the crashes hit a node mid-fsync, the window where writes are lost or torn.
        const syncing = up.filter((n) => n.pending !== null);
        const victim = syncing.length > 0 && r.chance(0.5) ? r.pick(syncing) : r.pick(up);
        this.crash(victim, lo + r.int(hi - lo + 1));
      }
    }
    if (p.stallRate > 0 && r.chance(p.stallRate)) {
      const up = this.liveNodes();
      if (up.length > 0) r.pick(up).stallNext = true;
    }
    if (p.clockFaultRate > 0 && r.chance(p.clockFaultRate)) {
      const up = this.liveNodes();
      if (up.length > 0) {
        const n = r.pick(up);
        // A paused clock (a stalled process) or a fast one; Raft's safety must not depend on either.
        if (r.chance(0.5)) n.skipTicks += 1 + r.int(2 * raft.electionTicksMin);
        else n.extraTicks += 1 + r.int(raft.electionTicksMin);
        this.stats.faults.clockFaults++;
        this.trace.add(this.now, 'clock', n.id, [n.skipTicks, n.extraTicks]);
      }
    }
  }

  private partition(): void {
    const p = this.params;
    const r = this.faultRng;
    const ids = this.order.filter((n) => !n.retired).map((n) => n.id);
    if (ids.length < 2) return;
    const [lo, hi] = p.partitionTicks;
    this.partitionEndTick = this.tick + lo + r.int(hi - lo + 1);
    const kind = r.int(3);
    const lead = this.leader();
    if (kind === 0 && lead) {
      // The leader is cut off from everyone: the rest must elect a new one; the old one must not
      // commit anything meanwhile.
      this.net.partition([lead.node.id], ids.filter((id) => id !== lead.node.id));
      this.stats.faults.isolations++;
      this.trace.add(this.now, 'isolate', lead.node.id, [this.partitionEndTick]);
    } else if (kind === 1) {
      const links = 1 + r.int(ids.length);
      const cut: string[] = [];
      for (let k = 0; k < links; k++) {
        const from = r.pick(ids);
        const to = r.pick(ids);
        if (from === to) continue;
        this.net.cut(from, to);
        cut.push(`${from}>${to}`);
      }
      this.stats.faults.asymmetric++;
      this.trace.add(this.now, 'partition', '-', [this.partitionEndTick], `one-way ${cut.join(' ')}`);
    } else {
      const shuffled = ids.slice();
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = r.int(i + 1);
        [shuffled[i], shuffled[j]] = [shuffled[j] as NodeId, shuffled[i] as NodeId];
      }
      const k = 1 + r.int(shuffled.length - 1);
      const a = shuffled.slice(0, k);
      const b = shuffled.slice(k);
      this.net.partition(a, b);
      this.stats.faults.partitions++;
      this.trace.add(this.now, 'partition', '-', [this.partitionEndTick], `${a.join(',')} | ${b.join(',')}`);
    }
  }

  /** Every fault ends: links, loss, stalls, clocks; every crashed node restarts from its disk. */
  private heal(): void {
    this.faultsOn = false;
    this.net.healLinks();
    this.partitionEndTick = null;
    this.net.faults = {
      dropRate: 0,
      duplicateRate: 0,
      delayStepsMax: Math.min(this.params.delayStepsMax, raft.simHealedDelayTicksMax * this.params.stepsPerTick),
      longDelayRate: 0,
      longDelayStepsMax: 1,
      fifo: true,
    };
    for (const n of this.order) {
      n.skipTicks = 0;
      n.extraTicks = 0;
      n.stallNext = false;
      n.crashAtStep = null;
      if (n.pending) n.pending.doneAt = Math.min(n.pending.doneAt, this.now + 1);
      if (!n.alive && !n.retired) this.restart(n);
    }
    this.trace.add(this.now, 'heal', '-', [], 'all faults healed');
  }

  // -------------------------------------------------------------------------------------------
  // Liveness
  // -------------------------------------------------------------------------------------------

  private liveness(): void {
    this.heal();
    const start = this.tick;
    this.liveClient.seq = 1;
    this.liveClient.pending = null;
    for (let k = 1; k <= livenessTicksMax; k++) {
      const sent = (this.liveClient.pending as Client['pending'])?.sentTick ?? null;
      if (!this.liveApplied && (sent === null || this.tick - sent >= 2)) {
        const lead = this.leader();
        this.submit(this.liveClient, lead ? lead.node : null);
      }
      this.runTick();
      if (this.liveApplied) {
        this.stats.livenessTicks = this.tick - start;
        this.trace.add(this.now, 'liveness', '-', [this.stats.livenessTicks], 'new proposal committed');
        if (this.checks) for (const n of this.liveNodes()) this.chk.ackedKept(n.id, n.app);
        return;
      }
    }
    const lead = this.leader();
    fail('liveness', `no new proposal committed within ${livenessTicksMax} ticks of healing (leader now: ${lead ? `${lead.node.id} term ${lead.status.term}, commit ${lead.status.commit}` : 'none'})`);
  }

  // -------------------------------------------------------------------------------------------
  // Clients, membership changes, leader transfers
  // -------------------------------------------------------------------------------------------

  private workload(): void {
    const p = this.params;
    for (const c of this.clients) {
      if (c.pending === null) {
        if (!this.workRng.chance(p.proposeRate)) continue;
        c.seq++;
        this.submit(c, null);
      } else if (c.pending.refused || this.tick - c.pending.sentTick >= p.retryTicks) {
        // The client heard nothing: it retries the same (client, seq), possibly at another node;
        // the state machine's session makes the retry idempotent.
        this.submit(c, null);
      }
    }
  }

  private submit(c: Client, to: SimNode | null): void {
    const live = this.liveNodes();
    if (live.length === 0) return;
    const n = to ?? this.workRng.pick(live);
    const res = this.callCore(n, 'propose', (core) => core.propose(encodeOp(c.id, c.seq, this.params.payloadBytes)));
    c.pending = { seq: c.seq, sentTick: this.tick, target: n.id, refused: !res.ok };
    this.stats.proposals++;
    if (!res.ok) this.stats.proposalsRefused++;
    // Refusals (no leader known) are frequent and uninteresting: hashed, not shown in the tail.
    if (res.ok) this.trace.add(this.now, 'propose', n.id, [c.id, c.seq], res.forwarded ? 'forwarded' : `at ${res.index}`);
    else this.trace.mix(this.now, 'propose', n.id);
    this.drain(n);
  }

  /** A client sees its proposal applied by the node it asked: that is the acknowledgement. */
  private ackClients(n: SimNode): void {
    for (const c of this.clients) {
      if (c.pending === null || c.pending.target !== n.id) continue;
      const s = n.app.sessions.get(c.id);
      if (s === undefined || s.seq < c.pending.seq) continue;
      if (this.checks) this.chk.ack(c.id, c.pending.seq, s.index);
      this.stats.acked++;
      this.trace.add(this.now, 'ack', n.id, [c.id, c.pending.seq, s.index]);
      c.pending = null;
    }
  }

  private firehose(perTick: number): void {
    const lead = this.leader();
    if (!lead) return;
    const c = this.clients[0] as Client;
    for (let k = 0; k < perTick; k++) {
      c.seq++;
      const res = this.callCore(lead.node, 'propose', (core) => core.propose(encodeOp(c.id, c.seq, this.params.payloadBytes)));
      this.stats.proposals++;
      if (!res.ok) this.stats.proposalsRefused++;
    }
    this.drain(lead.node);
  }

  private changeMembership(): void {
    const lead = this.leader();
    if (!lead) return;
    const conf = lead.status.conf;
    if (conf.votersOutgoing.length > 0) return;
    const r = this.workRng;
    // Down to two voters: a two-voter joint half is where a leader that removes itself matters
    // most (the remaining voters still need its vote until they learn the change committed;
    // churn seeds 70181 and 90223 in regression-seeds.json).
    const minVoters = Math.max(2, this.options.nodes - 1);
    const others = conf.voters.filter((v) => v !== lead.node.id);
    const options: { name: string; cc: ConfChange; add?: NodeId }[] = [];
    const auto = (changes: ConfChange['changes']): ConfChange => ({ changes, transition: 'auto' });
    if (this.nextId <= this.idsMax && members(conf).length < this.options.nodes + 2) {
      const id = `n${this.nextId}`;
      options.push({ name: 'add learner', cc: auto([{ type: 'addLearner', node: id }]), add: id });
    }
    if (conf.learners.length > 0) {
      const l = r.pick(conf.learners);
      options.push({ name: 'promote', cc: auto([{ type: 'addVoter', node: l }]) });
      options.push({ name: 'remove learner', cc: auto([{ type: 'remove', node: l }]) });
      if (others.length > 0) {
        // Joint consensus (thesis §4.3): one voter in, one out, in a single change.
        options.push({ name: 'joint swap', cc: auto([{ type: 'addVoter', node: l }, { type: 'remove', node: r.pick(others) }]) });
      }
      if (conf.learners.length >= 2) {
        const l2 = r.pick(conf.learners.filter((x) => x !== l));
        options.push({ name: 'joint promote two', cc: auto([{ type: 'addVoter', node: l }, { type: 'addVoter', node: l2 }]) });
      }
    }
    if (conf.voters.length > minVoters && others.length > 0) {
      options.push({ name: 'remove voter', cc: auto([{ type: 'remove', node: r.pick(others) }]) });
      options.push({ name: 'demote voter', cc: auto([{ type: 'addLearner', node: r.pick(others) }]) });
      // The leader removes itself (thesis §4.2.2): it steps down once the change is applied.
      options.push({ name: 'remove leader', cc: auto([{ type: 'remove', node: lead.node.id }]) });
    }
    if (conf.learners.length > 0 && others.length > 0) {
      // A voter demoted inside a joint change stays a voter of the outgoing half until it is left
      // (confchange.ts: learnersNext).
      options.push({ name: 'joint demote and promote', cc: auto([{ type: 'addLearner', node: r.pick(others) }, { type: 'addVoter', node: r.pick(conf.learners) }]) });
    }
    if (options.length === 0) return;
    const choice = r.pick(options);
    const res = this.callCore(lead.node, 'proposeConfChange', (c) => c.proposeConfChange(choice.cc));
    this.trace.add(this.now, 'conf', lead.node.id, [], `${choice.name}: ${choice.cc.changes.map((c) => `${c.type} ${c.node}`).join(', ')} -> ${res.ok ? 'proposed' : res.reason}`);
    if (res.ok) {
      this.stats.confChanges++;
      if (choice.add !== undefined) {
        // A node added later starts empty and learns the configuration from the leader.
        this.nextId++;
        this.boot(this.addNode(choice.add, emptyConf));
      }
    } else {
      this.stats.confRefused++;
    }
    this.drain(lead.node);
  }

  private transferLeader(): void {
    const lead = this.leader();
    if (!lead) return;
    const targets = lead.status.conf.voters.filter((v) => v !== lead.node.id && this.nodes.get(v)?.retired !== true);
    if (targets.length === 0) return;
    const to = this.workRng.pick(targets);
    this.stats.transfers++;
    this.trace.add(this.now, 'transfer', lead.node.id, [], `to ${to}`);
    this.callCore(lead.node, 'transferLeadership', (c) => c.transferLeadership(to));
    this.drain(lead.node);
  }
}

/** One seed, one run. */
export function runSim(o: SimOptions, hooks?: SimHooks): SimResult {
  return new Simulation(o, hooks).run();
}
