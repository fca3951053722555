/**
 * Pending approvals persist (node/approvals/book.ts): the book's rules (signatures checked at
 * apply, bounds, expiry on the ledger clock, stale epochs and heads dropped); a book restarted from
 * its own writes at any point continues exactly as one that never stopped (fast-check); and on
 * three Raft drivers on LevelDB with the admin backend: a decision proposed on one node with one
 * approval survives a restart of every node and the second approval, given on another node,
 * applies it; an act held for approvals survives a restart, is submitted through a third node and
 * keeps its approval's signatures for its evidence, across another restart and in snapshots.
 */
import t from 'tap';
import fc from 'fast-check';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { approvals as limits } from '../../proto/limits.js';
import { RaftCore } from '../../raft/core/raft.js';
import { SeededRng } from '../../raft/core/rng.js';
import type { ConfState } from '../../raft/core/types.js';
import { Driver } from '../../raft/driver.js';
import { LevelStorage } from '../../raft/storage/leveldb.js';
import type { AppWrite } from '../../raft/storage/leveldb.js';
import { systemClock } from '../../raft/transport.js';
import { ScriptedCluster, rid } from '../../ledger/scenario.js';
import { actRequestToCbor } from '../../ledger/act-request.js';
import type { Act } from '../../ledger/events.js';
import { isCustodyError } from '../../proto/errors.js';

async function reasonOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'accepted';
  } catch (e) {
    return isCustodyError(e) ? e.reason : String(e);
  }
}
import { decisionCid, decisionSigningBytes, decisionToCbor, ed25519Sign, type DecisionBody, type GovernanceDecision } from '../../ledger/decision.js';
import { encode, toHex } from '../../ledger/encoding.js';
import { ApprovalBook, type BookCommand } from '../../node/approvals/book.js';
import { AdminBackend } from '../../node/admin/backend.js';
import type { Operator } from '../../node/admin/roles.js';
import { LedgerApp, encodeLedgerCommand } from '../../node/ledger-app.js';
import { DriverLedgerPort } from '../../node/lifecycle/driver-ledger.js';
import { Hub, until } from '../../node/lifecycle/local-cluster.js';

const sign = (s: ScriptedCluster, body: DecisionBody, i: number): Uint8Array => ed25519Sign(decisionSigningBytes(body), (s.approvers[i] as { secretKey: Uint8Array }).secretKey);

function scripted(): ScriptedCluster {
  const s = new ScriptedCluster({ label: 'approvals' });
  s.genesis();
  s.createKey('k1');
  return s;
}

