/**
 * The policy seam of the ledger: the one place apply asks "may this act be admitted?" and "may this
 * executed act be published?". Both questions are about the act's transaction facts (ledger/tx,
 * derived by every node from the transaction's own bytes), never about fields a caller declared,
 * and both are answered by the rule engine (ledger/policy-engine: ordered rules, first match,
 * default deny) over the policy document in force.
 *
 *   ActSubmitted ─parse(tx, key, assetTable(c))→ TxFacts ─judgeAdmission(c, …)→ Admitted | Denied
 *   ActPublished ─────────────────────────────── judgePublication(c, op, facts) → Published | refused
 *
 * Pure and deterministic: the inputs are the replicated state, the facts and the entry's clamped
 * stamp, so every node reaches the same verdict and the same recorded history.
 *
 * Admission (judgeAdmission):
 *   ALLOW                    admitted; the admission is recorded in the policy history.
 *   BLOCK / default deny     Denied with the engine's code (POLICY_BLOCKED, POLICY_NO_RULE,
 *                            POLICY_WINDOW_EXCEEDED, POLICY_CAP_EXCEEDED, ...) naming the rule.
 *   REQUIRE_APPROVAL(k, g, ttl)
 *                            admitted (and recorded) only when at least k DISTINCT members of the
 *                            approver group g signed the act's ActApproved, and that approval is
 *                            still fresh on the ledger clock: now - ttl < issuedMs <= now + skew.
 *                            Otherwise Denied QUORUM_NOT_MET naming the rule.
 *
 * Threat model of the approval count. Who is trusted for what:
 *   - the roster (governance) vouches that an approver id is bound to a public key; apply has
 *     already verified every signature of the ActApproved against it (ledger/decision.ts
 *     verifyDecision) and that the approval names exactly this act (its cid, parent binding);
 *   - the policy document says WHICH approvers may release WHICH acts: a signer outside the group
 *     the matched rule names counts for nothing, however many roster signatures the decision has;
 *   - the approver's own clock is not trusted: freshness is judged on the ledger clock from the
 *     approval's issuedMs, and an approval issued further in the future than the clock skew
 *     allowance (policyEngine.approvalIssueSkewMsMax) does not count, so post-dating stretches
 *     the rule's time to live by at most that allowance.
 *   `approvers` are distinct by construction (verifyDecision refuses a signer listed twice);
 *   they are de-duplicated here again so the count never depends on that. verifyDecision also
 *   asks an ActApproved for the roster's quorum of governors; the rule's k-of-group counts on top
 *   of that, so a group should be made of governors, and a k below the roster's threshold adds
 *   nothing to it.
 *
 * Publication (judgePublication), the gate between an executed act and the chain. The gate applies
 * the policy in force NOW, at the ledger clock of the publication, so a rule change after admission
 * still stops a publication (a destination deny-listed since admission is held). Rolling windows
 * and lifetime caps are the RATE of admission, charged once when the act was admitted (the act is
 * in the history they read, so re-reading them would count it twice): at the gate they hold, and a
 * BLOCK rule that carries one is skipped (it blocked by rate, which admission already judged;
 * keeping only its other matchers would block every act like it at any rate). Hours and weekdays
 * are read at the gate's ledger clock when the caller gives it; without it they are treated like
 * windows (hold; a BLOCK rule with them skipped). Release:
 *   ALLOW                  published.
 *   REQUIRE_APPROVAL(k, g) released by the act's own approval when it carries k distinct members
 *                          of g (as the policy names g now; the ttl was judged at admission), or
 *                          by a PublicationReleased decision recorded for the act (op.releasedBy,
 *                          the governance quorum of the roster). An act whose rule started to ask
 *                          for approvals after its admission is released the second way.
 *   BLOCK / no rule        PUBLICATION_DENIED naming the rule and the engine's code. No decision
 *                          overrides it: a change of policy does (or aborting the act).
 */
import { CustodyError } from '../proto/errors.js';
import { policyEngine as limits } from '../proto/limits.js';
import type { ReasonCode } from '../proto/reasons.js';
import { LEDGER_ASSETS } from './asset-table.js';
import { toHex } from './encoding.js';
import {
  type ActionKind, type EvalContext, type Explanation, type PolicyDocument, type PolicyHistory, type Rule, type Verdict,
  type HistoryEntry, type Scope, emptyHistory, evaluate, explain, firstAfter, formatDuration, payingOutputs, record,
} from './policy-engine/index.js';
import { type ClusterState, type KeyRecord, type OpRecord, keyContextOf } from './state.js';
import { taprootAddress } from './tx/bitcoin.js';
import { solanaAddress } from './tx/solana.js';
import type { AssetTable, KeyContext, TxFacts } from './tx/types.js';

