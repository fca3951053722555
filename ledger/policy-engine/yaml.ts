/**
 * Policy documents: the YAML people write, the canonical CBOR the ledger carries in a
 * PolicyChanged decision, and the canonical YAML `policy show` and `policy diff` print.
 *
 *   YAML text --parsePolicyYaml--> PolicyDocument --documentToCbor--> canonical CBOR (ledger)
 *                                        |         <--documentFromCbor--
 *                                        +--renderPolicyYaml--> canonical YAML (show, diff)
 *
 * One reader serves both forms: YAML and CBOR are read into the same tree of maps, lists and
 * scalars, and the same code checks every key, type, bound and cross-reference, with a path
 * (`rules[2].match.amount.max`) in every refusal. The forms differ only in how they write three
 * kinds of numbers (the codecs below): YAML writes amounts in asset units with the asset's
 * decimals ("1.5"), durations ("24h") and UTC clock times ("08:30"); CBOR writes integers (base
 * units, milliseconds, minutes of the day), so the ledger's form does not depend on decimals.
 *
 * Strictness: unknown keys, duplicate keys, wrong types, YAML aliases and tags, empty lists
 * (omit a matcher to match anything), amounts with more decimals than the asset has, negative
 * amounts, windows or time to live out of bounds, duplicate rule ids, references to undefined
 * groups, k larger than its group, and an ALLOW rule that could match a raw act or that carries
 * a deny-list are refused with POLICY_DOCUMENT_INVALID and the path. A CBOR form is accepted only
 * if it is exactly the canonical encoding of what it decodes to, so one document has one cid.
 *
 * Round trip: parse(render(p)) == p for every valid document p (test/ledger/policy-engine-yaml.test.ts).
 */
import { isAlias, isMap, isScalar, isSeq, parseDocument, stringify } from 'yaml';
import { CustodyError } from '../../proto/errors.js';
import { ledger as ledgerLimits, policyEngine as limits } from '../../proto/limits.js';
import { bytesEqual, decode, encode, type CborValue } from '../encoding.js';
import { TX_KINDS, type AssetTable, type TxKind } from '../tx/types.js';
import {
  ACTION_KINDS, CAP_SCOPES, RAW_ASSET, SCOPES, WEEKDAYS, type Action, type DestinationMatcher, type Group, type LifetimeCap,
  type Matchers, type PolicyDocument, type Rule, type WindowLimit,
} from './types.js';
import { formatClock, formatDuration, formatUnits, parseClock, parseDuration, parseUnits } from './units.js';

/** A refusal of a policy document: POLICY_DOCUMENT_INVALID, with the path of the offending value. */
export class PolicyDocumentError extends CustodyError {
  readonly path: string;

  constructor(path: string, why: string) {
    super('POLICY_DOCUMENT_INVALID', `${path === '' ? '(document)' : path}: ${why}`);
    this.path = path;
  }
}

type Tree = null | boolean | number | bigint | string | readonly Tree[] | ReadonlyMap<string, Tree>;

const fail = (path: string, why: string): never => {
  throw new PolicyDocumentError(path, why);
};
const at = (path: string, key: string | number): string => (typeof key === 'number' ? `${path}[${key}]` : path === '' ? key : `${path}.${key}`);

// ------------------------------------------------------------------------------------------------
// Codecs: how each form writes amounts, durations and clock times
// ------------------------------------------------------------------------------------------------

interface Codec {
  readAmount(v: Tree, path: string, decimals: number): bigint;
  readDuration(v: Tree, path: string): number;
  readClock(v: Tree, path: string): number;
  amount(v: bigint, decimals: number): Tree;
  duration(ms: number): Tree;
  clock(minute: number): Tree;
}

const textual = <T>(parse: (s: string) => T | string, expect: string) => (v: Tree, path: string): T => {
  if (typeof v !== 'string') return fail(path, `expected ${expect} written as a quoted string`);
  const r = parse(v);
  return typeof r === 'string' ? fail(path, r) : r;
};

const YAML_CODEC: Codec = {
  readAmount: (v, path, decimals) => textual((s) => parseUnits(s, decimals), 'an amount such as "1.5"')(v, path),
  readDuration: textual(parseDuration, 'a duration such as "24h"'),
  readClock: textual(parseClock, 'a UTC time such as "08:30"'),
  amount: (v, decimals) => formatUnits(v, decimals),
  duration: formatDuration,
  clock: formatClock,
};

