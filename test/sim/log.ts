/**
 * One node's log as the simulator sees it: the real MemoryStorage (which the core reads) plus, for
 * every index from the snapshot on, the chain value that covers the whole prefix up to it. The
 * chain lets the checkers compare two logs' prefixes in O(1) (Log Matching, §5.3; Leader
 * Completeness, §5.4).
 */
import { MemoryStorage } from '../../raft/core/storage.js';
import type { ConfState, Entry, HardState, Snapshot } from '../../raft/core/types.js';
import { chainGenesis, chainOf } from './hash.js';

/** One appended entry with the chain value it got in this log. */
export interface Chained {
  readonly index: number;
  readonly term: number;
  readonly chain: number;
}

export class SimLog {
  /** chains[i - base()] is the chain at index i, for base() <= i <= lastIndex(). */
  private chains: number[];

  private constructor(
    readonly store: MemoryStorage,
    chains: number[],
    /** Keep chains (the checkers need them; the benchmark runs without). */
    private readonly chained: boolean,
  ) {
    this.chains = chains;
  }

  static empty(conf?: ConfState, chained = true): SimLog {
    return new SimLog(new MemoryStorage(conf), [chainGenesis], chained);
  }

  /** Index of the dummy entry (the snapshot index after compaction). */
  base(): number {
    return this.store.firstIndex() - 1;
  }

  lastIndex(): number {
    return this.store.lastIndex();
  }

  snapshotIndex(): number {
    return this.store.snapshot().meta.index;
  }

  /** Chain at index i, or undefined when i is compacted away or past the end. */
  chainAt(i: number): number | undefined {
    const b = this.base();
    if (i < b || i > this.lastIndex()) return undefined;
    return this.chains[i - b];
  }

  termAt(i: number): number | undefined {
    const b = this.base();
    if (i < b || i > this.lastIndex()) return undefined;
    return this.store.term(i);
  }

  /**
   * Append with MemoryStorage's semantics (drop the conflicting suffix, skip what is compacted)
   * and return the chain of every entry actually written.
   */
  append(entries: readonly Entry[]): Chained[] {
    if (entries.length === 0) return [];
    this.store.append(entries); // throws on a gap: a Ready that does not continue the log
    if (!this.chained) return [];
    const b = this.base();
    const first = (entries[0] as Entry).index;
    const skip = Math.max(0, b + 1 - first);
    const out: Chained[] = [];
    if (skip >= entries.length) return out;
    this.chains.length = first + skip - b;
    let prev = this.chains[first + skip - 1 - b] as number;
    for (let k = skip; k < entries.length; k++) {
      const e = entries[k] as Entry;
      prev = chainOf(prev, e);
      this.chains.push(prev);
      out.push({ index: e.index, term: e.term, chain: prev });
    }
    return out;
  }

  /** Install a snapshot whose last entry has chain `chain`; false if it is not newer. */
  applySnapshot(snap: Snapshot, chain: number): boolean {
    if (snap.meta.index <= this.snapshotIndex()) return false;
    this.store.applySnapshot(snap);
    this.chains = [chain];
    this.commitAtLeastSnapshot();
    return true;
  }

  /**
   * A snapshot only ever holds committed state, so the durable commit index is never below it; a
   * hard state written before the snapshot (and synced after it) must not pull it back.
   */
  setHardState(hs: HardState): void {
    this.store.setHardState(hs);
    this.commitAtLeastSnapshot();
  }

  private commitAtLeastSnapshot(): void {
    const hs = this.store.hardState();
    const s = this.snapshotIndex();
    if (hs.commit < s) this.store.setHardState({ term: hs.term, vote: hs.vote, commit: s });
  }

  hardState(): HardState {
    return this.store.hardState();
  }

  /** The local state machine's snapshot at `index`, then compaction of everything up to `compactTo`. */
  snapshotAndCompact(index: number, conf: ConfState, data: Uint8Array, compactTo: number): void {
    if (index <= this.snapshotIndex() || index > this.lastIndex()) return;
    this.store.createSnapshot(index, conf, data);
    this.commitAtLeastSnapshot();
    const to = Math.min(compactTo, index);
    const b = this.base();
    if (to <= b) return;
    this.store.compact(to);
    if (this.chained) this.chains = this.chains.slice(to - b);
  }

  clone(): SimLog {
    return new SimLog(this.store.clone(), this.chains.slice(), this.chained);
  }
}
