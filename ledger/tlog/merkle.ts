/**
 * RFC 9162 §2.1 Merkle trees: hashing, the Merkle Tree Hash, inclusion and consistency proofs,
 * and an incremental tree that keeps only its right edge. Pure: no I/O, no clock, no randomness;
 * the kernel, `custody evidence verify` and a witness all verify with these functions.
 *
 *   leafHash(d) = SHA-256(0x00 || d)        nodeHash(l, r) = SHA-256(0x01 || l || r)
 *   MTH({}) = SHA-256()                     MTH(D[n]) = nodeHash(MTH(D[0:k]), MTH(D[k:n])),
 *                                           k the largest power of two smaller than n
 *
 * API
 *   leafHash, nodeHash, emptyRoot, rootOf(leafHashes)
 *   inclusionProof(index, size, read) / consistencyProof(size1, size2, read)
 *       generate (§2.1.3.1, §2.1.4.1). `read(level, index)` returns the root of the perfect subtree
 *       holding leaves [index * 2^level, (index + 1) * 2^level): a node stores those as its
 *       CompactTree completes them (see `append`) and serves proofs in O(log n) reads.
 *   verifyInclusion / verifyConsistency      §2.1.3.2 / §2.1.4.2; false for anything that does not
 *                                            verify, malformed input included
 *   requireInclusion / requireConsistency    the same, throwing CustodyError(TLOG_PROOF_INVALID)
 *   CompactTree                              append-only tree keeping one hash per set bit of its
 *                                            size; root(), toBytes() / CompactTree.fromBytes()
 *   memoryReader(leafHashes)                 a NodeReader over leaf hashes held in memory
 *
 * Sizes and indexes are JavaScript integers bounded by limits.tlog.treeSizeMax (2^53 - 1); the
 * bit arithmetic below therefore divides instead of shifting (shifts truncate to 32 bits).
 */
import { createHash } from 'node:crypto';
import { CustodyError, assert } from '../../proto/errors.js';
import { tlog as limits } from '../../proto/limits.js';
import { bytesEqual } from '../encoding.js';

export const HASH_BYTES = 32;

const LEAF_PREFIX = new Uint8Array([0x00]);
const NODE_PREFIX = new Uint8Array([0x01]);

/** RFC 9162 §2.1.1: the hash of one leaf's data. */
export function leafHash(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(LEAF_PREFIX).update(data).digest());
}

/** RFC 9162 §2.1.1: the hash of an interior node. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest());
}

/** The Merkle Tree Hash of the empty tree: SHA-256 of the empty string. */
export function emptyRoot(): Uint8Array {
  return new Uint8Array(createHash('sha256').digest());
}

/** Whether `n` is an integer tree size or index this module accepts. */
export function isTreeSize(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0 && n <= limits.treeSizeMax;
}

function isHash(h: unknown): h is Uint8Array {
  return h instanceof Uint8Array && h.length === HASH_BYTES;
}

/** The largest power of two strictly smaller than n (n >= 2). */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

const odd = (x: number): boolean => x % 2 === 1;
const half = (x: number): number => Math.floor(x / 2);

/** The Merkle Tree Hash over leaf hashes (already hashed with `leafHash`). */
export function rootOf(leafHashes: readonly Uint8Array[]): Uint8Array {
  const tree = new CompactTree();
  for (const h of leafHashes) tree.append(h);
  return tree.root();
}

// ------------------------------------------------------------------------------------------------
// Proof generation
// ------------------------------------------------------------------------------------------------

/** Root of the perfect subtree of 2^level leaves starting at leaf index * 2^level. */
export type NodeReader = (level: number, index: number) => Uint8Array;

/**
 * MTH(D[start:end]) for a range that starts on a multiple of the largest power of two not above
 * its length -- every range the RFC's PATH and SUBPROOF recursions visit has this shape, so the
 * range splits into at most log2(n) perfect subtrees read from storage.
 */
function rangeRoot(start: number, end: number, read: NodeReader): Uint8Array {
  const size = end - start;
  assert(size >= 1, 'rangeRoot over an empty range');
  let level = 0;
  while (2 ** (level + 1) <= size) level++;
  const width = 2 ** level;
  assert(start % width === 0, `rangeRoot: [${start}, ${end}) is not aligned`);
  const left = read(level, start / width);
  assert(isHash(left), `NodeReader returned no hash for (${level}, ${start / width})`);
  return width === size ? left : nodeHash(left, rangeRoot(start + width, end, read));
}

function checkSizes(what: string, ok: boolean): void {
  if (!ok) throw new CustodyError('INVALID_ARGUMENT', what);
}

