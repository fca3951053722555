/**
 * The nemesis schedule (nemesis.ts), without processes: a seed gives one schedule and always the
 * same one (a campaign replays from its seed); faults come one at a time, inside the campaign
 * after the quiet start and before the quiet end, each healed, bounded in count; only the kinds of
 * the mix are drawn, and over many seeds every kind of the mix is; a partition or one-way drop
 * names two different nodes; only a power cut may hit every node at once. Mixes that name nothing
 * or an unknown kind are refused. Played against a recording victim, a power cut of every node
 * cuts each and starts each again, and a victim that cannot lose unsynced writes refuses it.
 *
 * A failure prints fast-check's seed and path; replay it exactly with
 *   FC_SEED=<seed> FC_PATH=<path> npx tap dist/test/jepsen/nemesis.test.js
 */
import t from 'tap';
import fc from 'fast-check';
import { jepsen as limits } from '../../proto/limits.js';
import { ALL_NODES, FAULT_KINDS, LEADER, MIXES, describeFault, parseMix, planSchedule, runNemesis, type FaultKind, type Victim } from './nemesis.js';

const seed = Number(process.env.FC_SEED ?? Math.floor(Math.random() * 0x7fffffff));
const path = process.env.FC_PATH;
const nodes = ['n1', 'n2', 'n3'];

t.test('a schedule is a pure function of its seed, bounded, one fault at a time, inside the quiet margins', (t) => {
  t.comment(`fast-check seed ${seed}`);
  const arb = fc.record({
    s: fc.integer({ min: 0, max: 0x7fffffff }),
    seconds: fc.integer({ min: 1, max: 3_600 }),
    mix: fc.subarray([...FAULT_KINDS], { minLength: 1 }),
    faultsMax: fc.option(fc.integer({ min: 0, max: 50 }), { nil: undefined }),
  });
  const run = fc.check(fc.property(arb, ({ s, seconds, mix, faultsMax }) => {
    const o = { seconds, nodes, mix, ...(faultsMax !== undefined ? { faultsMax } : {}) };
    const a = planSchedule(s, o);
    const b = planSchedule(s, o);
    if (JSON.stringify(a) !== JSON.stringify(b)) return false;
    if (a.length > (faultsMax ?? limits.nemesisFaultsMax)) return false;
    let prevHeal = -Infinity;
    for (const f of a) {
      if (!mix.includes(f.kind)) return false;
      if (f.at < limits.nemesisQuietMs || f.healAt > seconds * 1000 - limits.nemesisQuietMs) return false;
      if (f.healAt < f.at || f.at <= prevHeal) return false;
      if (f.kind !== 'restart-all' && (f.healAt - f.at < limits.nemesisFaultMsMin || f.healAt - f.at > limits.nemesisFaultMsMax)) return false;
      if (f.kind !== 'restart-all' && !nodes.includes(f.node as string) && f.node !== LEADER && !(f.kind === 'power-cut' && f.node === ALL_NODES)) return false;
      if ((f.kind === 'partition' || f.kind === 'one-way') !== (f.peer !== null)) return false;
      if (f.peer !== null && (f.peer === f.node || !nodes.includes(f.peer))) return false;
      if ((f.kind === 'skew') !== (f.skewSeconds !== null)) return false;
      if (f.skewSeconds !== null && !(f.skewSeconds >= 1 && f.skewSeconds <= limits.nemesisSkewSecondsMax)) return false;
      prevHeal = f.healAt;
    }
    return true;
  }), { seed, ...(path !== undefined ? { path } : {}), numRuns: 300 });
  t.notOk(run.failed, run.failed ? `${String(run.counterexample)}; replay with FC_SEED=${run.seed} FC_PATH=${run.counterexamplePath ?? ''}` : 'every schedule within its bounds');
  t.end();
});

