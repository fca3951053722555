/**
 * The secret kernel's core: one request in, one response out, no sockets (kernel/server.ts owns
 * the transport). Requests run strictly one at a time, so every check-then-write below is atomic
 * with respect to other requests.
 *
 * Nonce discipline (RFC 9591 §5.1 requires each nonce pair to be used at most once; reuse across
 * two messages reveals the signing share):
 *   - every presigned nonce pair gets a counter from a per-kernel monotonic sequence; the sealed
 *     pair and its public commitments are stored before the commitments are returned;
 *   - a key's nonces are consumed in increasing counter order: using counter c burns every older
 *     unused pair of the key, and the key's consumed counter becomes c;
 *   - consumption is one atomic, fsynced store batch (and, in the hsm profile, first a raise of
 *     the token counter) that completes BEFORE the signature share is returned: a crash before
 *     it leaves the nonce unused and no share out; a crash after it burns the nonce;
 *   - one request signs every message of an act, each with its own nonce pair (counters strictly
 *     rising), and consumes them all in one batch up to the last counter (kernel.sign says why
 *     this reveals no more than separate signings);
 *   - the same batch records the permit as used, with the messages digest, commitment lists and
 *     counters it signed and the shares themselves; the identical request again is answered with
 *     those stored shares (a daemon or a new coordinator resuming after a crash), anything else
 *     under the permit is refused STEP_PERMIT_REUSED: one permit, one set of shares, however
 *     often it is asked;
 *   - a restored older store is caught by its consumed counter: in the software profile the
 *     daemon passes the highest counter the ledger records as consumed and a store behind it is
 *     refused (STORE_ROLLED_BACK); in the hsm profile the token counter is authoritative, so
 *     the old store's stale nonces are refused as consumed (NONCE_REUSED) — safe either way.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import type { FrostPublic, FrostSecret, NonceCommitments, Nonces } from '@noble/curves/abstract/frost.js';
import { CustodyError } from '../proto/errors.js';
import { kernel as limits, tx as txLimits } from '../proto/limits.js';
import { messagesDigest } from '../ledger/tx/messages.js';
import { applyDecision, genesisState, withPinnedEras, type GenesisPin, type GovernanceState, type Effect, type RepairGrant } from './authority.js';
import { checkCertificate, checkFollows, type ActSubmittedEvent, type FollowedCheckpoint } from './certificate.js';
import { checkpointIncarnation } from '../ledger/tlog/ledger-log.js';
import { checkSubmittedAct, type ActCheckContext } from './act-check.js';
import { checkActPolicy, eraAt, ownAddressesOf } from './policy-check.js';
import type { KeyContext } from '../ledger/tx/types.js';
import * as redeal from './redeal.js';
import { encryptShareBackup, type ShareBackupMeta } from './backup.js';
import { checkRecoveryPackage, recoveryContext } from './recovery.js';
import * as repair from './repair.js';
import { frostIdentifier } from '../ledger/signing-set.js';
import { backupRecipientsDigest } from '../ledger/backup-policy.js';
import { counterKey, json, u64, type BatchOp, type KernelStore } from './store.js';
import { isSuiteName, suiteOf, type PublicKeyPackage, type Rng, type Suite, type SuiteName } from './suites.js';
import { generateTransportKey, openFrom, sealTo, type TransportKey } from './transport.js';
import { checkVault, type Vault } from './vault.js';
import type {
  Participant, PublicPackage, RequestBody, ResponseBody, Round1Package, SealedPackage, SigningCommitment, KeyInfo,
} from './wire.js';

type Body<K extends RequestBody['kind']> = Extract<RequestBody, { kind: K }>;

/** Named points between the steps of signing; a test-only hook may kill the process there. */
export type CrashPoint = 'sign:checked' | 'sign:consumed' | 'sign:replied' | 'nonces:generated' | 'nonces:stored';

export interface KernelOptions {
  nodeId: string;
  store: KernelStore;
  vault: Vault;
  genesis: GenesisPin;
  /** Called at each CrashPoint (the crash tests kill the process from here). */
  crashPoint?: (p: CrashPoint) => void;
  /**
   * The check of what the act itself says (kernel/act-check.ts): the custodian's signed request in
   * the certified ActSubmitted, and the messages the kernel's own parse of its transaction yields.
   * Called in `sign` once the certificate holds and before any nonce is touched; throws its
   * refusal. Production kernels (kernel/main.ts) and the kernel twin always use
   * `checkSubmittedAct` followed by the policy check (kernel/policy-check.ts); only unit tests of
   * the nonce and permit mechanics over synthetic multi-message acts put another check in the
   * place of both (a synthetic act has no transaction for a policy to read).
   */
  checkSubmittedAct?: (submitted: ActSubmittedEvent, ctx: ActCheckContext, messages: readonly Uint8Array[]) => unknown;
}

interface PublicJson { min: number; max: number; commitments: string[]; verifyingShares: Record<string, string> }
interface EpochRecord {
  identifier: string;
  public: PublicJson;
  /**
   * Verifying shares (hex) of identifiers a RepairAuthorized enrolled in the epoch after its
   * ceremony (kernel/repair.ts), kept beside the ceremony's package: that one stays the package the
   * ledger's committee holds (refresh and reshare check it), this one extends it for signing and
   * repair (withEnrolled).
   */
  enrolled?: Record<string, string>;
}
interface KeyRecord { keyId: string; suite: SuiteName; epochs: Record<string, EpochRecord> }
interface NonceRecord { epoch: number; hiding: string; binding: string; sealed: string }
interface FenceRecord { fenced: boolean; passport: string; reason: string }

interface DkgCeremony {
  kind: 'dkg';
  keyId: string;
  suite: Suite;
  min: number;
  me: Participant;
  participants: Participant[];
  secret: ReturnType<Suite['frost']['DKG']['round1']>['secret'];
  round2Done: boolean;
}
interface RedealCeremony {
  kind: 'redeal';
  keyId: string;
  suite: Suite;
  fromEpoch: number;
  toEpoch: number;
  me: Participant;
  plan: redeal.RedealPlan;
  current: PublicKeyPackage;
}

/**
 * Store keys. Key ids and request ids are hex-encoded, so no id's range is a prefix of another's
 * (key "a" must never see the nonces of key "a/b"); the sealed blobs' AAD is their store key.
 */
const hexId = (s: string): string => Buffer.from(s, 'utf8').toString('hex');
const K = {
  key: (id: string): string => `key/${hexId(id)}`,
  share: (id: string, epoch: number): string => `share/${hexId(id)}/${epoch}`,
  nonces: (id: string): string => `nonce/${hexId(id)}/`,
  nonce: (id: string, counter: number): string => `nonce/${hexId(id)}/${counterKey(counter)}`,
  nonceAad: (id: string, epoch: number, counter: number): string => `nonce/${hexId(id)}/${epoch}/${counter}`,
  consumed: (id: string): string => `consumed/${hexId(id)}`,
  permits: (id: string): string => `permit/${hexId(id)}/`,
  permit: (id: string, requestId: string): string => `permit/${hexId(id)}/${hexId(requestId)}`,
  /** The certified checkpoints this kernel follows, one per cluster incarnation (kernel/certificate.ts checkFollows). */
  followedAll: 'tlog/followed/',
  followed: (incarnation: string): string => `tlog/followed/${incarnation === '' ? '-' : incarnation}`,
  /** The delta a repair helper kept from its step 1, sealed (Kernel.repairDeal), until its step 2 spends it. */
  repairKept: (id: string): string => `repair/${hexId(id)}`,
};

/** A kept repair delta as stored (K.repairKept): the ceremony, this helper's identifier, the delta sealed under the profile. */
interface KeptRepairDelta { ceremonyId: string; helper: string; sealed: string }

/**
 * A used permit (store key `permit/<keyId>/<requestId>`), written in the batch that consumes the
 * nonces: what the permit signed (messages digest, every commitment list, every counter) and the
 * shares it produced, so the identical request can be answered again (kernel.replaySign).
 * Records of single-message kernels carry `counter`, `list` and `share` instead; they are kept
 * until their epoch is superseded and answer no request of this form.
 */
interface PermitUse {
  keyId: string;
  keyEpoch: number;
  /** messagesDigest of the messages, as the permit names it. */
  digest: string;
  ledgerIndex: number;
  counters?: number[];
  /** signingListsDigest of the commitment lists. */
  lists?: string;
  /** One signature share per message, hex, in request order. */
  shares?: string[];
}

/** SHA-256 over the commitment list as the request gives it (identifier, hiding, binding each). */
export function signingListDigest(list: readonly SigningCommitment[]): Uint8Array {
  const h = createHash('sha256');
  for (const c of list) {
    const id = Buffer.from(c.identifier, 'utf8');
    h.update(u64(id.length)).update(id).update(u64(c.hiding.length)).update(c.hiding).update(u64(c.binding.length)).update(c.binding);
  }
  return h.digest();
}

/** SHA-256 over every message's commitment list, in order (count first, then each signingListDigest). */
export function signingListsDigest(lists: readonly (readonly SigningCommitment[])[]): Uint8Array {
  const h = createHash('sha256').update(u64(lists.length));
  for (const l of lists) h.update(signingListDigest(l));
  return h.digest();
}

/** A list's signer set in a canonical form (sorted identifiers), for comparing lists. */
function signerSet(list: readonly SigningCommitment[]): string {
  return JSON.stringify(list.map((c) => c.identifier).sort());
}

/** Most used-permit records examined when an epoch is superseded. */
const PERMITS_SCAN_MAX = 1_000_000;


