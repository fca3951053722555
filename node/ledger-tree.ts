/**
 * The RFC 9162 Merkle tree over a node's applied ledger entries, kept beside the ledger state by
 * LedgerApp. Leaf i is `entryLeafData` (ledger/tlog/ledger-log.ts) of the i-th entry the ledger
 * applied into its hash chain (ledger/apply.ts: accepted, or recorded as a Denied act or as
 * equivocation evidence; `state.height` counts them). Entries the ledger refused without recording
 * them, and replays, change nothing and are not leaves: so an entry's inclusion proves the ledger
 * took it, and an ActSigningSetFixed in the tree is one the ledger accepted (it is never recorded
 * as a refusal). The tree's size is always the ledger's height.
 *
 * What is stored (keys relative to the application's prefix):
 *   tlog/state                       hot: CBOR { base, tree } -- the CompactTree (size and right
 *                                    edge) and the size it was installed at (0, or a snapshot's)
 *   archive/tlog/node/<ll>/<i:16>    cold: the root of the perfect subtree of 2^ll leaves starting
 *                                    at leaf i * 2^ll, written as each append completes it
 *   archive/tlog/entry/<index:16>    cold: CBOR { leaf, data }: the leaf position and leaf data of
 *                                    applied entries of the KEPT_ENTRY_TYPES, by ledger index (what
 *                                    a kernel certificate and a proven evidence bundle include)
 *   archive/tlog/ptr/...             cold: ledger indexes of the entries a proven evidence bundle
 *                                    names besides an act's own (node/lifecycle/evidence-proof.ts):
 *       key/<hex keyId>/<epoch:8>/published   the KeyObjectPublished of a key epoch
 *       key/<hex keyId>/<epoch:8>/activated   its KeyActivated, KeyRefreshed or KeyReshared decision
 *       roster/<index:16>                     for the roster entry at <index> (ClusterGenesis or an
 *                                             ApproversChanged decision), the one before it (or null)
 *       denial/<hex opId>                     the ActDenialRecorded of a Denied act
 *   archive/tlog/leaf/<leaf:16>      cold: the leaf data (ledger-log.ts entryLeafData) of every applied
 *                                    entry but ClockTick, by leaf position: what the audit export
 *                                    (node/admin/audit.ts) reads, each with its leaf hash
 *   The ledger index of the roster entry in force is kept in tlog/state (`roster`, absent when
 *   unknown: a node that joined by snapshot knows it from the next roster change on).
 * The cold keys sit under the ledger's archive prefix (raft/storage/leveldb.ts COLD_PREFIX): they
 * grow with the history, are read on demand and never held in memory, and a restore to the empty
 * state deletes them with the archive.
 *
 * Crash safety. Every write an append makes is returned to LedgerApp.apply, which returns it to the
 * driver with the entry's other writes; the driver persists a batch's writes atomically with the
 * applied index. So after any crash the stored tree is exactly the tree of the applied entries:
 * its size equals the ledger's height (`load` refuses a store where they differ,
 * STORAGE_CORRUPT). Node hashes of the last two batches are also kept in memory until the driver's
 * next batches, because the driver acknowledges a batch before its write completes.
 *
 * Snapshots. A node that installs a snapshot holds no leaves before it. The snapshot carries the
 * tree's right edge (CompactTree bytes: size and one hash per set bit of the size), and the
 * installing node stores those hashes as nodes and takes the snapshot's size as its `base`. The
 * right edge at size N is the set of maximal aligned perfect subtrees of [0, N); every root at a
 * size S >= N, and every inclusion proof of a leaf i >= N in such a tree, reads only perfect
 * subtrees that are either one of those (the common prefix of N's and S's (or i's) binary
 * decompositions) or end after N, and so were completed by appends this node made itself. So the
 * node computes, and cosigns, exactly the sizes from its base up; it refuses sizes below it, and
 * proofs of leaves below it (another node then serves as collector).
 *
 * Why the right edge may travel in the snapshot without the state root covering it: the snapshot
 * is the leader's statement of the whole state, and this node already takes the state from it. A
 * leader that lied about the right edge would make this node cosign roots no honest node computes
 * for those sizes: its signatures then fail over the honest collectors' texts (counted as
 * divergence, node/checkpoints.ts) and it adds nothing to a certificate, which needs a majority of
 * voters each computing the root from its own replica. `restore` also requires the edge's size to
 * be the snapshot state's height.
 *
 * A node never cosigns two roots for one size: a root is computed from stored hashes that are
 * written once per (level, index) and only by the append that completes them, so asking twice
 * returns the same root.
 */
