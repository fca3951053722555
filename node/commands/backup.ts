/**
 * `custody admin backup ...`: backups of the kernels' key shares (ledger/backup-policy.ts).
 *
 *   policy --custodian LABEL=age1...   a BackupPolicy decision for the approvers to sign (through
 *                                      the approval book, `admin decision approve`): the custodians
 *                                      every kernel encrypts its share backups to
 *   list                               for every participant of every active key epoch: its backup
 *                                      under the policy in force (file cid, node, time) or missing;
 *                                      then the backups of retired keys, kept or destroyed
 *   destroy --key-id K --epoch E...    a BackupsDestroyed decision: the backups of a retired key's
 *                                      epochs end (KeyRetired keeps them); every node deletes the
 *                                      files of those epochs it wrote
 *   drill --key-id K --guardian-shares F... --backups DIR
 *                                      prove the backups of a key epoch restore: in a throwaway
 *                                      process (node/guardian/drill.ts), rebuild the custodian's
 *                                      identity, decrypt and check every share, check they
 *                                      reconstruct the group key, report, erase
 *
 * The custodian list is checked here with the ledger's own check (the same one every kernel
 * applies), so a list this command proposes is one the ledger accepts.
 */
import type { Argv } from 'yargs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { drill as drillLimits } from '../../proto/limits.js';
import { drillInChild, drillReportDigest, formatDrillReport, type DrillInput } from '../guardian/drill.js';
import { isSuiteName } from '../../kernel/suites.js';
import { CustodyError } from '../../proto/errors.js';
import { shareBackup as limits } from '../../proto/limits.js';
import { validateBackupRecipients, type BackupRecipient } from '../../ledger/backup-policy.js';
import type { BackupListReply } from '../admin/backups.js';
import { connOptions, formatDecision, out, run, type Cmd, type Conn } from './admin.js';

/** `LABEL=age1...` pairs, in the order given. */
export function parseCustodians(specs: readonly string[]): BackupRecipient[] {
  const list = specs.map((s) => {
    const at = s.lastIndexOf('=');
    if (at <= 0 || at === s.length - 1) throw new CustodyError('INVALID_ARGUMENT', `--custodian ${JSON.stringify(s)}: expected LABEL=age1...`);
    return { label: s.slice(0, at), recipient: s.slice(at + 1) };
  });
  const bad = validateBackupRecipients(list);
  if (bad !== null) throw new CustodyError('BACKUP_POLICY_INVALID', bad);
  return list;
}

