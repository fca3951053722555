/**
 * kernel/policy-check.ts, pure: the kernel's verdict is the ledger engine's own on every
 * history-free policy, whatever history the ledger holds (fast-check over random documents, acts
 * and admissions); acts are judged by the governance era of their ActSubmitted entry, as the
 * kernel follows eras from its pinned genesis through PolicyChanged and ApproversChanged
 * (kernel/authority.ts); a kernel pinned without a policy, or asked about an act older than the
 * eras it keeps, signs nothing.
 */
import t from 'tap';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { makeApproverKey, signDecision, decisionToCbor, type ApproverKey, type DecisionAction } from '../../ledger/decision.js';
import { encode, toHex } from '../../ledger/encoding.js';
import { LEDGER_ASSETS } from '../../ledger/asset-table.js';
import { emptyHistory, encodeDocument, evaluate, parsePolicyYaml, record, type PolicyDocument } from '../../ledger/policy-engine/index.js';
import type { TxFacts } from '../../ledger/tx/types.js';
import { applyDecision, genesisState, rosterFromJson, withPinnedEras, type GenesisPin, type GovernanceState } from '../../kernel/authority.js';
import { checkActPolicy, eraAt, type ActSubmittedEvent, type PolicyEra } from '../../kernel/policy-check.js';
import type { CommittedDecision } from '../../kernel/wire.js';
import { kernel as limits } from '../../proto/limits.js';
import { isCustodyError } from '../../proto/errors.js';
import { ASSETS, BASE_MS, INITIATORS, KEYS, OWN, RUNS, admissionsArb, factsArb, factsOf, policyArb } from '../ledger/policy-engine-arbitraries.js';
import { TEST_POLICY } from './harness.js';

const governors = [makeApproverKey('alice'), makeApproverKey('bob'), makeApproverKey('carol')];
const roster = { approvers: governors.map((a) => ({ id: a.id, publicKey: toHex(a.publicKey), roles: ['governor'] })), quorum: { threshold: 2, freezeThreshold: 1 } };

/** The event checkActPolicy reads: the act's initiator and key, its opId, and no approval. */
const eventOf = (initiator: string, keyId: string): ActSubmittedEvent => ({ type: 'ActSubmitted', opId: 'op-1', act: { initiator, keyId } as ActSubmittedEvent['act'], approval: null, request: null, nodeId: 'n1', passport: 'p' });

/** The kernel's outcome: 'ALLOW <rule>' or the refusal's code. */
function kernelOutcome(era: PolicyEra | undefined, ev: ActSubmittedEvent, facts: TxFacts, nowMs: number, index = 1): string {
  try {
    const r = checkActPolicy(ev, facts, { clusterId: 'c1', era, index, stampMs: nowMs, ownAddresses: OWN });
    return `${r.action} ${r.ruleId ?? '-'}`;
  } catch (e) {
    if (isCustodyError(e)) return e.reason;
    throw e;
  }
}

const historyFree = (p: PolicyDocument): PolicyDocument => ({ ...p, rules: p.rules.map((r) => ({ ...r, match: { ...r.match, windows: [], lifetime: [] } })) });

t.test('on a history-free policy the kernel reaches the ledger engine\'s verdict, whatever the ledger\'s history', (t) => {
  fc.assert(fc.property(
    policyArb().map(historyFree), factsArb, fc.constantFrom(...KEYS), fc.constantFrom(...INITIATORS), admissionsArb, fc.integer({ min: 0, max: 7 * 86_400_000 }),
    (policy, facts, keyId, initiator, admissions, dt) => {
      let history = emptyHistory(policy);
      for (const a of admissions) history = record(history, a);
      const nowMs = Math.max(BASE_MS, history.latestMs) + dt;
      const ledger = evaluate(policy, facts, { initiator, keyId, nowMs, history, ownAddresses: OWN, assets: ASSETS });
      const era: PolicyEra = { fromIndex: 0, governanceEpoch: 0, roster, policy: toHex(encodeDocument(policy)) };
      const kernel = kernelOutcome(era, eventOf(initiator, keyId), facts, nowMs);
      const want = ledger.action === 'ALLOW' ? `ALLOW ${ledger.ruleId ?? '-'}` : ledger.action === 'BLOCK' ? 'KERNEL_POLICY_REFUSED' : 'APPROVALS_MISSING';
      return kernel === want;
    },
  ), { numRuns: RUNS });
  t.pass(`${RUNS} random documents, acts and histories: same verdict`);
  t.end();
});

