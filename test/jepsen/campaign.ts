/**
 * A Jepsen campaign on real custody daemons: three `custody node` daemons (real LevelDB, real gRPC
 * with mutual TLS) on three hosts in network namespaces, a seeded nemesis (nemesis.ts) breaking
 * them, and a register workload whose every call is recorded and checked.
 *
 *   node dist/test/jepsen/campaign.js --seconds N --seed S [--mix all|process|partition|clock|k1,k2]
 *        [--clients C] [--faults-max F] [--history FILE] [--replay FILE] [--test-faults SWITCHES]
 *        [--workload register|ledger]
 * (`--workload ledger` runs ledger-campaign.ts instead: governed acts on daemons and kernels.)
 * prints the schedule and progress on stderr and one line of JSON on stdout:
 *   { seed, seconds, mix, ops, ok, failed, indeterminate, faults, violations, verdict, ... }
 * Exit code 0 when no violation was found, 1 when one was, 2 on a usage error, 3 when the check
 * could not decide (unknown) or the run could not be set up. Needs root and `ip netns`.
 *
 * Workload (registers). C client processes, each bound to one node (clients are spread over the
 * hosts, inside their namespaces, through test/node/netns-agent.ts), each calling one at a time: a
 * write of a value never written before (Custody.Propose, with a client id and sequence number) or
 * a linearizable read (Custody.Read). Keys rotate every limits.workloadKeyEpochMs, so that no key
 * collects an unbounded number of indeterminate writes (the checker's search grows with them). Each call is
 * recorded with its invocation and completion times (performance.now() in this process, taken
 * before the request leaves and after the answer arrives: the real interval lies inside) and its
 * outcome:
 *   ok             the answer came;
 *   fail           a read that failed (a read changes nothing), or a write refused before it was
 *                  proposed (INVALID_ARGUMENT, LIMIT_EXCEEDED);
 *   indeterminate  any other failed write (timeout, connection lost, node killed): it may apply
 *                  later. The write is sent once more, same client id and sequence, to the next
 *                  node; an answer then completes the call, else the call stays indeterminate and
 *                  the client continues under a new process id (history.ts).
 * Lost replies: after an acknowledged write, with probability resendChance the client sends the
 * same (client id, sequence) again after a short delay, as a client that lost the answer would.
 * The node must answer with the original application (its index; `duplicate` where the node had
 * applied the original already) and change nothing; an answer naming another index is a violation
 * (retry-applied-again), and a second application shows in the history too.
 *
 * Checks, after the schedule ends and every fault is healed:
 *   linearizability  the whole history against the register model (linearizability.ts), within a
 *                    time budget; a violation prints the checker's explanation;
 *   convergence      every node reaches the same applied index, commit index and state root;
 *   retries          no lost-reply resend was applied as a new write.
 * The history (schedule, nemesis events, every call) is saved as JSON to --history (default: a file
 * named by the seed in the system temp folder), so a violation can be re-checked offline.
 *
 * Power cuts (the `power-cut` kind, in the process and all mixes): each node's data directory is a
 * lossyfs mount (lossyfs.ts) over a folder beside it (disks/<node> in the cluster's folder), so a
 * cut loses every write the node had not fsynced. The mounts are made before the daemons start and
 * left (fusermount -u) when the campaign ends, whether it passed, failed or threw.
 *
 * Test-only fault switches (--test-faults) are passed to the daemons in CUSTODY_TEST_FAULTS (see
 * node/test-faults.ts); campaigns with them show the checks catch the bug each switch plants
 * (test/jepsen/switches.test.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { SeededRng } from '../../raft/core/rng.js';
import { jepsen as limits } from '../../proto/limits.js';
import type { HttpStatus } from '../../node/cluster.js';
import { Cluster } from '../node/harness.js';
import { TEST_FAULTS_ENV, TEST_FAULTS_PREFIX, TEST_FAULT_NAMES } from '../../node/test-faults.js';
import { checkHistory, type CheckResult } from './linearizability.js';
import { registerModel, type RegisterInput, type RegisterOutput } from './models.js';
import type { Operation } from './history.js';
import { LEDGER_KINDS, runLedgerCampaign } from './ledger-campaign.js';
import { LossyMount } from './lossyfs.js';
import {
  FAKETIME_LIB, MIXES, NETNS_HOSTS, NetnsHosts, describeFault, nemesisUnavailable, parseMix, planSchedule, runNemesis,
  type Fault, type FaultKind, type NemesisEvent, type Victim,
} from './nemesis.js';

const AGENT = fileURLToPath(new URL('../node/netns-agent.js', import.meta.url));
const NODES = ['n1', 'n2', 'n3'] as const;
const HOSTS = NODES.map((n) => NETNS_HOSTS[n] as string);
const KEYS_PER_EPOCH = 3;
const RESEND_CHANCE = 0.15;
const DEFINITE_WRITE_REFUSALS = new Set(['INVALID_ARGUMENT', 'LIMIT_EXCEEDED']);

export interface CampaignOptions {
  readonly seconds: number;
  readonly seed: number;
  readonly mix: readonly FaultKind[];
  readonly clients?: number;
  /** Share of calls that are reads (default 0.5). */
  readonly readShare?: number;
  readonly faultsMax?: number;
  readonly historyFile?: string;
  /** Fault switches for the daemons (node/test-faults.ts), comma separated. */
  readonly testFaults?: string;
  /** Play this schedule instead of the seed's (a replay of a saved history, or a test's fixed one). */
  readonly schedule?: readonly Fault[];
  /** Where progress goes (default: stderr). */
  readonly log?: (line: string) => void;
}

