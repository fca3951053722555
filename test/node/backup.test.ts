/**
 * The cluster snapshot file (node/backup/format.ts) and `custody cluster restore`
 * (node/backup/restore.ts), without daemons: the file round-trips however it is chunked and
 * however its bytes arrive; every truncation and every flipped byte is refused SNAPSHOT_INVALID;
 * a restore refuses a bad file, a wrong root, a foreign node or a used data directory and writes
 * nothing; a good one seeds stores on which three Raft drivers elect a leader at the saved state
 * root and go on committing; every restore draws a new incarnation, and a wipe keeps it.
 * The daemon-level proof (save over the admin API, evidence, the old node refused on the peer
 * protocol) is test/lifecycle/backup-restore.test.ts.
 */
import t from 'tap';
import fc from 'fast-check';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCustodyError } from '../../proto/errors.js';
import { backup as limits } from '../../proto/limits.js';
import { RaftCore } from '../../raft/core/raft.js';
import { SeededRng } from '../../raft/core/rng.js';
import { Driver } from '../../raft/driver.js';
import { LevelStorage, wipeStore } from '../../raft/storage/leveldb.js';
import { systemClock } from '../../raft/transport.js';
import { UNLIMITED_RATE_POLICY, ScriptedCluster } from '../../ledger/scenario.js';
import { LedgerApp, decodeVerdict, encodeLedgerCommand, levelColdStore } from '../../node/ledger-app.js';
import { snapshotFrames } from '../../node/backup/source.js';
import { SNAPSHOT_FORMAT, SnapshotEncoder, SnapshotParser, readSnapshotFile, type SnapshotHeader } from '../../node/backup/format.js';
import { INCARNATION_KEY, incarnationOf, incarnationRefusal } from '../../node/backup/incarnation.js';
import { restoreCluster } from '../../node/backup/restore.js';
import { Hub, until } from '../../node/lifecycle/local-cluster.js';
import { rid } from '../../ledger/scenario.js';

const header = (over: Partial<SnapshotHeader> = {}): SnapshotHeader => ({
  format: SNAPSHOT_FORMAT, clusterId: 'cluster-1', incarnation: '', index: 42, term: 3, stateRoot: 'ab'.repeat(32), ledgerIndex: 40,
  membership: { voters: ['node-0', 'node-1', 'node-2'], learners: [] }, nodes: ['node-0', 'node-1', 'node-2'], takenFrom: 'node-1', takenAtMs: 1_700_000_000_000, ...over,
});

function fileOf(h: SnapshotHeader, state: Uint8Array): Buffer {
  const e = new SnapshotEncoder();
  return Buffer.concat([e.start(h), ...e.chunk(state), e.finish()]);
}

function parseAll(bytes: Uint8Array, cuts: readonly number[] = []): { chunks: Buffer[]; summary: ReturnType<SnapshotParser['end']> } {
  const chunks: Buffer[] = [];
  const p = new SnapshotParser('test', (c) => chunks.push(c));
  let at = 0;
  for (const c of [...cuts].sort((a, b) => a - b)) {
    p.push(bytes.subarray(at, c));
    at = c;
  }
  p.push(bytes.subarray(at));
  return { chunks, summary: p.end() };
}

function refusedInvalid(f: () => unknown): boolean {
  try {
    f();
    return false;
  } catch (e) {
    return isCustodyError(e) && e.reason === 'SNAPSHOT_INVALID';
  }
}

t.test('a snapshot file round-trips whatever the state size and however its bytes arrive', (t) => {
  t.doesNotThrow(() => fc.assert(fc.property(
    fc.integer({ min: 0, max: Math.floor(limits.chunkBytes * 2.5) }), fc.integer({ min: 0, max: 255 }), fc.array(fc.nat(), { maxLength: 12 }),
    (size, fill, rawCuts) => {
      const state = Buffer.alloc(size);
      for (let i = 0; i < size; i += 4099) state[i] = (fill + i) & 0xff;
      const file = fileOf(header(), state);
      const { chunks, summary } = parseAll(file, rawCuts.map((c) => c % (file.length + 1)));
      return Buffer.concat(chunks).equals(state) && summary.stateBytes === size && summary.chunks === Math.ceil(size / limits.chunkBytes) &&
        summary.fileBytes === file.length && summary.header.index === 42 && chunks.every((c) => c.length <= limits.chunkBytes);
    },
  ), { numRuns: 40 }), '40 random states and arrival patterns round-trip (fast-check prints a failing seed and path)');
  t.end();
});

