/**
 * The serving side of `custody admin snapshot save`: the bytes of a snapshot file
 * (node/backup/format.ts) holding this node's replicated state at one applied index.
 *
 * Consistency: the call first asks the driver for a ReadIndex, so the copy holds at least every
 * entry committed before the call began (a backup never misses an acknowledged write, whichever
 * node serves it). It then takes the applied point (index, term, membership), the application's
 * state and its root in one synchronous step: the driver applies entries and moves its applied
 * index together within one loop turn, so the state is exactly the state at that index, and the
 * root in the header is the root every node computed there. The archive of ended acts, kept in
 * the store, is read from it record by record after the state (node/backup/body.ts).
 */
import { CustodyError } from '../../proto/errors.js';
import { backup as limits } from '../../proto/limits.js';
import { bodyPieces } from './body.js';
import type { Driver } from '../../raft/driver.js';
import type { LedgerApp } from '../ledger-app.js';
import { SNAPSHOT_FORMAT, SnapshotEncoder, type SnapshotHeader } from './format.js';

export interface SnapshotSource {
  readonly nodeId: string;
  readonly driver: Driver;
  readonly app: LedgerApp;
  /** This node's incarnation ('' if its cluster was never restored). */
  readonly incarnation: string;
}

/** The frames of a snapshot file of `s`'s state, in order. */
export async function* snapshotFileBytes(s: SnapshotSource): AsyncGenerator<Buffer> {
  await s.driver.readIndex(limits.readIndexTimeoutMs);
  // One synchronous step from here to the state: nothing is applied in between.
  const point = s.driver.appliedPoint();
  const cluster = s.app.state.cluster;
  if (cluster === null) throw new CustodyError('GENESIS_MISSING', 'the cluster has no genesis yet: there is nothing to back up');
  const root = s.app.root();
  const ledgerIndex = s.app.state.index;
  const state = s.app.snapshot();
  // The archive is append-only and the state counts `archived` records at this point: reading
  // exactly those later (outside the loop, while entries go on being applied) reads the archive
  // as of this step (node/backup/body.ts writes them after the state, record by record).
  const archived = s.app.keepsArchive ? cluster.archived.count : null;
  yield* snapshotFrames({
    format: SNAPSHOT_FORMAT, clusterId: cluster.clusterId, incarnation: s.incarnation, index: point.index, term: point.term, stateRoot: root, ledgerIndex,
    membership: { voters: [...point.conf.voters], learners: [...point.conf.learners] },
    nodes: Object.keys(cluster.nodes).sort(), takenFrom: s.nodeId, takenAtMs: Date.now(),
  }, state, archived === null ? null : { count: archived, records: s.app.archiveRecords(0, archived) });
}

/**
 * The frames of a snapshot file: `header`, the application's snapshot `appState`, and with an
 * archive its `count` records in position order (the header's archive fields are set from them).
 */
export async function* snapshotFrames(header: SnapshotHeader, appState: Uint8Array, archive: { count: number; records: AsyncIterable<Uint8Array> | Iterable<Uint8Array> } | null): AsyncGenerator<Buffer> {
  const enc = new SnapshotEncoder();
  yield enc.start(archive === null ? header : { ...header, appStateBytes: appState.length, archivedRecords: archive.count });
  for await (const c of bodyPieces(appState, archive?.records ?? [])) yield* enc.chunk(c);
  yield enc.finish();
}
