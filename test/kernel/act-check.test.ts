/**
 * The kernel's own check of an act (kernel/act-check.ts), from a compromised daemon's side: it
 * forwards an ActSubmitted and messages of its choosing, and the kernel must refuse everything a
 * custodian of its own roster did not sign for this cluster, and any message the transaction does
 * not sign. For each transaction kind: btc-psbt (Taproot), solana (FROST Ed25519) and raw.
 */
import t from 'tap';
import {
  ScriptedCluster, keyContextOf, makeApproverKey, seedOf, signActRequest,
  type Act, type ApproverRoster, type LedgerEvent, type SignedActRequest,
} from '../../ledger/index.js';
import { deriveActFields } from '../../ledger/tx/act.js';
import { LEDGER_ASSETS } from '../../ledger/asset-table.js';
import { ledger as limits } from '../../proto/limits.js';
import { checkSubmittedAct, type ActCheckContext, type ActSubmittedEvent } from '../../kernel/act-check.js';
import { rosterToJson } from '../../kernel/authority.js';
import type { TxKind } from '../../ledger/tx/types.js';

type Ev = ActSubmittedEvent;

function setup(): ScriptedCluster {
  const s = new ScriptedCluster({ label: 'kernel-act-check' });
  s.genesis();
  for (const r of s.createKey('sol')) if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  for (const r of s.createKey('btc', undefined, 2, { scheme: 'taproot' })) if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  return s;
}

const CASES: readonly { kind: TxKind; keyId: string }[] = [
  { kind: 'btc-psbt', keyId: 'btc' },
  { kind: 'solana', keyId: 'sol' },
  { kind: 'raw', keyId: 'sol' },
];

function eventOf(s: ScriptedCluster, label: string, act: Act, request: SignedActRequest | null): Ev {
  return { type: 'ActSubmitted', opId: request?.body.requestId ?? label, act, approval: null, request, ...s.proposer() };
}

function ctxOf(s: ScriptedCluster, keyId: string, roster: ApproverRoster = s.state.cluster!.governance.roster): ActCheckContext {
  const k = keyContextOf(s.state.cluster!, keyId)!;
  return { clusterId: s.clusterId, roster: rosterToJson(roster), key: { ...k, activeEpoch: s.state.cluster!.keys[keyId]!.activeEpoch }, stampMs: s.nowMs };
}

function messagesOf(act: Act, s: ScriptedCluster): Uint8Array[] {
  return [...s.facts(act).messages];
}

function codeOf(f: () => unknown): string {
  try {
    f();
    return 'accepted';
  } catch (e) {
    return (e as { reason?: string }).reason ?? String(e);
  }
}

