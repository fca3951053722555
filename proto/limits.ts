/**
 * Every bound in the product lives here, units last (TigerBeetle style). Each layer has its own
 * section; relations between bounds are asserted at the bottom, at load time, so a bad edit
 * fails the first test rather than a production node.
 *
 * Edit a section in place; do not move bounds into other files.
 */

// ---------------------------------------------------------------------------------------------
// raft/ — consensus core and driver
// ---------------------------------------------------------------------------------------------
export const raft = {
  /** Ticks a follower waits without hearing a leader before it campaigns; randomized in [min, 2*min). */
  electionTicksMin: 10,
  /** Ticks between leader heartbeats. */
  heartbeatTicks: 1,
  /** Milliseconds per tick in the real driver (the simulator counts ticks, not ms). */
  tickMs: 100,
  /** Most bytes of entries in one append message (batching). */
  appendBytesMax: 1024 * 1024,
  /** Most append messages in flight to one follower before the leader waits (pipelining). */
  inflightMsgsMax: 256,
  /** Most bytes of entries in flight to one follower (flow control). */
  inflightBytesMax: 16 * 1024 * 1024,
  /** Most bytes proposed but not yet committed; further proposals are dropped (backpressure). */
  uncommittedBytesMax: 64 * 1024 * 1024,
  /** Largest single proposal. */
  proposalBytesMax: 1024 * 1024,
  /** Bytes per InstallSnapshot chunk. */
  snapshotChunkBytes: 256 * 1024,
  /** Largest snapshot a follower will assemble in memory. */
  snapshotBytesMax: 512 * 1024 * 1024,
  /** Applied entries kept in the log after a snapshot, so slow followers can still catch up by log. */
  compactionKeepEntries: 1000,
  /** Applied entries between automatic snapshots. */
  snapshotEveryEntries: 10_000,
  /** Most pending ReadIndex requests held by a leader. */
  readIndexPendingMax: 4096,
  /** Ticks a leader transfer may take before it is abandoned (in election timeouts). */
  transferTimeoutElections: 1,
  /** Client sessions remembered for idempotent proposals. */
  clientSessionsMax: 10_000,
  /** Simulator (test/sim): delivery slots per tick; a message waits 1..delay slots. */
  simStepsPerTick: 4,
  /** Simulator: most ticks a message may be delayed once faults heal (the liveness phase). */
  simHealedDelayTicksMax: 1,
  /** Simulator: the network's drop probability is at most this. */
  simDropRateMax: 0.3,
  /**
   * Simulator liveness bound, in election timeouts E = electionTicksMin, counted from the moment
   * every fault heals until a leader has committed a new proposal. Derivation: 2E for what was
   * heard before the heal to expire (a cut-off leader steps down by check-quorum within E, and a
   * follower ignores votes for E after it last heard a leader); then up to 12 election rounds,
   * each over within the largest randomized timeout 2E (a round splits the vote with probability
   * well under 1/2, so 12 splits in a row is below 1/4096); then 4E to catch a restarted majority
   * up by log or chunked snapshot, leave a joint configuration and commit: 2E + 24E + 4E = 30E.
   */
  simLivenessElectionsMax: 30,
  /**
   * Whole-node simulator liveness bound, in election timeouts E, from the heal (every node but
   * the permanently failed ones up, every link up) until a leader has committed a new proposal.
   * Derivation: the core's 30E above; plus 1E for a restarted node's rollback query to be asked
   * again and answered (one observation interval, splitBrain.observationIntervalMs = 1E at the
   * default tickMs, the answer coming back at once); plus 3E + 2E for a node recovering a lost log
   * behind a leader that keeps probing above it: it asks for a transfer after 3E without progress
   * (raft/driver.ts checkRecovery) and the transfer and the next commit take at most 2E more.
   * 30E + 1E + 5E = 36E.
   */
  simWholeLivenessElectionsMax: 36,
} as const;

