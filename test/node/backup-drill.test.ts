/**
 * Backup drills (node/guardian/drill.ts): a custodian's identity rebuilt from guardian files opens
 * every participant's backup of a real FROST key epoch, each share is checked, and the shares
 * must reconstruct the group key. Each case plays the attacker or the accident the drill must
 * report: a missing file, a tampered one, a backup of another key or participant passed under a
 * recorded cid, a forged backup whose share matches its own forged verifying share, too few or
 * foreign guardian files. Also through the throwaway process (drillInChild), and the
 * reconstruction check as a property over schemes and thresholds.
 * A failing property prints its seed; replay with FC_SEED=<seed> (and FC_PATH=<path>).
 */
import t from 'tap';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { encryptShareBackup } from '../../kernel/backup.js';
import { suiteOf, type SuiteName } from '../../kernel/suites.js';
import { renderShare, splitIdentity } from '../../node/guardian/shares.js';
import { writeShareFiles } from '../../node/guardian/files.js';
import { checkReconstruction, drillInChild, drillReportDigest, formatDrillReport, runDrill, type DrillInput } from '../../node/guardian/drill.js';
import { dealer, reasonOf } from '../kernel/harness.js';

const replay = {
  ...(process.env.FC_SEED !== undefined ? { seed: Number(process.env.FC_SEED) } : {}),
  ...(process.env.FC_PATH !== undefined ? { path: process.env.FC_PATH } : {}),
};
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** A 2-of-3 key epoch with a backup per participant, and a custodian split 3 of 5 among guardians. */
async function world(dir: string) {
  const suite = suiteOf('secp256k1');
  const { pub, shares } = dealer(suite, 2, 3);
  const ids = Object.keys(shares);
  const identity = await generateX25519Identity();
  const recipient = await identityToRecipient(identity);
  const guardians = await writeShareFiles(join(dir, 'g'), await splitIdentity(identity, { shares: 5, threshold: 3, label: 'cust' }), (s) => renderShare(s));
  const groupKey = pub.commitments[0]!;
  const nodes = ['n1', 'n2', 'n3'];
  const files: string[] = [];
  const cids: string[] = [];
  for (const [i, id] of ids.entries()) {
    const bytes = await encryptShareBackup(shares[id]!, { keyId: 'k1', epoch: 0, identifier: id, verifyingShare: pub.verifyingShares[id]!, groupKey, scheme: 'secp256k1' }, [recipient]);
    const f = join(dir, `k1.epoch-0.${nodes[i]}.backup`);
    writeFileSync(f, bytes);
    files.push(f);
    cids.push(sha(bytes));
  }
  const input = (over: Partial<DrillInput> = {}): DrillInput => ({
    keyId: 'k1', epoch: 0, scheme: 'secp256k1', threshold: 2, groupKey: hex(groupKey),
    participants: nodes.map((nodeId, i) => ({ nodeId, identifier: ids[i]!, cid: cids[i]! })),
    guardianFiles: guardians.slice(0, 3), backupFiles: files, ...over,
  });
  return { suite, pub, shares, ids, identity, recipient, guardians, groupKey, files, cids, input, nodes };
}

t.test('drill: every backup opens, matches and the shares reconstruct the key; also in the throwaway process', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-drill-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const w = await world(dir);
  const r = await runDrill(w.input());
  t.equal(r.recipient, w.recipient, 'the identity of the custodian was rebuilt');
  t.same(r.entries.map((e) => [e.nodeId, e.status, e.reason]), [['n1', 'ok', ''], ['n2', 'ok', ''], ['n3', 'ok', '']]);
  t.ok(r.reconstructs, r.reconstruction);
  t.ok(r.ok);
  t.match(formatDrillReport(r), /PASSED: 3 of 3 shares recovered/);

  const progress: string[] = [];
  const c = await drillInChild(w.input(), (l) => progress.push(l));
  t.same(c, r, 'the child process reports the same');
  t.ok(progress.some((l) => /participant 3 of 3/.test(l)), 'progress of the child is relayed');
  const text = JSON.stringify(c);
  for (const id of w.ids) t.notOk(text.includes(hex(w.shares[id]!)), 'no share in the report');
  t.notOk(text.includes(w.identity.slice(16)), 'no identity in the report');
});

