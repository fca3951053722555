/**
 * evaluate(policy, facts, ctx) -> verdict; explain(policy, facts, ctx) -> why, rule by rule.
 *
 * Pure: the inputs are the policy document, the transaction facts every node derives from the
 * act's bytes (ledger/tx/types.ts), and the context (initiator, key, ledger clock, history, our
 * own addresses). No host clock, no I/O; the same inputs give the same verdict on every node.
 *
 * Order of evaluation:
 *   1. The facts are checked for the shape the engine relies on (every output in the act's one
 *      asset, no negative amount); otherwise BLOCK PAYLOAD_REJECTED.
 *   2. The ledger clock must not be before the history's latest admission (pruning is only safe
 *      forward in time, history.ts); otherwise BLOCK INVALID_ARGUMENT. A scope of the act that
 *      already holds scopeEntriesMax admissions refuses it BLOCK LIMIT_EXCEEDED.
 *   3. Rules in order; the first whose matchers all hold decides (FIRST MATCH).
 *   4. None holds: BLOCK (DEFAULT DENY), POLICY_NO_RULE, or POLICY_WINDOW_EXCEEDED /
 *      POLICY_CAP_EXCEEDED naming the first rule that failed only on a window or a cap.
 *
 * What an act pays: every output except change that returns to one of our own addresses. The
 * parser's `change` flag alone is not trusted to hide an output: an output marked change whose
 * address is not ours counts as a payment (allow-list, amount, windows), and the deny-list is
 * checked against every output, change included. The paid amount is computed here from the
 * outputs, not read from facts.amount.
 */
import { assert } from '../../proto/errors.js';
import type { ReasonCode } from '../../proto/reasons.js';
import type { TxFacts, TxKind, TxOutput } from '../tx/types.js';
import { lifetimeUsage, scopeIds, scopeLoad, windowUsage } from './history.js';
import { policyEngine as limits } from '../../proto/limits.js';
import {
  SCOPES, WEEKDAYS, type EvalContext, type Explanation, type MatcherResult, type PolicyDocument, type Rule,
  type RuleExplanation, type Scope, type Verdict,
} from './types.js';
import { formatClock, formatDuration, formatUnits } from './units.js';

/** The kinds a rule without a kinds matcher matches: every kind but raw. */
export const DEFAULT_KINDS: readonly TxKind[] = ['btc-psbt', 'solana'];

const DAY_MS = 86_400_000;

/** The UTC minute of the day and weekday (0 = Sunday) of a ledger instant. */
export function utcClock(ms: number): { minute: number; weekday: number } {
  const day = Math.floor(ms / DAY_MS);
  const minute = Math.floor((ms - day * DAY_MS) / 60_000);
  return { minute, weekday: (((day + 4) % 7) + 7) % 7 }; // 1970-01-01 was a Thursday
}

/** Does the UTC minute fall in [from, to), wrapping past midnight when from > to? */
export function inHours(minute: number, fromMinute: number, toMinute: number): boolean {
  return fromMinute < toMinute ? minute >= fromMinute && minute < toMinute : minute >= fromMinute || minute < toMinute;
}

/** Outputs that pay someone: all but change returning to one of our own addresses. */
export function payingOutputs(facts: TxFacts, own: ReadonlySet<string>): TxOutput[] {
  return facts.outputs.filter((o) => !(o.change && own.has(o.address)));
}

interface ActView {
  readonly facts: TxFacts;
  readonly paying: readonly TxOutput[];
  readonly paid: bigint;
  readonly ids: { readonly [S in Scope]: string };
  /** An amount with its asset's decimals (the act's asset unless named). */
  readonly units: (v: bigint, asset?: string) => string;
}

/** The asset a rule's amounts are written in (its one asset), else the act's. */
function ruleAsset(rule: Rule, act: ActView): string {
  return rule.match.assets?.length === 1 ? (rule.match.assets[0] as string) : act.facts.asset;
}

function factsProblem(facts: TxFacts): string | null {
  for (const [i, o] of facts.outputs.entries()) {
    if (o.asset !== facts.asset) return `output ${i} moves ${o.asset}, the act moves ${facts.asset}`;
    if (o.amount < 0n) return `output ${i} has a negative amount ${o.amount}`;
  }
  if (facts.fee < 0n) return `negative fee ${facts.fee}`;
  return null;
}

const held = (matcher: string, holds: boolean, detail: string): MatcherResult => ({ matcher, holds, detail });

