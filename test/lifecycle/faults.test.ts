/**
 * Denials and faults of the lifecycle, end to end through the admin CLI and API:
 *   - frozen cluster, stale epoch, fenced node, publication denied: each refusal carries its
 *     reason code to the CLI (exit 3, `REASON: detail`);
 *   - a signer that does not answer: REMOTE_TIMEOUT, another signer subset, one signature;
 *   - a signer of the fixed set that does not answer: the act aborts, never retried under its permit;
 *   - the leader dies mid-act: the next leader resumes from the ledger and completes the act once;
 *     in the window after the shares and before ActExecuted it re-asks the fixed set and executes
 *     the byte-identical signature; a fixed set with a dead member aborts, never replaced (every
 *     share any kernel produced is recorded and checked);
 *   - the key retired under an act waiting for its permit or its signing: both end KEY_NOT_ACTIVE.
 * Kernels are the in-memory twins here (kernel-twin.ts), so the faults are injected exactly.
 */
import t, { type Test } from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromHex, toHex } from '../../ledger/encoding.js';
import { CustodyError } from '../../proto/errors.js';
import { suiteOf } from '../../kernel/suites.js';
import { keys, publicFromBytes } from '../../node/lifecycle/participant.js';
import { signStatement } from '../../ledger/events.js';
import type { SigningCommitment } from '../../kernel/wire.js';
import type { CoordinatorPoint } from '../../node/lifecycle/coordinator.js';
import type { ParticipantPort } from '../../node/lifecycle/ports.js';
import { until } from '../../node/lifecycle/local-cluster.js';
import { startHarness, waitAct, reasonOfCall, type Harness, actTx, rid, submitAs } from './harness.js';

/** Every signature share handed out, keyed by act and by commitment list (one signing set). */
class ShareLog {
  /** opId -> list -> identifier -> every share (hex) handed out for it, one entry per answer. */
  readonly shares = new Map<string, Map<string, Map<string, string[]>>>();
  readonly lists = new Map<string, readonly SigningCommitment[]>();
  record(opId: string, list: readonly SigningCommitment[], identifier: string, share: Uint8Array): void {
    const setKey = list.map((c) => `${c.identifier}:${toHex(c.hiding)}`).join('|');
    this.lists.set(setKey, list);
    const byOp = this.shares.get(opId) ?? new Map<string, Map<string, string[]>>();
    const signers = byOp.get(setKey) ?? new Map<string, string[]>();
    signers.set(identifier, [...(signers.get(identifier) ?? []), toHex(share)]);
    byOp.set(setKey, signers);
    this.shares.set(opId, byOp);
  }
  /** Signing sets of the act that gathered `t` shares: each could yield one signature. */
  completeSets(opId: string, threshold: number): number {
    return [...(this.shares.get(opId)?.values() ?? [])].filter((s) => s.size >= threshold).length;
  }
  /** Distinct share values per signer, over every set of the act. */
  distinctShares(opId: string): Map<string, Set<string>> {
    const out = new Map<string, Set<string>>();
    for (const signers of this.shares.get(opId)?.values() ?? []) {
      for (const [id, list] of signers) out.set(id, new Set([...(out.get(id) ?? []), ...list]));
    }
    return out;
  }
}

interface Faults {
  /** Ops whose first commitment request (whoever gets it) never answers. */
  hangFirstCommit: Set<string>;
  firstCommitSeen: Set<string>;
  /** Ops for which every sign request never answers. */
  hangSign: Set<string>;
  /** Per op: a node whose participant refuses to commit (it is left out of the signing set). */
  noCommit: Map<string, () => string | undefined>;
  /** Per op and node: how many more commitment requests fail as an unreachable peer's do (a node still starting). */
  unreachableCommits: Map<string, Map<string, number>>;
}

