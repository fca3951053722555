/**
 * The Merkle tree a node keeps over its applied ledger entries (node/ledger-tree.ts inside
 * node/ledger-app.ts): after any sequence of batches, crashes that lose a batch's write, restarts
 * and a snapshot install, the tree's size is the ledger's height and its root at every size it
 * can compute is `rootOf` the leaves (entryLeafHash) of the entries the ledger chained, as the
 * pure ledger (ledger/apply.ts) chains them: refusals it does not record are not leaves. Its
 * inclusion proofs verify. A node that installed a snapshot computes exactly the sizes from the
 * snapshot up.
 *
 * A failure prints fast-check's seed and path; replay it exactly with
 *   FC_SEED=<seed> FC_PATH=<path> npx tap dist/test/ledger/tlog-ledger.test.js
 * FC_RUNS=<n> changes the number of runs (default 40).
 */
import t from 'tap';
import fc from 'fast-check';
import { ScriptedCluster } from '../../ledger/scenario.js';
import { apply } from '../../ledger/apply.js';
import { emptyState } from '../../ledger/state.js';
import { bytesEqual, decode, encode } from '../../ledger/encoding.js';
import { decodeEvent, type EventType, type LedgerEntry } from '../../ledger/events.js';
import { entryLeafHash, rootOf, verifyInclusion } from '../../ledger/tlog/index.js';
import { type ColdStore, LedgerApp, encodeLedgerCommand } from '../../node/ledger-app.js';
import { KEPT_ENTRY_TYPES, TREE_STATE_KEY } from '../../node/ledger-tree.js';
import type { AppWrite } from '../../raft/storage/leveldb.js';

const RUNS = Number(process.env.FC_RUNS ?? 40);
const replay = {
  ...(process.env.FC_SEED !== undefined ? { seed: Number(process.env.FC_SEED) } : {}),
  ...(process.env.FC_PATH !== undefined ? { path: process.env.FC_PATH } : {}),
};

const COLD = 'archive/';

/** A node's store as the driver keeps it: every write of a batch lands at once, or (a crash) none does. */
class Store {
  readonly map = new Map<string, Uint8Array>();
  persist(writes: readonly AppWrite[]): void {
    for (const w of writes) {
      if (w.value === null) this.map.delete(w.key);
      else this.map.set(w.key, w.value);
    }
  }
  cold(): ColdStore {
    const m = this.map;
    return {
      get: async (k) => m.get(k),
      getMany: async (ks) => ks.map((k) => m.get(k)),
      scan: async function* (prefix, range = {}) {
        for (const k of [...m.keys()].filter((k) => k.startsWith(prefix)).sort()) {
          if (range.from !== undefined && k < range.from) continue;
          if (range.to !== undefined && k >= range.to) continue;
          yield [k, m.get(k) as Uint8Array];
        }
      },
      put: async (writes) => this.persist(writes),
    };
  }
}

function boot(store: Store, peer?: () => LedgerApp): LedgerApp {
  const app = new LedgerApp({
    cold: store.cold(),
    ...(peer ? { archiveSource: { peers: () => ['p'], fetch: async (_p: string, from: number, n: number) => peer().archiveRange(from, n) } } : {}),
  });
  const hot = [...store.map.keys()].filter((k) => !k.startsWith(COLD));
  app.load((k) => (k.startsWith(COLD) ? undefined : store.map.get(k)), () => hot);
  return app;
}

/** One driver batch: prepare, apply each, finish; the writes, persisted unless the node crashes first. */
async function batch(app: LedgerApp, commands: readonly Uint8Array[]): Promise<AppWrite[]> {
  await app.prepare(commands);
  const writes: AppWrite[] = [];
  for (const c of commands) {
    const r = app.apply(0, c);
    if ('writes' in r) writes.push(...r.writes);
  }
  writes.push(...app.finish());
  return writes;
}

/** The entry the ledger makes of a command at `index` (ledger-app.ts apply). */
function entryOf(command: Uint8Array, index: number): LedgerEntry {
  return { index, stampMs: Number(Buffer.from(command).readBigUInt64BE(1)), event: command.subarray(9) };
}

interface Checks { equal(found: unknown, wanted: unknown, message: string): boolean; ok(v: unknown, message: string): boolean }

