/**
 * Backup and restore of a cluster's replicated state (README "Backup and restore"):
 *   custody admin snapshot save FILE      a consistent, checksummed copy through the admin API
 *   custody admin snapshot inspect FILE   verify a file and print its header
 *   custody cluster restore --snapshot FILE --config DIR   seed a NEW cluster from a file
 * File format: node/backup/format.ts. A refusal prints `REASON: detail` and exits 3.
 */
import type { CommandModule } from 'yargs';
import { CustodyError, isCustodyError } from '../../proto/errors.js';
import type { SnapshotSummary } from '../backup/format.js';
import { readSnapshotFile } from '../backup/format.js';
import { restoreCluster } from '../backup/restore.js';
import { writeSnapshotFile } from '../backup/save.js';
import { connOptions, run, type Conn } from './admin.js';

const out = (s: string): void => void process.stdout.write(`${s}\n`);
const err = (s: string): void => void process.stderr.write(`${s}\n`);
const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;

/** Like admin.ts `run`, for commands that need no connection. */
export function local<A>(f: (a: A) => Promise<void>): (a: A) => Promise<void> {
  return async (a) => {
    try {
      await f(a);
    } catch (e) {
      if (!isCustodyError(e)) throw e;
      err(`${e.reason}: ${e.detail}`);
      process.exitCode = 3;
    }
  };
}

function summaryJson(s: SnapshotSummary, file: string): object {
  return { file, ...s.header, stateBytes: s.stateBytes, chunks: s.chunks, sha256: s.sha256, fileBytes: s.fileBytes };
}

function printSummary(s: SnapshotSummary, file: string): void {
  const h = s.header;
  out(`${file}: verified (SHA-256 ${s.sha256}, ${s.fileBytes} bytes)`);
  out(`  cluster ${h.clusterId}${h.incarnation ? ` incarnation ${h.incarnation}` : ''}`);
  out(`  applied index ${h.index} (term ${h.term}), ledger index ${h.ledgerIndex}, state root ${h.stateRoot}`);
  out(`  membership: voters ${h.membership.voters.join(' ')}${h.membership.learners.length ? `, learners ${h.membership.learners.join(' ')}` : ''}; ledger nodes ${h.nodes.join(' ')}`);
  out(`  taken from ${h.takenFrom} at ${new Date(h.takenAtMs).toISOString()}; state ${s.stateBytes} bytes in ${s.chunks} chunks`);
  if (h.archivedRecords !== undefined) out(`  archive: ${h.archivedRecords} ended acts after ${h.appStateBytes} bytes of live state`);
}

const save: CommandModule<object, Conn & { file: string; timeout: number }> = {
  command: 'save <file>',
  describe: 'save a consistent copy of the cluster\'s replicated state (auditor role) to FILE: taken at one applied index that includes every write committed before the call, checksummed (SHA-256), written atomically (temporary file, fsync, rename)',
  builder: (y) => connOptions(y)
    .positional('file', { type: 'string', demandOption: true, describe: 'the snapshot file to write (replaced atomically if it exists)' })
    .option('timeout', { type: 'number', default: 600_000, describe: 'deadline of the whole transfer in ms' }) as never,
  handler: run(async (c, a) => {
    const s = await writeSnapshotFile(a.file, c.saveSnapshot(a.timeout), (n) => err(`received ${mib(n)}`));
    if (a.json) return out(JSON.stringify(summaryJson(s, a.file), null, 2));
    printSummary(s, a.file);
  }),
};

const inspect: CommandModule<object, { file: string; json: boolean }> = {
  command: 'inspect <file>',
  describe: 'verify a snapshot file (framing, sizes, SHA-256) and print its header; a bad or truncated file is refused SNAPSHOT_INVALID',
  builder: (y) => y
    .positional('file', { type: 'string', demandOption: true, describe: 'the snapshot file' })
    .option('json', { type: 'boolean', default: false, describe: 'print machine-readable JSON' }) as never,
  handler: local(async (a) => {
    const s = await readSnapshotFile(a.file, () => undefined, (n) => err(`verified ${mib(n)}`));
    if (a.json) return out(JSON.stringify(summaryJson(s, a.file), null, 2));
    printSummary(s, a.file);
  }),
};

export const adminSnapshotCommand: CommandModule<object, object> = {
  command: 'snapshot <action>',
  describe: 'back up the cluster\'s replicated state (save) and check a backup (inspect); restore with `custody cluster restore`',
  builder: (y) => y.command(save).command(inspect).demandCommand(1) as never,
  handler: () => undefined,
};

export const clusterRestoreCommand: CommandModule<object, { snapshot: string; config: string }> = {
  command: 'restore',
  describe: 'seed a NEW cluster from a snapshot file: every node config in --config gets a new store holding the snapshot as its Raft snapshot (history intact) and a new incarnation, so no node of the old cluster, or of another restore of the file, can join it (INCARNATION_MISMATCH). The file is verified first; a bad file, a node not on the ledger\'s roster or a data directory that is not empty is refused and nothing is written',
  builder: (y) => y
    .option('snapshot', { type: 'string', demandOption: true, describe: 'snapshot file from `custody admin snapshot save`' })
    .option('config', { type: 'string', demandOption: true, describe: 'cluster config directory of the new cluster (node configs with new, empty data directories)' }) as never,
  handler: local(async (a) => {
    if (a.snapshot === '' || a.config === '') throw new CustodyError('INVALID_ARGUMENT', '--snapshot and --config are required');
    await restoreCluster(a.snapshot, a.config, out);
  }),
};
