/**
 * A directory that loses what was not fsynced on a simulated power cut: lossyfs.py (a FUSE file
 * system, Debian packages `fuse` and `python3-fusepy`) mounted over a backing directory. Its module
 * header holds the model (LazyFS, Ramos et al., VLDB 2024; ALICE, Pillai et al., OSDI 2014) and
 * what each file operation does; in short: file data reaches the backing directory only on fsync
 * of that file, metadata at once.
 *
 *   mount()    starts lossyfs on the mountpoint and waits until it serves requests;
 *   cut()      the power cut: SIGKILL of lossyfs (its memory, the unsynced pages, is gone), the
 *              dead mount detached (fusermount -u -z), and a new lossyfs mounted on the backing
 *              directory, which holds exactly what was synced. Whoever wrote through the mount
 *              must be dead first (the nemesis kills the node before it cuts). It answers what
 *              the cut dropped, as seen from outside: the files whose size through the mount
 *              differed from their synced size, and by how many bytes (a lower bound: an
 *              unsynced overwrite inside a file's synced size does not show);
 *   unmount()  a clean unmount (pending pages written, as an orderly shutdown would).
 * Every mount still up when the process exits is detached by an exit hook, and lossyfs leaves
 * its mount by itself when its parent dies, so a failed run leaves no mount behind.
 *
 * A daemon started in another mount namespace (`ip netns exec` copies the mount table) sees the
 * mount that existed when it started: mount before starting it, and after a cut start it again.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

/** Where lossyfs.py lies: beside this module's source (dist/test/jepsen -> test/jepsen). */
export const LOSSYFS_SCRIPT = fileURLToPath(new URL('../../../test/jepsen/lossyfs.py', import.meta.url));
/** Debian's interpreter, which sees Debian's python3-fusepy (another python3 on PATH may not). */
export const LOSSYFS_PYTHON = '/usr/bin/python3';
const MOUNT_TIMEOUT_MS = 30_000;
const EXIT_TIMEOUT_MS = 10_000;

const live = new Set<LossyMount>();

/** What a cut drops, as seen from outside: the files (paths under the mount) whose size differs from their synced size, and the bytes between. */
export interface Unsynced {
  readonly files: number;
  readonly bytes: number;
  readonly names: readonly string[];
}
let hooked = false;

/** Why lossyfs cannot mount here, or null when it can (root, /dev/fuse, fusermount, python3-fusepy). */
export function lossyfsUnavailable(): string | null {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'lossyfs needs root (FUSE mounts)';
  if (!existsSync('/dev/fuse')) return 'lossyfs needs /dev/fuse';
  if (spawnSync('fusermount', ['-V'], { encoding: 'utf8' }).error !== undefined) return 'lossyfs needs fusermount (Debian package fuse)';
  const py = spawnSync(LOSSYFS_PYTHON, ['-c', 'import fusepy'], { encoding: 'utf8' });
  if (py.status !== 0) return `lossyfs needs ${LOSSYFS_PYTHON} with fusepy (Debian package python3-fusepy): ${(py.stderr || py.error?.message || '').trim().split('\n').pop()}`;
  return null;
}

export class LossyMount {
  private proc: ChildProcess | null = null;
  /** Power cuts done. */
  cuts = 0;

  constructor(readonly backing: string, readonly mountpoint: string) {}

