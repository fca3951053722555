/**
 * Every metric name a custody node exports, in one table: name, type, help text, labels, and who
 * registers it. Names are stable API: alert rules (cluster-configs/prometheus/alerts.yml) and
 * dashboards (cluster-configs/grafana/) name them, and test/splitbrain/catalog.test.ts fails when a
 * rule or panel names a metric that is not here, or when a registry disagrees with this table.
 *
 * Two registrars share the one registry of a daemon:
 *  - `node/metrics.ts` (NodeMetrics) registers the Raft, storage and transport metrics it feeds from
 *    the driver, transport and server hooks; their rows here say `by: 'node/metrics.ts'` and must
 *    match what it registers, name for name and help for help;
 *  - `registerCatalogMetrics()` below registers the rest (`by: 'catalog'`): split-brain,
 *    equivocation, rollback, lag, kernel and signing-act metrics, read at scrape time from the
 *    sources the daemon hands in, or set by the detectors in node/splitbrain/.
 *
 * Conventions (https://prometheus.io/docs/practices/naming/): `custody_` prefix, base units last
 * (`_seconds`, `_entries`), `_total` on counters. Target labels `cluster` and `node` come from the
 * scrape configuration, never from the process, so they are not listed as metric labels.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { REASON_CODES } from '../proto/reasons.js';
import { OP_STATES } from '../ledger/state.js';

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface MetricSpec {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  readonly labels: readonly string[];
  /** Who registers it on the daemon's registry. */
  readonly by: 'node/metrics.ts' | 'catalog';
}

/** Kinds of split-brain evidence (the `kind` label of the custody_split_brain_* metrics). */
export const SPLIT_BRAIN_KINDS = ['two_leaders', 'two_roots', 'rollback'] as const;
export type SplitBrainKind = (typeof SPLIT_BRAIN_KINDS)[number];

/** Signing-act states of the operation journal, the `state` label: the ledger's own list. */
export const SIGNING_ACT_STATES = OP_STATES;

/** Kernel request kinds (kernel/wire.ts), the `step` label of custody_kernel_steps_total. */
export const KERNEL_STEPS = ['status', 'governance', 'fence', 'dkgBegin', 'dkgRound2', 'dkgFinish', 'redealBegin', 'redealFinish', 'nonces', 'sign', 'publicPackage'] as const;

const m = (name: string, type: MetricType, help: string, labels: readonly string[], by: MetricSpec['by']): MetricSpec => ({ name, type, help, labels, by });

