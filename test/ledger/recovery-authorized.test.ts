/**
 * RecoveryAuthorized decisions on the real state machine (ScriptedCluster): accepted only for an
 * active key epoch, a participant under its own identifier, the group key the ledger committed
 * and the backup file the ledger records for that participant; each refusal with its reason code
 * and nothing changed. A failing property prints its seed; replay with FC_SEED=<seed>.
 */
import t, { type Test } from 'tap';
import fc from 'fast-check';
import {
  ScriptedCluster, backupRecipientsDigest, bytesEqual, checkInvariants, decisionFromCbor, decisionToCbor, decode, encode, stateRoot,
  type ApplyResult, type BackupRecipient, type DecisionAction, type LedgerEvent,
} from '../../ledger/index.js';
import { frostIdentifier } from '../../ledger/signing-set.js';
import { custodians } from './backup-fixtures.js';

const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31);

type Recovery = Extract<DecisionAction, { kind: 'RecoveryAuthorized' }>;

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

/** Genesis, key k1 active at epoch 0 over node-0..2, a BackupPolicy, and a KeyBackedUp of each node. */
async function backedUpCluster(backups = ['node-0', 'node-1', 'node-2']): Promise<{ s: ScriptedCluster; recipients: BackupRecipient[] }> {
  const s = new ScriptedCluster({ label: 'recovery', nodes: 3 });
  s.genesis();
  for (const r of s.createKey('k1')) if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  const recipients = (await custodians('alice', 'bob')).map((c) => ({ label: c.label, recipient: c.recipient }));
  const d = s.decide({ kind: 'BackupPolicy', recipients });
  if (!d.ok) throw new Error(`setup: ${d.reason}`);
  for (const n of backups) {
    const r = backedUp(s, n, recipients, 0);
    if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  }
  return { s, recipients };
}

function backedUp(s: ScriptedCluster, nodeId: string, recipients: readonly BackupRecipient[], keyEpoch: number): ApplyResult {
  const at = s.participants('k1', keyEpoch).indexOf(nodeId);
  const event: LedgerEvent = {
    type: 'KeyBackedUp', keyId: 'k1', keyEpoch, identifier: frostIdentifier('ed25519', at + 1),
    fileCid: cidOf(nodeId), recipientsDigest: backupRecipientsDigest(recipients), ...s.proposer(nodeId),
  } as LedgerEvent;
  return s.entry(event).result;
}

/** The decision that is right for `nodeId` in `s` (key k1, epoch `keyEpoch`). */
function recovery(s: ScriptedCluster, nodeId: string, keyEpoch = 0): Recovery {
  const at = s.participants('k1', keyEpoch).indexOf(nodeId);
  const groupKey = s.state.cluster!.keys['k1']!.epochs[String(keyEpoch)]!.groupKey!;
  return {
    kind: 'RecoveryAuthorized', nodeId, keyId: 'k1', keyEpoch, identifier: frostIdentifier('ed25519', at + 1),
    backupCid: cidOf(nodeId), groupKey, verifyingShare: new Uint8Array(32).fill(0x42),
  };
}

t.test('a RecoveryAuthorized naming a recorded backup is accepted at the governance quorum, and heads the chain', async (t) => {
  const { s } = await backedUpCluster();
  const d = recovery(s, 'node-1');
  refusedWith(t, s, 'QUORUM_NOT_MET', () => s.decide(d, s.defaultSigners(1)), 'one approver is not enough');
  const before = s.state.cluster!.governance.headCid;
  ok(t, s.decide(d));
  t.notOk(bytesEqual(before, s.state.cluster!.governance.headCid), 'the decision heads the governance chain');
  t.same(checkInvariants(s.state), []);
});

t.test('the action round-trips through its canonical encoding, and a malformed one is a shape error', async (t) => {
  const { s } = await backedUpCluster();
  const d = recovery(s, 'node-2');
  const body = { clusterId: 'c', governanceEpoch: 0, parentCid: new Uint8Array(32), action: d, issuedMs: 1, expiresMs: 2 };
  const back = decisionFromCbor(decode(encode(decisionToCbor({ body, approvals: [] }))));
  t.same(back.body.action, d, 'every field survives');
  const bad = (over: Record<string, unknown>) => () => decisionFromCbor(decode(encode(decisionToCbor({ body: { ...body, action: { ...d, ...over } as never }, approvals: [] }))));
  t.throws(bad({ backupCid: new Uint8Array(31) }), /backupCid/, 'a cid of 31 bytes');
  t.throws(bad({ groupKey: new Uint8Array(64) }), /groupKey/, 'a group key that is no group element encoding');
  t.throws(bad({ identifier: 'XYZ' }), /identifier/, 'an identifier that is not lowercase hex');
});

