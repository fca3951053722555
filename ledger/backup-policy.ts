/**
 * The custodians a key share backup is encrypted to (BackupPolicy decision) and the record of a
 * backup written under it (KeyBackedUp). Pure: the ledger and the secret kernel validate a policy
 * with the same function and reach the same verdict.
 *
 *   interface BackupRecipient { label; recipient }   recipient: an age v1 X25519 recipient
 *                                                    ("age1" + Bech32, BIP 173, of 32 bytes)
 *   validateBackupRecipients(list): null | string    why the list is refused (BACKUP_POLICY_INVALID)
 *   backupRecipientsDigest(list): Uint8Array         what a KeyBackedUp names: the list it was
 *                                                    encrypted to, labels included, in order
 *   backupRecordKey(keyId, epoch, nodeId): string    the key of ClusterState.backups
 *
 * Message flow of a backup (kernel/kernel.ts shareBackup, node/lifecycle/backups.ts):
 *   approvers --BackupPolicy decision (governance quorum)--> ledger --forwarded--> each kernel
 *   daemon --shareBackup(key, epoch, recipients)--> its kernel: refused unless the recipients are
 *     exactly those of the BackupPolicy the kernel itself verified through the governance chain
 *     it follows, and the key epoch is one it holds and governance activated
 *   kernel --age file (kernel/backup.ts)--> daemon: writes it once, proposes KeyBackedUp
 *     { keyId, keyEpoch, identifier, fileCid = sha256(file), recipientsDigest } in its own name
 *   ledger: records it if the proposer is a participant of that active key epoch under that
 *     identifier and the digest is the policy in force's.
 *
 * Threat: the daemon is not trusted with the share, nor with the choice of custodians. It can
 * withhold a backup or propose a false cid (the ledger cannot see the file; a drill decrypting it
 * is what proves a file), but the only recipients a kernel ever encrypts to are the ones an
 * approver quorum signed, and a KeyBackedUp under another policy than the one in force is refused.
 */
import { bech32 } from '@scure/base';
import { ledger as ledgerLimits, shareBackup as limits } from '../proto/limits.js';
import { digest, encode } from './encoding.js';

export interface BackupRecipient {
  /** Who holds the identity (a custodian's name or role), for operators and auditors. */
  readonly label: string;
  /** The custodian's age X25519 recipient, `age1...`. */
  readonly recipient: string;
}

/** A BackupPolicy in force, as the ledger state holds it. */
export interface BackupPolicyRecord {
  readonly recipients: readonly BackupRecipient[];
  readonly decisionCid: Uint8Array;
  readonly sinceIndex: number;
}

/** A KeyBackedUp as the ledger records it, per (key, epoch, node). */
export interface BackupRecord {
  readonly keyId: string;
  readonly keyEpoch: number;
  readonly nodeId: string;
  readonly identifier: string;
  /** sha256 of the backup file's bytes. */
  readonly fileCid: Uint8Array;
  /** backupRecipientsDigest of the recipients the file is encrypted to. */
  readonly recipientsDigest: Uint8Array;
  readonly index: number;
  readonly stampMs: number;
}

/**
 * The last BackupDrilled of a key epoch (ledger/apply.ts backupDrilled): which recorded backups
 * a drill opened, whether it passed, a digest of its report, who recorded it and when.
 */
export interface DrillRecord {
  readonly keyId: string;
  readonly keyEpoch: number;
  /** The KeyBackedUp cids the drill used, in participant order. */
  readonly backupCids: readonly Uint8Array[];
  readonly passed: boolean;
  /** sha256 of the drill's report (node/guardian/drill.ts drillReportDigest). */
  readonly reportDigest: Uint8Array;
  /** When the drill ran, by the proposing node's clock (ms since the epoch, UTC). */
  readonly drilledAtMs: number;
  readonly nodeId: string;
  readonly index: number;
  readonly stampMs: number;
}

/** The state key of a key epoch's drill record. */
export function drillRecordKey(keyId: string, keyEpoch: number): string {
  return `${keyId}\u0000${keyEpoch}`;
}

/**
 * A RecoveryAuthorized decision as the ledger records it, per (key, epoch, node), and whether the
 * node then reported its kernel imported the share (ShareRecovered). A later RecoveryAuthorized of
 * the same participant replaces the record (the share was lost again).
 */
export interface RecoveryRecord {
  readonly keyId: string;
  readonly keyEpoch: number;
  readonly nodeId: string;
  readonly identifier: string;
  readonly backupCid: Uint8Array;
  /** The cid of the RecoveryAuthorized decision. */
  readonly decisionCid: Uint8Array;
  /** Ledger index of that decision. */
  readonly authorizedIndex: number;
  /** The ShareRecovered that reported the import: its ledger index and stamp; null until then. */
  readonly recovered: { readonly index: number; readonly stampMs: number } | null;
}

