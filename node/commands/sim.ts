/**
 * `custody sim`: the deterministic cluster simulator (test/sim/). One seed replays one run
 * exactly; many seeds end with one JSON summary line. Exit status 1 on any violation.
 * `--whole-node` runs the whole node (test/sim/whole/) instead of the Raft core alone.
 */
import type { Argv, CommandModule } from 'yargs';
import { FAULT_NAMES, NODE_COUNTS, PROFILES, livenessTicksMax, simDefaults, type FaultName, type NodeCount, type Profile } from '../../test/sim/options.js';
import { runSim } from '../../test/sim/cluster.js';
import { SEED_SPACE, formatResult, formatViolation, randomBase, runSeeds, summaryLine } from '../../test/sim/run.js';
import { WHOLE_FAULT_NAMES, WHOLE_NODE_COUNTS, WHOLE_PROFILES, wholeDefaults, wholeLivenessTicksMax, type WholeFaultName, type WholeNodeCount, type WholeProfile } from '../../test/sim/whole/options.js';
import { runWholeSim } from '../../test/sim/whole/cluster.js';
import { formatWholeResult, formatWholeViolation, runWholeSeeds, wholeSummaryLine } from '../../test/sim/whole/run.js';

interface SimArgs {
  seed?: number;
  seeds?: number;
  base?: number;
  nodes: number;
  ticks: number;
  fault?: string;
  profile?: string;
  progress: boolean;
  'whole-node': boolean;
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
      .option('whole-node', {
        type: 'boolean', default: false,
        describe: 'simulate the whole node instead of the Raft core alone: each node runs the daemon\'s driver (vote handling, ' +
          'recovery of a wiped store), its store on a simulated LevelDB, the rollback gate, split-brain monitor and equivocation ' +
          'detector with the observation exchange on the simulated network, and the ledger application with a governance and ' +
          'signing-act workload; faults add process restarts of intact stores, restores from old copies with and without the ' +
          'operator\'s marker, corrupt stores wiped by the operator, nodes that fail for good and rolling restarts. Checked after ' +
          'every step: the core\'s properties (one leader per term, log matching, leader completeness, the same command and ' +
          'ledger state root at every applied index, no acknowledged write lost) and no split-brain, equivocation or rollback ' +
          `alarm that no fault explains; after healing, a leader commits within ${wholeLivenessTicksMax} ticks ` +
          `(proto/limits.ts raft.simWholeLivenessElectionsMax election timeouts). Nodes 3 or 5 (default ${wholeDefaults.nodes}), ` +
          `ticks default ${wholeDefaults.ticks}, profiles ${WHOLE_PROFILES.join(', ')}, faults ${WHOLE_FAULT_NAMES.join(', ')}`,
      })
      .option('nodes', { type: 'number', describe: `voters at start: ${NODE_COUNTS.join(', ')} (default ${simDefaults.nodes}); with --whole-node ${WHOLE_NODE_COUNTS.join(', ')} (default ${wholeDefaults.nodes})` })
      .option('ticks', { type: 'number', describe: `ticks of the fault phase, the liveness phase follows (default ${simDefaults.ticks}; with --whole-node ${wholeDefaults.ticks})` })
      .option('fault', { type: 'string', choices: [...FAULT_NAMES, ...WHOLE_FAULT_NAMES], describe: `break the node on purpose (test-only defect) to show the checkers catch it: ${FAULT_NAMES.join(', ')} (core); with --whole-node ${WHOLE_FAULT_NAMES.join(', ')}` })
      .option('profile', {
        type: 'string', choices: [...new Set([...PROFILES, ...WHOLE_PROFILES])],
        describe: 'fault rates: default, heavy (fault-dense), churn (membership changes and transfers), calm (none); with --whole-node: default, restores (restores, wipes and permanent failures often), calm',
      })
      .option('progress', { type: 'boolean', default: true, describe: 'progress on stderr during --seeds runs' })
      .conflicts('seed', ['seeds', 'base'])
      // Usage problems are returned as strings, so yargs prints them with the help text.
      .check((a): string | true => {
        if (a.seed === undefined && a.seeds === undefined) return 'give --seed N or --seeds K';
        const whole = a['whole-node'] === true;
        const nodes: readonly number[] = whole ? WHOLE_NODE_COUNTS : NODE_COUNTS;
        if (a.nodes !== undefined && !nodes.includes(a.nodes)) return `--nodes must be one of ${nodes.join(', ')}${whole ? ' with --whole-node' : ''}`;
        const profiles: readonly string[] = whole ? WHOLE_PROFILES : PROFILES;
        if (a.profile !== undefined && !profiles.includes(a.profile)) return `--profile must be one of ${profiles.join(', ')}${whole ? ' with --whole-node' : ''}`;
        const faults: readonly string[] = whole ? WHOLE_FAULT_NAMES : FAULT_NAMES;
        if (a.fault !== undefined && !faults.includes(a.fault)) return `--fault must be one of ${faults.join(', ')}${whole ? ' with --whole-node' : ' (or add --whole-node)'}`;
        if (a.seeds !== undefined && (!Number.isInteger(a.seeds) || a.seeds < 1)) return '--seeds must be a positive integer';
        if (a.ticks !== undefined && (!Number.isInteger(a.ticks) || a.ticks < 1 || a.ticks > 1_000_000)) return '--ticks must be an integer in [1, 1000000]';
        return seedProblem(a.seed, 'seed') ?? seedProblem(a.base, 'base') ?? true;
      })
      .example('$0 sim --seed 42', 'replay seed 42 on 5 nodes')
      .example('$0 sim --seeds 2000 --nodes 5', '2000 fresh seeds; ends with {"seeds":2000,"violations":0,...}')
      .example('$0 sim --seeds 200 --profile heavy --fault voteIgnoringLog', 'show a checker catching a broken vote rule')
      .example('$0 sim --whole-node --seeds 2000', 'the whole node on 3 voters: restarts, restores, wipes, permanent failures, rolling restarts')
      .example('$0 sim --whole-node --seeds 100 --profile restores --fault voteDespiteGuard', 'show the checkers catching a driver that votes while its guard withholds') as unknown as Argv<SimArgs>,
  handler: async (a: SimArgs) => {
    if (a['whole-node']) {
      await wholeHandler(a);
      return;
    }
    const nodes = (a.nodes ?? simDefaults.nodes) as NodeCount;
    const profile = (a.profile ?? simDefaults.profile) as Profile;
    const ticks = a.ticks ?? simDefaults.ticks;
    const fault = (a.fault ?? null) as FaultName | null;
    if (a.seed !== undefined) {
      const r = runSim({ seed: a.seed, nodes, ticks, fault, profile });
      process.stdout.write(`${formatResult(r)}\n`);
      process.exitCode = r.violation ? 1 : 0;
      return;
    }
    const count = a.seeds as number;
    const base = a.base ?? randomBase();
    process.stdout.write(`base seed ${base} (seeds ${base}..${(base + count - 1) % SEED_SPACE}), ${nodes} nodes, ${ticks} ticks, profile ${profile}${fault ? `, fault ${fault}` : ''}\n`);
    const s = runSeeds({ base, count, nodes: [nodes], ticks, profile, fault }, seedReporter(count, a.progress, formatViolation));
    process.stdout.write(`${summaryLine(s)}\n`);
    process.exitCode = s.violations > 0 ? 1 : 0;
  },
};

