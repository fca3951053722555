/**
 * apply(): one named test per invariant of DESIGN §3 and per refusal, each driving the real state
 * machine through a ScriptedCluster and checking the reason code and that nothing else changed.
 */
import t, { type Test } from 'tap';
import {
  ScriptedCluster, apply, checkInvariants, encodeEvent, snapshot, stateRoot, bytesEqual, makeApproverKey, seedOf, resolveDestination,
  addApprovals, signDecision, restore, decode, encode, clipRuleDetail, opFromCbor, opToCbor, type ApplyResult, type LedgerState, type CborValue,
} from '../../ledger/index.js';
import fc from 'fast-check';
import { ledger as limits } from '../../proto/limits.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { rid } from '../../ledger/scenario.js';

function ok(t: Test, r: ApplyResult, what?: string): void {
  t.ok(r.ok, what ?? (r.ok ? r.effect : `${r.reason}: ${r.detail}`));
}

/** Asserts a refusal with `reason` and that the state moved only its index and clock. */
function refusedWith(t: Test, s: ScriptedCluster, reason: string, run: () => ApplyResult): ApplyResult {
  const before = s.state;
  const r = run();
  t.match(r, { ok: false, reason }, `refused ${reason}`);
  if (!r.ok && !r.applied) {
    t.ok(bytesEqual(stateRoot({ ...s.state, index: before.index, clockMs: before.clockMs }), stateRoot(before)), 'nothing but index and clock changed');
  }
  t.same(checkInvariants(s.state), []);
  return r;
}

/** A cluster with genesis and one active key k1 at epoch 0. */
function withKey(): ScriptedCluster {
  const s = new ScriptedCluster();
  s.genesis();
  for (const r of s.createKey('k1')) if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  return s;
}

t.test('a full signing act moves Submitted -> Admitted -> PendingRemote -> Executed -> Published -> Settled', async (t) => {
  const s = withKey();
  ok(t, s.submit('op-1', s.act('k1')));
  t.match(s.issuePermit('op-1'), { ok: true, opState: 'PendingRemote' });
  t.match(s.execute('op-1'), { ok: true, opState: 'Executed' });
  t.match(s.publish('op-1'), { ok: true, opState: 'Published' });
  t.match(s.settle('op-1'), { ok: true, opState: 'Settled' });
  const op = s.state.cluster!.ops[rid('op-1')]!;
  t.same(op.history.map((h) => h.state), ['Submitted', 'Admitted', 'PendingRemote', 'Executed', 'Published', 'Settled']);
  t.equal(op.receipts.length, 3);
  t.same(checkInvariants(s.state), []);
});

t.test('events before genesis are refused GENESIS_MISSING, a second genesis GENESIS_EXISTS', async (t) => {
  const s = new ScriptedCluster();
  refusedWith(t, s, 'GENESIS_MISSING', () => s.decide({ kind: 'Unfreeze' }));
  ok(t, s.genesis());
  refusedWith(t, s, 'GENESIS_EXISTS', () => s.genesis());
});

t.test('bytes that are not the canonical encoding of an event are refused PAYLOAD_REJECTED', async (t) => {
  const s = new ScriptedCluster();
  s.genesis();
  const good = encodeEvent({ type: 'ActPublished', opId: rid('x'), nodeId: 'node-0', passport: 'passport-0-0' });
  const longForm = new Uint8Array([good[0]!, 0x78, ...good.subarray(1)]); // a text length not in shortest form
  refusedWith(t, s, 'PAYLOAD_REJECTED', () => s.entry(new Uint8Array([0xa1, 0x61, 0x78, 0xf9, 0x3c, 0x00])).result);
  refusedWith(t, s, 'PAYLOAD_REJECTED', () => s.entry(longForm).result);
  refusedWith(t, s, 'PAYLOAD_REJECTED', () => s.entry(encodeEvent({ type: 'ActPublished', opId: rid('x'), nodeId: 'node-0', passport: 'p' }).subarray(1)).result);
});

t.test('apply never modifies the state it is given', async (t) => {
  const s = withKey();
  const before = s.state;
  const bytes = snapshot(before);
  s.submit('op-1', s.act('k1'));
  s.issuePermit('op-1');
  t.ok(bytesEqual(snapshot(before), bytes));
});

// ------------------------------------------------------------------------------------------------
// Governance decisions through apply
// ------------------------------------------------------------------------------------------------

t.test('a decision with a forged approver signature is refused SIGNATURE_INVALID', async (t) => {
  const s = withKey();
  const d = s.decision({ kind: 'KeyRetired', keyId: 'k1' });
  const sig = d.approvals[0]!.signature.slice();
  sig[10]! ^= 0x40;
  const forged = { ...d, approvals: [{ ...d.approvals[0]!, signature: sig }, d.approvals[1]!] };
  refusedWith(t, s, 'SIGNATURE_INVALID', () => s.entry({ type: 'GovernanceDecision', decision: forged }).result);
  t.equal(s.state.cluster!.keys['k1']!.status, 'active');
});

t.test('a decision carrying one approval twice is refused and the duplicate never counts toward quorum', async (t) => {
  const s = withKey();
  const d = s.decision({ kind: 'KeyRetired', keyId: 'k1' }, [s.approvers[0]!]);
  refusedWith(t, s, 'PAYLOAD_REJECTED', () => s.entry({ type: 'GovernanceDecision', decision: { ...d, approvals: [d.approvals[0]!, d.approvals[0]!] } }).result);
});

t.test('a decision applied a second time is refused BINDING_MISMATCH (its parent is no longer the head)', async (t) => {
  const s = withKey();
  const d = s.decision({ kind: 'EmergencyFreeze', reason: 'drill' });
  ok(t, s.entry({ type: 'GovernanceDecision', decision: d }).result);
  ok(t, s.decide({ kind: 'Unfreeze' }));
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.entry({ type: 'GovernanceDecision', decision: d }).result);
  t.equal(s.state.cluster!.governance.frozen, null);
});

t.test('a decision applied after its expiry is refused DECISION_EXPIRED, even if a later entry carries an earlier stamp', async (t) => {
  const s = withKey();
  const d = s.decision({ kind: 'KeyRetired', keyId: 'k1' }, undefined, { expiresMs: s.nowMs + 10 });
  refusedWith(t, s, 'DECISION_EXPIRED', () => s.entry({ type: 'GovernanceDecision', decision: d }, s.nowMs + 10).result);
  // The ledger clock never runs backwards: a proposer with a slow clock cannot revive it.
  refusedWith(t, s, 'DECISION_EXPIRED', () => s.entry({ type: 'GovernanceDecision', decision: d }, d.body.issuedMs).result);
});

t.test('a decision signed under an earlier governance epoch is refused STALE_EPOCH', async (t) => {
  const s = withKey();
  const stale = s.decision({ kind: 'KeyRetired', keyId: 'k1' });
  ok(t, s.decide({ kind: 'PolicyChanged', policy: s.policy }));
  t.equal(s.state.cluster!.governance.epoch, 1);
  refusedWith(t, s, 'STALE_EPOCH', () => s.entry({ type: 'GovernanceDecision', decision: stale }).result);
});

