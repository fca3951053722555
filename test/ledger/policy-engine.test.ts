/**
 * The policy engine's verdicts (ledger/policy-engine/evaluate.ts).
 *
 * Properties (fast-check) against a naive reference written here from the rule model's comments,
 * which keeps every admission (no pruning) and scans it whole: first match, default deny, windows
 * and caps at their boundaries, hours and weekdays on the UTC ledger clock; the pruned history
 * gives the verdict the unpruned one gives; every refusal carries a reason code and, when a rule
 * decided it, the rule's id. Then the boundaries one by one, and attacks on the facts.
 *
 * A failure prints fast-check's seed and path; replay it exactly with
 *   FC_SEED=<seed> FC_PATH=<path> npx tap dist/test/ledger/policy-engine.test.js
 */
import t from 'tap';
import fc from 'fast-check';
import {
  emptyHistory, evaluate, explain, historyFromCbor, historyToCbor, inHours, record, utcClock, withPolicy, WEEKDAYS, type Admission, type EvalContext, type PolicyDocument,
  type PolicyHistory, type Rule, type Verdict,
} from '../../ledger/policy-engine/index.js';
import { policyEngine as limits } from '../../proto/limits.js';
import { bytesEqual, decode, encode } from '../../ledger/encoding.js';
import { REASON_CODES, type ReasonCode } from '../../proto/reasons.js';
import type { TxFacts } from '../../ledger/tx/types.js';
import { ASSETS, BASE_MS, INITIATORS, KEYS, OWN, RUNS, admissionsArb, factsArb, factsOf, policyArb, prop, replay } from './policy-engine-arbitraries.js';

// ------------------------------------------------------------------------------------------------
// The naive reference
// ------------------------------------------------------------------------------------------------

interface RefCtx {
  readonly initiator: string;
  readonly keyId: string;
  readonly nowMs: number;
  readonly admissions: readonly Admission[];
}

function refPaid(facts: TxFacts): { paying: TxFacts['outputs']; paid: bigint } {
  const paying = facts.outputs.filter((o) => !o.change || !OWN.has(o.address));
  let paid = 0n;
  for (const o of paying) paid += o.amount;
  return { paying, paid };
}

/** [act matchers hold, history matchers hold] for one rule, by the book. */
function refHolds(p: PolicyDocument, r: Rule, facts: TxFacts, c: RefCtx): [boolean, boolean] {
  const m = r.match;
  const { paying, paid } = refPaid(facts);
  const date = new Date(c.nowMs);
  const minute = date.getUTCHours() * 60 + date.getUTCMinutes();
  let act = true;
  if (!(m.kinds ?? ['btc-psbt', 'solana']).includes(facts.kind)) act = false;
  if (m.keys !== null && !m.keys.includes(c.keyId)) act = false;
  if (m.assets !== null && !m.assets.includes(facts.asset)) act = false;
  if (m.initiators !== null) {
    const inGroup = m.initiators.groups.some((g) => (p.initiatorGroups.find((x) => x.name === g)?.members ?? []).includes(c.initiator));
    if (!m.initiators.ids.includes(c.initiator) && !inGroup) act = false;
  }
  if (m.destination !== null) {
    const d = m.destination;
    if (d.deny.length > 0 && !facts.outputs.some((o) => d.deny.includes(o.address))) act = false;
    if ((d.allow.length > 0 || d.ownKeys) && !paying.every((o) => d.allow.includes(o.address) || (d.ownKeys && OWN.has(o.address)))) act = false;
  }
  if (m.amount !== null && ((m.amount.min !== null && paid < m.amount.min) || (m.amount.max !== null && paid > m.amount.max))) act = false;
  if (m.hours !== null) {
    const { fromMinute: f, toMinute: to } = m.hours;
    const inside = f < to ? f <= minute && minute < to : minute >= f || minute < to;
    if (!inside) act = false;
  }
  if (m.weekdays !== null && !m.weekdays.includes(WEEKDAYS[date.getUTCDay()] as never)) act = false;
  let hist = true;
  const idOf = (per: string, a: { keyId: string; initiator: string; asset: string }): string => (per === 'key' ? a.keyId : per === 'asset' ? a.asset : a.initiator);
  const mine = { keyId: c.keyId, initiator: c.initiator, asset: facts.asset };
  for (const w of m.windows) {
    const inWin = c.admissions.filter((a) => idOf(w.per, a) === idOf(w.per, mine) && a.stampMs > c.nowMs - w.lengthMs && a.stampMs <= c.nowMs);
    let sum = 0n;
    for (const a of inWin) if (a.asset === facts.asset) sum += a.amount;
    if (w.maxAmount !== null && sum + paid > w.maxAmount) hist = false;
    if (w.maxCount !== null && inWin.length + 1 > w.maxCount) hist = false;
  }
  for (const cap of m.lifetime) {
    let sum = 0n;
    for (const a of c.admissions) if (a.asset === facts.asset && idOf(cap.per, a) === idOf(cap.per, mine)) sum += a.amount;
    if (sum + paid > cap.maxAmount) hist = false;
  }
  return [act, hist];
}

