/**
 * The hsm profile's wrapping key: generated in the token by `custody kernel hsm-init`, and the
 * token itself reports it non-extractable and sensitive (read back through PKCS#11). The token
 * lives in a temp folder with its own SOFTHSM2_CONF, never the system token store.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { wrappingKeyAttributes, HsmVault } from '../../kernel/hsm.js';
import { Governance, KERNEL_BIN, SOFTHSM_MODULE, tempDir } from './harness.js';

function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

t.test('hsm-init creates the token and a non-extractable, sensitive wrapping key', { timeout: 120_000 }, async (t) => {
  const { dir, cleanup } = tempDir('hsm-init');
  t.teardown(cleanup);
  const tokens = join(dir, 'tokens');
  mkdirSync(tokens);
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  writeFileSync(join(dir, 'pin'), '24681012\n', { mode: 0o600 });
  writeFileSync(join(dir, 'so-pin'), '13579111\n', { mode: 0o600 });
  const gov = new Governance();
  const hsm = { module: SOFTHSM_MODULE, tokenLabel: 'node-7', pinFile: join(dir, 'pin'), keyLabel: 'custody-wrap' };
  const configPath = join(dir, 'kernel.json');
  writeFileSync(configPath, JSON.stringify({ nodeId: 'node-7', socketPath: join(dir, 'run/k.sock'), storeDir: join(dir, 'store'), profile: 'hsm', hsm, genesis: gov.pin() }));
  const env = { SOFTHSM2_CONF: conf };

  const first = await run([KERNEL_BIN, 'hsm-init', '--config', configPath, '--so-pin-file', join(dir, 'so-pin')], env);
  t.equal(first.code, 0, `hsm-init exits 0 ${first.stderr}`);
  const report = JSON.parse(first.stdout) as { tokenInitialized: boolean; keyGenerated: boolean };
  t.ok(report.tokenInitialized && report.keyGenerated, 'token initialized and key generated');
  const second = await run([KERNEL_BIN, 'hsm-init', '--config', configPath], env);
  t.equal(second.code, 0, 'hsm-init is idempotent');
  t.notOk((JSON.parse(second.stdout) as { keyGenerated: boolean }).keyGenerated, 'the existing key is kept');

  process.env['SOFTHSM2_CONF'] = conf;
  const attrs = wrappingKeyAttributes(hsm);
  t.equal(attrs.extractable, false, 'CKA_EXTRACTABLE = false');
  t.equal(attrs.sensitive, true, 'CKA_SENSITIVE = true');
  t.equal(attrs.neverExtractable, true, 'CKA_NEVER_EXTRACTABLE = true (generated in the token)');
  t.equal(attrs.alwaysSensitive, true, 'CKA_ALWAYS_SENSITIVE = true');
  t.equal(attrs.valueReadable, false, 'CKA_VALUE cannot be read out');

  const vault = HsmVault.open(hsm);
  t.teardown(() => vault.close());
  const sealed = vault.seal(Buffer.from('a share'), 'share/k/1');
  t.equal(Buffer.from(vault.open(sealed, 'share/k/1')).toString(), 'a share', 'the token seals and opens');
  t.throws(() => vault.open(sealed, 'share/k/2'), 'a blob moved to another slot does not open');
  vault.counter.raise('k', 5);
  vault.counter.raise('k', 3);
  t.equal(vault.counter.get('k'), 5, 'the token counter never goes backwards');
});
