/**
 * `custody cluster up|down|status --config <dir>`: run a cluster of local nodes from a directory
 * of node configs (cluster-configs/local-3, local-5).
 */
import type { CommandModule } from 'yargs';
import { clusterDown, clusterStatus, clusterUp } from '../cluster.js';
import { clusterRestoreCommand } from './snapshot.js';

const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

const up: CommandModule<object, { config: string; timeout: number }> = {
  command: 'up',
  describe: 'create missing certificates, start every node of the directory in the background, wait until each is ready',
  builder: (y) => y.option('config', { type: 'string', demandOption: true, describe: 'cluster config directory' }).option('timeout', { type: 'number', default: 60_000, describe: 'readiness deadline in ms' }) as never,
  handler: async (a) => clusterUp(a.config, say, a.timeout),
};

const down: CommandModule<object, { config: string }> = {
  command: 'down',
  describe: 'stop every node of the directory gracefully (SIGTERM) and wait for each to exit',
  builder: (y) => y.option('config', { type: 'string', demandOption: true, describe: 'cluster config directory' }) as never,
  handler: async (a) => clusterDown(a.config, say),
};

/** `consistent`, or the verdict with the voters whose answer the node still waits for. */
function rollbackCell(r: { check: string; pending: string[] } | undefined): string {
  if (r === undefined) return '-';
  return r.pending.length === 0 ? r.check : `${r.check}, waiting for ${r.pending.join(', ')}`;
}

const status: CommandModule<object, { config: string; json: boolean }> = {
  command: 'status',
  describe: "each node's role, term, leader, commit and applied index, and its rollback check (restart the next node of a rolling restart only once this one waits for no voter)",
  builder: (y) => y.option('config', { type: 'string', demandOption: true, describe: 'cluster config directory' }).option('json', { type: 'boolean', default: false, describe: 'print JSON' }) as never,
  handler: async (a) => {
    const rows = await clusterStatus(a.config);
    if (a.json) {
      say(JSON.stringify(rows.map((r) => (r.status ? { id: r.id, up: true, role: r.status.role, term: r.status.term, leader: r.status.leader, commit: r.status.commit, applied: r.status.applied, lastIndex: r.status.lastIndex, snapshotIndex: r.status.snapshotIndex, root: r.status.root, rollback: r.status.rollback ?? null } : { id: r.id, up: false })), null, 2));
      return;
    }
    say('node  state     role        term   leader  commit    applied   http                  rollback check');
    for (const r of rows) {
      const s = r.status;
      say(s
        ? `${r.id.padEnd(5)} up        ${s.role.padEnd(11)} ${String(s.term).padEnd(6)} ${(s.leader ?? '-').padEnd(7)} ${String(s.commit).padEnd(9)} ${String(s.applied).padEnd(9)} ${r.http.padEnd(21)} ${rollbackCell(s.rollback)}`
        : `${r.id.padEnd(5)} down      ${'-'.padEnd(11)} ${'-'.padEnd(6)} ${'-'.padEnd(7)} ${'-'.padEnd(9)} ${'-'.padEnd(9)} ${r.http}`);
    }
  },
};

export const clusterCommand: CommandModule<object, object> = {
  command: 'cluster',
  describe: 'run a cluster of local nodes from a directory of node configs (up, down, status), or seed a new cluster from a backup (restore)',
  builder: (y) => y.command(up).command(down).command(status).command(clusterRestoreCommand).demandCommand(1) as never,
  handler: () => {},
};
