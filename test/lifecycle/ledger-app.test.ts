/**
 * The ledger as the Raft driver's application: three real drivers over real LevelDB storage and
 * an in-memory transport apply a scripted governance history; every node reaches the same state
 * root as a direct sequential apply of the same events, refusals travel back as verdicts, and a
 * restarted node resumes from its persisted state without re-applying anything.
 */
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NodeId } from '../../raft/core/types.js';
import { ScriptedCluster } from '../../ledger/scenario.js';
import { encodeEvent, type LedgerEvent } from '../../ledger/events.js';
import { stateRoot } from '../../ledger/state.js';
import { toHex } from '../../ledger/encoding.js';
import { LedgerApp, decodeLedgerCommand, decodeVerdict, encodeLedgerCommand, encodeVerdict, verdictOf } from '../../node/ledger-app.js';
import { Hub, until } from '../../node/lifecycle/local-cluster.js';
import { ids, restartLedgerNode, startLedgerNode, stopLedgerNode, type LedgerNode as N } from './ledger-nodes.js';
import { rid } from '../../ledger/scenario.js';

const startNode = (hub: Hub, id: NodeId, dir: string): Promise<N> => startLedgerNode(hub, id, dir);

t.test('the command envelope carries the proposer stamp and the event bytes unchanged', async (t) => {
  const ev = new Uint8Array([1, 2, 3]);
  const d = decodeLedgerCommand(encodeLedgerCommand(1_700_000_000_123, ev));
  t.same(d && { stampMs: d.stampMs, event: [...d.event] }, { stampMs: 1_700_000_000_123, event: [1, 2, 3] });
  t.equal(decodeLedgerCommand(new Uint8Array([9, 9])), null, 'anything else is not an envelope');
});

t.test('three drivers applying a governance history reach the state root of a direct apply; restart applies nothing twice', async (t) => {
  const hub = new Hub();
  const nodes: N[] = [];
  for (const id of ids) {
    const dir = await mkdtemp(join(tmpdir(), `custody-ledger-app-${id}-`));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    nodes.push(await startNode(hub, id, dir));
  }
  t.teardown(async () => {
    for (const n of nodes) if (hub.drivers.get(n.id) === n.driver) await stopLedgerNode(hub, n);
  });

  // The reference: the same events applied directly, at the stamps the proposer will use.
  const script = new ScriptedCluster({ label: 'ledger-app' });
  script.genesis();
  script.createKey('k1');
  const act = script.act('k1');
  script.submit('op-1', act);
  script.submit('op-1', { ...act, amount: 2n }); // same idempotency key, other content: refused
  script.issuePermit('op-1');

  const leader = await until('a leader', () => nodes.find((n) => n.driver.isLeader));
  const verdicts = [];
  for (const [i, entry] of script.log.entries()) {
    const o = await leader.driver.propose(`script-${i}`, 1, encodeLedgerCommand(entry.stampMs, entry.event), 30_000);
    t.ok(o.ok, `entry ${i} committed`);
    if (o.ok) verdicts.push(decodeVerdict(o.result));
  }
  t.same(verdicts.map((v) => v.ok), script.results.map((r) => r.ok), 'each verdict is the ledger\'s own');
  const refused = verdicts.find((v) => !v.ok);
  t.equal(refused?.reason, 'REPLAY_OR_CONFLICT', 'a refusal travels back with its reason code');
  // The permit id binds the Raft index of its entry, so execution names the replicated permit.
  const permitId = leader.app.state.cluster?.ops[rid('op-1')]?.permitId as Uint8Array;
  // The signing set goes through the script too, so the script can sign over it (its own permit
  // differs, the list, message and group key do not).
  const commitments = script.signingSet('op-1');
  script.fixSigningSet('op-1', { commitments });
  const signatures = script.signatures('op-1');
  const tail: LedgerEvent[] = [
    { type: 'ActSigningSetFixed', opId: rid('op-1'), permitId, commitments, ...script.proposer() },
    { type: 'ActExecuted', opId: rid('op-1'), permitId, signatures, ...script.proposer() },
    { type: 'ActPublished', opId: rid('op-1'), ...script.proposer() },
  ];
  for (const [i, ev] of tail.entries()) {
    const o = await leader.driver.propose(`tail-${i}`, 1, encodeLedgerCommand(script.nowMs + i, encodeEvent(script.signed(ev))), 30_000);
    t.ok(o.ok && decodeVerdict(o.result).ok, `${ev.type} applied`);
  }
  t.equal(leader.app.state.cluster?.ops[rid('op-1')]?.state, 'Published');

  await until('all nodes applied everything', () => nodes.every((n) => n.driver.status().appliedIndex === leader.driver.status().appliedIndex));
  const roots = new Set(nodes.map((n) => n.app.root()));
  t.equal(roots.size, 1, 'one state root on every node');
  // Raft indexes differ from the script's (the leader's no-op, the bootstrap), so compare the
  // parts of the state that do not embed the index: the journal and the keys.
  const s = leader.app.state;
  t.same(Object.keys(s.cluster?.ops ?? {}), Object.keys(script.state.cluster?.ops ?? {}));
  t.equal(s.cluster?.ops[rid('op-1')]?.state, 'Published');
  t.equal(s.height, script.state.height + 2, 'every accepted event joined the hash chain');
  t.equal(leader.app.root(), toHex(stateRoot(s)));

  // Restart a follower: its state and applied index come back from the same batch.
  const again = await restartLedgerNode(t, hub, nodes, nodes.find((n) => n !== leader) as N, startNode);
  t.same(again.app.decisionsAfter(0).map((d) => d.index), leader.app.decisionsAfter(0).map((d) => d.index), 'the applied governance decisions are restored too');
  t.equal(leader.app.decisionsAfter(0).length, 2, 'DkgAuthorized and KeyActivated are kept for the kernels');
  const late = await leader.driver.propose('late', 1, encodeLedgerCommand(script.nowMs, encodeEvent(script.signed({ type: 'ActSettled', opId: rid('op-1'), confirmation: 'tx-1', ...script.proposer() }))), 30_000);
  t.ok(late.ok && decodeVerdict(late.result).ok, 'a later entry applies');
  await until('the restarted node converges', () => again.app.root() === leader.app.root() && again.app.state.cluster?.ops[rid('op-1')]?.state === 'Settled');
  t.equal(again.app.root(), leader.app.root(), 'the restarted node converged to the leader\'s state root');
});

