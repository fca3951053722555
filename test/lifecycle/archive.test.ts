/**
 * The archive of ended acts on real LevelDB (node/ledger-app.ts with levelColdStore): three
 * drivers apply a history whose acts settle, are denied (and the denial recorded), abort and are
 * submitted again; every node
 * reaches the root of a direct in-memory apply, keeps only acts in flight in memory, and reads
 * ended acts (and their evidence) back from disk. A restarted node applies nothing twice and still
 * finds its archive; a node that joins after the log was compacted receives the archive with the
 * snapshot, fetching the archived records from its peers; a snapshot carries no record, and
 * records that do not match its accumulator are refused; the empty restore deletes the archive.
 */
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NodeId } from '../../raft/core/types.js';
import { COLD_PREFIX, LevelStorage } from '../../raft/storage/leveldb.js';
import { ScriptedCluster } from '../../ledger/scenario.js';
import { stateRoot, TERMINAL_OP_STATES } from '../../ledger/state.js';
import { decode, encode, toHex } from '../../ledger/encoding.js';
import { verifyEvidenceBundle } from '../../ledger/receipts.js';
import { LedgerApp, decodeVerdict, encodeLedgerCommand, levelColdStore } from '../../node/ledger-app.js';
import { evidenceBundleOf, verifyBundleSignature } from '../../node/lifecycle/evidence.js';
import { Hub, until } from '../../node/lifecycle/local-cluster.js';
import { conf, ids, restartLedgerNode, startLedgerNode, stopLedgerNode, type LedgerNode as N } from './ledger-nodes.js';
import { rid } from '../../ledger/scenario.js';

const startNode = (hub: Hub, id: NodeId, dir: string): Promise<N> =>
  // Small snapshot interval, so the late node below can only catch up by snapshot.
  startLedgerNode(hub, id, dir, { archive: true, snapshotEveryEntries: 8, compactionKeepEntries: 1 });

function reasonOf(f: () => unknown): string | null {
  try {
    f();
    return null;
  } catch (e) {
    return (e as { reason?: string }).reason ?? String(e);
  }
}

/** A history with every way an act ends, and events naming ended acts. */
function history(): ScriptedCluster {
  const s = new ScriptedCluster({ label: 'archive' });
  s.genesis();
  s.createKey('k1');
  const act = s.act('k1');
  s.submit('settled-1', act);
  s.issuePermit('settled-1');
  s.execute('settled-1');
  s.publish('settled-1');
  s.settle('settled-1');
  s.submit('denied-1', s.act('k1', { destination: 'bc1-evil' }));
  s.submit('aborted-1', s.act('k1', { amount: 7n }));
  s.issuePermit('aborted-1');
  s.abort('aborted-1', 'REMOTE_TIMEOUT');
  s.recordDenial('denied-1'); // the verdict of an act already archived, checked against the archive
  s.submit('settled-1', act); // the same content again: the original result, from the archive
  s.submit('settled-1', { ...act, amount: 2n }); // other content under the key: REPLAY_OR_CONFLICT
  s.settle('settled-1'); // INVALID_TRANSITION, read from the archive
  s.execute('aborted-1'); // the spent permit, from the archive
  s.submit('flight-1', s.act('k1', { amount: 9n }));
  return s;
}

