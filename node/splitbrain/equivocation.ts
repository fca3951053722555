/**
 * Equivocation: one node signing two conflicting statements for one slot, turned into evidence
 * the ledger records as an `EquivocationEvidence` event (ledger/events.ts) and raising
 * `custody_equivocation_*`.
 *
 * Why. Raft's votes and leadership are only as honest as the nodes (Raft paper §5.1 assumes
 * non-Byzantine servers that keep term and vote on stable storage, Figure 2). A node that votes
 * twice in one term — compromised, or restored from an old copy that forgot its vote — can give
 * two candidates a majority each. Raft messages carry no signatures (raft/core/types.ts); this
 * module adds a node-level envelope: the node's Ed25519 identity key (on the ledger's node roster)
 * signs each vote it grants and each leadership it assumes, so a double vote is provable to anyone
 * holding the roster, not just suspected.
 *
 * Statement format. The ledger's SignedStatement (ledger/events.ts), one format for every
 * statement a node signs: the signature covers the domain tag `custody-ledger/v1/statement`, a
 * zero byte, then the canonical CBOR (RFC 8949 §4.2.1, ledger/encoding.ts) of
 * { clusterId, nodeId, kind, slot, content }. The domain tag keeps these signatures from ever
 * verifying as another kind of message signed by the same key; `kind` and `slot` inside the
 * signed bytes keep one kind of statement from being replayed as another. Kinds defined here:
 *
 *   RaftVote            slot { term }   content { candidate }     a vote granted in `term`
 *   LeaderAnnouncement  slot { term }   content { startIndex }    leadership of `term`, whose
 *                                                                  first own entry is `startIndex`
 *
 * and the ledger's own node statements (DkgRound1Published, KeyReady: slot { keyId, keyEpoch })
 * go through the same detector unchanged: the detector only knows "(clusterId, nodeId, kind,
 * slot) may carry one content". FencingRecord statements are relayed and deduplicated but never
 * compared (UNSLOTTED_KINDS), as the ledger never counts them as equivocation. An honest node
 * never signs two contents for one slot: it votes once per term (Figure 2, votedFor), it leads a
 * term at most once (a node re-elected must first start a new term, §5.2) and appends its first
 * entry of that term once, and it publishes one DKG package per key epoch.
 *
 * Message flow. The node signs a RaftVote when it grants a vote (after the vote is durable, like
 * the vote response itself) and sends it beside the vote response; a new leader signs its
 * LeaderAnnouncement and sends it, with the votes that elected it, to every peer. Every node
 * relays the statements it has received in its next observation exchange (detector.ts; at most
 * `statementsPerExchangeMax` per exchange) and feeds every statement it sees to its
 * EquivocationDetector. Two candidates that each received a vote from one node in one term
 * therefore both relay it, and every correct node that hears both holds the pair. The evidence is
 * proposed to the ledger as `{ type: 'EquivocationEvidence', first, second }`; the ledger verifies
 * both signatures against the roster again (ledger/apply.ts) and flags the node, whoever proposed.
 */
import { splitBrain as limits } from '../../proto/limits.js';
import type { ReasonCode } from '../../proto/reasons.js';
import { bytesEqual, compareBytes, encode, type CborValue } from '../../ledger/encoding.js';
import { signStatement, statementCid, statementToCbor, verifyStatement, type SignedStatement } from '../../ledger/events.js';

export type { SignedStatement } from '../../ledger/events.js';

export const RAFT_VOTE = 'RaftVote';
export const LEADER_ANNOUNCEMENT = 'LeaderAnnouncement';

/**
 * Statement kinds that may legitimately be signed more than once per slot, so two of them never
 * conflict. A FencingRecord reports a passport to fence; two reports with other words for the
 * reason fence the same passport, and the ledger refuses them as evidence (ledger/apply.ts).
 */
export const UNSLOTTED_KINDS: ReadonlySet<string> = new Set(['FencingRecord']);

