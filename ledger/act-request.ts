/**
 * A custodian's signed request for an act: what a custodian asks a threshold key to sign, signed
 * with the custodian's Ed25519 key from the approver roster (role `custodian`), so that no node,
 * operator certificate or kernel host can invent an act a custodian did not ask for
 * (DESIGN.md §4; the custody architecture seed: "no single compromised host, operator or
 * administrator is sufficient to forge a signature").
 *
 * Message flow
 *   custodian (CLI, its own key file)  --SignedActRequest-->  any node (admin API, mTLS)
 *   node: ActSubmitted{opId = body.requestId, act (fields re-derived from body.tx), request}
 *   every node at apply: verifyActRequest against the roster in force, and the act must be
 *     exactly what the request says (keyId, keyEpoch, kind, tx, initiator = custodian)
 *   every signer's kernel, before any nonce or share: the same check against the roster the
 *     kernel itself follows (kernel/authority.ts), and its own parse of body.tx
 *
 * Signed bytes: domainMessage(ACT_REQUEST_DOMAIN, canonical CBOR of the body), the same
 * construction as governance decisions (ledger/decision.ts), under a distinct domain so that no
 * decision, statement or checkpoint signature is ever a valid request signature.
 *
 * What the signature binds: the cluster (a request for one cluster is useless on another), the
 * custodian, a request id the custodian chose (it becomes the act's opId, so the ledger's
 * one-act-per-opId rule makes a request good for one act only), when it was issued (the ledger
 * refuses requests outside its window, so a request cannot wait years to be replayed after the
 * act left memory), the key and epoch, the transaction bytes and what the custodian declared the
 * transaction does. It does not bind the derived fields: every node and kernel derives those from
 * the bytes itself.
 *
 * Pure: no clock, no randomness (signing takes the secret key; the request id is the caller's).
 */
import { ledger as ledgerLimits, tx as txLimits } from '../proto/limits.js';
import { type CborValue, encode, digest, domainMessage } from './encoding.js';
import { ShapeError, obj, str, int, bytes, oneOf, ed25519Sign, ed25519Verify } from './decision.js';
import { TX_KINDS, type TxKind } from './tx/types.js';

export const ACT_REQUEST_DOMAIN = 'custody-ledger/v1/act-request';

/** What the custodian declares the transaction does; '' declares nothing (checked, never trusted). */
export interface DeclaredText {
  readonly asset: string;
  /** Decimal integer in the asset's smallest unit, or ''. */
  readonly amount: string;
  readonly destination: string;
}

export interface ActRequestBody {
  readonly clusterId: string;
  /** Roster id of the custodian (an approver entry holding the role `custodian`). */
  readonly custodian: string;
  /** 32 lowercase hex characters (16 random bytes) chosen by the custodian; the act's opId. */
  readonly requestId: string;
  /** The custodian's clock when signing, ms since the epoch. */
  readonly issuedMs: number;
  readonly keyId: string;
  readonly keyEpoch: number;
  readonly kind: TxKind;
  readonly tx: Uint8Array;
  readonly declared: DeclaredText;
}

export interface SignedActRequest {
  readonly body: ActRequestBody;
  /** Raw 64-byte Ed25519 signature over actRequestSigningBytes(body). */
  readonly signature: Uint8Array;
}

export const REQUEST_ID_RE = /^[0-9a-f]{32}$/;

export function actRequestBodyToCbor(b: ActRequestBody): CborValue {
  return {
    clusterId: b.clusterId, custodian: b.custodian, requestId: b.requestId, issuedMs: b.issuedMs,
    keyId: b.keyId, keyEpoch: b.keyEpoch, kind: b.kind, tx: b.tx,
    declared: { asset: b.declared.asset, amount: b.declared.amount, destination: b.declared.destination },
  };
}

export function actRequestSigningBytes(b: ActRequestBody): Uint8Array {
  return domainMessage(ACT_REQUEST_DOMAIN, encode(actRequestBodyToCbor(b)));
}

/** The request's identity (signature excluded). */
export function actRequestCid(b: ActRequestBody): Uint8Array {
  return digest(ACT_REQUEST_DOMAIN, encode(actRequestBodyToCbor(b)));
}

export function signActRequest(body: ActRequestBody, custodianSecretKey: Uint8Array): SignedActRequest {
  return { body, signature: ed25519Sign(actRequestSigningBytes(body), custodianSecretKey) };
}

/** Signature check only; who may sign (roster, role) is the caller's rule. */
export function verifyActRequestSignature(r: SignedActRequest, custodianPublicKey: Uint8Array): boolean {
  return ed25519Verify(r.signature, actRequestSigningBytes(r.body), custodianPublicKey);
}

export function actRequestToCbor(r: SignedActRequest): CborValue {
  return { body: actRequestBodyToCbor(r.body), signature: r.signature };
}

/** Strict decoding (ShapeError on any fault); bounds from proto/limits.ts. */
export function actRequestFromCbor(v: CborValue | undefined): SignedActRequest {
  const o = obj(v, 'request', ['body', 'signature']);
  const b = obj(o.body, 'request.body', ['clusterId', 'custodian', 'requestId', 'issuedMs', 'keyId', 'keyEpoch', 'kind', 'tx', 'declared']);
  const kind = oneOf(b.kind, 'request.kind', TX_KINDS);
  const tx = bytes(b.tx, 'request.tx');
  const txMax = kind === 'btc-psbt' ? txLimits.psbtBytesMax : kind === 'solana' ? txLimits.solanaMessageBytesMax : txLimits.rawBytesMax;
  if (tx.length < 1 || tx.length > txMax) throw new ShapeError(`request.tx: a ${kind} transaction is 1 to ${txMax} bytes, not ${tx.length}`);
  const requestId = str(b.requestId, 'request.requestId');
  if (!REQUEST_ID_RE.test(requestId)) throw new ShapeError('request.requestId: expected 32 lowercase hex characters');
  const d = obj(b.declared, 'request.declared', ['asset', 'amount', 'destination']);
  const declared: DeclaredText = {
    asset: text(d.asset, 'request.declared.asset', ledgerLimits.idBytesMax),
    amount: text(d.amount, 'request.declared.amount', ledgerLimits.idBytesMax),
    destination: text(d.destination, 'request.declared.destination', txLimits.destinationBytesMax),
  };
  if (declared.amount !== '' && !/^(0|[1-9][0-9]*)$/.test(declared.amount)) throw new ShapeError('request.declared.amount: a decimal integer or empty');
  return {
    body: {
      clusterId: str(b.clusterId, 'request.clusterId'),
      custodian: str(b.custodian, 'request.custodian'),
      requestId,
      issuedMs: int(b.issuedMs, 'request.issuedMs'),
      keyId: str(b.keyId, 'request.keyId'),
      keyEpoch: int(b.keyEpoch, 'request.keyEpoch'),
      kind,
      tx,
      declared,
    },
    signature: bytes(o.signature, 'request.signature', 64),
  };
}

/** Text that may be empty (str() refuses ''), bounded in UTF-8 bytes. */
function text(v: CborValue | undefined, what: string, maxBytes: number): string {
  if (typeof v !== 'string' || Buffer.byteLength(v, 'utf8') > maxBytes) throw new ShapeError(`${what}: expected text of at most ${maxBytes} bytes`);
  return v;
}
