/**
 * node/membership/guard.ts against a real LedgerApp fed with signed governance decisions: a Raft
 * membership change is accepted only when an applied NodeAdded / NodeRemoved decision asks for
 * it. Attacker's view: a hostile leader or peer naming no decision, another node's decision, a
 * made-up cid or index, promoting a learner nobody added, removing an honest voter.
 */
import t from 'tap';
import fc from 'fast-check';
import { ScriptedCluster } from '../../ledger/scenario.js';
import { LedgerApp, encodeLedgerCommand } from '../../node/ledger-app.js';
import { governedConfGuard, governingDecision, judgeConfChange, ledgerView } from '../../node/membership/guard.js';
import { applyConfChange, isVoter } from '../../raft/core/confchange.js';
import type { ConfChangeSingle, ConfState, DecisionRef } from '../../raft/core/types.js';

const GENESIS = ['node-0', 'node-1', 'node-2'];
const genesisConf = (): ConfState => ({ voters: [...GENESIS], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false });

/** A ledger node's applied ledger: the scripted cluster's entries applied to a LedgerApp, in order. */
class Ledger {
  readonly s: ScriptedCluster;
  readonly app = new LedgerApp();
  private fed = 0;

  constructor(label = 'guard') {
    this.s = new ScriptedCluster({ label, nodes: GENESIS.length });
    this.s.genesis();
    this.sync();
  }

  private sync(): void {
    while (this.fed < this.s.log.length) {
      const e = this.s.log[this.fed] as { stampMs: number; event: Uint8Array };
      this.fed++;
      this.app.apply(this.fed, encodeLedgerCommand(e.stampMs, e.event));
    }
  }

  add(id: string): boolean {
    const r = this.s.decide({ kind: 'NodeAdded', node: { id, identityKey: this.s.groupKey(`${id}-identity`), passport: `passport-${id}` } });
    this.sync();
    return r.ok;
  }

  remove(id: string): boolean {
    const r = this.s.decide({ kind: 'NodeRemoved', nodeId: id });
    this.sync();
    return r.ok;
  }

  ref(type: ConfChangeSingle['type'], node: string): DecisionRef {
    const d = governingDecision(this.app.decisionsAfter(0), type, node);
    if (d === null) throw new Error(`no decision for ${type} ${node}`);
    return d;
  }

  judge(ch: ConfChangeSingle, conf: ConfState): string | null {
    return judgeConfChange({ changes: [ch], transition: 'auto' }, conf, ledgerView(this.app));
  }
}

t.test('the governed path: NodeAdded -> learner -> voter, NodeRemoved -> removal, each naming its decision', async (t) => {
  const l = new Ledger();
  t.ok(l.add('node-9'));
  const added = l.ref('addLearner', 'node-9');
  let conf = genesisConf();
  t.equal(l.judge({ type: 'addLearner', node: 'node-9', decision: added }, conf), null, 'learner: accepted');
  conf = applyConfChange(conf, { changes: [{ type: 'addLearner', node: 'node-9' }], transition: 'auto' }) as ConfState;
  t.equal(l.judge({ type: 'addVoter', node: 'node-9', decision: added }, conf), null, 'promotion of the learner: accepted');
  conf = applyConfChange(conf, { changes: [{ type: 'addVoter', node: 'node-9' }], transition: 'auto' }) as ConfState;
  t.ok(l.remove('node-1'));
  t.equal(l.judge({ type: 'remove', node: 'node-1', decision: l.ref('remove', 'node-1') }, conf), null, 'removal: accepted');
  t.equal(judgeConfChange({ changes: [], transition: 'auto' }, conf, ledgerView(l.app)), null, 'leaving a joint configuration needs no decision');
});

t.test('attacks refused CONF_CHANGE_UNAUTHORIZED: no decision, another node\'s decision, a made-up cid or index, promotion before joining, removal of an honest voter', async (t) => {
  const l = new Ledger();
  t.ok(l.add('node-9'));
  const added = l.ref('addLearner', 'node-9');
  const conf = genesisConf();
  const lines: string[] = [];
  const guard = governedConfGuard(l.app, (line) => lines.push(line));
  const judge = (ch: ConfChangeSingle, c = conf): string | null => guard({ changes: [ch], transition: 'auto' }, c);

  t.match(judge({ type: 'addLearner', node: 'evil' }), /names no governance decision/, 'an unknown node, no decision');
  t.match(judge({ type: 'addLearner', node: 'evil', decision: added }), /is NodeAdded node-9, not NodeAdded evil/, 'an unknown node, riding on another node\'s decision');
  t.match(judge({ type: 'addVoter', node: 'evil', decision: added }), /not NodeAdded evil/, 'an unknown node straight to voter');
  t.match(judge({ type: 'addLearner', node: 'node-9', decision: { index: added.index, cid: 'ab'.repeat(32) } }), /but the decision applied there is/, 'a made-up cid');
  t.match(judge({ type: 'addLearner', node: 'node-9', decision: { index: added.index + 1000, cid: added.cid } }), /applied no governance decision/, 'an index no decision was applied at (or not yet)');
  t.match(judge({ type: 'addVoter', node: 'node-9', decision: added }), /is not a learner/, 'promotion of a node that has not joined as a learner');
  t.match(judge({ type: 'remove', node: 'node-1' }), /names no governance decision/, 'removal of an honest voter, no decision');
  t.match(judge({ type: 'remove', node: 'node-1', decision: added }), /not NodeRemoved node-1/, 'removal of an honest voter on a NodeAdded decision');
  t.match(judge({ type: 'addLearner', node: 'node-1', decision: added }), /not NodeAdded node-1/, 'demotion of a voter');
  t.ok(lines.length > 0 && lines.every((x) => x.includes('CONF_CHANGE_UNAUTHORIZED')), 'each refusal is logged with its reason code');
  t.equal(judge({ type: 'remove', node: 'stranger' }), null, 'a node the roster never named may be removed without a decision (nothing to protect)');

  // After NodeRemoved, the NodeAdded decision no longer makes it a member or a voter.
  t.ok(l.remove('node-9'));
  const learnerConf: ConfState = { ...conf, learners: ['node-9'] };
  t.match(judge({ type: 'addVoter', node: 'node-9', decision: added }, learnerConf), /as removed, not active/, 'a removed learner is not promoted');
  t.match(judge({ type: 'addLearner', node: 'node-9', decision: added }), /lists node-9 as removed/, 'a removed node is not added again on its old decision');
  t.equal(judge({ type: 'remove', node: 'node-9', decision: l.ref('remove', 'node-9') }, learnerConf), null, 'its removal is accepted');
});

