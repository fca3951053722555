/**
 * Share backups, the daemon's part: while a BackupPolicy decision is in force, every node asks
 * its kernel for the backup of its share of each active key epoch it holds, writes the file once
 * to its backup folder, and records it in the ledger (KeyBackedUp).
 *
 * Message flow (ledger/backup-policy.ts has the whole picture):
 *   1. the ledger applies BackupPolicy; the participant forwards the decision to the kernel
 *      (participant.ts), which verifies it itself (kernel/authority.ts);
 *   2. for each key epoch that is active, names this node as a participant, and has no KeyBackedUp
 *      of this node under the policy in force, this node
 *      a. reads its file for (key, epoch, node, policy) if one is there (a previous run wrote it
 *         and stopped before the ledger recorded it), else asks the kernel (shareBackup, queued
 *         behind every decision forwarded so far, so the kernel holds the policy the ledger shows)
 *         and writes the answer as a new file: 0600, to a temporary name, fsynced, hard-linked to
 *         its name (never over an existing file), folder fsynced (node/guardian/files.ts);
 *      b. checks the file's clear metadata names the key, epoch, this node's identifier and the
 *         ledger's group key;
 *      c. proposes KeyBackedUp { key, epoch, identifier, fileCid = sha256(file bytes),
 *         recipientsDigest } in its own name (signed at the proposal point, driver-ledger.ts).
 *   A failed step is tried again after lifecycle.shareBackupRetryMs.
 *
 * Trust: the daemon never sees a share (the kernel answers with the age file only) and cannot
 * choose the custodians (the kernel encrypts to the decided list alone). What the daemon vouches
 * for is that the file with that cid was written to this node's folder; a drill decrypting it is
 * what proves the file restores.
 *
 * File name: `<keyId>.epoch-<epoch>.<nodeId>.<first 16 hex digits of the recipients digest>.backup`,
 * key and node ids URI-encoded, so a new policy writes a new file beside the old one.
 *
 * Retirement and destruction: KeyRetired leaves the files and their KeyBackedUp records in place
 * (`custody admin backup list` lists them as kept). Once the ledger applies a BackupsDestroyed
 * decision for epochs of a retired key (ledger/apply.ts backupsDestroyed), this node deletes the
 * files of those epochs it wrote, under any policy (destroyedFiles names them exactly, by this
 * naming scheme), and syncs the folder. The decision in the ledger is the record; copies moved off
 * the hosts are the custodians' to destroy.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { isCustodyError } from '../../proto/errors.js';
import { lifecycle as limits, shareBackup as backupLimits } from '../../proto/limits.js';
import { type DestroyedRecord, backupRecipientsDigest, backupRecordKey, drillRecordKey } from '../../ledger/backup-policy.js';
import { bytesEqual, toHex } from '../../ledger/encoding.js';
import { backupsOf, destroyedBackupsOf, type ClusterState } from '../../ledger/state.js';
import { readShareBackupMeta } from '../../kernel/backup.js';
import type { SuiteName } from '../../kernel/suites.js';
import { writeNewSecretFile } from '../guardian/files.js';
import { identifierOf } from './participant.js';
import { kernelEpoch } from './kernel-port.js';
import type { KernelPort, LedgerPort } from './ports.js';
import { Rerunner } from './rerun.js';

export interface ShareBackupOptions {
  readonly nodeId: string;
  readonly ledger: LedgerPort;
  /** This node's kernel, through the participant's queue (after every decision it forwarded). */
  readonly kernel: KernelPort;
  /** The folder backup files go to (created 0700 if missing). */
  readonly dir: string;
  readonly log: (line: string) => void;
  /** The clock of retry pauses (injected in tests). */
  readonly now?: () => number;
}

/** One backup this node owes: its share of an active key epoch, under the policy in force. */
export interface BackupTarget {
  readonly keyId: string;
  readonly keyEpoch: number;
  readonly scheme: SuiteName;
  readonly identifier: string;
  readonly groupKey: Uint8Array;
  readonly recipients: readonly string[];
  readonly recipientsDigest: Uint8Array;
}

