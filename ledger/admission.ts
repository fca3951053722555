/**
 * The policy seam of the ledger: the one place apply asks "may this act be admitted?" and "may this
 * executed act be published?". Both questions are about the act's transaction facts (ledger/tx,
 * derived by every node from the transaction's own bytes), never about fields a caller declared.
 *
 *   ActSubmitted ─parse(tx, key, assetTable(c))→ TxFacts ─judgeAdmission(c, …)→ Admitted | Denied
 *   ActPublished ─────────────────────────────── judgePublication(c, op, facts) → Published | refused
 *
 * Pure and deterministic: the inputs are the replicated state, the facts and the entry's clamped
 * stamp, so every node reaches the same verdict and the same recorded history.
 */
import type { ReasonCode } from '../proto/reasons.js';
import { evaluatePolicy } from './policy.js';
import type { ClusterState, OpRecord } from './state.js';
import type { AssetTable, TxFacts } from './tx/types.js';

/** The assets the ledger knows until governance decides its own table. */
export const LEDGER_ASSETS: AssetTable = {
  BTC: { symbol: 'BTC', network: 'bitcoin-regtest', onChain: 'native', decimals: 8 },
  SOL: { symbol: 'SOL', network: 'solana-devnet', onChain: 'native', decimals: 9 },
};

export interface AdmissionRequest {
  readonly opId: string;
  /** Who asked for the act (the custodian the submitting node authenticated). */
  readonly initiator: string;
  readonly keyId: string;
  readonly facts: TxFacts;
  /** Roster approver ids whose signatures on an ActApproved decision for exactly this act verified. */
  readonly approvers: readonly string[];
  /** The entry's stamp, clamped so the ledger clock never runs backwards. */
  readonly nowMs: number;
}

export interface AdmissionVerdict {
  readonly allowed: boolean;
  readonly reason: ReasonCode | null;
  /** The rule that decided, when a rule did (null for default deny and for checks outside the rules). */
  readonly ruleId: string | null;
  readonly detail: string;
  /** When the act is held for approvals: how many of which group, and how long an approval lasts. */
  readonly approvals: { readonly k: number; readonly group: string; readonly ttlMs: number } | null;
}

/** The asset table every parse of an act uses. */
export function assetTable(_c: ClusterState): AssetTable {
  return LEDGER_ASSETS;
}

/** The first non-change output's address: the single destination the legacy policy reads. */
function firstDestination(facts: TxFacts): string {
  return facts.outputs.find((o) => !o.change)?.address ?? '';
}

/**
 * Judges an act's admission. `cluster` is the state with the admission recorded where the policy
 * keeps history (velocity windows); when the act is denied it is `c` unchanged.
 */
export function judgeAdmission(c: ClusterState, r: AdmissionRequest): { verdict: AdmissionVerdict; cluster: ClusterState } {
  const act = { asset: r.facts.asset, amount: r.facts.amount, destination: firstDestination(r.facts) };
  const recent = Object.hasOwn(c.velocity, r.keyId) ? (c.velocity[r.keyId] ?? []) : [];
  const v = evaluatePolicy(c.governance.policy, r.opId, act as never, recent, r.nowMs, r.approvers.length);
  const verdict: AdmissionVerdict = { allowed: v.allowed, reason: v.reason, ruleId: null, detail: v.receipt.detail, approvals: null };
  if (!v.allowed) return { verdict, cluster: c };
  return { verdict, cluster: { ...c, velocity: { ...c.velocity, [r.keyId]: v.velocity } } };
}

/** Judges the publication gate for an executed act, with the policy in force now. */
export function judgePublication(c: ClusterState, op: OpRecord, facts: TxFacts): { ok: boolean; reason: ReasonCode | null; detail: string } {
  const pol = c.governance.policy;
  const dest = firstDestination(facts);
  const list = Object.hasOwn(pol.destinations, facts.asset) ? pol.destinations[facts.asset] : undefined;
  if (list === undefined || !list.includes(dest)) return { ok: false, reason: 'PUBLICATION_DENIED', detail: `destination ${dest} is no longer allowed` };
  if (facts.amount > pol.autoReleaseAmountMax && op.releasedBy === null) {
    return { ok: false, reason: 'PUBLICATION_DENIED', detail: `amount ${facts.amount} above ${pol.autoReleaseAmountMax} needs a PublicationReleased decision` };
  }
  return { ok: true, reason: null, detail: 'released' };
}