export { LEDGER_ASSETS } from './asset-table.js';

export interface AdmissionRequest {
  readonly opId: string;
  /** Who asked for the act (the custodian the submitting node authenticated). */
  readonly initiator: string;
  readonly keyId: string;
  readonly facts: TxFacts;
  /** Roster approver ids whose signatures on an ActApproved decision for exactly this act verified. */
  readonly approvers: readonly string[];
  /**
   * The issuedMs of that ActApproved decision: a REQUIRE_APPROVAL rule counts its approvers only
   * while nowMs - ttl < issuedMs <= nowMs + policyEngine.approvalIssueSkewMsMax. Without it no approver counts (an approval whose age
   * is unknown is not fresh).
   */
  readonly approvedAtMs?: number | null;
  /** The entry's stamp, clamped so the ledger clock never runs backwards. */
  readonly nowMs: number;
}

export interface AdmissionVerdict {
  readonly allowed: boolean;
  readonly reason: ReasonCode | null;
  /** The rule that decided, when a rule did (null for default deny and for checks outside the rules). */
  readonly ruleId: string | null;
  /** The engine's action: what the rule (or default deny, BLOCK) said before approvals were counted. */
  readonly action: ActionKind;
  readonly detail: string;
  /** When the act is held for approvals: how many of which group, and how long an approval lasts. */
  readonly approvals: { readonly k: number; readonly group: string; readonly ttlMs: number } | null;
}

/** The asset table every parse of an act uses. */
export function assetTable(_c: ClusterState): AssetTable {
  return LEDGER_ASSETS;
}

// ------------------------------------------------------------------------------------------------
// The cluster's own addresses
// ------------------------------------------------------------------------------------------------

/** Address memo by (scheme, network, group key): deriving a taproot address costs a point decode. */
const addressMemo = new Map<string, string | null>();
const ADDRESS_MEMO_MAX = 4096;

/** The key's own address on its network, or null when it has none (secp256k1, raw-only, malformed). */
export function keyAddress(key: KeyContext): string | null {
  const memoKey = `${key.scheme}/${key.network}/${toHex(key.groupKey)}`;
  const hit = addressMemo.get(memoKey);
  if (hit !== undefined) return hit;
  let address: string | null = null;
  try {
    if (key.scheme === 'taproot' && key.network.startsWith('bitcoin-')) address = taprootAddress(key);
    else if (key.scheme === 'ed25519' && key.network.startsWith('solana-')) address = solanaAddress(key);
  } catch (e) {
    if (!(e instanceof CustodyError)) throw e;
  }
  if (addressMemo.size >= ADDRESS_MEMO_MAX) addressMemo.clear();
  addressMemo.set(memoKey, address);
  return address;
}

/**
 * Every address of every active key the cluster holds, on the key's network: what "our own keys"
 * means to a destination matcher, and which change outputs are not payments.
 */