t.test('a decision with fewer approvals than the quorum is refused QUORUM_NOT_MET', async (t) => {
  const s = withKey();
  refusedWith(t, s, 'QUORUM_NOT_MET', () => s.decide({ kind: 'KeyRetired', keyId: 'k1' }, [s.approvers[1]!]));
  // The missing approval added later in the ceremony completes it.
  const d = s.decision({ kind: 'KeyRetired', keyId: 'k1' }, [s.approvers[1]!]);
  ok(t, s.entry({ type: 'GovernanceDecision', decision: addApprovals(d, [s.approvers[2]!]) }).result);
});

t.test('a decision signed by an approver not on the roster in force is refused UNKNOWN_APPROVER', async (t) => {
  const s = withKey();
  const outsider = makeApproverKey('approver-9', seedOf('outsider'));
  refusedWith(t, s, 'UNKNOWN_APPROVER', () => s.decide({ kind: 'KeyRetired', keyId: 'k1' }, [s.approvers[0]!, outsider]));
});

t.test('authority continuity: after ApproversChanged only the new roster decides, and old approvers are unknown', async (t) => {
  const s = withKey();
  const fresh = [0, 1, 2].map((i) => makeApproverKey(`new-${i}`, seedOf(`new-approver-${i}`)));
  const roster = { approvers: fresh.map((a) => ({ id: a.id, publicKey: a.publicKey, roles: ['governor' as const] })), quorum: { threshold: 2, freezeThreshold: 2 } };
  ok(t, s.decide({ kind: 'ApproversChanged', roster }));
  t.equal(s.state.cluster!.governance.epoch, 1);
  refusedWith(t, s, 'UNKNOWN_APPROVER', () => s.decide({ kind: 'KeyRetired', keyId: 'k1' }, s.approvers.slice(0, 2)));
  ok(t, s.decide({ kind: 'KeyRetired', keyId: 'k1' }, fresh.slice(1)));
});

t.test('a roster change that could never reach quorum is refused and the old roster stays in force', async (t) => {
  const s = withKey();
  const roster = { approvers: s.roster.approvers, quorum: { threshold: 5, freezeThreshold: 1 } };
  refusedWith(t, s, 'PAYLOAD_REJECTED', () => s.decide({ kind: 'ApproversChanged', roster }));
  t.equal(s.state.cluster!.governance.roster.quorum.threshold, 2);
});

// ------------------------------------------------------------------------------------------------
// Key lifecycle
// ------------------------------------------------------------------------------------------------

t.test('KeyActivated without KeyObjectPublished is refused KEY_NOT_PUBLISHED', async (t) => {
  const s = new ScriptedCluster();
  s.genesis();
  ok(t, s.decide({ kind: 'DkgAuthorized', keyId: 'k1', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ['node-0', 'node-1', 'node-2'] }));
  for (const n of ['node-0', 'node-1', 'node-2']) ok(t, s.round1(n, 'k1', 0));
  for (const n of ['node-0', 'node-1', 'node-2']) ok(t, s.keyReady(n, 'k1', 0));
  refusedWith(t, s, 'KEY_NOT_PUBLISHED', () => s.activate('k1', 0));
  t.equal(s.state.cluster!.keys['k1']!.status, 'pending');
});

t.test('activation before the DKG completes is refused DKG_INCOMPLETE', async (t) => {
  const s = new ScriptedCluster();
  s.genesis();
  ok(t, s.decide({ kind: 'DkgAuthorized', keyId: 'k1', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ['node-0', 'node-1', 'node-2'] }));
  for (const n of ['node-0', 'node-1', 'node-2']) ok(t, s.round1(n, 'k1', 0));
  ok(t, s.keyReady('node-0', 'k1', 0));
  refusedWith(t, s, 'DKG_INCOMPLETE', () => s.activate('k1', 0));
  refusedWith(t, s, 'DKG_INCOMPLETE', () => s.publishKeyObject('k1', 0));
});

t.test('KeyReady before every participant published round 1 is refused DKG_INCOMPLETE', async (t) => {
  const s = new ScriptedCluster();
  s.genesis();
  ok(t, s.decide({ kind: 'DkgAuthorized', keyId: 'k1', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ['node-0', 'node-1'] }));
  ok(t, s.round1('node-0', 'k1', 0));
  refusedWith(t, s, 'DKG_INCOMPLETE', () => s.keyReady('node-0', 'k1', 0));
  refusedWith(t, s, 'WRONG_RECIPIENT', () => s.round1('node-2', 'k1', 0));
});

t.test('KeyObjectPublished must name the key_ready_cid of the recorded KeyReady statements', async (t) => {
  const s = new ScriptedCluster();
  s.genesis();
  ok(t, s.decide({ kind: 'DkgAuthorized', keyId: 'k1', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ['node-0', 'node-1'] }));
  for (const n of ['node-0', 'node-1']) ok(t, s.round1(n, 'k1', 0));
  for (const n of ['node-0', 'node-1']) ok(t, s.keyReady(n, 'k1', 0));
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.entry({ type: 'KeyObjectPublished', keyId: 'k1', keyEpoch: 0, keyReadyCid: new Uint8Array(32) }).result);
  ok(t, s.publishKeyObject('k1', 0));
  const wrong = s.decide({ kind: 'KeyActivated', keyId: 'k1', keyEpoch: 0, keyReadyCid: seedOf('other') });
  t.match(wrong, { ok: false, reason: 'BINDING_MISMATCH' });
  ok(t, s.activate('k1', 0));
});

t.test('participants that disagree on the group key never publish a key object', async (t) => {
  const s = new ScriptedCluster();
  s.genesis();
  ok(t, s.decide({ kind: 'DkgAuthorized', keyId: 'k1', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ['node-0', 'node-1'] }));
  for (const n of ['node-0', 'node-1']) ok(t, s.round1(n, 'k1', 0));
  ok(t, s.keyReady('node-0', 'k1', 0));
  ok(t, s.keyReady('node-1', 'k1', 0, s.groupKey('k-other')));
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.publishKeyObject('k1', 0));
});

t.test('a DKG with threshold 1 is refused: one node must never sign alone', async (t) => {
  const s = new ScriptedCluster();
  s.genesis();
  refusedWith(t, s, 'PAYLOAD_REJECTED', () => s.decide({ kind: 'DkgAuthorized', keyId: 'k1', scheme: 'ed25519', network: 'solana-devnet', threshold: 1, participants: ['node-0', 'node-1'] }));
});

t.test('refresh moves the key to a new epoch with the same public key; the old epoch becomes stale', async (t) => {
  const s = withKey();
  const pk = s.state.cluster!.keys['k1']!.publicKey!;
  for (const r of s.refreshKey('k1')) ok(t, r);
  const k = s.state.cluster!.keys['k1']!;
  t.equal(k.activeEpoch, 1);
  t.ok(bytesEqual(k.publicKey!, pk));
  t.equal(k.epochs['0']!.status, 'superseded');
  t.same(checkInvariants(s.state), []);
});

