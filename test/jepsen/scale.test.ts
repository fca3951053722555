/**
 * The checker beyond brute-force sizes. Real executions of a few hundred calls over several keys,
 * some calls indeterminate or failed, are linearizable and the linearization returned replays.
 * Perturbed histories of medium size get the same answer partitioned by key as checked whole, as
 * one object holding every key (locality, Herlihy & Wing 1990 §3.3). A long history with a planted
 * read of a value never written is a violation on that key alone.
 *
 * A failure prints fast-check's seed and path; replay it exactly with
 *   FC_SEED=<seed> FC_PATH=<path> npx tap dist/test/jepsen/scale.test.js
 */
import t from 'tap';
import fc from 'fast-check';
import { checkHistory } from './linearizability.js';
import { witnessProblem } from './brute-force.js';
import { act, append, build, planArb, register, type Shape, type Spec } from './executions.js';
import { REFUSED, type Model } from './models.js';
import type { History, Operation } from './history.js';

const seed = Number(process.env.FC_SEED ?? Math.floor(Math.random() * 0x7fffffff));
const path = process.env.FC_PATH;
const scale = Number(process.env.FC_SCALE ?? 1);
const replay = <T>(run: fc.RunDetails<T>) => `${String(run.errorInstance)}; replay with FC_SEED=${run.seed} FC_PATH=${run.counterexamplePath ?? ''}`;

/** Every key of a history as one object: the state maps each key to its model state. */
function whole<S, I, O>(m: Model<S, I, O>): Model<ReadonlyMap<string, S>, { key: string; input: I }, O> {
  return {
    name: `${m.name} (all keys)`,
    init: new Map(),
    step(state, { key, input }, observed) {
      const after = m.step(state.has(key) ? (state.get(key) as S) : m.init, input, observed);
      return after === REFUSED ? REFUSED : new Map(state).set(key, after);
    },
    stateKey: (s) => [...s.keys()].sort().map((k) => `${k}=${m.stateKey(s.get(k) as S)}`).join(';'),
    describeState: (s) => [...s.keys()].sort().map((k) => `${k}: ${m.describeState(s.get(k) as S)}`).join(', '),
    describeOp: ({ key, input }, observed) => `${key}: ${m.describeOp(input, observed)}`,
  };
}
const asOneKey = <I, O>(h: History<I, O>): History<{ key: string; input: I }, O> =>
  h.map((o) => ({ ...o, key: 'all', input: { key: o.key, input: o.input } }) as Operation<{ key: string; input: I }, O>);

const LARGE: Shape = { opsMin: 100, opsMax: 400, processes: 6, keys: 8, lostPer20: 1, failedPer20: 1, perturb: false };
const MEDIUM: Shape = { opsMin: 8, opsMax: 14, processes: 4, keys: 3, lostPer20: 3, failedPer20: 1, perturb: true };

function suite<S, I, O>(name: string, spec: Spec<S, I, O>): void {
  t.test(`${name}: real executions of up to ${LARGE.opsMax} calls are linearizable`, async (tt) => {
    let ops = 0;
    const run = fc.check(fc.property(planArb(spec.input, LARGE), (plan) => {
      const h = build(spec, plan);
      const r = checkHistory(spec.model, h);
      if (r.verdict !== 'ok') throw new Error(`a real execution answered ${r.verdict}: ${JSON.stringify(h)}`);
      for (const k of r.keys) {
        const problem = k.verdict === 'ok' ? witnessProblem(spec.model, h, k.key, k.linearization) : 'not ok';
        if (problem !== null) throw new Error(`key ${k.key}: ${problem}`);
      }
      ops += h.length;
    }), { seed, numRuns: Math.round(30 * scale), ...(path !== undefined ? { path } : {}) });
    tt.notOk(run.failed, run.failed ? replay(run) : `${run.numRuns} executions, ${ops} calls, each key's linearization replays`);
  });

  t.test(`${name}: partitioned by key or checked whole, the answer is the same`, async (tt) => {
    const tally = { ok: 0, violation: 0 };
    const one = whole(spec.model);
    const run = fc.check(fc.property(planArb(spec.input, MEDIUM), (plan) => {
      const h = build(spec, plan);
      const parts = checkHistory(spec.model, h);
      const all = checkHistory(one, asOneKey(h));
      if (parts.verdict === 'unknown' || parts.verdict !== all.verdict) throw new Error(`by key ${parts.verdict}, whole ${all.verdict}: ${JSON.stringify(h)}`);
      tally[parts.verdict]++;
    }), { seed, numRuns: Math.round(600 * scale), ...(path !== undefined ? { path } : {}) });
    tt.notOk(run.failed, run.failed ? replay(run) : `${run.numRuns} histories agree (seed ${seed})`);
    tt.comment(`${name}: ${JSON.stringify(tally)}`);
    if (!run.failed && path === undefined) tt.ok(tally.ok >= run.numRuns / 10 && tally.violation >= run.numRuns / 10, `both answers common: ${JSON.stringify(tally)}`);
  });
}

t.comment(`seed ${seed}; replay with FC_SEED=${seed}`);
suite('register', register);
suite('custody act', act);
suite('append list', append);

t.test('a long history with one planted read of a value never written', async (tt) => {
  // A deterministic execution: 20 000 calls by 16 processes over 50 registers.
  const plan = fc.sample(planArb(register.input, { opsMin: 20_000, opsMax: 20_000, processes: 16, keys: 50, lostPer20: 1, failedPer20: 1, perturb: false }), { seed: 7, numRuns: 1 })[0];
  if (plan === undefined) throw new Error('no plan');
  const h = build(register, { ...plan, keys: 50 });
  tt.equal(h.length, 20_000);
  const r = checkHistory(register.model, h);
  tt.equal(r.verdict, 'ok', `${h.length} calls over ${r.keys.length} keys linearizable in ${r.steps} steps`);
  const i = h.findIndex((o, j) => j > 15_000 && o.outcome === 'ok' && o.input.f === 'read');
  const planted = [...h];
  planted[i] = { ...(h[i] as (typeof h)[number]), output: 999 } as (typeof h)[number];
  const v = checkHistory(register.model, planted);
  tt.equal(v.verdict, 'violation');
  tt.same(v.keys.filter((k) => k.verdict !== 'ok').map((k) => [k.key, k.verdict]), [[(h[i] as Operation<unknown, unknown>).key, 'violation']], 'only the planted key');
});

t.test('a planted bad read among many indeterminate writes is still refuted within the default budget', async (tt) => {
  for (const s of [1, 3]) {
    const plan = fc.sample(planArb(register.input, { opsMin: 400, opsMax: 400, processes: 8, keys: 1, lostPer20: 1, failedPer20: 1, perturb: false }), { seed: s, numRuns: 1 })[0];
    if (plan === undefined) throw new Error('no plan');
    const h = build(register, { ...plan, keys: 1 });
    const writes = h.filter((o) => o.outcome === 'indeterminate' && o.input.f !== 'read').length;
    tt.equal(checkHistory(register.model, h).verdict, 'ok', `sample ${s}: the execution is linearizable`);
    const i = h.findIndex((o, j) => j > 200 && o.outcome === 'ok' && o.input.f === 'read');
    const planted = [...h];
    planted[i] = { ...(h[i] as (typeof h)[number]), output: 999 } as (typeof h)[number];
    const r = checkHistory(register.model, planted);
    tt.equal(r.verdict, 'violation', `sample ${s}: ${writes} indeterminate writes or swaps, refuted in ${r.steps} steps`);
  }
});
