/**
 * Three SplitBrainMonitors talking through encoded exchanges (node/splitbrain/exchange.ts), as
 * three daemons would over their peer channel: healthy clusters stay quiet and vote; a double
 * vote becomes the same ledger evidence on every node; a node restored from an old copy is told
 * so by its peers; the metrics an operator alerts on follow.
 */
import { Registry } from 'prom-client';
import t from 'tap';
import { ScriptedCluster, encode, encodeEvent, statementToCbor } from '../../ledger/index.js';
import { registerCatalogMetrics, type CatalogMetrics } from '../../node/metrics-catalog.js';
import { signVote } from '../../node/splitbrain/equivocation.js';
import { decodeExchange, encodeExchange, type Exchange } from '../../node/splitbrain/exchange.js';
import { SplitBrainMonitor } from '../../node/splitbrain/monitor.js';
import type { Observation } from '../../node/splitbrain/detector.js';
import type { DurableState, StoreHistory } from '../../node/splitbrain/rollback.js';
import { splitBrain } from '../../proto/limits.js';

const sc = new ScriptedCluster({ nodes: 3, label: 'monitor' });
sc.genesis();
const ids = sc.nodes.map((n) => n.info.id) as [string, string, string];
const keyOf = (id: string): Uint8Array | undefined => sc.nodes.find((n) => n.info.id === id)?.info.identityKey;

interface Node { id: string; mon: SplitBrainMonitor; reg: Registry; metrics: CatalogMetrics; obs: Observation; logs: string[] }

function cluster(atStart: (id: string) => DurableState = () => ({ term: 3, vote: null, lastIndex: 10, lastLogTerm: 3 }), history: (id: string) => StoreHistory = () => 'intact'): Node[] {
  return ids.map((id) => {
    const reg = new Registry();
    const metrics = registerCatalogMetrics(reg);
    const logs: string[] = [];
    const mon = new SplitBrainMonitor({ self: id, clusterId: sc.clusterId, voters: ids, identityKey: keyOf, atStart: atStart(id), metrics, log: (l) => logs.push(l), history: history(id) });
    return { id, mon, reg, metrics, obs: { node: id, term: 3, leader: ids[0], appliedIndex: 10, stateRoot: 'root-10' }, logs };
  });
}

/** One exchange interval: every node sends every peer an exchange, through the wire encoding. */
function round(nodes: Node[]): void {
  const wire: { to: Node; from: string; bytes: Uint8Array }[] = [];
  for (const n of nodes) {
    n.mon.observeLocal(n.obs);
    for (const p of nodes) if (p !== n) wire.push({ to: p, from: n.id, bytes: encodeExchange(n.mon.outgoing(p.id, n.obs)) });
  }
  for (const w of wire) w.to.mon.incoming(w.from, decodeExchange(w.bytes, w.from));
}

const metric = async (n: Node, re: RegExp): Promise<boolean> => re.test(await n.reg.metrics());

t.test('a healthy cluster: no alarm, every node hears every voter and may vote after two exchanges', async (t) => {
  const nodes = cluster();
  const durable: DurableState = { term: 3, vote: null, lastIndex: 10, lastLogTerm: 3 };
  for (const n of nodes) t.notOk(n.mon.mayVote(durable), `${n.id}: no vote before the peers answered`);
  round(nodes); // queries out
  round(nodes); // answers back
  for (const n of nodes) {
    t.equal(n.mon.gate.verdict().kind, 'consistent', n.id);
    t.ok(n.mon.mayVote(durable), `${n.id} votes`);
    t.ok(await metric(n, /^custody_rollback_vote_withheld 0$/m));
    t.ok(await metric(n, /^custody_split_brain_active\{kind="two_leaders"\} 0$/m));
    t.same(n.mon.takeEvidence(), []);
    t.ok(await metric(n, /^custody_split_brain_observations_total\{result="accepted"\} [1-9]\d*$/m));
  }
});

