/**
 * Building what operators submit, bound to the ledger state in force: governance decision bodies
 * (cluster, governance epoch, parent = the governance head, expiry) and typed signing acts.
 */
import { createHash } from 'node:crypto';
import { CustodyError } from '../../proto/errors.js';
import { ledger as ledgerLimits } from '../../proto/limits.js';
import { actCid, type Act } from '../../ledger/events.js';
import type { DecisionAction, DecisionBody } from '../../ledger/decision.js';
import type { LedgerState } from '../../ledger/state.js';

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

export interface ActRequest {
  readonly keyId: string;
  readonly asset: string;
  readonly amount: bigint;
  readonly destination: string;
  /** What the operator was shown; its hash is bound into the act. */
  readonly display: string;
  /** The 32-byte digest to sign (a transaction sighash); defaults to SHA-256 of `display`. */
  readonly messageDigest?: Uint8Array;
  /** Defaults to the key's active epoch. */
  readonly keyEpoch?: number;
}

export function actFor(state: LedgerState, r: ActRequest): Act {
  const k = state.cluster?.keys[r.keyId];
  if (k === undefined) throw new CustodyError('UNKNOWN_KEY', `no key ${r.keyId}`);
  const keyEpoch = r.keyEpoch ?? k.activeEpoch;
  if (keyEpoch === null) throw new CustodyError('KEY_NOT_ACTIVE', `key ${r.keyId} is ${k.status}`);
  const displayHash = createHash('sha256').update(r.display, 'utf8').digest();
  const messageDigest = r.messageDigest ?? createHash('sha256').update(`custody-ledger/v1/demo-message\u0000${r.display}`, 'utf8').digest();
  if (messageDigest.length !== 32) throw new CustodyError('INVALID_ARGUMENT', 'the message digest must be 32 bytes');
  return { keyId: r.keyId, keyEpoch, asset: r.asset, amount: r.amount, destination: r.destination, displayHash: new Uint8Array(displayHash), messageDigest: new Uint8Array(messageDigest) };
}

export { actCid };
