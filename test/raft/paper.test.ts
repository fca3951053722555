/**
 * Each test is named after a claim of the Raft paper (Ongaro & Ousterhout 2014, §5.1–§5.4.2) and
 * checks that the core makes it true, after etcd-io/raft's raft_paper_test.
 */
import t from 'tap';
import { msg } from '../../raft/core/message.js';
import { RaftCore } from '../../raft/core/raft.js';
import { MemoryStorage } from '../../raft/core/storage.js';
import type { Entry, Message, MessageType } from '../../raft/core/types.js';
import { conf, makeConfig, Network, TestNode } from './harness.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const ent = (index: number, term: number, data = ''): Entry => ({ index, term, type: 'normal', data: enc(data) });

function three(seed = 1): TestNode {
  return new TestNode('1', conf(['1', '2', '3']), seed);
}

function five(): TestNode {
  return new TestNode('1', conf(['1', '2', '3', '4', '5']), 1);
}

/** A node whose stable log already holds `ents` at `term`. */
function withLog(id: string, ents: Entry[], term: number, voters = ['1', '2', '3']): TestNode {
  const n = new TestNode(id, conf(voters), 7);
  n.storage.append(ents);
  n.storage.setHardState({ term, vote: null, commit: 0 });
  n.core = new RaftCore(makeConfig(id, n.storage, 7));
  return n;
}

function ofType(ms: Message[], type: MessageType): Message[] {
  return ms.filter((m) => m.type === type);
}

function electAsLeader(n: TestNode): void {
  n.core.campaign();
  n.process();
  const term = n.core.status().term;
  for (const id of n.core.status().conf.voters) if (id !== n.id) n.core.step(msg('voteResp', id, n.id, term));
  n.process();
}

t.test('§5.1 a follower that sees a larger term updates its term to the larger value', async (t) => {
  const n = three();
  n.core.step(msg('app', '2', '1', 5));
  t.equal(n.core.status().term, 5);
  t.equal(n.core.status().role, 'follower');
  t.equal(n.core.status().leader, '2');
});

t.test('§5.1 a candidate that sees a larger term reverts to follower', async (t) => {
  const n = three();
  n.core.campaign();
  n.process();
  t.equal(n.core.status().role, 'candidate');
  n.core.step(msg('app', '2', '1', 3));
  t.equal(n.core.status().role, 'follower');
  t.equal(n.core.status().term, 3);
});

t.test('§5.1 a leader that sees a larger term reverts to follower', async (t) => {
  const n = three();
  electAsLeader(n);
  t.equal(n.core.status().role, 'leader');
  n.core.step(msg('heartbeat', '3', '1', 9));
  t.equal(n.core.status().role, 'follower');
  t.equal(n.core.status().term, 9);
  t.equal(n.core.status().leader, '3');
});

t.test('§5.1 a server rejects a request with a stale term number', async (t) => {
  const n = three();
  n.core.step(msg('app', '2', '1', 4));
  n.process();
  n.core.step(msg('app', '3', '1', 2, { entries: [ent(1, 2, 'stale')] }));
  n.process();
  t.equal(n.core.status().lastIndex, 0, 'stale append was not applied');
  t.equal(n.core.status().leader, '2', 'stale leader not followed');
});

t.test('§5.1 a server persists its term and vote before it answers (Figure 2)', async (t) => {
  const n = three();
  n.core.step(msg('vote', '2', '1', 1, { index: 0, logTerm: 0 }));
  const rd = n.core.ready();
  t.same(rd.hardState && { term: rd.hardState.term, vote: rd.hardState.vote }, { term: 1, vote: '2' });
  t.ok(rd.mustSync, 'the vote must be synced before the answer leaves');
  t.equal(ofType([...rd.messages], 'voteResp').length, 1, 'the answer rides in the same Ready, sent after the persist');
  n.core.advance(rd);
});

t.test('§5.2 when servers start up, they begin as followers', async (t) => {
  const n = three();
  t.equal(n.core.status().role, 'follower');
  t.equal(n.core.status().term, 0);
});

t.test('§5.2 leaders send periodic heartbeats to all followers', async (t) => {
  const n = three();
  electAsLeader(n);
  n.core.tick();
  const beats = ofType(n.process(), 'heartbeat');
  t.same(beats.map((m) => m.to).sort(), ['2', '3']);
});

