/**
 * A seeded nemesis for real custody daemons (Jepsen's nemesis: Kingsbury, "Jepsen" 2013-, and its
 * `combined` package): a schedule of faults drawn from one seed, then played against real
 * processes on three hosts in Linux network namespaces (cluster-configs/netns-3/netns.sh).
 *
 * Schedule. planSchedule(seed, options) is a pure function: the same seed and options give the same
 * schedule, printed one fault per line (describeFault), so a campaign replays with `--seed`. Faults
 * come one at a time: a quiet start (limits.nemesisQuietMs), then fault, heal, gap, fault, ..., and
 * the last heal at least nemesisQuietMs before the end, so the final checks run on a healed cluster.
 * Durations and gaps are drawn from proto/limits.ts; the count is bounded by `faultsMax`.
 *
 * Faults, and how each is made real:
 *   kill          SIGKILL the node's daemon; heal: start it again (crash-restart; the data
 *                 directory is what the process last handed the OS);
 *   pause         SIGSTOP; heal: SIGCONT (a process starved or stuck in a GC pause: its peers time
 *                 out on it, then it wakes with stale beliefs);
 *   restart-all   SIGKILL every daemon at once, then start them all (heal is immediate);
 *   isolate       the host's link taken down on the switch (netns.sh cut): no packet either way;
 *   partition     a blackhole route each way between two hosts, the third still reaching both (a
 *                 non-transitive partition: the bridge node sees both sides);
 *   one-way       a blackhole route in one host for another's address: packets from `from` to `to`
 *                 are dropped, the other direction delivered (as an iptables OUTPUT DROP would:
 *                 TCP connections from either side stall, established ones one-sidedly);
 *   kill-kernel   SIGKILL of the node's secret kernel process alone; heal: the kernel started again
 *                 (its daemon keeps running and must reconnect; ledger workload only);
 *   skew          the node restarts with its wall clock moved forward by up to
 *                 limits.nemesisSkewSecondsMax seconds (libfaketime, Debian `faketime`, preloaded;
 *                 monotonic time is left alone, as a skewed NTP would); heal: restart unskewed;
 *   power-cut     SIGKILL the node's daemon, then drop every write its data directory had not
 *                 fsynced; heal: start it again. kill -9 alone keeps the page cache, so it cannot
 *                 show a missing fsync; this can. The data directory lives on lossyfs (lossyfs.py:
 *                 a FUSE layer that holds unsynced file data in its own memory, modelled on LazyFS,
 *                 Ramos et al., VLDB 2024), and the cut is the death of that memory: lossyfs is
 *                 killed and mounted again on what was synced. File data is lost back to each
 *                 file's last fsync; names (create, rename, unlink) are durable at once, a
 *                 simplification the layer documents. The node may be `all`: every node at once,
 *                 the power cut of a whole site, after which a write is kept only if the nodes
 *                 that fsynced it can still form a quorum's log.
 * A fault's node is drawn from the nodes and `leader`, which names whichever node leads when the
 * fault begins (Jepsen's :primaries target; the node chosen is printed with the event), and for a
 * power cut also `all`.
 * Mixes name which kinds a schedule draws from: process (kill, pause, restart-all, power-cut),
 * partition (isolate, partition, one-way), clock (skew), all (the eight above but kill-kernel),
 * ledger (kill, pause, restart-all, kill-kernel).
 *
 * Not simulated here: torn writes, and the loss of a rename or a new file's name that its
 * directory's fsync did not cover (lossyfs makes names durable at once). The deterministic
 * simulator (raft/sim) covers lost unsynced writes and torn writes on its disks.
 *
 * Who is trusted: nothing; the nemesis is the adversary the daemons must survive. Runs as root
 * (namespaces, routes); every namespace is named with a per-run prefix and removed on teardown.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SeededRng } from '../../raft/core/rng.js';
import { jepsen as limits } from '../../proto/limits.js';
import { lossyfsUnavailable } from './lossyfs.js';

export type FaultKind = 'kill' | 'pause' | 'restart-all' | 'isolate' | 'partition' | 'one-way' | 'skew' | 'power-cut' | 'kill-kernel';
export const FAULT_KINDS: readonly FaultKind[] = ['kill', 'pause', 'restart-all', 'isolate', 'partition', 'one-way', 'skew', 'power-cut', 'kill-kernel'];

/** Named mixes. `all` is every kind the register workload's nodes take (they run no kernel). */
export const MIXES: Readonly<Record<string, readonly FaultKind[]>> = {
  process: ['kill', 'pause', 'restart-all', 'power-cut'],
  partition: ['isolate', 'partition', 'one-way'],
  clock: ['skew'],
  all: ['kill', 'pause', 'restart-all', 'isolate', 'partition', 'one-way', 'skew', 'power-cut'],
  ledger: ['kill', 'pause', 'restart-all', 'kill-kernel'],
};