function wrap(p: ParticipantPort, log: ShareLog, f: Faults): ParticipantPort {
  return {
    nodeId: p.nodeId,
    commit(opId) {
      if (f.hangFirstCommit.has(opId) && !f.firstCommitSeen.has(opId)) {
        f.firstCommitSeen.add(opId);
        return new Promise(() => undefined);
      }
      if (f.noCommit.get(opId)?.() === p.nodeId) return Promise.reject(new CustodyError('REMOTE_TIMEOUT', `${p.nodeId} does not commit to ${opId} (test fault)`));
      const left = f.unreachableCommits.get(opId)?.get(p.nodeId) ?? 0;
      if (left > 0) {
        f.unreachableCommits.get(opId)?.set(p.nodeId, left - 1);
        return Promise.reject(new CustodyError('REMOTE_TIMEOUT', `unavailable: No connection established (connect ECONNREFUSED to ${p.nodeId}; test fault)`));
      }
      return p.commit(opId);
    },
    async sign(opId, lists, counters) {
      if (f.hangSign.has(opId)) return new Promise(() => undefined);
      const r = await p.sign(opId, lists, counters);
      // A Solana act signs one message: its one list and share are what the log compares.
      log.record(opId, lists[0] as readonly SigningCommitment[], r.identifier, r.shares[0] as Uint8Array);
      return r;
    },
  };
}

async function setup(t: Test, point?: (node: string, p: CoordinatorPoint, opId: string) => void | Promise<void>): Promise<{ h: Harness; log: ShareLog; faults: Faults }> {
  const log = new ShareLog();
  const faults: Faults = { hangFirstCommit: new Set(), firstCommitSeen: new Set(), hangSign: new Set(), noCommit: new Map(), unreachableCommits: new Map() };
  const h = await startHarness({ kernels: 'twin', remoteTimeoutMs: 1_500, signingSetWaitMs: 4_000, wrapParticipant: (p) => wrap(p, log, faults), ...(point ? { point } : {}) });
  t.teardown(() => h.close());
  await h.createKey('k', 'ed25519');
  harnessOf = h;
  return { h, log, faults };
}

/** `custody admin act submit` of a Solana transfer of `amount` lamports to the treasury, its message in a file. */
let harnessOf: Harness | null = null;
const act = async (opId: string, amount = '1000'): Promise<string[]> => {
  const h = harnessOf as Harness;
  const x = await actTx(h.client('cara'), 'k', amount, 'sol-treasury');
  const file = join(h.dir, `${opId}.solana`);
  writeFileSync(file, x.tx);
  return ['act', 'submit', '--op', rid(opId), '--key-id', 'k', '--solana', file, '--custodian-key', join(h.dir, 'custodians', 'cara.key')];
};