const CBOR_CODEC: Codec = {
  readAmount: (v, path) => {
    const b = typeof v === 'number' && Number.isSafeInteger(v) ? BigInt(v) : v;
    if (typeof b !== 'bigint' || b < 0n || b > limits.amountMax) return fail(path, 'expected an amount in base units (a non-negative integer)');
    return b;
  },
  readDuration: (v, path) => integer(v, path, 1),
  readClock: (v, path) => integer(v, path, 0, 1440),
  amount: (v) => v,
  duration: (ms) => ms,
  clock: (m) => m,
};

// ------------------------------------------------------------------------------------------------
// Tree readers
// ------------------------------------------------------------------------------------------------

function map(v: Tree, path: string, required: readonly string[], optional: readonly string[] = []): ReadonlyMap<string, Tree> {
  if (!(v instanceof Map)) return fail(path, 'expected a mapping');
  const m = v as ReadonlyMap<string, Tree>;
  for (const k of m.keys()) if (!required.includes(k) && !optional.includes(k)) fail(at(path, k), `unknown key (expected ${[...required, ...optional].join(', ')})`);
  for (const k of required) if (!m.has(k)) fail(at(path, k), 'missing');
  return m;
}

function list(v: Tree, path: string, max: number, emptyOk = false): readonly Tree[] {
  if (!Array.isArray(v)) return fail(path, 'expected a list');
  const l = v as readonly Tree[];
  if (l.length === 0 && !emptyOk) fail(path, 'empty list (omit the key to match anything)');
  if (l.length > max) fail(path, `more than ${max} items`);
  return l;
}

function integer(v: Tree, path: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = typeof v === 'bigint' && v >= BigInt(min) && v <= BigInt(max) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min || n > max) return fail(path, `expected an integer from ${min} to ${max}`);
  return n;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function text(v: Tree, path: string, pattern?: RegExp): string {
  if (typeof v !== 'string' || v.length === 0) return fail(path, 'expected a non-empty string');
  if (Buffer.byteLength(v, 'utf8') > ledgerLimits.idBytesMax) fail(path, `longer than ${ledgerLimits.idBytesMax} bytes`);
  if (pattern !== undefined && !pattern.test(v)) fail(path, `"${v}" must be letters, digits, '.', '_' or '-', starting with a letter or digit`);
  return v;
}

function oneOf<T extends string>(v: Tree, path: string, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) return fail(path, `expected one of ${allowed.join(', ')}`);
  return v as T;
}

