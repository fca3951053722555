/**
 * Setting up separate hosts (node/deploy.ts): `custody init node` writes one host's configs,
 * keys and certificate request; `custody certs sign` turns the request into the node certificate
 * on the CA host; `custody init genesis` writes the genesis node and kernel configs both name.
 * Every invalid value is refused with CONFIG_INVALID naming the option, and no file is replaced
 * without --force.
 *
 * The round-trip property (what init writes is what the loaders read back) is a fast-check
 * property; a failure prints its seed and path; replay with
 *   FC_SEED=<seed> FC_PATH=<path> npx tap dist/test/node/init.test.js
 */
import t from 'tap';
import fc from 'fast-check';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { CLI_PATH } from '../../node/cluster.js';
import { createRequest, signRequest } from '../../node/certs.js';
import { loadConfig } from '../../node/config.js';
import { initNode, makeGenesis, type GenesisOptions, type InitNodeOptions } from '../../node/deploy.js';
import { loadLifecycleConfig } from '../../node/lifecycle/node.js';
import { loadConfig as loadKernelConfig } from '../../kernel/config.js';
import { fromHex, toHex } from '../../ledger/encoding.js';
import { decodeEvent, eventCid } from '../../ledger/events.js';
import { encodeDocument } from '../../ledger/policy-engine/index.js';
import { makeApproverKey } from '../../ledger/decision.js';
import { CustodyError } from '../../proto/errors.js';

const replay = {
  ...(process.env['FC_SEED'] !== undefined ? { seed: Number(process.env['FC_SEED']) } : {}),
  ...(process.env['FC_PATH'] !== undefined ? { path: process.env['FC_PATH'] } : {}),
};

