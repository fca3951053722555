/**
 * The coordinator: drives key ceremonies and signing acts through the ledger. It runs on every
 * node and acts only while its node leads the Raft group (or, when the leader's node is fenced,
 * on the first active node); everything it knows comes from the
 * ledger (this node's replica), so a new leader picks up exactly where the log says the work is.
 *
 * Message flow (L = an entry in the replicated log, X = the exchange, K = a kernel call, each
 * kernel reached only through its own node's participant, participant.ts)
 *
 *   DKG ceremony of key k (2-of-3 shown; every step is idempotent and re-derived from the log)
 *     operators      L GovernanceDecision{DkgAuthorized k, scheme, t, participants} (k-of-n approvers)
 *     each node      K governance(decision)      the kernel verifies the approvers itself
 *     each node      X transport/<node>          kernel transport key, signed by the node identity
 *     each node      K dkgBegin -> round-1 package; X dkg/k/0/round1/<node>;
 *                    L DkgRound1Published{round1Cid}   the log is the broadcast channel: every
 *                    package used later must hash to the cid its author signed into the log
 *     each node      K dkgRound2(others' round 1) -> packages sealed (HPKE) to each recipient
 *                    kernel; X dkg/k/0/round2/<from>/<to>   (daemons never see a share)
 *     each node      K dkgFinish -> key package; X dkg/k/0/public/<node>; L KeyReady{groupKey}
 *     coordinator    L KeyObjectPublished{keyReadyCid}    once every participant is ready
 *     operators      L GovernanceDecision{KeyActivated k, 0, keyReadyCid}: key is now authority
 *
 *   Refresh / reshare of key k to epoch n (the same steps, a different round 1)
 *     operators      L GovernanceDecision{KeyRefreshed|KeyReshared k, n}
 *     each holder    K publicPackage of the active epoch (its kernel answers and holds its share);
 *                    L RedealReady{k, n}: the first t fix the dealers (ledger/dealer-set.ts)
 *     each node      K redealBegin: those t holders deal fresh shares of the
 *                    same secret, sealed to each new member's kernel; X dkg/k/n/round1/<node>;
 *                    L DkgRound1Published{cid of the dealing}
 *     each node      K redealFinish(the dealings addressed to it); L KeyReady{the same group key}
 *     coordinator    L KeyObjectPublished; operators L KeyActivated{k, n}: epoch n-1 is now stale
 *                    (the ledger denies it STALE_EPOCH, and each kernel refuses its permits)
 *
 *   Signing act a on key k (acts on one key are signed one after another: a kernel consumes a
 *   key's nonces in counter order, so interleaved acts would burn each other's commitments)
 *     any node       L ActSubmitted (transaction, policy rules, approvals) -> Admitted | Denied
 *     coordinator    L ActPermitIssued                                    -> PendingRemote, permit P
 *     coordinator    ask participants, in turn, for a nonce commitment (K nonces) until t answer;
 *                    one that does not answer within remoteTimeoutMs, or refuses (fenced, the set
 *                    of P already fixed), is noted REMOTE_TIMEOUT / its reason and the next one is
 *                    asked: a retry with another signer subset; one that failed for a passing
 *                    reason is asked again until signingSetWaitMs has passed
 *     coordinator    L ActSigningSetFixed{P, the t commitments sorted by identifier, each with its
 *                    node and nonce counter}: the one signing set S of P, before any share exists
 *     coordinator    send the fixed list to the members of S (K sign with P) -> shares; a member
 *                    that does not answer is asked again until signingSetWaitMs has passed
 *     coordinator    aggregate, verify with an independent verifier, L ActExecuted{P, signature}
 *                    (the ledger checks, for Ed25519, that the signature's R is S's group
 *                    commitment, RFC 9591 §4.5/§5.3)
 *     coordinator    L ActPublished  (the publication gate: the policy in force now, or a
 *                    PublicationReleased decision; a refusal leaves the act Executed and is
 *                    retried only when the governance head or the release changes)
 *     operator       L ActSettled{confirmation}
 *
 * Safety: one permit never yields two signatures.
 *   (1) The ledger holds at most one signing set per permit P: ActSigningSetFixed applies only
 *       while the act is PendingRemote under P and only once; the same list again is a replay,
 *       any other list is refused STEP_PERMIT_REUSED, identically on every node.
 *   (2) A share is bound to one commitment list, i.e. one signing set (RFC 9591 §5.2: the binding
 *       factors hash the whole list, §4.3/§4.4), so a signature needs a share from every member
 *       over the same list (§5.3).
 *   (3) A participant asks its kernel for a share only for the list its replica shows fixed
 *       under P, with its own counter in it (participant.ts sign), and offers no new commitment
 *       once the set is fixed. So every share ever produced under P is over the fixed list S.
 *   (4) A kernel computes at most one share per permit: it records P as used, with the list,
 *       counter and message and the share itself, in the same fsynced batch that consumes the
 *       nonce, before the share leaves (kernel/kernel.ts sign). The identical request again is
 *       answered with the stored share (K4); anything else under P is refused STEP_PERMIT_REUSED.
 *       Re-sending the share reveals nothing new: it is the same value, from a nonce used once.
 *   By (1)-(4) all shares under P are the single shares of the members of S over S, so they
 *   aggregate to one signature: FROST aggregation over a fixed list and fixed shares is
 *   deterministic (§5.3: R from the list, z the sum of the shares). This needs no relation
 *   between t and n, and holds across any number of coordinators. The ledger also accepts only
 *   one ActExecuted per P (STEP_PERMIT_REUSED) and only over S. Against a daemon that bypasses
 *   (3), (4) alone still bounds the damage: two signatures would need two sets with no kernel in
 *   both, which 2t > n excludes (every threshold the product creates for a 3-node cluster, 2-of-3).
 *
 * Exactly-once after a leader change.
 *   The log is the only memory of the act: the new leader's coordinator reads its state and
 *   continues from it. Admitted -> issue the permit; PendingRemote without a signing set -> run
 *   the commitment phase under the existing permit P (if another coordinator fixes a set first,
 *   the ledger refuses this one and the fixed one is used); PendingRemote with a signing set ->
 *   ask the members of that set again with the fixed list and counters, aggregate and execute
 *   (members whose kernel already signed answer from K4, so a leader that died after the shares
 *   and before ActExecuted costs nothing, and the signature is byte for byte the one it would
 *   have made); Executed -> publish; Published -> wait for settlement. Acts whose set is fixed go
 *   first, in permit order, so a later act on the same key does not burn their fixed nonces.
 *   Each transition is a ledger event that applies at most once (ActPermitIssued only from
 *   Admitted, ActSigningSetFixed once per P, ActExecuted only with an unused P, ActPublished only
 *   from Executed, ActSettled only from Published): a second coordinator proposing the same step
 *   (the old leader before it learns it lost) is refused by the ledger, identically on every
 *   node. If a member of the fixed set stays unreachable for signingSetWaitMs (its node and
 *   kernel lost, or its nonce burned), the act ends Aborted(REMOTE_TIMEOUT) — never a second set
 *   under P — and the operator resubmits. An act not yet executed whose key was retired, or whose
 *   epoch a refresh or reshare replaced, ends Aborted(KEY_NOT_ACTIVE / STALE_EPOCH) at the next
 *   pass: the ledger would take none of its steps again.
 */
