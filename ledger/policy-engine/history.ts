/**
 * The admissions a policy's rolling windows and lifetime caps read: a pure, bounded value.
 *
 *   windows:  per scope (one key, one asset, one initiator) the admissions (stampMs, asset,
 *             amount) in stamp order, kept only as long as the longest window of that scope kind
 *             any rule of the policy uses. Entries are pruned on insert: an entry at or before
 *             stampMs - horizon can no longer fall inside any window (a window ending at now
 *             holds entries with stampMs > now - lengthMs, and now >= the latest insert).
 *   lifetime: running sums per (key, asset) and per asset, kept for every admission whatever the
 *             policy says, so a cap added by a later policy counts what came before it.
 *
 * Safety of pruning: the ledger clock never runs backwards, so every evaluation happens at
 * nowMs >= latestMs; an entry pruned at insert time T (stampMs <= T - horizon) is also
 * <= nowMs - lengthMs for every window of length <= horizon, so it would have been outside the
 * window anyway. An evaluation at nowMs < latestMs is refused (evaluate.ts), never guessed.
 * A policy change that lengthens a window sees only the admissions the previous policy kept.
 *
 * Bound: a scope holds at most policyEngine.scopeEntriesMax entries inside its horizon; the
 * engine refuses an act LIMIT_EXCEEDED before recording one more.
 *
 * The history is replicated state: historyToCbor / historyFromCbor give its one canonical
 * encoding, for snapshots and the state root.
 */
import { CustodyError } from '../../proto/errors.js';
import { policyEngine as limits } from '../../proto/limits.js';
import { ShapeError, amount as amountOf, arr, int, obj, oneOf, str } from '../decision.js';
import { bytesEqual, encode, type CborValue } from '../encoding.js';
import { CAP_SCOPES, SCOPES, type PolicyDocument, type Scope } from './types.js';

export interface HistoryEntry {
  readonly stampMs: number;
  readonly asset: string;
  readonly amount: bigint;
}

export interface PolicyHistory {
  /** Per scope kind, how long entries are kept (0: that scope kind is not kept). */
  readonly horizons: { readonly [S in Scope]: number };
  /** scopeKey(scope, id) -> entries in stamp order. */
  readonly windows: ReadonlyMap<string, readonly HistoryEntry[]>;
  /** capKey(scope, id, asset) -> sum of every admitted amount. */
  readonly lifetime: ReadonlyMap<string, bigint>;
  /** The latest stamp recorded (the ledger clock at the last admission). */
  readonly latestMs: number;
}

/**
 * The admission to record once an act is admitted (allowed, or released by the approvals its rule
 * asked for): the act's key, initiator, asset and paid amount (the sum of its paying outputs, as
 * evaluate computes it), at the ledger clock. Refused and held acts are not recorded.
 */
export interface Admission {
  readonly keyId: string;
  readonly initiator: string;
  readonly asset: string;
  readonly amount: bigint;
  readonly stampMs: number;
}

export function scopeKey(scope: Scope, id: string): string {
  return JSON.stringify([scope, id]);
}

export function capKey(scope: 'key' | 'asset', id: string, asset: string): string {
  return JSON.stringify([scope, id, asset]);
}

/** The scope ids an act belongs to. */
export function scopeIds(a: { readonly keyId: string; readonly initiator: string; readonly asset: string }): { readonly [S in Scope]: string } {
  return { key: a.keyId, asset: a.asset, initiator: a.initiator };
}

/** The longest window per scope kind any rule of `policy` uses. */
export function horizonsOf(policy: PolicyDocument): { [S in Scope]: number } {
  const h = { key: 0, asset: 0, initiator: 0 };
  for (const r of policy.rules) for (const w of r.match.windows) h[w.per] = Math.max(h[w.per], w.lengthMs);
  return h;
}

export function emptyHistory(policy: PolicyDocument): PolicyHistory {
  return { horizons: horizonsOf(policy), windows: new Map(), lifetime: new Map(), latestMs: 0 };
}

/**
 * The history under a new policy: a scope kind the new policy no longer reads is dropped; the
 * new horizons apply from the next insert (entries kept so far stay until then, and a window
 * reads only the entries inside its own length, so keeping more never changes a verdict).
 */
export function withPolicy(history: PolicyHistory, policy: PolicyDocument): PolicyHistory {
  const horizons = horizonsOf(policy);
  const windows = new Map([...history.windows].filter(([k]) => horizons[(JSON.parse(k) as [Scope])[0]] > 0));
  return { ...history, horizons, windows };
}

/** Index of the first entry with stampMs > cutMs (entries are in stamp order). */
export function firstAfter(entries: readonly HistoryEntry[], cutMs: number): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((entries[mid] as HistoryEntry).stampMs > cutMs) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Admissions of the scope inside (nowMs - lengthMs, nowMs]: their count (every asset) and the sum of `asset`. */
export function windowUsage(history: PolicyHistory, scope: Scope, id: string, asset: string, nowMs: number, lengthMs: number): { count: number; amount: bigint } {
  const entries = history.windows.get(scopeKey(scope, id)) ?? [];
  let count = 0;
  let amount = 0n;
  for (let i = firstAfter(entries, nowMs - lengthMs); i < entries.length; i++) {
    const e = entries[i] as HistoryEntry;
    if (e.stampMs > nowMs) break;
    count++;
    if (e.asset === asset) amount += e.amount;
  }
  return { count, amount };
}

export function lifetimeUsage(history: PolicyHistory, scope: 'key' | 'asset', id: string, asset: string): bigint {
  return history.lifetime.get(capKey(scope, id, asset)) ?? 0n;
}

