/**
 * The gRPC server of a node (proto/raft.proto): the inbound half of the peer transport and the
 * client-facing Custody service, on one mutual-TLS port.
 *
 * Every refusal ends the call with the gRPC status that proto/reasons.ts maps the reason to, and
 * the reason code itself in the `custody-reason` trailing metadata. A refused stream or call
 * never affects others: the node keeps serving.
 */
import * as grpc from '@grpc/grpc-js';
import { CustodyError, isCustodyError } from '../proto/errors.js';
import { node as nodeLimits } from '../proto/limits.js';
import { TokenBuckets } from './rate.js';
import { grpcStatusOf, type ReasonCode } from '../proto/reasons.js';
import type { NodeId } from '../raft/core/types.js';
import type { Driver } from '../raft/driver.js';
import { encodePut, type KvApp } from './kv.js';
import { INCARNATION_METADATA_KEY, incarnationRefusal } from './backup/incarnation.js';
import { BOOT_METADATA_KEY, bootOf } from './splitbrain/exchange.js';
import { callIdentity, serverCredentials, type HasAuthContext, type TlsMaterial } from './tls.js';
import { revokedRefusal, type RevokedRefusal } from './revocation.js';
import type { LedgerState } from '../ledger/state.js';
import { REASON_METADATA_KEY, fromWire, guardedService, isBadFrame, type BadFrame, type WireBatch } from './wire.js';

export interface ServerMetrics {
  refused?(service: 'peer' | 'client', reason: ReasonCode): void;
  received?(peer: NodeId, messages: number): void;
}

export interface NodeServerOptions {
  readonly id: NodeId;
  readonly listen: string;
  readonly roster: ReadonlySet<NodeId>;
  readonly tls: TlsMaterial;
  readonly driver: Driver;
  /**
   * The key-value application whose writes and reads the Custody service serves, or null on a
   * ledger node: there the ledger is written only through the lifecycle and admin paths (each with
   * its own role checks), and a raw Raft proposal from any certificate would put arbitrary bytes
   * into every replica's log. Propose and Read are then refused SERVICE_NOT_SERVED (gRPC
   * UNIMPLEMENTED); Status stays served.
   */
  readonly app: Pick<KvApp, 'get'> | null;
  readonly metrics?: ServerMetrics;
  readonly log?: (line: string) => void;
  /** An observation exchange from an authenticated roster peer (node/splitbrain/exchange.ts). */
  readonly onExchange?: (peer: NodeId, bytes: Uint8Array) => void;
  /** This node's incarnation (node/backup/incarnation.ts); a peer stream carrying another is refused. */
  readonly incarnation?: string;
  /** Serves a peer's fetch of archived records (node/ledger-app.ts archiveRange); absent: refused. */
  readonly archiveRange?: (fromSeq: number, n: number) => Promise<Uint8Array[]>;
  /**
   * The ledger state this node applied, whose certificate revocations (node/revocation.ts) every
   * peer and client call is checked against; absent (a plain key-value cluster): no revocations.
   */
  readonly ledgerState?: () => LedgerState;
  /** The writers' buckets; proto/limits.ts node.kvWrite* unless given (tests pin them). */
  readonly kvRate?: { readonly writesBurst: number; readonly writesPerSecond: number; readonly bytesBurst: number; readonly bytesPerSecond: number };
}

export function refusal(reason: ReasonCode, detail: string): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  metadata.set(REASON_METADATA_KEY, reason);
  return { code: grpcStatusOf(reason), details: `${reason}: ${detail}`, metadata };
}

function clampTimeout(ms: number): number {
  if (!ms) return nodeLimits.clientTimeoutMsDefault;
  return Math.min(ms, nodeLimits.clientTimeoutMsMax);
}

export class NodeServer {
  private readonly server: grpc.Server;
  private boundPort = 0;
  /** Per writer identity: proposals and bytes (proto/limits.ts node.kvWrites*). */
  private readonly writes: TokenBuckets;
  private readonly writeBytes: TokenBuckets;

