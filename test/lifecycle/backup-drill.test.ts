/**
 * A backup drill across three `custody node` daemons: a 2-of-3 key is active, approvers decide a
 * BackupPolicy naming custodian cara, every node backs up its share; cara's identity is split 3
 * of 5 among guardians; `custody admin backup drill` with 3 guardian files and copies of the
 * three backup folders passes, is recorded (BackupDrilled) on every replica, and `custody admin
 * backup list` shows it. A drill with one folder missing fails (exit 4, the missing participant
 * named), is recorded as failed and becomes the last drill shown; too few guardian files are
 * refused before anything is recorded.
 */
import t from 'tap';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decisionBodyFromCbor, decisionSigningBytes, ed25519Sign } from '../../ledger/decision.js';
import { decode } from '../../ledger/encoding.js';
import type { AdminClient } from '../../node/admin/client.js';
import { issueOperatorCert } from '../../node/admin/roles.js';
import { DaemonCluster } from '../../node/lifecycle/daemon-cluster.js';
import { until } from '../../node/probe.js';
import { renderShare, splitIdentity } from '../../node/guardian/shares.js';
import { writeShareFiles } from '../../node/guardian/files.js';
import { CLI, OPERATORS, POLICY, runCli } from './harness.js';
import { custodians } from '../ledger/backup-fixtures.js';