t.test('a refresh for an epoch other than the next one is refused STALE_EPOCH', async (t) => {
  const s = withKey();
  refusedWith(t, s, 'STALE_EPOCH', () => s.decide({ kind: 'KeyRefreshed', keyId: 'k1', keyEpoch: 5 }));
});

t.test('reshare to a new committee keeps the public key and refuses a key object with another one', async (t) => {
  const s = withKey();
  ok(t, s.decide({ kind: 'KeyReshared', keyId: 'k1', keyEpoch: 1, threshold: 2, participants: ['node-1', 'node-2'] }));
  for (const n of ['node-1', 'node-2']) ok(t, s.round1(n, 'k1', 1));
  ok(t, s.keyReady('node-1', 'k1', 1, s.groupKey('other')));
  ok(t, s.keyReady('node-2', 'k1', 1, s.groupKey('other')));
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.entry({ type: 'KeyObjectPublished', keyId: 'k1', keyEpoch: 1, keyReadyCid: new Uint8Array(32) }).result);
});

t.test('a ceremony stuck on a removed participant is superseded by the next reshare decision', async (t) => {
  const s = withKey();
  ok(t, s.decide({ kind: 'KeyRefreshed', keyId: 'k1', keyEpoch: 1 }));
  ok(t, s.round1('node-0', 'k1', 1));
  ok(t, s.decide({ kind: 'NodeRemoved', nodeId: 'node-2' }));
  refusedWith(t, s, 'UNKNOWN_NODE', () => s.decide({ kind: 'KeyRefreshed', keyId: 'k1', keyEpoch: 2 }));
  ok(t, s.decide({ kind: 'KeyReshared', keyId: 'k1', keyEpoch: 2, threshold: 2, participants: ['node-0', 'node-1'] }));
  t.equal(s.state.cluster!.keys['k1']!.epochs['1']!.status, 'aborted');
  for (const r of s.runCeremony('k1', 2)) ok(t, r);
  ok(t, s.activate('k1', 2));
  t.equal(s.state.cluster!.keys['k1']!.activeEpoch, 2);
  t.same(checkInvariants(s.state), []);
});

t.test('a retired key admits no more acts: KEY_NOT_ACTIVE', async (t) => {
  const s = withKey();
  ok(t, s.decide({ kind: 'KeyRetired', keyId: 'k1' }));
  const r = s.submit('op-1', s.act('k1', { keyEpoch: 0 }));
  t.match(r, { ok: false, reason: 'KEY_NOT_ACTIVE', applied: true, opState: 'Denied' });
});

// ------------------------------------------------------------------------------------------------
// Signing acts
// ------------------------------------------------------------------------------------------------

t.test('signing with a stale key epoch is refused STALE_EPOCH', async (t) => {
  const s = withKey();
  ok(t, s.submit('op-old', s.act('k1')));
  for (const r of s.refreshKey('k1')) ok(t, r);
  t.match(s.submit('op-1', s.act('k1', { keyEpoch: 0 })), { ok: false, reason: 'STALE_EPOCH', opState: 'Denied' });
  // An act admitted before the refresh cannot get a permit for the old epoch either.
  refusedWith(t, s, 'STALE_EPOCH', () => s.issuePermit('op-old'));
  ok(t, s.submit('op-2', s.act('k1', { keyEpoch: 1 })));
});

t.test('an act whose key refreshed between permit and execution is refused STALE_EPOCH at execution', async (t) => {
  const s = withKey();
  ok(t, s.submit('op-1', s.act('k1')));
  ok(t, s.issuePermit('op-1'));
  for (const r of s.refreshKey('k1')) ok(t, r);
  refusedWith(t, s, 'STALE_EPOCH', () => s.execute('op-1'));
});

t.test('a proposal under a fenced passport is refused SPLIT_BRAIN_FENCED until a decision rebinds the node', async (t) => {
  const s = withKey();
  const fencedPassport = s.proposer('node-1').passport;
  ok(t, s.fenceByDecision('node-1'));
  t.equal(s.state.cluster!.nodes['node-1']!.status, 'fenced');
  refusedWith(t, s, 'SPLIT_BRAIN_FENCED', () => s.submit('op-1', s.act('k1'), null, 'node-1'));
  ok(t, s.submit('op-2', s.act('k1'), null, 'node-0'));
  refusedWith(t, s, 'SPLIT_BRAIN_FENCED', () => s.issuePermit('op-2', 'node-1'));
  ok(t, s.decide({ kind: 'NodeRebound', nodeId: 'node-1', passport: 'passport-1-1' }));
  ok(t, s.submit('op-3', s.act('k1'), null, 'node-1'));
  // The old passport stays fenced for good.
  refusedWith(t, s, 'SPLIT_BRAIN_FENCED', () => s.entry({ type: 'ActPermitIssued', opId: rid('op-3'), nodeId: 'node-1', passport: fencedPassport }).result);
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.decide({ kind: 'NodeRebound', nodeId: 'node-1', passport: fencedPassport }));
});

t.test('two fencing reports for one passport by one reporter count once, and are not equivocation by the reporter', async (t) => {
  const s = withKey();
  t.match(s.fence('node-0', 'node-1', undefined, 'two leaders in term 4'), { ok: false, applied: true, reason: 'FENCE_PENDING' });
  t.match(s.fence('node-0', 'node-1', 'passport-1-0', 'state roots differ at index 90'), { ok: false, applied: false, replayed: true, reason: 'FENCE_PENDING' });
  t.equal(s.state.cluster!.nodes['node-1']!.status, 'active', 'one reporter fences nobody');
  t.equal(s.state.cluster!.nodes['node-0']!.equivocated, false);
  const a = s.statement('node-0', 'FencingRecord', { nodeId: 'node-1', passport: 'passport-1-0' }, { reason: 'a' });
  const b = s.statement('node-0', 'FencingRecord', { nodeId: 'node-1', passport: 'passport-1-0' }, { reason: 'b' });
  refusedWith(t, s, 'PAYLOAD_REJECTED', () => s.entry({ type: 'EquivocationEvidence', first: a, second: b }).result);
});

t.test('a node joins by decision with a fresh identity, and a removed node proposes nothing more: UNKNOWN_NODE', async (t) => {
  const s = withKey();
  const identityKey = s.groupKey('node-9-identity');
  ok(t, s.decide({ kind: 'NodeAdded', node: { id: 'node-9', identityKey, passport: 'passport-9-0' } }));
  refusedWith(t, s, 'INVALID_TRANSITION', () => s.decide({ kind: 'NodeAdded', node: { id: 'node-9', identityKey: s.groupKey('other-identity'), passport: 'p' } }));
  refusedWith(t, s, 'PAYLOAD_REJECTED', () => s.decide({ kind: 'NodeAdded', node: { id: 'node-10', identityKey, passport: 'p' } }));
  t.equal(s.state.cluster!.nodes['node-9']!.status, 'active');
  ok(t, s.decide({ kind: 'NodeRemoved', nodeId: 'node-1' }));
  refusedWith(t, s, 'UNKNOWN_NODE', () => s.submit('op-1', s.act('k1'), null, 'node-1'));
  refusedWith(t, s, 'UNKNOWN_NODE', () => s.decide({ kind: 'NodeRemoved', nodeId: 'node-1' }));
});

