/**
 * A persistent map that reads like a plain object.
 *
 * The journal's maps (acts, permits, node statements) grow with every act, and apply must never
 * modify the state it was given. Copying a plain object on every write made each event O(n) and
 * a long journal quadratic (measured: 8,000 acts took minutes). Here a write copies one of 256
 * shards and the shard table, O(n/256 + 256), and shares the rest with the previous version.
 *
 * Readers see an ordinary frozen-looking object: `m[k]`, `k in m`, `Object.hasOwn`,
 * `Object.keys / values / entries`, spread and JSON all work, so code written against plain
 * objects (the admin API, the simulator, the encoder) needs no change. Writes through the object
 * throw; use `pmapSet`. Iteration order is a function of the content alone (shard by shard, keys
 * sorted within a shard), so a restored snapshot iterates exactly like the live state.
 */

const SHARDS = 256;

interface Store<T> {
  readonly shards: readonly (ReadonlyMap<string, T> | undefined)[];
  readonly size: number;
}

const stores = new WeakMap<object, Store<unknown>>();
/** Sorted keys of a shard, computed once per shard version. */
const sortedKeys = new WeakMap<ReadonlyMap<string, unknown>, readonly string[]>();

/** FNV-1a over UTF-16 code units: cheap, stable, and the same on every node. */
function shardOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % SHARDS;
}

function keysOf(store: Store<unknown>): string[] {
  const out: string[] = [];
  for (const shard of store.shards) {
    if (shard === undefined) continue;
    let ks = sortedKeys.get(shard);
    if (ks === undefined) {
      ks = [...shard.keys()].sort();
      sortedKeys.set(shard, ks);
    }
    for (const k of ks) out.push(k);
  }
  return out;
}

function immutable(): never {
  throw new TypeError('ledger maps are immutable: use pmapSet');
}

function view<T>(store: Store<T>): { readonly [k: string]: T } {
  const lookup = (k: string): { found: boolean; value: T | undefined } => {
    const shard = store.shards[shardOf(k)];
    if (shard === undefined || !shard.has(k)) return { found: false, value: undefined };
    return { found: true, value: shard.get(k) };
  };
  let keys: string[] | undefined;
  const p = new Proxy({} as { [k: string]: T }, {
    get(target, k, receiver) {
      if (typeof k === 'string') {
        const r = lookup(k);
        if (r.found) return r.value;
      }
      return Reflect.get(target, k, receiver);
    },
    has(target, k) {
      return (typeof k === 'string' && lookup(k).found) || Reflect.has(target, k);
    },
    ownKeys() {
      keys ??= keysOf(store);
      return [...keys];
    },
    getOwnPropertyDescriptor(_target, k) {
      if (typeof k !== 'string') return undefined;
      const r = lookup(k);
      return r.found ? { value: r.value, writable: true, enumerable: true, configurable: true } : undefined;
    },
    set: immutable,
    defineProperty: immutable,
    deleteProperty: immutable,
    setPrototypeOf: immutable,
  });
  stores.set(p, store as Store<unknown>);
  return p;
}

function storeOf<T>(m: { readonly [k: string]: T }): Store<T> {
  const s = stores.get(m) as Store<T> | undefined;
  if (s !== undefined) return s;
  return build(Object.keys(m).map((k) => [k, m[k] as T] as const));
}

function build<T>(entries: Iterable<readonly [string, T]>): Store<T> {
  const shards: (Map<string, T> | undefined)[] = new Array(SHARDS).fill(undefined);
  let size = 0;
  for (const [k, v] of entries) {
    const i = shardOf(k);
    const shard = (shards[i] ??= new Map());
    if (!shard.has(k)) size++;
    shard.set(k, v);
  }
  return { shards, size };
}

/** The map with `key` set to `value`; `m` (a plain object or a persistent map) is unchanged. */
export function pmapSet<T>(m: { readonly [k: string]: T }, key: string, value: T): { readonly [k: string]: T } {
  const store = storeOf(m);
  const i = shardOf(key);
  const old = store.shards[i];
  const shard = new Map(old ?? []);
  const added = !shard.has(key);
  shard.set(key, value);
  const shards = store.shards.slice();
  shards[i] = shard;
  return view({ shards, size: store.size + (added ? 1 : 0) });
}

/** A persistent map holding `entries` (later duplicates win). */
export function pmapFrom<T>(entries: Iterable<readonly [string, T]>): { readonly [k: string]: T } {
  return view(build(entries));
}

/** Number of keys, O(1) for a persistent map. */
export function pmapSize(m: { readonly [k: string]: unknown }): number {
  return stores.get(m)?.size ?? Object.keys(m).length;
}

/** The map without `key`; `m` is unchanged (the same map back when `key` is absent). */
export function pmapDelete<T>(m: { readonly [k: string]: T }, key: string): { readonly [k: string]: T } {
  const store = storeOf(m);
  const i = shardOf(key);
  const old = store.shards[i];
  if (old === undefined || !old.has(key)) return m;
  const shards = store.shards.slice();
  if (old.size === 1) shards[i] = undefined;
  else {
    const shard = new Map(old);
    shard.delete(key);
    shards[i] = shard;
  }
  return view({ shards, size: store.size - 1 });
}
