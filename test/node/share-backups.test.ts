/**
 * The daemon's share backup writer (node/lifecycle/backups.ts) over the real ledger state machine
 * (ScriptedCluster) and a scripted kernel: what it owes, a file written once and recorded, a file
 * already there reused without asking the kernel, and every answer it must not write or record
 * (another identifier, another recipient list, metadata of another key) refused with nothing
 * written and nothing proposed; an existing file is never replaced.
 */
import t, { type Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScriptedCluster, backupRecipientsDigest, backupRecordKey, backupsOf, bytesEqual, toHex, type BackupRecipient, type LedgerEvent } from '../../ledger/index.js';
import { encryptShareBackup } from '../../kernel/backup.js';
import { suiteOf } from '../../kernel/suites.js';
import { CustodyError } from '../../proto/errors.js';
import type { RequestBody, ResponseBody } from '../../kernel/wire.js';
import { verdictOf, type LedgerVerdict } from '../../node/ledger-app.js';
import { ShareBackups, backupFileName, backupsOwed, type BackupTarget } from '../../node/lifecycle/backups.js';
import type { KernelPort, LedgerPort } from '../../node/lifecycle/ports.js';
import { until } from '../../node/probe.js';
import { custodians } from '../ledger/backup-fixtures.js';

const suite = suiteOf('ed25519');

/** A scalar share and its verifying share (what a kernel holds for one identifier). */
function shareOf(): { share: Uint8Array; verifyingShare: Uint8Array } {
  const s = BigInt(`0x${randomBytes(24).toString('hex')}`) + 1n;
  return { share: suite.Fn.toBytes(s), verifyingShare: suite.base.multiply(s).toBytes() };
}

interface Rig {
  s: ScriptedCluster;
  dir: string;
  recipients: BackupRecipient[];
  calls: RequestBody[];
  proposed: LedgerEvent[];
  /** What the scripted kernel answers for a target (default: a correct backup). */
  answer: (t: BackupTarget, body: Extract<RequestBody, { kind: 'shareBackup' }>) => Promise<ResponseBody>;
  writer: ShareBackups;
  logs: string[];
}

async function rig(t: Test): Promise<Rig> {
  const s = new ScriptedCluster({ label: 'backup-writer' });
  s.genesis();
  for (const r of s.createKey('k1')) if (!r.ok) throw new Error(`setup: ${r.reason}`);
  const recipients = (await custodians('alice', 'bob')).map((c) => ({ label: c.label, recipient: c.recipient }));
  const dir = mkdtempSync(join(tmpdir(), 'share-backup-writer-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const r: Rig = {
    s, dir, recipients, calls: [], proposed: [], logs: [],
    answer: async (target, body) => {
      const { share, verifyingShare } = shareOf();
      const file = await encryptShareBackup(share, { keyId: body.keyId, epoch: body.epoch, identifier: target.identifier, verifyingShare, groupKey: target.groupKey, scheme: target.scheme }, body.recipients);
      return { kind: 'shareBackup', keyId: body.keyId, epoch: body.epoch, identifier: target.identifier, file, recipientsDigest: target.recipientsDigest };
    },
    writer: null as unknown as ShareBackups,
  };
  const ledger: LedgerPort = {
    nodeId: 'node-0',
    state: () => s.state,
    subscribe: () => () => undefined,
    async propose(e: LedgerEvent): Promise<LedgerVerdict> {
      r.proposed.push(e);
      return verdictOf(s.entry(e).result);
    },
    isLeader: () => true,
    decisionsAfter: () => [],
    raftStatus: () => ({ term: 1, leader: 'node-0', commit: s.state.index, applied: s.state.index, root: '' }),
  };
  const kernel: KernelPort = {
    async call<K extends ResponseBody['kind']>(body: RequestBody, expect: K): Promise<Extract<ResponseBody, { kind: K }>> {
      r.calls.push(body);
      if (body.kind !== 'shareBackup') throw new CustodyError('PAYLOAD_REJECTED', `unexpected ${body.kind}`);
      const target = backupsOwed(s.state.cluster!, 'node-0').find((x) => x.keyId === body.keyId)!;
      const res = await r.answer(target, body);
      if (res.kind === 'error') throw new CustodyError(res.reason, res.detail);
      if (res.kind !== expect) throw new CustodyError('PAYLOAD_REJECTED', `expected ${expect}`);
      return res as Extract<ResponseBody, { kind: K }>;
    },
  };
  let now = 1_000_000;
  r.writer = new ShareBackups({ nodeId: 'node-0', ledger, kernel, dir: join(dir, 'backups'), log: (l) => r.logs.push(l), now: () => (now += 60_000) });
  t.teardown(() => {
    r.writer.stop();
    if (!t.passing()) t.comment(r.logs.join('\n'));
  });
  return r;
}

const recorded = (r: Rig) => backupsOf(r.s.state.cluster!)[backupRecordKey('k1', 0, 'node-0')];

t.test('nothing is owed without a policy; with one, each active epoch the node holds', async (t) => {
  const r = await rig(t);
  t.same(backupsOwed(r.s.state.cluster!, 'node-0'), [], 'no policy, nothing owed');
  r.s.decide({ kind: 'BackupPolicy', recipients: r.recipients });
  const owed = backupsOwed(r.s.state.cluster!, 'node-0');
  t.same(owed.map((o) => [o.keyId, o.keyEpoch, o.recipients]), [['k1', 0, r.recipients.map((x) => x.recipient)]]);
  t.ok(bytesEqual(owed[0]!.recipientsDigest, backupRecipientsDigest(r.recipients)));
});

t.test('a backup is asked for once, written 0600 once, and recorded; then nothing more is owed', async (t) => {
  const r = await rig(t);
  r.s.decide({ kind: 'BackupPolicy', recipients: r.recipients });
  r.writer.start();
  await until('recorded', () => recorded(r) !== undefined, 30_000);
  const target = { keyId: 'k1', keyEpoch: 0, recipientsDigest: backupRecipientsDigest(r.recipients) };
  const path = join(r.dir, 'backups', backupFileName(target, 'node-0'));
  const bytes = readFileSync(path);
  t.equal(statSync(path).mode & 0o777, 0o600);
  t.ok(bytesEqual(recorded(r)!.fileCid, createHash('sha256').update(bytes).digest()), 'the recorded cid is the file\'s');
  t.equal(r.calls.length, 1, 'the kernel was asked once');
  t.same(backupsOwed(r.s.state.cluster!, 'node-0'), []);
  t.same(readdirSync(join(r.dir, 'backups')), [backupFileName(target, 'node-0')], 'one file, no temporary left');
});

t.test('a file already there (written before a crash) is recorded as it is, the kernel is not asked', async (t) => {
  const r = await rig(t);
  r.s.decide({ kind: 'BackupPolicy', recipients: r.recipients });
  const target = backupsOwed(r.s.state.cluster!, 'node-0')[0]!;
  const earlier = await r.answer(target, { kind: 'shareBackup', keyId: 'k1', epoch: 0, recipients: [...target.recipients] });
  const file = (earlier as Extract<ResponseBody, { kind: 'shareBackup' }>).file;
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(r.dir, 'backups'), { recursive: true });
  writeFileSync(join(r.dir, 'backups', backupFileName(target, 'node-0')), file, { mode: 0o600 });
  r.writer.start();
  await until('recorded', () => recorded(r) !== undefined, 30_000);
  t.equal(r.calls.length, 0, 'no kernel call');
  t.equal(toHex(recorded(r)!.fileCid), toHex(createHash('sha256').update(file).digest()));
});

