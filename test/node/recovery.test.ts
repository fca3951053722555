/**
 * Acceptance 3: a corrupted entry in one node's LevelDB is detected at start with a clear error,
 * and the documented recovery (`custody node wipe`, then start) brings the node back in sync.
 */
import t from 'tap';
import { Level } from 'level';
import { LOG_PREFIX, logKeyIndex } from '../../raft/storage/codec.js';
import { Cluster, until } from './harness.js';

t.test('a corrupt log entry is refused at start; node wipe re-syncs the node from its peers', async (t) => {
  const c = await Cluster.create(t, 3);
  c.startAll();
  const l = await c.stableLeader();
  const cl = c.client(l.id);
  t.teardown(() => cl.close());
  for (let i = 1; i <= 200; i++) await cl.propose('pre', i, `pre${i}`, Buffer.from(`v${i}`), 30_000);
  await c.converged();
  const victim = ['n1', 'n2', 'n3'].find((id) => id !== l.id) as string;
  await c.signal(victim, 'SIGTERM');

  // Flip one byte inside the payload of a stored entry, as bit rot would.
  const db = new Level<Buffer, Buffer>(c.dataDir(victim), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  let target: number | null = null;
  for await (const [k, v] of db.iterator({ gte: LOG_PREFIX, lte: Buffer.concat([LOG_PREFIX, Buffer.alloc(8, 0xff)]) })) {
    const idx = logKeyIndex(k);
    if (idx !== null && idx >= 100 && v.length > 30) {
      const bad = Buffer.from(v);
      bad[bad.length - 2] = (bad[bad.length - 2] as number) ^ 0x20;
      await db.put(k, bad);
      target = idx;
      break;
    }
  }
  await db.close();
  t.ok(target !== null, `corrupted entry ${target}`);

  const child = c.start(victim);
  const code = await new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  t.not(code, 0, 'the node refuses to start');
  const log = c.log(victim);
  t.match(log, /STORAGE_CORRUPT/, 'with the reason code');
  t.match(log, new RegExp(`entry index ${target}`), 'naming the corrupt entry');
  t.match(log, /CRC-32C mismatch/, 'and the check that failed');
  t.match(log, new RegExp(`custody node wipe --config ${c.configFile(victim).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), 'and the recovery command');

  // Meanwhile the cluster keeps going.
  for (let i = 1; i <= 50; i++) await cl.propose('during', i, `during${i}`, Buffer.from(`d${i}`), 30_000);

  const refused = await c.cli(['node', 'wipe', '--config', c.configFile(victim)]);
  t.not(refused.code, 0, 'wipe asks for confirmation');
  const wiped = await c.cli(['node', 'wipe', '--config', c.configFile(victim), '--yes']);
  t.equal(wiped.code, 0, `wipe succeeds: ${wiped.out.trim()}`);
  t.match(wiped.out, /kept term \d+ and its vote/);

  c.start(victim);
  const conv = await c.converged();
  t.equal(new Set(conv.map((s) => s.root)).size, 1, 'the recovered node has the same state root as its peers');
  await until('the node leaves recovery mode', () => /recovered: applied \d+/.test(c.log(victim)));
  t.match(c.log(victim), /recovering after a wipe: this node grants no votes/, 'it withheld its vote while it lacked committed entries');
  const v = await until('the recovered node is ready', async () => ((await c.status(victim))?.leader ? true : null));
  t.ok(v);
  const vc = c.client(victim);
  t.teardown(() => vc.close());
  const r1 = await vc.read('pre150', 30_000);
  const r2 = await vc.read('during50', 30_000);
  t.same([r1.value.toString(), r2.value.toString()], ['v150', 'd50'], 'it serves data written before and during its outage');
});
