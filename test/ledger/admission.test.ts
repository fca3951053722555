/**
 * The act policy through the ledger: every property drives apply() with ActSubmitted, ActPublished
 * and PolicyChanged entries (ScriptedCluster) and compares the journal's verdict with a small
 * independent model of the rule semantics (first match, default deny, half-open rolling windows,
 * the UTC clock of the clamped entry stamp, k-of-group approvals within their time to live).
 * A failing property prints fast-check's seed and path; FC_SEED / FC_PATH / FC_RUNS replay it.
 */
import fc from 'fast-check';
import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { LEDGER_ASSETS } from '../../ledger/asset-table.js';
import { toHex } from '../../ledger/encoding.js';
import { DEMO_BTC_DESTINATION, DEMO_POLICY, DEMO_SOL_DESTINATION } from '../../node/commands/demo.js';
import { policyEngine as limits } from '../../proto/limits.js';
import {
  ScriptedCluster, actCid, decode, encode, restore, snapshot, stateRoot, bytesEqual, regtestAddressOf, solanaAddressOf, type Act, type ApplyResult,
  type CborValue, type GovernanceDecision,
} from '../../ledger/index.js';
import { gatePolicy, judgeAdmission } from '../../ledger/admission.js';
import {
  WEEKDAYS, encodeDocument, historyToCbor, inHours, parsePolicyYaml, utcClock, type Action, type Matchers, type PolicyDocument, type Rule, type Weekday,
} from '../../ledger/policy-engine/index.js';
import { rid } from '../../ledger/scenario.js';

const RUNS = Number(process.env.FC_RUNS ?? 40);
const replay = {
  ...(process.env.FC_SEED !== undefined ? { seed: Number(process.env.FC_SEED) } : {}),
  ...(process.env.FC_PATH !== undefined ? { path: process.env.FC_PATH } : {}),
};

/** A fast-check property as a tap subtest; a failure reports the seed and path that replay it. */
function prop<T>(name: string, arb: fc.Arbitrary<T>, check: (x: T) => void, runs = RUNS): void {
  t.test(name, async (tt) => {
    const r = fc.check(fc.property(arb, (x) => { check(x); return true; }), { numRuns: runs, ...replay });
    tt.equal(r.failed, false, fc.defaultReportMessage(r) ?? name);
    if (replay.path === undefined) tt.equal(r.numRuns, runs, `${r.numRuns} runs`);
  });
}

function expect(cond: boolean, what: string): void {
  if (!cond) throw new Error(what);
}

const POLICY_CODES = ['POLICY_NO_RULE', 'POLICY_BLOCKED', 'POLICY_WINDOW_EXCEEDED', 'POLICY_CAP_EXCEEDED', 'QUORUM_NOT_MET'];

/** Every refusal by the policy carries a policy code, and names the rule that decided when one did. */
function refusalNamesRule(r: ApplyResult, ruleId: string | null, reason: string): void {
  expect(!r.ok && r.reason === reason, `expected ${reason}, got ${r.ok ? 'admitted' : `${r.reason}: ${r.detail}`}`);
  expect(!r.ok && POLICY_CODES.includes(r.reason), `refusal ${r.ok ? '' : r.reason} is not a policy code`);
  expect(r.admission?.ruleId === ruleId, `refusal names rule ${String(r.admission?.ruleId)}, expected ${String(ruleId)}`);
  if (ruleId !== null) expect(!r.ok && r.detail.includes(`rule ${ruleId}`), `detail "${r.ok ? '' : r.detail}" does not name rule ${ruleId}`);
}

// ------------------------------------------------------------------------------------------------
// Documents built in code (canonical: sets sorted)
// ------------------------------------------------------------------------------------------------

const NO_MATCH: Matchers = {
  initiators: null, keys: null, assets: null, kinds: null, destination: null, amount: null, windows: [], lifetime: [], hours: null, weekdays: null,
};

function rule(id: string, m: Partial<Matchers>, action: Action): Rule {
  return { id, match: { ...NO_MATCH, ...m }, action };
}

function doc(rules: readonly Rule[], approverGroups: PolicyDocument['approverGroups'] = []): PolicyDocument {
  return { version: 1, approverGroups, initiatorGroups: [], rules };
}

const sorted = (xs: readonly string[]): string[] => [...new Set(xs)].sort();

const START = 1_700_000_000_000;

/**
 * A cluster under `policy` with two active keys: k1, a Taproot key on bitcoin-regtest (BTC and raw
 * acts), and ks, an Ed25519 key on solana-devnet (SOL acts). Entries are stamped where the test says.
 */
