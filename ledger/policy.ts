/**
 * The policy engine for typed acts. Pure: its inputs are the policy in force, the act, the key's
 * recent admissions and the entry's stamp. It returns the verdict and a PolicyReceipt explaining
 * it. The receipt stays local to the node that evaluated it (apply hands it back in the result and
 * never stores it); only the verdict enters the ledger, as the act's Admitted or Denied state.
 */
import { ledger as limits } from '../proto/limits.js';
import type { ReasonCode } from '../proto/reasons.js';
import type { ActPolicy } from './decision.js';
import type { Act } from './events.js';

export interface VelocityEntry {
  readonly stampMs: number;
  readonly amount: bigint;
}

export interface PolicyReceipt {
  readonly opId: string;
  readonly evaluatedAtMs: number;
  /** Index of the amount tier the act fell in, or null above every tier. */
  readonly tier: number | null;
  readonly approvalsRequired: number;
  readonly approvalsPresent: number;
  readonly destinationAllowed: boolean;
  /** Sum admitted for this key inside the window before this act. */
  readonly velocityUsed: bigint;
  readonly velocityMax: bigint;
  readonly verdict: 'allow' | ReasonCode;
  readonly detail: string;
}

export interface PolicyOutcome {
  readonly allowed: boolean;
  readonly reason: ReasonCode | null;
  readonly receipt: PolicyReceipt;
  /** The key's velocity entries inside the window, with this act appended when allowed. */
  readonly velocity: readonly VelocityEntry[];
}

/** Entries still inside the window that ends at `nowMs` (a half-open window (now - w, now]). */
export function velocityWindow(entries: readonly VelocityEntry[], nowMs: number, windowMs: number): VelocityEntry[] {
  return entries.filter((e) => e.stampMs > nowMs - windowMs);
}

export function approvalsRequired(policy: ActPolicy, amt: bigint): { tier: number | null; required: number } {
  const tier = policy.tiers.findIndex((t) => amt <= t.amountMax);
  if (tier < 0) return { tier: null, required: 0 };
  return { tier, required: (policy.tiers[tier] as { approvals: number }).approvals };
}

export function destinationAllowed(policy: ActPolicy, act: Act): boolean {
  const list = Object.hasOwn(policy.destinations, act.asset) ? policy.destinations[act.asset] : undefined;
  return list !== undefined && list.includes(act.destination);
}

/**
 * Evaluates an act. Checks run cheapest and most specific first; the first failing one is the
 * verdict: destination allow-list, amount tier, approvals for the tier, velocity.
 */
export function evaluatePolicy(
  policy: ActPolicy,
  opId: string,
  act: Act,
  recent: readonly VelocityEntry[],
  nowMs: number,
  approvalsPresent: number,
): PolicyOutcome {
  const inWindow = velocityWindow(recent, nowMs, policy.velocity.windowMs);
  const used = inWindow.reduce((s, e) => s + e.amount, 0n);
  const { tier, required } = approvalsRequired(policy, act.amount);
  const allowedDest = destinationAllowed(policy, act);
  const base = {
    opId, evaluatedAtMs: nowMs, tier, approvalsRequired: required, approvalsPresent,
    destinationAllowed: allowedDest, velocityUsed: used, velocityMax: policy.velocity.amountMax,
  };
  const deny = (reason: ReasonCode, detail: string): PolicyOutcome => ({
    allowed: false, reason, receipt: { ...base, verdict: reason, detail }, velocity: inWindow,
  });
  if (!allowedDest) return deny('POLICY_DENIED', `destination ${act.destination} is not on the ${act.asset} allow-list`);
  if (tier === null) return deny('POLICY_DENIED', `amount ${act.amount} exceeds every tier`);
  if (approvalsPresent < required) return deny('QUORUM_NOT_MET', `amount tier ${tier} needs ${required} approvals, ${approvalsPresent} present`);
  if (used + act.amount > policy.velocity.amountMax) {
    return deny('POLICY_DENIED', `velocity: ${used} + ${act.amount} exceeds ${policy.velocity.amountMax} per ${policy.velocity.windowMs} ms`);
  }
  if (inWindow.length >= limits.velocityEntriesMax) return deny('LIMIT_EXCEEDED', `more than ${limits.velocityEntriesMax} acts in one velocity window`);
  return {
    allowed: true, reason: null, receipt: { ...base, verdict: 'allow', detail: 'within policy' },
    velocity: [...inWindow, { stampMs: nowMs, amount: act.amount }],
  };
}