import { CustodyError, isCustodyError } from '../../proto/errors.js';
import type { ReasonCode } from '../../proto/reasons.js';
import { bytesEqual, toHex } from '../../ledger/encoding.js';
import { keyReadyCid } from '../../ledger/apply.js';
import type { LedgerEvent } from '../../ledger/events.js';
import type { ClusterState, EpochRecord, KeyRecord, OpRecord } from '../../ledger/state.js';
import { epochSigners } from '../../ledger/signers.js';
import { listFor, type SigningSetMember } from '../../ledger/events.js';
import { lifecycle } from '../../proto/limits.js';
import { suiteOf, type SuiteName } from '../../kernel/suites.js';
import type { PublicPackage, SigningCommitment } from '../../kernel/wire.js';
import type { LedgerVerdict } from '../ledger-app.js';
import type { Exchange, LedgerPort, NonceOffer, ParticipantPort } from './ports.js';
import { actMessages, keys, publicFromBytes, publicMatchesLedger } from './participant.js';
import { withDeadline } from './kernel-port.js';
import { verifySignature } from './verify.js';
import { Rerunner } from './rerun.js';

export interface ChronicleNote {
  readonly opId: string;
  readonly atMs: number;
  readonly text: string;
  readonly reason?: ReasonCode;
}

/** Test-only: named points where a test may stop the coordinator (like the kernel's crash points). */
export type CoordinatorPoint = 'act:permit-issued' | 'act:commitments' | 'act:signing-set-fixed' | 'act:shares' | 'act:executed';

