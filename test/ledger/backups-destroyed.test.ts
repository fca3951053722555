/**
 * KeyRetired keeps a key's share backups; only a BackupsDestroyed decision ends them
 * (ledger/apply.ts backupsDestroyed). On the real state machine: what retirement leaves, how the
 * admin list shows it, each refusal with its reason code and nothing changed, the kernel's own rule
 * (kernel/authority.ts), and which files a node deletes (node/lifecycle/backups.ts destroyedFiles).
 */
import t, { type Test } from 'tap';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ScriptedCluster, backupRecipientsDigest, backupsOf, bytesEqual, checkInvariants, decisionBodyFromCbor, decisionBodyToCbor, destroyedBackupsOf,
  networkForScheme, stateFromCbor, stateRoot, stateToCbor, toHex, type ApplyResult, type BackupRecipient, type DecisionAction, type LedgerEvent,
} from '../../ledger/index.js';
import { randomBytes } from 'node:crypto';
import { frostIdentifier } from '../../ledger/signing-set.js';
import { backupList } from '../../node/admin/backups.js';
import { formatBackupList } from '../../node/commands/backup.js';
import { backupFileName, deleteDestroyedBackups, destroyedFiles } from '../../node/lifecycle/backups.js';
import { applyDecision, genesisState } from '../../kernel/authority.js';
import { Governance } from '../kernel/harness.js';
import { custodians } from './backup-fixtures.js';

function refusedWith(t: Test, s: ScriptedCluster, reason: string, r: () => ApplyResult): void {
  const before = s.state;
  t.match(r(), { ok: false, reason, applied: false }, `refused ${reason}`);
  t.ok(bytesEqual(stateRoot({ ...s.state, index: before.index, clockMs: before.clockMs }), stateRoot(before)), 'nothing but index and clock changed');
}

async function setup(): Promise<{ s: ScriptedCluster; policy: BackupRecipient[] }> {
  const s = new ScriptedCluster({ label: 'destroyed', nodes: 3 });
  s.genesis();
  for (const r of s.createKey('k1')) if (!r.ok) throw new Error(`setup: ${r.reason}`);
  for (const r of s.createKey('k2')) if (!r.ok) throw new Error(`setup: ${r.reason}`);
  const policy = (await custodians('cara')).map((c) => ({ label: c.label, recipient: c.recipient }));
  if (!s.decide({ kind: 'BackupPolicy', recipients: policy }).ok) throw new Error('policy');
  return { s, policy };
}

function backedUp(s: ScriptedCluster, keyId: string, keyEpoch: number, nodeId: string, policy: readonly BackupRecipient[]): ApplyResult {
  const at = s.participants(keyId, keyEpoch).indexOf(nodeId);
  const event = {
    type: 'KeyBackedUp', keyId, keyEpoch, identifier: frostIdentifier('ed25519', at + 1), fileCid: new Uint8Array(32).fill(keyEpoch + 1),
    recipientsDigest: backupRecipientsDigest(policy), ...s.proposer(nodeId),
  } as LedgerEvent;
  return s.entry(event).result;
}

const auditor = { id: 'audra', role: 'auditor' as const };

