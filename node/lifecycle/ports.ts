/**
 * What the lifecycle needs from the world, as interfaces with in-memory twins (STYLE.md: every
 * outside dependency is an interface), so the same orchestration runs in one process for tests
 * and across daemons in production.
 *
 *   LedgerPort       this node's replica of the ledger: read it, watch it, propose to it
 *   KernelPort       this node's secret kernel (kernel/client.ts KernelClient satisfies it)
 *   Exchange         content-addressed blobs between nodes (DKG round-1 packages, sealed round-2
 *                    packages, public key packages, transport-key statements). Untrusted: every
 *                    blob is checked against a cid in the log or a signature by a node identity key
 *                    before use, and round-2 packages are sealed to the recipient kernel (HPKE), so
 *                    whoever carries them learns nothing.
 *   ParticipantPort  what a coordinator asks of another node's participant (nonce commitment,
 *                    signature share); the participant re-checks everything against its own replica.
 */
import type { LedgerState, OpRecord } from '../../ledger/state.js';
import type { LedgerEvent, LedgerEntry } from '../../ledger/events.js';
import type { ApplyResult } from '../../ledger/apply.js';
import type { RequestBody, ResponseBody, SigningCommitment } from '../../kernel/wire.js';
import type { LedgerVerdict } from '../ledger-app.js';
import type { ApprovalBook, BookCommand } from '../approvals/book.js';

export interface LedgerPort {
  readonly nodeId: string;
  /** The state this node has applied (never ahead of what is committed). */
  state(): LedgerState;
  /** Called after each applied entry. Returns an unsubscribe function. */
  subscribe(l: (entry: LedgerEntry, result: ApplyResult, state: LedgerState) => void): () => void;
  /**
   * Propose an event stamped with this node's clock and wait until this node applied it.
   * Resolves with the ledger's verdict; rejects with a CustodyError when the proposal itself
   * failed (no leader, timeout, shutting down).
   */
  propose(event: LedgerEvent): Promise<LedgerVerdict>;
  /** Whether this node currently leads the Raft group (the coordinator runs only there). */
  isLeader(): boolean;
  /** Applied governance decisions after ledger index `index` (kernels catch up from these). */
  decisionsAfter(index: number): readonly { index: number; stampMs: number; decision: Uint8Array }[];
  /** Raft status for operators. */
  raftStatus(): { term: number; leader: string | null; commit: number; applied: number; root: string };
  /**
   * An act in flight or ended: ended acts may have left `state()` for the archive
   * (ledger/archive.ts), and are read from it here. Absent where nothing is archived.
   */
  act?(opId: string): Promise<OpRecord | undefined>;
  /** The last `n` acts that ended and left `state()` for the archive, oldest first. */
  endedActs?(n: number): Promise<readonly OpRecord[]>;
  /** The replicated approval book (node/approvals/book.ts) and proposals to it, where the ledger carries one. */
  readonly approvals?: { readonly book: ApprovalBook; propose(c: BookCommand): Promise<LedgerVerdict> };
}

export interface KernelPort {
  call<K extends ResponseBody['kind']>(body: RequestBody, expect: K): Promise<Extract<ResponseBody, { kind: K }>>;
}

export interface Exchange {
  put(key: string, value: Uint8Array): Promise<void>;
  get(key: string): Promise<Uint8Array | undefined>;
  /** Called after any put (any node's). */
  watch(l: (key: string) => void): () => void;
}

/** One presigned nonce pair per message of the act, counters strictly ascending. */
export interface NonceOffer {
  readonly nodeId: string;
  readonly identifier: string;
  readonly nonces: readonly { readonly counter: number; readonly hiding: Uint8Array; readonly binding: Uint8Array }[];
}

export interface ParticipantPort {
  readonly nodeId: string;
  /** Fresh presigned nonce commitments for the act's key epoch, one per message of the act (RFC 9591 §5.1 commit). */
  commit(opId: string): Promise<NonceOffer>;
  /** This kernel's signature shares for the act under its ledger permit, one per message with that message's list (RFC 9591 §5.2 sign). */
  sign(opId: string, lists: readonly (readonly SigningCommitment[])[], counters: readonly number[]): Promise<{ identifier: string; shares: Uint8Array[] }>;
}

/** In-memory Exchange twin: one map shared by the nodes of one process. */
export class MemoryExchange implements Exchange {
  private readonly blobs = new Map<string, Uint8Array>();
  private readonly watchers = new Set<(key: string) => void>();
  /** Bounds memory: ceremonies are few and blobs small (limits.kernel.participantsMax). */
  static readonly entriesMax = 100_000;

  async put(key: string, value: Uint8Array): Promise<void> {
    if (this.blobs.size >= MemoryExchange.entriesMax && !this.blobs.has(key)) throw new RangeError('exchange is full');
    this.blobs.set(key, new Uint8Array(value));
    for (const w of this.watchers) queueMicrotask(() => w(key));
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    return this.blobs.get(key);
  }

  watch(l: (key: string) => void): () => void {
    this.watchers.add(l);
    return () => this.watchers.delete(l);
  }
}