t.test('rates are the ledger\'s: a window the history has filled does not refuse in the kernel, a per-act cap does', (t) => {
  const policy = parsePolicyYaml(`version: 1
rules:
  - id: daily
    match: { assets: [BTC], amount: { max: "0.000005" }, windows: [{ per: key, length: 24h, maxCount: 1 }] }
    action: ALLOW
`, LEDGER_ASSETS);
  const era: PolicyEra = { fromIndex: 0, governanceEpoch: 0, roster, policy: toHex(encodeDocument(policy)) };
  const pay = (amount: bigint): TxFacts => factsOf('btc-psbt', 'BTC', [{ address: 'a1', asset: 'BTC', amount, change: false }]);
  const full = record(emptyHistory(policy), { keyId: 'k1', initiator: 'i1', asset: 'BTC', amount: 1n, stampMs: BASE_MS });
  const ledger = evaluate(policy, pay(100n), { initiator: 'i1', keyId: 'k1', nowMs: BASE_MS + 1, history: full, ownAddresses: OWN, assets: LEDGER_ASSETS });
  t.equal(ledger.reason, 'POLICY_WINDOW_EXCEEDED', 'the ledger refuses a second act inside the day');
  t.equal(kernelOutcome(era, eventOf('i1', 'k1'), pay(100n), BASE_MS + 1), 'ALLOW daily', 'the kernel, which holds no history, leaves the window to the certified ledger');
  t.equal(kernelOutcome(era, eventOf('i1', 'k1'), pay(501n), BASE_MS + 1), 'KERNEL_POLICY_REFUSED', 'the per-act cap is the kernel\'s own');
  t.end();
});

// ------------------------------------------------------------------------------------------------
// Eras as the kernel follows them
// ------------------------------------------------------------------------------------------------

/** The test kernels' policy: raw acts need two governors' approvals, transactions are allowed. */
const OPEN = TEST_POLICY;
const CLOSED = parsePolicyYaml('version: 1\nrules: []\n', LEDGER_ASSETS);

function pin(policy: PolicyDocument | null): GenesisPin {
  return {
    clusterId: 'c1', genesisCid: toHex(randomBytes(32)), governanceEpoch: 0, roster,
    nodes: ['n1', 'n2', 'n3'].map((id, i) => ({ id, identityKey: toHex(ed25519.getPublicKey(new Uint8Array(32).fill(i + 1))) })),
    ...(policy === null ? {} : { policy: toHex(encodeDocument(policy)) }),
  };
}

function decide(s: GovernanceState, action: DecisionAction, index: number, signers: ApproverKey[] = governors.slice(0, 2)): GovernanceState {
  const stampMs = s.stampMs + 1000;
  const body = { clusterId: 'c1', governanceEpoch: s.governanceEpoch, parentCid: Buffer.from(s.lastCid, 'hex'), action, issuedMs: stampMs, expiresMs: stampMs + 60_000 };
  const d: CommittedDecision = { decision: encode(decisionToCbor(signDecision(body, signers))), ledgerIndex: index, stampMs };
  return applyDecision(s, d, 'n1').state;
}

const transfer = factsOf('btc-psbt', 'BTC', [{ address: 'a1', asset: 'BTC', amount: 10n, change: false }]);

