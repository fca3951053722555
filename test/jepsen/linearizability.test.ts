/**
 * The linearizability checker on hand-written histories: each planted violation (stale read, lost
 * acknowledged write, a write or an act applied twice, a read of a value never written, an act
 * ended twice or with two outcomes) is caught and explained; histories that are linearizable
 * (overlapping calls, touching intervals, indeterminate calls that did or did not take effect) are
 * accepted with a linearization that replays; and each answer agrees with the brute-force reference.
 */
import t, { type Test } from 'tap';
import { checkHistory, type CheckResult, type KeyResult } from './linearizability.js';
import {
  actModel, appendModel, registerModel,
  type ActInput, type ActOutput, type AppendInput, type AppendOutput, type Model, type RegisterInput, type RegisterOutput,
} from './models.js';
import type { History } from './history.js';
import { bruteForceLinearizable, witnessProblem } from './brute-force.js';
import { failed, info, ok } from './fixtures.js';

type R = History<RegisterInput, RegisterOutput>;
const reg = registerModel();
const read = { f: 'read' } as const;
const write = (value: number) => ({ f: 'write', value }) as const;
const cas = (from: number | null, to: number) => ({ f: 'cas', from, to }) as const;

/** Checks a history, asserts the verdict and the brute-force agreement, and that an ok answer carries a linearization that replays. */
function judge<S, I, O>(tt: Test, model: Model<S, I, O>, h: History<I, O>, want: 'ok' | 'violation'): CheckResult<I, O> {
  const r = checkHistory(model, h);
  tt.equal(r.verdict, want, want === 'ok' ? 'linearizable' : 'not linearizable');
  tt.equal(bruteForceLinearizable(model, h), want === 'ok', 'brute force agrees');
  for (const k of r.keys) {
    if (k.verdict === 'ok') tt.equal(witnessProblem(model, h, k.key, k.linearization), null, `key ${k.key}: the linearization replays`);
    if (k.verdict === 'violation') tt.ok(k.explanation.text.length > 0);
  }
  return r;
}
const violationOf = <I, O>(r: CheckResult<I, O>, key: string) => {
  const k = r.keys.find((x) => x.key === key) as KeyResult<I, O>;
  if (k.verdict !== 'violation') throw new Error(`key ${key} is ${k.verdict}`);
  return k.explanation;
};
const okOf = <I, O>(r: CheckResult<I, O>, key: string) => {
  const k = r.keys.find((x) => x.key === key) as KeyResult<I, O>;
  if (k.verdict !== 'ok') throw new Error(`key ${key} is ${k.verdict}`);
  return k.linearization;
};

