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
 *   archive/act/<opId>     CBOR { seq, record }   (record: the act with its receipts and permit)
 *   archive/permit/<hex>   the opId whose permit it is
 *   archive/seq/<seq:16>   the opId that ended seq-th (0-based)
 * so the archive is exactly as durable as the applied index: after a crash the node holds the
 * archive of exactly the entries it applied, and re-applies the rest from the log. These keys are
 * cold (raft/storage/leveldb.ts COLD_PREFIX): never loaded into memory, read on demand.
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
import { CustodyError, assert } from '../proto/errors.js';
import { ledger as ledgerLimits } from '../proto/limits.js';
import { apply, type ApplyResult } from '../ledger/apply.js';
import { emptyState, restore, snapshot, stateRoot, type LedgerState, type OpState } from '../ledger/state.js';
import { decodeEvent, eventFromCbor, type EventType, type LedgerEntry, type LedgerEvent } from '../ledger/events.js';
import { type ArchiveReader, type ArchiveRecord, type ArchivedAct, EMPTY_ARCHIVE_HEAD, archiveLink, decodeArchived } from '../ledger/archive.js';
import type { OpRecord, PermitRecord } from '../ledger/state.js';
import { bytesEqual } from '../ledger/encoding.js';
import type { ReasonCode } from '../proto/reasons.js';

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
}

