/**
 * The lifecycle between daemons (proto/admin.proto service LifecyclePeer), over the same mTLS
 * port as the admin API but only for node certificates:
 *
 *   PeerExchange       Exchange whose blobs live on every node: a put is stored locally and
 *                      pushed to every peer (retried until the peer has it, bounded); a get that
 *                      misses locally asks the peers. Blobs are untrusted (see ports.ts), and
 *                      what a peer may store here is bounded (see "Who may put what" below).
 *   RemoteParticipant  ParticipantPort of another node: nonce commitment and signature share
 *                      requests, answered by that node's participant after its own ledger checks.
 *   peerHandlers       the server side of both.
 */
import * as grpc from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import { CustodyError, isCustodyError } from '../../proto/errors.js';
import { lifecycle as limits, node as nodeLimits } from '../../proto/limits.js';
import { bytesEqual, toHex } from '../../ledger/encoding.js';
import { repairsOf, type ClusterState } from '../../ledger/state.js';
import { backupRecordKey } from '../../ledger/backup-policy.js';
import { errorOf } from '../client.js';
import { channelCredentials, identityOptions, type TlsMaterial } from '../tls.js';
import { INCARNATION_METADATA_KEY, incarnationRefusal } from '../backup/incarnation.js';
import { adminPackage, refusal } from '../admin/server.js';
import type { SigningCommitment } from '../../kernel/wire.js';
import type { Exchange, NonceOffer, ParticipantPort } from './ports.js';
import type { CosignPeer } from '../checkpoints.js';
import type { ClockReading } from '../../ledger/clock-reading.js';
import type { ClockReadingPeer } from './clock.js';
import { tlog as tlogLimits } from '../../proto/limits.js';

type Unary = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => void;

const PUSH_ATTEMPTS_MAX = 20;

/*
 * Who may put what (threat: one node, or anyone holding a node certificate, with the aim of
 * rewriting, hiding or exhausting what the others exchange):
 *
 *   Authorship   every key names its author: `transport/<n>`, `dkg/<key>/<epoch>/round1/<n>`,
 *                `dkg/<key>/<epoch>/round2/<n>/<recipient>`, `dkg/<key>/<epoch>/public/<n>` are
 *                node n's (blobAuthor). A Put arriving from a peer is stored only if the peer's
 *                certificate names the key's author (BLOB_KEY_FOREIGN otherwise, and for a key that
 *                names no author), and this node puts only its own keys. So a bad peer can write
 *                its own blobs only; every blob is still checked before use against a cid in the
 *                log or its author's identity signature (ports.ts), which this does not replace.
 *   First write  a stored key is never rewritten: a second put of other bytes is BLOB_EXISTS,
 *                identical bytes are a no-op (retried pushes, a republish after a restart).
 *                The one exception is `transport/<n>` put again by n itself: the statement of its
 *                kernel's current transport key, signed by n (a kernel twin draws a new key per
 *                run). A blob fetched from a peer that is not its author (get() relaying while
 *                the author is away) is handed to the caller but never stored, so a relay cannot
 *                take a key first and lock out its author.
 *   Budget       per author at most lifecycle.blobsPerAuthorMax blobs and blobAuthorBytesMax
 *                bytes, each at most blobBytesMax (BLOB_BUDGET_EXCEEDED): one bad node cannot
 *                starve the others' ceremonies, and a node holds at most nodes x that budget.
 *   Durability   blobs are written to the node's LevelDB (BlobStore) before the put is answered,
 *                so a restarted daemon still has every package it took (before, a full restart
 *                emptied every exchange and acts waited for public key packages), and are dropped
 *                when what they belong to ends (prune): a ceremony's round-1 and round-2 packages
 *                once its epoch is past the ceremony, public packages once the epoch is superseded,
 *                aborted or retired, a transport statement once its node leaves the roster.
 */

