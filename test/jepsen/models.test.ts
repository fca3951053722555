/**
 * The sequential models on their own: each answer the object gives is accepted and every other
 * answer refused; an indeterminate call leaves the state the object would; states reached by
 * different runs have equal keys exactly when they are equal; and a call a model declares
 * read-only never changes the state (the checker drops such calls when indeterminate, so a false
 * declaration would hide violations).
 *
 * A property failure prints fast-check's seed and path; replay it exactly with
 *   FC_SEED=<seed> FC_PATH=<path> npx tap dist/test/jepsen/models.test.js
 */
import t from 'tap';
import fc from 'fast-check';
import { REFUSED, actModel, appendModel, registerModel } from './models.js';
import { act, append, register, type Spec } from './executions.js';

const seed = Number(process.env.FC_SEED ?? Math.floor(Math.random() * 0x7fffffff));
const path = process.env.FC_PATH;
t.comment(`seed ${seed}; replay with FC_SEED=${seed}`);

t.test('register: read, write, compare-and-set', async (tt) => {
  const m = registerModel(0);
  tt.equal(m.step(0, { f: 'read' }, { known: true, output: 0 }), 0);
  tt.equal(m.step(0, { f: 'read' }, { known: true, output: 1 }), REFUSED);
  tt.equal(m.step(0, { f: 'read' }, { known: true, output: '0' }), REFUSED, 'values compare exactly');
  tt.equal(m.step(0, { f: 'write', value: 5 }, { known: true, output: null }), 5);
  tt.equal(m.step(0, { f: 'write', value: 5 }, { known: true, output: true }), REFUSED);
  tt.equal(m.step(0, { f: 'cas', from: 0, to: 2 }, { known: true, output: true }), 2);
  tt.equal(m.step(0, { f: 'cas', from: 0, to: 2 }, { known: true, output: false }), REFUSED);
  tt.equal(m.step(1, { f: 'cas', from: 0, to: 2 }, { known: true, output: false }), 1);
  tt.equal(m.step(1, { f: 'cas', from: 0, to: 2 }, { known: false }), 1, 'an unanswered swap follows the state');
  tt.equal(m.step(0, { f: 'cas', from: 0, to: 2 }, { known: false }), 2);
  tt.not(m.stateKey(1), m.stateKey('1'));
  tt.not(m.stateKey(null), m.stateKey('null'));
});

t.test('custody act: submit once, end once', async (tt) => {
  const m = actModel;
  const open = m.step(m.init, { f: 'submit' }, { known: true, output: 'accepted' });
  tt.same(open, { kind: 'open' });
  tt.equal(m.step(m.init, { f: 'submit' }, { known: true, output: 'duplicate' }), REFUSED);
  tt.equal(m.step({ kind: 'open' }, { f: 'submit' }, { known: true, output: 'accepted' }), REFUSED, 'a second submit is not accepted');
  tt.same(m.step({ kind: 'open' }, { f: 'submit' }, { known: true, output: 'duplicate' }), { kind: 'open' });
  const ended = { kind: 'ended', outcome: 'Settled' } as const;
  tt.same(m.step({ kind: 'open' }, { f: 'end', outcome: 'Settled' }, { known: true, output: 'ended' }), ended);
  tt.equal(m.step(ended, { f: 'end', outcome: 'Aborted' }, { known: true, output: 'ended' }), REFUSED, 'a second end is refused');
  tt.same(m.step(ended, { f: 'end', outcome: 'Aborted' }, { known: true, output: 'already-ended' }), ended, 'and changes nothing');
  tt.equal(m.step(m.init, { f: 'end', outcome: 'Settled' }, { known: true, output: 'ended' }), REFUSED, 'no end before a submit');
  tt.same(m.step(m.init, { f: 'end', outcome: 'Settled' }, { known: true, output: 'not-submitted' }), m.init);
  tt.same(m.step(ended, { f: 'read' }, { known: true, output: { kind: 'ended', outcome: 'Settled' } }), ended);
  tt.equal(m.step(ended, { f: 'read' }, { known: true, output: { kind: 'ended', outcome: 'Aborted' } }), REFUSED);
  tt.equal(m.step(ended, { f: 'read' }, { known: true, output: { kind: 'open' } }), REFUSED);
  tt.equal(m.step(ended, { f: 'read' }, { known: true, output: 'ended' }), REFUSED, 'a read answers a status');
  tt.same(m.step({ kind: 'open' }, { f: 'end', outcome: 'Denied' }, { known: false }), { kind: 'ended', outcome: 'Denied' });
  tt.not(m.stateKey(ended), m.stateKey({ kind: 'ended', outcome: 'Aborted' }));
});