t.test('denials carry their reason codes to the CLI', { timeout: 600_000 }, async (t) => {
  const { h, log } = await setup(t);

  t.test('stale epoch: an act naming a key epoch that is not the active one is denied STALE_EPOCH', async (t) => {
    const r = await h.cli('cara', [...await act(rid('stale-1')), '--key-epoch', '1']);
    t.equal(r.code, 3);
    t.match(r.stderr, new RegExp(`^STALE_EPOCH: key k is at epoch 0, not 1 \\(act ${rid('stale-1')} journaled Denied; its denial entered in the log at index \\d+\\)`, 'm'));
    const v = await h.client('audra').showAct(rid('stale-1'));
    t.equal(v.state, 'Denied', 'the denial is journaled');
    t.equal(v.reason, 'STALE_EPOCH');
  });

  t.test('approvals: an act a REQUIRE_APPROVAL rule holds is denied without them, and released at the gate by the approval it was admitted with', async (t) => {
    const r = await h.cli('cara', await act(rid('big-0'), '8000'));
    t.equal(r.code, 3);
    t.match(r.stderr, /^QUORUM_NOT_MET: rule sol-approved needs 2 approvals of approvers/m, 'the refusal names the rule');
    const cara = h.client('cara');
    const big = { keyId: 'k', ...(await actTx(cara, 'k', '8000', 'sol-treasury')) };
    const held = await cara.proposeDecision(JSON.stringify({ kind: 'ActApproved', opId: rid('big-1'), act: { keyId: big.keyId, kind: big.kind, tx: toHex(big.tx) } }));
    await h.approve(held.cid, ['approver-1', 'approver-2']);
    await submitAs(cara, h.custodian, { opId: 'big-1', ...big, approvalCid: held.cid });
    t.equal((await waitAct(cara, rid('big-1'), 'Published')).state, 'Published', 'admitted and released by its approval');
    const shown = await h.cli('audra', ['act', 'show', '--op', rid('big-1')]);
    t.match(shown.stdout, /policy \(REQUIRE_APPROVAL\) rule sol-approved: \d+ of \d+ approvals/, 'act show names the rule that admitted it');
    const denied = await h.cli('audra', ['act', 'show', '--op', rid('big-0')]);
    t.match(denied.stdout, /QUORUM_NOT_MET[^]*policy \(REQUIRE_APPROVAL\) rule sol-approved needs/, 'and the rule that denied the act without approvals');
  });

  t.test('frozen cluster: admission is denied FROZEN until an unfreeze decision', async (t) => {
    const freeze = await h.client('approver-3').proposeDecision('{"kind":"EmergencyFreeze","reason":"incident drill"}');
    await h.approve(freeze.cid, ['approver-3']); // the security role freezes alone (freezeThreshold 1)
    const r = await h.cli('cara', await act(rid('frozen-1')));
    t.equal(r.code, 3);
    t.match(r.stderr, /^FROZEN: admission refused: frozen since index \d+/m);
    const s = await h.cli('audra', ['status']);
    t.match(s.stdout, /FROZEN: incident drill/);
    const un = await h.client('approver-1').proposeDecision('{"kind":"Unfreeze"}');
    await h.approve(un.cid, ['approver-1', 'approver-2']);
    const ok = await h.cli('cara', await act(rid('after-thaw')));
    t.equal(ok.code, 0, ok.stderr);
    t.equal((await waitAct(h.client('cara'), rid('after-thaw'), 'Published')).state, 'Published');
  });

  t.test('fenced node: one node\'s report fences nothing; with a majority of voters\' reports its proposals are refused SPLIT_BRAIN_FENCED and its kernel takes no part', async (t) => {
    const c = h.cluster;
    const n3 = c.node('n3');
    const passport = n3.ledger.state().cluster!.nodes['n3']!.passport;
    const report = (by: string) => signStatement({ clusterId: c.clusterId, nodeId: by, kind: 'FencingRecord', slot: { nodeId: 'n3', passport }, content: { reason: 'two leaders seen for one term' } }, c.node(by).identitySecretKey);
    const first = await c.node('n2').ledger.propose({ type: 'FencingRecord', statement: report('n2') });
    t.match(first, { ok: false, reason: 'FENCE_PENDING' }, 'one node\'s report is recorded, and fences nothing');
    t.equal(n3.ledger.state().cluster?.nodes['n3']?.status, 'active');
    const st = await h.cli('audra', ['status'], 'n2');
    t.match(st.stdout, /node n3: active, passport n3-p1; fencing reported by n2 \(1 of 2 voters\)/, 'the pending report shows in the status');
    const v = await c.node('n1').ledger.propose({ type: 'FencingRecord', statement: report('n1') });
    t.ok(v.ok, `a second voter's report fences: ${v.detail}`);
    await until('n3 sees itself fenced', () => n3.ledger.state().cluster?.nodes['n3']?.status === 'fenced');
    const r = await h.cli('cara', await act(rid('via-fenced')), 'n3');
    t.equal(r.code, 3);
    t.match(r.stderr, /^SPLIT_BRAIN_FENCED: passport n3-p1 of n3 is fenced/m);
    t.equal(await reasonOfCall(n3.participant.commit(rid('via-fenced'))), 'UNKNOWN_SESSION', 'no such act anywhere');
    const ok = await h.cli('cara', await act(rid('without-n3')), 'n1');
    t.equal(ok.code, 0, ok.stderr);
    const done = await waitAct(h.client('cara'), rid('without-n3'), 'Published');
    t.equal(done.state, 'Published', 'the two unfenced kernels sign');
    t.ok(done.notes.some((n) => n.reason === 'SPLIT_BRAIN_FENCED' && /n3 excluded: fenced/.test(n.text)), 'the coordinator excluded n3');
    t.notOk(done.notes.some((n) => /from n3/.test(n.text)), 'no commitment or share came from n3');
    t.equal(log.completeSets(rid('without-n3'), 2), 1, 'one signing set');
  });
});

t.test('a signer that does not answer: REMOTE_TIMEOUT, another subset, exactly one signature', { timeout: 600_000 }, async (t) => {
  const { h, log, faults } = await setup(t);
  faults.hangFirstCommit.add(rid('slow-1'));
  const r = await h.cli('cara', await act(rid('slow-1')));
  t.equal(r.code, 0, r.stderr);
  const v = await waitAct(h.client('cara'), rid('slow-1'), 'Published');
  t.equal(v.state, 'Published');
  t.ok(v.notes.some((n) => n.reason === 'REMOTE_TIMEOUT' && /asking another signer/.test(n.text)), 'the timeout is noted with its reason code');
  t.equal(log.completeSets(rid('slow-1'), 2), 1, 'exactly one signing set completed');
});

