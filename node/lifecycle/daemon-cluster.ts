/**
 * A cluster of `custody node` daemons and `custody kernel` processes on loopback, made from
 * scratch in a directory: certificates (cluster CA, node certificates), one identity key per node,
 * the genesis every node is installed with, and per node a node config, a lifecycle config
 * (`<config>.lifecycle.yaml`, node/lifecycle/node.ts) and a kernel config. Used by the demo and the
 * multi-process tests; every process is a child of the caller and is stopped by `stop()`. Spare
 * nodes (DaemonClusterOptions.spares) are in every address book but not in the genesis: they join
 * only through a NodeAdded decision.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { CustodyError } from '../../proto/errors.js';
import { fromHex, toHex } from '../../ledger/encoding.js';
import { makeApproverKey, type ApproverKey } from '../../ledger/decision.js';
import type { PolicyDocument } from '../../ledger/policy-engine/types.js';
import { encodeDocument } from '../../ledger/policy-engine/yaml.js';
import { encodeEvent, eventCid, type LedgerEvent } from '../../ledger/events.js';
import { rosterToJson } from '../../kernel/authority.js';
import { ensureCa, issue } from '../certs.js';
import { CLI_PATH } from '../cluster.js';
import { AdminClient } from '../admin/client.js';
import { startKernelProcess, type KernelProc } from './local-cluster.js';
import { until } from '../probe.js';

import { freePort } from '../probe.js';

export { freePort };

export interface DaemonNode {
  readonly id: string;
  readonly admin: string;
  daemon: ChildProcess | null;
  kernel: KernelProc | null;
}

/** Options of DaemonCluster.create beyond the node count. */
export interface DaemonClusterOptions {
  /** How long a peer may take per lifecycle request (node/lifecycle/node.ts); default 5 s. */
  readonly remoteTimeoutMs?: number;
  /**
   * Nodes made ready to join later (certificate, identity, configs, in every node's address
   * book) but not in the genesis: they become members only through a NodeAdded decision.
   */
  readonly spares?: number;
  /** Extra fields of each node's `raft:` config, e.g. `snapshotEveryEntries: 200`. */
  readonly raft?: string;
  /** Extra lines of each node's lifecycle config, e.g. `signingSetWaitMs: 5000` (`auditCalls: true` records admin calls; off by default here). */
  readonly lifecycle?: readonly string[];
}

export class DaemonCluster {
  readonly nodes: DaemonNode[] = [];
  readonly approvers: ApproverKey[];
  /** Custodian keys (roster role `custodian`): cara signs the acts' requests (`custodians/<id>.key`). */
  readonly custodians: ApproverKey[];
  readonly genesis: Extract<LedgerEvent, { type: 'ClusterGenesis' }>;
  readonly certs: string;
  /** Every node's Ed25519 identity public key, spares included (what a NodeAdded decision names). */
  readonly identityKeys = new Map<string, Uint8Array>();

  /** Where each node's kernel lives (`<kernelHome>/<id>-kernel`): this cluster's directory, or the one it was restored from. */
  private readonly kernelHome: string;

