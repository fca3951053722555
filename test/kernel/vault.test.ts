/**
 * The software profile's sealing: AES-256-GCM under a key file or a passphrase (scrypt), bound
 * to each blob's slot; a wrong passphrase is caught at start, never by a failed signing.
 */
import t from 'tap';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { CustodyError } from '../../proto/errors.js';
import { KernelStore } from '../../kernel/store.js';
import { SoftwareVault, checkVault } from '../../kernel/vault.js';
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

t.test('key file vault: hex or raw, 32 bytes only', async (t) => {
  const { dir, cleanup } = tempDir('keyfile');
  t.teardown(cleanup);
  writeFileSync(join(dir, 'hex'), 'ab'.repeat(32) + '\n');
  writeFileSync(join(dir, 'short'), 'abcd');
  const v = SoftwareVault.fromKeyFile(join(dir, 'hex'));
  t.equal(Buffer.from(v.open(v.seal(Buffer.from('x'), 'a'), 'a')).toString(), 'x');
  t.throws(() => SoftwareVault.fromKeyFile(join(dir, 'short')), 'a short key file is refused');
});
