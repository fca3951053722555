/**
 * Side-by-side benchmark: a 3-node custody cluster and a 3-node etcd 3.4 cluster (Debian
 * `etcd-server`) on loopback, in one run, at the same load and durability:
 * - both fsync every batch before acknowledging (custody: `sync: true` LevelDB batches; etcd: its
 *   WAL fsync, which it never skips unless --unsafe-no-fsync);
 * - both use mutual TLS from the same CA on the client and peer ports;
 * - both get the same heartbeat (100 ms) and election timeout (1000 ms minimum);
 * - the same client stack (@grpc/grpc-js, one process), the same number of connections, 256-byte
 *   values, writes sent to the leader; 1, 100 and 1000 concurrent clients, each issuing one write
 *   at a time.
 * Then leader failover: kill -9 the leader, time until the first write commits via a survivor.
 *
 * Usage: node dist/bench/node-bench.js [--seconds 10] [--trials 5] [--concurrency 1,100,1000] [--out file.json]
 * A benchmark reports; it asserts nothing.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { ensureCa, issue } from '../node/certs.js';
import { CustodyClient } from '../node/client.js';
import { fetchStatus, spawnNode } from '../node/cluster.js';
import { freePort, until } from '../node/probe.js';
import { channelCredentials, identityOptions, loadTls, type TlsMaterial } from '../node/tls.js';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set((process.argv[i] as string).replace(/^--/, ''), process.argv[i + 1] ?? '');
const SECONDS = Number(args.get('seconds') ?? 10);
const TRIALS = Number(args.get('trials') ?? 5);
const CONCURRENCY = (args.get('concurrency') ?? '1,100,1000').split(',').map(Number);
const CONNS_MAX = 8;
const VALUE_BYTES = 256;
/** After a kill, the bench fails (naming the phase) if no write commits within this. */
const FAILOVER_WAIT_MS = 60_000;
const ETCD_PROTO = fileURLToPath(new URL('../../bench/node-etcd-kv.proto', import.meta.url));

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** What the load generator needs from a system under test. */
interface Target {
  readonly name: string;
  readonly ids: readonly string[];
  start(id: string): void;
  kill(id: string): Promise<void>;
  leader(ids?: readonly string[]): Promise<string>;
  /** A connection to one node; `put` writes one key with one value, resolving when committed. */
  connect(id: string): Conn;
  stopAll(): Promise<void>;
}

interface Conn {
  put(key: string, value: Buffer, clientId: string, seq: number, timeoutMs: number): Promise<void>;
  close(): void;
}

