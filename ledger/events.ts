/**
 * The events of the cluster event log and the operation journal, and the log entry that carries
 * one of them.
 *
 *   interface LedgerEntry { index; stampMs; event: Uint8Array }
 *     index    the Raft log index of the entry (strictly increasing; gaps are Raft's own entries)
 *     stampMs  the proposer's wall-clock stamp in ms; the ledger's only source of time
 *     event    encodeEvent(e): the canonical CBOR of one LedgerEvent
 *
 * Events fall in three groups:
 *  - governance, authorized by a GovernanceDecision (ledger/decision.ts) carried in the event:
 *    `GovernanceDecision` whose action kind names the effect (KeyActivated, NodeAdded, ...);
 *  - node statements, signed by a node's identity key (SignedStatement): DkgRound1Published,
 *    KeyReady, RedealReady (a holder can deal a refresh / reshare, ledger/dealer-set.ts),
 *    FencingRecord; two conflicting statements by one node are EquivocationEvidence;
 *  - the operation journal, proposed by a node under its passport: ActSubmitted ... ActSettled,
 *    with ActSigningSetFixed between the permit and the execution (the one signing set of a permit),
 *    KeyBackedUp (the node wrote the backup of its share of a key epoch, ledger/backup-policy.ts),
 *    ShareRecovered (its kernel imported that share, recovered under a RecoveryAuthorized) and
 *    ShareRepaired (its kernel's share was rebuilt by helpers under a RepairAuthorized) and
 *    TrustPolicySigned (its cosignature of the trust policy block after a roster change,
 *    ledger/trust-chain.ts).
 * ClusterGenesis and KeyObjectPublished need no signature: genesis is the root of trust (its cid is
 * the cluster's identity) and KeyObjectPublished is derived entirely from signed KeyReady
 * statements already in the log.
 */
import { ledger as limits, tx as txLimits } from '../proto/limits.js';
import { isReasonCode, type ReasonCode } from '../proto/reasons.js';
import { type CborValue, decode, encode, digest, domainMessage } from './encoding.js';
import {
  type ApproverRoster, type GovernanceDecision, type NodeInfo,
  ShapeError, obj, str, int, amount, bytes, arr, oneOf,
  decisionCid, decisionFromCbor, decisionToCbor, nodeFromCbor, nodeToCbor, policyFromCbor, policyToCbor, rosterFromCbor, rosterToCbor,
  ed25519Sign, ed25519Verify,
} from './decision.js';
import { TX_KINDS, type TxKind } from './tx/types.js';
import { type SignedActRequest, actRequestFromCbor, actRequestToCbor } from './act-request.js';
import type { PolicyDocument } from './policy-engine/types.js';
import { type ClockReading, clockReadingToCbor, clockReadingsFromCbor } from './clock-reading.js';

export interface LedgerEntry {
  readonly index: number;
  readonly stampMs: number;
  readonly event: Uint8Array;
}

// ------------------------------------------------------------------------------------------------
// Node statements
// ------------------------------------------------------------------------------------------------

export const STATEMENT_DOMAIN = 'custody-ledger/v1/statement';

/**
 * A statement a node signs with its identity key. `kind` and `slot` name what is stated about
 * (e.g. KeyReady for key k1 epoch 0); `content` is what the node says. One node signing two
 * different contents for one (kind, slot) is equivocation.
 */
export interface SignedStatement {
  readonly clusterId: string;
  readonly nodeId: string;
  readonly kind: string;
  readonly slot: CborValue;
  readonly content: CborValue;
  /** Raw 64-byte Ed25519 signature over statementSigningBytes. */
  readonly signature: Uint8Array;
}

export type UnsignedStatement = Omit<SignedStatement, 'signature'>;

function statementBodyToCbor(s: UnsignedStatement): CborValue {
  return { clusterId: s.clusterId, nodeId: s.nodeId, kind: s.kind, slot: s.slot, content: s.content };
}

export function statementSigningBytes(s: UnsignedStatement): Uint8Array {
  return domainMessage(STATEMENT_DOMAIN, encode(statementBodyToCbor(s)));
}

/** The statement's identity (signature excluded, like a decision's). */
export function statementCid(s: UnsignedStatement): Uint8Array {
  return digest(STATEMENT_DOMAIN, encode(statementBodyToCbor(s)));
}

export function signStatement(s: UnsignedStatement, identitySecretKey: Uint8Array): SignedStatement {
  return { ...s, signature: ed25519Sign(statementSigningBytes(s), identitySecretKey) };
}