import { decode, encode } from '../ledger/encoding.js';
import { CustodyError, assert } from '../proto/errors.js';
import { CompactTree, HASH_BYTES, consistencyProof, emptyRoot, inclusionProof, nodeHash, type NodeReader } from '../ledger/tlog/merkle.js';
import { entryLeafData, entryLeafHash } from '../ledger/tlog/ledger-log.js';
import { decodeEvent, type LedgerEntry, type EventType } from '../ledger/events.js';
import type { AppWrite } from '../raft/storage/leveldb.js';

export const TREE_STATE_KEY = 'tlog/state';
const NODE_PREFIX = 'archive/tlog/node/';
const ENTRY_PREFIX = 'archive/tlog/entry/';
const LEAF_PREFIX = 'archive/tlog/leaf/';
const leafKey = (leaf: number): string => `${LEAF_PREFIX}${String(leaf).padStart(16, '0')}`;

/** Entries whose leaf data is not kept for the audit export: the ledger's clock ticks (no one's act or decision). */
export const UNKEPT_LEAF_TYPES: readonly EventType[] = ['ClockTick'];
export const nodeKey = (level: number, index: number): string => `${NODE_PREFIX}${String(level).padStart(2, '0')}/${String(index).padStart(16, '0')}`;
const entryKey = (index: number): string => `${ENTRY_PREFIX}${String(index).padStart(16, '0')}`;

/** The entries a certificate includes: their leaf data is kept so a collector can hand them to kernels. */
export const KEPT_ENTRY_TYPES: readonly EventType[] = [
  'ActSubmitted', 'ActSigningSetFixed', 'ActPermitIssued', 'ActExecuted', 'ActPublished', 'ActSettled', 'ActAborted', 'ActDenialRecorded',
  'ClusterGenesis', 'GovernanceDecision', 'KeyObjectPublished', 'EquivocationEvidence',
];

const PTR_PREFIX = 'archive/tlog/ptr/';
export const keyPointer = (keyId: string, epoch: number, what: 'published' | 'activated'): string =>
  `${PTR_PREFIX}key/${Buffer.from(keyId, 'utf8').toString('hex')}/${String(epoch).padStart(8, '0')}/${what}`;
const ROSTER_LATEST = 'roster';
export const rosterPointer = (index: number): string => `${PTR_PREFIX}roster/${String(index).padStart(16, '0')}`;
export const denialPointer = (opId: string): string => `${PTR_PREFIX}denial/${Buffer.from(opId, 'utf8').toString('hex')}`;

/** The pointers an applied entry sets (see the header), as [key, ledger index] pairs; `latestRoster` is read for a roster change. */
function pointersOf(entry: LedgerEntry, type: EventType): { key: string; index: number | null }[] {
  if (type !== 'ClusterGenesis' && type !== 'GovernanceDecision' && type !== 'KeyObjectPublished' && type !== 'ActDenialRecorded') return [];
  const e = decodeEvent(entry.event);
  if (e.type === 'ActDenialRecorded') return [{ key: denialPointer(e.opId), index: entry.index }];
  if (e.type === 'KeyObjectPublished') return [{ key: keyPointer(e.keyId, e.keyEpoch, 'published'), index: entry.index }];
  if (e.type === 'ClusterGenesis') return [{ key: ROSTER_LATEST, index: entry.index }];
  if (e.type !== 'GovernanceDecision') return [];
  const a = e.decision.body.action;
  if (a.kind === 'KeyActivated' || a.kind === 'KeyRefreshed' || a.kind === 'KeyReshared') return [{ key: keyPointer(a.keyId, a.keyEpoch, 'activated'), index: entry.index }];
  if (a.kind === 'ApproversChanged') return [{ key: ROSTER_LATEST, index: entry.index }];
  return [];
}

