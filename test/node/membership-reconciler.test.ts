/**
 * The membership loop (node/membership/reconciler.ts) over a scripted driver: only a leader acts;
 * a change it proposed counts as pending until the core has applied its entry (the driver's
 * applied index moves first, while the batch is being written), so the same change is never
 * proposed twice; a leader the roster drops hands leadership over instead of removing itself;
 * the view reports roles, lag and failure tolerance, and configuration members no roster explains.
 */
import t from 'tap';
import type { ConfChangeSingle, ConfState, NodeId, ProposeResult } from '../../raft/core/types.js';
import type { DriverStatus } from '../../raft/driver.js';
import { applyConfChange } from '../../raft/core/confchange.js';
import { MembershipReconciler, type MembershipDriver } from '../../node/membership/reconciler.js';
import type { RosterEntry } from '../../node/membership/plan.js';

class FakeDriver implements MembershipDriver {
  role: DriverStatus['role'] = 'leader';
  leader: NodeId | null = 'n1';
  conf: ConfState = { voters: ['n1', 'n2', 'n3'], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
  coreApplied = 10;
  driverApplied = 10;
  commit = 10;
  now = 100_000;
  readonly proposed: ConfChangeSingle[] = [];
  readonly transfers: NodeId[] = [];

  status(): DriverStatus {
    const members = [...this.conf.voters, ...this.conf.learners];
    const progress = this.role === 'leader' ? Object.fromEntries(members.map((id) => [id, { match: this.commit, next: this.commit + 1, state: 'replicate' as const, inflightMsgs: 0, inflightBytes: 0, recentActive: true }])) : null;
    return {
      id: 'n1', role: this.role, term: 2, vote: 'n1', leader: this.leader, commit: this.commit, applied: this.coreApplied, lastIndex: this.commit, conf: this.conf,
      leadTransferee: null, progress, appliedIndex: this.driverApplied, snapshotIndex: 0, firstIndex: 1, root: '', recovering: false,
    };
  }
  peerContacts(): Record<NodeId, number> {
    return Object.fromEntries(['n2', 'n3', 'n4'].map((id) => [id, this.now]));
  }
  nowMs(): number {
    return this.now;
  }
  async proposeConfChange(cc: { changes: ConfChangeSingle[] }): Promise<ProposeResult> {
    this.proposed.push(...cc.changes);
    this.commit += 1;
    return { ok: true, index: this.commit, term: 2, forwarded: false };
  }
  transferLeadership(to: NodeId): void {
    this.transfers.push(to);
  }
  /** The entry of the last proposal is applied: by the driver first, then by the core. */
  applyLast(coreToo: boolean): void {
    this.driverApplied = this.commit;
    if (!coreToo) return;
    const last = this.proposed[this.proposed.length - 1] as ConfChangeSingle;
    const next = applyConfChange(this.conf, { changes: [last], transition: 'auto' });
    if (typeof next === 'string') throw new Error(next);
    this.conf = next;
    this.coreApplied = this.commit;
  }
}

/** Runs one pass of the loop and waits for it. */
async function pass(r: MembershipReconciler): Promise<void> {
  r.kick();
  await new Promise((res) => setTimeout(res, 20));
}

t.test('the loop proposes one change at a time, only as leader, and never the same change twice', async (t) => {
  const d = new FakeDriver();
  let roster: RosterEntry[] = ['n1', 'n2', 'n3'].map((id) => ({ id, status: 'active' }));
  const lines: string[] = [];
  const r = new MembershipReconciler({ self: 'n1', driver: d, roster: () => roster, log: (l) => lines.push(l), everyMs: 60_000 });
  await pass(r);
  t.same(d.proposed, [], 'roster and configuration agree: nothing proposed');
  t.equal(r.view().step.kind, 'idle', r.view().step.why);

  roster = [...roster, { id: 'n4', status: 'active' }];
  d.role = 'follower';
  d.leader = 'n2';
  await pass(r);
  t.same(d.proposed, [], 'a follower proposes nothing');
  d.role = 'leader';
  d.leader = 'n1';
  await pass(r);
  t.same(d.proposed, [{ type: 'addLearner', node: 'n4' }], 'the leader adds the new node as a learner');
  d.applyLast(false);
  await pass(r);
  t.equal(d.proposed.length, 1, 'applied by the driver but not yet by the core: still pending, not proposed again');
  d.applyLast(true);
  await pass(r);
  t.equal(d.proposed.length, 1, 'a learner just added is not promoted at once');
  t.match(r.view().step.why, /learner n4 caught up/, r.view().step.why);
  d.now += 3_000;
  await pass(r);
  t.same(d.proposed[1], { type: 'addVoter', node: 'n4' }, 'promoted once caught up for the stated time');
  d.applyLast(true);

  const v = r.view();
  t.equal(v.voters, 4, 'four voters');
  t.equal(v.failureTolerance, 1, 'tolerating one failure');
  t.same(v.members.map((m) => `${m.id}:${m.raft}:${m.lag}`), ['n1:voter:0', 'n2:voter:0', 'n3:voter:0', 'n4:voter:0'], 'each member with its role and lag');

  roster = roster.map((n) => (n.id === 'n1' ? { ...n, status: 'removed' as const } : n));
  await pass(r);
  t.equal(d.proposed.length, 2, 'the leader does not remove itself');
  t.ok(d.transfers.length > 0 && d.transfers.every((x) => x !== 'n1'), `it hands leadership over (to ${d.transfers[0]})`);

  d.conf = { ...d.conf, learners: ['n9'] };
  await pass(r);
  t.same(r.view().unexplained, ['n9'], 'a configuration member that no decision put on the roster is reported');
  t.ok(lines.some((l) => /names n9, which no applied decision put on the roster/.test(l)), 'and logged');
  r.stop();
});
