/**
 * The governance ledger as the Raft driver's replicated state machine (raft/driver.ts
 * `Application`). Every node applies the same committed commands in the same order to
 * ledger/apply.ts, so every node holds the same LedgerState and the same state root.
 *
 * Command (what a node proposes):   0x4c 'L' | stampMs:u64be | event bytes (canonical CBOR)
 *   The proposer stamps its wall clock into the command: apply() never reads a host clock
 *   (DESIGN §3), and the ledger clamps the stamp so time never runs backwards.
 *   A command that is not of this form is still applied, as the event bytes themselves stamped
 *   at the ledger's own clock; the ledger refuses it (PAYLOAD_REJECTED) identically on every node.
 *
 * Result (what the proposer gets back through the driver): the JSON of a LedgerVerdict. A ledger
 * refusal is a *result*, not a driver error: the entry still advanced the ledger's index and clock,
 * and that state must be persisted with the applied index, or a restarted node would compute
 * another state root than its peers.
 *
 * Index: the ledger's index of an entry is its own count of applied commands (see apply), not the
 * Raft index: receipts, permits and forwarded decisions all name ledger indexes.
 *
 * Applied governance decisions are kept too (`decision/<index>`, and in snapshots), so a kernel
 * that missed some catches up from its daemon (participant.ts).
 *
 * Persistence: the whole in-memory state is written under `ledger/state` (the driver prefixes
 * `sm/`) in the same LevelDB batch as the applied index, so apply is exactly-once across restarts.
 * That is one canonical encoding per entry, O(state in memory).
 *
 * The archive (with a ColdStore, as in the node): acts that end (Settled, Denied, Aborted) leave
 * the in-memory state (ledger/archive.ts) and are written in that same batch under
 *   archive/log/<seq:16>   the canonical record of the act that ended seq-th (0-based): the act
 *                          with its receipts and permit, the bytes the accumulator hashes
 *   archive/op/<opId>      CBOR uint: the position its act's record is at
 *   archive/permit/<hex>   the opId whose permit it is
 * so the archive is exactly as durable as the applied index: after a crash the node holds the
 * archive of exactly the entries it applied, and re-applies the rest from the log. These keys are
 * cold (raft/storage/leveldb.ts COLD_PREFIX): never loaded into memory, read on demand.
 * The records sit under their position, in the order they are written, and sort before the two
 * indexes: a LevelDB level file of new records then overlaps no older record, so compaction moves
 * records down the levels instead of rewriting them (a wiped node writes a million of them while it
 * resyncs), and a peer's range is one sequential scan. An index entry is a pointer only: a read
 * through it takes the record only if the record names the same act (an index entry left by a
 * record that was never counted, then overwritten at its position, points at another act).
 * Stores written with the layout before this one (archive/act/<opId> holding { seq, record } and
 * archive/seq/<seq:16> holding the opId) are converted when the node opens (convertArchiveLayout).
 *
 * apply() is synchronous and the store is not, so before each batch of committed entries the
 * driver calls prepare(): it decodes the batch's events and reads from the store every ended act
 * and permit they name (that is every archive lookup apply can make: ledger/apply.ts looks up only
 * the act, permit or release target an event names). Records archived within the batch are served
 * from memory until the next prepare, by which time the batch is on disk (the driver's loop waits
 * for each batch before the next). A lookup prepare did not read is a bug, and fails the apply
 * rather than answer "unknown" and let this node diverge.
 */
import type { Application } from '../raft/driver.js';
import { COLD_PREFIX, type AppWrite, type LevelStorage } from '../raft/storage/leveldb.js';
import { type CborValue, decode, encode, toHex } from '../ledger/encoding.js';
import { ApprovalBook, decodeBookCommand, isBookCommand } from './approvals/book.js';
import { decisionToCbor } from '../ledger/decision.js';
import { CustodyError, assert, isCustodyError } from '../proto/errors.js';
import { ledger as ledgerLimits } from '../proto/limits.js';
import { apply, type ApplyResult } from '../ledger/apply.js';
import { emptyState, restore, snapshot, stateRoot, type LedgerState, type OpState } from '../ledger/state.js';
import { decodeEvent, eventFromCbor, type EventType, type LedgerEntry, type LedgerEvent } from '../ledger/events.js';
import { type ArchiveReader, type ArchiveRecord, type ArchivedAct, EMPTY_ARCHIVE_HEAD, archiveLink, decodeArchived } from '../ledger/archive.js';
import type { ArchiveHead, OpRecord, PermitRecord } from '../ledger/state.js';
import { bytesEqual } from '../ledger/encoding.js';
import type { ReasonCode } from '../proto/reasons.js';
import { LedgerTree } from './ledger-tree.js';

const COMMAND_TAG = 0x4c;
const COMMAND_HEADER_BYTES = 9;
const STATE_KEY = 'ledger/state';

export function encodeLedgerCommand(stampMs: number, event: Uint8Array): Uint8Array {
  if (!Number.isSafeInteger(stampMs) || stampMs < 0) throw new RangeError(`stampMs ${stampMs}`);
  const b = Buffer.alloc(COMMAND_HEADER_BYTES + event.length);
  b[0] = COMMAND_TAG;
  b.writeBigUInt64BE(BigInt(stampMs), 1);
  b.set(event, COMMAND_HEADER_BYTES);
  return b;
}

