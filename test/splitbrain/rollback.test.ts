/**
 * Rollback detection (node/splitbrain/rollback.ts): peers witness what a node promised (its term,
 * its votes, its acknowledgements — each durable before it was sent, Raft §5.1 Figure 2); a node
 * restored from an old copy is contradicted by them and withholds its vote until caught up. A plain
 * restart votes once a quorum's answers are in; a store that may have lost a vote waits for every voter.
 */
import fc from 'fast-check';
import t from 'tap';
import type { Message } from '../../raft/core/types.js';
import { splitBrain } from '../../proto/limits.js';
import { RollbackGate, WitnessBook, caughtUp, joinWitness, contradiction, describeVerdict, storeHistoryOf, type DurableState, type PeerWitness, type StoreHistory, type Witness } from '../../node/splitbrain/rollback.js';

const msg = (type: Message['type'], from: string, to: string, term: number, over: Partial<Pick<Message, 'index' | 'reject'>> = {}) => ({ type, from, to, term, index: 0, reject: false, ...over });
const state = (term: number, vote: string | null, lastIndex: number, lastLogTerm = term): DurableState => ({ term, vote, lastIndex, lastLogTerm });
const voters = ['n1', 'n2', 'n3'];

t.test('a witness book records the highest durable term, the vote granted to it, and acknowledged indexes', async (t) => {
  const book = new WitnessBook('n1', new Set(voters));
  t.ok(book.noteMessage(msg('voteResp', 'n2', 'n1', 4)));
  t.same(book.report('n2'), { term: 4, vote: 'n1', ackIndex: 0 });
  t.ok(book.noteMessage(msg('appResp', 'n2', 'n1', 4, { index: 30 })));
  t.notOk(book.noteMessage(msg('appResp', 'n2', 'n1', 4, { index: 20 })), 'a lower acknowledgement changes nothing');
  t.notOk(book.noteMessage(msg('appResp', 'n2', 'n1', 4, { index: 99, reject: true })), 'a rejection acknowledges nothing');
  t.ok(book.noteMessage(msg('voteResp', 'n3', 'n1', 4, { reject: true })), 'a refusal still shows the term n3 is in');
  t.same(book.report('n3'), { term: 4, vote: null, ackIndex: 0 }, 'a refused vote is no vote');
  t.same(book.report('n2'), { term: 4, vote: 'n1', ackIndex: 30 });
  t.ok(book.noteMessage(msg('heartbeatResp', 'n2', 'n1', 5)));
  t.same(book.report('n2'), { term: 5, vote: null, ackIndex: 0 }, 'a later term starts a new record');
});

t.test('pre-vote terms are not durable and are not witnessed (thesis §9.6)', async (t) => {
  const book = new WitnessBook('n1', new Set(voters));
  t.notOk(book.noteMessage(msg('preVote', 'n2', 'n1', 9)));
  t.notOk(book.noteMessage(msg('preVoteResp', 'n2', 'n1', 9)));
  t.equal(book.report('n2'), null);
});

t.test('only messages from roster peers addressed to this node are witnessed', async (t) => {
  const book = new WitnessBook('n1', new Set(voters));
  t.notOk(book.noteMessage(msg('app', 'n9', 'n1', 3)));
  t.notOk(book.noteMessage(msg('app', 'n2', 'n3', 3)));
  t.notOk(book.noteMessage(msg('app', 'n1', 'n1', 3)));
  t.notOk(book.noteMessage(msg('app', 'n2', 'n1', -1)));
  t.same(book.entries(), []);
});

t.test('a book restored from disk keeps the higher of two records', async (t) => {
  const book = new WitnessBook('n1', new Set(voters));
  book.noteMessage(msg('appResp', 'n2', 'n1', 6, { index: 10 }));
  const rest = (term: number, vote: string | null, ackIndex: number): PeerWitness => ({ boots: [], rest: { term, vote, ackIndex } });
  book.restore([['n2', rest(5, 'n1', 50)], ['n3', rest(2, null, 1)], ['n9', rest(9, null, 0)]]);
  t.same(book.report('n2'), { term: 6, vote: null, ackIndex: 10 });
  t.same(book.report('n3'), { term: 2, vote: null, ackIndex: 1 });
  t.equal(book.report('n9'), null, 'not on the roster');
});