/** Where the cold keys are read (the node's LevelDB; a map in tests), keys relative to the application. */
export interface TreeStore {
  getMany(keys: readonly string[]): Promise<(Uint8Array | undefined)[]>;
}

/** The perfect subtrees of [0, size), largest first: (level, index) of each set bit of size. */
export function edgeNodes(size: number): { level: number; index: number }[] {
  const out: { level: number; index: number }[] = [];
  let start = 0;
  for (let level = 53; level >= 0; level--) {
    const w = 2 ** level;
    if (Math.floor(size / w) % 2 === 1) {
      out.push({ level, index: start / w });
      start += w;
    }
  }
  return out;
}

export class LedgerTree {
  /** null: the store holds a ledger state but no tree (written before the tree existed); nothing is computable. */
  private tree: CompactTree | null = new CompactTree();
  private base = 0;
  /** Ledger index of the entry that set the approver roster in force; null when unknown. */
  private rosterIndex: number | null = null;
  /** Without a store (tests, the simulator): every node hash in memory. */
  private readonly memory: Map<string, Uint8Array> | null;
  /** Node hashes and entries of this batch and the one before (maybe not yet on disk). */
  private recent = new Map<string, Uint8Array>();
  private previous = new Map<string, Uint8Array>();

  constructor(private readonly store: TreeStore | null) {
    this.memory = store === null ? new Map() : null;
  }

  /** Leaves (the ledger's height), or null when the tree is unknown. */
  get size(): number | null {
    return this.tree?.size ?? null;
  }

  /** The smallest size this node can compute a root at. */
  get baseSize(): number {
    return this.base;
  }

  load(get: (key: string) => Uint8Array | undefined, height: number): void {
    const b = get(TREE_STATE_KEY);
    this.recent = new Map();
    this.previous = new Map();
    if (b === undefined) {
      // A store from before the tree: its leaves are not known, so it computes nothing (see header).
      this.tree = height === 0 ? new CompactTree() : null;
      this.base = 0;
      this.rosterIndex = null;
      return;
    }
    const { base, tree, roster } = decodeTreeState(b);
    this.rosterIndex = roster;
    if (tree.size !== height) throw new CustodyError('STORAGE_CORRUPT', `the stored Merkle tree holds ${tree.size} leaves and the ledger's chain ${height} entries`);
    this.tree = tree;
    this.base = base;
  }

  /** A new batch begins: what the batch before the last wrote is durable by now. */
  newBatch(): void {
    this.previous = this.recent;
    this.recent = new Map();
  }

  /**
   * Appends the leaf of an entry the ledger chained as its `height`-th; returns the writes that
   * store it (the caller adds them to the entry's writes). `stateWrite`: whether to write
   * tlog/state now (outside a batch).
   */
  append(entry: LedgerEntry, type: EventType | null, height: number, stateWrite: boolean): AppWrite[] {
    const writes: AppWrite[] = [];
    if (this.tree === null) return writes;
    assert(this.tree.size === height - 1, `Merkle tree of ${this.tree.size} leaves appends the ${height}-th chained entry`);
    const leaf = this.tree.size;
    for (const n of this.tree.append(entryLeafHash(entry))) this.put(writes, nodeKey(n.level, n.index), n.hash);
    if (type !== null && KEPT_ENTRY_TYPES.includes(type)) this.put(writes, entryKey(entry.index), encode({ leaf, data: entryLeafData(entry) }));
    if (type !== null) {
      for (const p of pointersOf(entry, type)) {
        if (p.key === ROSTER_LATEST) {
          // The roster entry before this one, for an act older than this change (a chain, newest first).
          this.put(writes, rosterPointer(entry.index), encode(this.rosterIndex));
          this.rosterIndex = entry.index;
        } else {
          this.put(writes, p.key, encode(p.index));
        }
      }
    }
    if (type !== null && !UNKEPT_LEAF_TYPES.includes(type)) this.put(writes, leafKey(leaf), entryLeafData(entry));
    if (stateWrite) writes.push(this.stateWrite());
    return writes;
  }

