/**
 * The ledger workload's checks (ledger-campaign.ts ledgerViolations), from the attacker's side:
 * chronicles with a planted fault must be caught, each by its own check, and clean ones pass. An
 * act that ends twice or never, executes twice, shares a permit or a signature, reuses a nonce
 * counter of a node and key; a node whose chronicle differs or lacks an act; an acknowledged act
 * that vanished. A
 * property: over random clean chronicles nothing is reported, and copying one nonce counter of a
 * node from one act into another is always reported as nonce-reused.
 *
 * A failure prints fast-check's seed and path; replay it exactly with
 *   FC_SEED=<seed> FC_PATH=<path> npx tap dist/test/jepsen/ledger-checks.test.js
 */
import t from 'tap';
import fc from 'fast-check';
import type { ActView } from '../../node/admin/client.js';
import { ledgerViolations } from './ledger-campaign.js';

const seed = Number(process.env.FC_SEED ?? Math.floor(Math.random() * 0x7fffffff));
const path = process.env.FC_PATH;
const ids = ['n1', 'n2', 'n3'];
const STATES = ['Submitted', 'Admitted', 'PendingRemote', 'Executed', 'Published', 'Settled'];

function act(op: string, counter: number, over: Partial<Record<keyof ActView, unknown>> = {}): ActView {
  return {
    opId: op, state: 'Settled', reason: '', keyId: 'k', confirmation: `tx-${op}`,
    history: STATES.map((state, index) => ({ state, index })),
    signatures: [Buffer.from(`signature of ${op}`).toString('hex')], permitId: `permit-${op}`,
    signingSet: ['n1', 'n2'].map((nodeId) => ({ nodeId, identifier: nodeId, hiding: '', binding: '', counter, nonces: [{ counter, hiding: '', binding: '' }] })),
    ...over,
  } as unknown as ActView;
}

const same = (acts: ActView[]): ActView[][] => ids.map(() => acts.map((a) => ({ ...a })));
const checks = (found: { check: string }[]): string[] => [...new Set(found.map((f) => f.check))].sort();

t.test('clean chronicles pass', async (t) => {
  const acts = [act('a', 1), act('b', 2), act('c', 3, { state: 'Aborted', reason: 'REMOTE_TIMEOUT', history: [{ state: 'Submitted', index: 1 }, { state: 'Admitted', index: 2 }, { state: 'Aborted', index: 3 }], signatures: [], permitId: '', signingSet: [] })];
  t.same(ledgerViolations(ids, same(acts), new Set(['a', 'b', 'c'])), []);
});

t.test('each planted fault is caught by its check', async (t) => {
  const history = (...s: string[]) => s.map((state, index) => ({ state, index }));
  const cases: [string, ActView[][], Set<string>, string[]][] = [
    ['an act that ends twice', same([act('a', 1, { history: history('Submitted', 'Admitted', 'Aborted', 'Settled') })]), new Set(), ['ends-once']],
    ['an act that never ends', same([act('a', 1, { state: 'Published', history: history('Submitted', 'Admitted', 'Executed', 'Published') })]), new Set(), ['ends-once']],
    ['an act executed twice', same([act('a', 1, { history: history('Submitted', 'Admitted', 'Executed', 'Executed', 'Published', 'Settled') })]), new Set(), ['one-signature']],
    ['two acts under one permit', same([act('a', 1), act('b', 2, { permitId: 'permit-a' })]), new Set(), ['one-signature']],
    ['one signature in two acts', same([act('a', 1), act('b', 2)].map((a) => ({ ...a, signatures: ['ef'.repeat(32)] }))), new Set(), ['one-signature']],
    ['a nonce counter of n1 for key k used twice', same([act('a', 1), act('b', 1)]), new Set(), ['nonce-reused']],
    ['n2 holds another signature for an act', [[act('a', 1)], [act('a', 1, { signatures: ['cd'.repeat(32)] })], [act('a', 1)]], new Set(), ['chronicle-diverged']],
    ['n3 lacks an act', [[act('a', 1), act('b', 2)], [act('a', 1), act('b', 2)], [act('a', 1)]], new Set(), ['chronicle-diverged']],
    ['an acknowledged act in no chronicle', same([act('a', 1)]), new Set(['a', 'lost']), ['admitted-lost']],
  ];
  for (const [what, chronicles, acked, expected] of cases) t.same(checks(ledgerViolations(ids, chronicles, acked)), expected, what);
  t.same(ledgerViolations(ids, same([act('a', 1), act('b', 1, { keyId: 'other' })]), new Set()), [], 'one counter under two keys is no reuse');
  t.same(ledgerViolations(ids, same([act('a', 1, { signingSet: [{ nodeId: 'n1', counter: 1, nonces: [] }] }), act('b', 1, { signingSet: [{ nodeId: 'n2', counter: 1, nonces: [] }] })]), new Set()), [], 'one counter on two nodes is no reuse');
});

t.test('random clean chronicles pass; one copied nonce counter is always caught', async (t) => {
  t.comment(`fast-check seed ${seed}`);
  const arb = fc.record({
    n: fc.integer({ min: 2, max: 30 }),
    from: fc.nat(),
    to: fc.nat(),
    node: fc.constantFrom('n1', 'n2'),
  });
  const run = fc.check(fc.property(arb, ({ n, from, to, node }) => {
    const acts = Array.from({ length: n }, (_, i) => act(`op${i}`, i + 1));
    if (ledgerViolations(ids, same(acts), new Set(acts.map((a) => a.opId))).length !== 0) return false;
    const i = from % n;
    const j = (i + 1 + (to % (n - 1))) % n;
    const victim = acts[j] as ActView;
    const stolen = (acts[i] as ActView).signingSet.find((m) => m.nodeId === node)!.counter;
    acts[j] = { ...victim, signingSet: victim.signingSet.map((m) => (m.nodeId === node ? { ...m, counter: stolen, nonces: [{ counter: stolen, hiding: '', binding: '' }] } : m)) };
    return JSON.stringify(checks(ledgerViolations(ids, same(acts), new Set()))) === JSON.stringify(['nonce-reused']);
  }), { seed, ...(path !== undefined ? { path } : {}), numRuns: 200 });
  t.notOk(run.failed, run.failed ? `${String(run.counterexample)}; replay with FC_SEED=${run.seed} FC_PATH=${run.counterexamplePath ?? ''}` : 'caught every time');
});