t.test('the book: signatures checked at apply, bounded, expired and superseded entries dropped on the ledger clock', (t) => {
  const s = scripted();
  const book = new ApprovalBook();
  const now = s.state.clockMs;
  const body = s.decisionBody({ kind: 'DkgAuthorized', keyId: 'k2', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ['node-0', 'node-1', 'node-2'] });
  const cid = (b: DecisionBody): Uint8Array => decisionCid(b);
  const run = (c: BookCommand, at = now) => book.apply(at, c, s.state).verdict;
  t.match(run({ op: 'propose', body, act: null }), { ok: true }, 'proposed');
  t.equal(book.get(toHex(cid(body)))?.approvals.length, 0, 'pending with no approval');
  t.match(run({ op: 'approve', cid: cid(body), approverId: 'approver-0', signature: sign(s, body, 1) }), { ok: false, reason: 'SIGNATURE_INVALID' }, 'another approver\'s signature is refused');
  t.match(run({ op: 'approve', cid: cid(body), approverId: 'mallory', signature: sign(s, body, 0) }), { ok: false, reason: 'UNKNOWN_APPROVER' }, 'a signer off the roster is refused');
  t.match(run({ op: 'approve', cid: new Uint8Array(32), approverId: 'approver-0', signature: sign(s, body, 0) }), { ok: false, reason: 'UNKNOWN_SESSION' }, 'an unknown decision is refused');
  t.match(run({ op: 'approve', cid: cid(body), approverId: 'approver-0', signature: sign(s, body, 0) }), { ok: true }, 'a valid approval is taken');
  t.match(run({ op: 'approve', cid: cid(body), approverId: 'approver-0', signature: sign(s, body, 0) }), { ok: true, detail: /already/ }, 'twice is once');
  t.notOk(book.complete(book.get(toHex(cid(body)))!, s.state), 'one of two is not a quorum');
  run({ op: 'approve', cid: cid(body), approverId: 'approver-1', signature: sign(s, body, 1) });
  t.ok(book.complete(book.get(toHex(cid(body)))!, s.state), 'two of two is');
  t.match(run({ op: 'propose', body: { ...body, expiresMs: now - 1, issuedMs: now - 10 }, act: null }), { ok: false, reason: 'DECISION_EXPIRED' }, 'an expired proposal is refused');
  t.match(run({ op: 'propose', body: { ...body, governanceEpoch: 7 }, act: null }), { ok: false, reason: 'STALE_EPOCH' }, 'another epoch is refused');
  const act = s.act('k1');
  const approvesAct = s.decisionBody({ kind: 'ActApproved', opId: 'op-x', actCid: new Uint8Array(32), displayHash: act.displayHash }, { parentCid: new Uint8Array(32) });
  t.match(run({ op: 'propose', body: approvesAct, act }), { ok: false, reason: 'BINDING_MISMATCH' }, 'an act that is not the approved act is refused');

  // Bounds: the book is full at approvals.pendingMax.
  const full = new ApprovalBook();
  for (let i = 0; i < limits.pendingMax; i++) full.apply(now, { op: 'propose', body: { ...body, issuedMs: now - i }, act: null }, s.state);
  t.equal(full.size, limits.pendingMax, `${limits.pendingMax} pending`);
  t.match(full.apply(now, { op: 'propose', body: { ...body, issuedMs: now + 1 }, act: null }, s.state).verdict, { ok: false, reason: 'LIMIT_EXCEEDED' }, 'one more is refused LIMIT_EXCEEDED');

  // Expiry on the ledger clock: a later entry's stamp drops the entry on every node alike.
  const later = book.apply(body.expiresMs, { op: 'approve', cid: cid(body), approverId: 'approver-2', signature: sign(s, body, 2) }, s.state);
  t.match(later.verdict, { ok: false, reason: 'UNKNOWN_SESSION' }, 'past its expiry the decision is gone');
  t.ok(later.writes.some((w) => w.key === `book/pending/${toHex(cid(body))}` && w.value === null), 'and deleted from the store in that entry\'s batch');

  // A decision applied by the ledger moves the governance head: what followed the old head goes.
  const b2 = new ApprovalBook();
  const other = s.decisionBody({ kind: 'KeyRetired', keyId: 'k1' });
  b2.apply(now, { op: 'propose', body: other, act: null }, s.state);
  s.decide({ kind: 'DkgAuthorized', keyId: 'k3', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ['node-0', 'node-1', 'node-2'] });
  b2.afterLedger(null, false, s.state);
  t.equal(b2.size, 0, 'a decision that follows a head that moved on is dropped');
  t.end();
});