  private put(writes: AppWrite[], key: string, value: Uint8Array): void {
    writes.push({ key, value });
    if (this.memory !== null) this.memory.set(key, value);
    else this.recent.set(key, value);
  }

  stateWrite(): AppWrite {
    return { key: TREE_STATE_KEY, value: this.tree === null ? null : encodeTreeState(this.base, this.tree, this.rosterIndex) };
  }

  /** The right edge a snapshot carries (undefined when the tree is unknown). */
  snapshotEdge(): Uint8Array | undefined {
    return this.tree?.toBytes();
  }

  /**
   * Takes a snapshot's right edge at `height` (or none: an empty restore starts a new tree,
   * a snapshot without one leaves the tree unknown). Returns the writes.
   */
  restore(edge: Uint8Array | undefined, height: number): AppWrite[] {
    this.recent = new Map();
    this.previous = new Map();
    this.memory?.clear();
    this.rosterIndex = null;
    if (edge === undefined) {
      this.tree = height === 0 ? new CompactTree() : null;
      this.base = 0;
      return [this.stateWrite()];
    }
    let tree: CompactTree;
    try {
      tree = CompactTree.fromBytes(edge);
    } catch (e) {
      throw new CustodyError('STORAGE_CORRUPT', `ledger snapshot: Merkle tree edge: ${(e as Error).message}`);
    }
    if (tree.size !== height) throw new CustodyError('STORAGE_CORRUPT', `ledger snapshot: its Merkle tree edge has ${tree.size} leaves and its state's chain ${height} entries`);
    this.tree = tree;
    this.base = tree.size;
    const writes: AppWrite[] = [];
    edgeNodes(tree.size).forEach((n, i) => this.put(writes, nodeKey(n.level, n.index), edge.slice(9 + HASH_BYTES * i, 9 + HASH_BYTES * (i + 1))));
    writes.push(this.stateWrite());
    return writes;
  }

  private async read(keys: readonly string[]): Promise<Map<string, Uint8Array>> {
    const out = new Map<string, Uint8Array>();
    const missing: string[] = [];
    for (const k of keys) {
      const v = this.memory?.get(k) ?? this.recent.get(k) ?? this.previous.get(k);
      if (v !== undefined) out.set(k, v);
      else missing.push(k);
    }
    if (missing.length > 0 && this.store !== null) {
      const got = await this.store.getMany(missing);
      missing.forEach((k, i) => {
        const v = got[i];
        if (v !== undefined) out.set(k, v);
      });
    }
    return out;
  }

  private computable(size: number, what: string): void {
    const t = this.tree;
    if (t === null) throw new CustodyError('ENTRY_NOT_INCLUDED', `${what}: this node's store predates its Merkle tree`);
    if (!Number.isSafeInteger(size) || size < this.base || size > t.size) {
      throw new CustodyError('ENTRY_NOT_INCLUDED', `${what}: this node computes sizes ${this.base}..${t.size}, not ${size}`);
    }
  }

  /** The root of the first `size` leaves (base <= size <= height). */
  async rootAt(size: number): Promise<Uint8Array> {
    this.computable(size, 'tree root');
    const t = this.tree as CompactTree;
    if (size === t.size) return t.root();
    if (size === 0) return emptyRoot();
    const nodes = edgeNodes(size);
    const got = await this.read(nodes.map((n) => nodeKey(n.level, n.index)));
    const hashes = nodes.map((n) => {
      const h = got.get(nodeKey(n.level, n.index));
      if (h === undefined) throw new CustodyError('STORAGE_CORRUPT', `Merkle tree node (${n.level}, ${n.index}) is not stored`);
      return h;
    });
    let r = hashes[hashes.length - 1]!;
    for (let i = hashes.length - 2; i >= 0; i--) r = nodeHash(hashes[i]!, r);
    return r;
  }

