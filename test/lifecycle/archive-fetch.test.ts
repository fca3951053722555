/**
 * Installing a snapshot whose state counts archived acts this node lacks (node/ledger-app.ts
 * restore): the records come from peers by position, are checked against the hash chain, and are
 * visible only once a state counts them.
 *
 *  - property: whatever prefix of the history a node holds, installing the snapshot keeps that
 *    prefix (it fetches exactly the records it lacks, in answers of any size, arriving in any
 *    order) and ends with the source's root and every act readable;
 *  - a node whose state counts a prefix reads none of it again: the chain continues from its own
 *    accumulator, and only the rest is read and fetched;
 *  - property: a peer serving the range altered, reordered, short, with a record dropped or
 *    duplicated is refused ARCHIVE_RECORD_REJECTED and the next peer is used; with no honest peer
 *    the install fails ARCHIVE_UNAVAILABLE and nothing becomes visible;
 *  - property: records stored past the state's count are invisible to every read (act, chronicle,
 *    a peer's fetch);
 *  - a peer serves only what it counts, within the bounds;
 *  - crash midway: the store is closed between the fetch and the install, reopened with the old
 *    state; the fetched records are invisible, and the next install re-verifies them and fetches
 *    only the rest;
 *  - the keys a fetched record is stored under are read by walking its CBOR: for every record the
 *    ledger archives they are the strict decoder's, and (property) for any bytes a peer may send
 *    (cut short, altered, garbage) the walk ends inside the bytes and, whenever the strict decoder
 *    reads an archived act, agrees with it;
 *  - an index entry left by a refused peer's record, whose position the true record then filled,
 *    does not make its act archived;
 *  - a peer serves a range from one seek into the record log: the scan reads exactly the keys of
 *    its range, the records sort before the indexes, and a counted position without its record is
 *    refused STORAGE_CORRUPT, not served;
 *  - a store in the layout before the record log is converted at start: every counted record read
 *    back as before, entries no counted record had are dropped, and (property) a conversion cut
 *    off after any batch ends the same when run again.
 *
 * A failure prints fast-check's seed and path; replay it exactly with
 *   FC_SEED=<seed> FC_PATH=<path> npx tap dist/test/lifecycle/archive-fetch.test.js
 */
import t, { type Test } from 'tap';
import fc from 'fast-check';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LevelStorage } from '../../raft/storage/leveldb.js';
import { MemoryArchive, apply } from '../../ledger/index.js';
import { decodeArchived } from '../../ledger/archive.js';
import { ScriptedCluster, solanaAddressOf } from '../../ledger/scenario.js';
import { emptyState, stateRoot } from '../../ledger/state.js';
import { decode, encode, toHex } from '../../ledger/encoding.js';
import { ledger as ledgerLimits } from '../../proto/limits.js';
import { type ArchiveSource, type ColdStore, LedgerApp, archiveRecordWrites, convertArchiveLayout, encodeLedgerCommand, fetchedKeys, levelColdStore } from '../../node/ledger-app.js';
import { conf } from './ledger-nodes.js';
import { rid } from '../../ledger/scenario.js';

const RUNS = Number(process.env.FC_RUNS ?? 20);
const replay = {
  ...(process.env.FC_SEED !== undefined ? { seed: Number(process.env.FC_SEED) } : {}),
  ...(process.env.FC_PATH !== undefined ? { path: process.env.FC_PATH } : {}),
};

const ACTS = 24;

/** A history in which ACTS acts end (denied by policy: one entry each), then one act in flight. */
function history(): ScriptedCluster {
  const s = new ScriptedCluster({ label: 'archive-fetch' });
  s.genesis();
  s.createKey('k1');
  for (let i = 0; i < ACTS; i++) s.submit(`denied-${i}`, s.act('k1', { destination: 'bc1-evil', amount: BigInt(i + 1) }));
  s.submit('flight-1', s.act('k1', { amount: 9n }));
  return s;
}

interface Node {
  readonly storage: LevelStorage;
  readonly app: LedgerApp;
  readonly dir: string;
}

