/**
 * Each test-only fault switch (node/test-faults.ts) plants a bug; a short campaign (campaign.ts)
 * on real daemons must catch it. The schedule is given, not drawn, so the catch does not depend
 * on a seed's luck: one host is cut off from 3 s to 9 s of a 12 s campaign, clients staying bound
 * to their nodes:
 *   readWithoutReadIndex  a follower's host is cut off; it answers reads from its own state while
 *                         the majority writes on: stale reads, a linearizability violation
 *                         (nineteen calls in twenty are reads here: a cut-off client's write waits
 *                         out its timeout, its reads are what shows the bug);
 *   ackBeforeFsync        the leader's host is cut off; it acknowledges writes no quorum holds, which the next
 *                         leader's log replaces: lost acknowledged writes. The acknowledgments name
 *                         indexes that the resent writes contradict (retry-applied-again), and when
 *                         a read follows a lost write the history is not linearizable either;
 *                         which of the two shows first depends on the calls' timing, so either counts;
 *   applyRetryTwice       a resent write is applied a second time, from the first seconds on.
 * Each catch must show within the 12 s of the campaign (the summary's atMs of the first one).
 * The real-process run takes about 20 s per switch. Needs root and `ip netns`.
 */
import t from 'tap';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCampaign } from './campaign.js';
import { FOLLOWER, LEADER, nemesisUnavailable, type Fault } from './nemesis.js';

const SECONDS = 12;
const isolate = (node: string): Fault[] => [{ at: 3_000, healAt: 9_000, kind: 'isolate', node, peer: null, skewSeconds: null }];
const skip = nemesisUnavailable(['isolate']) ?? false;

const cases: [string, Fault[], number, readonly string[]][] = [
  ['readWithoutReadIndex', isolate(FOLLOWER), 0.95, ['linearizability']],
  ['ackBeforeFsync', isolate(LEADER), 0.5, ['linearizability', 'retry-applied-again']],
  ['applyRetryTwice', isolate(LEADER), 0.5, ['retry-applied-again', 'linearizability']],
];

for (const [sw, schedule, readShare, checks] of cases) {
  t.test(`${sw}: caught within a ${SECONDS} s campaign`, { skip, timeout: 300_000 }, async (t) => {
    const historyFile = join(tmpdir(), `custody-jepsen-${sw}-${process.pid}.json`);
    t.teardown(() => rmSync(historyFile, { force: true }));
    const s = await runCampaign({ seconds: SECONDS, seed: 1, mix: ['isolate'], schedule, clients: 9, readShare, testFaults: sw, historyFile, log: () => undefined });
    const first = s.found[0];
    t.comment(`${s.ops} calls; ${s.violations} violations; first: ${first ? `${first.check} at ${first.atMs} ms: ${first.detail.split('\n')[0]}` : 'none'}`);
    t.equal(s.verdict, 'violation', `the planted bug is found (${s.violations} violations)`);
    t.ok(first !== undefined && checks.includes(first.check), `caught by ${first?.check ?? 'nothing'} (one of ${checks.join(', ')})`);
    t.ok(first !== undefined && first.atMs <= SECONDS * 1000, `shown by the history at ${first?.atMs ?? '-'} ms, within ${SECONDS} s`);
    // Stale reads show only as a history that is not linearizable: that check must be the one.
    if (sw === 'readWithoutReadIndex') t.equal(s.linearizability, 'violation', 'the history itself is not linearizable');
  });
}