export function verdictOf(r: ApplyResult): LedgerVerdict {
  const common = {
    index: r.index, type: r.type, replayed: r.replayed,
    ...(r.opState !== undefined ? { opState: r.opState } : {}),
    ...(r.eventCid ? { eventCid: toHex(r.eventCid) } : {}),
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
const ACT_PREFIX = `${ARCHIVE_PREFIX}act/`;
const PERMIT_PREFIX = `${ARCHIVE_PREFIX}permit/`;
const SEQ_PREFIX = `${ARCHIVE_PREFIX}seq/`;
const seqKey = (seq: number): string => `${SEQ_PREFIX}${String(seq).padStart(16, '0')}`;

/**
 * Where ended acts are kept: the node's LevelDB (cold keys, read on demand), or a map in tests.
 * Keys are relative to the application's prefix, as in AppWrite.
 */
export interface ColdStore {
  get(key: string): Promise<Uint8Array | undefined>;
  /** Keys under `prefix` in key order, from one consistent view of the store. */
  scan(prefix: string): AsyncIterable<[string, Uint8Array]>;
}

/** What prepare() read for one batch, and what the batch archived so far. */
class BatchArchive implements ArchiveReader {
  readonly acts = new Map<string, OpRecord | null>();
  readonly permits = new Map<string, PermitRecord | null>();
  /** What this batch archived, by position: on disk only once the driver's write completes. */
  readonly ended = new Map<number, OpRecord>();

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
    this.ended.set(r.seq, r.op);
    if (r.permit !== null && r.op.permitId !== null) this.permits.set(toHex(r.op.permitId), r.permit);
  }
}

/** The acts and permits an event names: every archive lookup apply can make for it. */
function namedByEvent(ev: LedgerEvent): { opIds: string[]; permits: string[] } {
  switch (ev.type) {
    case 'ActSubmitted': case 'ActPublished': case 'ActSettled': case 'ActAborted': case 'ActPermitIssued':
      return { opIds: [ev.opId], permits: [] };
    case 'ActSigningSetFixed': case 'ActExecuted':
      return { opIds: [ev.opId], permits: [toHex(ev.permitId)] };
    case 'GovernanceDecision': {
      const a = ev.decision.body.action;
      return a.kind === 'PublicationReleased' ? { opIds: [a.opId], permits: [] } : { opIds: [], permits: [] };
    }
    default:
      return { opIds: [], permits: [] };
  }
}

function storedRecord(b: Uint8Array): { seq: number; record: Uint8Array; act: ArchivedAct } {
  try {
    const o = decode(b) as { seq?: unknown; record?: unknown };
    if (typeof o.seq !== 'number' || !(o.record instanceof Uint8Array)) throw new Error('expected { seq, record }');
    return { seq: o.seq, record: o.record, act: decodeArchived(o.record) };
  } catch (e) {
    throw new CustodyError('STORAGE_CORRUPT', `archived act: ${(e as Error).message}`);
  }
}

export interface LedgerAppOptions {
  /** Move ended acts out of memory into this store (the node passes its LevelDB). */
  readonly cold?: ColdStore;
}

export class LedgerApp implements Application {
  private current: LedgerState = emptyState();
  private readonly cold: ColdStore | null;
  /** Inside a batch (prepare .. finish): the state is written once at its end. */
  private deferState = false;
  private batch = new BatchArchive();

  constructor(o: LedgerAppOptions = {}) {
    this.cold = o.cold ?? null;
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
    return [{ key: STATE_KEY, value: snapshot(this.current) }];
  }

  private async readArchived(opId: string): Promise<ArchivedAct | undefined> {
    const b = await (this.cold as ColdStore).get(ACT_PREFIX + opId);
    return b === undefined ? undefined : storedRecord(b).act;
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
        out.push(recent);
        continue;
      }
      const owner = await this.cold.get(seqKey(seq));
      const a = owner === undefined ? undefined : await this.readArchived(Buffer.from(owner).toString('utf8'));
      if (a !== undefined) out.push(a.op);
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
        writes.push({ key: ACT_PREFIX + a.op.opId, value: encode({ seq: a.seq, record: a.bytes }) });
        writes.push({ key: seqKey(a.seq), value: Buffer.from(a.op.opId, 'utf8') });
        if (a.permit !== null && a.op.permitId !== null) writes.push({ key: PERMIT_PREFIX + toHex(a.op.permitId), value: Buffer.from(a.op.opId, 'utf8') });
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
   * book}; with an archive, also `archive`: the first `archived.count` records in the order the
   * acts ended. Everything but the archive is taken when snapshot() is called, and the archive is
   * append-only, so reading exactly the records the state counts gives the archive as of that
   * call even if entries are applied while the records are read (a backup reads outside the loop).
   */
  snapshot(): Uint8Array | Promise<Uint8Array> {
    const base = { tag: SNAPSHOT_TAG, state: snapshot(this.current), decisions: this.decisions.map((d) => ({ index: d.index, stampMs: d.stampMs, decision: d.decision })), book: this.book.snapshot() };
    if (this.cold === null) return encode(base);
    const cold = this.cold;
    const count = this.current.cluster?.archived.count ?? 0;
    return (async () => {
      const archive: Uint8Array[] = [];
      for (let seq = 0; seq < count; seq++) {
        const owner = await cold.get(seqKey(seq));
        if (owner === undefined) throw new CustodyError('STORAGE_CORRUPT', `archive: act number ${seq} is not indexed`);
        const b = await cold.get(ACT_PREFIX + Buffer.from(owner).toString('utf8'));
        if (b === undefined) throw new CustodyError('STORAGE_CORRUPT', `archive: act ${Buffer.from(owner).toString('utf8')} is indexed but missing`);
        archive.push(storedRecord(b).record);
      }
      return encode({ ...base, archive });
    })();
  }

  /**
   * Replaces the state with a snapshot's. With an archive, the snapshot's records replace the
   * archive: they are checked against the accumulator the snapshot's state commits to (a record
   * missing, altered or out of order is STORAGE_CORRUPT), then written, and every archived key
   * the snapshot does not hold is deleted, all in the driver's one batch with the applied index.
   *
   * Crash safety: the chunks of an InstallSnapshot are assembled in the Raft core's memory and
   * nothing reaches the store before the last one; then this restore's writes, the snapshot, the
   * log truncation and the applied index go in one atomic LevelDB batch. A crash before that batch
   * is durable leaves the node exactly as it was (old state, old archive, old applied index: it
   * asks for the snapshot again); after it, exactly as the snapshot. No mix of the two is ever on
   * disk. The price: the whole archive travels in the snapshot, so raft.snapshotBytesMax bounds
   * how long a history can be recovered this way, and the leader holds its last snapshot in memory.
   */
  restore(data: Uint8Array): AppWrite[] | Promise<AppWrite[]> {
    const writes: AppWrite[] = this.decisions.map((d) => ({ key: decisionKey(d.index), value: null }));
    let archive: readonly Uint8Array[] = [];
    if (data.length === 0) {
      this.current = emptyState();
      this.decisions = [];
      writes.push(...this.book.restore(undefined), { key: STATE_KEY, value: null });
    } else {
      let o: { tag?: unknown; state?: unknown; decisions?: unknown; archive?: unknown; book?: CborValue };
      try {
        o = decode(data, { bytesMax: ledgerLimits.appSnapshotBytesMax }) as typeof o;
      } catch (e) {
        throw new CustodyError('STORAGE_CORRUPT', `ledger snapshot: ${(e as Error).message}`);
      }
      if (o.tag !== SNAPSHOT_TAG || !(o.state instanceof Uint8Array) || !Array.isArray(o.decisions)) throw new CustodyError('STORAGE_CORRUPT', 'ledger snapshot: not a ledger application snapshot');
      if (o.archive !== undefined && (!Array.isArray(o.archive) || !o.archive.every((x) => x instanceof Uint8Array))) throw new CustodyError('STORAGE_CORRUPT', 'ledger snapshot: malformed archive');
      const state = restore(o.state);
      archive = (o.archive ?? []) as Uint8Array[];
      // A snapshot without an `archive` field comes from an application that keeps its ended acts
      // in memory (no archive): they are in its state, and nothing is to be checked against the
      // accumulator. With the field, the records must be exactly those the accumulator counts.
      if (this.cold !== null && o.archive !== undefined) checkArchive(state, archive);
      else if (archive.length > 0) throw new CustodyError('STORAGE_CORRUPT', 'ledger snapshot: it carries archived acts, and this node keeps no archive');
      this.current = state;
      this.decisions = (o.decisions as { index: number; stampMs: number; decision: Uint8Array }[]).map((d) => ({ index: d.index, stampMs: d.stampMs, decision: d.decision }));
      writes.push(...this.book.restore(o.book), { key: STATE_KEY, value: o.state }, ...this.decisions.map((d) => ({ key: decisionKey(d.index), value: decisionToStored(d) })));
    }
    this.batch = new BatchArchive();
    if (this.cold === null) return writes;
    const cold = this.cold;
    return (async () => {
      const keep = new Set<string>();
      archive.forEach((record, seq) => {
        const a = decodeArchived(record);
        const put = (key: string, value: Uint8Array): void => {
          keep.add(key);
          writes.push({ key, value });
        };
        put(ACT_PREFIX + a.op.opId, encode({ seq, record }));
        put(seqKey(seq), Buffer.from(a.op.opId, 'utf8'));
        if (a.permit !== null && a.op.permitId !== null) put(PERMIT_PREFIX + toHex(a.op.permitId), Buffer.from(a.op.opId, 'utf8'));
      });
      for await (const [key] of cold.scan(ARCHIVE_PREFIX)) if (!keep.has(key)) writes.push({ key, value: null });
      return writes;
    })();
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

/** The records a snapshot carries must be exactly the ended acts its state's accumulator names. */
function checkArchive(state: LedgerState, records: readonly Uint8Array[]): void {
  const want = state.cluster?.archived ?? EMPTY_ARCHIVE_HEAD;
  let h = EMPTY_ARCHIVE_HEAD;
  for (const r of records) h = archiveLink(h, r);
  if (h.count !== want.count || !bytesEqual(h.head, want.head)) {
    throw new CustodyError('STORAGE_CORRUPT', `ledger snapshot: its archive (${h.count} acts) does not match the accumulator of its state (${want.count} acts)`);
  }
}

/** The application's keys inside the node's store (raft/driver.ts keeps them under `sm/`). */
const APP_KEYS = 'sm/';
assert(COLD_PREFIX === APP_KEYS + ARCHIVE_PREFIX, 'the archive is what the store keeps cold');

/** The node's LevelDB as the archive's store: cold keys, read on demand, never held in memory. */
export function levelColdStore(storage: Pick<LevelStorage, 'appRead' | 'appScan'>): ColdStore {
  return {
    get: (key) => storage.appRead(APP_KEYS + key),
    scan: async function* (prefix) {
      for await (const [k, v] of storage.appScan(APP_KEYS + prefix)) yield [k.slice(APP_KEYS.length), v];
    },
  };
}
