/**
 * RepairAuthorized and ShareRepaired on the real state machine (ScriptedCluster): a decision lets
 * t helpers rebuild a participant's share (its own identifier) or enrol a roster node that holds
 * none (an identifier past the participants); the node then reports, in its own signed name, that
 * its kernel holds the rebuilt share and which verifying share it matched. Every refusal carries
 * its reason code and changes nothing. A failing property prints its seed; replay with
 * FC_SEED=<seed>.
 */
import t, { type Test } from 'tap';
import fc from 'fast-check';
import {
  ScriptedCluster, backupRecordKey, bytesEqual, checkInvariants, encodeEvent, repairsOf, restore, snapshot, stateRoot, toHex,
  type ApplyResult, type DecisionAction, type LedgerEvent,
} from '../../ledger/index.js';
import { frostIdentifier } from '../../ledger/signing-set.js';
import { epochSigners, nextEnrolIdentifier } from '../../ledger/signers.js';
import { consumedKey } from '../../ledger/state.js';
import { signProposed } from '../../ledger/proposer-sig.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { backupList } from '../../node/admin/backups.js';
import { formatBackupList } from '../../node/commands/backup.js';

const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31);

type Repair = Extract<DecisionAction, { kind: 'RepairAuthorized' }>;
type Repaired = Extract<LedgerEvent, { type: 'ShareRepaired' }>;

function ok(t: Test, r: ApplyResult, what?: string): void {
  t.ok(r.ok, what ?? (r.ok ? r.effect : `${r.reason}: ${r.detail}`));
}

function refusedWith(t: Test, s: ScriptedCluster, reason: string, run: () => ApplyResult, what?: string): void {
  const before = s.state;
  const r = run();
  t.match(r, { ok: false, reason, applied: false }, what ?? `refused ${reason}`);
  t.ok(bytesEqual(stateRoot({ ...s.state, index: before.index, clockMs: before.clockMs }), stateRoot(before)), 'nothing but index and clock changed');
}

/** node-0..2 hold k1 (2-of-3, ed25519); node-3 is on the roster and holds no share. */
function cluster(): ScriptedCluster {
  const s = new ScriptedCluster({ label: 'repair-authorized', nodes: 4 });
  s.genesis();
  for (const r of s.createKey('k1', ['node-0', 'node-1', 'node-2'])) if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  return s;
}

const groupKeyOf = (s: ScriptedCluster, keyEpoch = 0): Uint8Array => s.state.cluster!.keys['k1']!.epochs[String(keyEpoch)]!.groupKey!;
const idAt = (n: number): string => frostIdentifier('ed25519', n);

function repair(s: ScriptedCluster, over: Partial<Repair> = {}): Repair {
  return { kind: 'RepairAuthorized', nodeId: 'node-2', keyId: 'k1', keyEpoch: 0, identifier: idAt(3), helpers: ['node-0', 'node-1'], groupKey: groupKeyOf(s, over.keyEpoch ?? 0), ...over };
}

const recordOf = (s: ScriptedCluster, nodeId: string, keyEpoch = 0) => repairsOf(s.state.cluster!)[backupRecordKey('k1', keyEpoch, nodeId)];
const point = (k: number): Uint8Array => ed25519.Point.BASE.multiply(BigInt(k)).toBytes();

function report(s: ScriptedCluster, nodeId: string, over: Partial<Repaired> = {}): Repaired {
  const rec = recordOf(s, nodeId);
  return {
    type: 'ShareRepaired', keyId: 'k1', keyEpoch: 0, identifier: rec?.identifier ?? idAt(3), decisionCid: rec?.decisionCid ?? new Uint8Array(32),
    verifyingShare: point(7), ...s.proposer(nodeId), ...over,
  };
}

t.test('a rebuild is recorded; the node\'s ShareRepaired under it is accepted once', async (t) => {
  const s = cluster();
  ok(t, s.decide(repair(s)));
  const at = s.state.index;
  t.match(recordOf(s, 'node-2'), { nodeId: 'node-2', identifier: idAt(3), helpers: ['node-0', 'node-1'], enrol: false, authorizedIndex: at, repaired: null });
  const auditor = { id: 'audra', role: 'auditor' as const };
  const entryOf = () => backupList(auditor, s.state).entries.find((e) => e.nodeId === 'node-2');
  t.match(entryOf(), { repairedIndex: 0, repairDecisionCid: toHex(recordOf(s, 'node-2')!.decisionCid) }, 'backup list: repair authorized, not yet reported');
  const r = s.entry(report(s, 'node-2')).result;
  ok(t, r, 'the report is accepted');
  t.match(entryOf(), { repairedIndex: s.state.index }, 'backup list shows the repair');
  t.match(formatBackupList(backupList(auditor, s.state)), /key k1 epoch 0 node-2: MISSING\n {4}repaired by its peers at \d{4}-.* \(index \d+\) under RepairAuthorized [0-9a-f]{64}/, 'and prints it');
  t.match(recordOf(s, 'node-2')!.repaired, { index: s.state.index }, 'the record carries the report');
  t.ok(bytesEqual(recordOf(s, 'node-2')!.repaired!.verifyingShare, point(7)), 'and the verifying share reported');
  t.same(checkInvariants(s.state), []);
  t.ok(bytesEqual(stateRoot(restore(snapshot(s.state))), stateRoot(s.state)), 'the record survives snapshot and restore');
  t.match(s.entry(report(s, 'node-2')).result, { ok: true, replayed: true }, 'the same report again is a replay');
  refusedWith(t, s, 'REPLAY_OR_CONFLICT', () => s.entry(report(s, 'node-2', { verifyingShare: point(8) })).result, 'another verifying share under the same decision');
});

