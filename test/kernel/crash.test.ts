/**
 * Nonces are never used twice, across kill -9 at every step boundary of presigning and signing,
 * and across a restored older copy of the kernel store. A recorder keeps every signature share
 * any kernel ever released, with the nonce commitment it used and the message; the final check
 * fails if one commitment ever signed two different messages (or signed twice at all).
 *
 * The kernel SIGKILLs itself at the named point (CUSTODY_KERNEL_CRASH_AT, kernel/main.ts), so
 * each crash lands exactly on a boundary without sleeps or races. Run in both profiles.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { cpSync, rmSync } from 'node:fs';
import type { NonceCommitment, RequestBody } from '../../kernel/wire.js';
import {
  independentVerify, kernelPair, memberOf, permitOver, PROFILES, reasonOf, runDkg, signAcross, startKernel, taprootSpend,
  type KernelProcess,
} from './harness.js';

class ShareRecorder {
  private readonly byCommitment = new Map<string, { message: string; count: number }[]>();
  record(commitment: { hiding: Uint8Array; binding: Uint8Array }, message: Uint8Array): void {
    const k = Buffer.concat([commitment.hiding, commitment.binding]).toString('hex');
    const list = this.byCommitment.get(k) ?? [];
    const m = Buffer.from(message).toString('hex');
    const hit = list.find((x) => x.message === m);
    if (hit) hit.count++;
    else list.push({ message: m, count: 1 });
    this.byCommitment.set(k, list);
  }
  /** Commitments that released more than one share (the reuse this suite must never see). */
  reused(): string[] {
    return [...this.byCommitment.entries()].filter(([, l]) => l.length > 1 || l.some((x) => x.count > 1)).map(([k]) => k);
  }
  get size(): number {
    return this.byCommitment.size;
  }
}

t.test('the recorder flags a commitment that signs two messages', async (t) => {
  const r = new ShareRecorder();
  const c = { hiding: new Uint8Array([1]), binding: new Uint8Array([2]) };
  r.record(c, Buffer.from('a'));
  t.same(r.reused(), [], 'one share is fine');
  r.record(c, Buffer.from('b'));
  t.equal(r.reused().length, 1, 'a second message under the same commitment is caught');
});

const SIGN_POINTS = ['sign:checked', 'sign:consumed', 'sign:replied'] as const;
const NONCE_POINTS = ['nonces:generated', 'nonces:stored'] as const;

