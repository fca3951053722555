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
  /**
   * LevelDB's write buffer (memtable) per store: writes collect here before they become a level-0
   * file. LevelDB's own 4 MiB makes a node that writes a million archived records while it resyncs
   * flush and compact about four times as often; at most two of these are held (one being
   * flushed), and a small store never fills one.
   */
  storeWriteBufferBytes: 16 * 1024 * 1024,
  /**
   * A scan of the store (a peer serving archive records, the node re-hashing what it holds) reads
   * ahead this many bytes, and takes at most storeScanEntries entries, per trip to LevelDB's
   * thread: LevelDB's binding reads 16 KiB (a few archived records) per trip by default.
   */
  storeScanReadAheadBytes: 1024 * 1024,
  storeScanEntries: 1024,
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
  /**
   * Most archived records one fetch asks a peer for while a node installs a snapshot (the Raft
   * snapshot carries only the archive's count and head; node/ledger-app.ts restore), and the most
   * bytes of records one answer carries (a peer stops early, at least one record, past this).
   */
  archiveFetchRecordsMax: 1024,
  archiveFetchBytesMax: 2 * 1024 * 1024,
  /** Rounds over every peer before a snapshot install gives up ARCHIVE_UNAVAILABLE, and the pause between rounds. */
  archiveFetchRoundsMax: 10,
  archiveFetchRetryMs: 1_000,
  /** How long one fetch waits for a peer's answer. */
  archiveFetchTimeoutMs: 30_000,
  /**
   * Fetches asked of a peer ahead of the answer being checked and written (node/ledger-app.ts
   * fetchFrom): the peer reads while this node checks. At most this many answers, plus one being
   * written, are held in memory (each at most archiveFetchBytesMax).
   */
  archiveFetchAnswersAhead: 2,
  /**
   * Index entries of archive records written outside the driver's batch (a snapshot's install)
   * are kept in memory and written in runs of this many records, in LevelDB files apart
   * from the records (node/ledger-app.ts IndexRuns). At most this many entries are held: a few
   * hundred bytes each.
   */
  archiveIndexRunRecords: 100_000,
  /**
   * The policy's explanation an act's record keeps beside the rule that decided it (OpRecord.rule):
   * longer details are clipped at a character boundary (ledger/state.ts clipRuleDetail), the same
   * way on every node, so the record stays bounded and identical across replicas.
   */
  ruleDetailBytesMax: 512,
  /**
   * Most certificate revocations (OperatorRevoked, NodeCertificateRevoked) the ledger holds at
   * once; one more is refused LIMIT_EXCEEDED. An entry leaves once the ledger clock passes the
   * certificate's notAfter plus revocationExpiryGraceMs (TLS refuses the certificate from then on),
   * so with certificates of at most certs.operatorDaysMax days the list turns over on its own.
   */
  revokedMax: 1024,
  /**
   * How long past a revoked certificate's notAfter the ledger keeps its revocation: covers a host
   * whose clock runs behind the ledger clock (the handshake checks notAfter on the host clock).
   */
  revocationExpiryGraceMs: 7 * 24 * 3600 * 1000,
  /**
   * Most pending fencing reports the ledger holds (ClusterState.fenceReports): one per target node,
   * since a report must name the target's current passport, so at most nodesMax; one more is
   * refused LIMIT_EXCEEDED. Each lists at most nodesMax distinct reporters.
   */
  fenceReportsMax: 64,
  /**
   * How far ahead of the ledger clock an entry may be stamped (ledger/apply.ts stampRefusal): more
   * is refused STAMP_AHEAD and leaves the clock where it was. Far above the skew of clocks kept by
   * NTP (milliseconds), far below the shortest life of what the clock expires.
   */
  stampAheadMs: 5 * 60_000,
  /** A leader whose ledger clock has not moved for this long proposes a ClockTick (node/lifecycle/clock.ts). */
  clockTickIdleMs: 60_000,
  /**
   * Most signed clock readings one ClockTick carries (ledger/clock-reading.ts): one per voter is
   * all a majority needs, so the roster bound; more is refused PAYLOAD_REJECTED at decode.
   */
  clockReadingsMax: 64,
  /**
   * Most blocks of the trust policy chain the ledger keeps, genesis included (ledger/trust-chain.ts):
   * one per change of the voters; a signature that would complete one more is refused
   * LIMIT_EXCEEDED. Below tlog.policyChainBlocksMax, so every chain the ledger keeps exports.
   */
  trustChainBlocksMax: 512,
  /** Most witnesses a WitnessesChanged decision names (the trust policy's witness lines). */
  witnessesMax: 16,
  /**
   * The window around the ledger clock in which a custodian's signed act request is accepted
   * (ledger/act-request.ts, ledger/apply.ts actSubmitted): issued at most `actRequestAgeMsMax`
   * before the entry's stamp and at most `actRequestSkewMsMax` after it (the custodian's clock may
   * run a little ahead). Outside it: REQUEST_EXPIRED.
   */
  actRequestAgeMsMax: 24 * 3600 * 1000,
  actRequestSkewMsMax: 5 * 60 * 1000,
} as const;

