/**
 * The loop that keeps Raft membership equal to the ledger's node roster (the decision of each
 * step is plan.ts). It runs in every ledger node; only the leader acts.
 *
 * Message flow of adding node n4 (L = an entry in the replicated log):
 *   operators    L GovernanceDecision{NodeAdded n4} (k-of-n approvers, ledger/apply.ts)
 *   leader       sees the roster name n4 and the configuration not: L conf{addLearner n4}
 *   leader       replicates to n4 (a snapshot first if the log it needs is compacted); n4 starts
 *                with the genesis configuration, which does not name it as a voter, so it never
 *                campaigns; it applies the log like any follower
 *   leader       once n4's match index stays within membership.learnerLagEntriesMax of the commit
 *                index for membership.learnerCaughtUpMs: L conf{addVoter n4}
 * Removing n3: L GovernanceDecision{NodeRemoved n3}; the leader then L conf{remove n3} if the
 * remaining live voters keep a quorum (plan.ts rule 3); a leader removing itself transfers
 * leadership first and the new leader proposes the removal.
 *
 * Idempotent across leader changes and restarts: the loop keeps no state of its own that matters
 * for correctness. Each run re-reads the applied roster and configuration; a change proposed by
 * a leader that lost leadership before it committed is either in the log (and the next leader
 * sees it applied) or lost (and the next leader proposes it again). The core accepts one change
 * at a time and none before the new leader has committed an entry of its term (confchange.ts).
 *
 * Why a follower need not trust the configuration entries it receives. An honest leader proposes
 * a change only as the consequence of an applied governance decision: it adds a node only after
 * NodeAdded for it is applied (so on every replica the decision precedes the conf entry in the log)
 * and removes one only after NodeRemoved, and each change names that decision (its ledger index and
 * cid). Every replica, the leader included, judges each conf entry against its own applied ledger
 * before appending it (guard.ts, with the threat and the safety argument): a change no decision
 * asked for, from a compromised leader or a hostile peer, is refused CONF_CHANGE_UNAUTHORIZED and
 * never appended by an honest replica. `unexplained` still reports configuration members the roster
 * does not name (from a store that predates the guard, or a snapshot's configuration).
 */
import type { ConfChangeSingle, NodeId, ProposeResult } from '../../raft/core/types.js';
import type { DriverStatus } from '../../raft/driver.js';
import { membership as limits } from '../../proto/limits.js';
import { allMembers, isVoter } from '../../raft/core/confchange.js';
import type { DecisionRef } from '../../raft/core/types.js';
import { Rerunner } from '../lifecycle/rerun.js';
import { failureTolerance, isLive, planStep, trackCaughtUp, wantedMembers, type MembershipStep, type PeerView, type PlanInput, type RosterEntry } from './plan.js';

/** What the reconciler needs of the Raft driver (raft/driver.ts Driver). */
export interface MembershipDriver {
  status(): DriverStatus;
  peerContacts(): Record<NodeId, number>;
  nowMs(): number;
  proposeConfChange(cc: { changes: ConfChangeSingle[]; transition: 'auto' }): Promise<ProposeResult>;
  transferLeadership(to: NodeId): void;
}

export interface MemberView {
  readonly id: NodeId;
  /** voter | learner | none (on the roster, not yet in the configuration) */
  readonly raft: 'voter' | 'learner' | 'none';
  /** The roster's status: active | fenced | removed, or 'unknown' for a configuration member the roster does not name. */
  readonly roster: string;
  readonly leader: boolean;
  /** Only on the leader: the member's match index, its lag behind the commit index, and milliseconds since it was last heard (-1: never). */
  readonly match: number;
  readonly lag: number;
  readonly lastContactAgoMs: number;
  readonly live: boolean;
}

export interface MembershipView {
  readonly self: NodeId;
  readonly leader: NodeId | null;
  readonly isLeader: boolean;
  readonly voters: number;
  /** How many voters may fail with the rest still a quorum. */
  readonly failureTolerance: number;
  /** Live voters beyond a quorum, as this leader sees them now (-1 on a follower). */
  readonly liveMargin: number;
  readonly members: readonly MemberView[];
  /** The last step the loop decided, with its reason. */
  readonly step: MembershipStep;
  /** Configuration members that no roster entry explains (see the trust note above). */
  readonly unexplained: readonly NodeId[];
}

export interface ReconcilerOptions {
  readonly self: NodeId;
  readonly driver: MembershipDriver;
  readonly roster: () => readonly RosterEntry[] | null;
  /** The applied decision that asks for a change (guard.ts governingDecision); null when none does. */
  readonly decisionFor?: (type: ConfChangeSingle['type'], node: NodeId) => DecisionRef | null;
  readonly log: (line: string) => void;
  readonly everyMs?: number;
}

export class MembershipReconciler {
  private readonly o: ReconcilerOptions;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private caughtUpSince: Record<NodeId, number> = {};
  /** Index of the last change this node proposed as leader; pending until applied. */
  private proposedIndex = 0;
  private lastStep: MembershipStep = { kind: 'idle', why: 'not run yet' };
  private lastLogged = '';
  private lastUnexplained = '';
  private readonly rerun: Rerunner;

