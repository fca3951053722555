/**
 * The participant: what every node does for the lifecycle with its own kernel, driven only by
 * what its own replica of the ledger has applied (see coordinator.ts for the whole message flow
 * and the safety argument).
 *
 *   - forwards every applied governance decision to its kernel, in log order, stamped with the
 *     ledger's clock at that entry, so the kernel verifies authority itself (kernel/authority.ts);
 *   - forwards a FencingRecord of its own passport to its kernel once the ledger shows the passport
 *     fenced (a majority of voters reported it), and takes no part while fenced; a NodeFenced
 *     decision reaches the kernel with the governance chain, which the kernel verifies itself;
 *   - runs its part of each refresh / reshare it is named in (redealStep), and of each DKG ceremony: round 1 (package to the exchange, its cid
 *     in the log by a signed DkgRound1Published statement), round 2 (sealed to each recipient's
 *     kernel, to the exchange), finish (KeyReady with the group key, signed, in the log);
 *   - answers a coordinator's nonce-commitment and signature-share requests only for an act its
 *     replica shows PendingRemote under a ledger permit, for the act's key epoch, with the act's
 *     digest, and shares only for the signing set the ledger fixed under that permit: a
 *     coordinator cannot obtain a share for anything the ledger did not authorize, nor a share
 *     over a second commitment list for one permit;
 *   - tells its kernel the nonce counter the ledger proves it consumed (ledgerConsumedCounter), so
 *     a kernel restored from an older store refuses to sign (STORE_ROLLED_BACK).
 */
import { createHash } from 'node:crypto';
import { CustodyError, isCustodyError } from '../../proto/errors.js';
import { lifecycle as lifecycleLimits } from '../../proto/limits.js';
import { type CborValue, bytesEqual, decode, digest, encode, toHex } from '../../ledger/encoding.js';
import { type LedgerEvent, decodeEvent, signStatement, statementFromCbor, statementToCbor, verifyStatement } from '../../ledger/events.js';
import { messagesDigest } from '../../ledger/tx/messages.js';
import { consumedKey, keyContextOf, type ClusterState, type EpochRecord, type LedgerState, type OpRecord } from '../../ledger/state.js';
import { epochSigners } from '../../ledger/signers.js';
import { listFor } from '../../ledger/events.js';
import { assetTable } from '../../ledger/admission.js';
import { deriveActFields } from '../../ledger/tx/act.js';
import { suiteOf, type SuiteName } from '../../kernel/suites.js';
import type { Participant, PublicPackage, Round1Package, SealedPackage, SigningCommitment } from '../../kernel/wire.js';
import type { Exchange, KernelPort, LedgerPort, NonceOffer, ParticipantPort } from './ports.js';
import { kernelEpoch } from './kernel-port.js';
import { RepeatedLog, Rerunner } from './rerun.js';
import { dealersReadyOf, redealDealerSet } from '../../ledger/dealer-set.js';
import { checkpointIncarnation, type EntryCertificate } from '../../ledger/tlog/ledger-log.js';
import { parseCheckpoint } from '../../ledger/tlog/checkpoint.js';
import { parseNote } from '../../ledger/tlog/note.js';

export const ROUND1_DOMAIN = 'custody-ledger/v1/dkg-round1';

export const keys = {
  transport: (nodeId: string) => `transport/${nodeId}`,
  round1: (keyId: string, epoch: number, nodeId: string) => `dkg/${keyId}/${epoch}/round1/${nodeId}`,
  round2: (keyId: string, epoch: number, sender: string, recipient: string) => `dkg/${keyId}/${epoch}/round2/${sender}/${recipient}`,
  publicPackage: (keyId: string, epoch: number, nodeId: string) => `dkg/${keyId}/${epoch}/public/${nodeId}`,
};

export function round1ToCbor(p: Round1Package): CborValue {
  return { identifier: p.identifier, commitment: p.commitment.map((c) => new Uint8Array(c)), proofOfKnowledge: new Uint8Array(p.proofOfKnowledge) };
}

export function round1FromBytes(b: Uint8Array): Round1Package {
  const o = decode(b) as { identifier: string; commitment: Uint8Array[]; proofOfKnowledge: Uint8Array };
  return { identifier: o.identifier, commitment: o.commitment, proofOfKnowledge: o.proofOfKnowledge };
}

export function round1Cid(bytes: Uint8Array): Uint8Array {
  return digest(ROUND1_DOMAIN, bytes);
}

export function publicToBytes(p: PublicPackage): Uint8Array {
  return encode({ min: p.min, max: p.max, commitments: p.commitments.map((c) => new Uint8Array(c)), verifyingShares: p.verifyingShares.map((v) => ({ identifier: v.identifier, point: new Uint8Array(v.point) })) });
}

export function publicFromBytes(b: Uint8Array): PublicPackage {
  const o = decode(b) as { min: number; max: number; commitments: Uint8Array[]; verifyingShares: { identifier: string; point: Uint8Array }[] };
  return { min: o.min, max: o.max, commitments: o.commitments, verifyingShares: o.verifyingShares };
}

/**
 * Whether a public key package is the one of key epoch `e` the ledger committed: its group
 * commitment is the epoch's group key (fixed by the participants' signed KeyReady statements and
 * KeyObjectPublished), its threshold the epoch's, and it lists one verifying share per
 * participant, under the participants' FROST identifiers. The verifying shares themselves are
 * not in the ledger; what rests on them is checked elsewhere: the aggregate signature is
 * verified under the ledger's group key before ActExecuted is proposed (coordinator.ts), and the
 * ledger checks it again when the entry applies.
 */
