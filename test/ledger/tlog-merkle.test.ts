/**
 * ledger/tlog/merkle.ts against RFC 9162 §2.1: the published vectors (test/ledger/tlog-vectors.json),
 * a second implementation written here from the RFC's recursive definitions (MTH, PATH, PROOF,
 * SUBPROOF over lists of leaf hashes), and fast-check properties.
 *
 * A failure prints fast-check's seed and path; replay it exactly with
 *   FC_SEED=<seed> FC_PATH=<path> npx tap dist/test/ledger/tlog-merkle.test.js
 * FC_RUNS=<n> changes the number of runs per property (default 200).
 */
import t from 'tap';
import fc from 'fast-check';
import { VECTORS, fcRun, refused } from './tlog-fixtures.js';
import { createHash } from 'node:crypto';
import {
  CompactTree, consistencyProof, emptyRoot, inclusionProof, leafHash, memoryReader, nodeHash, requireConsistency, requireInclusion,
  rootOf, verifyConsistency, verifyInclusion, type NodeReader,
} from '../../ledger/tlog/index.js';
import { bytesEqual, toHex } from '../../ledger/encoding.js';

const RUN = fcRun(200);
const RUNS = RUN.numRuns;

const V = VECTORS.merkle;
const hex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));
const hexes = (p: readonly Uint8Array[]): string[] => p.map(toHex);

const LEAF_COUNT = 3000;
const LEAVES = Array.from({ length: LEAF_COUNT }, (_, i) => leafHash(new TextEncoder().encode(`entry ${i}`)));
const READ = memoryReader(LEAVES);

// ------------------------------------------------------------------------------------------------
// The reference: RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1 transcribed literally, over leaf hashes.
// Deliberately naive (recomputes every subtree) and sharing no code with the module.
// ------------------------------------------------------------------------------------------------
const sha = (...parts: Uint8Array[]): Uint8Array => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};
const largestPow2Below = (n: number): number => 2 ** Math.ceil(Math.log2(n) - 1);
function refMTH(D: readonly Uint8Array[]): Uint8Array {
  if (D.length === 0) return sha();
  if (D.length === 1) return D[0]!;
  const k = largestPow2Below(D.length);
  return sha(new Uint8Array([1]), refMTH(D.slice(0, k)), refMTH(D.slice(k)));
}
function refPATH(m: number, D: readonly Uint8Array[]): Uint8Array[] {
  if (D.length === 1) return [];
  const k = largestPow2Below(D.length);
  return m < k ? [...refPATH(m, D.slice(0, k)), refMTH(D.slice(k))] : [...refPATH(m - k, D.slice(k)), refMTH(D.slice(0, k))];
}
function refSUBPROOF(m: number, D: readonly Uint8Array[], b: boolean): Uint8Array[] {
  const n = D.length;
  if (m === n) return b ? [] : [refMTH(D)];
  const k = largestPow2Below(n);
  return m <= k ? [...refSUBPROOF(m, D.slice(0, k), b), refMTH(D.slice(k))] : [...refSUBPROOF(m - k, D.slice(k), false), refMTH(D.slice(0, k))];
}
const refPROOF = (m: number, D: readonly Uint8Array[]): Uint8Array[] => (m === 0 || m === D.length ? [] : refSUBPROOF(m, D, true));
/** The same MTH over LEAVES[start:end], remembering every range it computed (roots of all sizes in O(n log n)). */
const refMemo = new Map<string, Uint8Array>();
function refRange(start: number, end: number): Uint8Array {
  const key = `${start}:${end}`;
  let h = refMemo.get(key);
  if (h === undefined) {
    const n = end - start;
    const k = n > 1 ? largestPow2Below(n) : 0;
    h = n === 0 ? sha() : n === 1 ? LEAVES[start]! : sha(new Uint8Array([1]), refRange(start, start + k), refRange(start + k, end));
    refMemo.set(key, h);
  }
  return h;
}

t.test('the reference implementation agrees with the published roots', async (t) => {
  t.equal(largestPow2Below(5), 4);
  t.equal(largestPow2Below(8), 4);
  t.equal(largestPow2Below(2), 1);
  const leaves = V.leaves.map((l) => leafHash(hex(l)));
  for (let n = 0; n <= 8; n++) t.equal(toHex(refMTH(leaves.slice(0, n))), V.roots[n], `reference MTH of ${n} leaves`);
});

