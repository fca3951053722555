/**
 * The core's membership guard (RaftConfig.confGuard): a follower appends a membership change only
 * once every entry before it is applied and the guard accepts it; a leader proposes one only under
 * the same rule. Attacks: a leader (or a peer forwarding a proposal) sending a change the guard
 * refuses; progress: a change held until its decision is applied is accepted on a later probe.
 */
import t from 'tap';
import { encodeConfChange } from '../../raft/core/confchange.js';
import { msg } from '../../raft/core/message.js';
import { RaftCore } from '../../raft/core/raft.js';
import type { ConfChange, ConfGuard, Entry, Message } from '../../raft/core/types.js';
import { conf, makeConfig, Network, TestNode } from './harness.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const confEntry = (index: number, term: number, cc: ConfChange): Entry => ({ index, term, type: 'conf', data: encodeConfChange(cc) });
const normal = (index: number, term: number, data: string): Entry => ({ index, term, type: 'normal', data: enc(data) });
const addVoter9: ConfChange = { changes: [{ type: 'addVoter', node: '9' }], transition: 'auto' };
const isHeld = (m: Message): boolean => new TextDecoder().decode(m.context) === 'conf-held';

/** A guard that accepts a change only once the node's state machine applied "allow <type> <node>" for each of its changes. */
function allowGuard(node: () => TestNode): ConfGuard {
  return (cc) => {
    for (const ch of cc.changes) if (!node().applied.includes(`allow ${ch.type} ${ch.node}`)) return `no applied decision allows ${ch.type} ${ch.node}`;
    return null;
  };
}

/** Gives node `id` of a fresh network the guard `g` (its core is rebuilt before it has done anything). */
function guard(net: Network, id: string, g: (n: TestNode) => ConfGuard, opts = {}): void {
  const n = net.node(id);
  n.core = new RaftCore(makeConfig(id, n.storage, n.seed, { ...opts, confGuard: g(n) }));
}

t.test('a follower holds a change until the entries before it are applied, then refuses it when its guard does: not appended, counted, the leader not followed for the term', async (t) => {
  let calls = 0;
  const f = new TestNode('2', conf(['1', '2', '3']), 7, { preVote: true, confGuard: () => { calls++; return 'no decision asks for it'; } });
  f.core.step(msg('app', '1', '2', 1, { index: 0, logTerm: 0, entries: [normal(1, 1, 'x'), confEntry(2, 1, addVoter9)], commit: 5 }));
  let out = f.process();
  t.same(f.log().map((e) => e.index), [1], 'the entry before the change is appended, the change is not');
  t.equal(calls, 0, 'not judged before the entry before it is applied');
  t.equal(f.core.stats.confChangesHeld, 1);
  const held = out.find((m) => m.type === 'appResp');
  t.ok(held && !held.reject && held.index === 1 && isHeld(held), 'acknowledges index 1 and says the change is held');
  t.equal(f.core.status().commit, 1, 'a commit index past the held change is not believed');
  f.core.step(msg('heartbeat', '1', '2', 1, { commit: 1 }));
  f.process();
  t.equal(f.appliedIndex, 1);
  f.core.step(msg('app', '1', '2', 1, { index: 1, logTerm: 1, entries: [confEntry(2, 1, addVoter9)], commit: 2 }));
  out = f.process();
  t.equal(calls, 1, 'judged once the entry before it is applied');
  t.same(f.log().map((e) => e.index), [1], 'the refused change is not appended');
  t.equal(f.core.stats.confChangesRefused, 1, 'the refusal is counted');
  t.same(f.core.status().conf.voters, ['1', '2', '3'], 'configuration unchanged');
  t.equal(f.core.status().leader, null, 'the leader that sent it is no longer followed');
  f.core.step(msg('heartbeat', '1', '2', 1, { commit: 1 }));
  t.same(f.process().filter((m) => m.to === '1'), [], 'its heartbeats of that term go unanswered');
  t.equal(f.core.stats.distrustedLeaderMessages, 1);
  for (let i = 0; i < 40 && f.core.status().role === 'follower'; i++) {
    f.core.tick();
    f.process();
  }
  t.equal(f.core.status().role, 'pre-candidate', 'its election clock ran out: it asks for pre-votes (still in term 1)');
  f.core.step(msg('heartbeat', '1', '2', 1, { commit: 1 }));
  f.process();
  t.equal(f.core.status().role, 'pre-candidate', 'that leader\'s heartbeat of term 1 does not draw it back into following');
  t.equal(f.core.status().leader, null);
  f.core.step(msg('app', '3', '2', 3, { index: 1, logTerm: 1, entries: [normal(2, 3, 'y')], commit: 1 }));
  t.ok(f.process().some((m) => m.type === 'appResp' && m.to === '3' && !m.reject && m.index === 2), 'a leader of a later term is followed');
});

t.test('with the guard accepting once the decision is applied, the held change is appended on the retry (progress)', async (t) => {
  const f = new TestNode('2', conf(['1', '2', '3']), 7);
  f.core = new RaftCore(makeConfig('2', f.storage, 7, { confGuard: allowGuard(() => f) }));
  f.core.step(msg('app', '1', '2', 1, { index: 0, logTerm: 0, entries: [normal(1, 1, 'allow addVoter 9'), confEntry(2, 1, addVoter9)], commit: 0 }));
  f.process();
  t.same(f.log().map((e) => e.index), [1], 'held while the decision is not applied');
  f.core.step(msg('heartbeat', '1', '2', 1, { commit: 1 }));
  f.process();
  f.core.step(msg('app', '1', '2', 1, { index: 1, logTerm: 1, entries: [confEntry(2, 1, addVoter9)], commit: 1 }));
  const out = f.process();
  t.same(f.log().map((e) => e.index), [1, 2], 'appended once the decision is applied');
  t.ok(out.some((m) => m.type === 'appResp' && m.index === 2 && !isHeld(m)), 'acknowledged');
  t.equal(f.core.stats.confChangesRefused, 0);
  t.equal(f.core.status().leader, '1');
});