/** Entries the scope still holds inside its horizon at nowMs (what one more insert would be added to). */
export function scopeLoad(history: PolicyHistory, scope: Scope, id: string, nowMs: number): number {
  const entries = history.windows.get(scopeKey(scope, id)) ?? [];
  return entries.length - firstAfter(entries, nowMs - history.horizons[scope]);
}

/**
 * Records an admission: appended to each kept scope (pruned to its horizon first), added to the
 * lifetime sums. Refuses a stamp before the latest one (INVALID_ARGUMENT) and a scope already
 * holding scopeEntriesMax entries (LIMIT_EXCEEDED); the engine refuses such acts before they are
 * admitted, so neither happens to an act it allowed.
 */
export function record(history: PolicyHistory, a: Admission): PolicyHistory {
  if (!Number.isSafeInteger(a.stampMs) || a.stampMs < history.latestMs) {
    throw new CustodyError('INVALID_ARGUMENT', `admission stamped ${a.stampMs} is before the latest recorded (${history.latestMs})`);
  }
  if (a.amount < 0n) throw new CustodyError('INVALID_ARGUMENT', `negative admitted amount ${a.amount}`);
  const windows = new Map(history.windows);
  const ids = scopeIds(a);
  for (const scope of SCOPES) {
    const horizon = history.horizons[scope];
    if (horizon === 0) continue;
    const key = scopeKey(scope, ids[scope]);
    const old = windows.get(key) ?? [];
    const kept = old.slice(firstAfter(old, a.stampMs - horizon));
    if (kept.length >= limits.scopeEntriesMax) {
      throw new CustodyError('LIMIT_EXCEEDED', `${scope} ${ids[scope]} already holds ${kept.length} admissions inside ${horizon} ms`);
    }
    kept.push({ stampMs: a.stampMs, asset: a.asset, amount: a.amount });
    windows.set(key, kept);
  }
  const lifetime = new Map(history.lifetime);
  for (const k of [capKey('key', a.keyId, a.asset), capKey('asset', a.asset, a.asset)]) {
    lifetime.set(k, (lifetime.get(k) ?? 0n) + a.amount);
  }
  return { horizons: history.horizons, windows, lifetime, latestMs: a.stampMs };
}

// ------------------------------------------------------------------------------------------------
// Canonical form (the history travels in ledger snapshots and counts in the state root)
// ------------------------------------------------------------------------------------------------

const byKey = <T>(m: ReadonlyMap<string, T>): [string, T][] => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

/**
 * { horizons: {key, asset, initiator}, windows: [[scope, id, [[stampMs, asset, amount], ...]], ...],
 *   lifetime: [[scope, id, asset, sum], ...], latestMs }, both lists sorted by their map key, so
 * two replicas with equal histories encode to equal bytes.
 */
export function historyToCbor(h: PolicyHistory): CborValue {
  return {
    horizons: { key: h.horizons.key, asset: h.horizons.asset, initiator: h.horizons.initiator },
    windows: byKey(h.windows).map(([k, entries]) => [...(JSON.parse(k) as [string, string]), entries.map((e) => [e.stampMs, e.asset, e.amount])]),
    lifetime: byKey(h.lifetime).map(([k, sum]) => [...(JSON.parse(k) as [string, string, string]), sum]),
    latestMs: h.latestMs,
  };
}

/** Strict: refuses PAYLOAD_REJECTED anything `historyToCbor` would not have written for a reachable history. */
export function historyFromCbor(v: CborValue): PolicyHistory {
  try {
    const o = obj(v, 'history', ['horizons', 'windows', 'lifetime', 'latestMs']);
    const ho = obj(o.horizons, 'history.horizons', [...SCOPES]);
    const horizons = { key: 0, asset: 0, initiator: 0 };
    for (const s of SCOPES) horizons[s] = int(ho[s], `history.horizons.${s}`, 0, limits.windowMsMax);
    const latestMs = int(o.latestMs, 'history.latestMs');
    const windows = new Map<string, HistoryEntry[]>();
    for (const [i, w] of arr(o.windows, 'history.windows', Number.MAX_SAFE_INTEGER).entries()) {
      const [scope, id, list] = arr(w, `history.windows[${i}]`, 3);
      const entries = arr(list, `history.windows[${i}] entries`, limits.scopeEntriesMax).map((e, j): HistoryEntry => {
        const [stampMs, asset, amt] = arr(e, `history.windows[${i}][${j}]`, 3);
        return { stampMs: int(stampMs, 'entry.stampMs', 0, latestMs), asset: str(asset, 'entry.asset'), amount: amountOf(amt, 'entry.amount') };
      });
      if (entries.length === 0 || entries.some((e, j) => j > 0 && e.stampMs < (entries[j - 1] as HistoryEntry).stampMs)) {
        throw new ShapeError(`history.windows[${i}]: entries empty or out of stamp order`);
      }
      windows.set(scopeKey(oneOf(scope, 'window scope', SCOPES), str(id, 'window id')), entries);
    }
    const lifetime = new Map<string, bigint>();
    for (const [i, c] of arr(o.lifetime, 'history.lifetime', Number.MAX_SAFE_INTEGER).entries()) {
      const [scope, id, asset, sum] = arr(c, `history.lifetime[${i}]`, 4);
      lifetime.set(capKey(oneOf(scope, 'cap scope', CAP_SCOPES), str(id, 'cap id'), str(asset, 'cap asset')), amountOf(sum, 'cap sum'));
    }
    const h: PolicyHistory = { horizons, windows, lifetime, latestMs };
    if (!bytesEqual(encode(v), encode(historyToCbor(h)))) throw new ShapeError('history: not in canonical form');
    return h;
  } catch (e) {
    if (e instanceof ShapeError) throw new CustodyError('PAYLOAD_REJECTED', e.message);
    throw e;
  }
}
