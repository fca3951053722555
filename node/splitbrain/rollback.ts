/**
 * Rollback detection: a node whose stored state went backwards (restored from an old disk image
 * or VM snapshot, or a disk that lost acknowledged writes) finds out at start when a peer can tell,
 * says so, and withholds its vote until it has caught up past everything it may have promised.
 * A plain restart of an intact store is not held up beyond what an election needs anyway.
 *
 * What a rolled-back node could break. Raft's safety needs currentTerm, votedFor and the log to be
 * on stable storage before a server answers any RPC (Raft paper §5.1, Figure 2). Two promises rest
 * on that storage:
 *  (V) a vote: a node that forgets a vote it granted in term T can vote again in T and give two
 *      candidates a majority each (Election Safety, §5.2, gone; with it Log Matching, since two
 *      leaders of T write different entries under the same term);
 *  (A) an acknowledgement: a node that forgets entries it acknowledged can help elect a leader
 *      lacking a committed entry (Leader Completeness, §5.4, gone).
 * The node itself cannot tell an old copy from the latest: its store is internally consistent.
 * Its peers can, partly: every message it sent was sent only after the state it reflects was
 * durable (the driver persists before sending, raft/driver.ts), and a peer remembers what it heard.
 * A vote (V) is witnessed only by the candidate that received it; an acknowledgement (A) only by
 * the leader that received it; a term by whoever heard the node speak in it.
 *
 * Message flow.
 *  1. Every node keeps a WitnessBook: for each peer, the highest term it has heard that peer speak
 *     in, the vote that peer granted *to this node* in that term, and the highest log index that
 *     peer acknowledged in that term (appResp without reject), kept apart by the peer's boot: a
 *     random id (64 bits) each node draws at every start of its process, named on every peer stream
 *     it opens (so every Raft message arrives tagged with the run that sent it) and in its
 *     exchanges. Pre-vote messages are ignored: a
 *     pre-candidate's term is not durable (Raft thesis §9.6). The daemon persists the book in the
 *     same LevelDB batch as the Ready of the step that updated it, so what it witnessed is durable
 *     before anything that depends on it (a commit counted from an acknowledgement, a leadership
 *     won with a vote) leaves the node.
 *  2. At start a node asks every other voter "what have you seen from me?" (RollbackQuery, naming
 *     its boot), and keeps asking each voter until that voter has answered, however long it is
 *     away. The voters are those of the configuration in force, followed as it changes
 *     (RollbackGate below). Each answers with the join of what it heard from every boot of the
 *     asker except the asking one (WitnessBook.report), and names the boot it answers; the asker
 *     counts only answers that name its own boot.
 *     Why every other boot, and why not the asking one. The gate compares the answer with the
 *     store as this run loaded it. What this run said itself was said after that (the driver
 *     persists before sending): a term it learned since, an index it acknowledged since. Counted,
 *     it reads as if the loaded store had said it, a false rollback; so it is left out, and
 *     exactly it: the boot tags every message with the run that sent it, however late it arrives
 *     and however often the answering peer restarts in between (its book, with the boots, is
 *     durable; an earlier rule, the book as of the asker's stream opening, was lost when the
 *     answering peer restarted and then counted what the asker had said since). Every other boot
 *     is an earlier run (runs of one node follow each other; a later run means this one is gone,
 *     and an answer to it is for a boot no longer running, never counted), and an earlier run's
 *     promises are what a rolled-back store may have lost: all of them are in the answer. So both
 *     promises stay covered: a vote (V) or an acknowledgement (A) an earlier run made is in its
 *     witness's answer, and one the asking run made itself is in the store it runs on (made
 *     durable before it was sent), which a restore taken earlier than it cannot have reverted
 *     without ending this run.
 *     Why a random id and not a counter in the store: a store restored from an old copy would
 *     restore the counter too and reuse the boot of a later run, whose promises the answer would
 *     then leave out. A random id is not in the store at all, so a restore cannot bring one back
 *     (a repeat of 64 random bits is negligible). Residual: a run whose memory is restored with
 *     its disk (a live VM snapshot) keeps its boot and does not restart, so no gate runs; as
 *     before, that case rests on the split-brain detector and signed votes.
 *     Bounds and messages without the fields: the book keeps `witnessBootsPerPeerMax` boots per
 *     peer, least recently heard first; an older one folds into a record counted against every
 *     asker (only a run that `witnessBootsPerPeerMax` later runs were heard after, long gone, could
 *     then see its own words: at worst a false alarm, never a hidden promise). A message or stream
 *     that names no boot (a peer from before boots) goes to that same record; a query that names
 *     no boot is answered with everything; an answer that names no boot counts only for a node
 *     that has none itself. Each of these errs toward an alarm, never toward missing a promise.
 *  3. `RollbackGate` compares each answer with the node's own durable state (term, vote, last
 *     index). A peer that saw it in a later term, saw it vote for someone else in its current term,
 *     or saw it acknowledge an index beyond its log in its current term, proves the store went
 *     backwards: verdict `rolled_back`, with the peer's record as evidence (raises
 *     custody_split_brain_active{kind="rollback"} unless the store's own marker explains it).
 *  4. Until the gate allows it, the driver grants no vote, drops requests to take over leadership
 *     (timeoutNow) and starts no election; it still follows a leader, appends and acknowledges
 *     entries (an acknowledgement states the current durable log, which is true whatever happened
 *     before). It does grant pre-votes, which bind no vote and change no term, and a vote request
 *     of a later term moves it into that term without a grant: the catch-up below asks it to be
 *     past a term, and with no leader a candidate's request is the only way there. A late verdict
 *     sends the node into the driver's recovery only if it has not yet applied the highest index
 *     the peers saw it acknowledge (raft/driver.ts recover): the entry committed at that index is
 *     final, so a node that applied it holds what its acknowledgement could have helped commit.
 *
 * The store's history (`StoreHistory`), from the marker `custody node wipe` leaves (META_RECOVERING
 * in raft/driver.ts, with the term it kept):
 *  - `intact`: no marker. The store holds every vote and acknowledgement the node ever made.
 *  - `log_lost`: wiped, term and vote kept (their checksum verified). Votes are intact; entries it
 *    acknowledged are gone, which the driver's recovery (raft/driver.ts `Recovering`) and the
 *    gate's catch-up below cover.
 *  - `vote_lost`: wiped without a term and vote it could trust (`--discard-vote` on a corrupt hard
 *    state, or `--restored` for a store restored from an old copy). It may have voted in terms it
 *    no longer knows.
 * A store restored from a copy outside these commands (VM snapshot, disk image) looks `intact`;
 * only a peer's answer can reveal it (below).
 *
 * When the gate allows voting, and why that is safe.
 *  (a) `intact` or `log_lost`, no contradicting answer, and answers from enough voters that with
 *      this node they form a quorum of the voters. Safety needs no answer here: the store holds
 *      every vote (V), and for `log_lost` the driver withholds votes until the node holds what was
 *      committed (A); this is what every Raft assumes of a restart. The quorum of answers is a
 *      check on that assumption, and under node failures (every node that is up reaches every
 *      other one) it costs no availability: no election can be won without a quorum of voters up,
 *      and this node can only matter to an election (vote in it, or win it) when a quorum that
 *      includes it is up, which is exactly the quorum whose answers it waits for. (Under a partial
 *      partition it may wait until it reaches that quorum itself; the others elect without it
 *      meanwhile whenever they can.) With f of 2f+1 voters down and this node restarting, the f
 *      others that are up are the f answers it needs (3 voters, one down: one answer; 5 voters,
 *      two down: two). A node that is already running, or is elected by the others, is not
 *      affected: the gate only holds back the restarted node's own vote. The node keeps asking the voters that have not answered; a contradiction arriving
 *      later still withholds the vote from then on, and raises the alarm.
 *      What this catches: an out-of-band restore, whenever an answering peer witnessed a later
 *      term, a different vote in the stored term, or an acknowledgement past the stored log. What
 *      it cannot catch: a vote (V) forgotten by such a restore, granted in a term no answering peer
 *      heard the node in, to a candidate that has not answered. No rule that lets a node vote
 *      while any voter is silent can catch that; the rule for it is (b), and only a marker or a
 *      contradiction tells the node it needs (b).
 *  (b) `vote_lost`, or any contradicting answer (evidence of a restore): every other voter has
 *      answered, and the node has caught up past what they witnessed. Every vote the node ever
 *      granted was witnessed by its candidate, a voter, whose record shows that term or a later
 *      one; every acknowledgement by its leader, whose record shows that index or a later term.
 *      So once the node's term is above every term any voter saw it in, a vote can only go to a
 *      term it never voted in before (Raft never votes below its current term); and once its log
 *      reaches the highest index it acknowledged in that term, or ends in an entry of a later term
 *      (such an entry came from a later leader, which holds every committed entry, §5.4, and Log
 *      Matching, §5.3, makes the prefix equal), it cannot help elect a leader missing an entry it
 *      acknowledged. Waiting for every voter is the price: a silent voter may be the one candidate
 *      that holds the forgotten vote, so the gate cannot rule it out, and chooses safety over
 *      liveness. The operator's override (`custody node --trust-store`, `waiveSilent` below)
 *      stops waiting for silent voters, never the catch-up to what the answers showed; it is for a
 *      voter that is down for good, when the operator knows this node made no promise to it that
 *      the others did not witness (for instance, the dead voter never led or campaigned after this
 *      node's store was copied).
 *      One exception asks for less: a `log_lost` store contradicted only about its log (the
 *      acknowledgements the wipe deleted, nothing about its term or vote) lost no vote, so it needs
 *      the catch-up but not every voter's answer.
 *      Rule (b) survives a restart: until the node has voted under it, RESTORE_PENDING_KEY
 *      (node-guard.ts) in the store makes the next start hold to it again, even once the wipe's
 *      own marker is gone.
 *  An operator sees custody_rollback_vote_withheld=1 and the missing voters in the log.
 * Residual risk: a peer that itself lost the witness record (both rolled back at once) cannot
 * testify; detection then rests on the split-brain detector and signed votes (equivocation.ts).
 */
