/**
 * fast-check generators of policy documents, transaction facts and admission histories over small
 * universes (three keys, three initiators, two assets, a handful of addresses), so that random
 * rules and random acts meet often enough for first-match and window properties to bite.
 */
import fc from 'fast-check';
import t from 'tap';
import { policyEngine as limits } from '../../proto/limits.js';
import {
  WEEKDAYS, type Action, type Admission, type DestinationMatcher, type Matchers, type PolicyDocument, type Rule, type WindowLimit,
  type Weekday, type LifetimeCap,
} from '../../ledger/policy-engine/index.js';
import { TX_KINDS, type AssetTable, type TxFacts, type TxKind } from '../../ledger/tx/types.js';

export const RUNS = Number(process.env.FC_RUNS ?? 200);
export const replay = {
  ...(process.env.FC_SEED !== undefined ? { seed: Number(process.env.FC_SEED) } : {}),
  ...(process.env.FC_PATH !== undefined ? { path: process.env.FC_PATH } : {}),
};

/** A fast-check property as a tap subtest: it fails with fast-check's report (seed and path to replay). */
export function prop<T>(name: string, arb: fc.Arbitrary<T>, check: (x: T) => boolean, runs = RUNS): void {
  t.test(name, async (tt) => {
    const r = fc.check(fc.property(arb, check), { numRuns: runs, ...replay });
    tt.equal(r.failed, false, fc.defaultReportMessage(r) ?? name);
    if (replay.path === undefined) tt.equal(r.numRuns, runs, `${r.numRuns} runs`);
  });
}

export const ASSETS: AssetTable = {
  BTC: { symbol: 'BTC', network: 'bitcoin-regtest', onChain: 'native', decimals: 8 },
  SOL: { symbol: 'SOL', network: 'solana-devnet', onChain: 'native', decimals: 9 },
  USDC: { symbol: 'USDC', network: 'solana-devnet', onChain: { mint: 'EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v' }, decimals: 6 },
};

// Sorted universes: fc.subarray keeps order, so a subset of a sorted list is a canonical set.
export const KEYS = ['k1', 'k2', 'k3'];
export const INITIATORS = ['i1', 'i2', 'i3'];
export const ADDRS = ['a1', 'a2', 'a3', 'bad1', 'own1', 'own2'];
export const OWN = new Set(['own1', 'own2']);
const NON_RAW = TX_KINDS.filter((k) => k !== 'raw');
const LENGTHS = [1_000, 60_000, 3_600_000];

export const BASE_MS = Date.UTC(2026, 0, 5, 12, 0, 0); // a Monday, noon UTC

const subset = <T>(xs: readonly T[]): fc.Arbitrary<T[]> => fc.subarray([...xs], { minLength: 1 });
/** Absent `nil` times out of nil + 1: most matchers absent, so random rules and acts still meet. */
const maybe = <T>(a: fc.Arbitrary<T>, nil = 2): fc.Arbitrary<T | null> => fc.oneof({ arbitrary: fc.constant(null), weight: nil }, { arbitrary: a, weight: 1 });
const small = fc.bigInt({ min: 0n, max: 1000n });

function windowsArb(withAmount: boolean): fc.Arbitrary<WindowLimit[]> {
  const one = fc.record({
    per: fc.constantFrom('key' as const, 'asset' as const, 'initiator' as const),
    lengthMs: fc.constantFrom(...LENGTHS),
    maxAmount: withAmount ? maybe(small) : fc.constant(null),
    maxCount: maybe(fc.integer({ min: 1, max: 4 })),
  }).filter((w) => w.maxAmount !== null || w.maxCount !== null);
  return fc.uniqueArray(one, { maxLength: 2, selector: (w) => `${w.per}/${w.lengthMs}` });
}

