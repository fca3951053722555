/**
 * The software profile's sealing: AES-256-GCM under a key file or a passphrase (scrypt), bound
 * to each blob's slot; a wrong passphrase is caught at start, never by a failed signing.
 */
import t from 'tap';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { CustodyError } from '../../proto/errors.js';
import { KernelStore } from '../../kernel/store.js';
import { SoftwareVault, checkVault, scryptParams } from '../../kernel/vault.js';
import { scryptSync, randomBytes } from 'node:crypto';
import { kernel as limits } from '../../proto/limits.js';
import { tempDir } from './harness.js';

t.test('passphrase vault: reopens with the passphrase, refuses another', { timeout: 120_000 }, async (t) => {
  const { dir, cleanup } = tempDir('vault');
  t.teardown(cleanup);
  const store = await KernelStore.open(join(dir, 'store'));
  t.teardown(() => store.close());
  const v1 = await SoftwareVault.fromPassphrase('correct horse battery staple', store);
  await checkVault(v1, store);
  const sealed = v1.seal(Buffer.from('share bytes'), 'share/k/1');
  const v2 = await SoftwareVault.fromPassphrase('correct horse battery staple', store);
  await checkVault(v2, store);
  t.equal(Buffer.from(v2.open(sealed, 'share/k/1')).toString(), 'share bytes', 'same passphrase, same key (salt kept in the store)');
  const wrong = await SoftwareVault.fromPassphrase('incorrect horse battery staple', store);
  const r = await checkVault(wrong, store).then(() => 'OK', (e: unknown) => (e as CustodyError).reason);
  t.equal(r, 'CONFIG_INVALID', 'a wrong passphrase fails at start');
  t.throws(() => v2.open(sealed, 'share/k/2'), 'a blob moved to another slot does not open');
  await t.rejects(SoftwareVault.fromPassphrase('short', store), 'short passphrases are refused');
});

t.test('passphrase vault: a new store uses scrypt N = 2^17 and keeps its parameters; an older store keeps opening', { timeout: 120_000 }, async (t) => {
  const { dir, cleanup } = tempDir('vault-params');
  t.teardown(cleanup);
  const store = await KernelStore.open(join(dir, 'store'));
  t.teardown(() => store.close());
  const pass = 'correct horse battery staple';
  const v = await SoftwareVault.fromPassphrase(pass, store);
  await checkVault(v, store);
  const p = await scryptParams(store);
  t.same([p.logN, p.r, p.p], [17, 8, 1], 'a new store is made at N = 2^17, r = 8, p = 1');
  t.ok(limits.scryptLogN >= 17, 'the long-lived secret cost is at least 2^17');
  t.same(JSON.parse(Buffer.from((await store.get('meta/scrypt-params'))!).toString()), { logN: 17, r: 8, p: 1 }, 'stored beside the salt');
  // The key is exactly scrypt at those parameters (an independent derivation opens its blob).
  const expected = SoftwareVault.fromKey(scryptSync(pass.normalize('NFKC'), p.salt, 32, { N: 2 ** 17, r: 8, p: 1, maxmem: 256 * 1024 * 1024 }));
  t.equal(Buffer.from(expected.open(v.seal(Buffer.from('x'), 'a'), 'a')).toString(), 'x', 'derived at 2^17');

  // A store made before parameters were stored: a salt only, sealed under N = 2^15.
  const oldDir = join(dir, 'old');
  const old = await KernelStore.open(oldDir);
  t.teardown(() => old.close());
  const salt = randomBytes(16);
  await old.write([{ type: 'put', key: 'meta/scrypt-salt', value: salt }]);
  const legacy = SoftwareVault.fromKey(scryptSync(pass, salt, 32, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 }));
  await checkVault(legacy, old);
  const reopened = await SoftwareVault.fromPassphrase(pass, old);
  await t.resolves(checkVault(reopened, old), 'an older store still opens with its passphrase');
  t.equal(await old.get('meta/scrypt-params'), undefined, 'and is left as it was');

  // A store edited to a cheaper cost derives another key: the vault check refuses it.
  await store.write([{ type: 'put', key: 'meta/scrypt-params', value: Buffer.from(JSON.stringify({ logN: 15, r: 8, p: 1 })) }]);
  const cheap = await SoftwareVault.fromPassphrase(pass, store);
  t.equal(await checkVault(cheap, store).then(() => 'OK', (e: unknown) => (e as CustodyError).reason), 'CONFIG_INVALID', 'a lowered cost does not open the store');
  for (const bad of [{ logN: 10, r: 8, p: 1 }, { logN: 17, r: 1, p: 1 }, { logN: 17, r: 8, p: 1, x: 1 }, { logN: 40, r: 8, p: 1 }]) {
    await store.write([{ type: 'put', key: 'meta/scrypt-params', value: Buffer.from(JSON.stringify(bad)) }]);
    t.equal(await SoftwareVault.fromPassphrase(pass, store).then(() => 'OK', (e: unknown) => (e as CustodyError).reason), 'STORAGE_CORRUPT', `parameters ${JSON.stringify(bad)} are refused`);
  }
});

t.test('key file vault: hex or raw, 32 bytes only', async (t) => {
  const { dir, cleanup } = tempDir('keyfile');
  t.teardown(cleanup);
  writeFileSync(join(dir, 'hex'), 'ab'.repeat(32) + '\n');
  writeFileSync(join(dir, 'short'), 'abcd');
  const v = SoftwareVault.fromKeyFile(join(dir, 'hex'));
  t.equal(Buffer.from(v.open(v.seal(Buffer.from('x'), 'a'), 'a')).toString(), 'x');
  t.throws(() => SoftwareVault.fromKeyFile(join(dir, 'short')), 'a short key file is refused');
});
