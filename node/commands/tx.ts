/**
 * `custody tx psbt|solana`: unsigned transactions for a threshold key, built without chain access
 * (node/lifecycle/tx-build.ts), written to a file that `custody admin act submit` takes. The key is
 * named by its id and read from a node (the admin connection options), or given offline as
 * --public-key and --network. The transaction is parsed back with the ledger's own parser before it
 * is written, and its display printed: what the cluster will show approvers.
 */
import { writeFileSync } from 'node:fs';
import type { Argv, CommandModule } from 'yargs';
import { CustodyError, isCustodyError } from '../../proto/errors.js';
import { fromHex, toHex } from '../../ledger/encoding.js';
import { LEDGER_ASSETS } from '../../ledger/admission.js';
import { parseTransaction } from '../../ledger/tx/parse.js';
import { NETWORKS, type AssetTable, type KeyContext, type Network, type TxKind } from '../../ledger/tx/types.js';
import { buildSolanaTransfer, buildTaprootPsbt, parseCoin, parsePayment } from '../lifecycle/tx-build.js';
import { client, signingKeyId, type Conn } from './admin.js';
import { keyAndAssets } from './act.js';

interface KeyArgs extends Partial<Conn> {
  'key-id'?: string;
  'public-key'?: string;
  network?: string;
  out: string;
  json?: boolean;
}

function keyOptions<T>(y: Argv<T>): Argv<T & KeyArgs> {
  return y
    .env('CUSTODY_ADMIN')
    .option('key-id', { type: 'string', describe: 'the threshold key\'s id (read from the node named by --node, unless --public-key is given; command line only, never from the environment)' })
    .option('public-key', { type: 'string', describe: 'offline: the key\'s group public key in hex (33-byte compressed for taproot, 32 bytes for ed25519)' })
    .option('network', { choices: NETWORKS, describe: 'offline: the key\'s network' })
    .option('out', { type: 'string', demandOption: true, describe: 'file to write the unsigned transaction to (binary)' })
    .option('node', { type: 'string', describe: 'admin address of a node (host:port), to read the key from' })
    .option('node-id', { type: 'string', describe: 'the node id its certificate names' })
    .option('certs', { type: 'string', describe: 'directory holding ca.crt and the operator\'s <id>.crt / <id>.key' })
    .option('as', { type: 'string', describe: 'operator id inside --certs' })
    .option('ca', { type: 'string' })
    .option('cert', { type: 'string' })
    .option('key', { type: 'string', describe: 'operator private key (with --ca and --cert)' })
    .option('json', { type: 'boolean', default: false, describe: 'print machine-readable JSON' }) as unknown as Argv<T & KeyArgs>;
}

/** The key and the asset table: from the node, or offline from the options (with the ledger's default table). */
async function resolveKey(a: KeyArgs, scheme: KeyContext['scheme']): Promise<{ key: KeyContext; assets: AssetTable }> {
  const keyId = signingKeyId(a, '--key-id names the threshold key');
  if (a['public-key'] !== undefined) {
    if (a.network === undefined) throw new CustodyError('INVALID_ARGUMENT', '--public-key needs --network');
    if (!/^([0-9a-f]{2})+$/i.test(a['public-key'])) throw new CustodyError('INVALID_ARGUMENT', '--public-key is hex');
    return { key: { keyId, scheme, groupKey: fromHex(a['public-key'].toLowerCase()), network: a.network as Network }, assets: LEDGER_ASSETS };
  }
  if (a.node === undefined || a['node-id'] === undefined) throw new CustodyError('INVALID_ARGUMENT', 'name a node (--node, --node-id and the operator\'s TLS material) to read the key from, or give --public-key and --network');
  const c = client(a as Conn);
  try {
    const r = await keyAndAssets(c, keyId);
    if (r.context.scheme !== scheme) throw new CustodyError('TX_UNSUPPORTED', `key ${keyId} is ${r.context.scheme}; this transaction needs a ${scheme} key`);
    return { key: r.context, assets: r.assets };
  } finally {
    c.close();
  }
}

