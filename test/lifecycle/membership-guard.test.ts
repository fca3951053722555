/**
 * Raft membership changes only from governance decisions, on ledger nodes (drivers, LedgerApps,
 * the node's guard: node/membership/guard.ts). A hostile daemon holding the leader's identity
 * sends honest followers raw appends carrying configuration changes no decision asked for: adding
 * an unknown node, removing an honest voter, promoting a learner. Each is refused
 * CONF_CHANGE_UNAUTHORIZED, no configuration changes, and the honest majority keeps committing;
 * the governed path (NodeAdded -> learner, NodeRemoved -> removal) still works.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { makeApproverKey, signDecision, type DecisionAction } from '../../ledger/decision.js';
import { decisionBodyFor } from '../../node/lifecycle/acts.js';
import { LocalCluster, type LocalNode } from '../../node/lifecycle/local-cluster.js';
import { governingDecision } from '../../node/membership/guard.js';
import { encodeConfChange } from '../../raft/core/confchange.js';
import { msg } from '../../raft/core/message.js';
import type { ConfChange, ConfChangeSingle } from '../../raft/core/types.js';
import { POLICY } from './harness.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, f: () => T | undefined | null | false, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const refusedCount = (n: LocalNode): number => n.driver.coreStats()?.confChangesRefused ?? 0;

/**
 * Sends `target` a raw append in the name of its leader `from`, carrying `cc` right after its last
 * entry, at a moment its whole log is applied (so the guard judges it at once). Returns once the
 * target's refusal count moved.
 */
async function attack(target: LocalNode, from: string, cc: ConfChange): Promise<void> {
  const before = refusedCount(target);
  const end = Date.now() + 60_000;
  while (refusedCount(target) === before) {
    if (Date.now() > end) throw new Error(`${target.id} never judged the change`);
    const s = target.driver.status();
    if (s.leader === from && s.appliedIndex === s.lastIndex && s.applied === s.lastIndex) {
      const prevTerm = target.storage.term(s.lastIndex);
      target.driver.receive(msg('app', from, target.id, s.term, { index: s.lastIndex, logTerm: prevTerm, commit: s.commit, entries: [{ term: s.term, index: s.lastIndex + 1, type: 'conf', data: encodeConfChange(cc) }] }));
    }
    await sleep(100);
  }
}

async function decide(leader: LocalNode, c: LocalCluster, action: DecisionAction): Promise<void> {
  const d = signDecision(decisionBodyFor(leader.ledger.state(), action, Date.now()), c.approvers.slice(0, 2));
  const v = await leader.ledger.propose({ type: 'GovernanceDecision', decision: d });
  if (!v.ok) throw new Error(`${action.kind} refused: ${v.reason}: ${v.detail}`);
}

/** The leader proposes `change` naming its decision; retried while the log before it is not applied. */
async function governedChange(c: LocalCluster, type: ConfChangeSingle['type'], node: string): Promise<void> {
  const end = Date.now() + 60_000;
  for (;;) {
    const leader = await c.waitLeader();
    const decision = governingDecision(leader.app.decisionsAfter(0), type, node);
    if (decision === null) throw new Error(`no decision for ${type} ${node}`);
    const r = await leader.driver.proposeConfChange({ changes: [{ type, node, decision }], transition: 'auto' });
    if (r.ok) return;
    if (r.reason === 'CONF_CHANGE_UNAUTHORIZED' || Date.now() > end) throw new Error(`${type} ${node}: ${r.reason}: ${r.detail}`);
    await sleep(100);
  }
}

