/**
 * Offline tools for custodians and their guardians (README "Guardians: splitting and recovering a
 * custodian identity"); no cluster is contacted:
 *   custody guardian identity --out F                                  a new age X25519 identity
 *   custody guardian split --identity-file F --shares N --threshold K --out DIR [--label L]
 *   custody guardian combine --out F SHARE...                          rebuild and check the identity
 *   custody guardian verify SHARE...                                   check files without combining
 * File format and checks: node/guardian/shares.ts. A refusal prints `REASON: detail` and exits 3.
 */
import type { CommandModule } from 'yargs';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { guardian as limits } from '../../proto/limits.js';
import { readIdentityFile, readShareFiles, writeNewSecretFile, writeShareFiles } from '../guardian/files.js';
import { local } from './snapshot.js';
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

export const guardianCommand: CommandModule<object, object> = {
  command: 'guardian <action>',
  describe: 'offline tools for custodians: generate an age identity, split it among guardians, check guardian files, rebuild the identity',
  builder: (y) => y.command(identity).command(split).command(combine).command(verify).demandCommand(1) as never,
  handler: () => undefined,
};