/** `custody sim --whole-node`: the same reporting as the core mode, over whole-node runs. */
async function wholeHandler(a: SimArgs): Promise<void> {
  const nodes = (a.nodes ?? wholeDefaults.nodes) as WholeNodeCount;
  const profile = (a.profile ?? wholeDefaults.profile) as WholeProfile;
  const ticks = a.ticks ?? wholeDefaults.ticks;
  const fault = (a.fault ?? null) as WholeFaultName | null;
  if (a.seed !== undefined) {
    const r = await runWholeSim({ seed: a.seed, nodes, ticks, fault, profile });
    process.stdout.write(`${formatWholeResult(r)}\n`);
    process.exitCode = r.violation ? 1 : 0;
    return;
  }
  const count = a.seeds as number;
  const base = a.base ?? randomBase();
  process.stdout.write(`whole-node base seed ${base} (seeds ${base}..${(base + count - 1) % SEED_SPACE}), ${nodes} nodes, ${ticks} ticks, profile ${profile}${fault ? `, fault ${fault}` : ''}\n`);
  const s = await runWholeSeeds({ base, count, nodes: [nodes], ticks, profile, fault }, seedReporter(count, a.progress, formatWholeViolation));
  process.stdout.write(`${wholeSummaryLine(s)}\n`);
  process.exitCode = s.violations > 0 ? 1 : 0;
}

/** Prints each violation as it happens, and progress on stderr (about twenty lines per run). */
function seedReporter<R extends { readonly violation: unknown }>(count: number, progress: boolean, format: (r: R) => string): (r: R, i: number) => void {
  const started = Date.now();
  const every = Math.max(1, Math.min(100, Math.floor(count / 20)));
  let violations = 0;
  return (r, i) => {
    if (r.violation) {
      violations++;
      process.stdout.write(`${format(r)}\n`);
    }
    if (progress && ((i + 1) % every === 0 || i + 1 === count)) {
      process.stderr.write(`sim: ${i + 1}/${count} seeds, ${violations} violations, ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    }
  };
}
