/**
 * The core's two hooks for certified snapshots (node/snapshot-cert.ts): a follower refuses a
 * snapshot its injected check refuses, before any of its log or state changes; a leader sends no
 * snapshot while its storage has none to send.
 */
import t from 'tap';
import { RaftCore } from '../../raft/core/raft.js';
import type { Message, Snapshot } from '../../raft/core/types.js';
import { Network, makeConfig } from './harness.js';

function lagging(): Network {
  const net = new Network(['a', 'b', 'c']);
  net.campaign('a');
  for (let i = 0; i < 5; i++) net.propose('a', `x${i}`);
  net.isolated.add('c');
  for (let i = 5; i < 20; i++) net.propose('a', `x${i}`);
  const a = net.node('a');
  a.snapshotAndCompact(a.appliedIndex);
  return net;
}

t.test('a follower refuses a snapshot its check refuses: log, commit, applied state and store unchanged', async (t) => {
  const net = lagging();
  const c = net.node('c');
  const seen: Snapshot[] = [];
  c.core = new RaftCore({ ...makeConfig('c', c.storage, 77, {}, c.appliedIndex), snapshotAccepted: (s) => (seen.push(s), false) });
  const before = { log: c.log().map((e) => e.index), commit: c.core.status().commit, applied: [...c.applied], snap: c.storage.snapshot().meta.index };
  net.isolated.clear();
  net.tickAll(5);
  t.ok(seen.length >= 1, 'the check saw the snapshot');
  t.equal(seen[0]?.meta.index, net.node('a').storage.snapshot().meta.index);
  t.same({ log: c.log().map((e) => e.index), commit: c.core.status().commit, applied: c.applied, snap: c.storage.snapshot().meta.index }, before, 'nothing of the follower changed');
  t.ok((c.core as unknown as { stats: { snapshotsRefused: number } }).stats.snapshotsRefused >= 1, 'the refusal is counted');
  // A hostile peer's forged snapshot of a higher term, stepped directly: refused the same way.
  const forged: Message = {
    type: 'snap', from: 'b', to: 'c', term: c.core.status().term + 5, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, context: new Uint8Array(0),
    snapshot: { meta: { index: 1_000, term: c.core.status().term + 5, conf: { voters: ['c'], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, size: 3, offset: 0, data: new Uint8Array([1, 2, 3]), last: true },
  };
  c.core.step(forged);
  c.process();
  t.same(c.core.status().conf.voters, ['a', 'b', 'c'], 'the membership is kept');
  t.same({ log: c.log().map((e) => e.index), applied: c.applied, snap: c.storage.snapshot().meta.index }, { log: before.log, applied: before.applied, snap: before.snap });
  // The check accepts: the same lagging follower installs the leader's snapshot and catches up.
  // (the forged term moved c ahead: the cluster elects again in that term or later first)
  c.core = new RaftCore({ ...makeConfig('c', c.storage, 78, {}, c.appliedIndex), snapshotAccepted: () => true });
  net.tickAll(60);
  const leader = net.node(net.leader() as string);
  t.ok(c.storage.snapshot().meta.index >= net.node('a').storage.snapshot().meta.index, 'installed');
  t.same(c.applied, leader.applied, 'caught up');
});

t.test('a leader whose storage has no snapshot to send yet sends none, and sends it once it has', async (t) => {
  const net = lagging();
  const a = net.node('a');
  let ready = false;
  (a.storage as unknown as { snapshotToSend: () => Snapshot | null }).snapshotToSend = () => (ready ? a.storage.snapshot() : null);
  net.isolated.clear();
  const snaps = (): number => net.trace.filter((m) => m.type === 'snap').length;
  net.tickAll(5);
  t.equal(snaps(), 0, 'no snapshot sent while none is sendable');
  ready = true;
  net.tickAll(5);
  t.ok(snaps() > 0, 'sent once sendable');
  t.same(net.node('c').applied, a.applied, 'the follower caught up');
});