// ------------------------------------------------------------------------------------------------
// Published vectors
// ------------------------------------------------------------------------------------------------
t.test('vectors: leaf hashes, roots of every size 0..8 and the empty tree', async (t) => {
  const leaves = V.leaves.map((l) => leafHash(hex(l)));
  t.same(hexes(leaves), V.leafHashes, 'leaf hashes');
  t.equal(toHex(emptyRoot()), V.roots[0], 'empty root');
  for (let n = 0; n <= 8; n++) t.equal(toHex(rootOf(leaves.slice(0, n))), V.roots[n], `MTH of ${n} leaves`);
});

t.test('vectors: inclusion proofs are generated exactly and verify; corruptions are refused', async (t) => {
  const leaves = V.leaves.map((l) => leafHash(hex(l)));
  const read = memoryReader(leaves);
  for (const v of V.inclusion) {
    const proof = v.proof.map(hex);
    const root = hex(V.roots[v.size]!);
    const leaf = leaves[v.index]!;
    t.same(hexes(inclusionProof(v.index, v.size, read)), v.proof, `PATH(${v.index}, ${v.size})`);
    t.ok(verifyInclusion(v.index, v.size, leaf, proof, root), `leaf ${v.index} of ${v.size} verifies`);
    const probes: [string, boolean][] = [
      ['index - 1', verifyInclusion(v.index - 1, v.size, leaf, proof, root)],
      ['index + 1', verifyInclusion(v.index + 1, v.size, leaf, proof, root)],
      ['index ^ 2', verifyInclusion(v.index ^ 2, v.size, leaf, proof, root)],
      ['size * 2', verifyInclusion(v.index, v.size * 2, leaf, proof, root)],
      ['size / 2', verifyInclusion(v.index, Math.floor(v.size / 2), leaf, proof, root)],
      ['wrong leaf', verifyInclusion(v.index, v.size, leafHash(new TextEncoder().encode('WrongLeaf')), proof, root)],
      ['empty root', verifyInclusion(v.index, v.size, leaf, proof, emptyRoot())],
      ['trailing root', verifyInclusion(v.index, v.size, leaf, [...proof, root], root)],
      ['preceding root', verifyInclusion(v.index, v.size, leaf, [root, ...proof], root)],
      ['short hash', verifyInclusion(v.index, v.size, leaf, [...proof, new Uint8Array(31)], root)],
      ...proof.map((_, i): [string, boolean] => {
        const bad = proof.map((p) => p.slice());
        bad[i]![0]! ^= 8;
        return [`proof[${i}] bit 3`, verifyInclusion(v.index, v.size, leaf, bad, root)];
      }),
      ...(proof.length > 0 ? [['removed component', verifyInclusion(v.index, v.size, leaf, proof.slice(0, -1), root)] as [string, boolean]] : []),
    ];
    for (const [what, ok] of probes) t.notOk(ok, `leaf ${v.index} of ${v.size}: ${what} refused`);
  }
});