/** The node a blob key names as its author, or null if the key has no known form. */
export function blobAuthor(key: string): string | null {
  const id = '([A-Za-z0-9][A-Za-z0-9._-]{0,63})';
  let m = new RegExp(`^transport/${id}$`).exec(key);
  if (m !== null) return m[1] as string;
  m = new RegExp(`^dkg/.+/\\d+/round2/${id}/${id}$`).exec(key);
  if (m !== null) return m[1] as string;
  m = new RegExp(`^dkg/.+/\\d+/(?:round1|public)/${id}$`).exec(key);
  if (m !== null) return m[1] as string;
  // Share repair (repair.ts): repair/<key>/<epoch>/<target>/<decision cid>/{delta/<from>/<to>, sum/<from>, public/<from>, target/<target>}.
  // The target statement is the target's own.
  m = new RegExp(`^repair/.+/\\d+/${id}/[0-9a-f]{64}/(?:delta/${id}/${id}|sum/${id}|public/${id}|target/${id})$`).exec(key);
  if (m !== null) return m[6] !== undefined ? (m[6] === m[1] ? m[6] : null) : ((m[2] ?? m[4] ?? m[5]) as string);
  return null;
}

/** Where a node keeps its exchange blobs across restarts. */
export interface BlobStore {
  /** Every blob stored, read once when the exchange starts. */
  load(): Iterable<readonly [string, Uint8Array]>;
  /** Writes (a null value deletes) before the returned promise resolves. */
  write(changes: readonly { readonly key: string; readonly value: Uint8Array | null }[]): Promise<void>;
}

/** A BlobStore in memory (tests, and daemons without a data directory). */
export class MemoryBlobStore implements BlobStore {
  readonly blobs = new Map<string, Uint8Array>();
  load(): Iterable<readonly [string, Uint8Array]> {
    return [...this.blobs];
  }
  async write(changes: readonly { readonly key: string; readonly value: Uint8Array | null }[]): Promise<void> {
    for (const c of changes) {
      if (c.value === null) this.blobs.delete(c.key);
      else this.blobs.set(c.key, new Uint8Array(c.value));
    }
  }
}

/** The prefix of exchange blobs among a node store's application keys (outside the ledger's `sm/`). */
export const BLOB_STORE_PREFIX = 'exchange/';

/**
 * A BlobStore in the node's LevelDB (raft/storage/leveldb.ts application keys under
 * `exchange/`): written in batches of their own, checksummed like every row, not synced (a
 * process restart keeps them; a blob lost to a power cut is put again by its author).
 */
export function levelBlobStore(storage: { appValue(k: string): Uint8Array | undefined; appKeys(): IterableIterator<string>; persist(p: { hardState: null; entries: readonly never[]; snapshot: null; app: readonly { key: string; value: Uint8Array | null }[]; sync: boolean }): Promise<unknown> }): BlobStore {
  return {
    load() {
      const out: [string, Uint8Array][] = [];
      for (const k of storage.appKeys()) if (k.startsWith(BLOB_STORE_PREFIX)) out.push([k.slice(BLOB_STORE_PREFIX.length), storage.appValue(k) as Uint8Array]);
      return out;
    },
    async write(changes) {
      await storage.persist({ hardState: null, entries: [], snapshot: null, app: changes.map((c) => ({ key: BLOB_STORE_PREFIX + c.key, value: c.value })), sync: false });
    },
  };
}

/** Whether a stored blob's scope has ended in the ledger state `c` (see prune). */
function blobEnded(key: string, c: ClusterState): boolean {
  const t = /^transport\/(.+)$/.exec(key);
  if (t !== null) return c.nodes[t[1] as string] === undefined || c.nodes[t[1] as string]?.status === 'removed';
  const r = /^repair\/(.+)\/(\d+)\/([^/]+)\/([0-9a-f]{64})\//.exec(key);
  if (r !== null) {
    // A repair's packages end with its record: replaced by a later decision, or reported done.
    const rec = repairsOf(c)[backupRecordKey(r[1] as string, Number(r[2]), r[3] as string)];
    return rec !== undefined && (toHex(rec.decisionCid) !== r[4] || rec.repaired !== null);
  }
  const d = /^dkg\/(.+)\/(\d+)\/(round1|round2|public)\//.exec(key);
  if (d === null) return false;
  const e = c.keys[d[1] as string]?.epochs[d[2] as string];
  if (e === undefined) return false; // not yet authorized on this replica (it may lag): kept
  if (d[3] === 'public') return e.status === 'superseded' || e.status === 'aborted' || e.status === 'retired';
  return e.status !== 'ceremony';
}