  constructor(o: ReconcilerOptions) {
    this.o = o;
    this.rerun = new Rerunner(() => this.run(), (e) => this.o.log(`membership: ${e.message}`), () => this.stopped);
  }

  start(): void {
    this.timer = setInterval(() => this.kick(), this.o.everyMs ?? limits.reconcileEveryMs);
    this.timer.unref();
    this.kick();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Run soon (an applied decision may have changed the roster). */
  kick(): void {
    this.rerun.kick();
  }

  private input(): PlanInput {
    const s = this.o.driver.status();
    const contacts = this.o.driver.peerContacts();
    const peers: Record<NodeId, PeerView> = {};
    for (const [id, p] of Object.entries(s.progress ?? {})) peers[id] = { match: p.match, lastContactMs: contacts[id] ?? null };
    const base = { self: this.o.self, conf: s.conf, commit: s.commit, peers, nowMs: this.o.driver.nowMs() };
    if (s.role === 'leader') this.caughtUpSince = trackCaughtUp(base, this.caughtUpSince);
    else this.caughtUpSince = {};
    // The core's applied index: a conf entry changes the configuration when the core applies it,
    // which is after the driver's batch holding it is durable (the driver's appliedIndex moves first).
    return { ...base, roster: this.o.roster(), changePending: Math.min(s.applied, s.appliedIndex) < this.proposedIndex, caughtUpSince: this.caughtUpSince };
  }

  private async run(): Promise<void> {
    const s = this.o.driver.status();
    const i = this.input();
    if (s.role !== 'leader') {
      this.note({ kind: 'idle', why: `following ${s.leader ?? 'no leader yet'}` });
      return;
    }
    const step = planStep(i);
    this.note(step);
    if (step.kind === 'transfer') this.o.driver.transferLeadership(step.to);
    if (step.kind !== 'change') return;
    const decision = this.o.decisionFor?.(step.change.type, step.change.node) ?? null;
    const change: ConfChangeSingle = decision === null ? step.change : { ...step.change, decision };
    const r = await this.o.driver.proposeConfChange({ changes: [change], transition: 'auto' });
    if (r.ok && !r.forwarded) {
      this.proposedIndex = r.index;
      this.o.log(`membership: proposed ${step.change.type} ${step.change.node} at index ${r.index}: ${step.why}`);
    } else if (!r.ok) {
      this.note({ kind: 'wait', why: `${step.change.type} ${step.change.node} not proposed: ${r.reason}: ${r.detail}` });
    }
  }

  private note(step: MembershipStep): void {
    this.lastStep = step;
    const line = `${step.kind}: ${step.why}`;
    // Logged when the step changes, not when only a duration in its reason does.
    const shape = line.replace(/[0-9]+/g, '#');
    if (shape !== this.lastLogged && step.kind !== 'idle') this.o.log(`membership: ${line}`);
    this.lastLogged = shape;
    const bad = this.unexplained().join(', ');
    if (bad !== this.lastUnexplained && bad !== '') this.o.log(`membership: the Raft configuration names ${bad}, which no applied decision put on the roster`);
    this.lastUnexplained = bad;
  }

  /** Configuration members the applied roster has never named. */
  private unexplained(): NodeId[] {
    const roster = this.o.roster();
    if (roster === null) return [];
    const named = new Set(roster.map((n) => n.id));
    return allMembers(this.o.driver.status().conf).filter((id) => !named.has(id));
  }

  view(): MembershipView {
    const s = this.o.driver.status();
    const i = this.input();
    const roster = i.roster ?? [];
    const ids = [...new Set([...allMembers(s.conf), ...wantedMembers(roster)])].sort();
    const leader = s.role === 'leader';
    const members = ids.map((id): MemberView => {
      const p = i.peers[id];
      const contact = id === this.o.self ? i.nowMs : p?.lastContactMs ?? null;
      return {
        id,
        raft: isVoter(s.conf, id) ? 'voter' : allMembers(s.conf).includes(id) ? 'learner' : 'none',
        roster: roster.find((n) => n.id === id)?.status ?? 'unknown',
        leader: s.leader === id,
        match: id === this.o.self ? s.lastIndex : p?.match ?? 0,
        lag: leader ? Math.max(0, s.commit - (id === this.o.self ? s.lastIndex : p?.match ?? 0)) : 0,
        lastContactAgoMs: contact === null ? -1 : i.nowMs - contact,
        live: isLive(i, id),
      };
    });
    const voters = s.conf.voters.length;
    const quorum = Math.floor(voters / 2) + 1;
    return {
      self: this.o.self,
      leader: s.leader,
      isLeader: leader,
      voters,
      failureTolerance: failureTolerance(voters),
      liveMargin: leader ? s.conf.voters.filter((v) => isLive(i, v)).length - quorum : -1,
      members,
      step: this.lastStep,
      unexplained: this.unexplained(),
    };
  }
}