export interface Violation {
  readonly check: 'linearizability' | 'convergence' | 'retry-applied-again';
  /** Milliseconds after the campaign start when the history first shows it (the completion of the call that cannot be placed, the answer to the resend). */
  readonly atMs: number;
  readonly detail: string;
}

export interface CampaignSummary {
  readonly seed: number;
  readonly seconds: number;
  readonly mix: string;
  readonly testFaults: string | null;
  readonly ops: number;
  readonly ok: number;
  readonly failed: number;
  readonly indeterminate: number;
  readonly resends: number;
  readonly faults: number;
  readonly violations: number;
  readonly verdict: 'ok' | 'violation' | 'unknown';
  readonly linearizability: 'ok' | 'violation' | 'unknown';
  readonly keys: number;
  readonly history: string;
  /** Reason codes of failed calls, with their counts. */
  readonly reasons: Readonly<Record<string, number>>;
  readonly found: readonly Violation[];
}

type Reply = { ok: true; result: unknown } | { ok: false; reason: string; detail: string };

/** A client process inside one host's namespace (test/node/netns-agent.ts), speaking JSON lines. */
class Agent {
  private next = 1;
  private readonly waiting = new Map<number, (r: Reply) => void>();
  constructor(readonly proc: ChildProcess) {
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      const r = JSON.parse(line) as Reply & { id: number };
      this.waiting.get(r.id)?.(r);
      this.waiting.delete(r.id);
    });
    proc.once('exit', () => {
      for (const w of this.waiting.values()) w({ ok: false, reason: 'INTERNAL', detail: 'agent exited' });
      this.waiting.clear();
    });
  }
  ask(req: object): Promise<Reply> {
    const id = this.next++;
    return new Promise((res) => {
      this.waiting.set(id, res);
      this.proc.stdin?.write(`${JSON.stringify({ id, ...req })}\n`);
    });
  }
  async status(): Promise<HttpStatus | null> {
    const r = await this.ask({ op: 'status' });
    return r.ok ? (r.result as HttpStatus | null) : null;
  }
}

type RegisterOp = Operation<RegisterInput, RegisterOutput>;

interface Teardown {
  teardown(fn: () => unknown): void;
  comment(...args: unknown[]): void;
}

let runs = 0;