/** RFC 9162 §2.1.3.1 PATH(index, D[0:size]): the audit path, leaf side first. */
export function inclusionProof(index: number, size: number, read: NodeReader): Uint8Array[] {
  checkSizes(`inclusion proof of leaf ${index} in a tree of ${size}`, isTreeSize(size) && isTreeSize(index) && index < size);
  const path: Uint8Array[] = [];
  // PATH(m, D[a:a+n]) walked from the root down; siblings are collected and reversed at the end.
  let start = 0;
  let n = size;
  let m = index;
  while (n > 1) {
    const k = splitPoint(n);
    if (m < k) {
      path.push(rangeRoot(start + k, start + n, read));
      n = k;
    } else {
      path.push(rangeRoot(start, start + k, read));
      start += k;
      m -= k;
      n -= k;
    }
  }
  return path.reverse();
}

/** RFC 9162 §2.1.4.1 PROOF(size1, D[0:size2]); empty when size1 is 0 or equals size2. */
export function consistencyProof(size1: number, size2: number, read: NodeReader): Uint8Array[] {
  checkSizes(`consistency proof from ${size1} to ${size2}`, isTreeSize(size1) && isTreeSize(size2) && size1 <= size2);
  if (size1 === 0 || size1 === size2) return [];
  // SUBPROOF(m, D[start:start+n], b) from the root down; nodes are collected and reversed.
  const out: Uint8Array[] = [];
  let start = 0;
  let n = size2;
  let m = size1;
  let complete = true;
  for (;;) {
    if (m === n) {
      if (!complete) out.push(rangeRoot(start, start + n, read));
      break;
    }
    const k = splitPoint(n);
    if (m <= k) {
      out.push(rangeRoot(start + k, start + n, read));
      n = k;
    } else {
      out.push(rangeRoot(start, start + k, read));
      start += k;
      m -= k;
      n -= k;
      complete = false;
    }
  }
  return out.reverse();
}

/** A NodeReader over leaf hashes in memory (tests, bundles built offline, small trees). */
export function memoryReader(leafHashes: readonly Uint8Array[]): NodeReader {
  const levels: Uint8Array[][] = [leafHashes.slice()];
  return (level, index) => {
    while (levels.length <= level) {
      const below = levels[levels.length - 1]!;
      const next: Uint8Array[] = [];
      for (let i = 0; i + 1 < below.length; i += 2) next.push(nodeHash(below[i]!, below[i + 1]!));
      levels.push(next);
    }
    const h = levels[level]![index];
    assert(h !== undefined, `memoryReader: no perfect subtree (${level}, ${index})`);
    return h;
  };
}

// ------------------------------------------------------------------------------------------------
// Verification
// ------------------------------------------------------------------------------------------------

function proofShapeOk(proof: readonly Uint8Array[]): boolean {
  return Array.isArray(proof) && proof.length <= limits.proofHashesMax && proof.every(isHash);
}

/**
 * RFC 9162 §2.1.3.2. True only when `proof` proves that `leaf` (a leaf hash) is leaf `index` of
 * the tree of `size` leaves whose root is `root`. `size` and `root` must come together from one
 * certified checkpoint (see checkpoint.ts requireIncluded): the proof alone does not bind a root
 * to a size (the path of leaf 0 in a tree of 5 also fits size 6 against the same root).
 */