function cluster(policy: PolicyDocument, o: { approvers?: number } = {}): ScriptedCluster {
  const s = new ScriptedCluster({ label: 'admission', policy, stepMs: 0, startMs: START, ...(o.approvers !== undefined ? { approvers: o.approvers } : {}) });
  const g = s.genesis();
  if (!g.ok) throw new Error(`genesis: ${g.reason} ${g.detail}`);
  for (const r of [...s.createKey('k1', undefined, 2, { scheme: 'taproot' }), ...s.createKey('ks')]) if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  return s;
}

/** Both addresses of each label (its regtest Taproot and its devnet address): what a rule lists for "that destination". */
const addressesOf = (labels: readonly string[]): string[] => sorted(labels.flatMap((l) => [regtestAddressOf(l), solanaAddressOf(l)]));

// ------------------------------------------------------------------------------------------------
// First match and default deny
// ------------------------------------------------------------------------------------------------

const DESTS = ['bc1-a', 'bc1-b', 'bc1-c', 'bc1-d'];
const AMOUNTS = [1n, 999n, 1_000n, 1_001n, 50_000n, 2_000_000n];

interface SimpleAct { readonly asset: 'BTC' | 'SOL' | 'RAW'; readonly destination: string; readonly amount: bigint }

const actArb: fc.Arbitrary<SimpleAct> = fc.record({
  asset: fc.constantFrom<SimpleAct['asset']>('BTC', 'BTC', 'SOL', 'RAW'),
  destination: fc.constantFrom(...DESTS, 'bc1-stranger'),
  amount: fc.constantFrom(...AMOUNTS),
});

/** ALLOW and BLOCK rules over asset, kind, destination allow/deny and amount range (no history, no time). */
const staticRuleArb = (id: string): fc.Arbitrary<Rule> => fc.record({
  block: fc.boolean(),
  assets: fc.option(fc.subarray(['BTC', 'SOL'], { minLength: 1 })),
  allow: fc.option(fc.subarray(DESTS, { minLength: 1 })),
  deny: fc.subarray(DESTS, { maxLength: 2 }),
  raw: fc.boolean(),
  min: fc.option(fc.constantFrom(...AMOUNTS)),
  max: fc.option(fc.constantFrom(...AMOUNTS)),
}).map(({ block, assets, allow, deny, raw, min, max }) => {
  const oneAsset = assets !== null && assets.length === 1;
  const lo = oneAsset ? min : null;
  const hi = oneAsset ? max : null;
  const amount = lo === null && hi === null ? null : { min: lo !== null && hi !== null && lo > hi ? hi : lo, max: lo !== null && hi !== null && lo > hi ? lo : hi };
  const denyList = block ? deny : [];
  const destination = allow === null && denyList.length === 0 ? null : { allow: allow === null ? [] : addressesOf(allow), ownKeys: false, deny: addressesOf(denyList) };
  return rule(id, {
    assets: assets === null ? null : sorted(assets),
    kinds: block && raw ? ['raw'] : null,
    destination, amount,
  }, block ? { kind: 'BLOCK' } : { kind: 'ALLOW' });
});

const staticPolicyArb: fc.Arbitrary<PolicyDocument> = fc.integer({ min: 0, max: 5 })
  .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => staticRuleArb(`r${i}`))))
  .map((rules) => doc(rules));

/**
 * The model: the first rule whose matchers all hold, else null (default deny). A raw act pays
 * nothing: no output to deny-list, nothing off an allow-list, an amount of 0.
 */
function firstMatch(p: PolicyDocument, a: SimpleAct): Rule | null {
  const kind = a.asset === 'RAW' ? 'raw' : a.asset === 'SOL' ? 'solana' : 'btc-psbt';
  const pays = kind === 'raw' ? [] : addressesOf([a.destination]);
  const amount = kind === 'raw' ? 0n : a.amount;
  for (const r of p.rules) {
    const m = r.match;
    if (kind === 'raw' && r.action.kind === 'ALLOW') continue;
    if (!(m.kinds ?? ['btc-psbt', 'solana']).includes(kind)) continue;
    if (m.assets !== null && !m.assets.includes(a.asset)) continue;
    if (m.destination !== null && m.destination.deny.length > 0 && !pays.some((x) => m.destination!.deny.includes(x))) continue;
    if (m.destination !== null && m.destination.allow.length > 0 && pays.length > 0 && !pays.some((x) => m.destination!.allow.includes(x))) continue;
    if (m.amount !== null && ((m.amount.min !== null && amount < m.amount.min) || (m.amount.max !== null && amount > m.amount.max))) continue;
    return r;
  }
  return null;
}

/**
 * The one place acts are made: a real transaction paying `amount` of `asset` to `destination` (a
 * label, paid at its address on the key's network, or an address): a Taproot PSBT of key k1 for
 * BTC, a Solana transfer of key ks for SOL, raw bytes of key k1 for RAW.
 */