t.test('an enrolment: a roster node that holds no share, under the next identifier; another node cannot take it', async (t) => {
  const s = cluster();
  ok(t, s.decide(repair(s, { nodeId: 'node-3', identifier: idAt(4), helpers: ['node-1', 'node-2'] })));
  t.match(recordOf(s, 'node-3'), { enrol: true, identifier: idAt(4) });
  t.same(s.participants('k1', 0), ['node-0', 'node-1', 'node-2'], 'the epoch\'s participants are those of its ceremony');
  ok(t, s.entry(report(s, 'node-3')).result, 'node-3 reports its enrolled share');
  t.same(checkInvariants(s.state), []);
  ok(t, s.decide(repair(s, { nodeId: 'node-3', identifier: idAt(4), helpers: ['node-0', 'node-2'] })), 'the enrolment may be run again, under the same identifier');
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.decide(repair(s, { nodeId: 'node-3', identifier: idAt(5) })), 'the same node under another new identifier');
});

t.test('refusals of the decision: each with its code, nothing recorded', async (t) => {
  const s = cluster();
  refusedWith(t, s, 'REPAIR_HELPERS_INVALID', () => s.decide(repair(s, { helpers: ['node-0'] })), 'fewer helpers than the threshold');
  refusedWith(t, s, 'REPAIR_HELPERS_INVALID', () => s.decide(repair(s, { helpers: ['node-0', 'node-0'] })), 'a helper twice');
  refusedWith(t, s, 'REPAIR_HELPERS_INVALID', () => s.decide(repair(s, { helpers: ['node-0', 'node-2'] })), 'the target among its helpers');
  refusedWith(t, s, 'REPAIR_HELPERS_INVALID', () => s.decide(repair(s, { helpers: ['node-0', 'node-3'] })), 'a helper that holds no share');
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.decide(repair(s, { identifier: idAt(2) })), 'a participant under another participant\'s identifier');
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.decide(repair(s, { nodeId: 'node-3', identifier: idAt(1) })), 'an enrolment under a participant\'s identifier');
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.decide(repair(s, { groupKey: point(9) })), 'another group key');
  refusedWith(t, s, 'UNKNOWN_NODE', () => s.decide(repair(s, { nodeId: 'node-9', identifier: idAt(4) })), 'a node off the roster');
  refusedWith(t, s, 'UNKNOWN_KEY', () => s.decide(repair(s, { keyId: 'k9' })));
  refusedWith(t, s, 'STALE_EPOCH', () => s.decide({ ...repair(s), keyEpoch: 1 }));
  ok(t, s.decide(repair(s, { nodeId: 'node-3', identifier: idAt(4) })));
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.decide(repair(s, { nodeId: 'node-1', identifier: idAt(4), helpers: ['node-0', 'node-2'] })), 'an identifier another node is enrolled under');
  t.same(checkInvariants(s.state), []);
  for (const r of s.refreshKey('k1')) ok(t, r);
  refusedWith(t, s, 'STALE_EPOCH', () => s.decide(repair(s)), 'epoch 0 is superseded');
  ok(t, s.decide({ kind: 'KeyRetired', keyId: 'k1' }));
  refusedWith(t, s, 'KEY_NOT_ACTIVE', () => s.decide(repair(s, { keyEpoch: 1 })));
});