/** The backups `nodeId` owes in `c`: active epochs it holds a share of, without its KeyBackedUp under the policy in force. */
export function backupsOwed(c: ClusterState, nodeId: string): BackupTarget[] {
  const policy = c.governance.backupPolicy;
  const me = c.nodes[nodeId];
  if (policy === undefined || me === undefined || me.status !== 'active' || me.equivocated) return [];
  const digest = backupRecipientsDigest(policy.recipients);
  const owed: BackupTarget[] = [];
  for (const k of Object.values(c.keys)) {
    if (k.status !== 'active' || k.activeEpoch === null) continue;
    const e = k.epochs[String(k.activeEpoch)];
    if (e === undefined || e.status !== 'active' || e.groupKey === null || !e.participants.includes(nodeId)) continue;
    const rec = backupsOf(c)[backupRecordKey(k.id, e.epoch, nodeId)];
    if (rec !== undefined && bytesEqual(rec.recipientsDigest, digest)) continue;
    owed.push({
      keyId: k.id, keyEpoch: e.epoch, scheme: k.scheme, identifier: identifierOf(k.scheme, e.participants, nodeId), groupKey: e.groupKey,
      recipients: policy.recipients.map((r) => r.recipient), recipientsDigest: digest,
    });
  }
  return owed;
}

export function backupFileName(t: Pick<BackupTarget, 'keyId' | 'keyEpoch' | 'recipientsDigest'>, nodeId: string): string {
  return `${encodeURIComponent(t.keyId)}.epoch-${t.keyEpoch}.${encodeURIComponent(nodeId)}.${toHex(t.recipientsDigest).slice(0, 16)}.backup`;
}

const sha256 = (b: Uint8Array): Uint8Array => createHash('sha256').update(b).digest();

export class ShareBackups {
  private readonly o: ShareBackupOptions;
  private readonly now: () => number;
  private readonly unsubs: (() => void)[] = [];
  /** Target -> the time before which it is not tried again (after a failure). */
  private readonly pausedUntil = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** Key epochs (drillRecordKey) whose files this process deleted after their BackupsDestroyed. */
  private readonly destroyed = new Set<string>();
  private readonly rerun = new Rerunner(
    () => this.reconcile(),
    (e) => this.o.log(`${this.o.nodeId}: share backup step failed: ${e.message}`),
    () => this.stopped,
  );

  constructor(o: ShareBackupOptions) {
    this.o = o;
    this.now = o.now ?? Date.now;
  }

  start(): void {
    this.unsubs.push(this.o.ledger.subscribe((_entry, result) => {
      if (result.type === 'GovernanceDecision' || result.type === 'KeyBackedUp') this.rerun.kick();
    }));
    this.timer = setInterval(() => this.rerun.kick(), limits.shareBackupRetryMs);
    this.timer.unref();
    this.rerun.kick();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    for (const u of this.unsubs.splice(0)) u();
  }

  private async reconcile(): Promise<void> {
    const c = this.o.ledger.state().cluster;
    if (c === null) return;
    await this.destroyEnded(c);
    const owed = backupsOwed(c, this.o.nodeId);
    if (owed.length === 0) return;
    await mkdir(this.o.dir, { recursive: true, mode: 0o700 });
    for (const t of owed) {
      if (this.stopped) return;
      const id = `${t.keyId}/${t.keyEpoch}/${toHex(t.recipientsDigest)}`;
      if ((this.pausedUntil.get(id) ?? 0) > this.now()) continue;
      try {
        await this.backUp(c, t);
        this.pausedUntil.delete(id);
      } catch (e) {
        this.pausedUntil.set(id, this.now() + limits.shareBackupRetryMs);
        this.o.log(`${this.o.nodeId}: backup of ${t.keyId} epoch ${t.keyEpoch} failed (next try in ${limits.shareBackupRetryMs} ms): ${isCustodyError(e) ? `${e.reason}: ${e.detail}` : (e as Error).message}`);
      }
    }
  }

  /** Deletes the files of every key epoch a BackupsDestroyed decision ended (once per epoch and process). */
  private async destroyEnded(c: ClusterState): Promise<void> {
    const ended = Object.values(destroyedBackupsOf(c)).filter((d) => !this.destroyed.has(drillRecordKey(d.keyId, d.keyEpoch)));
    if (ended.length === 0) return;
    const deleted = await deleteDestroyedBackups(this.o.dir, this.o.nodeId, ended);
    for (const f of deleted) this.o.log(`${this.o.nodeId}: deleted backup ${join(this.o.dir, f)} (BackupsDestroyed)`);
    for (const d of ended) this.destroyed.add(drillRecordKey(d.keyId, d.keyEpoch));
  }

