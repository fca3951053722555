/**
 * An act of several messages through the lifecycle (a two-input Taproot PSBT: two BIP 341
 * sighashes), from a coordinator's side and an attacker's: every signer commits one presigned
 * nonce pair per message with ascending counters, the ledger fixes them, and a participant gives
 * shares only for exactly the fixed list of each message with exactly its counters. A coordinator
 * asking with lists swapped between messages, one list for two messages, or other counters is
 * refused before the kernel is asked (a list or nonce used for another message would reveal the
 * share, RFC 9591 §10.4). Kernels are the in-memory twins, so the requests are observed exactly.
 */
import t from 'tap';
import { schnorr } from '@noble/curves/secp256k1.js';
import { listFor } from '../../ledger/events.js';
import { parseTransaction } from '../../ledger/tx/parse.js';
import { LEDGER_ASSETS } from '../../ledger/admission.js';
import type { SigningCommitment } from '../../kernel/wire.js';
import type { ParticipantPort } from '../../node/lifecycle/ports.js';
import { startHarness, waitAct, reasonOfCall, actTx, rid, submitAs, type Harness } from './harness.js';

t.test('a two-input PSBT: two nonce pairs per signer, per-message lists, and a participant that refuses any other pairing', { timeout: 600_000 }, async (t) => {
  const ports = new Map<string, ParticipantPort>();
  const asked: { nodeId: string; lists: number; counters: readonly number[] }[] = [];
  let h: Harness | null = null;
  const attacks: Record<string, string> = {};
  h = await startHarness({
    kernels: 'twin',
    wrapParticipant: (p) => {
      const w: ParticipantPort = {
        nodeId: p.nodeId,
        commit: (opId) => p.commit(opId),
        async sign(opId, lists, counters) {
          const r = await p.sign(opId, lists, counters);
          asked.push({ nodeId: p.nodeId, lists: lists.length, counters });
          return r;
        },
      };
      ports.set(p.nodeId, p);
      return w;
    },
    point: async (_node, p, opId) => {
      if (p !== 'act:signing-set-fixed' || opId !== rid('psbt-1') || h === null || Object.keys(attacks).length > 0) return;
      const leader = h.cluster.leader()!;
      const op = leader.ledger.state().cluster!.ops[opId]!;
      const set = op.signingSet!.commitments;
      const member = set[0]!;
      const port = ports.get(member.nodeId)!;
      const [l0, l1] = [listFor(set, 0), listFor(set, 1)] as [SigningCommitment[], SigningCommitment[]];
      const counters = member.nonces.map((n) => n.counter);
      attacks['lists swapped between the messages'] = await reasonOfCall(port.sign(opId, [l1, l0], counters));
      attacks['one list for both messages'] = await reasonOfCall(port.sign(opId, [l0, l0], counters));
      attacks['one message only'] = await reasonOfCall(port.sign(opId, [l0], counters.slice(0, 1)));
      attacks['counters swapped'] = await reasonOfCall(port.sign(opId, [l0, l1], [...counters].reverse()));
      attacks['another counter'] = await reasonOfCall(port.sign(opId, [l0, l1], [counters[0]!, counters[1]! + 1]));
    },
  });
  t.teardown(() => h?.close());
  await h.createKey('k-tr', 'taproot');
  const cara = h.client('cara');
  const { kind, tx } = await actTx(cara, 'k-tr', '1500', 'bc1p-treasury');
  t.equal(kind, 'btc-psbt');
  const submitted = await submitAs(cara, h.custodian, { opId: 'psbt-1', keyId: 'k-tr', kind, tx });
  t.equal(submitted.state, 'Admitted', `admitted (${submitted.reason})`);
  const v = await waitAct(cara, 'psbt-1', 'Published');
  t.equal(v.state, 'Published', `published (${v.reason})`);

  for (const [what, reason] of Object.entries(attacks)) t.equal(reason, 'BINDING_MISMATCH', `${what}: refused BINDING_MISMATCH by the participant`);
  t.equal(Object.keys(attacks).length, 5, 'every attack was tried while the act was PendingRemote');

  const c = h.cluster.leader()!.ledger.state().cluster!;
  const op = c.ops[rid('psbt-1')]!;
  t.ok(op.signingSet!.commitments.every((m) => m.nonces.length === 2 && m.nonces[1]!.counter > m.nonces[0]!.counter), 'each signer committed two nonce pairs, counters ascending');
  t.ok(asked.every((a) => a.lists === 2 && a.counters.length === 2), 'the coordinator asked every signer for two shares, one list each');
  t.same(asked.map((a) => a.nodeId).sort(), op.signingSet!.commitments.map((m) => m.nodeId).sort(), 'only the members of the fixed set were asked, once each');
  const groupKey = c.keys['k-tr']!.publicKey!;
  const messages = parseTransaction('btc-psbt', op.act.tx, { keyId: 'k-tr', scheme: 'taproot', groupKey, network: c.keys['k-tr']!.network }, LEDGER_ASSETS).messages;
  t.equal(op.signatures?.length, 2, 'two signatures');
  messages.forEach((m, i) => t.ok(schnorr.verify(op.signatures![i]!, m, groupKey.slice(1)), `signature ${i} verifies (BIP 340) over sighash ${i}`));
  for (const m of op.signingSet!.commitments) {
    t.equal(c.consumed[JSON.stringify(['k-tr', 0, m.nodeId])], m.nonces[1]!.counter, `${m.nodeId}: the ledger holds its last counter as consumed`);
  }
});