t.test('§5.2 a follower that hears nothing for an election timeout starts an election: new term, votes for itself, asks every peer', async (t) => {
  const n = three();
  for (let i = 0; i < 20; i++) n.core.tick();
  const s = n.core.status();
  t.equal(s.role, 'candidate');
  t.equal(s.term, 1);
  t.equal(s.vote, '1');
  const votes = ofType(n.process(), 'vote');
  t.same(votes.map((m) => m.to).sort(), ['2', '3']);
  t.ok(votes.every((m) => m.term === 1));
});

t.test('§5.2 a candidate that times out without a winner starts a new election with a new term', async (t) => {
  const n = three();
  n.core.campaign();
  n.process();
  for (let i = 0; i < 20; i++) n.core.tick();
  t.equal(n.core.status().role, 'candidate');
  t.equal(n.core.status().term, 2);
  t.equal(ofType(n.process(), 'vote').length, 2);
});

t.test('§5.2 a candidate wins an election if it receives votes from a majority of the full cluster', async (t) => {
  const cases: [number, string[], string[], string][] = [
    [3, ['2'], [], 'leader'],
    [3, [], ['2', '3'], 'follower'],
    [3, [], [], 'candidate'],
    [5, ['2', '3'], [], 'leader'],
    [5, ['2'], ['3', '4'], 'candidate'],
    [5, [], ['2', '3', '4'], 'follower'],
  ];
  for (const [size, yes, no, want] of cases) {
    const n = size === 3 ? three() : five();
    n.core.campaign();
    n.process();
    for (const id of yes) n.core.step(msg('voteResp', id, '1', 1));
    for (const id of no) n.core.step(msg('voteResp', id, '1', 1, { reject: true }));
    t.equal(n.core.status().role, want, `${size} nodes, ${yes.length} granted, ${no.length} refused`);
  }
});

t.test('§5.2 each server votes for at most one candidate in a term, first come first served', async (t) => {
  const n = three();
  n.core.step(msg('vote', '2', '1', 1));
  n.core.step(msg('vote', '3', '1', 1));
  const resps = ofType(n.process(), 'voteResp');
  t.same(resps.map((m) => [m.to, m.reject]), [['2', false], ['3', true]]);
  n.core.step(msg('vote', '2', '1', 1));
  t.equal(ofType(n.process(), 'voteResp')[0]?.reject, false, 'a repeated request from the same candidate is granted again');
});

t.test('§5.2 a candidate that receives AppendEntries from a leader with a term at least its own returns to follower', async (t) => {
  for (const term of [1, 2]) {
    const n = three();
    n.core.campaign();
    n.process();
    n.core.step(msg('app', '2', '1', term));
    t.equal(n.core.status().role, 'follower', `term ${term}`);
    t.equal(n.core.status().leader, '2');
  }
});

t.test('§5.2 election timeouts are chosen randomly from a fixed interval', async (t) => {
  const seen = new Set<number>();
  for (let seed = 0; seed < 50; seed++) {
    const n = new TestNode('1', conf(['1', '2', '3']), seed);
    let ticks = 0;
    while (n.core.status().role === 'follower') {
      n.core.tick();
      ticks++;
    }
    t.ok(ticks >= 10 && ticks < 20, `timeout ${ticks} in [10, 20)`);
    seen.add(ticks);
  }
  t.ok(seen.size > 5, `timeouts vary (${seen.size} distinct values)`);
});

t.test('§5.2 randomized timeouts mean that in most cases only a single server times out first', async (t) => {
  let conflicts = 0;
  const rounds = 200;
  for (let r = 0; r < rounds; r++) {
    const nodes = ['1', '2', '3', '4', '5'].map((id, i) => new TestNode(id, conf(['1', '2', '3', '4', '5']), r * 10 + i));
    let first = 0;
    for (let tick = 0; tick < 30 && first === 0; tick++) {
      for (const n of nodes) n.core.tick();
      first = nodes.filter((n) => n.core.status().role !== 'follower').length;
    }
    if (first > 1) conflicts++;
  }
  t.ok(conflicts / rounds <= 0.3, `simultaneous timeouts in ${conflicts} of ${rounds} rounds`);
});