/** The matchers that read only the act itself, cheapest first. */
function actMatchers(policy: PolicyDocument, rule: Rule, act: ActView, ctx: EvalContext): MatcherResult[] {
  const m = rule.match;
  const out: MatcherResult[] = [];
  const kinds = m.kinds ?? DEFAULT_KINDS;
  if (act.facts.kind === 'raw' && rule.action.kind === 'ALLOW') {
    // The document readers refuse such a rule; a document built in code meets the same wall.
    out.push(held('kind', false, 'an ALLOW rule never matches a raw act (raw bytes are signed only with approvals)'));
  } else {
    out.push(held('kind', kinds.includes(act.facts.kind), `kind ${act.facts.kind} ${kinds.includes(act.facts.kind) ? 'is' : 'is not'} one of ${kinds.join(', ')}`));
  }
  if (m.keys !== null) out.push(held('key', m.keys.includes(ctx.keyId), `key ${ctx.keyId} ${m.keys.includes(ctx.keyId) ? 'is' : 'is not'} one of ${m.keys.join(', ')}`));
  if (m.assets !== null) {
    const ok = m.assets.includes(act.facts.asset);
    out.push(held('asset', ok, `asset ${act.facts.asset} ${ok ? 'is' : 'is not'} one of ${m.assets.join(', ')}`));
  }
  if (m.initiators !== null) {
    const { ids, groups } = m.initiators;
    const viaGroup = groups.find((g) => policy.initiatorGroups.find((x) => x.name === g)?.members.includes(ctx.initiator) === true);
    const ok = ids.includes(ctx.initiator) || viaGroup !== undefined;
    const named = [...ids, ...groups.map((g) => `group ${g}`)].join(', ');
    out.push(held('initiator', ok, ok ? `initiator ${ctx.initiator} is ${viaGroup === undefined ? 'named' : `in group ${viaGroup}`}` : `initiator ${ctx.initiator} is none of ${named}`));
  }
  const d = m.destination;
  if (d !== null && d.deny.length > 0) {
    const hit = act.facts.outputs.findIndex((o) => d.deny.includes(o.address));
    const o = act.facts.outputs[hit];
    out.push(held('destination.deny', o !== undefined, o !== undefined
      ? `output ${hit}${o.change ? ' (change)' : ''} pays ${o.address}, on the deny-list`
      : `no output pays an address on the deny-list (${act.facts.outputs.length} outputs)`));
  }
  if (d !== null && (d.allow.length > 0 || d.ownKeys)) {
    const bad = act.paying.find((o) => !(d.allow.includes(o.address) || (d.ownKeys && ctx.ownAddresses.has(o.address))));
    const where = d.allow.length > 0 ? (d.ownKeys ? 'the allow-list or our own keys' : 'the allow-list') : 'our own keys';
    out.push(held('destination.allow', bad === undefined, bad === undefined
      ? `every paying output (${act.paying.length}) goes to ${where}`
      : `output ${act.facts.outputs.indexOf(bad)} pays ${bad.address}, not on ${where}`));
  }
  if (m.amount !== null) {
    const { min, max } = m.amount;
    const ok = (min === null || act.paid >= min) && (max === null || act.paid <= max);
    const asset = ruleAsset(rule, act);
    const range = `[${min === null ? '0' : act.units(min, asset)}, ${max === null ? 'any' : act.units(max, asset)}]`;
    out.push(held('amount', ok, `amount ${act.units(act.paid)} ${ok ? 'is' : 'is not'} in ${range}`));
  }
  const { minute, weekday } = utcClock(ctx.nowMs);
  if (m.hours !== null) {
    const ok = inHours(minute, m.hours.fromMinute, m.hours.toMinute);
    out.push(held('hours', ok, `ledger time ${formatClock(minute)} UTC ${ok ? 'is' : 'is not'} in ${formatClock(m.hours.fromMinute)}-${formatClock(m.hours.toMinute)}`));
  }
  if (m.weekdays !== null) {
    const day = WEEKDAYS[weekday] as (typeof WEEKDAYS)[number];
    const ok = m.weekdays.includes(day);
    out.push(held('weekdays', ok, `ledger weekday ${day} (UTC) ${ok ? 'is' : 'is not'} one of ${m.weekdays.join(', ')}`));
  }
  return out;
}

/** The matchers that read the history: rolling windows, then lifetime caps. */
function historyMatchers(rule: Rule, act: ActView, ctx: EvalContext): MatcherResult[] {
  const out: MatcherResult[] = [];
  const asset = ruleAsset(rule, act);
  for (const [i, w] of rule.match.windows.entries()) {
    const id = act.ids[w.per];
    const used = windowUsage(ctx.history, w.per, id, act.facts.asset, ctx.nowMs, w.lengthMs);
    const amountOk = w.maxAmount === null || used.amount + act.paid <= w.maxAmount;
    const countOk = w.maxCount === null || used.count + 1 <= w.maxCount;
    const parts = [
      ...(w.maxAmount === null ? [] : [`amount ${act.units(used.amount)} + ${act.units(act.paid)} ${amountOk ? '<=' : '>'} ${act.units(w.maxAmount, asset)}`]),
      ...(w.maxCount === null ? [] : [`count ${used.count} + 1 ${countOk ? '<=' : '>'} ${w.maxCount}`]),
    ];
    out.push(held(`windows[${i}]`, amountOk && countOk, `${w.per} ${id} over ${formatDuration(w.lengthMs)}: ${parts.join(', ')}`));
  }
  for (const [i, c] of rule.match.lifetime.entries()) {
    const id = act.ids[c.per];
    const used = lifetimeUsage(ctx.history, c.per, id, act.facts.asset);
    const ok = used + act.paid <= c.maxAmount;
    out.push(held(`lifetime[${i}]`, ok, `${c.per} ${id} lifetime: ${act.units(used)} + ${act.units(act.paid)} ${ok ? '<=' : '>'} ${act.units(c.maxAmount, asset)}`));
  }
  return out;
}