for (const { kind, keyId } of CASES) {
  t.test(`${kind}: a custodian's request passes and yields the messages the kernel derives itself`, async (t) => {
    const s = setup();
    const act = s.act(keyId, { kind });
    const req = s.request('pay', act);
    const msgs = messagesOf(act, s);
    t.ok(msgs.length >= 1);
    const r = checkSubmittedAct(eventOf(s, 'pay', act, req), ctxOf(s, keyId), msgs);
    t.same(r.messages, msgs);
    t.equal(r.opId, req.body.requestId);
    // The ledger agrees: every node's apply takes the same request (raw bytes are never
    // auto-allowed, so the policy, not the request, decides a raw act without approvals).
    const applied = s.submit('pay', act, null, 'node-0', req);
    if (kind === 'raw') t.match(applied, { ok: false, reason: /^POLICY_|^QUORUM_NOT_MET$/ }, 'past the request checks, the policy decides');
    else t.match(applied, { ok: true }, 'admitted');
  });

  t.test(`${kind}: what a compromised daemon can forward is refused, each with its own code`, async (t) => {
    const s = setup();
    const act = s.act(keyId, { kind });
    const req = s.request('pay', act);
    const msgs = messagesOf(act, s);
    const ctx = ctxOf(s, keyId);
    const check = (e: Ev, m: Uint8Array[] = msgs, c: ActCheckContext = ctx): string => codeOf(() => checkSubmittedAct(e, c, m));

    t.equal(check(eventOf(s, 'pay', act, null)), 'REQUEST_UNSIGNED', 'no request');

    const forged = { ...req, signature: Uint8Array.from(req.signature, (b, i) => (i === 5 ? b ^ 1 : b)) };
    t.equal(check(eventOf(s, 'pay', act, forged)), 'REQUEST_SIGNATURE_INVALID', 'a forged signature');
    const otherKey = makeApproverKey('custodian-1', seedOf('not the custodian key'));
    t.equal(check(eventOf(s, 'pay', act, signActRequest(req.body, otherKey.secretKey))), 'REQUEST_SIGNATURE_INVALID', 'signed with a key that is not the custodian\'s');

    // A governor signs a request in its own name: it holds no custodian role.
    const governor = s.approvers[0]!;
    const govAct: Act = { ...act, initiator: governor.id };
    t.equal(check(eventOf(s, 'pay', govAct, s.request('pay', govAct, {}, governor))), 'NOT_A_CUSTODIAN', 'a request signed by a governor');
    // Or re-signs the custodian's request with its own key, naming the custodian.
    t.equal(check(eventOf(s, 'pay', act, signActRequest(req.body, governor.secretKey))), 'REQUEST_SIGNATURE_INVALID', 'a custodian\'s request re-signed by a governor');
    const stranger = makeApproverKey('mallory', seedOf('mallory'));
    const strangerAct: Act = { ...act, initiator: 'mallory' };
    t.equal(check(eventOf(s, 'pay', strangerAct, s.request('pay', strangerAct, {}, stranger))), 'NOT_A_CUSTODIAN', 'a signer off the roster');

    // The transaction swapped after signing: the act carries other bytes than the request.
    const other = s.act(keyId, { kind, amount: 7_777n });
    t.equal(check(eventOf(s, 'pay', other, req), messagesOf(other, s)), 'REQUEST_MISMATCH', 'the act\'s transaction is not the signed one');
    const swappedReq = { ...req, body: { ...req.body, tx: other.tx } };
    t.equal(check(eventOf(s, 'pay', other, swappedReq), messagesOf(other, s)), 'REQUEST_SIGNATURE_INVALID', 'the request\'s transaction swapped after signing');
    t.equal(check({ ...eventOf(s, 'pay', act, req), act: { ...act, initiator: 'custodian-2' } }), 'REQUEST_MISMATCH', 'another initiator than the signer');
    t.equal(check({ ...eventOf(s, 'pay', act, req), opId: 'f'.repeat(32) }), 'REQUEST_MISMATCH', 'another opId than the request id');
    t.equal(check({ ...eventOf(s, 'pay', act, req), act: { ...act, keyEpoch: act.keyEpoch + 1 } }), 'REQUEST_MISMATCH', 'another epoch than requested');

    // Messages swapped by the daemon: one more, one fewer, one changed, or the act's digest forged.
    t.equal(check(eventOf(s, 'pay', act, req), [...msgs, msgs[0]!]), 'TX_MESSAGES_MISMATCH', 'an extra message');
    t.equal(check(eventOf(s, 'pay', act, req), msgs.slice(1)), 'TX_MESSAGES_MISMATCH', 'a message left out');
    t.equal(check(eventOf(s, 'pay', act, req), msgs.map((m, i) => (i === 0 ? Uint8Array.from(m, (b, j) => (j === 0 ? b ^ 0xff : b)) : m))), 'TX_MESSAGES_MISMATCH', 'a message changed');
    t.equal(check(eventOf(s, 'pay', act, req), messagesOf(other, s)), 'TX_MESSAGES_MISMATCH', 'the messages of another transaction');
    t.equal(check(eventOf(s, 'pay', { ...act, messageDigest: other.messageDigest }, req)), 'TX_MESSAGES_MISMATCH', 'the act\'s messageDigest of another transaction');

    // Another cluster's request, signed by a custodian of that cluster with the same id and key.
    const s2 = new ScriptedCluster({ label: 'kernel-act-check', clusterId: 'cluster-2' });
    const foreign = signActRequest({ ...req.body, clusterId: s2.clusterId }, s2.keyOf(req.body.custodian).secretKey);
    t.equal(check(eventOf(s, 'pay', act, foreign)), 'REQUEST_MISMATCH', 'a request of another cluster');

    // Outside the window around the entry's stamp.
    const old = s.request('pay', act, { issuedMs: s.nowMs - limits.actRequestAgeMsMax - 1 });
    t.equal(check(eventOf(s, 'pay', act, old)), 'REQUEST_EXPIRED', 'issued before the window');
    const ahead = s.request('pay', act, { issuedMs: s.nowMs + limits.actRequestSkewMsMax + 1 });
    t.equal(check(eventOf(s, 'pay', act, ahead)), 'REQUEST_EXPIRED', 'issued too far ahead');

    // The act must be for the key and epoch this kernel signs with.
    const k = ctx.key;
    t.equal(check(eventOf(s, 'pay', act, req), msgs, { ...ctx, key: { ...k, activeEpoch: act.keyEpoch + 1 } }), 'STALE_EPOCH', 'not the active epoch');
    t.equal(check(eventOf(s, 'pay', act, req), msgs, { ...ctx, key: { ...k, keyId: 'another' } }), 'REQUEST_MISMATCH', 'a request for another key');
    t.equal(check(eventOf(s, 'pay', act, req), msgs, { ...ctx, key: { ...k, network: undefined } }), 'KEY_NOT_ACTIVE', 'a key whose network the kernel does not know');
    t.equal(check(eventOf(s, 'pay', act, req)), 'accepted', 'and the honest forward still passes');
  });
}