export function verifyStatement(s: SignedStatement, identityKey: Uint8Array): boolean {
  return ed25519Verify(s.signature, statementSigningBytes(s), identityKey);
}

export function statementToCbor(s: SignedStatement): CborValue {
  return { ...(statementBodyToCbor(s) as object), signature: s.signature } as CborValue;
}

export function statementFromCbor(v: CborValue | undefined): SignedStatement {
  const o = obj(v, 'statement', ['clusterId', 'nodeId', 'kind', 'slot', 'content', 'signature']);
  return {
    clusterId: str(o.clusterId, 'statement.clusterId'),
    nodeId: str(o.nodeId, 'statement.nodeId'),
    kind: str(o.kind, 'statement.kind'),
    slot: o.slot as CborValue,
    content: o.content as CborValue,
    signature: bytes(o.signature, 'statement.signature', 64),
  };
}

// ------------------------------------------------------------------------------------------------
// The typed act
// ------------------------------------------------------------------------------------------------

/**
 * An act: an unsigned transaction for a threshold key to sign, with the fields every node derives
 * from it. The submitting node fills the derived fields in with `deriveActFields` (ledger/tx/act.ts)
 * against its ledger's key context and asset table; every node re-derives them when it applies
 * ActSubmitted and records the act Denied (TX_DECLARED_MISMATCH) when one differs, so nothing in
 * an act says more than its transaction. Amounts are integers in the asset's smallest unit.
 */
export interface Act {
  readonly keyId: string;
  readonly keyEpoch: number;
  /** The custodian who asked for the act: the signer of its request (ActSubmitted.request.body.custodian). */
  readonly initiator: string;
  readonly kind: TxKind;
  /** The unsigned transaction in its chain's own format: PSBT bytes, the Solana message bytes, or the raw bytes. */
  readonly tx: Uint8Array;
  // Derived from tx (ledger/tx/act.ts fieldsOf):
  readonly asset: string;
  readonly amount: bigint;
  /** The non-change outputs' addresses in transaction order, each once, joined by ' ' ('' when none). */
  readonly destination: string;
  /** Digest of the transaction's canonical display (what an approval signs). */
  readonly displayHash: Uint8Array;
  /** messagesDigest of the messages the key signs for the transaction (what the permit and every kernel bind to). */
  readonly messageDigest: Uint8Array;
}

export const ACT_DOMAIN = 'custody-ledger/v1/act';

/** The most bytes an act's transaction of `kind` may have (proto/limits.ts tx). */
export function txBytesMax(kind: TxKind): number {
  switch (kind) {
    case 'btc-psbt': return txLimits.psbtBytesMax;
    case 'solana': return txLimits.solanaMessageBytesMax;
    case 'raw': return txLimits.rawBytesMax;
  }
}

export function actToCbor(a: Act): CborValue {
  return {
    keyId: a.keyId, keyEpoch: a.keyEpoch, initiator: a.initiator, kind: a.kind, tx: a.tx,
    asset: a.asset, amount: a.amount, destination: a.destination, displayHash: a.displayHash, messageDigest: a.messageDigest,
  };
}

export function actFromCbor(v: CborValue | undefined): Act {
  const o = obj(v, 'act', ['keyId', 'keyEpoch', 'initiator', 'kind', 'tx', 'asset', 'amount', 'destination', 'displayHash', 'messageDigest']);
  const kind = oneOf(o.kind, 'act.kind', TX_KINDS);
  const tx = bytes(o.tx, 'act.tx');
  if (tx.length < 1 || tx.length > txBytesMax(kind)) throw new ShapeError(`act.tx: a ${kind} transaction is 1 to ${txBytesMax(kind)} bytes, not ${tx.length}`);
  const destination = o.destination;
  if (typeof destination !== 'string' || Buffer.byteLength(destination, 'utf8') > txLimits.destinationBytesMax) {
    throw new ShapeError(`act.destination: expected text of at most ${txLimits.destinationBytesMax} bytes`);
  }
  return {
    keyId: str(o.keyId, 'act.keyId'),
    keyEpoch: int(o.keyEpoch, 'act.keyEpoch'),
    initiator: str(o.initiator, 'act.initiator', limits.textBytesMax),
    kind,
    tx,
    asset: str(o.asset, 'act.asset'),
    amount: amount(o.amount, 'act.amount'),
    destination,
    displayHash: bytes(o.displayHash, 'act.displayHash', 32),
    messageDigest: bytes(o.messageDigest, 'act.messageDigest', 32),
  };
}

/** The act's identity: approvals (ActApproved, PublicationReleased) name it as their parent. */
export function actCid(a: Act): Uint8Array {
  return digest(ACT_DOMAIN, encode(actToCbor(a)));
}