t.test('contradictions: a later term, another vote in the same term, an acknowledged index past the log', async (t) => {
  const w = (term: number, vote: string | null, ackIndex: number): Witness => ({ term, vote, ackIndex });
  t.equal(contradiction('n2', w(7, null, 0), state(6, null, 100))?.what, 'term');
  t.equal(contradiction('n2', w(6, 'n3', 0), state(6, 'n2', 100))?.what, 'vote');
  t.equal(contradiction('n2', w(6, 'n3', 0), state(6, null, 100))?.what, 'vote', 'a forgotten vote');
  t.equal(contradiction('n2', w(6, null, 120), state(6, 'n2', 100))?.what, 'log');
  t.equal(contradiction('n2', w(6, 'n2', 100), state(6, 'n2', 100)), null, 'exactly what was promised');
  t.equal(contradiction('n2', w(5, 'n3', 500), state(6, 'n2', 100)), null, 'an older term says nothing about the current one');
});

t.test('scenario: a node restored from last week\'s image is contradicted and withholds votes until caught up', async (t) => {
  // n1 voted for n2 in term 12 and acknowledged index 340 to it; its image is from term 9.
  const n2 = new WitnessBook('n2', new Set(voters));
  n2.noteMessage(msg('voteResp', 'n1', 'n2', 12));
  n2.noteMessage(msg('appResp', 'n1', 'n2', 12, { index: 340 }));
  const n3 = new WitnessBook('n3', new Set(voters));
  n3.noteMessage(msg('vote', 'n1', 'n3', 11));
  const restored = state(9, 'n3', 200, 9);
  const gate = new RollbackGate('n1', voters, restored);
  t.equal(gate.verdict().kind, 'waiting');
  t.notOk(gate.mayVote(restored), 'no vote before anyone answered');
  const v1 = gate.answer('n3', n3.report('n1'));
  t.equal(v1.kind, 'rolled_back', 'one witness of a later term is proof enough');
  const v2 = gate.answer('n2', n2.report('n1'));
  if (v2.kind !== 'rolled_back') return t.fail('expected rolled_back');
  t.same(v2.catchUp, { term: 12, index: 340 });
  t.same(v2.evidence.map((e) => `${e.witness}:${e.what}`).sort(), ['n2:term', 'n3:term']);
  t.match(describeVerdict('n1', v2), /stored state went backwards .*n2 saw term 12 > stored 9/);
  t.notOk(gate.mayVote(state(12, null, 400, 12)), 'term 12 is a term it may already have voted in');
  t.notOk(gate.mayVote(state(13, null, 300, 12)), 'past the term but missing acknowledged entries');
  t.ok(gate.mayVote(state(13, null, 340, 12)), 'past the term with every acknowledged entry');
  t.ok(gate.mayVote(state(13, null, 250, 13)), 'or a log ending in an entry of a later leader (§5.4 Leader Completeness)');
});

t.test('scenario: a forgotten vote in the same term is caught by the candidate that received it', async (t) => {
  const gate = new RollbackGate('n1', voters, state(12, null, 340));
  gate.answer('n3', { term: 12, vote: null, ackIndex: 0 });
  const v = gate.answer('n2', { term: 12, vote: 'n2', ackIndex: 0 });
  t.equal(v.kind, 'rolled_back');
  t.notOk(gate.mayVote(state(12, null, 340)));
});

