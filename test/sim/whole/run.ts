/**
 * Many whole-node seeds and their report, shared by `custody sim --whole-node` and the tests. A
 * failing seed prints its checker, a trace tail and the command that replays it.
 */
import { formatViolationReport, seedAt } from '../run.js';
import { runWholeSim, type WholeFaultStats, type WholeResult } from './cluster.js';
import { wholeReplayCommand, type WholeFaultName, type WholeNodeCount, type WholeOptions, type WholeProfile } from './options.js';

export interface WholeSeedsRun {
  readonly base: number;
  readonly count: number;
  /** Node counts to cycle through, seed by seed. */
  readonly nodes: readonly WholeNodeCount[];
  readonly ticks: number;
  readonly profile: WholeProfile;
  readonly fault: WholeFaultName | null;
}

export interface WholeSummary {
  seeds: number;
  violations: number;
  base: number;
  nodes: WholeNodeCount[];
  ticks: number;
  profile: WholeProfile;
  fault: WholeFaultName | null;
  elections: number;
  committed: number;
  acked: number;
  ledgerEntries: number;
  exchanges: number;
  rollbacksDetected: number;
  staleAnswersAvoided: number;
  operatorWaits: number;
  recoveryTicksMax: number;
  livenessTicksMax: number;
  snapshotsInstalled: number;
  snapshotsRefused: number;
  faults: WholeFaultStats;
  /** Runs where a property failed after an out-of-band restore voted unproven (not violations; cluster.ts header). */
  outsideClaims: number;
  /** Violations by checker. */
  checkers: Record<string, number>;
  failed: { seed: number; nodes: WholeNodeCount; checker: string }[];
}

export function wholeOptionsFor(run: WholeSeedsRun, i: number): WholeOptions {
  return { seed: seedAt(run.base, i), nodes: run.nodes[i % run.nodes.length] as WholeNodeCount, ticks: run.ticks, profile: run.profile, fault: run.fault };
}

function emptyFaults(): WholeFaultStats {
  return {
    dropped: 0, duplicated: 0, delayedLong: 0, partitions: 0, asymmetric: 0, isolations: 0, powerLosses: 0, restarts: 0, torn: 0, lostBatches: 0,
    restoresMarked: 0, restoresUnmarked: 0, wipes: 0, permanentFailures: 0, rollingRestarts: 0, fsyncStalls: 0, clockFaults: 0,
  };
}

/** Run `count` seeds one after another; `onResult` sees each result as it completes. */
export async function runWholeSeeds(run: WholeSeedsRun, onResult?: (r: WholeResult, i: number) => void): Promise<WholeSummary> {
  const s: WholeSummary = {
    seeds: 0, violations: 0, base: run.base, nodes: [...run.nodes], ticks: run.ticks, profile: run.profile, fault: run.fault,
    elections: 0, committed: 0, acked: 0, ledgerEntries: 0, exchanges: 0, rollbacksDetected: 0, staleAnswersAvoided: 0, operatorWaits: 0, recoveryTicksMax: 0, livenessTicksMax: 0, snapshotsInstalled: 0, snapshotsRefused: 0,
    outsideClaims: 0, faults: emptyFaults(), checkers: {}, failed: [],
  };
  for (let i = 0; i < run.count; i++) {
    const r = await runWholeSim(wholeOptionsFor(run, i));
    s.seeds++;
    s.elections += r.stats.elections;
    s.committed += r.stats.committed;
    s.acked += r.stats.acked;
    s.ledgerEntries += r.stats.ledgerHeight;
    s.exchanges += r.stats.exchanges;
    s.rollbacksDetected += r.stats.rollbacksDetected;
    s.staleAnswersAvoided += r.stats.staleAnswersAvoided;
    s.operatorWaits += r.stats.operatorWaits;
    s.snapshotsInstalled += r.stats.snapshotsInstalled;
    s.snapshotsRefused += r.stats.snapshotsRefused;
    s.recoveryTicksMax = Math.max(s.recoveryTicksMax, r.stats.recoveryTicksMax);
    s.livenessTicksMax = Math.max(s.livenessTicksMax, r.stats.livenessTicks ?? 0);
    for (const k of Object.keys(s.faults) as (keyof WholeFaultStats)[]) s.faults[k] += r.stats.faults[k];
    if (r.outsideClaim) s.outsideClaims++;
    if (r.violation) {
      s.violations++;
      s.checkers[r.violation.checker] = (s.checkers[r.violation.checker] ?? 0) + 1;
      s.failed.push({ seed: r.options.seed, nodes: r.options.nodes, checker: r.violation.checker });
    }
    onResult?.(r, i);
  }
  return s;
}

