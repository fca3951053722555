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
 *     each node      K redealBegin: the first t holders of the active epoch deal fresh shares of the
 *                    same secret, sealed to each new member's kernel; X dkg/k/n/round1/<node>;
 *                    L DkgRound1Published{cid of the dealing}
 *     each node      K redealFinish(the dealings addressed to it); L KeyReady{the same group key}
 *     coordinator    L KeyObjectPublished; operators L KeyActivated{k, n}: epoch n-1 is now stale
 *                    (the ledger denies it STALE_EPOCH, and each kernel refuses its permits)
 *
 *   Signing act a on key k (acts on one key are signed one after another: a kernel consumes a
 *   key's nonces in counter order, so interleaved acts would burn each other's commitments)
 *     any node       L ActSubmitted (policy, approvals, velocity, epoch)  -> Admitted | Denied
 *     coordinator    L ActPermitIssued                                    -> PendingRemote, permit P
 *     coordinator    ask participants, in turn, for a nonce commitment (K nonces) until t answer;
 *                    one that does not answer within remoteTimeoutMs, or refuses (fenced, P
 *                    already used), is noted REMOTE_TIMEOUT / its reason and the next one is
 *                    asked: a retry with another signer subset
 *     coordinator    send the fixed commitment list to those t (K sign with P) -> shares
 *     coordinator    aggregate, verify with an independent verifier, L ActExecuted{P, signature}
 *     coordinator    L ActPublished  (the publication gate: the policy in force now, or a
 *                    PublicationReleased decision; a refusal leaves the act Executed and is
 *                    retried only when the governance head or the release changes)
 *     operator       L ActSettled{confirmation}
 *
 * Safety: one permit never yields two signatures.
 *   (1) A kernel computes at most one signature share per permit: it records permit P as used
 *       in the same fsynced batch that consumes the nonce, before the share leaves
 *       (kernel/kernel.ts sign), and refuses P again with STEP_PERMIT_REUSED. Participants also
 *       refuse to offer a commitment for a P they have already signed under.
 *   (2) A share is bound to one commitment list, i.e. one signing set S (RFC 9591 §5.2: the
 *       binding factors hash the whole list), so a signature needs t shares over the same S.
 *   (3) Two different signatures for P would need two signing sets S1 != S2, each with t shares;
 *       by (1) no kernel is in both, so |S1| + |S2| = 2t <= n. The coordinator retries only
 *       *before* any share is requested (the commitment phase). Once sign requests are out, a
 *       failure aborts the act (ActAborted REMOTE_TIMEOUT marks P spent in the ledger) and is
 *       never retried under P with another set. So even where 2t <= n, at most one set is ever
 *       sent sign requests by one coordinator; across coordinators (a leader change) (3) needs
 *       2t > n, which every threshold the product creates for a 3-node cluster (2-of-3) meets,
 *       and the ledger accepts only one ActExecuted per P in any case (STEP_PERMIT_REUSED).
 *
 * Exactly-once after a leader change.
 *   The log is the only memory of the act: the new leader's coordinator reads its state and
 *   continues from it. Admitted -> issue the permit; PendingRemote -> run the signing under the
 *   existing permit P (participants whose kernel already signed under P decline to commit, so
 *   fresh ones are chosen); Executed -> publish; Published -> wait for settlement. Each
 *   transition is a ledger event that applies at most once (ActPermitIssued only from Admitted,
 *   ActExecuted only with an unused P, ActPublished only from Executed, ActSettled only from
 *   Published): a second coordinator proposing the same step (the old leader before it learns it
 *   lost) is refused by the ledger, identically on every node. If the old leader died after t
 *   kernels signed but before ActExecuted committed, and fewer than t fresh kernels remain, the
 *   act ends Aborted(REMOTE_TIMEOUT) — never a second signature — and the operator resubmits.
 */