class Procs {
  readonly children = new Map<string, ChildProcess>();
  async kill(id: string, sig: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const c = this.children.get(id);
    if (!c || c.exitCode !== null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill(sig);
    await exited;
    this.children.delete(id);
  }
  async killAll(): Promise<void> {
    await Promise.all([...this.children.keys()].map((id) => this.kill(id)));
  }
}

async function custodyTarget(dir: string, tls: TlsMaterial): Promise<Target> {
  const ids = ['n1', 'n2', 'n3'];
  const ports = new Map<string, { grpc: number; http: number }>();
  for (const id of ids) ports.set(id, { grpc: await freePort(), http: await freePort() });
  for (const id of ids) {
    issue(join(dir, 'certs'), 'node', id, ['127.0.0.1', 'localhost']);
    const p = ports.get(id) as { grpc: number; http: number };
    writeFileSync(join(dir, `${id}.yaml`), stringify({
      id, dataDir: `data/${id}`, listen: `127.0.0.1:${p.grpc}`, http: `127.0.0.1:${p.http}`,
      peers: Object.fromEntries(ids.map((x) => [x, `127.0.0.1:${(ports.get(x) as { grpc: number }).grpc}`])),
      tls: { ca: 'certs/ca.crt', cert: `certs/${id}.crt`, key: `certs/${id}.key` },
      raft: { tickMs: 100, electionTicks: 10, heartbeatTicks: 1 },
    }));
  }
  const procs = new Procs();
  const http = (id: string): string => `127.0.0.1:${(ports.get(id) as { http: number }).http}`;
  return {
    name: 'custody',
    ids,
    start: (id) => {
      procs.children.set(id, spawnNode(join(dir, `${id}.yaml`), join(dir, 'logs', `${id}.log`), { detached: false }));
    },
    kill: (id) => procs.kill(id),
    leader: (among = ids) =>
      until('a custody leader', async () => {
        const st = await Promise.all(among.map((id) => fetchStatus(http(id), 1_000)));
        const l = st.find((s) => s?.role === 'leader');
        return l && st.every((s) => s && s.leader === l.id && s.term === l.term) ? l.id : null;
      }, 60_000, 50),
    connect: (id) => {
      const c = new CustodyClient(`127.0.0.1:${(ports.get(id) as { grpc: number }).grpc}`, id, tls);
      return {
        put: async (key, value, clientId, seq, timeoutMs) => {
          await c.propose(clientId, seq, key, value, timeoutMs);
        },
        close: () => c.close(),
      };
    },
    stopAll: () => procs.killAll(),
  };
}

async function etcdTarget(dir: string, tls: TlsMaterial): Promise<Target> {
  const ids = ['e1', 'e2', 'e3'];
  const ports = new Map<string, { client: number; peer: number }>();
  for (const id of ids) ports.set(id, { client: await freePort(), peer: await freePort() });
  // The same cluster CA as the custody nodes: one directory of certificates for both systems.
  const certs = join(dir, '..', 'certs');
  for (const id of ids) issue(certs, 'node', id, ['127.0.0.1', 'localhost']);
  const cluster = ids.map((id) => `${id}=https://127.0.0.1:${(ports.get(id) as { peer: number }).peer}`).join(',');
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(ETCD_PROTO, { longs: Number, defaults: true })) as unknown as {
    etcdserverpb: { KV: grpc.ServiceClientConstructor; Maintenance: grpc.ServiceClientConstructor };
  };
  const creds = channelCredentials(tls);
  const addr = (id: string): string => `127.0.0.1:${(ports.get(id) as { client: number }).client}`;
  const procs = new Procs();
  let first = true;
  const status = (id: string): Promise<{ header: { memberId: number }; leader: number } | null> =>
    new Promise((res) => {
      const c = new pkg.etcdserverpb.Maintenance(addr(id), creds, identityOptions(id));
      (c as unknown as { Status(r: object, o: grpc.CallOptions, cb: (e: unknown, r: unknown) => void): void }).Status({}, { deadline: Date.now() + 1_000 }, (e, r) => {
        c.close();
        res(e ? null : (r as { header: { memberId: number }; leader: number }));
      });
    });
  return {
    name: 'etcd 3.4',
    ids,
    start: (id) => {
      const p = ports.get(id) as { client: number; peer: number };
      mkdirSync(join(dir, 'logs'), { recursive: true });
      const fd = openSync(join(dir, 'logs', `${id}.log`), 'a');
      const child = spawn('etcd', [
        '--name', id, '--data-dir', join(dir, 'data', id),
        '--listen-client-urls', `https://127.0.0.1:${p.client}`, '--advertise-client-urls', `https://127.0.0.1:${p.client}`,
        '--listen-peer-urls', `https://127.0.0.1:${p.peer}`, '--initial-advertise-peer-urls', `https://127.0.0.1:${p.peer}`,
        '--initial-cluster', cluster, '--initial-cluster-state', first ? 'new' : 'existing', '--initial-cluster-token', 'bench',
        '--client-cert-auth', '--trusted-ca-file', join(certs, 'ca.crt'), '--cert-file', join(certs, `${id}.crt`), '--key-file', join(certs, `${id}.key`),
        '--peer-client-cert-auth', '--peer-trusted-ca-file', join(certs, 'ca.crt'), '--peer-cert-file', join(certs, `${id}.crt`), '--peer-key-file', join(certs, `${id}.key`),
        '--heartbeat-interval', '100', '--election-timeout', '1000', '--logger', 'zap', '--log-level', 'warn',
      ], { stdio: ['ignore', fd, fd] });
      closeSync(fd);
      procs.children.set(id, child);
    },
    kill: async (id) => {
      await procs.kill(id);
      first = false;
    },
    leader: (among = ids) =>
      until('an etcd leader', async () => {
        const st = await Promise.all(among.map((id) => status(id)));
        if (st.some((s) => !s || !s.leader)) return null;
        const lid = (st[0] as { leader: number }).leader;
        if (!st.every((s) => s && s.leader === lid)) return null;
        const i = st.findIndex((s) => s && s.header.memberId === lid);
        return i >= 0 ? (among[i] as string) : null;
      }, 60_000, 50),
    connect: (id) => {
      const c = new pkg.etcdserverpb.KV(addr(id), creds, identityOptions(id)) as unknown as grpc.Client & {
        Put(r: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void): void;
      };
      return {
        put: (key, value, _clientId, _seq, timeoutMs) =>
          new Promise<void>((res, rej) => c.Put({ key: Buffer.from(key), value }, { deadline: Date.now() + timeoutMs }, (e) => (e ? rej(e) : res()))),
        close: () => c.close(),
      };
    },
    stopAll: () => procs.killAll(),
  };
}

