/**
 * The files of a witness (`custody witness`): its key, the policies of the logs it follows, and
 * the durable record of the latest checkpoint it cosigned per log.
 *
 * Key file (written by `custody witness keygen`, mode 0600), one line in the signed-note private
 * key encoding, with the cosignature/v1 signature type (C2SP tlog-cosignature):
 *
 *   PRIVATE+KEY+<name>+<key ID, 8 hex>+base64(0x04 || 32-byte Ed25519 seed)
 *
 * and beside it `<file>.vkey`, the verifier key (note.ts vkeyOf) that logs and auditors pin.
 *
 * Log policy file (one per log; `custody witness log-policy --genesis` writes a cluster's):
 *
 *   # comments and blank lines are ignored
 *   log <origin>                    exactly once: the checkpoint origin (custody-ledger/<clusterId>)
 *   vkey <verifier key>             one per key the log signs with (a node's identity key)
 *   quorum <n>                      how many distinct keys must sign a checkpoint (1..keys)
 *
 * State directory: one file per log, `<sha256(origin) hex>.json`,
 *   {"origin": ..., "size": <n>, "root": <base64>, "note": <the checkpoint note it cosigned>}
 * written to a temporary file, fsynced, renamed over the old one, and the directory fsynced: after
 * a crash the file is the old record or the new one, never a torn mix (rename(2) is atomic within
 * one file system). A state file that does not parse, or whose note does not match its record,
 * refuses the start (STORAGE_CORRUPT): a witness that forgot its record would cosign a rewrite.
 * `LOCK` holds the pid of the one witness process serving the directory.
 */
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { open as openAsync, rename as renameAsync } from 'node:fs/promises';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { CustodyError } from '../../proto/errors.js';
import { witness as limits } from '../../proto/limits.js';
import { parseCheckpoint } from '../../ledger/tlog/checkpoint.js';
import type { CheckpointTrust } from '../../ledger/tlog/checkpoint.js';
import { decodeBase64Strict, encodeBase64, isKeyName, makeVerifier, noteKeyId, parseNote, parseVkey, SIG_COSIGNATURE_V1, vkeyOf, type NoteVerifier } from '../../ledger/tlog/note.js';
import { bytesEqual } from '../../ledger/encoding.js';
import type { WitnessRecord } from '../../ledger/tlog/witness.js';

// ------------------------------------------------------------------------------------------------
// Key
// ------------------------------------------------------------------------------------------------

export interface WitnessKey {
  readonly name: string;
  readonly seed: Uint8Array;
  readonly verifier: NoteVerifier;
}

const hex8 = (n: number): string => n.toString(16).padStart(8, '0');

export function encodeWitnessKey(name: string, seed: Uint8Array): string {
  const id = noteKeyId(name, SIG_COSIGNATURE_V1, ed25519.getPublicKey(seed));
  return `PRIVATE+KEY+${name}+${hex8(id)}+${encodeBase64(new Uint8Array([SIG_COSIGNATURE_V1, ...seed]))}\n`;
}

