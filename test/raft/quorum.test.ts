/**
 * Quorum arithmetic and membership changes checked against deliberately naive references over
 * random inputs (etcd-io/raft checks its quorum package the same way).
 */
import fc from 'fast-check';
import t from 'tap';
import { allMembers, applyConfChange, isJoint } from '../../raft/core/confchange.js';
import { jointCommitted, jointVote, majorityCommitted, majorityVote } from '../../raft/core/quorum.js';
import type { ConfChange, ConfState } from '../../raft/core/types.js';

const ids = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
const voterSet = fc.uniqueArray(fc.constantFrom(...ids), { minLength: 0, maxLength: 7 });

/** The largest index i such that more than half of the voters have match >= i. */
function naiveCommitted(voters: string[], match: Record<string, number>): number {
  if (voters.length === 0) return Infinity;
  let best = 0;
  for (const v of voters) {
    const i = match[v] ?? 0;
    const have = voters.filter((w) => (match[w] ?? 0) >= i).length;
    if (have * 2 > voters.length) best = Math.max(best, i);
  }
  return best;
}

function naiveVote(voters: string[], votes: Map<string, boolean>): string {
  if (voters.length === 0) return 'won';
  const yes = voters.filter((v) => votes.get(v) === true).length;
  const no = voters.filter((v) => votes.get(v) === false).length;
  if (yes * 2 > voters.length) return 'won';
  if (no * 2 >= voters.length + (voters.length % 2 === 0 ? 0 : 1)) return 'lost';
  return 'pending';
}

t.test('the committed index of a majority equals the naive definition', async (t) => {
  fc.assert(
    fc.property(voterSet, fc.dictionary(fc.constantFrom(...ids), fc.nat(20)), (voters, match) => {
      return majorityCommitted(voters, (id) => match[id] ?? 0) === naiveCommitted(voters, match);
    }),
    { numRuns: 500 },
  );
  t.ok(true, '500 random configurations agree');
});

t.test('a joint configuration commits only what both halves commit (thesis §4.3)', async (t) => {
  fc.assert(
    fc.property(voterSet, voterSet, fc.dictionary(fc.constantFrom(...ids), fc.nat(20)), (inc, out, match) => {
      const got = jointCommitted(inc, out, (id) => match[id] ?? 0);
      return got === Math.min(naiveCommitted(inc, match), naiveCommitted(out, match));
    }),
    { numRuns: 500 },
  );
  t.ok(true, '500 random joint configurations agree');
});

t.test('an election result equals the naive count, and joint elections need both halves', async (t) => {
  fc.assert(
    fc.property(voterSet, voterSet, fc.dictionary(fc.constantFrom(...ids), fc.boolean()), (inc, out, vs) => {
      const votes = new Map(Object.entries(vs));
      const a = majorityVote(inc, votes);
      if (a !== naiveVote(inc, votes)) return false;
      const j = jointVote(inc, out, votes);
      const b = naiveVote(out, votes);
      const want = a === 'won' && b === 'won' ? 'won' : a === 'lost' || b === 'lost' ? 'lost' : 'pending';
      return j === want;
    }),
    { numRuns: 500 },
  );
  t.ok(true, '500 random vote sets agree');
});

t.test('any two majorities of configurations one voter apart intersect (single-server changes are safe)', async (t) => {
  fc.assert(
    fc.property(fc.uniqueArray(fc.constantFrom(...ids), { minLength: 1, maxLength: 6 }), fc.constantFrom(...ids), (c, x) => {
      const c2 = c.includes(x) ? c.filter((v) => v !== x) : [...c, x];
      if (c2.length === 0) return true;
      // Enumerate all minimal majorities of each and check pairwise intersection.
      const subsets = (s: string[]): string[][] => s.reduce<string[][]>((acc, v) => acc.concat(acc.map((a) => [...a, v])), [[]]);
      const majorities = (s: string[]) => subsets(s).filter((q) => q.length * 2 > s.length);
      for (const q1 of majorities(c)) for (const q2 of majorities(c2)) if (!q1.some((v) => q2.includes(v))) return false;
      return true;
    }),
    { numRuns: 200 },
  );
  t.ok(true, '200 random one-voter changes keep quorum intersection');
});

const change = fc.record({ type: fc.constantFrom('addVoter' as const, 'addLearner' as const, 'remove' as const), node: fc.constantFrom(...ids) });

t.test('a membership change never makes a node both voter and learner, and never leaves no voters', async (t) => {
  let applied = 0;
  fc.assert(
    fc.property(fc.array(fc.array(change, { maxLength: 3 }), { maxLength: 12 }), (steps) => {
      let c: ConfState = { voters: ['a', 'b', 'c'], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
      for (const changes of steps) {
        const cc: ConfChange = { changes, transition: 'auto' };
        const next = applyConfChange(c, cc);
        if (typeof next === 'string') continue;
        applied++;
        c = next;
        const voters = new Set([...c.voters, ...c.votersOutgoing]);
        if (c.learners.some((l) => voters.has(l))) return false;
        if (c.learnersNext.some((l) => c.voters.includes(l))) return false;
        if (c.voters.length === 0) return false;
        if (new Set(allMembers(c)).size !== allMembers(c).length) return false;
        if (isJoint(c)) {
          const left = applyConfChange(c, { changes: [], transition: 'auto' });
          if (typeof left === 'string' || isJoint(left)) return false;
        }
      }
      return true;
    }),
    { numRuns: 300 },
  );
  t.ok(applied > 100, `${applied} random changes applied, all valid`);
});

t.test('a change of more than one voter enters a joint configuration; entering twice is refused', async (t) => {
  const c: ConfState = { voters: ['a', 'b', 'c'], learners: ['d'], votersOutgoing: [], learnersNext: [], autoLeave: false };
  const j = applyConfChange(c, { changes: [{ type: 'addVoter', node: 'd' }, { type: 'remove', node: 'a' }], transition: 'auto' });
  t.not(typeof j, 'string');
  const joint = j as ConfState;
  t.same(joint.votersOutgoing, ['a', 'b', 'c']);
  t.same(joint.voters, ['b', 'c', 'd']);
  t.ok(joint.autoLeave);
  t.match(applyConfChange(joint, { changes: [{ type: 'remove', node: 'b' }], transition: 'auto' }), /already in a joint/);
  t.match(applyConfChange(c, { changes: [], transition: 'auto' }), /not in a joint/);
  t.match(applyConfChange(c, { changes: [{ type: 'remove', node: 'a' }, { type: 'remove', node: 'b' }, { type: 'remove', node: 'c' }], transition: 'auto' }), /no voters/);
});
