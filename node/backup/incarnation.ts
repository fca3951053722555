/**
 * The incarnation of a cluster: which copy of the replicated history a node belongs to.
 *
 * A cluster created from a genesis has no incarnation (''). `custody cluster restore` draws a new
 * random 128-bit id and stores it in every node it seeds (`app/meta/incarnation`, in the batch that
 * seeds the store); a restore of the same file again draws another. Every Raft peer stream and
 * every lifecycle peer call (ceremony blobs, signing requests) carries the caller's incarnation in
 * its call metadata (`custody-incarnation`), and the receiving node refuses any other value with
 * INCARNATION_MISMATCH before reading a frame or a request, so:
 *  - a node of the cluster the backup was taken from ('' or its own id), started by mistake with
 *    the addresses of the new cluster, never reaches its Raft core: its log, term and votes, which
 *    the new cluster's history never promised to match, cannot mix with the new cluster's;
 *  - two clusters restored from one file (a drill beside production, say) stay apart, though their
 *    histories, node ids and certificates are identical up to the saved index.
 * The check is an equality on both sides of every stream, so it holds whichever node dials. The
 * identity is kept across `custody node wipe` (a wiped node re-syncs from its own cluster).
 */
import { CustodyError } from '../../proto/errors.js';

/** The store key (relative to the driver's `app/` prefix) holding the incarnation record. */
export const INCARNATION_KEY = 'meta/incarnation';
/** gRPC call metadata carrying the caller's incarnation on every peer stream. */
export const INCARNATION_METADATA_KEY = 'custody-incarnation';

export interface IncarnationRecord {
  /** 32 hex digits. */
  readonly id: string;
  readonly clusterId: string;
  /** The backup it was restored from: its applied index and SHA-256. */
  readonly fromIndex: number;
  readonly fromSha256: string;
  readonly restoredAtMs: number;
}

export function encodeIncarnation(r: IncarnationRecord): Uint8Array {
  return Buffer.from(JSON.stringify(r), 'utf8');
}

/** The incarnation id held in a store ('' when it holds none). */
export function incarnationOf(stored: Uint8Array | undefined): string {
  if (stored === undefined) return '';
  let r: Partial<IncarnationRecord>;
  try {
    r = JSON.parse(Buffer.from(stored).toString('utf8')) as Partial<IncarnationRecord>;
  } catch {
    throw new CustodyError('STORAGE_CORRUPT', `${INCARNATION_KEY}: not JSON`);
  }
  if (typeof r.id !== 'string' || !/^[0-9a-f]{32}$/.test(r.id)) throw new CustodyError('STORAGE_CORRUPT', `${INCARNATION_KEY}: no valid incarnation id`);
  return r.id;
}

/** Why a peer stream carrying `theirs` must be refused by a node of incarnation `mine`, or null. */
export function incarnationRefusal(mine: string, theirs: string, peer: string): string | null {
  if (mine === theirs) return null;
  const name = (x: string): string => (x === '' ? 'none (a cluster never restored)' : x);
  return `peer ${peer} belongs to incarnation ${name(theirs)}, this node to ${name(mine)}: a node of the cluster a backup was taken from, or of another restore of it, cannot join this cluster`;
}
