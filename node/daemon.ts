/**
 * One custody node: LevelDB storage, the Raft driver, the gRPC server (peers and clients), the
 * outbound peer transport, and the HTTP port for /metrics, /healthz, /readyz and /status.
 *
 * Lifecycle: start refuses on any problem before the node takes part in the cluster (invalid
 * config, fault switches, corrupt store, unusable TLS material, port in use). Stop (SIGTERM or
 * SIGINT) refuses new client work, lets in-flight batches finish, and closes the store so the next
 * start needs no recovery. A failed disk write stops the process at once: a node that cannot
 * persist must not go on answering (crash-only; restart recovers from the durable state).
 */
import { randomInt } from 'node:crypto';
import { createServer, type Server as HttpServer } from 'node:http';
import { CustodyError } from '../proto/errors.js';
import { ledger as ledgerLimits, node as nodeLimits } from '../proto/limits.js';
import { RaftCore } from '../raft/core/raft.js';
import { SeededRng } from '../raft/core/rng.js';
import type { ConfState } from '../raft/core/types.js';
import { Driver } from '../raft/driver.js';
import { LevelStorage } from '../raft/storage/leveldb.js';
import { systemClock } from '../raft/transport.js';
import { faultsSet, type NodeConfig } from './config.js';
import { KvApp } from './kv.js';
import { existsSync } from 'node:fs';
import { type ArchiveSource, LedgerApp, convertArchiveLayout, levelColdStore } from './ledger-app.js';
import { lifecycleConfigPath, loadLifecycleConfig, startNodeLifecycle, type LifecycleConfig } from './lifecycle/node.js';
import { DriverLedgerPort } from './lifecycle/driver-ledger.js';
import { levelBlobStore } from './lifecycle/peer.js';
import { decodeEvent } from '../ledger/events.js';
import { ledgerSource } from './splitbrain/ledger-source.js';
import { newBootId } from './splitbrain/exchange.js';
import { NodeGuard, WITNESS_KEY, storeHistory, type NodeIdentity } from './splitbrain/node-guard.js';
import { NodeMetrics } from './metrics.js';
import { registerCatalogMetrics } from './metrics-catalog.js';
import { countActTransitions, countRefusedEntries } from './kernel-metrics.js';
import { PeerTransport } from './peers.js';
import { governedConfGuard } from './membership/guard.js';
import { SnapshotCertifier } from './snapshot-cert.js';
import { startMembership } from './membership/start.js';
import { NodeServer } from './server.js';
import { loadTls } from './tls.js';
import { testFaultsFromEnv, testFaultsSet } from './test-faults.js';
import { INCARNATION_KEY, incarnationOf } from './backup/incarnation.js';

export interface RunningNode {
  readonly driver: Driver;
  readonly grpcPort: number;
  readonly httpPort: number;
  stop(): Promise<void>;
}

export function recoveryHint(configFile: string): string {
  return `stop this node, run \`custody node wipe --config ${configFile}\`, then start it again; it re-syncs from its peers (README "Recovering a node")`;
}

export interface StartOptions {
  /** Stop waiting for voters that have not given their rollback answer (node-guard.ts trustStore). */
  readonly trustStore?: boolean;
}

