/**
 * A run is a pure function of (seed, nodes, options): replaying a seed must reproduce every event,
 * which the trace hash covers (each delivery, tick, Ready, apply, fault and client action).
 */
import t from 'tap';
import { runSim } from './cluster.js';
import type { SimOptions } from './options.js';

const cases: SimOptions[] = [
  { seed: 1, nodes: 3, ticks: 400, profile: 'default', fault: null },
  { seed: 4_000_000_007, nodes: 5, ticks: 400, profile: 'default', fault: null },
  { seed: 12345, nodes: 7, ticks: 300, profile: 'heavy', fault: null },
  { seed: 99, nodes: 3, ticks: 600, profile: 'heavy', fault: 'forgetVoteOnRestart' },
];

for (const o of cases) {
  t.test(`Simulator: seed ${o.seed} on ${o.nodes} nodes (${o.profile}${o.fault ? `, ${o.fault}` : ''}) replays to the identical trace`, (t) => {
    const a = runSim(o);
    const b = runSim(o);
    t.equal(b.traceHash, a.traceHash, `trace hash ${a.traceHash} both times`);
    t.same(b.stats, a.stats, 'identical statistics');
    t.same(b.violation, a.violation, 'identical verdict');
    t.same(b.traceTail, a.traceTail, 'identical trace tail');
    t.ok(a.stats.steps > 0 && a.stats.elections > 0, 'the run did something');
    t.end();
  });
}

t.test('Simulator: different seeds give different runs', (t) => {
  const base: SimOptions = { seed: 7, nodes: 5, ticks: 200, profile: 'default', fault: null };
  const hashes = new Set([7, 8, 9, 10].map((seed) => runSim({ ...base, seed }).traceHash));
  t.equal(hashes.size, 4, 'four seeds, four traces');
  t.end();
});

t.test('Simulator: the fault phase length is part of the run, the seed alone is not', (t) => {
  const a = runSim({ seed: 3, nodes: 3, ticks: 200, profile: 'default', fault: null });
  const b = runSim({ seed: 3, nodes: 3, ticks: 201, profile: 'default', fault: null });
  t.not(a.traceHash, b.traceHash, 'one more tick of faults changes the trace');
  t.end();
});