t.test('a fenced node cannot take part in a new ceremony', async (t) => {
  const s = withKey();
  ok(t, s.fenceByDecision('node-2'));
  refusedWith(t, s, 'SPLIT_BRAIN_FENCED', () => s.decide({ kind: 'DkgAuthorized', keyId: 'k2', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ['node-1', 'node-2'] }));
});

t.test('a step permit presented a second time is refused STEP_PERMIT_REUSED', async (t) => {
  const s = withKey();
  ok(t, s.submit('op-1', s.act('k1')));
  ok(t, s.issuePermit('op-1'));
  const permitId = s.state.cluster!.ops[rid('op-1')]!.permitId!;
  ok(t, s.execute('op-1'));
  refusedWith(t, s, 'STEP_PERMIT_REUSED', () => s.execute('op-1', { permitId }));
  // A permit is bound to its act: another act cannot borrow it.
  ok(t, s.submit('op-2', s.act('k1')));
  ok(t, s.issuePermit('op-2'));
  ok(t, s.fixSigningSet('op-2'));
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.execute('op-2', { permitId }));
  refusedWith(t, s, 'PERMIT_MISSING', () => s.execute('op-2', { permitId: new Uint8Array(32) }));
});

t.test('an aborted act leaves its permit spent', async (t) => {
  const s = withKey();
  ok(t, s.submit('op-1', s.act('k1')));
  ok(t, s.issuePermit('op-1'));
  const permitId = s.state.cluster!.ops[rid('op-1')]!.permitId!;
  ok(t, s.abort('op-1', 'REMOTE_TIMEOUT'));
  refusedWith(t, s, 'STEP_PERMIT_REUSED', () => s.execute('op-1', { permitId }));
  t.match(s.state.cluster!.ops[rid('op-1')], { state: 'Aborted', reason: 'REMOTE_TIMEOUT' });
});

t.test('an executed signature that does not verify under the group key is refused SIGNATURE_INVALID', async (t) => {
  const s = withKey();
  ok(t, s.submit('op-1', s.act('k1')));
  ok(t, s.issuePermit('op-1'));
  ok(t, s.fixSigningSet('op-1'));
  refusedWith(t, s, 'SIGNATURE_INVALID', () => s.execute('op-1', { signatures: [new Uint8Array(64).fill(1)] }));
  refusedWith(t, s, 'PAYLOAD_REJECTED', () => s.execute('op-1', { signatures: [...s.signatures('op-1'), ...s.signatures('op-1')] }));
  ok(t, s.execute('op-1'));
});

// ------------------------------------------------------------------------------------------------
// The signing set of a permit (ActSigningSetFixed)
// ------------------------------------------------------------------------------------------------

t.test('a permit gets one signing set: the same list again is a replay, another list is refused STEP_PERMIT_REUSED', async (t) => {
  const s = withKey();
  ok(t, s.submit('op-1', s.act('k1')));
  ok(t, s.issuePermit('op-1'));
  const list = s.signingSet('op-1');
  t.match(s.fixSigningSet('op-1', { commitments: list }), { ok: true, replayed: false, opState: 'PendingRemote' });
  t.same(s.state.cluster!.ops[rid('op-1')]!.signingSet?.commitments.map((m) => m.nodeId), ['node-0', 'node-1'], 'the op keeps the fixed list');
  const replay = s.fixSigningSet('op-1', { commitments: list, nodeId: 'node-2' });
  t.match(replay, { ok: true, replayed: true }, 'the same list again, from any proposer, is a replay');
  refusedWith(t, s, 'STEP_PERMIT_REUSED', () => s.fixSigningSet('op-1', { commitments: s.signingSet('op-1') }));
  refusedWith(t, s, 'STEP_PERMIT_REUSED', () => s.fixSigningSet('op-1', { commitments: s.signingSet('op-1', ['node-1', 'node-2']) }));
  const bumped = list.map((m, i) => (i === 0 ? { ...m, nonces: m.nonces.map((n) => ({ ...n, counter: n.counter + 1 })) } : m));
  refusedWith(t, s, 'STEP_PERMIT_REUSED', () => s.fixSigningSet('op-1', { commitments: bumped }));
  t.equal(s.state.cluster!.ops[rid('op-1')]!.signingSet?.commitments[0]?.nonces[0]?.counter, list[0]!.nonces[0]!.counter, 'the first list stays');
});

t.test('a signing set is fixed only while the act is PendingRemote under its own permit', async (t) => {
  const s = withKey();
  ok(t, s.submit('op-1', s.act('k1')));
  refusedWith(t, s, 'PERMIT_MISSING', () => s.fixSigningSet('op-1', { permitId: new Uint8Array(32), commitments: [] }));
  ok(t, s.issuePermit('op-1'));
  ok(t, s.submit('op-2', s.act('k1')));
  ok(t, s.issuePermit('op-2'));
  const other = s.state.cluster!.ops[rid('op-2')]!.permitId!;
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.fixSigningSet('op-1', { permitId: other }));
  ok(t, s.abort('op-2', 'REMOTE_TIMEOUT'));
  refusedWith(t, s, 'STEP_PERMIT_REUSED', () => s.fixSigningSet('op-2'));
  refusedWith(t, s, 'UNKNOWN_SESSION', () => s.fixSigningSet('op-9', { permitId: s.state.cluster!.ops[rid('op-1')]!.permitId!, commitments: [] }));
});

t.test('a signing set names t..n participants of the key epoch, sorted, each with its FROST identifier and valid group elements', async (t) => {
  const s = withKey();
  ok(t, s.submit('op-1', s.act('k1')));
  ok(t, s.issuePermit('op-1'));
  const [a, b, c] = s.signingSet('op-1', ['node-0', 'node-1', 'node-2']) as [never, never, never];
  const m = (x: object, over: object) => ({ ...x, ...over }) as typeof a;
  refusedWith(t, s, 'PAYLOAD_REJECTED', () => s.fixSigningSet('op-1', { commitments: [a] }));
  refusedWith(t, s, 'PAYLOAD_REJECTED', () => s.fixSigningSet('op-1', { commitments: [b, a] }));
  refusedWith(t, s, 'PAYLOAD_REJECTED', () => s.fixSigningSet('op-1', { commitments: [a, a] }));
  refusedWith(t, s, 'WRONG_RECIPIENT', () => s.fixSigningSet('op-1', { commitments: [a, m(b, { nodeId: 'node-3' })] }));
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.fixSigningSet('op-1', { commitments: [a, m(b, { identifier: (c as { identifier: string }).identifier })] }));
  const nonce = (x: { nonces: readonly object[] }, over: object) => ({ nonces: [{ ...x.nonces[0], ...over }] });
  refusedWith(t, s, 'PAYLOAD_REJECTED', () => s.fixSigningSet('op-1', { commitments: [a, m(b, nonce(b, { binding: new Uint8Array(32).fill(0xff) }))] }));
  refusedWith(t, s, 'PAYLOAD_REJECTED', () => s.fixSigningSet('op-1', { commitments: [a, m(b, nonce(b, { hiding: new Uint8Array(32) }))] }));
  refusedWith(t, s, 'PAYLOAD_REJECTED', () => s.fixSigningSet('op-1', { commitments: [a, m(b, { nonces: [...(b as { nonces: object[] }).nonces, ...(c as { nonces: object[] }).nonces.map((n) => ({ ...n, counter: 1e9 }))] })] }));
  ok(t, s.fenceByDecision('node-1'));
  refusedWith(t, s, 'SPLIT_BRAIN_FENCED', () => s.fixSigningSet('op-1', { commitments: [a, b] }));
  ok(t, s.fixSigningSet('op-1', { commitments: [a, c] }), 'two of three, the fenced node left out');
  ok(t, s.execute('op-1'));
});