export async function startNode(cfg: NodeConfig, log: (line: string) => void, onFatal: (e: unknown) => void, opts: StartOptions = {}): Promise<RunningNode> {
  const faults = faultsSet(cfg.raft.faults);
  if (faults.length > 0) {
    throw new CustodyError('CONFIG_INVALID', `${cfg.file}: raft.faults: fault switches (${faults.join(', ')}) exist only for the simulator's checkers; a node refuses to start with any set`);
  }
  // Test-only switches come from the environment alone (node/test-faults.ts); never from the config.
  const testFaults = testFaultsFromEnv(process.env);
  if (testFaultsSet(testFaults).length > 0) log(`node ${cfg.id}: TEST FAULT SWITCHES ARMED (${testFaultsSet(testFaults).join(', ')}): this node plants bugs on purpose and must never hold real data`);
  const tls = loadTls(cfg.tls);
  if (tls.id !== cfg.id || tls.role !== 'node') {
    throw new CustodyError('CONFIG_INVALID', `${cfg.file}: tls.cert: the certificate names ${tls.id} (role ${tls.role ?? 'none'}), not node ${cfg.id}`);
  }
  // A ledger node (with the lifecycle) has `<config>.lifecycle.yaml`; read once, refused before the store opens.
  const lifecycleFile = lifecycleConfigPath(cfg.file);
  const lifecycleCfg = existsSync(lifecycleFile) ? loadLifecycleConfig(lifecycleFile) : null;
  // A ledger node starts from the genesis roster: a node added later by a NodeAdded decision is
  // not in it, so it waits as a non-voter until the leader adds it (node/membership/). `peers` is
  // then only the address book.
  const bootstrapConf: ConfState = { voters: lifecycleCfg ? lifecycleCfg.genesisEvent.nodes.map((n) => n.id).sort() : [...cfg.peers.keys()].sort(), learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
  const storage = await LevelStorage.open({ dir: cfg.dataDir, bootstrapConf, recoveryHint: recoveryHint(cfg.file) });
  const metrics = new NodeMetrics();
  // Ended acts go to the archive in this store (cold keys), so memory holds only acts in flight.
  // A snapshot counts archived acts this node may lack: it fetches them from its peers (the
  // leader first: it sent the snapshot, so it counts them all) over the peer transport.
  const archiveSource: ArchiveSource = {
    peers: () => {
      const leader = driverRef?.status().leader ?? null;
      const all = transportRef?.peerIds() ?? [];
      return leader !== null && all.includes(leader) ? [leader, ...all.filter((p) => p !== leader)] : all;
    },
    fetch: (peer, fromSeq, n) => (transportRef as PeerTransport).archiveRange(peer, fromSeq, n),
    pause: () => new Promise((res) => setTimeout(res, ledgerLimits.archiveFetchRetryMs)),
  };
  let transportRef: PeerTransport | null = null;
  if (lifecycleCfg) await convertArchiveLayout(levelColdStore(storage), log);
  const app = lifecycleCfg ? new LedgerApp({ cold: levelColdStore(storage), archiveSource, log }) : new KvApp();
  // This run of the process: peers keep what it says apart from what earlier runs said (rollback answers).
  const boot = newBootId();
  // A store seeded by `custody cluster restore` belongs to that restore's incarnation; peers of another are refused.
  const incarnation = incarnationOf(storage.appValue(INCARNATION_KEY));
  // Declared before the driver and guard exist: read lazily (at scrape time, when a stream comes up).
  let driverRef: Driver | null = null;
  let guardRef: NodeGuard | null = null;
  const transport = new PeerTransport(cfg.id, cfg.peers, tls, {
    ...metrics.transportHooks,
    reachability: (peer, up) => {
      metrics.transportHooks.reachability?.(peer, up);
      if (up) guardRef?.peerUp(peer); // ask for its rollback answer now, not at the next round
    },
  }, log, incarnation, boot);
  transportRef = transport;
  const catalog = registerCatalogMetrics(metrics.registry, {
    raft: () => (driverRef as Driver).status(),
    coreStats: () => (driverRef as Driver).coreStats(),
    ledger: ledgerSource(() => (app instanceof LedgerApp ? app.state : null)),
  });
  // The split-brain checks start from the configuration the store holds (its snapshot's here, the
  // driver's once it has replayed the log below), never the genesis, and follow every change.
  const storedConf = storage.initialState().conf;
  const guard = new NodeGuard({
    self: cfg.id,
    voters: [...storedConf.voters, ...storedConf.votersOutgoing],
    learners: [...storedConf.learners, ...storedConf.learnersNext],
    atStart: durableStateOf(storage),
    stored: storage.appValue(WITNESS_KEY),
    ...storeHistory((k) => storage.appValue(k)),
    trustStore: opts.trustStore === true,
    identity: lifecycleCfg && app instanceof LedgerApp ? nodeIdentity(lifecycleCfg, app) : null,
    metrics: catalog,
    log,
    boot,
  });
  guardRef = guard;
  const seed = randomInt(0, 2 ** 32);
  // A ledger node installs only snapshots a majority of its voters certified (node/snapshot-cert.ts);
  // until its ledger holds the cluster, it checks them against its pinned genesis roster.
  const snapshotCert = lifecycleCfg && app instanceof LedgerApp ? new SnapshotCertifier({
    nodeId: cfg.id, identitySecretKey: lifecycleCfg.identitySecretKey, app, stored: () => storage.snapshot(), log,
    anchor: { clusterId: lifecycleCfg.genesisEvent.clusterId, voters: lifecycleCfg.genesisEvent.nodes.map((n) => ({ id: n.id, identityKey: n.identityKey })) },
  }) : null;
  const driver = new Driver({
    id: cfg.id,
    storage,
    app,
    transport,
    clock: systemClock,
    newCore: (c) => new RaftCore(c),
    // Membership changes only from applied NodeAdded / NodeRemoved decisions (node/membership/guard.ts).
    ...(app instanceof LedgerApp ? { confGuard: governedConfGuard(app, log) } : {}),
    // Election jitter only needs to differ between nodes; seeding from the OS keeps the core
    // itself deterministic given the seed (logged for post-mortems).
    rng: new SeededRng(seed),
    tickMs: cfg.raft.tickMs,
    electionTicks: cfg.raft.electionTicks,
    heartbeatTicks: cfg.raft.heartbeatTicks,
    preVote: cfg.raft.preVote,
    checkQuorum: cfg.raft.checkQuorum,
    snapshotEveryEntries: cfg.raft.snapshotEveryEntries,
    compactionKeepEntries: cfg.raft.compactionKeepEntries,
    proposalsPerEntryMax: cfg.raft.proposalsPerEntryMax,
    metrics: metrics.driverHooks,
    guard,
    ...(testFaultsSet(testFaults).length > 0 ? { testFaults } : {}),
    ...(snapshotCert ? { snapshotCert } : {}),
    onFatal,
    log,
  });
  driverRef = driver;
  const server = new NodeServer({
    id: cfg.id, listen: cfg.listen, roster: new Set(cfg.peers.keys()), tls, driver, app: app instanceof KvApp ? app : null, metrics: metrics.serverHooks, log,
    onExchange: (peer, bytes) => guard.incoming(peer, bytes),
    incarnation,
    ...(app instanceof LedgerApp ? { archiveRange: (fromSeq: number, n: number) => app.archiveRange(fromSeq, n), ledgerState: () => app.state } : {}),
  });
  let grpcPort: number;
  try {
    grpcPort = await server.start();
  } catch (e) {
    await storage.close();
    throw e;
  }
  driver.start();
  // The configuration the driver loaded (the snapshot's and the changes applied since), before
  // any message or tick reaches the guard; then each round follows what the driver applies.
  guard.configure(driver.status().conf);
  metrics.attach(driver, transport.peerIds());
  transport.start();
  // Evidence this node proposes (equivocation, fencing reports) is signed with its identity key,
  // which only a lifecycle configuration holds: without one the node proposes no evidence.
  const evidencePort = app instanceof LedgerApp && lifecycleCfg ? new DriverLedgerPort(cfg.id, driver, app, lifecycleCfg.identitySecretKey) : null;
  guard.start({
    peers: transport.peerIds(),
    configuration: () => driver.status().conf,
    exchangeWanted: (p) => transport.exchangeWanted(p),
    onRolledBack: (why, catchUp) => driver.recover(why, catchUp),
    sendExchange: (p, b) => transport.sendExchange(p, b),
    view: () => {
      const s = driver.status();
      return { term: s.term, leader: s.leader, appliedIndex: s.appliedIndex, root: s.root };
    },
    ...(evidencePort
      ? {
          proposeEvidence: async (ev) => {
            const v = await evidencePort.propose(ev);
            return v.ok ? { accepted: true } : { accepted: false, ...(v.reason ? { reason: v.reason } : {}) };
          },
        }
      : {}),
  });
  if (app instanceof LedgerApp) {
    countActTransitions(app, catalog);
    countRefusedEntries(app, catalog);
    app.subscribe((entry) => {
      const ev = decodeEventOrNull(entry.event);
      if (ev !== null && 'statement' in ev) guard.statementInLog(ev.statement);
    });
  }
  const membership = app instanceof LedgerApp ? startMembership(cfg.id, driver, app, log) : null;
  const lifecycle = lifecycleCfg && app instanceof LedgerApp ? await startNodeLifecycle({ nodeId: cfg.id, config: lifecycleCfg, driver, app, tls, log, metrics: catalog, incarnation, dataDir: cfg.dataDir, blobStore: levelBlobStore(storage), ...(membership ? { membership } : {}), ...(snapshotCert ? { snapshotCert } : {}) }) : null;
  const http = createServer((req, res) => {
    void (async () => {
      const url = (req.url ?? '/').split('?')[0];
      if (url === '/metrics') {
        res.setHeader('content-type', metrics.registry.contentType);
        res.end(await metrics.registry.metrics());
      } else if (url === '/healthz') {
        res.end('ok\n');
      } else if (url === '/readyz') {
        // Ready = part of a working cluster: a leader is known and this node has applied what it
        // knows to be committed, up to a small lag.
        const s = driver.status();
        const ok = s.leader !== null && s.commit - s.appliedIndex <= 1000;
        res.statusCode = ok ? 200 : 503;
        res.end(ok ? 'ready\n' : `not ready: leader ${s.leader ?? 'unknown'}, commit ${s.commit}, applied ${s.appliedIndex}\n`);
      } else if (url === '/status') {
        const s = driver.status();
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({
          id: s.id, role: s.role, term: s.term, leader: s.leader, commit: s.commit, applied: s.appliedIndex, lastIndex: s.lastIndex,
          firstIndex: s.firstIndex, snapshotIndex: s.snapshotIndex, root: s.root, keys: app.size, voters: s.conf.voters, pid: process.pid,
          peers: Object.fromEntries(transport.peerIds().map((p) => [p, transport.reachable(p)])),
          progress: s.progress, incarnation, rollback: rollbackStatus(guard), kernel: lifecycle?.kernel() ?? null,
        }) + '\n');
      } else {
        res.statusCode = 404;
        res.end('not found\n');
      }
    })().catch((e: unknown) => {
      res.statusCode = 500;
      res.end(String(e));
    });
  });
  const httpPort = await listenHttp(http, cfg.http);
  log(`node ${cfg.id} serving: grpc ${cfg.listen} (port ${grpcPort}), http ${cfg.http} (port ${httpPort}), data ${cfg.dataDir}, rng seed ${seed}${incarnation ? `, incarnation ${incarnation}` : ''}`);

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      log(`node ${cfg.id} stopping`);
      await lifecycle?.stop();
      membership?.stop();
      guard.stop();
      await driver.stop();
      // Client calls were answered by driver.stop(); what remains are peers' long-lived streams,
      // which never end on their own, so the grace period only covers responses in flight.
      await server.stop(Math.min(1_000, nodeLimits.shutdownGraceMs));
      await transport.close();
      await new Promise<void>((r) => http.close(() => r()));
      await storage.close();
      log(`node ${cfg.id} stopped`);
    })();
    return stopping;
  };
  return { driver, grpcPort, httpPort, stop };
}

