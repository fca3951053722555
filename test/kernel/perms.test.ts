/**
 * Who may touch the kernel's files (kernel/perms.ts):
 *   - a secret (key file, passphrase file, PIN file, store folder) with any group or world bit is
 *     refused at start with SECRET_EXPOSED, naming the file;
 *   - by default the socket is 0600 in a 0700 folder; with `socketGroup` it is 0660 in a 0750
 *     folder of that group: a node user in the group connects, a user outside it cannot.
 * The second part runs the kernel and its clients as separate OS users (useradd; needs root),
 * through the launcher (kernel/launch.ts) from a copy of the build staged in a fresh folder any
 * user can enter, so it works wherever the checkout is; and shows the launcher refusing
 * KERNEL_PATH_UNREACHABLE, naming the folder, when a parent folder is closed to the kernel user.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, cpSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KERNEL_BIN, REPO, Governance, setupKernel, startKernel, tempDir } from './harness.js';
import { launchKernelAs, requireReachable, unreachableFor } from '../../kernel/launch.js';
import { CLI_PATH } from '../../node/cluster.js';
import { isCustodyError } from '../../proto/errors.js';
import { socketBoundary } from '../../kernel/perms.js';
import { createServer } from 'node:net';

/**
 * A copy of this build (dist/, proto/, package.json) in `parent`, with node_modules linked when
 * `user` can reach the real one and hard-linked (or copied) into the stage when it cannot.
 */
function stageInstall(parent: string, user: string): string {
  const root = join(parent, 'custody');
  mkdirSync(root, { mode: 0o755 });
  chmodSync(root, 0o755);
  for (const p of ['dist', 'proto', 'package.json']) cpSync(join(REPO, p), join(root, p), { recursive: true });
  const modules = realpathSync(join(REPO, 'node_modules'));
  if (unreachableFor(user, [join(modules, 'package.json'), join(modules, '@noble/curves/package.json')]) === null) {
    symlinkSync(modules, join(root, 'node_modules'));
  } else if (spawnSync('cp', ['-al', modules, join(root, 'node_modules')]).status !== 0) {
    cpSync(modules, join(root, 'node_modules'), { recursive: true });
  }
  return root;
}

const mode = (p: string): string => (statSync(p).mode & 0o777).toString(8);

/** Runs the kernel on `configPath` and returns its exit code and stderr (it must refuse). */
function refusal(configPath: string, env: Record<string, string> = {}): { code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [KERNEL_BIN, '--config', configPath], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  return { code: r.status, stderr: r.stderr };
}

t.test('a kernel secret open to other users is refused at start with SECRET_EXPOSED', async (t) => {
  const { dir, cleanup } = tempDir('perms');
  t.teardown(cleanup);
  const gov = new Governance();
  const s = setupKernel(dir, 'n1', 'software', gov);
  const keyFile = join(s.dir, 'kernel.key');
  const cfg = JSON.parse(readFileSync(s.configPath, 'utf8')) as Record<string, unknown>;

  for (const bits of [0o640, 0o604, 0o660]) {
    chmodSync(keyFile, bits);
    const r = refusal(s.configPath);
    t.equal(r.code, 3, `key file ${bits.toString(8)}: refused (exit 3)`);
    t.match(r.stderr, new RegExp(`SECRET_EXPOSED: kernel key file ${keyFile} has mode 0${bits.toString(8)}.*chmod 600`), 'names the file, its mode and the fix');
  }
  chmodSync(keyFile, 0o600);

  const pass = join(s.dir, 'passphrase');
  writeFileSync(pass, 'correct horse battery staple\n', { mode: 0o644 });
  chmodSync(pass, 0o644);
  writeFileSync(join(s.dir, 'pass.json'), JSON.stringify({ ...cfg, software: { passphraseFile: pass } }));
  t.match(refusal(join(s.dir, 'pass.json')).stderr, /SECRET_EXPOSED: kernel passphrase file .* has mode 0644/, 'a passphrase file readable by all is refused');

  const pin = join(s.dir, 'pin');
  writeFileSync(pin, '246810\n', { mode: 0o640 });
  chmodSync(pin, 0o640);
  writeFileSync(join(s.dir, 'hsm.json'), JSON.stringify({ ...cfg, software: undefined, profile: 'hsm', hsm: { module: '/nonexistent.so', tokenLabel: 'n1', pinFile: pin, keyLabel: 'w' } }));
  t.match(refusal(join(s.dir, 'hsm.json')).stderr, /SECRET_EXPOSED: HSM PIN file .* has mode 0640/, 'an HSM PIN file readable by its group is refused (before the module is loaded)');

  mkdirSync(s.storeDir, { mode: 0o755 });
  chmodSync(s.storeDir, 0o755);
  const open = refusal(s.configPath);
  t.equal(open.code, 3, 'a store folder others may enter is refused');
  t.match(open.stderr, new RegExp(`SECRET_EXPOSED: kernel store folder ${s.storeDir} has mode 0755: its group or other users have access; run \`chmod 700`), 'names the store folder');
  chmodSync(s.storeDir, 0o700);

  const k = await startKernel(s);
  t.teardown(() => k.stop());
  t.equal(mode(s.storeDir), '700', 'with every secret private the kernel starts');
  t.equal(mode(s.socketPath), '600', 'no socketGroup: the socket is 0600');
  t.equal(mode(join(s.dir, 'run')), '700', 'in a 0700 folder');
  await k.stop();

  const fresh = setupKernel(dir, 'n2', 'software', gov);
  const k2 = await startKernel(fresh);
  t.teardown(() => k2.stop());
  t.equal(mode(fresh.storeDir), '700', 'a missing store folder is created 0700');
});

