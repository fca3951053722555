/**
 * The run's trace: a running hash over every event (two runs of one seed must produce the same
 * hash, which is what "replays exactly" means) and a ring of the most recent events, formatted
 * only when a failure is printed.
 */
import type { Message } from '../../raft/core/types.js';
import { Hasher } from './hash.js';

const KINDS = [
  'deliver', 'tick', 'ready', 'apply', 'propose', 'crash', 'restart', 'partition', 'heal',
  'isolate', 'stall', 'clock', 'conf', 'transfer', 'ack', 'retire', 'liveness', 'config', 'read', 'violation',
  'restore', 'wipe', 'fail', 'rolling', 'exchange', 'alarm', 'guard',
] as const;
export type TraceKind = (typeof KINDS)[number];
const KIND_CODE = new Map<string, number>(KINDS.map((k, i) => [k, i + 1]));

interface Event {
  step: number;
  kind: TraceKind;
  node: string;
  msg: Message | null;
  nums: readonly number[];
  text: string;
}

export class Trace {
  private readonly h = new Hasher(0x7ace);
  private readonly ring: (Event | undefined)[];
  private next = 0;
  events = 0;

  constructor(private readonly keep = 48) {
    this.ring = new Array<Event | undefined>(keep);
  }

  private push(ev: Event): void {
    this.ring[this.next] = ev;
    this.next = (this.next + 1) % this.keep;
    this.events++;
  }

  /** An event with a few numbers and an optional short text. */
  add(step: number, kind: TraceKind, node: string, nums: readonly number[] = [], text = ''): void {
    this.h.u32(step).u32(KIND_CODE.get(kind) ?? 0).str(node);
    for (const n of nums) this.h.num(n);
    if (text) this.h.str(text);
    this.push({ step, kind, node, msg: null, nums, text });
  }

  /** An event too frequent to be worth showing (a tick): hashed, not kept. */
  mix(step: number, kind: TraceKind, node: string): void {
    this.h.u32(step).u32(KIND_CODE.get(kind) ?? 0).str(node);
  }

  deliver(step: number, m: Message): void {
    this.h.u32(step).u32(1).str(m.type).str(m.from).str(m.to).num(m.term).num(m.logTerm).num(m.index)
      .num(m.commit).u32(m.entries.length).u32(m.reject ? 1 : 0).num(m.rejectHint);
    this.push({ step, kind: 'deliver', node: m.to, msg: m, nums: [], text: '' });
  }

  hash(): string {
    return this.h.hex();
  }

  /** The last events, oldest first. */
  tail(n = this.keep): string[] {
    const out: string[] = [];
    const count = Math.min(n, this.keep, this.events);
    for (let k = count; k > 0; k--) {
      const ev = this.ring[(this.next - k + this.keep) % this.keep];
      if (ev) out.push(format(ev));
    }
    return out;
  }
}

function format(ev: Event): string {
  const at = `step ${String(ev.step).padStart(6)}`;
  if (ev.msg) {
    const m = ev.msg;
    const ents = m.entries.length > 0 ? ` entries ${m.entries[0]?.index}..${m.entries[m.entries.length - 1]?.index}` : '';
    const snap = m.snapshot ? ` snap@${m.snapshot.meta.index} off ${m.snapshot.offset}${m.snapshot.last ? ' last' : ''}` : '';
    return `${at}  ${m.from} -> ${m.to} ${m.type} term ${m.term} logTerm ${m.logTerm} index ${m.index} commit ${m.commit}${m.reject ? ` reject hint ${m.rejectHint}` : ''}${ents}${snap}`;
  }
  return `${at}  ${ev.node} ${ev.kind}${ev.nums.length ? ` ${ev.nums.join(' ')}` : ''}${ev.text ? ` ${ev.text}` : ''}`;
}