t.test('§5.3 the leader appends a command to its log, then issues AppendEntries to each follower in parallel', async (t) => {
  const n = three();
  electAsLeader(n);
  for (const id of ['2', '3']) n.core.step(msg('appResp', id, '1', 1, { index: 1 }));
  n.process();
  n.core.propose(enc('cmd'));
  const rd = n.core.ready();
  t.same(rd.entries.map((e) => [e.index, e.term]), [[2, 1]]);
  const apps = ofType([...rd.messages], 'app');
  t.same(apps.map((m) => m.to).sort(), ['2', '3']);
  t.ok(apps.every((m) => m.index === 1 && m.logTerm === 1 && m.entries.length === 1));
  n.core.advance(rd);
});

t.test('§5.3 an entry is committed once the leader that created it has replicated it on a majority', async (t) => {
  const n = five();
  electAsLeader(n);
  n.core.propose(enc('x'));
  n.process();
  const idx = n.core.status().lastIndex;
  n.core.step(msg('appResp', '2', '1', 1, { index: idx }));
  t.equal(n.core.status().commit, 0, 'leader + 1 of 5 is no majority');
  n.core.step(msg('appResp', '3', '1', 1, { index: idx }));
  t.equal(n.core.status().commit, idx, 'leader + 2 of 5 is a majority');
});

t.test('§5.3 the leader tells followers the highest committed index in later AppendEntries', async (t) => {
  const n = three();
  electAsLeader(n);
  n.core.propose(enc('x'));
  n.process();
  n.core.step(msg('appResp', '2', '1', 1, { index: 2 }));
  const apps = ofType(n.process(), 'app');
  t.ok(apps.length > 0 && apps.every((m) => m.commit === 2), 'commit index rides on the next appends');
});

t.test('§5.3 committing an entry also commits all preceding entries, including those of previous leaders', async (t) => {
  const n = withLog('1', [ent(1, 1, 'a'), ent(2, 2, 'b')], 2);
  electAsLeader(n);
  t.equal(n.core.status().term, 3);
  for (const id of ['2', '3']) n.core.step(msg('appResp', id, '1', 3, { index: 3 }));
  n.process();
  t.equal(n.core.status().commit, 3);
  t.same(n.applied, ['a', 'b'], 'entries of terms 1 and 2 are applied with the term-3 no-op');
});

t.test('§5.3 once a follower learns that an entry is committed, it applies the entry to its state machine', async (t) => {
  const n = three();
  n.core.step(msg('app', '2', '1', 1, { index: 0, logTerm: 0, entries: [ent(1, 1, 'a'), ent(2, 1, 'b')], commit: 1 }));
  n.process();
  t.same(n.applied, ['a']);
  n.core.step(msg('heartbeat', '2', '1', 1, { commit: 2 }));
  n.process();
  t.same(n.applied, ['a', 'b']);
});

t.test('§5.3 a follower refuses new entries if its log has no entry with the previous index and term', async (t) => {
  const n = withLog('1', [ent(1, 1), ent(2, 2)], 2);
  const cases: [number, number, boolean][] = [
    [0, 0, false],
    [1, 1, false],
    [2, 2, false],
    [2, 1, true],
    [3, 2, true],
  ];
  for (const [index, logTerm, reject] of cases) {
    n.core.step(msg('app', '2', '1', 2, { index, logTerm }));
    const r = ofType(n.process(), 'appResp')[0];
    t.equal(r?.reject, reject, `prev (${index}, ${logTerm})`);
    if (reject) t.equal(r?.rejectHint, Math.min(index, 2), 'hint is our last index');
  }
});

t.test('§5.3 a follower deletes a conflicting entry and all that follow it, then appends the new ones', async (t) => {
  const cases: [Entry[], number, number, Entry[], number[][]][] = [
    [[ent(1, 1), ent(2, 2)], 2, 2, [ent(3, 3)], [[1, 1], [2, 2], [3, 3]]],
    [[ent(1, 1), ent(2, 2)], 1, 1, [ent(2, 3), ent(3, 4)], [[1, 1], [2, 3], [3, 4]]],
    [[ent(1, 1), ent(2, 2)], 0, 0, [ent(1, 1)], [[1, 1], [2, 2]]],
    [[ent(1, 1), ent(2, 2)], 0, 0, [ent(1, 3)], [[1, 3]]],
  ];
  for (const [log, index, logTerm, ents, want] of cases) {
    const n = withLog('1', log, 2);
    n.core.step(msg('app', '2', '1', 4, { index, logTerm, entries: ents }));
    n.process();
    t.same(n.log().map((e) => [e.index, e.term]), want);
  }
});