function actFor(s: ScriptedCluster, a: Partial<SimpleAct> = {}): Act {
  const asset = a.asset ?? 'BTC';
  return s.act(asset === 'SOL' ? 'ks' : 'k1', { ...(asset === 'RAW' ? { kind: 'raw' as const } : {}), destination: a.destination ?? 'bc1-a', amount: a.amount ?? 1_000n });
}

function submitSimple(s: ScriptedCluster, opId: string, a: SimpleAct, approval: GovernanceDecision | null = null): ApplyResult {
  return s.submit(opId, actFor(s, a), approval);
}

/** Checks one admission against the model's rule; returns whether the act was admitted. */
function checkVerdict(r: ApplyResult, expected: Rule | null): boolean {
  if (expected === null) {
    refusalNamesRule(r, null, 'POLICY_NO_RULE');
    return false;
  }
  if (expected.action.kind === 'BLOCK') {
    refusalNamesRule(r, expected.id, 'POLICY_BLOCKED');
    return false;
  }
  expect(r.ok && r.opState === 'Admitted', `expected admission by ${expected.id}, got ${r.ok ? r.opState : `${r.reason}: ${r.detail}`}`);
  expect(r.admission?.ruleId === expected.id, `admitted by ${String(r.admission?.ruleId)}, expected ${expected.id}`);
  return true;
}

prop('first match, default deny: the first rule whose matchers hold decides; no rule, POLICY_NO_RULE; raw is never allowed', fc.tuple(staticPolicyArb, fc.array(actArb, { minLength: 1, maxLength: 6 })), ([policy, acts]) => {
  const s = cluster(policy);
  acts.forEach((a, i) => {
    s.nowMs += 1_000;
    const r = submitSimple(s, `op-${i}`, a);
    const admitted = checkVerdict(r, firstMatch(policy, a));
    expect(!(admitted && a.asset === 'RAW'), 'a raw act was admitted without approvals');
    const op = s.state.cluster!.ops[rid(`op-${i}`)]!;
    expect(op.state === (admitted ? 'Admitted' : 'Denied') && op.reason === (admitted ? null : (r as { reason: string }).reason), 'the journal records the verdict');
  });
});

// ------------------------------------------------------------------------------------------------
// Rolling windows: boundaries, amounts and counts
// ------------------------------------------------------------------------------------------------

const WINDOW_MS = 60_000;

prop('a rolling window counts the admissions in (now - length, now]: exactly one length later an admission has left it', fc.record({
  maxAmount: fc.option(fc.constantFrom(1_000n, 2_500n, 10_000n)),
  maxCount: fc.option(fc.integer({ min: 1, max: 4 })),
  per: fc.constantFrom<'key' | 'asset' | 'initiator'>('key', 'asset', 'initiator'),
  steps: fc.array(fc.record({
    gap: fc.oneof(fc.constantFrom(0, 1, WINDOW_MS - 1, WINDOW_MS, WINDOW_MS + 1), fc.integer({ min: 0, max: 2 * WINDOW_MS })),
    amount: fc.constantFrom(1n, 400n, 999n, 1_000n, 2_000n),
  }), { minLength: 1, maxLength: 12 }),
}).filter((x) => x.maxAmount !== null || x.maxCount !== null), ({ maxAmount, maxCount, per, steps }) => {
  const budget = rule('budget', { assets: ['BTC'], windows: [{ per, lengthMs: WINDOW_MS, maxAmount, maxCount }] }, { kind: 'ALLOW' });
  const s = cluster(doc([budget]));
  const admitted: { stampMs: number; amount: bigint }[] = [];
  let now = s.nowMs;
  steps.forEach(({ gap, amount }, i) => {
    now += gap;
    s.nowMs = now;
    const inside = admitted.filter((x) => x.stampMs > now - WINDOW_MS);
    const sum = inside.reduce((acc, x) => acc + x.amount, 0n);
    const fits = (maxCount === null || inside.length + 1 <= maxCount) && (maxAmount === null || sum + amount <= maxAmount);
    const r = submitSimple(s, `w-${i}`, { asset: 'BTC', destination: 'bc1-a', amount });
    if (fits) {
      expect(r.ok && r.admission?.ruleId === 'budget', `step ${i} at +${now - START} ms: ${inside.length} inside, sum ${sum} + ${amount} fits, got ${r.ok ? 'ok' : `${r.reason}: ${r.detail}`}`);
      admitted.push({ stampMs: now, amount });
    } else {
      refusalNamesRule(r, 'budget', 'POLICY_WINDOW_EXCEEDED');
    }
  });
  // The history holds no admission older than the longest window at its latest stamp (bounded memory).
  const h = s.state.cluster!.policyHistory;
  for (const entries of h.windows.values()) for (const e of entries) expect(e.stampMs > h.latestMs - WINDOW_MS, `entry at ${e.stampMs} kept past the window (latest ${h.latestMs})`);
});

