/**
 * Raft drivers running the ledger application on real LevelDB over an in-memory hub: the set-up
 * the ledger application tests share.
 */
import { RaftCore } from '../../raft/core/raft.js';
import { SeededRng } from '../../raft/core/rng.js';
import type { ConfState, NodeId } from '../../raft/core/types.js';
import { Driver } from '../../raft/driver.js';
import { LevelStorage } from '../../raft/storage/leveldb.js';
import { systemClock } from '../../raft/transport.js';
import { type ArchiveSource, LedgerApp, levelColdStore } from '../../node/ledger-app.js';
import type { Hub } from '../../node/lifecycle/local-cluster.js';

export const ids: NodeId[] = ['a', 'b', 'c'];
export const conf: ConfState = { voters: ids, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };

export interface LedgerNode { id: NodeId; dir: string; storage: LevelStorage; app: LedgerApp; driver: Driver }

export interface LedgerNodeOptions {
  /** Keep ended acts in the store's archive, as a node does (default: all in memory). */
  readonly archive?: boolean;
  readonly snapshotEveryEntries?: number;
  readonly compactionKeepEntries?: number;
}

/** The ledger applications running on each hub, by node: the peers an installing node fetches archived records from. */
const hubApps = new WeakMap<Hub, Map<NodeId, LedgerApp>>();

/** Fetches from the other running nodes of the hub, as the daemon does over its peer transport. */
function hubSource(hub: Hub, self: NodeId): ArchiveSource {
  const apps = (): Map<NodeId, LedgerApp> => hubApps.get(hub) ?? new Map();
  return {
    peers: () => [...apps().keys()].filter((p) => p !== self),
    fetch: async (peer, fromSeq, n) => {
      const app = apps().get(peer);
      if (!app) throw new Error(`${peer} is not running`);
      return app.archiveRange(fromSeq, n);
    },
  };
}

export async function startLedgerNode(hub: Hub, id: NodeId, dir: string, o: LedgerNodeOptions = {}): Promise<LedgerNode> {
  const storage = await LevelStorage.open({ dir, bootstrapConf: conf, recoveryHint: 'test' });
  const app = o.archive === true ? new LedgerApp({ cold: levelColdStore(storage), archiveSource: hubSource(hub, id) }) : new LedgerApp();
  if (!hubApps.has(hub)) hubApps.set(hub, new Map());
  hubApps.get(hub)?.set(id, app);
  const driver = new Driver({
    id, storage, app, transport: hub.transport(id), clock: systemClock, newCore: (cfg) => new RaftCore(cfg),
    rng: new SeededRng(id.charCodeAt(0) * 7919 + Date.now()), tickMs: 20, electionTicks: 10, heartbeatTicks: 1, preVote: true, checkQuorum: true,
    snapshotEveryEntries: o.snapshotEveryEntries ?? 10_000, compactionKeepEntries: o.compactionKeepEntries ?? 5, onFatal: (e) => { throw e; },
  });
  hub.drivers.set(id, driver);
  driver.start();
  return { id, dir, storage, app, driver };
}

export async function stopLedgerNode(hub: Hub, n: LedgerNode): Promise<void> {
  await n.driver.stop();
  hub.drivers.delete(n.id);
  if (hubApps.get(hub)?.get(n.id) === n.app) hubApps.get(hub)?.delete(n.id);
  await n.storage.close();
}

/**
 * Stops `victim` and starts it again on its store with `start`; checks that its applied index and
 * state root come back from the same batch, without re-applying anything. Returns the new node,
 * put in `victim`'s place in `nodes`.
 */
export async function restartLedgerNode(
  t: { equal(found: unknown, wanted: unknown, message: string): unknown },
  hub: Hub, nodes: LedgerNode[], victim: LedgerNode, start: (hub: Hub, id: NodeId, dir: string) => Promise<LedgerNode>,
): Promise<LedgerNode> {
  const before = { root: victim.app.root(), applied: victim.driver.status().appliedIndex };
  await stopLedgerNode(hub, victim);
  const again = await start(hub, victim.id, victim.dir);
  nodes[nodes.indexOf(victim)] = again;
  t.equal(again.driver.status().appliedIndex, before.applied, 'applied index restored');
  t.equal(again.app.root(), before.root, 'state restored without re-applying');
  return again;
}