t.test('§5.3 the leader brings every follower log into consistency with its own (Figure 7)', async (t) => {
  const leaderLog = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6].map((term, i) => ent(i + 1, term));
  const followers: number[][] = [
    [1, 1, 1, 4, 4, 5, 5, 6, 6], // (a) missing one
    [1, 1, 1, 4], // (b) missing many
    [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], // (c) one extra
    [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], // (d) extra of a later term
    [1, 1, 1, 4, 4, 4, 4], // (e) wrong term suffix
    [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], // (f) long divergent suffix
  ];
  for (const [i, fterms] of followers.entries()) {
    const l = withLog('1', leaderLog, 8);
    const f = withLog('2', fterms.map((term, j) => ent(j + 1, term)), 8);
    const net = new Network(['1', '2', '3']);
    net.nodes.set('1', l);
    net.nodes.set('2', f);
    net.campaign('1');
    t.equal(l.core.status().role, 'leader');
    net.propose('1', 'sync');
    t.same(f.log().map((e) => [e.index, e.term]), l.log().map((e) => [e.index, e.term]), `follower case ${'abcdef'[i]}`);
  }
});

t.test('§5.3 a leader never overwrites or deletes entries in its own log', async (t) => {
  const n = withLog('1', [ent(1, 1, 'a'), ent(2, 1, 'b')], 1);
  electAsLeader(n);
  const before = n.log().map((e) => [e.index, e.term]);
  n.core.step(msg('appResp', '2', '1', 2, { index: 1, reject: true, rejectHint: 0 }));
  n.core.propose(enc('c'));
  n.process();
  const after = n.log().map((e) => [e.index, e.term]);
  t.same(after.slice(0, before.length), before, 'the old prefix is unchanged');
  t.ok(after.length > before.length, 'only appends');
});

t.test('§5.3 log matching: entries with the same index and term are identical, and so are the logs before them', async (t) => {
  const net = new Network(['1', '2', '3', '4', '5']);
  net.campaign('1');
  for (let i = 0; i < 5; i++) net.propose('1', `a${i}`);
  net.isolated.add('1');
  net.campaign('2');
  for (let i = 0; i < 5; i++) net.propose('2', `b${i}`);
  net.isolated.clear();
  net.tickAll(25);
  const logs = [...net.nodes.values()].map((n) => n.log());
  for (const a of logs) {
    for (const b of logs) {
      for (let i = 0; i < Math.min(a.length, b.length); i++) {
        const ea = a[i] as Entry;
        const eb = b[i] as Entry;
        if (ea.term === eb.term) t.same(a.slice(0, i + 1).map((e) => [e.term, [...e.data]]), b.slice(0, i + 1).map((e) => [e.term, [...e.data]]));
      }
    }
  }
});

t.test('§5.4.1 a RequestVote carries the candidate\'s last log index and term', async (t) => {
  const n = withLog('1', [ent(1, 1), ent(2, 2), ent(3, 2)], 2);
  n.core.campaign();
  const votes = ofType(n.process(), 'vote');
  t.ok(votes.length === 2 && votes.every((m) => m.index === 3 && m.logTerm === 2 && m.term === 3));
});

t.test('§5.4.1 a voter denies its vote if its own log is more up to date than the candidate\'s', async (t) => {
  const cases: [Entry[], number, number, boolean][] = [
    [[ent(1, 1)], 1, 1, false], // same
    [[ent(1, 1)], 1, 2, false], // candidate's last term is higher
    [[ent(1, 1), ent(2, 1)], 1, 1, true], // voter's log is longer in the same term
    [[ent(1, 2)], 5, 1, true], // voter's last term is higher
    [[ent(1, 1)], 2, 1, false], // candidate's log is longer
  ];
  for (const [log, index, logTerm, reject] of cases) {
    const n = withLog('1', log, 2);
    n.core.step(msg('vote', '2', '1', 3, { index, logTerm }));
    t.equal(ofType(n.process(), 'voteResp')[0]?.reject, reject, `voter ${log.map((e) => e.term)} vs candidate (${index}, ${logTerm})`);
  }
});

