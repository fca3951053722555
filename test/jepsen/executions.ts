/**
 * Histories of real executions for the checker's tests: each call takes effect at a random instant
 * inside its interval, in that order, on a reference implementation of the object written apart
 * from the model (so a model that refuses a legal behaviour shows); then, optionally, perturbed: an
 * answer replaced by a wrong one, an answered call made indeterminate or failed, an indeterminate
 * one given an answer, or every answer drawn at random.
 */
import fc from 'fast-check';
import {
  actModel, appendModel, registerModel,
  type ActInput, type ActOutput, type ActStatus, type AppendInput, type AppendOutput, type Model, type RegisterInput, type RegisterOutput, type RegisterValue,
} from './models.js';
import type { History, Operation } from './history.js';

/** A model, how to draw its inputs, an implementation of the object apart from the model, and the answers a call can get. */
export interface Spec<S, I, O> {
  readonly model: Model<S, I, O>;
  readonly input: fc.Arbitrary<I>;
  /** The object's state after the call and its answer; `state` is undefined before any call on the key. */
  run(state: S | undefined, input: I): [S, O];
  /** Answers to draw a wrong one from, given the true one (undefined for an indeterminate call). */
  answers(input: I, truth: O | undefined): readonly O[];
}

const VALUES = [0, 1, 2];
/** A register over the given values (fewer values: more calls that leave equal states). */
export function registerOver(values: readonly number[]): Spec<RegisterValue, RegisterInput, RegisterOutput> {
  return {
    model: registerModel(null),
    input: fc.oneof(
      fc.constant({ f: 'read' } as const),
      fc.constantFrom(...values).map((value) => ({ f: 'write', value }) as const),
      fc.record({ from: fc.constantFrom<RegisterValue>(null, ...values), to: fc.constantFrom(...values) }).map(({ from, to }) => ({ f: 'cas', from, to }) as const),
    ),
    run(state = null, input) {
      if (input.f === 'read') return [state, state];
      if (input.f === 'write') return [input.value, null];
      return state === input.from ? [input.to, true] : [state, false];
    },
    answers: (input) => (input.f === 'read' ? [null, ...values] : input.f === 'write' ? [null] : [true, false]),
  };
}
export const register = registerOver(VALUES);

const OUTCOMES = ['Settled', 'Aborted'];
const STATUSES: ActStatus[] = [{ kind: 'absent' }, { kind: 'open' }, ...OUTCOMES.map((outcome) => ({ kind: 'ended', outcome }) as const)];
export const act: Spec<ActStatus, ActInput, ActOutput> = {
  model: actModel,
  input: fc.oneof(
    fc.constant({ f: 'submit' } as const),
    fc.constantFrom(...OUTCOMES).map((outcome) => ({ f: 'end', outcome }) as const),
    fc.constant({ f: 'read' } as const),
  ),
  run(state = { kind: 'absent' }, input) {
    if (input.f === 'read') return [state, state];
    if (input.f === 'submit') return state.kind === 'absent' ? [{ kind: 'open' }, 'accepted'] : [state, 'duplicate'];
    if (state.kind === 'open') return [{ kind: 'ended', outcome: input.outcome }, 'ended'];
    return [state, state.kind === 'absent' ? 'not-submitted' : 'already-ended'];
  },
  answers: (input) => (input.f === 'read' ? STATUSES : input.f === 'submit' ? ['accepted', 'duplicate'] : ['ended', 'already-ended', 'not-submitted']),
};

export const append: Spec<readonly number[], AppendInput, AppendOutput> = {
  model: appendModel,
  input: fc.oneof(fc.constant({ f: 'read' } as const), fc.constantFrom(...VALUES).map((value) => ({ f: 'append', value }) as const)),
  run(state = [], input) {
    return input.f === 'read' ? [state, [...state]] : [[...state, input.value], null];
  },
  answers(input, truth) {
    if (input.f === 'append') return [null];
    const list = Array.isArray(truth) ? (truth as number[]) : [];
    // Near misses of the true list: one element lost, one doubled, two swapped, one added.
    const near: number[][] = [[], [0], [1, 0], list.slice(1), [...list, 0], [...list, ...list.slice(-1)], [...list].reverse(), list.slice(0, -1)];
    return near;
  },
};

export type Fate = 'answered' | 'lost-applied' | 'lost-not-applied' | 'failed';
export interface PlanOp<I> { process: number; key: number; input: I; gap: number; toLin: number; toComplete: number; fate: Fate; pick: number }
export interface Mutation { op: number; kind: 'answer' | 'lose' | 'learn' | 'fail'; pick: number }
export interface Plan<I> { ops: PlanOp<I>[]; keys: number; randomAnswers: boolean; mutations: Mutation[] }

/** The size of the histories a plan makes; the defaults are small enough for brute force. */
export interface Shape {
  readonly opsMin: number;
  readonly opsMax: number;
  readonly processes: number;
  readonly keys: number;
  /** Of every 20 calls, how many lose their answer (half of them took effect) and how many fail. */
  readonly lostPer20: number;
  readonly failedPer20: number;
  /** Whether plans perturb the execution. */
  readonly perturb: boolean;
}
export const SMALL: Shape = { opsMin: 1, opsMax: 7, processes: 3, keys: 2, lostPer20: 4, failedPer20: 2, perturb: true };

