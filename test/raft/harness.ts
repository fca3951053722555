/**
 * A tiny in-memory cluster for paper tests and scripted scenarios: real RaftCore instances over
 * MemoryStorage, messages delivered in FIFO order until the network is quiet. Unlike the
 * simulator (test/sim/), nothing here is random except the election jitter, drawn from a seed.
 */
import { RaftCore } from '../../raft/core/raft.js';
import { SeededRng } from '../../raft/core/rng.js';
import { MemoryStorage } from '../../raft/core/storage.js';
import type { ConfState, Entry, Message, NodeId, RaftConfig, Ready } from '../../raft/core/types.js';

export function conf(voters: NodeId[], learners: NodeId[] = []): ConfState {
  return { voters, learners, votersOutgoing: [], learnersNext: [], autoLeave: false };
}

export interface NodeOptions {
  preVote?: boolean;
  checkQuorum?: boolean;
  electionTicks?: number;
  heartbeatTicks?: number;
  faults?: RaftConfig['faults'];
  appendBytesMax?: number;
  inflightMsgsMax?: number;
  snapshotChunkBytes?: number;
  /** 0: static membership at index 0 (the paper's logs start at 1); 1: bootstrap snapshot at index 1. */
  bootstrapIndex?: 0 | 1;
  confGuard?: RaftConfig['confGuard'];
}

export function makeConfig(id: NodeId, storage: MemoryStorage, seed: number, o: NodeOptions = {}, applied = 0): RaftConfig {
  return {
    id,
    storage,
    rng: new SeededRng(seed),
    electionTicks: o.electionTicks ?? 10,
    heartbeatTicks: o.heartbeatTicks ?? 1,
    preVote: o.preVote ?? false,
    checkQuorum: o.checkQuorum ?? false,
    applied,
    appendBytesMax: o.appendBytesMax ?? 1024 * 1024,
    inflightMsgsMax: o.inflightMsgsMax ?? 256,
    inflightBytesMax: 16 * 1024 * 1024,
    uncommittedBytesMax: 64 * 1024 * 1024,
    snapshotChunkBytes: o.snapshotChunkBytes ?? 1024,
    readIndexPendingMax: 64,
    ...(o.faults ? { faults: o.faults } : {}),
    ...(o.confGuard ? { confGuard: o.confGuard } : {}),
  };
}

export class TestNode {
  core: RaftCore;
  readonly storage: MemoryStorage;
  /** Data of applied normal entries, in order (the state machine of these tests). */
  applied: string[] = [];
  appliedIndex = 0;
  readStates: { index: number; context: string }[] = [];

  constructor(
    readonly id: NodeId,
    members: ConfState,
    readonly seed: number,
    readonly opts: NodeOptions = {},
  ) {
    this.storage = new MemoryStorage(members, members.voters.length > 0 ? (opts.bootstrapIndex ?? 0) : 0);
    this.core = new RaftCore(makeConfig(id, this.storage, seed, opts));
  }

  /** Persist, apply and advance; return the messages to send. */
  process(): Message[] {
    const out: Message[] = [];
    while (this.core.hasReady()) {
      const rd: Ready = this.core.ready();
      if (rd.hardState) this.storage.setHardState(rd.hardState);
      if (rd.snapshot) {
        this.storage.applySnapshot(rd.snapshot);
        this.applied = JSON.parse(new TextDecoder().decode(rd.snapshot.data) || '[]') as string[];
        this.appliedIndex = rd.snapshot.meta.index;
      }
      this.storage.append(rd.entries);
      out.push(...rd.messages);
      for (const e of rd.committedEntries) {
        if (e.type === 'normal' && e.data.length > 0) this.applied.push(new TextDecoder().decode(e.data));
        this.appliedIndex = e.index;
      }
      for (const r of rd.readStates) this.readStates.push({ index: r.index, context: new TextDecoder().decode(r.context) });
      this.core.advance(rd);
    }
    return out;
  }

