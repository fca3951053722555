/**
 * A client history for the linearizability checker: what each client process asked, when, and
 * what it was told (Jepsen's model of a history; Kingsbury, "Knossos", and Herlihy & Wing 1990 §2).
 *
 * An operation is one call by one process on one key (one independent object, §locality below):
 *   invokeAt    when the process sent the call (any clock that orders events: monotonic ns, or a
 *               global event counter);
 *   outcome     'ok'            the process learned the answer `output` at `completeAt`;
 *               'fail'          the process learned that the call certainly did not take effect
 *                               (a refusal before anything was proposed); it is dropped before
 *                               checking, after its timing is validated;
 *               'indeterminate' the process never learned the outcome (timeout, connection lost,
 *                               crash): the call may have taken effect, once, at any moment after
 *                               invokeAt, or never; its completion is +infinity and its output is
 *                               unconstrained (Jepsen's :info).
 *
 * Real-time order: a precedes b iff a completed strictly before b was invoked
 * (a.completeAt < b.invokeAt). Calls whose intervals touch (a.completeAt == b.invokeAt) are
 * concurrent. Each process is sequential: its next call is invoked strictly after its previous one
 * completed, so a process whose call is indeterminate makes no further calls (a client that gives
 * up on a call continues as a new process id, as in Jepsen).
 *
 * validateHistory refuses, with every problem listed, a history the checker could not judge
 * soundly: non-finite or reversed times, a process with two calls open at once, a call after an
 * indeterminate one on the same process, a missing key.
 */
import { jepsen as limits } from '../../proto/limits.js';

export type ProcessId = string | number;

interface OpBase<I> {
  readonly process: ProcessId;
  /** The independent object the call addresses (a register name, an act id). */
  readonly key: string;
  readonly input: I;
  readonly invokeAt: number;
}

export type Operation<I, O> =
  | (OpBase<I> & { readonly outcome: 'ok'; readonly completeAt: number; readonly output: O })
  | (OpBase<I> & { readonly outcome: 'fail'; readonly completeAt: number })
  | (OpBase<I> & { readonly outcome: 'indeterminate' });

export type History<I, O> = readonly Operation<I, O>[];

/**
 * An operation as the checker sees it: `id` is its index in the caller's history (so explanations
 * name the caller's operations), `completeAt` is +Infinity and `output` absent when indeterminate.
 */
export interface CheckedOp<I, O> {
  readonly id: number;
  readonly process: ProcessId;
  readonly key: string;
  readonly input: I;
  readonly invokeAt: number;
  readonly completeAt: number;
  readonly known: boolean;
  readonly output: O | undefined;
}

export interface HistoryProblem {
  /** Index of the offending operation in the history. */
  readonly op: number;
  readonly problem: 'bad-time' | 'completes-before-invoked' | 'overlaps-own-process' | 'after-indeterminate' | 'bad-key' | 'bad-outcome' | 'too-many-ops';
  readonly detail: string;
}

/** A history the checker refuses to judge; `problems` lists every one found, in history order. */
export class HistoryError extends Error {
  override readonly name = 'HistoryError';
  readonly problems: readonly HistoryProblem[];
  constructor(problems: readonly HistoryProblem[]) {
    const head = problems.slice(0, 5).map((p) => `op ${p.op}: ${p.problem}: ${p.detail}`).join('; ');
    super(`invalid history (${problems.length} problem${problems.length === 1 ? '' : 's'}): ${head}${problems.length > 5 ? '; ...' : ''}`);
    this.problems = problems;
  }
}

/** Every problem of a history, empty when the checker can judge it. */
export function historyProblems<I, O>(history: History<I, O>): HistoryProblem[] {
  const problems: HistoryProblem[] = [];
  if (history.length > limits.historyOpsMax) {
    problems.push({ op: limits.historyOpsMax, problem: 'too-many-ops', detail: `${history.length} operations, at most ${limits.historyOpsMax}` });
    return problems;
  }
  const byProcess = new Map<ProcessId, number[]>();
  history.forEach((op, i) => {
    const outcome = (op as { outcome: unknown }).outcome;
    if (outcome !== 'ok' && outcome !== 'fail' && outcome !== 'indeterminate') {
      problems.push({ op: i, problem: 'bad-outcome', detail: `outcome ${String(outcome)} is not ok, fail or indeterminate` });
      return;
    }
    if (typeof op.key !== 'string') problems.push({ op: i, problem: 'bad-key', detail: 'key must be a string' });
    if (typeof op.process !== 'string' && typeof op.process !== 'number') problems.push({ op: i, problem: 'bad-key', detail: 'process must be a string or a number' });
    if (!Number.isFinite(op.invokeAt)) {
      problems.push({ op: i, problem: 'bad-time', detail: `invokeAt ${op.invokeAt} is not a finite number` });
      return;
    }
    if (op.outcome !== 'indeterminate') {
      if (!Number.isFinite(op.completeAt)) {
        problems.push({ op: i, problem: 'bad-time', detail: `completeAt ${op.completeAt} is not a finite number (an operation whose outcome is unknown is indeterminate)` });
        return;
      }
      if (op.completeAt < op.invokeAt) {
        problems.push({ op: i, problem: 'completes-before-invoked', detail: `completeAt ${op.completeAt} < invokeAt ${op.invokeAt}` });
        return;
      }
    }
    const list = byProcess.get(op.process) ?? [];
    list.push(i);
    byProcess.set(op.process, list);
  });
  for (const [process, ids] of byProcess) {
    const sorted = [...ids].sort((a, b) => (history[a] as Operation<I, O>).invokeAt - (history[b] as Operation<I, O>).invokeAt || a - b);
    for (let j = 1; j < sorted.length; j++) {
      const prevId = sorted[j - 1] as number;
      const id = sorted[j] as number;
      const prev = history[prevId] as Operation<I, O>;
      const op = history[id] as Operation<I, O>;
      if (prev.outcome === 'indeterminate') {
        problems.push({ op: id, problem: 'after-indeterminate', detail: `process ${String(process)} calls again after its op ${prevId} became indeterminate; continue as a new process id` });
      } else if (!(prev.completeAt < op.invokeAt)) {
        problems.push({ op: id, problem: 'overlaps-own-process', detail: `process ${String(process)} has op ${prevId} open until ${prev.completeAt} when it invokes this one at ${op.invokeAt}` });
      }
    }
  }
  return problems.sort((a, b) => a.op - b.op);
}

/** Validates a history and returns the operations the checker judges ('fail' ones dropped). */
export function prepareHistory<I, O>(history: History<I, O>): CheckedOp<I, O>[] {
  const problems = historyProblems(history);
  if (problems.length > 0) throw new HistoryError(problems);
  const ops: CheckedOp<I, O>[] = [];
  history.forEach((op, id) => {
    if (op.outcome === 'fail') return;
    const known = op.outcome === 'ok';
    ops.push({
      id, process: op.process, key: op.key, input: op.input, invokeAt: op.invokeAt,
      completeAt: known ? op.completeAt : Infinity, known, output: known ? op.output : undefined,
    });
  });
  return ops;
}

/** The operations of each key, in history order (Herlihy & Wing 1990 §3.3: locality). */
export function partitionByKey<I, O>(ops: readonly CheckedOp<I, O>[]): Map<string, CheckedOp<I, O>[]> {
  const parts = new Map<string, CheckedOp<I, O>[]>();
  for (const op of ops) {
    const list = parts.get(op.key);
    if (list === undefined) parts.set(op.key, [op]);
    else list.push(op);
  }
  return parts;
}
