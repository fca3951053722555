/**
 * `custody guardian recover-share` as a process, on the custodian's offline machine: a backup of a
 * real FROST share (kernel/backup.ts) is opened with the custodian's identity rebuilt from 3 of 5
 * guardian files, and the share leaves only sealed to the target kernel's transport key, under
 * the key, epoch, identifier and backup cid (kernel/recovery.ts). Refusals, each with its reason
 * code and nothing written: another backup than the cid, an identity that does not open it, an
 * altered backup, a share that does not match its verifying share, an existing output file.
 */
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Encrypter } from 'age-encryption';
import { encryptShareBackup, readShareBackupMeta, BACKUP_FORMAT, type ShareBackupMeta } from '../../kernel/backup.js';
import { backupCid, decodeSealedShare, recoveryContext } from '../../kernel/recovery.js';
import { generateTransportKey, openFrom } from '../../kernel/transport.js';
import { suiteOf } from '../../kernel/suites.js';
import { bytesEqual, encode } from '../../ledger/encoding.js';
import { dealer, reasonOf } from '../kernel/harness.js';
import { runCli } from './harness.js';

t.test('recover-share: guardian files rebuild the identity, the backup is opened and sealed to the kernel only', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-recover-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cli = (...args: string[]) => runCli(['guardian', ...args], dir);
  const f = (name: string): string => join(dir, name);

  const made = await cli('identity', '--out', 'id.txt');
  t.equal(made.code, 0, made.out);
  const recipient = /^(age1[0-9a-z]{58})$/m.exec(made.out)?.[1] ?? '';
  t.equal((await cli('split', '--identity-file', 'id.txt', '--shares', '5', '--threshold', '3', '--out', 'g', '--label', 'cust')).code, 0);
  rmSync(f('id.txt'));
  const files = readdirSync(f('g')).sort().map((n) => join('g', n));
  const combined = await cli('combine', '--out', 'rebuilt.txt', files[0]!, files[2]!, files[4]!);
  t.equal(combined.code, 0, combined.out);

  const suite = suiteOf('secp256k1');
  const { pub, shares } = dealer(suite, 2, 3);
  const [id1, id2] = Object.keys(shares) as [string, string];
  const meta: ShareBackupMeta = { keyId: 'k-treasury', epoch: 2, identifier: id1, verifyingShare: pub.verifyingShares[id1]!, groupKey: pub.commitments[0]!, scheme: 'secp256k1' };
  const backup = await encryptShareBackup(shares[id1]!, meta, [recipient]);
  writeFileSync(f('backup.bin'), backup);
  const cid = Buffer.from(backupCid(backup)).toString('hex');
  const kernel = await generateTransportKey();
  const stranger = await generateTransportKey();
  const toKernel = Buffer.from(kernel.publicKey).toString('hex');
  const recover = (over: Record<string, string> = {}) => {
    const o = { '--identity-file': 'rebuilt.txt', '--backup': 'backup.bin', '--cid': cid, '--to-kernel': toKernel, '--out': 'sealed.bin', ...over };
    return cli('recover-share', ...Object.entries(o).flat());
  };

  const r = await recover();
  t.equal(r.code, 0, r.out);
  const printed = JSON.parse(r.out.split('\n').find((l) => l.startsWith('{')) ?? '{}') as Record<string, unknown>;
  t.match(printed, { keyId: 'k-treasury', epoch: 2, identifier: id1, backupCid: cid, verifyingShare: Buffer.from(meta.verifyingShare).toString('hex'), groupKey: Buffer.from(meta.groupKey).toString('hex') }, 'prints what the decision must name');
  const sealedFile = readFileSync(f('sealed.bin'));
  t.notOk(sealedFile.includes(Buffer.from(shares[id1]!)), 'the share\'s bytes do not appear in the sealed file');
  const parsed = decodeSealedShare(sealedFile);
  t.same({ keyId: parsed.keyId, epoch: parsed.epoch, identifier: parsed.identifier }, { keyId: 'k-treasury', epoch: 2, identifier: id1 });
  const ctx = recoveryContext('k-treasury', 2, id1, backupCid(backup));
  t.ok(bytesEqual(await openFrom(kernel.privateKey, ctx, parsed.sealed), shares[id1]!), 'the target kernel opens the share');
  t.equal(await reasonOf(openFrom(stranger.privateKey, ctx, parsed.sealed)), 'PAYLOAD_REJECTED', 'another kernel cannot');
  t.equal(await reasonOf(openFrom(kernel.privateKey, recoveryContext('k-treasury', 3, id1, backupCid(backup)), parsed.sealed)), 'PAYLOAD_REJECTED', 'nor under another epoch');

  const again = await recover();
  t.equal(again.code, 3);
  t.match(again.out, /OUTPUT_EXISTS/, 'never over an existing file');

  const wrongCid = await recover({ '--cid': 'ab'.repeat(32), '--out': 'x1.bin' });
  t.equal(wrongCid.code, 3);
  t.match(wrongCid.out, /RECOVERY_BACKUP_MISMATCH/, 'a backup that is not the recorded cid');

  const other = await cli('identity', '--out', 'other.txt');
  t.equal(other.code, 0);
  const wrongId = await recover({ '--identity-file': 'other.txt', '--out': 'x2.bin' });
  t.equal(wrongId.code, 3);
  t.match(wrongId.out, /BACKUP_INVALID/, 'an identity that is not a recipient of the backup');

  const altered = Uint8Array.from(backup);
  altered[altered.length - 5]! ^= 1;
  writeFileSync(f('altered.bin'), altered);
  const alt = await recover({ '--backup': 'altered.bin', '--cid': Buffer.from(backupCid(altered)).toString('hex'), '--out': 'x3.bin' });
  t.equal(alt.code, 3);
  t.match(alt.out, /BACKUP_INVALID/, 'an altered backup');

  // Anyone who knows the custodian's recipient can write a backup: another participant's share
  // under this participant's metadata decrypts, and is refused by share*G.
  const e = new Encrypter();
  e.addRecipient(recipient);
  const metaValue = { keyId: meta.keyId, epoch: meta.epoch, identifier: meta.identifier, verifyingShare: meta.verifyingShare, groupKey: meta.groupKey, scheme: meta.scheme };
  const forged = encode({ format: BACKUP_FORMAT, meta: metaValue, age: await e.encrypt(encode({ meta: metaValue, share: shares[id2]! })) });
  t.same(readShareBackupMeta(forged), meta);
  writeFileSync(f('forged.bin'), forged);
  const fr = await recover({ '--backup': 'forged.bin', '--cid': Buffer.from(backupCid(forged)).toString('hex'), '--out': 'x4.bin' });
  t.equal(fr.code, 3);
  t.match(fr.out, /SHARE_MISMATCH/, 'a share that is not the verifying share\'s');

  const badKey = await recover({ '--to-kernel': 'zz', '--out': 'x5.bin' });
  t.equal(badKey.code, 3);
  t.match(badKey.out, /INVALID_ARGUMENT/);
  for (const x of ['x1.bin', 'x2.bin', 'x3.bin', 'x4.bin', 'x5.bin']) t.notOk(existsSync(f(x)), `${x}: nothing written`);
  const help = await runCli(['guardian', 'recover-share', '--help'], dir);
  t.match(help.out, /--to-kernel/, '--help names the options');
});