  constructor(private readonly o: NodeServerOptions) {
    const rate = o.kvRate ?? { writesBurst: nodeLimits.kvWritesBurst, writesPerSecond: nodeLimits.kvWritesPerSecond, bytesBurst: nodeLimits.kvWriteBytesBurst, bytesPerSecond: nodeLimits.kvWriteBytesPerSecond };
    this.writes = new TokenBuckets(rate.writesBurst, rate.writesPerSecond);
    this.writeBytes = new TokenBuckets(rate.bytesBurst, rate.bytesPerSecond);
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': nodeLimits.peerMessageBytesMax,
      'grpc.max_send_message_length': nodeLimits.peerMessageBytesMax,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    });
    this.server.addService(guardedService('custody.raft.v1.RaftPeer', nodeLimits.peerBatchBytesMax), { Stream: this.peerStream.bind(this), ArchiveRange: this.archiveRange.bind(this) });
    this.server.addService(guardedService('custody.raft.v1.Custody', nodeLimits.clientRequestBytesMax), {
      Propose: this.propose.bind(this),
      Read: this.read.bind(this),
      Status: this.status.bind(this),
    });
  }

  async start(): Promise<number> {
    this.boundPort = await new Promise<number>((res, rej) =>
      this.server.bindAsync(this.o.listen, serverCredentials(this.o.tls), (e, port) => (e ? rej(new CustodyError('CONFIG_INVALID', `listen ${this.o.listen}: ${e.message}`)) : res(port))),
    );
    this.watchHandshakes();
    return this.boundPort;
  }

  /**
   * A client whose certificate is not from the cluster CA (or that presents none) is refused in
   * the TLS handshake, before gRPC exists to carry a status. The refusal is still logged and
   * counted with a reason code, like every other: grpc-js keeps its HTTP/2 servers in a private
   * map (stable in the exactly pinned @grpc/grpc-js), so the listener is attached there.
   */
  private watchHandshakes(): void {
    const servers = (this.server as unknown as { http2Servers?: Map<{ on(ev: string, f: (e: Error & { code?: string }, s: { remoteAddress?: string }) => void): void }, unknown> }).http2Servers;
    if (!servers) return;
    for (const h of servers.keys()) {
      h.on('tlsClientError', (e, socket) => {
        const why = /certificate|unknown ca|alert/i.test(e.message) ? 'the client certificate is not issued by the cluster CA' : 'the TLS handshake failed';
        this.refused('peer', 'UNAUTHENTICATED', socket?.remoteAddress ?? 'unknown', `${why} (${e.code ?? e.message})`);
      });
    }
  }

  async stop(graceMs: number): Promise<void> {
    await new Promise<void>((res) => {
      const t = setTimeout(() => {
        this.server.forceShutdown();
        res();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(t);
        res();
      });
    });
  }

  private refused(service: 'peer' | 'client', reason: ReasonCode, who: string, detail: string): Partial<grpc.StatusObject> {
    this.o.metrics?.refused?.(service, reason);
    this.o.log?.(`refused ${service} ${who}: ${reason}: ${detail}`);
    return refusal(reason, detail);
  }

  /** A roster peer of this incarnation, or the refusal to end its call with. */
  private peerCheck(call: HasAuthContext & { getPeer(): string; metadata: grpc.Metadata }): { id: NodeId } | Partial<grpc.StatusObject> {
    const who = callIdentity(call);
    if (!who) return this.refused('peer', 'UNAUTHENTICATED', call.getPeer(), 'no client certificate');
    if (who.role !== 'node' || !this.o.roster.has(who.id)) {
      return this.refused('peer', 'PEER_IDENTITY_MISMATCH', who.id, `certificate ${who.id} (role ${who.role ?? 'none'}) is not a node on this cluster's roster`);
    }
    const revoked = this.revoked(call);
    if (revoked !== null) return this.refused('peer', revoked.reason, who.id, revoked.detail);
    const theirs = call.metadata.get(INCARNATION_METADATA_KEY)[0];
    const mismatch = incarnationRefusal(this.o.incarnation ?? '', typeof theirs === 'string' ? theirs : '', who.id);
    if (mismatch !== null) return this.refused('peer', 'INCARNATION_MISMATCH', who.id, mismatch);
    return { id: who.id };
  }

  private archiveRange(call: grpc.ServerUnaryCall<{ fromSeq: number; count: number } | BadFrame, object>, cb: grpc.sendUnaryData<object>): void {
    const who = this.peerCheck(call);
    if (!('id' in who)) return cb(who as grpc.ServiceError);
    const r = call.request;
    if (isBadFrame(r)) return cb(this.refused('peer', r.bad, who.id, r.detail) as grpc.ServiceError);
    if (!this.o.archiveRange) return cb(this.refused('peer', 'ARCHIVE_RANGE_REFUSED', who.id, 'this node keeps no archive') as grpc.ServiceError);
    this.o.archiveRange(r.fromSeq, r.count)
      .then((records) => cb(null, { records: records.map((b) => Buffer.from(b.buffer, b.byteOffset, b.length)) }))
      .catch((e: unknown) => {
        if (isCustodyError(e)) this.refused('peer', e.reason, who.id, e.detail);
        cb(errorStatus(e) as grpc.ServiceError);
      });
  }

  private peerStream(call: grpc.ServerReadableStream<WireBatch | BadFrame, object>, cb: grpc.sendUnaryData<object>): void {
    const checked = this.peerCheck(call);
    let batches = 0;
    let messages = 0;
    let done = false;
    const end = (s: Partial<grpc.StatusObject> | null): void => {
      if (done) return;
      done = true;
      call.removeAllListeners('data');
      if (s) cb(s as grpc.ServiceError);
      else cb(null, { batches, messages });
    };
    if (!('id' in checked)) {
      end(checked);
      return;
    }
    const who = checked;
    // The run of the peer's process that opened this stream: every message on it is that run's.
    const boot = bootOf(call.metadata.get(BOOT_METADATA_KEY)[0]);
    call.on('data', (b: WireBatch | BadFrame) => {
      if (done) return;
      if (isBadFrame(b)) return end(this.refused('peer', b.bad, who.id, b.detail));
      if (b.from !== who.id) return end(this.refused('peer', 'PEER_IDENTITY_MISMATCH', who.id, `frame claims to be from ${b.from} but the certificate names ${who.id}`));
      if (!Array.isArray(b.messages)) return end(this.refused('peer', 'FRAME_MALFORMED', who.id, 'no message list'));
      const ok = [];
      for (const w of b.messages) {
        const m = fromWire(w);
        if (typeof m === 'string') return end(this.refused('peer', 'FRAME_MALFORMED', who.id, m));
        if (m.from !== who.id) return end(this.refused('peer', 'PEER_IDENTITY_MISMATCH', who.id, `message claims to be from ${m.from} but the certificate names ${who.id}`));
        if (m.to !== this.o.id) return end(this.refused('peer', 'WRONG_RECIPIENT', who.id, `message addressed to ${m.to}, this node is ${this.o.id}`));
        ok.push(m);
      }
      // Only a frame that validated completely reaches the core: no partial batches.
      for (const m of ok) this.o.driver.receive(m, boot);
      if (b.exchange && b.exchange.length > 0) this.o.onExchange?.(who.id, b.exchange);
      batches++;
      messages += ok.length;
      this.o.metrics?.received?.(who.id, ok.length);
    });
    call.on('end', () => end(null));
    call.on('error', () => end(null));
  }

  private clientCheck(call: HasAuthContext & { getPeer(): string }): Partial<grpc.StatusObject> | null {
    const who = callIdentity(call);
    if (!who || who.role === null) return this.refused('client', 'UNAUTHENTICATED', call.getPeer(), 'a certificate with a node, operator or client role is required');
    const revoked = this.revoked(call);
    if (revoked !== null) return this.refused('client', revoked.reason, who.id, revoked.detail);
    return null;
  }

  /** The revocation of the call's certificate in the ledger this node applied, if any. */
  private revoked(call: HasAuthContext): RevokedRefusal | null {
    const state = this.o.ledgerState;
    return state === undefined ? null : revokedRefusal(state(), call.getAuthContext()?.sslPeerCertificate);
  }

  /**
   * Who may write the key-value state: only a certificate of role `client` (a writer; an operator
   * certificate such as an auditor's, or a node's, is refused PERMISSION_DENIED), each at a bounded
   * rate (LIMIT_EXCEEDED past its bucket), and only where a key-value application runs at all.
   */
  private writerCheck(call: HasAuthContext & { getPeer(): string }, bytes: number): Partial<grpc.StatusObject> | null {
    const who = callIdentity(call);
    if (this.o.app === null) return this.refused('client', 'SERVICE_NOT_SERVED', who?.id ?? call.getPeer(), 'Custody.Propose: this is a ledger node; the ledger is written through the lifecycle and admin services only');
    const denied = this.clientCheck(call);
    if (denied) return denied;
    if (!who || who.role !== 'client') return this.refused('client', 'ROLE_NOT_ALLOWED', who?.id ?? call.getPeer(), `Custody.Propose needs a writer (client) certificate, not role ${who?.role ?? 'none'}`);
    const now = Date.now();
    if (!this.writes.take(who.id, 1, now)) return this.refused('client', 'LIMIT_EXCEEDED', who.id, 'over its proposal rate');
    if (!this.writeBytes.take(who.id, bytes, now)) return this.refused('client', 'LIMIT_EXCEEDED', who.id, 'over its byte rate');
    return null;
  }

  private propose(call: grpc.ServerUnaryCall<{ clientId: string; seq: number; key: string; value: Buffer; timeoutMs: number } | BadFrame, object>, cb: grpc.sendUnaryData<object>): void {
    const r = call.request;
    const denied = this.writerCheck(call, isBadFrame(r) ? 0 : (r.value?.length ?? 0) + Buffer.byteLength(r.key ?? ''));
    if (denied) return cb(denied as grpc.ServiceError);
    if (isBadFrame(r)) return cb(this.refused('client', r.bad, 'client', r.detail) as grpc.ServiceError);
    if (!r.key || Buffer.byteLength(r.key) > 256) return cb(this.refused('client', 'INVALID_ARGUMENT', r.clientId, 'key must be 1..256 bytes') as grpc.ServiceError);
    this.o.driver
      .propose(r.clientId, r.seq, encodePut(r.key, r.value), clampTimeout(r.timeoutMs))
      .then((o) => {
        if (o.ok) cb(null, { index: o.index, result: Buffer.from(o.result), duplicate: o.duplicate });
        else cb(refusal(o.reason, o.detail) as grpc.ServiceError);
      })
      .catch((e: unknown) => cb(errorStatus(e) as grpc.ServiceError));
  }

  private read(call: grpc.ServerUnaryCall<{ key: string; timeoutMs: number } | BadFrame, object>, cb: grpc.sendUnaryData<object>): void {
    const app = this.o.app;
    if (app === null) return cb(this.refused('client', 'SERVICE_NOT_SERVED', callIdentity(call)?.id ?? call.getPeer(), 'Custody.Read: this is a ledger node; read the ledger through the admin service') as grpc.ServiceError);
    const denied = this.clientCheck(call);
    if (denied) return cb(denied as grpc.ServiceError);
    const r = call.request;
    if (isBadFrame(r)) return cb(this.refused('client', r.bad, 'client', r.detail) as grpc.ServiceError);
    this.o.driver
      .readIndex(clampTimeout(r.timeoutMs))
      .then((index) => {
        const v = app.get(r.key);
        cb(null, { index, found: v !== undefined, value: v ? Buffer.from(v) : Buffer.alloc(0) });
      })
      .catch((e: unknown) => cb(errorStatus(e) as grpc.ServiceError));
  }

  private status(call: grpc.ServerUnaryCall<object, object>, cb: grpc.sendUnaryData<object>): void {
    const denied = this.clientCheck(call);
    if (denied) return cb(denied as grpc.ServiceError);
    const s = this.o.driver.status();
    cb(null, { id: s.id, role: s.role, term: s.term, leader: s.leader ?? '', commit: s.commit, applied: s.appliedIndex, lastIndex: s.lastIndex, snapshotIndex: s.snapshotIndex, root: s.root, voters: [...s.conf.voters] });
  }
}

function errorStatus(e: unknown): Partial<grpc.StatusObject> {
  if (isCustodyError(e)) return refusal(e.reason, e.detail);
  return refusal('INTERNAL', e instanceof Error ? e.message : String(e));
}