function custody(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI_PATH, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function temp(t: { teardown(f: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'custody-init-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** "REASON: detail" of what `f` throws, or "accepted". */
function refusal(f: () => unknown): string {
  try {
    f();
    return 'accepted';
  } catch (e) {
    return e instanceof CustodyError ? `${e.reason}: ${e.detail}` : String(e);
  }
}

const mode = (p: string): string => (statSync(p).mode & 0o777).toString(8);
const PEERS = 'n1=10.9.0.1,n2=10.9.0.2,n3=10.9.0.3';

t.test('init node writes one host\'s configs, private keys 0600 and a request the CA signs', async (t) => {
  const d = temp(t);
  const out = join(d, 'etc');
  const r = custody('init', 'node', '--id', 'n1', '--host', '10.9.0.1', '--peers', PEERS, '--out', out, '--data-dir', join(d, 'data'), '--kernel-data-dir', join(d, 'kstore'), '--kernel-socket', join(d, 'run', 'k.sock'), '--socket-group', '');
  t.equal(r.code, 0, r.err);
  t.match(r.out, /Next steps:[\s\S]*custody certs sign --dir <ca-dir> --csr n1\.csr[\s\S]*custody init genesis[\s\S]*systemctl enable --now custody-kernel@n1 custody-node@n1/, 'prints the next steps');
  const pub = /identity public key \(for the genesis\): ([0-9a-f]{64})/.exec(r.out)?.[1];
  t.equal(pub, readFileSync(join(out, 'n1.identity.pub'), 'utf8').trim(), 'prints the identity public key it wrote');
  t.equal(toHex(ed25519.getPublicKey(fromHex(readFileSync(join(out, 'n1.identity'), 'utf8').trim()))), pub, 'which is the public half of the identity seed');
  for (const [p, m] of [['n1.identity', '600'], ['certs/n1.key', '600'], ['kernel/n1.key', '600'], ['kernel', '700'], ['n1.yaml', '644'], ['certs/n1.csr', '644']] as const) {
    t.equal(mode(join(out, p)), m, `${p} is ${m}`);
  }

  const cfg = loadConfig(join(out, 'n1.yaml'));
  t.same([cfg.listen, cfg.http, cfg.dataDir], ['10.9.0.1:7400', '10.9.0.1:8400', join(d, 'data')], 'node config: listen, http, dataDir');
  t.same([...cfg.peers], [['n1', '10.9.0.1:7400'], ['n2', '10.9.0.2:7400'], ['n3', '10.9.0.3:7400']], 'the peers');
  t.same(cfg.tls, { ca: join(out, 'certs/ca.crt'), cert: join(out, 'certs/n1.crt'), key: join(out, 'certs/n1.key') }, 'TLS files where the next steps put them');

  // The CA host signs the request; the certificate chains to the CA and names the node and its address.
  const ca = join(d, 'ca');
  t.equal(custody('certs', 'ca', '--dir', ca).code, 0);
  const signed = custody('certs', 'sign', '--dir', ca, '--csr', join(out, 'certs/n1.csr'));
  t.equal(signed.code, 0, signed.err);
  t.match(signed.out, /signed node certificate .*n1\.crt for n1 \(subjectAltName DNS:n1, IP:10\.9\.0\.1\)/, 'echoes what it signed');
  const v = spawnSync('openssl', ['verify', '-CAfile', join(ca, 'ca.crt'), join(out, 'certs/n1.crt')], { encoding: 'utf8' });
  t.equal(v.status, 0, `openssl verify: ${v.stdout.trim()}`);
  const text = spawnSync('openssl', ['x509', '-in', join(out, 'certs/n1.crt'), '-noout', '-text', '-subject', '-nameopt', 'RFC2253'], { encoding: 'utf8' }).stdout;
  t.match(text, /subject=CN=n1,OU=node,O=custody/, 'subject CN=n1, OU=node');
  t.match(text, /DNS:n1, IP Address:10\.9\.0\.1/, 'subjectAltName DNS:n1 and the host');
  t.match(text, /TLS Web Server Authentication, TLS Web Client Authentication/, 'serves and dials peers');
  const mod = (args: string[]): string => spawnSync('openssl', args, { encoding: 'utf8' }).stdout;
  t.equal(mod(['x509', '-in', join(out, 'certs/n1.crt'), '-noout', '-pubkey']), mod(['pkey', '-in', join(out, 'certs/n1.key'), '-pubout']), 'the certificate is for the key that stayed on the host');
  const crt = join(out, 'certs/n1.crt');
  t.throws(() => signRequest(ca, join(out, 'certs/n1.csr'), crt), /exists; repeat with --force/, 'signing again over an existing certificate is refused without --force');
  t.equal(signRequest(ca, join(out, 'certs/n1.csr'), crt, 825, true).id, 'n1', 'and allowed with it');

  // A tampered request (its subject's CN rewritten) fails its self-signature.
  const pem = readFileSync(join(out, 'certs/n1.csr'), 'utf8');
  const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s/g, ''), 'base64');
  const at = der.indexOf(Buffer.from('n1'));
  der[at + 1] = '2'.charCodeAt(0);
  writeFileSync(join(d, 'tampered.csr'), `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE REQUEST-----\n`);
  t.match(refusal(() => signRequest(ca, join(d, 'tampered.csr'), join(d, 'tampered.crt'))), /^SIGNATURE_INVALID: .*tampered\.csr is not a certificate request with a valid self-signature/, 'a tampered request is refused (SIGNATURE_INVALID)');
  createRequest(join(d, 'op.key'), join(d, 'op.csr'), 'operator', 'alice');
  t.match(refusal(() => signRequest(ca, join(d, 'op.csr'), join(d, 'op.crt'))), /^PAYLOAD_REJECTED: .*subject "CN=alice,OU=operator,O=custody" is not O=custody, OU=node/, 'only node requests are signed as node certificates');
  t.throws(() => statSync(join(d, 'tampered.crt')), 'and nothing is written for them');
});

t.test('init genesis: the node and the kernel pin the same genesis from genesis.hex', async (t) => {
  const d = temp(t);
  const ids = ['n1', 'n2', 'n3'];
  for (const [i, id] of ids.entries()) initNode({ id, host: `10.9.0.${i + 1}`, peers: [PEERS], out: join(d, id), kernelDataDir: join(d, id, 'kstore'), socketGroup: '' });
  const approvers = ['alice', 'bob', 'carol'].map((id) => makeApproverKey(id));
  writeFileSync(join(d, 'policy.yaml'), [
    'version: 1', 'groups:', '  approvers:', '    treasury: [alice, bob]', 'rules:',
    '  - id: cold', '    match: { assets: [BTC], destination: { allow: [bc1-cold] }, amount: { max: "0.01" } }', '    action: REQUIRE_APPROVAL', '    approvals: { k: 2, group: treasury, ttl: 1h }', '',
  ].join('\n'));
  const g = custody('init', 'genesis', '--out', join(d, 'genesis.hex'), ...ids.flatMap((id) => ['--node', `${id}=${join(d, id, `${id}.identity.pub`)}`]),
    ...approvers.flatMap((a) => ['--approver', `${a.id}=${toHex(a.publicKey)}`]), '--security', 'carol', '--cluster-id', 'c-three', '--policy', join(d, 'policy.yaml'));
  t.equal(g.code, 0, g.err);
  t.match(g.out, /genesis of c-three \(cid [0-9a-f]{64}\)[\s\S]*nodes: n1, n2, n3; approvers: alice \(governor\), bob \(governor\), carol \(governor, security\); quorum 2, freeze 1/, 'says what it wrote');
  const bytes = fromHex(readFileSync(join(d, 'genesis.hex'), 'utf8').trim());
  const ev = decodeEvent(bytes);
  if (ev.type !== 'ClusterGenesis') throw new Error('not a genesis');
  t.same(ev.nodes.map((n) => [n.id, toHex(n.identityKey), n.passport]), ids.map((id) => [id, readFileSync(join(d, id, `${id}.identity.pub`), 'utf8').trim(), `${id}-p1`]), 'every node with the identity key its host made');
  t.same(ev.policy.rules.map((r) => [r.id, r.match.destination?.allow, r.action]), [['cold', ['bc1-cold'], { kind: 'REQUIRE_APPROVAL', k: 2, group: 'treasury', ttlMs: 3_600_000 }]], 'the policy file is the genesis policy');

  for (const id of ids) writeFileSync(join(d, id, 'genesis.hex'), readFileSync(join(d, 'genesis.hex')));
  const lc = loadLifecycleConfig(join(d, 'n2', 'n2.lifecycle.yaml'));
  const k = loadKernelConfig(join(d, 'n2', 'kernel', 'n2.yaml'));
  t.equal(k.genesis.clusterId, 'c-three', 'the kernel pins the cluster id');
  t.equal(k.genesis.genesisCid, toHex(eventCid(lc.genesis)), 'and the cid of the genesis the node proposes');
  t.equal(k.genesis.governanceEpoch, 0);
  t.same(k.genesis.roster.approvers.map((a) => a.id), ['alice', 'bob', 'carol'], 'and its roster');
  t.equal(k.genesis.policy, toHex(encodeDocument(ev.policy)), 'and the genesis act policy it judges acts by');
  t.equal(k.socketGid, undefined, '--socket-group "": no socket group');
  t.equal(k.software?.keyFile, join(d, 'n2', 'kernel', 'n2.key'), 'its sealing key beside its config');

  const closed: GenesisOptions = { out: join(d, 'closed.hex'), nodes: [`n1=${join(d, 'n1', 'n1.identity.pub')}`], approvers: approvers.slice(0, 2).map((a) => `${a.id}=${toHex(a.publicKey)}`) };
  const c = makeGenesis(closed).genesis;
  t.same(c.policy.rules, [], 'without --policy the genesis policy has no rules: every act is refused (default deny)');
  t.throws(() => makeGenesis(closed), /exists; repeat with --force/, 'an existing genesis file is not replaced without --force');

  const cara = makeApproverKey('cara');
  const withCustodian = makeGenesis({ ...closed, out: join(d, 'custodian.hex'), custodians: [`cara=${toHex(cara.publicKey)}`] }).genesis;
  t.same(withCustodian.roster.approvers.map((x) => [x.id, x.roles]), [[approvers[0]!.id, ['governor']], [approvers[1]!.id, ['governor']], ['cara', ['custodian']]], '--custodian: a roster entry with the custodian role only');
  t.equal(withCustodian.roster.quorum.threshold, 2, 'which does not count toward the quorum');
});

t.test('invalid input is refused with CONFIG_INVALID naming the option, and nothing is written', async (t) => {
  const d = temp(t);
  const base: InitNodeOptions = { id: 'n1', host: '10.9.0.1', peers: [PEERS], out: join(d, 'x') };
  const cases: [Partial<InitNodeOptions>, RegExp][] = [
    [{ id: 'n/1' }, /--id: node id "n\/1" must be/],
    [{ host: '10.9.0.1;reboot' }, /--host: "10\.9\.0\.1;reboot" is not an IP address or a DNS name/],
    [{ peers: ['n1=10.9.0.1,n2=10.9.0.2'] }, /--peers: 2 node\(s\): a cluster that survives one failure needs at least 3/],
    [{ peers: ['n1=10.9.0.7,n2=10.9.0.2,n3=10.9.0.3'] }, /--peers: lists n1 at 10\.9\.0\.7, but --host is 10\.9\.0\.1/],
    [{ peers: ['n1=10.9.0.1,n2,n3=10.9.0.3'] }, /--peers: "n2" must be <id>=<value>/],
    [{ peers: ['n1=10.9.0.1,n2=10.9.0.2', 'n2=10.9.0.3'] }, /--peers: n2 is listed twice/],
    [{ peers: ['n1=10.9.0.1,n2=bad_host!,n3=10.9.0.3'] }, /--peers \(n2\): "bad_host!" is not/],
    [{ port: 70000 }, /--port: 70000 is not a port/],
    [{ adminPort: 8400 }, /--port: the Raft, HTTP and admin ports must differ/],
    [{ dataDir: 'relative/data' }, /--data-dir: "relative\/data" must be an absolute path/],
    [{ kernelDataDir: 'k' }, /--kernel-data-dir: "k" must be an absolute path/],
    [{ kernelSocket: 'k.sock' }, /--kernel-socket: "k\.sock" must be an absolute path/],
    [{ socketGroup: 'no group' }, /--socket-group: "no group" is not a group name/],
  ];
  for (const [over, re] of cases) t.match(refusal(() => initNode({ ...base, ...over })), new RegExp(`^CONFIG_INVALID: ${re.source}`), JSON.stringify(over));
  t.throws(() => statSync(join(d, 'x')), 'no file was written for any of them');
  const cli = custody('init', 'node', '--id', 'n1', '--host', '10.9.0.1', '--peers', 'n1=10.9.0.1', '--out', join(d, 'x'));
  t.equal(cli.code, 3, 'the command exits 3 on a refusal');
  t.match(cli.err, /^custody: CONFIG_INVALID: --peers: 1 node\(s\)/, 'printing the reason code and the option');

  initNode(base);
  const before = readFileSync(join(d, 'x', 'n1.identity'), 'utf8');
  t.match(refusal(() => initNode(base)), /^CONFIG_INVALID: --out: would replace .*n1\.yaml.*; repeat with --force/, 'a second run refuses to replace the files');
  t.equal(readFileSync(join(d, 'x', 'n1.identity'), 'utf8'), before, 'and leaves the identity as it was');
  initNode({ ...base, force: true });
  t.not(readFileSync(join(d, 'x', 'n1.identity'), 'utf8'), before, '--force replaces them, with a new identity');

  const a = makeApproverKey('alice');
  const g = (over: Partial<GenesisOptions> = {}): string => refusal(() => makeGenesis({ out: join(d, 'g.hex'), nodes: [`n1=${join(d, 'x', 'n1.identity.pub')}`], approvers: [`alice=${toHex(a.publicKey)}`], ...over }));
  t.match(g(), /^CONFIG_INVALID: --approver: threshold 2 must be in \[2, 1\] governors/, 'a quorum no roster can reach');
  t.match(g({ nodes: ['n2=00'] }), /^CONFIG_INVALID: --node \(n2\): "00" is neither 64 hex digits nor a readable file/, 'a node key that is not a key');
  t.match(g({ security: ['bob'] }), /^CONFIG_INVALID: --security: bob is not an --approver/, 'a security role for a stranger');
  t.match(g({ custodians: [`alice=${toHex(a.publicKey)}`] }), /^CONFIG_INVALID: --custodian: alice is also an --approver/, 'a custodian key that would also govern');
  t.match(g({ clusterId: 'a b' }), /^CONFIG_INVALID: --cluster-id: "a b" must be/, 'a cluster id with a space');
  writeFileSync(join(d, 'bad-policy.yaml'), 'version: 1\nrules:\n  - id: all-raw\n    match: { kinds: [raw] }\n    action: ALLOW\n');
  t.match(g({ threshold: 1, policyFile: join(d, 'bad-policy.yaml') }), /^CONFIG_INVALID: --approver: threshold 1/, 'a threshold of 1 (one stolen key would rule)');
  t.match(g({ policyFile: join(d, 'bad-policy.yaml'), approvers: [`alice=${toHex(a.publicKey)}`, `bob=${toHex(makeApproverKey('bob').publicKey)}`] }), /^CONFIG_INVALID: --policy: .*an ALLOW rule may not match raw acts/, 'a policy that would sign raw bytes automatically');
  writeFileSync(join(d, 'stranger-policy.yaml'), 'version: 1\ngroups:\n  approvers:\n    g: [mallory]\nrules: []\n');
  t.match(g({ policyFile: join(d, 'stranger-policy.yaml'), approvers: [`alice=${toHex(a.publicKey)}`, `bob=${toHex(makeApproverKey('bob').publicKey)}`] }), /^CONFIG_INVALID: --policy: .*not on the roster: mallory \(group g\)/, 'an approver group naming someone off the roster');
  t.throws(() => statSync(join(d, 'g.hex')), 'no genesis was written');
});

t.test('--help explains every option', async (t) => {
  for (const [cmd, opts] of [
    ['node', ['--id', '--host', '--peers', '--out', '--data-dir', '--kernel-data-dir', '--kernel-socket', '--socket-group', '--port', '--http-port', '--admin-port', '--force']],
    ['genesis', ['--out', '--node', '--approver', '--security', '--custodian', '--threshold', '--freeze-threshold', '--cluster-id', '--policy', '--force']],
  ] as const) {
    const h = custody('init', cmd, '--help');
    t.equal(h.code, 0);
    for (const o of opts) t.match(h.out, new RegExp(`\\n\\s+${o}\\s+\\S[^\\n]*\\w`), `init ${cmd} --help explains ${o}`);
  }
  const s = custody('certs', 'sign', '--help');
  for (const o of ['--dir', '--csr', '--out', '--days', '--force']) t.match(s.out, new RegExp(`\\n\\s+${o}\\s+\\S`), `certs sign --help explains ${o}`);
});

t.test('property: what init node writes is what the node loader reads back', async (t) => {
  const d = temp(t);
  const label = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9]$/);
  const host = fc.oneof(fc.ipV4(), fc.array(label, { minLength: 1, maxLength: 3 }).map((l) => l.join('.')));
  const ids = fc.uniqueArray(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,12}$/), { minLength: 3, maxLength: 7 });
  let run = 0;
  t.doesNotThrow(() => {
    fc.assert(fc.property(ids, fc.array(host, { minLength: 7, maxLength: 7 }), fc.integer({ min: 1, max: 60000 }), (idList, hosts, port) => {
      const out = join(d, `r${run++}`);
      const peers = idList.map((id, i) => `${id}=${hosts[i]}`);
      initNode({ id: idList[0] as string, host: hosts[0] as string, peers, out, port, httpPort: port + 1, adminPort: port + 2, socketGroup: '' });
      const cfg = loadConfig(join(out, `${idList[0]}.yaml`));
      const wrote = [...cfg.peers].sort();
      rmSync(out, { recursive: true, force: true });
      // The roster is a set: the loader may list it in another order (a YAML map is unordered).
      return JSON.stringify(wrote) === JSON.stringify(idList.map((id, i) => [id, `${hosts[i]}:${port}`]).sort()) && cfg.id === idList[0] && cfg.listen === `${hosts[0]}:${port}`;
    }), { numRuns: 40, ...replay });
  }, '40 random rosters round-tripped');
  let refused: unknown = null;
  try {
    initNode({ id: 'n1', host: '10.9.0.1', peers: ['n2=10.9.0.2', 'n3=10.9.0.3'], out: join(d, 'p'), socketGroup: '', port: 0 });
  } catch (e) {
    refused = e;
  }
  t.match(refused, { reason: 'CONFIG_INVALID', detail: /^--port: 0 is not a port/ }, 'a port of 0 is refused, naming --port');
});