// ------------------------------------------------------------------------------------------------
// The signing set of a permit
// ------------------------------------------------------------------------------------------------

/**
 * One signer's entry in a permit's signing set: the node, its FROST identifier in the key epoch
 * (RFC 9591 §4.1, 1-based in the order of the epoch's participants) and, for each message the act
 * signs (in the act's order), its round-one nonce commitments (RFC 9591 §5.1: hiding D, binding E,
 * serialized group elements) with the kernel's counter of that presigned nonce pair. Counters
 * ascend strictly within a member: one nonce pair per message, never one pair for two messages
 * (reusing a nonce across two messages reveals the share, RFC 9591 §5.1 and §10.4).
 */
export interface SigningNonce {
  readonly counter: number;
  readonly hiding: Uint8Array;
  readonly binding: Uint8Array;
}

export interface SigningSetMember {
  readonly nodeId: string;
  readonly identifier: string;
  readonly nonces: readonly SigningNonce[];
}

export function memberToCbor(m: SigningSetMember): CborValue {
  return { nodeId: m.nodeId, identifier: m.identifier, nonces: m.nonces.map((n) => ({ counter: n.counter, hiding: n.hiding, binding: n.binding })) };
}

export function memberFromCbor(v: CborValue | undefined, what: string): SigningSetMember {
  const o = obj(v, what, ['nodeId', 'identifier', 'nonces']);
  const nonces = arr(o.nonces, `${what}.nonces`, txLimits.messagesPerActMax).map((x, i) => {
    const no = obj(x, `${what}.nonces[${i}]`, ['counter', 'hiding', 'binding']);
    return { counter: int(no.counter, `${what}.nonces[${i}].counter`, 1), hiding: elementBytes(no.hiding, `${what}.nonces[${i}].hiding`), binding: elementBytes(no.binding, `${what}.nonces[${i}].binding`) };
  });
  if (nonces.length < 1) throw new ShapeError(`${what}.nonces: at least one nonce pair`);
  for (let i = 1; i < nonces.length; i++) {
    if ((nonces[i] as SigningNonce).counter <= (nonces[i - 1] as SigningNonce).counter) throw new ShapeError(`${what}.nonces: counters must ascend strictly`);
  }
  return { nodeId: str(o.nodeId, `${what}.nodeId`), identifier: str(o.identifier, `${what}.identifier`), nonces };
}

/** The last (highest) counter of a member: what its kernel has consumed once the act executed. */
export function lastCounter(m: SigningSetMember): number {
  return (m.nonces[m.nonces.length - 1] as SigningNonce).counter;
}

/** The commitment list of message `i` (RFC 9591 §5.2 takes one list per message signed). */
export function listFor(members: readonly SigningSetMember[], i: number): { identifier: string; hiding: Uint8Array; binding: Uint8Array }[] {
  return members.map((m) => {
    const n = m.nonces[i] as SigningNonce;
    return { identifier: m.identifier, hiding: n.hiding, binding: n.binding };
  });
}

/** A serialized group element: 32 bytes (Ed25519) or 33 (SEC1 compressed secp256k1). */
function elementBytes(v: CborValue | undefined, what: string): Uint8Array {
  const b = bytes(v, what);
  if (b.length !== 32 && b.length !== 33) throw new ShapeError(`${what}: expected 32 or 33 bytes`);
  return b;
}

// ------------------------------------------------------------------------------------------------
// Events
// ------------------------------------------------------------------------------------------------

/**
 * Proposer identity carried by journal events: a fenced passport is refused, and the event is
 * authenticated by the proposing node itself.
 *
 * Passports and node ids are public (genesis, status), so `{ nodeId, passport }` alone names a
 * node without proving anything: any host that can append to the log (a hostile leader, a node
 * that forges a proposal) could journal an ActAborted or an ActPermitIssued in another node's name.
 * `sig` is that node's Ed25519 signature, by the identity key its NodeRecord holds (the key of its
 * statements and checkpoint cosignatures), over the event without `sig` under the domain
 * `custody-ledger/v1/proposer` and the cluster id (ledger/proposer-sig.ts). The ledger refuses an
 * event whose signature is missing or does not verify (PROPOSER_SIGNATURE_INVALID,
 * ledger/apply.ts checkProposer), so an event in a node's name is one that node proposed.
 *
 * Optional in the type and in the encoding only so an event can be built before the proposing
 * node signs it (node/lifecycle/driver-ledger.ts signs every one at its single proposal point);
 * an event without it is well-formed and refused.
 */