import { splitBrain as limits } from '../../proto/limits.js';
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

/** What one peer said during one run of its process (its boot id, exchange.ts), and what any boot said. */
export interface BootWitness {
  readonly boot: string;
  readonly saw: Witness;
}

/** Everything one node witnessed of one peer, by the peer's boot (see WitnessBook). */
export interface PeerWitness {
  /** The peer's most recently heard boots, least recently heard first (at most `witnessBootsPerPeerMax`). */
  readonly boots: readonly BootWitness[];
  /** Boots no longer listed, and messages that came without a boot: counted against every asker. */
  readonly rest: Witness | null;
}

/** The most of two records: the higher term, and within one term any vote and the higher index. */
export function joinWitness(a: Witness | null, b: Witness | null): Witness | null {
  if (a === null) return b;
  if (b === null) return a;
  if (a.term !== b.term) return a.term > b.term ? a : b;
  return { term: a.term, vote: a.vote ?? b.vote, ackIndex: Math.max(a.ackIndex, b.ackIndex) };
}

/**
 * What this node has witnessed of each peer, kept apart by the boot of the peer that said it (the
 * random id a node draws at each start, carried by its peer streams and its exchanges), so that a
 * rollback answer to a peer holds what every other boot of it said and nothing the asking boot
 * said itself (header, step 2). Feed it every message received from a peer after the transport has
 * authenticated the sender. Bounded by the roster: records only for `roster` nodes, the members
 * (voters and learners) of the configuration in force; `setRoster` follows a change and forgets
 * the records of members that left (a removed node is no longer asked to vote, so nobody needs
 * what it said; a node added again later starts from an empty record, as a new one). Bounded per
 * peer by `witnessBootsPerPeerMax` boots: the least recently heard one beyond it folds into the
 * record every asker is answered with.
 */