/** Runs one campaign (see the module header) and returns its summary. */
export async function runCampaign(o: CampaignOptions): Promise<CampaignSummary> {
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  if (o.mix.includes('kill-kernel')) throw new RangeError('the register workload\'s nodes run no kernel: kill-kernel is for --workload ledger');
  const powerCuts = o.mix.includes('power-cut') || (o.schedule ?? []).some((f) => f.kind === 'power-cut');
  const unavailable = nemesisUnavailable(powerCuts && !o.mix.includes('power-cut') ? [...o.mix, 'power-cut'] : o.mix);
  if (unavailable !== null) throw new Error(`campaign cannot run here: ${unavailable}`);
  const clients = o.clients ?? 6;
  const schedule = o.schedule ?? planSchedule(o.seed, { seconds: o.seconds, nodes: NODES, mix: o.mix, ...(o.faultsMax !== undefined ? { faultsMax: o.faultsMax } : {}) });
  const mixName = Object.entries(MIXES).find(([, kinds]) => kinds.length === o.mix.length && kinds.every((k) => o.mix.includes(k)))?.[0] ?? o.mix.join(',');
  log(`campaign: seed ${o.seed}, ${o.seconds} s, mix ${mixName}, ${clients} clients${o.testFaults ? `, test faults ${o.testFaults}` : ''}; schedule (${schedule.length} faults):`);
  for (const f of schedule) log(`  ${describeFault(f)}`);

  const cleanups: (() => unknown)[] = [];
  const holder: Teardown = { teardown: (fn) => cleanups.push(fn), comment: (...a) => log(a.map(String).join(' ')) };
  const hosts = new NetnsHosts(`jn${process.pid}x${++runs}`);
  try {
    hosts.up();
    cleanups.push(() => hosts.down());
    const skews = new Map<string, number>();
    const wrap = (id: string): string[] => {
      const env: string[] = [];
      const s = skews.get(id);
      if (s !== undefined) env.push(`LD_PRELOAD=${FAKETIME_LIB}`, `FAKETIME=+${s}s`, 'FAKETIME_DONT_FAKE_MONOTONIC=1');
      if (o.testFaults) env.push(`${TEST_FAULTS_ENV}=${TEST_FAULTS_PREFIX}${o.testFaults}`);
      return ['ip', 'netns', 'exec', hosts.namespace(id), ...(env.length > 0 ? ['env', ...env] : [])];
    };
    const c = await Cluster.create(holder, 3, {}, { hosts: HOSTS, wrap });
    const disks = new Map<string, LossyMount>();
    if (powerCuts) {
      // Runs before the cluster's own teardown (which removes its folder): the daemons must be
      // gone before their mounts are left, and the mounts left before the folder is removed.
      cleanups.push(async () => {
        await c.killAll();
        for (const m of disks.values()) await m.unmount();
      });
      for (const id of NODES) {
        const m = new LossyMount(join(c.dir, 'disks', id), c.dataDir(id));
        disks.set(id, m);
        await m.mount();
      }
      log(`campaign: data directories on lossyfs over ${join(c.dir, 'disks')}`);
    }
    const agents = new Map<string, Agent>();
    for (const [i, id] of NODES.entries()) {
      const proc = spawn('ip', ['netns', 'exec', hosts.namespace(id), process.execPath, AGENT, `${HOSTS[i]}:7400`, `${HOSTS[i]}:8400`, id,
        join(c.dir, 'certs', 'ca.crt'), join(c.dir, 'certs', 'tester.crt'), join(c.dir, 'certs', 'tester.key')], { stdio: ['pipe', 'pipe', 'inherit'] });
      agents.set(id, new Agent(proc));
      cleanups.push(() => {
        proc.stdin?.end();
        proc.kill('SIGKILL');
      });
    }
    const agent = (id: string): Agent => agents.get(id) as Agent;
    c.statusFn = (id) => agent(id).status();
    c.startAll();
    await c.stableLeader();
    log('campaign: cluster up, leader elected');

    const victim: Victim = {
      nodes: NODES,
      leader: async () => {
        const st = await c.statuses();
        const l = [...st.values()].find((x) => x.role === 'leader');
        return l?.id ?? NODES[0];
      },
      follower: async () => {
        const st = await c.statuses();
        const l = [...st.values()].find((x) => x.role === 'leader');
        return NODES.find((n) => n !== l?.id) ?? NODES[0];
      },
      kill: (id) => c.signal(id, 'SIGKILL'),
      start: async (id) => {
        if (!c.children.has(id)) c.start(id);
      },
      pause: (id) => c.signal(id, 'SIGSTOP'),
      resume: (id) => c.signal(id, 'SIGCONT'),
      cut: async (id) => hosts.cut(id),
      heal: async (id) => hosts.heal(id),
      block: async (from, to, on) => hosts.block(from, to, on),
      killKernel: () => Promise.reject(new RangeError('the register workload\'s nodes run no kernel')),
      startKernel: () => Promise.reject(new RangeError('the register workload\'s nodes run no kernel')),
      powerCut: async (id) => {
        const disk = disks.get(id);
        if (disk === undefined) throw new RangeError(`${id}'s data directory is not on lossyfs`);
        await c.signal(id, 'SIGKILL');
        const dropped = await disk.cut();
        log(`nemesis: ${id}'s power cut dropped ${dropped.bytes} unsynced bytes in ${dropped.files} files${dropped.files > 0 ? ` (${dropped.names.join(', ')})` : ''}`);
      },
      skew: async (id, seconds) => {
        await c.signal(id, 'SIGKILL');
        if (seconds === null) skews.delete(id);
        else skews.set(id, seconds);
        c.start(id);
      },
    };

    const t0 = performance.now();
    const now = (): number => performance.now() - t0;
    const endAt = o.seconds * 1000;
    const history: RegisterOp[] = [];
    const found: Violation[] = [];
    const rng = new SeededRng(o.seed ^ 0x5eed);
    let resends = 0;
    const reasons = new Map<string, number>();
    const noteReason = (r: Reply): void => {
      if (!r.ok) reasons.set(r.reason, (reasons.get(r.reason) ?? 0) + 1);
    };
    const timeoutMs = limits.workloadCallTimeoutMs;

    const clientLoop = async (slot: number): Promise<void> => {
      const crng = rng.fork();
      const home = NODES[slot % NODES.length] as (typeof NODES)[number];
      let gen = 0;
      let seq = 0;
      let written = 0;
      let lastComplete = -Infinity;
      const proc = (): string => `c${slot}.${gen}`;
      const invoke = (): number => Math.max(now(), lastComplete + 0.001);
      while (now() < endAt && nemesisFailed === null) {
        const key = `k${Math.floor(now() / limits.workloadKeyEpochMs)}.${crng.int(KEYS_PER_EPOCH)}`;
        if (crng.chance(o.readShare ?? 0.5)) {
          const invokeAt = invoke();
          const r = await agent(home).ask({ op: 'read', key, timeoutMs });
          noteReason(r);
          const completeAt = now();
          if (r.ok) {
            const v = r.result as { found: boolean; value: string };
            history.push({ process: proc(), key, input: { f: 'read' }, invokeAt, completeAt, outcome: 'ok', output: v.found ? v.value : null });
          } else {
            history.push({ process: proc(), key, input: { f: 'read' }, invokeAt, completeAt, outcome: 'fail' });
          }
          lastComplete = completeAt;
        } else {
          const value = `${slot}.${++written}`;
          const clientId = `c${slot}g${gen}`;
          seq++;
          const req = { op: 'propose', clientId, seq, key, value, timeoutMs };
          const invokeAt = invoke();
          let r = await agent(home).ask(req);
          noteReason(r);
          if (!r.ok && !DEFINITE_WRITE_REFUSALS.has(r.reason)) {
            // The outcome is unknown: ask once more, same client id and sequence, on the next node
            // (the client stays bound to its own node for its later calls, as Jepsen's clients do).
            r = await agent(NODES[(NODES.indexOf(home) + 1) % NODES.length] as string).ask(req);
            noteReason(r);
          }
          const completeAt = now();
          if (r.ok) {
            history.push({ process: proc(), key, input: { f: 'write', value }, invokeAt, completeAt, outcome: 'ok', output: null });
            lastComplete = completeAt;
            if (crng.chance(RESEND_CHANCE)) {
              await new Promise((res) => setTimeout(res, 100 + crng.int(1400)));
              resends++;
              const first = (r.result as { index: number }).index;
              const again = await agent(crng.pick(NODES)).ask(req);
              // A node that had not yet applied the original answers with the original's own
              // application (same index, not flagged duplicate): only another index is a second one.
              if (again.ok && (again.result as { index: number }).index !== first) {
                found.push({ check: 'retry-applied-again', atMs: Math.round(now()), detail: `${clientId} seq ${seq} (write ${value} to ${key}) acknowledged at index ${first}, sent again, answered with index ${(again.result as { index: number }).index}` });
              }
              lastComplete = now();
            }
          } else if (DEFINITE_WRITE_REFUSALS.has(r.reason)) {
            history.push({ process: proc(), key, input: { f: 'write', value }, invokeAt, completeAt, outcome: 'fail' });
            lastComplete = completeAt;
          } else {
            history.push({ process: proc(), key, input: { f: 'write', value }, invokeAt, outcome: 'indeterminate' });
            gen++;
            seq = 0;
            lastComplete = -Infinity;
          }
        }
        // After a failure the client backs off, as a real one would, so a node that is down is not
        // flooded with calls that all end indeterminate.
        const failed = history.length > 0 && (history[history.length - 1] as RegisterOp).process === proc() ? (history[history.length - 1] as RegisterOp).outcome !== 'ok' : true;
        await new Promise((res) => setTimeout(res, failed ? 250 + crng.int(750) : crng.int(50)));
      }
    };

    let stopNemesis = false;
    // Settled at once, so a fault that cannot be played stops the clients instead of crashing the
    // process as an unhandled rejection; its error is thrown when the nemesis is awaited.
    let nemesisFailed: unknown = null;
    const nemesis = runNemesis(schedule, victim, now, log, () => stopNemesis || nemesisFailed !== null).catch((e: unknown) => {
      nemesisFailed = e;
      return [] as NemesisEvent[];
    });
    const progress = setInterval(() => log(`campaign: ${(now() / 1000).toFixed(0)} s, ${history.length} calls`), 30_000);
    let events: NemesisEvent[];
    try {
      await Promise.all(Array.from({ length: clients }, (_, i) => clientLoop(i)));
    } finally {
      stopNemesis = true;
      events = await nemesis;
      if (nemesisFailed !== null) throw nemesisFailed;
      clearInterval(progress);
    }
    log(`campaign: workload done, ${history.length} calls; waiting for the healed cluster to converge`);
    // Every fault was healed by runNemesis; make sure every daemon runs (a kill healed by a start).
    for (const id of NODES) if (!c.children.has(id)) c.start(id);
    try {
      await c.stableLeader(undefined, limits.campaignSettleMs);
      const conv = await c.converged(undefined, 0, limits.campaignSettleMs);
      log(`campaign: converged at applied ${conv[0]?.applied} root ${conv[0]?.root.slice(0, 16)}`);
    } catch (e) {
      found.push({ check: 'convergence', atMs: Math.round(now()), detail: (e as Error).message });
    }

    const historyFile = o.historyFile ?? join(tmpdir(), `custody-jepsen-${o.seed}-${process.pid}.json`);
    mkdirSync(join(historyFile, '..'), { recursive: true });
    writeFileSync(historyFile, JSON.stringify({ seed: o.seed, seconds: o.seconds, mix: o.mix, testFaults: o.testFaults ?? null, schedule, events, history }));
    const result: CheckResult<RegisterInput, RegisterOutput> = checkHistory(registerModel(null), history, { now: () => performance.now(), timeLimitMs: limits.campaignCheckMs });
    for (const k of result.keys) {
      if (k.verdict === 'violation') found.push({ check: 'linearizability', atMs: Math.round(k.explanation.blocked.completeAt), detail: `key ${k.key}: ${k.explanation.text}` });
    }
    found.sort((a, b) => a.atMs - b.atMs);
    for (const v of found) log(`VIOLATION (${v.check}) at ${(v.atMs / 1000).toFixed(1)} s: ${v.detail}`);
    const count = (outcome: string): number => history.filter((h) => h.outcome === outcome).length;
    const verdict = found.length > 0 ? 'violation' : result.verdict === 'unknown' ? 'unknown' : 'ok';
    return {
      seed: o.seed, seconds: o.seconds, mix: mixName, testFaults: o.testFaults ?? null,
      ops: history.length, ok: count('ok'), failed: count('fail'), indeterminate: count('indeterminate'), resends,
      faults: events.filter((e) => e.what === 'fault').length, violations: found.length, verdict,
      linearizability: result.verdict, keys: result.keys.length, history: historyFile,
      reasons: Object.fromEntries([...reasons].sort((a, b) => b[1] - a[1])), found,
    };
  } finally {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (e) {
        log(`campaign: cleanup: ${(e as Error).message}`);
      }
    }
  }
}