function refVerdict(p: PolicyDocument, facts: TxFacts, c: RefCtx): { action: string; ruleId: string | null; reason: ReasonCode | null } {
  for (const r of p.rules) {
    const [a, h] = refHolds(p, r, facts, c);
    if (a && h) {
      const reason = r.action.kind === 'ALLOW' ? null : r.action.kind === 'BLOCK' ? 'POLICY_BLOCKED' : 'POLICY_APPROVAL_REQUIRED';
      return { action: r.action.kind, ruleId: r.id, reason };
    }
  }
  for (const r of p.rules) {
    const [a] = refHolds(p, r, facts, c);
    if (!a) continue;
    // The first rule that failed only on history; a failing window names the window code.
    const windowsOnly: Rule = { ...r, match: { ...r.match, lifetime: [] } };
    const [, windowsHold] = refHolds(p, windowsOnly, facts, c);
    return { action: 'BLOCK', ruleId: r.id, reason: windowsHold ? 'POLICY_CAP_EXCEEDED' : 'POLICY_WINDOW_EXCEEDED' };
  }
  return { action: 'BLOCK', ruleId: null, reason: 'POLICY_NO_RULE' };
}

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

function historyOf(p: PolicyDocument, admissions: readonly Admission[], unpruned = false): PolicyHistory {
  let h = emptyHistory(p);
  if (unpruned) h = { ...h, horizons: { key: limits.windowMsMax, asset: limits.windowMsMax, initiator: limits.windowMsMax } };
  for (const a of admissions) h = record(h, a);
  return h;
}

function ctxOf(p: PolicyDocument, c: RefCtx, unpruned = false): EvalContext {
  return { initiator: c.initiator, keyId: c.keyId, nowMs: c.nowMs, history: historyOf(p, c.admissions, unpruned), ownAddresses: OWN, assets: ASSETS };
}

const ctxArb: fc.Arbitrary<RefCtx> = fc.record({
  initiator: fc.constantFrom(...INITIATORS),
  keyId: fc.constantFrom(...KEYS),
  admissions: admissionsArb,
  after: fc.constantFrom(0, 1, 999, 1000, 1001, 59_999, 60_000, 3_600_000, 3_600_001, 40_000_000),
}).map(({ after, admissions, ...c }) => ({ ...c, admissions, nowMs: (admissions.at(-1)?.stampMs ?? BASE_MS) + after }));

function wellFormed(v: Verdict): boolean {
  if (v.action === 'ALLOW') return v.reason === null && v.ruleId !== null && v.approvals === null;
  if (v.reason === null || !REASON_CODES.includes(v.reason)) return false;
  if (v.action === 'REQUIRE_APPROVAL') return v.ruleId !== null && v.approvals !== null && v.reason === 'POLICY_APPROVAL_REQUIRED';
  // A refusal names its rule unless no rule is to blame.
  return v.approvals === null && (v.ruleId !== null) === (v.reason !== 'POLICY_NO_RULE');
}


// ------------------------------------------------------------------------------------------------
// Properties
// ------------------------------------------------------------------------------------------------

