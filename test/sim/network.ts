/**
 * The simulated network: every message is delayed by a random number of steps, may be dropped or
 * duplicated, and is delivered in a random order among those due in the same step. Links can be
 * cut one direction at a time, which gives symmetric partitions, asymmetric ones and an isolated
 * leader. A cut link drops what it carries at delivery time, so messages already in flight when a
 * partition starts are lost as well (as on a real network). It carries Raft messages by default,
 * and any addressed payload (the whole-node mode's observation exchanges) the same way.
 */
import type { Message, NodeId } from '../../raft/core/types.js';
import type { SeededRng } from '../../raft/core/rng.js';

export interface NetworkFaults {
  /** Probability that one message is lost (at most 0.3). */
  dropRate: number;
  /** Probability that one message is delivered twice. */
  duplicateRate: number;
  /** Each message waits between 1 and this many steps. */
  delayStepsMax: number;
  /**
   * Probability that one message is held far longer (a retransmission after a stall, a queue
   * behind a slow peer): it then waits up to longDelayStepsMax. This is what brings answers from
   * an earlier term into a later one.
   */
  longDelayRate: number;
  longDelayStepsMax: number;
  /**
   * Deliver each link's messages in the order sent (a healed network: reordering is one of the
   * faults that heal). When false, delays are independent and messages overtake each other.
   */
  fifo: boolean;
}

export interface NetworkStats {
  sent: number;
  delivered: number;
  delayedLong: number;
  dropped: number;
  duplicated: number;
  cut: number;
}

export class SimNetwork<M extends { readonly from: NodeId; readonly to: NodeId } = Message> {
  private readonly buckets = new Map<number, M[]>();
  private readonly cutLinks = new Set<string>();
  /** Per link, the step its last message is due (FIFO mode). */
  private readonly lastDue = new Map<string, number>();
  readonly stats: NetworkStats = { sent: 0, delivered: 0, delayedLong: 0, dropped: 0, duplicated: 0, cut: 0 };

  constructor(
    private readonly rng: SeededRng,
    public faults: NetworkFaults,
  ) {
    if (faults.dropRate < 0 || faults.dropRate > 0.3) throw new RangeError(`network: dropRate ${faults.dropRate} outside [0, 0.3]`);
    if (!Number.isInteger(faults.delayStepsMax) || faults.delayStepsMax < 1) throw new RangeError(`network: delayStepsMax ${faults.delayStepsMax}`);
  }

  send(m: M, now: number): void {
    this.stats.sent++;
    if (this.faults.dropRate > 0 && this.rng.chance(this.faults.dropRate)) {
      this.stats.dropped++;
      return;
    }
    this.enqueue(m, now);
    if (this.faults.duplicateRate > 0 && this.rng.chance(this.faults.duplicateRate)) {
      this.stats.duplicated++;
      this.enqueue(m, now);
    }
  }

  private enqueue(m: M, now: number): void {
    let at = now + 1 + (this.faults.delayStepsMax > 1 ? this.rng.int(this.faults.delayStepsMax) : 0);
    if (this.faults.longDelayRate > 0 && this.rng.chance(this.faults.longDelayRate)) {
      at = now + 1 + this.rng.int(this.faults.longDelayStepsMax);
      this.stats.delayedLong++;
    }
    if (this.faults.fifo) {
      const link = `${m.from}>${m.to}`;
      at = Math.max(at, this.lastDue.get(link) ?? 0);
      this.lastDue.set(link, at);
    }
    const b = this.buckets.get(at);
    if (b) b.push(m);
    else this.buckets.set(at, [m]);
  }

  /** Ms due at `now`, in a random order, with cut links already filtered out. */
  due(now: number): M[] {
    const b = this.buckets.get(now);
    if (!b) return [];
    this.buckets.delete(now);
    // Shuffle what is due together, unless links must stay FIFO (then keep the send order).
    for (let i = this.faults.fifo ? 0 : b.length - 1; i > 0; i--) {
      const j = this.rng.int(i + 1);
      const t = b[i] as M;
      b[i] = b[j] as M;
      b[j] = t;
    }
    const out: M[] = [];
    for (const m of b) {
      if (this.isCut(m.from, m.to)) this.stats.cut++;
      else out.push(m);
    }
    this.stats.delivered += out.length;
    return out;
  }

  inFlight(): number {
    let n = 0;
    for (const b of this.buckets.values()) n += b.length;
    return n;
  }

  cut(from: NodeId, to: NodeId): void {
    this.cutLinks.add(`${from}>${to}`);
  }

  isCut(from: NodeId, to: NodeId): boolean {
    return this.cutLinks.size > 0 && this.cutLinks.has(`${from}>${to}`);
  }

  /** Cut every link between the two groups, both directions. */
  partition(a: readonly NodeId[], b: readonly NodeId[]): void {
    for (const x of a) for (const y of b) {
      this.cut(x, y);
      this.cut(y, x);
    }
  }

  healLinks(): void {
    this.cutLinks.clear();
  }

  cutCount(): number {
    return this.cutLinks.size;
  }
}