t.test('every truncation, every flipped byte and any trailing byte is refused SNAPSHOT_INVALID', (t) => {
  const file = fileOf(header(), Buffer.from('the ledger state '.repeat(12)));
  let truncations = 0;
  for (let n = 0; n < file.length; n++) if (refusedInvalid(() => parseAll(file.subarray(0, n)))) truncations++;
  t.equal(truncations, file.length, `all ${file.length} proper prefixes refused`);
  let flips = 0;
  for (let i = 0; i < file.length; i++) {
    const b = Buffer.from(file);
    b[i] = (b[i] as number) ^ 0x01;
    if (refusedInvalid(() => parseAll(b))) flips++;
  }
  t.equal(flips, file.length, `all ${file.length} single-bit flips refused`);
  t.ok(refusedInvalid(() => parseAll(Buffer.concat([file, Buffer.from([0])]))), 'a byte after the trailer is refused');
  t.ok(refusedInvalid(() => parseAll(Buffer.concat([file, file]))), 'two files back to back are refused');
  t.end();
});

// ------------------------------------------------------------------------------------------------
// Restore
// ------------------------------------------------------------------------------------------------

/**
 * A ledger with history (genesis, a key, `settled` acts taken to Settled, one act with a permit)
 * as the LedgerApp of a node holds it.
 */
function ledgerWithHistory(settled = 0): { app: LedgerApp; script: ScriptedCluster } {
  const script = new ScriptedCluster({ label: 'backup', policy: UNLIMITED_RATE_POLICY });
  script.genesis();
  script.createKey('k1');
  for (let i = 0; i < settled; i++) {
    const id = `done-${i}`;
    for (const r of [script.submit(id, script.act('k1')), script.issuePermit(id), script.execute(id), script.publish(id), script.settle(id)]) if (!r.ok) throw new Error(`${id}: ${r.reason}`);
  }
  script.submit('op-1', script.act('k1'));
  script.issuePermit('op-1');
  const app = new LedgerApp();
  for (const [i, e] of script.log.entries()) app.apply(i + 2, encodeLedgerCommand(e.stampMs, e.event));
  return { app, script };
}

function configDir(root: string, name: string, ids: readonly string[]): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  for (const id of ids) {
    writeFileSync(join(dir, `${id}.yaml`), [
      `id: ${id}`, `dataDir: data/${id}`, `listen: 127.0.0.1:${7000 + ids.indexOf(id)}`, `http: 127.0.0.1:${8000 + ids.indexOf(id)}`,
      'peers:', ...ids.map((p, j) => `  ${p}: 127.0.0.1:${7000 + j}`), `tls: { ca: certs/ca.crt, cert: certs/${id}.crt, key: certs/${id}.key }`, '',
    ].join('\n'));
  }
  return dir;
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'accepted';
  } catch (e) {
    return isCustodyError(e) ? `${e.reason}: ${e.detail}` : String(e);
  }
}

