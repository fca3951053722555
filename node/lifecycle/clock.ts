/**
 * The leader's clock ticks (ledger/apply.ts stampRefusal): while the ledger is idle, the leader
 * proposes a ClockTick whenever its ledger clock has not moved for ledger.clockTickIdleMs, so the
 * ledger clock trails real time by less than that and the next honest entry, after an idle gap of
 * any length, is stamped within ledger.stampAheadMs of it. A tick goes through the ledger port,
 * which refuses it locally (STAMP_AHEAD) when this node's own clock is implausibly ahead: a node
 * with a fast clock never ticks the ledger forward.
 */
import { ledger as limits } from '../../proto/limits.js';
import { isCustodyError } from '../../proto/errors.js';
import type { LedgerPort } from './ports.js';

export class ClockTicker {
  private timer: NodeJS.Timeout | null = null;
  private inFlight = false;
  private lastRefusal = '';

  constructor(private readonly o: { readonly nodeId: string; readonly ledger: LedgerPort; readonly log: (l: string) => void; readonly now?: () => number }) {}

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
    const me = s.cluster?.nodes[this.o.nodeId];
    if (me === undefined || me.status !== 'active') return false;
    const now = (this.o.now ?? Date.now)();
    if (now - s.clockMs < limits.clockTickIdleMs) return false;
    this.inFlight = true;
    try {
      const v = await this.o.ledger.propose({ type: 'ClockTick', nodeId: me.id, passport: me.passport });
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

  /** A refusal is said once until it changes (a fast clock would otherwise repeat it every check). */
  private say(why: string): void {
    const code = why.split(':')[0] ?? why;
    if (code === this.lastRefusal) return;
    this.lastRefusal = code;
    this.o.log(`${this.o.nodeId}: clock tick not applied: ${why}`);
  }
}
