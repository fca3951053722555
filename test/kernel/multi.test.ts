/**
 * One act, many messages: a kernel signs every message of an act (one BIP 341 sighash per PSBT
 * input, a whole Solana message, raw bytes) in one request under one permit, message i with its
 * own presigned nonce pair counters[i] and commitment list lists[i] (kernel/kernel.ts sign).
 *
 * In-process kernels (the same core the socket serves; test/kernel/replay.test.ts and
 * crash.test.ts cover the socket and kill -9). Every signature is aggregated from the kernels'
 * shares and checked by a verifier independent of the FROST code where one exists (BIP 340
 * Schnorr from @noble/curves for taproot, OpenSSL Ed25519 for ed25519). The attacker's view:
 * every way to change the messages, counters or lists of a permitted request is refused before
 * a nonce is touched, and no nonce ever releases shares for two different things.
 */
import t from 'tap';
import fc from 'fast-check';
import type { Test } from 'tap';
import { randomBytes } from 'node:crypto';
import type { KernelClient } from '../../kernel/client.js';
import type { CrashPoint, Kernel } from '../../kernel/kernel.js';
import { suiteOf, type SuiteName } from '../../kernel/suites.js';
import type { NonceCommitment, RequestBody, ResponseBody, SigningCommitment } from '../../kernel/wire.js';
import { messagesDigest } from '../../ledger/tx/messages.js';
import { kernel as limits, tx as txLimits } from '../../proto/limits.js';
import {
  following, Governance, independentVerify, openInProcess, permitOver, PROFILES, reasonOf, runDkg, signManyAcross, syntheticActCheck, tempDir, toPackage,
  type KeyResult, type Member, type Profile,
} from './harness.js';

type SignBody = Extract<RequestBody, { kind: 'sign' }>;

/** An in-process kernel as a signing member (the same calls a KernelClient makes over the socket). */
function memberIn(nodeId: string, k: Kernel): Member {
  const client = {
    async call(body: RequestBody, expect: ResponseBody['kind']): Promise<ResponseBody> {
      const r = await k.handle(body);
      if (r.kind !== expect) throw new Error(`expected ${expect}, got ${r.kind}`);
      return r;
    },
  };
  return { nodeId, client: following(client as unknown as KernelClient), transportPublicKey: k.transportPublicKey };
}

/** Three in-process kernels n1..n3 of one profile, and a switch to crash one at a named point. */
async function cluster(t: Test, profile: Profile): Promise<{ gov: Governance; members: Member[]; kernels: Kernel[]; crashAt: (p: CrashPoint | null) => void }> {
  const { dir, cleanup } = tempDir(`multi-${profile}`);
  const gov = new Governance();
  let armed: CrashPoint | null = null;
  const crashPoint = (p: CrashPoint): void => {
    if (p === armed) {
      armed = null;
      throw new Error(`crashed at ${p}`);
    }
  };
  const ks: Awaited<ReturnType<typeof openInProcess>>[] = [];
  for (const id of ['n1', 'n2', 'n3']) ks.push(await openInProcess(dir, id, profile, gov, id === 'n1' ? crashPoint : undefined, { checkSubmittedAct: syntheticActCheck }));
  t.teardown(async () => {
    for (const k of ks) await k.close();
    cleanup();
  });
  return { gov, members: ks.map((k, i) => memberIn(`n${i + 1}`, k.kernel)), kernels: ks.map((k) => k.kernel), crashAt: (p) => (armed = p) };
}

const listOf = (ns: readonly NonceCommitment[]): SigningCommitment[] => ns.map((n) => ({ identifier: n.identifier, hiding: n.hiding, binding: n.binding }));

async function presign(m: Member, key: KeyResult, count: number): Promise<NonceCommitment[]> {
  return (await m.client.call({ kind: 'nonces', keyId: key.keyId, keyEpoch: 0, count }, 'nonceCommitments')).commitments;
}

