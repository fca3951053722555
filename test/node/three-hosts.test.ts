/**
 * README "Three hosts", played on three hosts in Linux network namespaces
 * (cluster-configs/netns-3/netns.sh): a CA host makes the cluster CA; each host runs
 * `custody init node`; the CA host signs each request (`custody certs sign`) and writes the
 * genesis from the hosts' identity public keys (`custody init genesis`); the certificates and the
 * genesis are copied back; on each host the kernel and the node run with the command lines of the
 * systemd units (cluster-configs/systemd/), as two separate users: the kernel's user gives its
 * socket to the node's group. Then the three nodes elect a leader, commit the genesis, and commit
 * a governance decision approved by two approvers through the admin API.
 *
 * systemd itself does not run inside the namespaces; the users, folders and modes it would make
 * (StateDirectory, RuntimeDirectory) are made by the test. Needs root and `ip netns`; skipped,
 * saying why, where either is missing.
 */
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI_PATH } from '../../node/cluster.js';
import { issueOperatorCert } from '../../node/admin/roles.js';
import { until } from './harness.js';
import { toHex } from '../../ledger/encoding.js';
import { LEDGER_ASSETS } from '../../ledger/asset-table.js';
import { encodeDocument, parsePolicyYaml } from '../../ledger/policy-engine/index.js';

const SCRIPT = fileURLToPath(new URL('../../../cluster-configs/netns-3/netns.sh', import.meta.url));
const prefix = `c3h${process.pid % 100000}`;
const ids = ['n1', 'n2', 'n3'] as const;
const host = (i: number): string => `10.77.0.${i + 1}`;
const tag = `c3h${process.pid % 100000}`;
const users = { node: `${tag}n`, kernel: `${tag}k` };
const group = users.node; // the node user's own group: the kernel joins it to give it the socket

