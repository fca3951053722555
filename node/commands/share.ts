/**
 * `custody admin share import` and `custody admin kernel status`: recovering a kernel's share
 * from its backup, the online steps (README "Recovering a lost kernel's share from its backup").
 *
 *   kernel status                      this node's kernel: its transport public key (what the
 *                                      custodian seals the recovered share to), profile, the
 *                                      governance index it follows, the key epochs it holds
 *   share import --key-id K --key-epoch E --sealed FILE
 *                                      hands the sealed-share file to this node, which forwards
 *                                      it to its kernel with the key epoch's public package and
 *                                      the ledger's consumed nonce counter
 *                                      (node/lifecycle/share-import.ts)
 *   share repair --key-id K --key-epoch E --target N --helpers H1,H2[,...]
 *                                      proposes RepairAuthorized: the helpers rebuild N's share
 *                                      (or enrol N under the next identifier when it holds none),
 *                                      with N's identifier and the epoch's group key read from
 *                                      this node's replica (node/lifecycle/repair.ts)
 *
 * --key-id and --key-epoch are what the operator expects the file to hold: a file of another key
 * or epoch is refused here (BINDING_MISMATCH) before anything is sent. Like every command naming a
 * threshold key, --key-id is read from the command line only (signingKeyId).
 */
import { readFile, stat } from 'node:fs/promises';
import type { Argv } from 'yargs';
import { CustodyError } from '../../proto/errors.js';
import { shareBackup as limits } from '../../proto/limits.js';
import { decodeSealedShare } from '../../kernel/recovery.js';
import type { KernelStatusView } from '../lifecycle/share-import.js';
import { frostIdentifier } from '../../ledger/signing-set.js';
import type { KeyScheme } from '../../ledger/decision.js';
import { connOptions, formatDecision, out, run, signingKeyId, type Cmd, type Conn } from './admin.js';

export function formatKernelStatus(s: KernelStatusView): string {
  return [
    `kernel of ${s.nodeId}: profile ${s.profile}, governance index ${s.governanceIndex}${s.frozen ? ', FROZEN' : ''}${s.fenced ? ', FENCED' : ''}`,
    `  transport public key ${s.transportPublicKey}`,
    ...(s.keys.length === 0 ? ['  holds no key share'] : s.keys.map((k) => `  key ${k.keyId} epoch ${k.keyEpoch}: identifier ${k.identifier}, consumed counter ${k.consumedCounter}`)),
  ].join('\n');
}

const kernelStatus: Cmd<Conn> = {
  command: 'status',
  describe: 'this node\'s kernel as it answers now: its X25519 transport public key (what `custody guardian recover-share --to-kernel` seals a recovered share to), profile, governance index, and the key epochs it holds a share of',
  builder: (y) => connOptions(y)
    .example('$0 admin kernel status --node 127.0.0.1:7202 --node-id n2 --certs certs --as audra', 'the transport key of n2\'s kernel') as Argv<Conn>,
  handler: run(async (c, a) => {
    const s = await c.kernelStatus();
    out(a.json ? JSON.stringify(s, null, 2) : formatKernelStatus(s));
  }),
};

export const adminKernelCommand: Cmd<object> = {
  command: 'kernel <command>',
  describe: 'this node\'s kernel: its status and transport public key (status)',
  builder: (y) => y.command(kernelStatus).demandCommand(1, 'name a kernel command: status') as Argv<object>,
  handler: () => undefined,
};

type ImportArgs = Conn & { 'key-id'?: string; 'key-epoch': number; sealed: string };

const shareImport: Cmd<ImportArgs> = {
  command: 'import',
  describe: 'import into this node\'s kernel its share recovered from a backup: the sealed-share file `custody guardian recover-share` wrote for this kernel. The kernel accepts it only under a RecoveryAuthorized decision naming this node, key, epoch and identifier, and only if share*G is the decided verifying share; it then signs again, numbering its nonces above the ledger\'s consumed counter. Role: key-generator. Refused with the kernel\'s reason: RECOVERY_NOT_AUTHORIZED, SHARE_ALREADY_HELD, PAYLOAD_REJECTED (a file sealed to another kernel or altered), SHARE_MISMATCH, KEY_NOT_ACTIVE, STALE_EPOCH, WRONG_RECIPIENT',
  builder: (y) => connOptions(y)
    .option('key-id', { type: 'string', describe: 'the threshold key the file must be of (its id; command line only, never from the environment)' })
    .option('key-epoch', { type: 'number', demandOption: true, describe: 'the key epoch the file must be of (the active one)' })
    .option('sealed', { type: 'string', demandOption: true, describe: 'the sealed-share file (`custody guardian recover-share --out`)' })
    .example('$0 admin share import --key-id k1 --key-epoch 0 --sealed n2-k1-0.sealed --node 127.0.0.1:7202 --node-id n2 --certs certs --as kim', 'recover n2\'s share of k1') as Argv<ImportArgs>,
  handler: run(async (c, a) => {
    const keyId = signingKeyId(a, 'name the key with --key-id');
    const epoch = a['key-epoch'];
    if (!Number.isSafeInteger(epoch) || epoch < 0) throw new CustodyError('INVALID_ARGUMENT', `--key-epoch must be a non-negative integer, not ${epoch}`);
    const size = (await stat(a.sealed)).size;
    if (size > limits.sealedShareBytesMax) throw new CustodyError('PAYLOAD_REJECTED', `${a.sealed}: ${size} bytes, more than a sealed share's ${limits.sealedShareBytesMax}`);
    const bytes = new Uint8Array(await readFile(a.sealed));
    const f = decodeSealedShare(bytes);
    if (f.keyId !== keyId || f.epoch !== epoch) throw new CustodyError('BINDING_MISMATCH', `${a.sealed} holds a share of ${f.keyId} epoch ${f.epoch}, not ${keyId} epoch ${epoch}`);
    const r = await c.importShare(bytes);
    out(a.json ? JSON.stringify(r, null, 2) : [
      r.earlier
        ? `already imported: the kernel holds key ${r.keyId} epoch ${r.keyEpoch}, identifier ${r.identifier}, from an earlier import under the RecoveryAuthorized; nothing imported now`
        : `imported: key ${r.keyId} epoch ${r.keyEpoch}, identifier ${r.identifier}, group key ${r.groupKey}; nonces numbered above ${r.consumedCounter}`,
      r.recordedIndex > 0 ? `recorded: ShareRecovered at ledger index ${r.recordedIndex}` : `NOT recorded in the ledger (${r.recordRefused}); the share is imported`,
    ].join('\n'));
  }),
};

