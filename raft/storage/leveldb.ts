/**
 * Durable Raft storage on LevelDB (`level` / classic-level), with a MemoryStorage mirror that
 * serves the core's synchronous reads (types.ts `Storage`).
 *
 * Contract (DESIGN.md §2):
 * - `persist()` writes one Ready's hard state, entries and snapshot, plus the application's state
 *   writes and its applied index, as ONE LevelDB batch; with `sync: true` whenever the Ready says
 *   mustSync. The driver sends no message depending on a batch until its promise resolves. One
 *   batch per Ready is the group commit: everything the core produced since the last fsync shares
 *   one fsync.
 * - The mirror is updated only after the batch is durable, so the core never reads from memory
 *   what the disk does not yet hold.
 * - Every stored value is checksummed (codec.ts). `open()` reads and verifies the whole store and
 *   refuses to start on any mismatch, gap or inconsistency with STORAGE_CORRUPT naming the key
 *   and the recovery command. A corrupt node must never serve or vote from a log it cannot trust.
 * - Application keys under COLD_PREFIX (the ledger's archive of ended acts) grow with the history,
 *   so they are neither loaded into the mirror nor verified at open: they are read on demand
 *   (`appRead`, `appScan`), each value's checksum verified when it is read. They are written in the
 *   same batch as everything else, so they stay exactly as durable as the applied index.
 */
import { Level } from 'level';
import { rm } from 'node:fs/promises';
import { CustodyError, assert } from '../../proto/errors.js';
import { MemoryStorage } from '../core/storage.js';
import { raft as raftLimits } from '../../proto/limits.js';
import type { ConfState, Entry, HardState, Snapshot, Storage } from '../core/types.js';
import {
  APP_PREFIX,
  KEY_HS,
  KEY_SNAP,
  KEY_SNAP_SEND,
  LOG_PREFIX,
  appKey,
  decodeEntry,
  decodeHardState,
  decodeSnapshot,
  describeKey,
  encodeEntry,
  encodeHardState,
  encodeSnapshot,
  logKey,
  logKeyIndex,
  seal,
  unseal,
} from './codec.js';

export type Op = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

/**
 * The part of a LevelDB handle the store uses. `level` provides it on disk; the simulator
 * (test/sim/whole/) provides it over a simulated disk, so the same storage code runs in both.
 */
export interface KvDb {
  open(): Promise<void>;
  close(): Promise<void>;
  get(key: Buffer): Promise<Buffer | undefined>;
  /** Several keys in one request (classic-level reads them in one job); absent: one get each. */
  getMany?(keys: Buffer[]): Promise<(Buffer | undefined)[]>;
  batch(ops: Op[], options: { sync: boolean }): Promise<void>;
  iterator(range: { gte?: Buffer; lte?: Buffer; lt?: Buffer }): AsyncIterable<[Buffer, Buffer]>;
  /** LevelDB's CompactRange: first writes the write buffer out as a table file (sealWrites uses only that). */
  compactRange?(start: Buffer, end: Buffer): Promise<void>;
}
type Db = KvDb;

/**
 * The entries of a range in key order, read storeScanEntries at a time (nextv): the async
 * iterator of abstract-level costs a promise and a copy of its options per entry, and LevelDB's
 * binding reads ahead only 16 KiB per trip unless told more (storeScanReadAheadBytes).
 */
async function* scanLevel(db: Level<Buffer, Buffer>, range: { gte?: Buffer; lte?: Buffer; lt?: Buffer }): AsyncGenerator<[Buffer, Buffer]> {
  const it = db.iterator({ ...range, highWaterMarkBytes: raftLimits.storeScanReadAheadBytes } as typeof range);
  try {
    for (let entries = await it.nextv(raftLimits.storeScanEntries); entries.length > 0; entries = await it.nextv(raftLimits.storeScanEntries)) yield* entries;
  } finally {
    await it.close();
  }
}

/**
 * A value read from LevelDB as a plain Uint8Array over the same bytes (not a copy: each value the
 * binding returns is a buffer of its own, and a peer serving a resync reads gigabytes).
 */
function view(p: Uint8Array): Uint8Array {
  return new Uint8Array(p.buffer, p.byteOffset, p.byteLength);
}

/** A key range no key of the store is in (every key starts `app/` or `raft/`): compacting it compacts nothing. */
const EMPTY_RANGE = [Buffer.from([0xff, 0xff, 0xff, 0xfe]), Buffer.from([0xff, 0xff, 0xff, 0xff])] as const;

