/**
 * The split-brain checks wired to real Raft drivers (node/splitbrain/node-guard.ts and the
 * driver's VoteGuard): three drivers over real LevelDB stores with an in-memory transport, each
 * with a NodeGuard whose exchanges go through the wire encoding, as the daemon wires them.
 *  - a fresh cluster elects only once the rollback gates open; the leader's announcement and the
 *    votes that elected it are signed and reach every node; no alarm;
 *  - the witness book is written to the store and read back at start;
 *  - with one voter down for good, a restarted node votes on the answer of the live one;
 *  - a store wiped without its vote waits for every voter, across restarts;
 *  - a node whose store is older than what its peers witnessed withholds its vote: it grants none,
 *    starts no election, and raises the rollback alarm, while the others go on;
 *  - a forged double vote that reaches one node becomes evidence proposed until the ledger rules;
 *  - a peer that keeps asking is answered at once at most once per interval (no query storm).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import t from 'tap';
import { until as pollUntil } from '../../node/probe.js';
import { ScriptedCluster } from '../../ledger/index.js';
import { RaftCore } from '../../raft/core/raft.js';
import { SeededRng } from '../../raft/core/rng.js';
import type { ConfState, Message, NodeId } from '../../raft/core/types.js';
import { Driver, META_RECOVERING } from '../../raft/driver.js';
import { LevelStorage } from '../../raft/storage/leveldb.js';
import { systemClock } from '../../raft/transport.js';
import { KvApp, encodePut } from '../../node/kv.js';
import { registerCatalogMetrics } from '../../node/metrics-catalog.js';
import { LEADER_ANNOUNCEMENT, RAFT_VOTE, signVote, type EquivocationEvidence } from '../../node/splitbrain/equivocation.js';
import { decodeExchange, encodeExchange } from '../../node/splitbrain/exchange.js';
import { joinWitness, type PeerWitness, type Witness } from '../../node/splitbrain/rollback.js';
import { NodeGuard, RESTORE_PENDING_KEY, WITNESS_KEY, decodeWitnesses, encodeWitnesses, storeHistory } from '../../node/splitbrain/node-guard.js';
import { wipeStore } from '../../raft/storage/leveldb.js';
import { splitBrain } from '../../proto/limits.js';

const sc = new ScriptedCluster({ nodes: 3, label: 'node-guard' });
sc.genesis();
const ids = sc.nodes.map((n) => n.info.id) as [string, string, string];
const conf: ConfState = { voters: ids, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
const publicKey = (id: string): Uint8Array | undefined => sc.nodes.find((n) => n.info.id === id)?.info.identityKey;

interface Node {
  id: NodeId;
  dir: string;
  storage: LevelStorage;
  driver: Driver;
  guard: NodeGuard;
  reg: Registry;
  logs: string[];
  /** Vote grants this node handed to the transport. */
  grants: Message[];
  proposed: EquivocationEvidence[];
}

class Net {
  readonly nodes = new Map<NodeId, Node>();
  readonly cut = new Set<NodeId>();
  deliver(from: NodeId, to: NodeId, f: () => void): void {
    if (this.cut.has(from) || this.cut.has(to)) return;
    setImmediate(f);
  }
}

