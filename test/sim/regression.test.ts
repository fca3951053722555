/**
 * The fixed list of regression seeds (regression-seeds.json), replayed exactly on every run.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { runSim } from './cluster.js';
import { FAULT_NAMES, NODE_COUNTS, PROFILES, type FaultName, type NodeCount, type Profile } from './options.js';
import { formatViolation } from './run.js';

interface RegressionSeed {
  seed: number;
  nodes: NodeCount;
  ticks: number;
  profile: Profile;
  fault: FaultName | null;
  expect: string | null;
  note: string;
}

const file = new URL('../../../test/sim/regression-seeds.json', import.meta.url);
const list = (JSON.parse(readFileSync(file, 'utf8')) as { seeds: RegressionSeed[] }).seeds;

t.ok(list.length >= 8, `${list.length} regression seeds`);
for (const s of list) {
  t.ok(NODE_COUNTS.includes(s.nodes) && PROFILES.includes(s.profile) && (s.fault === null || FAULT_NAMES.includes(s.fault)), `seed ${s.seed} entry is well formed`);
}

for (const s of list) {
  const name = s.expect === null
    ? `Regression: seed ${s.seed} (${s.nodes} nodes, ${s.profile}) passes every checker — ${s.note}`
    : `Regression: seed ${s.seed} with ${s.fault} is caught by ${s.expect} — ${s.note}`;
  t.test(name, (t) => {
    const r = runSim({ seed: s.seed, nodes: s.nodes, ticks: s.ticks, profile: s.profile, fault: s.fault });
    if (s.expect === null) {
      t.equal(r.violation, null, r.violation ? formatViolation(r) : 'no violation');
      t.ok(r.stats.livenessTicks !== null, `recovered ${r.stats.livenessTicks} ticks after healing`);
    } else {
      t.equal(r.violation?.checker, s.expect, r.violation ? `${r.violation.checker}: ${r.violation.detail}` : 'no violation found');
    }
    t.end();
  });
}