export class WitnessBook {
  private readonly book = new Map<NodeId, PeerWitness>();
  private roster: ReadonlySet<NodeId>;

  constructor(
    private readonly self: NodeId,
    roster: ReadonlySet<NodeId>,
  ) {
    this.roster = new Set(roster);
  }

  /** The members changed. True when records were forgotten (persist the book). */
  setRoster(roster: ReadonlySet<NodeId>): boolean {
    this.roster = new Set(roster);
    let dropped = false;
    for (const id of [...this.book.keys()]) {
      if (!this.roster.has(id)) dropped = this.book.delete(id) || dropped;
    }
    return dropped;
  }

  /**
   * Notes one received message, said by the sender's boot `boot` (undefined: a sender that names
   * no boot; what it says counts against every asker). Returns true when the record of its sender
   * changed (persist it).
   */
  noteMessage(m: Pick<Message, 'type' | 'from' | 'to' | 'term' | 'index' | 'reject'>, boot?: string): boolean {
    if (m.from === this.self || m.to !== this.self || !this.roster.has(m.from) || !DURABLE_TERM_TYPES.has(m.type)) return false;
    if (!Number.isSafeInteger(m.term) || m.term < 0) return false;
    const rec = this.book.get(m.from) ?? { boots: [], rest: null };
    if (boot === undefined) {
      const rest = witnessAfter(rec.rest, m, this.self);
      if (rest === rec.rest) return false;
      this.book.set(m.from, { boots: rec.boots, rest });
      return true;
    }
    const i = rec.boots.findIndex((b) => b.boot === boot);
    const had = i >= 0 ? (rec.boots[i] as BootWitness).saw : null;
    const saw = witnessAfter(had, m, this.self);
    if (saw === null || (saw === had && i === rec.boots.length - 1)) return false;
    // Least recently heard first: the boot heard now goes last (an order change alone is not
    // persisted; it only decides which boot folds first).
    const boots = rec.boots.filter((_, j) => j !== i);
    boots.push({ boot, saw });
    this.book.set(m.from, fold(boots, rec.rest));
    return saw !== had;
  }

