/**
 * `custody cluster restore --snapshot FILE --config DIR`: seeds a NEW cluster from a snapshot file.
 *
 * Every node config in DIR gets a fresh store holding the snapshot as its Raft snapshot at the
 * saved index (raft/driver.ts seedStore): the ledger's state at that index with its history
 * (chronicle, hash chain head, receipts, applied decisions), the membership of DIR's nodes, a hard
 * state at the saved term with nothing voted, and the new incarnation (incarnation.ts). Started,
 * the nodes elect a leader among themselves and go on from the saved index as a cluster that had
 * just compacted its log; the kernels the lifecycle configs name follow the same governance chain.
 *
 * Order, so that a refusal writes nothing:
 *  1. read and verify the whole file (framing, sizes, SHA-256): SNAPSHOT_INVALID otherwise;
 *  2. decode the state and recompute its root: it must be the root in the header, and the archived
 *     records after it (hashed as they stream by in step 1, never held) must reproduce the
 *     accumulator the state commits to (SNAPSHOT_INVALID);
 *  3. check DIR: every node is on the ledger's roster of the snapshot, and no data directory exists
 *     yet or holds anything (CONFIG_INVALID: a restore never overwrites a store);
 *  4. seed each store in a temporary directory beside its data directory (the archived records
 *     first, read from the file again and written in batches, then the state that counts them),
 *     reopen it and check the root again, and only when every node's store verified rename them
 *     into place.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { CustodyError } from '../../proto/errors.js';
import { backup as limits } from '../../proto/limits.js';
import type { ConfState } from '../../raft/core/types.js';
import { SM_PREFIX, seedStore } from '../../raft/driver.js';
import { LevelStorage } from '../../raft/storage/leveldb.js';
import { clusterConfigs } from '../cluster.js';
import type { NodeConfig } from '../config.js';
import { LedgerApp, archiveRecordWrites, decodeAppSnapshot, levelColdStore } from '../ledger-app.js';
import { EMPTY_ARCHIVE_HEAD, archiveLink } from '../../ledger/archive.js';
import { bytesEqual, toHex } from '../../ledger/encoding.js';
import { stateRoot } from '../../ledger/state.js';
import type { AppWrite } from '../../raft/storage/leveldb.js';
import { BodyReader } from './body.js';
import { readSnapshotFile, type SnapshotHeader, type SnapshotSummary } from './format.js';

import { INCARNATION_KEY, encodeIncarnation } from './incarnation.js';

export interface RestoreReport {
  readonly summary: SnapshotSummary;
  readonly incarnation: string;
  readonly nodes: readonly { readonly id: string; readonly dataDir: string }[];
}

function stateRootOf(appState: Uint8Array): string | null {
  try {
    return toHex(stateRoot(decodeAppSnapshot(appState).state));
  } catch {
    return null;
  }
}

export async function restoreCluster(snapshotFile: string, configDir: string, say: (line: string) => void = () => {}): Promise<RestoreReport> {
  const cfgs = clusterConfigs(configDir);
  // Pass 1: verify the file, keep the application's state, and hash the archive's records as they
  // go by (never held): they must reproduce the accumulator the state commits to.
  let body: BodyReader | null = null;
  let chain = EMPTY_ARCHIVE_HEAD;
  const summary = await readSnapshotFile(snapshotFile, (c, header) => {
    body ??= bodyReader(snapshotFile, header, (_seq, r) => {
      chain = archiveLink(chain, r);
    });
    body.push(c);
  }, (n) => say(`read ${(n / 1048576).toFixed(0)} MiB of ${snapshotFile}`));
  const h = summary.header;
  const { appState: state } = (body ?? bodyReader(snapshotFile, h, () => {})).end();
  const root = stateRootOf(state);
  if (root !== h.stateRoot) {
    throw new CustodyError('SNAPSHOT_INVALID', `${snapshotFile}: the state ${root === null ? 'does not decode as a ledger state' : `has root ${root}`}, the header says ${h.stateRoot}`);
  }
  const { state: ledger, cold } = decodeAppSnapshot(state);
  const want = ledger.cluster?.archived ?? EMPTY_ARCHIVE_HEAD;
  if (!cold && chain.count > 0) throw new CustodyError('SNAPSHOT_INVALID', `${snapshotFile}: it carries ${chain.count} archived records, and its state keeps its ended acts in itself`);
  if (cold && (chain.count !== want.count || !bytesEqual(chain.head, want.head))) {
    throw new CustodyError('SNAPSHOT_INVALID', `${snapshotFile}: its ${chain.count} archived records do not reproduce the archive the state counts (${want.count} acts)`);
  }
  say(`verified ${snapshotFile}: cluster ${h.clusterId}, index ${h.index}, term ${h.term}, root ${h.stateRoot}, ${summary.stateBytes} bytes in ${summary.chunks} chunks, sha256 ${summary.sha256}`);
  for (const c of cfgs) {
    if (!h.nodes.includes(c.id)) throw new CustodyError('CONFIG_INVALID', `${c.file}: node ${c.id} is not on the ledger's node roster in the snapshot (${h.nodes.join(', ')}); a restored cluster is made of those nodes`);
    if (existsSync(c.dataDir) && readdirSync(c.dataDir).length > 0) {
      throw new CustodyError('CONFIG_INVALID', `${c.file}: dataDir ${c.dataDir} exists and is not empty; a restore seeds new stores only and never overwrites one (give each node a new data directory)`);
    }
  }
  const incarnation = randomBytes(16).toString('hex');
  const conf: ConfState = { voters: cfgs.map((c) => c.id).sort(), learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
  const record = encodeIncarnation({ id: incarnation, clusterId: h.clusterId, fromIndex: h.index, fromSha256: summary.sha256, restoredAtMs: Date.now() });
  const staged: { cfg: NodeConfig; tmp: string }[] = [];
  try {
    for (const c of cfgs) {
      const tmp = `${c.dataDir}.restoring-${incarnation.slice(0, 8)}`;
      mkdirSync(dirname(c.dataDir), { recursive: true });
      staged.push({ cfg: c, tmp });
      const storage = await LevelStorage.open({ dir: tmp, bootstrapConf: conf, recoveryHint: 'run the restore again into empty data directories' });
      try {
        if (chain.count > 0) await stageArchive(snapshotFile, storage);
        // The state counting the staged records is seeded last: restore finds them, checks them
        // against its accumulator and fetches nothing (node/ledger-app.ts restore).
        await seedStore(storage, new LedgerApp({ cold: levelColdStore(storage) }), { index: h.index, term: h.term, conf, state }, [{ key: INCARNATION_KEY, value: record }]);
      } finally {
        await storage.close();
      }
      await verifySeeded(tmp, conf, h.stateRoot);
      say(`seeded ${c.id}: ${c.dataDir}`);
    }
    for (const s of staged) {
      if (existsSync(s.cfg.dataDir)) rmSync(s.cfg.dataDir, { recursive: true }); // empty, checked above
      renameSync(s.tmp, s.cfg.dataDir);
    }
  } catch (e) {
    for (const s of staged) rmSync(s.tmp, { recursive: true, force: true });
    throw e;
  }
  say(`restored ${cfgs.length} nodes as incarnation ${incarnation}; start them (custody cluster up --config ${configDir}, or custody node --config <file> on each host)`);
  return { summary, incarnation, nodes: cfgs.map((c) => ({ id: c.id, dataDir: c.dataDir })) };
}

function bodyReader(file: string, h: SnapshotHeader, onRecord: (seq: number, r: Buffer) => void): BodyReader {
  return new BodyReader(file, h.appStateBytes ?? null, h.archivedRecords ?? 0, onRecord);
}

/**
 * Pass 2, once per store: reads the file again and writes its archived records into the store,
 * a batch at a time, before the state that counts them exists there (so they are not yet part of
 * its archive). The file is verified again as it is read; the seeding then re-hashes the records.
 */