async function start(net: Net, id: NodeId, dir: string, opts: { atStartOverride?: boolean; evidence?: (ev: EquivocationEvidence) => Promise<{ accepted: boolean }>; watchStore?: (s: LevelStorage, logs: string[], status: () => { recovering: boolean }) => void } = {}): Promise<Node> {
  const storage = await LevelStorage.open({ dir, bootstrapConf: conf, recoveryHint: 'wipe' });
  const reg = new Registry();
  const metrics = registerCatalogMetrics(reg);
  const logs: string[] = [];
  const hs = storage.hardState();
  const last = storage.lastIndex();
  const node: Partial<Node> & { grants: Message[]; proposed: EquivocationEvidence[] } = { id, dir, storage, reg, logs, grants: [], proposed: [] };
  const guard = new NodeGuard({
    self: id, voters: ids,
    atStart: { term: hs.term, vote: hs.vote, lastIndex: last, lastLogTerm: storage.term(last) },
    stored: storage.appValue(WITNESS_KEY),
    ...storeHistory((k) => storage.appValue(k)),
    identity: { clusterId: sc.clusterId, secretKey: sc.node(id).secretKey, publicKey },
    metrics, log: (l) => logs.push(l),
  });
  const driver = new Driver({
    id, storage, app: new KvApp(), clock: systemClock, newCore: (cfg) => new RaftCore(cfg), rng: new SeededRng(id.length * 7919 + Date.now()),
    transport: {
      send: (msgs) => {
        for (const m of msgs) {
          if ((m.type === 'voteResp' || m.type === 'preVoteResp') && !m.reject) node.grants.push(m);
          // As a daemon's peer stream does: each message arrives with the sender's boot id.
          net.deliver(id, m.to, () => net.nodes.get(m.to)?.driver.receive(m, guard.boot));
        }
      },
      reachable: (p) => !net.cut.has(p),
    },
    tickMs: 10, electionTicks: 10, heartbeatTicks: 1, preVote: true, checkQuorum: true, snapshotEveryEntries: 10_000, compactionKeepEntries: 5,
    guard,
    log: (l) => logs.push(l),
    onFatal: (e) => {
      throw e;
    },
  });
  Object.assign(node, { driver, guard });
  opts.watchStore?.(storage, logs, () => driver.status());
  net.nodes.set(id, node as Node);
  driver.start();
  guard.start({
    peers: ids.filter((p) => p !== id),
    exchangeWanted: (p) => net.nodes.has(p) && !net.cut.has(p) && !net.cut.has(id),
    onRolledBack: (why) => driver.recover(why),
    sendExchange: (p, bytes) => {
      net.deliver(id, p, () => net.nodes.get(p)?.guard.incoming(id, bytes));
      return true;
    },
    view: () => {
      const s = driver.status();
      return { term: s.term, leader: s.leader, appliedIndex: s.appliedIndex, root: s.root };
    },
    proposeEvidence: async (ev) => {
      node.proposed.push(ev);
      if (opts.evidence) return opts.evidence(ev);
      return { accepted: true };
    },
  });
  return node as Node;
}

async function stop(net: Net, n: Node): Promise<void> {
  n.guard.stop();
  await n.driver.stop();
  net.nodes.delete(n.id);
  await n.storage.close();
}

const until = <T>(what: string, f: () => T | null | undefined | false | Promise<T | null | undefined | false>, timeoutMs = 60_000): Promise<T> => pollUntil(what, f, timeoutMs, 10);

async function cluster(t: { teardown(f: () => unknown): void }): Promise<{ net: Net; nodes: Node[]; dirs: string[] }> {
  const net = new Net();
  const dirs: string[] = [];
  const nodes: Node[] = [];
  for (const id of ids) {
    const dir = await mkdtemp(join(tmpdir(), `custody-guard-${id}-`));
    dirs.push(dir);
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    nodes.push(await start(net, id, dir));
  }
  t.teardown(async () => {
    for (const n of [...net.nodes.values()]) await stop(net, n);
  });
  return { net, nodes, dirs };
}

const metricValue = async (n: Node, re: RegExp): Promise<number | null> => {
  const m = re.exec(await n.reg.metrics());
  return m ? Number(m[1]) : null;
};