/** A history with acts that settle, are denied and abort (so the archive is used) and entries the ledger refuses. */
function commands(garbageAt: readonly number[]): Uint8Array[] {
  const s = new ScriptedCluster({ label: 'tlog-ledger' });
  s.genesis();
  s.createKey('k1');
  const act = s.act('k1');
  s.submit('settled-1', act);
  s.issuePermit('settled-1');
  s.execute('settled-1');
  s.publish('settled-1');
  s.settle('settled-1');
  s.submit('denied-1', s.act('k1', { destination: 'bc1-evil' }));
  s.submit('aborted-1', s.act('k1', { amount: 7n }));
  s.issuePermit('aborted-1');
  s.abort('aborted-1', 'REMOTE_TIMEOUT');
  s.submit('settled-1', act); // a replay: the original result, not chained
  s.settle('settled-1'); // refused, not chained
  s.submit('flight-1', s.act('k1', { amount: 9n }));
  s.issuePermit('flight-1');
  s.fixSigningSet('flight-1');
  const out = s.log.map((e) => new Uint8Array(encodeLedgerCommand(e.stampMs, e.event)));
  // Commands the ledger refuses without recording them advance its index but are not leaves.
  for (const [i, at] of garbageAt.entries()) out.splice(Math.min(at, out.length), 0, new Uint8Array(encodeLedgerCommand(1_700_000_000_000 + i, encode({ not: 'an event', i }))));
  return out;
}

/** The leaf of each command the pure ledger chains, in order (null where it does not). */
function chainedLeaves(cmds: readonly Uint8Array[]): (Uint8Array | null)[] {
  let state = emptyState();
  return cmds.map((c, i) => {
    const e = entryOf(c, i + 1);
    const next = apply(state, e).state;
    const leaf = next.height > state.height ? entryLeafHash(e) : null;
    state = next;
    return leaf;
  });
}

async function expectTree(t: Checks, app: LedgerApp, leaves: readonly Uint8Array[], sizes: readonly number[], what: string): Promise<boolean> {
  let ok = t.equal(app.tree.size, leaves.length, `${what}: tree size is the number of entries chained`);
  ok = t.equal(app.state.height, leaves.length, `${what}: the ledger's height`) && ok;
  for (const s of sizes) {
    if (s < app.tree.baseSize || s > leaves.length) continue;
    const root = await app.tree.rootAt(s);
    ok = t.ok(bytesEqual(root, rootOf(leaves.slice(0, s))), `${what}: root at ${s} is rootOf the first ${s} leaves`) && ok;
    for (const i of [app.tree.baseSize, Math.floor((app.tree.baseSize + s) / 2), s - 1]) {
      if (i < app.tree.baseSize || i >= s) continue;
      const proof = await app.tree.proof(i, s);
      ok = t.ok(verifyInclusion(i, s, leaves[i] as Uint8Array, proof, root), `${what}: leaf ${i} proven in ${s}`) && ok;
    }
  }
  return ok;
}

t.test('the tree equals rootOf the applied leaves across batches, lost batches, restarts and a snapshot install', async (t) => {
  await fc.assert(fc.asyncProperty(
    fc.array(fc.nat(30), { maxLength: 4 }),
    fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 30 }),
    fc.array(fc.constantFrom('none', 'restart', 'crash'), { minLength: 30, maxLength: 30 }),
    fc.nat(30),
    async (garbageAt, batchSizes, afterBatch, snapshotAfter) => {
      const cmds = commands(garbageAt);
      const chained = chainedLeaves(cmds);
      const store = new Store();
      let app = boot(store);
      const joinStore = new Store();
      let joined: LedgerApp | null = null;
      let joinedBase = -1;
      const leaves: Uint8Array[] = [];
      let at = 0;
      let b = 0;
      while (at < cmds.length) {
        const n = Math.min(batchSizes[b % batchSizes.length] as number, cmds.length - at);
        const slice = cmds.slice(at, at + n);
        const fate = afterBatch[b % afterBatch.length];
        b++;
        const writes = await batch(app, slice);
        if (fate === 'crash') {
          // The process dies before the batch's write: the node comes back where it was and applies the batch again.
          app = boot(store);
          continue;
        }
        store.persist(writes);
        if (joined !== null) joinStore.persist(await batch(joined, slice));
        for (let i = at; i < at + n; i++) if (chained[i]) leaves.push(chained[i] as Uint8Array);
        at += n;
        if (fate === 'restart') app = boot(store);
        if (joined === null && b >= snapshotAfter % (cmds.length + 1)) {
          const source = app;
          joined = boot(joinStore, () => source);
          joinStore.persist(await joined.restore(app.snapshot()));
          joined = boot(joinStore, () => source);
          joinedBase = leaves.length;
        }
      }
      const sizes = [0, 1, Math.floor(leaves.length / 2), leaves.length - 1, leaves.length];
      let ok = await expectTree(t, app, leaves, sizes, 'the node');
      ok = await expectTree(t, boot(store), leaves, sizes, 'the node restarted') && ok;
      if (joined !== null) {
        ok = t.equal(joined.tree.baseSize, joinedBase, 'the joined node computes from the snapshot up') && ok;
        ok = await expectTree(t, joined, leaves, sizes, 'the node that joined by snapshot') && ok;
        if (joinedBase > 0) {
          await t.rejects(joined.tree.rootAt(joinedBase - 1), { name: 'CustodyError', reason: 'ENTRY_NOT_INCLUDED' }, 'a size below the snapshot is refused, not guessed');
          await t.rejects(joined.tree.proof(joinedBase - 1, leaves.length), { name: 'CustodyError', reason: 'ENTRY_NOT_INCLUDED' }, 'a leaf below the snapshot is refused');
        }
      }
      return ok;
    },
  ), { numRuns: RUNS, ...replay });
});