export function publicMatchesLedger(pub: PublicPackage, scheme: SuiteName, e: EpochRecord): boolean {
  const gk = pub.commitments[0];
  if (gk === undefined || e.groupKey === null || !bytesEqual(gk, e.groupKey)) return false;
  if (pub.min !== e.threshold || pub.max !== e.participants.length || pub.verifyingShares.length !== e.participants.length) return false;
  const want = new Set(e.participants.map((p) => identifierOf(scheme, e.participants, p)));
  return pub.verifyingShares.every((v) => want.delete(v.identifier));
}

function sealedToBytes(p: SealedPackage): Uint8Array {
  return encode({ sender: p.sender, recipient: p.recipient, enc: new Uint8Array(p.enc), ciphertext: new Uint8Array(p.ciphertext) });
}

function sealedFromBytes(b: Uint8Array): SealedPackage {
  return decode(b) as unknown as SealedPackage;
}

/** FROST identifiers follow the order of the authorized participants (1-based, RFC 9591 §4.1). */
export function identifierOf(suite: SuiteName, participants: readonly string[], nodeId: string): string {
  const i = participants.indexOf(nodeId);
  if (i < 0) throw new CustodyError('WRONG_RECIPIENT', `${nodeId} is not a participant`);
  return suiteOf(suite).frost.Identifier.fromNumber(i + 1);
}

const sha256 = (b: Uint8Array): Uint8Array => createHash('sha256').update(b).digest();

/** The act's permit as the kernel takes it (kernel/wire.ts Permit). */
export function kernelPermit(c: ClusterState, op: OpRecord): { keyId: string; keyEpoch: number; requestId: string; messageDigest: Uint8Array; ledgerIndex: number } {
  if (op.permitId === null) throw new CustodyError('PERMIT_MISSING', `act ${op.opId} has no permit`);
  const p = c.permits[toHex(op.permitId)];
  if (p === undefined) throw new CustodyError('PERMIT_MISSING', `act ${op.opId}: permit not in the ledger`);
  if (op.signingSet === null) throw new CustodyError('PERMIT_MISSING', `act ${op.opId} has no signing set`);
  // The permit the kernel derives from the certified entries (kernel/certificate.ts): the act's key,
  // epoch and messagesDigest (ledger/tx/messages.ts; the kernel recomputes it from the messages it
  // is asked to sign), the act's opId, and the ledger index of its ActSigningSetFixed.
  return { keyId: op.act.keyId, keyEpoch: kernelEpoch(op.act.keyEpoch), requestId: op.opId, messageDigest: op.act.messageDigest, ledgerIndex: op.signingSet.index };
}

/** The ledger index of the ActSubmitted entry that admitted the act. */
export function submittedIndex(op: OpRecord): number {
  const h = op.history.find((x) => x.state === 'Submitted');
  if (h === undefined) throw new CustodyError('INTERNAL', `act ${op.opId} has no submission in its history`);
  return h.index;
}

/**
 * The messages the key signs for an act: its transaction parsed by this node against its own
 * ledger's key context and asset table (as apply parsed it), never taken from a coordinator.
 */
export function actMessages(c: ClusterState, op: OpRecord): readonly Uint8Array[] {
  const key = keyContextOf(c, op.act.keyId);
  if (key === null) throw new CustodyError('UNKNOWN_KEY', `no group key for ${op.act.keyId}`);
  const { facts, fields } = deriveActFields(op.act.kind, op.act.tx, key, assetTable(c));
  // The ledger admitted the act only with these fields; a difference means this replica differs.
  if (!bytesEqual(fields.messageDigest, op.act.messageDigest)) throw new CustodyError('BINDING_MISMATCH', `the messages of ${op.opId} do not match its digest`);
  return facts.messages;
}

/**
 * The highest nonce counter of `nodeId` the ledger proves its kernel consumed for the act's key
 * epoch: the counters in the fixed signing sets of executed acts (an execution needs a share from
 * every member of its set, and a kernel consumes the nonce before its share leaves). A kernel whose
 * store is behind it was rolled back (kernel/kernel.ts STORE_ROLLED_BACK). Sets of acts that did
 * not execute prove nothing: their members may never have been asked.
 */
export function ledgerConsumedCounter(c: ClusterState, act: OpRecord, nodeId: string): number {
  // The ledger keeps the running maximum as acts execute (ledger/state.ts `consumed`): executed
  // acts that ended may have left the state for the archive.
  const k = consumedKey(act.act.keyId, act.act.keyEpoch, nodeId);
  return Object.hasOwn(c.consumed, k) ? (c.consumed[k] as number) : 0;
}

interface CeremonyProgress {
  begun: boolean;
  round2Sent: boolean;
  finished: boolean;
  /** A redeal's round 1 this node's kernel made (its dealing or joining), kept until the log holds its cid. */
  round1?: Uint8Array;
}

export interface ParticipantOptions {
  readonly nodeId: string;
  readonly identitySecretKey: Uint8Array;
  readonly ledger: LedgerPort;
  readonly kernel: KernelPort;
  readonly exchange: Exchange;
  readonly log: (line: string) => void;
  /** How long a request waits for this node's replica to catch up with the coordinator's. */
  readonly catchUpMs?: number;
  /**
   * The certificate of the entries at these ledger indexes (node/checkpoints.ts
   * Checkpointer.certificate): the act's ActSubmitted and ActSigningSetFixed under a checkpoint a
   * majority of the voters cosigned, which the kernel checks before it signs.
   */
  readonly certificate: (indexes: readonly number[]) => Promise<EntryCertificate>;
  /**
   * The RFC 9162 consistency proof between two tree sizes (node/checkpoints.ts
   * Checkpointer.consistency), from the smaller to the larger: the kernel signs under a
   * checkpoint other than the one it follows only with one (kernel/certificate.ts checkFollows).
   */
  readonly consistency?: (size1: number, size2: number) => Promise<Uint8Array[]>;
}