t.test('a clean restart votes once answers from a quorum are in, keeps asking the rest, and a late contradiction withholds', async (t) => {
  const gate = new RollbackGate('n1', voters, state(12, 'n2', 340));
  t.same(gate.verdict(), { kind: 'waiting', missing: ['n2', 'n3'], wanted: 1 });
  t.notOk(gate.mayVote(state(12, 'n2', 340)), 'no answer yet');
  t.match(describeVerdict('n1', gate.verdict()), /1 more voter.*missing n2, n3/);
  gate.answer('n9', null);
  t.equal(gate.verdict().kind, 'waiting', 'answers from non-voters do not count');
  t.same(gate.answer('n2', { term: 12, vote: 'n2', ackIndex: 0 }), { kind: 'consistent', missing: ['n3'] }, 'n2 and n1 are a quorum of three');
  t.ok(gate.mayVote(state(12, 'n2', 340)), 'votes with one voter down: the store holds every vote it made');
  t.ok(gate.wantsAnswer('n3'), 'and still asks n3');
  t.notOk(gate.wantsAnswer('n2'), 'not n2, which answered');
  t.notOk(gate.restorePending(), 'nothing to hold to after a restart');
  // n3 comes back and saw the node acknowledge more than its store holds: a disk that lost writes.
  const v = gate.answer('n3', { term: 12, vote: null, ackIndex: 400 });
  t.equal(v.kind, 'rolled_back');
  t.notOk(gate.mayVote(state(12, 'n2', 340)), 'a contradiction withholds the vote from then on');
  t.ok(gate.restorePending(), 'and holds to every voter\'s answer across a restart');
  t.ok(gate.mayVote(state(13, null, 400, 13)), 'until caught up past it');
  t.notOk(gate.restorePending(), 'once it voted under that rule, a restart need not hold to it again');
});

t.test('five voters, two down: two answers are enough', async (t) => {
  const five = ['n1', 'n2', 'n3', 'n4', 'n5'];
  const gate = new RollbackGate('n3', five, state(4, null, 10));
  gate.answer('n1', { term: 4, vote: null, ackIndex: 10 });
  t.same(gate.verdict(), { kind: 'waiting', missing: ['n2', 'n4', 'n5'], wanted: 1 });
  t.same(gate.answer('n5', null), { kind: 'consistent', missing: ['n2', 'n4'] });
});

t.test('a repeated answer does not replace the first', async (t) => {
  const gate = new RollbackGate('n1', voters, state(5, null, 10));
  gate.answer('n2', { term: 5, vote: null, ackIndex: 10 });
  t.same(gate.answer('n2', { term: 6, vote: null, ackIndex: 0 }), { kind: 'consistent', missing: ['n3'] }, 'after a reconnect a peer may count what this incarnation said since; the first answer stands');
});

t.test('a store wiped without its vote waits for every voter; --trust-store waives the silent ones', async (t) => {
  t.equal(storeHistoryOf(null), 'intact');
  t.equal(storeHistoryOf({ keptTerm: 6 }), 'log_lost');
  t.equal(storeHistoryOf({ keptTerm: null }), 'vote_lost');
  const gate = new RollbackGate('n1', voters, state(0, null, 0, 0), { history: 'vote_lost' });
  t.ok(gate.restorePending());
  gate.answer('n2', null);
  t.same(gate.verdict(), { kind: 'waiting', missing: ['n3'], wanted: 1 }, 'a quorum is not enough: n3 may hold the forgotten vote');
  t.notOk(gate.mayVote(state(0, null, 0, 0)));
  t.same(gate.answer('n3', null), { kind: 'consistent', missing: [] }, 'nobody saw it vote or speak');
  t.ok(gate.mayVote(state(0, null, 0, 0)));
  t.notOk(gate.restorePending());
  const waived = new RollbackGate('n1', voters, state(0, null, 0, 0), { history: 'vote_lost', waiveSilent: true });
  t.ok(waived.mayVote(state(0, null, 0, 0)), 'the operator vouches for the silent voters');
  waived.answer('n2', { term: 9, vote: null, ackIndex: 20 });
  t.notOk(waived.mayVote(state(9, null, 20, 9)), 'but never past a contradicting answer');
  t.ok(waived.mayVote(state(10, null, 20, 9)), 'caught up past it, with n3 still silent');
});

