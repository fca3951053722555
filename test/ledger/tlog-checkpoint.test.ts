/**
 * ledger/tlog/checkpoint.ts against C2SP tlog-checkpoint and tlog-cosignature: the spec's examples
 * (test/ledger/tlog-vectors.json), strict parsing, and certified() quorum counting, with a
 * fast-check round trip through sign -> certified and Merkle roots from merkle.ts.
 *
 * A failure prints fast-check's seed and path; replay it exactly with
 *   FC_SEED=<seed> FC_PATH=<path> npx tap dist/test/ledger/tlog-checkpoint.test.js
 */
import t from 'tap';
import fc from 'fast-check';
import { VECTORS, fcRun, refused } from './tlog-fixtures.js';
import {
  addSignatures, certified, cosignatureMessage, cosignatureSigner, ed25519Signer, formatCheckpoint, leafHash,
  parseCheckpoint, parseNote, rootOf, signCheckpoint, signNote, consistencyProof, inclusionProof, memoryReader, requireExtends, requireIncluded,
  type Checkpoint, type CheckpointTrust,
} from '../../ledger/tlog/index.js';
import { seedOf, toHex } from '../../ledger/index.js';

const RUN = fcRun(100);
const RUNS = RUN.numRuns;

const V = VECTORS.checkpoint;

const ORIGIN = 'custody.example/cluster-1';
const NODES = [0, 1, 2].map((i) => ed25519Signer(`node-${i}.custody.example`, seedOf(`tlog-node-${i}`)));
const TRUST: CheckpointTrust = { origin: ORIGIN, verifiers: NODES.map((n) => n.verifier), quorum: 2 };
const leaves = Array.from({ length: 11 }, (_, i) => leafHash(new TextEncoder().encode(`entry ${i}`)));
const CP: Checkpoint = { origin: ORIGIN, size: 11, root: rootOf(leaves), extensions: [] };

t.test('vectors: the spec\'s cosigned checkpoint parses; its cosignature carries the example timestamp', async (t) => {
  const note = parseNote(V.note);
  t.same(note.signatures.map((s) => s.name), ['example.com/behind-the-sofa', 'witness.example.com/w1']);
  const cp = parseCheckpoint(note.text);
  t.equal(cp.origin, V.origin);
  t.equal(cp.size, V.size);
  t.equal(Buffer.from(cp.root).toString('base64'), V.rootBase64);
  t.same(cp.extensions, []);
  t.equal(formatCheckpoint(cp), note.text, 'format(parse(text)) is the text');
  // timestamped_signature: u64 big-endian timestamp, then the Ed25519 signature.
  const sig = note.signatures[1]!.signature;
  t.equal(sig.length, 8 + 64);
  const ts = Number(Buffer.from(sig).readBigUInt64BE(0));
  t.equal(ts, V.cosignatureTimestamp, 'the witness line is the example of the cosignature message');
  t.equal(Buffer.from(cosignatureMessage(ts, note.text)).toString(), V.cosignatureMessage);
});