t.test('an act past a window escalates to the next rule: ALLOW within the budget, approvals beyond', async (t) => {
  const governors = [{ name: 'governors', members: ['approver-0', 'approver-1', 'approver-2'] }];
  const s = cluster(doc([
    rule('daily', { assets: ['BTC'], windows: [{ per: 'key', lengthMs: WINDOW_MS, maxAmount: 1_000n, maxCount: null }] }, { kind: 'ALLOW' }),
    rule('beyond', { assets: ['BTC'] }, { kind: 'REQUIRE_APPROVAL', k: 2, group: 'governors', ttlMs: 600_000 }),
  ], governors));
  t.match(submitSimple(s, 'a', { asset: 'BTC', destination: 'bc1-a', amount: 1_000n }), { ok: true, admission: { ruleId: 'daily' } });
  const r = submitSimple(s, 'b', { asset: 'BTC', destination: 'bc1-a', amount: 1n });
  t.match(r, { ok: false, reason: 'QUORUM_NOT_MET', admission: { ruleId: 'beyond', approvals: { k: 2, group: 'governors' } } }, 'past the budget the act needs approvals');
  const act = actFor(s, { amount: 1n });
  t.match(s.submit('c', act, s.approveAct('c', act)), { ok: true, admission: { ruleId: 'beyond' } }, 'and is admitted with them');
});

// ------------------------------------------------------------------------------------------------
// Hours and weekdays on the ledger clock
// ------------------------------------------------------------------------------------------------

prop('hours and weekdays read the UTC clock of the clamped entry stamp, never a stamp that runs backwards', fc.record({
  from: fc.integer({ min: 0, max: 1439 }),
  to: fc.integer({ min: 1, max: 1440 }),
  weekdays: fc.option(fc.subarray([...WEEKDAYS], { minLength: 1 })),
  stamps: fc.array(fc.integer({ min: -2 * 86_400_000, max: 14 * 86_400_000 }), { minLength: 1, maxLength: 8 }),
}).filter((x) => x.from !== x.to), ({ from, to, weekdays, stamps }) => {
  const days = weekdays === null ? null : WEEKDAYS.filter((d) => weekdays.includes(d));
  const s = cluster(doc([rule('office', { hours: { fromMinute: from, toMinute: to }, weekdays: days as Weekday[] | null }, { kind: 'ALLOW' })]));
  let clock = s.state.clockMs;
  stamps.forEach((offset, i) => {
    const stamp = START + offset;
    clock = Math.max(clock, stamp);
    const { minute, weekday } = utcClock(clock);
    const open = inHours(minute, from, to) && (days === null || days.includes(WEEKDAYS[weekday] as Weekday));
    const act = actFor(s);
    const r = s.entry({ type: 'ActSubmitted', opId: rid(`h-${i}`), act, approval: null, request: s.request(`h-${i}`, act, { issuedMs: clock }), ...s.proposer() }, stamp).result;
    if (open) expect(r.ok && r.admission?.ruleId === 'office', `stamp ${stamp} (clock ${clock}, minute ${minute}, day ${weekday}) is inside, got ${r.ok ? 'ok' : `${r.reason}: ${r.detail}`}`);
    else refusalNamesRule(r, null, 'POLICY_NO_RULE');
  });
});

// ------------------------------------------------------------------------------------------------
// Approvals: k distinct members of the group, within the time to live
// ------------------------------------------------------------------------------------------------

const APPROVERS = ['approver-0', 'approver-1', 'approver-2', 'approver-3', 'approver-4'];
const TTL = 600_000;

