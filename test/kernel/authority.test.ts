/**
 * The kernel's governance follower (kernel/authority.ts), pure: from the pinned genesis it
 * follows roster changes, governance epochs, key epochs, freeze and fencing only through
 * decisions it verifies itself with the ledger's verifyDecision, in chain order.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { makeApproverKey, signDecision, decisionToCbor, type ApproverKey, type DecisionAction } from '../../ledger/decision.js';
import { encode, toHex } from '../../ledger/encoding.js';
import { applyDecision, genesisState, revokedAt, rosterToJson, type GovernanceState } from '../../kernel/authority.js';
import fc from 'fast-check';
import { ScriptedCluster } from '../../ledger/scenario.js';
import { revocationsOf } from '../../ledger/state.js';
import { ledger as ledgerLimits } from '../../proto/limits.js';
import type { CommittedDecision } from '../../kernel/wire.js';
import { custodians, type Custodian } from '../ledger/backup-fixtures.js';
import { cosignatureSigner, vkeyOf } from '../../ledger/tlog/note.js';

/** Decisions built against the follower's own head, so a refused one never breaks the chain. */
class Follower {
  readonly genesis = [makeApproverKey('alice'), makeApproverKey('bob'), makeApproverKey('carol')];
  state: GovernanceState = genesisState({
    clusterId: 'c1', genesisCid: toHex(randomBytes(32)), governanceEpoch: 0,
    roster: { approvers: this.genesis.map((a) => ({ id: a.id, publicKey: toHex(a.publicKey), roles: ['governor'] })), quorum: { threshold: 2, freezeThreshold: 1 } },
    nodes: ['n1', 'n2', 'n3'].map((id, i) => ({ id, identityKey: toHex(ed25519.getPublicKey(new Uint8Array(32).fill(i + 1))) })),
  });

  make(action: DecisionAction, signers: ApproverKey[], over: { epoch?: number; index?: number; stampMs?: number; issuedMs?: number; expiresInMs?: number; parent?: Uint8Array } = {}): CommittedDecision {
    const stampMs = over.stampMs ?? this.state.stampMs + 1000;
    const issuedMs = over.issuedMs ?? this.state.stampMs + 1000;
    const body = {
      clusterId: 'c1', governanceEpoch: over.epoch ?? this.state.governanceEpoch, parentCid: over.parent ?? Buffer.from(this.state.lastCid, 'hex'), action,
      issuedMs, expiresMs: issuedMs + (over.expiresInMs ?? 60_000),
    };
    return { decision: encode(decisionToCbor(signDecision(body, signers))), ledgerIndex: over.index ?? this.state.index + 1, stampMs };
  }

  /** Applies; returns 'applied', 'skipped' or the refusal's reason code. */
  apply(d: CommittedDecision): string {
    try {
      const r = applyDecision(this.state, d, 'n1');
      this.state = r.state;
      return r.applied ? 'applied' : 'skipped';
    } catch (e) {
      return (e as { reason: string }).reason;
    }
  }
}

t.test('roster changes: the new approvers rule, the old ones no longer count', async (t) => {
  const f = new Follower();
  const next = [makeApproverKey('dave'), makeApproverKey('erin'), makeApproverKey('frank')];
  const roster = { approvers: next.map((a) => ({ id: a.id, publicKey: a.publicKey, roles: ['governor' as const] })), quorum: { threshold: 2, freezeThreshold: 1 } };
  t.equal(f.apply(f.make({ kind: 'ApproversChanged', roster }, f.genesis.slice(0, 1))), 'QUORUM_NOT_MET', 'one genesis approver cannot change the roster');
  t.equal(f.apply(f.make({ kind: 'ApproversChanged', roster }, f.genesis.slice(0, 2))), 'applied');
  t.equal(f.state.governanceEpoch, 1, 'a new roster opens governance epoch 1');
  t.same(f.state.roster.approvers.map((a) => a.id), ['dave', 'erin', 'frank']);
  t.equal(f.apply(f.make({ kind: 'EmergencyFreeze', reason: 'old keys' }, f.genesis.slice(0, 2))), 'UNKNOWN_APPROVER', 'the old approvers are refused');
  t.equal(f.apply(f.make({ kind: 'EmergencyFreeze', reason: 'old epoch' }, next.slice(0, 1), { epoch: 0 })), 'STALE_EPOCH', 'a decision for the previous governance epoch');
  t.equal(f.apply(f.make({ kind: 'EmergencyFreeze', reason: 'late' }, next.slice(0, 1), { stampMs: f.state.stampMs + 120_000 })), 'DECISION_EXPIRED', 'an expired decision');
  t.equal(f.apply(f.make({ kind: 'EmergencyFreeze', reason: 'fork' }, next.slice(0, 1), { parent: randomBytes(32) })), 'BINDING_MISMATCH', 'a decision that does not follow the head');
  const freeze = f.make({ kind: 'EmergencyFreeze', reason: 'incident' }, next.slice(0, 1));
  t.equal(f.apply(freeze), 'applied', 'one freezer suffices under the new roster');
  t.ok(f.state.frozen, 'frozen');
  t.equal(f.apply(freeze), 'skipped', 'a re-delivered decision is skipped, never applied twice');
  t.equal(f.apply(f.make({ kind: 'DkgAuthorized', keyId: 'k9', scheme: 'taproot', network: 'bitcoin-regtest', threshold: 2, participants: ['n1', 'n2'] }, next.slice(0, 2))), 'FROZEN', 'no key ceremonies while frozen (the ledger refuses them too)');
  t.equal(f.apply(f.make({ kind: 'Unfreeze' }, next.slice(0, 1))), 'QUORUM_NOT_MET', 'unfreezing needs the full quorum');
  t.equal(f.apply(f.make({ kind: 'Unfreeze' }, next.slice(0, 2))), 'applied');
  t.notOk(f.state.frozen, 'unfrozen');
});