interface LoadResult {
  system: string;
  clients: number;
  conns: number;
  ops: number;
  errors: number;
  seconds: number;
  opsPerSec: number;
  p50ms: number;
  p99ms: number;
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number;
}

async function load(target: Target, leader: string, clients: number, seconds: number, run: string): Promise<LoadResult> {
  const conns = Array.from({ length: Math.min(clients, CONNS_MAX) }, () => target.connect(leader));
  const value = Buffer.alloc(VALUE_BYTES, 0x61);
  const lat: number[] = [];
  let ops = 0;
  let errors = 0;
  const warmEnd = performance.now() + 1_000;
  const end = warmEnd + seconds * 1000;
  let measuredFrom = Infinity;
  let measuredTo = 0;
  await Promise.all(Array.from({ length: clients }, async (_, w) => {
    const conn = conns[w % conns.length] as Conn;
    for (let seq = 1; ; seq++) {
      const t0 = performance.now();
      if (t0 >= end) return;
      try {
        await conn.put(`${run}/c${w}/${seq}`, value, `${run}-c${w}`, seq, 30_000);
        const t1 = performance.now();
        if (t0 >= warmEnd) {
          lat.push(t1 - t0);
          ops++;
          measuredFrom = Math.min(measuredFrom, t0);
          measuredTo = Math.max(measuredTo, t1);
        }
      } catch {
        if (t0 >= warmEnd) errors++;
      }
    }
  }));
  for (const c of conns) c.close();
  lat.sort((a, b) => a - b);
  const secs = (measuredTo - measuredFrom) / 1000;
  return { system: target.name, clients, conns: conns.length, ops, errors, seconds: secs, opsPerSec: ops / secs, p50ms: pct(lat, 0.5), p99ms: pct(lat, 0.99) };
}

