/**
 * Backup and restore on real daemons: a three-node cluster (daemons and kernel processes) runs a
 * governed lifecycle (DKG, activation, an act settled, an act approved by two approvers and
 * released at the publication gate by two more, a decision left with one of its two approvals);
 * `custody admin snapshot save` copies its state; `custody cluster restore` seeds a new cluster
 * (new configs, ports and data directories; the same kernels, which follow the same governance
 * chain). The new cluster serves the same chronicle and state root, every evidence bundle of the
 * old cluster's acts exports from it byte for byte and verifies with `custody evidence verify`,
 * the pending decision's second approval applies it there, it accepts new decisions, runs the key
 * ceremony and signs new acts, with the new key and with the key made before the backup (its
 * public key package comes back from the kernels' stores), and a node of the old cluster pointed at it is refused
 * INCARNATION_MISMATCH.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { decisionBodyFromCbor, decisionSigningBytes, ed25519Sign } from '../../ledger/decision.js';
import { decode, toHex } from '../../ledger/encoding.js';
import type { ActView, AdminClient } from '../../node/admin/client.js';
import { issueOperatorCert } from '../../node/admin/roles.js';
import { fetchStatus } from '../../node/cluster.js';
import { DaemonCluster, freePort } from '../../node/lifecycle/daemon-cluster.js';
import { until } from '../../node/probe.js';
import { writeSnapshotFile } from '../../node/backup/save.js';
import { PeerClient } from '../../node/lifecycle/peer.js';
import { loadTls } from '../../node/tls.js';
import { isCustodyError } from '../../proto/errors.js';
import { CLI, OPERATORS, POLICY, runCli as cli, actTx, labelled, rid, type LabelledClient } from './harness.js';


/** What the ledger holds of an act (the notes are each node's own narration, not replicated). */
const replicated = (v: ActView) => ({ ...v, notes: [] });