t.test('a double vote reaches every node and becomes one identical EquivocationEvidence event everywhere', async (t) => {
  const nodes = cluster();
  const [n1, n2, n3] = nodes as [Node, Node, Node];
  const secret = sc.node(n3.id).secretKey;
  // n3 grants its vote in term 5 to n1 and, having forgotten it, to n2: each candidate holds one.
  n1.mon.statement(signVote(sc.clusterId, n3.id, 5, n1.id, secret));
  n2.mon.statement(signVote(sc.clusterId, n3.id, 5, n2.id, secret));
  round(nodes);
  round(nodes);
  const events = nodes.map((n) => n.mon.takeEvidence());
  for (const [i, ev] of events.entries()) t.equal(ev.length, 1, `${ids[i]} found the pair`);
  const bytes = events.map((ev) => Buffer.from(encodeEvent(ev[0]!)).toString('hex'));
  t.equal(new Set(bytes).size, 1, 'byte-identical events: the ledger records one');
  t.ok(await metric(n1, /^custody_equivocation_evidence_total\{kind="RaftVote"\} 1$/m));
  t.match(n2.logs.join('\n'), /equivocation: .* signed two different RaftVote statements/);
  t.same(nodes.map((n) => n.mon.takeEvidence().length), [0, 0, 0], 'each pair is handed out once');
});

t.test('a node restored from an old copy is told by its peers, withholds its vote and raises the rollback alarm', async (t) => {
  const nodes = cluster((id) => (id === ids[0] ? { term: 2, vote: null, lastIndex: 4, lastLogTerm: 2 } : { term: 6, vote: ids[0], lastIndex: 40, lastLogTerm: 6 }));
  const [n1, n2] = nodes as [Node, Node, Node];
  // Before the restore, n2 heard n1 in term 6 and took its acknowledgement of index 40.
  n2.mon.noteMessage({ type: 'appResp', from: n1.id, to: n2.id, term: 6, index: 40, reject: false });
  round(nodes);
  round(nodes);
  const v = n1.mon.gate.verdict();
  t.equal(v.kind, 'rolled_back');
  t.notOk(n1.mon.mayVote({ term: 2, vote: null, lastIndex: 4, lastLogTerm: 2 }));
  t.ok(await metric(n1, /^custody_split_brain_active\{kind="rollback"\} 1$/m), 'CustodySplitBrain{kind="rollback"} fires');
  t.ok(await metric(n1, /^custody_split_brain_alarms_total\{kind="rollback"\} 1$/m));
  t.ok(await metric(n1, /^custody_rollback_vote_withheld 1$/m));
  t.match(n1.logs.join('\n'), /stored state went backwards .*saw term 6 > stored 2/);
  t.ok(n1.mon.mayVote({ term: 7, vote: null, lastIndex: 40, lastLogTerm: 6 }), 'votes again once past term 6 with index 40');
  t.ok(await metric(n1, /^custody_rollback_vote_withheld 0$/m));
});

