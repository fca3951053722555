/**
 * Fencing (ledger/apply.ts fencing, NodeFenced decisions), tested as an attacker: a host holding
 * one node's identity key tries to fence the others with reports; an operator without approver
 * signatures tries to fence by decision. One report fences nobody (FENCE_PENDING); a majority of
 * distinct voters in good standing does; an approver-signed NodeFenced at the freeze quorum does.
 */
import t, { type Test } from 'tap';
import fc from 'fast-check';
import { ScriptedCluster, checkInvariants, restore, snapshot, stateRoot, makeApproverKey, seedOf, signStatement, type ApplyResult } from '../../ledger/index.js';
import { fenceMajority } from '../../ledger/apply.js';

function ok(t: Test, r: ApplyResult, what?: string): void {
  t.ok(r.ok, what ?? (r.ok ? r.effect : `${r.reason}: ${r.detail}`));
}

function withKey(o: ConstructorParameters<typeof ScriptedCluster>[0] = {}): ScriptedCluster {
  const s = new ScriptedCluster(o);
  s.genesis();
  for (const r of s.createKey('k1')) if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  return s;
}

const statusOf = (s: ScriptedCluster, id: string) => s.state.cluster!.nodes[id]!.status;
const pending = (s: ScriptedCluster) => s.state.cluster!.fenceReports ?? [];

t.test('one node\'s reports fence nobody: recorded FENCE_PENDING, visible in the state, and the honest majority keeps signing', async (t) => {
  const s = withKey();
  t.equal(fenceMajority(s.state.cluster!), 2, 'three voters: two reports fence');
  // A hostile host with node-0's identity key reports both other nodes.
  t.match(s.fence('node-0', 'node-1', undefined, 'forged: two leaders'), { ok: false, applied: true, reason: 'FENCE_PENDING' });
  t.match(s.fence('node-0', 'node-2', undefined, 'forged: rollback'), { ok: false, applied: true, reason: 'FENCE_PENDING' });
  t.equal(statusOf(s, 'node-1'), 'active');
  t.equal(statusOf(s, 'node-2'), 'active');
  t.same(pending(s).map((r) => [r.nodeId, r.passport, r.reporters]), [['node-1', 'passport-1-0', ['node-0']], ['node-2', 'passport-2-0', ['node-0']]], 'both reports pending, one reporter each');
  t.same(checkInvariants(s.state), []);
  // node-1 and node-2 still propose and sign.
  ok(t, s.submit('op-1', s.act('k1'), null, 'node-1'));
  ok(t, s.issuePermit('op-1', 'node-2'));
  ok(t, s.fixSigningSet('op-1', { commitments: s.signingSet('op-1', ['node-1', 'node-2']), nodeId: 'node-2' }));
  ok(t, s.execute('op-1', { nodeId: 'node-2', fixSet: false }));
  ok(t, s.publish('op-1', 'node-1'));
});

t.test('reports of two distinct voters fence; the same reporter twice counts once', async (t) => {
  const s = withKey();
  t.match(s.fence('node-0', 'node-2', undefined, 'two leaders in term 4'), { ok: false, reason: 'FENCE_PENDING' });
  const again = s.fence('node-0', 'node-2', undefined, 'state roots differ at index 90');
  t.match(again, { ok: false, applied: false, replayed: true, reason: 'FENCE_PENDING' }, 'a second report by the same reporter is a replay');
  t.equal(statusOf(s, 'node-2'), 'active', 'one reporter, however often, fences nobody');
  const r = s.fence('node-1', 'node-2', undefined, 'two leaders in term 4');
  ok(t, r);
  t.match(r, { ok: true, effect: /fenced: reported by node-0, node-1 \(2 of 2 voters\)/ });
  t.equal(statusOf(s, 'node-2'), 'fenced');
  t.same(pending(s), [], 'the pending report is gone once it fenced');
  t.match(s.submit('op-2', s.act('k1'), null, 'node-2'), { ok: false, reason: 'SPLIT_BRAIN_FENCED' });
  t.match(s.fence('node-2', 'node-0'), { ok: false, reason: 'SPLIT_BRAIN_FENCED' }, 'a fenced node reports nothing');
  t.match(s.fence('node-0', 'node-2'), { ok: true, replayed: true }, 'a report of an already fenced passport is a replay');
});