/**
 * A LevelDB on disk (classic-level). A batch is written through a chained batch, one put or del at
 * a time into LevelDB's own WriteBatch, rather than handed over as an array of operations:
 * abstract-level copies and re-validates every operation of an array (measured 11 to 16 us an
 * operation against 1.6 to 6 us chained, on this store's keys), and a resync writes millions.
 */
function levelDb(dir: string, createIfMissing = true): Db {
  const db = new Level<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer', createIfMissing, writeBufferSize: raftLimits.storeWriteBufferBytes });
  return {
    open: () => db.open(),
    close: () => db.close(),
    get: (key) => db.get(key),
    getMany: (keys) => db.getMany(keys),
    iterator: (range) => scanLevel(db, range),
    // classic-level's (the `level` package's Node.js backend); its types describe the browser's too.
    compactRange: (start, end) => (db as unknown as { compactRange(start: Buffer, end: Buffer): Promise<void> }).compactRange(start, end),
    batch: async (ops, options) => {
      if (ops.length === 0) return;
      const b = db.batch();
      try {
        for (const op of ops) {
          if (op.type === 'put') b.put(op.key, op.value);
          else b.del(op.key);
        }
      } catch (e) {
        await b.close();
        throw e;
      }
      await b.write({ sync: options.sync });
    },
  };
}

/** Application keys kept on disk only (see the contract above). */
export const COLD_PREFIX = 'sm/archive/';
const isCold = (key: string): boolean => key.startsWith(COLD_PREFIX);

/** One application state write; `value: null` deletes. `key` is relative to the `app/` prefix. */
export interface AppWrite {
  readonly key: string;
  readonly value: Uint8Array | null;
}

export interface PersistBatch {
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | null;
  readonly app: readonly AppWrite[];
  readonly sync: boolean;
}

export interface OpenOptions {
  readonly dir: string;
  /** Membership used when the store holds no snapshot yet (the configured roster). */
  readonly bootstrapConf: ConfState;
  /** How an operator recovers this node, quoted in STORAGE_CORRUPT errors. */
  readonly recoveryHint: string;
}

export interface PersistStats {
  readonly ops: number;
  readonly bytes: number;
  /** Wall time of the batch write, including fsync when synced. */
  readonly writeMs: number;
}

export class LevelStorage implements Storage {
  private constructor(
    private readonly db: Db,
    readonly mem: MemoryStorage,
    private readonly app: Map<string, Uint8Array>,
    readonly dir: string,
    private sendable: Snapshot | null,
  ) {}

  static async open(opts: OpenOptions): Promise<LevelStorage> {
    const db = levelDb(opts.dir);
    try {
      await db.open();
    } catch (e) {
      throw new CustodyError('INTERNAL', `cannot open the data directory ${opts.dir}: ${(e as Error).message}` +
        ((e as { cause?: { message?: string } }).cause?.message ? ` (${(e as { cause: { message: string } }).cause.message})` : ''), { cause: e });
    }
    return LevelStorage.openOn(db, opts);
  }

  /** Load and verify a store from an opened database handle (closed again if the store is refused). */
  static async openOn(db: KvDb, opts: OpenOptions): Promise<LevelStorage> {
    try {
      const loaded = await load(db, opts);
      const mem = new MemoryStorage(loaded.snap ? loaded.snap.meta.conf : opts.bootstrapConf);
      if (loaded.snap && loaded.snap.meta.index > 0) {
        if (loaded.covered.length > 1) mem.applySnapshotKeeping(loaded.snap, loaded.covered);
        else mem.applySnapshot(loaded.snap);
      }
      mem.append(loaded.entries);
      if (loaded.hs) mem.setHardState(loaded.hs);
      return new LevelStorage(db, mem, loaded.app, opts.dir, loaded.sendable);
    } catch (e) {
      await db.close();
      throw e;
    }
  }