t.test('snapshot save, restore into a new cluster: chronicle, evidence, new writes, the old node refused', { timeout: 600_000 }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'custody-backup-'));
  const oldDir = join(root, 'old');
  const newDir = join(root, 'new');
  mkdirSync(oldDir);
  mkdirSync(newDir);
  const old = await DaemonCluster.create(oldDir, POLICY, 3, 3_000);
  for (const [id, role] of Object.entries(OPERATORS)) issueOperatorCert(old.certs, id, role);
  const ids = old.nodes.map((n) => n.id);
  let fresh: DaemonCluster | null = null;
  const clients: AdminClient[] = [];
  const stray: { p: ReturnType<typeof spawn> | null } = { p: null };
  t.teardown(async () => {
    for (const c of clients) c.close();
    stray.p?.kill('SIGKILL');
    await fresh?.stop();
    await old.stop();
    if (!t.passing()) {
      for (const [d, id] of [...ids.map((id) => [oldDir, id]), ...ids.map((id) => [newDir, id])] as [string, string][]) {
        const f = join(d, `${id}.log`);
        if (existsSync(f)) t.comment(`--- ${f} (last lines)\n${readFileSync(f, 'utf8').split('\n').slice(-30).join('\n')}`);
      }
    }
    rmSync(root, { recursive: true, force: true });
  });
  const client = (c: DaemonCluster, as: string, id: string): LabelledClient => {
    const x = c.client(id, as);
    clients.push(x);
    return labelled(x, c.custodians[0]!);
  };
  const approve = async (c: DaemonCluster, cid: string, who: string[]): Promise<void> => {
    for (const a of who) {
      const x = client(c, a, 'n1');
      const d = await x.getDecision(cid);
      await x.approveDecision(cid, a, ed25519Sign(decisionSigningBytes(decisionBodyFromCbor(decode(new Uint8Array(d.bodyCbor)))), c.approvers.find((k) => k.id === a)!.secretKey));
    }
  };
  const authorize = (c: DaemonCluster, keyId: string) => client(c, 'kim', 'n1').proposeDecision(JSON.stringify({ kind: 'DkgAuthorized', keyId, scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ids }));
  /** After DkgAuthorized: the ceremony between the kernels, then activation by two approvers. */
  const activate = async (c: DaemonCluster, keyId: string): Promise<void> => {
    await until(`key ${keyId} published`, async () => (await client(c, 'audra', 'n1').status()).keys.find((k) => k.id === keyId)?.epochs.includes('0:published'), 120_000);
    const a = await client(c, 'kim', 'n1').proposeDecision(JSON.stringify({ kind: 'KeyActivated', keyId, keyEpoch: 0 }));
    await approve(c, a.cid, ['approver-2', 'approver-3']);
  };
  const published = (c: DaemonCluster, op: string): Promise<ActView> => client(c, 'cara', 'n2').watch(op, () => undefined, (v) => ['Published', 'Settled', 'Denied', 'Aborted'].includes(v.state), 120_000);

  // The old cluster: a governed key, an act settled, an act with approvals released at the gate.
  const t0 = Date.now();
  await old.start('audra', CLI, 120_000);
  const dk = await authorize(old, 'k');
  await approve(old, dk.cid, ['approver-1', 'approver-2']);
  await activate(old, 'k');
  await client(old, 'cara', 'n2').submitAct({ opId: 'pay-1', keyId: 'k', ...(await actTx(client(old, 'cara', 'n2'), 'k', '100', 'sol-treasury')) });
  t.equal((await published(old, 'pay-1')).state, 'Published', 'pay-1 signed by the old cluster');
  t.equal((await client(old, 'cara', 'n3').settleAct('pay-1', 'tx-pay-1')).state, 'Settled', 'pay-1 settled');
  // An act a REQUIRE_APPROVAL rule holds: two approvals before admission, which release it at the gate too.
  const big = { keyId: 'k', ...(await actTx(client(old, 'cara', 'n2'), 'k', '20000', 'sol-treasury')) };
  const held = await client(old, 'cara', 'n1').proposeDecision(JSON.stringify({ kind: 'ActApproved', opId: rid('big-1'), act: { keyId: big.keyId, kind: big.kind, tx: toHex(big.tx) } }));
  await approve(old, held.cid, ['approver-1', 'approver-2']);
  // Submitted where the approvals were applied: another node's copy of the approval book may lag.
  await client(old, 'cara', 'n1').submitAct({ opId: 'big-1', ...big, approvalCid: held.cid });
  t.equal((await published(old, 'big-1')).state, 'Published', 'big-1 approved, signed and released by the old cluster');
  const acts = ['pay-1', 'big-1'];
  // A decision left pending with one of its two approvals: it travels in the backup.
  const k2 = await authorize(old, 'k2');
  await approve(old, k2.cid, ['approver-1']);
  t.comment(`old cluster's lifecycle done after ${Date.now() - t0} ms`);

  // Backup through the admin API, from a follower or the leader alike.
  const file = join(root, 'cluster.snap');
  const conn = (c: DaemonCluster, id: string, as: string): string[] => ['--node', c.node(id).admin, '--node-id', id, '--certs', c.certs, '--as', as];
  const refused = await writeSnapshotFile(file, client(old, 'cara', 'n2').saveSnapshot()).then(() => 'saved', (e: unknown) => (isCustodyError(e) ? e.reason : String(e)));
  t.equal(refused, 'ROLE_NOT_ALLOWED', 'a custodian may not take a backup');
  t.notOk(existsSync(file) || readdirSync(root).some((f) => f.endsWith('.tmp')), 'and nothing was written, not even a temporary file');
  const saved = await cli(['admin', 'snapshot', 'save', file, ...conn(old, 'n2', 'audra'), '--json']);
  t.equal(saved.code, 0, `snapshot save exits 0 ${saved.stderr}`);
  const header = JSON.parse(saved.stdout) as { index: number; term: number; stateRoot: string; clusterId: string; sha256: string; membership: { voters: string[] } };
  t.equal(header.clusterId, old.genesis.clusterId, 'the header names the cluster');
  t.same(header.membership.voters, ids, 'and its membership');
  const oldStatus = await client(old, 'audra', 'n1').status();
  t.ok(header.index > 0 && header.index <= oldStatus.applied, `taken at applied index ${header.index} (the cluster is at ${oldStatus.applied})`);
  const inspected = await cli(['admin', 'snapshot', 'inspect', file]);
  t.equal(inspected.code, 0, 'snapshot inspect verifies the file');
  t.match(inspected.stdout, new RegExp(`applied index ${header.index} \\(term ${header.term}\\).*state root ${header.stateRoot}`), 'and prints its header');

  const oldChronicle = (await client(old, 'audra', 'n1').chronicle()).acts.map(replicated);
  const oldBundles = new Map<string, string>();
  for (const op of acts) oldBundles.set(op, (await client(old, 'audra', 'n1').exportEvidence(op)).bundleJson);
  await old.stop();
  t.comment(`saved and stopped after ${Date.now() - t0} ms`);

  // A new cluster from the file. A truncated copy is refused first, with nothing written (bad
  // files, roots and directories in detail: test/node/backup.test.ts).
  fresh = await DaemonCluster.restoredFrom(old, newDir, 3_000);
  const cut = join(root, 'cut.snap');
  writeFileSync(cut, readFileSync(file).subarray(0, Math.floor(readFileSync(file).length / 2)));
  const bad = await cli(['cluster', 'restore', '--snapshot', cut, '--config', newDir]);
  t.equal(bad.code, 3, 'a truncated file is refused');
  t.match(bad.stderr, /^SNAPSHOT_INVALID: .*truncated/, `with ${bad.stderr.trim()}`);
  t.notOk(existsSync(join(newDir, 'data')), 'and no data directory was created');
  const restored = await cli(['cluster', 'restore', '--snapshot', file, '--config', newDir]);
  t.equal(restored.code, 0, `cluster restore exits 0 ${restored.stderr}`);
  const incarnation = /incarnation ([0-9a-f]{32})/.exec(restored.stdout)?.[1] ?? '';
  t.ok(incarnation, `a new incarnation: ${incarnation}`);

  await fresh.start('audra', CLI, 120_000);
  t.comment(`restored and started after ${Date.now() - t0} ms`);
  const newStatus = await until('the new cluster elects a leader', async () => {
    const s = await client(fresh as DaemonCluster, 'audra', 'n3').status();
    return s.leader !== '' ? s : null;
  }, 60_000);
  t.equal(newStatus.stateRoot, header.stateRoot, 'the new cluster starts at the saved state root');
  t.equal(newStatus.height, oldStatus.height, 'with the whole hash chain');
  t.same((await client(fresh, 'audra', 'n3').chronicle()).acts.map(replicated), oldChronicle, 'the chronicle matches the old cluster\'s');
  const ruleOf = (op: string) => oldChronicle.find((v) => v.opId === rid(op));
  t.match({ pay: ruleOf('pay-1'), big: ruleOf('big-1') }, { pay: { rule: /./, ruleAction: 'ALLOW' }, big: { rule: /./, ruleAction: 'REQUIRE_APPROVAL', ruleDetail: /approvals/ } }, 'each act keeps the rule that admitted it across the backup');
  for (const op of acts) {
    const bundle = (await client(fresh, 'audra', 'n3').exportEvidence(op)).bundleJson;
    t.equal(bundle, oldBundles.get(op), `${op}: the evidence bundle exports from the new cluster exactly as from the old`);
    const f = join(root, `${op}.json`);
    writeFileSync(f, bundle);
    const v = await cli(['evidence', 'verify', f]);
    t.equal(v.code, 0, `${op}: custody evidence verify accepts it ${v.stdout.trim().split('\n')[0] ?? ''}`);
  }

  // The new cluster finishes the decision left pending, governs and signs.
  const pending = await client(fresh, 'audra', 'n2').getDecision(k2.cid);
  t.same([pending.state, pending.approvals], ['pending', ['approver-1']], 'the decision left pending in the old cluster is pending in the new one, with its approval');
  await approve(fresh, k2.cid, ['approver-2']);
  t.equal((await client(fresh, 'audra', 'n2').getDecision(k2.cid)).state, 'applied', 'its second approval applies it');
  // The ceremony that decision authorized, among the same kernels; an act is signed with the new key
  // below.
  await activate(fresh, 'k2');
  t.equal((await client(fresh, 'audra', 'n2').status()).keys.find((k) => k.id === 'k2')?.status, 'active', 'a new key is generated and activated by the restored cluster');
  const freeze = await client(fresh, 'approver-3', 'n1').proposeDecision(JSON.stringify({ kind: 'EmergencyFreeze', reason: 'drill after restore' }));
  await approve(fresh, freeze.cid, ['approver-3']);
  t.equal((await client(fresh, 'audra', 'n2').status()).frozen, 'drill after restore', 'a new decision applies (EmergencyFreeze)');
  const thaw = await client(fresh, 'approver-1', 'n1').proposeDecision(JSON.stringify({ kind: 'Unfreeze' }));
  await approve(fresh, thaw.cid, ['approver-1', 'approver-2']);
  t.equal((await client(fresh, 'audra', 'n2').status()).frozen, '', 'and another (Unfreeze)');
  await client(fresh, 'cara', 'n2').submitAct({ opId: 'after-restore', keyId: 'k2', ...(await actTx(client(fresh, 'cara', 'n2'), 'k2', '100', 'sol-treasury')) });
  t.equal((await published(fresh, 'after-restore')).state, 'Published', 'a new act is signed by the restored cluster');
  // A key made before the backup signs in the restored cluster: its public key package comes back
  // from the kernels' stores, checked against the group key in the restored ledger.
  await client(fresh, 'cara', 'n2').submitAct({ opId: 'old-key-after-restore', keyId: 'k', ...(await actTx(client(fresh, 'cara', 'n2'), 'k', '100', 'sol-treasury')) });
  t.equal((await published(fresh, 'old-key-after-restore')).state, 'Published', 'a key made before the backup signs a new act in the restored cluster');
  for (const op of ['after-restore', 'old-key-after-restore']) {
    const f = join(root, `${op}.json`);
    writeFileSync(f, (await client(fresh, 'audra', 'n1').exportEvidence(op)).bundleJson);
    const v = await cli(['evidence', 'verify', f]);
    t.equal(v.code, 0, `${op}: its evidence verifies ${v.stdout.trim().split('\n')[0] ?? ''}`);
  }

  t.comment(`new decisions, key and act after ${Date.now() - t0} ms`);

  // A node of the old cluster, started on its old store with the new cluster's addresses.
  const strayDir = join(root, 'stray');
  mkdirSync(strayDir);
  const peersOf = (f: string): Record<string, string> => (parse(readFileSync(f, 'utf8')) as { peers: Record<string, string> }).peers;
  const raftPeers = peersOf(join(newDir, 'n2.yaml'));
  const adminPeers = peersOf(join(newDir, 'n2.lifecycle.yaml'));
  const [listen, http, admin] = await Promise.all([freePort(), freePort(), freePort()]);
  writeFileSync(join(strayDir, 'n1.yaml'), [
    'id: n1', `dataDir: ${join(oldDir, 'data', 'n1')}`, `listen: 127.0.0.1:${listen}`, `http: 127.0.0.1:${http}`,
    'peers:', `  n1: 127.0.0.1:${listen}`, `  n2: ${raftPeers.n2}`, `  n3: ${raftPeers.n3}`,
    `tls: { ca: ${join(old.certs, 'ca.crt')}, cert: ${join(old.certs, 'n1.crt')}, key: ${join(old.certs, 'n1.key')} }`,
    'raft: { tickMs: 50, electionTicks: 10, heartbeatTicks: 1 }', '',
  ].join('\n'));
  writeFileSync(join(strayDir, 'n1.lifecycle.yaml'), [
    `admin: 127.0.0.1:${admin}`, 'peers:', `  n1: 127.0.0.1:${admin}`, `  n2: ${adminPeers.n2}`, `  n3: ${adminPeers.n3}`,
    `identity: ${join(oldDir, 'n1.identity')}`, 'kernel: twin', `genesis: ${join(oldDir, 'genesis.hex')}`, '',
  ].join('\n'));
  const strayLog = join(strayDir, 'n1.log');
  stray.p = spawn(process.execPath, [CLI, 'node', '--config', join(strayDir, 'n1.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  const sink = createWriteStream(strayLog);
  stray.p.stdout?.pipe(sink);
  stray.p.stderr?.pipe(sink);
  const seen = await until('the new cluster refuses the old node', () => {
    const logs = ['n2', 'n3'].map((id) => readFileSync(join(newDir, `${id}.log`), 'utf8'));
    return logs.find((l) => /refused peer n1: INCARNATION_MISMATCH/.test(l))?.split('\n').find((l) => /INCARNATION_MISMATCH/.test(l)) ?? null;
  }, 60_000);
  t.comment(seen);
  t.match(seen, /refused peer n1: INCARNATION_MISMATCH/, 'a new node refused the old node\'s peer stream with INCARNATION_MISMATCH');
  await until('the old node is told why', () => /\[INCARNATION_MISMATCH\]/.test(existsSync(strayLog) ? readFileSync(strayLog, 'utf8') : ''), 60_000);
  t.match(readFileSync(strayLog, 'utf8'), /\[INCARNATION_MISMATCH\]/, 'the old node logs the refusal with its reason code');
  // The node-to-node lifecycle service (ceremony blobs, signing requests) checks it too.
  const nodeTls = loadTls({ ca: join(old.certs, 'ca.crt'), cert: join(old.certs, 'n1.crt'), key: join(old.certs, 'n1.key') });
  const asOld = new PeerClient('n2', adminPeers.n2 as string, nodeTls, '');
  const asNew = new PeerClient('n2', adminPeers.n2 as string, nodeTls, incarnation);
  const lifecycleRefusal = await asOld.call('Get', { key: 'dkg/k2/0/public/n2' }, 10_000).then(() => 'answered', (e: unknown) => (isCustodyError(e) ? e.reason : String(e)));
  const lifecycleAnswer = await asNew.call<{ found: boolean }>('Get', { key: 'dkg/k2/0/public/n2' }, 10_000);
  asOld.close();
  asNew.close();
  t.equal(lifecycleRefusal, 'INCARNATION_MISMATCH', 'the lifecycle peer service refuses a caller of another incarnation');
  t.ok(lifecycleAnswer.found, 'and answers one of its own');
  const strayStatus = await until('the old node serves its status', () => fetchStatus(`127.0.0.1:${http}`), 60_000);
  t.equal(strayStatus.leader, null, 'the old node found no leader in the new cluster');
  const after = await client(fresh, 'audra', 'n3').status();
  t.ok(after.leader !== '' && after.applied >= newStatus.applied, `the new cluster keeps its leader ${after.leader} and its log`);
  const freeze2 = await client(fresh, 'approver-1', 'n1').proposeDecision(JSON.stringify({ kind: 'EmergencyFreeze', reason: 'after the old node knocked' }));
  await approve(fresh, freeze2.cid, ['approver-3']);
  t.equal((await client(fresh, 'audra', 'n3').status()).frozen, 'after the old node knocked', 'and still decides while the old node knocks');
  t.comment(`done after ${Date.now() - t0} ms`);
});