t.test('a book restarted from its own writes at any point continues exactly as one that never stopped', (t) => {
  const s = scripted();
  const now = s.state.clockMs;
  const bodies = [0, 1, 2, 3].map((i) => s.decisionBody({ kind: 'DkgAuthorized', keyId: `kk${i}`, scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ['node-0', 'node-1', 'node-2'] }, { issuedMs: now, expiresMs: now + 1000 * (i + 1) }));
  const step = fc.oneof(
    fc.record({ op: fc.constant('propose' as const), d: fc.integer({ min: 0, max: 3 }), dt: fc.integer({ min: 0, max: 1500 }) }),
    fc.record({ op: fc.constant('approve' as const), d: fc.integer({ min: 0, max: 3 }), a: fc.integer({ min: 0, max: 2 }), bad: fc.boolean(), dt: fc.integer({ min: 0, max: 1500 }) }),
  );
  let failed: string | null = null;
  try {
    fc.assert(fc.property(fc.array(step, { minLength: 1, maxLength: 24 }), fc.nat(), (steps, cut) => {
    const straight = new ApprovalBook();
    let restarted = new ApprovalBook();
    const store = new Map<string, Uint8Array>();
    const persist = (ws: AppWrite[]): void => {
      for (const w of ws) if (w.value === null) store.delete(w.key); else store.set(w.key, w.value);
    };
    let at = now;
    steps.forEach((x, i) => {
      if (i === cut % steps.length) {
        restarted = new ApprovalBook();
        restarted.load((k) => store.get(k), store.keys());
      }
      at += x.dt;
      const body = bodies[x.d] as DecisionBody;
      const c: BookCommand = x.op === 'propose' ? { op: 'propose', body, act: null }
        : { op: 'approve', cid: decisionCid(body), approverId: `approver-${x.a}`, signature: sign(s, body, x.bad ? (x.a + 1) % 3 : x.a) };
      const v1 = straight.apply(at, c, s.state).verdict;
      const r2 = restarted.apply(at, c, s.state);
      persist(r2.writes);
      if (JSON.stringify(v1) !== JSON.stringify(r2.verdict)) throw new Error(`step ${i}: verdicts differ ${JSON.stringify(v1)} / ${JSON.stringify(r2.verdict)}`);
    });
    const fromStore = new ApprovalBook();
    fromStore.load((k) => store.get(k), store.keys());
    const snap = (b: ApprovalBook): string => Buffer.from(encode(b.snapshot())).toString('hex');
    const viaSnapshot = new ApprovalBook();
    viaSnapshot.restore(straight.snapshot());
    return snap(straight) === snap(restarted) && snap(straight) === snap(fromStore) && snap(straight) === snap(viaSnapshot);
  }), { numRuns: 60 });
  } catch (e) {
    failed = (e as Error).message; // fast-check's report: the failing seed, path and counterexample
  }
  t.equal(failed, null, '60 random histories with a restart at a random point: same verdicts, same book, also from the store alone and from a snapshot');
  t.end();
});

// ------------------------------------------------------------------------------------------------
// Three drivers, the admin backend, restarts
// ------------------------------------------------------------------------------------------------

interface N { id: string; storage: LevelStorage; app: LedgerApp; driver: Driver; admin: AdminBackend }

const notes = { notesOf: () => [], onNote: () => () => undefined };
const as = (id: string, role: Operator['role']): Operator => ({ id, role });