t.test('a wipe that kept term and vote, contradicted about the log only, needs the catch-up but not every voter', async (t) => {
  const gate = new RollbackGate('n1', voters, state(6, 'n2', 0, 0), { history: 'log_lost' });
  const v = gate.answer('n2', { term: 6, vote: 'n2', ackIndex: 40 });
  t.same(v.kind === 'rolled_back' ? v.missing : null, ['n3']);
  t.notOk(gate.restorePending(), 'its votes are intact');
  t.notOk(gate.mayVote(state(6, 'n2', 40, 6)), 'not caught up: still in the term it acknowledged 40 in');
  t.ok(gate.mayVote(state(7, null, 40, 7)), 'caught up, with n3 silent');
  const lost = new RollbackGate('n1', voters, state(4, null, 0, 0), { history: 'log_lost' });
  lost.answer('n2', { term: 6, vote: null, ackIndex: 40 });
  t.ok(lost.restorePending(), 'a term the wipe kept cannot be behind: that store lost more than its log');
  t.notOk(lost.mayVote(state(7, null, 40, 7)), 'so it waits for every voter');
});

t.test('a proven rollback stays proven when later answers are clean', async (t) => {
  const gate = new RollbackGate('n1', voters, state(5, null, 10));
  gate.answer('n2', { term: 8, vote: null, ackIndex: 30 });
  t.notOk(gate.mayVote(state(9, null, 30, 9)), 'caught up past n2, but n3 has not answered: it may hold a vote of a later term');
  const v = gate.answer('n3', null);
  t.equal(v.kind, 'rolled_back');
  t.same(v.kind === 'rolled_back' ? v.catchUp : null, { term: 8, index: 30 });
  t.ok(gate.mayVote(state(9, null, 30, 9)));
});

t.test('a single-voter cluster has nobody to ask and votes at once', async (t) => {
  t.same(new RollbackGate('n1', ['n1'], state(1, 'n1', 1)).verdict(), { kind: 'consistent', missing: [] });
  t.same(new RollbackGate('n1', ['n1'], state(1, 'n1', 1), { history: 'vote_lost' }).verdict(), { kind: 'consistent', missing: [] });
});

// --- Properties over answer orders and subsets --------------------------------------------------

const seed = Number(process.env.FC_SEED ?? Math.floor(Math.random() * 2 ** 31));
const runs = { numRuns: 400, seed };
t.comment(`fast-check seed ${seed} (replay with FC_SEED=${seed})`);

const SELF = 'n1';
/** A cluster, the node's store at start, and what each other voter will answer, in answer order. */
const scenario = fc
  .record({ n: fc.integer({ min: 1, max: 7 }), term: fc.integer({ min: 1, max: 20 }), voted: fc.boolean(), lastIndex: fc.integer({ min: 0, max: 50 }) })
  .chain(({ n, term, voted, lastIndex }) => {
    const all = Array.from({ length: n }, (_, i) => `n${i + 1}`);
    const others = all.slice(1);
    const local = state(term, voted && n > 1 ? (others[0] as string) : null, lastIndex);
    // A witness that agrees with the store: an older term, or the stored term with its vote and no more than its log.
    const clean: fc.Arbitrary<Witness | null> = fc.oneof(
      fc.constant(null),
      fc.record({ term: fc.integer({ min: 0, max: term - 1 }), vote: fc.constantFrom(null, ...others, SELF), ackIndex: fc.integer({ min: 0, max: 80 }) }),
      fc.record({ term: fc.constant(term), vote: fc.constantFrom(null, local.vote), ackIndex: fc.integer({ min: 0, max: lastIndex }) }),
    );
    const contradicting: fc.Arbitrary<Witness> = fc.oneof(
      fc.record({ term: fc.integer({ min: term + 1, max: term + 5 }), vote: fc.constantFrom(null, ...others, SELF), ackIndex: fc.integer({ min: 0, max: 80 }) }),
      fc.record({ term: fc.constant(term), vote: fc.constantFrom(...others.filter((o) => o !== local.vote), SELF), ackIndex: fc.integer({ min: 0, max: lastIndex }) }),
      fc.record({ term: fc.constant(term), vote: fc.constantFrom(null, local.vote), ackIndex: fc.integer({ min: lastIndex + 1, max: lastIndex + 30 }) }),
    );
    const answer = fc.record({ bad: fc.boolean(), clean, contradicting }).map((a) => (a.bad ? a.contradicting : a.clean));
    return fc.record({
      all: fc.constant(all),
      local: fc.constant(local),
      order: fc.shuffledSubarray(others),
      answers: fc.array(answer, { minLength: others.length, maxLength: others.length }),
      history: fc.constantFrom<StoreHistory>('intact', 'log_lost', 'vote_lost'),
    });
  });