t.test('kept entries (act, genesis, governance, key publication) read back; a store whose tree disagrees with its ledger is refused', async (t) => {
  const store = new Store();
  const app = boot(store);
  const cmds = commands([]);
  store.persist(await batch(app, cmds));
  const again = boot(store);
  let kept = 0;
  let height = 0;
  const leafAt = chainedLeaves(cmds).map((l) => (l === null ? null : height++));
  for (let i = 0; i < cmds.length; i++) {
    const e = entryOf(cmds[i] as Uint8Array, i + 1);
    const type = (decode(e.event) as { type?: string }).type;
    if (KEPT_ENTRY_TYPES.includes(type as EventType) && leafAt[i] !== null) {
      const back = await again.tree.entry(i + 1);
      t.ok(bytesEqual(entryLeafHash(back.entry), entryLeafHash(e)), `the ${type} at ${i + 1} reads back as applied`);
      t.equal(back.leafIndex, leafAt[i], `with its leaf position`);
      kept++;
    } else {
      await t.rejects(again.tree.entry(i + 1), { name: 'CustodyError', reason: 'ENTRY_NOT_INCLUDED' }, `the ${type ?? 'refused'} entry at ${i + 1} is not kept${leafAt[i] === null ? ' (not chained)' : ''}`);
    }
  }
  t.ok(kept >= 5, 'the history has act entries');
  // The roster entry in force and the key pointers survive the restart (tlog/state, cold pointers).
  let rosterAt: number | null = null;
  const published: number[] = [];
  cmds.forEach((c, i) => {
    if (leafAt[i] === null) return;
    const ev = decodeEvent(entryOf(c as Uint8Array, i + 1).event);
    if (ev.type === 'ClusterGenesis' || (ev.type === 'GovernanceDecision' && ev.decision.body.action.kind === 'ApproversChanged')) rosterAt = i + 1;
    if (ev.type === 'KeyObjectPublished') published.push(i + 1);
  });
  t.not(rosterAt, null);
  t.equal(again.tree.rosterEntryIndex, rosterAt, 'the roster entry in force is known after a restart');
  t.equal(await again.tree.rosterBefore(rosterAt as unknown as number), null, 'and it has none before it');
  t.ok(published.length > 0, 'the history publishes a key');
  for (const i of published) {
    const ev = decodeEvent(entryOf(cmds[i - 1] as Uint8Array, i).event) as Extract<ReturnType<typeof decodeEvent>, { type: 'KeyObjectPublished' }>;
    t.equal(await again.tree.keyEntry(ev.keyId, ev.keyEpoch, 'published'), i, `the KeyObjectPublished of ${ev.keyId} epoch ${ev.keyEpoch} is found by its pointer`);
  }
  t.ok(leafAt.some((l) => l === null), 'and entries the ledger did not chain');
  // A tree state from another point of the history than the ledger state: refused at load.
  const other = new Store();
  const short = boot(other);
  other.persist(await batch(short, cmds.slice(0, 3)));
  store.map.set(TREE_STATE_KEY, other.map.get(TREE_STATE_KEY) as Uint8Array);
  t.throws(() => boot(store), { name: 'CustodyError', reason: 'STORAGE_CORRUPT' }, 'a tree of 3 leaves beside a ledger of more is refused');
  // A snapshot whose tree edge is not of its state's size: refused at install.
  const snap = decode(app.snapshot()) as Record<string, unknown>;
  const bad = encode({ ...snap, tlog: (decode(other.map.get(TREE_STATE_KEY) as Uint8Array) as { tree: Uint8Array }).tree } as never);
  await t.rejects(Promise.resolve().then(() => boot(new Store(), () => app).restore(bad)), { name: 'CustodyError', reason: 'STORAGE_CORRUPT' }, 'a snapshot edge of 3 leaves beside a state of more is refused');
});
