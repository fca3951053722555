/**
 * In-process throughput of the Raft core: entries committed per second when the real core runs in
 * the simulator with no injected latency and no faults (every message arrives one step later,
 * every fsync completes at once), with the production limits of proto/limits.ts. The leader is
 * fed a fixed number of proposals per tick; appends batch whatever is waiting (up to
 * appendBytesMax) and pipeline up to inflightMsgsMax per follower.
 *
 * This measures the core plus the simulator's driver loop on one thread; it is an upper bound for
 * the daemon, which adds LevelDB writes, gRPC and TLS. "checks on" adds the simulator's safety
 * checkers (a hash per entry per node) for comparison. A benchmark, not a test: nothing asserts
 * on time. Run: node dist/bench/raft-core.js [--ticks N]
 */
import { performance } from 'node:perf_hooks';
import { raft } from '../proto/limits.js';
import { runSim } from '../test/sim/cluster.js';
import type { NodeCount } from '../test/sim/options.js';

const ticksArg = process.argv.indexOf('--ticks');
const TICKS = ticksArg > 0 ? Number(process.argv[ticksArg + 1]) : 300;
const PAYLOAD_BYTES = 64;
const SEED = 1;

interface Row {
  nodes: NodeCount;
  perTick: number;
  checks: boolean;
  committed: number;
  ms: number;
  /** CPU time of this process (user + system), steadier than wall time on a shared machine. */
  cpuMs: number;
}

function measure(nodes: NodeCount, perTick: number, checks: boolean): Row {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const r = runSim(
    { seed: SEED, nodes, ticks: TICKS, profile: 'calm', fault: null },
    {
      checks,
      firehosePerTick: perTick,
      skipLiveness: true,
      params: {
        payloadBytes: PAYLOAD_BYTES,
        delayStepsMax: 1,
        fsyncStepsMax: 0,
        preVote: true,
        checkQuorum: true,
        appendBytesMax: raft.appendBytesMax,
        inflightMsgsMax: raft.inflightMsgsMax,
        inflightBytesMax: raft.inflightBytesMax,
        uncommittedBytesMax: raft.uncommittedBytesMax,
        snapshotChunkBytes: raft.snapshotChunkBytes,
        snapshotEveryEntries: raft.snapshotEveryEntries,
        compactionKeepEntries: raft.compactionKeepEntries,
        confChangeRate: 0,
        transferRate: 0,
      },
    },
  );
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  const cpuMs = (c.user + c.system) / 1000;
  if (r.violation) throw new Error(`bench run violated ${r.violation.checker}: ${r.violation.detail}`);
  return { nodes, perTick, checks, committed: r.stats.committed, ms, cpuMs };
}

// Warm the JIT so the first row is not penalised.
measure(3, 100, false);

const rows: Row[] = [];
for (const nodes of [3, 5] as const) {
  for (const perTick of [1, 10, 100, 1000]) rows.push(measure(nodes, perTick, false));
  rows.push(measure(nodes, 1000, true));
}

const fmt = (n: number, w: number): string => n.toLocaleString('en-US', { maximumFractionDigits: 0 }).padStart(w);
process.stdout.write(`Raft core, in process: ${TICKS} ticks, ${PAYLOAD_BYTES}-byte entries, no latency, no faults, production limits\n\n`);
process.stdout.write(`nodes  proposals/tick  checks  committed   wall ms  entries/s (wall)   cpu ms  entries/s (cpu)\n`);
for (const r of rows) {
  process.stdout.write(
    `${String(r.nodes).padStart(5)}  ${fmt(r.perTick, 14)}  ${(r.checks ? 'on' : 'off').padStart(6)}  ${fmt(r.committed, 9)}  ${fmt(r.ms, 8)}  ${fmt((r.committed / r.ms) * 1000, 16)}  ${fmt(r.cpuMs, 7)}  ${fmt((r.committed / r.cpuMs) * 1000, 15)}\n`,
  );
}
