import t from 'tap';
import fc from 'fast-check';
import { pmapFrom, pmapSet, pmapSize } from '../../ledger/pmap.js';
import { encode, bytesEqual } from '../../ledger/encoding.js';

t.test('a persistent map reads like the plain object with the same entries', async (t) => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.string({ maxLength: 6 }), fc.integer()), { maxLength: 60 }), (writes) => {
    let m: { readonly [k: string]: number } = {};
    const plain: Record<string, number> = {};
    for (const [k, v] of writes) {
      m = pmapSet(m, k, v);
      Object.defineProperty(plain, k, { value: v, enumerable: true, writable: true, configurable: true });
    }
    const keys = Object.keys(plain);
    if (pmapSize(m) !== keys.length || Object.keys(m).length !== keys.length) return false;
    for (const k of keys) if (m[k] !== plain[k] || !Object.hasOwn(m, k) || !(k in m)) return false;
    if (Object.hasOwn(m, 'toString') !== Object.hasOwn(plain, 'toString')) return false;
    return bytesEqual(encode(m), encode(plain)) && JSON.stringify(Object.fromEntries(Object.entries(m).sort())) === JSON.stringify(Object.fromEntries(Object.entries(plain).sort()));
  }), { numRuns: 200 });
  t.same({ ...pmapSet({ a: 1 }, 'b', 2) }, { a: 1, b: 2 });
});

t.test('a write leaves every earlier version unchanged', async (t) => {
  const v1 = pmapSet({}, 'a', 1);
  const v2 = pmapSet(v1, 'a', 2);
  const v3 = pmapSet(v2, 'b', 3);
  t.same([v1.a, v2.a, v3.a, v3.b, Object.keys(v1).length, Object.keys(v2).length, Object.keys(v3).length], [1, 2, 2, 3, 1, 1, 2]);
  t.throws(() => { (v3 as Record<string, number>).a = 9; }, TypeError);
  t.throws(() => { delete (v3 as Record<string, number>).a; }, TypeError);
  t.equal(v3.a, 2);
});

t.test('iteration order depends on the content alone, not on the order of writes', async (t) => {
  fc.assert(fc.property(fc.uniqueArray(fc.string({ maxLength: 5 }), { maxLength: 40 }), (keys) => {
    let a: { readonly [k: string]: number } = {};
    let b: { readonly [k: string]: number } = {};
    for (const k of keys) a = pmapSet(a, k, 1);
    for (const k of [...keys].reverse()) b = pmapSet(b, k, 1);
    const c = pmapFrom(keys.map((k) => [k, 1] as const));
    return JSON.stringify(Object.keys(a)) === JSON.stringify(Object.keys(b)) && JSON.stringify(Object.keys(a)) === JSON.stringify(Object.keys(c));
  }), { numRuns: 200 });
  t.equal(Object.getPrototypeOf(pmapFrom([['x', 1]])), Object.prototype, 'encodes as a map');
});
