/**
 * Canonical CBOR (RFC 8949 §4.2.1): the encoding round-trips and is unique. Uniqueness is shown
 * from the decoder's side: any byte string the strict decoder accepts re-encodes to itself, so
 * no value has two accepted encodings.
 */
import t from 'tap';
import fc from 'fast-check';
import { decode, encode, cid, digest, bytesEqual, compareBytes, type CborValue } from '../../ledger/encoding.js';
import { CustodyError } from '../../proto/errors.js';

const RUNS = 200;

/** Safe-range bigints decode as numbers; compare values in that normal form. */
function normal(v: CborValue): CborValue {
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  if (v === null || typeof v !== 'object') return v;
  if (v instanceof Uint8Array) return v;
  if (Array.isArray(v)) return (v as CborValue[]).map(normal);
  const out: { [k: string]: CborValue } = {};
  for (const [k, x] of Object.entries(v)) if (x !== undefined) Object.defineProperty(out, k, { value: normal(x), enumerable: true, writable: true, configurable: true });
  return out;
}

const { value: arbValue } = fc.letrec<{ value: CborValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
    fc.bigInt({ min: -(1n << 64n), max: (1n << 64n) - 1n }),
    fc.oneof(fc.integer({ min: -300, max: 300 }), fc.constantFrom(23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, -24, -25, -257)),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.uint8Array({ maxLength: 40 }),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string({ unit: 'binary', maxLength: 8 }), tie('value'), { maxKeys: 5 }),
  ),
}));

function rejects(b: Uint8Array): boolean {
  try {
    decode(b);
    return false;
  } catch (e) {
    if (!(e instanceof CustodyError) || e.reason !== 'PAYLOAD_REJECTED') throw e;
    return true;
  }
}

t.test('every value round-trips through its canonical encoding', async (t) => {
  fc.assert(fc.property(arbValue, (v) => {
    const b = encode(v);
    const back = decode(b);
    t.same(back, normal(v));
    return bytesEqual(encode(back), b);
  }), { numRuns: RUNS });
});

t.test('text encodes as its head and its UTF-8 bytes, ASCII or not (RFC 8949 §3.1 major type 3)', async (t) => {
  const utf8 = new TextEncoder();
  // Mostly ASCII around the 0x7f / 0x80 boundary, sometimes one character of another plane.
  const unit = fc.oneof(fc.integer({ min: 0, max: 0x7f }).map((c) => String.fromCharCode(c)), fc.constantFrom('\u0080', '\u00ff', '\u07ff', '\u0800', '\uffff', '\u{10000}', '\u{1f600}'));
  const text = fc.oneof(fc.array(unit, { maxLength: 300 }).map((u) => u.join('')), fc.string({ unit: 'grapheme', maxLength: 40 }));
  t.doesNotThrow(() => {
    fc.assert(fc.property(text, (s) => {
      const body = utf8.encode(s);
      const head = body.length < 24 ? [0x60 | body.length] : body.length < 0x100 ? [0x78, body.length] : [0x79, body.length >> 8, body.length & 0xff];
      return bytesEqual(encode(s), new Uint8Array([...head, ...body])) && decode(encode(s)) === s;
    }), { numRuns: RUNS * 5 });
  }, `${RUNS * 5} strings encoded as head || UTF-8`);
});

t.test('encoding is unique: any accepted byte string re-encodes to itself', async (t) => {
  // Random bytes and single-byte mutations of valid encodings: the decoder either refuses them
  // with PAYLOAD_REJECTED or they are the canonical encoding of what they decode to.
  const mutated = fc.tuple(arbValue, fc.nat(), fc.integer({ min: 1, max: 255 })).map(([v, i, x]) => {
    const b = encode(v);
    const m = b.slice();
    m[i % m.length] = (m[i % m.length] as number) ^ x;
    return m;
  });
  let accepted = 0;
  let refused = 0;
  fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), mutated), (b) => {
    if (rejects(b)) return ++refused > 0;
    accepted++;
    return bytesEqual(encode(decode(b)), b);
  }), { numRuns: RUNS * 5 });
  t.equal(accepted + refused, RUNS * 5, 'every input was either refused or canonical');
  t.ok(refused > 0, `the decoder refused ${refused} non-canonical inputs`);
});

