/**
 * `custody kernel --config <file>`: run this node's secret kernel (kernel/).
 * `custody kernel hsm-init --config <file> --so-pin-file <file>`: initialize the hsm profile's
 * token (if needed) and generate the non-extractable wrapping key inside it.
 */
import type { CommandModule } from 'yargs';
import { loadConfig } from '../../kernel/config.js';
import { hsmInitCommand, kernelProcess } from '../../kernel/main.js';
import { launchKernelAs, requireReachable } from '../../kernel/launch.js';
import { CustodyError } from '../../proto/errors.js';
import { resolve } from 'node:path';

interface Args {
  action: string;
  config: string;
  'so-pin-file'?: string;
  user?: string;
}

export const kernelCommand: CommandModule<object, Args> = {
  command: 'kernel [action]',
  describe: 'run the secret kernel (action "run"), or prepare its HSM token (action "hsm-init")',
  builder: (y) =>
    y
      .positional('action', { choices: ['run', 'hsm-init', 'check-path'] as const, default: 'run', describe: 'what to do; check-path (as root, with --user): can that user reach the kernel\'s program? (systemd: ExecStartPre=+)' })
      .option('config', { type: 'string', demandOption: true, describe: 'kernel config file (YAML or JSON)' })
      .option('so-pin-file', { type: 'string', describe: 'hsm-init: security-officer PIN file, to initialize a new token' })
      .option('user', { type: 'string', describe: 'run: start the kernel as this OS user (run as root); refused KERNEL_PATH_UNREACHABLE, naming the directory, when the user cannot reach the kernel\'s program' }) as never,
  handler: async (argv) => {
    if (argv.action === 'check-path') {
      if (argv.user === undefined) throw new CustodyError('INVALID_ARGUMENT', 'check-path needs --user <the kernel\'s OS user>');
      requireReachable(argv.user);
      process.stdout.write(`${argv.user} can reach the kernel's program\n`);
      return;
    }
    if (argv.user !== undefined && argv.action === 'run') {
      const child = launchKernelAs(argv.user, resolve(argv.config), { stdio: 'inherit' });
      for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => child.kill(sig));
      const code = await new Promise<number>((res) => child.once('exit', (c, s) => res(c ?? (s === null ? 1 : 128))));
      process.exitCode = code;
      return;
    }
    const cfg = loadConfig(argv.config);
    if (argv.action === 'hsm-init') {
      process.stdout.write(`${JSON.stringify(hsmInitCommand(cfg, argv['so-pin-file']))}\n`);
      return;
    }
    await kernelProcess(cfg);
  },
};
