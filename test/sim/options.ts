/**
 * What a simulator run is a function of — (seed, nodes, ticks, fault, profile) — and the
 * per-seed parameters drawn from the seed. Every knob below is drawn from the seeded generator,
 * so one seed names one exact run.
 */
import type { SeededRng } from '../../raft/core/rng.js';
import { raft } from '../../proto/limits.js';

/** The test-only defects the checkers must be able to catch (acceptance: the checkers can fail). */
export const FAULT_NAMES = ['countStaleTermVotes', 'commitOldTermByCounting', 'voteIgnoringLog', 'forgetVoteOnRestart'] as const;
export type FaultName = (typeof FAULT_NAMES)[number];

/**
 * default: every fault at moderate rates; heavy: frequent crashes, partitions and leader changes,
 * the profile that exposes broken election and commit rules fastest; churn: default faults with
 * membership changes and leader transfers many times more often; calm: no faults at all.
 */
export const PROFILES = ['default', 'heavy', 'churn', 'calm'] as const;
export type Profile = (typeof PROFILES)[number];

export const NODE_COUNTS = [3, 5, 7] as const;
export type NodeCount = (typeof NODE_COUNTS)[number];

export interface SimOptions {
  readonly seed: number;
  readonly nodes: NodeCount;
  /** Ticks of the fault phase; the liveness phase follows. */
  readonly ticks: number;
  readonly fault: FaultName | null;
  readonly profile: Profile;
}

export const simDefaults = { nodes: 5 as NodeCount, ticks: 500, profile: 'default' as Profile };

/** Ticks the liveness phase may take (see the derivation beside simLivenessElectionsMax). */
export const livenessTicksMax = raft.simLivenessElectionsMax * raft.electionTicksMin;

/** The exact command that replays a run. */
export function replayCommand(o: SimOptions): string {
  let cmd = `node dist/node/cli.js sim --seed ${o.seed} --nodes ${o.nodes} --ticks ${o.ticks}`;
  if (o.profile !== simDefaults.profile) cmd += ` --profile ${o.profile}`;
  if (o.fault) cmd += ` --fault ${o.fault}`;
  return cmd;
}

/** Per-seed parameters. Rates are per tick unless named otherwise. */
export interface SimParams {
  readonly stepsPerTick: number;
  readonly dropRate: number;
  readonly duplicateRate: number;
  readonly delayStepsMax: number;
  readonly longDelayRate: number;
  readonly longDelayStepsMax: number;
  readonly partitionRate: number;
  readonly partitionTicks: readonly [number, number];
  readonly crashRate: number;
  /**
   * Probability that a node which has just become leader crashes within the next two ticks — the
   * short, failing terms of the paper's Figure 8, where old-term entries are half replicated.
   */
  readonly newLeaderCrashRate: number;
  readonly downTicks: readonly [number, number];
  readonly tornRate: number;
  readonly fsyncStepsMax: number;
  readonly stallRate: number;
  readonly stallSteps: readonly [number, number];
  readonly clockFaultRate: number;
  readonly confChangeRate: number;
  readonly transferRate: number;
  readonly clients: number;
  /** Probability per tick that a reader issues a linearizable (ReadIndex) read. */
  readonly readRate: number;
  readonly proposeRate: number;
  readonly payloadBytes: number;
  readonly retryTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly appendBytesMax: number;
  readonly inflightMsgsMax: number;
  readonly inflightBytesMax: number;
  readonly uncommittedBytesMax: number;
  readonly snapshotChunkBytes: number;
  readonly snapshotEveryEntries: number;
  readonly compactionKeepEntries: number;
  /** Extra nodes that membership changes may add (fresh ids, never reused). */
  readonly sparesMax: number;
}

