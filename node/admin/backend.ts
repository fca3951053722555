/**
 * What the admin API does on a node, independent of gRPC: every method takes the calling
 * operator (from its certificate), checks its role first, then works through the ledger. The
 * service (service.ts) only converts messages and maps errors to statuses.
 *
 * Pending decisions (proposed, collecting approvals) live in the approval book, replicated through
 * the log beside the ledger (node/approvals/book.ts, where the message flow and the reasons are):
 * any node shows them and takes approvals for them, and no restart loses one. A decision reaching
 * its quorum is submitted to the log at once by the node that took the last approval, except an
 * ActApproved, which waits to travel inside its act's submission (through any node). Approving
 * again a decision that has its quorum submits it again (after a crash between the two steps).
 * What became of a decision after it left the book (applied, refused) is remembered per node,
 * bounded; the ledger keeps the applied ones.
 */
import { dealersReadyOf } from '../../ledger/dealer-set.js';
import { CustodyError, isCustodyError } from '../../proto/errors.js';
import type { ReasonCode } from '../../proto/reasons.js';
import { type CborValue, bytesEqual, decode, encode, fromHex, toHex } from '../../ledger/encoding.js';
import {
  type DecisionBody, type GovernanceDecision, ShapeError,
  decisionBodyFromCbor, decisionBodyToCbor, decisionCid, decisionFromCbor, decisionSigningBytes, ed25519Verify, quorumFor, rosterToCbor, verifyDecision,
} from '../../ledger/decision.js';
import { actCid, decodeEvent, type Act, type LedgerEntry } from '../../ledger/events.js';
import { type SignedActRequest, REQUEST_ID_RE, actRequestFromCbor, actRequestToCbor } from '../../ledger/act-request.js';
import { verifyActRequest } from '../../ledger/act-request-check.js';
import type { ClusterState, KeyRecord, OpRecord } from '../../ledger/state.js';
import { TERMINAL_OP_STATES, fenceReportsOf, keyContextOf, revocationsOf } from '../../ledger/state.js';
import { denialRuleDigest, fenceMajority } from '../../ledger/apply.js';
import { receiptCid } from '../../ledger/receipts.js';
import type { LedgerVerdict } from '../ledger-app.js';
import type { LedgerPort } from '../lifecycle/ports.js';
import type { ChronicleNote } from '../lifecycle/coordinator.js';
import { actFor, decisionBodyFor, factsOf, signedTxOf, type ActRequest } from '../lifecycle/acts.js';
import { assetTable } from '../../ledger/admission.js';
import { formatUnits, solanaAddress, taprootAddress } from '../../ledger/tx/parse.js';
import { TX_KINDS, type AssetTable, type TxFacts, type TxKind } from '../../ledger/tx/types.js';
import { evidenceBundleOf } from '../lifecycle/evidence.js';
import { provenBundle, provenBundleText } from '../lifecycle/evidence-proof.js';
import { clusterTrust, type EntryCertificate } from '../../ledger/tlog/ledger-log.js';
import { formatPolicy, formatPolicyChain, requireWitnesses } from '../../ledger/tlog/trust-policy.js';
import { rosterVoters } from '../../ledger/state.js';
import { pendingTrustBlock, trustChainBlocks } from '../../ledger/trust-chain.js';
import { parseVkey } from '../../ledger/tlog/note.js';
import * as limits from '../../proto/limits.js';
import { type Operator, mayPropose, requireAction } from './roles.js';
import { approvals as approvalLimits, node as nodeLimits } from '../../proto/limits.js';
import type { PendingRecord } from '../approvals/book.js';

export const CHRONICLE_ACTS_MAX = 10_000;

export interface PendingDecision {
  readonly cid: string;
  readonly body: DecisionBody;
  approvals: { approverId: string; signature: Uint8Array }[];
  /** pending: collecting approvals; approved: at quorum, not yet applied; applied / refused: the ledger's verdict. */
  state: 'pending' | 'approved' | 'applied' | 'refused';
  verdict: LedgerVerdict | null;
  /** For an ActApproved: the act it approves, submitted later with it. */
  readonly act: Act | null;
}

export interface NotesSource {
  notesOf(opId: string): readonly ChronicleNote[];
  onNote(l: (n: ChronicleNote) => void): () => void;
}

export interface ActSummary {
  readonly op: OpRecord;
  readonly notes: readonly ChronicleNote[];
  readonly verdict?: LedgerVerdict;
  /** The act's transaction as the serving node reads it now (facts re-derived from the bytes). */
  readonly tx?: TxSummary;
}

/** What the serving node derives from an act's transaction: its facts, and once signed the finalized transaction. */
export interface TxSummary {
  readonly facts: TxFacts | null;
  /** Why the transaction does not parse now (a denied act may carry one that never did). */
  readonly refused: CustodyError | null;
  /** Decimals of the asset table, to render amounts. */
  readonly assets: AssetTable;
  readonly signatures: readonly Uint8Array[];
  readonly signed: { readonly hex: string; readonly id: string } | null;
  readonly signedRefused: CustodyError | null;
}

/**
 * Whether an act's signatures may leave the node: only once the act passed the publication gate
 * (Published, then Settled). Before that, the signatures sit in the replicated state, but every
 * read path of the admin API (act show, watch, chronicle, evidence, snapshots) withholds them: an
 * operator who could read them could broadcast a transaction the gate is still holding (or that
 * it refused, Executed -> Aborted). What a node host can still see is in the README.
 */
export function signaturesReleased(op: OpRecord): boolean {
  return op.state === 'Published' || op.state === 'Settled';
}

/** The act's signatures, one per message, once published (none before: see signaturesReleased). */
export function signaturesOf(op: OpRecord): readonly Uint8Array[] {
  return signaturesReleased(op) ? (op.signatures ?? []) : [];
}

/**
 * A snapshot file carries the whole replicated state, signatures of acts held at the gate
 * included: none is served while an act is held (SIGNATURE_WITHHELD). Acts that ended Aborted
 * after execution are archived with their signatures, and snapshots carry the archive: that is
 * said in the README (a backup is as sensitive as a node's data directory).
 */
export function requireNoneHeld(c: ClusterState): void {
  const held = Object.values(c.ops).filter((op) => op.state === 'Executed' && op.signatures !== null).map((op) => op.opId);
  if (held.length > 0) throw new CustodyError('SIGNATURE_WITHHELD', `${held.length} act(s) hold signatures at the publication gate (${held.slice(0, 5).join(', ')}${held.length > 5 ? ', ...' : ''}); a snapshot would carry them, so none is served until they are published or aborted`);
}

