/**
 * The approval book: governance decisions waiting for approver signatures, replicated through the
 * Raft log beside the ledger, so that no restart loses one and every node can show and finish it.
 *
 * Why replicated rather than kept on the node that took the proposal: an approval is an approver's
 * Ed25519 signature over the decision's signing bytes; it is the same on every node and costs a
 * log entry (~200 bytes) to share. Replicated, a decision proposed to n1 can take its first
 * approval on n2 and its second on n3 after every node restarted, an act held for approvals can be
 * submitted through any node, and the signatures of an act's approval stay with the replicated
 * history (in snapshots and backups), so its evidence bundle exports from any node and from a
 * restored cluster. Why beside the ledger rather than in it: a pending decision authorizes nothing
 * (only the GovernanceDecision event, or the approval carried by ActSubmitted, does), so it stays
 * out of the ledger's state, state root and hash chain, and the ledger's rules are unchanged.
 *
 * Message flow (node/admin/backend.ts is the proposer):
 *   propose   an operator's action becomes a DecisionBody bound to the governance head in force;
 *             the node proposes Book{propose, body, act?}; applied, the decision is pending on
 *             every node.
 *   approve   an approver signs the body's signing bytes with its own key (never on the node);
 *             the node checks it and proposes Book{approve, cid, approverId, signature}; applied,
 *             every node holds the signature.
 *   complete  when the signatures meet the quorum of the roster in force, the node that saw it
 *             (and, after a restart, the leader) submits the GovernanceDecision event carrying
 *             them; the ledger judges it as it judges any decision. An ActApproved waits until an
 *             ActSubmitted carries it.
 *   settle    when the ledger applies the decision (or the ActSubmitted carrying an approval), the
 *             book drops it; the ledger keeps an act's approval, signatures included, in the
 *             act's record (OpRecord.approval) for its evidence bundle, so the book holds only
 *             what is pending.
 *
 * Safety: the book never adds authority. Each book entry is applied by every node in log order
 * with the ledger state as it stands at that point, and checks only what the ledger checks again
 * later (cluster, epoch, expiry, approver on the roster in force, signature), so a wrong book
 * entry can at worst be refused at submission. Determinism: apply reads no host clock: time is the
 * later of the proposer's stamp and the ledger's clock, and never runs backwards; expiry, a newer
 * governance epoch and a moved governance head (a decision can only follow the head it names)
 * drop entries identically on every node. Bounds: approvals.pendingMax entries (LIMIT_EXCEEDED
 * beyond), one signature per roster approver per entry, commands within the ledger's event bound.
 *
 * Room for the emergency stop. A proposal names the operator whose certificate proposed it (the
 * admin port sets it from the verified certificate, node/admin/backend.ts); one operator may hold
 * at most approvals.pendingPerProposerMax of the pendingMax ordinary entries, so one stolen or
 * careless certificate can no longer fill the book. EmergencyFreeze proposals are counted apart:
 * neither pendingMax nor the quota applies to them; each proposer has at most one pending (a
 * newer one replaces it), and when approvals.freezePendingMax are pending the oldest (by issue
 * time, then cid) is dropped for the new one. So an EmergencyFreeze proposal is never refused
 * LIMIT_EXCEEDED. Only the approver role may propose a freeze (node/admin/roles.ts), and a
 * dropped freeze proposal can be proposed again: it carries no signatures anyone else lost
 * except its own approvals, which its approvers give again.
 *
 * Command (a Raft client command, beside the ledger's 'L' commands, node/ledger-app.ts):
 *   0x50 'P' | stampMs:u64be | canonical CBOR of
 *     {op: "propose", body: DecisionBody, act: Act | null}
 *     {op: "approve", cid: bytes32, approverId: text, signature: bytes64}
 * Stored (keys relative to the application's): `book/pending/<cid hex>` -> CBOR {body, act,
 * approvals}.
 */
