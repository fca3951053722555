/**
 * The transparency-log module (ledger/tlog/): what appending, proving and verifying cost.
 *
 *   node dist/bench/tlog.js [--leaves 100000] [--proofs 2000] [--rounds 3]
 *
 * Builds a tree of `leaves` leaf hashes with CompactTree, keeping every completed perfect subtree
 * in a Map (as a node would keep them in its store), then over `proofs` random (index, size)
 * pairs generates and verifies inclusion and consistency proofs, and certifies a checkpoint
 * cosigned by 3 node keys (quorum 2). Each figure is the best of `rounds`, in CPU time of this
 * process (user + system), so load from other processes stretches wall time but not the figures.
 * Reported: appends/s, µs per root, per persist + restore of the compact state, per proof
 * generated and per proof verified, per certified() call. A JSON line for tooling closes the output.
 */
import {
  CompactTree, certified, consistencyProof, ed25519Signer, inclusionProof, leafHash, signCheckpoint, verifyConsistency, verifyInclusion,
  type NodeReader,
} from '../ledger/tlog/index.js';
import { seedOf } from '../ledger/index.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : dflt;
}

const LEAVES = Number(arg('leaves', '100000'));
const PROOFS = Number(arg('proofs', '2000'));
const ROUNDS = Number(arg('rounds', '3'));

function cpuMs(f: () => void): number {
  const t0 = process.cpuUsage();
  f();
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / 1000;
}

function best(f: () => void): number {
  let min = Infinity;
  for (let r = 0; r < ROUNDS; r++) min = Math.min(min, cpuMs(f));
  return min;
}

/** A deterministic sequence, so every run measures the same pairs. */
function* pairs(n: number): Generator<[number, number]> {
  let x = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const size = 1 + (x % LEAVES);
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    yield [x % size, size];
  }
}

const leaves = Array.from({ length: LEAVES }, (_, i) => leafHash(new TextEncoder().encode(`entry ${i}`)));
const store = new Map<string, Uint8Array>();
const roots: Uint8Array[] = [];
let tree = new CompactTree();
const appendMs = best(() => {
  tree = new CompactTree();
  store.clear();
  for (const l of leaves) for (const c of tree.append(l)) store.set(`${c.level}/${c.index}`, c.hash);
});
// Roots of every size, for the verifications below (not timed).
{
  const t = new CompactTree();
  roots.push(t.root());
  for (const l of leaves) {
    t.append(l);
    roots.push(t.root());
  }
}
const read: NodeReader = (level, index) => store.get(`${level}/${index}`)!;
const work = [...pairs(PROOFS)];

const rootMs = best(() => { for (let i = 0; i < PROOFS; i++) tree.root(); });
const persistMs = best(() => { for (let i = 0; i < PROOFS; i++) CompactTree.fromBytes(tree.toBytes()); });
const incl = work.map(([m, n]) => inclusionProof(m, n, read));
const cons = work.map(([m, n]) => consistencyProof(m + 1, n, read));
const inclGenMs = best(() => { for (const [m, n] of work) inclusionProof(m, n, read); });
const inclVerMs = best(() => {
  work.forEach(([m, n], i) => { if (!verifyInclusion(m, n, leaves[m]!, incl[i]!, roots[n]!)) throw new Error(`bench: inclusion ${m}/${n} failed`); });
});
const consGenMs = best(() => { for (const [m, n] of work) consistencyProof(m + 1, n, read); });
const consVerMs = best(() => {
  work.forEach(([m, n], i) => { if (!verifyConsistency(m + 1, n, roots[m + 1]!, roots[n]!, cons[i]!)) throw new Error(`bench: consistency ${m + 1}/${n} failed`); });
});

const nodes = [0, 1, 2].map((i) => ed25519Signer(`node-${i}.bench`, seedOf(`bench-node-${i}`)));
const note = signCheckpoint({ origin: 'bench/log', size: LEAVES, root: tree.root(), extensions: [] }, nodes);
const trust = { origin: 'bench/log', verifiers: nodes.map((n) => n.verifier), quorum: 2 };
const CERTS = Math.min(PROOFS, 500);
const certMs = best(() => { for (let i = 0; i < CERTS; i++) certified(note, trust); });

const us = (ms: number, n: number): number => Math.round((ms * 1000 / n) * 10) / 10;
const result = {
  bench: 'tlog', leaves: LEAVES, proofs: PROOFS, rounds: ROUNDS, storedNodes: store.size,
  appendsPerSec: Math.round(LEAVES / (appendMs / 1000)),
  rootUs: us(rootMs, PROOFS), persistRestoreUs: us(persistMs, PROOFS),
  inclusionGenerateUs: us(inclGenMs, PROOFS), inclusionVerifyUs: us(inclVerMs, PROOFS),
  consistencyGenerateUs: us(consGenMs, PROOFS), consistencyVerifyUs: us(consVerMs, PROOFS),
  certifiedUs: us(certMs, CERTS),
};
process.stdout.write(`tlog bench: ${LEAVES} leaves, ${PROOFS} proofs of each kind, best of ${ROUNDS}, CPU time\n\n`);
process.stdout.write(`append            ${result.appendsPerSec} leaves/s (${store.size} perfect subtrees stored)\n`);
process.stdout.write(`root              ${result.rootUs} µs      persist + restore  ${result.persistRestoreUs} µs\n`);
process.stdout.write(`inclusion proof   generate ${result.inclusionGenerateUs} µs   verify ${result.inclusionVerifyUs} µs\n`);
process.stdout.write(`consistency proof generate ${result.consistencyGenerateUs} µs   verify ${result.consistencyVerifyUs} µs\n`);
process.stdout.write(`certified()       ${result.certifiedUs} µs (3 Ed25519 node signatures, quorum 2)\n`);
process.stdout.write(`\n${JSON.stringify(result)}\n`);
