/**
 * RepeatedLog (node/lifecycle/rerun.ts): a failure that repeats word for word is logged once,
 * then once every `every` repeats, and its count is said when a different line follows; nothing
 * is dropped that differs from the line before.
 */
import t from 'tap';
import { RepeatedLog } from '../../node/lifecycle/rerun.js';

t.test('a repeated failure is logged once, counted, and its count said when another follows', async (t) => {
  const lines: string[] = [];
  const log = new RepeatedLog((l) => lines.push(l), 100);
  for (let i = 0; i < 134; i++) log.note('n1: ceremony step failed: REMOTE_TIMEOUT: kernel unreachable');
  t.same(lines, [
    'n1: ceremony step failed: REMOTE_TIMEOUT: kernel unreachable',
    'n1: ceremony step failed: REMOTE_TIMEOUT: kernel unreachable (again: 100 times since it was first logged)',
  ], '134 identical failures make two lines');
  log.note('n1: ceremony step failed: BINDING_MISMATCH: another package');
  t.same(lines.slice(2), [
    '(the failure before came 133 more times: n1: ceremony step failed: REMOTE_TIMEOUT: kernel unreachable)',
    'n1: ceremony step failed: BINDING_MISMATCH: another package',
  ], 'a different failure first says how often the one before came, then itself');
  log.note('n1: ceremony step failed: REMOTE_TIMEOUT: kernel unreachable');
  t.equal(lines[lines.length - 1], 'n1: ceremony step failed: REMOTE_TIMEOUT: kernel unreachable', 'a failure seen before, after another, is logged again');
  t.equal(lines.length, 5, 'and the one between was not repeated, so no count line');
});
