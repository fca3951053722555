/**
 * Test-only fault switches of the node: each plants one known bug, so that a Jepsen campaign
 * (test/jepsen/campaign.ts) can show its checks catch it. Never for production.
 *
 *   ackBeforeFsync        the driver answers a proposal as soon as the leader's core appended it (or
 *                         a follower forwarded it), before any fsync and before a quorum holds it:
 *                         a leader cut off or killed then loses writes it acknowledged;
 *   readWithoutReadIndex  Custody.Read answers from the node's local state at once, without a
 *                         ReadIndex round (Raft thesis §6.4): a node that lags or was cut off
 *                         serves stale reads;
 *   applyRetryTwice       the session check of (client id, sequence) is skipped, on propose and on
 *                         apply: a retried or re-forwarded proposal is applied a second time.
 *
 * How they are set. Only through the environment of the daemon's process:
 *   CUSTODY_TEST_FAULTS=unsafe-test-only:<switch>[,<switch>...]
 * A node's configuration file cannot set them (config.ts knows no such key and refuses unknown
 * ones; `raft.faults`, the simulator's switches, makes a daemon refuse to start), and the value
 * must begin with the words `unsafe-test-only:`, so a variable left over with only switch names
 * refuses the start instead of arming anything. An unknown switch name refuses the start too. A
 * node that starts with switches says so on its log before it opens its store.
 */
import { CustodyError } from '../proto/errors.js';
import type { TestFaults } from '../raft/driver.js';

export type { TestFaults };

export const TEST_FAULTS_ENV = 'CUSTODY_TEST_FAULTS';
export const TEST_FAULTS_PREFIX = 'unsafe-test-only:';
export const TEST_FAULT_NAMES = ['ackBeforeFsync', 'readWithoutReadIndex', 'applyRetryTwice'] as const;
export const NO_TEST_FAULTS: TestFaults = { ackBeforeFsync: false, readWithoutReadIndex: false, applyRetryTwice: false };

/** The switches an environment sets (none when the variable is absent); CONFIG_INVALID on a malformed value. */
export function testFaultsFromEnv(env: Readonly<Record<string, string | undefined>>): TestFaults {
  const raw = env[TEST_FAULTS_ENV];
  if (raw === undefined || raw === '') return NO_TEST_FAULTS;
  if (!raw.startsWith(TEST_FAULTS_PREFIX)) {
    throw new CustodyError('CONFIG_INVALID', `${TEST_FAULTS_ENV} is set but does not begin with "${TEST_FAULTS_PREFIX}"; fault switches plant bugs and exist only for tests: unset the variable`);
  }
  const names = raw.slice(TEST_FAULTS_PREFIX.length).split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  const unknown = names.filter((n) => !(TEST_FAULT_NAMES as readonly string[]).includes(n));
  if (names.length === 0 || unknown.length > 0) {
    throw new CustodyError('CONFIG_INVALID', `${TEST_FAULTS_ENV}: expected switches from ${TEST_FAULT_NAMES.join(', ')}${unknown.length > 0 ? `, not ${unknown.join(', ')}` : ''}`);
  }
  return {
    ackBeforeFsync: names.includes('ackBeforeFsync'),
    readWithoutReadIndex: names.includes('readWithoutReadIndex'),
    applyRetryTwice: names.includes('applyRetryTwice'),
  };
}

/** The names of the switches set, for the log line. */
export function testFaultsSet(f: TestFaults): string[] {
  return TEST_FAULT_NAMES.filter((n) => f[n]);
}
