/**
 * lossyfs (lossyfs.py, lossyfs.ts), the layer under a node's data directory that the nemesis's
 * power cut drops unsynced data from: what a program reads before the cut is what it wrote; after
 * the cut, each file holds what its last fsync held and nothing written since; names (create,
 * rename, unlink, mkdir) are durable at once, as the module header documents. Then the same with
 * LevelDB (the node store's engine) in a child process: a write with sync survives the cut, a
 * write without it survives kill -9 of the writer but not the cut.
 *
 * The property test prints its fast-check seed; replay a failure with
 *   FC_SEED=<seed> FC_PATH=<path> npx tap dist/test/jepsen/lossyfs.test.js
 * Needs root, /dev/fuse and the Debian packages fuse and python3-fusepy (skipped, saying why,
 * elsewhere).
 */
import t from 'tap';
import fc from 'fast-check';
import { spawn } from 'node:child_process';
import {
  closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync,
  renameSync, rmSync, statSync, truncateSync, unlinkSync, writeFileSync, writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Level } from 'level';
import { LossyMount, lossyfsUnavailable } from './lossyfs.js';

const seed = Number(process.env.FC_SEED ?? Math.floor(Math.random() * 0x7fffffff));
const path = process.env.FC_PATH;
const skip = lossyfsUnavailable() ?? false;
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

async function withMount(t: { teardown(fn: () => unknown): void }, f: (m: LossyMount, at: (name: string) => string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'custody-lossyfs-'));
  const m = new LossyMount(join(dir, 'disk'), join(dir, 'mnt'));
  t.teardown(async () => {
    await m.unmount();
    rmSync(dir, { recursive: true, force: true });
  });
  await m.mount();
  await f(m, (name) => join(m.mountpoint, name));
}

/** Writes `data` at `offset` through an open descriptor. */
const put = (fd: number, data: string, offset: number): void => {
  writeSync(fd, Buffer.from(data), 0, Buffer.byteLength(data), offset);
};

t.test('synced data survives a power cut, unsynced data does not; reads before the cut see every write', { skip }, async (t) => {
  await withMount(t, async (m, at) => {
    const a = openSync(at('a'), 'w+');
    put(a, 'synced', 0);
    fsyncSync(a);
    put(a, ' and more', 6);
    t.equal(readFileSync(at('a'), 'utf8'), 'synced and more', 'read-your-writes: another handle sees the unsynced tail');
    t.equal(fstatSync(a).size, 15, 'the size counts the unsynced bytes');
    t.equal(readFileSync(join(m.backing, 'a'), 'utf8'), 'synced', 'the disk holds the synced part only');
    closeSync(a);

    // close is not a sync; a later handle's fsync syncs what the closed one wrote.
    writeFileSync(at('closed'), 'written, closed, never synced');
    writeFileSync(at('late'), 'written, closed');
    const late = openSync(at('late'), 'r+');
    fsyncSync(late);
    closeSync(late);
    t.equal(readFileSync(at('closed'), 'utf8'), 'written, closed, never synced', 'a closed file still reads back');

    // One file's fsync leaves another file's pages pending.
    const b = openSync(at('b'), 'w+');
    const c = openSync(at('c'), 'w+');
    put(b, 'bbbb', 0);
    put(c, 'cccc', 0);
    fsyncSync(c);
    closeSync(b);
    closeSync(c);

    // A synced file truncated without a sync comes back whole.
    const d = openSync(at('d'), 'w+');
    put(d, 'x'.repeat(10_000), 0);
    fsyncSync(d);
    ftruncateSync(d, 100);
    t.equal(fstatSync(d).size, 100, 'truncated before the cut');
    closeSync(d);

    // a's tail (9), closed (29), b (4) and d (10 000 - 100) are pending; late and c were synced.
    const pending = { files: 4, bytes: 9 + 29 + 4 + 9_900, names: ['a', 'b', 'closed', 'd'] };
    t.same(m.unsynced(), pending, 'the files and bytes the cut will drop');
    t.same(await m.cut(), pending, 'the cut reports them');
    t.equal(m.cuts, 1, 'one cut');
    t.same(m.unsynced(), { files: 0, bytes: 0, names: [] }, 'nothing pending after the cut');
    t.equal(readFileSync(at('a'), 'utf8'), 'synced', 'after the cut: the synced prefix only');
    t.equal(readFileSync(at('closed'), 'utf8'), '', 'after the cut: closing did not sync (the created name stays, empty)');
    t.equal(readFileSync(at('late'), 'utf8'), 'written, closed', 'after the cut: synced through a later handle');
    t.equal(readFileSync(at('b'), 'utf8'), '', 'after the cut: b lost (only c was synced)');
    t.equal(readFileSync(at('c'), 'utf8'), 'cccc', 'after the cut: c kept');
    t.equal(statSync(at('d')).size, 10_000, 'after the cut: the unsynced truncate is undone');
  });
});