t.test('a long schedule draws every kind of its mix; different seeds give different schedules', (t) => {
  for (const [name, kinds] of Object.entries(MIXES)) {
    const s = planSchedule(42, { seconds: 3_600, nodes, mix: kinds });
    const seen = new Set<FaultKind>(s.map((f) => f.kind));
    t.same([...seen].sort(), [...kinds].sort(), `mix ${name}: ${s.length} faults in an hour, every kind drawn`);
  }
  const a = planSchedule(1, { seconds: 300, nodes, mix: MIXES.all as FaultKind[] }).map(describeFault);
  const b = planSchedule(2, { seconds: 300, nodes, mix: MIXES.all as FaultKind[] }).map(describeFault);
  t.not(a.join('\n'), b.join('\n'), 'seeds 1 and 2 differ');
  t.match(a[0] ?? '', /^\d+\.\ds\.\.\d+\.\ds /, `printed: ${a[0]}`);
  const targets = new Set(planSchedule(42, { seconds: 3_600, nodes, mix: ['power-cut'] }).map((f) => f.node));
  t.same([...targets].sort(), [ALL_NODES, LEADER, ...nodes].sort(), 'power cuts hit each node, the leader, and every node at once');
  const others = new Set(planSchedule(42, { seconds: 3_600, nodes, mix: ['kill', 'pause', 'skew'] }).map((f) => f.node));
  t.notOk(others.has(ALL_NODES), 'no other kind hits every node at once');
  t.same(planSchedule(5, { seconds: 300, nodes, mix: ['kill'], faultsMax: 0 }), [], 'faultsMax 0: no fault');
  t.same(planSchedule(5, { seconds: 6, nodes, mix: ['kill'] }), [], 'no room between the quiet margins: no fault');
  t.end();
});

t.test('mixes and options that would make a meaningless schedule are refused', (t) => {
  t.same(parseMix('partition'), ['isolate', 'partition', 'one-way'], 'a named mix');
  t.same(parseMix('kill, skew'), ['kill', 'skew'], 'kinds by name');
  t.throws(() => parseMix(''), RangeError, 'empty mix');
  t.throws(() => parseMix('kill,fire'), /unknown: fire/, 'unknown kind');
  t.throws(() => planSchedule(1, { seconds: 0, nodes, mix: ['kill'] }), RangeError, 'zero seconds');
  t.throws(() => planSchedule(1, { seconds: limits.campaignSecondsMax + 1, nodes, mix: ['kill'] }), RangeError, 'longer than the bound');
  t.throws(() => planSchedule(1.5, { seconds: 60, nodes, mix: ['kill'] }), RangeError, 'a seed that is not an integer');
  t.throws(() => planSchedule(1, { seconds: 60, nodes: ['n1'], mix: ['partition'] }), RangeError, 'one node cannot be partitioned');
  t.throws(() => planSchedule(1, { seconds: 60, nodes, mix: [] }), RangeError, 'empty mix');
  t.end();
});

t.test('a power cut is played as cut then start, on one node or on every node', async (t) => {
  const calls: string[] = [];
  const rec = (what: string) => async (id: string): Promise<void> => {
    calls.push(`${what} ${id}`);
  };
  const base = {
    nodes, kill: rec('kill'), start: rec('start'), pause: rec('pause'), resume: rec('resume'), cut: rec('cut'), heal: rec('heal'),
    block: async () => undefined, killKernel: rec('killKernel'), startKernel: rec('startKernel'), skew: async () => undefined,
    leader: async () => 'n2', follower: async () => 'n1',
  };
  const victim: Victim = { ...base, powerCut: rec('powerCut') };
  const schedule = [
    { at: 0, healAt: 0, kind: 'power-cut' as const, node: LEADER, peer: null, skewSeconds: null },
    { at: 0, healAt: 0, kind: 'power-cut' as const, node: ALL_NODES, peer: null, skewSeconds: null },
  ];
  const events = await runNemesis(schedule, victim, () => 0, () => undefined);
  t.same(calls.slice(0, 2), ['powerCut n2', 'start n2'], 'the leader cut, then started again');
  t.same(calls.slice(2, 5).sort(), ['powerCut n1', 'powerCut n2', 'powerCut n3'], 'every node cut');
  t.same(calls.slice(5).sort(), ['start n1', 'start n2', 'start n3'], 'then every node started');
  t.same(events.map((e) => e.what), ['fault', 'heal', 'fault', 'heal'], 'each fault healed');
  t.match(events[0]?.fault ?? '', /power-cut leader \(n2\)$/, 'the node the leader was is printed');
  await t.rejects(runNemesis(schedule, base, () => 0, () => undefined), /cannot lose unsynced writes/, 'a victim on an ordinary disk refuses the fault');
});
