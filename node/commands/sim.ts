/**
 * `custody sim`: the deterministic cluster simulator (test/sim/). One seed replays one run
 * exactly; many seeds end with one JSON summary line. Exit status 1 on any violation.
 */
import type { Argv, CommandModule } from 'yargs';
import { FAULT_NAMES, NODE_COUNTS, PROFILES, livenessTicksMax, simDefaults, type FaultName, type NodeCount, type Profile } from '../../test/sim/options.js';
import { runSim } from '../../test/sim/cluster.js';
import { SEED_SPACE, formatResult, formatViolation, randomBase, runSeeds, summaryLine } from '../../test/sim/run.js';

interface SimArgs {
  seed?: number;
  seeds?: number;
  base?: number;
  nodes: number;
  ticks: number;
  fault?: string;
  profile: string;
  progress: boolean;
}

/** A usage problem with a seed option, or null when it is fine. */
function seedProblem(v: number | undefined, name: string): string | null {
  if (v === undefined || (Number.isInteger(v) && v >= 0 && v < SEED_SPACE)) return null;
  return `--${name} must be an integer in [0, 2^32), got ${v}`;
}

export const simCommand: CommandModule<object, SimArgs> = {
  command: 'sim',
  describe: 'run the deterministic cluster simulator: the real Raft core under network, disk and clock faults',
  builder: (y: Argv<object>) =>
    y
      .usage(
        '$0 sim --seed N [options]     replay one seed exactly and print its summary\n' +
          '$0 sim --seeds K [options]    run K consecutive seeds from --base and print one JSON line\n\n' +
          'Each run puts the real Raft core on every node over a simulated network (loss up to 30%, ' +
          'duplication, reordering, delay, symmetric and one-way partitions, an isolated leader), simulated ' +
          'disks (unsynced writes lost on crash, torn last write, slow and stalled fsync) and a simulated clock, ' +
          'with random membership changes, leader transfers and an idempotent client workload. After every step ' +
          'it checks: at most one leader per term, log matching, leader completeness, the same applied sequence ' +
          'on every node, that no acknowledged proposal is lost, and that a linearizable (ReadIndex) read sees every ' +
          'write acknowledged before it began. Then every fault heals and a leader must ' +
          `commit a new proposal within ${livenessTicksMax} ticks. A run is a pure function of its seed and options.`,
      )
      .option('seed', { type: 'number', describe: 'replay this one seed (0 <= N < 2^32)' })
      .option('seeds', { type: 'number', describe: 'run this many consecutive seeds' })
      .option('base', { type: 'number', describe: 'first seed of --seeds (default: random, printed first)' })
      .option('nodes', { type: 'number', choices: [...NODE_COUNTS], default: simDefaults.nodes, describe: 'voters at start' })
      .option('ticks', { type: 'number', default: simDefaults.ticks, describe: 'ticks of the fault phase (the liveness phase follows)' })
      .option('fault', { type: 'string', choices: [...FAULT_NAMES], describe: 'break the core on purpose (test-only defect) to show the checkers catch it' })
      .option('profile', { type: 'string', choices: [...PROFILES], default: simDefaults.profile, describe: 'fault rates: default, heavy (fault-dense), churn (membership changes and transfers), calm (none)' })
      .option('progress', { type: 'boolean', default: true, describe: 'progress on stderr during --seeds runs' })
      .conflicts('seed', ['seeds', 'base'])
      // Usage problems are returned as strings, so yargs prints them with the help text.
      .check((a): string | true => {
        if (a.seed === undefined && a.seeds === undefined) return 'give --seed N or --seeds K';
        if (a.seeds !== undefined && (!Number.isInteger(a.seeds) || a.seeds < 1)) return '--seeds must be a positive integer';
        if (!Number.isInteger(a.ticks) || a.ticks < 1 || a.ticks > 1_000_000) return '--ticks must be an integer in [1, 1000000]';
        return seedProblem(a.seed, 'seed') ?? seedProblem(a.base, 'base') ?? true;
      })
      .example('$0 sim --seed 42', 'replay seed 42 on 5 nodes')
      .example('$0 sim --seeds 2000 --nodes 5', '2000 fresh seeds; ends with {"seeds":2000,"violations":0,...}')
      .example('$0 sim --seeds 200 --profile heavy --fault voteIgnoringLog', 'show a checker catching a broken vote rule') as unknown as Argv<SimArgs>,
  handler: (a: SimArgs) => {
    const nodes = a.nodes as NodeCount;
    const profile = a.profile as Profile;
    const fault = (a.fault ?? null) as FaultName | null;
    if (a.seed !== undefined) {
      const r = runSim({ seed: a.seed, nodes, ticks: a.ticks, fault, profile });
      process.stdout.write(`${formatResult(r)}\n`);
      process.exitCode = r.violation ? 1 : 0;
      return;
    }
    const count = a.seeds as number;
    const base = a.base ?? randomBase();
    process.stdout.write(`base seed ${base} (seeds ${base}..${(base + count - 1) % SEED_SPACE}), ${nodes} nodes, ${a.ticks} ticks, profile ${profile}${fault ? `, fault ${fault}` : ''}\n`);
    const started = Date.now();
    const every = Math.max(1, Math.min(100, Math.floor(count / 20)));
    let violations = 0;
    const s = runSeeds({ base, count, nodes: [nodes], ticks: a.ticks, profile, fault }, (r, i) => {
      if (r.violation) {
        violations++;
        process.stdout.write(`${formatViolation(r)}\n`);
      }
      if (a.progress && ((i + 1) % every === 0 || i + 1 === count)) {
        process.stderr.write(`sim: ${i + 1}/${count} seeds, ${violations} violations, ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
      }
    });
    process.stdout.write(`${summaryLine(s)}\n`);
    process.exitCode = s.violations > 0 ? 1 : 0;
  },
};
