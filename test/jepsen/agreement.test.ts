/**
 * The checker agrees with brute force (test/jepsen/brute-force.ts) on thousands of small random
 * histories, for each model: up to 7 calls on 1 or 2 keys by up to 3 processes, built from real
 * executions (each call takes effect at a random instant inside its interval, in that order, on a
 * reference implementation of the object written apart from the model) and then, for most of them,
 * perturbed: an answer replaced, an answered call made indeterminate or failed, an indeterminate one
 * given an answer, or every answer drawn at random. Checked on every history: both say the same;
 * an unperturbed execution is linearizable; a linearization the checker returns replays; the
 * checker never answers unknown on histories this small. The brute force runs on the whole history
 * with one object per key, so agreement also covers the partitioning by key.
 *
 * A failure prints fast-check's seed and path; replay it exactly with
 *   FC_SEED=<seed> FC_PATH=<path> npx tap dist/test/jepsen/agreement.test.js
 */
import t from 'tap';
import fc from 'fast-check';
import { checkHistory } from './linearizability.js';
import { bruteForceLinearizable, witnessProblem } from './brute-force.js';
import {
  actModel, appendModel, registerModel,
  type ActInput, type ActOutput, type ActStatus, type AppendInput, type AppendOutput, type Model, type RegisterInput, type RegisterOutput, type RegisterValue,
} from './models.js';
import type { History, Operation } from './history.js';

const seed = Number(process.env.FC_SEED ?? Math.floor(Math.random() * 0x7fffffff));
const path = process.env.FC_PATH;
const scale = Number(process.env.FC_SCALE ?? 1);

/** A model, how to draw its inputs, an implementation of the object apart from the model, and the answers a call can get. */
interface Spec<S, I, O> {
  readonly model: Model<S, I, O>;
  readonly input: fc.Arbitrary<I>;
  /** The object's state after the call and its answer; `state` is undefined before any call on the key. */
  run(state: S | undefined, input: I): [S, O];
  /** Answers to draw a wrong one from, given the true one (undefined for an indeterminate call). */
  answers(input: I, truth: O | undefined): readonly O[];
}

const VALUES = [0, 1, 2];
const register: Spec<RegisterValue, RegisterInput, RegisterOutput> = {
  model: registerModel(null),
  input: fc.oneof(
    fc.constant({ f: 'read' } as const),
    fc.constantFrom(...VALUES).map((value) => ({ f: 'write', value }) as const),
    fc.record({ from: fc.constantFrom<RegisterValue>(null, ...VALUES), to: fc.constantFrom(...VALUES) }).map(({ from, to }) => ({ f: 'cas', from, to }) as const),
  ),
  run(state = null, input) {
    if (input.f === 'read') return [state, state];
    if (input.f === 'write') return [input.value, null];
    return state === input.from ? [input.to, true] : [state, false];
  },
  answers: (input) => (input.f === 'read' ? [null, ...VALUES] : input.f === 'write' ? [null] : [true, false]),
};

