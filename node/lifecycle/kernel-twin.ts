/**
 * An in-memory twin of the secret kernel behind the KernelPort contract (kernel/wire.ts frames),
 * for tests and the in-process demo mode. It runs the same cryptography as the kernel process —
 * FROST via @noble/curves (RFC 9591: DKG with proofs of knowledge, commit, sign share,
 * self-check), round-2 packages sealed with the kernel's own HPKE transport (kernel/transport.ts)
 * — and the same refusals: no secret step without a governance decision verified by the twin
 * itself (ledger/decision.ts verifyDecision, chained from the genesis cid), every message of an
 * act signed in one request under one permit, one share per message (the identical request
 * again gets the same shares back, anything else STEP_PERMIT_REUSED), a nonce used at most once
 * and older ones burned, fenced or frozen refuses every secret step.
 *
 * It follows the ledger's key epochs (the first epoch, opened by DkgAuthorized, is 0; KeyActivated
 * names the epoch it activates; PolicyChanged and ApproversChanged open a governance epoch).
 * Share backups (kernel.ts shareBackup) go only to the custodians of the BackupPolicy it verified.
 * What it does not have: durability (everything is lost with the process) and an HSM profile.
 */
import { witnessSetRefusal } from '../../ledger/tlog/trust-policy.js';
import { checkpointOrigin } from '../../ledger/tlog/ledger-log.js';
import { CustodyError } from '../../proto/errors.js';
import { kernel as limits, tx as txLimits } from '../../proto/limits.js';
import { decode, toHex } from '../../ledger/encoding.js';
import { messagesDigest } from '../../ledger/tx/messages.js';
import { type ApproverRoster, decisionFromCbor, verifyDecision } from '../../ledger/decision.js';
import { suiteOf, type Suite, type SuiteName } from '../../kernel/suites.js';
import { generateTransportKey, openFrom, sealTo, type TransportKey } from '../../kernel/transport.js';
import type { Participant, RequestBody, ResponseBody, Round1Package, SealedPackage } from '../../kernel/wire.js';
import type { KernelPort } from './ports.js';
import type { VoterJson } from '../../kernel/authority.js';
import { checkCertificate, checkFollows, type ActSubmittedEvent, type FollowedCheckpoint } from '../../kernel/certificate.js';
import { checkpointIncarnation } from '../../ledger/tlog/ledger-log.js';
import { checkSubmittedAct, type ActCheckContext } from '../../kernel/act-check.js';
import type { KeyContext, Network } from '../../ledger/tx/types.js';
import { encodeDocument, type PolicyDocument } from '../../ledger/policy-engine/index.js';
import { rosterToJson } from '../../kernel/authority.js';
import { checkActPolicy, eraAt, ownAddressesOf, withEra, type PolicyEra } from '../../kernel/policy-check.js';
import { encryptShareBackup } from '../../kernel/backup.js';
import { backupRecipientsDigest, validateBackupRecipients, type BackupRecipient } from '../../ledger/backup-policy.js';

interface Authority { scheme: SuiteName; network?: Network; threshold: number; participants: string[]; activeEpoch: number | null; activatedIndex: number; retired: boolean }
interface Held { suite: Suite; identifier: string; share: Uint8Array; pub: { signers: { min: number; max: number }; commitments: Uint8Array[]; verifyingShares: Record<string, Uint8Array> } }
interface Ceremony { keyId: string; suite: Suite; me: Participant; participants: Participant[]; secret: unknown; round2Done: boolean }

function refuse(reason: ConstructorParameters<typeof CustodyError>[0], detail: string): never {
  throw new CustodyError(reason, detail);
}