export interface Fault {
  /** Milliseconds after the campaign start when the fault begins. */
  readonly at: number;
  /** Milliseconds after the campaign start when it is healed. */
  readonly healAt: number;
  readonly kind: FaultKind;
  /**
   * The node the fault hits (kill, pause, isolate, skew, power-cut), or the first of two (partition,
   * one-way: from); `leader` means the node that leads when the fault begins (Jepsen's :primaries
   * target); `all` (power-cut only) every node at once.
   */
  readonly node: string | null;
  /** The other node of a partition, the destination of a one-way drop. */
  readonly peer: string | null;
  /** Seconds the clock moves forward (skew). */
  readonly skewSeconds: number | null;
}

/** The target naming whichever node leads when the fault begins. */
export const LEADER = 'leader';
/** The target naming a node that does not lead when the fault begins (given schedules only; never drawn). */
export const FOLLOWER = 'follower';
/** The target naming every node at once (power-cut only: the power of the whole site fails). */
export const ALL_NODES = 'all';

export interface ScheduleOptions {
  readonly seconds: number;
  readonly nodes: readonly string[];
  readonly mix: readonly FaultKind[];
  readonly faultsMax?: number;
}

/** Parses `--mix`: a mix name, or kinds separated by commas. */
export function parseMix(text: string): FaultKind[] {
  const named = MIXES[text];
  if (named !== undefined) return [...named];
  const kinds = text.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  const bad = kinds.filter((k) => !(FAULT_KINDS as readonly string[]).includes(k));
  if (kinds.length === 0 || bad.length > 0) {
    throw new RangeError(`--mix ${JSON.stringify(text)}: expected one of ${Object.keys(MIXES).join(', ')} or kinds from ${FAULT_KINDS.join(', ')}${bad.length > 0 ? ` (unknown: ${bad.join(', ')})` : ''}`);
  }
  return kinds as FaultKind[];
}

const between = (rng: SeededRng, lo: number, hi: number): number => lo + rng.int(hi - lo + 1);

