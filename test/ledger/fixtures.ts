/**
 * Deterministic fixtures for ledger tests: approver and node keys derived from fixed seeds, so a
 * failing property replays with the same keys.
 */
import { makeApproverKey, signDecision, type ApproverKey, type ApproverRoster, type DecisionAction, type DecisionBody, type GovernanceDecision } from '../../ledger/decision.js';

export function seed(label: string): Uint8Array {
  const out = new Uint8Array(32);
  const b = new TextEncoder().encode(label);
  out.set(b.subarray(0, 32));
  return out;
}

export function approverKeys(n: number, prefix = 'approver'): ApproverKey[] {
  return Array.from({ length: n }, (_, i) => makeApproverKey(`${prefix}-${i}`, seed(`${prefix}-${i}`)));
}

export function rosterOf(keys: readonly ApproverKey[], threshold: number, freezeThreshold = 1): ApproverRoster {
  return {
    approvers: keys.map((k, i) => ({ id: k.id, publicKey: k.publicKey, roles: i === keys.length - 1 && keys.length > threshold ? ['governor', 'security'] as const : ['governor'] as const })),
    quorum: { threshold, freezeThreshold },
  };
}

export const CLUSTER = 'cluster-test';
export const ZERO_CID = new Uint8Array(32);

export function body(action: DecisionAction, over: Partial<DecisionBody> = {}): DecisionBody {
  return { clusterId: CLUSTER, governanceEpoch: 0, parentCid: ZERO_CID, action, issuedMs: 1_000, expiresMs: 61_000, ...over };
}

export function decide(action: DecisionAction, keys: readonly ApproverKey[], over: Partial<DecisionBody> = {}): GovernanceDecision {
  return signDecision(body(action, over), keys);
}
