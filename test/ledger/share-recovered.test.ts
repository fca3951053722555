/**
 * ShareRecovered on the real state machine (ScriptedCluster): a node reports, in its own signed
 * name, that its kernel imported its share recovered under the RecoveryAuthorized the ledger
 * recorded for it. Accepted once (again: a replay that changes nothing), only naming that
 * decision and the node's identifier, for an active epoch of a live key; each refusal with its
 * reason code and nothing changed. `custody admin backup list` shows the recovery. A failing
 * property prints its seed; replay with FC_SEED=<seed>.
 */
import t, { type Test } from 'tap';
import fc from 'fast-check';
import {
  ScriptedCluster, backupRecipientsDigest, backupRecordKey, bytesEqual, checkInvariants, encodeEvent, recoveriesOf, restore, snapshot, stateRoot,
  type ApplyResult, type BackupRecipient, type DecisionAction, type LedgerEvent,
} from '../../ledger/index.js';
import { frostIdentifier } from '../../ledger/signing-set.js';
import { signProposed } from '../../ledger/proposer-sig.js';
import { backupList } from '../../node/admin/backups.js';
import { custodians } from './backup-fixtures.js';

const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31);

type Recovered = Extract<LedgerEvent, { type: 'ShareRecovered' }>;

function ok(t: Test, r: ApplyResult, what?: string): void {
  t.ok(r.ok, what ?? (r.ok ? r.effect : `${r.reason}: ${r.detail}`));
}

function refusedWith(t: Test, s: ScriptedCluster, reason: string, run: () => ApplyResult, what?: string): void {
  const before = s.state;
  const r = run();
  t.match(r, { ok: false, reason, applied: false }, what ?? `refused ${reason}`);
  t.ok(bytesEqual(stateRoot({ ...s.state, index: before.index, clockMs: before.clockMs }), stateRoot(before)), 'nothing but index and clock changed');
}

const cidOf = (nodeId: string): Uint8Array => new Uint8Array(32).fill(nodeId.charCodeAt(5));
const idOf = (s: ScriptedCluster, nodeId: string, keyEpoch = 0): string => frostIdentifier('ed25519', s.participants('k1', keyEpoch).indexOf(nodeId) + 1);

function backedUp(s: ScriptedCluster, nodeId: string, recipients: readonly BackupRecipient[], keyEpoch: number): ApplyResult {
  return s.entry({
    type: 'KeyBackedUp', keyId: 'k1', keyEpoch, identifier: idOf(s, nodeId, keyEpoch), fileCid: cidOf(nodeId), recipientsDigest: backupRecipientsDigest(recipients), ...s.proposer(nodeId),
  } as LedgerEvent).result;
}

function authorize(s: ScriptedCluster, nodeId: string, keyEpoch = 0): ApplyResult {
  const action: DecisionAction = {
    kind: 'RecoveryAuthorized', nodeId, keyId: 'k1', keyEpoch, identifier: idOf(s, nodeId, keyEpoch),
    backupCid: cidOf(nodeId), groupKey: s.state.cluster!.keys['k1']!.epochs[String(keyEpoch)]!.groupKey!, verifyingShare: new Uint8Array(32).fill(0x42),
  };
  return s.decide(action);
}

/** The ledger's record of the last RecoveryAuthorized of `nodeId` (key k1). */
const recordOf = (s: ScriptedCluster, nodeId: string, keyEpoch = 0) => recoveriesOf(s.state.cluster!)[backupRecordKey('k1', keyEpoch, nodeId)];

/** The report `nodeId` makes after its import, under the decision the ledger recorded for it. */
function report(s: ScriptedCluster, nodeId: string, keyEpoch = 0): Recovered {
  const rec = recordOf(s, nodeId, keyEpoch);
  return { type: 'ShareRecovered', keyId: 'k1', keyEpoch, identifier: idOf(s, nodeId, keyEpoch), decisionCid: rec?.decisionCid ?? new Uint8Array(32), ...s.proposer(nodeId) };
}

