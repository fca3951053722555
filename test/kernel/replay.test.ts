/**
 * K4, a used permit asked again: the identical signing request (same permit, counter, commitment
 * list and message) is answered with the share stored in the batch that consumed the nonce —
 * byte for byte the same, also after kill -9 and a restart, also when the kernel died before the
 * share ever left — and any difference under the used permit is refused STEP_PERMIT_REUSED.
 * This is what lets a new coordinator finish a signing set fixed by a leader that died (see
 * node/lifecycle/coordinator.ts). Run in both profiles.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import type { NonceCommitment, RequestBody } from '../../kernel/wire.js';
import { suiteOf } from '../../kernel/suites.js';
import { messagesDigest } from '../../ledger/tx/messages.js';
import {
  independentVerify, kernelPair, PROFILES, reasonOf, startKernel, toPackage,
  type KernelProcess,
} from './harness.js';

for (const profile of PROFILES) {
  t.test(`a used permit answers the identical request with its stored share, and nothing else (${profile})`, { timeout: 600_000 }, async (t) => {
    const { gov, kernels: k, key } = await kernelPair(t, 'replay', profile, 'key-replay');
    const presign = async (p: KernelProcess): Promise<NonceCommitment> =>
      (await p.client.call({ kind: 'nonces', keyId: key.keyId, keyEpoch: 0, count: 1 }, 'nonceCommitments')).commitments[0]!;
    const listOf = (...ns: NonceCommitment[]) => ns.map((n) => ({ identifier: n.identifier, hiding: n.hiding, binding: n.binding }));
    /** One signing step: permit, list, counter and message, every field overridable. */
    const step = (requestId: string, ledgerIndex: number, mine: NonceCommitment, list: ReturnType<typeof listOf>, message: Uint8Array, over: Partial<{ counter: number; digest: Uint8Array }> = {}): RequestBody => ({
      kind: 'sign',
      permit: { keyId: key.keyId, keyEpoch: 0, requestId, messageDigest: over.digest ?? messagesDigest([message]), ledgerIndex },
      messages: [message], lists: [list], counters: [over.counter ?? mine.counter], ledgerConsumedCounter: 0,
    });
    const share = async (p: KernelProcess, body: RequestBody): Promise<Uint8Array> => (await p.client.call(gov.certified(body), 'signatureShares')).sigShares[0]!;
    const restart = async (env: Record<string, string> = {}): Promise<void> => {
      await k.victim.stop();
      k.victim = await startKernel(k.victim.setup, env);
    };
    const aggregateVerifies = (list: ReturnType<typeof listOf>, message: Uint8Array, shares: Record<string, Uint8Array>): boolean => {
      const sig = suiteOf('ed25519').frost.aggregate(toPackage(key.public) as never, list as never, message, shares as never);
      return independentVerify('ed25519', key.public.commitments[0]!, message, sig);
    };

    /** A fresh permit over a new nonce of each kernel: the parts and the victim's signing request. */
    const permitFor = async (text: string) => {
      const [mine, other] = [await presign(k.victim), await presign(k.helper)];
      const list = listOf(mine, other);
      const message = Buffer.from(text);
      const requestId = randomBytes(16).toString('hex');
      const index = gov.permitIndex();
      return { mine, other, list, message, requestId, index, body: step(requestId, index, mine, list, message) };
    };

    t.test('the identical request again returns identical bytes', async (t) => {
      const { mine, other, list, message, requestId, index, body } = await permitFor('pay 10 to treasury');
      const first = await share(k.victim, body);
      const again = await share(k.victim, body);
      t.same(Buffer.from(again), Buffer.from(first), 'the same share, byte for byte');
      const third = await share(k.victim, body);
      t.same(Buffer.from(third), Buffer.from(first), 'and again');
      const otherShare = await share(k.helper, step(requestId, index, other, list, message));
      t.ok(aggregateVerifies(list, message, { [mine.identifier]: again, [other.identifier]: otherShare }), 'the replayed share aggregates into a valid signature');
    });

    t.test('any difference under a used permit is refused STEP_PERMIT_REUSED', async (t) => {
      const { mine, other, list, message, requestId, index, body } = await permitFor('pay 20 to treasury');
      await share(k.victim, body);
      const fresh = await presign(k.victim);
      const stranger = await presign(k.helper);
      const variants: [string, RequestBody][] = [
        ['another counter (a fresh nonce)', step(requestId, index, fresh, listOf(fresh, other), message)],
        ['another co-signer commitment in the list', step(requestId, index, mine, listOf(mine, stranger), message)],
        ['the list in another order', step(requestId, index, mine, [...list].reverse(), message)],
        ['another message (and its digest)', step(requestId, index, mine, list, Buffer.from('pay 2000 elsewhere'))],
        ['another ledger index for the permit', step(requestId, index + 1, mine, list, message)],
        ['the same counter named with another nonce\'s commitment', step(requestId, index, mine, listOf(fresh, other), message, { counter: mine.counter })],
      ];
      for (const [what, body] of variants) t.equal(await reasonOf(k.victim.client.call(gov.certified(body), 'signatureShares')), 'STEP_PERMIT_REUSED', what);
      const again = await reasonOf(k.victim.client.call(gov.certified(body), 'signatureShares'));
      t.equal(again, 'OK', 'the identical request still answers after the refusals');
    });

    t.test('after kill -9 and a restart the stored share is returned', async (t) => {
      const { body } = await permitFor('pay 30 to treasury');
      const first = await share(k.victim, body);
      k.victim.proc.kill('SIGKILL');
      t.equal((await k.victim.exited).signal, 'SIGKILL', 'the kernel was killed');
      await restart();
      t.same(Buffer.from(await share(k.victim, body)), Buffer.from(first), 'the same share from the restarted kernel');
    });

    t.test('a kernel killed after consuming the nonce, before the share left, gives that share on the identical request', async (t) => {
      const { mine, other, list, message, requestId, index, body } = await permitFor('pay 40 to treasury');
      await restart({ CUSTODY_KERNEL_CRASH_AT: 'sign:consumed' });
      t.equal(await reasonOf(k.victim.client.call(gov.certified(body), 'signatureShares')), 'REMOTE_TIMEOUT', 'no share came back');
      t.equal((await k.victim.exited).signal, 'SIGKILL', 'the kernel died right after the consuming batch');
      await restart();
      const stored = await share(k.victim, body);
      const otherShare = await share(k.helper, step(requestId, index, other, list, message));
      t.ok(aggregateVerifies(list, message, { [mine.identifier]: stored, [other.identifier]: otherShare }), 'the stored share completes the signature');
      const fresh = await presign(k.victim);
      t.equal(await reasonOf(k.victim.client.call(gov.certified(step(requestId, index, fresh, listOf(fresh, other), message)), 'signatureShares')), 'STEP_PERMIT_REUSED', 'and the permit yields no second share');
    });
  });
}