t.test('names are durable at once: rename, unlink, mkdir (the documented simplification)', { skip }, async (t) => {
  await withMount(t, async (m, at) => {
    writeFileSync(at('CURRENT'), 'MANIFEST-1\n');
    let fd = openSync(at('CURRENT'), 'r+');
    fsyncSync(fd);
    closeSync(fd);
    // The store's pattern: new content to a temporary file, fsync, rename over the live name.
    fd = openSync(at('CURRENT.tmp'), 'w');
    put(fd, 'MANIFEST-2\n', 0);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(at('CURRENT.tmp'), at('CURRENT'));
    // The same without the fsync: the rename survives, the data does not.
    fd = openSync(at('torn.tmp'), 'w');
    put(fd, 'never synced', 0);
    closeSync(fd);
    renameSync(at('torn.tmp'), at('torn'));
    t.equal(readFileSync(at('torn'), 'utf8'), 'never synced', 'the renamed file reads its data before the cut');
    // Pending data follows its file through a rename: synced under the new name, it is kept.
    fd = openSync(at('moved.tmp'), 'w');
    put(fd, 'synced after the rename', 0);
    closeSync(fd);
    renameSync(at('moved.tmp'), at('moved'));
    fd = openSync(at('moved'), 'r+');
    fsyncSync(fd);
    closeSync(fd);
    writeFileSync(at('gone'), 'x');
    unlinkSync(at('gone'));
    mkdirSync(at('sub'));
    writeFileSync(at('sub/f'), 'in a new folder');
    fd = openSync(at('sub/f'), 'r+');
    fsyncSync(fd);
    closeSync(fd);
    // An unlinked file with unsynced data: nothing of it may reach the disk under any name.
    fd = openSync(at('dropped'), 'w');
    put(fd, 'unlinked before any sync', 0);
    unlinkSync(at('dropped'));
    closeSync(fd);

    await m.cut();
    t.equal(readFileSync(at('CURRENT'), 'utf8'), 'MANIFEST-2\n', 'fsync then rename: the new content under the live name');
    t.notOk(existsSync(at('CURRENT.tmp')), 'the temporary name is gone');
    t.equal(readFileSync(at('torn'), 'utf8'), '', 'rename without fsync: the name survives, empty');
    t.notOk(existsSync(at('torn.tmp')), 'and the old name is gone');
    t.equal(readFileSync(at('moved'), 'utf8'), 'synced after the rename', 'data synced after a rename is kept');
    t.notOk(existsSync(at('gone')), 'unlink is durable');
    t.equal(readFileSync(at('sub/f'), 'utf8'), 'in a new folder', 'mkdir is durable, the synced file in it too');
    t.same(readdirSync(m.mountpoint).sort(), ['CURRENT', 'moved', 'sub', 'torn'], 'nothing else is there');
  });
});

type Op = { k: 'write'; offset: number; length: number; byte: number } | { k: 'truncate'; length: number; byPath: boolean } | { k: 'fsync' } | { k: 'reopen' };