export interface Proposer {
  readonly nodeId: string;
  readonly passport: string;
  /** 64-byte Ed25519 signature by the node's identity key (ledger/proposer-sig.ts). */
  readonly sig?: Uint8Array;
}

export type LedgerEvent =
  | { readonly type: 'ClusterGenesis'; readonly clusterId: string; readonly nodes: readonly NodeInfo[]; readonly roster: ApproverRoster; readonly policy: PolicyDocument }
  | { readonly type: 'GovernanceDecision'; readonly decision: GovernanceDecision }
  /** statement.kind 'DkgRound1Published', slot { keyId, keyEpoch }, content { round1Cid } */
  | { readonly type: 'DkgRound1Published'; readonly statement: SignedStatement }
  /** statement.kind 'KeyReady', slot { keyId, keyEpoch }, content { groupKey } */
  | { readonly type: 'KeyReady'; readonly statement: SignedStatement }
  /**
   * statement.kind 'RedealReady', slot { keyId, keyEpoch }, content { fromEpoch }: the signer, a
   * holder of the key's active epoch `fromEpoch`, can deal the refresh / reshare to `keyEpoch`
   * (its kernel answered with its share's package); the first t fix the dealers (ledger/dealer-set.ts).
   */
  | { readonly type: 'RedealReady'; readonly statement: SignedStatement }
  | { readonly type: 'KeyObjectPublished'; readonly keyId: string; readonly keyEpoch: number; readonly keyReadyCid: Uint8Array }
  /** statement.kind 'FencingRecord' by the reporting node, slot { nodeId, passport }, content { reason } */
  | { readonly type: 'FencingRecord'; readonly statement: SignedStatement }
  | { readonly type: 'EquivocationEvidence'; readonly first: SignedStatement; readonly second: SignedStatement }
  /**
   * `request`: the custodian's signed request the act is (ledger/act-request.ts); null only in an
   * event every node records Denied REQUEST_UNSIGNED. opId is the request's id.
   */
  | ({ readonly type: 'ActSubmitted'; readonly opId: string; readonly act: Act; readonly approval: GovernanceDecision | null; readonly request: SignedActRequest | null } & Proposer)
  | ({ readonly type: 'ActPermitIssued'; readonly opId: string } & Proposer)
  /**
   * The commitment list the act's permit is signed with, fixed before any signer is asked for a
   * share: sorted by identifier, as RFC 9591 §5.2/§5.3 take it. At most one per permit.
   */
  | ({ readonly type: 'ActSigningSetFixed'; readonly opId: string; readonly permitId: Uint8Array; readonly commitments: readonly SigningSetMember[] } & Proposer)
  | ({ readonly type: 'ActExecuted'; readonly opId: string; readonly permitId: Uint8Array; readonly signatures: readonly Uint8Array[] } & Proposer)
  | ({ readonly type: 'ActPublished'; readonly opId: string } & Proposer)
  | ({ readonly type: 'ActSettled'; readonly opId: string; readonly confirmation: string } & Proposer)
  | ({ readonly type: 'ActAborted'; readonly opId: string; readonly reason: ReasonCode } & Proposer)
  /**
   * A Denied act's verdict, entered after its ActSubmitted so that the log itself (cosigned with
   * every checkpoint) states it: the reason code and the digest of the rule record the ledger
   * recorded with the act (denialRuleDigest). The ledger accepts it only when both are what it
   * recorded (ledger/apply.ts denialRecorded): a node cannot make a denial say anything else.
   */
  | ({ readonly type: 'ActDenialRecorded'; readonly opId: string; readonly reason: ReasonCode; readonly ruleDigest: Uint8Array } & Proposer)
  /**
   * Time passes: a leader's stamp while nothing else happens (ledger/apply.ts stampRefusal).
   * `readings`: voters' signed clock readings (ledger/clock-reading.ts); absent in a tick that
   * carries none (encoded without the field, as before readings existed).
   */
  | ({ readonly type: 'ClockTick'; readonly readings?: readonly ClockReading[] } & Proposer)
  /**
   * The proposing node wrote the backup of its share of key `keyId` epoch `keyEpoch` (its FROST
   * `identifier` there): `fileCid` is sha256 of the file's bytes, `recipientsDigest` the
   * BackupPolicy recipients it is encrypted to (ledger/backup-policy.ts).
   */
  | ({ readonly type: 'KeyBackedUp'; readonly keyId: string; readonly keyEpoch: number; readonly identifier: string; readonly fileCid: Uint8Array; readonly recipientsDigest: Uint8Array } & Proposer)
  /**
   * An operator drilled the backups of key `keyId` epoch `keyEpoch` through the proposing node
   * (node/guardian/drill.ts): `backupCids` are the KeyBackedUp cids it opened, `passed` its
   * verdict, `reportDigest` sha256 of its report, `drilledAtMs` when it ran (ledger/apply.ts
   * backupDrilled).
   */
  | ({ readonly type: 'BackupDrilled'; readonly keyId: string; readonly keyEpoch: number; readonly backupCids: readonly Uint8Array[]; readonly passed: boolean; readonly reportDigest: Uint8Array; readonly drilledAtMs: number } & Proposer)
  /**
   * The proposing node's kernel imported its share of key `keyId` epoch `keyEpoch` (its FROST
   * `identifier` there) recovered from its backup, under the RecoveryAuthorized decision
   * `decisionCid` (node/lifecycle/share-import.ts, kernel/recovery.ts).
   */
  | ({ readonly type: 'ShareRecovered'; readonly keyId: string; readonly keyEpoch: number; readonly identifier: string; readonly decisionCid: Uint8Array } & Proposer)
  /**
   * The proposing node's kernel holds its share of key `keyId` epoch `keyEpoch` (FROST
   * `identifier`) rebuilt by the helpers of the RepairAuthorized decision `decisionCid`
   * (kernel/repair.ts), checked against `verifyingShare` (share·G), which the ledger records: for
   * an enrolled participant it is the only record of its verifying share.
   */
  | ({ readonly type: 'ShareRepaired'; readonly keyId: string; readonly keyEpoch: number; readonly identifier: string; readonly decisionCid: Uint8Array; readonly verifyingShare: Uint8Array } & Proposer)
  /**
   * One admin API call the proposing node served (node/admin/audit.ts): who (the operator id and
   * role its client certificate names, the certificate's serial), what (the gRPC method, sha256 of
   * the request bytes as received), the verdict and its reason code ('' when allowed), and when
   * (`atMs`, the node's clock as the call ended). `callId` is the node's unique id of the call, so
   * a record entered twice is recognizable. Recorded, never interpreted: the state does not change.
   */
  | ({ readonly type: 'OperatorCall'; readonly callId: string; readonly operatorId: string; readonly role: string; readonly certSerial: string; readonly method: string; readonly argsDigest: Uint8Array; readonly verdict: OperatorVerdict; readonly reason: ReasonCode | ''; readonly atMs: number } & Proposer)
  /**
   * The proposing node, a node of the trust policy chain's head, signed the block that waits
   * (ledger/trust-chain.ts): `serial` and `blockDigest` (policyDigest of its text) name it,
   * `signature` is its cosignature/v1 signature over the text (8-byte timestamp || Ed25519) by
   * its note key `<origin>/<nodeId>`.
   */
  | ({ readonly type: 'TrustPolicySigned'; readonly serial: number; readonly blockDigest: Uint8Array; readonly signature: Uint8Array } & Proposer);

