/**
 * The kernel's own policy check: before any nonce commitment or share, the kernel judges the act
 * by the policy rules that need no history, under the policy in force as it follows governance
 * itself, and counts the approvals the matched rule requires from the approver signatures the act
 * carries. It runs the ledger's own pure policy code (ledger/policy-engine evaluate, and
 * ledger/admission.ts gatePolicy and admissionVerdict), fed with what the kernel knows; there is
 * no second policy engine.
 *
 * Message flow
 *   daemon -> kernel  sign { ..., certificate: [ActSubmitted entry, ActSigningSetFixed entry] }
 *                     The ActSubmitted event carries the act, the custodian's signed request and
 *                     the ActApproved decision its approvers signed (null when none): the approvals
 *                     travel inside the certified entry, bound into the act's submission by the
 *                     ledger (ledger/apply.ts submissionCid), so the sign request needs no field
 *                     of its own for them and a daemon cannot swap them after the fact.
 *   kernel            checkCertificate (kernel/certificate.ts), checkSubmittedAct
 *                     (kernel/act-check.ts: the request, the kernel's own parse -> TxFacts), then
 *                     checkActPolicy(event, facts, { era at the entry's ledger index, stamp }):
 *                       1. the era: the roster, governance epoch and act policy in force at the
 *                          ActSubmitted entry, as this kernel followed them (kernel/authority.ts:
 *                          the pinned genesis policy, then PolicyChanged / ApproversChanged from
 *                          decisions it verified; the last limits.kernel.policyErasMax eras kept).
 *                          None: KERNEL_POLICY_REFUSED.
 *                       2. verdict = evaluate(gatePolicy(policy, clock), facts, ctx at the entry's
 *                          stamp): first match, default deny, over the history-free part of every
 *                          rule. BLOCK or no rule: KERNEL_POLICY_REFUSED, the rule id and the
 *                          engine's code (POLICY_BLOCKED, POLICY_NO_RULE, ...) in the detail.
 *                       3. REQUIRE_APPROVAL(k, group, ttl): the act's ActApproved must verify
 *                          against the era's roster and governance epoch at the stamp
 *                          (ledger/decision.ts verifyDecision: every signature, no signer twice,
 *                          known approvers, the roster's quorum, not expired), approve exactly this
 *                          act (opId, actCid, parent, and the display digest of the kernel's own
 *                          parse), and carry k distinct members of the group, issued within the
 *                          rule's time to live before the stamp (admissionVerdict, the ledger's
 *                          count). Otherwise APPROVALS_MISSING, the cause in the detail.
 *
 * Which rules need no history (the classification; ledger/policy-engine/types.ts Matchers):
 *   history-free   kind, key, asset, initiator (ids and initiator groups), destination allow-
 *                  and deny-lists (ownKeys included), the per-act amount range, hours and weekdays
 *                  (read at the ActSubmitted entry's stamp, the ledger clock of the admission),
 *                  and every action: ALLOW, BLOCK, REQUIRE_APPROVAL(k of a group, ttl).
 *   history        rolling windows (amount and count per key, asset or initiator) and lifetime
 *                  caps: they read every earlier admission, which only the replicated ledger holds.
 * The kernel judges with gatePolicy(policy, true), the ledger's own reduction of a document to its
 * history-free part (the publication gate uses it too): windows and caps are dropped from every
 * rule, and a BLOCK rule that carried one is skipped (it blocks by rate, which the kernel cannot
 * see; keeping its other matchers would block every act like it at any rate).
 *
 * Safety argument. checkCertificate already proves that a majority of the voter nodes applied the
 * act's ActSubmitted and ActSigningSetFixed, so an honest majority admitted the act by the full
 * policy, history included. What this check adds holds even when that majority is not honest
 * (Raft tolerates crashes, not lies): whoever controls the daemons, however many, gets no share
 * for an act that
 *   - a history-free rule blocks, or that no rule's history-free part allows (default deny): the
 *     kernel evaluates the policy itself, on facts it parsed itself from the act's bytes;
 *   - a matched rule holds for approvals, unless k distinct members of that rule's group, keys on
 *     the roster this kernel verified, signed an approval of exactly this act, fresh at its stamp:
 *     the daemons hold no approver key, and an approval of another act, or signed twice by one
 *     approver, or by a key off the roster, or stale, does not count.
 * What still rests on the majority-certified ledger:
 *   - windows and caps (rates): a compromised majority could certify acts past a daily limit;
 *     each one still passes every per-act rule above, with its approvals. Where a document
 *     escalates ("ALLOW up to 2 BTC a day", then "REQUIRE_APPROVAL beyond"), the kernel, blind to
 *     the day's total, matches the ALLOW rule: the escalation is the ledger's;
 *   - the ledger clock: the kernel reads the entry's own stamp, which a majority certified (the
 *     ledger's clamp never runs it backwards, so on an honest ledger the stamp is at or before the
 *     clock the ledger judged by; time rules and approval freshness can differ from the ledger's
 *     only by that clamp);
 *   - governance the daemon withholds: the kernel can only be behind, never ahead or forged (each
 *     decision is approver-signed and chained). An act whose approval was signed under a newer
 *     governance epoch than the kernel knows fails verifyDecision (STALE_EPOCH), so withholding a
 *     policy change only leaves the kernel on an older policy that the approvers themselves set.
 * Our own addresses: the kernel knows the group keys of the keys it holds a share of, not the
 * others' (it does not follow their DKG), so change to another of the cluster's keys counts as a
 * payment and `ownKeys` admits only keys this kernel holds: the kernel can only refuse more than
 * the ledger there, never less, for a document whose amount and destination rules grow stricter
 * with what an act pays.
 *
 * Pure: no clock, no I/O.
 */