/** Kill -9 the leader; time until a write through a survivor commits. */
async function failover(target: Target, trial: number): Promise<{ leader: string; ms: number }> {
  const leader = await target.leader();
  const survivors = target.ids.filter((id) => id !== leader);
  const conns = survivors.map((id) => target.connect(id));
  // One write first so the connections are established before the clock starts.
  await (conns[0] as Conn).put(`failover/${trial}/warm`, Buffer.alloc(VALUE_BYTES), `failover-${trial}`, 1, 30_000);
  await target.kill(leader);
  const t0 = performance.now();
  // Overlapping attempts, a new one every 25 ms on alternating survivors, each with a long
  // deadline: the first to commit ends the measurement, so no attempt's timeout sets the result.
  let ms = NaN;
  let seq = 2;
  const inflight: Promise<void>[] = [];
  while (Number.isNaN(ms)) {
    if (performance.now() - t0 > FAILOVER_WAIT_MS) {
      await Promise.all(inflight);
      for (const c of conns) c.close();
      throw new Error(`${target.name} failover ${trial + 1}: no write committed through ${survivors.join(', ')} within ${FAILOVER_WAIT_MS} ms of killing ${leader}`);
    }
    const s = seq++;
    const c = conns[s % conns.length] as Conn;
    inflight.push(c.put(`failover/${trial}/${s}`, Buffer.alloc(VALUE_BYTES), `failover-${trial}-${s}`, 1, 10_000).then(
      () => {
        if (Number.isNaN(ms)) ms = performance.now() - t0;
      },
      () => {},
    ));
    await new Promise((r) => setTimeout(r, 25));
  }
  await Promise.all(inflight);
  for (const c of conns) c.close();
  target.start(leader);
  await target.leader(); // bounded: throws after 60 s without one leader all nodes follow
  return { leader, ms };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'custody-bench-'));
  const certs = join(dir, 'certs');
  ensureCa(certs, 'bench CA');
  issue(certs, 'client', 'bench');
  const tls = loadTls({ ca: join(certs, 'ca.crt'), cert: join(certs, 'bench.crt'), key: join(certs, 'bench.key') });
  const targets = [await custodyTarget(join(dir), tls), await etcdTarget(join(dir, 'etcd'), tls)];
  const results: LoadResult[] = [];
  const failovers: Record<string, number[]> = {};
  say(`machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}; ${SECONDS}s per point after 1s warm-up; ${VALUE_BYTES}-byte values; up to ${CONNS_MAX} connections`);
  try {
    for (const target of targets) {
      for (const id of target.ids) target.start(id);
      let leader = await target.leader();
      say(`${target.name}: leader ${leader}`);
      for (const c of CONCURRENCY) {
        const r = await load(target, leader, c, SECONDS, `${target.name.replace(/\W/g, '')}-${c}`);
        results.push(r);
        say(`${r.system.padEnd(9)} clients ${String(c).padStart(4)}: ${r.opsPerSec.toFixed(0).padStart(6)} writes/s  p50 ${r.p50ms.toFixed(1).padStart(7)} ms  p99 ${r.p99ms.toFixed(1).padStart(7)} ms  (${r.ops} ok, ${r.errors} errors)`);
      }
      failovers[target.name] = [];
      for (let i = 0; i < TRIALS; i++) {
        const f = await failover(target, i);
        (failovers[target.name] as number[]).push(f.ms);
        say(`${target.name.padEnd(9)} failover ${i + 1}: killed ${f.leader}, first committed write after ${f.ms.toFixed(0)} ms`);
        leader = await target.leader();
      }
      await target.stopAll();
    }
  } finally {
    for (const t of targets) await t.stopAll();
  }

  say('\n| concurrency | custody writes/s | etcd writes/s | ratio | custody p50 / p99 ms | etcd p50 / p99 ms |');
  say('| ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const c of CONCURRENCY) {
    const a = results.find((r) => r.system === 'custody' && r.clients === c);
    const b = results.find((r) => r.system !== 'custody' && r.clients === c);
    if (!a || !b) continue;
    say(`| ${c} | ${a.opsPerSec.toFixed(0)} | ${b.opsPerSec.toFixed(0)} | ${(a.opsPerSec / b.opsPerSec).toFixed(2)} | ${a.p50ms.toFixed(1)} / ${a.p99ms.toFixed(1)} | ${b.p50ms.toFixed(1)} / ${b.p99ms.toFixed(1)} |`);
  }
  for (const [name, xs] of Object.entries(failovers)) {
    const s = [...xs].sort((a, b) => a - b);
    say(`failover ${name}: min ${s[0]?.toFixed(0)} ms, median ${pct(s, 0.5).toFixed(0)} ms, max ${s[s.length - 1]?.toFixed(0)} ms over ${s.length} kills (minimum election timeout 1000 ms)`);
  }
  const out = args.get('out');
  if (out) writeFileSync(out, JSON.stringify({ results, failovers }, null, 2));
  rmSync(dir, { recursive: true, force: true });
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