t.test('execution needs the fixed signing set, and a signature whose R is that set\'s group commitment (RFC 9591 §4.5, §5.3)', async (t) => {
  const s = withKey();
  ok(t, s.submit('op-1', s.act('k1')));
  ok(t, s.issuePermit('op-1'));
  const op = s.state.cluster!.ops[rid('op-1')]!;
  // A valid Ed25519 signature under the group key, but with a nonce of no signing set.
  t.equal(op.act.kind, 'solana');
  // A valid Ed25519 signature under the group key over the message, but with a nonce of no signing set.
  const plain = ed25519.sign(op.act.tx, s.groupSecret('k1'));
  refusedWith(t, s, 'INVALID_TRANSITION', () => s.execute('op-1', { signatures: [plain], fixSet: false }));
  ok(t, s.fixSigningSet('op-1'));
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.execute('op-1', { signatures: [plain] }));
  // A signature over the messages digest (what a kernel signed before acts carried transactions) is not over the message.
  refusedWith(t, s, 'SIGNATURE_INVALID', () => s.execute('op-1', { signatures: [ed25519.sign(op.act.messageDigest, s.groupSecret('k1'))] }));
  const sig = s.frostSignature('op-1')!;
  t.ok(ed25519.verify(sig, op.act.tx, s.groupKey('k1')), 'the set\'s signature is an ordinary RFC 8032 signature over the Solana message');
  t.match(s.execute('op-1', { signatures: [sig] }), { ok: true, opState: 'Executed' });
  t.same(s.state.cluster!.ops[rid('op-1')]!.signatures, [sig]);
  refusedWith(t, s, 'STEP_PERMIT_REUSED', () => s.fixSigningSet('op-1', { commitments: s.signingSet('op-1') }));
  t.match(s.fixSigningSet('op-1', { commitments: s.state.cluster!.ops[rid('op-1')]!.signingSet!.commitments }), { ok: true, replayed: true }, 'the executed set itself is still a replay');
});

t.test('the fixed signing set is part of the state root and survives snapshot -> restore', async (t) => {
  const s = withKey();
  ok(t, s.submit('op-1', s.act('k1')));
  ok(t, s.issuePermit('op-1'));
  ok(t, s.fixSigningSet('op-1'));
  const back = restore(snapshot(s.state));
  t.ok(bytesEqual(stateRoot(back), stateRoot(s.state)), 'same root after restore');
  t.same(back.cluster!.ops[rid('op-1')]!.signingSet, s.state.cluster!.ops[rid('op-1')]!.signingSet);
  // The same state with one counter of the fixed list changed has another root.
  const raw = decode(snapshot(s.state)) as { cluster: { ops: Record<string, { signingSet: { commitments: { nonces: { counter: number }[] }[] } }> } };
  raw.cluster.ops[rid('op-1')]!.signingSet.commitments[0]!.nonces[0]!.counter += 1;
  const altered = restore(encode(raw as never));
  t.notOk(bytesEqual(stateRoot(altered), stateRoot(s.state)), 'the fixed list is in the state root');
});

t.test('an idempotency key replayed with different content is refused REPLAY_OR_CONFLICT', async (t) => {
  const s = withKey();
  const act = s.act('k1');
  ok(t, s.submit('op-1', act));
  refusedWith(t, s, 'REPLAY_OR_CONFLICT', () => s.submit('op-1', { ...act, amount: act.amount + 1n }));
  t.equal(s.state.cluster!.ops[rid('op-1')]!.act.amount, act.amount);
});

t.test('an idempotency key replayed with the same content returns the original result', async (t) => {
  const s = withKey();
  const act = s.act('k1');
  ok(t, s.submit('op-1', act));
  const again = s.submit('op-1', act, null, 'node-2');
  t.match(again, { ok: true, replayed: true, opState: 'Admitted' });
  t.equal(s.state.cluster!.opCount, 1);
  const denied = s.act('k1', { destination: 'bc1-attacker' });
  t.match(s.submit('op-2', denied), { ok: false, reason: 'POLICY_NO_RULE', applied: true });
  t.match(s.submit('op-2', denied), { ok: false, reason: 'POLICY_NO_RULE', applied: false, replayed: true });
});

t.test('admission while frozen is refused FROZEN; the freeze holds publication too; unfreeze restores both', async (t) => {
  const s = withKey();
  ok(t, s.submit('op-1', s.act('k1')));
  ok(t, s.issuePermit('op-1'));
  ok(t, s.execute('op-1'));
  ok(t, s.decide({ kind: 'EmergencyFreeze', reason: 'suspected compromise' }, [s.approvers[2]!]));
  t.match(s.submit('op-2', s.act('k1')), { ok: false, reason: 'FROZEN', opState: 'Denied' });
  refusedWith(t, s, 'FROZEN', () => s.publish('op-1'));
  refusedWith(t, s, 'FROZEN', () => s.decide({ kind: 'DkgAuthorized', keyId: 'k2', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ['node-0', 'node-1'] }));
  ok(t, s.decide({ kind: 'Unfreeze' }));
  ok(t, s.publish('op-1'));
  ok(t, s.submit('op-3', s.act('k1')));
});

t.test('an emergency freeze needs only freezeThreshold signers, but an auditor can approve nothing: ROLE_NOT_ALLOWED', async (t) => {
  const s = withKey();
  const auditor = makeApproverKey('auditor', seedOf('auditor'));
  const roster = { approvers: [...s.roster.approvers, { id: 'auditor', publicKey: auditor.publicKey, roles: ['auditor' as const] }], quorum: s.roster.quorum };
  ok(t, s.decide({ kind: 'ApproversChanged', roster }));
  refusedWith(t, s, 'ROLE_NOT_ALLOWED', () => s.decide({ kind: 'EmergencyFreeze', reason: 'drill' }, [auditor]));
  refusedWith(t, s, 'QUORUM_NOT_MET', () => s.decide({ kind: 'KeyRetired', keyId: 'k1' }, [s.approvers[2]!]));
  ok(t, s.decide({ kind: 'EmergencyFreeze', reason: 'drill' }, [s.approvers[2]!]));
});

