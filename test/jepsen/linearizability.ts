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
 * Porcupine implements it). A node of the search is (L, s): the set L of operations linearized so
 * far and the model state s after them. An operation may come next iff it was invoked before the
 * earliest completion among the operations not yet linearized (at equal times invocations come
 * first, so touching intervals are concurrent). The invocations and completions of the operations
 * with a known outcome are laid out in time order in a doubly linked list; walking it from its head:
 *   - at an invocation, try to linearize that operation now: step the model from s with its input
 *     and observed answer; if legal and the node reached is new (below), push (operation, s) on a
 *     stack, unlink the operation's invocation and completion, and restart at the head; otherwise
 *     move to the next entry;
 *   - at the first completion, every known operation that could come next has been tried; then try
 *     the indeterminate operations invoked by then, in a second list, in the same way;
 *   - when those are exhausted too, the operation of that completion cannot be placed after L:
 *     backtrack by popping the last operation linearized, restoring its state, relinking it, and
 *     continuing with the entry after it in its list; an empty stack means no linearization exists.
 * The search succeeds once every operation with a known outcome is linearized; indeterminate
 * operations still unlinked are the ones that never took effect. An indeterminate operation's
 * completion is +infinity: it never has to come before anything, and is tried only once the known
 * ones could not go on, so the search first looks for explanations that need fewer of them.
 *
 * Memo and dominance. Whether a node leads to a linearization depends only on L and s (the
 * operations left, their real-time constraints, and the model's future). Lowe's memo skips a node
 * equal to one pushed before: that one was fully explored, or is being explored below on the stack.
 * Beyond equality, a node X = (L, s) is dominated by Y = (L', s') when s' = s, L' and L hold the
 * same known operations, and L' holds a subset of L's indeterminate ones: any continuation from X
 * is one from Y (the indeterminate operations Y has left over precede nothing, and may be left
 * out), so if X leads to a linearization so does Y. Two prunings use it:
 *   - a node is skipped when a pushed node dominates it (the newest DOMINANCE_SCAN entries with the
 *     same known operations and state are compared; comparing fewer prunes less, never wrongly);
 *   - "overtaking": when the top of the stack is an indeterminate operation u and the next
 *     operation o reaches the same state from below u as from above it, the node (below u) + o
 *     dominates (below u) + u + o, and the node below u tries o too, so the latter is skipped.
 * Soundness, by the usual argument: suppose a linearization exists but the search ends in a
 * violation; order the nodes that lead to one by (known operations left, fewest indeterminate
 * operations a linearization from them needs), and take the least pushed one X. Its next operation
 * on such a linearization was tried from X, and reached a node that was pushed, or skipped for a
 * pushed node dominating it (through a chain of skips, each ending lower on the stack); either way a
 * pushed node that leads to a linearization and is less than X: a contradiction. Models must give
 * equal states equal stateKeys and be deterministic.
 *
 * Indeterminate calls the model declares read-only are dropped before the search: they may always
 * be left out and would change nothing if put in.
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
 * injects one, every limits.checkClockEverySteps steps.
 *
 * The search is exponential in the number of mutually concurrent operations of one key in the
 * worst case (the problem is NP-complete: Gibbons & Korach, SIAM J. Comput. 26(4), 1997), and an
 * indeterminate operation stays concurrent with everything after it. The memo and the dominance
 * rules make histories with few concurrent writers and few indeterminate writes fast; refuting a
 * history with dozens of indeterminate writes on one key may take more than any budget (unknown).
 * Memory: each node pushed keeps its set of operations linearized, one bit per operation of the
 * key, so a key of n operations costs about n/8 bytes per step; workloads should spread their calls
 * over many keys (the act model has one key per act).
 */
import { jepsen as limits } from '../../proto/limits.js';
import { type CheckedOp, type History, partitionByKey, prepareHistory } from './history.js';
import { type Model, type Observed, REFUSED } from './models.js';

export interface Budget {
  /** Most search steps per key; then the key answers unknown. Default limits.checkStepsPerKeyDefault. */
  readonly stepsPerKey?: number;
  /** A clock (milliseconds) read every limits.checkClockEverySteps steps; with timeLimitMs, bounds the whole check. */
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

const CLOCK_EVERY = limits.checkClockEverySteps;
const DOMINANCE_SCAN = limits.checkDominanceScan;

/** Checks a whole history: validated (HistoryError if it cannot be judged), partitioned by key, each key searched. */
export function checkHistory<S, I, O>(model: Model<S, I, O>, history: History<I, O>, budget: Budget = {}): CheckResult<I, O> {
  // A budget that bounds nothing (NaN compares false) or a clock without a limit is a mistake, not "no budget".
  if (budget.stepsPerKey !== undefined && !(budget.stepsPerKey >= 0)) throw new RangeError(`stepsPerKey ${budget.stepsPerKey} is not a number of steps`);
  if ((budget.now === undefined) !== (budget.timeLimitMs === undefined)) throw new RangeError('a time budget needs both a clock and a limit');
  if (budget.timeLimitMs !== undefined && !(budget.timeLimitMs >= 0)) throw new RangeError(`timeLimitMs ${budget.timeLimitMs} is not a duration`);
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
  // Each operation's index among the known (slot in the main list and in kBits) or the indeterminate ones (uBits).
  const known: number[] = [];
  const unknown: number[] = [];
  const slot = new Int32Array(n);
  ops.forEach((op, i) => {
    if (op.known) { slot[i] = known.length; known.push(i); } else { slot[i] = unknown.length; unknown.push(i); }
  });
  const nk = known.length;
  const nu = unknown.length;

  // Main list: entry 2k is the invocation of known[k], 2k+1 its completion, by time, invocations
  // first at equal times; positions 0..2nk-1, head H, tail T.
  const order = Array.from({ length: 2 * nk }, (_, e) => e);
  const timeOf = (e: number): number => {
    const op = ops[known[e >> 1] as number] as CheckedOp<I, O>;
    return (e & 1) === 0 ? op.invokeAt : op.completeAt;
  };
  order.sort((a, b) => timeOf(a) - timeOf(b) || (a & 1) - (b & 1) || a - b);
  const H = 2 * nk;
  const T = 2 * nk + 1;
  const next = new Int32Array(2 * nk + 2);
  const prev = new Int32Array(2 * nk + 2);
  const posOf = new Int32Array(2 * nk);
  order.forEach((e, p) => { posOf[e] = p; });
  chain(next, prev, H, T, 2 * nk);
  // Indeterminate list: the invocations of unknown[u], by time; positions 0..nu-1, head HU, tail TU.
  const uOrder = Array.from({ length: nu }, (_, u) => u);
  const invokeOfU = (u: number): number => (ops[unknown[u] as number] as CheckedOp<I, O>).invokeAt;
  uOrder.sort((a, b) => invokeOfU(a) - invokeOfU(b) || a - b);
  const HU = nu;
  const TU = nu + 1;
  const nextU = new Int32Array(nu + 2);
  const prevU = new Int32Array(nu + 2);
  const uPosOf = new Int32Array(nu);
  uOrder.forEach((u, q) => { uPosOf[u] = q; });
  chain(nextU, prevU, HU, TU, nu);

  const kBits = new Uint16Array(Math.ceil(nk / 16));
  const uBits = new Uint16Array(Math.ceil(nu / 16));
  const flip = (i: number): void => {
    const bits = (ops[i] as CheckedOp<I, O>).known ? kBits : uBits;
    const b = slot[i] as number;
    bits[b >> 4] = (bits[b >> 4] as number) ^ (1 << (b & 15));
  };
  // The memo: every node pushed, exactly (Lowe's memo); and for each (known operations linearized,
  // state), the sets of indeterminate ones linearized at the nodes pushed, the newest
  // DOMINANCE_SCAN of which are checked for a subset (checking fewer prunes less, never wrongly).
  const exact = new Set<string>();
  const memo = new Map<string, Uint16Array[]>();
  const dominated = (sets: readonly Uint16Array[]): boolean => {
    for (let k = sets.length - 1; k >= 0 && k >= sets.length - DOMINANCE_SCAN; k--) {
      const sub = sets[k] as Uint16Array;
      let subset = true;
      for (let j = 0; j < sub.length && subset; j++) subset = ((sub[j] as number) & ~(uBits[j] as number)) === 0;
      if (subset) return true;
    }
    return false;
  };
  const observed = ops.map(observedOf);

  let state = model.init;
  const stackOp: number[] = [];
  const stackState: S[] = [];
  const stackBoundary: number[] = [];
  /**
   * The operation at the top of the stack is indeterminate and ops[i], placed right after it,
   * leaves the same state as placed instead of it: the indeterminate one changed nothing there.
   * The node below tries ops[i] too, reaching the same state with a subset of what this node
   * linearized, so this node is dominated (see "Memo and dominance" in the header).
   */
  const overtakes = (i: number, after: S): boolean => {
    const top = stackOp.length - 1;
    if (top < 0 || (ops[stackOp[top] as number] as CheckedOp<I, O>).known) return false;
    const instead = model.step(stackState[top] as S, (ops[i] as CheckedOp<I, O>).input, observed[i] as Observed<O>);
    return instead !== REFUSED && model.stateKey(instead) === model.stateKey(after);
  };
  /** Linearizes ops[i] next if the model takes it and the node it reaches is new and not dominated. */
  const tryPush = (i: number, boundary: number): boolean => {
    const op = ops[i] as CheckedOp<I, O>;
    const after = model.step(state, op.input, observed[i] as Observed<O>);
    if (after === REFUSED || overtakes(i, after)) return false;
    flip(i);
    const at = bitsKey(kBits) + '\u0000' + model.stateKey(after);
    const node = nu === 0 ? at : at + '\u0000' + bitsKey(uBits);
    const sets = nu === 0 ? undefined : memo.get(at);
    if (exact.has(node) || (sets !== undefined && dominated(sets))) {
      flip(i);
      return false;
    }
    exact.add(node);
    if (nu > 0) {
      if (sets === undefined) memo.set(at, [uBits.slice()]);
      else sets.push(uBits.slice());
    }
    stackOp.push(i);
    stackState.push(state);
    stackBoundary.push(boundary);
    state = after;
    if (op.known) {
      unlink(next, prev, posOf[2 * (slot[i] as number)] as number);
      unlink(next, prev, posOf[2 * (slot[i] as number) + 1] as number);
      knownLeft--;
    } else {
      unlink(nextU, prevU, uPosOf[slot[i] as number] as number);
    }
    return true;
  };

  let knownLeft = nk;
  let best: number[] | null = null;
  let steps = 0;
  // Phase 'known': walking the main list from p. Phase 'indeterminate': the main list's first
  // completion is at `boundary`; walking the indeterminate list from q over those invoked by then.
  let phase: 'known' | 'indeterminate' = 'known';
  let p = next[H] as number;
  let q = HU;
  let boundary = 0;
  for (;;) {
    if (knownLeft === 0) return { key, ops: n, steps, verdict: 'ok', linearization: stackOp.map((i) => (ops[i] as CheckedOp<I, O>).id) };
    if (steps >= stepsPerKey) return { key, ops: n, steps, verdict: 'unknown', exhausted: 'steps' };
    steps++;
    if (clock !== null && steps % CLOCK_EVERY === 0 && clock.now() >= clock.deadline) return { key, ops: n, steps, verdict: 'unknown', exhausted: 'time' };
    if (phase === 'known') {
      // A known operation not yet linearized has its completion in the list, so the walk meets one before the tail.
      if (p === T) throw new Error('assertion failed: the search ran past every completion');
      const e = order[p] as number;
      const i = known[e >> 1] as number;
      if ((e & 1) === 0) {
        if (tryPush(i, 0)) p = next[H] as number;
        else p = next[p] as number;
      } else {
        phase = 'indeterminate';
        boundary = (ops[i] as CheckedOp<I, O>).completeAt;
        q = nextU[HU] as number;
      }
      continue;
    }
    if (q !== TU && invokeOfU(uOrder[q] as number) <= boundary) {
      if (tryPush(unknown[uOrder[q] as number] as number, boundary)) {
        phase = 'known';
        p = next[H] as number;
      } else {
        q = nextU[q] as number;
      }
      continue;
    }
    // Nothing more can come before the first completion: its operation cannot be placed here.
    if (best === null || stackOp.length > best.length) best = [...stackOp];
    const top = stackOp.pop();
    if (top === undefined) return { key, ops: n, steps, verdict: 'violation', explanation: explain(model, ops, best) };
    state = stackState.pop() as S;
    const topBoundary = stackBoundary.pop() as number;
    flip(top);
    const s = slot[top] as number;
    if ((ops[top] as CheckedOp<I, O>).known) {
      knownLeft++;
      const call = posOf[2 * s] as number;
      relink(next, prev, posOf[2 * s + 1] as number);
      relink(next, prev, call);
      phase = 'known';
      p = next[call] as number;
    } else {
      const at = uPosOf[s] as number;
      relink(nextU, prevU, at);
      phase = 'indeterminate';
      boundary = topBoundary;
      q = nextU[at] as number;
    }
  }
}

/** A bitset as a string, 16 bits a character. */
function bitsKey(words: Uint16Array): string {
  let s = '';
  for (let w = 0; w < words.length; w += 4096) s += String.fromCharCode(...words.subarray(w, w + 4096));
  return s;
}
/** Links positions 0..count-1 in order between head and tail. */
function chain(next: Int32Array, prev: Int32Array, head: number, tail: number, count: number): void {
  let last = head;
  for (let p = 0; p < count; p++) { next[last] = p; prev[p] = last; last = p; }
  next[last] = tail;
  prev[tail] = last;
}
function unlink(next: Int32Array, prev: Int32Array, p: number): void {
  next[prev[p] as number] = next[p] as number;
  prev[next[p] as number] = prev[p] as number;
}
function relink(next: Int32Array, prev: Int32Array, p: number): void {
  next[prev[p] as number] = p;
  prev[next[p] as number] = p;
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
