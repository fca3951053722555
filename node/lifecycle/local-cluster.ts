/**
 * A whole cluster on one machine for the demo, tests and benchmarks: N real Raft drivers (real
 * core, real LevelDB storage, the ledger as their application) in this process, connected by an
 * in-memory transport, and N real secret-kernel processes (`node dist/kernel/bin.js`) on Unix
 * sockets, each driven by its node's participant. What differs from N daemons: the peer network
 * is an in-memory queue instead of gRPC over mTLS, and participants reach each other by direct
 * calls and a shared in-memory exchange instead of node-to-node RPC. The kernels, the ledger,
 * Raft, the storage and every check are the production code.
 */
import { SnapshotCertifier } from '../snapshot-cert.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ed25519 } from '@noble/curves/ed25519.js';
import { CustodyError } from '../../proto/errors.js';
import { RaftCore } from '../../raft/core/raft.js';
import { governedConfGuard } from '../membership/guard.js';
import { SeededRng } from '../../raft/core/rng.js';
import type { ConfState, Message, NodeId } from '../../raft/core/types.js';
import { Driver } from '../../raft/driver.js';
import { LevelStorage } from '../../raft/storage/leveldb.js';
import { systemClock, type Transport } from '../../raft/transport.js';
import { KernelClient } from '../../kernel/client.js';
import { fromHex, toHex } from '../../ledger/encoding.js';
import { makeApproverKey, type ApproverKey, type ApproverRoster } from '../../ledger/decision.js';
import type { PolicyDocument } from '../../ledger/policy-engine/types.js';
import { encodeDocument } from '../../ledger/policy-engine/yaml.js';
import { encodeEvent, eventCid, type LedgerEvent } from '../../ledger/events.js';
import { rosterToJson } from '../../kernel/authority.js';
import { LedgerApp } from '../ledger-app.js';
import { DriverLedgerPort } from './driver-ledger.js';
import { LifecycleParticipant } from './participant.js';
import { Coordinator, type CoordinatorPoint } from './coordinator.js';
import { MemoryExchange, type KernelPort, type ParticipantPort } from './ports.js';
import { KernelTwin } from './kernel-twin.js';
import type { ChronicleNote } from './coordinator.js';
import { AdminBackend, evidenceLogOf, type NotesSource } from '../admin/backend.js';
import { AdminServer } from '../admin/server.js';
import { ensureCa, issue } from '../certs.js';
import { loadTls } from '../tls.js';
import { until as pollUntil } from '../probe.js';
import { Checkpointer } from '../checkpoints.js';
import { AuditRecorder, type CallFacts } from '../admin/audit.js';

export const KERNEL_BIN = fileURLToPath(new URL('../../kernel/bin.js', import.meta.url));

/** Delivers Raft messages asynchronously; a node in `cut` neither sends nor receives. */
export class Hub {
  readonly drivers = new Map<NodeId, Driver>();
  readonly cut = new Set<NodeId>();
  transport(id: NodeId): Transport {
    return {
      send: (msgs: readonly Message[]) => {
        for (const m of msgs) {
          if (this.cut.has(id) || this.cut.has(m.to)) continue;
          setImmediate(() => this.drivers.get(m.to)?.receive(m));
        }
      },
      reachable: (p) => !this.cut.has(p) && !this.cut.has(id),
    };
  }
}

export interface KernelProc {
  readonly proc: ChildProcess;
  readonly client: KernelClient;
  readonly exited: Promise<void>;
}

/** A node's kernel: a real kernel process, or the in-memory twin (kernel-twin.ts). */
export interface KernelHandle {
  readonly kind: 'process' | 'twin';
  readonly port: KernelPort;
  /** The kernel's process id, for a process. */
  readonly pid?: number;
  /** SIGKILL for a process. */
  crash(): Promise<void>;
  stop(): Promise<void>;
}

