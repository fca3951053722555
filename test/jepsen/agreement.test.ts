/**
 * The checker agrees with brute force (test/jepsen/brute-force.ts) on thousands of small random
 * histories, for each model: up to 7 calls on 1 or 2 keys by up to 3 processes (and up to 8 calls
 * by 4 processes, half of them indeterminate), built from real
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
import { SMALL, act, append, build, planArb, register, registerOver, type Shape, type Spec } from './executions.js';

const seed = Number(process.env.FC_SEED ?? Math.floor(Math.random() * 0x7fffffff));
const path = process.env.FC_PATH;
const scale = Number(process.env.FC_SCALE ?? 1);

function agreement<S, I, O>(name: string, spec: Spec<S, I, O>, numRuns: number, shape: Shape = SMALL): void {
  t.test(`${name}: the checker agrees with brute force on ${numRuns} histories of up to ${shape.opsMax} calls`, async (tt) => {
    const tally = { ok: 0, violation: 0, perturbed: 0, indeterminate: 0, twoKeys: 0 };
    const prop = fc.property(planArb(spec.input, shape), (plan) => {
      const h = build(spec, plan);
      const perturbed = plan.randomAnswers || plan.mutations.length > 0;
      const r = checkHistory(spec.model, h);
      const bf = bruteForceLinearizable(spec.model, h);
      const show = () => JSON.stringify(h);
      if (r.verdict === 'unknown') throw new Error(`unknown on a small history ${show()}`);
      if ((r.verdict === 'ok') !== bf) throw new Error(`checker ${r.verdict}, brute force ${bf ? 'ok' : 'violation'}: ${show()}`);
      if (!perturbed && !bf) throw new Error(`a real execution judged not linearizable: ${show()}`);
      for (const k of r.keys) {
        if (k.verdict === 'violation' && (!k.explanation.blocked.known || k.explanation.blocked.key !== k.key)) throw new Error(`key ${k.key}: blocked on ${JSON.stringify(k.explanation.blocked)}: ${show()}`);
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
      if (shape.keys > 1) tt.ok(tally.twoKeys >= numRuns / 5, `${tally.twoKeys} histories over two keys`);
    }
  });
}

t.comment(`seed ${seed}; replay with FC_SEED=${seed}`);
agreement('register', register, Math.round(4000 * scale));
agreement('custody act', act, Math.round(3000 * scale));
agreement('append list', append, Math.round(2000 * scale));
// Half the calls lose their answer: the search's pruning of indeterminate calls at work.
const LOSSY: Shape = { opsMin: 3, opsMax: 8, processes: 4, keys: 2, lostPer20: 10, failedPer20: 1, perturb: true };
agreement('register, mostly indeterminate', register, Math.round(1500 * scale), LOSSY);
agreement('custody act, mostly indeterminate', act, Math.round(1000 * scale), LOSSY);
agreement('append list, mostly indeterminate', append, Math.round(500 * scale), LOSSY);
// Two values and longer histories: many nodes of the search reach equal states by different calls.
const DENSE: Shape = { opsMin: 5, opsMax: 9, processes: 4, keys: 1, lostPer20: 9, failedPer20: 0, perturb: true };
agreement('register of two values, mostly indeterminate', registerOver([0, 1]), Math.round(1000 * scale), DENSE);