t.test('two signers unreachable for their first requests (nodes still starting): they are asked again and the act is signed, not aborted', { timeout: 600_000 }, async (t) => {
  const { h, log, faults } = await setup(t);
  // Every node but one refuses its first two commitment requests the way a peer whose gRPC
  // channel is still connecting does; one pass over the signers finds only one of the two needed.
  const ids = h.cluster.nodes.map((n) => n.id);
  faults.unreachableCommits.set(rid('restart-1'), new Map(ids.slice(1).map((id) => [id, 2])));
  const r = await h.cli('cara', await act(rid('restart-1')));
  t.equal(r.code, 0, r.stderr);
  const v = await waitAct(h.client('cara'), rid('restart-1'), 'Published');
  t.equal(v.state, 'Published', `signed once the signers answered (${v.reason})`);
  t.ok(v.notes.some((n) => n.reason === 'REMOTE_TIMEOUT' && /and it again shortly/.test(n.text)), 'the first refusal is noted, with the retry');
  t.ok(v.notes.some((n) => /nonce commitment from .* \(asked again\)/.test(n.text)), 'a signer that refused at first committed when asked again');
  t.equal(log.completeSets(rid('restart-1'), 2), 1, 'exactly one signing set completed');
});

t.test('a signer unreachable for longer than the wait: the act aborts REMOTE_TIMEOUT before any signing set exists', { timeout: 600_000 }, async (t) => {
  const { h, log, faults } = await setup(t);
  const ids = h.cluster.nodes.map((n) => n.id);
  faults.unreachableCommits.set(rid('gone-1'), new Map(ids.slice(1).map((id) => [id, 1_000_000])));
  await h.cli('cara', await act(rid('gone-1')));
  const v = await waitAct(h.client('cara'), rid('gone-1'), 'Aborted');
  t.equal(v.state, 'Aborted');
  t.equal(v.reason, 'REMOTE_TIMEOUT', 'aborted REMOTE_TIMEOUT after the signing-set wait');
  t.ok(v.notes.some((n) => /only 1 of 2 signers answered/.test(n.text)), 'the abort says how many answered');
  t.equal(log.completeSets(rid('gone-1'), 2), 0, 'no signing set completed');
});

t.test('a signer of the fixed set that does not answer: the act aborts REMOTE_TIMEOUT and the permit is spent', { timeout: 600_000 }, async (t) => {
  const { h, log, faults } = await setup(t);
  faults.hangSign.add(rid('stuck-1'));
  await h.cli('cara', await act(rid('stuck-1')));
  const v = await waitAct(h.client('cara'), rid('stuck-1'), 'Aborted');
  t.equal(v.state, 'Aborted');
  t.equal(v.reason, 'REMOTE_TIMEOUT');
  t.equal(v.signature, '', 'no signature recorded');
  t.equal(log.completeSets(rid('stuck-1'), 2), 0, 'no signing set completed');
  const watch = await h.cli('cara', ['act', 'watch', '--op', rid('stuck-1')]);
  t.equal(watch.code, 3, 'watching an aborted act exits non-zero');
  t.match(watch.stderr, new RegExp(`^REMOTE_TIMEOUT: act ${rid('stuck-1')} ended Aborted`, 'm'));
});

/**
 * The leader dies at a step of the act, its own node kept out of the signing set (it refuses to
 * commit), so the two live nodes can always finish: whatever the step, the act completes once.
 */
for (const at of ['act:permit-issued', 'act:commitments', 'act:signing-set-fixed', 'act:shares'] as const) {
  t.test(`the leader dies at ${at}: the next leader resumes from the ledger and completes the act once, one signature for the permit`, { timeout: 600_000 }, async (t) => {
    let crashed: string | null = null;
    let h: Harness | null = null;
    const { h: hh, log, faults } = await setup(t, async (node, p, opId) => {
      if (p !== at || opId !== rid('crash-1') || crashed !== null || h === null) return;
      crashed = node;
      await h.cluster.crash(node);
      await new Promise(() => undefined); // a dead process does not continue
    });
    h = hh;
    faults.noCommit.set(rid('crash-1'), () => (crashed === null ? h?.cluster.leader()?.id : undefined));
    const submit = await h.cli('cara', await act(rid('crash-1')), 'n1');
    t.equal(submit.code, 0, submit.stderr);
    await until('the leader crashed', () => crashed !== null, 60_000);
    const live = h.cluster.nodes.find((n) => n.up) as (typeof h.cluster.nodes)[number];
    const end = await waitAct(h.client('audra', live.id), rid('crash-1'), 'Published');
    const op = live.ledger.state().cluster!.ops[rid('crash-1')]!;
    t.equal(end.state, 'Published', 'completed by the new leader');
    t.equal(op.history.filter((s) => s.state === 'Executed').length, 1, 'executed exactly once');
    t.equal(log.completeSets(rid('crash-1'), 2), 1, 'one signing set ever gathered shares: one possible signature');
    t.notOk(op.signingSet!.commitments.some((m) => m.nodeId === crashed), 'the dead leader was not in the set');
    for (const [id, values] of log.distinctShares(rid('crash-1'))) t.equal(values.size, 1, `signer ${id.slice(0, 4)}: one share value however often asked`);
    t.notOk(h.cluster.nodes.find((n) => n.id === crashed)?.up, `${String(crashed)} is down`);
  });
}