function toPublicJson(p: PublicKeyPackage): PublicJson {
  return {
    min: p.signers.min, max: p.signers.max, commitments: p.commitments.map(bytesToHex),
    verifyingShares: Object.fromEntries(Object.entries(p.verifyingShares).map(([k, v]) => [k, bytesToHex(v)])),
  };
}
function fromPublicJson(p: PublicJson): PublicKeyPackage {
  return {
    signers: { min: p.min, max: p.max }, commitments: p.commitments.map((c) => hexToBytes(c)),
    verifyingShares: Object.fromEntries(Object.entries(p.verifyingShares).map(([k, v]) => [k, hexToBytes(v)])),
  };
}
function toWirePublic(p: PublicKeyPackage): PublicPackage {
  return {
    min: p.signers.min, max: p.signers.max, commitments: p.commitments,
    verifyingShares: Object.entries(p.verifyingShares).map(([identifier, point]) => ({ identifier, point })),
  };
}
function fromWirePublic(p: PublicPackage): PublicKeyPackage {
  const verifyingShares: Record<string, Uint8Array> = {};
  for (const v of p.verifyingShares) {
    if (verifyingShares[v.identifier] !== undefined) throw new CustodyError('PAYLOAD_REJECTED', `verifying share ${v.identifier} listed twice`);
    verifyingShares[v.identifier] = v.point;
  }
  if (p.verifyingShares.length !== p.max) throw new CustodyError('PAYLOAD_REJECTED', 'public package: verifying shares do not match max');
  if (p.commitments.length !== p.min) throw new CustodyError('PAYLOAD_REJECTED', 'public package: commitments do not match min');
  return { signers: { min: p.min, max: p.max }, commitments: p.commitments, verifyingShares };
}
/** The epoch's package with the enrolled identifiers' verifying shares added (what signing and repair use). */
function withEnrolled(e: EpochRecord): PublicKeyPackage {
  const pub = fromPublicJson(e.public);
  if (e.enrolled === undefined) return pub;
  const verifyingShares = { ...pub.verifyingShares };
  for (const [id, y] of Object.entries(e.enrolled)) verifyingShares[id] ??= hexToBytes(y);
  return { signers: { min: pub.signers.min, max: Math.max(pub.signers.max, Object.keys(verifyingShares).length) }, commitments: pub.commitments, verifyingShares };
}
/** Canonical form for comparing packages (verifying shares in identifier order). */
function canonicalPublic(p: PublicKeyPackage): string {
  const j = toPublicJson(p);
  return JSON.stringify({ ...j, verifyingShares: Object.entries(j.verifyingShares).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) });
}
const samePublic = (a: PublicKeyPackage, b: PublicKeyPackage): boolean => canonicalPublic(a) === canonicalPublic(b);

