/**
 * Raft membership changes only from governance decisions: the node's ConfGuard
 * (raft/core/types.ts), judged by every replica against its own applied ledger.
 *
 * Threat. A hostile daemon holding one node's certificate and identity key, or a compromised
 * leader, sends or proposes a Raft configuration entry that no NodeAdded / NodeRemoved decision
 * asked for: add a node it controls, remove an honest voter, or promote a learner to voter. Raft
 * alone accepts any entry from the leader of the term (it tolerates crashes, not lies); a
 * configuration that gives a hostile party voters would let it decide what the ledger commits.
 * Trusted here: the approver quorum that signs decisions (ledger/apply.ts verifies them) and this
 * replica's own applied ledger. Not trusted: any peer, the leader included.
 *
 * Message flow (L = an entry in the replicated log; indexes are Raft indexes unless said):
 *   approvers   L GovernanceDecision{NodeAdded n4}, applied at ledger index X, cid C
 *   leader      with its whole log applied, checks L conf{addLearner n4, decision (X, C)} with
 *               this guard and appends it at Raft index i (raft.ts leaderPropose)
 *   follower    appends the entries before i; holds i back until it has applied i - 1 (the leader's
 *               heartbeat carries the commit index), then judges it with this guard against the
 *               ledger state just before i; accepts and acknowledges, or refuses: the entry is not
 *               appended, the refusal is counted (custody_raft_conf_changes_refused_total) and
 *               logged with CONF_CHANGE_UNAUTHORIZED, and the leader that sent it is not followed
 *               for the rest of its term (raft.ts isDistrusted)
 *   later       conf{addVoter n4, decision (X, C)} once n4 caught up; NodeRemoved n4 at (Y, D) and
 *               conf{remove n4, decision (Y, D)} take it out
 *
 * What a change must show (judgeConfChange), against the applied ledger and the configuration in
 * force just before the entry:
 *   - every change names a decision (ledger index and cid) that this replica applied, with that
 *     cid (only accepted decisions are kept: ledger-app.ts `decisions`, in snapshots too);
 *   - addLearner n: the decision is NodeAdded for n, the roster does not list n as removed, and n
 *     is not a voter (a replayed NodeAdded must not demote a voter);
 *   - addVoter n: the decision is NodeAdded for n, the roster lists n as active, and n is a learner
 *     of the configuration (learner first, then voter; a fenced node is not promoted);
 *   - remove n: the decision is NodeRemoved for n. A node the roster has never named may be removed
 *     without a decision: it holds no standing to protect, and no guarded change can have added it;
 *   - leaving a joint configuration needs no decision: it completes a change already judged.
 * Node ids are never reused (ledger/apply.ts validateNewNode), so a decision about n cannot be
 * replayed for another node of the same name.
 *
 * Safety argument. Every honest replica applies the same log, so it judges a change at i against
 * the same ledger state (the one after i - 1) and the same configuration: the verdict is the same
 * on every honest replica and on the honest leader that proposed it (which checked it against the
 * same state, its log then ending at i - 1). A change refused by the guard is appended by no honest
 * replica, so it never gathers a quorum while honest voters are a majority of every configuration;
 * by induction over the committed configurations (each one accepted by an honest quorum, hence by
 * this guard), every voter of every configuration is a genesis voter or a node whose NodeAdded
 * was applied while the roster listed it as active. Entries already in the log were judged when
 * appended, so the core's replay at restart needs no guard; a snapshot's configuration is kept as
 * it is (snapshots are certified apart).
 *
 * Progress: see raft.ts confHold. A change is held, not refused, while the entries before it are
 * not applied, so the decision, which precedes its change in the log, is always applied first.
 *
 * A leader removed by NodeRemoved hands leadership over first (plan.ts rule 3); the new leader
 * proposes the removal naming the same decision, and every replica judges it like any other. A
 * joint configuration is entered only by an entry whose every change passed, and left by an empty
 * change, which needs no decision of its own.
 */
import { decisionCid, decisionFromCbor, type DecisionAction } from '../../ledger/decision.js';
import { decode, toHex } from '../../ledger/encoding.js';
import { isVoter } from '../../raft/core/confchange.js';
import type { ConfChange, ConfChangeSingle, ConfGuard, ConfState, DecisionRef } from '../../raft/core/types.js';
import type { LedgerApp } from '../ledger-app.js';

/** The applied ledger as the guard reads it. */
export interface GovernedLedger {
  /** node id -> roster status; null before the genesis is applied. */
  readonly roster: Readonly<Record<string, 'active' | 'fenced' | 'removed'>> | null;
  /** The decision applied at this ledger index, if any. */
  decisionAt(index: number): { readonly cid: string; readonly action: DecisionAction } | null;
}

