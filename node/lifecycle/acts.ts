/**
 * Building what operators submit, bound to the ledger state in force: governance decision bodies
 * (cluster, governance epoch, parent = the governance head, expiry) and signing acts that carry
 * their transaction.
 *
 * An act is built from a transaction and nothing a caller says about it (ledger/tx/act.ts):
 *
 *   custodian's signed request (ledger/act-request.ts) ── kind + tx bytes [+ declared asset/amount/destination]
 *     └─ actFor: key context (group key, scheme, network) and asset table from the ledger state
 *                ─ deriveActFields ─> asset, amount, destination, displayHash, messageDigest
 *                ─ a declared field that differs ─> TX_DECLARED_MISMATCH (nothing is proposed)
 *                ─ initiator = the custodian who signed the request (node/admin/backend.ts submitAct)
 *
 * Threat: the caller may lie about what the transaction does (declare "1 SOL to X" over bytes that
 * pay Y) or pass a digest of something else to sign. There is no field to pass a digest in, the
 * declared fields are only a double check, and every node re-derives the fields again when it
 * applies ActSubmitted, so a node that skipped this check still could not get a lie admitted.
 */
import { CustodyError } from '../../proto/errors.js';
import { ledger as ledgerLimits } from '../../proto/limits.js';
import { actCid, type Act } from '../../ledger/events.js';
import type { DecisionAction, DecisionBody } from '../../ledger/decision.js';
import { keyContextOf, type ClusterState, type LedgerState } from '../../ledger/state.js';
import { assetTable } from '../../ledger/admission.js';
import { deriveActFields, fieldsOf, requireDeclaredMatch, type DerivedActFields } from '../../ledger/tx/act.js';
import { finalizeBitcoin, finalizeSolana, parseTransaction } from '../../ledger/tx/parse.js';
import { toHex } from '../../ledger/encoding.js';
import type { TxFacts, TxKind } from '../../ledger/tx/types.js';

/** Default life of a proposed decision: long enough for approvers to sign, well under the cap. */
export const DECISION_TTL_MS_DEFAULT = 24 * 3600 * 1000;

export function decisionBodyFor(state: LedgerState, action: DecisionAction, nowMs: number, ttlMs = DECISION_TTL_MS_DEFAULT): DecisionBody {
  const c = state.cluster;
  if (c === null) throw new CustodyError('GENESIS_MISSING', 'the cluster has no genesis yet');
  if (ttlMs <= 0 || ttlMs > ledgerLimits.decisionTtlMsMax) throw new CustodyError('INVALID_ARGUMENT', `ttl must be in (0, ${ledgerLimits.decisionTtlMsMax}] ms`);
  // ActApproved and PublicationReleased name the act they approve as their parent; every other
  // action follows the governance head (ledger/decision.ts DecisionBody.parentCid).
  let parentCid = c.governance.headCid;
  if (action.kind === 'ActApproved' || action.kind === 'PublicationReleased') parentCid = action.actCid;
  return { clusterId: c.clusterId, governanceEpoch: c.governance.epoch, parentCid, action, issuedMs: nowMs, expiresMs: nowMs + ttlMs };
}

/** What a caller may say about an act: the transaction, and optionally what it believes it does. */
export interface ActRequest {
  readonly keyId: string;
  readonly kind: TxKind;
  /** The unsigned transaction: PSBT bytes, the Solana message bytes, or the raw bytes. */
  readonly tx: Uint8Array;
  /** Defaults to the key's active epoch. */
  readonly keyEpoch?: number;
  /** Checked against the transaction's own (TX_DECLARED_MISMATCH); never used in their place. */
  readonly declared?: { readonly asset?: string; readonly amount?: bigint; readonly destination?: string };
}

function clusterOf(state: LedgerState): ClusterState {
  const c = state.cluster;
  if (c === null) throw new CustodyError('GENESIS_MISSING', 'the cluster has no genesis yet');
  return c;
}

/** The act for a request by `initiator`, with the facts it was derived from. Refusals are CustodyErrors (TX_* for the transaction). */
export function actFor(state: LedgerState, r: ActRequest, initiator: string): { act: Act; facts: TxFacts } {
  const c = clusterOf(state);
  const k = Object.hasOwn(c.keys, r.keyId) ? c.keys[r.keyId] : undefined;
  if (k === undefined) throw new CustodyError('UNKNOWN_KEY', `no key ${r.keyId}`);
  const keyEpoch = r.keyEpoch ?? k.activeEpoch;
  if (keyEpoch === null) throw new CustodyError('KEY_NOT_ACTIVE', `key ${r.keyId} is ${k.status}`);
  const key = keyContextOf(c, r.keyId);
  if (key === null) throw new CustodyError('KEY_NOT_PUBLISHED', `key ${r.keyId} has no published group key yet`);
  if (initiator.length === 0) throw new CustodyError('INVALID_ARGUMENT', 'an act needs the identity of who asked for it');
  const { facts, fields } = deriveActFields(r.kind, r.tx, key, assetTable(c));
  const d = r.declared ?? {};
  const declared: DerivedActFields = { ...fields, ...(d.asset !== undefined ? { asset: d.asset } : {}), ...(d.amount !== undefined ? { amount: d.amount } : {}), ...(d.destination !== undefined ? { destination: d.destination } : {}) };
  requireDeclaredMatch(declared, fields);
  const act: Act = { keyId: r.keyId, keyEpoch, initiator, kind: r.kind, tx: Uint8Array.from(r.tx), ...fields };
  return { act, facts };
}

/**
 * The facts of an act's transaction, re-derived from its bytes against the key as the ledger holds
 * it now (the parse is deterministic; the ledger keeps no facts). A refusal is returned, not
 * thrown: a denied act may carry a transaction that never parsed.
 */
export function factsOf(c: ClusterState, a: Act): { facts: TxFacts } | { refused: CustodyError } {
  const key = keyContextOf(c, a.keyId);
  if (key === null) return { refused: new CustodyError('KEY_NOT_PUBLISHED', `key ${a.keyId} has no group key`) };
  try {
    return { facts: parseTransaction(a.kind, a.tx, key, assetTable(c)) };
  } catch (e) {
    if (e instanceof CustodyError) return { refused: e };
    throw e;
  }
}

/** The signed transaction, once the act has one signature per message. */
export interface SignedTx {
  /** Hex of what goes on chain: the network transaction, the Solana wire transaction, or the raw signature. */
  readonly hex: string;
  /** The transaction id (Bitcoin txid, Solana signature in base58); '' for raw. */
  readonly id: string;
}

export function signedTxOf(a: Act, signatures: readonly Uint8Array[]): SignedTx | { refused: CustodyError } {
  const t = a;
  try {
    switch (t.kind) {
      case 'btc-psbt': {
        const f = finalizeBitcoin(t.tx, signatures);
        return { hex: toHex(f.tx), id: f.txid };
      }
      case 'solana': {
        if (signatures.length !== 1) throw new CustodyError('INVALID_ARGUMENT', `${signatures.length} signatures for one Solana message`);
        const f = finalizeSolana(t.tx, signatures[0]!);
        return { hex: toHex(f.tx), id: f.signature };
      }
      case 'raw':
        return { hex: signatures.map(toHex).join(''), id: '' };
    }
  } catch (e) {
    if (e instanceof CustodyError) return { refused: e };
    throw e;
  }
  return { refused: new CustodyError('TX_UNSUPPORTED', `unknown transaction kind ${String(t.kind)}`) };
}

export { actCid, fieldsOf };
