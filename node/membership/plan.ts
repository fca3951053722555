/**
 * Raft membership follows the ledger's node roster: the pure decision of the next step.
 *
 * The roster (ledger/apply.ts: NodeAdded, NodeRemoved) says which nodes belong to the cluster; the
 * Raft configuration (raft/core/confchange.ts) says which nodes replicate and vote. Only the leader
 * changes the configuration, and only through `planStep`, so every membership change is derived
 * from applied governance decisions (see reconciler.ts for the loop and the trust argument).
 *
 * Rules, in the order `planStep` applies them (one change at a time, never while the previous one
 * is still unapplied or the configuration is joint — the one-server-at-a-time rule of thesis §4.1
 * that confchange.ts's safety argument rests on):
 *   1. a learner the roster no longer names is removed (learners never count toward a quorum);
 *   2. a node the roster names and the configuration does not is added as a learner: it catches
 *      up (by snapshot if the log it needs was compacted) without affecting any quorum;
 *   3. a voter the roster no longer names is removed, but only if the voters that remain, counting
 *      only those heard from within membership.peerLiveMs, still form a majority of the new
 *      configuration: a removal never takes away the live quorum. If the voter to remove is the
 *      leader itself, leadership is transferred first to the remaining live voter with the
 *      highest match index; the new leader then removes it;
 *   4. a learner the roster lists as active is promoted to voter once it has stayed within
 *      membership.learnerLagEntriesMax entries of the commit index, and live, for
 *      membership.learnerCaughtUpMs without a break (etcd's learner promotion, Vault autopilot's
 *      "stable server" time). A live node added as a voter never reduces the live majority: if the
 *      live voters were a majority of n, they and it are a majority of n + 1.
 * A step that would break a rule waits and says why; planStep is a pure function of its input,
 * so whichever node leads after a change of leader computes the same step from the same roster
 * and configuration (idempotent across leader changes and restarts).
 */
import { membership as limits } from '../../proto/limits.js';
import { isJoint } from '../../raft/core/confchange.js';
import type { ConfChangeSingle, ConfState, NodeId } from '../../raft/core/types.js';

export interface RosterEntry {
  readonly id: NodeId;
  readonly status: 'active' | 'fenced' | 'removed';
}

/** What the leader knows of one member: its match index and when it last heard from it. */
export interface PeerView {
  readonly match: number;
  /** Milliseconds (the caller's clock) of the last message from the peer; null if never. */
  readonly lastContactMs: number | null;
}

export interface PlanInput {
  readonly self: NodeId;
  /** The ledger's node roster; null before the genesis is applied. */
  readonly roster: readonly RosterEntry[] | null;
  readonly conf: ConfState;
  /** A membership change was proposed and is not applied yet. */
  readonly changePending: boolean;
  readonly commit: number;
  readonly peers: Readonly<Record<NodeId, PeerView>>;
  readonly nowMs: number;
  /** Since when each learner has been caught up without a break (trackCaughtUp). */
  readonly caughtUpSince: Readonly<Record<NodeId, number>>;
}

export type MembershipStep =
  | { readonly kind: 'idle'; readonly why: string }
  | { readonly kind: 'wait'; readonly why: string }
  | { readonly kind: 'change'; readonly change: ConfChangeSingle; readonly why: string }
  | { readonly kind: 'transfer'; readonly to: NodeId; readonly why: string };

/**
 * The nodes the roster wants in the Raft configuration: every node not removed. A fenced node
 * stays a member: fencing takes away its passport's standing (its proposals and its kernel are
 * refused), while replicating and voting on the log give it no authority; taking it out of Raft
 * is a NodeRemoved decision.
 */
export function wantedMembers(roster: readonly RosterEntry[]): NodeId[] {
  return roster.filter((n) => n.status !== 'removed').map((n) => n.id).sort();
}

export function isLive(i: Pick<PlanInput, 'self' | 'peers' | 'nowMs'>, id: NodeId, liveMs = limits.peerLiveMs): boolean {
  if (id === i.self) return true;
  const c = i.peers[id]?.lastContactMs;
  return c !== undefined && c !== null && i.nowMs - c <= liveMs;
}

