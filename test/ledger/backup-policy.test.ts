/**
 * BackupPolicy decisions and KeyBackedUp records on the real state machine (ScriptedCluster):
 * what is accepted, each refusal with its reason code and nothing else changed, and the
 * recipient check the ledger and the kernels share (ledger/backup-policy.ts).
 */
import t, { type Test } from 'tap';
import fc from 'fast-check';
import {
  ScriptedCluster, ageRecipientKey, backupRecipientsDigest, backupRecordKey, backupsOf, bytesEqual, checkInvariants, encodeEvent,
  restore, snapshot, stateRoot, validateBackupRecipients, type ApplyResult, type BackupRecipient, type LedgerEvent,
} from '../../ledger/index.js';
import { frostIdentifier } from '../../ledger/signing-set.js';
import { signProposed } from '../../ledger/proposer-sig.js';
import { shareBackup as limits } from '../../proto/limits.js';
import { bech32Encode, custodians } from './backup-fixtures.js';

const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31);

function ok(t: Test, r: ApplyResult, what?: string): void {
  t.ok(r.ok, what ?? (r.ok ? r.effect : `${r.reason}: ${r.detail}`));
}

function refusedWith(t: Test, s: ScriptedCluster, reason: string, run: () => ApplyResult): void {
  const before = s.state;
  const r = run();
  t.match(r, { ok: false, reason, applied: false }, `refused ${reason}`);
  t.ok(bytesEqual(stateRoot({ ...s.state, index: before.index, clockMs: before.clockMs }), stateRoot(before)), 'nothing but index and clock changed');
  t.same(checkInvariants(s.state), []);
}

async function policyOf(...labels: string[]): Promise<BackupRecipient[]> {
  return (await custodians(...labels)).map((c) => ({ label: c.label, recipient: c.recipient }));
}

/** A cluster with genesis and key k1 active at epoch 0 over `participants`. */
function withKey(participants?: string[], nodes = 3): ScriptedCluster {
  const s = new ScriptedCluster({ label: 'backups', nodes });
  s.genesis();
  for (const r of s.createKey('k1', participants)) if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  return s;
}

function backedUp(s: ScriptedCluster, nodeId: string, recipients: readonly BackupRecipient[], over: Partial<Extract<LedgerEvent, { type: 'KeyBackedUp' }>> = {}): ApplyResult {
  const at = s.participants('k1', over.keyEpoch ?? 0).indexOf(nodeId);
  const event: LedgerEvent = {
    type: 'KeyBackedUp', keyId: 'k1', keyEpoch: 0, identifier: frostIdentifier('ed25519', at + 1),
    fileCid: new Uint8Array(32).fill(7), recipientsDigest: backupRecipientsDigest(recipients), ...s.proposer(nodeId), ...over,
  } as LedgerEvent;
  return s.entry(event).result;
}

t.test('age recipients: real ones pass, a changed character, another prefix or length does not', async (t) => {
  const [a, b] = await custodians('alice', 'bob');
  t.equal(ageRecipientKey(a!.recipient)?.length, 32);
  t.not(a!.recipient, b!.recipient);
  t.equal(ageRecipientKey(a!.recipient.toUpperCase()), null, 'upper case is not the canonical form');
  t.equal(ageRecipientKey(a!.recipient.slice(0, -1)), null, 'one character short');
  t.equal(ageRecipientKey(`${a!.recipient}q`), null, 'one character long');
  t.equal(ageRecipientKey(bech32Encode('agf', ageRecipientKey(a!.recipient)!)), null, 'another human-readable part');
  t.equal(ageRecipientKey(bech32Encode('age', new Uint8Array(31))), null, '31 bytes');
  t.equal(ageRecipientKey('AGE-SECRET-KEY-1QQQQ'), null, 'an identity is not a recipient');
  // The encoder of the fixtures and age-encryption agree on what a recipient is.
  t.equal(bech32Encode('age', ageRecipientKey(a!.recipient)!), a!.recipient);
});

