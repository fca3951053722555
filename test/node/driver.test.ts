/**
 * The driver over real LevelDB storage and the real core, with an in-memory transport: the
 * persistence ordering, exactly-once apply across restarts, idempotent proposals, and catch-up by
 * snapshot, without processes or sockets.
 */
import t from 'tap';
import { until as pollUntil } from '../../node/probe.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RaftCore } from '../../raft/core/raft.js';
import { SeededRng } from '../../raft/core/rng.js';
import type { ConfState, Message, NodeId } from '../../raft/core/types.js';
import { Driver, decodeEntryCommands, encodeBatch, encodeCommand, type Outcome } from '../../raft/driver.js';
import { LevelStorage } from '../../raft/storage/leveldb.js';
import { systemClock, type Transport } from '../../raft/transport.js';
import { KvApp, encodePut } from '../../node/kv.js';

const ids: NodeId[] = ['a', 'b', 'c'];
const conf: ConfState = { voters: ids, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };

/** Delivers messages asynchronously; a node in `cut` neither sends nor receives. */
class Hub {
  readonly drivers = new Map<NodeId, Driver>();
  readonly cut = new Set<NodeId>();
  /** Messages handed to the transport, with the persisted hard state of the sender at that time. */
  readonly sentLog: { from: NodeId; msg: Message; durableTerm: number }[] = [];
  transport(id: NodeId, storage: () => LevelStorage | null): Transport {
    return {
      send: (msgs) => {
        for (const m of msgs) {
          const st = storage();
          if (st && (m.type === 'voteResp' || m.type === 'appResp')) this.sentLog.push({ from: id, msg: m, durableTerm: st.hardState().term });
          if (this.cut.has(id) || this.cut.has(m.to)) continue;
          setImmediate(() => this.drivers.get(m.to)?.receive(m));
        }
      },
      reachable: (p) => !this.cut.has(p),
    };
  }
}

interface Node {
  id: NodeId;
  dir: string;
  storage: LevelStorage;
  app: KvApp;
  driver: Driver;
}

async function startNode(hub: Hub, id: NodeId, dir: string, snapshotEvery = 10_000): Promise<Node> {
  const storage = await LevelStorage.open({ dir, bootstrapConf: conf, recoveryHint: 'wipe' });
  const app = new KvApp();
  const driver = new Driver({
    id,
    storage,
    app,
    transport: hub.transport(id, () => storage),
    clock: systemClock,
    newCore: (cfg) => new RaftCore(cfg),
    rng: new SeededRng(id.charCodeAt(0) * 7919 + Date.now()),
    tickMs: 10,
    electionTicks: 10,
    heartbeatTicks: 1,
    preVote: true,
    checkQuorum: true,
    snapshotEveryEntries: snapshotEvery,
    compactionKeepEntries: 5,
    onFatal: (e) => {
      throw e;
    },
  });
  hub.drivers.set(id, driver);
  driver.start();
  return { id, dir, storage, app, driver };
}

async function stopNode(hub: Hub, n: Node): Promise<void> {
  await n.driver.stop();
  hub.drivers.delete(n.id);
  await n.storage.close();
}

const until = <T>(what: string, f: () => T | null | undefined | false, timeoutMs = 60_000): Promise<T> => pollUntil(what, f, timeoutMs, 10);

async function cluster(t: { teardown(f: () => unknown): void }, snapshotEvery = 10_000): Promise<{ hub: Hub; nodes: Node[] }> {
  const hub = new Hub();
  const nodes: Node[] = [];
  for (const id of ids) {
    const dir = await mkdtemp(join(tmpdir(), `custody-driver-${id}-`));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    nodes.push(await startNode(hub, id, dir, snapshotEvery));
  }
  t.teardown(async () => {
    for (const n of nodes) if (hub.drivers.get(n.id) === n.driver) await stopNode(hub, n);
  });
  return { hub, nodes };
}

const put = (k: string, v: string): Uint8Array => encodePut(k, Buffer.from(v));
const leaderOf = (nodes: Node[]): Node | undefined => nodes.find((n) => n.driver.isLeader);

