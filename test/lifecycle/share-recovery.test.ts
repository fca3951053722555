/**
 * Disaster recovery across three `custody node` daemons, each with its own kernel process: a 2-of-3
 * key signs; approvers decide a BackupPolicy to a custodian whose identity is split among five
 * guardians, and every node backs its share up. Then the kernels of n2 and n3 lose their stores
 * (stopped, store deleted, fresh kernels started under the running daemons): the key cannot sign
 * without them. n2 comes back from its backup: the custodian's identity is rebuilt from three of
 * the five guardian files, `custody admin kernel status` gives the fresh kernel's transport key,
 * `custody guardian recover-share` seals the share to it, approvers decide RecoveryAuthorized, and
 * `custody admin share import` imports it (ShareRecovered). n3 is repaired by n1 and the recovered
 * n2 with no backup (`custody admin share repair`, ShareRepaired). With n1's kernel down, n2 and n3
 * sign an act together: its signature verifies under OpenSSL (node:crypto) and its evidence with
 * `custody evidence verify`, under the group key made before the disaster; every replica lists the
 * recovery and the repair in `custody admin backup list`. Then the key is refreshed with all three
 * kernels and signs at the new epoch: the nodes published their fresh kernels' transport keys, so
 * the new shares are sealed to them.
 *
 * Refusals on the way, each with its reason code end to end and nothing imported: an import before
 * the decision (RECOVERY_NOT_AUTHORIZED), by a role that may not (ROLE_NOT_ALLOWED), of another
 * node's file under this node's decision (RECOVERY_NOT_AUTHORIZED), of a file of another key than
 * the operator named (BINDING_MISMATCH); the same import again imports nothing.
 */
import t from 'tap';
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { readdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decisionBodyFromCbor, decisionSigningBytes, ed25519Sign } from '../../ledger/decision.js';
import { decode } from '../../ledger/encoding.js';
import type { ActView, AdminClient } from '../../node/admin/client.js';
import { issueOperatorCert } from '../../node/admin/roles.js';
import { DaemonCluster } from '../../node/lifecycle/daemon-cluster.js';
import type { KernelStatusView } from '../../node/lifecycle/share-import.js';
import { until } from '../../node/probe.js';
import { parseTransaction } from '../../ledger/tx/parse.js';
import type { TxKind } from '../../ledger/tx/types.js';
import { assetTableOf, keyContextOfView } from '../../node/commands/act.js';
import { CLI, OPERATORS, POLICY, actTx, labelled, runCli, type LabelledClient } from './harness.js';

