/**
 * One history per kernel (kernel/certificate.ts checkFollows), attacked. A compromised node that
 * leads a term can make the honest replicas apply two branches, each certified by a majority
 * (the liar cosigns both); a kernel that signed on one branch must refuse the other, whatever
 * proof the daemon brings, and must keep signing along its own branch, forwards and backwards.
 */
import t, { type Test } from 'tap';
import fc from 'fast-check';
import { checkFollows, type FollowedCheckpoint } from '../../kernel/certificate.js';
import { consistencyProof, leafHash, memoryReader, rootOf } from '../../ledger/tlog/merkle.js';
import type { Checkpoint } from '../../ledger/tlog/checkpoint.js';
import { CustodyError } from '../../proto/errors.js';

const seed = Number(process.env.FC_SEED ?? Math.floor(Math.random() * 2 ** 31));
t.comment(`fast-check seed ${seed} (replay with FC_SEED=${seed})`);

const leaves = (tag: string, n: number): Uint8Array[] => Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`${tag}-${i}`)));
const checkpointOf = (ls: readonly Uint8Array[], size: number): Checkpoint => ({ origin: 'custody-ledger/test', size, root: rootOf(ls.slice(0, size)), extensions: [] });
const followedOf = (cp: Checkpoint): FollowedCheckpoint => ({ size: cp.size, root: Buffer.from(cp.root).toString('hex') });
const proof = (ls: readonly Uint8Array[], a: number, b: number): Uint8Array[] => consistencyProof(a, b, memoryReader(ls.slice(0, b)));

function refused(t: Test, f: () => unknown, what: string): void {
  try {
    f();
    t.fail(`${what}: accepted`);
  } catch (e) {
    t.ok(e instanceof CustodyError && e.reason === 'CHECKPOINT_INCONSISTENT', `${what}: refused CHECKPOINT_INCONSISTENT`);
  }
}

// Branch X: the honest history; branch Y agrees on the first 10 leaves, then differs (the fork).
const X = leaves('x', 40);
const Y = [...X.slice(0, 10), ...leaves('y', 30)];

t.test('a kernel that follows nothing yet follows the first certified checkpoint', async (t) => {
  const cp = checkpointOf(X, 12);
  t.same(checkFollows(null, cp, undefined), followedOf(cp));
});

t.test('along its own history: forwards with a proof, backwards with a proof, the same checkpoint without one', async (t) => {
  const f = followedOf(checkpointOf(X, 15));
  const later = checkpointOf(X, 33);
  t.same(checkFollows(f, later, { size: 15, proof: proof(X, 15, 33) }), followedOf(later), 'a later checkpoint: followed from then on');
  const earlier = checkpointOf(X, 11);
  t.same(checkFollows(f, earlier, { size: 15, proof: proof(X, 11, 15) }), f, 'an earlier one (a certificate cached before): still follows the later');
  t.same(checkFollows(f, checkpointOf(X, 15), undefined), f, 'the followed checkpoint itself needs no proof');
});

t.test('the other branch is refused, whatever the daemon brings', async (t) => {
  const f = followedOf(checkpointOf(X, 20));
  const other = checkpointOf(Y, 25);
  refused(t, () => checkFollows(f, other, undefined), 'no proof');
  refused(t, () => checkFollows(f, other, { size: 20, proof: proof(X, 20, 25) }), "branch X's proof to a size of branch Y");
  refused(t, () => checkFollows(f, other, { size: 20, proof: proof(Y, 20, 25) }), "branch Y's own proof from its size 20");
  refused(t, () => checkFollows(f, checkpointOf(Y, 20), undefined), 'the same size with another root');
  refused(t, () => checkFollows(f, checkpointOf(Y, 12), { size: 20, proof: proof(Y, 12, 20) }), 'an earlier checkpoint of branch Y');
  refused(t, () => checkFollows(f, checkpointOf(X, 30), { size: 19, proof: proof(X, 19, 30) }), 'a proof from another size than the followed one');
  refused(t, () => checkFollows(f, checkpointOf(X, 30), { size: 20, proof: [] }), 'an empty proof');
  // Before the fork point both branches are one history.
  t.same(checkFollows(followedOf(checkpointOf(Y, 10)), checkpointOf(X, 30), { size: 10, proof: proof(X, 10, 30) }), followedOf(checkpointOf(X, 30)), 'a checkpoint at the fork point extends into either branch');
});

t.test('property: a kernel follows one history, whatever sequence of checkpoints and proofs it is shown', async (t) => {
  // Each step shows a checkpoint of branch X or Y at some size, with the proof an attacker can
  // best make from that branch (or none). Invariant: once the kernel accepted a checkpoint past
  // the fork on one branch, it accepts none past the fork on the other.
  const step = fc.record({ branch: fc.constantFrom('x', 'y'), size: fc.integer({ min: 1, max: 40 }), withProof: fc.boolean(), from: fc.integer({ min: 1, max: 40 }) });
  const run = fc.check(fc.property(fc.array(step, { minLength: 1, maxLength: 25 }), (steps) => {
    let followed: FollowedCheckpoint | null = null;
    let branchTaken: 'x' | 'y' | null = null;
    for (const s of steps) {
      const ls = s.branch === 'x' ? X : Y;
      const cp = checkpointOf(ls, s.size);
      let consistency: { size: number; proof: Uint8Array[] } | undefined;
      if (s.withProof && followed !== null) {
        const from = followed.size;
        const [a, b] = [Math.min(from, s.size), Math.max(from, s.size)];
        consistency = a === b ? { size: from, proof: [] } : { size: from, proof: proof(ls, a, b) };
      } else if (s.withProof) {
        consistency = { size: s.from, proof: proof(ls, Math.min(s.from, s.size), Math.max(s.from, s.size)) };
      }
      try {
        followed = checkFollows(followed, cp, consistency);
        if (s.size > 10) {
          if (branchTaken !== null && branchTaken !== s.branch) return false; // signed on both branches
          branchTaken = s.branch;
        }
      } catch (e) {
        if (!(e instanceof CustodyError) || e.reason !== 'CHECKPOINT_INCONSISTENT') throw e;
      }
    }
    return true;
  }), { numRuns: 500, seed });
  t.notOk(run.failed, `no kernel accepted checkpoints past the fork on both branches (${run.numRuns} runs${run.failed ? `; counterexample ${fc.stringify(run.counterexample)}` : ''})`);
});
