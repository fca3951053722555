/**
 * The simulator's replicated state machine: client sessions that make proposals idempotent
 * (Raft thesis §6.3: each client command carries a client id and a sequence number; the state
 * machine applies a command once and answers duplicates from the session). Its state root is a
 * running hash that every node must agree on at every applied index.
 */
import type { Entry } from '../../raft/core/types.js';
import { entryDigest, hashNums } from './hash.js';

const OP_MAGIC = 0xc1;
const OP_HEADER_BYTES = 9;

/** A client command: client id, sequence number, and filler bytes to give it a size. */
export function encodeOp(client: number, seq: number, payloadBytes: number): Uint8Array {
  const b = new Uint8Array(OP_HEADER_BYTES + payloadBytes);
  b[0] = OP_MAGIC;
  putU32(b, 1, client);
  putU32(b, 5, seq);
  for (let i = 0; i < payloadBytes; i++) b[OP_HEADER_BYTES + i] = (seq + i) & 0xff;
  return b;
}

function putU32(b: Uint8Array, at: number, x: number): void {
  b[at] = x >>> 24;
  b[at + 1] = (x >>> 16) & 0xff;
  b[at + 2] = (x >>> 8) & 0xff;
  b[at + 3] = x & 0xff;
}

function getU32(b: Uint8Array, at: number): number {
  return (((b[at] as number) << 24) | ((b[at + 1] as number) << 16) | ((b[at + 2] as number) << 8) | (b[at + 3] as number)) >>> 0;
}

export function decodeOp(data: Uint8Array): { client: number; seq: number } | null {
  if (data.length < OP_HEADER_BYTES || data[0] !== OP_MAGIC) return null;
  return { client: getU32(data, 1), seq: getU32(data, 5) };
}

export interface Session {
  /** Highest sequence number applied for this client. */
  seq: number;
  /** Log index at which that sequence number was first applied. */
  index: number;
}

export type ApplyKind = 'empty' | 'op' | 'duplicate' | 'conf';

export class AppState {
  applied = 0;
  root = 0;
  opsApplied = 0;
  readonly sessions = new Map<number, Session>();

  /** Apply one committed entry; the caller has checked that it is the next index. */
  apply(e: Entry): ApplyKind {
    this.applied = e.index;
    if (e.type === 'conf') {
      this.root = hashNums(0x33, this.root, entryDigest(e));
      return 'conf';
    }
    const op = decodeOp(e.data);
    if (op === null) return 'empty'; // a new leader's empty entry (§5.4.2) or foreign data
    const s = this.sessions.get(op.client);
    if (s !== undefined && op.seq <= s.seq) return 'duplicate';
    this.sessions.set(op.client, { seq: op.seq, index: e.index });
    this.opsApplied++;
    this.root = hashNums(0x44, this.root, op.client, op.seq);
    return 'op';
  }

  encode(): Uint8Array {
    const sessions = [...this.sessions.entries()].sort((a, b) => a[0] - b[0]).map(([c, s]) => [c, s.seq, s.index]);
    return new TextEncoder().encode(JSON.stringify({ applied: this.applied, root: this.root, ops: this.opsApplied, sessions }));
  }

  /** The empty state machine, as of `index` (0, or the bootstrap snapshot's index). */
  static empty(index: number): AppState {
    const a = new AppState();
    a.applied = index;
    return a;
  }

  static decode(b: Uint8Array): AppState {
    const a = new AppState();
    const j = JSON.parse(new TextDecoder().decode(b)) as { applied: number; root: number; ops: number; sessions: [number, number, number][] };
    a.applied = j.applied;
    a.root = j.root;
    a.opsApplied = j.ops;
    for (const [c, seq, index] of j.sessions) a.sessions.set(c, { seq, index });
    return a;
  }
}