t.test('governed path across a cluster: a change sent in the same append as its decision is held, then committed and applied everywhere', async (t) => {
  const net = new Network(['1', '2', '3'], { preVote: true, checkQuorum: true });
  for (const id of ['2', '3']) guard(net, id, (n) => allowGuard(() => n), { preVote: true, checkQuorum: true });
  net.campaign('1');
  // The leader (no guard of its own here) appends the decision and the change back to back, so
  // its followers see both in one append: they must hold the change, not refuse it.
  net.node('1').core.propose(enc('allow addLearner 4'));
  const r = net.node('1').core.proposeConfChange({ changes: [{ type: 'addLearner', node: '4' }], transition: 'auto' });
  t.equal(r.ok, true);
  net.stabilize();
  net.tickAll(4);
  for (const id of ['1', '2', '3']) t.same(net.node(id).core.status().conf.learners, ['4'], `${id} applied the change`);
  t.ok(net.node('2').core.stats.confChangesHeld + net.node('3').core.stats.confChangesHeld > 0, 'it was held at first');
  t.equal(net.node('2').core.stats.confChangesRefused + net.node('3').core.stats.confChangesRefused, 0, 'and never refused');
  t.equal(net.leader(), '1', 'the leader kept its leadership');
});

t.test('a compromised leader sends a change no decision allows: refused on every honest follower, never committed, and the honest majority elects a new leader and keeps committing', async (t) => {
  const opts = { preVote: true, checkQuorum: true };
  const net = new Network(['1', '2', '3'], opts);
  for (const id of ['2', '3']) guard(net, id, (n) => allowGuard(() => n), opts);
  net.campaign('1');
  t.ok(net.propose('1', 'before').ok);
  // Node 1 runs no guard: it stands for a leader whose daemon proposes what it likes.
  const r = net.node('1').core.proposeConfChange({ changes: [{ type: 'remove', node: '3' }], transition: 'auto' });
  t.equal(r.ok, true, 'the compromised leader appends it to its own log');
  net.stabilize();
  net.tickAll(60);
  for (const id of ['2', '3']) {
    const n = net.node(id);
    t.notOk(n.log().some((e) => e.type === 'conf'), `${id} never appended it`);
    t.ok(n.core.stats.confChangesRefused >= 1, `${id} counted the refusal`);
    t.same(n.core.status().conf.voters, ['1', '2', '3'], `${id}: configuration unchanged`);
  }
  const leader = net.leader();
  t.ok(leader === '2' || leader === '3', `an honest node leads now (${leader})`);
  t.ok(net.propose(leader as string, 'after').ok);
  net.tickAll(3);
  for (const id of ['2', '3']) t.ok(net.node(id).applied.includes('after'), `${id} applied an entry of the new leader`);
  t.same(net.node('1').core.status().conf.voters, ['1', '2', '3'], 'the change never took effect on the old leader either');
  t.notOk(net.node('1').log().some((e) => e.type === 'conf'), 'its uncommitted change was overwritten by the new leader');
});

t.test('a leader proposes a change only with its whole log applied and only when its own guard accepts it (CONF_CHANGE_UNAUTHORIZED)', async (t) => {
  let verdict: string | null = 'no decision asks for it';
  const net = new Network(['1', '2', '3']);
  guard(net, '1', () => () => verdict);
  net.campaign('1');
  const last = net.node('1').core.status().lastIndex;
  const refused = net.node('1').core.proposeConfChange(addVoter9);
  t.match(refused, { ok: false, reason: 'CONF_CHANGE_UNAUTHORIZED', detail: 'no decision asks for it' });
  t.equal(net.node('1').core.stats.confChangesRefused, 1);
  t.equal(net.node('1').core.status().lastIndex, last, 'nothing appended');
  verdict = null;
  net.node('1').core.propose(enc('unapplied'));
  const early = net.node('1').core.proposeConfChange({ changes: [{ type: 'addLearner', node: '9' }], transition: 'auto' });
  t.match(early, { ok: false, reason: 'PROPOSAL_DROPPED' }, 'refused while an entry before it is not applied');
  net.stabilize();
  t.match(net.node('1').core.proposeConfChange({ changes: [{ type: 'addLearner', node: '9' }], transition: 'auto' }), { ok: true }, 'accepted once the log is applied');
});

t.test('a peer forwarding a membership change to the leader gets nothing appended when the leader\'s guard refuses it', async (t) => {
  const net = new Network(['1', '2', '3']);
  guard(net, '1', () => () => 'no decision asks for it');
  net.campaign('1');
  const before = net.node('1').core.status().lastIndex;
  net.node('1').core.step(msg('prop', '3', '1', 0, { entries: [confEntry(0, 0, addVoter9)] }));
  net.stabilize();
  t.equal(net.node('1').core.status().lastIndex, before, 'the forwarded change is not appended');
  t.equal(net.node('1').core.stats.confChangesRefused, 1);
  t.same(net.node('1').core.status().conf.voters, ['1', '2', '3']);
});