const OUTCOMES = ['Settled', 'Aborted'];
const STATUSES: ActStatus[] = [{ kind: 'absent' }, { kind: 'open' }, ...OUTCOMES.map((outcome) => ({ kind: 'ended', outcome }) as const)];
const act: Spec<ActStatus, ActInput, ActOutput> = {
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

const append: Spec<readonly number[], AppendInput, AppendOutput> = {
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

type Fate = 'answered' | 'lost-applied' | 'lost-not-applied' | 'failed';
interface PlanOp<I> { process: number; key: number; input: I; gap: number; toLin: number; toComplete: number; fate: Fate; pick: number }
interface Mutation { op: number; kind: 'answer' | 'lose' | 'learn' | 'fail'; pick: number }
interface Plan<I> { ops: PlanOp<I>[]; keys: number; randomAnswers: boolean; mutations: Mutation[] }

function planArb<I>(input: fc.Arbitrary<I>): fc.Arbitrary<Plan<I>> {
  const op = fc.record({
    process: fc.nat(2), key: fc.nat(1), input,
    gap: fc.nat(3), toLin: fc.nat(3), toComplete: fc.nat(3),
    fate: fc.constantFrom<Fate>('answered', 'answered', 'answered', 'answered', 'answered', 'lost-applied', 'lost-not-applied', 'failed'),
    pick: fc.nat(100),
  });
  const mutation = fc.record({ op: fc.nat(6), kind: fc.constantFrom<Mutation['kind']>('answer', 'answer', 'answer', 'lose', 'learn', 'fail'), pick: fc.nat(100) });
  return fc.record({
    ops: fc.array(op, { minLength: 1, maxLength: 7 }),
    keys: fc.constantFrom(1, 2),
    randomAnswers: fc.nat(5).map((n) => n === 0),
    mutations: fc.oneof(fc.constant<Mutation[]>([]), fc.array(mutation, { minLength: 1, maxLength: 3 }), fc.array(mutation, { minLength: 1, maxLength: 3 })),
  });
}

/** The history of a real execution of the plan, then its perturbation. */
function build<S, I, O>(spec: Spec<S, I, O>, plan: Plan<I>): History<I, O> {
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

function agreement<S, I, O>(name: string, spec: Spec<S, I, O>, numRuns: number): void {
  t.test(`${name}: the checker agrees with brute force on ${numRuns} small histories`, async (tt) => {
    const tally = { ok: 0, violation: 0, perturbed: 0, indeterminate: 0, twoKeys: 0 };
    const prop = fc.property(planArb(spec.input), (plan) => {
      const h = build(spec, plan);
      const perturbed = plan.randomAnswers || plan.mutations.length > 0;
      const r = checkHistory(spec.model, h);
      const bf = bruteForceLinearizable(spec.model, h);
      const show = () => JSON.stringify(h);
      if (r.verdict === 'unknown') throw new Error(`unknown on a small history ${show()}`);
      if ((r.verdict === 'ok') !== bf) throw new Error(`checker ${r.verdict}, brute force ${bf ? 'ok' : 'violation'}: ${show()}`);
      if (!perturbed && !bf) throw new Error(`a real execution judged not linearizable: ${show()}`);
      for (const k of r.keys) {
        if (k.verdict !== 'ok') continue;
        const problem = witnessProblem(spec.model, h, k.key, k.linearization);
        if (problem !== null) throw new Error(`key ${k.key}: ${problem}: ${show()}`);
      }
      tally[r.verdict]++;
      if (perturbed) tally.perturbed++;
      if (h.some((o) => o.outcome === 'indeterminate')) tally.indeterminate++;
      if (r.keys.length === 2) tally.twoKeys++;
    });
    const run = fc.check(prop, { seed, numRuns, ...(path !== undefined ? { path } : {}) });
    tt.notOk(run.failed, run.failed
      ? `${String(run.errorInstance)}; replay with FC_SEED=${run.seed} FC_PATH=${run.counterexamplePath ?? ''}`
      : `${run.numRuns} histories agree (seed ${seed})`);
    tt.comment(`${name}: ${JSON.stringify(tally)}`);
    if (!run.failed && path === undefined) {
      // The generator must exercise both answers, indeterminate calls and both key counts.
      tt.ok(tally.ok >= numRuns / 10 && tally.violation >= numRuns / 10, `both answers common: ${tally.ok} ok, ${tally.violation} violations`);
      tt.ok(tally.indeterminate >= numRuns / 5, `${tally.indeterminate} histories with indeterminate calls`);
      tt.ok(tally.twoKeys >= numRuns / 5, `${tally.twoKeys} histories over two keys`);
    }
  });
}

t.comment(`seed ${seed}; replay with FC_SEED=${seed}`);
agreement('register', register, Math.round(4000 * scale));
agreement('custody act', act, Math.round(3000 * scale));
agreement('append list', append, Math.round(2000 * scale));
