/**
 * The split-brain detector (node/splitbrain/detector.ts): Election Safety (Raft §5.2) and State
 * Machine Safety (§5.4.3) checked from exchanged observations. Honest observations, in any order
 * and however late, never alarm; one conflicting report always does, once.
 */
import fc from 'fast-check';
import t from 'tap';
import { splitBrain } from '../../proto/limits.js';
import { SplitBrainDetector, describeAlarm, type Observation } from '../../node/splitbrain/detector.js';

const obs = (node: string, term: number, leader: string | null, appliedIndex: number, stateRoot: string): Observation => ({ node, term, leader, appliedIndex, stateRoot });

t.test('a healthy cluster: every node reports the same leader per term and the same root per index, late and out of order', async (t) => {
  const d = new SplitBrainDetector();
  const feed = [
    obs('n1', 1, 'n1', 1, 'r1'), obs('n2', 1, 'n1', 1, 'r1'), obs('n3', 1, null, 0, ''),
    obs('n2', 2, null, 3, 'r3'), obs('n3', 2, 'n3', 3, 'r3'), obs('n1', 1, 'n1', 2, 'r2'), // n1 partitioned, late
    obs('n1', 2, 'n3', 5, 'r5'), obs('n3', 2, 'n3', 5, 'r5'), obs('n2', 2, 'n3', 2, 'r2'), // n2 restarted, re-applying
  ];
  for (const o of feed) t.equal(d.observe(o), null, `${o.node} term ${o.term} index ${o.appliedIndex}`);
  t.same(d.counts, { accepted: feed.length, stale: 0, invalid: 0, alarm: 0 });
});

t.test('two leaders seen for one term raise two_leaders with both reports as evidence (§5.2)', async (t) => {
  const d = new SplitBrainDetector();
  t.equal(d.observe(obs('n1', 7, 'n1', 10, 'a')), null);
  t.equal(d.observe(obs('n2', 7, 'n1', 10, 'a')), null);
  const a = d.observe(obs('n3', 7, 'n3', 9, 'b'));
  t.same(a, { kind: 'two_leaders', term: 7, first: { reportedBy: 'n1', value: 'n1' }, second: { reportedBy: 'n3', value: 'n3' } });
  t.match(describeAlarm(a!), /term 7 has two leaders: n1 reported n1, n3 reported n3/);
});

t.test('two state roots at one applied index raise two_roots (§5.4.3)', async (t) => {
  const d = new SplitBrainDetector();
  t.equal(d.observe(obs('n1', 3, 'n1', 42, 'root-a')), null);
  const a = d.observe(obs('n2', 3, 'n1', 42, 'root-b'));
  t.same(a, { kind: 'two_roots', appliedIndex: 42, first: { reportedBy: 'n1', value: 'root-a' }, second: { reportedBy: 'n2', value: 'root-b' } });
});

t.test('one incident raises one alarm however often it is reported again', async (t) => {
  const d = new SplitBrainDetector();
  d.observe(obs('n1', 4, 'n1', 0, ''));
  t.not(d.observe(obs('n2', 4, 'n2', 0, '')), null, 'the first conflicting report alarms');
  t.equal(d.observe(obs('n2', 4, 'n2', 0, '')), null, 'the same report again does not');
  t.equal(d.observe(obs('n3', 4, 'n3', 0, '')), null, 'a third leader for the same term is the same incident');
  t.not(d.observe(obs('n3', 5, 'n3', 0, '')) ?? d.observe(obs('n1', 5, 'n1', 0, '')), null, 'a new term is a new incident');
  t.equal(d.counts.alarm, 2);
});

t.test('index 0 and a null leader compare nothing', async (t) => {
  const d = new SplitBrainDetector();
  t.equal(d.observe(obs('n1', 1, null, 0, 'x')), null);
  t.equal(d.observe(obs('n2', 1, null, 0, 'y')), null);
  t.same(d.tracked(), { terms: 0, roots: 0 });
});

t.test('malformed observations are counted invalid and ignored', async (t) => {
  const d = new SplitBrainDetector();
  t.equal(d.observe(obs('', 1, 'n1', 1, 'r')), null);
  t.equal(d.observe(obs('n1', -1, 'n1', 1, 'r')), null);
  t.equal(d.observe(obs('n1', 1.5, 'n1', 1, 'r')), null);
  t.equal(d.observe(obs('n1', 1, '', 1, 'r')), null);
  t.equal(d.observe(obs('n1', 1, 'n1', Number.NaN, 'r')), null);
  t.equal(d.observe({ node: 'n1', term: 1, leader: 'n1', appliedIndex: 1, stateRoot: 5 } as unknown as Observation), null);
  t.equal(d.counts.invalid, 6);
  t.same(d.tracked(), { terms: 0, roots: 0 });
});