t.test('drill: a missing backup is reported MISSING; with t others left the key still reconstructs', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-drill-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const w = await world(dir);
  const noFile = await runDrill(w.input({ backupFiles: [w.files[0]!, w.files[2]!] }));
  t.same(noFile.entries.map((e) => [e.status, e.reason]), [['ok', ''], ['missing', 'RECOVERY_BACKUP_MISSING'], ['ok', '']]);
  t.ok(noFile.reconstructs, 'two shares of a 2-of-3 key reconstruct it');
  t.notOk(noFile.ok, 'but the drill fails: n2 could not be restored');
  t.match(formatDrillReport(noFile), /FAILED: 2 of 3/);

  const input = w.input();
  input.participants[1]!.cid = '';
  input.participants[2]!.cid = '';
  const noRecord = await runDrill(input);
  t.same(noRecord.entries.map((e) => e.status), ['ok', 'missing', 'missing']);
  t.notOk(noRecord.reconstructs, 'one share of a 2-of-3 key proves nothing');
  t.match(noRecord.reconstruction, /DRILL_RECONSTRUCTION_FAILED/);
});

t.test('drill: a tampered backup is refused BACKUP_INVALID; a file not of the recorded cid is not used', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-drill-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const w = await world(dir);
  const bytes = new Uint8Array(readFileSync(w.files[1]!));
  bytes[bytes.length - 5]! ^= 1;
  const f = join(dir, 'tampered.backup');
  writeFileSync(f, bytes);
  const notRecorded = await runDrill(w.input({ backupFiles: [w.files[0]!, f, w.files[2]!] }));
  t.equal(notRecorded.entries[1]!.status, 'missing', 'the altered file is not the recorded one');
  const input = w.input({ backupFiles: [w.files[0]!, f, w.files[2]!] });
  input.participants[1]!.cid = sha(bytes);
  const r = await runDrill(input);
  t.same([r.entries[1]!.status, r.entries[1]!.reason], ['mismatch', 'BACKUP_INVALID'], 'even under a cid that names it');
  t.notOk(r.ok);
});

t.test('drill: a backup of another participant or another key under a recorded cid is refused BACKUP_FOREIGN', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-drill-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const w = await world(dir);
  const swapped = w.input();
  swapped.participants[0]!.cid = w.cids[1]!;
  const r = await runDrill(swapped);
  t.same([r.entries[0]!.status, r.entries[0]!.reason], ['mismatch', 'BACKUP_FOREIGN'], 'n2\'s backup does not pass for n1\'s');
  const other = dealer(w.suite, 2, 3);
  const id = w.ids[0]!;
  const foreign = await encryptShareBackup(other.shares[id]!, { keyId: 'k2', epoch: 0, identifier: id, verifyingShare: other.pub.verifyingShares[id]!, groupKey: other.pub.commitments[0]!, scheme: 'secp256k1' }, [w.recipient]);
  const ff = join(dir, 'k2.backup');
  writeFileSync(ff, foreign);
  const input = w.input({ backupFiles: [...w.files, ff] });
  input.participants[0]!.cid = sha(foreign);
  const r2 = await runDrill(input);
  t.same([r2.entries[0]!.status, r2.entries[0]!.reason], ['mismatch', 'BACKUP_FOREIGN'], 'a backup of key k2 does not pass for k1');
  const sameKeyOtherGroup = w.input({ keyId: 'k1', groupKey: hex(other.pub.commitments[0]!) });
  const r3 = await runDrill(sameKeyOtherGroup);
  t.ok(r3.entries.every((e) => e.reason === 'BACKUP_FOREIGN'), 'backups of another group key than the ledger\'s');
});

t.test('drill: a forged backup whose share matches its own forged verifying share fails the reconstruction', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-drill-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const w = await world(dir);
  const s = w.suite.Fn.toBytes(12345678901234567890n);
  const id = w.ids[2]!;
  const forged = await encryptShareBackup(s, { keyId: 'k1', epoch: 0, identifier: id, verifyingShare: w.suite.base.multiply(12345678901234567890n).toBytes(), groupKey: w.groupKey, scheme: 'secp256k1' }, [w.recipient]);
  const ff = join(dir, 'forged.backup');
  writeFileSync(ff, forged);
  const input = w.input({ backupFiles: [w.files[0]!, w.files[1]!, ff] });
  input.participants[2]!.cid = sha(forged);
  const r = await runDrill(input);
  t.equal(r.entries[2]!.status, 'ok', 'the forged file alone passes its own checks');
  t.notOk(r.reconstructs, 'but it is not on the key\'s polynomial');
  t.match(r.reconstruction, /DRILL_RECONSTRUCTION_FAILED: the share of n3 is not on the polynomial/);
  t.notOk(r.ok);
});