/** A set of strings: sorted into canonical order, duplicates refused. */
function stringSet<T extends string = string>(v: Tree, path: string, max: number, item: (x: Tree, p: string) => T, order?: readonly T[]): T[] {
  const out = list(v, path, max).map((x, i) => item(x, at(path, i)));
  const seen = new Set<string>();
  for (const [i, s] of out.entries()) {
    if (seen.has(s)) fail(at(path, i), `"${s}" appears twice`);
    seen.add(s);
  }
  return order !== undefined ? out.sort((a, b) => order.indexOf(a) - order.indexOf(b)) : out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

const opt = <T>(m: ReadonlyMap<string, Tree>, key: string, read: (v: Tree) => T): T | null => (m.has(key) ? read(m.get(key) as Tree) : null);

// ------------------------------------------------------------------------------------------------
// Reading a document
// ------------------------------------------------------------------------------------------------

interface ReadEnv {
  readonly codec: Codec;
  readonly assets: AssetTable;
  readonly approverGroups: readonly Group[];
  readonly initiatorGroups: readonly Group[];
}

function readGroups(v: Tree | undefined, path: string): Group[] {
  if (v === undefined) return [];
  const m = v instanceof Map ? (v as ReadonlyMap<string, Tree>) : fail(path, 'expected a mapping of group name to members');
  if (m.size === 0) fail(path, 'empty mapping (omit the key)');
  if (m.size > limits.groupsMax) fail(path, `more than ${limits.groupsMax} groups`);
  return [...m.entries()]
    .map(([name, members]) => ({ name: text(name, at(path, name), NAME), members: stringSet(members, at(path, name), limits.groupMembersMax, (x, p) => text(x, p)) }))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
}

function decimalsOf(env: ReadEnv, asset: string): number {
  return asset === RAW_ASSET ? 0 : (env.assets[asset] as { decimals: number }).decimals;
}

const MATCH_KEYS = ['initiators', 'keys', 'assets', 'kinds', 'destination', 'amount', 'windows', 'lifetime', 'hours', 'weekdays'];

function readMatch(v: Tree | undefined, path: string, env: ReadEnv): Matchers {
  const m = v === undefined ? new Map<string, Tree>() : map(v, path, [], MATCH_KEYS);
  if (v !== undefined && m.size === 0) fail(path, 'empty mapping (omit match to match every act but raw ones)');
  const assets = opt(m, 'assets', (x) => stringSet(x, at(path, 'assets'), limits.listItemsMax, (y, p) => {
    const s = text(y, p);
    return s === RAW_ASSET || Object.hasOwn(env.assets, s) ? s : fail(p, `unknown asset ${s} (not in the asset table)`);
  }));
  /** The one asset whose decimals an amount is written in. */
  const unitAsset = (p: string): string => (assets?.length === 1 ? (assets[0] as string) : fail(p, 'an amount limit needs exactly one asset in match.assets'));
  const amountAt = (x: Tree, p: string): bigint => env.codec.readAmount(x, p, decimalsOf(env, unitAsset(p)));

  const initiators = opt(m, 'initiators', (x) => {
    const p = at(path, 'initiators');
    const im = map(x, p, [], ['ids', 'groups']);
    if (im.size === 0) fail(p, 'name ids, groups or both');
    const groups = opt(im, 'groups', (g) => stringSet(g, at(p, 'groups'), limits.groupsMax, (y, q) => {
      const s = text(y, q);
      return env.initiatorGroups.some((ig) => ig.name === s) ? s : fail(q, `no initiator group ${s} in groups.initiators`);
    })) ?? [];
    return { ids: opt(im, 'ids', (ids) => stringSet(ids, at(p, 'ids'), limits.listItemsMax, (y, q) => text(y, q))) ?? [], groups };
  });
  const destination = opt(m, 'destination', (x): DestinationMatcher => {
    const p = at(path, 'destination');
    const dm = map(x, p, [], ['allow', 'ownKeys', 'deny']);
    // Transaction facts write bech32 addresses in lowercase; an uppercase one on a list would
    // never match (a deny-list silently bypassed), so it is refused rather than guessed.
    const address = (y: Tree, q: string): string => {
      const s = text(y, q);
      return /^(bc|tb|bcrt)1/i.test(s) && s !== s.toLowerCase() ? fail(q, `write the bech32 address ${s} in lowercase, as transactions are read`) : s;
    };
    const d = {
      allow: opt(dm, 'allow', (a) => stringSet(a, at(p, 'allow'), limits.listItemsMax, address)) ?? [],
      ownKeys: opt(dm, 'ownKeys', (o) => (typeof o === 'boolean' ? o : fail(at(p, 'ownKeys'), 'expected true or false'))) ?? false,
      deny: opt(dm, 'deny', (a) => stringSet(a, at(p, 'deny'), limits.listItemsMax, address)) ?? [],
    };
    if (dm.has('ownKeys') && !d.ownKeys) fail(at(p, 'ownKeys'), 'write ownKeys: true or omit it');
    if (d.allow.length === 0 && !d.ownKeys && d.deny.length === 0) fail(p, 'name allow, ownKeys or deny');
    return d;
  });
  const amount = opt(m, 'amount', (x) => {
    const p = at(path, 'amount');
    const am = map(x, p, [], ['min', 'max']);
    if (am.size === 0) fail(p, 'name min, max or both');
    const a = { min: opt(am, 'min', (y) => amountAt(y, at(p, 'min'))), max: opt(am, 'max', (y) => amountAt(y, at(p, 'max'))) };
    if (a.min !== null && a.max !== null && a.min > a.max) fail(p, 'min is above max');
    return a;
  });
  const windows = opt(m, 'windows', (x) => list(x, at(path, 'windows'), limits.windowsPerRuleMax).map((w, i): WindowLimit => {
    const p = at(at(path, 'windows'), i);
    const wm = map(w, p, ['per', 'length'], ['maxAmount', 'maxCount']);
    const lengthMs = env.codec.readDuration(wm.get('length') as Tree, at(p, 'length'));
    if (lengthMs < limits.windowMsMin || lengthMs > limits.windowMsMax) {
      fail(at(p, 'length'), `a window lasts from ${formatDuration(limits.windowMsMin)} to ${formatDuration(limits.windowMsMax)}`);
    }
    const r = {
      per: oneOf(wm.get('per') as Tree, at(p, 'per'), SCOPES), lengthMs,
      maxAmount: opt(wm, 'maxAmount', (y) => amountAt(y, at(p, 'maxAmount'))),
      maxCount: opt(wm, 'maxCount', (y) => integer(y, at(p, 'maxCount'), 1, limits.scopeEntriesMax)),
    };
    if (r.maxAmount === null && r.maxCount === null) fail(p, 'name maxAmount, maxCount or both');
    return r;
  })) ?? [];
  windows.forEach((w, i) => {
    if (windows.findIndex((o) => o.per === w.per && o.lengthMs === w.lengthMs) !== i) fail(at(at(path, 'windows'), i), `a second window per ${w.per} over ${formatDuration(w.lengthMs)}`);
  });
  const lifetime = opt(m, 'lifetime', (x) => list(x, at(path, 'lifetime'), limits.windowsPerRuleMax).map((c, i): LifetimeCap => {
    const p = at(at(path, 'lifetime'), i);
    const cm = map(c, p, ['per', 'maxAmount']);
    return { per: oneOf(cm.get('per') as Tree, at(p, 'per'), CAP_SCOPES), maxAmount: amountAt(cm.get('maxAmount') as Tree, at(p, 'maxAmount')) };
  })) ?? [];
  lifetime.forEach((c, i) => {
    if (lifetime.findIndex((o) => o.per === c.per) !== i) fail(at(at(path, 'lifetime'), i), `a second lifetime cap per ${c.per}`);
  });
  const hours = opt(m, 'hours', (x) => {
    const p = at(path, 'hours');
    const hm = map(x, p, ['from', 'to']);
    const fromMinute = env.codec.readClock(hm.get('from') as Tree, at(p, 'from'));
    let toMinute = env.codec.readClock(hm.get('to') as Tree, at(p, 'to'));
    if (fromMinute === 1440) fail(at(p, 'from'), 'a window starts before 24:00');
    if (fromMinute === toMinute) fail(p, 'from and to are equal (omit hours to match the whole day)');
    if (toMinute === 0 && env.codec === YAML_CODEC) toMinute = 1440; // "until 00:00" is the end of the day
    if (toMinute === 0) fail(at(p, 'to'), 'the end of the day is 1440');
    if (fromMinute === toMinute) fail(p, 'from and to are equal (omit hours to match the whole day)');
    return { fromMinute, toMinute };
  });
  return {
    initiators,
    keys: opt(m, 'keys', (x) => stringSet(x, at(path, 'keys'), limits.listItemsMax, (y, p) => text(y, p))),
    assets,
    kinds: opt(m, 'kinds', (x) => stringSet<TxKind>(x, at(path, 'kinds'), TX_KINDS.length, (y, p) => oneOf(y, p, TX_KINDS), TX_KINDS)),
    destination, amount, windows, lifetime, hours,
    weekdays: opt(m, 'weekdays', (x) => stringSet(x, at(path, 'weekdays'), WEEKDAYS.length, (y, p) => oneOf(y, p, WEEKDAYS), WEEKDAYS)),
  };
}

function readAction(r: ReadonlyMap<string, Tree>, path: string, env: ReadEnv): Action {
  const kind = oneOf(r.get('action') as Tree, at(path, 'action'), ACTION_KINDS);
  if (kind !== 'REQUIRE_APPROVAL') {
    if (r.has('approvals')) fail(at(path, 'approvals'), `only a REQUIRE_APPROVAL rule names approvals (this rule is ${kind})`);
    return { kind };
  }
  if (!r.has('approvals')) fail(at(path, 'approvals'), 'missing (k, group, ttl)');
  const p = at(path, 'approvals');
  const am = map(r.get('approvals') as Tree, p, ['k', 'group', 'ttl']);
  const group = text(am.get('group') as Tree, at(p, 'group'));
  const members = env.approverGroups.find((g) => g.name === group)?.members ?? fail(at(p, 'group'), `no approver group ${group} in groups.approvers`);
  const k = integer(am.get('k') as Tree, at(p, 'k'), 1, members.length);
  const ttlMs = env.codec.readDuration(am.get('ttl') as Tree, at(p, 'ttl'));
  if (ttlMs < limits.approvalTtlMsMin || ttlMs > ledgerLimits.decisionTtlMsMax) {
    fail(at(p, 'ttl'), `approvals live from ${formatDuration(limits.approvalTtlMsMin)} to ${formatDuration(ledgerLimits.decisionTtlMsMax)}`);
  }
  return { kind, k, group, ttlMs };
}

function readRule(v: Tree, path: string, env: ReadEnv): Rule {
  const r = map(v, path, ['id', 'action'], ['match', 'approvals']);
  const id = text(r.get('id') as Tree, at(path, 'id'), NAME);
  const match = readMatch(r.get('match'), at(path, 'match'), env);
  const action = readAction(r, path, env);
  if (action.kind === 'ALLOW' && match.kinds?.includes('raw') === true) {
    fail(at(path, 'action'), 'an ALLOW rule may not match raw acts: raw bytes are signed only with approvals that show them (use REQUIRE_APPROVAL)');
  }
  if (action.kind === 'ALLOW' && match.destination !== null && match.destination.deny.length > 0) {
    fail(at(at(path, 'match'), 'destination.deny'), 'a deny-list selects acts to BLOCK or hold for approval; an ALLOW rule cannot carry one');
  }
  return { id, match, action };
}

function readDocument(v: Tree, env0: { codec: Codec; assets: AssetTable }): PolicyDocument {
  const top = map(v, '', ['version', 'rules'], ['groups']);
  if (integer(top.get('version') as Tree, 'version', 1, 1) !== 1) fail('version', 'expected 1');
  const g = top.has('groups') ? map(top.get('groups') as Tree, 'groups', [], ['approvers', 'initiators']) : new Map<string, Tree>();
  if (top.has('groups') && g.size === 0) fail('groups', 'empty mapping (omit the key)');
  const env: ReadEnv = {
    ...env0,
    approverGroups: readGroups(g.get('approvers'), 'groups.approvers'),
    initiatorGroups: readGroups(g.get('initiators'), 'groups.initiators'),
  };
  const rules = list(top.get('rules') as Tree, 'rules', limits.rulesMax, true).map((r, i) => readRule(r, `rules[${i}]`, env));
  rules.forEach((r, i) => {
    const first = rules.findIndex((o) => o.id === r.id);
    if (first !== i) fail(`rules[${i}].id`, `"${r.id}" is already the id of rules[${first}]`);
  });
  return { version: 1, approverGroups: env.approverGroups, initiatorGroups: env.initiatorGroups, rules };
}

// ------------------------------------------------------------------------------------------------
// Writing a document (the canonical tree; absent and empty parts are omitted)
// ------------------------------------------------------------------------------------------------

function entries(pairs: readonly (readonly [string, Tree | null | undefined])[]): Map<string, Tree> {
  return new Map(pairs.filter((p): p is [string, Tree] => p[1] !== null && p[1] !== undefined && !(Array.isArray(p[1]) && p[1].length === 0)));
}

function writeGroups(groups: readonly Group[]): Map<string, Tree> | null {
  return groups.length === 0 ? null : new Map(groups.map((g) => [g.name, [...g.members]]));
}

function writeRule(r: Rule, codec: Codec, assets: AssetTable): Map<string, Tree> {
  const m = r.match;
  const asset = m.assets?.length === 1 ? (m.assets[0] as string) : null;
  const decimals = asset === null || asset === RAW_ASSET ? 0 : (assets[asset]?.decimals ?? 0);
  const amt = (v: bigint | null): Tree | null => (v === null ? null : codec.amount(v, decimals));
  const d = m.destination;
  const match = entries([
    ['initiators', m.initiators === null ? null : entries([['ids', [...m.initiators.ids]], ['groups', [...m.initiators.groups]]])],
    ['keys', m.keys === null ? null : [...m.keys]],
    ['assets', m.assets === null ? null : [...m.assets]],
    ['kinds', m.kinds === null ? null : [...m.kinds]],
    ['destination', d === null ? null : entries([['allow', [...d.allow]], ['ownKeys', d.ownKeys ? true : null], ['deny', [...d.deny]]])],
    ['amount', m.amount === null ? null : entries([['min', amt(m.amount.min)], ['max', amt(m.amount.max)]])],
    ['windows', m.windows.map((w) => entries([['per', w.per], ['length', codec.duration(w.lengthMs)], ['maxAmount', amt(w.maxAmount)], ['maxCount', w.maxCount]]))],
    ['lifetime', m.lifetime.map((c) => entries([['per', c.per], ['maxAmount', amt(c.maxAmount)]]))],
    ['hours', m.hours === null ? null : entries([['from', codec.clock(m.hours.fromMinute)], ['to', codec.clock(m.hours.toMinute)]])],
    ['weekdays', m.weekdays === null ? null : [...m.weekdays]],
  ]);
  const a = r.action;
  return entries([
    ['id', r.id],
    ['match', match.size === 0 ? null : match],
    ['action', a.kind],
    ['approvals', a.kind === 'REQUIRE_APPROVAL' ? entries([['k', a.k], ['group', a.group], ['ttl', codec.duration(a.ttlMs)]]) : null],
  ]);
}

function writeDocument(p: PolicyDocument, codec: Codec, assets: AssetTable): Map<string, Tree> {
  const groups = entries([['approvers', writeGroups(p.approverGroups)], ['initiators', writeGroups(p.initiatorGroups)]]);
  const rules: Tree[] = p.rules.map((r) => writeRule(r, codec, assets));
  return new Map<string, Tree>([['version', 1], ...(groups.size === 0 ? [] : [['groups', groups] as [string, Tree]]), ['rules', rules]]);
}

// ------------------------------------------------------------------------------------------------
// YAML
// ------------------------------------------------------------------------------------------------

/** The YAML node tree as a Tree, refusing aliases, tags and non-string keys. */
function yamlTree(node: unknown, path: string): Tree {
  if (node === null || node === undefined) return null;
  if (isAlias(node)) return fail(path, 'aliases (*name) are not allowed');
  if ((node as { tag?: string }).tag !== undefined) return fail(path, `tags (${(node as { tag: string }).tag}) are not allowed`);
  if (isMap(node)) {
    const out = new Map<string, Tree>();
    for (const pair of node.items) {
      const k = isScalar(pair.key) && (pair.key as { tag?: string }).tag === undefined ? pair.key.value : undefined;
      if (typeof k !== 'string') return fail(path, 'every key is a plain string');
      if (out.has(k)) fail(at(path, k), 'duplicate key');
      out.set(k, yamlTree(pair.value, at(path, k)));
    }
    return out;
  }
  if (isSeq(node)) return node.items.map((x, i) => yamlTree(x, at(path, i)));
  if (isScalar(node)) {
    const v = node.value;
    if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'bigint' || typeof v === 'string') return v;
  }
  return fail(path, 'unsupported value');
}

