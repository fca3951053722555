/**
 * Running many seeds and reporting: shared by `custody sim` and the tests. A failing seed is
 * printed with its checker, a trace tail and the exact command that replays it.
 */
import { randomInt } from 'node:crypto';
import { runSim, type FaultStats, type SimResult } from './cluster.js';
import { replayCommand, type FaultName, type NodeCount, type Profile, type SimOptions } from './options.js';

export const SEED_SPACE = 0x1_0000_0000;

/** A fresh base seed (not derived from anything; printed so a run can be repeated). */
export function randomBase(): number {
  return randomInt(0, 2 ** 47) % SEED_SPACE;
}

export interface SeedsRun {
  readonly base: number;
  readonly count: number;
  /** Node counts to cycle through, seed by seed. */
  readonly nodes: readonly NodeCount[];
  readonly ticks: number;
  readonly profile: Profile;
  readonly fault: FaultName | null;
}

export interface SeedsSummary {
  seeds: number;
  violations: number;
  base: number;
  nodes: NodeCount[];
  ticks: number;
  profile: Profile;
  fault: FaultName | null;
  elections: number;
  committed: number;
  acked: number;
  proposals: number;
  confChanges: number;
  confApplied: number;
  jointApplied: number;
  transfers: number;
  snapshots: number;
  readsServed: number;
  livenessTicksMax: number;
  faults: FaultStats;
  failed: { seed: number; nodes: NodeCount; checker: string }[];
}

export function seedAt(base: number, i: number): number {
  return (base + i) % SEED_SPACE;
}

export function optionsFor(run: SeedsRun, i: number): SimOptions {
  return {
    seed: seedAt(run.base, i),
    nodes: run.nodes[i % run.nodes.length] as NodeCount,
    ticks: run.ticks,
    profile: run.profile,
    fault: run.fault,
  };
}

function emptyFaults(): FaultStats {
  return { dropped: 0, duplicated: 0, delayedLong: 0, cut: 0, partitions: 0, asymmetric: 0, isolations: 0, crashes: 0, torn: 0, lostWrites: 0, fsyncStalls: 0, clockFaults: 0, forgottenVotes: 0 };
}

/** Run `count` seeds; `onResult` sees every result as it completes (progress, early reporting). */
export function runSeeds(run: SeedsRun, onResult?: (r: SimResult, i: number) => void): SeedsSummary {
  const s: SeedsSummary = {
    seeds: 0, violations: 0, base: run.base, nodes: [...run.nodes], ticks: run.ticks, profile: run.profile, fault: run.fault,
    elections: 0, committed: 0, acked: 0, proposals: 0, confChanges: 0, confApplied: 0, jointApplied: 0, transfers: 0, snapshots: 0, readsServed: 0, livenessTicksMax: 0,
    faults: emptyFaults(), failed: [],
  };
  for (let i = 0; i < run.count; i++) {
    const r = runSim(optionsFor(run, i));
    s.seeds++;
    s.elections += r.stats.elections;
    s.committed += r.stats.committed;
    s.acked += r.stats.acked;
    s.proposals += r.stats.proposals;
    s.confChanges += r.stats.confChanges;
    s.confApplied += r.stats.confApplied;
    s.jointApplied += r.stats.jointApplied;
    s.transfers += r.stats.transfers;
    s.snapshots += r.stats.snapshots;
    s.readsServed += r.stats.readsServed;
    s.livenessTicksMax = Math.max(s.livenessTicksMax, r.stats.livenessTicks ?? 0);
    for (const k of Object.keys(s.faults) as (keyof FaultStats)[]) s.faults[k] += r.stats.faults[k];
    if (r.violation) {
      s.violations++;
      s.failed.push({ seed: r.options.seed, nodes: r.options.nodes, checker: r.violation.checker });
    }
    onResult?.(r, i);
  }
  return s;
}

/** The one JSON line a multi-seed run ends with. */
export function summaryLine(s: SeedsSummary): string {
  return JSON.stringify({
    seeds: s.seeds,
    violations: s.violations,
    base: s.base,
    nodes: s.nodes.length === 1 ? s.nodes[0] : s.nodes,
    ticks: s.ticks,
    profile: s.profile,
    ...(s.fault ? { fault: s.fault } : {}),
    elections: s.elections,
    committed: s.committed,
    acked: s.acked,
    proposals: s.proposals,
    confChanges: s.confChanges,
    confApplied: s.confApplied,
    jointApplied: s.jointApplied,
    transfers: s.transfers,
    snapshots: s.snapshots,
    readsServed: s.readsServed,
    livenessTicksMax: s.livenessTicksMax,
    faults: s.faults,
    ...(s.failed.length > 0 ? { failed: s.failed } : {}),
  });
}

/** What a failing run prints, in either mode. */
export interface ViolationReport {
  readonly title: string;
  readonly violation: { readonly checker: string; readonly detail: string };
  readonly tick: number;
  readonly step: number;
  readonly traceHash: string;
  readonly traceTail: readonly string[];
  readonly replay: string;
}

export function formatViolationReport(v: ViolationReport, tailLines = 24): string {
  const tail = v.traceTail.slice(-tailLines);
  return [
    `VIOLATION ${v.title}: ${v.violation.checker}`,
    `  ${v.violation.detail}`,
    `  at tick ${v.tick}, step ${v.step}; trace hash ${v.traceHash}`,
    `  trace tail (last ${tail.length} events):`,
    ...tail.map((l) => `    ${l}`),
    `  replay: ${v.replay}`,
  ].join('\n');
}

export function formatViolation(r: SimResult, tailLines = 24): string {
  if (!r.violation) return '';
  return formatViolationReport({ ...r, violation: r.violation, title: `seed ${r.options.seed} (${r.options.nodes} nodes)`, replay: replayCommand(r.options) }, tailLines);
}

export function formatResult(r: SimResult): string {
  const st = r.stats;
  const f = st.faults;
  const lines = [
    `seed ${r.options.seed}: ${r.violation ? `VIOLATION (${r.violation.checker})` : 'ok'}`,
    `  ${r.options.nodes} nodes, profile ${r.options.profile}${r.options.fault ? `, fault ${r.options.fault}` : ''}; ran ${st.ticks} ticks, ${st.steps} steps (fault phase ${r.options.ticks} ticks, then healing and liveness)`,
    `  elections ${st.elections}, committed ${st.committed}, proposals ${st.proposals} (${st.proposalsRefused} refused), acked ${st.acked}`,
    `  membership changes proposed ${st.confChanges} (${st.confRefused} refused), applied ${st.confApplied} (${st.jointApplied} joint), nodes retired ${st.retired}, leader transfers ${st.transfers}, snapshots ${st.snapshots}, linearizable reads ${st.readsServed} of ${st.readsIssued}`,
    `  faults: dropped ${f.dropped}, duplicated ${f.duplicated}, delayed long ${f.delayedLong}, cut ${f.cut}, partitions ${f.partitions}, one-way ${f.asymmetric}, leader isolations ${f.isolations}, ` +
      `crashes ${f.crashes}, torn ${f.torn}, lost writes ${f.lostWrites}, fsync stalls ${f.fsyncStalls}, clock faults ${f.clockFaults}, forgotten votes ${f.forgottenVotes}`,
    `  liveness: ${st.livenessTicks === null ? 'not reached' : `new proposal committed ${st.livenessTicks} ticks after healing`}`,
    `  trace hash ${r.traceHash}`,
  ];
  if (r.violation) lines.push(formatViolation(r));
  return lines.join('\n');
}
