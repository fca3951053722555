/**
 * A backup drill (README "Drills: proving the backups restore"): from K guardian files and the
 * backup files of one key epoch, prove that every participant's share can be recovered and that
 * the recovered shares are the key, then erase everything. Nothing is imported anywhere.
 *
 * Flow. The operator's CLI reads from the ledger (admin ListBackups and Status) the key's scheme,
 * threshold t, group key, participants with their identifiers and the cid of each KeyBackedUp,
 * then starts a throwaway child process (drill-child.ts) and gives it only those public facts and
 * file paths on stdin. The child rebuilds the custodian identity from the guardian files
 * (node/guardian/shares.ts combineShares: too few, corrupt, duplicate or foreign files refused by
 * name), and for each participant: finds the backup file whose sha256 is the recorded cid
 * (missing otherwise), decrypts it with kernel/backup.ts decryptShareBackup under the metadata
 * the ledger fixes (key, epoch, identifier, group key, scheme: BACKUP_FOREIGN otherwise; the
 * payload authenticates the clear metadata: BACKUP_INVALID; share*G = verifying share:
 * SHARE_MISMATCH). It then checks the recovered shares are the key: with m >= t shares s_i at
 * identifiers x_i, f(0) = sum lambda_i(0) s_i over the first t (Lagrange interpolation, RFC 9591
 * §4.2 derive_interpolating_value) must satisfy f(0)*G = the ledger's group key, and every other
 * share s_j must equal f(x_j) = sum lambda_i(x_j) s_i, so all m shares lie on one polynomial of
 * degree t-1 and therefore any t of them interpolate the same secret, the group key's. The child
 * writes only the report (public facts and reason codes) on stdout, erases every share, the
 * interpolated secret and the identity's bytes it holds, and exits.
 *
 * Threat and trust. The ledger is trusted for the key's public facts and the cids (it is the
 * replicated record every node agrees on); the backup files and the folder they sit in are not
 * (a file is used only when its sha256 is the recorded cid). The verifying share comes from the
 * backup's own metadata, which anyone knowing the custodians' recipients could forge; the anchor
 * that makes a drill's "ok" meaningful is the group key: t shares reconstruct it only if they
 * are the key's shares (or were made by someone who already holds the key). So a drill with
 * fewer than t recoverable shares fails (DRILL_RECONSTRUCTION_FAILED): recovery is not proven.
 * The guardian files and the rebuilt identity are secrets; they are read only by the child,
 * whose memory ends with it (JavaScript strings cannot be wiped; the process boundary is what
 * bounds their lifetime).
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { CustodyError, isCustodyError } from '../../proto/errors.js';
import { drill as drillLimits, shareBackup as backupLimits } from '../../proto/limits.js';
import type { ReasonCode } from '../../proto/reasons.js';
import { decryptShareBackup, readShareBackupMeta } from '../../kernel/backup.js';
import { isSuiteName, suiteOf, type SuiteName } from '../../kernel/suites.js';
import { readShareFiles } from './files.js';
import { combineShares } from './shares.js';

/** One participant of the key epoch as the ledger records it. */
export interface DrillParticipant {
  nodeId: string;
  /** FROST identifier (hex), as the key epoch assigns it. */
  identifier: string;
  /** The cid (hex sha256) of its KeyBackedUp, or '' when the ledger records none. */
  cid: string;
}

/** What the drill is given: public facts only, and paths. */
export interface DrillInput {
  keyId: string;
  epoch: number;
  scheme: SuiteName;
  threshold: number;
  /** The ledger's group key of the epoch, hex. */
  groupKey: string;
  participants: DrillParticipant[];
  /** Guardian files of one custodian's split. */
  guardianFiles: string[];
  /** Candidate backup files (matched to participants by sha256). */
  backupFiles: string[];
}

export type DrillStatus = 'ok' | 'missing' | 'mismatch';

export interface DrillEntry {
  nodeId: string;
  identifier: string;
  cid: string;
  status: DrillStatus;
  /** '' for ok; the reason code otherwise. */
  reason: ReasonCode | '';
  detail: string;
}

export interface DrillReport {
  keyId: string;
  epoch: number;
  threshold: number;
  /** The custodian whose identity the guardian files rebuilt. */
  recipient: string;
  entries: DrillEntry[];
  /** Whether the recovered shares reconstruct the group key (at least t of them, all on one polynomial). */
  reconstructs: boolean;
  reconstruction: string;
  /** Every participant ok and the shares reconstruct the key. */
  ok: boolean;
}