export function decodeLedgerCommand(cmd: Uint8Array): { stampMs: number; event: Uint8Array } | null {
  if (cmd.length < COMMAND_HEADER_BYTES || cmd[0] !== COMMAND_TAG) return null;
  const b = Buffer.from(cmd.buffer, cmd.byteOffset, cmd.length);
  const stamp = b.readBigUInt64BE(1);
  if (stamp > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return { stampMs: Number(stamp), event: cmd.subarray(COMMAND_HEADER_BYTES) };
}

/** What the ledger said about one entry, as it travels back to the proposer. */
export interface LedgerVerdict {
  readonly ok: boolean;
  readonly index: number;
  readonly type: EventType | null;
  /** Set when ok is false. */
  readonly reason?: ReasonCode;
  readonly detail: string;
  /** The refusal was journaled (a Denied act) and chained. */
  readonly applied: boolean;
  readonly replayed: boolean;
  readonly opState?: OpState;
  readonly permitId?: string;
  readonly eventCid?: string;
  /** On an ActSubmitted the policy judged: the id of the rule that decided (absent for default deny). */
  readonly rule?: string;
}

export function verdictOf(r: ApplyResult): LedgerVerdict {
  const common = {
    index: r.index, type: r.type, replayed: r.replayed,
    ...(r.opState !== undefined ? { opState: r.opState } : {}),
    ...(r.eventCid ? { eventCid: toHex(r.eventCid) } : {}),
    ...(r.admission?.ruleId ? { rule: r.admission.ruleId } : {}),
  };
  if (r.ok) return { ok: true, ...common, detail: r.effect, applied: true, ...(r.permitId ? { permitId: toHex(r.permitId) } : {}) };
  return { ok: false, ...common, reason: r.reason, detail: r.detail, applied: r.applied };
}

export function encodeVerdict(v: LedgerVerdict): Uint8Array {
  return Buffer.from(JSON.stringify(v), 'utf8');
}

export function decodeVerdict(b: Uint8Array): LedgerVerdict {
  return JSON.parse(Buffer.from(b).toString('utf8')) as LedgerVerdict;
}

/** Called after each applied entry with the state it produced (synchronously, inside apply). */
export type AppliedListener = (entry: LedgerEntry, result: ApplyResult, state: LedgerState) => void;

/** An applied governance decision as the kernels take it (kernel/wire.ts CommittedDecision). */
export interface AppliedDecision {
  readonly index: number;
  /** The ledger clock after the entry: the time the decision took effect. */
  readonly stampMs: number;
  /** Canonical CBOR of the decision. */
  readonly decision: Uint8Array;
}

const DECISION_PREFIX = 'decision/';
const decisionKey = (index: number): string => `${DECISION_PREFIX}${String(index).padStart(16, '0')}`;
const SNAPSHOT_TAG = 'custody-ledger-app/v1';

const ARCHIVE_PREFIX = 'archive/';
const LOG_PREFIX = `${ARCHIVE_PREFIX}log/`;
const OP_PREFIX = `${ARCHIVE_PREFIX}op/`;
const PERMIT_PREFIX = `${ARCHIVE_PREFIX}permit/`;
const logKey = (seq: number): string => `${LOG_PREFIX}${String(seq).padStart(16, '0')}`;
assert(LOG_PREFIX < OP_PREFIX && OP_PREFIX < PERMIT_PREFIX, 'records sort before the indexes (see the header)');

/**
 * Where ended acts are kept: the node's LevelDB (cold keys, read on demand), or a map in tests.
 * Keys are relative to the application's prefix, as in AppWrite.
 */
export interface ColdStore {
  get(key: string): Promise<Uint8Array | undefined>;
  /** Several keys at once, in the order asked (undefined where absent). */
  getMany(keys: readonly string[]): Promise<(Uint8Array | undefined)[]>;
  /**
   * Keys under `prefix` in key order, from one consistent view of the store; with `range`, only
   * `from` <= key < `to` (full keys under `prefix`), starting at `from` without reading what is before.
   */
  scan(prefix: string, range?: { readonly from?: string; readonly to?: string }): AsyncIterable<[string, Uint8Array]>;
  /**
   * Writes archive records fetched for a snapshot being installed, outside the driver's batch
   * (they stay invisible until a state counts them: see restore). `sync` makes them durable, and
   * with them every write before (LevelDB appends every write to one log, in order).
   */
  put(writes: readonly AppWrite[], sync: boolean): Promise<void>;
  /**
   * Writes out what the store buffers in memory as a file of its own (LevelStorage.sealWrites), so
   * that the writes before and after it never share a file. A performance hint: absent, nothing.
   */
  seal?(): Promise<void>;
}

/**
 * Where a node installing a snapshot gets the archived records it lacks: its peers (the node
 * daemon asks them over the peer transport, node/peers.ts). `fetch` answers the canonical record
 * bytes at positions fromSeq, fromSeq+1, ... (at most n; fewer when the peer's answer is full) or
 * throws; whatever it answers is checked here, never trusted.
 */
export interface ArchiveSource {
  /** The peers to ask, in order of preference. */
  peers(): readonly string[];
  fetch(peer: string, fromSeq: number, n: number): Promise<readonly Uint8Array[]>;
  /** Waits between two rounds over every peer (a timer in the node; nothing in tests). */
  pause?(round: number): Promise<void>;
}

/** What prepare() read for one batch, and what the batch archived so far. */
class BatchArchive implements ArchiveReader {
  readonly acts = new Map<string, OpRecord | null>();
  readonly permits = new Map<string, PermitRecord | null>();
  /** What this batch archived, by position: on disk only once the driver's write completes. */
  readonly ended = new Map<number, ArchiveRecord>();

  act(opId: string): OpRecord | undefined {
    const a = this.acts.get(opId);
    if (a === undefined) throw new CustodyError('INTERNAL', `act ${opId} was not read from the archive before apply`);
    return a ?? undefined;
  }

  permit(hex: string): PermitRecord | undefined {
    const p = this.permits.get(hex);
    if (p === undefined) throw new CustodyError('INTERNAL', `permit ${hex} was not read from the archive before apply`);
    return p ?? undefined;
  }

  add(r: ArchiveRecord): void {
    this.acts.set(r.op.opId, r.op);
    this.ended.set(r.seq, r);
    if (r.permit !== null && r.op.permitId !== null) this.permits.set(toHex(r.op.permitId), r.permit);
  }
}

/** The acts and permits an event names: every archive lookup apply can make for it. */
function namedByEvent(ev: LedgerEvent): { opIds: string[]; permits: string[] } {
  // Every event that names an act (its opId) or a permit is looked up: an act event added later
  // is then read from the archive without being listed here (a missed lookup stops the node).
  if (ev.type === 'GovernanceDecision') {
    const a = ev.decision.body.action;
    return a.kind === 'PublicationReleased' ? { opIds: [a.opId], permits: [] } : { opIds: [], permits: [] };
  }
  const named = ev as { opId?: unknown; permitId?: unknown };
  return {
    opIds: typeof named.opId === 'string' ? [named.opId] : [],
    permits: named.permitId instanceof Uint8Array ? [toHex(named.permitId)] : [],
  };
}

/** A stored record decoded (STORAGE_CORRUPT if it does not decode: it was checked when written). */
function archivedFrom(record: Uint8Array, seq: number): ArchivedAct {
  try {
    return decodeArchived(record);
  } catch (e) {
    throw new CustodyError('STORAGE_CORRUPT', `archived act at position ${seq}: ${(e as Error).message}`);
  }
}

/** The position an `archive/op/` entry points at. */
function storedPosition(b: Uint8Array): number {
  let seq: unknown;
  try {
    seq = decode(b);
  } catch (e) {
    throw new CustodyError('STORAGE_CORRUPT', `archive index entry: ${(e as Error).message}`);
  }
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) throw new CustodyError('STORAGE_CORRUPT', 'archive index entry: not a position');
  return seq;
}

export interface LedgerAppOptions {
  /** Move ended acts out of memory into this store (the node passes its LevelDB). */
  readonly cold?: ColdStore;
  /** With `cold`: where a snapshot's archived records this node lacks come from (its peers). */
  readonly archiveSource?: ArchiveSource;
  /** Progress and refusals of archive fetches. */
  readonly log?: (line: string) => void;
  /** Records per index run of a snapshot's install (IndexRuns; default ledger.archiveIndexRunRecords). */
  readonly indexRunRecords?: number;
}

export class LedgerApp implements Application {
  private current: LedgerState = emptyState();
  private readonly cold: ColdStore | null;
  /** Inside a batch (prepare .. finish): the state is written once at its end. */
  private deferState = false;
  private batch = new BatchArchive();

  private readonly source: ArchiveSource | null;
  private readonly log: (line: string) => void;
  private readonly indexRunRecords: number;

  /** The Merkle tree over the applied entries (node/ledger-tree.ts), persisted with them. */
  readonly tree: LedgerTree;

  constructor(o: LedgerAppOptions = {}) {
    this.cold = o.cold ?? null;
    const cold = this.cold;
    this.tree = new LedgerTree(cold === null ? null : { getMany: (keys) => cold.getMany(keys) });
    this.source = o.archiveSource ?? null;
    this.log = o.log ?? (() => {});
    this.indexRunRecords = o.indexRunRecords ?? ledgerLimits.archiveIndexRunRecords;
    assert(Number.isSafeInteger(this.indexRunRecords) && this.indexRunRecords >= 1 && this.indexRunRecords <= ledgerLimits.archiveIndexRunRecords, `index runs of ${this.indexRunRecords} records`);
  }
  private readonly listeners = new Set<AppliedListener>();
  /**
   * Every applied governance decision, in log order, kept beside the state (and in snapshots):
   * a kernel that missed some (its daemon crashed between applying and forwarding, or it was
   * replaced) catches up from here, because the ledger state itself keeps only their effects.
   */
  private decisions: AppliedDecision[] = [];
  /** Decisions waiting for approvals, and admitted acts' approvals (node/approvals/book.ts). */
  readonly book = new ApprovalBook();

  get state(): LedgerState {
    return this.current;
  }

  /** How many events the ledger has accepted into its hash chain (the node's /status `keys`). */
  get size(): number {
    return this.current.height;
  }

  /** The key-value read of the node's client service: the ledger is read through the admin API. */
  get(_key: string): Uint8Array | undefined {
    return undefined;
  }