// ---------------------------------------------------------------------------------------------
// ledger/ — governance state machine and operation journal
// ---------------------------------------------------------------------------------------------
export const ledger = {
  /** Largest canonical encoding of one ledger event. */
  eventBytesMax: 256 * 1024,
  /** Most approvers on a roster. */
  approversMax: 64,
  /** Most nodes on a roster. */
  nodesMax: 64,
  /** Longest a governance decision may stay valid after it is stamped. */
  decisionTtlMsMax: 7 * 24 * 3600 * 1000,
  /** Longest an identifier (key id, cluster id, idempotency key) may be. */
  idBytesMax: 128,
  /** Longest free text in an event (a freeze reason, a fencing reason). */
  textBytesMax: 1024,
  /** Most amount tiers in an act policy. */
  policyTiersMax: 16,
  /** Most assets with a destination allow-list. */
  policyAssetsMax: 64,
  /** Most destinations on one asset's allow-list. */
  policyDestinationsMax: 1024,
  /** Most admitted acts per key inside one velocity window; one more is refused LIMIT_EXCEEDED. */
  velocityEntriesMax: 4096,
  /**
   * Most signing acts in flight (admitted, not yet settled or aborted); one more is refused
   * LIMIT_EXCEEDED. Ended acts move to the archive (ledger/archive.ts), so this, not the length of
   * the history, bounds the journal in memory (a few KiB per act).
   */
  actsInFlightMax: 10_000,
  /** Largest snapshot of the in-memory ledger state (canonical encoding; archived acts travel beside it). */
  snapshotBytesMax: 256 * 1024 * 1024,
  /** Largest snapshot of the node's ledger application: the state, the applied decisions, the approval book. */
  appSnapshotBytesMax: 512 * 1024 * 1024,
} as const;

// ---------------------------------------------------------------------------------------------
// node/lifecycle/ — coordinator and participants of the signing acts
// ---------------------------------------------------------------------------------------------
export const lifecycle = {
  /** How long a peer may take per lifecycle request (a nonce commitment, a share) by default... */
  remoteTimeoutMsDefault: 5_000,
  /** ... and the range `remoteTimeoutMs` may be set to in `<node>.lifecycle.yaml`. */
  remoteTimeoutMsMin: 100,
  remoteTimeoutMsMax: 120_000,
  /**
   * Longest a coordinator keeps asking the members of a signing set fixed in the ledger for their
   * shares (a member restarting, a new leader resuming) before it aborts the act REMOTE_TIMEOUT.
   */
  signingSetWaitMsDefault: 60_000,
  /** The range `signingSetWaitMs` may be set to in `<node>.lifecycle.yaml`. */
  signingSetWaitMsMin: 1_000,
  signingSetWaitMsMax: 3_600_000,
  /** Pause between two requests to a member of a fixed signing set that has not answered. */
  signingSetRetryMs: 250,
  /** Longest a stopping participant waits for the kernel calls it already queued. */
  kernelDrainMs: 2_000,
} as const;

// ---------------------------------------------------------------------------------------------
// kernel/ — secret kernel process and socket protocol
// ---------------------------------------------------------------------------------------------
export const kernel = {
  /** Largest request frame accepted on the kernel socket. */
  frameBytesMax: 256 * 1024,
  /** Largest response frame the kernel writes (a DKG round-2 bundle for the largest committee). */
  responseBytesMax: 256 * 1024,
  /** Largest message a signing step may carry (the digest in the permit covers it). */
  messageBytesMax: 64 * 1024,
  /** Most participants in one key's committee (DKG, refresh, reshare). */
  participantsMax: 32,
  /** Most nonce pairs presigned in one batch request. */
  nonceBatchMax: 256,
  /** Most unused presigned nonce pairs held for one key epoch. */
  noncesOutstandingMax: 4096,
  /** Most signed decisions in one governance update frame. */
  decisionsPerUpdateMax: 256,
  /** Most DKG / redeal ceremonies open at once (their secret state lives in memory only). */
  ceremoniesOpenMax: 16,
  /** Longest identifier (key id, request id, ceremony id, node id) in bytes. */
  idBytesMax: 128,
  /** Most concurrent connections on the kernel socket (the daemon needs one or two). */
  connectionsMax: 8,
  /** Most requests queued on one kernel connection; beyond it LIMIT_EXCEEDED and the connection closes. */
  queuedRequestsMax: 1024,
} as const;