const dirs: string[] = [];
t.teardown(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function open(source?: ArchiveSource, dir?: string, log?: (line: string) => void, wrap: (c: ColdStore) => ColdStore = (c) => c, indexRunRecords?: number): Promise<Node> {
  const d = dir ?? (await mkdtemp(join(tmpdir(), 'custody-archive-fetch-')));
  if (dir === undefined) dirs.push(d);
  const storage = await LevelStorage.open({ dir: d, bootstrapConf: conf, recoveryHint: 'test' });
  const app = new LedgerApp({ cold: wrap(levelColdStore(storage)), ...(source ? { archiveSource: source } : {}), ...(log ? { log } : {}), ...(indexRunRecords !== undefined ? { indexRunRecords } : {}) });
  // As the driver does on start: the state and decisions come back from the store.
  app.load((k) => storage.appValue(`sm/${k}`), function* () {
    for (const k of storage.appKeys()) if (k.startsWith('sm/')) yield k.slice(3);
  });
  return { storage, app, dir: d };
}

const persist = (s: LevelStorage, writes: readonly { key: string; value: Uint8Array | null }[]): Promise<unknown> =>
  s.persist({ hardState: null, entries: [], snapshot: null, app: writes.map((w) => ({ key: `sm/${w.key}`, value: w.value })), sync: true });

/** Applies the first `n` entries of the script through the application into its store, as the driver does. */
async function applyPrefix(node: Node, script: ScriptedCluster, n: number): Promise<void> {
  for (const e of script.log.slice(0, n)) {
    const command = encodeLedgerCommand(e.stampMs, e.event);
    await node.app.prepare([command]);
    const r = node.app.apply(e.index, command);
    await persist(node.storage, [...r.writes, ...node.app.finish()]);
  }
}

/** Installs `snap` as the driver does: the restore's writes in one batch. */
async function install(node: Node, snap: Uint8Array): Promise<void> {
  await persist(node.storage, await node.app.restore(snap));
}

type Serve = (fromSeq: number, n: number) => Promise<readonly Uint8Array[]>;

/** A source over named peers; `asked` counts the records each one answered. */
function sourceOf(peers: [string, Serve][]): ArchiveSource & { asked: Map<string, number> } {
  const asked = new Map<string, number>();
  const m = new Map(peers);
  return {
    asked,
    peers: () => peers.map(([p]) => p),
    fetch: async (peer, fromSeq, n) => {
      const r = await (m.get(peer) as Serve)(fromSeq, n);
      asked.set(peer, (asked.get(peer) ?? 0) + r.length);
      return r;
    },
  };
}

/** Where the denied acts pay: the devnet address of the label 'bc1-evil'. */
const EVIL = solanaAddressOf('bc1-evil');

/** The record with one letter of its destination changed (still a well-formed record). */
function alter(record: Uint8Array, bit: number): Uint8Array {
  const b = Buffer.from(record);
  const at = b.indexOf(EVIL);
  if (at < 0) throw new Error('the record names no destination');
  b[at + 4 + (bit % 4)] = 0x61 + (bit % 26) === b[at + 4 + (bit % 4)] ? 0x7a : 0x61 + (bit % 26);
  return b;
}

/** Every one of the ACTS acts reads back through its index entry (act(), as `act show` reads it). */
async function everyActReads(t: Test, node: Node, what: string): Promise<void> {
  const missing: number[] = [];
  for (let i = 0; i < ACTS; i++) if ((await node.app.act(rid(`denied-${i}`)))?.state !== 'Denied') missing.push(i);
  t.same(missing, [], `${what}: every act reads back through its index entry`);
}

function reasonOf(e: unknown): string {
  return (e as { reason?: string }).reason ?? String(e);
}

t.test('archive fetch', async (t) => {
  const script = history();
  const leader = await open();
  t.teardown(() => leader.storage.close());
  await applyPrefix(leader, script, script.log.length);
  const want = toHex(stateRoot(script.state));
  t.equal(leader.app.root(), want, 'the serving node reaches the in-memory root');
  t.equal(leader.app.state.cluster?.archived.count, ACTS, `${ACTS} acts are archived`);
  const snap = leader.app.snapshot();
  const fields = decode(snap) as { archive?: unknown; cold?: unknown };
  t.equal(fields.archive, undefined, 'the snapshot carries no archived record');
  t.equal(fields.cold, true, 'and says its ended acts are in an archive');
  t.ok(snap.length < 64 * 1024, `the snapshot is ${snap.length} bytes: what is in memory`);
  const records: Uint8Array[] = [];
  for await (const r of leader.app.archiveRecords(0, ACTS)) records.push(r);
  const honest: Serve = (fromSeq, n) => leader.app.archiveRange(fromSeq, n);

  t.test('a peer serves only what it counts, within the bounds', async (t) => {
    const refused = async (from: number, n: number): Promise<string> => leader.app.archiveRange(from, n).then(() => 'served', reasonOf);
    t.equal(await refused(ACTS - 1, 2), 'ARCHIVE_RANGE_REFUSED', 'past its count');
    t.equal(await refused(0, ledgerLimits.archiveFetchRecordsMax + 1), 'ARCHIVE_RANGE_REFUSED', 'more than one answer may hold');
    t.equal(await refused(-1, 1), 'ARCHIVE_RANGE_REFUSED', 'a negative position');
    t.equal(await refused(0, 0), 'ARCHIVE_RANGE_REFUSED', 'an empty range');
    t.same((await leader.app.archiveRange(3, 2)).map((r) => toHex(r)), records.slice(3, 5).map((r) => toHex(r)), 'records 3 and 4, in order');
  });

  t.test('property: any held prefix is kept, only the rest is fetched, in answers of any size and order', async (t) => {
    await fc.assert(fc.asyncProperty(fc.nat(script.log.length), fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 8 }), fc.array(fc.nat(3), { minLength: 1, maxLength: 5 }), fc.integer({ min: 1, max: 9 }), async (held, sizes, delays, run) => {
      let k = 0;
      // An honest peer whose answers are cut short at varying sizes (as a full answer is), and
      // arrive after varying delays: a range asked ahead may be answered before the one before it.
      const source = sourceOf([['peer', async (from, n) => {
        const i = k++;
        await new Promise((r) => setTimeout(r, delays[i % delays.length]));
        return (await honest(from, n)).slice(0, sizes[i % sizes.length]);
      }]]);
      const node = await open(source, undefined, undefined, undefined, run);
      try {
        await applyPrefix(node, script, held);
        const own = node.app.state.cluster?.archived.count ?? 0;
        await install(node, snap);
        t.equal(node.app.root(), want, `holding ${held} entries (${own} acts): the root`);
        t.equal(source.asked.get('peer') ?? 0, ACTS - own, `fetched exactly the ${ACTS - own} acts it lacked`);
        t.same((await node.app.endedActs(ACTS)).map((o) => o.opId), [...Array(ACTS).keys()].map((i) => rid(`denied-${i}`)), 'the whole chronicle reads back');
        await everyActReads(t, node, `index runs of ${run}`);
      } finally {
        await node.storage.close();
      }
    }), { numRuns: RUNS, ...replay });
  });

  t.test('a node holding a prefix reads none of the records its state counts, and fetches only the rest', async (t) => {
    const lines: string[] = [];
    const readFrom: number[] = [];
    // Every read of a position is a read of the record log: record where each one starts.
    const watch = (c: ColdStore): ColdStore => ({
      ...c,
      get: (key) => {
        if (key.startsWith('archive/log/')) readFrom.push(Number(key.slice('archive/log/'.length)));
        return c.get(key);
      },
      getMany: (keys) => {
        for (const key of keys) if (key.startsWith('archive/log/')) readFrom.push(Number(key.slice('archive/log/'.length)));
        return c.getMany(keys);
      },
      scan: (prefix, range) => {
        if (prefix === 'archive/log/') readFrom.push(range?.from !== undefined ? Number(range.from.slice(prefix.length)) : 0);
        return c.scan(prefix, range);
      },
    });
    const source = sourceOf([['peer', honest]]);
    const node = await open(source, undefined, (l) => lines.push(l), watch);
    t.teardown(() => node.storage.close());
    // Every entry but the last (the act in flight) ends one act: stop 10 acts short of the source.
    await applyPrefix(node, script, script.log.length - 1 - 10);
    const own = node.app.state.cluster?.archived.count ?? 0;
    t.equal(own, ACTS - 10, `the node's state counts ${ACTS - 10} acts`);
    readFrom.length = 0;
    await install(node, snap);
    t.equal(node.app.root(), want, 'the install reaches the source\'s root');
    t.equal(source.asked.get('peer'), 10, 'fetching the 10 acts it lacked');
    t.ok(readFrom.length > 0 && readFrom.every((seq) => seq >= own), `no read of a position below ${own} (reads from ${[...new Set(readFrom)].join(', ')})`);
    t.ok(lines.some((l) => new RegExp(`holds ${own} \\(${own} counted by its own state\\)`).test(l)), `the log says what it took as counted (${lines[0] ?? ''})`);
    t.same((await node.app.endedActs(ACTS)).map((o) => o.opId), [...Array(ACTS).keys()].map((i) => rid(`denied-${i}`)), 'the whole chronicle reads back');
  });

  t.test('property: an altered, reordered, short, gapped or padded range is refused and the next peer used', async (t) => {
    const kinds = ['alter', 'swap', 'drop', 'dup', 'empty', 'garbage', 'refuse'] as const;
    const liar = (kind: typeof kinds[number], at: number, bit: number): Serve => async (from, n) => {
      const r: Uint8Array[] = [...(await honest(from, n))].map((x) => Uint8Array.from(x));
      const i = at % r.length;
      switch (kind) {
        case 'alter': {
          // One letter of the destination changed: the record still decodes, only the chain catches it.
          r[i] = alter(r[i] as Uint8Array, bit);
          return r;
        }
        case 'swap': {
          // A record other than the first moved to the front (never the first itself: no change).
          if (r.length === 1) return [records[(from + 1) % ACTS] as Uint8Array];
          const j = 1 + (at % (r.length - 1));
          return [r[j] as Uint8Array, ...r.filter((_, k) => k !== j)];
        }
        case 'drop': return r.length > 1 ? r.filter((_, j) => j !== i) : [records[(from + 1) % ACTS] as Uint8Array];
        case 'dup': {
          // One record twice, in place of the next (or twice alone: more than asked for one).
          if (r.length === 1) return [r[0] as Uint8Array, r[0] as Uint8Array];
          const j = 1 + (at % (r.length - 1));
          return r.map((x, k) => (k === j ? (r[j - 1] as Uint8Array) : x));
        }
        case 'empty': return [];
        case 'garbage': return [encode({ not: 'a record' })];
        case 'refuse': throw Object.assign(new Error('refused'), { reason: 'ARCHIVE_RANGE_REFUSED' });
      }
    };
    await fc.assert(fc.asyncProperty(fc.constantFrom(...kinds), fc.nat(), fc.nat(), fc.nat(script.log.length), fc.integer({ min: 1, max: 9 }), async (kind, at, bit, held, run) => {
      const lines: string[] = [];
      const source = sourceOf([['liar', liar(kind, at, bit)], ['good', honest]]);
      const node = await open(source, undefined, (l) => lines.push(l), undefined, run);
      try {
        await applyPrefix(node, script, held);
        const own = node.app.state.cluster?.archived.count ?? 0;
        await install(node, snap);
        t.equal(node.app.root(), want, `${kind}: installed from the honest peer`);
        t.ok(own === ACTS || lines.some((l) => /liar refused/.test(l)), `${kind}: the lying peer was refused (${lines.find((l) => /liar/.test(l)) ?? 'nothing to fetch'})`);
        t.same((await node.app.endedActs(ACTS)).map((o) => o.opId), [...Array(ACTS).keys()].map((i) => rid(`denied-${i}`)), `${kind}: the chronicle is the honest one`);
        await everyActReads(t, node, `${kind}, index runs of ${run}`);
      } finally {
        await node.storage.close();
      }
    }), { numRuns: RUNS, ...replay });
    // With only a liar, the install fails and nothing it wrote becomes readable.
    const node = await open(sourceOf([['liar', liar('alter', 3, 1)]]));
    t.teardown(() => node.storage.close());
    t.equal(await Promise.resolve(node.app.restore(snap)).then(() => 'installed', reasonOf), 'ARCHIVE_UNAVAILABLE', 'no honest peer: ARCHIVE_UNAVAILABLE');
    t.equal(node.app.state.cluster, null, 'the state is left as it was');
    t.equal(await node.app.act(rid('denied-0')), undefined, 'and the records the liar served are not visible');
  });

  t.test('property: records past the state\'s count are invisible to every read', async (t) => {
    await fc.assert(fc.asyncProperty(fc.nat(script.log.length), fc.nat(ACTS), async (held, extra) => {
      const node = await open();
      try {
        await applyPrefix(node, script, held);
        const own = node.app.state.cluster?.archived.count ?? 0;
        // Stage records own .. own+extra-1 as a fetch interrupted before its install leaves them.
        const upto = Math.min(ACTS, own + extra);
        await persist(node.storage, records.slice(own, upto).flatMap((r, i) => archiveRecordWrites(own + i, r)));
        for (let seq = own; seq < upto; seq++) t.equal(await node.app.act(rid(`denied-${seq}`)), undefined, `act ${seq} (staged, not counted) is unknown`);
        t.equal((await node.app.endedActs(ACTS)).length, own, `the chronicle holds the ${own} counted acts`);
        t.equal(await node.app.archiveRange(own, 1).then(() => 'served', reasonOf), 'ARCHIVE_RANGE_REFUSED', 'a peer is not served what is not counted');
        if (own > 0) t.equal((await node.app.act(rid(`denied-${own - 1}`)))?.state, 'Denied', 'a counted act reads back');
      } finally {
        await node.storage.close();
      }
    }), { numRuns: RUNS, ...replay });
  });

  t.test('an act a refused peer named, at a position the true record then filled, is not archived', async (t) => {
    // The liar answers position 3 with a record of another act (its opId changed): it decodes and
    // is written, the chain refuses it, and the honest peer's record 3 is written over it. The
    // liar's index entry is dropped with its answers, never written. An entry left pointing at a
    // record of another act (as stores written before index runs, or a crash, can hold) is planted
    // after the install: read through, it names nothing.
    const ghost = rid('ghost');
    const liar: Serve = async (from, n) => (await honest(from, n)).map((r, i) => {
      if (from + i !== 3) return r;
      const b = Buffer.from(r);
      const at = b.indexOf(rid('denied-3'));
      if (at < 0) throw new Error('the record does not name its act');
      b.write(ghost, at, 'utf8');
      return b;
    });
    const source = sourceOf([['liar', liar], ['honest', honest]]);
    const node = await open(source);
    t.teardown(() => node.storage.close());
    await install(node, snap);
    t.equal(node.app.root(), want, 'installed from the honest peer');
    t.ok((source.asked.get('liar') ?? 0) > 3, 'the liar answered position 3');
    t.equal(await node.storage.appRead(`sm/archive/op/${ghost}`), undefined, 'the refused record left no index entry');
    t.equal(await node.app.act(ghost), undefined, 'its act reads as never archived');
    await persist(node.storage, [{ key: `archive/op/${ghost}`, value: encode(3) }]);
    t.equal(await node.app.act(ghost), undefined, 'an entry pointing it at position 3 is read through and names nothing: the record at 3 names another act');
    t.equal((await node.app.act(rid('denied-3')))?.state, 'Denied', 'and the true act at 3 reads back');
  });

  t.test('property: records held without their index entries (a crash before their run) are indexed by the next install', async (t) => {
    // A fetch writes records first and their index entries in runs after them, so a crash can
    // leave records held with no entry. The next install re-hashes what it holds past its count
    // and indexes it as it goes; a held record naming an act the state counts elsewhere (a lying
    // peer's, then the crash) must not move that act's entry: what is held ends there.
    await fc.assert(fc.asyncProperty(fc.nat(script.log.length), fc.nat(ACTS), fc.boolean(), fc.integer({ min: 1, max: 9 }), async (held, extra, forged, run) => {
      const node = await open(undefined);
      const own = await (async () => {
        await applyPrefix(node, script, held);
        return node.app.state.cluster?.archived.count ?? 0;
      })();
      const upto = Math.min(ACTS, own + extra);
      // Records alone, as a fetch writes them; the forged one is the record of act 0 (counted at
      // 0 when own > 0) at the first position past the count.
      const staged = records.slice(own, upto).map((r, i) => ({ key: `archive/log/${String(own + i).padStart(16, '0')}`, value: r as Uint8Array | null }));
      const forge = forged && own > 0 && upto > own;
      if (forge) (staged[0] as { value: Uint8Array | null }).value = records[0] as Uint8Array;
      await persist(node.storage, staged);
      await node.storage.close();
      const source = sourceOf([['peer', honest]]);
      const again = await open(source, node.dir, undefined, undefined, run);
      try {
        await install(again, snap);
        t.equal(again.app.root(), want, `own ${own}, ${upto - own} held${forge ? ' (the first forged)' : ''}, runs of ${run}: installed`);
        t.equal(source.asked.get('peer') ?? 0, forge ? ACTS - own : ACTS - upto, forge ? 'what is held ends at the forged record: fetched from there' : `fetched only the ${ACTS - upto} acts not held`);
        await everyActReads(t, again, 'held and fetched');
      } finally {
        await again.storage.close();
      }
    }), { numRuns: RUNS, ...replay });
  });

  t.test('crash midway: fetched records stay invisible, and the next install re-verifies them and fetches the rest', async (t) => {
    const half = 10;
    let served = 0;
    // The peer goes away after `half` records: the install fails as a crash would interrupt it.
    const flaky = sourceOf([['peer', async (from, n) => {
      if (served >= half) throw new Error('connection lost');
      const r = (await honest(from, Math.min(n, half - served)));
      served += r.length;
      return r;
    }]]);
    const first = await open(flaky);
    await applyPrefix(first, script, 2); // genesis and key: nothing archived yet
    t.equal(await Promise.resolve(first.app.restore(snap)).then(() => 'installed', reasonOf), 'ARCHIVE_UNAVAILABLE', 'the install did not complete');
    await first.storage.close();

    const again = await open(undefined, first.dir);
    t.equal(again.app.state.cluster?.archived.count, 0, 'reopened with the old state');
    t.equal(await again.app.act(rid('denied-0')), undefined, 'a fetched record is not visible');
    t.same(await again.app.endedActs(ACTS), [], 'nor in the chronicle');
    await again.storage.close();

    const rest = sourceOf([['peer', honest]]);
    const third = await open(rest, first.dir);
    t.teardown(() => third.storage.close());
    await install(third, snap);
    t.equal(third.app.root(), want, 'the next install completes');
    t.equal(rest.asked.get('peer'), ACTS - half, `fetching only the ${ACTS - half} records it did not hold`);
    t.equal((await third.app.act(rid('denied-0')))?.state, 'Denied', 'the records fetched before the crash are now visible');

    // A record staged before the crash that was altered (a lying peer, then the crash) is caught by the chain.
    const fourth = await open(undefined);
    await applyPrefix(fourth, script, 2);
    const bad = alter(records[4] as Uint8Array, 1);
    await persist(fourth.storage, [...records.slice(0, 4), bad].flatMap((r, i) => archiveRecordWrites(i, r)));
    await fourth.storage.close();
    const fifth = await open(sourceOf([['peer', honest]]), fourth.dir);
    t.teardown(() => fifth.storage.close());
    await install(fifth, snap);
    t.equal(fifth.app.root(), want, 'a bad staged record: the install starts again from the verified prefix');
    t.equal(toHex((await fifth.app.archiveRange(4, 1))[0] as Uint8Array), toHex(records[4] as Uint8Array), 'and overwrites it with the honest record');
  });
});

