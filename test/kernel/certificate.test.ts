/**
 * The kernel's own check of what a signature rests on (kernel/certificate.ts), on real kernel
 * processes of both profiles: a sign request is refused unless it carries a checkpoint a majority
 * of the voters the kernel follows cosigned, with the act's ActSubmitted and ActSigningSetFixed
 * entries proven in it, for exactly the request's signing set and counters, under the permit
 * those entries make. Each refusal comes before the nonce is touched: the same nonce signs once
 * the request is properly certified. The voters follow NodeAdded and NodeRemoved decisions.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import type { NonceCommitment } from '../../kernel/wire.js';
import { incarnationExtensions, type EntryCertificate } from '../../ledger/tlog/ledger-log.js';
import type { Kernel } from '../../kernel/kernel.js';
import type { ActSubmittedEvent } from '../../kernel/certificate.js';
import { CustodyError } from '../../proto/errors.js';
import { rid } from '../../ledger/scenario.js';
import {
  Governance, PROFILES, openInProcess, permitOver, reasonOf, runDkg, setupKernel, startKernel, tempDir, memberOf, type KernelProcess, type Member, type SignBody,
} from './harness.js';

for (const profile of PROFILES) {
  t.test(`a kernel signs only what a majority of its voters certified (${profile})`, { timeout: 600_000 }, async (t) => {
    const { dir, cleanup } = tempDir(`certificate-${profile}`);
    const gov = new Governance();
    const procs: KernelProcess[] = [];
    t.teardown(async () => {
      for (const p of procs) await p.stop();
      cleanup();
    });
    for (const id of ['n1', 'n2']) procs.push(await startKernel(setupKernel(dir, id, profile, gov)));
    const [a, b] = procs.map(memberOf) as [Member, Member];
    const key = await runDkg(gov, [a, b], 'key-cert', 'ed25519', 2);
    const govern = async (d: ReturnType<Governance['decide']>): Promise<void> => {
      for (const m of [a, b]) await m.client.call({ kind: 'governance', decisions: [d] }, 'governance');
    };
    const presign = async (m: Member): Promise<NonceCommitment> => (await m.client.call({ kind: 'nonces', keyId: key.keyId, keyEpoch: 0, count: 1 }, 'nonceCommitments')).commitments[0]!;
    const [na, nb] = [await presign(a), await presign(b)];
    const lists = [[na, nb].map((n) => ({ identifier: n.identifier, hiding: n.hiding, binding: n.binding }))];
    const message = Buffer.from('pay 5 to treasury');
    const permit = permitOver(key, [message], gov.permitIndex());
    const good: SignBody = { kind: 'sign', permit, messages: [message], lists, counters: [na.counter], ledgerConsumedCounter: 0 };
    const counters = { [na.identifier]: [na.counter], [nb.identifier]: [nb.counter] };
    const entries = () => gov.actEntries(permit, lists, counters, [], { messages: [message] });
    const sign = (certificate: EntryCertificate | null): Promise<string> => reasonOf(a.client.call({ ...good, certificate }, 'signatureShares'));
    const [v1, v2, v3] = gov.voters as [Governance['voters'][number], Governance['voters'][number], Governance['voters'][number]];

    t.equal(await sign(null), 'CHECKPOINT_NOT_CERTIFIED', 'no certificate');
    t.equal(await sign(gov.certify(entries(), [v1])), 'CHECKPOINT_NOT_CERTIFIED', 'a note cosigned by one of the three voters');
    const strangers = [v1, v2].map((v) => ({ id: v.id, seed: new Uint8Array(randomBytes(32)) }));
    t.equal(await sign(gov.certify(entries(), strangers)), 'NOTE_SIGNATURE_INVALID', 'cosignatures under the voters\' names by other keys');

    // Inclusions that do not prove what they claim.
    const real = gov.certify(entries());
    const [sub, set] = real.inclusions as [EntryCertificate['inclusions'][number], EntryCertificate['inclusions'][number]];
    const otherSet = gov.actEntries(permit, lists, { [na.identifier]: [na.counter + 7] }, [], { messages: [message] })[1];
    t.equal(await sign({ ...real, inclusions: [sub, { ...set, entry: otherSet }] }), 'ENTRY_NOT_INCLUDED', 'a forged entry under a real proof');
    t.equal(await sign({ ...real, inclusions: [sub, { ...set, leafIndex: sub.leafIndex }] }), 'ENTRY_NOT_INCLUDED', 'a real entry at another leaf');
    t.equal(await sign({ ...real, inclusions: [sub, { ...set, proof: set.proof.slice(1) }] }), 'ENTRY_NOT_INCLUDED', 'a shortened proof');
    t.equal(await sign({ ...real, inclusions: [set, sub] }), 'ENTRY_NOT_INCLUDED', 'the entries swapped: [0] is not an ActSubmitted');
    t.equal(await sign({ ...real, inclusions: [sub] }), 'ENTRY_NOT_INCLUDED', 'the signing set left out');

    // Certified entries that are not this request's.
    t.equal(await sign(gov.certify(gov.actEntries(permit, lists, counters, [], { messages: [message], setOpId: rid(`another-act`) }))), 'SIGNING_SET_MISMATCH', 'a signing set fixed for another act');
    t.equal(await sign(gov.certify(gov.actEntries(permit, lists, { ...counters, [na.identifier]: [na.counter + 1] }, [], { messages: [message] }))), 'SIGNING_SET_MISMATCH', 'counters that are not this kernel\'s in the set');
    const strangerList = [[lists[0]![0]!, { identifier: lists[0]![1]!.identifier, hiding: lists[0]![0]!.binding, binding: lists[0]![0]!.hiding }]];
    t.equal(await sign(gov.certify(gov.actEntries(permit, strangerList, counters, [], { messages: [message] }))), 'SIGNING_SET_MISMATCH', 'a set whose other member\'s commitments differ from the request\'s');
    const elsewhere = permitOver(key, [message], permit.ledgerIndex, 0, randomBytes(16).toString('hex'));
    t.equal(await sign(gov.certify(gov.actEntries(elsewhere, lists, counters, [], { messages: [message] }))), 'BINDING_MISMATCH', 'entries of another act than the request\'s permit names');
    const early = permitOver(key, [message], 1, 0, permit.requestId);
    t.equal(await sign(gov.certify(gov.actEntries(early, lists, counters, [], { messages: [message] }))), 'STALE_EPOCH', 'a signing set fixed before the key was activated');

    // The voters follow governance: a removed node no longer counts, an added one does.
    await govern(gov.decide({ kind: 'NodeRemoved', nodeId: v3.id }));
    t.equal(await sign(gov.certify(entries(), [v1, v3])), 'CHECKPOINT_NOT_CERTIFIED', 'a note cosigned by a removed node and one voter');
    const v4seed = new Uint8Array(randomBytes(32));
    const v4 = { id: 'v4', seed: v4seed };
    t.equal(await sign(gov.certify(entries(), [v1, v4])), 'CHECKPOINT_NOT_CERTIFIED', 'a node not yet added does not count');
    await govern(gov.decide({ kind: 'NodeAdded', node: { id: 'v4', identityKey: ed25519.getPublicKey(v4seed), passport: 'passport-v4' } }));

    // Every refusal left the nonce untouched: it signs once, under the certificate of v1 and the added v4.
    const ok = await a.client.call({ ...good, certificate: gov.certify(entries(), [v1, v4]) }, 'signatureShares');
    t.equal(ok.sigShares.length, 1, 'a majority of the voters as the kernel follows them (v1, v2, v4) certifies');
    t.equal(await sign(gov.certify(entries(), [v2, v4])), 'OK', 'the identical request under another certified checkpoint gets the stored share');

    // One history: a lying leader made the other honest replica apply a branch that leaves this
    // kernel's history just before the checkpoint it follows; the liar cosigns the branch too, so
    // it is certified by a majority (v2 and v4 here). Its next act is refused there, however the
    // daemon proves it, and signs on the kernel's own history.
    const followedOf = async (): Promise<number> => (await a.client.call({ kind: 'status' }, 'status')).followed.find((f) => f.incarnation === '')?.size ?? 0;
    const followed = await followedOf();
    t.ok(followed > 1, `the kernel follows the checkpoint it signed under (size ${followed})`);
    const branch = [...gov.leaves.slice(0, followed - 1), new Uint8Array(randomBytes(32))];
    const [na2, nb2] = [await presign(a), await presign(b)];
    const lists2 = [[na2, nb2].map((n) => ({ identifier: n.identifier, hiding: n.hiding, binding: n.binding }))];
    const message2 = Buffer.from('pay 6 to treasury');
    const permit2 = permitOver(key, [message2], gov.permitIndex());
    const good2: SignBody = { kind: 'sign', permit: permit2, messages: [message2], lists: lists2, counters: [na2.counter], ledgerConsumedCounter: 0 };
    const entries2 = () => gov.actEntries(permit2, lists2, { [na2.identifier]: [na2.counter], [nb2.identifier]: [nb2.counter] }, [], { messages: [message2] });
    const onBranch = gov.certify(entries2(), [v2, v4], branch);
    t.equal(await reasonOf(a.client.call({ ...good2, certificate: onBranch }, 'signatureShares')), 'CHECKPOINT_INCONSISTENT', "the branch, with the branch's own consistency proof from the followed size");
    t.equal(await reasonOf(a.client.call({ ...good2, certificate: { ...onBranch, consistency: undefined } }, 'signatureShares')), 'CHECKPOINT_INCONSISTENT', 'the branch without a proof');
    const sameSize = gov.certify(entries2(), [v2, v4], gov.leaves.slice(0, followed - 2));
    t.equal(await reasonOf(a.client.call({ ...good2, certificate: sameSize }, 'signatureShares')), 'CHECKPOINT_INCONSISTENT', 'another root at the followed size (the act in place of the one signed last)');
    const own = await a.client.call({ ...good2, certificate: gov.certify(entries2(), [v2, v4]) }, 'signatureShares');
    t.equal(own.sigShares.length, 1, 'the same act on the kernel\'s own history signs: every refusal left its nonce untouched');
    t.ok(await followedOf() > followed, 'and the kernel follows the later checkpoint');

    // A cluster restored from a backup continues the history on nodes whose trees start at the
    // backup: its checkpoints name its incarnation, and the kernel follows one history there too.
    const incarnation = randomBytes(16).toString('hex');
    const ext = incarnationExtensions(incarnation);
    const [na3, nb3] = [await presign(a), await presign(b)];
    const lists3 = [[na3, nb3].map((n) => ({ identifier: n.identifier, hiding: n.hiding, binding: n.binding }))];
    const message3 = Buffer.from('pay 7 to treasury');
    const permit3 = permitOver(key, [message3], gov.permitIndex());
    const good3: SignBody = { kind: 'sign', permit: permit3, messages: [message3], lists: lists3, counters: [na3.counter], ledgerConsumedCounter: 0 };
    const entries3 = () => gov.actEntries(permit3, lists3, { [na3.identifier]: [na3.counter], [nb3.identifier]: [nb3.counter] }, [], { messages: [message3] });
    const restored = [...gov.leaves];
    const forkOfRestored = [...gov.leaves];
    const firstThere = await a.client.call({ ...good3, certificate: { ...gov.certify(entries3(), [v1, v2], restored, ext), consistency: undefined } }, 'signatureShares');
    t.equal(firstThere.sigShares.length, 1, "the restored incarnation's first certified checkpoint is followed without a proof");
    const listed = (await a.client.call({ kind: 'status' }, 'status')).followed;
    t.same(listed.map((f) => f.incarnation).sort(), ['', incarnation].sort(), 'status lists the checkpoint followed in each incarnation');
    const [na4, nb4] = [await presign(a), await presign(b)];
    const lists4 = [[na4, nb4].map((n) => ({ identifier: n.identifier, hiding: n.hiding, binding: n.binding }))];
    const message4 = Buffer.from('pay 8 to treasury');
    const permit4 = permitOver(key, [message4], gov.permitIndex());
    const good4: SignBody = { kind: 'sign', permit: permit4, messages: [message4], lists: lists4, counters: [na4.counter], ledgerConsumedCounter: 0 };
    const entries4 = () => gov.actEntries(permit4, lists4, { [na4.identifier]: [na4.counter], [nb4.identifier]: [nb4.counter] }, [], { messages: [message4] });
    forkOfRestored.push(new Uint8Array(randomBytes(32)));
    t.equal(await reasonOf(a.client.call({ ...good4, certificate: gov.certify(entries4(), [v1, v2], forkOfRestored, ext) }, 'signatureShares')), 'CHECKPOINT_INCONSISTENT', 'a branch within the restored incarnation is refused');
    t.equal(await reasonOf(a.client.call({ ...good4, certificate: gov.certify(entries4(), [v1, v2], forkOfRestored, incarnationExtensions(randomBytes(16).toString('hex'))) }, 'signatureShares')), 'OK', 'a checkpoint naming yet another incarnation is a restore of its own: followed anew (only nodes restored into it can certify one)');
  });
}

t.test('the act check is called with the certified ActSubmitted and the messages, after the certificate and before any nonce', async (t) => {
  const { dir, cleanup } = tempDir('certificate-seam');
  const gov = new Governance();
  const seen: { opId: string; digest: string; messages: number }[] = [];
  let refuse = true;
  const checkSubmittedAct = (ev: ActSubmittedEvent, _ctx: unknown, messages: readonly Uint8Array[]): void => {
    seen.push({ opId: ev.opId, digest: Buffer.from(ev.act.messageDigest).toString('hex'), messages: messages.length });
    if (refuse) throw new CustodyError('ROLE_NOT_ALLOWED', 'the act check refused this act');
  };
  const ks = [await openInProcess(dir, 'n1', 'software', gov, undefined, { checkSubmittedAct }), await openInProcess(dir, 'n2', 'software', gov)];
  t.teardown(async () => {
    for (const k of ks) await k.close();
    cleanup();
  });
  const member = (id: string, k: Kernel): Member => ({
    nodeId: id, transportPublicKey: k.transportPublicKey,
    client: { call: async (body: never, expect: string) => { const r = await k.handle(body); if (r.kind !== expect) throw Object.assign(new Error(r.kind === 'error' ? r.detail : r.kind), r.kind === 'error' ? { reason: r.reason } : {}); return r; } } as never,
  });
  const [a, b] = [member('n1', ks[0]!.kernel), member('n2', ks[1]!.kernel)];
  const key = await runDkg(gov, [a, b], 'key-seam', 'ed25519', 2);
  const [na] = (await a.client.call({ kind: 'nonces', keyId: key.keyId, keyEpoch: 0, count: 1 }, 'nonceCommitments')).commitments;
  const [nb] = (await b.client.call({ kind: 'nonces', keyId: key.keyId, keyEpoch: 0, count: 1 }, 'nonceCommitments')).commitments;
  const message = Buffer.from('pay 7 to treasury');
  const good: SignBody = { kind: 'sign', permit: permitOver(key, [message], gov.permitIndex()), messages: [message], lists: [[na!, nb!].map((n) => ({ identifier: n.identifier, hiding: n.hiding, binding: n.binding }))], counters: [na!.counter], ledgerConsumedCounter: 0 };
  t.equal(await reasonOf(a.client.call(good, 'signatureShares')), 'CHECKPOINT_NOT_CERTIFIED', 'no certificate: refused before the act check');
  t.equal(seen.length, 0, 'the act check was not reached');
  t.equal(await reasonOf(a.client.call(gov.certified(good), 'signatureShares')), 'ROLE_NOT_ALLOWED', 'the act check\'s refusal is the kernel\'s answer');
  t.same(seen, [{ opId: good.permit.requestId, digest: Buffer.from(good.permit.messageDigest).toString('hex'), messages: 1 }], 'called once, with the certified act and the request\'s messages');
  refuse = false;
  t.equal(await reasonOf(a.client.call(gov.certified(good), 'signatureShares')), 'OK', 'the nonce the refusal left untouched signs once the act check passes');
});