  /** The RFC 9162 inclusion proof of leaf `leafIndex` in the tree of `size` leaves. */
  async proof(leafIndex: number, size: number): Promise<Uint8Array[]> {
    this.computable(size, 'inclusion proof');
    if (!Number.isSafeInteger(leafIndex) || leafIndex < this.base || leafIndex >= size) {
      throw new CustodyError('ENTRY_NOT_INCLUDED', `inclusion proof: leaf ${leafIndex} is not among the leaves ${this.base}..${size - 1} this node holds`);
    }
    // The generator reads synchronously: learn which nodes it reads, fetch them, then run it.
    const wanted: string[] = [];
    const dummy = new Uint8Array(HASH_BYTES);
    inclusionProof(leafIndex, size, (level, index) => {
      wanted.push(nodeKey(level, index));
      return dummy;
    });
    const got = await this.read(wanted);
    const reader: NodeReader = (level, index) => {
      const h = got.get(nodeKey(level, index));
      if (h === undefined) throw new CustodyError('STORAGE_CORRUPT', `Merkle tree node (${level}, ${index}) is not stored`);
      return h;
    };
    return inclusionProof(leafIndex, size, reader);
  }

  /**
   * The RFC 9162 consistency proof from the tree of `size1` leaves to the tree of `size2`
   * (size1 <= size2 <= height). A node that joined by snapshot holds no node left of its base
   * but the base's edge: a proof that needs one is ENTRY_NOT_INCLUDED (a peer with the history
   * can give it; proofs verify on their own).
   */
  async consistency(size1: number, size2: number): Promise<Uint8Array[]> {
    this.computable(size2, 'consistency proof');
    if (!Number.isSafeInteger(size1) || size1 < 0 || size1 > size2) throw new CustodyError('INVALID_ARGUMENT', `consistency proof from ${size1} to ${size2}`);
    const wanted: string[] = [];
    const dummy = new Uint8Array(HASH_BYTES);
    consistencyProof(size1, size2, (level, index) => {
      wanted.push(nodeKey(level, index));
      return dummy;
    });
    const got = await this.read(wanted);
    const reader: NodeReader = (level, index) => {
      const h = got.get(nodeKey(level, index));
      if (h === undefined) throw new CustodyError('ENTRY_NOT_INCLUDED', `consistency proof from ${size1} to ${size2}: Merkle tree node (${level}, ${index}) is not held here (this node's tree starts at ${this.base})`);
      return h;
    };
    return consistencyProof(size1, size2, reader);
  }

  /** Ledger index of the entry that set the approver roster in force (null when this node does not know it). */
  get rosterEntryIndex(): number | null {
    return this.rosterIndex;
  }

  /** The roster entry that was in force before the one at ledger index `index` (null: none, or not known here). */
  async rosterBefore(index: number): Promise<number | null> {
    return this.pointer(rosterPointer(index));
  }

  /** Ledger index of key `keyId` epoch `epoch`'s KeyObjectPublished or activation decision (null: not kept here). */
  async keyEntry(keyId: string, epoch: number, what: 'published' | 'activated'): Promise<number | null> {
    return this.pointer(keyPointer(keyId, epoch, what));
  }

  /** Ledger index of the (last) ActDenialRecorded of act `opId` (null: none kept here). */
  async denialEntry(opId: string): Promise<number | null> {
    return this.pointer(denialPointer(opId));
  }