t.test('a custodian removed by ApproversChanged can no longer start an act, in the ledger and in the kernel', async (t) => {
  const s = setup();
  const act = s.act('sol');
  const before = s.state.cluster!.governance.roster;
  const without: ApproverRoster = { ...before, approvers: before.approvers.filter((a) => a.id !== 'custodian-1') };
  t.match(s.decide({ kind: 'ApproversChanged', roster: without }), { ok: true });
  const req = s.request('pay', act);
  t.equal(codeOf(() => checkSubmittedAct(eventOf(s, 'pay', act, req), ctxOf(s, 'sol'), messagesOf(act, s))), 'NOT_A_CUSTODIAN', 'the kernel follows the roster in force');
  t.equal(codeOf(() => checkSubmittedAct(eventOf(s, 'pay', act, req), ctxOf(s, 'sol', before), messagesOf(act, s))), 'accepted', 'under the old roster it would have passed');
  t.match(s.submit('pay', act, null, 'node-0', req), { ok: false, applied: true, reason: 'NOT_A_CUSTODIAN', opState: 'Denied' }, 'the ledger records it Denied');
  // Re-keyed: the custodian is back under a new key; requests signed with the old key are refused.
  const fresh = makeApproverKey('custodian-1', seedOf('custodian-1 new key'));
  const rekeyed: ApproverRoster = { ...without, approvers: [...without.approvers, { id: 'custodian-1', publicKey: fresh.publicKey, roles: ['custodian'] }] };
  t.match(s.decide({ kind: 'ApproversChanged', roster: rekeyed }), { ok: true });
  t.equal(codeOf(() => checkSubmittedAct(eventOf(s, 'pay2', act, s.request('pay2', act)), ctxOf(s, 'sol'), messagesOf(act, s))), 'REQUEST_SIGNATURE_INVALID', 'the old key no longer verifies');
  t.equal(codeOf(() => checkSubmittedAct(eventOf(s, 'pay2', act, s.request('pay2', act, {}, fresh)), ctxOf(s, 'sol'), messagesOf(act, s))), 'accepted', 'the new key does');
});

t.test('the kernel derives the messages with the ledger\'s own parser and asset table', async (t) => {
  const s = setup();
  for (const { kind, keyId } of CASES) {
    const act = s.act(keyId, { kind });
    const k = keyContextOf(s.state.cluster!, keyId)!;
    const own = checkSubmittedAct(eventOf(s, `x-${kind}`, act, s.request(`x-${kind}`, act)), ctxOf(s, keyId), messagesOf(act, s)).messages;
    t.same(own, [...deriveActFields(act.kind, act.tx, k, LEDGER_ASSETS).facts.messages], `${kind}: the same messages as a node derives`);
  }
});

t.test('an event of another type is refused', async (t) => {
  const s = setup();
  const e = { type: 'ActPermitIssued', opId: 'x', ...s.proposer() } as LedgerEvent;
  t.equal(codeOf(() => checkSubmittedAct(e as Ev, ctxOf(s, 'sol'), [])), 'PAYLOAD_REJECTED');
});
