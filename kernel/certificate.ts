/**
 * What a kernel checks, by itself, before it touches a nonce for a sign request: that a majority of
 * the cluster's voter nodes applied the entries the signature rests on (the shared contract's
 * items 1, 2 and 5; ledger/tlog/ledger-log.ts EntryCertificate). Pure.
 *
 * The request carries a certificate: a checkpoint note and two inclusions, [0] the act's
 * ActSubmitted entry and [1] its ActSigningSetFixed entry. The kernel checks, in order:
 *   1. the note is certified under the voters it follows itself (authority.ts: the pinned genesis
 *      nodes, + NodeAdded, - NodeRemoved, each from a decision it verified): a majority of those
 *      keys signed that exact checkpoint text (checkpoint.ts certified). A daemon cannot invent a
 *      voter or a key. Refusals: CHECKPOINT_NOT_CERTIFIED (no certificate, too few voter
 *      signatures, no voters known), or the tlog codes for a malformed note or checkpoint, a known
 *      key whose signature fails, or another log's origin;
 *   2. each inclusion's leaf (entryLeafHash of the entry, index and stamp included) is proven at
 *      its position under that checkpoint's root (RFC 9162 §2.1.3.2): ENTRY_NOT_INCLUDED. A leaf
 *      is an entry the ledger chained (node/ledger-tree.ts), so an included ActSigningSetFixed is
 *      one the ledger accepted: the act was admitted, its permit issued, the set valid;
 *   3. [0] is an ActSubmitted (ENTRY_NOT_INCLUDED otherwise); [1] is the ActSigningSetFixed of
 *      the same opId (SIGNING_SET_MISMATCH otherwise);
 *   4. the act's key is active (KEY_NOT_ACTIVE) at the act's epoch, and the set entry's ledger
 *      index is after that epoch's activation (STALE_EPOCH);
 *   5. the set comes after the act in the ledger, the request's commitment lists are exactly the
 *      set's, message by message, this kernel is a
 *      member (by its identifier for the key epoch), and its counters are the ones the set lists
 *      for it: SIGNING_SET_MISMATCH.
 * Why two leaves suffice: the ledger chains one ActSubmitted per opId (submitting again is a replay
 * or REPLAY_OR_CONFLICT, neither chained), and it chains an ActSigningSetFixed only when it accepts
 * it, for an admitted act under its issued permit, with a valid set (ledger/apply.ts; it never
 * records a refused one). So a proven set entry says the act was admitted by policy and its
 * permit issued, and the proven ActSubmitted of the same opId, before it, is that act.
 * The permit is then derived from these entries, never taken from the daemon: keyId and keyEpoch
 * from the act, requestId = opId, messageDigest = the act's, ledgerIndex = the set entry's index.
 *
 * One history (checkFollows, after the five checks). A kernel remembers the certified checkpoint
 * it follows (the largest it signed under: its tree size and root, written in the batch that
 * consumes the nonces) and signs under another only with an RFC 9162 §2.1.4 consistency proof
 * between the two (from the smaller to the larger): a checkpoint of the same size must have the
 * same root. Why: Raft tolerates crashes, not lies. A compromised node that leads a term can send
 * one honest follower entry X and the other entry Y at the same index and term; each honest
 * replica then applies its own branch, and the liar cosigns both, so each branch has checkpoints
 * a majority cosigned (the two honest nodes' `two_roots` alarms fire). Without this rule the
 * liar's own kernel would sign on both branches, and policy rules that rest on the ledger's
 * history (rolling windows, lifetime caps) would each be judged on half of what was spent. With
 * it, every kernel signs on one branch only: in a 3-node cluster with t = 2, the branch the liar's
 * kernel did not choose has one kernel (its honest node's) and signs nothing. Refusal:
 * CHECKPOINT_INCONSISTENT (no proof, a proof from another size than the followed one, a proof
 * that fails, or another root at the followed size). The daemon learns the followed size from
 * `status` (followed).
 *   One history per incarnation: a cluster restored from a backup (`custody cluster restore`)
 * continues the history from the backup's index on nodes whose trees start there, so no node can
 * prove consistency with what came before. Its checkpoints name its incarnation (an extension
 * line, ledger/tlog/ledger-log.ts INCARNATION_EXTENSION), and the kernel follows one checkpoint
 * per incarnation (checkpointIncarnation). One lying node cannot use this to open a second
 * history: a certified checkpoint needs a majority of the voters' cosignatures, and an honest node
 * cosigns only its own text, which names its own incarnation; a checkpoint of another incarnation
 * is certified only by nodes an operator restored into it.
 *
 * Threat: the daemon (or anything on the socket) is trusted for nothing here. It can withhold a
 * certificate (no signature), but a certificate for entries a majority did not apply needs a
 * majority of voter keys to sign a root they did not compute; with quorum a majority, no
 * minority of compromised hosts, the kernel's own daemon included, gets a share for an act the
 * cluster did not take. What the act itself says (the custodian's signed request, the messages
 * the transaction yields) is checked against the ActSubmitted event at one call in
 * kernel.ts sign, after this.
 */