t.test('two kernels lose their stores; their shares come back from backups through guardians and the key signs under the same group key', { timeout: 1_200_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-share-recovery-'));
  const cluster = await DaemonCluster.create(dir, POLICY, 3, 3_000);
  const ids = cluster.nodes.map((n) => n.id);
  for (const [id, role] of Object.entries(OPERATORS)) issueOperatorCert(cluster.certs, id, role);
  const clients: AdminClient[] = [];
  t.teardown(async () => {
    for (const c of clients) c.close();
    await cluster.stop();
    if (!t.passing()) for (const id of ids) t.comment(`--- ${id}.log (last lines)\n${readFileSync(join(dir, `${id}.log`), 'utf8').split('\n').slice(-40).join('\n')}`);
    rmSync(dir, { recursive: true, force: true });
  });
  const client = (as: string, id: string): LabelledClient => {
    const c = cluster.client(id, as);
    clients.push(c);
    return labelled(c, cluster.custodians[0]!);
  };
  const admin = (as: string, id: string, args: string[]) => runCli(['admin', ...args, '--node', cluster.node(id).admin, '--node-id', id, '--certs', cluster.certs, '--as', as]);
  const offline = (args: string[]) => runCli(['guardian', ...args]);
  const approve = async (cid: string, who: string[]): Promise<void> => {
    for (const a of who) {
      const c = client(a, 'n1');
      const d = await c.getDecision(cid);
      await c.approveDecision(cid, a, ed25519Sign(decisionSigningBytes(decisionBodyFromCbor(decode(new Uint8Array(d.bodyCbor)))), cluster.approvers.find((k) => k.id === a)!.secretKey));
    }
  };
  const kernelStatus = async (id: string): Promise<KernelStatusView> => {
    const r = await admin('audra', id, ['kernel', 'status', '--json']);
    if (r.code !== 0) throw new Error(`kernel status of ${id}: ${r.stderr}`);
    return JSON.parse(r.stdout) as KernelStatusView;
  };
  const sign = async (op: string, via: string): Promise<ActView> => {
    await client('cara', via).submitAct({ opId: op, keyId: 'k', ...(await actTx(client('cara', via), 'k', '100', 'sol-treasury')) });
    return client('cara', via).watch(op, () => undefined, (v) => ['Published', 'Settled', 'Denied', 'Aborted'].includes(v.state), 240_000);
  };
  const verified = async (op: string): Promise<void> => {
    const f = join(dir, `${op}.json`);
    writeFileSync(f, (await client('audra', 'n1').exportEvidence(op)).bundleJson);
    const v = await runCli(['evidence', 'verify', f]);
    t.equal(v.code, 0, `${op}: custody evidence verify accepts its bundle ${v.stdout.trim().split('\n')[0] ?? ''} ${v.stderr.trim()}`);
  };

  // A key that signs.
  await cluster.start('audra', CLI, 120_000);
  const dk = await client('kim', 'n1').proposeDecision(JSON.stringify({ kind: 'DkgAuthorized', keyId: 'k', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ids }));
  await approve(dk.cid, ['approver-1', 'approver-2']);
  await until('key k published', async () => (await client('audra', 'n1').status()).keys.find((k) => k.id === 'k')?.epochs.includes('0:published'), 180_000);
  const activated = await client('kim', 'n1').proposeDecision(JSON.stringify({ kind: 'KeyActivated', keyId: 'k', keyEpoch: 0 }));
  await approve(activated.cid, ['approver-2', 'approver-3']);
  await until('key k active', async () => (await client('audra', 'n1').status()).keys.find((k) => k.id === 'k')?.status === 'active', 120_000);
  const groupKey = (await client('audra', 'n1').status()).keys.find((k) => k.id === 'k')!.publicKey;
  const before = await sign('before-disaster', 'n2');
  t.equal(before.state, 'Published', 'the key signs before the disaster');
  await verified('before-disaster');

  // The custodian's identity, split among five guardians; the identity file itself is destroyed.
  const made = await offline(['identity', '--out', join(dir, 'custodian.id')]);
  t.equal(made.code, 0, made.stderr);
  const recipient = /^(age1[0-9a-z]{58})$/m.exec(made.stdout)?.[1] ?? '';
  t.ok(recipient.length > 0, 'the custodian\'s recipient is printed');
  const split = await offline(['split', '--identity-file', join(dir, 'custodian.id'), '--shares', '5', '--threshold', '3', '--out', join(dir, 'guardians'), '--label', 'custodian-a']);
  t.equal(split.code, 0, split.stderr);
  rmSync(join(dir, 'custodian.id'));
  const guardianFiles = readdirSync(join(dir, 'guardians')).sort().map((n) => join(dir, 'guardians', n));
  t.equal(guardianFiles.length, 5, 'five guardian files');

  // Backups to that custodian, on every node.
  const proposed = await admin('approver-1', 'n1', ['backup', 'policy', '--custodian', `custodian-a=${recipient}`, '--json']);
  t.equal(proposed.code, 0, proposed.stderr);
  await approve((JSON.parse(proposed.stdout) as { cid: string }).cid, ['approver-1', 'approver-2']);
  const listed = await until('every replica records the three backups', async () => {
    const ls = await Promise.all(ids.map((id) => client('audra', id).listBackups()));
    return ls.every((l) => l.missing === 0 && l.entries.length === 3) ? ls[0]! : null;
  }, 180_000);
  const backupFile = (id: string): string => {
    const folder = join(dir, 'data', `${id}.share-backups`);
    const [name] = readdirSync(folder).filter((f) => f.endsWith('.backup'));
    return join(folder, name!);
  };
  // Copies off the hosts, as the runbook says: the recovery reads these.
  for (const id of ids) writeFileSync(join(dir, `${id}.backup-copy`), readFileSync(backupFile(id)));

  // The disaster: the kernels of n2 and n3 lose their stores; their daemons keep running.
  const lost = ['n2', 'n3'];
  const oldTransport = new Map<string, string>();
  for (const id of lost) {
    const before = await kernelStatus(id);
    t.same(before.keys.map((k) => [k.keyId, k.keyEpoch]), [['k', 0]], `${id}'s kernel holds its share of k epoch 0 before the disaster`);
    oldTransport.set(id, before.transportPublicKey);
    const n = cluster.node(id);
    n.kernel?.proc.kill('SIGKILL');
    await n.kernel?.exited;
    rmSync(join(dir, `${id}-kernel`, 'store'), { recursive: true, force: true });
    await cluster.startKernel(id);
  }
  const fresh = new Map<string, KernelStatusView>();
  for (const id of lost) {
    const s = await until(`${id}'s daemon reaches its fresh kernel`, async () => {
      try {
        return await kernelStatus(id);
      } catch {
        return null;
      }
    }, 120_000);
    t.same(s.keys, [], `${id}'s fresh kernel holds no share`);
    t.match(s.transportPublicKey, /^[0-9a-f]{64}$/, `${id}: kernel status shows the fresh kernel's transport key`);
    t.not(s.transportPublicKey, oldTransport.get(id), `${id}: a new transport key, not the lost kernel's`);
    fresh.set(id, s);
  }
  const text = await admin('audra', 'n2', ['kernel', 'status']);
  t.equal(text.code, 0, text.stderr);
  t.match(text.stdout, new RegExp(`transport public key ${fresh.get('n2')!.transportPublicKey}\\n  holds no key share`), 'kernel status prints the transport key and that no share is held');

  // Offline, the custodian rebuilds the identity from three guardian files and seals each share to its fresh kernel.
  const combined = await offline(['combine', '--out', join(dir, 'rebuilt.id'), guardianFiles[0]!, guardianFiles[2]!, guardianFiles[4]!]);
  t.equal(combined.code, 0, combined.stderr);
  t.match(combined.stdout, recipient, 'three guardian files rebuild the custodian\'s identity');
  const recovered = new Map<string, { identifier: string; verifyingShare: string; groupKey: string; backupCid: string; sealed: string }>();
  for (const id of lost) {
    const entry = listed.entries.find((e) => e.nodeId === id)!;
    const sealed = join(dir, `${id}-k-0.sealed`);
    const r = await offline(['recover-share', '--identity-file', join(dir, 'rebuilt.id'), '--backup', join(dir, `${id}.backup-copy`), '--cid', entry.fileCid, '--to-kernel', fresh.get(id)!.transportPublicKey, '--out', sealed]);
    t.equal(r.code, 0, r.stderr);
    const printed = JSON.parse(r.stdout.trim().split('\n').find((l) => l.startsWith('{'))!) as { identifier: string; verifyingShare: string; groupKey: string; backupCid: string };
    t.equal(printed.identifier, entry.identifier, `${id}: the backup is of its identifier`);
    t.equal(printed.groupKey, groupKey, `${id}: the backup is under the ledger's group key`);
    recovered.set(id, { ...printed, sealed });
  }
  const importCli = (as: string, id: string, file: string, key = 'k') => admin(as, id, ['share', 'import', '--key-id', key, '--key-epoch', '0', '--sealed', file]);

  // Refusals before the decision, and by a role that may not import.
  const early = await importCli('kim', 'n2', recovered.get('n2')!.sealed);
  t.equal(early.code, 3, 'an import before any RecoveryAuthorized is refused');
  t.match(early.stderr, /^RECOVERY_NOT_AUTHORIZED: /);
  const auditor = await importCli('audra', 'n2', recovered.get('n2')!.sealed);
  t.equal(auditor.code, 3);
  t.match(auditor.stderr, /^ROLE_NOT_ALLOWED: /, 'an auditor may not import a share');
  const otherKey = await importCli('kim', 'n2', recovered.get('n2')!.sealed, 'k-other');
  t.equal(otherKey.code, 3);
  t.match(otherKey.stderr, /^BINDING_MISMATCH: .*holds a share of k epoch 0, not k-other epoch 0/, 'a file of another key than the one named is refused before it is sent');

  const fromEnv = await runCli(['admin', 'share', 'import', '--key-epoch', '0', '--sealed', recovered.get('n2')!.sealed, '--node', cluster.node('n2').admin, '--node-id', 'n2', '--certs', cluster.certs, '--as', 'kim'], { CUSTODY_ADMIN_KEY_ID: 'k' });
  t.equal(fromEnv.code, 3);
  t.match(fromEnv.stderr, /^INVALID_ARGUMENT: CUSTODY_ADMIN_KEY_ID is set/, 'the key is named on the command line only, never from the environment');

  // Approvers decide RecoveryAuthorized for n2, naming what recover-share printed; n3 is repaired below.
  for (const id of ['n2']) {
    const r = recovered.get(id)!;
    const d = await client('approver-1', 'n1').proposeDecision(JSON.stringify({ kind: 'RecoveryAuthorized', nodeId: id, keyId: 'k', keyEpoch: 0, identifier: r.identifier, backupCid: r.backupCid, groupKey: r.groupKey, verifyingShare: r.verifyingShare }));
    await approve(d.cid, ['approver-1', 'approver-2']);
    await until(`the RecoveryAuthorized of ${id} applied`, async () => ((await client('audra', 'n1').getDecision(d.cid)).state === 'applied' ? true : null), 120_000);
  }
  // n3's file on n2: n2's kernel holds a grant for its own identifier only.
  const swapped = await importCli('kim', 'n2', recovered.get('n3')!.sealed);
  t.equal(swapped.code, 3);
  t.match(swapped.stderr, /^RECOVERY_NOT_AUTHORIZED: /, 'n3\'s sealed share is refused by n2\'s kernel');

  for (const id of ['n2']) {
    // The node forwards the decision to its kernel when its own replica applies it: until then the
    // kernel answers RECOVERY_NOT_AUTHORIZED, and nothing is imported.
    const done = await until(`${id} imports its share`, async () => {
      const r = await importCli('kim', id, recovered.get(id)!.sealed);
      if (r.code === 0) return r;
      if (!/^RECOVERY_NOT_AUTHORIZED: /.test(r.stderr)) return r;
      return null;
    }, 120_000);
    t.equal(done.code, 0, `${id}: custody admin share import succeeds ${done.stderr}`);
    t.match(done.stdout, new RegExp(`imported: key k epoch 0, identifier ${recovered.get(id)!.identifier}, group key ${groupKey}`));
    t.match(done.stdout, /\nrecorded: ShareRecovered at ledger index \d+\n/, `${id}: the node records the recovery in the ledger`);
    const s = await kernelStatus(id);
    t.same(s.keys.map((k) => [k.keyId, k.keyEpoch, k.identifier]), [['k', 0, recovered.get(id)!.identifier]], `${id}'s kernel holds its recovered share`);
    // The same file again imports nothing: the kernel holds the share, and the node only points at
    // the record of the earlier import (or makes it, had the first report been lost).
    const again = await importCli('kim', id, recovered.get(id)!.sealed);
    t.equal(again.code, 0, `${id}: the same import again exits 0 ${again.stderr}`);
    t.match(again.stdout, /^already imported: .*nothing imported now\n/, `${id}: and says nothing was imported now`);
    t.equal(/recorded: ShareRecovered at ledger index (\d+)/.exec(again.stdout)?.[1], /recorded: ShareRecovered at ledger index (\d+)/.exec(done.stdout)?.[1], `${id}: it names the record of the first import`);
    t.same((await kernelStatus(id)).keys.map((k) => [k.keyId, k.keyEpoch, k.identifier]), [['k', 0, recovered.get(id)!.identifier]], `${id}'s kernel still holds one share`);
  }

  // n3 has no backup at hand: n1 and the recovered n2 rebuild its share under a RepairAuthorized.
  const repair = await admin('approver-1', 'n1', ['share', 'repair', '--key-id', 'k', '--key-epoch', '0', '--target', 'n3', '--helpers', 'n1,n2', '--json']);
  t.equal(repair.code, 0, repair.stderr);
  const repairCid = (JSON.parse(repair.stdout) as { cid: string }).cid;
  await approve(repairCid, ['approver-1', 'approver-2']);
  const n3Repaired = await until('n3\'s kernel holds its repaired share', async () => {
    try {
      const s = await kernelStatus('n3');
      return s.keys.length > 0 ? s : null;
    } catch {
      return null;
    }
  }, 180_000);
  t.same(n3Repaired.keys.map((k) => [k.keyId, k.keyEpoch, k.identifier]), [['k', 0, recovered.get('n3')!.identifier]], 'n3\'s kernel holds its share, rebuilt by n1 and n2 under its own identifier');

  // Only n2 (recovered from its backup) and n3 (repaired) can sign: n1's kernel is stopped.
  const n1 = cluster.node('n1');
  n1.kernel?.proc.kill('SIGKILL');
  await n1.kernel?.exited;
  const after = await sign('after-recovery', 'n2');
  t.equal(after.state, 'Published', `the recovered and the repaired kernel sign${after.reason ? ` (ended ${after.reason})` : ''}`);
  t.same(after.signingSet.map((m) => m.nodeId).sort(), ['n2', 'n3'], 'signed by n2 (recovered) and n3 (repaired)');
  // Independently of the product's own checks: the signature over the act's message under OpenSSL.
  const st = await client('audra', 'n1').status();
  const messages = parseTransaction(after.kind as TxKind, new Uint8Array(after.tx), keyContextOfView(st.keys.find((x) => x.id === 'k')!), assetTableOf(st.assets)).messages;
  const openssl = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(groupKey, 'hex').toString('base64url') }, format: 'jwk' });
  t.equal(after.signatures.length, messages.length, 'one signature per message');
  messages.forEach((m, i) => t.ok(nodeVerify(null, m, openssl, Buffer.from(after.signatures[i]!, 'hex')), `signature ${i} verifies under OpenSSL (node:crypto) with the group key made before the disaster`));
  await verified('after-recovery');
  for (const id of ids) {
    const k = (await client('audra', id).status()).keys.find((x) => x.id === 'k')!;
    t.equal(k.publicKey, groupKey, `${id}: the group key is the one made before the disaster`);
  }

  // Every replica records the recovery and the repair beside their decisions; backup list shows them.
  const recoveredLists = await until('every replica records the recovery and the repair', async () => {
    const ls = await Promise.all(ids.map((id) => client('audra', id).listBackups()));
    return ls.every((l) => l.entries.some((e) => e.nodeId === 'n2' && e.recoveredIndex > 0) && l.entries.some((e) => e.nodeId === 'n3' && e.repairedIndex > 0)) ? ls : null;
  }, 120_000);
  for (const l of recoveredLists) t.same(l, recoveredLists[0], 'every replica lists the same records');
  for (const e of recoveredLists[0]!.entries) {
    if (e.nodeId === 'n2') t.match(e, { recoveredIndex: Number, recoveryDecisionCid: /^[0-9a-f]{64}$/, repairedIndex: 0 }, 'n2: ShareRecovered under its RecoveryAuthorized');
    else if (e.nodeId === 'n3') t.match(e, { recoveredIndex: 0, repairedIndex: Number, repairDecisionCid: repairCid }, 'n3: ShareRepaired under its RepairAuthorized');
    else t.same([e.recoveredIndex, e.recoveryDecisionCid, e.repairedIndex], [0, '', 0], `${e.nodeId}: never recovered or repaired`);
  }
  const shown = await admin('audra', 'n3', ['backup', 'list']);
  t.equal(shown.code, 0, shown.stderr);
  t.match(shown.stdout, /key k epoch 0 n2: backed up.*\n    recovered from its backup at \d{4}-.* \(index \d+\) under RecoveryAuthorized [0-9a-f]{64}/, 'backup list shows n2 recovered');
  t.match(shown.stdout, /key k epoch 0 n3: backed up.*\n    repaired by its peers at \d{4}-.* \(index \d+\) under RepairAuthorized [0-9a-f]{64}/, 'backup list shows n3 repaired');

  // The recovered kernels take part in a refresh: their nodes published their fresh kernels'
  // transport keys, so the new epoch's packages are sealed to the kernels they have now.
  await cluster.startKernel('n1');
  await until('n1\'s daemon reaches its kernel again', async () => {
    try {
      return (await kernelStatus('n1')).keys.length === 1 ? true : null;
    } catch {
      return null;
    }
  }, 120_000);
  const refresh = await client('kim', 'n1').proposeDecision(JSON.stringify({ kind: 'KeyRefreshed', keyId: 'k', keyEpoch: 1 }));
  await approve(refresh.cid, ['approver-1', 'approver-2']);
  await until('epoch 1 published', async () => (await client('audra', 'n1').status()).keys.find((k) => k.id === 'k')?.epochs.includes('1:published'), 240_000);
  const a1 = await client('kim', 'n1').proposeDecision(JSON.stringify({ kind: 'KeyActivated', keyId: 'k', keyEpoch: 1 }));
  await approve(a1.cid, ['approver-2', 'approver-3']);
  await until('epoch 1 active on every node', async () => (await Promise.all(ids.map(async (id) => (await client('audra', id).status()).keys.find((k) => k.id === 'k')?.activeEpoch === 1))).every(Boolean) || null, 120_000);
  const refreshed = await sign('after-refresh', 'n3');
  t.equal(refreshed.state, 'Published', `the key signs at the refreshed epoch${refreshed.reason ? ` (ended ${refreshed.reason})` : ''}`);
  t.equal(refreshed.keyEpoch, 1, 'at epoch 1');
  await verified('after-refresh');
  t.equal((await client('audra', 'n2').status()).keys.find((k) => k.id === 'k')!.publicKey, groupKey, 'under the same group key');
});