/** The transaction summary of `act` against the cluster state `c`. */
export function txSummaryOf(c: ClusterState, act: Act, signatures: readonly Uint8Array[]): TxSummary {
  const f = factsOf(c, act);
  const s = signatures.length > 0 ? signedTxOf(act, signatures) : null;
  return {
    facts: 'facts' in f ? f.facts : null, refused: 'refused' in f ? f.refused : null, assets: assetTable(c), signatures,
    signed: s !== null && !('refused' in s) ? s : null, signedRefused: s !== null && 'refused' in s ? s.refused : null,
  };
}

function cluster(ledger: LedgerPort): ClusterState {
  const c = ledger.state().cluster;
  if (c === null) throw new CustodyError('GENESIS_MISSING', 'the cluster has no genesis yet');
  return c;
}

const BYTE_FIELDS = new Set(['keyReadyCid', 'actCid', 'identityKey', 'publicKey', 'displayHash', 'policy', 'backupCid', 'groupKey', 'verifyingShare']);
/** Amount fields of decision actions (none today: PolicyChanged carries its document as canonical CBOR, hex in "policy"). */
const AMOUNT_FIELDS = new Set<string>([]);

/** JSON (hex for bytes, decimal strings or numbers for amounts) to the canonical value form. */
export function jsonToCbor(v: unknown, key = ''): CborValue {
  if (v === null) return null;
  if (typeof v === 'string') {
    if (BYTE_FIELDS.has(key)) {
      if (!/^([0-9a-f]{2})*$/i.test(v)) throw new CustodyError('INVALID_ARGUMENT', `${key} must be hex`);
      return fromHex(v.toLowerCase());
    }
    if (AMOUNT_FIELDS.has(key)) {
      if (!/^[0-9]{1,30}$/.test(v)) throw new CustodyError('INVALID_ARGUMENT', `${key} must be a decimal integer`);
      return BigInt(v);
    }
    return v;
  }
  if (typeof v === 'number') {
    if (AMOUNT_FIELDS.has(key) && Number.isSafeInteger(v)) return BigInt(v);
    return v;
  }
  if (typeof v === 'boolean') return v;
  if (Array.isArray(v)) return v.map((x) => jsonToCbor(x, key === 'roles' || key === 'participants' || key === 'destinations' ? '' : key));
  if (typeof v === 'object') {
    const out: { [k: string]: CborValue } = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = jsonToCbor(x, k);
    return out;
  }
  throw new CustodyError('INVALID_ARGUMENT', 'unsupported JSON value');
}

/** Canonical value form to JSON for display (bytes as hex, bigints as decimal strings). */
export function cborToJson(v: CborValue): unknown {
  if (v instanceof Uint8Array) return toHex(v);
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return v.map(cborToJson);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, cborToJson(x as CborValue)]));
  return v;
}

/**
 * What proven evidence and the trust policy need from the node's Merkle tree and its cosigning
 * (node/checkpoints.ts Checkpointer.evidence, node/ledger-tree.ts pointers).
 */
export interface EvidenceLog {
  evidence(indexes: readonly number[], consistencyFrom?: number): Promise<EntryCertificate & { readonly size: number }>;
  rosterEntryIndex(): number | null;
  rosterBefore(index: number): Promise<number | null>;
  keyEntry(keyId: string, epoch: number, what: 'published' | 'activated'): Promise<number | null>;
  /** Ledger index of a Denied act's ActDenialRecorded, if this node keeps one (node/ledger-tree.ts). */
  denialEntry(opId: string): Promise<number | null>;
  /** A kept applied entry by ledger index (node/ledger-tree.ts entry). */
  entry(index: number): Promise<LedgerEntry>;
  /** This node's signed statement over an evidence bundle (Checkpointer.signStatement). */
  signStatement(text: string): string;
  /** The nodes of the cluster's genesis event (the genesis trust policy's keys). */
  genesisNodes(): readonly { readonly id: string; readonly identityKey: Uint8Array }[];
  /** A certified checkpoint note with the lines of the configured witnesses that cosigned it (node/witness/pusher.ts cosign); absent: the node pushes to none. */
  witness?(note: string): Promise<string | null>;
}

/** The EvidenceLog of a node: its checkpointer's cosigning and its stored tree's pointers. */
export function evidenceLogOf(
  checkpoints: { evidence(indexes: readonly number[], consistencyFrom?: number): Promise<EntryCertificate & { readonly size: number }>; signStatement(text: string): string },
  app: { readonly tree: { readonly rosterEntryIndex: number | null; rosterBefore(index: number): Promise<number | null>; keyEntry(keyId: string, epoch: number, what: 'published' | 'activated'): Promise<number | null>; denialEntry(opId: string): Promise<number | null>; entry(index: number): Promise<{ entry: LedgerEntry }> } },
  genesisNodes: readonly { readonly id: string; readonly identityKey: Uint8Array }[],
  witness?: (note: string) => Promise<string | null>,
): EvidenceLog {
  return {
    ...(witness === undefined ? {} : { witness }),
    evidence: (indexes, from) => checkpoints.evidence(indexes, from),
    signStatement: (text) => checkpoints.signStatement(text),
    rosterEntryIndex: () => app.tree.rosterEntryIndex,
    rosterBefore: (index) => app.tree.rosterBefore(index),
    keyEntry: (keyId, epoch, what) => app.tree.keyEntry(keyId, epoch, what),
    denialEntry: (opId) => app.tree.denialEntry(opId),
    entry: async (index) => (await app.tree.entry(index)).entry,
    genesisNodes: () => genesisNodes,
  };
}

export class AdminBackend {
  /** Decisions this node saw leave the book (applied or refused), newest last, bounded. */
  private readonly settled = new Map<string, PendingDecision>();
  private log: EvidenceLog | null = null;

  /** Proven evidence and trust policy export (without it, both are refused ENTRY_NOT_INCLUDED). */
  useEvidenceLog(log: EvidenceLog): void {
    this.log = log;
  }

  private evidenceLog(): EvidenceLog {
    if (this.log === null) throw new CustodyError('ENTRY_NOT_INCLUDED', 'this node keeps no Merkle tree to prove evidence with');
    return this.log;
  }