import { CustodyError, isCustodyError } from '../proto/errors.js';
import { tlog as limits } from '../proto/limits.js';
import { bytesEqual, fromHex } from '../ledger/encoding.js';
import { decodeEvent, listFor, type LedgerEvent } from '../ledger/events.js';
import { certified, requireIncluded, type Checkpoint } from '../ledger/tlog/checkpoint.js';
import { verifyConsistency } from '../ledger/tlog/merkle.js';
import { clusterTrust, entryLeafHash, type EntryCertificate } from '../ledger/tlog/ledger-log.js';
import type { VoterJson } from './authority.js';
import type { Permit, SigningCommitment } from './wire.js';

export type ActSubmittedEvent = Extract<LedgerEvent, { type: 'ActSubmitted' }>;
export type ActSigningSetFixedEvent = Extract<LedgerEvent, { type: 'ActSigningSetFixed' }>;

export interface CertificateContext {
  readonly clusterId: string;
  /** The voters the kernel follows (GovernanceState.nodes); undefined for a state stored before it followed them. */
  readonly voters: readonly VoterJson[] | undefined;
  readonly lists: readonly (readonly SigningCommitment[])[];
  readonly counters: readonly number[];
  /** This kernel's FROST identifier for the key epoch the act names, looked up by the caller. */
  readonly identifierFor: (keyId: string, keyEpoch: number) => string | undefined;
  /** The key's active epoch and the ledger index of its activation (undefined: the key is not active). */
  readonly active: (keyId: string) => { readonly epoch: number; readonly activatedIndex: number } | undefined;
}

export interface CertifiedSign {
  readonly checkpoint: Checkpoint;
  readonly submitted: ActSubmittedEvent;
  /** The ledger clock at the ActSubmitted entry (its stamp): the custodian's request window is judged against it. */
  readonly submittedStampMs: number;
  /** The ledger index of the ActSubmitted entry: the governance era the act is judged by (kernel/policy-check.ts). */
  readonly submittedIndex: number;
  readonly setFixed: ActSigningSetFixedEvent;
  /** The permit these entries make: what the kernel signs under. */
  readonly permit: Permit;
}

const notCertified = (detail: string): never => {
  throw new CustodyError('CHECKPOINT_NOT_CERTIFIED', detail);
};

function decoded(bytes: Uint8Array, what: string): LedgerEvent {
  try {
    return decodeEvent(bytes);
  } catch (e) {
    throw new CustodyError('ENTRY_NOT_INCLUDED', `${what} is not a ledger event: ${(e as Error).message}`);
  }
}

