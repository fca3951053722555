/**
 * The rule model of a policy document: an ordered list of rules, FIRST MATCH, DEFAULT DENY.
 *
 *   document = { approver groups, initiator groups, rules[] }
 *   rule     = { id (unique), matchers (all must hold), action }
 *   action   = ALLOW | BLOCK | REQUIRE_APPROVAL { k of an approver group, time to live }
 *
 * The first rule whose matchers all hold decides the act. When none does, the act is blocked
 * with POLICY_NO_RULE; if some rule failed only on its history matchers (a rolling window or a
 * lifetime cap) while every other matcher held, the refusal names the first such rule and says
 * POLICY_WINDOW_EXCEEDED or POLICY_CAP_EXCEEDED, so an operator sees the limit that was hit.
 * Windows being matchers (rather than limits applied after a match) is what lets a document
 * escalate: "ALLOW up to 2 BTC a day" followed by "REQUIRE_APPROVAL beyond" routes the act that
 * would pass the daily limit to the next rule instead of refusing it.
 *
 * Every value is canonical: sets (key ids, assets, addresses, members, weekdays) are sorted and
 * free of duplicates, an absent matcher is `null` (or an empty list for windows and caps), and
 * amounts are integers in the asset's smallest unit. Two documents mean the same exactly when
 * their canonical encodings (yaml.ts) are equal.
 *
 * Time matchers read the LEDGER clock (the entry's stamp, clamped so it never runs backwards),
 * in UTC; no host clock is involved, so every node reaches the same verdict.
 */
import type { ReasonCode } from '../../proto/reasons.js';
import type { AssetTable, TxKind } from '../tx/types.js';
import type { PolicyHistory } from './history.js';

/** Whose admissions a rolling window counts. */
export type Scope = 'key' | 'asset' | 'initiator';
export const SCOPES: readonly Scope[] = ['key', 'asset', 'initiator'];

/** Whose admissions a lifetime cap sums. */
export type CapScope = 'key' | 'asset';
export const CAP_SCOPES: readonly CapScope[] = ['key', 'asset'];

/** UTC weekdays, in the order of `Date.prototype.getUTCDay` (0 = Sunday). */
export type Weekday = 'sun' | 'mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat';
export const WEEKDAYS: readonly Weekday[] = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

/** The asset symbol of raw-message acts (TxFacts.asset for kind 'raw'); it has no decimals. */
export const RAW_ASSET = 'RAW';

/**
 * A rolling window over the scope's admissions: the half-open interval (now - lengthMs, now].
 * An admission exactly lengthMs old is outside. The window holds when the admissions inside it
 * plus this act stay within both bounds: sum + amount <= maxAmount (same asset only) and
 * count + 1 <= maxCount (every asset of the scope).
 */
export interface WindowLimit {
  readonly per: Scope;
  readonly lengthMs: number;
  readonly maxAmount: bigint | null;
  readonly maxCount: number | null;
}

/** A lifetime cap: every amount ever admitted for the scope in the rule's asset, plus this act, <= maxAmount. */
export interface LifetimeCap {
  readonly per: CapScope;
  readonly maxAmount: bigint;
}

export interface DestinationMatcher {
  /**
   * Holds when EVERY paying output (change included unless it pays one of our own addresses)
   * goes to an address on `allow`, or to one of our own keys when `ownKeys`. Not checked when
   * `allow` is empty and `ownKeys` is false. A transaction that pays no one (its only outputs are
   * change to our own addresses) holds it.
   */
  readonly allow: readonly string[];
  readonly ownKeys: boolean;
  /**
   * Holds when SOME output, change included, goes to an address on `deny`. A deny-list selects
   * acts to block or hold, so a rule with one never allows by itself (the parser refuses it on an
   * ALLOW rule). Not checked when empty.
   */
  readonly deny: readonly string[];
}

export interface Matchers {
  /** The initiator is one of `ids` or a member of one of the initiator `groups`. */
  readonly initiators: { readonly ids: readonly string[]; readonly groups: readonly string[] } | null;
  readonly keys: readonly string[] | null;
  readonly assets: readonly string[] | null;
  /** null: every kind except 'raw'; a raw act is matched only by a rule that names it. */
  readonly kinds: readonly TxKind[] | null;
  readonly destination: DestinationMatcher | null;
  /** The act's paid amount (sum of its paying outputs) lies in [min, max]; a bound may be null. */
  readonly amount: { readonly min: bigint | null; readonly max: bigint | null } | null;
  readonly windows: readonly WindowLimit[];
  readonly lifetime: readonly LifetimeCap[];
  /**
   * Minutes of the UTC day: from is inside, to is outside; from > to wraps past midnight
   * (22:00 to 06:00). 0 <= fromMinute < 1440, 0 < toMinute <= 1440, fromMinute != toMinute.
   */
  readonly hours: { readonly fromMinute: number; readonly toMinute: number } | null;
  /** The UTC weekday of the instant itself (a window wrapping past midnight reads the next day's weekday after 00:00). */
  readonly weekdays: readonly Weekday[] | null;
}

export type Action =
  | { readonly kind: 'ALLOW' }
  | { readonly kind: 'BLOCK' }
  | { readonly kind: 'REQUIRE_APPROVAL'; readonly k: number; readonly group: string; readonly ttlMs: number };

export type ActionKind = Action['kind'];
export const ACTION_KINDS: readonly ActionKind[] = ['ALLOW', 'BLOCK', 'REQUIRE_APPROVAL'];

export interface Rule {
  readonly id: string;
  readonly match: Matchers;
  readonly action: Action;
}

export interface Group {
  readonly name: string;
  readonly members: readonly string[];
}

export interface PolicyDocument {
  readonly version: 1;
  /** Sorted by name. */
  readonly approverGroups: readonly Group[];
  readonly initiatorGroups: readonly Group[];
  /** In evaluation order. */
  readonly rules: readonly Rule[];
}

/** What the engine is told about the act besides its transaction facts. */
export interface EvalContext {
  /** The custodian who submitted the act. */
  readonly initiator: string;
  readonly keyId: string;
  /** The ledger clock at the entry that carries the act (ms since the epoch, UTC). */
  readonly nowMs: number;
  /** Admissions the windows and caps read (history.ts). */
  readonly history: PolicyHistory;
  /** Every address of every key the cluster holds. */
  readonly ownAddresses: ReadonlySet<string>;
  /** Decimals for the amounts in verdict details. */
  readonly assets: AssetTable;
}

export interface Verdict {
  readonly action: ActionKind;
  /** The rule that decided, or null when no rule is to blame (no match at all, malformed facts). */
  readonly ruleId: string | null;
  /** null for ALLOW; POLICY_APPROVAL_REQUIRED for a hold; the refusal's code otherwise. */
  readonly reason: ReasonCode | null;
  /** For people: which matcher and which numbers. */
  readonly detail: string;
  readonly approvals: { readonly k: number; readonly group: string; readonly ttlMs: number } | null;
}

/** One matcher of one rule, as explain() reports it. */
export interface MatcherResult {
  readonly matcher: string;
  readonly holds: boolean;
  readonly detail: string;
}

export interface RuleExplanation {
  readonly ruleId: string;
  /** 'matched' for the deciding rule, 'after' for rules past it (still evaluated, for the reader). */
  readonly outcome: 'matched' | 'not-matched' | 'after';
  readonly matchers: readonly MatcherResult[];
}

export interface Explanation {
  readonly verdict: Verdict;
  readonly rules: readonly RuleExplanation[];
}