t.test('map keys encode in bytewise order of their encodings, so insertion order never matters', async (t) => {
  fc.assert(fc.property(fc.dictionary(fc.string({ maxLength: 6 }), fc.integer()), (d) => {
    const reversed = Object.fromEntries(Object.entries(d).reverse());
    return bytesEqual(encode(d), encode(reversed));
  }), { numRuns: RUNS });
  // "b" (0x61 0x62) sorts after "a" but a longer key sorts after any shorter one (§4.2.1).
  t.same([...encode({ aa: 1, b: 2 })], [0xa2, 0x61, 0x62, 0x02, 0x62, 0x61, 0x61, 0x01]);
});

t.test('non-canonical and out-of-subset encodings are refused PAYLOAD_REJECTED', async (t) => {
  const cases: [string, number[]][] = [
    ['integer 1 in a one-byte argument', [0x18, 0x01]],
    ['integer 255 in a two-byte argument', [0x19, 0x00, 0xff]],
    ['integer in an eight-byte argument that fits four', [0x1b, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]],
    ['text length not in shortest form', [0x78, 0x01, 0x61]],
    ['indefinite-length array', [0x9f, 0x01, 0xff]],
    ['indefinite-length text', [0x7f, 0x61, 0x61, 0xff]],
    ['map keys out of order', [0xa2, 0x61, 0x62, 0x01, 0x61, 0x61, 0x02]],
    ['duplicate map key', [0xa2, 0x61, 0x61, 0x01, 0x61, 0x61, 0x02]],
    ['integer map key', [0xa1, 0x01, 0x02]],
    ['half-precision float', [0xf9, 0x3c, 0x00]],
    ['double float', [0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]],
    ['undefined', [0xf7]],
    ['tag', [0xc1, 0x01]],
    ['invalid UTF-8 in text', [0x62, 0xc3, 0x28]],
    ['trailing byte', [0x01, 0x01]],
    ['truncated byte string', [0x45, 0x01, 0x02]],
    ['array claiming more items than bytes', [0x9a, 0xff, 0xff, 0xff, 0xff]],
    ['reserved additional information', [0x1c]],
    ['empty input', []],
  ];
  for (const [name, b] of cases) t.ok(rejects(new Uint8Array(b)), name);
});

t.test('values outside the data model have no encoding', async (t) => {
  for (const v of [1.5, NaN, Infinity, 2 ** 53, 1n << 64n, '\uD800', [undefined], new Map(), new Date(0)] as unknown[]) {
    t.throws(() => encode(v as CborValue), { name: 'CustodyError' }, String(v));
  }
});

t.test('a map key named __proto__ stays data and round-trips', async (t) => {
  const v = JSON.parse('{"__proto__": 1, "a": 2}') as CborValue;
  const back = decode(encode(v)) as Record<string, unknown>;
  t.equal(Object.getPrototypeOf(back), Object.prototype);
  t.same(Object.keys(back).sort(), ['__proto__', 'a']);
  t.ok(bytesEqual(encode(back as CborValue), encode(v)));
});

t.test('cid separates domains: the same value hashes differently under two tags', async (t) => {
  const v = { a: 1 };
  t.notOk(bytesEqual(cid('custody-ledger/v1/event', v), cid('custody-ledger/v1/receipt', v)));
  t.ok(bytesEqual(cid('x', v), digest('x', encode(v))));
  t.throws(() => digest('a\0b', new Uint8Array()));
  t.ok(compareBytes(new Uint8Array([1]), new Uint8Array([1, 0])) < 0);
});