t.test('custodians: a roster change adds and removes them; their signatures never govern', async (t) => {
  const f = new Follower();
  const cara = makeApproverKey('cara');
  const withCara = { approvers: [...f.genesis.map((a) => ({ id: a.id, publicKey: a.publicKey, roles: ['governor' as const] })), { id: 'cara', publicKey: cara.publicKey, roles: ['custodian' as const] }], quorum: { threshold: 2, freezeThreshold: 1 } };
  t.equal(f.apply(f.make({ kind: 'ApproversChanged', roster: withCara }, f.genesis.slice(0, 2))), 'applied', 'a custodian added');
  t.same(f.state.roster.approvers.find((a) => a.id === 'cara')?.roles, ['custodian']);
  t.equal(f.apply(f.make({ kind: 'EmergencyFreeze', reason: 'x' }, [cara])), 'ROLE_NOT_ALLOWED', 'a custodian cannot even freeze');
  t.equal(f.apply(f.make({ kind: 'Unfreeze' }, [f.genesis[0]!, cara])), 'ROLE_NOT_ALLOWED', 'nor count toward a quorum');
  const both = { ...withCara, approvers: withCara.approvers.map((a) => (a.id === 'cara' ? { ...a, roles: ['custodian' as const, 'governor' as const] } : a)) };
  t.equal(f.apply(f.make({ kind: 'ApproversChanged', roster: both }, f.genesis.slice(0, 2))), 'PAYLOAD_REJECTED', 'a custodian that would also govern is refused');
  const without = { ...withCara, approvers: withCara.approvers.filter((a) => a.id !== 'cara') };
  t.equal(f.apply(f.make({ kind: 'ApproversChanged', roster: without }, f.genesis.slice(0, 2))), 'applied', 'and removed');
  t.equal(f.state.roster.approvers.some((a) => a.id === 'cara'), false);
});