type RepairArgs = Conn & { 'key-id'?: string; 'key-epoch': number; target: string; helpers: string; 'ttl-ms': number };

const shareRepair: Cmd<RepairArgs> = {
  command: 'repair',
  describe: 'propose a RepairAuthorized decision: the kernels of --helpers (at least t holders of the key epoch) rebuild the share --target lost, with no backup, or enrol --target under the next identifier when it holds no share of the epoch. The identifier and the group key are taken from this node\'s replica; approvers then approve the printed cid (`custody admin decision approve`), and the nodes run the repair themselves. The ledger refuses too few helpers, a helper that holds no share, the target among them (REPAIR_HELPERS_INVALID), an epoch that is not active (STALE_EPOCH)',
  builder: (y) => connOptions(y)
    .option('key-id', { type: 'string', describe: 'the threshold key (its id; command line only, never from the environment)' })
    .option('key-epoch', { type: 'number', demandOption: true, describe: 'its active epoch' })
    .option('target', { type: 'string', demandOption: true, describe: 'the node whose share is rebuilt (or which is enrolled)' })
    .option('helpers', { type: 'string', demandOption: true, describe: 'comma-separated node ids of the holders that rebuild it' })
    .option('ttl-ms', { type: 'number', default: 0, describe: 'how long the decision stays valid (0 = 24 h)' })
    .example('$0 admin share repair --key-id k1 --key-epoch 0 --target n3 --helpers n1,n2 --node 127.0.0.1:7201 --node-id n1 --certs certs --as alice', 'propose that n1 and n2 rebuild n3\'s share of k1') as Argv<RepairArgs>,
  handler: run(async (c, a) => {
    const keyId = signingKeyId(a, 'name the key with --key-id');
    const epoch = a['key-epoch'];
    if (!Number.isSafeInteger(epoch) || epoch < 0) throw new CustodyError('INVALID_ARGUMENT', `--key-epoch must be a non-negative integer, not ${epoch}`);
    const helpers = a.helpers.split(',').map((h) => h.trim()).filter((h) => h !== '');
    // Every participant of every active key epoch, with its identifier and the epoch's group key.
    const entries = (await c.listBackups()).entries.filter((e) => e.keyId === keyId && e.keyEpoch === epoch);
    if (entries.length === 0) throw new CustodyError('STALE_EPOCH', `key ${keyId} epoch ${epoch} is not an active key epoch on this node's replica`);
    // The target's identifier when it holds one (a participant, or a node enrolled before);
    // otherwise the first identifier past every one in use (participants and enrolled holders).
    const held = entries.find((e) => e.nodeId === a.target);
    const scheme = entries[0]!.scheme as KeyScheme;
    const inUse = new Set(entries.map((e) => e.identifier));
    let position = 1;
    while (inUse.has(frostIdentifier(scheme, position))) position++;
    const identifier = held?.identifier ?? frostIdentifier(scheme, position);
    const action = { kind: 'RepairAuthorized', nodeId: a.target, keyId, keyEpoch: epoch, identifier, helpers, groupKey: entries[0]!.groupKey };
    const d = await c.proposeDecision(JSON.stringify(action), a['ttl-ms']);
    out(a.json ? JSON.stringify({ ...d, bodyCbor: d.bodyCbor.toString('hex') }, null, 2) : [
      held === undefined ? `enrols ${a.target} in ${keyId} epoch ${epoch} under the new identifier ${identifier}` : `rebuilds the share of ${a.target} in ${keyId} epoch ${epoch} (identifier ${identifier})`,
      formatDecision(d),
    ].join('\n'));
  }),
};

export const adminShareCommand: Cmd<object> = {
  command: 'share <command>',
  describe: 'a kernel\'s key share: import one recovered from its backup (import), or have other holders rebuild it (repair)',
  builder: (y) => y.command(shareImport).command(shareRepair).demandCommand(1, 'name a share command: import, repair') as Argv<object>,
  handler: () => undefined,
};