t.test('a pending decision and an act held for approvals survive restarts of every node and complete on other nodes', async (t) => {
  const s = scripted();
  const ids = s.nodes.map((n) => n.info.id);
  const conf: ConfState = { voters: ids, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
  const dirs = await Promise.all(ids.map((id) => mkdtemp(join(tmpdir(), `custody-approvals-${id}-`))));
  t.teardown(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
  const hub = new Hub();
  let nodes: N[] = [];
  const startAll = async (): Promise<void> => {
    nodes = [];
    for (const [i, id] of ids.entries()) {
      const storage = await LevelStorage.open({ dir: dirs[i] as string, bootstrapConf: conf, recoveryHint: 'test' });
      const app = new LedgerApp();
      const driver = new Driver({
        id, storage, app, transport: hub.transport(id), clock: systemClock, newCore: (cfg) => new RaftCore(cfg), rng: new SeededRng(i + 11),
        tickMs: 20, electionTicks: 10, heartbeatTicks: 1, preVote: true, checkQuorum: true, snapshotEveryEntries: 10_000, compactionKeepEntries: 5, onFatal: (e) => { throw e; },
      });
      hub.drivers.set(id, driver);
      driver.start();
      nodes.push({ id, storage, app, driver, admin: new AdminBackend(id, new DriverLedgerPort(id, driver, app, s.node(id).secretKey), notes) });
    }
    await until('a leader', () => nodes.find((n) => n.driver.isLeader), 30_000);
  };
  const stopAll = async (): Promise<void> => {
    for (const n of nodes) {
      await n.driver.stop();
      hub.drivers.delete(n.id);
      await n.storage.close();
    }
  };
  t.teardown(stopAll);
  const node = (id: string): N => nodes.find((n) => n.id === id) as N;
  const signAs = async (n: N, cid: string, i: number): Promise<void> => {
    const p = n.admin.getDecision(as(`approver-${i}`, 'approver'), cid);
    await n.admin.approveDecision(as(`approver-${i}`, 'approver'), cid, `approver-${i}`, sign(s, p.body, i));
  };

  await startAll();
  const leader = nodes.find((n) => n.driver.isLeader) as N;
  for (const [i, e] of s.log.entries()) await leader.driver.propose(`script-${i}`, 1, encodeLedgerCommand(e.stampMs, e.event), 30_000);
  await until('every node has the active key', () => nodes.every((n) => n.app.state.cluster?.keys.k1?.status === 'active'));

  // A decision proposed on node-0, one approval there; every node restarts.
  const kim = as('kim', 'key-generator');
  const d = await node('node-0').admin.proposeDecision(kim, JSON.stringify({ kind: 'DkgAuthorized', keyId: 'k2', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ids }), 0);
  await signAs(node('node-0'), d.cid, 0);
  // An act above the first tier, held for two approvals: proposed on node-1, both approvals given.
  const cara = as('cara', 'custodian');
  const bigTx = s.transaction('k1', { amount: 50_000n });
  const actJson = { keyId: 'k1', kind: bigTx.kind, tx: toHex(bigTx.tx) };
  const held = await node('node-1').admin.proposeDecision(cara, JSON.stringify({ kind: 'ActApproved', opId: rid('big-1'), act: { ...actJson, custodian: 'cara' } }), 0);
  await signAs(node('node-1'), held.cid, 0);
  await signAs(node('node-1'), held.cid, 1);
  t.equal(node('node-1').admin.getDecision(cara, held.cid).state, 'approved', 'the act\'s approval has its quorum, waiting for its submission');
  await until('every node holds both pending decisions', () => nodes.every((n) => n.app.book.size === 2));
  await stopAll();
  await startAll();

  const onTwo = node('node-2').admin.getDecision(as('audra', 'auditor'), d.cid);
  t.same([onTwo.state, onTwo.approvals.map((a) => a.approverId)], ['pending', ['approver-0']], 'after every node restarted, another node shows the decision with its one approval');
  await signAs(node('node-2'), d.cid, 1);
  t.equal(node('node-2').admin.getDecision(as('audra', 'auditor'), d.cid).state, 'applied', 'the second approval, on another node, applies it');
  await until('every node applied DkgAuthorized for k2', () => nodes.every((n) => n.app.state.cluster?.keys.k2 !== undefined));
  t.ok(nodes.every((n) => n.app.state.cluster?.keys.k2 !== undefined), 'the decision is in every node\'s ledger');

  // The custodian still signs the act's request: the approval travels with it, never instead of it.
  const request = (tx: Uint8Array): Uint8Array => encode(actRequestToCbor(s.request('big-1', { keyId: 'k1', keyEpoch: 0, initiator: 'cara', kind: bigTx.kind, tx } as Act, { issuedMs: Date.now() })));
  const byApprover = encode(actRequestToCbor(s.request('big-1', { keyId: 'k1', keyEpoch: 0, initiator: 'approver-0', kind: bigTx.kind, tx: bigTx.tx } as Act, { issuedMs: Date.now() }, s.approvers[0])));
  t.equal(await reasonOf(node('node-2').admin.submitAct(cara, byApprover, held.cid)), 'BINDING_MISMATCH', 'an approver\'s request does not carry the custodian\'s approved act');
  t.equal(await reasonOf(node('node-2').admin.submitAct(cara, request(s.transaction('k1', { amount: 60_000n }).tx), held.cid)), 'BINDING_MISMATCH', 'nor does cara\'s request for another transaction');
  const sub = await node('node-2').admin.submitAct(cara, request(bigTx.tx), held.cid);
  t.equal(sub.op.state, 'Admitted', 'the act held for approvals is submitted through a third node after the restart and admitted');
  await until('the approval left the book everywhere', () => nodes.every((n) => n.app.book.size === 0));
  const approvalOn = async (app: LedgerApp): Promise<GovernanceDecision | null> => (await app.act(rid('big-1')))?.approval ?? null;
  t.equal((await node('node-0').app.act(rid('big-1')))?.request?.body.custodian, 'cara', 'the act keeps the custodian\'s request beside its approval');
  await stopAll();
  await startAll();
  for (const n of nodes) {
    const a = await approvalOn(n.app);
    t.same(a?.approvals.map((x) => x.approverId), ['approver-0', 'approver-1'], `${n.id}: the act's record keeps its approval with the signatures across restarts`);
  }
  const copy = new LedgerApp();
  await copy.restore(await node('node-0').app.snapshot());
  const copied = await approvalOn(copy);
  t.same(copied?.approvals.length, 2, 'and in a snapshot (what a new node or a backup receives)');
  t.equal(toHex(copied!.approvals[0]!.signature), toHex((await approvalOn(node('node-2').app))!.approvals[0]!.signature), 'the same signatures');
});

t.test('a NodeFenced decision below the freeze quorum waits in the book with the signature it carries; another approver\'s completes it', async (t) => {
  const s = new ScriptedCluster({ label: 'approvals-fence', freezeThreshold: 2 });
  s.genesis();
  const ids = s.nodes.map((n) => n.info.id);
  const conf: ConfState = { voters: ids, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
  const dirs = await Promise.all(ids.map((id) => mkdtemp(join(tmpdir(), `custody-fence-${id}-`))));
  t.teardown(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
  const hub = new Hub();
  const nodes: N[] = [];
  for (const [i, id] of ids.entries()) {
    const storage = await LevelStorage.open({ dir: dirs[i] as string, bootstrapConf: conf, recoveryHint: 'test' });
    const app = new LedgerApp();
    const driver = new Driver({
      id, storage, app, transport: hub.transport(id), clock: systemClock, newCore: (cfg) => new RaftCore(cfg), rng: new SeededRng(i + 31),
      tickMs: 20, electionTicks: 10, heartbeatTicks: 1, preVote: true, checkQuorum: true, snapshotEveryEntries: 10_000, compactionKeepEntries: 5, onFatal: (e) => { throw e; },
    });
    hub.drivers.set(id, driver);
    driver.start();
    nodes.push({ id, storage, app, driver, admin: new AdminBackend(id, new DriverLedgerPort(id, driver, app, s.node(id).secretKey), notes) });
  }
  t.teardown(async () => {
    for (const n of nodes) {
      await n.driver.stop();
      await n.storage.close();
    }
  });
  const leader = await until('a leader', () => nodes.find((n) => n.driver.isLeader), 30_000);
  for (const [i, e] of s.log.entries()) await leader.driver.propose(`script-${i}`, 1, encodeLedgerCommand(e.stampMs, e.event), 30_000);
  await until('genesis everywhere', () => nodes.every((n) => n.app.state.cluster !== null));
  const body = { ...s.decisionBody({ kind: 'NodeFenced', nodeId: 'node-2', passport: 'passport-2-0', reason: 'leaked identity key' }), issuedMs: Date.now(), expiresMs: Date.now() + 3_600_000 };
  const one = encode(decisionToCbor({ body, approvals: [{ approverId: 'approver-0', signature: sign(s, body, 0) }] }));
  const a0 = as('approver-0', 'approver');
  const p = await nodes[0]!.admin.fenceNode(a0, 'node-2', one);
  t.same([p.state, p.approvals.map((x) => x.approverId)], ['pending', ['approver-0']], 'one of the two signatures the freeze quorum needs: pending, not fenced');
  t.equal(nodes[0]!.app.state.cluster!.nodes['node-2']!.status, 'active');
  const a1 = as('approver-1', 'approver');
  const done = await nodes[1]!.admin.approveDecision(a1, p.cid, 'approver-1', sign(s, body, 1));
  t.equal(done.state, 'applied', 'a second approver, on another node, completes it');
  await until('node-2 fenced everywhere', () => nodes.every((n) => n.app.state.cluster?.nodes['node-2']?.status === 'fenced'), 30_000);
  t.ok(nodes.every((n) => n.app.state.cluster?.nodes['node-2']?.status === 'fenced'), 'every replica fenced node-2');
});