const seen = new Set<string>();
prop('first match and default deny: the verdict is the lowest-index rule whose matchers all hold, else BLOCK', fc.tuple(policyArb(), factsArb, ctxArb), ([p, facts, c]) => {
  const v = evaluate(p, facts, ctxOf(p, c));
  const ref = refVerdict(p, facts, c);
  seen.add(`${v.action} ${v.reason ?? ''}`.trim());
  return v.action === ref.action && v.ruleId === ref.ruleId && v.reason === ref.reason && wellFormed(v)
    && (v.action !== 'REQUIRE_APPROVAL' || JSON.stringify(v.approvals) === JSON.stringify((p.rules.find((r) => r.id === v.ruleId) as Rule).action).replace('"kind":"REQUIRE_APPROVAL",', ''));
}, RUNS * 5);

t.test('the random policies reach every kind of verdict (the property above is not vacuous)', { skip: replay.path !== undefined ? 'a replayed path runs one case' : false }, async (tt) => {
  tt.same([...seen].sort(), [
    'ALLOW', 'BLOCK POLICY_BLOCKED', 'BLOCK POLICY_CAP_EXCEEDED', 'BLOCK POLICY_NO_RULE', 'BLOCK POLICY_WINDOW_EXCEEDED', 'REQUIRE_APPROVAL POLICY_APPROVAL_REQUIRED',
  ]);
});

prop('pruning the history never changes a verdict', fc.tuple(policyArb(), factsArb, ctxArb), ([p, facts, c]) => {
  const pruned = evaluate(p, facts, ctxOf(p, c));
  const whole = evaluate(p, facts, ctxOf(p, c, true));
  return JSON.stringify(pruned) === JSON.stringify(whole);
}, RUNS * 2);

prop('explain agrees with evaluate and marks exactly the deciding rule matched', fc.tuple(policyArb(), factsArb, ctxArb), ([p, facts, c]) => {
  const ctx = ctxOf(p, c);
  const v = evaluate(p, facts, ctx);
  const e = explain(p, facts, ctx);
  const matched = e.rules.filter((r) => r.outcome === 'matched').map((r) => r.ruleId);
  return JSON.stringify(e.verdict) === JSON.stringify(v) && e.rules.length === p.rules.length
    && JSON.stringify(matched) === JSON.stringify(v.reason === null || v.reason === 'POLICY_BLOCKED' || v.reason === 'POLICY_APPROVAL_REQUIRED' ? [v.ruleId] : []);
});

prop('an empty policy blocks everything with POLICY_NO_RULE', fc.tuple(factsArb, ctxArb), ([facts, c]) => {
  const p: PolicyDocument = { version: 1, approverGroups: [], initiatorGroups: [], rules: [] };
  const v = evaluate(p, facts, ctxOf(p, c));
  return v.action === 'BLOCK' && v.reason === 'POLICY_NO_RULE' && v.ruleId === null;
});

prop('hours: [from, to) on the UTC minute, wrapping past midnight when from > to', fc.tuple(fc.integer({ min: 0, max: 1439 }), fc.integer({ min: 0, max: 1439 }), fc.integer({ min: 1, max: 1440 })), ([m, f, to]) => {
  const expected = f < to ? m >= f && m < to : f > to ? m >= f || m < to : false;
  return f === to || inHours(m, f, to) === expected;
}, 2000);

prop('the ledger clock reads UTC minute and weekday like Date does', fc.integer({ min: 0, max: 4_102_444_800_000 }), (ms) => {
  const d = new Date(ms);
  const c = utcClock(ms);
  return c.minute === d.getUTCHours() * 60 + d.getUTCMinutes() && c.weekday === d.getUTCDay();
}, 2000);

// ------------------------------------------------------------------------------------------------
// Boundaries, one by one
// ------------------------------------------------------------------------------------------------

