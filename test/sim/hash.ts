/**
 * A small, fast, non-cryptographic hash for the simulator's checkers and trace. Two 32-bit
 * murmur3-style lanes give a 53-bit value that fits a JS number exactly, so chains of hashes can
 * be stored in plain arrays. Collisions could only hide a violation, never invent one: equal
 * inputs always hash equal.
 */
import type { Entry } from '../../raft/core/types.js';

const TWO32 = 0x1_0000_0000;
const LOW21 = 0x1f_ffff;

function round(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class Hasher {
  private a: number;
  private b: number;

  constructor(seed = 0) {
    this.a = seed | 0;
    this.b = (seed ^ 0x5bd1e995) | 0;
  }

  /** Start over with a new seed (lets hot paths reuse one instance). */
  reset(seed: number): this {
    this.a = seed | 0;
    this.b = (seed ^ 0x5bd1e995) | 0;
    return this;
  }

  /** Feed a 32-bit integer. */
  u32(x: number): this {
    this.a = round(this.a, x | 0);
    this.b = round(this.b, (x ^ 0x2545f491) | 0);
    return this;
  }

  /** Feed a non-negative integer up to 2^53 (indexes, terms, other hashes). */
  num(x: number): this {
    return this.u32(x >>> 0).u32(Math.floor(x / TWO32));
  }

  bytes(b: Uint8Array): this {
    this.u32(b.length);
    let i = 0;
    for (; i + 4 <= b.length; i += 4) {
      this.u32((b[i] as number) | ((b[i + 1] as number) << 8) | ((b[i + 2] as number) << 16) | ((b[i + 3] as number) << 24));
    }
    let tail = 0;
    for (let s = 0; i < b.length; i++, s += 8) tail |= (b[i] as number) << s;
    return this.u32(tail);
  }

  str(s: string): this {
    this.u32(s.length);
    for (let i = 0; i < s.length; i++) this.u32(s.charCodeAt(i));
    return this;
  }

  /** A 53-bit digest. */
  value(): number {
    return fmix(this.a) * (LOW21 + 1) + (fmix(this.b ^ 0x68e31da4) & LOW21);
  }

  hex(): string {
    return `${fmix(this.a).toString(16).padStart(8, '0')}${fmix(this.b ^ 0x68e31da4).toString(16).padStart(8, '0')}`;
  }
}

/** Digest of one entry's content (term, type, data) — not its position. */
const scratch = new Hasher();

export function entryDigest(e: Entry): number {
  return scratch.reset(0x11).num(e.term).u32(e.type === 'conf' ? 2 : 1).bytes(e.data).value();
}

/** A hash of a few numbers, without allocating. */
export function hashNums(seed: number, a: number, b: number, c = 0): number {
  return scratch.reset(seed).num(a).num(b).num(c).value();
}

/**
 * The chain value of an entry: it covers the entry and, through `prev`, every entry before it.
 * Equal chains at one index mean identical log prefixes, which is how the Log Matching
 * property (§5.3) is checked in O(1) per entry.
 */
export function chainOf(prev: number, e: Entry): number {
  const d = entryDigest(e);
  return scratch.reset(0x22).num(prev).num(e.index).num(d).value();
}

/** The chain value of the empty log (index 0). */
export const chainGenesis = 0;