/** Parses a YAML policy document (strict; see the module comment). Throws PolicyDocumentError. */
export function parsePolicyYaml(textIn: string, assets: AssetTable): PolicyDocument {
  const size = Buffer.byteLength(textIn, 'utf8');
  if (size > limits.documentBytesMax) fail('', `${size} bytes, more than ${limits.documentBytesMax}`);
  const doc = parseDocument(textIn, { version: '1.2', schema: 'core', uniqueKeys: true, strict: true, intAsBigInt: true, merge: false, prettyErrors: false });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem !== undefined) fail('', `not valid YAML: ${problem.message}`);
  const p = readDocument(yamlTree(doc.contents, ''), { codec: YAML_CODEC, assets });
  checkEncodedSize(p);
  return p;
}

/** The canonical YAML: fixed key order, sets sorted, absent parts omitted, one item per line. */
export function renderPolicyYaml(p: PolicyDocument, assets: AssetTable): string {
  // No block scalars: a string with leading spaces and a line break does not survive one (yaml 2.x).
  return stringify(writeDocument(p, YAML_CODEC, assets), { version: '1.2', lineWidth: 0, minContentWidth: 0, blockQuote: false });
}

// ------------------------------------------------------------------------------------------------
// Canonical CBOR
// ------------------------------------------------------------------------------------------------