t.test('a report by a removed node, a node off the roster, an equivocating node or a forged signature is not counted', async (t) => {
  const s = withKey({ nodes: 5 });
  t.equal(fenceMajority(s.state.cluster!), 3);
  t.match(s.fence('node-3', 'node-0'), { ok: false, reason: 'FENCE_PENDING' });
  t.match(s.fence('node-4', 'node-0'), { ok: false, reason: 'FENCE_PENDING' });
  // node-4 is removed: its earlier report no longer counts, and it reports nothing more.
  ok(t, s.decide({ kind: 'NodeRemoved', nodeId: 'node-4' }));
  t.equal(fenceMajority(s.state.cluster!), 3, 'four voters: three reports fence');
  t.match(s.fence('node-4', 'node-0'), { ok: false, reason: 'UNKNOWN_NODE' });
  const r = s.fence('node-2', 'node-0');
  t.match(r, { ok: false, reason: 'FENCE_PENDING', detail: /node-2, node-3: 2 of 3/ }, 'the removed reporter is not counted');
  t.equal(statusOf(s, 'node-0'), 'active');
  // A node id the roster does not hold.
  const stranger = signStatement({ clusterId: s.clusterId, nodeId: 'node-9', kind: 'FencingRecord', slot: { nodeId: 'node-0', passport: 'passport-0-0' }, content: { reason: 'x' } }, seedOf('stranger'));
  t.match(s.entry({ type: 'FencingRecord', statement: stranger }).result, { ok: false, reason: 'UNKNOWN_NODE' });
  // node-1's name, node-3's key: one host cannot speak for two voters.
  const forged = signStatement({ clusterId: s.clusterId, nodeId: 'node-1', kind: 'FencingRecord', slot: { nodeId: 'node-0', passport: 'passport-0-0' }, content: { reason: 'x' } }, s.node('node-3').secretKey);
  t.match(s.entry({ type: 'FencingRecord', statement: forged }).result, { ok: false, reason: 'SIGNATURE_INVALID' });
  // An equivocating node's reports are refused, and its pending one stops counting.
  const x = s.statement('node-3', 'RaftVote', { term: 7 }, { votedFor: 'node-1' });
  const y = s.statement('node-3', 'RaftVote', { term: 7 }, { votedFor: 'node-2' });
  ok(t, s.entry({ type: 'EquivocationEvidence', first: x, second: y }).result);
  t.match(s.fence('node-3', 'node-1'), { ok: false, reason: 'EQUIVOCATION' });
  t.match(s.fence('node-1', 'node-0'), { ok: false, reason: 'FENCE_PENDING', detail: /node-1, node-2: 2 of 3/ }, 'node-3 no longer counts');
  t.equal(statusOf(s, 'node-0'), 'active', 'no majority of voters in good standing');
  t.same(checkInvariants(s.state), []);
});

t.test('when a removal lowers the majority, a reporter repeating its report fences with the reports already counted', async (t) => {
  const s = withKey({ nodes: 4 });
  t.match(s.fence('node-0', 'node-3'), { reason: 'FENCE_PENDING' });
  t.match(s.fence('node-1', 'node-3'), { reason: 'FENCE_PENDING', detail: /2 of 3/ });
  t.match(s.fence('node-1', 'node-3'), { ok: false, replayed: true, reason: 'FENCE_PENDING' }, 'repeating changes nothing while two are not a majority');
  ok(t, s.decide({ kind: 'NodeRemoved', nodeId: 'node-2' }));
  t.equal(statusOf(s, 'node-3'), 'active', 'a removal fences nobody by itself');
  const r = s.fence('node-1', 'node-3');
  ok(t, r);
  t.equal(statusOf(s, 'node-3'), 'fenced', 'two of three voters reported it');
});

t.test('a report names the target\'s current passport; a rebind drops the pending report', async (t) => {
  const s = withKey();
  t.match(s.fence('node-0', 'node-1', 'passport-invented'), { ok: false, applied: false, reason: 'BINDING_MISMATCH' });
  t.same(pending(s), [], 'an invented passport leaves nothing in the state');
  t.match(s.fence('node-0', 'node-1'), { ok: false, reason: 'FENCE_PENDING' });
  ok(t, s.decide({ kind: 'NodeRebound', nodeId: 'node-1', passport: 'passport-1-1' }));
  t.same(pending(s), [], 'the report of the retired passport goes with it');
  t.match(s.fence('node-2', 'node-1'), { ok: false, reason: 'FENCE_PENDING', detail: /node-2: 1 of 2/ }, 'the old report does not count toward the new passport');
  t.equal(statusOf(s, 'node-1'), 'active');
});