import { approvals as limits, ledger as ledgerLimits } from '../../proto/limits.js';
import type { ReasonCode } from '../../proto/reasons.js';
import type { AppWrite } from '../../raft/storage/leveldb.js';
import { type CborValue, bytesEqual, decode, encode, fromHex, toHex } from '../../ledger/encoding.js';
import {
  type Approval, type DecisionBody, type GovernanceDecision, ShapeError,
  decisionBodyFromCbor, decisionBodyToCbor, decisionCid, decisionFromCbor, decisionSigningBytes, decisionToCbor, ed25519Verify, verifyDecision,
} from '../../ledger/decision.js';
import { type Act, type LedgerEvent, actCid, actFromCbor, actToCbor } from '../../ledger/events.js';
import type { LedgerState } from '../../ledger/state.js';

const COMMAND_TAG = 0x50;
const HEADER_BYTES = 9;
const PENDING_PREFIX = 'book/pending/';
/** The book's clock (ms, u64be): it may run ahead of the ledger's through book commands' stamps. */
const CLOCK_KEY = 'book/clock';

export type BookCommand =
  /** `proposer`: the operator id of the proposing certificate; absent in commands written before quotas. */
  | { readonly op: 'propose'; readonly body: DecisionBody; readonly act: Act | null; readonly proposer?: string }
  | { readonly op: 'approve'; readonly cid: Uint8Array; readonly approverId: string; readonly signature: Uint8Array };

export interface PendingRecord {
  readonly cid: string;
  readonly body: DecisionBody;
  /** For an ActApproved of a new act: the act, submitted later with its approval. */
  readonly act: Act | null;
  readonly approvals: readonly Approval[];
  /** Who proposed it (the quota's key); null for entries proposed before quotas existed. */
  readonly proposer: string | null;
}

export type BookVerdict =
  | { readonly ok: true; readonly detail: string; readonly cid: string }
  | { readonly ok: false; readonly reason: ReasonCode; readonly detail: string };

export function isBookCommand(cmd: Uint8Array): boolean {
  return cmd.length >= HEADER_BYTES && cmd[0] === COMMAND_TAG;
}

export function encodeBookCommand(stampMs: number, c: BookCommand): Uint8Array {
  const v: CborValue = c.op === 'propose'
    ? { op: c.op, body: decisionBodyToCbor(c.body), act: c.act === null ? null : actToCbor(c.act), ...(c.proposer === undefined ? {} : { proposer: c.proposer }) }
    : { op: c.op, cid: c.cid, approverId: c.approverId, signature: c.signature };
  const body = encode(v);
  const b = Buffer.alloc(HEADER_BYTES + body.length);
  b[0] = COMMAND_TAG;
  b.writeBigUInt64BE(BigInt(stampMs), 1);
  b.set(body, HEADER_BYTES);
  return b;
}

/** The stamp and command, or a string saying why the bytes are not a well-formed book command. */
export function decodeBookCommand(cmd: Uint8Array): { stampMs: number; command: BookCommand } | string {
  if (!isBookCommand(cmd)) return 'not a book command';
  if (cmd.length > ledgerLimits.eventBytesMax + HEADER_BYTES) return 'book command exceeds the event bound';
  const b = Buffer.from(cmd.buffer, cmd.byteOffset, cmd.length);
  const stamp = b.readBigUInt64BE(1);
  if (stamp > BigInt(Number.MAX_SAFE_INTEGER)) return 'stamp out of range';
  try {
    const v = decode(cmd.subarray(HEADER_BYTES)) as { [k: string]: CborValue };
    if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) return 'book command is not a map';
    if (v.op === 'propose' && Object.keys(v).length === 3) {
      return { stampMs: Number(stamp), command: { op: 'propose', body: decisionBodyFromCbor(v.body), act: v.act === null ? null : actFromCbor(v.act) } };
    }
    if (v.op === 'propose' && Object.keys(v).length === 4 && typeof v.proposer === 'string' && v.proposer.length > 0 && Buffer.byteLength(v.proposer) <= ledgerLimits.idBytesMax) {
      return { stampMs: Number(stamp), command: { op: 'propose', body: decisionBodyFromCbor(v.body), act: v.act === null ? null : actFromCbor(v.act), proposer: v.proposer } };
    }
    if (v.op === 'approve' && Object.keys(v).length === 4 && v.cid instanceof Uint8Array && v.cid.length === 32 && typeof v.approverId === 'string' &&
      Buffer.byteLength(v.approverId) <= ledgerLimits.idBytesMax && v.signature instanceof Uint8Array && v.signature.length === 64) {
      return { stampMs: Number(stamp), command: { op: 'approve', cid: v.cid, approverId: v.approverId, signature: v.signature } };
    }
    return 'book command: unknown op or malformed fields';
  } catch (e) {
    return `book command: ${(e as Error).message}`;
  }
}