prop('an approval counts only its signers that are members of the rule\'s group, and only while it is fresh on the ledger clock', fc.record({
  group: fc.subarray(APPROVERS, { minLength: 1 }),
  k: fc.integer({ min: 1, max: 5 }),
  signers: fc.subarray(APPROVERS, { minLength: 2 }),
  age: fc.oneof(
    fc.constantFrom(0, TTL - 1, TTL, TTL + 1, -limits.approvalIssueSkewMsMax, -limits.approvalIssueSkewMsMax - 1),
    fc.integer({ min: -3 * limits.approvalIssueSkewMsMax, max: 2 * TTL }),
  ),
}), ({ group, k: k0, signers, age }) => {
  const k = Math.min(k0, group.length);
  const s = cluster(doc(
    [rule('held', { assets: ['BTC'] }, { kind: 'REQUIRE_APPROVAL', k, group: 'treasury', ttlMs: TTL })],
    [{ name: 'treasury', members: sorted(group) }],
  ), { approvers: 5 });
  s.nowMs += 3 * TTL; // room for approvals issued before now
  const now = s.nowMs;
  const act = actFor(s);
  const issuedMs = now - age;
  const approval = s.decision({ kind: 'ActApproved', opId: rid('x'), actCid: actCidOf(s, act), displayHash: act.displayHash }, s.keyring.filter((key) => signers.includes(key.id)),
    { parentCid: actCidOf(s, act), issuedMs, expiresMs: Math.max(issuedMs, now) + 3_600_000 });
  const members = signers.filter((a) => group.includes(a)).length;
  const fresh = issuedMs <= now + limits.approvalIssueSkewMsMax && now - issuedMs < TTL;
  const r = s.submit('x', act, approval);
  if (fresh && members >= k) expect(r.ok && r.admission?.ruleId === 'held', `${members} members of ${k}, age ${age}: expected admission, got ${r.ok ? 'ok' : `${r.reason}: ${r.detail}`}`);
  else refusalNamesRule(r, 'held', 'QUORUM_NOT_MET');
});

function actCidOf(_s: ScriptedCluster, act: Act): Uint8Array {
  return actCid(act);
}

t.test('attacker\'s view of approvals: non-members, post-dated and stale approvals never release a held act', async (t) => {
  const s = cluster(doc(
    [rule('held', { assets: ['BTC'] }, { kind: 'REQUIRE_APPROVAL', k: 2, group: 'treasury', ttlMs: TTL })],
    [{ name: 'treasury', members: ['approver-0', 'approver-1'] }],
  ), { approvers: 5 });
  s.nowMs += 2 * TTL;
  const act = actFor(s);
  const cid = actCidOf(s, act);
  const keys = (ids: string[]) => s.keyring.filter((k) => ids.includes(k.id));
  const outsiders = s.decision({ kind: 'ActApproved', opId: rid('a'), actCid: cid, displayHash: act.displayHash }, keys(['approver-2', 'approver-3', 'approver-4']), { parentCid: cid });
  const r1 = s.submit('a', act, outsiders);
  t.match(r1, { ok: false, reason: 'QUORUM_NOT_MET', admission: { ruleId: 'held' } }, 'three roster governors outside the group count for nothing');
  t.match(r1.ok ? '' : r1.detail, /not members, not counted: approver-2, approver-3, approver-4/);
  const postDated = s.decision({ kind: 'ActApproved', opId: rid('b'), actCid: cid, displayHash: act.displayHash }, keys(['approver-0', 'approver-1']), { parentCid: cid, issuedMs: s.nowMs + limits.approvalIssueSkewMsMax + 1, expiresMs: s.nowMs + 3_600_000 });
  t.match(s.submit('b', act, postDated), { ok: false, reason: 'QUORUM_NOT_MET' }, 'an approval post-dated beyond the clock skew allowance does not count');
  const stale = s.decision({ kind: 'ActApproved', opId: rid('c'), actCid: cid, displayHash: act.displayHash }, keys(['approver-0', 'approver-1']), { parentCid: cid, issuedMs: s.nowMs - TTL, expiresMs: s.nowMs + 3_600_000 });
  t.match(s.submit('c', act, stale), { ok: false, reason: 'QUORUM_NOT_MET' }, 'an approval exactly one time to live old is expired, though the decision itself has not');
  t.match(s.submit('d', act, s.decision({ kind: 'ActApproved', opId: rid('d'), actCid: cid, displayHash: act.displayHash }, keys(['approver-0', 'approver-1']), { parentCid: cid })), { ok: true, admission: { ruleId: 'held' } }, 'two members, fresh: admitted');
  const c = s.state.cluster!;
  const direct = judgeAdmission(c, { opId: 'e', initiator: 'node-0', keyId: 'k1', facts: { kind: 'btc-psbt', network: 'bitcoin-regtest', asset: 'BTC', amount: 1n, fee: 0n, feeAsset: 'BTC', outputs: [{ address: 'bc1-a', asset: 'BTC', amount: 1n, change: false }], messages: [], display: '', displayHash: new Uint8Array(32) }, approvers: ['approver-0', 'approver-0', 'approver-0'], approvedAtMs: s.nowMs, nowMs: s.nowMs });
  t.match(direct.verdict, { allowed: false, reason: 'QUORUM_NOT_MET' }, 'one approver listed three times is one approver');
  t.equal(judgeAdmission(c, { opId: 'f', initiator: 'node-0', keyId: 'k1', facts: { kind: 'btc-psbt', network: 'bitcoin-regtest', asset: 'BTC', amount: 1n, fee: 0n, feeAsset: 'BTC', outputs: [{ address: 'bc1-a', asset: 'BTC', amount: 1n, change: false }], messages: [], display: '', displayHash: new Uint8Array(32) }, approvers: ['approver-0', 'approver-1'], nowMs: s.nowMs }).verdict.allowed, false, 'approvers without an issue time do not count');
});