export interface CoordinatorOptions {
  readonly nodeId: string;
  readonly ledger: LedgerPort;
  readonly exchange: Exchange;
  /** Every node's participant, this node's included. */
  readonly participants: ReadonlyMap<string, ParticipantPort>;
  /** This node's kernel's public package of a key epoch (LifecycleParticipant.ownPublicPackage), tried before the exchange. */
  readonly localPublicPackage?: (keyId: string, epoch: number) => Promise<Uint8Array | undefined>;
  readonly log: (line: string) => void;
  /** How long a participant may take to answer one request. */
  readonly remoteTimeoutMs?: number;
  /** How long the members of a fixed signing set are asked for their shares before the act aborts. */
  readonly signingSetWaitMs?: number;
  /** How often the coordinator re-reads the ledger without a new entry (leadership changes). */
  readonly pollMs?: number;
  readonly point?: (p: CoordinatorPoint, opId: string) => void | Promise<void>;
}

const NOTES_PER_OP_MAX = 64;

/** Refusals a member of a fixed signing set may get over by itself: it is down, restarting or behind. */
const RETRYABLE: readonly ReasonCode[] = ['REMOTE_TIMEOUT', 'UNKNOWN_SESSION', 'INTERNAL', 'NOT_LEADER', 'PROPOSAL_DROPPED'];
const NOTED_OPS_MAX = 10_000;

/** Why an act can no longer be signed under its key epoch (the ledger's keyUsable), or null. */
function unusable(c: ClusterState, op: OpRecord): { reason: ReasonCode; detail: string } | null {
  const k = c.keys[op.act.keyId];
  if (k === undefined || k.status !== 'active' || k.activeEpoch === null) return { reason: 'KEY_NOT_ACTIVE', detail: `key ${op.act.keyId} is ${k?.status ?? 'unknown'}` };
  if (k.activeEpoch !== op.act.keyEpoch) return { reason: 'STALE_EPOCH', detail: `key ${op.act.keyId} is at epoch ${k.activeEpoch}, not ${op.act.keyEpoch}` };
  return null;
}

export class Coordinator {
  private readonly o: CoordinatorOptions;
  private readonly running = new Set<string>();
  private readonly keyQueues = new Map<string, Promise<void>>();
  private readonly gateDenied = new Map<string, string>();
  /** Acts waiting for their key's public package, since when (bounded like gateDenied: pending acts only). */
  private readonly packageWaits = new Map<string, number>();
  private readonly publishing = new Set<string>();
  private readonly notes = new Map<string, ChronicleNote[]>();
  private readonly noteListeners = new Set<(n: ChronicleNote) => void>();
  private unsub: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(o: CoordinatorOptions) {
    this.o = o;
  }

  get remoteTimeoutMs(): number {
    return this.o.remoteTimeoutMs ?? lifecycle.remoteTimeoutMsDefault;
  }

  get signingSetWaitMs(): number {
    return this.o.signingSetWaitMs ?? lifecycle.signingSetWaitMsDefault;
  }

  start(): void {
    this.unsub = this.o.ledger.subscribe(() => this.kick());
    this.timer = setInterval(() => this.kick(), this.o.pollMs ?? 250);
    this.kick();
  }

  stop(): void {
    this.stopped = true;
    this.unsub?.();
    if (this.timer !== null) clearInterval(this.timer);
  }

  notesOf(opId: string): readonly ChronicleNote[] {
    return this.notes.get(opId) ?? [];
  }

  onNote(l: (n: ChronicleNote) => void): () => void {
    this.noteListeners.add(l);
    return () => this.noteListeners.delete(l);
  }

  private note(opId: string, text: string, reason?: ReasonCode): void {
    const n: ChronicleNote = { opId, atMs: Date.now(), text, ...(reason ? { reason } : {}) };
    let list = this.notes.get(opId);
    if (list === undefined) {
      if (this.notes.size >= NOTED_OPS_MAX) this.notes.delete(this.notes.keys().next().value as string);
      list = [];
      this.notes.set(opId, list);
    }
    if (list.length >= NOTES_PER_OP_MAX) list.shift();
    list.push(n);
    for (const l of this.noteListeners) l(n);
    this.o.log(`${this.o.nodeId}: ${opId}: ${reason ? `${reason}: ` : ''}${text}`);
  }

  private readonly rerun = new Rerunner(
    () => this.reconcile(),
    (e) => this.o.log(`${this.o.nodeId}: coordinator: ${e.message}`),
    () => this.stopped,
  );

  private kick(): void {
    this.rerun.kick();
  }