export function drawParams(rng: SeededRng, o: SimOptions): SimParams {
  const spt = raft.simStepsPerTick;
  const heavy = o.profile === 'heavy';
  const calm = o.profile === 'calm';
  const churn = o.profile === 'churn';
  const pick = <T>(xs: readonly T[]): T => rng.pick(xs);
  // Small appends put one entry per message, so an old-term entry and the new leader's own
  // entry travel (and are acknowledged) separately: the window §5.4.2 is about.
  const appendBytesMax = heavy ? 64 : pick([64, 512, raft.appendBytesMax]);
  const inflightMsgsMax = pick([1, 4, raft.inflightMsgsMax]);
  return {
    stepsPerTick: spt,
    dropRate: calm ? 0 : pick(heavy ? [0.05, 0.1, 0.2] : [0, 0.02, 0.05, 0.1, 0.2, raft.simDropRateMax]),
    duplicateRate: calm ? 0 : pick([0, 0.02, 0.1]),
    delayStepsMax: calm ? 1 : pick(heavy ? [2, spt, 2 * spt, 4 * spt] : [1, 2, spt, 2 * spt, 4 * spt]),
    longDelayRate: calm ? 0 : pick(heavy ? [0.05, 0.1, 0.2] : [0, 0, 0.005, 0.02]),
    longDelayStepsMax: 3 * raft.electionTicksMin * spt,
    partitionRate: calm ? 0 : pick(heavy ? [0.05, 0.1] : [0, 0.01, 0.03, 0.05]),
    partitionTicks: heavy ? [2, 25] : [5, 60],
    crashRate: calm ? 0 : pick(heavy ? [0.05, 0.1, 0.15] : [0, 0.005, 0.02, 0.04]),
    newLeaderCrashRate: calm ? 0 : pick(heavy ? [0.3, 0.5] : [0, 0, 0.05, 0.1]),
    downTicks: heavy ? [1, 20] : [3, 50],
    tornRate: calm ? 0 : pick([0, 0.5, 1]),
    fsyncStepsMax: calm ? 0 : pick([0, 1, 3, 8]),
    stallRate: calm ? 0 : pick([0, 0.005, 0.02]),
    stallSteps: [10 * spt, 80 * spt],
    clockFaultRate: calm ? 0 : pick(heavy ? [0.1, 0.3] : [0, 0.01, 0.05]),
    confChangeRate: calm ? 0 : pick(heavy ? [0, 0.02] : churn ? [0.1, 0.2, 0.3] : [0, 0.01, 0.03, 0.06]),
    transferRate: calm ? 0 : pick(heavy ? [0.02, 0.05] : churn ? [0.05, 0.1] : [0, 0.005, 0.02]),
    clients: 2 + rng.int(7),
    proposeRate: pick([0.2, 0.5, 0.9]),
    payloadBytes: heavy ? 40 : pick([0, 8, 40]),
    retryTicks: pick([raft.electionTicksMin, 2 * raft.electionTicksMin, 4 * raft.electionTicksMin]),
    // Pre-vote and check-quorum are independent defenses; safety must hold with either off.
    // The heavy profile leans to both off, where stale-term and vote bugs are most exposed.
    preVote: heavy ? rng.chance(0.3) : rng.chance(0.8),
    checkQuorum: heavy ? rng.chance(0.3) : rng.chance(0.7),
    appendBytesMax,
    inflightMsgsMax,
    inflightBytesMax: Math.max(appendBytesMax, pick([256, 4096, raft.inflightBytesMax])),
    // Backpressure sized to a few full pipelines: a follower that is needed for a quorum then
    // catches up on the leader's uncommitted tail within a few round trips, which is the
    // catch-up allowance in the liveness bound (simLivenessElectionsMax).
    uncommittedBytesMax: Math.min(raft.uncommittedBytesMax, appendBytesMax * inflightMsgsMax * pick([1, 4, 16])),
    snapshotChunkBytes: pick([16, 200, raft.snapshotChunkBytes]),
    snapshotEveryEntries: pick([8, 30, 100, raft.snapshotEveryEntries]),
    compactionKeepEntries: pick([0, 3, 20]),
    sparesMax: churn ? 6 + rng.int(10) : pick([0, 1, 2, 3]),
    readRate: calm ? 0 : pick([0, 0.1, 0.5]),
  };
}