t.test('key epochs: authorization, activation, refresh, retirement', async (t) => {
  const f = new Follower();
  const q = f.genesis.slice(0, 2);
  const cid = new Uint8Array(32);
  t.equal(f.apply(f.make({ kind: 'KeyActivated', keyId: 'k', keyEpoch: 0, keyReadyCid: cid }, q)), 'UNKNOWN_KEY', 'no activation before authorization');
  t.equal(f.apply(f.make({ kind: 'DkgAuthorized', keyId: 'k', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ['n1', 'n2', 'n3'] }, q)), 'applied');
  t.equal(f.state.keys['k']!.activeEpoch, null, 'authorized is not active');
  t.equal(f.state.keys['k']!.network, 'solana-devnet', 'the kernel keeps the network the key signs for (it parses act transactions against it)');
  t.equal(f.apply(f.make({ kind: 'KeyRefreshed', keyId: 'k', keyEpoch: 1 }, q)), 'KEY_NOT_ACTIVE', 'no refresh of a key that never signed');
  t.equal(f.apply(f.make({ kind: 'KeyActivated', keyId: 'k', keyEpoch: 1, keyReadyCid: cid }, q)), 'STALE_EPOCH', 'only the authorized epoch can activate');
  t.equal(f.apply(f.make({ kind: 'KeyActivated', keyId: 'k', keyEpoch: 0, keyReadyCid: cid }, q)), 'applied');
  t.equal(f.state.keys['k']!.activeEpoch, 0, 'epoch 0 active');
  t.equal(f.apply(f.make({ kind: 'KeyReshared', keyId: 'k', keyEpoch: 1, threshold: 3, participants: ['n1', 'n2', 'n3', 'n4'] }, q)), 'applied');
  t.equal(f.state.keys['k']!.activeEpoch, 0, 'a reshare authorization does not change the signing epoch');
  t.same(f.state.keys['k']!.pending, { epoch: 1, threshold: 3, participants: ['n1', 'n2', 'n3', 'n4'], authorizedIndex: f.state.index });
  t.equal(f.apply(f.make({ kind: 'KeyActivated', keyId: 'k', keyEpoch: 1, keyReadyCid: cid }, q)), 'applied');
  t.same([f.state.keys['k']!.activeEpoch, f.state.keys['k']!.threshold], [1, 3], 'epoch 1 active with the new threshold');
  t.equal(f.apply(f.make({ kind: 'KeyRetired', keyId: 'k' }, q)), 'applied');
  t.ok(f.state.keys['k']!.retired, 'retired');
});

t.test('policy changes and node decisions', async (t) => {
  const f = new Follower();
  const q = f.genesis.slice(0, 2);
  const policy = { version: 1 as const, approverGroups: [], initiatorGroups: [], rules: [] };
  t.equal(f.apply(f.make({ kind: 'PolicyChanged', policy }, q)), 'applied');
  t.equal(f.state.governanceEpoch, 1, 'a policy change opens a new governance epoch, as the ledger does');
  t.equal(f.apply(f.make({ kind: 'NodeRebound', nodeId: 'n1', passport: 'p-2' }, q)), 'applied');
  t.equal(f.state.passport, 'p-2', 'this node was rebound');
  t.same(f.state.nodes?.map((n) => n.id), ['n1', 'n2', 'n3'], 'the voters start as the genesis nodes');
  const n4 = toHex(ed25519.getPublicKey(new Uint8Array(32).fill(4)));
  t.equal(f.apply(f.make({ kind: 'NodeAdded', node: { id: 'n4', identityKey: Buffer.from(n4, 'hex'), passport: 'p-4' } }, q)), 'applied');
  t.same(f.state.nodes?.map((n) => n.id), ['n1', 'n2', 'n3', 'n4'], 'an added node is a voter');
  t.equal(f.state.nodes?.[3]?.identityKey, n4, 'with the identity key the decision names');
  t.equal(f.apply(f.make({ kind: 'NodeAdded', node: { id: 'n4', identityKey: new Uint8Array(32).fill(9), passport: 'p-9' } }, q)), 'applied');
  t.equal(f.state.nodes?.[3]?.identityKey, n4, 'a second NodeAdded for one id does not replace its key');
  t.equal(f.apply(f.make({ kind: 'NodeRemoved', nodeId: 'n2' }, q)), 'applied');
  t.same(f.state.nodes?.map((n) => n.id), ['n1', 'n3', 'n4'], 'a removed node is no voter');
  t.equal(f.apply(f.make({ kind: 'NodeRemoved', nodeId: 'n1' }, q)), 'applied');
  t.ok(f.state.removed, 'removal fences this node for good');
});

t.test('fencing by decision: a verified NodeFenced naming this node fences its kernel; one naming another node, or signed by strangers, does not', async (t) => {
  const f = new Follower();
  const effectsOf = (d: CommittedDecision) => {
    const r = applyDecision(f.state, d, 'n1');
    f.state = r.state;
    return r.effects;
  };
  t.equal(f.apply(f.make({ kind: 'NodeFenced', nodeId: 'n1', passport: 'n1-p1', reason: 'x' }, [makeApproverKey('mallory')])), 'UNKNOWN_APPROVER', 'a daemon cannot forge one');
  t.same(effectsOf(f.make({ kind: 'NodeFenced', nodeId: 'n2', passport: 'n2-p1', reason: 'leaked key' }, f.genesis.slice(0, 1))), [], 'another node\'s fence changes nothing here');
  t.equal(f.apply(f.make({ kind: 'EmergencyFreeze', reason: 'incident' }, f.genesis.slice(0, 1))), 'applied');
  t.same(effectsOf(f.make({ kind: 'NodeFenced', nodeId: 'n1', passport: 'n1-p1', reason: 'equivocation' }, f.genesis.slice(0, 1))), [{ kind: 'fenced', passport: 'n1-p1', reason: 'equivocation' }], 'the freeze quorum fences this node, frozen or not');
  t.same(effectsOf(f.make({ kind: 'NodeRebound', nodeId: 'n1', passport: 'n1-p2' }, f.genesis.slice(0, 2))), [{ kind: 'rebound', passport: 'n1-p2' }], 'a rebind (full quorum) lifts it');
});

