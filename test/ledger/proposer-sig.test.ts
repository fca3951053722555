/**
 * The proposer of every journal event is authenticated (ledger/proposer-sig.ts, ledger/apply.ts
 * checkProposer), tested as an attacker who knows every passport (they are public) but holds at
 * most other nodes' identity keys: an event in node-1's name without node-1's signature for this
 * cluster over this very event is refused PROPOSER_SIGNATURE_INVALID and nothing moves; the event
 * node-1 signed applies.
 */
import t, { type Test } from 'tap';
import fc from 'fast-check';
import { ScriptedCluster, apply, checkInvariants, decodeEvent, encodeEvent, rid, type ApplyResult, type LedgerEvent, type LedgerState } from '../../ledger/index.js';
import { type ProposedEvent, proposerSigningBytes, signProposed, verifyProposed } from '../../ledger/proposer-sig.js';

function ok(t: Test, r: ApplyResult, what?: string): void {
  t.ok(r.ok, what ?? (r.ok ? r.effect : `${r.reason}: ${r.detail}`));
}

/** A cluster with an active key and act op-1 submitted by node-1, waiting for its permit. */
function withOpenAct(): ScriptedCluster {
  const s = new ScriptedCluster({ label: 'proposer-sig' });
  s.genesis();
  for (const r of s.createKey('k1')) if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  const r = s.submit('op-1', s.act('k1'), null, 'node-1');
  if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  return s;
}

const opState = (st: LedgerState, label: string) => st.cluster!.ops[rid(label)]!.state;

/** Appends raw event bytes (no signing by the script) and asserts the refusal moved nothing but the index and clock. */
function refusedUnmoved(t: Test, s: ScriptedCluster, bytes: Uint8Array, reason: string, what: string): void {
  const before = s.state;
  const r = s.entry(bytes).result;
  t.match(r, { ok: false, applied: false, reason }, what);
  t.equal(s.state.cluster, before.cluster, `${what}: the cluster state did not move`);
  t.same(s.state.chainHead, before.chainHead, `${what}: the chain did not move`);
}

t.test('an abort in node-1\'s name under its passport is refused unless node-1 signed it for this cluster', async (t) => {
  const s = withOpenAct();
  const abort: ProposedEvent = { type: 'ActAborted', opId: rid('op-1'), reason: 'REMOTE_TIMEOUT', ...s.proposer('node-1') };
  const n1 = s.node('node-1').secretKey;

  refusedUnmoved(t, s, encodeEvent(abort), 'PROPOSER_SIGNATURE_INVALID', 'no signature');
  refusedUnmoved(t, s, encodeEvent(signProposed(s.clusterId, abort, s.node('node-0').secretKey)), 'PROPOSER_SIGNATURE_INVALID', 'signed by node-0, in node-1\'s name');
  refusedUnmoved(t, s, encodeEvent(signProposed(s.clusterId, abort, s.node('node-2').secretKey)), 'PROPOSER_SIGNATURE_INVALID', 'signed by node-2, in node-1\'s name');
  // node-1's genuine signature over another event (another reason, another act) moved onto this one.
  const other = signProposed(s.clusterId, { ...abort, reason: 'PAYLOAD_REJECTED' } as ProposedEvent, n1);
  refusedUnmoved(t, s, encodeEvent({ ...abort, sig: other.sig } as LedgerEvent), 'PROPOSER_SIGNATURE_INVALID', 'node-1\'s signature over another reason');
  const otherAct = signProposed(s.clusterId, { ...abort, opId: rid('op-2') } as ProposedEvent, n1);
  refusedUnmoved(t, s, encodeEvent({ ...abort, sig: otherAct.sig } as LedgerEvent), 'PROPOSER_SIGNATURE_INVALID', 'node-1\'s signature over another act');
  // A permit issuance node-1 signed cannot be turned into an abort either.
  const permit = signProposed(s.clusterId, { type: 'ActPermitIssued', opId: rid('op-1'), ...s.proposer('node-1') } as ProposedEvent, n1);
  refusedUnmoved(t, s, encodeEvent({ ...abort, sig: permit.sig } as LedgerEvent), 'PROPOSER_SIGNATURE_INVALID', 'node-1\'s signature over another event type');
  refusedUnmoved(t, s, encodeEvent(signProposed('cluster-other', abort, n1)), 'PROPOSER_SIGNATURE_INVALID', 'node-1\'s signature for another cluster');
  refusedUnmoved(t, s, encodeEvent({ ...abort, sig: new Uint8Array(64) } as LedgerEvent), 'PROPOSER_SIGNATURE_INVALID', 'a zero signature');
  // The checks that came before still answer first.
  refusedUnmoved(t, s, encodeEvent(signProposed(s.clusterId, { ...abort, passport: 'passport-1-9' } as ProposedEvent, n1)), 'BINDING_MISMATCH', 'another passport, signed');
  refusedUnmoved(t, s, encodeEvent(signProposed(s.clusterId, { ...abort, nodeId: 'node-9' } as ProposedEvent, n1)), 'UNKNOWN_NODE', 'an unknown node');
  t.equal(opState(s.state, 'op-1'), 'Admitted', 'the act is still open');

  // The event node-1 signed applies; a replay of it (same bytes, later index) is refused.
  const genuine = encodeEvent(signProposed(s.clusterId, abort, n1));
  ok(t, s.entry(genuine).result, 'node-1\'s own abort applies');
  t.equal(opState(s.state, 'op-1'), 'Aborted');
  refusedUnmoved(t, s, genuine, 'INVALID_TRANSITION', 'the signed abort replayed');
  t.same(checkInvariants(s.state), []);
});