function recordToCbor(r: PendingRecord): CborValue {
  return {
    body: decisionBodyToCbor(r.body), act: r.act === null ? null : actToCbor(r.act), approvals: r.approvals.map((a) => ({ approverId: a.approverId, signature: a.signature })),
    ...(r.proposer === null ? {} : { proposer: r.proposer }),
  };
}

function recordFromCbor(v: CborValue): PendingRecord {
  const o = v as { body: CborValue; act: CborValue; approvals: CborValue; proposer?: CborValue };
  const d = decisionFromCbor({ body: o.body, approvals: o.approvals } as CborValue);
  if (o.proposer !== undefined && typeof o.proposer !== 'string') throw new ShapeError('approval book record: proposer must be text');
  return { cid: toHex(decisionCid(d.body)), body: d.body, act: o.act === null ? null : actFromCbor(o.act), approvals: d.approvals, proposer: o.proposer ?? null };
}

const isFreeze = (r: { body: DecisionBody }): boolean => r.body.action.kind === 'EmergencyFreeze';

/** Oldest first: by issue time, then cid (the same order on every node). */
const byAge = (a: PendingRecord, b: PendingRecord): number => a.body.issuedMs - b.body.issuedMs || (a.cid < b.cid ? -1 : a.cid > b.cid ? 1 : 0);

const refuse = (reason: ReasonCode, detail: string): BookVerdict => ({ ok: false, reason, detail });

export class ApprovalBook {
  /** Pending decisions by cid (hex). */
  private pending = new Map<string, PendingRecord>();
  private clockMs = 0;

  get size(): number {
    return this.pending.size;
  }

  get(cidHex: string): PendingRecord | undefined {
    return this.pending.get(cidHex);
  }

  /** Pending decisions in cid order (the same on every node, restarted or not). */
  list(): PendingRecord[] {
    return [...this.pending.values()].sort((a, b) => (a.cid < b.cid ? -1 : a.cid > b.cid ? 1 : 0));
  }

  /** Whether the record's signatures meet the quorum of the roster in force. */
  complete(r: PendingRecord, ledger: LedgerState): boolean {
    const c = ledger.cluster;
    return c !== null && verifyDecision({ body: r.body, approvals: r.approvals }, c.governance.roster, c.clusterId, c.governance.epoch, Math.max(this.clockMs, ledger.clockMs)).ok;
  }