export class PeerClient {
  private readonly client: grpc.Client;
  /** `incarnation`: this node's (node/backup/incarnation.ts), carried on every call. */
  constructor(readonly nodeId: string, address: string, tls: TlsMaterial, private readonly incarnation = '') {
    const Ctor = grpc.makeGenericClientConstructor(adminPackage()['custody.admin.v1.LifecyclePeer'] as grpc.ServiceDefinition, 'LifecyclePeer');
    this.client = new Ctor(address, channelCredentials(tls), { ...identityOptions(nodeId), 'grpc.max_receive_message_length': nodeLimits.adminRequestBytesMax });
  }
  call<T>(method: string, req: object, deadlineMs: number): Promise<T> {
    const f = (this.client as unknown as Record<string, Unary>)[method] as Unary;
    return new Promise<T>((resolve, reject) => {
      const md = new grpc.Metadata();
      md.set(INCARNATION_METADATA_KEY, this.incarnation);
      f.call(this.client, req, md, { deadline: Date.now() + deadlineMs }, (e, r) => (e ? reject(errorOf(e)) : resolve(r as T)));
    });
  }
  close(): void {
    this.client.close();
  }
}

export class PeerExchange implements Exchange {
  private readonly blobs = new Map<string, Uint8Array>();
  private readonly held = new Map<string, { bytes: number; count: number }>();
  private readonly watchers = new Set<(key: string) => void>();
  private closed = false;

  /** `self`: this node's id, the only author it puts for. */
  constructor(private readonly self: string, private readonly peers: readonly PeerClient[], private readonly log: (l: string) => void, private readonly store$: BlobStore = new MemoryBlobStore()) {
    for (const [k, v] of store$.load()) {
      const a = blobAuthor(k);
      if (a === null) continue;
      this.blobs.set(k, v);
      this.count(a, v.length, 1);
    }
  }

  private count(author: string, bytes: number, n: number): void {
    const h = this.held.get(author) ?? { bytes: 0, count: 0 };
    const next = { bytes: h.bytes + bytes, count: h.count + n };
    if (next.count === 0) this.held.delete(author);
    else this.held.set(author, next);
  }

  /** What one author holds here (for operators and tests). */
  heldBy(author: string): { bytes: number; count: number } {
    return this.held.get(author) ?? { bytes: 0, count: 0 };
  }

  /**
   * Stores a blob `from` a node (a peer's Put, or this node's own put) and tells the watchers.
   * Refusals: BLOB_KEY_FOREIGN, BLOB_EXISTS, BLOB_BUDGET_EXCEEDED, LIMIT_EXCEEDED (key length).
   */
  async store(key: string, value: Uint8Array, from: string): Promise<void> {
    if (key.length === 0 || Buffer.byteLength(key) > limits.blobKeyBytesMax) throw new CustodyError('LIMIT_EXCEEDED', `blob key of ${Buffer.byteLength(key)} bytes (1..${limits.blobKeyBytesMax})`);
    const author = blobAuthor(key);
    if (author === null) throw new CustodyError('BLOB_KEY_FOREIGN', `${key} names no author`);
    if (author !== from) throw new CustodyError('BLOB_KEY_FOREIGN', `${key} is ${author}'s; ${from} may put only its own keys`);
    if (value.length > limits.blobBytesMax) throw new CustodyError('BLOB_BUDGET_EXCEEDED', `a blob of ${value.length} bytes (at most ${limits.blobBytesMax})`);
    const had = this.blobs.get(key);
    if (had !== undefined) {
      if (bytesEqual(had, value)) return;
      if (!key.startsWith('transport/')) throw new CustodyError('BLOB_EXISTS', `${key} is already stored with other bytes (first write wins)`);
    }
    const h = this.heldBy(author);
    const count = h.count + (had === undefined ? 1 : 0);
    const bytes = h.bytes + value.length - (had?.length ?? 0);
    if (count > limits.blobsPerAuthorMax || bytes > limits.blobAuthorBytesMax) {
      throw new CustodyError('BLOB_BUDGET_EXCEEDED', `${author} would hold ${count} blobs, ${bytes} bytes (at most ${limits.blobsPerAuthorMax}, ${limits.blobAuthorBytesMax})`);
    }
    // Taken in memory first, so a concurrent put of the same key sees it (first write wins), then
    // written; a failed write gives the key back.
    const copy = new Uint8Array(value);
    this.blobs.set(key, copy);
    this.count(author, value.length - (had?.length ?? 0), had === undefined ? 1 : 0);
    try {
      await this.store$.write([{ key, value: copy }]);
    } catch (e) {
      if (this.blobs.get(key) === copy) {
        if (had === undefined) this.blobs.delete(key);
        else this.blobs.set(key, had);
        this.count(author, (had?.length ?? 0) - value.length, had === undefined ? -1 : 0);
      }
      throw e;
    }
    for (const w of this.watchers) queueMicrotask(() => w(key));
  }