t.test('vectors: consistency proofs are generated exactly and verify; corruptions are refused', async (t) => {
  const leaves = V.leaves.map((l) => leafHash(hex(l)));
  const read = memoryReader(leaves);
  for (const v of V.consistency) {
    const proof = v.proof.map(hex);
    const r1 = hex(V.roots[v.size1]!);
    const r2 = hex(V.roots[v.size2]!);
    t.same(hexes(consistencyProof(v.size1, v.size2, read)), v.proof, `PROOF(${v.size1}, ${v.size2})`);
    t.ok(verifyConsistency(v.size1, v.size2, r1, r2, proof), `${v.size1} -> ${v.size2} verifies`);
    if (proof.length === 0) continue;
    const probes: [string, boolean][] = [
      ['size1 - 1', verifyConsistency(v.size1 - 1, v.size2, r1, r2, proof)],
      ['size1 + 1', verifyConsistency(v.size1 + 1, v.size2, r1, r2, proof)],
      ['size1 ^ 2', verifyConsistency(v.size1 ^ 2, v.size2, r1, r2, proof)],
      ['size2 * 2', verifyConsistency(v.size1, v.size2 * 2, r1, r2, proof)],
      ['size2 / 2', verifyConsistency(v.size1, Math.floor(v.size2 / 2), r1, r2, proof)],
      ['swapped roots', verifyConsistency(v.size1, v.size2, r2, r1, proof)],
      ['empty proof', verifyConsistency(v.size1, v.size2, r1, r2, [])],
      ['trailing root2', verifyConsistency(v.size1, v.size2, r1, r2, [...proof, r2])],
      ['preceding root1', verifyConsistency(v.size1, v.size2, r1, r2, [r1, ...proof])],
      ['preceding proof[0]', verifyConsistency(v.size1, v.size2, r1, r2, [proof[0]!, ...proof])],
      ['truncated', verifyConsistency(v.size1, v.size2, r1, r2, proof.slice(0, -1))],
      ...proof.map((_, i): [string, boolean] => {
        const bad = proof.map((p) => p.slice());
        bad[i]![0]! ^= 16;
        return [`proof[${i}] bit 4`, verifyConsistency(v.size1, v.size2, r1, r2, bad)];
      }),
    ];
    for (const [what, ok] of probes) t.notOk(ok, `${v.size1} -> ${v.size2}: ${what} refused`);
  }
});

t.test('edge cases: empty and equal sizes, out-of-range arguments, the throwing forms', async (t) => {
  const a = leafHash(new Uint8Array([1]));
  const b = leafHash(new Uint8Array([2]));
  t.ok(verifyConsistency(0, 0, a, b, []), 'the empty tree is consistent with anything');
  t.ok(verifyConsistency(0, 5, a, b, []), 'size 0 to 5 with an empty proof');
  t.notOk(verifyConsistency(0, 5, a, b, [a]), 'size 0 with a non-empty proof');
  t.ok(verifyConsistency(3, 3, a, a, []), 'equal sizes, equal roots');
  t.notOk(verifyConsistency(3, 3, a, b, []), 'equal sizes, different roots');
  t.notOk(verifyConsistency(3, 3, a, a, [a]), 'equal sizes with a proof');
  t.notOk(verifyConsistency(4, 3, a, b, [a]), 'time travel');
  t.notOk(verifyInclusion(0, 0, a, [], a), 'no leaf in the empty tree');
  t.notOk(verifyInclusion(1, 1, a, [], a), 'index past the end');
  t.notOk(verifyInclusion(-1, 1, a, [], a), 'negative index');
  t.notOk(verifyInclusion(0.5, 1, a, [], a), 'fractional index');
  t.notOk(verifyInclusion(0, 2 ** 60, a, [], a), 'size above the bound');
  t.notOk(verifyInclusion(0, 2, a, new Array(65).fill(b), a), 'proof above the hash bound');
  t.ok(verifyInclusion(0, 1, a, [], a), 'a one-leaf tree is its leaf');
  t.notOk(verifyInclusion(0, 1, a, [], new Uint8Array(0)), 'root of the wrong length');
  t.throws(() => requireInclusion(0, 1, a, [], b), refused('TLOG_PROOF_INVALID'));
  t.throws(() => requireConsistency(1, 2, a, b, []), refused('TLOG_PROOF_INVALID'));
  t.doesNotThrow(() => requireInclusion(0, 1, a, [], a));
  const read = memoryReader([a, b]);
  t.throws(() => inclusionProof(2, 2, read), refused('INVALID_ARGUMENT'));
  t.throws(() => consistencyProof(3, 2, read), refused('INVALID_ARGUMENT'));
});

// ------------------------------------------------------------------------------------------------
// The incremental tree
// ------------------------------------------------------------------------------------------------

