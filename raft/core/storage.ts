import type { ConfState, Entry, HardState, Snapshot, Storage } from './types.js';

export class CompactedError extends Error {
  override readonly name = 'CompactedError';
  constructor(readonly index: number) {
    super(`raft storage: index ${index} is compacted`);
  }
}

export class UnavailableError extends Error {
  override readonly name = 'UnavailableError';
  constructor(readonly index: number) {
    super(`raft storage: index ${index} is not yet available`);
  }
}

export const emptyConf: ConfState = Object.freeze({
  voters: [],
  learners: [],
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
});

/**
 * The stable log held in memory (etcd's MemoryStorage). The simulator uses it as its disk image;
 * the real node keeps one as the read cache in front of LevelDB and applies every durable batch
 * to both. `ents[0]` is a dummy entry at the snapshot index carrying the snapshot term.
 */
export class MemoryStorage implements Storage {
  private hs: HardState = { term: 0, vote: null, commit: 0 };
  private snap: Snapshot;
  private ents: Entry[];

  /**
   * A node that bootstraps a cluster passes the initial membership; it is recorded as a snapshot
   * at index 1, term 1, so that a node added later (which starts with no configuration) receives
   * it as a snapshot from the leader before it replays later membership changes from the log.
   * A joining node passes nothing and starts at index 0. `bootstrapIndex` 0 records the
   * membership at index 0 instead: a static configuration that every node is given up front.
   */
  constructor(conf: ConfState = emptyConf, bootstrapIndex: 0 | 1 = conf.voters.length > 0 ? 1 : 0) {
    const boot = bootstrapIndex;
    this.snap = { meta: { index: boot, term: boot, conf }, data: new Uint8Array(0) };
    this.ents = [{ term: boot, index: boot, type: 'normal', data: new Uint8Array(0) }];
  }

  initialState(): { hardState: HardState; conf: ConfState } {
    return { hardState: this.hs, conf: this.snap.meta.conf };
  }

  hardState(): HardState {
    return this.hs;
  }

  setHardState(hs: HardState): void {
    this.hs = hs;
  }

  private offset(): number {
    return (this.ents[0] as Entry).index;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const off = this.offset();
    if (lo <= off) throw new CompactedError(lo);
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1);
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.ents[i - off] as Entry;
      bytes += e.data.length;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  term(index: number): number {
    const off = this.offset();
    if (index < off) throw new CompactedError(index);
    if (index > this.lastIndex()) throw new UnavailableError(index);
    return (this.ents[index - off] as Entry).term;
  }

  firstIndex(): number {
    return this.offset() + 1;
  }

  lastIndex(): number {
    return this.offset() + this.ents.length - 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Append entries, dropping any existing suffix from the first new index on. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = (entries[0] as Entry).index;
    const off = this.offset();
    if (first + entries.length - 1 <= off) return; // entirely compacted away already
    const skip = Math.max(0, off + 1 - first);
    const keep = first + skip - off; // number of existing entries (incl. dummy) to keep
    if (keep > this.ents.length) throw new Error(`raft storage: gap appending at ${first + skip}, last ${this.lastIndex()}`);
    this.ents.length = keep;
    for (let i = skip; i < entries.length; i++) this.ents.push(entries[i] as Entry);
  }

  /** Replace everything with a snapshot received from the leader. */
  applySnapshot(snap: Snapshot): void {
    if (snap.meta.index <= this.snap.meta.index) return;
    this.snap = snap;
    this.ents = [{ term: snap.meta.term, index: snap.meta.index, type: 'normal', data: new Uint8Array(0) }];
  }

  /**
   * A stored snapshot with the log entries it covers still kept (a store reopened from disk):
   * `covered` runs contiguously up to the snapshot's index and term; its first entry becomes the
   * dummy, so entries after it stay readable for followers that catch up by log.
   */
  applySnapshotKeeping(snap: Snapshot, covered: readonly Entry[]): void {
    const first = covered[0];
    const last = covered[covered.length - 1];
    if (first === undefined || last === undefined || last.index !== snap.meta.index || last.term !== snap.meta.term || last.index - first.index !== covered.length - 1) {
      throw new Error(`raft storage: entries ${first?.index}..${last?.index} do not end at the snapshot ${snap.meta.index}`);
    }
    this.snap = snap;
    this.ents = [{ term: first.term, index: first.index, type: 'normal', data: new Uint8Array(0) }, ...covered.slice(1)];
  }

  /** Record a snapshot the local state machine took at `index` (must be applied already). */
  createSnapshot(index: number, conf: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.meta.index) return this.snap;
    if (index > this.lastIndex()) throw new UnavailableError(index);
    this.snap = { meta: { index, term: this.term(index), conf }, data };
    return this.snap;
  }

  /** Discard log entries up to and including `index` (which must be covered by the snapshot). */
  compact(index: number): void {
    const off = this.offset();
    if (index <= off) return;
    if (index > this.snap.meta.index) throw new Error(`raft storage: compact ${index} beyond snapshot ${this.snap.meta.index}`);
    const e = this.ents[index - off] as Entry;
    this.ents = [{ term: e.term, index: e.index, type: 'normal', data: new Uint8Array(0) }, ...this.ents.slice(index - off + 1)];
  }

  /** Deep-enough copy for the simulator's disk images. */
  clone(): MemoryStorage {
    const c = new MemoryStorage(this.snap.meta.conf, 0);
    c.hs = this.hs;
    c.snap = this.snap;
    c.ents = this.ents.slice();
    return c;
  }
}
