/**
 * Shared by the fresh-seed test files: run a block of seeds from a random base (printed, so any
 * failure can be replayed), report each violation with its replay command, and check that the
 * run really exercised the cluster (a run that elected no one would prove nothing).
 */
import type { Test } from 'tap';
import { formatViolation, randomBase, runSeeds, summaryLine, type SeedsRun, type SeedsSummary } from './run.js';
import { simDefaults, type NodeCount, type Profile } from './options.js';

/** `SIM_BASE=<n>` repeats a CI run's block exactly; otherwise every run draws fresh seeds. */
export function baseFromEnv(): number {
  const env = process.env['SIM_BASE'];
  if (env === undefined || env === '') return randomBase();
  const b = Number(env);
  if (!Number.isInteger(b) || b < 0) throw new Error(`SIM_BASE must be a non-negative integer, got ${env}`);
  return b;
}

export function freshSeeds(t: Test, count: number, nodes: readonly NodeCount[], profile: Profile, base = baseFromEnv()): SeedsSummary {
  const run: SeedsRun = { base, count, nodes, ticks: simDefaults.ticks, profile, fault: null };
  t.comment(`fresh seeds: base ${base}, ${count} seeds, nodes ${nodes.join('/')} in turn, profile ${profile} (repeat with SIM_BASE=${base})`);
  const s = runSeeds(run, (r) => {
    if (r.violation) t.fail(formatViolation(r));
  });
  t.comment(summaryLine(s));
  t.equal(s.violations, 0, `no violations in ${count} fresh seeds from base ${base}`);
  t.equal(s.seeds, count, 'every seed ran');
  // The runs did what they claim: leaders were elected, entries committed, clients acknowledged,
  // and the faults actually happened.
  t.ok(s.elections >= count, `at least one election per seed on average (${s.elections})`);
  t.ok(s.committed > count * 5, `entries committed (${s.committed})`);
  t.ok(s.acked > 0, `client proposals acknowledged (${s.acked})`);
  t.ok(s.readsServed > 0, `linearizable reads served and checked (${s.readsServed})`);
  if (profile !== 'calm') {
    t.ok(s.faults.crashes > 0 && s.faults.partitions > 0 && s.faults.dropped > 0, 'crashes, partitions and message loss were injected');
  }
  t.ok(s.livenessTicksMax > 0, `every seed reached the liveness goal (slowest: ${s.livenessTicksMax} ticks after healing)`);
  return s;
}
