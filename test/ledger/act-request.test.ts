/**
 * Custodians' signed act requests at apply, from an attacker's side: a node proposes whatever
 * ActSubmitted it likes, and every node records the act Denied, with its reason and before any
 * permit, unless the act is exactly a request a custodian of the roster in force signed for this
 * cluster within the window around the entry's stamp. A request is good for one act only, also
 * after the act was archived. A property: any change to a signed request's body or signature,
 * or to the act beside it, is never admitted.
 *
 * A property failure prints fast-check's seed and path; replay it exactly with
 *   FC_SEED=<seed> FC_PATH=<path> npx tap dist/test/ledger/act-request.test.js
 */
import t, { type Test } from 'tap';
import fc from 'fast-check';
import {
  ScriptedCluster, MemoryArchive, applyAll, checkInvariants, emptyState, encodeEvent, makeApproverKey, rid, seedOf, signActRequest, validateRoster, verifyDecision,
  decisionSigningBytes, ed25519Sign,
  type Act, type ApplyResult, type ApproverRoster, type LedgerEntry, type SignedActRequest,
} from '../../ledger/index.js';
import { ledger as limits } from '../../proto/limits.js';

function setup(label = 'act-request'): ScriptedCluster {
  const s = new ScriptedCluster({ label });
  s.genesis();
  for (const r of s.createKey('k1')) if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  return s;
}

/** Submits and asserts the act is recorded Denied with `reason`, holds no permit, and cannot get one. */
function deniedWith(t: Test, s: ScriptedCluster, label: string, act: Act, request: SignedActRequest | null, reason: string, what: string): void {
  const r = s.submit(label, act, null, 'node-0', request);
  t.match(r, { ok: false, reason, applied: true, opState: 'Denied' }, `${what}: Denied ${reason}${r.ok ? '' : ` (${r.detail})`}`);
  const op = s.state.cluster!.ops[rid(label)];
  t.equal(op?.permitId, null, `${what}: no permit`);
  t.equal(op?.rule, null, `${what}: decided before any policy rule`);
  t.match(s.issuePermit(label), { ok: false, reason: 'INVALID_TRANSITION' }, `${what}: no permit afterwards either`);
  t.same(checkInvariants(s.state), []);
}

t.test('a custodian\'s request is admitted, and the act keeps it', async (t) => {
  const s = setup();
  const act = s.act('k1');
  const req = s.request('pay', act);
  t.match(s.submit('pay', act, null, 'node-0', req), { ok: true, opState: 'Admitted' });
  const op = s.state.cluster!.ops[rid('pay')]!;
  t.same(op.request, req, 'the op record carries the signed request');
  t.equal(op.act.initiator, 'custodian-1');
});