  local(key: string): Uint8Array | undefined {
    return this.blobs.get(key);
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    await this.store(key, value, this.self);
    for (const p of this.peers) void this.push(p, key, value);
  }

  private async push(p: PeerClient, key: string, value: Uint8Array): Promise<void> {
    for (let i = 0; i < PUSH_ATTEMPTS_MAX && !this.closed; i++) {
      try {
        await p.call('Put', { key, value: Buffer.from(value) }, 5_000);
        return;
      } catch (e) {
        // A refusal with a reason is final (the peer holds other bytes, or its budget for this
        // node is spent): said once, with its code, and not retried.
        if (isCustodyError(e) && (e.reason === 'BLOB_EXISTS' || e.reason === 'BLOB_KEY_FOREIGN' || e.reason === 'BLOB_BUDGET_EXCEEDED' || e.reason === 'LIMIT_EXCEEDED')) {
          this.log(`exchange: ${p.nodeId} refused ${key}: ${e.reason}: ${e.detail}`);
          return;
        }
        await new Promise((r) => setTimeout(r, Math.min(5_000, 100 * 2 ** i)));
      }
    }
    this.log(`exchange: ${p.nodeId} did not take ${key}; it will ask for it`);
  }

  /**
   * A blob: stored here, else asked of its author first and then of the other peers. Only the
   * author's answer is stored; another peer's is returned unstored (see above).
   */
  async get(key: string): Promise<Uint8Array | undefined> {
    const v = this.blobs.get(key);
    if (v !== undefined) return v;
    const author = blobAuthor(key);
    if (author === null) return undefined;
    const order = [...this.peers.filter((p) => p.nodeId === author), ...this.peers.filter((p) => p.nodeId !== author)];
    for (const p of order) {
      let r: { found: boolean; value: Buffer };
      try {
        r = await p.call<{ found: boolean; value: Buffer }>('Get', { key }, 3_000);
      } catch {
        continue; // a peer that is down is simply not asked again this time
      }
      if (!r.found) continue;
      // A copy: a gRPC Buffer may be a view into a pooled allocation, and consumers take
      // `.buffer` of what they get (kernel/transport.ts).
      const copy = new Uint8Array(r.value);
      if (p.nodeId !== author) return copy;
      try {
        await this.store(key, copy, author);
      } catch (e) {
        this.log(`exchange: ${key} from ${author} not kept: ${isCustodyError(e) ? `${e.reason}: ${e.detail}` : String(e)}`);
      }
      return this.blobs.get(key) ?? copy;
    }
    return undefined;
  }

  /** Drops the blobs whose ceremony, epoch or node has ended in the ledger (see above). */
  async prune(c: ClusterState): Promise<number> {
    const gone: string[] = [];
    for (const k of this.blobs.keys()) if (blobEnded(k, c)) gone.push(k);
    if (gone.length === 0) return 0;
    await this.store$.write(gone.map((key) => ({ key, value: null })));
    for (const k of gone) {
      const v = this.blobs.get(k);
      const a = blobAuthor(k);
      if (v === undefined || a === null) continue;
      this.blobs.delete(k);
      this.count(a, -v.length, -1);
    }
    return gone.length;
  }

  watch(l: (key: string) => void): () => void {
    this.watchers.add(l);
    return () => this.watchers.delete(l);
  }

  close(): void {
    this.closed = true;
  }
}
export class RemoteParticipant implements ParticipantPort {
  constructor(readonly nodeId: string, private readonly peer: PeerClient, private readonly deadlineMs: number) {}

  async commit(opId: string): Promise<NonceOffer> {
    const r = await this.peer.call<{ nodeId: string; identifier: string; nonces?: { counter: number | string; hiding: Buffer; binding: Buffer }[] }>('Commit', { opId }, this.deadlineMs);
    return { nodeId: r.nodeId, identifier: r.identifier, nonces: (r.nonces ?? []).map((n) => ({ counter: Number(n.counter), hiding: new Uint8Array(n.hiding), binding: new Uint8Array(n.binding) })) };
  }

