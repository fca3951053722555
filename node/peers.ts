/**
 * The outbound half of the peer transport: one long-lived gRPC client stream per peer, over
 * mutual TLS, carrying batches of Raft messages.
 *
 * - Batching: everything queued for a peer when the stream can take more is packed into frames of
 *   at most `peerBatchBytesMax` (one frame, one write, one HTTP/2 DATA burst).
 * - Backpressure: when `write()` reports the HTTP/2 window is full the sender waits for `drain`;
 *   meanwhile messages queue up to `peerQueueMsgsMax` / `peerQueueBytesMax`, beyond which new
 *   messages to that peer are dropped and counted. Raft recovers lost messages by itself (probes,
 *   heartbeats, retries), while an unbounded queue would turn a slow peer into memory exhaustion.
 * - Reconnect: a failed stream is re-dialled after a jittered, doubling backoff; while a peer is
 *   unreachable its queue is dropped (stale appends would only be rejected and re-sent).
 * - Identity: the channel checks the peer's certificate names the peer's node id.
 * - Observation exchange (node/splitbrain/exchange.ts): at most one waiting per peer, sent in a
 *   frame of its own ahead of queued messages. The sender builds the next one only once the last
 *   has left (`exchangeWanted`), so the signed statements it relays are never overwritten unsent.
 */
import * as grpc from '@grpc/grpc-js';
import { CustodyError } from '../proto/errors.js';
import { ledger as ledgerLimits, node as nodeLimits } from '../proto/limits.js';
import { isReasonCode } from '../proto/reasons.js';
import type { Message, NodeId } from '../raft/core/types.js';
import type { Transport } from '../raft/transport.js';
import { channelCredentials, identityOptions, type TlsMaterial } from './tls.js';
import { INCARNATION_METADATA_KEY } from './backup/incarnation.js';
import { BOOT_METADATA_KEY } from './splitbrain/exchange.js';
import { REASON_METADATA_KEY, clientConstructor, toWire, wireSize, type WireBatch, type WireMessage } from './wire.js';

export interface PeerTransportMetrics {
  sent?(peer: NodeId, messages: number, bytes: number): void;
  dropped?(peer: NodeId, messages: number): void;
  reachability?(peer: NodeId, up: boolean): void;
}

interface Peer {
  readonly id: NodeId;
  readonly address: string;
  readonly client: grpc.Client;
  stream: grpc.ClientWritableStream<WireBatch> | null;
  connecting: boolean;
  up: boolean;
  waitingDrain: boolean;
  queue: { m: Message; bytes: number }[];
  queueBytes: number;
  exchange: Uint8Array | null;
  backoffMs: number;
  retryTimer: NodeJS.Timeout | null;
}

export class PeerTransport implements Transport {
  private readonly peers = new Map<NodeId, Peer>();
  private closed = false;

  constructor(
    private readonly selfId: NodeId,
    addresses: ReadonlyMap<NodeId, string>,
    tls: TlsMaterial,
    private readonly metrics: PeerTransportMetrics = {},
    private readonly log: (line: string) => void = () => {},
    /** This node's incarnation, sent on every stream (node/backup/incarnation.ts). */
    private readonly incarnation = '',
    /** This run's boot id, sent on every stream (node/splitbrain/exchange.ts BOOT_METADATA_KEY). */
    private readonly boot = '',
  ) {
    const Ctor = clientConstructor('RaftPeer');
    const creds = channelCredentials(tls);
    for (const [id, address] of addresses) {
      if (id === selfId) continue;
      const client = new Ctor(address, creds, {
        ...identityOptions(id),
        'grpc.max_send_message_length': nodeLimits.peerMessageBytesMax,
        'grpc.max_receive_message_length': nodeLimits.peerMessageBytesMax,
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
        'grpc.keepalive_permit_without_calls': 1,
        'grpc.initial_reconnect_backoff_ms': nodeLimits.peerReconnectMsMin,
        'grpc.max_reconnect_backoff_ms': nodeLimits.peerReconnectMsMax,
        'grpc-node.flow_control_window': nodeLimits.peerFlowControlWindowBytes,
      });
      this.peers.set(id, { id, address, client, stream: null, connecting: false, up: false, waitingDrain: false, queue: [], queueBytes: 0, exchange: null, backoffMs: nodeLimits.peerReconnectMsMin, retryTimer: null });
    }
  }

  start(): void {
    for (const p of this.peers.values()) this.connect(p);
  }

  reachable(peer: NodeId): boolean {
    return this.peers.get(peer)?.up ?? false;
  }

  peerIds(): NodeId[] {
    return [...this.peers.keys()];
  }

  /** True when `peer` is reachable and its last observation exchange has been written. */
  exchangeWanted(peer: NodeId): boolean {
    const p = this.peers.get(peer);
    return p !== undefined && p.up && p.exchange === null;
  }

  /** Sends one observation exchange to `peer`; dropped (false) while the peer is unreachable. */
  sendExchange(peer: NodeId, bytes: Uint8Array): boolean {
    const p = this.peers.get(peer);
    if (!p || !p.up) return false;
    p.exchange = bytes;
    this.flush(p);
    return true;
  }

  send(msgs: readonly Message[]): void {
    const touched = new Set<Peer>();
    for (const m of msgs) {
      const p = this.peers.get(m.to);
      if (!p) continue; // not on the roster: nothing to send to (the core may name removed nodes)
      if (!p.up) {
        this.metrics.dropped?.(p.id, 1);
        continue;
      }
      const bytes = wireSize(m);
      if (p.queue.length >= nodeLimits.peerQueueMsgsMax || p.queueBytes + bytes > nodeLimits.peerQueueBytesMax) {
        this.metrics.dropped?.(p.id, 1);
        continue;
      }
      p.queue.push({ m, bytes });
      p.queueBytes += bytes;
      touched.add(p);
    }
    for (const p of touched) this.flush(p);
  }

