/**
 * Proven evidence bundles (format custody-ledger/evidence/v2): an act's evidence whose every
 * claim rests on ledger entries proven, by RFC 9162 inclusion proofs, to be in a checkpoint that a
 * quorum of the cluster's node keys cosigned (C2SP tlog-checkpoint, cosignature/v1). An auditor
 * needs only the cluster's trust policy (ledger/tlog/trust-policy.ts) to check one offline: a
 * bundle vouches for nothing by itself.
 *
 * Format: the v1 bundle's fields (node/lifecycle/evidence.ts, ledger/receipts.ts), with
 *   "format": "custody-ledger/evidence/v2",
 *   "outcome": { "state": OpState, "reason": ReasonCode | null, "rule": RuleRecord | null },
 *   "log": {
 *     "checkpoint": "<the cosigned checkpoint note, verbatim>",
 *     "entries": [ { "leafIndex": n, "data": "<hex leaf data>", "proof": ["<base64 hash>", ...] }, ... ],
 *     "consistency"?: { "size": m, "proof": ["<base64 hash>", ...] }
 *   }
 * Leaf data is ledger-log.ts entryLeafData: canonical CBOR { index, stampMs, event }. Entries are
 * listed in ledger order: the entry that set the approver roster in force (ClusterGenesis or an
 * ApproversChanged decision), the key's KeyObjectPublished and its activation decision
 * (KeyActivated, KeyRefreshed or KeyReshared for the act's key epoch), then the act's own entries
 * (ActSubmitted with the custodian's signed request and the approval, ActPermitIssued,
 * ActSigningSetFixed, ActExecuted once published, ActPublished, ActSettled, ActAborted, and a
 * Denied act's ActDenialRecorded).
 * `consistency`, when present, is an RFC 9162 consistency proof from the tree of `size` leaves to
 * the checkpoint's: what lets an auditor holding an older bundle check that both checkpoints lie
 * on one append-only history (verifyConsistentBundles).
 *
 *   "statement": "<signed note by the exporting node: STATEMENT_HEADER, sha256 of the rest>"
 * The file is the bundle's one text form: two-space indented JSON and a final newline
 * (provenBundleText; verifyProvenText refuses any other).
 *
 * What verifyProvenBundle checks, in order (the first failure is the verdict):
 *   1. the checkpoint: certified by a quorum of the policy's node keys, of the policy's origin,
 *      which must be this cluster's (checkpointOrigin(clusterId)); the policy's witness quorum;
 *      the statement: signed by a node key of the policy, over the digest of the bundle's other
 *      fields (so every byte of the bundle is vouched for by at least one node of the policy);
 *   2. each entry: its leaf is at `leafIndex` under the checkpoint's root; its data decodes to one
 *      ledger event; ledger indexes and leaf indexes both increase along the list;
 *   3. the act: exactly one ActSubmitted of the bundle's opId; the bundle's act, request and
 *      approval are exactly its (byte for byte, canonical CBOR);
 *   4. the roster: exactly one roster entry, before the act; the bundle's roster is exactly the
 *      one it set; the custodian's request verifies under it (ledger/act-request-check.ts), and
 *      an admitted act's approval approves exactly this act and its approver signatures, roles
 *      and quorum verify under it (decision.ts verifyDecision, at the approval's own governance
 *      epoch and issue time; a Denied act's verdict says whether its approval held);
 *   5. the key's authority: for an act that was admitted, a KeyObjectPublished and an activation
 *      decision of the act's key and epoch, both before the act (KeyActivated naming the
 *      published keyReadyCid);
 *   6. the receipts: each is bound to the included entry it was produced by (AdmissionReceipt to
 *      ActSubmitted, PermitReceipt to ActPermitIssued, PublicationReceipt to ActPublished): same
 *      ledger index, stamp and event cid; the v1 chain checks (prev links, act cid, key, rule);
 *      the PublicationReceipt's signature digest is that of the included ActExecuted's signatures,
 *      which must be the signature block's, and the block verifies (evidence.ts);
 *   7. the outcome: Published / Settled need ActPublished (and ActSettled); Aborted needs the
 *      ActAborted entry, whose reason code is the outcome's (or, for EQUIVOCATION, the
 *      EquivocationEvidence entry that aborted it); Denied needs no receipt and no later entry
 *      of the act but at most its ActDenialRecorded, whose reason code and rule digest must be
 *      the outcome's.
 *
 * Trust. The policy's node keys, through the quorum, vouch for the checkpoint; the checkpoint's
 * root vouches for the entries; everything else is recomputed from the entries, except what the
 * statement alone covers: the exporting node's word for the explanation texts (a rule's detail)
 * and the fields below. What remains the cluster majority's word (the nodes that cosigned), or
 * for a Denied act without a denial record the exporting node's: that the roster entry is the last
 * roster change before the act (the ledger applied the act's request and approval against the
 * roster in force), the policy verdict of a Denied act whose ActDenialRecorded the bundle lacks
 * (the node that took the submission enters one right after it; the ledger accepts it only as its
 * own recorded verdict, so when it is included the verdict is the cosigning majority's word), and
 * the fields a receipt
 * derives from ledger state (rule id, governance epoch). A cosigning majority that lies about
 * these is the threat witnesses answer (C2SP tlog-witness), not this verifier.
 */
