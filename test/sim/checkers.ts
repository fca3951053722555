/**
 * The safety properties of Raft (paper §5.2–§5.4, Figure 3), checked against the whole simulated
 * cluster after every event, plus the client-visible ones: an acknowledged proposal is never lost,
 * and a linearizable read sees every write acknowledged before it began.
 *
 * Each check is incremental (O(1) or O(new entries) per event) so it can run after every step.
 * The first violation throws a SimViolation naming its checker.
 */
import type { Entry, NodeId } from '../../raft/core/types.js';
import type { AppState } from './app.js';
import type { Chained, SimLog } from './log.js';

export type CheckerName =
  | 'election-safety' // at most one leader per term (§5.2)
  | 'log-matching' // same index and term => identical prefix (§5.3)
  | 'leader-completeness' // a committed entry is in every later leader's log (§5.4)
  | 'state-machine-safety' // every node applies the same entry at each index (§5.4.3)
  | 'acked-proposal-lost' // an acknowledged client proposal stays applied everywhere
  | 'linearizable-read' // a ReadIndex read sees every write acknowledged before it began (thesis §6.4)
  | 'liveness' // after faults heal, a leader commits a new proposal within the bound
  | 'core-threw' // the core raised an exception (a broken internal invariant)
  | 'driver-contract' // the core's Ready broke the documented driver contract
  | 'false-alarm' // whole-node mode: a split-brain, equivocation or rollback alarm no fault explains
  | 'node-fatal' // whole-node mode: the driver stopped the node (a failed write, a broken assertion)
  | 'recovery-durable'; // whole-node mode: a node that reported its recovery done restarted still recovering

export class SimViolation extends Error {
  override readonly name = 'SimViolation';
  constructor(
    readonly checker: CheckerName,
    readonly detail: string,
  ) {
    super(`${checker}: ${detail}`);
  }
}

export function fail(checker: CheckerName, detail: string): never {
  throw new SimViolation(checker, detail);
}

const TERM_SPAN = 0x20_0000; // terms stay far below 2^21 in any simulated run

export class Checkers {
  /** term -> the one node that led it. */
  private readonly leaders = new Map<number, NodeId>();
  /** (index, term) -> chain: the first log that held that entry fixes its whole prefix. */
  private readonly entryChains = new Map<number, number>();
  /** committed[i] = chain of the entry committed at index i; dense up to committedHigh. */
  private readonly committedChain: number[] = [0];
  /** The term in which each index was first seen committed. */
  private readonly committedInTerm: number[] = [0];
  /** For each term, the highest index first seen committed in it. */
  private readonly highestCommittedInTerm = new Map<number, number>();
  committedHigh = 0;
  /** The entry digest and state root every node must have after applying index i. */
  private readonly appliedDigest: number[] = [];
  private readonly appliedRoot: number[] = [];
  /** client -> its highest acknowledged sequence number and the index it was applied at. */
  private readonly acked = new Map<number, { seq: number; index: number }>();

  /**
   * `bootstrapIndex` 1: the cluster's logs start with the membership snapshot at index 1, term 1
   * (storage.ts), the same empty prefix on every node; 0: logs start empty.
   */
  constructor(bootstrapIndex: 0 | 1 = 1) {
    if (bootstrapIndex === 1) this.entryChains.set(this.key(1, 1), 0);
  }

  electionsSeen(): number {
    return this.leaders.size;
  }

  /** Node `id` acts as leader of `term` (by its status, or by sending leader-only messages). */
  leader(id: NodeId, term: number): void {
    const had = this.leaders.get(term);
    if (had === undefined) this.leaders.set(term, id);
    else if (had !== id) fail('election-safety', `two leaders in term ${term}: ${had} and ${id}`);
  }

  leaderOf(term: number): NodeId | undefined {
    return this.leaders.get(term);
  }

  private key(index: number, term: number): number {
    return index * TERM_SPAN + term;
  }

  /** Entries just written to `id`'s log: any other log holding the same (index, term) must agree on the prefix. */
  written(id: NodeId, entries: readonly Chained[]): void {
    for (const e of entries) {
      const k = this.key(e.index, e.term);
      const c = this.entryChains.get(k);
      if (c === undefined) this.entryChains.set(k, e.chain);
      else if (c !== e.chain) fail('log-matching', `${id} holds index ${e.index} term ${e.term} with a prefix that differs from another log's`);
    }
  }

  /** The chain of the entry a snapshot ends at; that entry must have been in some log. */
  snapshotChain(id: NodeId, index: number, term: number): number {
    if (index === 0) return 0;
    const c = this.entryChains.get(this.key(index, term));
    if (c === undefined) fail('log-matching', `${id} received a snapshot at index ${index} term ${term}, an entry no log ever held`);
    return c;
  }

