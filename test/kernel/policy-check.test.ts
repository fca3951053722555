/**
 * The kernel's own policy check (kernel/policy-check.ts), over its socket, in both profiles: a
 * daemon that can certify anything (it holds the voters' cosigning keys here, as a compromised
 * majority would) forwards acts without a custodian's request or with a forged one, acts whose
 * transaction the kernel cannot parse or that signs other messages than the permit names, acts with
 * a genuine custodian request that the policy in force does not allow, and acts that lack the
 * approvals their rule requires. Each is refused before the nonce is consumed, with its own code
 * (REQUEST_UNSIGNED, REQUEST_SIGNATURE_INVALID, TX_UNPARSEABLE, TX_MESSAGES_MISMATCH,
 * KERNEL_POLICY_REFUSED with the rule and the engine's code in the detail, APPROVALS_MISSING with
 * the cause); the same nonce then signs the act with its approvals, and rate rules (windows) stay
 * the ledger's. The checkpoint refusals are kernel/certificate.test.ts's, in both profiles too.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { makeApproverKey, type GovernanceDecision } from '../../ledger/decision.js';
import { LEDGER_ASSETS } from '../../ledger/asset-table.js';
import { actCid, type Act } from '../../ledger/events.js';
import { signActRequest, type SignedActRequest } from '../../ledger/act-request.js';
import { parsePolicyYaml } from '../../ledger/policy-engine/index.js';
import { regtestAddressOf } from '../../ledger/scenario.js';
import { buildTaprootPsbt } from '../../node/lifecycle/tx-build.js';
import { isCustodyError } from '../../proto/errors.js';
import type { NonceCommitment, SigningCommitment } from '../../kernel/wire.js';
import {
  Governance, PROFILES, independentVerify, memberOf, permitOver, runDkg, setupKernel, startKernel, tempDir, toPackage,
  type ApprovalOf, type KernelProcess, type Member,
} from './harness.js';
import { suiteOf } from '../../kernel/suites.js';

const PAYEE = regtestAddressOf('policy-payee');
const DENIED = regtestAddressOf('policy-denied');

/** Per-act caps, a deny-list, a count window, and approvals of a group of two of the three governors. */
const POLICY = parsePolicyYaml(`version: 1
groups:
  approvers:
    pair: [alice, bob]
rules:
  - id: deny-listed
    match: { destination: { deny: [${DENIED}] } }
    action: BLOCK
  - id: small
    match: { assets: [BTC], amount: { max: "0.0005" }, windows: [{ per: key, length: 1h, maxCount: 1 }] }
    action: ALLOW
  - id: large-approved
    match: { assets: [BTC], amount: { max: "0.002" } }
    action: REQUIRE_APPROVAL
    approvals: { k: 2, group: pair, ttl: 1h }
`, LEDGER_ASSETS);

const HOUR = 3_600_000;

async function outcome(p: Promise<unknown>): Promise<{ reason: string; detail: string }> {
  try {
    await p;
    return { reason: 'OK', detail: '' };
  } catch (e) {
    if (isCustodyError(e)) return { reason: e.reason, detail: e.detail };
    throw e;
  }
}