t.test('a command that is not an envelope is refused identically by every node and still advances the ledger', async (t) => {
  const app = new LedgerApp();
  const r = app.apply(5, new Uint8Array([0xff, 0x00]));
  t.equal(decodeVerdict(r.result).reason, 'PAYLOAD_REJECTED');
  t.equal(app.state.index, 1, 'the ledger index advanced (the ledger counts its own entries)');
  app.apply(5, new Uint8Array([0xfe]));
  t.equal(app.state.index, 2, 'two commands carried by one Raft entry get two ledger indexes');
  const copy = new LedgerApp();
  copy.restore(await app.snapshot());
  t.equal(copy.root(), app.root(), 'snapshot and restore keep the root');
  t.throws(() => copy.restore(new Uint8Array([1, 2, 3])), { name: 'CustodyError' }, 'a damaged snapshot is refused');
  t.equal(r.writes.length, 1, 'the state is persisted with the entry');
});

t.test('the verdict a proposer receives names the policy rule that admitted or denied an act, and only that of the rule engine', async (t) => {
  const s = new ScriptedCluster({ label: 'verdict-rule' });
  s.genesis();
  for (const r of s.createKey('k1')) if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  const small = decodeVerdict(encodeVerdict(verdictOf(s.submit('small', s.act('k1')))));
  t.match(small, { ok: true, opState: 'Admitted', rule: 'sol-small' }, 'admitted: the rule travels with the verdict');
  const held = verdictOf(s.submit('held', s.act('k1', { amount: 50_000n })));
  t.match(held, { ok: false, reason: 'QUORUM_NOT_MET', applied: true, rule: 'sol-approved' }, 'denied for want of approvals: the rule that holds it');
  const nowhere = verdictOf(s.submit('nowhere', s.act('k1', { destination: 'bc1-unknown' })));
  t.match(nowhere, { ok: false, reason: 'POLICY_NO_RULE' });
  t.notOk('rule' in nowhere, 'default deny names no rule');
  const frozen = verdictOf(s.decide({ kind: 'EmergencyFreeze', reason: 'drill' }, [s.approvers[2]!]));
  t.notOk('rule' in frozen, 'a decision carries no rule');
});