function describe(ch: ConfChangeSingle): string {
  return `${ch.type} ${ch.node}`;
}

/** Why the governed decisions do not allow `cc` on top of `conf`, or null when they do. */
export function judgeConfChange(cc: ConfChange, conf: ConfState, ledger: GovernedLedger): string | null {
  if (cc.changes.length === 0) return null;
  const roster = ledger.roster;
  if (roster === null) return 'the ledger has no genesis yet: no decision can ask for a membership change';
  for (const ch of cc.changes) {
    const status = Object.hasOwn(roster, ch.node) ? roster[ch.node] : undefined;
    const ref = ch.decision;
    if (ref === undefined) {
      if (ch.type === 'remove' && status === undefined) continue;
      return `${describe(ch)} names no governance decision`;
    }
    const d = ledger.decisionAt(ref.index);
    if (d === null) return `${describe(ch)} names ledger index ${ref.index}, where this replica applied no governance decision`;
    if (d.cid !== ref.cid) return `${describe(ch)} names decision ${ref.cid} at ledger index ${ref.index}, but the decision applied there is ${d.cid}`;
    const a = d.action;
    if (ch.type === 'remove') {
      if (a.kind !== 'NodeRemoved' || a.nodeId !== ch.node) return `${describe(ch)}: decision ${ref.cid} is ${a.kind}${'nodeId' in a ? ` ${a.nodeId}` : ''}, not NodeRemoved ${ch.node}`;
      continue;
    }
    if (a.kind !== 'NodeAdded' || a.node.id !== ch.node) return `${describe(ch)}: decision ${ref.cid} is ${a.kind}${a.kind === 'NodeAdded' ? ` ${a.node.id}` : ''}, not NodeAdded ${ch.node}`;
    if (ch.type === 'addLearner') {
      if (status === 'removed') return `${describe(ch)}: the roster lists ${ch.node} as removed`;
      if (isVoter(conf, ch.node)) return `${describe(ch)}: ${ch.node} is a voter; no decision demotes it`;
    } else {
      if (status !== 'active') return `${describe(ch)}: the roster lists ${ch.node} as ${status ?? 'unknown'}, not active`;
      if (!conf.learners.includes(ch.node)) return `${describe(ch)}: ${ch.node} is not a learner; a node becomes a voter only after joining as a learner`;
    }
  }
  return null;
}

/**
 * The decision that asks for `type` of `node` in the applied decisions (newest first): NodeAdded
 * for an add, NodeRemoved for a removal; null when there is none.
 */
export function governingDecision(decisions: readonly { readonly index: number; readonly decision: Uint8Array }[], type: ConfChangeSingle['type'], node: string): DecisionRef | null {
  for (let k = decisions.length - 1; k >= 0; k--) {
    const d = decisions[k] as { readonly index: number; readonly decision: Uint8Array };
    const g = decisionFromCbor(decode(d.decision));
    const a = g.body.action;
    const fits = type === 'remove' ? a.kind === 'NodeRemoved' && a.nodeId === node : a.kind === 'NodeAdded' && a.node.id === node;
    if (fits) return { index: d.index, cid: toHex(decisionCid(g.body)) };
  }
  return null;
}

/** The guarded ledger of a node: its LedgerApp's roster and applied decisions. */
export function ledgerView(app: LedgerApp): GovernedLedger {
  return {
    get roster() {
      const c = app.state.cluster;
      if (c === null) return null;
      const out: Record<string, 'active' | 'fenced' | 'removed'> = {};
      for (const n of Object.values(c.nodes)) out[n.id] = n.status;
      return out;
    },
    decisionAt(index: number) {
      const d = app.decisionsAfter(index - 1).find((x) => x.index === index);
      if (d === undefined) return null;
      const g = decisionFromCbor(decode(d.decision));
      return { cid: toHex(decisionCid(g.body)), action: g.body.action };
    },
  };
}

/**
 * The ConfGuard a ledger node gives its Raft driver. A refusal is logged with its reason code
 * (once per distinct refusal: the leader probes again every heartbeat) and counted by the core.
 */
export function governedConfGuard(app: LedgerApp, log: (line: string) => void): ConfGuard {
  const ledger = ledgerView(app);
  let last = '';
  return (cc, conf) => {
    const why = judgeConfChange(cc, conf, ledger);
    if (why !== null && why !== last) log(`membership: CONF_CHANGE_UNAUTHORIZED: ${why}`);
    last = why ?? '';
    return why;
  };
}
