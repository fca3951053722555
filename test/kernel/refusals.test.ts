/**
 * The refusal matrix: each way a signing step can lack authority, and the reason code the kernel
 * answers with over its socket. Every refusal happens before the nonce is consumed, so the same
 * presigned nonce still signs once the step is properly authorized. Run in both profiles.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { makeApproverKey } from '../../ledger/decision.js';
import { messagesDigest } from '../../ledger/tx/messages.js';
import type { RequestBody, NonceCommitment } from '../../kernel/wire.js';
import { rid } from '../../ledger/scenario.js';
import {
  Governance, PROFILES, reasonOf, runDkg, setupKernel, startKernel, tempDir, memberOf, type KernelProcess, type Member,
} from './harness.js';

for (const profile of PROFILES) {
  t.test(`refusal matrix (${profile})`, { timeout: 600_000 }, async (t) => {
    const { dir, cleanup } = tempDir(`refuse-${profile}`);
    const gov = new Governance();
    const procs: KernelProcess[] = [];
    t.teardown(async () => {
      for (const p of procs) await p.stop();
      cleanup();
    });
    for (const id of ['n1', 'n2']) procs.push(await startKernel(setupKernel(dir, id, profile, gov)));
    const [a, b] = procs.map(memberOf) as [Member, Member];

    // Authorized but not yet activated: signing is refused (key exists != key is authority).
    const key = await runDkg(gov, [a, b], 'key-m', 'ed25519', 2, false);
    const presign = async (m: Member, count = 1): Promise<NonceCommitment[]> =>
      (await m.client.call({ kind: 'nonces', keyId: key.keyId, keyEpoch: 0, count }, 'nonceCommitments')).commitments;
    const [na] = await presign(a, 1);
    const [nb] = await presign(b, 1);
    const commitments = [na!, nb!].map((n) => ({ identifier: n.identifier, hiding: n.hiding, binding: n.binding }));
    const message = Buffer.from('transfer 5 units to treasury');
    const signBody = (over: Partial<{ keyEpoch: number; requestId: string; digest: Uint8Array; counter: number; ledgerIndex: number }> = {}): RequestBody => ({
      kind: 'sign',
      permit: {
        keyId: key.keyId, keyEpoch: over.keyEpoch ?? 0, requestId: over.requestId ?? randomBytes(16).toString('hex'),
        messageDigest: over.digest ?? messagesDigest([message]), ledgerIndex: over.ledgerIndex ?? gov.permitIndex(),
      },
      messages: [message], lists: [commitments], counters: [over.counter ?? na!.counter], ledgerConsumedCounter: 0,
    });
    // Each request carries the certificate of the act and signing set its own fields name, as a
    // daemon's would (test/kernel/certificate.test.ts tries requests whose certificate does not fit).
    const sign = (body: RequestBody): Promise<string> => reasonOf(a.client.call(gov.certified(body), 'signatureShares'));
    const govern = async (d: ReturnType<Governance['decide']>): Promise<void> => {
      for (const m of [a, b]) await m.client.call({ kind: 'governance', decisions: [d] }, 'governance');
    };

    t.equal(await sign(signBody()), 'KEY_NOT_ACTIVE', 'key generated but not activated');
    await govern(gov.decide({ kind: 'KeyActivated', keyId: key.keyId, keyEpoch: 0, keyReadyCid: randomBytes(32) }));

    // The matrix.
    const noPermit: RequestBody = { ...(signBody() as Extract<RequestBody, { kind: 'sign' }>) };
    delete (noPermit as { permit?: unknown }).permit;
    t.equal(await sign(noPermit), 'PERMIT_MISSING', 'no permit');
    t.equal(await sign(signBody({ keyEpoch: 2 })), 'STALE_EPOCH', 'wrong key epoch');
    t.equal(await sign(signBody({ ledgerIndex: 1 })), 'STALE_EPOCH', 'permit from before the activation');
    t.equal(await sign(signBody({ digest: messagesDigest([Buffer.from('transfer 500 units elsewhere')]) })), 'DIGEST_MISMATCH', 'wrong digest');
    t.equal(await reasonOf(a.client.call({ kind: 'dkgRound2', ceremonyId: 'no-such-ceremony', round1: [{ identifier: na!.identifier, commitment: [na!.hiding], proofOfKnowledge: new Uint8Array(64) }] }, 'dkgRound2')), 'UNKNOWN_SESSION', 'unknown session (DKG)');
    t.equal(await reasonOf(a.client.call({ kind: 'redealFinish', ceremonyId: 'no-such-ceremony', deals: [0, 1].map(() => ({ dealer: na!.identifier, commitments: [na!.hiding], package: { sender: na!.identifier, recipient: na!.identifier, enc: new Uint8Array(32), ciphertext: new Uint8Array(48) } })) }, 'keyPackage')), 'UNKNOWN_SESSION', 'unknown session (redeal)');

    // Ceremonies need their own decisions.
    const committee = [a, b].map((m) => ({ identifier: key.identifiers[m.nodeId]!, nodeId: m.nodeId, transportPublicKey: m.transportPublicKey }));
    t.equal(await reasonOf(a.client.call({ kind: 'dkgBegin', ceremonyId: 'c-x', keyId: 'key-unauthorized', suite: 'ed25519', min: 2, participants: committee, identifier: committee[0]!.identifier }, 'dkgRound1')), 'PERMIT_MISSING', 'DKG without a DkgAuthorized decision');
    t.equal(await reasonOf(a.client.call({
      kind: 'redealBegin', ceremonyId: 'c-y', keyId: key.keyId, fromEpoch: 0, toEpoch: 1, dealers: committee.map((c) => c.identifier), min: 2, committee,
      suite: 'ed25519', current: key.public, identifier: committee[0]!.identifier,
    }, 'redealDealt')), 'PERMIT_MISSING', 'refresh without a KeyRefreshed decision');

    // Freeze and fencing come from signed decisions (and the daemon may fence, never unfence).
    await govern(gov.decide({ kind: 'EmergencyFreeze', reason: 'incident 42' }));
    t.equal(await sign(signBody()), 'FROZEN', 'frozen cluster');
    await govern(gov.decide({ kind: 'Unfreeze' }));
    await a.client.call({ kind: 'fence', passport: 'p-1', reason: 'split brain seen at term 7' }, 'governance');
    t.equal(await sign(signBody()), 'SPLIT_BRAIN_FENCED', 'fenced node');
    await govern(gov.decide({ kind: 'NodeRebound', nodeId: 'n1', passport: 'p-2' }));
    await govern(gov.decide({ kind: 'NodeFenced', nodeId: 'n1', passport: 'p-2', reason: 'leaked identity key' }));
    t.equal(await sign(signBody()), 'SPLIT_BRAIN_FENCED', 'a verified NodeFenced decision fences the kernel');
    await govern(gov.decide({ kind: 'NodeRebound', nodeId: 'n1', passport: 'p-3' }));

    // Decisions the kernel will not follow.
    t.equal(await reasonOf(a.client.call({ kind: 'governance', decisions: [gov.decide({ kind: 'EmergencyFreeze', reason: 'x' }, [makeApproverKey('mallory'), makeApproverKey('trent')])] }, 'governance')), 'UNKNOWN_APPROVER', 'a freeze signed by strangers is refused');
    t.equal(await reasonOf(a.client.call({ kind: 'governance', decisions: [gov.decide({ kind: 'EmergencyFreeze', reason: 'y' }, [gov.approvers[0]!, gov.approvers[1]!])] }, 'governance')), 'BINDING_MISMATCH', 'a decision that skips its predecessor is refused');

    // Finally the same nonce signs once the step is authorized, and only once.
    const good = signBody({ requestId: rid('r-good') });
    t.equal(await sign(good), 'OK', 'authorized step signs with the nonce every refusal left intact');
    const first = await a.client.call(gov.certified(good), 'signatureShares');
    t.same(Buffer.from((await a.client.call(gov.certified(good), 'signatureShares')).sigShares[0]!), Buffer.from(first.sigShares[0]!), 'the identical request again gets the same share (K4)');
    const goodSign = good as Extract<RequestBody, { kind: 'sign' }>;
    t.equal(await sign({ ...goodSign, lists: [[...commitments].reverse()] }), 'STEP_PERMIT_REUSED', 'reused permit for another commitment list');
    const six = Buffer.from('transfer 6 units to treasury');
    t.equal(await sign({ ...goodSign, messages: [six], permit: { ...goodSign.permit, messageDigest: messagesDigest([six]) } }), 'STEP_PERMIT_REUSED', 'reused permit for another message');
    t.equal(await sign({ ...goodSign, messages: [six] }), 'DIGEST_MISMATCH', 'another message under the used permit\'s own digest');
    t.equal(await sign(signBody({ requestId: rid('r-other') })), 'NONCE_REUSED', 'reused nonce commitment');
    const [fresh] = await presign(a, 1);
    t.equal(await sign(signBody({ requestId: rid('r-good'), counter: fresh!.counter })), 'STEP_PERMIT_REUSED', 'a used permit stays used with a fresh nonce');
  });
}