t.test('ended acts leave memory for LevelDB, read back with their evidence; restart applies nothing twice; a late node gets the archive by snapshot', async (t) => {
  const hub = new Hub();
  const dirs = new Map<NodeId, string>();
  for (const id of ids) {
    const dir = await mkdtemp(join(tmpdir(), `custody-archive-${id}-`));
    dirs.set(id, dir);
    t.teardown(() => rm(dir, { recursive: true, force: true }));
  }
  // c starts only after the log is compacted past its start.
  const nodes: N[] = [await startNode(hub, 'a', dirs.get('a') as string), await startNode(hub, 'b', dirs.get('b') as string)];
  t.teardown(async () => {
    for (const n of nodes) if (hub.drivers.get(n.id) === n.driver) await stopLedgerNode(hub, n);
  });

  const script = history();
  const leader = await until('a leader', () => nodes.find((n) => n.driver.isLeader), 60_000);
  const verdicts = [];
  for (const [i, entry] of script.log.entries()) {
    const o = await leader.driver.propose(`script-${i}`, 1, encodeLedgerCommand(entry.stampMs, entry.event), 30_000);
    t.ok(o.ok, `entry ${i + 1} committed`);
    if (o.ok) verdicts.push(decodeVerdict(o.result));
  }
  t.same(verdicts.map((v) => [v.ok, v.reason ?? null, v.replayed]), script.results.map((r) => [r.ok, r.ok ? null : r.reason, r.replayed]), 'every verdict is the in-memory ledger\'s, archive lookups included');
  t.same(verdicts.slice(-5).map((v) => v.reason ?? 'ok'), ['ok', 'REPLAY_OR_CONFLICT', 'INVALID_TRANSITION', 'STEP_PERMIT_REUSED', 'ok'], 'ended acts were found in the archive');
  t.ok(verdicts[verdicts.length - 5]?.replayed, 'resubmitting a settled act replays its original result');
  await until('both nodes applied everything', () => nodes.every((n) => n.app.state.index === script.state.index), 30_000);
  for (const n of nodes) {
    t.equal(n.app.root(), toHex(stateRoot(script.state)), `${n.id}: the root of keeping every act in memory`);
    t.same(Object.keys(n.app.state.cluster?.ops ?? {}), [rid('flight-1')], `${n.id}: only the act in flight is in memory`);
  }

  // Ended acts and their evidence, read from disk.
  const settled = await leader.app.act(rid('settled-1'));
  t.equal(settled?.state, 'Settled', 'a settled act reads back from the archive');
  t.same(settled && encode({ r: [...settled.receipts] }), encode({ r: [...(script.state.cluster?.ops[rid('settled-1')]?.receipts ?? [])] }), 'with every receipt');
  t.equal((await leader.app.act(rid('denied-1')))?.reason, 'POLICY_NO_RULE', 'a denied act keeps the policy reason code');
  const rules = { 'settled-1': script.state.cluster!.ops[rid('settled-1')]!.rule, 'denied-1': script.state.cluster!.ops[rid('denied-1')]!.rule };
  t.match(rules, { 'settled-1': { id: 'sol-small', action: 'ALLOW' }, 'denied-1': { id: null, action: 'BLOCK', detail: /default deny/ } });
  const rulesOn = async (n: N) => ({ 'settled-1': (await n.app.act(rid('settled-1')))?.rule, 'denied-1': (await n.app.act(rid('denied-1')))?.rule });
  for (const n of nodes) t.same(await rulesOn(n), rules, `${n.id}: each archived act keeps the rule that decided it`);
  t.equal((await leader.app.act(rid('aborted-1')))?.state, 'Aborted');
  t.equal(await leader.app.act(rid('never')), undefined, 'an unknown act is unknown');
  const bundle = JSON.parse(JSON.stringify(evidenceBundleOf(leader.app.state.cluster!, settled!, null)));
  t.match(verifyEvidenceBundle(bundle), { ok: true, ruleId: 'sol-small' }, 'the evidence bundle of an archived act verifies offline and names its rule');
  t.same(verifyBundleSignature(bundle), { ok: true }, 'and so does its signature');
  t.same((await leader.app.endedActs(10)).map((o) => o.opId), ['settled-1', 'denied-1', 'aborted-1'].map(rid), 'the chronicle of ended acts, in the order they ended');
  t.notOk([...leader.storage.appKeys()].some((k) => k.startsWith(COLD_PREFIX)), 'no archived key is held in the storage mirror');

  // Restart: state, applied index and archive come back from the same batches.
  const again = await restartLedgerNode(t, hub, nodes, nodes.find((n) => n !== leader) as N, startNode);
  t.equal((await again.app.act(rid('settled-1')))?.state, 'Settled', 'the archive survives the restart');
  t.same(await rulesOn(again), rules, 'with the rules');

  // A late node: the log it needs is compacted, so it installs a snapshot and fetches the archive from its peers.
  await until('the leader compacted its log', () => leader.storage.firstIndex() > 2, 30_000);
  const late = await startNode(hub, 'c', dirs.get('c') as string);
  nodes.push(late);
  const more = await leader.driver.propose('after', 1, encodeLedgerCommand(script.nowMs, script.log[script.log.length - 1]!.event), 30_000);
  t.ok(more.ok && decodeVerdict(more.result).replayed, 'a later entry applies');
  await until('the late node caught up', () => late.app.root() === leader.app.root(), 60_000);
  t.ok(late.storage.snapshot().meta.index > 1, 'by installing a snapshot (the log it started from was compacted)');
  t.equal((await late.app.act(rid('settled-1')))?.state, 'Settled', 'the late node reads ended acts from its own archive');
  t.same((await late.app.endedActs(10)).map((o) => o.opId), ['settled-1', 'denied-1', 'aborted-1'].map(rid));
  t.same(await rulesOn(late), rules, 'the late node\'s archive, fetched from its peers, keeps the rules');
  t.same(late.app.state.cluster?.ops[rid('flight-1')]?.rule, script.state.cluster!.ops[rid('flight-1')]!.rule, 'and the act in flight, installed by snapshot, keeps its rule');
});

