/**
 * What a whole-node run is a function of — (seed, nodes, ticks, profile, fault) — and the
 * per-seed parameters drawn from the seed.
 */
import type { SeededRng } from '../../../raft/core/rng.js';
import { raft } from '../../../proto/limits.js';
import type { SimParams } from '../options.js';

/**
 * Test-only defects of the node's vote handling, to show the checkers catch them. Both are
 * wrappers around the real guard, installed by the simulator only:
 * - voteDespiteGuard: the driver is told it may vote whatever the rollback gate says (a driver
 *   that ignores its guard);
 * - gateIgnoresContradiction: a peer's answer that proves the store went backwards is ignored
 *   (the gate treats a proven rollback like a consistent store);
 * - waitForEveryVoter: the gate's earlier rule, under which a restarted node withheld its vote
 *   until every voter had answered, so a restart while another voter was down for good left a
 *   3-node cluster without a leader (the liveness checker's catch).
 */
export const WHOLE_FAULT_NAMES = ['voteDespiteGuard', 'gateIgnoresContradiction', 'waitForEveryVoter'] as const;
export type WholeFaultName = (typeof WHOLE_FAULT_NAMES)[number];

/**
 * default: every fault kind at moderate rates (CI); restores: restores from old copies, wipes and
 * permanent failures several times more often, the profile for the fault switches; calm: no faults.
 */
export const WHOLE_PROFILES = ['default', 'restores', 'calm'] as const;
export type WholeProfile = (typeof WHOLE_PROFILES)[number];

export const WHOLE_NODE_COUNTS = [3, 5] as const;
export type WholeNodeCount = (typeof WHOLE_NODE_COUNTS)[number];

export interface WholeOptions {
  readonly seed: number;
  readonly nodes: WholeNodeCount;
  /** Ticks of the fault phase; the liveness phase follows. */
  readonly ticks: number;
  readonly profile: WholeProfile;
  readonly fault: WholeFaultName | null;
}

export const wholeDefaults = { nodes: 3 as WholeNodeCount, ticks: 300, profile: 'default' as WholeProfile };

/** Milliseconds per tick and ticks per election timeout: the daemon's defaults (proto/limits.ts). */
export const TICK_MS = raft.tickMs;
export const ELECTION_TICKS = raft.electionTicksMin;

/** Ticks the liveness phase may take: raft.simWholeLivenessElectionsMax election timeouts. */
export const wholeLivenessTicksMax = raft.simWholeLivenessElectionsMax * ELECTION_TICKS;

export function wholeReplayCommand(o: WholeOptions): string {
  let cmd = `node dist/node/cli.js sim --whole-node --seed ${o.seed} --nodes ${o.nodes} --ticks ${o.ticks}`;
  if (o.profile !== wholeDefaults.profile) cmd += ` --profile ${o.profile}`;
  if (o.fault) cmd += ` --fault ${o.fault}`;
  return cmd;
}

/** Per-seed parameters; rates are per tick unless named otherwise. Shared ones mean what they mean in the core mode. */
export interface WholeParams extends Pick<SimParams,
  'stepsPerTick' | 'dropRate' | 'duplicateRate' | 'delayStepsMax' | 'longDelayRate' | 'longDelayStepsMax' | 'partitionRate' | 'partitionTicks' |
  'crashRate' | 'downTicks' | 'fsyncStepsMax' | 'stallRate' | 'stallSteps' | 'clockFaultRate' | 'retryTicks' | 'preVote' | 'checkQuorum' |
  'snapshotEveryEntries' | 'compactionKeepEntries'> {
  /** Process restart of one node with its store intact (nothing lost). */
  readonly restartRate: number;
  /** Of the batches not yet synced at a power loss, an ordered prefix may survive. */
  readonly partialFlush: number;
  /** A stopped node's store replaced by an older copy of itself. */
  readonly restoreRate: number;
  /** Of restores, the share the operator marks (`meta/recovering`, as `custody node wipe` does). */
  readonly restoreMarked: number;
  /** A media error in one stored value: the node refuses to open, and the operator wipes it. */
  readonly corruptRate: number;
  /** One node fails for good (never comes back). */
  readonly permanentRate: number;
  /** Every node restarted once, one at a time. */
  readonly rollingRate: number;
  /** Ticks between taking copies of a node's store (the old copies a restore uses). */
  readonly copyEveryTicks: number;
  /** Ticks between ledger proposals of the governance workload. */
  readonly proposeEveryTicks: number;
}

export function drawWholeParams(rng: SeededRng, o: WholeOptions): WholeParams {
  const spt = raft.simStepsPerTick;
  const calm = o.profile === 'calm';
  const restores = o.profile === 'restores';
  const pick = <T>(xs: readonly T[]): T => rng.pick(xs);
  return {
    stepsPerTick: spt,
    dropRate: calm ? 0 : pick([0, 0.02, 0.05, 0.1, 0.2]),
    duplicateRate: calm ? 0 : pick([0, 0.02, 0.1]),
    delayStepsMax: calm ? 1 : pick([1, 2, spt, 2 * spt]),
    longDelayRate: calm ? 0 : pick([0, 0, 0.005, 0.02]),
    longDelayStepsMax: 3 * ELECTION_TICKS * spt,
    partitionRate: calm ? 0 : pick([0, 0.01, 0.03]),
    partitionTicks: [5, 40],
    crashRate: calm ? 0 : pick([0, 0.005, 0.01, 0.02]),
    restartRate: calm ? 0 : pick([0, 0.005, 0.01]),
    downTicks: [3, 40],
    partialFlush: calm ? 0 : pick([0, 0.5, 1]),
    restoreRate: calm ? 0 : restores ? pick([0.02, 0.04]) : pick([0, 0.003, 0.008]),
    restoreMarked: pick([0, 0.5, 1]),
    corruptRate: calm ? 0 : restores ? pick([0, 0.01]) : pick([0, 0, 0.003]),
    permanentRate: calm ? 0 : restores ? pick([0, 0.005]) : pick([0, 0, 0.002, 0.005]),
    rollingRate: calm ? 0 : pick([0, 0, 0.002, 0.005]),
    copyEveryTicks: pick([5, 20, 60]),
    fsyncStepsMax: calm ? 0 : pick([0, 1, 3, 8]),
    stallRate: calm ? 0 : pick([0, 0.005, 0.02]),
    stallSteps: [5 * spt, 40 * spt],
    clockFaultRate: calm ? 0 : pick([0, 0.01, 0.03]),
    proposeEveryTicks: pick([2, 4, 8]),
    retryTicks: pick([ELECTION_TICKS, 2 * ELECTION_TICKS]),
    preVote: rng.chance(0.8),
    checkQuorum: rng.chance(0.7),
    snapshotEveryEntries: pick([8, 30, 100]),
    compactionKeepEntries: pick([0, 3, 20]),
  };
}