// ------------------------------------------------------------------------------------------------
// PolicyChanged: the next act, not the admitted ones (except at the publication gate)
// ------------------------------------------------------------------------------------------------

prop('PolicyChanged decides the next act and the publication gate, never an admission already made', fc.record({
  before: staticPolicyArb,
  after: staticPolicyArb,
  early: fc.array(actArb.filter((a) => a.asset !== 'RAW'), { minLength: 1, maxLength: 4 }),
  late: fc.array(actArb, { minLength: 1, maxLength: 3 }),
}), ({ before, after, early, late }) => {
  const s = cluster(before);
  const admitted = early.map((a, i) => checkVerdict(submitSimple(s, `e-${i}`, a), firstMatch(before, a)));
  const states = early.map((_, i) => s.state.cluster!.ops[rid(`e-${i}`)]!.state);
  const r = s.decide({ kind: 'PolicyChanged', policy: after });
  expect(r.ok, `PolicyChanged: ${r.ok ? '' : `${r.reason} ${r.detail}`}`);
  early.forEach((_, i) => expect(s.state.cluster!.ops[rid(`e-${i}`)]!.state === states[i], `e-${i} changed state on PolicyChanged`));
  late.forEach((a, i) => checkVerdict(submitSimple(s, `l-${i}`, a), firstMatch(after, a)));
  early.forEach((a, i) => {
    if (!admitted[i]) return;
    for (const step of [() => s.issuePermit(`e-${i}`), () => s.execute(`e-${i}`)]) {
      const x = step();
      expect(x.ok, `e-${i}: ${x.ok ? '' : `${x.reason} ${x.detail}`}`);
    }
    const gate = firstMatch(gatePolicy(after, true), a);
    const p = s.publish(`e-${i}`);
    if (gate !== null && gate.action.kind === 'ALLOW') expect(p.ok, `e-${i} should publish under ${gate.id}: ${p.ok ? '' : p.detail}`);
    else {
      expect(!p.ok && p.reason === 'PUBLICATION_DENIED', `e-${i} should be held at the gate`);
      if (gate !== null) expect(!p.ok && p.detail.includes(`rule ${gate.id}`), `the gate's refusal names rule ${gate.id}: ${p.ok ? '' : p.detail}`);
    }
  });
}, Math.max(10, Math.floor(RUNS / 2)));

t.test('the gate does not charge windows twice nor apply a BLOCK by rate, reads hours at its own clock, and keeps a static block', async (t) => {
  const allowAll = rule('all', { assets: ['BTC'] }, { kind: 'ALLOW' });
  const s = cluster(doc([allowAll]));
  for (const id of ['a', 'b', 'c', 'd']) {
    t.ok(submitSimple(s, id, { asset: 'BTC', destination: 'bc1-a', amount: 10n }).ok);
    t.ok(s.issuePermit(id).ok && s.execute(id).ok);
  }
  const oneAnHour = { per: 'key' as const, lengthMs: 3_600_000, maxAmount: null, maxCount: 1 };
  const rated = rule('rated', { assets: ['BTC'], windows: [oneAnHour] }, { kind: 'BLOCK' });
  const budget = rule('budget', { assets: ['BTC'], windows: [oneAnHour] }, { kind: 'ALLOW' });
  t.ok(s.decide({ kind: 'PolicyChanged', policy: doc([rated, budget]) }).ok);
  t.ok(s.publish('a').ok, 'an admitted act is not blocked at the gate by a rule about the rate of admission, nor counted twice by a window');
  const { minute } = utcClock(s.nowMs);
  const thisHour = rule('this-hour', { assets: ['BTC'], hours: { fromMinute: minute - (minute % 60), toMinute: minute - (minute % 60) + 60 } }, { kind: 'BLOCK' });
  t.ok(s.decide({ kind: 'PolicyChanged', policy: doc([thisHour, allowAll]) }).ok);
  t.match(submitSimple(s, 'e', { asset: 'BTC', destination: 'bc1-a', amount: 10n }), { ok: false, reason: 'POLICY_BLOCKED', admission: { ruleId: 'this-hour' } }, 'the new act meets the block');
  t.match(s.publish('b'), { ok: false, reason: 'PUBLICATION_DENIED', detail: /rule this-hour/ }, 'the gate reads hours at its own ledger clock');
  s.nowMs += 3_600_000;
  t.ok(s.publish('b').ok, 'and an hour later the same act passes');
  const denyA = rule('deny-a', { destination: { allow: [], ownKeys: false, deny: addressesOf(['bc1-a']) } }, { kind: 'BLOCK' });
  t.ok(s.decide({ kind: 'PolicyChanged', policy: doc([denyA, allowAll]) }).ok);
  t.match(s.publish('c'), { ok: false, reason: 'PUBLICATION_DENIED', detail: /rule deny-a \(POLICY_BLOCKED\)/ }, 'a destination deny-listed since admission is held at the gate');
});