// ------------------------------------------------------------------------------------------------
// Policy and the publication gate
// ------------------------------------------------------------------------------------------------

t.test('the policy denies destinations off the allow-list, unknown assets and amounts no rule covers, and window overruns, naming the rule', async (t) => {
  const s = withKey();
  t.match(s.submit('a', s.act('k1', { destination: 'bc1-unknown' })), { ok: false, reason: 'POLICY_NO_RULE', admission: { ruleId: null } });
  t.match(s.submit('b', s.act('k1', { kind: 'raw' })), { ok: false, reason: 'POLICY_NO_RULE' }, 'a raw message: no rule of this policy names the raw kind');
  t.match(s.submit('c', s.act('k1', { amount: 2_000_000n })), { ok: false, reason: 'POLICY_NO_RULE' });
  // Five approved acts of 1,000,000 lamports fill the key's 5,000,000 hourly window.
  let i = 0;
  for (; i < 5; i++) {
    const act = s.act('k1', { amount: 1_000_000n });
    t.match(s.submit(`v${i}`, act, s.approveAct(`v${i}`, act)), { ok: true, admission: { ruleId: 'sol-approved' } }, `act ${i} within the window`);
  }
  const over = s.act('k1', { amount: 1n });
  const r = s.submit('v-over', over);
  t.match(r, { ok: false, reason: 'POLICY_WINDOW_EXCEEDED', admission: { ruleId: 'sol-small' } }, 'the refusal names the first rule whose window was hit');
  t.match(r.ok ? '' : r.detail, /0\.005 SOL/, 'the detail gives the window\'s numbers');
  t.match(s.state.cluster!.ops[rid('v-over')]!.rule, { id: 'sol-small', action: 'BLOCK', detail: /0\.005 SOL/ }, 'the act records the rule whose window was hit, and that it blocked');
  // One hour later (by entry stamps) the window has moved on.
  s.nowMs += 3_600_000;
  t.match(s.submit('v-later', s.act('k1', { amount: 1n })), { ok: true, admission: { ruleId: 'sol-small' } });
});

t.test('an act a REQUIRE_APPROVAL rule holds needs an ActApproved decision bound to that act, signed by enough members of the group', async (t) => {
  const s = withKey();
  const act = s.act('k1', { amount: 50_000n });
  t.match(s.submit('a', act), { ok: false, reason: 'QUORUM_NOT_MET', admission: { ruleId: 'sol-approved', approvals: { k: 2, group: 'governors' } } });
  const other = s.act('k1', { amount: 60_000n });
  t.match(s.submit('b', act, s.approveAct('b', other)), { ok: false, reason: 'BINDING_MISMATCH' });
  t.match(s.submit('c', act, s.approveAct('c', act, [s.approvers[0]!])), { ok: false, reason: 'QUORUM_NOT_MET' });
  t.match(s.submit('d', act, s.approveAct('d', act)), { ok: true, opState: 'Admitted' });
  const forged = s.approveAct('e', act);
  const sig = forged.approvals[0]!.signature.slice();
  sig[0]! ^= 1;
  t.match(s.submit('e', act, { ...forged, approvals: [{ ...forged.approvals[0]!, signature: sig }, forged.approvals[1]!] }), { ok: false, reason: 'SIGNATURE_INVALID' });
});

t.test('the act records the rule that decided it: ALLOW, REQUIRE_APPROVAL with and without approvals, BLOCK and default deny', async (t) => {
  const s = withKey();
  const small = s.act('k1');
  ok(t, s.submit('allow', small));
  const allowed = s.state.cluster!.ops[rid('allow')]!;
  t.match(allowed.rule, { id: 'sol-small', action: 'ALLOW', detail: /^rule sol-small allows/ });
  t.equal((allowed.receipts[0] as { ruleId?: unknown }).ruleId, 'sol-small', 'the admission receipt names the rule');

  const big = s.act('k1', { amount: 50_000n });
  ok(t, s.submit('approved', big, s.approveAct('approved', big)));
  const approved = s.state.cluster!.ops[rid('approved')]!;
  t.match(approved.rule, { id: 'sol-approved', action: 'REQUIRE_APPROVAL', detail: /2 of 2 approvals of governors/ });
  t.equal((approved.receipts[0] as { ruleId?: unknown }).ruleId, 'sol-approved');

  t.match(s.submit('held', big), { ok: false, reason: 'QUORUM_NOT_MET' });
  t.match(s.state.cluster!.ops[rid('held')], { state: 'Denied', reason: 'QUORUM_NOT_MET', rule: { id: 'sol-approved', action: 'REQUIRE_APPROVAL', detail: /needs 2 approvals/ } });

  t.match(s.submit('nowhere', s.act('k1', { destination: 'bc1-unknown' })), { ok: false, reason: 'POLICY_NO_RULE' });
  t.match(s.state.cluster!.ops[rid('nowhere')], { state: 'Denied', rule: { id: null, action: 'BLOCK', detail: /default deny/ } }, 'default deny names no rule');

  const solSmall = s.policy.rules.find((r) => r.id === 'sol-small')!;
  ok(t, s.decide({ kind: 'PolicyChanged', policy: { ...s.policy, rules: [{ id: 'halt-small', match: solSmall.match, action: { kind: 'BLOCK' } }, ...s.policy.rules] } }));
  t.match(s.submit('blocked', s.act('k1')), { ok: false, reason: 'POLICY_BLOCKED' });
  t.match(s.state.cluster!.ops[rid('blocked')], { state: 'Denied', rule: { id: 'halt-small', action: 'BLOCK', detail: /^rule halt-small blocks/ } });

  // Checks outside the rules leave no rule behind: an approval of another act, a freeze.
  t.match(s.submit('unbound', big, s.approveAct('unbound', s.act('k1', { amount: 60_000n }))), { ok: false, reason: 'BINDING_MISMATCH' });
  t.equal(s.state.cluster!.ops[rid('unbound')]!.rule, null);
  ok(t, s.decide({ kind: 'EmergencyFreeze', reason: 'drill' }, [s.approvers[2]!]));
  t.match(s.submit('frozen', s.act('k1')), { ok: false, reason: 'FROZEN' });
  t.equal(s.state.cluster!.ops[rid('frozen')]!.rule, null);
  t.same(checkInvariants(s.state), []);

  // The invariants catch a record whose rule was changed after the fact.
  const forge = (label: string, rule: unknown): LedgerState => ({ ...s.state, cluster: { ...s.state.cluster!, ops: { ...s.state.cluster!.ops, [rid(label)]: { ...s.state.cluster!.ops[rid(label)]!, rule } as never } } });
  t.match(checkInvariants(forge('allow', { ...allowed.rule!, id: 'sol-approved' })), [/AdmissionReceipt names another rule/]);
  t.match(checkInvariants(forge('allow', null)), [/admitted without an admitting rule/]);
  t.match(checkInvariants(forge('nowhere', { id: 'sol-small', action: 'ALLOW', detail: '' })), [/Denied with an allowing rule/]);

  // Every record, rule included, survives the canonical encoding and a snapshot restore.
  for (const op of Object.values(s.state.cluster!.ops)) t.same(opFromCbor(op.opId, decode(encode(opToCbor(op)))), op, `${op.opId} round trips`);
  const back = restore(snapshot(s.state));
  t.same(Object.values(back.cluster!.ops).map((o) => o.rule), Object.values(s.state.cluster!.ops).map((o) => o.rule));
});