export class LifecycleParticipant implements ParticipantPort {
  readonly nodeId: string;
  private readonly o: ParticipantOptions;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly ceremonies = new Map<string, CeremonyProgress>();
  /** Key epochs whose public package this process has put into the exchange (one per active epoch of a key). */
  private readonly republished = new Set<string>();
  /** Ceremonies (key/epoch/decision) this node stated RedealReady for in this process. */
  private readonly offered = new Set<string>();
  private readonly unsubs: (() => void)[] = [];
  private transportPublicKey: Uint8Array | null = null;
  private stopped = false;
  /** The last refusal of a forwarded decision by the kernel (its chain stops there). */
  kernelGovernanceError: string | null = null;
  forwardedIndex = 0;
  /** Whether the kernel said it is fenced after the last decision it applied. */
  private kernelFenced = false;
  /** Tree size of the checkpoint the kernel follows in this cluster's incarnation (its status' followed); null: ask it. */
  private kernelFollowed: number | null = null;

  constructor(o: ParticipantOptions) {
    this.o = o;
    this.nodeId = o.nodeId;
  }

  async start(): Promise<void> {
    const st = await this.kernelCall({ kind: 'status' }, 'status');
    this.transportPublicKey = st.transportPublicKey;
    this.forwardedIndex = st.governanceIndex;
    // Catch the kernel up on decisions it missed (its daemon stopped between applying and
    // forwarding, or the kernel is new), oldest first; the kernel skips what it already holds.
    for (const d of this.o.ledger.decisionsAfter(st.governanceIndex)) this.forwardBytes(d.decision, d.index, d.stampMs);
    this.unsubs.push(this.o.ledger.subscribe((entry, result, state) => {
      if (!result.ok || result.replayed) {
        this.kick();
        return;
      }
      const ev = decodeEvent(entry.event);
      if (ev.type === 'GovernanceDecision') this.forwardPending();
      if (ev.type === 'FencingRecord') this.maybeFence(ev, state);
      this.kick();
    }));
    this.unsubs.push(this.o.exchange.watch(() => this.kick()));
    this.kick();
  }

  /**
   * The kernel process came back after its socket closed (kernel-link.ts): decisions forwarded
   * while it was down never reached it, so the participant re-reads the kernel's status and
   * forwards, oldest first, every applied decision after the last one the kernel's store holds
   * (the kernel skips any it already has), then re-runs its steps.
   */
  kernelReconnected(): void {
    if (this.stopped) return;
    this.kernelCall({ kind: 'status' }, 'status').then((st) => {
      this.transportPublicKey = st.transportPublicKey;
      this.forwardedIndex = st.governanceIndex;
      this.kernelGovernanceError = null;
      this.o.log(`${this.nodeId}: kernel reconnected at governance index ${st.governanceIndex}; forwarding the decisions after it`);
      this.forwardPending();
      this.kick();
    }, (e: unknown) => this.o.log(`${this.nodeId}: kernel status after reconnecting failed: ${(e as Error).message}`));
  }

  /**
   * Stops reacting to the ledger, then waits for the kernel calls already queued (a decision just
   * forwarded) to finish, at most lifecycle.kernelDrainMs, so the kernel can be stopped after.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const u of this.unsubs.splice(0)) u();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.queue, new Promise<void>((r) => { timer = setTimeout(r, lifecycleLimits.kernelDrainMs); timer.unref(); })]);
    clearTimeout(timer);
  }

  /**
   * A sign request with the consistency proof its kernel needs (kernel/certificate.ts
   * checkFollows): from the checkpoint the kernel follows to the certificate's, or back. Asks the
   * kernel which one it follows when unknown (after a start), and once more when the kernel
   * refuses CHECKPOINT_INCONSISTENT (another process of this node may have moved it).
   */
  private async signFollowing(body: Omit<Extract<Parameters<KernelPort['call']>[0], { kind: 'sign' }>, 'certificate'>, certificate: EntryCertificate) {
    const checkpoint = parseCheckpoint(parseNote(certificate.note).text);
    const size = checkpoint.size;
    const incarnation = checkpointIncarnation(checkpoint.extensions);
    for (let attempt = 0; ; attempt++) {
      if (this.kernelFollowed === null) this.kernelFollowed = (await this.o.kernel.call({ kind: 'status' }, 'status')).followed.find((f) => f.incarnation === incarnation)?.size ?? 0;
      const f = this.kernelFollowed;
      let withProof = certificate;
      if (f !== 0 && f !== size) {
        if (this.o.consistency === undefined) throw new CustodyError('CHECKPOINT_INCONSISTENT', `the kernel follows the checkpoint of size ${f} and this node gives no consistency proofs`);
        withProof = { ...certificate, consistency: { size: f, proof: await this.o.consistency(Math.min(f, size), Math.max(f, size)) } };
      }
      try {
        const r = await this.o.kernel.call({ ...body, certificate: withProof }, 'signatureShares');
        this.kernelFollowed = Math.max(f, size);
        return r;
      } catch (e) {
        if (attempt > 0 || !isCustodyError(e) || e.reason !== 'CHECKPOINT_INCONSISTENT') throw e;
        this.kernelFollowed = null;
      }
    }
  }

  /**
   * The kernel through this participant's queue: a call made now runs after every decision
   * forwarded so far, so the kernel holds the governance this node's replica shows (backups.ts).
   */
  readonly queuedKernel: KernelPort = { call: (body, expect) => this.kernelCall(body, expect) };

