/**
 * Issue 7, acceptance 2 with real daemons: three `custody node` daemons with their kernels (the
 * ledger as the state machine, each daemon running its split-brain monitor, node-guard.ts), and a
 * real Prometheus (Debian `prometheus`) evaluating the shipped alerts.yml. Two faults are injected:
 *
 *  (a) a node restored from an old copy of its data: its data directory is copied while it is
 *      stopped, the cluster moves on to later terms with it, and then the old copy is put back.
 *      Its peers witnessed it in a later term, so at start it learns its store went backwards,
 *      withholds its vote and raises custody_split_brain_active{kind="rollback"}:
 *      CustodySplitBrain fires for that node.
 *  (b) a forged conflicting signed vote: whoever holds n3's identity key signs two votes for two
 *      candidates in one term and hands them to n1 over an mTLS peer stream as n3. n1's monitor
 *      relays both, proves the equivocation, and proposes EquivocationEvidence; the ledger checks
 *      both signatures and flags n3: CustodyEquivocation fires for offender n3.
 *
 * Then an approver fences n3's passport through the admin API (a NodeFenced decision signed with
 * its approver key; an unsigned call is refused FENCE_UNSIGNED), and the ledger refuses it
 * (SPLIT_BRAIN_FENCED) when n3 proposes under it. Before the faults, a leader change and a restart
 * raise no split-brain alert (acceptance 3). Waits assert states with generous deadlines.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { parse } from 'yaml';
import { fromHex } from '../../ledger/encoding.js';
import { isCustodyError } from '../../proto/errors.js';
import { issueOperatorCert } from '../../node/admin/roles.js';
import { DaemonCluster } from '../../node/lifecycle/daemon-cluster.js';
import { signVote } from '../../node/splitbrain/equivocation.js';
import { encodeExchange } from '../../node/splitbrain/exchange.js';
import { channelCredentials, identityOptions, loadTls } from '../../node/tls.js';
import { clientConstructor, type WireBatch } from '../../node/wire.js';
import { OPERATORS, POLICY } from '../lifecycle/harness.js';
import { until } from './procs.js';
import { startPrometheus } from './prometheus.js';

const IDS = ['n1', 'n2', 'n3'] as const;

/** One exchange frame on a peer stream to `address`, authenticated with `tls` (the sender's certificate). */
function sendExchangeFrame(address: string, serverId: string, tls: ReturnType<typeof loadTls>, from: string, exchange: Uint8Array): Promise<void> {
  const Ctor = clientConstructor('RaftPeer');
  const client = new Ctor(address, channelCredentials(tls), identityOptions(serverId));
  return new Promise((resolve, reject) => {
    const stream = (client as unknown as { Stream(cb: (e: grpc.ServiceError | null) => void): grpc.ClientWritableStream<WireBatch> }).Stream((e) => {
      client.close();
      if (e) reject(new Error(`peer stream refused: ${e.code} ${e.details}`));
      else resolve();
    });
    stream.write({ from, messages: [], exchange: Buffer.from(exchange) } satisfies WireBatch);
    stream.end();
  });
}

