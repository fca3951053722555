/**
 * The split-brain checks follow the Raft configuration (node/splitbrain/rollback.ts RollbackGate,
 * WitnessBook; monitor.ts reconfigure; node-guard.ts configure and NodeGuardIo.configuration):
 * after a dead voter is replaced, the gate asks and counts the new voter and stops waiting for the
 * removed one; rule (a) neither asks nor waits for a voter added after the start; a joint configuration needs a quorum of both halves; the witness book records the
 * members in force; a property checks the gate's verdict against a model over any interleaving of
 * configuration changes and answers.
 */
import fc from 'fast-check';
import t from 'tap';
import { ScriptedCluster } from '../../ledger/index.js';
import { decodeExchange, encodeExchange } from '../../node/splitbrain/exchange.js';
import { SplitBrainMonitor } from '../../node/splitbrain/monitor.js';
import { NodeGuard, decodeWitnesses, encodeWitnesses, WITNESS_KEY } from '../../node/splitbrain/node-guard.js';
import { RollbackGate, WitnessBook, caughtUp, contradiction, type DurableState, type PeerWitness, type StoreHistory, type Witness } from '../../node/splitbrain/rollback.js';
import type { ConfState, Message } from '../../raft/core/types.js';

const state = (term: number, vote: string | null, lastIndex: number, lastLogTerm = term): DurableState => ({ term, vote, lastIndex, lastLogTerm });
const conf = (voters: string[], learners: string[] = [], votersOutgoing: string[] = []): ConfState => ({ voters, learners, votersOutgoing, learnersNext: [], autoLeave: false });
const msg = (type: Message['type'], from: string, to: string, term: number, over: Partial<Pick<Message, 'index' | 'reject'>> = {}) => ({ type, from, to, term, index: 0, reject: false, ...over });

t.test('a dead voter replaced: the gate counts the new voter and stops waiting for the removed one', async (t) => {
  // n1 restarts with an intact store while n2 and n3 are down; the store's configuration already
  // names n5 in place of n3 (the driver's, given at start).
  const gate = new RollbackGate('n1', ['n1', 'n2', 'n3'], state(7, null, 40));
  t.equal(gate.verdict().kind, 'waiting', 'no answer yet');
  gate.reconfigure({ voters: ['n1', 'n2', 'n5'] }, true);
  t.notOk(gate.wantsAnswer('n3'), 'the removed voter is no longer asked');
  t.ok(gate.wantsAnswer('n5'), 'the voter of the start configuration is asked');
  t.same(gate.voters(), ['n2', 'n5']);
  t.equal(gate.answer('n3', null).kind, 'waiting', 'an answer from a node that is no voter is ignored');
  t.equal(gate.answer('n5', null).kind, 'consistent', "n5's answer makes the quorum");
  t.ok(gate.mayVote(state(7, null, 40)));
  t.same(gate.verdict().kind === 'consistent' ? gate.verdict().missing : null, ['n2'], 'n2 is still asked');
});

t.test('rule (a) neither asks nor waits for a voter added after the start configuration', async (t) => {
  // n1 restarts with n3 in its configuration; n3 is removed and n4 added while n2 is down.
  const gate = new RollbackGate('n1', ['n1', 'n2', 'n3'], state(7, null, 40));
  gate.reconfigure({ voters: ['n1', 'n2'] });
  t.equal(gate.verdict().kind, 'waiting', 'one of two voters: n2 must answer');
  const v = gate.reconfigure({ voters: ['n1', 'n2', 'n4'] });
  t.equal(v.kind, 'consistent', 'n4 joined after the store was written: the intact store holds any vote it gave n4');
  t.notOk(gate.wantsAnswer('n4'), 'nor is n4 asked: its record may already hold what this incarnation told it');
  t.ok(gate.wantsAnswer('n2'));
});

t.test('rule (a), once met, stays met when a voter is added', async (t) => {
  const gate = new RollbackGate('n1', ['n1', 'n2', 'n3'], state(7, null, 40));
  gate.answer('n2', null);
  t.ok(gate.mayVote(state(7, null, 40)));
  const v = gate.reconfigure({ voters: ['n1', 'n2', 'n3', 'n4', 'n5'] });
  t.equal(v.kind, 'consistent', 'five voters now, two answered, still consistent');
  t.ok(gate.mayVote(state(7, null, 40)));
  t.notOk(gate.wantsAnswer('n4'), 'voters added since are not asked under rule (a)');
  t.ok(gate.wantsAnswer('n3'), 'those of the start configuration still are');
  t.equal(gate.answer('n3', { term: 9, vote: null, ackIndex: 0 }).kind, 'rolled_back', 'and a later contradiction withholds the vote');
  t.ok(gate.wantsAnswer('n4'), 'from then on every voter in force is asked (rule (b))');
  t.notOk(gate.mayVote(state(7, null, 40)));
});