/** A node's signed vote for `candidate` in `term`. */
export function signVote(clusterId: string, nodeId: string, term: number, candidate: string, identitySecretKey: Uint8Array): SignedStatement {
  checkTerm(term);
  return signStatement({ clusterId, nodeId, kind: RAFT_VOTE, slot: { term }, content: { candidate } }, identitySecretKey);
}

/** A leader's signed announcement of `term`, naming the index of its first entry in it. */
export function signLeaderAnnouncement(clusterId: string, nodeId: string, term: number, startIndex: number, identitySecretKey: Uint8Array): SignedStatement {
  checkTerm(term);
  if (!Number.isSafeInteger(startIndex) || startIndex < 1) throw new RangeError(`startIndex must be a positive integer, got ${startIndex}`);
  return signStatement({ clusterId, nodeId, kind: LEADER_ANNOUNCEMENT, slot: { term }, content: { startIndex } }, identitySecretKey);
}

function checkTerm(term: number): void {
  if (!Number.isSafeInteger(term) || term < 1) throw new RangeError(`term must be a positive integer, got ${term}`);
}

/** The evidence event, exactly the ledger's `EquivocationEvidence` LedgerEvent variant. */
export interface EquivocationEvidence {
  readonly type: 'EquivocationEvidence';
  readonly first: SignedStatement;
  readonly second: SignedStatement;
}

export type SubmitResult =
  | { readonly kind: 'new' }
  | { readonly kind: 'duplicate' }
  | { readonly kind: 'rejected'; readonly reason: ReasonCode; readonly detail: string }
  | { readonly kind: 'equivocation'; readonly evidence: EquivocationEvidence };

export interface EquivocationOptions {
  readonly clusterId: string;
  /** The identity key (raw 32-byte Ed25519) of a node on the roster in force, or undefined. */
  readonly identityKey: (nodeId: string) => Uint8Array | undefined;
  readonly statementsTrackedMax?: number;
  readonly statementBytesMax?: number;
}

/**
 * Checks a statement's well-formedness: bounded size, the expected shape for the kinds defined
 * here, then its signature against the roster. Returns null when it verifies.
 */
export function verifyNodeStatement(s: SignedStatement, clusterId: string, identityKey: (nodeId: string) => Uint8Array | undefined, statementBytesMax: number = limits.statementBytesMax): { reason: ReasonCode; detail: string } | null {
  let bytes: number;
  try {
    bytes = encode(statementToCbor(s)).length;
  } catch (e) {
    return { reason: 'PAYLOAD_REJECTED', detail: `not canonically encodable: ${(e as Error).message}` };
  }
  if (bytes > statementBytesMax) return { reason: 'FRAME_TOO_LARGE', detail: `statement of ${bytes} bytes exceeds ${statementBytesMax}` };
  if (s.clusterId !== clusterId) return { reason: 'BINDING_MISMATCH', detail: `statement for cluster ${s.clusterId}, this is ${clusterId}` };
  const shape = shapeProblem(s);
  if (shape !== null) return { reason: 'PAYLOAD_REJECTED', detail: shape };
  const key = identityKey(s.nodeId);
  if (key === undefined) return { reason: 'UNKNOWN_NODE', detail: `${s.nodeId} is not on the roster` };
  if (!verifyStatement(s, key)) return { reason: 'SIGNATURE_INVALID', detail: `the ${s.kind} statement is not signed by ${s.nodeId}` };
  return null;
}

function isRecord(v: CborValue): v is { readonly [k: string]: CborValue } {
  return typeof v === 'object' && v !== null && !(v instanceof Uint8Array) && !Array.isArray(v);
}

function exactKeys(v: CborValue, keys: readonly string[]): boolean {
  return isRecord(v) && Object.keys(v).length === keys.length && keys.every((k) => Object.prototype.hasOwnProperty.call(v, k));
}

function positiveInt(v: CborValue | undefined): boolean {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;
}

