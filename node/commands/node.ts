/**
 * `custody node --config <file>` runs one node daemon; `custody node wipe --config <file>` is
 * the recovery for a node whose store is corrupt (see README "Recovering a node").
 */
import type { CommandModule } from 'yargs';
import { CustodyError } from '../../proto/errors.js';
import { node as nodeLimits } from '../../proto/limits.js';
import { wipeStore } from '../../raft/storage/leveldb.js';
import { loadConfig } from '../config.js';
import { startNode } from '../daemon.js';

function log(line: string): void {
  process.stderr.write(`${new Date().toISOString()} ${line}\n`);
}

const wipe: CommandModule<object, { config: string; 'discard-vote': boolean; restored: boolean; yes: boolean }> = {
  command: 'wipe',
  describe:
    'recover a node whose store is corrupt: delete its log, snapshot and state so that, once started again, it re-syncs ' +
    'from its peers (a snapshot from the leader, then the log). Its term and vote are kept (a voter must never vote twice ' +
    'in one term); the node must be stopped, and the rest of the cluster must hold a majority.',
  builder: (y) =>
    y
      .option('config', { type: 'string', demandOption: true, describe: 'the node config file (its dataDir is wiped)' })
      .option('discard-vote', { type: 'boolean', default: false, describe: 'also wipe a hard state whose checksum fails; the node then votes again only once every other voter has answered (README "Restarts, restores and the rollback gate")' })
      .option('restored', {
        type: 'boolean', default: false,
        describe: 'the data directory was restored from a copy (backup, disk image, VM snapshot): forget its term and vote too, which may be older than a vote the node gave; ' +
          'the node then votes again only once every other voter has answered. Never start a restored store without this',
      })
      .option('yes', { type: 'boolean', default: false, describe: 'do not ask for confirmation' }) as never,
  handler: async (a) => {
    const cfg = loadConfig(a.config);
    if (!a.yes) throw new CustodyError('INVALID_ARGUMENT', `this deletes the data of node ${cfg.id} in ${cfg.dataDir}; repeat with --yes to confirm`);
    const r = await wipeStore(cfg.dataDir, { discardVote: a['discard-vote'], restored: a.restored });
    process.stdout.write(`wiped ${cfg.dataDir} (node ${cfg.id}); ${r.keptTerm !== null ? `kept term ${r.keptTerm} and its vote` : 'no hard state kept'}. ` +
      `Start the node again: it re-syncs from its peers.\n`);
  },
};

export const nodeCommand: CommandModule<object, { config?: string; 'trust-store': boolean }> = {
  command: 'node',
  describe: 'run a custody node daemon (Raft over mutual TLS, LevelDB, /metrics /healthz /readyz); `node wipe` recovers a corrupt node',
  builder: (y) =>
    y
      .command(wipe)
      .option('config', { type: 'string', describe: 'the node config file (YAML)' })
      .option('trust-store', {
        type: 'boolean', default: false,
        describe: 'do not wait for voters that have not said what they saw from this node. A plain restart never needs this: it votes once enough voters answered to make a quorum with it. ' +
          'A node wiped with --restored or --discard-vote, or one a peer proved out of date, waits for every voter, since a silent one may hold a vote the store forgot; ' +
          'use this only when a voter is down for good and you know this node gave it no vote in a term the others did not see (README "Restarts, restores and the rollback gate"). ' +
          'An answer that contradicts the store still withholds the vote until the node has caught up past it',
      })
      .epilogue(
        'Recovering a node whose store is corrupt (it refuses to start with STORAGE_CORRUPT):\n' +
          '  1. keep it stopped;  2. custody node wipe --config <file> --yes;  3. custody node --config <file>\n' +
          'It rejoins with its term and vote, receives a snapshot and the log from the leader, and serves once caught up.',
      ) as never,
  handler: async (a) => {
    if (!a.config) throw new CustodyError('INVALID_ARGUMENT', 'name the node config file with --config <file>');
    const cfg = loadConfig(a.config);
    const fatal = (e: unknown): void => {
      log(`fatal: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      process.exit(70);
    };
    const n = await startNode(cfg, log, fatal, { trustStore: a['trust-store'] });
    await new Promise<void>((resolve) => {
      const onSignal = (sig: string): void => {
        log(`received ${sig}`);
        const force = setTimeout(() => {
          log('shutdown grace period exceeded; exiting');
          process.exit(1);
        }, nodeLimits.shutdownGraceMs * 2);
        force.unref();
        n.stop().then(resolve, fatal);
      };
      process.once('SIGTERM', () => onSignal('SIGTERM'));
      process.once('SIGINT', () => onSignal('SIGINT'));
    });
    process.exit(0);
  },
};