  /**
   * The answer to `node`'s RollbackQuery from its boot `boot`: what every other boot of it said,
   * and what came without a boot. Undefined `boot` (a query that names none): everything.
   */
  report(node: NodeId, boot?: string): Witness | null {
    const rec = this.book.get(node);
    if (!rec) return null;
    let w = rec.rest;
    for (const b of rec.boots) if (boot === undefined || b.boot !== boot) w = joinWitness(w, b.saw);
    return w;
  }

  /** For persistence beside the Raft hard state. */
  entries(): [NodeId, PeerWitness][] {
    return [...this.book.entries()];
  }

  /** Merges records as stored (keeping, boot by boot, the most of what is held and what is stored). */
  restore(entries: Iterable<[NodeId, PeerWitness]>): void {
    for (const [id, p] of entries) {
      if (!this.roster.has(id) || id === this.self) continue;
      const had = this.book.get(id) ?? { boots: [], rest: null };
      const boots = p.boots.map((b) => ({ boot: b.boot, saw: joinWitness(b.saw, had.boots.find((h) => h.boot === b.boot)?.saw ?? null) as Witness }));
      for (const h of had.boots) if (!boots.some((b) => b.boot === h.boot)) boots.push(h);
      this.book.set(id, fold(boots, joinWitness(had.rest, p.rest)));
    }
  }
}

/** Keeps the last `witnessBootsPerPeerMax` boots; the ones before fold into `rest`. */
function fold(boots: BootWitness[], rest: Witness | null): PeerWitness {
  const over = boots.length - limits.witnessBootsPerPeerMax;
  if (over <= 0) return { boots, rest };
  let r = rest;
  for (const b of boots.slice(0, over)) r = joinWitness(r, b.saw);
  return { boots: boots.slice(over), rest: r };
}

/** One record after one message (the same object when the message adds nothing). */
function witnessAfter(had: Witness | null, m: Pick<Message, 'type' | 'term' | 'index' | 'reject'>, self: NodeId): Witness | null {
  const start = had ?? { term: 0, vote: null, ackIndex: 0 };
  let w: Witness = start;
  if (m.term > w.term) w = { term: m.term, vote: null, ackIndex: 0 };
  if (m.term === w.term) {
    if (m.type === 'voteResp' && !m.reject) w = { ...w, vote: self };
    if (m.type === 'appResp' && !m.reject && Number.isSafeInteger(m.index) && m.index > w.ackIndex) w = { ...w, ackIndex: m.index };
  }
  return w === start ? had : w;
  return w;
}