t.test('§5.4.2 a leader only commits entries of its own term by counting replicas', async (t) => {
  const n = withLog('1', [ent(1, 1, 'a'), ent(2, 2, 'b')], 2);
  electAsLeader(n);
  // A majority acknowledges index 2 (a term-2 entry) but not the term-3 no-op at 3.
  n.core.step(msg('appResp', '2', '1', 3, { index: 2 }));
  t.equal(n.core.status().commit, 0, 'a previous-term entry is not committed by counting');
  n.core.step(msg('appResp', '2', '1', 3, { index: 3 }));
  t.equal(n.core.status().commit, 3, 'it commits once an entry of the current term is on a majority');
});

t.test('§5.4.2 an entry from an earlier term on a majority can still be overwritten (Figure 8)', async (t) => {
  // Figure 8 (c): S1 leads term 4; its term-2 entry at index 2 is on S1, S2, S3 (a majority);
  // S5 holds a term-3 entry at index 2; S4 has only index 1.
  const net = new Network(['1', '2', '3', '4', '5']);
  const voters = ['1', '2', '3', '4', '5'];
  net.nodes.set('1', withLog('1', [ent(1, 1, 'one'), ent(2, 2, 'term2')], 3, voters));
  net.nodes.set('2', withLog('2', [ent(1, 1, 'one'), ent(2, 2, 'term2')], 3, voters));
  net.nodes.set('3', withLog('3', [ent(1, 1, 'one'), ent(2, 2, 'term2')], 3, voters));
  net.nodes.set('4', withLog('4', [ent(1, 1, 'one')], 3, voters));
  net.nodes.set('5', withLog('5', [ent(1, 1, 'one'), ent(2, 3, 'term3')], 3, voters));
  // S1's appends carry its term-4 no-op; they are lost, as in the figure, before S1 crashes.
  net.filter((m) => !(m.from === '1' && m.type === 'app'));
  net.campaign('1');
  t.equal(net.node('1').core.status().role, 'leader');
  t.equal(net.node('1').core.status().term, 4);
  t.equal(net.node('1').core.status().commit, 0, 'the term-2 entry on a majority is not committed');
  // (d) S1 crashes; S5 wins term 5 with S2, S3, S4 (its last term 3 beats their 2) and overwrites.
  net.clearFilters();
  net.isolated.add('1');
  net.campaign('5');
  t.equal(net.node('5').core.status().role, 'leader');
  t.equal(net.node('5').core.status().term, 5);
  for (const id of ['2', '3', '4', '5']) {
    const n = net.node(id);
    t.same(n.applied, ['one', 'term3'], `S${id} applied the term-3 entry; the term-2 entry is gone`);
  }
});

t.test('§5.4 leader completeness: a newly elected leader holds every committed entry', async (t) => {
  const net = new Network(['1', '2', '3']);
  net.campaign('1');
  for (let i = 0; i < 10; i++) net.propose('1', `c${i}`);
  const committed = net.node('1').core.status().commit;
  net.isolated.add('1');
  net.campaign('2');
  t.equal(net.node('2').core.status().role, 'leader');
  const l = net.node('2');
  t.ok(l.core.status().lastIndex >= committed);
  t.same(l.log().slice(0, committed).map((e) => e.term), net.node('1').log().slice(0, committed).map((e) => e.term));
});

t.test('§5.4.1 a candidate with an out-of-date log cannot win an election', async (t) => {
  const net = new Network(['1', '2', '3']);
  net.campaign('1');
  net.isolated.add('3');
  for (let i = 0; i < 3; i++) net.propose('1', `x${i}`);
  net.isolated.clear();
  net.isolated.add('1');
  net.node('3').core.campaign();
  net.stabilize();
  t.not(net.node('3').core.status().role, 'leader', 'node 3 missed committed entries');
  net.node('2').core.campaign();
  net.stabilize();
  t.equal(net.node('2').core.status().role, 'leader');
});

