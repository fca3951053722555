/**
 * The lifecycle between daemons (proto/admin.proto service LifecyclePeer), over the same mTLS
 * port as the admin API but only for node certificates:
 *
 *   PeerExchange       Exchange whose blobs live on every node: a put is stored locally and
 *                      pushed to every peer (retried until the peer has it, bounded); a get that
 *                      misses locally asks the peers. Blobs are untrusted (see ports.ts).
 *   RemoteParticipant  ParticipantPort of another node: nonce commitment and signature share
 *                      requests, answered by that node's participant after its own ledger checks.
 *   peerHandlers       the server side of both.
 */
import * as grpc from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import { CustodyError, isCustodyError } from '../../proto/errors.js';
import { node as nodeLimits } from '../../proto/limits.js';
import { errorOf } from '../client.js';
import { channelCredentials, identityOptions, type TlsMaterial } from '../tls.js';
import { INCARNATION_METADATA_KEY, incarnationRefusal } from '../backup/incarnation.js';
import { adminPackage, refusal } from '../admin/server.js';
import type { SigningCommitment } from '../../kernel/wire.js';
import type { Exchange, NonceOffer, ParticipantPort } from './ports.js';
import type { CosignPeer } from '../checkpoints.js';
import { tlog as tlogLimits } from '../../proto/limits.js';

type Unary = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => void;

const KEY_BYTES_MAX = 512;
const BLOB_BYTES_MAX = 256 * 1024;
const BLOBS_MAX = 100_000;
const PUSH_ATTEMPTS_MAX = 20;

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
  private readonly watchers = new Set<(key: string) => void>();
  private closed = false;

  constructor(private readonly peers: readonly PeerClient[], private readonly log: (l: string) => void) {}

  /** Stores a blob received from a peer (or put here) and tells the watchers. */
  store(key: string, value: Uint8Array): void {
    if (key.length === 0 || key.length > KEY_BYTES_MAX || value.length > BLOB_BYTES_MAX) throw new CustodyError('LIMIT_EXCEEDED', 'blob key or value out of bounds');
    if (!this.blobs.has(key) && this.blobs.size >= BLOBS_MAX) throw new CustodyError('LIMIT_EXCEEDED', 'the exchange is full');
    this.blobs.set(key, new Uint8Array(value));
    for (const w of this.watchers) queueMicrotask(() => w(key));
  }

  local(key: string): Uint8Array | undefined {
    return this.blobs.get(key);
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    this.store(key, value);
    for (const p of this.peers) void this.push(p, key, value);
  }

  private async push(p: PeerClient, key: string, value: Uint8Array): Promise<void> {
    for (let i = 0; i < PUSH_ATTEMPTS_MAX && !this.closed; i++) {
      try {
        await p.call('Put', { key, value: Buffer.from(value) }, 5_000);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, Math.min(5_000, 100 * 2 ** i)));
      }
    }
    this.log(`exchange: ${p.nodeId} did not take ${key}; it will ask for it`);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const v = this.blobs.get(key);
    if (v !== undefined) return v;
    for (const p of this.peers) {
      try {
        const r = await p.call<{ found: boolean; value: Buffer }>('Get', { key }, 3_000);
        if (r.found) {
          // Keep and hand out a copy: a gRPC Buffer may be a view into a pooled allocation, and
          // consumers take `.buffer` of what they get (kernel/transport.ts).
          this.store(key, r.value);
          return this.blobs.get(key);
        }
      } catch {
        // A peer that is down is simply not asked again this time.
      }
    }
    return undefined;
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
}

/** The server side: only node certificates whose CN is a cluster node. */
export function peerHandlers(o: { participant: ParticipantPort; exchange: PeerExchange; isNode: (id: string) => boolean; incarnation?: string; cosign?: (size: number) => Promise<string> }): grpc.UntypedServiceImplementation {
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
  type R = Record<string, unknown>;
  return {
    Put: unary<R>((r) => {
      o.exchange.store(String(r.key ?? ''), r.value as Buffer);
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
      if (o.cosign === undefined) throw new CustodyError('CHECKPOINT_NOT_CERTIFIED', 'this node cosigns no checkpoints');
      const size = Number(r.size ?? 0);
      if (!Number.isSafeInteger(size) || size < 1) throw new CustodyError('INVALID_ARGUMENT', `tree size ${String(r.size)}`);
      return { note: await o.cosign(size) };
    }),
  };
}