import { createHash } from 'node:crypto';
import { CustodyError, isCustodyError } from '../../proto/errors.js';
import { tlog as limits } from '../../proto/limits.js';
import type { ReasonCode } from '../../proto/reasons.js';
import { bytesEqual, decode, encode, fromHex, toHex, type CborValue } from '../../ledger/encoding.js';
import { actCid, decodeEvent, eventCid, actToCbor, type LedgerEvent, type LedgerEntry } from '../../ledger/events.js';
import { actRequestToCbor } from '../../ledger/act-request.js';
import { verifyActRequest } from '../../ledger/act-request-check.js';
import { decisionToCbor, rosterToCbor, verifyDecision, type ApproverRoster } from '../../ledger/decision.js';
import { artifactDigest, denialRuleDigest } from '../../ledger/apply.js';
import { verifyEvidenceBundle } from '../../ledger/receipts.js';
import { ruleFromCbor, ruleToCbor, type OpState, type RuleRecord } from '../../ledger/state.js';
import { certified, requireExtends, requireIncluded, type Checkpoint } from '../../ledger/tlog/checkpoint.js';
import { HASH_BYTES, leafHash } from '../../ledger/tlog/merkle.js';
import { decodeBase64Strict, encodeBase64, openNote } from '../../ledger/tlog/note.js';
import { checkpointOrigin, entryLeafData } from '../../ledger/tlog/ledger-log.js';
import { policyTrust, requireWitnesses, type TrustPolicy } from '../../ledger/tlog/trust-policy.js';
import { verifyBundleSignature, type Bundle } from './evidence.js';

export const PROVEN_BUNDLE_FORMAT = 'custody-ledger/evidence/v2';

export interface ProvenEntry { readonly leafIndex: number; readonly data: string; readonly proof: readonly string[] }

export interface ProvenLog {
  readonly checkpoint: string;
  readonly entries: readonly ProvenEntry[];
  readonly consistency?: { readonly size: number; readonly proof: readonly string[] };
}

export interface Outcome { readonly state: OpState; readonly reason: ReasonCode | null; readonly rule: RuleRecord | null }

export type UnsignedProvenBundle = Omit<Bundle, 'format'> & { readonly format: typeof PROVEN_BUNDLE_FORMAT; readonly outcome: Outcome; readonly log: ProvenLog };
export type ProvenBundle = UnsignedProvenBundle & { readonly statement: string };

/** The first line of the exporting node's statement over a bundle (a signed note). */
export const STATEMENT_HEADER = 'custody-ledger/evidence-statement/v1';

/**
 * The text the exporting node signs: the header, then `sha256 <base64>` of the compact JSON of
 * the bundle without its statement. Its second line is no tree size, so it never parses as a
 * checkpoint (ledger/tlog/checkpoint.ts), and a node's signature over it is never a cosignature
 * of a log state.
 */
export function statementText(b: UnsignedProvenBundle): string {
  return `${STATEMENT_HEADER}\nsha256 ${encodeBase64(new Uint8Array(createHash('sha256').update(JSON.stringify(b), 'utf8').digest()))}\n`;
}

/**
 * The v2 bundle of a v1 bundle, the act's outcome, and its entries proven under `checkpoint`;
 * `sign` returns the exporting node's note over statementText.
 */