  async sign(opId: string, lists: readonly (readonly SigningCommitment[])[], counters: readonly number[]): Promise<{ identifier: string; shares: Uint8Array[] }> {
    const wire = lists.map((l) => ({ commitments: l.map((c) => ({ identifier: c.identifier, hiding: Buffer.from(c.hiding), binding: Buffer.from(c.binding) })) }));
    const r = await this.peer.call<{ identifier: string; shares?: Buffer[] }>('Sign', { opId, lists: wire, counters: [...counters] }, this.deadlineMs);
    return { identifier: r.identifier, shares: (r.shares ?? []).map((x) => new Uint8Array(x)) };
  }
}

/** Another node's cosigning of its own checkpoints (node/checkpoints.ts), over the peer service. */
export class RemoteCosigner implements CosignPeer {
  constructor(readonly nodeId: string, private readonly peer: PeerClient) {}

  async cosign(size: number): Promise<string> {
    const r = await this.peer.call<{ note?: string }>('Cosign', { size }, tlogLimits.cosignCallMs);
    if (typeof r.note !== 'string' || r.note.length === 0 || Buffer.byteLength(r.note) > tlogLimits.noteBytesMax) throw new CustodyError('NOTE_MALFORMED', `${this.nodeId} answered no note within its bound`);
    return r.note;
  }

  async consistency(size1: number, size2: number): Promise<Uint8Array[]> {
    const r = await this.peer.call<{ proof?: Buffer[] }>('Consistency', { size1, size2 }, tlogLimits.cosignCallMs);
    const proof = (r.proof ?? []).map((x) => new Uint8Array(x));
    if (proof.length > tlogLimits.proofHashesMax || proof.some((h) => h.length !== 32)) throw new CustodyError('TLOG_PROOF_INVALID', `${this.nodeId} answered a malformed consistency proof`);
    return proof;
  }

  async cosignSnapshot(index: number): Promise<string> {
    const r = await this.peer.call<{ note?: string }>('Cosign', { size: 0, snapshotIndex: index }, tlogLimits.cosignCallMs);
    if (typeof r.note !== 'string' || r.note.length === 0 || Buffer.byteLength(r.note) > tlogLimits.noteBytesMax) throw new CustodyError('NOTE_MALFORMED', `${this.nodeId} answered no note within its bound`);
    return r.note;
  }
}

/**
 * Another node's signed reading of its own clock (node/lifecycle/clock.ts), over the peer service.
 * The answer is untrusted: the asker counts it only if it verifies under that node's identity key
 * on its own ledger's roster, for its own cluster (ledger/clock-reading.ts chooseReadings).
 */
export class RemoteClockReader implements ClockReadingPeer {
  constructor(readonly nodeId: string, private readonly peer: PeerClient, private readonly clusterId: string) {}

  async reading(deadlineMs: number): Promise<ClockReading> {
    const r = await this.peer.call<{ clockMs?: number; signature?: Buffer }>('ClockReading', {}, deadlineMs);
    const clockMs = Number(r.clockMs ?? -1);
    const signature = r.signature === undefined ? new Uint8Array(0) : new Uint8Array(r.signature);
    if (!Number.isSafeInteger(clockMs) || clockMs < 0 || signature.length !== 64) throw new CustodyError('PAYLOAD_REJECTED', `${this.nodeId} answered no clock reading`);
    return { clusterId: this.clusterId, nodeId: this.nodeId, clockMs, signature };
  }
}

