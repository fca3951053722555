/**
 * Split-brain detection from exchanged observations.
 *
 * Why. Raft's safety rests on every server keeping term, vote and log on stable storage before it
 * answers (Raft paper §5.1, Figure 2, "Persistent state on all servers ... updated on stable
 * storage before responding to RPCs"). Under that assumption Election Safety holds (§5.2: at most
 * one leader per term) and State Machine Safety holds (§5.4.3: every server applies the same entry
 * at each index, so state roots agree index by index). A node restored from an old disk image or
 * VM snapshot, a disk that acknowledges writes it lost, or a compromised node breaks the
 * assumption, and then both properties can fail. This module notices when they do.
 *
 * Message flow. Every `limits.splitBrain.observationIntervalMs` each node sends every peer, over
 * the authenticated peer channel, its own Observation:
 *
 *     (node, term, leader it knows for that term or none, applied index, state root after it)
 *
 * and feeds its own observation and every received one to its SplitBrainDetector. The receiver
 * checks that `node` is the peer the mutual-TLS certificate names (a node speaks only for itself).
 *
 * What raises an alarm, and why it cannot be a false alarm on a correct cluster:
 *  - two different leaders reported for one term. A node reports leader L for term T only after
 *    hearing from L as leader of T (or being L); with Election Safety there is one such L per term,
 *    whoever reports it and however late the report arrives;
 *  - two different state roots reported for one applied index. The state after index i is a
 *    deterministic function of entries 1..i (ledger `apply` is pure), and with State Machine
 *    Safety those entries are the same everywhere, whenever and by whomever they are applied.
 *  Neither check depends on timing, message order, restarts (a restarted node re-applies the same
 *  entries and reaches the same roots) or snapshots (a snapshot at i carries the state after i).
 *
 * Memory is bounded (`limits.splitBrain`): the detector keeps the leader of the most recent
 * `termsTrackedMax` terms and the root of the most recent `rootsTrackedMax` applied indexes,
 * counted back from the highest seen. Observations older than the window are not compared and are
 * counted as `stale`. A node lying about a far-future term can only move the window (losing old
 * comparisons), never make two honest observations disagree. A node lying about its leader or root
 * does raise an alarm: the alarm names both reports, and telling which of them lied is the
 * operator's job (signed leader announcements, equivocation.ts, make a leader's own lie provable).
 */
import { splitBrain as limits } from '../../proto/limits.js';

export type NodeId = string;

/** What one node reports about itself. */
export interface Observation {
  readonly node: NodeId;
  readonly term: number;
  /** The leader this node knows for `term`, or null (candidate, or not heard from one yet). */
  readonly leader: NodeId | null;
  readonly appliedIndex: number;
  /** The state root after `appliedIndex` (ledger state root; hex or any canonical string). */
  readonly stateRoot: string;
}

/** One side of a conflict: who reported what. */
export interface Report {
  readonly reportedBy: NodeId;
  readonly value: NodeId | string;
}

export type Alarm =
  | { readonly kind: 'two_leaders'; readonly term: number; readonly first: Report; readonly second: Report }
  | { readonly kind: 'two_roots'; readonly appliedIndex: number; readonly first: Report; readonly second: Report };

export type ObserveResult = 'accepted' | 'stale' | 'invalid' | 'alarm';

export interface DetectorLimits {
  readonly termsTrackedMax: number;
  readonly rootsTrackedMax: number;
}

interface Seen {
  readonly value: string;
  readonly reportedBy: NodeId;
  /** An alarm was raised for this slot; further conflicts there are the same incident. */
  alarmed: boolean;
}

/**
 * A sliding window of slots keyed by a non-negative integer (a term, an applied index), holding
 * the first value reported for each. Slots below `highest - size + 1` are forgotten.
 */
class Window {
  private readonly slots = new Map<number, Seen>();
  private highest = -1;

  constructor(private readonly size: number) {}

  floor(): number {
    return this.highest - this.size + 1;
  }

  /** The slot's first report, or undefined. Advances the window when `key` is the newest. */
  record(key: number, value: string, reportedBy: NodeId): { prior: Seen | undefined; stale: boolean } {
    if (key < this.floor()) return { prior: undefined, stale: true };
    if (key > this.highest) this.advance(key);
    const prior = this.slots.get(key);
    if (prior === undefined) this.slots.set(key, { value, reportedBy, alarmed: false });
    return { prior, stale: false };
  }

