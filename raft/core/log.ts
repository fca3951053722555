/**
 * The Raft log as the core sees it: the stable part in `Storage` (owned by the driver) and an
 * unstable suffix (and possibly a snapshot) that the core has accepted but the driver has not yet
 * persisted. Indexes: storage covers [firstIndex, storage.lastIndex]; unstable entries start at
 * `offset`, which may overlap the stable part after a conflicting append (the overlapping stable
 * entries are then replaced when the driver persists).
 */
import { assert } from '../../proto/errors.js';
import { CompactedError, UnavailableError } from './storage.js';
import type { Entry, Snapshot, Storage } from './types.js';

export class RaftLog {
  private unstableEntries: Entry[] = [];
  private unstableOffset: number;
  private unstableSnap: Snapshot | null = null;
  committed: number;
  applied: number;

  constructor(
    readonly storage: Storage,
    committed: number,
    applied: number,
  ) {
    this.unstableOffset = storage.lastIndex() + 1;
    const snapIndex = storage.firstIndex() - 1;
    this.committed = Math.max(committed, snapIndex);
    this.applied = Math.max(applied, snapIndex);
    assert(this.applied <= this.committed || this.committed === snapIndex, `applied ${applied} beyond committed ${committed}`);
    if (this.applied > this.committed) this.committed = this.applied;
  }

  firstIndex(): number {
    if (this.unstableSnap) return this.unstableSnap.meta.index + 1;
    return this.storage.firstIndex();
  }

  lastIndex(): number {
    if (this.unstableEntries.length > 0) return this.unstableOffset + this.unstableEntries.length - 1;
    if (this.unstableSnap) return this.unstableSnap.meta.index;
    return this.storage.lastIndex();
  }

  /** Term of `i`, or null when it is compacted or beyond the log. */
  term(i: number): number | null {
    const dummy = this.firstIndex() - 1;
    if (i < dummy || i > this.lastIndex()) return null;
    if (this.unstableEntries.length > 0 && i >= this.unstableOffset) {
      return (this.unstableEntries[i - this.unstableOffset] as Entry).term;
    }
    if (this.unstableSnap && i === this.unstableSnap.meta.index) return this.unstableSnap.meta.term;
    if (this.unstableSnap) return null;
    try {
      return this.storage.term(i);
    } catch (e) {
      if (e instanceof CompactedError || e instanceof UnavailableError) return null;
      throw e;
    }
  }

  lastTerm(): number {
    const t = this.term(this.lastIndex());
    assert(t !== null, 'last term must be known');
    return t;
  }

  matchTerm(i: number, t: number): boolean {
    return this.term(i) === t;
  }

  /** §5.4.1: is a log ending at (index, term) at least as up to date as ours? */
  isUpToDate(index: number, term: number): boolean {
    const lt = this.lastTerm();
    return term > lt || (term === lt && index >= this.lastIndex());
  }

  /** Entries in [lo, hi) up to maxBytes (at least one); null when lo is compacted. */
  slice(lo: number, hi: number, maxBytes: number): Entry[] | null {
    if (lo >= hi) return [];
    if (lo < this.firstIndex()) return null;
    assert(hi <= this.lastIndex() + 1, `slice ${lo}..${hi} beyond last ${this.lastIndex()}`);
    const out: Entry[] = [];
    let bytes = 0;
    if (lo < this.unstableOffset && !this.unstableSnap) {
      const stableHi = Math.min(hi, this.unstableOffset);
      let stable: Entry[];
      try {
        stable = this.storage.entries(lo, stableHi, maxBytes);
      } catch (e) {
        if (e instanceof CompactedError) return null;
        throw e;
      }
      for (const e of stable) {
        bytes += e.data.length;
        out.push(e);
      }
      if (stable.length < stableHi - lo) return out; // size limit reached
    }
    const from = Math.max(lo, this.unstableOffset);
    for (let i = from; i < hi; i++) {
      const e = this.unstableEntries[i - this.unstableOffset] as Entry;
      if (out.length > 0 && bytes + e.data.length > maxBytes) break;
      bytes += e.data.length;
      out.push(e);
    }
    return out;
  }