// ---------------------------------------------------------------------------------------------
// ledger/policy-engine/ — rule documents (first match, default deny) and the history they read
// ---------------------------------------------------------------------------------------------
export const policyEngine = {
  /** Largest policy document, YAML as written or canonical CBOR as carried by a decision. */
  documentBytesMax: 96 * 1024,
  /** Most rules in one document. */
  rulesMax: 256,
  /** Most approver groups, and most initiator groups, in one document. */
  groupsMax: 64,
  /** Most members of one group (approver groups hold approvers from the roster). */
  groupMembersMax: 64,
  /** Most entries in one list of a matcher (key ids, assets, addresses of an allow- or deny-list). */
  listItemsMax: 1024,
  /** Most rolling windows, and most lifetime caps, on one rule. */
  windowsPerRuleMax: 4,
  /** Shortest and longest rolling window: the history keeps every admission inside the longest one. */
  windowMsMin: 1_000,
  windowMsMax: 31 * 24 * 3600 * 1000,
  /** Most admissions one scope (one key, asset or initiator) keeps inside its longest window; one more is refused LIMIT_EXCEEDED. */
  scopeEntriesMax: 65_536,
  /** Shortest time to live of the approvals a REQUIRE_APPROVAL rule asks for (the longest is ledger.decisionTtlMsMax). */
  approvalTtlMsMin: 60_000,
  /** Largest amount a document may write, in an asset's smallest unit (the canonical encoding's integer range). */
  amountMax: (1n << 64n) - 1n,
  /**
   * How far after the ledger clock an act approval's issuedMs may lie and still count toward a
   * REQUIRE_APPROVAL rule: the proposing node's clock may run a little ahead of the leader's that
   * stamps the entry. A post-dated approval stretches its rule's time to live by at most this.
   */
  approvalIssueSkewMsMax: 60_000,
} as const;

// ---------------------------------------------------------------------------------------------
// node/lifecycle/ — coordinator and participants of the signing acts
// ---------------------------------------------------------------------------------------------
export const lifecycle = {
  /**
   * A failure that repeats word for word on every pass (a ceremony step while the kernel is down)
   * is logged once, then once every this many repeats, and its count when another one follows
   * (node/lifecycle/rerun.ts RepeatedLog).
   */
  repeatedFailureLogEvery: 100,
  /** How long a peer may take per lifecycle request (a nonce commitment, a share) by default... */
  remoteTimeoutMsDefault: 5_000,
  /**
   * Longest a leader waits for the voters' signed clock readings before it proposes a tick with
   * what it has (node/lifecycle/clock.ts); a tick without a majority of them moves nothing new.
   */
  clockReadingWaitMs: 3_000,
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
  /**
   * Share backups (node/lifecycle/backups.ts): after a failed attempt at one key epoch (the kernel
   * refused or was away, the write or the proposal failed), the next waits at least this long.
   */
  shareBackupRetryMs: 10_000,
  /**
   * How often a node looks again at the share repairs under way (node/lifecycle/repair.ts) besides
   * reacting to the ledger and the exchange: a step whose kernel call failed for a passing reason
   * (the kernel was restarting) is tried again at this pace.
   */
  shareRepairRetryMs: 5_000,
  /**
   * How often a node of the trust policy chain's head looks again for a block waiting for its
   * signature (node/lifecycle/trust-chain.ts) besides reacting to the ledger: a proposal that
   * found no leader is made again at this pace.
   */
  trustPolicySignRetryMs: 5_000,
  /**
   * After its kernel imported a recovered share, how many times a node proposes ShareRecovered when
   * the proposal fails without a verdict (no leader, dropped), and the pause between tries. A
   * refusal by the ledger is final. The import itself is never undone.
   */
  shareRecoveredProposeAttempts: 5,
  shareRecoveredRetryMs: 2_000,
  /**
   * Reconnecting to a kernel process whose socket closed (the kernel restarted): the first
   * attempt waits kernelReconnectMinMs, each next one twice as long, at most kernelReconnectMaxMs,
   * for as long as the daemon runs. Calls made meanwhile fail at once with REMOTE_TIMEOUT.
   */
  kernelReconnectMinMs: 100,
  kernelReconnectMaxMs: 5_000,
  /**
   * The blob exchange between daemons (node/lifecycle/peer.ts): the largest blob, and what one
   * author (the node a key names) may hold on a node at once, in bytes and in blobs. A ceremony
   * puts a handful of blobs per participant of at most a few KiB (a round-1 package of a 64-of-64
   * committee is ~4 KiB), so the budget is generous for honest nodes and bounds a bad one: at most
   * nodesMax x blobAuthorBytesMax on any node, kept in its LevelDB.
   */
  blobBytesMax: 256 * 1024,
  blobAuthorBytesMax: 16 * 1024 * 1024,
  blobsPerAuthorMax: 4096,
  /** Longest blob key (`dkg/<key>/<epoch>/round2/<sender>/<recipient>` with 128-byte ids fits). */
  blobKeyBytesMax: 512,
} as const;

