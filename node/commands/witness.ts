/**
 * `custody witness ...`: run a C2SP tlog-witness that follows custody clusters' logs.
 *
 *   custody witness keygen --name NAME --out FILE          a new witness key (FILE, 0600) and FILE.vkey
 *   custody witness log-policy --genesis FILE [--out F]    the log policy of a cluster, from its genesis
 *   custody witness serve --listen HOST:PORT --key FILE --state DIR --log-policy FILE...
 *
 * The files are described in node/witness/files.ts, the protocol in node/witness/server.ts.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import type { CommandModule } from 'yargs';
import { CustodyError } from '../../proto/errors.js';
import { fromHex } from '../../ledger/encoding.js';
import { decodeEvent } from '../../ledger/events.js';
import { clusterTrust } from '../../ledger/tlog/ledger-log.js';
import { vkeyOf } from '../../ledger/tlog/note.js';
import { formatLogPolicy, loadLogPolicies, loadWitnessKey, WitnessState, writeWitnessKey } from '../witness/files.js';
import { parseListen, WitnessServer } from '../witness/server.js';

const keygen: CommandModule<object, { name: string; out: string }> = {
  command: 'keygen',
  describe: 'create a witness key: FILE holds the private key (mode 0600, never overwritten), FILE.vkey the verifier key to give the nodes and auditors',
  builder: (y) => y
    .option('name', { type: 'string', demandOption: true, describe: 'the key name, as the witness signs (for example witness.example.org/w1); no spaces or +' })
    .option('out', { type: 'string', demandOption: true, describe: 'the private key file to create' }) as never,
  handler: (a) => {
    const vkey = writeWitnessKey(a.out, a.name, new Uint8Array(randomBytes(32)));
    process.stdout.write(`${vkey}\n`);
  },
};

const logPolicy: CommandModule<object, { genesis: string; out?: string }> = {
  command: 'log-policy',
  describe: 'print the log policy of a custody cluster (origin, node keys, majority quorum) from its genesis file, for `serve --log-policy`',
  builder: (y) => y
    .option('genesis', { type: 'string', demandOption: true, describe: 'the cluster\'s genesis file (hex of the ClusterGenesis event, as `custody init` wrote it)' })
    .option('out', { type: 'string', describe: 'write the policy to this file instead of stdout' }) as never,
  handler: (a) => {
    const text = logPolicyFromGenesis(readFileSync(a.genesis, 'utf8'), a.genesis);
    if (a.out !== undefined) writeFileSync(a.out, text);
    else process.stdout.write(text);
  },
};

/** The log policy of a cluster from its genesis file's text (hex of the ClusterGenesis event). */
export function logPolicyFromGenesis(hex: string, file = 'genesis'): string {
  let ev;
  try {
    ev = decodeEvent(fromHex(hex.trim()));
  } catch (e) {
    throw new CustodyError('CONFIG_INVALID', `${file}: not a genesis file: ${(e as Error).message}`);
  }
  if (ev.type !== 'ClusterGenesis') throw new CustodyError('CONFIG_INVALID', `${file}: a ${ev.type}, not a ClusterGenesis`);
  return `# custody cluster ${ev.clusterId}: checkpoints cosigned by a majority of its genesis nodes\n${formatLogPolicy(clusterTrust(ev.clusterId, ev.nodes))}`;
}

const serve: CommandModule<object, { listen: string; key: string; state: string; 'log-policy': string[] }> = {
  command: 'serve',
  describe: 'serve the C2SP tlog-witness protocol (POST /add-checkpoint) over HTTP: cosign each checkpoint of a followed log that extends the last one it cosigned, refuse any other (409/422), remember the last one across restarts',
  builder: (y) => y
    .option('listen', { type: 'string', demandOption: true, describe: 'HOST:PORT to listen on (plain HTTP: requests and answers are signed)' })
    .option('key', { type: 'string', demandOption: true, describe: 'the witness key file (custody witness keygen)' })
    .option('state', { type: 'string', demandOption: true, describe: 'directory of the witness\'s records (the last checkpoint cosigned per log), fsynced; never share or roll it back' })
    .option('log-policy', { type: 'string', array: true, demandOption: true, describe: 'a log policy file (custody witness log-policy); repeat for each log followed' })
    .epilogue('Answers: 200 cosignature line; 400 malformed; 403 not signed by a quorum of the log\'s keys; 404 unknown log; 409 the old size is not the one held (body: the held size), or a second root for it; 422 the consistency proof does not verify. The reason code is in the Custody-Reason header.') as never,
  handler: async (a) => {
    const key = loadWitnessKey(a.key);
    const logs = loadLogPolicies(a['log-policy']);
    const state = WitnessState.open(a.state);
    const log = (l: string): void => void process.stderr.write(`${new Date().toISOString()} ${l}\n`);
    const server = new WitnessServer({ listen: parseListen(a.listen), key, logs, state, log });
    for (const o of logs.keys()) {
      const r = state.latest(o);
      log(`witness: ${o}: ${r === undefined ? 'no checkpoint cosigned yet' : `last cosigned size ${r.size}`}`);
    }
    let port: number;
    try {
      port = await server.start();
    } catch (e) {
      state.close();
      throw e;
    }
    log(`witness ${vkeyOf(key.verifier)} listening on ${a.listen} (port ${port}), following ${[...logs.keys()].join(', ')}`);
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        void server.stop().then(() => {
          state.close();
          resolve();
        });
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
  },
};

export const witnessCommand: CommandModule<object, object> = {
  command: 'witness <command>',
  describe: 'a transparency-log witness for custody clusters (C2SP tlog-witness): keygen, log-policy, serve',
  builder: (y) => y.command(keygen).command(logPolicy).command(serve).demandCommand(1) as never,
  handler: () => {},
};