t.test('a peer that restarts while a node waits for its answer answers with what earlier runs said: no alarm on an intact store, a restored one still caught', async (t) => {
  const [a, b, c] = ids;
  const mk = (self: string, boot: string, atStart: DurableState, stored?: SplitBrainMonitor): { mon: SplitBrainMonitor; logs: string[]; reg: Registry } => {
    const reg = new Registry();
    const logs: string[] = [];
    const mon = new SplitBrainMonitor({ self, clusterId: sc.clusterId, voters: ids, identityKey: keyOf, atStart, metrics: registerCatalogMetrics(reg), log: (l) => logs.push(l), boot });
    if (stored) mon.witnesses.restore(stored.witnesses.entries());
    return { mon, logs, reg };
  };
  const obs = (node: string): Observation => ({ node, term: 4, leader: null, appliedIndex: 10, stateRoot: 'root-10' });
  const ask = (from: { mon: SplitBrainMonitor }, fromId: string, to: { mon: SplitBrainMonitor }, toId: string): void => {
    to.mon.incoming(fromId, decodeExchange(encodeExchange(from.mon.outgoing(toId, obs(fromId))), fromId));
    from.mon.incoming(toId, decodeExchange(encodeExchange(to.mon.outgoing(fromId, obs(toId))), toId));
  };
  const stored: DurableState = { term: 3, vote: null, lastIndex: 10, lastLogTerm: 3 };
  // b heard a's first run (boot a.1) in term 3 with index 10 acknowledged.
  const b1 = mk(b, 'b.1', stored);
  b1.mon.noteMessage({ type: 'appResp', from: a, to: b, term: 3, index: 10, reject: false }, 'a.1');
  // a restarts (a.2) on its intact store; c is down. Before b answers, a.2 speaks in term 4.
  const a2 = mk(a, 'a.2', stored);
  t.ok(a2.mon.outgoing(b, obs(a)).query, 'a.2 asks b');
  b1.mon.noteMessage({ type: 'voteResp', from: a, to: b, term: 4, index: 0, reject: false }, 'a.2');
  t.same(b1.mon.witnesses.report(a), { term: 4, vote: b, ackIndex: 0 }, "b's whole record of a already holds a.2's term 4");
  // b restarts with its book as stored, then answers a.2's query.
  const b2 = mk(b, 'b.2', stored, b1.mon);
  ask(a2, a, b2, b);
  t.equal(a2.mon.gate.verdict().kind, 'consistent', 'the answer holds a.1 only: the intact store agrees');
  t.ok(a2.mon.mayVote(stored), 'a.2 votes with b, c being down');
  t.ok(await a2.reg.metrics().then((m) => /^custody_split_brain_alarms_total\{kind="rollback"\} 0$/m.test(m)), 'no rollback alarm');
  // The same b against a store restored from a copy older than a.1's promises: still caught.
  const a3 = mk(a, 'a.3', { term: 2, vote: null, lastIndex: 4, lastLogTerm: 2 });
  ask(a3, a, b2, b);
  const v = a3.mon.gate.verdict();
  t.equal(v.kind, 'rolled_back', 'what a.1 and a.2 said contradicts the restored store');
  t.ok(v.kind === 'rolled_back' && v.evidence[0]?.saw.term === 4, 'a.2, an earlier run for a.3, counts in full');
  t.ok(await a3.reg.metrics().then((m) => /^custody_split_brain_alarms_total\{kind="rollback"\} 1$/m.test(m)), 'the rollback alarm fires');
  // An answer to another run's query never counts.
  const a4 = mk(a, 'a.4', stored);
  a4.mon.incoming(b, decodeExchange(encodeExchange({ from: b, observation: obs(b), statements: [], query: false, answer: null, answerFor: 'a.3' }), b));
  a4.mon.incoming(c, decodeExchange(encodeExchange({ from: c, observation: obs(c), statements: [], query: false, answer: null }), c));
  t.equal(a4.mon.gate.verdict().kind, 'waiting', 'answers for a.3, or for no boot, leave a.4 waiting');
  t.ok(a4.mon.outgoing(b, obs(a)).query && a4.mon.outgoing(c, obs(a)).query, 'and asking');
  t.match(a4.logs.join('\n'), /ignoring .*rollback answer for boot a\.3/);
});

t.test('an operator-wiped log (term and vote kept) withholds the vote without raising the alarm; a lost term still alarms', async (t) => {
  const wiped = { term: 6, vote: ids[1], lastIndex: 0, lastLogTerm: 0 };
  const nodes = cluster((id) => (id === ids[0] ? wiped : { term: 6, vote: ids[1], lastIndex: 40, lastLogTerm: 6 }), (id) => (id === ids[0] ? 'log_lost' : 'intact'));
  const [n1, n2] = nodes as [Node, Node, Node];
  n2.mon.noteMessage({ type: 'appResp', from: n1.id, to: n2.id, term: 6, index: 40, reject: false });
  round(nodes);
  round(nodes);
  const v = n1.mon.gate.verdict();
  t.equal(v.kind, 'rolled_back', 'the acknowledged entries are gone: a rollback for the gate');
  t.same(v.kind === 'rolled_back' ? v.evidence.map((e) => e.what) : [], ['log'], 'proven by the log only');
  t.notOk(n1.mon.mayVote(wiped), 'the vote is withheld until the node holds them again');
  t.ok(await metric(n1, /^custody_split_brain_active\{kind="rollback"\} 0$/m), 'no alarm: the operator wiped it');
  t.ok(await metric(n1, /^custody_rollback_vote_withheld 1$/m));
  // The same expectation does not cover a store whose term went backwards.
  const older = cluster((id) => (id === ids[0] ? { term: 4, vote: null, lastIndex: 0, lastLogTerm: 0 } : { term: 6, vote: null, lastIndex: 40, lastLogTerm: 6 }), (id) => (id === ids[0] ? 'log_lost' : 'intact'));
  (older[1] as Node).mon.noteMessage({ type: 'appResp', from: ids[0], to: ids[1], term: 6, index: 40, reject: false });
  round(older);
  round(older);
  t.ok(await metric(older[0] as Node, /^custody_split_brain_active\{kind="rollback"\} 1$/m), 'a lost term is not explained by a wipe: the alarm fires');
});

