/**
 * Membership changes. A change never edits the live configuration: `applyConfChange` returns a new
 * one or an error string (etcd-io/raft's confchange/ does the same).
 *
 * Safety argument
 * ---------------
 * Raft's safety needs every two quorums that can decide (elect a leader, commit an entry) to
 * intersect. Two paths keep that true while membership changes:
 *
 * 1. One voter at a time (thesis §4.1). If C and C' differ by exactly one voter, every majority
 *    of C intersects every majority of C'. A configuration takes effect when its entry is applied,
 *    and the leader accepts a new change only after the previous one is applied
 *    (`pendingConfIndex`), so at most two adjacent configurations are ever in use at once. A new
 *    leader sets pendingConfIndex to its last index, so it cannot propose a change before an entry
 *    of its own term commits: this closes the single-server-change bug described by Ongaro
 *    (raft-dev, 2015), where two changes decided under different leaders overlap.
 *
 * 2. Joint consensus (thesis §4.3) for anything else. C_old,new requires separate majorities of
 *    both halves for every decision; C_new alone is entered only by a second change that is itself
 *    decided under C_old,new. Any quorum of C_old,new intersects any quorum of C_old and of C_new.
 *
 * Learners never vote and never count toward quorums; promoting a learner to voter is a voter
 * change like any other. A voter demoted to learner while still in the outgoing half is held in
 * `learnersNext` until the joint configuration is left, so no node is both voter and learner.
 */
import type { ConfChange, ConfChangeSingle, ConfState, NodeId } from './types.js';

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

export function encodeConfChange(cc: ConfChange): Uint8Array {
  return enc.encode(JSON.stringify({ changes: cc.changes.map((c) => ({ type: c.type, node: c.node, ...(c.decision ? { decision: { index: c.decision.index, cid: c.decision.cid } } : {}) })), transition: cc.transition }));
}

/** Decodes and validates; throws on anything malformed (a conf entry is produced by a leader). */
export function decodeConfChange(b: Uint8Array): ConfChange {
  const v: unknown = JSON.parse(dec.decode(b));
  if (typeof v !== 'object' || v === null) throw new Error('confchange: not an object');
  const o = v as { changes?: unknown; transition?: unknown };
  if (!Array.isArray(o.changes)) throw new Error('confchange: changes must be an array');
  if (o.transition !== 'auto' && o.transition !== 'explicit') throw new Error('confchange: bad transition');
  const changes: ConfChangeSingle[] = o.changes.map((c: unknown) => {
    const x = c as { type?: unknown; node?: unknown; decision?: unknown };
    if (x.type !== 'addVoter' && x.type !== 'addLearner' && x.type !== 'remove') throw new Error('confchange: bad change type');
    if (typeof x.node !== 'string' || x.node.length === 0) throw new Error('confchange: bad node id');
    if (x.decision === undefined) return { type: x.type, node: x.node };
    const d = x.decision as { index?: unknown; cid?: unknown } | null;
    if (typeof d !== 'object' || d === null || typeof d.index !== 'number' || !Number.isSafeInteger(d.index) || d.index <= 0) throw new Error('confchange: bad decision index');
    if (typeof d.cid !== 'string' || !/^[0-9a-f]{64}$/.test(d.cid)) throw new Error('confchange: bad decision cid');
    return { type: x.type, node: x.node, decision: { index: d.index, cid: d.cid } };
  });
  return { changes, transition: o.transition };
}

export function isJoint(c: ConfState): boolean {
  return c.votersOutgoing.length > 0;
}

export function isVoter(c: ConfState, id: NodeId): boolean {
  return c.voters.includes(id) || c.votersOutgoing.includes(id);
}

/** Every node the configuration names: those a leader replicates to. */
export function allMembers(c: ConfState): NodeId[] {
  return [...new Set([...c.voters, ...c.votersOutgoing, ...c.learners, ...c.learnersNext])].sort();
}

/** Whether a change needs a joint configuration (more than one voter differs). */
export function needsJoint(c: ConfState, cc: ConfChange): boolean {
  if (cc.changes.length === 0) return false;
  const next = new Set(c.voters);
  for (const ch of cc.changes) {
    if (ch.type === 'addVoter') next.add(ch.node);
    else next.delete(ch.node);
  }
  let diff = 0;
  for (const id of next) if (!c.voters.includes(id)) diff++;
  for (const id of c.voters) if (!next.has(id)) diff++;
  return diff > 1;
}

function without(xs: readonly NodeId[], id: NodeId): NodeId[] {
  return xs.filter((x) => x !== id);
}

function withId(xs: readonly NodeId[], id: NodeId): NodeId[] {
  return xs.includes(id) ? [...xs] : [...xs, id].sort();
}

/**
 * Apply a change to a configuration. An empty change leaves a joint configuration. Returns the
 * new configuration, or an error string explaining why the change is invalid in `c`.
 */
export function applyConfChange(c: ConfState, cc: ConfChange): ConfState | string {
  if (cc.changes.length === 0) {
    if (!isJoint(c)) return 'not in a joint configuration';
    return {
      voters: [...c.voters],
      votersOutgoing: [],
      learners: [...new Set([...c.learners, ...c.learnersNext])].sort(),
      learnersNext: [],
      autoLeave: false,
    };
  }
  const joint = needsJoint(c, cc);
  if (isJoint(c)) return 'already in a joint configuration; leave it first';
  let voters = [...c.voters];
  let learners = [...c.learners];
  let learnersNext: NodeId[] = [];
  const outgoing = joint ? [...c.voters] : [];
  for (const ch of cc.changes) {
    switch (ch.type) {
      case 'addVoter':
        voters = withId(voters, ch.node);
        learners = without(learners, ch.node);
        learnersNext = without(learnersNext, ch.node);
        break;
      case 'addLearner':
        voters = without(voters, ch.node);
        if (outgoing.includes(ch.node)) {
          learnersNext = withId(learnersNext, ch.node);
          learners = without(learners, ch.node);
        } else {
          learners = withId(learners, ch.node);
        }
        break;
      case 'remove':
        voters = without(voters, ch.node);
        learners = without(learners, ch.node);
        learnersNext = without(learnersNext, ch.node);
        break;
    }
  }
  if (voters.length === 0) return 'the configuration would have no voters';
  return { voters: voters.sort(), votersOutgoing: outgoing.sort(), learners: learners.sort(), learnersNext: learnersNext.sort(), autoLeave: joint && cc.transition === 'auto' };
}