t.test('real daemons under a real Prometheus: a restored node and a forged double vote fire CustodySplitBrain and CustodyEquivocation; the evidence is in the ledger; the fenced passport is refused', { timeout: 900_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-e2e-daemons-'));
  const cluster = await DaemonCluster.create(dir, POLICY);
  for (const [id, role] of Object.entries(OPERATORS)) issueOperatorCert(cluster.certs, id, role);
  let prom: Awaited<ReturnType<typeof startPrometheus>> | null = null;
  t.teardown(async () => {
    prom?.stop();
    await cluster.stop();
    if (!t.passing()) for (const id of IDS) t.comment(`--- ${id}.log (last lines)\n${readFileSync(join(dir, `${id}.log`), 'utf8').split('\n').slice(-40).join('\n')}`);
    rmSync(dir, { recursive: true, force: true });
  });
  await cluster.start('audra');
  const cfg = (id: string): { http: string; listen: string } => parse(readFileSync(join(dir, `${id}.yaml`), 'utf8')) as { http: string; listen: string };
  const status = async (id: string) => {
    const c = cluster.client(id, 'audra');
    try {
      return await c.status();
    } finally {
      c.close();
    }
  };

  prom = await startPrometheus(join(dir, 'prometheus'), 'e2e', IDS.map((id) => ({ node: id, http: cfg(id).http })));
  const p = prom;
  const healthy = await until('three nodes scraped, one leader, every rollback gate open', 120_000, async () => {
    const up = await p.scalar('sum(up{cluster="e2e"})');
    const leaders = await p.scalar('sum(custody_raft_is_leader{cluster="e2e"})');
    const withheld = await p.scalar('sum(custody_rollback_vote_withheld{cluster="e2e"})');
    return up === 3 && leaders === 1 && withheld === 0 ? { up, leaders, withheld } : null;
  });
  t.same(healthy, { up: 3, leaders: 1, withheld: 0 }, 'a healthy cluster: three targets, one leader, every node voting');

  // The victim of (a): a follower other than n3 (n3 is the equivocator of (b)).
  const leader0 = (await until('a leader', 60_000, async () => (await status('n1')).leader || null));
  const victim = IDS.find((id) => id !== leader0 && id !== 'n3') as string;
  const victimData = join(dir, 'data', victim);
  await cluster.kill(victim);
  const oldCopy = join(dir, `${victim}-old-copy`);
  cpSync(victimData, oldCopy, { recursive: true });
  const termOfCopy = await until('the copy\'s term', 10_000, async () => (await status(leader0)).term);
  t.comment(`copied ${victim}'s data (stopped) at term ${termOfCopy}`);
  await cluster.startKernel(victim);
  cluster.startDaemon(victim);

  // The cluster moves on with the victim: the leader dies, another is elected in a later term,
  // and the victim speaks in it (its peers witness that). A leader change and a restart: no alarm.
  await until(`${victim} back and voting`, 120_000, async () => ((await p.scalar(`custody_rollback_vote_withheld{cluster="e2e", node="${victim}"}`)) === 0 && (await status(victim)).leader ? true : null));
  await cluster.kill(leader0);
  const movedOn = await until('a new leader in a later term, heard by the victim', 120_000, async () => {
    const s = await status(victim);
    return s.leader && s.leader !== leader0 && s.term > termOfCopy ? s.term : null;
  });
  t.ok(movedOn > termOfCopy, `the cluster moved on to term ${movedOn} with ${victim}`);
  await cluster.startKernel(leader0);
  cluster.startDaemon(leader0);
  await until('three nodes in one term again', 120_000, async () => {
    const terms = await p.scalar('count(count_values("term", custody_raft_term{cluster="e2e"}))');
    const up = await p.scalar('sum(up{cluster="e2e"})');
    return terms === 1 && up === 3 ? true : null;
  });
  await new Promise((r) => setTimeout(r, 3_000)); // every node exchanges observations once more
  t.equal(await p.scalar('count(count_over_time(ALERTS{cluster="e2e", alertname=~"CustodySplitBrain|CustodyEquivocation"}[30m]))'), null, 'no split-brain or equivocation alert through a leader kill and restart');

  // (a) Put the old copy back.
  await cluster.kill(victim);
  rmSync(victimData, { recursive: true, force: true });
  cpSync(oldCopy, victimData, { recursive: true });
  await cluster.startKernel(victim);
  cluster.startDaemon(victim);
  t.comment(`restored ${victim} from its copy of term ${termOfCopy}`);
  const rollback = await p.firing('CustodySplitBrain (rollback) firing', { alertname: 'CustodySplitBrain', kind: 'rollback', node: victim }, 180_000);
  t.same({ node: rollback.labels.node, kind: rollback.labels.kind, severity: rollback.labels.severity }, { node: victim, kind: 'rollback', severity: 'page' }, `CustodySplitBrain fires for ${victim}, kind rollback, through Prometheus's API`);
  t.match(readFileSync(join(dir, `${victim}.log`), 'utf8'), /stored state went backwards \([a-z0-9]+ saw term \d+ > stored \d+/, `${victim} says its store went backwards and which peer saw what`);
  const seenWithheld = await until(`${victim} withheld its vote`, 60_000, async () => ((await p.scalar(`max_over_time(custody_rollback_vote_withheld{cluster="e2e", node="${victim}"}[10m])`)) === 1 ? 1 : null));
  t.equal(seenWithheld, 1, `${victim} withheld its vote after the restore`);

  // (b) A forged double vote by n3, handed to n1 as n3 would.
  const s1 = await status('n1');
  const seed3 = fromHex(readFileSync(join(dir, 'n3.identity'), 'utf8').trim());
  const forgedTerm = s1.term + 1;
  const votes = [signVote(s1.clusterId, 'n3', forgedTerm, 'n1', seed3), signVote(s1.clusterId, 'n3', forgedTerm, 'n2', seed3)];
  const n3Tls = loadTls({ ca: join(cluster.certs, 'ca.crt'), cert: join(cluster.certs, 'n3.crt'), key: join(cluster.certs, 'n3.key') });
  const exchange = encodeExchange({ from: 'n3', observation: { node: 'n3', term: 0, leader: null, appliedIndex: 0, stateRoot: '' }, statements: votes, query: false });
  await sendExchangeFrame(cfg('n1').listen, 'n1', n3Tls, 'n3', exchange);
  t.comment(`handed n1 two votes signed by n3 for term ${forgedTerm}: for n1 and for n2`);
  const equivocation = await p.firing('CustodyEquivocation firing', { alertname: 'CustodyEquivocation', offender: 'n3' }, 180_000);
  t.same({ offender: equivocation.labels.offender, kind: equivocation.labels.kind, severity: equivocation.labels.severity }, { offender: 'n3', kind: 'RaftVote', severity: 'page' }, 'CustodyEquivocation fires for offender n3, kind RaftVote');
  for (const id of IDS) {
    const n3 = (await until(`${id} applied the evidence`, 60_000, async () => (await status(id)).nodes.find((n) => n.id === 'n3' && n.equivocated) ?? null));
    t.ok(n3.equivocated, `${id}'s ledger records EquivocationEvidence against n3`);
  }

  // Fence n3's passport; its proposals are then refused, and its kernel is fenced too.
  const settleVia3 = async (): Promise<unknown> => {
    const cara = cluster.client('n3', 'cara');
    try {
      return await cara.settleAct('no-such-act', 'tx-0').then(() => null, (e: unknown) => e);
    } finally {
      cara.close();
    }
  };
  const beforeFence = await settleVia3();
  t.ok(isCustodyError(beforeFence) && beforeFence.reason !== 'SPLIT_BRAIN_FENCED', `before fencing, n3's proposal is judged on its content (${String(beforeFence)})`);
  const approver = cluster.client(victim === 'n1' ? 'n2' : 'n1', 'approver-1');
  try {
    // An approver certificate alone fences nothing: the call must carry an approver's signature.
    const unsigned = await approver.fenceNode('n3', new Uint8Array(0)).then(() => null, (e: unknown) => e);
    t.ok(isCustodyError(unsigned) && unsigned.reason === 'FENCE_UNSIGNED', `an unsigned fence is refused FENCE_UNSIGNED (${String(unsigned)})`);
    const approverKey = cluster.approvers.find((a) => a.id === 'approver-3');
    if (approverKey === undefined) throw new Error('approver-3 holds the security role in this cluster');
    const v = await approver.fenceNodeAs(approverKey, { nodeId: 'n3', reason: 'equivocation: two signed votes in one term' });
    t.equal(v.state, 'applied', `n3's passport fenced by a NodeFenced decision approver-3 signed (${v.verdict?.detail ?? ''})`);
  } finally {
    approver.close();
  }
  const fenced = await until('custody_fenced_passports on every node', 60_000, async () => ((await p.scalar('min(custody_fenced_passports{cluster="e2e"})')) === 1 ? 1 : null));
  t.equal(fenced, 1, 'every node exports one fenced passport');
  const afterFence = await until('n3 applied its own fencing', 60_000, async () => {
    const e = await settleVia3();
    return isCustodyError(e) && e.reason === 'SPLIT_BRAIN_FENCED' ? e : null;
  });
  t.match(afterFence.message, /passport n3-p1 of n3 is fenced/, 'a proposal under n3\'s fenced passport is refused SPLIT_BRAIN_FENCED');
  const kernelFenced = await until('n3\'s kernel fenced', 60_000, async () => (/n3: kernel fenced by decision/.test(readFileSync(join(dir, 'n3.log'), 'utf8')) ? true : null));
  t.ok(kernelFenced, 'n3\'s kernel verified the NodeFenced decision itself and takes no part from now on');
  t.equal(p.stderr().includes('level=error'), false, `Prometheus logged no error${p.stderr() ? `:\n${p.stderr()}` : ''}`);
});