const root = typeof process.getuid === 'function' && process.getuid() === 0;
const tools = ['useradd', 'groupadd', 'userdel', 'groupdel', 'runuser'].every((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0);
const skip = !root ? 'creating OS users needs root' : !tools ? 'useradd, groupadd or runuser is missing' : false;

t.test('socketGroup: the node user in the group connects, a user outside it cannot', { skip }, async (t) => {
  const tag = `ck${process.pid % 100000}`;
  const group = tag; // the node daemon's group
  const users = { kernel: `${tag}k`, node: `${tag}n`, outsider: `${tag}x` };
  const sh = (cmd: string, ...args: string[]): void => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  };
  t.teardown(() => {
    for (const u of Object.values(users)) spawnSync('userdel', [u]);
    spawnSync('groupdel', [group]);
  });
  sh('groupadd', '--system', group);
  sh('useradd', '--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', '--groups', group, users.kernel);
  sh('useradd', '--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--gid', group, users.node);
  sh('useradd', '--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', users.outsider);
  const id = (u: string): number => Number(spawnSync('id', ['-u', u], { encoding: 'utf8' }).stdout.trim());
  const gid = Number(spawnSync('getent', ['group', group], { encoding: 'utf8' }).stdout.split(':')[2]);

  // Processes of other users run without the test runner's hooks (they write to files of root).
  const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin' };
  const asUser = (user: string, ...cmd: string[]): string[] => ['-u', user, '--', 'env', '-u', 'NODE_OPTIONS', ...cmd];
  const { dir, cleanup } = tempDir('perms-group');
  t.teardown(cleanup);
  chmodSync(dir, 0o755);
  const install = stageInstall(dir, users.kernel);
  const s = setupKernel(dir, 'n1', 'software', new Governance());
  const cfg = JSON.parse(readFileSync(s.configPath, 'utf8')) as Record<string, unknown>;
  writeFileSync(s.configPath, JSON.stringify({ ...cfg, socketGroup: group }));
  for (const p of [s.dir, join(s.dir, 'kernel.key'), s.configPath]) chownSync(p, id(users.kernel), -1);

  // The kernel as its own user; runuser sets its supplementary groups (the node's group among them).
  const proc = launchKernelAs(users.kernel, s.configPath, { root: install });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise((r) => proc.once('exit', r));
  t.teardown(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      await exited;
    }
  });
  const ready = await new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out);
    });
    void exited.then(() => reject(new Error(`kernel exited before ready: ${stderr}`)));
  });
  t.match(ready, /"ready":true/, `the kernel runs as ${users.kernel}`);
  const sock = statSync(s.socketPath);
  const folder = statSync(join(s.dir, 'run'));
  t.equal((sock.mode & 0o777).toString(8), '660', 'the socket is 0660');
  t.equal((folder.mode & 0o777).toString(8), '750', 'in a 0750 folder');
  t.same([sock.uid, sock.gid, folder.uid, folder.gid], [id(users.kernel), gid, id(users.kernel), gid], 'both owned by the kernel user and the node group');
  const admits = /socket .* admits its own user, root and group \d+: (.*)/.exec(stderr)?.[1] ?? '';
  t.same(admits.split(', ').sort(), [users.kernel, users.node].sort(), 'at start the kernel names who the group admits: the node user, not the outsider');

  const tryConnect = (user: string): { ok: boolean; out: string } => {
    const script = `require('node:net').connect(process.argv[1]).on('connect', () => { console.log('connected'); process.exit(0); }).on('error', (e) => { console.log(e.code); process.exit(1); });`;
    const r = spawnSync('runuser', asUser(user, process.execPath, '-e', script, s.socketPath), { env, encoding: 'utf8', timeout: 30_000 });
    return { ok: r.status === 0, out: r.stdout.trim() || r.stderr.trim() };
  };
  const asNode = tryConnect(users.node);
  t.ok(asNode.ok, `the node user ${users.node} (group ${group}) connects: ${asNode.out}`);
  const asOutsider = tryConnect(users.outsider);
  t.notOk(asOutsider.ok, 'a user outside the group cannot');
  t.equal(asOutsider.out, 'EACCES', 'refused by the file system (EACCES)');

  // A kernel whose program sits below a folder closed to its user (mktemp -d makes them 0700).
  const closed = mkdtempSync(join(tmpdir(), 'custody-closed-'));
  t.teardown(() => rmSync(closed, { recursive: true, force: true }));
  t.equal(mode(closed), '700', 'mktemp -d makes a 0700 folder');
  const hidden = stageInstall(closed, users.kernel);
  let reason = '';
  try {
    launchKernelAs(users.kernel, s.configPath, { root: hidden });
  } catch (e) {
    reason = isCustodyError(e) ? `${e.reason}: ${e.detail}` : String(e);
  }
  t.match(reason, new RegExp(`^KERNEL_PATH_UNREACHABLE: the kernel user ${users.kernel} cannot enter the directory ${closed} \\(mode 0700`), 'the launcher refuses, naming the folder');
  const cli = spawnSync(process.execPath, [join(hidden, 'dist/node/cli.js'), 'kernel', '--config', s.configPath, '--user', users.kernel], { encoding: 'utf8', timeout: 60_000 });
  t.equal(cli.status, 3, '`custody kernel --user` refuses too (exit 3)');
  t.match(cli.stderr, new RegExp(`KERNEL_PATH_UNREACHABLE: .*${closed}`));
  const check = (root: string) => spawnSync(process.execPath, [join(root, 'dist/node/cli.js'), 'kernel', 'check-path', '--config', s.configPath, '--user', users.kernel], { encoding: 'utf8', timeout: 60_000 });
  const refused = check(hidden);
  t.equal(refused.status, 3, '`custody kernel check-path` (systemd ExecStartPre) refuses with exit 3');
  t.match(refused.stderr, new RegExp(`KERNEL_PATH_UNREACHABLE: .*${closed}`), 'naming the folder');
  t.equal(check(install).status, 0, 'and passes for an install the user can reach');
  const unreadable = join(hidden, 'dist/kernel/bin.js');
  chmodSync(closed, 0o755);
  chmodSync(unreadable, 0o600);
  t.throws(() => requireReachable(users.kernel, [unreadable]), new RegExp(`cannot read ${unreadable}`), 'an unreadable program file is named as such');
  chmodSync(unreadable, 0o644);
  t.doesNotThrow(() => requireReachable(users.kernel, [unreadable]), 'once reachable, the check passes');
});