t.test('witness books round-trip through their stored form, an earlier form is read as records of no boot, and a malformed one is refused', async (t) => {
  const entries: [NodeId, PeerWitness][] = [
    ['b', { boots: [{ boot: 'b1', saw: { term: 3, vote: 'a', ackIndex: 9 } }, { boot: 'b2', saw: { term: 4, vote: null, ackIndex: 17 } }], rest: { term: 2, vote: null, ackIndex: 5 } }],
    ['c', { boots: [], rest: null }],
  ];
  t.same(decodeWitnesses(encodeWitnesses(entries)), entries);
  t.same(decodeWitnesses(Buffer.from('[["b", 4, "a", 17]]')), [['b', { boots: [], rest: { term: 4, vote: 'a', ackIndex: 17 } }]], 'the form without boots: counted against every asker');
  t.throws(() => decodeWitnesses(Buffer.from('[["b", 4, 7, 1]]')), /malformed/);
  t.throws(() => decodeWitnesses(Buffer.from('{}')), /expected \{ v: 2, peers \}/);
  t.throws(() => decodeWitnesses(Buffer.from('{"v":2,"peers":[["b",null,[["",1,null,0]]]]}')), /expected \[boot, term, vote, ackIndex\]/, 'an empty boot id');
});

t.test('a fresh cluster: gates open, one leader, its announcement and the votes that elected it are signed and reach every node; no alarm', async (t) => {
  const { nodes } = await cluster(t);
  const leader = await until('a leader', () => nodes.find((n) => n.driver.isLeader));
  for (const n of nodes) t.equal(n.guard.monitor.gate.verdict().kind, 'consistent', `${n.id}: every voter answered and nothing contradicts its store`);
  const term = leader.driver.status().term;
  const voters = nodes.filter((n) => n !== leader && n.grants.some((m) => m.type === 'voteResp' && m.term === term && m.to === leader.id));
  t.ok(voters.length >= 1, `${leader.id} was elected with ${voters.map((v) => v.id).join(', ')}'s vote`);
  const holds = (n: Node, kind: string, by: string): boolean => n.guard.monitor.equivocation.statements().some((s) => s.kind === kind && s.nodeId === by && (s.slot as { term: number }).term === term);
  // Statements travel in the next observation exchange (one interval).
  await until('the signed announcement and votes relayed to every node', () => nodes.every((n) => holds(n, LEADER_ANNOUNCEMENT, leader.id) && voters.every((v) => holds(n, RAFT_VOTE, v.id))));
  for (const n of nodes) {
    t.ok(holds(n, LEADER_ANNOUNCEMENT, leader.id), `${n.id} holds ${leader.id}'s signed announcement of term ${term}`);
    for (const v of voters) t.ok(holds(n, RAFT_VOTE, v.id), `${n.id} holds ${v.id}'s signed vote of term ${term}`);
  }
  for (const n of nodes) t.equal(await metricValue(n, /^custody_split_brain_alarms_total\{kind="two_leaders"\} (\d+)/m), 0, `${n.id} raised no alarm`);
  const o = await leader.driver.propose('c', 1, encodePut('k', Buffer.from('v')), 30_000);
  t.ok(o.ok, 'the cluster commits');
});

t.test('the witness book is written with the Raft state and read back at start', async (t) => {
  const { net, nodes, dirs } = await cluster(t);
  const leader = await until('a leader', () => nodes.find((n) => n.driver.isLeader));
  for (let i = 1; i <= 5; i++) await leader.driver.propose('w', i, encodePut(`k${i}`, Buffer.from('v')), 30_000);
  const follower = nodes.find((n) => n !== leader) as Node;
  // What the leader witnessed of the follower, before and after a restart of the leader.
  const seen = await until('acknowledgements witnessed', () => {
    const w = leader.guard.monitor.witnesses.report(follower.id);
    return w && w.ackIndex >= 5 ? w : null;
  });
  const i = nodes.indexOf(leader);
  await stop(net, leader);
  const stored = decodeWitnesses(leader.storage.appValue(WITNESS_KEY) ?? new Uint8Array());
  const kept = stored.find(([id]) => id === follower.id)?.[1];
  const rec = kept?.boots.map((b) => b.saw).reduce<Witness | null>((a, b) => joinWitness(a, b), kept.rest);
  t.same(kept?.boots.map((b) => b.boot), [follower.guard.boot], `kept apart under the boot of ${follower.id}'s run`);
  t.ok(rec && rec.term >= seen.term && rec.ackIndex >= 1, `the store holds ${leader.id}'s record of ${follower.id} (term ${rec?.term}, acknowledged index ${rec?.ackIndex})`);
  const again = await start(net, leader.id, dirs[i] as string);
  const back = again.guard.monitor.witnesses.report(follower.id);
  t.ok(back && back.term === rec?.term && back.ackIndex === rec.ackIndex, 'read back at start');
});

