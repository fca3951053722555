/**
 * The lifecycle across three `custody node` daemon processes on loopback (gRPC peers and admin
 * API over mTLS, LevelDB, the ledger as the state machine, the lifecycle peer service between
 * daemons): DKG, activation, signing acts through the admin API; then kill -9 of the leader (and
 * its kernel) while acts are in flight, a new leader, and a restart of the killed node: every act
 * completes exactly once (Published, one execution), the nodes agree on one state root, and the
 * kernels' own records show one signing set and one signature per permit.
 * Each daemon talks to its own kernel process over a Unix socket; killing a node kills both.
 */
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { decisionBodyFromCbor, decisionSigningBytes, ed25519Sign } from '../../ledger/decision.js';
import { decode, fromHex, toHex } from '../../ledger/encoding.js';
import { ed25519GroupCommitment } from '../../ledger/signing-set.js';
import { signingListsDigest } from '../../kernel/kernel.js';
import { KernelStore } from '../../kernel/store.js';
import type { AdminClient, ActView } from '../../node/admin/client.js';
import { issueOperatorCert } from '../../node/admin/roles.js';
import { DaemonCluster } from '../../node/lifecycle/daemon-cluster.js';
import { until } from '../../node/probe.js';
import { CLI, OPERATORS, POLICY, actTx, labelled, type LabelledClient } from './harness.js';

const eventually = <T>(what: string, f: () => Promise<T | null | undefined | false>, timeoutMs = 120_000): Promise<T> => until(what, f, timeoutMs);