  private async propose(event: LedgerEvent): Promise<LedgerVerdict | null> {
    try {
      return await this.o.ledger.propose(event);
    } catch (e) {
      // Not placed (leadership moved, timeout): the next reconcile re-derives the step from the log.
      // Said in the act's history with its code, not only in the log.
      const detail = `proposal of ${event.type} not applied: ${isCustodyError(e) ? e.detail : (e as Error).message}`;
      if ('opId' in event && typeof event.opId === 'string') this.note(event.opId, detail, isCustodyError(e) ? e.reason : 'INTERNAL');
      else this.o.log(`${this.o.nodeId}: ${detail}`);
      return null;
    }
  }

  /**
   * Whether this node drives the lifecycle now: its node is active in the ledger, and it leads
   * the Raft group, or the leader's node is fenced, removed or equivocating (its proposals would
   * all be refused) and this is the first active node by id. Two coordinators at once are safe
   * (see the safety argument): the ledger applies each step once.
   */
  private shouldCoordinate(c: ClusterState): boolean {
    const usable = (id: string | null): boolean => {
      const n = id === null ? undefined : c.nodes[id];
      return n !== undefined && n.status === 'active' && !n.equivocated;
    };
    if (!usable(this.o.nodeId)) return false;
    if (this.o.ledger.isLeader()) return true;
    const leader = this.o.ledger.raftStatus().leader;
    if (leader === null || usable(leader)) return false;
    return Object.values(c.nodes).filter((n) => usable(n.id)).map((n) => n.id).sort()[0] === this.o.nodeId;
  }

  /** One pass: derive every due step from the ledger and start it. */
  private async reconcile(): Promise<void> {
    const c = this.o.ledger.state().cluster;
    if (c === null || !this.shouldCoordinate(c)) return;
    for (const k of Object.values(c.keys)) {
      for (const e of Object.values(k.epochs)) {
        if (e.status === 'ceremony' && e.participants.every((p) => e.ready[p] !== undefined)) await this.publishKeyObject(k.id, e);
      }
    }
    // Acts whose signing set is already fixed go first, then in permit order: their members'
    // kernels hold the fixed nonces, which a later act's signing on the same key would burn.
    const pendingFirst = (o: OpRecord): number => (o.state !== 'PendingRemote' ? 2 : o.signingSet === null ? 1 : 0);
    const permitIndex = (o: OpRecord): number => (o.permitId === null ? 0 : c.permits[toHex(o.permitId)]?.index ?? 0);
    const ops = Object.values(c.ops).filter((o) => o.state === 'Admitted' || o.state === 'PendingRemote' || o.state === 'Executed')
      .sort((a, b) => pendingFirst(a) - pendingFirst(b) || permitIndex(a) - permitIndex(b));
    // Gate verdicts matter only while their act waits at the gate: an act that ended since (and
    // may have left memory for the archive) is forgotten here too, so this map stays bounded.
    for (const id of [...this.gateDenied.keys()]) if (c.ops[id]?.state !== 'Executed') this.gateDenied.delete(id);
    for (const id of [...this.packageWaits.keys()]) if (c.ops[id]?.state !== 'PendingRemote') this.packageWaits.delete(id);
    for (const op of ops) {
      // An act not yet executed whose key was retired, or whose epoch a refresh or reshare
      // replaced, can never be: the ledger takes no permit, signing set or execution under that
      // epoch (keyUsable) and every kernel refuses its permits. It is aborted with the ledger's
      // reason, instead of its permit being refused on every pass for good (Admitted) or its
      // signers asked until signingSetWaitMs has passed (PendingRemote).
      const gone = op.state === 'Executed' ? null : unusable(c, op);
      if (gone !== null) {
        await this.abort(op.opId, gone.reason, `${gone.detail}: the act can no longer be signed`);
        continue;
      }
      switch (op.state) {
        case 'Admitted':
          if (c.governance.frozen === null) await this.issuePermit(op);
          break;
        case 'PendingRemote':
          if (!this.running.has(op.opId)) {
            this.running.add(op.opId);
            // Acts on one key are signed one after another: a kernel consumes a key's nonces in
            // counter order and burns the older ones (kernel/kernel.ts), so two acts interleaving
            // their commitments on one kernel would burn the first act's nonce.
            const keyId = op.act.keyId;
            const run = (this.keyQueues.get(keyId) ?? Promise.resolve()).then(() => this.signAct(op.opId)).finally(() => this.running.delete(op.opId));
            // The queue goes on after a failed act; the failure is logged with its reason (signAct
            // aborts the act itself where it can, so the ledger records what happened).
            const tail = run.catch((e: unknown) => this.o.log(`${op.opId}: signing stopped: ${isCustodyError(e) ? `${e.reason}: ${e.detail}` : `INTERNAL: ${(e as Error).message}`}`));
            this.keyQueues.set(keyId, tail);
            void tail.then(() => {
              if (this.keyQueues.get(keyId) === tail) this.keyQueues.delete(keyId);
            });
          }
          break;
        case 'Executed':
          this.maybePublish(c, op);
          break;
        default:
          break;
      }
    }
  }

