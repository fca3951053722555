/**
 * ActDenialRecorded on the real state machine (ScriptedCluster): a Denied act's verdict entered in
 * the log, so that its evidence rests on an entry a quorum cosigns. The ledger accepts it only as
 * its own recorded verdict (the reason code and the digest of the rule record), in the proposer's
 * signed name, for an act it recorded Denied; every refusal carries its reason code and changes
 * nothing. The property: for Denied acts of every kind the test can make (a rule's block, default
 * deny, an unparseable transaction), the record built from the ledger's verdict is accepted and
 * any other reason code or rule digest is refused. A failing property prints its seed; replay
 * with FC_SEED=<seed>.
 */
import t, { type Test } from 'tap';
import fc from 'fast-check';
import { ScriptedCluster, bytesEqual, denialRuleDigest, encodeEvent, stateRoot, type ApplyResult, type LedgerEvent } from '../../ledger/index.js';
import { rid } from '../../ledger/scenario.js';
import { signProposed } from '../../ledger/proposer-sig.js';
import { REASON_CODES } from '../../proto/reasons.js';

const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31);

function cluster(): ScriptedCluster {
  const s = new ScriptedCluster({ label: 'denial-recorded' });
  s.genesis();
  for (const r of s.createKey('k1')) if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  return s;
}

function refusedWith(t: Test, s: ScriptedCluster, reason: string, run: () => ApplyResult, what: string): void {
  const before = s.state;
  const r = run();
  t.match(r, { ok: false, reason, applied: false }, `${what}: refused ${reason}${r.ok ? '' : ` (${r.detail})`}`);
  t.ok(bytesEqual(stateRoot({ ...s.state, index: before.index, clockMs: before.clockMs }), stateRoot(before)), `${what}: nothing but index and clock changed`);
}

/** Three Denied acts of different kinds, and an admitted one. */
function withActs(s: ScriptedCluster): void {
  s.submit('big', s.act('k1', { amount: 50_000n }));
  s.submit('garbled', s.act('k1', { tx: new Uint8Array([1, 2, 3, 4]) }));
  s.submit('ok', s.act('k1', { amount: 1_000n }));
}

t.test('the verdict the ledger recorded is entered once asked, and changes nothing but the log', async (t) => {
  const s = cluster();
  withActs(s);
  const big = s.state.cluster!.ops[rid('big')]!;
  t.equal(big.state, 'Denied', `the large act is Denied ${big.reason}`);
  t.not(big.rule, null, 'by a rule, which the ledger recorded');
  const before = s.state;
  const r = s.recordDenial('big');
  t.ok(r.ok, r.ok ? r.effect : `${r.reason}: ${r.detail}`);
  t.equal(s.state.height, before.height + 1, 'the record is an entry of the log');
  t.equal(s.state.cluster, before.cluster, 'the cluster state object is the one before');
  const garbled = s.state.cluster!.ops[rid('garbled')]!;
  t.match(garbled, { state: 'Denied', reason: 'TX_UNPARSEABLE', rule: null }, 'an unparseable transaction is Denied outside the rules');
  t.ok(s.recordDenial('garbled').ok, 'its record names the digest of no rule');
  t.ok(s.recordDenial('big').ok, 'a second record of the same verdict is accepted: it says the same');
});

t.test('refusals: no such act, an act not Denied, another reason or rule, another proposer, no signature', async (t) => {
  const s = cluster();
  withActs(s);
  const big = s.state.cluster!.ops[rid('big')]!;
  const garbled = s.state.cluster!.ops[rid('garbled')]!;
  refusedWith(t, s, 'UNKNOWN_SESSION', () => s.recordDenial('never-submitted'), 'an act the ledger never saw');
  refusedWith(t, s, 'INVALID_TRANSITION', () => s.recordDenial('ok', { reason: 'POLICY_DENIED', ruleDigest: denialRuleDigest(null) }), 'an admitted act called Denied');
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.recordDenial('big', { reason: 'FROZEN' }), 'the large act\'s denial under another reason code');
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.recordDenial('big', { ruleDigest: denialRuleDigest(null) }), 'the large act\'s denial as if no rule had decided it');
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.recordDenial('big', { ruleDigest: denialRuleDigest({ ...big.rule!, id: 'sol-small' }) }), 'the large act\'s denial naming another rule');
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.recordDenial('garbled', { ruleDigest: denialRuleDigest(big.rule) }), 'an unparseable act\'s denial naming a rule');
  refusedWith(t, s, 'BINDING_MISMATCH', () => s.recordDenial('garbled', { reason: big.reason! }), 'an unparseable act\'s denial under the large act\'s reason');
  // Not in the proposer's own name: signed by node-1's key while naming node-0, and unsigned.
  const event: LedgerEvent = { type: 'ActDenialRecorded', opId: rid('big'), reason: big.reason!, ruleDigest: denialRuleDigest(big.rule), nodeId: 'node-0', passport: s.node('node-0').info.passport };
  const forged = signProposed(s.clusterId, event, s.node('node-1').secretKey);
  refusedWith(t, s, 'PROPOSER_SIGNATURE_INVALID', () => s.entry(encodeEvent(forged)).result, 'a record signed by another node than it names');
  refusedWith(t, s, 'PROPOSER_SIGNATURE_INVALID', () => s.entry(encodeEvent(event)).result, 'an unsigned record');
  t.equal(garbled.reason, 'TX_UNPARSEABLE');
});

t.test('property: the recorded verdict is accepted, any other reason code or rule digest refused', async (t) => {
  const denied = ['big', 'garbled'];
  const r = fc.check(fc.property(
    fc.constantFrom(...denied), fc.constantFrom(...REASON_CODES), fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.boolean(),
    (label, reason, digest, changeReason) => {
      const s = cluster();
      withActs(s);
      const op = s.state.cluster!.ops[rid(label)]!;
      const right = denialRuleDigest(op.rule);
      const over = changeReason ? { reason } : { ruleDigest: digest };
      const same = changeReason ? reason === op.reason : bytesEqual(digest, right);
      const res = s.recordDenial(label, over);
      return same ? res.ok : (!res.ok && res.reason === 'BINDING_MISMATCH' && !res.applied);
    },
  ), { seed, numRuns: 60 });
  t.comment(`seed ${seed}`);
  t.notOk(r.failed, r.failed ? `counterexample ${JSON.stringify(r.counterexample)} (replay with FC_SEED=${seed})` : `${r.numRuns} runs`);
});