function processHandle(k: KernelProc): KernelHandle {
  return {
    kind: 'process',
    port: k.client,
    ...(k.proc.pid !== undefined ? { pid: k.proc.pid } : {}),
    async crash() {
      k.proc.kill('SIGKILL');
      k.client.close();
      await k.exited;
    },
    async stop() {
      k.client.close();
      if (k.proc.exitCode === null && k.proc.signalCode === null) {
        k.proc.kill('SIGTERM');
        await k.exited;
      }
    },
  };
}

const KERNEL_READY_MS = 60_000;

/** Starts a kernel process and waits for its readiness line (never a fixed sleep). */
export async function startKernelProcess(configPath: string, nodeId: string): Promise<KernelProc> {
  const proc = spawn(process.execPath, [KERNEL_BIN, '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()).length > 65536 && (stderr = stderr.slice(-32768)));
  const ready = await new Promise<{ socket: string }>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new CustodyError('REMOTE_TIMEOUT', `kernel ${nodeId} not ready in ${KERNEL_READY_MS} ms: ${stderr}`)), KERNEL_READY_MS);
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      try {
        resolve(JSON.parse(out.slice(0, nl)) as { socket: string });
      } catch (e) {
        reject(e as Error);
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new CustodyError('INTERNAL', `kernel ${nodeId} exited before ready: ${stderr}`));
    });
  });
  const client = await KernelClient.connect(ready.socket);
  return { proc, client, exited };
}

export interface LocalNode {
  readonly id: string;
  readonly dir: string;
  readonly identitySecretKey: Uint8Array;
  storage: LevelStorage;
  app: LedgerApp;
  driver: Driver;
  ledger: DriverLedgerPort;
  kernel: KernelHandle;
  participant: LifecycleParticipant;
  coordinator: Coordinator;
  admin: AdminBackend;
  adminServer: AdminServer | null;
  /** host:port of the admin API, when served. */
  adminAddress: string | null;
  /** False once crashed or stopped. */
  up: boolean;
  /** This node's cosigning and certificates (node/checkpoints.ts). */
  checkpoints: Checkpointer;
  readonly snapshotCert: SnapshotCertifier;
}

export interface LocalClusterOptions {
  readonly dir: string;
  readonly nodes?: number;
  readonly approvers?: number;
  readonly policy: PolicyDocument;
  readonly log?: (line: string) => void;
  readonly remoteTimeoutMs?: number;
  /** How long a coordinator asks the members of a fixed signing set before aborting the act. */
  readonly signingSetWaitMs?: number;
  readonly tickMs?: number;
  /** Wraps each node's participant as the coordinators see it (fault injection in tests). */
  readonly wrapParticipant?: (p: ParticipantPort) => ParticipantPort;
  readonly point?: (node: string, p: CoordinatorPoint, opId: string) => void | Promise<void>;
  /**
   * `process` (default): real kernel processes on Unix sockets. `twin`: the in-memory kernel twin
   * (same cryptography and refusals, no durability), for hosts without the kernel build.
   */
  readonly kernels?: 'process' | 'twin';
  /** Record every admin call in the log and serve the audit export (node/admin/audit.ts), as a daemon does. Default off. */
  readonly audit?: boolean;
  /** Serve each node's admin API on loopback with certificates from this CA directory. */
  readonly certsDir?: string;
}

export class LocalCluster {
  readonly hub = new Hub();
  readonly exchange = new MemoryExchange();
  readonly nodes: LocalNode[] = [];
  readonly approvers: ApproverKey[];
  /** Custodian keys (roster role `custodian`): cara signs the acts' requests (`custodians/<id>.key`). */
  readonly custodians: ApproverKey[];
  readonly roster: ApproverRoster;
  readonly clusterId: string;
  readonly genesisEvent: Extract<LedgerEvent, { type: 'ClusterGenesis' }>;
  private readonly ports = new Map<string, ParticipantPort>();
  /**
   * Notes of every coordinator in this process: whichever node leads writes them, and the admin
   * API of any node shows them (a daemon shows its own coordinator's).
   */
  readonly notes: NotesSource = {
    notesOf: (opId: string): readonly ChronicleNote[] => this.nodes.flatMap((n) => [...n.coordinator.notesOf(opId)]).sort((a, b) => a.atMs - b.atMs),
    onNote: (l: (n: ChronicleNote) => void): (() => void) => {
      const unsubs = this.nodes.map((n) => n.coordinator.onNote(l));
      return () => unsubs.forEach((u) => u());
    },
  };