t.test('the leader dies after the kernels returned their shares, before ActExecuted: the next leader re-asks the fixed set and executes the byte-identical signature', { timeout: 600_000 }, async (t) => {
  let crashed: string | null = null;
  let h: Harness | null = null;
  let firstRound: Record<string, string> | null = null;
  const { h: hh, log, faults } = await setup(t, async (node, p, opId) => {
    if (p !== 'act:shares' || opId !== rid('window-1') || crashed !== null || h === null) return;
    // The shares are back at the coordinator and nothing is in the log yet: the dangerous window.
    firstRound = Object.fromEntries([...log.distinctShares(rid('window-1'))].map(([id, v]) => [id, [...v][0] as string]));
    crashed = node;
    await h.cluster.crash(node);
    await new Promise(() => undefined);
  });
  h = hh;
  faults.noCommit.set(rid('window-1'), () => (crashed === null ? h?.cluster.leader()?.id : undefined));
  t.equal((await h.cli('cara', await act(rid('window-1')), 'n1')).code, 0);
  await until('the leader crashed in the window', () => crashed !== null, 60_000);
  const live = h.cluster.nodes.find((n) => n.up) as (typeof h.cluster.nodes)[number];
  t.equal((await waitAct(h.client('audra', live.id), rid('window-1'), 'Published')).state, 'Published', 'the act completes');
  const op = live.ledger.state().cluster!.ops[rid('window-1')]!;
  t.equal(op.history.filter((s) => s.state === 'Executed').length, 1, 'executed exactly once');
  t.equal(log.completeSets(rid('window-1'), 2), 1, 'one signing set, asked twice');
  const [setKey, signers] = [...log.shares.get(rid('window-1'))!][0]!;
  t.same([...signers.values()].map((v) => v.length), [2, 2], 'each member of the fixed set answered the old and the new leader');
  const list = log.lists.get(setKey)!;
  t.same(list.map((c) => toHex(c.hiding)), op.signingSet!.commitments.map((m) => toHex(m.nonces[0]!.hiding)), 'the list signed is the one fixed in the ledger');
  for (const [id, values] of log.distinctShares(rid('window-1'))) t.same([...values], [firstRound![id]], `signer ${id.slice(0, 4)}: the resumed share is byte-identical`);
  // The signature the dead leader would have produced, from the shares it had gathered.
  const e = live.ledger.state().cluster!.keys['k']!.epochs['0']!;
  const pub = publicFromBytes((await h.cluster.exchange.get(keys.publicPackage('k', 0, e.participants[0]!)))!);
  const pkg = { signers: { min: pub.min, max: pub.max }, commitments: pub.commitments, verifyingShares: Object.fromEntries(pub.verifyingShares.map((v) => [v.identifier, v.point])) };
  const expected = suiteOf('ed25519').frost.aggregate(pkg as never, list as never, op.act.tx, Object.fromEntries(Object.entries(firstRound!).map(([id, hex]) => [id, fromHex(hex)])) as never);
  t.equal(toHex(op.signatures![0]!), toHex(expected), 'the executed signature is the one the first round\'s shares make');
});