t.test('a clean restart after the cluster moved on to a later term is not taken for a rollback', async (t) => {
  const { net, nodes, dirs } = await cluster(t);
  const leader = await until('a leader', () => nodes.find((n) => n.driver.isLeader));
  const f = nodes.find((n) => n !== leader) as Node;
  const third = nodes.find((n) => n !== leader && n !== f) as Node;
  const fi = nodes.indexOf(f);
  await stop(net, f);
  const before = leader.driver.status().term;
  leader.driver.transferLeadership(third.id);
  await until(`${third.id} leads a later term`, () => third.driver.isLeader && third.driver.status().term > before);
  const back = await start(net, f.id, dirs[fi] as string);
  await until(`${f.id} heard from every voter`, () => back.guard.monitor.gate.verdict().kind !== 'waiting');
  t.equal(back.guard.monitor.gate.verdict().kind, 'consistent', 'its peers answer with what they saw before it restarted, so the term it learns on its way back is not held against its store');
  t.equal(await metricValue(back, /^custody_split_brain_active\{kind="rollback"\} (\d+)/m), 0, 'no rollback alarm');
});

t.test('one voter down for good: restarting the leader, and then the other node, elects a leader each time', async (t) => {
  const { net, nodes, dirs } = await cluster(t);
  const first = await until('a leader', () => nodes.find((n) => n.driver.isLeader));
  await first.driver.propose('d', 1, encodePut('before', Buffer.from('v')), 30_000);
  const dead = nodes.find((n) => n !== first) as Node;
  await stop(net, dead);
  let live = nodes.filter((n) => n !== dead);
  for (const victim of [first, live.find((n) => n !== first) as Node]) {
    const i = nodes.indexOf(victim);
    await stop(net, victim);
    const t0 = Date.now();
    const back = await start(net, victim.id, dirs[i] as string);
    live = live.map((n) => (n.id === back.id ? back : n));
    // A leader both live nodes follow: with two of three up, it needs the restarted node's vote or its following.
    const leader = await until(`a leader after restarting ${back.id} with ${dead.id} down`, () => live.find((n) => n.driver.isLeader && back.driver.status().leader === n.id));
    t.comment(`restart of ${back.id}: ${leader.id} leads, followed by ${back.id}, ${Date.now() - t0} ms after the restart (election timeout 100 ms)`);
    await until(`${back.id} heard the live peer`, () => back.guard.monitor.gate.verdict().kind !== 'waiting');
    t.same(back.guard.monitor.gate.verdict(), { kind: 'consistent', missing: [dead.id] }, `${back.id} votes on the answer of the one live peer and still asks ${dead.id}`);
    const o = await leader.driver.propose(`after-${back.id}`, 1, encodePut(`after-${back.id}`, Buffer.from('v')), 30_000);
    t.ok(o.ok, 'and the cluster commits');
  }
});

