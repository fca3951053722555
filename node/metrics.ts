/**
 * Prometheus metrics of a node (prom-client), one registry per daemon. Gauges that mirror Raft
 * state are read from the driver at scrape time, so they are never stale; counters and histograms
 * are fed by the driver, transport and server hooks.
 *
 * Names follow Prometheus conventions (base units: seconds, bytes; `_total` for counters).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { NodeId } from '../raft/core/types.js';
import type { Driver, DriverMetrics } from '../raft/driver.js';
import type { PeerTransportMetrics } from './peers.js';
import type { ServerMetrics } from './server.js';

// 0.25 ms .. ~4 s: an fsync on NVMe is tens of microseconds to a few ms, on a loaded VM disk
// tens of ms; a stalled disk shows up in the top buckets.
const LATENCY_BUCKETS_S = [0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096];

export class NodeMetrics {
  readonly registry = new Registry();
  private driver: Driver | null = null;
  private reachable = new Map<NodeId, boolean>();

  private readonly proposals = new Counter({ name: 'custody_proposals_total', help: 'Client proposals by outcome', labelNames: ['result'], registers: [this.registry] });
  private readonly appendSeconds = new Histogram({ name: 'custody_raft_append_duration_seconds', help: 'Time to write one Ready batch (entries, hard state, applied state) to LevelDB', buckets: LATENCY_BUCKETS_S, registers: [this.registry] });
  private readonly fsyncSeconds = new Histogram({ name: 'custody_raft_fsync_duration_seconds', help: 'Time of batches written with sync (fsync) before messages were sent', buckets: LATENCY_BUCKETS_S, registers: [this.registry] });
  private readonly appendedEntries = new Counter({ name: 'custody_raft_appended_entries_total', help: 'Log entries made durable', registers: [this.registry] });
  private readonly appliedEntries = new Counter({ name: 'custody_raft_applied_entries_total', help: 'Committed entries applied to the state machine', registers: [this.registry] });
  private readonly dropped = new Counter({ name: 'custody_dropped_total', help: 'Work dropped under backpressure', labelNames: ['what'], registers: [this.registry] });
  private readonly snapshotRefused = new Counter({ name: 'custody_snapshot_refused_total', help: 'Raft snapshots received and refused before install (the replica is kept), by reason code', labelNames: ['reason'], registers: [this.registry] });
  private readonly peerSent = new Counter({ name: 'custody_peer_messages_sent_total', help: 'Raft messages written to a peer stream', labelNames: ['peer'], registers: [this.registry] });
  private readonly peerSentBytes = new Counter({ name: 'custody_peer_sent_bytes_total', help: 'Approximate bytes written to a peer stream', labelNames: ['peer'], registers: [this.registry] });
  private readonly peerDropped = new Counter({ name: 'custody_peer_messages_dropped_total', help: 'Raft messages to a peer dropped (peer unreachable or queue full)', labelNames: ['peer'], registers: [this.registry] });
  private readonly peerReceived = new Counter({ name: 'custody_peer_messages_received_total', help: 'Raft messages accepted from a peer', labelNames: ['peer'], registers: [this.registry] });
  private readonly refused = new Counter({ name: 'custody_refused_total', help: 'Calls or streams refused, by service and reason code', labelNames: ['service', 'reason'], registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    const self = this;
    const status = (): ReturnType<Driver['status']> | null => self.driver?.status() ?? null;
    new Gauge({ name: 'custody_raft_term', help: 'Current Raft term', registers: [this.registry], collect() { const s = status(); if (s) this.set(s.term); } });
    new Gauge({ name: 'custody_raft_is_leader', help: '1 if this node is the leader', registers: [this.registry], collect() { const s = status(); if (s) this.set(s.role === 'leader' ? 1 : 0); } });
    new Gauge({
      name: 'custody_raft_leader', help: 'The leader this node follows (1 for the label of the known leader)', labelNames: ['leader'], registers: [this.registry],
      collect() { this.reset(); const s = status(); if (s?.leader) this.set({ leader: s.leader }, 1); },
    });
    new Gauge({
      name: 'custody_raft_role', help: '1 for the current role', labelNames: ['role'], registers: [this.registry],
      collect() { const s = status(); if (!s) return; for (const r of ['follower', 'pre-candidate', 'candidate', 'leader']) this.set({ role: r }, s.role === r ? 1 : 0); },
    });
    new Gauge({ name: 'custody_raft_commit_index', help: 'Highest log index known committed', registers: [this.registry], collect() { const s = status(); if (s) this.set(s.commit); } });
    new Gauge({ name: 'custody_raft_applied_index', help: 'Highest log index applied to the state machine (durably)', registers: [this.registry], collect() { const s = status(); if (s) this.set(s.appliedIndex); } });
    new Gauge({ name: 'custody_raft_last_index', help: 'Last index in the local log', registers: [this.registry], collect() { const s = status(); if (s) this.set(s.lastIndex); } });
    new Gauge({ name: 'custody_raft_snapshot_index', help: 'Index of the latest snapshot', registers: [this.registry], collect() { const s = status(); if (s) this.set(s.snapshotIndex); } });
    new Gauge({
      name: 'custody_peer_reachable', help: '1 if the outbound stream to the peer is connected', labelNames: ['peer'], registers: [this.registry],
      collect() { for (const [p, up] of self.reachable) this.set({ peer: p }, up ? 1 : 0); },
    });
  }

  attach(driver: Driver, peers: readonly NodeId[]): void {
    this.driver = driver;
    for (const p of peers) if (!this.reachable.has(p)) this.reachable.set(p, false);
  }

  readonly driverHooks: DriverMetrics = {
    persisted: (st, synced, entries) => {
      if (entries > 0) {
        this.appendSeconds.observe(st.writeMs / 1000);
        this.appendedEntries.inc(entries);
      }
      if (synced) this.fsyncSeconds.observe(st.writeMs / 1000);
    },
    applied: (n) => this.appliedEntries.inc(n),
    proposal: (r) => this.proposals.inc({ result: r }),
    dropped: (w) => this.dropped.inc({ what: w }),
    snapshotRefused: (reason) => this.snapshotRefused.inc({ reason }),
  };

  readonly transportHooks: PeerTransportMetrics = {
    sent: (peer, n, bytes) => {
      this.peerSent.inc({ peer }, n);
      this.peerSentBytes.inc({ peer }, bytes);
    },
    dropped: (peer, n) => this.peerDropped.inc({ peer }, n),
    reachability: (peer, up) => this.reachable.set(peer, up),
  };

  readonly serverHooks: ServerMetrics = {
    refused: (service, reason) => this.refused.inc({ service, reason }),
    received: (peer, n) => this.peerReceived.inc({ peer }, n),
  };
}
