/**
 * Proactive refresh through the ledger on three kernel processes: KeyRefreshed authorizes epoch 1,
 * the first t holders of epoch 0 deal fresh shares of the same secret (sealed kernel to kernel),
 * KeyReady from every node with the unchanged group key, KeyObjectPublished, activation by
 * approvers; then an act at epoch 1 is signed under the same public key, and the old epoch is
 * refused STALE_EPOCH by the ledger (CLI exit 3) and by the kernels themselves.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { messagesDigest } from '../../ledger/tx/messages.js';
import { toHex } from '../../ledger/encoding.js';
import { until } from '../../node/lifecycle/local-cluster.js';
import { verifySignature } from '../../node/lifecycle/verify.js';
import { startHarness, waitAct, reasonOfCall, actTx, actSubmitArgs, submitAs } from './harness.js';

t.test('refresh: new epoch, same group key; the old epoch is refused', { timeout: 600_000 }, async (t) => {
  const h = await startHarness({ kernels: 'process' });
  t.teardown(() => h.close());
  await h.createKey('k', 'ed25519');
  const before = (await h.client('audra').status()).keys[0]!.publicKey;
  const kim = h.client('kim');
  const r = await kim.proposeDecision(JSON.stringify({ kind: 'KeyRefreshed', keyId: 'k', keyEpoch: 1 }));
  await h.approve(r.cid, ['approver-1', 'approver-2']);
  await until('epoch 1 published on every node', () => h.cluster.nodes.every((n) => n.ledger.state().cluster?.keys['k']?.epochs['1']?.status === 'published'), 180_000);
  const a = await kim.proposeDecision(JSON.stringify({ kind: 'KeyActivated', keyId: 'k', keyEpoch: 1 }));
  await h.approve(a.cid, ['approver-2', 'approver-3']);
  const st = await h.client('audra').status();
  t.same([st.keys[0]!.status, st.keys[0]!.activeEpoch], ['active', 1], 'epoch 1 is the active one');
  t.equal(st.keys[0]!.publicKey, before, 'refresh keeps the group public key');

  await submitAs(h.client('cara'), h.custodian, { opId: 'after-refresh', keyId: 'k', ...(await actTx(h.client('cara'), 'k', '10', 'sol-treasury')) });
  const v = await waitAct(h.client('cara'), 'after-refresh', 'Published');
  t.equal(v.state, 'Published', 'an act at epoch 1 is published');
  t.equal(v.keyEpoch, 1, 'and names epoch 1');
  t.ok(verifySignature('ed25519', Buffer.from(before, 'hex'), new Uint8Array(v.tx), Buffer.from(v.signature, 'hex')), 'an epoch-1 signature verifies under the unchanged key');

  const stale = await h.cli('cara', [...await actSubmitArgs(h.client('cara'), h.dir, 'old-epoch', 'k', '10', 'sol-treasury'), '--key-epoch', '0']);
  t.equal(stale.code, 3, 'the CLI exits 3');
  t.match(stale.stderr, /^STALE_EPOCH: key k is at epoch 1, not 0/m, 'the ledger refuses the old epoch');
  // The kernels refuse it on their own too: a permit naming epoch 0 is stale.
  const message = randomBytes(32);
  const refused = await reasonOfCall(h.cluster.nodes[0]!.kernel.port.call({
    kind: 'sign', permit: { keyId: 'k', keyEpoch: 0, requestId: toHex(randomBytes(16)), messageDigest: messagesDigest([message]), ledgerIndex: 10_000 },
    messages: [message], counters: [1], ledgerConsumedCounter: 0,
    lists: [['01', '02'].map((i) => ({ identifier: i.padEnd(64, '0'), hiding: randomBytes(32), binding: randomBytes(32) }))],
  }, 'signatureShares'));
  t.equal(refused, 'STALE_EPOCH', 'a kernel refuses a permit for epoch 0 by itself');
});