  // --- Storage (synchronous reads from the mirror) ---
  initialState(): { hardState: HardState; conf: ConfState } {
    // Before any snapshot, the mirror was built with the configured roster as its conf.
    return this.mem.initialState();
  }
  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    return this.mem.entries(lo, hi, maxBytes);
  }
  term(index: number): number {
    return this.mem.term(index);
  }
  firstIndex(): number {
    return this.mem.firstIndex();
  }
  lastIndex(): number {
    return this.mem.lastIndex();
  }
  snapshot(): Snapshot {
    return this.mem.snapshot();
  }
  hardState(): HardState {
    return this.mem.hardState();
  }

  /** Application state as verified at open (key relative to `app/`). Updated by every persist. */
  appValue(key: string): Uint8Array | undefined {
    return this.app.get(key);
  }
  appKeys(): IterableIterator<string> {
    return this.app.keys();
  }

  /** A cold application key (under COLD_PREFIX) read from disk; STORAGE_CORRUPT if its checksum fails. */
  async appRead(key: string): Promise<Uint8Array | undefined> {
    assert(isCold(key), `${key} is not a cold key`);
    const raw = await this.db.get(appKey(key));
    if (raw === undefined) return undefined;
    const p = unseal(raw);
    if (typeof p === 'string') throw new CustodyError('STORAGE_CORRUPT', `${key} in ${this.dir}: ${p}`);
    return view(p);
  }

  /**
   * Several cold keys read at once, in the order asked (undefined where absent), each value's
   * checksum verified as appRead does. One LevelDB request instead of one per key: what serving a
   * range of the archive costs is then the disk, not a round trip through the thread pool per key.
   */
  async appReadMany(keys: readonly string[]): Promise<(Uint8Array | undefined)[]> {
    for (const key of keys) assert(isCold(key), `${key} is not a cold key`);
    const raw = this.db.getMany ? await this.db.getMany(keys.map(appKey)) : await Promise.all(keys.map((k) => this.db.get(appKey(k))));
    return raw.map((v, i) => {
      if (v === undefined || v === null) return undefined;
      const p = unseal(v);
      if (typeof p === 'string') throw new CustodyError('STORAGE_CORRUPT', `${keys[i]} in ${this.dir}: ${p}`);
      return view(p);
    });
  }

  /**
   * Writes what LevelDB holds in its write buffer out as a table file of its own, and waits for
   * it. A writer that puts a long run of keys of one kind (the archive's records) and then keys of
   * another (their index entries) seals between the two, so that no table file holds both: a file
   * spanning the gap between two key ranges overlaps every later file of either, and LevelDB would
   * rewrite them all, level after level (node/ledger-app.ts IndexRuns). On LevelDB this is its
   * CompactRange over a range no key is in: the write buffer is written out (DBImpl::CompactRange
   * always does that first) and no table is compacted. Without compactRange (the simulator's
   * disk), nothing to do: the order of writes is all that matters there.
   */
  async sealWrites(): Promise<void> {
    if (this.db.compactRange) await this.db.compactRange(EMPTY_RANGE[0], EMPTY_RANGE[1]);
  }

  /**
   * Cold keys under `prefix` in key order, from one consistent view: a LevelDB iterator reads the
   * snapshot of the store taken when it was created, whatever is written meanwhile. With `range`,
   * only keys `from` <= key < `to` (full keys, both under `prefix`): the iterator seeks to `from`
   * instead of walking the prefix from its start.
   */
  async *appScan(prefix: string, range: { readonly from?: string; readonly to?: string } = {}): AsyncGenerator<[string, Uint8Array]> {
    assert(isCold(prefix), `${prefix} is not a cold prefix`);
    assert((range.from === undefined || range.from.startsWith(prefix)) && (range.to === undefined || range.to.startsWith(prefix)), `scan range outside ${prefix}`);
    const lo = appKey(range.from ?? prefix);
    const hi = range.to !== undefined ? appKey(range.to) : Buffer.concat([appKey(prefix), Buffer.from([0xff])]);
    for await (const [k, v] of this.db.iterator({ gte: lo, lt: hi })) {
      const key = k.toString('utf8', APP_PREFIX.length);
      const p = unseal(v);
      if (typeof p === 'string') throw new CustodyError('STORAGE_CORRUPT', `${key} in ${this.dir}: ${p}`);
      yield [key, view(p)];
    }
  }

  /** Write one Ready (and the application's writes) durably, then update the mirror. */
  async persist(p: PersistBatch): Promise<PersistStats> {
    const ops: Op[] = [];
    let bytes = 0;
    const put = (key: Buffer, value: Buffer): void => {
      ops.push({ type: 'put', key, value });
      bytes += key.length + value.length;
    };
    let last = this.mem.lastIndex();
    if (p.snapshot) {
      // Installing a snapshot replaces the whole log (MemoryStorage.applySnapshot does the same).
      for (let i = this.mem.firstIndex(); i <= last; i++) ops.push({ type: 'del', key: logKey(i) });
      put(KEY_SNAP, encodeSnapshot(p.snapshot));
      last = p.snapshot.meta.index;
    }
    if (p.entries.length > 0) {
      const first = (p.entries[0] as Entry).index;
      const newLast = first + p.entries.length - 1;
      // Raft §5.3: a conflicting suffix is deleted before the new entries are appended.
      for (let i = Math.max(newLast + 1, this.mem.firstIndex()); i <= last; i++) ops.push({ type: 'del', key: logKey(i) });
      for (const e of p.entries) put(logKey(e.index), encodeEntry(e));
    }
    if (p.hardState) put(KEY_HS, encodeHardState(p.hardState));
    for (const w of p.app) {
      if (w.value === null) ops.push({ type: 'del', key: appKey(w.key) });
      else put(appKey(w.key), seal(w.value)); // same envelope as the log: a corrupt ledger row is caught too
    }
    const t0 = performance.now();
    if (ops.length > 0) await this.db.batch(ops, { sync: p.sync });
    const writeMs = performance.now() - t0;
    if (p.snapshot) this.mem.applySnapshot(p.snapshot);
    if (p.entries.length > 0) this.mem.append(p.entries);
    if (p.hardState) this.mem.setHardState(p.hardState);
    for (const w of p.app) {
      if (isCold(w.key)) continue;
      if (w.value === null) this.app.delete(w.key);
      else this.app.set(w.key, w.value);
    }
    return { ops: ops.length, bytes, writeMs };
  }

  /**
   * Record a snapshot the application took at `index` (already applied and persisted) and drop
   * log entries up to `compactTo` (<= index), in one batch. Unsynced: the batch is atomic, and a
   * later synced batch carries it to disk (LevelDB's log is ordered); losing it on a crash only
   * means the log is compacted later.
   */
  async snapshotAndCompact(index: number, conf: ConfState, data: Uint8Array, compactTo: number): Promise<void> {
    assert(compactTo <= index, 'compaction stays within the snapshot');
    if (index <= this.mem.snapshot().meta.index) return;
    const snap: Snapshot = { meta: { index, term: this.mem.term(index), conf }, data };
    const ops: Op[] = [{ type: 'put', key: KEY_SNAP, value: encodeSnapshot(snap) }];
    for (let i = this.mem.firstIndex(); i <= compactTo; i++) ops.push({ type: 'del', key: logKey(i) });
    await this.db.batch(ops, { sync: false });
    this.mem.createSnapshot(index, conf, data);
    this.mem.compact(compactTo);
  }

  /**
   * Drop log entries up to `compactTo` (at most the stored snapshot's index). Unsynced, as in
   * snapshotAndCompact: losing it on a crash only means the log is compacted later.
   */
  async compact(compactTo: number): Promise<void> {
    assert(compactTo <= this.mem.snapshot().meta.index, 'compaction stays within the snapshot');
    if (compactTo < this.mem.firstIndex()) return;
    const ops: Op[] = [];
    for (let i = this.mem.firstIndex(); i <= compactTo; i++) ops.push({ type: 'del', key: logKey(i) });
    await this.db.batch(ops, { sync: false });
    this.mem.compact(compactTo);
  }

  /**
   * A certified snapshot kept beside the stored one, to send followers while the stored snapshot
   * is not certified yet (raft/driver.ts, certified snapshots), or null.
   */
  sendableSnapshot(): Snapshot | null {
    return this.sendable;
  }

  /**
   * Keep `s` as the snapshot to send. Unsynced: LevelDB writes its batches in order, so a
   * compaction written after this (which may drop entries only this snapshot covers) is never on
   * disk without it.
   */
  async keepSendable(s: Snapshot): Promise<void> {
    await this.db.batch([{ type: 'put', key: KEY_SNAP_SEND, value: encodeSnapshot(s) }], { sync: false });
    this.sendable = s;
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

interface Loaded {
  hs: HardState | null;
  snap: Snapshot | null;
  /** Entries the snapshot covers, kept on disk for followers that catch up by log: a contiguous run ending at the snapshot's index, or empty. */
  covered: Entry[];
  entries: Entry[];
  app: Map<string, Uint8Array>;
  sendable: Snapshot | null;
}

async function load(db: Db, opts: OpenOptions): Promise<Loaded> {
  const corrupt = (key: Uint8Array | string, why: string): CustodyError =>
    new CustodyError(
      'STORAGE_CORRUPT',
      `${typeof key === 'string' ? key : describeKey(key)} in ${opts.dir}: ${why}. The store is corrupt or torn and this node ` +
        `refuses to start rather than serve or vote from it. Recover: ${opts.recoveryHint}`,
    );

  let hs: HardState | null = null;
  const hsRaw = await db.get(KEY_HS);
  if (hsRaw !== undefined) {
    const p = unseal(hsRaw);
    if (typeof p === 'string') throw corrupt(KEY_HS, p);
    const d = decodeHardState(p);
    if (typeof d === 'string') throw corrupt(KEY_HS, d);
    hs = d;
  }

  let snap: Snapshot | null = null;
  const snapRaw = await db.get(KEY_SNAP);
  if (snapRaw !== undefined) {
    const p = unseal(snapRaw);
    if (typeof p === 'string') throw corrupt(KEY_SNAP, p);
    const d = decodeSnapshot(p);
    if (typeof d === 'string') throw corrupt(KEY_SNAP, d);
    snap = d;
  }
  // Without a stored snapshot the log continues from the bootstrap point MemoryStorage records
  // for the configured roster.
  const snapIndex = snap?.meta.index ?? new MemoryStorage(opts.bootstrapConf).snapshot().meta.index;

  const entries: Entry[] = [];
  const covered: Entry[] = [];
  const upper = Buffer.concat([LOG_PREFIX, Buffer.alloc(8, 0xff)]);
  for await (const [k, v] of db.iterator({ gte: LOG_PREFIX, lte: upper })) {
    const idx = logKeyIndex(k);
    if (idx === null) throw corrupt(k, 'malformed log key');
    const p = unseal(v);
    if (typeof p === 'string') throw corrupt(k, p);
    const e = decodeEntry(p);
    if (typeof e === 'string') throw corrupt(k, e);
    if (e.index !== idx) throw corrupt(k, `holds entry index ${e.index}, not ${idx} (a misplaced value)`);
    // Entries the snapshot covers are kept so slow followers can catch up by log: the mirror keeps
    // the contiguous run that ends at the snapshot (below any gap, entries are left to compaction).
    if (idx <= snapIndex) {
      const prev = covered.length > 0 ? (covered[covered.length - 1] as Entry).index : null;
      if (prev !== null && (idx !== prev + 1 || e.term < (covered[covered.length - 1] as Entry).term)) covered.length = 0;
      covered.push(e);
      continue;
    }
    const prev = entries.length > 0 ? (entries[entries.length - 1] as Entry).index : snapIndex;
    if (idx !== prev + 1) throw corrupt(k, `the log has a gap: entries ${prev + 1}..${idx - 1} are missing`);
    if (entries.length > 0 && e.term < (entries[entries.length - 1] as Entry).term) throw corrupt(k, 'entry terms decrease along the log');
    entries.push(e);
  }
  // The run must end at the snapshot's own index and term, or it is not the log the snapshot covers.
  const end = covered[covered.length - 1];
  if (snap === null || end === undefined || end.index !== snapIndex || end.term !== snap.meta.term) covered.length = 0;

  let sendable: Snapshot | null = null;
  const sendRaw = await db.get(KEY_SNAP_SEND);
  if (sendRaw !== undefined) {
    const p = unseal(sendRaw);
    if (typeof p === 'string') throw corrupt(KEY_SNAP_SEND, p);
    const d = decodeSnapshot(p);
    if (typeof d === 'string') throw corrupt(KEY_SNAP_SEND, d);
    sendable = d;
  }
  const lastIndex = entries.length > 0 ? (entries[entries.length - 1] as Entry).index : snapIndex;
  if (hs && hs.commit > lastIndex) {
    throw corrupt(KEY_HS, `commit index ${hs.commit} is past the last stored entry ${lastIndex} (the log tail is missing)`);
  }

  const app = new Map<string, Uint8Array>();
  const appUpper = Buffer.concat([APP_PREFIX.subarray(0, APP_PREFIX.length - 1), Buffer.from([APP_PREFIX[APP_PREFIX.length - 1]! + 1])]);
  const coldLo = appKey(COLD_PREFIX);
  const coldHi = Buffer.concat([coldLo, Buffer.from([0xff])]);
  for await (const [k, v] of db.iterator({ gte: APP_PREFIX, lt: coldLo })) load1(k, v);
  for await (const [k, v] of db.iterator({ gte: coldHi, lt: appUpper })) load1(k, v);
  function load1(k: Buffer, v: Buffer): void {
    const p = unseal(v);
    if (typeof p === 'string') throw corrupt(k, p);
    app.set(Buffer.from(k.subarray(APP_PREFIX.length)).toString('utf8'), new Uint8Array(p));
  }
  return { hs, snap, covered, entries, app, sendable };
}

/**
 * The documented recovery for a corrupt node: delete its log, snapshot and application state so it
 * re-syncs from its peers (the leader sends a snapshot and the log suffix).
 *
 * The term and vote are kept when their checksum verifies: a voter that forgot its vote could vote
 * twice in one term and let two leaders be elected (Raft §5.2, Figure 2 "persistent state"). If the
 * hard state itself is corrupt the wipe refuses unless `discardVote` is set. `restored` (a store
 * copied back from an old image) keeps no term and vote either: they may be older than a vote the
 * node gave. Without a kept term the marker tells the node's rollback gate that a vote may be lost,
 * so it waits for every voter's answer before voting again (node/splitbrain/rollback.ts rule (b)).
 */
export async function wipeStore(dir: string, opts: { discardVote: boolean; restored?: boolean }): Promise<{ keptTerm: number | null }> {
  let kept: HardState | null = null;
  // The incarnation a restore gave the store (node/backup/incarnation.ts): the wiped node re-syncs
  // from its own cluster, whose peers refuse any other incarnation.
  let incarnation: Buffer | undefined;
  const db = levelDb(dir, false);
  let opened = false;
  try {
    await db.open();
    opened = true;
  } catch (e) {
    // A missing store has nothing to keep; anything else (held by a running node, unreadable)
    // must not be deleted from under its owner.
    const why = `${(e as Error).message} ${(e as { cause?: Error }).cause?.message ?? ''}`;
    if (!/does not exist/.test(why)) {
      throw new CustodyError('INVALID_ARGUMENT', `cannot open ${dir} to wipe it (${why.trim()}); is the node still running? Stop it first`);
    }
  }
  if (opened && opts.restored === true) {
    try {
      incarnation = await db.get(appKey('meta/incarnation'));
    } finally {
      await db.close();
    }
  } else if (opened) {
    try {
      const raw = await db.get(KEY_HS);
      if (raw !== undefined) {
        const p = unseal(raw);
        const d = typeof p === 'string' ? p : decodeHardState(p);
        if (typeof d === 'string') {
          if (!opts.discardVote) {
            throw new CustodyError('STORAGE_CORRUPT', `the hard state (term and vote) in ${dir} is itself corrupt (${d}); wiping it could let this node vote twice in one term. Wipe with --discard-vote: the node then votes again only once every other voter has answered`);
          }
        } else kept = d;
      }
      incarnation = await db.get(appKey('meta/incarnation'));
    } finally {
      await db.close();
    }
  }
  await rm(dir, { recursive: true, force: true });
  const fresh = levelDb(dir);
  await fresh.open();
  await fresh.batch(wipedStoreOps(kept, incarnation), { sync: true });
  await fresh.close();
  return { keptTerm: kept ? kept.term : null };
}

/** What a wiped store holds: the kept term and vote, the store's incarnation, and the marker that the log was lost. */
export function wipedStoreOps(kept: HardState | null, incarnation?: Buffer): Op[] {
  const ops: Op[] = [
    // Tells the driver the log was lost: it grants no votes until it has caught up (driver.ts).
    { type: 'put', key: appKey('meta/recovering'), value: seal(Buffer.from(JSON.stringify({ keptTerm: kept?.term ?? null }))) },
  ];
  // commit 0: the log is gone, and commit must never exceed the last stored index.
  if (kept) ops.push({ type: 'put', key: KEY_HS, value: encodeHardState({ term: kept.term, vote: kept.vote, commit: 0 }) });
  if (incarnation !== undefined) ops.push({ type: 'put', key: appKey('meta/incarnation'), value: incarnation });
  return ops;
}
