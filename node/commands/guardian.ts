/**
 * Offline tools for custodians and their guardians (README "Guardians: splitting and recovering a
 * custodian identity"); no cluster is contacted:
 *   custody guardian identity --out F                                  a new age X25519 identity
 *   custody guardian split --identity-file F --shares N --threshold K --out DIR [--label L]
 *   custody guardian combine --out F SHARE...                          rebuild and check the identity
 *   custody guardian verify SHARE...                                   check files without combining
 *   custody guardian recover-share --identity-file F --backup B --cid C --to-kernel K --out S
 *                                                                      a backup's share sealed to one kernel
 * File format and checks: node/guardian/shares.ts. A refusal prints `REASON: detail` and exits 3.
 */
import type { CommandModule } from 'yargs';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { guardian as limits, shareBackup as backupLimits } from '../../proto/limits.js';
import { readIdentityFile, readShareFiles, writeNewSecretFile, writeShareFiles } from '../guardian/files.js';
import { local } from './snapshot.js';
import { readFile, stat } from 'node:fs/promises';
import { CustodyError } from '../../proto/errors.js';
import { readShareBackupMeta } from '../../kernel/backup.js';
import { backupCid, encodeSealedShare, sealRecoveredShare } from '../../kernel/recovery.js';
import { checkShareSet, combineShares, renderIdentityFile, renderShare, splitIdentity } from '../guardian/shares.js';

const out = (s: string): void => void process.stdout.write(`${s}\n`);
const err = (s: string): void => void process.stderr.write(`${s}\n`);

const identity: CommandModule<object, { out: string }> = {
  command: 'identity',
  describe: 'generate a custodian\'s age X25519 identity into a new file (mode 0600, never over an existing file) and print its recipient (age1...), the public half the cluster encrypts share backups to',
  builder: (y) => y
    .option('out', { type: 'string', demandOption: true, describe: 'identity file to create (age-keygen format)' }) as never,
  handler: local(async (a) => {
    const id = await generateX25519Identity();
    const recipient = await identityToRecipient(id);
    await writeNewSecretFile(a.out, renderIdentityFile(id, recipient, Date.now()));
    err(`identity written to ${a.out} (mode 0600); split it among guardians with \`custody guardian split\``);
    out(recipient);
  }),
};

const split: CommandModule<object, { identityFile: string; shares: number; threshold: number; out: string; label: string }> = {
  command: 'split',
  describe: `split a custodian's identity among N guardians with Shamir's secret sharing: writes N files into DIR (mode 0600, never over existing files), any K of which rebuild the identity and fewer reveal nothing about it. Each file carries its label, its number (i of N), K, a set id shared by the files of this split, the identity's recipient, and a SHA-256 checksum. N is ${limits.sharesMin} to ${limits.sharesMax}, K is ${limits.thresholdMin} to N. Give each guardian one file, keep them apart, then destroy the identity file if policy says so`,
  builder: (y) => y
    .option('identity-file', { type: 'string', demandOption: true, describe: 'the identity to split (refused if its group or other users have access)' })
    .option('shares', { type: 'number', demandOption: true, describe: 'N: how many guardian files to write' })
    .option('threshold', { type: 'number', demandOption: true, describe: 'K: how many guardian files rebuild the identity' })
    .option('out', { type: 'string', demandOption: true, describe: 'folder for the guardian files (created 0700 if missing)' })
    .option('label', { type: 'string', default: 'custodian', describe: `name written on every file and in its file name (up to ${limits.labelCharsMax} characters of A-Z a-z 0-9 . _ -)` }) as never,
  handler: local(async (a) => {
    const { identity: id, recipient } = await readIdentityFile(a.identityFile);
    const shares = await splitIdentity(id, { shares: a.shares, threshold: a.threshold, label: a.label });
    const paths = await writeShareFiles(a.out, shares, (s) => renderShare(s));
    for (const p of paths) out(p);
    err(`${a.threshold} of these ${a.shares} files rebuild the identity of ${recipient} (set ${shares[0]!.set})`);
  }),
};

const combine: CommandModule<object, { out: string; shares: string[] }> = {
  command: 'combine <shares..>',
  describe: 'rebuild a custodian\'s identity from guardian files and write it to a new file (mode 0600, never over an existing file). Refused, naming the file, and nothing written: a corrupted file (GUARDIAN_SHARE_CORRUPT), a file of another split (GUARDIAN_SHARE_FOREIGN), the same share twice (GUARDIAN_DUPLICATE_SHARE), fewer files than the threshold (GUARDIAN_TOO_FEW_SHARES). The rebuilt identity must have the recipient the files record, or it is refused (GUARDIAN_COMBINE_MISMATCH)',
  builder: (y) => y
    .positional('shares', { type: 'string', array: true, demandOption: true, describe: 'guardian files, at least the threshold of one split' })
    .option('out', { type: 'string', demandOption: true, describe: 'identity file to create' }) as never,
  handler: local(async (a) => {
    const named = await readShareFiles(a.shares);
    const { identity: id, recipient } = await combineShares(named);
    await writeNewSecretFile(a.out, renderIdentityFile(id, recipient, Date.now()));
    err(`identity of ${recipient} rebuilt from ${named.length} guardian files and checked; written to ${a.out} (mode 0600)`);
    out(recipient);
  }),
};

