/**
 * Each checker, fed a history that breaks its property, fails with its own name; fed a history
 * that keeps it, stays quiet. (fault-switches.test.ts shows the same on the real core.)
 */
import t from 'tap';
import type { Entry } from '../../raft/core/types.js';
import { AppState, encodeOp } from './app.js';
import { Checkers, SimViolation } from './checkers.js';
import { entryDigest } from './hash.js';
import { SimLog } from './log.js';

function entry(index: number, term: number, tag = 0): Entry {
  return { index, term, type: 'normal', data: encodeOp(1, index * 100 + tag, 0) };
}

function log(...ents: Entry[]): SimLog {
  const l = SimLog.empty();
  l.append(ents);
  return l;
}

function violation(f: () => void): string | null {
  try {
    f();
    return null;
  } catch (e) {
    if (e instanceof SimViolation) return e.checker;
    throw e;
  }
}

t.test('election safety: a second leader in one term is caught (§5.2)', (t) => {
  const c = new Checkers(0);
  c.leader('n1', 3);
  t.equal(violation(() => c.leader('n1', 3)), null, 'the same leader seen again');
  t.equal(violation(() => c.leader('n2', 4)), null, 'another leader in another term');
  t.equal(violation(() => c.leader('n2', 3)), 'election-safety', 'two leaders in term 3');
  t.end();
});

t.test('log matching: equal (index, term) over different prefixes is caught (§5.3)', (t) => {
  const c = new Checkers(0);
  const a = log(entry(1, 1), entry(2, 2));
  const b = log(entry(1, 1, 9), entry(2, 2));
  t.equal(violation(() => c.written('n1', a.append([entry(3, 2)]))), null);
  const same = log(entry(1, 1), entry(2, 2), entry(3, 2));
  const all = [1, 2, 3].map((i) => ({ index: i, term: same.termAt(i) as number, chain: same.chainAt(i) as number }));
  t.equal(violation(() => c.written('n2', all)), null, 'an identical log agrees');
  const bad = [{ index: 2, term: 2, chain: b.chainAt(2) as number }];
  t.equal(violation(() => c.written('n3', bad)), 'log-matching', 'index 2 term 2 over a different index 1');
  t.end();
});

t.test('leader completeness: a leader without an earlier-term committed entry is caught (§5.4)', (t) => {
  const c = new Checkers(0);
  const full = log(entry(1, 1), entry(2, 2), entry(3, 2));
  c.committed('n1', 3, 2, full);
  t.equal(violation(() => c.leaderComplete('n1', 3, full)), null, 'a leader holding every committed entry');
  t.equal(violation(() => c.leaderComplete('n2', 3, log(entry(1, 1), entry(2, 2)))), 'leader-completeness', 'a shorter log');
  t.equal(violation(() => c.leaderComplete('n3', 3, log(entry(1, 1), entry(2, 2), entry(3, 3)))), 'leader-completeness', 'a different entry at 3');
  t.equal(violation(() => c.leaderComplete('n4', 2, log(entry(1, 1)))), null, 'entries committed in term 2 bind only later terms');
  t.end();
});

t.test('state machine safety: two entries committed or applied at one index are caught (§5.4.3)', (t) => {
  const c = new Checkers(0);
  c.committed('n1', 2, 2, log(entry(1, 1), entry(2, 2)));
  t.equal(violation(() => c.committed('n2', 2, 3, log(entry(1, 1), entry(2, 3)))), 'state-machine-safety', 'a different entry committed at 2');
  const c2 = new Checkers(0);
  const e = entry(1, 1);
  const other = entry(1, 1, 5);
  c2.applied('n1', e, entryDigest(e), 11);
  t.equal(violation(() => c2.applied('n2', e, entryDigest(e), 11)), null, 'the same entry and root');
  t.equal(violation(() => c2.applied('n3', other, entryDigest(other), 11)), 'state-machine-safety', 'a different entry applied');
  t.equal(violation(() => c2.applied('n4', e, entryDigest(e), 12)), 'state-machine-safety', 'a different state root');
  t.end();
});

t.test('an acknowledged proposal missing from a node that applied past it is caught', (t) => {
  const c = new Checkers(0);
  c.ack(7, 5, 10);
  const behind = AppState.empty(9);
  t.equal(violation(() => c.ackedKept('n1', behind)), null, 'a node not yet at index 10');
  const has = AppState.empty(0);
  for (let i = 1; i <= 12; i++) has.apply({ index: i, term: 1, type: 'normal', data: i === 10 ? encodeOp(7, 5, 0) : new Uint8Array(0) });
  t.equal(violation(() => c.ackedKept('n2', has)), null, 'a node that applied it');
  const lost = AppState.empty(12);
  t.equal(violation(() => c.ackedKept('n3', lost)), 'acked-proposal-lost', 'a node past index 10 without it');
  t.end();
});

t.test('a ReadIndex read that misses a write acknowledged before it began is caught (thesis §6.4)', (t) => {
  const c = new Checkers(0);
  c.ack(3, 2, 5);
  const before = c.ackedNow();
  c.ack(3, 3, 6); // acknowledged after the read began: the read may or may not see it
  const app = AppState.empty(0);
  for (let i = 1; i <= 5; i++) app.apply({ index: i, term: 1, type: 'normal', data: encodeOp(3, i === 5 ? 2 : 1, 0) });
  t.equal(violation(() => c.readSeesAcked('n1', 1, before, 5, app)), null, 'served at index 5, which holds seq 2');
  const stale = AppState.empty(4);
  t.equal(violation(() => c.readSeesAcked('n2', 2, before, 4, stale)), 'linearizable-read', 'served from state missing seq 2');
  t.end();
});