  private constructor(readonly o: LocalClusterOptions) {
    const n = o.nodes ?? 3;
    const m = o.approvers ?? 3;
    this.clusterId = `cluster-${randomBytes(4).toString('hex')}`;
    this.approvers = Array.from({ length: m }, (_, i) => makeApproverKey(`approver-${i + 1}`));
    // Two of three governors decide; the last approver also holds the security role, so one
    // signature can freeze the cluster in an emergency (ledger/decision.ts quorumFor).
    this.custodians = [makeApproverKey('cara')];
    this.roster = {
      approvers: [
        ...this.approvers.map((a, i) => ({ id: a.id, publicKey: a.publicKey, roles: i === m - 1 ? ['governor', 'security'] as const : ['governor'] as const })),
        ...this.custodians.map((k) => ({ id: k.id, publicKey: k.publicKey, roles: ['custodian'] as const })),
      ],
      quorum: { threshold: 2, freezeThreshold: 1 },
    };
    const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
    const seeds = ids.map(() => randomBytes(32));
    this.genesisEvent = {
      type: 'ClusterGenesis', clusterId: this.clusterId,
      nodes: ids.map((id, i) => ({ id, identityKey: ed25519.getPublicKey(seeds[i] as Uint8Array), passport: `${id}-p1` })),
      roster: this.roster, policy: o.policy,
    };
    this.seeds = new Map(ids.map((id, i) => [id, seeds[i] as Uint8Array]));
  }

  private readonly seeds: Map<string, Uint8Array>;

  get log(): (line: string) => void {
    return this.o.log ?? (() => undefined);
  }

  /** Creates the directories, keys and kernel configs, starts kernels and drivers. */
  static async start(o: LocalClusterOptions): Promise<LocalCluster> {
    const c = new LocalCluster(o);
    try {
      await c.startAll();
    } catch (e) {
      await c.close();
      throw e;
    }
    return c;
  }