t.test('attacker: acts that are not a custodian\'s request are recorded Denied before any permit', async (t) => {
  const s = setup();
  const act = s.act('k1');
  deniedWith(t, s, 'none', act, null, 'REQUEST_UNSIGNED', 'no request');

  const governor = s.approvers[0]!;
  const govAct: Act = { ...act, initiator: governor.id };
  deniedWith(t, s, 'gov', govAct, s.request('gov', govAct, {}, governor), 'NOT_A_CUSTODIAN', 'a request signed by a governor');
  const stranger = makeApproverKey('mallory', seedOf('mallory'));
  const strangerAct: Act = { ...act, initiator: 'mallory' };
  deniedWith(t, s, 'stranger', strangerAct, s.request('stranger', strangerAct, {}, stranger), 'NOT_A_CUSTODIAN', 'a signer off the roster');

  const req = s.request('forged', act);
  deniedWith(t, s, 'forged', act, { ...req, signature: Uint8Array.from(req.signature, (b, i) => (i === 0 ? b ^ 1 : b)) }, 'REQUEST_SIGNATURE_INVALID', 'a forged signature');
  deniedWith(t, s, 'other-key', act, s.request('other-key', act, {}, makeApproverKey('custodian-1', seedOf('not hers'))), 'REQUEST_SIGNATURE_INVALID', 'signed with another key');
  deniedWith(t, s, 're-signed', act, signActRequest(s.requestBody('re-signed', act), governor.secretKey), 'REQUEST_SIGNATURE_INVALID', 'the custodian\'s request re-signed by a governor');

  deniedWith(t, s, 'cluster', act, s.request('cluster', act, { clusterId: 'cluster-2' }), 'REQUEST_MISMATCH', 'a request for another cluster');
  deniedWith(t, s, 'opid', act, s.request('opid', act, { requestId: rid('something else') }), 'REQUEST_MISMATCH', 'an opId that is not the request id');
  const other = s.act('k1', { amount: 4_242n });
  deniedWith(t, s, 'swapped', other, s.request('swapped', act), 'REQUEST_MISMATCH', 'the transaction swapped after signing');
  deniedWith(t, s, 'initiator', { ...act, initiator: 'custodian-2' }, s.request('initiator', act), 'REQUEST_MISMATCH', 'another initiator than the signer');
  deniedWith(t, s, 'epoch', act, s.request('epoch', act, { keyEpoch: 1 }), 'REQUEST_MISMATCH', 'another epoch than the act');
  deniedWith(t, s, 'kind', act, s.request('kind', act, { kind: 'raw' }), 'REQUEST_MISMATCH', 'another kind than the act');

  deniedWith(t, s, 'old', act, s.request('old', act, { issuedMs: s.nowMs - limits.actRequestAgeMsMax - 1 }), 'REQUEST_EXPIRED', 'issued before the window');
  deniedWith(t, s, 'ahead', act, s.request('ahead', act, { issuedMs: s.nowMs + limits.actRequestSkewMsMax + 1 }), 'REQUEST_EXPIRED', 'issued too far ahead');
  t.match(s.submit('edge-old', act, null, 'node-0', s.request('edge-old', act, { issuedMs: s.nowMs - limits.actRequestAgeMsMax })), { ok: true }, 'the oldest issue time in the window is admitted');
  t.match(s.submit('edge-ahead', act, null, 'node-0', s.request('edge-ahead', act, { issuedMs: s.nowMs + limits.actRequestSkewMsMax })), { ok: true }, 'and the farthest ahead');

  deniedWith(t, s, 'declared', act, s.request('declared', act, { declared: { asset: '', amount: '1', destination: '' } }), 'TX_DECLARED_MISMATCH', 'a declared amount the transaction does not pay');
  deniedWith(t, s, 'declared-to', act, s.request('declared-to', act, { declared: { asset: '', amount: '', destination: 'somewhere else' } }), 'TX_DECLARED_MISMATCH', 'a declared destination it does not pay');
  t.match(s.submit('declared-ok', act, null, 'node-0', s.request('declared-ok', act, { declared: { asset: act.asset, amount: act.amount.toString(), destination: act.destination } })), { ok: true }, 'what it does say, declared, is admitted');
});