async function keyState(k: Kernel, keyId: string): Promise<{ consumed: number; available: number }> {
  const s = await k.handle({ kind: 'status' });
  if (s.kind !== 'status') throw new Error('no status');
  const info = s.keys.find((x) => x.keyId === keyId);
  if (info === undefined) throw new Error(`no key ${keyId}`);
  return { consumed: info.consumedCounter, available: info.commitmentsAvailable };
}

/** Each message's signature verifies under the group key, and under no other message of the act. */
function verifyAll(t: Test, suite: SuiteName, key: KeyResult, messages: Uint8Array[], signatures: Uint8Array[], what: string): void {
  const group = key.public.commitments[0]!;
  t.equal(signatures.length, messages.length, `${what}: one signature per message`);
  for (const [i, m] of messages.entries()) {
    t.ok(independentVerify(suite, group, m, signatures[i]!), `${what}: message ${i} (${m.length} bytes) verifies`);
    const other = messages[(i + 1) % messages.length]!;
    if (messages.length > 1 && Buffer.compare(Buffer.from(other), Buffer.from(m)) !== 0) {
      t.notOk(independentVerify(suite, group, other, signatures[i]!), `${what}: message ${i}'s signature does not verify message ${(i + 1) % messages.length}`);
    }
  }
}

const SUITES: SuiteName[] = ['taproot', 'secp256k1', 'ed25519'];

t.test('N messages in one request, every suite: each signature verifies over its own message', { timeout: 600_000 }, async (t) => {
  const { gov, members } = await cluster(t, 'software');
  const [a, b, c] = members as [Member, Member, Member];
  for (const suite of SUITES) {
    const key = await runDkg(gov, [a, b, c], `k-${suite}`, suite, 2);
    for (const n of [1, 2, 5]) {
      // Taproot and secp256k1 acts sign 32-byte sighashes; the suites sign any length.
      const messages = Array.from({ length: n }, () => randomBytes(32));
      const out = await signManyAcross(gov, [a, c], key, messages);
      verifyAll(t, suite, key, messages, out.signatures, `${suite}, ${n} message(s)`);
      const counters = out.counters['n1']!;
      t.ok(counters.every((x, i) => i === 0 || x > counters[i - 1]!), `${suite}, ${n}: n1's counters rise`);
    }
    // All three signers, in another order than the list's.
    const messages = [randomBytes(32), randomBytes(32), randomBytes(32)];
    verifyAll(t, suite, key, messages, (await signManyAcross(gov, [c, b, a], key, messages)).signatures, `${suite}, 3 signers`);
  }
});

t.test('a Solana-sized message (1,167 bytes) and a mixed act sign and verify', { timeout: 300_000 }, async (t) => {
  const { gov, members } = await cluster(t, 'software');
  const [a, b] = members as [Member, Member];
  for (const suite of SUITES) {
    const key = await runDkg(gov, [a, b], `long-${suite}`, suite, 2);
    const long = randomBytes(txLimits.solanaMessageBytesMax);
    t.equal(long.length, 1167, 'the largest Solana message');
    verifyAll(t, suite, key, [long], (await signManyAcross(gov, [a, b], key, [long])).signatures, `${suite}, one 1,167-byte message`);
    const mixed = [randomBytes(1), long, randomBytes(txLimits.rawBytesMax)];
    verifyAll(t, suite, key, mixed, (await signManyAcross(gov, [a, b], key, mixed)).signatures, `${suite}, 1 + 1,167 + 4,096 bytes`);
  }
});

t.test('the largest act: 64 messages with one request per kernel', { timeout: 300_000 }, async (t) => {
  const { gov, members, kernels } = await cluster(t, 'software');
  const [a, b] = members as [Member, Member];
  const key = await runDkg(gov, [a, b], 'k-64', 'taproot', 2);
  const messages = Array.from({ length: txLimits.messagesPerActMax }, () => randomBytes(32));
  const out = await signManyAcross(gov, [a, b], key, messages);
  t.ok(out.signatures.every((s, i) => independentVerify('taproot', key.public.commitments[0]!, messages[i]!, s)), `all ${messages.length} BIP 340 signatures verify`);
  const st = await keyState(kernels[0]!, key.keyId);
  t.equal(st.consumed, out.counters['n1']!.at(-1), 'the consumed counter is the last counter of the request');
  t.equal(st.available, 0, 'every nonce of the act is spent');
  const tooMany = [...messages, randomBytes(32)];
  t.throws(() => messagesDigest(tooMany), 'no permit can name more messages than an act carries');
});

