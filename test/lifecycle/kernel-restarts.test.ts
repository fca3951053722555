/**
 * Keys keep signing across restarts, with real daemons and kernel processes:
 *
 *   1. a key made and used before a stop of all three nodes (daemons and kernels) signs again
 *      after they start: the daemons lost the exchange (it lives in memory), and each
 *      participant puts its kernel's public key package back, checked against the ledger;
 *   2. a kernel killed with SIGKILL and started again is reconnected by its daemon, which never
 *      restarts: /status and custody_kernel_disconnected show the link down, then up, and
 *      custody_kernel_reconnects_total counts it; the act signed next needs that kernel (another
 *      kernel is down at the time, so the only signing set is the restarted kernel's and one more);
 *   3. an act submitted while too few kernels are up to sign ends Aborted with REMOTE_TIMEOUT,
 *      not stuck; once the kernels are back the same key signs again.
 * Every Published act's evidence bundle verifies with `custody evidence verify`.
 */
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { decisionBodyFromCbor, decisionSigningBytes, ed25519Sign } from '../../ledger/decision.js';
import { decode } from '../../ledger/encoding.js';
import type { ActView, AdminClient } from '../../node/admin/client.js';
import { issueOperatorCert } from '../../node/admin/roles.js';
import { DaemonCluster } from '../../node/lifecycle/daemon-cluster.js';
import type { KernelLinkStatus } from '../../node/lifecycle/kernel-link.js';
import { until } from '../../node/probe.js';
import { CLI, OPERATORS, POLICY, runCli as cli, actTx, labelled, type LabelledClient } from './harness.js';


