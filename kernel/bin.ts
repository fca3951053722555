#!/usr/bin/env node
/**
 * The kernel process entry without the rest of the CLI: `node dist/kernel/bin.js --config <file>`
 * (what `custody kernel --config <file>` runs). A supervisor that starts only the kernel uses it.
 */
import { CustodyError } from '../proto/errors.js';
import { loadConfig } from './config.js';
import { kernelProcess } from './main.js';

const i = process.argv.indexOf('--config');
const path = i >= 0 ? process.argv[i + 1] : undefined;
if (path === undefined) {
  process.stderr.write('usage: kernel/bin.js --config <file>\n');
  process.exit(2);
}
kernelProcess(loadConfig(path)).catch((e: unknown) => {
  if (e instanceof CustodyError) {
    process.stderr.write(`custody kernel: ${e.reason}: ${e.detail}\n`);
    process.exit(3);
  }
  process.stderr.write(`custody kernel: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
