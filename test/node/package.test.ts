/**
 * What an operator installs on a host: `npm pack` makes a tarball with the `custody` binary and
 * exactly what it needs at run time (compiled code without tests, the .proto files, the cluster
 * configs and systemd units); installed into a fresh prefix, its `custody` runs. The systemd
 * units (cluster-configs/systemd/) pass `systemd-analyze verify` with their ExecStart pointing at
 * that installed binary, and keep their hardening.
 *
 * The install uses the npm cache first (`--prefer-offline`) and the registry for anything it lacks.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const UNITS = join(REPO, 'cluster-configs', 'systemd');

const tmp = mkdtempSync(join(tmpdir(), 'custody-pkg-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
const prefix = join(tmp, 'prefix');
const bin = join(prefix, 'bin', 'custody');

function run(cmd: string, args: string[], opts: { cwd?: string; timeout?: number } = {}): { code: number | null; out: string; err: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: opts.cwd ?? tmp, timeout: opts.timeout ?? 120_000, maxBuffer: 64 * 1024 * 1024 });
  return { code: r.status, out: r.stdout ?? '', err: `${r.stderr ?? ''}${r.error ? r.error.message : ''}` };
}

t.test('npm pack: the tarball holds the built binary and what it needs, no tests and no sources', async (t) => {
  const r = run('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: REPO });
  t.equal(r.code, 0, r.err);
  const [info] = JSON.parse(r.out) as { filename: string; files: { path: string }[] }[];
  const files = (info?.files ?? []).map((f) => f.path);
  t.ok(files.includes('dist/node/cli.js'), 'the custody binary (dist/node/cli.js)');
  t.ok(['dist/kernel/bin.js', 'dist/kernel/main.js', 'dist/raft/core/raft.js', 'dist/ledger/apply.js'].every((f) => files.includes(f)), 'the kernel, Raft and the ledger');
  t.same(files.filter((f) => f.startsWith('proto/')).sort(), ['proto/admin.proto', 'proto/audit.schema.json', 'proto/kernel.proto', 'proto/raft.proto'], 'the .proto files the services load at run time, and the audit records\' JSON Schema');
  t.ok(files.includes('cluster-configs/systemd/custody-node@.service') && files.includes('cluster-configs/systemd/custody-kernel@.service'), 'the systemd units');
  t.ok(files.includes('cluster-configs/prometheus/alerts.yml'), 'the alert rules and other cluster configs');
  t.same(files.filter((f) => f.endsWith('.test.js')), [], 'no test files');
  t.same(files.filter((f) => f.startsWith('dist/test/') && !f.startsWith('dist/test/sim/')), [], 'of dist/test only the simulator `custody sim` runs');
  t.same(files.filter((f) => f.startsWith('dist/bench/') || f.endsWith('.ts') || f.endsWith('.map') || f.startsWith('node_modules/')), [], 'no benchmarks, sources, source maps or dependencies');
  writeFileSync(join(tmp, 'tarball'), info?.filename ?? '');
  t.comment(`${info?.filename}: ${files.length} files`);
});

t.test('installed into a fresh prefix, custody runs', async (t) => {
  const tarball = join(tmp, readFileSync(join(tmp, 'tarball'), 'utf8'));
  const inst = run('npm', ['install', '-g', tarball, '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund'], { timeout: 300_000 });
  t.equal(inst.code, 0, `npm install -g: ${inst.err.slice(-2000)}`);
  const help = run(bin, ['--help']);
  t.equal(help.code, 0, help.err);
  for (const c of ['node', 'kernel', 'init', 'certs', 'admin', 'cluster']) t.match(help.out, new RegExp(`custody ${c}\\b`), `custody --help lists ${c}`);
  const init = run(bin, ['init', 'node', '--help']);
  t.equal(init.code, 0, init.err);
  t.match(init.out, /--peers[\s\S]*--out[\s\S]*--force/, 'custody init node --help from the installed binary');
  // The installed copy does real work: it writes a host's configuration (openssl included) ...
  const made = run(bin, ['init', 'node', '--id', 'n1', '--host', '10.9.0.1', '--peers', 'n1=10.9.0.1,n2=10.9.0.2,n3=10.9.0.3', '--out', join(tmp, 'etc'), '--socket-group', '']);
  t.equal(made.code, 0, made.err);
  t.ok(readdirSync(join(tmp, 'etc', 'certs')).includes('n1.csr'), 'init node from the install writes a certificate request');
  // ... and loads its protocol files and the simulator from the package.
  const sim = run(bin, ['sim', '--seed', '7', '--nodes', '3', '--ticks', '50']);
  t.equal(sim.code, 0, `custody sim from the install: ${sim.err}`);
});

function unitKeys(text: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const x = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (x) m.set(x[1] as string, [...(m.get(x[1] as string) ?? []), x[2] as string]);
  }
  return m;
}

const analyze = run('sh', ['-c', 'command -v systemd-analyze']).code === 0;

t.test('the systemd units pass systemd-analyze verify, as separate users with hardening', { skip: analyze ? false : 'systemd-analyze is not installed (Debian package systemd)' }, async (t) => {
  const dir = join(tmp, 'units');
  mkdirSync(dir, { recursive: true });
  const units = ['custody-kernel@.service', 'custody-node@.service'];
  for (const u of units) {
    const text = readFileSync(join(UNITS, u), 'utf8');
    t.match(text, /^ExecStart=\/usr\/local\/bin\/custody /m, `${u} runs /usr/local/bin/custody (npm install -g --prefix /usr/local)`);
    writeFileSync(join(dir, u), text.replaceAll('/usr/local/bin/custody', bin));
  }
  const v = run('systemd-analyze', ['verify', 'custody-kernel@n1.service', 'custody-node@n1.service'], { cwd: dir });
  t.equal(v.code, 0, 'systemd-analyze verify exits 0');
  t.equal(`${v.out}${v.err}`.trim(), '', 'and reports nothing (no unknown key, no bad value, no missing binary)');

  const kernel = unitKeys(readFileSync(join(UNITS, units[0] as string), 'utf8'));
  const node = unitKeys(readFileSync(join(UNITS, units[1] as string), 'utf8'));
  t.same([kernel.get('User'), node.get('User')], [['custody-kernel'], ['custody']], 'kernel and node run as separate users');
  t.same(kernel.get('SupplementaryGroups'), ['custody'], 'the kernel joins the node\'s group only to give it the socket');
  t.match(readFileSync(join(UNITS, units[0] as string), 'utf8'), /ExecStart=.* kernel --config \/etc\/custody\/kernel\/%i\.yaml/, 'the kernel reads the config init node writes');
  t.match(readFileSync(join(UNITS, units[1] as string), 'utf8'), /ExecStart=.* node --config \/etc\/custody\/%i\.yaml/, 'the node reads the config init node writes');
  for (const [name, k] of [['kernel', kernel], ['node', node]] as const) {
    for (const [key, want] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['PrivateTmp', 'yes'], ['ProtectHome', 'yes'], ['CapabilityBoundingSet', ''], ['Restart', 'on-failure'], ['RestartPreventExitStatus', '3']] as const) {
      t.same(k.get(key), [want], `${name}: ${key}=${want}`);
    }
    t.ok(Number(k.get('LimitNOFILE')?.[0]) >= 4096, `${name}: LimitNOFILE=${k.get('LimitNOFILE')?.[0]}`);
  }
  t.same(kernel.get('ReadWritePaths'), ['/var/lib/custody-kernel /run/custody-kernel'], 'kernel writes only its store and its socket folder');
  t.same(node.get('ReadWritePaths'), ['/var/lib/custody'], 'node writes only its store');
  t.same(kernel.get('UMask'), ['0077'], 'whatever the kernel creates is private');
  t.same(kernel.get('RestrictAddressFamilies'), ['AF_UNIX'], 'the kernel has no network, only its Unix socket');
  t.ok((node.get('After') ?? []).some((a) => a.includes('custody-kernel@%i.service')), 'the node starts after its kernel');
  t.same(node.get('Requires'), ['custody-kernel@%i.service'], 'and requires it');
  t.same(node.get('PartOf'), ['custody-kernel@%i.service'], 'and is restarted with it (it holds one connection to it)');
});
