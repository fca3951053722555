/**
 * History validation: a history the checker could not judge soundly is refused with every problem
 * named (the attacker here is a buggy recorder: reversed or missing times, a process with two calls
 * open, a call after an indeterminate one), and a valid history passes unchanged.
 */
import t from 'tap';
import { HistoryError, historyProblems, partitionByKey, prepareHistory, type History, type Operation } from './history.js';
import { checkHistory } from './linearizability.js';
import { registerModel, type RegisterInput, type RegisterOutput } from './models.js';
import { failed, info, ok } from './fixtures.js';

type Op = Operation<RegisterInput, RegisterOutput>;
const read = { f: 'read' } as const;
const write = (value: number) => ({ f: 'write', value }) as const;
const problemsOf = (h: History<RegisterInput, RegisterOutput>) => historyProblems(h).map((p) => [p.op, p.problem]);

t.test('a valid history passes and is prepared for the checker', async (tt) => {
  const h: Op[] = [ok(0, 'x', write(1), 0, 1, null), ok(0, 'x', read, 2, 3, 1), failed(1, 'y', write(2), 0, 4), info(1, 'x', write(3), 5), ok(2, 'y', read, 0, 0, null)];
  tt.same(historyProblems(h), []);
  const ops = prepareHistory(h);
  tt.same(ops.map((o) => o.id), [0, 1, 3, 4], 'the failed call is dropped; ids are history indexes');
  const ind = ops.find((o) => o.id === 3);
  tt.equal(ind?.known, false);
  tt.equal(ind?.completeAt, Infinity, 'an indeterminate call completes at +infinity');
  tt.equal(ind?.output, undefined);
  tt.same([...partitionByKey(ops).entries()].map(([k, v]) => [k, v.map((o) => o.id)]), [['x', [0, 1, 3]], ['y', [4]]]);
});

t.test('times: finite, and completion not before invocation', async (tt) => {
  tt.same(problemsOf([ok(0, 'x', write(1), 5, 4, null)]), [[0, 'completes-before-invoked']]);
  tt.same(problemsOf([ok(0, 'x', write(1), NaN, 4, null)]), [[0, 'bad-time']]);
  tt.same(problemsOf([ok(0, 'x', write(1), 0, Infinity, null)]), [[0, 'bad-time']], 'an unknown completion must be said as indeterminate');
  tt.same(problemsOf([failed(0, 'x', write(1), 3, 2)]), [[0, 'completes-before-invoked']], 'failed calls are validated too');
  tt.same(problemsOf([info(0, 'x', write(1), -Infinity)]), [[0, 'bad-time']]);
});

t.test('a process is sequential', async (tt) => {
  tt.same(problemsOf([ok(0, 'x', write(1), 0, 5, null), ok(0, 'y', read, 3, 6, null)]), [[1, 'overlaps-own-process']], 'two calls open at once, even on different keys');
  tt.same(problemsOf([ok(0, 'x', write(1), 0, 5, null), ok(0, 'x', read, 5, 6, null)]), [[1, 'overlaps-own-process']], 'the next call starts strictly after the previous completes');
  tt.same(problemsOf([ok(0, 'x', read, 6, 7, null), ok(0, 'x', write(1), 0, 6, null)]), [[0, 'overlaps-own-process']], 'found whatever the order in the history');
  tt.same(problemsOf([info(0, 'x', write(1), 0), ok(0, 'x', read, 100, 101, null)]), [[1, 'after-indeterminate']], 'a process that lost an answer makes no further call');
  tt.same(problemsOf([ok(0, 'x', write(1), 0, 5, null), ok(1, 'x', read, 3, 6, null), ok('0', 'x', read, 3, 6, null)]), [], 'different processes may overlap; 0 and "0" are different processes');
});

t.test('shape: outcome, key, process', async (tt) => {
  const bad = { process: 0, key: 'x', input: read, invokeAt: 0, completeAt: 1, outcome: 'maybe' } as unknown as Op;
  tt.same(problemsOf([bad]), [[0, 'bad-outcome']]);
  const noKey = { process: 0, input: read, invokeAt: 0, completeAt: 1, outcome: 'ok', output: null } as unknown as Op;
  tt.same(problemsOf([noKey]), [[0, 'bad-key']]);
  const badProcess = { process: {}, key: 'x', input: read, invokeAt: 0, completeAt: 1, outcome: 'ok', output: null } as unknown as Op;
  tt.same(problemsOf([badProcess]), [[0, 'bad-key']]);
});

t.test('the checker refuses an invalid history with every problem listed', async (tt) => {
  const h: Op[] = [ok(0, 'x', write(1), 5, 4, null), ok(1, 'x', write(1), 0, 5, null), ok(1, 'x', read, 2, 6, 1), ok(2, 'x', read, NaN, 1, 1)];
  let caught: unknown = null;
  try { checkHistory(registerModel(), h); } catch (e) { caught = e; }
  tt.ok(caught instanceof HistoryError, 'a HistoryError');
  const e = caught as HistoryError;
  tt.same(e.problems.map((p) => [p.op, p.problem]), [[0, 'completes-before-invoked'], [2, 'overlaps-own-process'], [3, 'bad-time']]);
  tt.match(e.message, /^invalid history \(3 problems\): op 0: completes-before-invoked/);
  tt.match(e.message, /op 2: overlaps-own-process: process 1 has op 1 open until 5 when it invokes this one at 2/);
});
