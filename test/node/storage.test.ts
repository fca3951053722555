import t from 'tap';
import fc from 'fast-check';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { LevelStorage, wipeStore } from '../../raft/storage/leveldb.js';
import { logKey, KEY_HS } from '../../raft/storage/codec.js';
import { crc32c } from '../../raft/storage/crc32c.js';
import type { ConfState, Entry } from '../../raft/core/types.js';
import { CustodyError } from '../../proto/errors.js';
import { raft as raftLimits } from '../../proto/limits.js';

const conf: ConfState = { voters: ['n1', 'n2', 'n3'], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
const hint = 'custody node wipe --config n1.yaml';
// A failing property prints its seed and path; replay it with FC_SEED=<seed> FC_PATH=<path>.
const replay = {
  ...(process.env.FC_SEED !== undefined ? { seed: Number(process.env.FC_SEED) } : {}),
  ...(process.env.FC_PATH !== undefined ? { path: process.env.FC_PATH } : {}),
};
// Log-layout tests use a store without a bootstrap roster, so the log starts at index 1.
const noRoster: ConfState = { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };

function ents(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push({ term, index: i, type: 'normal', data: Buffer.from(`v${i}@${term}`) });
  return out;
}

async function tempDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'custody-storage-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  return d;
}
async function reasonOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return e instanceof CustodyError ? e.reason : String(e);
  }
}

async function rawDb(dir: string): Promise<Level<Buffer, Buffer>> {
  const db = new Level<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  return db;
}

t.test('CRC-32C matches the RFC 3720 §B.4 check value', async (t) => {
  t.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  t.equal(crc32c(Buffer.alloc(32, 0)), 0x8a9136aa, '32 zero bytes (RFC 3720 B.4 example)');
});

/** CRC-32C one bit at a time, straight from the reflected polynomial: what the tables must agree with. */
function crcBitwise(data: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

t.test('property: CRC-32C eight bytes at a time equals the bit-at-a-time CRC, at any length, offset and continuation', async (t) => {
  await fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(7), fc.nat(300), (bytes, offset, cut) => {
    const view = bytes.subarray(Math.min(offset, bytes.length)); // not aligned to its buffer
    const at = Math.min(cut, view.length);
    const whole = crc32c(view);
    return whole === crcBitwise(view) && crc32c(view.subarray(at), crc32c(view.subarray(0, at))) === whole;
  }), { numRuns: 500, ...replay });
  t.equal(crc32c(Buffer.alloc(0)), 0, 'the empty input');
  t.equal(crc32c(Buffer.from('123456789abcdefgh')), crcBitwise(Buffer.from('123456789abcdefgh')), 'two eight-byte steps and a tail');
});

t.test('hard state, entries and application state survive a reopen', async (t) => {
  const dir = await tempDir(t);
  const boot = await LevelStorage.open({ dir: dir + '-boot', bootstrapConf: conf, recoveryHint: hint });
  t.same(boot.initialState().conf.voters, ['n1', 'n2', 'n3'], 'bootstrap roster before any snapshot');
  await boot.close();
  await rm(dir + '-boot', { recursive: true, force: true });
  let s = await LevelStorage.open({ dir, bootstrapConf: noRoster, recoveryHint: hint });
  await s.persist({ hardState: { term: 2, vote: 'n1', commit: 3 }, entries: ents(1, 5, 2), snapshot: null, app: [{ key: 'applied', value: Buffer.from('3') }], sync: true });
  await s.close();
  s = await LevelStorage.open({ dir, bootstrapConf: noRoster, recoveryHint: hint });
  t.same(s.initialState().hardState, { term: 2, vote: 'n1', commit: 3 });
  t.equal(s.lastIndex(), 5);
  t.equal(s.term(4), 2);
  t.equal(Buffer.from(s.entries(2, 4, 1 << 20)[1]!.data).toString(), 'v3@2');
  t.equal(Buffer.from(s.appValue('applied')!).toString(), '3');
  await s.close();
});