t.test('a joint configuration needs a quorum of both halves', async (t) => {
  // Moving from {n1, n2, n3} to {n1, n4, n5}: n1 alone is one of three in each half.
  const gate = new RollbackGate('n1', { voters: ['n1', 'n4', 'n5'], votersOutgoing: ['n1', 'n2', 'n3'] }, state(7, null, 40));
  t.same(gate.voters(), ['n2', 'n3', 'n4', 'n5']);
  t.equal(gate.answer('n2', null).kind, 'waiting', 'a quorum of the outgoing half only');
  t.equal(gate.answer('n3', null).kind, 'waiting', 'more of the same half does not help');
  t.equal(gate.answer('n4', null).kind, 'consistent', 'a quorum of each half');
});

t.test('a store that lost its vote waits for the voters in force, including one added since', async (t) => {
  const gate = new RollbackGate('n1', ['n1', 'n2', 'n3'], state(5, null, 12), { history: 'vote_lost' });
  gate.answer('n2', { term: 5, vote: null, ackIndex: 12 });
  t.equal(gate.verdict().kind, 'waiting', 'dead n3 has not answered');
  t.equal(gate.reconfigure({ voters: ['n1', 'n2'] }).kind, 'consistent', 'n3 removed: n2 was the last voter to answer');
  t.ok(gate.restorePending());
  t.ok(gate.mayVote(state(6, null, 12)));
  t.notOk(gate.restorePending(), 'voted under rule (b)');
  const v = gate.reconfigure({ voters: ['n1', 'n2', 'n5'] });
  t.equal(v.kind, 'waiting', 'n5 added: its answer is awaited (the node may have learnt of it late)');
  t.notOk(gate.mayVote(state(6, null, 12)));
  gate.answer('n5', null);
  t.ok(gate.mayVote(state(6, null, 12)));
});

t.test('a proven rollback: a removed witness still counts in the catch-up, a new voter must answer', async (t) => {
  const gate = new RollbackGate('n1', ['n1', 'n2', 'n3'], state(5, null, 10));
  gate.answer('n3', { term: 9, vote: 'n3', ackIndex: 0 });
  t.equal(gate.verdict().kind, 'rolled_back');
  const v = gate.reconfigure({ voters: ['n1', 'n2', 'n5'] });
  t.equal(v.kind, 'rolled_back', 'the proof is about the store: it stays');
  t.same(v.kind === 'rolled_back' ? v.catchUp : null, { term: 9, index: 0 }, 'the removed witness still sets the catch-up');
  gate.answer('n2', null);
  t.notOk(gate.mayVote(state(10, null, 10)), 'n5 has not answered');
  gate.answer('n5', null);
  t.notOk(gate.mayVote(state(9, null, 10)), 'not past term 9');
  t.ok(gate.mayVote(state(10, null, 10)));
});

t.test('the witness book records the members in force and forgets those that left', async (t) => {
  const book = new WitnessBook('n1', new Set(['n1', 'n2', 'n3']));
  t.ok(book.noteMessage(msg('appResp', 'n3', 'n1', 4, { index: 9 })));
  t.notOk(book.noteMessage(msg('appResp', 'n5', 'n1', 4, { index: 9 })), 'n5 is not a member yet');
  t.ok(book.setRoster(new Set(['n1', 'n2', 'n5'])), 'n3 removed: its record is forgotten');
  t.equal(book.report('n3'), null);
  t.ok(book.noteMessage(msg('appResp', 'n5', 'n1', 4, { index: 9 })), 'n5 added (a learner first): recorded');
  t.same(book.report('n5'), { term: 4, vote: null, ackIndex: 9 });
  t.notOk(book.setRoster(new Set(['n1', 'n2', 'n5'])), 'nothing to forget');
});