t.test('certificate revocations: recorded only from a verified decision, and a daemon cannot skip one', async (t) => {
  const f = new Follower();
  const q = f.genesis.slice(0, 2);
  const notAfterMs = 90 * 86_400_000;
  const revoke = { kind: 'OperatorRevoked' as const, serial: 'a1b2c3', operatorId: 'ops-7', reason: 'laptop lost', notAfterMs };
  t.equal(f.apply(f.make(revoke, q.slice(0, 1))), 'QUORUM_NOT_MET', 'one approver cannot revoke (nor record a forged revocation)');
  t.equal(revokedAt(f.state, 'operator', 'ops-7', Number.MAX_SAFE_INTEGER), null, 'nothing recorded from a refused decision');
  const d = f.make(revoke, q);
  t.equal(f.apply(d), 'applied');
  const at = d.ledgerIndex;
  t.same(revokedAt(f.state, 'operator', 'ops-7', at), { serial: 'a1b2c3', holder: 'operator', id: 'ops-7', notAfterMs, index: at }, 'recorded with the index it took effect');
  t.equal(revokedAt(f.state, 'operator', 'ops-7', at - 1), null, 'an entry before the revocation is not affected');
  t.equal(revokedAt(f.state, 'node', 'ops-7', at), null, 'an operator revocation does not name a node');

  // A daemon that withholds the revocation from another kernel cannot forward anything after it:
  // the next decision names the revocation as its parent.
  const g = new Follower();
  Object.assign(g, { genesis: f.genesis });
  g.state = structuredClone({ ...f.state, revoked: [] });
  g.state.lastCid = toHex(randomBytes(32));
  const after = f.make({ kind: 'EmergencyFreeze', reason: 'after the revocation' }, q);
  t.equal(g.apply(after), 'BINDING_MISMATCH', 'a decision following a withheld revocation is refused');
  t.equal(f.apply(after), 'applied', 'the kernel that saw the revocation follows on');
  t.equal(f.apply(f.make({ kind: 'NodeCertificateRevoked', serial: 'ff', nodeId: 'n2', reason: 'host rebuilt', notAfterMs }, q)), 'applied', 'revocations apply while frozen (containment)');
  t.ok(revokedAt(f.state, 'node', 'n2', f.state.index), 'node certificate recorded');
  const late = notAfterMs + 30 * 86_400_000;
  t.equal(f.apply(f.make({ kind: 'OperatorRevoked', serial: 'b0', operatorId: 'ops-8', reason: 'rotated out', notAfterMs: late + 86_400_000 }, q, { stampMs: late, issuedMs: late })), 'applied');
  t.same((f.state.revoked ?? []).map((r) => r.serial), ['b0'], 'entries past notAfter and the grace leave the list when the next one is recorded');
});

t.test('the kernel and the ledger hold the same revocations after any sequence of revocation decisions (fast-check)', async (t) => {
  const step = fc.record({
    serial: fc.constantFrom('1', '2', '3', 'a', 'b'),
    holder: fc.constantFrom('operator', 'node'),
    // notAfter relative to now, around the grace so that entries expire during the run
    notAfterInDays: fc.integer({ min: -10, max: 20 }),
    advanceDays: fc.integer({ min: 0, max: 9 }),
  });
  t.doesNotThrow(() => fc.assert(fc.property(fc.array(step, { minLength: 1, maxLength: 25 }), (steps) => {
    const s = new ScriptedCluster({ label: 'revocation-agreement' });
    s.genesis();
    const c = s.state.cluster!;
    let k = genesisState({ clusterId: c.clusterId, genesisCid: toHex(c.governance.headCid), governanceEpoch: c.governance.epoch, roster: rosterToJson(c.governance.roster), nodes: Object.values(c.nodes).map((n) => ({ id: n.id, identityKey: toHex(n.identityKey) })) });
    for (const x of steps) {
      s.nowMs += x.advanceDays * 86_400_000;
      const notAfterMs = Math.max(0, s.nowMs + x.notAfterInDays * 86_400_000 - ledgerLimits.revocationExpiryGraceMs);
      const action: DecisionAction = x.holder === 'operator'
        ? { kind: 'OperatorRevoked', serial: x.serial, operatorId: 'op', reason: 'r', notAfterMs }
        : { kind: 'NodeCertificateRevoked', serial: x.serial, nodeId: 'node-1', reason: 'r', notAfterMs };
      const d = s.decision(action);
      const { entry, result } = s.entry({ type: 'GovernanceDecision', decision: d });
      if (!result.ok) continue;
      k = applyDecision(k, { decision: encode(decisionToCbor(d)), ledgerIndex: entry.index, stampMs: s.state.clockMs }, 'node-0').state;
      const ledgerView = revocationsOf(s.state.cluster!.governance).map((r) => `${r.holder}/${r.serial}/${r.notAfterMs}/${r.sinceIndex}`);
      const kernelView = (k.revoked ?? []).map((r) => `${r.holder}/${r.serial}/${r.notAfterMs}/${r.index}`);
      if (JSON.stringify(ledgerView) !== JSON.stringify(kernelView)) return false;
    }
    return true;
  }), { numRuns: 40, verbose: 1 }), 'equal lists after every accepted decision (a counterexample prints its seed)');
});