  private async startAll(): Promise<void> {
    const genesisCid = toHex(eventCid(encodeEvent(this.genesisEvent)));
    const ids = [...this.seeds.keys()];
    const conf: ConfState = { voters: ids, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
    mkdirSync(join(this.o.dir, 'approvers'), { recursive: true, mode: 0o700 });
    for (const a of this.approvers) {
      writeFileSync(join(this.o.dir, 'approvers', `${a.id}.key`), JSON.stringify({ id: a.id, secretKey: toHex(a.secretKey), publicKey: toHex(a.publicKey) }, null, 2) + '\n', { mode: 0o600 });
    }
    mkdirSync(join(this.o.dir, 'custodians'), { recursive: true, mode: 0o700 });
    for (const k of this.custodians) {
      writeFileSync(join(this.o.dir, 'custodians', `${k.id}.key`), JSON.stringify({ id: k.id, secretKey: toHex(k.secretKey), publicKey: toHex(k.publicKey) }, null, 2) + '\n', { mode: 0o600 });
    }
    const twin = this.o.kernels === 'twin';
    const kernels: KernelHandle[] = await Promise.all(ids.map(async (id): Promise<KernelHandle> => {
      const dir = join(this.o.dir, 'nodes', id);
      mkdirSync(join(dir, 'kernel'), { recursive: true, mode: 0o700 });
      writeFileSync(join(dir, 'kernel', 'kernel.key'), randomBytes(32).toString('hex'), { mode: 0o600 });
      writeFileSync(join(dir, 'identity.key'), toHex(this.seeds.get(id) as Uint8Array), { mode: 0o600 });
      const cfg = {
        nodeId: id, socketPath: join(dir, 'kernel', 'run', 'kernel.sock'), storeDir: join(dir, 'kernel', 'store'), profile: 'software',
        software: { keyFile: join(dir, 'kernel', 'kernel.key') },
        genesis: { clusterId: this.clusterId, genesisCid, governanceEpoch: 0, roster: rosterToJson(this.roster), nodes: this.genesisEvent.nodes.map((n) => ({ id: n.id, identityKey: toHex(n.identityKey) })), policy: toHex(encodeDocument(this.genesisEvent.policy)) },
      };
      const path = join(dir, 'kernel', 'kernel.json');
      writeFileSync(path, JSON.stringify(cfg, null, 2) + '\n');
      if (twin) {
        const k = await KernelTwin.open(id, this.clusterId, fromHex(genesisCid), this.roster, this.genesisEvent.nodes, this.genesisEvent.policy);
        return { kind: 'twin', port: k, crash: async () => undefined, stop: async () => undefined };
      }
      return processHandle(await startKernelProcess(path, id));
    }));
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as string;
      const dir = join(this.o.dir, 'nodes', id);
      const storage = await LevelStorage.open({ dir: join(dir, 'raft'), bootstrapConf: conf, recoveryHint: `remove ${dir} and restart the demo` });
      const app = new LedgerApp();
      const tickMs = this.o.tickMs ?? 50;
      // Certified snapshots over the in-process network (node/snapshot-cert.ts): the nodes that are up cosign.
      const snapshotCert = new SnapshotCertifier({
        nodeId: id, identitySecretKey: this.seeds.get(id) as Uint8Array, app, stored: () => storage.snapshot(), log: this.log,
        anchor: { clusterId: this.clusterId, voters: this.genesisEvent.nodes.map((n) => ({ id: n.id, identityKey: n.identityKey })) },
        peers: () => this.nodes.filter((n) => n.id !== id && n.up && !this.hub.cut.has(n.id)).map((n) => ({ nodeId: n.id, cosignSnapshot: async (index: number) => n.snapshotCert.cosign(index) })),
      });
      const driver = new Driver({
        id, storage, app, transport: this.hub.transport(id), clock: systemClock, newCore: (cfg) => new RaftCore(cfg),
        rng: new SeededRng(randomBytes(4).readUInt32BE(0)), tickMs, electionTicks: 10, heartbeatTicks: 1, preVote: true, checkQuorum: true,
        snapshotEveryEntries: 10_000, compactionKeepEntries: 1_000, confGuard: governedConfGuard(app, this.log), snapshotCert,
        onFatal: (e) => this.log(`${id}: driver stopped: ${(e as Error).stack ?? (e as Error).message}`),
      });
      this.hub.drivers.set(id, driver);
      const ledger = new DriverLedgerPort(id, driver, app, this.seeds.get(id) as Uint8Array);
      const kernel = kernels[i] as KernelHandle;
      // Cosigned checkpoints over the in-process network: the other nodes that are up answer.
      const checkpoints = new Checkpointer({
        nodeId: id, identitySecretKey: this.seeds.get(id) as Uint8Array, app, log: this.log,
        peers: () => this.nodes.filter((n) => n.id !== id && n.up && !this.hub.cut.has(n.id)).map((n) => ({ nodeId: n.id, cosign: (size: number) => n.checkpoints.cosign(size) })),
      });
      const participant = new LifecycleParticipant({ nodeId: id, identitySecretKey: this.seeds.get(id) as Uint8Array, ledger, kernel: kernel.port, exchange: this.exchange, log: this.log, certificate: (indexes) => checkpoints.certificate(indexes), consistency: (size1, size2) => checkpoints.consistency(size1, size2) });
      this.ports.set(id, this.o.wrapParticipant ? this.o.wrapParticipant(participant) : participant);
      const coordinator = new Coordinator({
        nodeId: id, ledger, exchange: this.exchange, participants: this.ports, localPublicPackage: (k, e) => participant.ownPublicPackage(k, e), log: this.log,
        ...(this.o.remoteTimeoutMs !== undefined ? { remoteTimeoutMs: this.o.remoteTimeoutMs } : {}),
        ...(this.o.signingSetWaitMs !== undefined ? { signingSetWaitMs: this.o.signingSetWaitMs } : {}),
        ...(this.o.point ? { point: (p: CoordinatorPoint, opId: string) => this.o.point?.(id, p, opId) } : {}),
      });
      const admin = new AdminBackend(id, ledger, this.notes);
      admin.useEvidenceLog(evidenceLogOf(checkpoints, app, this.genesisEvent.nodes));
      this.nodes.push({ id, dir, identitySecretKey: this.seeds.get(id) as Uint8Array, storage, app, driver, ledger, kernel, participant, coordinator, admin, adminServer: null, adminAddress: null, up: true, checkpoints, snapshotCert });
    }
    const recorders = new Map<string, AuditRecorder>();
    for (const n of this.nodes) {
      n.driver.start();
      await n.participant.start();
      n.coordinator.start();
      if (this.o.certsDir !== undefined) {
        ensureCa(this.o.certsDir);
        const files = issue(this.o.certsDir, 'node', n.id, ['127.0.0.1', 'localhost']);
        const audit = this.o.audit !== true ? undefined : {
          record: (f: CallFacts) => recorders.get(n.id)?.record(f),
          source: { clusterId: () => n.app.state.cluster?.clusterId ?? null, size: () => n.app.tree.size ?? 0, leaves: (a: number, b: number) => n.app.tree.leaves(a, b), subscribe: (l: () => void) => n.app.subscribe(() => l()) },
        };
        if (audit !== undefined) {
          recorders.set(n.id, new AuditRecorder({
            nodeId: n.id, log: this.log, propose: (e) => n.ledger.propose(e),
            passport: () => n.ledger.state().cluster?.nodes[n.id]?.passport ?? null,
          }));
        }
        n.adminServer = new AdminServer({ listen: '127.0.0.1:0', tls: loadTls({ ca: join(this.o.certsDir, 'ca.crt'), cert: files.cert, key: files.key }), backend: n.admin, log: this.log, ...(audit !== undefined ? { audit } : {}) });
        n.adminAddress = `127.0.0.1:${await n.adminServer.start()}`;
      }
    }
  }