t.test('cold scans read in chunks: every key once, in order, across chunk boundaries, and a scan broken off closes', async (t) => {
  const dir = await tempDir(t);
  const s = await LevelStorage.open({ dir, bootstrapConf: noRoster, recoveryHint: hint });
  t.teardown(() => s.close());
  // More keys than one chunk holds (raft.storeScanEntries), values of varied sizes (some past the
  // read-ahead, raft.storeScanReadAheadBytes, on their own), deleted keys among them.
  const n = 2 * raftLimits.storeScanEntries + 37;
  const key = (i: number): string => `sm/archive/log/${String(i).padStart(16, '0')}`;
  const value = (i: number): Buffer => Buffer.alloc(i % 997 === 0 ? raftLimits.storeScanReadAheadBytes + 1 : 1 + (i % 300), i & 0xff);
  const app = Array.from({ length: n }, (_, i) => ({ key: key(i), value: value(i) as Uint8Array | null }));
  for (let i = 5; i < n; i += 211) app.push({ key: key(i), value: null });
  await s.persist({ hardState: null, entries: [], snapshot: null, app, sync: true });
  const deleted = (i: number): boolean => i >= 5 && (i - 5) % 211 === 0;
  const want = [...Array(n).keys()].filter((i) => !deleted(i));
  const got: number[] = [];
  let wrong = 0;
  for await (const [k, v] of s.appScan('sm/archive/log/')) {
    const i = Number(k.slice('sm/archive/log/'.length));
    got.push(i);
    if (!Buffer.from(v).equals(value(i))) wrong++;
  }
  t.same(got, want, `${want.length} keys, each once, in order`);
  t.equal(wrong, 0, 'every value as written');
  const from = raftLimits.storeScanEntries - 3;
  const ranged: number[] = [];
  for await (const [k] of s.appScan('sm/archive/log/', { from: key(from), to: key(from + 10) })) ranged.push(Number(k.slice('sm/archive/log/'.length)));
  t.same(ranged, want.filter((i) => i >= from && i < from + 10), 'a range across a chunk boundary');
  for (let round = 0; round < 3; round++) {
    let seen = 0;
    for await (const _ of s.appScan('sm/archive/log/')) if (++seen === 10) break;
    t.equal(seen, 10, `scan ${round + 1} broken off after 10 keys`);
  }
  t.equal(Buffer.from((await s.appRead(key(n - 1))) as Uint8Array).equals(value(n - 1)), true, 'reads go on after broken-off scans');
});

