/**
 * Features beyond the paper's core: flow control, leases, leader transfer, proposal forwarding
 * and backpressure, membership-change guards.
 */
import t from 'tap';
import { msg } from '../../raft/core/message.js';
import { conf, Network, TestNode } from './harness.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function leaderOf3(opts = {}): TestNode {
  const n = new TestNode('1', conf(['1', '2', '3']), 3, opts);
  n.core.campaign();
  n.process();
  n.core.step(msg('voteResp', '2', '1', 1));
  n.process();
  return n;
}

t.test('a follower in replicate state gets at most inflightMsgsMax unacknowledged appends (flow control)', async (t) => {
  const n = leaderOf3({ inflightMsgsMax: 4 });
  n.core.step(msg('appResp', '2', '1', 1, { index: 1 })); // 2 -> replicate
  n.process();
  for (let i = 0; i < 10; i++) n.core.propose(enc(`p${i}`));
  const toTwo = n.process().filter((m) => m.type === 'app' && m.to === '2' && m.entries.length > 0);
  t.equal(toTwo.length, 4, 'four appends in flight, the rest wait');
  const st = n.core.status().progress?.['2'];
  t.equal(st?.state, 'replicate');
  t.equal(st?.inflightMsgs, 4);
  n.core.step(msg('appResp', '2', '1', 1, { index: 3 }));
  const more = n.process().filter((m) => m.type === 'app' && m.to === '2' && m.entries.length > 0);
  t.ok(more.length >= 1, 'an acknowledgement opens the window again');
});

t.test('appends are batched up to appendBytesMax', async (t) => {
  const n = leaderOf3({ appendBytesMax: 100 });
  n.core.step(msg('appResp', '2', '1', 1, { index: 1 }));
  n.process();
  for (let i = 0; i < 10; i++) n.core.propose(new Uint8Array(40));
  const apps = n.process().filter((m) => m.type === 'app' && m.to === '2' && m.entries.length > 0);
  t.ok(apps.every((m) => m.entries.reduce((s, e) => s + e.data.length, 0) <= 100 || m.entries.length === 1), 'no batch exceeds the byte cap');
  t.equal(apps.reduce((s, m) => s + m.entries.length, 0), 10, 'every entry is sent');
});

t.test('a probing follower receives one append at a time until it answers', async (t) => {
  const n = leaderOf3();
  for (let i = 0; i < 5; i++) n.core.propose(enc(`p${i}`));
  const toThree = n.process().filter((m) => m.type === 'app' && m.to === '3');
  t.equal(toThree.length, 0, 'the probe sent on election is still unanswered');
});

t.test('check-quorum: a follower ignores a vote request while its leader lease is live (thesis §4.2.3)', async (t) => {
  const net = new Network(['1', '2', '3'], { checkQuorum: true });
  net.campaign('1');
  net.node('2').core.step(msg('vote', '3', '2', 5, { index: 99, logTerm: 99 }));
  t.equal(net.node('2').core.status().term, 1, 'term unchanged');
  t.equal(net.node('2').process().filter((m) => m.type === 'voteResp').length, 0, 'no answer at all');
});

t.test('leader transfer hands leadership to an up-to-date follower, and proposals are refused meanwhile', async (t) => {
  const net = new Network(['1', '2', '3']);
  net.campaign('1');
  net.propose('1', 'x');
  net.isolated.add('3');
  net.node('1').core.transferLeadership('3');
  net.stabilize();
  const r = net.node('1').core.propose(enc('during'));
  t.equal(r.ok, false, 'proposals are dropped while a transfer is pending');
  net.isolated.clear();
  net.tickAll(2);
  t.equal(net.node('3').core.status().role, 'leader');
  t.equal(net.node('1').core.status().role, 'follower');
});

t.test('a transfer that cannot finish within an election timeout is abandoned', async (t) => {
  const net = new Network(['1', '2', '3']);
  net.campaign('1');
  net.isolated.add('3');
  net.node('1').core.transferLeadership('3');
  net.stabilize();
  t.equal(net.node('1').core.status().leadTransferee, '3');
  for (let i = 0; i < 10; i++) net.node('1').core.tick();
  net.stabilize();
  t.equal(net.node('1').core.status().leadTransferee, null);
  t.equal(net.node('1').core.propose(enc('after')).ok, true, 'proposals resume');
});

t.test('a follower forwards a proposal to the leader; with no leader it refuses NOT_LEADER', async (t) => {
  const net = new Network(['1', '2', '3']);
  const lonely = net.node('2').core.propose(enc('early'));
  t.same(lonely.ok ? 'ok' : lonely.reason, 'NOT_LEADER');
  net.campaign('1');
  const r = net.propose('2', 'via-follower');
  t.same(r, { ok: true, forwarded: true });
  t.ok(net.node('1').applied.includes('via-follower'));
});

