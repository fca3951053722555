/**
 * The daemon's link to its kernel process: a KernelPort over the kernel socket that survives a
 * restart of the kernel.
 *
 *   connected      calls go to the current KernelClient (kernel/client.ts), in order.
 *   socket closes  (the kernel crashed, was killed or restarted) the calls in flight fail with
 *                  REMOTE_TIMEOUT (the client rejects them); the link is down, and every call
 *                  made while it is down fails at once with REMOTE_TIMEOUT, never waits.
 *   reconnecting   attempts at lifecycle.kernelReconnectMinMs, doubling to kernelReconnectMaxMs
 *                  (proto/limits.ts), for as long as the daemon runs. Once connected, the
 *                  listeners are told (the participant re-reads the kernel's status and forwards
 *                  the decisions the kernel's store lacks, LifecycleParticipant.kernelReconnected).
 *
 * Why an act in flight ends cleanly: a coordinator's request for a nonce commitment or a share
 * that reaches a node whose kernel is down is refused REMOTE_TIMEOUT at once. In the commitment
 * phase the coordinator asks another participant; in the share phase it asks the member again
 * every signingSetRetryMs until signingSetWaitMs has passed, then aborts the act REMOTE_TIMEOUT
 * (coordinator.ts). A restarted kernel answers a share request it already answered from its
 * store (kernel/kernel.ts K4), and one it never answered with a nonce its store still holds, so
 * either outcome is the one signing set the ledger fixed, or an abort: never a stuck act and
 * never a second set.
 */
import { CustodyError } from '../../proto/errors.js';
import { lifecycle as limits } from '../../proto/limits.js';
import { KernelClient } from '../../kernel/client.js';
import type { RequestBody, ResponseBody } from '../../kernel/wire.js';
import type { KernelPort } from './ports.js';

export interface KernelLinkStatus {
  readonly socket: string;
  readonly connected: boolean;
  /** Connections made after the first (each one a kernel restart or a lost socket). */
  readonly reconnects: number;
  /** Wall-clock ms of the last change between connected and not. */
  readonly sinceMs: number;
  /** Why the last connection ended or the last attempt failed (null while it never did). */
  readonly lastError: string | null;
}

export class KernelLink implements KernelPort {
  private client: KernelClient | null = null;
  private status: KernelLinkStatus;
  private readonly listeners = new Set<(connected: boolean) => void>();
  private timer: NodeJS.Timeout | null = null;
  private backoffMs: number = limits.kernelReconnectMinMs;
  private closed = false;

  private constructor(readonly socket: string, private readonly log: (l: string) => void) {
    this.status = { socket, connected: false, reconnects: 0, sinceMs: Date.now(), lastError: null };
  }

  /** Connects once; a kernel that is not there refuses the daemon's start, as before any link existed. */
  static async open(socket: string, log: (l: string) => void): Promise<KernelLink> {
    const l = new KernelLink(socket, log);
    l.attach(await KernelClient.connect(socket), false);
    return l;
  }

  state(): KernelLinkStatus {
    return this.status;
  }

  /** Called with true on each reconnection and false on each loss. Returns an unsubscribe function. */
  onChange(l: (connected: boolean) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  async call<K extends ResponseBody['kind']>(body: RequestBody, expect: K): Promise<Extract<ResponseBody, { kind: K }>> {
    const c = this.client;
    if (c === null) throw new CustodyError('REMOTE_TIMEOUT', `the kernel at ${this.socket} is not connected (reconnecting${this.status.lastError ? `; ${this.status.lastError}` : ''})`);
    return c.call(body, expect);
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.client?.close();
    this.client = null;
  }

  private attach(c: KernelClient, reconnected: boolean): void {
    this.client = c;
    this.backoffMs = limits.kernelReconnectMinMs;
    this.status = { ...this.status, connected: true, sinceMs: Date.now(), reconnects: this.status.reconnects + (reconnected ? 1 : 0) };
    c.onClose((e) => {
      if (this.client !== c) return;
      this.client = null;
      this.status = { ...this.status, connected: false, sinceMs: Date.now(), lastError: e.message };
      if (this.closed) return;
      this.log(`kernel ${this.socket}: connection lost (${e.message}); reconnecting`);
      this.tell(false);
      this.schedule();
    });
    if (reconnected) {
      this.log(`kernel ${this.socket}: reconnected (reconnection ${this.status.reconnects})`);
      this.tell(true);
    }
  }

  private schedule(): void {
    if (this.closed || this.timer !== null) return;
    const wait = this.backoffMs;
    this.backoffMs = Math.min(limits.kernelReconnectMaxMs, this.backoffMs * 2);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.closed) return;
      KernelClient.connect(this.socket).then((c) => {
        if (this.closed) c.close();
        else this.attach(c, true);
      }, (e: unknown) => {
        this.status = { ...this.status, lastError: (e as Error).message };
        this.schedule();
      });
    }, wait);
    this.timer.unref();
  }

  private tell(connected: boolean): void {
    for (const l of this.listeners) {
      try {
        l(connected);
      } catch (e) {
        this.log(`kernel ${this.socket}: listener failed: ${(e as Error).message}`);
      }
    }
  }
}
