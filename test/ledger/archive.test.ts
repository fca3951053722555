/**
 * The bound that replaced the journal's lifetime cap: acts in flight. With ended acts moving to
 * the archive, a cluster may journal any number of acts, but never more than
 * ledger.actsInFlightMax at once; ending one makes room for the next.
 */
import t from 'tap';
import fc from 'fast-check';
import { EMPTY_ARCHIVE_HEAD, archiveLink, archiveLinkOf } from '../../ledger/archive.js';
import { toHex } from '../../ledger/encoding.js';
import { ledger as limits } from '../../proto/limits.js';
import { MemoryArchive, ScriptedCluster, UNLIMITED_RATE_POLICY, apply, type ApplyResult } from '../../ledger/index.js';
import { pmapDelete, pmapFrom, pmapSize } from '../../ledger/pmap.js';
import { rid } from '../../ledger/scenario.js';

// A failing property prints its seed and path; replay it with FC_SEED=<seed> FC_PATH=<path>.
const replay = {
  ...(process.env.FC_SEED !== undefined ? { seed: Number(process.env.FC_SEED) } : {}),
  ...(process.env.FC_PATH !== undefined ? { path: process.env.FC_PATH } : {}),
};

t.test('acts in flight are bounded; ending one makes room, and the archive keeps every ended act', async (t) => {
  const s = new ScriptedCluster({ label: 'in-flight', stepMs: 0, policy: UNLIMITED_RATE_POLICY });
  s.genesis();
  s.createKey('k1');
  // The acts go through the archive-backed apply; the script's own copy keeps everything.
  const archive = new MemoryArchive();
  let live = s.state;
  const submit = (opId: string): ApplyResult => {
    const before = s.log.length;
    s.submit(opId, s.act('k1', { amount: 1n }));
    s.nowMs += 2; // each act at its own stamp
    const r = apply(live, s.log[before]!, archive);
    archive.add(r.archived);
    live = r.state;
    return r.result;
  };
  for (let i = 0; i < limits.actsInFlightMax; i++) {
    const r = submit(`a-${i}`);
    if (!r.ok) throw new Error(`act ${i} refused ${r.reason}: ${r.detail}`);
  }
  t.equal(live.cluster?.inFlight, limits.actsInFlightMax, `${limits.actsInFlightMax} acts in flight`);
  t.match(submit('one-more'), { ok: false, reason: 'LIMIT_EXCEEDED' }, 'one more is refused LIMIT_EXCEEDED');
  const before = s.log.length;
  s.abort('a-0', 'REMOTE_TIMEOUT');
  const ended = apply(live, s.log[before]!, archive);
  archive.add(ended.archived);
  live = ended.state;
  t.equal(ended.archived.length, 1, 'the aborted act leaves for the archive');
  t.notOk(Object.hasOwn(live.cluster!.ops, 'a-0'), 'and memory');
  t.match(submit('one-more-again'), { ok: true }, 'its slot admits the next act');
  t.equal(archive.act(rid('a-0'))?.state, 'Aborted');
  t.equal(live.cluster?.opCount, limits.actsInFlightMax + 1, 'every act is counted, ended or not');
});

t.test('pmapDelete removes one key and shares the rest', async (t) => {
  const m = pmapFrom([['a', 1], ['b', 2], ['c', 3]]);
  const d = pmapDelete(m, 'b');
  t.same(Object.keys(d).sort(), ['a', 'c']);
  t.equal(pmapSize(d), 2);
  t.same(Object.keys(m).sort(), ['a', 'b', 'c'], 'the original is unchanged');
  t.equal(pmapDelete(m, 'zz'), m, 'deleting an absent key returns the same map');
  t.same(Object.keys(pmapDelete(pmapDelete(pmapDelete(m, 'a'), 'b'), 'c')), []);
});

t.test('property: the archive link computed in place equals its definition, at every CBOR width of the position', async (t) => {
  // Positions on each side of every CBOR unsigned-integer width (RFC 8949 §3.1), and any other.
  const edges = [0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1];
  const seq = fc.oneof(fc.constantFrom(...edges), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));
  let checked = 0;
  await fc.assert(fc.property(seq, fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 3000 }), (count, head, record) => {
    const fast = archiveLink({ count, head }, record);
    const slow = archiveLinkOf({ count, head }, record);
    checked++;
    return fast.count === slow.count && toHex(fast.head) === toHex(slow.head) && fast.head.constructor === Uint8Array;
  }), { numRuns: 500, ...replay });
  t.equal(checked >= 500, true, `${checked} links compared`);
  // A chain of links from the empty archive, as a resync re-hashes one.
  let a = EMPTY_ARCHIVE_HEAD;
  let b = EMPTY_ARCHIVE_HEAD;
  for (let i = 0; i < 300; i++) {
    const r = Uint8Array.from({ length: 1 + (i % 50) }, (_, j) => (i * 31 + j) & 0xff);
    a = archiveLink(a, r);
    b = archiveLinkOf(b, r);
  }
  t.same({ count: a.count, head: toHex(a.head) }, { count: b.count, head: toHex(b.head) }, 'a chain of 300 links ends at the same head');
  const odd = { count: 3, head: new Uint8Array(31) };
  t.equal(toHex(archiveLink(odd, new Uint8Array(4)).head), toHex(archiveLinkOf(odd, new Uint8Array(4)).head), 'a head of another length takes the definition itself');
});