t.test('refusals of the report: no decision, another decision or identifier, not a group element, unsigned or signed by another node', async (t) => {
  const s = cluster();
  refusedWith(t, s, 'REPAIR_NOT_AUTHORIZED', () => s.entry(report(s, 'node-2')).result, 'no RepairAuthorized at all');
  ok(t, s.decide(repair(s)));
  const right = report(s, 'node-2');
  refusedWith(t, s, 'REPAIR_NOT_AUTHORIZED', () => s.entry({ ...right, ...s.proposer('node-1') }).result, 'node-1 reports under node-2\'s decision');
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.entry({ ...right, decisionCid: right.decisionCid.map((b) => b ^ 1) }).result, 'another decision cid');
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.entry({ ...right, identifier: idAt(2) }).result, 'another identifier');
  refusedWith(t, s, 'PAYLOAD_REJECTED', () => s.entry({ ...right, verifyingShare: new Uint8Array(32) }).result, 'a verifying share that is no group element');
  refusedWith(t, s, 'PROPOSER_SIGNATURE_INVALID', () => s.entry(encodeEvent(right)).result, 'unsigned');
  refusedWith(t, s, 'PROPOSER_SIGNATURE_INVALID', () => s.entry(encodeEvent(signProposed(s.clusterId, right, s.node('node-1').secretKey))).result, 'signed by node-1');
  ok(t, s.decide(repair(s, { helpers: ['node-1', 'node-0'] })), 'a second decision replaces the first');
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.entry(right).result, 'the report under the earlier decision');
  ok(t, s.entry(encodeEvent(signProposed(s.clusterId, report(s, 'node-2'), s.node('node-2').secretKey))).result, 'signed by node-2 under the decision in force');
});

t.test('property: changing any one field of an accepted report gets it refused with a reason code, nothing changed', async (t) => {
  t.comment(`FC_SEED=${seed}`);
  const s = cluster();
  ok(t, s.decide(repair(s)));
  ok(t, s.decide(repair(s, { nodeId: 'node-0', identifier: idAt(1), helpers: ['node-1', 'node-2'] })));
  const fields = ['keyId', 'keyEpoch', 'identifier', 'decisionCid', 'nodeId'] as const;
  fc.assert(fc.property(fc.constantFrom(...fields), fc.integer({ min: 1, max: 255 }), (field, n) => {
    const e = report(s, 'node-2');
    const changed: Repaired = {
      ...e,
      ...(field === 'keyId' ? { keyId: `k1-${n}` } : {}),
      ...(field === 'keyEpoch' ? { keyEpoch: n } : {}),
      ...(field === 'identifier' ? { identifier: idAt(4 + (n % 50)) } : {}),
      ...(field === 'decisionCid' ? { decisionCid: e.decisionCid.map((b, i) => (i === n % 32 ? b ^ n : b)) } : {}),
      ...(field === 'nodeId' ? s.proposer(n % 2 === 0 ? 'node-1' : 'node-3') : {}),
    };
    const before = s.state;
    const r = s.entry(changed).result;
    if (r.ok) {
      t.comment(`accepted with ${field} changed (${n}): ${r.effect}`);
      return false;
    }
    return typeof r.reason === 'string' && bytesEqual(stateRoot({ ...s.state, index: before.index, clockMs: before.clockMs }), stateRoot(before));
  }), { seed, numRuns: 100 });
  ok(t, s.entry(report(s, 'node-2')).result, 'the unchanged report passes after all of them');
});

t.test('property: a RepairAuthorized is accepted exactly when its helpers, target and identifier follow the rules', async (t) => {
  t.comment(`FC_SEED=${seed}`);
  const s = cluster();
  const participants = ['node-0', 'node-1', 'node-2'];
  const nodes = ['node-0', 'node-1', 'node-2', 'node-3', 'node-9'];
  let accepted = 0;
  fc.assert(fc.property(
    fc.constantFrom(...nodes),
    // Helpers drawn as the rules want them half the time, anything the rest.
    fc.oneof(fc.shuffledSubarray(participants, { minLength: 2, maxLength: 2 }), fc.shuffledSubarray(participants, { minLength: 2 }), fc.array(fc.constantFrom(...nodes), { maxLength: 4 })),
    fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 6 })),
    fc.constantFrom(true, true, true, false),
    (target, helpers, drawn, rightKey) => {
      // 0: the identifier the rules give the target (its own, or the next one past the participants).
      const position = drawn !== 0 ? drawn : participants.includes(target) ? participants.indexOf(target) + 1 : participants.length + 1;
      const action = repair(s, { nodeId: target, helpers, identifier: idAt(position), ...(rightKey ? {} : { groupKey: point(3) }) });
      const enrolled = Object.values(repairsOf(s.state.cluster!)).filter((r) => r.enrol);
      const own = participants.indexOf(target);
      const expected = rightKey && target !== 'node-9'
        && helpers.length >= 2 && new Set(helpers).size === helpers.length && helpers.every((h) => participants.includes(h)) && !helpers.includes(target)
        && (own >= 0
          ? position === own + 1
          : position > participants.length && !enrolled.some((r) => r.nodeId !== target && r.identifier === idAt(position)) && enrolled.every((r) => r.nodeId !== target || r.identifier === idAt(position)));
      const before = s.state;
      const r = s.decide(action);
      if (r.ok !== expected) {
        t.comment(`target ${target}, helpers ${helpers.join(',')}, position ${position}, right key ${rightKey}: ${r.ok ? 'accepted' : `${r.reason} ${r.detail}`}`);
        return false;
      }
      if (r.ok) accepted++;
      if (!r.ok && !bytesEqual(stateRoot({ ...s.state, index: before.index, clockMs: before.clockMs }), stateRoot(before))) return false;
      return checkInvariants(s.state).length === 0;
    },
  ), { seed, numRuns: 200 });
  t.ok(accepted > 0, `${accepted} of the decisions were accepted: the property saw both verdicts`);
});