  /**
   * `base`: the cluster this one is a restored copy of (restoredFrom): same CA, approvers, node
   * identities, genesis and kernels; new ports, configs and data directories.
   */
  private constructor(readonly dir: string, ids: string[], policy: PolicyDocument, private readonly ports: number[], remoteTimeoutMs: number, members = ids.length, raftExtra = '', lifecycleExtra: readonly string[] = [], base: DaemonCluster | null = null) {
    this.certs = base?.certs ?? join(dir, 'certs');
    this.kernelHome = base?.kernelHome ?? dir;
    this.approvers = base?.approvers ?? [1, 2, 3].map((i) => makeApproverKey(`approver-${i}`));
    this.custodians = base?.custodians ?? [makeApproverKey('cara')];
    const seeds = base ? ids.map((id) => fromHex(readFileSync(join(base.dir, `${id}.identity`), 'utf8').trim())) : ids.map(() => randomBytes(32));
    ids.forEach((id, i) => this.identityKeys.set(id, ed25519.getPublicKey(seeds[i] as Uint8Array)));
    this.genesis = base?.genesis ?? {
      type: 'ClusterGenesis', clusterId: `cluster-${randomBytes(4).toString('hex')}`,
      nodes: ids.slice(0, members).map((id, i) => ({ id, identityKey: ed25519.getPublicKey(seeds[i] as Uint8Array), passport: `${id}-p1` })),
      // Two of three governors decide; approver-3 also holds the security role (one may freeze).
      // cara, the custodian, signs act requests; her key never counts toward a quorum.
      roster: {
        approvers: [
          ...this.approvers.map((a, i) => ({ id: a.id, publicKey: a.publicKey, roles: i === 2 ? ['governor', 'security'] as const : ['governor'] as const })),
          ...this.custodians.map((k) => ({ id: k.id, publicKey: k.publicKey, roles: ['custodian'] as const })),
        ],
        quorum: { threshold: 2, freezeThreshold: 1 },
      },
      policy,
    };
    ensureCa(this.certs);
    writeFileSync(join(dir, 'genesis.hex'), toHex(encodeEvent(this.genesis)));
    mkdirSync(join(dir, 'approvers'), { recursive: true, mode: 0o700 });
    for (const a of this.approvers) writeFileSync(join(dir, 'approvers', `${a.id}.key`), JSON.stringify({ id: a.id, secretKey: toHex(a.secretKey), publicKey: toHex(a.publicKey) }, null, 2) + '\n', { mode: 0o600 });
    mkdirSync(join(dir, 'custodians'), { recursive: true, mode: 0o700 });
    for (const k of this.custodians) writeFileSync(join(dir, 'custodians', `${k.id}.key`), JSON.stringify({ id: k.id, secretKey: toHex(k.secretKey), publicKey: toHex(k.publicKey) }, null, 2) + '\n', { mode: 0o600 });
    const addr = (i: number, k: number): string => `127.0.0.1:${ports[i * 3 + k]}`;
    ids.forEach((id, i) => {
      issue(this.certs, 'node', id, ['127.0.0.1', 'localhost']);
      writeFileSync(join(dir, `${id}.identity`), toHex(seeds[i] as Uint8Array), { mode: 0o600 });
      writeFileSync(join(dir, `${id}.yaml`), [
        `# Node ${id}: custody node --config ${id}.yaml`,
        `id: ${id}`, `dataDir: data/${id}`, `listen: ${addr(i, 0)}`, `http: ${addr(i, 1)}`,
        'peers:', ...ids.map((p, j) => `  ${p}: ${addr(j, 0)}`),
        `tls: { ca: ${join(this.certs, 'ca.crt')}, cert: ${join(this.certs, `${id}.crt`)}, key: ${join(this.certs, `${id}.key`)} }`,
        `raft: { tickMs: 50, electionTicks: 10, heartbeatTicks: 1${raftExtra ? `, ${raftExtra}` : ''} }`, '',
      ].join('\n'));
      writeFileSync(join(dir, `${id}.lifecycle.yaml`), [
        `# The lifecycle of node ${id} (node/lifecycle/node.ts)`,
        `admin: ${addr(i, 2)}`, 'peers:', ...ids.map((p, j) => `  ${p}: ${addr(j, 2)}`),
        `identity: ${id}.identity`, `kernel: { socket: ${join(this.kernelHome, `${id}-kernel`, 'run', 'kernel.sock')} }`, 'genesis: genesis.hex', `remoteTimeoutMs: ${remoteTimeoutMs}`,
        // Admin calls are recorded only when asked: each recorded call is an entry, which moves the
        // state root and height that these clusters' checks compare across a call.
        ...(lifecycleExtra.some((l) => l.startsWith('auditCalls:')) ? [] : ['auditCalls: false']), ...lifecycleExtra, '',
      ].join('\n'));
      this.nodes.push({ id, admin: addr(i, 2), daemon: null, kernel: null });
    });
  }

  /** `remoteTimeoutMs`: how long a peer may take per lifecycle request (node/lifecycle/node.ts). */
  static async create(dir: string, policy: PolicyDocument, n = 3, remoteTimeoutMs = 5_000, o: DaemonClusterOptions = {}): Promise<DaemonCluster> {
    const ids = Array.from({ length: n + (o.spares ?? 0) }, (_, i) => `n${i + 1}`);
    const ports = await Promise.all(ids.flatMap(() => [freePort(), freePort(), freePort()]));
    return new DaemonCluster(dir, ids, policy, ports, o.remoteTimeoutMs ?? remoteTimeoutMs, n, o.raft ?? '', o.lifecycle ?? []);
  }

  /** The genesis members (spares join later by decision). */
  get members(): DaemonNode[] {
    return this.nodes.filter((n) => this.genesis.nodes.some((g) => g.id === n.id));
  }