export function formatBackupList(r: BackupListReply): string {
  const lines: string[] = [];
  if (!r.policyInForce) lines.push('no BackupPolicy in force: no kernel backs up its share (propose one with `custody admin backup policy`)');
  else lines.push(`backup policy since ledger index ${r.policySinceIndex}, recipients ${r.recipientsDigest.slice(0, 16)}: ${r.custodians.map((x) => `${x.label} (${x.recipient})`).join(', ')}`);
  if (!r.entries.some((e) => e.retired !== true)) lines.push('no active key epoch');
  for (const e of r.entries) {
    const where = `key ${e.keyId} epoch ${e.keyEpoch} ${e.nodeId}`;
    if (e.retired) {
      // Older servers leave the fields out: absent means kept.
      if ((e.destroyedIndex ?? 0) > 0) lines.push(`  ${where}: retired key, backup ${e.fileCid} DESTROYED by BackupsDestroyed ${e.destroyDecisionCid} (index ${e.destroyedIndex})`);
      else lines.push(`  ${where}: retired key, backup kept, cid ${e.fileCid}, at ${new Date(e.stampMs).toISOString()} (index ${e.index}); destroyed only by a BackupsDestroyed decision`);
      continue;
    }
    if (e.enrolled === true) {
      lines.push(`  ${where}: enrolled by repair as identifier ${e.identifier}, no backup of its own (a reshare naming it makes it a participant with backups)`);
      if ((e.repairedIndex ?? 0) > 0) lines.push(`    holds its share since ${new Date(e.repairedStampMs).toISOString()} (index ${e.repairedIndex}) under RepairAuthorized ${e.repairDecisionCid}; it signs with the other holders`);
      else lines.push(`    enrolment authorized (RepairAuthorized ${e.repairDecisionCid}), not yet reported`);
      continue;
    }
    if (e.backedUp) lines.push(`  ${where}: backed up, cid ${e.fileCid}, at ${new Date(e.stampMs).toISOString()} (index ${e.index})`);
    else if (e.earlierPolicy) lines.push(`  ${where}: MISSING under this policy (last backup ${e.fileCid} at ${new Date(e.stampMs).toISOString()} was to earlier custodians)`);
    else lines.push(`  ${where}: MISSING`);
    if (e.recoveredIndex > 0) lines.push(`    recovered from its backup at ${new Date(e.recoveredStampMs).toISOString()} (index ${e.recoveredIndex}) under RecoveryAuthorized ${e.recoveryDecisionCid}`);
    else if (e.recoveryDecisionCid !== '') lines.push(`    recovery authorized (RecoveryAuthorized ${e.recoveryDecisionCid}), import not yet reported`);
    if ((e.repairedIndex ?? 0) > 0) lines.push(`    repaired by its peers at ${new Date(e.repairedStampMs).toISOString()} (index ${e.repairedIndex}) under RepairAuthorized ${e.repairDecisionCid}`);
    else if ((e.repairDecisionCid ?? '') !== '') lines.push(`    repair authorized (RepairAuthorized ${e.repairDecisionCid}), not yet reported`);
  }
  const live = r.entries.filter((e) => e.retired !== true && e.enrolled !== true);
  lines.push(`${live.length - r.missing} of ${live.length} shares backed up${r.missing > 0 ? `, ${r.missing} missing` : ''}`);
  const kept = r.entries.filter((e) => e.retired === true).length;
  if (kept > 0) lines.push(`${kept} backups of retired keys listed (${r.entries.filter((e) => e.retired === true && (e.destroyedIndex ?? 0) > 0).length} destroyed by decision)`);
  const epochs = [...new Map(live.map((e) => [`${e.keyId}\u0000${e.keyEpoch}`, e])).values()];
  for (const e of epochs) {
    const d = (r.drills ?? []).find((x) => x.keyId === e.keyId && x.keyEpoch === e.keyEpoch);
    if (d === undefined) lines.push(`key ${e.keyId} epoch ${e.keyEpoch}: never drilled`);
    else lines.push(`key ${e.keyId} epoch ${e.keyEpoch}: last drill ${d.passed ? 'PASSED' : 'FAILED'} at ${new Date(d.drilledAtMs).toISOString()} through ${d.nodeId} (index ${d.index}), ${d.backupCids.length} backups opened, report ${d.reportDigest.slice(0, 16)}`);
  }
  return lines.join('\n');
}

const list: Cmd<Conn> = {
  command: 'list',
  describe: 'for every participant of every active key epoch: its share backup under the policy in force (file cid, node, time) or MISSING',
  builder: (y) => connOptions(y)
    .example('$0 admin backup list --node 127.0.0.1:7201 --node-id n1 --certs certs --as audit', 'what is backed up, what is missing') as Argv<Conn>,
  handler: run(async (c, a) => {
    const r = await c.listBackups();
    out(a.json ? JSON.stringify(r, null, 2) : formatBackupList(r));
  }),
};

const policy: Cmd<Conn & { custodian: string[]; 'ttl-ms': number }> = {
  command: 'policy',
  describe: 'propose a BackupPolicy decision naming the custodians (age X25519 recipients) every kernel encrypts its share backups to; approvers sign it with `admin decision approve`',
  builder: (y) => connOptions(y)
    .option('custodian', { type: 'string', array: true, demandOption: true, describe: `LABEL=age1... (an age X25519 recipient, as \`age-keygen -y\` prints it), once per custodian, 1 to ${limits.recipientsMax}; the order is kept` })
    .option('ttl-ms', { type: 'number', default: 0, describe: 'how long the decision stays valid (0 = 24 h)' })
    .example('$0 admin backup policy --custodian cara=age1... --custodian dana=age1... --node 127.0.0.1:7201 --node-id n1 --certs certs --as alice', 'propose two custodians') as Argv<Conn & { custodian: string[]; 'ttl-ms': number }>,
  handler: run(async (c, a) => {
    const recipients = parseCustodians(a.custodian);
    const d = await c.proposeDecision(JSON.stringify({ kind: 'BackupPolicy', recipients }), a['ttl-ms']);
    out(a.json ? JSON.stringify({ ...d, bodyCbor: d.bodyCbor.toString('hex') }, null, 2) : formatDecision(d));
  }),
};