  private async pointer(key: string): Promise<number | null> {
    const b = (await this.read([key])).get(key);
    if (b === undefined) return null;
    const v = decode(b);
    if (v !== null && (typeof v !== 'number' || !Number.isSafeInteger(v))) throw new CustodyError('STORAGE_CORRUPT', `Merkle tree pointer ${key} is not a ledger index`);
    return v;
  }

  /**
   * The applied entries at leaf positions [from, to) whose leaf data this node keeps (every type
   * but UNKEPT_LEAF_TYPES, and only leaves it appended itself: none below its base), in order.
   */
  async leaves(from: number, to: number): Promise<{ leafIndex: number; entry: LedgerEntry }[]> {
    const size = this.tree?.size ?? 0;
    const lo = Math.max(from, this.base, 0);
    const hi = Math.min(to, size);
    if (!(lo < hi)) return [];
    const keys = Array.from({ length: hi - lo }, (_, i) => leafKey(lo + i));
    const got = await this.read(keys);
    const out: { leafIndex: number; entry: LedgerEntry }[] = [];
    keys.forEach((k, i) => {
      const b = got.get(k);
      if (b === undefined) return;
      try {
        const o = decode(b) as { index?: unknown; stampMs?: unknown; event?: unknown };
        if (typeof o.index !== 'number' || typeof o.stampMs !== 'number' || !(o.event instanceof Uint8Array)) throw new Error('expected { index, stampMs, event }');
        out.push({ leafIndex: lo + i, entry: { index: o.index, stampMs: o.stampMs, event: o.event } });
      } catch (e) {
        throw new CustodyError('STORAGE_CORRUPT', `stored leaf ${lo + i}: ${(e as Error).message}`);
      }
    });
    return out;
  }

  /** An applied entry of a kept type (KEPT_ENTRY_TYPES), by ledger index, with its leaf position. */
  async entry(index: number): Promise<{ leafIndex: number; entry: LedgerEntry }> {
    const b = (await this.read([entryKey(index)])).get(entryKey(index));
    if (b === undefined) throw new CustodyError('ENTRY_NOT_INCLUDED', `this node keeps no applied act entry at ledger index ${index}`);
    try {
      const { leaf, data } = decode(b) as { leaf?: unknown; data?: unknown };
      if (typeof leaf !== 'number' || !Number.isSafeInteger(leaf) || !(data instanceof Uint8Array)) throw new Error('expected { leaf, data }');
      const o = decode(data) as { index?: unknown; stampMs?: unknown; event?: unknown };
      if (o.index !== index || typeof o.stampMs !== 'number' || !(o.event instanceof Uint8Array)) throw new Error('leaf data of another entry');
      return { leafIndex: leaf, entry: { index, stampMs: o.stampMs, event: o.event } };
    } catch (e) {
      throw new CustodyError('STORAGE_CORRUPT', `stored entry at ledger index ${index}: ${(e as Error).message}`);
    }
  }
}

function encodeTreeState(base: number, tree: CompactTree, roster: number | null): Uint8Array {
  return encode(roster === null ? { base, tree: tree.toBytes() } : { base, tree: tree.toBytes(), [ROSTER_LATEST]: roster });
}

function decodeTreeState(b: Uint8Array): { base: number; tree: CompactTree; roster: number | null } {
  try {
    const o = decode(b) as { base?: unknown; tree?: unknown; roster?: unknown };
    if (typeof o.base !== 'number' || !Number.isSafeInteger(o.base) || !(o.tree instanceof Uint8Array)) throw new Error('expected { base, tree }');
    if (o.roster !== undefined && (typeof o.roster !== 'number' || !Number.isSafeInteger(o.roster))) throw new Error('roster: a ledger index');
    const tree = CompactTree.fromBytes(o.tree);
    if (o.base > tree.size) throw new Error(`base ${o.base} above the size ${tree.size}`);
    return { base: o.base, tree, roster: (o.roster as number | undefined) ?? null };
  } catch (e) {
    throw new CustodyError('STORAGE_CORRUPT', `Merkle tree state: ${(e as Error).message}`);
  }
}
