/**
 * Share repair across three `custody node` daemons, each with its own kernel process, with no
 * backup: a 2-of-3 key signs; the kernel of n3 loses its store (killed, store deleted, a fresh
 * kernel started under the running daemon). Approvers decide RepairAuthorized, proposed with
 * `custody admin share repair` (which reads n3's identifier and the group key from the ledger),
 * naming n1 and n2 as helpers; the daemons carry the repair's
 * sealed deltas and sums through the peer exchange, n3's kernel checks the rebuilt share against
 * its verifying share and keeps it, and n3 records ShareRepaired, which `custody admin backup list`
 * shows on every node. With n1's kernel down, n2 and the
 * repaired n3 sign an act: its evidence verifies and the group key is the one made before the loss.
 * A decision naming too few helpers is refused by the ledger (REPAIR_HELPERS_INVALID).
 * Then a replacement host: n4 (a spare daemon and kernel) joins by NodeAdded, is enrolled in the key
 * epoch by repair under a new identifier (helpers n2 and n3), and, with the kernels of n2 and n3
 * stopped, signs with n1 an act whose evidence verifies under the same group key.
 */
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decisionBodyFromCbor, decisionSigningBytes, ed25519Sign } from '../../ledger/decision.js';
import { decode } from '../../ledger/encoding.js';
import { frostIdentifier } from '../../ledger/signing-set.js';
import type { ActView, AdminClient } from '../../node/admin/client.js';
import { issueOperatorCert } from '../../node/admin/roles.js';
import { DaemonCluster } from '../../node/lifecycle/daemon-cluster.js';
import type { KernelStatusView } from '../../node/lifecycle/share-import.js';
import { until } from '../../node/probe.js';
import { CLI, OPERATORS, POLICY, actTx, labelled, runCli, type LabelledClient } from './harness.js';