t.test('the socket boundary is checked after binding: a socket or folder open to more than asked is refused', async (t) => {
  const { dir, cleanup } = tempDir('perms-boundary');
  t.teardown(cleanup);
  const folder = join(dir, 'run');
  mkdirSync(folder, { mode: 0o700 });
  chmodSync(folder, 0o700);
  const path = join(folder, 'k.sock');
  const server = createServer();
  await new Promise<void>((r) => server.listen(path, r));
  t.teardown(() => server.close());
  const uid = process.getuid!();
  const reason = (gid?: number): string => {
    try {
      socketBoundary(path, folder, uid, gid);
      return 'OK';
    } catch (e) {
      return isCustodyError(e) ? `${e.reason}: ${e.detail}` : String(e);
    }
  };
  chmodSync(path, 0o666);
  t.match(reason(), /CONFIG_INVALID: .*socket mode 666, expected 600/, 'a socket others may write is refused');
  chmodSync(path, 0o600);
  t.equal(reason(), 'OK', '0600 in a 0700 folder of the kernel user passes');
  chmodSync(folder, 0o711);
  t.match(reason(), /folder mode 711, expected 700/, 'a folder others may enter is refused');
  chmodSync(folder, 0o700);
  t.match(reason(process.getgid!() + 1), /group .* expected|socket mode 600, expected 660/, 'a shared socket must be the group\'s and 0660');
  t.match((() => { try { socketBoundary(path, folder, uid + 1, undefined); return 'OK'; } catch (e) { return String((e as Error).message); } })(), /owner uid/, 'owned by another user is refused');
});

t.test('socketGroup names a group that must exist', async (t) => {
  const { dir, cleanup } = tempDir('perms-nogroup');
  t.teardown(cleanup);
  const s = setupKernel(dir, 'n1', 'software', new Governance());
  const cfg = JSON.parse(readFileSync(s.configPath, 'utf8')) as Record<string, unknown>;
  writeFileSync(s.configPath, JSON.stringify({ ...cfg, socketGroup: 'no-such-group-custody' }));
  const r = refusal(s.configPath);
  t.equal(r.code, 3, 'refused');
  t.match(r.stderr, /CONFIG_INVALID: socketGroup: no group named "no-such-group-custody"/, 'names the field');
});
