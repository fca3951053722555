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
 * Persistence: the whole state is written under `ledger/state` (the driver prefixes `sm/`) in
 * the same LevelDB batch as the applied index, so apply is exactly-once across restarts. That is
 * one canonical encoding per entry, O(state); the ledger's own apply already copies maps of the
 * same size, so this does not change the order of cost.
 */
import type { Application } from '../raft/driver.js';
import type { AppWrite } from '../raft/storage/leveldb.js';
import { type CborValue, decode, encode, toHex } from '../ledger/encoding.js';
import { ApprovalBook, decodeBookCommand, isBookCommand } from './approvals/book.js';
import { decisionToCbor } from '../ledger/decision.js';
import { CustodyError } from '../proto/errors.js';
import { ledger as ledgerLimits } from '../proto/limits.js';
import { apply, type ApplyResult } from '../ledger/apply.js';
import { emptyState, restore, snapshot, stateRoot, type LedgerState, type OpState } from '../ledger/state.js';
import { decodeEvent, type EventType, type LedgerEntry, type LedgerEvent } from '../ledger/events.js';
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

export class LedgerApp implements Application {
  private current: LedgerState = emptyState();
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
    const r = apply(this.current, entry);
    // Everything that can fail is computed before the state moves, so a failed step leaves the
    // application where it was (the driver may retry the same entry).
    const value = snapshot(r.state);
    const result = encodeVerdict(verdictOf(r.result));
    const writes: AppWrite[] = [{ key: STATE_KEY, value }];
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

  /** The state, the applied decisions and the approval book: canonical CBOR {tag, state, decisions, book}. */
  snapshot(): Uint8Array {
    return encode({ tag: SNAPSHOT_TAG, state: snapshot(this.current), decisions: this.decisions.map((d) => ({ index: d.index, stampMs: d.stampMs, decision: d.decision })), book: this.book.snapshot() });
  }

  restore(data: Uint8Array): AppWrite[] {
    const writes: AppWrite[] = this.decisions.map((d) => ({ key: decisionKey(d.index), value: null }));
    if (data.length === 0) {
      this.current = emptyState();
      this.decisions = [];
      return [...writes, ...this.book.restore(undefined), { key: STATE_KEY, value: null }];
    }
    let o: { tag?: unknown; state?: unknown; decisions?: unknown; book?: CborValue };
    try {
      o = decode(data, { bytesMax: ledgerLimits.appSnapshotBytesMax }) as typeof o;
    } catch (e) {
      throw new CustodyError('STORAGE_CORRUPT', `ledger snapshot: ${(e as Error).message}`);
    }
    if (o.tag !== SNAPSHOT_TAG || !(o.state instanceof Uint8Array) || !Array.isArray(o.decisions)) throw new CustodyError('STORAGE_CORRUPT', 'ledger snapshot: not a ledger application snapshot');
    this.current = restore(o.state);
    this.decisions = (o.decisions as { index: number; stampMs: number; decision: Uint8Array }[]).map((d) => ({ index: d.index, stampMs: d.stampMs, decision: d.decision }));
    return [...writes, ...this.book.restore(o.book), { key: STATE_KEY, value: o.state }, ...this.decisions.map((d) => ({ key: decisionKey(d.index), value: decisionToStored(d) }))];
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