/**
 * A BackupsDestroyed decision as the ledger records it, per (key, epoch) of a retired key
 * (ledger/apply.ts): after it, every node deletes the backup files of that key epoch it wrote
 * (node/lifecycle/backups.ts). The KeyBackedUp records stay, so auditors still see what existed.
 */
export interface DestroyedRecord {
  readonly keyId: string;
  readonly keyEpoch: number;
  /** The cid of the BackupsDestroyed decision. */
  readonly decisionCid: Uint8Array;
  readonly index: number;
  readonly stampMs: number;
}

/**
 * A RepairAuthorized decision as the ledger records it, per (key, epoch, node), and the node's
 * ShareRepaired once its kernel holds the rebuilt share. A later RepairAuthorized of the same
 * node and key epoch replaces the record (a repair that failed is run again with other helpers).
 */
export interface RepairRecord {
  readonly keyId: string;
  readonly keyEpoch: number;
  readonly nodeId: string;
  readonly identifier: string;
  /** The helpers' node ids, as the decision lists them. */
  readonly helpers: readonly string[];
  /** True when `nodeId` is not a participant of the epoch: it is enrolled under a new identifier. */
  readonly enrol: boolean;
  /** The cid of the RepairAuthorized decision (the repair's ceremony id, hex, in the kernels). */
  readonly decisionCid: Uint8Array;
  readonly authorizedIndex: number;
  /** The ShareRepaired: its ledger index, stamp and the verifying share the node reported; null until then. */
  readonly repaired: { readonly index: number; readonly stampMs: number; readonly verifyingShare: Uint8Array } | null;
}

export const BACKUP_RECIPIENTS_DOMAIN = 'custody-ledger/v1/backup-recipients';

/**
 * The 32-byte X25519 public key of an age recipient, or null when `s` is not one: lowercase
 * Bech32 (BIP 173 §Bech32: checksum constant 1) with human-readable part "age" and a data part
 * that is exactly 32 bytes in 5-bit groups with zero padding (age v1 spec, "X25519 recipient").
 */
export function ageRecipientKey(s: string): Uint8Array | null {
  if (!/^age1[02-9ac-hj-np-z]{58}$/.test(s)) return null;
  try {
    const { prefix, words } = bech32.decode(s as `${string}1${string}`);
    if (prefix !== 'age') return null;
    const key = bech32.fromWords(words); // refuses non-zero padding
    return key.length === 32 ? key : null;
  } catch {
    return null; // a checksum or padding that fails
  }
}

/** Why `list` cannot be a BackupPolicy (null when it can). */
export function validateBackupRecipients(list: readonly BackupRecipient[]): string | null {
  if (list.length < 1 || list.length > limits.recipientsMax) return `a backup policy names 1 to ${limits.recipientsMax} custodians, not ${list.length}`;
  const labels = new Set<string>();
  const keys = new Set<string>();
  for (const [i, r] of list.entries()) {
    if (typeof r.label !== 'string' || r.label.length === 0 || Buffer.byteLength(r.label, 'utf8') > limits.labelBytesMax) return `custodian ${i}: a label is 1 to ${limits.labelBytesMax} bytes`;
    if (labels.has(r.label)) return `custodian label ${JSON.stringify(r.label)} is listed twice`;
    labels.add(r.label);
    const key = typeof r.recipient === 'string' ? ageRecipientKey(r.recipient) : null;
    if (key === null) return `custodian ${JSON.stringify(r.label)}: ${JSON.stringify(r.recipient)} is not an age X25519 recipient (age1 and 58 Bech32 characters with a valid checksum)`;
    const hex = Buffer.from(key).toString('hex');
    if (keys.has(hex)) return `custodian ${JSON.stringify(r.label)}: recipient ${r.recipient} is listed twice`;
    keys.add(hex);
  }
  return null;
}

/** The identity of a recipient list: labels and recipients, in the decision's order. */
export function backupRecipientsDigest(list: readonly BackupRecipient[]): Uint8Array {
  return digest(BACKUP_RECIPIENTS_DOMAIN, encode(list.map((r) => ({ label: r.label, recipient: r.recipient }))));
}

/** The key of ClusterState.backups: one record per participant of a key epoch. */
export function backupRecordKey(keyId: string, keyEpoch: number, nodeId: string): string {
  return JSON.stringify([keyId, keyEpoch, nodeId]);
}

/** The longest recipient text a decision may carry at decode (a real one is 62 characters). */
export const RECIPIENT_TEXT_BYTES_MAX = ledgerLimits.idBytesMax;