  /** Applies one book command against the ledger state as it stands at this point of the log. */
  apply(stampMs: number, cmd: BookCommand, ledger: LedgerState): { verdict: BookVerdict; writes: AppWrite[] } {
    this.clockMs = Math.max(this.clockMs, stampMs, ledger.clockMs);
    const clock = Buffer.alloc(8);
    clock.writeBigUInt64BE(BigInt(this.clockMs));
    const writes = [{ key: CLOCK_KEY, value: clock }, ...this.prune(ledger)];
    const c = ledger.cluster;
    if (c === null) return { verdict: refuse('GENESIS_MISSING', 'the cluster has no genesis yet'), writes };
    if (cmd.op === 'propose') {
      const b = cmd.body;
      const cid = toHex(decisionCid(b));
      const why = this.stale(b, ledger);
      if (why !== null) return { verdict: refuse(why.reason, why.detail), writes };
      if (b.expiresMs - b.issuedMs > ledgerLimits.decisionTtlMsMax || b.expiresMs <= b.issuedMs) return { verdict: refuse('PAYLOAD_REJECTED', `expiry must be within ${ledgerLimits.decisionTtlMsMax} ms after issue`), writes };
      const approvesAct = b.action.kind === 'ActApproved';
      if (cmd.act !== null && (!approvesAct || !bytesEqual(actCid(cmd.act), (b.action as { actCid: Uint8Array }).actCid))) {
        return { verdict: refuse('BINDING_MISMATCH', 'the act carried is not the act the decision approves'), writes };
      }
      if (this.pending.has(cid)) return { verdict: { ok: true, detail: 'already pending', cid }, writes };
      const proposer = cmd.proposer ?? null;
      if (b.action.kind === 'EmergencyFreeze') {
        writes.push(...this.makeRoomForFreeze(proposer));
      } else {
        const ordinary = [...this.pending.values()].filter((r) => !isFreeze(r));
        if (ordinary.length >= limits.pendingMax) return { verdict: refuse('LIMIT_EXCEEDED', `${limits.pendingMax} decisions are pending`), writes };
        const own = proposer === null ? 0 : ordinary.filter((r) => r.proposer === proposer).length;
        if (own >= limits.pendingPerProposerMax) {
          return { verdict: refuse('LIMIT_EXCEEDED', `${proposer} has ${own} decisions pending, the most one operator may (approve, let expire, or wait for them to apply)`), writes };
        }
      }
      const r: PendingRecord = { cid, body: b, act: cmd.act, approvals: [], proposer };
      this.pending.set(cid, r);
      writes.push({ key: PENDING_PREFIX + cid, value: encode(recordToCbor(r)) });
      return { verdict: { ok: true, detail: `pending ${b.action.kind}`, cid }, writes };
    }
    const cid = toHex(cmd.cid);
    const r = this.pending.get(cid);
    if (r === undefined) return { verdict: refuse('UNKNOWN_SESSION', `no pending decision ${cid} (never proposed, expired, superseded or already applied)`), writes };
    const approver = c.governance.roster.approvers.find((a) => a.id === cmd.approverId);
    if (approver === undefined) return { verdict: refuse('UNKNOWN_APPROVER', `${cmd.approverId} is not on the roster of governance epoch ${c.governance.epoch}`), writes };
    if (!ed25519Verify(cmd.signature, decisionSigningBytes(r.body), approver.publicKey)) return { verdict: refuse('SIGNATURE_INVALID', `the signature of ${cmd.approverId} does not verify over decision ${cid}`), writes };
    if (r.approvals.some((a) => a.approverId === cmd.approverId)) return { verdict: { ok: true, detail: `${cmd.approverId} had approved already`, cid }, writes };
    // One signature per roster approver: the roster bounds the list (ledger.approversMax).
    const next: PendingRecord = { ...r, approvals: [...r.approvals, { approverId: cmd.approverId, signature: cmd.signature }] };
    this.pending.set(cid, next);
    writes.push({ key: PENDING_PREFIX + cid, value: encode(recordToCbor(next)) });
    return { verdict: { ok: true, detail: `approved by ${cmd.approverId} (${next.approvals.length})`, cid }, writes };
  }

  /**
   * After the ledger applied `event` (whatever its verdict): settles what it consumed and drops
   * what can no longer apply. Returns the writes doing so.
   */
  afterLedger(event: LedgerEvent | null, accepted: boolean, ledger: LedgerState): AppWrite[] {
    this.clockMs = Math.max(this.clockMs, ledger.clockMs);
    const writes: AppWrite[] = [];
    // The ledger keeps the approval with the act it was submitted with (OpRecord.approval, for the
    // evidence); here it only leaves the book.
    if (event?.type === 'ActSubmitted' && event.approval !== null) writes.push(...this.drop(toHex(decisionCid(event.approval.body))));
    if (event?.type === 'GovernanceDecision' && accepted) writes.push(...this.drop(toHex(decisionCid(event.decision.body))));
    writes.push(...this.prune(ledger));
    return writes;
  }

