/**
 * The observation exchange between peers: the one peer message that carries everything the
 * split-brain, equivocation and rollback checks need, as canonical CBOR (ledger/encoding.ts: the
 * strict decoder refuses anything `encode` would not produce).
 *
 *   { v: 1,
 *     from:        the sending node (must equal the node the mTLS certificate names),
 *     observation: { node, term, leader | null, appliedIndex, stateRoot }   (detector.ts),
 *     statements:  [ SignedStatement ... ]   signed votes, leader announcements and other node
 *                  statements this node has newly seen, at most statementsPerExchangeMax
 *                  (equivocation.ts),
 *     query:       true when the sender asks "what have you witnessed from me?" (rollback.ts),
 *     boot:        the sender's boot id, a random id drawn at each start of its process (optional),
 *     answer:      the sender's Witness of the receiver, or null, when the receiver asked,
 *     answerFor:   the boot id of the query that answer is for (optional) }
 *
 * A rollback answer holds what every boot of the asker said except the asking one (rollback.ts
 * WitnessBook): a query without `boot` is answered from everything the sender witnessed, and the
 * answer then names no `answerFor`; a node that has a boot counts only answers whose `answerFor`
 * is its own, so an answer to a query of an earlier run of it never counts for this one.
 *
 * Sent to each peer every `limits.splitBrain.observationIntervalMs`, and at once on start (with
 * query: true). Unsigned on purpose: the peer channel is mutually authenticated TLS, and each field
 * speaks only for the sender; the statements inside carry their own signatures.
 */
import { randomBytes } from 'node:crypto';
import { node as nodeLimits, splitBrain as limits } from '../../proto/limits.js';
import type { ReasonCode } from '../../proto/reasons.js';
import { decode, encode, type CborValue } from '../../ledger/encoding.js';
import { statementFromCbor, statementToCbor, type SignedStatement } from '../../ledger/events.js';
import type { Observation } from './detector.js';
import type { Witness } from './rollback.js';

export const EXCHANGE_VERSION = 1;

export interface Exchange {
  readonly from: string;
  readonly observation: Observation;
  readonly statements: readonly SignedStatement[];
  readonly query: boolean;
  /** The sender's boot id (this run of its process). */
  readonly boot?: string;
  /** undefined: no answer in this exchange; null: the sender witnessed nothing from the receiver. */
  readonly answer?: Witness | null;
  /** The boot of the receiver whose query `answer` is for (absent when the query named none). */
  readonly answerFor?: string;
}

/** gRPC metadata on each peer stream naming the sender's boot, so the receiver knows which run said each Raft message. */
export const BOOT_METADATA_KEY = 'custody-boot';

/** A fresh boot id: 64 random bits, drawn at each start of a node process. */
export function newBootId(): string {
  return randomBytes(8).toString('hex');
}

/** A boot id as a peer named it, or undefined when it named none or an invalid one (then what it says counts against every asker). */
export function bootOf(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 && v.length <= limits.bootIdCharsMax ? v : undefined;
}

export function encodeExchange(e: Exchange): Uint8Array {
  if (e.statements.length > limits.statementsPerExchangeMax) throw new RangeError(`at most ${limits.statementsPerExchangeMax} statements per exchange, got ${e.statements.length}`);
  const o = e.observation;
  const body: { [k: string]: CborValue } = {
    v: EXCHANGE_VERSION,
    from: e.from,
    observation: { node: o.node, term: o.term, leader: o.leader, appliedIndex: o.appliedIndex, stateRoot: o.stateRoot },
    statements: e.statements.map(statementToCbor),
    query: e.query,
  };
  if (e.boot !== undefined) body.boot = e.boot;
  if (e.answer !== undefined) {
    body.answer = e.answer === null ? null : { term: e.answer.term, vote: e.answer.vote, ackIndex: e.answer.ackIndex };
    if (e.answerFor !== undefined) body.answerFor = e.answerFor;
  }
  return encode(body);
}

export type Decoded = { readonly ok: true; readonly exchange: Exchange } | { readonly ok: false; readonly reason: ReasonCode; readonly detail: string };

class Bad extends Error {}

type Rec = { readonly [k: string]: CborValue | undefined };