t.test('the leader refuses proposals beyond the uncommitted byte budget (backpressure)', async (t) => {
  const n = new TestNode('1', conf(['1', '2', '3']), 3);
  n.core.campaign();
  n.process();
  n.core.step(msg('voteResp', '2', '1', 1));
  n.process();
  // Followers never answer, so nothing commits.
  const big = new Uint8Array(1024 * 1024);
  let refused = 0;
  for (let i = 0; i < 80; i++) {
    const r = n.core.propose(big);
    if (!r.ok) {
      t.equal(r.reason, 'LIMIT_EXCEEDED');
      refused++;
    }
    n.process();
  }
  t.ok(refused > 0, `${refused} proposals refused once 64 MiB were uncommitted`);
});

t.test('a second membership change is refused until the first is applied', async (t) => {
  const n = leaderOf3();
  n.core.step(msg('appResp', '2', '1', 1, { index: 1 }));
  n.process();
  const a = n.core.proposeConfChange({ changes: [{ type: 'addLearner', node: '4' }], transition: 'auto' });
  t.equal(a.ok, true);
  const b = n.core.proposeConfChange({ changes: [{ type: 'addLearner', node: '5' }], transition: 'auto' });
  t.equal(b.ok, false);
  if (!b.ok) t.match(b.detail, /pending/);
});

t.test('a new leader accepts no membership change before an entry of its term commits', async (t) => {
  const n = leaderOf3();
  const r = n.core.proposeConfChange({ changes: [{ type: 'addLearner', node: '4' }], transition: 'auto' });
  t.equal(r.ok, false, 'the no-op of this term is not yet committed');
});

t.test('a leader that removes itself hands leadership to an up-to-date voter, then steps down', async (t) => {
  const net = new Network(['1', '2', '3'], { preVote: true, checkQuorum: true });
  net.campaign('1');
  net.propose('1', 'x');
  net.node('1').core.proposeConfChange({ changes: [{ type: 'remove', node: '1' }], transition: 'auto' });
  net.stabilize();
  const r = net.node('1').core.propose(enc('after-removal'));
  t.equal(r.ok, false, 'the departing leader takes no new proposals');
  net.tickAll(5);
  t.not(net.node('1').core.status().role, 'leader', 'the old leader stepped down');
  const leader = net.leader();
  t.ok(leader === '2' || leader === '3', `leadership passed to ${leader}`);
  t.same(net.node(leader as string).core.status().conf.voters, ['2', '3']);
  t.ok(net.propose(leader as string, 'y').ok, 'the new configuration commits new entries');
});

t.test('ReadIndex on a new leader waits for an entry of its own term to commit (thesis §6.4)', async (t) => {
  const n = leaderOf3();
  n.core.readIndex(enc('r'));
  n.process();
  t.equal(n.readStates.length, 0, 'no read state before the no-op commits');
  n.core.step(msg('appResp', '2', '1', 1, { index: 1 }));
  const beats = n.process().filter((m) => m.type === 'heartbeat' && m.context.length > 0);
  t.ok(beats.length > 0, 'the read is confirmed by a heartbeat round');
  n.core.step(msg('heartbeatResp', '2', '1', 1, { context: enc('r') }));
  n.process();
  t.same(n.readStates, [{ index: 1, context: 'r' }]);
});

