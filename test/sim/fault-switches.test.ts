/**
 * The checkers are shown able to fail. Each test-only defect (three switches in the core, and the
 * simulator's "forget the vote on restart" disk fault) must be caught within a stated number of
 * seeds of the heavy profile, by the checker the defect offends:
 *
 *   countStaleTermVotes      two leaders in one term (§5.2: votes are per term)     election-safety
 *                            (or a leader elected by stale votes without a          leader-completeness
 *                            committed entry)
 *   forgetVoteOnRestart      two leaders in one term (Figure 2: votedFor durable)   election-safety
 *   voteIgnoringLog          a leader missing a committed entry (§5.4.1)            leader-completeness
 *   commitOldTermByCounting  Figure 8: a committed entry overwritten (§5.4.2)       leader-completeness
 *
 * The seeds are fixed (base 1), so the outcome is deterministic. The bounds were set from the
 * first catch over eight bases (1, 10001, ..., 70001) on 3 nodes x 1000 ticks: voteIgnoringLog
 * <= 3 seeds, forgetVoteOnRestart <= 41, commitOldTermByCounting <= 234, countStaleTermVotes
 * <= 222; each bound below has about twice that worst case (or more) as margin.
 */
import t from 'tap';
import { runSim } from './cluster.js';
import { replayCommand, type FaultName, type SimOptions } from './options.js';

const BASE = 1;
const NODES = 3;
const TICKS = 1000;

const expectations: { fault: FaultName; within: number; checkers: string[] }[] = [
  { fault: 'voteIgnoringLog', within: 20, checkers: ['leader-completeness'] },
  { fault: 'forgetVoteOnRestart', within: 250, checkers: ['election-safety'] },
  { fault: 'commitOldTermByCounting', within: 500, checkers: ['leader-completeness', 'state-machine-safety'] },
  { fault: 'countStaleTermVotes', within: 500, checkers: ['election-safety', 'leader-completeness'] },
];

for (const x of expectations) {
  t.test(`Checkers: the ${x.fault} defect is caught by ${x.checkers.join(' or ')} within ${x.within} seeds`, (t) => {
    let caught: { o: SimOptions; checker: string; detail: string; k: number } | null = null;
    for (let k = 0; k < x.within && caught === null; k++) {
      const o: SimOptions = { seed: BASE + k, nodes: NODES, ticks: TICKS, profile: 'heavy', fault: x.fault };
      const r = runSim(o);
      if (r.violation) caught = { o, checker: r.violation.checker, detail: r.violation.detail, k: k + 1 };
    }
    t.ok(caught, `caught within ${x.within} seeds`);
    if (caught) {
      t.comment(`caught after ${caught.k} seeds: ${caught.checker}: ${caught.detail}`);
      t.comment(`replay: ${replayCommand(caught.o)}`);
      t.ok(x.checkers.includes(caught.checker), `the checker that fired (${caught.checker}) is the one the defect offends`);
    }
    t.end();
  });
}

t.test('Checkers: the same seeds with a correct core raise nothing', (t) => {
  // The seeds that catch each defect above, minus the defect: the violation is the defect's.
  for (const seed of [1, 41, 222, 234]) {
    const r = runSim({ seed, nodes: NODES, ticks: TICKS, profile: 'heavy', fault: null });
    t.equal(r.violation, null, `seed ${seed}: ${r.violation ? `${r.violation.checker}: ${r.violation.detail}` : 'no violation'}`);
  }
  t.end();
});
