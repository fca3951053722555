/**
 * Share recovery on real kernel processes, both profiles (kernel/recovery.ts): a 2-of-3 key, n2's
 * share backed up to a custodian; n2's kernel store is deleted and a fresh kernel follows
 * governance from its genesis; the custodian decrypts the backup offline and seals the share to
 * the fresh kernel's transport key; under a RecoveryAuthorized decision the kernel imports it and
 * signs with n1, and with n3, signatures that verify under the group key with an independent
 * verifier. The daemon's side is played by the test, as an attacker too: an import without a
 * decision, under decisions for another node, key or identifier, a wrong share, a package sealed
 * to another kernel, a forged public package, a replayed import, a decision for another epoch or
 * signed by one approver. Then the disaster: two of three kernels lose their stores, the
 * custodian's identity is rebuilt from 3 of 5 guardian shares (2 are refused), both shares are
 * recovered, and the two recovered kernels sign together under the same group key. The hsm
 * profile keeps its token (only the kernel store is deleted).
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { decryptShareBackup, type ShareBackupMeta } from '../../kernel/backup.js';
import { backupCid, recoveryContext, sealRecoveredShare } from '../../kernel/recovery.js';
import { sealTo } from '../../kernel/transport.js';
import { suiteOf, type SuiteName } from '../../kernel/suites.js';
import type { PublicPackage, RequestBody, SealedPackage } from '../../kernel/wire.js';
import {
  Governance, PROFILES, independentVerify, memberOf, reasonOf, runDkg, setupKernel, signAcross, startKernel, tempDir,
  type KernelProcess, type KeyResult,
} from './harness.js';
import { custodians, type Custodian } from '../ledger/backup-fixtures.js';
import { combineShares, splitIdentity } from '../../node/guardian/shares.js';

function metaOf(key: KeyResult, nodeId: string, epoch = 0): ShareBackupMeta {
  const identifier = key.identifiers[nodeId]!;
  const vs = key.public.verifyingShares.find((v) => v.identifier === identifier)!;
  return { keyId: key.keyId, epoch, identifier, verifyingShare: vs.point, groupKey: key.public.commitments[0]!, scheme: key.suite };
}

function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(hay).indexOf(Buffer.from(needle)) >= 0;
}

for (const profile of PROFILES) {
  t.test(`${profile}: a kernel whose store was lost imports its recovered share under a decision and signs again`, { timeout: 900_000 }, async (t) => {
    const { dir, cleanup } = tempDir(`share-recovery-${profile}`);
    const gov = new Governance();
    const setups = ['n1', 'n2', 'n3'].map((id) => setupKernel(dir, id, profile, gov));
    const procs: Record<string, KernelProcess> = {};
    t.teardown(async () => {
      for (const p of Object.values(procs)) await p.stop();
      cleanup();
    });
    for (const s of setups) procs[s.nodeId] = await startKernel(s);
    const all = (): KernelProcess[] => ['n1', 'n2', 'n3'].map((id) => procs[id]!);
    const forward = async (d: ReturnType<Governance['decide']>, to = all()): Promise<void> => {
      for (const p of to) await p.client.call({ kind: 'governance', decisions: [d] }, 'governance');
    };
    const [alice] = await custodians('alice') as [Custodian];
    const suiteName: SuiteName = 'ed25519';
    const key = await runDkg(gov, all().map(memberOf), 'k-main', suiteName, 2);
    // A second key, of n1 and n3: a decision naming it for n2 grants nothing for k-main.
    const other = await runDkg(gov, [procs['n1']!, procs['n3']!].map(memberOf), 'k-other', 'taproot', 2);
    // n2 saw neither the DkgAuthorized nor the KeyActivated of k-other: it catches up from the log.
    await procs['n2']!.client.call({ kind: 'governance', decisions: [...gov.log] }, 'governance');
    await forward(gov.decide({ kind: 'BackupPolicy', recipients: [{ label: alice.label, recipient: alice.recipient }] }));
    const n2Backup = (await procs['n2']!.client.call({ kind: 'shareBackup', keyId: key.keyId, epoch: 0, recipients: [alice.recipient] }, 'shareBackup')).file;
    const n1Backup = (await procs['n1']!.client.call({ kind: 'shareBackup', keyId: key.keyId, epoch: 0, recipients: [alice.recipient] }, 'shareBackup')).file;

    // The key signs before the disaster; the ledger would record n2's consumed counter.
    const before = await signAcross(gov, [procs['n1']!, procs['n2']!].map(memberOf), key, randomBytes(32));
    t.ok(before.signature.length > 0, 'n1 and n2 sign before the loss');
    const n2Consumed = (await procs['n2']!.client.call({ kind: 'status' }, 'status')).keys.find((k) => k.keyId === key.keyId)!.consumedCounter;
    t.ok(n2Consumed >= 1, `n2 consumed nonce counter ${n2Consumed}`);

    // Disaster: n2's kernel store is deleted. A fresh kernel follows governance from its genesis.
    await procs['n2']!.stop();
    rmSync(setups[1]!.storeDir, { recursive: true, force: true });
    procs['n2'] = await startKernel(setups[1]!);
    const n2 = procs['n2'];
    await n2.client.call({ kind: 'governance', decisions: [...gov.log] }, 'governance');
    const fresh = await n2.client.call({ kind: 'status' }, 'status');
    t.same(fresh.keys, [], 'the fresh kernel holds no share');

    const meta = metaOf(key, 'n2');
    const publicPkg: PublicPackage = key.public;
    const { sealed, backupCid: cid } = await sealRecoveredShare(n2Backup, alice.identity, meta, n2.transportPublicKey);
    t.ok(bytesOf(cid).equals(bytesOf(backupCid(n2Backup))), 'the cid is sha256 of the backup file');
    const clear = await decryptShareBackup(n2Backup, alice.identity, meta);
    t.notOk(contains(sealed.ciphertext, clear) || contains(sealed.enc, clear), 'the share does not appear in the sealed package');
    const importShare = (over: Partial<Extract<RequestBody, { kind: 'importShare' }>> = {}, p: KernelProcess = n2) =>
      p.client.call({ kind: 'importShare', keyId: key.keyId, epoch: 0, identifier: meta.identifier, public: publicPkg, sealed, ledgerConsumedCounter: n2Consumed, ...over }, 'keyPackage');
    const decision = (over: Record<string, unknown> = {}) => gov.decide({
      kind: 'RecoveryAuthorized', nodeId: 'n2', keyId: key.keyId, keyEpoch: 0, identifier: meta.identifier, backupCid: cid,
      groupKey: meta.groupKey, verifyingShare: meta.verifyingShare, ...over,
    } as never);

    await t.test('without a decision: RECOVERY_NOT_AUTHORIZED', async (t) => {
      t.equal(await reasonOf(importShare()), 'RECOVERY_NOT_AUTHORIZED');
    });

    await t.test('a decision for another node, key or identifier authorizes nothing here', async (t) => {
      await forward(decision({ nodeId: 'n3', identifier: key.identifiers['n3'] }));
      t.equal(await reasonOf(importShare()), 'RECOVERY_NOT_AUTHORIZED', 'a decision naming n3 is not kept by n2');
      const o = metaOf(other, 'n1');
      await forward(decision({ keyId: other.keyId, identifier: o.identifier, groupKey: o.groupKey, verifyingShare: o.verifyingShare }));
      t.equal(await reasonOf(importShare()), 'RECOVERY_NOT_AUTHORIZED', 'a decision for another key');
      t.equal(await reasonOf(importShare({ keyId: other.keyId, identifier: o.identifier, public: other.public })), 'WRONG_RECIPIENT', 'and under it, an import into a key n2 is no participant of');
      await forward(decision({ identifier: key.identifiers['n1'], verifyingShare: metaOf(key, 'n1').verifyingShare }));
      t.equal(await reasonOf(importShare()), 'RECOVERY_NOT_AUTHORIZED', 'a decision for another identifier');
      t.equal(await reasonOf(importShare({ identifier: key.identifiers['n1']! })), 'WRONG_RECIPIENT', 'the package sealed for n2\'s identifier, presented as n1\'s');
    });

    await forward(decision());

    await t.test('under the decision: a forged public package, a package sealed to another kernel, a wrong share are refused', async (t) => {
      const vs = publicPkg.verifyingShares.map((v) => (v.identifier === key.identifiers['n3'] ? { ...v, point: metaOf(key, 'n1').verifyingShare } : v));
      t.equal(await reasonOf(importShare({ public: { ...publicPkg, verifyingShares: vs } })), 'BINDING_MISMATCH', 'another participant\'s verifying share swapped');
      t.equal(await reasonOf(importShare({ public: other.public })), 'BINDING_MISMATCH', 'the package of another key');
      t.equal(await reasonOf(importShare({ public: { ...publicPkg, min: 3, commitments: [...publicPkg.commitments, publicPkg.commitments[1]!] } })), 'BINDING_MISMATCH', 'another threshold');
      t.equal(await reasonOf(importShare({ public: { ...publicPkg, commitments: [publicPkg.commitments[0]!, publicPkg.verifyingShares[0]!.point] } })), 'BINDING_MISMATCH', 'another commitment polynomial under the same group key and verifying share');

      const toN3 = await sealRecoveredShare(n2Backup, alice.identity, meta, procs['n3']!.transportPublicKey);
      t.equal(await reasonOf(importShare({ sealed: toN3.sealed })), 'PAYLOAD_REJECTED', 'sealed to n3\'s kernel');

      const ctx = recoveryContext(key.keyId, 0, meta.identifier, cid);
      const wrong: SealedPackage = await sealTo(new Uint8Array(n2.transportPublicKey), ctx, suiteOf(suiteName).Fn.toBytes(BigInt(`0x${randomBytes(31).toString("hex")}`) + 1n));
      t.equal(await reasonOf(importShare({ sealed: wrong })), 'SHARE_MISMATCH', 'a random scalar sealed with the right context');
      const n1Share = await decryptShareBackup(n1Backup, alice.identity, metaOf(key, 'n1'));
      t.equal(await reasonOf(importShare({ sealed: await sealTo(new Uint8Array(n2.transportPublicKey), ctx, n1Share) })), 'SHARE_MISMATCH', 'n1\'s real share in n2\'s place');
      n1Share.fill(0);
      const otherCtx = recoveryContext(key.keyId, 0, meta.identifier, randomBytes(32));
      t.equal(await reasonOf(importShare({ sealed: await sealTo(new Uint8Array(n2.transportPublicKey), otherCtx, clear) })), 'PAYLOAD_REJECTED', 'the right share sealed under another backup cid');
      const before = await n2.client.call({ kind: 'status' }, 'status');
      t.same(before.keys, [], 'nothing was imported');
      t.same(before.recoveriesPending.filter((g) => g.keyId === key.keyId).map((g) => [g.epoch, g.identifier]), [[0, meta.identifier]], 'status lists the grant, unused');
    });

    await t.test('the recovered share is imported, starts above the ledger\'s consumed counter, and signs with either peer', async (t) => {
      const r = await importShare();
      t.equal(r.identifier, meta.identifier);
      t.same((await n2.client.call({ kind: 'status' }, 'status')).recoveriesPending.filter((g) => g.keyId === key.keyId), [], 'the import used the grant: status lists none for the key');
      const st = (await n2.client.call({ kind: 'status' }, 'status')).keys.find((k) => k.keyId === key.keyId)!;
      t.ok(st.active, 'the key is active on n2 again');
      t.ok(st.consumedCounter >= n2Consumed, `consumed counter ${st.consumedCounter} is at least the ledger's ${n2Consumed}`);
      const n = await n2.client.call({ kind: 'nonces', keyId: key.keyId, keyEpoch: 0, count: 1 }, 'nonceCommitments');
      t.ok(n.commitments[0]!.counter > n2Consumed, `the first new nonce is numbered ${n.commitments[0]!.counter}, above ${n2Consumed}`);
      for (const peer of ['n1', 'n3']) {
        const msg = randomBytes(32);
        const s = await signAcross(gov, [procs[peer]!, n2].map(memberOf), key, msg);
        t.ok(independentVerify(suiteName, key.public.commitments[0]!, msg, s.signature), `${peer} and the recovered n2 sign under the group key (independent verifier)`);
      }
    });

    await t.test('replaying the import is refused: the share is held and the decision consumed', async (t) => {
      t.equal(await reasonOf(importShare()), 'SHARE_ALREADY_HELD');
      t.equal(await reasonOf(n2.client.call({ kind: 'governance', decisions: [...gov.log] }, 'governance')), 'OK', 'governance re-delivered changes nothing');
      t.equal(await reasonOf(importShare()), 'SHARE_ALREADY_HELD');
    });

    await t.test('a fenced kernel imports nothing; a decision for an epoch that is not active, or signed by one approver, is refused', async (t) => {
      await procs['n3']!.client.call({ kind: 'fence', passport: 'p-n3', reason: 'split brain seen' }, 'governance');
      t.equal(await reasonOf(importShare({}, procs['n3']!)), 'SPLIT_BRAIN_FENCED');
      const stale = decision({ keyEpoch: 1 });
      t.equal(await reasonOf(n2.client.call({ kind: 'governance', decisions: [stale] }, 'governance')), 'STALE_EPOCH');
      const forged = gov.decide({
        kind: 'RecoveryAuthorized', nodeId: 'n1', keyId: key.keyId, keyEpoch: 0, identifier: key.identifiers['n1']!, backupCid: backupCid(n1Backup),
        groupKey: meta.groupKey, verifyingShare: metaOf(key, 'n1').verifyingShare,
      }, gov.approvers.slice(0, 1));
      t.equal(await reasonOf(procs['n1']!.client.call({ kind: 'governance', decisions: [forged] }, 'governance')), 'QUORUM_NOT_MET', 'a decision one approver signed (a daemon forging one)');
    });
    clear.fill(0);
  });
}

function bytesOf(b: Uint8Array): Buffer {
  return Buffer.from(b);
}

for (const profile of PROFILES) {
  t.test(`${profile}: two of three kernels lose their stores; both are recovered through 3 of 5 guardian shares and sign together`, { timeout: 900_000 }, async (t) => {
    const { dir, cleanup } = tempDir(`share-disaster-${profile}`);
    const gov = new Governance();
    const setups = ['n1', 'n2', 'n3'].map((id) => setupKernel(dir, id, profile, gov));
    const procs: Record<string, KernelProcess> = {};
    t.teardown(async () => {
      for (const p of Object.values(procs)) await p.stop();
      cleanup();
    });
    for (const s of setups) procs[s.nodeId] = await startKernel(s);
    const all = (): KernelProcess[] => ['n1', 'n2', 'n3'].map((id) => procs[id]!);
    const forward = async (d: ReturnType<Governance['decide']>): Promise<void> => {
      for (const p of all()) await p.client.call({ kind: 'governance', decisions: [d] }, 'governance');
    };
    const suiteName: SuiteName = 'taproot';
    const key = await runDkg(gov, all().map(memberOf), 'k-vault', suiteName, 2);
    // The custodian's identity exists only as guardian files from here on.
    const custodian = await generateX25519Identity();
    const guardians = await splitIdentity(custodian, { shares: 5, threshold: 3, label: 'vault-custodian' });
    await forward(gov.decide({ kind: 'BackupPolicy', recipients: [{ label: 'vault-custodian', recipient: await identityToRecipient(custodian) }] }));
    const backups: Record<string, Uint8Array> = {};
    for (const n of ['n2', 'n3']) backups[n] = (await procs[n]!.client.call({ kind: 'shareBackup', keyId: key.keyId, epoch: 0, recipients: [await identityToRecipient(custodian)] }, 'shareBackup')).file;

    for (const n of ['n2', 'n3']) {
      await procs[n]!.stop();
      rmSync(setups.find((s) => s.nodeId === n)!.storeDir, { recursive: true, force: true });
      procs[n] = await startKernel(setups.find((s) => s.nodeId === n)!);
      await procs[n]!.client.call({ kind: 'governance', decisions: [...gov.log] }, 'governance');
    }
    t.equal(await reasonOf(signAcross(gov, [procs['n1']!, procs['n2']!].map(memberOf), key, randomBytes(32))), 'UNKNOWN_KEY', 'the key cannot sign: only n1 holds a share');

    t.equal(await reasonOf(combineShares([guardians[0]!, guardians[3]!].map((share, i) => ({ name: `g${i}`, share })))), 'GUARDIAN_TOO_FEW_SHARES', 'two guardians cannot rebuild the identity');
    const { identity } = await combineShares([guardians[1]!, guardians[2]!, guardians[4]!].map((share, i) => ({ name: `g${i}`, share })));
    for (const n of ['n2', 'n3']) {
      const meta = metaOf(key, n);
      const { sealed, backupCid: cid } = await sealRecoveredShare(backups[n]!, identity, meta, procs[n]!.transportPublicKey);
      await forward(gov.decide({
        kind: 'RecoveryAuthorized', nodeId: n, keyId: key.keyId, keyEpoch: 0, identifier: meta.identifier, backupCid: cid,
        groupKey: meta.groupKey, verifyingShare: meta.verifyingShare,
      }));
      const r = await procs[n]!.client.call({ kind: 'importShare', keyId: key.keyId, epoch: 0, identifier: meta.identifier, public: key.public, sealed, ledgerConsumedCounter: 0 }, 'keyPackage');
      t.equal(r.identifier, meta.identifier, `${n} imported its share`);
    }
    for (const pair of [['n2', 'n3'], ['n1', 'n3']]) {
      const msg = randomBytes(32);
      const s = await signAcross(gov, pair.map((n) => memberOf(procs[n]!)), key, msg);
      t.ok(independentVerify(suiteName, key.public.commitments[0]!, msg, s.signature), `${pair.join(' and ')} sign under the same group key (BIP340 verifier)`);
    }
  });
}