const HELP = `usage: node dist/test/jepsen/campaign.js --seconds N --seed S [options]

Runs three custody node daemons on three hosts in Linux network namespaces, breaks them with a
seeded nemesis (kill -9, SIGSTOP/SIGCONT, restart of every node, isolation of a host, partitions
between two hosts, one-way packet drops, forward clock skew with libfaketime, power cuts that lose
what a node had not fsynced), runs a register workload against them, and checks the recorded
history for linearizability, the nodes for equal state after healing, and resent writes for
exactly-once application. Needs root and ip netns; power cuts need /dev/fuse and the Debian
packages fuse and python3-fusepy (test/setup.sh installs them).

  --seconds N        campaign length (faults stop ${limits.nemesisQuietMs / 1000} s before the end)
  --seed S           seed of the fault schedule and the workload's choices (default: random)
  --mix M            faults to draw from: ${Object.keys(MIXES).join(', ')} (default all; ledger
                     for --workload ledger), or kinds separated by commas: kill, pause,
                     restart-all, isolate, partition, one-way, skew, power-cut, kill-kernel
                     (ledger only). power-cut (in process and all): kill -9 of one node, or of
                     every node at once, then every write its data directory had not fsynced
                     is dropped, then the node starts again. Each data directory is a lossyfs
                     mount (test/jepsen/lossyfs.py, FUSE) that keeps unsynced file data in its
                     own memory until fsync; the cut kills it and mounts the synced disk again.
                     Mounts are left (fusermount -u) when the campaign ends
  --clients C        concurrent client processes (default 6)
  --faults-max F     at most F faults
  --history FILE     where to save the history (default: the temp folder, named by the seed)
  --replay FILE      play the schedule saved in a history FILE (its seed, seconds and mix too,
                     unless given) instead of drawing one
  --workload W       register (default): the register workload above, on netns hosts;
                     ledger: governed signing acts on daemons and kernels on loopback (kill,
                     pause, restart-all and kill-kernel only: --mix ledger, the default there;
                     no power cuts, partitions or skew), at most two open acts per client, with
                     key refreshes decided and activated while acts run; after the heal it waits
                     until no act is open (acts still open are a liveness violation), checking
                     that every act ends once, one signature per permit, no nonce counter reused,
                     no act executed under a replaced key epoch, equal chronicles and state roots
                     on every node, and that every evidence bundle verifies
  --test-faults SW   start the daemons with test-only fault switches that plant bugs, comma
                     separated: ${TEST_FAULT_NAMES.join(', ')} (node/test-faults.ts)
  --help             this text

Prints the schedule and progress on stderr, and one line of JSON on stdout:
  {"seed":..,"ops":..,"faults":..,"violations":..,"verdict":"ok|violation|unknown",...}
Exit code: 0 no violation, 1 violation, 2 usage error, 3 unknown or setup failure.
`;