/** Genesis, key k1 active at epoch 0 over node-0..2, a BackupPolicy, and a KeyBackedUp of each node. */
async function backedUpCluster(): Promise<{ s: ScriptedCluster; recipients: BackupRecipient[] }> {
  const s = new ScriptedCluster({ label: 'share-recovered', nodes: 3 });
  s.genesis();
  for (const r of s.createKey('k1')) if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  const recipients = (await custodians('alice')).map((c) => ({ label: c.label, recipient: c.recipient }));
  const d = s.decide({ kind: 'BackupPolicy', recipients });
  if (!d.ok) throw new Error(`setup: ${d.reason}`);
  for (const n of ['node-0', 'node-1', 'node-2']) {
    const r = backedUp(s, n, recipients, 0);
    if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  }
  return { s, recipients };
}

t.test('a RecoveryAuthorized is recorded; the node\'s ShareRecovered under it is accepted once and listed', async (t) => {
  const { s } = await backedUpCluster();
  ok(t, authorize(s, 'node-1'));
  const authorizedAt = s.state.index;
  const rec = recordOf(s, 'node-1');
  t.match(rec, { nodeId: 'node-1', keyId: 'k1', keyEpoch: 0, identifier: idOf(s, 'node-1'), authorizedIndex: authorizedAt, recovered: null }, 'the decision is recorded for the participant');
  const auditor = { id: 'audra', role: 'auditor' as const };
  t.match(backupList(auditor, s.state).entries.find((e) => e.nodeId === 'node-1'), { recoveredIndex: 0, recoveryDecisionCid: Buffer.from(rec!.decisionCid).toString('hex') }, 'backup list: authorized, not yet reported');

  const r = s.entry(report(s, 'node-1')).result;
  ok(t, r, 'the report is accepted');
  t.equal(r.ok && r.replayed, false);
  t.match(recordOf(s, 'node-1')!.recovered, { index: s.state.index }, 'the record carries the report\'s index');
  t.match(backupList(auditor, s.state).entries.find((e) => e.nodeId === 'node-1'), { recoveredIndex: s.state.index }, 'backup list shows the recovery');
  t.same(checkInvariants(s.state), []);
  t.ok(bytesEqual(stateRoot(restore(snapshot(s.state))), stateRoot(s.state)), 'the records survive snapshot and restore');

  const before = s.state;
  const again = s.entry(report(s, 'node-1')).result;
  t.match(again, { ok: true, replayed: true }, 'the same report again is a replay');
  t.ok(bytesEqual(stateRoot({ ...s.state, index: before.index, clockMs: before.clockMs }), stateRoot(before)), 'not recorded twice: nothing changed');
});

t.test('refusals: no decision, another node\'s decision, another decision cid or identifier, unknown key, stale epoch, retired key', async (t) => {
  const { s, recipients } = await backedUpCluster();
  refusedWith(t, s, 'RECOVERY_NOT_AUTHORIZED', () => s.entry(report(s, 'node-0')).result, 'no RecoveryAuthorized at all');
  ok(t, authorize(s, 'node-1'));
  refusedWith(t, s, 'RECOVERY_NOT_AUTHORIZED', () => s.entry({ ...report(s, 'node-1'), identifier: idOf(s, 'node-0'), ...s.proposer('node-0') }).result, 'node-0 reports under node-1\'s decision');
  const right = report(s, 'node-1');
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.entry({ ...right, decisionCid: right.decisionCid.map((b) => b ^ 1) }).result, 'another decision cid');
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.entry({ ...right, identifier: idOf(s, 'node-2') }).result, 'another identifier');
  refusedWith(t, s, 'UNKNOWN_KEY', () => s.entry({ ...right, keyId: 'k9' }).result);
  refusedWith(t, s, 'STALE_EPOCH', () => s.entry({ ...right, keyEpoch: 1 }).result);
  for (const r of s.refreshKey('k1')) ok(t, r);
  refusedWith(t, s, 'STALE_EPOCH', () => s.entry(right).result, 'epoch 0 is superseded: its shares are erased everywhere');
  ok(t, backedUp(s, 'node-1', recipients, 1));
  ok(t, authorize(s, 'node-1', 1));
  ok(t, s.decide({ kind: 'KeyRetired', keyId: 'k1' }));
  refusedWith(t, s, 'KEY_NOT_ACTIVE', () => s.entry(report(s, 'node-1', 1)).result);
});