  /** First index in `ents` whose term conflicts with ours or that is new; 0 if all match. */
  private findConflict(ents: readonly Entry[]): number {
    for (const e of ents) if (!this.matchTerm(e.index, e.term)) return e.index;
    return 0;
  }

  /**
   * §5.3 AppendEntries receiver: if our log contains (prevIndex, prevTerm), append the new entries,
   * deleting any conflicting suffix, advance commit, and return the last new index; else null.
   */
  maybeAppend(prevIndex: number, prevTerm: number, commit: number, ents: readonly Entry[]): number | null {
    if (!this.matchTerm(prevIndex, prevTerm)) return null;
    const lastNew = prevIndex + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      assert(ci > this.committed, `entry ${ci} conflicts with committed ${this.committed}`);
      this.append(ents.slice(ci - (prevIndex + 1)));
    }
    this.commitTo(Math.min(commit, lastNew));
    return lastNew;
  }

  append(ents: readonly Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const first = (ents[0] as Entry).index;
    assert(first - 1 >= this.committed, `append at ${first} would overwrite committed ${this.committed}`);
    assert(first <= this.lastIndex() + 1, `append at ${first} leaves a gap after ${this.lastIndex()}`);
    if (first === this.unstableOffset + this.unstableEntries.length) {
      this.unstableEntries.push(...ents);
    } else if (first <= this.unstableOffset) {
      // Replaces everything unstable (and some stable entries, rewritten on persist).
      this.unstableOffset = first;
      this.unstableEntries = [...ents];
    } else {
      this.unstableEntries = [...this.unstableEntries.slice(0, first - this.unstableOffset), ...ents];
    }
    return this.lastIndex();
  }

  commitTo(c: number): void {
    if (c > this.committed) {
      assert(c <= this.lastIndex(), `commit ${c} beyond last index ${this.lastIndex()}`);
      this.committed = c;
    }
  }

  /** §5.4.2: commit `index` only if it carries the current term (unless told otherwise). */
  maybeCommit(index: number, term: number, ignoreTerm: boolean): boolean {
    if (index > this.committed && (ignoreTerm || this.term(index) === term)) {
      this.commitTo(index);
      return true;
    }
    return false;
  }

  /** Committed entries not yet handed to the application, up to maxBytes. */
  nextCommitted(maxBytes: number): Entry[] {
    const lo = Math.max(this.applied + 1, this.firstIndex());
    if (lo > this.committed) return [];
    return this.slice(lo, this.committed + 1, maxBytes) ?? [];
  }

  hasNextCommitted(): boolean {
    return Math.max(this.applied + 1, this.firstIndex()) <= this.committed;
  }

  appliedTo(i: number): void {
    if (i > this.applied) {
      assert(i <= this.committed, `applied ${i} beyond committed ${this.committed}`);
      this.applied = i;
    }
  }

  unstable(): readonly Entry[] {
    return this.unstableEntries;
  }

  pendingSnapshot(): Snapshot | null {
    return this.unstableSnap;
  }

  /** The driver persisted entries up to (index, term). */
  stableTo(index: number, term: number): void {
    if (this.unstableEntries.length === 0 || index < this.unstableOffset) return;
    const e = this.unstableEntries[index - this.unstableOffset];
    // A later conflicting append may have replaced what was persisted; then keep it unstable.
    if (!e || e.term !== term) return;
    this.unstableEntries = this.unstableEntries.slice(index + 1 - this.unstableOffset);
    this.unstableOffset = index + 1;
  }

  stableSnapTo(index: number): void {
    if (this.unstableSnap && this.unstableSnap.meta.index === index) this.unstableSnap = null;
  }

  /** §7: replace the whole log with a snapshot. */
  restore(s: Snapshot): void {
    this.committed = s.meta.index;
    this.unstableSnap = s;
    this.unstableEntries = [];
    this.unstableOffset = s.meta.index + 1;
  }
}
