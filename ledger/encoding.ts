/**
 * Canonical CBOR for every ledger object.
 *
 * Public API (stable; kernel/ and node/ import it):
 *
 *   type CborValue                         the data model (below)
 *   encode(value): Uint8Array              the one canonical encoding of `value`
 *   decode(bytes, opts?): CborValue        strict: throws CustodyError(PAYLOAD_REJECTED) unless
 *                                          `bytes` is exactly what `encode` would produce
 *   digest(domain, bytes): Uint8Array      sha256(domain tag || 0 || bytes), the domain-separated hash
 *   domainMessage(domain, bytes)           domain tag || 0 || bytes (what a signer signs)
 *   cid(domain, value): Uint8Array         digest(domain, encode(value)), a content identifier
 *   bytesEqual, compareBytes, toHex, fromHex
 *
 * The encoding is RFC 8949 §4.2.1 "Core Deterministic Encoding" restricted to a small subset:
 *
 *   CBOR major type      JS value
 *   0 / 1 (integers)     number (safe integer) or bigint outside the safe range, -2^64 .. 2^64-1
 *   2 (byte string)      Uint8Array
 *   3 (text string)      string (well-formed UTF-8 on the wire)
 *   4 (array)            CborValue[]
 *   5 (map)              plain object with text keys
 *   7 (simple 20/21/22)  false / true / null
 *
 * Floats, tags, undefined, indefinite lengths and non-text map keys are outside the subset and are
 * refused by both sides. §4.2.1 rules the decoder enforces, so that every value has exactly one
 * accepted byte string (and `cid` is therefore a function of the value, not of who encoded it):
 *   - arguments (integers, lengths) use the shortest form (§4.2.1, "preferred serialization");
 *   - no indefinite-length items (§4.2.1);
 *   - map keys sorted by the bytewise lexicographic order of their encodings, no duplicates
 *     (§4.2.1 first bullet; duplicates are invalid per §5.6);
 *   - no bytes after the top-level item.
 * An integer decodes to `number` when it is a safe integer and to `bigint` otherwise, so a decoded
 * value re-encodes to the same bytes and decoding is a function of the bytes.
 *
 * A map property whose value is `undefined` is treated as absent (as JSON does): optional fields of
 * TypeScript types encode without ceremony. Everything else outside the data model throws.
 */
import { createHash } from 'node:crypto';
import { CustodyError } from '../proto/errors.js';
import { ledger as limits } from '../proto/limits.js';

export type CborValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | readonly CborValue[]
  | { readonly [key: string]: CborValue | undefined };

export interface DecodeOptions {
  /** Largest input accepted; default `ledger.eventBytesMax`. Snapshots pass their own bound. */
  readonly bytesMax?: number;
}

const MAJOR_UINT = 0;
const MAJOR_NINT = 1;
const MAJOR_BYTES = 2;
const MAJOR_TEXT = 3;
const MAJOR_ARRAY = 4;
const MAJOR_MAP = 5;
const MAJOR_SIMPLE = 7;

const SIMPLE_FALSE = 20;
const SIMPLE_TRUE = 21;
const SIMPLE_NULL = 22;

const UINT64_MAX = (1n << 64n) - 1n;

const utf8Encoder = new TextEncoder();
// A lone surrogate has no UTF-8 form; TextEncoder would silently turn it into U+FFFD, so two
// different strings would share one encoding. Refuse it instead.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
// `fatal: true` rejects ill-formed UTF-8 (RFC 8949 §3.1: a text string must be valid UTF-8);
// `ignoreBOM: true` keeps a leading U+FEFF as content instead of silently dropping it, which
// would make two byte strings decode to one value.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// ------------------------------------------------------------------------------------------------
// Encoder
// ------------------------------------------------------------------------------------------------

class Writer {
  private buf: Uint8Array;
  private len = 0;