t.test('a store wiped without its vote waits for every voter, and holds to that across a restart until it voted', async (t) => {
  const { net, nodes, dirs } = await cluster(t);
  const leader = await until('a leader', () => nodes.find((n) => n.driver.isLeader));
  await leader.driver.propose('v', 1, encodePut('k', Buffer.from('v')), 30_000);
  const victim = nodes.find((n) => n !== leader) as Node;
  const silent = nodes.find((n) => n !== leader && n !== victim) as Node;
  const vi = nodes.indexOf(victim);
  await stop(net, victim);
  await stop(net, silent);
  // Forget the term and vote, as `custody node wipe --restored` does for a store copied back from an old image.
  t.same(await wipeStore(dirs[vi] as string, { discardVote: true, restored: true }), { keptTerm: null });
  let back = await start(net, victim.id, dirs[vi] as string);
  t.equal(back.guard.monitor.gate.history, 'vote_lost');
  await until(`${leader.id} answered`, () => !back.guard.monitor.gate.wantsAnswer(leader.id));
  t.equal(back.guard.monitor.gate.verdict().kind, 'rolled_back', `${leader.id} saw it in a later term than its emptied store`);
  t.equal(await metricValue(back, /^custody_split_brain_active\{kind="rollback"\} (\d+)/m), 0, 'no alarm: the operator said the store was restored');
  t.notOk(back.guard.mayVote(back.driver.durableState()), `no vote while ${silent.id} is silent: it may hold the vote the store forgot`);
  await until('the pending rule written to the store', () => back.storage.appValue(RESTORE_PENDING_KEY) !== undefined);
  // Restarted before it could vote: the wipe marker may be gone once the log is back, the pending rule is not.
  await stop(net, back);
  back = await start(net, victim.id, dirs[vi] as string);
  t.equal(back.guard.monitor.gate.history, 'vote_lost', 'restarted, it still waits for every voter');
  // Its own vote is withheld too: asked to take over leadership, it does not campaign.
  const term = back.driver.durableState().term;
  leader.driver.transferLeadership(back.id);
  await until(`${back.id} declines the transfer`, () => back.logs.some((l) => /^not taking over leadership from /.test(l)));
  t.ok(back.driver.durableState().term === term && !back.driver.isLeader, `${back.id} did not campaign (term ${term})`);
  const again = await start(net, silent.id, dirs[nodes.indexOf(silent)] as string);
  await until(`${back.id} votes once ${again.id} answered and it caught up`, () => back.guard.mayVote(back.driver.durableState()) || null);
  await until('the pending rule cleared', () => back.storage.appValue(RESTORE_PENDING_KEY) === undefined);
  t.pass(`${back.id} votes again in term ${back.driver.durableState().term}`);
});

t.test('the pending rule is written and cleared in synced batches: a lost clear would bring the node back waiting for every voter', async (t) => {
  const atStart = { term: 3, vote: null, lastIndex: 10, lastLogTerm: 3 };
  // The marker was stored, and the rule no longer applies to this store: the clear is synced.
  const cleared = new NodeGuard({ self: 'n1', voters: ['n1', 'n2', 'n3'], atStart, stored: undefined, identity: null, log: () => undefined, restorePendingStored: true });
  t.notOk(cleared.monitor.gate.restorePending(), 'an intact store holds to no rule');
  const a = cleared.takeWrites();
  t.same(a.writes.filter((w) => w.key === RESTORE_PENDING_KEY), [{ key: RESTORE_PENDING_KEY, value: null }], 'the stored rule is cleared');
  t.equal(a.sync, true, 'in a synced batch');
  t.same(cleared.takeWrites(), { writes: [], sync: false }, 'once: nothing more to write');
  // A store that lost its vote holds to the rule: written, synced.
  const held = new NodeGuard({ self: 'n1', voters: ['n1', 'n2', 'n3'], atStart, stored: undefined, identity: null, log: () => undefined, history: 'vote_lost' });
  t.ok(held.monitor.gate.restorePending());
  const b = held.takeWrites();
  t.ok(b.writes.some((w) => w.key === RESTORE_PENDING_KEY && w.value !== null), 'the rule is written');
  t.equal(b.sync, true, 'in a synced batch');
});