t.test('every kind of journal event is refused without its proposer\'s signature', async (t) => {
  const s = withOpenAct();
  const p1 = s.proposer('node-1');
  refusedUnmoved(t, s, encodeEvent({ type: 'ClockTick', ...p1 }), 'PROPOSER_SIGNATURE_INVALID', 'an unsigned tick');
  refusedUnmoved(t, s, encodeEvent({ type: 'ActPermitIssued', opId: rid('op-1'), ...p1 }), 'PROPOSER_SIGNATURE_INVALID', 'an unsigned permit issuance');
  const act = s.act('k1');
  const before = Object.keys(s.state.cluster!.ops).length;
  refusedUnmoved(t, s, encodeEvent({ type: 'ActSubmitted', opId: rid('op-2'), act, approval: null, request: s.request('op-2', act), ...p1 }), 'PROPOSER_SIGNATURE_INVALID', 'an unsigned submission');
  t.equal(Object.keys(s.state.cluster!.ops).length, before, 'no act recorded');
  // The same events signed by node-1 go through the honest path end to end.
  ok(t, s.issuePermit('op-1', 'node-1'));
  ok(t, s.fixSigningSet('op-1', { commitments: s.signingSet('op-1', ['node-1', 'node-2']), nodeId: 'node-1' }));
  ok(t, s.execute('op-1', { nodeId: 'node-1', fixSet: false }));
  ok(t, s.publish('op-1', 'node-1'));
  t.equal(opState(s.state, 'op-1'), 'Published');
});

t.test('the signature survives encoding and binds the cluster, the event and the key', async (t) => {
  const s = withOpenAct();
  const ev: ProposedEvent = { type: 'ActSettled', opId: rid('op-1'), confirmation: 'tx-1', ...s.proposer('node-1') };
  const signed = signProposed(s.clusterId, ev, s.node('node-1').secretKey);
  const back = decodeEvent(encodeEvent(signed)) as ProposedEvent;
  t.same(back, signed, 'decodes to the same event, sig included');
  t.same(encodeEvent(back), encodeEvent(signed), 'canonical');
  t.same(encodeEvent(decodeEvent(encodeEvent(ev))), encodeEvent(ev), 'an unsigned event encodes without the field');
  const key = s.node('node-1').info.identityKey;
  t.ok(verifyProposed(s.clusterId, back, key));
  t.notOk(verifyProposed('cluster-2', back, key), 'another cluster');
  t.notOk(verifyProposed(s.clusterId, back, s.node('node-2').info.identityKey), 'another key');
  t.notOk(verifyProposed(s.clusterId, ev, key), 'no signature');
  t.same(proposerSigningBytes(s.clusterId, signed), proposerSigningBytes(s.clusterId, ev), 'the signed bytes omit sig');
});

t.test('property: no byte flip of a signed abort gets an act aborted, or moves the state', async (t) => {
  const s = withOpenAct();
  const genuine = encodeEvent(signProposed(s.clusterId, { type: 'ActAborted', opId: rid('op-1'), reason: 'REMOTE_TIMEOUT', ...s.proposer('node-1') } as ProposedEvent, s.node('node-1').secretKey));
  const base = s.state;
  const stampMs = base.clockMs;
  // The genuine bytes apply (the property below is not vacuous).
  t.equal(opState(apply(base, { index: base.index + 1, stampMs, event: genuine }).state, 'op-1'), 'Aborted');
  fc.assert(fc.property(
    fc.array(fc.record({ at: fc.nat({ max: genuine.length - 1 }), mask: fc.integer({ min: 1, max: 255 }) }), { minLength: 1, maxLength: 3 }),
    (flips) => {
      const b = new Uint8Array(genuine);
      for (const f of flips) b[f.at]! ^= f.mask;
      if (Buffer.from(b).equals(Buffer.from(genuine))) return true; // flips that cancel out
      const r = apply(base, { index: base.index + 1, stampMs, event: b });
      return !r.result.ok && !r.result.applied && r.state.cluster === base.cluster && opState(r.state, 'op-1') === 'Admitted';
    },
  ), { numRuns: 300 });
  t.pass('300 flipped encodings refused');
});
