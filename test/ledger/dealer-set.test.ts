/**
 * The dealers of a refresh / reshare (ledger/dealer-set.ts): fixed by the log from the holders
 * that stated RedealReady, the first t of them, never changed afterwards; refused from anyone who
 * cannot deal. Replay a property failure with
 *   FC_SEED=<seed> npx tap dist/test/ledger/dealer-set.test.js
 */
import t from 'tap';
import fc from 'fast-check';
import { ScriptedCluster, applyAll, checkInvariants, emptyState, stateFromCbor, stateRoot, stateToCbor, type ApplyResult, type EpochRecord } from '../../ledger/index.js';
import { redealDealerSet } from '../../ledger/dealer-set.js';

const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31);

function ready(s: ScriptedCluster, nodeId: string, keyEpoch: number, fromEpoch = 0, signer = nodeId): ApplyResult {
  const statement = s.statement(signer, 'RedealReady', { keyId: 'k', keyEpoch }, { fromEpoch });
  return s.entry({ type: 'RedealReady', statement: signer === nodeId ? statement : { ...statement, nodeId } }).result;
}

const epochOf = (s: ScriptedCluster, e: number): EpochRecord => s.state.cluster!.keys['k']!.epochs[String(e)]!;
const dealers = (s: ScriptedCluster, from: number, to: number): string[] | null => redealDealerSet(epochOf(s, from), epochOf(s, to));

/** Four nodes; key k is 2-of-3 over node-0..node-2 and active at epoch 0. */
function setup(label: string): ScriptedCluster {
  const s = new ScriptedCluster({ label, nodes: 4 });
  s.genesis();
  for (const r of s.createKey('k', ['node-0', 'node-1', 'node-2'], 2)) if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  return s;
}

t.test('the first t holders that say they can deal are the dealers, in the old epoch\'s order', async (t) => {
  const s = setup('dealers-refresh');
  t.ok(s.decide({ kind: 'KeyRefreshed', keyId: 'k', keyEpoch: 1 }).ok);
  t.equal(dealers(s, 0, 1), null, 'no dealers before any holder said it can deal');
  const first = ready(s, 'node-2', 1);
  t.ok(first.ok, 'node-2 can deal');
  t.equal(dealers(s, 0, 1), null, 'one of two: not fixed yet');
  t.ok(ready(s, 'node-1', 1).ok, 'node-1 can deal');
  t.same(dealers(s, 0, 1), ['node-1', 'node-2'], 'fixed: node-1 and node-2, not node-0 (which never said so)');
  t.same(epochOf(s, 1).dealersReady, ['node-2', 'node-1'], 'the ledger keeps them in log order');
  const late = ready(s, 'node-0', 1);
  t.match(late, { ok: false, reason: 'DEALERS_FIXED' }, 'a third holder after the set is fixed is refused');
  t.same(dealers(s, 0, 1), ['node-1', 'node-2'], 'and the set stays');
  t.match(ready(s, 'node-1', 1), { ok: true, replayed: true }, 'the same statement again is a replay');
  t.same(checkInvariants(s.state), [], 'invariants hold');

  // The record survives the canonical state encoding, and the root covers it.
  const back = stateFromCbor(stateToCbor(s.state));
  t.same(back.cluster!.keys['k']!.epochs['1']!.dealersReady, ['node-2', 'node-1'], 'decoded state keeps the dealers');
  t.same(stateRoot(back), stateRoot(s.state), 'same state root after a round trip');
  // A state whose dealers list is empty (not left out) or names a node twice is not canonical.
  const withDealers = (d: string[]) => {
    const cbor = stateToCbor(s.state) as { cluster: { keys: { k: { epochs: { [e: string]: { dealersReady?: string[] } } } } } };
    cbor.cluster.keys.k.epochs['1']!.dealersReady = d;
    return () => stateFromCbor(cbor as never);
  };
  t.throws(withDealers([]), { name: 'ShapeError' }, 'an empty dealers list present is refused at decode');
  t.throws(withDealers(['node-1', 'node-1']), { name: 'ShapeError' }, 'a holder listed twice is refused at decode');
  // A replica applying the same log reaches the same set.
  const replica = applyAll(emptyState(), s.log).state;
  t.same(stateRoot(replica), stateRoot(s.state), 'a replica fed the same log has the same root');
  t.same(redealDealerSet(replica.cluster!.keys['k']!.epochs['0']!, replica.cluster!.keys['k']!.epochs['1']!), ['node-1', 'node-2'], 'and the same dealers');

  // The ceremony completes with those dealers and the key activates at epoch 1.
  for (const r of s.runCeremony('k', 1)) t.ok(r.ok, `ceremony step ${r.ok ? '' : `${r.reason} ${r.detail}`}`);
  t.ok(s.activate('k', 1).ok, 'epoch 1 activates');
  t.match(ready(s, 'node-0', 1), { ok: false, reason: 'INVALID_TRANSITION' }, 'no RedealReady once the ceremony is over');
});

