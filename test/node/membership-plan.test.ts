/**
 * The membership plan (node/membership/plan.ts) against a model of a cluster: a ledger roster that
 * NodeAdded / NodeRemoved decisions change in any order, a Raft configuration that only the
 * planned steps change (through the real raft/core/confchange.ts), leader changes, nodes that die
 * and come back, and a clock.
 *
 * After every step: a change is one valid single change (never joint), a removal leaves a live
 * majority of the new voters, the configuration never names a node the roster never named, and
 * there is always a voter. After each run, with every node the roster wants live, the plan
 * converges: the voters are exactly the roster's wanted nodes and no learner is left.
 *
 * A failure prints fast-check's seed and path; replay it exactly with
 *   FC_SEED=<seed> FC_PATH=<path> npx tap dist/test/node/membership-plan.test.js
 */
import t from 'tap';
import fc from 'fast-check';
import { membership as limits } from '../../proto/limits.js';
import { applyConfChange, isJoint } from '../../raft/core/confchange.js';
import type { ConfState, NodeId } from '../../raft/core/types.js';
import { failureTolerance, planStep, trackCaughtUp, wantedMembers, type MembershipStep, type PeerView, type PlanInput, type RosterEntry } from '../../node/membership/plan.js';

const RUNS = Number(process.env.FC_RUNS ?? 300);
const replay = {
  ...(process.env.FC_SEED !== undefined ? { seed: Number(process.env.FC_SEED) } : {}),
  ...(process.env.FC_PATH !== undefined ? { path: process.env.FC_PATH } : {}),
};

const IDS = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6'];
const GENESIS = ['n1', 'n2', 'n3'];

type Action =
  | { kind: 'add'; node: number }
  | { kind: 'remove'; node: number }
  | { kind: 'kill'; node: number }
  | { kind: 'revive'; node: number }
  | { kind: 'elect'; pick: number }
  | { kind: 'time'; ms: number }
  | { kind: 'step' };

const action: fc.Arbitrary<Action> = fc.oneof(
  fc.record({ kind: fc.constant('add' as const), node: fc.nat(IDS.length - 1) }),
  fc.record({ kind: fc.constant('remove' as const), node: fc.nat(IDS.length - 1) }),
  fc.record({ kind: fc.constant('kill' as const), node: fc.nat(IDS.length - 1) }),
  fc.record({ kind: fc.constant('revive' as const), node: fc.nat(IDS.length - 1) }),
  fc.record({ kind: fc.constant('elect' as const), pick: fc.nat(10) }),
  fc.record({ kind: fc.constant('time' as const), ms: fc.integer({ min: 100, max: limits.learnerCaughtUpMs * 2 }) }),
  fc.constant({ kind: 'step' as const }),
  fc.constant({ kind: 'step' as const }),
  fc.constant({ kind: 'step' as const }),
);