t.test('drill: too few, foreign or corrupt guardian files are refused by name, also through the child', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-drill-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const w = await world(dir);
  t.equal(await reasonOf(runDrill(w.input({ guardianFiles: w.guardians.slice(0, 2) }))), 'GUARDIAN_TOO_FEW_SHARES');
  t.equal(await reasonOf(drillInChild(w.input({ guardianFiles: w.guardians.slice(0, 2) }))), 'GUARDIAN_TOO_FEW_SHARES', 'the child\'s refusal keeps its code');
  const otherId = await generateX25519Identity();
  const otherFiles = await writeShareFiles(join(dir, 'g2'), await splitIdentity(otherId, { shares: 5, threshold: 3, label: 'cust' }), (s) => renderShare(s));
  t.equal(await reasonOf(runDrill(w.input({ guardianFiles: [w.guardians[0]!, w.guardians[1]!, otherFiles[2]!] }))), 'GUARDIAN_SHARE_FOREIGN');
  const corrupt = join(dir, 'corrupt.txt');
  writeFileSync(corrupt, readFileSync(w.guardians[2]!, 'utf8').replace(/share: /, 'share:  '));
  t.equal(await reasonOf(runDrill(w.input({ guardianFiles: [w.guardians[0]!, w.guardians[1]!, corrupt] }))), 'GUARDIAN_SHARE_CORRUPT');

  const wrong = await runDrill(w.input({ guardianFiles: otherFiles.slice(0, 3) }));
  t.not(wrong.recipient, w.recipient, 'another custodian\'s identity');
  t.ok(wrong.entries.every((e) => e.status === 'mismatch' && e.reason === 'BACKUP_INVALID'), 'opens none of the backups');
  t.notOk(wrong.reconstructs);
  t.notOk(wrong.ok);
});

t.test('checkReconstruction: dealt shares in any order reconstruct the group key; one altered share is caught', async (t) => {
  const schemes: SuiteName[] = ['ed25519', 'secp256k1', 'taproot'];
  const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31);
  t.comment(`seed ${seed}`);
  fc.assert(fc.property(
    fc.constantFrom(...schemes), fc.integer({ min: 2, max: 5 }).chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 2, max: n }), fc.shuffledSubarray([...Array(n).keys()], { minLength: 1, maxLength: n }), fc.nat())),
    (scheme, [n, tt, order, pick]) => {
      const suite = suiteOf(scheme);
      const { pub, shares } = dealer(suite, tt, n);
      const ids = Object.keys(shares);
      const list = order.map((i) => ({ x: suite.Fn.fromBytes(Buffer.from(ids[i]!, 'hex')), s: suite.Fn.fromBytes(shares[ids[i]!]!), nodeId: `n${i + 1}` }));
      const why = checkReconstruction(scheme, tt, pub.commitments[0]!, list);
      if (list.length < tt) return why !== '';
      if (why !== '') return false;
      const j = pick % list.length;
      const altered = list.map((p, i) => (i === j ? { ...p, s: suite.Fn.add(p.s, 1n) } : p));
      return checkReconstruction(scheme, tt, pub.commitments[0]!, altered) !== '';
    },
  ), { seed, numRuns: 60, ...replay });
});

t.test('drillReportDigest is the sha256 of the compact JSON of the report, so an auditor can recompute it from the --json output', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-drill-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const w = await world(dir);
  const r = await runDrill(w.input());
  const printed = JSON.parse(JSON.stringify({ report: r }, null, 2)) as { report: typeof r };
  t.equal(drillReportDigest(printed.report), sha(new TextEncoder().encode(JSON.stringify(printed.report))));
  t.equal(drillReportDigest(printed.report), drillReportDigest(r), 'the pretty-printed report parses back to the digest recorded');
  t.not(drillReportDigest({ ...r, ok: !r.ok }), drillReportDigest(r), 'another verdict, another digest');
});