function toCbor(t: Tree): CborValue {
  if (t instanceof Map) {
    const o: { [k: string]: CborValue } = {};
    for (const [k, v] of t as ReadonlyMap<string, Tree>) Object.defineProperty(o, k, { value: toCbor(v), enumerable: true, writable: false });
    return o;
  }
  if (Array.isArray(t)) return (t as readonly Tree[]).map(toCbor);
  return t as CborValue;
}

function fromCbor(v: CborValue | undefined, path: string): Tree {
  if (v === undefined) return fail(path, 'missing');
  if (v instanceof Uint8Array) return fail(path, 'byte strings are not part of a policy document');
  if (Array.isArray(v)) return (v as readonly CborValue[]).map((x, i) => fromCbor(x, at(path, i)));
  if (v !== null && typeof v === 'object') {
    const o = v as { readonly [k: string]: CborValue | undefined };
    return new Map(Object.keys(o).map((k) => [k, fromCbor(o[k], at(path, k))]));
  }
  return v as Tree;
}

/** The value the ledger carries: integers for amounts (base units), durations (ms) and times (minutes). */
export function documentToCbor(p: PolicyDocument): CborValue {
  return toCbor(writeDocument(p, CBOR_CODEC, {}));
}

export function encodeDocument(p: PolicyDocument): Uint8Array {
  return encode(documentToCbor(p));
}