t.test('pending reports survive snapshot and restore; a state without any keeps its canonical form', async (t) => {
  const s = withKey();
  const before = snapshot(s.state);
  t.notOk(Buffer.from(before).includes(Buffer.from('fenceReports')), 'no pending reports: the field is left out');
  t.match(s.fence('node-0', 'node-1'), { reason: 'FENCE_PENDING' });
  const back = restore(snapshot(s.state));
  t.same(back.cluster!.fenceReports, s.state.cluster!.fenceReports);
  t.same(Buffer.from(stateRoot(back)), Buffer.from(stateRoot(s.state)), 'same root after restore');
  ok(t, s.fence('node-2', 'node-1'));
  t.notOk(Buffer.from(snapshot(s.state)).includes(Buffer.from('fenceReports')), 'fenced: the list is empty and left out again');
});

t.test('checkInvariants flags a pending report the rules could not have left: a stale passport, a removed target, two for one node', async (t) => {
  const s = withKey();
  t.match(s.fence('node-0', 'node-1'), { reason: 'FENCE_PENDING' });
  const c = s.state.cluster!;
  const r = c.fenceReports![0]!;
  const with_ = (fenceReports: typeof c.fenceReports, nodes = c.nodes) => checkInvariants({ ...s.state, cluster: { ...c, nodes, fenceReports } });
  t.same(with_(c.fenceReports), []);
  t.match(with_([{ ...r, passport: 'passport-1-9' }]).join('\n'), /not its current unfenced one/);
  t.match(with_([r], { ...c.nodes, 'node-1': { ...c.nodes['node-1']!, status: 'removed' } }).join('\n'), /not on the roster/);
  t.match(with_([r, r]).join('\n'), /two pending fencing reports for one node/);
  t.match(with_([{ ...r, reporters: [] }]).join('\n'), /no reporter/);
});

t.test('NodeFenced is an approver-signed decision at the freeze quorum: below it QUORUM_NOT_MET, a custodian key ROLE_NOT_ALLOWED, a stranger UNKNOWN_APPROVER', async (t) => {
  const s = withKey({ approvers: 4, threshold: 3, freezeThreshold: 2 });
  const passport = s.proposer('node-1').passport;
  const action = { kind: 'NodeFenced' as const, nodeId: 'node-1', passport, reason: 'leaked identity key' };
  const [a0, a1] = s.defaultSigners(2) as [ReturnType<typeof makeApproverKey>, ReturnType<typeof makeApproverKey>];
  t.match(s.decide(action, [a0]), { ok: false, reason: 'QUORUM_NOT_MET' }, 'one signature of the two the freeze quorum needs');
  t.match(s.decide(action, []), { ok: false, reason: 'QUORUM_NOT_MET' }, 'no signature at all');
  t.match(s.decide(action, [a0, s.keyOf('cara')]), { ok: false, reason: 'ROLE_NOT_ALLOWED' }, 'a custodian key counts for nothing');
  t.match(s.decide(action, [a0, makeApproverKey('mallory', seedOf('mallory'))]), { ok: false, reason: 'UNKNOWN_APPROVER' });
  t.equal(statusOf(s, 'node-1'), 'active');
  // The security approver (the last of the roster) counts toward it like a governor.
  const security = s.state.cluster!.governance.roster.approvers.find((x) => x.roles.includes('security'))!;
  ok(t, s.decide(action, [a0, s.keyOf(security.id)]));
  t.equal(statusOf(s, 'node-1'), 'fenced');
  t.match(s.decide(action, [a0, a1]), { ok: false, reason: 'INVALID_TRANSITION' }, 'already fenced');
  t.match(s.submit('op-1', s.act('k1'), null, 'node-1'), { ok: false, reason: 'SPLIT_BRAIN_FENCED' });
  ok(t, s.submit('op-2', s.act('k1'), null, 'node-0'));
  ok(t, s.issuePermit('op-2', 'node-0'));
  t.match(s.fixSigningSet('op-2', { commitments: s.signingSet('op-2', ['node-0', 'node-1']) }), { ok: false, reason: 'SPLIT_BRAIN_FENCED' }, 'its kernel takes no part in a signing set');
  ok(t, s.fixSigningSet('op-2', { commitments: s.signingSet('op-2', ['node-0', 'node-2']) }));
  // Unfencing is a rebind, which needs the full governor quorum.
  t.match(s.decide({ kind: 'NodeRebound', nodeId: 'node-1', passport: 'passport-1-1' }, [a0, a1]), { ok: false, reason: 'QUORUM_NOT_MET' });
  ok(t, s.decide({ kind: 'NodeRebound', nodeId: 'node-1', passport: 'passport-1-1' }, s.defaultSigners(3)));
  t.equal(statusOf(s, 'node-1'), 'active');
});