import { CustodyError } from '../proto/errors.js';
import { kernel as limits } from '../proto/limits.js';
import { bytesEqual, fromHex } from '../ledger/encoding.js';
import { verifyDecision } from '../ledger/decision.js';
import { actCid, type LedgerEvent } from '../ledger/events.js';
import { LEDGER_ASSETS } from '../ledger/asset-table.js';
import { admissionVerdict, gatePolicy, keyAddress } from '../ledger/admission.js';
import { decodeDocument, emptyHistory, evaluate, type ActionKind, type PolicyDocument } from '../ledger/policy-engine/index.js';
import type { KeyContext, TxFacts } from '../ledger/tx/types.js';
import { rosterFromJson, type RosterJson } from './authority.js';

export type ActSubmittedEvent = Extract<LedgerEvent, { type: 'ActSubmitted' }>;

/** What governance had in force from one ledger index on, as the kernel followed it. */
export interface PolicyEra {
  /** The ledger index of the decision that opened the era (0: the pinned genesis). */
  fromIndex: number;
  governanceEpoch: number;
  roster: RosterJson;
  /** The act policy, hex of its canonical CBOR (ledger/policy-engine/yaml.ts encodeDocument). */
  policy: string;
}

/** The era in force at ledger index `index`: the last opened before it; undefined when none is kept. */
export function eraAt(eras: readonly PolicyEra[] | undefined, index: number): PolicyEra | undefined {
  if (eras === undefined || eras.length === 0 || index <= (eras[0] as PolicyEra).fromIndex) return undefined;
  for (let i = eras.length - 1; i >= 0; i--) if ((eras[i] as PolicyEra).fromIndex < index) return eras[i];
  return undefined;
}

/** `eras` with `era` appended, the oldest dropped beyond limits.kernel.policyErasMax. */
export function withEra(eras: readonly PolicyEra[] | undefined, era: PolicyEra): PolicyEra[] {
  return [...(eras ?? []), era].slice(-limits.policyErasMax);
}

/** Decoded documents by their hex (a document is immutable and has one encoding). */
const decoded = new Map<string, PolicyDocument>();
const DECODED_MAX = 32;

/** The document of a policy hex; a malformed one is CONFIG_INVALID (it was checked when followed). */
export function policyOf(hex: string): PolicyDocument {
  const hit = decoded.get(hex);
  if (hit !== undefined) return hit;
  let doc: PolicyDocument;
  try {
    doc = decodeDocument(fromHex(hex), LEDGER_ASSETS);
  } catch (e) {
    throw new CustodyError('CONFIG_INVALID', `act policy: ${(e as Error).message}`, { cause: e });
  }
  if (decoded.size >= DECODED_MAX) decoded.clear();
  decoded.set(hex, doc);
  return doc;
}