function rec(v: CborValue | undefined, what: string, keys: readonly string[], optional: readonly string[] = []): Rec {
  if (v === null || v === undefined || typeof v !== 'object' || v instanceof Uint8Array || Array.isArray(v)) throw new Bad(`${what}: expected a map`);
  const r = v as Rec;
  for (const k of Object.keys(r)) if (!keys.includes(k) && !optional.includes(k)) throw new Bad(`${what}: unexpected field ${k}`);
  for (const k of keys) if (r[k] === undefined) throw new Bad(`${what}: missing field ${k}`);
  return r;
}

function nat(v: CborValue | undefined, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Bad(`${what}: expected a non-negative integer`);
  return v;
}

function text(v: CborValue | undefined, what: string, empty = false): string {
  if (typeof v !== 'string' || (!empty && v.length === 0)) throw new Bad(`${what}: expected ${empty ? 'text' : 'non-empty text'}`);
  return v;
}

function bootId(v: CborValue | undefined, what: string): string {
  const b = bootOf(v);
  if (b === undefined) throw new Bad(`${what}: expected a boot id of 1..${limits.bootIdCharsMax} characters`);
  return b;
}

function nodeOrNull(v: CborValue | undefined, what: string): string | null {
  return v === null ? null : text(v, what);
}

/**
 * Decodes and validates one exchange received from `peer` (the node its certificate names).
 * Never throws on bad input: refusals carry a reason code for the peer-refusal metric.
 */
export function decodeExchange(bytes: Uint8Array, peer: string): Decoded {
  let v: CborValue;
  try {
    v = decode(bytes, { bytesMax: nodeLimits.peerMessageBytesMax });
  } catch (e) {
    return { ok: false, reason: 'FRAME_MALFORMED', detail: (e as Error).message };
  }
  try {
    const r = rec(v, 'exchange', ['v', 'from', 'observation', 'statements', 'query'], ['answer', 'boot', 'answerFor']);
    if (r.v !== EXCHANGE_VERSION) throw new Bad(`exchange: version ${String(r.v)}, expected ${EXCHANGE_VERSION}`);
    const from = text(r.from, 'from');
    if (from !== peer) return { ok: false, reason: 'PEER_IDENTITY_MISMATCH', detail: `exchange claims to be from ${from} but the certificate names ${peer}` };
    const o = rec(r.observation, 'observation', ['node', 'term', 'leader', 'appliedIndex', 'stateRoot']);
    const observation: Observation = {
      node: text(o.node, 'observation.node'),
      term: nat(o.term, 'observation.term'),
      leader: nodeOrNull(o.leader, 'observation.leader'),
      appliedIndex: nat(o.appliedIndex, 'observation.appliedIndex'),
      stateRoot: text(o.stateRoot, 'observation.stateRoot', true),
    };
    if (observation.node !== peer) return { ok: false, reason: 'PEER_IDENTITY_MISMATCH', detail: `${peer} sent an observation of ${observation.node}: a node speaks only for itself` };
    if (!Array.isArray(r.statements)) throw new Bad('statements: expected an array');
    const raw = r.statements as readonly CborValue[];
    if (raw.length > limits.statementsPerExchangeMax) return { ok: false, reason: 'LIMIT_EXCEEDED', detail: `${raw.length} statements exceed ${limits.statementsPerExchangeMax}` };
    const statements = raw.map((s) => statementFromCbor(s));
    if (typeof r.query !== 'boolean') throw new Bad('query: expected a boolean');
    let answer: Witness | null | undefined;
    if (r.answer === null) answer = null;
    else if (r.answer !== undefined) {
      const a = rec(r.answer, 'answer', ['term', 'vote', 'ackIndex']);
      answer = { term: nat(a.term, 'answer.term'), vote: nodeOrNull(a.vote, 'answer.vote'), ackIndex: nat(a.ackIndex, 'answer.ackIndex') };
    }
    const boot = r.boot === undefined ? undefined : bootId(r.boot, 'boot');
    if (r.answerFor !== undefined && answer === undefined) throw new Bad('answerFor: given without an answer');
    const answerFor = r.answerFor === undefined ? undefined : bootId(r.answerFor, 'answerFor');
    return {
      ok: true,
      exchange: { from, observation, statements, query: r.query, ...(boot !== undefined ? { boot } : {}), ...(answer !== undefined ? { answer } : {}), ...(answerFor !== undefined ? { answerFor } : {}) },
    };
  } catch (e) {
    return { ok: false, reason: 'PAYLOAD_REJECTED', detail: (e as Error).message };
  }
}
