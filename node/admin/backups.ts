/**
 * The admin API's view of share backups (ListBackups): the BackupPolicy in force and, for every
 * participant of every active key epoch, whether the ledger records its KeyBackedUp under that
 * policy, and its last recovery (RecoveryAuthorized, ShareRecovered) and repair (RepairAuthorized,
 * ShareRepaired); then every recorded backup of a retired key, kept until a BackupsDestroyed
 * decision (and, after it, the decision that destroyed it). Only reads this node's replica; what
 * it lists is what every replica agrees on.
 */
import { CustodyError } from '../../proto/errors.js';
import { backupRecipientsDigest, backupRecordKey, drillRecordKey } from '../../ledger/backup-policy.js';
import { bytesEqual, toHex } from '../../ledger/encoding.js';
import { backupsOf, destroyedBackupsOf, drillsOf, recoveriesOf, type LedgerState, repairsOf } from '../../ledger/state.js';
import { identifierOf } from '../lifecycle/participant.js';
import { enrolledPosition } from '../../ledger/signers.js';
import { requireAction, type Operator } from './roles.js';

export interface BackupEntryView {
  readonly keyId: string;
  readonly keyEpoch: number;
  readonly nodeId: string;
  readonly identifier: string;
  readonly backedUp: boolean;
  readonly fileCid: string;
  readonly index: number;
  readonly stampMs: number;
  readonly earlierPolicy: boolean;
  readonly threshold: number;
  /** Hex; '' while the epoch has none. */
  readonly groupKey: string;
  readonly scheme: string;
  /** The last RecoveryAuthorized of this participant (hex cid), empty when none. */
  readonly recoveryDecisionCid: string;
  /** Its ShareRecovered: ledger index and stamp; 0 while not reported. */
  readonly recoveredIndex: number;
  readonly recoveredStampMs: number;
  /** The key is retired: the backup is kept (listed, never counted missing) until a BackupsDestroyed decision. */
  readonly retired: boolean;
  /** The BackupsDestroyed decision that ended this epoch's backups (hex cid), empty while they are kept. */
  readonly destroyDecisionCid: string;
  /** Its ledger index; 0 while the backups are kept. */
  readonly destroyedIndex: number;
  /** The last RepairAuthorized of this participant (hex cid), empty when none. */
  readonly repairDecisionCid: string;
  /** Its ShareRepaired: ledger index and stamp; 0 while not reported. */
  readonly repairedIndex: number;
  readonly repairedStampMs: number;
  /** A holder enrolled by repair (an identifier past the participants): no backup of its own, never counted missing. Absent from older servers. */
  readonly enrolled?: boolean;
}

export interface BackupDrillView {
  readonly keyId: string;
  readonly keyEpoch: number;
  readonly passed: boolean;
  readonly backupCids: readonly string[];
  readonly reportDigest: string;
  readonly drilledAtMs: number;
  readonly nodeId: string;
  readonly index: number;
}

export interface BackupListReply {
  readonly policyInForce: boolean;
  readonly custodians: readonly { readonly label: string; readonly recipient: string }[];
  readonly recipientsDigest: string;
  readonly policySinceIndex: number;
  readonly entries: readonly BackupEntryView[];
  readonly missing: number;
  readonly drills: readonly BackupDrillView[];
}