// ------------------------------------------------------------------------------------------------
// The policy and its history in the state; what the ledger refuses
// ------------------------------------------------------------------------------------------------

t.test('the state with a policy and its history round-trips through its canonical encoding', async (t) => {
  const budget = rule('budget', { assets: ['BTC'], windows: [{ per: 'key', lengthMs: WINDOW_MS, maxAmount: null, maxCount: 3 }], lifetime: [{ per: 'key', maxAmount: 1_000_000n }] }, { kind: 'ALLOW' });
  const s = cluster(doc([budget]));
  for (let i = 0; i < 3; i++) {
    s.nowMs += 10_000;
    t.ok(submitSimple(s, `a-${i}`, { asset: 'BTC', destination: 'bc1-a', amount: 7n }).ok);
  }
  t.ok(s.decide({ kind: 'PolicyChanged', policy: doc([{ ...budget, match: { ...budget.match, windows: [{ per: 'initiator', lengthMs: 2 * WINDOW_MS, maxAmount: null, maxCount: 10 }] } }]) }).ok);
  const back = restore(snapshot(s.state));
  t.ok(bytesEqual(stateRoot(back), stateRoot(s.state)), 'same state root after snapshot and restore');
  t.same(historyToCbor(back.cluster!.policyHistory), historyToCbor(s.state.cluster!.policyHistory), 'same history');
  t.same(back.cluster!.policyHistory.horizons, { key: 0, asset: 0, initiator: 2 * WINDOW_MS }, 'the history keeps what the policy in force reads');
  t.equal(back.cluster!.policyHistory.windows.size, 0, 'the key windows the new policy no longer reads are dropped');
  t.equal([...back.cluster!.policyHistory.lifetime.values()][0], 21n, 'lifetime sums carry over a policy change');

  // A snapshot whose history keeps windows the policy in force does not read is refused.
  const v = decode(snapshot(s.state)) as { [k: string]: CborValue };
  const c = v.cluster as { [k: string]: CborValue };
  const h = c.policyHistory as { [k: string]: CborValue };
  const tampered = encode({ ...v, cluster: { ...c, policyHistory: { ...h, horizons: { ...(h.horizons as object), key: WINDOW_MS } } } } as CborValue);
  t.throws(() => restore(tampered), /horizons differ/, 'a history that does not fit the policy in force is refused');
});

t.test('the history forgets a scope once no window can read it, and a shorter window prunes at once', async (t) => {
  const perInitiator = rule('per-initiator', { assets: ['BTC'], windows: [{ per: 'initiator', lengthMs: WINDOW_MS, maxAmount: null, maxCount: 5 }] }, { kind: 'ALLOW' });
  const s = cluster(doc([perInitiator]));
  const by = (initiator: string): Act => ({ ...actFor(s), initiator });
  t.ok(s.submit('from-dana', by('dana')).ok);
  t.ok(s.submit('from-cara', by('cara')).ok);
  t.same([...s.state.cluster!.policyHistory.windows.keys()].sort(), [JSON.stringify(['initiator', 'cara']), JSON.stringify(['initiator', 'dana'])], 'one scope per initiator');
  s.nowMs += WINDOW_MS;
  t.ok(s.submit('later', by('cara')).ok);
  t.same([...s.state.cluster!.policyHistory.windows.keys()], [JSON.stringify(['initiator', 'cara'])], 'dana\'s admissions left with her window, though she submitted nothing since');
  t.equal(s.state.cluster!.policyHistory.windows.get(JSON.stringify(['initiator', 'cara']))!.length, 1, 'and cara keeps only the admission her window still spans');
  s.nowMs += 1_000;
  const shorter = { ...perInitiator, match: { ...perInitiator.match, windows: [{ per: 'initiator' as const, lengthMs: 1_000, maxAmount: null, maxCount: 5 }] } };
  t.ok(s.decide({ kind: 'PolicyChanged', policy: doc([shorter]) }).ok);
  t.equal(s.state.cluster!.policyHistory.windows.size, 0, 'a policy with a shorter window keeps nothing older than it');
  t.ok(bytesEqual(stateRoot(restore(snapshot(s.state))), stateRoot(s.state)), 'and the pruned state round-trips');
});