t.test('NodeFenced names the current passport, and applies while frozen (containing a compromise)', async (t) => {
  const s = withKey();
  t.match(s.fenceByDecision('node-2', { passport: 'passport-other' }), { ok: false, reason: 'BINDING_MISMATCH' });
  t.match(s.fenceByDecision('node-7', { passport: 'p' }), { ok: false, reason: 'UNKNOWN_NODE' });
  t.match(s.fence('node-0', 'node-2'), { reason: 'FENCE_PENDING' });
  ok(t, s.decide({ kind: 'EmergencyFreeze', reason: 'incident' }, s.defaultSigners(1)));
  ok(t, s.fenceByDecision('node-2', { signers: s.defaultSigners(1) }));
  t.equal(statusOf(s, 'node-2'), 'fenced');
  t.same(pending(s), [], 'the decision settles the pending report');
  t.same(checkInvariants(s.state), []);
});

t.test('property: no set of reports from fewer than a majority of voters fences anyone', async (t) => {
  let runs = 0;
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 6 }),
    fc.array(fc.tuple(fc.nat(), fc.nat(), fc.nat(3)), { minLength: 1, maxLength: 20 }),
    fc.nat(),
    (n, reports, pick) => {
      const s = new ScriptedCluster({ nodes: n, label: `fence-prop-${n}` });
      s.genesis();
      const ids = s.nodes.map((x) => x.info.id);
      const minority = Math.floor(n / 2) + 1 - 1;
      // Any `minority` of the voters (possibly including the targets themselves) report anything.
      const reporters = ids.filter((_, i) => ((pick >> i) & 1) === 1).slice(0, minority);
      for (const [r, target, reason] of reports) {
        if (reporters.length === 0) break;
        const reporter = reporters[r % reporters.length] as string;
        const res = s.fence(reporter, ids[target % ids.length] as string, undefined, `reason ${reason}`);
        if (res.ok) return false;
      }
      runs++;
      return Object.values(s.state.cluster!.nodes).every((x) => x.status === 'active' && x.fencedPassports.length === 0) && checkInvariants(s.state).length === 0;
    },
  ), { numRuns: 200 });
  t.ok(runs > 0, `${runs} runs`);
});

t.test('property: reports of a majority of distinct voters fence, in any order, with any repeats', async (t) => {
  fc.assert(fc.property(
    fc.integer({ min: 2, max: 6 }),
    fc.nat(),
    fc.array(fc.nat(), { minLength: 0, maxLength: 6 }),
    (n, target, repeats) => {
      const s = new ScriptedCluster({ nodes: n, label: `fence-maj-${n}` });
      s.genesis();
      const ids = s.nodes.map((x) => x.info.id);
      const victim = ids[target % n] as string;
      const majority = Math.floor(n / 2) + 1;
      const reporters = ids.filter((id) => id !== victim).slice(0, majority);
      const order = [...reporters.slice(0, -1), ...repeats.map((x) => reporters[x % (reporters.length - 1 || 1)] as string), reporters[reporters.length - 1] as string];
      if (reporters.length < majority) return true; // n = 2: the victim's own report is needed (below)
      for (const r of order.slice(0, -1)) if (s.fence(r, victim).ok) return false;
      return s.fence(order[order.length - 1] as string, victim).ok && s.state.cluster!.nodes[victim]!.status === 'fenced';
    },
  ), { numRuns: 100 });
  const two = new ScriptedCluster({ nodes: 2, label: 'fence-two' });
  two.genesis();
  t.match(two.fence('node-0', 'node-1'), { reason: 'FENCE_PENDING' }, 'two voters: one report is not a majority');
  t.match(two.fence('node-1', 'node-1'), { ok: true }, 'the target\'s own report counts like any voter\'s');
});