t.test('retirement keeps the backups; BackupsDestroyed ends them, once, only for a retired key', async (t) => {
  const { s, policy } = await setup();
  for (const n of ['node-0', 'node-1', 'node-2']) t.ok(backedUp(s, 'k1', 0, n, policy).ok, `${n} backs k1 epoch 0 up`);
  t.ok(s.refreshKey('k1').every((r) => r.ok), 'k1 refreshed to epoch 1');
  for (const n of ['node-0', 'node-1']) t.ok(backedUp(s, 'k1', 1, n, policy).ok, `${n} backs k1 epoch 1 up`);
  t.ok(backedUp(s, 'k2', 0, 'node-0', policy).ok, 'a backup of k2');

  refusedWith(t, s, 'KEY_NOT_RETIRED', () => s.decide({ kind: 'BackupsDestroyed', keyId: 'k1', epochs: [0] }));
  refusedWith(t, s, 'UNKNOWN_KEY', () => s.decide({ kind: 'BackupsDestroyed', keyId: 'nope', epochs: [0] }));

  t.ok(s.decide({ kind: 'KeyRetired', keyId: 'k1' }).ok, 'k1 retired');
  t.equal(Object.values(backupsOf(s.state.cluster!)).filter((b) => b.keyId === 'k1').length, 5, 'retirement leaves every KeyBackedUp record of k1');
  const listed = backupList(auditor, s.state);
  const k1 = listed.entries.filter((e) => e.keyId === 'k1');
  t.same(k1.map((e) => [e.keyEpoch, e.nodeId, e.retired, e.destroyedIndex]), [[0, 'node-0', true, 0], [0, 'node-1', true, 0], [0, 'node-2', true, 0], [1, 'node-0', true, 0], [1, 'node-1', true, 0]], 'the list shows all five as kept backups of a retired key');
  t.equal(listed.missing, 2, 'only k2\'s two unbacked shares count as missing, not the retired key\'s');
  t.match(formatBackupList(listed), /key k1 epoch 0 node-0: retired key, backup kept, cid 0101/, 'the CLI text says kept');

  // The kernel keeps the ledger's rule: its chain refuses a BackupsDestroyed of a live key.
  refusedWith(t, s, 'KEY_NOT_RETIRED', () => s.decide({ kind: 'BackupsDestroyed', keyId: 'k2', epochs: [0] }));
  refusedWith(t, s, 'BACKUPS_NOT_FOUND', () => s.decide({ kind: 'BackupsDestroyed', keyId: 'k1', epochs: [0, 2] }));
  const shape = (epochs: unknown[]): unknown => decisionBodyFromCbor({ ...(decisionBodyToCbor(s.decisionBody({ kind: 'Unfreeze' })) as object), action: { kind: 'BackupsDestroyed', keyId: 'k1', epochs } } as never).action;
  t.throws(() => shape([]), { name: 'ShapeError' }, 'an empty epoch list does not decode');
  t.throws(() => shape([0, 0]), { name: 'ShapeError' }, 'nor an epoch named twice');
  t.throws(() => shape([-1]), { name: 'ShapeError' }, 'nor a negative epoch');
  t.same(shape([1, 0]), { kind: 'BackupsDestroyed', keyId: 'k1', epochs: [1, 0] });

  const d = s.decision({ kind: 'BackupsDestroyed', keyId: 'k1', epochs: [0] });
  const r = s.entry({ type: 'GovernanceDecision', decision: d }).result;
  t.ok(r.ok, 'the backups of k1 epoch 0 are destroyed by decision');
  const rec = destroyedBackupsOf(s.state.cluster!)[`k1\u00000`]!;
  t.same([rec.keyId, rec.keyEpoch, rec.index], ['k1', 0, r.index], 'the ledger records the decision for that epoch');
  t.equal(Object.values(backupsOf(s.state.cluster!)).filter((b) => b.keyId === 'k1').length, 5, 'the KeyBackedUp records stay for audit');
  refusedWith(t, s, 'BACKUPS_NOT_FOUND', () => s.decide({ kind: 'BackupsDestroyed', keyId: 'k1', epochs: [0] }));
  const after = backupList(auditor, s.state).entries.filter((e) => e.keyId === 'k1');
  t.same(after.map((e) => e.destroyedIndex > 0), [true, true, true, false, false], 'epoch 0 listed destroyed, epoch 1 still kept');
  t.ok(after.slice(0, 3).every((e) => e.destroyDecisionCid !== '' && e.destroyDecisionCid.length === 64), 'with the decision that destroyed them');
  t.match(formatBackupList(backupList(auditor, s.state)), /key k1 epoch 0 node-1: retired key, backup 0101\S* DESTROYED by BackupsDestroyed [0-9a-f]{64}/);
  t.ok(s.decide({ kind: 'BackupsDestroyed', keyId: 'k1', epochs: [1] }).ok, 'epoch 1 later, by its own decision');
  t.same(checkInvariants(s.state), [], 'invariants hold');
  const back = stateFromCbor(stateToCbor(s.state));
  t.same(stateRoot(back), stateRoot(s.state), 'the records survive the canonical encoding');
  t.equal(Object.keys(destroyedBackupsOf(back.cluster!)).length, 2);
  const tampered = (f: (m: { [k: string]: { keyEpoch: number } }) => void) => {
    const cbor = stateToCbor(s.state) as { cluster: { destroyedBackups: { [k: string]: { keyEpoch: number } } } };
    f(cbor.cluster.destroyedBackups);
    return () => stateFromCbor(cbor as never);
  };
  t.throws(tampered((m) => { for (const k of Object.keys(m)) delete m[k]; }), { name: 'ShapeError' }, 'an empty map present is not canonical');
  t.throws(tampered((m) => { m['k1\u00000']!.keyEpoch = 1; }), { name: 'ShapeError' }, 'a record filed under another key epoch is refused');

  // While frozen the decision is refused like any governance that is not containment.
  t.ok(s.decide({ kind: 'EmergencyFreeze', reason: 'drill' }).ok);
  t.ok(s.decide({ kind: 'KeyRetired', keyId: 'k2' }).ok, 'retiring stays allowed while frozen');
  refusedWith(t, s, 'FROZEN', () => s.decide({ kind: 'BackupsDestroyed', keyId: 'k2', epochs: [0] }));
});