for (const profile of PROFILES) {
  t.test(`kill -9 at every step boundary never reuses a nonce (${profile})`, { timeout: 900_000 }, async (t) => {
    const rec = new ShareRecorder();
    const { gov, kernels: k, key } = await kernelPair(t, 'crash', profile, 'key-crash');
    // Acts of several messages spend several coins of a taproot key: one BIP 341 sighash per input,
    // parsed by the kernel itself from the PSBT the act carries.
    const btc = await runDkg(gov, [memberOf(k.victim), memberOf(k.helper)], 'key-crash-btc', 'taproot', 2);
    const spend = (label: string, inputs: number): Uint8Array[] => gov.transaction(btc.keyId, 'btc-psbt', taprootSpend(gov.keys.get(btc.keyId)!, label, inputs));
    const presign = async (p: KernelProcess, count: number, keyId = key.keyId): Promise<NonceCommitment[]> =>
      (await p.client.call({ kind: 'nonces', keyId, keyEpoch: 0, count }, 'nonceCommitments')).commitments;
    const signOn = async (p: KernelProcess, mine: NonceCommitment, other: NonceCommitment, message: Uint8Array): Promise<string> => {
      const body: RequestBody = {
        kind: 'sign',
        permit: permitOver(key, [message], gov.permitIndex()),
        messages: [message], lists: [[mine, other].map((n) => ({ identifier: n.identifier, hiding: n.hiding, binding: n.binding }))],
        counters: [mine.counter], ledgerConsumedCounter: 0,
      };
      try {
        await p.client.call(gov.certified(body), 'signatureShares');
        rec.record(mine, message);
        return 'OK';
      } catch (e) {
        return reasonOf(Promise.reject(e));
      }
    };
    /** One act of several messages on `p`: message i with p's nonce mine[i] and the helper's other[i]. */
    const signActOn = async (p: KernelProcess, mine: NonceCommitment[], other: NonceCommitment[], messages: Uint8Array[]): Promise<string> => {
      const body: RequestBody = {
        kind: 'sign',
        permit: permitOver(btc, messages, gov.permitIndex()),
        messages, lists: messages.map((_, i) => [mine[i]!, other[i]!].map((n) => ({ identifier: n.identifier, hiding: n.hiding, binding: n.binding }))),
        counters: mine.map((n) => n.counter), ledgerConsumedCounter: 0,
      };
      try {
        await p.client.call(gov.certified(body), 'signatureShares');
        messages.forEach((m, i) => rec.record(mine[i]!, m));
        return 'OK';
      } catch (e) {
        return reasonOf(Promise.reject(e));
      }
    };
    const restart = async (env: Record<string, string> = {}): Promise<void> => {
      await k.victim.stop();
      k.victim = await startKernel(k.victim.setup, env);
    };

    for (const point of NONCE_POINTS) {
      t.test(`presign interrupted at ${point}`, async (t) => {
        await restart({ CUSTODY_KERNEL_CRASH_AT: point });
        t.equal(await reasonOf(presign(k.victim, 4)), 'REMOTE_TIMEOUT', 'no commitments came back');
        t.equal((await k.victim.exited).signal, 'SIGKILL', 'the kernel died at the boundary');
        await restart();
        const [mine] = await presign(k.victim, 1);
        const [other] = await presign(k.helper, 1);
        t.equal(await signOn(k.victim, mine!, other!, Buffer.from(`after ${point}`)), 'OK', 'signing resumes with a fresh nonce');
      });
    }

    for (const point of SIGN_POINTS) {
      t.test(`signing interrupted at ${point}`, async (t) => {
        const [mine] = await presign(k.victim, 1);
        const [other] = await presign(k.helper, 1);
        await restart({ CUSTODY_KERNEL_CRASH_AT: point });
        const first = await signOn(k.victim, mine!, other!, Buffer.from(`first message, ${point}`));
        t.equal(first, point === 'sign:replied' ? 'OK' : 'REMOTE_TIMEOUT', point === 'sign:replied' ? 'the share left, then the kernel died' : 'nothing left the kernel');
        t.equal((await k.victim.exited).signal, 'SIGKILL', 'the kernel died at the boundary');
        await restart();
        // A daemon now tries the same nonce for another message.
        const retry = await signOn(k.victim, mine!, other!, Buffer.from(`second message, ${point}`));
        if (point === 'sign:checked') {
          t.equal(retry, 'OK', 'a crash before consumption left the nonce unused and no share out: it may sign once');
        } else {
          t.equal(retry, 'NONCE_REUSED', 'a crash after consumption burned the nonce');
        }
      });
    }

    for (const point of SIGN_POINTS) {
      t.test(`signing an act of three messages interrupted at ${point}`, async (t) => {
        const mine = await presign(k.victim, 3, btc.keyId);
        const other = await presign(k.helper, 3, btc.keyId);
        await restart({ CUSTODY_KERNEL_CRASH_AT: point });
        const first = await signActOn(k.victim, mine, other, spend(`first try, ${point}`, 3));
        t.equal(first, point === 'sign:replied' ? 'OK' : 'REMOTE_TIMEOUT', point === 'sign:replied' ? 'the shares left, then the kernel died' : 'nothing left the kernel');
        t.equal((await k.victim.exited).signal, 'SIGKILL', 'the kernel died at the boundary');
        await restart();
        // A daemon now aims the same three nonces at other messages under another permit.
        const retry = await signActOn(k.victim, mine, other, spend(`second try, ${point}`, 3));
        t.equal(retry, point === 'sign:checked' ? 'OK' : 'NONCE_REUSED', point === 'sign:checked' ? 'a crash before consumption left all three nonces unused: they sign once' : 'a crash after consumption burned all three');
        t.equal(await signActOn(k.victim, mine.slice(1), other.slice(1), spend(`a later act, ${point}`, 2)), 'NONCE_REUSED', 'no nonce of the act signs again, not even the last ones alone');
      });
    }

    t.test('the kernel still signs end to end after all the crashes', async (t) => {
      const message = Buffer.from('healthy after crashes');
      const out = await signAcross(gov, [memberOf(k.victim), memberOf(k.helper)], key, message);
      for (const c of out.commitments) rec.record(c, message);
      t.ok(independentVerify('ed25519', key.public.commitments[0]!, message, out.signature), 'signature verifies (OpenSSL Ed25519)');
    });

    t.test('restored older store', async (t) => {
      const nonces = await presign(k.victim, 3);
      const [other] = await presign(k.helper, 1);
      await k.victim.stop();
      const backup = `${k.victim.setup.storeDir}.backup`;
      cpSync(k.victim.setup.storeDir, backup, { recursive: true });
      k.victim = await startKernel(k.victim.setup);
      t.equal(await signOn(k.victim, nonces[0]!, other!, Buffer.from('before restore')), 'OK', 'nonce used after the backup was taken');
      // The ledger now records this kernel's consumed counter for the key.
      const ledgerConsumed = nonces[0]!.counter;
      await k.victim.stop();
      rmSync(k.victim.setup.storeDir, { recursive: true, force: true });
      cpSync(backup, k.victim.setup.storeDir, { recursive: true });
      k.victim = await startKernel(k.victim.setup);
      const again = async (n: NonceCommitment, message: string): Promise<string> => {
        const body: RequestBody = {
          kind: 'sign',
          permit: permitOver(key, [Buffer.from(message)], gov.permitIndex()),
          messages: [Buffer.from(message)], lists: [[n, other!].map((x) => ({ identifier: x.identifier, hiding: x.hiding, binding: x.binding }))],
          counters: [n.counter], ledgerConsumedCounter: ledgerConsumed,
        };
        const r = await reasonOf(k.victim.client.call(gov.certified(body), 'signatureShares'));
        if (r === 'OK') rec.record(n, Buffer.from(message));
        return r;
      };
      if (profile === 'software') {
        t.equal(await again(nonces[0]!, 'after restore'), 'STORE_ROLLED_BACK', 'the consumed nonce is refused: the store is behind the ledger');
        t.equal(await again(nonces[1]!, 'after restore, next nonce'), 'STORE_ROLLED_BACK', 'every step is refused until the store is reconciled');
        const r = await k.victim.client.call({ kind: 'reconcile', keyId: key.keyId, ledgerConsumedCounter: ledgerConsumed }, 'reconcile');
        t.equal(r.consumedCounter, ledgerConsumed, 'reconciled up to the ledger');
        t.equal(await again(nonces[0]!, 'after reconcile'), 'NONCE_REUSED', 'the nonce consumed after the backup stays burned');
        t.equal(await again(nonces[1]!, 'after reconcile, next nonce'), 'OK', 'an unused nonce from the backup signs once');
      } else {
        t.equal(await again(nonces[0]!, 'after restore'), 'NONCE_REUSED', 'the token counter outlives the store: the consumed nonce stays burned');
        t.equal(await again(nonces[1]!, 'after restore, next nonce'), 'OK', 'an unused nonce from the backup is safe to use once');
      }
    });

    t.test('no nonce commitment ever signed twice', async (t) => {
      t.ok(rec.size >= 4 * SIGN_POINTS.length + NONCE_POINTS.length, `recorded ${rec.size} commitments`);
      t.same(rec.reused(), [], 'every commitment released at most one share');
    });
  });
}