t.test('the leader dies after the shares with its own node in the fixed set: after the wait the act aborts REMOTE_TIMEOUT, never a second set', { timeout: 600_000 }, async (t) => {
  let crashed: string | null = null;
  let h: Harness | null = null;
  const { h: hh, log, faults } = await setup(t, async (node, p, opId) => {
    if (p !== 'act:shares' || opId !== rid('crash-in') || crashed !== null || h === null) return;
    crashed = node;
    await h.cluster.crash(node);
    await new Promise(() => undefined);
  });
  h = hh;
  // The follower with the larger id does not commit: the set is the leader and the other follower.
  faults.noCommit.set(rid('crash-in'), () => {
    const leader = h?.cluster.leader()?.id;
    return crashed === null ? h?.cluster.nodes.map((n) => n.id).filter((id) => id !== leader).sort().pop() : undefined;
  });
  t.equal((await h.cli('cara', await act(rid('crash-in')), 'n1')).code, 0);
  await until('the leader crashed', () => crashed !== null, 60_000);
  const live = h.cluster.nodes.find((n) => n.up) as (typeof h.cluster.nodes)[number];
  const fixed = live.ledger.state().cluster!.ops[rid('crash-in')]!.signingSet;
  const end = await waitAct(h.client('audra', live.id), rid('crash-in'), 'Aborted');
  t.equal(end.state, 'Aborted');
  t.equal(end.reason, 'REMOTE_TIMEOUT');
  const op = live.ledger.state().cluster!.ops[rid('crash-in')]!;
  t.ok(op.signingSet!.commitments.some((m) => m.nodeId === crashed), 'the dead leader was in the fixed set');
  t.ok(fixed !== null, 'the set was fixed before the crash');
  t.same(op.signingSet, fixed, 'and never replaced');
  t.equal(op.signatures, null, 'no signature');
  t.equal(log.shares.get(rid('crash-in'))?.size ?? 0, 1, 'shares only ever over the one fixed list');
  t.ok(end.notes.some((n) => n.reason === 'REMOTE_TIMEOUT' && /fixed set/.test(n.text)), 'the abort names the fixed set');
});

t.test('concurrent acts on one key all complete, one signature each (a kernel consumes a key\'s nonces in order)', { timeout: 600_000 }, async (t) => {
  const { h, log } = await setup(t);
  const cara = h.client('cara');
  const ops = [rid('c-1'), rid('c-2'), rid('c-3'), rid('c-4')];
  await Promise.all(ops.map(async (op) => submitAs(cara, h.custodian, { opId: op, keyId: 'k', ...(await actTx(cara, 'k', '10', 'sol-treasury')) })));
  for (const op of ops) {
    const v = await waitAct(cara, op, 'Published');
    t.equal(v.state, 'Published', `${op} published`);
    t.equal(log.completeSets(op, 2), 1, `${op}: one signing set`);
  }
});

t.test('the key is retired while one act waits for its signing and another for its permit: both end KEY_NOT_ACTIVE, none is left open', { timeout: 600_000 }, async (t) => {
  // The coordinator is held right after the first act's permit (its pass waits at the point), so
  // the second act is admitted with no permit; the key is retired meanwhile.
  let release: () => void = () => undefined;
  const held = new Promise<void>((r) => (release = r));
  let armed = true;
  const { h } = await setup(t, async (_node, p, opId) => {
    if (armed && p === 'act:permit-issued' && opId === rid('retired-a')) {
      armed = false;
      await held;
    }
  });
  const cara = h.client('cara');
  await submitAs(cara, h.custodian, { opId: 'retired-a', keyId: 'k', ...(await actTx(cara, 'k', '10', 'sol-treasury')) });
  await until('retired-a has its permit', async () => (await cara.showAct(rid('retired-a'))).state === 'PendingRemote' || null, 60_000);
  await submitAs(cara, h.custodian, { opId: 'retired-b', keyId: 'k', ...(await actTx(cara, 'k', '10', 'sol-treasury')) });
  t.equal((await cara.showAct(rid('retired-b'))).state, 'Admitted', 'retired-b is admitted and has no permit yet');
  const d = await h.client('kim').proposeDecision(JSON.stringify({ kind: 'KeyRetired', keyId: 'k' }));
  await h.approve(d.cid, ['approver-1', 'approver-2']);
  t.equal((await h.client('audra').status()).keys.find((k) => k.id === 'k')?.status, 'retired', 'key k is retired');
  release();
  for (const op of ['retired-a', 'retired-b']) {
    const v = await waitAct(cara, op, 'Aborted', 60_000);
    t.same([v.state, v.reason], ['Aborted', 'KEY_NOT_ACTIVE'], `${op} ends Aborted KEY_NOT_ACTIVE`);
    t.same(v.signatures, [], `${op} has no signature`);
  }
});
