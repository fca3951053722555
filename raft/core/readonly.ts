/**
 * ReadIndex (thesis §6.4): the leader records its commit index when a read arrives, confirms with a
 * heartbeat round that it is still leader (a quorum acknowledges the read's context), then the read
 * may be served once the state machine has applied that index. Requests are released in arrival
 * order: a quorum acknowledging a later context also confirms every earlier one.
 */
import type { NodeId } from './types.js';

export interface ReadRequest {
  readonly index: number;
  readonly from: NodeId;
  readonly context: Uint8Array;
  readonly acks: Set<NodeId>;
}

export function contextKey(ctx: Uint8Array): string {
  let s = '';
  for (const b of ctx) s += b.toString(16).padStart(2, '0');
  return s;
}

export class ReadOnly {
  private readonly pending = new Map<string, ReadRequest>();
  private readonly queue: string[] = [];

  constructor(private readonly max: number) {}

  size(): number {
    return this.queue.length;
  }

  /** Returns false when the queue is full or the context is already pending. */
  add(index: number, from: NodeId, context: Uint8Array, self: NodeId): boolean {
    const k = contextKey(context);
    if (this.pending.has(k) || this.queue.length >= this.max) return false;
    this.pending.set(k, { index, from, context, acks: new Set([self]) });
    this.queue.push(k);
    return true;
  }

  /** Record an acknowledgement; returns the ack set, or null for an unknown context. */
  ack(from: NodeId, context: Uint8Array): ReadonlySet<NodeId> | null {
    const r = this.pending.get(contextKey(context));
    if (!r) return null;
    r.acks.add(from);
    return r.acks;
  }

  /** Release every request up to and including `context`, in order. */
  release(context: Uint8Array): ReadRequest[] {
    const k = contextKey(context);
    const at = this.queue.indexOf(k);
    if (at < 0) return [];
    const keys = this.queue.splice(0, at + 1);
    const out: ReadRequest[] = [];
    for (const key of keys) {
      const r = this.pending.get(key);
      if (r) out.push(r);
      this.pending.delete(key);
    }
    return out;
  }

  lastContext(): Uint8Array | null {
    const k = this.queue[this.queue.length - 1];
    return k === undefined ? null : (this.pending.get(k)?.context ?? null);
  }

  clear(): void {
    this.pending.clear();
    this.queue.length = 0;
  }
}