export class KernelTwin implements KernelPort {
  private transport!: TransportKey;
  private roster: ApproverRoster;
  /**
   * The act check in place of kernel/act-check.ts checkSubmittedAct: only unit tests of the nonce
   * and permit mechanics over synthetic multi-message acts set one (test/kernel/harness.ts).
   */
  actCheck: ((submitted: ActSubmittedEvent, ctx: ActCheckContext, messages: readonly Uint8Array[]) => unknown) | null = null;
  private governanceEpoch: number;
  private lastCid: string;
  private index = 0;
  private stampMs = 0;
  private frozen = false;
  private fenced = false;
  /** The certified checkpoints this twin follows, by cluster incarnation (kernel/certificate.ts checkFollows). */
  private readonly followed = new Map<string, FollowedCheckpoint>();
  private readonly keys = new Map<string, Authority>();
  private readonly held = new Map<string, Held>();
  /** The custodians of the last BackupPolicy decision the twin verified (kernel/authority.ts backupPolicy). */
  private backupPolicy: BackupRecipient[] | null = null;
  private readonly ceremonies = new Map<string, Ceremony>();
  private readonly nonces = new Map<string, { counter: number; epoch: number; nonces: { hiding: Uint8Array; binding: Uint8Array }; hiding: Uint8Array; binding: Uint8Array }[]>();
  /** Used permits: what each signed (epoch, index, counters, lists, digest) and the shares it gave. */
  private readonly usedPermits = new Map<string, { request: string; shares: Uint8Array[] }>();
  private counter = 1;
  private tail: Promise<unknown> = Promise.resolve();

  /** The ledger roster's voters, followed as kernel/authority.ts does (genesis, + NodeAdded, - NodeRemoved). */
  private voters: VoterJson[];
  /** The governance eras (roster, epoch, act policy), followed as kernel/authority.ts does: what kernel/policy-check.ts judges an act by. */
  private eras: PolicyEra[];

  private constructor(readonly nodeId: string, private readonly clusterId: string, genesisCid: Uint8Array, roster: ApproverRoster, nodes: readonly { id: string; identityKey: Uint8Array }[], policy: PolicyDocument | null) {
    this.roster = roster;
    this.voters = nodes.map((n) => ({ id: n.id, identityKey: toHex(n.identityKey) }));
    this.governanceEpoch = 0;
    this.lastCid = toHex(genesisCid);
    this.eras = policy === null ? [] : [{ fromIndex: 0, governanceEpoch: 0, roster: rosterToJson(roster), policy: toHex(encodeDocument(policy)) }];
  }

  /**
   * `nodes`: the ClusterGenesis nodes, the first voters whose majority certifies checkpoints;
   * `policy`: the ClusterGenesis act policy (null: the twin signs no act, as a kernel pinned
   * without one).
   */
  static async open(nodeId: string, clusterId: string, genesisCid: Uint8Array, roster: ApproverRoster, nodes: readonly { id: string; identityKey: Uint8Array }[], policy: PolicyDocument | null): Promise<KernelTwin> {
    const k = new KernelTwin(nodeId, clusterId, genesisCid, roster, nodes, policy);
    k.transport = await generateTransportKey();
    return k;
  }

