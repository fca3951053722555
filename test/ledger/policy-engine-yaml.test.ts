/**
 * Policy documents (ledger/policy-engine/yaml.ts): the round trips (YAML and canonical CBOR), the
 * strict reader refusing malformed and hostile documents with POLICY_DOCUMENT_INVALID and the
 * path of the offending value, the sample document, and the line diff.
 *
 * A failure prints fast-check's seed and path; replay it exactly with
 *   FC_SEED=<seed> FC_PATH=<path> npx tap dist/test/ledger/policy-engine-yaml.test.js
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import fc from 'fast-check';
import {
  PolicyDocumentError, decodeDocument, diffLines, diffPolicies, documentFromCbor, documentToCbor, encodeDocument, formatUnits, parsePolicyYaml,
  parseUnits, renderPolicyYaml, type PolicyDocument,
} from '../../ledger/policy-engine/index.js';
import { bytesEqual, decode, encode } from '../../ledger/encoding.js';
import { policyEngine as limits } from '../../proto/limits.js';
import { ASSETS, RUNS, policyArb, prop } from './policy-engine-arbitraries.js';


const same = (a: PolicyDocument, b: PolicyDocument): boolean => bytesEqual(encodeDocument(a), encodeDocument(b)) && JSON.stringify(a, big) === JSON.stringify(b, big);
const big = (_: string, v: unknown): unknown => (typeof v === 'bigint' ? `${v}n` : v);

prop('YAML round trip: parse(render(p)) == p', policyArb({ big: true, maxRules: 8 }), (p) => same(parsePolicyYaml(renderPolicyYaml(p, ASSETS), ASSETS), p));

const oddText = fc.string({ unit: fc.oneof(fc.constantFrom('-', ':', '#', '"', "'", ' ', '\n', '\t', '*', '&', '!', '|', '>', '%', '@', '`', '{', '[', ',', '?', '\\', '\u0000', '\u2028', '\ufeff'), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 })), minLength: 1, maxLength: 24 })
  .filter((s) => Buffer.byteLength(s, 'utf8') <= 128 && !(/^(bc|tb|bcrt)1/i.test(s) && s !== s.toLowerCase()));
prop('YAML round trip of hostile strings (members, initiator ids, key ids, addresses)', fc.tuple(fc.uniqueArray(oddText, { minLength: 1, maxLength: 4 }), fc.uniqueArray(oddText, { minLength: 1, maxLength: 4 })), ([members, addrs]) => {
  const sorted = (xs: string[]): string[] => [...xs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const p: PolicyDocument = {
    version: 1, approverGroups: [{ name: 'g', members: sorted(members) }], initiatorGroups: [],
    rules: [{
      id: 'r',
      match: {
        initiators: { ids: sorted(members), groups: [] }, keys: sorted(addrs), assets: null, kinds: null,
        destination: { allow: sorted(addrs), ownKeys: false, deny: sorted(members) }, amount: null, windows: [], lifetime: [], hours: null, weekdays: null,
      },
      action: { kind: 'BLOCK' },
    }],
  };
  return same(parsePolicyYaml(renderPolicyYaml(p, ASSETS), ASSETS), p);
});

prop('CBOR round trip through bytes: decode(encode(p)) == p, and the encoding is canonical', policyArb({ big: true, maxRules: 8 }), (p) => {
  const bytes = encodeDocument(p);
  return same(decodeDocument(bytes, ASSETS), p) && bytesEqual(encode(decode(bytes, { bytesMax: limits.documentBytesMax })), bytes);
});

prop('amounts: formatUnits and parseUnits are inverse for every decimals', fc.tuple(fc.bigInt({ min: 0n, max: limits.amountMax }), fc.integer({ min: 0, max: 18 })), ([v, d]) => parseUnits(formatUnits(v, d), d) === v);

prop('diffLines is a shortest edit script: it rebuilds both sides and keeps a longest common subsequence', fc.tuple(fc.array(fc.constantFrom('a', 'b', 'c', 'd'), { maxLength: 12 }), fc.array(fc.constantFrom('a', 'b', 'c', 'd'), { maxLength: 12 })), ([a, b]) => {
  const d = diffLines(a, b);
  const left = d.filter((l) => !l.startsWith('+ ')).map((l) => l.slice(2));
  const right = d.filter((l) => !l.startsWith('- ')).map((l) => l.slice(2));
  const lcs = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  return JSON.stringify(left) === JSON.stringify(a) && JSON.stringify(right) === JSON.stringify(b) && d.filter((l) => l.startsWith('  ')).length === lcs[0]![0];
}, RUNS * 5);

t.test('the sample document parses, round-trips and reads as written', async (tt) => {
  const text = readFileSync(new URL('../../../cluster-configs/policy.example.yaml', import.meta.url), 'utf8');
  const p = parsePolicyYaml(text, ASSETS);
  tt.same(p.rules.map((r) => `${r.id}:${r.action.kind}`), [
    'deny-listed:BLOCK', 'raw-attestations:REQUIRE_APPROVAL', 'btc-internal:ALLOW', 'btc-small:ALLOW', 'btc-large:REQUIRE_APPROVAL', 'sol-payouts:ALLOW',
  ]);
  const small = p.rules[3]?.match;
  tt.same([small?.amount?.max, small?.windows[0]?.lengthMs, small?.windows[0]?.maxAmount, small?.lifetime[0]?.maxAmount], [50_000_000n, 86_400_000, 200_000_000n, 50_000_000_000n], '"0.5" BTC, 24h, "2" BTC, "500" BTC in base units');
  tt.same(p.rules[2]?.match.hours, { fromMinute: 7 * 60, toMinute: 19 * 60 });
  const night = parsePolicyYaml(text.replace('hours: { from: "07:00", to: "19:00" }', 'hours: { from: "22:00", to: "00:00" }'), ASSETS);
  tt.same(night.rules[2]?.match.hours, { fromMinute: 22 * 60, toMinute: 1440 }, '"until 00:00" is the end of the day');
  tt.match(renderPolicyYaml(night, ASSETS), /from: 22:00\n\s+to: 24:00\n/, 'and renders as 24:00');
  tt.ok(same(parsePolicyYaml(renderPolicyYaml(p, ASSETS), ASSETS), p), 'canonical YAML reads back to the same document');
  tt.ok(same(decodeDocument(encodeDocument(p), ASSETS), p), 'canonical CBOR too');
  const edited = parsePolicyYaml(text.replace('maxAmount: "2", maxCount: 20', 'maxAmount: "2.5", maxCount: 20'), ASSETS);
  tt.same(diffPolicies(p, edited, ASSETS).filter((l) => !l.startsWith('  ')), ['-           maxAmount: "2"', '+           maxAmount: "2.5"'], 'diff shows the one changed line');
  tt.same(diffPolicies(p, p, ASSETS).filter((l) => !l.startsWith('  ')), [], 'no change, no diff');
});

// ------------------------------------------------------------------------------------------------
// Malformed and hostile documents: each refused POLICY_DOCUMENT_INVALID with its path
// ------------------------------------------------------------------------------------------------

const HEAD = 'version: 1\ngroups:\n  approvers:\n    g1: [ap1, ap2]\n  initiators:\n    desk: [i1]\nrules:\n';
const rule = (body: string): string => `${HEAD}  - id: r0\n${body.replace(/^/gm, '    ')}\n`;

const BAD: readonly (readonly [string, string, string, RegExp])[] = [
  ['an amount with more decimals than the asset', rule('match: { assets: [BTC], amount: { max: "0.123456789" } }\naction: ALLOW'), 'rules[0].match.amount.max', /9 decimals, the asset has 8/],
  ['a negative amount', rule('match: { assets: [BTC], amount: { min: "-1" } }\naction: ALLOW'), 'rules[0].match.amount.min', /not a non-negative decimal/],
  ['a negative window amount', rule('match:\n  assets: [SOL]\n  windows: [{ per: key, length: 1h, maxAmount: "-0.5" }]\naction: ALLOW'), 'rules[0].match.windows[0].maxAmount', /not a non-negative decimal/],
  ['an amount written as a YAML number', rule('match: { assets: [BTC], amount: { max: 1.5 } }\naction: ALLOW'), 'rules[0].match.amount.max', /quoted string/],
  ['an amount in exponent form', rule('match: { assets: [BTC], amount: { max: "1e3" } }\naction: ALLOW'), 'rules[0].match.amount.max', /not a non-negative decimal/],
  ['an amount above the integer range', rule('match: { assets: [USDC], amount: { max: "18446744073709.551616" } }\naction: ALLOW'), 'rules[0].match.amount.max', /above the largest amount/],
  ['an amount on a rule with two assets', rule('match: { assets: [BTC, SOL], amount: { max: "1" } }\naction: ALLOW'), 'rules[0].match.amount.max', /exactly one asset/],
  ['a duplicated rule id', `${HEAD}  - { id: same, action: BLOCK }\n  - { id: other, action: BLOCK }\n  - { id: same, action: BLOCK }\n`, 'rules[2].id', /already the id of rules\[0\]/],
  ['an ALLOW rule naming the raw kind', rule('match: { kinds: [btc-psbt, raw] }\naction: ALLOW'), 'rules[0].action', /may not match raw acts/],
  ['an uppercase bech32 address on a deny-list', rule('match: { destination: { deny: [BC1QAR0SRRR7XFKVY5L643LYDNW9RE59GTZZWF5MDQ] } }\naction: BLOCK'), 'rules[0].match.destination.deny[0]', /in lowercase/],
  ['an ALLOW rule carrying a deny-list', rule('match: { destination: { allow: [a1], deny: [bad1] } }\naction: ALLOW'), 'rules[0].match.destination.deny', /an ALLOW rule cannot carry one/],
  ['a window longer than the bound', rule('match: { windows: [{ per: key, length: 32d, maxCount: 1 }] }\naction: ALLOW'), 'rules[0].match.windows[0].length', /a window lasts from 1s to 31d/],
  ['a window of absurd length', rule('match: { windows: [{ per: key, length: 9999999999999999d, maxCount: 1 }] }\naction: ALLOW'), 'rules[0].match.windows[0].length', /too long|not a duration/],
  ['a window shorter than the bound', rule('match: { windows: [{ per: key, length: 10ms, maxCount: 1 }] }\naction: ALLOW'), 'rules[0].match.windows[0].length', /a window lasts/],
  ['a window without a limit', rule('match: { windows: [{ per: key, length: 1h }] }\naction: ALLOW'), 'rules[0].match.windows[0]', /maxAmount, maxCount or both/],
  ['a window over an unknown scope', rule('match: { windows: [{ per: planet, length: 1h, maxCount: 2 }] }\naction: ALLOW'), 'rules[0].match.windows[0].per', /expected one of key, asset, initiator/],
  ['two windows of one scope and length', rule('match: { windows: [{ per: key, length: 1h, maxCount: 2 }, { per: key, length: 60m, maxCount: 3 }] }\naction: ALLOW'), 'rules[0].match.windows[1]', /a second window per key over 1h/],
  ['an unknown top-level key', `${HEAD}  - { id: r0, action: BLOCK }\nextra: 1\n`, 'extra', /unknown key/],
  ['an unknown matcher', rule('match: { colour: red }\naction: ALLOW'), 'rules[0].match.colour', /unknown key/],
  ['a misspelt action', rule('action: ALLOWED'), 'rules[0].action', /expected one of ALLOW, BLOCK, REQUIRE_APPROVAL/],
  ['an empty list', rule('match: { keys: [] }\naction: ALLOW'), 'rules[0].match.keys', /empty list/],
  ['a duplicate in a set', rule('match: { keys: [k1, k2, k1] }\naction: ALLOW'), 'rules[0].match.keys[2]', /appears twice/],
  ['an unknown asset', rule('match: { assets: [DOGE] }\naction: ALLOW'), 'rules[0].match.assets[0]', /unknown asset DOGE/],
  ['an undefined initiator group', rule('match: { initiators: { groups: [ops] } }\naction: ALLOW'), 'rules[0].match.initiators.groups[0]', /no initiator group ops/],
  ['an undefined approver group', rule('action: REQUIRE_APPROVAL\napprovals: { k: 1, group: board, ttl: 1h }'), 'rules[0].approvals.group', /no approver group board/],
  ['k larger than its group', rule('action: REQUIRE_APPROVAL\napprovals: { k: 3, group: g1, ttl: 1h }'), 'rules[0].approvals.k', /from 1 to 2/],
  ['k of zero', rule('action: REQUIRE_APPROVAL\napprovals: { k: 0, group: g1, ttl: 1h }'), 'rules[0].approvals.k', /from 1 to 2/],
  ['a time to live past the decision bound', rule('action: REQUIRE_APPROVAL\napprovals: { k: 1, group: g1, ttl: 8d }'), 'rules[0].approvals.ttl', /approvals live from 1m to 7d/],
  ['approvals on an ALLOW rule', rule('action: ALLOW\napprovals: { k: 1, group: g1, ttl: 1h }'), 'rules[0].approvals', /only a REQUIRE_APPROVAL rule/],
  ['REQUIRE_APPROVAL without approvals', rule('action: REQUIRE_APPROVAL'), 'rules[0].approvals', /missing/],
  ['equal hours', rule('match: { hours: { from: "08:00", to: "08:00" } }\naction: ALLOW'), 'rules[0].match.hours', /from and to are equal/],
  ['midnight to midnight', rule('match: { hours: { from: "00:00", to: "00:00" } }\naction: ALLOW'), 'rules[0].match.hours', /from and to are equal/],
  ['a window starting at 24:00', rule('match: { hours: { from: "24:00", to: "06:00" } }\naction: ALLOW'), 'rules[0].match.hours.from', /starts before 24:00/],
  ['a clock past 24:00', rule('match: { hours: { from: "08:00", to: "24:30" } }\naction: ALLOW'), 'rules[0].match.hours.to', /not a UTC time/],
  ['an unknown weekday', rule('match: { weekdays: [mon, funday] }\naction: ALLOW'), 'rules[0].match.weekdays[1]', /expected one of sun/],
  ['a rule id with spaces', `${HEAD}  - { id: "my rule", action: BLOCK }\n`, 'rules[0].id', /must be letters, digits/],
  ['version 2', 'version: 2\nrules: []\n', 'version', /integer from 1 to 1/],
  ['no rules key', 'version: 1\n', 'rules', /missing/],
  ['a YAML alias', `${HEAD}  - id: r0\n    match: { keys: &k [k1] }\n    action: BLOCK\n  - id: r1\n    match: { keys: *k }\n    action: BLOCK\n`, 'rules[1].match.keys', /aliases/],
  ['a YAML tag', rule('match: { assets: [BTC], amount: { max: !!str 1 } }\naction: ALLOW'), 'rules[0].match.amount.max', /tags/],
  ['a duplicate YAML key', 'version: 1\nversion: 1\nrules: []\n', '', /not valid YAML/],
  ['two YAML documents', 'version: 1\nrules: []\n---\nversion: 1\nrules: []\n', '', /not valid YAML/],
  ['a document over the size bound', `${HEAD}${'#'.repeat(limits.documentBytesMax)}\n`, '', /more than 98304/],
  ['a list where a mapping belongs', `${HEAD}  - [r0, BLOCK]\n`, 'rules[0]', /expected a mapping/],
];

t.test('malformed and hostile documents are refused with POLICY_DOCUMENT_INVALID and the path', async (tt) => {
  for (const [what, text, path, why] of BAD) {
    try {
      parsePolicyYaml(text, ASSETS);
      tt.fail(`${what}: accepted`);
    } catch (e) {
      tt.ok(e instanceof PolicyDocumentError, `${what}: a PolicyDocumentError`);
      tt.match(e, { reason: 'POLICY_DOCUMENT_INVALID', path, message: why }, `${what}: at ${path === '' ? '(document)' : path}`);
    }
  }
});

t.test('the ledger form is accepted only in its canonical encoding', async (tt) => {
  const p = parsePolicyYaml(`${HEAD}  - id: r0\n    match: { keys: [k1, k2], assets: [BTC], amount: { max: "0.5" } }\n    action: BLOCK\n`, ASSETS);
  const v = documentToCbor(p) as { rules: { match: { keys: string[]; amount: { max: number } } }[] };
  tt.same(v.rules[0]?.match.amount, { max: 50_000_000 }, 'amounts are base units in the ledger form');
  const reorder = structuredClone(v);
  reorder.rules[0]!.match.keys.reverse();
  tt.throws(() => documentFromCbor(reorder, ASSETS), /not in canonical form/, 'a set out of order');
  const extra = structuredClone(v) as unknown as { rules: { match: Record<string, unknown> }[] };
  extra.rules[0]!.match.keys = [];
  tt.throws(() => documentFromCbor(extra as never, ASSETS), /rules\[0\]\.match\.keys: empty list/, 'an empty list');
  tt.throws(() => decodeDocument(new Uint8Array([0xa1, 0x61, 0x61]), ASSETS), /not canonical CBOR/, 'truncated bytes');
  tt.ok(same(documentFromCbor(v, ASSETS), p), 'the canonical value reads back');
});
