/**
 * Multi-process cluster harness: real `custody node` daemons (real LevelDB, real gRPC with mutual
 * TLS) in a temp directory on free loopback ports. Every wait is on a condition with a generous
 * bound, never a fixed sleep; every child is killed on teardown.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ensureCa, issue } from '../../node/certs.js';
import { CustodyClient } from '../../node/client.js';
import { CLI_PATH, fetchStatus, spawnNode, type HttpStatus } from '../../node/cluster.js';
import { loadTls, type TlsMaterial } from '../../node/tls.js';
import { until as pollUntil } from '../../node/probe.js';
import { CustodyError } from '../../proto/errors.js';

export interface TestLike {
  teardown(fn: () => unknown): void;
  comment(...args: unknown[]): void;
}

import { freePort } from '../../node/probe.js';

export { freePort };

/** node/probe.ts `until`, with the generous default these multi-process tests want. */
export function until<T>(what: string, f: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs = 180_000, everyMs = 100): Promise<T> {
  return pollUntil(what, f, timeoutMs, everyMs);
}

export interface RaftOverrides {
  tickMs?: number;
  electionTicks?: number;
  heartbeatTicks?: number;
  snapshotEveryEntries?: number;
  compactionKeepEntries?: number;
  proposalsPerEntryMax?: number;
}

export interface NodeSpec {
  id: string;
  /** Address the node listens on (gRPC) and is reached at by peers. */
  host: string;
  grpcPort: number;
  httpPort: number;
}

export class Cluster {
  readonly children = new Map<string, ChildProcess>();
  readonly specs: NodeSpec[];
  private clientTls: TlsMaterial | null = null;

  private constructor(readonly dir: string, specs: NodeSpec[], private readonly wrap?: (id: string) => string[]) {
    this.specs = specs;
  }

  static async create(t: TestLike, n: number, raft: RaftOverrides = {}, opts: { hosts?: string[]; wrap?: (id: string) => string[]; keepDir?: boolean } = {}): Promise<Cluster> {
    const dir = mkdtempSync(join(tmpdir(), 'custody-cluster-'));
    const specs: NodeSpec[] = [];
    for (let i = 1; i <= n; i++) {
      const host = opts.hosts?.[i - 1] ?? '127.0.0.1';
      specs.push({ id: `n${i}`, host, grpcPort: opts.hosts ? 7400 : await freePort(), httpPort: opts.hosts ? 8400 : await freePort() });
    }
    const c = new Cluster(dir, specs, opts.wrap);
    const certs = join(dir, 'certs');
    ensureCa(certs);
    for (const s of specs) {
      issue(certs, 'node', s.id, [s.host]);
      writeFileSync(c.configFile(s.id), stringify({
        id: s.id,
        dataDir: `data/${s.id}`,
        listen: `${s.host}:${s.grpcPort}`,
        http: `${opts.hosts ? '0.0.0.0' : s.host}:${s.httpPort}`,
        peers: Object.fromEntries(specs.map((p) => [p.id, `${p.host}:${p.grpcPort}`])),
        tls: { ca: 'certs/ca.crt', cert: `certs/${s.id}.crt`, key: `certs/${s.id}.key` },
        // Election timeouts of 2-4 s: tests share a loaded machine, where a starved process must
        // not look dead to its peers after one second.
        raft: { tickMs: 100, electionTicks: 20, heartbeatTicks: 1, ...raft },
      }));
    }
    issue(certs, 'client', 'tester');
    t.teardown(async () => {
      await c.killAll();
      if (!opts.keepDir && !process.env.CUSTODY_KEEP_TEST_DIRS) rmSync(dir, { recursive: true, force: true });
    });
    return c;
  }

  configFile(id: string): string {
    return join(this.dir, `${id}.yaml`);
  }
  logFile(id: string): string {
    return join(this.dir, 'logs', `${id}.log`);
  }
  dataDir(id: string): string {
    return join(this.dir, 'data', id);
  }
  spec(id: string): NodeSpec {
    return this.specs.find((s) => s.id === id) as NodeSpec;
  }
  log(id: string): string {
    try {
      return readFileSync(this.logFile(id), 'utf8');
    } catch {
      return '';
    }
  }