/** Checks 1-5 of the header; returns the entries and the permit they make. */
export function checkCertificate(cert: EntryCertificate | null | undefined, ctx: CertificateContext): CertifiedSign {
  if (cert === null || cert === undefined) notCertified('the sign request carries no entry certificate');
  const c = cert as EntryCertificate;
  const voters = ctx.voters ?? [];
  if (voters.length === 0) notCertified('this kernel follows no voter nodes (its governance state predates them)');
  // 1. A majority of the voters signed this checkpoint.
  let checkpoint: Checkpoint;
  try {
    checkpoint = certified(c.note, clusterTrust(ctx.clusterId, voters.map((v) => ({ id: v.id, identityKey: fromHex(v.identityKey) })))).checkpoint;
  } catch (e) {
    if (isCustodyError(e) && (e.reason === 'QUORUM_NOT_MET' || e.reason === 'CONFIG_INVALID')) notCertified(`checkpoint: ${e.detail}`);
    throw e;
  }
  // 2. Both entries are in it.
  if (c.inclusions.length !== limits.certificateInclusionsMax) throw new CustodyError('ENTRY_NOT_INCLUDED', `a certificate proves the ActSubmitted and the ActSigningSetFixed of the act, not ${c.inclusions.length} entries`);
  for (const [i, inc] of c.inclusions.entries()) {
    try {
      requireIncluded(checkpoint, inc.leafIndex, entryLeafHash(inc.entry), inc.proof);
    } catch (e) {
      if (isCustodyError(e) && e.reason === 'TLOG_PROOF_INVALID') throw new CustodyError('ENTRY_NOT_INCLUDED', `inclusion ${i} (ledger index ${inc.entry.index}) is not proven at leaf ${inc.leafIndex} of the checkpoint of ${checkpoint.size}`);
      throw e;
    }
  }
  const [inc0, inc1] = c.inclusions as [EntryCertificate['inclusions'][number], EntryCertificate['inclusions'][number]];
  // 3. The entries are the act and its signing set.
  const submitted = decoded(inc0.entry.event, 'inclusion 0');
  if (submitted.type !== 'ActSubmitted') throw new CustodyError('ENTRY_NOT_INCLUDED', `inclusion 0 is a ${submitted.type}, not the act's ActSubmitted`);
  const setFixed = decoded(inc1.entry.event, 'inclusion 1');
  if (setFixed.type !== 'ActSigningSetFixed') throw new CustodyError('SIGNING_SET_MISMATCH', `inclusion 1 is a ${setFixed.type}, not an ActSigningSetFixed`);
  if (setFixed.opId !== submitted.opId) throw new CustodyError('SIGNING_SET_MISMATCH', `the signing set is for act ${setFixed.opId}, the request's act is ${submitted.opId}`);
  const act = submitted.act;
  // 4. The act's key epoch signs, and the set was fixed after it was activated.
  const active = ctx.active(act.keyId);
  if (active === undefined) throw new CustodyError('KEY_NOT_ACTIVE', `key ${act.keyId} is not active`);
  if (act.keyEpoch !== active.epoch) throw new CustodyError('STALE_EPOCH', `the act names epoch ${act.keyEpoch} of ${act.keyId}; epoch ${active.epoch} is active`);
  if (inc1.entry.index <= active.activatedIndex) throw new CustodyError('STALE_EPOCH', `the signing set at ledger index ${inc1.entry.index} predates the key's activation at ${active.activatedIndex}`);
  if (inc1.entry.index <= inc0.entry.index) throw new CustodyError('SIGNING_SET_MISMATCH', `the signing set at ledger index ${inc1.entry.index} does not follow the act at ${inc0.entry.index}`);
  // 5. This kernel's place in exactly that set.
  const identifier = ctx.identifierFor(act.keyId, act.keyEpoch);
  const mine = identifier === undefined ? undefined : setFixed.commitments.find((m) => m.identifier === identifier);
  if (mine === undefined) throw new CustodyError('SIGNING_SET_MISMATCH', `this kernel is not in the signing set fixed for ${submitted.opId}`);
  const n = ctx.lists.length;
  if (n !== ctx.counters.length || setFixed.commitments.some((m) => m.nonces.length !== n)) throw new CustodyError('SIGNING_SET_MISMATCH', `the set fixed for ${submitted.opId} signs ${mine.nonces.length} messages, the request ${n}`);
  for (let i = 0; i < n; i++) {
    const want = listFor(setFixed.commitments, i);
    const got = ctx.lists[i] as readonly SigningCommitment[];
    const same = got.length === want.length && want.every((w, j) => {
      const x = got[j] as SigningCommitment;
      return x.identifier === w.identifier && bytesEqual(x.hiding, w.hiding) && bytesEqual(x.binding, w.binding);
    });
    if (!same) throw new CustodyError('SIGNING_SET_MISMATCH', `commitment list ${i} is not the one fixed for ${submitted.opId}`);
    if (ctx.counters[i] !== mine.nonces[i]!.counter) throw new CustodyError('SIGNING_SET_MISMATCH', `counter ${ctx.counters[i]} for message ${i} is not this kernel's in the set fixed for ${submitted.opId} (${mine.nonces[i]!.counter})`);
  }
  return {
    checkpoint, submitted, submittedStampMs: inc0.entry.stampMs, submittedIndex: inc0.entry.index, setFixed,
    permit: { keyId: act.keyId, keyEpoch: act.keyEpoch, requestId: submitted.opId, messageDigest: act.messageDigest, ledgerIndex: inc1.entry.index },
  };
}

/** The certified checkpoint a kernel follows in one incarnation (store JSON: its tree size and root, hex). */
export interface FollowedCheckpoint {
  readonly size: number;
  readonly root: string;
}

/**
 * One history (the header): may a kernel that follows `followed` sign under `checkpoint`, given
 * the certificate's consistency proof? Returns the checkpoint to follow afterwards (the larger of
 * the two); CHECKPOINT_INCONSISTENT otherwise. Pure.
 */
export function checkFollows(followed: FollowedCheckpoint | null, checkpoint: Checkpoint, consistency: EntryCertificate['consistency']): FollowedCheckpoint {
  const root = Buffer.from(checkpoint.root).toString('hex');
  const next: FollowedCheckpoint = { size: checkpoint.size, root };
  if (followed === null) return next;
  if (checkpoint.size === followed.size) {
    if (root !== followed.root) throw new CustodyError('CHECKPOINT_INCONSISTENT', `the checkpoint of size ${checkpoint.size} has another root than the one this kernel follows: two histories`);
    return followed;
  }
  if (consistency === undefined) throw new CustodyError('CHECKPOINT_INCONSISTENT', `this kernel follows the checkpoint of size ${followed.size}; the certificate (size ${checkpoint.size}) carries no consistency proof from it`);
  if (consistency.size !== followed.size) throw new CustodyError('CHECKPOINT_INCONSISTENT', `the consistency proof starts from size ${consistency.size}; this kernel follows the checkpoint of size ${followed.size}`);
  const [small, large] = checkpoint.size < followed.size
    ? [{ size: checkpoint.size, root: checkpoint.root }, { size: followed.size, root: fromHex(followed.root) }]
    : [{ size: followed.size, root: fromHex(followed.root) }, { size: checkpoint.size, root: checkpoint.root }];
  if (!verifyConsistency(small.size, large.size, small.root, large.root, consistency.proof)) {
    throw new CustodyError('CHECKPOINT_INCONSISTENT', `the checkpoint of size ${checkpoint.size} is not proven consistent with the one of size ${followed.size} this kernel follows`);
  }
  return checkpoint.size > followed.size ? next : followed;
}