t.test('a wiped node reports its recovery done only once the end of it is durable: a crash after "recovered" cannot bring the marker back', async (t) => {
  const { net, nodes, dirs } = await cluster(t);
  const leader = await until('a leader', () => nodes.find((n) => n.driver.isLeader));
  for (let i = 1; i <= 3; i++) await leader.driver.propose('w', i, encodePut(`k${i}`, Buffer.from('v')), 30_000);
  const victim = nodes.find((n) => n !== leader) as Node;
  const vi = nodes.indexOf(victim);
  await stop(net, victim);
  t.ok((await wipeStore(dirs[vi] as string, { discardVote: false })).keptTerm !== null, 'wiped with its term kept: the log is lost');
  // Every batch that removes the marker: was it synced, and had the node already said it recovered
  // (in its log or its status) when the batch was handed to the store, or when the store resolved it?
  const ends: { sync: boolean; saidBefore: boolean; saidWhenDurable: boolean | null }[] = [];
  const back = await start(net, victim.id, dirs[vi] as string, {
    watchStore: (s, logs, status) => {
      const persist = s.persist.bind(s);
      const said = (): boolean => logs.some((l) => /^recovered: /.test(l)) || !status().recovering;
      s.persist = (b) => {
        const write = persist(b);
        if (b.app.some((w) => w.key === META_RECOVERING && w.value === null)) {
          const end: (typeof ends)[number] = { sync: b.sync, saidBefore: said(), saidWhenDurable: null };
          ends.push(end);
          // Registered before the driver awaits the same promise: runs first once the write is done.
          void write.then(() => void (end.saidWhenDurable = said()));
        }
        return write;
      };
    },
  });
  t.match(back.logs.join('\n'), /recovering after a wipe: this node grants no votes/, 'it starts recovering');
  await until('the node leaves recovery', () => back.logs.some((l) => /^recovered: applied \d+/.test(l)));
  t.equal(ends.length, 1, 'one batch ends the recovery');
  t.same(ends[0], { sync: true, saidBefore: false, saidWhenDurable: false }, 'written synced, and "recovered" (log and status) only after the store made it durable');
  t.equal(back.storage.appValue(META_RECOVERING), undefined, 'the marker is gone from the store');
  // The crash: the store as it is now, reopened. It must not recover again.
  await stop(net, back);
  const again = await start(net, victim.id, dirs[vi] as string);
  t.notOk(again.logs.some((l) => /^recovering after a wipe/.test(l)), 'restarted, it is not recovering again');
  t.equal(again.driver.status().recovering, false);
});

t.test('a node whose store went backwards withholds its vote and raises the rollback alarm; the others go on', async (t) => {
  const { net, nodes, dirs } = await cluster(t);
  const leader = await until('a leader', () => nodes.find((n) => n.driver.isLeader));
  const victim = nodes.find((n) => n !== leader) as Node;
  const vi = nodes.indexOf(victim);
  // Its old copy: the empty store it started from (term 0). Take it back to that by wiping the
  // directory while stopped, after the cluster has seen it in a later term.
  for (let i = 1; i <= 3; i++) await leader.driver.propose('r', i, encodePut(`k${i}`, Buffer.from('v')), 30_000);
  await until(`${victim.id} acknowledged entries`, () => (leader.guard.monitor.witnesses.report(victim.id)?.ackIndex ?? 0) >= 3);
  await stop(net, victim);
  await rm(dirs[vi] as string, { recursive: true, force: true });
  const restored = await start(net, victim.id, dirs[vi] as string);
  await until('the peers told it', () => restored.guard.monitor.gate.verdict().kind === 'rolled_back');
  t.match(restored.logs.join('\n'), /stored state went backwards/, 'it says so');
  await until('recovery begun', () => restored.logs.some((l) => /^recovering because .*witnessed this node beyond its stored state/.test(l)));
  t.ok(restored.logs.some((l) => /^recovering because /.test(l)), 'and recovers as a wiped node does: no votes until it holds what was committed');
  t.equal(await metricValue(restored, /^custody_split_brain_active\{kind="rollback"\} (\d+)/m), 1, 'custody_split_brain_active{kind="rollback"} is 1');
  // The others elect without it: cut the leader off; the victim is then needed for any majority
  // only once it caught up, and it must not vote before.
  const grantsBefore = restored.grants.length;
  t.equal(grantsBefore, 0, 'it granted no vote while withheld');
  t.equal(restored.driver.isLeader, false, 'and does not lead');
  const s = restored.driver.status();
  t.ok(s.leader === leader.id || s.leader === null, 'it follows the existing leader');
  const o = await leader.driver.propose('r', 10, encodePut('after', Buffer.from('v')), 30_000);
  t.ok(o.ok, 'the cluster commits with the other two');
  // It may vote again once its log reached what it acknowledged and its term is above every term
  // a peer saw it in: a new term, here by handing leadership to the third node.
  const third = nodes.find((n) => n !== leader && n !== victim) as Node;
  const witnessedTerm = leader.driver.status().term;
  leader.driver.transferLeadership(third.id);
  await until(`${third.id} leads a later term`, () => third.driver.isLeader);
  await until(`${restored.id} caught up and votes again`, () => restored.guard.mayVote(restored.driver.durableState()));
  t.ok(restored.driver.durableState().term > witnessedTerm, `${restored.id} votes again in term ${restored.driver.durableState().term}, past term ${witnessedTerm} its peers saw it in`);
  t.equal(await metricValue(restored, /^custody_rollback_vote_withheld (\d+)/m), 0, 'custody_rollback_vote_withheld is back to 0');
});