export async function provenBundle(b: Bundle, outcome: Outcome, checkpoint: string, inclusions: readonly { leafIndex: number; entry: LedgerEntry; proof: readonly Uint8Array[] }[], consistency: { size: number; proof: readonly Uint8Array[] } | undefined, sign: (text: string) => Promise<string>): Promise<ProvenBundle> {
  const sorted = [...inclusions].sort((x, y) => x.leafIndex - y.leafIndex);
  const unsigned: UnsignedProvenBundle = {
    ...b,
    format: PROVEN_BUNDLE_FORMAT,
    outcome,
    log: {
      checkpoint,
      entries: sorted.map((i) => ({ leafIndex: i.leafIndex, data: toHex(entryLeafData(i.entry)), proof: i.proof.map(encodeBase64) })),
      ...(consistency === undefined ? {} : { consistency: { size: consistency.size, proof: consistency.proof.map(encodeBase64) } }),
    },
  };
  return { ...unsigned, statement: await sign(statementText(unsigned)) };
}

/** The one text form of a bundle: two-space indented JSON and a final newline (what `custody admin evidence` writes). */
export function provenBundleText(b: ProvenBundle): string {
  return `${JSON.stringify(b, null, 2)}\n`;
}

/**
 * Verifies a bundle file's text: it must be the bundle's one text form (so no byte of it, not
 * even whitespace, can change without changing the bundle), then verifyProvenBundle.
 */
export function verifyProvenText(text: string, policy: TrustPolicy): ProvenVerdict & { readonly bundle?: ProvenBundle } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return { ok: false, step: 'bundle', reason: 'PAYLOAD_REJECTED', detail: `not JSON: ${(e as Error).message}` };
  }
  if (parsed === null || typeof parsed !== 'object' || provenBundleText(parsed as ProvenBundle) !== text) {
    return { ok: false, step: 'bundle', reason: 'PAYLOAD_REJECTED', detail: 'the file is not the bundle\'s canonical text (two-space indented JSON and a final newline)' };
  }
  const v = verifyProvenBundle(parsed, policy);
  return v.ok ? { ...v, bundle: parsed as ProvenBundle } : v;
}

export type ProvenVerdict =
  | { readonly ok: true; readonly opId: string; readonly clusterId: string; readonly checkpoint: Checkpoint; readonly signers: readonly string[]; readonly outcome: Outcome; readonly lines: readonly string[] }
  | { readonly ok: false; readonly step: string; readonly reason: ReasonCode; readonly detail: string };

class Refused extends Error {
  constructor(readonly step: string, readonly reason: ReasonCode, detail: string) {
    super(detail);
  }
}

interface Included { readonly leafIndex: number; readonly index: number; readonly stampMs: number; readonly event: LedgerEvent; readonly cid: Uint8Array }

const hexOf = (v: CborValue): string => toHex(encode(v));

function hashes(step: string, list: unknown, what: string): Uint8Array[] {
  if (!Array.isArray(list) || list.length > limits.proofHashesMax) throw new Refused(step, 'PAYLOAD_REJECTED', `${what}: a list of at most ${limits.proofHashesMax} hashes`);
  return list.map((h) => {
    const b = typeof h === 'string' ? decodeBase64Strict(h) : undefined;
    if (b === undefined || b.length !== HASH_BYTES) throw new Refused(step, 'PAYLOAD_REJECTED', `${what}: a hash is not canonical base64 of 32 bytes`);
    return b;
  });
}

/** Verifies a parsed v2 bundle against the policy in force (see the header for what and in which order). */
export function verifyProvenBundle(bundle: unknown, policy: TrustPolicy): ProvenVerdict {
  try {
    return check(bundle, policy);
  } catch (e) {
    if (e instanceof Refused) return { ok: false, step: e.step, reason: e.reason, detail: e.message };
    if (isCustodyError(e)) return { ok: false, step: 'bundle', reason: e.reason, detail: e.detail };
    throw e;
  }
}

/** Runs `f`, turning a CustodyError into a refusal of `step`. */
function at<T>(step: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof Refused) throw e;
    if (isCustodyError(e)) throw new Refused(step, e.reason, e.detail);
    throw new Refused(step, 'PAYLOAD_REJECTED', (e as Error).message);
  }
}

