/**
 * Running a cluster of nodes on one machine from a directory of node configs (the `local-*`
 * cluster configs, tests, benchmarks): certificates on demand, one detached daemon per config,
 * readiness and status over each node's HTTP port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CustodyError } from '../proto/errors.js';
import { ensureCa, issue } from './certs.js';
import { loadConfig, type NodeConfig } from './config.js';

export const CLI_PATH = fileURLToPath(new URL('./cli.js', import.meta.url));

/** Node configs in `dir` (every *.yaml with an `id`), sorted by id. */
export function clusterConfigs(dir: string): NodeConfig[] {
  if (!existsSync(dir)) throw new CustodyError('CONFIG_INVALID', `${dir}: no such cluster config directory`);
  const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f) && !f.startsWith('.'));
  const out: NodeConfig[] = [];
  for (const f of files) {
    const text = readFileSync(join(dir, f), 'utf8');
    if (!/^id:/m.test(text)) continue; // not a node config
    out.push(loadConfig(join(dir, f)));
  }
  if (out.length === 0) throw new CustodyError('CONFIG_INVALID', `${dir}: no node configs (*.yaml with an id) found`);
  return out.sort((a, b) => a.id.localeCompare(b.id));
}

function hostOf(address: string): string {
  return address.slice(0, address.lastIndexOf(':')).replace(/^\[|\]$/g, '');
}

/** Create the CA and each node's certificate where the configs expect them, if missing. */
export function ensureCerts(cfgs: readonly NodeConfig[], progress: (line: string) => void = () => {}): void {
  for (const c of cfgs) {
    const dir = dirname(c.tls.ca);
    if (dirname(c.tls.cert) !== dir || !c.tls.cert.endsWith(`/${c.id}.crt`)) {
      if (existsSync(c.tls.cert)) continue; // operator-provided material: leave it alone
      throw new CustodyError('CONFIG_INVALID', `${c.file}: tls.cert: to create certificates, expect <ca dir>/${c.id}.crt (or provide the files)`);
    }
    const ca = ensureCa(dir);
    if (ca.created) progress(`created cluster CA ${ca.cert}`);
    const r = issue(dir, 'node', c.id, [hostOf(c.listen), 'localhost']);
    if (r.created) progress(`issued node certificate ${r.cert}`);
  }
}

export interface HttpStatus {
  id: string;
  role: string;
  term: number;
  leader: string | null;
  commit: number;
  applied: number;
  lastIndex: number;
  firstIndex: number;
  snapshotIndex: number;
  root: string;
  /** Keys in the replicated key-value state. */
  keys: number;
  voters: string[];
  pid: number;
  peers: Record<string, boolean>;
  /** The node's rollback check (node/daemon.ts rollbackStatus): verdict and voters not yet heard. */
  rollback?: { check: string; pending: string[] };
}

export async function fetchStatus(httpAddress: string, timeoutMs = 2_000): Promise<HttpStatus | null> {
  try {
    const r = await fetch(`http://${httpAddress}/status`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!r.ok) return null;
    return (await r.json()) as HttpStatus;
  } catch {
    return null;
  }
}

export async function fetchReady(httpAddress: string, timeoutMs = 2_000): Promise<boolean> {
  try {
    const r = await fetch(`http://${httpAddress}/readyz`, { signal: AbortSignal.timeout(timeoutMs) });
    return r.ok;
  } catch {
    return false;
  }
}

function runDir(dir: string): string {
  return join(dir, 'run');
}

export function pidFile(dir: string, id: string): string {
  return join(runDir(dir), `${id}.pid`);
}

export function logFile(dir: string, id: string): string {
  return join(dir, 'logs', `${id}.log`);
}

/** Start one daemon detached from this process, logging to `log`. */
export function spawnNode(configFile: string, log: string, opts: { detached: boolean; wrap?: string[] } = { detached: true }): ChildProcess {
  mkdirSync(dirname(log), { recursive: true });
  const fd = openSync(log, 'a');
  const argv = [CLI_PATH, 'node', '--config', configFile];
  const [cmd, ...args] = opts.wrap ? [...opts.wrap, process.execPath, ...argv] : [process.execPath, ...argv];
  const child = spawn(cmd as string, args, { detached: opts.detached, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  if (opts.detached) child.unref();
  return child;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function readPid(dir: string, id: string): number | null {
  try {
    const n = Number(readFileSync(pidFile(dir, id), 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

export async function clusterUp(dir: string, progress: (line: string) => void, readyTimeoutMs = 60_000): Promise<void> {
  const cfgs = clusterConfigs(dir);
  ensureCerts(cfgs, progress);
  mkdirSync(runDir(dir), { recursive: true });
  for (const c of cfgs) {
    const pid = readPid(dir, c.id);
    if (pid !== null && isAlive(pid)) {
      progress(`${c.id}: already running (pid ${pid})`);
      continue;
    }
    const child = spawnNode(c.file, logFile(dir, c.id));
    writeFileSync(pidFile(dir, c.id), `${child.pid}\n`);
    progress(`${c.id}: started (pid ${child.pid}), grpc ${c.listen}, http ${c.http}, log ${logFile(dir, c.id)}`);
  }
  const end = Date.now() + readyTimeoutMs;
  const pending = new Set(cfgs.map((c) => c.id));
  while (pending.size > 0) {
    for (const c of cfgs) {
      if (!pending.has(c.id)) continue;
      const pid = readPid(dir, c.id);
      if (pid === null || !isAlive(pid)) throw new CustodyError('INTERNAL', `${c.id} exited during start; see ${logFile(dir, c.id)}`);
      if (await fetchReady(c.http)) {
        pending.delete(c.id);
        const s = await fetchStatus(c.http);
        progress(`${c.id}: ready (${s?.role ?? '?'}, term ${s?.term ?? '?'}, leader ${s?.leader ?? '?'})`);
      }
    }
    if (pending.size === 0) break;
    if (Date.now() > end) throw new CustodyError('REMOTE_TIMEOUT', `not ready after ${readyTimeoutMs} ms: ${[...pending].join(', ')}; see the logs in ${join(dir, 'logs')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  progress(`cluster ${dir}: ${cfgs.length} nodes ready`);
}

export async function clusterDown(dir: string, progress: (line: string) => void, timeoutMs = 30_000): Promise<void> {
  const cfgs = clusterConfigs(dir);
  for (const c of cfgs) {
    const pid = readPid(dir, c.id);
    if (pid === null || !isAlive(pid)) {
      progress(`${c.id}: not running`);
      rmSync(pidFile(dir, c.id), { force: true });
      continue;
    }
    process.kill(pid, 'SIGTERM');
    progress(`${c.id}: SIGTERM sent to pid ${pid}`);
  }
  const end = Date.now() + timeoutMs;
  for (const c of cfgs) {
    const pid = readPid(dir, c.id);
    if (pid === null) continue;
    while (isAlive(pid)) {
      if (Date.now() > end) throw new CustodyError('REMOTE_TIMEOUT', `${c.id} (pid ${pid}) did not stop within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
    rmSync(pidFile(dir, c.id), { force: true });
    progress(`${c.id}: stopped`);
  }
}

export async function clusterStatus(dir: string): Promise<{ id: string; http: string; status: HttpStatus | null }[]> {
  const cfgs = clusterConfigs(dir);
  return Promise.all(cfgs.map(async (c) => ({ id: c.id, http: c.http, status: await fetchStatus(c.http) })));
}