function decodeEventOrNull(bytes: Uint8Array): ReturnType<typeof decodeEvent> | null {
  try {
    return decodeEvent(bytes);
  } catch {
    return null; // the ledger refused it already; there is no statement to check
  }
}

function durableStateOf(storage: LevelStorage): { term: number; vote: string | null; lastIndex: number; lastLogTerm: number } {
  const hs = storage.hardState();
  const lastIndex = storage.lastIndex();
  return { term: hs.term, vote: hs.vote, lastIndex, lastLogTerm: storage.term(lastIndex) };
}

/**
 * The identity a ledger node signs its votes and leader announcements with (its lifecycle
 * config's identity seed), and the roster's keys to check others' statements: the ledger's node
 * records once it has them, the genesis the node was installed with before.
 */
function nodeIdentity(lc: LifecycleConfig, app: LedgerApp): NodeIdentity {
  const genesis = lc.genesisEvent;
  return {
    clusterId: genesis.clusterId,
    secretKey: lc.identitySecretKey,
    publicKey: (id) => app.state.cluster?.nodes[id]?.identityKey ?? genesis.nodes.find((n) => n.id === id)?.identityKey,
  };
}

function listenHttp(s: HttpServer, address: string): Promise<number> {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(i + 1));
  return new Promise((res, rej) => {
    s.once('error', (e) => rej(new CustodyError('CONFIG_INVALID', `http ${address}: ${e.message}`)));
    s.listen(port, host, () => {
      const a = s.address();
      res(typeof a === 'object' && a ? a.port : port);
    });
  });
}

/**
 * The rollback check as /status reports it: the gate's verdict and the voters not yet heard from.
 * A rolling restart moves on to the next node only once the restarted one has heard every voter
 * (`pending` empty): a voter that restarts while this node still waits for its answer answers
 * from the book it loaded, which already holds what this node said since its own restart, and
 * would read as a rollback (README, "Restarts, restores and the rollback gate").
 */
function rollbackStatus(guard: NodeGuard): { check: string; pending: readonly string[] } {
  const v = guard.monitor.gate.verdict();
  return { check: v.kind, pending: v.missing };
}