  node(id: string): LocalNode {
    const n = this.nodes.find((x) => x.id === id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  leader(): LocalNode | undefined {
    return this.nodes.find((n) => n.up && n.driver.isLeader);
  }

  async waitLeader(timeoutMs = 30_000): Promise<LocalNode> {
    return until('a leader', () => this.leader(), timeoutMs);
  }

  /** ClusterGenesis, proposed through the leader. */
  async genesis(): Promise<void> {
    const l = await this.waitLeader();
    const v = await l.ledger.propose(this.genesisEvent);
    if (!v.ok) throw new CustodyError(v.reason ?? 'INTERNAL', v.detail);
  }

  /**
   * Crash a node: its kernel process gets SIGKILL, its driver and lifecycle stop at once and it
   * drops off the network. What it persisted stays on disk.
   */
  async crash(id: string): Promise<void> {
    const n = this.node(id);
    if (!n.up) return;
    n.up = false;
    this.hub.cut.add(id);
    n.coordinator.stop();
    n.checkpoints.stop();
    void n.participant.stop(); // a crash waits for nothing
    await n.adminServer?.stop(0);
    await n.kernel.crash();
    await n.driver.stop();
    this.hub.drivers.delete(id);
    await n.storage.close();
  }

  /**
   * Stops every node's consensus first and only then the kernels, so no node still applying the
   * log hands a decision to a kernel that has already gone.
   */
  async close(): Promise<void> {
    const up = this.nodes.filter((n) => n.up);
    for (const n of up) {
      n.up = false;
      n.coordinator.stop();
      n.checkpoints.stop();
      await n.participant.stop();
      await n.adminServer?.stop(1_000);
      await n.driver.stop().catch(() => undefined);
      this.hub.drivers.delete(n.id);
    }
    for (const n of up) {
      await n.kernel.stop();
      await n.storage.close().catch(() => undefined);
    }
  }
}

/** node/probe.ts `until`, polling every 20 ms: in-process clusters move fast. */
export function until<T>(what: string, f: () => T | null | undefined | false, timeoutMs = 60_000, stepMs = 20): Promise<T> {
  return pollUntil(what, f, timeoutMs, stepMs);
}
