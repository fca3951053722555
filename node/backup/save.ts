/**
 * Writing a snapshot file atomically: the bytes go to a temporary file beside the target (same
 * directory, so the same filesystem), are verified frame by frame as they arrive (the digest the
 * node computed is checked against the bytes that reached the disk's page cache), fsynced, and
 * only then renamed over the target, and the directory is fsynced so the rename survives a crash.
 * A failed save (a refused or broken stream, a bad frame, a full disk) removes the temporary file
 * and leaves any earlier file at the target untouched.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { backup as limits } from '../../proto/limits.js';
import { SnapshotParser, type SnapshotSummary } from './format.js';

export async function writeSnapshotFile(file: string, bytes: AsyncIterable<Uint8Array>, progress: (bytes: number) => void = () => {}): Promise<SnapshotSummary> {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  let closed = false;
  try {
    const parser = new SnapshotParser(file);
    let written = 0;
    let next = limits.progressEveryBytes;
    for await (const b of bytes) {
      parser.push(b);
      await fh.write(b);
      written += b.length;
      if (written >= next) {
        progress(written);
        next = written + limits.progressEveryBytes;
      }
    }
    const summary = parser.end();
    await fh.sync();
    await fh.close();
    closed = true;
    await rename(tmp, file);
    const d = await open(dirname(file), 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
    return summary;
  } catch (e) {
    // The write already failed with `e`, which is what the caller needs; a close error on the
    // temporary file it is about to delete adds nothing, so it is dropped.
    if (!closed) await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  }
}