  private async publishKeyObject(keyId: string, e: EpochRecord): Promise<void> {
    const ready = e.participants.map((p) => e.ready[p] as { statementCid: Uint8Array; groupKey: Uint8Array });
    const groupKey = (ready[0] as { groupKey: Uint8Array }).groupKey;
    const cid = keyReadyCid(keyId, e.epoch, groupKey, ready.map((r) => r.statementCid));
    const v = await this.propose({ type: 'KeyObjectPublished', keyId, keyEpoch: e.epoch, keyReadyCid: cid });
    if (v !== null && !v.ok && !v.replayed && v.reason !== 'INVALID_TRANSITION') this.o.log(`${this.o.nodeId}: KeyObjectPublished ${keyId}/${e.epoch} refused: ${v.reason}: ${v.detail}`);
  }

  private proposer(): { nodeId: string; passport: string } {
    const n = this.o.ledger.state().cluster?.nodes[this.o.nodeId];
    if (n === undefined) throw new CustodyError('UNKNOWN_NODE', `${this.o.nodeId} is not on the roster`);
    return { nodeId: n.id, passport: n.passport };
  }

  private async issuePermit(op: OpRecord): Promise<void> {
    const v = await this.propose({ type: 'ActPermitIssued', opId: op.opId, ...this.proposer() });
    if (v === null) return;
    if (v.ok) {
      this.note(op.opId, `step permit issued at index ${v.index}`);
      await this.o.point?.('act:permit-issued', op.opId);
    } else if (v.reason !== 'INVALID_TRANSITION') this.note(op.opId, `permit refused: ${v.detail}`, v.reason);
  }

  private async abort(opId: string, reason: ReasonCode, detail: string): Promise<void> {
    this.note(opId, `aborting: ${detail}`, reason);
    await this.propose({ type: 'ActAborted', opId, reason, ...this.proposer() });
  }

  /**
   * The key epoch's public package: this node's own kernel's copy (its store keeps it across
   * restarts and restores) if it holds one, else one from the exchange (each participant puts its
   * kernel's copy there, again after every restart); either is used only if it matches the group
   * key and committee the ledger committed (publicMatchesLedger), and the signature aggregated
   * with it is verified under the ledger's group key before it goes into the log. Null while no
   * matching package can be had (the participants' daemons or kernels are still starting).
   */
  private async publicPackage(keyId: string, scheme: SuiteName, e: EpochRecord): Promise<{ pub: PublicPackage | null; rejected: string[] }> {
    const candidates = async function* (o: CoordinatorOptions): AsyncGenerator<{ from: string; b: Uint8Array }> {
      const own = await o.localPublicPackage?.(keyId, e.epoch);
      if (own !== undefined) yield { from: `${o.nodeId}'s kernel`, b: own };
      for (const p of e.participants) {
        const b = await o.exchange.get(keys.publicPackage(keyId, e.epoch, p));
        if (b !== undefined) yield { from: `${p} (exchange)`, b };
      }
    };
    // The exchange is untrusted: a package that is none, or not the ledger's, is passed over, and
    // said (the act's history names it when no package can be had).
    const rejected: string[] = [];
    for await (const { from, b } of candidates(this.o)) {
      let pub: PublicPackage;
      try {
        pub = publicFromBytes(b);
      } catch (err) {
        rejected.push(`${from}: PAYLOAD_REJECTED: not a public key package (${(err as Error).message})`);
        continue;
      }
      if (publicMatchesLedger(pub, scheme, e)) return { pub, rejected };
      rejected.push(`${from}: BINDING_MISMATCH: its group key or committee is not the ledger's`);
    }
    return { pub: null, rejected };
  }