/** Records of every way an act ends: settled and aborted with a spent permit, denied without one. */
function endedRecords(): Uint8Array[] {
  const s = new ScriptedCluster({ label: 'archive-fetch-keys' });
  s.genesis();
  s.createKey('k1');
  s.submit('settled-1', s.act('k1'));
  s.issuePermit('settled-1');
  s.execute('settled-1');
  s.publish('settled-1');
  s.settle('settled-1');
  s.submit('denied-1', s.act('k1', { destination: 'bc1-evil' }));
  s.submit('aborted-1', s.act('k1', { amount: 7n }));
  s.issuePermit('aborted-1');
  s.abort('aborted-1', 'REMOTE_TIMEOUT');
  s.submit('aborted-2', s.act('k1', { amount: 3n }));
  s.abort('aborted-2', 'REMOTE_TIMEOUT');
  const archive = new MemoryArchive();
  let state = emptyState();
  for (const e of s.log) {
    const r = apply(state, e, archive);
    archive.add(r.archived);
    state = r.state;
  }
  return archive.records().map((r) => r.bytes);
}

/** The keys as the strict decoder reads them (what the ledger's own apply stores a record under). */
function strictKeys(record: Uint8Array): { opId: string; permitId: string | null } {
  const a = decodeArchived(record);
  return { opId: a.op.opId, permitId: a.permit !== null && a.op.permitId !== null ? toHex(a.op.permitId) : null };
}

