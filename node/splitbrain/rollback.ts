/**
 * Rollback detection: a node whose stored state went backwards (restored from an old disk image
 * or VM snapshot, or a disk that lost acknowledged writes) finds out at start, says so, and
 * withholds its vote until it has caught up past everything it may have promised before.
 *
 * Why. Raft's safety needs currentTerm, votedFor and the log to be on stable storage before a
 * server answers any RPC (Raft paper §5.1, Figure 2). A node that forgets a vote can vote twice in
 * one term and give two candidates a majority each (Election Safety, §5.2, gone); a node that
 * forgets entries it acknowledged can help elect a leader lacking a committed entry (Leader
 * Completeness, §5.4, gone). The node itself cannot tell an old copy from the latest: its store is
 * internally consistent. Its peers can, because every message it sent them was sent only after
 * the state it reflects was durable (the driver persists before sending, raft/driver.ts).
 *
 * Message flow.
 *  1. Every node keeps a WitnessBook: for each peer, the highest term it has heard that peer speak
 *     in, the vote that peer granted *to this node* in that term, and the highest log index that
 *     peer acknowledged in that term (appResp without reject). Pre-vote messages are ignored: a
 *     pre-candidate's term is not durable (Raft thesis §9.6). The daemon persists the book in the
 *     same LevelDB batch as the Ready of the step that updated it, so what it witnessed is durable
 *     before anything that depends on it (a commit counted from an acknowledgement, a leadership
 *     won with a vote) leaves the node.
 *  2. At start, before taking part in elections, a node asks every other voter "what have you seen
 *     from me?" (RollbackQuery) and each answers with its Witness for the asker as it stood when
 *     the asker opened its peer stream (monitor.ts peerConnected): what the previous incarnation
 *     said, not the term the restarted node has learned and spoken in since.
 *  3. `RollbackGate` compares each answer with the node's own durable state (term, vote, last
 *     index). A peer that saw it in a later term, saw it vote for someone else in its current term,
 *     or saw it acknowledge an index beyond its log in its current term, proves the store went
 *     backwards: verdict `rolled_back`, with the peer's record as evidence (raises
 *     custody_split_brain_active{kind="rollback"}).
 *  4. Until the gate allows it, the driver drops incoming vote and pre-vote requests and does not
 *     start elections; it still follows a leader, appends and acknowledges entries (an
 *     acknowledgement states the current durable log, which is true whatever happened before).
 *
 * When the gate allows voting, and why that is safe.
 *  - No proof of rollback and every other voter has answered: every vote the node ever granted
 *    was witnessed by the candidate that received it, and every acknowledgement by the leader
 *    that received it; all of them have answered and none contradicts the store, so the store
 *    holds at least what the node promised.
 *  - After a proven rollback: once the node's term is above every term any peer saw it in, a vote
 *    can only go to a term it never voted in before (Raft never votes below its current term); and
 *    once its log reaches the highest index it acknowledged in that term, or ends in an entry of a
 *    later term (such an entry came from a later leader, which holds every committed entry, §5.4,
 *    and Log Matching, §5.3, makes the prefix equal), it cannot help elect a leader missing an
 *    entry it acknowledged.
 *  - Until every voter has answered the gate waits, even when the answers so far are clean. A
 *    silent peer may be the one candidate that holds the forgotten vote, and a node that cannot
 *    rule that out must not vote: safety is chosen over liveness here. A cluster keeps electing
 *    leaders as long as a majority of voters can vote; an operator sees
 *    custody_rollback_vote_withheld=1 and the missing peers in the log.
 * Residual risk: a peer that itself lost the witness record (both rolled back at once) cannot
 * testify; detection then rests on the split-brain detector and signed votes (equivocation.ts).
 */
import type { Message, NodeId } from '../../raft/core/types.js';

/** What one node witnessed of another. */
export interface Witness {
  /** Highest term the node was heard speaking in (from durable-term messages only). */
  readonly term: number;
  /** The vote the node granted to the witness in `term`, if the witness received one. */
  readonly vote: NodeId | null;
  /** Highest log index the node acknowledged to the witness in `term` (0 if none). */
  readonly ackIndex: number;
}

/** A node's own durable Raft state at the moment of the check (Figure 2's persistent state). */
export interface DurableState {
  readonly term: number;
  readonly vote: NodeId | null;
  readonly lastIndex: number;
  /** Term of the last entry in the log (or of the snapshot when the log is empty). */
  readonly lastLogTerm: number;
}

/** Message types whose `term` the sender has made durable before sending. */
const DURABLE_TERM_TYPES = new Set<Message['type']>([
  'app', 'appResp', 'vote', 'voteResp', 'heartbeat', 'heartbeatResp', 'snap', 'snapResp', 'timeoutNow', 'readIndex', 'readIndexResp',
]);

/**
 * What this node has witnessed of each peer. Feed it every message received from a peer after the
 * transport has authenticated the sender. Bounded by the roster: records only for `roster` nodes.
 */
export class WitnessBook {
  private readonly book = new Map<NodeId, Witness>();

  constructor(
    private readonly self: NodeId,
    private readonly roster: ReadonlySet<NodeId>,
  ) {}

  /** Notes one received message. Returns true when the record of its sender changed (persist it). */
  noteMessage(m: Pick<Message, 'type' | 'from' | 'to' | 'term' | 'index' | 'reject'>): boolean {
    if (m.from === this.self || m.to !== this.self || !this.roster.has(m.from) || !DURABLE_TERM_TYPES.has(m.type)) return false;
    if (!Number.isSafeInteger(m.term) || m.term < 0) return false;
    const had = this.book.get(m.from) ?? { term: 0, vote: null, ackIndex: 0 };
    let w: Witness = had;
    if (m.term > w.term) w = { term: m.term, vote: null, ackIndex: 0 };
    if (m.term === w.term) {
      if (m.type === 'voteResp' && !m.reject) w = { ...w, vote: this.self };
      if (m.type === 'appResp' && !m.reject && Number.isSafeInteger(m.index) && m.index > w.ackIndex) w = { ...w, ackIndex: m.index };
    }
    if (w === had) return false;
    this.book.set(m.from, w);
    return true;
  }