t.test('property: any single substituted character of a recipient is refused (Bech32 checksum)', async (t) => {
  t.comment(`FC_SEED=${seed}`);
  const [a] = await custodians('alice');
  const r = a!.recipient;
  const charset = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
  fc.assert(fc.property(fc.integer({ min: 4, max: r.length - 1 }), fc.integer({ min: 1, max: 31 }), (pos, shift) => {
    const c = charset[(charset.indexOf(r[pos]!) + shift) % 32]!;
    const forged = r.slice(0, pos) + c + r.slice(pos + 1);
    return ageRecipientKey(forged) === null && validateBackupRecipients([{ label: 'x', recipient: forged }]) !== null;
  }), { seed, numRuns: 300 });
});

t.test('a BackupPolicy at the governance quorum is in force; one approver is QUORUM_NOT_MET', async (t) => {
  const s = withKey();
  const recipients = await policyOf('alice', 'bob');
  refusedWith(t, s, 'QUORUM_NOT_MET', () => s.decide({ kind: 'BackupPolicy', recipients }, s.defaultSigners(1)));
  ok(t, s.decide({ kind: 'BackupPolicy', recipients }));
  const p = s.state.cluster!.governance.backupPolicy!;
  t.same(p.recipients, recipients);
  t.ok(bytesEqual(p.decisionCid, s.state.cluster!.governance.headCid), 'the decision heads the governance chain');
  t.same(checkInvariants(s.state), []);
  const restored = restore(snapshot(s.state));
  t.ok(bytesEqual(stateRoot(restored), stateRoot(s.state)), 'the policy survives snapshot and restore');
});