export function parseWitnessKey(text: string, file = 'key file'): WitnessKey {
  const bad = (why: string): never => {
    throw new CustodyError('CONFIG_INVALID', `${file}: ${why}`);
  };
  const m = /^PRIVATE\+KEY\+([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)\n?$/.exec(text);
  if (m === null) return bad('not a witness key (PRIVATE+KEY+<name>+<id>+<base64>)');
  const [, name, id, b64] = m as unknown as [string, string, string, string];
  if (!isKeyName(name)) bad(`key name ${JSON.stringify(name)} is not a valid key name`);
  const raw = decodeBase64Strict(b64);
  if (raw === undefined || raw.length !== 33 || raw[0] !== SIG_COSIGNATURE_V1) return bad('the key is not base64 of 0x04 and a 32-byte seed');
  const seed = raw.slice(1);
  const verifier = makeVerifier(name, SIG_COSIGNATURE_V1, ed25519.getPublicKey(seed));
  if (hex8(verifier.keyId) !== id) bad('the key ID does not match the name and key');
  return { name, seed, verifier };
}

export function loadWitnessKey(file: string): WitnessKey {
  let text: string;
  try {
    const st = statSync(file);
    if ((st.mode & 0o077) !== 0) throw new CustodyError('CONFIG_INVALID', `${file}: the key file is readable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof CustodyError) throw e;
    throw new CustodyError('CONFIG_INVALID', `${file}: cannot read: ${(e as Error).message}`);
  }
  return parseWitnessKey(text, file);
}

/** Writes a new key to `file` (refusing to overwrite one) and its vkey to `<file>.vkey`; returns the vkey. */
export function writeWitnessKey(file: string, name: string, seed: Uint8Array): string {
  if (!isKeyName(name)) throw new CustodyError('INVALID_ARGUMENT', `key name ${JSON.stringify(name)}: non-empty, no space or '+'`);
  try {
    writeFileSync(file, encodeWitnessKey(name, seed), { mode: 0o600, flag: 'wx' });
  } catch (e) {
    throw new CustodyError('INVALID_ARGUMENT', `${file}: ${(e as NodeJS.ErrnoException).code === 'EEXIST' ? 'exists; a witness key is never overwritten' : (e as Error).message}`);
  }
  const vkey = vkeyOf(makeVerifier(name, SIG_COSIGNATURE_V1, ed25519.getPublicKey(seed)));
  writeFileSync(`${file}.vkey`, `${vkey}\n`, { mode: 0o644 });
  return vkey;
}

// ------------------------------------------------------------------------------------------------
// Log policies
// ------------------------------------------------------------------------------------------------

export function formatLogPolicy(trust: CheckpointTrust): string {
  return [`log ${trust.origin}`, ...trust.verifiers.map((v) => `vkey ${vkeyOf(v)}`), `quorum ${trust.quorum}`].join('\n') + '\n';
}

export function parseLogPolicy(text: string, file = 'log policy'): CheckpointTrust {
  const bad = (line: number, why: string): never => {
    throw new CustodyError('CONFIG_INVALID', `${file}:${line}: ${why}`);
  };
  if (Buffer.byteLength(text) > limits.logPolicyBytesMax) bad(0, `over ${limits.logPolicyBytesMax} bytes`);
  let origin: string | undefined;
  let quorum: number | undefined;
  const verifiers: NoteVerifier[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const sp = line.indexOf(' ');
    const [word, rest] = sp < 0 ? [line, ''] : [line.slice(0, sp), line.slice(sp + 1).trim()];
    if (word === 'log') {
      if (origin !== undefined) bad(i + 1, 'a second "log" line: one policy file per log');
      if (rest === '' || /[\u0000-\u001f]/.test(rest)) bad(i + 1, '"log <origin>" needs an origin');
      origin = rest;
    } else if (word === 'vkey') {
      try {
        verifiers.push(parseVkey(rest));
      } catch (e) {
        bad(i + 1, `vkey: ${(e as Error).message}`);
      }
    } else if (word === 'quorum') {
      if (!/^[1-9][0-9]{0,3}$/.test(rest)) bad(i + 1, '"quorum <n>" needs a positive integer');
      quorum = Number(rest);
    } else bad(i + 1, `unknown line "${word}" (expected log, vkey or quorum)`);
  });
  if (origin === undefined) return bad(0, 'no "log <origin>" line');
  if (verifiers.length === 0) bad(0, 'no "vkey" line');
  const names = new Set(verifiers.map((v) => v.name));
  if (names.size !== verifiers.length) bad(0, 'two vkeys share a key name');
  const q = quorum ?? Math.floor(verifiers.length / 2) + 1;
  if (q > verifiers.length) bad(0, `quorum ${q} with ${verifiers.length} keys`);
  return { origin, verifiers, quorum: q };
}

export function loadLogPolicies(files: readonly string[]): Map<string, CheckpointTrust> {
  if (files.length === 0) throw new CustodyError('CONFIG_INVALID', 'a witness follows at least one log: give --log-policy FILE');
  if (files.length > limits.logsMax) throw new CustodyError('CONFIG_INVALID', `more than ${limits.logsMax} log policies`);
  const out = new Map<string, CheckpointTrust>();
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch (e) {
      throw new CustodyError('CONFIG_INVALID', `${f}: cannot read: ${(e as Error).message}`);
    }
    const p = parseLogPolicy(text, f);
    if (out.has(p.origin)) throw new CustodyError('CONFIG_INVALID', `${f}: a second policy for log ${JSON.stringify(p.origin)}`);
    out.set(p.origin, p);
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// State
// ------------------------------------------------------------------------------------------------

export interface StoredRecord extends WitnessRecord {
  readonly origin: string;
  /** The checkpoint note as the log sent it (without the witness's cosignature). */
  readonly note: string;
}

const stateName = (origin: string): string => `${createHash('sha256').update(origin).digest('hex')}.json`;

function decodeRecord(text: string, file: string): StoredRecord {
  const corrupt = (why: string): never => {
    throw new CustodyError('STORAGE_CORRUPT', `witness state ${file}: ${why}`);
  };
  let o: { origin?: unknown; size?: unknown; root?: unknown; note?: unknown };
  try {
    o = JSON.parse(text) as typeof o;
  } catch (e) {
    return corrupt(`not JSON: ${(e as Error).message}`);
  }
  if (typeof o.origin !== 'string' || typeof o.size !== 'number' || !Number.isSafeInteger(o.size) || o.size < 0 || typeof o.root !== 'string' || typeof o.note !== 'string') return corrupt('expected {origin, size, root, note}');
  const root = decodeBase64Strict(o.root);
  if (root === undefined || root.length !== 32) return corrupt('root is not base64 of 32 bytes');
  let cp;
  try {
    cp = parseCheckpoint(parseNote(o.note).text);
  } catch (e) {
    return corrupt(`note: ${(e as Error).message}`);
  }
  if (cp.origin !== o.origin || cp.size !== o.size || !bytesEqual(cp.root, root)) corrupt('the note names another checkpoint than the record');
  return { origin: o.origin, size: o.size, root, note: o.note };
}

/**
 * The witness's durable records: loaded once at open, updated only through `commit`, which
 * returns once the new record is on disk. The caller serializes commits per origin (server.ts).
 */
export class WitnessState {
  private readonly records = new Map<string, StoredRecord>();
  private released = false;

  private constructor(private readonly dir: string, private readonly lockFile: string) {}

  /** Opens (creating) the directory, takes its lock, and loads every record. */
  static open(dir: string): WitnessState {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const lockFile = join(dir, 'LOCK');
    takeLock(lockFile);
    const s = new WitnessState(dir, lockFile);
    try {
      for (const f of readdirSync(dir)) {
        if (f.endsWith('.tmp')) {
          rmSync(join(dir, f), { force: true });
          continue;
        }
        if (!/^[0-9a-f]{64}\.json$/.test(f)) continue;
        const p = join(dir, f);
        if (statSync(p).size > limits.stateFileBytesMax) throw new CustodyError('STORAGE_CORRUPT', `witness state ${p}: over ${limits.stateFileBytesMax} bytes`);
        const r = decodeRecord(readFileSync(p, 'utf8'), p);
        if (stateName(r.origin) !== f) throw new CustodyError('STORAGE_CORRUPT', `witness state ${p}: holds log ${JSON.stringify(r.origin)}, whose file is ${stateName(r.origin)}`);
        s.records.set(r.origin, r);
      }
    } catch (e) {
      s.close();
      throw e;
    }
    return s;
  }

  latest(origin: string): StoredRecord | undefined {
    return this.records.get(origin);
  }

  origins(): string[] {
    return [...this.records.keys()];
  }

  /** Writes `r` durably (temporary file, fsync, rename, directory fsync), then makes it the latest. */
  async commit(r: StoredRecord): Promise<void> {
    const file = join(this.dir, stateName(r.origin));
    const tmp = `${file}.${process.pid}.tmp`;
    const body = JSON.stringify({ origin: r.origin, size: r.size, root: encodeBase64(r.root), note: r.note }) + '\n';
    const fh = await openAsync(tmp, 'w', 0o600);
    try {
      await fh.writeFile(body);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await renameAsync(tmp, file);
    const d = await openAsync(this.dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
    this.records.set(r.origin, r);
  }

  close(): void {
    if (this.released) return;
    this.released = true;
    rmSync(this.lockFile, { force: true });
  }
}

/** Takes `LOCK` for this process; a lock whose process is gone is taken over. */
function takeLock(file: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      fsyncSync(fd);
      closeSync(fd);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new CustodyError('CONFIG_INVALID', `${file}: ${(e as Error).message}`);
      const pid = Number(readFileSync(file, 'utf8').trim());
      if (Number.isSafeInteger(pid) && pid > 0 && pidAlive(pid)) throw new CustodyError('CONFIG_INVALID', `${file}: the state directory is in use by process ${pid}`);
      rmSync(file, { force: true });
    }
  }
  throw new CustodyError('CONFIG_INVALID', `${file}: cannot take the lock`);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