/** Regular files named, or inside the folders named (sorted, not recursive), at most `max`. */
export async function expandFiles(paths: readonly string[], what: string, max: number): Promise<string[]> {
  const files: string[] = [];
  for (const p of paths) {
    const st = await stat(p).catch((e: Error) => { throw new CustodyError('INVALID_ARGUMENT', `${what} ${p}: ${e.message}`); });
    if (st.isDirectory()) {
      for (const n of (await readdir(p)).sort()) {
        const f = join(p, n);
        if ((await stat(f)).isFile()) files.push(f);
      }
    } else if (st.isFile()) files.push(p);
    else throw new CustodyError('INVALID_ARGUMENT', `${what} ${p} is neither a file nor a folder`);
    if (files.length > max) throw new CustodyError('LIMIT_EXCEEDED', `more than ${max} ${what}s`);
  }
  return files;
}

/** The drill's input from the ledger's list of backups: the participants of one key epoch. */
export function drillInputOf(r: BackupListReply, keyId: string, epoch: number | undefined, guardianFiles: string[], backupFiles: string[]): DrillInput {
  // The participants' backups; a holder enrolled by repair has none (formatBackupList).
  const rows = r.entries.filter((e) => e.keyId === keyId && e.retired !== true && e.enrolled !== true);
  if (rows.length === 0) throw new CustodyError('KEY_NOT_ACTIVE', `key ${keyId} has no active epoch the ledger lists`);
  const first = rows[0]!;
  if (epoch !== undefined && epoch !== first.keyEpoch) {
    throw new CustodyError('INVALID_ARGUMENT', `key ${keyId} epoch ${epoch} is not its active epoch ${first.keyEpoch}: only the active epoch's shares are held and drilled`);
  }
  if (!isSuiteName(first.scheme) || first.groupKey === '') throw new CustodyError('KEY_NOT_ACTIVE', `key ${keyId} epoch ${first.keyEpoch} has no group key yet`);
  return {
    keyId, epoch: first.keyEpoch, scheme: first.scheme, threshold: first.threshold, groupKey: first.groupKey,
    participants: rows.map((e) => ({ nodeId: e.nodeId, identifier: e.identifier, cid: e.fileCid })),
    guardianFiles, backupFiles,
  };
}

type DrillArgs = Conn & { 'key-id': string; epoch?: number; 'guardian-shares': string[]; backups: string[]; record: boolean };