  start(id: string): ChildProcess {
    const child = spawnNode(this.configFile(id), this.logFile(id), { detached: false, wrap: this.wrap?.(id) });
    this.children.set(id, child);
    child.once('exit', () => {
      if (this.children.get(id) === child) this.children.delete(id);
    });
    return child;
  }

  startAll(): void {
    for (const s of this.specs) this.start(s.id);
  }

  /** Send a signal to a node's daemon; resolves once it has exited when the signal ends it. */
  async signal(id: string, sig: NodeJS.Signals): Promise<void> {
    const child = this.children.get(id);
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(sig);
    if (sig === 'SIGKILL' || sig === 'SIGTERM') await exited;
  }

  async killAll(): Promise<void> {
    await Promise.all([...this.children.keys()].map(async (id) => {
      const c = this.children.get(id);
      if (!c) return;
      c.kill('SIGCONT');
      await this.signal(id, 'SIGKILL');
    }));
  }

  /** How status is fetched; a test whose nodes live in network namespaces replaces it. */
  statusFn: (id: string) => Promise<HttpStatus | null> = (id) => {
    const s = this.spec(id);
    return fetchStatus(`${s.host}:${s.httpPort}`);
  };

  status(id: string): Promise<HttpStatus | null> {
    return this.statusFn(id);
  }

  async statuses(ids = this.specs.map((s) => s.id)): Promise<Map<string, HttpStatus>> {
    const m = new Map<string, HttpStatus>();
    await Promise.all(ids.map(async (id) => {
      const s = await this.status(id);
      if (s) m.set(id, s);
    }));
    return m;
  }

  /** A leader that every listed node agrees on, in one term. */
  async stableLeader(ids = this.specs.map((s) => s.id), timeoutMs = 180_000): Promise<HttpStatus> {
    // What the nodes said last, for the failure message: a node that never answered (it did not
    // start: see its log) reads differently from nodes that answer without agreeing on a leader.
    let seen = 'no node answered';
    return until(`a leader agreed by ${ids.join(',')}`, async () => {
      const st = await this.statuses(ids);
      seen = ids.map((id) => {
        const s = st.get(id);
        return s === undefined ? `${id}: no answer` : `${id}: ${s.role} term ${s.term} leader ${s.leader || 'none'}`;
      }).join('; ');
      if (st.size !== ids.length) return null;
      const all = [...st.values()];
      const l = all.find((s) => s.role === 'leader');
      if (!l) return null;
      return all.every((s) => s.leader === l.id && s.term === l.term) ? l : null;
    }, timeoutMs).catch((e: unknown) => {
      throw new CustodyError('REMOTE_TIMEOUT', `${(e as Error).message}; last seen: ${seen}${ids.filter((id) => seen.includes(`${id}: no answer`)).map((id) => `; ${id}'s log ends: ${this.log(id).trim().split('\n').slice(-5).join(' | ')}`).join('')}`);
    });
  }

  /** Wait until the nodes have applied the same index with the same state root. */
  async converged(ids = this.specs.map((s) => s.id), minApplied = 0, timeoutMs = 180_000): Promise<HttpStatus[]> {
    return until(`${ids.join(',')} converged at applied >= ${minApplied}`, async () => {
      const st = await this.statuses(ids);
      if (st.size !== ids.length) return null;
      const all = [...st.values()];
      const a = all[0] as HttpStatus;
      return all.every((s) => s.applied === a.applied && s.root === a.root && s.applied >= minApplied && s.commit === a.commit) ? all : null;
    }, timeoutMs);
  }

  tls(): TlsMaterial {
    this.clientTls ??= loadTls({ ca: join(this.dir, 'certs', 'ca.crt'), cert: join(this.dir, 'certs', 'tester.crt'), key: join(this.dir, 'certs', 'tester.key') });
    return this.clientTls;
  }

  client(id: string): CustodyClient {
    const s = this.spec(id);
    return new CustodyClient(`${s.host}:${s.grpcPort}`, id, this.tls());
  }

  /** Run the CLI to completion (e.g. `node wipe`). */
  cli(args: string[]): Promise<{ code: number | null; out: string }> {
    return runCli(args);
  }
}

/** Run the `custody` CLI to completion in `cwd`; `out` is stdout and stderr interleaved as they arrive. */
export function runCli(args: string[], cwd?: string): Promise<{ code: number | null; out: string }> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [CLI_PATH, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...(cwd !== undefined ? { cwd } : {}) });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (code) => res({ code, out }));
  });
}