function matchersArb(action: Action['kind'], big: boolean): fc.Arbitrary<Matchers> {
  const amountArb = big ? fc.bigInt({ min: 0n, max: limits.amountMax }) : small;
  return fc.constantFrom<string[] | null>(null, null, ['BTC'], ['BTC'], ['SOL'], ['BTC', 'SOL'], ['RAW']).chain((assets) => {
    const single = assets !== null && assets.length === 1;
    const kindPool: readonly TxKind[] = action === 'ALLOW' ? NON_RAW : TX_KINDS;
    const dest: fc.Arbitrary<DestinationMatcher | null> = fc.record({
      allow: fc.oneof(fc.constant([] as string[]), subset(ADDRS)),
      ownKeys: fc.boolean(),
      deny: action === 'ALLOW' ? fc.constant([] as string[]) : fc.oneof(fc.constant([] as string[]), subset(ADDRS)),
    }).map((d) => (d.allow.length === 0 && !d.ownKeys && d.deny.length === 0 ? null : d)).chain((d) => maybe(fc.constant(d), 1));
    const amount = fc.tuple(maybe(amountArb), maybe(amountArb)).map(([a, b]) => {
      if (a === null && b === null) return null;
      if (a !== null && b !== null && a > b) return { min: b, max: a };
      return { min: a, max: b };
    });
    const lifetime: fc.Arbitrary<LifetimeCap[]> = single
      ? fc.uniqueArray(fc.record({ per: fc.constantFrom('key' as const, 'asset' as const), maxAmount: small }), { maxLength: 2, selector: (c) => c.per })
      : fc.constant([]);
    const hours = fc.tuple(fc.integer({ min: 0, max: 1439 }), fc.integer({ min: 1, max: 1440 }))
      .filter(([f, t]) => f !== t).map(([fromMinute, toMinute]) => ({ fromMinute, toMinute }));
    return fc.record({
      initiators: maybe(fc.record({ ids: fc.oneof(fc.constant([] as string[]), subset(INITIATORS)), groups: fc.oneof(fc.constant([] as string[]), fc.constant(['ig1'])) })
        .filter((i) => i.ids.length + i.groups.length > 0)),
      keys: maybe(subset(KEYS)),
      assets: fc.constant(assets),
      kinds: maybe(subset(kindPool)),
      destination: dest,
      amount: single ? maybe(amount) : fc.constant(null),
      windows: windowsArb(single),
      lifetime,
      hours: maybe(hours, 4),
      weekdays: maybe(subset<Weekday>(WEEKDAYS), 4),
    });
  });
}

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  fc.constant({ kind: 'ALLOW' } as const),
  fc.constant({ kind: 'BLOCK' } as const),
  fc.record({ kind: fc.constant('REQUIRE_APPROVAL' as const), k: fc.integer({ min: 1, max: 3 }), group: fc.constant('g1'), ttlMs: fc.constantFrom(60_000, 3_600_000, 86_400_000) }),
);

/** A canonical, valid policy document; `big` draws amounts over the whole integer range (round trips). */
export function policyArb(opts: { big?: boolean; maxRules?: number } = {}): fc.Arbitrary<PolicyDocument> {
  const rule = actionArb.chain((action) => matchersArb(action.kind, opts.big === true).map((match) => ({ match, action })));
  return fc.array(rule, { maxLength: opts.maxRules ?? 6 }).map((rs) => ({
    version: 1 as const,
    approverGroups: [{ name: 'g1', members: ['ap1', 'ap2', 'ap3'] }],
    initiatorGroups: [{ name: 'ig1', members: ['i1', 'i2'] }],
    rules: rs.map((r, i): Rule => ({ id: `r${i}`, ...r })),
  }));
}

export function factsOf(kind: TxKind, asset: string, outputs: TxFacts['outputs']): TxFacts {
  return {
    kind, network: kind === 'raw' ? 'none' : kind === 'btc-psbt' ? 'bitcoin-regtest' : 'solana-devnet', asset, outputs,
    amount: outputs.filter((o) => !o.change).reduce((s, o) => s + o.amount, 0n),
    fee: 0n, feeAsset: asset, messages: [], display: '', displayHash: new Uint8Array(32),
  };
}

export const factsArb: fc.Arbitrary<TxFacts> = fc.constantFrom<TxKind>(...TX_KINDS).chain((kind) => {
  const asset = kind === 'raw' ? fc.constant('RAW') : kind === 'btc-psbt' ? fc.constant('BTC') : fc.constantFrom('SOL', 'USDC');
  return asset.chain((a) => fc.array(fc.record({ address: fc.constantFrom(...ADDRS), asset: fc.constant(a), amount: fc.bigInt({ min: 0n, max: 600n }), change: fc.boolean() }), { minLength: 1, maxLength: 3 })
    .map((outs) => factsOf(kind, a, outs)));
});

/** Earlier admissions, in stamp order, all at or before `BASE_MS + span`. */
export const admissionsArb: fc.Arbitrary<Admission[]> = fc.array(fc.record({
  keyId: fc.constantFrom(...KEYS),
  initiator: fc.constantFrom(...INITIATORS),
  asset: fc.constantFrom('BTC', 'SOL', 'USDC', 'RAW'),
  amount: fc.bigInt({ min: 0n, max: 400n }),
  dt: fc.constantFrom(0, 1, 500, 999, 1000, 30_000, 59_999, 60_000, 1_800_000, 3_599_999, 3_600_000),
}), { maxLength: 12 }).map((xs) => {
  let t = BASE_MS;
  return xs.map(({ dt, ...a }) => ({ ...a, stampMs: (t += dt) }));
});
