/**
 * `<node>.lifecycle.yaml` is validated field by field as the daemon starts: relative paths resolve
 * against the file's folder, the two timing options default from proto/limits.ts and are refused
 * CONFIG_INVALID outside their range, and a file that is not a genesis is refused by name; admin
 * calls are recorded unless auditCalls is false, and witnesses are a URL and a vkey each.
 */
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaemonCluster } from '../../node/lifecycle/daemon-cluster.js';
import { defaultBackupDir, loadLifecycleConfig } from '../../node/lifecycle/node.js';
import { CustodyError } from '../../proto/errors.js';
import { lifecycle as limits } from '../../proto/limits.js';
import { POLICY } from './harness.js';

const dir = mkdtempSync(join(tmpdir(), 'custody-lifecycle-config-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const cluster = await DaemonCluster.create(dir, POLICY, 3, 3_000);
const written = readFileSync(join(dir, 'n1.lifecycle.yaml'), 'utf8');

/** Loads `text` (n1's lifecycle file by default) with its remoteTimeoutMs line replaced by `extra`. */
function load(extra: string, text = written): string | ReturnType<typeof loadLifecycleConfig> {
  const file = join(dir, 'variant.lifecycle.yaml');
  writeFileSync(file, text.replace(/^remoteTimeoutMs: .*$/m, extra));
  try {
    return loadLifecycleConfig(file);
  } catch (e) {
    return e instanceof CustodyError ? `${e.reason} ${e.detail}` : `thrown ${String(e)}`;
  }
}

t.test('the written file loads: paths resolve beside it, the genesis decodes, timings default', async (t) => {
  const c = load('');
  if (typeof c === 'string') throw new Error(c);
  t.same([...c.peers.keys()], ['n1', 'n2', 'n3']);
  t.same(c.kernel, { socket: join(dir, 'n1-kernel/run/kernel.sock') });
  t.equal(c.genesisEvent.clusterId, cluster.genesis.clusterId);
  t.equal(c.identitySecretKey.length, 32);
  t.equal(c.remoteTimeoutMs, limits.remoteTimeoutMsDefault);
  t.equal(c.signingSetWaitMs, limits.signingSetWaitMsDefault);
});

t.test('backupDir: absent, the default beside the data folder; given, resolved beside the file; empty, refused', async (t) => {
  const dflt = load('');
  if (typeof dflt === 'string') throw new Error(dflt);
  t.equal(dflt.backupDir, null, 'absent: the daemon picks the default');
  t.equal(defaultBackupDir(join(dir, 'data', 'n1')), join(dir, 'data', 'n1.share-backups'), 'beside the data folder, not inside it');
  t.equal(defaultBackupDir('data/n1/'), join(process.cwd(), 'data', 'n1.share-backups'), 'a relative data folder, with a trailing slash');
  const c = load('backupDir: vault/n1');
  if (typeof c === 'string') throw new Error(c);
  t.equal(c.backupDir, join(dir, 'vault', 'n1'));
  t.match(load('backupDir: ""'), /^CONFIG_INVALID .*: backupDir: required, a non-empty string/);
});

t.test('both timings are taken when in range and refused by name when not', async (t) => {
  const c = load('remoteTimeoutMs: 2500\nsigningSetWaitMs: 90000');
  if (typeof c === 'string') throw new Error(c);
  t.equal(c.remoteTimeoutMs, 2_500);
  t.equal(c.signingSetWaitMs, 90_000);
  const cases: [string, string][] = [
    [`remoteTimeoutMs: ${limits.remoteTimeoutMsMin - 1}`, 'remoteTimeoutMs'],
    [`remoteTimeoutMs: ${limits.remoteTimeoutMsMax + 1}`, 'remoteTimeoutMs'],
    ['remoteTimeoutMs: soon', 'remoteTimeoutMs'],
    ['remoteTimeoutMs: 1500.5', 'remoteTimeoutMs'],
    [`signingSetWaitMs: ${limits.signingSetWaitMsMin - 1}`, 'signingSetWaitMs'],
    [`signingSetWaitMs: ${limits.signingSetWaitMsMax + 1}`, 'signingSetWaitMs'],
  ];
  for (const [line, field] of cases) {
    const r = load(line);
    t.match(r, new RegExp(`^CONFIG_INVALID .*variant\\.lifecycle\\.yaml: ${field}: an integer in \\[`), line);
  }
});

t.test('a genesis that does not decode, a missing field or a file that is not YAML is refused CONFIG_INVALID', async (t) => {
  writeFileSync(join(dir, 'garbage.hex'), 'a1ff00');
  t.match(load('', written.replace(/^genesis: .*$/m, 'genesis: garbage.hex')), /^CONFIG_INVALID .*: genesis: /);
  const noPeers = join(dir, 'no-peers.lifecycle.yaml');
  writeFileSync(noPeers, written.replace(/^peers:\n(  .*\n)+/m, ''));
  t.throws(() => loadLifecycleConfig(noPeers), { reason: 'CONFIG_INVALID', message: /peers: required/ });
  const notYaml = join(dir, 'broken.lifecycle.yaml');
  writeFileSync(notYaml, 'admin: [127.0.0.1\n');
  t.throws(() => loadLifecycleConfig(notYaml), { reason: 'CONFIG_INVALID', message: /\(file\)/ });
});

t.test('auditCalls: on unless false; witnesses: each a URL and the witness\'s vkey', async (t) => {
  const off = load('');
  if (typeof off === 'string') throw new Error(off);
  t.equal(off.auditCalls, false, 'the test clusters write auditCalls: false');
  const on = load('', written.replace(/^auditCalls: .*\n/m, ''));
  if (typeof on === 'string') throw new Error(on);
  t.equal(on.auditCalls, true, 'absent: admin calls are recorded');
  t.match(load('auditCalls: maybe', written.replace(/^auditCalls: .*\n/m, '')), /^CONFIG_INVALID .*: auditCalls: true or false/);
  const vkey = 'witness.example/w1+b46481bd+BH+uksXSgTYl3jyslhWnye4C4IluqK4S0jY920W+E6Bv';
  const w = load(`witnesses:\n  - url: http://127.0.0.1:7380/\n    vkey: ${vkey}`);
  if (typeof w === 'string') throw new Error(w);
  t.same(w.witnesses?.map((x) => [x.url, x.verifier.name]), [['http://127.0.0.1:7380', 'witness.example/w1']], 'the URL without its trailing slash, the vkey parsed');
  t.match(load(`witnesses:\n  - url: http://127.0.0.1:7380\n    vkey: ${vkey.replace('b46481bd', 'b46481be')}`), /^CONFIG_INVALID .*: witnesses\[0\]\.vkey: .*key ID does not match/, 'a vkey whose ID does not match its key');
  t.match(load('witnesses:\n  - url: ftp://x\n    vkey: a+b+c'), /^CONFIG_INVALID .*: witnesses\[0\]\.url: an http/);
  t.match(load('witnesses: yes'), /^CONFIG_INVALID .*: witnesses: a list/);
});
