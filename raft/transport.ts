/**
 * What the driver needs from the network and the clock: interfaces with in-memory twins, so the
 * same driver runs over gRPC in the daemon and over queues in tests (STYLE.md "every outside
 * dependency is an interface").
 */
import type { Message, NodeId } from './core/types.js';

export interface Transport {
  /**
   * Hand messages to the network. Must not block and may drop: Raft tolerates loss, and dropping
   * under pressure is this transport's backpressure (etcd's rafthttp does the same).
   */
  send(msgs: readonly Message[]): void;
  /** Whether a peer's stream is currently connected (for metrics and readiness). */
  reachable(peer: NodeId): boolean;
}

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  every(ms: number, fn: () => void): Timer;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  every(ms, fn) {
    const h = setInterval(fn, ms);
    return { cancel: () => clearInterval(h) };
  },
};