function sh(cmd: string, ...args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}${r.error?.message ?? ''}`);
  return r.stdout;
}

/** `custody ...` run inside a host's namespace (as root), like an operator's shell on that host. */
function custodyOn(ns: string | null, ...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const argv = [...(ns ? ['ip', 'netns', 'exec', `${prefix}-${ns}`] : []), 'env', '-u', 'NODE_OPTIONS', process.execPath, CLI_PATH, ...args];
  return new Promise((resolve) => {
    const p = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('close', (code) => resolve({ code, out, err }));
  });
}

const root = typeof process.getuid === 'function' && process.getuid() === 0;
let skip: string | false = root ? false : 'needs root (network namespaces, users)';
if (!skip) {
  const probe = spawnSync('ip', ['netns', 'add', `${prefix}-probe`], { encoding: 'utf8' });
  if (probe.status !== 0) skip = `ip netns add is not permitted here: ${(probe.stderr || probe.error?.message || '').trim()}`;
  else spawnSync('ip', ['netns', 'del', `${prefix}-probe`]);
}
if (!skip && !['useradd', 'userdel', 'runuser'].every((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0)) skip = 'useradd or runuser is missing';

t.test('three hosts: init, sign, genesis, kernels and nodes as separate users, a leader and committed writes', { skip }, async (t) => {
  const procs: ChildProcess[] = [];
  t.teardown(async () => {
    const stop = async (p: ChildProcess): Promise<void> => {
      if (p.exitCode !== null || p.signalCode !== null) return;
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 15_000))]);
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    };
    // As systemd stops them: the nodes (PartOf their kernels) first, then the kernels.
    await Promise.all(procs.filter((p) => p.spawnargs.includes('node')).map(stop));
    await Promise.all(procs.map(stop));
    spawnSync('bash', [SCRIPT, 'down'], { env: { ...process.env, CUSTODY_NETNS_PREFIX: prefix } });
    spawnSync('userdel', [users.kernel]);
    spawnSync('userdel', [users.node]);
    spawnSync('groupdel', [group]);
  });
  const t0 = Date.now();
  const up = spawnSync('bash', [SCRIPT, 'up'], { encoding: 'utf8', env: { ...process.env, CUSTODY_NETNS_PREFIX: prefix } });
  t.equal(up.status, 0, `${up.stdout}${up.stderr}`.trim());
  // What the Debian postinstall steps of README "Three hosts" make on every host.
  sh('useradd', '--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', users.node);
  sh('useradd', '--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', '--groups', group, users.kernel);
  const uid = (u: string): number => Number(sh('id', '-u', u).trim());

  const d = mkdtempSync(join(tmpdir(), 'custody-3h-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  chmodSync(d, 0o755);
  const ca = join(d, 'ca-host');
  const hostDir = (i: number): string => join(d, `host${i + 1}`);
  const etc = (i: number): string => join(hostDir(i), 'etc', 'custody');

  // CA host: the cluster CA, two approvers' keys and operator certificates.
  t.equal((await custodyOn(null, 'certs', 'ca', '--dir', ca)).code, 0, 'CA host: custody certs ca');
  const approvers: Record<string, string> = {};
  const approverKeys = join(d, 'approvers'); // each approver's own machine, in truth
  mkdirSync(approverKeys, { mode: 0o700 });
  for (const a of ['alice', 'bob']) {
    const r = await custodyOn(null, 'admin', 'approver-key', '--id', a, '--out', join(approverKeys, `${a}.key`));
    approvers[a] = /public key ([0-9a-f]{64})/.exec(r.out)?.[1] ?? '';
    issueOperatorCert(ca, a, 'approver');
  }
  issueOperatorCert(ca, 'audra', 'auditor');

  // Each host: init node, with the systemd units' directories (StateDirectory, RuntimeDirectory).
  const peers = ids.map((id, i) => `${id}=${host(i)}`).join(',');
  const inits = await Promise.all(ids.map((id, i) => {
    const h = hostDir(i);
    mkdirSync(join(h, 'var/lib/custody'), { recursive: true });
    mkdirSync(join(h, 'var/lib/custody-kernel'), { recursive: true });
    mkdirSync(join(h, 'run/custody-kernel'), { recursive: true });
    chownSync(join(h, 'var/lib/custody'), uid(users.node), -1);
    chmodSync(join(h, 'var/lib/custody'), 0o750);
    for (const p of ['var/lib/custody-kernel', 'run/custody-kernel']) chownSync(join(h, p), uid(users.kernel), -1);
    chmodSync(join(h, 'var/lib/custody-kernel'), 0o700);
    chmodSync(join(h, 'run/custody-kernel'), 0o750);
    return custodyOn(id, 'init', 'node', '--id', id, '--host', host(i), '--peers', peers, '--out', etc(i), '--socket-group', group,
      '--data-dir', join(h, 'var/lib/custody', id), '--kernel-data-dir', join(h, 'var/lib/custody-kernel', id), '--kernel-socket', join(h, 'run/custody-kernel/kernel.sock'));
  }));
  inits.forEach((r, i) => t.equal(r.code, 0, `host ${i + 1}: custody init node ${r.err}`));

  // CA host: sign each request, write the genesis from the identity public keys; copy back.
  const signs = await Promise.all(ids.map((id, i) => {
    copyFileSync(join(etc(i), 'certs', `${id}.csr`), join(ca, `${id}.csr`));
    copyFileSync(join(etc(i), `${id}.identity.pub`), join(ca, `${id}.identity.pub`));
    return custodyOn(null, 'certs', 'sign', '--dir', ca, '--csr', join(ca, `${id}.csr`));
  }));
  signs.forEach((r, i) => t.match(r.out, new RegExp(`signed node certificate .* for n${i + 1} \\(subjectAltName DNS:n${i + 1}, IP:10\\.77\\.0\\.${i + 1}\\)`), `CA host: custody certs sign for n${i + 1}`));
  const g = await custodyOn(null, 'init', 'genesis', '--out', join(ca, 'genesis.hex'), ...ids.flatMap((id) => ['--node', `${id}=${join(ca, `${id}.identity.pub`)}`]),
    ...Object.entries(approvers).flatMap(([a, k]) => ['--approver', `${a}=${k}`]), '--cluster-id', 'three-hosts');
  t.equal(g.code, 0, `CA host: custody init genesis ${g.err}`);
  ids.forEach((id, i) => {
    for (const f of ['ca.crt', `${id}.crt`]) copyFileSync(join(ca, f), join(etc(i), 'certs', f));
    copyFileSync(join(ca, 'genesis.hex'), join(etc(i), 'genesis.hex'));
    // README step: the node's secrets to the node user, the kernel's folder to the kernel user.
    for (const f of [`${id}.identity`, `certs/${id}.key`]) chownSync(join(etc(i), f), uid(users.node), -1);
    sh('chown', '-R', `${users.kernel}:`, join(etc(i), 'kernel'));
  });

  // Each host: the units' command lines, as the units' users.
  const start = (ns: string, user: string, args: string[], log: string): ChildProcess => {
    const p = spawn('ip', ['netns', 'exec', `${prefix}-${ns}`, 'runuser', '-u', user, '--', 'env', '-u', 'NODE_OPTIONS', process.execPath, CLI_PATH, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const w = createWriteStream(log);
    p.stdout?.pipe(w);
    p.stderr?.pipe(w);
    procs.push(p);
    return p;
  };
  t.comment(`configured in ${Date.now() - t0} ms`);
  await Promise.all(ids.map(async (id, i) => {
    const k = start(id, users.kernel, ['kernel', '--config', join(etc(i), 'kernel', `${id}.yaml`)], join(hostDir(i), 'kernel.log'));
    const r = await until(`kernel ${id} ready`, () => (k.exitCode !== null ? 'exited' : readFileSync(join(hostDir(i), 'kernel.log'), 'utf8').includes('"ready":true') ? 'ready' : null), 120_000, 200);
    // A kernel that exited says why in its log (a checkout its user cannot read, under a 0700
    // directory, ends it with EACCES before it logs anything of its own).
    t.equal(r, 'ready', `host ${i + 1}: custody kernel runs as ${users.kernel}${r === 'ready' ? '' : `; its log ends: ${readFileSync(join(hostDir(i), 'kernel.log'), 'utf8').trim().split('\n').slice(-3).join(' | ')}`}`);
  }));
  const socket = spawnSync('stat', ['-c', '%a %U %G', join(hostDir(0), 'run/custody-kernel/kernel.sock')], { encoding: 'utf8' }).stdout.trim();
  t.equal(socket, `660 ${users.kernel} ${group}`, 'the kernel socket is 0660, owned by the kernel user and the node group');
  for (const [i, id] of ids.entries()) start(id, users.node, ['node', '--config', join(etc(i), `${id}.yaml`)], join(hostDir(i), 'node.log'));

  // Any host: status through the admin API, as an auditor.
  const status = async (i: number): Promise<{ leader: string; clusterId: string; governanceEpoch: number; commit: number } | null> => {
    const r = await custodyOn(ids[i] as string, 'admin', 'status', '--node', `${host(i)}:7500`, '--node-id', ids[i] as string, '--certs', ca, '--as', 'audra', '--json');
    return r.code === 0 ? JSON.parse(r.out) : null;
  };
  const all = async (ok: (s: NonNullable<Awaited<ReturnType<typeof status>>>) => boolean): Promise<NonNullable<Awaited<ReturnType<typeof status>>>[] | null> => {
    for (const [i] of ids.entries()) {
      const p = procs.find((x) => x.exitCode !== null);
      if (p) throw new Error(`a daemon exited (${p.exitCode}); logs in ${hostDir(i)}`);
    }
    const s = await Promise.all(ids.map((_, i) => status(i)));
    return s.every((x) => x !== null && ok(x)) ? (s as NonNullable<Awaited<ReturnType<typeof status>>>[]) : null;
  };
  const first = await until('a leader and the genesis committed on all three hosts', () => all((s) => s.leader !== '' && s.clusterId === 'three-hosts'), 180_000, 500);
  t.comment(`leader and genesis after ${Date.now() - t0} ms`);
  const leader = first[0]?.leader as string;
  t.ok(first.every((s) => s.leader === leader), `all three hosts follow leader ${leader}`);
  t.ok(first.every((s) => s.clusterId === 'three-hosts' && s.commit > 0), `the genesis of three-hosts is committed on every host (commit index ${first.map((s) => s.commit).join(', ')})`);

  // A governance decision: proposed and approved on the leader's host by two approvers; at quorum it is committed.
  const li = ids.indexOf(leader as (typeof ids)[number]);
  const conn = ['--node', `${host(li)}:7500`, '--node-id', leader, '--certs', ca];
  const policy = toHex(encodeDocument(parsePolicyYaml('version: 1\ngroups:\n  approvers:\n    treasury: [alice, bob]\nrules:\n  - id: cold\n    match: { assets: [BTC], destination: { allow: [bc1-cold] } }\n    action: REQUIRE_APPROVAL\n    approvals: { k: 2, group: treasury, ttl: 1h }\n', LEDGER_ASSETS)));
  const p = await custodyOn(leader, 'admin', 'decision', 'propose', ...conn, '--as', 'alice', '--action-json', JSON.stringify({ kind: 'PolicyChanged', policy }));
  const cid = /decision ([0-9a-f]{64}): /.exec(p.out)?.[1];
  t.ok(cid, `alice proposed a PolicyChanged decision ${p.err}`);
  for (const a of ['alice', 'bob']) {
    const r = await custodyOn(leader, 'admin', 'decision', 'approve', ...conn, '--as', a, '--cid', cid as string, '--key-file', join(approverKeys, `${a}.key`));
    t.equal(r.code, 0, `${a} approved: ${r.out.split('\n')[0]} ${r.err.split('\n').filter((l) => !l.startsWith('signing as')).join(' ')}`);
  }
  const after = await until('the decision committed on all three hosts', () => all((s) => s.governanceEpoch === 1), 120_000, 500);
  t.comment(`decision committed everywhere after ${Date.now() - t0} ms`);
  t.same(after.map((s) => s.governanceEpoch), [1, 1, 1], 'governance epoch 1 on every host: the approved decision is committed and applied everywhere');
});