t.test('append list: appends in order, reads the whole list', async (tt) => {
  const m = appendModel;
  tt.same(m.step([1], { f: 'append', value: 2 }, { known: true, output: null }), [1, 2]);
  tt.same(m.step([1, 2], { f: 'read' }, { known: true, output: [1, 2] }), [1, 2]);
  tt.equal(m.step([1, 2], { f: 'read' }, { known: true, output: [2, 1] }), REFUSED);
  tt.equal(m.step([1, 2], { f: 'read' }, { known: true, output: [1, 2, 2] }), REFUSED);
  tt.equal(m.step([1, 2], { f: 'read' }, { known: true, output: null }), REFUSED);
  tt.not(m.stateKey([12]), m.stateKey([1, 2]));
});

function laws<S, I, O>(name: string, spec: Spec<S, I, O>): void {
  t.test(`${name}: the model accepts exactly the object's answers; read-only calls change nothing`, async (tt) => {
    const { model } = spec;
    const run = fc.check(fc.property(fc.array(spec.input, { maxLength: 12 }), fc.array(spec.input, { maxLength: 12 }), (xs, ys) => {
      let s = model.init;
      let obj: S | undefined;
      for (const input of xs) {
        const [after, out] = spec.run(obj, input);
        obj = after;
        for (const other of spec.answers(input, out)) {
          const r = model.step(s, input, { known: true, output: other });
          const same = JSON.stringify(other) === JSON.stringify(out);
          if (same !== (r !== REFUSED)) throw new Error(`answer ${JSON.stringify(other)} to ${JSON.stringify(input)} ${same ? 'refused' : 'accepted'} (object said ${JSON.stringify(out)})`);
        }
        const blind = model.step(s, input, { known: false });
        if (blind === REFUSED || model.stateKey(blind) !== model.stateKey(after)) throw new Error(`an unanswered ${JSON.stringify(input)} does not leave the object's state`);
        if (model.readOnly?.(input) === true && model.stateKey(blind) !== model.stateKey(s)) throw new Error(`read-only ${JSON.stringify(input)} changed the state`);
        const next = model.step(s, input, { known: true, output: out });
        if (next === REFUSED) throw new Error('the true answer was refused');
        s = next;
      }
      // Keys are equal exactly when the states are.
      let u = model.init;
      let obj2: S | undefined;
      for (const input of ys) {
        const [after, out] = spec.run(obj2, input);
        obj2 = after;
        const next = model.step(u, input, { known: true, output: out });
        if (next === REFUSED) throw new Error('the true answer was refused');
        u = next;
      }
      if ((model.stateKey(s) === model.stateKey(u)) !== (JSON.stringify(obj ?? model.init) === JSON.stringify(obj2 ?? model.init))) throw new Error('state keys disagree with states');
    }), { seed, numRuns: 300, ...(path !== undefined ? { path } : {}) });
    tt.notOk(run.failed, run.failed ? `${String(run.errorInstance)}; replay with FC_SEED=${run.seed} FC_PATH=${run.counterexamplePath ?? ''}` : `${run.numRuns} runs`);
  });
}
laws('register', register);
laws('custody act', act);
laws('append list', append);