t.test('a decision refused by the ledger (signed by too few approvers) is no authority', async (t) => {
  const l = new Ledger();
  const r = l.s.decide({ kind: 'NodeAdded', node: { id: 'node-7', identityKey: l.s.groupKey('node-7-identity'), passport: 'p7' } }, l.s.defaultSigners(1));
  t.equal(r.ok, false, 'the ledger refuses it');
  t.same(l.app.decisionsAfter(0).length, 0, 'so it is not among the applied decisions');
  t.equal(governingDecision(l.app.decisionsAfter(0), 'addLearner', 'node-7'), null);
});

t.test('property: whatever a hostile leader proposes, in any order with any decision named, no configuration holds a voter without an applied NodeAdded, nor loses a voter without an applied NodeRemoved', async (t) => {
  const pool = ['node-0', 'node-1', 'node-2', 'node-7', 'node-8', 'node-9', 'evil'];
  const step = fc.oneof(
    { arbitrary: fc.record({ kind: fc.constant('add' as const), node: fc.constantFrom('node-7', 'node-8', 'node-9') }), weight: 2 },
    { arbitrary: fc.record({ kind: fc.constant('remove' as const), node: fc.constantFrom(...pool) }), weight: 1 },
    { arbitrary: fc.record({
      kind: fc.constant('change' as const),
      type: fc.constantFrom('addLearner' as const, 'addVoter' as const, 'remove' as const),
      node: fc.constantFrom(...pool),
      // Which decision the change names: none, the one for another node, a forged cid, or the right one.
      cite: fc.oneof({ arbitrary: fc.constantFrom('none' as const, 'other' as const, 'forged' as const), weight: 1 }, { arbitrary: fc.constant('right' as const), weight: 2 }),
      other: fc.constantFrom(...pool),
    }), weight: 5 },
  );
  let run = 0;
  let accepted = 0;
  let refused = 0;
  fc.assert(
    fc.property(fc.array(step, { minLength: 1, maxLength: 20 }), (steps) => {
      const l = new Ledger(`guard-prop-${run++}`);
      let conf = genesisConf();
      const everVoter = new Set(GENESIS);
      for (const s of steps) {
        if (s.kind === 'add') l.add(s.node);
        else if (s.kind === 'remove') l.remove(s.node);
        else {
          const pick = (type: ConfChangeSingle['type'], node: string): DecisionRef | undefined => governingDecision(l.app.decisionsAfter(0), type, node) ?? undefined;
          const right = pick(s.type, s.node);
          const decision = s.cite === 'none' ? undefined : s.cite === 'other' ? pick(s.type, s.other) ?? pick('remove', s.other) : s.cite === 'forged' ? (right ? { index: right.index, cid: 'cd'.repeat(32) } : undefined) : right;
          const ch: ConfChangeSingle = decision === undefined ? { type: s.type, node: s.node } : { type: s.type, node: s.node, decision };
          const cc = { changes: [ch], transition: 'auto' as const };
          if (judgeConfChange(cc, conf, ledgerView(l.app)) !== null) refused++;
          else {
            accepted++;
            const next = applyConfChange(conf, cc);
            if (typeof next !== 'string') conf = next;
          }
        }
        const nodes = l.app.state.cluster?.nodes ?? {};
        const addedBy = new Set(l.app.decisionsAfter(0).map((d) => governingDecisionOf(d)).filter((x): x is string => x !== null));
        for (const v of [...conf.voters, ...conf.votersOutgoing]) {
          if (!GENESIS.includes(v) && !addedBy.has(v)) return false;
          if (!GENESIS.includes(v) && nodes[v]?.status === 'removed' && !everVoter.has(v)) return false;
          everVoter.add(v);
        }
        for (const v of everVoter) {
          if (!isVoter(conf, v) && nodes[v]?.status !== 'removed') return false;
        }
      }
      return true;
    }),
    { numRuns: 60, seed: 1313 },
  );
  t.ok(accepted > 25 && refused > 25, `held over 60 runs (${accepted} changes accepted, ${refused} refused)`);
});

/** The node a decision adds, if it is a NodeAdded. */
function governingDecisionOf(d: { index: number; decision: Uint8Array }): string | null {
  for (const id of ['node-7', 'node-8', 'node-9', 'evil']) {
    const r = governingDecision([d], 'addLearner', id);
    if (r !== null) return id;
  }
  return null;
}