t.test(`CompactTree: root equals the reference MTH for every size 0..${LEAF_COUNT}, across persist/restore`, async (t) => {
  let tree = new CompactTree();
  const stored = new Map<string, Uint8Array>();
  let mismatches = 0;
  for (let n = 0; n <= LEAF_COUNT; n++) {
    if (!bytesEqual(tree.root(), refRange(0, n))) mismatches++;
    const bytes = tree.toBytes();
    const restored = CompactTree.fromBytes(bytes);
    if (restored.size !== n || !bytesEqual(restored.root(), tree.root()) || !bytesEqual(restored.toBytes(), bytes)) mismatches++;
    tree = restored; // continue from the restored copy: a restart at every size
    if (n < LEAF_COUNT) for (const c of tree.append(LEAVES[n]!)) stored.set(`${c.level}/${c.index}`, c.hash);
  }
  t.equal(mismatches, 0, `no root differs over ${LEAF_COUNT + 1} sizes`);
  // The completed nodes are exactly what a store needs to serve every proof.
  const fromStore: NodeReader = (level, index) => stored.get(`${level}/${index}`)!;
  let proofMismatches = 0;
  for (const [m, n] of [[0, 1], [5, 8], [999, 1000], [1234, 2999], [2047, 3000], [1, 3000]] as const) {
    if (!bytesEqual(Buffer.concat(inclusionProof(m, n, fromStore)), Buffer.concat(inclusionProof(m, n, READ)))) proofMismatches++;
    if (!bytesEqual(Buffer.concat(consistencyProof(m + 1, n, fromStore)), Buffer.concat(consistencyProof(m + 1, n, READ)))) proofMismatches++;
  }
  t.equal(proofMismatches, 0, 'proofs served from completed nodes equal proofs from the leaves');
  // Perfect subtrees of N leaves: floor(N / 2^l) at each level l, which sums to 2N - popcount(N).
  t.equal(stored.size, 2 * LEAF_COUNT - popcountOf(LEAF_COUNT), 'one stored node per completed perfect subtree');
});

function popcountOf(n: number): number {
  let c = 0;
  for (let x = n; x > 0; x = Math.floor(x / 2)) c += x % 2;
  return c;
}

t.test('CompactTree.fromBytes refuses malformed state', async (t) => {
  const tree = new CompactTree();
  for (const l of LEAVES.slice(0, 5)) tree.append(l);
  const good = tree.toBytes();
  const bad: [string, Uint8Array][] = [
    ['empty', new Uint8Array(0)],
    ['truncated', good.subarray(0, good.length - 1)],
    ['extra byte', Uint8Array.from([...good, 0])],
    ['unknown version', Uint8Array.from([2, ...good.subarray(1)])],
    ['size not matching the hashes', (() => { const b = good.slice(); b[8] = 7; return b; })()],
    ['size above the bound', (() => { const b = good.slice(); b[1] = 0xff; return b; })()],
  ];
  for (const [what, bytes] of bad) {
    t.throws(() => CompactTree.fromBytes(bytes), refused('TLOG_STATE_INVALID'), what);
  }
});

// ------------------------------------------------------------------------------------------------
// Properties
// ------------------------------------------------------------------------------------------------
const sizeAndIndex = fc.integer({ min: 1, max: LEAF_COUNT }).chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 0, max: n - 1 })));
const flipBit = (b: Uint8Array, bit: number): Uint8Array => {
  const c = b.slice();
  c[Math.floor(bit / 8) % c.length]! ^= 1 << (bit % 8);
  return c;
};

t.test('property: every inclusion proof equals the RFC PATH, verifies, and no flipped bit verifies', async (t) => {
  let checked = 0;
  fc.assert(fc.property(sizeAndIndex, fc.nat(), fc.nat(), ({ 0: n, 1: m }, bit, other) => {
    const proof = inclusionProof(m, n, READ);
    const root = refRange(0, n);
    const leaf = LEAVES[m]!;
    if (!bytesEqual(Buffer.concat(proof), Buffer.concat(refPATH(m, LEAVES.slice(0, n))))) return false;
    if (!verifyInclusion(m, n, leaf, proof, root)) return false;
    if (verifyInclusion(m, n, flipBit(leaf, bit % 256), proof, root)) return false;
    if (verifyInclusion(m, n, leaf, proof, flipBit(root, bit % 256))) return false;
    if (proof.length > 0) {
      const i = other % proof.length;
      if (verifyInclusion(m, n, leaf, proof.map((p, j) => (j === i ? flipBit(p, bit % 256) : p)), root)) return false;
    }
    // A flipped index (still a leaf of the tree) is another leaf: this proof must not place `leaf` there.
    const m2 = m ^ (1 << (bit % 12));
    if (m2 < n && verifyInclusion(m2, n, leaf, proof, root)) return false;
    // A flipped size: the proof verifies against that tree's root only if it is that tree's proof too.
    const n2 = n ^ (1 << (other % 12));
    if (n2 > m && n2 <= LEAF_COUNT) {
      const same = bytesEqual(Buffer.concat(proof), Buffer.concat(inclusionProof(m, n2, READ)));
      if (verifyInclusion(m, n2, leaf, proof, refRange(0, n2)) !== same) return false;
    }
    checked++;
    return true;
  }), RUN);
  t.equal(checked, RUNS, `${checked} random (index, size) pairs checked`);
});

