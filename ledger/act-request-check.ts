/**
 * Who may start an act, checked the same way by every node at apply (ledger/apply.ts
 * actSubmitted) and by every kernel before it commits a nonce or gives a share
 * (kernel/act-check.ts): the act must be exactly a request a custodian signed.
 *
 * Threat: any single host is compromised: a node (it proposes ActSubmitted events of its choice),
 * an operator's mTLS certificate (it reaches the admin API), or a kernel's daemon (it forwards
 * whatever it likes to its kernel). None of them holds a custodian's Ed25519 key, which lives
 * with the custodian (`custody admin act submit --custodian-key`). So an act is admitted, and a
 * kernel signs for it, only when:
 *
 *   REQUEST_UNSIGNED           the event carries a request (a malformed one never decodes)
 *   NOT_A_CUSTODIAN            its signer is on the roster in force with the role `custodian`
 *                              (an approver, even a governor, is not; a custodian removed or
 *                              re-keyed by ApproversChanged stops being one at that entry)
 *   REQUEST_SIGNATURE_INVALID  the signature verifies under that roster key (RFC 8032, over
 *                              domainMessage('custody-ledger/v1/act-request', CBOR(body)))
 *   REQUEST_MISMATCH           the request is for this cluster, its id is the act's opId, and the
 *                              act is the request: keyId, keyEpoch, kind, tx byte for byte, and
 *                              initiator = the custodian
 *   REQUEST_EXPIRED            (with a clock) issued no more than ledger.actRequestAgeMsMax before
 *                              the entry's stamp and no more than ledger.actRequestSkewMsMax after
 *
 * The act's derived fields (asset, amount, destination, display and messages digests) are not
 * signed: every node and kernel derives them from `tx` itself and refuses an act whose fields
 * differ (TX_DECLARED_MISMATCH at apply, TX_MESSAGES_MISMATCH in the kernel). What the custodian
 * declared in the request is a double check against the same derivation (requestDeclaredMismatch).
 *
 * One request, one act: the request id is the act's opId, and the ledger keeps one act per opId
 * for good (in memory while in flight, then in the archive, which every node keeps and a
 * restored node fetches before it applies anything after its snapshot: ledger/apply.ts
 * actSubmitted has the argument). Pure: no clock (the caller passes the entry's stamp).
 */
import { ledger as limits } from '../proto/limits.js';
import type { ReasonCode } from '../proto/reasons.js';
import { bytesEqual } from './encoding.js';
import type { Approver, ApproverRoster } from './decision.js';
import type { Act } from './events.js';
import { type SignedActRequest, REQUEST_ID_RE, verifyActRequestSignature } from './act-request.js';
import type { DerivedActFields } from './tx/act.js';

export type RequestVerdict =
  | { readonly ok: true; readonly custodian: Approver }
  | { readonly ok: false; readonly reason: ReasonCode; readonly detail: string };

const no = (reason: ReasonCode, detail: string): RequestVerdict => ({ ok: false, reason, detail });

/**
 * Checks `request` against the roster in force and the act it must be. `nowMs` is the ledger time
 * of the entry (apply) or the stamp of the entry the kernel was shown; null skips the window
 * check only (a caller without a stamp still gets every other check).
 */
export function verifyActRequest(
  e: { readonly opId: string; readonly act: Act; readonly request: SignedActRequest | null },
  ctx: { readonly clusterId: string; readonly roster: ApproverRoster; readonly nowMs: number | null },
): RequestVerdict {
  const r = e.request;
  if (r === null) return no('REQUEST_UNSIGNED', `act ${e.opId} carries no custodian request`);
  const b = r.body;
  const signer = ctx.roster.approvers.find((a) => a.id === b.custodian);
  if (signer === undefined) return no('NOT_A_CUSTODIAN', `${b.custodian} is not on the roster in force`);
  if (!signer.roles.includes('custodian')) return no('NOT_A_CUSTODIAN', `${b.custodian} (${signer.roles.join(', ') || 'no role'}) does not hold the custodian role`);
  if (!verifyActRequestSignature(r, signer.publicKey)) return no('REQUEST_SIGNATURE_INVALID', `the request is not signed by custodian ${b.custodian}'s key`);
  if (b.clusterId !== ctx.clusterId) return no('REQUEST_MISMATCH', `the request is for cluster ${b.clusterId}, not ${ctx.clusterId}`);
  if (!REQUEST_ID_RE.test(b.requestId) || e.opId !== b.requestId) return no('REQUEST_MISMATCH', `the act's opId ${e.opId} is not the request id ${b.requestId}`);
  const a = e.act;
  if (a.keyId !== b.keyId) return no('REQUEST_MISMATCH', `the act is for key ${a.keyId}, the request for ${b.keyId}`);
  if (a.keyEpoch !== b.keyEpoch) return no('REQUEST_MISMATCH', `the act is for epoch ${a.keyEpoch}, the request for ${b.keyEpoch}`);
  if (a.kind !== b.kind) return no('REQUEST_MISMATCH', `the act is a ${a.kind} transaction, the request a ${b.kind}`);
  if (!bytesEqual(a.tx, b.tx)) return no('REQUEST_MISMATCH', 'the act\'s transaction is not the one the custodian signed');
  if (a.initiator !== b.custodian) return no('REQUEST_MISMATCH', `the act names ${a.initiator} as initiator; ${b.custodian} signed the request`);
  if (ctx.nowMs !== null) {
    if (b.issuedMs < ctx.nowMs - limits.actRequestAgeMsMax) return no('REQUEST_EXPIRED', `issued at ${b.issuedMs}, more than ${limits.actRequestAgeMsMax} ms before the ledger time ${ctx.nowMs}`);
    if (b.issuedMs > ctx.nowMs + limits.actRequestSkewMsMax) return no('REQUEST_EXPIRED', `issued at ${b.issuedMs}, more than ${limits.actRequestSkewMsMax} ms after the ledger time ${ctx.nowMs}`);
  }
  return { ok: true, custodian: signer };
}

/** What the custodian declared that the transaction does not say ('' declares nothing), or null. */
export function requestDeclaredMismatch(r: SignedActRequest, derived: DerivedActFields): string | null {
  const d = r.body.declared;
  if (d.asset !== '' && d.asset !== derived.asset) return `asset: the custodian declared ${d.asset}, the transaction moves ${derived.asset}`;
  if (d.amount !== '' && BigInt(d.amount) !== derived.amount) return `amount: the custodian declared ${d.amount}, the transaction pays ${derived.amount}`;
  if (d.destination !== '' && d.destination !== derived.destination) return `destination: the custodian declared ${JSON.stringify(d.destination)}, the transaction pays ${JSON.stringify(derived.destination)}`;
  return null;
}