async function stageArchive(file: string, storage: LevelStorage): Promise<void> {
  let pending: AppWrite[] = [];
  let body: BodyReader | null = null;
  const flush = async (sync: boolean): Promise<void> => {
    const app = pending.map((w) => ({ key: SM_PREFIX + w.key, value: w.value }));
    pending = [];
    await storage.persist({ hardState: null, entries: [], snapshot: null, app, sync });
  };
  const summary = await readSnapshotFile(file, (c, h) => {
    body ??= bodyReader(file, h, (seq, r) => pending.push(...archiveRecordWrites(seq, r)));
    body.push(c);
  }, undefined, async () => {
    if (pending.length >= limits.stageWritesPerBatch) await flush(false);
  });
  (body ?? bodyReader(file, summary.header, () => {})).end();
  await flush(true);
}

/** Reopens a seeded store as a starting node would and checks the application's root. */
async function verifySeeded(dir: string, conf: ConfState, wantRoot: string): Promise<void> {
  const storage = await LevelStorage.open({ dir, bootstrapConf: conf, recoveryHint: 'run the restore again into empty data directories' });
  try {
    const app = new LedgerApp();
    app.load((k) => storage.appValue(SM_PREFIX + k), function* () {
      for (const k of storage.appKeys()) if (k.startsWith(SM_PREFIX)) yield k.slice(SM_PREFIX.length);
    });
    if (app.root() !== wantRoot) throw new CustodyError('INTERNAL', `the seeded store ${dir} holds root ${app.root()}, not ${wantRoot}`);
  } finally {
    await storage.close();
  }
}
