/** Short constructors for hand-written histories. */
import type { Operation, ProcessId } from './history.js';

export const ok = <I, O>(process: ProcessId, key: string, input: I, invokeAt: number, completeAt: number, output: O): Operation<I, O> =>
  ({ process, key, input, invokeAt, completeAt, outcome: 'ok', output });
export const failed = <I, O>(process: ProcessId, key: string, input: I, invokeAt: number, completeAt: number): Operation<I, O> =>
  ({ process, key, input, invokeAt, completeAt, outcome: 'fail' });
export const info = <I, O>(process: ProcessId, key: string, input: I, invokeAt: number): Operation<I, O> =>
  ({ process, key, input, invokeAt, outcome: 'indeterminate' });