  /**
   * The signing of one PendingRemote act, from the ledger's permit to ActExecuted: the commitment
   * phase and ActSigningSetFixed if the permit has no signing set yet, then the shares of exactly
   * the set the ledger holds (a set fixed by an earlier leader is resumed, never replaced).
   */
  private async signAct(opId: string): Promise<void> {
    if (this.stopped || !this.stillPending(opId)) return;
    const c0 = this.o.ledger.state().cluster as ClusterState;
    const op = c0.ops[opId] as OpRecord;
    const key = c0.keys[op.act.keyId];
    const e = key?.epochs[String(op.act.keyEpoch)];
    if (key === undefined || e === undefined || e.groupKey === null) return this.abort(opId, 'STALE_EPOCH', `key ${op.act.keyId} epoch ${op.act.keyEpoch} is gone`);
    // The public package is needed to aggregate: without one, no nonce is asked for. The act
    // waits for a participant to publish it (a daemon restarting) at most signingSetWaitMs.
    const { pub, rejected } = await this.publicPackage(key.id, key.scheme, e);
    if (pub === null) {
      const since = this.packageWaits.get(opId) ?? Date.now();
      const passed = rejected.length === 0 ? '' : `; passed over: ${rejected.join('; ')}`;
      if (!this.packageWaits.has(opId)) {
        this.packageWaits.set(opId, since);
        this.note(opId, `waiting for the public key package of ${key.id} epoch ${e.epoch} (no participant has published one that matches the ledger yet)${passed}`, 'KEY_NOT_PUBLISHED');
      }
      if (Date.now() - since < this.signingSetWaitMs) return;
      this.packageWaits.delete(opId);
      return this.abort(opId, 'KEY_NOT_PUBLISHED', `no public key package of ${key.id} epoch ${e.epoch} matching the ledger within ${this.signingSetWaitMs} ms${passed}`);
    }
    this.packageWaits.delete(opId);
    if (op.signingSet === null) {
      const fixed = await this.fixSigningSet(c0, op, e);
      if (!fixed) return;
    } else {
      this.note(opId, `resuming the signing set fixed at index ${op.signingSet.index}: ${op.signingSet.commitments.map((m) => m.nodeId).join(', ')}`);
    }
    const set = this.o.ledger.state().cluster?.ops[opId]?.signingSet ?? null;
    if (set === null || !this.stillPending(opId)) return;

    // Share phase: only the members of the fixed set, only with the fixed lists, one per message
    // (see the safety argument). A member that already signed answers from its kernel's record (K4).
    let messages: readonly Uint8Array[];
    try {
      messages = actMessages(this.o.ledger.state().cluster as ClusterState, op);
    } catch (err) {
      return this.abort(opId, isCustodyError(err) ? err.reason : 'INTERNAL', `the act's transaction: ${(err as Error).message}`);
    }
    const lists: SigningCommitment[][] = messages.map((_, i) => listFor(set.commitments, i));
    const shares = await this.gatherShares(opId, set.commitments, lists);
    if (!this.stillPending(opId)) return;
    if (Object.keys(shares).length < set.commitments.length) {
      return this.abort(opId, 'REMOTE_TIMEOUT', `a signer of the fixed set did not answer within ${this.signingSetWaitMs} ms; the permit is spent, never signed with another set`);
    }
    await this.o.point?.('act:shares', opId);
    const suite = suiteOf(key.scheme);
    // The participants' verifying shares come from the public package (checked against the
    // ledger); an enrolled holder's from its ShareRepaired in the ledger (ledger/signers.ts).
    const verifyingShares: Record<string, Uint8Array> = Object.fromEntries(pub.verifyingShares.map((v) => [v.identifier, v.point]));
    for (const s of epochSigners(this.o.ledger.state().cluster as ClusterState, key.scheme, key.id, e)) if (s.verifyingShare !== null) verifyingShares[s.identifier] ??= s.verifyingShare;
    const pkg = { signers: { min: pub.min, max: Math.max(pub.max, Object.keys(verifyingShares).length) }, commitments: pub.commitments, verifyingShares };
    // Each message is aggregated with its own list and its own shares (RFC 9591 §5.3), and each
    // signature is verified under the group key with an independent verifier (BIP 340 for
    // taproot, OpenSSL Ed25519 for ed25519) before anything is proposed.
    const signatures: Uint8Array[] = [];
    for (let i = 0; i < messages.length; i++) {
      const msg = messages[i] as Uint8Array;
      const sharesI = Object.fromEntries(Object.entries(shares).map(([id, s]) => [id, s[i] as Uint8Array]));
      let signature: Uint8Array;
      try {
        signature = suite.frost.aggregate(pkg as never, lists[i] as never, msg, sharesI as never);
      } catch (err) {
        return this.abort(opId, 'PAYLOAD_REJECTED', `aggregation of message ${i} failed: ${(err as Error).message}`);
      }
      if (!verifySignature(key.scheme, e.groupKey, msg, signature)) {
        return this.abort(opId, 'SIGNATURE_INVALID', `the aggregate signature of message ${i} does not verify`);
      }
      signatures.push(signature);
    }
    const permitId = op.permitId as Uint8Array;
    const v = await this.propose({ type: 'ActExecuted', opId, permitId, signatures, ...this.proposer() });
    if (v === null) return;
    if (v.ok) {
      // Not even a prefix of a signature in notes or logs before the act is published (README).
      this.note(opId, `executed at index ${v.index}: ${signatures.length} signature${signatures.length === 1 ? '' : 's'}, withheld until published; waiting at the publication gate`);
      await this.o.point?.('act:executed', opId);
    } else {
      this.note(opId, `execution refused: ${v.detail}`, v.reason);
    }
  }

