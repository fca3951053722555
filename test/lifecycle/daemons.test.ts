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
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { decisionBodyFromCbor, decisionSigningBytes, ed25519Sign, makeApproverKey } from '../../ledger/decision.js';
import { decode, fromHex, toHex } from '../../ledger/encoding.js';
import { ed25519GroupCommitment } from '../../ledger/signing-set.js';
import { signingListDigest } from '../../kernel/kernel.js';
import { KernelStore } from '../../kernel/store.js';
import { encodeEvent, type LedgerEvent } from '../../ledger/events.js';
import { ensureCa, issue } from '../../node/certs.js';
import { AdminClient, type ActView } from '../../node/admin/client.js';
import { issueOperatorCert } from '../../node/admin/roles.js';
import { CLI, OPERATORS, POLICY } from './harness.js';
import { startKernelProcess, type KernelProc } from '../../node/lifecycle/local-cluster.js';
import { rosterToJson } from '../../kernel/authority.js';
import { eventCid } from '../../ledger/events.js';
import { freePort } from '../../node/lifecycle/daemon-cluster.js';

async function eventually<T>(what: string, f: () => Promise<T | null | undefined | false>, timeoutMs = 120_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (${last})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

t.test('three daemons: lifecycle over the admin API; kill -9 of the leader mid-act completes each act exactly once, one signature per permit', { timeout: 900_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-daemons-'));
  const certs = join(dir, 'certs');
  ensureCa(certs);
  const ids = ['n1', 'n2', 'n3'];
  const ports = await Promise.all(ids.flatMap(() => [freePort(), freePort(), freePort()]));
  const addr = (i: number, k: number) => `127.0.0.1:${ports[i * 3 + k]}`;
  const approvers = [1, 2, 3].map((i) => makeApproverKey(`approver-${i}`));
  const seeds = ids.map(() => randomBytes(32));
  const genesis: LedgerEvent = {
    type: 'ClusterGenesis', clusterId: `cluster-${randomBytes(3).toString('hex')}`,
    nodes: ids.map((id, i) => ({ id, identityKey: ed25519.getPublicKey(seeds[i]!), passport: `${id}-p1` })),
    roster: { approvers: approvers.map((a, i) => ({ id: a.id, publicKey: a.publicKey, roles: i === 2 ? ['governor', 'security'] : ['governor'] })), quorum: { threshold: 2, freezeThreshold: 1 } },
    policy: POLICY,
  };
  writeFileSync(join(dir, 'genesis.hex'), toHex(encodeEvent(genesis)));
  for (const [id, role] of Object.entries(OPERATORS)) issueOperatorCert(certs, id, role);
  ids.forEach((id, i) => {
    issue(certs, 'node', id, ['127.0.0.1', 'localhost']);
    writeFileSync(join(dir, `${id}.identity`), toHex(seeds[i]!), { mode: 0o600 });
    writeFileSync(join(dir, `${id}.yaml`), [
      `id: ${id}`, `dataDir: data/${id}`, `listen: ${addr(i, 0)}`, `http: ${addr(i, 1)}`,
      'peers:', ...ids.map((p, j) => `  ${p}: ${addr(j, 0)}`),
      `tls: { ca: certs/ca.crt, cert: certs/${id}.crt, key: certs/${id}.key }`,
      'raft: { tickMs: 50, electionTicks: 10, heartbeatTicks: 1 }', '',
    ].join('\n'));
    writeFileSync(join(dir, `${id}.lifecycle.yaml`), [
      `admin: ${addr(i, 2)}`, 'peers:', ...ids.map((p, j) => `  ${p}: ${addr(j, 2)}`),
      `identity: ${id}.identity`, `kernel: { socket: ${id}-kernel/run/kernel.sock }`, 'genesis: genesis.hex', 'remoteTimeoutMs: 3000', '',
    ].join('\n'));
  });

  const kernels = new Map<string, KernelProc>();
  const startKernel = async (id: string): Promise<void> => {
    const kdir = join(dir, `${id}-kernel`);
    mkdirSync(kdir, { recursive: true, mode: 0o700 });
    if (!existsSync(join(kdir, 'kernel.key'))) writeFileSync(join(kdir, 'kernel.key'), randomBytes(32).toString('hex'), { mode: 0o600 });
    writeFileSync(join(kdir, 'kernel.json'), JSON.stringify({
      nodeId: id, socketPath: join(kdir, 'run', 'kernel.sock'), storeDir: join(kdir, 'store'), profile: 'software', software: { keyFile: join(kdir, 'kernel.key') },
      genesis: { clusterId: genesis.type === 'ClusterGenesis' ? genesis.clusterId : '', genesisCid: toHex(eventCid(encodeEvent(genesis))), governanceEpoch: 0, roster: rosterToJson(genesis.type === 'ClusterGenesis' ? genesis.roster : (undefined as never)) },
    }));
    const k = await startKernelProcess(join(kdir, 'kernel.json'), id);
    k.client.close(); // the daemon holds its own connection
    kernels.set(id, k);
  };
  const procs = new Map<string, ChildProcess>();
  const start = (id: string): void => {
    const p = spawn(process.execPath, [CLI, 'node', '--config', join(dir, `${id}.yaml`)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const log = createWriteStream(join(dir, `${id}.log`), { flags: 'a' });
    p.stdout?.pipe(log);
    p.stderr?.pipe(log);
    procs.set(id, p);
  };
  const clients: AdminClient[] = [];
  const client = (as: string, id: string): AdminClient => {
    const i = ids.indexOf(id);
    const c = new AdminClient(addr(i, 2), id, { ca: join(certs, 'ca.crt'), cert: join(certs, `${as}.crt`), key: join(certs, `${as}.key`) });
    clients.push(c);
    return c;
  };
  t.teardown(async () => {
    for (const c of clients) c.close();
    for (const p of [...procs.values(), ...[...kernels.values()].map((k) => k.proc)]) {
      if (p.exitCode === null && p.signalCode === null) {
        p.kill('SIGTERM');
        await new Promise((r) => p.once('exit', r));
      }
    }
    // The daemons' logs tell what went wrong when a test fails.
    if (!t.passing()) for (const id of ids) t.comment(`--- ${id}.log (last lines)\n${readFileSync(join(dir, `${id}.log`), 'utf8').split('\n').slice(-40).join('\n')}`);
    rmSync(dir, { recursive: true, force: true });
  });
  for (const id of ids) await startKernel(id);
  for (const id of ids) start(id);

  const audra = (id: string) => client('audra', id);
  for (const id of ids) await eventually(`${id} serves with the genesis`, async () => (await audra(id).status()).clusterId === genesis.clusterId);
  const served = await Promise.all(ids.map(async (id) => (await audra(id).status()).clusterId));
  t.same(served, ids.map(() => genesis.clusterId), 'three daemons up, each serving the genesis they were installed with');

  const approve = async (cid: string, who: string[], id: string): Promise<void> => {
    for (const a of who) {
      const c = client(a, id);
      const d = await c.getDecision(cid);
      await c.approveDecision(cid, a, ed25519Sign(decisionSigningBytes(decisionBodyFromCbor(decode(new Uint8Array(d.bodyCbor)))), approvers.find((x) => x.id === a)!.secretKey));
    }
  };
  const d = await client('kim', 'n1').proposeDecision(JSON.stringify({ kind: 'DkgAuthorized', keyId: 'k', scheme: 'ed25519', threshold: 2, participants: ids }));
  await approve(d.cid, ['approver-1', 'approver-2'], 'n1');
  await eventually('key object published (round 1 in the log, round 2 between daemons)', async () => (await audra('n1').status()).keys[0]?.epochs.includes('0:published'));
  const a = await client('kim', 'n1').proposeDecision(JSON.stringify({ kind: 'KeyActivated', keyId: 'k', keyEpoch: 0 }));
  await approve(a.cid, ['approver-2', 'approver-3'], 'n1');
  t.equal((await audra('n1').status()).keys[0]?.status, 'active', 'key active');

  const first = await client('cara', 'n2').submitAct({ opId: 'warm', keyId: 'k', asset: 'SOL', amount: '100', destination: 'sol-treasury', display: 'warm up' });
  t.equal(first.state, 'Admitted', 'an act submitted to a follower is admitted');
  const warm = await client('cara', 'n2').watch('warm', () => undefined, (v) => ['Published', 'Aborted'].includes(v.state));
  t.equal(warm.state, 'Published', 'an act signed across three daemons');

  // Acts in flight, then kill -9 the leader as soon as one is PendingRemote.
  const leaderId = (await audra('n1').status()).leader;
  const survivor = ids.find((x) => x !== leaderId)!;
  const opIds = ['k9-1', 'k9-2', 'k9-3'];
  for (const op of opIds) await client('cara', survivor).submitAct({ opId: op, keyId: 'k', asset: 'SOL', amount: '100', destination: 'sol-treasury', display: op });
  await client('audra', survivor).watch('k9-1', () => undefined, (v) => v.state !== 'Admitted', 30_000).catch(() => undefined);
  procs.get(leaderId)!.kill('SIGKILL');
  kernels.get(leaderId)!.proc.kill('SIGKILL');
  const [daemonSignal] = await Promise.all([
    new Promise<NodeJS.Signals | null>((r) => procs.get(leaderId)!.once('exit', (_code, signal) => r(signal))),
    kernels.get(leaderId)!.exited,
  ]);
  t.equal(daemonSignal, 'SIGKILL', `leader ${leaderId} killed with SIGKILL (its kernel too)`);

  // A leader change: the survivors elect one of themselves; then the killed node restarts (kernel
  // first), as a supervisor would restart it, so a signing set it belongs to can still complete.
  await eventually('a survivor leads', async () => {
    const l = (await audra(survivor).status()).leader;
    return l !== '' && l !== leaderId;
  });
  await startKernel(leaderId);
  start(leaderId);

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
  await client('cara', leaderId).submitAct({ opId: 'after-restart', keyId: 'k', asset: 'SOL', amount: '100', destination: 'sol-treasury', display: 'after restart' });
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
  for (const p of procs.values()) {
    p.kill('SIGTERM');
    await new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r(null) : p.once('exit', r)));
  }
  for (const k of kernels.values()) {
    k.proc.kill('SIGTERM');
    await k.exited;
  }
  /** hex(permit id) -> every share a kernel recorded under it. */
  const used = new Map<string, { nodeId: string; list: string; share: string; counter: number }[]>();
  for (const id of ids) {
    const store = await KernelStore.open(join(dir, `${id}-kernel`, 'store'));
    for (const { key, value } of await store.list('permit/', 100_000)) {
      const permitHex = Buffer.from(key.split('/')[2]!, 'hex').toString('utf8');
      const r = JSON.parse(Buffer.from(value).toString('utf8')) as { list: string; share: string; counter: number };
      used.set(permitHex, [...(used.get(permitHex) ?? []), { nodeId: id, list: r.list, share: r.share, counter: r.counter }]);
    }
    await store.close();
  }
  const L = ed25519.Point.Fn;
  for (const v of views) {
    const list = v.signingSet.map((m) => ({ identifier: m.identifier, hiding: fromHex(m.hiding), binding: fromHex(m.binding) }));
    const records = used.get(v.permitId) ?? [];
    t.same(records.map((r) => r.nodeId).sort(), v.signingSet.map((m) => m.nodeId).sort(), `${v.opId}: exactly the members of the fixed set hold a share under its permit, one each`);
    t.ok(records.every((r) => r.list === toHex(signingListDigest(list))), `${v.opId}: every share under the permit is over the fixed list`);
    t.ok(records.every((r) => r.counter === v.signingSet.find((m) => m.nodeId === r.nodeId)?.counter), `${v.opId}: each with the nonce the ledger names`);
    // RFC 9591 §5.3: the signature over a list is (R, sum of the shares), R the list's group commitment.
    const z = records.reduce((acc, r) => L.add(acc, L.fromBytes(fromHex(r.share))), 0n);
    const only = new Uint8Array([...ed25519GroupCommitment(fromHex(groupKey), fromHex(v.messageDigest), list).R, ...L.toBytes(z)]);
    t.equal(toHex(only), v.signature, `${v.opId}: the kernels' shares make exactly the ledger's signature, the only one for the permit`);
    t.ok(ed25519.verify(only, fromHex(v.messageDigest), fromHex(groupKey)), `${v.opId}: and it verifies under the group key (RFC 8032)`);
  }
  t.equal(used.size, views.length, 'no kernel holds a share under any other permit');
});