t.test('a recorded rule decodes strictly: an unknown action, an extra field, an empty id or an oversized detail are refused', async (t) => {
  const s = withKey();
  ok(t, s.submit('op-1', s.act('k1')));
  const op = s.state.cluster!.ops[rid('op-1')]!;
  const base = opToCbor(op) as { [k: string]: CborValue };
  const rule = base.rule as { [k: string]: CborValue };
  const bad: [string, CborValue][] = [
    ['unknown action', { ...rule, action: 'PERMIT' }],
    ['extra field', { ...rule, by: 'me' }],
    ['missing field', { id: rule.id as CborValue, action: rule.action as CborValue }],
    ['empty id', { ...rule, id: '' }],
    ['numeric id', { ...rule, id: 7 }],
    ['oversized detail', { ...rule, detail: 'x'.repeat(limits.ruleDetailBytesMax + 1) }],
    ['not a map', 'sol-small'],
  ];
  for (const [what, r] of bad) t.throws(() => opFromCbor(rid('op-1'), decode(encode({ ...base, rule: r }))), `${what} is refused`);
  const noRule = { ...base };
  delete noRule.rule;
  t.throws(() => opFromCbor(rid('op-1'), decode(encode(noRule))), 'a record without the rule field is refused');
  t.same(opFromCbor(rid('op-1'), decode(encode({ ...base, rule: null }))).rule, null);
});

t.test('a rule detail is clipped deterministically to whole characters within the bound', async (t) => {
  const max = limits.ruleDetailBytesMax;
  const bytes = (x: string): number => Buffer.byteLength(x, 'utf8');
  t.equal(clipRuleDetail('short'), 'short');
  const exact = 'a'.repeat(max);
  t.equal(clipRuleDetail(exact), exact, 'a detail of exactly the bound is kept');
  const long = 'é'.repeat(max);
  const clipped = clipRuleDetail(long);
  t.ok(bytes(clipped) <= max && clipped.endsWith('\u2026'), 'clipped with a mark');
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: max * 2 }), (d) => {
    const c = clipRuleDetail(d);
    if (bytes(d) <= max) return c === d;
    const body = c.slice(0, -1);
    return bytes(c) <= max && c.endsWith('\u2026') && d.startsWith(body) && clipRuleDetail(d) === c && bytes(body) + bytes([...d.slice(body.length)][0]!) + 3 > max;
  }), { numRuns: 300, ...(process.env.FC_SEED !== undefined ? { seed: Number(process.env.FC_SEED) } : {}) });
});

t.test('an act admitted with its approvals is released at the gate by them; one whose rule asks for approvals only after admission waits for a PublicationReleased decision', async (t) => {
  const s = withKey();
  const act = s.act('k1', { amount: 50_000n });
  ok(t, s.submit('op-1', act, s.approveAct('op-1', act)));
  ok(t, s.issuePermit('op-1'));
  ok(t, s.execute('op-1'));
  ok(t, s.publish('op-1'), 'released by the approval it was admitted with');

  const small = s.act('k1');
  ok(t, s.submit('op-2', small));
  ok(t, s.issuePermit('op-2'));
  ok(t, s.execute('op-2'));
  // The small-payment rule is withdrawn: acts like op-2 now need two governors.
  ok(t, s.decide({ kind: 'PolicyChanged', policy: { ...s.policy, rules: s.policy.rules.filter((r) => r.id !== 'sol-small') } }));
  const held = refusedWith(t, s, 'PUBLICATION_DENIED', () => s.publish('op-2'));
  t.match(held.ok ? '' : held.detail, /rule sol-approved needs 2 approvals of governors/);
  t.equal(s.state.cluster!.ops[rid('op-2')]!.state, 'Executed', 'executed is not published');
  const aCid = s.state.cluster!.ops[rid('op-2')]!.actCid;
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.decide({ kind: 'PublicationReleased', opId: rid('op-2'), actCid: aCid, displayHash: seedOf('another display') }, undefined, { parentCid: aCid }));
  ok(t, s.decide({ kind: 'PublicationReleased', opId: rid('op-2'), actCid: aCid, displayHash: small.displayHash }, undefined, { parentCid: aCid }));
  ok(t, s.publish('op-2'));
});

t.test('publication is denied when the destination left the allow-list after admission, naming the rule', async (t) => {
  const s = withKey();
  ok(t, s.submit('op-1', s.act('k1', { destination: 'bc1-exchange' })));
  ok(t, s.issuePermit('op-1'));
  ok(t, s.execute('op-1'));
  const exchange = resolveDestination('bc1-exchange', 'solana-devnet');
  const block = { id: 'exchange-closed', match: { ...s.policy.rules.find((r) => r.id === 'sol-small')!.match, amount: null, windows: [], destination: { allow: [], ownKeys: false, deny: [exchange] } }, action: { kind: 'BLOCK' as const } };
  ok(t, s.decide({ kind: 'PolicyChanged', policy: { ...s.policy, rules: [block, ...s.policy.rules] } }));
  const r = refusedWith(t, s, 'PUBLICATION_DENIED', () => s.publish('op-1'));
  t.match(r.ok ? '' : r.detail, /rule exchange-closed \(POLICY_BLOCKED\)/);
});

// ------------------------------------------------------------------------------------------------
// Equivocation
// ------------------------------------------------------------------------------------------------

t.test('two conflicting statements signed by one node are validated as equivocation: node flagged, its ceremonies and acts aborted', async (t) => {
  const s = withKey();
  ok(t, s.submit('op-1', s.act('k1')));
  ok(t, s.issuePermit('op-1', 'node-1'));
  ok(t, s.decide({ kind: 'DkgAuthorized', keyId: 'k2', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ['node-0', 'node-1'] }));
  const a = s.statement('node-1', 'RaftVote', { term: 7 }, { votedFor: 'node-0' });
  const b = s.statement('node-1', 'RaftVote', { term: 7 }, { votedFor: 'node-2' });
  ok(t, s.entry({ type: 'EquivocationEvidence', first: a, second: b }).result);
  const c = s.state.cluster!;
  t.equal(c.nodes['node-1']!.equivocated, true);
  t.equal(Object.keys(c.evidence).length, 1);
  t.equal(c.keys['k2']!.epochs['0']!.status, 'aborted');
  t.match(c.ops[rid('op-1')], { state: 'Aborted', reason: 'EQUIVOCATION' });
  t.match(s.entry({ type: 'EquivocationEvidence', first: b, second: a }).result, { ok: true, replayed: true });
  t.same(checkInvariants(s.state), []);
});

