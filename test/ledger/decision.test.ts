import t from 'tap';
import { decisionCid, decisionFromCbor, decisionToCbor, decisionSigningBytes, verifyDecision, validateRoster, makeApproverKey, ed25519Verify, ed25519VerifyNoble } from '../../ledger/decision.js';
import { decode, encode, bytesEqual } from '../../ledger/encoding.js';
import { approverKeys, rosterOf, decide, body, CLUSTER, seed } from './fixtures.js';

const keys = approverKeys(3);
const roster = rosterOf(keys, 2);
const action = { kind: 'Unfreeze' } as const;
const NOW = 2_000;

t.test('a decision signed by 2 of a 2-of-3 roster verifies and names its signers', async (t) => {
  const d = decide(action, keys.slice(0, 2));
  const v = verifyDecision(d, roster, CLUSTER, 0, NOW);
  t.ok(v.ok);
  if (v.ok) {
    t.same(v.approvers, ['approver-0', 'approver-1']);
    t.ok(bytesEqual(v.cid, decisionCid(d.body)));
  }
});

t.test('a decision with one approval under a 2-of-3 roster is refused QUORUM_NOT_MET', async (t) => {
  t.match(verifyDecision(decide(action, keys.slice(0, 1)), roster, CLUSTER, 0, NOW), { ok: false, reason: 'QUORUM_NOT_MET' });
});

t.test('a decision signed by an approver not on the roster in force is refused UNKNOWN_APPROVER', async (t) => {
  const stranger = makeApproverKey('stranger', seed('stranger'));
  t.match(verifyDecision(decide(action, [keys[0]!, stranger]), roster, CLUSTER, 0, NOW), { ok: false, reason: 'UNKNOWN_APPROVER' });
});

t.test('a forged signature (one bit flipped) is refused SIGNATURE_INVALID', async (t) => {
  const d = decide(action, keys.slice(0, 2));
  const sig = d.approvals[1]!.signature.slice();
  sig[5]! ^= 1;
  const forged = { body: d.body, approvals: [d.approvals[0]!, { approverId: d.approvals[1]!.approverId, signature: sig }] };
  t.match(verifyDecision(forged, roster, CLUSTER, 0, NOW), { ok: false, reason: 'SIGNATURE_INVALID' });
});

t.test('a signature made by one approver but attributed to another is refused SIGNATURE_INVALID', async (t) => {
  const d = decide(action, keys.slice(0, 2));
  const swapped = { body: d.body, approvals: [d.approvals[0]!, { approverId: 'approver-2', signature: d.approvals[1]!.signature }] };
  t.match(verifyDecision(swapped, roster, CLUSTER, 0, NOW), { ok: false, reason: 'SIGNATURE_INVALID' });
});

t.test('a decision whose one approver appears twice is refused PAYLOAD_REJECTED, never counted as two', async (t) => {
  const d = decide(action, [keys[0]!]);
  const dup = { body: d.body, approvals: [d.approvals[0]!, d.approvals[0]!] };
  t.match(verifyDecision(dup, roster, CLUSTER, 0, NOW), { ok: false, reason: 'PAYLOAD_REJECTED' });
});

t.test('a decision presented at or after its expiry is refused DECISION_EXPIRED', async (t) => {
  const d = decide(action, keys.slice(0, 2));
  t.match(verifyDecision(d, roster, CLUSTER, 0, d.body.expiresMs), { ok: false, reason: 'DECISION_EXPIRED' });
});

t.test('a decision for another governance epoch is refused STALE_EPOCH', async (t) => {
  const d = decide(action, keys.slice(0, 2), { governanceEpoch: 1 });
  t.match(verifyDecision(d, roster, CLUSTER, 2, NOW), { ok: false, reason: 'STALE_EPOCH' });
});

t.test('a decision for another cluster is refused BINDING_MISMATCH', async (t) => {
  const d = decide(action, keys.slice(0, 2), { clusterId: 'other' });
  t.match(verifyDecision(d, roster, CLUSTER, 0, NOW), { ok: false, reason: 'BINDING_MISMATCH' });
});