  private advance(key: number): void {
    const oldFloor = this.floor();
    this.highest = key;
    const floor = this.floor();
    if (floor - oldFloor >= this.slots.size) {
      // A jump past everything kept: sweep the map rather than walk the (possibly huge) gap.
      for (const k of this.slots.keys()) if (k < floor) this.slots.delete(k);
    } else {
      for (let k = Math.max(0, oldFloor); k < floor; k++) this.slots.delete(k);
    }
  }

  held(): number {
    return this.slots.size;
  }
}

function validObservation(o: Observation): boolean {
  return (
    typeof o.node === 'string' && o.node.length > 0 &&
    Number.isSafeInteger(o.term) && o.term >= 0 &&
    (o.leader === null || (typeof o.leader === 'string' && o.leader.length > 0)) &&
    Number.isSafeInteger(o.appliedIndex) && o.appliedIndex >= 0 &&
    typeof o.stateRoot === 'string'
  );
}

export class SplitBrainDetector {
  private readonly leaders: Window;
  private readonly roots: Window;
  /** Outcome counts (exported as custody_split_brain_observations_total{result}). */
  readonly counts: Record<ObserveResult, number> = { accepted: 0, stale: 0, invalid: 0, alarm: 0 };

  constructor(lim: DetectorLimits = limits) {
    if (!(Number.isSafeInteger(lim.termsTrackedMax) && lim.termsTrackedMax > 0 && Number.isSafeInteger(lim.rootsTrackedMax) && lim.rootsTrackedMax > 0)) {
      throw new RangeError('SplitBrainDetector: termsTrackedMax and rootsTrackedMax must be positive integers');
    }
    this.leaders = new Window(lim.termsTrackedMax);
    this.roots = new Window(lim.rootsTrackedMax);
  }

  /**
   * Feeds one observation. Returns the alarm it raises, or null. One incident (one term, one
   * index) raises one alarm however many further reports confirm it.
   */
  observe(o: Observation): Alarm | null {
    const r = this.check(o);
    this.counts[r.result]++;
    return r.alarm;
  }

  /** Slots held now (for tests of the memory bound). */
  tracked(): { terms: number; roots: number } {
    return { terms: this.leaders.held(), roots: this.roots.held() };
  }

  private check(o: Observation): { result: ObserveResult; alarm: Alarm | null } {
    if (!validObservation(o)) return { result: 'invalid', alarm: null };
    let alarm: Alarm | null = null;
    let stale = true;
    if (o.leader !== null) {
      const { prior, stale: s } = this.leaders.record(o.term, o.leader, o.node);
      stale &&= s;
      if (prior !== undefined && prior.value !== o.leader && !prior.alarmed) {
        prior.alarmed = true;
        alarm = { kind: 'two_leaders', term: o.term, first: { reportedBy: prior.reportedBy, value: prior.value }, second: { reportedBy: o.node, value: o.leader } };
      }
    }
    // Index 0 is the empty state before any entry; every node agrees on it by construction.
    if (o.appliedIndex > 0) {
      const { prior, stale: s } = this.roots.record(o.appliedIndex, o.stateRoot, o.node);
      stale &&= s;
      if (prior !== undefined && prior.value !== o.stateRoot && !prior.alarmed && alarm === null) {
        prior.alarmed = true;
        alarm = { kind: 'two_roots', appliedIndex: o.appliedIndex, first: { reportedBy: prior.reportedBy, value: prior.value }, second: { reportedBy: o.node, value: o.stateRoot } };
      }
    }
    if (alarm) return { result: 'alarm', alarm };
    return { result: stale && (o.leader !== null || o.appliedIndex > 0) ? 'stale' : 'accepted', alarm: null };
  }
}

/** One line for logs and the alarm's evidence record. */
export function describeAlarm(a: Alarm): string {
  if (a.kind === 'two_leaders') {
    return `split-brain: term ${a.term} has two leaders: ${a.first.reportedBy} reported ${a.first.value}, ${a.second.reportedBy} reported ${a.second.value}`;
  }
  return `split-brain: applied index ${a.appliedIndex} has two state roots: ${a.first.reportedBy} reported ${a.first.value}, ${a.second.reportedBy} reported ${a.second.value}`;
}
