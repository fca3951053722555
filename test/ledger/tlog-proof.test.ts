/**
 * ledger/tlog/proof.ts against C2SP tlog-proof: the text format round trip, strict parsing, and
 * verifyTlogProof (certified checkpoint, then the leaf under it), with a fast-check property over
 * random trees: every entry's proof verifies, and no changed byte of a proof verifies.
 *
 * A failure prints fast-check's seed and path; replay it exactly with
 *   FC_SEED=<seed> FC_PATH=<path> npx tap dist/test/ledger/tlog-proof.test.js
 */
import t from 'tap';
import fc from 'fast-check';
import { fcRun, refused } from './tlog-fixtures.js';
import {
  ed25519Signer, formatTlogProof, inclusionProof, leafHash, memoryReader, parseTlogProof, rootOf, signCheckpoint, verifyTlogProof,
  type CheckpointTrust,
} from '../../ledger/tlog/index.js';
import { seedOf } from '../../ledger/index.js';

const RUN = fcRun(60);
const ORIGIN = 'custody.example/cluster-1';
const NODES = [0, 1, 2].map((i) => ed25519Signer(`node-${i}.custody.example`, seedOf(`tlog-proof-node-${i}`)));
const TRUST: CheckpointTrust = { origin: ORIGIN, verifiers: NODES.map((n) => n.verifier), quorum: 2 };
const LEAVES = Array.from({ length: 300 }, (_, i) => leafHash(new TextEncoder().encode(`entry ${i}`)));
const READ = memoryReader(LEAVES);

function proofText(index: number, size: number, extra?: Uint8Array): string {
  const note = signCheckpoint({ origin: ORIGIN, size, root: rootOf(LEAVES.slice(0, size)), extensions: [] }, [NODES[0]!, NODES[1]!]);
  return formatTlogProof({ ...(extra !== undefined ? { extra } : {}), index, proof: inclusionProof(index, size, READ), note });
}

t.test('a tlog-proof round trips and verifies under the certified checkpoint', async (t) => {
  const text = proofText(7, 11, new Uint8Array([1, 2, 3]));
  t.match(text, /^c2sp\.org\/tlog-proof@v1\nextra AQID\nindex 7\n/, 'header, extra and index lines as the spec orders them');
  const p = parseTlogProof(text);
  t.equal(p.index, 7);
  t.equal(p.proof.length, 4);
  t.same([...p.extra!], [1, 2, 3]);
  t.equal(formatTlogProof(p), text, 'format(parse(text)) is the text');
  const v = verifyTlogProof(text, LEAVES[7]!, TRUST);
  t.equal(v.checkpoint.size, 11);
  t.equal(v.index, 7);
  t.same(v.signers, ['node-0.custody.example', 'node-1.custody.example']);
  t.notOk('extra' in parseTlogProof(proofText(0, 1)), 'no extra line, no extra');
  t.equal(parseTlogProof(proofText(0, 1)).proof.length, 0, 'a one-entry tree has an empty proof');
  t.ok(verifyTlogProof(proofText(0, 1), LEAVES[0]!, TRUST));
});

t.test('verifyTlogProof refuses another leaf, another index, too few signers, another log', async (t) => {
  const text = proofText(7, 11);
  t.throws(() => verifyTlogProof(text, LEAVES[8]!, TRUST), refused('TLOG_PROOF_INVALID'), 'another leaf');
  t.throws(() => verifyTlogProof(text.replace('index 7', 'index 6'), LEAVES[7]!, TRUST), refused('TLOG_PROOF_INVALID'), 'another index');
  t.throws(() => verifyTlogProof(text, LEAVES[7]!, { ...TRUST, quorum: 3 }), refused('QUORUM_NOT_MET'), 'two signers, three required');
  t.throws(() => verifyTlogProof(text, LEAVES[7]!, { ...TRUST, origin: 'custody.example/other' }), refused('TLOG_CHECKPOINT_INVALID'), 'another log');
});

t.test('parseTlogProof is strict', async (t) => {
  const text = proofText(7, 11);
  const [, indexLine, firstHash] = text.split('\n');
  const bad: [string, string][] = [
    ['another header', text.replace('tlog-proof@v1', 'tlog-proof@v2')],
    ['leading zero index', text.replace('index 7', 'index 07')],
    ['no index line', text.replace(`${indexLine}\n`, '')],
    ['short hash', text.replace(firstHash!, firstHash!.slice(0, 40) + '==')],
    ['non-canonical hash', text.replace(firstHash!, `${firstHash!.slice(0, 42)}B=`)],
    ['non-canonical extra', text.replace('index 7', 'extra AQJ=\nindex 7')],
    ['no blank line', text.replace('\n\n', '\n')],
    ['blank line moved into the proof', text.replace(`${firstHash}\n`, `${firstHash}\n\n`)],
  ];
  for (const [what, s] of bad) t.throws(() => parseTlogProof(s), { name: 'CustodyError' }, what);
  t.throws(() => parseTlogProof(text.replace('index 7', 'index 7x')), refused('TLOG_PROOF_INVALID'));
});

t.test('property: every entry of any tree proves under its checkpoint; a changed byte never verifies', async (t) => {
  let checked = 0;
  fc.assert(fc.property(fc.integer({ min: 1, max: LEAVES.length }).chain((n) => fc.tuple(fc.constant(n), fc.nat({ max: n - 1 }))), fc.nat(), ([n, m], pick) => {
    const text = proofText(m, n);
    if (verifyTlogProof(text, LEAVES[m]!, TRUST).checkpoint.size !== n) return false;
    const b = Buffer.from(text);
    const i = pick % b.length;
    b[i] = b[i] === 0x41 ? 0x42 : 0x41;
    try {
      verifyTlogProof(b.toString(), LEAVES[m]!, TRUST);
      return false;
    } catch {
      checked++;
      return true;
    }
  }), RUN);
  t.equal(checked, RUN.numRuns, `${checked} random proofs verified, and refused once altered`);
});
