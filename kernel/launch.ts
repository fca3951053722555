/**
 * Starting the kernel as its own OS user (root starts it; `runuser` drops to the user).
 *
 * The kernel's user must be able to read its program: dist/kernel/bin.js and the modules it
 * imports, and proto/kernel.proto. When a directory on one of those paths denies that user search
 * (x) permission, say a checkout under a home folder of mode 0700 or under a `mktemp -d` folder,
 * Node would die at the first import with MODULE_NOT_FOUND and no word about permissions. The
 * launcher checks first, as that user, and refuses with KERNEL_PATH_UNREACHABLE naming the
 * directory or file and what is missing.
 *
 * How it checks: `runuser -u <user> -- sh -c 'test -x <dir>'` for every ancestor, then `test -r`
 * for the file, in one shell. The test runs in a process of that user, so the kernel's own
 * permission check answers (mode bits, ACLs, supplementary groups as runuser sets them), not a
 * re-implementation of it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CustodyError } from '../proto/errors.js';

/** The checkout or install root this build runs from (the folder holding dist/ and proto/). */
export const INSTALL_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** What the kernel's user must be able to read to run the kernel of the install at `root`. */
export function kernelProgramPaths(root: string = INSTALL_ROOT): string[] {
  const paths = [join(root, 'dist/kernel/bin.js'), join(root, 'proto/kernel.proto')];
  const modules = join(root, 'node_modules');
  // Node resolves bare imports through <root>/node_modules; through a symlink it needs its target.
  if (existsSync(modules)) paths.push(join(realpathSync(modules), '@noble/curves/package.json'));
  return paths;
}

/** Every directory from / down to the one holding `path` (absolute, symlinks left as written). */
function ancestors(path: string): string[] {
  const out: string[] = [];
  for (let d = dirname(resolve(path)); ; d = dirname(d)) {
    out.unshift(d);
    if (dirname(d) === d) break;
  }
  return out;
}

const PROBE = 'for d in "$@"; do case "$d" in D:*) p="${d#D:}"; test -x "$p" || { echo "search $p"; exit 1; };; F:*) p="${d#F:}"; test -r "$p" || { echo "read $p"; exit 1; };; esac; done';

/**
 * The first path on the way to `files` that `user` cannot search (a directory) or read (a file),
 * or null when it can reach them all. Needs root (runuser).
 */
export function unreachableFor(user: string, files: readonly string[]): { what: 'search' | 'read'; path: string } | null {
  const args: string[] = [];
  for (const f of files) {
    for (const d of ancestors(f)) if (!args.includes(`D:${d}`)) args.push(`D:${d}`);
    args.push(`F:${resolve(f)}`);
  }
  const r = spawnSync('runuser', ['-u', user, '--', 'sh', '-c', PROBE, 'sh', ...args], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } });
  if (r.error) throw new CustodyError('CONFIG_INVALID', `cannot run runuser to check what ${user} can reach: ${r.error.message}`);
  if (r.status === 0) return null;
  const m = /^(search|read) (.+)$/m.exec(r.stdout);
  if (m === null) throw new CustodyError('CONFIG_INVALID', `cannot check what ${user} can reach: ${(r.stderr || r.stdout).trim()}`);
  return { what: m[1] as 'search' | 'read', path: m[2] as string };
}

function describe(path: string): string {
  try {
    const st = statSync(path);
    return `mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}, owner uid ${st.uid} gid ${st.gid}`;
  } catch {
    return 'not found';
  }
}

/** Refuses, KERNEL_PATH_UNREACHABLE, when `user` cannot reach the kernel's program. */
export function requireReachable(user: string, files: readonly string[] = kernelProgramPaths()): void {
  const u = unreachableFor(user, files);
  if (u === null) return;
  throw new CustodyError('KERNEL_PATH_UNREACHABLE', u.what === 'search'
    ? `the kernel user ${user} cannot enter the directory ${u.path} (${describe(u.path)}), which holds the kernel's program; give it search permission (e.g. chmod o+x ${u.path}) or install the kernel where ${user} can reach it`
    : `the kernel user ${user} cannot read ${u.path} (${describe(u.path)}); give it read permission or install the kernel where ${user} can read it`);
}

/**
 * Starts `node <root>/dist/kernel/bin.js --config <configPath>` as `user`, after the reachability
 * check. The child gets a minimal environment (PATH only, plus `env`).
 */
export function launchKernelAs(user: string, configPath: string, o: { root?: string; env?: Record<string, string>; stdio?: 'inherit' | 'pipe' } = {}): ChildProcess {
  const root = o.root ?? INSTALL_ROOT;
  requireReachable(user, [...kernelProgramPaths(root), process.execPath]);
  const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...o.env };
  return spawn('runuser', ['-u', user, '--', 'env', '-u', 'NODE_OPTIONS', process.execPath, join(root, 'dist/kernel/bin.js'), '--config', configPath], { env, stdio: ['ignore', o.stdio ?? 'pipe', o.stdio ?? 'pipe'] });
}