t.test('parseCheckpoint is strict', async (t) => {
  const root = Buffer.from(CP.root).toString('base64');
  const bad: [string, string][] = [
    ['leading zero', `${ORIGIN}\n007\n${root}\n`],
    ['leading zero on 0', `${ORIGIN}\n00\n${root}\n`],
    ['sign', `${ORIGIN}\n+7\n${root}\n`],
    ['negative', `${ORIGIN}\n-1\n${root}\n`],
    ['space', `${ORIGIN}\n 7\n${root}\n`],
    ['exponent', `${ORIGIN}\n1e3\n${root}\n`],
    ['empty size', `${ORIGIN}\n\n${root}\n`],
    ['size above 2^53 - 1', `${ORIGIN}\n9007199254740992\n${root}\n`],
    ['31-byte root', `${ORIGIN}\n7\n${Buffer.alloc(31).toString('base64')}\n`],
    ['33-byte root', `${ORIGIN}\n7\n${Buffer.alloc(33).toString('base64')}\n`],
    ['non-canonical base64 root', `${ORIGIN}\n7\n${root.slice(0, -2)}B=\n`],
    ['unpadded root', `${ORIGIN}\n7\n${root.slice(0, -1)}\n`],
    ['no final newline', `${ORIGIN}\n7\n${root}`],
    ['two lines', `${ORIGIN}\n7\n`],
    ['empty origin', `\n7\n${root}\n`],
    ['empty extension line', `${ORIGIN}\n7\n${root}\n\next\n`],
    ['control character in an extension', `${ORIGIN}\n7\n${root}\next\tension\n`],
    ['too many extension lines', `${ORIGIN}\n7\n${root}\n${'e\n'.repeat(17)}`],
  ];
  for (const [what, text] of bad) t.throws(() => parseCheckpoint(text), refused('TLOG_CHECKPOINT_INVALID'), what);
  t.equal(parseCheckpoint(`${ORIGIN}\n0\n${root}\n`).size, 0, 'the empty tree is size 0');
  t.equal(parseCheckpoint(`${ORIGIN}\n9007199254740991\n${root}\n`).size, 2 ** 53 - 1, 'the largest size');
  t.same(parseCheckpoint(`${ORIGIN}\n7\n${root}\nrekor.example - 1\nx\n`).extensions, ['rekor.example - 1', 'x'], 'extension lines kept');
  t.throws(() => formatCheckpoint({ ...CP, size: -1 }), refused('TLOG_CHECKPOINT_INVALID'), 'format refuses what parse would');
  t.throws(() => formatCheckpoint({ ...CP, origin: 'a\nb' }), refused('TLOG_CHECKPOINT_INVALID'));
});

t.test('certified: a quorum of distinct known node keys, nothing less', async (t) => {
  const two = signCheckpoint(CP, [NODES[0]!, NODES[2]!]);
  const c = certified(two, TRUST);
  t.equal(c.checkpoint.size, 11);
  t.equal(toHex(c.checkpoint.root), toHex(CP.root));
  t.same(c.signers, ['node-0.custody.example', 'node-2.custody.example']);
  t.equal(certified(addSignatures(two, [NODES[1]!]), TRUST).signers.length, 3, 'all three');

  const one = signCheckpoint(CP, [NODES[1]!]);
  t.throws(() => certified(one, TRUST), refused('QUORUM_NOT_MET'), 'one of three');
  const stranger = ed25519Signer('node-9.custody.example', seedOf('stranger'));
  t.throws(() => certified(addSignatures(one, [stranger]), TRUST), refused('QUORUM_NOT_MET'), 'an unknown key does not count');
  const line = one.slice(one.lastIndexOf('\u2014'));
  t.throws(() => certified(one + line, TRUST), refused('QUORUM_NOT_MET'), 'the same signature twice counts once');

  // One node listed with two keys (a rotation): both sign, the node still counts once.
  const rotated = ed25519Signer(NODES[1]!.name, seedOf('tlog-node-1-next'));
  const trustRot = { ...TRUST, verifiers: [...TRUST.verifiers, rotated.verifier] };
  t.throws(() => certified(signCheckpoint(CP, [NODES[1]!, rotated]), trustRot), refused('QUORUM_NOT_MET'), 'two keys of one node count once');

  // A witness cosignature counts only if the policy lists it.
  const witness = cosignatureSigner('witness.example/w1', seedOf('witness'), 1_700_000_000);
  const withWitness = addSignatures(one, [witness]);
  t.throws(() => certified(withWitness, TRUST), refused('QUORUM_NOT_MET'), 'an unlisted witness does not count');
  const trustW = { ...TRUST, verifiers: [...TRUST.verifiers, witness.verifier] };
  t.same(certified(withWitness, trustW).signatures.map((s) => s.timestamp), [undefined, 1_700_000_000], 'a listed witness counts, with its time');
});