const drill: Cmd<DrillArgs> = {
  command: 'drill',
  describe: 'prove that the share backups of a key epoch restore, without importing anything: in a throwaway process, rebuild the custodian\'s identity from guardian files (refusing too few, corrupt, duplicate or foreign files by name), decrypt each participant\'s backup (the file whose sha256 is the cid the ledger records), check each share against its verifying share and the ledger\'s key epoch, check that any t of the recovered shares reconstruct the group key, report per participant (ok, MISSING, MISMATCH with a reason code) and erase the material. Exits 0 when the drill passes, 4 when it fails, 3 on a refusal',
  builder: (y) => connOptions(y)
    .option('key-id', { type: 'string', demandOption: true, describe: 'the threshold key to drill' })
    .option('epoch', { type: 'number', describe: 'its key epoch (default and only choice: the active epoch, whose shares the kernels hold)' })
    .option('guardian-shares', { type: 'string', array: true, demandOption: true, describe: 'guardian files of the custodian\'s split, or folders holding them: at least its threshold' })
    .option('backups', { type: 'string', array: true, demandOption: true, describe: `folders (the files directly inside each) or files holding the backup files (copies of the nodes' backup folders), at most ${drillLimits.backupFilesMax} files` })
    .option('record', { type: 'boolean', default: true, describe: 'record the drill in the ledger (a BackupDrilled by the node called: the backups opened, passed or failed, the report\'s digest; needs the backup role, e.g. an auditor); --no-record only reports' })
    .example('$0 admin backup drill --key-id k1 --guardian-shares g/ --backups copies/ --node 127.0.0.1:7201 --node-id n1 --certs certs --as audit', 'drill key k1\'s active epoch') as Argv<DrillArgs>,
  handler: run(async (c, a) => {
    const guardianFiles = await expandFiles(a['guardian-shares'], 'guardian file', drillLimits.backupFilesMax);
    const backupFiles = await expandFiles(a.backups, 'backup file', drillLimits.backupFilesMax);
    const input = drillInputOf(await c.listBackups(), a['key-id'], a.epoch, guardianFiles, backupFiles);
    const report = await drillInChild(input, (line) => void process.stderr.write(`drill: ${line}\n`));
    const digest = drillReportDigest(report);
    const opened = report.entries.filter((e) => e.status !== 'missing' && e.cid !== '').map((e) => e.cid);
    if (!a.json) out(formatDrillReport(report));
    if (!report.ok) process.exitCode = 4;
    let recorded: { index: number } | null = null;
    try {
      // The report is printed whether or not the ledger takes the record (a refusal exits 3).
      if (a.record) recorded = await c.recordDrill({ keyId: report.keyId, keyEpoch: report.epoch, backupCids: opened, passed: report.ok, reportDigest: digest });
    } finally {
      if (a.json) out(JSON.stringify({ report, reportDigest: digest, recordedAt: recorded?.index ?? null }, null, 2));
      else if (recorded !== null) out(`recorded in the ledger at index ${recorded.index} (BackupDrilled, report digest ${digest})`);
      else if (!a.record) out('not recorded (--no-record)');
    }
  }),
};

const destroy: Cmd<Conn & { 'key-id': string; epoch: number[]; 'ttl-ms': number }> = {
  command: 'destroy',
  describe: 'propose a BackupsDestroyed decision: the share backups of a retired key\'s epochs are to be destroyed (KeyRetired keeps them). Once approvers sign it (`admin decision approve`), every node deletes the backup files of those epochs it wrote and `backup list` shows them destroyed. The ledger refuses it for a key that is not retired (KEY_NOT_RETIRED) or an epoch without a recorded backup or already destroyed (BACKUPS_NOT_FOUND). Copies held elsewhere (off the hosts, with custodians) are the custodians\' to destroy',
  builder: (y) => connOptions(y)
    .option('key-id', { type: 'string', demandOption: true, describe: 'the retired key' })
    .option('epoch', { type: 'number', array: true, demandOption: true, describe: `its key epochs whose backups to destroy (1 to ${limits.destroyEpochsMax})` })
    .option('ttl-ms', { type: 'number', default: 0, describe: 'how long the decision stays valid (0 = 24 h)' })
    .example('$0 admin backup destroy --key-id k1 --epoch 0 --epoch 1 --node 127.0.0.1:7201 --node-id n1 --certs certs --as alice', 'destroy the backups of retired key k1, epochs 0 and 1') as Argv<Conn & { 'key-id': string; epoch: number[]; 'ttl-ms': number }>,
  handler: run(async (c, a) => {
    const epochs = a.epoch.map((e) => {
      if (!Number.isSafeInteger(e) || e < 0) throw new CustodyError('INVALID_ARGUMENT', `--epoch ${e}: expected a key epoch number`);
      return e;
    });
    const d = await c.proposeDecision(JSON.stringify({ kind: 'BackupsDestroyed', keyId: a['key-id'], epochs }), a['ttl-ms']);
    out(a.json ? JSON.stringify({ ...d, bodyCbor: d.bodyCbor.toString('hex') }, null, 2) : formatDecision(d));
  }),
};

export const adminBackupCommand: Cmd<object> = {
  command: 'backup <command>',
  describe: 'backups of the kernels\' key shares: propose the custodians (policy), list what is backed up and what is missing (list), prove the backups restore (drill), end a retired key\'s backups (destroy)',
  builder: (y) => y.command(policy).command(list).command(drill).command(destroy).demandCommand(1, 'name a backup command: policy, list, drill, destroy') as Argv<object>,
  handler: () => undefined,
};
