/**
 * Files of the offline guardian tools. Secrets (identity files, guardian files) are written 0600,
 * atomically and never over an existing file: the bytes go to a temporary file beside the target,
 * are fsynced, and are then hard-linked to the target name (link fails if the name exists, so a
 * file that appears meanwhile is never replaced), the temporary name is removed and the folder
 * fsynced. Reads are bounded (proto/limits.ts `guardian.fileBytesMax`); an identity file with any
 * group or world permission bit is refused (SECRET_EXPOSED), as the kernel refuses its secrets.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, mkdir, open, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CustodyError } from '../../proto/errors.js';
import { guardian as limits } from '../../proto/limits.js';
import { refuseExposed } from '../../kernel/perms.js';
import { parseIdentityFile, parseShare, type GuardianShare, type NamedShare } from './shares.js';

/** Reads a small text file, refusing a missing, non-regular or oversized one by name. */
export async function readSmallFile(path: string, what: string): Promise<string> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    throw new CustodyError('INVALID_ARGUMENT', `${what} ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new CustodyError('INVALID_ARGUMENT', `${what} ${path} is not a regular file`);
    if (st.size > limits.fileBytesMax) throw new CustodyError('LIMIT_EXCEEDED', `${what} ${path} has ${st.size} bytes, more than the ${limits.fileBytesMax} a ${what} can have`);
    const buf = Buffer.alloc(limits.fileBytesMax + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    if (bytesRead > limits.fileBytesMax) throw new CustodyError('LIMIT_EXCEEDED', `${what} ${path} grew past ${limits.fileBytesMax} bytes while read`);
    const text = buf.subarray(0, bytesRead).toString('utf8');
    buf.fill(0);
    return text;
  } finally {
    await fh.close();
  }
}

/** An identity file's identity and recipient; refused if open to the group or others. */
export async function readIdentityFile(path: string): Promise<{ identity: string; recipient: string }> {
  refuseExposed(path, 'identity file');
  return parseIdentityFile(path, await readSmallFile(path, 'identity file'));
}

/** Guardian files, each parsed and checked on its own (GUARDIAN_SHARE_CORRUPT naming the first bad one). */
export async function readShareFiles(paths: readonly string[]): Promise<NamedShare[]> {
  const named: NamedShare[] = [];
  for (const path of paths) named.push({ name: path, share: parseShare(path, await readSmallFile(path, 'guardian file')) });
  return named;
}

async function refuseExisting(path: string): Promise<void> {
  const exists = await stat(path).then(() => true, (e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return false;
    throw new CustodyError('INVALID_ARGUMENT', `${path}: ${e.message}`, { cause: e });
  });
  if (exists) throw new CustodyError('OUTPUT_EXISTS', `${path} already exists; it is never overwritten (move it away or choose another name)`);
}

async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** Writes `text` (or bytes) to a new file `path` (0600), atomically; OUTPUT_EXISTS if `path` exists. */
export async function writeNewSecretFile(path: string, text: string | Uint8Array): Promise<void> {
  await refuseExisting(path);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(text);
    await fh.chmod(0o600);
    await fh.sync();
  } catch (e) {
    // The write already failed with `e`; a close error on the file removed next adds nothing.
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  try {
    await link(tmp, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new CustodyError('OUTPUT_EXISTS', `${path} appeared while it was written; it is never overwritten`);
    throw e;
  } finally {
    await rm(tmp, { force: true });
  }
  await syncDir(dirname(path));
}

/** The file name of guardian share `s` in a split's output folder. */
export function shareFileName(s: GuardianShare): string {
  return `${s.label}-guardian-${s.index}-of-${s.shares}.txt`;
}

/**
 * Writes one guardian file per share into `dir` (created 0700 if missing). Every target is checked
 * first; if a write fails midway the files already written are removed, so a split is all or nothing.
 */
export async function writeShareFiles(dir: string, shares: readonly GuardianShare[], render: (s: GuardianShare) => string): Promise<string[]> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const paths = shares.map((s) => join(dir, shareFileName(s)));
  for (const p of paths) await refuseExisting(p);
  const written: string[] = [];
  try {
    for (const [i, s] of shares.entries()) {
      await writeNewSecretFile(paths[i]!, render(s));
      written.push(paths[i]!);
    }
  } catch (e) {
    for (const p of written) await rm(p, { force: true });
    throw e;
  }
  return paths;
}