function checkEncodedSize(p: PolicyDocument): void {
  const n = encodeDocument(p).length;
  if (n > limits.documentBytesMax) fail('', `canonical encoding is ${n} bytes, more than ${limits.documentBytesMax}`);
}

/** Reads the ledger's form; refuses anything that is not exactly the canonical encoding of a valid document. */
export function documentFromCbor(v: CborValue, assets: AssetTable): PolicyDocument {
  const p = readDocument(fromCbor(v, ''), { codec: CBOR_CODEC, assets });
  if (!bytesEqual(encode(v), encodeDocument(p))) fail('', 'not in canonical form (sets sorted, absent parts omitted)');
  checkEncodedSize(p);
  return p;
}

export function decodeDocument(bytes: Uint8Array, assets: AssetTable): PolicyDocument {
  let v: CborValue;
  try {
    v = decode(bytes, { bytesMax: limits.documentBytesMax });
  } catch (e) {
    return fail('', `not canonical CBOR: ${(e as Error).message}`);
  }
  return documentFromCbor(v, assets);
}

// ------------------------------------------------------------------------------------------------
// Diff over canonical YAML lines
// ------------------------------------------------------------------------------------------------

/**
 * The line diff from `a` to `b` (Myers' O((N+M)D) algorithm, shortest edit script): each line
 * prefixed '  ' (both), '- ' (only in a) or '+ ' (only in b), in document order.
 */
