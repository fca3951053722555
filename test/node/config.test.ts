/**
 * The node config is validated field by field (CONFIG_INVALID names the field), and a node refuses
 * to start with any Raft fault switch set.
 */
import t from 'tap';
import { validateConfig } from '../../node/config.js';
import { startNode } from '../../node/daemon.js';
import { CustodyError } from '../../proto/errors.js';

const good = {
  id: 'n1',
  dataDir: 'data/n1',
  listen: '127.0.0.1:7101',
  http: '127.0.0.1:8101',
  peers: { n1: '127.0.0.1:7101', n2: '127.0.0.1:7102', n3: '127.0.0.1:7103' },
  tls: { ca: 'certs/ca.crt', cert: 'certs/n1.crt', key: 'certs/n1.key' },
};

function refusal(doc: unknown): string {
  try {
    validateConfig(doc, '/etc/custody/n1.yaml');
    return 'accepted';
  } catch (e) {
    return e instanceof CustodyError ? `${e.reason} ${e.detail}` : String(e);
  }
}

t.test('a valid config resolves paths against the file and applies defaults', async (t) => {
  const c = validateConfig(good, '/etc/custody/n1.yaml');
  t.equal(c.dataDir, '/etc/custody/data/n1');
  t.equal(c.tls.ca, '/etc/custody/certs/ca.crt');
  t.equal(c.raft.tickMs, 100);
  t.equal(c.raft.preVote, true);
  t.same([...c.peers.keys()], ['n1', 'n2', 'n3']);
});

t.test('each invalid field is refused with CONFIG_INVALID naming the file and the field', async (t) => {
  t.match(refusal({ ...good, id: undefined }), /^CONFIG_INVALID \/etc\/custody\/n1\.yaml: id: required/);
  t.match(refusal({ ...good, id: 'n/1' }), /CONFIG_INVALID .*: id: /);
  t.match(refusal({ ...good, listen: '127.0.0.1' }), /CONFIG_INVALID .*: listen: "127\.0\.0\.1" must be host:port/);
  t.match(refusal({ ...good, peers: { n2: '127.0.0.1:7102' } }), /CONFIG_INVALID .*: peers: must list this node's own id "n1"/);
  t.match(refusal({ ...good, peers: { n1: '127.0.0.1:7101', n2: 'nope' } }), /CONFIG_INVALID .*: peers\.n2: /);
  t.match(refusal({ ...good, tls: { ca: 'a' } }), /CONFIG_INVALID .*: tls\.cert: required/);
  t.match(refusal({ ...good, raft: { heartbeatTicks: 10, electionTicks: 10 } }), /CONFIG_INVALID .*: raft\.heartbeatTicks: must be smaller/);
  t.match(refusal({ ...good, raft: { tickMs: 0 } }), /CONFIG_INVALID .*: raft\.tickMs: must be an integer/);
  t.match(refusal({ ...good, raft: { tickMS: 100 } }), /CONFIG_INVALID .*: raft\.tickMS: unknown field/);
  t.match(refusal({ ...good, extra: 1 }), /CONFIG_INVALID .*: extra: unknown field/);
  t.match(refusal([1, 2]), /CONFIG_INVALID .*: \(top level\): must be a mapping/);
});

t.test('a node refuses to start with any fault switch set', async (t) => {
  const cfg = validateConfig({ ...good, raft: { faults: { voteIgnoringLog: true } } }, '/nonexistent/n1.yaml');
  const e = await startNode(cfg, () => {}, () => {}).then(() => null, (x: unknown) => x);
  t.ok(e instanceof CustodyError, 'refused');
  t.equal((e as CustodyError).reason, 'CONFIG_INVALID');
  t.match((e as CustodyError).detail, /raft\.faults: fault switches \(voteIgnoringLog\)/);
});