/** How many voters may fail with the others still a majority: floor((n - 1) / 2). */
export function failureTolerance(voters: number): number {
  return voters <= 0 ? 0 : Math.floor((voters - 1) / 2);
}

/** Updates when each learner became caught up; a learner that falls behind or goes silent starts again. */
export function trackCaughtUp(i: Omit<PlanInput, 'caughtUpSince' | 'roster' | 'changePending'>, prev: Readonly<Record<NodeId, number>>): Record<NodeId, number> {
  const out: Record<NodeId, number> = {};
  for (const id of i.conf.learners) {
    const p = i.peers[id];
    const caughtUp = p !== undefined && i.commit - p.match <= limits.learnerLagEntriesMax && isLive(i, id);
    if (caughtUp) out[id] = prev[id] ?? i.nowMs;
  }
  return out;
}

export function planStep(i: PlanInput): MembershipStep {
  if (i.roster === null) return { kind: 'idle', why: 'the ledger has no genesis yet' };
  if (isJoint(i.conf)) return { kind: 'wait', why: 'the configuration is joint; waiting until it is left' };
  if (i.changePending) return { kind: 'wait', why: 'a membership change is not applied yet' };
  const wanted = new Set(wantedMembers(i.roster));
  const voters = [...i.conf.voters].sort();
  const learners = [...new Set([...i.conf.learners, ...i.conf.learnersNext])].sort();
  const members = new Set([...voters, ...learners]);

  for (const id of learners) {
    if (!wanted.has(id)) return { kind: 'change', change: { type: 'remove', node: id }, why: `learner ${id} is not on the roster` };
  }
  for (const id of [...wanted].sort()) {
    if (!members.has(id)) return { kind: 'change', change: { type: 'addLearner', node: id }, why: `node ${id} is on the roster: it joins as a learner` };
  }
  const waits: string[] = [];
  for (const id of voters) {
    if (wanted.has(id)) continue;
    const rest = voters.filter((v) => v !== id);
    if (rest.length === 0) {
      waits.push(`${id} is the last voter`);
      continue;
    }
    const live = rest.filter((v) => isLive(i, v));
    const need = Math.floor(rest.length / 2) + 1;
    if (live.length < need) {
      waits.push(`removing ${id} would leave ${live.length} live of ${rest.length} voters, fewer than the ${need} a quorum needs`);
      continue;
    }
    if (id === i.self) {
      const to = live.filter((v) => v !== i.self).sort((a, b) => (i.peers[b]?.match ?? 0) - (i.peers[a]?.match ?? 0) || (a < b ? -1 : 1))[0];
      if (to === undefined) {
        waits.push(`no live voter to hand leadership to before ${id} leaves`);
        continue;
      }
      return { kind: 'transfer', to, why: `this leader (${id}) is not on the roster: it hands leadership to ${to}, which then removes it` };
    }
    return { kind: 'change', change: { type: 'remove', node: id }, why: `voter ${id} is not on the roster` };
  }
  for (const id of learners) {
    const status = i.roster.find((n) => n.id === id)?.status;
    if (status !== 'active') {
      waits.push(`learner ${id} is ${status ?? 'not on the roster'}: only an active node is promoted to voter`);
      continue;
    }
    const since = i.caughtUpSince[id];
    if (since !== undefined && i.nowMs - since >= limits.learnerCaughtUpMs) {
      return { kind: 'change', change: { type: 'addVoter', node: id }, why: `learner ${id} has been caught up for ${Math.round(i.nowMs - since)} ms: promoted to voter` };
    }
    waits.push(since === undefined ? `learner ${id} is catching up` : `learner ${id} caught up ${Math.round(i.nowMs - since)} ms ago; promoted after ${limits.learnerCaughtUpMs} ms`);
  }
  if (waits.length > 0) return { kind: 'wait', why: waits.join('; ') };
  return { kind: 'idle', why: 'the Raft configuration matches the roster' };
}