t.test('a PolicyChanged whose document is not canonical, or would allow raw bytes, is refused before it takes effect', async (t) => {
  const s = cluster(doc([rule('all', {}, { kind: 'ALLOW' })]));
  const before = s.state.cluster!.governance.policy;
  const rawAllowed = doc([rule('raw', { kinds: ['raw'] }, { kind: 'ALLOW' })]);
  const r1 = s.decide({ kind: 'PolicyChanged', policy: rawAllowed });
  t.match(r1, { ok: false, reason: 'PAYLOAD_REJECTED' }, 'an ALLOW rule for raw acts does not decode');
  const unsorted = doc([rule('two', { assets: ['SOL', 'BTC'] }, { kind: 'ALLOW' })]);
  t.match(s.decide({ kind: 'PolicyChanged', policy: unsorted }), { ok: false, reason: 'PAYLOAD_REJECTED' }, 'a set out of canonical order does not decode');
  const stranger = doc([rule('held', {}, { kind: 'REQUIRE_APPROVAL', k: 1, group: 'g', ttlMs: TTL })], [{ name: 'g', members: ['approver-0', 'mallory'] }]);
  const r3 = s.decide({ kind: 'PolicyChanged', policy: stranger });
  t.match(r3, { ok: false, reason: 'POLICY_DOCUMENT_INVALID', detail: /not on the roster in force: mallory \(group g\)/ }, 'an approver group naming someone off the roster is refused');
  t.equal(s.state.cluster!.governance.policy, before, 'the policy in force is unchanged');
  t.match(s.submit('raw-1', actFor(s, { asset: 'RAW' })), { ok: false, reason: 'POLICY_NO_RULE', admission: { ruleId: null } },
    'a raw act under a rule without a kinds matcher is refused: rules match every kind but raw unless they name it');
  t.ok(s.decide({ kind: 'PolicyChanged', policy: doc([]) }).ok, 'a document without rules is a policy (every act refused)');
  t.same(encodeDocument(s.state.cluster!.governance.policy), encodeDocument(doc([])), 'and it is the policy in force');
});

// ------------------------------------------------------------------------------------------------
// The shipped policies
// ------------------------------------------------------------------------------------------------

t.test('the genesis template (and the demo, which uses it): a small payment to a listed destination is allowed, a larger one held for approvals, raw bytes never signed automatically', async (t) => {
  const template = parsePolicyYaml(readFileSync(fileURLToPath(new URL('../../../cluster-configs/policy.genesis.yaml', import.meta.url)), 'utf8'), LEDGER_ASSETS);
  t.same(toHex(encodeDocument(DEMO_POLICY)), toHex(encodeDocument(template)), 'the demo runs the genesis template');
  const s = cluster(template, { approvers: 4 });
  t.match(s.submit('small', actFor(s, { asset: 'SOL', amount: 1_000n, destination: DEMO_SOL_DESTINATION })), { ok: true, admission: { ruleId: 'sol-small' } });
  t.match(s.submit('small-btc', actFor(s, { asset: 'BTC', amount: 5_000n, destination: DEMO_BTC_DESTINATION })), { ok: true, admission: { ruleId: 'btc-small' } });
  const large = actFor(s, { asset: 'BTC', amount: 8_000n, destination: DEMO_BTC_DESTINATION });
  t.match(s.submit('large', large), { ok: false, reason: 'QUORUM_NOT_MET', admission: { ruleId: 'btc-approved' } }, 'a larger payment is held for approvals');
  const signers = s.keyring.filter((k) => ['approver-1', 'approver-3'].includes(k.id));
  t.match(s.submit('large-2', large, s.decision({ kind: 'ActApproved', opId: rid('large-2'), actCid: actCid(large), displayHash: large.displayHash }, signers, { parentCid: actCid(large) })), { ok: true, admission: { ruleId: 'btc-approved' } }, 'and admitted with two of the treasury group');
  t.match(s.submit('elsewhere', actFor(s, { asset: 'SOL', amount: 1_000n, destination: 'sol-stranger' })), { ok: false, reason: 'POLICY_NO_RULE' }, 'a destination not listed is refused');
  t.match(s.submit('raw', actFor(s, { asset: 'RAW', amount: 0n, destination: 'attestation' })), { ok: false, reason: 'QUORUM_NOT_MET', admission: { ruleId: 'raw-with-approvals' } }, 'raw bytes wait for approvals');
  t.ok(template.rules.every((r) => !(r.action.kind === 'ALLOW' && (r.match.kinds ?? []).includes('raw'))), 'no ALLOW rule names the raw kind');
});