t.test('the monitor asks a new voter, relays to new members, and answers it from the book', async (t) => {
  const sc = new ScriptedCluster({ nodes: 3, label: 'reconfigure' });
  sc.genesis();
  const logs: string[] = [];
  const mon = new SplitBrainMonitor({ self: 'n1', clusterId: sc.clusterId, voters: ['n1', 'n2', 'n3'], identityKey: () => undefined, atStart: state(3, null, 10), log: (l) => logs.push(l) });
  const obs = { node: 'n1', term: 3, leader: 'n1', appliedIndex: 10, stateRoot: 'r' };
  t.notOk(mon.outgoing('n5', obs).query, 'n5 is not a voter: not asked');
  mon.noteMessage(msg('appResp', 'n5', 'n1', 3, { index: 8 }));
  t.equal(mon.witnesses.report('n5'), null, 'nor witnessed');
  mon.reconfigure({ voters: ['n1', 'n2'], learners: ['n5'] });
  t.notOk(mon.outgoing('n5', obs).query, 'a learner is witnessed, not asked');
  mon.noteMessage(msg('appResp', 'n5', 'n1', 3, { index: 8 }));
  t.same(mon.witnesses.report('n5'), { term: 3, vote: null, ackIndex: 8 });
  mon.reconfigure({ voters: ['n1', 'n2', 'n5'] });
  t.notOk(mon.outgoing('n5', obs).query, 'promoted after the start: not asked under rule (a)');
  t.equal(mon.gate.verdict().kind, 'consistent', 'and counted as having nothing to report: n1 with n5 make the quorum');
  t.match(logs.join('\n'), /voting \(still asking n2\)/, 'the log names the voters still asked');
  // n5 asks n1 what it saw: the answer comes from the book, which now records n5.
  mon.incoming('n5', decodeExchange(encodeExchange({ from: 'n5', observation: { node: 'n5', term: 3, leader: 'n1', appliedIndex: 8, stateRoot: 'r' }, statements: [], query: true }), 'n5'));
  t.same(mon.outgoing('n5', obs).answer, { term: 3, vote: null, ackIndex: 8 });
  const v = mon.incoming('n5', decodeExchange(encodeExchange({ from: 'n5', observation: { node: 'n5', term: 3, leader: 'n1', appliedIndex: 8, stateRoot: 'r' }, statements: [], query: false, answer: null }), 'n5')).verdict;
  t.equal(v?.kind, 'consistent', 'an answer n5 sends unasked is taken in');
});

t.test('the node guard reads the configuration each round and merges the stored book for members it learns of', async (t) => {
  const rest = (term: number, vote: string | null, ackIndex: number): PeerWitness => ({ boots: [], rest: { term, vote, ackIndex } });
  const stored = encodeWitnesses([['n5', rest(6, 'n1', 0)], ['n2', rest(6, null, 30)], ['n3', rest(4, null, 20)]]);
  const logs: string[] = [];
  // The snapshot names {n1, n2, n3}; the applied log since replaced n3 by n5 (driver.status().conf).
  const g = new NodeGuard({ self: 'n1', voters: ['n1', 'n2', 'n3'], atStart: state(6, null, 30), stored, identity: null, log: (l) => logs.push(l) });
  t.equal(g.monitor.witnesses.report('n5'), null, 'n5 is not in the snapshot configuration');
  t.same(g.monitor.witnesses.report('n3'), { term: 4, vote: null, ackIndex: 20 }, 'n3 is');
  let current = conf(['n1', 'n2', 'n5']);
  g.start({ peers: [], configuration: () => current, exchangeWanted: () => false, sendExchange: () => false, view: () => ({ term: 6, leader: null, appliedIndex: 30, root: '' }) });
  t.teardown(() => g.stop());
  t.same(g.monitor.gate.voters(), ['n2', 'n5'], 'the first round applied the configuration the driver holds');
  t.same(g.monitor.witnesses.report('n5'), { term: 6, vote: 'n1', ackIndex: 0 }, "n5's stored record is merged");
  t.match(logs.join('\n'), /follow the configuration: voters n1, n2, n5/);
  const w = g.takeWrites();
  t.same(decodeWitnesses(w.writes.find((x) => x.key === WITNESS_KEY)!.value!).map(([id]) => id).sort(), ['n2', 'n5'], "n3's record is no longer persisted");
  current = conf(['n1', 'n2', 'n5'], ['n6']);
  g.configure(current);
  t.ok(g.monitor.noteMessage(msg('appResp', 'n6', 'n1', 6, { index: 30 })), 'a learner is witnessed');
  // Without NodeGuardIo.configuration (the simulator's wiring), the configuration given stays.
  const h = new NodeGuard({ self: 'n1', voters: ['n1', 'n2', 'n3'], atStart: state(6, null, 30), stored: undefined, identity: null, log: () => undefined });
  h.start({ peers: [], exchangeWanted: () => false, sendExchange: () => false, view: () => ({ term: 6, leader: null, appliedIndex: 30, root: '' }) });
  t.teardown(() => h.stop());
  t.same(h.monitor.gate.voters(), ['n2', 'n3']);
});