t.test('stale read: a read after a newer write completed answers the older value', async (tt) => {
  const h: R = [ok(0, 'x', write(1), 0, 1, null), ok(1, 'x', write(2), 2, 3, null), ok(2, 'x', read, 4, 5, 1)];
  const e = violationOf(judge(tt, reg, h, 'violation'), 'x');
  tt.same(e.prefix.map((s) => s.op.id), [0, 1], 'both writes linearize');
  tt.equal(e.blocked.id, 2, 'the stale read is the operation that cannot be placed');
  tt.equal(e.stateAfterPrefix, 'value 2');
  tt.same(e.candidates.map((c) => [c.op.id, c.verdict]), [[2, 'refused']]);
  tt.match(e.text, /#2 process 2 read -> 1 \[4, 5\] completes before it can be placed; from value 2/);
  // The same read concurrent with the second write is fine.
  judge(tt, reg, [ok(0, 'x', write(1), 0, 1, null), ok(1, 'x', write(2), 2, 6, null), ok(2, 'x', read, 4, 5, 1)], 'ok');
});

t.test('lost acknowledged write: an acknowledged write or swap is not seen by a later read', async (tt) => {
  judge(tt, reg, [ok(0, 'x', write(1), 0, 1, null), ok(1, 'x', read, 2, 3, null)], 'violation');
  judge(tt, reg, [ok(0, 'x', write(1), 0, 1, null), ok(1, 'x', cas(1, 2), 2, 3, true), ok(2, 'x', read, 4, 5, 1)], 'violation');
  // A swap that answered false did not happen, so the old value is right.
  judge(tt, reg, [ok(0, 'x', write(1), 0, 1, null), ok(1, 'x', cas(0, 2), 2, 3, false), ok(2, 'x', read, 4, 5, 1)], 'ok');
  // A swap cannot answer true when its expected value is not there.
  judge(tt, reg, [ok(0, 'x', write(1), 0, 1, null), ok(1, 'x', cas(0, 2), 2, 3, true)], 'violation');
  // Two concurrent swaps from the same value cannot both succeed.
  judge(tt, reg, [ok(0, 'x', cas(null, 1), 0, 5, true), ok(1, 'x', cas(null, 2), 0, 5, true)], 'violation');
  judge(tt, reg, [ok(0, 'x', cas(null, 1), 0, 5, true), ok(1, 'x', cas(null, 2), 0, 5, false), ok(2, 'x', read, 6, 7, 1)], 'ok');
});

t.test('a read of a value never written', async (tt) => {
  const h: R = [ok(0, 'x', write(1), 0, 10, null), ok(1, 'x', write(2), 0, 10, null), ok(2, 'x', read, 3, 4, 7)];
  const e = violationOf(judge(tt, reg, h, 'violation'), 'x');
  tt.equal(e.blocked.id, 2);
  tt.ok(e.candidates.some((c) => c.op.id === 2 && c.verdict === 'refused'), 'the read is refused wherever it is tried');
  // Nor the initial value once a write surely took effect.
  judge(tt, reg, [ok(0, 'x', write(1), 0, 1, null), ok(1, 'x', read, 2, 3, 1), ok(2, 'x', read, 4, 5, null)], 'violation');
});

t.test('a write applied twice: one append seen twice in the list', async (tt) => {
  type A = History<AppendInput, AppendOutput>;
  const append = (value: number) => ({ f: 'append', value }) as const;
  const h: A = [ok(0, 'l', append(1), 0, 1, null), ok(1, 'l', append(2), 0, 2, null), ok(2, 'l', { f: 'read' }, 3, 4, [1, 2, 1])];
  judge(tt, appendModel, h, 'violation');
  judge(tt, appendModel, [ok(0, 'l', append(1), 0, 1, null), ok(1, 'l', append(2), 0, 2, null), ok(2, 'l', { f: 'read' }, 3, 4, [2, 1])], 'ok');
  // An acknowledged append missing from a later read is lost.
  judge(tt, appendModel, [ok(0, 'l', append(1), 0, 1, null), ok(1, 'l', append(2), 2, 3, null), ok(2, 'l', { f: 'read' }, 4, 5, [2])], 'violation');
  // Appends in the wrong real-time order.
  judge(tt, appendModel, [ok(0, 'l', append(1), 0, 1, null), ok(1, 'l', append(2), 2, 3, null), ok(2, 'l', { f: 'read' }, 4, 5, [2, 1])], 'violation');
  // A client that retried an append after losing the answer may see it twice: the first attempt may have happened.
  judge(tt, appendModel, [info(0, 'l', append(1), 0), ok(1, 'l', append(1), 2, 3, null), ok(2, 'l', { f: 'read' }, 4, 5, [1, 1])], 'ok');
});

t.test('custody acts: submitted once, ended once, with one outcome', async (tt) => {
  type H = History<ActInput, ActOutput>;
  const submit = { f: 'submit' } as const;
  const end = (outcome: string) => ({ f: 'end', outcome }) as const;
  const status = { f: 'read' } as const;
  // A submit that took effect twice: both submits of the act id were accepted.
  judge(tt, actModel, [ok(0, 'a1', submit, 0, 5, 'accepted'), ok(1, 'a1', submit, 1, 6, 'accepted')] as H, 'violation');
  judge(tt, actModel, [ok(0, 'a1', submit, 0, 5, 'accepted'), ok(1, 'a1', submit, 1, 6, 'duplicate')] as H, 'ok');
  // A duplicate answer before any submit took effect.
  judge(tt, actModel, [ok(0, 'a1', submit, 0, 1, 'duplicate'), ok(1, 'a1', submit, 2, 3, 'accepted')] as H, 'violation');
  // An act ended twice.
  const ended2: H = [ok(0, 'a1', submit, 0, 1, 'accepted'), ok(1, 'a1', end('Settled'), 2, 5, 'ended'), ok(2, 'a1', end('Aborted'), 3, 6, 'ended')];
  const e = violationOf(judge(tt, actModel, ended2, 'violation'), 'a1');
  tt.equal(e.stateAfterPrefix, 'act ended:Settled', 'the first end to linearize is kept');
  judge(tt, actModel, [ok(0, 'a1', submit, 0, 1, 'accepted'), ok(1, 'a1', end('Settled'), 2, 5, 'ended'), ok(2, 'a1', end('Aborted'), 3, 6, 'already-ended')] as H, 'ok');
  // Ended with one outcome, read with another.
  judge(tt, actModel, [ok(0, 'a1', submit, 0, 1, 'accepted'), ok(1, 'a1', end('Settled'), 2, 3, 'ended'), ok(2, 'a1', status, 4, 5, { kind: 'ended', outcome: 'Aborted' })] as H, 'violation');
  // An act ends only after it was submitted; a read may see it open while the end is in flight.
  judge(tt, actModel, [ok(1, 'a1', end('Settled'), 0, 1, 'ended'), ok(0, 'a1', submit, 2, 3, 'accepted')] as H, 'violation');
  judge(tt, actModel, [ok(1, 'a1', end('Settled'), 0, 1, 'not-submitted'), ok(0, 'a1', submit, 2, 3, 'accepted')] as H, 'ok');
  judge(tt, actModel, [
    ok(0, 'a1', submit, 0, 1, 'accepted'), ok(1, 'a1', end('Denied'), 2, 9, 'ended'),
    ok(2, 'a1', status, 3, 4, { kind: 'open' }), ok(2, 'a1', status, 5, 6, { kind: 'ended', outcome: 'Denied' }), ok(2, 'a1', status, 7, 8, { kind: 'ended', outcome: 'Denied' }),
  ] as H, 'ok');
  // Ended and then seen open again.
  judge(tt, actModel, [
    ok(0, 'a1', submit, 0, 1, 'accepted'), ok(1, 'a1', end('Denied'), 2, 9, 'ended'),
    ok(2, 'a1', status, 3, 4, { kind: 'ended', outcome: 'Denied' }), ok(2, 'a1', status, 5, 6, { kind: 'open' }),
  ] as H, 'violation');
  // A retried submit whose first attempt was lost: the retry may be the one accepted, or answered duplicate.
  judge(tt, actModel, [info(0, 'a1', submit, 0), ok(1, 'a1', submit, 2, 3, 'accepted')] as H, 'ok');
  judge(tt, actModel, [info(0, 'a1', submit, 0), ok(1, 'a1', submit, 2, 3, 'duplicate')] as H, 'ok');
  // But not duplicate when nothing could have submitted it.
  judge(tt, actModel, [info(0, 'a1', submit, 4), ok(1, 'a1', submit, 2, 3, 'duplicate')] as H, 'violation');
  // Acts are independent keys: each one's submit is accepted once.
  judge(tt, actModel, [ok(0, 'a1', submit, 0, 5, 'accepted'), ok(1, 'a2', submit, 1, 6, 'accepted')] as H, 'ok');
});

t.test('concurrent overlapping calls are ordered by their linearization points, not their starts', async (tt) => {
  const h: R = [
    ok(0, 'x', write(1), 0, 10, null), ok(1, 'x', write(2), 1, 9, null),
    ok(2, 'x', read, 2, 3, 2), ok(2, 'x', read, 4, 5, 1), ok(3, 'x', read, 11, 12, 1),
  ];
  const lin = okOf(judge(tt, reg, h, 'ok'), 'x');
  tt.same(lin, [1, 2, 0, 3, 4], 'write 2, read 2, write 1, read 1, read 1');
  // Touching intervals are concurrent: the read may come first.
  judge(tt, reg, [ok(0, 'x', write(1), 0, 5, null), ok(1, 'x', read, 5, 6, null)], 'ok');
  // Once the write surely completed before the read began, the read must see it.
  judge(tt, reg, [ok(0, 'x', write(1), 0, 5, null), ok(1, 'x', read, 6, 7, null)], 'violation');
  // Reads of concurrent writes must agree on one order.
  judge(tt, reg, [
    ok(0, 'x', write(1), 0, 10, null), ok(1, 'x', write(2), 0, 10, null),
    ok(2, 'x', read, 1, 2, 1), ok(2, 'x', read, 3, 4, 2), ok(3, 'x', read, 1, 2, 2), ok(3, 'x', read, 3, 4, 1),
  ], 'violation');
});

t.test('indeterminate calls may take effect at any time after their invocation, or never', async (tt) => {
  // It took effect: the later read sees it, and the linearization includes it.
  const did: R = [info(0, 'x', write(1), 0), ok(1, 'x', read, 5, 6, 1)];
  tt.same(okOf(judge(tt, reg, did, 'ok'), 'x'), [0, 1]);
  // It did not: the linearization leaves it out.
  const didNot: R = [info(0, 'x', write(1), 0), ok(1, 'x', read, 5, 6, null)];
  tt.same(okOf(judge(tt, reg, didNot, 'ok'), 'x'), [1]);
  // It took effect late, long after the client gave up.
  judge(tt, reg, [info(0, 'x', write(1), 0), ok(1, 'x', read, 5, 6, null), ok(2, 'x', read, 100, 101, 1)], 'ok');
  // It cannot be undone once seen.
  judge(tt, reg, [info(0, 'x', write(1), 0), ok(1, 'x', read, 5, 6, 1), ok(2, 'x', read, 7, 8, null)], 'violation');
  // Nor take effect before it was invoked.
  judge(tt, reg, [ok(1, 'x', read, 0, 1, 1), info(0, 'x', write(1), 2)], 'violation');
  // Nor take effect twice: write 1, overwritten by 2, then 1 again with a single indeterminate write of 1.
  judge(tt, reg, [info(0, 'x', write(1), 0), ok(1, 'x', read, 1, 2, 1), ok(2, 'x', write(2), 3, 4, null), ok(1, 'x', read, 5, 6, 1)], 'violation');
  // An indeterminate swap: its answer is unknown, its effect follows the state it meets.
  judge(tt, reg, [ok(0, 'x', write(0), 0, 1, null), info(1, 'x', cas(0, 5), 2), ok(2, 'x', read, 3, 4, 5)], 'ok');
  judge(tt, reg, [ok(0, 'x', write(3), 0, 1, null), info(1, 'x', cas(0, 5), 2), ok(2, 'x', read, 3, 4, 5)], 'violation');
  // An indeterminate call left out early in the search is still available later: the swap from
  // null took effect first, then the write of 0 (the swap from 0 never did).
  const later: R = [info(1, 'x', cas(0, 1), 3), info(2, 'x', write(0), 2), ok(3, 'x', read, 6, 9, 1), ok(4, 'x', read, 10, 11, 0), info(0, 'x', cas(null, 1), 3)];
  tt.same(okOf(judge(tt, reg, later, 'ok'), 'x'), [4, 2, 1, 3]);
  // A failed call certainly did not happen.
  judge(tt, reg, [failed(0, 'x', write(1), 0, 1), ok(1, 'x', read, 2, 3, null)], 'ok');
  judge(tt, reg, [failed(0, 'x', write(1), 0, 1), ok(1, 'x', read, 2, 3, 1)], 'violation');
});

t.test('keys are checked apart: one violating key makes the history not linearizable', async (tt) => {
  const h: R = [
    ok(0, 'x', write(1), 0, 1, null), ok(1, 'y', read, 2, 3, 1), ok(2, 'x', read, 2, 3, 1),
    ok(3, 'z', write(4), 0, 10, null), ok(4, 'z', read, 1, 2, 4),
  ];
  const r = judge(tt, reg, h, 'violation');
  tt.same(r.keys.map((k) => [k.key, k.verdict]), [['x', 'ok'], ['y', 'violation'], ['z', 'ok']], 'each key has its own answer; y reads a value written only to x');
  tt.same(r.keys.map((k) => k.ops), [2, 1, 2]);
  // The register model's initial value applies to each key.
  const r7 = checkHistory(registerModel(7), [ok(0, 'p', read, 0, 1, 7), ok(1, 'q', read, 0, 1, 7)] as R);
  tt.equal(r7.verdict, 'ok');
  tt.equal(checkHistory(reg, [] as R).verdict, 'ok', 'an empty history is linearizable');
});