t.test('refusals: who cannot deal is never a dealer', async (t) => {
  const s = setup('dealers-refusals');
  t.match(ready(s, 'node-0', 0), { ok: false, reason: 'INVALID_TRANSITION' }, 'no RedealReady for an epoch that is not in its ceremony');
  // A reshare from {0,1,2} to {1,2,3}: node-0 holds a share but leaves; node-3 joins without one.
  t.ok(s.decide({ kind: 'KeyReshared', keyId: 'k', keyEpoch: 1, threshold: 2, participants: ['node-1', 'node-2', 'node-3'] }).ok);
  t.match(ready(s, 'node-0', 1), { ok: false, reason: 'WRONG_RECIPIENT' }, 'a holder outside the new committee does not run the ceremony');
  t.match(ready(s, 'node-3', 1), { ok: false, reason: 'WRONG_RECIPIENT' }, 'a new member holds no share to deal');
  t.match(ready(s, 'node-1', 1, 7), { ok: false, reason: 'STALE_EPOCH' }, 'readiness to deal another epoch than the active one');
  t.match(ready(s, 'node-2', 1, 0, 'node-1'), { ok: false, reason: 'SIGNATURE_INVALID' }, 'node-1 cannot say it for node-2');
  t.match(ready(s, 'node-9', 1, 0, 'node-3'), { ok: false, reason: 'UNKNOWN_NODE' }, 'an unknown node is refused');
  const bad = s.statement('node-1', 'RedealReady', { keyId: 'k', keyEpoch: 1 }, { from: 0 });
  t.match(s.entry({ type: 'RedealReady', statement: bad }).result, { ok: false, reason: 'PAYLOAD_REJECTED' }, 'content without fromEpoch');
  t.match(s.entry({ type: 'RedealReady', statement: s.statement('node-1', 'KeyReady', { keyId: 'k', keyEpoch: 1 }, { fromEpoch: 0 }) }).result, { ok: false, reason: 'PAYLOAD_REJECTED' }, 'a statement of another kind');
  t.ok(s.fenceByDecision('node-1').ok, 'node-1 fenced');
  t.match(ready(s, 'node-1', 1), { ok: false, reason: 'SPLIT_BRAIN_FENCED' }, 'a fenced holder cannot deal');
  t.equal(epochOf(s, 1).dealersReady, undefined, 'nothing recorded by any refusal');
  t.ok(ready(s, 'node-2', 1).ok, 'node-2 can deal');
  // A second, different readiness for the same slot is equivocation: recorded, the offender flagged.
  const other = s.statement('node-2', 'RedealReady', { keyId: 'k', keyEpoch: 1 }, { fromEpoch: 1 });
  t.match(s.entry({ type: 'RedealReady', statement: other }).result, { ok: false, reason: 'EQUIVOCATION' }, 'two different RedealReady by one node');
  t.equal(s.state.cluster!.nodes['node-2']!.equivocated, true, 'node-2 is flagged');
  t.equal(epochOf(s, 1).status, 'aborted', 'and the ceremony it was a member of is aborted (a new decision starts over)');
  t.same(epochOf(s, 1).dealersReady, ['node-2'], 'its first statement stays; nothing else is added');
  t.same(checkInvariants(s.state), [], 'invariants hold');
});

t.test('property: the dealers are the first t eligible holders in log order, fixed once, the same on every replica', async (t) => {
  t.comment(`FC_SEED=${seed}`);
  const nodes = ['node-0', 'node-1', 'node-2', 'node-3', 'node-4'];
  const holders = ['node-0', 'node-1', 'node-2', 'node-3'];
  const arb = fc.record({
    threshold: fc.integer({ min: 2, max: 3 }),
    committee: fc.subarray(nodes, { minLength: 3, maxLength: 5 }),
    says: fc.array(fc.record({ node: fc.integer({ min: 0, max: 4 }), stale: fc.boolean() }), { maxLength: 10 }),
  });
  const r = fc.check(fc.property(arb, ({ threshold, committee, says }) => {
    const s = new ScriptedCluster({ label: 'dealers-property', nodes: 5 });
    s.genesis();
    if (!s.createKey('k', holders, threshold).every((r) => r.ok)) return false;
    if (!s.decide({ kind: 'KeyReshared', keyId: 'k', keyEpoch: 1, threshold: 2, participants: committee }).ok) return false;
    const model: string[] = [];
    let fixed: string[] | null = null;
    let aborted = false;
    for (const x of says) {
      const id = nodes[x.node]!;
      const r = ready(s, id, 1, x.stale ? 1 : 0);
      const eligible = !aborted && !x.stale && holders.includes(id) && committee.includes(id) && !model.includes(id) && model.length < threshold;
      if (r.ok && !r.replayed !== eligible) return false;
      if (eligible) model.push(id);
      // A member that said it can deal and then says something else equivocates: the ledger flags
      // it and aborts the ceremony; the dealers recorded so far stay as they were.
      if (!aborted && x.stale && model.includes(id)) {
        if (r.ok || r.reason !== 'EQUIVOCATION' || epochOf(s, 1).status !== 'aborted') return false;
        aborted = true;
      }
      const now = dealers(s, 0, 1);
      if (fixed !== null && JSON.stringify(now) !== JSON.stringify(fixed)) return false; // never changes once fixed
      if (model.length === threshold) {
        if (now === null || now.length !== threshold || JSON.stringify(now) !== JSON.stringify(holders.filter((h) => model.includes(h)))) return false;
        fixed = now;
      } else if (now !== null) return false;
      if (checkInvariants(s.state).length > 0) return false;
    }
    const replica = applyAll(emptyState(), s.log).state;
    return stateRoot(replica).every((b, i) => b === stateRoot(s.state)[i]);
  }), { seed, numRuns: 60 });
  t.equal(r.failed, false, `the dealer set is fixed once, from the first t ready holders, on every replica (${r.numRuns} runs, seed ${seed})${r.failed ? `: ${fc.defaultReportMessage(r) ?? ''}` : ''}`);
});
