/**
 * The checker's budget: a history whose search is exponential answers "unknown" when the step or
 * clock budget runs out, never a verdict it did not reach, whichever the true answer is; with
 * enough budget the same family of histories gets its true answer; and a step budget makes the
 * answer deterministic.
 */
import t from 'tap';
import { checkHistory } from './linearizability.js';
import { registerModel, type RegisterInput, type RegisterOutput } from './models.js';
import type { History } from './history.js';
import { jepsen as limits } from '../../proto/limits.js';
import { info, ok } from './fixtures.js';

type R = History<RegisterInput, RegisterOutput>;
const reg = registerModel();

/**
 * n writes of distinct values, all concurrent, then a read of `readBack`. The search linearizes the
 * writes in every order before it can reach the read, and the memo holds one entry per (subset of
 * writes, last write): about n * 2^(n-1) of them. Reading a value never written is a violation;
 * reading the first write's value is linearizable, but only with that write last, which the search
 * tries after every order that starts with it.
 */
function concurrentWrites(n: number, readBack: number): R {
  const h: R[number][] = [];
  for (let i = 0; i < n; i++) h.push(ok(i, 'x', { f: 'write', value: i }, i, 1000, null));
  h.push(ok(n, 'x', { f: 'read' }, 1001, 1002, readBack));
  return h;
}

t.test('with enough budget, the hard histories get their true answers', async (tt) => {
  const v = checkHistory(reg, concurrentWrites(10, 999));
  tt.equal(v.verdict, 'violation', 'a read of a value never written');
  tt.ok(v.steps > 10 * 2 ** 9, `the search visited ${v.steps} steps before giving up`);
  const k = checkHistory(reg, concurrentWrites(10, 0));
  tt.equal(k.verdict, 'ok', 'the first write last');
  tt.same(k.keys[0]?.verdict === 'ok' ? k.keys[0].linearization.slice(-2) : [], [0, 10], 'write 0 is the last write, the read follows it');
});

t.test('a tiny step budget answers unknown, for a violating and for a linearizable history', async (tt) => {
  for (const [readBack, truth] of [[999, 'violation'], [0, 'ok']] as const) {
    const h = concurrentWrites(24, readBack);
    const r = checkHistory(reg, h, { stepsPerKey: 20_000 });
    tt.equal(r.verdict, 'unknown', `true answer ${truth}, budget exhausted: unknown`);
    tt.same(r.keys.map((k) => [k.key, k.verdict, k.verdict === 'unknown' ? k.exhausted : '', k.steps]), [['x', 'unknown', 'steps', 20_000]]);
    tt.same(checkHistory(reg, h, { stepsPerKey: 20_000 }), r, 'the same budget gives the same answer');
  }
  tt.ok(limits.checkStepsPerKeyDefault > 20_000);
});

t.test('an injected clock bounds the whole check', async (tt) => {
  let now = 0;
  let reads = 0;
  const clock = () => { reads++; return now++; };
  const h = [...concurrentWrites(24, 999), ok(100, 'y', { f: 'read' }, 0, 1, null)];
  const r = checkHistory(reg, h, { now: clock, timeLimitMs: 5, stepsPerKey: 1e12 });
  tt.equal(r.verdict, 'unknown');
  tt.same(r.keys.map((k) => [k.key, k.verdict, k.verdict === 'unknown' ? k.exhausted : '']), [['x', 'unknown', 'time'], ['y', 'unknown', 'time']], 'the key after the deadline is not started');
  tt.ok(reads <= 3 + r.steps / limits.checkClockEverySteps, `the clock is read once per key and every ${limits.checkClockEverySteps} steps (${reads} reads over ${r.steps} steps)`);
  // A violation found on one key still decides the history when another key ran out of budget.
  const mixed = [...concurrentWrites(24, 999), ok(100, 'a', { f: 'read' }, 0, 1, 5)];
  const m = checkHistory(reg, mixed, { stepsPerKey: 10_000 });
  tt.same(m.keys.map((k) => [k.key, k.verdict]), [['a', 'violation'], ['x', 'unknown']]);
  tt.equal(m.verdict, 'violation');
  // A clock that never passes the deadline changes nothing.
  const still = checkHistory(reg, concurrentWrites(8, 0), { now: () => 0, timeLimitMs: 1 });
  tt.equal(still.verdict, 'ok');
});

t.test('indeterminate reads cost the search nothing: they are dropped, not branched on', async (tt) => {
  const base = concurrentWrites(10, 999);
  const reads: R = Array.from({ length: 30 }, (_, i) => info(100 + i, 'x', { f: 'read' }, i));
  const plain = checkHistory(reg, base);
  const withReads = checkHistory(reg, [...base, ...reads]);
  tt.equal(withReads.verdict, 'violation');
  tt.equal(withReads.steps, plain.steps, 'the same search');
  tt.same(withReads.keys.map((k) => k.ops), [11], 'the 30 indeterminate reads are not searched');
  // An indeterminate write is searched: it may have happened.
  const withWrite = checkHistory(reg, [...base, info(200, 'x', { f: 'write', value: 999 }, 0)]);
  tt.equal(withWrite.verdict, 'ok', 'the read of 999 is explained by the indeterminate write');
});

t.test('a budget that would bound nothing is refused', async (tt) => {
  const h = concurrentWrites(3, 0);
  tt.throws(() => checkHistory(reg, h, { stepsPerKey: NaN }), RangeError);
  tt.throws(() => checkHistory(reg, h, { stepsPerKey: -1 }), RangeError);
  tt.throws(() => checkHistory(reg, h, { now: () => 0 }), RangeError, 'a clock without a limit');
  tt.throws(() => checkHistory(reg, h, { timeLimitMs: 10 }), RangeError, 'a limit without a clock');
  tt.throws(() => checkHistory(reg, h, { now: () => 0, timeLimitMs: NaN }), RangeError);
  tt.equal(checkHistory(reg, h, { stepsPerKey: 0 }).verdict, 'unknown', 'zero steps decide nothing');
  tt.equal(checkHistory(reg, h, { stepsPerKey: Infinity }).verdict, 'ok');
});
