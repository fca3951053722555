/**
 * Share backups from real kernel processes, both profiles: a kernel encrypts its share of the
 * active key epoch only to the custodians of the BackupPolicy decision it verified itself, and
 * the files decrypt with each custodian's identity, pass kernel/backup.ts's checks against the
 * key's public record, and sign together. The daemon's side is played by the test, as an
 * attacker too: recipients of its own choosing, a key or epoch the kernel does not hold, no
 * policy, a forged policy decision, a fenced kernel.
 */
import t from 'tap';
import { decryptShareBackup, readShareBackupMeta, type ShareBackupMeta } from '../../kernel/backup.js';
import { backupRecipientsDigest, type BackupRecipient } from '../../ledger/backup-policy.js';
import { bytesEqual } from '../../ledger/encoding.js';
import { suiteOf, type SuiteName } from '../../kernel/suites.js';
import {
  Governance, PROFILES, memberOf, reasonOf, runDkg, setupKernel, signWith, startKernel, tempDir, toPackage,
  type KernelProcess, type KeyResult,
} from './harness.js';
import { custodians, type Custodian } from '../ledger/backup-fixtures.js';

/** What the ledger records of a participant's share: the key epoch, its identifier, verifying share and group key. */
function expectedMeta(key: KeyResult, nodeId: string, epoch = 0): ShareBackupMeta {
  const identifier = key.identifiers[nodeId]!;
  const vs = key.public.verifyingShares.find((v) => v.identifier === identifier)!;
  return { keyId: key.keyId, epoch, identifier, verifyingShare: vs.point, groupKey: key.public.commitments[0]!, scheme: key.suite };
}

const policyOf = (cs: readonly Custodian[]): BackupRecipient[] => cs.map((c) => ({ label: c.label, recipient: c.recipient }));

function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(hay).indexOf(Buffer.from(needle)) >= 0;
}