// ---------------------------------------------------------------------------------------------
// node/ — daemon, gRPC, admin API
// ---------------------------------------------------------------------------------------------
export const node = {
  /** Largest gRPC message between peers (must hold one full append batch plus framing). */
  peerMessageBytesMax: 4 * 1024 * 1024,
  /** Largest admin API request. */
  adminRequestBytesMax: 1024 * 1024,
  /** Most bytes of Raft messages packed into one peer stream frame (batching). */
  peerBatchBytesMax: 3 * 1024 * 1024,
  /** Most bytes queued for one peer before further messages to it are dropped (backpressure). */
  peerQueueBytesMax: 64 * 1024 * 1024,
  /** Most messages queued for one peer before further messages to it are dropped. */
  peerQueueMsgsMax: 20_000,
  /** First and largest wait before re-dialling a peer whose stream failed (doubling, jittered). */
  peerReconnectMsMin: 100,
  peerReconnectMsMax: 5_000,
  /** Largest client-facing request (one proposal plus its envelope). */
  clientRequestBytesMax: 1024 * 1024 + 64 * 1024,
  /** Deadline of a client proposal or read when the client names none, and the most it may name. */
  clientTimeoutMsDefault: 10_000,
  clientTimeoutMsMax: 120_000,
  /** Most inbound peer messages queued in the driver while a batch is being written. */
  driverInboxMax: 200_000,
  /** Most client proposals waiting for commit on one node. */
  pendingProposalsMax: 100_000,
  /** Most client commands packed into one Raft entry (proposal batching); 1 turns batching off. */
  proposalsPerEntryMax: 1024,
  /** Longest a graceful shutdown waits for in-flight work before the process exits anyway. */
  shutdownGraceMs: 10_000,
} as const;

// ---------------------------------------------------------------------------------------------
// node/splitbrain/ — split-brain, equivocation and rollback detection
// ---------------------------------------------------------------------------------------------
export const splitBrain = {
  /** Terms whose leader the split-brain detector remembers, counted back from the highest seen. */
  termsTrackedMax: 4096,
  /** Applied indexes whose state root it remembers, counted back from the highest seen. */
  rootsTrackedMax: 16_384,
  /** Signed statements (one per node, kind and slot) the equivocation detector remembers. */
  statementsTrackedMax: 65_536,
  /** Largest canonical encoding of one signed statement (a vote is ~200 bytes, a DKG round-1 cid ~250). */
  statementBytesMax: 4096,
  /** Milliseconds between two observation exchanges with each peer. */
  observationIntervalMs: 1000,
  /** Most signed statements relayed in one observation exchange; older ones wait for the next. */
  statementsPerExchangeMax: 256,
  /** Most statements queued for relay to one peer; beyond this the oldest unsent one is dropped. */
  statementsRelayQueuedMax: 1024,
  /** Evidence pairs waiting to be proposed to the ledger; beyond this the oldest is kept, new ones counted and dropped. */
  evidencePendingMax: 64,
  /**
   * Boots (process runs, node/splitbrain/rollback.ts WitnessBook) of one peer whose records the
   * witness book keeps apart; an older one folds into the record every asker is answered with. A
   * running node is its peer's most recently heard boot, so this only has to outlast the late
   * messages of the few runs before it.
   */
  witnessBootsPerPeerMax: 4,
  /** Longest boot id a peer may name (a daemon draws 16 hex characters). */
  bootIdCharsMax: 64,
  /**
   * Least time between two exchanges sent to one peer at once because it asked for a rollback
   * answer (node-guard.ts incoming); a query within it is answered by the next round. Two nodes
   * that both wait answer each other's queries, and duplicated messages would otherwise make that
   * a storm.
   */
  immediateAnswerIntervalMs: 1000,
} as const;

// ---------------------------------------------------------------------------------------------
// node/approvals/ — decisions waiting for approver signatures, replicated beside the ledger
// ---------------------------------------------------------------------------------------------
export const approvals = {
  /** Most decisions pending at once (cluster-wide); one more proposal is refused LIMIT_EXCEEDED. */
  pendingMax: 256,
  /** Applied or refused decisions each node remembers for `decision show` after they left the book. */
  settledRememberedMax: 1024,
} as const;

// ---------------------------------------------------------------------------------------------
// node/backup/ — cluster snapshot files (`custody admin snapshot save`, `custody cluster restore`)
// ---------------------------------------------------------------------------------------------
export const backup = {
  /** Bytes of replicated state per chunk frame of a snapshot file (and per gRPC message saving it). */
  chunkBytes: 1024 * 1024,
  /** Largest header frame (JSON: cluster id, index, term, root, membership, roster node ids). */
  headerBytesMax: 64 * 1024,
  /** Largest replicated state a snapshot file may carry. */
  stateBytesMax: 8 * 1024 * 1024 * 1024,
  /** How long a save waits for the node to reach the cluster's commit point (ReadIndex). */
  readIndexTimeoutMs: 10_000,
  /** Bytes between two progress lines of `snapshot save` / `inspect` / `restore`. */
  progressEveryBytes: 16 * 1024 * 1024,
} as const;

