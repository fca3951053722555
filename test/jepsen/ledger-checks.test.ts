/**
 * The ledger workload's checks (ledger-campaign.ts ledgerViolations), from the attacker's side:
 * chronicles with a planted fault must be caught, each by its own check, and clean ones pass. An
 * act that ends twice or never, executes twice, shares a permit or a signature, reuses a nonce
 * counter of a node and key, executes under a key epoch already replaced; a node whose chronicle
 * differs or lacks an act; an acknowledged act that vanished. Compared as of an applied index
 * (acts still moving), an act that moved on after it on one node is no divergence, but one that
 * differs at or before it still is. Properties: over random clean chronicles nothing is reported,
 * and copying one nonce counter of a node from one act into another is always reported as
 * nonce-reused; acts moved on past the index on random nodes are never reported, and a state
 * changed at or before it always is.
 *
 * A failure prints fast-check's seed and path; replay it exactly with
 *   FC_SEED=<seed> FC_PATH=<path> npx tap dist/test/jepsen/ledger-checks.test.js
 */
import t from 'tap';
import fc from 'fast-check';
import type { ActView } from '../../node/admin/client.js';
import { ledgerViolations, staleEpochs } from './ledger-campaign.js';

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

const history = (...s: [string, number][]) => s.map(([state, index]) => ({ state, index }));

t.test('key epochs: an execution under a replaced epoch is caught', async (t) => {
  const at = (op: string, epoch: number, executed: number) => act(op, executed, { keyEpoch: epoch, history: history(['Submitted', executed - 3], ['Admitted', executed - 2], ['PendingRemote', executed - 1], ['Executed', executed], ['Published', executed + 1], ['Settled', executed + 2]) });
  const clean = [at('a', 0, 10), at('b', 0, 20), at('c', 1, 40), at('d', 1, 50)];
  t.same(ledgerViolations(ids, same(clean), new Set(), { activations: [{ keyId: 'k', keyEpoch: 1, index: 30 }] }), [], 'epoch 0 before the activation of 1, epoch 1 after');
  t.same(checks(staleEpochs([...clean, at('e', 0, 60)], [])), ['stale-epoch'], 'an epoch-0 act executed after an epoch-1 act');
  t.same(checks(staleEpochs([at('a', 0, 10), at('b', 0, 35)], [{ keyId: 'k', keyEpoch: 1, index: 30 }])), ['stale-epoch'], 'an epoch-0 act executed after epoch 1 was activated, with no epoch-1 act yet');
  t.same(staleEpochs([at('a', 1, 10), { ...at('b', 0, 20), keyId: 'other' }], []), [], 'epochs of two keys are not ordered against each other');
  t.same(staleEpochs([at('a', 0, 10), { ...at('b', 0, 40), state: 'Aborted', history: history(['Submitted', 37], ['Admitted', 38], ['Aborted', 40]) }], [{ keyId: 'k', keyEpoch: 1, index: 30 }]), [], 'an epoch-0 act aborted after the activation executed nothing');
});

/** An act submitted at `from` that reached Published at from+4, and Settled at from+5 if `settled`. */
function moving(op: string, from: number, counter: number, settled: boolean): ActView {
  const steps: [string, number][] = [['Submitted', from], ['Admitted', from + 1], ['PendingRemote', from + 2], ['Executed', from + 3], ['Published', from + 4]];
  if (settled) steps.push(['Settled', from + 5]);
  return act(op, counter, { state: settled ? 'Settled' : 'Published', confirmation: settled ? `tx-${op}` : '', history: history(...steps) });
}

/** The same act as a node that had applied only up to `upTo` shows it (null: not yet submitted). */
function asOf(a: ActView, upTo: number): ActView | null {
  const h = a.history.filter((x) => x.index <= upTo);
  if (h.length === 0) return null;
  if (h.length === a.history.length) return a;
  const executed = h.some((x) => x.state === 'Executed');
  return { ...a, state: h[h.length - 1]!.state, history: h, confirmation: '', signatures: executed ? a.signatures : [], ...(h.some((x) => x.state === 'PendingRemote') ? {} : { permitId: '', signingSet: [] }) };
}

