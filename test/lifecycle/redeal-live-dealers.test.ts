/**
 * Refresh with dealers chosen from the holders whose kernels answer (ledger/dealer-set.ts), on
 * three `custody node` daemons with their own kernel processes and a 2-of-3 key.
 *
 *  1. n1's kernel is stopped; n1 stays on the roster (its daemon runs). n1 is the first holder, the
 *     one a choice by roster order would make a dealer. A refresh is decided: the ledger fixes n2
 *     and n3 as the dealers while n1's kernel is down, and they deal. n3's kernel then restarts and
 *     loses the open ceremony; its daemon reopens it. n1's kernel comes back while the other two
 *     daemons are stopped: it joins as a recipient, but its round 1 statement finds no quorum and
 *     is stated again later. The refresh completes, and an act signs at the new epoch.
 *  2. n1's kernel loses its store (deleted; a fresh kernel starts under the running daemon). It
 *     answers but holds no share, so it does not offer to deal: a second refresh is dealt by n2
 *     and n3 again and gives n1 a fresh share of the same key. With n2's kernel stopped, n1 and n3
 *     sign an act at that epoch: n1's share came back through the refresh, with no backup.
 */
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decisionBodyFromCbor, decisionSigningBytes, ed25519Sign } from '../../ledger/decision.js';
import { decode } from '../../ledger/encoding.js';
import type { ActView, AdminClient } from '../../node/admin/client.js';
import { issueOperatorCert } from '../../node/admin/roles.js';
import { DaemonCluster } from '../../node/lifecycle/daemon-cluster.js';
import { until } from '../../node/probe.js';
import { verifySignature } from '../../node/lifecycle/verify.js';
import { CLI, OPERATORS, POLICY, actTx, labelled, runCli, type LabelledClient } from './harness.js';

