/**
 * A wiped node back in sync on real daemons: a three-node cluster (daemons and kernels) with a
 * small snapshot interval ends acts (refused by policy: each one ledger entry, archived at once),
 * so its log is compacted past them; one node is killed, wiped with `custody node wipe`, and
 * started again. It can only catch up by installing a snapshot, which carries the archive's count
 * and head, not its records: it fetches them from its peers over the peer transport (gRPC
 * ArchiveRange), and then `custody admin act show` on it reads the oldest ended act from its own
 * archive, and its evidence bundle exports exactly as from the leader.
 */
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decisionBodyFromCbor, decisionSigningBytes, ed25519Sign } from '../../ledger/decision.js';
import { decode } from '../../ledger/encoding.js';
import type { AdminClient } from '../../node/admin/client.js';
import { issueOperatorCert } from '../../node/admin/roles.js';
import { DaemonCluster } from '../../node/lifecycle/daemon-cluster.js';
import { until } from '../../node/probe.js';
import { CLI, OPERATORS, POLICY, runCli, actTx, labelled, rid, type LabelledClient } from './harness.js';

const cli = runCli;

const ENDED = 40;

t.test('a wiped node installs a snapshot, fetches the archive from its peers, and serves old acts', { timeout: 900_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-resync-'));
  const c = await DaemonCluster.create(dir, POLICY, 3, 3_000, { raft: 'snapshotEveryEntries: 16, compactionKeepEntries: 4' });
  for (const [id, role] of Object.entries(OPERATORS)) issueOperatorCert(c.certs, id, role);
  const clients: AdminClient[] = [];
  t.teardown(async () => {
    for (const x of clients) x.close();
    await c.stop();
    if (!t.passing()) {
      for (const n of c.nodes) {
        const f = join(dir, `${n.id}.log`);
        if (existsSync(f)) t.comment(`--- ${f} (last lines)\n${readFileSync(f, 'utf8').split('\n').slice(-30).join('\n')}`);
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const client = (as: string, id: string): LabelledClient => {
    const x = c.client(id, as);
    clients.push(x);
    return labelled(x, c.custodians[0]!);
  };
  const approve = async (cid: string, who: string[]): Promise<void> => {
    for (const a of who) {
      const x = client(a, 'n1');
      const d = await x.getDecision(cid);
      await x.approveDecision(cid, a, ed25519Sign(decisionSigningBytes(decisionBodyFromCbor(decode(new Uint8Array(d.bodyCbor)))), c.approvers.find((k) => k.id === a)!.secretKey));
    }
  };

  await c.start('audra', CLI, 120_000);
  const dk = await client('kim', 'n1').proposeDecision(JSON.stringify({ kind: 'DkgAuthorized', keyId: 'k', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: c.nodes.map((n) => n.id) }));
  await approve(dk.cid, ['approver-1', 'approver-2']);
  await until('key k published', async () => (await client('audra', 'n1').status()).keys.find((k) => k.id === 'k')?.epochs.includes('0:published'), 120_000);
  const act = await client('kim', 'n1').proposeDecision(JSON.stringify({ kind: 'KeyActivated', keyId: 'k', keyEpoch: 0 }));
  await approve(act.cid, ['approver-2', 'approver-3']);
  await until('key k active', async () => (await client('audra', 'n2').status()).keys.find((k) => k.id === 'k')?.epochs.includes('0:active'), 120_000);

  // Signed acts until n3's kernel has signed one: it then follows a certified checkpoint of the
  // history before the wipe (kernel/certificate.ts checkFollows).
  const cara = client('cara', 'n2');
  let signedSeq = 0;
  const signUntilN3 = async (what: string): Promise<void> => {
    for (let tries = 0; tries < 8; tries++) {
      const op = `signed-${signedSeq++}`;
      await cara.submitAct({ opId: op, keyId: 'k', ...(await actTx(cara, 'k', String(200 + signedSeq), 'sol-treasury')) });
      const v = await cara.watch(op, () => undefined, (x) => ['Published', 'Settled', 'Denied', 'Aborted'].includes(x.state), 180_000);
      t.ok(['Published', 'Settled'].includes(v.state), `${what}: act ${op} is ${v.state}${v.reason ? ` (${v.reason})` : ''}, signed by ${v.signingSet.map((m) => m.nodeId).join(' and ')}`);
      if (v.signingSet.some((m) => m.nodeId === 'n3')) return;
    }
    t.fail(`${what}: no act of eight had n3 in its signing set`);
  };
  await signUntilN3('before the wipe');

  // Acts to a destination the policy does not allow: each is Denied in its one entry and archived.
  for (let i = 0; i < ENDED; i++) {
    const v = await cara.submitAct({ opId: `deny-${i}`, keyId: 'k', ...(await actTx(cara, 'k', String(100 + i), 'sol-elsewhere')) }).catch((e: unknown) => e);
    if (i === 0) t.comment(`a refused act: ${JSON.stringify((v as { state?: string }).state ?? String(v))}`);
  }
  const first = await client('audra', 'n1').showAct('deny-0');
  t.equal(first.state, 'Denied', 'the acts ended (Denied by policy)');
  const before = await client('audra', 'n1').exportEvidence('deny-0');

  // Kill n3, wipe it, start it again.
  await c.kill('n3');
  const wiped = await cli(['node', 'wipe', '--config', join(dir, 'n3.yaml'), '--yes']);
  t.equal(wiped.code, 0, `custody node wipe exits 0: ${wiped.stdout.trim()} ${wiped.stderr.trim()}`);
  // More entries while it is down, so its peers' logs are compacted well past anything it held.
  for (let i = ENDED; i < ENDED + 20; i++) await cara.submitAct({ opId: `deny-${i}`, keyId: 'k', ...(await actTx(cara, 'k', String(100 + i), 'sol-elsewhere')) }).catch(() => undefined);
  const leaderStatus = await client('audra', 'n1').status();
  await c.startKernel('n3');
  const t0 = Date.now();
  c.startDaemon('n3');
  const n3 = client('audra', 'n3');
  const caught = await until('n3 applied what the cluster had', async () => {
    const s = await n3.status().catch(() => null);
    return s !== null && s.applied >= leaderStatus.applied && s.stateRoot !== '' ? s : null;
  }, 180_000);
  t.comment(`n3 caught up to applied ${caught.applied} in ${Date.now() - t0} ms after its start`);
  const log = readFileSync(join(dir, 'n3.log'), 'utf8');
  t.match(log, /archive: fetched records 0\.\.\d+ from n[12]/, 'it fetched the archive from a peer');
  const shown = await n3.showAct('deny-0');
  t.equal(shown.state, 'Denied', '`act show` on the wiped node reads the oldest ended act');
  t.equal((await n3.showAct(`deny-${ENDED + 19}`)).state, 'Denied', 'and the newest');
  t.equal((await n3.exportEvidence('deny-0')).bundleJson, before.bundleJson, 'its evidence bundle exports exactly as from the leader');
  const show = await cli(['admin', 'act', 'show', '--op', rid('deny-1'), '--node', c.node('n3').admin, '--node-id', 'n3', '--certs', c.certs, '--as', 'audra']);
  t.equal(show.code, 0, `custody admin act show deny-1 on n3 exits 0 ${show.stderr.trim()}`);
  t.match(show.stdout, /Denied/, 'and prints the act as Denied');

  // n3's kernel still follows the checkpoint it signed under before the wipe, which n3's new tree
  // (it starts at the snapshot) cannot prove anything from: n3 asks a peer for the consistency
  // proof, and its kernel signs again.
  await signUntilN3('after the resync');
  t.match(readFileSync(join(dir, 'n3.log'), 'utf8'), /checkpoints: consistency proof from \d+ to \d+ taken from n[12]/, 'n3 took the consistency proof for its kernel from a peer');
});