t.test('a kernel follows the same rule: BackupsDestroyed only for a key it holds retired', async (t) => {
  // Each case on a fresh chain: a refused decision does not move the kernel's head.
  const after = (retired: boolean, last: DecisionAction): string => {
    const gov = new Governance();
    let state = genesisState(gov.pin());
    const steps: DecisionAction[] = [
      { kind: 'DkgAuthorized', keyId: 'k1', scheme: 'ed25519', network: networkForScheme('ed25519'), threshold: 2, participants: ['n1', 'n2', 'n3'] },
      { kind: 'KeyActivated', keyId: 'k1', keyEpoch: 0, keyReadyCid: randomBytes(32) },
      ...(retired ? [{ kind: 'KeyRetired', keyId: 'k1' } as const] : []),
    ];
    for (const a of steps) state = applyDecision(state, gov.decide(a), 'n1').state;
    try {
      const r = applyDecision(state, gov.decide(last), 'n1');
      return r.applied && r.state.lastCid !== state.lastCid ? 'OK' : 'NOT_APPLIED';
    } catch (e) {
      return String((e as { reason?: unknown }).reason);
    }
  };
  t.equal(after(false, { kind: 'BackupsDestroyed', keyId: 'k1', epochs: [0] }), 'KEY_NOT_RETIRED', 'a live key: refused, the chain does not move');
  t.equal(after(true, { kind: 'BackupsDestroyed', keyId: 'k9', epochs: [0] }), 'UNKNOWN_KEY', 'a key never authorized');
  t.equal(after(true, { kind: 'BackupsDestroyed', keyId: 'k1', epochs: [0] }), 'OK', 'a retired key: the kernel follows it (it holds no backup to erase)');
});

t.test('a node deletes exactly the files of the destroyed epochs it wrote', async (t) => {
  const digestA = new Uint8Array(32).fill(0xab);
  const digestB = new Uint8Array(32).fill(0xcd);
  const name = (keyId: string, keyEpoch: number, nodeId: string, d = digestA) => backupFileName({ keyId, keyEpoch, recipientsDigest: d }, nodeId);
  const names = [
    name('k1', 0, 'n1'), name('k1', 0, 'n1', digestB), name('k1', 1, 'n1'), name('k1', 10, 'n1'), name('k1', 0, 'n2'),
    name('k10', 0, 'n1'), name('k1.epoch-0.n1', 0, 'n1'), `${name('k1', 0, 'n1')}.tmp`, 'k1.epoch-0.n1.notes.backup',
  ];
  t.same(destroyedFiles(names, 'n1', [{ keyId: 'k1', keyEpoch: 0 }]), [name('k1', 0, 'n1'), name('k1', 0, 'n1', digestB)], 'its files of k1 epoch 0 under every policy, nothing else');
  t.same(destroyedFiles(names, 'n1', []), [], 'no decision, nothing');
  const dir = mkdtempSync(join(tmpdir(), 'custody-destroyed-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const n of names) writeFileSync(join(dir, n), 'x');
  t.same((await deleteDestroyedBackups(dir, 'n1', [{ keyId: 'k1', keyEpoch: 0 }])).sort(), [name('k1', 0, 'n1'), name('k1', 0, 'n1', digestB)].sort(), 'deleted');
  t.same(readdirSync(dir).sort(), names.slice(2).sort(), 'the other files stay');
  t.same(await deleteDestroyedBackups(join(dir, 'none'), 'n1', [{ keyId: 'k1', keyEpoch: 0 }]), [], 'a node without a backup folder has nothing to delete');
  t.equal(toHex(digestA).slice(0, 16), 'abababababababab');
});
