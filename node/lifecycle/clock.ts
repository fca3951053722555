/**
 * The leader's clock ticks (ledger/apply.ts stampRefusal): while the ledger is idle, the leader
 * proposes a ClockTick whenever its ledger clock has not moved for ledger.clockTickIdleMs, so the
 * ledger clock trails real time by less than that and the next honest entry, after an idle gap of
 * any length, is stamped within ledger.stampAheadMs of it. A tick goes through the ledger port,
 * which refuses it locally (STAMP_AHEAD) when this node's own clock is implausibly ahead: a node
 * with a fast clock never ticks the ledger forward.
 *
 * Catching up (attested time, ledger/apply.ts stampRefusal). When the ledger clock is further
 * behind than the bound (no leader ran for longer: a majority outage, a restore from an old
 * snapshot, a cluster seeded from old journals), a plain tick would be refused like every other
 * entry. The leader then asks every voter, itself included, for a signed reading of its own clock
 * (peer RPC ClockReading, each call bounded by lifecycle.clockReadingWaitMs, all at once), keeps
 * the answers that verify under the voters' identity keys on its ledger, the latest majority of
 * them (ledger/clock-reading.ts chooseReadings), and proposes a ClockTick carrying them: the
 * ledger accepts its stamp up to the smallest of them + the bound. Nothing here trusts this
 * node's clock alone: with fewer than a majority of voters answering, the tick is refused as
 * before and the next check asks again.
 *
 * Readings are gathered only when the plain tick would be refused (the pure rule says so), not on
 * every tick: an idle cluster's ticks stay one small entry a minute with no fan-out of RPCs and
 * signatures, and the readings, which only matter past the bound, are asked for exactly then.
 */
import { ledger as limits, lifecycle as lifecycleLimits } from '../../proto/limits.js';
import { isCustodyError } from '../../proto/errors.js';
import { stampRefusal } from '../../ledger/apply.js';
import { type ClockReading, chooseReadings } from '../../ledger/clock-reading.js';
import type { LedgerEvent } from '../../ledger/events.js';
import type { LedgerPort } from './ports.js';

/** Another voter, asked for a signed reading of its own clock (peer.ts RemoteClockReader). */
export interface ClockReadingPeer {
  readonly nodeId: string;
  reading(deadlineMs: number): Promise<ClockReading>;
}

/** Where a leader gets the voters' readings: its own, signed on the spot, and its peers'. */
export interface ClockWitnesses {
  /** This node's reading of its own clock, signed with its identity key. */
  own(): ClockReading;
  /** The other nodes to ask (only voters of the ledger roster are counted). */
  peers(): readonly ClockReadingPeer[];
}

export class ClockTicker {
  private timer: NodeJS.Timeout | null = null;
  private inFlight = false;
  private lastRefusal = '';

  constructor(private readonly o: {
    readonly nodeId: string; readonly ledger: LedgerPort; readonly log: (l: string) => void; readonly now?: () => number;
    /** Without witnesses the ticker only ticks within the bound (and never catches up). */
    readonly witnesses?: ClockWitnesses;
    readonly readingWaitMs?: number;
  }) {}

  start(): void {
    this.timer ??= setInterval(() => void this.tick(), Math.max(1_000, Math.floor(limits.clockTickIdleMs / 4)));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** One check: proposes a tick if this node leads, is active, and the ledger clock is idle. Returns whether it proposed. */
  async tick(): Promise<boolean> {
    if (this.inFlight || !this.o.ledger.isLeader()) return false;
    const s = this.o.ledger.state();
    const c = s.cluster;
    const me = c?.nodes[this.o.nodeId];
    if (c === null || me === undefined || me.status !== 'active') return false;
    const now = (this.o.now ?? Date.now)();
    if (now - s.clockMs < limits.clockTickIdleMs) return false;
    this.inFlight = true;
    try {
      let event: LedgerEvent = { type: 'ClockTick', nodeId: me.id, passport: me.passport };
      if (this.o.witnesses !== undefined && stampRefusal(s, event, now) !== null) {
        const readings = chooseReadings(c.nodes, c.clusterId, await this.gather(this.o.witnesses));
        event = { ...event, readings };
      }
      const v = await this.o.ledger.propose(event);
      if (!v.ok) this.say(`${v.reason ?? 'INTERNAL'}: ${v.detail}`);
      else this.lastRefusal = '';
      return true;
    } catch (e) {
      this.say(isCustodyError(e) ? `${e.reason}: ${e.detail}` : String(e));
      return false;
    } finally {
      this.inFlight = false;
    }
  }

  /** This node's reading and every peer's that answers within the wait; failures are dropped. */
  private async gather(w: ClockWitnesses): Promise<ClockReading[]> {
    const waitMs = this.o.readingWaitMs ?? lifecycleLimits.clockReadingWaitMs;
    const out: ClockReading[] = [w.own()];
    const answers = await Promise.allSettled(w.peers().map((p) => withDeadline(p.reading(waitMs), waitMs)));
    for (const a of answers) if (a.status === 'fulfilled') out.push(a.value);
    return out;
  }

  /** A refusal is said once until it changes (a fast clock would otherwise repeat it every check). */
  private say(why: string): void {
    const code = why.split(':')[0] ?? why;
    if (code === this.lastRefusal) return;
    this.lastRefusal = code;
    this.o.log(`${this.o.nodeId}: clock tick not applied: ${why}`);
  }
}

/** `p`, or a rejection once `ms` have passed (a peer that never answers holds no tick up). */
function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms); })]).finally(() => clearTimeout(timer));
}