/** Every way the walk refuses bytes: anything else (a TypeError, a RangeError) would be a fault. */
const WALK_REFUSALS = /^(truncated|length runs past the end|count runs past the end|additional information \d+|nested too deep|not a map|op is not a map|expected text|expected bytes or null|trailing bytes|not an archived act)$/;

function walkedKeys(record: Uint8Array): { opId: string; permitId: string | null } {
  const k = fetchedKeys(record);
  return { opId: k.opId, permitId: k.permitId === null ? null : toHex(k.permitId) };
}

t.test('the keys of a fetched record, walked, are the strict decoder\'s', async (t) => {
  const records = endedRecords();
  t.same(records.map((r) => strictKeys(r).opId), ['settled-1', 'denied-1', 'aborted-1', 'aborted-2'].map(rid), 'settled, denied and aborted acts were archived');
  t.ok(records.some((r) => strictKeys(r).permitId !== null) && records.some((r) => strictKeys(r).permitId === null), 'with and without a spent permit');
  for (const r of records) t.same(walkedKeys(r), strictKeys(r), `${strictKeys(r).opId}: the same keys`);
  t.throws(() => fetchedKeys(encode({ not: 'a record' })), /not an archived act/, 'a map without the record\'s fields is refused');
  t.throws(() => fetchedKeys(encode({ op: { opId: 'x', permitId: null }, permit: null, extra: [1, 2] }).subarray(0, 20)), /runs past|truncated/, 'a record cut short is refused');
  // A count that claims more items than bytes remain is refused before any loop runs.
  t.throws(() => fetchedKeys(Uint8Array.from([0xbb, 0x00, 0x00, 0x00, 0x0f, 0xff, 0xff, 0xff, 0xff])), /count runs past the end/, 'a forged map count');
  t.throws(() => fetchedKeys(Uint8Array.from([0xbf, 0xff])), /additional information 31/, 'an indefinite-length map');
  // Nesting beyond the bound is refused, not followed down the stack.
  const deep = Uint8Array.from([0xa1, 0x62, 0x7a, 0x7a, ...new Array<number>(200).fill(0x81), 0x00]);
  t.throws(() => fetchedKeys(deep), /nested too deep/, 'nesting past the bound');

  await fc.assert(fc.asyncProperty(
    fc.constantFrom(...records.keys()),
    fc.oneof(
      fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), to: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), bytes: fc.uint8Array({ maxLength: 12 }) }),
      fc.record({ kind: fc.constant('garbage' as const), bytes: fc.uint8Array({ maxLength: 64 }) }),
    ),
    async (i, m) => {
      const r = records[i] as Uint8Array;
      const bad = m.kind === 'cut' ? r.subarray(0, m.at % r.length)
        : m.kind === 'flip' ? Uint8Array.from(r, (b, j) => (j === m.at % r.length ? m.to : b))
        : m.kind === 'splice' ? Uint8Array.from([...r.subarray(0, m.at % r.length), ...m.bytes, ...r.subarray(m.at % r.length)])
        : m.bytes;
      let walked: { opId: string; permitId: string | null } | Error;
      try {
        walked = walkedKeys(bad);
      } catch (e) {
        walked = e as Error;
      }
      let strict: { opId: string; permitId: string | null } | null;
      try {
        strict = strictKeys(bad);
      } catch {
        strict = null;
      }
      // Whatever the walk answers for bytes no canonical record has, the chain check refuses them;
      // for bytes that are an archived act it must answer what the ledger would store them under.
      if (strict !== null) t.same(walked, strict, `${m.kind}: an archived act still, and the same keys`);
      else if (m.kind === 'cut') t.match(walked, { message: /truncated|runs past the end/ }, `cut at ${bad.length}: refused as cut short`);
      else if (walked instanceof Error) t.match(walked.message, WALK_REFUSALS, `${m.kind}: refused by the walk itself (${walked.message}), not by a fault past the bytes`);
      else t.ok(walked.opId.length > 0 && (walked.permitId === null || /^[0-9a-f]*$/.test(walked.permitId)), `${m.kind}: keys of bytes the chain check refuses (${walked.opId})`);
    },
  ), { numRuns: RUNS * 10, ...replay });
});