t.test('a restore checks the archive against its accumulator and replaces what was archived before', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'custody-archive-restore-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const storage = await LevelStorage.open({ dir, bootstrapConf: conf, recoveryHint: 'test' });
  t.teardown(() => storage.close());
  const app = new LedgerApp({ cold: levelColdStore(storage) });
  const script = history();
  // Apply straight through the application into LevelDB, as the driver does, batch by batch.
  for (const e of script.log) {
    const command = encodeLedgerCommand(e.stampMs, e.event);
    await app.prepare([command]);
    const r = app.apply(e.index, command);
    const writes = [...r.writes, ...app.finish()];
    if (decodeVerdict(r.result).opState === 'Settled' && !decodeVerdict(r.result).replayed) {
      // Acknowledged before its batch is on disk (an unsynced batch): still readable.
      t.equal((await app.act(rid('settled-1')))?.state, 'Settled', 'an act archived by a batch not yet written reads back');
      t.same((await app.endedActs(1)).map((o) => o.opId), [rid('settled-1')], 'and is the latest in the chronicle');
    }
    t.ok(writes.some((w) => w.key === 'ledger/state'), 'the state is written with its batch');
    await storage.persist({ hardState: null, entries: [], snapshot: null, app: writes.map((w) => ({ key: `sm/${w.key}`, value: w.value })), sync: false });
  }
  t.equal(app.root(), toHex(stateRoot(script.state)));
  const snap = app.snapshot();
  const o = decode(snap) as { archive?: Uint8Array[]; cold?: boolean };
  t.equal(o.archive, undefined, 'the snapshot carries no archived record: peers serve them');
  t.equal(o.cold, true, 'it says its ended acts are in an archive');
  const records: Uint8Array[] = [];
  for await (const r of app.archiveRecords(0, 3)) records.push(r);
  t.equal(records.length, 3, 'the three ended acts, by position');

  // A snapshot written when the archive travelled inside it is its own source, checked the same way
  // (by a node holding none of it: this store's own records would be kept, not fetched).
  const emptyDir = await mkdtemp(join(tmpdir(), 'custody-archive-empty-'));
  t.teardown(() => rm(emptyDir, { recursive: true, force: true }));
  const empty = await LevelStorage.open({ dir: emptyDir, bootstrapConf: conf, recoveryHint: 'test' });
  t.teardown(() => empty.close());
  const rejected = async (archive: Uint8Array[]): Promise<string> => {
    try {
      await new LedgerApp({ cold: levelColdStore(empty) }).restore(encode({ ...(o as object), archive } as never));
      return 'installed';
    } catch (e) {
      return (e as { reason?: string }).reason ?? String(e);
    }
  };
  t.equal(await rejected([records[1]!, records[0]!, records[2]!]), 'ARCHIVE_UNAVAILABLE', 'records out of order are refused');
  t.equal(await rejected(records.slice(1)), 'ARCHIVE_UNAVAILABLE', 'a record missing is refused');
  t.equal(reasonOf(() => new LedgerApp().restore(snap)), 'STORAGE_CORRUPT', 'a node without an archive refuses a snapshot whose acts are in one');

  // Restoring the empty state deletes every archived key, in the same batch.
  const writes = await new LedgerApp({ cold: levelColdStore(storage) }).restore(new Uint8Array(0));
  const deletes = writes.filter((w) => w.key.startsWith('archive/') && !w.key.startsWith('archive/tlog/') && w.value === null).length;
  t.equal(deletes, 3 + 3 + 2, 'the three records, their index entries and the two permits are deleted');
  t.ok(writes.some((w) => w.key.startsWith('archive/tlog/node/') && w.value === null), 'and so is the Merkle tree over the entries');
  await storage.persist({ hardState: null, entries: [], snapshot: null, app: writes.map((w) => ({ key: `sm/${w.key}`, value: w.value })), sync: true });
  t.equal(await storage.appRead('sm/archive/log/0000000000000000'), undefined, 'the first record is gone');
  t.equal(await storage.appRead(`sm/archive/op/${rid('settled-1')}`), undefined, 'and its index entry');
  // And restoring the snapshot fetches them back from a peer that holds them.
  const back = new LedgerApp({ cold: levelColdStore(storage), archiveSource: { peers: () => ['p'], fetch: async (_p, from, n) => records.slice(from, from + Math.min(n, 2)) } });
  const w2 = await back.restore(snap);
  await storage.persist({ hardState: null, entries: [], snapshot: null, app: w2.map((w) => ({ key: `sm/${w.key}`, value: w.value })), sync: true });
  t.equal(back.root(), app.root());
  t.equal((await back.act(rid('aborted-1')))?.state, 'Aborted');
  t.ok(TERMINAL_OP_STATES.includes((await back.act(rid('denied-1')))!.state));
});