// ---------------------------------------------------------------------------------------------
// node/membership/ — Raft membership driven by governance decisions (NodeAdded / NodeRemoved)
// ---------------------------------------------------------------------------------------------
export const membership = {
  /** A learner counts as caught up while its match index is within this many entries of the leader's commit index. */
  learnerLagEntriesMax: 64,
  /** Milliseconds a learner must stay caught up, without a break, before the leader promotes it to voter. */
  learnerCaughtUpMs: 2_000,
  /** Milliseconds between two reconciliations of the ledger roster with the Raft configuration (also run on every applied decision). */
  reconcileEveryMs: 500,
  /** Milliseconds a peer may stay silent before the leader treats it as down when it checks that a removal keeps a live quorum. */
  peerLiveMs: 3_000,
  /** Milliseconds `custody admin leader transfer` waits for the new leader before it reports REMOTE_TIMEOUT. */
  transferWaitMs: 10_000,
} as const;

// ---------------------------------------------------------------------------------------------
// Relations between bounds.
// ---------------------------------------------------------------------------------------------
function check(cond: boolean, what: string): void {
  if (!cond) throw new Error(`limits: ${what}`);
}
check(raft.heartbeatTicks < raft.electionTicksMin, 'heartbeats must come faster than elections');
check(raft.proposalBytesMax <= raft.appendBytesMax, 'one proposal must fit one append');
check(raft.appendBytesMax * 2 <= node.peerMessageBytesMax, 'an append batch must fit a peer message');
check(raft.snapshotChunkBytes * 2 <= node.peerMessageBytesMax, 'a snapshot chunk must fit a peer message');
check(raft.appendBytesMax + raft.snapshotChunkBytes < node.peerBatchBytesMax && node.peerBatchBytesMax < node.peerMessageBytesMax, 'a peer batch holds a full append and fits a peer message');
check(raft.proposalBytesMax < node.clientRequestBytesMax, 'a client request holds a full proposal');
check(node.peerReconnectMsMin < node.peerReconnectMsMax, 'reconnect backoff grows');
check(raft.inflightBytesMax >= raft.appendBytesMax, 'flow control must admit at least one full append');
check(raft.compactionKeepEntries < raft.snapshotEveryEntries, 'keep fewer entries than a snapshot interval');
check(raft.simHealedDelayTicksMax * 2 <= raft.heartbeatTicks * raft.electionTicksMin, 'healed network round trips must fit an election timeout');
check(raft.simLivenessElectionsMax >= 2 + 2 * 12 + 4, 'sim liveness bound below its derivation');
check(raft.simWholeLivenessElectionsMax >= raft.simLivenessElectionsMax + 1 + 3 + 2, 'whole-node sim liveness bound below its derivation');
check(ledger.eventBytesMax <= raft.proposalBytesMax, 'a ledger event must fit one proposal');
check(lifecycle.signingSetRetryMs < lifecycle.signingSetWaitMsDefault, 'a fixed signing set is asked more than once before the act aborts');
check(splitBrain.termsTrackedMax >= 2 * raft.electionTicksMin && splitBrain.rootsTrackedMax >= raft.compactionKeepEntries, 'split-brain windows cover a burst of elections and the entries a follower may lag by');
check(splitBrain.statementBytesMax <= ledger.eventBytesMax / 2, 'two statements must fit one EquivocationEvidence event');
check(splitBrain.statementsPerExchangeMax * splitBrain.statementBytesMax < node.peerMessageBytesMax, 'one observation exchange fits a peer message');
check(splitBrain.statementsRelayQueuedMax >= splitBrain.statementsPerExchangeMax, 'a relay queue holds at least one full exchange');
check(backup.chunkBytes + backup.headerBytesMax < node.peerMessageBytesMax, 'one snapshot frame fits a gRPC message');
check(membership.learnerLagEntriesMax < raft.compactionKeepEntries, 'a caught-up learner is still within the log the leader keeps');
check(ledger.snapshotBytesMax < ledger.appSnapshotBytesMax, 'the application snapshot holds the ledger state and more');