  /** Take a snapshot of the applied state and compact the log up to `index`. */
  snapshotAndCompact(compactTo: number): void {
    this.storage.createSnapshot(this.appliedIndex, this.core.status().conf, new TextEncoder().encode(JSON.stringify(this.applied)));
    this.storage.compact(compactTo);
  }

  /** Restart from the durable state (everything in MemoryStorage is durable here). */
  restart(): void {
    const snap = this.storage.snapshot();
    this.applied = JSON.parse(new TextDecoder().decode(snap.data) || '[]') as string[];
    this.appliedIndex = snap.meta.index;
    this.core = new RaftCore(makeConfig(this.id, this.storage, this.seed + 1000, this.opts, this.appliedIndex));
  }

  log(): Entry[] {
    const s = this.storage;
    if (s.lastIndex() < s.firstIndex()) return [];
    return s.entries(s.firstIndex(), s.lastIndex() + 1, Infinity);
  }
}

export type Filter = (m: Message) => boolean; // return false to drop

export class Network {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Every message delivered, for scenario transcripts. */
  readonly trace: Message[] = [];
  private readonly filters: Filter[] = [];
  private readonly queue: Message[] = [];
  /** Nodes whose traffic is cut both ways. */
  readonly isolated = new Set<NodeId>();
  /** Directed links that are cut: `${from}->${to}`. */
  readonly cut = new Set<string>();

  constructor(ids: NodeId[], opts: NodeOptions = {}, seed = 1, members: ConfState = conf(ids)) {
    ids.forEach((id, i) => this.nodes.set(id, new TestNode(id, members, seed * 100 + i, opts)));
  }

  node(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  addNode(id: NodeId, opts: NodeOptions = {}, seed = 999): TestNode {
    const n = new TestNode(id, conf([]), seed, opts);
    this.nodes.set(id, n);
    return n;
  }

  filter(f: Filter): void {
    this.filters.push(f);
  }

  clearFilters(): void {
    this.filters.length = 0;
    this.isolated.clear();
    this.cut.clear();
  }

  private deliverable(m: Message): boolean {
    if (this.isolated.has(m.from) || this.isolated.has(m.to)) return false;
    if (this.cut.has(`${m.from}->${m.to}`)) return false;
    return this.filters.every((f) => f(m));
  }

  /** Collect ready messages from every node into the queue. */
  collect(): void {
    for (const n of this.nodes.values()) this.queue.push(...n.process());
  }

  /** Deliver until no message is left (bounded). Returns the number delivered. */
  stabilize(maxMessages = 100_000): number {
    let delivered = 0;
    this.collect();
    while (this.queue.length > 0) {
      if (delivered++ > maxMessages) throw new Error('network did not stabilize');
      const m = this.queue.shift() as Message;
      if (!this.deliverable(m)) continue;
      const to = this.nodes.get(m.to);
      if (!to) continue;
      this.trace.push(m);
      to.core.step(m);
      this.queue.push(...to.process());
    }
    return delivered;
  }

  tick(id: NodeId, n = 1): void {
    for (let i = 0; i < n; i++) this.node(id).core.tick();
  }

  /** Tick every node n times, stabilizing after each round. */
  tickAll(n: number): void {
    for (let i = 0; i < n; i++) {
      for (const node of this.nodes.values()) node.core.tick();
      this.stabilize();
    }
  }

  campaign(id: NodeId): void {
    this.node(id).core.campaign();
    this.stabilize();
  }

  propose(id: NodeId, data: string): ReturnType<TestNode['core']['propose']> {
    const r = this.node(id).core.propose(new TextEncoder().encode(data));
    this.stabilize();
    return r;
  }

  leader(): NodeId | null {
    const leaders = [...this.nodes.values()].filter((n) => n.core.status().role === 'leader');
    return leaders.length === 1 ? (leaders[0] as TestNode).id : null;
  }

  /** Drop queued messages without delivering them. */
  dropQueued(): void {
    this.queue.length = 0;
  }
}
