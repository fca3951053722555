/**
 * Linearizability checker for client histories (test/jepsen/history.ts) against a sequential
 * model (test/jepsen/models.ts).
 *
 * Question. A history is linearizable when every operation can be given one instant between its
 * invocation and its completion such that, taken in the order of those instants, the operations
 * are a legal run of the model and every completed operation answered what the model answers
 * (Herlihy & Wing, "Linearizability: a correctness condition for concurrent objects", TOPLAS 12(3),
 * 1990). An indeterminate operation (the client never learned its outcome) may be given an instant
 * after its invocation, with whatever answer the model gives, or no instant at all.
 *
 * Partitioning (P-compositionality). Linearizability is local (Herlihy & Wing 1990, §3.3
 * "Locality"): a history is linearizable iff its restriction to each object is. Every operation
 * names one key (one object), so each key is checked alone (Horn & Kroening, "Faster
 * linearizability checking via P-compositionality", FORTE 2015; Porcupine's partitioned models).
 * One key found not linearizable makes the whole history not linearizable, whatever the others say.
 *
 * Search (Wing & Gong, "Testing and verifying concurrent objects", JPDC 17, 1993, with the
 * memoization of Lowe, "Testing for linearizability", CCPE 29(4), 2017; the "WGL" algorithm as
 * Porcupine implements it). The invocations and completions of a key's operations are laid out in
 * time order (at equal times invocations first, so touching intervals are concurrent) in a doubly
 * linked list. Walking the list from its head:
 *   - at an invocation, try to linearize that operation now: step the model from the current state
 *     with the operation's input and observed answer; if it is legal and the pair (set of operations
 *     linearized, model state) has never been reached before, push (operation, state before) on a
 *     stack, unlink the operation's invocation and completion from the list, and restart at the
 *     head; otherwise move to the next entry;
 *   - at a completion, the operation it ends was not linearized before it had to be: backtrack by
 *     popping the last linearized operation, restoring its state, relinking it, and continuing
 *     with the entry after its invocation; an empty stack means no linearization exists.
 * The search succeeds once every operation with a known outcome is linearized; indeterminate
 * operations still unlinked are the ones that never took effect. Indeterminate calls the model
 * declares read-only are dropped before the search: they may always be left out and would change
 * nothing if put in, while each one would double the pairs the memo must tell apart. Their completion is +infinity, so
 * they never force a backtrack. Lowe's memo is sound because the future of the search depends only
 * on which operations remain and on the model state: a pair seen once was fully explored (or is
 * being explored below on the stack) and cannot lead anywhere new. Models must therefore give equal
 * states equal stateKeys and be deterministic.
 *
 * Answers, per key and overall:
 *   ok         a linearization was found; it is returned (operation ids in linearization order),
 *              and the indeterminate operations it does not contain did not take effect in it.
 *   violation  the search was exhausted: no linearization exists. The explanation is the longest
 *              linearizable prefix the search reached, the model state after it, the operation whose
 *              completion came before it could be placed, and for each operation that could have
 *              come next, whether the model refused it there or every continuation failed.
 *   unknown    the budget ran out first: the key's search took more than `stepsPerKey` steps (one
 *              step: one entry visited), or the injected clock passed `timeLimitMs` since the check
 *              began. Unknown says nothing either way; it is never rounded to ok. Overall, any
 *              violation wins, else any unknown makes the history unknown.
 * The search is pure: the step budget makes it deterministic; a clock is read only when the caller
 * injects one, every 1024 steps.
 *
 * The search is exponential in the number of mutually concurrent operations of one key in the
 * worst case (the problem is NP-complete: Gibbons & Korach, SIAM J. Comput. 26(4), 1997); the
 * memo makes histories with few concurrent writers fast, and the budget bounds the rest.
 */
import { jepsen as limits } from '../../proto/limits.js';
import { type CheckedOp, type History, partitionByKey, prepareHistory } from './history.js';
import { type Model, type Observed, REFUSED } from './models.js';

export interface Budget {
  /** Most search steps per key; then the key answers unknown. Default limits.checkStepsPerKeyDefault. */
  readonly stepsPerKey?: number;
  /** A clock (milliseconds) read only every 1024 steps; with timeLimitMs, bounds the whole check. */
  readonly now?: () => number;
  readonly timeLimitMs?: number;
}

export interface PrefixStep<I, O> {
  readonly op: CheckedOp<I, O>;
  /** The model state after this operation, described. */
  readonly stateAfter: string;
}

export interface Candidate<I, O> {
  readonly op: CheckedOp<I, O>;
  /** refused: the model cannot take it there; dead-end: it can, but no linearization follows. */
  readonly verdict: 'refused' | 'dead-end';
}