function shapeProblem(s: SignedStatement): string | null {
  if (s.kind === RAFT_VOTE || s.kind === LEADER_ANNOUNCEMENT) {
    if (!exactKeys(s.slot, ['term']) || !positiveInt((s.slot as { term: CborValue }).term)) return `${s.kind}: slot must be { term } with a positive integer term`;
  }
  if (s.kind === RAFT_VOTE) {
    const c = s.content;
    if (!exactKeys(c, ['candidate']) || typeof (c as { candidate: CborValue }).candidate !== 'string' || (c as { candidate: string }).candidate.length === 0) return `${RAFT_VOTE}: content must be { candidate }`;
  }
  if (s.kind === LEADER_ANNOUNCEMENT) {
    if (!exactKeys(s.content, ['startIndex']) || !positiveInt((s.content as { startIndex: CborValue }).startIndex)) return `${LEADER_ANNOUNCEMENT}: content must be { startIndex }`;
  }
  return null;
}

/** The slot a statement speaks for: canonical bytes of (nodeId, kind, slot) as a map key. */
function slotKey(s: SignedStatement): string {
  return Buffer.from(encode({ nodeId: s.nodeId, kind: s.kind, slot: s.slot })).toString('base64');
}

/**
 * Remembers the first valid statement for each (node, kind, slot) and reports a second, different
 * one as equivocation. Memory is bounded by `statementsTrackedMax` slots; the oldest slot is
 * forgotten first (votes and announcements of old terms matter least: a double vote is relayed
 * within an exchange interval of being cast).
 */
export class EquivocationDetector {
  private readonly first = new Map<string, { statement: SignedStatement; cid: Uint8Array; reported: boolean }>();
  private readonly trackedMax: number;
  private readonly bytesMax: number;

  constructor(private readonly o: EquivocationOptions) {
    this.trackedMax = o.statementsTrackedMax ?? limits.statementsTrackedMax;
    this.bytesMax = o.statementBytesMax ?? limits.statementBytesMax;
    if (!Number.isSafeInteger(this.trackedMax) || this.trackedMax < 1) throw new RangeError('statementsTrackedMax must be a positive integer');
  }

  submit(s: SignedStatement): SubmitResult {
    const bad = verifyNodeStatement(s, this.o.clusterId, this.o.identityKey, this.bytesMax);
    if (bad !== null) return { kind: 'rejected', ...bad };
    const cid = statementCid(s);
    // Unslotted kinds are remembered per statement, only so that relays stay deduplicated.
    const key = UNSLOTTED_KINDS.has(s.kind) ? `${slotKey(s)}:${Buffer.from(cid).toString('hex')}` : slotKey(s);
    const had = this.first.get(key);
    if (had === undefined) {
      if (this.first.size >= this.trackedMax) {
        const oldest = this.first.keys().next();
        if (!oldest.done) this.first.delete(oldest.value);
      }
      this.first.set(key, { statement: s, cid, reported: false });
      return { kind: 'new' };
    }
    // The same statement again (a relay, a retransmission): the signature may differ only if the
    // signer re-signed identical content, which states nothing new.
    if (bytesEqual(had.cid, cid)) return { kind: 'duplicate' };
    if (had.reported) return { kind: 'duplicate' };
    had.reported = true;
    return { kind: 'equivocation', evidence: evidenceOf(had.statement, s) };
  }

  tracked(): number {
    return this.first.size;
  }

  /** The first statement held for each tracked slot, oldest first (for inspection). */
  statements(): SignedStatement[] {
    return [...this.first.values()].map((f) => f.statement);
  }
}

/**
 * The evidence event for two conflicting statements, in canonical order (by statement cid), so
 * every node that finds the same pair proposes byte-identical events and the ledger records one.
 */
export function evidenceOf(a: SignedStatement, b: SignedStatement): EquivocationEvidence {
  if (a.nodeId !== b.nodeId || a.kind !== b.kind || !bytesEqual(encode(a.slot), encode(b.slot))) {
    throw new Error('evidenceOf: the statements must be by one node about one slot');
  }
  if (UNSLOTTED_KINDS.has(a.kind)) throw new Error(`evidenceOf: ${a.kind} statements do not conflict`);
  const [first, second] = compareBytes(statementCid(a), statementCid(b)) <= 0 ? [a, b] : [b, a];
  return { type: 'EquivocationEvidence', first, second };
}
