/**
 * Fencing end to end, as an attacker (issue: one node identity fenced any node; an approver
 * certificate alone fenced any node). A 3-node cluster with real kernel processes:
 *   - a hostile daemon holding n2's identity key forges fencing reports of n1 and n3: each is
 *     recorded FENCE_PENDING, nobody is fenced, and the cluster keeps signing;
 *   - an approver certificate without an approver signature fences nothing (FENCE_UNSIGNED); a
 *     decision signed by a stranger, a custodian, for another node, or sent by a role that may
 *     not fence, is refused with its code;
 *   - `custody admin fence --approver-key` fences n3 by a NodeFenced decision: the ledger refuses
 *     its proposals (SPLIT_BRAIN_FENCED), its kernel process verifies the decision itself and
 *     takes no part, and the other two sign.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encode, toHex } from '../../ledger/encoding.js';
import { decisionToCbor, makeApproverKey, signDecision, type DecisionBody } from '../../ledger/decision.js';
import { signStatement } from '../../ledger/events.js';
import { until } from '../../node/lifecycle/local-cluster.js';
import { startHarness, waitAct, reasonOfCall, actTx, rid, submitAs } from './harness.js';

t.test('fencing needs a majority of node reports or an approver-signed decision', { timeout: 600_000 }, async (t) => {
  const h = await startHarness();
  t.teardown(() => h.close());
  await h.createKey('k', 'ed25519');
  const c = h.cluster;
  const cara = h.client('cara');
  const sign = async (label: string, via: string) => {
    const tx = await actTx(cara, 'k', '1000', 'sol-treasury');
    await submitAs(h.client('cara', via), h.custodian, { opId: label, keyId: 'k', ...tx });
    return waitAct(cara, rid(label), 'Published');
  };

  // A hostile daemon with n2's identity key reports the two other nodes.
  const n2 = c.node('n2');
  for (const target of ['n1', 'n3']) {
    const passport = n2.ledger.state().cluster!.nodes[target]!.passport;
    const statement = signStatement({ clusterId: c.clusterId, nodeId: 'n2', kind: 'FencingRecord', slot: { nodeId: target, passport }, content: { reason: 'forged: two leaders in one term' } }, n2.identitySecretKey);
    const v = await n2.ledger.propose({ type: 'FencingRecord', statement });
    t.match(v, { ok: false, reason: 'FENCE_PENDING' }, `n2's report of ${target} alone fences nothing`);
  }
  for (const n of c.nodes) t.same(Object.values(n.ledger.state().cluster!.nodes).map((x) => x.status), ['active', 'active', 'active'], `${n.id}: every node active`);
  t.equal((await sign('while-reported', 'n1')).state, 'Published', 'the cluster keeps signing');

  // The admin API: an approver certificate is not an approver signature.
  const approver = h.client('approver-3', 'n1');
  const status = await approver.status();
  const body = (over: Partial<DecisionBody> = {}, nodeId = 'n3'): DecisionBody => ({
    clusterId: status.clusterId, governanceEpoch: status.governanceEpoch, parentCid: Buffer.from(status.governanceHead, 'hex'),
    action: { kind: 'NodeFenced', nodeId, passport: status.nodes.find((n) => n.id === nodeId)!.passport, reason: 'leaked identity key' },
    issuedMs: Date.now(), expiresMs: Date.now() + 3_600_000, ...over,
  });
  const cbor = (b: DecisionBody, keys: Parameters<typeof signDecision>[1]) => encode(decisionToCbor(signDecision(b, keys)));
  const a3 = c.approvers.find((a) => a.id === 'approver-3')!;
  t.equal(await reasonOfCall(approver.fenceNode('n3', new Uint8Array(0))), 'FENCE_UNSIGNED', 'no decision at all');
  t.equal(await reasonOfCall(approver.fenceNode('n3', cbor(body(), []))), 'FENCE_UNSIGNED', 'a decision without a signature');
  t.equal(await reasonOfCall(approver.fenceNode('n3', cbor(body(), [makeApproverKey('approver-3')]))), 'SIGNATURE_INVALID', 'a key that is not approver-3\'s');
  t.equal(await reasonOfCall(approver.fenceNode('n3', cbor(body(), [makeApproverKey('mallory')]))), 'UNKNOWN_APPROVER', 'a stranger\'s key');
  t.equal(await reasonOfCall(approver.fenceNode('n3', cbor(body(), [h.custodian as never]))), 'ROLE_NOT_ALLOWED', 'a custodian\'s key');
  t.equal(await reasonOfCall(approver.fenceNode('n3', cbor(body({}, 'n1'), [a3]))), 'BINDING_MISMATCH', 'a decision fencing another node than the call names');
  t.equal(await reasonOfCall(h.client('kim', 'n1').fenceNode('n3', cbor(body(), [a3]))), 'ROLE_NOT_ALLOWED', 'a key-generator certificate may not fence, even with a signed decision');
  for (const n of c.nodes) t.equal(n.ledger.state().cluster!.nodes['n3']!.status, 'active', `${n.id}: n3 still active`);

  // The CLI signs the decision with the approver's key file.
  const keyFile = join(h.dir, 'approver-3.key');
  writeFileSync(keyFile, JSON.stringify({ id: a3.id, secretKey: toHex(a3.secretKey), publicKey: toHex(a3.publicKey) }), { mode: 0o600 });
  const noKey = await h.cli('approver-3', ['fence', '--target', 'n3', '--reason', 'no key'], 'n1');
  t.not(noKey.code, 0, 'the CLI will not fence without --approver-key');
  t.match(noKey.stderr, /approver-key/);
  const r = await h.cli('approver-3', ['fence', '--target', 'n3', '--reason', 'two signed votes in term 7', '--approver-key', keyFile], 'n1');
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /applied/, 'the freeze quorum (one security approver) fences at once');
  t.match(r.stderr, /signing as approver-3: NodeFenced n3 passport n3-p1/);
  await until('n3 fenced everywhere', () => c.nodes.every((n) => n.ledger.state().cluster?.nodes['n3']?.status === 'fenced'), 30_000);
  const n3 = c.node('n3');
  await until('n3\'s kernel verified the decision and fenced itself', async () => (await n3.kernel.port.call({ kind: 'status' }, 'status')).fenced, 30_000);
  t.ok((await n3.kernel.port.call({ kind: 'status' }, 'status')).fenced, 'n3\'s kernel takes no part');
  t.equal(await reasonOfCall(submitAs(h.client('cara', 'n3'), h.custodian, { opId: 'via-fenced', keyId: 'k', ...(await actTx(cara, 'k', '1000', 'sol-treasury')) })), 'SPLIT_BRAIN_FENCED', 'n3\'s proposals are refused');
  const done = await sign('without-n3', 'n1');
  t.equal(done.state, 'Published', 'the honest majority keeps signing');
  t.notOk(done.signingSet.some((m) => m.nodeId === 'n3'), 'n3 is not in the signing set');
});
