/**
 * The daemons' part of the trust policy chain (node/lifecycle/trust-chain.ts) over the real ledger
 * state machine: after a roster change each node of the previous block signs the block its own
 * replica computed and proposes TrustPolicySigned once; the new node, which is no node of the
 * previous block, signs nothing; a proposal that failed without a verdict is made again; the
 * chain the ledger completes verifies from genesis.
 */
import t from 'tap';
import { ed25519 } from '@noble/curves/ed25519.js';
import { ScriptedCluster, seedOf, type ApplyResult, type LedgerEntry, type LedgerEvent, type LedgerState } from '../../ledger/index.js';
import { pendingTrustBlock, trustChainBlocks } from '../../ledger/trust-chain.js';
import { formatPolicyChain, verifyPolicyChain } from '../../ledger/tlog/trust-policy.js';
import { CustodyError } from '../../proto/errors.js';
import type { LedgerPort } from '../../node/lifecycle/ports.js';
import { TrustPolicySigner } from '../../node/lifecycle/trust-chain.js';
import { type ProposedEvent, signProposed } from '../../ledger/proposer-sig.js';
import type { LedgerVerdict } from '../../node/ledger-app.js';
import { until } from '../../node/probe.js';

t.test('the previous roster signs the waiting block, once each; the new node does not; a failed proposal is made again', async (t) => {
  const s = new ScriptedCluster({ label: 'trust-chain-signer', nodes: 3 });
  if (!s.genesis().ok) throw new Error('genesis');
  const listeners: ((entry: LedgerEntry, result: ApplyResult, state: LedgerState) => void)[] = [];
  const emit = (r: { entry: LedgerEntry; result: ApplyResult }): void => {
    for (const l of [...listeners]) l(r.entry, r.result, s.state);
  };
  const proposed: LedgerEvent[] = [];
  let failNext = new Set(['node-1']);
  const logs: string[] = [];
  const n3 = seedOf('trust-chain-signer/node-3');
  const keyOf = (id: string): Uint8Array => (id === 'node-3' ? n3 : s.node(id).secretKey);
  const portOf = (nodeId: string): LedgerPort => ({
    nodeId,
    state: () => s.state,
    subscribe: (l: (entry: LedgerEntry, result: ApplyResult, state: LedgerState) => void) => {
      listeners.push(l);
      return () => listeners.splice(listeners.indexOf(l), 1);
    },
    propose: async (e: LedgerEvent): Promise<LedgerVerdict> => {
      if (failNext.has(nodeId)) {
        failNext = new Set([...failNext].filter((x) => x !== nodeId));
        throw new CustodyError('PROPOSAL_DROPPED', 'no leader');
      }
      proposed.push(e);
      // What the daemon's driver does at its single proposal point (node/lifecycle/driver-ledger.ts).
      const r = s.entry(signProposed(s.clusterId, e as ProposedEvent, keyOf(nodeId)));
      queueMicrotask(() => emit(r));
      const x = r.result;
      return (x.ok ? { ok: true, index: x.index, type: x.type, detail: x.effect, applied: true, replayed: x.replayed } : { ok: false, index: x.index, type: x.type, reason: x.reason, detail: x.detail, applied: false, replayed: false }) as LedgerVerdict;
    },
  } as unknown as LedgerPort);
  const signers = ['node-0', 'node-1', 'node-2', 'node-3'].map((id) => new TrustPolicySigner({ nodeId: id, identitySecretKey: keyOf(id), ledger: portOf(id), log: (l) => logs.push(l), now: () => 1_700_000_000_000 }));
  t.teardown(() => signers.forEach((x) => x.stop()));
  for (const x of signers) x.start();
  await new Promise((r) => setTimeout(r, 20));
  t.equal(proposed.length, 0, 'nothing to sign while the voters never changed');

  const added = s.decide({ kind: 'NodeAdded', node: { id: 'node-3', identityKey: ed25519.getPublicKey(n3), passport: 'passport-3' } });
  t.ok(added.ok);
  emit({ entry: s.log[s.log.length - 1] as LedgerEntry, result: added });
  await until('the block after genesis complete', async () => pendingTrustBlock(s.state.cluster!) === null, 10_000, 10);
  const byNode = proposed.map((e) => (e as { nodeId: string }).nodeId);
  t.notOk(byNode.includes('node-3'), 'the new node is no node of the previous block: it signs nothing');
  t.equal(new Set(byNode).size, byNode.length, `each node proposed once (${byNode.join(', ')})`);
  t.ok(byNode.length >= 2, 'a quorum of the previous roster signed');
  t.equal(s.state.cluster!.trustChain!.blocks.length, 1);

  // node-1's first proposal failed without a verdict; the next change's pass makes it again.
  const removed = s.decide({ kind: 'NodeRemoved', nodeId: 'node-0' });
  t.ok(removed.ok);
  emit({ entry: s.log[s.log.length - 1] as LedgerEntry, result: removed });
  await until('the second block complete', async () => pendingTrustBlock(s.state.cluster!) === null, 10_000, 10);
  const second = proposed.filter((e) => (e as { serial: number }).serial === 2).map((e) => (e as { nodeId: string }).nodeId);
  t.ok(second.includes('node-1'), `node-1 (its first proposal found no leader) signs serial 2 (${second.join(', ')})`);
  t.ok(second.includes('node-3'), 'node-3, a node of serial 1, signs serial 2');
  const v = verifyPolicyChain(formatPolicyChain(trustChainBlocks(s.state.cluster!)), s.state.cluster!.trustChain!.genesis);
  t.equal(v.length, 3);
  t.same(v.policy.nodes.map((x) => x.name.split('/').pop()), ['node-1', 'node-2', 'node-3']);
  t.equal(logs.filter((l) => /node-1: proposing its signature of trust policy serial 1 failed, trying again/.test(l)).length, 1, 'the failed proposal is logged once');
  t.notOk(logs.some((l) => /refused/.test(l)), `no signature refused: ${logs.filter((l) => /refused/.test(l)).join('; ')}`);
});