function decide(rule: Rule, results: readonly MatcherResult[]): Verdict {
  const why = results.length === 0 ? 'no matchers' : results.map((r) => r.detail).join('; ');
  const a = rule.action;
  switch (a.kind) {
    case 'ALLOW':
      return { action: 'ALLOW', ruleId: rule.id, reason: null, detail: `rule ${rule.id} allows: ${why}`, approvals: null };
    case 'BLOCK':
      return { action: 'BLOCK', ruleId: rule.id, reason: 'POLICY_BLOCKED', detail: `rule ${rule.id} blocks: ${why}`, approvals: null };
    case 'REQUIRE_APPROVAL':
      return {
        action: 'REQUIRE_APPROVAL', ruleId: rule.id, reason: 'POLICY_APPROVAL_REQUIRED',
        detail: `rule ${rule.id} needs ${a.k} approvals of group ${a.group} within ${formatDuration(a.ttlMs)}: ${why}`,
        approvals: { k: a.k, group: a.group, ttlMs: a.ttlMs },
      };
  }
}

const refuse = (reason: ReasonCode, ruleId: string | null, detail: string): Verdict => ({ action: 'BLOCK', ruleId, reason, detail, approvals: null });

function run(policy: PolicyDocument, facts: TxFacts, ctx: EvalContext, explainAll: boolean): Explanation {
  const problem = factsProblem(facts);
  if (problem !== null) return { verdict: refuse('PAYLOAD_REJECTED', null, `transaction facts: ${problem}`), rules: [] };
  if (!Number.isSafeInteger(ctx.nowMs) || ctx.nowMs < 0 || ctx.nowMs < ctx.history.latestMs) {
    return { verdict: refuse('INVALID_ARGUMENT', null, `ledger clock ${ctx.nowMs} is not a stamp at or after the latest recorded admission ${ctx.history.latestMs}`), rules: [] };
  }
  const ids = scopeIds({ keyId: ctx.keyId, initiator: ctx.initiator, asset: facts.asset });
  for (const scope of SCOPES) {
    if (ctx.history.horizons[scope] === 0) continue;
    const load = scopeLoad(ctx.history, scope, ids[scope], ctx.nowMs);
    if (load >= limits.scopeEntriesMax) {
      return { verdict: refuse('LIMIT_EXCEEDED', null, `${scope} ${ids[scope]} already holds ${load} admissions inside its longest window`), rules: [] };
    }
  }
  const paying = payingOutputs(facts, ctx.ownAddresses);
  const act: ActView = {
    facts, paying, ids,
    paid: paying.reduce((s, o) => s + o.amount, 0n),
    units: (v, asset = facts.asset) => `${formatUnits(v, ctx.assets[asset]?.decimals ?? 0)} ${asset}`,
  };
  let verdict: Verdict | null = null;
  let nearMiss: Verdict | null = null;
  const rules: RuleExplanation[] = [];
  for (const rule of policy.rules) {
    if (verdict !== null && !explainAll) break;
    const first = actMatchers(policy, rule, act, ctx);
    const actHolds = first.every((r) => r.holds);
    const second = actHolds || explainAll ? historyMatchers(rule, act, ctx) : [];
    const results = [...first, ...second];
    const holds = actHolds && second.every((r) => r.holds);
    if (verdict === null && holds) verdict = decide(rule, results);
    else if (verdict === null && actHolds && nearMiss === null) {
      const failed = second.filter((r) => !r.holds);
      const window = failed.some((r) => r.matcher.startsWith('windows'));
      nearMiss = refuse(window ? 'POLICY_WINDOW_EXCEEDED' : 'POLICY_CAP_EXCEEDED', rule.id,
        `rule ${rule.id} matched but for its limits: ${failed.map((r) => r.detail).join('; ')}; no later rule matched`);
    }
    rules.push({ ruleId: rule.id, outcome: verdict !== null && verdict.ruleId === rule.id && holds ? 'matched' : verdict !== null ? 'after' : 'not-matched', matchers: results });
  }
  if (verdict === null) verdict = nearMiss ?? refuse('POLICY_NO_RULE', null, `no rule of ${policy.rules.length} matched (default deny)`);
  assert(verdict.action === 'ALLOW' ? verdict.reason === null : verdict.reason !== null, 'every refusal or hold carries a reason code');
  return { verdict, rules };
}

/** The verdict on an act: the first rule whose matchers all hold, else BLOCK (default deny). */
export function evaluate(policy: PolicyDocument, facts: TxFacts, ctx: EvalContext): Verdict {
  return run(policy, facts, ctx, false).verdict;
}

/**
 * The verdict and, for every rule in order, each of its matchers with whether it holds and the
 * numbers behind it (rules after the deciding one are evaluated too, marked 'after').
 */
export function explain(policy: PolicyDocument, facts: TxFacts, ctx: EvalContext): Explanation {
  return run(policy, facts, ctx, true);
}