export interface RollbackEvidence {
  readonly witness: NodeId;
  readonly saw: Witness;
  readonly local: DurableState;
  readonly what: 'term' | 'vote' | 'log';
}

/** What the store's own marker says it lost (see the header). */
export type StoreHistory = 'intact' | 'log_lost' | 'vote_lost';

/**
 * The store's history from the marker `custody node wipe` writes (raft/storage/leveldb.ts
 * wipeStore): absent, intact; with a kept term, the log was lost; without one, the vote may have been.
 */
export function storeHistoryOf(marker: { readonly keptTerm: number | null } | null): StoreHistory {
  if (marker === null) return 'intact';
  return marker.keptTerm === null ? 'vote_lost' : 'log_lost';
}

export type Verdict =
  /** Too few answers yet: `wanted` more of the `missing` voters (every one of them when a vote may be lost). */
  | { readonly kind: 'waiting'; readonly missing: readonly NodeId[]; readonly wanted: number }
  /** Enough answers and none contradicts the store; the `missing` voters are still asked. */
  | { readonly kind: 'consistent'; readonly missing: readonly NodeId[] }
  /** Proven: the store went backwards. Votes once every voter answered (`missing` empty) and caught up. */
  | { readonly kind: 'rolled_back'; readonly evidence: readonly RollbackEvidence[]; readonly catchUp: { readonly term: number; readonly index: number }; readonly missing: readonly NodeId[] };

/** Compares one peer's witness with the local durable state. */
export function contradiction(witness: NodeId, saw: Witness, local: DurableState): RollbackEvidence | null {
  if (saw.term > local.term) return { witness, saw, local, what: 'term' };
  if (saw.term === local.term) {
    if (saw.vote !== null && saw.vote !== local.vote) return { witness, saw, local, what: 'vote' };
    if (saw.ackIndex > local.lastIndex) return { witness, saw, local, what: 'log' };
  }
  return null;
}

export interface GateOptions {
  /** What the store's marker says (default `intact`). */
  readonly history?: StoreHistory;
  /**
   * The operator vouches that silent voters hold no promise from this node beyond what the
   * answering ones witnessed (`custody node --trust-store`): stop waiting for them. Never waives
   * the catch-up a contradicting answer asks for.
   */
  readonly waiveSilent?: boolean;
}

/**
 * The voters whose answers the gate counts: the configuration's voters, and while a membership
 * change is joint, the outgoing voters too (raft/core/confchange.ts).
 */
export interface GateVoters {
  readonly voters: readonly NodeId[];
  readonly votersOutgoing?: readonly NodeId[];
}