const quorum = (n: number): number => Math.floor(n / 2) + 1;

t.test('property: an intact store with no contradicting answer votes exactly once a quorum (itself included) answered', async (t) => {
  fc.assert(
    fc.property(scenario, ({ all, local, order, answers }) => {
      const gate = new RollbackGate(SELF, all, local);
      const check = (answered: number): boolean => gate.mayVote(local) === (answered + 1 >= quorum(all.length));
      if (!check(0)) return false;
      for (const [k, from] of order.entries()) {
        const w = answers[k] ?? null;
        if (w !== null && contradiction(from, w, local)) return true; // covered by the next property
        gate.answer(from, w);
        if (!check(k + 1) || gate.wantsAnswer(from)) return false;
      }
      return true;
    }),
    runs,
  );
  t.pass(`${runs.numRuns} runs`);
});

t.test('property: any contradicting answer withholds the vote until every voter answered and the node caught up past them all', async (t) => {
  fc.assert(
    fc.property(scenario, ({ all, local, order, answers, history }) => {
      const gate = new RollbackGate(SELF, all, local, { history });
      let proven = false;
      const seen: Witness[] = [];
      for (const [k, from] of order.entries()) {
        const w = answers[k] ?? null;
        gate.answer(from, w);
        if (w !== null) seen.push(w);
        if (w !== null && contradiction(from, w, local)) proven = true;
        if (proven && gate.mayVote(local)) return false; // never at the state that was contradicted
      }
      if (!proven) return true;
      const top = Math.max(...seen.map((w) => w.term));
      const index = Math.max(0, ...seen.filter((w) => w.term === top).map((w) => w.ackIndex));
      const caught = state(top + 1, null, index, top);
      const logOnly = history === 'log_lost' && seen.every((w) => { const c = contradiction('x', w, local); return c === null || c.what === 'log'; });
      const everyone = order.length === all.length - 1;
      return gate.mayVote(caught) === (everyone || logOnly) && !gate.mayVote(state(top, null, index + 100, top));
    }),
    runs,
  );
  t.pass(`${runs.numRuns} runs`);
});

t.test('property: a store marked as having lost its vote waits for every voter, in any order', async (t) => {
  fc.assert(
    fc.property(scenario, ({ all, local, order }) => {
      const gate = new RollbackGate(SELF, all, local, { history: 'vote_lost' });
      for (const [k, from] of order.entries()) {
        if (gate.mayVote(local) !== (k === all.length - 1)) return false;
        gate.answer(from, null);
      }
      return gate.mayVote(local) === (order.length === all.length - 1);
    }),
    runs,
  );
  t.pass(`${runs.numRuns} runs`);
});

t.test('caughtUp is strict about the term', async (t) => {
  t.notOk(caughtUp(state(8, null, 1000, 8), { term: 8, index: 30 }));
  t.ok(caughtUp(state(9, null, 30, 8), { term: 8, index: 30 }));
});