export interface Explanation<I, O> {
  /** The longest linearizable prefix the search reached, in order. */
  readonly prefix: readonly PrefixStep<I, O>[];
  readonly stateAfterPrefix: string;
  /** The operation whose completion came while it could not be placed after the prefix. */
  readonly blocked: CheckedOp<I, O>;
  /** Every operation invoked before the blocked one completed and not in the prefix. */
  readonly candidates: readonly Candidate<I, O>[];
  readonly text: string;
}

interface KeyBase {
  readonly key: string;
  /** Operations searched: the key's operations but the indeterminate read-only ones. */
  readonly ops: number;
  readonly steps: number;
}
export type KeyResult<I, O> =
  | (KeyBase & { readonly verdict: 'ok'; readonly linearization: readonly number[] })
  | (KeyBase & { readonly verdict: 'violation'; readonly explanation: Explanation<I, O> })
  | (KeyBase & { readonly verdict: 'unknown'; readonly exhausted: 'steps' | 'time' });

export interface CheckResult<I, O> {
  readonly verdict: 'ok' | 'violation' | 'unknown';
  /** One result per key, in key order. */
  readonly keys: readonly KeyResult<I, O>[];
  readonly steps: number;
}

const CLOCK_EVERY = 1024;

/** Checks a whole history: validated (HistoryError if it cannot be judged), partitioned by key, each key searched. */
export function checkHistory<S, I, O>(model: Model<S, I, O>, history: History<I, O>, budget: Budget = {}): CheckResult<I, O> {
  const ops = prepareHistory(history);
  const parts = partitionByKey(ops);
  const deadline = budget.now !== undefined && budget.timeLimitMs !== undefined ? budget.now() + budget.timeLimitMs : Infinity;
  const clock = deadline === Infinity ? null : { now: budget.now as () => number, deadline };
  const stepsPerKey = budget.stepsPerKey ?? limits.checkStepsPerKeyDefault;
  const keys: KeyResult<I, O>[] = [];
  let steps = 0;
  const readOnly = model.readOnly;
  for (const key of [...parts.keys()].sort()) {
    const all = parts.get(key) as CheckedOp<I, O>[];
    const kept = readOnly === undefined ? all : all.filter((op) => op.known || !readOnly.call(model, op.input));
    const r = checkKey(model, key, kept, stepsPerKey, clock);
    steps += r.steps;
    keys.push(r);
  }
  const verdict = keys.some((k) => k.verdict === 'violation') ? 'violation' : keys.some((k) => k.verdict === 'unknown') ? 'unknown' : 'ok';
  return { verdict, keys, steps };
}

const observedOf = <I, O>(op: CheckedOp<I, O>): Observed<O> => (op.known ? { known: true, output: op.output as O } : { known: false });