// ---------------------------------------------------------------------------------------------
// kernel/ — secret kernel process and socket protocol
// ---------------------------------------------------------------------------------------------
export const kernel = {
  /**
   * Largest request frame accepted on the kernel socket. The largest legitimate frame is one act's
   * sign request: tx.messagesPerActMax messages, each with a commitment list of up to
   * participantsMax signers (about 288 KiB for 64 sighashes and 32 signers), with the entry
   * certificate it rests on (a cosigned note and two ledger entries with their proofs); checked below.
   */
  frameBytesMax: 1024 * 1024,
  /** Largest response frame the kernel writes (a DKG round-2 bundle for the largest committee). */
  responseBytesMax: 256 * 1024,
  /** Largest message a signing step may carry (the digest in the permit covers it). */
  messageBytesMax: 64 * 1024,
  /** Most participants in one key's committee (DKG, refresh, reshare). */
  participantsMax: 32,
  /**
   * Most cluster incarnations whose followed checkpoint `status` lists (kernel/certificate.ts
   * checkFollows; one per `custody cluster restore` the kernel's store lived through).
   */
  followedIncarnationsMax: 256,
  /**
   * Most helpers in one share repair (kernel/repair.ts). A repair needs t of them (any t will do); more
   * only add messages (each helper sends one delta to every other), so the bound is the committee's.
   */
  repairHelpersMax: 32,
  /**
   * Largest HPKE field (encapsulated key or ciphertext) of one repair package, in bytes, checked
   * before anything is decrypted: a 32-byte X25519 encapsulation, and a 32-byte scalar plus the
   * 16-byte AES-GCM tag.
   */
  repairSealedBytesMax: 48,
  /**
   * Most nonce pairs presigned in one batch request: at least one act's worth (an act signs up to
   * tx.messagesPerActMax messages, one nonce pair each), so one request refills a participant for
   * the largest act.
   */
  nonceBatchMax: 256,
  /**
   * Most unused presigned nonce pairs held for one key epoch: a pool of several largest acts
   * (4096 = 64 acts of 64 inputs) so a participant that offers a whole act's nonces still holds
   * the usual pool for the acts queued behind it; checked below.
   */
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
  /**
   * scrypt cost (log2 N, RFC 7914 §2; r = 8, p = 1) deriving a new store's sealing key from its
   * passphrase: 2^17 (~128 MiB, ~0.3-0.5 s once at start) for a long-lived secret, above the 2^15
   * interactive-login figure. The parameters are stored beside the salt, so stores made with
   * other costs stay readable; a stored cost outside [scryptLogNMin, scryptLogNMax] is refused.
   */
  scryptLogN: 17,
  /** The cost stores written before parameters were stored used (2^15), and the least accepted. */
  scryptLogNMin: 15,
  scryptLogNMax: 20,
  /**
   * Most governance eras (roster, governance epoch and act policy, one per ApproversChanged or
   * PolicyChanged) a kernel keeps to judge an act by the era of its ActSubmitted entry
   * (kernel/policy-check.ts). An act admitted before the oldest kept era is refused; acts live for
   * the request window (ledger.actRequestAgeMsMax), far shorter than 16 governance changes.
   */
  policyErasMax: 16,
} as const;

