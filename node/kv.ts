/**
 * The node's replicated key-value state machine: what client proposals apply to until the ledger
 * state machine is wired in behind the same `Application` interface. Deterministic: the same
 * commands in the same order give the same state and the same root on every node.
 *
 * The root is a hash chain over applied commands, root' = SHA-256(root | index:u64 | command), so
 * two nodes with equal roots at one applied index applied the same commands at the same indexes.
 */
import { createHash } from 'node:crypto';
import type { Application } from '../raft/driver.js';
import type { AppWrite } from '../raft/storage/leveldb.js';

const KEY_BYTES_MAX = 256;
const ROOT_KEY = 'root';
const KV_PREFIX = 'kv/';
const ZERO_ROOT = '0'.repeat(64);

/** A put command: keyLen:u16 | key utf8 | value. */
export function encodePut(key: string, value: Uint8Array): Uint8Array {
  const k = Buffer.from(key, 'utf8');
  const b = Buffer.alloc(2 + k.length + value.length);
  b.writeUInt16BE(k.length, 0);
  k.copy(b, 2);
  b.set(value, 2 + k.length);
  return b;
}

export function decodePut(cmd: Uint8Array): { key: string; value: Uint8Array } | null {
  const b = Buffer.from(cmd.buffer, cmd.byteOffset, cmd.length);
  if (b.length < 2) return null;
  const n = b.readUInt16BE(0);
  if (n === 0 || n > KEY_BYTES_MAX || b.length < 2 + n) return null;
  return { key: b.subarray(2, 2 + n).toString('utf8'), value: new Uint8Array(b.subarray(2 + n)) };
}

export class KvApp implements Application {
  private readonly kv = new Map<string, Uint8Array>();
  private rootHex = ZERO_ROOT;

  get(key: string): Uint8Array | undefined {
    return this.kv.get(key);
  }

  get size(): number {
    return this.kv.size;
  }

  root(): string {
    return this.rootHex;
  }

  load(get: (key: string) => Uint8Array | undefined, keys: () => Iterable<string>): void {
    this.kv.clear();
    const r = get(ROOT_KEY);
    this.rootHex = r ? Buffer.from(r).toString('utf8') : ZERO_ROOT;
    for (const k of keys()) if (k.startsWith(KV_PREFIX)) this.kv.set(k.slice(KV_PREFIX.length), get(k) as Uint8Array);
  }

  apply(index: number, command: Uint8Array): { result: Uint8Array; writes: AppWrite[] } | { reason: 'PAYLOAD_REJECTED'; detail: string } {
    const put = decodePut(command);
    if (!put) return { reason: 'PAYLOAD_REJECTED', detail: `not a put command (key must be 1..${KEY_BYTES_MAX} bytes)` };
    const idx = Buffer.alloc(8);
    idx.writeBigUInt64BE(BigInt(index));
    this.rootHex = createHash('sha256').update(Buffer.from(this.rootHex, 'hex')).update(idx).update(command).digest('hex');
    this.kv.set(put.key, put.value);
    return {
      result: Buffer.from(this.rootHex, 'hex'),
      writes: [
        { key: KV_PREFIX + put.key, value: put.value },
        { key: ROOT_KEY, value: Buffer.from(this.rootHex, 'utf8') },
      ],
    };
  }

  snapshot(): Uint8Array {
    const parts: Buffer[] = [];
    const head = Buffer.from(this.rootHex, 'utf8');
    parts.push(u32(head.length), head);
    for (const [k, v] of this.kv) {
      const kb = Buffer.from(k, 'utf8');
      parts.push(u32(kb.length), kb, u32(v.length), Buffer.from(v));
    }
    return Buffer.concat(parts);
  }

  restore(data: Uint8Array): AppWrite[] {
    const writes: AppWrite[] = [];
    for (const k of this.kv.keys()) writes.push({ key: KV_PREFIX + k, value: null });
    this.kv.clear();
    this.rootHex = ZERO_ROOT;
    if (data.length > 0) {
      const b = Buffer.from(data.buffer, data.byteOffset, data.length);
      let o = 0;
      const take = (): Buffer => {
        const n = b.readUInt32BE(o);
        const v = b.subarray(o + 4, o + 4 + n);
        if (v.length !== n) throw new Error('kv snapshot truncated');
        o += 4 + n;
        return v;
      };
      this.rootHex = take().toString('utf8');
      while (o < b.length) {
        const k = take().toString('utf8');
        const v = new Uint8Array(take());
        this.kv.set(k, v);
      }
    }
    for (const [k, v] of this.kv) writes.push({ key: KV_PREFIX + k, value: v });
    writes.push({ key: ROOT_KEY, value: Buffer.from(this.rootHex, 'utf8') });
    return writes;
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