  /**
   * `id` reports commit index `commit` while in `term`. Every index up to it is now committed;
   * a commit index that names a different entry than an earlier commit is a safety violation.
   */
  committed(id: NodeId, commit: number, term: number, log: SimLog): void {
    const top = Math.min(commit, this.committedHigh);
    // Chains cover prefixes: agreeing at `top` means agreeing everywhere below it.
    const at = Math.max(top, log.base());
    if (at <= top && at > 0) {
      const mine = log.chainAt(at);
      if (mine === undefined) fail('driver-contract', `${id} commit ${commit} is past its last index ${log.lastIndex()}`);
      if (mine !== this.committedChain[at]) fail('state-machine-safety', `${id} committed index ${at} holding a different entry than was committed there before`);
    }
    for (let i = this.committedHigh + 1; i <= commit; i++) {
      const c = log.chainAt(i);
      if (c === undefined) fail('driver-contract', `${id} commit ${commit} but its log ends at ${log.lastIndex()} (first ${log.base() + 1})`);
      this.committedChain[i] = c;
      this.committedInTerm[i] = term;
    }
    if (commit > this.committedHigh) {
      this.committedHigh = commit;
      const h = this.highestCommittedInTerm.get(term) ?? 0;
      if (commit > h) this.highestCommittedInTerm.set(term, commit);
    }
  }

  /**
   * Leader Completeness (§5.4): every entry committed in a term before `term` is in the log of
   * the leader of `term`. Checked on the leader's log as written to its disk.
   */
  leaderComplete(id: NodeId, term: number, log: SimLog): void {
    let need = 0;
    for (const [t, idx] of this.highestCommittedInTerm) if (t < term && idx > need) need = idx;
    if (need === 0) return;
    if (need > log.lastIndex()) fail('leader-completeness', `${id} leads term ${term} with last index ${log.lastIndex()} but index ${need} was committed before`);
    const at = Math.max(need, log.base());
    const mine = log.chainAt(at);
    const want = this.committedChain[at];
    if (at <= this.committedHigh && mine !== want) {
      fail('leader-completeness', `${id} leads term ${term} without the entry committed at index ${at} in term ${this.committedInTerm[at]}`);
    }
  }

  /**
   * State Machine Safety (§5.4.3): the entry a node applies at an index, and the state root after
   * it, are the same on every node.
   */
  applied(id: NodeId, e: Entry, digest: number, root: number): void {
    const d = this.appliedDigest[e.index];
    if (d === undefined) {
      this.appliedDigest[e.index] = digest;
      this.appliedRoot[e.index] = root;
      return;
    }
    if (d !== digest) fail('state-machine-safety', `${id} applied a different entry at index ${e.index} (term ${e.term}) than another node`);
    if (this.appliedRoot[e.index] !== root) fail('state-machine-safety', `${id} has a different state root after index ${e.index}`);
  }

  /** A node replaced its state from a snapshot at `index`: its root must match what others had there. */
  restored(id: NodeId, index: number, root: number): void {
    const r = this.appliedRoot[index];
    if (r !== undefined && r !== root) fail('state-machine-safety', `${id} restored a snapshot at index ${index} whose state root differs from the applied one`);
  }

  /** A client saw its proposal applied. */
  ack(client: number, seq: number, index: number): void {
    const a = this.acked.get(client);
    if (a === undefined || seq > a.seq) this.acked.set(client, { seq, index });
  }

  /** Every acknowledged proposal at or below a node's applied index is in its state. */
  ackedKept(id: NodeId, app: AppState): void {
    for (const [client, a] of this.acked) {
      if (app.applied < a.index) continue;
      const s = app.sessions.get(client);
      if (s === undefined || s.seq < a.seq) {
        fail('acked-proposal-lost', `${id} applied through ${app.applied} but lacks client ${client} seq ${a.seq}, acknowledged at index ${a.index}`);
      }
    }
  }

  /** client -> highest acknowledged sequence number, as of now (what a read issued now must see). */
  ackedNow(): Map<number, number> {
    const m = new Map<number, number>();
    for (const [c, a] of this.acked) m.set(c, a.seq);
    return m;
  }

  /**
   * A read issued when `ackedAtIssue` had been acknowledged, answered by a ReadIndex read point
   * and served from `app` once it applied through that point (thesis §6.4), sees all of them.
   */
  readSeesAcked(id: NodeId, readId: number, ackedAtIssue: ReadonlyMap<number, number>, readIndex: number, app: AppState): void {
    for (const [client, seq] of ackedAtIssue) {
      const s = app.sessions.get(client);
      if (s === undefined || s.seq < seq) {
        fail('linearizable-read', `${id} served read ${readId} at read index ${readIndex} (applied ${app.applied}) without client ${client} seq ${seq}, acknowledged before the read began`);
      }
    }
  }

  highestAckedIndex(): number {
    let m = 0;
    for (const a of this.acked.values()) m = Math.max(m, a.index);
    return m;
  }
}