t.test('a follower that refuses the entry it last acknowledged lost its log: the leader forgets its match and probes from its last index, once per refusal', async (t) => {
  const n = leaderOf3();
  n.core.step(msg('appResp', '2', '1', 1, { index: 1 }));
  n.core.step(msg('appResp', '3', '1', 1, { index: 1 }));
  n.process();
  for (let i = 0; i < 5; i++) n.core.propose(enc(`p${i}`));
  n.process();
  n.core.step(msg('appResp', '2', '1', 1, { index: 6 }));
  n.core.step(msg('appResp', '3', '1', 1, { index: 6 }));
  n.process();
  const commit = n.core.status().commit;
  t.equal(commit, 6, 'entries 1..6 committed with 2 and 3');
  t.same([n.core.status().progress?.['2']?.state, n.core.status().progress?.['2']?.match], ['replicate', 6]);
  // 2's store is wiped (its log now ends at 0). The next append (prev 6) is refused with hint 0.
  n.core.propose(enc('p5'));
  t.ok(n.process().some((m) => m.type === 'app' && m.to === '2' && m.index === 6), 'an append after index 6 goes to 2');
  const refusal = msg('appResp', '2', '1', 1, { index: 6, reject: true, rejectHint: 0 });
  n.core.step(refusal);
  const probes = n.process().filter((m) => m.type === 'app' && m.to === '2');
  t.same(probes.map((m) => m.index), [0], 'one probe, from 2\'s last index');
  t.same([n.core.status().progress?.['2']?.state, n.core.status().progress?.['2']?.match], ['probe', 0], 'the match it acknowledged is forgotten');
  t.equal(n.core.status().commit, commit, 'the commit index does not move back');
  // Duplicates of that refusal (a network that duplicates) are stale now: no probe storm.
  for (let i = 0; i < 5; i++) n.core.step(refusal);
  t.equal(n.process().filter((m) => m.type === 'app' && m.to === '2').length, 0, 'duplicated refusals send nothing more');
  n.core.step(msg('appResp', '2', '1', 1, { index: 7 }));
  n.process();
  t.same([n.core.status().progress?.['2']?.state, n.core.status().progress?.['2']?.match], ['replicate', 7], 'caught up from the start');
  // In probe state too: a refusal above match turns 2 to probe at its match, refused again.
  n.core.step(msg('appResp', '2', '1', 1, { index: 8, reject: true, rejectHint: 3 }));
  n.process();
  t.same([n.core.status().progress?.['2']?.state, n.core.status().progress?.['2']?.match], ['probe', 7], 'a refusal above match keeps it');
  n.core.step(msg('appResp', '2', '1', 1, { index: 7, reject: true, rejectHint: 3 }));
  t.same(n.process().filter((m) => m.type === 'app' && m.to === '2').map((m) => m.index), [3], 'a refusal at match probes from the hint');
  t.equal(n.core.status().progress?.['2']?.match, 0);
  // A refusal older than what was acknowledged since stays stale in replicate.
  n.core.step(msg('appResp', '2', '1', 1, { index: 7 }));
  n.process();
  n.core.step(msg('appResp', '2', '1', 1, { index: 5, reject: true, rejectHint: 2 }));
  t.equal(n.process().filter((m) => m.type === 'app' && m.to === '2').length, 0, 'a refusal below match is an old one: ignored');
  t.equal(n.core.status().progress?.['2']?.match, 7);
});

/** Three nodes led by 1 with `entries` committed, then 2's log lost with its term kept (custody node wipe). */
function withWipedFollower(entries: number): { net: Network; wiped: TestNode } {
  const net = new Network(['1', '2', '3']);
  net.campaign('1');
  for (let i = 0; i < entries; i++) net.propose('1', `e${i}`);
  const wiped = new TestNode('2', conf(['1', '2', '3']), 77);
  wiped.storage.setHardState({ term: net.node('1').core.status().term, vote: null, commit: 0 });
  wiped.restart();
  net.nodes.set('2', wiped);
  return { net, wiped };
}

t.test('a wiped follower is brought back in sync by the leader alone', async (t) => {
  const { net, wiped } = withWipedFollower(8);
  const before = net.trace.length;
  net.propose('1', 'after');
  t.same(wiped.log().map((e) => [e.index, e.term]), net.node('1').log().map((e) => [e.index, e.term]), '2 holds the leader\'s log again');
  const delivered = net.trace.length - before;
  t.ok(delivered <= 12, `in ${delivered} messages`);
});

t.test('a follower that lost entries refuses a heartbeat committing past its log; the leader then sends it the log without waiting for a new entry', async (t) => {
  const { net, wiped } = withWipedFollower(5);
  const before = net.trace.length;
  // Heartbeats only: nothing is proposed.
  for (let i = 0; i < 3; i++) {
    net.tick('1');
    net.stabilize();
  }
  const refusals = net.trace.slice(before).filter((m) => m.type === 'heartbeatResp' && m.from === '2' && m.reject);
  t.ok(refusals.length >= 1 && refusals.every((m) => m.rejectHint === 0), `2 refused a heartbeat with its last index 0 (${refusals.length} time(s))`);
  t.same(wiped.log().map((e) => [e.index, e.term]), net.node('1').log().map((e) => [e.index, e.term]), '2 holds the leader\'s log again');
  t.equal(net.node('1').core.status().progress?.['2']?.match, net.node('1').core.status().lastIndex, 'its match is what it holds');
  // An intact follower never refuses a heartbeat.
  t.equal(net.trace.filter((m) => m.type === 'heartbeatResp' && m.from === '3' && m.reject).length, 0, '3 refused none');
});
