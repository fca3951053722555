/**
 * Byte layouts of everything the node stores in LevelDB. Every value carries a version byte and a
 * CRC-32C of its payload, so bit rot, a torn or misplaced value, or a hand edit is detected when
 * the node opens its store, before anything is served (DESIGN.md §2 persistence contract).
 *
 *   value   = version:u8 (=1) | crc32c(payload):u32be | payload
 *   entry   = term:u64be | index:u64be | type:u8 (0 normal, 1 conf) | data
 *   hard    = utf8 JSON { term, vote, commit }
 *   snap    = metaLen:u32be | utf8 JSON meta { index, term, conf } | data
 *
 * Keys are bytes: `raft/hs`, `raft/snap`, `raft/log/` + index as u64 big-endian (so LevelDB's
 * bytewise order is log order), and `app/` + the application's own key.
 */
import type { ConfState, Entry, HardState, Snapshot } from '../core/types.js';
import { crc32c } from './crc32c.js';

export const VALUE_VERSION = 1;
const HEADER_BYTES = 5;

export const KEY_HS = Buffer.from('raft/hs');
export const KEY_SNAP = Buffer.from('raft/snap');
/** A certified snapshot kept to send followers while the stored one is not certified yet (leveldb.ts). */
export const KEY_SNAP_SEND = Buffer.from('raft/snap-send');
export const LOG_PREFIX = Buffer.from('raft/log/');
export const APP_PREFIX = Buffer.from('app/');

export function logKey(index: number): Buffer {
  const k = Buffer.alloc(LOG_PREFIX.length + 8);
  LOG_PREFIX.copy(k, 0);
  k.writeBigUInt64BE(BigInt(index), LOG_PREFIX.length);
  return k;
}

/** The index named by a `raft/log/` key, or null if the key is not a well-formed log key. */
export function logKeyIndex(k: Uint8Array): number | null {
  if (k.length !== LOG_PREFIX.length + 8) return null;
  const b = Buffer.from(k.buffer, k.byteOffset, k.length);
  if (!b.subarray(0, LOG_PREFIX.length).equals(LOG_PREFIX)) return null;
  const v = b.readBigUInt64BE(LOG_PREFIX.length);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? null : Number(v);
}

const APP_PREFIX_TEXT = APP_PREFIX.toString('utf8');
export function appKey(key: string): Buffer {
  return Buffer.from(APP_PREFIX_TEXT + key, 'utf8'); // one buffer: every stored application key goes through here
}

/** Human-readable name of a stored key for error messages. */
export function describeKey(k: Uint8Array): string {
  const idx = logKeyIndex(k);
  if (idx !== null) return `raft/log/${idx.toString(16).padStart(16, '0')} (entry index ${idx})`;
  return Buffer.from(k).toString('utf8');
}

export function seal(payload: Uint8Array): Buffer {
  const v = Buffer.allocUnsafe(HEADER_BYTES + payload.length); // every byte is written below
  v[0] = VALUE_VERSION;
  v.writeUInt32BE(crc32c(payload), 1);
  v.set(payload, HEADER_BYTES);
  return v;
}

/** The payload of a sealed value, or a string saying why it is not valid. */
export function unseal(v: Uint8Array): Uint8Array | string {
  if (v.length < HEADER_BYTES) return `value is ${v.length} bytes, shorter than its ${HEADER_BYTES}-byte header`;
  if (v[0] !== VALUE_VERSION) return `unknown value version ${v[0]}`;
  const b = Buffer.from(v.buffer, v.byteOffset, v.length);
  const want = b.readUInt32BE(1);
  const payload = b.subarray(HEADER_BYTES);
  const got = crc32c(payload);
  if (got !== want) return `CRC-32C mismatch (stored ${want.toString(16)}, computed ${got.toString(16)})`;
  return payload;
}

export function encodeEntry(e: Entry): Buffer {
  const p = Buffer.alloc(17 + e.data.length);
  p.writeBigUInt64BE(BigInt(e.term), 0);
  p.writeBigUInt64BE(BigInt(e.index), 8);
  p[16] = e.type === 'conf' ? 1 : 0;
  p.set(e.data, 17);
  return seal(p);
}

export function decodeEntry(payload: Uint8Array): Entry | string {
  if (payload.length < 17) return `entry payload is ${payload.length} bytes, shorter than 17`;
  const b = Buffer.from(payload.buffer, payload.byteOffset, payload.length);
  const term = Number(b.readBigUInt64BE(0));
  const index = Number(b.readBigUInt64BE(8));
  const t = b[16];
  if (t !== 0 && t !== 1) return `unknown entry type ${t}`;
  // Copy: the store's read buffer must not be aliased by the long-lived in-memory log.
  return { term, index, type: t === 1 ? 'conf' : 'normal', data: new Uint8Array(b.subarray(17)) };
}

export function encodeHardState(hs: HardState): Buffer {
  return seal(Buffer.from(JSON.stringify({ term: hs.term, vote: hs.vote, commit: hs.commit }), 'utf8'));
}

export function decodeHardState(payload: Uint8Array): HardState | string {
  let o: unknown;
  try {
    o = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    return 'hard state is not valid JSON';
  }
  const r = o as { term?: unknown; vote?: unknown; commit?: unknown };
  if (!isIndex(r.term) || !isIndex(r.commit) || !(r.vote === null || typeof r.vote === 'string')) return 'hard state fields are out of range';
  return { term: r.term, vote: r.vote, commit: r.commit };
}

export function encodeSnapshot(s: Snapshot): Buffer {
  const meta = Buffer.from(JSON.stringify(s.meta), 'utf8');
  const p = Buffer.alloc(4 + meta.length + s.data.length);
  p.writeUInt32BE(meta.length, 0);
  meta.copy(p, 4);
  p.set(s.data, 4 + meta.length);
  return seal(p);
}

export function decodeSnapshot(payload: Uint8Array): Snapshot | string {
  const b = Buffer.from(payload.buffer, payload.byteOffset, payload.length);
  if (b.length < 4) return 'snapshot payload is too short';
  const n = b.readUInt32BE(0);
  if (4 + n > b.length) return 'snapshot metadata length exceeds the value';
  let meta: unknown;
  try {
    meta = JSON.parse(b.subarray(4, 4 + n).toString('utf8'));
  } catch {
    return 'snapshot metadata is not valid JSON';
  }
  const m = meta as { index?: unknown; term?: unknown; conf?: unknown };
  if (!isIndex(m.index) || !isIndex(m.term) || !isConf(m.conf)) return 'snapshot metadata fields are out of range';
  return { meta: { index: m.index, term: m.term, conf: m.conf }, data: new Uint8Array(b.subarray(4 + n)) };
}

function isIndex(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

function isIds(x: unknown): x is string[] {
  return Array.isArray(x) && x.every((s) => typeof s === 'string');
}

function isConf(x: unknown): x is ConfState {
  const c = x as Partial<Record<keyof ConfState, unknown>> | null;
  return (
    typeof c === 'object' && c !== null &&
    isIds(c.voters) && isIds(c.learners) && isIds(c.votersOutgoing) && isIds(c.learnersNext) && typeof c.autoLeave === 'boolean'
  );
}