t.test('a refresh is dealt by the holders whose kernels answer; a holder without its share gets a fresh one', { timeout: 900_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-live-dealers-'));
  const cluster = await DaemonCluster.create(dir, POLICY, 3, 3_000);
  const ids = cluster.nodes.map((n) => n.id);
  for (const [id, role] of Object.entries(OPERATORS)) issueOperatorCert(cluster.certs, id, role);
  const clients: AdminClient[] = [];
  t.teardown(async () => {
    for (const c of clients) c.close();
    await cluster.stop();
    if (!t.passing()) for (const id of ids.filter((x) => existsSync(join(dir, `${x}.log`)))) t.comment(`--- ${id}.log (last lines)\n${readFileSync(join(dir, `${id}.log`), 'utf8').split('\n').slice(-40).join('\n')}`);
    rmSync(dir, { recursive: true, force: true });
  });
  const client = (as: string, id: string): LabelledClient => {
    const c = cluster.client(id, as);
    clients.push(c);
    return labelled(c, cluster.custodians[0]!);
  };
  const approve = async (cid: string, who: string[]): Promise<void> => {
    for (const a of who) {
      const c = client(a, 'n2');
      const d = await c.getDecision(cid);
      await c.approveDecision(cid, a, ed25519Sign(decisionSigningBytes(decisionBodyFromCbor(decode(new Uint8Array(d.bodyCbor)))), cluster.approvers.find((k) => k.id === a)!.secretKey));
    }
  };
  const keyOn = async (id: string) => (await client('audra', id).status()).keys.find((k) => k.id === 'k');
  const kernelKeys = async (id: string): Promise<[string, number][] | null> => {
    const r = await runCli(['admin', 'kernel', 'status', '--json', '--node', cluster.node(id).admin, '--node-id', id, '--certs', cluster.certs, '--as', 'audra']);
    if (r.code !== 0) return null;
    return (JSON.parse(r.stdout) as { keys: { keyId: string; keyEpoch: number }[] }).keys.map((k) => [k.keyId, k.keyEpoch]);
  };
  const stopKernel = async (id: string): Promise<void> => {
    const n = cluster.node(id);
    n.kernel?.proc.kill('SIGKILL');
    await n.kernel?.exited;
  };
  const decide = async (action: object, who = ['approver-1', 'approver-2']): Promise<void> => {
    const d = await client('kim', 'n2').proposeDecision(JSON.stringify(action));
    await approve(d.cid, who);
  };
  const activate = async (epoch: number): Promise<void> => {
    await until(`epoch ${epoch} published`, async () => (await keyOn('n2'))?.epochs.includes(`${epoch}:published`), 240_000);
    await decide({ kind: 'KeyActivated', keyId: 'k', keyEpoch: epoch }, ['approver-2', 'approver-3']);
    await until(`epoch ${epoch} active on every node`, async () => (await Promise.all(ids.map(async (id) => (await keyOn(id))?.activeEpoch === epoch))).every(Boolean) || null, 120_000);
  };
  const sign = async (op: string): Promise<ActView> => {
    const c = client('cara', 'n3');
    await c.submitAct({ opId: op, keyId: 'k', ...(await actTx(c, 'k', '10', 'sol-treasury')) });
    return c.watch(op, () => undefined, (v) => ['Published', 'Settled', 'Denied', 'Aborted'].includes(v.state), 240_000);
  };

  await cluster.start('audra', CLI, 120_000);
  await decide({ kind: 'DkgAuthorized', keyId: 'k', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ids });
  await activate(0);
  const groupKey = (await keyOn('n2'))!.publicKey;

  // 1. n1's kernel is down while the refresh is dealt.
  await stopKernel('n1');
  await decide({ kind: 'KeyRefreshed', keyId: 'k', keyEpoch: 1 });
  // Fixed once t = 2 holders said they can deal (the list shows those the ledger took so far).
  const dealersOf = async (epoch: number): Promise<string | null> => {
    const d = (await keyOn('n2'))?.dealers.find((x) => x.startsWith(`${epoch}:`));
    return d !== undefined && d.split(',').length === 2 ? d : null;
  };
  const fixed = await until('the dealers of epoch 1 fixed', () => dealersOf(1), 120_000);
  t.same(fixed.slice(2).split(',').sort(), ['n2', 'n3'], 'the dealers are n2 and n3: n1\'s kernel did not answer');
  t.same(await until('n1\'s replica shows them', async () => (await keyOn('n1'))?.dealers.find((x) => x.startsWith('1:')) === fixed || null, 60_000), true, 'n1\'s replica shows the same dealers');
  t.ok((await keyOn('n2'))!.epochs.includes('1:ceremony'), 'the ceremony waits for n1 to receive its share');
  // n3 has dealt; its kernel restarts before the ceremony can finish and forgets it (a kernel
  // keeps ceremonies in memory). n3's daemon reopens it and finishes with the dealings in the log.
  const logOf = (id: string): string => readFileSync(join(dir, `${id}.log`), 'utf8');
  await until('n3 dealt', () => logOf('n3').includes('n3: dealt the k epoch 1 ceremony') || null, 120_000);
  await stopKernel('n3');
  await cluster.startKernel('n3');
  // n1's kernel comes back while n2's and n3's daemons are stopped (SIGSTOP): it joins the
  // ceremony, but with no quorum n1's round 1 statement is not placed. It is stated again once
  // they run again.
  const signal = (sig: 'SIGSTOP' | 'SIGCONT'): void => {
    for (const id of ['n2', 'n3']) cluster.node(id).daemon?.kill(sig);
  };
  signal('SIGSTOP');
  try {
    await cluster.startKernel('n1');
    await until('n1 joined and its statement failed', () => {
      const l = logOf('n1');
      const joined = l.indexOf('n1: joined the k epoch 1 ceremony');
      return (joined >= 0 && l.indexOf('ceremony step failed', joined) > joined) || null;
    }, 180_000);
  } finally {
    signal('SIGCONT');
  }
  await activate(1);
  t.match(logOf('n3'), /n3: the kernel no longer holds the k epoch 1 ceremony .*reopening it/, 'n3 reopened the ceremony its restarted kernel had lost');
  // The ceremony completes only with every committee member's round 1 in the log, n1's included.
  for (const id of ids) t.equal((await keyOn(id))?.activeEpoch, 1, `${id}: epoch 1 is active: n1 stated its round 1 again after the failed statement and the refresh completed`);
  const a1 = await sign('after-refresh');
  t.equal(a1.state, 'Published', `an act signs at epoch 1${a1.reason ? ` (ended ${a1.reason})` : ''}`);
  t.equal(a1.keyEpoch, 1);
  t.ok(verifySignature('ed25519', Buffer.from(groupKey, 'hex'), new Uint8Array(a1.tx), Buffer.from(a1.signature, 'hex')), 'its signature verifies under the unchanged group key');
  t.same(await until('n1\'s kernel holds epoch 1', async () => {
    const k = await kernelKeys('n1');
    return k !== null && k.length === 1 && k[0]![1] === 1 ? k : null;
  }, 60_000), [['k', 1]], 'n1 received its share of epoch 1 though it did not deal');

  // 2. n1's kernel loses its store; a refresh gives it a fresh share.
  await stopKernel('n1');
  rmSync(join(dir, 'n1-kernel', 'store'), { recursive: true, force: true });
  await cluster.startKernel('n1');
  t.same(await until('n1\'s daemon reaches its fresh kernel', () => kernelKeys('n1'), 120_000), [], 'n1\'s fresh kernel holds no share');
  await decide({ kind: 'KeyRefreshed', keyId: 'k', keyEpoch: 2 });
  const fixed2 = await until('the dealers of epoch 2 fixed', () => dealersOf(2), 120_000);
  t.same(fixed2.slice(2).split(',').sort(), ['n2', 'n3'], 'n1 holds no share to deal: n2 and n3 deal');
  await activate(2);
  t.same(await kernelKeys('n1'), [['k', 2]], 'n1\'s kernel holds a share of epoch 2');
  await stopKernel('n2');
  const a2 = await sign('n1-restored');
  t.equal(a2.state, 'Published', `n1 and n3 sign at epoch 2${a2.reason ? ` (ended ${a2.reason})` : ''}`);
  t.same(a2.signingSet.map((m) => m.nodeId).sort(), ['n1', 'n3'], 'signed by n1 and n3');
  t.ok(verifySignature('ed25519', Buffer.from(groupKey, 'hex'), new Uint8Array(a2.tx), Buffer.from(a2.signature, 'hex')), 'under the same group key');
});