  /** Requests run one at a time, like the kernel's. */
  call<K extends ResponseBody['kind']>(body: RequestBody, expect: K): Promise<Extract<ResponseBody, { kind: K }>> {
    const run = this.tail.then(async () => {
      const r = await this.dispatch(body);
      if (r.kind !== expect) throw new CustodyError('PAYLOAD_REJECTED', `expected ${expect}, got ${r.kind}`);
      return r as Extract<ResponseBody, { kind: K }>;
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  private guard(): void {
    if (this.fenced) refuse('SPLIT_BRAIN_FENCED', `node ${this.nodeId} is fenced`);
    if (this.frozen) refuse('FROZEN', 'the cluster is frozen');
  }

  private async dispatch(b: RequestBody): Promise<ResponseBody> {
    switch (b.kind) {
      case 'status':
        return { kind: 'status', nodeId: this.nodeId, profile: 'twin', transportPublicKey: this.transport.publicKey, keys: [], governanceIndex: this.index, frozen: this.frozen, fenced: this.fenced, followed: [...this.followed].map(([incarnation, f]) => ({ incarnation, size: f.size })), recoveriesPending: [] };
      case 'fence':
        this.fenced = true;
        return { kind: 'governance', governanceIndex: this.index, applied: 0, frozen: this.frozen, fenced: true };
      case 'governance': {
        let applied = 0;
        for (const d of b.decisions) if (this.apply(d.decision, d.ledgerIndex, d.stampMs)) applied++;
        return { kind: 'governance', governanceIndex: this.index, applied, frozen: this.frozen, fenced: this.fenced };
      }
      case 'dkgBegin': return this.dkgBegin(b);
      case 'dkgRound2': return this.dkgRound2(b);
      case 'dkgFinish': return this.dkgFinish(b);
      case 'nonces': return this.presign(b);
      case 'sign': return this.sign(b);
      case 'publicPackage': return this.keyPackage(b.keyId, b.epoch);
      case 'shareBackup': return this.shareBackup(b);
      default:
        return refuse('PAYLOAD_REJECTED', `${b.kind} is not supported by the twin`);
    }
  }

  /** kernel/authority.ts applyDecision, with the ledger's epochs. */
  private apply(bytes: Uint8Array, ledgerIndex: number, stampMs: number): boolean {
    if (ledgerIndex <= this.index) return false;
    const d = decisionFromCbor(decode(bytes));
    const v = verifyDecision(d, this.roster, this.clusterId, this.governanceEpoch, stampMs);
    if (!v.ok) refuse(v.reason, v.detail);
    if (toHex(d.body.parentCid) !== this.lastCid) refuse('BINDING_MISMATCH', `decision at ${ledgerIndex} does not follow the last applied decision`);
    const a = d.body.action;
    const key = (id: string): Authority => this.keys.get(id) ?? refuse('UNKNOWN_KEY', `no key ${id}`);
    switch (a.kind) {
      case 'DkgAuthorized':
        this.keys.set(a.keyId, { scheme: a.scheme, network: a.network, threshold: a.threshold, participants: [...a.participants], activeEpoch: null, activatedIndex: 0, retired: false });
        break;
      case 'KeyActivated': {
        const k = key(a.keyId);
        if (k.activeEpoch !== null && a.keyEpoch <= k.activeEpoch) refuse('STALE_EPOCH', `epoch ${a.keyEpoch} is not newer than ${k.activeEpoch}`);
        k.activeEpoch = a.keyEpoch;
        k.activatedIndex = ledgerIndex;
        for (const [hk] of this.held) if (hk.startsWith(`${a.keyId}/`) && Number(hk.split('/')[1]) < a.keyEpoch) this.held.delete(hk);
        break;
      }
      case 'KeyRetired': key(a.keyId).retired = true; break;
      case 'BackupsDestroyed': if (!key(a.keyId).retired) refuse('KEY_NOT_RETIRED', `key ${a.keyId} is not retired`); break;
      case 'NodeRemoved':
        if (a.nodeId === this.nodeId) this.fenced = true;
        this.voters = this.voters.filter((n) => n.id !== a.nodeId);
        break;
      case 'NodeAdded':
        if (!this.voters.some((n) => n.id === a.node.id)) this.voters.push({ id: a.node.id, identityKey: toHex(a.node.identityKey) });
        break;
      case 'NodeRebound': if (a.nodeId === this.nodeId) this.fenced = false; break;
      case 'NodeFenced': if (a.nodeId === this.nodeId) this.fenced = true; break;
      case 'ApproversChanged': {
        this.roster = a.roster;
        this.governanceEpoch++;
        const last = this.eras[this.eras.length - 1];
        if (last !== undefined) this.eras = withEra(this.eras, { fromIndex: ledgerIndex, governanceEpoch: this.governanceEpoch, roster: rosterToJson(a.roster), policy: last.policy });
        break;
      }
      case 'PolicyChanged':
        this.governanceEpoch++;
        this.eras = withEra(this.eras, { fromIndex: ledgerIndex, governanceEpoch: this.governanceEpoch, roster: rosterToJson(this.roster), policy: toHex(encodeDocument(a.policy)) });
        break;
      case 'EmergencyFreeze': this.frozen = true; break;
      case 'Unfreeze': this.frozen = false; break;
      case 'BackupPolicy': {
        const bad = validateBackupRecipients(a.recipients);
        if (bad !== null) refuse('BACKUP_POLICY_INVALID', bad);
        this.backupPolicy = a.recipients.map((r) => ({ label: r.label, recipient: r.recipient }));
        break;
      }
      case 'WitnessesChanged': {
        const bad = witnessSetRefusal(checkpointOrigin(this.clusterId), a.witnesses, a.quorum);
        if (bad !== null) refuse('PAYLOAD_REJECTED', bad);
        break;
      }
      default: break;
    }
    this.lastCid = toHex(v.cid);
    this.index = ledgerIndex;
    this.stampMs = stampMs;
    return true;
  }

  /** The active keys this twin holds a share of, with their group keys (kernel/kernel.ts heldKeys). */
  private heldKeys(): KeyContext[] {
    const out: KeyContext[] = [];
    for (const [keyId, k] of this.keys) {
      if (k.activeEpoch === null || k.retired || k.network === undefined) continue;
      const h = this.held.get(`${keyId}/${k.activeEpoch}`);
      if (h !== undefined) out.push({ keyId, scheme: k.scheme, network: k.network, groupKey: h.pub.commitments[0]! });
    }
    return out;
  }

  private async dkgBegin(b: Extract<RequestBody, { kind: 'dkgBegin' }>): Promise<ResponseBody> {
    this.guard();
    const auth = this.keys.get(b.keyId) ?? refuse('PERMIT_MISSING', `no DkgAuthorized decision for ${b.keyId}`);
    if (auth.scheme !== b.suite || auth.threshold !== b.min || [...auth.participants].sort().join() !== b.participants.map((p) => p.nodeId).sort().join()) refuse('BINDING_MISMATCH', 'the ceremony does not match its DkgAuthorized decision');
    if (this.ceremonies.has(b.ceremonyId) || this.held.has(`${b.keyId}/0`)) refuse('REPLAY_OR_CONFLICT', `key ${b.keyId} already exists`);
    if (this.ceremonies.size >= limits.ceremoniesOpenMax) refuse('LIMIT_EXCEEDED', 'too many open ceremonies');
    const me = b.participants.find((p) => p.nodeId === this.nodeId) ?? refuse('WRONG_RECIPIENT', 'this node is not a participant');
    if (me.identifier !== b.identifier || toHex(me.transportPublicKey) !== toHex(this.transport.publicKey)) refuse('BINDING_MISMATCH', 'this node is listed with another identifier or transport key');
    const suite = suiteOf(b.suite);
    const r1 = suite.frost.DKG.round1(b.identifier, { min: b.min, max: b.participants.length });
    this.ceremonies.set(b.ceremonyId, { keyId: b.keyId, suite, me, participants: b.participants, secret: r1.secret, round2Done: false });
    return { kind: 'dkgRound1', package: { identifier: r1.public.identifier, commitment: r1.public.commitment, proofOfKnowledge: r1.public.proofOfKnowledge } };
  }

  private ceremony(id: string): Ceremony {
    return this.ceremonies.get(id) ?? refuse('UNKNOWN_SESSION', `no ceremony ${id}`);
  }

  private async dkgRound2(b: Extract<RequestBody, { kind: 'dkgRound2' }>): Promise<ResponseBody> {
    this.guard();
    const c = this.ceremony(b.ceremonyId);
    let out: Record<string, { signingShare: Uint8Array }>;
    try {
      out = c.suite.frost.DKG.round2(c.secret as never, b.round1 as never) as Record<string, { signingShare: Uint8Array }>;
    } catch (e) {
      return refuse('PAYLOAD_REJECTED', `round 2: ${(e as Error).message}`);
    }
    const packages: SealedPackage[] = [];
    for (const p of c.participants) {
      if (p.identifier === c.me.identifier) continue;
      const s = out[p.identifier] ?? refuse('INTERNAL', 'no round-2 package for a participant');
      packages.push(await sealTo(p.transportPublicKey, { purpose: 'dkg-round2', ceremonyId: b.ceremonyId, keyId: c.keyId, sender: c.me.identifier, recipient: p.identifier }, s.signingShare));
    }
    c.round2Done = true;
    return { kind: 'dkgRound2', packages };
  }

  private async dkgFinish(b: Extract<RequestBody, { kind: 'dkgFinish' }>): Promise<ResponseBody> {
    this.guard();
    const c = this.ceremony(b.ceremonyId);
    if (!c.round2Done) refuse('INVALID_TRANSITION', 'round 2 has not run');
    const round2 = [];
    for (const p of b.packages) {
      if (p.recipient !== c.me.identifier) refuse('WRONG_RECIPIENT', `package for ${p.recipient}`);
      round2.push({ identifier: p.sender, signingShare: await openFrom(this.transport.privateKey, { purpose: 'dkg-round2', ceremonyId: b.ceremonyId, keyId: c.keyId, sender: p.sender, recipient: c.me.identifier }, p) });
    }
    let key: { public: Held['pub']; secret: { identifier: string; signingShare: Uint8Array } };
    try {
      key = c.suite.frost.DKG.round3(c.secret as never, b.round1 as Round1Package[] as never, round2 as never) as never;
    } catch (e) {
      return refuse('PAYLOAD_REJECTED', `round 3: ${(e as Error).message}`);
    }
    this.ceremonies.delete(b.ceremonyId);
    this.held.set(`${c.keyId}/0`, { suite: c.suite, identifier: c.me.identifier, share: key.secret.signingShare, pub: key.public });
    return this.keyPackage(c.keyId, 0);
  }

  private keyPackage(keyId: string, epoch: number): ResponseBody {
    const h = this.held.get(`${keyId}/${epoch}`) ?? refuse('UNKNOWN_KEY', `no share of ${keyId} epoch ${epoch}`);
    return {
      kind: 'keyPackage', keyId, epoch, suite: h.suite.name, identifier: h.identifier,
      public: { min: h.pub.signers.min, max: h.pub.signers.max, commitments: h.pub.commitments, verifyingShares: Object.entries(h.pub.verifyingShares).map(([identifier, point]) => ({ identifier, point })) },
    };
  }

  /** kernel/kernel.ts shareBackup: only to the custodians the twin verified, only the active epoch it holds. */
  private async shareBackup(b: Extract<RequestBody, { kind: 'shareBackup' }>): Promise<ResponseBody> {
    this.guard();
    const policy = this.backupPolicy ?? refuse('BACKUP_POLICY_MISSING', 'no BackupPolicy decision has reached this kernel');
    const decided = policy.map((r) => r.recipient);
    if (b.recipients.length !== decided.length || b.recipients.some((r, i) => r !== decided[i])) refuse('BACKUP_RECIPIENTS_MISMATCH', 'the request names other recipients than the BackupPolicy in force');
    const k = this.keys.get(b.keyId);
    if (k === undefined || k.retired || k.activeEpoch === null) refuse('KEY_NOT_ACTIVE', `key ${b.keyId} is not active`);
    if (b.epoch !== k.activeEpoch) refuse('STALE_EPOCH', `epoch ${k.activeEpoch} of ${b.keyId} is active, not ${b.epoch}`);
    const h = this.held.get(`${b.keyId}/${b.epoch}`) ?? refuse('UNKNOWN_KEY', `no share of ${b.keyId} epoch ${b.epoch}`);
    const verifyingShare = h.pub.verifyingShares[h.identifier] ?? refuse('INTERNAL', 'no verifying share for this twin');
    const file = await encryptShareBackup(h.share, { keyId: b.keyId, epoch: b.epoch, identifier: h.identifier, verifyingShare, groupKey: h.pub.commitments[0]!, scheme: h.suite.name }, decided);
    return { kind: 'shareBackup', keyId: b.keyId, epoch: b.epoch, identifier: h.identifier, file, recipientsDigest: backupRecipientsDigest(policy) };
  }

  private async presign(b: Extract<RequestBody, { kind: 'nonces' }>): Promise<ResponseBody> {
    this.guard();
    const h = this.held.get(`${b.keyId}/${b.keyEpoch}`) ?? refuse('UNKNOWN_KEY', `no share of ${b.keyId} epoch ${b.keyEpoch}`);
    const list = this.nonces.get(b.keyId) ?? [];
    if (list.length + b.count > limits.noncesOutstandingMax) refuse('LIMIT_EXCEEDED', 'too many presigned nonces');
    const commitments = [];
    for (let i = 0; i < b.count; i++) {
      const g = h.suite.frost.commit({ identifier: h.identifier, signingShare: h.share } as never);
      const counter = this.counter++;
      list.push({ counter, epoch: b.keyEpoch, nonces: g.nonces as never, hiding: g.commitments.hiding, binding: g.commitments.binding });
      commitments.push({ counter, identifier: h.identifier, hiding: g.commitments.hiding, binding: g.commitments.binding });
    }
    this.nonces.set(b.keyId, list);
    return { kind: 'nonceCommitments', commitments };
  }

  /**
   * Every message of one act under one permit, as kernel/kernel.ts sign (which states the safety
   * argument): message i with nonce counters[i] and list lists[i], counters strictly rising, one
   * signer set, messagesDigest(messages) = permit.messageDigest; all checked before a nonce is
   * consumed; then every nonce of the key up to the last counter is burned.
   */
  private async sign(b: Extract<RequestBody, { kind: 'sign' }>): Promise<ResponseBody> {
    this.guard();
    const { permit } = b;
    const auth = this.keys.get(permit.keyId);
    if (auth === undefined || auth.activeEpoch === null || auth.retired) refuse('KEY_NOT_ACTIVE', `key ${permit.keyId} is not active`);
    const a = auth as Authority;
    if (permit.keyEpoch !== a.activeEpoch) refuse('STALE_EPOCH', `permit names epoch ${permit.keyEpoch}; epoch ${String(a.activeEpoch)} is active`);
    if (permit.ledgerIndex <= a.activatedIndex) refuse('STALE_EPOCH', 'the permit predates the activation');
    const n = b.messages.length;
    if (n < 1 || n > txLimits.messagesPerActMax) refuse('PAYLOAD_REJECTED', `a signing step carries 1 to ${txLimits.messagesPerActMax} messages, not ${n}`);
    if (b.lists.length !== n || b.counters.length !== n) refuse('PAYLOAD_REJECTED', `${n} messages need ${n} commitment lists and ${n} counters`);
    for (const m of b.messages) if (m.length < 1 || m.length > limits.messageBytesMax) refuse('PAYLOAD_REJECTED', `a message of ${m.length} bytes is outside 1..${limits.messageBytesMax}`);
    for (let i = 1; i < n; i++) {
      if (b.counters[i] === b.counters[i - 1]) refuse('NONCE_REUSED', `counter ${b.counters[i]!} is named for two messages`);
      if (b.counters[i]! < b.counters[i - 1]!) refuse('PAYLOAD_REJECTED', 'counters must rise strictly');
    }
    if (toHex(messagesDigest(b.messages)) !== toHex(permit.messageDigest)) refuse('DIGEST_MISMATCH', 'the messages are not the ones the permit names');
    const signerSet = (l: readonly { identifier: string }[]): string => JSON.stringify(l.map((c) => c.identifier).sort());
    const signers = signerSet(b.lists[0]!);
    if (b.lists.some((l) => signerSet(l) !== signers)) refuse('PAYLOAD_REJECTED', 'the commitment lists name different signer sets');
    const h = this.held.get(`${permit.keyId}/${permit.keyEpoch}`) ?? refuse('KEY_NOT_ACTIVE', 'no share of this epoch');
    // The certified entries and the permit they make (kernel/certificate.ts), as the kernel checks
    // them: before any nonce or used permit is read.
    const certifiedSign = checkCertificate(b.certificate, {
      clusterId: this.clusterId, voters: this.voters, lists: b.lists, counters: b.counters,
      identifierFor: (keyId, epoch) => this.held.get(`${keyId}/${epoch}`)?.identifier,
      active: (keyId) => {
        const k = this.keys.get(keyId);
        return k === undefined || k.activeEpoch === null || k.retired ? undefined : { epoch: k.activeEpoch, activatedIndex: k.activatedIndex };
      },
    });
    // One history, as the kernel follows it (kernel/certificate.ts checkFollows).
    const incarnation = checkpointIncarnation(certifiedSign.checkpoint.extensions);
    const followed = checkFollows(this.followed.get(incarnation) ?? null, certifiedSign.checkpoint, b.certificate?.consistency);
    const derived = certifiedSign.permit;
    if (derived.keyId !== permit.keyId || derived.keyEpoch !== permit.keyEpoch || derived.requestId !== permit.requestId || derived.ledgerIndex !== permit.ledgerIndex || toHex(derived.messageDigest) !== toHex(permit.messageDigest)) {
      refuse('BINDING_MISMATCH', `the request's permit is not the one its certified entries make (act ${derived.requestId})`);
    }
    // What the act says, as the kernel checks it (kernel/act-check.ts): the custodian's request and
    // this twin's own parse of the transaction; then the policy in force at the act's entry and the
    // approvals its rule requires (kernel/policy-check.ts).
    const actCtx: ActCheckContext = {
      clusterId: this.clusterId, roster: this.roster, stampMs: certifiedSign.submittedStampMs,
      key: { keyId: permit.keyId, scheme: a.scheme, network: a.network, groupKey: h.pub.commitments[0]!, activeEpoch: a.activeEpoch },
    };
    if (this.actCheck !== null) {
      this.actCheck(certifiedSign.submitted, actCtx, b.messages);
    } else {
      const { facts } = checkSubmittedAct(certifiedSign.submitted, actCtx, b.messages);
      checkActPolicy(certifiedSign.submitted, facts, {
        clusterId: this.clusterId, era: eraAt(this.eras, certifiedSign.submittedIndex), index: certifiedSign.submittedIndex,
        stampMs: certifiedSign.submittedStampMs, ownAddresses: ownAddressesOf(this.heldKeys()),
      });
    }
    const request = [
      permit.keyEpoch, permit.ledgerIndex, b.counters.join(','), toHex(permit.messageDigest),
      ...b.lists.map((l) => l.map((c) => `${c.identifier}:${toHex(c.hiding)}:${toHex(c.binding)}`).join(';')),
    ].join('|');
    const used = this.usedPermits.get(permit.requestId);
    if (used !== undefined) {
      if (used.request !== request) refuse('STEP_PERMIT_REUSED', `permit ${permit.requestId} was already used for another signing request`);
      return { kind: 'signatureShares', identifier: h.identifier, sigShares: used.shares.map((x) => x.slice()), counters: [...b.counters] };
    }
    const list = this.nonces.get(permit.keyId) ?? [];
    const picked = b.counters.map((c, i) => {
      const x = list.find((y) => y.counter === c) ?? refuse('NONCE_REUSED', `nonce ${c} is consumed or unknown`);
      if (x.epoch !== permit.keyEpoch) refuse('STALE_EPOCH', `nonce ${c} belongs to epoch ${x.epoch}`);
      const mine = b.lists[i]!.find((y) => y.identifier === h.identifier) ?? refuse('PAYLOAD_REJECTED', 'this kernel is not in the signing set');
      if (toHex(mine.hiding) !== toHex(x.hiding) || toHex(mine.binding) !== toHex(x.binding)) refuse('BINDING_MISMATCH', `the commitment listed for this kernel in list ${i} is not the one named by counter ${c}`);
      return x;
    });
    // Consume first (every nonce up to the last counter), and the permit with it, then compute.
    const last = b.counters[n - 1]!;
    this.nonces.set(permit.keyId, list.filter((x) => x.counter > last));
    const shares: Uint8Array[] = [];
    try {
      for (let i = 0; i < n; i++) {
        shares.push(h.suite.frost.signShare({ identifier: h.identifier, signingShare: h.share } as never, h.pub as never, picked[i]!.nonces as never, b.lists[i] as never, b.messages[i]!));
      }
    } catch (e) {
      this.usedPermits.set(permit.requestId, { request: '', shares: [] });
      return refuse('PAYLOAD_REJECTED', `signing: ${(e as Error).message}`);
    }
    this.usedPermits.set(permit.requestId, { request, shares: shares.map((x) => x.slice()) });
    this.followed.set(incarnation, followed);
    return { kind: 'signatureShares', identifier: h.identifier, sigShares: shares, counters: [...b.counters] };
  }
}
