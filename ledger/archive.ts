/**
 * The archive of ended acts: where a Settled, Denied or Aborted act goes, with its permit, so the
 * state in memory holds only what is in flight however long the history.
 *
 *   apply(state, entry, archive)   with an archive, an act that ends in this entry leaves
 *                                  `cluster.ops` (and its permit `cluster.permits`) and comes back
 *                                  in `archived`; the caller stores those records so that the
 *                                  archive answers for them before the next entry is applied.
 *   apply(state, entry)            without one, ended acts stay in memory (tests, small tools).
 *
 * Both give the same results and the same state roots on every history (test/ledger/archive.test.ts):
 * the ledger reads an act or permit from the archive exactly where it would have found it in
 * memory, and the root commits to ended acts only through `cluster.archived`, maintained in both.
 *
 * Record:      CBOR { op, permit | null }       (ledger/state.ts opToCbor, permitToCbor)
 * Record cid:  sha256("custody-ledger/v1/archive-record" || 0 || record bytes)
 * Accumulator: head' = sha256("custody-ledger/v1/archive" || 0 || CBOR { prev: head, seq, record: cid })
 *              starting from 32 zero bytes; seq counts from 0. (state.ts stateRoot has the argument.)
 *
 * The ledger stays pure: it only reads the archive, synchronously, through ArchiveReader; it
 * never writes one. MemoryArchive is the in-memory twin used by tests and the simulator; the node
 * keeps the records in LevelDB (node/ledger-archive.ts) in the same batch as its applied index.
 */
import { type CborValue, decode, digest, encode, toHex } from './encoding.js';
import { obj } from './decision.js';
import { type ArchiveHead, type OpRecord, type PermitRecord, opFromCbor, opToCbor, permitFromCbor, permitToCbor } from './state.js';

export const ARCHIVE_DOMAIN = 'custody-ledger/v1/archive';
export const ARCHIVE_RECORD_DOMAIN = 'custody-ledger/v1/archive-record';

/** An ended act as the archive keeps it. */
export interface ArchivedAct {
  readonly op: OpRecord;
  /** The act's step permit (spent), or null when it never had one. */
  readonly permit: PermitRecord | null;
}

/** An ended act leaving the state in one apply, with its canonical record bytes. */
export interface ArchiveRecord extends ArchivedAct {
  /** Canonical CBOR of { op, permit }. */
  readonly bytes: Uint8Array;
  /** Position in the accumulator (0 for the first act that ever ended). */
  readonly seq: number;
}

/** What apply may read from the archive: synchronous lookups of ended acts and their permits. */
export interface ArchiveReader {
  act(opId: string): OpRecord | undefined;
  permit(permitHex: string): PermitRecord | undefined;
}

export const EMPTY_ARCHIVE_HEAD: ArchiveHead = { count: 0, head: new Uint8Array(32) };

export function archivedToCbor(a: ArchivedAct): CborValue {
  return { op: opToCbor(a.op), permit: a.permit === null ? null : permitToCbor(a.permit) };
}

export function encodeArchived(a: ArchivedAct): Uint8Array {
  return encode(archivedToCbor(a));
}

/** Strict inverse of encodeArchived; throws ShapeError (or a decode error) on anything else. */
export function decodeArchived(b: Uint8Array): ArchivedAct {
  const o = obj(decode(b), 'archived act', ['op', 'permit']);
  const opv = o.op as { opId?: unknown };
  const op = opFromCbor(typeof opv === 'object' && opv !== null && typeof opv.opId === 'string' ? opv.opId : '', o.op as CborValue);
  return { op, permit: o.permit === null ? null : permitFromCbor(o.permit as CborValue) };
}

/** The accumulator after one more record. */
export function archiveLink(h: ArchiveHead, recordBytes: Uint8Array): ArchiveHead {
  const record = digest(ARCHIVE_RECORD_DOMAIN, recordBytes);
  return { count: h.count + 1, head: digest(ARCHIVE_DOMAIN, encode({ prev: h.head, seq: h.count, record })) };
}

/**
 * The in-memory twin of the node's LevelDB archive, for tests and the simulator. `add` takes the
 * records apply returned; `head` recomputes the accumulator over what it holds, in order.
 */
export class MemoryArchive implements ArchiveReader {
  private readonly acts = new Map<string, ArchiveRecord>();
  private readonly permits = new Map<string, PermitRecord>();
  private readonly order: ArchiveRecord[] = [];

  add(records: readonly ArchiveRecord[]): void {
    for (const r of records) {
      this.acts.set(r.op.opId, r);
      if (r.permit !== null) this.permits.set(toHex(r.op.permitId as Uint8Array), r.permit);
      this.order.push(r);
    }
  }

  act(opId: string): OpRecord | undefined {
    return this.acts.get(opId)?.op;
  }

  permit(permitHex: string): PermitRecord | undefined {
    return this.permits.get(permitHex);
  }

  get size(): number {
    return this.order.length;
  }

  /** Every record in the order the acts ended. */
  records(): readonly ArchiveRecord[] {
    return this.order;
  }

  head(): ArchiveHead {
    let h = EMPTY_ARCHIVE_HEAD;
    for (const r of this.order) h = archiveLink(h, r.bytes);
    return h;
  }

  /** A copy holding the same records (a node restored from another's snapshot). */
  clone(): MemoryArchive {
    const m = new MemoryArchive();
    m.add(this.order);
    return m;
  }
}