  /**
   * Observe applied entries. Listeners run inside the driver's apply step, before the batch is
   * durable on this node (the entry itself is committed on a quorum): they must only record what
   * they saw and schedule work, never block or throw.
   */
  subscribe(l: AppliedListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** Applied governance decisions after ledger index `index`, oldest first. */
  decisionsAfter(index: number): readonly AppliedDecision[] {
    return this.decisions.filter((d) => d.index > index);
  }

  load(get: (key: string) => Uint8Array | undefined, keys: () => Iterable<string>): void {
    const b = get(STATE_KEY);
    this.current = b === undefined ? emptyState() : restore(b);
    this.tree.load(get, this.current.height);
    this.decisions = [...keys()].filter((k) => k.startsWith(DECISION_PREFIX)).sort().map((k) => decisionFromStored(get(k) as Uint8Array));
    this.book.load(get, keys());
  }

  /**
   * Reads from the archive every ended act and permit the batch's events name (see the header).
   * The names are collected first and read all at once: the store does not change while a batch
   * is prepared (its write comes after), so the reads' order cannot matter, and one round of
   * concurrent reads costs the batch one wait instead of one per named act (every new act is
   * looked up, to refuse an idempotency key that already ended).
   */
  async prepare(commands: readonly Uint8Array[]): Promise<void> {
    const batch = new BatchArchive();
    this.batch = batch;
    this.deferState = true;
    this.tree.newBatch();
    if (this.cold === null) return;
    const cold = this.cold;
    const c = this.current.cluster;
    const opIds = new Set<string>();
    const permits = new Set<string>();
    for (const command of commands) {
      const cmd = decodeLedgerCommand(command);
      let ev: LedgerEvent;
      try {
        ev = eventFromCbor(decode(cmd === null ? command : cmd.event));
      } catch {
        continue; // refused by apply before any lookup
      }
      const named = namedByEvent(ev);
      for (const id of named.opIds) if (c === null || !Object.hasOwn(c.ops, id)) opIds.add(id);
      for (const hex of named.permits) if (c === null || !Object.hasOwn(c.permits, hex)) permits.add(hex);
    }
    const [acts, owners] = await Promise.all([
      Promise.all([...opIds].map(async (id) => [id, await this.readArchived(id)] as const)),
      Promise.all([...permits].map(async (hex) => [hex, await cold.get(PERMIT_PREFIX + hex)] as const)),
    ]);
    const read = new Map(acts);
    for (const [id, a] of acts) batch.acts.set(id, a?.op ?? null);
    await Promise.all(owners.map(async ([hex, owner]) => {
      const id = owner === undefined ? undefined : Buffer.from(owner).toString('utf8');
      const a = id === undefined ? undefined : read.has(id) ? read.get(id) : await this.readArchived(id);
      batch.permits.set(hex, a?.permit ?? null);
    }));
  }

  /**
   * The state after the batch, written in the batch's one LevelDB write with the applied index
   * (the driver persists every write of a batch atomically, so writing the state once per batch
   * instead of once per entry changes nothing a crash could observe).
   */
  finish(): AppWrite[] {
    if (!this.deferState) return [];
    this.deferState = false;
    return [{ key: STATE_KEY, value: snapshot(this.current) }, this.tree.stateWrite()];
  }

  /** Records at positions >= this are not part of the archive yet (see restore). */
  private get visibleCount(): number {
    return this.current.cluster?.archived.count ?? 0;
  }

  /** An ended act from disk, if the state counts it (a record fetched for a snapshot not yet installed does not exist). */
  private async readArchived(opId: string): Promise<ArchivedAct | undefined> {
    const seq = await this.positionOf(opId);
    if (seq === null) return undefined;
    const b = await (this.cold as ColdStore).get(logKey(seq));
    if (b === undefined) return undefined;
    const a = archivedFrom(b, seq);
    return a.op.opId === opId ? a : undefined;
  }

  /** Where the index puts act `opId`, if that position is counted (the record there may still name another act: see the header). */
  private async positionOf(opId: string): Promise<number | null> {
    const i = await (this.cold as ColdStore).get(OP_PREFIX + opId);
    if (i === undefined) return null;
    const seq = storedPosition(i);
    return seq < this.visibleCount ? seq : null;
  }

  /** The record stored at position `seq`, or undefined. Ignores visibility. */
  private async storedAt(seq: number): Promise<Uint8Array | undefined> {
    return (this.cold as ColdStore).get(logKey(seq));
  }

  /**
   * The canonical records at positions fromSeq .. toSeq-1, in order, all of which the state
   * counts (the backup file and the peers' fetches read them). Records the last batch archived
   * may not be on disk yet: they are served from memory, as endedActs does.
   */
  async *archiveRecords(fromSeq: number, toSeq: number): AsyncGenerator<Uint8Array> {
    if (this.cold === null) return;
    assert(Number.isSafeInteger(fromSeq) && Number.isSafeInteger(toSeq) && fromSeq >= 0 && toSeq <= this.visibleCount, `archive range ${fromSeq}..${toSeq} of ${this.visibleCount}`);
    // A slice at a time, from one scan of `archive/log/` that seeks to the slice's first position
    // (one read per record cost a thread-pool round trip each: a peer serving a wiped node spent
    // most of its time waiting on them).
    for (let lo = fromSeq; lo < toSeq; lo += ledgerLimits.archiveFetchRecordsMax) {
      const hi = Math.min(toSeq, lo + ledgerLimits.archiveFetchRecordsMax);
      const stored = await this.storedRange(lo, hi);
      for (let seq = lo; seq < hi; seq++) {
        const b = this.batch.ended.get(seq)?.bytes ?? stored[seq - lo] ?? (await this.storedAt(seq)) ?? this.batch.ended.get(seq)?.bytes;
        if (b === undefined) throw new CustodyError('STORAGE_CORRUPT', `archive: act number ${seq} is counted but not stored`);
        yield b;
      }
    }
  }

  /** The records stored at positions lo .. hi-1 (undefined where none), from one scan that seeks to lo. Ignores visibility. */
  private async storedRange(lo: number, hi: number): Promise<(Uint8Array | undefined)[]> {
    const out: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(hi - lo).fill(undefined);
    for await (const [k, v] of (this.cold as ColdStore).scan(LOG_PREFIX, { from: logKey(lo), to: logKey(hi) })) {
      const seq = Number(k.slice(LOG_PREFIX.length));
      if (Number.isSafeInteger(seq) && seq >= lo && seq < hi) out[seq - lo] = v;
    }
    return out;
  }

  /**
   * A peer's fetch (ArchiveSource.fetch on its side): at most `n` records from `fromSeq`, all
   * counted by this node's state, at most ledger.archiveFetchRecordsMax records and, past the
   * first, ledger.archiveFetchBytesMax bytes. A range past this node's count, or outside the
   * bounds, is refused ARCHIVE_RANGE_REFUSED (the asking node then asks another peer).
   */
  async archiveRange(fromSeq: number, n: number): Promise<Uint8Array[]> {
    const count = this.visibleCount;
    if (this.cold === null) throw new CustodyError('ARCHIVE_RANGE_REFUSED', 'this node keeps no archive');
    if (!Number.isSafeInteger(fromSeq) || !Number.isSafeInteger(n) || fromSeq < 0 || n < 1 || n > ledgerLimits.archiveFetchRecordsMax) {
      throw new CustodyError('ARCHIVE_RANGE_REFUSED', `range of ${n} records from ${fromSeq}: at most ${ledgerLimits.archiveFetchRecordsMax} records from a position >= 0`);
    }
    if (fromSeq + n > count) throw new CustodyError('ARCHIVE_RANGE_REFUSED', `records ${fromSeq}..${fromSeq + n - 1} asked, this node has archived ${count}`);
    const out: Uint8Array[] = [];
    let bytes = 0;
    for await (const r of this.archiveRecords(fromSeq, fromSeq + n)) {
      if (out.length > 0 && bytes + r.length > ledgerLimits.archiveFetchBytesMax) break;
      out.push(r);
      bytes += r.length;
    }
    return out;
  }

  /**
   * An act by idempotency key, in flight or ended: what `custody admin act show` and evidence
   * export read. Ended acts come from the archive (a read from disk).
   */
  async act(opId: string): Promise<OpRecord | undefined> {
    const c = this.current.cluster;
    if (c !== null && Object.hasOwn(c.ops, opId)) return c.ops[opId];
    if (this.cold === null) return undefined;
    // Archived by the last batch: the driver acknowledges an unsynced batch before its write
    // completes, so a client may ask before the record is on disk.
    const recent = this.batch.acts.get(opId);
    if (recent) return recent;
    return (await this.readArchived(opId))?.op;
  }

  /** The last `n` acts that ended, oldest first (the chronicle). */
  async endedActs(n: number): Promise<OpRecord[]> {
    const cl = this.current.cluster;
    if (this.cold === null || cl === null || n <= 0) return [];
    const out: OpRecord[] = [];
    const batch = this.batch;
    for (let seq = Math.max(0, cl.archived.count - n); seq < cl.archived.count; seq++) {
      const recent = batch.ended.get(seq);
      if (recent !== undefined) {
        out.push(recent.op);
        continue;
      }
      const b = await this.cold.get(logKey(seq));
      if (b !== undefined) out.push(archivedFrom(b, seq).op);
    }
    return out;
  }

  apply(_raftIndex: number, command: Uint8Array): { result: Uint8Array; writes: AppWrite[] } {
    if (isBookCommand(command)) return this.applyBook(command);
    // The ledger numbers its entries itself, one per applied command: the driver may carry several
    // commands in one Raft entry (batching), and the ledger needs strictly increasing indexes.
    // Every node applies the same commands in the same order, so every node assigns the same one.
    const index = this.current.index + 1;
    const cmd = decodeLedgerCommand(command);
    const entry: LedgerEntry = cmd === null
      ? { index, stampMs: this.current.clockMs, event: command }
      : { index, stampMs: cmd.stampMs, event: cmd.event };
    const r = this.cold === null ? apply(this.current, entry) : apply(this.current, entry, this.batch);
    // Everything that can fail is computed before the state moves, so a failed step leaves the
    // application where it was (the driver may retry the same entry).
    // Between prepare() and finish() the state is written once, by finish(), for the whole batch.
    const writes: AppWrite[] = this.deferState ? [] : [{ key: STATE_KEY, value: snapshot(r.state) }];
    const result = encodeVerdict(verdictOf(r.result));
    if (this.cold !== null) {
      for (const a of r.archived) {
        this.batch.add(a);
        writes.push(...recordWrites(keysOf(a), a.seq, a.bytes));
      }
    }
    let applied: AppliedDecision | null = null;
    if (r.result.ok && !r.result.replayed && r.result.type === 'GovernanceDecision') {
      const ev = decodeEvent(entry.event);
      // PublicationReleased belongs to the operation journal, not to the governance chain the
      // kernels follow (kernel/authority.ts refuses it).
      if (ev.type === 'GovernanceDecision' && ev.decision.body.action.kind !== 'PublicationReleased') {
        applied = { index, stampMs: r.state.clockMs, decision: encode(decisionToCbor(ev.decision)) };
        writes.push({ key: decisionKey(index), value: decisionToStored(applied) });
      }
    }
    // The approval book settles what this entry consumed (node/approvals/book.ts).
    const t = r.result.type;
    writes.push(...this.book.afterLedger(t === 'GovernanceDecision' || t === 'ActSubmitted' ? decodeEventOrNull(entry.event) : null, r.result.ok && !r.result.replayed, r.state));
    // An entry the ledger chained is a leaf of the tree, written with the entry's state
    // (node/ledger-tree.ts); a refusal it did not record, or a replay, is not.
    if (r.state.height > this.current.height) writes.push(...this.tree.append(entry, r.result.type, r.state.height, !this.deferState));
    this.current = r.state;
    if (applied !== null) this.decisions.push(applied);
    for (const l of this.listeners) {
      try {
        l(entry, r.result, r.state);
      } catch {
        // A listener's fault must not make nodes diverge: the state is already computed.
      }
    }
    return { result, writes };
  }

  /**
   * A command of the approval book: applied beside the ledger, which it leaves untouched (no
   * ledger index, clock or root moves); the verdict travels back like a ledger verdict.
   */
  private applyBook(command: Uint8Array): { result: Uint8Array; writes: AppWrite[] } {
    const d = decodeBookCommand(command);
    const common = { index: this.current.index, type: null, applied: false, replayed: false };
    if (typeof d === 'string') return { result: encodeVerdict({ ok: false, ...common, reason: 'PAYLOAD_REJECTED', detail: d }), writes: [] };
    const r = this.book.apply(d.stampMs, d.command, this.current);
    const v: LedgerVerdict = r.verdict.ok ? { ok: true, ...common, detail: r.verdict.detail } : { ok: false, ...common, reason: r.verdict.reason, detail: r.verdict.detail };
    return { result: encodeVerdict(v), writes: r.writes };
  }

  /**
   * The state, the applied decisions and the approval book: canonical CBOR {tag, state, decisions,
   * book}. The archive does not travel in it: the state commits to the archive by its accumulator
   * (`cluster.archived`: count and head), and a node installing the snapshot fetches the records it
   * lacks from its peers (restore). So the snapshot's size is that of what is in memory, however
   * long the history. The backup file streams the records beside it (archiveRecords).
   */
  snapshot(): Uint8Array {
    const edge = this.tree.snapshotEdge();
    const base = { tag: SNAPSHOT_TAG, state: snapshot(this.current), decisions: this.decisions.map((d) => ({ index: d.index, stampMs: d.stampMs, decision: d.decision })), book: this.book.snapshot(), ...(edge !== undefined ? { tlog: edge } : {}) };
    // `cold`: the ended acts the state counts are in an archive beside it, not in the state.
    return encode(this.cold === null ? base : { ...base, cold: true });
  }

  /** Ended acts leave memory for an archive (then snapshots say so, and the backup file carries the records). */
  get keepsArchive(): boolean {
    return this.cold !== null;
  }

  /**
   * Replaces the state with a snapshot's. With an archive, the node first makes its archive hold
   * exactly the records the snapshot's accumulator counts, then installs the state.
   *
   * Message flow (node N installs a snapshot S whose state counts C records with head H):
   *   1. N takes the records its own state counts as its accumulator (count c, head h_c) commits
   *      to them, and re-hashes from h_c only the records it holds past c (fetched for an install a
   *      crash interrupted, never counted). When S counts fewer than c, N re-hashes everything it
   *      holds from position 0 instead: the records its state counts must reproduce h_c, else its
   *      prefix is not trusted and is fetched again.
   *   2. From the first position it lacks, N asks a peer P (ArchiveSource) for ranges of at most
   *      ledger.archiveFetchRecordsMax records; P serves only positions its own state counts
   *      (archiveRange). N writes each answer to its store at once (ColdStore.put), extending the
   *      hash chain as it goes, and never holds more than one answer in memory.
   *   3. When the chain reaches C it must equal H. Otherwise (or on a short, undecodable or refused
   *      answer) P is refused ARCHIVE_RECORD_REJECTED and the next peer is asked, from N's own
   *      verified prefix (the records written from P's answers are suspect). After
   *      ledger.archiveFetchRoundsMax rounds over every peer, ARCHIVE_UNAVAILABLE.
   *   4. The state, decisions and book are returned as writes of the driver's one atomic batch
   *      with the Raft snapshot and applied index, as before.
   *
   * Why step 1 need not re-read the counted prefix: H = link(...link(h_c, r_c)..., r_{C-1}) for
   * the records N fetched is a statement about S's whole sequence, and an S whose first c records
   * differed from those h_c commits to would make H the head of two sequences (a SHA-256
   * collision). The stored prefix is what h_c commits to exactly as every read already trusts it
   * (act, endedActs, archiveRange serve it as it is, checksummed, written in the same atomic batch
   * as the state counting it). An install is therefore no scrub of the prefix: a counted record lost
   * from disk, or altered behind a valid checksum, stays as it was, as it would without the install
   * (a read of it fails STORAGE_CORRUPT, or serves bytes a peer's chain check refuses).
   *
   * Safety: "visible only once counted". Every read of the archive (act, endedActs, prepare's
   * lookups, archiveRecords, archiveRange) ignores a record whose position is >= the state's
   * archived.count. So the records written in step 2 change nothing any read can observe until the
   * batch of step 4 makes a state counting them durable, and by then the chain check has shown
   * they are exactly the C records H commits to (SHA-256 chain: another sequence reproducing H is
   * a collision). A crash anywhere before step 4 is durable leaves the old state with some
   * invisible records past its count; a crash after leaves the new state, whose records were made
   * durable (the last put is synced, and LevelDB's log keeps writes in order) before it.
   * Invisible records never become visible unchecked: (a) a later install re-hashes them against
   * that snapshot's head (step 1, then 3); (b) the node's own apply of position k, the only other
   * way its count grows, writes its own record for k in the same batch that counts it, overwriting
   * whatever was there. Overwriting is harmless because archived acts are final and every node's
   * archive is a prefix of one sequence (Raft log matching: position k is the k-th act to end in
   * the one committed log), so an honest record at k is the same bytes wherever it comes from.
   * A peer's record is stored under its position, which the state does not count yet, and indexed
   * by its act's opId: a lying peer could name an act this node already counts, which would move
   * that act's index entry away from its counted record; such a record is refused before it is
   * written (checkOverwrite), so no counted record and no index entry of a counted act is replaced
   * by an unverified one. The index entry an uncounted record leaves behind when (b) overwrites
   * its position points at a record of another act, and every read through the index takes a
   * record only if it names the act asked for.
   *
   * Liveness: the leader that sent S counts at least C records (archives only grow), so it can
   * always serve; the node's driver loop waits while the records come (this node alone stops
   * applying; the others go on).
   *
   * A snapshot carrying an `archive` field (written before the archive stopped travelling in
   * snapshots) is its own first source: its records are checked the same way.
   */
  restore(data: Uint8Array): AppWrite[] | Promise<AppWrite[]> {
    const writes: AppWrite[] = this.decisions.map((d) => ({ key: decisionKey(d.index), value: null }));
    if (data.length === 0) {
      this.current = emptyState();
      this.decisions = [];
      this.batch = new BatchArchive();
      writes.push(...this.book.restore(undefined), { key: STATE_KEY, value: null }, ...this.tree.restore(undefined, 0));
      if (this.cold === null) return writes;
      // Nothing is counted any more: the records are deleted (they would be invisible anyway).
      const cold = this.cold;
      return (async () => {
        for await (const [key] of cold.scan(ARCHIVE_PREFIX)) writes.push({ key, value: null });
        return writes;
      })();
    }
    const { o, state, cold: snapshotCold } = decodeAppSnapshot(data);
    const inline = (o.archive ?? null) as Uint8Array[] | null;
    const counted = state.cluster?.archived.count ?? 0;
    if (this.cold === null && snapshotCold && counted > 0) throw new CustodyError('STORAGE_CORRUPT', 'ledger snapshot: its ended acts are in an archive, and this node keeps none');
    const install = (): AppWrite[] => {
      this.current = state;
      this.decisions = (o.decisions as { index: number; stampMs: number; decision: Uint8Array }[]).map((d) => ({ index: d.index, stampMs: d.stampMs, decision: d.decision }));
      this.batch = new BatchArchive();
      writes.push(...this.book.restore(o.book), { key: STATE_KEY, value: o.state as Uint8Array }, ...this.decisions.map((d) => ({ key: decisionKey(d.index), value: decisionToStored(d) })));
      // The tree's right edge travels with the state (node/ledger-tree.ts says why that suffices).
      writes.push(...this.tree.restore(o.tlog as Uint8Array | undefined, state.height));
      return writes;
    };
    // A snapshot of an application without an archive holds its ended acts in its state.
    if (this.cold === null || !snapshotCold) return install();
    const target = state.cluster?.archived ?? EMPTY_ARCHIVE_HEAD;
    return this.fillArchive(target, inline).then(install);
  }

  /** Steps 1-3 of restore: makes the store hold the `target.count` records `target.head` commits to. */
  private async fillArchive(target: ArchiveHead, inline: readonly Uint8Array[] | null): Promise<void> {
    const own = this.current.cluster?.archived ?? EMPTY_ARCHIVE_HEAD;
    const t0 = performance.now();
    // Step 1. The records the state counts are taken by its accumulator when the snapshot counts
    // at least as many (the usual case: a node that fell behind), so only what lies past them is
    // read; otherwise the whole prefix is re-hashed.
    const quick = own.count > 0 && own.count <= target.count;
    const runs = new IndexRuns(this.cold as ColdStore, this.indexRunRecords);
    const { verified, held } = quick ? await this.chainPast(own, target, runs) : await this.localChain(own, target, runs);
    const localMs = performance.now() - t0;
    if (!(held.count === target.count && sameHead(held, target))) {
      this.log(`archive: the snapshot counts ${target.count} records; this node holds ${held.count} (${verified.count} ${quick ? 'counted by its own state' : 'verified against its own state'}), re-hashed in ${ms(localMs)}`);
      await this.fetchRounds(held.count < target.count ? held : verified, verified, target, own, inline, runs);
    }
    await runs.write(true);
    if (runs.indexed > 0) this.log(`archive: index entries of ${runs.indexed} records written in ${runs.runs} runs, ${ms(runs.ms)} (sealing the store's write buffer ${ms(runs.sealMs)})`);
  }

  /** Steps 2-3 over every source, for up to ledger.archiveFetchRoundsMax rounds; ARCHIVE_UNAVAILABLE if none serves. */
  private async fetchRounds(from: ArchiveHead, verified: ArchiveHead, target: ArchiveHead, own: ArchiveHead, inline: readonly Uint8Array[] | null, runs: IndexRuns): Promise<void> {
    const sources: { name: string; fetch: (fromSeq: number, n: number) => Promise<readonly Uint8Array[]> }[] = [];
    if (inline !== null) sources.push({ name: 'the snapshot', fetch: async (at, n) => inline.slice(at, at + n) });
    const refusals: string[] = [];
    let start = from;
    for (let round = 0; round < ledgerLimits.archiveFetchRoundsMax; round++) {
      if (round > 0) await this.source?.pause?.(round);
      const peers = [...sources, ...(this.source?.peers() ?? []).map((p) => ({ name: p, fetch: (at: number, n: number) => (this.source as ArchiveSource).fetch(p, at, n) }))];
      if (peers.length === 0) {
        // No peer reachable now (they may be restarting): a round like one where every peer
        // refused, so the install waits for them as long as for refusing peers.
        if (this.source === null) break;
        this.log(`archive: no peer to ask for records from ${start.count}; waiting (round ${round + 1} of ${ledgerLimits.archiveFetchRoundsMax})`);
        continue;
      }
      for (const p of peers) {
        try {
          const t = await this.fetchFrom(p.fetch, start, target, own.count, runs);
          if (start.count < target.count) this.log(`archive: fetched records ${start.count}..${target.count - 1} from ${p.name} in ${ms(t.totalMs)} (waiting for answers ${ms(t.waitMs)}, checking ${ms(t.checkMs)}, writing ${ms(t.writeMs)}; ${t.answers} answers)`);
          return;
        } catch (e) {
          const why = e instanceof CustodyError ? `${e.reason}: ${e.detail}` : (e as Error).message;
          refusals.push(`${p.name}: ${why}`);
          this.log(`archive: ${p.name} refused for records from ${start.count}: ${why}`);
          start = verified; // what this answer wrote is suspect: the next peer starts from what verified
          runs.dropFrom(verified.count);
        }
      }
      if (inline !== null) break; // a snapshot file is its own whole source
    }
    throw new CustodyError('ARCHIVE_UNAVAILABLE', `the snapshot counts ${target.count} archived acts and this node holds ${verified.count} verified; no source served the rest (${refusals.slice(-6).join('; ') || 'no peer to ask'})`);
  }

  /**
   * Step 1 for a node whose state counts `own.count` <= target.count records: those are taken as
   * its accumulator commits to them, and only the records held past them (staged by an install a
   * crash interrupted, never counted) are re-hashed, from `own`.
   */
  private async chainPast(own: ArchiveHead, target: ArchiveHead, runs: IndexRuns): Promise<{ verified: ArchiveHead; held: ArchiveHead }> {
    let h = own;
    walk: for (let lo = own.count; lo < target.count; lo += ledgerLimits.archiveFetchRecordsMax) {
      for (const r of await this.storedRange(lo, Math.min(target.count, lo + ledgerLimits.archiveFetchRecordsMax))) {
        if (r === undefined || !(await this.indexHeld(r, h.count, own.count, runs))) break walk;
        h = archiveLink(h, r);
      }
    }
    return { verified: own, held: h };
  }

  /**
   * A record held past what the state counts (written by an install a crash interrupted) is
   * indexed again: its index run may not have been written before the crash. A record that does
   * not decode, or would move an act the state counts (checkOverwrite), is where what is held
   * ends (false): the fetch starts there and writes over it.
   */
  private async indexHeld(record: Uint8Array, seq: number, visible: number, runs: IndexRuns): Promise<boolean> {
    let k: RecordKeys;
    try {
      k = fetchedKeys(record);
      if (visible > 0) await this.checkOverwrite(k, seq, visible);
    } catch {
      return false;
    }
    await runs.add(seq, k);
    return true;
  }

  /**
   * Step 1: re-hashes the records held at positions 0, 1, ... (below target.count, stopping at the
   * first missing one). `verified` is where this node's own state's accumulator was reproduced
   * (or the empty archive); `held` is where the records run out.
   */
  private async localChain(own: ArchiveHead, target: ArchiveHead, runs: IndexRuns): Promise<{ verified: ArchiveHead; held: ArchiveHead }> {
    let h = EMPTY_ARCHIVE_HEAD;
    let verified = EMPTY_ARCHIVE_HEAD;
    // Read a slice at a time (one seek and one multi-get, as a peer is served), hashed in order.
    walk: for (let lo = 0; lo < target.count; lo += ledgerLimits.archiveFetchRecordsMax) {
      const slice = await this.storedRange(lo, Math.min(target.count, lo + ledgerLimits.archiveFetchRecordsMax));
      for (const r of slice) {
        if (r === undefined) break walk;
        // Past what the state counts: held from an interrupted install (chainPast says why).
        if (h.count >= own.count && !(await this.indexHeld(r, h.count, own.count, runs))) break walk;
        h = archiveLink(h, r);
        if (h.count === own.count) {
          if (!sameHead(h, own)) {
            this.log(`archive: the ${own.count} records this node holds do not reproduce its own accumulator; fetching them again`);
            return { verified: EMPTY_ARCHIVE_HEAD, held: EMPTY_ARCHIVE_HEAD };
          }
          verified = h;
        }
      }
    }
    if (h.count < Math.min(own.count, target.count)) {
      this.log(`archive: this node holds ${h.count} of the ${own.count} records its state counts; fetching the rest`);
      return { verified: EMPTY_ARCHIVE_HEAD, held: h };
    }
    return { verified, held: h };
  }

  /** Steps 2-3 from one source: writes each answer, then checks the chain reproduces `target`. */
  private async fetchFrom(fetch: (fromSeq: number, n: number) => Promise<readonly Uint8Array[]>, start: ArchiveHead, target: ArchiveHead, visible: number, runs: IndexRuns): Promise<FetchTimes> {
    const cold = this.cold as ColdStore;
    const t: FetchTimes = { totalMs: 0, waitMs: 0, checkMs: 0, writeMs: 0, answers: 0 };
    const t0 = performance.now();
    let h = start;
    // Answers are asked for ahead (ledger.archiveFetchAnswersAhead) while the last is checked and
    // written: the peer reads the next ranges while this node works. Asks cover consecutive ranges
    // and are taken in order; an answer cut short by the peer's byte bound leaves a gap, asked for
    // at once and taken before the ranges already asked past it (so one more answer may be on its
    // way). Asks are sized to the shortest answer so far, so that once the records' size is seen
    // answers are rarely cut short. In memory: the answers on their way, the one being checked
    // and the one being written.
    interface Ask { readonly from: number; readonly n: number; readonly answer: Promise<readonly Uint8Array[]> }
    let size: number = ledgerLimits.archiveFetchRecordsMax;
    const ask = (from: number, n: number): Ask => {
      const answer = fetch(from, n);
      answer.catch(() => {}); // awaited below, or dropped with the refusal of an earlier answer
      return { from, n, answer };
    };
    const asks: Ask[] = [];
    let askedTo = h.count; // the end of the ranges asked for, gaps aside
    const topUp = (): void => {
      while (asks.length < ledgerLimits.archiveFetchAnswersAhead && askedTo < target.count) {
        const n = Math.min(size, target.count - askedTo);
        asks.push(ask(askedTo, n));
        askedTo += n;
      }
    };
    topUp();
    // The write in flight, settled to its error (null when it landed): nothing it throws is left
    // unobserved while the next answer is checked, and `landed` raises it where the fetch waits.
    let writing: Promise<unknown> | null = null;
    const landed = async (w: Promise<unknown>): Promise<void> => {
      const err = await w;
      if (err !== null) throw err;
    };
    let at = 0;
    try {
      for (let next = asks.shift(); next !== undefined; next = asks.shift()) {
        const { from, n, answer } = next;
        assert(from === h.count, `archive fetch: the ask at ${from} is taken at ${h.count}`);
        at = performance.now();
        const records = await answer;
        t.answers++;
        t.waitMs += performance.now() - at;
        at = performance.now();
        if (records.length === 0 || records.length > n) throw new CustodyError('ARCHIVE_RECORD_REJECTED', `asked for ${n} records from ${h.count}, got ${records.length}`);
        if (records.length < n) {
          asks.unshift(ask(from + records.length, n - records.length)); // the gap, before what is asked past it
          size = Math.min(size, records.length);
        }
        topUp();
        const writes: AppWrite[] = []; // the records alone: their index entries go in runs (IndexRuns)
        const keys: RecordKeys[] = [];
        const first = h.count;
        for (const record of records) {
          if (!(record instanceof Uint8Array)) throw new CustodyError('ARCHIVE_RECORD_REJECTED', `record ${h.count} is not bytes`);
          let k: RecordKeys;
          try {
            k = fetchedKeys(record);
          } catch (e) {
            throw new CustodyError('ARCHIVE_RECORD_REJECTED', `record ${h.count} does not decode: ${(e as Error).message}`);
          }
          if (visible > 0) await this.checkOverwrite(k, h.count, visible);
          writes.push({ key: logKey(h.count), value: record });
          keys.push(k);
          h = archiveLink(h, record);
        }
        t.checkMs += performance.now() - at;
        // One write in flight while the next answer is checked; the next waits for it, so the
        // writes reach the store in order and the last (synced) one makes every one before durable.
        // Writing: the wait for the last write, and the part of this one that runs before the
        // store takes it (sealing every value, building the batch).
        at = performance.now();
        if (writing !== null) await landed(writing);
        writing = cold.put(writes, h.count === target.count).then(() => null, (e: unknown) => e);
        // A run due is written once the records it indexes have landed (IndexRuns: they must not
        // share the store's write buffer).
        if (runs.due(keys.length)) {
          const w = writing;
          writing = null;
          await landed(w);
        }
        for (let i = 0; i < keys.length; i++) await runs.add(first + i, keys[i] as RecordKeys);
        t.writeMs += performance.now() - at;
      }
      at = performance.now();
      const last = writing;
      writing = null;
      if (last !== null) await landed(last);
      t.writeMs += performance.now() - at;
    } finally {
      // A refused answer: the write before it still lands before the next source writes the same keys.
      // The refusal in flight is what this fetch reports; a failed write under it is logged with its
      // reason, and the next source rewrites the same records from the same count.
      if (writing !== null) {
        const e = await writing;
        if (e !== null) this.log(`archive: a write of fetched records failed while the fetch was being refused: ${isCustodyError(e) ? `${e.reason}: ${e.detail}` : String(e)}`);
      }
    }
    if (!sameHead(h, target)) throw new CustodyError('ARCHIVE_RECORD_REJECTED', `records ${start.count}..${target.count - 1} do not reproduce the snapshot's archive head (missing, altered or out of order)`);
    t.totalMs = performance.now() - t0;
    return t;
  }

  /**
   * A fetched record must not move an act (or a permit's owner) the state counts at another
   * position: its index entries would then point away from the counted record.
   */
  private async checkOverwrite(a: RecordKeys, seq: number, visible: number): Promise<void> {
    const cold = this.cold as ColdStore;
    // Where the state counts act `opId`: the index's position, if counted and holding that act.
    const counted = async (opId: string): Promise<number | null> => {
      const i = await cold.get(OP_PREFIX + opId);
      if (i === undefined) return null;
      const at = storedPosition(i);
      if (at >= visible) return null;
      const b = await cold.get(logKey(at));
      return b !== undefined && fetchedKeys(b).opId === opId ? at : null;
    };
    const at = await counted(a.opId);
    if (at !== null && at !== seq) throw new CustodyError('ARCHIVE_RECORD_REJECTED', `record ${seq} names act ${a.opId}, which ended at position ${at}`);
    if (a.permitId !== null) {
      const owner = await cold.get(PERMIT_PREFIX + toHex(a.permitId));
      const o = owner === undefined ? null : Buffer.from(owner).toString('utf8');
      if (o !== null && o !== a.opId && (await counted(o)) !== null) throw new CustodyError('ARCHIVE_RECORD_REJECTED', `record ${seq} claims the permit of act ${o}`);
    }
  }

  root(): string {
    return toHex(stateRoot(this.current));
  }
}

function decodeEventOrNull(b: Uint8Array): LedgerEvent | null {
  try {
    return decodeEvent(b);
  } catch {
    return null;
  }
}

function decisionToStored(d: AppliedDecision): Uint8Array {
  return encode({ index: d.index, stampMs: d.stampMs, decision: d.decision });
}

function decisionFromStored(b: Uint8Array): AppliedDecision {
  const o = decode(b) as unknown as AppliedDecision;
  return { index: o.index, stampMs: o.stampMs, decision: o.decision };
}

interface AppSnapshotFields { tag?: unknown; state?: unknown; decisions?: unknown; archive?: unknown; cold?: unknown; book?: CborValue; tlog?: unknown }

/**
 * Decodes and checks the shape of an application snapshot (STORAGE_CORRUPT otherwise). `cold`:
 * the ended acts its state counts are kept in an archive beside it (in a snapshot written before
 * the archive stopped travelling in it, the `archive` field holds them).
 */
export function decodeAppSnapshot(data: Uint8Array): { o: AppSnapshotFields; state: LedgerState; cold: boolean } {
  let o: AppSnapshotFields;
  try {
    o = decode(data, { bytesMax: ledgerLimits.appSnapshotBytesMax }) as AppSnapshotFields;
  } catch (e) {
    throw new CustodyError('STORAGE_CORRUPT', `ledger snapshot: ${(e as Error).message}`);
  }
  if (o === null || typeof o !== 'object' || o.tag !== SNAPSHOT_TAG || !(o.state instanceof Uint8Array) || !Array.isArray(o.decisions)) throw new CustodyError('STORAGE_CORRUPT', 'ledger snapshot: not a ledger application snapshot');
  if (o.archive !== undefined && (!Array.isArray(o.archive) || !o.archive.every((x) => x instanceof Uint8Array))) throw new CustodyError('STORAGE_CORRUPT', 'ledger snapshot: malformed archive');
  if (o.cold !== undefined && o.cold !== true) throw new CustodyError('STORAGE_CORRUPT', 'ledger snapshot: malformed cold flag');
  if (o.tlog !== undefined && !(o.tlog instanceof Uint8Array)) throw new CustodyError('STORAGE_CORRUPT', 'ledger snapshot: malformed Merkle tree edge');
  return { o, state: restore(o.state), cold: o.cold === true || o.archive !== undefined };
}

/** Where the time of one source's fetch went (logged: what an operator watching a resync sees). */
interface FetchTimes { totalMs: number; waitMs: number; checkMs: number; writeMs: number; answers: number }

function ms(x: number): string {
  return x < 10_000 ? `${Math.round(x)} ms` : `${(x / 1000).toFixed(1)} s`;
}

function sameHead(a: ArchiveHead, b: ArchiveHead): boolean {
  return a.count === b.count && bytesEqual(a.head, b.head);
}

/**
 * The writes storing the canonical record `record` at position `seq` (keys relative to the
 * application's prefix), as a node stages records it has not counted yet: `custody cluster
 * restore` stages a backup's archive this way before seeding the state that counts it.
 */
export function archiveRecordWrites(seq: number, record: Uint8Array): AppWrite[] {
  return recordWrites(keysOf(decodeArchived(record)), seq, record);
}

/** What a record is stored under: its act, and its spent permit if it had one. */
interface RecordKeys {
  readonly opId: string;
  readonly permitId: Uint8Array | null;
}

function keysOf(a: ArchivedAct): RecordKeys {
  return { opId: a.op.opId, permitId: a.permit !== null ? a.op.permitId : null };
}

/**
 * The keys of a fetched record, read by walking its CBOR (RFC 8949 §3) to `op.opId`, `op.permitId`
 * and whether `permit` is null, without building the act: a resync reads a million of them, and
 * decoding each whole record was most of what checking an answer cost. This is not where a record
 * is trusted: the hash chain is (fetchFrom), and a record that reproduces the snapshot's head is
 * byte for byte one the ledger archived, canonical CBOR with each key once, for which this walk
 * gives the keys decodeArchived gives (test/lifecycle/archive-fetch.test.ts holds it to that).
 * On anything else it only has to stay within the bytes and end: every length and count is
 * checked against what is left before it is used, nesting is bounded, and a record it cannot walk
 * is refused.
 */
export function fetchedKeys(record: Uint8Array): RecordKeys {
  const w = new CborWalk(record);
  const top = w.head();
  if (top.major !== 5) throw new Error('not a map');
  let opId: string | null = null;
  let permitId: Uint8Array | null | undefined;
  let hasPermit: boolean | null = null;
  for (let i = 0, n = w.count(top.arg, 2); i < n; i++) {
    const key = w.textOf(RECORD_KEYS);
    if (key === 0) {
      const op = w.head();
      if (op.major !== 5) throw new Error('op is not a map');
      for (let j = 0, n = w.count(op.arg, 2); j < n; j++) {
        const field = w.textOf(OP_KEYS);
        if (field === 0) opId = w.text();
        else if (field === 1) permitId = w.nullOrBytes();
        else w.skip(2);
      }
    } else if (key === 1) {
      hasPermit = !w.atNull();
      w.skip(1);
    } else {
      w.skip(1);
    }
  }
  if (w.pos !== record.length) throw new Error('trailing bytes');
  if (opId === null || opId.length === 0 || permitId === undefined || hasPermit === null) throw new Error('not an archived act');
  return { opId, permitId: hasPermit ? permitId : null };
}

/** The map keys fetchedKeys looks for, as UTF-8 (compared in place: a record has dozens of keys). */
const RECORD_KEYS = ['op', 'permit'].map((k) => Buffer.from(k, 'utf8'));
const OP_KEYS = ['opId', 'permitId'].map((k) => Buffer.from(k, 'utf8'));

/** A bounds-checked walk over CBOR items (definite lengths only, as canonical CBOR is). */
class CborWalk {
  pos = 0;
  constructor(private readonly b: Uint8Array) {}

