/**
 * The lifecycle inside a `custody node` daemon: participant, coordinator, admin API and the
 * node-to-node lifecycle service, wired to the daemon's driver and its LedgerApp.
 *
 * Configured by a file beside the node's config, `<config>.lifecycle.yaml` (n1.yaml ->
 * n1.lifecycle.yaml); without it the daemon runs without the lifecycle. Relative paths resolve
 * against the file's folder.
 *
 *   admin: 127.0.0.1:7201              # this node's admin API and lifecycle peer service (mTLS)
 *   peers:                             # every node's admin address, this one included, and those
 *                                      # that may be added later (the address book; membership
 *                                      # comes from the genesis and decisions)
 *     n1: 127.0.0.1:7201
 *     n2: 127.0.0.1:7202
 *     n3: 127.0.0.1:7203
 *   identity: secrets/n1.identity      # hex Ed25519 seed: the key of this node's statements
 *   kernel: { socket: n1/kernel/run/kernel.sock }   # this node's kernel process; or `kernel: twin`
 *   genesis: genesis.hex               # the ClusterGenesis event (hex of its canonical CBOR),
 *                                      # identical on every node; the leader proposes it once
 *   remoteTimeoutMs: 5000              # optional: how long a peer may take per request
 *   signingSetWaitMs: 60000            # optional: how long a signing set fixed in the ledger
 *                                      # waits for a silent member before the act aborts
 *   backupDir: backups/n1              # optional: where this node writes the backups of its key
 *                                      # shares (backups.ts); default beside the data folder,
 *                                      # <dataDir>.share-backups (data/n1 -> data/n1.share-backups):
 *                                      # not inside it, which LevelDB owns and a restore needs empty
 *   auditCalls: true                   # optional: record every admin call in the log (OperatorCall,
 *                                      # node/admin/audit.ts); false serves calls unrecorded
 *   witnesses:                         # optional: C2SP tlog-witnesses this node pushes each
 *     - url: http://127.0.0.1:7380     # certified checkpoint to (node/witness/pusher.ts); vkey: the
 *       vkey: witness.example/w1+...   # witness's verifier key (custody witness keygen wrote <key>.vkey)
 */
import { readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { parse } from 'yaml';
import { CustodyError } from '../../proto/errors.js';
import { lifecycle as limits } from '../../proto/limits.js';
import type { Driver } from '../../raft/driver.js';
import { fromHex } from '../../ledger/encoding.js';
import { decodeEvent, eventCid, type LedgerEvent } from '../../ledger/events.js';
import type { LedgerApp } from '../ledger-app.js';
import type { TlsMaterial } from '../tls.js';
import { AdminBackend, evidenceLogOf } from '../admin/backend.js';
import { AdminServer } from '../admin/server.js';
import { AuditRecorder, type CallFacts } from '../admin/audit.js';
import { snapshotFileBytes } from '../backup/source.js';
import type { SnapshotCertifier } from '../snapshot-cert.js';
import { DriverLedgerPort } from './driver-ledger.js';
import { LifecycleParticipant } from './participant.js';
import { Coordinator } from './coordinator.js';
import { ClockTicker } from './clock.js';
import { ShareBackups } from './backups.js';
import { ShareRepairs } from './repair.js';
import { TrustPolicySigner } from './trust-chain.js';
import { importSealedShare, kernelStatusView } from './share-import.js';
import { KernelTwin } from './kernel-twin.js';
import { KernelLink, type KernelLinkStatus } from './kernel-link.js';
import { type BlobStore, PeerClient, PeerExchange, RemoteClockReader, RemoteCosigner, RemoteParticipant, peerHandlers } from './peer.js';
import { signClockReading } from '../../ledger/clock-reading.js';
import { Checkpointer } from '../checkpoints.js';
import { parseWitnessEndpoints, WitnessPusher, type WitnessEndpoint } from '../witness/pusher.js';
import type { KernelPort, ParticipantPort } from './ports.js';
import type { CatalogMetrics } from '../metrics-catalog.js';
import { countedKernel } from '../kernel-metrics.js';
import type { MembershipReconciler } from '../membership/reconciler.js';
import { membershipHandlers } from '../membership/service.js';

export interface LifecycleConfig {
  readonly admin: string;
  readonly peers: ReadonlyMap<string, string>;
  readonly identitySecretKey: Uint8Array;
  readonly kernel: { readonly socket: string } | 'twin';
  /** The genesis as installed (canonical CBOR) and decoded. */
  readonly genesis: Uint8Array;
  readonly genesisEvent: Extract<LedgerEvent, { type: 'ClusterGenesis' }>;
  readonly remoteTimeoutMs: number;
  readonly signingSetWaitMs: number;
  /** Where share backups are written (absolute); null: `<dataDir>.share-backups`. */
  readonly backupDir: string | null;
  /** The witnesses each certified checkpoint is pushed to (empty: none). */
  readonly witnesses?: readonly WitnessEndpoint[];
  /** Whether admin calls are recorded in the log (default true). */
  readonly auditCalls?: boolean;
}

/** Where a node writes its share backups without `backupDir`: beside its data folder, never inside it. */
export function defaultBackupDir(dataDir: string): string {
  return join(dirname(resolve(dataDir)), `${basename(resolve(dataDir))}.share-backups`);
}

export function lifecycleConfigPath(nodeConfigFile: string): string {
  return nodeConfigFile.replace(/\.ya?ml$/, '') + '.lifecycle.yaml';
}

export function loadLifecycleConfig(file: string): LifecycleConfig {
  const bad = (f: string, why: string): CustodyError => new CustodyError('CONFIG_INVALID', `${file}: ${f}: ${why}`);
  let d: Record<string, unknown>;
  try {
    d = parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw bad('(file)', (e as Error).message);
  }
  const base = dirname(resolve(file));
  const s = (v: unknown, f: string): string => {
    if (typeof v !== 'string' || v.length === 0) throw bad(f, 'required, a non-empty string');
    return v;
  };
  if (typeof d.peers !== 'object' || d.peers === null) throw bad('peers', 'required: node id -> admin address');
  const peers = new Map(Object.entries(d.peers as Record<string, unknown>).map(([k, v]) => [k, s(v, `peers.${k}`)] as const));
  const seedHex = readFileSync(resolve(base, s(d.identity, 'identity')), 'utf8').trim();
  if (!/^[0-9a-f]{64}$/.test(seedHex)) throw bad('identity', 'the file must hold a 32-byte hex seed');
  const kernel = d.kernel === 'twin' ? 'twin' as const : { socket: resolve(base, s((d.kernel as { socket?: unknown } | undefined)?.socket, 'kernel.socket')) };
  const genesisHex = readFileSync(resolve(base, s(d.genesis, 'genesis')), 'utf8').trim();
  const ms = (f: 'remoteTimeoutMs' | 'signingSetWaitMs', dflt: number, min: number, max: number): number => {
    const v = d[f] === undefined ? dflt : Number(d[f]);
    if (!Number.isInteger(v) || v < min || v > max) throw bad(f, `an integer in [${min}, ${max}]`);
    return v;
  };
  const remoteTimeoutMs = ms('remoteTimeoutMs', limits.remoteTimeoutMsDefault, limits.remoteTimeoutMsMin, limits.remoteTimeoutMsMax);
  const signingSetWaitMs = ms('signingSetWaitMs', limits.signingSetWaitMsDefault, limits.signingSetWaitMsMin, limits.signingSetWaitMsMax);
  const genesis = fromHex(genesisHex);
  let genesisEvent: LedgerEvent;
  try {
    genesisEvent = decodeEvent(genesis);
  } catch (e) {
    throw bad('genesis', (e as Error).message);
  }
  if (genesisEvent.type !== 'ClusterGenesis') throw bad('genesis', `a ${genesisEvent.type}, not a ClusterGenesis`);
  const backupDir = d.backupDir === undefined ? null : resolve(base, s(d.backupDir, 'backupDir'));
  const witnesses = parseWitnessEndpoints(d.witnesses, bad);
  if (d.auditCalls !== undefined && typeof d.auditCalls !== 'boolean') throw bad('auditCalls', 'true or false');
  const auditCalls = d.auditCalls !== false;
  return { admin: s(d.admin, 'admin'), peers, identitySecretKey: fromHex(seedHex), kernel, genesis, genesisEvent, remoteTimeoutMs, signingSetWaitMs, backupDir, witnesses, auditCalls };
}

export interface NodeLifecycle {
  readonly adminPort: number;
  /** The newest certified checkpoint note with the cosignatures of the witnesses that cosigned it (null: none). */
  witnessed(): string | null;
  /** The link to the kernel process (null with a twin kernel): connected, reconnections, last error. */
  kernel(): KernelLinkStatus | null;
  stop(): Promise<void>;
}

/** Starts the lifecycle of a daemon configured by `cfg` (loadLifecycleConfig). `app` must be the driver's application. */
export async function startNodeLifecycle(o: { nodeId: string; config: LifecycleConfig; driver: Driver; app: LedgerApp; tls: TlsMaterial; log: (l: string) => void; metrics?: CatalogMetrics; incarnation?: string; membership?: MembershipReconciler; blobStore?: BlobStore; snapshotCert?: SnapshotCertifier; dataDir?: string }): Promise<NodeLifecycle> {
  const cfg = o.config;
  const genesis = cfg.genesisEvent;
  const ledger = new DriverLedgerPort(o.nodeId, o.driver, o.app, o.config.identitySecretKey);
  let kernel: KernelPort;
  let link: KernelLink | null = null;
  if (cfg.kernel === 'twin') kernel = await KernelTwin.open(o.nodeId, genesis.clusterId, eventCid(cfg.genesis), genesis.roster, genesis.nodes, genesis.policy);
  else {
    link = await KernelLink.open(cfg.kernel.socket, o.log);
    kernel = o.metrics ? countedKernel(link, o.metrics) : link;
  }
  const peerClients = [...cfg.peers].filter(([id]) => id !== o.nodeId).map(([id, addr]) => new PeerClient(id, addr, o.tls, o.incarnation ?? ''));
  const exchange = new PeerExchange(o.nodeId, peerClients, o.log, o.blobStore);
  // Blobs whose ceremony, epoch or node ended leave the store (peer.ts); act entries change none of these.
  let pruning = false;
  const unprune = ledger.subscribe((_entry, result, state) => {
    if (pruning || state.cluster === null || (result.type !== null && result.type.startsWith('Act'))) return;
    pruning = true;
    const c = state.cluster;
    void exchange.prune(c).catch((e: unknown) => o.log(`exchange: prune failed: ${(e as Error).message}`)).finally(() => (pruning = false));
  });
  // Cosigned checkpoints of this node's replica: what its kernel's sign requests rest on.
  const cosigners = peerClients.map((p) => new RemoteCosigner(p.nodeId, p));
  // Each certified checkpoint goes to the configured witnesses, the proofs from this node's tree.
  let consistencyOf: (size1: number, size2: number) => Promise<Uint8Array[]> = () => Promise.reject(new CustodyError('INTERNAL', 'no checkpointer yet'));
  const pusher = (cfg.witnesses ?? []).length === 0 ? null : new WitnessPusher({
    witnesses: cfg.witnesses ?? [], consistency: (a, b) => consistencyOf(a, b), log: o.log,
    ...(o.dataDir !== undefined ? { evidenceFile: `${resolve(o.dataDir)}.witnessed.note` } : {}),
    onFailure: (witness, reason) => o.metrics?.witnessPushFailures.inc({ witness, reason }),
    onCosigned: (witness, size) => o.metrics?.witnessCosignedSize.set({ witness }, size),
  });
  const checkpoints = new Checkpointer({
    nodeId: o.nodeId, identitySecretKey: cfg.identitySecretKey, app: o.app, peers: () => cosigners, log: o.log, incarnation: o.incarnation ?? '',
    onDivergence: (peer) => o.metrics?.checkpointDivergence.inc({ peer }),
    ...(pusher !== null ? { onCertified: (note: string) => pusher.push(note) } : {}),
  });
  consistencyOf = (a, b) => checkpoints.consistency(a, b);
  // Signed readings of this node's clock (ledger/clock-reading.ts): for its peers' catch-up ticks and its own.
  const ownReading = () => signClockReading({ clusterId: genesis.clusterId, nodeId: o.nodeId, clockMs: Date.now() }, cfg.identitySecretKey);
  const clockReaders = peerClients.map((p) => new RemoteClockReader(p.nodeId, p, genesis.clusterId));
  // Certified Raft snapshots (node/snapshot-cert.ts): the same peers cosign this node's snapshots.
  o.snapshotCert?.usePeers(() => cosigners);
  const participant = new LifecycleParticipant({ nodeId: o.nodeId, identitySecretKey: cfg.identitySecretKey, ledger, kernel, exchange, log: o.log, certificate: (indexes) => checkpoints.certificate(indexes), consistency: (size1, size2) => checkpoints.consistency(size1, size2) });
  if (link !== null) {
    const m = o.metrics;
    link.onChange((up) => {
      m?.kernelDisconnected.set(up ? 0 : 1);
      if (up) {
        m?.kernelReconnects.inc();
        participant.kernelReconnected();
      }
    });
  }
  const ports = new Map<string, ParticipantPort>([[o.nodeId, participant], ...peerClients.map((p) => [p.nodeId, new RemoteParticipant(p.nodeId, p, cfg.remoteTimeoutMs)] as const)]);
  const coordinator = new Coordinator({ nodeId: o.nodeId, ledger, exchange, participants: ports, localPublicPackage: (k, e) => participant.ownPublicPackage(k, e), log: o.log, remoteTimeoutMs: cfg.remoteTimeoutMs, signingSetWaitMs: cfg.signingSetWaitMs });
  const backend = new AdminBackend(o.nodeId, ledger, coordinator);
  backend.useEvidenceLog(evidenceLogOf(checkpoints, o.app, genesis.nodes, pusher === null ? undefined : (note) => pusher.cosign(note)));
  // Every operator call on the admin port is recorded in the log (node/admin/audit.ts).
  const recorder = new AuditRecorder({
    nodeId: o.nodeId, log: o.log, propose: (e) => ledger.propose(e), onFailure: () => o.metrics?.auditRecordFailures.inc(),
    passport: () => {
      const me = ledger.state().cluster?.nodes[o.nodeId];
      return me === undefined || me.status === 'removed' ? null : me.passport;
    },
  });
  const server = new AdminServer({
    listen: cfg.admin, tls: o.tls, backend, log: o.log,
    audit: {
      ...(cfg.auditCalls !== false ? { record: (f: CallFacts) => recorder.record(f) } : {}),
      source: {
        clusterId: () => o.app.state.cluster?.clusterId ?? null,
        size: () => o.app.tree.size ?? 0,
        leaves: (from, to) => o.app.tree.leaves(from, to),
        subscribe: (l) => o.app.subscribe(() => l()),
      },
    },
    kernel: {
      status: () => kernelStatusView(participant.queuedKernel),
      importShare: (file) => importSealedShare({ nodeId: o.nodeId, ledger, kernel: participant.queuedKernel, exchange, log: o.log }, file),
    },
    peer: peerHandlers({ participant, exchange, isNode: (id) => cfg.peers.has(id), incarnation: o.incarnation ?? '', cosign: (size) => checkpoints.cosign(size), consistency: (size1, size2) => checkpoints.ownConsistency(size1, size2), clockReading: ownReading, ...(o.snapshotCert ? { cosignSnapshot: (index: number) => (o.snapshotCert as SnapshotCertifier).cosign(index) } : {}) }),
    snapshot: () => snapshotFileBytes({ nodeId: o.nodeId, driver: o.driver, app: o.app, incarnation: o.incarnation ?? '' }),
    ...(o.membership ? { membership: membershipHandlers(o.membership, o.driver) } : {}),
  });
  const adminPort = await server.start();
  await participant.start();
  coordinator.start();
  const ticker = new ClockTicker({ nodeId: o.nodeId, ledger, log: o.log, witnesses: { own: ownReading, peers: () => clockReaders } });
  ticker.start();
  const backupDir = cfg.backupDir ?? (o.dataDir === undefined ? null : defaultBackupDir(o.dataDir));
  const backups = backupDir === null ? null : new ShareBackups({ nodeId: o.nodeId, ledger, kernel: participant.queuedKernel, dir: backupDir, log: o.log });
  if (backups === null) o.log(`node ${o.nodeId}: no backupDir and no data folder: this node writes no share backups`);
  backups?.start();
  const repairs = new ShareRepairs({ nodeId: o.nodeId, identitySecretKey: cfg.identitySecretKey, ledger, kernel: participant.queuedKernel, exchange, log: o.log });
  repairs.start();
  const trustSigner = new TrustPolicySigner({ nodeId: o.nodeId, identitySecretKey: cfg.identitySecretKey, ledger, log: o.log });
  trustSigner.start();
  // The genesis every node was installed with: the leader proposes it until the ledger has one.
  let stopped = false;
  const genesisTimer = setInterval(() => {
    if (stopped || ledger.state().cluster !== null) {
      clearInterval(genesisTimer);
      return;
    }
    if (ledger.isLeader()) void ledger.propose(genesis).catch(() => undefined);
  }, 500);
  o.log(`node ${o.nodeId}: lifecycle serving admin API on ${cfg.admin} (port ${adminPort}), kernel ${cfg.kernel === 'twin' ? 'twin' : cfg.kernel.socket}`);
  return {
    adminPort,
    witnessed: () => pusher?.witnessed() ?? null,
    kernel: () => link?.state() ?? null,
    async stop() {
      stopped = true;
      clearInterval(genesisTimer);
      coordinator.stop();
      checkpoints.stop();
      await pusher?.settled();
      ticker.stop();
      backups?.stop();
      repairs.stop();
      trustSigner.stop();
      unprune();
      await participant.stop();
      exchange.close();
      await server.stop(2_000);
      for (const p of peerClients) p.close();
      link?.close();
    },
  };
}