export const OPERATOR_VERDICTS = ['allowed', 'refused'] as const;
export type OperatorVerdict = (typeof OPERATOR_VERDICTS)[number];

export type EventType = LedgerEvent['type'];

export function eventToCbor(e: LedgerEvent): CborValue {
  switch (e.type) {
    case 'ClusterGenesis':
      return { type: e.type, clusterId: e.clusterId, nodes: e.nodes.map(nodeToCbor), roster: rosterToCbor(e.roster), policy: policyToCbor(e.policy) };
    case 'GovernanceDecision':
      return { type: e.type, decision: decisionToCbor(e.decision) };
    case 'DkgRound1Published':
    case 'KeyReady':
    case 'RedealReady':
    case 'FencingRecord':
      return { type: e.type, statement: statementToCbor(e.statement) };
    case 'EquivocationEvidence':
      return { type: e.type, first: statementToCbor(e.first), second: statementToCbor(e.second) };
    case 'ActSubmitted':
      return { type: e.type, opId: e.opId, act: actToCbor(e.act), approval: e.approval === null ? null : decisionToCbor(e.approval), request: e.request === null ? null : actRequestToCbor(e.request), ...proposerToCbor(e) };
    case 'ActSigningSetFixed':
      return { type: e.type, opId: e.opId, permitId: e.permitId, commitments: e.commitments.map(memberToCbor), ...proposerToCbor(e) };
    case 'ActExecuted':
      return { type: e.type, opId: e.opId, permitId: e.permitId, signatures: [...e.signatures], ...proposerToCbor(e) };
    case 'ClockTick':
      return e.readings === undefined ? { type: e.type, ...proposerToCbor(e) } : { type: e.type, readings: e.readings.map(clockReadingToCbor), ...proposerToCbor(e) };
    case 'ActPermitIssued':
    case 'ActPublished':
      return { type: e.type, opId: e.opId, ...proposerToCbor(e) };
    case 'ActSettled':
      return { type: e.type, opId: e.opId, confirmation: e.confirmation, ...proposerToCbor(e) };
    case 'ActAborted':
      return { type: e.type, opId: e.opId, reason: e.reason, ...proposerToCbor(e) };
    case 'ActDenialRecorded':
      return { type: e.type, opId: e.opId, reason: e.reason, ruleDigest: e.ruleDigest, ...proposerToCbor(e) };
    case 'KeyBackedUp':
      return { type: e.type, keyId: e.keyId, keyEpoch: e.keyEpoch, identifier: e.identifier, fileCid: e.fileCid, recipientsDigest: e.recipientsDigest, ...proposerToCbor(e) };
    case 'BackupDrilled':
      return { type: e.type, keyId: e.keyId, keyEpoch: e.keyEpoch, backupCids: [...e.backupCids], passed: e.passed, reportDigest: e.reportDigest, drilledAtMs: e.drilledAtMs, ...proposerToCbor(e) };
    case 'ShareRecovered':
      return { type: e.type, keyId: e.keyId, keyEpoch: e.keyEpoch, identifier: e.identifier, decisionCid: e.decisionCid, ...proposerToCbor(e) };
    case 'ShareRepaired':
      return { type: e.type, keyId: e.keyId, keyEpoch: e.keyEpoch, identifier: e.identifier, decisionCid: e.decisionCid, verifyingShare: e.verifyingShare, ...proposerToCbor(e) };
    case 'OperatorCall':
      return { type: e.type, callId: e.callId, operatorId: e.operatorId, role: e.role, certSerial: e.certSerial, method: e.method, argsDigest: e.argsDigest, verdict: e.verdict, reason: e.reason, atMs: e.atMs, ...proposerToCbor(e) };
    case 'TrustPolicySigned':
      return { type: e.type, serial: e.serial, blockDigest: e.blockDigest, signature: e.signature, ...proposerToCbor(e) };
    default:
      return { ...e } as CborValue;
  }
}

