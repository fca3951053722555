/**
 * The admin API's view of the act policy: the document in force (GetPolicy) and a dry run of
 * admission against the node's ledger as it stands (TestPolicy). Both only read: a dry run parses
 * the transaction exactly as apply would (the key's context, the ledger's asset table) and asks the
 * same seam apply asks (ledger/admission.ts), but records nothing.
 */
import { CustodyError } from '../../proto/errors.js';
import { tx as txLimits } from '../../proto/limits.js';
import { explainAdmission, assetTable } from '../../ledger/admission.js';
import { keyContextOf } from '../../ledger/state.js';
import { toHex } from '../../ledger/encoding.js';
import { encodeDocument, renderPolicyYaml, type Explanation } from '../../ledger/policy-engine/index.js';
import type { LedgerState } from '../../ledger/state.js';
import { parseTransaction } from '../../ledger/tx/parse.js';
import { TX_KINDS, type TxKind } from '../../ledger/tx/types.js';
import { requireAction, type Operator } from './roles.js';

export interface PolicyReply {
  readonly yaml: string;
  readonly documentCbor: Buffer;
  readonly governanceEpoch: number;
  readonly governanceHead: string;
}

export interface PolicyTestReply {
  readonly allowed: boolean;
  readonly reason: string;
  readonly ruleId: string;
  readonly detail: string;
  /** Rule by rule, matcher by matcher: what `explain` found. */
  readonly explanation: string;
  /** The transaction's facts as an approver would be shown them. */
  readonly display: string;
  /** The ledger clock the dry run judged at (ms since the epoch, UTC). */
  readonly atMs: number;
}

function clusterOf(s: LedgerState): NonNullable<LedgerState['cluster']> {
  if (s.cluster === null) throw new CustodyError('GENESIS_MISSING', 'the cluster has no genesis yet');
  return s.cluster;
}

export function policyReply(caller: Operator, s: LedgerState): PolicyReply {
  requireAction(caller, 'read', 'read the act policy');
  const c = clusterOf(s);
  const p = c.governance.policy;
  return { yaml: renderPolicyYaml(p, assetTable(c)), documentCbor: Buffer.from(encodeDocument(p)), governanceEpoch: c.governance.epoch, governanceHead: toHex(c.governance.headCid) };
}

/** The explanation as text: one line per rule, one indented line per matcher. */
export function explanationText(x: Explanation): string {
  const lines: string[] = [];
  for (const r of x.rules) {
    lines.push(`rule ${r.ruleId}: ${r.outcome === 'matched' ? 'MATCHED' : r.outcome === 'after' ? 'after the match (not consulted)' : 'does not match'}`);
    if (r.matchers.length === 0) lines.push('    (no matchers: matches every act but raw ones)');
    for (const m of r.matchers) lines.push(`    ${m.holds ? 'holds ' : 'FAILS '} ${m.matcher}: ${m.detail}`);
  }
  if (x.rules.length === 0) lines.push('(the policy has no rules, or the act was refused before any rule)');
  return lines.join('\n');
}

/**
 * What admission would answer for this transaction if it were submitted now by `initiator`
 * (default: the caller) without approvals: judged at the later of the ledger clock and `nowMs`
 * (the stamp a new entry would carry), against the policy and history in force.
 */
export function testPolicy(caller: Operator, s: LedgerState, req: { keyId: string; kind: string; tx: Uint8Array; initiator: string }, nowMs: number): PolicyTestReply {
  requireAction(caller, 'read', 'test the act policy');
  const c = clusterOf(s);
  if (!(TX_KINDS as readonly string[]).includes(req.kind)) throw new CustodyError('INVALID_ARGUMENT', `kind must be one of ${TX_KINDS.join(', ')}`);
  if (req.tx.length === 0) throw new CustodyError('INVALID_ARGUMENT', 'tx is required');
  const most = Math.max(txLimits.psbtBytesMax, txLimits.solanaMessageBytesMax, txLimits.rawBytesMax);
  if (req.tx.length > most) throw new CustodyError('LIMIT_EXCEEDED', `tx of ${req.tx.length} bytes exceeds ${most}`);
  const key = keyContextOf(c, req.keyId);
  if (key === null) throw new CustodyError('UNKNOWN_KEY', `no key ${req.keyId} with a group key on this ledger`);
  const facts = parseTransaction(req.kind as TxKind, req.tx, key, assetTable(c));
  const atMs = Math.max(s.clockMs, nowMs);
  const { verdict, explanation } = explainAdmission(c, { opId: 'policy-test', initiator: req.initiator === '' ? caller.id : req.initiator, keyId: req.keyId, facts, approvers: [], approvedAtMs: null, nowMs: atMs });
  return {
    allowed: verdict.allowed, reason: verdict.reason ?? '', ruleId: verdict.ruleId ?? '', detail: verdict.detail,
    explanation: explanationText(explanation), display: facts.display, atMs,
  };
}