const asFrostPublic = (p: PublicKeyPackage): FrostPublic => p as unknown as FrostPublic;

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export class Kernel {
  private gov!: GovernanceState;
  private fence: FenceRecord = { fenced: false, passport: '', reason: '' };
  private transport!: TransportKey;
  private readonly ceremonies = new Map<string, DkgCeremony | RedealCeremony>();
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(private readonly o: KernelOptions) {}

  static async open(o: KernelOptions): Promise<Kernel> {
    const k = new Kernel(o);
    await checkVault(o.vault, o.store);
    const gov = await o.store.getJson<GovernanceState>('meta/governance');
    const pinned = genesisState(o.genesis);
    if (gov !== undefined && (gov.clusterId !== pinned.clusterId)) throw new CustodyError('CONFIG_INVALID', 'the store belongs to another cluster');
    k.gov = gov === undefined ? pinned : withPinnedEras(gov, o.genesis);
    k.fence = (await o.store.getJson<FenceRecord>('meta/fence')) ?? k.fence;
    const sealedTransport = await o.store.get('meta/transport');
    if (sealedTransport === undefined) {
      const t = await generateTransportKey();
      await o.store.write([
        { type: 'put', key: 'meta/transport', value: o.vault.seal(t.privateKey, 'meta/transport') },
        { type: 'put', key: 'meta/transport-public', value: t.publicKey },
      ]);
      k.transport = t;
    } else {
      k.transport = {
        privateKey: o.vault.open(sealedTransport, 'meta/transport'),
        publicKey: (await o.store.get('meta/transport-public'))!,
      };
    }
    return k;
  }

  get transportPublicKey(): Uint8Array {
    return this.transport.publicKey;
  }

  /** Runs requests strictly one after another. */
  handle(body: RequestBody): Promise<ResponseBody> {
    const run = this.tail.then(() => this.dispatch(body));
    this.tail = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.tail;
    this.transport.privateKey.fill(0);
    this.ceremonies.clear();
  }

  private crash(p: CrashPoint): void {
    this.o.crashPoint?.(p);
  }

  private async dispatch(b: RequestBody): Promise<ResponseBody> {
    if (this.closed) throw new CustodyError('INTERNAL', 'the kernel is shutting down');
    switch (b.kind) {
      case 'status': return this.status();
      case 'governance': return this.governance(b);
      case 'fence': return this.fenceSelf(b);
      case 'dkgBegin': return this.dkgBegin(b);
      case 'dkgRound2': return this.dkgRound2(b);
      case 'dkgFinish': return this.dkgFinish(b);
      case 'redealBegin': return this.redealBegin(b);
      case 'redealFinish': return this.redealFinish(b);
      case 'nonces': return this.nonces(b);
      case 'sign': return this.sign(b);
      case 'reconcile': return this.reconcile(b);
      case 'publicPackage': return this.publicPackage(b);
      case 'shareBackup': return this.shareBackup(b);
      case 'importShare': return this.importShare(b);
      case 'repairDeal': return this.repairDeal(b);
      case 'repairSum': return this.repairSum(b);
      case 'repairFinish': return this.repairFinish(b);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Status and governance
  // -------------------------------------------------------------------------------------------

  private isFenced(): boolean {
    return this.gov.removed || this.fence.fenced;
  }

  /** Every secret step passes here first. */
  private guard(): void {
    if (this.isFenced()) throw new CustodyError('SPLIT_BRAIN_FENCED', this.gov.removed ? 'this node was removed from the cluster' : `this node is fenced (${this.fence.reason || 'no reason given'})`);
    if (this.gov.frozen) throw new CustodyError('FROZEN');
  }

  private async status(): Promise<ResponseBody> {
    const keys: KeyInfo[] = [];
    for (const { value } of await this.o.store.list('key/', limits.participantsMax * 64)) {
      const rec = JSON.parse(Buffer.from(value).toString('utf8')) as KeyRecord;
      const auth = this.gov.keys[rec.keyId];
      const epochs = Object.keys(rec.epochs).map(Number).sort((a, b) => b - a);
      const epoch = auth && auth.activeEpoch !== null && rec.epochs[auth.activeEpoch] ? auth.activeEpoch : epochs[0] ?? 0;
      const e = rec.epochs[epoch];
      if (e === undefined) continue;
      const available = (await this.o.store.list(K.nonces(rec.keyId), limits.noncesOutstandingMax + 1)).length;
      keys.push({
        keyId: rec.keyId, epoch, suite: rec.suite, identifier: e.identifier, groupPublicKey: hexToBytes(e.public.commitments[0]!),
        active: auth !== undefined && !auth.retired && auth.activeEpoch === epoch, commitmentsAvailable: available,
        consumedCounter: await this.consumedCounter(rec.keyId),
      });
    }
    return {
      kind: 'status', nodeId: this.o.nodeId, profile: this.o.vault.profile, transportPublicKey: this.transport.publicKey, keys,
      governanceIndex: this.gov.index, frozen: this.gov.frozen, fenced: this.isFenced(),
      followed: (await this.o.store.list(K.followedAll, limits.followedIncarnationsMax)).map(({ key, value }) => {
        const id = key.slice(K.followedAll.length);
        return { incarnation: id === '-' ? '' : id, size: (JSON.parse(Buffer.from(value).toString('utf8')) as FollowedCheckpoint).size };
      }),
      recoveriesPending: Object.entries(this.gov.recoveries ?? {}).map(([keyId, g]) => ({ keyId, epoch: g.epoch, identifier: g.identifier, ledgerIndex: g.index })),
    };
  }

  /**
   * The public key package held for a key epoch, from the store (public data: commitments and
   * verifying shares). Not guarded by fencing or a freeze: it authorizes nothing, and the daemon
   * checks it against the group key its ledger committed before using it.
   */
  private async publicPackage(b: Body<'publicPackage'>): Promise<ResponseBody> {
    const rec = await this.keyRecord(b.keyId);
    const e = rec?.epochs[b.epoch];
    if (rec === undefined || e === undefined) throw new CustodyError('UNKNOWN_KEY', `this kernel holds no share of ${b.keyId} epoch ${b.epoch}`);
    return { kind: 'keyPackage', keyId: rec.keyId, epoch: b.epoch, suite: rec.suite, identifier: e.identifier, public: toWirePublic(fromPublicJson(e.public)) };
  }

  private async governance(b: Body<'governance'>): Promise<ResponseBody> {
    let state = this.gov;
    let applied = 0;
    const effects: Effect[] = [];
    let refusal: unknown;
    for (const d of b.decisions) {
      try {
        const r = applyDecision(state, d, this.o.nodeId);
        state = r.state;
        if (r.applied) applied++;
        effects.push(...r.effects);
      } catch (e) {
        // Decisions before the refused one stay applied (each was valid in order).
        refusal = e;
        break;
      }
    }
    const ops: BatchOp[] = [{ type: 'put', key: 'meta/governance', value: json(state) }];
    for (const e of effects) ops.push(...(await this.effectOps(e)));
    await this.o.store.write(ops);
    this.gov = state;
    if (refusal !== undefined) throw refusal;
    return { kind: 'governance', governanceIndex: state.index, applied, frozen: state.frozen, fenced: this.isFenced() };
  }

  /** Store changes a governance effect implies: superseded epochs and their nonces are erased. */
  private async effectOps(e: Effect): Promise<BatchOp[]> {
    const ops: BatchOp[] = [];
    if (e.kind === 'rebound') {
      if (this.fence.fenced && this.fence.passport !== e.passport) {
        this.fence = { fenced: false, passport: e.passport, reason: '' };
        ops.push({ type: 'put', key: 'meta/fence', value: json(this.fence) });
      }
      return ops;
    }
    if (e.kind === 'fenced') {
      this.fence = { fenced: true, passport: e.passport, reason: `fenced by decision: ${e.reason}`.slice(0, 200) };
      ops.push({ type: 'put', key: 'meta/fence', value: json(this.fence) });
      return ops;
    }
    // A revocation lives in the governance state persisted with the update; no store change beside it.
    if (e.kind === 'certificateRevoked') return ops;
    if (e.kind === 'repairEnrolled') return this.enrolOps(e);
    const rec = await this.o.store.getJson<KeyRecord>(K.key(e.keyId));
    if (rec === undefined) return ops;
    const keep = e.kind === 'epochActivated' ? e.epoch : Infinity;
    for (const epoch of Object.keys(rec.epochs).map(Number)) {
      if (epoch < keep) {
        ops.push({ type: 'del', key: K.share(e.keyId, epoch) });
        delete rec.epochs[epoch];
      }
    }
    // A repair runs on the active epoch only: a part kept before this activation (or retirement)
    // belongs to a superseded epoch and can never be summed.
    if ((await this.o.store.get(K.repairKept(e.keyId))) !== undefined) ops.push({ type: 'del', key: K.repairKept(e.keyId) });
    for (const { key, value } of await this.o.store.list(K.nonces(e.keyId), limits.noncesOutstandingMax + 1)) {
      const n = JSON.parse(Buffer.from(value).toString('utf8')) as NonceRecord;
      if (n.epoch < keep) ops.push({ type: 'del', key });
    }
    // Permits name their epoch; once it is superseded they can never pass again (STALE_EPOCH),
    // so their records are dropped with it. This keeps the permit set bounded per epoch.
    for (const { key, value } of await this.o.store.list(K.permits(e.keyId), PERMITS_SCAN_MAX)) {
      const used = JSON.parse(Buffer.from(value).toString('utf8')) as { keyEpoch: number };
      if (used.keyEpoch < keep) ops.push({ type: 'del', key });
    }
    ops.push({ type: 'put', key: K.key(e.keyId), value: json(rec) });
    return ops;
  }

  /**
   * The daemon tells its own kernel to stop (its ledger shows this node's passport fenced by a
   * majority of voters' FencingRecords). The kernel takes it without proof, and that is safe: it
   * only makes this kernel refuse every secret step, which its daemon can already bring about by
   * never forwarding a request; it cannot stop any other node's kernel, and it never lets this one
   * sign anything. Fencing by an approver-signed NodeFenced decision reaches the kernel through
   * the governance chain instead (authority.ts, effect 'fenced'), verified here like every decision.
   */
  private async fenceSelf(b: Body<'fence'>): Promise<ResponseBody> {
    this.fence = { fenced: true, passport: b.passport, reason: b.reason };
    await this.o.store.write([{ type: 'put', key: 'meta/fence', value: json(this.fence) }]);
    return { kind: 'governance', governanceIndex: this.gov.index, applied: 0, frozen: this.gov.frozen, fenced: true };
  }

  // -------------------------------------------------------------------------------------------
  // DKG (RFC 9591 Appendix C secret sharing with proofs of knowledge; noble's split rounds)
  // -------------------------------------------------------------------------------------------

  private openCeremony(id: string, c: DkgCeremony | RedealCeremony): void {
    if (this.ceremonies.has(id)) throw new CustodyError('REPLAY_OR_CONFLICT', `ceremony ${id} is already open`);
    if (this.ceremonies.size >= limits.ceremoniesOpenMax) throw new CustodyError('LIMIT_EXCEEDED', 'too many open ceremonies');
    this.ceremonies.set(id, c);
  }

  private ceremony<K extends 'dkg' | 'redeal'>(id: string, kind: K): Extract<DkgCeremony | RedealCeremony, { kind: K }> {
    const c = this.ceremonies.get(id);
    if (c === undefined || c.kind !== kind) throw new CustodyError('UNKNOWN_SESSION', `no open ${kind} ceremony ${id}`);
    return c as Extract<DkgCeremony | RedealCeremony, { kind: K }>;
  }

  /** Validates a committee and finds this kernel in it (by node id, transport key and identifier). */
  private committee(suite: Suite, ps: Participant[], identifier: string, what: string): { me: Participant | undefined } {
    redeal.validateParticipants(suite, ps.map((p) => p.identifier), what);
    if (new Set(ps.map((p) => p.nodeId)).size !== ps.length) throw new CustodyError('PAYLOAD_REJECTED', `${what}: a node is listed twice`);
    const mine = ps.filter((p) => p.nodeId === this.o.nodeId);
    const me = mine[0];
    if (me === undefined) {
      if (identifier !== '') throw new CustodyError('WRONG_RECIPIENT', `${what}: this node is not listed`);
      return { me: undefined };
    }
    if (me.identifier !== identifier) throw new CustodyError('BINDING_MISMATCH', `${what}: this node's identifier is ${me.identifier}, not ${identifier}`);
    if (!bytesEqual(me.transportPublicKey, this.transport.publicKey)) throw new CustodyError('BINDING_MISMATCH', `${what}: the transport key listed for this node is not this kernel's`);
    return { me };
  }

  private async dkgBegin(b: Body<'dkgBegin'>): Promise<ResponseBody> {
    this.guard();
    if (!isSuiteName(b.suite)) throw new CustodyError('PAYLOAD_REJECTED', `unknown suite ${b.suite}`);
    const suite = suiteOf(b.suite);
    const auth = this.gov.keys[b.keyId];
    const pending = auth?.pending;
    if (auth === undefined || pending === null || pending === undefined || pending.epoch !== 0 || auth.activeEpoch !== null) {
      throw new CustodyError('PERMIT_MISSING', `no DkgAuthorized decision opens a key generation for ${b.keyId}`);
    }
    const nodes = b.participants.map((p) => p.nodeId).sort();
    if (auth.scheme !== b.suite || pending.threshold !== b.min || JSON.stringify(nodes) !== JSON.stringify([...pending.participants].sort())) {
      throw new CustodyError('BINDING_MISMATCH', `the ceremony does not match the DkgAuthorized decision for key ${b.keyId}`);
    }
    if ((await this.o.store.get(K.key(b.keyId))) !== undefined) throw new CustodyError('REPLAY_OR_CONFLICT', `key ${b.keyId} already exists`);
    redeal.validateThreshold(b.min, b.participants.length, 'dkg');
    const { me } = this.committee(suite, b.participants, b.identifier, 'dkg participants');
    if (me === undefined) throw new CustodyError('WRONG_RECIPIENT', 'this node is not a participant');
    for (const c of this.ceremonies.values()) {
      if (c.keyId === b.keyId) throw new CustodyError('REPLAY_OR_CONFLICT', `a ceremony for key ${b.keyId} is already open`);
    }
    const r1 = suite.frost.DKG.round1(b.identifier, { min: b.min, max: b.participants.length });
    this.openCeremony(b.ceremonyId, { kind: 'dkg', keyId: b.keyId, suite, min: b.min, me, participants: b.participants, secret: r1.secret, round2Done: false });
    return { kind: 'dkgRound1', package: { identifier: r1.public.identifier, commitment: r1.public.commitment, proofOfKnowledge: r1.public.proofOfKnowledge } };
  }

  private others(c: DkgCeremony, round1: Round1Package[]): Round1Package[] {
    const expected = c.participants.filter((p) => p.identifier !== c.me.identifier).map((p) => p.identifier).sort();
    const got = round1.map((r) => r.identifier).sort();
    if (JSON.stringify(expected) !== JSON.stringify(got)) throw new CustodyError('SESSION_MISMATCH', 'round-1 packages do not come from exactly the other participants');
    return round1;
  }

  private async dkgRound2(b: Body<'dkgRound2'>): Promise<ResponseBody> {
    this.guard();
    const c = this.ceremony(b.ceremonyId, 'dkg');
    const others = this.others(c, b.round1);
    let out: Record<string, { signingShare: Uint8Array }>;
    try {
      out = c.suite.frost.DKG.round2(c.secret, others as never) as Record<string, { signingShare: Uint8Array }>;
    } catch (e) {
      throw new CustodyError('PAYLOAD_REJECTED', `round 2: ${(e as Error).message}`);
    }
    const packages: SealedPackage[] = [];
    for (const p of c.participants) {
      if (p.identifier === c.me.identifier) continue;
      const share = out[p.identifier];
      if (share === undefined) throw new CustodyError('INTERNAL', 'round 2 produced no package for a participant');
      packages.push(await sealTo(p.transportPublicKey, { purpose: 'dkg-round2', ceremonyId: b.ceremonyId, keyId: c.keyId, sender: c.me.identifier, recipient: p.identifier }, share.signingShare));
    }
    c.round2Done = true;
    return { kind: 'dkgRound2', packages };
  }

  private async dkgFinish(b: Body<'dkgFinish'>): Promise<ResponseBody> {
    this.guard();
    const c = this.ceremony(b.ceremonyId, 'dkg');
    if (!c.round2Done) throw new CustodyError('INVALID_TRANSITION', 'round 2 has not run');
    const others = this.others(c, b.round1);
    const round2: { identifier: string; signingShare: Uint8Array }[] = [];
    const senders = new Set<string>();
    for (const p of b.packages) {
      if (p.recipient !== c.me.identifier) throw new CustodyError('WRONG_RECIPIENT', `package for ${p.recipient}`);
      if (senders.has(p.sender)) throw new CustodyError('PAYLOAD_REJECTED', `two packages from ${p.sender}`);
      senders.add(p.sender);
      if (!others.some((r) => r.identifier === p.sender)) throw new CustodyError('SESSION_MISMATCH', `package from ${p.sender}, who is not a participant`);
      const share = await openFrom(this.transport.privateKey, { purpose: 'dkg-round2', ceremonyId: b.ceremonyId, keyId: c.keyId, sender: p.sender, recipient: c.me.identifier }, p);
      round2.push({ identifier: p.sender, signingShare: share });
    }
    let key: { public: PublicKeyPackage; secret: { identifier: string; signingShare: Uint8Array } };
    try {
      key = c.suite.frost.DKG.round3(c.secret, others as never, round2 as never) as never;
      c.suite.frost.validateSecret(key.secret as FrostSecret, asFrostPublic(key.public));
    } catch (e) {
      throw new CustodyError('PAYLOAD_REJECTED', `round 3: ${(e as Error).message}`);
    } finally {
      for (const r of round2) r.signingShare.fill(0);
    }
    this.ceremonies.delete(b.ceremonyId);
    const rec: KeyRecord = { keyId: c.keyId, suite: c.suite.name, epochs: { 0: { identifier: c.me.identifier, public: toPublicJson(key.public) } } };
    await this.o.store.write([
      { type: 'put', key: K.share(c.keyId, 0), value: this.o.vault.seal(key.secret.signingShare, K.share(c.keyId, 0)) },
      { type: 'put', key: K.key(c.keyId), value: json(rec) },
    ]);
    key.secret.signingShare.fill(0);
    return { kind: 'keyPackage', keyId: c.keyId, epoch: 0, suite: c.suite.name, identifier: c.me.identifier, public: toWirePublic(key.public) };
  }

  // -------------------------------------------------------------------------------------------
  // Refresh / reshare (kernel/redeal.ts)
  // -------------------------------------------------------------------------------------------

  /** The active keys this kernel holds a share of, with their group keys: what it knows as the cluster's own addresses. */
  private async heldKeys(): Promise<KeyContext[]> {
    const out: KeyContext[] = [];
    for (const [keyId, a] of Object.entries(this.gov.keys)) {
      if (a.activeEpoch === null || a.retired || a.network === undefined) continue;
      const held = (await this.keyRecord(keyId))?.epochs[a.activeEpoch];
      if (held !== undefined) out.push({ keyId, scheme: a.scheme, network: a.network, groupKey: hexToBytes(held.public.commitments[0]!) });
    }
    return out;
  }

  private async keyRecord(keyId: string): Promise<KeyRecord | undefined> {
    return this.o.store.getJson<KeyRecord>(K.key(keyId));
  }

  private async openShare(keyId: string, epoch: number): Promise<Uint8Array> {
    const sealed = await this.o.store.get(K.share(keyId, epoch));
    if (sealed === undefined) throw new CustodyError('KEY_NOT_ACTIVE', `this kernel holds no share of ${keyId} epoch ${epoch}`);
    return this.o.vault.open(sealed, K.share(keyId, epoch));
  }

  private async redealBegin(b: Body<'redealBegin'>): Promise<ResponseBody> {
    this.guard();
    if (!isSuiteName(b.suite)) throw new CustodyError('PAYLOAD_REJECTED', `unknown suite ${b.suite}`);
    const suite = suiteOf(b.suite);
    const auth = this.gov.keys[b.keyId];
    if (auth === undefined || auth.retired || auth.activeEpoch === null) throw new CustodyError('KEY_NOT_ACTIVE', `key ${b.keyId} is not active`);
    if (auth.scheme !== b.suite) throw new CustodyError('BINDING_MISMATCH', `key ${b.keyId} is ${auth.scheme}`);
    if (b.fromEpoch !== auth.activeEpoch) throw new CustodyError('STALE_EPOCH', `key ${b.keyId} is at epoch ${auth.activeEpoch}, not ${b.fromEpoch}`);
    const pending = auth.pending;
    if (pending === null || pending.epoch !== b.toEpoch || pending.epoch === 0) {
      throw new CustodyError('PERMIT_MISSING', `no KeyRefreshed or KeyReshared decision authorizes epoch ${b.toEpoch} of ${b.keyId}`);
    }
    const nodes = b.committee.map((p) => p.nodeId).sort();
    if (pending.threshold !== b.min || JSON.stringify(nodes) !== JSON.stringify([...pending.participants].sort())) {
      throw new CustodyError('BINDING_MISMATCH', `the ceremony does not match the decision authorizing epoch ${b.toEpoch} of ${b.keyId}`);
    }
    const current = fromWirePublic(b.current);
    const plan: redeal.RedealPlan = { dealers: b.dealers, committee: b.committee.map((p) => p.identifier), min: b.min };
    const { me } = this.committee(suite, b.committee, b.identifier, 'new committee');
    const rec = await this.keyRecord(b.keyId);
    const held = rec?.epochs[b.fromEpoch];
    if (held !== undefined && !samePublic(fromPublicJson(held.public), current)) {
      throw new CustodyError('BINDING_MISMATCH', `the package presented is not key ${b.keyId} epoch ${b.fromEpoch} as this kernel holds it`);
    }
    let reply: ResponseBody = { kind: 'redealDealt', dealer: '', commitments: [], packages: [] };
    if (held !== undefined && b.dealers.includes(held.identifier)) {
      const share = await this.openShare(b.keyId, b.fromEpoch);
      let dealt: redeal.RedealDeal;
      try {
        dealt = redeal.deal(suite, current, held.identifier, share, plan);
      } finally {
        share.fill(0);
      }
      const packages: SealedPackage[] = [];
      for (const p of b.committee) {
        const s = dealt.shares.get(p.identifier)!;
        packages.push(await sealTo(p.transportPublicKey, { purpose: 'redeal', ceremonyId: b.ceremonyId, keyId: b.keyId, sender: held.identifier, recipient: p.identifier }, s));
        s.fill(0);
      }
      reply = { kind: 'redealDealt', dealer: held.identifier, commitments: dealt.commitments, packages };
    } else {
      // Not a dealer: still validate the plan now, so a bad plan fails before anyone deals.
      redeal.validateParticipants(suite, plan.dealers, 'dealers');
      redeal.validateThreshold(plan.min, plan.committee.length, 'new committee');
    }
    if (me !== undefined) {
      this.openCeremony(b.ceremonyId, { kind: 'redeal', keyId: b.keyId, suite, fromEpoch: b.fromEpoch, toEpoch: b.toEpoch, me, plan, current });
    }
    return reply;
  }

  private async redealFinish(b: Body<'redealFinish'>): Promise<ResponseBody> {
    this.guard();
    const c = this.ceremony(b.ceremonyId, 'redeal');
    const deals: redeal.ReceivedDeal[] = [];
    try {
      for (const d of b.deals) {
        if (d.package.sender !== d.dealer) throw new CustodyError('SESSION_MISMATCH', `deal from ${d.dealer} carries a package from ${d.package.sender}`);
        const share = await openFrom(this.transport.privateKey, { purpose: 'redeal', ceremonyId: b.ceremonyId, keyId: c.keyId, sender: d.dealer, recipient: c.me.identifier }, d.package);
        deals.push({ dealer: d.dealer, commitments: d.commitments, share });
      }
      const out = redeal.combine(c.suite, c.current, c.me.identifier, c.plan, deals);
      this.ceremonies.delete(b.ceremonyId);
      const rec: KeyRecord = (await this.keyRecord(c.keyId)) ?? { keyId: c.keyId, suite: c.suite.name, epochs: {} };
      rec.epochs[c.toEpoch] = { identifier: c.me.identifier, public: toPublicJson(out.public) };
      await this.o.store.write([
        { type: 'put', key: K.share(c.keyId, c.toEpoch), value: this.o.vault.seal(out.share, K.share(c.keyId, c.toEpoch)) },
        { type: 'put', key: K.key(c.keyId), value: json(rec) },
      ]);
      out.share.fill(0);
      return { kind: 'keyPackage', keyId: c.keyId, epoch: c.toEpoch, suite: c.suite.name, identifier: c.me.identifier, public: toWirePublic(out.public) };
    } finally {
      for (const d of deals) d.share.fill(0);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Presigned nonces (RFC 9591 §5.1 commit)
  // -------------------------------------------------------------------------------------------

  /** Highest consumed counter for the key: the larger of the store's and (hsm) the token's. */
  private async consumedCounter(keyId: string): Promise<number> {
    const local = await this.o.store.getU64(K.consumed(keyId));
    const token = this.o.vault.counter?.get(keyId) ?? 0;
    return Math.max(local, token);
  }

  private async nonces(b: Body<'nonces'>, rng?: Rng): Promise<ResponseBody> {
    this.guard();
    const rec = await this.keyRecord(b.keyId);
    const e = rec?.epochs[b.keyEpoch];
    if (rec === undefined || e === undefined) throw new CustodyError('UNKNOWN_KEY', `this kernel holds no share of ${b.keyId} epoch ${b.keyEpoch}`);
    const auth = this.gov.keys[b.keyId];
    if (auth !== undefined && (auth.retired || (auth.activeEpoch !== null && b.keyEpoch < auth.activeEpoch))) throw new CustodyError('STALE_EPOCH', `key ${b.keyId} epoch ${b.keyEpoch} is superseded`);
    const outstanding = (await this.o.store.list(K.nonces(b.keyId), limits.noncesOutstandingMax + 1)).length;
    if (outstanding + b.count > limits.noncesOutstandingMax) throw new CustodyError('LIMIT_EXCEEDED', `key ${b.keyId} already holds ${outstanding} presigned nonces`);
    const suite = suiteOf(rec.suite);
    const consumed = await this.consumedCounter(b.keyId);
    let next = Math.max(await this.o.store.getU64('meta/counter'), consumed + 1, 1);
    const share = await this.openShare(b.keyId, b.keyEpoch);
    const secret = { identifier: e.identifier, signingShare: share } as FrostSecret;
    const ops: BatchOp[] = [];
    const commitments: { counter: number; identifier: string; hiding: Uint8Array; binding: Uint8Array }[] = [];
    try {
      for (let i = 0; i < b.count; i++, next++) {
        const g = suite.frost.commit(secret, rng as never);
        const plain = new Uint8Array(64);
        plain.set(g.nonces.hiding, 0);
        plain.set(g.nonces.binding, 32);
        const aad = K.nonceAad(b.keyId, b.keyEpoch, next);
        const record: NonceRecord = { epoch: b.keyEpoch, hiding: bytesToHex(g.commitments.hiding), binding: bytesToHex(g.commitments.binding), sealed: bytesToHex(this.o.vault.seal(plain, aad)) };
        plain.fill(0);
        g.nonces.hiding.fill(0);
        g.nonces.binding.fill(0);
        ops.push({ type: 'put', key: K.nonce(b.keyId, next), value: json(record) });
        commitments.push({ counter: next, identifier: e.identifier, hiding: g.commitments.hiding, binding: g.commitments.binding });
      }
    } finally {
      share.fill(0);
    }
    ops.push({ type: 'put', key: 'meta/counter', value: u64(next) });
    this.crash('nonces:generated');
    await this.o.store.write(ops);
    this.crash('nonces:stored');
    return { kind: 'nonceCommitments', commitments };
  }

  // -------------------------------------------------------------------------------------------
  // Signing (RFC 9591 §5.2 sign)
  // -------------------------------------------------------------------------------------------

  /**
   * Signs every message of one act under one permit: message i with this kernel's presigned nonce
   * pair counters[i] and the commitment list lists[i] (RFC 9591 §5.2), each share from its own
   * nonce pair.
   *
   * Flow. Every check runs before a nonce is opened and nothing leaves before the consumption is
   * durable: (1) the permit's key is active at the permit's epoch and the permit is newer than the
   * activation; (2) the shape: as many lists and counters as messages, counters strictly rising;
   * (3) messagesDigest(messages) = permit.messageDigest, so the kernel signs exactly the list of
   * messages the ledger permitted, in its order, none added or dropped (ledger/tx/messages.ts);
   * (4) every list names the same signer set; (5) a used permit is answered only for the identical
   * request (replaySign); (6) the store is not behind the ledger (STORE_ROLLED_BACK) and the first
   * counter is above the consumed one (NONCE_REUSED); (7) each counter's nonce exists, belongs to
   * the epoch, and is the commitment listed for this kernel in its message's list, every list
   * valid for the key (commitmentList). Then the shares are computed, the token counter (hsm) and
   * then one fsynced batch consume every nonce of the key up to the last counter and record the
   * permit with its digest, lists, counters and shares, and only then do the shares leave.
   *
   * Who is trusted for what: the daemon (and whoever speaks on the socket) chooses messages,
   * lists and counters and is trusted for none of them; the permit is trusted only as far as the
   * governance the kernel verified itself (key, epoch, activation index); the message digest in
   * it is the ledger's commitment to the act's messages, and a daemon lying about the messages
   * fails (3).
   *
   * Why n messages in one request reveal nothing more than n separate permitted signings. A
   * FROST share z = d + e·ρ + λ·c·s (RFC 9591 §5.2) hides the signing share s only while the
   * nonce pair (d, e) signs one (message, list): two shares under one pair with another binding
   * factor ρ or challenge c are two linear equations in d, e and s. Here each message gets its own
   * pair: the counters are distinct (strictly rising) and this request consumes them all, so every
   * pair signs exactly one (message, list), ever. Each share is computed by the same function, with
   * the same inputs, as a separate request for that message alone would use, its ρ_i bound to its
   * own message and list (ρ_i = H1(PK || H4(msg_i) || H5(encode(list_i)) || id), §4.4); the n
   * shares are n independent masks d_i + e_i·ρ_i over n multiples of s, exactly what n separate
   * signings release. What the batch adds is only that the n sessions are open at once, and FROST
   * is secure with concurrent sessions because of its two nonces per signer (§5.1 hiding D and
   * binding E): the binding factor, over the whole list, is what defeats the attacks that make
   * concurrent sessions dangerous for single-nonce schemes (Drijvers et al. 2019, the ROS attack
   * of Benhamouda et al. 2021), a coordinator choosing other signers' commitments after seeing
   * ours. So: two nonces per signer per message, one pair per message, never one pair for two.
   * Every list naming the same signer set is not needed for that argument; it is the ledger's
   * rule (one signing set per act), checked so a daemon cannot mix sets inside one act.
   *
   * Why rising counters keep the burn rule sound. Nonces of a key are consumed in counter order:
   * using c burns every unused pair of the key at or below c, the consumed counter becomes c, and
   * a later request must start above it. With counters c_1 < ... < c_n the batch burns everything
   * up to c_n, which includes each c_i, in one write: afterwards no c_i can sign again and no pair
   * at or below c_n remains, so "consumed counter = c_n" stays the exact summary of what is spent
   * (the ledger records the member's last counter, and STORE_ROLLED_BACK and reconcile need only
   * that one number). A repeated counter would sign two messages with one pair: refused
   * NONCE_REUSED. A falling one is refused too (PAYLOAD_REJECTED), so the last counter is the
   * largest, the burn bound covers every counter of the request, and the request's order is the
   * consumption order.
   *
   * Crashes: before the batch, nothing is consumed and the shares computed died with the process,
   * so whichever request next uses those nonces (the same one, or another permitted one) releases
   * the only shares they ever produce. After the batch, the pairs are burned, the shares are on
   * disk, and the permit answers only the identical request, with those stored shares.
   */
  private async sign(b: Body<'sign'>): Promise<ResponseBody> {
    this.guard();
    const { permit } = b;
    const rec = await this.keyRecord(permit.keyId);
    const auth = this.gov.keys[permit.keyId];
    if (rec === undefined) throw new CustodyError('UNKNOWN_KEY', `this kernel holds no key ${permit.keyId}`);
    // The permit must name the key epoch that an approver-signed decision made active.
    if (auth === undefined || auth.activeEpoch === null || auth.retired) throw new CustodyError('KEY_NOT_ACTIVE', `key ${permit.keyId} is not active`);
    if (permit.keyEpoch !== auth.activeEpoch) throw new CustodyError('STALE_EPOCH', `permit names epoch ${permit.keyEpoch}; epoch ${auth.activeEpoch} is active`);
    if (permit.ledgerIndex <= auth.activatedIndex) throw new CustodyError('STALE_EPOCH', `permit at ledger index ${permit.ledgerIndex} predates the activation at ${auth.activatedIndex}`);
    const e = rec.epochs[permit.keyEpoch];
    if (e === undefined) throw new CustodyError('KEY_NOT_ACTIVE', `this kernel holds no share of ${permit.keyId} epoch ${permit.keyEpoch}`);

    const n = b.messages.length;
    if (n < 1 || n > txLimits.messagesPerActMax) throw new CustodyError('PAYLOAD_REJECTED', `a signing step carries 1 to ${txLimits.messagesPerActMax} messages, not ${n}`);
    if (b.lists.length !== n || b.counters.length !== n) throw new CustodyError('PAYLOAD_REJECTED', `${n} messages need ${n} commitment lists and ${n} counters, not ${b.lists.length} and ${b.counters.length}`);
    for (const m of b.messages) if (m.length < 1 || m.length > limits.messageBytesMax) throw new CustodyError('PAYLOAD_REJECTED', `a message of ${m.length} bytes is outside 1..${limits.messageBytesMax}`);
    for (let i = 1; i < n; i++) {
      const [prev, cur] = [b.counters[i - 1]!, b.counters[i]!];
      if (cur === prev) throw new CustodyError('NONCE_REUSED', `counter ${cur} is named for two messages: one nonce pair signs one message`);
      if (cur < prev) throw new CustodyError('PAYLOAD_REJECTED', `counters must rise strictly: ${cur} follows ${prev}`);
    }
    if (!bytesEqual(messagesDigest(b.messages), permit.messageDigest)) throw new CustodyError('DIGEST_MISMATCH', 'the messages are not the ones the permit names');
    const signers = signerSet(b.lists[0]!);
    for (const [i, list] of b.lists.entries()) {
      if (signerSet(list) !== signers) throw new CustodyError('PAYLOAD_REJECTED', `the commitment list of message ${i} names another signer set than message 0's`);
    }
    // (0) What the signature rests on (kernel/certificate.ts), before any nonce or used permit is
    // read: entries a majority of the voters applied, this exact signing set, and the permit they
    // make, which must be the request's (so every check above, made on the request's permit, holds
    // for it).
    const certifiedSign = checkCertificate(b.certificate, {
      clusterId: this.gov.clusterId, voters: this.gov.nodes, lists: b.lists, counters: b.counters,
      identifierFor: (keyId, epoch) => (keyId === permit.keyId ? rec.epochs[epoch]?.identifier : undefined),
      active: (keyId) => {
        const a = this.gov.keys[keyId];
        return a === undefined || a.activeEpoch === null || a.retired ? undefined : { epoch: a.activeEpoch, activatedIndex: a.activatedIndex };
      },
    });
    // (0a) One history: the checkpoint extends the one this kernel follows, or is extended by it.
    const incarnation = checkpointIncarnation(certifiedSign.checkpoint.extensions);
    const followedBefore = (await this.o.store.getJson<FollowedCheckpoint>(K.followed(incarnation))) ?? null;
    const followed = checkFollows(followedBefore, certifiedSign.checkpoint, b.certificate?.consistency);
    const derived = certifiedSign.permit;
    if (derived.keyId !== permit.keyId || derived.keyEpoch !== permit.keyEpoch || derived.requestId !== permit.requestId || derived.ledgerIndex !== permit.ledgerIndex || !bytesEqual(derived.messageDigest, permit.messageDigest)) {
      throw new CustodyError('BINDING_MISMATCH', `the request's permit is not the one its certified entries make (act ${derived.requestId}, key ${derived.keyId} epoch ${derived.keyEpoch}, set at ledger index ${derived.ledgerIndex})`);
    }
    // (0b) What the act says (kernel/act-check.ts): a custodian of the roster this kernel follows
    // asked for exactly this act in its window, and the kernel's own parse of the transaction
    // yields exactly the request's messages.
    const keyAuth = this.gov.keys[permit.keyId]!;
    const actCtx: ActCheckContext = {
      clusterId: this.gov.clusterId, roster: this.gov.roster, stampMs: certifiedSign.submittedStampMs,
      key: { keyId: permit.keyId, scheme: keyAuth.scheme, network: keyAuth.network, groupKey: hexToBytes(e.public.commitments[0]!), activeEpoch: keyAuth.activeEpoch },
    };
    if (this.o.checkSubmittedAct !== undefined) {
      this.o.checkSubmittedAct(certifiedSign.submitted, actCtx, b.messages);
    } else {
      // (0c) The policy in force at the act's entry, as this kernel follows governance, judged
      // by its history-free rules on the kernel's own parse, and the approvals its matched rule
      // requires (kernel/policy-check.ts).
      const { facts } = checkSubmittedAct(certifiedSign.submitted, actCtx, b.messages);
      checkActPolicy(certifiedSign.submitted, facts, {
        clusterId: this.gov.clusterId, era: eraAt(this.gov.eras, certifiedSign.submittedIndex), index: certifiedSign.submittedIndex,
        stampMs: certifiedSign.submittedStampMs, ownAddresses: ownAddressesOf(await this.heldKeys()),
      });
    }
    const listsDigest = signingListsDigest(b.lists);
    const used = await this.o.store.getJson<PermitUse>(K.permit(permit.keyId, permit.requestId));
    if (used !== undefined) return this.replaySign(used, b, listsDigest, e.identifier);

    const localConsumed = await this.o.store.getU64(K.consumed(permit.keyId));
    const consumed = await this.consumedCounter(permit.keyId);
    if (b.ledgerConsumedCounter > consumed) {
      throw new CustodyError('STORE_ROLLED_BACK', `the ledger records nonce ${b.ledgerConsumedCounter} of ${permit.keyId} as consumed; this store has only reached ${localConsumed}`);
    }
    const first = b.counters[0]!;
    const last = b.counters[n - 1]!;
    if (first <= consumed) throw new CustodyError('NONCE_REUSED', `nonce ${first} of ${permit.keyId} is consumed or burned (consumed up to ${consumed})`);

    const suite = suiteOf(rec.suite);
    const pub = withEnrolled(e);
    const nonceRecs: NonceRecord[] = [];
    const lists: NonceCommitments[][] = [];
    for (let i = 0; i < n; i++) {
      const counter = b.counters[i]!;
      const nrec = await this.o.store.getJson<NonceRecord>(K.nonce(permit.keyId, counter));
      if (nrec === undefined) throw new CustodyError('PAYLOAD_REJECTED', `no presigned nonce ${counter} for ${permit.keyId}`);
      if (nrec.epoch !== permit.keyEpoch) throw new CustodyError('STALE_EPOCH', `nonce ${counter} belongs to epoch ${nrec.epoch}`);
      nonceRecs.push(nrec);
      lists.push(this.commitmentList(suite, pub, e.identifier, b.lists[i]!, nrec));
    }

    const share = await this.openShare(permit.keyId, permit.keyEpoch);
    const sigShares: Uint8Array[] = [];
    try {
      const secret = { identifier: e.identifier, signingShare: share } as FrostSecret;
      for (let i = 0; i < n; i++) {
        const plain = this.o.vault.open(hexToBytes(nonceRecs[i]!.sealed), K.nonceAad(permit.keyId, nonceRecs[i]!.epoch, b.counters[i]!));
        const nonces = { hiding: plain.slice(0, 32), binding: plain.slice(32, 64) } as Nonces;
        try {
          sigShares.push(suite.frost.signShare(secret, asFrostPublic(pub), nonces, lists[i]!, b.messages[i]!));
        } finally {
          plain.fill(0);
          nonces.hiding.fill(0);
          nonces.binding.fill(0);
        }
      }
    } catch (err) {
      throw new CustodyError('PAYLOAD_REJECTED', `signing: ${(err as Error).message}`);
    } finally {
      share.fill(0);
    }
    // The shares are not self-verified here (measured: noble's verifyShare costs more than
    // signShare itself). A wrong share reveals nothing with a fresh random nonce pair, and the
    // aggregator checks every share when the signature fails (RFC 9591 §5.4, noble's aggregate
    // names the cheaters), so a faulty kernel is identified there.
    this.crash('sign:checked');

    // Consume durably before anything leaves: token counter first (hsm), then one fsynced batch
    // that burns every nonce of the key up to the last counter (each counter of the request among
    // them) and records the permit as used.
    this.o.vault.counter?.raise(permit.keyId, last);
    const lastKey = K.nonce(permit.keyId, last);
    const ops: BatchOp[] = [];
    for (const { key } of await this.o.store.list(K.nonces(permit.keyId), limits.noncesOutstandingMax + 1)) {
      if (key > lastKey) break;
      ops.push({ type: 'del', key });
    }
    ops.push({ type: 'put', key: K.consumed(permit.keyId), value: u64(last) });
    const use: PermitUse = {
      keyId: permit.keyId, keyEpoch: permit.keyEpoch, digest: bytesToHex(permit.messageDigest), ledgerIndex: permit.ledgerIndex,
      counters: [...b.counters], lists: bytesToHex(listsDigest), shares: sigShares.map(bytesToHex),
    };
    ops.push({ type: 'put', key: K.permit(permit.keyId, permit.requestId), value: json(use) });
    if (followed !== followedBefore) ops.push({ type: 'put', key: K.followed(incarnation), value: json(followed) });
    await this.o.store.write(ops);
    this.crash('sign:consumed');
    return { kind: 'signatureShares', identifier: e.identifier, sigShares, counters: [...b.counters] };
  }

  /**
   * K4: a used permit presented again. The identical request (same permit, messages, commitment
   * lists and counters) gets the shares stored when the nonces were consumed: the same bytes that
   * left (or would have left) the first time, so nothing new is revealed and no nonce is touched.
   * Anything else under a used permit is refused STEP_PERMIT_REUSED (a record written by a
   * single-message kernel answers nothing: its permit named another digest form).
   */
  private replaySign(used: PermitUse, b: Body<'sign'>, listsDigest: Uint8Array, identifier: string): ResponseBody {
    const { permit } = b;
    const same = used.shares !== undefined && used.lists !== undefined && used.counters !== undefined &&
      used.keyEpoch === permit.keyEpoch && used.ledgerIndex === permit.ledgerIndex &&
      used.counters.length === b.counters.length && used.counters.every((c, i) => c === b.counters[i]) &&
      used.digest === bytesToHex(permit.messageDigest) && used.lists === bytesToHex(listsDigest) && used.shares.length === b.messages.length;
    if (!same) throw new CustodyError('STEP_PERMIT_REUSED', `permit for request ${permit.requestId} was already used for another signing request`);
    return { kind: 'signatureShares', identifier, sigShares: (used.shares as string[]).map((h) => hexToBytes(h)), counters: [...b.counters] };
  }

  /**
   * The backup of this kernel's share of a key epoch, encrypted with age (kernel/backup.ts) to
   * the custodians of the BackupPolicy decision in force as this kernel follows governance.
   *
   * Trust boundary: the daemon asks, the kernel decides. The daemon names the recipients it
   * expects; the kernel encrypts only to the list of the last BackupPolicy it verified itself
   * (authority.ts: approver quorum, parent chain from the pinned genesis) and refuses any other
   * list, longer, shorter, reordered or with one recipient swapped (BACKUP_RECIPIENTS_MISMATCH),
   * so a compromised daemon cannot get a share encrypted to a key it holds. Without a verified
   * policy it refuses (BACKUP_POLICY_MISSING). Only the epoch governance made active is backed up
   * (STALE_EPOCH otherwise), and only if this kernel holds its share (UNKNOWN_KEY). Fenced or
   * frozen, it refuses like every secret step. The share is opened from the vault (both profiles:
   * the hsm profile decrypts shares inside the token into kernel memory for each step that needs
   * one, as signing does), encrypted, and zero-filled; the reply carries only the age file, whose
   * metadata (key, epoch, identifier, verifying share, group key) is the public record.
   * The backup is not stored here: the same request again makes a new file (age is randomized)
   * of the same share; the daemon writes one file per epoch and policy.
   */
  private async shareBackup(b: Body<'shareBackup'>): Promise<ResponseBody> {
    this.guard();
    const policy = this.gov.backupPolicy;
    if (policy === undefined) throw new CustodyError('BACKUP_POLICY_MISSING', 'no BackupPolicy decision has reached this kernel');
    const decided = policy.recipients.map((r) => r.recipient);
    if (b.recipients.length !== decided.length || b.recipients.some((r, i) => r !== decided[i])) {
      throw new CustodyError('BACKUP_RECIPIENTS_MISMATCH', `the request names ${b.recipients.length} recipients that are not the ${decided.length} of the BackupPolicy decided at ledger index ${policy.index}`);
    }
    const rec = await this.keyRecord(b.keyId);
    if (rec === undefined) throw new CustodyError('UNKNOWN_KEY', `this kernel holds no key ${b.keyId}`);
    const auth = this.gov.keys[b.keyId];
    if (auth === undefined || auth.retired || auth.activeEpoch === null) throw new CustodyError('KEY_NOT_ACTIVE', `key ${b.keyId} is not active`);
    if (b.epoch !== auth.activeEpoch) throw new CustodyError('STALE_EPOCH', `epoch ${auth.activeEpoch} of ${b.keyId} is active, not ${b.epoch}`);
    const e = rec.epochs[b.epoch];
    if (e === undefined) throw new CustodyError('UNKNOWN_KEY', `this kernel holds no share of ${b.keyId} epoch ${b.epoch}`);
    const verifyingShare = e.public.verifyingShares[e.identifier];
    if (verifyingShare === undefined) throw new CustodyError('STORAGE_CORRUPT', `the public package of ${b.keyId} epoch ${b.epoch} has no verifying share for this kernel`);
    const meta: ShareBackupMeta = {
      keyId: b.keyId, epoch: b.epoch, identifier: e.identifier, verifyingShare: hexToBytes(verifyingShare),
      groupKey: hexToBytes(e.public.commitments[0]!), scheme: rec.suite,
    };
    const share = await this.openShare(b.keyId, b.epoch);
    let file: Uint8Array;
    try {
      file = await encryptShareBackup(share, meta, decided);
    } finally {
      share.fill(0);
    }
    return { kind: 'shareBackup', keyId: b.keyId, epoch: b.epoch, identifier: e.identifier, file, recipientsDigest: backupRecipientsDigest(policy.recipients) };
  }

  /**
   * Imports this kernel's share of a key epoch recovered from its backup (kernel/recovery.ts says
   * the flow and what is trusted for what). In order, before the share is stored: not fenced or
   * frozen; the key is active at this epoch by governance (KEY_NOT_ACTIVE, STALE_EPOCH) with this
   * node among its participants (WRONG_RECIPIENT); no share
   * of the epoch is held (SHARE_ALREADY_HELD); a RecoveryAuthorized this kernel verified names
   * this node (only such decisions are kept), this key, epoch and identifier
   * (RECOVERY_NOT_AUTHORIZED); the public package is the decided key epoch (BINDING_MISMATCH); the
   * package opens with this kernel's transport key under the decision's key, epoch, identifier
   * and backup cid (PAYLOAD_REJECTED); share*G is the decided verifying share (SHARE_MISMATCH).
   * Then one fsynced batch seals the share under the profile's vault (the hsm profile wraps it
   * inside the token, like a DKG share), records the key epoch, consumes the decision, and sets
   * the key's consumed counter (and the token counter, hsm) to at least the ledger's, so new
   * nonce commitments are numbered above every counter the ledger saw consumed.
   */
  private async importShare(b: Body<'importShare'>): Promise<ResponseBody> {
    this.guard();
    const auth = this.gov.keys[b.keyId];
    if (auth === undefined || auth.retired || auth.activeEpoch === null) throw new CustodyError('KEY_NOT_ACTIVE', `key ${b.keyId} is not active`);
    if (b.epoch !== auth.activeEpoch) throw new CustodyError('STALE_EPOCH', `epoch ${auth.activeEpoch} of ${b.keyId} is active, not ${b.epoch}`);
    // The ledger refuses a RecoveryAuthorized for a node outside the epoch; checked here too, so a
    // grant never makes a kernel a holder of a key governance did not give it a share of.
    if (!auth.participants.includes(this.o.nodeId)) throw new CustodyError('WRONG_RECIPIENT', `node ${this.o.nodeId} holds no share of ${b.keyId} epoch ${b.epoch} by governance`);
    const rec = await this.keyRecord(b.keyId);
    if (rec?.epochs[b.epoch] !== undefined || (await this.o.store.get(K.share(b.keyId, b.epoch))) !== undefined) {
      throw new CustodyError('SHARE_ALREADY_HELD', `this kernel holds a share of ${b.keyId} epoch ${b.epoch}`);
    }
    const grant = this.gov.recoveries?.[b.keyId];
    if (grant === undefined || grant.epoch !== b.epoch || grant.identifier !== b.identifier) {
      throw new CustodyError('RECOVERY_NOT_AUTHORIZED', `no RecoveryAuthorized decision this kernel verified names node ${this.o.nodeId}, key ${b.keyId} epoch ${b.epoch} and identifier ${b.identifier}`);
    }
    const suite = suiteOf(auth.scheme);
    const pub = fromWirePublic(b.public);
    checkRecoveryPackage(suite, pub, {
      identifier: grant.identifier, groupKey: hexToBytes(grant.groupKey), verifyingShare: hexToBytes(grant.verifyingShare),
      threshold: auth.threshold, participants: auth.participants.length,
    });
    if (b.sealed.recipient !== grant.identifier) throw new CustodyError('WRONG_RECIPIENT', `the package is addressed to ${b.sealed.recipient}, not ${grant.identifier}`);
    const share = await openFrom(this.transport.privateKey, recoveryContext(b.keyId, b.epoch, grant.identifier, hexToBytes(grant.backupCid)), b.sealed);
    try {
      let s: bigint;
      try {
        s = suite.Fn.fromBytes(share);
      } catch {
        throw new CustodyError('SHARE_MISMATCH', `the share of ${grant.identifier} for ${b.keyId} epoch ${b.epoch} is not a scalar of ${auth.scheme}`);
      }
      if (share.length !== suite.Fn.BYTES || s === 0n || !suite.base.multiply(s).equals(suite.parsePoint(hexToBytes(grant.verifyingShare)))) {
        throw new CustodyError('SHARE_MISMATCH', `share*G is not the verifying share of ${grant.identifier} for ${b.keyId} epoch ${b.epoch}`);
      }
      try {
        suite.frost.validateSecret({ identifier: grant.identifier, signingShare: share } as FrostSecret, asFrostPublic(pub));
      } catch (e) {
        throw new CustodyError('SHARE_MISMATCH', `the share does not validate against the key package: ${(e as Error).message}`);
      }
      const target = Math.max(await this.consumedCounter(b.keyId), b.ledgerConsumedCounter);
      this.o.vault.counter?.raise(b.keyId, target);
      const record: KeyRecord = rec ?? { keyId: b.keyId, suite: suite.name, epochs: {} };
      record.epochs[b.epoch] = { identifier: grant.identifier, public: toPublicJson(pub) };
      const recoveries = { ...(this.gov.recoveries ?? {}) };
      delete recoveries[b.keyId];
      const gov: GovernanceState = { ...this.gov, recoveries };
      const ops: BatchOp[] = [
        { type: 'put', key: K.share(b.keyId, b.epoch), value: this.o.vault.seal(share, K.share(b.keyId, b.epoch)) },
        { type: 'put', key: K.key(b.keyId), value: json(record) },
        { type: 'put', key: K.consumed(b.keyId), value: u64(target) },
        { type: 'put', key: 'meta/governance', value: json(gov) },
      ];
      if (target >= (await this.o.store.getU64('meta/counter'))) ops.push({ type: 'put', key: 'meta/counter', value: u64(target + 1) });
      await this.o.store.write(ops);
      this.gov = gov;
      return { kind: 'keyPackage', keyId: b.keyId, epoch: b.epoch, suite: suite.name, identifier: grant.identifier, public: toWirePublic(pub) };
    } finally {
      share.fill(0);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Share repair (kernel/repair.ts): the message flow, the safety argument and who is trusted for
  // what are in that module's header. Here: each step only for the repair a RepairAuthorized this
  // kernel verified names; a helper computes from its own stored share and key package, never
  // from one the daemon hands it; the target checks share·G against its verifying share in a
  // package whose digest every sum is bound to.
  // -------------------------------------------------------------------------------------------

  /** The verified RepairAuthorized for this request (REPAIR_NOT_AUTHORIZED without it), and the key's authority. */
  private repairGrant(keyId: string, epoch: number, ceremonyId: string): { grant: RepairGrant; plan: repair.RepairPlan; suite: Suite } {
    const auth = this.gov.keys[keyId];
    if (auth === undefined || auth.retired || auth.activeEpoch === null) throw new CustodyError('KEY_NOT_ACTIVE', `key ${keyId} is not active`);
    if (epoch !== auth.activeEpoch) throw new CustodyError('STALE_EPOCH', `epoch ${auth.activeEpoch} of ${keyId} is active, not ${epoch}`);
    const grant = this.gov.repairs?.[keyId];
    if (grant === undefined || grant.ceremonyId !== ceremonyId || grant.epoch !== epoch) {
      throw new CustodyError('REPAIR_NOT_AUTHORIZED', `no RepairAuthorized decision this kernel verified is repair ${ceremonyId} of ${keyId} epoch ${epoch}`);
    }
    // Identifiers are the participants' positions in the epoch, as the ledger assigns them
    // (ledger/signing-set.ts frostIdentifier; the ledger checks every signing set by the same rule).
    const helpers = grant.helpers.map((h) => frostIdentifier(auth.scheme, auth.participants.indexOf(h) + 1));
    return { grant, suite: suiteOf(auth.scheme), plan: { ceremonyId, keyId, epoch, helpers, target: grant.identifier } };
  }

  /** This kernel's share and key package of the epoch, for a helper (KEY_NOT_ACTIVE when it holds none). */
  private async helperHolding(keyId: string, epoch: number, grant: RepairGrant): Promise<{ me: string; pub: PublicKeyPackage }> {
    if (!grant.helpers.includes(this.o.nodeId)) throw new CustodyError('REPAIR_NOT_AUTHORIZED', `node ${this.o.nodeId} is not a helper of the repair of ${grant.nodeId} in ${keyId} epoch ${epoch}`);
    const e = (await this.keyRecord(keyId))?.epochs[epoch];
    if (e === undefined) throw new CustodyError('KEY_NOT_ACTIVE', `this kernel holds no share of ${keyId} epoch ${epoch}`);
    return { me: e.identifier, pub: withEnrolled(e) };
  }

  /**
   * Repair step 1, a helper: splits λ_i(x)·s_i into one delta per helper (kernel/repair.ts
   * repairStep1, which first checks s_i·G against this kernel's own verifying share), keeps its
   * own, and seals each other one to that helper's transport key. The daemon names the helpers'
   * transport keys; it must name exactly the decision's helpers under their identifiers
   * (BINDING_MISMATCH). Once per repair (REPLAY_OR_CONFLICT while the kept delta is unspent).
   *
   * The kept delta is stored sealed under the profile, like a share (K.repairKept), in a write
   * that completes before any sealed delta leaves: a kernel that restarts between its two steps
   * still sums, so one helper's restart does not stall the repair. It is one additive piece of
   * λ_i(x)·s_i, worth no more than the share it came from, and it is erased when step 2 spends
   * it or a later repair of the key replaces it.
   */
  private async repairDeal(b: Body<'repairDeal'>): Promise<ResponseBody> {
    this.guard();
    const { grant, plan, suite } = this.repairGrant(b.keyId, b.epoch, b.ceremonyId);
    const { me, pub } = await this.helperHolding(b.keyId, b.epoch, grant);
    const named = b.helpers.map((p) => `${p.nodeId}=${p.identifier}`).sort();
    const decided = grant.helpers.map((h, i) => `${h}=${plan.helpers[i]}`).sort();
    if (JSON.stringify(named) !== JSON.stringify(decided)) throw new CustodyError('BINDING_MISMATCH', `the helpers named (${named.join(', ')}) are not the decision's (${decided.join(', ')})`);
    if ((await this.o.store.getJson<KeptRepairDelta>(K.repairKept(b.keyId)))?.ceremonyId === b.ceremonyId) throw new CustodyError('REPLAY_OR_CONFLICT', `this kernel already dealt its deltas for repair ${b.ceremonyId}`);
    const share = await this.openShare(b.keyId, b.epoch);
    let deltas: Map<string, Uint8Array>;
    try {
      deltas = repair.repairStep1(suite, pub, plan, me, share);
    } finally {
      share.fill(0);
    }
    const packages: SealedPackage[] = [];
    try {
      for (const p of b.helpers) {
        if (p.identifier === me) continue;
        packages.push(await repair.sealRepairPart(suite, pub, 'delta', plan, me, p.identifier, p.transportPublicKey, deltas.get(p.identifier)!));
      }
    } catch (e) {
      for (const d of deltas.values()) d.fill(0);
      throw e;
    }
    for (const [id, d] of deltas) if (id !== me) d.fill(0);
    // Stored before any package leaves; it replaces a part kept for an earlier repair of the key.
    const own = deltas.get(me)!;
    try {
      const kept: KeptRepairDelta = { ceremonyId: b.ceremonyId, helper: me, sealed: bytesToHex(this.o.vault.seal(own, `${K.repairKept(b.keyId)}/${b.ceremonyId}`)) };
      await this.o.store.write([{ type: 'put', key: K.repairKept(b.keyId), value: json(kept) }]);
    } finally {
      own.fill(0);
    }
    return { kind: 'repairDealt', identifier: me, packages, public: toWirePublic(pub) };
  }

  /**
   * Repair step 2, a helper: its sum over the delta it kept and exactly one delta from every other
   * helper (each opened under this repair's bindings and this kernel's key package:
   * REPAIR_PACKAGE_REJECTED otherwise), sealed to the target's transport key. The target must be
   * the decision's node and identifier (BINDING_MISMATCH). The kept delta is spent either way.
   */
  private async repairSum(b: Body<'repairSum'>): Promise<ResponseBody> {
    this.guard();
    const { grant, plan, suite } = this.repairGrant(b.keyId, b.epoch, b.ceremonyId);
    const { me, pub } = await this.helperHolding(b.keyId, b.epoch, grant);
    if (b.target.nodeId !== grant.nodeId || b.target.identifier !== grant.identifier) {
      throw new CustodyError('BINDING_MISMATCH', `the target named is ${b.target.nodeId} (${b.target.identifier}), the decision's is ${grant.nodeId} (${grant.identifier})`);
    }
    const kept = await this.o.store.getJson<KeptRepairDelta>(K.repairKept(b.keyId));
    if (kept === undefined || kept.ceremonyId !== b.ceremonyId) throw new CustodyError('REPAIR_PACKAGE_REJECTED', `this kernel dealt no deltas for repair ${b.ceremonyId}`);
    // Spent either way: erased before the sum is computed.
    const delta = this.o.vault.open(hexToBytes(kept.sealed), `${K.repairKept(b.keyId)}/${b.ceremonyId}`);
    await this.o.store.write([{ type: 'del', key: K.repairKept(b.keyId) }]);
    const parts: repair.RepairPart[] = [{ helper: me, scalar: delta }];
    try {
      for (const p of b.deltas) {
        if (p.recipient !== me) throw new CustodyError('WRONG_RECIPIENT', `a delta for ${p.recipient}, not ${me}`);
        parts.push(await repair.openRepairPart(suite, pub, 'delta', plan, p.sender, me, this.transport.privateKey, p));
      }
      const sigma = repair.repairStep2(suite, pub, plan, me, parts);
      try {
        const sealed = await repair.sealRepairPart(suite, pub, 'sigma', plan, me, grant.identifier, b.target.transportPublicKey, sigma);
        return { kind: 'repairSummed', identifier: me, package: sealed };
      } finally {
        sigma.fill(0);
      }
    } finally {
      for (const p of parts) p.scalar.fill(0);
    }
  }

  /**
   * Repair step 3, the target. In order, before anything is stored: not fenced or frozen; the
   * RepairAuthorized names this node (REPAIR_NOT_AUTHORIZED); no share of the epoch is held
   * (SHARE_ALREADY_HELD); the public package has the decided group key and the key's threshold,
   * and lists this node's identifier (BINDING_MISMATCH); every sum opens under this repair and that
   * package's digest (REPAIR_PACKAGE_REJECTED: a package other than the helpers' own opens none);
   * share·G is the identifier's verifying share (REPAIR_SHARE_MISMATCH). Then, as for an imported
   * share, one fsynced batch seals the share under the profile, records the key epoch and sets
   * the consumed counter to at least the ledger's.
   */
  private async repairFinish(b: Body<'repairFinish'>): Promise<ResponseBody> {
    this.guard();
    const { grant, plan, suite } = this.repairGrant(b.keyId, b.epoch, b.ceremonyId);
    if (grant.nodeId !== this.o.nodeId) throw new CustodyError('REPAIR_NOT_AUTHORIZED', `the repair ${b.ceremonyId} rebuilds the share of ${grant.nodeId}, not of ${this.o.nodeId}`);
    const rec = await this.keyRecord(b.keyId);
    if (rec?.epochs[b.epoch] !== undefined || (await this.o.store.get(K.share(b.keyId, b.epoch))) !== undefined) {
      throw new CustodyError('SHARE_ALREADY_HELD', `this kernel holds a share of ${b.keyId} epoch ${b.epoch}`);
    }
    const auth = this.gov.keys[b.keyId]!;
    const pub = fromWirePublic(b.public);
    if (pub.commitments.length === 0 || bytesToHex(pub.commitments[0]!) !== grant.groupKey) throw new CustodyError('BINDING_MISMATCH', `the public package is not of the group key the decision names`);
    if (pub.signers.min !== auth.threshold) throw new CustodyError('BINDING_MISMATCH', `the public package is ${pub.signers.min}-of-${pub.signers.max}; ${b.keyId} has threshold ${auth.threshold}`);
    if (pub.verifyingShares[grant.identifier] === undefined) throw new CustodyError('BINDING_MISMATCH', `the public package lists no verifying share of ${grant.identifier}`);
    const parts: repair.RepairPart[] = [];
    try {
      for (const p of b.sums) {
        if (p.recipient !== grant.identifier) throw new CustodyError('WRONG_RECIPIENT', `a sum for ${p.recipient}, not ${grant.identifier}`);
        parts.push(await repair.openRepairPart(suite, pub, 'sigma', plan, p.sender, grant.identifier, this.transport.privateKey, p));
      }
      const out = repair.repairStep3(suite, pub, plan, parts);
      try {
        try {
          suite.frost.validateSecret({ identifier: grant.identifier, signingShare: out.share } as FrostSecret, asFrostPublic(out.public));
        } catch (e) {
          throw new CustodyError('REPAIR_SHARE_MISMATCH', `the repaired share does not validate against the key package: ${(e as Error).message}`);
        }
        const target = Math.max(await this.consumedCounter(b.keyId), b.ledgerConsumedCounter);
        this.o.vault.counter?.raise(b.keyId, target);
        const record: KeyRecord = rec ?? { keyId: b.keyId, suite: suite.name, epochs: {} };
        record.epochs[b.epoch] = { identifier: grant.identifier, public: toPublicJson(out.public) };
        const ops: BatchOp[] = [
          { type: 'put', key: K.share(b.keyId, b.epoch), value: this.o.vault.seal(out.share, K.share(b.keyId, b.epoch)) },
          { type: 'put', key: K.key(b.keyId), value: json(record) },
          { type: 'put', key: K.consumed(b.keyId), value: u64(target) },
        ];
        if (target >= (await this.o.store.getU64('meta/counter'))) ops.push({ type: 'put', key: 'meta/counter', value: u64(target + 1) });
        await this.o.store.write(ops);
        return { kind: 'keyPackage', keyId: b.keyId, epoch: b.epoch, suite: suite.name, identifier: grant.identifier, public: toWirePublic(out.public) };
      } finally {
        out.share.fill(0);
      }
    } finally {
      for (const p of parts) p.scalar.fill(0);
    }
  }

  /**
   * A RepairAuthorized enrols a new identifier (authority.ts effect 'repairEnrolled'): a kernel
   * holding the epoch records its verifying share, interpolated from the recorded ones, beside its
   * key package (EpochRecord.enrolled; kernel/repair.ts expectedVerifyingShare, which first checks that every recorded
   * verifying share and the group key lie on one polynomial). A package that fails that check is
   * left as it is: this kernel then helps no repair and signs with no enrolled participant.
   */
  private async enrolOps(e: Extract<Effect, { kind: 'repairEnrolled' }>): Promise<BatchOp[]> {
    const rec = await this.keyRecord(e.keyId);
    const ep = rec?.epochs[e.epoch];
    if (rec === undefined || ep === undefined) return [];
    const suite = suiteOf(rec.suite);
    const pub = withEnrolled(ep);
    if (pub.verifyingShares[e.identifier] !== undefined) return [];
    let Y: Uint8Array;
    try {
      Y = repair.expectedVerifyingShare(suite, pub, e.identifier).toBytes();
    } catch {
      return [];
    }
    ep.enrolled = { ...(ep.enrolled ?? {}), [e.identifier]: bytesToHex(Y) };
    return [{ type: 'put', key: K.key(e.keyId), value: json(rec) }];
  }

  /** Burns every nonce of the key up to the ledger's consumed counter (after a store restore). */
  private async reconcile(b: Body<'reconcile'>): Promise<ResponseBody> {
    if ((await this.keyRecord(b.keyId)) === undefined) throw new CustodyError('UNKNOWN_KEY', `this kernel holds no key ${b.keyId}`);
    const consumed = await this.consumedCounter(b.keyId);
    const target = Math.max(consumed, b.ledgerConsumedCounter);
    const last = K.nonce(b.keyId, target);
    const ops: BatchOp[] = [];
    for (const { key } of await this.o.store.list(K.nonces(b.keyId), limits.noncesOutstandingMax + 1)) {
      if (key > last) break;
      ops.push({ type: 'del', key });
    }
    const burned = ops.length;
    this.o.vault.counter?.raise(b.keyId, target);
    ops.push({ type: 'put', key: K.consumed(b.keyId), value: u64(target) });
    if (target >= (await this.o.store.getU64('meta/counter'))) ops.push({ type: 'put', key: 'meta/counter', value: u64(target + 1) });
    await this.o.store.write(ops);
    return { kind: 'reconcile', consumedCounter: target, burned };
  }

  /** Validates the signing set's commitment list (RFC 9591 §5.2 inputs) and finds ours in it. */
  private commitmentList(suite: Suite, pub: PublicKeyPackage, me: string, list: SigningCommitment[], mine: NonceRecord): NonceCommitments[] {
    const ids = list.map((c) => c.identifier);
    redeal.validateParticipants(suite, ids, 'signing set');
    if (ids.length < pub.signers.min || ids.length > pub.signers.max) throw new CustodyError('PAYLOAD_REJECTED', `signing set of ${ids.length} for a ${pub.signers.min}-of-${pub.signers.max} key`);
    for (const id of ids) if (pub.verifyingShares[id] === undefined) throw new CustodyError('PAYLOAD_REJECTED', `signer ${id} holds no share of this key epoch`);
    const own = list.find((c) => c.identifier === me);
    if (own === undefined) throw new CustodyError('PAYLOAD_REJECTED', 'this kernel is not in the signing set');
    if (bytesToHex(own.hiding) !== mine.hiding || bytesToHex(own.binding) !== mine.binding) {
      throw new CustodyError('BINDING_MISMATCH', 'the commitment listed for this kernel is not the presigned one named by the counter');
    }
    for (const c of list) {
      try {
        suite.parsePoint(c.hiding);
        suite.parsePoint(c.binding);
      } catch (e) {
        throw new CustodyError('PAYLOAD_REJECTED', `commitment of ${c.identifier}: ${(e as Error).message}`);
      }
    }
    return list.map((c) => ({ identifier: c.identifier, hiding: c.hiding, binding: c.binding }) as NonceCommitments);
  }

  /**
   * Installs a share produced by a trusted dealer (RFC 9591 Appendix C), for migrating an existing
   * key into custody. Not reachable over the socket: an operator runs it against a stopped
   * kernel's store. The share is checked against the public package before it is sealed.
   */
  importDealerShare(keyId: string, suiteName: SuiteName, identifier: string, pub: PublicKeyPackage, share: Uint8Array): Promise<void> {
    const run = this.tail.then(async () => {
      const suite = suiteOf(suiteName);
      if ((await this.keyRecord(keyId)) !== undefined) throw new CustodyError('REPLAY_OR_CONFLICT', `key ${keyId} already exists`);
      try {
        suite.frost.validateSecret({ identifier, signingShare: share } as FrostSecret, asFrostPublic(pub));
      } catch (e) {
        throw new CustodyError('PAYLOAD_REJECTED', `dealer share: ${(e as Error).message}`);
      }
      const rec: KeyRecord = { keyId, suite: suiteName, epochs: { 0: { identifier, public: toPublicJson(pub) } } };
      await this.o.store.write([
        { type: 'put', key: K.share(keyId, 0), value: this.o.vault.seal(share, K.share(keyId, 0)) },
        { type: 'put', key: K.key(keyId), value: json(rec) },
      ]);
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** Test seam for RFC 9591 Appendix E: the production nonce path with the vector's randomness. */
  presignWithRng(b: Body<'nonces'>, rng: Rng): Promise<ResponseBody> {
    const run = this.tail.then(() => this.nonces(b, rng));
    this.tail = run.catch(() => undefined);
    return run;
  }
}

