/**
 * The fixed whole-node seeds (whole-regression-seeds.json), replayed exactly on every run, and a
 * replay of one seed giving the identical trace hash (a run is a pure function of its options).
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { runWholeSim } from './whole/cluster.js';
import { WHOLE_FAULT_NAMES, WHOLE_NODE_COUNTS, WHOLE_PROFILES, type WholeFaultName, type WholeNodeCount, type WholeProfile } from './whole/options.js';
import { formatWholeViolation } from './whole/run.js';

interface WholeRegressionSeed {
  seed: number;
  nodes: WholeNodeCount;
  ticks: number;
  profile: WholeProfile;
  fault: WholeFaultName | null;
  /** The checker the run must trip, or null for a clean run. */
  expect: string | null;
  /** A property the run fails outside the claim (cluster.ts header), if any. */
  outside?: string;
  /**
   * Answers the run must show from a peer restarted while the asker waited, that would have been
   * false rollback alarms had they counted what the asking run said (WholeStats.staleAnswersAvoided).
   */
  staleAnswersAvoided?: number;
  note: string;
}

const file = new URL('../../../test/sim/whole-regression-seeds.json', import.meta.url);
const list = (JSON.parse(readFileSync(file, 'utf8')) as { seeds: WholeRegressionSeed[] }).seeds;

t.test('Whole node: the regression list is well formed', (t) => {
  t.ok(list.length >= 4, `${list.length} seeds`);
  for (const s of list) {
    t.ok(WHOLE_NODE_COUNTS.includes(s.nodes) && WHOLE_PROFILES.includes(s.profile) && (s.fault === null || WHOLE_FAULT_NAMES.includes(s.fault)), `seed ${s.seed} entry is well formed`);
  }
  t.end();
});

for (const s of list) {
  const what = s.expect === null ? 'passes every checker' : `is caught by ${s.expect}`;
  t.test(`Whole node: seed ${s.seed} (${s.nodes} nodes, ${s.profile}${s.fault ? `, ${s.fault}` : ''}) ${what} — ${s.note}`, async (t) => {
    const r = await runWholeSim({ seed: s.seed, nodes: s.nodes, ticks: s.ticks, profile: s.profile, fault: s.fault });
    if (s.expect === null) {
      t.equal(r.violation, null, r.violation ? formatWholeViolation(r) : 'no violation');
      if (s.outside === undefined) t.ok(r.stats.livenessTicks !== null, `a leader committed ${r.stats.livenessTicks} ticks after healing`);
    } else {
      t.equal(r.violation?.checker, s.expect, r.violation ? `${r.violation.checker}: ${r.violation.detail}` : 'no violation found');
    }
    t.equal(r.outsideClaim?.checker, s.outside, r.outsideClaim ? `outside the claim: ${r.outsideClaim.detail}` : 'nothing outside the claim');
    if (s.staleAnswersAvoided !== undefined) t.equal(r.stats.staleAnswersAvoided, s.staleAnswersAvoided, 'the answers that used to be taken for a rollback still happen, and raise no alarm');
  });
}

t.test('Whole node: the same seed twice gives the identical trace', async (t) => {
  const o = { seed: 4242, nodes: 3 as const, ticks: 150, profile: 'restores' as const, fault: null };
  const a = await runWholeSim(o);
  const b = await runWholeSim(o);
  t.equal(a.traceHash, b.traceHash, `trace hash ${a.traceHash}`);
  t.same(a.stats, b.stats, 'identical counters');
});