function report(a: KeyArgs, kind: TxKind, bytes: Uint8Array, key: KeyContext, assets: AssetTable): void {
  writeFileSync(a.out, bytes);
  let display = '';
  let refused = '';
  try {
    display = parseTransaction(kind, bytes, key, assets).display;
  } catch (e) {
    if (!isCustodyError(e)) throw e;
    refused = `${e.reason}: ${e.detail}`;
  }
  if (a.json) {
    process.stdout.write(`${JSON.stringify({ file: a.out, kind, bytes: bytes.length, hex: toHex(bytes), display, refused }, null, 2)}\n`);
    return;
  }
  process.stdout.write(`${kind} transaction for key ${key.keyId} written to ${a.out} (${bytes.length} bytes)\n`);
  if (display !== '') for (const line of display.trimEnd().split('\n')) process.stdout.write(`  | ${line}\n`);
  else process.stdout.write(`  the cluster's parser would refuse it: ${refused}\n`);
}

interface PsbtArgs extends KeyArgs { input: string[]; to: string[]; fee: string }
interface SolanaArgs extends KeyArgs { to: string[]; blockhash: string; mint?: string; decimals?: number }

function handled<A>(f: (a: A) => Promise<void>): (a: A) => Promise<void> {
  return async (a) => {
    try {
      await f(a);
    } catch (e) {
      if (!isCustodyError(e)) throw e;
      process.stderr.write(`${e.reason}: ${e.detail}\n`);
      process.exitCode = 3;
    }
  };
}

export const txCommand: CommandModule<object, object> = {
  command: 'tx <kind>',
  describe: 'build an unsigned transaction for a threshold key (no chain access), for `custody admin act submit`',
  builder: (y) => y
    .command<PsbtArgs>({
      command: 'psbt',
      describe: 'a Taproot key-path PSBT spending coins of the key\'s own address: each --input becomes an input whose witnessUtxo is the key\'s P2TR script and the amount you state (the signature commits to it: a wrong amount only makes the transaction invalid); each --to an output; what is left after the fee goes back to the key as change',
      builder: (y2) => keyOptions(y2)
        .option('input', { type: 'string', array: true, demandOption: true, describe: 'a coin of the key: TXID:VOUT:AMOUNT_SAT (repeat for more inputs)' })
        .option('to', { type: 'string', array: true, demandOption: true, describe: 'a payment: ADDRESS:SAT (repeat for more outputs)' })
        .option('fee', { type: 'string', default: '1000', describe: 'the fee in satoshi' })
        .example('$0 tx psbt --key-id treasury-taproot --input <txid>:0:600000 --input <txid>:1:400000 --to bcrt1p...:150000 --fee 1000 --out pay.psbt', 'two coins, one payment, change back to the key'),
      handler: handled(async (a) => {
        if (!/^[0-9]{1,16}$/.test(a.fee)) throw new CustodyError('INVALID_ARGUMENT', '--fee is an integer number of satoshi');
        const { key, assets } = await resolveKey(a, 'taproot');
        report(a, 'btc-psbt', buildTaprootPsbt(key, a.input.map(parseCoin), a.to.map(parsePayment), BigInt(a.fee)), key, assets);
      }),
    })
    .command<SolanaArgs>({
      command: 'solana',
      describe: 'a Solana transfer message paid for by the key: SOL (System Transfer) to each --to, or with --mint and --decimals the SPL token from the key\'s associated token account to each --to token account (TransferChecked)',
      builder: (y2) => keyOptions(y2)
        .option('to', { type: 'string', array: true, demandOption: true, describe: 'a payment: ADDRESS:AMOUNT, the amount in lamports (or token base units) (repeat for more)' })
        .option('blockhash', { type: 'string', demandOption: true, describe: 'a recent blockhash (base58): the message is valid on chain for about 150 blocks after it' })
        .option('mint', { type: 'string', describe: 'the SPL token mint (base58); --to then names token accounts' })
        .option('decimals', { type: 'number', describe: 'the token\'s decimals (with --mint; the chain checks them against the mint)' })
        .example('$0 tx solana --key-id treasury-ed25519 --to <address>:1000000 --blockhash <base58> --out pay.msg', 'pay 0.001 SOL'),
      handler: handled(async (a) => {
        if ((a.mint === undefined) !== (a.decimals === undefined)) throw new CustodyError('INVALID_ARGUMENT', '--mint and --decimals go together');
        const { key, assets } = await resolveKey(a, 'ed25519');
        const bytes = await buildSolanaTransfer(key, a.to.map(parsePayment), a.blockhash, a.mint !== undefined ? { mint: a.mint, decimals: a.decimals! } : undefined);
        report(a, 'solana', bytes, key, assets);
      }),
    })
    .demandCommand(1, 'name a transaction kind: psbt or solana'),
  handler: () => undefined,
};