t.test('kernel answers that must not be written or recorded: another identifier, other recipients, another key', async (t) => {
  for (const [what, bend] of [
    ['another identifier', (res: Extract<ResponseBody, { kind: 'shareBackup' }>) => ({ ...res, identifier: res.identifier.replace(/^01/, '02') })],
    ['other recipients', (res: Extract<ResponseBody, { kind: 'shareBackup' }>) => ({ ...res, recipientsDigest: new Uint8Array(32).fill(1) })],
  ] as const) {
    t.test(what, async (t) => {
      const r = await rig(t);
      r.s.decide({ kind: 'BackupPolicy', recipients: r.recipients });
      const honest = r.answer;
      r.answer = async (target, body) => bend(await honest(target, body) as Extract<ResponseBody, { kind: 'shareBackup' }>);
      r.writer.start();
      await until('tried', () => r.logs.some((l) => l.includes('failed')), 30_000);
      t.same(r.proposed, [], 'nothing proposed');
      t.equal(recorded(r), undefined, 'nothing recorded');
      t.same(readdirSync(join(r.dir, 'backups')), [], 'nothing written');
    });
  }
  t.test('a file whose metadata names another key (the group key of another)', async (t) => {
    const r = await rig(t);
    r.s.decide({ kind: 'BackupPolicy', recipients: r.recipients });
    r.answer = async (target, body) => {
      const { share, verifyingShare } = shareOf();
      const other = suite.base.multiply(7n).toBytes();
      const file = await encryptShareBackup(share, { keyId: body.keyId, epoch: body.epoch, identifier: target.identifier, verifyingShare, groupKey: other, scheme: 'ed25519' }, body.recipients);
      return { kind: 'shareBackup', keyId: body.keyId, epoch: body.epoch, identifier: target.identifier, file, recipientsDigest: target.recipientsDigest };
    };
    r.writer.start();
    await until('tried', () => r.logs.some((l) => l.includes('failed')), 30_000);
    t.same(r.proposed, []);
    t.same(readdirSync(join(r.dir, 'backups')), []);
  });
});

t.test('an existing file of another key under the same name is never replaced nor recorded', async (t) => {
  const r = await rig(t);
  r.s.decide({ kind: 'BackupPolicy', recipients: r.recipients });
  const target = backupsOwed(r.s.state.cluster!, 'node-0')[0]!;
  const { share, verifyingShare } = shareOf();
  const foreign = await encryptShareBackup(share, { keyId: 'k2', epoch: 0, identifier: target.identifier, verifyingShare, groupKey: target.groupKey, scheme: 'ed25519' }, target.recipients);
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(r.dir, 'backups'), { recursive: true });
  const path = join(r.dir, 'backups', backupFileName(target, 'node-0'));
  writeFileSync(path, foreign, { mode: 0o600 });
  r.writer.start();
  await until('tried', () => r.logs.some((l) => l.includes('failed')), 30_000);
  t.same(r.proposed, [], 'nothing proposed');
  t.equal(r.calls.length, 0, 'the kernel was not asked for a file that could not be written');
  t.same(new Uint8Array(readFileSync(path)), foreign, 'the file is untouched');
});