t.test('BackupPolicy: a quorum sets the custodians; an invalid list, one approver or while frozen changes nothing', async (t) => {
  const f = new Follower();
  const q = f.genesis.slice(0, 2);
  const [alice, bob] = await custodians('alice', 'bob') as [Custodian, Custodian];
  const recipients = [{ label: alice.label, recipient: alice.recipient }, { label: bob.label, recipient: bob.recipient }];
  t.equal(f.apply(f.make({ kind: 'BackupPolicy', recipients }, q.slice(0, 1))), 'QUORUM_NOT_MET');
  t.equal(f.state.backupPolicy, undefined, 'no policy from one approver');
  const broken = [recipients[0]!, { label: 'bob', recipient: `${bob.recipient.slice(0, -1)}${bob.recipient.endsWith('q') ? 'p' : 'q'}` }];
  t.equal(f.apply(f.make({ kind: 'BackupPolicy', recipients: broken }, q)), 'BACKUP_POLICY_INVALID', 'a recipient with a bad checksum, as the ledger refuses it');
  t.equal(f.apply(f.make({ kind: 'BackupPolicy', recipients: [] }, q)), 'BACKUP_POLICY_INVALID', 'no custodian');
  t.equal(f.state.backupPolicy, undefined);
  t.equal(f.apply(f.make({ kind: 'BackupPolicy', recipients }, q)), 'applied');
  t.same(f.state.backupPolicy, { recipients, index: f.state.index });
  t.equal(f.apply(f.make({ kind: 'EmergencyFreeze', reason: 'drill' }, q)), 'applied');
  t.equal(f.apply(f.make({ kind: 'BackupPolicy', recipients: recipients.slice(0, 1) }, q)), 'FROZEN', 'the ledger refuses it while frozen, so does the kernel');
  t.same(f.state.backupPolicy?.recipients, recipients);
});

t.test('WitnessesChanged: the kernel follows a set the ledger accepts and refuses one it refuses, keeping its head', async (t) => {
  const f = new Follower();
  const w = vkeyOf(cosignatureSigner('witness.example/w1', new Uint8Array(32).fill(9), 1).verifier);
  const head = f.state.lastCid;
  t.equal(f.apply(f.make({ kind: 'WitnessesChanged', witnesses: [w], quorum: 2 }, f.genesis.slice(0, 2))), 'PAYLOAD_REJECTED', 'a quorum above the witnesses');
  t.equal(f.apply(f.make({ kind: 'WitnessesChanged', witnesses: [vkeyOf(cosignatureSigner('custody-ledger/c1/n1', new Uint8Array(32).fill(9), 1).verifier)], quorum: 1 }, f.genesis.slice(0, 2))), 'PAYLOAD_REJECTED', 'a witness named like a node key');
  t.equal(f.state.lastCid, head, 'a refused set does not move the kernel\'s head');
  t.equal(f.apply(f.make({ kind: 'WitnessesChanged', witnesses: [w], quorum: 1 }, f.genesis.slice(0, 1))), 'QUORUM_NOT_MET', 'one approver is not a quorum');
  t.equal(f.apply(f.make({ kind: 'WitnessesChanged', witnesses: [w], quorum: 1 }, f.genesis.slice(0, 2))), 'applied');
  t.not(f.state.lastCid, head, 'followed: the next decision names it as its parent');
});