t.test('a proposal on a follower is forwarded, committed, applied everywhere and acknowledged once', async (t) => {
  const { nodes } = await cluster(t);
  const leader = await until('a leader', () => leaderOf(nodes));
  const follower = nodes.find((n) => n !== leader) as Node;
  const o = await follower.driver.propose('client-1', 1, put('k1', 'v1'), 30_000);
  t.ok(o.ok, 'committed');
  t.equal(o.ok && o.duplicate, false);
  await until('applied on all nodes', () => nodes.every((n) => n.app.get('k1') !== undefined));
  t.same(nodes.map((n) => Buffer.from(n.app.get('k1') as Uint8Array).toString()), ['v1', 'v1', 'v1']);
});

t.test('a retried proposal (same client id and sequence) returns the original result and applies once (thesis §6.3)', async (t) => {
  const { nodes } = await cluster(t);
  const leader = await until('a leader', () => leaderOf(nodes));
  const first = await leader.driver.propose('c', 1, put('x', '1'), 30_000);
  const root1 = leader.app.root();
  const again = await leader.driver.propose('c', 1, put('x', '1'), 30_000);
  t.ok(first.ok && again.ok);
  if (first.ok && again.ok) {
    t.equal(again.index, first.index, 'same index');
    t.equal(again.duplicate, true, 'reported as a duplicate');
    t.same(Buffer.from(again.result), Buffer.from(first.result), 'same result');
  }
  t.equal(leader.app.root(), root1, 'state unchanged by the retry');
  const conflict = await leader.driver.propose('c', 1, put('x', 'other'), 30_000);
  t.same(conflict.ok ? 'ok' : conflict.reason, 'REPLAY_OR_CONFLICT', 'same key, different content is refused');
  // Two concurrent submissions of one command resolve to one outcome.
  const [p, q] = await Promise.all([leader.driver.propose('c', 2, put('y', '2'), 30_000), leader.driver.propose('c', 2, put('y', '2'), 30_000)]);
  t.same(p, q);
});

t.test('messages leave only after the state they promise is durable (§5.1 Figure 2)', async (t) => {
  const { hub, nodes } = await cluster(t);
  const leader = await until('a leader', () => leaderOf(nodes));
  for (let i = 0; i < 20; i++) await leader.driver.propose('d', i + 1, put(`d${i}`, 'v'), 30_000);
  t.ok(hub.sentLog.length > 0, 'vote and append responses were sent');
  const bad = hub.sentLog.filter((s) => s.durableTerm < s.msg.term);
  t.same(bad, [], 'no response carries a term beyond the durable hard state');
});

t.test('after a restart every entry is applied exactly once and the state root matches', async (t) => {
  const { hub, nodes } = await cluster(t);
  const leader = await until('a leader', () => leaderOf(nodes));
  const acked: Outcome[] = [];
  for (let i = 1; i <= 30; i++) acked.push(await leader.driver.propose('r', i, put(`r${i}`, `${i}`), 30_000));
  t.ok(acked.every((o) => o.ok));
  const victim = nodes.find((n) => n !== leader) as Node;
  await until('victim applied all', () => victim.driver.status().appliedIndex >= (acked[29] as { index: number }).index);
  const before = { root: victim.app.root(), applied: victim.driver.status().appliedIndex };
  await stopNode(hub, victim);
  const again = await startNode(hub, victim.id, victim.dir);
  nodes[nodes.indexOf(victim)] = again;
  t.equal(again.driver.status().appliedIndex, before.applied, 'applied index restored from the same batch as the state');
  t.equal(again.app.root(), before.root, 'state restored without re-applying');
  for (let i = 31; i <= 40; i++) await leader.driver.propose('r', i, put(`r${i}`, `${i}`), 30_000);
  await until('all nodes converge', () => {
    const s = nodes.map((n) => n.driver.status());
    return s.every((x) => x.appliedIndex === (s[0] as { appliedIndex: number }).appliedIndex) && new Set(nodes.map((n) => n.app.root())).size === 1;
  });
  t.equal(again.app.size, 40);
});

