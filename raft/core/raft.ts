/**
 * The Raft consensus core: a pure, deterministic state machine (see types.ts for the contract).
 *
 * References: "In Search of an Understandable Consensus Algorithm" (Ongaro, Ousterhout 2014),
 * cited as §N; the Raft thesis (Ongaro 2014), cited as "thesis §N". Structure follows
 * etcd-io/raft: one step function per role, a generic step that handles terms first.
 *
 * Message fields by type (beyond type/from/to/term):
 *   app            index/logTerm = entry before `entries`; commit = leader commit
 *   appResp        index = last index now matching (or, rejected, the prev index refused);
 *                  rejectHint = follower's last index
 *   vote/preVote   index/logTerm = candidate's last entry; context = 'transfer' when forced
 *   heartbeat      commit = min(follower match, leader commit); context = ReadIndex context
 *   heartbeatResp  context = the heartbeat's; reject when its commit is past the follower's log
 *                  (the follower lost entries), rejectHint = follower's last index
 *   snap           snapshot = one chunk
 *   snapResp       index = snapshot bytes received in order; commit = the snapshot's index
 *   prop           entries = proposed entries (index/term filled by the leader)
 *   readIndex      context = read context; readIndexResp: index = read index
 *   transferLeader context = target node id (UTF-8)
 */
import { assert } from '../../proto/errors.js';
import { raft as raftLimits } from '../../proto/limits.js';
import { allMembers, applyConfChange, decodeConfChange, encodeConfChange, isJoint, isVoter } from './confchange.js';
import { RaftLog } from './log.js';
import { invalidReason, msg } from './message.js';
import { Progress } from './progress.js';
import { jointActive, jointCommitted, jointVote, type VoteResult } from './quorum.js';
import { ReadOnly } from './readonly.js';
import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  Message,
  NodeId,
  ProposeResult,
  RaftApi,
  RaftConfig,
  ReadState,
  Ready,
  Role,
  Snapshot,
  SnapshotMeta,
  SoftState,
  Status,
} from './types.js';

const TRANSFER = new TextEncoder().encode('transfer');
/** appResp context: the follower holds back the membership change after `index` (see confGuard below). */
const CONF_HELD = new TextEncoder().encode('conf-held');
const utf8 = new TextDecoder();
const NO_CONTEXT = new Uint8Array(0);

function isTransfer(ctx: Uint8Array): boolean {
  return ctx.length === TRANSFER.length && ctx.every((b, i) => b === TRANSFER[i]);
}

function isConfHeld(ctx: Uint8Array): boolean {
  return ctx.length === CONF_HELD.length && ctx.every((b, i) => b === CONF_HELD[i]);
}

/** Both results must win; either losing loses. */
function both(a: VoteResult, b: VoteResult): VoteResult {
  if (a === 'won' && b === 'won') return 'won';
  if (a === 'lost' || b === 'lost') return 'lost';
  return 'pending';
}

function dataBytes(ents: readonly Entry[]): number {
  let n = 0;
  for (const e of ents) n += e.data.length;
  return n;
}

/** Counters a daemon exports as metrics; they never influence behaviour. */
export interface CoreStats {
  invalidMessages: number;
  staleMessages: number;
  conflictingLeaderMessages: number;
  proposalsDropped: number;
  snapshotsInstalled: number;
  snapshotsRefused: number;
  elections: number;
  leaderChanges: number;
  /** Membership changes the confGuard refused (proposed here, or sent by a leader). */
  confChangesRefused: number;
  /** Appends cut short at a membership change because the entries before it were not applied yet. */
  confChangesHeld: number;
  /** Messages ignored from a leader that sent a refused membership change, in its term. */
  distrustedLeaderMessages: number;
}

interface IncomingSnapshot {
  readonly from: NodeId;
  readonly meta: SnapshotMeta;
  readonly size: number;
  readonly chunks: Uint8Array[];
  received: number;
}

export class RaftCore implements RaftApi {
  readonly id: NodeId;
  private readonly cfg: RaftConfig;
  private readonly log: RaftLog;
  private term: number;
  private vote: NodeId | null;
  private role: Role = 'follower';
  private leader: NodeId | null = null;
  private conf: ConfState;
  private readonly prs = new Map<NodeId, Progress>();
  private readonly votes = new Map<NodeId, boolean>();
  private msgs: Message[] = [];
  private readStates: ReadState[] = [];
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private leadTransferee: NodeId | null = null;
  /** Index of the last membership change proposed; a new one waits until it is applied. */
  private pendingConfIndex = 0;
  private uncommittedBytes = 0;
  private readonly readOnly: ReadOnly;
  /** Reads that arrived before this leader committed an entry of its own term (thesis §6.4 step 1). */
  private pendingReads: { from: NodeId; context: Uint8Array }[] = [];
  private incomingSnap: IncomingSnapshot | null = null;
  private prevSoft: SoftState;
  private prevHard: HardState;
  private outstanding: Ready | null = null;
  private readonly snapshotBytesMax: number;
  private logConfKey = '';
  private logConfCache: ConfState | null = null;
  /** Bumped whenever `conf` changes, so the cached log configuration is recomputed. */
  private confVersion = 0;
  readonly stats: CoreStats = {
    invalidMessages: 0,
    staleMessages: 0,
    conflictingLeaderMessages: 0,
    proposalsDropped: 0,
    snapshotsInstalled: 0,
    snapshotsRefused: 0,
    elections: 0,
    leaderChanges: 0,
    confChangesRefused: 0,
    confChangesHeld: 0,
    distrustedLeaderMessages: 0,
  };
  /** The leader (and its term) whose membership change the confGuard refused: not followed for the rest of that term. */
  private distrusted: { readonly leader: NodeId; readonly term: number } | null = null;