// ---------------------------------------------------------------------------------------------
// node/ — daemon, gRPC, admin API
// ---------------------------------------------------------------------------------------------
export const node = {
  /** Largest gRPC message between peers (must hold one full append batch plus framing). */
  peerMessageBytesMax: 4 * 1024 * 1024,
  /**
   * HTTP/2 flow-control window a node grants each peer it calls (grpc-js
   * `grpc-node.flow_control_window`, per stream and per connection; RFC 9113 §6.9). HTTP/2's
   * default of 64 KiB lets a peer send one archive answer (up to ledger.archiveFetchBytesMax) only
   * in window-sized pieces, each waiting for this node's event loop to grant the next: answers
   * asked ahead then stall while the node checks and writes the last. This many bytes in flight per
   * peer are held at most.
   */
  peerFlowControlWindowBytes: 8 * 1024 * 1024,
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
  /**
   * Acts of one chronicle reply whose transaction the serving node parses to show its facts (the
   * newest ones): a parse costs about 1-3 ms of the event loop Raft also runs on, so a chronicle of
   * 10,000 acts shows the older ones by their ledger fields only (ShowAct shows any act in full).
   */
  chronicleFactsActsMax: 100,
  /**
   * Key-value writes (the Custody service's Propose, served on key-value clusters only, and only to
   * a `client` certificate): each writer identity holds a token bucket of this many proposals,
   * refilled at kvWritesPerSecond, and of kvWriteBytesBurst bytes refilled at kvWriteBytesPerSecond.
   * Above what the write benchmark reaches with 256-byte values (bench/node-bench.ts), so only a
   * writer pushing bulk bytes meets them.
   */
  kvWritesBurst: 20_000,
  kvWritesPerSecond: 20_000,
  kvWriteBytesBurst: 16 * 1024 * 1024,
  kvWriteBytesPerSecond: 8 * 1024 * 1024,
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
  /**
   * Most decisions one operator (the certificate that proposed them) may have pending at once,
   * EmergencyFreeze aside; one more is refused LIMIT_EXCEEDED. pendingMax / pendingPerProposerMax
   * operators are needed to fill the book.
   */
  pendingPerProposerMax: 16,
  /**
   * Most EmergencyFreeze proposals pending at once, outside pendingMax and the per-operator quota:
   * one per proposer (a newer one replaces it), and when all are taken the oldest makes room, so
   * a freeze always finds a place in the book (node/approvals/book.ts).
   */
  freezePendingMax: 64,
} as const;