/** The proposer's fields; `sig` only when present (an unsigned event encodes without it). */
function proposerToCbor(p: Proposer): { [k: string]: CborValue } {
  return p.sig === undefined ? { nodeId: p.nodeId, passport: p.passport } : { nodeId: p.nodeId, passport: p.passport, sig: p.sig };
}

export function encodeEvent(e: LedgerEvent): Uint8Array {
  return encode(eventToCbor(e));
}

const PROPOSER = ['nodeId', 'passport'] as const;

export function eventFromCbor(v: CborValue): LedgerEvent {
  const type = (v !== null && typeof v === 'object' && !(v instanceof Uint8Array) && !Array.isArray(v)) ? (v as { type?: unknown }).type : undefined;
  switch (type) {
    case 'ClusterGenesis': {
      const o = obj(v, 'event', ['type', 'clusterId', 'nodes', 'roster', 'policy']);
      return { type, clusterId: str(o.clusterId, 'clusterId'), nodes: arr(o.nodes, 'nodes', limits.nodesMax).map(nodeFromCbor), roster: rosterFromCbor(o.roster), policy: policyFromCbor(o.policy) };
    }
    case 'GovernanceDecision': {
      const o = obj(v, 'event', ['type', 'decision']);
      return { type, decision: decisionFromCbor(o.decision) };
    }
    case 'DkgRound1Published':
    case 'KeyReady':
    case 'RedealReady':
    case 'FencingRecord': {
      const o = obj(v, 'event', ['type', 'statement']);
      return { type, statement: statementFromCbor(o.statement) };
    }
    case 'KeyObjectPublished': {
      const o = obj(v, 'event', ['type', 'keyId', 'keyEpoch', 'keyReadyCid']);
      return { type, keyId: str(o.keyId, 'keyId'), keyEpoch: int(o.keyEpoch, 'keyEpoch'), keyReadyCid: bytes(o.keyReadyCid, 'keyReadyCid', 32) };
    }
    case 'EquivocationEvidence': {
      const o = obj(v, 'event', ['type', 'first', 'second']);
      return { type, first: statementFromCbor(o.first), second: statementFromCbor(o.second) };
    }
    case 'ActSubmitted': {
      // A request that is present is decoded strictly like every other field: one that is not
      // well-formed makes the event refused PAYLOAD_REJECTED (never journaled, no act recorded);
      // the admin API refuses it REQUEST_UNSIGNED before anything is proposed. Journaling it Denied
      // instead would need an event with no canonical form (the decoded event could not be
      // encoded back to the entry's bytes); refusing it creates no act either way. An event with
      // no request at all (null) is journaled Denied REQUEST_UNSIGNED.
      const o = obj(v, 'event', ['type', 'opId', 'act', 'approval', 'request', ...PROPOSER], ['sig']);
      return { type, opId: str(o.opId, 'opId'), act: actFromCbor(o.act), approval: o.approval === null ? null : decisionFromCbor(o.approval), request: o.request === null ? null : actRequestFromCbor(o.request), ...proposer(o) };
    }
    case 'ActPermitIssued':
    case 'ActPublished': {
      const o = obj(v, 'event', ['type', 'opId', ...PROPOSER], ['sig']);
      return { type, opId: str(o.opId, 'opId'), ...proposer(o) };
    }
    case 'ActSigningSetFixed': {
      const o = obj(v, 'event', ['type', 'opId', 'permitId', 'commitments', ...PROPOSER], ['sig']);
      const commitments = arr(o.commitments, 'commitments', limits.nodesMax).map((m, i) => memberFromCbor(m, `commitments[${i}]`));
      return { type, opId: str(o.opId, 'opId'), permitId: bytes(o.permitId, 'permitId', 32), commitments, ...proposer(o) };
    }
    case 'ActExecuted': {
      const o = obj(v, 'event', ['type', 'opId', 'permitId', 'signatures', ...PROPOSER], ['sig']);
      const signatures = arr(o.signatures, 'signatures', txLimits.messagesPerActMax).map((x, i) => sigBytes(x, `signatures[${i}]`));
      if (signatures.length < 1) throw new ShapeError('signatures: at least one');
      return { type, opId: str(o.opId, 'opId'), permitId: bytes(o.permitId, 'permitId', 32), signatures, ...proposer(o) };
    }
    case 'ActSettled': {
      const o = obj(v, 'event', ['type', 'opId', 'confirmation', ...PROPOSER], ['sig']);
      return { type, opId: str(o.opId, 'opId'), confirmation: str(o.confirmation, 'confirmation', limits.textBytesMax), ...proposer(o) };
    }
    case 'ActAborted': {
      const o = obj(v, 'event', ['type', 'opId', 'reason', ...PROPOSER], ['sig']);
      const reason = o.reason;
      if (!isReasonCode(reason)) throw new ShapeError('ActAborted.reason: not a reason code');
      return { type, opId: str(o.opId, 'opId'), reason, ...proposer(o) };
    }
    case 'ActDenialRecorded': {
      const o = obj(v, 'event', ['type', 'opId', 'reason', 'ruleDigest', ...PROPOSER], ['sig']);
      const reason = o.reason;
      if (!isReasonCode(reason)) throw new ShapeError('ActDenialRecorded.reason: not a reason code');
      return { type, opId: str(o.opId, 'opId'), reason, ruleDigest: bytes(o.ruleDigest, 'ruleDigest', 32), ...proposer(o) };
    }
    case 'ClockTick': {
      const o = obj(v, 'event', ['type', ...PROPOSER], ['readings', 'sig']);
      return o.readings === undefined ? { type, ...proposer(o) } : { type, readings: clockReadingsFromCbor(o.readings), ...proposer(o) };
    }
    case 'KeyBackedUp': {
      const o = obj(v, 'event', ['type', 'keyId', 'keyEpoch', 'identifier', 'fileCid', 'recipientsDigest', ...PROPOSER], ['sig']);
      return {
        type, keyId: str(o.keyId, 'keyId'), keyEpoch: int(o.keyEpoch, 'keyEpoch'), identifier: str(o.identifier, 'identifier'),
        fileCid: bytes(o.fileCid, 'fileCid', 32), recipientsDigest: bytes(o.recipientsDigest, 'recipientsDigest', 32), ...proposer(o),
      };
    }
    case 'BackupDrilled': {
      const o = obj(v, 'event', ['type', 'keyId', 'keyEpoch', 'backupCids', 'passed', 'reportDigest', 'drilledAtMs', ...PROPOSER], ['sig']);
      if (typeof o.passed !== 'boolean') throw new ShapeError('passed: expected a boolean');
      return {
        type, keyId: str(o.keyId, 'keyId'), keyEpoch: int(o.keyEpoch, 'keyEpoch'),
        backupCids: arr(o.backupCids, 'backupCids', limits.nodesMax).map((c, i) => bytes(c, `backupCids[${i}]`, 32)),
        passed: o.passed, reportDigest: bytes(o.reportDigest, 'reportDigest', 32), drilledAtMs: int(o.drilledAtMs, 'drilledAtMs'), ...proposer(o),
      };
    }
    case 'ShareRecovered': {
      const o = obj(v, 'event', ['type', 'keyId', 'keyEpoch', 'identifier', 'decisionCid', ...PROPOSER], ['sig']);
      return { type, keyId: str(o.keyId, 'keyId'), keyEpoch: int(o.keyEpoch, 'keyEpoch'), identifier: str(o.identifier, 'identifier'), decisionCid: bytes(o.decisionCid, 'decisionCid', 32), ...proposer(o) };
    }
    case 'ShareRepaired': {
      const o = obj(v, 'event', ['type', 'keyId', 'keyEpoch', 'identifier', 'decisionCid', 'verifyingShare', ...PROPOSER], ['sig']);
      const verifyingShare = bytes(o.verifyingShare, 'verifyingShare');
      if (verifyingShare.length < 32 || verifyingShare.length > 33) throw new ShapeError('verifyingShare: expected a 32- or 33-byte group element');
      return {
        type, keyId: str(o.keyId, 'keyId'), keyEpoch: int(o.keyEpoch, 'keyEpoch'), identifier: str(o.identifier, 'identifier'),
        decisionCid: bytes(o.decisionCid, 'decisionCid', 32), verifyingShare, ...proposer(o),
      };
    }
    case 'OperatorCall': {
      const o = obj(v, 'event', ['type', 'callId', 'operatorId', 'role', 'certSerial', 'method', 'argsDigest', 'verdict', 'reason', 'atMs', ...PROPOSER], ['sig']);
      const verdict = oneOf(o.verdict, 'verdict', OPERATOR_VERDICTS);
      const reason = o.reason;
      if (reason !== '' && !isReasonCode(reason)) throw new ShapeError('OperatorCall.reason: not a reason code');
      if ((verdict === 'allowed') !== (reason === '')) throw new ShapeError('OperatorCall: a refused call has a reason code, an allowed one none');
      return {
        type, callId: str(o.callId, 'callId'), operatorId: maybeEmpty(o.operatorId, 'operatorId'), role: maybeEmpty(o.role, 'role'),
        certSerial: maybeEmpty(o.certSerial, 'certSerial'), method: str(o.method, 'method', limits.idBytesMax), argsDigest: bytes(o.argsDigest, 'argsDigest', 32),
        verdict, reason, atMs: int(o.atMs, 'atMs'), ...proposer(o),
      };
    }
    case 'TrustPolicySigned': {
      const o = obj(v, 'event', ['type', 'serial', 'blockDigest', 'signature', ...PROPOSER], ['sig']);
      const serial = int(o.serial, 'serial');
      if (serial < 1) throw new ShapeError('serial: a signed trust policy block follows genesis (serial 1 or more)');
      return { type, serial, blockDigest: bytes(o.blockDigest, 'blockDigest', 32), signature: bytes(o.signature, 'signature', 72), ...proposer(o) };
    }
    default:
      throw new ShapeError(`event: unknown type ${String(type)}`);
  }
}

