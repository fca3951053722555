/**
 * Rollback detection (node/splitbrain/rollback.ts): peers witness what a node promised (its term,
 * its votes, its acknowledgements — each durable before it was sent, Raft §5.1 Figure 2); a node
 * restored from an old copy is contradicted by them and withholds its vote until caught up.
 */
import t from 'tap';
import type { Message } from '../../raft/core/types.js';
import { RollbackGate, WitnessBook, caughtUp, contradiction, describeVerdict, type DurableState, type Witness } from '../../node/splitbrain/rollback.js';

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
  book.restore([['n2', { term: 5, vote: 'n1', ackIndex: 50 }], ['n3', { term: 2, vote: null, ackIndex: 1 }], ['n9', { term: 9, vote: null, ackIndex: 0 }]]);
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

t.test('a clean restart votes once every other voter has answered, and not before', async (t) => {
  const gate = new RollbackGate('n1', voters, state(12, 'n2', 340));
  gate.answer('n2', { term: 12, vote: 'n2', ackIndex: 0 });
  t.same(gate.verdict(), { kind: 'waiting', missing: ['n3'] });
  t.notOk(gate.mayVote(state(12, 'n2', 340)), 'a silent voter may hold the forgotten vote');
  t.match(describeVerdict('n1', gate.verdict()), /missing n3/);
  gate.answer('n9', null);
  t.equal(gate.verdict().kind, 'waiting', 'answers from non-voters do not count');
  t.same(gate.answer('n3', null), { kind: 'consistent' });
  t.ok(gate.mayVote(state(12, 'n2', 340)));
});

t.test('a proven rollback stays proven when later answers are clean', async (t) => {
  const gate = new RollbackGate('n1', voters, state(5, null, 10));
  gate.answer('n2', { term: 8, vote: null, ackIndex: 30 });
  const v = gate.answer('n3', null);
  t.equal(v.kind, 'rolled_back');
  t.same(v.kind === 'rolled_back' ? v.catchUp : null, { term: 8, index: 30 });
});

t.test('a single-voter cluster has nobody to ask and votes at once', async (t) => {
  t.same(new RollbackGate('n1', ['n1'], state(1, 'n1', 1)).verdict(), { kind: 'consistent' });
});

t.test('caughtUp is strict about the term', async (t) => {
  t.notOk(caughtUp(state(8, null, 1000, 8), { term: 8, index: 30 }));
  t.ok(caughtUp(state(9, null, 30, 8), { term: 8, index: 30 }));
});