const btc = (address: string, amount: bigint, change = false): TxFacts['outputs'][number] => ({ address, asset: 'BTC', amount, change });
const pay = (...outs: TxFacts['outputs']): TxFacts => factsOf('btc-psbt', 'BTC', outs);
const doc = (...rules: Rule[]): PolicyDocument => ({
  version: 1, approverGroups: [{ name: 'g1', members: ['ap1', 'ap2'] }], initiatorGroups: [], rules,
});
const NONE = {
  initiators: null, keys: null, assets: null, kinds: null, destination: null, amount: null, windows: [], lifetime: [], hours: null, weekdays: null,
} as const;
const allow = (id: string, match: Partial<Rule['match']>): Rule => ({ id, match: { ...NONE, ...match }, action: { kind: 'ALLOW' } });
const run = (p: PolicyDocument, facts: TxFacts, nowMs: number, admissions: readonly Admission[] = [], who = { initiator: 'i1', keyId: 'k1' }): Verdict =>
  evaluate(p, facts, ctxOf(p, { ...who, nowMs, admissions }));
const adm = (stampMs: number, amount: bigint, keyId = 'k1'): Admission => ({ keyId, initiator: 'i1', asset: 'BTC', amount, stampMs });

t.test('a rolling window: an entry exactly windowMs old is out; a sum exactly at the max is allowed, one unit more refused', async (tt) => {
  const L = 3_600_000;
  const p = doc(allow('daily', { assets: ['BTC'], windows: [{ per: 'key', lengthMs: L, maxAmount: 1000n, maxCount: null }] }));
  const now = BASE_MS + 10 * L;
  const hist = [adm(now - L, 900n), adm(now - L + 1, 600n)];
  tt.same(run(p, pay(btc('a1', 400n)), now, hist).action, 'ALLOW', '600 inside + 400 = 1000 = max: allowed (the 900 exactly L old is out)');
  const over = run(p, pay(btc('a1', 401n)), now, hist);
  tt.same([over.action, over.reason, over.ruleId], ['BLOCK', 'POLICY_WINDOW_EXCEEDED', 'daily'], 'one unit more is refused, naming the rule and the window');
  tt.match(over.detail, /key k1 over 1h: amount 0\.000006 BTC \+ 0\.00000401 BTC > 0\.00001 BTC/, 'the detail gives the numbers in BTC');
  tt.equal(run(p, pay(btc('a1', 401n)), now + 1, hist).action, 'ALLOW', 'a millisecond later the 600 is exactly L old and out too');
});

t.test('a count window: max count admissions inside allowed, one more refused', async (tt) => {
  const L = 60_000;
  const p = doc(allow('count', { windows: [{ per: 'initiator', lengthMs: L, maxAmount: null, maxCount: 3 }] }));
  const now = BASE_MS + 5 * L;
  const two = [adm(now - L + 1, 1n), adm(now, 1n, 'k2')];
  tt.equal(run(p, pay(btc('a1', 5n)), now, two).action, 'ALLOW', '2 inside + this one = 3 = max');
  const three = [adm(now - L, 1n), ...two, adm(now, 1n, 'k3')];
  const v = run(p, pay(btc('a1', 5n)), now, three);
  tt.same([v.action, v.reason, v.ruleId], ['BLOCK', 'POLICY_WINDOW_EXCEEDED', 'count'], '3 inside (the one exactly L old is out) + 1 > 3');
});

t.test('a lifetime cap: exactly at the cap allowed, one unit more refused', async (tt) => {
  const p = doc(allow('life', { assets: ['BTC'], lifetime: [{ per: 'key', maxAmount: 1000n }] }));
  const hist = [adm(BASE_MS, 300n), adm(BASE_MS + 1, 200n, 'k2'), adm(BASE_MS + 2, 400n)];
  tt.equal(run(p, pay(btc('a1', 300n)), BASE_MS + 3, hist).action, 'ALLOW', '700 for k1 (k2 apart) + 300 = 1000');
  const v = run(p, pay(btc('a1', 301n)), BASE_MS + 3, hist);
  tt.same([v.action, v.reason, v.ruleId], ['BLOCK', 'POLICY_CAP_EXCEEDED', 'life'], 'one unit more');
});