t.test('three daemons: lifecycle over the admin API; kill -9 of the leader mid-act completes each act exactly once, one signature per permit', { timeout: 900_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-daemons-'));
  const cluster = await DaemonCluster.create(dir, POLICY, 3, 3_000);
  const ids = cluster.nodes.map((n) => n.id);
  const genesis = cluster.genesis;
  for (const [id, role] of Object.entries(OPERATORS)) issueOperatorCert(cluster.certs, id, role);
  const clients: AdminClient[] = [];
  const client = (as: string, id: string): LabelledClient => {
    const c = cluster.client(id, as);
    clients.push(c);
    return labelled(c, cluster.custodians[0]!);
  };
  t.teardown(async () => {
    for (const c of clients) c.close();
    await cluster.stop();
    // The daemons' logs tell what went wrong when a test fails.
    if (!t.passing()) for (const id of ids) t.comment(`--- ${id}.log (last lines)\n${readFileSync(join(dir, `${id}.log`), 'utf8').split('\n').slice(-40).join('\n')}`);
    rmSync(dir, { recursive: true, force: true });
  });
  await cluster.start('audra', CLI, 120_000);

  const audra = (id: string) => client('audra', id);
  const served = await Promise.all(ids.map(async (id) => (await audra(id).status()).clusterId));
  t.same(served, ids.map(() => genesis.clusterId), 'three daemons up, each serving the genesis they were installed with');

  const approve = async (cid: string, who: string[], id: string): Promise<void> => {
    for (const a of who) {
      const c = client(a, id);
      const d = await c.getDecision(cid);
      await c.approveDecision(cid, a, ed25519Sign(decisionSigningBytes(decisionBodyFromCbor(decode(new Uint8Array(d.bodyCbor)))), cluster.approvers.find((x) => x.id === a)!.secretKey));
    }
  };
  const d = await client('kim', 'n1').proposeDecision(JSON.stringify({ kind: 'DkgAuthorized', keyId: 'k', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ids }));
  await approve(d.cid, ['approver-1', 'approver-2'], 'n1');
  await eventually('key object published (round 1 in the log, round 2 between daemons)', async () => (await audra('n1').status()).keys[0]?.epochs.includes('0:published'));
  const a = await client('kim', 'n1').proposeDecision(JSON.stringify({ kind: 'KeyActivated', keyId: 'k', keyEpoch: 0 }));
  await approve(a.cid, ['approver-2', 'approver-3'], 'n1');
  t.equal((await audra('n1').status()).keys[0]?.status, 'active', 'key active');

  const first = await client('cara', 'n2').submitAct({ opId: 'warm', keyId: 'k', ...(await actTx(client('cara', 'n2'), 'k', '100', 'sol-treasury')) });
  t.equal(first.state, 'Admitted', 'an act submitted to a follower is admitted');
  const warm = await client('cara', 'n2').watch('warm', () => undefined, (v) => ['Published', 'Aborted'].includes(v.state));
  t.equal(warm.state, 'Published', 'an act signed across three daemons');

  // Acts in flight, then kill -9 the leader as soon as one is PendingRemote.
  const leaderId = (await audra('n1').status()).leader;
  const survivor = ids.find((x) => x !== leaderId)!;
  const opIds = ['k9-1', 'k9-2', 'k9-3'];
  for (const op of opIds) await client('cara', survivor).submitAct({ opId: op, keyId: 'k', ...(await actTx(client('cara', survivor), 'k', '100', 'sol-treasury')) });
  await client('audra', survivor).watch('k9-1', () => undefined, (v) => v.state !== 'Admitted', 30_000).catch(() => undefined);
  const killed = cluster.node(leaderId).daemon!;
  await cluster.kill(leaderId);
  t.equal(killed.signalCode, 'SIGKILL', `leader ${leaderId} killed with SIGKILL (its kernel too)`);

  // A leader change: the survivors elect one of themselves; then the killed node restarts (kernel
  // first), as a supervisor would restart it, so a signing set it belongs to can still complete.
  await eventually('a survivor leads', async () => {
    const l = (await audra(survivor).status()).leader;
    return l !== '' && l !== leaderId;
  });
  await cluster.startKernel(leaderId);
  cluster.startDaemon(leaderId, CLI);

  const ends: ActView[] = [];
  for (const op of opIds) ends.push(await eventually(`${op} ends`, async () => {
    const v = await audra(survivor).showAct(op);
    return ['Published', 'Aborted'].includes(v.state) ? v : null;
  }, 180_000));
  for (const v of ends) {
    t.equal(v.state, 'Published', `${v.opId}: completed (${v.state} ${v.reason})`);
    t.equal(v.history.filter((h) => h.state === 'Executed').length, 1, `${v.opId}: executed exactly once`);
    t.equal(v.signature.length, 128, `${v.opId}: one 64-byte signature in the ledger`);
    t.equal(v.signingSet.length, 2, `${v.opId}: one signing set of two fixed in the ledger`);
    t.comment(`${v.opId}: ${v.notes.map((n) => `${n.reason ? `${n.reason}: ` : ''}${n.text}`).join(' | ')}`);
  }
  const others = ids.filter((x) => x !== leaderId);
  await eventually('the restarted node converges', async () => {
    const s = await Promise.all(ids.map((x) => audra(x).status()));
    return s.every((x) => x.applied === s[0]!.applied && x.stateRoot === s[0]!.stateRoot) ? s : null;
  }, 180_000);
  const again = await audra(leaderId).showAct('k9-1');
  t.equal(again.state, (await audra(others[0]!).showAct('k9-1')).state, 'the restarted node sees the same outcome');
  await client('cara', leaderId).submitAct({ opId: 'after-restart', keyId: 'k', ...(await actTx(client('cara', leaderId), 'k', '100', 'sol-treasury')) });
  const after = await eventually('the act after the restart ends', async () => {
    const v = await audra(leaderId).showAct('after-restart');
    return ['Published', 'Aborted'].includes(v.state) ? v : null;
  }, 120_000);
  t.equal(after.state, 'Published', 'the cluster signs again with the restarted node back');

  // Every share any kernel ever produced, from the kernels' own stores (each share is recorded in
  // the batch that consumed its nonce): per permit, every share is over the one list the ledger
  // fixed, one per member, and together they make exactly the signature in the ledger. A second
  // signature for a permit would need a share over another list, or a second share of a kernel.
  const views = await Promise.all(['warm', ...opIds, 'after-restart'].map((op) => audra(survivor).showAct(op)));
  const groupKey = (await audra(survivor).status()).keys[0]!.publicKey;
  await cluster.stop();
  /** The permit's request id (the act's opId, kernel/certificate.ts) -> every share a kernel recorded under it. */
  const used = new Map<string, { nodeId: string; lists: string; shares: string[]; counters: number[] }[]>();
  for (const id of ids) {
    const store = await KernelStore.open(join(dir, `${id}-kernel`, 'store'));
    for (const { key, value } of await store.list('permit/', 100_000)) {
      const requestId = Buffer.from(key.split('/')[2]!, 'hex').toString('utf8');
      const r = JSON.parse(Buffer.from(value).toString('utf8')) as { lists: string; shares: string[]; counters: number[] };
      used.set(requestId, [...(used.get(requestId) ?? []), { nodeId: id, lists: r.lists, shares: r.shares, counters: r.counters }]);
    }
    await store.close();
  }
  const L = ed25519.Point.Fn;
  for (const v of views) {
    // A Solana act signs one message: one list, one nonce pair per member, one share each.
    const list = v.signingSet.map((m) => ({ identifier: m.identifier, hiding: fromHex(m.nonces[0]!.hiding), binding: fromHex(m.nonces[0]!.binding) }));
    const message = new Uint8Array(v.tx);
    const records = used.get(v.opId) ?? [];
    t.same(records.map((r) => r.nodeId).sort(), v.signingSet.map((m) => m.nodeId).sort(), `${v.opId}: exactly the members of the fixed set hold a share under its permit, one each`);
    t.ok(records.every((r) => r.lists === toHex(signingListsDigest([list]))), `${v.opId}: every share under the permit is over the fixed list`);
    t.ok(records.every((r) => JSON.stringify(r.counters) === JSON.stringify(v.signingSet.find((m) => m.nodeId === r.nodeId)?.nonces.map((n) => n.counter))), `${v.opId}: each with the nonce the ledger names`);
    // RFC 9591 §5.3: the signature over a list is (R, sum of the shares), R the list's group commitment.
    const z = records.reduce((acc, r) => L.add(acc, L.fromBytes(fromHex(r.shares[0]!))), 0n);
    const only = new Uint8Array([...ed25519GroupCommitment(fromHex(groupKey), message, list).R, ...L.toBytes(z)]);
    t.equal(toHex(only), v.signature, `${v.opId}: the kernels' shares make exactly the ledger's signature, the only one for the permit`);
    t.ok(ed25519.verify(only, message, fromHex(groupKey)), `${v.opId}: and it verifies under the group key (RFC 8032) over the Solana message`);
  }
  t.equal(used.size, views.length, 'no kernel holds a share under any other permit');
});