  async mount(): Promise<void> {
    if (this.proc !== null) throw new Error(`lossyfs already mounted on ${this.mountpoint}`);
    mkdirSync(this.backing, { recursive: true });
    mkdirSync(this.mountpoint, { recursive: true });
    if (!hooked) {
      hooked = true;
      process.once('exit', () => {
        for (const m of live) m.detachSync();
      });
    }
    const proc = spawn(LOSSYFS_PYTHON, [LOSSYFS_SCRIPT, this.backing, this.mountpoint], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    live.add(this);
    let stderr = '';
    proc.stderr?.on('data', (d: Buffer) => {
      if (stderr.length < 4_000) stderr += d.toString();
    });
    const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`lossyfs on ${this.mountpoint}: not mounted after ${MOUNT_TIMEOUT_MS} ms: ${stderr.trim()}`)), MOUNT_TIMEOUT_MS);
        lines.on('line', (line) => {
          if (line.startsWith('lossyfs: mounted')) {
            clearTimeout(timer);
            resolve();
          }
        });
        proc.once('exit', (code, sig) => {
          clearTimeout(timer);
          reject(new Error(`lossyfs on ${this.mountpoint} exited (${sig ?? code}) before it mounted: ${stderr.trim()}`));
        });
      });
    } catch (e) {
      this.detachSync();
      throw e;
    }
    proc.once('exit', () => {
      if (this.proc === proc) {
        this.proc = null;
        live.delete(this);
      }
    });
  }

  get mounted(): boolean {
    return this.proc !== null;
  }

  /** The power cut (see the module header); the mount is back, holding only what was synced. */
  async cut(): Promise<Unsynced> {
    const proc = this.proc;
    const dropped = proc !== null ? this.unsynced() : { files: 0, bytes: 0, names: [] };
    if (proc !== null) {
      await this.exitOf(proc, 'SIGKILL');
      this.detach();
    }
    this.cuts++;
    await this.mount();
    return dropped;
  }

  /** Files whose size through the mount is not their synced size, and the bytes between. */
  unsynced(): Unsynced {
    let files = 0;
    let bytes = 0;
    const names: string[] = [];
    const walk = (rel: string): void => {
      for (const e of readdirSync(join(this.mountpoint, rel), { withFileTypes: true })) {
        const r = join(rel, e.name);
        if (e.isDirectory()) walk(r);
        else if (e.isFile()) {
          let synced = 0;
          try {
            synced = statSync(join(this.backing, r)).size;
          } catch {
            // Gone from the disk since the listing: nothing of it is pending.
            continue;
          }
          const d = Math.abs(statSync(join(this.mountpoint, r)).size - synced);
          if (d > 0) {
            files++;
            bytes += d;
            names.push(r);
          }
        }
      }
    };
    walk('');
    return { files, bytes, names: names.sort() };
  }

  /** A clean unmount: lossyfs writes what is pending and exits (killed if it does not in time). */
  async unmount(): Promise<void> {
    const proc = this.proc;
    if (proc === null) return;
    // Lazy: the mount may still be referenced from another mount namespace, which keeps lossyfs
    // serving it until that namespace goes; past the wait it is killed.
    this.detach();
    const exited = await Promise.race([
      new Promise<boolean>((r) => (proc.exitCode !== null || proc.signalCode !== null ? r(true) : proc.once('exit', () => r(true)))),
      new Promise<boolean>((r) => setTimeout(() => r(false), EXIT_TIMEOUT_MS).unref()),
    ]);
    if (!exited) await this.exitOf(proc, 'SIGKILL');
    this.proc = null;
    live.delete(this);
  }

  private async exitOf(proc: ChildProcess, sig: NodeJS.Signals): Promise<void> {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill(sig);
    await exited;
  }

  private detach(): void {
    const r = spawnSync('fusermount', ['-u', '-z', this.mountpoint], { encoding: 'utf8' });
    // "not mounted" is the outcome wanted; anything else is a mount left behind.
    if (r.status !== 0 && !/not (found|mounted)|Invalid argument/i.test(r.stderr)) throw new Error(`fusermount -u -z ${this.mountpoint}: ${r.stderr.trim()}`);
  }

  /** For the exit hook: detach the mount and kill lossyfs, synchronously. */
  detachSync(): void {
    spawnSync('fusermount', ['-u', '-z', this.mountpoint]);
    this.proc?.kill('SIGKILL');
    this.proc = null;
    live.delete(this);
  }
}