const sha256Hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Lagrange coefficient of x_i at the point x over the identifiers xs (RFC 9591 §4.2, at any x). */
function lagrange(Fn: ReturnType<typeof suiteOf>['Fn'], xs: readonly bigint[], i: number, x: bigint): bigint {
  let num = 1n;
  let den = 1n;
  for (let j = 0; j < xs.length; j++) {
    if (j === i) continue;
    num = Fn.mul(num, Fn.sub(x, xs[j]!));
    den = Fn.mul(den, Fn.sub(xs[i]!, xs[j]!));
  }
  return Fn.div(num, den);
}

/**
 * Checks shares (identifier scalar, share scalar) against the group key: the first t interpolate
 * f(0) with f(0)*G = groupKey, and every other share is f at its identifier. Returns '' when they
 * do, else why not. Erases nothing itself: the caller owns the scalars (bigints cannot be wiped;
 * their byte forms are erased by the caller).
 */
export function checkReconstruction(scheme: SuiteName, threshold: number, groupKey: Uint8Array, shares: readonly { x: bigint; s: bigint; nodeId: string }[]): string {
  const suite = suiteOf(scheme);
  const Fn = suite.Fn;
  if (shares.length < threshold) return `${shares.length} share${shares.length === 1 ? '' : 's'} recovered, the key needs ${threshold}`;
  const base = shares.slice(0, threshold);
  const xs = base.map((p) => p.x);
  const at = (x: bigint): bigint => base.reduce((acc, p, i) => Fn.add(acc, Fn.mul(lagrange(Fn, xs, i, x), p.s)), 0n);
  const secret = at(0n);
  if (secret === 0n || !suite.base.multiply(secret).equals(suite.parsePoint(groupKey))) {
    return `shares of ${base.map((p) => p.nodeId).join(', ')} interpolate a secret whose public key is not the group key`;
  }
  for (const p of shares.slice(threshold)) {
    if (at(p.x) !== p.s) return `the share of ${p.nodeId} is not on the polynomial of ${base.map((q) => q.nodeId).join(', ')}: some ${threshold} shares would not reconstruct the key`;
  }
  return '';
}

/**
 * Runs the drill in this process (the child's body; `drillInChild` is what a long-running
 * process calls). Refusals of the guardian files throw (CustodyError, naming the file); every
 * per-participant problem is reported in its entry. `progress` receives one line per step.
 */
export async function runDrill(input: DrillInput, progress: (line: string) => void = () => undefined): Promise<DrillReport> {
  if (!isSuiteName(input.scheme)) throw new CustodyError('INVALID_ARGUMENT', `unknown scheme ${JSON.stringify(input.scheme)}`);
  if (!Number.isSafeInteger(input.threshold) || input.threshold < 1 || input.threshold > input.participants.length) {
    throw new CustodyError('INVALID_ARGUMENT', `threshold ${input.threshold} of ${input.participants.length} participants`);
  }
  const suite = suiteOf(input.scheme);
  const groupKey = Uint8Array.from(Buffer.from(input.groupKey, 'hex'));
  progress(`reading ${input.guardianFiles.length} guardian files`);
  const named = await readShareFiles(input.guardianFiles);
  const { identity, recipient } = await combineShares(named);
  progress(`identity of ${recipient} rebuilt from ${named.length} guardian files`);

  const byCid = new Map<string, Uint8Array>();
  for (const [i, path] of input.backupFiles.entries()) {
    const size = (await stat(path)).size;
    if (size > backupLimits.fileBytesMax) {
      progress(`skipping ${path}: ${size} bytes, more than a backup's ${backupLimits.fileBytesMax}`);
      continue;
    }
    const bytes = new Uint8Array(await readFile(path));
    byCid.set(sha256Hex(bytes), bytes);
    if ((i + 1) % 16 === 0) progress(`read ${i + 1} of ${input.backupFiles.length} backup files`);
  }

  const entries: DrillEntry[] = [];
  const recovered: { x: bigint; s: bigint; nodeId: string }[] = [];
  const erase: Uint8Array[] = [];
  try {
    for (const [i, p] of input.participants.entries()) {
      progress(`participant ${i + 1} of ${input.participants.length}: ${p.nodeId}`);
      const entry = (status: DrillStatus, reason: ReasonCode | '', detail: string): void => void entries.push({ nodeId: p.nodeId, identifier: p.identifier, cid: p.cid, status, reason, detail });
      if (p.cid === '') {
        entry('missing', 'RECOVERY_BACKUP_MISSING', 'the ledger records no backup of this participant');
        continue;
      }
      const file = byCid.get(p.cid);
      if (file === undefined) {
        entry('missing', 'RECOVERY_BACKUP_MISSING', `no file with sha256 ${p.cid} among the backups given`);
        continue;
      }
      try {
        const clear = readShareBackupMeta(file);
        const share = await decryptShareBackup(file, identity, {
          keyId: input.keyId, epoch: input.epoch, identifier: p.identifier, scheme: input.scheme, groupKey, verifyingShare: clear.verifyingShare,
        });
        erase.push(share);
        recovered.push({ x: suite.Fn.fromBytes(Uint8Array.from(Buffer.from(p.identifier, 'hex'))), s: suite.Fn.fromBytes(share), nodeId: p.nodeId });
        entry('ok', '', 'decrypted, share*G is its verifying share');
      } catch (e) {
        if (!isCustodyError(e)) throw e;
        entry('mismatch', e.reason, e.detail);
      }
    }
    progress(`checking that any ${input.threshold} of ${recovered.length} recovered shares reconstruct the group key`);
    const why = checkReconstruction(input.scheme, input.threshold, groupKey, recovered);
    const reconstructs = why === '';
    return {
      keyId: input.keyId, epoch: input.epoch, threshold: input.threshold, recipient, entries, reconstructs,
      reconstruction: reconstructs ? `any ${input.threshold} of the ${recovered.length} recovered shares reconstruct the group key` : `DRILL_RECONSTRUCTION_FAILED: ${why}`,
      ok: reconstructs && entries.every((x) => x.status === 'ok'),
    };
  } finally {
    for (const b of erase) b.fill(0);
    recovered.length = 0;
    for (const b of byCid.values()) b.fill(0);
  }
}

