/**
 * Starting and stopping one kernel process: config -> store -> vault -> kernel -> socket.
 * On success one line goes to stdout, `{"ready":true,...}`, which supervisors and tests wait on.
 */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:net';
import { CustodyError } from '../proto/errors.js';
import type { KernelConfig } from './config.js';
import { HsmVault, hsmInit, wrappingKeyAttributes } from './hsm.js';
import { Kernel, type CrashPoint } from './kernel.js';
import { privateStoreDir, refuseExposed } from './perms.js';
import { serve } from './server.js';
import { KernelStore } from './store.js';
import { SoftwareVault, type Vault } from './vault.js';

/**
 * Test-only fault injection: CUSTODY_KERNEL_CRASH_AT=<point>[#n] makes the process SIGKILL
 * itself the n-th time (default first) it reaches the named point, so crash tests stop the
 * kernel exactly at a step boundary. Unset in production; it can only ever stop the kernel.
 */
export function crashHookFromEnv(env: NodeJS.ProcessEnv = process.env): ((p: CrashPoint) => void) | undefined {
  const spec = env['CUSTODY_KERNEL_CRASH_AT'];
  if (!spec) return undefined;
  const [point, nth] = spec.split('#');
  let left = nth === undefined ? 1 : Number(nth);
  return (p: CrashPoint) => {
    if (p === point && --left === 0) process.kill(process.pid, 'SIGKILL');
  };
}

export async function openVault(cfg: KernelConfig, store: KernelStore): Promise<Vault> {
  if (cfg.profile === 'hsm') return HsmVault.open(cfg.hsm!);
  if (cfg.software?.keyFile) return SoftwareVault.fromKeyFile(cfg.software.keyFile);
  if (cfg.software?.passphraseFile) return SoftwareVault.fromPassphrase(readFileSync(cfg.software.passphraseFile, 'utf8').trim(), store);
  throw new CustodyError('CONFIG_INVALID', 'no sealing key configured');
}

export interface RunningKernel {
  kernel: Kernel;
  server: Server;
  stop(): Promise<void>;
}

/** Refuses secrets open to other users (kernel/perms.ts); creates a missing store folder 0700. */
export function checkSecretModes(cfg: KernelConfig): void {
  if (cfg.software?.keyFile) refuseExposed(cfg.software.keyFile, 'kernel key file');
  if (cfg.software?.passphraseFile) refuseExposed(cfg.software.passphraseFile, 'kernel passphrase file');
  if (cfg.hsm) refuseExposed(cfg.hsm.pinFile, 'HSM PIN file');
  privateStoreDir(cfg.storeDir);
}

export async function runKernel(cfg: KernelConfig): Promise<RunningKernel> {
  const crashPoint = crashHookFromEnv();
  checkSecretModes(cfg);
  const store = await KernelStore.open(cfg.storeDir);
  let vault: Vault | undefined;
  try {
    vault = await openVault(cfg, store);
    const kernel = await Kernel.open({ nodeId: cfg.nodeId, store, vault, genesis: cfg.genesis, ...(crashPoint ? { crashPoint } : {}) });
    const server = await serve({ socketPath: cfg.socketPath, ...(cfg.socketGid !== undefined ? { socketGid: cfg.socketGid } : {}), kernel, ...(crashPoint ? { crashPoint } : {}) });
    const v = vault;
    let stopped = false;
    return {
      kernel,
      server,
      async stop() {
        if (stopped) return;
        stopped = true;
        await new Promise<void>((r) => server.close(() => r()));
        await kernel.close();
        v.close();
        await store.close();
      },
    };
  } catch (e) {
    vault?.close();
    await store.close();
    throw e;
  }
}

/** The kernel as an OS process: run until SIGTERM/SIGINT, announcing readiness on stdout. */
export async function kernelProcess(cfg: KernelConfig): Promise<never> {
  // Whatever the kernel creates (store files, the socket before its chmod) starts private.
  process.umask(0o077);
  const running = await runKernel(cfg);
  const stop = (): void => {
    running.stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.stdout.write(`${JSON.stringify({ ready: true, nodeId: cfg.nodeId, socket: cfg.socketPath, profile: cfg.profile, transportPublicKey: Buffer.from(running.kernel.transportPublicKey).toString('hex') })}\n`);
  return new Promise<never>(() => undefined);
}

/** `hsm-init`: token (if new) and wrapping key; reports what it did and the key's attributes. */
export function hsmInitCommand(cfg: KernelConfig, soPinFile: string | undefined): object {
  if (cfg.profile !== 'hsm' || cfg.hsm === undefined) throw new CustodyError('CONFIG_INVALID', 'hsm-init needs profile: hsm');
  const did = hsmInit({ ...cfg.hsm, ...(soPinFile ? { soPinFile } : {}) });
  return { ...did, wrappingKey: wrappingKeyAttributes(cfg.hsm) };
}
