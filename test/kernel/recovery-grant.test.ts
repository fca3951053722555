/**
 * How a kernel follows RecoveryAuthorized decisions (kernel/authority.ts), on the pure verifier:
 * only the node named keeps the grant, only for the active epoch of a live key, a forged one is
 * refused, and a grant no import consumed is dropped when another epoch is activated or the key
 * retired, so it can never authorize an import of a share the key no longer uses.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { applyDecision, genesisState, type GovernanceState } from '../../kernel/authority.js';
import type { CommittedDecision } from '../../kernel/wire.js';
import { networkForScheme, type DecisionAction } from '../../ledger/decision.js';
import { toHex } from '../../ledger/encoding.js';
import { Governance } from './harness.js';

function reasonOfSync(f: () => unknown): string {
  try {
    f();
    return 'OK';
  } catch (e) {
    if (e instanceof Error && 'reason' in e) return String((e as { reason: unknown }).reason);
    throw e;
  }
}

const recovery = (over: Partial<Extract<DecisionAction, { kind: 'RecoveryAuthorized' }>> = {}): DecisionAction => ({
  kind: 'RecoveryAuthorized', nodeId: 'n2', keyId: 'k1', keyEpoch: 0, identifier: '02'.padEnd(64, '0'),
  backupCid: new Uint8Array(32).fill(5), groupKey: new Uint8Array(32).fill(6), verifyingShare: new Uint8Array(32).fill(7), ...over,
});

/** A fresh governance with key k1 active at epoch 0 over n1..n3, followed as `nodeId`. */
function setup(nodeId: string): { gov: Governance; state: GovernanceState; apply: (d: CommittedDecision) => GovernanceState } {
  const gov = new Governance();
  let state = genesisState(gov.pin());
  const apply = (d: CommittedDecision): GovernanceState => {
    state = applyDecision(state, d, nodeId).state;
    return state;
  };
  apply(gov.decide({ kind: 'DkgAuthorized', keyId: 'k1', scheme: 'ed25519', network: networkForScheme('ed25519'), threshold: 2, participants: ['n1', 'n2', 'n3'] }));
  apply(gov.decide({ kind: 'KeyActivated', keyId: 'k1', keyEpoch: 0, keyReadyCid: randomBytes(32) }));
  return { gov, get state() { return state; }, apply };
}

t.test('only the node named keeps the grant, with what the decision says', async (t) => {
  const n2 = setup('n2');
  const d = n2.gov.decide(recovery());
  const after = n2.apply(d);
  t.same(after.recoveries?.['k1'], {
    epoch: 0, identifier: '02'.padEnd(64, '0'), backupCid: toHex(new Uint8Array(32).fill(5)), groupKey: toHex(new Uint8Array(32).fill(6)),
    verifyingShare: toHex(new Uint8Array(32).fill(7)), index: d.ledgerIndex,
  });
  const n1 = setup('n1');
  t.equal(n1.apply(n1.gov.decide(recovery())).recoveries?.['k1'], undefined, 'n1 follows the decision and keeps nothing');
});

t.test('refused: an epoch that is not active, a key never authorized, a retired key, one approver', async (t) => {
  const a = setup('n2');
  t.equal(reasonOfSync(() => a.apply(a.gov.decide(recovery({ keyEpoch: 1 })))), 'STALE_EPOCH');
  const b = setup('n2');
  t.equal(reasonOfSync(() => b.apply(b.gov.decide(recovery({ keyId: 'k9' })))), 'UNKNOWN_KEY');
  const c = setup('n2');
  c.apply(c.gov.decide({ kind: 'KeyRetired', keyId: 'k1' }));
  t.equal(reasonOfSync(() => c.apply(c.gov.decide(recovery()))), 'KEY_NOT_ACTIVE');
  const d = setup('n2');
  t.equal(reasonOfSync(() => d.apply(d.gov.decide(recovery(), d.gov.approvers.slice(0, 1)))), 'QUORUM_NOT_MET');
  t.equal(d.state.recoveries, undefined, 'nothing kept');
});

t.test('an unconsumed grant is dropped when another epoch is activated or the key retired', async (t) => {
  const a = setup('n2');
  a.apply(a.gov.decide(recovery()));
  a.apply(a.gov.decide({ kind: 'KeyRefreshed', keyId: 'k1', keyEpoch: 1 }));
  t.ok(a.state.recoveries?.['k1'], 'a refresh authorized but not activated keeps it: epoch 0 still signs');
  a.apply(a.gov.decide({ kind: 'KeyActivated', keyId: 'k1', keyEpoch: 1, keyReadyCid: randomBytes(32) }));
  t.equal(a.state.recoveries?.['k1'], undefined, 'epoch 1 activated: the grant for epoch 0 is gone');
  const b = setup('n2');
  b.apply(b.gov.decide(recovery()));
  b.apply(b.gov.decide({ kind: 'KeyRetired', keyId: 'k1' }));
  t.equal(b.state.recoveries?.['k1'], undefined, 'retired: gone');
});