export const METRICS: readonly MetricSpec[] = [
  // Raft state, read from the driver's status at scrape time (node/metrics.ts).
  m('custody_raft_term', 'gauge', 'Current Raft term', [], 'node/metrics.ts'),
  m('custody_raft_is_leader', 'gauge', '1 if this node is the leader', [], 'node/metrics.ts'),
  m('custody_raft_leader', 'gauge', 'The leader this node follows (1 for the label of the known leader)', ['leader'], 'node/metrics.ts'),
  m('custody_raft_role', 'gauge', '1 for the current role', ['role'], 'node/metrics.ts'),
  m('custody_raft_commit_index', 'gauge', 'Highest log index known committed', [], 'node/metrics.ts'),
  m('custody_raft_applied_index', 'gauge', 'Highest log index applied to the state machine (durably)', [], 'node/metrics.ts'),
  m('custody_raft_last_index', 'gauge', 'Last index in the local log', [], 'node/metrics.ts'),
  m('custody_raft_snapshot_index', 'gauge', 'Index of the latest snapshot', [], 'node/metrics.ts'),
  // Storage and apply (node/metrics.ts, from the driver hooks).
  m('custody_raft_append_duration_seconds', 'histogram', 'Time to write one Ready batch (entries, hard state, applied state) to LevelDB', [], 'node/metrics.ts'),
  m('custody_raft_fsync_duration_seconds', 'histogram', 'Time of batches written with sync (fsync) before messages were sent', [], 'node/metrics.ts'),
  m('custody_raft_appended_entries_total', 'counter', 'Log entries made durable', [], 'node/metrics.ts'),
  m('custody_raft_applied_entries_total', 'counter', 'Committed entries applied to the state machine', [], 'node/metrics.ts'),
  m('custody_proposals_total', 'counter', 'Client proposals by outcome', ['result'], 'node/metrics.ts'),
  m('custody_dropped_total', 'counter', 'Work dropped under backpressure', ['what'], 'node/metrics.ts'),
  m('custody_snapshot_refused_total', 'counter', 'Raft snapshots received and refused before install (the replica is kept), by reason code', ['reason'], 'node/metrics.ts'),
  // Peer transport and server (node/metrics.ts).
  m('custody_peer_messages_sent_total', 'counter', 'Raft messages written to a peer stream', ['peer'], 'node/metrics.ts'),
  m('custody_peer_sent_bytes_total', 'counter', 'Approximate bytes written to a peer stream', ['peer'], 'node/metrics.ts'),
  m('custody_peer_messages_dropped_total', 'counter', 'Raft messages to a peer dropped (peer unreachable or queue full)', ['peer'], 'node/metrics.ts'),
  m('custody_peer_messages_received_total', 'counter', 'Raft messages accepted from a peer', ['peer'], 'node/metrics.ts'),
  m('custody_peer_reachable', 'gauge', '1 if the outbound stream to the peer is connected', ['peer'], 'node/metrics.ts'),
  m('custody_refused_total', 'counter', 'Calls or streams refused, by service and reason code', ['service', 'reason'], 'node/metrics.ts'),

  // Raft, read from the core at scrape time (catalog).
  m('custody_raft_leader_changes_total', 'counter', 'Times this node learned of a leader other than the one it knew (including after knowing none), counted by the Raft core', [], 'catalog'),
  m('custody_raft_elections_total', 'counter', 'Elections this node started as a candidate, counted by the Raft core', [], 'catalog'),
  m('custody_raft_conf_changes_refused_total', 'counter', 'Raft membership changes this node refused (CONF_CHANGE_UNAUTHORIZED): no applied NodeAdded / NodeRemoved decision asks for them (node/membership/guard.ts), counted by the Raft core', [], 'catalog'),
  m('custody_raft_voters', 'gauge', 'Voters in the configuration this node is using', [], 'catalog'),
  m('custody_raft_apply_lag_entries', 'gauge', 'Committed entries not yet applied on this node (commit index minus applied index)', [], 'catalog'),
  m('custody_raft_follower_lag_entries', 'gauge', 'Leader only: entries of the leader\'s log a follower has not acknowledged (last index minus match index)', ['peer'], 'catalog'),

  // Split-brain (node/splitbrain/detector.ts, rollback.ts).
  m('custody_split_brain_active', 'gauge', '1 once this node holds split-brain evidence of the kind (latched until restart); 0 otherwise', ['kind'], 'catalog'),
  m('custody_split_brain_alarms_total', 'counter', 'Split-brain alarms raised by this node, by kind of evidence', ['kind'], 'catalog'),
  m('custody_split_brain_observations_total', 'counter', 'Cluster observations (node, term, leader, applied index, state root) fed to the split-brain detector, by outcome', ['result'], 'catalog'),
  m('custody_rollback_vote_withheld', 'gauge', '1 while this node withholds its vote because its stored state is behind what peers saw from it', [], 'catalog'),

  // Equivocation (node/splitbrain/equivocation.ts and the ledger's EquivocationEvidence).
  m('custody_equivocation_active', 'gauge', '1 while the ledger flags the offender for equivocation of the statement kind (until a rebind decision)', ['offender', 'kind'], 'catalog'),
  m('custody_equivocation_evidence_total', 'counter', 'Conflicting signed statement pairs this node found and turned into evidence, by statement kind', ['kind'], 'catalog'),
  m('custody_equivocation_statements_rejected_total', 'counter', 'Signed statements from peers refused before comparison, by reason code', ['reason'], 'catalog'),
  m('custody_fenced_passports', 'gauge', 'Passports the ledger records as fenced (SPLIT_BRAIN_FENCED refuses them)', [], 'catalog'),

  // Secret kernel and signing acts.
  m('custody_kernel_steps_total', 'counter', 'Requests this node sent to its secret kernel, by request kind', ['step'], 'catalog'),
  m('custody_kernel_refusals_total', 'counter', 'Requests the secret kernel refused, by reason code', ['reason'], 'catalog'),
  m('custody_kernel_disconnected', 'gauge', '1 while this node has lost the socket of its secret kernel process and reconnects; 0 while connected, and on a node that runs no kernel process', [], 'catalog'),
  m('custody_kernel_reconnects_total', 'counter', 'Connections this node made to its secret kernel after the first (kernel restarts or lost sockets)', [], 'catalog'),
  m('custody_signing_acts', 'gauge', 'Signing acts in the operation journal, by lifecycle state', ['state'], 'catalog'),
  m('custody_signing_act_transitions_total', 'counter', 'Signing acts that entered a lifecycle state on this node\'s ledger', ['state'], 'catalog'),
  m('custody_ledger_entries_refused_total', 'counter', 'Committed log entries this node\'s ledger applied as refusals (the state did not move), by reason code: forged or stale entries a leader appended', ['reason'], 'catalog'),

  // Certified checkpoints (node/checkpoints.ts).
  m('custody_checkpoint_divergence_total', 'counter', 'Cosignatures from a peer that do not verify over the checkpoint this node computed at the same tree size: the two replicas hold different entries', ['peer'], 'catalog'),
  m('custody_witness_push_failures_total', 'counter', 'Pushes of a cosigned checkpoint to a witness that got no valid cosignature, by reason: TLOG_PROOF_INVALID or EQUIVOCATION means the witness holds a history this checkpoint does not extend', ['witness', 'reason'], 'catalog'),
  m('custody_audit_record_failures_total', 'counter', 'Admin API calls whose OperatorCall record the log did not take (no leader, a refusal): calls served but not in the audit trail', [], 'catalog'),
  m('custody_witness_cosigned_size', 'gauge', 'The tree size of the latest checkpoint of this node that a witness cosigned', ['witness'], 'catalog'),
];

