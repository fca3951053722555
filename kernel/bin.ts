#!/usr/bin/env node
/**
 * The kernel process entry without the rest of the CLI (what `custody kernel` runs):
 *   node dist/kernel/bin.js --config <file>                                  run the kernel
 *   node dist/kernel/bin.js hsm-init --config <file> [--so-pin-file <file>]  prepare the token
 */
import { CustodyError } from '../proto/errors.js';
import { loadConfig } from './config.js';
import { hsmInitCommand, kernelProcess } from './main.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const path = arg('--config');
  if (path === undefined) {
    process.stderr.write('usage: kernel/bin.js [hsm-init] --config <file> [--so-pin-file <file>]\n');
    process.exit(2);
  }
  const cfg = loadConfig(path);
  if (process.argv[2] === 'hsm-init') {
    process.stdout.write(`${JSON.stringify(hsmInitCommand(cfg, arg('--so-pin-file')))}\n`);
    return;
  }
  await kernelProcess(cfg);
}

main().catch((e: unknown) => {
  if (e instanceof CustodyError) {
    process.stderr.write(`custody kernel: ${e.reason}: ${e.detail}\n`);
    process.exit(3);
  }
  process.stderr.write(`custody kernel: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