export function backupList(caller: Operator, s: LedgerState): BackupListReply {
  requireAction(caller, 'read', 'list share backups');
  const c = s.cluster;
  if (c === null) throw new CustodyError('GENESIS_MISSING', 'the cluster has no genesis yet');
  const policy = c.governance.backupPolicy;
  const digest = policy === undefined ? null : backupRecipientsDigest(policy.recipients);
  const entries: BackupEntryView[] = [];
  const drills: BackupDrillView[] = [];
  const keys = Object.values(c.keys).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (const k of keys) {
    if (k.status !== 'active' || k.activeEpoch === null) continue;
    const e = k.epochs[String(k.activeEpoch)];
    if (e === undefined) continue;
    const d = drillsOf(c)[drillRecordKey(k.id, e.epoch)];
    if (d !== undefined) {
      drills.push({
        keyId: d.keyId, keyEpoch: d.keyEpoch, passed: d.passed, backupCids: d.backupCids.map(toHex), reportDigest: toHex(d.reportDigest),
        drilledAtMs: d.drilledAtMs, nodeId: d.nodeId, index: d.index,
      });
    }
    for (const nodeId of e.participants) {
      const rec = backupsOf(c)[backupRecordKey(k.id, e.epoch, nodeId)];
      const current = rec !== undefined && digest !== null && bytesEqual(rec.recipientsDigest, digest);
      const rcv = recoveriesOf(c)[backupRecordKey(k.id, e.epoch, nodeId)];
      const rep = repairsOf(c)[backupRecordKey(k.id, e.epoch, nodeId)];
      entries.push({
        keyId: k.id, keyEpoch: e.epoch, nodeId, identifier: identifierOf(k.scheme, e.participants, nodeId), backedUp: current,
        fileCid: rec === undefined ? '' : toHex(rec.fileCid), index: rec?.index ?? 0, stampMs: rec?.stampMs ?? 0, earlierPolicy: rec !== undefined && !current,
        threshold: e.threshold, groupKey: e.groupKey === null ? '' : toHex(e.groupKey), scheme: k.scheme,
        recoveryDecisionCid: rcv === undefined ? '' : toHex(rcv.decisionCid), recoveredIndex: rcv?.recovered?.index ?? 0, recoveredStampMs: rcv?.recovered?.stampMs ?? 0,
        retired: false, destroyDecisionCid: '', destroyedIndex: 0,
        repairDecisionCid: rep === undefined ? '' : toHex(rep.decisionCid), repairedIndex: rep?.repaired?.index ?? 0, repairedStampMs: rep?.repaired?.stampMs ?? 0,
        enrolled: false,
      });
    }
    // Holders enrolled by repair (ledger/signers.ts): listed with their identifiers so an operator
    // (and `custody admin share repair`) sees every identifier in use. KeyBackedUp covers the
    // epoch's participants only, so an enrolled share has no backup of its own and is not counted
    // missing; a reshare to a committee that names the node makes it a participant with backups.
    const enrolled = Object.values(repairsOf(c)).filter((r) => r.keyId === k.id && r.keyEpoch === e.epoch && r.enrol)
      .sort((a, b) => enrolledPosition(k.scheme, e, a.identifier) - enrolledPosition(k.scheme, e, b.identifier));
    for (const rep of enrolled) {
      entries.push({
        keyId: k.id, keyEpoch: e.epoch, nodeId: rep.nodeId, identifier: rep.identifier, backedUp: false, fileCid: '', index: 0, stampMs: 0, earlierPolicy: false,
        threshold: e.threshold, groupKey: e.groupKey === null ? '' : toHex(e.groupKey), scheme: k.scheme,
        recoveryDecisionCid: '', recoveredIndex: 0, recoveredStampMs: 0, retired: false, destroyDecisionCid: '', destroyedIndex: 0,
        repairDecisionCid: toHex(rep.decisionCid), repairedIndex: rep.repaired?.index ?? 0, repairedStampMs: rep.repaired?.stampMs ?? 0,
        enrolled: true,
      });
    }
  }
  // A retired key's backups stay until a BackupsDestroyed decision ends them: each recorded
  // KeyBackedUp of it is listed as kept (or destroyed, with its decision), never as missing.
  for (const k of keys) {
    if (k.status !== 'retired') continue;
    const recs = Object.values(backupsOf(c)).filter((b) => b.keyId === k.id)
      .sort((a, b) => a.keyEpoch - b.keyEpoch || (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
    for (const rec of recs) {
      const e = k.epochs[String(rec.keyEpoch)];
      const gone = destroyedBackupsOf(c)[drillRecordKey(k.id, rec.keyEpoch)];
      const rcv = recoveriesOf(c)[backupRecordKey(k.id, rec.keyEpoch, rec.nodeId)];
      const rep = repairsOf(c)[backupRecordKey(k.id, rec.keyEpoch, rec.nodeId)];
      entries.push({
        keyId: k.id, keyEpoch: rec.keyEpoch, nodeId: rec.nodeId, identifier: rec.identifier, backedUp: true, fileCid: toHex(rec.fileCid), index: rec.index, stampMs: rec.stampMs,
        earlierPolicy: digest === null || !bytesEqual(rec.recipientsDigest, digest), threshold: e?.threshold ?? 0, groupKey: e?.groupKey == null ? '' : toHex(e.groupKey), scheme: k.scheme,
        recoveryDecisionCid: rcv === undefined ? '' : toHex(rcv.decisionCid), recoveredIndex: rcv?.recovered?.index ?? 0, recoveredStampMs: rcv?.recovered?.stampMs ?? 0,
        retired: true, destroyDecisionCid: gone === undefined ? '' : toHex(gone.decisionCid), destroyedIndex: gone?.index ?? 0,
        repairDecisionCid: rep === undefined ? '' : toHex(rep.decisionCid), repairedIndex: rep?.repaired?.index ?? 0, repairedStampMs: rep?.repaired?.stampMs ?? 0,
        enrolled: false,
      });
    }
  }
  return {
    policyInForce: policy !== undefined,
    custodians: policy?.recipients.map((r) => ({ label: r.label, recipient: r.recipient })) ?? [],
    recipientsDigest: digest === null ? '' : toHex(digest),
    policySinceIndex: policy?.sinceIndex ?? 0,
    entries,
    missing: entries.filter((x) => !x.backedUp && !x.retired && !x.enrolled).length,
    drills,
  };
}