t.test('a bad recipient, none, too many, a label or recipient twice: BACKUP_POLICY_INVALID or PAYLOAD_REJECTED', async (t) => {
  const s = withKey();
  const [a, b] = await policyOf('alice', 'bob');
  const flip = (r: string): string => r.slice(0, -1) + (r.endsWith('q') ? 'p' : 'q');
  refusedWith(t, s, 'BACKUP_POLICY_INVALID', () => s.decide({ kind: 'BackupPolicy', recipients: [a!, { label: 'bob', recipient: flip(b!.recipient) }] }));
  refusedWith(t, s, 'BACKUP_POLICY_INVALID', () => s.decide({ kind: 'BackupPolicy', recipients: [{ label: 'ssh', recipient: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5' }] }));
  refusedWith(t, s, 'BACKUP_POLICY_INVALID', () => s.decide({ kind: 'BackupPolicy', recipients: [] }));
  refusedWith(t, s, 'BACKUP_POLICY_INVALID', () => s.decide({ kind: 'BackupPolicy', recipients: [a!, { label: 'alice', recipient: b!.recipient }] }));
  refusedWith(t, s, 'BACKUP_POLICY_INVALID', () => s.decide({ kind: 'BackupPolicy', recipients: [a!, { label: 'alice again', recipient: a!.recipient }] }));
  const many = await policyOf(...Array.from({ length: limits.recipientsMax + 1 }, (_, i) => `c${i}`));
  refusedWith(t, s, 'PAYLOAD_REJECTED', () => s.decide({ kind: 'BackupPolicy', recipients: many }));
  ok(t, s.decide({ kind: 'BackupPolicy', recipients: many.slice(0, limits.recipientsMax) }), `${limits.recipientsMax} custodians is the bound, and allowed`);
});

t.test('a BackupPolicy is refused FROZEN under a freeze, like every decision that is not containment', async (t) => {
  const s = withKey();
  ok(t, s.decide({ kind: 'EmergencyFreeze', reason: 'drill' }));
  const recipients = await policyOf('alice');
  refusedWith(t, s, 'FROZEN', () => s.decide({ kind: 'BackupPolicy', recipients }));
  ok(t, s.decide({ kind: 'Unfreeze' }));
  ok(t, s.decide({ kind: 'BackupPolicy', recipients }));
});

t.test('KeyBackedUp by each participant is recorded under the policy in force; the same again is a replay', async (t) => {
  const s = withKey();
  const recipients = await policyOf('alice', 'bob');
  ok(t, s.decide({ kind: 'BackupPolicy', recipients }));
  for (const n of ['node-0', 'node-1', 'node-2']) ok(t, backedUp(s, n, recipients, { fileCid: new Uint8Array(32).fill(n.charCodeAt(5)) }));
  const recs = backupsOf(s.state.cluster!);
  t.equal(Object.keys(recs).length, 3);
  const r1 = recs[backupRecordKey('k1', 0, 'node-1')]!;
  t.equal(r1.identifier, frostIdentifier('ed25519', 2));
  t.ok(bytesEqual(r1.recipientsDigest, backupRecipientsDigest(recipients)));
  const again = backedUp(s, 'node-1', recipients, { fileCid: new Uint8Array(32).fill('1'.charCodeAt(0)) });
  t.match(again, { ok: true, replayed: true });
  refusedWith(t, s, 'REPLAY_OR_CONFLICT', () => backedUp(s, 'node-1', recipients, { fileCid: new Uint8Array(32).fill(9) }));
  t.ok(bytesEqual(stateRoot(restore(snapshot(s.state))), stateRoot(s.state)), 'the records survive snapshot and restore');
  t.same(checkInvariants(s.state), []);
});

t.test('a later policy: a record under the old one no longer matches, a new backup replaces it', async (t) => {
  const s = withKey();
  const first = await policyOf('alice', 'bob');
  const second = await policyOf('carol');
  ok(t, s.decide({ kind: 'BackupPolicy', recipients: first }));
  ok(t, backedUp(s, 'node-0', first));
  ok(t, s.decide({ kind: 'BackupPolicy', recipients: second }));
  refusedWith(t, s, 'BACKUP_RECIPIENTS_MISMATCH', () => backedUp(s, 'node-0', first, { fileCid: new Uint8Array(32).fill(3) }));
  ok(t, backedUp(s, 'node-0', second, { fileCid: new Uint8Array(32).fill(4) }));
  const rec = backupsOf(s.state.cluster!)[backupRecordKey('k1', 0, 'node-0')]!;
  t.ok(bytesEqual(rec.recipientsDigest, backupRecipientsDigest(second)));
  t.ok(bytesEqual(rec.fileCid, new Uint8Array(32).fill(4)));
});

t.test('KeyBackedUp refusals: no policy, unknown key, an epoch not active, a non-participant, a wrong identifier', async (t) => {
  const s = withKey(['node-0', 'node-1']);
  const recipients = await policyOf('alice');
  refusedWith(t, s, 'BACKUP_POLICY_MISSING', () => backedUp(s, 'node-0', recipients));
  ok(t, s.decide({ kind: 'BackupPolicy', recipients }));
  refusedWith(t, s, 'UNKNOWN_KEY', () => backedUp(s, 'node-0', recipients, { keyId: 'k9' }));
  refusedWith(t, s, 'STALE_EPOCH', () => backedUp(s, 'node-0', recipients, { keyEpoch: 1 }));
  refusedWith(t, s, 'WRONG_RECIPIENT', () => backedUp(s, 'node-2', recipients, { identifier: frostIdentifier('ed25519', 3) }));
  refusedWith(t, s, 'BINDING_MISMATCH', () => backedUp(s, 'node-0', recipients, { identifier: frostIdentifier('ed25519', 2) }));
  // After a refresh, epoch 0 is superseded: its backups are of shares the kernels erased.
  for (const r of s.refreshKey('k1')) ok(t, r);
  refusedWith(t, s, 'STALE_EPOCH', () => backedUp(s, 'node-0', recipients));
  ok(t, backedUp(s, 'node-0', recipients, { keyEpoch: 1 }), 'the new epoch is backed up');
  ok(t, s.decide({ kind: 'KeyRetired', keyId: 'k1' }));
  refusedWith(t, s, 'KEY_NOT_ACTIVE', () => backedUp(s, 'node-1', recipients, { keyEpoch: 1 }));
});

t.test('KeyBackedUp must be signed by the node it names: unsigned or signed by another node is refused', async (t) => {
  const s = withKey();
  const recipients = await policyOf('alice');
  ok(t, s.decide({ kind: 'BackupPolicy', recipients }));
  const event = {
    type: 'KeyBackedUp' as const, keyId: 'k1', keyEpoch: 0, identifier: frostIdentifier('ed25519', 1),
    fileCid: new Uint8Array(32).fill(1), recipientsDigest: backupRecipientsDigest(recipients), ...s.proposer('node-0'),
  };
  refusedWith(t, s, 'PROPOSER_SIGNATURE_INVALID', () => s.entry(encodeEvent(event)).result);
  const byOther = signProposed(s.clusterId, event, s.node('node-1').secretKey);
  refusedWith(t, s, 'PROPOSER_SIGNATURE_INVALID', () => s.entry(encodeEvent(byOther)).result);
  ok(t, s.entry(encodeEvent(signProposed(s.clusterId, event, s.node('node-0').secretKey))).result);
});

t.test('property: KeyBackedUp records follow a model of policies, epochs and participants; invariants and snapshots hold', async (t) => {
  t.comment(`FC_SEED=${seed}`);
  const policies = [await policyOf('p0a', 'p0b'), await policyOf('p1a'), await policyOf('p2a', 'p2b', 'p2c')];
  const op = fc.oneof(
    fc.record({ kind: fc.constant('policy' as const), p: fc.integer({ min: 0, max: 2 }) }),
    fc.record({ kind: fc.constant('backup' as const), node: fc.integer({ min: 0, max: 3 }), p: fc.integer({ min: 0, max: 2 }), cid: fc.integer({ min: 0, max: 2 }), epochDelta: fc.integer({ min: -1, max: 1 }) }),
    fc.record({ kind: fc.constant('refresh' as const) }),
  );
  fc.assert(fc.property(fc.array(op, { minLength: 1, maxLength: 12 }), (ops) => {
    const s = withKey(['node-0', 'node-1', 'node-2'], 4);
    let current: number | null = null;
    let epoch = 0;
    const model = new Map<string, { p: number; cid: number }>();
    for (const o of ops) {
      if (o.kind === 'policy') {
        if (!s.decide({ kind: 'BackupPolicy', recipients: policies[o.p]! }).ok) return false;
        current = o.p;
      } else if (o.kind === 'refresh') {
        if (!s.refreshKey('k1').every((r) => r.ok)) return false;
        epoch += 1;
      } else {
        const nodeId = `node-${o.node}`;
        const e = epoch + o.epochDelta;
        if (e < 0) continue;
        const at = ['node-0', 'node-1', 'node-2'].indexOf(nodeId);
        const r = backedUp(s, nodeId, policies[o.p]!, { keyEpoch: e, identifier: frostIdentifier('ed25519', at < 0 ? 4 : at + 1), fileCid: new Uint8Array(32).fill(o.cid) });
        const key = backupRecordKey('k1', e, nodeId);
        const prev = model.get(key);
        const allowed = current !== null && o.p === current && e === epoch && at >= 0 && !(prev !== undefined && prev.p === o.p && prev.cid !== o.cid);
        if (r.ok !== allowed) return false;
        if (allowed) model.set(key, { p: o.p, cid: o.cid });
      }
      if (checkInvariants(s.state).length > 0) return false;
    }
    const recs = backupsOf(s.state.cluster!);
    if (Object.keys(recs).length !== model.size) return false;
    for (const [k, m] of model) {
      const rec = recs[k];
      if (rec === undefined || rec.fileCid[0] !== m.cid || !bytesEqual(rec.recipientsDigest, backupRecipientsDigest(policies[m.p]!))) return false;
    }
    return bytesEqual(stateRoot(restore(snapshot(s.state))), stateRoot(s.state));
  }), { seed, numRuns: 60 });
});
