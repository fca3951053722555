/**
 * `custody admin backup ...`: backups of the kernels' key shares (ledger/backup-policy.ts).
 *
 *   policy --custodian LABEL=age1...   a BackupPolicy decision for the approvers to sign (through
 *                                      the approval book, `admin decision approve`): the custodians
 *                                      every kernel encrypts its share backups to
 *   list                               for every participant of every active key epoch: its backup
 *                                      under the policy in force (file cid, node, time) or missing
 *
 * The custodian list is checked here with the ledger's own check (the same one every kernel
 * applies), so a list this command proposes is one the ledger accepts.
 */
import type { Argv } from 'yargs';
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
  if (r.entries.length === 0) lines.push('no active key epoch');
  for (const e of r.entries) {
    const where = `key ${e.keyId} epoch ${e.keyEpoch} ${e.nodeId}`;
    if (e.backedUp) lines.push(`  ${where}: backed up, cid ${e.fileCid}, at ${new Date(e.stampMs).toISOString()} (index ${e.index})`);
    else if (e.earlierPolicy) lines.push(`  ${where}: MISSING under this policy (last backup ${e.fileCid} at ${new Date(e.stampMs).toISOString()} was to earlier custodians)`);
    else lines.push(`  ${where}: MISSING`);
    if (e.recoveredIndex > 0) lines.push(`    recovered from its backup at ${new Date(e.recoveredStampMs).toISOString()} (index ${e.recoveredIndex}) under RecoveryAuthorized ${e.recoveryDecisionCid}`);
    else if (e.recoveryDecisionCid !== '') lines.push(`    recovery authorized (RecoveryAuthorized ${e.recoveryDecisionCid}), import not yet reported`);
  }
  lines.push(`${r.entries.length - r.missing} of ${r.entries.length} shares backed up${r.missing > 0 ? `, ${r.missing} missing` : ''}`);
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

export const adminBackupCommand: Cmd<object> = {
  command: 'backup <command>',
  describe: 'backups of the kernels\' key shares: propose the custodians (policy), list what is backed up and what is missing (list)',
  builder: (y) => y.command(policy).command(list).demandCommand(1, 'name a backup command: policy, list') as Argv<object>,
  handler: () => undefined,
};
