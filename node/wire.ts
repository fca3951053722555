/**
 * proto/raft.proto on the wire: loading the service definitions, converting between the core's
 * `Message` and the protobuf shape, and validating every inbound field (a peer may be buggy or
 * hostile; the core validates Raft semantics, this validates shape and bounds).
 *
 * The request deserializers of the peer service are wrapped so that an undecodable or oversized
 * frame reaches the handler as a `BadFrame` instead of an opaque gRPC error: the handler can then
 * refuse it with a reason code (FRAME_MALFORMED / FRAME_TOO_LARGE) in the status metadata.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';
import { node as nodeLimits, raft as raftLimits } from '../proto/limits.js';
import type { ConfState, Entry, Message, MessageType, SnapshotChunk } from '../raft/core/types.js';

export const PROTO_PATH = fileURLToPath(new URL('../../proto/raft.proto', import.meta.url));

const loaderOptions: protoLoader.Options = { keepCase: false, longs: Number, enums: String, bytes: Buffer, defaults: true, oneofs: true };

let cached: protoLoader.PackageDefinition | null = null;
export function packageDefinition(): protoLoader.PackageDefinition {
  cached ??= protoLoader.loadSync(PROTO_PATH, loaderOptions);
  return cached;
}

/** The metadata key carrying a reason code from proto/reasons.ts on every refusal. */
export const REASON_METADATA_KEY = 'custody-reason';

export interface BadFrame {
  readonly bad: 'FRAME_MALFORMED' | 'FRAME_TOO_LARGE';
  readonly detail: string;
}

export function isBadFrame(x: unknown): x is BadFrame {
  return typeof x === 'object' && x !== null && 'bad' in x;
}

/** A service definition whose request deserializer reports bad frames instead of throwing. */
export function guardedService(name: string, frameBytesMax: number): grpc.ServiceDefinition {
  const def = packageDefinition()[name] as unknown as Record<string, protoLoader.MethodDefinition<object, object>>;
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [m, d] of Object.entries(def)) {
    out[m] = {
      ...d,
      requestDeserialize: (buf: Buffer): unknown => {
        if (buf.length > frameBytesMax) return { bad: 'FRAME_TOO_LARGE', detail: `frame of ${buf.length} bytes exceeds ${frameBytesMax}` } satisfies BadFrame;
        try {
          return d.requestDeserialize(buf);
        } catch (e) {
          return { bad: 'FRAME_MALFORMED', detail: `undecodable frame: ${(e as Error).message}` } satisfies BadFrame;
        }
      },
    } as grpc.MethodDefinition<unknown, unknown>;
  }
  return out as grpc.ServiceDefinition;
}

/** A client constructor for a service of proto/raft.proto. */
export function clientConstructor(name: 'RaftPeer' | 'Custody'): grpc.ServiceClientConstructor {
  const def = packageDefinition()[`custody.raft.v1.${name}`] as grpc.ServiceDefinition;
  return grpc.makeGenericClientConstructor(def, name);
}

const TYPE_TO_WIRE: Record<MessageType, string> = {
  app: 'APP',
  appResp: 'APP_RESP',
  vote: 'VOTE',
  voteResp: 'VOTE_RESP',
  preVote: 'PRE_VOTE',
  preVoteResp: 'PRE_VOTE_RESP',
  heartbeat: 'HEARTBEAT',
  heartbeatResp: 'HEARTBEAT_RESP',
  snap: 'SNAP',
  snapResp: 'SNAP_RESP',
  timeoutNow: 'TIMEOUT_NOW',
  prop: 'PROP',
  readIndex: 'READ_INDEX',
  readIndexResp: 'READ_INDEX_RESP',
  transferLeader: 'TRANSFER_LEADER',
};
const WIRE_TO_TYPE = new Map<string, MessageType>(Object.entries(TYPE_TO_WIRE).map(([k, v]) => [v, k as MessageType]));

export interface WireConf {
  voters: string[];
  learners: string[];
  votersOutgoing: string[];
  learnersNext: string[];
  autoLeave: boolean;
}
export interface WireEntry {
  term: number;
  index: number;
  type: string;
  data: Buffer;
}
export interface WireMessage {
  type: string;
  from: string;
  to: string;
  term: number;
  logTerm: number;
  index: number;
  entries: WireEntry[];
  commit: number;
  reject: boolean;
  rejectHint: number;
  context: Buffer;
  snapshot: { meta: { index: number; term: number; conf: WireConf | null } | null; size: number; offset: number; data: Buffer; last: boolean } | null;
}
export interface WireBatch {
  from: string;
  messages: WireMessage[];
  /** Observation exchange bytes (node/splitbrain/exchange.ts); empty or absent when none. */
  exchange?: Buffer;
}

const buf = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.length);

