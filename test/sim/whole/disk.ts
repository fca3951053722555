/**
 * A simulated LevelDB for the whole-node mode: the `KvDb` the real store (raft/storage/leveldb.ts
 * LevelStorage) runs on, so the node's own persistence code — batch layout, checksums, the
 * verification at open — is what the simulator exercises.
 *
 * Model (LevelDB's write-ahead log on a file system with a page cache):
 * - a batch lands in the page cache at once (what the node reads back) and is queued in order;
 * - `sync: true` batches complete after a drawn number of steps (or a long stall); when one
 *   completes, it and every batch written before it are durable (the log is one ordered file);
 * - power loss keeps the durable image plus an ordered prefix of the unsynced batches when the
 *   seed says the page cache was partly flushed; the next batch may have been written part way,
 *   and LevelDB's per-record checksum then drops it whole (counted as a torn write);
 * - a process restart without power loss keeps every batch (they are in the page cache);
 * - `corrupt` flips a byte inside one stored value: the store's own checksums refuse to open it.
 *
 * Each open handle belongs to one incarnation of the node: after a crash, the old handle's writes
 * go nowhere and its pending syncs never complete (that process is gone).
 */
import type { KvDb, Op } from '../../../raft/storage/leveldb.js';
import type { SeededRng } from '../../../raft/core/rng.js';

/** Keys as latin1 strings: one char per byte, so string order is LevelDB's byte order. */
type Image = Map<string, Buffer>;

interface Pending {
  readonly ops: readonly Op[];
}

interface SyncWait {
  /** Batches (counted from the start of `unsynced`) this sync makes durable. */
  upTo: number;
  dueStep: number;
  readonly resolve: () => void;
}

export interface DiskCrash {
  readonly lostBatches: number;
  readonly torn: boolean;
}

export interface FsyncTiming {
  /** Steps an fsync takes (0 .. this). */
  readonly stepsMax: number;
  /** Probability that one fsync stalls for `stallSteps`. */
  readonly stallRate: number;
  readonly stallSteps: readonly [number, number];
}

function applyOps(img: Image, ops: readonly Op[]): void {
  for (const op of ops) {
    const k = op.key.toString('latin1');
    if (op.type === 'put') img.set(k, op.value);
    else img.delete(k);
  }
}

export class SimKvDisk {
  private durable: Image = new Map();
  private cache: Image = new Map();
  private unsynced: Pending[] = [];
  private syncs: SyncWait[] = [];
  /** Bumped by every crash: handles of earlier incarnations are dead. */
  private epoch = 0;
  stalls = 0;

  constructor(
    private readonly rng: SeededRng,
    private timing: FsyncTiming,
    private readonly now: () => number,
  ) {}

  /** A database handle for the incarnation starting now. */
  handle(): KvDb {
    const epoch = this.epoch;
    const live = (): boolean => epoch === this.epoch;
    const cache = (): Image => this.cache;
    return {
      open: async () => {},
      close: async () => {},
      get: async (key) => cache().get(key.toString('latin1')),
      batch: (ops, o) => {
        // A write from a process that died: it never happened, and nobody waits for it.
        if (!live()) return new Promise<void>(() => {});
        return this.batch(ops, o.sync);
      },
      iterator: (range) => {
        const lo = range.gte?.toString('latin1');
        const hi = range.lte?.toString('latin1');
        const below = range.lt?.toString('latin1');
        const keys = [...cache().keys()].filter((k) => (lo === undefined || k >= lo) && (hi === undefined || k <= hi) && (below === undefined || k < below)).sort();
        const img = cache();
        return (async function* () {
          for (const k of keys) yield [Buffer.from(k, 'latin1'), img.get(k) as Buffer] as [Buffer, Buffer];
        })();
      },
    };
  }