t.test('a node cut off while the log is compacted catches up by snapshot (§7)', async (t) => {
  const { hub, nodes } = await cluster(t, 20);
  const leader = await until('a leader', () => leaderOf(nodes));
  const lagging = nodes.find((n) => n !== leader) as Node;
  hub.cut.add(lagging.id);
  const outcomes: Outcome[] = [];
  for (let i = 1; i <= 100; i++) outcomes.push(await leader.driver.propose('s', i, put(`s${i}`, `${i}`), 30_000));
  t.ok(outcomes.every((o) => o.ok), '100 writes acknowledged by the majority');
  await until('leader compacted past the lagging node', () => leader.storage.firstIndex() > lagging.driver.status().lastIndex + 1);
  hub.cut.delete(lagging.id);
  await until('lagging node caught up', () => lagging.app.size === 100 && lagging.app.root() === leader.app.root(), 120_000);
  t.ok(lagging.storage.snapshot().meta.index > 0, 'it installed a snapshot');
  t.equal(Buffer.from(lagging.app.get('s100') as Uint8Array).toString(), '100');
});

t.test('a linearizable read waits until the read point is applied (thesis §6.4)', async (t) => {
  const { nodes } = await cluster(t);
  const leader = await until('a leader', () => leaderOf(nodes));
  const o = await leader.driver.propose('rd', 1, put('q', 'w'), 30_000);
  const follower = nodes.find((n) => n !== leader) as Node;
  const idx = await follower.driver.readIndex(30_000);
  t.ok(o.ok && idx >= o.index, 'the read point covers the acknowledged write');
  t.equal(Buffer.from(follower.app.get('q') as Uint8Array).toString(), 'w', 'and the follower serves it');
});

t.test('a minority node refuses writes with a reason once its deadline passes', async (t) => {
  const { hub, nodes } = await cluster(t);
  const leader = await until('a leader', () => leaderOf(nodes));
  hub.cut.add(leader.id);
  const o = await leader.driver.propose('m', 1, put('m', 'x'), 1_500);
  t.notOk(o.ok, 'not acknowledged');
  t.ok(!o.ok && ['REMOTE_TIMEOUT', 'NOT_LEADER', 'PROPOSAL_DROPPED'].includes(o.reason), `refused with a reason code (${o.ok ? '' : o.reason})`);
  const others = nodes.filter((n) => n !== leader);
  const newLeader = await until('majority elects', () => others.find((n) => n.driver.isLeader));
  const w = await newLeader.driver.propose('m2', 1, put('m2', 'y'), 30_000);
  t.ok(w.ok, 'the majority keeps accepting writes');
});

t.test('proposals arriving together are packed into one entry and each applies once with its own result', async (t) => {
  const { nodes } = await cluster(t);
  const leader = await until('a leader', () => leaderOf(nodes));
  const outs = await Promise.all(Array.from({ length: 40 }, (_, i) => leader.driver.propose(`b${i}`, 1, put(`b${i}`, `${i}`), 30_000)));
  t.ok(outs.every((o) => o.ok), 'all 40 committed');
  const indexes = new Set(outs.map((o) => (o.ok ? o.index : -1)));
  t.ok(indexes.size < 40, `40 commands in ${indexes.size} entries`);
  await until('applied everywhere', () => nodes.every((n) => n.app.size === 40));
  t.equal(new Set(nodes.map((n) => n.app.root())).size, 1, 'one state root');
  const again = await leader.driver.propose('b7', 1, put('b7', '7'), 30_000);
  t.ok(again.ok && again.duplicate, 'a command from a batch is still deduplicated by its client id and sequence');
});

t.test('batch entries round-trip and malformed ones carry no commands', async (t) => {
  const cmds = [encodeCommand('x', 1, Buffer.from('a')), encodeCommand('y', 2, Buffer.alloc(0))];
  const got = decodeEntryCommands(encodeBatch(cmds));
  t.same(got?.map((c) => Buffer.from(c).toString('hex')), cmds.map((c) => Buffer.from(c).toString('hex')));
  t.equal(decodeEntryCommands(Buffer.from([2, 0, 0, 0, 2, 0, 0, 0, 9, 1])), null, 'a truncated batch');
  t.equal(decodeEntryCommands(Buffer.from([7, 1, 2])), null, 'an unknown version');
  t.same(decodeEntryCommands(cmds[0] as Uint8Array)?.length, 1, 'a single command');
});