export function diffLines(a: readonly string[], b: readonly string[]): string[] {
  const n = a.length;
  const m = b.length;
  // trace[d] holds V before round d for diagonals -d-1 .. d+1 (index k + d + 1).
  const trace: Int32Array[] = [];
  let v = new Int32Array(3);
  let found = -1;
  for (let d = 0; d <= n + m && found < 0; d++) {
    trace.push(v);
    const next = new Int32Array(2 * d + 3);
    const get = (k: number): number => (k >= -d + 1 && k <= d - 1 ? (v[k + d] as number) : k === 1 && d === 0 ? 0 : -1);
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && get(k - 1) < get(k + 1)) ? get(k + 1) : get(k - 1) + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) { x++; y++; }
      next[k + d + 1] = x;
      if (x >= n && y >= m) { found = d; break; }
    }
    v = next;
  }
  const out: string[] = [];
  let x = n;
  let y = m;
  for (let d = found; d >= 0; d--) {
    const prev = trace[d] as Int32Array;
    const get = (k: number): number => (k >= -d + 1 && k <= d - 1 ? (prev[k + d] as number) : k === 1 && d === 0 ? 0 : -1);
    const k = x - y;
    const prevK = d === 0 ? 0 : k === -d || (k !== d && get(k - 1) < get(k + 1)) ? k + 1 : k - 1;
    const prevX = d === 0 ? 0 : get(prevK);
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      out.push(`  ${a[--x] as string}`);
      y--;
    }
    if (d > 0) {
      if (x === prevX) out.push(`+ ${b[--y] as string}`);
      else out.push(`- ${a[--x] as string}`);
    }
  }
  return out.reverse();
}

/** What changes from policy `a` to policy `b`, over their canonical YAML. */
export function diffPolicies(a: PolicyDocument, b: PolicyDocument, assets: AssetTable): string[] {
  const lines = (p: PolicyDocument): string[] => renderPolicyYaml(p, assets).replace(/\n$/, '').split('\n');
  return diffLines(lines(a), lines(b));
}