export function verifyInclusion(index: number, size: number, leaf: Uint8Array, proof: readonly Uint8Array[], root: Uint8Array): boolean {
  if (!isTreeSize(index) || !isTreeSize(size) || index >= size) return false;
  if (!isHash(leaf) || !isHash(root) || !proofShapeOk(proof)) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      r = nodeHash(p, r);
      while (!odd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && bytesEqual(r, root);
}

/**
 * RFC 9162 §2.1.4.2. True only when `proof` proves that the tree of `size1` leaves with root
 * `root1` is a prefix of the tree of `size2` leaves with root `root2`. A size1 of 0 is consistent
 * with everything (empty proof); size1 === size2 needs an empty proof and equal roots.
 */
export function verifyConsistency(size1: number, size2: number, root1: Uint8Array, root2: Uint8Array, proof: readonly Uint8Array[]): boolean {
  if (!isTreeSize(size1) || !isTreeSize(size2) || size1 > size2) return false;
  if (!isHash(root1) || !isHash(root2) || !proofShapeOk(proof)) return false;
  if (size1 === 0) return proof.length === 0;
  if (size1 === size2) return proof.length === 0 && bytesEqual(root1, root2);
  if (proof.length === 0) return false;
  const path = splitPoint(size1 + 1) === size1 ? [root1, ...proof] : [...proof];
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (!odd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && bytesEqual(fr, root1) && bytesEqual(sr, root2);
}

/** verifyInclusion, throwing TLOG_PROOF_INVALID when it does not hold. */
export function requireInclusion(index: number, size: number, leaf: Uint8Array, proof: readonly Uint8Array[], root: Uint8Array): void {
  if (!verifyInclusion(index, size, leaf, proof, root)) {
    throw new CustodyError('TLOG_PROOF_INVALID', `leaf ${index} is not proven in the tree of ${size} with this root`);
  }
}

/** verifyConsistency, throwing TLOG_PROOF_INVALID when it does not hold. */
export function requireConsistency(size1: number, size2: number, root1: Uint8Array, root2: Uint8Array, proof: readonly Uint8Array[]): void {
  if (!verifyConsistency(size1, size2, root1, root2, proof)) {
    throw new CustodyError('TLOG_PROOF_INVALID', `the tree of ${size1} is not proven a prefix of the tree of ${size2}`);
  }
}

// ------------------------------------------------------------------------------------------------
// Incremental tree
// ------------------------------------------------------------------------------------------------

/** A perfect subtree completed by an append: store it to serve proofs (see NodeReader). */
export interface CompletedNode { level: number; index: number; hash: Uint8Array }

const STATE_VERSION = 1;
const STATE_HEADER_BYTES = 1 + 8;

function popcount(n: number): number {
  let c = 0;
  for (let x = n; x > 0; x = half(x)) if (odd(x)) c++;
  return c;
}

/**
 * The right edge of an append-only tree (a compact range over [0, size)): one perfect subtree
 * hash per set bit of `size`, largest first. Appending merges equal-sized neighbours, so each
 * append costs O(1) amortized hashes and the state stays O(log n).
 *
 * Persisted form: version (1 byte) || size (u64 big-endian) || popcount(size) hashes, largest
 * subtree first. `fromBytes` refuses any other length.
 */
export class CompactTree {
  #size = 0;
  /** Perfect subtree roots, largest (leftmost) first; hashes[i] covers 2^levels[i] leaves. */
  #hashes: Uint8Array[] = [];
  #levels: number[] = [];

  get size(): number {
    return this.#size;
  }

  /** Appends one leaf hash; returns every perfect subtree it completed, the leaf itself first. */
  append(leaf: Uint8Array): CompletedNode[] {
    assert(isHash(leaf), 'CompactTree.append takes a 32-byte leaf hash');
    if (this.#size >= limits.treeSizeMax) throw new CustodyError('LIMIT_EXCEEDED', 'the Merkle tree is at its size bound');
    const index = this.#size;
    const done: CompletedNode[] = [{ level: 0, index, hash: leaf }];
    let hash = leaf;
    let level = 0;
    while (this.#levels.length > 0 && this.#levels[this.#levels.length - 1] === level) {
      const left = this.#hashes.pop()!;
      this.#levels.pop();
      hash = nodeHash(left, hash);
      level++;
      done.push({ level, index: Math.floor(index / 2 ** level), hash });
    }
    this.#hashes.push(hash);
    this.#levels.push(level);
    this.#size++;
    return done;
  }

  /** The Merkle Tree Hash of the leaves appended so far. */
  root(): Uint8Array {
    if (this.#hashes.length === 0) return emptyRoot();
    let r = this.#hashes[this.#hashes.length - 1]!;
    for (let i = this.#hashes.length - 2; i >= 0; i--) r = nodeHash(this.#hashes[i]!, r);
    return r;
  }

  toBytes(): Uint8Array {
    const out = new Uint8Array(STATE_HEADER_BYTES + HASH_BYTES * this.#hashes.length);
    const view = new DataView(out.buffer);
    view.setUint8(0, STATE_VERSION);
    view.setBigUint64(1, BigInt(this.#size));
    this.#hashes.forEach((h, i) => out.set(h, STATE_HEADER_BYTES + HASH_BYTES * i));
    return out;
  }

  static fromBytes(bytes: Uint8Array): CompactTree {
    const bad = (why: string): never => {
      throw new CustodyError('TLOG_STATE_INVALID', `Merkle tree state: ${why}`);
    };
    if (bytes.length < STATE_HEADER_BYTES) bad('truncated header');
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (view.getUint8(0) !== STATE_VERSION) bad(`unknown version ${view.getUint8(0)}`);
    const big = view.getBigUint64(1);
    if (big > BigInt(limits.treeSizeMax)) bad('size above the tree size bound');
    const size = Number(big);
    const count = popcount(size);
    if (bytes.length !== STATE_HEADER_BYTES + HASH_BYTES * count) bad(`expected ${count} hashes for size ${size}`);
    const t = new CompactTree();
    t.#size = size;
    // Set bits of size, most significant first, give the levels of the stored subtrees.
    const levels: number[] = [];
    for (let x = size, level = 0; x > 0; x = half(x), level++) if (odd(x)) levels.unshift(level);
    t.#levels = levels;
    t.#hashes = levels.map((_, i) => bytes.slice(STATE_HEADER_BYTES + HASH_BYTES * i, STATE_HEADER_BYTES + HASH_BYTES * (i + 1)));
    return t;
  }
}