  /**
   * A second cluster in `dir` for a restore of `base`'s backup: the same nodes (CA, identities,
   * genesis, approvers and kernels, which follow the same governance chain) on new ports, with new
   * configs and empty data directories for `custody cluster restore --config dir` to seed.
   * Stop `base`'s daemons before starting these: the kernels serve one daemon each.
   */
  static async restoredFrom(base: DaemonCluster, dir: string, remoteTimeoutMs = 5_000): Promise<DaemonCluster> {
    const ids = base.nodes.map((n) => n.id);
    const ports = await Promise.all(ids.flatMap(() => [freePort(), freePort(), freePort()]));
    return new DaemonCluster(dir, ids, { ...base.genesis.policy }, ports, remoteTimeoutMs, base.members.length, '', [], base);
  }

  node(id: string): DaemonNode {
    const n = this.nodes.find((x) => x.id === id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  async startKernel(id: string): Promise<KernelProc> {
    const kdir = join(this.kernelHome, `${id}-kernel`);
    mkdirSync(kdir, { recursive: true, mode: 0o700 });
    if (!existsSync(join(kdir, 'kernel.key'))) writeFileSync(join(kdir, 'kernel.key'), randomBytes(32).toString('hex'), { mode: 0o600 });
    writeFileSync(join(kdir, 'kernel.json'), JSON.stringify({
      nodeId: id, socketPath: join(kdir, 'run', 'kernel.sock'), storeDir: join(kdir, 'store'), profile: 'software', software: { keyFile: join(kdir, 'kernel.key') },
      genesis: { clusterId: this.genesis.clusterId, genesisCid: toHex(eventCid(encodeEvent(this.genesis))), governanceEpoch: 0, roster: rosterToJson(this.genesis.roster), nodes: this.genesis.nodes.map((n) => ({ id: n.id, identityKey: toHex(n.identityKey) })), policy: toHex(encodeDocument(this.genesis.policy)) },
    }, null, 2) + '\n');
    const k = await startKernelProcess(join(kdir, 'kernel.json'), id);
    k.client.close(); // the daemon holds its own connection
    this.node(id).kernel = k;
    return k;
  }

  startDaemon(id: string, cli = CLI_PATH): ChildProcess {
    const p = spawn(process.execPath, [cli, 'node', '--config', join(this.dir, `${id}.yaml`)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const log = createWriteStream(join(this.dir, `${id}.log`), { flags: 'a' });
    p.stdout?.pipe(log);
    p.stderr?.pipe(log);
    this.node(id).daemon = p;
    return p;
  }

  /**
   * Starts every kernel, then every daemon, and waits until each serves the genesis, asking as
   * operator `probeAs` (an operator certificate in `certs`; any role may read).
   */
  async start(probeAs: string, cli = CLI_PATH, readyMs = 60_000): Promise<void> {
    for (const n of this.members) await this.startKernel(n.id);
    for (const n of this.members) this.startDaemon(n.id, cli);
    for (const n of this.members) {
      const c = this.client(n.id, probeAs);
      try {
        const d = n.daemon;
        const r = await until(`node ${n.id} serving the genesis`, async () => {
          if (d !== null && (d.exitCode !== null || d.signalCode !== null)) return 'exited';
          return (await c.status()).clusterId === this.genesis.clusterId ? 'serving' : null;
        }, readyMs);
        if (r === 'exited') throw new CustodyError('INTERNAL', `node ${n.id} exited (${d?.exitCode ?? d?.signalCode}); see ${join(this.dir, `${n.id}.log`)}`);
      } finally {
        c.close();
      }
    }
  }

  /** An admin client of node `id` as operator `as` (its certificate and key in `certs`). */
  client(id: string, as: string): AdminClient {
    return new AdminClient(this.node(id).admin, id, { ca: join(this.certs, 'ca.crt'), cert: join(this.certs, `${as}.crt`), key: join(this.certs, `${as}.key`) });
  }

  /** SIGKILL a node: its daemon and its kernel. */
  async kill(id: string): Promise<void> {
    const n = this.node(id);
    const waits: Promise<unknown>[] = [];
    if (n.daemon && n.daemon.exitCode === null && n.daemon.signalCode === null) {
      waits.push(new Promise((r) => n.daemon?.once('exit', r)));
      n.daemon.kill('SIGKILL');
    }
    if (n.kernel) {
      n.kernel.proc.kill('SIGKILL');
      waits.push(n.kernel.exited);
    }
    await Promise.all(waits);
  }

  async stop(): Promise<void> {
    for (const p of this.nodes.flatMap((n) => [n.daemon, n.kernel?.proc ?? null])) {
      if (p === null || p.exitCode !== null || p.signalCode !== null) continue;
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await exited;
    }
  }
}
