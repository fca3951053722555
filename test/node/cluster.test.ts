/**
 * Acceptance 1: real daemons, real LevelDB, real gRPC over mutual TLS on loopback.
 */
import t from 'tap';
import { CustodyError } from '../../proto/errors.js';
import type { CustodyClient } from '../../node/client.js';
import { Cluster, until } from './harness.js';

/** Propose with retries on any node, keeping client id and sequence (idempotent). */
async function putRetrying(c: Cluster, ids: string[], clientId: string, seq: number, key: string, value: string, clients: Map<string, CustodyClient>, stop: () => boolean): Promise<number | null> {
  for (let attempt = 0; !stop(); attempt++) {
    const id = ids[(seq + attempt) % ids.length] as string;
    let cl = clients.get(id);
    if (!cl) clients.set(id, (cl = c.client(id)));
    try {
      const r = await cl.propose(clientId, seq, key, Buffer.from(value), 5_000);
      return r.index;
    } catch (e) {
      if (!(e instanceof CustodyError)) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return null;
}

t.test('three daemons elect one leader that every node agrees on', async (t) => {
  const c = await Cluster.create(t, 3);
  c.startAll();
  const l = await c.stableLeader();
  const st = await c.statuses();
  t.equal([...st.values()].filter((s) => s.role === 'leader').length, 1, 'exactly one leader');
  t.ok([...st.values()].every((s) => s.leader === l.id && s.term === l.term), `all follow ${l.id} in term ${l.term}`);
  t.ok([...st.values()].every((s) => Object.values(s.peers).every(Boolean)), 'every peer stream is connected (mutual TLS)');
});

t.test('10,000 entries replicate to every node with identical state', async (t) => {
  // One command per entry (proposal batching off), so 10,000 writes are 10,000 log entries.
  const c = await Cluster.create(t, 3, { snapshotEveryEntries: 4_000, compactionKeepEntries: 500, proposalsPerEntryMax: 1 });
  c.startAll();
  const l = await c.stableLeader();
  const clients = new Map<string, CustodyClient>();
  t.teardown(() => clients.forEach((x) => x.close()));
  const writers = 50;
  const total = 10_000;
  let next = 0;
  const acked = new Map<string, string>();
  await Promise.all(Array.from({ length: writers }, async (_, w) => {
    let seq = 0;
    for (;;) {
      const i = next++;
      if (i >= total) return;
      seq++;
      const key = `k${i}`;
      const idx = await putRetrying(c, [l.id], `w${w}`, seq, key, `v${i}`, clients, () => false);
      if (idx !== null) acked.set(key, `v${i}`);
    }
  }));
  t.equal(acked.size, total, 'all 10,000 writes acknowledged');
  const conv = await until('every node holds all 10,000 keys at one applied index', async () => {
    const all = await c.converged();
    return all.every((s) => s.keys === total) ? all : null;
  });
  t.ok(conv.every((s) => s.keys === total), `every node applied all ${total} writes`);
  t.ok(conv.every((s) => s.applied >= total), `as ${conv[0]?.applied} log entries (one per write, plus the bootstrap and leader no-op)`);
  t.equal(new Set(conv.map((s) => s.root)).size, 1, 'one state root on every node');
  t.ok(conv.every((s) => s.snapshotIndex > 1), 'snapshots were taken and the log compacted');
  for (const id of ['n1', 'n2', 'n3']) {
    const cl = c.client(id);
    const samples = ['k0', 'k4999', 'k9999'];
    const got = await Promise.all(samples.map((k) => cl.read(k)));
    t.same(got.map((g) => g.value.toString()), ['v0', 'v4999', 'v9999'], `${id} serves linearizable reads of acknowledged writes`);
    cl.close();
  }
});

t.test('kill -9 the leader during writes: nothing acknowledged is lost, a new leader commits, the restarted node catches up by snapshot', async (t) => {
  const c = await Cluster.create(t, 3, { snapshotEveryEntries: 50, compactionKeepEntries: 10 });
  c.startAll();
  const l1 = await c.stableLeader();
  const ids = ['n1', 'n2', 'n3'];
  const clients = new Map<string, CustodyClient>();
  t.teardown(() => clients.forEach((x) => x.close()));
  const acked = new Map<string, string>();
  let stop = false;
  let n = 0;
  const writers = Array.from({ length: 8 }, async (_, w) => {
    for (let seq = 1; !stop; seq++) {
      const key = `w${w}-${seq}`;
      const live = ids.filter((id) => c.children.has(id));
      const idx = await putRetrying(c, live, `writer-${w}`, seq, key, `${seq}`, clients, () => stop);
      if (idx !== null) {
        acked.set(key, `${seq}`);
        n++;
      }
    }
  });
  await until('some writes acknowledged before the crash', () => n >= 300);
  const before = await c.status(l1.id);
  await c.signal(l1.id, 'SIGKILL');
  const ackedAtKill = n;
  // The crashed node's log ends near the leader's last index at the kill.
  const lastAtKill = before?.lastIndex ?? 0;
  t.comment(`killed leader ${l1.id} with ${ackedAtKill} writes acknowledged`);
  const others = ids.filter((id) => id !== l1.id);
  const l2 = await c.stableLeader(others);
  t.not(l2.id, l1.id, `a new leader ${l2.id} was elected`);
  await until('the new leader commits new writes', () => n >= ackedAtKill + 300);
  // Let the log move past what the dead node holds, so it can only catch up by snapshot.
  await until('the leader compacted past the crashed node', async () => {
    const s = await c.status(l2.id);
    return s && s.firstIndex > lastAtKill + 50 ? s : null;
  });
  stop = true;
  await Promise.all(writers);
  t.comment(`${acked.size} writes acknowledged in total`);
  c.start(l1.id);
  const conv = await c.converged(ids);
  const old = await c.status(l1.id);
  t.ok(old && old.snapshotIndex > lastAtKill + 50, `the restarted node installed a snapshot (snapshot index ${old?.snapshotIndex}, its log ended near ${lastAtKill})`);
  t.equal(new Set(conv.map((s) => s.root)).size, 1, 'identical state roots on all nodes');
  // Every acknowledged write is present on every node (linearizable reads).
  for (const id of ids) {
    const cl = c.client(id);
    let missing = 0;
    const keys = [...acked.keys()];
    for (let i = 0; i < keys.length; i += 64) {
      const batch = keys.slice(i, i + 64);
      const got = await Promise.all(batch.map((k) => cl.read(k, 30_000)));
      got.forEach((g, j) => {
        if (!g.found || g.value.toString() !== acked.get(batch[j] as string)) missing++;
      });
    }
    cl.close();
    t.equal(missing, 0, `${id}: all ${acked.size} acknowledged writes present`);
  }
});

t.test('SIGSTOP the leader: the others fail over; after SIGCONT the old leader steps down without disrupting them (pre-vote)', async (t) => {
  const c = await Cluster.create(t, 3);
  c.startAll();
  const l1 = await c.stableLeader();
  const ids = ['n1', 'n2', 'n3'];
  const others = ids.filter((id) => id !== l1.id);
  await c.signal(l1.id, 'SIGSTOP');
  const l2 = await c.stableLeader(others);
  t.ok(l2.term > l1.term, `failover: ${l2.id} leads term ${l2.term} (was ${l1.id} in ${l1.term})`);
  const cl = c.client(l2.id);
  t.teardown(() => cl.close());
  const w = await cl.propose('stop-test', 1, 'during-stop', Buffer.from('x'), 30_000);
  t.ok(w.index > 0, 'the majority commits while the old leader is stopped');
  await c.signal(l1.id, 'SIGCONT');
  const back = await until('the old leader rejoins as a follower of the new leader', async () => {
    const s = await c.status(l1.id);
    return s && s.role === 'follower' && s.leader === l2.id ? s : null;
  });
  t.equal(back.term, l2.term, 'it adopted the new term');
  const after = await c.stableLeader();
  t.equal(after.id, l2.id, 'the new leader keeps leading');
  t.equal(after.term, l2.term, 'no election was forced by the returning node');
  const w2 = await cl.propose('stop-test', 2, 'after-cont', Buffer.from('y'), 30_000);
  t.ok(w2.index > w.index, 'writes continue');
  await c.converged();
});
