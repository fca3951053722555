/**
 * The bound that replaced the journal's lifetime cap: acts in flight. With ended acts moving to
 * the archive, a cluster may journal any number of acts, but never more than
 * ledger.actsInFlightMax at once; ending one makes room for the next.
 */
import t from 'tap';
import { ledger as limits } from '../../proto/limits.js';
import { MemoryArchive, ScriptedCluster, UNLIMITED_RATE_POLICY, apply, type ApplyResult } from '../../ledger/index.js';
import { pmapDelete, pmapFrom, pmapSize } from '../../ledger/pmap.js';
import { rid } from '../../ledger/scenario.js';

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