for (const profile of PROFILES) {
  t.test(`kernel policy refusal matrix (${profile})`, { timeout: 600_000 }, async (t) => {
    const { dir, cleanup } = tempDir(`kpolicy-${profile}`);
    const gov = new Governance();
    gov.policy = POLICY;
    const procs: KernelProcess[] = [];
    t.teardown(async () => {
      for (const p of procs) await p.stop();
      cleanup();
    });
    for (const id of ['n1', 'n2']) procs.push(await startKernel(setupKernel(dir, id, profile, gov)));
    const [a, b] = procs.map(memberOf) as [Member, Member];
    const key = await runDkg(gov, [a, b], 'key-p', 'taproot', 2);
    const keyCtx = gov.keys.get('key-p')!;
    const [alice, bob, carol] = gov.approvers as [typeof gov.approvers[0], typeof gov.approvers[0], typeof gov.approvers[0]];

    let coin = 0;
    /** A PSBT of the key paying `amount` sat to `to` from one fresh coin, change back to the key. */
    const spend = (to: string, amount: bigint): Uint8Array =>
      buildTaprootPsbt(keyCtx, [{ txid: randomBytes(32).toString('hex'), vout: coin++, amountSat: 1_000_000n }], [{ address: to, amount }], 1_000n);
    const presign = async (m: Member): Promise<NonceCommitment> =>
      (await m.client.call({ kind: 'nonces', keyId: key.keyId, keyEpoch: 0, count: 1 }, 'nonceCommitments')).commitments[0]!;
    const listOf = (ns: NonceCommitment[]): SigningCommitment[] => ns.map((n) => ({ identifier: n.identifier, hiding: n.hiding, binding: n.binding }));

    /**
     * The act of `tx` (or a raw message) certified with `approval`, sent to each of `signers` with
     * its nonce `ns[i]`. Returns each kernel's outcome and, when all signed, the signature.
     */
    const attempt = async (act: { kind: 'btc-psbt' | 'raw'; tx: Uint8Array }, approval: ApprovalOf, signers: Member[], ns: NonceCommitment[], alter?: Alter) => {
      const messages = gov.transaction(key.keyId, act.kind, act.tx);
      const permit = permitOver(key, messages, gov.permitIndex());
      const lists = [listOf(ns)];
      const certificate = gov.certify(gov.actEntries(permit, lists, Object.fromEntries(ns.map((n) => [n.identifier, [n.counter]])), [], { messages, approval, ...(alter ? { alter } : {}) }));
      const shares: Record<string, Uint8Array> = {};
      const out = await Promise.all(signers.map((m, i) => outcome(m.client.call({
        kind: 'sign', permit, messages, lists, counters: [ns[i]!.counter], ledgerConsumedCounter: 0, certificate,
      }, 'signatureShares').then((r) => {
        shares[r.identifier] = r.sigShares[0]!;
      }))));
      const signature = out.every((o) => o.reason === 'OK')
        ? suiteOf('taproot').frost.aggregate(toPackage(key.public) as never, lists[0] as never, messages[0]!, shares as never)
        : null;
      return { out, signature, message: messages[0]! };
    };
    const refusedWith = async (what: string, act: { kind: 'btc-psbt' | 'raw'; tx: Uint8Array }, approval: ApprovalOf, reason: string, detail: RegExp, nonce: NonceCommitment, alter?: Alter): Promise<void> => {
      const { out } = await attempt(act, approval, [a], [nonce, await presignB()], alter);
      t.equal(out[0]!.reason, reason, what);
      t.match(out[0]!.detail, detail, `${what}: the detail names the cause`);
    };
    // Kernel b's nonce only fills the list; only kernel a is asked in the refusal cases.
    let nb: NonceCommitment | null = null;
    const presignB = async (): Promise<NonceCommitment> => (nb ??= await presign(b));

    const none: ApprovalOf = () => null;
    type Alter = NonNullable<Parameters<Governance['actEntries']>[4]>['alter'];
    const approvedBy = (...signers: typeof gov.approvers): ApprovalOf => (x) => gov.approve(x, signers);
    const na = await presign(a);
    const psbt = (to: string, amount: bigint) => ({ kind: 'btc-psbt' as const, tx: spend(to, amount) });

    // What the act says: the custodian's signed request and the kernel's own parse (kernel/act-check.ts),
    // on an act a "majority" certified and the policy would allow.
    const signedOver = (x: { opId: string; act: Act; request: SignedActRequest | null }, tx: Uint8Array) => ({
      ...x, act: { ...x.act, tx }, request: signActRequest({ ...x.request!.body, tx }, gov.custodian.secretKey),
    });
    await refusedWith('no custodian request', psbt(PAYEE, 40_000n), none, 'REQUEST_UNSIGNED', /./, na, (x) => ({ ...x, request: null }));
    await refusedWith('a forged custodian signature', psbt(PAYEE, 40_000n), none, 'REQUEST_SIGNATURE_INVALID', /./, na, (x) => ({ ...x, request: { ...x.request, signature: Uint8Array.from(x.request.signature, (b, i) => (i === 0 ? b ^ 1 : b)) } }));
    await refusedWith('a transaction that does not parse, signed by the custodian', psbt(PAYEE, 40_000n), none, 'TX_UNPARSEABLE', /./, na, (x) => signedOver(x, new Uint8Array(randomBytes(120))));
    await refusedWith('another transaction than the messages the permit names, signed by the custodian', psbt(PAYEE, 40_000n), none, 'TX_MESSAGES_MISMATCH', /messageDigest is not the digest/, na, (x) => signedOver(x, spend(PAYEE, 41_000n)));

    // Policy refusals: the custodian asked, a "majority" certified, the history-free rules say no.
    await refusedWith('over every per-act cap: no rule matches (default deny)', psbt(PAYEE, 300_000n), approvedBy(alice, bob), 'KERNEL_POLICY_REFUSED', /^no rule \(POLICY_NO_RULE\)/, na);
    await refusedWith('a deny-listed destination', psbt(DENIED, 10_000n), approvedBy(alice, bob), 'KERNEL_POLICY_REFUSED', /^rule deny-listed \(POLICY_BLOCKED\)/, na);
    await refusedWith('a raw act no rule names', { kind: 'raw', tx: new TextEncoder().encode('attest: anything') }, approvedBy(alice, bob), 'KERNEL_POLICY_REFUSED', /POLICY_NO_RULE/, na);

    // Approvals the rule large-approved (2 of alice, bob; 1 h) requires.
    const large = () => psbt(PAYEE, 150_000n);
    await refusedWith('no approval', large(), none, 'APPROVALS_MISSING', /^rule large-approved needs 2 approvals of pair: the act carries no approval/, na);
    await refusedWith('one approver', large(), approvedBy(alice), 'APPROVALS_MISSING', /QUORUM_NOT_MET/, na);
    await refusedWith('one approver signing twice', large(), (x) => {
      const d = gov.approve(x, [alice]);
      return { ...d, approvals: [d.approvals[0]!, d.approvals[0]!] } as GovernanceDecision;
    }, 'APPROVALS_MISSING', /PAYLOAD_REJECTED: approver alice signed twice/, na);
    await refusedWith('a governor outside the rule\'s group counts for nothing', large(), approvedBy(alice, carol), 'APPROVALS_MISSING', /1 count: 1 member of pair signed \(alice\); not members, not counted: carol/, na);
    const mallory = makeApproverKey('mallory');
    await refusedWith('a key off the roster', large(), approvedBy(alice, mallory), 'APPROVALS_MISSING', /UNKNOWN_APPROVER/, na);
    await refusedWith('an approval of another act', large(), (x) => gov.approve({ opId: 'another-act', act: { ...x.act, tx: spend(PAYEE, 150_000n) } }, [alice, bob]), 'APPROVALS_MISSING', /BINDING_MISMATCH/, na);
    await refusedWith('an approval over another display', large(), (x) => gov.approve(x, [alice, bob], { action: { kind: 'ActApproved', opId: x.opId, actCid: actCid(x.act), displayHash: new Uint8Array(32).fill(7) } }), 'APPROVALS_MISSING', /another display/, na);
    await refusedWith('an approval older than the rule\'s time to live', large(), (x) => gov.approve(x, [alice, bob], { issuedMs: gov.stampMs - 2 * HOUR, expiresMs: gov.stampMs + HOUR }), 'APPROVALS_MISSING', /older than 1h/, na);
    await refusedWith('an expired approval', large(), (x) => gov.approve(x, [alice, bob], { issuedMs: gov.stampMs - 3 * HOUR, expiresMs: gov.stampMs - HOUR }), 'APPROVALS_MISSING', /DECISION_EXPIRED/, na);
    await refusedWith('a forged approver signature', large(), (x) => {
      const d = gov.approve(x, [alice, bob]);
      const sig = Uint8Array.from(d.approvals[1]!.signature);
      sig[0]! ^= 1;
      return { ...d, approvals: [d.approvals[0]!, { ...d.approvals[1]!, signature: sig }] };
    }, 'APPROVALS_MISSING', /SIGNATURE_INVALID/, na);

    // With its approvals the act signs, with the very nonce every refusal above left unconsumed.
    const ok = await attempt(large(), approvedBy(alice, bob), [a, b], [na, await presignB()]);
    nb = null;
    t.same(ok.out.map((o) => o.reason), ['OK', 'OK'], 'with two approvals of the group, both kernels sign');
    t.ok(ok.signature !== null && independentVerify('taproot', key.public.commitments[0]!, ok.message, ok.signature), 'and the signature verifies under the group key (BIP 340)');

    // Rates are the ledger's: a count-1 window does not stop the kernel from signing two small acts.
    for (const i of [1, 2]) {
      const small = await attempt(psbt(PAYEE, 40_000n), none, [a, b], [await presign(a), await presign(b)]);
      t.same(small.out.map((o) => o.reason), ['OK', 'OK'], `small act ${i} signs without approvals (its window is judged by the ledger)`);
    }
  });
}