t.test('an exceeded window falls through to the next rule (escalation to approvals)', async (tt) => {
  const p = doc(
    allow('small', { assets: ['BTC'], windows: [{ per: 'key', lengthMs: 60_000, maxAmount: 100n, maxCount: null }] }),
    { id: 'held', match: { ...NONE, assets: ['BTC'] }, action: { kind: 'REQUIRE_APPROVAL', k: 2, group: 'g1', ttlMs: 3_600_000 } },
  );
  const v = run(p, pay(btc('a1', 60n)), BASE_MS + 10, [adm(BASE_MS, 50n)]);
  tt.same([v.action, v.ruleId, v.reason, v.approvals], ['REQUIRE_APPROVAL', 'held', 'POLICY_APPROVAL_REQUIRED', { k: 2, group: 'g1', ttlMs: 3_600_000 }]);
});

t.test('hours wrap past midnight and weekdays turn at 00:00 UTC', async (tt) => {
  const p = doc(allow('night', { hours: { fromMinute: 22 * 60, toMinute: 6 * 60 }, weekdays: ['fri', 'sat'] }));
  const fri = Date.UTC(2026, 0, 9); // a Friday, 00:00 UTC
  const at = (ms: number): string => run(p, pay(btc('a1', 1n)), ms).action;
  tt.equal(at(fri + 21 * 3_600_000 + 59 * 60_000 + 59_999), 'BLOCK', 'Fri 21:59:59.999 is before 22:00');
  tt.equal(at(fri + 22 * 3_600_000), 'ALLOW', 'Fri 22:00 is inside');
  tt.equal(at(fri + 24 * 3_600_000 - 1), 'ALLOW', 'Fri 23:59:59.999 is inside');
  tt.equal(at(fri + 24 * 3_600_000 + 6 * 3_600_000 - 1), 'ALLOW', 'Sat 05:59:59.999 is inside and a Saturday');
  tt.equal(at(fri + 24 * 3_600_000 + 6 * 3_600_000), 'BLOCK', 'Sat 06:00 is outside');
  tt.equal(at(fri + 2 * 24 * 3_600_000 + 3_600_000), 'BLOCK', 'Sun 01:00 is inside the hours but a Sunday (the weekday of the instant itself)');
  tt.equal(at(fri - 24 * 3_600_000 + 23 * 3_600_000), 'BLOCK', 'Thu 23:00 is inside the hours but a Thursday');
  tt.equal(at(fri + 3_600_000), 'ALLOW', 'Fri 01:00 (the tail of Thursday night) is inside and a Friday');
});

// ------------------------------------------------------------------------------------------------
// Attacks on the facts
// ------------------------------------------------------------------------------------------------

t.test('a deny-listed destination is found as change and in a second output', async (tt) => {
  const p = doc(
    { id: 'deny', match: { ...NONE, destination: { allow: [], ownKeys: false, deny: ['bad1'] } }, action: { kind: 'BLOCK' } },
    allow('any', { destination: { allow: ['a1'], ownKeys: true, deny: [] } }),
  );
  for (const [what, facts] of [
    ['as change', pay(btc('a1', 10n), btc('bad1', 5n, true))],
    ['in a second output', pay(btc('a1', 10n), btc('bad1', 5n))],
    ['as change to itself alone', pay(btc('bad1', 5n, true))],
  ] as const) {
    const v = run(p, facts, BASE_MS);
    tt.same([v.action, v.ruleId, v.reason], ['BLOCK', 'deny', 'POLICY_BLOCKED'], what);
  }
  tt.equal(run(p, pay(btc('a1', 10n), btc('own1', 5n, true)), BASE_MS).action, 'ALLOW', 'the same shape with a clean change output is allowed');
});

t.test('a multi-output transaction where only one output is on the allow-list is not allowed', async (tt) => {
  const p = doc(allow('listed', { destination: { allow: ['a1'], ownKeys: false, deny: [] } }));
  const v = run(p, pay(btc('a1', 10n), btc('a2', 10n)), BASE_MS);
  tt.same([v.action, v.reason, v.ruleId], ['BLOCK', 'POLICY_NO_RULE', null]);
  const why = explain(p, pay(btc('a1', 10n), btc('a2', 10n)), ctxOf(p, { initiator: 'i1', keyId: 'k1', nowMs: BASE_MS, admissions: [] })).rules[0]?.matchers;
  tt.match(why?.find((m) => m.matcher === 'destination.allow'), { holds: false, detail: /^output 1 pays a2, not on the allow-list$/ }, 'explain names the output');
});