import { CustodyError, isCustodyError } from '../../proto/errors.js';
import type { ReasonCode } from '../../proto/reasons.js';
import { bytesEqual, toHex } from '../../ledger/encoding.js';
import { keyReadyCid } from '../../ledger/apply.js';
import type { LedgerEvent } from '../../ledger/events.js';
import type { ClusterState, EpochRecord, OpRecord } from '../../ledger/state.js';
import { suiteOf } from '../../kernel/suites.js';
import type { SigningCommitment } from '../../kernel/wire.js';
import type { LedgerVerdict } from '../ledger-app.js';
import type { Exchange, LedgerPort, NonceOffer, ParticipantPort } from './ports.js';
import { keys, publicFromBytes } from './participant.js';
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
export type CoordinatorPoint = 'act:permit-issued' | 'act:commitments' | 'act:shares' | 'act:executed';

export interface CoordinatorOptions {
  readonly nodeId: string;
  readonly ledger: LedgerPort;
  readonly exchange: Exchange;
  /** Every node's participant, this node's included. */
  readonly participants: ReadonlyMap<string, ParticipantPort>;
  readonly log: (line: string) => void;
  /** How long a participant may take to answer one request. */
  readonly remoteTimeoutMs?: number;
  /** How often the coordinator re-reads the ledger without a new entry (leadership changes). */
  readonly pollMs?: number;
  readonly point?: (p: CoordinatorPoint, opId: string) => void | Promise<void>;
}

const NOTES_PER_OP_MAX = 64;
const NOTED_OPS_MAX = 10_000;

export class Coordinator {
  private readonly o: CoordinatorOptions;
  private readonly running = new Set<string>();
  private readonly keyQueues = new Map<string, Promise<void>>();
  private readonly gateDenied = new Map<string, string>();
  private readonly publishing = new Set<string>();
  private readonly published = new Set<string>();
  private readonly notes = new Map<string, ChronicleNote[]>();
  private readonly noteListeners = new Set<(n: ChronicleNote) => void>();
  private unsub: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(o: CoordinatorOptions) {
    this.o = o;
  }

