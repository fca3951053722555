/**
 * The whole-node workload: a real ledger history, proposed through the drivers as the daemon's
 * clients do. ledger/scenario.ts builds it once per roster size — the genesis (node roster with
 * identity keys, approvers, policy), two threshold keys (an Ed25519 key on solana-devnet and a
 * Taproot key on bitcoin-regtest) through their governance decisions and ceremonies, then signing
 * acts over real transactions through their journal (submitted, permitted, signing set fixed,
 * executed, published, settled): Solana transfers, and every eighth act a two-input Taproot PSBT
 * with change (two messages: two nonce pairs per signer, two signatures). Between them, acts every
 * node must record Denied on its own parse: a destination off the allow-list, a raw message, an
 * act declaring another amount than its transaction pays, a message paid for by another key.
 * The simulator proposes the entries in order, each stamped as the script stamped it
 * (node/ledger-app.ts command format).
 *
 * The node identities of the script are the simulated nodes' identities: the rollback gate's
 * signed votes and leader announcements (equivocation.ts) are signed and checked with them.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { ScriptedCluster, seedOf, solanaAddressOf, solanaTransferMessage } from '../../../ledger/scenario.js';
import { encodeLedgerCommand } from '../../../node/ledger-app.js';
import type { NodeIdentity } from '../../../node/splitbrain/node-guard.js';

/** Signing acts in the script after the genesis and the key (each is six ledger entries, after one act refused by policy). */
const ACTS = 40;

export interface Workload {
  readonly clusterId: string;
  readonly ids: readonly string[];
  /** Ledger commands, in the order they must be applied to be accepted. */
  readonly commands: readonly Uint8Array[];
  identity(id: string): NodeIdentity;
}

const cache = new Map<number, Workload>();

export function workloadFor(nodes: number): Workload {
  const had = cache.get(nodes);
  if (had) return had;
  const s = new ScriptedCluster({ nodes, label: 'whole-node-sim' });
  s.genesis();
  s.createKey('k1');
  s.createKey('k2', undefined, 2, { scheme: 'taproot' });
  const stranger = ed25519.getPublicKey(seedOf('whole-node-sim/stranger'));
  for (let i = 0; i < ACTS; i++) {
    const op = `op-${i}`;
    // An act refused ends in its one entry (Denied) and goes to the archive: acts that end
    // whatever the ledger indexes are, so the archive grows and snapshot installs fetch it.
    const denied = [
      () => s.act('k1', { destination: 'bc1-evil' }),
      () => s.act('k1', { kind: 'raw' }),
      () => s.act('k1', { amount: 500n }, { amount: 5n }),
      () => s.act('k1', { tx: solanaTransferMessage(stranger, [{ to: solanaAddressOf('bc1-treasury'), lamports: 100n }]) }),
    ][i % 4] as () => ReturnType<typeof s.act>;
    s.submit(`denied-${i}`, denied());
    s.submit(op, i % 8 === 7 ? s.act('k2', { amount: 1_000n + BigInt(i), inputs: [20_000n, 30_000n + BigInt(i)] }) : s.act('k1', { amount: 100n + BigInt(i) }));
    s.issuePermit(op);
    s.execute(op);
    s.publish(op);
    s.settle(op);
  }
  const refused = s.results.filter((r) => !r.ok && !(r.applied && r.opState === 'Denied'));
  if (refused.length > 0) throw new Error(`the whole-node workload script is invalid: ${refused.length} entries refused`);
  const keys = new Map(s.nodes.map((n) => [n.info.id, n]));
  const w: Workload = {
    clusterId: s.clusterId,
    ids: s.nodes.map((n) => n.info.id),
    commands: s.log.map((e) => encodeLedgerCommand(e.stampMs, e.event)),
    identity: (id) => ({
      clusterId: s.clusterId,
      secretKey: (keys.get(id) ?? (() => { throw new Error(`no scripted node ${id}`); })()).secretKey,
      publicKey: (other) => keys.get(other)?.info.identityKey,
    }),
  };
  cache.set(nodes, w);
  return w;
}