t.test('hostile configuration changes are refused on honest replicas; the governed path and the honest majority keep working', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-confguard-'));
  const lines: string[] = [];
  const c = await LocalCluster.start({ dir, policy: POLICY, kernels: 'twin', log: (l) => lines.push(l) });
  t.teardown(async () => {
    await c.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await c.genesis();
  const voters = c.nodes.map((n) => n.id).sort();
  const confOf = (n: LocalNode) => n.driver.status().conf;

  // Governed: NodeAdded n9, then the leader adds it as a learner naming that decision.
  let leader = await c.waitLeader();
  await decide(leader, c, { kind: 'NodeAdded', node: { id: 'n9', identityKey: makeApproverKey('n9-identity').publicKey, passport: 'passport-n9' } });
  await governedChange(c, 'addLearner', 'n9');
  await until('n9 a learner everywhere', () => c.nodes.every((n) => confOf(n).learners.includes('n9')));
  t.pass('NodeAdded -> n9 joins as a learner on every node');

  // Attack 1: an unknown node added, sent to one follower in the leader's name.
  leader = await c.waitLeader();
  const [f1, f2] = c.nodes.filter((n) => n !== leader) as [LocalNode, LocalNode];
  await attack(f1, leader.id, { changes: [{ type: 'addLearner', node: 'evil' }], transition: 'auto' });
  t.notOk(f1.storage.entries(f1.storage.firstIndex(), f1.storage.lastIndex() + 1, Infinity).some((e) => e.type === 'conf' && new TextDecoder().decode(e.data).includes('evil')), `${f1.id} did not append it`);
  // Attack 2: an honest voter removed, sent to the other follower.
  await attack(f2, leader.id, { changes: [{ type: 'remove', node: f1.id }], transition: 'auto' });
  for (const n of [f1, f2]) {
    t.same(confOf(n).voters, voters, `${n.id}: voters unchanged`);
    t.same(confOf(n).learners, ['n9'], `${n.id}: learners unchanged`);
  }

  // Attack 3: a learner promoted with no decision, sent by whichever node leads now.
  // Both followers stopped following the leader that sent them those changes: the honest majority
  // elects a leader of a later term.
  const term = leader.driver.status().term;
  const [next, f3] = await until('a leader of a later term with a follower', () => {
    const l = c.leader();
    if (l === undefined || l.driver.status().term <= term) return null;
    const f = c.nodes.find((n) => n !== l && n.driver.status().leader === l.id && n.driver.status().term === l.driver.status().term);
    return f === undefined ? null : ([l, f] as const);
  });
  t.ok(next.driver.status().term > term, `${next.id} leads in term ${next.driver.status().term}, after term ${term}`);
  await attack(f3, next.id, { changes: [{ type: 'addVoter', node: 'n9' }], transition: 'auto' });
  t.same(confOf(f3).voters, voters, `${f3.id}: n9 not promoted`);
  t.ok(lines.filter((l) => l.includes('CONF_CHANGE_UNAUTHORIZED')).length >= 3, 'every refusal is logged with CONF_CHANGE_UNAUTHORIZED');

  // The honest majority keeps working: a decision commits and the governed removal applies everywhere.
  leader = await c.waitLeader();
  await decide(leader, c, { kind: 'NodeRemoved', nodeId: 'n9' });
  await governedChange(c, 'remove', 'n9');
  await until('n9 removed on the leader and the node that follows it', () => c.nodes.filter((n) => n !== f3).every((n) => !confOf(n).learners.includes('n9')), 90_000);
  // The node that refused the change follows no leader of that term; a leader transfer (the
  // operator's `custody admin leader transfer`) starts a term it follows again, and it catches up.
  leader = await c.waitLeader();
  const to = c.nodes.find((n) => n !== leader && n !== f3) as LocalNode;
  await until(`leadership handed to ${to.id}`, () => {
    if (c.leader() === to) return true;
    c.leader()?.driver.transferLeadership(to.id);
    return false;
  }, 60_000);
  await until('n9 removed everywhere', () => c.nodes.every((n) => !confOf(n).learners.includes('n9')), 90_000);
  for (const n of c.nodes) {
    t.same(confOf(n).voters, voters, `${n.id}: the voters are the genesis voters`);
    t.notOk(confOf(n).learners.includes('evil'), `${n.id}: no unknown node`);
  }
  t.pass('NodeRemoved -> n9 removed on every node after the attacks');
});