/**
 * The start-up check. Construct with the node's durable state as loaded, feed each voter's answer
 * with `answer()`, tell it each configuration that comes into force with `reconfigure()`, and ask
 * `mayVote()` before handling a vote request or starting an election.
 *
 * Following the configuration (NodeAdded makes a node a learner, then a voter; NodeRemoved takes
 * it out). The gate starts from the configuration the store holds (not the genesis) and is told
 * each one the node applies after. Which voters' answers it needs after a change, and why:
 *  - Rule (a) needs, with this node, a quorum of the voters in force now (of both halves while a
 *    change is joint, as an election does, raft/core/raft.ts voteOf). Safety rests on the intact
 *    store, not on the answers, so the availability argument of (a) is what matters, and it holds
 *    for the configuration in force: only its quorums elect. Once met, rule (a) stays met: a
 *    voter added later does not reopen a check that protects nothing the store does not hold.
 *  - Rule (a) does not ask a voter added after the start configuration, and counts it as having
 *    nothing to report: an intact store holds every vote it ever granted, to that voter too.
 *  - Rule (b) needs every voter in force now. A voter that was removed no longer counts: its
 *    answer, if it gave one, still counts as evidence and in the catch-up, but the gate stops
 *    waiting for it (a dead voter replaced by a new one would otherwise hold the node forever). A
 *    removed voter cannot lead the cluster again once it has applied its own removal (it stops
 *    campaigning: raft.ts promotable), and before that it can win only with a quorum of the new
 *    configuration: a voter of it that holds the committed change grants its vote only to a log at
 *    least as up to date, which by Leader Completeness and Log Matching holds the change too, so
 *    the candidate counts the new configuration's quorum (raft.ts logConf). Residual risk: a vote
 *    the lost history granted to a removed voter in that short window, while the node restored
 *    now was one of that quorum, is not witnessed by any voter still in force; the operator who
 *    restores a node while a removal is in progress stops the removed node first.
 *    Under (b) a voter added since is asked and waited for: a store restored from an old copy may predate
 *    its addition while the lost history holds a vote granted to it, so the gate cannot tell a
 *    voter added before this start from one added after. A voter added after this process
 *    started never received a promise from the run whose store this is (the lost history ended
 *    before it existed as a voter), so its answer, which leaves out what this run said, is null
 *    or shows only earlier runs. A new voter is waited for even after the
 *    node once voted under (b): the node's applied configuration may lag the cluster's while it
 *    catches up, so a voter it learns of late may be one the lost history voted for. The catch-up covers every answer received,
 *    from voters in force or since removed.
 *  - Contradictions stay proven whatever configuration follows: a proof is about the store.
 *  - Learners are not asked: a learner never campaigns and never leads, so it holds no vote and
 *    no acknowledgement from this node (acknowledgements go to the leader only).
 */
export class RollbackGate {
  private readonly answers = new Map<NodeId, Witness | null>();
  /** The other voters in force (both halves of a joint configuration), sorted. */
  private others: readonly NodeId[] = [];
  /** Each non-empty half of the configuration in force (one outside a joint change). */
  private halves: readonly (readonly NodeId[])[] = [];
  readonly history: StoreHistory;
  private readonly waiveSilent: boolean;
  /** The evidence once a rollback was proven: it stays proven whatever later answers say. */
  private proof: readonly RollbackEvidence[] | null = null;
  /** The node has once been allowed to vote under rule (b). */
  private ruleBMet = false;
  /** Rule (a)'s quorum of answers was once reached (it then stays reached, see above). */
  private quorumMet = false;
  /** Voters of the configurations in force at start: the only ones rule (a) asks. */
  private readonly startVoters = new Set<NodeId>();
  private current: Verdict;

  constructor(
    readonly self: NodeId,
    voters: readonly NodeId[] | GateVoters,
    readonly atStart: DurableState,
    opts: GateOptions = {},
  ) {
    this.history = opts.history ?? 'intact';
    this.waiveSilent = opts.waiveSilent === true;
    this.setVoters(Array.isArray(voters) ? { voters } : (voters as GateVoters), true);
    this.current = this.decide();
  }

  verdict(): Verdict {
    return this.current;
  }

  /** The other voters in force, whose answers the gate counts. */
  voters(): readonly NodeId[] {
    return this.others;
  }

  /**
   * A configuration came into force (see the class comment for what it changes). `atStart`: it is
   * still the store's own (the configuration the driver loaded), not a change applied since.
   */
  reconfigure(c: GateVoters, atStart = false): Verdict {
    this.setVoters(c, atStart);
    this.current = this.decide();
    return this.current;
  }

  private setVoters(c: GateVoters, atStart: boolean): void {
    const halves = [c.voters, c.votersOutgoing ?? []].map((h) => [...new Set(h)].sort()).filter((h) => h.length > 0);
    this.halves = halves;
    this.others = [...new Set(halves.flat())].filter((v) => v !== this.self).sort();
    if (atStart) for (const v of this.others) this.startVoters.add(v);
  }

  /** Rule (b) may apply: every voter in force is asked, those added since start too. */
  private asksEveryVoter(): boolean {
    return this.history === 'vote_lost' || this.proof !== null;
  }

  /** The voter `v` is asked (see the class comment). */
  private asks(v: NodeId): boolean {
    return this.startVoters.has(v) || this.asksEveryVoter();
  }