  private batch(ops: Op[], sync: boolean): Promise<void> {
    applyOps(this.cache, ops);
    this.unsynced.push({ ops });
    if (!sync) return Promise.resolve();
    let steps = this.timing.stepsMax > 0 ? this.rng.int(this.timing.stepsMax + 1) : 0;
    if (this.timing.stallRate > 0 && this.rng.chance(this.timing.stallRate)) {
      const [a, b] = this.timing.stallSteps;
      steps = a + this.rng.int(b - a + 1);
      this.stalls++;
    }
    // fsyncs complete in order: one never finishes before an earlier one.
    const last = this.syncs[this.syncs.length - 1];
    const dueStep = Math.max(this.now() + steps, last ? last.dueStep : 0);
    return new Promise<void>((resolve) => this.syncs.push({ upTo: this.unsynced.length, dueStep, resolve }));
  }

  /** Completes the fsyncs due by now; their promises resolve (the caller drains microtasks). */
  completeSyncs(): void {
    const now = this.now();
    while (this.syncs.length > 0 && (this.syncs[0] as SyncWait).dueStep <= now) {
      const s = this.syncs.shift() as SyncWait;
      const done = this.unsynced.splice(0, s.upTo);
      for (const b of done) applyOps(this.durable, b.ops);
      for (const o of this.syncs) o.upTo -= s.upTo;
      s.resolve();
    }
  }

  /** Power loss: the durable image, plus (when the seed says so) an ordered prefix of the rest. */
  crash(partialFlush: boolean): DiskCrash {
    const pending = this.unsynced;
    let kept = 0;
    let torn = false;
    if (partialFlush && pending.length > 0) {
      kept = this.rng.int(pending.length + 1);
      for (let k = 0; k < kept; k++) applyOps(this.durable, (pending[k] as Pending).ops);
      // The next batch was written part way: its log record fails its checksum and is dropped.
      torn = kept < pending.length && (pending[kept] as Pending).ops.length > 1 && this.rng.chance(0.5);
    }
    this.reset();
    return { lostBatches: pending.length - kept, torn };
  }

  /** The process stopped without power loss: the page cache reaches the disk. */
  stop(): void {
    for (const b of this.unsynced) applyOps(this.durable, b.ops);
    this.reset();
  }

  private reset(): void {
    this.unsynced = [];
    this.syncs = [];
    this.cache = new Map(this.durable);
    this.epoch++;
  }

  /** A copy of the durable image (a backup, a VM snapshot). Values are never mutated in place. */
  copy(): ReadonlyMap<string, Buffer> {
    return new Map(this.durable);
  }

  /** Replace the stopped node's store with an old copy, plus `extra` ops (a marker). */
  restore(copy: ReadonlyMap<string, Buffer>, extra: readonly Op[] = []): void {
    this.durable = new Map(copy);
    applyOps(this.durable, extra);
    this.reset();
  }

  /** Replace the stopped node's store with exactly `ops` (what a wipe leaves). */
  replace(ops: readonly Op[]): void {
    this.durable = new Map();
    applyOps(this.durable, ops);
    this.reset();
  }

  /** Flip one byte of one stored value whose key starts with one of `prefixes` (a media error). */
  corrupt(prefixes: readonly Buffer[], except: readonly Buffer[] = []): boolean {
    const ps = prefixes.map((p) => p.toString('latin1'));
    const xs = except.map((p) => p.toString('latin1'));
    const keys = [...this.durable.keys()].filter((k) => ps.some((p) => k.startsWith(p)) && !xs.some((x) => k.startsWith(x))).sort();
    if (keys.length === 0) return false;
    const k = this.rng.pick(keys);
    const v = Buffer.from(this.durable.get(k) as Buffer);
    if (v.length === 0) return false;
    const at = this.rng.int(v.length);
    v[at] = (v[at] as number) ^ (1 + this.rng.int(255));
    this.durable.set(k, v);
    this.reset();
    return true;
  }

  /** Faults heal: fsyncs complete at once from now on, and those in flight by the next step. */
  calm(): void {
    this.timing = { stepsMax: 0, stallRate: 0, stallSteps: [0, 0] };
    const soon = this.now() + 1;
    for (const s of this.syncs) s.dueStep = Math.min(s.dueStep, soon);
  }

  syncsPending(): number {
    return this.syncs.length;
  }
}
