/**
 * Simulated storage for one node. A write lands in the page cache (`view`, what the running core
 * reads) at once, but is durable only when an fsync that was issued after it completes. A crash
 * keeps the durable image and, at most, an ordered prefix of the unsynced writes: whole batches
 * first, then possibly a torn prefix of the next one (a log file's tail written part way).
 *
 * The operations of one batch are ordered snapshot, entries, hard state — the order a write-ahead
 * log appends them — so a torn batch may keep new entries but lose the hard state that followed.
 * That is safe only because nothing that depends on an unsynced batch has left the node (§5.1,
 * Figure 2: persistent state is updated on stable storage before responding to RPCs).
 */
import type { ConfState, Entry, HardState, Snapshot } from '../../raft/core/types.js';
import type { SeededRng } from '../../raft/core/rng.js';
import { SimLog, type Chained } from './log.js';

export interface Batch {
  readonly snapshot: Snapshot | null;
  /** Chain value of the snapshot's last entry (from the checkers' registry). */
  readonly snapshotChain: number;
  readonly entries: readonly Entry[];
  readonly hardState: HardState | null;
}

function opCount(b: Batch): number {
  return (b.snapshot ? 1 : 0) + b.entries.length + (b.hardState ? 1 : 0);
}

/** Apply the first `ops` operations of a batch to a log. */
function applyOps(log: SimLog, b: Batch, ops: number): Chained[] {
  let left = ops;
  if (b.snapshot && left > 0) {
    log.applySnapshot(b.snapshot, b.snapshotChain);
    left--;
  }
  const n = Math.min(left, b.entries.length);
  const written = log.append(n === b.entries.length ? b.entries : b.entries.slice(0, n));
  left -= n;
  if (b.hardState && left > 0) log.setHardState(b.hardState);
  return written;
}

export interface CrashOutcome {
  /** Unsynced batches lost entirely or in part. */
  readonly lostBatches: number;
  /** True when a strict, non-empty prefix of one batch survived. */
  readonly torn: boolean;
}

export class SimDisk {
  durable: SimLog;
  view: SimLog;
  private unsynced: Batch[] = [];

  constructor(conf?: ConfState, chained = true) {
    this.durable = SimLog.empty(conf, chained);
    this.view = this.durable.clone();
  }

  /** Issue a write (into the page cache). Returns the chains of the entries written. */
  write(b: Batch): Chained[] {
    const written = applyOps(this.view, b, opCount(b));
    this.unsynced.push(b);
    return written;
  }

  unsyncedCount(): number {
    return this.unsynced.length;
  }

  /** An fsync completed: everything written before it is durable. */
  sync(): void {
    for (const b of this.unsynced) applyOps(this.durable, b, opCount(b));
    this.unsynced = [];
  }

  /**
   * Power loss. Without `tear`, every unsynced write is lost. With it, an ordered prefix of them
   * survives: k whole batches, then a strict prefix of batch k+1.
   */
  crash(rng: SeededRng, tear: boolean): CrashOutcome {
    const pending = this.unsynced;
    this.unsynced = [];
    let torn = false;
    let kept = 0;
    if (tear && pending.length > 0) {
      kept = rng.int(pending.length);
      for (let k = 0; k < kept; k++) {
        const b = pending[k] as Batch;
        applyOps(this.durable, b, opCount(b));
      }
      const next = pending[kept] as Batch;
      const n = opCount(next);
      if (n > 1) {
        applyOps(this.durable, next, 1 + rng.int(n - 1));
        torn = true;
      }
    }
    this.view = this.durable.clone();
    return { lostBatches: pending.length - kept, torn };
  }

  /** Drop the vote from the durable hard state (the "forget the vote on restart" fault). */
  forgetVote(): boolean {
    const hs = this.durable.hardState();
    if (hs.vote === null) return false;
    this.durable.setHardState({ term: hs.term, vote: null, commit: hs.commit });
    this.view = this.durable.clone();
    return true;
  }

  /**
   * The state machine's snapshot, written and synced at once (the real node writes the ledger
   * state and its applied index in one synced batch), then log compaction.
   */
  snapshotAndCompact(index: number, conf: ConfState, data: Uint8Array, compactTo: number): void {
    this.view.snapshotAndCompact(index, conf, data, compactTo);
    this.durable.snapshotAndCompact(index, conf, data, compactTo);
  }
}