for (const profile of PROFILES) {
  t.test(`${profile} kernels back up their shares to the decided custodians only`, { timeout: 600_000 }, async (t) => {
    const { dir, cleanup } = tempDir(`share-backup-${profile}`);
    const gov = new Governance();
    const procs: KernelProcess[] = [];
    t.teardown(async () => {
      for (const p of procs) await p.stop();
      cleanup();
    });
    for (const id of ['n1', 'n2', 'n3']) procs.push(await startKernel(setupKernel(dir, id, profile, gov)));
    // n1 and n2 hold the keys; n3 follows the same governance and holds no share of them.
    const [n1, n2, n3] = procs as [KernelProcess, KernelProcess, KernelProcess];
    const forward = async (d: ReturnType<Governance['decide']>): Promise<void> => {
      for (const p of [n1, n2]) await p.client.call({ kind: 'governance', decisions: [d] }, 'governance');
    };
    const [alice, bob, carol, mallory] = await custodians('alice', 'bob', 'carol', 'mallory') as [Custodian, Custodian, Custodian, Custodian];
    const keys: KeyResult[] = [];
    for (const [keyId, suite] of [['k-ed', 'ed25519'], ['k-tr', 'taproot']] as [string, SuiteName][]) keys.push(await runDkg(gov, [n1, n2].map(memberOf), keyId, suite, 2));
    const [kEd] = keys as [KeyResult, KeyResult];
    const backup = (p: KernelProcess, keyId: string, recipients: readonly string[], epoch = 0) =>
      p.client.call({ kind: 'shareBackup', keyId, epoch, recipients: [...recipients] }, 'shareBackup');

    t.test('without a BackupPolicy decision the kernel backs up nothing', async (t) => {
      t.equal(await reasonOf(backup(n1, 'k-ed', [alice.recipient])), 'BACKUP_POLICY_MISSING');
    });

    const first = policyOf([alice, bob]);
    await forward(gov.decide({ kind: 'BackupPolicy', recipients: first }));

    t.test('recipients the daemon chose are refused: another, one more, one fewer, reordered', async (t) => {
      for (const [what, list] of [
        ['a stranger', [mallory.recipient]],
        ['a stranger added', [alice.recipient, bob.recipient, mallory.recipient]],
        ['one custodian left out', [alice.recipient]],
        ['one swapped for a stranger', [alice.recipient, mallory.recipient]],
        ['reordered', [bob.recipient, alice.recipient]],
      ] as [string, string[]][]) {
        t.equal(await reasonOf(backup(n1, 'k-ed', list)), 'BACKUP_RECIPIENTS_MISMATCH', what);
      }
      t.equal(await reasonOf(backup(n1, 'k-ed', ['not a recipient'])), 'PAYLOAD_REJECTED', 'text that is not a recipient fails at the frame');
    });

    t.test('a key or epoch the kernel does not hold, or not the active epoch', async (t) => {
      t.equal(await reasonOf(backup(n1, 'k-none', first.map((r) => r.recipient))), 'UNKNOWN_KEY');
      t.equal(await reasonOf(backup(n1, 'k-ed', first.map((r) => r.recipient), 1)), 'STALE_EPOCH');
      // n3 verified every decision (the keys are active, the policy in force) but holds no share.
      await n3.client.call({ kind: 'governance', decisions: [...gov.log] }, 'governance');
      t.equal(await reasonOf(backup(n3, 'k-ed', first.map((r) => r.recipient))), 'UNKNOWN_KEY', 'a key active by decision whose share this kernel does not hold');
    });

    t.test('each backup opens with every decided custodian, matches the public record, and the shares sign together', async (t) => {
      for (const key of keys) {
        const shares: { me: string; share: Uint8Array }[] = [];
        for (const p of [n1, n2]) {
          const r = await backup(p, key.keyId, first.map((x) => x.recipient));
          const meta = expectedMeta(key, p.setup.nodeId);
          t.equal(r.identifier, meta.identifier, `${p.setup.nodeId}: its identifier`);
          t.ok(bytesEqual(r.recipientsDigest, backupRecipientsDigest(first)), 'names the decided list');
          t.same(readShareBackupMeta(r.file), meta, 'the clear metadata is the public record');
          const byAlice = await decryptShareBackup(r.file, alice.identity, meta);
          const byBob = await decryptShareBackup(r.file, bob.identity, meta);
          t.ok(bytesEqual(byAlice, byBob), 'both custodians recover the same share');
          t.notOk(contains(r.file, byAlice), 'the share bytes appear nowhere in the file');
          t.equal(await reasonOf(decryptShareBackup(r.file, mallory.identity, meta)), 'BACKUP_INVALID', 'a custodian not decided cannot open it');
          t.equal(await reasonOf(decryptShareBackup(r.file, alice.identity, { ...meta, epoch: 1 })), 'BACKUP_FOREIGN', 'checked against another epoch, it is foreign');
          shares.push({ me: meta.identifier, share: byAlice });
        }
        t.ok(signWith(suiteOf(key.suite), toPackage(key.public), shares), `${key.suite}: the recovered shares sign under the group key`);
        for (const s of shares) s.share.fill(0);
      }
    });

    t.test('a new policy replaces the old one: the old custodians are refused, the new ones open it', async (t) => {
      const second = policyOf([carol]);
      await forward(gov.decide({ kind: 'BackupPolicy', recipients: second }));
      t.equal(await reasonOf(backup(n2, 'k-ed', first.map((r) => r.recipient))), 'BACKUP_RECIPIENTS_MISMATCH');
      const r = await backup(n2, 'k-ed', [carol.recipient]);
      const share = await decryptShareBackup(r.file, carol.identity, expectedMeta(kEd, 'n2'));
      t.equal(share.length, 32);
      t.equal(await reasonOf(decryptShareBackup(r.file, alice.identity, expectedMeta(kEd, 'n2'))), 'BACKUP_INVALID', 'a former custodian cannot open it');
    });

    t.test('a policy decision a daemon forged (one approver) is refused and changes nothing', async (t) => {
      const forged = gov.decide({ kind: 'BackupPolicy', recipients: policyOf([mallory]) }, gov.approvers.slice(0, 1));
      t.equal(await reasonOf(n1.client.call({ kind: 'governance', decisions: [forged] }, 'governance')), 'QUORUM_NOT_MET');
      t.equal(await reasonOf(backup(n1, 'k-ed', [mallory.recipient])), 'BACKUP_RECIPIENTS_MISMATCH');
      t.equal(await reasonOf(backup(n1, 'k-ed', [carol.recipient])), 'OK', 'the decided policy still holds');
    });

    t.test('a fenced kernel backs up nothing', async (t) => {
      await n2.client.call({ kind: 'fence', passport: 'passport-n2', reason: 'split brain seen' }, 'governance');
      t.equal(await reasonOf(backup(n2, 'k-ed', [carol.recipient])), 'SPLIT_BRAIN_FENCED');
    });
  });
}