/** The report as text, one line per participant. */
export function formatDrillReport(r: DrillReport): string {
  const lines = [`drill of key ${r.keyId} epoch ${r.epoch} (threshold ${r.threshold}) with the identity of ${r.recipient}`];
  for (const e of r.entries) {
    lines.push(`  ${e.nodeId}: ${e.status === 'ok' ? 'ok' : `${e.status.toUpperCase()} ${e.reason}: ${e.detail}`}`);
  }
  lines.push(`  ${r.reconstruction}`);
  const okCount = r.entries.filter((e) => e.status === 'ok').length;
  lines.push(`${r.ok ? 'PASSED' : 'FAILED'}: ${okCount} of ${r.entries.length} shares recovered`);
  return lines.join('\n');
}

/**
 * The report's digest (hex sha256 of `JSON.stringify(report)`: compact, fields in the order the
 * report is built and printed with `--json`): what a record of the drill names.
 */
export function drillReportDigest(r: DrillReport): string {
  return sha256Hex(new TextEncoder().encode(JSON.stringify(r)));
}

/**
 * Runs the drill in a throwaway child process (drill-child.ts) so that the guardian files, the
 * rebuilt identity and the shares are never in this process. Progress lines of the child go to
 * `progress`; a refusal of the child (guardian files) is rethrown here with its reason code.
 */
export async function drillInChild(input: DrillInput, progress: (line: string) => void = () => undefined): Promise<DrillReport> {
  const { spawn } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const child = spawn(process.execPath, [fileURLToPath(new URL('./drill-child.js', import.meta.url))], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let errBuf = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { if (out.length < drillLimits.reportCharsMax) out += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    errBuf += d;
    let nl: number;
    while ((nl = errBuf.indexOf('\n')) >= 0) {
      progress(errBuf.slice(0, nl));
      errBuf = errBuf.slice(nl + 1);
    }
  });
  const exited = new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? -1));
  });
  child.stdin.end(JSON.stringify(input));
  const code = await exited;
  let reply: { report?: DrillReport; refusal?: { reason: ReasonCode; detail: string } };
  try {
    reply = JSON.parse(out) as typeof reply;
  } catch {
    throw new CustodyError('INTERNAL', `the drill process exited ${code} without a report`);
  }
  if (reply.refusal !== undefined) throw new CustodyError(reply.refusal.reason, reply.refusal.detail);
  if (reply.report === undefined) throw new CustodyError('INTERNAL', `the drill process exited ${code} without a report`);
  return reply.report;
}