t.test('§5.5 a follower that restarts from durable state rejoins and catches up', async (t) => {
  const net = new Network(['1', '2', '3']);
  net.campaign('1');
  net.propose('1', 'before');
  net.node('3').restart();
  net.propose('1', 'after');
  net.tickAll(3);
  t.same(net.node('3').applied, ['before', 'after']);
});

t.test('§7 a follower whose needed entries were compacted away is caught up by snapshot', async (t) => {
  const net = new Network(['1', '2', '3'], { snapshotChunkBytes: 16 });
  net.campaign('1');
  net.isolated.add('3');
  for (let i = 0; i < 20; i++) net.propose('1', `e${i}`);
  const l = net.node('1');
  l.snapshotAndCompact(l.appliedIndex);
  net.isolated.clear();
  net.tickAll(5);
  const f = net.node('3');
  t.same(f.applied, l.applied, 'follower state equals the leader\'s');
  t.ok(f.storage.snapshot().meta.index > 0, 'the follower installed a snapshot');
  t.ok(net.trace.filter((m) => m.type === 'snap').length > 1, 'the snapshot travelled in several chunks');
});

t.test('a message for another node, from itself, or with a malformed entry list is dropped', async (t) => {
  const n = three();
  const bad: Message[] = [
    msg('app', '2', '9', 1),
    msg('app', '1', '1', 1),
    msg('app', '2', '1', 1, { index: 0, entries: [ent(2, 1)] }),
    msg('app', '2', '1', 1, { index: 0, entries: [ent(1, 5)] }),
    { ...msg('app', '2', '1', 1), term: -1 },
    { ...msg('app', '2', '1', 1), type: 'bogus' as MessageType },
  ];
  for (const m of bad) n.core.step(m);
  t.equal(n.core.stats.invalidMessages, bad.length);
  t.equal(n.core.status().term, 0, 'nothing changed');
});

t.test('MemoryStorage serves a consistent log across snapshot and compaction', async (t) => {
  const s = new MemoryStorage(conf(['1']));
  s.append([ent(1, 1), ent(2, 1), ent(3, 2)]);
  s.createSnapshot(2, conf(['1']), enc('img'));
  s.compact(2);
  t.equal(s.firstIndex(), 3);
  t.equal(s.term(2), 1);
  t.throws(() => s.entries(2, 3, 100));
  s.append([ent(3, 3), ent(4, 3)]);
  t.same(s.entries(3, 5, 100).map((e) => e.term), [3, 3], 'a conflicting append replaces the suffix');
});

t.test('§5.2 a follower that knows the leader of its term takes no append, heartbeat or snapshot from another node in that term', async (t) => {
  const n = three();
  n.core.step(msg('app', '2', '1', 4, { index: 0, logTerm: 0, entries: [ent(1, 4, 'from the leader')], commit: 1 }));
  n.process();
  t.equal(n.core.status().leader, '2', 'node 2 leads term 4');
  t.equal(n.core.status().lastIndex, 1);
  // Node 3 lies: it claims term 4 too and sends its own entry at index 2.
  n.core.step(msg('app', '3', '1', 4, { index: 1, logTerm: 4, entries: [ent(2, 4, 'from a second leader')], commit: 2 }));
  const out = n.process();
  t.equal(n.core.status().lastIndex, 1, 'the entry is not appended');
  t.equal(n.core.status().commit, 1, 'nor anything committed');
  t.equal(ofType(out, 'appResp').length, 0, 'and no answer is sent');
  n.core.step(msg('heartbeat', '3', '1', 4, { commit: 1 }));
  t.equal(ofType(n.process(), 'heartbeatResp').length, 0, 'a heartbeat from it is not answered either');
  t.equal(n.core.status().leader, '2', 'the follower still follows node 2');
  // The real leader's next entry lands at index 2, where the lie would have sat with the same term.
  n.core.step(msg('app', '2', '1', 4, { index: 1, logTerm: 4, entries: [ent(2, 4, 'from the leader')], commit: 2 }));
  n.process();
  t.equal(n.core.status().lastIndex, 2);
  t.equal(n.core.status().commit, 2);
  // A higher term still deposes (§5.1).
  n.core.step(msg('app', '3', '1', 5, { index: 2, logTerm: 4, entries: [], commit: 2 }));
  t.equal(n.core.status().leader, '3');
  t.equal(n.core.status().term, 5);
});
