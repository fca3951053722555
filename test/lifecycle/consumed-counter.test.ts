/**
 * The nonce counter a participant tells its kernel the ledger records as consumed
 * (participant.ts ledgerConsumedCounter): only counters of signing sets whose act executed — every
 * member's kernel consumed its nonce before its share left — for the same key epoch and node. A
 * set fixed for an act that never executed proves nothing (its members may never have been
 * asked), so it never raises the counter: a kernel is never told more than it consumed.
 */
import { rid } from '../../ledger/scenario.js';
import t from 'tap';
import { ScriptedCluster } from '../../ledger/scenario.js';
import type { ClusterState, OpRecord } from '../../ledger/state.js';
import { ledgerConsumedCounter } from '../../node/lifecycle/participant.js';

function script(): ScriptedCluster {
  const s = new ScriptedCluster({ label: 'consumed' });
  s.genesis();
  for (const r of [...s.createKey('k1'), ...s.createKey('k2')]) if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  return s;
}

const cluster = (s: ScriptedCluster): ClusterState => s.state.cluster as ClusterState;
const op = (s: ScriptedCluster, id: string): OpRecord => cluster(s).ops[rid(id)] as OpRecord;
const counterOf = (s: ScriptedCluster, id: string, nodeId: string): number =>
  op(s, id).signingSet?.commitments.find((m) => m.nodeId === nodeId)?.nonces.at(-1)?.counter ?? -1;

t.test('nothing executed yet: the ledger proves no consumed nonce', async (t) => {
  const s = script();
  s.submit('a', s.act('k1'));
  s.issuePermit('a');
  t.equal(ledgerConsumedCounter(cluster(s), op(s, 'a'), 'node-0'), 0);
  s.fixSigningSet('a');
  t.equal(ledgerConsumedCounter(cluster(s), op(s, 'a'), 'node-0'), 0, 'a fixed set of an act not executed proves nothing');
});

t.test('executed acts raise the counter of their members, per key epoch and node', async (t) => {
  const s = script();
  for (const id of ['a', 'b']) {
    s.submit(id, s.act('k1'));
    s.issuePermit(id);
    s.execute(id);
  }
  s.submit('c', s.act('k1'));
  s.issuePermit('c');
  s.fixSigningSet('c', { commitments: s.signingSet('c', ['node-1', 'node-2']) });
  s.submit('other-key', s.act('k2'));
  s.issuePermit('other-key');
  s.execute('other-key');
  t.equal(op(s, 'b').state, 'Executed');
  t.equal(ledgerConsumedCounter(cluster(s), op(s, 'c'), 'node-0'), counterOf(s, 'b', 'node-0'), 'node-0: the latest executed set of k1 it was in');
  t.equal(ledgerConsumedCounter(cluster(s), op(s, 'c'), 'node-1'), counterOf(s, 'b', 'node-1'), 'node-1: not the pending act\'s larger counter');
  t.ok(counterOf(s, 'c', 'node-1') > counterOf(s, 'b', 'node-1'), 'the pending act does name a larger counter');
  t.equal(ledgerConsumedCounter(cluster(s), op(s, 'c'), 'node-2'), 0, 'node-2 was in no executed set of k1');
  t.equal(ledgerConsumedCounter(cluster(s), op(s, 'other-key'), 'node-0'), counterOf(s, 'other-key', 'node-0'), 'another key counts for itself');
});

t.test('an act aborted before execution leaves the counter where the executed acts put it', async (t) => {
  const s = script();
  s.submit('a', s.act('k1'));
  s.issuePermit('a');
  s.execute('a');
  s.submit('b', s.act('k1'));
  s.issuePermit('b');
  s.fixSigningSet('b');
  s.abort('b', 'REMOTE_TIMEOUT');
  t.equal(op(s, 'b').state, 'Aborted');
  s.submit('c', s.act('k1'));
  s.issuePermit('c');
  t.equal(ledgerConsumedCounter(cluster(s), op(s, 'c'), 'node-0'), counterOf(s, 'a', 'node-0'));
  s.refreshKey('k1');
  s.submit('d', s.act('k1'));
  s.issuePermit('d');
  t.equal(op(s, 'd').act.keyEpoch, 1);
  t.equal(ledgerConsumedCounter(cluster(s), op(s, 'd'), 'node-0'), 0, 'a new key epoch starts from what its own executions prove');
});
