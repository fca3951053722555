/**
 * `custody admin member list | add | remove` and `custody admin leader transfer`: cluster
 * membership for operators. Adding and removing a node is a governance decision (NodeAdded /
 * NodeRemoved) that approvers approve like any other; once the ledger applies it, the leader
 * changes the Raft configuration to follow (node/membership/). `member list` and `status` show how
 * far that has come.
 */
import * as grpc from '@grpc/grpc-js';
import { CustodyError } from '../../proto/errors.js';
import type { AdminClient } from '../admin/client.js';
import { type Cmd, type Conn, client, connOptions, out, run } from './admin.js';

export interface MembersReply {
  nodeId: string; leader: string; isLeader: boolean; voters: number; failureTolerance: number; liveMargin: number;
  members: { id: string; raft: string; roster: string; leader: boolean; match: number; lag: number; lastContactAgoMs: number; live: boolean }[];
  step: string; unexplained: string[];
}

/** The Membership service of the node `a` names, with the same credentials. */
export async function membershipOf(_c: AdminClient, a: Conn): Promise<MembersReply> {
  const m = client(a, 'Membership');
  try {
    return await m.call<MembersReply>('ListMembers', {});
  } finally {
    m.close();
  }
}

/** As membershipOf, or null from a node that does not serve the Membership service (an in-process demo node). */
async function membershipIfServed(c: AdminClient, a: Conn): Promise<MembersReply | null> {
  try {
    return await membershipOf(c, a);
  } catch (e) {
    if ((e as { cause?: { code?: unknown } }).cause?.code === grpc.status.UNIMPLEMENTED) return null;
    throw e;
  }
}

function contact(ms: number): string {
  if (ms < 0) return 'never';
  return ms < 1000 ? `${ms} ms ago` : `${(ms / 1000).toFixed(1)} s ago`;
}

export function formatMembership(m: MembersReply): string[] {
  const lines = [
    `membership: ${m.voters} voters, tolerates ${m.failureTolerance} failed voter${m.failureTolerance === 1 ? '' : 's'}${m.isLeader ? `; live voters beyond a quorum now: ${m.liveMargin}` : ` (lag and contact are known on the leader, ${m.leader || 'unknown'})`}`,
  ];
  for (const x of m.members) {
    const detail = m.isLeader ? `, match ${x.match}, lag ${x.lag}, last contact ${contact(x.lastContactAgoMs)}${x.live ? '' : ', NOT LIVE'}` : '';
    lines.push(`  ${x.id}: ${x.raft}${x.leader ? ' (leader)' : ''}, roster ${x.roster}${detail}`);
  }
  lines.push(`  next: ${m.step}`);
  if (m.unexplained.length > 0) lines.push(`  WARNING: the Raft configuration names ${m.unexplained.join(', ')}, which no applied decision put on the roster`);
  return lines;
}

/** The membership lines of `custody admin status`. */
export async function printMembership(c: AdminClient, a: Conn): Promise<void> {
  const m = await membershipIfServed(c, a);
  if (m === null) return out('membership: not served by this node');
  for (const l of formatMembership(m)) out(l);
}

/** The membership part of `custody admin status --json` (null where not served). */
export function membershipJson(c: AdminClient, a: Conn): Promise<MembersReply | null> {
  return membershipIfServed(c, a);
}

const list: Cmd<Conn> = {
  command: 'list',
  describe: 'every node on the roster or in the Raft configuration: voter or learner, roster status, and (asked of the leader) match index, lag and last contact',
  builder: (y) => connOptions(y),
  handler: run(async (c, a) => {
    const m = await membershipOf(c, a);
    if (a.json) return out(JSON.stringify(m, null, 2));
    for (const l of formatMembership(m)) out(l);
  }),
};