t.test('an output marked change that does not pay our own key counts as a payment', async (tt) => {
  const p = doc(allow('cheap', { assets: ['BTC'], destination: { allow: ['a1', 'a2'], ownKeys: false, deny: [] }, amount: { min: null, max: 100n } }));
  tt.equal(run(p, pay(btc('a1', 50n), btc('a3', 1000n, true)), BASE_MS).reason, 'POLICY_NO_RULE', 'a3 is not on the allow-list');
  tt.equal(run(p, pay(btc('a1', 50n), btc('a2', 1000n, true)), BASE_MS).reason, 'POLICY_NO_RULE', 'a2 is, but its 1000 counts against the 100 max');
  tt.equal(run(p, pay(btc('a1', 50n), btc('own1', 1000n, true)), BASE_MS).action, 'ALLOW', 'real change is not a payment');
});

t.test('malformed facts, a clock going backwards and a full scope are refused with their codes', async (tt) => {
  const p = doc(allow('all', {}));
  tt.equal(run(p, pay(btc('a1', -1n)), BASE_MS).reason, 'PAYLOAD_REJECTED', 'a negative output');
  tt.equal(run(p, { ...pay(btc('a1', 1n)), outputs: [btc('a1', 1n), { address: 'a2', asset: 'SOL', amount: 1n, change: false }] }, BASE_MS).reason, 'PAYLOAD_REJECTED', 'a second asset');
  tt.equal(run(p, pay(btc('a1', 1n)), BASE_MS - 1, [adm(BASE_MS, 1n)]).reason, 'INVALID_ARGUMENT', 'a ledger clock before the latest admission');
  tt.equal(run(p, pay(btc('a1', 1n)), Number.NaN).reason, 'INVALID_ARGUMENT', 'a clock that is not an integer');
  const w = doc(allow('w', { windows: [{ per: 'asset', lengthMs: limits.windowMsMax, maxAmount: null, maxCount: limits.scopeEntriesMax }] }));
  let h = emptyHistory(w);
  const entries = Array.from({ length: limits.scopeEntriesMax }, (_, i) => ({ stampMs: BASE_MS + i, asset: 'BTC', amount: 1n }));
  h = { ...h, windows: new Map([[JSON.stringify(['asset', 'BTC']), entries]]), latestMs: BASE_MS + limits.scopeEntriesMax };
  const v = evaluate(w, pay(btc('a1', 1n)), { initiator: 'i1', keyId: 'k1', nowMs: h.latestMs, history: h, ownAddresses: OWN, assets: ASSETS });
  tt.same([v.action, v.reason], ['BLOCK', 'LIMIT_EXCEEDED'], `a scope holding ${limits.scopeEntriesMax} admissions takes no more`);
  tt.throws(() => record(h, { keyId: 'k1', initiator: 'i1', asset: 'BTC', amount: 1n, stampMs: h.latestMs }), /^LIMIT_EXCEEDED: asset BTC already holds 65536/, 'and record refuses too');
});

t.test('a raw act is matched only by a rule that names the raw kind', async (tt) => {
  const raw = factsOf('raw', 'RAW', []);
  const p = doc(allow('everything', {}));
  tt.same(run(p, raw, BASE_MS).reason, 'POLICY_NO_RULE', 'a rule without kinds does not match raw');
  const q = doc(allow('everything', {}), { id: 'raw', match: { ...NONE, kinds: ['raw'] }, action: { kind: 'REQUIRE_APPROVAL', k: 2, group: 'g1', ttlMs: 60_000 } });
  tt.same([run(q, raw, BASE_MS).action, run(q, raw, BASE_MS).ruleId], ['REQUIRE_APPROVAL', 'raw']);
  const forged = doc(allow('raw-allowed', { kinds: ['raw'] }));
  tt.same(run(forged, raw, BASE_MS).reason, 'POLICY_NO_RULE', 'an ALLOW rule naming raw, built in code past the document readers, still does not match');
});