t.test('sealing the write buffer writes it out as a table of its own; the store reads the same after', async (t) => {
  const dir = await tempDir(t);
  const s = await LevelStorage.open({ dir, bootstrapConf: noRoster, recoveryHint: hint });
  const tables = async (): Promise<number> => ((await readFile(join(dir, 'LOG'), 'utf8')).match(/Level-0 table #\d+: [1-9]\d* bytes OK/g) ?? []).length;
  const before = await tables();
  const app = Array.from({ length: 100 }, (_, i) => ({ key: `sm/archive/log/${String(i).padStart(16, '0')}`, value: Buffer.alloc(100, i) as Uint8Array }));
  await s.persist({ hardState: null, entries: [], snapshot: null, app, sync: false });
  await s.sealWrites();
  t.equal(await tables(), before + 1, 'one table written, holding what the write buffer held');
  await s.sealWrites();
  t.equal(await tables(), before + 1, 'an empty write buffer writes none');
  await s.persist({ hardState: null, entries: [], snapshot: null, app: [{ key: 'sm/archive/op/x', value: Buffer.from([1]) }], sync: true });
  await s.close();
  const again = await LevelStorage.open({ dir, bootstrapConf: noRoster, recoveryHint: hint });
  t.teardown(() => again.close());
  t.same(Buffer.from((await again.appRead('sm/archive/log/0000000000000042')) as Uint8Array), Buffer.alloc(100, 42), 'a sealed write reads back after a reopen');
  t.same(Buffer.from((await again.appRead('sm/archive/op/x')) as Uint8Array), Buffer.from([1]), 'and a write after the seal');
});

t.test('appending at a conflicting index deletes the old suffix on disk (§5.3)', async (t) => {
  const dir = await tempDir(t);
  let s = await LevelStorage.open({ dir, bootstrapConf: noRoster, recoveryHint: hint });
  await s.persist({ hardState: { term: 1, vote: null, commit: 0 }, entries: ents(1, 10, 1), snapshot: null, app: [], sync: true });
  await s.persist({ hardState: { term: 3, vote: null, commit: 0 }, entries: ents(4, 6, 3), snapshot: null, app: [], sync: true });
  t.equal(s.lastIndex(), 6);
  await s.close();
  s = await LevelStorage.open({ dir, bootstrapConf: noRoster, recoveryHint: hint });
  t.equal(s.lastIndex(), 6, 'entries 7..10 of the old term are gone from disk too');
  t.equal(s.term(5), 3);
  t.equal(s.term(3), 1);
  await s.close();
});

t.test('a snapshot with compaction, and an installed snapshot, survive a reopen', async (t) => {
  const dir = await tempDir(t);
  let s = await LevelStorage.open({ dir, bootstrapConf: noRoster, recoveryHint: hint });
  await s.persist({ hardState: { term: 1, vote: null, commit: 20 }, entries: ents(1, 20, 1), snapshot: null, app: [], sync: true });
  await s.snapshotAndCompact(15, conf, Buffer.from('image@15'), 12);
  t.equal(s.firstIndex(), 13, 'entries after the compaction point stay for slow followers');
  await s.close();
  s = await LevelStorage.open({ dir, bootstrapConf: noRoster, recoveryHint: hint });
  // The entries kept below the snapshot are still served after a restart (the first of them, 13,
  // carries its term as the mirror's dummy), so a slow follower still catches up by log.
  t.equal(s.firstIndex(), 14, 'after a restart the entries kept for slow followers are still there');
  t.equal(s.term(13), 1);
  t.same(s.entries(14, 16, Infinity).map((e) => e.index), [14, 15]);
  t.equal(s.lastIndex(), 20);
  t.equal(s.snapshot().meta.index, 15);
  t.equal(Buffer.from(s.snapshot().data).toString(), 'image@15');
  // A later compaction drops them, on disk too.
  await s.compact(15);
  t.equal(s.firstIndex(), 16);
  await s.close();
  s = await LevelStorage.open({ dir, bootstrapConf: noRoster, recoveryHint: hint });
  t.equal(s.firstIndex(), 16, 'after compacting to the snapshot, the log resumes right after it');
  t.equal(s.lastIndex(), 20);
  // Install a leader's snapshot past our log: the whole log is replaced.
  const snap = { meta: { index: 100, term: 4, conf }, data: Buffer.from('image@100') };
  await s.persist({ hardState: { term: 4, vote: null, commit: 100 }, entries: [], snapshot: snap, app: [{ key: 'applied', value: Buffer.from('100') }], sync: true });
  await s.persist({ hardState: null, entries: ents(101, 102, 4), snapshot: null, app: [], sync: true });
  await s.close();
  s = await LevelStorage.open({ dir, bootstrapConf: noRoster, recoveryHint: hint });
  t.equal(s.firstIndex(), 101);
  t.equal(s.lastIndex(), 102);
  t.equal(s.term(100), 4);
  t.equal(s.initialState().hardState.commit, 100);
  await s.close();
});

t.test('a certified snapshot kept to send survives a reopen beside a newer stored one', async (t) => {
  const dir = await tempDir(t);
  let s = await LevelStorage.open({ dir, bootstrapConf: noRoster, recoveryHint: hint });
  t.equal(s.sendableSnapshot(), null, 'a new store keeps none');
  await s.persist({ hardState: { term: 2, vote: null, commit: 30 }, entries: ents(1, 30, 2), snapshot: null, app: [], sync: true });
  await s.snapshotAndCompact(10, conf, Buffer.from('image@10'), 0);
  await s.keepSendable({ meta: { index: 10, term: 2, conf }, data: Buffer.from('image@10+cert') });
  await s.compact(9); // as the driver does: up to the entry before the kept snapshot
  await s.snapshotAndCompact(20, conf, Buffer.from('image@20'), 9);
  await s.close();
  s = await LevelStorage.open({ dir, bootstrapConf: noRoster, recoveryHint: hint });
  t.equal(s.snapshot().meta.index, 20, 'the stored snapshot is the newest');
  t.equal(s.sendableSnapshot()?.meta.index, 10, 'the kept one is the certified one');
  t.equal(Buffer.from(s.sendableSnapshot()?.data ?? []).toString(), 'image@10+cert');
  t.equal(s.firstIndex(), 11, 'the log still extends the kept snapshot (10 carries the term)');
  t.same(s.entries(11, 21, Infinity).map((e) => e.index), [11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
  await s.close();
});

t.test('a flipped bit in a stored entry is refused at open, naming the key and the recovery', async (t) => {
  const dir = await tempDir(t);
  const s = await LevelStorage.open({ dir, bootstrapConf: noRoster, recoveryHint: hint });
  await s.persist({ hardState: { term: 1, vote: 'n2', commit: 5 }, entries: ents(1, 8, 1), snapshot: null, app: [], sync: true });
  await s.close();
  const db = await rawDb(dir);
  const v = Buffer.from((await db.get(logKey(4)))!);
  v[v.length - 1] = v[v.length - 1]! ^ 0x01;
  await db.put(logKey(4), v);
  await db.close();
  const err = await LevelStorage.open({ dir, bootstrapConf: noRoster, recoveryHint: hint }).catch((e: unknown) => e);
  t.ok(err instanceof CustodyError, 'a CustodyError');
  t.equal((err as CustodyError).reason, 'STORAGE_CORRUPT');
  t.match((err as CustodyError).detail, /raft\/log\/0000000000000004 \(entry index 4\)/);
  t.match((err as CustodyError).detail, /CRC-32C mismatch/);
  t.match((err as CustodyError).detail, /custody node wipe --config n1\.yaml/);
});

t.test('a torn log tail (commit past the last entry) and a gap are refused at open', async (t) => {
  const dir = await tempDir(t);
  const s = await LevelStorage.open({ dir, bootstrapConf: noRoster, recoveryHint: hint });
  await s.persist({ hardState: { term: 1, vote: null, commit: 8 }, entries: ents(1, 8, 1), snapshot: null, app: [], sync: true });
  await s.close();
  const db = await rawDb(dir);
  await db.del(logKey(8));
  await db.close();
  let err = await LevelStorage.open({ dir, bootstrapConf: noRoster, recoveryHint: hint }).catch((e: unknown) => e);
  t.equal((err as CustodyError).reason, 'STORAGE_CORRUPT');
  t.match((err as CustodyError).detail, /commit index 8 is past the last stored entry 7/);
  const db2 = await rawDb(dir);
  await db2.del(logKey(3));
  await db2.close();
  err = await LevelStorage.open({ dir, bootstrapConf: noRoster, recoveryHint: hint }).catch((e: unknown) => e);
  t.match((err as CustodyError).detail, /entries 3\.\.3 are missing/);
});

t.test('a corrupt hard state is refused; wipe keeps a verified term and vote', async (t) => {
  const dir = await tempDir(t);
  const s = await LevelStorage.open({ dir, bootstrapConf: noRoster, recoveryHint: hint });
  await s.persist({ hardState: { term: 7, vote: 'n3', commit: 4 }, entries: ents(1, 8, 7), snapshot: null, app: [{ key: 'x', value: Buffer.from('y') }], sync: true });
  await s.close();
  // Corrupt an entry, then recover by wiping: the vote for term 7 must survive.
  const db = await rawDb(dir);
  const v = Buffer.from((await db.get(logKey(2)))!);
  v[6] = v[6]! ^ 0xff;
  await db.put(logKey(2), v);
  await db.close();
  t.equal(await reasonOf(LevelStorage.open({ dir, bootstrapConf: noRoster, recoveryHint: hint })), 'STORAGE_CORRUPT');
  const r = await wipeStore(dir, { discardVote: false });
  t.equal(r.keptTerm, 7);
  const s2 = await LevelStorage.open({ dir, bootstrapConf: noRoster, recoveryHint: hint });
  t.same(s2.initialState().hardState, { term: 7, vote: 'n3', commit: 0 });
  t.equal(s2.lastIndex(), 0);
  t.equal(s2.appValue('x'), undefined);
  await s2.close();
  // Corrupt the hard state itself: wipe refuses without --discard-vote.
  const db3 = await rawDb(dir);
  const h = Buffer.from((await db3.get(KEY_HS))!);
  h[h.length - 2] = h[h.length - 2]! ^ 0x10;
  await db3.put(KEY_HS, h);
  await db3.close();
  const e = await LevelStorage.open({ dir, bootstrapConf: noRoster, recoveryHint: hint }).catch((x: unknown) => x);
  t.match((e as CustodyError).detail, /raft\/hs/);
  t.equal(await reasonOf(wipeStore(dir, { discardVote: false })), 'STORAGE_CORRUPT', 'wipe refuses to forget a vote it cannot read');
  t.same(await wipeStore(dir, { discardVote: true }), { keptTerm: null });
});