// ---------------------------------------------------------------------------------------------
// node/backup/ — cluster snapshot files (`custody admin snapshot save`, `custody cluster restore`)
// ---------------------------------------------------------------------------------------------
export const backup = {
  /** Bytes of replicated state per chunk frame of a snapshot file (and per gRPC message saving it). */
  chunkBytes: 1024 * 1024,
  /** Largest header frame (JSON: cluster id, index, term, root, membership, roster node ids). */
  headerBytesMax: 64 * 1024,
  /** Largest replicated state a snapshot file may carry (the application's snapshot and its archive). */
  stateBytesMax: 8 * 1024 * 1024 * 1024,
  /** Largest archived record in a snapshot file (one ended act with its receipts and permit). */
  recordBytesMax: 16 * 1024 * 1024,
  /** Archive keys per LevelDB batch while `cluster restore` stages a file's records into a store. */
  stageWritesPerBatch: 4096,
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
// ledger/tx/ — the transactions acts carry (parsed by every node and every kernel)
// ---------------------------------------------------------------------------------------------
export const tx = {
  /** Largest PSBT an act may carry (a standard transaction is at most 400,000 weight units). */
  psbtBytesMax: 100_000,
  /** Most inputs of one PSBT: each input is one threshold signature. */
  btcInputsMax: 64,
  /** Most outputs of one PSBT. */
  btcOutputsMax: 64,
  /** Highest fee one Bitcoin transaction may pay, in satoshi (0.05 BTC). */
  btcFeeSatMax: 5_000_000,
  /** Largest Solana message: a 1232-byte packet less one signature (64 bytes) and its count (1 byte). */
  solanaMessageBytesMax: 1167,
  /** Most instructions of one Solana message. */
  solanaInstructionsMax: 16,
  /** Highest fee (base and priority) one Solana message may pay, in lamports (0.05 SOL). */
  solanaFeeLamportsMax: 50_000_000,
  /** Largest raw message an act may carry. */
  rawBytesMax: 4096,
  /** Most messages one act signs (one per PSBT input): each is one threshold signature and one nonce per signer. */
  messagesPerActMax: 64,
  /** Most decimals an asset table entry may declare (SPL Token allows up to 255; none in use exceeds 18). */
  assetDecimalsMax: 30,
  /** Characters of a decoding library's error message kept in a refusal's detail (the rest is dropped). */
  refusalDetailCharsMax: 300,
  /** Longest act destination: the non-change outputs' addresses joined by spaces (64 outputs of up to 90 characters). */
  destinationBytesMax: 64 * 91,
} as const;

// ---------------------------------------------------------------------------------------------
// node/guardian/ — a custodian's age identity split among guardians (`custody guardian`)
// ---------------------------------------------------------------------------------------------
export const guardian = {
  /** Fewest guardian files one split writes (Shamir needs at least two points). */
  sharesMin: 2,
  /** Most guardian files one split writes (shamir-secret-sharing uses GF(256): 255 nonzero x-coordinates). */
  sharesMax: 255,
  /** Smallest threshold: one guardian alone must never hold the identity. */
  thresholdMin: 2,
  /** Longest label, in characters (printable ASCII, written on each guardian file). */
  labelCharsMax: 64,
  /** Largest guardian file or identity file read; anything larger is not ours and is refused unread. */
  fileBytesMax: 4096,
  /** Bytes of the random set id that binds the files of one split. */
  setIdBytes: 16,
  /** Most threshold-size subsets a failed combine tries to name the files that disagree (C(N,K) can be huge). */
  combineSubsetsMax: 2_000,
} as const;

// ---------------------------------------------------------------------------------------------
// kernel/backup.ts — a key share encrypted with age to custodians' recipients
// ---------------------------------------------------------------------------------------------
export const shareBackup = {
  /** Most custodian recipients one backup is encrypted to. */
  recipientsMax: 16,
  /** Largest backup file decoded (metadata, age header with one stanza per recipient, share). */
  fileBytesMax: 64 * 1024,
  /** Longest key id carried in backup metadata, in bytes. */
  keyIdBytesMax: 256,
  /** Longest participant identifier carried in backup metadata, in bytes. */
  identifierBytesMax: 128,
  /** Longest custodian label a BackupPolicy decision names, in bytes. */
  labelBytesMax: 128,
  /** Largest sealed-share file decoded (kernel/recovery.ts: public facts and one HPKE package of a scalar). */
  sealedShareBytesMax: 4096,
  /** Most key epochs one BackupsDestroyed decision names. */
  destroyEpochsMax: 64,
} as const;

// ---------------------------------------------------------------------------------------------
// ledger/tlog/ — Merkle tree (RFC 9162), signed notes and checkpoints (C2SP)
// ---------------------------------------------------------------------------------------------
export const tlog = {
  /** Largest tree size a checkpoint or proof may name (sizes and indexes stay exact JavaScript integers). */
  treeSizeMax: Number.MAX_SAFE_INTEGER,
  /** Most hashes in one inclusion or consistency proof (a tree of at most 2^53 leaves needs at most 54). */
  proofHashesMax: 64,
  /** Largest signed note, text and signature lines together, in bytes. */
  noteBytesMax: 64 * 1024,
  /** Most signature lines in one note (the signed-note spec requires accepting at least 16). */
  noteSignaturesMax: 100,
  /** Longest key name (a signature line's or a verifier key's), in bytes. */
  keyNameBytesMax: 256,
  /** Most extension lines after a checkpoint's root hash. */
  checkpointExtensionLinesMax: 16,
  /** Largest cosignature timestamp, in POSIX seconds (the spec's u64 bound is 2^63-1; ours keeps it an exact integer). */
  cosignatureTimestampMax: Number.MAX_SAFE_INTEGER,
  /** Largest C2SP tlog-proof text: header, index, proof lines and the cosigned checkpoint note. */
  proofTextBytesMax: 80 * 1024,
  /** Largest opaque `extra` data a tlog-proof may carry, in bytes (before base64). */
  proofExtraBytesMax: 4096,
  /** Longest a node waits to have applied the size a peer asks it to cosign, or the entries a certificate covers, in ms. */
  cosignApplyWaitMs: 5_000,
  /** Deadline of one peer's cosign call, in ms (the peer's own apply wait plus a round trip). */
  cosignCallMs: 7_000,
  /** Pause before asking a peer again for its cosignature when it could not be reached (node/checkpoints.ts). */
  cosignRetryMs: 250,
  /** Snapshot statements (aligned snapshot indexes) a node keeps in memory to cosign, newest kept (node/snapshot-cert.ts). */
  snapshotStatementsKeptMax: 8,
  /** Least time between two attempts to gather a snapshot's certificate, in ms. */
  snapshotCertRetryMs: 1_000,
  /** Most entries one EntryCertificate proves (the ActSubmitted and ActSigningSetFixed of one act). */
  certificateInclusionsMax: 2,
  /** Largest canonical CBOR of one included entry in a kernel sign request, in bytes (a ledger event and its index and stamp). */
  certificateEntryBytesMax: 256 * 1024 + 1024,
  /** Largest block of a trust policy (ledger/tlog/trust-policy.ts), in bytes. */
  policyBytesMax: 64 * 1024,
  /** Most node keys, and most witness keys, one trust policy names. */
  policyKeysMax: 64,
  /** Most blocks (genesis and roster changes) of one trust policy file. */
  policyChainBlocksMax: 1024,
  /** Largest trust policy file, in bytes. */
  policyChainBytesMax: 8 * 1024 * 1024,
  /** Most log entries one proven evidence bundle includes (ledger/evidence-proof.ts). */
  evidenceEntriesMax: 16,
  /** Largest proven evidence bundle file, in bytes. */
  evidenceBundleBytesMax: 8 * 1024 * 1024,
  /** Most roster changes an exporting node walks back to find the approver roster in force at an act. */
  evidenceRosterWalkMax: 1024,
} as const;

// ---------------------------------------------------------------------------------------------
// node/witness/ — the C2SP tlog-witness server and the nodes' pushes to witnesses
// ---------------------------------------------------------------------------------------------
export const witness = {
  /** Largest add-checkpoint request body (old size, proof lines, the checkpoint note), in bytes. */
  requestBytesMax: tlog.proofTextBytesMax,
  /** Longest a witness waits for a request's body, in ms, before answering 408. */
  requestReadMs: 10_000,
  /** Most logs one witness follows (--log-policy files). */
  logsMax: 1024,
  /** Largest log policy file, in bytes. */
  logPolicyBytesMax: 64 * 1024,
  /** Largest state file of one log (the latest cosigned checkpoint note and its record), in bytes. */
  stateFileBytesMax: tlog.noteBytesMax + 4096,
  /** Most witnesses one node pushes its checkpoints to. */
  witnessesPerNodeMax: 16,
  /** Deadline of one push (one HTTP request) to a witness, in ms. */
  pushCallMs: 10_000,
  /** Most requests of one push to a witness (a 409 with its size is answered once with a proof from there). */
  pushAttemptsMax: 3,
} as const;

// ---------------------------------------------------------------------------------------------
// Relations between bounds.
// ---------------------------------------------------------------------------------------------
function check(cond: boolean, what: string): void {
  if (!cond) throw new Error(`limits: ${what}`);
}
// ---------------------------------------------------------------------------------------------
// node/guardian/drill.ts — backup drills (`custody admin backup drill`)
// ---------------------------------------------------------------------------------------------
export const drill = {
  /** Longest input the drill process accepts on stdin (public facts of a key epoch and file paths). */
  inputCharsMax: 1024 * 1024,
  /** Longest report read back from the drill process. */
  reportCharsMax: 1024 * 1024,
  /** Most backup files a drill reads from its folder. */
  backupFilesMax: 4096,
  /** Most a BackupDrilled's own time may differ from its entry's stamp (the drill is recorded as it ends). */
  recordSkewMs: 10 * 60_000,
};

check(raft.heartbeatTicks < raft.electionTicksMin, 'heartbeats must come faster than elections');
check(raft.proposalBytesMax <= raft.appendBytesMax, 'one proposal must fit one append');
check(raft.appendBytesMax * 2 <= node.peerMessageBytesMax, 'an append batch must fit a peer message');
check(raft.snapshotChunkBytes * 2 <= node.peerMessageBytesMax, 'a snapshot chunk must fit a peer message');
check(raft.appendBytesMax + raft.snapshotChunkBytes < node.peerBatchBytesMax && node.peerBatchBytesMax < node.peerMessageBytesMax, 'a peer batch holds a full append and fits a peer message');
check(raft.proposalBytesMax < node.clientRequestBytesMax, 'a client request holds a full proposal');
check(node.peerFlowControlWindowBytes >= (ledger.archiveFetchAnswersAhead + 1) * ledger.archiveFetchBytesMax && node.peerFlowControlWindowBytes <= 64 * 1024 * 1024, 'a peer may send every archive answer asked ahead at once, and no more than a few tens of MiB');
check(node.peerReconnectMsMin < node.peerReconnectMsMax, 'reconnect backoff grows');
check(raft.inflightBytesMax >= raft.appendBytesMax, 'flow control must admit at least one full append');
check(raft.compactionKeepEntries < raft.snapshotEveryEntries, 'keep fewer entries than a snapshot interval');
check(raft.simHealedDelayTicksMax * 2 <= raft.heartbeatTicks * raft.electionTicksMin, 'healed network round trips must fit an election timeout');
check(raft.simLivenessElectionsMax >= 2 + 2 * 12 + 4, 'sim liveness bound below its derivation');
check(raft.simWholeLivenessElectionsMax >= raft.simLivenessElectionsMax + 1 + 3 + 2, 'whole-node sim liveness bound below its derivation');
check(ledger.eventBytesMax <= raft.proposalBytesMax, 'a ledger event must fit one proposal');
check(lifecycle.signingSetRetryMs < lifecycle.signingSetWaitMsDefault, 'a fixed signing set is asked more than once before the act aborts');
check(lifecycle.kernelReconnectMinMs < lifecycle.kernelReconnectMaxMs && lifecycle.kernelReconnectMaxMs < lifecycle.signingSetWaitMsMin * 10, 'kernel reconnect backoff grows, and a restarted kernel is back well within a signing set\'s wait');
check(splitBrain.termsTrackedMax >= 2 * raft.electionTicksMin && splitBrain.rootsTrackedMax >= raft.compactionKeepEntries, 'split-brain windows cover a burst of elections and the entries a follower may lag by');
check(splitBrain.statementBytesMax <= ledger.eventBytesMax / 2, 'two statements must fit one EquivocationEvidence event');
check(splitBrain.statementsPerExchangeMax * splitBrain.statementBytesMax < node.peerMessageBytesMax, 'one observation exchange fits a peer message');
check(splitBrain.statementsRelayQueuedMax >= splitBrain.statementsPerExchangeMax, 'a relay queue holds at least one full exchange');
check(backup.chunkBytes + backup.headerBytesMax < node.peerMessageBytesMax, 'one snapshot frame fits a gRPC message');
check(membership.learnerLagEntriesMax < raft.compactionKeepEntries, 'a caught-up learner is still within the log the leader keeps');
check(policyEngine.documentBytesMax * 2 <= ledger.eventBytesMax, 'a canonical policy document fits a PolicyChanged decision with room for its envelope');
check(policyEngine.approvalTtlMsMin < ledger.decisionTtlMsMax, 'approval time to live has a non-empty range');
check(policyEngine.windowMsMin < policyEngine.windowMsMax, 'window lengths have a non-empty range');
check(policyEngine.groupMembersMax <= ledger.approversMax, 'an approver group is no larger than the roster');
check(ledger.archiveFetchBytesMax + 64 * 1024 < node.peerMessageBytesMax, 'one archive fetch answer fits a peer message');
check(ledger.snapshotBytesMax < ledger.appSnapshotBytesMax, 'the application snapshot holds the ledger state and more');
check(tx.btcFeeSatMax < 21_000_000 * 100_000_000 && tx.solanaFeeLamportsMax > 5_000, 'transaction fee bounds are positive and below the supply');
check(guardian.thresholdMin >= 2 && guardian.sharesMin >= guardian.thresholdMin && guardian.sharesMax <= 255, 'a guardian split needs two shares to rebuild and GF(256) has 255 nonzero points');
check(shareBackup.recipientsMax >= 1 && shareBackup.keyIdBytesMax + shareBackup.identifierBytesMax < shareBackup.fileBytesMax / 4, 'a share backup holds its metadata, a stanza per recipient and the share');
check(shareBackup.fileBytesMax + 4 * kernel.idBytesMax + 64 <= kernel.responseBytesMax && shareBackup.recipientsMax * 2 * kernel.idBytesMax + 1024 <= kernel.frameBytesMax, 'a share backup file fits a kernel response, and a backup request naming every recipient fits a frame');
check(tlog.noteSignaturesMax >= 16, 'the signed-note spec requires accepting at least 16 signatures');
check(tlog.proofHashesMax >= 54, 'a proof over the largest tree size fits the proof bound');
check(tlog.proofTextBytesMax >= tlog.noteBytesMax + tlog.proofHashesMax * 45 + Math.ceil(tlog.proofExtraBytesMax / 3) * 4 + 64, 'a tlog-proof holds a full note, a full proof and its extra data');
check(kernel.repairHelpersMax <= kernel.participantsMax && kernel.repairSealedBytesMax >= 32 + 16, 'a repair helper set is a subset of a committee, and one sealed scalar fits a repair package');
check(kernel.nonceBatchMax >= tx.messagesPerActMax && kernel.noncesOutstandingMax >= 2 * tx.messagesPerActMax + kernel.nonceBatchMax, 'a participant presigns a whole act in one batch and holds more than one largest act besides a batch');
check(tx.messagesPerActMax * (32 + 16 + kernel.participantsMax * (kernel.idBytesMax + 2 * 33 + 16)) + 4 * kernel.idBytesMax + 1024 <= kernel.frameBytesMax, 'one act\'s sign request (every message with a full commitment list) fits a kernel frame');
check(Math.max(tx.solanaMessageBytesMax, tx.rawBytesMax, 32) <= kernel.messageBytesMax, 'every message an act signs fits a kernel sign request');
check(ledger.archiveIndexRunRecords >= 1 && ledger.archiveIndexRunRecords * (2 * ledger.idBytesMax + 2 * 64 + 256) <= 64 * 1024 * 1024, 'an index run holds at least one record and at most a few tens of MiB');
check(ledger.archiveFetchAnswersAhead >= 1 && (ledger.archiveFetchAnswersAhead + 1) * ledger.archiveFetchBytesMax <= 64 * 1024 * 1024, 'an archive fetch asks at least one answer ahead and holds a few MiB of answers');
check(tlog.certificateEntryBytesMax >= ledger.eventBytesMax + 64 && tx.messagesPerActMax * (32 + 16 + kernel.participantsMax * (kernel.idBytesMax + 2 * 33 + 16)) + 4 * kernel.idBytesMax + 1024 + tlog.noteBytesMax + tlog.certificateInclusionsMax * (tlog.certificateEntryBytesMax + tlog.proofHashesMax * 34 + 16) + tlog.proofHashesMax * 34 + 32 <= kernel.frameBytesMax, 'one act\'s sign request with its entry certificate (a full note, two largest entries, two longest inclusion proofs and the longest consistency proof) fits a kernel frame');

// ---------------------------------------------------------------------------------------------
// node/certs.ts, node/admin/roles.ts — certificate lifetimes
// ---------------------------------------------------------------------------------------------
export const certs = {
  /** Days an operator certificate is valid unless `--days` asks for more (rotation: `custody certs operator --force`). */
  operatorDaysDefault: 30,
  /** Most days `--days` may ask for an operator certificate. */
  operatorDaysMax: 90,
} as const;

// ---------------------------------------------------------------------------------------------
// test/jepsen/ — linearizability checker of client histories
// ---------------------------------------------------------------------------------------------
export const jepsen = {
  /** Most operations in one history the checker accepts. */
  historyOpsMax: 1_000_000,
  /** Search steps per key before the checker answers "unknown" for that key, unless the caller sets a budget. */
  checkStepsPerKeyDefault: 2_000_000,
  /** Search steps between two readings of an injected clock. */
  checkClockEverySteps: 1024,
  /** Most memo entries of one (known operations, state) compared for a subset of the indeterminate operations linearized. */
  checkDominanceScan: 16,
  /** Longest campaign `campaign.js --seconds` accepts (a day). */
  campaignSecondsMax: 86_400,
  /** Most faults one nemesis schedule holds, whatever its length. */
  nemesisFaultsMax: 10_000,
  /** Quiet time at a campaign's start before the first fault, and after the last heal before the final checks. */
  nemesisQuietMs: 3_000,
  /** How long one fault lasts before it is healed: drawn uniformly from [min, max]. */
  nemesisFaultMsMin: 1_500,
  nemesisFaultMsMax: 8_000,
  /** Gap between a heal and the next fault: drawn uniformly from [min, max]. */
  nemesisGapMsMin: 1_000,
  nemesisGapMsMax: 5_000,
  /**
   * Largest clock skew (seconds, forward only) the nemesis gives one node. Forward only: a node
   * set behind would see its peers' freshly issued certificates as not yet valid, which is a
   * certificate fault, not a clock fault.
   */
  nemesisSkewSecondsMax: 600,
  /** Client call timeout (ms) the workloads pass to the node; the gRPC deadline adds the client's margin. */
  workloadCallTimeoutMs: 4_000,
  /** How long a register key is used before the clients move to fresh keys (bounds the calls per key the checker searches). */
  workloadKeyEpochMs: 10_000,
  /** After the last heal, how long the cluster has to elect a leader and converge (and the ledger's acts to end) before that is a violation. */
  campaignSettleMs: 180_000,
  /**
   * Most acts one ledger-workload client holds open (submitted and not yet ended, or unanswered
   * and not yet given up): at the bound it waits for one to end before it submits another, so
   * the acts in flight stay within what the cluster signs whatever the faults (a client that
   * kept submitting past its timeouts built a backlog longer than the settle window).
   */
  workloadOpenActsPerClient: 2,
  /** How often a ledger-workload client reads the state of its open acts (and settles those published). */
  workloadActPollMs: 500,
  /**
   * How long a ledger-workload client looks for an act whose submission got no answer before it
   * stops waiting for it (the proposal may still apply: the final checks read every act the
   * ledger holds, this one included). Longer than one election and a call timeout.
   */
  workloadUnansweredActMs: 15_000,
  /** Gap between two key-refresh decisions the ledger workload proposes while its clients submit acts. */
  workloadDecisionGapMs: 15_000,
  /**
   * How long the ledger workload waits for a refreshed key epoch's ceremony before the next
   * refresh supersedes it, as an operator would (a member down for long holds the ceremony up).
   */
  workloadCeremonyWaitMs: 30_000,
  /** How often a campaign shows its progress while it waits for the acts to end. */
  campaignProgressMs: 5_000,
  /** Time budget of the final linearizability check; past it the campaign answers unknown. */
  campaignCheckMs: 120_000,
} as const;
check(ledger.trustChainBlocksMax <= tlog.policyChainBlocksMax && ledger.nodesMax <= tlog.policyKeysMax && ledger.witnessesMax <= tlog.policyKeysMax, 'every trust policy chain the ledger keeps is a policy file verifyPolicyChain accepts');
check(jepsen.workloadOpenActsPerClient >= 1 && jepsen.workloadUnansweredActMs > jepsen.workloadCallTimeoutMs && jepsen.workloadActPollMs < jepsen.workloadUnansweredActMs, 'a ledger-workload client holds at least one act open and looks for an unanswered one longer than a call lasts');
