/**
 * The test-only fault switches (node/test-faults.ts) are armed only by the environment variable
 * with its `unsafe-test-only:` prefix: absent or empty arms nothing; switch names without the
 * prefix, an unknown name or an empty list refuse the start; no configuration file key reaches
 * them (top level or under raft). A daemon given a malformed variable refuses before it opens
 * anything. What each switch breaks is shown by test/jepsen/switches.test.ts on real daemons.
 */
import t from 'tap';
import { validateConfig } from '../../node/config.js';
import { startNode } from '../../node/daemon.js';
import { NO_TEST_FAULTS, TEST_FAULTS_ENV, testFaultsFromEnv, testFaultsSet } from '../../node/test-faults.js';
import { CustodyError } from '../../proto/errors.js';

const good = {
  id: 'n1',
  dataDir: 'data/n1',
  listen: '127.0.0.1:7101',
  http: '127.0.0.1:8101',
  peers: { n1: '127.0.0.1:7101', n2: '127.0.0.1:7102', n3: '127.0.0.1:7103' },
  tls: { ca: 'certs/ca.crt', cert: 'certs/n1.crt', key: 'certs/n1.key' },
};

const reason = (f: () => unknown): string => {
  try {
    f();
    return 'accepted';
  } catch (e) {
    return e instanceof CustodyError ? `${e.reason} ${e.detail}` : String(e);
  }
};

t.test('only the prefixed variable arms switches, each by name', async (t) => {
  t.same(testFaultsFromEnv({}), NO_TEST_FAULTS, 'absent: none');
  t.same(testFaultsFromEnv({ [TEST_FAULTS_ENV]: '' }), NO_TEST_FAULTS, 'empty: none');
  t.same(testFaultsSet(testFaultsFromEnv({ [TEST_FAULTS_ENV]: 'unsafe-test-only:readWithoutReadIndex' })), ['readWithoutReadIndex']);
  t.same(testFaultsSet(testFaultsFromEnv({ [TEST_FAULTS_ENV]: 'unsafe-test-only:applyRetryTwice, ackBeforeFsync' })), ['ackBeforeFsync', 'applyRetryTwice']);
});

t.test('a variable without the prefix, with an unknown or no switch, refuses', async (t) => {
  t.match(reason(() => testFaultsFromEnv({ [TEST_FAULTS_ENV]: 'ackBeforeFsync' })), /^CONFIG_INVALID .*does not begin with "unsafe-test-only:"/, 'names alone arm nothing');
  t.match(reason(() => testFaultsFromEnv({ [TEST_FAULTS_ENV]: 'UNSAFE-TEST-ONLY:ackBeforeFsync' })), /^CONFIG_INVALID /, 'the prefix is exact');
  t.match(reason(() => testFaultsFromEnv({ [TEST_FAULTS_ENV]: 'unsafe-test-only:ackBeforeFsync,skipFsync' })), /^CONFIG_INVALID .*not skipFsync/, 'unknown switch');
  t.match(reason(() => testFaultsFromEnv({ [TEST_FAULTS_ENV]: 'unsafe-test-only:' })), /^CONFIG_INVALID /, 'no switch named');
  t.match(reason(() => testFaultsFromEnv({ [TEST_FAULTS_ENV]: 'unsafe-test-only:readwithoutreadindex' })), /^CONFIG_INVALID /, 'names are exact');
});

t.test('no configuration file key arms a switch', async (t) => {
  t.match(reason(() => validateConfig({ ...good, testFaults: { ackBeforeFsync: true } }, '/etc/custody/n1.yaml')), /^CONFIG_INVALID .*testFaults: unknown field/, 'top level');
  t.match(reason(() => validateConfig({ ...good, raft: { testFaults: { ackBeforeFsync: true } } }, '/etc/custody/n1.yaml')), /^CONFIG_INVALID /, 'under raft');
  t.match(reason(() => validateConfig({ ...good, [TEST_FAULTS_ENV]: 'unsafe-test-only:ackBeforeFsync' }, '/etc/custody/n1.yaml')), /^CONFIG_INVALID /, 'the variable\'s name as a key');
});

t.test('a daemon with a malformed variable refuses before opening anything', async (t) => {
  const cfg = validateConfig(good, '/nonexistent/n1.yaml');
  const before = process.env[TEST_FAULTS_ENV];
  process.env[TEST_FAULTS_ENV] = 'readWithoutReadIndex';
  t.teardown(() => {
    if (before === undefined) delete process.env[TEST_FAULTS_ENV];
    else process.env[TEST_FAULTS_ENV] = before;
  });
  const e = await startNode(cfg, () => {}, () => {}).then(() => null, (x: unknown) => x);
  t.ok(e instanceof CustodyError, 'refused');
  t.equal((e as CustodyError).reason, 'CONFIG_INVALID');
  t.match((e as CustodyError).detail, /CUSTODY_TEST_FAULTS is set but does not begin/);
});