/** The fault schedule of a seed: pure, bounded in count and in time (see the module header). */
export function planSchedule(seed: number, o: ScheduleOptions): Fault[] {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed ${seed} is not an integer`);
  if (!(o.seconds > 0 && o.seconds <= limits.campaignSecondsMax)) throw new RangeError(`seconds ${o.seconds} not in (0, ${limits.campaignSecondsMax}]`);
  if (o.nodes.length < 2) throw new RangeError('a schedule needs at least two nodes');
  if (o.mix.length === 0) throw new RangeError('an empty mix');
  const faultsMax = Math.min(o.faultsMax ?? limits.nemesisFaultsMax, limits.nemesisFaultsMax);
  const rng = new SeededRng(seed);
  const end = o.seconds * 1000 - limits.nemesisQuietMs;
  const out: Fault[] = [];
  let now = limits.nemesisQuietMs;
  while (out.length < faultsMax) {
    const kind = rng.pick(o.mix);
    const last = kind === 'restart-all' ? 0 : between(rng, limits.nemesisFaultMsMin, limits.nemesisFaultMsMax);
    const gap = between(rng, limits.nemesisGapMsMin, limits.nemesisGapMsMax);
    if (now + last > end) break;
    const node = kind === 'restart-all' ? null : rng.pick(kind === 'power-cut' ? [...o.nodes, LEADER, ALL_NODES] : [...o.nodes, LEADER]);
    const others = node === LEADER ? o.nodes : o.nodes.filter((n) => n !== node);
    const peer = kind === 'partition' || kind === 'one-way' ? rng.pick(others) : null;
    const skewSeconds = kind === 'skew' ? between(rng, 1, limits.nemesisSkewSecondsMax) : null;
    out.push({ at: now, healAt: now + last, kind, node, peer, skewSeconds });
    now += last + gap;
  }
  return out;
}

export function describeFault(f: Fault): string {
  const span = `${(f.at / 1000).toFixed(1)}s..${(f.healAt / 1000).toFixed(1)}s`;
  switch (f.kind) {
    case 'restart-all': return `${span} restart-all`;
    case 'partition': return `${span} partition ${f.node} <-/-> ${f.peer}`;
    case 'one-way': return `${span} one-way ${f.node} -/-> ${f.peer}`;
    case 'skew': return `${span} skew ${f.node} +${f.skewSeconds}s`;
    default: return `${span} ${f.kind} ${f.node}`;
  }
}

/** What the nemesis does to a cluster; the campaign implements it on netns hosts. */
export interface Victim {
  kill(id: string): Promise<void>;
  start(id: string): Promise<void>;
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  cut(id: string): Promise<void>;
  heal(id: string): Promise<void>;
  /** Drop every packet from `from` to `to` (on) or deliver them again (off). */
  block(from: string, to: string, on: boolean): Promise<void>;
  /** SIGKILL the node's kernel alone, and start it again. */
  killKernel(id: string): Promise<void>;
  startKernel(id: string): Promise<void>;
  /** Restart the node with its clock this many seconds ahead (null: the true clock). */
  skew(id: string, seconds: number | null): Promise<void>;
  /**
   * SIGKILL the node's daemon, then drop what its data directory had not fsynced (the daemon stays
   * down until start). Absent on victims whose data directories are on an ordinary disk.
   */
  powerCut?(id: string): Promise<void>;
  readonly nodes: readonly string[];
  /** The node that leads now, or any node when none does (the fault still happens). */
  leader(): Promise<string>;
  /** A node that does not lead now. */
  follower(): Promise<string>;
}

export interface NemesisEvent {
  readonly at: number;
  readonly what: 'fault' | 'heal';
  readonly fault: string;
}

/**
 * Plays a schedule against a victim. `now` gives milliseconds since the campaign start; `stop`
 * cuts the schedule short (every fault begun is still healed). Returns what was done, in order.
 */
export async function runNemesis(schedule: readonly Fault[], v: Victim, now: () => number, log: (line: string) => void, stop: () => boolean = () => false): Promise<NemesisEvent[]> {
  const events: NemesisEvent[] = [];
  const sleepUntil = async (t: number): Promise<void> => {
    while (now() < t && !stop()) await new Promise((r) => setTimeout(r, Math.min(200, Math.max(1, t - now()))));
  };
  const note = (what: 'fault' | 'heal', f: Fault, resolved: string): void => {
    const e = { at: Math.round(now()), what, fault: `${describeFault(f)}${resolved}` };
    events.push(e);
    log(`nemesis ${(e.at / 1000).toFixed(1)}s ${what}: ${e.fault}`);
  };
  for (const f of schedule) {
    await sleepUntil(f.at);
    if (stop()) break;
    const node = f.node === LEADER ? await v.leader() : f.node === FOLLOWER ? await v.follower() : (f.node as string);
    const cut = f.kind === 'power-cut' ? (node === ALL_NODES ? v.nodes : [node]) : [];
    // A partition of the leader with itself would be no fault: the peer then is another node.
    const peer = f.peer === node ? (v.nodes.find((n) => n !== node) as string) : (f.peer as string);
    note('fault', f, node === f.node ? '' : ` (${node})`);
    switch (f.kind) {
      case 'kill': await v.kill(node); break;
      case 'kill-kernel': await v.killKernel(node); break;
      case 'pause': await v.pause(node); break;
      case 'restart-all':
        await Promise.all(v.nodes.map((n) => v.kill(n)));
        await Promise.all(v.nodes.map((n) => v.start(n)));
        break;
      case 'isolate': await v.cut(node); break;
      case 'partition': await v.block(node, peer, true); await v.block(peer, node, true); break;
      case 'one-way': await v.block(node, peer, true); break;
      case 'skew': await v.skew(node, f.skewSeconds); break;
      case 'power-cut': {
        const powerCut = v.powerCut?.bind(v);
        if (powerCut === undefined) throw new RangeError('this victim\'s data directories cannot lose unsynced writes (no power-cut)');
        await Promise.all(cut.map((n) => powerCut(n)));
        break;
      }
    }
    await sleepUntil(f.healAt);
    note('heal', f, node === f.node ? '' : ` (${node})`);
    switch (f.kind) {
      case 'kill': await v.start(node); break;
      case 'kill-kernel': await v.startKernel(node); break;
      case 'pause': await v.resume(node); break;
      case 'restart-all': break;
      case 'isolate': await v.heal(node); break;
      case 'partition': await v.block(node, peer, false); await v.block(peer, node, false); break;
      case 'one-way': await v.block(node, peer, false); break;
      case 'skew': await v.skew(node, null); break;
      case 'power-cut': await Promise.all(cut.map((n) => v.start(n))); break;
    }
  }
  return events;
}

// ---------------------------------------------------------------------------------------------
// Three hosts in network namespaces
// ---------------------------------------------------------------------------------------------
export const NETNS_SCRIPT = fileURLToPath(new URL('../../../cluster-configs/netns-3/netns.sh', import.meta.url));
export const NETNS_HOSTS: Readonly<Record<string, string>> = { n1: '10.77.0.1', n2: '10.77.0.2', n3: '10.77.0.3' };
/** libfaketime's preload library on Debian (package `faketime`). */
export const FAKETIME_LIB = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';

/** Why a nemesis cannot run here, or null when it can (root, `ip netns`, libfaketime for skews, lossyfs for power cuts). */
export function nemesisUnavailable(mix: readonly FaultKind[]): string | null {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'needs root (network namespaces, routes)';
  const name = `jprobe${process.pid}`;
  const probe = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
  if (probe.status !== 0) return `ip netns add is not permitted here: ${(probe.stderr || probe.error?.message || '').trim()}`;
  spawnSync('ip', ['netns', 'del', name]);
  if (mix.includes('skew') && !existsSync(FAKETIME_LIB)) return `clock skew needs libfaketime (${FAKETIME_LIB}; Debian package faketime)`;
  if (mix.includes('power-cut')) {
    const why = lossyfsUnavailable();
    if (why !== null) return `power cuts: ${why}`;
  }
  return null;
}

/** The namespaces of one run: netns.sh with a per-run prefix, plus blackhole routes for partitions. */
export class NetnsHosts {
  constructor(readonly prefix: string) {}

  private run(...args: string[]): void {
    const r = spawnSync('bash', [NETNS_SCRIPT, ...args], { encoding: 'utf8', env: { ...process.env, CUSTODY_NETNS_PREFIX: this.prefix } });
    if (r.status !== 0) throw new Error(`netns.sh ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  }

  namespace(id: string): string {
    return `${this.prefix}-${id}`;
  }
  up(): void {
    this.run('up');
  }
  down(): void {
    this.run('down');
  }
  cut(id: string): void {
    this.run('cut', id);
  }
  heal(id: string): void {
    this.run('heal', id);
  }
  /** Blackhole (on) or restore (off) the route from one host to another's address. */
  block(from: string, to: string, on: boolean): void {
    const addr = NETNS_HOSTS[to];
    if (addr === undefined) throw new RangeError(`no host ${to}`);
    const r = spawnSync('ip', ['-n', this.namespace(from), 'route', on ? 'replace' : 'del', 'blackhole', `${addr}/32`], { encoding: 'utf8' });
    if (r.status !== 0 && on) throw new Error(`blackhole ${from} -> ${to}: ${r.stderr}`);
  }
}