function check(bundle: unknown, policy: TrustPolicy): Extract<ProvenVerdict, { ok: true }> {
  const no = (step: string, reason: ReasonCode, detail: string): never => { throw new Refused(step, reason, detail); };
  if (bundle === null || typeof bundle !== 'object' || Array.isArray(bundle)) no('bundle', 'PAYLOAD_REJECTED', 'the bundle is not a JSON object');
  const b = bundle as ProvenBundle;
  if (b.format !== PROVEN_BUNDLE_FORMAT) no('bundle', 'PAYLOAD_REJECTED', `format is not ${PROVEN_BUNDLE_FORMAT}`);
  if (typeof b.clusterId !== 'string' || typeof b.opId !== 'string') no('bundle', 'PAYLOAD_REJECTED', 'clusterId and opId must be strings');
  const log = b.log as ProvenLog | undefined;
  if (log === null || typeof log !== 'object' || typeof log.checkpoint !== 'string' || !Array.isArray(log.entries)) no('bundle', 'PAYLOAD_REJECTED', 'log: { checkpoint, entries }');
  const lg = log as ProvenLog;
  if (lg.entries.length < 1 || lg.entries.length > limits.evidenceEntriesMax) no('bundle', 'PAYLOAD_REJECTED', `log.entries: 1 to ${limits.evidenceEntriesMax} entries`);
  const o = b.outcome;
  if (o === null || typeof o !== 'object' || typeof o.state !== 'string') no('bundle', 'PAYLOAD_REJECTED', 'outcome: { state, reason, rule }');
  if (JSON.stringify(o.rule ?? null) !== JSON.stringify(b.rule ?? null)) no('bundle', 'BINDING_MISMATCH', 'the outcome names another rule than the bundle');
  if ((o.state === 'Published' || o.state === 'Settled') && o.reason !== null) no('bundle', 'PAYLOAD_REJECTED', `a ${o.state} outcome names no reason code`);
  const lines: string[] = [];

  // 1. The checkpoint.
  if (policy.origin !== checkpointOrigin(b.clusterId)) no('checkpoint', 'TLOG_CHECKPOINT_INVALID', `the bundle is of cluster ${b.clusterId}; the trust policy is of log ${policy.origin}`);
  const cert = at('checkpoint', () => certified(lg.checkpoint, policyTrust(policy)));
  at('checkpoint', () => requireWitnesses(lg.checkpoint, policy));
  const cp = cert.checkpoint;
  lines.push(`checkpoint ${cp.origin} size ${cp.size} cosigned by ${cert.signers.length} of ${policy.nodes.length} nodes (quorum ${policy.quorum})${policy.witnesses.length > 0 ? ` and ${policy.witnessQuorum}+ witnesses` : ''}`);

  // The exporting node's statement: one node of the policy vouches for every byte of the bundle
  // (what no entry proves, such as a Denied act's rule, is that node's word).
  if (typeof b.statement !== 'string') no('statement', 'PAYLOAD_REJECTED', 'the bundle carries no exporting node\'s statement');
  const { statement: _s, ...unsigned } = b;
  const st = at('statement', () => openNote(b.statement, policy.nodes));
  if (st.text !== statementText(unsigned)) no('statement', 'BINDING_MISMATCH', 'the exporting node\'s statement is over another bundle');
  lines.push(`exported by ${st.verified.map((v) => v.name.slice(policy.origin.length + 1)).join(', ')}`);

  // 2. The entries.
  const included: Included[] = lg.entries.map((x, i) => at(`entry ${i}`, () => {
    if (x === null || typeof x !== 'object' || typeof x.leafIndex !== 'number' || !Number.isSafeInteger(x.leafIndex) || x.leafIndex < 0 || typeof x.data !== 'string' || !/^([0-9a-f]{2})+$/.test(x.data)) {
      throw new Refused(`entry ${i}`, 'PAYLOAD_REJECTED', 'an entry is { leafIndex, data (lowercase hex), proof }');
    }
    const data = fromHex(x.data);
    requireIncluded(cp, x.leafIndex, leafHash(data), hashes(`entry ${i}`, x.proof, 'proof'));
    const d = decode(data, { bytesMax: limits.certificateEntryBytesMax }) as { index?: unknown; stampMs?: unknown; event?: unknown };
    if (d === null || typeof d !== 'object' || Object.keys(d).length !== 3 || typeof d.index !== 'number' || typeof d.stampMs !== 'number' || !(d.event instanceof Uint8Array)) {
      throw new Refused(`entry ${i}`, 'PAYLOAD_REJECTED', 'leaf data is not { index, stampMs, event }');
    }
    return { leafIndex: x.leafIndex, index: d.index, stampMs: d.stampMs, event: decodeEvent(d.event), cid: eventCid(d.event) };
  }));
  included.forEach((e, i) => {
    const p = included[i - 1];
    if (p !== undefined && (e.leafIndex <= p.leafIndex || e.index <= p.index)) no(`entry ${i}`, 'PAYLOAD_REJECTED', 'entries are listed in ledger order, each once');
  });
  lines.push(`${included.length} entries included (${included.map((e) => `${e.event.type}@${e.leafIndex}`).join(', ')})`);

  // 3. The act.
  const ofAct = included.filter((e) => e.event.type.startsWith('Act') && (e.event as { opId?: string }).opId === b.opId);
  const subs = ofAct.filter((e) => e.event.type === 'ActSubmitted');
  if (subs.length !== 1) no('act', 'EVIDENCE_UNPROVEN', `the bundle proves ${subs.length} submissions of act ${b.opId}, not one`);
  const sub = subs[0] as Included;
  const se = sub.event as Extract<LedgerEvent, { type: 'ActSubmitted' }>;
  if (b.act !== hexOf(actToCbor(se.act))) no('act', 'EVIDENCE_UNPROVEN', 'the bundle\'s act is not the submitted one');
  if ((b.request ?? null) !== (se.request === null ? null : hexOf(actRequestToCbor(se.request)))) no('act', 'EVIDENCE_UNPROVEN', 'the bundle\'s custodian request is not the submitted one');
  if ((b.approval ?? null) !== (se.approval === null ? null : hexOf(decisionToCbor(se.approval)))) no('act', 'EVIDENCE_UNPROVEN', 'the bundle\'s approval is not the submitted one');
  if (included.some((e) => e.event.type.startsWith('Act') && (e.event as { opId?: string }).opId !== b.opId)) no('act', 'EVIDENCE_UNPROVEN', 'the bundle includes entries of another act');

  // 4. The roster in force, the request and the approval.
  const rosters = included.filter((e) => e.event.type === 'ClusterGenesis' || (e.event.type === 'GovernanceDecision' && e.event.decision.body.action.kind === 'ApproversChanged'));
  if (rosters.length !== 1) no('roster', 'EVIDENCE_UNPROVEN', `the bundle proves ${rosters.length} roster entries, not one`);
  const re = rosters[0] as Included;
  if (re.index >= sub.index) no('roster', 'EVIDENCE_UNPROVEN', 'the roster entry is not before the act');
  const roster: ApproverRoster = re.event.type === 'ClusterGenesis' ? re.event.roster : (re.event as Extract<LedgerEvent, { type: 'GovernanceDecision' }>).decision.body.action.kind === 'ApproversChanged'
    ? ((re.event as Extract<LedgerEvent, { type: 'GovernanceDecision' }>).decision.body.action as { roster: ApproverRoster }).roster : no('roster', 'INTERNAL', 'unreachable');
  if (re.event.type === 'ClusterGenesis' && re.event.clusterId !== b.clusterId) no('roster', 'BINDING_MISMATCH', `the genesis entry is of cluster ${re.event.clusterId}`);
  if (b.roster !== hexOf(rosterToCbor(roster))) no('roster', 'EVIDENCE_UNPROVEN', 'the bundle\'s roster is not the one the roster entry set');
  const rv = verifyActRequest({ opId: b.opId, act: se.act, request: se.request }, { clusterId: b.clusterId, roster, nowMs: null });
  if (!rv.ok) no('request', rv.reason, rv.detail);
  lines.push(`request signed by custodian ${se.request?.body.custodian} (roster set at ledger index ${re.index})`);
  if (se.approval !== null) {
    const a = se.approval;
    const x = a.body.action;
    const binds = x.kind === 'ActApproved' && x.opId === b.opId && bytesEqual(x.actCid, actCid(se.act)) && a.body.clusterId === b.clusterId;
    const v = verifyDecision(a, roster, b.clusterId, a.body.governanceEpoch, a.body.issuedMs);
    if (o.state !== 'Denied') {
      // An admitted act's approval approves exactly it, signed by approvers of the roster in force.
      if (!binds) no('approval', 'BINDING_MISMATCH', 'the approval does not approve this act in this cluster');
      if (!v.ok) return no('approval', v.reason, v.detail);
      lines.push(`approved by ${v.approvers.join(', ')}`);
    } else {
      lines.push(binds && v.ok ? `submitted with an approval by ${v.approvers.join(', ')}` : `submitted with an approval that does not hold (${binds ? (v.ok ? '' : v.reason) : 'BINDING_MISMATCH'})`);
    }
  }

  // 5. The key's authority.
  const act = se.act;
  const published = included.filter((e) => e.event.type === 'KeyObjectPublished' && e.event.keyId === act.keyId && e.event.keyEpoch === act.keyEpoch);
  const activated = included.filter((e) => {
    if (e.event.type !== 'GovernanceDecision') return false;
    const x = e.event.decision.body.action;
    return (x.kind === 'KeyActivated' || x.kind === 'KeyRefreshed' || x.kind === 'KeyReshared') && x.keyId === act.keyId && x.keyEpoch === act.keyEpoch;
  });
  const admitted = o.state !== 'Denied';
  // An admitted act proves both; a Denied one (perhaps for a key not published or not active) at most one each.
  if (admitted ? published.length !== 1 || activated.length !== 1 : published.length > 1 || activated.length > 1) {
    no('key', 'EVIDENCE_UNPROVEN', `key ${act.keyId} epoch ${act.keyEpoch}: the bundle proves ${published.length} KeyObjectPublished and ${activated.length} activation decisions, not one each`);
  }
  const pe = published[0];
  const ae = activated[0];
  if ((pe !== undefined && pe.index >= sub.index) || (ae !== undefined && ae.index >= sub.index) || (pe !== undefined && ae !== undefined && ae.index <= pe.index)) {
    no('key', 'EVIDENCE_UNPROVEN', 'the key was not published, then activated, before the act');
  }
  if (pe !== undefined || ae !== undefined) {
    const x = ae === undefined ? undefined : (ae.event as Extract<LedgerEvent, { type: 'GovernanceDecision' }>).decision.body.action;
    if (x?.kind === 'KeyActivated' && pe !== undefined && !bytesEqual(x.keyReadyCid, (pe.event as Extract<LedgerEvent, { type: 'KeyObjectPublished' }>).keyReadyCid)) no('key', 'BINDING_MISMATCH', 'the activation names another KeyReady set than the publication');
    lines.push(`key ${act.keyId} epoch ${act.keyEpoch}${pe === undefined ? ' not shown published' : ` published at ${pe.index}`}, ${ae === undefined || x === undefined ? 'not shown activated' : `${x.kind} at ${ae.index}`}`);
  }
  // An act aborted because its permit's node equivocated ends at the EquivocationEvidence entry.
  const equivocation = o.state === 'Aborted' ? included.filter((e) => e.event.type === 'EquivocationEvidence' && e.index > sub.index) : [];
  const others = included.filter((e) => !ofAct.includes(e) && !rosters.includes(e) && !published.includes(e) && !activated.includes(e) && !equivocation.includes(e));
  if (others.length > 0) no('bundle', 'EVIDENCE_UNPROVEN', `the bundle includes entries that prove nothing about the act (${others.map((e) => e.event.type).join(', ')})`);

  // 6. The receipts.
  const receipts = Array.isArray(b.receipts) ? b.receipts : no('receipts', 'PAYLOAD_REJECTED', 'receipts: a list');
  const producer: { [t: string]: string } = { AdmissionReceipt: 'ActSubmitted', PermitReceipt: 'ActPermitIssued', PublicationReceipt: 'ActPublished' };
  receipts.forEach((r, i) => at(`receipt ${i + 1}`, () => {
    const v = decode(fromHex(r.cbor)) as { type?: unknown; index?: unknown; stampMs?: unknown; eventCid?: unknown };
    const e = ofAct.find((x) => x.event.type === producer[String(v.type)]);
    if (e === undefined) throw new Refused(`receipt ${i + 1}`, 'EVIDENCE_UNPROVEN', `no included entry produced the ${String(v.type)}`);
    if (v.index !== e.index || v.stampMs !== e.stampMs || !(v.eventCid instanceof Uint8Array) || !bytesEqual(v.eventCid, e.cid)) {
      throw new Refused(`receipt ${i + 1}`, 'EVIDENCE_UNPROVEN', `the ${String(v.type)} does not name the ${e.event.type} at ledger index ${e.index}`);
    }
  }));
  if (receipts.length > 0) {
    const chain = verifyEvidenceBundle({ ...b, format: 'custody-ledger/evidence/v1' });
    if (!chain.ok) return no(`receipt ${chain.link}`, chain.reason, `${chain.name}: ${chain.detail}`);
    lines.push(`receipts ${chain.links.join(' -> ')}, each bound to its entry`);
  }
  const executed = ofAct.find((e) => e.event.type === 'ActExecuted');
  if (b.signature !== undefined) {
    if (executed === undefined) return no('signature', 'EVIDENCE_UNPROVEN', 'a signature block without the ActExecuted entry that recorded the signatures');
    const sigs = (executed.event as Extract<LedgerEvent, { type: 'ActExecuted' }>).signatures;
    if (!Array.isArray(b.signature.signatures) || b.signature.signatures.length !== sigs.length || sigs.some((s, i) => b.signature!.signatures[i] !== toHex(s))) no('signature', 'EVIDENCE_UNPROVEN', 'the signature block\'s signatures are not the recorded ones');
    const pub = receipts.find((r) => r.type === 'PublicationReceipt');
    const digest = pub === undefined ? undefined : (decode(fromHex(pub.cbor)) as { signatureDigest?: unknown }).signatureDigest;
    if (!(digest instanceof Uint8Array) || !bytesEqual(digest, artifactDigest(sigs))) no('signature', 'EVIDENCE_UNPROVEN', 'the PublicationReceipt does not name the recorded signatures');
    const s = verifyBundleSignature({ ...b, format: 'custody-ledger/evidence/v1' } as unknown as Bundle);
    if (!s.ok) no('signature', s.reason, s.detail);
    lines.push(`signature ${b.signature.ciphersuite} verifies under group key ${b.signature.groupPublicKey}`);
  } else if (executed !== undefined) {
    no('signature', 'EVIDENCE_UNPROVEN', 'the ActExecuted entry is included without the signature block it proves');
  }

  // 7. The outcome.
  const has = (t: string): Included | undefined => ofAct.find((e) => e.event.type === t);
  const types = ['Settled', 'Published', 'Denied', 'Aborted'];
  if (!types.includes(o.state)) no('outcome', 'EVIDENCE_UNPROVEN', `an evidence bundle is of an act that ended or was published, not one ${o.state}`);
  if (o.state === 'Denied') {
    // Its submission, and at most its ActDenialRecorded after it: nothing else of the act.
    const denials = ofAct.filter((e) => e.event.type === 'ActDenialRecorded');
    if (ofAct.length !== 1 + denials.length || denials.length > 1 || receipts.length !== 0) no('outcome', 'EVIDENCE_UNPROVEN', 'a Denied act has its submission, at most its denial record, and nothing else');
    if (typeof o.reason !== 'string') no('outcome', 'PAYLOAD_REJECTED', 'a Denied outcome names its reason code');
    const verdict = `Denied ${o.reason}${o.rule ? ` by ${o.rule.id === null ? 'default deny' : `rule ${o.rule.id}`} (${o.rule.action})` : ''}`;
    const d = denials[0];
    if (d !== undefined) {
      // The entry the ledger accepted only as its own verdict (ledger/apply.ts denialRecorded).
      const de = d.event as Extract<LedgerEvent, { type: 'ActDenialRecorded' }>;
      if (d.index <= sub.index) no('outcome', 'EVIDENCE_UNPROVEN', 'the denial record is not after the act');
      if (de.reason !== o.reason) no('outcome', 'EVIDENCE_UNPROVEN', `the outcome names ${String(o.reason)}; the denial entry ${de.reason}`);
      const rule = at('outcome', () => o.rule === null || o.rule === undefined ? null : ruleFromCbor(ruleToCbor(o.rule)));
      if (!bytesEqual(denialRuleDigest(rule), de.ruleDigest)) no('outcome', 'EVIDENCE_UNPROVEN', 'the outcome names another rule than the denial entry');
      lines.push(`${verdict}, entered in the log at index ${d.index} (the act at ${sub.index})`);
    } else {
      lines.push(`${verdict}, as the exporting node states the ledger recorded it at index ${sub.index} (no denial entry in the log proves it)`);
    }
  } else if (o.state === 'Aborted') {
    const ab = has('ActAborted') ?? equivocation[0];
    if (ab === undefined || (has('ActAborted') !== undefined && equivocation.length > 0) || equivocation.length > 1) return no('outcome', 'EVIDENCE_UNPROVEN', 'an Aborted outcome proves the one entry that aborted it: its ActAborted, or the equivocation evidence');
    const reason: ReasonCode = ab.event.type === 'ActAborted' ? ab.event.reason : 'EQUIVOCATION';
    if (o.reason !== reason) no('outcome', 'EVIDENCE_UNPROVEN', `the outcome names ${String(o.reason)}; the ActAborted entry ${reason}`);
    if (has('ActPublished') !== undefined) no('outcome', 'EVIDENCE_UNPROVEN', 'a published act does not abort');
    lines.push(`Aborted ${reason} at ledger index ${ab.index}${ab.event.type === 'EquivocationEvidence' ? ' (equivocation evidence against a signer)' : ''}`);
  } else {
    if (has('ActPublished') === undefined || receipts.length !== 3) no('outcome', 'EVIDENCE_UNPROVEN', `a ${o.state} outcome needs its ActPublished entry and all three receipts`);
    if (o.state === 'Settled' && has('ActSettled') === undefined) no('outcome', 'EVIDENCE_UNPROVEN', 'a Settled outcome without its ActSettled entry');
    if (o.state === 'Published' && has('ActSettled') !== undefined) no('outcome', 'EVIDENCE_UNPROVEN', 'the bundle proves the act settled, not only published');
    if (b.signature === undefined) no('outcome', 'EVIDENCE_UNPROVEN', `a ${o.state} act's bundle carries its signature block`);
    lines.push(`${o.state}`);
  }
  if (ofAct.some((e) => e.event.type === 'ActAborted') && o.state !== 'Aborted') no('outcome', 'EVIDENCE_UNPROVEN', 'the bundle proves the act aborted');
  if (ofAct.some((e) => e.event.type === 'ActDenialRecorded') && o.state !== 'Denied') no('outcome', 'EVIDENCE_UNPROVEN', 'the bundle proves the act denied');
  return { ok: true, opId: b.opId, clusterId: b.clusterId, checkpoint: cp, signers: cert.signers, outcome: { state: o.state, reason: o.reason ?? null, rule: o.rule ?? null }, lines };
}