/** The one JSON line a multi-seed run ends with. */
export function wholeSummaryLine(s: WholeSummary): string {
  const { failed, checkers, fault, ...rest } = s;
  return JSON.stringify({
    mode: 'whole-node',
    ...rest,
    nodes: s.nodes.length === 1 ? s.nodes[0] : s.nodes,
    ...(fault ? { fault } : {}),
    ...(Object.keys(checkers).length > 0 ? { checkers } : {}),
    ...(failed.length > 0 ? { failed } : {}),
  });
}

export function formatWholeViolation(r: WholeResult, tailLines = 24): string {
  if (!r.violation) return '';
  return formatViolationReport({ ...r, violation: r.violation, title: `whole-node seed ${r.options.seed} (${r.options.nodes} nodes)`, replay: wholeReplayCommand(r.options) }, tailLines);
}

export function formatWholeResult(r: WholeResult): string {
  const st = r.stats;
  const f = st.faults;
  const lines = [
    `whole-node seed ${r.options.seed}: ${r.violation ? `VIOLATION (${r.violation.checker})` : 'ok'}`,
    `  ${r.options.nodes} nodes, profile ${r.options.profile}${r.options.fault ? `, fault ${r.options.fault}` : ''}; ran ${st.ticks} ticks, ${st.steps} steps (fault phase ${r.options.ticks} ticks, then healing and liveness)`,
    `  elections ${st.elections}, committed ${st.committed}, proposals ${st.proposals}, acked ${st.acked}, ledger height ${st.ledgerHeight}, observation exchanges ${st.exchanges}`,
    `  faults: dropped ${f.dropped}, duplicated ${f.duplicated}, delayed long ${f.delayedLong}, partitions ${f.partitions}, one-way ${f.asymmetric}, leader isolations ${f.isolations}, ` +
      `power losses ${f.powerLosses} (${f.lostBatches} unsynced batches lost, ${f.torn} torn), process restarts ${f.restarts}, restores ${f.restoresMarked} marked + ${f.restoresUnmarked} unmarked, ` +
      `wipes ${f.wipes}, permanent failures ${f.permanentFailures}, rolling restarts ${f.rollingRestarts}, fsync stalls ${f.fsyncStalls}, clock pauses ${f.clockFaults}`,
    `  rollback gates that found their store behind: ${st.rollbacksDetected}; answers from a peer restarted after the asker that left out what the asking run said (each a false alarm had they counted it): ${st.staleAnswersAvoided}; runs ending in the runbook's operator case (a node that may have lost a vote waiting for a voter failed for good): ${st.operatorWaits}; slowest start to voting: ${st.recoveryTicksMax} ticks`,
    `  certified snapshots installed by followers: ${st.snapshotsInstalled}, refused: ${st.snapshotsRefused}`,
    `  liveness: ${st.livenessTicks === null ? 'not reached' : `new proposal committed ${st.livenessTicks} ticks after healing`}`,
    ...(r.outsideClaim ? [`  outside the claim (a store restored without a marker voted before any answer proved it behind): ${r.outsideClaim.checker}: ${r.outsideClaim.detail}`] : []),
    `  trace hash ${r.traceHash}`,
  ];
  if (r.violation) lines.push(formatWholeViolation(r));
  return lines.join('\n');
}