t.test('memory stays within the windows of limits.splitBrain however long the run', async (t) => {
  const d = new SplitBrainDetector({ termsTrackedMax: 64, rootsTrackedMax: 128 });
  for (let i = 1; i <= 20_000; i++) d.observe(obs(`n${i % 3}`, Math.ceil(i / 5), `n${Math.ceil(i / 5) % 3}`, i, `r${i}`));
  t.ok(d.tracked().terms <= 64, `terms held: ${d.tracked().terms}`);
  t.ok(d.tracked().roots <= 128, `roots held: ${d.tracked().roots}`);
  t.equal(d.counts.alarm, 0);
  const shipped = new SplitBrainDetector();
  t.ok(splitBrain.termsTrackedMax > 0 && splitBrain.rootsTrackedMax > 0);
  for (let i = 1; i <= 3 * splitBrain.rootsTrackedMax; i++) shipped.observe(obs('n1', 1, 'n1', i, `r${i}`));
  t.equal(shipped.tracked().roots, splitBrain.rootsTrackedMax, 'the shipped window holds exactly rootsTrackedMax indexes');
});

t.test('an observation older than the window is stale: counted, not compared', async (t) => {
  const d = new SplitBrainDetector({ termsTrackedMax: 10, rootsTrackedMax: 10 });
  d.observe(obs('n1', 100, 'n1', 100, 'r100'));
  t.equal(d.observe(obs('n2', 50, 'n2', 50, 'other')), null);
  t.equal(d.counts.stale, 1);
});

t.test('a far-future term only moves the window: no false alarm, and the walk is bounded', async (t) => {
  const d = new SplitBrainDetector({ termsTrackedMax: 8, rootsTrackedMax: 8 });
  d.observe(obs('n1', 3, 'n1', 5, 'r5'));
  t.equal(d.observe(obs('n2', Number.MAX_SAFE_INTEGER, 'n2', Number.MAX_SAFE_INTEGER, 'x')), null);
  t.equal(d.observe(obs('n3', 3, 'n1', 5, 'r5')), null, 'honest reports still agree (now outside the window)');
  t.ok(d.tracked().terms <= 8 && d.tracked().roots <= 8);
});

// Property: with a ground truth (one leader per term, one root per index), any interleaving of
// honest reports is silent, and one lie inside the window is caught exactly once.
const truthLeader = (term: number): string => `n${(term * 7) % 5}`;
const truthRoot = (index: number): string => `root-${index * 31}`;
const honest = fc.record({ node: fc.constantFrom('n0', 'n1', 'n2', 'n3', 'n4'), term: fc.integer({ min: 1, max: 60 }), knowsLeader: fc.boolean(), appliedIndex: fc.integer({ min: 0, max: 200 }) });

t.test('property: honest reports in any order never alarm; one lie always does, once', async (t) => {
  let histories = 0;
  fc.assert(
    fc.property(fc.array(honest, { minLength: 1, maxLength: 300 }), fc.nat(), fc.boolean(), (reports, at, lieAboutLeader) => {
      histories++;
      const d = new SplitBrainDetector({ termsTrackedMax: 100, rootsTrackedMax: 300 });
      const toObs = (r: (typeof reports)[number]): Observation => obs(r.node, r.term, r.knowsLeader ? truthLeader(r.term) : null, r.appliedIndex, r.appliedIndex === 0 ? '' : truthRoot(r.appliedIndex));
      for (const r of reports) if (d.observe(toObs(r)) !== null) return false;
      const r = reports[at % reports.length] as (typeof reports)[number];
      const base = toObs(r);
      if (lieAboutLeader) {
        d.observe(obs(base.node, base.term, truthLeader(base.term), 0, ''));
        const a = d.observe(obs('liar', base.term, 'n-impostor', 0, ''));
        return a !== null && a.kind === 'two_leaders' && a.term === base.term && d.observe(obs('liar', base.term, 'n-impostor', 0, '')) === null;
      }
      const index = Math.max(1, base.appliedIndex);
      d.observe(obs(base.node, base.term, null, index, truthRoot(index)));
      const a = d.observe(obs('liar', base.term, null, index, 'forged-root'));
      return a !== null && a.kind === 'two_roots' && a.appliedIndex === index;
    }),
    { numRuns: 300, seed: 7 },
  );
  t.equal(histories, 300, '300 generated histories, each silent until its one lie, which alarms once');
});