  constructor(size = 256) {
    this.buf = new Uint8Array(size);
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  byte(b: number): void {
    this.reserve(1);
    this.buf[this.len++] = b;
  }

  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  /** Text known to be ASCII (isAscii): one byte per UTF-16 code unit. */
  ascii(s: string): void {
    this.reserve(s.length);
    for (let i = 0; i < s.length; i++) this.buf[this.len++] = s.charCodeAt(i);
  }

  /** The initial byte and argument in the shortest form (§4.2.1). */
  head(major: number, arg: number | bigint): void {
    const m = major << 5;
    if (typeof arg === 'number') {
      if (arg < 24) return this.byte(m | arg);
      if (arg < 0x100) { this.byte(m | 24); return this.byte(arg); }
      if (arg < 0x10000) { this.byte(m | 25); this.byte(arg >>> 8); return this.byte(arg & 0xff); }
      if (arg < 0x100000000) {
        this.byte(m | 26);
        this.byte((arg >>> 24) & 0xff); this.byte((arg >>> 16) & 0xff);
        this.byte((arg >>> 8) & 0xff); return this.byte(arg & 0xff);
      }
      arg = BigInt(arg);
    }
    if (arg < 0x100000000n) return this.head(major, Number(arg));
    this.byte(m | 27);
    for (let shift = 56n; shift >= 0n; shift -= 8n) this.byte(Number((arg >> shift) & 0xffn));
  }

  result(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** Encoded map keys, memoized: field names repeat in every object of a kind. */
const keyCache = new Map<string, Uint8Array>();
const KEY_CACHE_MAX = 8192;

function encodeKey(key: string): Uint8Array {
  let enc = keyCache.get(key);
  if (enc === undefined) {
    if (LONE_SURROGATE.test(key)) throw new CustodyError('PAYLOAD_REJECTED', 'map key with a lone surrogate');
    const w = new Writer(key.length * 3 + 9);
    const b = utf8Encoder.encode(key);
    w.head(MAJOR_TEXT, b.length);
    w.bytes(b);
    enc = w.result();
    if (keyCache.size >= KEY_CACHE_MAX) keyCache.clear();
    keyCache.set(key, enc);
  }
  return enc;
}

function encodeInto(w: Writer, v: CborValue, depth: number): void {
  if (depth > DEPTH_MAX) throw new CustodyError('PAYLOAD_REJECTED', `value nested deeper than ${DEPTH_MAX}`);
  if (v === null) return w.byte((MAJOR_SIMPLE << 5) | SIMPLE_NULL);
  switch (typeof v) {
    case 'boolean':
      return w.byte((MAJOR_SIMPLE << 5) | (v ? SIMPLE_TRUE : SIMPLE_FALSE));
    case 'number':
      if (!Number.isSafeInteger(v)) throw new CustodyError('PAYLOAD_REJECTED', `not a safe integer: ${v}`);
      return v >= 0 ? w.head(MAJOR_UINT, v) : w.head(MAJOR_NINT, -1 - v);
    case 'bigint':
      if (v > UINT64_MAX || v < -1n - UINT64_MAX) throw new CustodyError('PAYLOAD_REJECTED', 'integer outside 64 bits');
      return v >= 0n ? w.head(MAJOR_UINT, v) : w.head(MAJOR_NINT, -1n - v);
    case 'string': {
      // ASCII text (ids, hex, state names: nearly every string the ledger holds) is its own UTF-8
      // and has no surrogates: written directly, without the regex and the encoder's copy.
      if (isAscii(v)) {
        w.head(MAJOR_TEXT, v.length);
        return w.ascii(v);
      }
      if (LONE_SURROGATE.test(v)) throw new CustodyError('PAYLOAD_REJECTED', 'text with a lone surrogate');
      const b = utf8Encoder.encode(v);
      w.head(MAJOR_TEXT, b.length);
      return w.bytes(b);
    }
    case 'object':
      break;
    default:
      throw new CustodyError('PAYLOAD_REJECTED', `a ${typeof v} has no canonical encoding`);
  }
  if (v instanceof Uint8Array) {
    w.head(MAJOR_BYTES, v.length);
    return w.bytes(v);
  }
  if (Array.isArray(v)) {
    const arr = v as readonly CborValue[];
    w.head(MAJOR_ARRAY, arr.length);
    for (const item of arr) {
      if (item === undefined) throw new CustodyError('PAYLOAD_REJECTED', 'undefined array element');
      encodeInto(w, item, depth + 1);
    }
    return;
  }
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) {
    throw new CustodyError('PAYLOAD_REJECTED', 'only plain objects encode as maps');
  }
  const obj = v as { readonly [key: string]: CborValue | undefined };
  const entries: { key: Uint8Array; value: CborValue }[] = [];
  for (const k of Object.keys(obj)) {
    const value = obj[k];
    if (value === undefined) continue;
    entries.push({ key: encodeKey(k), value });
  }
  entries.sort((a, b) => compareBytes(a.key, b.key));
  w.head(MAJOR_MAP, entries.length);
  for (const e of entries) {
    w.bytes(e.key);
    encodeInto(w, e.value, depth + 1);
  }
}

/** Nesting bound for both directions; ledger objects are a handful of levels deep. */
const DEPTH_MAX = 32;

/** The canonical (RFC 8949 §4.2.1) encoding of `v`. Throws CustodyError(PAYLOAD_REJECTED) outside the data model. */
export function encode(v: CborValue): Uint8Array {
  const w = new Writer();
  encodeInto(w, v, 0);
  return w.result();
}

// ------------------------------------------------------------------------------------------------
// Strict decoder
// ------------------------------------------------------------------------------------------------

function reject(what: string, at: number): never {
  throw new CustodyError('PAYLOAD_REJECTED', `non-canonical or malformed CBOR at byte ${at}: ${what}`);
}

class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  byte(): number {
    const b = this.buf[this.pos];
    if (b === undefined) reject('truncated', this.pos);
    this.pos++;
    return b;
  }

  take(n: number): Uint8Array {
    // Check against what is left before allocating: a forged length cannot make us allocate.
    if (n > this.buf.length - this.pos) reject('length runs past the end', this.pos);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** Reads the argument of an item and refuses any non-shortest form (§4.2.1). */
  argument(info: number, start: number): number | bigint {
    if (info < 24) return info;
    if (info === 24) {
      const v = this.byte();
      if (v < 24) reject('argument not in shortest form', start);
      return v;
    }
    if (info === 25) {
      const v = (this.byte() << 8) | this.byte();
      if (v < 0x100) reject('argument not in shortest form', start);
      return v;
    }
    if (info === 26) {
      const v = ((this.byte() << 24) >>> 0) + ((this.byte() << 16) | (this.byte() << 8) | this.byte());
      if (v < 0x10000) reject('argument not in shortest form', start);
      return v;
    }
    if (info === 27) {
      let v = 0n;
      for (let i = 0; i < 8; i++) v = (v << 8n) | BigInt(this.byte());
      if (v < 0x100000000n) reject('argument not in shortest form', start);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    return reject(info === 31 ? 'indefinite length' : `reserved additional information ${info}`, start);
  }

  length(info: number, start: number): number {
    const n = this.argument(info, start);
    if (typeof n === 'bigint') reject('length beyond any input', start);
    return n;
  }
}

function decodeItem(r: Reader, depth: number): CborValue {
  if (depth > DEPTH_MAX) reject(`nested deeper than ${DEPTH_MAX}`, r.pos);
  const start = r.pos;
  const ib = r.byte();
  const major = ib >> 5;
  const info = ib & 0x1f;
  switch (major) {
    case MAJOR_UINT: {
      const n = r.argument(info, start);
      return n;
    }
    case MAJOR_NINT: {
      const n = r.argument(info, start);
      if (typeof n === 'number') {
        const v = -1 - n;
        return Number.isSafeInteger(v) ? v : -1n - BigInt(n);
      }
      return -1n - n;
    }
    case MAJOR_BYTES:
      return r.take(r.length(info, start)).slice();
    case MAJOR_TEXT: {
      const b = r.take(r.length(info, start));
      try {
        return utf8Decoder.decode(b);
      } catch {
        return reject('text is not valid UTF-8', start);
      }
    }
    case MAJOR_ARRAY: {
      const n = r.length(info, start);
      // Every item takes at least one byte: bound the count by what is left before looping.
      if (n > r.buf.length - r.pos) reject('array longer than the input', start);
      const out: CborValue[] = [];
      for (let i = 0; i < n; i++) out.push(decodeItem(r, depth + 1));
      return out;
    }
    case MAJOR_MAP: {
      const n = r.length(info, start);
      if (n * 2 > r.buf.length - r.pos) reject('map longer than the input', start);
      const out: { [key: string]: CborValue } = {};
      let prevKey: Uint8Array | null = null;
      for (let i = 0; i < n; i++) {
        const keyStart = r.pos;
        const kb = r.byte();
        if (kb >> 5 !== MAJOR_TEXT) reject('map key is not a text string', keyStart);
        r.pos = keyStart;
        const key = decodeItem(r, depth + 1) as string;
        const keyBytes = r.buf.subarray(keyStart, r.pos);
        if (prevKey !== null && compareBytes(prevKey, keyBytes) >= 0) {
          reject('map keys not in canonical order or duplicated', keyStart);
        }
        prevKey = keyBytes;
        // defineProperty, not assignment: a key named "__proto__" stays an ordinary own property.
        Object.defineProperty(out, key, {
          value: decodeItem(r, depth + 1), enumerable: true, writable: true, configurable: true,
        });
      }
      return out;
    }
    case MAJOR_SIMPLE:
      if (info === SIMPLE_FALSE) return false;
      if (info === SIMPLE_TRUE) return true;
      if (info === SIMPLE_NULL) return null;
      return reject(`simple value or float ${info} outside the subset`, start);
    default:
      return reject(`major type ${major} (tag) outside the subset`, start);
  }
}

/**
 * Decodes exactly one canonical item spanning all of `bytes`. Any input that `encode` would not
 * have produced throws CustodyError(PAYLOAD_REJECTED), so `encode(decode(b))` equals `b` whenever
 * decode returns.
 */
export function decode(bytes: Uint8Array, opts: DecodeOptions = {}): CborValue {
  const max = opts.bytesMax ?? limits.eventBytesMax;
  if (bytes.length > max) throw new CustodyError('PAYLOAD_REJECTED', `${bytes.length} bytes exceed the bound of ${max}`);
  const r = new Reader(bytes);
  const v = decodeItem(r, 0);
  if (r.pos !== bytes.length) reject('trailing bytes', r.pos);
  return v;
}

// ------------------------------------------------------------------------------------------------
// Hashing and byte helpers
// ------------------------------------------------------------------------------------------------

/**
 * sha256(tag || 0x00 || bytes). The tag names what is hashed (an event, a decision's signing
 * payload, a receipt), so a hash of one kind can never be presented as another; the zero byte ends
 * the tag, which contains none, so no (tag, bytes) pair collides with another by shifting bytes.
 */
export function digest(domain: string, bytes: Uint8Array): Uint8Array {
  if (domain.length === 0 || domain.includes('\0')) throw new Error(`bad domain tag ${JSON.stringify(domain)}`);
  // node:crypto (OpenSSL) SHA-256: the same function as any other implementation, several times
  // faster than a JavaScript one on the state-root path, which hashes the whole state.
  return new Uint8Array(createHash('sha256').update(domain).update(ZERO_BYTE).update(bytes).digest());
}

/**
 * tag || 0x00 || bytes: the message a signer signs under a domain (decisions, node statements),
 * so digest(domain, bytes) is exactly the SHA-256 of what was signed.
 */
export function domainMessage(domain: string, bytes: Uint8Array): Uint8Array {
  if (domain.length === 0 || domain.includes('\0')) throw new Error(`bad domain tag ${JSON.stringify(domain)}`);
  const tag = utf8Encoder.encode(domain);
  const out = new Uint8Array(tag.length + 1 + bytes.length);
  out.set(tag, 0);
  out.set(bytes, tag.length + 1);
  return out;
}

/** The content identifier of a value: digest(domain, encode(value)). */
export function cid(domain: string, value: CborValue): Uint8Array {
  return digest(domain, encode(value));
}

const ZERO_BYTE = new Uint8Array([0]);

/** Bytewise lexicographic order; a proper prefix sorts first (the §4.2.1 key order). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && compareBytes(a, b) === 0;
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
}

/** Strict hex: even length, [0-9a-f] only (one spelling per byte string). */
export function fromHex(s: string): Uint8Array {
  if (s.length % 2 !== 0 || !/^[0-9a-f]*$/.test(s)) throw new CustodyError('PAYLOAD_REJECTED', 'not lowercase hex');
  return new Uint8Array(Buffer.from(s, 'hex'));
}