  /**
   * Asks `peer` for archived records fromSeq .. fromSeq+n-1 (node/ledger-app.ts ArchiveSource):
   * a unary call on the peer's channel, authenticated as the stream is. A refusal rejects with
   * the reason code the peer sent (REMOTE_TIMEOUT past ledger.archiveFetchTimeoutMs).
   */
  archiveRange(peer: NodeId, fromSeq: number, n: number): Promise<Uint8Array[]> {
    const p = this.peers.get(peer);
    if (!p) return Promise.reject(new CustodyError('UNKNOWN_NODE', `${peer} is not a peer of this node`));
    const md = new grpc.Metadata();
    md.set(INCARNATION_METADATA_KEY, this.incarnation);
    const client = p.client as unknown as {
      ArchiveRange(req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: { records?: Buffer[] }) => void): void;
    };
    return new Promise((resolve, reject) => {
      client.ArchiveRange({ fromSeq, count: n }, md, { deadline: Date.now() + ledgerLimits.archiveFetchTimeoutMs }, (e, r) => {
        if (e) {
          const reason = e.metadata?.get(REASON_METADATA_KEY)[0];
          const code = isReasonCode(reason) ? reason : e.code === grpc.status.DEADLINE_EXCEEDED ? 'REMOTE_TIMEOUT' : 'ARCHIVE_UNAVAILABLE';
          reject(new CustodyError(code, `${peer}: ${e.details || e.message}`));
          return;
        }
        resolve(r?.records ?? []);
      });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.peers.values()) {
      if (p.retryTimer) clearTimeout(p.retryTimer);
      p.stream?.end();
      p.client.close();
    }
  }

  private flush(p: Peer): void {
    const s = p.stream;
    if (!s || !p.up || p.waitingDrain) return;
    while (p.queue.length > 0 || p.exchange !== null) {
      if (p.exchange !== null) {
        const exchange = Buffer.from(p.exchange.buffer, p.exchange.byteOffset, p.exchange.length);
        p.exchange = null;
        if (!s.write({ from: this.selfId, messages: [], exchange } satisfies WireBatch)) {
          this.waitDrain(p, s);
          return;
        }
        continue;
      }
      const messages: WireMessage[] = [];
      let bytes = 0;
      while (p.queue.length > 0) {
        const q = p.queue[0] as { m: Message; bytes: number };
        if (messages.length > 0 && bytes + q.bytes > nodeLimits.peerBatchBytesMax) break;
        p.queue.shift();
        p.queueBytes -= q.bytes;
        bytes += q.bytes;
        messages.push(toWire(q.m));
      }
      const ok = s.write({ from: this.selfId, messages } satisfies WireBatch);
      this.metrics.sent?.(p.id, messages.length, bytes);
      if (!ok) {
        this.waitDrain(p, s);
        return;
      }
    }
  }

  private waitDrain(p: Peer, s: grpc.ClientWritableStream<WireBatch>): void {
    p.waitingDrain = true;
    s.once('drain', () => {
      p.waitingDrain = false;
      this.flush(p);
    });
  }

  private connect(p: Peer): void {
    if (this.closed || p.connecting || p.stream) return;
    p.connecting = true;
    // Wait for the TLS handshake to finish before calling the peer reachable.
    p.client.waitForReady(Date.now() + nodeLimits.peerReconnectMsMax, (err) => {
      p.connecting = false;
      if (this.closed) return;
      if (err) {
        this.retry(p);
        return;
      }
      const md = new grpc.Metadata();
      md.set(INCARNATION_METADATA_KEY, this.incarnation);
      if (this.boot !== '') md.set(BOOT_METADATA_KEY, this.boot);
      const stream = (p.client as unknown as { Stream(md: grpc.Metadata, cb: (e: grpc.ServiceError | null) => void): grpc.ClientWritableStream<WireBatch> }).Stream(md, (e) => {
        if (p.stream !== stream) return;
        if (e && !this.closed) {
          const reason = e.metadata?.get('custody-reason')[0];
          this.log(`peer ${p.id} (${p.address}) stream ended: ${e.code} ${e.details}${reason ? ` [${String(reason)}]` : ''}`);
        }
        this.down(p);
        this.retry(p);
      });
      stream.on('error', () => {
        // Reported through the callback above.
      });
      p.stream = stream;
      p.up = true;
      p.backoffMs = nodeLimits.peerReconnectMsMin;
      this.metrics.reachability?.(p.id, true);
      this.flush(p);
    });
  }

  private down(p: Peer): void {
    const wasUp = p.up;
    p.stream = null;
    p.up = false;
    p.waitingDrain = false;
    if (p.queue.length > 0) this.metrics.dropped?.(p.id, p.queue.length);
    p.queue = [];
    p.queueBytes = 0;
    p.exchange = null;
    if (wasUp) this.metrics.reachability?.(p.id, false);
  }

  private retry(p: Peer): void {
    if (this.closed || p.retryTimer) return;
    // Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): spreads reconnects
    // of many nodes after a partition heals.
    const wait = Math.floor(p.backoffMs / 2 + Math.random() * (p.backoffMs / 2));
    p.backoffMs = Math.min(p.backoffMs * 2, nodeLimits.peerReconnectMsMax);
    p.retryTimer = setTimeout(() => {
      p.retryTimer = null;
      this.connect(p);
    }, wait);
  }
}
