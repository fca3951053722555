/**
 * The reference the checker is measured against: linearizability decided by enumeration, with no
 * memo, no partitioning and no linked list, written to be obviously right rather than fast.
 *
 * For every subset of the indeterminate operations (those taken to have happened; the rest never
 * did), it tries every order of the chosen operations that respects real time (a before b whenever
 * a completed strictly before b was invoked; an indeterminate operation completes at +infinity)
 * and replays it on one model instance per key, checking every answer the client learned. An order
 * is abandoned at its first illegal step, which cannot discard a legal order (a model run that is
 * illegal at step k is illegal whatever follows). Exponential: only for histories of a few
 * operations.
 */
import type { History } from './history.js';
import { type Model, type Observed, REFUSED } from './models.js';

interface Op<I, O> { key: string; input: I; invokeAt: number; completeAt: number; observed: Observed<O> }

export function bruteForceLinearizable<S, I, O>(model: Model<S, I, O>, history: History<I, O>): boolean {
  const ops: Op<I, O>[] = [];
  for (const h of history) {
    if (h.outcome === 'fail') continue;
    ops.push(h.outcome === 'ok'
      ? { key: h.key, input: h.input, invokeAt: h.invokeAt, completeAt: h.completeAt, observed: { known: true, output: h.output } }
      : { key: h.key, input: h.input, invokeAt: h.invokeAt, completeAt: Infinity, observed: { known: false } });
  }
  const indeterminate = ops.map((o, i) => (o.observed.known ? -1 : i)).filter((i) => i >= 0);
  if (indeterminate.length > 20) throw new Error('brute force: too many indeterminate operations');
  for (let mask = 0; mask < 1 << indeterminate.length; mask++) {
    const omitted = new Set(indeterminate.filter((_, b) => (mask & (1 << b)) !== 0));
    const chosen = ops.filter((_, i) => !omitted.has(i));
    if (someOrder(model, chosen, new Array<boolean>(chosen.length).fill(false), 0, new Map())) return true;
  }
  return false;
}

function someOrder<S, I, O>(model: Model<S, I, O>, ops: readonly Op<I, O>[], placed: boolean[], count: number, states: ReadonlyMap<string, S>): boolean {
  if (count === ops.length) return true;
  for (let b = 0; b < ops.length; b++) {
    if (placed[b]) continue;
    const op = ops[b] as Op<I, O>;
    // b may come next only if nothing that must precede it is still unplaced.
    if (ops.some((a, j) => !placed[j] && j !== b && a.completeAt < op.invokeAt)) continue;
    const after = model.step(states.has(op.key) ? (states.get(op.key) as S) : model.init, op.input, op.observed);
    if (after === REFUSED) continue;
    const nextStates = new Map(states);
    nextStates.set(op.key, after);
    placed[b] = true;
    const found = someOrder(model, ops, placed, count + 1, nextStates);
    placed[b] = false;
    if (found) return true;
  }
  return false;
}

/**
 * Why a claimed linearization of one key is not one, or null when it is: every operation of the
 * key with a known outcome appears once, indeterminate ones at most once, no operation comes after
 * one that was invoked only after it completed, and the model accepts every step with the answer
 * the client learned.
 */
export function witnessProblem<S, I, O>(model: Model<S, I, O>, history: History<I, O>, key: string, order: readonly number[]): string | null {
  const seen = new Set<number>();
  let state = model.init;
  for (let k = 0; k < order.length; k++) {
    const id = order[k] as number;
    const h = history[id];
    if (h === undefined || h.key !== key || h.outcome === 'fail') return `#${id} is not an operation of key ${key}`;
    if (seen.has(id)) return `#${id} appears twice`;
    seen.add(id);
    for (const later of order.slice(k + 1)) {
      const l = history[later];
      if (l !== undefined && l.outcome !== 'indeterminate' && l.completeAt < h.invokeAt) return `#${later} completed before #${id} was invoked but comes after it`;
    }
    const after = model.step(state, h.input, h.outcome === 'ok' ? { known: true, output: h.output } : { known: false });
    if (after === REFUSED) return `the model refuses #${id} at position ${k}`;
    state = after;
  }
  const missing = history.findIndex((h, id) => h.key === key && h.outcome === 'ok' && !seen.has(id));
  return missing >= 0 ? `#${missing} completed but is missing` : null;
}
