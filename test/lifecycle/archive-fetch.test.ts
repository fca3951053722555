/**
 * Installing a snapshot whose state counts archived acts this node lacks (node/ledger-app.ts
 * restore): the records come from peers by position, are checked against the hash chain, and are
 * visible only once a state counts them.
 *
 *  - property: whatever prefix of the history a node holds, installing the snapshot keeps that
 *    prefix (it fetches exactly the records it lacks, in answers of any size) and ends with the
 *    source's root and every act readable;
 *  - property: a peer serving the range altered, reordered, short, with a record dropped or
 *    duplicated is refused ARCHIVE_RECORD_REJECTED and the next peer is used; with no honest peer
 *    the install fails ARCHIVE_UNAVAILABLE and nothing becomes visible;
 *  - property: records stored past the state's count are invisible to every read (act, chronicle,
 *    a peer's fetch);
 *  - a peer serves only what it counts, within the bounds;
 *  - crash midway: the store is closed between the fetch and the install, reopened with the old
 *    state; the fetched records are invisible, and the next install re-verifies them and fetches
 *    only the rest.
 *
 * A failure prints fast-check's seed and path; replay it exactly with
 *   FC_SEED=<seed> FC_PATH=<path> npx tap dist/test/lifecycle/archive-fetch.test.js
 */
import t from 'tap';
import fc from 'fast-check';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LevelStorage } from '../../raft/storage/leveldb.js';
import { ScriptedCluster, solanaAddressOf } from '../../ledger/scenario.js';
import { stateRoot } from '../../ledger/state.js';
import { decode, encode, toHex } from '../../ledger/encoding.js';
import { ledger as ledgerLimits } from '../../proto/limits.js';
import { type ArchiveSource, LedgerApp, archiveRecordWrites, encodeLedgerCommand, levelColdStore } from '../../node/ledger-app.js';
import { conf } from './ledger-nodes.js';

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

async function open(source?: ArchiveSource, dir?: string, log?: (line: string) => void): Promise<Node> {
  const d = dir ?? (await mkdtemp(join(tmpdir(), 'custody-archive-fetch-')));
  if (dir === undefined) dirs.push(d);
  const storage = await LevelStorage.open({ dir: d, bootstrapConf: conf, recoveryHint: 'test' });
  const app = new LedgerApp({ cold: levelColdStore(storage), ...(source ? { archiveSource: source } : {}), ...(log ? { log } : {}) });
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

/** The record with one letter of its destination changed (still a well-formed record). */
function alter(record: Uint8Array, bit: number): Uint8Array {
  const b = Buffer.from(record);
  const at = b.indexOf(solanaAddressOf('bc1-evil'));
  if (at < 0) throw new Error('the record names no destination');
  b[at + 4 + (bit % 4)] = 0x61 + (bit % 26) === b[at + 4 + (bit % 4)] ? 0x7a : 0x61 + (bit % 26);
  return b;
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

  t.test('property: any held prefix is kept, only the rest is fetched, in answers of any size', async (t) => {
    await fc.assert(fc.asyncProperty(fc.nat(script.log.length), fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 8 }), async (held, sizes) => {
      let k = 0;
      // An honest peer whose answers are cut short at varying sizes (as a full answer is).
      const source = sourceOf([['peer', async (from, n) => (await honest(from, n)).slice(0, sizes[k++ % sizes.length])]]);
      const node = await open(source);
      try {
        await applyPrefix(node, script, held);
        const own = node.app.state.cluster?.archived.count ?? 0;
        await install(node, snap);
        t.equal(node.app.root(), want, `holding ${held} entries (${own} acts): the root`);
        t.equal(source.asked.get('peer') ?? 0, ACTS - own, `fetched exactly the ${ACTS - own} acts it lacked`);
        t.same((await node.app.endedActs(ACTS)).map((o) => o.opId), [...Array(ACTS).keys()].map((i) => `denied-${i}`), 'the whole chronicle reads back');
        t.equal((await node.app.act(`denied-${ACTS - 1}`))?.state, 'Denied', 'the last fetched act reads back');
      } finally {
        await node.storage.close();
      }
    }), { numRuns: RUNS, ...replay });
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
    await fc.assert(fc.asyncProperty(fc.constantFrom(...kinds), fc.nat(), fc.nat(), fc.nat(script.log.length), async (kind, at, bit, held) => {
      const lines: string[] = [];
      const source = sourceOf([['liar', liar(kind, at, bit)], ['good', honest]]);
      const node = await open(source, undefined, (l) => lines.push(l));
      try {
        await applyPrefix(node, script, held);
        const own = node.app.state.cluster?.archived.count ?? 0;
        await install(node, snap);
        t.equal(node.app.root(), want, `${kind}: installed from the honest peer`);
        t.ok(own === ACTS || lines.some((l) => /liar refused/.test(l)), `${kind}: the lying peer was refused (${lines.find((l) => /liar/.test(l)) ?? 'nothing to fetch'})`);
        t.same((await node.app.endedActs(ACTS)).map((o) => o.opId), [...Array(ACTS).keys()].map((i) => `denied-${i}`), `${kind}: the chronicle is the honest one`);
      } finally {
        await node.storage.close();
      }
    }), { numRuns: RUNS, ...replay });
    // With only a liar, the install fails and nothing it wrote becomes readable.
    const node = await open(sourceOf([['liar', liar('alter', 3, 1)]]));
    t.teardown(() => node.storage.close());
    t.equal(await Promise.resolve(node.app.restore(snap)).then(() => 'installed', reasonOf), 'ARCHIVE_UNAVAILABLE', 'no honest peer: ARCHIVE_UNAVAILABLE');
    t.equal(node.app.state.cluster, null, 'the state is left as it was');
    t.equal(await node.app.act('denied-0'), undefined, 'and the records the liar served are not visible');
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
        for (let seq = own; seq < upto; seq++) t.equal(await node.app.act(`denied-${seq}`), undefined, `act ${seq} (staged, not counted) is unknown`);
        t.equal((await node.app.endedActs(ACTS)).length, own, `the chronicle holds the ${own} counted acts`);
        t.equal(await node.app.archiveRange(own, 1).then(() => 'served', reasonOf), 'ARCHIVE_RANGE_REFUSED', 'a peer is not served what is not counted');
        if (own > 0) t.equal((await node.app.act(`denied-${own - 1}`))?.state, 'Denied', 'a counted act reads back');
      } finally {
        await node.storage.close();
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
    t.equal(await again.app.act('denied-0'), undefined, 'a fetched record is not visible');
    t.same(await again.app.endedActs(ACTS), [], 'nor in the chronicle');
    await again.storage.close();

    const rest = sourceOf([['peer', honest]]);
    const third = await open(rest, first.dir);
    t.teardown(() => third.storage.close());
    await install(third, snap);
    t.equal(third.app.root(), want, 'the next install completes');
    t.equal(rest.asked.get('peer'), ACTS - half, `fetching only the ${ACTS - half} records it did not hold`);
    t.equal((await third.app.act('denied-0'))?.state, 'Denied', 'the records fetched before the crash are now visible');

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