  /** Why a pending decision can no longer apply: expired, another governance epoch, or the head moved on. */
  private stale(b: DecisionBody, ledger: LedgerState): { reason: ReasonCode; detail: string } | null {
    const g = ledger.cluster?.governance;
    if (g === undefined) return { reason: 'GENESIS_MISSING', detail: 'no genesis' };
    if (b.clusterId !== ledger.cluster?.clusterId) return { reason: 'BINDING_MISMATCH', detail: `decision for cluster ${b.clusterId}` };
    if (b.governanceEpoch !== g.epoch) return { reason: 'STALE_EPOCH', detail: `decision of governance epoch ${b.governanceEpoch}, the epoch is ${g.epoch}` };
    if (b.expiresMs <= this.clockMs) return { reason: 'DECISION_EXPIRED', detail: `expired at ${b.expiresMs}, the ledger clock is ${this.clockMs}` };
    const journal = b.action.kind === 'ActApproved' || b.action.kind === 'PublicationReleased';
    if (!journal && !bytesEqual(b.parentCid, g.headCid)) return { reason: 'BINDING_MISMATCH', detail: 'the decision follows a governance head that is no longer the head' };
    return null;
  }

  /**
   * Room for a new EmergencyFreeze of `proposer`: its own earlier freeze proposal goes, and if
   * freezePendingMax are still pending, the oldest goes too.
   */
  private makeRoomForFreeze(proposer: string | null): AppWrite[] {
    const writes: AppWrite[] = [];
    const freezes = [...this.pending.values()].filter(isFreeze).sort(byAge);
    if (proposer !== null) for (const r of freezes.filter((x) => x.proposer === proposer)) writes.push(...this.drop(r.cid));
    const left = freezes.filter((r) => this.pending.has(r.cid));
    for (let i = 0; i <= left.length - limits.freezePendingMax; i++) writes.push(...this.drop((left[i] as PendingRecord).cid));
    return writes;
  }

  private prune(ledger: LedgerState): AppWrite[] {
    const writes: AppWrite[] = [];
    for (const [cid, r] of this.pending) if (this.stale(r.body, ledger) !== null) writes.push(...this.drop(cid));
    return writes;
  }

  private drop(cid: string): AppWrite[] {
    if (!this.pending.delete(cid)) return [];
    return [{ key: PENDING_PREFIX + cid, value: null }];
  }

  // --- persistence -------------------------------------------------------------------------------

  load(get: (key: string) => Uint8Array | undefined, keys: Iterable<string>): void {
    this.pending = new Map();
    const clock = get(CLOCK_KEY);
    this.clockMs = clock === undefined ? 0 : Number(Buffer.from(clock).readBigUInt64BE(0));
    const all = [...keys];
    for (const k of all.filter((x) => x.startsWith(PENDING_PREFIX)).sort()) {
      const r = recordFromCbor(decode(get(k) as Uint8Array));
      this.pending.set(r.cid, r);
    }
  }

  snapshot(): CborValue {
    return { clockMs: this.clockMs, pending: this.list().map(recordToCbor) };
  }

  /** Replaces the book with a snapshot's (undefined: an empty book); returns the writes doing so. */
  restore(v: CborValue | undefined): AppWrite[] {
    const writes: AppWrite[] = [
      ...[...this.pending.keys()].map((cid) => ({ key: PENDING_PREFIX + cid, value: null })),
    ];
    this.pending = new Map();
    this.clockMs = 0;
    writes.push({ key: CLOCK_KEY, value: null });
    if (v === undefined) return writes;
    const o = v as { clockMs?: unknown; pending?: unknown };
    if (typeof o.clockMs !== 'number' || !Array.isArray(o.pending)) throw new ShapeError('approval book snapshot: malformed');
    this.clockMs = o.clockMs;
    const clock = Buffer.alloc(8);
    clock.writeBigUInt64BE(BigInt(this.clockMs));
    writes.push({ key: CLOCK_KEY, value: clock });
    for (const p of o.pending as CborValue[]) {
      const r = recordFromCbor(p);
      this.pending.set(r.cid, r);
      writes.push({ key: PENDING_PREFIX + r.cid, value: encode(recordToCbor(r)) });
    }
    return writes;
  }
}

export function cidBytes(cidHex: string): Uint8Array {
  return fromHex(cidHex.toLowerCase());
}