/** The server side: only node certificates whose CN is a cluster node. */
export function peerHandlers(o: { participant: ParticipantPort; exchange: PeerExchange; isNode: (id: string) => boolean; incarnation?: string; cosign?: (size: number) => Promise<string>; consistency?: (size1: number, size2: number) => Promise<Uint8Array[]>; clockReading?: () => ClockReading; cosignSnapshot?: (index: number) => string }): grpc.UntypedServiceImplementation {
  const who = (call: { getAuthContext(): { sslPeerCertificate?: PeerCertificate } | null; metadata: grpc.Metadata }): string => {
    const cert = call.getAuthContext()?.sslPeerCertificate;
    const cn = cert?.subject?.CN;
    if (typeof cn !== 'string' || cert?.subject?.OU !== 'node' || !o.isNode(cn)) throw new CustodyError('PEER_IDENTITY_MISMATCH', `${String(cn)} is not a node of this cluster`);
    const theirs = call.metadata.get(INCARNATION_METADATA_KEY)[0];
    const mismatch = incarnationRefusal(o.incarnation ?? '', typeof theirs === 'string' ? theirs : '', cn);
    if (mismatch !== null) throw new CustodyError('INCARNATION_MISMATCH', mismatch);
    return cn;
  };
  const unary = <Req>(f: (req: Req) => unknown) => (call: grpc.ServerUnaryCall<Req, unknown>, cb: grpc.sendUnaryData<unknown>) => {
    Promise.resolve().then(() => {
      who(call as never);
      return f(call.request);
    }).then((r) => cb(null, r), (e: unknown) => cb(isCustodyError(e) ? refusal(e.reason, e.detail) : refusal('INTERNAL', String(e))));
  };
  const unaryFrom = <Req>(f: (req: Req, from: string) => unknown) => (call: grpc.ServerUnaryCall<Req, unknown>, cb: grpc.sendUnaryData<unknown>) => {
    Promise.resolve().then(() => f(call.request, who(call as never)))
      .then((r) => cb(null, r), (e: unknown) => cb(isCustodyError(e) ? refusal(e.reason, e.detail) : refusal('INTERNAL', String(e))));
  };
  type R = Record<string, unknown>;
  return {
    Put: unaryFrom<R>(async (r, from) => {
      await o.exchange.store(String(r.key ?? ''), new Uint8Array((r.value as Buffer | undefined) ?? Buffer.alloc(0)), from);
      return {};
    }),
    Get: unary<R>((r) => {
      const v = o.exchange.local(String(r.key ?? ''));
      return { key: r.key, value: v === undefined ? Buffer.alloc(0) : Buffer.from(v), found: v !== undefined };
    }),
    Commit: unary<R>(async (r) => {
      const x = await o.participant.commit(String(r.opId ?? ''));
      return { nodeId: x.nodeId, identifier: x.identifier, nonces: x.nonces.map((n) => ({ counter: n.counter, hiding: Buffer.from(n.hiding), binding: Buffer.from(n.binding) })) };
    }),
    Sign: unary<R>(async (r) => {
      type WireList = { commitments?: { identifier: string; hiding: Buffer; binding: Buffer }[] };
      const lists = (r.lists as WireList[] | undefined ?? []).map((l) => (l.commitments ?? []).map((c) => ({ identifier: c.identifier, hiding: new Uint8Array(c.hiding), binding: new Uint8Array(c.binding) })));
      const counters = (r.counters as (number | string)[] | undefined ?? []).map((c) => Number(c));
      const x = await o.participant.sign(String(r.opId ?? ''), lists, counters);
      return { identifier: x.identifier, shares: x.shares.map((s) => Buffer.from(s)) };
    }),
    Cosign: unary<R>(async (r) => {
      const snapshotIndex = Number(r.snapshotIndex ?? 0);
      if (snapshotIndex !== 0) {
        if (o.cosignSnapshot === undefined) throw new CustodyError('SNAPSHOT_NOT_CERTIFIED', 'this node cosigns no snapshots');
        if (!Number.isSafeInteger(snapshotIndex) || snapshotIndex < 1) throw new CustodyError('INVALID_ARGUMENT', `snapshot index ${String(r.snapshotIndex)}`);
        return { note: o.cosignSnapshot(snapshotIndex) };
      }
      if (o.cosign === undefined) throw new CustodyError('CHECKPOINT_NOT_CERTIFIED', 'this node cosigns no checkpoints');
      const size = Number(r.size ?? 0);
      if (!Number.isSafeInteger(size) || size < 1) throw new CustodyError('INVALID_ARGUMENT', `tree size ${String(r.size)}`);
      return { note: await o.cosign(size) };
    }),
    Consistency: unary<R>(async (r) => {
      if (o.consistency === undefined) throw new CustodyError('SERVICE_NOT_SERVED', 'this node gives no consistency proofs');
      const [size1, size2] = [Number(r.size1 ?? 0), Number(r.size2 ?? 0)];
      if (!Number.isSafeInteger(size1) || !Number.isSafeInteger(size2) || size1 < 1 || size1 > size2) throw new CustodyError('INVALID_ARGUMENT', `consistency proof from ${String(r.size1)} to ${String(r.size2)}`);
      return { proof: (await o.consistency(size1, size2)).map((h) => Buffer.from(h)) };
    }),
    ClockReading: unary<R>(() => {
      if (o.clockReading === undefined) throw new CustodyError('SERVICE_NOT_SERVED', 'this node signs no clock readings');
      const r = o.clockReading();
      return { clockMs: r.clockMs, signature: Buffer.from(r.signature) };
    }),
  };
}