t.test('the history keeps only what the windows need', async (tt) => {
  const p = doc(allow('w', { windows: [{ per: 'key', lengthMs: 60_000, maxAmount: null, maxCount: 10 }] }));
  let h = emptyHistory(p);
  for (let i = 0; i < 100; i++) h = record(h, { keyId: 'k1', initiator: 'i1', asset: 'BTC', amount: 1n, stampMs: BASE_MS + i * 10_000 });
  tt.same([...h.windows.keys()], [JSON.stringify(['key', 'k1'])], 'only the key scope is kept (no rule reads asset or initiator windows)');
  tt.equal(h.windows.get(JSON.stringify(['key', 'k1']))?.length, 6, 'entries older than the 60 s horizon are pruned on insert');
  tt.equal(h.lifetime.get(JSON.stringify(['key', 'k1', 'BTC'])), 100n, 'lifetime sums keep every admission');
});

t.test('a new policy keeps the history its windows read and drops scopes no rule reads any more', async (tt) => {
  const perKey = doc(allow('w', { windows: [{ per: 'key', lengthMs: 60_000, maxAmount: null, maxCount: 10 }] }));
  const perAsset = doc(allow('w', { windows: [{ per: 'asset', lengthMs: 60_000, maxAmount: null, maxCount: 2 }] }));
  const both = doc(allow('w', { windows: [{ per: 'key', lengthMs: 60_000, maxAmount: null, maxCount: 10 }, { per: 'asset', lengthMs: 60_000, maxAmount: null, maxCount: 2 }] }));
  let h = emptyHistory(both);
  h = record(h, adm(BASE_MS, 1n));
  h = record(h, adm(BASE_MS + 1, 1n, 'k2'));
  const moved = withPolicy(h, perAsset);
  tt.same([...moved.windows.keys()], [JSON.stringify(['asset', 'BTC'])], 'the key scopes are dropped, the asset scope kept');
  const v = evaluate(perAsset, pay(btc('a1', 1n)), { initiator: 'i1', keyId: 'k3', nowMs: BASE_MS + 2, history: moved, ownAddresses: OWN, assets: ASSETS });
  tt.same([v.action, v.reason, v.ruleId], ['BLOCK', 'POLICY_WINDOW_EXCEEDED', 'w'], 'the kept asset window still counts the two admissions');
  tt.equal(withPolicy(h, perKey).lifetime.get(JSON.stringify(['asset', 'BTC', 'BTC'])), 2n, 'lifetime sums survive any policy change');
});

prop('the history round-trips through its canonical encoding, and verdicts with it', fc.tuple(policyArb(), factsArb, ctxArb), ([p, facts, c]) => {
  const ctx = ctxOf(p, c);
  const bytes = encode(historyToCbor(ctx.history));
  const back = historyFromCbor(decode(bytes, { bytesMax: 1 << 24 }));
  return bytesEqual(encode(historyToCbor(back)), bytes) && JSON.stringify(evaluate(p, facts, { ...ctx, history: back })) === JSON.stringify(evaluate(p, facts, ctx));
});

t.test('a history out of canonical order or with a negative amount is refused PAYLOAD_REJECTED', async (tt) => {
  const p = doc(allow('w', { windows: [{ per: 'key', lengthMs: 60_000, maxAmount: null, maxCount: 10 }] }));
  const h = historyOf(p, [adm(BASE_MS, 1n, 'k1'), adm(BASE_MS + 1, 2n, 'k2')]);
  const v = historyToCbor(h) as { windows: unknown[]; lifetime: unknown[][] };
  tt.throws(() => historyFromCbor({ ...v, windows: [...v.windows].reverse() } as never), /^PAYLOAD_REJECTED: history: not in canonical form/, 'scopes out of order');
  const negative = v.lifetime.map((c, i) => (i === 0 ? [...c.slice(0, 3), -1] : c));
  tt.throws(() => historyFromCbor({ ...v, lifetime: negative } as never), /^PAYLOAD_REJECTED: cap sum/, 'a negative lifetime sum');
  tt.ok(bytesEqual(encode(historyToCbor(historyFromCbor(v as never))), encode(v as never)), 'the canonical value reads back');
});