/**
 * Two verified bundles' checkpoints lie on one append-only history: the same root at the same
 * size, or the larger bundle carries an RFC 9162 consistency proof from the smaller's size that
 * verifies between the two roots. TLOG_PROOF_INVALID otherwise (a missing proof included).
 */
export function verifyConsistentBundles(a: { bundle: ProvenBundle; checkpoint: Checkpoint }, b: { bundle: ProvenBundle; checkpoint: Checkpoint }): string {
  const [older, newer] = a.checkpoint.size <= b.checkpoint.size ? [a, b] : [b, a];
  if (older.checkpoint.size === newer.checkpoint.size) {
    if (!bytesEqual(older.checkpoint.root, newer.checkpoint.root)) throw new CustodyError('EQUIVOCATION', `two checkpoints of size ${older.checkpoint.size} with different roots: the log forked`);
    return `both checkpoints are size ${older.checkpoint.size} with the same root`;
  }
  const c = newer.bundle.log.consistency;
  if (c === undefined || c.size !== older.checkpoint.size) {
    throw new CustodyError('TLOG_PROOF_INVALID', `the newer bundle (${newer.bundle.opId}, size ${newer.checkpoint.size}) carries no consistency proof from size ${older.checkpoint.size}: export it with --consistent-with the older bundle`);
  }
  let proof: Uint8Array[];
  try {
    proof = hashes('consistency', c.proof, 'consistency proof');
  } catch (e) {
    throw new CustodyError('TLOG_PROOF_INVALID', (e as Error).message);
  }
  requireExtends(older.checkpoint, newer.checkpoint, proof);
  return `size ${older.checkpoint.size} (${older.bundle.opId}) is a prefix of size ${newer.checkpoint.size} (${newer.bundle.opId}): one append-only history`;
}