t.test('an enrolled holder stands in signing sets once its report is recorded, under its identifier, in identifier order', async (t) => {
  const s = cluster();
  ok(t, s.decide(repair(s, { nodeId: 'node-3', identifier: idAt(4), helpers: ['node-1', 'node-2'] })));
  t.same(epochSigners(s.state.cluster!, 'ed25519', 'k1', s.state.cluster!.keys['k1']!.epochs['0']!).map((h) => h.nodeId), ['node-0', 'node-1', 'node-2'], 'before its report the enrolled node is no holder');
  ok(t, s.submit('a1', s.act('k1')));
  ok(t, s.issuePermit('a1'));
  refusedWith(t, s, 'WRONG_RECIPIENT', () => s.fixSigningSet('a1', { commitments: s.signingSet('a1', ['node-0', 'node-3']) }), 'a set naming the enrolled node before its ShareRepaired');
  ok(t, s.entry(report(s, 'node-3')).result, 'node-3 reports its enrolled share');
  const holders = epochSigners(s.state.cluster!, 'ed25519', 'k1', s.state.cluster!.keys['k1']!.epochs['0']!);
  t.same(holders.map((h) => [h.nodeId, h.identifier, h.enrolled]), [['node-0', idAt(1), false], ['node-1', idAt(2), false], ['node-2', idAt(3), false], ['node-3', idAt(4), true]], 'the holders: the participants, then the enrolled node under its identifier');
  t.same(holders[3]!.verifyingShare, point(7), 'with the verifying share its report carried');
  const listed = backupList({ id: 'audra', role: 'auditor' }, s.state);
  t.match(listed.entries.find((e) => e.nodeId === 'node-3'), { identifier: idAt(4), enrolled: true, backedUp: false, repairedIndex: Number }, 'backup list shows the enrolled holder with its identifier');
  t.equal(listed.missing, 3, 'the enrolled holder is not counted among the missing backups (KeyBackedUp covers participants)');
  const printed = formatBackupList(listed);
  t.match(printed, /node-3: enrolled by repair as identifier [0-9a-f]+, no backup of its own.*\n {4}holds its share since .* it signs with the other holders\n/, 'backup list prints the enrolled holder');
  t.match(printed, /\n0 of 3 shares backed up, 3 missing\n/, 'and counts the participants only');
  const set = s.signingSet('a1', ['node-0', 'node-3']);
  t.equal(set[1]!.identifier, idAt(4), 'the enrolled node signs under its enrolled identifier');
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.fixSigningSet('a1', { commitments: [set[0]!, { ...set[1]!, identifier: idAt(3) }] }), 'the enrolled node under a participant\'s identifier');
  refusedWith(t, s, 'PAYLOAD_REJECTED', () => s.fixSigningSet('a1', { commitments: [set[1]!, set[0]!] }), 'the set out of identifier order');
  refusedWith(t, s, 'PAYLOAD_REJECTED', () => s.fixSigningSet('a1', { commitments: [set[1]!] }), 'the enrolled node alone, below the threshold');
  ok(t, s.fixSigningSet('a1', { commitments: set }), 'node-0 and the enrolled node-3 form the signing set');
  ok(t, s.execute('a1'), 'the act executes with the signature over the fixed lists');
  t.ok(s.state.cluster!.consumed[consumedKey('k1', 0, 'node-3')]! >= set[1]!.nonces[0]!.counter, 'the ledger records the enrolled node\'s consumed nonce counter');
  t.same(checkInvariants(s.state), []);

  // The enrolment run again: until node-3 reports the new repair it is no holder.
  ok(t, s.decide(repair(s, { nodeId: 'node-3', identifier: idAt(4), helpers: ['node-0', 'node-2'] })));
  ok(t, s.submit('a2', s.act('k1')));
  ok(t, s.issuePermit('a2'));
  refusedWith(t, s, 'WRONG_RECIPIENT', () => s.fixSigningSet('a2', { commitments: s.signingSet('a2', ['node-0', 'node-3']) }), 'a set naming the node whose repair is decided again but not yet reported');
  t.equal(nextEnrolIdentifier(s.state.cluster!, 'ed25519', 'k1', s.state.cluster!.keys['k1']!.epochs['0']!), idAt(5), 'the next enrolment takes the identifier after node-3\'s');
});