/** Text that may be empty (an OperatorCall of a caller whose certificate names no operator). */
function maybeEmpty(v: CborValue | undefined, what: string): string {
  return v === '' ? '' : str(v, what);
}

function proposer(o: { readonly [k: string]: CborValue | undefined }): Proposer {
  const p = { nodeId: str(o.nodeId, 'nodeId'), passport: str(o.passport, 'passport') };
  return o.sig === undefined ? p : { ...p, sig: bytes(o.sig, 'sig', 64) };
}

/** Threshold signatures: 64 bytes for Ed25519 and BIP340, 65 for FROST secp256k1 (R || z). */
function sigBytes(v: CborValue | undefined, what = 'signature'): Uint8Array {
  const b = bytes(v, what);
  if (b.length !== 64 && b.length !== 65) throw new ShapeError(`${what}: expected 64 or 65 bytes`);
  return b;
}

export function decisionCidOrNull(d: GovernanceDecision | null): Uint8Array | null {
  return d === null ? null : decisionCid(d.body);
}

/** Strict: the bytes must be the canonical encoding of a well-formed event. */
export function decodeEvent(b: Uint8Array): LedgerEvent {
  return eventFromCbor(decode(b));
}

export const EVENT_DOMAIN = 'custody-ledger/v1/event';

export function eventCid(eventBytes: Uint8Array): Uint8Array {
  return digest(EVENT_DOMAIN, eventBytes);
}