/**
 * Series Prometheus or prom-client adds by themselves: `up` per target (scrape health) and the
 * default process metrics of collectDefaultMetrics() in node/metrics.ts. Dashboards may name them.
 */
export const SCRAPE_SERIES: readonly string[] = ['up', 'scrape_duration_seconds', 'process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes'];

const byName = new Map(METRICS.map((s) => [s.name, s]));

export function metricSpec(name: string): MetricSpec | undefined {
  return byName.get(name);
}

/**
 * The catalog entry a series name belongs to: a histogram's `_bucket`, `_sum` and `_count` series
 * belong to the histogram. Returns the base name, or null when the name is not exported.
 */
export function exportedBase(series: string): string | null {
  if (byName.has(series) || SCRAPE_SERIES.includes(series)) return series;
  const suffix = /_(bucket|sum|count)$/.exec(series);
  if (suffix) {
    const base = series.slice(0, -suffix[0].length);
    if (byName.get(base)?.type === 'histogram') return base;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Registration of the catalog-owned metrics
// ---------------------------------------------------------------------------------------------

/** What the scrape-time gauges read. Every source may return null while the node is starting. */
export interface CatalogSources {
  /** The driver's status (raft/driver.ts DriverStatus satisfies this). */
  raft?(): {
    readonly id: string;
    readonly role: string;
    readonly commit: number;
    readonly appliedIndex: number;
    readonly lastIndex: number;
    readonly conf: { readonly voters: readonly string[] };
    readonly progress: Readonly<Record<string, { readonly match: number }>> | null;
  } | null;
  /** The core's counters (raft/core/raft.ts CoreStats satisfies this). */
  coreStats?(): { readonly elections: number; readonly leaderChanges: number; readonly confChangesRefused?: number } | null;
  /** From the ledger state: flagged offenders, passports fenced, acts per state. */
  ledger?(): {
    readonly equivocated: readonly { readonly offender: string; readonly kind: string }[];
    readonly fencedPassports: number;
    readonly actsByState: Readonly<Partial<Record<string, number>>>;
  } | null;
}

export interface CatalogMetrics {
  readonly splitBrainActive: Gauge<'kind'>;
  readonly splitBrainAlarms: Counter<'kind'>;
  readonly observations: Counter<'result'>;
  readonly rollbackVoteWithheld: Gauge;
  readonly equivocationEvidence: Counter<'kind'>;
  readonly statementsRejected: Counter<'reason'>;
  readonly kernelSteps: Counter<'step'>;
  readonly kernelRefusals: Counter<'reason'>;
  readonly kernelDisconnected: Gauge;
  readonly kernelReconnects: Counter;
  readonly signingActTransitions: Counter<'state'>;
  readonly ledgerEntriesRefused: Counter<'reason'>;
  readonly checkpointDivergence: Counter<'peer'>;
  readonly witnessPushFailures: Counter<'witness' | 'reason'>;
  readonly witnessCosignedSize: Gauge<'witness'>;
  readonly auditRecordFailures: Counter<string>;
}

function specOf(name: string): { name: string; help: string; labelNames: string[] } {
  const s = byName.get(name);
  if (!s || s.by !== 'catalog') throw new Error(`metrics-catalog: ${name} is not a catalog-registered metric`);
  return { name: s.name, help: s.help, labelNames: [...s.labels] };
}

/**
 * Registers every `by: 'catalog'` metric on `registry` (the daemon's one registry, beside
 * NodeMetrics). Label values with a known, small set (split-brain kinds, reason codes, kernel
 * steps, act states) are initialised to zero, so a rule sees the series before the first event
 * and `increase()` counts the first one.
 */
export function registerCatalogMetrics(registry: Registry, sources: CatalogSources = {}): CatalogMetrics {
  const registers = [registry];
  const { raft, coreStats, ledger } = sources;

  new Counter({ ...specOf('custody_raft_leader_changes_total'), registers, collect() { const s = coreStats?.(); if (s) { this.reset(); this.inc(s.leaderChanges); } } });
  new Counter({ ...specOf('custody_raft_elections_total'), registers, collect() { const s = coreStats?.(); if (s) { this.reset(); this.inc(s.elections); } } });
  new Counter({ ...specOf('custody_raft_conf_changes_refused_total'), registers, collect() { const s = coreStats?.(); if (s) { this.reset(); this.inc(s.confChangesRefused ?? 0); } } });
  new Gauge({ ...specOf('custody_raft_voters'), registers, collect() { const s = raft?.(); if (s) this.set(s.conf.voters.length); } });
  new Gauge({ ...specOf('custody_raft_apply_lag_entries'), registers, collect() { const s = raft?.(); if (s) this.set(Math.max(0, s.commit - s.appliedIndex)); } });
  new Gauge({
    ...specOf('custody_raft_follower_lag_entries'), registers,
    // Only the leader knows followers' match indexes; on other nodes the series disappear, so a
    // deposed leader's last values cannot keep CustodyFollowerLagging firing.
    collect() {
      this.reset();
      const s = raft?.();
      if (!s || s.role !== 'leader' || s.progress === null) return;
      for (const [peer, p] of Object.entries(s.progress)) if (peer !== s.id) this.set({ peer }, Math.max(0, s.lastIndex - p.match));
    },
  });

  const splitBrainActive = new Gauge({ ...specOf('custody_split_brain_active'), registers });
  const splitBrainAlarms = new Counter({ ...specOf('custody_split_brain_alarms_total'), registers });
  for (const kind of SPLIT_BRAIN_KINDS) {
    splitBrainActive.set({ kind }, 0);
    splitBrainAlarms.inc({ kind }, 0);
  }
  const observations = new Counter({ ...specOf('custody_split_brain_observations_total'), registers });
  const rollbackVoteWithheld = new Gauge({ ...specOf('custody_rollback_vote_withheld'), registers });
  rollbackVoteWithheld.set(0);

  new Gauge({
    ...specOf('custody_equivocation_active'), registers,
    collect() {
      const l = ledger?.();
      if (!l) return;
      this.reset();
      for (const e of l.equivocated) this.set({ offender: e.offender, kind: e.kind }, 1);
    },
  });
  const equivocationEvidence = new Counter({ ...specOf('custody_equivocation_evidence_total'), registers });
  const statementsRejected = new Counter({ ...specOf('custody_equivocation_statements_rejected_total'), registers });
  new Gauge({ ...specOf('custody_fenced_passports'), registers, collect() { const l = ledger?.(); if (l) this.set(l.fencedPassports); } });

  const kernelSteps = new Counter({ ...specOf('custody_kernel_steps_total'), registers });
  for (const step of KERNEL_STEPS) kernelSteps.inc({ step }, 0);
  const kernelRefusals = new Counter({ ...specOf('custody_kernel_refusals_total'), registers });
  for (const reason of REASON_CODES) kernelRefusals.inc({ reason }, 0);
  const kernelDisconnected = new Gauge({ ...specOf('custody_kernel_disconnected'), registers });
  kernelDisconnected.set(0);
  const kernelReconnects = new Counter({ ...specOf('custody_kernel_reconnects_total'), registers });
  kernelReconnects.inc(0);
  new Gauge({
    ...specOf('custody_signing_acts'), registers,
    collect() {
      const l = ledger?.();
      if (!l) return;
      for (const state of SIGNING_ACT_STATES) this.set({ state }, l.actsByState[state] ?? 0);
    },
  });
  const signingActTransitions = new Counter({ ...specOf('custody_signing_act_transitions_total'), registers });
  for (const state of SIGNING_ACT_STATES) signingActTransitions.inc({ state }, 0);
  const ledgerEntriesRefused = new Counter({ ...specOf('custody_ledger_entries_refused_total'), registers });

  // No zero series: the peers are not known here; increase() over a series born at 1 still counts
  // it in the alert (CustodyCheckpointDivergence uses `> 0` on the counter's presence).
  const checkpointDivergence = new Counter({ ...specOf('custody_checkpoint_divergence_total'), registers });
  const witnessPushFailures = new Counter({ ...specOf('custody_witness_push_failures_total'), registers });
  const witnessCosignedSize = new Gauge({ ...specOf('custody_witness_cosigned_size'), registers });
  const auditRecordFailures = new Counter({ ...specOf('custody_audit_record_failures_total'), registers });

  return { splitBrainActive, splitBrainAlarms, observations, rollbackVoteWithheld, equivocationEvidence, statementsRejected, kernelSteps, kernelRefusals, kernelDisconnected, kernelReconnects, signingActTransitions, ledgerEntriesRefused, checkpointDivergence, witnessPushFailures, witnessCosignedSize, auditRecordFailures };
}
