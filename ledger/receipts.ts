/**
 * Receipts of a signing act and the evidence bundle an auditor verifies offline.
 *
 * Each stage of an act leaves one receipt, hash-linked to the one before it:
 *
 *   AdmissionReceipt  --prev-->  PermitReceipt  --prev-->  PublicationReceipt
 *
 * A receipt is a canonical CBOR map; its cid is sha256("custody-ledger/v1/receipt" || 0 || bytes).
 * Every receipt names the ledger index, the entry stamp, the cid of the event that produced it and
 * the hash-chain head after that event, so it can be checked against any node's log.
 *
 * Evidence bundle (JSON, format "custody-ledger/evidence/v1"):
 *   {
 *     "format": "custody-ledger/evidence/v1",
 *     "clusterId": "...", "opId": "...",
 *     "act": "<hex: canonical CBOR of the act>",
 *     "approval": "<hex: canonical CBOR of the ActApproved decision>" | null,
 *     "receipts": [ { "type": "AdmissionReceipt", "cid": "<hex>", "cbor": "<hex>" }, ... ],
 *     "rule": { "id": "<rule id>" | null, "action": "ALLOW" | "BLOCK" | "REQUIRE_APPROVAL", "detail": "..." } | null,
 *     "request": "<hex: canonical CBOR of the custodian's signed act request>",
 *     "roster": "<hex: canonical CBOR of the approver roster>", "rosterEpoch": <governance epoch>
 *   }
 * The request must verify under a `custodian` entry of the bundle's roster, for this cluster, and
 * the act must be exactly it (opId = request id, key, epoch, kind, transaction, initiator): link 0
 * breaks with REQUEST_UNSIGNED, NOT_A_CUSTODIAN, REQUEST_SIGNATURE_INVALID or REQUEST_MISMATCH.
 * The AdmissionReceipt names the id of the policy rule that admitted the act (`ruleId`), so the
 * rule is covered by the receipt's cid and, through `prev`, by every later receipt: a bundle whose
 * rule was changed breaks a link. `rule` repeats it with the engine's explanation for people; its
 * id must be the receipt's (the detail is the ledger's text and is not hashed into a receipt).
 * Offline, as for every field, the last receipt of a bundle is bound only by its own cid: whoever
 * re-hashes a forged last receipt is caught by comparing its eventCid and chainHead with any node's
 * log, not by this verifier; a rule changed in a receipt with a successor breaks that successor.
 * `verifyEvidenceBundle` checks it without a cluster and names the first broken link: link 0 is
 * the bundle itself (format, act, approval), link i >= 1 is receipts[i-1].
 */
import { ledger as limits } from '../proto/limits.js';
import type { ReasonCode } from '../proto/reasons.js';
import { type CborValue, bytesEqual, decode, digest, encode, fromHex, toHex } from './encoding.js';
import { ShapeError, obj, str, int, bytes, decisionFromCbor, decisionToCbor, decisionCid, rosterFromCbor, rosterToCbor, type ApproverRoster, type GovernanceDecision } from './decision.js';
import { type SignedActRequest, actRequestFromCbor, actRequestToCbor } from './act-request.js';
import { verifyActRequest } from './act-request-check.js';
import { type Act, actCid, actFromCbor, actToCbor } from './events.js';
import type { OpRecord, RuleRecord } from './state.js';

export const RECEIPT_DOMAIN = 'custody-ledger/v1/receipt';
export const BUNDLE_FORMAT = 'custody-ledger/evidence/v1';
export const RECEIPT_TYPES = ['AdmissionReceipt', 'PermitReceipt', 'PublicationReceipt'] as const;
export type ReceiptType = (typeof RECEIPT_TYPES)[number];

/** Where in the ledger a receipt was produced. */
export interface ReceiptAnchor {
  readonly clusterId: string;
  readonly opId: string;
  readonly index: number;
  readonly stampMs: number;
  readonly eventCid: Uint8Array;
  readonly chainHead: Uint8Array;
}

export function receiptCid(r: CborValue): Uint8Array {
  return digest(RECEIPT_DOMAIN, encode(r));
}

export function admissionReceipt(at: ReceiptAnchor, a: { actCid: Uint8Array; keyId: string; keyEpoch: number; governanceEpoch: number; approvalCid: Uint8Array | null; ruleId: string | null }): CborValue {
  return { type: 'AdmissionReceipt', ...at, ...a, prev: null };
}