t.test('ShareRecovered must be signed by the node it names: unsigned or signed by another node is refused', async (t) => {
  const { s } = await backedUpCluster();
  ok(t, authorize(s, 'node-0'));
  const event = report(s, 'node-0');
  refusedWith(t, s, 'PROPOSER_SIGNATURE_INVALID', () => s.entry(encodeEvent(event)).result, 'unsigned');
  refusedWith(t, s, 'PROPOSER_SIGNATURE_INVALID', () => s.entry(encodeEvent(signProposed(s.clusterId, event, s.node('node-1').secretKey))).result, 'signed by node-1');
  ok(t, s.entry(encodeEvent(signProposed(s.clusterId, event, s.node('node-0').secretKey))).result, 'signed by node-0');
});

t.test('a later RecoveryAuthorized of the same participant replaces the record: a report under the earlier one is refused', async (t) => {
  const { s } = await backedUpCluster();
  ok(t, authorize(s, 'node-2'));
  const first = report(s, 'node-2');
  ok(t, s.entry(first).result);
  ok(t, authorize(s, 'node-2'), 'the share is lost again and recovery authorized again');
  t.equal(recordOf(s, 'node-2')!.recovered, null, 'the new decision is not yet reported');
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.entry(first).result, 'the report under the earlier decision');
  ok(t, s.entry(report(s, 'node-2')).result, 'the report under the new one');
  t.same(checkInvariants(s.state), []);
});

t.test('property: changing any one field of an accepted report gets it refused with a reason code, nothing changed', async (t) => {
  t.comment(`FC_SEED=${seed}`);
  const { s } = await backedUpCluster();
  ok(t, authorize(s, 'node-0'));
  ok(t, authorize(s, 'node-1'));
  const fields = ['keyId', 'keyEpoch', 'identifier', 'decisionCid', 'nodeId'] as const;
  fc.assert(fc.property(fc.constantFrom(...fields), fc.integer({ min: 1, max: 255 }), (field, n) => {
    const e = report(s, 'node-0');
    const changed: Recovered = {
      ...e,
      ...(field === 'keyId' ? { keyId: `k1-${n}` } : {}),
      ...(field === 'keyEpoch' ? { keyEpoch: n } : {}),
      ...(field === 'identifier' ? { identifier: frostIdentifier('ed25519', 2 + (n % 50)) } : {}),
      ...(field === 'decisionCid' ? { decisionCid: e.decisionCid.map((b, i) => (i === n % 32 ? b ^ n : b)) } : {}),
      // Another node (its own signature) reporting under node-0's decision.
      ...(field === 'nodeId' ? s.proposer(n % 2 === 0 ? 'node-1' : 'node-2') : {}),
    };
    const before = s.state;
    const r = s.entry(changed).result;
    if (r.ok) {
      t.comment(`accepted with ${field} changed (${n}): ${r.effect}`);
      return false;
    }
    const unchanged = bytesEqual(stateRoot({ ...s.state, index: before.index, clockMs: before.clockMs }), stateRoot(before));
    return typeof r.reason === 'string' && unchanged;
  }), { seed, numRuns: 120 });
  ok(t, s.entry(report(s, 'node-0')).result, 'the unchanged report passes after all of them');
});