t.test('keys sign after a full restart; a killed kernel is reconnected without restarting its node', { timeout: 900_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-kernel-restarts-'));
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
  const http = (id: string): string => (parse(readFileSync(join(dir, `${id}.yaml`), 'utf8')) as { http: string }).http;
  const kernelStatus = async (id: string): Promise<KernelLinkStatus> => ((await (await fetch(`http://${http(id)}/status`)).json()) as { kernel: KernelLinkStatus }).kernel;
  const metric = async (id: string, name: string): Promise<number> => {
    const text = await (await fetch(`http://${http(id)}/metrics`)).text();
    const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
    return m === null ? Number.NaN : Number(m[1]);
  };
  const approve = async (cid: string, who: string[]): Promise<void> => {
    for (const a of who) {
      const c = client(a, 'n1');
      const d = await c.getDecision(cid);
      await c.approveDecision(cid, a, ed25519Sign(decisionSigningBytes(decisionBodyFromCbor(decode(new Uint8Array(d.bodyCbor)))), cluster.approvers.find((k) => k.id === a)!.secretKey));
    }
  };
  /** Submits an act through node `via` and watches it there (that node has applied the submission) until it ends or is Published. */
  const sign = async (op: string, via: string): Promise<ActView> => {
    await client('cara', via).submitAct({ opId: op, keyId: 'k', ...(await actTx(client('cara', via), 'k', '100', 'sol-treasury')) });
    return client('cara', via).watch(op, () => undefined, (v) => ['Published', 'Settled', 'Denied', 'Aborted'].includes(v.state), 180_000);
  };
  const verified = async (op: string): Promise<void> => {
    const f = join(dir, `${op}.json`);
    writeFileSync(f, (await client('audra', 'n3').exportEvidence(op)).bundleJson);
    const v = await cli(['evidence', 'verify', f]);
    t.equal(v.code, 0, `${op}: custody evidence verify accepts its bundle ${v.stdout.trim().split('\n')[0] ?? ''} ${v.stderr.trim()}`);
  };
  const t0 = Date.now();

  await cluster.start('audra', CLI, 120_000);
  const dk = await client('kim', 'n1').proposeDecision(JSON.stringify({ kind: 'DkgAuthorized', keyId: 'k', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ids }));
  await approve(dk.cid, ['approver-1', 'approver-2']);
  await until('key k published', async () => (await client('audra', 'n1').status()).keys.find((k) => k.id === 'k')?.epochs.includes('0:published'), 120_000);
  const act = await client('kim', 'n1').proposeDecision(JSON.stringify({ kind: 'KeyActivated', keyId: 'k', keyEpoch: 0 }));
  await approve(act.cid, ['approver-2', 'approver-3']);
  t.equal((await sign('before-restart', 'n2')).state, 'Published', 'the key signs before any restart');
  await verified('before-restart');
  for (const id of ids) t.same([(await kernelStatus(id)).connected, (await kernelStatus(id)).reconnects], [true, 0], `${id}: /status shows its kernel connected, never reconnected`);
  t.comment(`key made and used after ${Date.now() - t0} ms`);

  // 1. Every daemon and every kernel stopped, then started again.
  await cluster.stop();
  await cluster.start('audra', CLI, 120_000);
  // Ready to sign once every node's kernel link is up again, as the runbook's readiness check reads
  // it from /status: an act submitted before then aborts with REMOTE_TIMEOUT rather than waiting.
  for (const id of ids) await until(`${id}'s kernel connected after the restart`, async () => (await kernelStatus(id)).connected || null, 120_000);
  const afterRestart = await sign('after-full-restart', 'n3');
  t.equal(afterRestart.state, 'Published', `the key made before a stop of all nodes signs after they start${afterRestart.reason ? ` (ended ${afterRestart.reason})` : ''}`);
  await verified('after-full-restart');
  t.comment(`full restart and signature after ${Date.now() - t0} ms`);

  // 2. kill -9 of n1's kernel: its daemon keeps running and reconnects once the kernel is back.
  const n1 = cluster.node('n1');
  const daemonPid = n1.daemon?.pid;
  n1.kernel?.proc.kill('SIGKILL');
  await n1.kernel?.exited;
  const down = await until('n1 sees its kernel gone', async () => {
    const k = await kernelStatus('n1');
    return k.connected ? null : k;
  }, 60_000);
  t.ok(down.lastError !== null, `n1's /status shows the kernel disconnected: ${down.lastError}`);
  t.equal(await metric('n1', 'custody_kernel_disconnected'), 1, 'custody_kernel_disconnected is 1 on n1');
  await cluster.startKernel('n1');
  const up = await until('n1 reconnects to its restarted kernel', async () => {
    const k = await kernelStatus('n1');
    return k.connected ? k : null;
  }, 60_000);
  t.equal(up.reconnects, 1, 'n1 reconnected once');
  t.equal(await metric('n1', 'custody_kernel_disconnected'), 0, 'custody_kernel_disconnected is 0 again');
  t.equal(await metric('n1', 'custody_kernel_reconnects_total'), 1, 'custody_kernel_reconnects_total counts the reconnection');
  t.equal(cluster.node('n1').daemon?.pid, daemonPid, 'the daemon of n1 was not restarted');
  t.equal(cluster.node('n1').daemon?.exitCode, null, 'and is still running');
  // With n2's kernel down, the only signing set is n1 and n3: n1's restarted kernel must sign.
  const n2 = cluster.node('n2');
  n2.kernel?.proc.kill('SIGKILL');
  await n2.kernel?.exited;
  await until('n2 sees its kernel gone', async () => ((await kernelStatus('n2')).connected ? null : true), 60_000);
  const viaRestarted = await sign('after-kernel-restart', 'n1');
  t.equal(viaRestarted.state, 'Published', 'an act is signed with the kernel that restarted under a running node');
  await verified('after-kernel-restart');
  t.same(viaRestarted.signingSet.map((m) => m.nodeId).sort(), ['n1', 'n3'], 'signed by n1 (its kernel restarted) and n3');

  // 3. Two kernels down: an act cannot gather two signers and ends, with a reason code.
  const n3 = cluster.node('n3');
  n3.kernel?.proc.kill('SIGKILL');
  await n3.kernel?.exited;
  await until('n3 sees its kernel gone', async () => ((await kernelStatus('n3')).connected ? null : true), 60_000);
  const stuck = await sign('two-kernels-down', 'n2');
  t.same([stuck.state, stuck.reason], ['Aborted', 'REMOTE_TIMEOUT'], `an act while two of three kernels are down ends Aborted REMOTE_TIMEOUT (${stuck.state} ${stuck.reason ?? ''})`);
  await cluster.startKernel('n2');
  await cluster.startKernel('n3');
  for (const id of ['n2', 'n3']) await until(`${id} reconnects`, async () => ((await kernelStatus(id)).connected ? true : null), 60_000);
  t.equal((await sign('kernels-back', 'n3')).state, 'Published', 'with the kernels back, the key signs again, no node restarted');
  await verified('kernels-back');
  t.comment(`done after ${Date.now() - t0} ms`);
});