class Model {
  roster = new Map<NodeId, RosterEntry['status']>(GENESIS.map((id) => [id, 'active']));
  conf: ConfState = { voters: [...GENESIS], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
  dead = new Set<NodeId>();
  leader: NodeId | null = 'n1';
  now = 1_000_000;
  commit = 100;
  caughtUp: Record<NodeId, number> = {};
  readonly everNamed = new Set<NodeId>(GENESIS);
  readonly log: string[] = [];

  input(): PlanInput {
    const peers: Record<NodeId, PeerView> = {};
    for (const id of [...this.conf.voters, ...this.conf.learners]) {
      // Live members are caught up and heard from now; dead ones fell silent long ago.
      peers[id] = this.dead.has(id) ? { match: 0, lastContactMs: this.now - limits.peerLiveMs * 10 } : { match: this.commit, lastContactMs: this.now };
    }
    const base = { self: this.leader as NodeId, conf: this.conf, commit: this.commit, peers, nowMs: this.now };
    this.caughtUp = trackCaughtUp(base, this.caughtUp);
    return { ...base, roster: [...this.roster].map(([id, status]) => ({ id, status })), changePending: false, caughtUpSince: this.caughtUp };
  }

  liveVoters(c: ConfState): NodeId[] {
    return c.voters.filter((v) => !this.dead.has(v));
  }

  /** Runs one planned step; returns it. Throws on a broken rule. */
  step(): MembershipStep | null {
    if (this.leader === null) return null;
    const step = planStep(this.input());
    this.log.push(`${this.leader}: ${step.kind} ${step.kind === 'change' ? `${step.change.type} ${step.change.node}` : step.kind === 'transfer' ? step.to : ''} (${step.why})`);
    if (step.kind === 'transfer') {
      if (!this.conf.voters.includes(step.to) || this.dead.has(step.to)) throw new Error(`transfer to ${step.to}, not a live voter`);
      this.leader = step.to;
      this.caughtUp = {};
    }
    if (step.kind !== 'change') return step;
    const next = applyConfChange(this.conf, { changes: [step.change], transition: 'auto' });
    if (typeof next === 'string') throw new Error(`invalid change ${step.change.type} ${step.change.node}: ${next}`);
    if (isJoint(next)) throw new Error('a planned change entered a joint configuration');
    if (step.change.type === 'remove' && this.conf.voters.includes(step.change.node)) {
      const need = Math.floor(next.voters.length / 2) + 1;
      if (this.liveVoters(next).length < need) throw new Error(`removing ${step.change.node} left ${this.liveVoters(next).length} live of ${next.voters.length} voters`);
      if (step.change.node === this.leader) throw new Error('a leader removed itself instead of transferring first');
    }
    if (step.change.type !== 'remove' && this.roster.get(step.change.node) === undefined) throw new Error(`${step.change.node} added without a roster entry`);
    this.conf = next;
    if (next.voters.length === 0) throw new Error('no voters');
    for (const id of [...next.voters, ...next.learners]) if (!this.everNamed.has(id)) throw new Error(`${id} in the configuration, never on the roster`);
    if (this.leader !== null && !next.voters.includes(this.leader)) this.leader = null;
    this.commit += 1;
    return step;
  }

  do(a: Action): void {
    const id = IDS[('node' in a ? a.node : 0) % IDS.length] as NodeId;
    switch (a.kind) {
      case 'add':
        // NodeAdded is refused by the ledger for a node it knows (apply.ts validateNewNode).
        if (this.roster.has(id)) return;
        this.roster.set(id, 'active');
        this.everNamed.add(id);
        this.log.push(`NodeAdded ${id}`);
        return;
      case 'remove':
        // Keep at least two wanted nodes: the roster of a working cluster.
        if (this.roster.get(id) !== 'active' || wantedMembers([...this.roster].map(([i, status]) => ({ id: i, status }))).length <= 2) return;
        this.roster.set(id, 'removed');
        this.log.push(`NodeRemoved ${id}`);
        return;
      case 'kill': {
        // Keep a live majority of the voters, or no leader could act at all.
        const after = this.conf.voters.filter((v) => v !== id && !this.dead.has(v)).length;
        if (after < Math.floor(this.conf.voters.length / 2) + 1) return;
        this.dead.add(id);
        if (this.leader === id) this.leader = null;
        return;
      }
      case 'revive':
        this.dead.delete(id);
        return;
      case 'elect': {
        const live = this.liveVoters(this.conf);
        this.leader = live.length > 0 ? (live[a.pick % live.length] as NodeId) : null;
        this.caughtUp = {};
        return;
      }
      case 'time':
        this.now += a.ms;
        this.commit += 3;
        return;
      case 'step':
        this.step();
        return;
    }
  }
}

t.test('any order of roster decisions, leader changes and failures: every planned step is safe, and the plan converges', (t) => {
  let runs = 0;
  let changes = 0;
  let transfers = 0;
  fc.assert(
    fc.property(fc.array(action, { minLength: 1, maxLength: 60 }), (actions) => {
      runs++;
      const m = new Model();
      try {
        for (const a of actions) m.do(a);
        // Heal: every node comes back; whoever leads drives the configuration to the roster.
        m.dead.clear();
        if (m.leader === null) m.leader = m.conf.voters[0] as NodeId;
        let stepsLeft = 10 * IDS.length;
        for (;;) {
          const s = m.step();
          if (s?.kind === 'change') changes++;
          if (s?.kind === 'transfer') transfers++;
          if (s?.kind === 'idle') break;
          if (--stepsLeft === 0) throw new Error('did not converge');
          m.now += limits.learnerCaughtUpMs;
        }
        const wanted = wantedMembers([...m.roster].map(([id, status]) => ({ id, status })));
        if (JSON.stringify([...m.conf.voters].sort()) !== JSON.stringify(wanted)) throw new Error(`converged to voters ${m.conf.voters.join(',')}, roster wants ${wanted.join(',')}`);
        if (m.conf.learners.length > 0) throw new Error(`learners left: ${m.conf.learners.join(',')}`);
      } catch (e) {
        throw new Error(`${(e as Error).message}\n  ${m.log.join('\n  ')}`);
      }
    }),
    { numRuns: RUNS, ...replay },
  );
  t.comment(`${runs} runs, ${changes} membership changes and ${transfers} leader hand-overs planned in the converging phases`);
  t.ok(changes > 0 && transfers > 0, 'the sample exercised both changes and hand-overs');
  t.end();
});

t.test('a learner is promoted only after staying caught up for the stated time', (t) => {
  const conf: ConfState = { voters: ['n1', 'n2', 'n3'], learners: ['n4'], votersOutgoing: [], learnersNext: [], autoLeave: false };
  const roster: RosterEntry[] = ['n1', 'n2', 'n3', 'n4'].map((id) => ({ id, status: 'active' }));
  const at = (nowMs: number, match: number, since: Record<string, number>) => {
    const peers = Object.fromEntries(['n2', 'n3', 'n4'].map((id) => [id, { match: id === 'n4' ? match : 1000, lastContactMs: nowMs }]));
    const base = { self: 'n1', conf, commit: 1000, peers, nowMs };
    const caughtUpSince = trackCaughtUp(base, since);
    return { caughtUpSince, step: planStep({ ...base, roster, changePending: false, caughtUpSince }) };
  };
  const behind = at(0, 1000 - limits.learnerLagEntriesMax - 1, {});
  t.equal(behind.step.kind, 'wait', `more than ${limits.learnerLagEntriesMax} entries behind: not promoted (${behind.step.why})`);
  const first = at(10, 1000 - limits.learnerLagEntriesMax, behind.caughtUpSince);
  t.equal(first.caughtUpSince.n4, 10, 'caught up from the first observation within the bound');
  const early = at(10 + limits.learnerCaughtUpMs - 1, 1000, first.caughtUpSince);
  t.equal(early.step.kind, 'wait', 'not before the stated time');
  const fellBack = at(10 + limits.learnerCaughtUpMs - 1, 0, early.caughtUpSince);
  t.same(fellBack.caughtUpSince, {}, 'falling behind starts the time again');
  const on = at(10 + limits.learnerCaughtUpMs, 1000, early.caughtUpSince);
  t.same(on.step, { kind: 'change', change: { type: 'addVoter', node: 'n4' }, why: on.step.why }, 'promoted after the stated time');
  t.equal(failureTolerance(3), 1, 'three voters tolerate one failure');
  t.equal(failureTolerance(4), 1, 'four voters tolerate one failure');
  t.equal(failureTolerance(5), 2, 'five voters tolerate two');
  t.end();
});

t.test('a fenced learner is not promoted, however long it has been caught up (the guard would refuse it)', (t) => {
  const conf: ConfState = { voters: ['n1', 'n2', 'n3'], learners: ['n4'], votersOutgoing: [], learnersNext: [], autoLeave: false };
  const roster: RosterEntry[] = [...['n1', 'n2', 'n3'].map((id) => ({ id, status: 'active' as const })), { id: 'n4', status: 'fenced' }];
  const peers = Object.fromEntries(['n2', 'n3', 'n4'].map((id) => [id, { match: 1000, lastContactMs: 1_000_000 }]));
  const step = planStep({ self: 'n1', conf, commit: 1000, peers, nowMs: 1_000_000, roster, changePending: false, caughtUpSince: { n4: 0 } });
  t.equal(step.kind, 'wait');
  t.match(step.why, /learner n4 is fenced: only an active node is promoted/);
  t.end();
});

t.test('a removal that would take away the live quorum waits, and says why', (t) => {
  const conf: ConfState = { voters: ['n1', 'n2', 'n3'], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
  const roster: RosterEntry[] = [{ id: 'n1', status: 'active' }, { id: 'n2', status: 'removed' }, { id: 'n3', status: 'active' }];
  // n3 is down: removing n2 would leave {n1, n3} with only n1 live.
  const peers = { n2: { match: 10, lastContactMs: 100_000 }, n3: { match: 0, lastContactMs: 0 } };
  const s = planStep({ self: 'n1', roster, conf, changePending: false, commit: 10, peers, nowMs: 100_000, caughtUpSince: {} });
  t.equal(s.kind, 'wait', 'no removal');
  t.match(s.why, /removing n2 would leave 1 live of 2 voters/, s.why);
  const pending = planStep({ self: 'n1', roster, conf, changePending: true, commit: 10, peers, nowMs: 100_000, caughtUpSince: {} });
  t.equal(pending.kind, 'wait', 'nothing while a change is pending');
  t.end();
});