  private byte(): number {
    const v = this.b[this.pos];
    if (v === undefined) throw new Error('truncated');
    this.pos++;
    return v;
  }

  /** The next item's major type and argument (§3.1); an indefinite length or reserved value throws. */
  head(): { major: number; arg: number } {
    this.read();
    return { major: this.major, arg: this.arg };
  }

  /** The last head read (by read): kept in fields, so walking past items allocates nothing. */
  private major = 0;
  private arg = 0;

  private read(): void {
    const ib = this.byte();
    const info = ib & 0x1f;
    let arg: number;
    if (info < 24) arg = info;
    else if (info <= 27) {
      arg = 0;
      for (let k = 0; k < 1 << (info - 24); k++) arg = arg * 256 + this.byte();
    } else throw new Error(`additional information ${info}`);
    this.major = ib >> 5;
    this.arg = arg;
  }

  /** `n` items of at least one byte each (`per` per entry): more than the bytes left is refused before any loop. */
  count(n: number, per: number): number {
    if (n * per > this.b.length - this.pos) throw new Error('count runs past the end');
    return n;
  }

  private take(n: number): Uint8Array {
    if (n > this.b.length - this.pos) throw new Error('length runs past the end');
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  text(): string {
    const h = this.head();
    if (h.major !== 3) throw new Error('expected text');
    return Buffer.from(this.take(h.arg)).toString('utf8');
  }

  /** Past one text item: the index of the name in `names` it equals, or -1. */
  textOf(names: readonly Uint8Array[]): number {
    this.read();
    if (this.major !== 3) throw new Error('expected text');
    const at = this.pos;
    const len = this.arg;
    if (len > this.b.length - at) throw new Error('length runs past the end');
    this.pos += len;
    next: for (let i = 0; i < names.length; i++) {
      const name = names[i] as Uint8Array;
      if (name.length !== len) continue;
      for (let j = 0; j < name.length; j++) if (this.b[at + j] !== name[j]) continue next;
      return i;
    }
    return -1;
  }

  atNull(): boolean {
    return this.b[this.pos] === 0xf6;
  }

  nullOrBytes(): Uint8Array | null {
    if (this.atNull()) {
      this.pos++;
      return null;
    }
    const h = this.head();
    if (h.major !== 2) throw new Error('expected bytes or null');
    return this.take(h.arg).slice();
  }

  /** Past one whole item, at nesting depth `depth`. */
  skip(depth: number): void {
    if (depth > 64) throw new Error('nested too deep');
    this.read();
    const arg = this.arg;
    switch (this.major) {
      case 2: case 3:
        if (arg > this.b.length - this.pos) throw new Error('length runs past the end');
        this.pos += arg;
        return;
      case 4: for (let i = 0, n = this.count(arg, 1); i < n; i++) this.skip(depth + 1); return;
      case 5: for (let i = 0, n = this.count(arg, 2); i < n * 2; i++) this.skip(depth + 1); return;
      case 6: this.skip(depth + 1); return;
      default: return; // integers and simple values: the head was the whole item
    }
  }
}

/** The keys of one archived record at position `seq` (the layout in the header). */
function recordWrites(k: RecordKeys, seq: number, record: Uint8Array): AppWrite[] {
  return [{ key: logKey(seq), value: record }, ...indexWrites(seq, k.opId, k.permitId === null ? null : toHex(k.permitId))];
}

/** The index entries of the record of act `opId` at position `seq`, and of its spent permit (hex) if it had one. */
function indexWrites(seq: number, opId: string, permitHex: string | null): AppWrite[] {
  const w: AppWrite[] = [{ key: OP_PREFIX + opId, value: encode(seq) }];
  if (permitHex !== null) w.push({ key: PERMIT_PREFIX + permitHex, value: Buffer.from(opId, 'utf8') });
  return w;
}

/**
 * The index entries (archive/op/, archive/permit/) of records a node writes outside the driver's
 * batch: those it fetches for a snapshot being installed, and those it holds from an install a
 * crash interrupted. They are held until ledger.archiveIndexRunRecords are due, then written
 * after the records they index and between two seals of the store's write buffer
 * (ColdStore.seal), so that no LevelDB file holds both records and index entries.
 *
 * Why: records written alone go down LevelDB's levels without being rewritten, since each new
 * file of them sorts after every older one. Written together with their index entries (keys
 * spread over the whole index), every file spans the gap from the newest records to the index,
 * every later file overlaps it, and LevelDB rewrites each record once per level it passes: a
 * million records written with their entries cost 5 GB of compaction for 1.7 GB of records; in
 * sealed runs, 0.4 GB, all of it index (a resync's records replayed into an empty store). On a
 * wiped node it is 2 GB: the keys it wrote before the fetch (its incarnation below the records,
 * Raft's hard state above them) share one file that spans the record log, and each record is
 * rewritten once as it passes that file; only a record log sorting after every other key would
 * avoid that.
 *
 * Safety is that of entries written with their records: an entry is a pointer only, read through
 * only if the record at its position names its act (readArchived); the positions are invisible
 * until a state counts them; each record has passed checkOverwrite before its entries are added.
 * Entries of a refused source's records are dropped (dropFrom) and those already written point at
 * positions the next source writes over. A crash can leave records held without their entries:
 * the next install re-hashes them (restore, step 1) and adds them again (indexHeld). Every run is
 * written before the batch that counts the records (fillArchive ends with write(true)).
 */
class IndexRuns {
  private run: { seq: number; opId: string; permit: string | null }[] = [];
  /** Records indexed, runs written, and the time spent writing them (sealing included). */
  indexed = 0;
  runs = 0;
  ms = 0;
  /** Of `ms`, the time the store took to write its buffer out before and after each run. */
  sealMs = 0;
  constructor(
    private readonly cold: ColdStore,
    private readonly size: number,
  ) {}