t.test('property: before a cut a file reads as written; after it, as it was at its last fsync', { skip, timeout: 300_000 }, async (t) => {
  t.comment(`fast-check seed ${seed}`);
  await withMount(t, async (m, at) => {
    const PAGE = 4096;
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 5, arbitrary: fc.record({ k: fc.constant('write' as const), offset: fc.integer({ min: 0, max: 3 * PAGE + 100 }), length: fc.integer({ min: 1, max: 2 * PAGE + 10 }), byte: fc.integer({ min: 1, max: 255 }) }) },
      { weight: 2, arbitrary: fc.record({ k: fc.constant('truncate' as const), length: fc.integer({ min: 0, max: 4 * PAGE }), byPath: fc.boolean() }) },
      { weight: 2, arbitrary: fc.constant({ k: 'fsync' as const }) },
      { weight: 1, arbitrary: fc.constant({ k: 'reopen' as const }) },
    );
    let run = 0;
    const failures: string[] = [];
    const result = await fc.check(fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 16 }), fc.boolean(), async (ops, syncedStart) => {
      const name = at(`f${run++}`);
      let logical: Buffer = Buffer.alloc(0);
      let durable: Buffer = Buffer.alloc(0);
      let fd = openSync(name, 'w+');
      if (syncedStart) {
        logical = Buffer.alloc(PAGE + 7, 0x2a);
        put(fd, logical.toString('latin1'), 0);
        fsyncSync(fd);
        durable = Buffer.from(logical);
      }
      const resize = (b: Buffer, n: number): Buffer => (n <= b.length ? Buffer.from(b.subarray(0, n)) : Buffer.concat([b, Buffer.alloc(n - b.length)]));
      for (const o of ops) {
        if (o.k === 'write') {
          const data = Buffer.alloc(o.length, o.byte);
          writeSync(fd, data, 0, data.length, o.offset);
          logical = resize(logical, Math.max(logical.length, o.offset + o.length));
          data.copy(logical, o.offset);
        } else if (o.k === 'truncate') {
          if (o.byPath) truncateSync(name, o.length);
          else ftruncateSync(fd, o.length);
          logical = resize(logical, o.length);
        } else if (o.k === 'fsync') {
          fsyncSync(fd);
          durable = Buffer.from(logical);
        } else {
          closeSync(fd);
          fd = openSync(name, 'r+');
        }
        const seen = readFileSync(name);
        if (!seen.equals(logical)) {
          failures.push(`before the cut, after ${JSON.stringify(o)}: read ${seen.length} bytes, not the ${logical.length} written`);
          return false;
        }
      }
      closeSync(fd);
      await m.cut();
      const after = readFileSync(name);
      if (!after.equals(durable)) {
        failures.push(`after the cut: read ${after.length} bytes, not the ${durable.length} synced`);
        return false;
      }
      return true;
    }), { seed, ...(path !== undefined ? { path } : {}), numRuns: 15 });
    t.notOk(result.failed, result.failed ? `${failures.at(-1) ?? ''}; ${JSON.stringify(result.counterexample)}; replay with FC_SEED=${result.seed} FC_PATH=${result.counterexamplePath ?? ''}` : `${m.cuts} cuts, every file as written before and as synced after`);
  });
});

/** A child process that opens LevelDB on `dir`, writes, says so, and waits to be killed. */
function levelWriter(dir: string, writes: [string, string, boolean][]): Promise<() => Promise<void>> {
  const code = `
    import { Level } from 'level';
    const db = new Level(process.argv[1]);
    await db.open();
    for (const [k, v, sync] of JSON.parse(process.argv[2])) await db.put(k, v, { sync });
    process.stdout.write('written\\n');
    setInterval(() => undefined, 60_000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code, dir, JSON.stringify(writes)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', () => resolve(async () => {
      child.kill('SIGKILL');
      await exited;
    }));
    child.once('exit', (code) => reject(new Error(`LevelDB writer exited (${code}) before writing`)));
  });
}

async function readAll(dir: string): Promise<Record<string, string>> {
  const db = new Level<string, string>(dir);
  await db.open();
  const out: Record<string, string> = {};
  for await (const [k, v] of db.iterator()) out[k] = v;
  await db.close();
  return out;
}

t.test('LevelDB on lossyfs: kill -9 keeps an unsynced write, the power cut loses it, a synced one survives both', { skip, timeout: 120_000 }, async (t) => {
  await withMount(t, async (m, at) => {
    const dir = at('db');
    let kill = await levelWriter(dir, [['a', 'synced', true], ['b', 'unsynced', false]]);
    await kill();
    t.same(await readAll(dir), { a: 'synced', b: 'unsynced' }, 'kill -9 of the writer alone: the unsynced write is still there');
    kill = await levelWriter(dir, [['c', 'synced', true], ['d', 'unsynced', false]]);
    await kill();
    await m.cut();
    // a and b were made durable when the reopen above recovered the log into a synced table.
    t.same(await readAll(dir), { a: 'synced', b: 'unsynced', c: 'synced' }, 'after the power cut: the unsynced write d is gone, the synced c kept');
  });
});