  /**
   * Commitment phase and ActSigningSetFixed. No share exists yet, so asking another participant
   * is always safe. True when the ledger holds a signing set for the act afterwards (this one,
   * or one another coordinator fixed first).
   */
  private async fixSigningSet(c0: ClusterState, op: OpRecord, e: EpochRecord): Promise<boolean> {
    const opId = op.opId;
    const t = e.threshold;
    // Candidates: participants whose node may take part now (a fenced or equivocating node's
    // kernel takes no part), starting at a point derived from the act so load spreads.
    // The holders are the epoch's participants and the nodes enrolled in it by repair
    // (ledger/signers.ts), in identifier order.
    const holders = epochSigners(c0, (c0.keys[op.act.keyId] as KeyRecord).scheme, op.act.keyId, e).map((s) => s.nodeId);
    const eligible = holders.filter((p) => {
      const n = c0.nodes[p];
      return n !== undefined && n.status === 'active' && !n.equivocated && this.o.participants.has(p);
    });
    for (const p of holders) if (!eligible.includes(p)) this.note(opId, `${p} excluded: ${c0.nodes[p]?.status ?? 'unknown'}`, 'SPLIT_BRAIN_FENCED');
    const start = (op.permitId?.[0] ?? 0) % Math.max(1, eligible.length);
    const order = [...eligible.slice(start), ...eligible.slice(0, start)];

    // Candidates that did not answer for a passing reason (a peer still starting, a kernel link
    // reconnecting, a replica behind) are asked again every signingSetRetryMs until
    // signingSetWaitMs has passed: no share exists yet, so asking again is always safe, and an
    // act admitted while a peer restarts is not aborted in the milliseconds its channel needs.
    // A fresh commitment per request costs only presigned nonces, which the next consumed counter
    // burns.
    const offers: NonceOffer[] = [];
    const deadline = Date.now() + this.signingSetWaitMs;
    let waiting = order;
    const told = new Set<string>();
    for (;;) {
      const again: string[] = [];
      for (const p of waiting) {
        if (offers.length === t) break;
        const port = this.o.participants.get(p) as ParticipantPort;
        try {
          offers.push(await withDeadline(port.commit(opId), this.remoteTimeoutMs, `nonce commitment from ${p}`));
          this.note(opId, `nonce commitment from ${p}${told.has(p) ? ' (asked again)' : ''}`);
        } catch (err) {
          const reason: ReasonCode = isCustodyError(err) ? err.reason : 'INTERNAL';
          if (reason === 'INVALID_TRANSITION') return false; // the act moved on (another coordinator finished it)
          if (this.fixedNow(opId)) return true; // another coordinator fixed the set meanwhile
          const retry = RETRYABLE.includes(reason) && Date.now() + lifecycle.signingSetRetryMs < deadline;
          if (!told.has(p) || !retry) this.note(opId, `${p} did not commit (${(err as Error).message}); asking another signer${retry ? ' (and it again shortly)' : ''}`, reason);
          told.add(p);
          if (retry) again.push(p);
        }
      }
      if (offers.length === t || again.length === 0 || this.stopped || !this.stillPending(opId) || this.fixedNow(opId)) break;
      await new Promise((r) => setTimeout(r, lifecycle.signingSetRetryMs));
      waiting = again;
    }
    if (!this.stillPending(opId)) return false;
    if (this.fixedNow(opId)) return true;
    if (offers.length < t) {
      await this.abort(opId, 'REMOTE_TIMEOUT', `only ${offers.length} of ${t} signers answered`);
      return false;
    }
    await this.o.point?.('act:commitments', opId);

    // The list, sorted by identifier (RFC 9591 §5.2), goes into the ledger before any share is asked.
    offers.sort((a, b) => holders.indexOf(a.nodeId) - holders.indexOf(b.nodeId));
    const commitments = offers.map((x) => ({ nodeId: x.nodeId, identifier: x.identifier, nonces: x.nonces.map((n) => ({ counter: n.counter, hiding: n.hiding, binding: n.binding })) }));
    const v = await this.propose({ type: 'ActSigningSetFixed', opId, permitId: op.permitId as Uint8Array, commitments, ...this.proposer() });
    if (v === null) return false; // not placed: the next pass re-reads the log
    if (!v.ok) {
      if (this.fixedNow(opId)) {
        this.note(opId, 'another coordinator fixed the signing set first; continuing with that one', v.reason);
        return true;
      }
      this.note(opId, `signing set refused: ${v.detail}`, v.reason);
      return false;
    }
    this.note(opId, `signing set fixed at index ${v.index}: ${commitments.map((m) => m.nodeId).join(', ')}`);
    await this.o.point?.('act:signing-set-fixed', opId);
    return true;
  }