  private async backUp(c: ClusterState, t: BackupTarget): Promise<void> {
    const path = join(this.o.dir, backupFileName(t, this.o.nodeId));
    let file = await readExisting(path);
    if (file === null) {
      const r = await this.o.kernel.call({ kind: 'shareBackup', keyId: t.keyId, epoch: kernelEpoch(t.keyEpoch), recipients: [...t.recipients] }, 'shareBackup');
      if (r.identifier !== t.identifier || !bytesEqual(r.recipientsDigest, t.recipientsDigest)) {
        throw new Error(`the kernel answered for identifier ${r.identifier} and recipients ${toHex(r.recipientsDigest)}, not ${t.identifier} and ${toHex(t.recipientsDigest)}`);
      }
      file = r.file;
      checkMeta(file, t);
      try {
        await writeNewSecretFile(path, file);
      } catch (e) {
        // Another run wrote it meanwhile: keep that file, never replace it.
        if (!isCustodyError(e) || e.reason !== 'OUTPUT_EXISTS') throw e;
        file = await readExisting(path);
        if (file === null) throw e;
      }
      this.o.log(`${this.o.nodeId}: wrote backup ${path}`);
    }
    checkMeta(file, t);
    const me = c.nodes[this.o.nodeId];
    if (me === undefined) return;
    const v = await this.o.ledger.propose({
      type: 'KeyBackedUp', keyId: t.keyId, keyEpoch: t.keyEpoch, identifier: t.identifier, fileCid: sha256(file), recipientsDigest: t.recipientsDigest,
      nodeId: this.o.nodeId, passport: me.passport,
    });
    if (!v.ok) throw new Error(`the ledger refused KeyBackedUp: ${v.reason ?? ''} ${v.detail}`);
  }
}

/**
 * The names in `names` that are backup files `nodeId` wrote of the key epochs in `ended`: exactly
 * backupFileName's form for that key, epoch and node, under any recipients digest.
 */
export function destroyedFiles(names: readonly string[], nodeId: string, ended: readonly Pick<DestroyedRecord, 'keyId' | 'keyEpoch'>[]): string[] {
  const prefixes = ended.map((d) => `${encodeURIComponent(d.keyId)}.epoch-${d.keyEpoch}.${encodeURIComponent(nodeId)}.`);
  return names.filter((n) => prefixes.some((p) => n.startsWith(p) && /^[0-9a-f]{16}\.backup$/.test(n.slice(p.length))));
}

/** Deletes from `dir` the backup files `destroyedFiles` names, syncs the folder, returns their names. */
export async function deleteDestroyedBackups(dir: string, nodeId: string, ended: readonly Pick<DestroyedRecord, 'keyId' | 'keyEpoch'>[]): Promise<string[]> {
  const names = await readdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [] as string[];
    throw e;
  });
  const gone = destroyedFiles(names, nodeId, ended);
  for (const n of gone) await unlink(join(dir, n));
  if (gone.length > 0) {
    const h = await open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  }
  return gone;
}

/** The file at `path`, or null when there is none (bounded by shareBackup.fileBytesMax). */
async function readExisting(path: string): Promise<Uint8Array | null> {
  const st = await stat(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw e;
  });
  if (st === null) return null;
  if (!st.isFile() || st.size > backupLimits.fileBytesMax) throw new Error(`${path} is not a backup file (${st.size} bytes)`);
  return new Uint8Array(await readFile(path));
}

/** The file's clear metadata must name the target's key, epoch, identifier, group key and suite. */
function checkMeta(file: Uint8Array, t: BackupTarget): void {
  const m = readShareBackupMeta(file);
  if (m.keyId !== t.keyId || m.epoch !== t.keyEpoch || m.identifier !== t.identifier || m.scheme !== t.scheme || !bytesEqual(m.groupKey, t.groupKey)) {
    throw new Error(`the backup names ${m.keyId} epoch ${m.epoch} identifier ${m.identifier} (${m.scheme}), not the ledger's ${t.keyId} epoch ${t.keyEpoch} identifier ${t.identifier} (${t.scheme}) with its group key`);
  }
}