for (const profile of PROFILES) {
  t.test(`every change to a permitted request is refused before a nonce is touched (${profile})`, { timeout: 600_000 }, async (t) => {
    const { gov, members, kernels } = await cluster(t, profile);
    const [a, b, c] = members as [Member, Member, Member];
    const victim = kernels[0]!;
    const key = await runDkg(gov, [a, b, c], 'k-attack', 'ed25519', 2);
    const sign = (body: RequestBody): Promise<string> => reasonOf(a.client.call(gov.certified(body), 'signatureShares'));

    // One permitted act of three messages: a's and b's presigned nonces, one per message.
    const messages = [Buffer.from('input 0: 0.5 BTC to bc1q...treasury'), Buffer.from('input 1: change'), Buffer.from('input 2: fee')];
    const mine = await presign(a, key, 3);
    const theirs = await presign(b, key, 3);
    const strangers = await presign(c, key, 3);
    const spare = await presign(a, key, 1);
    const lists = messages.map((_, i) => listOf([mine[i]!, theirs[i]!]));
    const good: SignBody = { kind: 'sign', permit: permitOver(key, messages, gov.permitIndex()), messages, lists, counters: mine.map((n) => n.counter), ledgerConsumedCounter: 0 };
    const before = await keyState(victim, key.keyId);
    const swap = <T>(xs: readonly T[], i: number, j: number): T[] => xs.map((x, k) => (k === i ? xs[j]! : k === j ? xs[i]! : x));

    const variants: [string, SignBody, string][] = [
      ['a message swapped for another', { ...good, messages: [messages[0]!, Buffer.from('input 1: 0.5 BTC to attacker'), messages[2]!] }, 'DIGEST_MISMATCH'],
      ['two messages reordered', { ...good, messages: swap(messages, 0, 1) }, 'DIGEST_MISMATCH'],
      ['two messages reordered with their lists and counters', { ...good, messages: swap(messages, 0, 2), lists: swap(lists, 0, 2), counters: swap(good.counters, 0, 2) }, 'PAYLOAD_REJECTED'],
      ['a message added (with a list and a counter)', { ...good, messages: [...messages, Buffer.from('input 3')], lists: [...lists, listOf([spare[0]!, theirs[0]!])], counters: [...good.counters, spare[0]!.counter] }, 'DIGEST_MISMATCH'],
      ['a message dropped (with its list and counter)', { ...good, messages: messages.slice(0, 2), lists: lists.slice(0, 2), counters: good.counters.slice(0, 2) }, 'DIGEST_MISMATCH'],
      ['counters not ascending', { ...good, counters: swap(good.counters, 1, 2), lists: swap(lists, 1, 2) }, 'PAYLOAD_REJECTED'],
      ['a counter repeated', { ...good, counters: [good.counters[0]!, good.counters[0]!, good.counters[2]!], lists: [lists[0]!, lists[0]!, lists[2]!] }, 'NONCE_REUSED'],
      ['list 1 names another counter\'s commitment for this kernel', { ...good, lists: [lists[0]!, listOf([mine[2]!, theirs[1]!]), lists[2]!] }, 'BINDING_MISMATCH'],
      ['list 2 names another kernel\'s commitment for this kernel', { ...good, lists: [lists[0]!, lists[1]!, [{ ...listOf([theirs[2]!])[0]!, identifier: mine[2]!.identifier }, listOf([theirs[2]!])[0]!]] }, 'BINDING_MISMATCH'],
      ['list 1 names another signer set', { ...good, lists: [lists[0]!, listOf([mine[1]!, strangers[1]!]), lists[2]!] }, 'PAYLOAD_REJECTED'],
      ['list 1 names an extra signer', { ...good, lists: [lists[0]!, listOf([mine[1]!, theirs[1]!, strangers[1]!]), lists[2]!] }, 'PAYLOAD_REJECTED'],
      ['fewer lists than messages', { ...good, lists: lists.slice(0, 2) }, 'PAYLOAD_REJECTED'],
      ['more counters than messages', { ...good, counters: [...good.counters, spare[0]!.counter] }, 'PAYLOAD_REJECTED'],
      ['fewer counters than messages', { ...good, counters: good.counters.slice(0, 2) }, 'PAYLOAD_REJECTED'],
      ['an empty message list', { ...good, messages: [], lists: [], counters: [] }, 'PAYLOAD_REJECTED'],
      ['an empty message', { ...good, messages: [messages[0]!, new Uint8Array(0), messages[2]!] }, 'PAYLOAD_REJECTED'],
      ['a message over the kernel bound', { ...good, messages: [messages[0]!, new Uint8Array(limits.messageBytesMax + 1), messages[2]!] }, 'PAYLOAD_REJECTED'],
      ['a counter with no presigned nonce', { ...good, counters: [good.counters[0]!, good.counters[1]!, spare[0]!.counter + 1000] }, 'PAYLOAD_REJECTED'],
    ];
    for (const [what, body, reason] of variants) t.equal(await sign(body), reason, what);
    t.same(await keyState(victim, key.keyId), before, 'the refusals consumed nothing');

    const first = await a.client.call(gov.certified(good), 'signatureShares');
    t.same(first.counters, good.counters, 'the shares come with the counters that made them');
    const afterFirst = await keyState(victim, key.keyId);
    t.equal(afterFirst.consumed, good.counters[2], 'consumed up to the last counter');
    t.equal(afterFirst.available, before.available - 3, 'exactly the act\'s three nonces are spent (the spare one, above them, stays)');

    const again = await a.client.call(gov.certified(good), 'signatureShares');
    t.same(again.sigShares.map((x) => Buffer.from(x)), first.sigShares.map((x) => Buffer.from(x)), 'the identical request again returns identical shares');
    t.same(await keyState(victim, key.keyId), afterFirst, 'and consumes nothing new');

    const otherShares = await b.client.call(gov.certified({ ...good, counters: theirs.map((n) => n.counter) }), 'signatureShares');
    const frost = suiteOf('ed25519').frost;
    for (const [i, m] of messages.entries()) {
      const sig = frost.aggregate(toPackage(key.public) as never, lists[i] as never, m, { [first.identifier]: again.sigShares[i]!, [otherShares.identifier]: otherShares.sigShares[i]! } as never);
      t.ok(independentVerify('ed25519', key.public.commitments[0]!, m, sig), `replayed share ${i} completes a valid signature`);
    }

    // Under the used permit, anything but the identical request.
    const fresh = await presign(a, key, 3);
    const freshLists = messages.map((_, i) => listOf([fresh[i]!, theirs[i]!]));
    t.equal(await sign({ ...good, lists: freshLists, counters: fresh.map((n) => n.counter) }), 'STEP_PERMIT_REUSED', 'fresh nonces under a used permit');
    // A signing set lists its members in one order for every message (ledger/events.ts listFor), so
    // no certificate names one list in another order: refused as not the fixed set.
    t.equal(await sign({ ...good, lists: [lists[0]!, [...lists[1]!].reverse(), lists[2]!] }), 'SIGNING_SET_MISMATCH', 'one list in another order under a used permit');
    t.equal(await sign({ ...good, permit: { ...good.permit, ledgerIndex: good.permit.ledgerIndex + 1 } }), 'STEP_PERMIT_REUSED', 'the permit at another ledger index');
    const two = messages.slice(0, 2);
    t.equal(await sign({ ...good, messages: two, lists: lists.slice(0, 2), counters: good.counters.slice(0, 2), permit: { ...good.permit, messageDigest: messagesDigest(two) } }), 'STEP_PERMIT_REUSED', 'a subset of the messages under the used permit id');

    // Under a new permit, the consumed counters stay consumed.
    const reuse: SignBody = { ...good, permit: permitOver(key, messages, gov.permitIndex()) };
    t.equal(await sign(reuse), 'NONCE_REUSED', 'the act\'s counters under a new permit');
    t.equal(await sign({ ...reuse, counters: [good.counters[2]!, fresh[1]!.counter, fresh[2]!.counter], lists: [listOf([mine[2]!, theirs[0]!]), freshLists[1]!, freshLists[2]!] }), 'NONCE_REUSED', 'a consumed counter first, fresh ones after it');
    t.equal(await sign({ ...reuse, lists: freshLists, counters: fresh.map((n) => n.counter) }), 'OK', 'fresh nonces under a new permit sign');
  });

  t.test(`a crash between signing and consuming never lets one nonce sign two things (${profile})`, { timeout: 600_000 }, async (t) => {
    const { gov, members, kernels, crashAt } = await cluster(t, profile);
    const [a, b] = members as [Member, Member];
    const victim = kernels[0]!;
    const key = await runDkg(gov, [a, b], 'k-crash', 'taproot', 2);
    /** Every share n1 ever released, by its nonce commitment: what it signed. */
    const released = new Map<string, Set<string>>();
    const signA = async (body: SignBody): Promise<string> => {
      try {
        const r = await a.client.call(gov.certified(body), 'signatureShares');
        body.lists.forEach((l, i) => {
          const own = l.find((x) => x.identifier === r.identifier)!;
          const k = Buffer.concat([own.hiding, own.binding]).toString('hex');
          const what = `${Buffer.from(body.messages[i]!).toString('hex')}/${JSON.stringify(l.map((x) => [x.identifier, Buffer.from(x.hiding).toString('hex'), Buffer.from(x.binding).toString('hex')]))}`;
          released.set(k, (released.get(k) ?? new Set()).add(what));
        });
        return 'OK';
      } catch (e) {
        if (e instanceof Error && e.message.startsWith('crashed at')) return 'CRASHED';
        return reasonOf(Promise.reject(e));
      }
    };
    const act = async (n: number) => {
      const mine = await presign(a, key, n);
      const theirs = await presign(b, key, n);
      const lists = mine.map((m, i) => listOf([m, theirs[i]!]));
      const body = (messages: Uint8Array[]): SignBody => ({ kind: 'sign', permit: permitOver(key, messages, gov.permitIndex()), messages, lists, counters: mine.map((m) => m.counter), ledgerConsumedCounter: 0 });
      return { mine, theirs, lists, body };
    };

    // Crash after the shares are computed, before the consuming batch: nothing left, nothing spent.
    const x = await act(3);
    const before = await keyState(victim, key.keyId);
    crashAt('sign:checked');
    const first = x.body([randomBytes(32), randomBytes(32), randomBytes(32)]);
    t.equal(await signA(first), 'CRASHED', 'the kernel died before consuming');
    t.same(await keyState(victim, key.keyId), before, 'no nonce was consumed and no share left');
    // A daemon now aims the same nonces at other messages under another permit: one set of shares leaves.
    const second = x.body([randomBytes(32), randomBytes(32), randomBytes(32)]);
    t.equal(await signA(second), 'OK', 'the untouched nonces sign once');
    t.equal(await signA(x.body([randomBytes(32), randomBytes(32), randomBytes(32)])), 'NONCE_REUSED', 'and never again');
    t.equal(await signA(first), 'NONCE_REUSED', 'not even the crashed request');

    // Crash after the consuming batch, before the reply: the permit answers only the identical request.
    const y = await act(2);
    crashAt('sign:consumed');
    const messages = [randomBytes(32), randomBytes(32)];
    const body = y.body(messages);
    t.equal(await signA(body), 'CRASHED', 'the kernel died after consuming, before replying');
    t.equal((await keyState(victim, key.keyId)).consumed, y.mine[1]!.counter, 'consumed through the last counter');
    t.equal(await signA({ ...body, messages: [messages[1]!, messages[0]!] }), 'DIGEST_MISMATCH', 'the permit\'s messages reordered');
    t.equal(await signA(y.body([randomBytes(32), randomBytes(32)])), 'NONCE_REUSED', 'the nonces under another permit, for other messages');
    t.equal(await signA(body), 'OK', 'the identical request gets the stored shares');
    const stored = await a.client.call(gov.certified(body), 'signatureShares');
    const theirs = await b.client.call(gov.certified({ ...body, counters: y.theirs.map((n) => n.counter) }), 'signatureShares');
    const frost = suiteOf('taproot').frost;
    for (const [i, m] of messages.entries()) {
      const sig = frost.aggregate(toPackage(key.public) as never, y.lists[i] as never, m, { [stored.identifier]: stored.sigShares[i]!, [theirs.identifier]: theirs.sigShares[i]! } as never);
      t.ok(independentVerify('taproot', key.public.commitments[0]!, m, sig), `stored share ${i} completes a BIP 340 signature`);
    }

    t.ok(released.size >= 5, `recorded ${released.size} nonce commitments`);
    t.same([...released.entries()].filter(([, s]) => s.size > 1).map(([k]) => k), [], 'every nonce commitment released shares for one message and list only');
  });
}