  constructor(cfg: RaftConfig) {
    assert(cfg.electionTicks > cfg.heartbeatTicks && cfg.heartbeatTicks > 0, 'election ticks must exceed heartbeat ticks');
    this.id = cfg.id;
    this.cfg = cfg;
    this.snapshotBytesMax = raftLimits.snapshotBytesMax;
    const { hardState, conf } = cfg.storage.initialState();
    this.log = new RaftLog(cfg.storage, hardState.commit, cfg.applied);
    this.term = hardState.term;
    this.vote = hardState.vote;
    this.conf = conf;
    // The storage's configuration is the snapshot's; changes applied since are replayed here so a
    // restart needs nothing beyond the log and the applied index. The log may still hold entries
    // the snapshot covers (kept for followers that catch up by log): their changes are in it.
    const replay = this.log.slice(Math.max(this.log.firstIndex(), cfg.storage.snapshot().meta.index + 1), this.log.applied + 1, Infinity) ?? [];
    for (const e of replay) if (e.type === 'conf') this.applyConfEntry(e);
    this.readOnly = new ReadOnly(cfg.readIndexPendingMax);
    this.prevHard = { term: this.term, vote: this.vote, commit: this.log.committed };
    this.prevSoft = { leader: null, role: 'follower' };
    this.resetRandomizedElectionTimeout();
  }