t.test('n3\'s kernel loses its store; n1 and n2 repair its share under a decision and it signs under the same group key', { timeout: 900_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-share-repair-'));
  const cluster = await DaemonCluster.create(dir, POLICY, 3, 3_000, { spares: 1 });
  const ids = cluster.members.map((n) => n.id);
  for (const [id, role] of Object.entries(OPERATORS)) issueOperatorCert(cluster.certs, id, role);
  const clients: AdminClient[] = [];
  t.teardown(async () => {
    for (const c of clients) c.close();
    await cluster.stop();
    if (!t.passing()) for (const id of [...ids, 'n4'].filter((x) => existsSync(join(dir, `${x}.log`)))) t.comment(`--- ${id}.log (last lines)\n${readFileSync(join(dir, `${id}.log`), 'utf8').split('\n').slice(-40).join('\n')}`);
    rmSync(dir, { recursive: true, force: true });
  });
  const client = (as: string, id: string): LabelledClient => {
    const c = cluster.client(id, as);
    clients.push(c);
    return labelled(c, cluster.custodians[0]!);
  };
  const admin = (as: string, id: string, args: string[]) => runCli(['admin', ...args, '--node', cluster.node(id).admin, '--node-id', id, '--certs', cluster.certs, '--as', as]);
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
  const decided = async (args: string[]): Promise<string> => {
    const p = await admin('approver-1', 'n1', [...args, '--json']);
    if (p.code !== 0) throw new Error(`propose: ${p.stderr}`);
    const cid = (JSON.parse(p.stdout) as { cid: string }).cid;
    try {
      await approve(cid, ['approver-1', 'approver-2']);
    } catch (e) {
      // At quorum the node submits the decision and answers with the ledger's refusal.
      return `refused ${(e as Error).message}`;
    }
    return until(`decision ${cid} has a verdict`, async () => {
      const d = await client('audra', 'n1').getDecision(cid);
      return d.state === 'applied' || d.state === 'refused' ? d : null;
    }, 120_000).then((d) => `${d.state}${d.state === 'refused' ? ` ${d.verdict?.reason ?? ''}: ${d.verdict?.detail ?? ''}` : ''}`);
  };

  await cluster.start('audra', CLI, 120_000);
  const dk = await client('kim', 'n1').proposeDecision(JSON.stringify({ kind: 'DkgAuthorized', keyId: 'k', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ids }));
  await approve(dk.cid, ['approver-1', 'approver-2']);
  await until('key k published', async () => (await client('audra', 'n1').status()).keys.find((k) => k.id === 'k')?.epochs.includes('0:published'), 180_000);
  const activated = await client('kim', 'n1').proposeDecision(JSON.stringify({ kind: 'KeyActivated', keyId: 'k', keyEpoch: 0 }));
  await approve(activated.cid, ['approver-2', 'approver-3']);
  await until('key k active', async () => (await client('audra', 'n1').status()).keys.find((k) => k.id === 'k')?.status === 'active', 120_000);
  const groupKey = (await client('audra', 'n1').status()).keys.find((k) => k.id === 'k')!.publicKey;
  const before = await sign('before-loss', 'n2');
  t.equal(before.state, 'Published', 'the key signs before the loss');

  // The loss: n3's kernel store is deleted; its daemon keeps running.
  const n3Before = await kernelStatus('n3');
  const identifier = n3Before.keys.find((k) => k.keyId === 'k')!.identifier;
  const n3 = cluster.node('n3');
  n3.kernel?.proc.kill('SIGKILL');
  await n3.kernel?.exited;
  rmSync(join(dir, 'n3-kernel', 'store'), { recursive: true, force: true });
  await cluster.startKernel('n3');
  const fresh = await until('n3\'s daemon reaches its fresh kernel', async () => {
    try {
      return await kernelStatus('n3');
    } catch {
      return null;
    }
  }, 120_000);
  t.same(fresh.keys, [], 'n3\'s fresh kernel holds no share');

  const refused = await decided(['decision', 'propose', '--action-json', JSON.stringify({ kind: 'RepairAuthorized', nodeId: 'n3', keyId: 'k', keyEpoch: 0, identifier, helpers: ['n1'], groupKey })]);
  t.match(refused, /^refused .*REPAIR_HELPERS_INVALID/, 'a decision naming one helper for a 2-of-3 key is refused by the ledger');

  const verdict = await decided(['share', 'repair', '--key-id', 'k', '--key-epoch', '0', '--target', 'n3', '--helpers', 'n1,n2']);
  t.equal(verdict, 'applied', 'RepairAuthorized naming n1 and n2, proposed with custody admin share repair, is applied');
  const repaired = await until('n3\'s kernel holds its repaired share', async () => {
    const s = await kernelStatus('n3');
    return s.keys.length > 0 ? s : null;
  }, 120_000);
  t.same(repaired.keys.map((k) => [k.keyId, k.keyEpoch, k.identifier]), [['k', 0, identifier]], 'n3 holds its share of k epoch 0 under its own identifier');
  t.ok(repaired.keys[0]!.consumedCounter >= n3Before.keys[0]!.consumedCounter, 'its nonces start at or above the counter the ledger records consumed');
  const lists = await until('every replica records n3\'s ShareRepaired', async () => {
    const ls = await Promise.all(ids.map((id) => client('audra', id).listBackups()));
    return ls.every((l) => l.entries.some((e) => e.nodeId === 'n3' && e.repairedIndex > 0)) ? ls : null;
  }, 120_000);
  for (const l of lists) t.same(l, lists[0], 'every replica lists the same records');
  t.match(lists[0]!.entries.find((e) => e.nodeId === 'n3'), { repairedIndex: Number, repairDecisionCid: /^[0-9a-f]{64}$/ }, 'n3: ShareRepaired under its RepairAuthorized');
  const shown = await admin('audra', 'n2', ['backup', 'list']);
  t.match(shown.stdout, /key k epoch 0 n3: MISSING\n {4}repaired by its peers at \d{4}-.* \(index \d+\) under RepairAuthorized [0-9a-f]{64}/, 'custody admin backup list prints the repair');

  // Only n2 and the repaired n3 can sign: n1's kernel is stopped.
  const n1 = cluster.node('n1');
  n1.kernel?.proc.kill('SIGKILL');
  await n1.kernel?.exited;
  const after = await sign('after-repair', 'n2');
  t.equal(after.state, 'Published', `n2 and the repaired n3 sign${after.reason ? ` (ended ${after.reason})` : ''}`);
  t.same(after.signingSet.map((m) => m.nodeId).sort(), ['n2', 'n3'], 'signed by n2 and n3');
  await verified('after-repair');
  for (const id of ids) t.equal((await client('audra', id).status()).keys.find((x) => x.id === 'k')!.publicKey, groupKey, `${id}: the group key is the one made before the loss`);

  // A replacement host: n4 joins by decision and is enrolled in the key epoch by repair.
  await cluster.startKernel('n1');
  await cluster.startKernel('n4');
  cluster.startDaemon('n4', CLI);
  const added = await decided(['member', 'add', '--id', 'n4', '--identity-key', Buffer.from(cluster.identityKeys.get('n4')!).toString('hex')]);
  t.equal(added, 'applied', 'NodeAdded n4 is applied');
  await until('n4 serves the ledger with key k', async () => {
    try {
      return (await client('audra', 'n4').status()).keys.some((x) => x.id === 'k') ? true : null;
    } catch {
      return null;
    }
  }, 180_000);
  const enrolled = await decided(['share', 'repair', '--key-id', 'k', '--key-epoch', '0', '--target', 'n4', '--helpers', 'n2,n3']);
  t.equal(enrolled, 'applied', 'RepairAuthorized enrolling n4, proposed with custody admin share repair, is applied');
  const n4Status = await until('n4\'s kernel holds its enrolled share', async () => {
    try {
      const s = await kernelStatus('n4');
      return s.keys.length > 0 ? s : null;
    } catch {
      return null;
    }
  }, 180_000);
  const enrolledId = n4Status.keys[0]!.identifier;
  t.equal(enrolledId, frostIdentifier('ed25519', 4), 'n4 holds a share under the first identifier past the participants');
  const listed = await until('every replica records n4\'s ShareRepaired', async () => {
    const ls = await Promise.all([...ids, 'n4'].map((id) => client('audra', id).listBackups()));
    return ls.every((l) => l.entries.some((e) => e.nodeId === 'n4' && e.enrolled === true && e.repairedIndex > 0)) ? ls : null;
  }, 120_000);
  t.match(listed[0]!.entries.find((e) => e.nodeId === 'n4'), { identifier: enrolledId, enrolled: true }, 'backup list shows n4 enrolled under its identifier');
  t.equal(listed[0]!.missing, 3, 'with no BackupPolicy the three participants count as missing, the enrolled holder does not');

  // n2's and n3's kernels stop: only n1 and the enrolled n4 can sign.
  for (const id of ['n2', 'n3']) {
    cluster.node(id).kernel?.proc.kill('SIGKILL');
    await cluster.node(id).kernel?.exited;
  }
  const replaced = await sign('after-enrolment', 'n1');
  t.equal(replaced.state, 'Published', `n1 and the enrolled n4 sign${replaced.reason ? ` (ended ${replaced.reason})` : ''}`);
  t.same(replaced.signingSet.map((m) => m.nodeId), ['n1', 'n4'], 'signed by n1 and n4, in identifier order');
  await verified('after-enrolment');
  t.equal((await client('audra', 'n4').status()).keys.find((x) => x.id === 'k')!.publicKey, groupKey, 'n4: the group key is unchanged');
});