t.test('a peer that keeps asking is answered at once at most once per immediateAnswerIntervalMs; the round answers the rest', async (t) => {
  let now = 0;
  const rounds: (() => void)[] = [];
  const clock = { now: () => now, every: (_ms: number, fn: () => void) => (rounds.push(fn), { cancel: () => {} }) };
  const [a, b] = ids;
  const g = new NodeGuard({ self: a, voters: ids, atStart: { term: 3, vote: null, lastIndex: 5, lastLogTerm: 3 }, stored: undefined, identity: null, log: () => {}, clock, boot: 'a.1' });
  // b waits too, and its answers never count for a (they name no boot): every exchange a sends
  // draws one back from b asking again, delivered at once, as two waiting nodes did to each other.
  const sent: { to: string; answer: boolean }[] = [];
  const fromB = (): Uint8Array => encodeExchange({ from: b, observation: { node: b, term: 3, leader: null, appliedIndex: 5, stateRoot: 'r' }, statements: [], query: true, answer: null });
  g.start({
    peers: [b],
    exchangeWanted: () => true,
    sendExchange: (p, bytes) => {
      const d = decodeExchange(bytes, a);
      sent.push({ to: p, answer: d.ok && d.exchange.answer !== undefined });
      if (sent.length < 1000) g.incoming(b, fromB());
      return true;
    },
    view: () => ({ term: 3, leader: null, appliedIndex: 5, root: 'r' }),
  });
  t.same(sent, [{ to: b, answer: false }, { to: b, answer: true }], 'the round\'s exchange, then one answer at once; b\'s next query waits');
  now += splitBrain.immediateAnswerIntervalMs - 1;
  g.incoming(b, fromB());
  t.equal(sent.length, 2, 'still inside the interval: nothing more');
  (rounds[0] as () => void)();
  t.same(sent.slice(2), [{ to: b, answer: true }], 'the round carries the owed answer');
  now += 1;
  g.incoming(b, fromB());
  t.same(sent.slice(3), [{ to: b, answer: true }], 'a full interval after the last immediate answer, one more at once');
  t.equal(g.monitor.gate.verdict().kind, 'waiting', 'answers that name no boot never counted');
  g.stop();
});

