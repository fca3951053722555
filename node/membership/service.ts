/**
 * The Membership admin service (proto/admin.proto): the membership view of reconciler.ts and
 * leadership transfer. Same port, mutual TLS and refusal rules as the Admin service (server.ts).
 */
import type * as grpc from '@grpc/grpc-js';
import { CustodyError } from '../../proto/errors.js';
import { membership as limits } from '../../proto/limits.js';
import { isVoter } from '../../raft/core/confchange.js';
import type { Driver } from '../../raft/driver.js';
import { unary } from '../admin/server.js';
import { requireAction } from '../admin/roles.js';
import { isLive } from './plan.js';
import type { MembershipReconciler, MembershipView } from './reconciler.js';

export function membersReply(v: MembershipView) {
  return {
    nodeId: v.self, leader: v.leader ?? '', isLeader: v.isLeader, voters: v.voters, failureTolerance: v.failureTolerance, liveMargin: v.liveMargin,
    members: v.members.map((m) => ({ id: m.id, raft: m.raft, roster: m.roster, leader: m.leader, match: m.match, lag: m.lag, lastContactAgoMs: m.lastContactAgoMs, live: m.live })),
    step: `${v.step.kind}: ${v.step.why}`, unexplained: [...v.unexplained],
  };
}

/** The voter a transfer goes to: `to` if given and valid, else the live voter with the highest match index. */
export function transferTarget(driver: Pick<Driver, 'status' | 'peerContacts' | 'nowMs'>, to: string): string {
  const s = driver.status();
  if (s.leader === null) throw new CustodyError('NOT_LEADER', 'no leader is known: there is no leadership to transfer');
  if (to !== '') {
    if (!isVoter(s.conf, to)) throw new CustodyError('UNKNOWN_NODE', `${to} is not a voter (voters: ${s.conf.voters.join(', ')})`);
    if (to === s.leader) throw new CustodyError('INVALID_ARGUMENT', `${to} already leads`);
    return to;
  }
  const contacts = driver.peerContacts();
  const now = driver.nowMs();
  const peers = Object.fromEntries(Object.entries(s.progress ?? {}).map(([id, p]) => [id, { match: p.match, lastContactMs: contacts[id] ?? null }]));
  const candidates = s.conf.voters.filter((v) => v !== s.leader && (s.progress === null || isLive({ self: s.id, peers, nowMs: now }, v)));
  candidates.sort((a, b) => (peers[b]?.match ?? 0) - (peers[a]?.match ?? 0) || (a < b ? -1 : 1));
  const best = candidates[0];
  if (best === undefined) throw new CustodyError('INVALID_ARGUMENT', 'no other live voter to hand leadership to');
  return best;
}

export function membershipHandlers(reconciler: MembershipReconciler, driver: Driver): grpc.UntypedServiceImplementation {
  type R = Record<string, unknown>;
  return {
    ListMembers: unary<R, unknown>((op) => {
      requireAction(op, 'read', 'read the membership');
      return membersReply(reconciler.view());
    }),
    TransferLeader: unary<R, unknown>(async (op, r) => {
      requireAction(op, 'transfer-leader', 'transfer leadership');
      const want = typeof r.to === 'string' ? r.to : '';
      if (Buffer.byteLength(want) > 128) throw new CustodyError('LIMIT_EXCEEDED', 'to exceeds 128 bytes');
      const from = driver.status().leader as string;
      const to = transferTarget(driver, want);
      driver.transferLeadership(to);
      const end = Date.now() + limits.transferWaitMs;
      while (driver.status().leader !== to) {
        if (Date.now() > end) throw new CustodyError('REMOTE_TIMEOUT', `${to} did not take over within ${limits.transferWaitMs} ms (leader now: ${driver.status().leader ?? 'none'}); it may be behind or unreachable`);
        await new Promise((res) => setTimeout(res, 50));
      }
      return { from, to, leader: to };
    }),
  };
}
