/**
 * Quorum arithmetic, kept apart from everything else so it can be checked against a naive
 * reference (etcd-io/raft's quorum/ package does the same).
 *
 * A configuration is one majority set, or two in joint consensus (thesis §4.3: "agreement for
 * elections and entry commitment requires separate majorities from both the old and new
 * configurations"). An empty majority set agrees to everything, so a non-joint configuration is
 * the joint one with an empty outgoing half.
 */
import type { NodeId } from './types.js';

export type VoteResult = 'won' | 'lost' | 'pending';

/** The largest index that a majority of `voters` has reached; Infinity for no voters. */
export function majorityCommitted(voters: readonly NodeId[], match: (id: NodeId) => number): number {
  if (voters.length === 0) return Infinity;
  const idx = voters.map(match).sort((a, b) => b - a);
  // With n voters, the value at position floor(n/2) (descending) is held by n/2+1 of them.
  return idx[Math.floor(voters.length / 2)] as number;
}

export function jointCommitted(incoming: readonly NodeId[], outgoing: readonly NodeId[], match: (id: NodeId) => number): number {
  return Math.min(majorityCommitted(incoming, match), majorityCommitted(outgoing, match));
}

export function majorityVote(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  if (voters.length === 0) return 'won';
  let granted = 0;
  let missing = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) granted++;
  }
  const q = Math.floor(voters.length / 2) + 1;
  if (granted >= q) return 'won';
  if (granted + missing >= q) return 'pending';
  return 'lost';
}

export function jointVote(incoming: readonly NodeId[], outgoing: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  const a = majorityVote(incoming, votes);
  const b = majorityVote(outgoing, votes);
  if (a === b) return a;
  if (a === 'lost' || b === 'lost') return 'lost';
  return 'pending';
}

/** Whether the nodes marked active form a quorum of the (joint) configuration. */
export function jointActive(incoming: readonly NodeId[], outgoing: readonly NodeId[], active: (id: NodeId) => boolean): boolean {
  const votes = new Map<NodeId, boolean>();
  for (const id of [...incoming, ...outgoing]) votes.set(id, active(id));
  return jointVote(incoming, outgoing, votes) === 'won';
}