  private fixedNow(opId: string): boolean {
    return (this.o.ledger.state().cluster?.ops[opId]?.signingSet ?? null) !== null;
  }

  /**
   * Asks every member of the fixed set for its share with the fixed list, re-asking a member that
   * did not answer (down, restarting, its replica behind) every signingSetRetryMs until
   * signingSetWaitMs has passed; a definite refusal is not re-asked.
   */
  private async gatherShares(opId: string, members: readonly SigningSetMember[], lists: readonly (readonly SigningCommitment[])[]): Promise<Record<string, Uint8Array[]>> {
    const shares: Record<string, Uint8Array[]> = {};
    const deadline = Date.now() + this.signingSetWaitMs;
    await Promise.all(members.map(async (m) => {
      const port = this.o.participants.get(m.nodeId);
      let tries = 0;
      for (;;) {
        if (this.stopped || !this.stillPending(opId)) return;
        tries++;
        try {
          if (port === undefined) throw new CustodyError('UNKNOWN_NODE', `no participant ${m.nodeId} to ask`);
          const r = await withDeadline(port.sign(opId, lists, m.nonces.map((n) => n.counter)), this.remoteTimeoutMs, `signature share from ${m.nodeId}`);
          if (r.identifier !== m.identifier || r.shares.length !== lists.length) throw new CustodyError('BINDING_MISMATCH', `${m.nodeId} answered ${r.shares.length} shares as ${r.identifier}`);
          shares[r.identifier] = r.shares;
          this.note(opId, `signature share from ${m.nodeId}${tries > 1 ? ` (request ${tries})` : ''}`);
          return;
        } catch (err) {
          const reason: ReasonCode = isCustodyError(err) ? err.reason : 'INTERNAL';
          const retry = RETRYABLE.includes(reason) && Date.now() + lifecycle.signingSetRetryMs < deadline;
          if (tries === 1 || !retry) this.note(opId, `${m.nodeId} gave no share: ${(err as Error).message}${retry ? '; asking again' : ''}`, reason);
          if (!retry) return;
          await new Promise((r) => setTimeout(r, lifecycle.signingSetRetryMs));
        }
      }
    }));
    return shares;
  }

  private stillPending(opId: string): boolean {
    return this.o.ledger.state().cluster?.ops[opId]?.state === 'PendingRemote';
  }

  /** The publication gate, retried only when what it depends on has changed. */
  private maybePublish(c: ClusterState, op: OpRecord): void {
    const gate = `${toHex(c.governance.headCid)}/${op.releasedBy === null ? '-' : toHex(op.releasedBy)}/${c.governance.frozen === null ? 'open' : 'frozen'}`;
    if (this.gateDenied.get(op.opId) === gate || this.publishing.has(op.opId)) return;
    this.publishing.add(op.opId);
    void (async () => {
      try {
        const v = await this.propose({ type: 'ActPublished', opId: op.opId, ...this.proposer() });
        if (v === null) return;
        if (v.ok) {
          this.gateDenied.delete(op.opId);
          this.note(op.opId, `published at index ${v.index}`);
        } else if (v.reason !== 'INVALID_TRANSITION') {
          this.gateDenied.set(op.opId, gate);
          this.note(op.opId, `held at the publication gate: ${v.detail}`, v.reason);
        }
      } finally {
        this.publishing.delete(op.opId);
      }
    })();
  }
}