t.test('serving reads a range by one seek into the record log', async (t) => {
  const script = history();
  const node = await open();
  t.teardown(() => node.storage.close());
  await applyPrefix(node, script, script.log.length);
  const at = (n: number): string => `sm/archive/log/${String(n).padStart(16, '0')}`;
  const keys: string[] = [];
  for await (const [k] of node.storage.appScan('sm/archive/log/', { from: at(5), to: at(9) })) keys.push(k);
  t.same(keys, [5, 6, 7, 8].map(at), 'the scan reads from its first key up to, not including, its last');
  await t.rejects(node.storage.appScan('sm/archive/log/', { from: 'sm/archive/op/' }).next(), /outside/, 'a range outside the prefix is refused');
  const many = await node.storage.appReadMany([`sm/archive/op/${rid('denied-3')}`, 'sm/archive/op/nobody', `sm/archive/op/${rid('denied-0')}`]);
  t.same(many.map((v) => (v === undefined ? undefined : decode(v))), [3, undefined, 0], 'a multi-get answers in the order asked, undefined where absent; the index holds positions');
  t.same((await node.app.archiveRange(0, ACTS)).map((r) => strictKeys(r).opId), [...Array(ACTS).keys()].map((i) => rid(`denied-${i}`)), 'every record, in position order');
  let order = '';
  for await (const [k] of node.storage.appScan('sm/archive/')) {
    const kind = k.split('/')[2] as string;
    if (!order.endsWith(kind)) order += `${order === '' ? '' : ' '}${kind}`;
  }
  t.equal(order, 'log op tlog', 'the records sort before their index (compaction moves them down instead of rewriting them; denied acts spent no permit)');

  // A counted position whose record is missing (a corrupt store): refused, not served.
  await persist(node.storage, [{ key: `archive/log/${String(5).padStart(16, '0')}`, value: null }]);
  t.equal(await node.app.archiveRange(4, 3).then(() => 'served', reasonOf), 'STORAGE_CORRUPT', 'a counted position without its record');
  t.equal((await node.app.archiveRange(0, 5)).length, 5, 'the positions before it are still served');
});