  get remoteTimeoutMs(): number {
    return this.o.remoteTimeoutMs ?? 5_000;
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
      this.o.log(`${this.o.nodeId}: proposal of ${event.type} not applied: ${(e as Error).message}`);
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
    for (const op of Object.values(c.ops)) {
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
            const tail = run.catch(() => undefined);
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

  /** The key epoch's public package from the exchange, checked against the group key in the log. */
  private async publicPackage(keyId: string, e: EpochRecord): Promise<ReturnType<typeof publicFromBytes>> {
    for (const p of e.participants) {
      const b = await this.o.exchange.get(keys.publicPackage(keyId, e.epoch, p));
      if (b === undefined) continue;
      const pub = publicFromBytes(b);
      const gk = pub.commitments[0];
      if (gk !== undefined && e.groupKey !== null && bytesEqual(gk, e.groupKey)) return pub;
    }
    throw new CustodyError('KEY_NOT_PUBLISHED', `no public package of ${keyId} epoch ${e.epoch} matches the group key in the log`);
  }

  /** The signing of one PendingRemote act, from the ledger's permit to ActExecuted. */
  private async signAct(opId: string): Promise<void> {
    if (this.stopped || !this.stillPending(opId)) return;
    const c0 = this.o.ledger.state().cluster as ClusterState;
    const op = c0.ops[opId] as OpRecord;
    const key = c0.keys[op.act.keyId];
    const e = key?.epochs[String(op.act.keyEpoch)];
    if (key === undefined || e === undefined || e.groupKey === null) return this.abort(opId, 'STALE_EPOCH', `key ${op.act.keyId} epoch ${op.act.keyEpoch} is gone`);
    const t = e.threshold;
    // Candidates: participants whose node may take part now (a fenced or equivocating node's
    // kernel takes no part), starting at a point derived from the act so load spreads.
    const eligible = e.participants.filter((p) => {
      const n = c0.nodes[p];
      return n !== undefined && n.status === 'active' && !n.equivocated && this.o.participants.has(p);
    });
    for (const p of e.participants) if (!eligible.includes(p)) this.note(opId, `${p} excluded: ${c0.nodes[p]?.status ?? 'unknown'}`, 'SPLIT_BRAIN_FENCED');
    const start = (op.permitId?.[0] ?? 0) % Math.max(1, eligible.length);
    const order = [...eligible.slice(start), ...eligible.slice(0, start)];

    // Commitment phase: no share exists yet, so asking another participant is always safe.
    const offers: NonceOffer[] = [];
    for (const p of order) {
      if (offers.length === t) break;
      const port = this.o.participants.get(p) as ParticipantPort;
      try {
        offers.push(await withDeadline(port.commit(opId), this.remoteTimeoutMs, `nonce commitment from ${p}`));
        this.note(opId, `nonce commitment from ${p}`);
      } catch (err) {
        const reason: ReasonCode = isCustodyError(err) ? err.reason : 'INTERNAL';
        this.note(opId, `${p} did not commit (${(err as Error).message}); asking another signer`, reason);
        if (reason === 'INVALID_TRANSITION') return; // the act moved on (another coordinator finished it)
      }
    }
    if (!this.stillPending(opId)) return;
    if (offers.length < t) return this.abort(opId, 'REMOTE_TIMEOUT', `only ${offers.length} of ${t} signers answered`);
    await this.o.point?.('act:commitments', opId);

    // Share phase: from here on the set is fixed; any failure aborts (see the safety argument).
    offers.sort((a, b) => e.participants.indexOf(a.nodeId) - e.participants.indexOf(b.nodeId));
    const list: SigningCommitment[] = offers.map((x) => ({ identifier: x.identifier, hiding: x.hiding, binding: x.binding }));
    const results = await Promise.allSettled(offers.map((x) =>
      withDeadline((this.o.participants.get(x.nodeId) as ParticipantPort).sign(opId, list, x.counter), this.remoteTimeoutMs, `signature share from ${x.nodeId}`)));
    const shares: Record<string, Uint8Array> = {};
    for (let i = 0; i < results.length; i++) {
      const r = results[i] as PromiseSettledResult<{ identifier: string; share: Uint8Array }>;
      const who = (offers[i] as NonceOffer).nodeId;
      if (r.status === 'fulfilled') {
        shares[r.value.identifier] = r.value.share;
        this.note(opId, `signature share from ${who}`);
      } else {
        const reason: ReasonCode = isCustodyError(r.reason) ? r.reason.reason : 'INTERNAL';
        this.note(opId, `${who} gave no share: ${(r.reason as Error).message}`, reason);
      }
    }
    if (Object.keys(shares).length < t) {
      if (!this.stillPending(opId)) return;
      return this.abort(opId, 'REMOTE_TIMEOUT', 'a signer of the fixed set did not answer; the permit is spent, never retried with another set');
    }
    await this.o.point?.('act:shares', opId);
    const suite = suiteOf(key.scheme);
    const pub = await this.publicPackage(key.id, e);
    const pkg = { signers: { min: pub.min, max: pub.max }, commitments: pub.commitments, verifyingShares: Object.fromEntries(pub.verifyingShares.map((v) => [v.identifier, v.point])) };
    let signature: Uint8Array;
    try {
      signature = suite.frost.aggregate(pkg as never, list as never, op.act.messageDigest, shares as never);
    } catch (err) {
      return this.abort(opId, 'PAYLOAD_REJECTED', `aggregation failed: ${(err as Error).message}`);
    }
    if (!verifySignature(key.scheme, e.groupKey, op.act.messageDigest, signature)) {
      return this.abort(opId, 'SIGNATURE_INVALID', 'the aggregate signature does not verify');
    }
    const permitId = op.permitId as Uint8Array;
    const v = await this.propose({ type: 'ActExecuted', opId, permitId, signature, ...this.proposer() });
    if (v === null) return;
    if (v.ok) {
      this.note(opId, `executed at index ${v.index}: signature ${toHex(signature).slice(0, 16)}...; waiting at the publication gate`);
      await this.o.point?.('act:executed', opId);
    } else {
      this.note(opId, `execution refused: ${v.detail}`, v.reason);
    }
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
          this.published.add(op.opId);
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