export function permitReceipt(at: ReceiptAnchor, prev: CborValue, p: { permitId: Uint8Array; nodeId: string; keyId: string; keyEpoch: number; messageDigest: Uint8Array }): CborValue {
  return { type: 'PermitReceipt', ...at, ...p, prev: receiptCid(prev) };
}

export function publicationReceipt(at: ReceiptAnchor, prev: CborValue, p: { signatureDigest: Uint8Array; releasedBy: Uint8Array | null }): CborValue {
  return { type: 'PublicationReceipt', ...at, ...p, prev: receiptCid(prev) };
}

// ------------------------------------------------------------------------------------------------
// Bundle export
// ------------------------------------------------------------------------------------------------

export interface EvidenceBundle {
  readonly format: typeof BUNDLE_FORMAT;
  readonly clusterId: string;
  readonly opId: string;
  readonly act: string;
  readonly approval: string | null;
  readonly receipts: readonly { readonly type: string; readonly cid: string; readonly cbor: string }[];
  /**
   * The custodian's signed request the act is (hex of the canonical CBOR of actRequestToCbor), and
   * the approver roster (hex of the canonical CBOR of rosterToCbor) of governance epoch
   * `rosterEpoch` that the verifier checks its signer and signature against: the exporting node's
   * roster in force. A verifier that holds the roster of the AdmissionReceipt's governance epoch
   * itself should compare the two.
   */
  readonly request: string | null;
  readonly roster: string | null;
  readonly rosterEpoch: number | null;
  /** The rule that decided the act's admission (OpRecord.rule); absent from bundles that predate it. */
  readonly rule?: RuleRecord | null;
}

/**
 * The bundle of one act. `approval` is the ActApproved decision the act was admitted with, if any;
 * `governance` the roster in force and its epoch (the custodian's signature is checked against it).
 */
export function exportEvidenceBundle(clusterId: string, op: OpRecord, approval: GovernanceDecision | null, governance: { readonly roster: ApproverRoster; readonly epoch: number } | null): EvidenceBundle {
  return {
    format: BUNDLE_FORMAT,
    clusterId,
    opId: op.opId,
    act: toHex(encode(actToCbor(op.act))),
    approval: approval === null ? null : toHex(encode(decisionToCbor(approval))),
    request: op.request === null ? null : toHex(encode(actRequestToCbor(op.request))),
    roster: governance === null ? null : toHex(encode(rosterToCbor(governance.roster))),
    rosterEpoch: governance === null ? null : governance.epoch,
    receipts: op.receipts.map((r) => ({
      type: (r as { type: string }).type,
      cid: toHex(receiptCid(r)),
      cbor: toHex(encode(r)),
    })),
    rule: op.rule,
  };
}

// ------------------------------------------------------------------------------------------------
// Offline verification
// ------------------------------------------------------------------------------------------------

export type BundleVerdict =
  | { readonly ok: true; readonly links: readonly string[]; readonly ruleId: string | null }
  | { readonly ok: false; readonly link: number; readonly name: string; readonly reason: ReasonCode; readonly detail: string };

class Broken extends Error {
  constructor(readonly link: number, readonly linkName: string, readonly reason: ReasonCode, detail: string) {
    super(detail);
  }
}

function field(v: CborValue | undefined, what: string): CborValue {
  if (v === undefined) throw new ShapeError(`missing ${what}`);
  return v;
}

const ANCHOR_KEYS = ['type', 'clusterId', 'opId', 'index', 'stampMs', 'eventCid', 'chainHead', 'prev'];
const RECEIPT_KEYS: { readonly [t in ReceiptType]: readonly string[] } = {
  AdmissionReceipt: [...ANCHOR_KEYS, 'actCid', 'keyId', 'keyEpoch', 'governanceEpoch', 'approvalCid', 'ruleId'],
  PermitReceipt: [...ANCHOR_KEYS, 'permitId', 'nodeId', 'keyId', 'keyEpoch', 'messageDigest'],
  PublicationReceipt: [...ANCHOR_KEYS, 'signatureDigest', 'releasedBy'],
};

/**
 * Verifies a bundle (the parsed JSON). Checks, link by link: the receipt decodes as canonical
 * CBOR, its stated type and cid match its content, it belongs to the bundle's cluster and act,
 * its `prev` names the cid of the receipt before it, ledger indices increase along the chain, and
 * what it repeats from earlier links (act cid, key, epoch, digest) agrees with them.
 */