t.test('any change to the message list changes the permit digest and is refused (property)', { timeout: 300_000 }, async (t) => {
  const { gov, members, kernels } = await cluster(t, 'software');
  const [a, b] = members as [Member, Member];
  const key = await runDkg(gov, [a, b], 'k-prop', 'ed25519', 2);
  const mine = await presign(a, key, 6);
  const theirs = await presign(b, key, 6);
  const before = await keyState(kernels[0]!, key.keyId);
  const msg = fc.uint8Array({ minLength: 1, maxLength: 64 });
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), by: msg }),
    fc.record({ kind: fc.constant('swap' as const), at: fc.nat(), with: fc.nat() }),
    fc.record({ kind: fc.constant('drop' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), by: msg }),
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), byte: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  );
  let refused = 0;
  await fc.assert(fc.asyncProperty(fc.array(msg, { minLength: 1, maxLength: 5 }), mutation, async (messages, mu) => {
    const sent = messages.map((m) => Uint8Array.from(m));
    const at = mu.at % sent.length;
    if (mu.kind === 'replace') sent[at] = mu.by;
    if (mu.kind === 'swap') [sent[at], sent[mu.with % sent.length]] = [sent[mu.with % sent.length]!, sent[at]!];
    if (mu.kind === 'drop') sent.splice(at, 1);
    if (mu.kind === 'insert') sent.splice(at, 0, mu.by);
    if (mu.kind === 'flip') sent[at]![mu.byte % sent[at]!.length]! ^= 1 << mu.bit;
    const same = sent.length === messages.length && sent.every((m, i) => Buffer.compare(Buffer.from(m), Buffer.from(messages[i]!)) === 0);
    fc.pre(!same && sent.length >= 1);
    const n = sent.length;
    const body: SignBody = {
      kind: 'sign', permit: permitOver(key, messages, gov.permitIndex()), messages: sent,
      lists: sent.map((_, i) => listOf([mine[i]!, theirs[i]!])), counters: mine.slice(0, n).map((x) => x.counter), ledgerConsumedCounter: 0,
    };
    const r = await reasonOf(a.client.call(gov.certified(body), 'signatureShares'));
    if (r !== 'DIGEST_MISMATCH') throw new Error(`mutation ${JSON.stringify(mu)} of ${messages.length} messages answered ${r}`);
    refused++;
  }), { numRuns: 200 });
  t.ok(refused >= 100, `${refused} mutated message lists refused DIGEST_MISMATCH`);
  t.same(await keyState(kernels[0]!, key.keyId), before, 'and not one nonce was consumed');
});