export function ownAddresses(c: ClusterState): ReadonlySet<string> {
  const out = new Set<string>();
  for (const id of Object.keys(c.keys)) {
    const k = c.keys[id] as KeyRecord;
    if (k.status !== 'active') continue;
    const ctx = keyContextOf(c, id);
    const a = ctx === null ? null : keyAddress(ctx);
    if (a !== null) out.add(a);
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// Admission
// ------------------------------------------------------------------------------------------------

function contextOf(c: ClusterState, initiator: string, keyId: string, nowMs: number, history: PolicyHistory): EvalContext {
  return { initiator, keyId, nowMs, history, ownAddresses: ownAddresses(c), assets: assetTable(c) };
}

/** Distinct members of `group` among `approvers`, and the signers that are not members. */
export function groupSigners(policy: PolicyDocument, group: string, approvers: readonly string[]): { members: string[]; others: string[] } {
  const g = policy.approverGroups.find((x) => x.name === group);
  const distinct = [...new Set(approvers)];
  const members = distinct.filter((a) => g?.members.includes(a) === true);
  return { members, others: distinct.filter((a) => !members.includes(a)) };
}

const allowed = (v: Verdict, detail: string): AdmissionVerdict => ({ allowed: true, reason: null, ruleId: v.ruleId, action: v.action, detail, approvals: v.approvals });
const denied = (reason: ReasonCode, ruleId: string | null, action: ActionKind, detail: string, approvals: AdmissionVerdict['approvals'] = null): AdmissionVerdict => ({ allowed: false, reason, ruleId, action, detail, approvals });

/** The verdict on an act from the engine's, counting the approvals a REQUIRE_APPROVAL rule asks for. */
export function admissionVerdict(policy: PolicyDocument, v: Verdict, r: AdmissionRequest): AdmissionVerdict {
  if (v.action === 'ALLOW') return allowed(v, v.detail);
  if (v.action === 'BLOCK') return denied(v.reason ?? 'POLICY_DENIED', v.ruleId, 'BLOCK', v.detail);
  const need = v.approvals as { k: number; group: string; ttlMs: number };
  const { members, others } = groupSigners(policy, need.group, r.approvers);
  const at = r.approvedAtMs ?? null;
  const fresh = at !== null && at <= r.nowMs + limits.approvalIssueSkewMsMax && r.nowMs - at < need.ttlMs;
  const counted = fresh ? members.length : 0;
  const why = [
    `${members.length} member${members.length === 1 ? '' : 's'} of ${need.group} signed${members.length > 0 ? ` (${members.join(', ')})` : ''}`,
    ...(others.length > 0 ? [`not members, not counted: ${others.join(', ')}`] : []),
    ...(r.approvers.length > 0 && !fresh
      ? [at === null ? 'the approval carries no issue time' : at > r.nowMs
        ? `the approval is issued at ${at}, more than ${formatDuration(limits.approvalIssueSkewMsMax)} after the ledger clock ${r.nowMs}`
        : `the approval is ${formatDuration(r.nowMs - at)} old, older than ${formatDuration(need.ttlMs)}`]
      : []),
  ].join('; ');
  if (counted >= need.k) return allowed(v, `rule ${v.ruleId as string}: ${counted} of ${need.k} approvals of ${need.group} within ${formatDuration(need.ttlMs)}: ${why}`);
  return denied('QUORUM_NOT_MET', v.ruleId, 'REQUIRE_APPROVAL', `rule ${v.ruleId as string} needs ${need.k} approvals of ${need.group} within ${formatDuration(need.ttlMs)}, ${counted} count: ${why}`, need);
}

/**
 * The history without what no window can read again: at ledger clock `nowMs` (never earlier than
 * the latest admission, and the clock never runs backwards) an entry at or before nowMs - horizon
 * of its scope kind is outside every window of the policy in force, now and later. record() prunes
 * the scope it inserts into; this prunes every scope, so scopes that stop receiving admissions (an
 * initiator who left, a retired key) do not keep theirs: the history holds only what the longest
 * windows span.
 */
export function pruneHistory(h: PolicyHistory, nowMs: number): PolicyHistory {
  let windows: Map<string, readonly HistoryEntry[]> | null = null;
  for (const [k, entries] of h.windows) {
    const horizon = h.horizons[(JSON.parse(k) as [Scope])[0]];
    const from = firstAfter(entries, nowMs - horizon);
    if (from === 0) continue;
    windows ??= new Map(h.windows);
    if (from >= entries.length) windows.delete(k);
    else windows.set(k, entries.slice(from));
  }
  return windows === null ? h : { ...h, windows };
}

/** The admission to record: the act's paid amount (as evaluate computes it) at the ledger clock. */
function recorded(c: ClusterState, r: AdmissionRequest, ctx: EvalContext): ClusterState {
  const amount = payingOutputs(r.facts, ctx.ownAddresses).reduce((s, o) => s + o.amount, 0n);
  const h = record(c.policyHistory, { keyId: r.keyId, initiator: r.initiator, asset: r.facts.asset, amount, stampMs: r.nowMs });
  return { ...c, policyHistory: pruneHistory(h, r.nowMs) };
}

/**
 * Judges an act's admission. `cluster` is the state with the admission recorded in the policy
 * history (windows and caps); when the act is denied it is `c` unchanged.
 */
export function judgeAdmission(c: ClusterState, r: AdmissionRequest): { verdict: AdmissionVerdict; cluster: ClusterState } {
  const policy = c.governance.policy;
  const ctx = contextOf(c, r.initiator, r.keyId, r.nowMs, c.policyHistory);
  const verdict = admissionVerdict(policy, evaluate(policy, r.facts, ctx), r);
  if (!verdict.allowed) return { verdict, cluster: c };
  try {
    return { verdict, cluster: recorded(c, r, ctx) };
  } catch (e) {
    // evaluate refuses (before any rule) what record would refuse; this keeps apply total anyway.
    if (e instanceof CustodyError) return { verdict: denied(e.reason, null, 'BLOCK', e.detail), cluster: c };
    throw e;
  }
}

/**
 * What judgeAdmission would answer, with the engine's rule-by-rule explanation: a dry run over the
 * current state (nothing is recorded).
 */
export function explainAdmission(c: ClusterState, r: AdmissionRequest): { verdict: AdmissionVerdict; explanation: Explanation } {
  const policy = c.governance.policy;
  const explanation = explain(policy, r.facts, contextOf(c, r.initiator, r.keyId, r.nowMs, c.policyHistory));
  return { verdict: admissionVerdict(policy, explanation.verdict, r), explanation };
}

// ------------------------------------------------------------------------------------------------
// Publication
// ------------------------------------------------------------------------------------------------

/** True when the rule has a matcher the gate does not read (rate always; time without a clock). */
function gateConditional(rule: Rule, clock: boolean): boolean {
  const m = rule.match;
  return m.windows.length > 0 || m.lifetime.length > 0 || (!clock && (m.hours !== null || m.weekdays !== null));
}

/**
 * The policy the gate applies (see the file comment): windows and caps dropped, and hours and
 * weekdays too when the gate has no clock (`clock` false); a BLOCK rule that had one is skipped.
 */
export function gatePolicy(policy: PolicyDocument, clock = false): PolicyDocument {
  return {
    ...policy,
    rules: policy.rules
      .filter((r) => !(r.action.kind === 'BLOCK' && gateConditional(r, clock)))
      .map((r) => ({ ...r, match: { ...r.match, windows: [], lifetime: [], ...(clock ? {} : { hours: null, weekdays: null }) } })),
  };
}

/** The custodian who asked for the act (acts that do not name one: the node that submitted it). */
function initiatorOf(op: OpRecord): string {
  return (op.act as OpRecord['act'] & { readonly initiator?: string }).initiator ?? op.nodeId;
}

/**
 * Judges the publication gate for an executed act, with the policy in force now (see the file
 * comment). `nowMs`: the ledger clock of the ActPublished entry (apply's clamped stamp), which
 * hours and weekdays are read at.
 */
export function judgePublication(c: ClusterState, op: OpRecord, facts: TxFacts, nowMs?: number): { ok: boolean; reason: ReasonCode | null; detail: string; ruleId: string | null } {
  const policy = gatePolicy(c.governance.policy, nowMs !== undefined);
  const history = emptyHistory(policy);
  const v = evaluate(policy, facts, contextOf(c, initiatorOf(op), op.act.keyId, nowMs ?? 0, history));
  if (v.action === 'ALLOW') return { ok: true, reason: null, detail: `released by rule ${v.ruleId as string}`, ruleId: v.ruleId };
  if (v.action === 'BLOCK') {
    return { ok: false, reason: 'PUBLICATION_DENIED', detail: `held at the gate by ${v.ruleId === null ? 'no rule' : `rule ${v.ruleId}`} (${v.reason as string}): ${v.detail}`, ruleId: v.ruleId };
  }
  const need = v.approvals as { k: number; group: string };
  if (op.releasedBy !== null) return { ok: true, reason: null, detail: `rule ${v.ruleId as string}: released by decision ${toHex(op.releasedBy)}`, ruleId: v.ruleId };
  const { members } = groupSigners(c.governance.policy, need.group, op.approval?.approvals.map((a) => a.approverId) ?? []);
  if (members.length >= need.k) return { ok: true, reason: null, detail: `rule ${v.ruleId as string}: released by its approval (${members.join(', ')} of ${need.group})`, ruleId: v.ruleId };
  return {
    ok: false, reason: 'PUBLICATION_DENIED', ruleId: v.ruleId,
    detail: `rule ${v.ruleId as string} needs ${need.k} approvals of ${need.group}; the act's approval carries ${members.length}: it waits for a PublicationReleased decision`,
  };
}