/** Rewrites a store's archive in the layout before archive/log/ (node/ledger-app.ts convertArchiveLayout). */
async function toOldLayout(node: Node, extra: readonly { key: string; value: Uint8Array | null }[] = []): Promise<void> {
  const writes: { key: string; value: Uint8Array | null }[] = [];
  for await (const [k, v] of node.storage.appScan('sm/archive/log/')) {
    const seq = Number(k.slice('sm/archive/log/'.length));
    const opId = strictKeys(v).opId;
    writes.push({ key: k.slice(3), value: null }, { key: `archive/op/${opId}`, value: null });
    writes.push({ key: `archive/act/${opId}`, value: encode({ seq, record: v }) }, { key: `archive/seq/${String(seq).padStart(16, '0')}`, value: Buffer.from(opId, 'utf8') });
  }
  await persist(node.storage, [...writes, ...extra]);
}

t.test('a store in the layout before the record log is converted at start', async (t) => {
  const script = history();
  const source = await open();
  t.teardown(() => source.storage.close());
  await applyPrefix(source, script, script.log.length);
  const records = await source.app.archiveRange(0, ACTS);
  const ghost = rid('ghost');
  // A record fetched and never counted, whose position the counted record took (the old position
  // index names the counted act), and a position entry past the count with no act entry.
  const leftovers = [
    { key: `archive/act/${ghost}`, value: encode({ seq: 3, record: records[5] as Uint8Array }) },
    { key: `archive/seq/${String(ACTS + 4).padStart(16, '0')}`, value: Buffer.from('nobody', 'utf8') },
  ];
  const oldKeys = async (node: Node): Promise<number> => {
    let n = 0;
    for await (const [k] of node.storage.appScan('sm/archive/')) if (k.startsWith('sm/archive/act/') || k.startsWith('sm/archive/seq/')) n++;
    return n;
  };
  const readsBack = async (t: Test, node: Node, what: string): Promise<void> => {
    const app = new LedgerApp({ cold: levelColdStore(node.storage) });
    app.load((k) => node.storage.appValue(`sm/${k}`), function* () {
      for (const k of node.storage.appKeys()) if (k.startsWith('sm/')) yield k.slice(3);
    });
    t.same((await app.archiveRange(0, ACTS)).map((r) => toHex(r)), records.map((r) => toHex(r)), `${what}: every record is served as before`);
    t.same((await app.endedActs(ACTS)).map((o) => o.opId), [...Array(ACTS).keys()].map((i) => rid(`denied-${i}`)), `${what}: the chronicle reads back`);
    t.equal((await app.act(rid('denied-7')))?.state, 'Denied', `${what}: an act reads back by its key`);
    t.equal(await app.act(ghost), undefined, `${what}: the act of the record never counted is not archived`);
    t.equal(await oldKeys(node), 0, `${what}: no key of the old layout is left`);
  };

  const node = await open();
  t.teardown(() => node.storage.close());
  await applyPrefix(node, script, script.log.length);
  await toOldLayout(node, leftovers);
  t.equal(await oldKeys(node), 2 * ACTS + 2, 'the store holds the old layout');
  const lines: string[] = [];
  t.equal(await convertArchiveLayout(levelColdStore(node.storage), (l) => lines.push(l)), ACTS, `${ACTS} records converted`);
  t.match(lines.at(-1) ?? '', /converted 24 records .*dropped 2 entries/, 'the log says what was converted and dropped');
  await readsBack(t, node, 'converted');
  t.equal(await convertArchiveLayout(levelColdStore(node.storage)), 0, 'a converted store is left as it is');

  t.test('property: a conversion cut off after any batch ends the same when run again', async (t) => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 7 }), fc.nat(8), async (slice, cut) => {
      const n = await open();
      try {
        await applyPrefix(n, script, script.log.length);
        await toOldLayout(n, leftovers);
        let puts = 0;
        // The process dies as the batch after `cut` batches would be written (it never lands).
        const dying = (c: ColdStore): ColdStore => ({ ...c, put: async (w, sync) => {
          if (puts++ === cut) throw new Error('killed');
          return c.put(w, sync);
        } });
        const first = await convertArchiveLayout(dying(levelColdStore(n.storage)), undefined, slice).then((k) => k, () => -1);
        const second = await convertArchiveLayout(levelColdStore(n.storage), undefined, slice);
        if (first >= 0) t.equal(second, 0, 'a conversion that was not cut off leaves nothing to convert');
        else t.ok(second <= ACTS, `cut after ${cut} batches of ${slice}: the rest (${second}) converted on the next start`);
        await readsBack(t, n, `slices of ${slice}, cut after ${cut} batches`);
      } finally {
        await n.storage.close();
      }
    }), { numRuns: RUNS, ...replay });
  });
});