  /** The answer to `node`'s RollbackQuery. */
  report(node: NodeId): Witness | null {
    return this.book.get(node) ?? null;
  }

  /** For persistence beside the Raft hard state. */
  entries(): [NodeId, Witness][] {
    return [...this.book.entries()];
  }

  restore(entries: Iterable<[NodeId, Witness]>): void {
    for (const [id, w] of entries) {
      if (!this.roster.has(id) || id === this.self) continue;
      const had = this.book.get(id);
      if (!had || w.term > had.term || (w.term === had.term && (w.ackIndex > had.ackIndex || (had.vote === null && w.vote !== null)))) this.book.set(id, w);
    }
  }
}

export interface RollbackEvidence {
  readonly witness: NodeId;
  readonly saw: Witness;
  readonly local: DurableState;
  readonly what: 'term' | 'vote' | 'log';
}

export type Verdict =
  | { readonly kind: 'waiting'; readonly missing: readonly NodeId[] }
  | { readonly kind: 'consistent' }
  | { readonly kind: 'rolled_back'; readonly evidence: readonly RollbackEvidence[]; readonly catchUp: { readonly term: number; readonly index: number } };

/** Compares one peer's witness with the local durable state. */
export function contradiction(witness: NodeId, saw: Witness, local: DurableState): RollbackEvidence | null {
  if (saw.term > local.term) return { witness, saw, local, what: 'term' };
  if (saw.term === local.term) {
    if (saw.vote !== null && saw.vote !== local.vote) return { witness, saw, local, what: 'vote' };
    if (saw.ackIndex > local.lastIndex) return { witness, saw, local, what: 'log' };
  }
  return null;
}

/**
 * The start-up check. Construct with the node's durable state as loaded, feed each voter's answer
 * with `answer()`, and ask `mayVote()` before handling a vote request or starting an election.
 */
export class RollbackGate {
  private readonly answers = new Map<NodeId, Witness | null>();
  private readonly others: readonly NodeId[];
  private current: Verdict;

  constructor(
    readonly self: NodeId,
    voters: readonly NodeId[],
    readonly atStart: DurableState,
  ) {
    this.others = [...new Set(voters)].filter((v) => v !== self).sort();
    this.current = this.others.length === 0 ? { kind: 'consistent' } : { kind: 'waiting', missing: this.others };
  }

  verdict(): Verdict {
    return this.current;
  }

  /** A voter's answer (null: it has witnessed nothing from this node). Answers from non-voters are ignored. */
  answer(from: NodeId, saw: Witness | null): Verdict {
    if (!this.others.includes(from)) return this.current;
    this.answers.set(from, saw);
    this.current = this.decide();
    return this.current;
  }

  private decide(): Verdict {
    const evidence: RollbackEvidence[] = [];
    let term = -1;
    let index = 0;
    for (const [from, saw] of this.answers) {
      if (saw === null) continue;
      const c = contradiction(from, saw, this.atStart);
      if (c) evidence.push(c);
      if (saw.term > term) {
        term = saw.term;
        index = saw.ackIndex;
      } else if (saw.term === term) {
        index = Math.max(index, saw.ackIndex);
      }
    }
    // A proven rollback stays proven whatever later answers say.
    if (evidence.length > 0 || this.current.kind === 'rolled_back') {
      const prior = this.current.kind === 'rolled_back' ? this.current : null;
      return { kind: 'rolled_back', evidence: prior && evidence.length === 0 ? prior.evidence : evidence, catchUp: { term, index } };
    }
    const missing = this.others.filter((v) => !this.answers.has(v));
    return missing.length > 0 ? { kind: 'waiting', missing } : { kind: 'consistent' };
  }

  /** May the node grant a vote or start an election now, with durable state `now`? */
  mayVote(now: DurableState): boolean {
    const v = this.current;
    if (v.kind === 'consistent') return true;
    if (v.kind === 'waiting') return false;
    return caughtUp(now, v.catchUp);
  }
}

/**
 * Caught up past what peers witnessed: a term above every witnessed term, and a log that holds
 * the highest acknowledged index of that term or ends in an entry of a later term.
 */
export function caughtUp(now: DurableState, catchUp: { readonly term: number; readonly index: number }): boolean {
  return now.term > catchUp.term && (now.lastIndex >= catchUp.index || now.lastLogTerm > catchUp.term);
}

export function describeVerdict(self: NodeId, v: Verdict): string {
  switch (v.kind) {
    case 'consistent':
      return `${self}: stored state agrees with what every voter witnessed; voting`;
    case 'waiting':
      return `${self}: withholding votes until every voter has said what it saw from this node; missing ${v.missing.join(', ')}`;
    case 'rolled_back':
      return `${self}: stored state went backwards (${v.evidence.map((e) => `${e.witness} saw ${e.what === 'term' ? `term ${e.saw.term} > stored ${e.local.term}` : e.what === 'vote' ? `a vote for ${e.saw.vote} in term ${e.saw.term}, stored vote ${e.local.vote ?? 'none'}` : `index ${e.saw.ackIndex} acknowledged in term ${e.saw.term}, stored last index ${e.local.lastIndex}`}`).join('; ')}); withholding votes until past term ${v.catchUp.term} and index ${v.catchUp.index}`;
  }
}
