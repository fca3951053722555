/**
 * KernelPort adapters: the kernel process over its socket (kernel/client.ts KernelClient already
 * has the right shape), and a kernel object in this process (kernel/kernel.ts Kernel.handle), with
 * error responses turned into CustodyErrors carrying the kernel's reason code either way.
 */
import { CustodyError } from '../../proto/errors.js';
import type { Kernel } from '../../kernel/kernel.js';
import type { RequestBody, ResponseBody } from '../../kernel/wire.js';
import type { KernelPort } from './ports.js';

/**
 * The kernel's number for a ledger key epoch. The ledger and the kernel use one numbering (the
 * epoch a DkgAuthorized decision opens is the one KeyActivated names); this is the single place
 * that would translate if they ever differed.
 */
export function kernelEpoch(ledgerEpoch: number): number {
  return ledgerEpoch;
}

/** A kernel in this process (tests, the in-process cluster). */
export function inProcessKernel(k: Pick<Kernel, 'handle'>): KernelPort {
  return {
    async call<K extends ResponseBody['kind']>(body: RequestBody, expect: K): Promise<Extract<ResponseBody, { kind: K }>> {
      const res = await k.handle(body);
      if (res.kind === 'error') throw new CustodyError(res.reason, res.detail);
      if (res.kind !== expect) throw new CustodyError('PAYLOAD_REJECTED', `expected ${expect}, got ${res.kind}`);
      return res as Extract<ResponseBody, { kind: K }>;
    },
  };
}

/** Any call that has not answered within `ms` fails with REMOTE_TIMEOUT (the call itself may still complete). */
export function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new CustodyError('REMOTE_TIMEOUT', `${what}: no answer within ${ms} ms`)), ms);
    p.then((v) => {
      clearTimeout(timer);
      resolve(v);
    }, (e: unknown) => {
      clearTimeout(timer);
      reject(e as Error);
    });
  });
}
