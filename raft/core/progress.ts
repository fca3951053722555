/**
 * What the leader knows of each follower (etcd-io/raft's tracker/), with flow control.
 *
 * States: `probe` sends one append per heartbeat until the follower's log position is found;
 * `replicate` pipelines appends optimistically, bounded by in-flight message count AND bytes;
 * `snapshot` streams a snapshot in chunks and sends nothing else.
 */
import type { NodeId, Snapshot } from './types.js';

/** Appends sent but not yet acknowledged, oldest first. */
export class Inflights {
  private readonly q: { index: number; bytes: number }[] = [];
  private bytesTotal = 0;

  constructor(
    private readonly msgsMax: number,
    private readonly bytesMax: number,
  ) {}

  add(lastIndex: number, bytes: number): void {
    this.q.push({ index: lastIndex, bytes });
    this.bytesTotal += bytes;
  }

  /** Release every append whose last index is <= `index` (acknowledged). */
  freeLE(index: number): void {
    let n = 0;
    while (n < this.q.length && (this.q[n] as { index: number }).index <= index) {
      this.bytesTotal -= (this.q[n] as { bytes: number }).bytes;
      n++;
    }
    if (n > 0) this.q.splice(0, n);
  }

  freeFirst(): void {
    const f = this.q.shift();
    if (f) this.bytesTotal -= f.bytes;
  }

  full(): boolean {
    return this.q.length >= this.msgsMax || this.bytesTotal >= this.bytesMax;
  }

  count(): number {
    return this.q.length;
  }

  bytes(): number {
    return this.bytesTotal;
  }

  reset(): void {
    this.q.length = 0;
    this.bytesTotal = 0;
  }
}

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** Probe: an append is outstanding; wait for its answer or the next heartbeat. */
  probeSent = false;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** Snapshot being streamed, the bytes sent and the bytes the follower confirmed. */
  snap: Snapshot | null = null;
  snapSent = 0;
  snapAcked = 0;
  snapLastSent = false;
  snapAckedSinceHeartbeat = false;
  readonly inflights: Inflights;

  constructor(
    readonly id: NodeId,
    next: number,
    msgsMax: number,
    bytesMax: number,
  ) {
    this.next = next;
    this.inflights = new Inflights(msgsMax, bytesMax);
  }

  becomeProbe(): void {
    if (this.state === 'snapshot') {
      const pending = this.snap?.meta.index ?? 0;
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.next = this.match + 1;
    }
    this.resetState('probe');
  }

  becomeReplicate(): void {
    this.next = this.match + 1;
    this.resetState('replicate');
  }

  becomeSnapshot(snap: Snapshot): void {
    this.resetState('snapshot');
    this.snap = snap;
  }

  private resetState(s: ProgressState): void {
    this.state = s;
    this.probeSent = false;
    this.snap = null;
    this.snapSent = 0;
    this.snapAcked = 0;
    this.snapLastSent = false;
    this.snapAckedSinceHeartbeat = false;
    this.inflights.reset();
  }

  /** A successful append response: returns whether it told us something new. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /**
   * A rejected append for `rejected` (the prev index we sent), with the follower's hint of its
   * last index. Returns false when the rejection is stale (answers an older append).
   *
   * A follower that refuses the very entry it last acknowledged (`rejected === match`, the prev
   * index of a probe, or of an append in replicate with nothing in flight) has lost entries: its
   * store was wiped or restored from a copy (raft/driver.ts recovery). Keeping `match` would
   * probe at `match` forever, each refusal answered by the same probe (and each duplicated
   * refusal by one more). So the leader forgets what it knew (match 0: nothing the follower holds
   * now is known to match) and probes from the follower's last index. Safe: `match` only counts
   * toward commits, a lower one counts less, and the commit index never moves back. A refusal
   * that is merely old (sent before the follower acknowledged `match`, delivered late) costs one
   * probe round and the entries re-sent, never more.
   */
  maybeDecrTo(rejected: number, hint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected < this.match) return false;
      if (rejected > this.match) {
        this.next = this.match + 1;
        return true;
      }
      this.becomeProbe();
    } else if (this.next - 1 !== rejected) return false;
    if (rejected <= this.match) this.match = 0;
    this.next = Math.max(Math.min(rejected, hint + 1), this.match + 1, 1);
    this.probeSent = false;
    return true;
  }

  /**
   * The follower refused a heartbeat whose commit (at most `match`) is past its log, which ends at
   * `hint`: it lost entries it acknowledged (maybeDecrTo explains why forgetting `match` is safe).
   * Returns true when the leader should probe it now.
   */
  logLost(hint: number): boolean {
    if (this.state === 'snapshot' || hint >= this.match) return false;
    this.becomeProbe();
    this.match = 0;
    this.next = Math.max(hint + 1, 1);
    return true;
  }

  /** Nothing more may be sent until an answer arrives. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }

  /** Record an append just sent, for flow control. */
  sentEntries(lastIndex: number | null, bytes: number): void {
    if (this.state === 'replicate') {
      if (lastIndex !== null) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex, bytes);
      }
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
  }
}