t.test('the invariants catch an admitted act whose request was removed or changed after the fact', async (t) => {
  const s = setup('act-request-invariants');
  const act = s.act('k1');
  t.match(s.submit('kept', act), { ok: true });
  t.same(checkInvariants(s.state), []);
  const op = s.state.cluster!.ops[rid('kept')]!;
  const forge = (request: SignedActRequest | null) => ({ ...s.state, cluster: { ...s.state.cluster!, ops: { ...s.state.cluster!.ops, [op.opId]: { ...op, request } } } });
  t.match(checkInvariants(forge(null)), [/admitted without a custodian's request/]);
  t.match(checkInvariants(forge({ ...op.request!, body: { ...op.request!.body, custodian: 'custodian-2' } })), [/is not the request it was admitted with/]);
  t.match(checkInvariants(forge({ ...op.request!, body: { ...op.request!.body, tx: s.act('k1', { amount: 9n }).tx } })), [/is not the request it was admitted with/]);
});

t.test('a request is good for one act: a replay returns the first result, also after the act was archived', async (t) => {
  const s = setup('act-request-replay');
  const archive = new MemoryArchive();
  // Replay the script's log through an archiving apply, so ended acts leave memory.
  const act = s.act('k1');
  const req = s.request('once', act);
  t.match(s.submit('once', act, null, 'node-0', req), { ok: true });
  for (const r of [s.issuePermit('once'), s.execute('once'), s.publish('once'), s.settle('once')]) t.ok(r.ok, 'the act runs to Settled');
  const { state } = applyAll(emptyState(), s.log, archive);
  t.equal(state.cluster!.ops[rid('once')], undefined, 'the settled act left memory');
  t.equal(archive.act(rid('once'))?.state, 'Settled', 'and is in the archive');
  const at = (event: Uint8Array, stampMs: number): LedgerEntry => ({ index: state.index + 1, stampMs, event });
  const replay = encodeEvent(s.signed({ type: 'ActSubmitted', opId: req.body.requestId, act, approval: null, request: req, ...s.proposer('node-1') }));
  const again = applyAll(state, [at(replay, state.clockMs + 1000)], archive);
  t.match(again.results[0], { ok: true, replayed: true, opState: 'Settled' }, 'the same signed request: the original result, no second act');
  t.equal(again.state.cluster!.opCount, state.cluster!.opCount, 'no act was added');
  // The same request id with other content (another transaction, re-signed by the same custodian).
  const other = s.act('k1', { amount: 777n });
  const conflict = encodeEvent(s.signed({ type: 'ActSubmitted', opId: req.body.requestId, act: other, approval: null, request: s.request('once', other), ...s.proposer('node-1') }));
  t.match(applyAll(state, [at(conflict, state.clockMs + 1000)], archive).results[0], { ok: false, reason: 'REPLAY_OR_CONFLICT', applied: false });
  // Even once the request's window has passed, the archive still answers for its id.
  // The leader's clock ticks carry the ledger clock past the window (each within ledger.stampAheadMs).
  const ticks: LedgerEntry[] = [];
  const target = state.clockMs + limits.actRequestAgeMsMax + 60_000;
  for (let ms = state.clockMs + limits.stampAheadMs; ms < target; ms += limits.stampAheadMs) {
    ticks.push({ index: state.index + 1 + ticks.length, stampMs: ms, event: encodeEvent(s.signed({ type: 'ClockTick', ...s.proposer('node-1') })) });
  }
  const ticked = applyAll(state, ticks, archive);
  t.ok(ticked.results.every((r) => r.ok), 'the clock ticks apply');
  const late = applyAll(ticked.state, [{ index: ticked.state.index + 1, stampMs: target, event: replay }], archive);
  t.match(late.results[0], { ok: true, replayed: true }, 'a replay long after the window is still the original act');
});

t.test('the custodian role: revoked by ApproversChanged, never combined with another role, never part of a quorum', async (t) => {
  const s = setup('act-request-roles');
  const act = s.act('k1');
  const roster = s.state.cluster!.governance.roster;
  const without: ApproverRoster = { ...roster, approvers: roster.approvers.filter((a) => a.id !== 'custodian-1') };
  const req = s.request('before', act);
  t.match(s.decide({ kind: 'ApproversChanged', roster: without }), { ok: true });
  deniedWith(t, s, 'before', act, req, 'NOT_A_CUSTODIAN', 'a request the removed custodian signed before the change');
  t.match(s.submit('other-custodian', { ...act, initiator: 'custodian-2' }), { ok: true }, 'another custodian still can');

  const both = { ...roster, approvers: roster.approvers.map((a) => (a.id === 'custodian-1' ? { ...a, roles: ['custodian', 'governor'] as const } : a)) };
  t.match(validateRoster(both), { ok: false, reason: 'PAYLOAD_REJECTED' }, 'a custodian key that also governs is refused');
  t.match(s.decide({ kind: 'ApproversChanged', roster: both }), { ok: false, reason: 'PAYLOAD_REJECTED' });

  // Custodians sign a governance decision: their signatures never count toward the quorum.
  const body = s.decisionBody({ kind: 'Unfreeze' });
  const custodians = s.custodians.filter((k) => without.approvers.some((a) => a.id === k.id));
  const d = { body, approvals: custodians.map((k) => ({ approverId: k.id, signature: ed25519Sign(decisionSigningBytes(body), k.secretKey) })) };
  t.ok(custodians.length >= 2);
  t.match(verifyDecision(d, s.state.cluster!.governance.roster, s.clusterId, s.state.cluster!.governance.epoch, s.nowMs), { ok: false, reason: 'ROLE_NOT_ALLOWED' });
});

t.test('property: any change to a signed request, or to the act beside it, is never admitted', async (t) => {
  const s = setup('act-request-property');
  const act = s.act('k1');
  type Mutation = (r: SignedActRequest, a: Act) => { r: SignedActRequest; a: Act };
  const flip = (b: Uint8Array, i: number): Uint8Array => Uint8Array.from(b, (x, j) => (j === i % b.length ? x ^ 1 : x));
  // The body changed and the custodian's signature kept: what a node or daemon can do without her key.
  const keep = (r: SignedActRequest, body: SignedActRequest['body']): SignedActRequest => ({ body, signature: r.signature });
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    fc.nat().map((i): Mutation => (r, a) => ({ r: { ...r, signature: flip(r.signature, i) }, a })),
    fc.nat().map((i): Mutation => (r, a) => ({ r: keep(r, { ...r.body, tx: flip(r.body.tx, i) }), a })),
    fc.nat().map((i): Mutation => (r, a) => ({ r: keep(r, { ...r.body, tx: flip(r.body.tx, i) }), a: { ...a, tx: flip(a.tx, i) } })),
    fc.integer({ min: 1, max: 1_000_000 }).map((d): Mutation => (r, a) => ({ r: keep(r, { ...r.body, issuedMs: r.body.issuedMs + d }), a })),
    fc.constantFrom('custodian-2', 'i1').map((c): Mutation => (r, a) => ({ r: keep(r, { ...r.body, custodian: c }), a: { ...a, initiator: c } })),
    fc.constantFrom('approver-0', 'approver-1').map((c): Mutation => (r, a) => ({ r: signActRequest({ ...r.body, custodian: c }, s.keyOf(c).secretKey), a: { ...a, initiator: c } })),
    fc.constantFrom('cluster-2', 'cluster-1 ').map((c): Mutation => (r, a) => ({ r: keep(r, { ...r.body, clusterId: c }), a })),
    fc.nat().map((i): Mutation => (r, a) => ({ r, a: { ...a, tx: flip(a.tx, i) } })),
    fc.constantFrom('custodian-2', 'cara').map((c): Mutation => (r, a) => ({ r, a: { ...a, initiator: c } })),
    fc.integer({ min: 1, max: 3 }).map((d): Mutation => (r, a) => ({ r, a: { ...a, keyEpoch: a.keyEpoch + d } })),
  );
  const replay = {
    ...(process.env.FC_SEED !== undefined ? { seed: Number(process.env.FC_SEED) } : {}),
    ...(process.env.FC_PATH !== undefined ? { path: process.env.FC_PATH } : {}),
  };
  let n = 0;
  let admitted = 0;
  const out = fc.check(fc.property(fc.boolean(), mutation, (control, m) => {
    // Each case is a new act under a fresh request id, with the custodian's valid request for it.
    const label = `p-${n++}`;
    const good = s.request(label, act);
    const { r, a } = control ? { r: good, a: act } : m(good, act);
    const res: ApplyResult = s.entry({ type: 'ActSubmitted', opId: rid(label), act: a, approval: null, request: r, ...s.proposer() }).result;
    if (control) {
      if (res.ok) admitted++;
      return res.ok;
    }
    return !res.ok && res.opState === 'Denied';
  }), { numRuns: Number(process.env.FC_RUNS ?? 100), ...replay });
  if (out.failed) t.fail(`counterexample ${JSON.stringify(out.counterexample?.[0])}: replay with FC_SEED=${out.seed} FC_PATH=${String(out.counterexamplePath)}`);
  t.ok(!out.failed, `${out.numRuns} cases: no changed request admitted, every unchanged one admitted`);
  t.ok(admitted > 0, `the property is not vacuous: ${admitted} unchanged requests were admitted`);
});