const add: Cmd<Conn & { id: string; 'identity-key': string; passport: string }> = {
  command: 'add',
  describe: 'propose a NodeAdded decision. Once approvers approve it and the ledger applies it, the leader adds the node to Raft as a learner; the node catches up (by snapshot when needed) and is promoted to voter once caught up. Start the new node with the cluster\'s genesis and lifecycle configuration.',
  builder: (y) => connOptions(y)
    .option('id', { type: 'string', demandOption: true, describe: 'the new node\'s id (the CN of its node certificate)' })
    .option('identity-key', { type: 'string', demandOption: true, describe: 'hex of the node\'s 32-byte Ed25519 identity public key (it signs the node\'s statements)' })
    .option('passport', { type: 'string', default: '', describe: 'the node\'s first passport (default <id>-p1)' })
    .example('$0 admin member add --id n4 --identity-key 3b6a27bc... --node 127.0.0.1:7201 --node-id n1 --certs certs --as alice', 'then: custody admin decision approve --cid <cid> ... by each approver'),
  handler: run(async (c, a) => {
    if (!/^[0-9a-f]{64}$/i.test(a['identity-key'])) throw new CustodyError('INVALID_ARGUMENT', '--identity-key must be 64 hex digits (a 32-byte Ed25519 public key)');
    const node = { id: a.id, identityKey: a['identity-key'].toLowerCase(), passport: a.passport || `${a.id}-p1` };
    const d = await c.proposeDecision(JSON.stringify({ kind: 'NodeAdded', node }));
    if (a.json) return out(JSON.stringify({ ...d, bodyCbor: d.bodyCbor.toString('hex') }, null, 2));
    out(`decision ${d.cid}: NodeAdded ${a.id}, ${d.approvals.length} of ${d.needed} approvals`);
    out(`approvers: custody admin decision approve --cid ${d.cid} --key-file <approver key> (same connection options)`);
  }),
};

const remove: Cmd<Conn & { id: string }> = {
  command: 'remove',
  describe: 'propose a NodeRemoved decision. Once approved and applied, the leader removes the node from Raft (a leader that is removed hands leadership over first); a removal that would leave fewer live voters than a quorum waits until enough are back. The node\'s kernel takes no further part.',
  builder: (y) => connOptions(y).option('id', { type: 'string', demandOption: true, describe: 'the node to remove' }),
  handler: run(async (c, a) => {
    const s = await c.status();
    const n = s.nodes.find((x) => x.id === a.id);
    if (n === undefined || n.status === 'removed') throw new CustodyError('UNKNOWN_NODE', `${a.id} is not an active node on the roster (${s.nodes.filter((x) => x.status !== 'removed').map((x) => x.id).join(', ')})`);
    const m = await membershipOf(c, a);
    const d = await c.proposeDecision(JSON.stringify({ kind: 'NodeRemoved', nodeId: a.id }));
    if (a.json) return out(JSON.stringify({ ...d, bodyCbor: d.bodyCbor.toString('hex') }, null, 2));
    out(`decision ${d.cid}: NodeRemoved ${a.id}, ${d.approvals.length} of ${d.needed} approvals`);
    const voter = m.members.find((x) => x.id === a.id)?.raft === 'voter';
    if (voter) out(`after it: ${m.voters - 1} voters, tolerating ${Math.floor((m.voters - 2) / 2)} failed voter(s)`);
    out(`approvers: custody admin decision approve --cid ${d.cid} --key-file <approver key> (same connection options)`);
  }),
};

export const memberCommand: Cmd<object> = {
  command: 'member <action>',
  describe: 'cluster membership by governance: list, add (NodeAdded), remove (NodeRemoved)',
  builder: (y) => y.command(list).command(add).command(remove).demandCommand(1, 'name a member action'),
  handler: () => undefined,
};

const transfer: Cmd<Conn & { to: string }> = {
  command: 'transfer',
  describe: 'hand Raft leadership to another voter (approver role), e.g. before maintenance of the leader\'s host; waits until the new leader leads',
  builder: (y) => connOptions(y).option('to', { type: 'string', default: '', describe: 'the voter to lead (default: the most caught-up live voter)' }),
  handler: run(async (_c, a) => {
    const m = client(a, 'Membership');
    try {
      const r = await m.call<{ from: string; to: string; leader: string }>('TransferLeader', { to: a.to }, 30_000);
      out(a.json ? JSON.stringify(r) : `leadership moved from ${r.from} to ${r.leader}`);
    } finally {
      m.close();
    }
  }),
};

export const leaderCommand: Cmd<object> = {
  command: 'leader <action>',
  describe: 'Raft leadership: transfer',
  builder: (y) => y.command(transfer).demandCommand(1, 'name a leader action'),
  handler: () => undefined,
};