  /** True while `peer` is a voter that has not answered yet and is asked: keep asking it. */
  wantsAnswer(peer: NodeId): boolean {
    return this.others.includes(peer) && !this.answers.has(peer) && this.asks(peer);
  }

  /** A voter's answer (null: it has witnessed nothing from this node). Answers from non-voters, and repeated ones, are ignored. */
  answer(from: NodeId, saw: Witness | null): Verdict {
    // The first answer stands: a later one from the same voter holds the same earlier runs (header,
    // step 2), and the verdict does not move with repeats.
    if (!this.others.includes(from) || this.answers.has(from)) return this.current;
    this.answers.set(from, saw);
    this.current = this.decide();
    return this.current;
  }

  /** Answers still wanted for rule (a): the largest shortfall of any half (0: a quorum of each half answered). */
  private quorumShortfall(): number {
    let short = 0;
    for (const h of this.halves) {
      const have = h.filter((v) => v === this.self || this.answers.has(v) || !this.startVoters.has(v)).length;
      short = Math.max(short, Math.floor(h.length / 2) + 1 - have);
    }
    return short;
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
    if (evidence.length > 0) this.proof = evidence;
    const missing = this.others.filter((v) => !this.answers.has(v) && this.asks(v));
    if (this.proof) return { kind: 'rolled_back', evidence: this.proof, catchUp: { term, index }, missing };
    if (this.history === 'vote_lost') return missing.length === 0 ? { kind: 'consistent', missing } : { kind: 'waiting', missing, wanted: missing.length };
    const short = this.quorumMet ? 0 : this.quorumShortfall();
    if (short > 0) return { kind: 'waiting', missing, wanted: short };
    this.quorumMet = true;
    return { kind: 'consistent', missing };
  }
  /**
   * True while the gate holds to rule (b), every voter's answer and the catch-up past them, and
   * has not yet let the node vote under it. A node restarted meanwhile must hold to it again
   * (node-guard.ts persists this as RESTORE_PENDING_KEY).
   */
  restorePending(): boolean {
    return !this.ruleBMet && this.needsEveryVoter();
  }

  /**
   * Rule (b) applies: the store may have lost a vote. A store wiped with its term and vote kept
   * (`log_lost`) that peers contradict only about the log lost what the wipe says, not a vote; the
   * driver's recovery and the catch-up cover the log.
   */
  private needsEveryVoter(): boolean {
    const v = this.current;
    if (v.kind !== 'rolled_back') return this.history === 'vote_lost';
    return !(this.history === 'log_lost' && v.evidence.every((e) => e.what === 'log'));
  }

  /** May the node grant a vote or start an election now, with durable state `now`? */
  mayVote(now: DurableState): boolean {
    const v = this.current;
    let ok: boolean;
    if (v.kind === 'consistent') ok = true;
    else if (v.kind === 'waiting') ok = this.waiveSilent;
    else ok = (v.missing.length === 0 || this.waiveSilent || !this.needsEveryVoter()) && caughtUp(now, v.catchUp);
    if (ok && this.needsEveryVoter()) this.ruleBMet = true;
    return ok;
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
      return `${self}: stored state agrees with what ${v.missing.length === 0 ? 'every voter' : 'a quorum of voters'} witnessed; voting${v.missing.length > 0 ? ` (still asking ${v.missing.join(', ')})` : ''}`;
    case 'waiting':
      return `${self}: withholding votes until ${v.wanted} more voter(s) said what they saw from this node; missing ${v.missing.join(', ')}`;
    case 'rolled_back':
      return `${self}: stored state went backwards (${v.evidence.map((e) => `${e.witness} saw ${e.what === 'term' ? `term ${e.saw.term} > stored ${e.local.term}` : e.what === 'vote' ? `a vote for ${e.saw.vote} in term ${e.saw.term}, stored vote ${e.local.vote ?? 'none'}` : `index ${e.saw.ackIndex} acknowledged in term ${e.saw.term}, stored last index ${e.local.lastIndex}`}`).join('; ')}); withholding votes until ${v.missing.length > 0 ? `every voter answered (missing ${v.missing.join(', ')}) and ` : ''}past term ${v.catchUp.term} and index ${v.catchUp.index}`;
  }
}
