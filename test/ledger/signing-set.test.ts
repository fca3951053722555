/**
 * The ledger's own FROST arithmetic for signing sets (ledger/signing-set.ts) agrees with the FROST
 * the kernels run (noble's RFC 9591 implementation): identifiers (§4.1), group elements (§3.1),
 * and the Ed25519 group commitment (§4.5) that an aggregated signature (§5.3) carries as R.
 */
import t from 'tap';
import { ed25519_FROST } from '@noble/curves/ed25519.js';
import { schnorr_FROST, secp256k1_FROST } from '@noble/curves/secp256k1.js';
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
