/**
 * The approval book's room rules (node/approvals/book.ts): one operator cannot fill the book, and
 * an EmergencyFreeze proposal always finds room, whatever was proposed before it.
 */
import t from 'tap';
import fc from 'fast-check';
import { approvals as limits } from '../../proto/limits.js';
import { ScriptedCluster } from '../../ledger/scenario.js';
import type { DecisionBody } from '../../ledger/decision.js';
import { ApprovalBook, decodeBookCommand, encodeBookCommand } from '../../node/approvals/book.js';

function setup(): { s: ScriptedCluster; now: number; ordinary: (i: number) => DecisionBody; freeze: (i: number) => DecisionBody } {
  const s = new ScriptedCluster({ label: 'book-quota' });
  s.genesis();
  s.createKey('k1');
  const now = s.state.clockMs;
  const base = s.decisionBody({ kind: 'KeyRetired', keyId: 'k1' });
  const fr = s.decisionBody({ kind: 'EmergencyFreeze', reason: 'incident' });
  // Distinct decisions (distinct cids) by issue time; all valid for the hour after `now`.
  return { s, now, ordinary: (i) => ({ ...base, issuedMs: now - i }), freeze: (i) => ({ ...fr, issuedMs: now - i }) };
}

t.test('one operator holds at most pendingPerProposerMax ordinary proposals; a freeze still finds room in a full book', async (t) => {
  const { s, now, ordinary, freeze } = setup();
  const book = new ApprovalBook();
  const propose = (body: DecisionBody, proposer?: string) => book.apply(now, { op: 'propose', body, act: null, ...(proposer === undefined ? {} : { proposer }) }, s.state).verdict;
  for (let i = 0; i < limits.pendingPerProposerMax; i++) t.ok(propose(ordinary(i), 'cara').ok);
  t.match(propose(ordinary(limits.pendingPerProposerMax), 'cara'), { ok: false, reason: 'LIMIT_EXCEEDED', detail: /cara has 16 decisions pending/ }, 'the quota holds for the custodian that filled the book before');
  // Fill the rest of the book with other operators.
  let i = 1000;
  for (let p = 1; book.size < limits.pendingMax; p++) {
    for (let k = 0; k < limits.pendingPerProposerMax && book.size < limits.pendingMax; k++) propose(ordinary(i++), `op-${p}`);
  }
  t.equal(book.size, limits.pendingMax);
  t.match(propose(ordinary(i++), 'newcomer'), { ok: false, reason: 'LIMIT_EXCEEDED' }, 'a full book refuses ordinary proposals');
  const f = propose(freeze(0), 'approver-0');
  t.match(f, { ok: true }, 'an EmergencyFreeze is taken in a full book');
  t.equal(book.size, limits.pendingMax + 1);
});

t.test('freeze proposals: one per proposer, and the oldest makes room when freezePendingMax are pending', async (t) => {
  const { s, now, freeze } = setup();
  const book = new ApprovalBook();
  const propose = (body: DecisionBody, proposer: string) => book.apply(now, { op: 'propose', body, act: null, proposer }, s.state).verdict;
  t.ok(propose(freeze(1), 'mallory').ok);
  t.ok(propose(freeze(2), 'mallory').ok, 'a second freeze of one proposer');
  t.equal(book.list().filter((r) => r.proposer === 'mallory').length, 1, 'replaces the first');
  for (let p = 0; p < limits.freezePendingMax + 10; p++) t.equal(propose(freeze(100 + p), `approver-${p}`).ok, true);
  const freezes = book.list();
  t.equal(freezes.length, limits.freezePendingMax, 'bounded');
  const honest = freeze(-5);
  t.ok(propose(honest, 'security-1').ok, 'one more is taken');
  t.ok(book.list().some((r) => r.body.issuedMs === honest.issuedMs), 'and kept; the oldest went');
});

t.test('whatever is proposed, the bounds hold and no freeze proposal is refused for room (fast-check)', async (t) => {
  const cmd = fc.record({ freeze: fc.boolean(), proposer: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p', 'q', 'r') });
  t.doesNotThrow(() => fc.assert(fc.property(fc.array(cmd, { minLength: 1, maxLength: 400 }), (cmds) => {
    const { s, now, ordinary, freeze } = setup();
    const book = new ApprovalBook();
    let n = 0;
    for (const c of cmds) {
      const v = book.apply(now, { op: 'propose', body: c.freeze ? freeze(n++) : ordinary(n++), act: null, proposer: c.proposer }, s.state).verdict;
      if (c.freeze && !v.ok) return false;
      const all = book.list();
      const ord = all.filter((r) => r.body.action.kind !== 'EmergencyFreeze');
      const frz = all.filter((r) => r.body.action.kind === 'EmergencyFreeze');
      if (ord.length > limits.pendingMax || frz.length > limits.freezePendingMax) return false;
      const per = new Map<string, number>();
      for (const r of ord) per.set(r.proposer ?? '', (per.get(r.proposer ?? '') ?? 0) + 1);
      if ([...per.values()].some((x) => x > limits.pendingPerProposerMax)) return false;
      if (new Set(frz.map((r) => r.proposer)).size !== frz.length) return false;
    }
    return true;
  }), { numRuns: 30, verbose: 1 }), 'the bounds hold (a counterexample prints its seed)');
});

t.test('the proposer travels in the command; commands written before quotas still decode', async (t) => {
  const { now, ordinary } = setup();
  const withProposer = decodeBookCommand(encodeBookCommand(now, { op: 'propose', body: ordinary(0), act: null, proposer: 'cara' }));
  t.match(withProposer, { command: { op: 'propose', proposer: 'cara' } });
  const legacy = decodeBookCommand(encodeBookCommand(now, { op: 'propose', body: ordinary(0), act: null }));
  t.match(legacy, { command: { op: 'propose' } });
  t.notOk(typeof legacy !== 'string' && 'proposer' in legacy.command, 'no proposer in a legacy command');
});
