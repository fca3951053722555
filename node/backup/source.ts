/**
 * The serving side of `custody admin snapshot save`: the bytes of a snapshot file
 * (node/backup/format.ts) holding this node's replicated state at one applied index.
 *
 * Consistency: the call first asks the driver for a ReadIndex, so the copy holds at least every
 * entry committed before the call began (a backup never misses an acknowledged write, whichever
 * node serves it). It then takes the applied point (index, term, membership), the application's
 * state and its root in one synchronous step: the driver applies entries and moves its applied
 * index together within one loop turn, so the state is exactly the state at that index, and the
 * root in the header is the root every node computed there. The state is read through the
 * Application interface (raft/driver.ts) in chunks, so a state kept in the store and read piece by
 * piece fits the same file.
 */
import { CustodyError } from '../../proto/errors.js';
import { backup as limits } from '../../proto/limits.js';
import type { Driver } from '../../raft/driver.js';
import type { LedgerApp } from '../ledger-app.js';
import { SNAPSHOT_FORMAT, SnapshotEncoder } from './format.js';

/** The application's state as a sequence of byte chunks (one place to change if it streams). */
function* stateChunks(all: Uint8Array): Iterable<Uint8Array> {
  for (let o = 0; o < all.length; o += limits.chunkBytes) yield all.subarray(o, Math.min(all.length, o + limits.chunkBytes));
}

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
  // Called in the same synchronous step: whatever part of the state the application reads later
  // (its archive) it reads as of this call (node/ledger-app.ts snapshot).
  const state = s.app.snapshot();
  const enc = new SnapshotEncoder();
  yield enc.start({
    format: SNAPSHOT_FORMAT, clusterId: cluster.clusterId, incarnation: s.incarnation, index: point.index, term: point.term, stateRoot: root, ledgerIndex,
    membership: { voters: [...point.conf.voters], learners: [...point.conf.learners] },
    nodes: Object.keys(cluster.nodes).sort(), takenFrom: s.nodeId, takenAtMs: Date.now(),
  });
  for (const c of stateChunks(await state)) yield* enc.chunk(c);
  yield enc.finish();
}