/** The WGL search over the operations of one key. */
export function checkKey<S, I, O>(
  model: Model<S, I, O>, key: string, ops: readonly CheckedOp<I, O>[], stepsPerKey: number,
  clock: { now: () => number; deadline: number } | null,
): KeyResult<I, O> {
  const n = ops.length;
  if (clock !== null && clock.now() >= clock.deadline) return { key, ops: n, steps: 0, verdict: 'unknown', exhausted: 'time' };
  // Entries: 2i is the invocation of ops[i], 2i+1 its completion. Sorted by time, invocations first at equal times.
  const order = Array.from({ length: 2 * n }, (_, e) => e);
  const timeOf = (e: number): number => {
    const op = ops[e >> 1] as CheckedOp<I, O>;
    return (e & 1) === 0 ? op.invokeAt : op.completeAt;
  };
  order.sort((a, b) => timeOf(a) - timeOf(b) || (a & 1) - (b & 1) || a - b);
  // Linked list over positions 0..2n-1, head sentinel H = 2n, tail sentinel T = 2n+1.
  const H = 2 * n;
  const T = 2 * n + 1;
  const next = new Int32Array(2 * n + 2);
  const prev = new Int32Array(2 * n + 2);
  const posOf = new Int32Array(2 * n);
  order.forEach((e, p) => { posOf[e] = p; });
  let last = H;
  for (let p = 0; p < 2 * n; p++) { next[last] = p; prev[p] = last; last = p; }
  next[last] = T; prev[T] = last;
  const unlink = (p: number): void => { next[prev[p] as number] = next[p] as number; prev[next[p] as number] = prev[p] as number; };
  const relink = (p: number): void => { next[prev[p] as number] = p; prev[next[p] as number] = p; };

  const words = new Uint16Array(Math.ceil(n / 16));
  const flip = (i: number): void => { words[i >> 4] = (words[i >> 4] as number) ^ (1 << (i & 15)); };
  const bitsKey = (): string => {
    let s = '';
    for (let w = 0; w < words.length; w += 4096) s += String.fromCharCode(...words.subarray(w, w + 4096));
    return s;
  };
  const seen = new Set<string>();
  const observed = ops.map(observedOf);

  let state = model.init;
  const stackOp: number[] = [];
  const stackState: S[] = [];
  let knownLeft = ops.filter((o) => o.known).length;
  let best: number[] | null = null;
  let steps = 0;
  let p = next[H] as number;
  for (;;) {
    if (knownLeft === 0) return { key, ops: n, steps, verdict: 'ok', linearization: stackOp.map((i) => (ops[i] as CheckedOp<I, O>).id) };
    if (steps >= stepsPerKey) return { key, ops: n, steps, verdict: 'unknown', exhausted: 'steps' };
    steps++;
    if (clock !== null && steps % CLOCK_EVERY === 0 && clock.now() >= clock.deadline) return { key, ops: n, steps, verdict: 'unknown', exhausted: 'time' };
    // An operation with a known outcome is unlinked or its completion lies before every +infinity one.
    if (p === T) throw new Error('assertion failed: the search ran past every completion');
    const e = order[p] as number;
    const i = e >> 1;
    const op = ops[i] as CheckedOp<I, O>;
    if ((e & 1) === 0) {
      const after = model.step(state, op.input, observed[i] as Observed<O>);
      if (after !== REFUSED) {
        flip(i);
        const memo = bitsKey() + '\u0000' + model.stateKey(after);
        if (!seen.has(memo)) {
          seen.add(memo);
          stackOp.push(i);
          stackState.push(state);
          state = after;
          unlink(p);
          unlink(posOf[e + 1] as number);
          if (op.known) knownLeft--;
          p = next[H] as number;
          continue;
        }
        flip(i);
      }
      p = next[p] as number;
      continue;
    }
    // A completion: ops[i] had to be linearized by now and is not.
    if (best === null || stackOp.length > best.length) best = [...stackOp];
    const top = stackOp.pop();
    if (top === undefined) return { key, ops: n, steps, verdict: 'violation', explanation: explain(model, ops, best) };
    state = stackState.pop() as S;
    flip(top);
    const topOp = ops[top] as CheckedOp<I, O>;
    if (topOp.known) knownLeft++;
    const call = posOf[2 * top] as number;
    relink(posOf[2 * top + 1] as number);
    relink(call);
    p = next[call] as number;
  }
}

/**
 * The explanation of a violation, rebuilt from the longest prefix: replays it, finds the first
 * completion among the remaining operations (the one the search stopped at) and judges every
 * operation that could have been placed before it.
 */
function explain<S, I, O>(model: Model<S, I, O>, ops: readonly CheckedOp<I, O>[], prefixIdx: readonly number[]): Explanation<I, O> {
  let state = model.init;
  const prefix: PrefixStep<I, O>[] = prefixIdx.map((i) => {
    const op = ops[i] as CheckedOp<I, O>;
    const after = model.step(state, op.input, observedOf(op));
    if (after === REFUSED) throw new Error('assertion failed: a linearized prefix replays');
    state = after;
    return { op, stateAfter: model.describeState(state) };
  });
  const inPrefix = new Set(prefixIdx);
  const rest = ops.map((_, i) => i).filter((i) => !inPrefix.has(i));
  let blockedIdx = -1;
  for (const i of rest) {
    const op = ops[i] as CheckedOp<I, O>;
    if (blockedIdx < 0 || op.completeAt < (ops[blockedIdx] as CheckedOp<I, O>).completeAt) blockedIdx = i;
  }
  const blocked = ops[blockedIdx] as CheckedOp<I, O>;
  const candidates: Candidate<I, O>[] = rest
    .filter((i) => (ops[i] as CheckedOp<I, O>).invokeAt <= blocked.completeAt)
    .map((i) => {
      const op = ops[i] as CheckedOp<I, O>;
      return { op, verdict: model.step(state, op.input, observedOf(op)) === REFUSED ? 'refused' as const : 'dead-end' as const };
    });
  const show = (op: CheckedOp<I, O>): string =>
    `#${op.id} process ${String(op.process)} ${model.describeOp(op.input, observedOf(op))} [${op.invokeAt}, ${op.known ? op.completeAt : '?'}]`;
  const lines = [
    `key ${JSON.stringify(blocked.key)} (${model.name}): not linearizable`,
    `longest linearizable prefix (${prefix.length} of ${ops.length} operations), from ${model.describeState(model.init)}:`,
    ...prefix.map((s) => `  ${show(s.op)} => ${s.stateAfter}`),
    `then ${show(blocked)} completes before it can be placed; from ${model.describeState(state)}:`,
    ...candidates.map((c) => `  ${show(c.op)}: ${c.verdict === 'refused' ? 'the model refuses it here' : 'legal here, but no linearization follows'}`),
  ];
  return { prefix, stateAfterPrefix: model.describeState(state), blocked, candidates, text: lines.join('\n') };
}