export function toWire(m: Message): WireMessage {
  return {
    type: TYPE_TO_WIRE[m.type],
    from: m.from,
    to: m.to,
    term: m.term,
    logTerm: m.logTerm,
    index: m.index,
    entries: m.entries.map((e) => ({ term: e.term, index: e.index, type: e.type === 'conf' ? 'ENTRY_CONF' : 'ENTRY_NORMAL', data: buf(e.data) })),
    commit: m.commit,
    reject: m.reject,
    rejectHint: m.rejectHint,
    context: buf(m.context),
    snapshot: m.snapshot
      ? {
          meta: { index: m.snapshot.meta.index, term: m.snapshot.meta.term, conf: { ...m.snapshot.meta.conf, voters: [...m.snapshot.meta.conf.voters], learners: [...m.snapshot.meta.conf.learners], votersOutgoing: [...m.snapshot.meta.conf.votersOutgoing], learnersNext: [...m.snapshot.meta.conf.learnersNext] } },
          size: m.snapshot.size,
          offset: m.snapshot.offset,
          data: buf(m.snapshot.data),
          last: m.snapshot.last,
        }
      : null,
  };
}

/** Approximate encoded size, for batching and queue accounting. */
export function wireSize(m: Message): number {
  let n = 64 + m.context.length;
  for (const e of m.entries) n += 32 + e.data.length;
  if (m.snapshot) n += 128 + m.snapshot.data.length + 16 * m.snapshot.meta.conf.voters.length;
  return n;
}

const ID_BYTES_MAX = 128;
const isNat = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
const isId = (x: unknown): x is string => typeof x === 'string' && x.length > 0 && Buffer.byteLength(x) <= ID_BYTES_MAX;
const isIds = (x: unknown): x is string[] => Array.isArray(x) && x.length <= 1024 && x.every(isId);

/** A validated core Message, or a string naming the first bad field. */
export function fromWire(w: WireMessage): Message | string {
  const type = WIRE_TO_TYPE.get(w.type);
  if (!type) return `unknown message type ${String(w.type)}`;
  if (!isId(w.from)) return 'from must be a node id';
  if (!isId(w.to)) return 'to must be a node id';
  for (const f of ['term', 'logTerm', 'index', 'commit', 'rejectHint'] as const) if (!isNat(w[f])) return `${f} out of range`;
  if (!Array.isArray(w.entries)) return 'entries must be a list';
  const entries: Entry[] = [];
  let bytes = 0;
  for (const e of w.entries) {
    if (!isNat(e.term) || !isNat(e.index)) return 'entry term/index out of range';
    if (e.type !== 'ENTRY_NORMAL' && e.type !== 'ENTRY_CONF') return `unknown entry type ${String(e.type)}`;
    if (!Buffer.isBuffer(e.data) || e.data.length > raftLimits.proposalBytesMax) return 'entry data too large';
    bytes += e.data.length;
    entries.push({ term: e.term, index: e.index, type: e.type === 'ENTRY_CONF' ? 'conf' : 'normal', data: new Uint8Array(e.data) });
  }
  if (bytes > nodeLimits.peerBatchBytesMax) return 'entries exceed a batch';
  if (!Buffer.isBuffer(w.context) || w.context.length > 1024) return 'context too large';
  let snapshot: SnapshotChunk | null = null;
  if (w.snapshot) {
    const s = w.snapshot;
    const c = s.meta?.conf;
    if (!s.meta || !c || !isNat(s.meta.index) || !isNat(s.meta.term)) return 'snapshot meta missing';
    if (!isIds(c.voters) || !isIds(c.learners) || !isIds(c.votersOutgoing) || !isIds(c.learnersNext) || typeof c.autoLeave !== 'boolean') return 'snapshot conf malformed';
    if (!isNat(s.size) || !isNat(s.offset) || s.size > raftLimits.snapshotBytesMax) return 'snapshot size out of range';
    if (!Buffer.isBuffer(s.data) || s.data.length > raftLimits.snapshotChunkBytes || s.offset + s.data.length > s.size) return 'snapshot chunk out of range';
    const conf: ConfState = { voters: c.voters, learners: c.learners, votersOutgoing: c.votersOutgoing, learnersNext: c.learnersNext, autoLeave: c.autoLeave };
    snapshot = { meta: { index: s.meta.index, term: s.meta.term, conf }, size: s.size, offset: s.offset, data: new Uint8Array(s.data), last: s.last === true };
  }
  if (type === 'snap' && !snapshot) return 'a snap message carries no chunk';
  return {
    type,
    from: w.from,
    to: w.to,
    term: w.term,
    logTerm: w.logTerm,
    index: w.index,
    entries,
    commit: w.commit,
    reject: w.reject === true,
    rejectHint: w.rejectHint,
    context: new Uint8Array(w.context),
    snapshot,
  };
}
