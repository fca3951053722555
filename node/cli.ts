#!/usr/bin/env node
/**
 * `custody`: one binary for every role. Each subcommand lives in node/commands/<name>.ts and
 * exports a yargs CommandModule; this file only lists them.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import type { CommandModule } from 'yargs';
import { CustodyError } from '../proto/errors.js';
import { simCommand } from './commands/sim.js';
import { kernelCommand } from './commands/kernel.js';
import { nodeCommand } from './commands/node.js';
import { certsCommand } from './commands/certs.js';
import { clusterCommand } from './commands/cluster.js';
import { adminCommand } from './commands/admin.js';
import { demoCommand } from './commands/demo.js';
import { evidenceCommand } from './commands/evidence.js';
import { initCommand } from './commands/init.js';
import { guardianCommand } from './commands/guardian.js';
import { txCommand } from './commands/tx.js';
import { witnessCommand } from './commands/witness.js';

const commands: CommandModule<any, any>[] = [simCommand, kernelCommand, nodeCommand, certsCommand, clusterCommand, adminCommand, demoCommand, evidenceCommand, initCommand, guardianCommand, txCommand, witnessCommand];

export async function main(argv: string[]): Promise<void> {
  let parser = yargs(hideBin(argv))
    .scriptName('custody')
    .usage('$0 <command> [options]\n\nA governed custody cluster: Raft-replicated event log, threshold signing in secret kernels.')
    .strict()
    .demandCommand(1, 'name a command; see the list above')
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .wrap(Math.min(110, process.stdout.columns ?? 110))
    .fail((msg, err, y) => {
      if (err) throw err;
      process.stderr.write(`${y.help()}\n\nerror: ${msg}\n`);
      process.exit(2);
    });
  for (const c of commands) parser = parser.command(c);
  await parser.parseAsync();
}

main(process.argv).catch((e: unknown) => {
  if (e instanceof CustodyError) {
    process.stderr.write(`custody: ${e.reason}: ${e.detail}\n`);
    process.exit(3);
  }
  process.stderr.write(`custody: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