t.test('refusals: unknown key, epoch not active, a non-participant, another identifier, another group key, no backup, another cid', async (t) => {
  const { s } = await backedUpCluster(['node-0', 'node-2']);
  const d = recovery(s, 'node-0');
  refusedWith(t, s, 'UNKNOWN_KEY', () => s.decide({ ...d, keyId: 'k9' }));
  refusedWith(t, s, 'STALE_EPOCH', () => s.decide({ ...d, keyEpoch: 1 }));
  refusedWith(t, s, 'WRONG_RECIPIENT', () => s.decide({ ...d, nodeId: 'node-7' }));
  refusedWith(t, s, 'RECOVERY_BACKUP_MISMATCH', () => s.decide({ ...d, identifier: frostIdentifier('ed25519', 2) }), 'the identifier of another participant');
  refusedWith(t, s, 'RECOVERY_BACKUP_MISMATCH', () => s.decide({ ...d, groupKey: new Uint8Array(32).fill(9) }), 'a group key the ledger did not commit');
  refusedWith(t, s, 'RECOVERY_BACKUP_MISSING', () => s.decide(recovery(s, 'node-1')), 'node-1 never recorded a backup');
  refusedWith(t, s, 'RECOVERY_BACKUP_MISMATCH', () => s.decide({ ...d, backupCid: cidOf('node-2') }), 'the backup of another participant');
  ok(t, s.decide(d), 'the right one still passes');
});

t.test('a superseded epoch or a retired key: refused; the new epoch needs its own backup', async (t) => {
  const { s, recipients } = await backedUpCluster();
  const old = recovery(s, 'node-0');
  for (const r of s.refreshKey('k1')) ok(t, r);
  refusedWith(t, s, 'STALE_EPOCH', () => s.decide(old), 'epoch 0 is superseded: its shares are erased everywhere');
  refusedWith(t, s, 'RECOVERY_BACKUP_MISSING', () => s.decide(recovery(s, 'node-0', 1)), 'no backup of epoch 1 yet');
  ok(t, backedUp(s, 'node-0', recipients, 1));
  ok(t, s.decide(recovery(s, 'node-0', 1)));
  ok(t, s.decide({ kind: 'KeyRetired', keyId: 'k1' }));
  refusedWith(t, s, 'KEY_NOT_ACTIVE', () => s.decide(recovery(s, 'node-0', 1)));
});

t.test('refused FROZEN under a freeze', async (t) => {
  const { s } = await backedUpCluster();
  ok(t, s.decide({ kind: 'EmergencyFreeze', reason: 'drill' }));
  refusedWith(t, s, 'FROZEN', () => s.decide(recovery(s, 'node-0')));
});

t.test('property: changing any one bound field of an accepted decision gets it refused with a reason code', async (t) => {
  t.comment(`FC_SEED=${seed}`);
  const { s } = await backedUpCluster(['node-0', 'node-1']);
  const fields = ['nodeId', 'keyId', 'keyEpoch', 'identifier', 'backupCid', 'groupKey'] as const;
  fc.assert(fc.property(fc.constantFrom(...fields), fc.integer({ min: 1, max: 255 }), (field, n) => {
    const d = recovery(s, 'node-0');
    const changed: Recovery = {
      ...d,
      ...(field === 'nodeId' ? { nodeId: ['node-1', 'node-2', `node-${n}`][n % 3]! } : {}),
      ...(field === 'keyId' ? { keyId: `k1-${n}` } : {}),
      ...(field === 'keyEpoch' ? { keyEpoch: n } : {}),
      ...(field === 'identifier' ? { identifier: frostIdentifier('ed25519', 2 + (n % 50)) } : {}),
      ...(field === 'backupCid' ? { backupCid: d.backupCid.map((b, i) => (i === n % 32 ? b ^ n : b)) } : {}),
      ...(field === 'groupKey' ? { groupKey: d.groupKey.map((b, i) => (i === n % 32 ? b ^ n : b)) } : {}),
    };
    const before = s.state;
    const r = s.decide(changed);
    if (r.ok) {
      t.comment(`accepted with ${field} changed (${n}): ${r.effect}`);
      return false;
    }
    const unchanged = bytesEqual(stateRoot({ ...s.state, index: before.index, clockMs: before.clockMs }), stateRoot(before));
    return typeof r.reason === 'string' && unchanged;
  }), { seed, numRuns: 120 });
  ok(t, s.decide(recovery(s, 'node-0')), 'the unchanged decision passes after all of them');
});