  // -------------------------------------------------------------------------------------------
  // Role transitions
  // -------------------------------------------------------------------------------------------

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = null;
    }
    this.leader = null;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.leadTransferee = null;
    this.votes.clear();
    this.readOnly.clear();
    this.pendingReads = [];
    this.prs.clear();
    this.uncommittedBytes = 0;
  }

  private resetRandomizedElectionTimeout(): void {
    // §5.2: randomized timeouts in [T, 2T) make split votes rare.
    this.randomizedElectionTimeout = this.cfg.electionTicks + this.cfg.rng.int(this.cfg.electionTicks);
  }

  private becomeFollower(term: number, leader: NodeId | null): void {
    this.reset(term);
    this.role = 'follower';
    this.setLeader(leader);
  }

  private setLeader(leader: NodeId | null): void {
    if (leader !== null && leader !== this.leader) this.stats.leaderChanges++;
    this.leader = leader;
  }

  private becomePreCandidate(): void {
    assert(this.role !== 'leader', 'a leader does not pre-campaign');
    // Thesis §9.6: a pre-candidate changes neither term nor vote, so a partitioned node that keeps
    // timing out cannot inflate its term and disrupt the cluster when it returns.
    this.votes.clear();
    this.role = 'pre-candidate';
    this.leader = null;
  }

  private becomeCandidate(): void {
    assert(this.role !== 'leader', 'a leader does not campaign');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = 'candidate';
    this.stats.elections++;
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', 'only a candidate becomes leader');
    this.reset(this.term);
    this.role = 'leader';
    this.setLeader(this.id);
    const last = this.log.lastIndex();
    for (const id of new Set([...allMembers(this.conf), ...allMembers(this.logConf())])) {
      const pr = this.newProgress(id, last + 1);
      if (id === this.id) pr.match = this.lastStableIndex();
      this.prs.set(id, pr);
    }
    // §5.4.2 / §8: a new leader commits an entry of its own term to learn and advance the commit
    // index; this no-op is that entry. No membership change is accepted until it is applied (see
    // the safety argument in confchange.ts).
    this.pendingConfIndex = this.appendEntries([{ term: 0, index: 0, type: 'normal', data: new Uint8Array(0) }]);
    this.bcastAppend();
  }

  private newProgress(id: NodeId, next: number): Progress {
    const pr = new Progress(id, next, this.cfg.inflightMsgsMax, this.cfg.inflightBytesMax);
    if (id === this.id) pr.recentActive = true;
    return pr;
  }

  private lastStableIndex(): number {
    const unstable = this.log.unstable();
    if (this.log.pendingSnapshot()) return this.log.firstIndex() - 1;
    if (unstable.length > 0) return (unstable[0] as Entry).index - 1;
    return this.log.lastIndex();
  }

  /**
   * The configuration the log ends with: the applied one plus membership changes appended but not
   * yet applied. Elections, commits and ReadIndex need a quorum of BOTH this and the applied
   * configuration. With the applied one alone, a node that restarted with its applied index behind
   * a committed change (its commit index is only what it knew when it stopped) would count votes
   * of a removed voter and win without entries the new configuration committed (simulator seed
   * 429865202). Using the log's latest configuration is the thesis's rule (§4.1); also requiring the
   * applied one keeps every decision etcd's apply-time rule makes.
   */
  private logConf(): ConfState {
    const lo = this.log.applied + 1;
    const hi = this.log.lastIndex();
    if (lo > hi) return this.conf;
    const key = `${lo}:${hi}:${this.log.lastTerm()}:${this.confVersion}`;
    if (this.logConfKey === key && this.logConfCache) return this.logConfCache;
    let c = this.conf;
    for (const e of this.log.slice(lo, hi + 1, Infinity) ?? []) {
      if (e.type !== 'conf') continue;
      try {
        const next = applyConfChange(c, decodeConfChange(e.data));
        if (typeof next !== 'string') c = next;
      } catch {
        // a malformed entry is skipped on apply too
      }
    }
    this.logConfKey = key;
    this.logConfCache = c;
    return c;
  }

  private voteOf(votes: ReadonlyMap<NodeId, boolean>): VoteResult {
    const a = jointVote(this.conf.voters, this.conf.votersOutgoing, votes);
    const l = this.logConf();
    return l === this.conf ? a : both(a, jointVote(l.voters, l.votersOutgoing, votes));
  }

  private electorate(): Set<NodeId> {
    const l = this.logConf();
    return new Set([...this.conf.voters, ...this.conf.votersOutgoing, ...l.voters, ...l.votersOutgoing]);
  }

  private promotable(): boolean {
    return isVoter(this.conf, this.id);
  }

  // -------------------------------------------------------------------------------------------
  // Elections (§5.2, thesis §9.6 pre-vote, thesis §3.10 leader transfer)
  // -------------------------------------------------------------------------------------------

  private hup(transfer: boolean): void {
    if (this.role === 'leader' || !this.promotable()) return;
    // A node with committed but unapplied membership changes does not know its own configuration.
    const unapplied = this.log.slice(this.log.applied + 1, this.log.committed + 1, Infinity) ?? [];
    if (unapplied.some((e) => e.type === 'conf')) return;
    if (this.cfg.preVote && !transfer) {
      this.becomePreCandidate();
      this.campaignRound('preVote', false);
    } else {
      this.becomeCandidate();
      this.campaignRound('vote', transfer);
    }
  }

  private poll(from: NodeId, granted: boolean): VoteResult {
    if (!this.votes.has(from)) this.votes.set(from, granted);
    return this.voteOf(this.votes);
  }

  // -------------------------------------------------------------------------------------------
  // API
  // -------------------------------------------------------------------------------------------

  /**
   * One logical clock tick. `mayCampaign` false (a follower whose host withholds its vote): the
   * election clock still runs, so the leader lease below expires as it does for any follower and a
   * later term's vote request is heard, but the timeout starts no election.
   */
  tick(mayCampaign = true): void {
    if (this.role === 'leader') this.tickHeartbeat();
    else this.tickElection(mayCampaign);
  }

  private tickElection(mayCampaign: boolean): void {
    if (this.electionElapsed < this.randomizedElectionTimeout) this.electionElapsed++;
    if (mayCampaign && this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTicks) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum && !this.quorumActive()) {
        // Check-quorum (thesis §6.2): a leader that has not heard from a quorum for an election
        // timeout steps down, so a partitioned leader stops serving stale reads and writes.
        this.becomeFollower(this.term, null);
        return;
      }
      if (this.leadTransferee !== null) this.leadTransferee = null; // transfer timed out
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat(this.readOnly.lastContext());
      this.handOver();
    }
  }

  private quorumActive(): boolean {
    const active = jointActive(this.conf.voters, this.conf.votersOutgoing, (id) => id === this.id || (this.prs.get(id)?.recentActive ?? false));
    for (const [id, pr] of this.prs) if (id !== this.id) pr.recentActive = false;
    return active;
  }

  campaign(): void {
    this.hup(false);
  }

  private campaignRound(kind: 'preVote' | 'vote', transfer: boolean): void {
    const term = kind === 'preVote' ? this.term + 1 : this.term;
    if (this.poll(this.id, true) === 'won') {
      if (kind === 'preVote') {
        this.becomeCandidate();
        this.campaignRound('vote', transfer);
      } else {
        this.becomeLeader();
      }
      return;
    }
    const last = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const id of this.electorate()) {
      if (id === this.id) continue;
      this.send(msg(kind, this.id, id, term, { index: last, logTerm: lastTerm, context: transfer ? TRANSFER : NO_CONTEXT }));
    }
  }

  propose(data: Uint8Array): ProposeResult {
    return this.proposeEntry({ term: 0, index: 0, type: 'normal', data });
  }

  proposeConfChange(cc: ConfChange): ProposeResult {
    return this.proposeEntry({ term: 0, index: 0, type: 'conf', data: encodeConfChange(cc) });
  }

  private proposeEntry(e: Entry): ProposeResult {
    if (e.data.length > raftLimits.proposalBytesMax) {
      this.stats.proposalsDropped++;
      return { ok: false, reason: 'LIMIT_EXCEEDED', detail: `proposal of ${e.data.length} bytes exceeds ${raftLimits.proposalBytesMax}` };
    }
    if (this.role === 'leader') return this.leaderPropose([e]);
    if (this.leader === null || this.role !== 'follower') {
      this.stats.proposalsDropped++;
      return { ok: false, reason: 'NOT_LEADER', detail: 'no leader is known' };
    }
    this.send(msg('prop', this.id, this.leader, 0, { entries: [e] }));
    return { ok: true, forwarded: true };
  }

  readIndex(context: Uint8Array): void {
    if (this.role === 'leader') this.leaderReadIndex(this.id, context);
    else if (this.leader !== null && this.role === 'follower') this.send(msg('readIndex', this.id, this.leader, 0, { context }));
  }

  transferLeadership(to: NodeId): void {
    if (this.role === 'leader') this.leaderTransfer(to);
    else if (this.leader !== null) this.send(msg('transferLeader', this.id, this.leader, 0, { context: new TextEncoder().encode(to) }));
  }

  // -------------------------------------------------------------------------------------------
  // Step: terms first (§5.1), then votes, then the role's own handling
  // -------------------------------------------------------------------------------------------

  step(m: Message): void {
    const bad = invalidReason(m, this.id);
    if (bad !== null) {
      this.stats.invalidMessages++;
      return;
    }
    const termless = m.type === 'prop' || m.type === 'readIndex' || m.type === 'transferLeader';
    if (!termless) {
      if (m.term === 0) {
        this.stats.invalidMessages++;
        return;
      }
      if (m.term > this.term) {
        if (m.type === 'vote' || m.type === 'preVote') {
          // Leader lease (thesis §4.2.3): while we have heard from a leader within the minimum
          // election timeout, a removed or partitioned server must not depose it. A leader
          // transfer is exempt: the leader itself asked for it.
          const inLease = this.cfg.checkQuorum && this.leader !== null && this.electionElapsed < this.cfg.electionTicks;
          if (inLease && !isTransfer(m.context)) return;
        }
        if (m.type === 'preVote' || (m.type === 'preVoteResp' && !m.reject)) {
          // A pre-vote never changes our term; a granted pre-vote answer carries the future term.
        } else if (m.type === 'app' || m.type === 'heartbeat' || m.type === 'snap') {
          this.becomeFollower(m.term, m.from);
        } else {
          this.becomeFollower(m.term, null);
        }
      } else if (m.term < this.term) {
        if (this.cfg.faults?.countStaleTermVotes && m.type === 'voteResp') {
          // Deliberately wrong (test-only): fall through and count a vote from an earlier term.
        } else {
          this.stats.staleMessages++;
          if (m.type === 'app' || m.type === 'heartbeat') {
            // §5.1: a stale request is answered with our term, so a deposed leader steps down. This
            // matters most for a leader that removed itself: the new leader never contacts it.
            this.send(msg('appResp', this.id, m.from, this.term));
          } else if (m.type === 'preVote') {
            this.send(msg('preVoteResp', this.id, m.from, this.term, { reject: true }));
          }
          return;
        }
      }
    }

    if (m.term === this.term && this.role === 'follower' && this.leader !== null && m.from !== this.leader && (m.type === 'app' || m.type === 'heartbeat' || m.type === 'snap')) {
      // Election Safety (§5.2): at most one leader per term. A follower that knows the leader of its
      // term takes no append, heartbeat or snapshot from another node claiming that same term. An
      // honest cluster never sends one, so nothing honest is dropped; a lying peer that did get
      // entries in would write a second history under (index, term) pairs the real leader also
      // uses, which the log matching check (§5.3) then takes as matching and never repairs: the
      // honest replicas would diverge for good. (A higher term still deposes: that is §5.1.)
      this.stats.invalidMessages++;
      return;
    }
    if (m.type === 'vote' || m.type === 'preVote') {
      this.handleVoteRequest(m);
      return;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        break;
      case 'candidate':
      case 'pre-candidate':
        this.stepCandidate(m);
        break;
      case 'follower':
        this.stepFollower(m);
        break;
    }
  }

  private handleVoteRequest(m: Message): void {
    const resp = m.type === 'vote' ? 'voteResp' : 'preVoteResp';
    // §5.2: at most one vote per term, first come first served; a pre-vote for a future term may be
    // granted freely since it promises nothing.
    const canVote = this.vote === m.from || (this.vote === null && this.leader === null) || (m.type === 'preVote' && m.term > this.term);
    // §5.4.1: only for a candidate whose log is at least as up to date as ours.
    const upToDate = this.cfg.faults?.voteIgnoringLog === true || this.log.isUpToDate(m.index, m.logTerm);
    if (canVote && upToDate) {
      this.send(msg(resp, this.id, m.from, m.term));
      if (m.type === 'vote') {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send(msg(resp, this.id, m.from, this.term, { reject: true }));
    }
  }

  // -------------------------------------------------------------------------------------------
  // Leader
  // -------------------------------------------------------------------------------------------

  private stepLeader(m: Message): void {
    switch (m.type) {
      case 'prop':
        this.leaderPropose(m.entries);
        return;
      case 'readIndex':
        this.leaderReadIndex(m.from, m.context);
        return;
      case 'transferLeader':
        this.leaderTransfer(utf8.decode(m.context));
        return;
      case 'app':
      case 'heartbeat':
      case 'snap':
      case 'timeoutNow':
        // Another node claims leadership of our term: impossible unless someone is faulty.
        this.stats.conflictingLeaderMessages++;
        return;
      case 'appResp':
      case 'heartbeatResp':
      case 'snapResp':
        break;
      default:
        return;
    }
    const pr = this.prs.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    if (m.type === 'appResp') this.leaderAppResp(pr, m);
    else if (m.type === 'heartbeatResp') this.leaderHeartbeatResp(pr, m);
    else this.leaderSnapResp(pr, m);
  }

  private leaderPropose(ents: readonly Entry[]): ProposeResult {
    if (this.leadTransferee !== null) {
      this.stats.proposalsDropped++;
      return { ok: false, reason: 'PROPOSAL_DROPPED', detail: `leadership is being transferred to ${this.leadTransferee}` };
    }
    if (!isVoter(this.conf, this.id)) {
      this.stats.proposalsDropped++;
      return { ok: false, reason: 'NOT_LEADER', detail: 'this leader has been removed from the voters and is handing over' };
    }
    const bytes = dataBytes(ents);
    if (this.uncommittedBytes > 0 && this.uncommittedBytes + bytes > this.cfg.uncommittedBytesMax) {
      this.stats.proposalsDropped++;
      return { ok: false, reason: 'LIMIT_EXCEEDED', detail: 'too many uncommitted bytes; retry when the cluster catches up' };
    }
    for (const e of ents) {
      if (e.type !== 'conf') continue;
      if (this.pendingConfIndex > this.log.applied) {
        this.stats.proposalsDropped++;
        return { ok: false, reason: 'PROPOSAL_DROPPED', detail: 'a membership change is still pending' };
      }
      let cc: ConfChange;
      try {
        cc = decodeConfChange(e.data);
      } catch (err) {
        this.stats.proposalsDropped++;
        return { ok: false, reason: 'PROPOSAL_DROPPED', detail: `malformed membership change: ${String(err)}` };
      }
      const next = applyConfChange(this.conf, cc);
      if (typeof next === 'string') {
        this.stats.proposalsDropped++;
        return { ok: false, reason: 'PROPOSAL_DROPPED', detail: `membership change refused: ${next}` };
      }
      const guard = this.cfg.confGuard;
      if (guard === undefined) continue;
      // The guard judges the state just before the entry, as every follower will (confGuard in
      // types.ts): so the whole log must be applied, and the change proposed alone.
      if (this.log.applied !== this.log.lastIndex() || ents.length !== 1) {
        this.stats.proposalsDropped++;
        return { ok: false, reason: 'PROPOSAL_DROPPED', detail: `a membership change is proposed alone once the log is applied (applied ${this.log.applied} of ${this.log.lastIndex()}); retry` };
      }
      const why = guard(cc, this.conf);
      if (why !== null) {
        this.stats.confChangesRefused++;
        return { ok: false, reason: 'CONF_CHANGE_UNAUTHORIZED', detail: why };
      }
    }
    const last = this.appendEntries(ents);
    for (let i = 0; i < ents.length; i++) if ((ents[i] as Entry).type === 'conf') this.pendingConfIndex = last - ents.length + 1 + i;
    for (const id of allMembers(this.logConf())) if (!this.prs.has(id)) this.prs.set(id, this.newProgress(id, last + 1));
    this.bcastAppend();
    return { ok: true, index: last, term: this.term, forwarded: false };
  }

  private appendEntries(ents: readonly Entry[]): number {
    let index = this.log.lastIndex();
    const stamped = ents.map((e) => ({ term: this.term, index: ++index, type: e.type, data: e.data }));
    this.uncommittedBytes += dataBytes(stamped);
    return this.log.append(stamped);
  }

  private leaderAppResp(pr: Progress, m: Message): void {
    if (m.reject) {
      if (pr.maybeDecrTo(m.index, m.rejectHint)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(pr.id, true);
      }
      return;
    }
    if (isConfHeld(m.context)) {
      // The follower appended up to m.index and holds back the membership change after it: until
      // it has applied m.index (our heartbeats carry the commit index), or for good if its guard
      // refused the change. Probe again from there, once per heartbeat.
      const updated = pr.maybeUpdate(m.index);
      if (pr.state !== 'snapshot') {
        pr.becomeProbe();
        pr.probeSent = true;
      }
      if (updated && this.maybeCommit()) this.bcastAppend();
      return;
    }
    const wasPaused = pr.isPaused();
    if (pr.maybeUpdate(m.index)) {
      if (pr.state === 'probe') pr.becomeReplicate();
      else if (pr.state === 'snapshot') pr.becomeProbe();
      else pr.inflights.freeLE(m.index);
      if (this.maybeCommit()) this.bcastAppend();
      else if (wasPaused) this.sendAppend(pr.id, true);
      while (this.sendAppend(pr.id, false)) {
        // Pipelining: keep sending while flow control allows and entries remain.
      }
      if (pr.id === this.leadTransferee && pr.match === this.log.lastIndex()) {
        this.send(msg('timeoutNow', this.id, pr.id, this.term));
      }
    } else if (pr.state === 'snapshot') {
      // The follower answered without installing (it already had the entries): probe from here.
      pr.becomeProbe();
      this.sendAppend(pr.id, true);
    }
  }

  private leaderHeartbeatResp(pr: Progress, m: Message): void {
    pr.probeSent = false;
    if (m.reject && pr.logLost(m.rejectHint)) this.sendAppend(pr.id, true);
    if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirst();
    if (pr.match < this.log.lastIndex() && pr.state !== 'snapshot') this.sendAppend(pr.id, true);
    else if (pr.id === this.leadTransferee) {
      // The transferee is up to date but has not campaigned: our TimeoutNow was lost, send again.
      this.send(msg('timeoutNow', this.id, pr.id, this.term));
    }
    if (m.context.length === 0) return;
    const acks = this.readOnly.ack(m.from, m.context);
    if (acks === null) return;
    const votes = new Map<NodeId, boolean>();
    for (const id of acks) votes.set(id, true);
    if (this.voteOf(votes) !== 'won') return;
    for (const r of this.readOnly.release(m.context)) this.answerRead(r.from, r.index, r.context);
  }

  private leaderSnapResp(pr: Progress, m: Message): void {
    if (pr.state !== 'snapshot' || !pr.snap || m.commit !== pr.snap.meta.index) return;
    pr.snapAckedSinceHeartbeat = true;
    if (m.reject) {
      // The follower lost our place: go back to what it has.
      pr.snapSent = m.index;
      pr.snapAcked = m.index;
      pr.snapLastSent = false;
    } else {
      pr.snapAcked = Math.max(pr.snapAcked, m.index);
      if (pr.snapSent < pr.snapAcked) pr.snapSent = pr.snapAcked;
    }
    this.sendSnapshotChunks(pr);
  }

  /** Commit the highest index replicated on a quorum, if it is of the current term (§5.4.2). */
  private maybeCommit(): boolean {
    const match = (id: NodeId): number => this.prs.get(id)?.match ?? 0;
    const l = this.logConf();
    const idx = Math.min(jointCommitted(this.conf.voters, this.conf.votersOutgoing, match), l === this.conf ? Infinity : jointCommitted(l.voters, l.votersOutgoing, match));
    if (!Number.isFinite(idx)) return false;
    const before = this.log.committed;
    const ok = this.log.maybeCommit(idx, this.term, this.cfg.faults?.commitOldTermByCounting === true);
    if (ok && this.log.term(before) !== this.term && this.log.term(this.log.committed) === this.term) this.releasePendingReads();
    return ok;
  }

  private bcastAppend(): void {
    for (const id of this.prs.keys()) if (id !== this.id) this.sendAppend(id, true);
  }

  /** Send entries (or the snapshot) to one follower. Returns whether entries were sent. */
  private sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.prs.get(to);
    if (!pr) return false;
    if (pr.state === 'snapshot') {
      this.sendSnapshotChunks(pr);
      return false;
    }
    if (pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const ents = prevTerm === null ? null : this.log.slice(pr.next, this.log.lastIndex() + 1, this.cfg.appendBytesMax);
    if (ents === null || prevTerm === null) {
      // The entries the follower needs are compacted away: stream the snapshot instead (§7).
      if (!pr.recentActive) return false;
      const storage = this.cfg.storage;
      const snap = storage.snapshotToSend ? storage.snapshotToSend() : storage.snapshot();
      if (snap === null) return false; // not sendable yet: asked again on the follower's next answer
      pr.becomeSnapshot(snap);
      this.sendSnapshotChunks(pr);
      return false;
    }
    if (ents.length === 0 && !sendIfEmpty) return false;
    this.send(msg('app', this.id, to, this.term, { index: prevIndex, logTerm: prevTerm, entries: ents, commit: this.log.committed }));
    const last = ents.length > 0 ? (ents[ents.length - 1] as Entry).index : null;
    pr.sentEntries(last, dataBytes(ents));
    return ents.length > 0;
  }

  /** Stream snapshot chunks within the in-flight byte window. */
  private sendSnapshotChunks(pr: Progress): void {
    const s = pr.snap;
    if (!s) return;
    const size = s.data.length;
    const window = Math.max(this.cfg.inflightBytesMax, this.cfg.snapshotChunkBytes);
    while (!pr.snapLastSent && pr.snapSent - pr.snapAcked < window) {
      const offset = pr.snapSent;
      const end = Math.min(size, offset + this.cfg.snapshotChunkBytes);
      const last = end === size;
      this.send(msg('snap', this.id, pr.id, this.term, { snapshot: { meta: s.meta, size, offset, data: s.data.subarray(offset, end), last } }));
      pr.snapSent = end;
      if (last) pr.snapLastSent = true;
    }
  }

  private bcastHeartbeat(context: Uint8Array | null): void {
    for (const [id, pr] of this.prs) {
      if (id === this.id) continue;
      if (pr.state === 'snapshot') this.snapshotHeartbeat(pr);
      this.send(msg('heartbeat', this.id, id, this.term, { commit: Math.min(pr.match, this.log.committed), context: context ?? NO_CONTEXT }));
    }
  }

  /** Chunks or the final answer may have been lost: resend from the last acknowledged byte. */
  private snapshotHeartbeat(pr: Progress): void {
    if (!pr.snap) return;
    if (!pr.snapAckedSinceHeartbeat) {
      if (pr.snapLastSent && pr.snapAcked === pr.snap.data.length) {
        pr.becomeProbe();
        this.sendAppend(pr.id, true);
        return;
      }
      if (pr.snapSent > pr.snapAcked) {
        pr.snapSent = pr.snapAcked;
        pr.snapLastSent = false;
        this.sendSnapshotChunks(pr);
      }
    }
    pr.snapAckedSinceHeartbeat = false;
  }

  private leaderReadIndex(from: NodeId, context: Uint8Array): void {
    const soleVoter = this.conf.voters.length === 1 && this.conf.voters[0] === this.id && !isJoint(this.conf);
    if (soleVoter) {
      this.answerRead(from, this.log.committed, context);
      return;
    }
    // Thesis §6.4 step 1: the leader's commit index is only known to be current once an entry of
    // its own term has committed.
    if (this.log.term(this.log.committed) !== this.term) {
      if (this.pendingReads.length < this.cfg.readIndexPendingMax) this.pendingReads.push({ from, context });
      return;
    }
    if (!this.readOnly.add(this.log.committed, from, context, this.id)) return;
    this.bcastHeartbeat(context);
  }

  private releasePendingReads(): void {
    const reads = this.pendingReads;
    this.pendingReads = [];
    for (const r of reads) this.leaderReadIndex(r.from, r.context);
  }

  private answerRead(to: NodeId, index: number, context: Uint8Array): void {
    if (to === this.id) this.readStates.push({ index, context });
    else this.send(msg('readIndexResp', this.id, to, this.term, { index, context }));
  }

  private leaderTransfer(target: NodeId): void {
    const pr = this.prs.get(target);
    if (!pr || !isVoter(this.conf, target) || target === this.id) return;
    if (this.leadTransferee === target) return;
    this.leadTransferee = target;
    this.electionElapsed = 0; // the transfer must finish within one election timeout
    if (pr.match === this.log.lastIndex()) this.send(msg('timeoutNow', this.id, target, this.term));
    else this.sendAppend(target, true);
  }

  // -------------------------------------------------------------------------------------------
  // Candidate and pre-candidate
  // -------------------------------------------------------------------------------------------

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case 'app':
      case 'heartbeat':
      case 'snap':
        // A leader this node stopped following does not draw it back (nor restart its clock).
        if (this.isDistrusted(m)) return;
        // §5.2: a candidate that hears from a leader of its term (or newer) returns to follower.
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
        return;
      case 'voteResp':
      case 'preVoteResp': {
        if ((m.type === 'voteResp') !== (this.role === 'candidate')) return;
        const result = this.poll(m.from, !m.reject);
        if (result === 'won') {
          if (this.role === 'pre-candidate') {
            this.becomeCandidate();
            this.campaignRound('vote', false);
          } else {
            this.becomeLeader();
          }
        } else if (result === 'lost') {
          this.becomeFollower(this.term, null);
        }
        return;
      }
      default:
        this.stats.proposalsDropped += m.type === 'prop' ? 1 : 0;
        return;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Follower
  // -------------------------------------------------------------------------------------------

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'prop':
        // Only proposals from our own clients are forwarded; a peer's misdirected proposal is
        // dropped (its client retries) so proposals cannot bounce between followers.
        this.stats.proposalsDropped++;
        return;
      case 'app':
        if (this.isDistrusted(m)) return;
        this.electionElapsed = 0;
        this.setLeader(m.from);
        this.handleAppend(m);
        return;
      case 'heartbeat':
        if (this.isDistrusted(m)) return;
        this.electionElapsed = 0;
        this.setLeader(m.from);
        this.handleHeartbeat(m);
        return;
      case 'snap':
        if (this.isDistrusted(m)) return;
        this.electionElapsed = 0;
        this.setLeader(m.from);
        this.handleSnapshotChunk(m);
        return;
      case 'timeoutNow':
        // Thesis §3.10: the leader asked us to take over; campaign at once, skipping pre-vote.
        this.hup(true);
        return;
      case 'readIndexResp':
        this.readStates.push({ index: m.index, context: m.context });
        return;
      case 'transferLeader':
      case 'readIndex':
        // Forwarded to us by mistake (we are not the leader); the requester retries.
        return;
      default:
        return;
    }
  }

  /**
   * A leader whose membership change this node's guard refused is not followed for the rest of its
   * term: its messages are ignored (no answer, no reset of the election clock), so this node's
   * election timeout runs out, the leader lease no longer holds its vote, and the honest voters
   * elect a leader of a later term. A guard verdict is the same on every honest replica (see
   * confHold), so an honest leader, which checked its change with the same verdict before proposing
   * it, is never distrusted.
   */
  private isDistrusted(m: Message): boolean {
    const d = this.distrusted;
    if (d === null || d.leader !== m.from || d.term !== m.term) return false;
    this.stats.distrustedLeaderMessages++;
    return true;
  }

  /**
   * Membership changes only from governance (node/membership/guard.ts has the node's guard, its
   * threat and its safety argument). Of the entries an append brings, the first membership change
   * this node does not already hold is judged by the confGuard, and only once every entry before
   * it is applied: the guard then reads the state machine exactly as it stands just before the
   * change, which is the same state on every replica (they apply the same log), so every honest
   * replica, and the honest leader that proposed the change, reach the same verdict. Until then
   * the change is held: the entries before it are appended and acknowledged, the change and
   * everything after it are not.
   *
   * Progress: an honest leader proposes a change only with its whole log applied (leaderPropose),
   * so the entry before the change, i - 1, is of its term and committed as soon as a quorum holds
   * it; a follower that held the change at i acknowledged i - 1, learns the commit index from the
   * next heartbeat, applies i - 1, and accepts the change when the leader probes again after that
   * heartbeat. Returns where to cut `ents`, or null to take them all.
   */
  private confHold(ents: readonly Entry[]): { readonly at: number; readonly refused: string | null } | null {
    const guard = this.cfg.confGuard;
    if (guard === undefined) return null;
    for (let k = 0; k < ents.length; k++) {
      const e = ents[k] as Entry;
      if (e.type !== 'conf' || this.log.matchTerm(e.index, e.term)) continue; // held already: judged when appended
      if (this.log.applied !== e.index - 1) {
        this.stats.confChangesHeld++;
        return { at: k, refused: null };
      }
      let cc: ConfChange;
      try {
        cc = decodeConfChange(e.data);
      } catch (err) {
        return { at: k, refused: `malformed membership change: ${String(err)}` };
      }
      const why = guard(cc, this.conf);
      if (why !== null) return { at: k, refused: why };
    }
    return null;
  }

  private handleAppend(m: Message): void {
    if (m.index < this.log.committed) {
      this.send(msg('appResp', this.id, m.from, this.term, { index: this.log.committed }));
      return;
    }
    const hold = this.log.matchTerm(m.index, m.logTerm) ? this.confHold(m.entries) : null;
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, hold === null ? m.entries : m.entries.slice(0, hold.at));
    if (lastNew !== null && hold !== null) {
      this.send(msg('appResp', this.id, m.from, this.term, { index: lastNew, context: CONF_HELD }));
      if (hold.refused !== null) {
        this.stats.confChangesRefused++;
        this.distrusted = { leader: m.from, term: m.term };
        this.leader = null;
      }
    } else if (lastNew !== null) {
      this.send(msg('appResp', this.id, m.from, this.term, { index: lastNew }));
    } else {
      // §5.3: refuse when our log has no entry at prevIndex with prevTerm; hint our last index so
      // the leader can skip straight back.
      this.send(msg('appResp', this.id, m.from, this.term, { index: m.index, reject: true, rejectHint: Math.min(m.index, this.log.lastIndex()) }));
    }
  }

  private handleHeartbeat(m: Message): void {
    // The leader sends min(our match, its commit), so every index up to it matches its log. A
    // commit past our log means we lost entries we acknowledged (a wiped or restored store):
    // refuse, with our last index, so the leader stops taking our log for its match and sends it.
    const last = this.log.lastIndex();
    if (m.commit <= last) this.log.commitTo(m.commit);
    else this.stats.invalidMessages++;
    this.send(msg('heartbeatResp', this.id, m.from, this.term, { context: m.context, ...(m.commit > last ? { reject: true, rejectHint: last } : {}) }));
  }

  private handleSnapshotChunk(m: Message): void {
    const c = m.snapshot;
    assert(c !== null, 'validated snapshot chunk');
    let cur = this.incomingSnap;
    const same = cur !== null && cur.from === m.from && cur.meta.index === c.meta.index && cur.meta.term === c.meta.term && cur.size === c.size;
    if (!same) {
      if (c.offset !== 0) {
        this.send(msg('snapResp', this.id, m.from, this.term, { index: 0, commit: c.meta.index, reject: true }));
        return;
      }
      if (c.size > this.snapshotBytesMax) {
        this.stats.snapshotsRefused++;
        return;
      }
      cur = { from: m.from, meta: c.meta, size: c.size, chunks: [], received: 0 };
      this.incomingSnap = cur;
    }
    assert(cur !== null, 'snapshot assembly');
    if (c.offset < cur.received || (c.offset === cur.received && c.data.length === 0 && !c.last)) {
      this.send(msg('snapResp', this.id, m.from, this.term, { index: cur.received, commit: c.meta.index }));
      return;
    }
    if (c.offset > cur.received) {
      this.send(msg('snapResp', this.id, m.from, this.term, { index: cur.received, commit: c.meta.index, reject: true }));
      return;
    }
    cur.chunks.push(c.data.slice());
    cur.received += c.data.length;
    if (!c.last) {
      this.send(msg('snapResp', this.id, m.from, this.term, { index: cur.received, commit: c.meta.index }));
      return;
    }
    this.incomingSnap = null;
    const data = new Uint8Array(cur.size);
    let off = 0;
    for (const ch of cur.chunks) {
      data.set(ch, off);
      off += ch.length;
    }
    const snap: Snapshot = { meta: cur.meta, data };
    // A snapshot our log already covers changes nothing (restore fast-forwards the commit index
    // only); any other is installed only if the injected check accepts it.
    if (snap.meta.index > this.log.committed && !this.log.matchTerm(snap.meta.index, snap.meta.term) && this.cfg.snapshotAccepted && !this.cfg.snapshotAccepted(snap)) {
      this.stats.snapshotsRefused++;
      return;
    }
    if (this.restore(snap)) {
      this.stats.snapshotsInstalled++;
      this.send(msg('appResp', this.id, m.from, this.term, { index: this.log.lastIndex() }));
    } else {
      this.send(msg('appResp', this.id, m.from, this.term, { index: this.log.committed }));
    }
  }

  /** §7: install a snapshot unless our log already covers it. */
  private restore(s: Snapshot): boolean {
    if (s.meta.index <= this.log.committed) return false;
    // A snapshot whose configuration does not name us is still installed: a node added after the
    // snapshot was taken learns of its own addition from the entries that follow it.
    if (this.log.matchTerm(s.meta.index, s.meta.term)) {
      // We already have the entry: fast-forward the commit index instead (etcd-io/raft does too).
      this.log.commitTo(s.meta.index);
      return false;
    }
    this.log.restore(s);
    this.conf = s.meta.conf;
    this.confVersion++;
    return true;
  }

  // -------------------------------------------------------------------------------------------
  // Membership
  // -------------------------------------------------------------------------------------------

  private applyConfEntry(e: Entry): void {
    let cc: ConfChange;
    try {
      cc = decodeConfChange(e.data);
    } catch {
      return; // every replica skips the same malformed entry
    }
    const next = applyConfChange(this.conf, cc);
    if (typeof next === 'string') return; // refused identically on every replica
    this.conf = next;
    this.confVersion++;
    if (this.role !== 'leader') return;
    const members = [...new Set([...allMembers(next), ...allMembers(this.logConf())])];
    for (const id of members) if (!this.prs.has(id)) this.prs.set(id, this.newProgress(id, this.log.lastIndex() + 1));
    for (const id of [...this.prs.keys()]) if (!members.includes(id)) this.prs.delete(id);
    if (this.leadTransferee !== null && !members.includes(this.leadTransferee)) this.leadTransferee = null;
    // A leader removed from the voters keeps leading for now (it takes no new proposals): the
    // remaining voters may not yet know the change committed, and while they do not, they still
    // need a quorum of the old configuration, which includes us. Stepping down here could leave
    // no electable node at all. We keep replicating until a voter of the new configuration holds
    // our whole log, then hand leadership to it (handOver) and step down on seeing its term.
    this.maybeCommit();
    this.bcastAppend();
    this.handOver();
  }

  /** A leader that is no longer a voter transfers leadership to the best-placed voter. */
  private handOver(): void {
    if (this.role !== 'leader' || isVoter(this.conf, this.id) || this.leadTransferee !== null) return;
    let best: Progress | null = null;
    for (const id of this.conf.voters) {
      const pr = this.prs.get(id);
      if (pr && (best === null || pr.match > best.match)) best = pr;
    }
    if (best) this.leaderTransfer(best.id);
  }

  // -------------------------------------------------------------------------------------------
  // Ready / advance
  // -------------------------------------------------------------------------------------------

  private softState(): SoftState {
    return { leader: this.leader, role: this.role };
  }

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  hasReady(): boolean {
    if (this.outstanding !== null) return false;
    const s = this.softState();
    const h = this.hardState();
    return (
      s.leader !== this.prevSoft.leader ||
      s.role !== this.prevSoft.role ||
      h.term !== this.prevHard.term ||
      h.vote !== this.prevHard.vote ||
      h.commit !== this.prevHard.commit ||
      this.log.unstable().length > 0 ||
      this.log.pendingSnapshot() !== null ||
      this.msgs.length > 0 ||
      this.readStates.length > 0 ||
      this.log.hasNextCommitted()
    );
  }

  ready(): Ready {
    assert(this.outstanding === null, 'ready() called again before advance()');
    const s = this.softState();
    const h = this.hardState();
    const softChanged = s.leader !== this.prevSoft.leader || s.role !== this.prevSoft.role;
    const hardChanged = h.term !== this.prevHard.term || h.vote !== this.prevHard.vote || h.commit !== this.prevHard.commit;
    const entries = [...this.log.unstable()];
    const rd: Ready = {
      softState: softChanged ? s : null,
      hardState: hardChanged ? h : null,
      entries,
      snapshot: this.log.pendingSnapshot(),
      messages: this.msgs,
      committedEntries: this.log.nextCommitted(this.cfg.appendBytesMax * 8),
      readStates: this.readStates,
      mustSync: entries.length > 0 || h.term !== this.prevHard.term || h.vote !== this.prevHard.vote,
    };
    this.msgs = [];
    this.readStates = [];
    this.outstanding = rd;
    return rd;
  }

  advance(rd: Ready): void {
    assert(this.outstanding === rd, 'advance() must acknowledge the last ready()');
    this.outstanding = null;
    if (rd.softState) this.prevSoft = rd.softState;
    if (rd.hardState) this.prevHard = rd.hardState;
    if (rd.snapshot) {
      this.log.stableSnapTo(rd.snapshot.meta.index);
      this.log.appliedTo(rd.snapshot.meta.index);
    }
    const lastEntry = rd.entries[rd.entries.length - 1];
    if (lastEntry) this.log.stableTo(lastEntry.index, lastEntry.term);
    for (const e of rd.committedEntries) {
      if (e.type === 'conf') this.applyConfEntry(e);
    }
    const lastApplied = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastApplied) {
      this.log.appliedTo(lastApplied.index);
      if (this.role === 'leader') this.uncommittedBytes = Math.max(0, this.uncommittedBytes - dataBytes(rd.committedEntries));
    }
    if (this.role !== 'leader') return;
    if (lastEntry) {
      // The leader counts itself toward a quorum only for entries it has made durable.
      const self = this.prs.get(this.id);
      if (self && self.maybeUpdate(Math.min(lastEntry.index, this.lastStableIndex()))) {
        if (this.maybeCommit()) this.bcastAppend();
      }
    }
    // Thesis §4.3: leave a joint configuration on our own once entering it is applied.
    if (isJoint(this.conf) && this.conf.autoLeave && this.pendingConfIndex <= this.log.applied) {
      this.leaderPropose([{ term: 0, index: 0, type: 'conf', data: encodeConfChange({ changes: [], transition: 'auto' }) }]);
    }
  }

  status(): Status {
    let progress: Record<NodeId, Status['progress'] extends infer P ? (P extends Readonly<Record<NodeId, infer V>> ? V : never) : never> | null = null;
    if (this.role === 'leader') {
      progress = {};
      for (const [id, pr] of this.prs) {
        progress[id] = {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          inflightMsgs: pr.inflights.count(),
          inflightBytes: pr.inflights.bytes(),
          recentActive: pr.recentActive,
        };
      }
    }
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.leader,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      conf: this.conf,
      leadTransferee: this.leadTransferee,
      progress,
    };
  }

  /** Term of a log index as this node sees it (null when compacted or absent); for checkers. */
  termAt(index: number): number | null {
    return this.log.term(index);
  }

  private send(m: Message): void {
    this.msgs.push(m);
  }
}