t.test('a witness book keeps each boot of a peer apart and answers a boot with what every other boot said', async (t) => {
  const book = new WitnessBook('n1', new Set(voters));
  t.ok(book.noteMessage(msg('voteResp', 'n2', 'n1', 4), 'b-old'));
  t.ok(book.noteMessage(msg('appResp', 'n2', 'n1', 4, { index: 30 }), 'b-old'));
  // n2 restarts (boot b-new) and speaks in a later term it learned since.
  t.ok(book.noteMessage(msg('heartbeatResp', 'n2', 'n1', 6), 'b-new'));
  t.ok(book.noteMessage(msg('appResp', 'n2', 'n1', 6, { index: 41 }), 'b-new'));
  t.same(book.report('n2', 'b-new'), { term: 4, vote: 'n1', ackIndex: 30 }, 'the asking boot hears only what the earlier run said');
  t.same(book.report('n2', 'b-later'), { term: 6, vote: null, ackIndex: 41 }, 'a boot not heard yet hears everything');
  t.same(book.report('n2'), { term: 6, vote: null, ackIndex: 41 }, 'a query without a boot is answered with everything');
  t.ok(book.noteMessage(msg('appResp', 'n2', 'n1', 5, { index: 35 })), 'a message without a boot is kept');
  t.same(book.report('n2', 'b-new'), { term: 5, vote: null, ackIndex: 35 }, 'and counted against every asker');
  // The book as stored and read back at a restart answers the same (the defect this replaces).
  const again = new WitnessBook('n1', new Set(voters));
  again.restore(book.entries());
  t.same(again.report('n2', 'b-new'), book.report('n2', 'b-new'), 'read back, it still leaves out what b-new said');
});

t.test('a witness book keeps at most witnessBootsPerPeerMax boots per peer; older ones count against every asker', async (t) => {
  const book = new WitnessBook('n1', new Set(voters));
  const max = splitBrain.witnessBootsPerPeerMax;
  for (let i = 0; i <= max; i++) book.noteMessage(msg('appResp', 'n2', 'n1', 10 + i, { index: i + 1 }), `b${i}`);
  const [[, rec]] = book.entries() as [[string, PeerWitness]];
  t.equal(rec.boots.length, max, `${max} boots kept apart`);
  t.same(rec.rest, { term: 10, vote: null, ackIndex: 1 }, 'the least recently heard folded into the shared record');
  t.same(book.report('n2', 'b0'), { term: 10 + max, vote: null, ackIndex: max + 1 }, 'a run that old sees its own words too: an alarm at worst, never a hidden promise');
  // A boot heard again moves last and is not the next to fold.
  book.noteMessage(msg('appResp', 'n2', 'n1', 11, { index: 2 }), 'b1');
  book.noteMessage(msg('appResp', 'n2', 'n1', 20, { index: 9 }), 'b-next');
  t.ok((book.entries()[0]?.[1] as PeerWitness).boots.some((b) => b.boot === 'b1'), 'the recently heard b1 is still kept apart');
});

const bootMsg = fc.record({
  boot: fc.option(fc.constantFrom('b0', 'b1', 'b2', 'b3', 'b4', 'b5', 'b6'), { nil: undefined }),
  type: fc.constantFrom<Message['type']>('app', 'appResp', 'voteResp', 'heartbeatResp', 'vote', 'preVoteResp'),
  term: fc.integer({ min: 0, max: 6 }),
  index: fc.integer({ min: 0, max: 40 }),
  reject: fc.boolean(),
});
const witnessBootsMax = splitBrain.witnessBootsPerPeerMax;

t.test('property: an answer holds everything every other boot said (exactly that while the boots fit), never less; a stored book answers the same', async (t) => {
  fc.assert(
    fc.property(fc.array(bootMsg, { maxLength: 60 }), fc.constantFrom('b0', 'b3', 'b6'), (ms, asker) => {
      const book = new WitnessBook('n1', new Set(voters));
      const others = new WitnessBook('n1', new Set(voters));
      for (const m of ms) {
        const x = msg(m.type, 'n2', 'n1', m.term, { index: m.index, reject: m.reject });
        book.noteMessage(x, m.boot);
        if (m.boot !== asker) others.noteMessage(x);
      }
      const got = book.report('n2', asker);
      const want = others.report('n2');
      const boots = new Set(ms.map((m) => m.boot).filter((b) => b !== undefined));
      if (boots.size <= witnessBootsMax && JSON.stringify(got) !== JSON.stringify(want)) return false;
      // Never less: joining what the other boots said adds nothing to the answer.
      if (JSON.stringify(joinWitness(got, want)) !== JSON.stringify(got)) return false;
      const stored = new WitnessBook('n1', new Set(voters));
      stored.restore(book.entries());
      return JSON.stringify(stored.report('n2', asker)) === JSON.stringify(got);
    }),
    runs,
  );
  t.pass(`${runs.numRuns} runs`);
});
