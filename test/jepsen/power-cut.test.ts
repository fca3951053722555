/**
 * Power cuts (nemesis.ts `power-cut`) on real daemons whose data directories are lossyfs mounts
 * (lossyfs.ts): a 10 s register campaign whose only faults are power cuts, given rather than
 * drawn so that both runs meet the same faults: the leader's power is cut from 3 s to 4.5 s, then
 * every node's at once from 5 s to 7 s (each node loses what it had not fsynced and restarts).
 *   a clean node       must come through with no violation: whatever a quorum acknowledged was
 *                      fsynced by that quorum, so not even the cut of every node loses it;
 *   ackBeforeFsync     (node/test-faults.ts) answers writes before any fsync or quorum holds them:
 *                      the campaign must catch it, by a history that is not linearizable or by
 *                      acknowledged indexes that a resent write contradicts.
 * About 20 s per run. Needs root, `ip netns`, /dev/fuse and the Debian packages fuse and
 * python3-fusepy (skipped, saying why, elsewhere).
 */
import t, { type Test } from 'tap';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCampaign } from './campaign.js';
import { ALL_NODES, LEADER, nemesisUnavailable, type Fault, type NemesisEvent } from './nemesis.js';

const SECONDS = 10;
const cut = (node: string, at: number, healAt: number): Fault => ({ at, healAt, kind: 'power-cut', node, peer: null, skewSeconds: null });
const schedule: Fault[] = [cut(LEADER, 3_000, 4_500), cut(ALL_NODES, 5_000, 7_000)];
const skip = nemesisUnavailable(['power-cut']) ?? false;

const run = async (t: Test, testFaults: string | undefined): Promise<{ s: Awaited<ReturnType<typeof runCampaign>>; events: NemesisEvent[] }> => {
  const historyFile = join(tmpdir(), `custody-jepsen-power-cut-${testFaults ?? 'clean'}-${process.pid}.json`);
  t.teardown(() => rmSync(historyFile, { force: true }));
  const s = await runCampaign({ seconds: SECONDS, seed: 1, mix: ['power-cut'], schedule, clients: 9, readShare: 0.5, historyFile, log: () => undefined, ...(testFaults !== undefined ? { testFaults } : {}) });
  const first = s.found[0];
  t.comment(`${s.ops} calls (${s.ok} ok, ${s.indeterminate} indeterminate); ${s.violations} violations; first: ${first ? `${first.check} at ${first.atMs} ms: ${first.detail.split('\n')[0]}` : 'none'}`);
  const saved = JSON.parse(readFileSync(historyFile, 'utf8')) as { schedule: Fault[]; events: NemesisEvent[] };
  t.same(saved.schedule, schedule, 'the history saves the power cuts played');
  return { s, events: saved.events };
};

t.test(`a clean node survives power cuts of its leader and of every node: no violation in ${SECONDS} s`, { skip, timeout: 300_000 }, async (t) => {
  const { s, events } = await run(t, undefined);
  t.same(events.map((e) => e.what), ['fault', 'heal', 'fault', 'heal'], 'both cuts played and healed');
  t.match(events[0]?.fault ?? '', /power-cut leader \(n\d\)$/, `the leader's cut: ${events[0]?.fault}`);
  t.match(events[2]?.fault ?? '', /power-cut all$/, `every node's cut: ${events[2]?.fault}`);
  t.equal(s.faults, 2, 'two faults');
  t.equal(s.verdict, 'ok', `no violation (${s.found.map((f) => `${f.check}: ${f.detail.split('\n')[0]}`).join('; ') || 'none'})`);
  t.equal(s.linearizability, 'ok', `the history of ${s.ops} calls is linearizable`);
  t.ok(s.ok > 50, `${s.ok} calls answered across the cuts`);
});

t.test(`ackBeforeFsync: caught within a ${SECONDS} s campaign of power cuts`, { skip, timeout: 300_000 }, async (t) => {
  const { s } = await run(t, 'ackBeforeFsync');
  const first = s.found[0];
  t.equal(s.verdict, 'violation', `the planted bug is found (${s.violations} violations)`);
  t.ok(first !== undefined && ['linearizability', 'retry-applied-again'].includes(first.check), `caught by ${first?.check ?? 'nothing'}`);
  t.ok(first !== undefined && first.atMs <= SECONDS * 1000, `shown by the history at ${first?.atMs ?? '-'} ms, within ${SECONDS} s`);
});
