/**
 * Shared by the whole-node fresh-seed test files: a block of seeds from a random base (printed;
 * `SIM_BASE=<n>` repeats it exactly), each violation reported with its replay command, and a check
 * that the block really exercised what it claims (elections, commits, and every fault kind).
 */
import type { Test } from 'tap';
import { baseFromEnv } from '../fresh.js';
import { formatWholeViolation, runWholeSeeds, wholeSummaryLine, type WholeSummary } from './run.js';
import { wholeLivenessTicksMax, type WholeNodeCount, type WholeProfile } from './options.js';

export async function freshWholeSeeds(t: Test, count: number, nodes: readonly WholeNodeCount[], profile: WholeProfile, ticks: number, base = baseFromEnv()): Promise<WholeSummary> {
  t.comment(`whole-node fresh seeds: base ${base}, ${count} seeds, nodes ${nodes.join('/')} in turn, ${ticks} ticks, profile ${profile} (repeat with SIM_BASE=${base})`);
  const started = Date.now();
  const s = await runWholeSeeds({ base, count, nodes, ticks, profile, fault: null }, (r) => {
    if (r.violation) t.fail(formatWholeViolation(r));
  });
  t.comment(wholeSummaryLine(s));
  t.comment(`${count} seeds in ${((Date.now() - started) / 1000).toFixed(1)} s wall, ${(process.cpuUsage().user / 1e6).toFixed(1)} s CPU for the process`);
  t.equal(s.violations, 0, `no violations in ${count} fresh seeds from base ${base}`);
  t.equal(s.seeds, count, 'every seed ran');
  t.ok(s.elections >= count, `at least one election per seed on average (${s.elections})`);
  t.ok(s.committed > count * 5, `entries committed (${s.committed})`);
  t.ok(s.acked > 0 && s.ledgerEntries > count, `client writes acknowledged (${s.acked}) and ledger entries applied (${s.ledgerEntries})`);
  const f = s.faults;
  t.ok(f.powerLosses > 0 && f.restarts > 0 && f.partitions + f.asymmetric + f.isolations > 0 && f.dropped > 0, 'power losses, process restarts, partitions and message loss were injected');
  t.ok(f.restoresMarked > 0 && f.restoresUnmarked > 0, `restores from old copies, with (${f.restoresMarked}) and without (${f.restoresUnmarked}) the marker`);
  t.ok(f.permanentFailures > 0 && f.rollingRestarts > 0, `permanent failures (${f.permanentFailures}) and rolling restarts (${f.rollingRestarts})`);
  t.ok(s.rollbacksDetected > 0, `rollback gates proved stores behind (${s.rollbacksDetected})`);
  t.ok(s.snapshotsInstalled > 0, `followers caught up by certified snapshots (${s.snapshotsInstalled} installed, ${s.snapshotsRefused} refused)`);
  t.ok(s.livenessTicksMax > 0 && s.livenessTicksMax <= wholeLivenessTicksMax, `every other seed reached the liveness goal (slowest: ${s.livenessTicksMax} of ${wholeLivenessTicksMax} ticks after healing)`);
  return s;
}