t.test('an act is judged by the era of its ActSubmitted entry', (t) => {
  let s = genesisState(pin(OPEN));
  s = decide(s, { kind: 'PolicyChanged', policy: CLOSED }, 5);
  const ev = eventOf('i1', 'k1');
  t.equal(kernelOutcome(eraAt(s.eras, 3), ev, transfer, BASE_MS, 3), 'ALLOW transfers', 'an act admitted at index 3, under the genesis policy, is judged by it');
  t.equal(kernelOutcome(eraAt(s.eras, 6), ev, transfer, BASE_MS, 6), 'KERNEL_POLICY_REFUSED', 'an act after the PolicyChanged at 5 is judged by the new document');
  s = decide(s, { kind: 'ApproversChanged', roster: rosterFromJson({ ...roster, approvers: roster.approvers.slice(0, 3) }) }, 8);
  t.equal(eraAt(s.eras, 9)?.governanceEpoch, 2, 'ApproversChanged opens an era under the next governance epoch');
  t.equal(eraAt(s.eras, 9)?.policy, eraAt(s.eras, 6)?.policy, 'and keeps the policy in force');
  t.end();
});

t.test('a kernel keeps the last eras only; an act older than them, or a kernel pinned without a policy, signs nothing', (t) => {
  let s = genesisState(pin(OPEN));
  for (let i = 0; i < limits.policyErasMax; i++) s = decide(s, { kind: 'PolicyChanged', policy: i % 2 === 0 ? CLOSED : OPEN }, 10 + i);
  t.equal(s.eras?.length, limits.policyErasMax, `at most ${limits.policyErasMax} eras`);
  t.equal(eraAt(s.eras, 3), undefined, 'the genesis era was dropped');
  const old = kernelOutcome(eraAt(s.eras, 3), eventOf('i1', 'k1'), transfer, BASE_MS, 3);
  t.equal(old, 'KERNEL_POLICY_REFUSED', 'an act from before the kept eras is refused');
  const bare = genesisState(pin(null));
  t.same(bare.eras, [], 'no policy pinned: no era');
  t.equal(kernelOutcome(eraAt(bare.eras, 3), eventOf('i1', 'k1'), transfer, BASE_MS, 3), 'KERNEL_POLICY_REFUSED', 'and no act is signed');
  const followed = decide(bare, { kind: 'ApproversChanged', roster: rosterFromJson(roster) }, 2);
  t.same(followed.eras, [], 'a roster change does not invent a policy');
  const pinned = (policy: string): string => {
    try {
      genesisState({ ...pin(null), policy });
      return 'pinned';
    } catch (e) {
      return isCustodyError(e) ? e.reason : String(e);
    }
  };
  t.equal(pinned('zz'), 'CONFIG_INVALID', 'a pinned policy that is not hex is refused');
  t.equal(pinned('a0'), 'CONFIG_INVALID', 'a pinned policy that is not a document is refused');
  t.end();
});

t.test('a state stored before kernels followed the policy gets the pinned era only while governance is still at the pinned epoch', (t) => {
  const p = pin(OPEN);
  const { eras: _dropped, ...stored } = genesisState(p);
  const migrated = withPinnedEras(stored, p);
  t.equal(kernelOutcome(eraAt(migrated.eras, 3), eventOf('i1', 'k1'), transfer, BASE_MS, 3), 'ALLOW transfers', 'no roster or policy change since genesis: the pinned policy is the one in force');
  const { eras: _gone, ...changed } = decide(genesisState(p), { kind: 'PolicyChanged', policy: CLOSED }, 4);
  const stale = withPinnedEras(changed, p);
  t.equal(stale.eras, undefined, 'after a policy change the kernel cannot know the policy from its pin');
  t.equal(kernelOutcome(eraAt(stale.eras, 5), eventOf('i1', 'k1'), transfer, BASE_MS, 5), 'KERNEL_POLICY_REFUSED', 'and signs no act');
  t.end();
});