/** The addresses of `keys` on their networks (those that have one): what "our own" means to the kernel. */
export function ownAddressesOf(keys: Iterable<KeyContext>): Set<string> {
  const out = new Set<string>();
  for (const k of keys) {
    const a = keyAddress(k);
    if (a !== null) out.add(a);
  }
  return out;
}

export interface PolicyCheckContext {
  readonly clusterId: string;
  /** The era at the ActSubmitted entry's ledger index (eraAt); undefined: refused. */
  readonly era: PolicyEra | undefined;
  /** The ActSubmitted entry's ledger index (for the refusal's detail). */
  readonly index: number;
  /** The ActSubmitted entry's stamp: the ledger clock time rules and approvals are judged at. */
  readonly stampMs: number;
  /** Addresses of the keys this kernel holds (ownAddressesOf). */
  readonly ownAddresses: ReadonlySet<string>;
}

export interface PolicyCheck {
  readonly ruleId: string | null;
  readonly action: ActionKind;
  /** The group members whose approvals counted (empty unless the rule asked for approvals). */
  readonly approvers: readonly string[];
  readonly detail: string;
}

const refused = (detail: string): never => {
  throw new CustodyError('KERNEL_POLICY_REFUSED', detail);
};

/**
 * Judges the act of `event`, whose transaction the kernel parsed into `facts`, by the history-free
 * rules of the era's policy and the approvals its matched rule requires. Returns the verdict;
 * throws KERNEL_POLICY_REFUSED or APPROVALS_MISSING.
 */
export function checkActPolicy(event: ActSubmittedEvent, facts: TxFacts, ctx: PolicyCheckContext): PolicyCheck {
  const era = ctx.era;
  if (era === undefined) return refused(`this kernel follows no act policy in force at ledger index ${ctx.index} (none pinned at genesis, or the act predates the ${limits.policyErasMax} governance eras it keeps)`);
  const policy = policyOf(era.policy);
  const gate = gatePolicy(policy, true);
  const act = event.act;
  const v = evaluate(gate, facts, { initiator: act.initiator, keyId: act.keyId, nowMs: ctx.stampMs, history: emptyHistory(gate), ownAddresses: ctx.ownAddresses, assets: LEDGER_ASSETS });
  if (v.action === 'BLOCK') return refused(`${v.ruleId === null ? 'no rule' : `rule ${v.ruleId}`} (${v.reason as string}) of governance epoch ${era.governanceEpoch}: ${v.detail}`);
  if (v.action === 'ALLOW') return { ruleId: v.ruleId, action: 'ALLOW', approvers: [], detail: v.detail };
  const need = v.approvals as { k: number; group: string; ttlMs: number };
  const rule = `rule ${v.ruleId as string} needs ${need.k} approvals of ${need.group}`;
  const missing = (why: string): never => {
    throw new CustodyError('APPROVALS_MISSING', `${rule}: ${why}`);
  };
  const approval = event.approval;
  if (approval === null) return missing('the act carries no approval');
  const verdict = verifyDecision(approval, rosterFromJson(era.roster), ctx.clusterId, era.governanceEpoch, ctx.stampMs);
  if (!verdict.ok) return missing(`its approval does not verify (${verdict.reason}: ${verdict.detail})`);
  const a = approval.body.action;
  const cid = actCid(act);
  if (a.kind !== 'ActApproved' || a.opId !== event.opId || !bytesEqual(a.actCid, cid) || !bytesEqual(approval.body.parentCid, cid)) {
    return missing(`its approval does not approve this act (BINDING_MISMATCH: ${a.kind}${a.kind === 'ActApproved' ? ` of ${a.opId}` : ''})`);
  }
  if (!bytesEqual(a.displayHash, facts.displayHash)) return missing('its approval was signed over another display than the transaction\'s (BINDING_MISMATCH)');
  const counted = admissionVerdict(policy, v, {
    opId: event.opId, initiator: act.initiator, keyId: act.keyId, facts, approvers: verdict.approvers,
    approvedAtMs: approval.body.issuedMs, nowMs: ctx.stampMs,
  });
  if (!counted.allowed) return missing(counted.detail);
  return { ruleId: v.ruleId, action: 'REQUIRE_APPROVAL', approvers: [...verdict.approvers], detail: counted.detail };
}