t.test('restore: bad files, wrong roots, foreign nodes and used directories are refused with nothing written; a good file seeds a cluster that elects, serves the saved root and commits', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'custody-restore-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const { app, script } = ledgerWithHistory(150);
  const stateBytes = (await app.snapshot()).length;
  t.ok(stateBytes > 256 * 1024, `a state of ${stateBytes} bytes, above the bound of one ledger event (a larger state once failed to restore)`);
  const ids = Object.keys(app.state.cluster?.nodes ?? {}).sort();
  const h = header({ clusterId: script.clusterId, index: 57, term: 4, stateRoot: app.root(), ledgerIndex: app.state.index, nodes: ids, membership: { voters: ids, learners: [] } });
  const good = join(root, 'good.snap');
  writeFileSync(good, fileOf(h, await app.snapshot()));
  const dir = configDir(root, 'new', ids);

  const flipped = Buffer.from(fileOf(h, await app.snapshot()));
  flipped[flipped.length - 100] = (flipped[flipped.length - 100] as number) ^ 0x80;
  writeFileSync(join(root, 'flipped.snap'), flipped);
  t.match(await refusal(restoreCluster(join(root, 'flipped.snap'), dir)), /^SNAPSHOT_INVALID: .*SHA-256 mismatch/, 'a flipped byte: SNAPSHOT_INVALID');
  writeFileSync(join(root, 'lying.snap'), fileOf({ ...h, stateRoot: 'cd'.repeat(32) }, await app.snapshot()));
  t.match(await refusal(restoreCluster(join(root, 'lying.snap'), dir)), /^SNAPSHOT_INVALID: .*the header says/, 'a header whose root the state does not produce: SNAPSHOT_INVALID');
  writeFileSync(join(root, 'garbage.snap'), fileOf(h, Buffer.from('not a ledger')));
  t.match(await refusal(restoreCluster(join(root, 'garbage.snap'), dir)), /^SNAPSHOT_INVALID: .*does not decode/, 'a state that is not a ledger: SNAPSHOT_INVALID');
  t.match(await refusal(restoreCluster(good, configDir(root, 'foreign', [...ids.slice(0, 2), 'node-9']))), /^CONFIG_INVALID: .*node-9 is not on the ledger's node roster/, 'a node the ledger does not know: CONFIG_INVALID');
  t.notOk(existsSync(join(dir, 'data')) || existsSync(join(root, 'foreign', 'data')), 'nothing was written by any refused restore');

  const report = await restoreCluster(good, dir);
  t.match(report.incarnation, /^[0-9a-f]{32}$/, 'a restore draws an incarnation');
  const second = await restoreCluster(good, configDir(root, 'drill', ids));
  t.not(second.incarnation, report.incarnation, 'another restore of the same file draws another: the two clusters refuse each other');
  t.match(await refusal(restoreCluster(good, dir)), /^CONFIG_INVALID: .*not empty/, 'a restore never overwrites a store');

  // Three drivers on the seeded stores.
  const hub = new Hub();
  const conf = { voters: ids, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
  const nodes: { id: string; storage: LevelStorage; app: LedgerApp; driver: Driver }[] = [];
  for (const id of ids) {
    const storage = await LevelStorage.open({ dir: join(dir, 'data', id), bootstrapConf: conf, recoveryHint: 'test' });
    t.equal(incarnationOf(storage.appValue(INCARNATION_KEY)), report.incarnation, `${id}: the store holds the incarnation`);
    const a = new LedgerApp();
    const driver = new Driver({
      id, storage, app: a, transport: hub.transport(id), clock: systemClock, newCore: (cfg) => new RaftCore(cfg), rng: new SeededRng(ids.indexOf(id) + 1),
      tickMs: 20, electionTicks: 10, heartbeatTicks: 1, preVote: true, checkQuorum: true, snapshotEveryEntries: 10_000, compactionKeepEntries: 5, onFatal: (e) => { throw e; },
    });
    hub.drivers.set(id, driver);
    driver.start();
    nodes.push({ id, storage, app: a, driver });
  }
  t.teardown(async () => {
    for (const n of nodes) {
      await n.driver.stop();
      await n.storage.close();
    }
  });
  t.same(nodes.map((n) => n.app.root()), ids.map(() => h.stateRoot), 'every node starts at the saved state root');
  t.same(nodes.map((n) => n.driver.status().appliedIndex), ids.map(() => h.index), 'at the saved index');
  const leader = await until('a leader among the restored nodes', () => nodes.find((n) => n.driver.isLeader), 30_000);
  t.ok(leader.driver.status().term > h.term, `leader ${leader.id} elected in term ${leader.driver.status().term}, after the saved term ${h.term}`);
  script.submit('op-2', script.act('k1'));
  const next = { entry: script.log.at(-1) as { stampMs: number; event: Uint8Array } };
  const o = await leader.driver.propose('after-restore', 1, encodeLedgerCommand(next.entry.stampMs, next.entry.event), 30_000);
  t.ok(o.ok, 'a new entry commits');
  const ref = script.results.at(-1) as { ok: boolean; reason?: string };
  if (o.ok) t.same([decodeVerdict(o.result).ok, decodeVerdict(o.result).reason], [ref.ok, ref.reason], `and the ledger judges it as the reference does (${ref.ok ? 'applied' : ref.reason})`);
  await until('every node applied it', () => nodes.every((n) => n.driver.status().appliedIndex === leader.driver.status().appliedIndex));
  t.equal(new Set(nodes.map((n) => n.app.root())).size, 1, 'one state root on every node after it');
  t.equal(leader.app.root(), await (async () => { const r = new LedgerApp(); await r.restore(await leader.app.snapshot()); return r.root(); })(), 'the state round-trips');
});

t.test('the incarnation: equal ones pass, any other is refused with both named; a wipe keeps it', async (t) => {
  t.equal(incarnationRefusal('', '', 'n1'), null, 'two nodes of a cluster never restored');
  t.equal(incarnationRefusal('a'.repeat(32), 'a'.repeat(32), 'n1'), null, 'two nodes of one restore');
  t.match(incarnationRefusal('a'.repeat(32), '', 'n1'), /peer n1 belongs to incarnation none .* this node to a{32}/, 'a node of the original cluster');
  t.match(incarnationRefusal('a'.repeat(32), 'b'.repeat(32), 'n1'), /b{32}.*a{32}/, 'a node of another restore');
  t.match(await refusal(Promise.resolve().then(() => incarnationOf(Buffer.from('{"id":"xyz"}')))), /^STORAGE_CORRUPT: /, 'a malformed record is corruption');

  const root = mkdtempSync(join(tmpdir(), 'custody-incarnation-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const { app, script } = ledgerWithHistory();
  const ids = Object.keys(app.state.cluster?.nodes ?? {}).sort();
  const file = join(root, 'f.snap');
  writeFileSync(file, fileOf(header({ clusterId: script.clusterId, stateRoot: app.root(), nodes: ids, membership: { voters: ids, learners: [] } }), await app.snapshot()));
  t.equal((await readSnapshotFile(file)).header.stateRoot, app.root(), 'the file reads back from disk');
  const r = await restoreCluster(file, configDir(root, 'c', ids));
  const dataDir = r.nodes[0]!.dataDir;
  await wipeStore(dataDir, { discardVote: false });
  const s = await LevelStorage.open({ dir: dataDir, bootstrapConf: { voters: ids, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false }, recoveryHint: 'test' });
  t.equal(incarnationOf(s.appValue(INCARNATION_KEY)), r.incarnation, 'a wiped node keeps its incarnation and re-syncs from its own cluster');
  await s.close();
});

t.test('a backup of a node with an archive: the records stream after the state, are checked against its accumulator, and every seeded store reads every act', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'custody-restore-archive-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const { script } = ledgerWithHistory(30);
  const ids = script.nodes.map((n) => n.info.id);
  const conf = { voters: ids, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
  const storage = await LevelStorage.open({ dir: join(root, 'source'), bootstrapConf: conf, recoveryHint: 'test' });
  t.teardown(() => storage.close());
  const app = new LedgerApp({ cold: levelColdStore(storage) });
  for (const [i, e] of script.log.entries()) {
    const command = encodeLedgerCommand(e.stampMs, e.event);
    await app.prepare([command]);
    const writes = [...app.apply(i + 2, command).writes, ...app.finish()];
    await storage.persist({ hardState: null, entries: [], snapshot: null, app: writes.map((w) => ({ key: `sm/${w.key}`, value: w.value })), sync: false });
  }
  const count = app.state.cluster?.archived.count ?? 0;
  t.equal(count, 30, 'thirty settled acts are archived');
  const records: Uint8Array[] = [];
  for await (const r of app.archiveRecords(0, count)) records.push(r);
  const h = header({ clusterId: script.clusterId, stateRoot: app.root(), ledgerIndex: app.state.index, nodes: ids, membership: { voters: ids, learners: [] } });
  const write = async (name: string, archive: readonly Uint8Array[], counted = archive.length): Promise<string> => {
    const frames: Buffer[] = [];
    for await (const f of snapshotFrames(h, app.snapshot(), { count: counted, records: archive })) frames.push(f);
    writeFileSync(join(root, name), Buffer.concat(frames));
    return join(root, name);
  };
  const good = await write('good.snap', records);
  const summary = await readSnapshotFile(good);
  t.same([summary.header.archivedRecords, summary.header.appStateBytes], [30, app.snapshot().length], 'the header counts the records and the state before them');
  t.ok(summary.stateBytes > records.reduce((n, r) => n + r.length, 0), `the body (${summary.stateBytes} bytes) holds every record`);

  const swapped = await write('swapped.snap', [records[1]!, records[0]!, ...records.slice(2)]);
  t.match(await refusal(restoreCluster(swapped, configDir(root, 'swapped', ids))), /^SNAPSHOT_INVALID: .*do not reproduce/, 'records out of order: SNAPSHOT_INVALID');
  const short = await write('short.snap', records.slice(0, -1));
  t.match(await refusal(restoreCluster(short, configDir(root, 'short', ids))), /^SNAPSHOT_INVALID: .*do not reproduce/, 'a record missing: SNAPSHOT_INVALID');
  const lying = await write('lying.snap', records.slice(0, -1), 30);
  t.match(await refusal(restoreCluster(lying, configDir(root, 'lying', ids))), /^SNAPSHOT_INVALID: .*header counts 30/, 'fewer records than the header counts: SNAPSHOT_INVALID');
  t.notOk(['swapped', 'short', 'lying'].some((d) => existsSync(join(root, d, 'data'))), 'nothing was written by any refused restore');

  const report = await restoreCluster(good, configDir(root, 'new', ids));
  for (const n of report.nodes) {
    const s = await LevelStorage.open({ dir: n.dataDir, bootstrapConf: conf, recoveryHint: 'test' });
    try {
      const a = new LedgerApp({ cold: levelColdStore(s) });
      a.load((k) => s.appValue(`sm/${k}`), function* () {
        for (const k of s.appKeys()) if (k.startsWith('sm/')) yield k.slice(3);
      });
      t.equal(a.root(), app.root(), `${n.id}: the saved root`);
      t.same((await a.endedActs(100)).map((o) => o.opId), Array.from({ length: 30 }, (_, i) => rid(`done-${i}`)), `${n.id}: every archived act reads back, in order`);
      t.equal((await a.act(rid('done-0')))?.state, 'Settled', `${n.id}: act show on the oldest`);
    } finally {
      await s.close();
    }
  }
});