  /**
   * The cluster's trust policy file (ledger/tlog/trust-policy.ts): the genesis policy (the keys of
   * the genesis event's nodes) and, after each change of the voters, the block the ledger computed
   * with the signatures of a quorum of the block before it that the ledger recorded
   * (ledger/trust-chain.ts). The file ends at the last complete block; `waiting` says which
   * serial still waits for how many signatures ('' when none). With `current`, a waiting block
   * refuses the export TRUST_POLICY_PENDING instead: the caller wants the policy of the voters in
   * force, which the last complete block is not.
   */
  trustPolicyExport(caller: Operator, current = false): { policy: string; waiting: string } {
    requireAction(caller, 'read', 'export the trust policy');
    const c = cluster(this.ledger);
    const genesis = [...this.evidenceLog().genesisNodes()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const trust = clusterTrust(c.clusterId, genesis);
    const text = formatPolicy({ origin: trust.origin, serial: 0, previous: null, nodes: trust.verifiers, quorum: trust.quorum, witnesses: [], witnessQuorum: 0 });
    if (c.trustChain === undefined) {
      const voters = rosterVoters(c.nodes).map((n) => `${n.id}:${toHex(n.identityKey)}`).join(',');
      if (voters !== genesis.map((n) => `${n.id}:${toHex(n.identityKey)}`).join(',')) {
        throw new CustodyError('TRUST_POLICY_INVALID', 'the voters changed since genesis but the ledger holds no policy chain: no chain an auditor could follow from genesis');
      }
      return { policy: formatPolicyChain([text]), waiting: '' };
    }
    if (c.trustChain.genesis !== text) throw new CustodyError('TRUST_POLICY_INVALID', 'the ledger\'s genesis policy is not the one of the genesis event\'s nodes');
    const policy = formatPolicyChain(trustChainBlocks(c));
    const p = pendingTrustBlock(c);
    const waiting = p === null ? ''
      : `trust policy serial ${p.serial} waits for ${p.head.quorum - p.signatures.length} more signature(s) of the nodes of serial ${p.head.serial} (${p.signatures.length} of ${p.head.quorum} recorded)`;
    if (current && p !== null) throw new CustodyError('TRUST_POLICY_PENDING', `${waiting}: the policy of the voters in force is not complete`);
    return { policy, waiting };
  }

  /** The trust policy file to the last complete block (trustPolicyExport). */
  trustPolicy(caller: Operator): string {
    return this.trustPolicyExport(caller).policy;
  }

  /**
   * The proven evidence bundle of an ended or published act (node/lifecycle/evidence-proof.ts):
   * its entries, the roster entry in force at its submission and its key's authority entries,
   * each with its inclusion proof under a checkpoint freshly cosigned by a majority of the
   * voters; with `consistencyFrom`, also the consistency proof from that tree size.
   */
  async provenEvidence(caller: Operator, opId: string, consistencyFrom?: number): Promise<string> {
    requireAction(caller, 'read', 'export evidence');
    const log = this.evidenceLog();
    const c = cluster(this.ledger);
    const op = await this.opOf(opId);
    if (op === undefined) throw new CustodyError('UNKNOWN_SESSION', `no act ${opId}`);
    if (!['Published', 'Settled', 'Denied', 'Aborted'].includes(op.state)) throw new CustodyError('INVALID_TRANSITION', `act ${opId} is ${op.state}: its evidence is proven once it is published or has ended`);
    const approval = op.approval;
    if (op.approvalCid !== null && (approval === null || !bytesEqual(decisionCid(approval.body), op.approvalCid))) {
      throw new CustodyError('STORAGE_CORRUPT', `the approval recorded with ${opId} does not match its approval cid`);
    }
    const released = op.state === 'Published' || op.state === 'Settled';
    const submitted = op.history[0]!.index;
    // The act's own entries; its ActExecuted (the signatures) only once they were released.
    const own = op.history.filter((h) => h.state !== 'Admitted' && h.state !== 'Denied' && (released || h.state !== 'Executed')).map((h) => h.index);
    let roster = log.rosterEntryIndex();
    for (let walked = 0; roster !== null && roster >= submitted; walked++) {
      if (walked >= limits.tlog.evidenceRosterWalkMax) throw new CustodyError('LIMIT_EXCEEDED', `more than ${limits.tlog.evidenceRosterWalkMax} roster changes since act ${opId}`);
      roster = await log.rosterBefore(roster);
    }
    if (roster === null) throw new CustodyError('ENTRY_NOT_INCLUDED', `this node does not keep the roster entry in force at act ${opId} (it joined later): export from a node that applied it`);
    const keyEntries: number[] = [];
    for (const what of ['published', 'activated'] as const) {
      const i = await log.keyEntry(op.act.keyId, op.act.keyEpoch, what);
      if (i !== null && i < submitted) keyEntries.push(i);
      else if (op.state !== 'Denied') throw new CustodyError('ENTRY_NOT_INCLUDED', `this node keeps no ${what} entry of key ${op.act.keyId} epoch ${op.act.keyEpoch} before act ${opId}`);
    }
    // A Denied act's verdict as an entry of its own, when the log has one: the verifier then checks
    // the reason code and rule against it instead of taking this node's word for them.
    const denial = op.state === 'Denied' ? await log.denialEntry(opId) : null;
    if (denial !== null && denial > submitted) own.push(denial);
    const indexes = [...new Set([roster, ...keyEntries, ...own])].sort((a, b) => a - b);
    const cert = await this.witnessed(c, await log.evidence(indexes, consistencyFrom));
    // The roster the act was checked against is the one in force at its submission, which the
    // bundle proves by its entry: not necessarily the roster in force now.
    const rosterEvent = decodeEvent((await log.entry(roster)).event);
    const inForce = rosterEvent.type === 'ClusterGenesis' ? rosterEvent.roster
      : rosterEvent.type === 'GovernanceDecision' && rosterEvent.decision.body.action.kind === 'ApproversChanged' ? rosterEvent.decision.body.action.roster : null;
    if (inForce === null) throw new CustodyError('STORAGE_CORRUPT', `the roster pointer names ledger index ${roster}, a ${rosterEvent.type}`);
    const admission = op.receipts[0] as { governanceEpoch?: unknown } | undefined;
    const v1 = { ...evidenceBundleOf(c, op, approval), roster: toHex(encode(rosterToCbor(inForce))), rosterEpoch: typeof admission?.governanceEpoch === 'number' ? admission.governanceEpoch : null };
    const bundle = await provenBundle(v1, { state: op.state, reason: op.reason, rule: op.rule }, cert.note, cert.inclusions, cert.consistency, async (text) => log.signStatement(text));
    // The file text the auditor verifies is exactly this (provenBundleText), the CLI adds the final newline.
    return provenBundleText(bundle).slice(0, -1);
  }

  /**
   * The certificate with the witnesses' cosignatures of its checkpoint, when the ledger records a
   * witness set (a WitnessesChanged decision, ledger/trust-chain.ts): a trust policy naming them
   * accepts a checkpoint only with their quorum (requireWitnesses), so the export refuses
   * WITNESS_UNAVAILABLE or QUORUM_NOT_MET rather than hand out a bundle that cannot verify.
   */
  private async witnessed<C extends { readonly note: string; readonly size: number }>(c: ClusterState, cert: C): Promise<C> {
    const w = c.witnesses;
    if (w === undefined) return cert;
    const log = this.evidenceLog();
    const note = log.witness === undefined ? null : await log.witness(cert.note);
    if (note === null) throw new CustodyError('WITNESS_UNAVAILABLE', `the trust policy names ${w.vkeys.length} witnesses and no witness this node pushes to cosigned checkpoint size ${cert.size}: check the lifecycle file's witnesses, then export again`);
    requireWitnesses(note, { origin: '', serial: 0, previous: null, nodes: [], quorum: 0, witnesses: w.vkeys.map(parseVkey), witnessQuorum: w.quorum });
    return { ...cert, note };
  }

  /** The admin API holds no node key: it signs nothing on an operator's behalf (fencing is an approver-signed decision, fenceNode). */
  constructor(readonly nodeId: string, readonly ledger: LedgerPort, private readonly notes: NotesSource) {}

  status(caller: Operator) {
    requireAction(caller, 'read', 'read the status');
    const s = this.ledger.state();
    const r = this.ledger.raftStatus();
    const c = s.cluster;
    return {
      nodeId: this.nodeId, caller: `${caller.id} (${caller.role})`, term: r.term, leader: r.leader ?? '', commit: r.commit, applied: r.applied, stateRoot: r.root,
      clusterId: c?.clusterId ?? '', governanceEpoch: c?.governance.epoch ?? 0, governanceHead: c ? toHex(c.governance.headCid) : '',
      frozen: c?.governance.frozen?.reason ?? '',
      nodes: c ? Object.values(c.nodes).map((n) => ({
        id: n.id, status: n.status, passport: n.passport, equivocated: n.equivocated,
        fenceReporters: [...(fenceReportsOf(c).find((r) => r.nodeId === n.id && r.passport === n.passport)?.reporters ?? [])], fenceNeeded: fenceMajority(c),
      })) : [],
      keys: c ? Object.values(c.keys).map((k) => keyView(k, c)) : [],
      assets: c ? assetsView(assetTable(c)) : [],
      acts: c?.opCount ?? 0, height: s.height,
      revoked: c ? revocationsOf(c.governance).map((r) => ({ serial: r.serial, holder: r.holder, id: r.id, reason: r.reason, notAfterMs: r.notAfterMs, sinceIndex: r.sinceIndex })) : [],
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Decisions
  // ---------------------------------------------------------------------------------------------

  async proposeDecision(caller: Operator, actionJson: string, ttlMs: number): Promise<PendingDecision> {
    requireAction(caller, 'propose', 'propose decisions');
    let raw: unknown;
    try {
      raw = JSON.parse(actionJson);
    } catch (e) {
      throw new CustodyError('INVALID_ARGUMENT', `action_json is not JSON: ${(e as Error).message}`);
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new CustodyError('INVALID_ARGUMENT', 'action_json must be an object with a "kind"');
    const o = { ...(raw as Record<string, unknown>) };
    const c = cluster(this.ledger);
    let act: Act | null = null;
    if (o.kind === 'KeyActivated' && o.keyReadyCid === undefined) {
      const e = c.keys[String(o.keyId)]?.epochs[String(o.keyEpoch)];
      if (e?.keyReadyCid == null) throw new CustodyError('KEY_NOT_PUBLISHED', `key ${String(o.keyId)} epoch ${String(o.keyEpoch)} has no published key object`);
      o.keyReadyCid = toHex(e.keyReadyCid);
    }
    if ((o.kind === 'PublicationReleased' || o.kind === 'ActApproved') && (o.actCid === undefined || o.displayHash === undefined)) {
      // The approval binds the act (its cid) and the display an approver is shown (its digest),
      // both taken from the act itself: a caller's own values are checked by the ledger.
      const op = Object.hasOwn(c.ops, String(o.opId)) ? c.ops[String(o.opId)] : undefined;
      if (op !== undefined) {
        o.actCid ??= toHex(op.actCid);
        o.displayHash ??= toHex(op.act.displayHash);
      } else if (o.kind === 'ActApproved' && o.act !== undefined) {
        // The act will be submitted as a custodian's signed request whose id is this opId and
        // whose custodian is the act's initiator (ledger/act-request-check.ts): both are fixed
        // here, so the approval names exactly the act that request will be.
        if (typeof o.opId !== 'string' || !REQUEST_ID_RE.test(o.opId)) throw new CustodyError('INVALID_ARGUMENT', 'the opId of an act proposed for approval is the request id its custodian will sign: 32 lowercase hex characters');
        const custodian = (o.act as { custodian?: unknown }).custodian ?? caller.id;
        if (typeof custodian !== 'string' || custodian === '') throw new CustodyError('INVALID_ARGUMENT', 'act.custodian must be a roster id');
        act = actFor(this.ledger.state(), actRequestOf(o.act), custodian).act;
        o.actCid ??= toHex(actCid(act));
        o.displayHash ??= toHex(act.displayHash);
      } else throw new CustodyError('UNKNOWN_SESSION', `no act ${String(o.opId)}; an ActApproved for a new act names it as "act": {keyId, kind, tx (hex), keyEpoch?}`);
    }
    delete o.act;
    let action: DecisionBody['action'];
    try {
      const tmpl = decisionBodyFor(this.ledger.state(), { kind: 'Unfreeze' }, Date.now(), ttlMs || undefined);
      action = decisionBodyFromCbor({ ...(decisionBodyToCbor(tmpl) as object), action: jsonToCbor(o) } as CborValue).action;
    } catch (e) {
      if (e instanceof ShapeError) throw new CustodyError('PAYLOAD_REJECTED', `action: ${e.message}`);
      throw e;
    }
    if (!mayPropose(caller.role, action.kind)) throw new CustodyError('ROLE_NOT_ALLOWED', `${caller.id} (${caller.role}) may not propose ${action.kind}`);
    const body = decisionBodyFor(this.ledger.state(), action, Date.now(), ttlMs || undefined);
    const cid = toHex(decisionCid(body));
    // The proposer is the verified certificate's operator: the book's per-operator quota counts it.
    const v = await this.approvals().propose({ op: 'propose', body, act, proposer: caller.id });
    if (!v.ok) throw new CustodyError(v.reason ?? 'INTERNAL', v.detail);
    return this.getDecision(caller, cid);
  }

  private approvals(): NonNullable<LedgerPort['approvals']> {
    const a = this.ledger.approvals;
    if (a === undefined) throw new CustodyError('INTERNAL', `node ${this.nodeId} holds no approval book`);
    return a;
  }

  private view(r: PendingRecord): PendingDecision {
    return { cid: r.cid, body: r.body, approvals: [...r.approvals], state: this.approvals().book.complete(r, this.ledger.state()) ? 'approved' : 'pending', verdict: null, act: r.act };
  }

  private settle(p: PendingDecision): PendingDecision {
    this.settled.delete(p.cid);
    this.settled.set(p.cid, p);
    if (this.settled.size > approvalLimits.settledRememberedMax) this.settled.delete(this.settled.keys().next().value as string);
    return p;
  }

  getDecision(caller: Operator, cid: string): PendingDecision {
    requireAction(caller, 'read', 'read decisions');
    const k = cid.toLowerCase();
    const r = this.approvals().book.get(k);
    if (r !== undefined) return this.view(r);
    const p = this.settled.get(k) ?? this.appliedDecision(k);
    if (p === null) throw new CustodyError('UNKNOWN_SESSION', `no decision ${cid}: never proposed, expired, or superseded by another decision`);
    return p;
  }

  /** A governance decision the ledger applied, as a settled view (it survives restarts there). */
  private appliedDecision(cid: string): PendingDecision | null {
    for (const a of this.ledger.decisionsAfter(0)) {
      const d = decisionFromCbor(decode(a.decision));
      if (toHex(decisionCid(d.body)) === cid) return { cid, body: d.body, approvals: [...d.approvals], state: 'applied', verdict: null, act: null };
    }
    return null;
  }

  listDecisions(caller: Operator): PendingDecision[] {
    requireAction(caller, 'read', 'read decisions');
    const pending = this.approvals().book.list().map((r) => this.view(r));
    return [...pending, ...[...this.settled.values()].filter((p) => !pending.some((x) => x.cid === p.cid))];
  }

  needed(p: PendingDecision): number {
    return quorumFor(p.body.action.kind, cluster(this.ledger).governance.roster.quorum).needed;
  }

  async approveDecision(caller: Operator, cid: string, approverId: string, signature: Uint8Array): Promise<PendingDecision> {
    requireAction(caller, 'approve', 'approve decisions');
    if (approverId !== caller.id) throw new CustodyError('ROLE_NOT_ALLOWED', `${caller.id} may only approve as itself, not as ${approverId}`);
    const before = this.getDecision(caller, cid);
    if (before.state !== 'pending' && before.state !== 'approved') throw new CustodyError('INVALID_TRANSITION', `decision ${cid} is ${before.state}`);
    const c = cluster(this.ledger);
    const approver = c.governance.roster.approvers.find((a) => a.id === approverId);
    if (approver === undefined) throw new CustodyError('UNKNOWN_APPROVER', `${approverId} is not on the roster of governance epoch ${c.governance.epoch}`);
    if (!ed25519Verify(signature, decisionSigningBytes(before.body), approver.publicKey)) throw new CustodyError('SIGNATURE_INVALID', `the signature of ${approverId} does not verify over decision ${cid}`);
    // Checked here to answer at once; the book checks again when it applies the approval.
    const b = await this.approvals().propose({ op: 'approve', cid: fromHex(before.cid), approverId, signature });
    if (!b.ok) throw new CustodyError(b.reason ?? 'INTERNAL', b.detail);
    const p = this.getDecision(caller, cid);
    if (p.state === 'applied' || p.state === 'refused') return p; // another node submitted it meanwhile
    const d: GovernanceDecision = { body: p.body, approvals: p.approvals };
    const v = verifyDecision(d, c.governance.roster, c.clusterId, c.governance.epoch, Date.now());
    if (!v.ok) {
      if (v.reason === 'QUORUM_NOT_MET') return p; // still collecting
      this.settle({ ...p, state: 'refused' });
      throw new CustodyError(v.reason, v.detail);
    }
    if (p.body.action.kind === 'ActApproved') return p;
    return this.submitPending(p, d);
  }

  private async submitPending(p: PendingDecision, d: GovernanceDecision): Promise<PendingDecision> {
    const v = await this.ledger.propose({ type: 'GovernanceDecision', decision: d });
    // Two nodes may each take a last approval at once and both submit: the second is refused by
    // the ledger (its parent is no longer the head) although the decision applied.
    if (!v.ok && this.appliedDecision(p.cid) !== null) return this.settle({ ...p, state: 'applied', verdict: null });
    this.settle({ ...p, verdict: v, state: v.ok ? 'applied' : 'refused' });
    if (!v.ok) throw new CustodyError(v.reason ?? 'INTERNAL', v.detail);
    return this.settled.get(p.cid) as PendingDecision;
  }

  /** A complete decision as it is; the ledger decides (an under-quorum one is refused QUORUM_NOT_MET). */
  async submitDecision(caller: Operator, cbor: Uint8Array): Promise<PendingDecision> {
    requireAction(caller, 'submit-decision', 'submit decisions');
    let d: GovernanceDecision;
    try {
      d = decisionFromCbor(decode(cbor));
    } catch (e) {
      if (e instanceof ShapeError || e instanceof CustodyError) throw new CustodyError('PAYLOAD_REJECTED', `decision: ${(e as Error).message}`);
      throw e;
    }
    const cid = toHex(decisionCid(d.body));
    return this.submitPending({ cid, body: d.body, approvals: [...d.approvals], state: 'pending', verdict: null, act: null }, d);
  }

  // ---------------------------------------------------------------------------------------------
  // Acts and the chronicle
  // ---------------------------------------------------------------------------------------------

  /** An act in flight (in memory) or ended (possibly in the archive, a read from disk). */
  private async opOf(opId: string): Promise<OpRecord | undefined> {
    return cluster(this.ledger).ops[opId] ?? (await this.ledger.act?.(opId));
  }

  async act(caller: Operator, opId: string): Promise<ActSummary> {
    requireAction(caller, 'read', 'read acts');
    const op = await this.opOf(opId);
    if (op === undefined) throw new CustodyError('UNKNOWN_SESSION', `no act ${opId}`);
    return this.summary(op);
  }

  /**
   * An act with what its transaction says: `facts` parses it (1-3 ms), `finalized` also builds
   * the signed transaction, which verifies every signature first (about 5 ms per signature).
   */
  private summary(op: OpRecord, depth: 'finalized' | 'facts' | 'fields' = 'finalized'): ActSummary {
    const c = cluster(this.ledger);
    const notes = this.notes.notesOf(op.opId);
    if (depth === 'fields') return { op, notes };
    return { op, notes, tx: txSummaryOf(c, op.act, depth === 'finalized' ? signaturesOf(op) : []) };
  }

  /** The act an ActApproved in the book approves, with its transaction summary (null for other decisions). */
  pendingAct(p: PendingDecision): { act: Act; tx: TxSummary } | null {
    if (p.act === null) return null;
    return { act: p.act, tx: txSummaryOf(cluster(this.ledger), p.act, []) };
  }

  async chronicle(caller: Operator, limit: number): Promise<{ acts: ActSummary[]; keys: KeyRecord[] }> {
    requireAction(caller, 'read', 'read the chronicle');
    const c = cluster(this.ledger);
    const n = Math.min(limit || CHRONICLE_ACTS_MAX, CHRONICLE_ACTS_MAX);
    const ended = (await this.ledger.endedActs?.(n)) ?? [];
    const ops = [...ended, ...Object.values(c.ops)].sort((a, b) => (a.history[0]?.index ?? 0) - (b.history[0]?.index ?? 0));
    const shown = ops.slice(-n);
    // The newest acts with their facts; finalized transactions only in ShowAct (node.chronicleFactsActsMax).
    const first = shown.length - nodeLimits.chronicleFactsActsMax;
    return { acts: shown.map((op, i) => this.summary(op, i >= first ? 'facts' : 'fields')), keys: Object.values(c.keys) };
  }

  /**
   * Submits the act a custodian's signed request asks for (`requestCbor`: the canonical CBOR of
   * actRequestToCbor, ledger/act-request.ts). The node derives the act from the request's
   * transaction against the key as the ledger holds it (initiator = the custodian, opId = the
   * request id), checks the request as every node will at apply (a custodian of the roster in
   * force, its signature, this cluster, the window around this node's clock) and what it declares,
   * and proposes nothing when one fails. With `approvalCid` the act must be the one that approved
   * ActApproved in the book names (same opId, same act), and travels with it.
   *
   * Threat: the caller holds an operator certificate with the custodian role but not necessarily a
   * custodian's key: without the key there is no request, and without a request no act.
   */
  async submitAct(caller: Operator, requestCbor: Uint8Array, approvalCid: string): Promise<ActSummary> {
    requireAction(caller, 'submit-act', 'submit signing acts');
    const c = cluster(this.ledger);
    let request: SignedActRequest;
    try {
      request = actRequestFromCbor(decode(requestCbor));
    } catch (e) {
      throw new CustodyError('REQUEST_UNSIGNED', `the request is not a well-formed signed act request: ${(e as Error).message}`);
    }
    const b = request.body;
    const req: ActRequest = {
      keyId: b.keyId, kind: b.kind, tx: b.tx, keyEpoch: b.keyEpoch,
      declared: { ...(b.declared.asset !== '' ? { asset: b.declared.asset } : {}), ...(b.declared.amount !== '' ? { amount: BigInt(b.declared.amount) } : {}), ...(b.declared.destination !== '' ? { destination: b.declared.destination } : {}) },
    };
    const opId = b.requestId;
    let approval: GovernanceDecision | null = null;
    const act = actFor(this.ledger.state(), req, b.custodian).act;
    if (approvalCid !== '') {
      const r = this.approvals().book.get(approvalCid.toLowerCase());
      const p = r === undefined ? undefined : this.view(r);
      if (p === undefined || p.body.action.kind !== 'ActApproved' || p.act === null) throw new CustodyError('UNKNOWN_SESSION', `no pending ActApproved decision ${approvalCid} for a new act`);
      if (p.state !== 'approved') throw new CustodyError('QUORUM_NOT_MET', `decision ${approvalCid} has ${p.approvals.length} of ${this.needed(p)} approvals`);
      if (p.body.action.opId !== opId) throw new CustodyError('BINDING_MISMATCH', `decision ${approvalCid} approves act ${p.body.action.opId}; the request is ${opId}`);
      if (!bytesEqual(actCid(act), actCid(p.act))) throw new CustodyError('BINDING_MISMATCH', `decision ${approvalCid} approves another act than the one this request asks for`);
      approval = { body: p.body, approvals: p.approvals };
    }
    // The ledger's own check, at this node's clock: a request every node would deny is refused here
    // before anything is proposed (the ledger checks again at the entry's stamp).
    const v0 = verifyActRequest({ opId, act, request }, { clusterId: c.clusterId, roster: c.governance.roster, nowMs: Math.max(Date.now(), this.ledger.state().clockMs) });
    if (!v0.ok) throw new CustodyError(v0.reason, v0.detail);
    const me = c.nodes[this.nodeId];
    if (me === undefined) throw new CustodyError('UNKNOWN_NODE', `${this.nodeId} is not on the roster`);
    const v = await this.ledger.propose({ type: 'ActSubmitted', opId, act, approval, request, nodeId: me.id, passport: me.passport });
    if (!v.ok) {
      const denied = v.applied && (v.opState ?? 'Denied') === 'Denied';
      throw new CustodyError(v.reason ?? 'INTERNAL', `${v.detail}${v.applied ? ` (act ${opId} journaled ${v.opState ?? 'Denied'}${denied ? await this.recordDenial(opId, me) : ''})` : ''}`);
    }
    return { ...(await this.act(caller, opId)), verdict: v };
  }

  /**
   * Enters a Denied act's verdict in the log (ActDenialRecorded, ledger/apply.ts denialRecorded),
   * so its evidence bundle proves the reason and rule by an entry. Says how it went, for the
   * caller's refusal message: the act is Denied either way, and a missing record only leaves the
   * verdict to the exporting node's word (the verifier says so).
   */
  private async recordDenial(opId: string, me: { id: string; passport: string }): Promise<string> {
    const op = await this.opOf(opId);
    if (op === undefined || op.state !== 'Denied') return '';
    try {
      const r = await this.ledger.propose({ type: 'ActDenialRecorded', opId, reason: op.reason ?? 'POLICY_DENIED', ruleDigest: denialRuleDigest(op.rule), nodeId: me.id, passport: me.passport });
      return r.ok ? `; its denial entered in the log at index ${r.index}` : `; its denial was not entered in the log: ${r.reason ?? ''} ${r.detail}`;
    } catch (e) {
      return `; its denial was not entered in the log: ${isCustodyError(e) ? e.reason : 'INTERNAL'} ${(e as Error).message}`;
    }
  }

  /** Records a backup drill the caller ran: this node proposes BackupDrilled in its own name, stamped with its clock. */
  async recordDrill(caller: Operator, d: { keyId: string; keyEpoch: number; backupCids: Uint8Array[]; passed: boolean; reportDigest: Uint8Array }): Promise<{ index: number; detail: string }> {
    requireAction(caller, 'backup', 'record a backup drill');
    const c = cluster(this.ledger);
    const me = c.nodes[this.nodeId];
    if (me === undefined) throw new CustodyError('UNKNOWN_NODE', `${this.nodeId} is not on the roster`);
    const v = await this.ledger.propose({ type: 'BackupDrilled', ...d, drilledAtMs: Date.now(), nodeId: me.id, passport: me.passport });
    if (!v.ok) throw new CustodyError(v.reason ?? 'INTERNAL', v.detail);
    return { index: v.index, detail: v.detail };
  }

  async settleAct(caller: Operator, opId: string, confirmation: string): Promise<ActSummary> {
    requireAction(caller, 'settle-act', 'settle acts');
    const c = cluster(this.ledger);
    const me = c.nodes[this.nodeId] as { id: string; passport: string };
    const v = await this.ledger.propose({ type: 'ActSettled', opId, confirmation, nodeId: me.id, passport: me.passport });
    if (!v.ok) throw new CustodyError(v.reason ?? 'INTERNAL', v.detail);
    return { ...(await this.act(caller, opId)), verdict: v };
  }

  /**
   * Fencing by an operator is an approver-signed NodeFenced decision (the rule and its safety
   * argument are in ledger/apply.ts beside `fencing`). `decisionCbor` is the canonical CBOR of
   * the decision, carrying at least one approver signature made where the approver's key lives
   * (`custody admin fence --approver-key`); this node signs nothing on anyone's behalf.
   *
   * Threat: the caller holds an operator certificate with the approver role but not necessarily an
   * approver's key. Without a signature nothing happens (FENCE_UNSIGNED); a signature that does
   * not verify under the roster in force, or a signer off the roster, is refused with the
   * verifier's code. At quorum (EmergencyFreeze's, ledger/decision.ts quorumFor) the decision goes
   * to the ledger, which verifies it again, as does every kernel it reaches; below quorum it waits
   * in the approval book with the signatures it carries, for other approvers to add theirs
   * (`custody admin decision approve --cid`).
   */
  async fenceNode(caller: Operator, nodeId: string, decisionCbor: Uint8Array): Promise<PendingDecision> {
    requireAction(caller, 'fence', 'fence a node');
    if (decisionCbor.length === 0) throw new CustodyError('FENCE_UNSIGNED', `fencing ${nodeId} is a NodeFenced decision signed with an approver key (custody admin fence --approver-key); none was sent`);
    let d: GovernanceDecision;
    try {
      d = decisionFromCbor(decode(decisionCbor));
    } catch (e) {
      if (e instanceof ShapeError || e instanceof CustodyError) throw new CustodyError('PAYLOAD_REJECTED', `decision: ${(e as Error).message}`);
      throw e;
    }
    const a = d.body.action;
    if (a.kind !== 'NodeFenced') throw new CustodyError('PAYLOAD_REJECTED', `a fence is a NodeFenced decision, not ${a.kind}`);
    if (a.nodeId !== nodeId) throw new CustodyError('BINDING_MISMATCH', `the decision fences ${a.nodeId}, not ${nodeId}`);
    if (d.approvals.length === 0) throw new CustodyError('FENCE_UNSIGNED', `the NodeFenced decision for ${nodeId} carries no approver signature`);
    const c = cluster(this.ledger);
    const cid = toHex(decisionCid(d.body));
    const v = verifyDecision(d, c.governance.roster, c.clusterId, c.governance.epoch, Math.max(Date.now(), this.ledger.state().clockMs));
    if (v.ok) return this.submitPending({ cid, body: d.body, approvals: [...d.approvals], state: 'pending', verdict: null, act: null }, d);
    // QUORUM_NOT_MET comes last in verifyDecision: every signature present verified and may count.
    if (v.reason !== 'QUORUM_NOT_MET') throw new CustodyError(v.reason, v.detail);
    const book = this.approvals();
    const p = await book.propose({ op: 'propose', body: d.body, act: null, proposer: caller.id });
    if (!p.ok) throw new CustodyError(p.reason ?? 'INTERNAL', p.detail);
    for (const x of d.approvals) {
      const r = await book.propose({ op: 'approve', cid: fromHex(cid), approverId: x.approverId, signature: x.signature });
      if (!r.ok) throw new CustodyError(r.reason ?? 'INTERNAL', r.detail);
    }
    return this.getDecision(caller, cid);
  }

  async evidence(caller: Operator, opId: string): Promise<string> {
    requireAction(caller, 'read', 'export evidence');
    const c = cluster(this.ledger);
    const op = await this.opOf(opId);
    if (op === undefined) throw new CustodyError('UNKNOWN_SESSION', `no act ${opId}`);
    // The approval an act was submitted with, signatures included, is part of its ledger record.
    const approval = op.approval;
    if (op.approvalCid !== null && (approval === null || !bytesEqual(decisionCid(approval.body), op.approvalCid))) {
      throw new CustodyError('STORAGE_CORRUPT', `the approval recorded with ${opId} does not match its approval cid`);
    }
    return JSON.stringify(evidenceBundleOf(c, op, approval), null, 2);
  }

  /**
   * Calls `l` with the act now and after every change, until `l` returns false or the act ends.
   * An act that ended may already be in the archive: it is read from there (asynchronously; an
   * act found nowhere ends the watch through `onError` with UNKNOWN_SESSION).
   */
  watch(caller: Operator, opId: string, l: (a: ActSummary) => boolean, onEnd: () => void, onError: (e: unknown) => void = () => undefined): () => void {
    requireAction(caller, 'read', 'watch acts');
    let last = '';
    let done = false;
    const show = (op: OpRecord): void => {
      const notes = this.notes.notesOf(opId);
      const sig = `${op.state}/${op.history.length}/${notes.length}/${op.releasedBy ? 'r' : ''}`;
      if (sig === last) return;
      last = sig;
      const more = l({ ...this.summary(op), notes });
      if (!more || TERMINAL_OP_STATES.includes(op.state)) stop();
    };
    const emit = (): void => {
      if (done) return;
      const op = this.ledger.state().cluster?.ops[opId];
      if (op === undefined) {
        // Ended and archived since the last change: its final state comes from the archive.
        if (this.ledger.act !== undefined && last !== '') {
          void this.ledger.act(opId).then((a) => { if (a !== undefined && !done) show(a); }, (e: unknown) => { stop(); onError(e); });
        }
        return;
      }
      show(op);
    };
    const unsubs = [this.ledger.subscribe(() => queueMicrotask(emit)), this.notes.onNote((n) => n.opId === opId && queueMicrotask(emit))];
    const stop = (): void => {
      if (done) return;
      done = true;
      for (const u of unsubs) u();
      onEnd();
    };
    if (this.ledger.state().cluster?.ops[opId] === undefined) {
      if (this.ledger.act === undefined) {
        stop();
        throw new CustodyError('UNKNOWN_SESSION', `no act ${opId}`);
      }
      void this.ledger.act(opId).then((a) => {
        if (done) return;
        if (a === undefined) {
          stop();
          onError(new CustodyError('UNKNOWN_SESSION', `no act ${opId}`));
        } else show(a);
      }, (e: unknown) => { stop(); onError(e); });
      return stop;
    }
    emit();
    return stop;
  }
}

function actRequestOf(x: unknown): ActRequest {
  if (x === null || typeof x !== 'object') throw new CustodyError('INVALID_ARGUMENT', 'act must be an object');
  const o = x as Record<string, unknown>;
  if (typeof o.keyId !== 'string' || o.keyId.length === 0) throw new CustodyError('INVALID_ARGUMENT', 'act.keyId is required');
  if (typeof o.kind !== 'string' || !TX_KINDS.includes(o.kind as TxKind)) throw new CustodyError('TX_UNSUPPORTED', `act.kind must be one of ${TX_KINDS.join(', ')}`);
  if (typeof o.tx !== 'string' || !/^([0-9a-f]{2})+$/i.test(o.tx)) throw new CustodyError('INVALID_ARGUMENT', 'act.tx must be the transaction in hex');
  for (const k of ['asset', 'amount', 'destination', 'display', 'messageDigest']) {
    if (o[k] !== undefined) throw new CustodyError('INVALID_ARGUMENT', `act.${k} is derived from the transaction and cannot be given`);
  }
  const keyEpoch = o.keyEpoch === undefined ? undefined : Number(o.keyEpoch);
  if (keyEpoch !== undefined && !(Number.isSafeInteger(keyEpoch) && keyEpoch >= 0)) throw new CustodyError('INVALID_ARGUMENT', 'act.keyEpoch must be a natural number');
  return { keyId: o.keyId, kind: o.kind as TxKind, tx: fromHex(o.tx.toLowerCase()), ...(keyEpoch !== undefined ? { keyEpoch } : {}) };
}

/** The key's own address on its network ('' without a group key or a network with addresses). */
export function keyAddress(c: ClusterState | null, k: KeyRecord): string {
  const key = c === null ? null : keyContextOf(c, k.id);
  if (key === null) return '';
  try {
    if (key.network.startsWith('bitcoin-') && key.scheme === 'taproot') return taprootAddress(key);
    if (key.network.startsWith('solana-') && key.scheme === 'ed25519') return solanaAddress(key);
  } catch {
    return '';
  }
  return '';
}

export function keyView(k: KeyRecord, c: ClusterState | null = null) {
  return {
    id: k.id, scheme: k.scheme, status: k.status, activeEpoch: k.activeEpoch ?? -1, publicKey: k.publicKey ? toHex(k.publicKey) : '',
    epochs: Object.values(k.epochs).map((e) => `${e.epoch}:${e.status}`),
    network: k.network, address: keyAddress(c, k),
    dealers: Object.values(k.epochs).flatMap((e) => (dealersReadyOf(e).length === 0 ? [] : [`${e.epoch}:${dealersReadyOf(e).join(',')}`])),
  };
}

export function assetsView(t: AssetTable) {
  return Object.keys(t).sort().map((symbol) => {
    const a = t[symbol]!;
    return { symbol, network: a.network, mint: a.onChain === 'native' ? '' : a.onChain.mint, decimals: a.decimals };
  });
}


/** The transaction part of an act's view: kind, bytes, initiator, the facts and the signed transaction. */
export function actTxView(act: Act, tx: TxSummary | undefined) {
  const f = tx?.facts ?? null;
  const dec = (symbol: string): number | undefined => (tx !== undefined && Object.hasOwn(tx.assets, symbol) ? tx.assets[symbol]!.decimals : undefined);
  const units = (amount: bigint, symbol: string): string => {
    const d = dec(symbol);
    return d === undefined ? `${amount}` : formatUnits(amount, d);
  };
  return {
    initiator: act.initiator, kind: act.kind, tx: Buffer.from(act.tx),
    display: f?.display ?? '', displayHash: toHex(act.displayHash), network: f?.network ?? '',
    outputs: (f?.outputs ?? []).map((o) => ({ address: o.address, amount: units(o.amount, o.asset), asset: o.asset, change: o.change, amountBase: o.amount.toString() })),
    fee: f === null ? '' : `${units(f.fee, f.feeAsset)} ${f.feeAsset}`,
    factsRefused: tx?.refused ? `${tx.refused.reason}: ${tx.refused.detail}` : '',
    signatures: (tx?.signatures ?? []).map(toHex),
    signedTx: tx?.signed?.hex ?? '', txid: tx?.signed?.id ?? '',
    amountUnits: dec(act.asset) === undefined ? '' : units(act.amount, act.asset),
  };
}

export function actView(a: ActSummary) {
  const op = a.op;
  const sigs = signaturesOf(op);
  return {
    opId: op.opId, state: op.state, reason: op.reason ?? '', keyId: op.act.keyId, keyEpoch: op.act.keyEpoch, asset: op.act.asset,
    amount: op.act.amount.toString(), destination: op.act.destination, messageDigest: toHex(op.act.messageDigest),
    history: op.history.map((h) => ({ state: h.state, index: h.index })),
    receipts: op.receipts.map((r) => ({ type: String((r as { type?: unknown }).type), cid: toHex(receiptCid(r)), index: Number((r as { index?: unknown }).index) })),
    signature: sigs.length > 0 ? toHex(sigs[0]!) : '', confirmation: op.confirmation ?? '',
    permitId: op.permitId ? toHex(op.permitId) : '',
    signingSet: (op.signingSet?.commitments ?? []).map((m) => ({
      nodeId: m.nodeId, identifier: m.identifier, hiding: m.nonces[0] ? toHex(m.nonces[0].hiding) : '', binding: m.nonces[0] ? toHex(m.nonces[0].binding) : '', counter: m.nonces[0]?.counter ?? 0,
      nonces: m.nonces.map((n) => ({ counter: n.counter, hiding: toHex(n.hiding), binding: toHex(n.binding) })),
    })),
    notes: a.notes.map((n) => ({ atMs: n.atMs, text: n.text, reason: n.reason ?? '' })),
    ...(a.verdict ? { verdict: verdictView(a.verdict) } : {}),
    ...actTxView(op.act, a.tx ?? undefined),
    signatures: sigs.map(toHex),
    rule: op.rule?.id ?? '', ruleAction: op.rule?.action ?? '', ruleDetail: op.rule?.detail ?? '',
    custodian: op.request?.body.custodian ?? '', requestId: op.request?.body.requestId ?? '', requestIssuedMs: op.request?.body.issuedMs ?? 0,
    request: op.request === null ? Buffer.alloc(0) : Buffer.from(encode(actRequestToCbor(op.request))),
  };
}

export function verdictView(v: LedgerVerdict) {
  return { ok: v.ok, index: v.index, reason: (v.reason ?? '') as ReasonCode | '', detail: v.detail };
}

/** A decision's view; `pending` is the act an ActApproved for a new act approves (AdminBackend.pendingAct). */
export function decisionView(p: PendingDecision, needed: number, pending: { act: Act; tx: TxSummary } | null = null) {
  const action = p.body.action;
  const opId = action.kind === 'ActApproved' || action.kind === 'PublicationReleased' ? action.opId : '';
  return {
    cid: p.cid, bodyCbor: Buffer.from(encode(decisionBodyToCbor(p.body))), bodyJson: JSON.stringify(cborToJson(decisionBodyToCbor(p.body))),
    approvals: p.approvals.map((a) => a.approverId), needed, state: p.state, ...(p.verdict ? { verdict: verdictView(p.verdict) } : {}),
    ...(pending === null ? {} : {
      act: {
        opId, state: 'Proposed', keyId: pending.act.keyId, keyEpoch: pending.act.keyEpoch, asset: pending.act.asset, amount: pending.act.amount.toString(),
        destination: pending.act.destination, messageDigest: toHex(pending.act.messageDigest), ...actTxView(pending.act, pending.tx),
      },
    }),
  };
}