// --- A model of the gate over configuration changes and answers ---------------------------------

const seed = Number(process.env.FC_SEED ?? Math.floor(Math.random() * 2 ** 31));
const runs = { numRuns: 300, seed };
t.comment(`fast-check seed ${seed} (replay with FC_SEED=${seed})`);

const SELF = 'n1';
const POOL = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6'];
type Step = { kind: 'conf'; voters: string[]; outgoing: string[] } | { kind: 'answer'; from: string; bad: boolean; w: Witness | null };

const local = state(10, null, 50);
const cleanWitness: fc.Arbitrary<Witness | null> = fc.oneof(fc.constant(null), fc.record({ term: fc.integer({ min: 0, max: 10 }), vote: fc.constant(null), ackIndex: fc.integer({ min: 0, max: 50 }) }));
const badWitness: fc.Arbitrary<Witness> = fc.record({ term: fc.integer({ min: 11, max: 15 }), vote: fc.constant(null), ackIndex: fc.integer({ min: 0, max: 80 }) });
const voterSet = fc.subarray(POOL, { minLength: 1 });
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('conf' as const), voters: voterSet, outgoing: fc.oneof(fc.constant([] as string[]), voterSet) }),
  fc.record({ kind: fc.constant('answer' as const), from: fc.constantFrom(...POOL.slice(1)), bad: fc.boolean(), w: cleanWitness }).chain((a) => (a.bad ? badWitness.map((w) => ({ ...a, w })) : fc.constant(a))),
);
const majorityOf = (half: string[], have: (v: string) => boolean): boolean => half.length === 0 || half.filter(have).length >= Math.floor(half.length / 2) + 1;

t.test('property: over any interleaving of configuration changes and answers, the gate follows its rules for the voters in force', async (t) => {
  fc.assert(
    fc.property(voterSet, fc.array(step, { maxLength: 25 }), fc.constantFrom<StoreHistory>('intact', 'vote_lost'), (start, steps, history) => {
      const gate = new RollbackGate(SELF, start, local, { history });
      let halves: string[][] = [start, []];
      const answered = new Map<string, Witness | null>();
      let quorumMet = false;
      let proven = false;
      const others = (): string[] => [...new Set(halves.flat())].filter((v) => v !== SELF);
      // Rule (a) asks only the start configuration's voters and counts later ones as having nothing to report.
      const startVoters = new Set(start);
      const check = (): boolean => {
        const have = (v: string): boolean => v === SELF || answered.has(v) || !startVoters.has(v);
        const everyone = others().every((v) => answered.has(v));
        if (!proven && history === 'intact' && halves.every((h) => majorityOf(h, have))) quorumMet = true;
        const asked = (p: string): boolean => startVoters.has(p) || proven || history === 'vote_lost';
        for (const p of POOL.slice(1)) if (gate.wantsAnswer(p) !== (others().includes(p) && !answered.has(p) && asked(p))) return false;
        if (proven) {
          // Never at the contradicted state; past every answer once every voter in force answered.
          const seen = [...answered.values()].filter((w): w is Witness => w !== null);
          const top = Math.max(...seen.map((w) => w.term));
          const index = Math.max(0, ...seen.filter((w) => w.term === top).map((w) => w.ackIndex));
          return gate.verdict().kind === 'rolled_back' && !gate.mayVote(local) && gate.mayVote(state(top + 1, null, index, top)) === everyone && caughtUp(state(top + 1, null, index, top), { term: top, index });
        }
        return gate.mayVote(local) === (history === 'vote_lost' ? everyone : quorumMet);
      };
      if (!check()) return false;
      for (const s of steps) {
        if (s.kind === 'conf') {
          halves = [s.voters, s.outgoing];
          gate.reconfigure({ voters: s.voters, votersOutgoing: s.outgoing });
        } else {
          const voter = others().includes(s.from);
          gate.answer(s.from, s.w);
          if (voter && !answered.has(s.from)) {
            answered.set(s.from, s.w);
            if (s.w !== null && contradiction(s.from, s.w, local)) proven = true;
          }
        }
        if (!check()) return false;
      }
      return true;
    }),
    runs,
  );
  t.pass(`${runs.numRuns} runs`);
});