export function planArb<I>(input: fc.Arbitrary<I>, shape: Shape = SMALL): fc.Arbitrary<Plan<I>> {
  const fate = fc.nat(19).map((r): Fate =>
    r < shape.lostPer20 ? (r % 2 === 0 ? 'lost-applied' : 'lost-not-applied') : r < shape.lostPer20 + shape.failedPer20 ? 'failed' : 'answered');
  const op = fc.record({
    process: fc.nat(shape.processes - 1), key: fc.nat(shape.keys - 1), input,
    gap: fc.nat(3), toLin: fc.nat(3), toComplete: fc.nat(3), fate, pick: fc.nat(100),
  });
  const mutation = fc.record({ op: fc.nat(shape.opsMax - 1), kind: fc.constantFrom<Mutation['kind']>('answer', 'answer', 'answer', 'lose', 'learn', 'fail'), pick: fc.nat(100) });
  return fc.record({
    ops: fc.array(op, { minLength: shape.opsMin, maxLength: shape.opsMax, size: 'max' }),
    keys: fc.integer({ min: 1, max: shape.keys }),
    randomAnswers: shape.perturb ? fc.nat(5).map((n) => n === 0) : fc.constant(false),
    mutations: shape.perturb
      ? fc.oneof(fc.constant<Mutation[]>([]), fc.array(mutation, { minLength: 1, maxLength: 3 }), fc.array(mutation, { minLength: 1, maxLength: 3 }))
      : fc.constant<Mutation[]>([]),
  });
}

/** The history of a real execution of the plan, then its perturbation. */
export function build<S, I, O>(spec: Spec<S, I, O>, plan: Plan<I>): History<I, O> {
  const n = plan.ops.length;
  const cursor = new Map<number, number>();
  const generation = new Map<number, number>();
  const times = plan.ops.map((o) => {
    const invokeAt = (cursor.get(o.process) ?? 0) + o.gap;
    const lin = invokeAt + o.toLin;
    const completeAt = lin + o.toComplete;
    cursor.set(o.process, completeAt + 1);
    const gen = generation.get(o.process) ?? 0;
    // A process that lost an answer continues as a new process.
    if (o.fate === 'lost-applied' || o.fate === 'lost-not-applied') generation.set(o.process, gen + 1);
    return { invokeAt, lin, completeAt, pid: `${o.process}.${gen}` };
  });
  const outputs: (O | undefined)[] = new Array<O | undefined>(n).fill(undefined);
  const states = new Map<number, S>();
  const byLin = plan.ops.map((_, i) => i).sort((a, b) => (times[a] as { lin: number }).lin - (times[b] as { lin: number }).lin || a - b);
  for (const i of byLin) {
    const o = plan.ops[i] as PlanOp<I>;
    if (o.fate === 'lost-not-applied' || o.fate === 'failed') continue;
    const key = o.key % plan.keys;
    const [after, out] = spec.run(states.get(key), o.input);
    states.set(key, after);
    outputs[i] = out;
  }
  const ops: Operation<I, O>[] = plan.ops.map((o, i) => {
    const { invokeAt, completeAt, pid } = times[i] as { invokeAt: number; completeAt: number; pid: string };
    const key = `k${o.key % plan.keys}`;
    if (o.fate === 'failed') return { process: pid, key, input: o.input, invokeAt, completeAt, outcome: 'fail' };
    if (o.fate !== 'answered') return { process: pid, key, input: o.input, invokeAt, outcome: 'indeterminate' };
    const pickFrom = spec.answers(o.input, outputs[i]);
    const output = plan.randomAnswers ? (pickFrom[o.pick % pickFrom.length] as O) : (outputs[i] as O);
    return { process: pid, key, input: o.input, invokeAt, completeAt, outcome: 'ok', output };
  });
  const lastOfProcess = (i: number): boolean => !ops.some((o, j) => j !== i && o.process === (ops[i] as Operation<I, O>).process && o.invokeAt > (ops[i] as Operation<I, O>).invokeAt);
  for (const m of plan.mutations) {
    const i = m.op % n;
    const o = ops[i] as Operation<I, O>;
    const answers = spec.answers(o.input, outputs[i]);
    if (m.kind === 'answer' && o.outcome === 'ok') {
      // A wrong answer where there is one.
      const wrong = answers.filter((a) => JSON.stringify(a) !== JSON.stringify(o.output));
      if (wrong.length > 0) ops[i] = { ...o, output: wrong[m.pick % wrong.length] as O };
    }
    if (m.kind === 'fail' && o.outcome === 'ok') ops[i] = { process: o.process, key: o.key, input: o.input, invokeAt: o.invokeAt, completeAt: o.completeAt, outcome: 'fail' };
    if (m.kind === 'lose' && o.outcome === 'ok' && lastOfProcess(i)) ops[i] = { process: o.process, key: o.key, input: o.input, invokeAt: o.invokeAt, outcome: 'indeterminate' };
    if (m.kind === 'learn' && o.outcome === 'indeterminate') ops[i] = { ...o, completeAt: o.invokeAt + (m.pick % 4), outcome: 'ok', output: answers[m.pick % answers.length] as O };
  }
  return ops;
}