t.test('evidence that is not two different statements by one node about one slot is refused', async (t) => {
  const s = withKey();
  const a = s.statement('node-1', 'RaftVote', { term: 7 }, { votedFor: 'node-0' });
  refusedWith(t, s, 'PAYLOAD_REJECTED', () => s.entry({ type: 'EquivocationEvidence', first: a, second: a }).result);
  refusedWith(t, s, 'PAYLOAD_REJECTED', () => s.entry({ type: 'EquivocationEvidence', first: a, second: s.statement('node-1', 'RaftVote', { term: 8 }, { votedFor: 'node-2' }) }).result);
  const forged = { ...s.statement('node-1', 'RaftVote', { term: 7 }, { votedFor: 'node-2' }), signature: a.signature };
  refusedWith(t, s, 'SIGNATURE_INVALID', () => s.entry({ type: 'EquivocationEvidence', first: a, second: forged }).result);
});

t.test('a node that signs two different KeyReady statements for one ceremony is caught in the act: EQUIVOCATION', async (t) => {
  const s = new ScriptedCluster();
  s.genesis();
  ok(t, s.decide({ kind: 'DkgAuthorized', keyId: 'k1', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ['node-0', 'node-1'] }));
  for (const n of ['node-0', 'node-1']) ok(t, s.round1(n, 'k1', 0));
  ok(t, s.keyReady('node-0', 'k1', 0));
  t.match(s.keyReady('node-0', 'k1', 0), { ok: true, replayed: true }, 'the same statement again is a replay');
  t.match(s.keyReady('node-0', 'k1', 0, s.groupKey('other')), { ok: false, reason: 'EQUIVOCATION', applied: true });
  t.equal(s.state.cluster!.nodes['node-0']!.equivocated, true);
  t.equal(s.state.cluster!.keys['k1']!.epochs['0']!.status, 'aborted');
});

// ------------------------------------------------------------------------------------------------
// Chain, root, snapshot
// ------------------------------------------------------------------------------------------------

t.test('two replicas applying the same log reach the same state root at every index', async (t) => {
  const s = withKey();
  s.submit('op-1', s.act('k1'));
  s.issuePermit('op-1');
  let replica: LedgerState = new ScriptedCluster().state;
  for (const e of s.log) replica = apply(replica, e).state;
  t.ok(bytesEqual(stateRoot(replica), stateRoot(s.state)));
  t.ok(bytesEqual(replica.chainHead, s.state.chainHead));
});

t.test('a refused entry moves the index but not the hash chain', async (t) => {
  const s = withKey();
  const head = s.state.chainHead;
  const height = s.state.height;
  s.decide({ kind: 'Unfreeze' });
  t.equal(s.state.height, height);
  t.ok(bytesEqual(s.state.chainHead, head));
  t.equal(s.state.index, s.log.length);
});

t.test('signDecision helper signs in key order and verifies against the script roster', async (t) => {
  const s = withKey();
  const d = signDecision(s.decisionBody({ kind: 'Unfreeze' }), s.approvers.slice(1));
  t.same(d.approvals.map((a) => a.approverId), ['approver-1', 'approver-2']);
});

t.test('a revoked certificate is held in the governance state, survives snapshot -> restore and is bounded', async (t) => {
  const s = withKey();
  const rootBefore = stateRoot(s.state);
  t.equal(snapshot(s.state).length, snapshot(restore(snapshot(s.state))).length, 'a state without revocations encodes as before');
  const notAfterMs = s.nowMs + 30 * 86_400_000;
  const revoke = { kind: 'OperatorRevoked' as const, serial: '7f3a', operatorId: 'ops-7', reason: 'laptop lost', notAfterMs };
  refusedWith(t, s, 'QUORUM_NOT_MET', () => s.decide(revoke, [s.approvers[0]!]));
  ok(t, s.decide(revoke));
  const g = s.state.cluster!.governance;
  t.match(g.revoked, [{ serial: '7f3a', holder: 'operator', id: 'ops-7', reason: 'laptop lost', notAfterMs }]);
  t.not(Buffer.from(stateRoot(s.state)).toString('hex'), Buffer.from(rootBefore).toString('hex'), 'the revocation is part of the state root');
  t.ok(bytesEqual(stateRoot(restore(snapshot(s.state))), stateRoot(s.state)), 'snapshot -> restore keeps it');
  refusedWith(t, s, 'INVALID_TRANSITION', () => s.decide(revoke));
  refusedWith(t, s, 'UNKNOWN_NODE', () => s.decide({ kind: 'NodeCertificateRevoked', serial: '1', nodeId: 'n-none', reason: 'x', notAfterMs }));
  ok(t, s.decide({ kind: 'NodeCertificateRevoked', serial: '7f3a', nodeId: 'node-1', reason: 'host rebuilt', notAfterMs }), 'the same serial of another holder kind is its own entry');
  refusedWith(t, s, 'INVALID_TRANSITION', () => s.decide({ ...revoke, serial: '99', notAfterMs: s.nowMs - limits.revocationExpiryGraceMs }));
  ok(t, s.decide({ kind: 'EmergencyFreeze', reason: 'incident' }));
  ok(t, s.decide({ ...revoke, serial: '42' }), 'revocation applies while frozen (containment)');
  // Past notAfter and the grace, the next revocation drops the expired entries.
  s.nowMs = notAfterMs + limits.revocationExpiryGraceMs + 1;
  ok(t, s.decide({ ...revoke, serial: '43', notAfterMs: s.nowMs + 86_400_000 }));
  t.same(s.state.cluster!.governance.revoked!.map((r) => r.serial), ['43']);
  t.same(checkInvariants(s.state), []);
});

t.test('revocations beyond limits.revokedMax are refused LIMIT_EXCEEDED', async (t) => {
  const s = withKey();
  const notAfterMs = s.nowMs + 30 * 86_400_000;
  // Filled through the state directly (a thousand signed decisions would test nothing more).
  const c = s.state.cluster!;
  const full = Array.from({ length: limits.revokedMax }, (_, i) => ({ serial: (i + 1).toString(16), holder: 'operator' as const, id: `op-${i}`, reason: 'r', notAfterMs, decisionCid: new Uint8Array(32), sinceIndex: 1 }));
  s.state = { ...s.state, cluster: { ...c, governance: { ...c.governance, revoked: full } } };
  refusedWith(t, s, 'LIMIT_EXCEEDED', () => s.decide({ kind: 'OperatorRevoked', serial: 'abcdef', operatorId: 'ops-x', reason: 'r', notAfterMs }));
});

t.test('a serial that is not canonical lowercase hex is refused PAYLOAD_REJECTED', async (t) => {
  const s = withKey();
  for (const serial of ['', '0A', '00a', 'xyz', '1'.repeat(41)]) {
    refusedWith(t, s, 'PAYLOAD_REJECTED', () => s.decide({ kind: 'OperatorRevoked', serial, operatorId: 'ops-7', reason: 'r', notAfterMs: s.nowMs + 1000 }));
  }
});