t.test('two leaders for one term raise the two_leaders alarm and its metric', async (t) => {
  const nodes = cluster();
  const [n1, , n3] = nodes as [Node, Node, Node];
  n3.obs = { ...n3.obs, leader: n3.id };
  round(nodes);
  t.ok(await metric(n1, /^custody_split_brain_active\{kind="two_leaders"\} 1$/m));
  t.match(n1.logs.join('\n'), /term 3 has two leaders/);
});

t.test('the exchange decoder refuses what a peer must not send', async (t) => {
  const obs: Observation = { node: 'n1', term: 1, leader: null, appliedIndex: 0, stateRoot: '' };
  const e: Exchange = { from: 'n1', observation: obs, statements: [], query: true, answer: null };
  const ok = decodeExchange(encodeExchange(e), 'n1');
  t.same(ok, { ok: true, exchange: e }, 'round trip');
  t.same(decodeExchange(encodeExchange({ ...e, answer: { term: 3, vote: 'n2', ackIndex: 9 } }), 'n1'), { ok: true, exchange: { ...e, answer: { term: 3, vote: 'n2', ackIndex: 9 } } });
  const { answer: _drop, ...noAnswer } = e;
  t.same(decodeExchange(encodeExchange(noAnswer), 'n1'), { ok: true, exchange: noAnswer }, 'no answer field');
  const booted: Exchange = { ...e, boot: 'n1-run', answerFor: 'n2-run' };
  t.same(decodeExchange(encodeExchange(booted), 'n1'), { ok: true, exchange: booted }, 'the boot ids round-trip');
  t.match(decodeExchange(encode({ v: 1, from: 'n1', observation: { ...obs }, statements: [], query: false, answerFor: 'n2-run' }), 'n1'), { ok: false, reason: 'PAYLOAD_REJECTED' }, 'answerFor without an answer');
  t.match(decodeExchange(encodeExchange({ ...e, boot: 'x'.repeat(splitBrain.bootIdCharsMax + 1) }), 'n1'), { ok: false, reason: 'PAYLOAD_REJECTED' }, 'a boot id over bootIdCharsMax');
  t.match(decodeExchange(encodeExchange({ ...e, boot: '' }), 'n1'), { ok: false, reason: 'PAYLOAD_REJECTED' }, 'an empty boot id');
  t.match(decodeExchange(encodeExchange(e), 'n2'), { ok: false, reason: 'PEER_IDENTITY_MISMATCH' }, 'from another node than the certificate');
  t.match(decodeExchange(encodeExchange({ ...e, from: 'n2' }), 'n2'), { ok: false, reason: 'PEER_IDENTITY_MISMATCH' }, 'an observation of someone else');
  t.match(decodeExchange(new Uint8Array([0xff, 0x00]), 'n1'), { ok: false, reason: 'FRAME_MALFORMED' });
  t.match(decodeExchange(encodeExchange({ ...e, observation: { ...obs, term: -1 } }), 'n1'), { ok: false, reason: 'PAYLOAD_REJECTED' });
  const many = Array.from({ length: splitBrain.statementsPerExchangeMax + 1 }, (_, i) => signVote(sc.clusterId, ids[0], i + 1, ids[1], sc.node(ids[0]).secretKey));
  t.throws(() => encodeExchange({ ...e, statements: many }), RangeError, 'the sender refuses to build an oversize exchange');
  const oversize = encode({ v: 1, from: 'n1', observation: { ...obs }, statements: many.map(statementToCbor), query: false });
  t.match(decodeExchange(oversize, 'n1'), { ok: false, reason: 'LIMIT_EXCEEDED' }, 'the receiver refuses one built elsewhere');
});

t.test('relay is bounded: at most one exchange\'s worth per send, at most the relay queue per peer', async (t) => {
  const [n1] = cluster() as [Node, Node, Node];
  const secret = sc.node(ids[1]).secretKey;
  const total = splitBrain.statementsRelayQueuedMax + 10;
  let fresh = 0;
  for (let term = 1; term <= total; term++) if (n1.mon.statement(signVote(sc.clusterId, ids[1], term, ids[2], secret)).kind === 'new') fresh++;
  t.equal(fresh, total, 'every vote is new');
  let sent = 0;
  for (let k = 0; k < Math.ceil(total / splitBrain.statementsPerExchangeMax) + 1; k++) {
    const e = n1.mon.outgoing(ids[1], n1.obs);
    t.ok(e.statements.length <= splitBrain.statementsPerExchangeMax);
    sent += e.statements.length;
  }
  t.equal(sent, splitBrain.statementsRelayQueuedMax, 'the oldest statements beyond the queue bound were dropped');
});