  /** Whether adding `more` records writes the run. */
  due(more: number): boolean {
    return this.run.length + more >= this.size;
  }

  /** The entries of the record at `seq`; writes the run when it is due. */
  async add(seq: number, k: RecordKeys): Promise<void> {
    this.run.push({ seq, opId: k.opId, permit: k.permitId === null ? null : toHex(k.permitId) });
    if (this.run.length >= this.size) await this.write(false);
  }

  /** Forgets the entries of records at positions >= seq (written by a source that was then refused). */
  dropFrom(seq: number): void {
    this.run = this.run.filter((e) => e.seq < seq);
  }

  /**
   * Writes the run held, in files of its own; `sync` makes it durable (and every write before it).
   * Entries are written in the order their records were added, so the last written for a key is
   * that of the last record added, as it would have been with its record. They are not sorted: a
   * run's keys spread over the whole index whatever their order, so LevelDB merges its files with
   * the index's either way (sorted runs measured no less compaction, and cost the sort).
   */
  async write(sync: boolean): Promise<void> {
    const run = this.run;
    this.run = [];
    if (run.length === 0) return;
    const t0 = performance.now();
    await this.cold.seal?.();
    const t1 = performance.now();
    let writes: AppWrite[] = [];
    for (let i = 0; i < run.length; i++) {
      const e = run[i] as (typeof run)[number];
      writes.push(...indexWrites(e.seq, e.opId, e.permit));
      if (writes.length >= INDEX_PUT_ENTRIES || i === run.length - 1) {
        await this.cold.put(writes, sync && i === run.length - 1);
        writes = [];
      }
    }
    const t2 = performance.now();
    await this.cold.seal?.();
    this.indexed += run.length;
    this.runs++;
    this.ms += performance.now() - t0;
    this.sealMs += t1 - t0 + (performance.now() - t2);
  }
}

/** Index entries per store write of a run (a few hundred KiB). */
const INDEX_PUT_ENTRIES = 4096;

/**
 * Converts a store's archive from the layout before archive/log/ (see the header) to the current
 * one, before the node applies or serves anything; returns the records converted. Run at every
 * start of a ledger node: on a converted or new store it reads two empty ranges.
 *
 * Old layout: archive/act/<opId> CBOR { seq, record }, archive/seq/<seq:16> the opId (archive/permit/
 * is the same in both). A record is taken only where the two agree: an act entry whose position
 * names another act was left by a record never counted (the position index is rewritten with the
 * record that is), and is dropped; a position entry left without its act is dropped too (an act
 * entry whose position entry is missing is kept: the old reads of an act took it alone). Each slice is one atomic batch that writes the new keys and deletes the old ones it
 * replaces, so a crash leaves a store that is converted up to some act and old past it, and the
 * next start goes on from there. Nothing is synced here: a lost batch only leaves its slice old,
 * and the node's first synced write makes every batch before it durable (LevelDB's log is ordered).
 */
export async function convertArchiveLayout(cold: ColdStore, log: (line: string) => void = () => {}, slice: number = ledgerLimits.archiveFetchRecordsMax): Promise<number> {
  const OLD_ACT = `${ARCHIVE_PREFIX}act/`;
  const OLD_SEQ = `${ARCHIVE_PREFIX}seq/`;
  const oldSeqKey = (seq: number): string => `${OLD_SEQ}${String(seq).padStart(16, '0')}`;
  const t0 = performance.now();
  let converted = 0;
  let dropped = 0;
  let from: string | undefined;
  for (;;) {
    const acts: [string, Uint8Array][] = [];
    for await (const kv of cold.scan(OLD_ACT, from !== undefined ? { from } : {})) {
      acts.push(kv);
      if (acts.length === slice) break;
    }
    if (acts.length === 0) break;
    if (converted === 0 && dropped === 0) log('archive: this store keeps its archive in the layout before archive/log/; converting it before the node starts');
    from = `${(acts[acts.length - 1] as [string, Uint8Array])[0]}\0`;
    const stored = acts.map(([key, v]) => {
      let o: { seq?: unknown; record?: unknown };
      try {
        o = decode(v) as typeof o;
      } catch (e) {
        throw new CustodyError('STORAGE_CORRUPT', `${key}: ${(e as Error).message}`);
      }
      if (typeof o.seq !== 'number' || !Number.isSafeInteger(o.seq) || o.seq < 0 || !(o.record instanceof Uint8Array)) throw new CustodyError('STORAGE_CORRUPT', `${key}: expected { seq, record }`);
      return { key, opId: key.slice(OLD_ACT.length), seq: o.seq, record: o.record };
    });
    const owners = await cold.getMany(stored.map((a) => oldSeqKey(a.seq)));
    const writes: AppWrite[] = [];
    stored.forEach((a, i) => {
      writes.push({ key: a.key, value: null });
      const owner = owners[i];
      if (owner !== undefined && Buffer.from(owner).toString('utf8') !== a.opId) {
        dropped++;
        return;
      }
      // The permit entry is the same in both layouts, and stays.
      writes.push({ key: logKey(a.seq), value: a.record }, ...indexWrites(a.seq, a.opId, null), { key: oldSeqKey(a.seq), value: null });
      converted++;
    });
    await cold.put(writes, false);
    if (Math.floor(converted / 100_000) !== Math.floor((converted - stored.length) / 100_000)) log(`archive: converted ${converted} records`);
  }
  // Position entries whose act entry is gone name nothing (see above).
  for (;;) {
    const orphans: AppWrite[] = [];
    for await (const [key] of cold.scan(OLD_SEQ)) {
      orphans.push({ key, value: null });
      if (orphans.length === slice) break;
    }
    if (orphans.length === 0) break;
    dropped += orphans.length;
    await cold.put(orphans, false);
  }
  if (converted + dropped > 0) log(`archive: converted ${converted} records to the current layout in ${ms(performance.now() - t0)}${dropped > 0 ? `; dropped ${dropped} entries no counted record had (left by records fetched and never counted)` : ''}`);
  return converted;
}

/** The application's keys inside the node's store (raft/driver.ts keeps them under `sm/`). */
const APP_KEYS = 'sm/';
assert(COLD_PREFIX === APP_KEYS + ARCHIVE_PREFIX, 'the archive is what the store keeps cold');

/** The node's LevelDB as the archive's store: cold keys, read on demand, never held in memory. */
export function levelColdStore(storage: Pick<LevelStorage, 'appRead' | 'appReadMany' | 'appScan' | 'persist' | 'sealWrites'>): ColdStore {
  return {
    seal: () => storage.sealWrites(),
    get: (key) => storage.appRead(APP_KEYS + key),
    getMany: (keys) => storage.appReadMany(keys.map((k) => APP_KEYS + k)),
    put: async (writes, sync) => {
      await storage.persist({ hardState: null, entries: [], snapshot: null, app: writes.map((w) => ({ key: APP_KEYS + w.key, value: w.value })), sync });
    },
    scan: async function* (prefix, range = {}) {
      const full = { ...(range.from !== undefined ? { from: APP_KEYS + range.from } : {}), ...(range.to !== undefined ? { to: APP_KEYS + range.to } : {}) };
      for await (const [k, v] of storage.appScan(APP_KEYS + prefix, full)) yield [k.slice(APP_KEYS.length), v];
    },
  };
}
