/**
 * The whole-node workload: a real ledger history, proposed through the drivers as the daemon's
 * clients do. ledger/scenario.ts builds it once per roster size — the genesis (node roster with
 * identity keys, approvers, policy), a threshold key through its governance decisions and
 * ceremony, then signing acts through their journal (submitted, permitted, signing set fixed,
 * executed, published, settled) — and the simulator proposes its entries in order, each stamped
 * as the script stamped it (node/ledger-app.ts command format).
 *
 * The node identities of the script are the simulated nodes' identities: the rollback gate's
 * signed votes and leader announcements (equivocation.ts) are signed and checked with them.
 */
import { ScriptedCluster } from '../../../ledger/scenario.js';
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
  for (let i = 0; i < ACTS; i++) {
    const op = `op-${i}`;
    // An act the policy refuses ends in its one entry (Denied) and goes to the archive: acts that
    // end whatever the ledger indexes are, so the archive grows and snapshot installs fetch it.
    s.submit(`denied-${i}`, s.act('k1', { destination: 'bc1-evil' }));
    s.submit(op, s.act('k1'));
    s.issuePermit(op);
    s.execute(op);
    s.publish(op);
    s.settle(op);
  }
  const refused = s.results.filter((r) => !r.ok && !(r.reason === 'POLICY_NO_RULE' && r.applied));
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
