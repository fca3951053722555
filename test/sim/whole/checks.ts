/**
 * The whole-node mode's checkers, run after every step against every node's real store, driver
 * and ledger application:
 *
 * - election-safety: at most one leader per term (driver status);
 * - log-matching: an entry at one (index, term) has the same prefix on every node that stored it
 *   (chained hashes over what each node's store persisted, seen at every persist);
 * - leader-completeness: a new leader's stored log holds the last entry committed before it led;
 * - state-machine-safety: at each Raft index the same committed entry; at each ledger index the
 *   same command and the same ledger state root on every node, including a node that replaced its
 *   state from a snapshot;
 * - acked-proposal-lost: a write acknowledged to a client is in the entry applied at its index
 *   (and the liveness phase ends with a leader that applied every acknowledged index);
 * - false-alarm: no split-brain alarm (two leaders, two roots), no equivocation evidence, and no
 *   rollback alarm on a node whose store never went backwards.
 */
import type { Entry, NodeId } from '../../../raft/core/types.js';
import { Hasher, chainOf } from '../hash.js';
import { fail } from '../checkers.js';

const TERM_SPAN = 0x20_0000;
const key = (index: number, term: number): number => index * TERM_SPAN + term;

export function bytesDigest(b: Uint8Array): string {
  return new Hasher(0x5eed).bytes(b).hex();
}

export class WholeCheckers {
  private readonly leaders = new Map<number, NodeId>();
  /** (index, term) -> chain: the first store that held an entry fixes its prefix. */
  private readonly entryChains = new Map<number, number>([[key(1, 1), 0]]);
  private readonly committedChain: number[] = [];
  committedHigh = 0;
  /** ledger index -> the command applied there and the state root after it. */
  private readonly ledger: ({ readonly digest: string; readonly root: string } | undefined)[] = [];
  /** Raft index -> digests of the commands applied from the entry there, in order. */
  private readonly raftApplied = new Map<number, string[]>();
  /** Acknowledged writes: client id -> highest acknowledged (sequence, Raft index). */
  private readonly acked = new Map<string, { seq: number; index: number }>();

  electionsSeen(): number {
    return this.leaders.size;
  }

  leader(id: NodeId, term: number, chainAt: (i: number) => number | undefined, snapIndex: number): void {
    const had = this.leaders.get(term);
    if (had === id) return;
    if (had !== undefined) fail('election-safety', `two leaders in term ${term}: ${had} and ${id}`);
    this.leaders.set(term, id);
    // Everything committed so far was committed in earlier terms (a commit in `term` needs
    // acknowledgements of this leader's entries, which take at least one more step).
    const need = this.committedHigh;
    if (need === 0 || need <= snapIndex) return;
    const mine = chainAt(need);
    if (mine === undefined) fail('leader-completeness', `${id} leads term ${term} without index ${need}, committed before`);
    if (mine !== this.committedChain[need]) fail('leader-completeness', `${id} leads term ${term} with a different entry at index ${need} than was committed there`);
  }

  /** The chain of an entry a snapshot ends at (some store held it before). */
  chainOfSnapshot(id: NodeId, index: number, term: number): number {
    const c = this.entryChains.get(key(index, term));
    if (c === undefined) fail('log-matching', `${id} stored a snapshot at index ${index} term ${term}, an entry no store ever held`);
    return c;
  }

  /** `id` persisted `entries` after `prev` (the chain of the entry before the first). */
  stored(id: NodeId, prev: number, entries: readonly Entry[], out: Map<number, number>): void {
    let c = prev;
    for (const e of entries) {
      c = chainOf(c, e);
      out.set(e.index, c);
      const k = key(e.index, e.term);
      const had = this.entryChains.get(k);
      if (had === undefined) this.entryChains.set(k, c);
      else if (had !== c) fail('log-matching', `${id} stored index ${e.index} term ${e.term} with a prefix that differs from another store's`);
    }
  }

  /** `id` reports commit index `commit`; `chainAt` reads its stored chains. */
  committed(id: NodeId, commit: number, chainAt: (i: number) => number | undefined): void {
    const top = Math.min(commit, this.committedHigh);
    const mine = top > 0 ? chainAt(top) : undefined;
    if (mine !== undefined && mine !== this.committedChain[top]) fail('state-machine-safety', `${id} committed index ${top} holding a different entry than was committed there`);
    for (let i = this.committedHigh + 1; i <= commit; i++) {
      const c = chainAt(i);
      if (c === undefined) return; // not yet in this node's durable log view; another node will report it
      this.committedChain[i] = c;
      this.committedHigh = i;
    }
  }

  /**
   * `id`'s ledger applied `command`, the `k`-th command it applied from the entry at Raft index
   * `raftIndex`, as ledger index `ledgerIndex`, giving `root`.
   */
  applied(id: NodeId, raftIndex: number, k: number, command: Uint8Array, ledgerIndex: number, root: string): void {
    const digest = bytesDigest(command);
    const had = this.ledger[ledgerIndex];
    if (had === undefined) this.ledger[ledgerIndex] = { digest, root };
    else if (had.digest !== digest) fail('state-machine-safety', `${id} applied a different command at ledger index ${ledgerIndex} (Raft index ${raftIndex}) than another node`);
    else if (had.root !== root) fail('state-machine-safety', `${id} has a different ledger state root after ledger index ${ledgerIndex}`);
    let list = this.raftApplied.get(raftIndex);
    if (list === undefined) {
      list = [];
      this.raftApplied.set(raftIndex, list);
    }
    const at = list[k];
    if (at === undefined && k === list.length) list.push(digest);
    else if (at !== digest) fail('state-machine-safety', `${id} applied a different entry at Raft index ${raftIndex} than another node`);
  }

  /** `id` replaced its ledger from a snapshot ending at ledger index `ledgerIndex` with `root`. */
  restored(id: NodeId, ledgerIndex: number, root: string): void {
    const had = this.ledger[ledgerIndex];
    if (had !== undefined && had.root !== root) fail('state-machine-safety', `${id} restored a snapshot at ledger index ${ledgerIndex} whose state root differs from the applied one`);
  }

  /** A client was told its command was applied at Raft index `index`. */
  ack(id: NodeId, client: string, seq: number, index: number, command: Uint8Array): void {
    const list = this.raftApplied.get(index);
    if (list === undefined || !list.includes(bytesDigest(command))) {
      fail('acked-proposal-lost', `${id} acknowledged client ${client} seq ${seq} at Raft index ${index}, but the entry applied there does not carry it`);
    }
    const a = this.acked.get(client);
    if (a === undefined || seq > a.seq) this.acked.set(client, { seq, index });
  }

  highestAckedIndex(): number {
    let m = 0;
    for (const a of this.acked.values()) m = Math.max(m, a.index);
    return m;
  }
}