const verify: CommandModule<object, { shares: string[]; requireThreshold: boolean }> = {
  command: 'verify <shares..>',
  describe: 'check guardian files without combining them: each file\'s form and checksum, that they belong to one split, that no share is given twice, and how many of the threshold they make. A guardian can check a single file; with --require-threshold fewer files than the threshold is a refusal',
  builder: (y) => y
    .positional('shares', { type: 'string', array: true, demandOption: true, describe: 'guardian files' })
    .option('require-threshold', { type: 'boolean', default: false, describe: 'refuse (GUARDIAN_TOO_FEW_SHARES) unless the files reach the threshold' }) as never,
  handler: local(async (a) => {
    const named = await readShareFiles(a.shares);
    const ref = checkShareSet(named, a.requireThreshold);
    for (const n of named) out(`${n.name}: intact, share ${n.share.index} of ${n.share.shares}`);
    const enough = named.length >= ref.threshold;
    out(`set ${ref.set} label ${ref.label} for ${ref.recipient}: ${named.length} distinct share${named.length === 1 ? '' : 's'} of the ${ref.threshold} needed${enough ? ', enough to rebuild' : ''}`);
  }),
};

const recoverShare: CommandModule<object, { identityFile: string; backup: string; cid: string; toKernel: string; out: string }> = {
  command: 'recover-share',
  describe: 'on the custodian\'s offline machine: decrypt a share backup with the custodian\'s identity (rebuilt with `guardian combine`) and seal the share to the transport key of the kernel that is to import it (`custody admin kernel status` on its node), so the share is never in the clear outside this process and that kernel. Refused, nothing written: a backup whose sha256 is not --cid (RECOVERY_BACKUP_MISMATCH), a backup this identity does not open or whose metadata was altered (BACKUP_INVALID), a share that does not match the backup\'s verifying share (SHARE_MISMATCH). Prints the backup\'s key, epoch, identifier, verifying share and group key: the RecoveryAuthorized decision must name exactly these. The kernel imports the file (`custody admin share import`) only under that decision',
  builder: (y) => y
    .option('identity-file', { type: 'string', demandOption: true, describe: 'the custodian\'s age identity (refused if its group or other users have access)' })
    .option('backup', { type: 'string', demandOption: true, describe: 'the share backup file (from the node\'s backup folder)' })
    .option('cid', { type: 'string', demandOption: true, describe: 'the backup cid the ledger records (`custody admin backup list`), 64 hex digits' })
    .option('to-kernel', { type: 'string', demandOption: true, describe: 'the target kernel\'s X25519 transport public key, 64 hex digits' })
    .option('out', { type: 'string', demandOption: true, describe: 'sealed share file to create (never over an existing file)' }) as never,
  handler: local(async (a) => {
    if (!/^[0-9a-f]{64}$/.test(a.cid)) throw new CustodyError('INVALID_ARGUMENT', '--cid must be 64 lowercase hex digits');
    if (!/^[0-9a-f]{64}$/.test(a.toKernel)) throw new CustodyError('INVALID_ARGUMENT', '--to-kernel must be 64 lowercase hex digits (an X25519 public key)');
    const { identity: id } = await readIdentityFile(a.identityFile);
    const size = (await stat(a.backup)).size;
    if (size > backupLimits.fileBytesMax) throw new CustodyError('BACKUP_INVALID', `${a.backup}: ${size} bytes, more than a backup's ${backupLimits.fileBytesMax}`);
    const file = new Uint8Array(await readFile(a.backup));
    if (Buffer.from(backupCid(file)).toString('hex') !== a.cid) throw new CustodyError('RECOVERY_BACKUP_MISMATCH', `${a.backup} is not backup ${a.cid} (its sha256 differs)`);
    const meta = readShareBackupMeta(file);
    const { sealed, backupCid: cid } = await sealRecoveredShare(file, id, meta, Buffer.from(a.toKernel, 'hex'));
    await writeNewSecretFile(a.out, encodeSealedShare({ keyId: meta.keyId, epoch: meta.epoch, identifier: meta.identifier, backupCid: cid, sealed }));
    out(JSON.stringify({
      keyId: meta.keyId, epoch: meta.epoch, identifier: meta.identifier, scheme: meta.scheme, backupCid: a.cid,
      verifyingShare: Buffer.from(meta.verifyingShare).toString('hex'), groupKey: Buffer.from(meta.groupKey).toString('hex'), sealedTo: a.toKernel, out: a.out,
    }));
    err(`share of ${meta.identifier} for ${meta.keyId} epoch ${meta.epoch} checked against its verifying share and sealed to kernel ${a.toKernel.slice(0, 16)}...; written to ${a.out}`);
  }),
};

export const guardianCommand: CommandModule<object, object> = {
  command: 'guardian <action>',
  describe: 'offline tools for custodians: generate an age identity, split it among guardians, check guardian files, rebuild the identity, seal a backed-up share to the kernel that recovers it',
  builder: (y) => y.command(identity).command(split).command(combine).command(verify).command(recoverShare).demandCommand(1) as never,
  handler: () => undefined,
};