t.test('signatures bind the whole body: changing any field after signing fails verification', async (t) => {
  const d = decide({ kind: 'KeyRetired', keyId: 'k1' }, keys.slice(0, 2));
  const moved = { body: { ...d.body, action: { kind: 'KeyRetired' as const, keyId: 'k2' } }, approvals: d.approvals };
  t.match(verifyDecision(moved, roster, CLUSTER, 0, NOW), { ok: false, reason: 'SIGNATURE_INVALID' });
  const later = { body: { ...d.body, expiresMs: d.body.expiresMs + 1 }, approvals: d.approvals };
  t.match(verifyDecision(later, roster, CLUSTER, 0, NOW), { ok: false, reason: 'SIGNATURE_INVALID' });
});

t.test('an auditor signature never counts toward quorum: ROLE_NOT_ALLOWED', async (t) => {
  const r = { ...roster, approvers: roster.approvers.map((a, i) => (i === 1 ? { ...a, roles: ['auditor' as const] } : a)) };
  t.match(verifyDecision(decide(action, keys.slice(0, 2)), r, CLUSTER, 0, NOW), { ok: false, reason: 'ROLE_NOT_ALLOWED' });
});

t.test('an emergency freeze needs only freezeThreshold signers with governor or security role', async (t) => {
  const d = decide({ kind: 'EmergencyFreeze', reason: 'drill' }, [keys[2]!]);
  t.ok(verifyDecision(d, roster, CLUSTER, 0, NOW).ok);
  t.match(verifyDecision(decide(action, [keys[2]!]), roster, CLUSTER, 0, NOW), { ok: false, reason: 'QUORUM_NOT_MET' });
});

t.test('a decision survives its canonical encoding unchanged', async (t) => {
  const d = decide({ kind: 'DkgAuthorized', keyId: 'k1', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ['n1', 'n2', 'n3'] }, keys.slice(0, 2));
  const back = decisionFromCbor(decode(encode(decisionToCbor(d))));
  t.ok(bytesEqual(decisionSigningBytes(back.body), decisionSigningBytes(d.body)));
  t.ok(verifyDecision(back, roster, CLUSTER, 0, NOW).ok);
});

t.test('rosters that could never or too easily reach quorum are refused', async (t) => {
  t.match(validateRoster(rosterOf(keys, 1)), { ok: false, reason: 'PAYLOAD_REJECTED' });
  t.match(validateRoster(rosterOf(keys, 4)), { ok: false, reason: 'PAYLOAD_REJECTED' });
  t.match(validateRoster({ ...roster, approvers: [roster.approvers[0]!, roster.approvers[0]!] }), { ok: false, reason: 'PAYLOAD_REJECTED' });
  t.match(validateRoster({ ...roster, approvers: roster.approvers.map((a, i) => (i === 0 ? { ...a, publicKey: new Uint8Array(32) } : a)) }), { ok: false, reason: 'PAYLOAD_REJECTED' });
  t.ok(validateRoster(roster).ok);
});

t.test('node:crypto and noble agree on valid, tampered and non-canonical-S signatures', async (t) => {
  const msg = decisionSigningBytes(body(action));
  const d = decide(action, [keys[0]!]);
  const sig = d.approvals[0]!.signature;
  t.equal(ed25519Verify(sig, msg, keys[0]!.publicKey), true);
  t.equal(ed25519VerifyNoble(sig, msg, keys[0]!.publicKey), true);
  const bad = sig.slice();
  bad[0]! ^= 0x80;
  t.equal(ed25519Verify(bad, msg, keys[0]!.publicKey), false);
  t.equal(ed25519VerifyNoble(bad, msg, keys[0]!.publicKey), false);
  // S + L encodes the same scalar non-canonically (RFC 8032 §5.1.7 requires S < L): refused by both.
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i]!);
  s += 7237005577332262213973186563042994240857116359379907606001950938285454250989n;
  const malleable = sig.slice();
  for (let i = 32; i < 64; i++) { malleable[i] = Number(s & 0xffn); s >>= 8n; }
  t.equal(s, 0n, 'S + L still fits 32 bytes');
  t.equal(ed25519Verify(malleable, msg, keys[0]!.publicKey), false);
  t.equal(ed25519VerifyNoble(malleable, msg, keys[0]!.publicKey), false);
});