t.test('property: every consistency proof equals the RFC PROOF, verifies, and no flipped bit verifies', async (t) => {
  let checked = 0;
  fc.assert(fc.property(sizeAndIndex, fc.nat(), fc.nat(), ({ 0: n, 1: m0 }, bit, other) => {
    const m = m0 + 1; // 1..n
    const proof = consistencyProof(m, n, READ);
    const r1 = refRange(0, m);
    const r2 = refRange(0, n);
    if (!bytesEqual(Buffer.concat(proof), Buffer.concat(refPROOF(m, LEAVES.slice(0, n))))) return false;
    if (!verifyConsistency(m, n, r1, r2, proof)) return false;
    if (m === n) return (checked++, true);
    if (verifyConsistency(m, n, flipBit(r1, bit % 256), r2, proof)) return false;
    if (verifyConsistency(m, n, r1, flipBit(r2, bit % 256), proof)) return false;
    const i = other % proof.length;
    if (verifyConsistency(m, n, r1, r2, proof.map((p, j) => (j === i ? flipBit(p, bit % 256) : p)))) return false;
    // Flipped sizes, each with the real root of the tree it names: only that pair's own proof verifies.
    const m2 = m ^ (1 << (bit % 12));
    if (m2 >= 1 && m2 < n) {
      const same = bytesEqual(Buffer.concat(proof), Buffer.concat(consistencyProof(m2, n, READ)));
      if (verifyConsistency(m2, n, refRange(0, m2), r2, proof) !== same) return false;
    }
    const n2 = n ^ (1 << (other % 12));
    if (n2 > m && n2 <= LEAF_COUNT) {
      const same = bytesEqual(Buffer.concat(proof), Buffer.concat(consistencyProof(m, n2, READ)));
      if (verifyConsistency(m, n2, r1, refRange(0, n2), proof) !== same) return false;
    }
    checked++;
    return true;
  }), RUN);
  t.equal(checked, RUNS, `${checked} random (size1, size2) pairs checked`);
});

t.test('exhaustive for small trees: every (index, size) and (size1, size2) up to 64 matches the reference', async (t) => {
  let pairs = 0;
  let wrong = 0;
  for (let n = 1; n <= 64; n++) {
    const D = LEAVES.slice(0, n);
    const root = refMTH(D);
    for (let m = 0; m < n; m++) {
      const p = inclusionProof(m, n, READ);
      if (!bytesEqual(Buffer.concat(p), Buffer.concat(refPATH(m, D))) || !verifyInclusion(m, n, LEAVES[m]!, p, root)) wrong++;
      const c = consistencyProof(m + 1, n, READ);
      if (!bytesEqual(Buffer.concat(c), Buffer.concat(refPROOF(m + 1, D))) || !verifyConsistency(m + 1, n, refRange(0, m + 1), root, c)) wrong++;
      pairs += 2;
    }
  }
  t.equal(wrong, 0, `${pairs} proofs match the reference and verify`);
});

t.test('nodeHash and leafHash are domain separated', async (t) => {
  const l = leafHash(new Uint8Array(64));
  const n = nodeHash(new Uint8Array(32), new Uint8Array(32));
  t.notOk(bytesEqual(l, n), 'a 64-byte leaf and a node over the same bytes hash differently');
});
