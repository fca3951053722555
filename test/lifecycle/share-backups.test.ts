/**
 * Share backups across three `custody node` daemons, each with its own kernel process: a 2-of-3
 * key is active; approvers decide a BackupPolicy (proposed with `custody admin backup policy`);
 * every node writes one backup file of its share beside its data folder and records it; every
 * replica shows the three KeyBackedUp records and `custody admin backup list` shows all three
 * present. The files open with each custodian's identity, match the ledger's key (group key,
 * identifier, cid) and any two of the recovered shares interpolate to the group secret. Then the
 * key is retired: its backup files and records stay, listed as kept; a BackupsDestroyed decision
 * (refused KEY_NOT_RETIRED before the retirement) makes every node delete the files it wrote.
 *
 * No share in the clear outside its kernel: every byte each daemon exchanged with its kernel
 * passes through a recording relay on the kernel's socket, and once the shares are known (opened
 * from the backups with the custodians' identities) the test scans that traffic and every file
 * the nodes wrote outside the kernels' own folders (the ledger's LevelDB stores, the logs, the
 * backup files) for each share, as bytes in either order and as hex.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decisionBodyFromCbor, decisionSigningBytes, ed25519Sign } from '../../ledger/decision.js';
import { decode, fromHex, toHex } from '../../ledger/encoding.js';
import { decryptShareBackup, readShareBackupMeta } from '../../kernel/backup.js';
import { suiteOf } from '../../kernel/suites.js';
import type { AdminClient } from '../../node/admin/client.js';
import { issueOperatorCert } from '../../node/admin/roles.js';
import { DaemonCluster } from '../../node/lifecycle/daemon-cluster.js';
import { until } from '../../node/probe.js';
import { CLI, OPERATORS, POLICY, runCli } from './harness.js';
import { custodians } from '../ledger/backup-fixtures.js';

/** Every regular file under `root` whose path (and every folder on the way) passes `keep`, with its bytes. */
function filesUnder(root: string, keep: (path: string) => boolean): { path: string; bytes: Buffer }[] {
  const out: { path: string; bytes: Buffer }[] = [];
  for (const name of readdirSync(root)) {
    const path = join(root, name);
    if (!keep(path)) continue;
    const st = lstatSync(path);
    if (st.isDirectory()) out.push(...filesUnder(path, keep));
    else if (st.isFile()) out.push({ path, bytes: readFileSync(path) });
  }
  return out;
}