  /** Every kernel call of this participant goes through one queue, in order. */
  private kernelCall<K extends Parameters<KernelPort['call']>[1]>(body: Parameters<KernelPort['call']>[0], expect: K) {
    const run = this.queue.then(() => this.o.kernel.call(body, expect));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Forwards every applied decision the kernel has not been given, oldest first. The ledger keeps
   * them beside its state (and in its snapshots), so a node that caught up by snapshot (a node
   * just added, a wiped one) gives its kernel the whole governance chain, not only what it
   * applied entry by entry.
   */
  private forwardPending(): void {
    for (const d of this.o.ledger.decisionsAfter(this.forwardedIndex)) this.forwardBytes(d.decision, d.index, d.stampMs);
  }

  private forwardBytes(decision: Uint8Array, ledgerIndex: number, stampMs: number): void {
    if (ledgerIndex <= this.forwardedIndex) return;
    this.forwardedIndex = ledgerIndex;
    void this.kernelCall({ kind: 'governance', decisions: [{ decision, ledgerIndex, stampMs }] }, 'governance').then((r) => {
      if (r.fenced && !this.kernelFenced) this.o.log(`${this.nodeId}: kernel fenced by decision: it reports itself fenced after the decision at index ${r.governanceIndex}`);
      this.kernelFenced = r.fenced;
    }, (e: unknown) => {
      this.kernelGovernanceError = `${(e as Error).message} (decision at index ${ledgerIndex})`;
      this.o.log(`${this.nodeId}: kernel refused the decision at index ${ledgerIndex}: ${(e as Error).message}`);
    });
  }

  private maybeFence(ev: Extract<LedgerEvent, { type: 'FencingRecord' }>, state: LedgerState): void {
    const slot = ev.statement.slot as { nodeId?: unknown; passport?: unknown };
    if (slot.nodeId !== this.nodeId || typeof slot.passport !== 'string') return;
    const reason = (ev.statement.content as { reason?: unknown }).reason;
    if (state.cluster?.nodes[this.nodeId]?.status !== 'fenced') return;
    void this.kernelCall({ kind: 'fence', passport: slot.passport, reason: typeof reason === 'string' ? reason.slice(0, 100).replace(/[^\x21-\x7e]/g, '_') : 'fenced' }, 'governance')
      .then(() => this.o.log(`${this.nodeId}: kernel fenced (passport ${String(slot.passport)})`))
      .catch((e: unknown) => this.o.log(`${this.nodeId}: fencing the kernel failed: ${(e as Error).message}`));
  }

  // ---------------------------------------------------------------------------------------------
  // DKG
  // ---------------------------------------------------------------------------------------------

  /** A ceremony step fails the same way on every pass while the kernel is down: logged once, then counted. */
  private readonly failures = new RepeatedLog((line) => this.o.log(line), lifecycleLimits.repeatedFailureLogEvery);

  private readonly rerun = new Rerunner(
    () => this.reconcile(),
    (e) => this.failures.note(`${this.nodeId}: ceremony step failed: ${e.message}`),
    () => this.stopped,
  );

  private kick(): void {
    this.rerun.kick();
  }

  private async reconcile(): Promise<void> {
    this.forwardPending();
    const c = this.o.ledger.state().cluster;
    if (c === null) return;
    const me = c.nodes[this.nodeId];
    if (me === undefined || me.status !== 'active' || me.equivocated) return;
    await this.publishTransportKey(c);
    await this.republishPublicPackages(c);
    for (const k of Object.values(c.keys)) {
      for (const e of Object.values(k.epochs)) {
        // Epoch 0 is the DKG; later epochs are refresh/reshare ceremonies (kernel/redeal.ts).
        if (e.status !== 'ceremony' || !e.participants.includes(this.nodeId)) continue;
        if (e.epoch === 0) await this.dkgStep(c, k.id, k.scheme, e);
        else if (k.activeEpoch !== null) await this.redealStep(c, k.id, k.scheme, k.activeEpoch, e);
      }
    }
  }

  /**
   * The public key package of `keyId` epoch `epoch` as this node's kernel holds it in its store,
   * if the ledger has committed that epoch's group key and the package matches it
   * (publicMatchesLedger); undefined otherwise (the kernel holds no share of it, is unreachable,
   * or answered a package the ledger contradicts, which is logged).
   */
  async ownPublicPackage(keyId: string, epoch: number): Promise<Uint8Array | undefined> {
    const k = this.o.ledger.state().cluster?.keys[keyId];
    const e = k?.epochs[String(epoch)];
    if (k === undefined || e === undefined || e.groupKey === null || !e.participants.includes(this.nodeId)) return undefined;
    let r: Extract<Awaited<ReturnType<KernelPort['call']>>, { kind: 'keyPackage' }>;
    try {
      r = await this.kernelCall({ kind: 'publicPackage', keyId, epoch: kernelEpoch(epoch) }, 'keyPackage');
    } catch {
      return undefined;
    }
    if (!publicMatchesLedger(r.public, k.scheme, e)) {
      this.o.log(`${this.nodeId}: the kernel's public package of ${keyId} epoch ${epoch} does not match the group key in the ledger; not used`);
      return undefined;
    }
    return publicToBytes(r.public);
  }

  /**
   * After a restart of this daemon (or of the whole cluster, or a restore into a new one) the
   * exchange, which lives in daemon memory, holds no public key package: each participant puts
   * its own kernel's package of every active epoch it holds back into the exchange, once per
   * epoch and process, so any coordinator can aggregate and a reshare can start.
   */
  private async republishPublicPackages(c: ClusterState): Promise<void> {
    for (const k of Object.values(c.keys)) {
      const epoch = k.activeEpoch;
      const e = epoch === null ? undefined : k.epochs[String(epoch)];
      if (epoch === null || e === undefined || !e.participants.includes(this.nodeId)) continue;
      const id = `${k.id}/${epoch}`;
      if (this.republished.has(id)) continue;
      const bytes = await this.ownPublicPackage(k.id, epoch);
      if (bytes === undefined) continue; // the kernel is down or holds no share: tried again on the next pass
      this.republished.add(id);
      await this.o.exchange.put(keys.publicPackage(k.id, epoch, this.nodeId), bytes);
    }
  }

  /**
   * Puts this node's kernel transport key, signed by the node's identity, into the exchange: once,
   * and again when the kernel's key changed (a fresh kernel after its store was lost, whose share
   * came back from its backup): later ceremonies seal this node's packages to the key it has now.
   */
  private async publishTransportKey(c: ClusterState): Promise<void> {
    const key = keys.transport(this.nodeId);
    if (this.transportPublicKey === null) return;
    // Any failure to read the published key (none yet, unreachable, not verifying) means the same
    // thing here: publish ours. The put below reports its own failure to the caller.
    const published = await this.transportKeyOf(c, this.nodeId).catch(() => null);
    if (published !== null && bytesEqual(published, this.transportPublicKey)) return;
    const s = signStatement({ clusterId: c.clusterId, nodeId: this.nodeId, kind: 'KernelTransportKey', slot: { nodeId: this.nodeId }, content: { transportPublicKey: this.transportPublicKey } }, this.o.identitySecretKey);
    await this.o.exchange.put(key, encode(statementToCbor(s)));
  }

  /** A participant's kernel transport key, accepted only if its node's identity key signed it. */
  private async transportKeyOf(c: ClusterState, nodeId: string): Promise<Uint8Array | null> {
    const b = await this.o.exchange.get(keys.transport(nodeId));
    const n = c.nodes[nodeId];
    if (b === undefined || n === undefined) return null;
    const s = statementFromCbor(decode(b));
    if (s.nodeId !== nodeId || s.kind !== 'KernelTransportKey' || s.clusterId !== c.clusterId || !verifyStatement(s, n.identityKey)) return null;
    const k = (s.content as { transportPublicKey?: unknown }).transportPublicKey;
    return k instanceof Uint8Array && k.length === 32 ? k : null;
  }

  private async dkgStep(c: ClusterState, keyId: string, scheme: SuiteName, e: EpochRecord): Promise<void> {
    const id = `${keyId}/${e.epoch}`;
    const prog = this.ceremonies.get(id) ?? { begun: false, round2Sent: false, finished: false };
    this.ceremonies.set(id, prog);
    const ceremonyId = `dkg-${keyId}-${e.epoch}-${toHex(e.authorizedBy).slice(0, 16)}`;

    if (!prog.begun) {
      if (e.round1[this.nodeId] !== undefined) return; // begun before a restart: the kernel lost the ceremony
      const participants: Participant[] = [];
      for (const p of e.participants) {
        const tk = await this.transportKeyOf(c, p);
        if (tk === null) return; // wait for every participant's transport key
        participants.push({ identifier: identifierOf(scheme, e.participants, p), nodeId: p, transportPublicKey: tk });
      }
      prog.begun = true;
      const r1 = await this.kernelCall({ kind: 'dkgBegin', ceremonyId, keyId, suite: scheme, min: e.threshold, participants, identifier: identifierOf(scheme, e.participants, this.nodeId) }, 'dkgRound1');
      const bytes = encode(round1ToCbor(r1.package));
      await this.o.exchange.put(keys.round1(keyId, e.epoch, this.nodeId), bytes);
      await this.statement(c, 'DkgRound1Published', { keyId, keyEpoch: e.epoch }, { round1Cid: round1Cid(bytes) });
      return;
    }
    const others = e.participants.filter((p) => p !== this.nodeId);
    if (!prog.round2Sent) {
      const pk = await this.round1Of(e, keyId, others);
      if (pk === null) return;
      prog.round2Sent = true;
      const r2 = await this.kernelCall({ kind: 'dkgRound2', ceremonyId, round1: pk }, 'dkgRound2');
      for (const p of r2.packages) {
        const recipient = e.participants.find((n) => identifierOf(scheme, e.participants, n) === p.recipient);
        if (recipient === undefined) throw new CustodyError('WRONG_RECIPIENT', `sealed package for unknown identifier ${p.recipient}`);
        await this.o.exchange.put(keys.round2(keyId, e.epoch, this.nodeId, recipient), sealedToBytes(p));
      }
      return;
    }
    if (!prog.finished) {
      const pk = await this.round1Of(e, keyId, others);
      if (pk === null) return;
      const packages: SealedPackage[] = [];
      for (const o of others) {
        const b = await this.o.exchange.get(keys.round2(keyId, e.epoch, o, this.nodeId));
        if (b === undefined) return;
        packages.push(sealedFromBytes(b));
      }
      prog.finished = true;
      const kp = await this.kernelCall({ kind: 'dkgFinish', ceremonyId, round1: pk, packages }, 'keyPackage');
      await this.o.exchange.put(keys.publicPackage(keyId, e.epoch, this.nodeId), publicToBytes(kp.public));
      const groupKey = new Uint8Array(kp.public.commitments[0] as Uint8Array);
      await this.statement(c, 'KeyReady', { keyId, keyEpoch: e.epoch }, { groupKey });
    }
  }

  /**
   * Refresh / reshare of an active key to epoch e (kernel/redeal.ts): t holders of the
   * active epoch, fixed by the log from those whose kernels answered (ledger/dealer-set.ts), deal fresh shares of the same secret to the new committee, sealed to each member's
   * kernel. "Round 1" of a redeal is each member's dealing (or, for a member that does not deal,
   * its joining), bound by cid in a DkgRound1Published statement like a DKG round 1; each member
   * then combines the dealings addressed to it and states KeyReady with the (unchanged) group key.
   *
   * A restart does not stall the ceremony. A kernel keeps an open ceremony in memory only; its
   * transport key, to which the dealings are sealed, is in its store. A member whose kernel
   * restarted after its round 1 reopens the ceremony with the same request and finishes it with
   * the dealings the log binds by cid (what it combines depends on nothing else), and a daemon
   * that restarted with its round 1 already in the log goes straight to the finish. A round 1
   * whose statement was not placed is stated again, and a failed finish (kernel down, KeyReady
   * not placed) is tried again, on a later pass.
   */
  private async redealStep(c: ClusterState, keyId: string, scheme: SuiteName, fromEpoch: number, e: EpochRecord): Promise<void> {
    const id = `${keyId}/${e.epoch}`;
    const prog = this.ceremonies.get(id) ?? { begun: false, round2Sent: false, finished: false };
    this.ceremonies.set(id, prog);
    const old = c.keys[keyId]?.epochs[String(fromEpoch)];
    if (old === undefined) return;
    // The dealers are fixed by the log: the first t holders whose kernels answered and who said so
    // (RedealReady, ledger/dealer-set.ts). Until then a holder says so once its own kernel answers
    // with its share's package; a holder whose kernel does not answer is never waited for.
    const dealerNodes = redealDealerSet(old, e);
    if (dealerNodes === null) {
      await this.offerToDeal(c, keyId, fromEpoch, old, e);
      return;
    }
    const dealers = dealerNodes.map((n) => identifierOf(scheme, old.participants, n));
    const ceremonyId = `redeal-${keyId}-${e.epoch}-${toHex(e.authorizedBy).slice(0, 16)}`;
    // What opens the ceremony in the kernel: the same request for its first opening and for a
    // reopening after the kernel restarted (null while a committee member's transport key or the
    // current public package is not to be had).
    const beginRequest = async (): Promise<Extract<Parameters<KernelPort['call']>[0], { kind: 'redealBegin' }> | null> => {
      const currentBytes = await this.o.exchange.get(keys.publicPackage(keyId, fromEpoch, this.nodeId)) ?? await this.anyPublic(keyId, fromEpoch, old.participants);
      if (currentBytes === undefined) return null;
      const committee: Participant[] = [];
      for (const p of e.participants) {
        const tk = await this.transportKeyOf(c, p);
        if (tk === null) return null;
        committee.push({ identifier: identifierOf(scheme, e.participants, p), nodeId: p, transportPublicKey: tk });
      }
      return {
        kind: 'redealBegin', ceremonyId, keyId, fromEpoch, toEpoch: e.epoch, dealers, min: e.threshold, committee, suite: scheme,
        current: publicFromBytes(currentBytes), identifier: identifierOf(scheme, e.participants, this.nodeId),
      };
    };
    if (!prog.begun) {
      // A round 1 of this node already in the log was stated before this daemon restarted: it
      // goes on to finish (the kernel reopens the ceremony below if it restarted too).
      if (e.round1[this.nodeId] === undefined) {
        // The kernel deals (or joins) once; the bytes are kept until the log holds their cid, so
        // a statement not placed (no leader, a timeout) is stated again on a later pass, the
        // same round 1, instead of this node waiting for good for a round 1 it never stated.
        if (prog.round1 === undefined) {
          const req = await beginRequest();
          if (req === null) return;
          // A kernel that does not answer (down, restarting) is asked again on a later pass.
          const r = await this.kernelCall(req, 'redealDealt');
          prog.round1 = r.dealer === ''
            ? encode({ joined: this.nodeId, keyId, epoch: e.epoch })
            : encode({ dealer: r.dealer, commitments: r.commitments.map((x) => new Uint8Array(x)), packages: r.packages.map((x) => ({ sender: x.sender, recipient: x.recipient, enc: new Uint8Array(x.enc), ciphertext: new Uint8Array(x.ciphertext) })) });
          this.o.log(`${this.nodeId}: ${r.dealer === '' ? 'joined' : 'dealt'} the ${keyId} epoch ${e.epoch} ceremony; stating its round 1`);
        }
        await this.o.exchange.put(keys.round1(keyId, e.epoch, this.nodeId), prog.round1);
        await this.statement(c, 'DkgRound1Published', { keyId, keyEpoch: e.epoch }, { round1Cid: round1Cid(prog.round1) });
        return;
      }
      prog.begun = true;
      prog.round1 = undefined;
    }
    if (!prog.finished && e.ready[this.nodeId] === undefined) {
      // The ledger takes KeyReady only once every member's round 1 is in the log; a dealer has
      // what it needs before a member that only joins has stated its round 1, so it waits here
      // rather than state KeyReady too early and be refused for good.
      if (!e.participants.every((p) => e.round1[p] !== undefined)) return;
      const me = identifierOf(scheme, e.participants, this.nodeId);
      const deals: { dealer: string; commitments: Uint8Array[]; package: SealedPackage }[] = [];
      for (const d of dealerNodes) {
        const want = e.round1[d];
        const b = await this.o.exchange.get(keys.round1(keyId, e.epoch, d));
        if (want === undefined || b === undefined) return;
        if (!bytesEqual(round1Cid(b), want)) throw new CustodyError('BINDING_MISMATCH', `the dealing of ${d} does not match its cid in the log`);
        const o = decode(b) as unknown as { dealer: string; commitments: Uint8Array[]; packages: SealedPackage[] };
        const pkg = o.packages.find((x) => x.recipient === me);
        if (pkg === undefined) throw new CustodyError('WRONG_RECIPIENT', `the dealing of ${d} has nothing for ${this.nodeId}`);
        deals.push({ dealer: o.dealer, commitments: o.commitments, package: pkg });
      }
      prog.finished = true;
      try {
        let kp: Extract<Awaited<ReturnType<KernelPort['call']>>, { kind: 'keyPackage' }>;
        try {
          kp = await this.kernelCall({ kind: 'redealFinish', ceremonyId, deals }, 'keyPackage');
        } catch (err) {
          if (!isCustodyError(err) || err.reason !== 'UNKNOWN_SESSION') throw err;
          // The kernel restarted since it opened the ceremony (it keeps ceremonies in memory) or
          // finished it before this daemon could state KeyReady. Everything the finish needs is in
          // the log and the exchange: the ceremony is reopened with the same request and finished
          // with the dealings the log binds. The new share depends only on those dealings, so a
          // second finish stores the same share. A dealer's kernel deals once more on reopening;
          // that dealing never leaves this process (the log names this node's first one by cid).
          const req = await beginRequest();
          if (req === null) throw err;
          this.o.log(`${this.nodeId}: the kernel no longer holds the ${keyId} epoch ${e.epoch} ceremony (${err.detail}); reopening it to finish with the dealings in the log`);
          await this.kernelCall(req, 'redealDealt');
          kp = await this.kernelCall({ kind: 'redealFinish', ceremonyId, deals }, 'keyPackage');
        }
        await this.o.exchange.put(keys.publicPackage(keyId, e.epoch, this.nodeId), publicToBytes(kp.public));
        await this.statement(c, 'KeyReady', { keyId, keyEpoch: e.epoch }, { groupKey: new Uint8Array(kp.public.commitments[0] as Uint8Array) });
      } catch (err) {
        // Not finished (the kernel is down, the statement not placed): finished on a later pass,
        // never left waiting for good.
        prog.finished = false;
        throw err;
      }
    }
  }

  /**
   * States RedealReady for the ceremony epoch `e` once: only a holder of `old` that is in e's
   * committee, and only when its own kernel answers with its package of `old` as the ledger
   * committed it (so it holds the share it would deal).
   */
  private async offerToDeal(c: ClusterState, keyId: string, fromEpoch: number, old: EpochRecord, e: EpochRecord): Promise<void> {
    if (!old.participants.includes(this.nodeId) || dealersReadyOf(e).includes(this.nodeId)) return;
    const id = `${keyId}/${e.epoch}/${toHex(e.authorizedBy)}`;
    if (this.offered.has(id)) return;
    if (await this.ownPublicPackage(keyId, fromEpoch) === undefined) return; // no share to deal: join only
    this.offered.add(id);
    const statement = signStatement({ clusterId: c.clusterId, nodeId: this.nodeId, kind: 'RedealReady', slot: { keyId, keyEpoch: e.epoch }, content: { fromEpoch } }, this.o.identitySecretKey);
    const v = await this.o.ledger.propose({ type: 'RedealReady', statement }).catch((err: unknown) => ({ ok: false, replayed: false, reason: 'REMOTE_TIMEOUT', detail: (err as Error).message }));
    if (v.ok || v.replayed) return;
    // t other holders answered first: the expected outcome for all but t of them, not a fault.
    if (v.reason === 'DEALERS_FIXED') return;
    this.o.log(`${this.nodeId}: RedealReady for ${keyId} epoch ${e.epoch} refused: ${v.reason}: ${v.detail}`);
    this.offered.delete(id); // said again on a later pass
  }

  private async anyPublic(keyId: string, epoch: number, nodes: readonly string[]): Promise<Uint8Array | undefined> {
    for (const n of nodes) {
      const b = await this.o.exchange.get(keys.publicPackage(keyId, epoch, n));
      if (b !== undefined) return b;
    }
    return undefined;
  }

  /** Everyone else's round-1 packages, each checked against the cid its author put in the log. */
  private async round1Of(e: EpochRecord, keyId: string, others: readonly string[]): Promise<Round1Package[] | null> {
    const out: Round1Package[] = [];
    for (const o of others) {
      const want = e.round1[o];
      if (want === undefined) return null;
      const b = await this.o.exchange.get(keys.round1(keyId, e.epoch, o));
      if (b === undefined) return null;
      if (!bytesEqual(round1Cid(b), want)) throw new CustodyError('BINDING_MISMATCH', `round-1 package of ${o} does not match its cid in the log`);
      out.push(round1FromBytes(b));
    }
    return out;
  }

  private async statement(c: ClusterState, kind: 'DkgRound1Published' | 'KeyReady', slot: CborValue, content: CborValue): Promise<void> {
    const statement = signStatement({ clusterId: c.clusterId, nodeId: this.nodeId, kind, slot, content }, this.o.identitySecretKey);
    const v = await this.o.ledger.propose({ type: kind, statement });
    if (!v.ok && !v.replayed) this.o.log(`${this.nodeId}: ${kind} refused: ${v.reason}: ${v.detail}`);
  }

  // ---------------------------------------------------------------------------------------------
  // Signing (asked by the coordinator)
  // ---------------------------------------------------------------------------------------------

  /**
   * Waits until this replica shows the act PendingRemote under a permit (and, with `needSet`, its
   * signing set fixed), then checks who we are.
   */
  private async authorizedAct(opId: string, needSet = false): Promise<{ c: ClusterState; op: OpRecord; e: EpochRecord; scheme: SuiteName }> {
    if (this.stopped) throw new CustodyError('REMOTE_TIMEOUT', `node ${this.nodeId} is not running`);
    const deadline = Date.now() + (this.o.catchUpMs ?? 5_000);
    for (;;) {
      const c = this.o.ledger.state().cluster;
      const op = c?.ops[opId];
      const behind = op === undefined || op.state === 'Admitted' || op.state === 'Submitted' || (needSet && op.state === 'PendingRemote' && op.signingSet === null);
      if (c !== null && c !== undefined && op !== undefined && !behind) {
        if (op.state !== 'PendingRemote') throw new CustodyError('INVALID_TRANSITION', `act ${opId} is ${op.state}`);
        const me = c.nodes[this.nodeId];
        if (me === undefined || me.status !== 'active') throw new CustodyError('SPLIT_BRAIN_FENCED', `node ${this.nodeId} is ${me?.status ?? 'unknown'}: its kernel takes no part`);
        if (me.equivocated) throw new CustodyError('EQUIVOCATION', `node ${this.nodeId} is flagged for equivocation`);
        const k = c.keys[op.act.keyId];
        const e = k?.epochs[String(op.act.keyEpoch)];
        if (k === undefined || e === undefined || k.activeEpoch !== op.act.keyEpoch) throw new CustodyError('STALE_EPOCH', `key ${op.act.keyId} epoch ${op.act.keyEpoch} is not active`);
        // A participant of the epoch, or a node enrolled in it by repair (ledger/signers.ts).
        if (!epochSigners(c, k.scheme, k.id, e).some((s) => s.nodeId === this.nodeId)) throw new CustodyError('WRONG_RECIPIENT', `${this.nodeId} holds no share of ${k.id} epoch ${e.epoch}`);
        return { c, op, e, scheme: k.scheme };
      }
      if (op === undefined && this.o.ledger.act !== undefined) {
        // An act that ended may have left the state for the archive.
        const ended = await this.o.ledger.act(opId);
        if (ended !== undefined) throw new CustodyError('INVALID_TRANSITION', `act ${opId} is ${ended.state}`);
      }
      if (Date.now() >= deadline) throw new CustodyError('UNKNOWN_SESSION', `act ${opId} has no permit${needSet ? ' or no signing set' : ''} on ${this.nodeId}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async commit(opId: string): Promise<NonceOffer> {
    const { c, op } = await this.authorizedAct(opId);
    // Once the permit's signing set is fixed no other commitment can be used under it
    // (coordinator.ts, safety (1)): the coordinator resumes the fixed set instead.
    if (op.signingSet !== null) throw new CustodyError('STEP_PERMIT_REUSED', `the signing set of ${opId} is already fixed (index ${op.signingSet.index})`);
    // One presigned nonce pair per message: never one pair for two messages (RFC 9591 §10.4).
    const count = actMessages(c, op).length;
    const r = await this.kernelCall({ kind: 'nonces', keyId: op.act.keyId, keyEpoch: kernelEpoch(op.act.keyEpoch), count }, 'nonceCommitments');
    const got = r.commitments;
    if (got.length !== count) throw new CustodyError('INTERNAL', `the kernel returned ${got.length} commitments for ${count} messages`);
    const identifier = (got[0] as { identifier: string }).identifier;
    for (let i = 0; i < got.length; i++) {
      const n = got[i] as { identifier: string; counter: number };
      if (n.identifier !== identifier || (i > 0 && n.counter <= (got[i - 1] as { counter: number }).counter)) throw new CustodyError('INTERNAL', 'the kernel returned commitments out of order');
    }
    return { nodeId: this.nodeId, identifier, nonces: got.map((n) => ({ counter: n.counter, hiding: n.hiding, binding: n.binding })) };
  }

  /**
   * A share only for the signing set the ledger fixed under the act's permit, with exactly its
   * list and this node's counter in it; asked again (a new coordinator resuming), the kernel
   * answers with the share it already gave (kernel/kernel.ts K4).
   */
  async sign(opId: string, lists: readonly (readonly SigningCommitment[])[], counters: readonly number[]): Promise<{ identifier: string; shares: Uint8Array[] }> {
    const { c, op } = await this.authorizedAct(opId, true);
    const set = op.signingSet as NonNullable<OpRecord['signingSet']>;
    const mine = set.commitments.find((m) => m.nodeId === this.nodeId);
    if (mine === undefined) throw new CustodyError('WRONG_RECIPIENT', `${this.nodeId} is not in the signing set fixed for ${opId}`);
    // The messages are this node's own parse of the act's transaction; the lists and counters
    // must be exactly the fixed set's, message by message.
    const messages = [...actMessages(c, op)];
    const same = lists.length === messages.length && counters.length === messages.length && messages.every((_, i) => {
      const want = listFor(set.commitments, i);
      const got = lists[i] as readonly SigningCommitment[];
      return got.length === want.length && want.every((m, j) => {
        const x = got[j] as SigningCommitment;
        return x.identifier === m.identifier && bytesEqual(x.hiding, m.hiding) && bytesEqual(x.binding, m.binding);
      }) && counters[i] === (mine.nonces[i] as { counter: number }).counter;
    });
    if (!same) throw new CustodyError('BINDING_MISMATCH', `not the signing set fixed for ${opId} at index ${set.index}`);
    const permit = kernelPermit(c, op);
    // What the kernel checks before it signs: a majority of the voters applied both entries.
    const certificate = await this.o.certificate([submittedIndex(op), set.index]);
    const body = {
      kind: 'sign' as const, permit: { ...permit, messageDigest: messagesDigest(messages) }, messages, lists: lists.map((l) => [...l]), counters: [...counters],
      ledgerConsumedCounter: ledgerConsumedCounter(c, op, this.nodeId),
    };
    // In the kernel queue: the consistency proof depends on the checkpoint the kernel follows,
    // which the signatures before this one in the queue may move.
    const run = this.queue.then(() => this.signFollowing(body, certificate));
    // The queue only orders calls: this call's error reaches its caller through `run`.
    this.queue = run.catch(() => undefined);
    const r = await run;
    if (r.sigShares.length !== messages.length) throw new CustodyError('INTERNAL', `the kernel returned ${r.sigShares.length} shares for ${messages.length} messages`);
    return { identifier: r.identifier, shares: [...r.sigShares] };
  }
}