t.test('certified refuses tampering, another origin, a non-checkpoint and an impossible quorum', async (t) => {
  const note = signCheckpoint(CP, NODES);
  t.throws(() => certified(note.replace('\n11\n', '\n12\n'), TRUST), refused('NOTE_SIGNATURE_INVALID'), 'size changed after signing');
  const other = signCheckpoint({ ...CP, origin: 'custody.example/cluster-2' }, NODES);
  t.throws(() => certified(other, TRUST), refused('TLOG_CHECKPOINT_INVALID'), 'another log');
  t.throws(() => certified(signNote('hello\nworld\n', NODES), TRUST), refused('TLOG_CHECKPOINT_INVALID'), 'a signed note that is no checkpoint');
  t.throws(() => certified(signNote(`${ORIGIN}\n007\n${Buffer.from(CP.root).toString('base64')}\n`, NODES), TRUST), refused('TLOG_CHECKPOINT_INVALID'), 'a signed "007"');
  t.throws(() => certified(note, { ...TRUST, quorum: 0 }), refused('CONFIG_INVALID'));
  t.throws(() => certified(note, { ...TRUST, quorum: 4 }), refused('CONFIG_INVALID'));
  t.throws(() => certified(note.slice(0, -5), TRUST), refused('NOTE_MALFORMED'), 'truncated note');
});

t.test('property: any checkpoint signed by any quorum certifies to itself; one signer short is refused', async (t) => {
  const origin = fc.stringMatching(/^[a-z0-9./-]{1,40}$/);
  const cp = fc.record({
    origin,
    size: fc.oneof(fc.nat(), fc.constant(0), fc.constant(Number.MAX_SAFE_INTEGER)),
    root: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    extensions: fc.array(fc.stringMatching(/^[ -~]{1,20}$/), { maxLength: 3 }),
  });
  let checked = 0;
  fc.assert(fc.property(cp, fc.subarray([0, 1, 2], { minLength: 1 }), (c, who) => {
    const note = signCheckpoint(c, who.map((i) => NODES[i]!));
    const trust = { origin: c.origin, verifiers: NODES.map((n) => n.verifier), quorum: who.length };
    const got = certified(note, trust).checkpoint;
    if (got.origin !== c.origin || got.size !== c.size || toHex(got.root) !== toHex(c.root) || got.extensions.join('\n') !== c.extensions.join('\n')) return false;
    if (who.length < 3) {
      try {
        certified(note, { ...trust, quorum: who.length + 1 });
        return false;
      } catch (e) {
        if ((e as { reason?: string }).reason !== 'QUORUM_NOT_MET') return false;
      }
    }
    checked++;
    return true;
  }), RUN);
  t.equal(checked, RUNS, `${checked} random checkpoints certified`);
});

t.test('requireIncluded / requireExtends bind proofs to the certified checkpoints they name', async (t) => {
  const read = memoryReader(leaves);
  const older: Checkpoint = { origin: ORIGIN, size: 6, root: rootOf(leaves.slice(0, 6)), extensions: [] };
  const newer = certified(signCheckpoint(CP, NODES), TRUST).checkpoint;
  t.doesNotThrow(() => requireIncluded(newer, 4, leaves[4]!, inclusionProof(4, 11, read)), 'leaf 4 under the certified head');
  t.throws(() => requireIncluded(newer, 4, leaves[5]!, inclusionProof(4, 11, read)), refused('TLOG_PROOF_INVALID'), 'another leaf');
  t.throws(() => requireIncluded(older, 4, leaves[4]!, inclusionProof(4, 11, read)), refused('TLOG_PROOF_INVALID'), 'a proof for another tree');
  const proof = consistencyProof(6, 11, read);
  t.doesNotThrow(() => requireExtends(older, newer, proof), '6 -> 11');
  t.throws(() => requireExtends(newer, older, proof), refused('TLOG_PROOF_INVALID'), 'backwards');
  const forked = { ...newer, root: rootOf([...leaves.slice(0, 10), leafHash(new Uint8Array([9]))]) };
  t.throws(() => requireExtends(older, forked, proof), refused('TLOG_PROOF_INVALID'), 'a rewritten history');
  t.throws(() => requireExtends({ ...older, origin: 'elsewhere' }, newer, proof), refused('TLOG_CHECKPOINT_INVALID'), 'another log');
  t.throws(() => requireExtends(newer, { ...newer, root: older.root }, []), refused('TLOG_PROOF_INVALID'), 'same size, another root: a fork');
});