t.test('three daemons back up their shares to the decided custodians and the ledger lists all three', { timeout: 900_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-share-backups-'));
  const cluster = await DaemonCluster.create(dir, POLICY, 3, 3_000);
  const ids = cluster.nodes.map((n) => n.id);
  for (const [id, role] of Object.entries(OPERATORS)) issueOperatorCert(cluster.certs, id, role);
  const clients: AdminClient[] = [];
  const client = (as: string, id: string): AdminClient => {
    const c = cluster.client(id, as);
    clients.push(c);
    return c;
  };
  t.teardown(async () => {
    for (const c of clients) c.close();
    await cluster.stop();
    if (!t.passing()) for (const id of ids) t.comment(`--- ${id}.log (last lines)\n${readFileSync(join(dir, `${id}.log`), 'utf8').split('\n').slice(-40).join('\n')}`);
    rmSync(dir, { recursive: true, force: true });
  });
  // A recording relay on each kernel's socket: the daemon talks to the relay, the relay to the kernel.
  const traffic: Buffer[] = [];
  const relays: Server[] = [];
  for (const id of ids) {
    const kernelSocket = join(dir, `${id}-kernel`, 'run', 'kernel.sock');
    const relaySocket = join(dir, `${id}-relay.sock`);
    const yaml = join(dir, `${id}.lifecycle.yaml`);
    writeFileSync(yaml, readFileSync(yaml, 'utf8').replace(`kernel: { socket: ${kernelSocket} }`, `kernel: { socket: ${relaySocket} }`));
    const relay = createServer((daemon) => {
      const kernel = connect(kernelSocket);
      daemon.on('data', (b: Buffer) => traffic.push(Buffer.from(b)));
      kernel.on('data', (b: Buffer) => traffic.push(Buffer.from(b)));
      daemon.pipe(kernel);
      kernel.pipe(daemon);
      // Either side closing or failing (a kernel not yet listening) ends both; the daemon reconnects.
      const end = (): void => { daemon.destroy(); kernel.destroy(); };
      daemon.on('error', end).on('close', end);
      kernel.on('error', end).on('close', end);
    });
    await new Promise<void>((res) => relay.listen(relaySocket, res));
    relays.push(relay);
  }
  t.teardown(() => { for (const r of relays) r.close(); });
  await cluster.start('audra', CLI, 120_000);
  const cli = (as: string, id: string, args: string[]) => runCli(['admin', ...args, '--node', cluster.node(id).admin, '--node-id', id, '--certs', cluster.certs, '--as', as]);
  const approve = async (cid: string, who: string[]): Promise<void> => {
    for (const a of who) {
      const c = client(a, 'n1');
      const d = await c.getDecision(cid);
      await c.approveDecision(cid, a, ed25519Sign(decisionSigningBytes(decisionBodyFromCbor(decode(new Uint8Array(d.bodyCbor)))), cluster.approvers.find((x) => x.id === a)!.secretKey));
    }
  };
  const audra = (id: string) => client('audra', id);

  const d = await client('kim', 'n1').proposeDecision(JSON.stringify({ kind: 'DkgAuthorized', keyId: 'k', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ids }));
  await approve(d.cid, ['approver-1', 'approver-2']);
  await until('key object published', async () => (await audra('n1').status()).keys[0]?.epochs.includes('0:published'), 120_000);
  const a = await client('kim', 'n1').proposeDecision(JSON.stringify({ kind: 'KeyActivated', keyId: 'k', keyEpoch: 0 }));
  await approve(a.cid, ['approver-2', 'approver-3']);
  await until('key active', async () => (await audra('n1').status()).keys[0]?.status === 'active', 60_000);

  const none = await cli('audra', 'n1', ['backup', 'list']);
  t.equal(none.code, 0, none.stderr);
  t.match(none.stdout, /no BackupPolicy in force/, 'before a policy: none in force');
  t.match(none.stdout, /0 of 3 shares backed up, 3 missing/);

  const [cara, dana] = await custodians('cara', 'dana');
  const bad = await cli('approver-1', 'n1', ['backup', 'policy', '--custodian', `cara=${cara!.recipient.slice(0, -1)}x`]);
  t.equal(bad.code, 3, 'a recipient with a bad checksum is refused before anything is proposed');
  t.match(bad.stderr, /^BACKUP_POLICY_INVALID: /);
  const proposed = await cli('approver-1', 'n1', ['backup', 'policy', '--custodian', `cara=${cara!.recipient}`, '--custodian', `dana=${dana!.recipient}`, '--json']);
  t.equal(proposed.code, 0, proposed.stderr);
  const cid = (JSON.parse(proposed.stdout) as { cid: string }).cid;
  await approve(cid, ['approver-1', 'approver-2']);

  // Files appear on every node, beside its data folder; KeyBackedUp lands on every replica.
  const folder = (id: string) => join(dir, 'data', `${id}.share-backups`);
  const files = new Map<string, Uint8Array>();
  for (const id of ids) {
    await until(`${id} wrote its backup`, async () => {
      try {
        return readdirSync(folder(id)).filter((f) => f.endsWith('.backup')).length === 1;
      } catch {
        return false;
      }
    }, 120_000);
    const [name] = readdirSync(folder(id)).filter((f) => f.endsWith('.backup'));
    const path = join(folder(id), name!);
    t.equal(statSync(path).mode & 0o777, 0o600, `${id}: the backup file is 0600`);
    t.equal(statSync(folder(id)).mode & 0o777, 0o700, `${id}: its folder is 0700`);
    files.set(id, new Uint8Array(readFileSync(path)));
  }
  const lists = await until('every replica records the three backups', async () => {
    const ls = await Promise.all(ids.map((id) => audra(id).listBackups()));
    return ls.every((l) => l.missing === 0 && l.entries.length === 3) ? ls : null;
  }, 120_000);
  for (const l of lists) t.same(l, lists[0], 'every replica lists the same records');

  const status = await audra('n1').status();
  const groupKey = fromHex(status.keys[0]!.publicKey);
  const listed = lists[0]!;
  t.same(listed.custodians.map((x) => x.label), ['cara', 'dana']);
  const suite = suiteOf('ed25519');
  const shares = new Map<number, bigint>();
  for (const [i, id] of ids.entries()) {
    const file = files.get(id)!;
    const entry = listed.entries.find((e) => e.nodeId === id)!;
    t.equal(entry.fileCid, toHex(createHash('sha256').update(file).digest()), `${id}: the ledger names the cid of the file on disk`);
    const meta = readShareBackupMeta(file);
    t.equal(meta.identifier, entry.identifier, `${id}: the file is of its identifier`);
    t.same([meta.keyId, meta.epoch, toHex(meta.groupKey)], ['k', 0, toHex(groupKey)], `${id}: the file is of key k epoch 0 under the ledger's group key`);
    const byCara = await decryptShareBackup(file, cara!.identity, meta);
    const byDana = await decryptShareBackup(file, dana!.identity, meta);
    t.equal(toHex(byCara), toHex(byDana), `${id}: both custodians recover the share`);
    shares.set(i + 1, suite.Fn.fromBytes(byCara));
  }
  // No share in the clear outside the kernels (the header): the daemons' kernel traffic and every
  // file outside the kernels' folders. The group key, which the kernels answer in their key
  // packages and the ledger records, is found in both: the scan sees what it searches.
  const seen = Buffer.concat(traffic);
  const written = filesUnder(dir, (path) => !/-kernel$/.test(path) && !path.endsWith('.sock'));
  t.ok(seen.length > 10_000 && seen.includes(Buffer.from(groupKey)), `the relays recorded the daemons' kernel traffic (${seen.length} bytes, group key included)`);
  t.ok(written.length > 10 && written.some((f) => f.bytes.includes(Buffer.from(groupKey))), `${written.length} files the nodes wrote, the ledger's among them (group key included)`);
  for (const [x, share] of shares) {
    const le = Buffer.from(suite.Fn.toBytes(share));
    const forms = [le, Buffer.from(le).reverse(), Buffer.from(le.toString('hex')), Buffer.from(Buffer.from(le).reverse().toString('hex'))];
    t.notOk(forms.some((f) => seen.includes(f)), `share ${x}: not in the daemons' kernel traffic`);
    const hits = written.filter((file) => forms.some((f) => file.bytes.includes(f))).map((file) => file.path);
    t.same(hits, [], `share ${x}: in no file outside the kernels (${written.length} files scanned)`);
    // Inside its kernel's folder the share is stored sealed under the kernel's profile key.
    const sealedStore = filesUnder(join(dir, `${ids[x - 1]}-kernel`), (path) => !path.endsWith('.sock'));
    t.same(sealedStore.filter((file) => forms.some((f) => file.bytes.includes(f))).map((file) => file.path), [], `share ${x}: not in the clear in its kernel's store either (${sealedStore.length} files)`);
  }

  // Any two shares are points of the degree-1 polynomial whose constant is the group secret.
  const Fn = suite.Fn;
  for (const [x1, x2] of [[1, 2], [2, 3], [1, 3]] as const) {
    const l1 = Fn.div(BigInt(x2), Fn.sub(BigInt(x2), BigInt(x1)));
    const l2 = Fn.div(BigInt(x1), Fn.sub(BigInt(x1), BigInt(x2)));
    const secret = Fn.add(Fn.mul(l1, shares.get(x1)!), Fn.mul(l2, shares.get(x2)!));
    t.ok(suite.base.multiply(secret).equals(suite.parsePoint(groupKey)), `shares ${x1} and ${x2} rebuild the group key`);
  }

  const shown = await cli('audra', 'n2', ['backup', 'list']);
  t.equal(shown.code, 0, shown.stderr);
  t.match(shown.stdout, /backup policy since ledger index \d+, recipients [0-9a-f]{16}: cara \(age1/);
  for (const id of ids) t.match(shown.stdout, new RegExp(`key k epoch 0 ${id}: backed up, cid [0-9a-f]{64}, at \\d{4}-`), `${id} listed as backed up`);
  t.match(shown.stdout, /3 of 3 shares backed up\n/);

  // Written once: the files are still the same bytes after the nodes saw their records.
  for (const id of ids) {
    const names = readdirSync(folder(id)).filter((f) => !f.startsWith('.'));
    t.equal(names.length, 1, `${id}: one file, no temporary left`);
    t.same(new Uint8Array(readFileSync(join(folder(id), names[0]!))), files.get(id), `${id}: the file is unchanged`);
  }

  // A new policy: every node backs up again, to the new custodian, in a new file beside the old one.
  const [erin] = await custodians('erin');
  const second = await client('approver-2', 'n2').proposeDecision(JSON.stringify({ kind: 'BackupPolicy', recipients: [{ label: 'erin', recipient: erin!.recipient }] }));
  await approve(second.cid, ['approver-2', 'approver-3']);
  const relisted = await until('every replica records the backups to the new custodian', async () => {
    const ls = await Promise.all(ids.map((id) => audra(id).listBackups()));
    return ls.every((l) => l.custodians.length === 1 && l.missing === 0) ? ls : null;
  }, 120_000);
  for (const id of ids) {
    const names = readdirSync(folder(id)).filter((f) => f.endsWith('.backup')).sort();
    t.equal(names.length, 2, `${id}: the old file stays, the new one beside it`);
    const entry = relisted[0]!.entries.find((e) => e.nodeId === id)!;
    const fresh = names.map((n) => new Uint8Array(readFileSync(join(folder(id), n)))).find((b) => toHex(createHash('sha256').update(b).digest()) === entry.fileCid);
    t.ok(fresh !== undefined, `${id}: the recorded cid is one of its files`);
    const meta = readShareBackupMeta(fresh!);
    t.equal((await decryptShareBackup(fresh!, erin!.identity, meta)).length, 32, `${id}: the new custodian opens it`);
    t.equal(await decryptShareBackup(fresh!, cara!.identity, meta).then(() => 'OK', (e: { reason?: string }) => e.reason), 'BACKUP_INVALID', `${id}: a former custodian cannot`);
  }

  // Retirement keeps the backups: files and records stay and are listed as kept.
  const early = await cli('approver-1', 'n1', ['backup', 'destroy', '--key-id', 'k', '--epoch', '0', '--json']);
  t.equal(early.code, 0, early.stderr);
  const earlyCid = (JSON.parse(early.stdout) as { cid: string }).cid;
  const refused = await approve(earlyCid, ['approver-1', 'approver-2']).then(() => 'submitted', (e: Error) => e.message);
  t.match(refused, /KEY_NOT_RETIRED/, 'destroying the backups of a live key is refused KEY_NOT_RETIRED when the last approval submits it');
  const retire = await client('kim', 'n1').proposeDecision(JSON.stringify({ kind: 'KeyRetired', keyId: 'k' }));
  await approve(retire.cid, ['approver-1', 'approver-2']);
  await until('k retired on every node', async () => (await Promise.all(ids.map(async (id) => (await audra(id).status()).keys[0]?.status === 'retired'))).every(Boolean) || null, 60_000);
  for (const id of ids) t.equal(readdirSync(folder(id)).filter((f) => f.endsWith('.backup')).length, 2, `${id}: retirement leaves both backup files`);
  const kept = await cli('audra', 'n3', ['backup', 'list']);
  t.equal(kept.code, 0, kept.stderr);
  for (const id of ids) t.match(kept.stdout, new RegExp(`key k epoch 0 ${id}: retired key, backup kept, cid [0-9a-f]{64}`), `${id}'s backup listed as kept`);

  // A separate decision destroys them: every node deletes the files it wrote.
  const destroy = await cli('approver-1', 'n1', ['backup', 'destroy', '--key-id', 'k', '--epoch', '0', '--json']);
  t.equal(destroy.code, 0, destroy.stderr);
  await approve((JSON.parse(destroy.stdout) as { cid: string }).cid, ['approver-2', 'approver-3']);
  for (const id of ids) {
    await until(`${id} deleted its backup files`, async () => readdirSync(folder(id)).filter((f) => f.endsWith('.backup')).length === 0 || null, 60_000);
  }
  const gone = await cli('audra', 'n2', ['backup', 'list']);
  t.equal(gone.code, 0, gone.stderr);
  for (const id of ids) t.match(gone.stdout, new RegExp(`key k epoch 0 ${id}: retired key, backup [0-9a-f]{64} DESTROYED by BackupsDestroyed [0-9a-f]{64} \\(index \\d+\\)`), `${id}'s backup listed as destroyed, with its decision`);
});