async function main(argv: string[]): Promise<number> {
  const args = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--help' || a === '-h') {
      process.stdout.write(HELP);
      return 0;
    }
    if (!a.startsWith('--') || i + 1 >= argv.length) {
      process.stderr.write(`campaign: bad argument ${a}\n${HELP}`);
      return 2;
    }
    args.set(a.slice(2), argv[++i] as string);
  }
  const known = new Set(['seconds', 'seed', 'mix', 'clients', 'faults-max', 'history', 'test-faults', 'replay', 'workload']);
  let replay: { seed: number; seconds: number; mix: FaultKind[]; schedule: Fault[] } | null = null;
  if (args.has('replay')) {
    try {
      replay = JSON.parse(readFileSync(args.get('replay') as string, 'utf8')) as { seed: number; seconds: number; mix: FaultKind[]; schedule: Fault[] };
    } catch (e) {
      process.stderr.write(`campaign: --replay: ${(e as Error).message}\n`);
      return 2;
    }
    if (!args.has('seconds')) args.set('seconds', String(replay.seconds));
    if (!args.has('seed')) args.set('seed', String(replay.seed));
    if (!args.has('mix')) args.set('mix', replay.mix.join(','));
  }
  const unknown = [...args.keys()].filter((k) => !known.has(k));
  const seconds = Number(args.get('seconds'));
  const seed = args.has('seed') ? Number(args.get('seed')) : Math.floor(Math.random() * 0x7fffffff);
  const clients = args.has('clients') ? Number(args.get('clients')) : undefined;
  const faultsMax = args.has('faults-max') ? Number(args.get('faults-max')) : undefined;
  let mix: FaultKind[];
  try {
    mix = parseMix(args.get('mix') ?? (args.get('workload') === 'ledger' ? 'ledger' : 'all'));
  } catch (e) {
    process.stderr.write(`campaign: ${(e as Error).message}\n`);
    return 2;
  }
  const problems: string[] = [
    ...unknown.map((k) => `unknown option --${k}`),
    ...(!(Number.isFinite(seconds) && seconds > 0 && seconds <= limits.campaignSecondsMax) ? [`--seconds must be in (0, ${limits.campaignSecondsMax}]`] : []),
    ...(!Number.isSafeInteger(seed) ? ['--seed must be an integer'] : []),
    ...(clients !== undefined && !(Number.isInteger(clients) && clients >= 1 && clients <= 64) ? ['--clients must be 1..64'] : []),
    ...(faultsMax !== undefined && !(Number.isInteger(faultsMax) && faultsMax >= 0) ? ['--faults-max must be a count'] : []),
  ];
  const workload = args.get('workload') ?? 'register';
  if (workload !== 'register' && workload !== 'ledger') problems.push('--workload must be register or ledger');
  if (workload === 'register' && mix.includes('kill-kernel')) problems.push('kill-kernel is for --workload ledger (the register workload\'s nodes run no kernel)');
  if (workload === 'ledger') {
    const bad = mix.filter((k) => !LEDGER_KINDS.includes(k));
    if (bad.length > 0) problems.push(`the ledger workload takes only ${LEDGER_KINDS.join(', ')}, not ${bad.join(', ')}: use --mix ledger`);
    for (const k of ['history', 'test-faults']) if (args.has(k)) problems.push(`--${k} applies to the register workload only`);
  }
  if (problems.length > 0) {
    process.stderr.write(`campaign: ${problems.join('; ')}\n(--help explains)\n`);
    return 2;
  }
  if (workload === 'ledger') {
    try {
      const s = await runLedgerCampaign({
        seconds, seed, mix,
        ...(clients !== undefined ? { clients } : {}),
        ...(faultsMax !== undefined ? { faultsMax } : {}),
        ...(replay !== null ? { schedule: replay.schedule } : {}),
      });
      const { found, ...line } = s;
      process.stdout.write(`${JSON.stringify({ ...line, firstViolation: found[0] ?? null })}\n`);
      return s.verdict === 'ok' ? 0 : 1;
    } catch (e) {
      process.stderr.write(`campaign: ${(e as Error).stack ?? String(e)}\n`);
      return 3;
    }
  }
  try {
    const s = await runCampaign({
      seconds, seed, mix,
      ...(clients !== undefined ? { clients } : {}),
      ...(faultsMax !== undefined ? { faultsMax } : {}),
      ...(args.has('history') ? { historyFile: args.get('history') as string } : {}),
      ...(args.has('test-faults') ? { testFaults: args.get('test-faults') as string } : {}),
      ...(replay !== null ? { schedule: replay.schedule } : {}),
    });
    const { found, ...line } = s;
    const first = found[0];
    process.stdout.write(`${JSON.stringify({ ...line, firstViolation: first === undefined ? null : { check: first.check, atMs: first.atMs, detail: first.detail.split('\n')[0] } })}\n`);
    return s.verdict === 'ok' ? 0 : s.verdict === 'violation' ? 1 : 3;
  } catch (e) {
    process.stderr.write(`campaign: ${(e as Error).stack ?? String(e)}\n`);
    return 3;
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (e: unknown) => {
    process.stderr.write(`${String(e)}\n`);
    process.exit(3);
  });
}