t.test('--trust-store: a restarted node votes while a voter is silent, but not against a contradicting answer', async (t) => {
  const atStart = { term: 5, vote: null, lastIndex: 20, lastLogTerm: 5 };
  const mk = (trustStore: boolean): { g: NodeGuard; logs: string[]; reg: Registry } => {
    const reg = new Registry();
    const logs: string[] = [];
    const g = new NodeGuard({ self: ids[0], voters: ids, atStart, stored: undefined, identity: null, metrics: registerCatalogMetrics(reg), log: (l) => logs.push(l), trustStore });
    return { g, logs, reg };
  };
  const plain = mk(false);
  t.notOk(plain.g.mayVote(atStart), 'by default a restarted node waits for a quorum\'s answers');
  const trusted = mk(true);
  t.ok(trusted.g.mayVote(atStart), 'vouched for: it votes while the others have not answered');
  t.match(await trusted.reg.metrics(), /^custody_rollback_vote_withheld 0$/m);
  t.match(trusted.logs.join('\n'), /vouches for this store/, 'and says so');
  const [, b] = ids;
  trusted.g.incoming(b, encodeExchange({ from: b, observation: { node: b, term: 7, leader: b, appliedIndex: 30, stateRoot: 'r' }, statements: [], query: false, answer: { term: 7, vote: ids[0], ackIndex: 30 }, answerFor: trusted.g.boot }));
  t.equal(trusted.g.monitor.gate.verdict().kind, 'rolled_back', 'a peer saw it in a later term');
  t.notOk(trusted.g.mayVote(atStart), 'a contradicting answer withholds the vote all the same');
});

t.test('two different DKG round-1 packages by one node for one key epoch, seen in the log, become evidence', async (t) => {
  const logs: string[] = [];
  const proposed: EquivocationEvidence[] = [];
  const g = new NodeGuard({
    self: ids[0], voters: ids, atStart: { term: 1, vote: null, lastIndex: 1, lastLogTerm: 1 }, stored: undefined,
    identity: { clusterId: sc.clusterId, secretKey: sc.node(ids[0]).secretKey, publicKey }, log: (l) => logs.push(l),
  });
  g.start({
    peers: [], exchangeWanted: () => false, sendExchange: () => false, view: () => ({ term: 1, leader: null, appliedIndex: 1, root: 'r' }),
    proposeEvidence: async (ev) => {
      proposed.push(ev);
      return { accepted: true };
    },
  });
  t.teardown(() => g.stop());
  const [, b] = ids;
  const pkg = (cid: string) => sc.statement(b, 'DkgRound1Published', { keyId: 'k1', keyEpoch: 0 }, { round1Cid: cid });
  g.statementInLog(pkg('aa'));
  g.statementInLog(pkg('aa'));
  t.equal(proposed.length, 0, 'the same package twice is no conflict');
  g.statementInLog(pkg('bb'));
  await until('proposed', () => proposed.length > 0);
  t.equal(proposed[0]?.first.kind, 'DkgRound1Published', 'a second package for the slot is equivocation evidence');
  t.equal(proposed[0]?.first.nodeId, b);
});

t.test('a forged double vote reaching one node becomes evidence, proposed until the ledger rules', async (t) => {
  let refusals = 1;
  const net = new Net();
  const dir = await mkdtemp(join(tmpdir(), 'custody-guard-ev-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const n = await start(net, ids[0], dir, {
    evidence: async () => {
      if (refusals-- > 0) throw new Error('no leader yet');
      return { accepted: true };
    },
  });
  t.teardown(() => stop(net, n));
  const [, b] = ids;
  const votes = [signVote(sc.clusterId, b, 7, ids[0], sc.node(b).secretKey), signVote(sc.clusterId, b, 7, ids[2], sc.node(b).secretKey)];
  n.guard.incoming(b, encodeExchange({ from: b, observation: { node: b, term: 0, leader: null, appliedIndex: 0, stateRoot: '' }, statements: votes, query: false }));
  await until('the evidence recorded after one failed attempt', () => n.logs.some((l) => /recorded in the ledger/.test(l)), 30_000);
  t.equal(n.proposed.length, 2, 'proposed twice: the first attempt could not be placed, the retry was ruled on');
  t.equal(n.proposed[0]?.first.nodeId, b, `the evidence names ${b}`);
  t.match(n.logs.join('\n'), new RegExp(`equivocation evidence against ${b} \\(RaftVote\\): recorded in the ledger`));
});