t.test('compared as of an applied index: moving acts pass, differences at or before it are caught', async (t) => {
  const full = [moving('a', 1, 1, true), moving('b', 4, 2, true), moving('c', 8, 3, false), moving('d', 12, 4, false)];
  const lagging = [full, full.map((a) => asOf(a, 11)).filter((a): a is ActView => a !== null), full.map((a) => asOf(a, 10)).filter((a): a is ActView => a !== null)];
  t.same(checks(ledgerViolations(ids, lagging, new Set())), ['chronicle-diverged', 'ends-once'], 'compared whole, acts still moving look diverged');
  t.same(ledgerViolations(ids, lagging, new Set(), { upTo: 10 }), [], 'as of index 10 they agree, and the open acts are left to the liveness check');
  const bent = lagging.map((l, i) => (i === 2 ? l.map((a) => (a.opId === 'c' ? { ...a, history: a.history.map((h) => (h.index === 10 ? { ...h, state: 'Aborted' } : h)) } : a)) : l));
  t.same(checks(ledgerViolations(ids, bent, new Set(), { upTo: 10 })), ['chronicle-diverged'], 'a state that differs at the index is caught');
  const lost = lagging.map((l, i) => (i === 1 ? l.filter((a) => a.opId !== 'c') : l));
  t.same(checks(ledgerViolations(ids, lost, new Set(), { upTo: 10 })), ['chronicle-diverged'], 'an act submitted before the index and missing on a node is caught');
  const ended = lagging.map((l, i) => (i === 2 ? l.map((a) => (a.opId === 'a' ? { ...a, confirmation: 'tx-other' } : a)) : l));
  t.same(checks(ledgerViolations(ids, ended, new Set(), { upTo: 10 })), ['chronicle-diverged'], 'an act that ended before the index is compared whole');
  const twice = lagging.map((l) => l.map((a) => (a.opId === 'a' ? { ...a, history: [...a.history.slice(0, -1), { state: 'Aborted', index: 5 }, { state: 'Settled', index: 6 }] } : a)));
  t.same(checks(ledgerViolations(ids, twice, new Set(), { upTo: 10 })), ['ends-once'], 'an act that ended twice is still caught');
});

t.test('random lag: never diverged as of the common index; a changed state at or before it always is', async (t) => {
  t.comment(`fast-check seed ${seed}`);
  const arb = fc.record({
    starts: fc.array(fc.nat({ max: 40 }), { minLength: 1, maxLength: 12 }),
    settled: fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
    lags: fc.tuple(fc.nat({ max: 50 }), fc.nat({ max: 50 })),
    pick: fc.nat(),
    node: fc.integer({ min: 1, max: 2 }),
  });
  const run = fc.check(fc.property(arb, ({ starts, settled, lags, pick, node }) => {
    const full = starts.map((from, i) => moving(`op${i}`, 1 + from, i + 1, settled[i] ?? false));
    const top = Math.max(...full.flatMap((a) => a.history.map((h) => h.index)));
    const applied = [top, top - lags[0], top - lags[1]];
    const upTo = Math.min(...applied);
    const chronicles = applied.map((n) => full.map((a) => asOf(a, n)).filter((a): a is ActView => a !== null));
    if (ledgerViolations(ids, chronicles, new Set(), { upTo }).length !== 0) return false;
    const list = chronicles[node] as ActView[];
    const candidates = list.filter((a) => a.history.some((h) => h.index <= upTo));
    if (candidates.length === 0) return true;
    const victim = candidates[pick % candidates.length] as ActView;
    const bent = chronicles.map((l, i) => (i === node ? l.map((a) => (a.opId === victim.opId ? { ...a, history: a.history.map((h, j) => (j === 0 ? { ...h, state: 'Denied' } : h)) } : a)) : l));
    return checks(ledgerViolations(ids, bent, new Set(), { upTo })).includes('chronicle-diverged');
  }), { seed, ...(path !== undefined ? { path } : {}), numRuns: 200 });
  t.notOk(run.failed, run.failed ? `${String(run.counterexample)}; replay with FC_SEED=${run.seed} FC_PATH=${run.counterexamplePath ?? ''}` : 'as of the common index: no false divergence, every bent state caught');
});