export function verifyEvidenceBundle(bundle: unknown): BundleVerdict {
  try {
    return { ok: true, ...check(bundle) };
  } catch (e) {
    if (e instanceof Broken) return { ok: false, link: e.link, name: e.linkName, reason: e.reason, detail: e.message };
    throw e;
  }
}

function check(bundle: unknown): { links: string[]; ruleId: string | null } {
  const at0 = (reason: ReasonCode, detail: string): never => { throw new Broken(0, 'bundle', reason, detail); };
  if (bundle === null || typeof bundle !== 'object' || Array.isArray(bundle)) at0('PAYLOAD_REJECTED', 'the bundle is not a JSON object');
  const b = bundle as Record<string, unknown>;
  if (b.format !== BUNDLE_FORMAT) at0('PAYLOAD_REJECTED', `format is not ${BUNDLE_FORMAT}`);
  if (typeof b.clusterId !== 'string' || typeof b.opId !== 'string' || typeof b.act !== 'string') at0('PAYLOAD_REJECTED', 'clusterId, opId and act must be strings');
  if (!Array.isArray(b.receipts) || b.receipts.length < 1 || b.receipts.length > RECEIPT_TYPES.length) {
    at0('PAYLOAD_REJECTED', `receipts must list 1 to ${RECEIPT_TYPES.length} receipts`);
  }
  const clusterId = b.clusterId as string;
  const opId = b.opId as string;
  let act: Act;
  try {
    act = actFromCbor(decode(fromHex(b.act as string)));
  } catch (e) {
    return at0('PAYLOAD_REJECTED', `act: ${(e as Error).message}`);
  }
  const aCid = actCid(act);
  let approvalCid: Uint8Array | null = null;
  if (b.approval !== null) {
    if (typeof b.approval !== 'string') at0('PAYLOAD_REJECTED', 'approval must be hex or null');
    let d: GovernanceDecision;
    try {
      d = decisionFromCbor(decode(fromHex(b.approval as string)));
    } catch (e) {
      return at0('PAYLOAD_REJECTED', `approval: ${(e as Error).message}`);
    }
    const action = d.body.action;
    if (action.kind !== 'ActApproved' || action.opId !== opId || !bytesEqual(action.actCid, aCid) || d.body.clusterId !== clusterId) {
      at0('BINDING_MISMATCH', 'the approval does not approve this act in this cluster');
    }
    approvalCid = decisionCid(d.body);
  }
  // Who asked for the act: a custodian's signed request, checked against the bundle's roster with
  // the ledger's own rule (ledger/act-request-check.ts; the window is the ledger's business).
  if (typeof b.request !== 'string') at0('REQUEST_UNSIGNED', 'the bundle carries no custodian request for the act');
  if (typeof b.roster !== 'string') at0('PAYLOAD_REJECTED', 'the bundle carries no roster to check the custodian\'s signature against');
  let request: SignedActRequest;
  let roster: ApproverRoster;
  try {
    request = actRequestFromCbor(decode(fromHex(b.request as string)));
  } catch (e) {
    return at0('REQUEST_UNSIGNED', `request: ${(e as Error).message}`);
  }
  try {
    roster = rosterFromCbor(decode(fromHex(b.roster as string)));
  } catch (e) {
    return at0('PAYLOAD_REJECTED', `roster: ${(e as Error).message}`);
  }
  const rv = verifyActRequest({ opId, act, request }, { clusterId, roster, nowMs: null });
  if (!rv.ok) at0(rv.reason, `request: ${rv.detail}`);

  const receipts = b.receipts as unknown[];
  const names: string[] = [];
  let prev: { cid: Uint8Array; r: { readonly [k: string]: CborValue | undefined } } | null = null;
  let admission: { readonly [k: string]: CborValue | undefined } | null = null;
  let ruleId: string | null = null;
  for (let i = 0; i < receipts.length; i++) {
    const expected = RECEIPT_TYPES[i] as ReceiptType;
    const link = i + 1;
    const fail = (reason: ReasonCode, detail: string): never => { throw new Broken(link, expected, reason, detail); };
    const entry = receipts[i] as Record<string, unknown> | null;
    if (entry === null || typeof entry !== 'object' || typeof entry.cbor !== 'string' || typeof entry.cid !== 'string') {
      fail('PAYLOAD_REJECTED', 'a receipt needs type, cid and cbor');
    }
    const e = entry as Record<string, string>;
    if (e.type !== expected) fail('BINDING_MISMATCH', `receipt ${link} is labelled ${String(e.type)}, expected ${expected}`);
    let raw: Uint8Array;
    let statedCid: Uint8Array;
    let value: CborValue;
    try {
      raw = fromHex(e.cbor as string);
      statedCid = fromHex(e.cid as string);
      value = decode(raw);
    } catch (err) {
      return fail('PAYLOAD_REJECTED', `not canonical CBOR: ${(err as Error).message}`);
    }
    const cidNow = digest(RECEIPT_DOMAIN, raw);
    if (!bytesEqual(cidNow, statedCid)) fail('BINDING_MISMATCH', `the stated cid ${e.cid} is not the hash of the receipt (${toHex(cidNow)})`);
    let r: { readonly [k: string]: CborValue | undefined };
    try {
      r = obj(value, expected, RECEIPT_KEYS[expected]);
      if (r.type !== expected) throw new ShapeError(`type field is ${String(r.type)}`);
      if (str(r.clusterId, 'clusterId') !== clusterId) fail('BINDING_MISMATCH', `receipt is for cluster ${String(r.clusterId)}`);
      if (str(r.opId, 'opId') !== opId) fail('BINDING_MISMATCH', `receipt is for act ${String(r.opId)}`);
      int(r.index, 'index');
      int(r.stampMs, 'stampMs');
      bytes(r.eventCid, 'eventCid', 32);
      bytes(r.chainHead, 'chainHead', 32);
    } catch (err) {
      if (err instanceof Broken) throw err;
      return fail('PAYLOAD_REJECTED', (err as Error).message);
    }
    if (prev === null) {
      if (field(r.prev, 'prev') !== null) fail('BINDING_MISMATCH', 'the first receipt must not link a predecessor');
      if (!(r.actCid instanceof Uint8Array) || !bytesEqual(r.actCid, aCid)) fail('BINDING_MISMATCH', 'actCid does not match the act in the bundle');
      if (r.keyId !== act.keyId || r.keyEpoch !== act.keyEpoch) fail('BINDING_MISMATCH', 'key or key epoch differs from the act');
      const rApproval = r.approvalCid;
      const sameApproval = approvalCid === null ? rApproval === null : (rApproval instanceof Uint8Array && bytesEqual(rApproval, approvalCid));
      if (!sameApproval) fail('BINDING_MISMATCH', 'approvalCid does not match the approval in the bundle');
      const rRule = r.ruleId;
      if (rRule !== null && (typeof rRule !== 'string' || rRule.length === 0 || Buffer.byteLength(rRule, 'utf8') > limits.idBytesMax)) fail('PAYLOAD_REJECTED', 'ruleId: a rule id or null');
      ruleId = rRule as string | null;
      if (b.rule !== undefined && b.rule !== null) {
        const stated = (b.rule as { id?: unknown }).id;
        if (typeof b.rule !== 'object' || stated !== ruleId) fail('BINDING_MISMATCH', `the bundle's rule ${String(stated)} is not the rule the AdmissionReceipt names (${String(ruleId)})`);
      } else if (b.rule === null) {
        fail('BINDING_MISMATCH', `the bundle names no rule; the AdmissionReceipt names ${String(ruleId)}`);
      }
      admission = r;
    } else {
      if (!(r.prev instanceof Uint8Array) || !bytesEqual(r.prev, prev.cid)) fail('BINDING_MISMATCH', `prev does not name the ${RECEIPT_TYPES[i - 1]} cid`);
      if ((r.index as number) <= (prev.r.index as number)) fail('BINDING_MISMATCH', 'ledger index does not increase along the chain');
      if ((r.stampMs as number) < (prev.r.stampMs as number)) fail('BINDING_MISMATCH', 'stamp runs backwards along the chain');
      if (expected === 'PermitReceipt') {
        const adm = admission as { readonly [k: string]: CborValue | undefined };
        if (r.keyId !== adm.keyId || r.keyEpoch !== adm.keyEpoch) fail('BINDING_MISMATCH', 'the permit names another key or epoch than the admission');
        if (!(r.messageDigest instanceof Uint8Array) || !bytesEqual(r.messageDigest, act.messageDigest)) fail('BINDING_MISMATCH', 'the permit names another message digest than the act');
      }
    }
    prev = { cid: cidNow, r };
    names.push(expected);
  }
  return { links: names, ruleId };
}
