/**
 * The ledger's own FROST arithmetic for signing sets (ledger/signing-set.ts) agrees with the FROST
 * the kernels run (noble's RFC 9591 implementation): identifiers (§4.1), group elements (§3.1),
 * and the Ed25519 group commitment (§4.5) that an aggregated signature (§5.3) carries as R.
 */
import t from 'tap';
import fc from 'fast-check';
import { ed25519_FROST } from '@noble/curves/ed25519.js';
import { schnorr_FROST, secp256k1, secp256k1_FROST } from '@noble/curves/secp256k1.js';
import { ed25519GroupCommitment, frostIdentifier, isGroupElement } from '../../ledger/signing-set.js';
import { bytesEqual } from '../../ledger/encoding.js';
import type { KeyScheme } from '../../ledger/decision.js';

const SUITES: [KeyScheme, typeof ed25519_FROST][] = [['ed25519', ed25519_FROST], ['secp256k1', secp256k1_FROST], ['taproot', schnorr_FROST]];

t.test('identifiers are the suite\'s serialized scalars 1..n (RFC 9591 §4.1)', async (t) => {
  for (const [scheme, frost] of SUITES) {
    for (const n of [1, 2, 3, 17, 255, 256, 64]) t.equal(frostIdentifier(scheme, n), frost.Identifier.fromNumber(n), `${scheme} ${n}`);
  }
});

t.test('nonce commitments of every suite are group elements; the identity and garbage are not (RFC 9591 §3.1)', async (t) => {
  for (const [scheme, frost] of SUITES) {
    const d = frost.trustedDealer({ min: 2, max: 3 });
    const share = Object.values(d.secretShares)[0]!;
    const c = frost.commit(share).commitments;
    t.ok(isGroupElement(scheme, c.hiding) && isGroupElement(scheme, c.binding), `${scheme}: commitments accepted`);
    t.notOk(isGroupElement(scheme, new Uint8Array(c.hiding.length)), `${scheme}: all-zero bytes refused`);
    t.notOk(isGroupElement(scheme, new Uint8Array(c.hiding.length).fill(0xff)), `${scheme}: off-curve bytes refused`);
    t.notOk(isGroupElement(scheme, c.hiding.subarray(1)), `${scheme}: short bytes refused`);
  }
  const identity = new Uint8Array(32);
  identity[0] = 1;
  t.notOk(isGroupElement('ed25519', identity), 'the Ed25519 identity refused');
});

/** noble's RFC 9591 DeserializeElement for secp256k1: the reference the ledger's check must agree with. */
function nobleSecp256k1Element(b: Uint8Array): boolean {
  try {
    const p = secp256k1.Point.fromBytes(b);
    p.assertValidity();
    return !p.is0();
  } catch {
    return false;
  }
}

// A failure prints fast-check's seed and path; replay it with FC_SEED=<seed> FC_PATH=<path>.
const replay = {
  ...(process.env.FC_SEED !== undefined ? { seed: Number(process.env.FC_SEED) } : {}),
  ...(process.env.FC_PATH !== undefined ? { path: process.env.FC_PATH } : {}),
};

t.test('secp256k1 elements: the ledger\'s check answers as noble\'s deserialization on any 33 bytes', async (t) => {
  const P = secp256k1.Point.Fp.ORDER;
  const be = (x: bigint): Uint8Array => Uint8Array.from(Buffer.from(x.toString(16).padStart(64, '0'), 'hex'));
  // Prefixes 0x02/0x03 (and a few others); x anywhere in [0, 2^256), near p and above it, or the
  // x of a real point (about half of all x are on the curve, so both answers occur often).
  const x = fc.oneof(
    fc.bigInt({ min: 0n, max: (1n << 256n) - 1n }),
    fc.bigInt({ min: P - 64n, max: P + 64n }),
    fc.bigInt({ min: 1n, max: secp256k1.Point.Fn.ORDER - 1n }).map((k) => secp256k1.Point.BASE.multiply(k).x),
  );
  const prefix = fc.oneof(fc.constantFrom(2, 3), fc.integer({ min: 0, max: 255 }));
  let valid = 0;
  let invalid = 0;
  fc.assert(fc.property(prefix, x, (pre, xv) => {
    const b = new Uint8Array([pre, ...be(xv)]);
    const want = nobleSecp256k1Element(b);
    if (want) valid++;
    else invalid++;
    return isGroupElement('secp256k1', b) === want && isGroupElement('taproot', b) === want;
  }), { numRuns: 2000, ...replay });
  t.ok(valid > 100 && invalid > 100, `both answers exercised (${valid} elements, ${invalid} not)`);
  for (const bad of [new Uint8Array(0), new Uint8Array(1), Uint8Array.of(4, ...new Uint8Array(64)), secp256k1.Point.BASE.toBytes(false)]) {
    t.equal(isGroupElement('secp256k1', bad), false, `${bad.length} bytes refused: only the compressed form is a FROST element`);
  }
});

t.test('an aggregated FROST(Ed25519, SHA-512) signature carries the group commitment of its list as R (RFC 9591 §4.5, §5.3)', async (t) => {
  const frost = ed25519_FROST;
  const d = frost.trustedDealer({ min: 2, max: 3 });
  const msg = new Uint8Array(32).fill(9);
  for (const ids of [[1, 2], [1, 3], [2, 3], [1, 2, 3]]) {
    const signers = ids.map((n) => d.secretShares[frost.Identifier.fromNumber(n)]!);
    const rounds = signers.map((s) => frost.commit(s));
    const list = rounds.map((r) => r.commitments);
    const shares = Object.fromEntries(signers.map((s, i) => [s.identifier, frost.signShare(s, d.public, rounds[i]!.nonces, list, msg)]));
    const sig = frost.aggregate(d.public, list, msg, shares);
    const { R } = ed25519GroupCommitment(d.public.commitments[0]!, msg, list);
    t.ok(bytesEqual(sig.subarray(0, 32), R), `signers ${ids.join(',')}: R recomputed by the ledger`);
    const other = frost.commit(signers[0]!).commitments;
    const { R: R2 } = ed25519GroupCommitment(d.public.commitments[0]!, msg, [other, ...list.slice(1)]);
    t.notOk(bytesEqual(sig.subarray(0, 32), R2), `signers ${ids.join(',')}: another list gives another R`);
  }
});