t.test('a drill of the daemons\' backups passes, is recorded on every replica and listed; a failed one too', { timeout: 900_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-backup-drill-'));
  const cluster = await DaemonCluster.create(dir, POLICY, 3, 3_000);
  const ids = cluster.nodes.map((n) => n.id);
  for (const [id, role] of Object.entries(OPERATORS)) issueOperatorCert(cluster.certs, id, role);
  const clients: AdminClient[] = [];
  const client = (as: string, id: string): AdminClient => {
    const c = cluster.client(id, as);
    clients.push(c);
    return c;
  };
  t.teardown(async () => {
    for (const c of clients) c.close();
    await cluster.stop();
    if (!t.passing()) for (const id of ids) t.comment(`--- ${id}.log (last lines)\n${readFileSync(join(dir, `${id}.log`), 'utf8').split('\n').slice(-40).join('\n')}`);
    rmSync(dir, { recursive: true, force: true });
  });
  await cluster.start('audra', CLI, 120_000);
  const cli = (as: string, id: string, args: string[]) => runCli(['admin', ...args, '--node', cluster.node(id).admin, '--node-id', id, '--certs', cluster.certs, '--as', as]);
  const approve = async (cid: string, who: string[]): Promise<void> => {
    for (const a of who) {
      const c = client(a, 'n1');
      const d = await c.getDecision(cid);
      await c.approveDecision(cid, a, ed25519Sign(decisionSigningBytes(decisionBodyFromCbor(decode(new Uint8Array(d.bodyCbor)))), cluster.approvers.find((x) => x.id === a)!.secretKey));
    }
  };
  const audra = (id: string) => client('audra', id);

  const d = await client('kim', 'n1').proposeDecision(JSON.stringify({ kind: 'DkgAuthorized', keyId: 'k', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ids }));
  await approve(d.cid, ['approver-1', 'approver-2']);
  await until('key object published', async () => (await audra('n1').status()).keys[0]?.epochs.includes('0:published'), 120_000);
  const a = await client('kim', 'n1').proposeDecision(JSON.stringify({ kind: 'KeyActivated', keyId: 'k', keyEpoch: 0 }));
  await approve(a.cid, ['approver-2', 'approver-3']);
  await until('key active', async () => (await audra('n1').status()).keys[0]?.status === 'active', 60_000);
  const [cara] = await custodians('cara');
  const p = await client('approver-1', 'n1').proposeDecision(JSON.stringify({ kind: 'BackupPolicy', recipients: [{ label: 'cara', recipient: cara!.recipient }] }));
  await approve(p.cid, ['approver-1', 'approver-2']);
  await until('every replica records the three backups', async () => {
    const ls = await Promise.all(ids.map((id) => audra(id).listBackups()));
    return ls.every((l) => l.missing === 0 && l.entries.length === 3);
  }, 120_000);

  // Offline: cara's identity split among five guardians; the backup folders copied off the hosts.
  const guardians = await writeShareFiles(join(dir, 'guardians'), await splitIdentity(cara!.identity, { shares: 5, threshold: 3, label: 'cara' }), (s) => renderShare(s));
  const copies = join(dir, 'copies');
  for (const id of ids) cpSync(join(dir, 'data', `${id}.share-backups`), join(copies, id), { recursive: true });
  t.equal(ids.map((id) => readdirSync(join(copies, id)).filter((f) => f.endsWith('.backup')).length).join(','), '1,1,1', 'one backup per node copied');

  const never = await cli('audra', 'n1', ['backup', 'list']);
  t.match(never.stdout, /key k epoch 0: never drilled/, 'no drill yet');

  const tooFew = await cli('audra', 'n1', ['backup', 'drill', '--key-id', 'k', '--guardian-shares', guardians[0]!, guardians[1]!, '--backups', copies]);
  t.equal(tooFew.code, 3, 'two guardian files of a 3-of-5 split are refused');
  t.match(tooFew.stderr, /GUARDIAN_TOO_FEW_SHARES/);

  const passed = await cli('audra', 'n2', ['backup', 'drill', '--key-id', 'k', '--guardian-shares', guardians[0]!, guardians[2]!, guardians[4]!, '--backups', ...ids.map((id) => join(copies, id))]);
  t.equal(passed.code, 0, passed.stderr);
  for (const id of ids) t.match(passed.stdout, new RegExp(`  ${id}: ok`), `${id}: ok`);
  t.match(passed.stdout, /any 2 of the 3 recovered shares reconstruct the group key/);
  t.match(passed.stdout, /PASSED: 3 of 3 shares recovered/);
  t.match(passed.stdout, /recorded in the ledger at index \d+ \(BackupDrilled/);
  t.match(passed.stderr, /drill: participant 3 of 3/, 'progress is shown');
  const lists = await until('every replica records the drill', async () => {
    const ls = await Promise.all(ids.map((id) => audra(id).listBackups()));
    return ls.every((l) => l.drills.length === 1) ? ls : null;
  }, 60_000);
  for (const l of lists) t.same(l.drills, lists[0]!.drills, 'every replica records the same drill');
  t.match(lists[0]!.drills[0], { keyId: 'k', keyEpoch: 0, passed: true, nodeId: 'n2' });
  t.same([...lists[0]!.drills[0]!.backupCids].sort(), lists[0]!.entries.map((e) => e.fileCid).sort(), 'the drill names the three recorded backups');
  const shown = await cli('audra', 'n3', ['backup', 'list']);
  t.match(shown.stdout, /key k epoch 0: last drill PASSED at \d{4}-.* through n2 \(index \d+\), 3 backups opened/);

  const failed = await cli('audra', 'n1', ['backup', 'drill', '--key-id', 'k', '--guardian-shares', join(dir, 'guardians'), '--backups', join(copies, 'n1'), join(copies, 'n2')]);
  t.equal(failed.code, 4, 'a drill that misses a backup exits 4');
  t.match(failed.stdout, /  n3: MISSING RECOVERY_BACKUP_MISSING/);
  t.match(failed.stdout, /FAILED: 2 of 3 shares recovered/);
  await until('every replica records the failed drill as the last one', async () => {
    const ls = await Promise.all(ids.map((id) => audra(id).listBackups()));
    return ls.every((l) => l.drills[0]?.passed === false && l.drills[0].nodeId === 'n1');
  }, 60_000);
  const after = await cli('audra', 'n1', ['backup', 'list']);
  t.match(after.stdout, /key k epoch 0: last drill FAILED at .* through n1 .* 2 backups opened/);

  const notAllowed = await cli('approver-1', 'n1', ['backup', 'drill', '--key-id', 'k', '--guardian-shares', join(dir, 'guardians'), '--backups', copies]);
  t.equal(notAllowed.code, 3, 'recording a drill needs the backup role');
  t.match(notAllowed.stderr, /ROLE_NOT_ALLOWED/);
  t.match(notAllowed.stdout, /FAILED: 0 of 3 shares recovered/, 'the report is printed even when the record is refused');
});
