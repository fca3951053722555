/**
 * ScriptedCluster: builds a ledger log the way a real cluster would, one signed event at a time,
 * and applies each entry as it goes. Every key (approvers, node identities, the stand-in group key
 * of each threshold key) is derived from a label, so a script replays byte for byte.
 *
 * Used by the tests, the benchmark, the demo and the cluster simulator to produce valid histories
 * (and, by editing what it returns, invalid ones). Nothing here runs in a production node: the
 * group key stands in for what a FROST ceremony of the kernels would produce (FROST over Ed25519
 * yields an ordinary RFC 8032 signature, so a single Ed25519 key models it for the ledger). A
 * signing set's nonce commitments come from nonces the script knows, so its signature has the
 * FROST group commitment of that set as R (RFC 9591 §4.5, §5.3), as the ledger checks.
 */
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { bytesToNumberLE } from '@noble/curves/utils.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import type { ReasonCode } from '../proto/reasons.js';
import {
  type ApproverKey, type ApproverRoster, type DecisionAction, type DecisionBody, type GovernanceDecision, type NodeInfo,
  ed25519Sign, makeApproverKey, signDecision,
} from './decision.js';
import { type Act, type LedgerEntry, type LedgerEvent, type SignedStatement, type SigningSetMember, actCid, encodeEvent, signStatement, statementCid } from './events.js';
import { ed25519GroupCommitment, frostIdentifier } from './signing-set.js';
import { type ApplyResult, apply, keyReadyCid } from './apply.js';
import { type LedgerState, emptyState } from './state.js';
import { bytesEqual, toHex } from './encoding.js';
import { LEDGER_ASSETS } from './asset-table.js';
import { type Matchers, type PolicyDocument, type Rule, decodeDocument, encodeDocument } from './policy-engine/index.js';

export interface ScriptOptions {
  readonly clusterId?: string;
  readonly nodes?: number;
  readonly approvers?: number;
  readonly threshold?: number;
  readonly startMs?: number;
  readonly stepMs?: number;
  readonly policy?: PolicyDocument;
  /** Distinguishes the keys of two scripts (two clusters). */
  readonly label?: string;
}

export interface ScriptNode {
  readonly info: NodeInfo;
  readonly secretKey: Uint8Array;
}

/**
 * The scripted clusters' act policy: payments to two known destinations ('bc1-treasury' and
 * 'bc1-exchange', as `addressOf` writes them for each asset), up to 10,000 base units
 * automatically and up to 1,000,000 with two governors' approvals, while the key stays within
 * 5,000,000 an hour; everything else is denied (no rule matches).
 */
export function scenarioPolicy(addressOf: (label: string, asset: 'BTC' | 'SOL') => string = (label) => label): PolicyDocument {
  const none: Matchers = { initiators: null, keys: null, assets: null, kinds: null, destination: null, amount: null, windows: [], lifetime: [], hours: null, weekdays: null };
  const hourly = { per: 'key' as const, lengthMs: 3_600_000, maxAmount: 5_000_000n, maxCount: null };
  const rules = (['BTC', 'SOL'] as const).flatMap((asset): Rule[] => {
    const match = (max: bigint): Matchers => ({
      ...none, assets: [asset], amount: { min: null, max }, windows: [hourly],
      destination: { allow: [addressOf('bc1-treasury', asset), addressOf('bc1-exchange', asset)].sort(), ownKeys: false, deny: [] },
    });
    const id = asset.toLowerCase();
    return [
      { id: `${id}-small`, match: match(10_000n), action: { kind: 'ALLOW' } },
      { id: `${id}-approved`, match: match(1_000_000n), action: { kind: 'REQUIRE_APPROVAL', k: 2, group: 'governors', ttlMs: 3_600_000 } },
    ];
  });
  // Order: each asset's automatic rule before its approval rule (first match).
  const ordered = [...rules.filter((r) => r.id.endsWith('-small')), ...rules.filter((r) => r.id.endsWith('-approved'))];
  return decodeDocument(encodeDocument({ version: 1, approverGroups: [{ name: 'governors', members: ['approver-0', 'approver-1', 'approver-2'] }], initiatorGroups: [], rules: ordered }), LEDGER_ASSETS);
}

export const DEFAULT_POLICY: PolicyDocument = scenarioPolicy();

/** DEFAULT_POLICY without its hourly window (benchmarks and long histories that are not about rate limits). */
export const UNLIMITED_RATE_POLICY: PolicyDocument = {
  ...DEFAULT_POLICY,
  rules: DEFAULT_POLICY.rules.map((r) => ({ ...r, match: { ...r.match, windows: [] } })),
};

export function seedOf(label: string): Uint8Array {
  return sha256(new TextEncoder().encode(label));
}

export class ScriptedCluster {
  readonly clusterId: string;
  readonly nodes: ScriptNode[];
  readonly approvers: ApproverKey[];
  readonly roster: ApproverRoster;
  readonly policy: PolicyDocument;
  readonly stepMs: number;
  state: LedgerState = emptyState();
  readonly log: LedgerEntry[] = [];
  readonly results: ApplyResult[] = [];
  nowMs: number;
  private readonly label: string;

  constructor(o: ScriptOptions = {}) {
    this.label = o.label ?? 'script';
    this.clusterId = o.clusterId ?? 'cluster-1';
    this.stepMs = o.stepMs ?? 1000;
    this.nowMs = o.startMs ?? 1_700_000_000_000;
    this.policy = o.policy ?? DEFAULT_POLICY;
    const n = o.nodes ?? 3;
    const m = o.approvers ?? 3;
    this.nodes = Array.from({ length: n }, (_, i) => {
      const secretKey = seedOf(`${this.label}/node/${i}`);
      return { info: { id: `node-${i}`, identityKey: ed25519.getPublicKey(secretKey), passport: `passport-${i}-0` }, secretKey };
    });
    this.approvers = Array.from({ length: m }, (_, i) => makeApproverKey(`approver-${i}`, seedOf(`${this.label}/approver/${i}`)));
    this.roster = {
      // The last approver of a roster larger than its threshold also holds the security role.
      approvers: this.approvers.map((a, i) => ({ id: a.id, publicKey: a.publicKey, roles: i === m - 1 && m > (o.threshold ?? 2) ? ['governor', 'security'] : ['governor'] })),
      quorum: { threshold: o.threshold ?? 2, freezeThreshold: 1 },
    };
    this.keyring.push(...this.approvers);
  }

  /** Approver keys this script can sign with (the genesis roster's, plus any added). */
  readonly keyring: ApproverKey[] = [];

  get threshold(): number {
    return this.state.cluster?.governance.roster.quorum.threshold ?? this.roster.quorum.threshold;
  }

  /** Makes more approver keys available to defaultSigners (e.g. a roster a decision installs). */
  addKeys(keys: readonly ApproverKey[]): void {
    for (const k of keys) if (!this.keyring.some((x) => x.id === k.id)) this.keyring.push(k);
  }

  /** `n` (default: the quorum) governors of the roster in force that this script holds keys for. */
  defaultSigners(n = this.threshold): ApproverKey[] {
    const roster = this.state.cluster?.governance.roster ?? this.roster;
    const governors = roster.approvers.filter((a) => a.roles.includes('governor'));
    const others = roster.approvers.filter((a) => !a.roles.includes('governor'));
    return [...governors, ...others]
      .map((a) => this.keyring.find((k) => k.id === a.id && bytesEqual(k.publicKey, a.publicKey)))
      .filter((k): k is ApproverKey => k !== undefined)
      .slice(0, n);
  }

  node(id: string): ScriptNode {
    const n = this.nodes.find((x) => x.info.id === id);
    if (n === undefined) throw new Error(`no scripted node ${id}`);
    return n;
  }

  /** Appends an entry (an event or raw bytes) stamped at the script clock and applies it. */
  entry(event: LedgerEvent | Uint8Array, stampMs?: number): { entry: LedgerEntry; result: ApplyResult } {
    const entry: LedgerEntry = { index: this.state.index + 1, stampMs: stampMs ?? this.nowMs, event: event instanceof Uint8Array ? event : encodeEvent(event) };
    this.nowMs += this.stepMs;
    const r = apply(this.state, entry);
    this.state = r.state;
    this.log.push(entry);
    this.results.push(r.result);
    return { entry, result: r.result };
  }

  genesisEvent(): LedgerEvent {
    return { type: 'ClusterGenesis', clusterId: this.clusterId, nodes: this.nodes.map((n) => n.info), roster: this.roster, policy: this.policy };
  }

  genesis(): ApplyResult {
    return this.entry(this.genesisEvent()).result;
  }

  /** A decision bound to the governance head and epoch in force now, valid for an hour. */
  decisionBody(action: DecisionAction, over: Partial<DecisionBody> = {}): DecisionBody {
    const g = this.state.cluster?.governance;
    return {
      clusterId: this.clusterId, governanceEpoch: g?.epoch ?? 0, parentCid: g?.headCid ?? new Uint8Array(32),
      action, issuedMs: this.nowMs, expiresMs: this.nowMs + 3_600_000, ...over,
    };
  }

  decision(action: DecisionAction, signers?: readonly ApproverKey[], over: Partial<DecisionBody> = {}): GovernanceDecision {
    return signDecision(this.decisionBody(action, over), signers ?? this.defaultSigners());
  }

  decide(action: DecisionAction, signers?: readonly ApproverKey[], over: Partial<DecisionBody> = {}): ApplyResult {
    return this.entry({ type: 'GovernanceDecision', decision: this.decision(action, signers, over) }).result;
  }

  statement(nodeId: string, kind: string, slot: SignedStatement['slot'], content: SignedStatement['content']): SignedStatement {
    return signStatement({ clusterId: this.clusterId, nodeId, kind, slot, content }, this.node(nodeId).secretKey);
  }

  /** The stand-in group key of a threshold key: fixed per key id, kept by refresh and reshare. */
  groupSecret(keyId: string): Uint8Array {
    return seedOf(`${this.label}/group/${keyId}`);
  }

  groupKey(keyId: string): Uint8Array {
    let pk = this.groupKeys.get(keyId);
    if (pk === undefined) {
      pk = ed25519.getPublicKey(this.groupSecret(keyId));
      this.groupKeys.set(keyId, pk);
    }
    return pk;
  }

  private readonly groupKeys = new Map<string, Uint8Array>();

  round1(nodeId: string, keyId: string, keyEpoch: number): ApplyResult {
    const round1Cid = seedOf(`${this.label}/round1/${keyId}/${keyEpoch}/${nodeId}`);
    return this.entry({ type: 'DkgRound1Published', statement: this.statement(nodeId, 'DkgRound1Published', { keyId, keyEpoch }, { round1Cid }) }).result;
  }

  readyStatement(nodeId: string, keyId: string, keyEpoch: number, groupKey?: Uint8Array): SignedStatement {
    return this.statement(nodeId, 'KeyReady', { keyId, keyEpoch }, { groupKey: groupKey ?? this.groupKey(keyId) });
  }

  keyReady(nodeId: string, keyId: string, keyEpoch: number, groupKey?: Uint8Array): ApplyResult {
    return this.entry({ type: 'KeyReady', statement: this.readyStatement(nodeId, keyId, keyEpoch, groupKey) }).result;
  }

  /** key_ready_cid computed from the KeyReady statements this script would sign. */
  keyReadyCidOf(keyId: string, keyEpoch: number, participants: readonly string[]): Uint8Array {
    return keyReadyCid(keyId, keyEpoch, this.groupKey(keyId), participants.map((p) => statementCid(this.readyStatement(p, keyId, keyEpoch))));
  }

  participants(keyId: string, keyEpoch: number): readonly string[] {
    return this.state.cluster?.keys[keyId]?.epochs[String(keyEpoch)]?.participants ?? [];
  }

  publishKeyObject(keyId: string, keyEpoch: number): ApplyResult {
    return this.entry({ type: 'KeyObjectPublished', keyId, keyEpoch, keyReadyCid: this.keyReadyCidOf(keyId, keyEpoch, this.participants(keyId, keyEpoch)) }).result;
  }

  activate(keyId: string, keyEpoch: number, signers?: readonly ApproverKey[]): ApplyResult {
    return this.decide({ kind: 'KeyActivated', keyId, keyEpoch, keyReadyCid: this.keyReadyCidOf(keyId, keyEpoch, this.participants(keyId, keyEpoch)) }, signers);
  }

  /** Runs both ceremony rounds for every participant of an authorized epoch, then publishes. */
  runCeremony(keyId: string, keyEpoch: number): ApplyResult[] {
    const ps = this.participants(keyId, keyEpoch);
    return [...ps.map((p) => this.round1(p, keyId, keyEpoch)), ...ps.map((p) => this.keyReady(p, keyId, keyEpoch)), this.publishKeyObject(keyId, keyEpoch)];
  }

  /** DkgAuthorized, both rounds, KeyObjectPublished and KeyActivated: a key ready to sign at epoch 0. */
  createKey(keyId: string, participants?: readonly string[], threshold = 2): ApplyResult[] {
    const ps = participants ?? this.nodes.map((n) => n.info.id);
    return [
      this.decide({ kind: 'DkgAuthorized', keyId, scheme: 'ed25519', threshold, participants: ps }),
      ...this.runCeremony(keyId, 0),
      this.activate(keyId, 0),
    ];
  }

  /** KeyRefreshed for the next epoch, the ceremony, and activation of the new epoch. */
  refreshKey(keyId: string): ApplyResult[] {
    const k = this.state.cluster?.keys[keyId];
    const epoch = k === undefined ? 1 : Object.keys(k.epochs).length;
    return [this.decide({ kind: 'KeyRefreshed', keyId, keyEpoch: epoch }), ...this.runCeremony(keyId, epoch), this.activate(keyId, epoch)];
  }

  act(keyId: string, over: Partial<Act> = {}): Act {
    const k = this.state.cluster?.keys[keyId];
    const base: Act = {
      keyId, keyEpoch: k?.activeEpoch ?? 0, asset: 'BTC', amount: 1_000n, destination: 'bc1-treasury',
      displayHash: seedOf(`display/${keyId}/${this.log.length}`), messageDigest: seedOf(`digest/${keyId}/${this.log.length}`),
    };
    return { ...base, ...over };
  }

  /** An ActApproved decision for an act (its parent is the act's cid). */
  approveAct(opId: string, act: Act, signers?: readonly ApproverKey[]): GovernanceDecision {
    const aCid = actCid(act);
    return this.decision({ kind: 'ActApproved', opId, actCid: aCid }, signers, { parentCid: aCid });
  }

  proposer(nodeId = 'node-0'): { nodeId: string; passport: string } {
    const rec = this.state.cluster?.nodes[nodeId];
    return { nodeId, passport: rec?.passport ?? this.node(nodeId).info.passport };
  }

  submit(opId: string, act: Act, approval: GovernanceDecision | null = null, nodeId = 'node-0'): ApplyResult {
    return this.entry({ type: 'ActSubmitted', opId, act, approval, ...this.proposer(nodeId) }).result;
  }

  issuePermit(opId: string, nodeId = 'node-0'): ApplyResult {
    return this.entry({ type: 'ActPermitIssued', opId, ...this.proposer(nodeId) }).result;
  }

  /** Nonce scalars (hiding d, binding e) of every commitment this script made, by hex(D). */
  private readonly nonces = new Map<string, { d: bigint; e: bigint }>();

  /**
   * A signing set for the op's permit: the first `threshold` active participants of its key epoch
   * (or `signers`), each with fresh commitments D = d*G, E = e*G from nonces the script keeps.
   */
  signingSet(opId: string, signers?: readonly string[]): SigningSetMember[] {
    const op = this.state.cluster?.ops[opId];
    const ep = op === undefined ? undefined : this.state.cluster?.keys[op.act.keyId]?.epochs[String(op.act.keyEpoch)];
    if (op === undefined || ep === undefined) return [];
    const nodes = this.state.cluster?.nodes ?? {};
    const usable = ep.participants.filter((p) => nodes[p]?.status === 'active' && nodes[p]?.equivocated === false);
    const chosen = signers ?? (usable.length >= ep.threshold ? usable : ep.participants).slice(0, ep.threshold);
    const members = chosen.map((nodeId) => {
      const at = ep.participants.indexOf(nodeId);
      const scalar = (x: string): bigint => ed25519.Point.Fn.create(bytesToNumberLE(seedOf(`${this.label}/nonce/${opId}/${this.log.length}/${nodeId}/${x}`))) || 1n;
      const n = { d: scalar('hiding'), e: scalar('binding') };
      const hiding = ed25519.Point.BASE.multiply(n.d).toBytes();
      this.nonces.set(toHex(hiding), n);
      return { nodeId, identifier: frostIdentifier('ed25519', at + 1), hiding, binding: ed25519.Point.BASE.multiply(n.e).toBytes(), counter: this.log.length + 1 };
    });
    return members;
  }

  fixSigningSet(opId: string, over: { commitments?: readonly SigningSetMember[]; permitId?: Uint8Array; nodeId?: string } = {}): ApplyResult {
    const op = this.state.cluster?.ops[opId];
    const permitId = over.permitId ?? op?.permitId ?? new Uint8Array(32);
    return this.entry({ type: 'ActSigningSetFixed', opId, permitId, commitments: over.commitments ?? this.signingSet(opId), ...this.proposer(over.nodeId) }).result;
  }

  /**
   * The signature a FROST signing over the op's fixed set would produce: R is the set's group
   * commitment and z = r + c*x with r the sum of d_i + rho_i*e_i (RFC 9591 §5.2/§5.3), x the
   * stand-in group secret. Null when the set is not one this script made.
   */
  frostSignature(opId: string): Uint8Array | null {
    const op = this.state.cluster?.ops[opId];
    if (op === undefined || op.signingSet === null) return null;
    const Fn = ed25519.Point.Fn;
    const list = op.signingSet.commitments;
    const gk = this.groupKey(op.act.keyId);
    const { R, bindingFactors } = ed25519GroupCommitment(gk, op.act.messageDigest, list);
    let r = 0n;
    for (const [i, m] of list.entries()) {
      const n = this.nonces.get(toHex(m.hiding));
      if (n === undefined || !bytesEqual(ed25519.Point.BASE.multiply(n.e).toBytes(), m.binding)) return null;
      r = Fn.add(r, Fn.add(n.d, Fn.mul(n.e, bindingFactors[i] as bigint)));
    }
    const c = Fn.create(bytesToNumberLE(sha512(new Uint8Array([...R, ...gk, ...op.act.messageDigest]))));
    const x = ed25519.utils.getExtendedPublicKey(this.groupSecret(op.act.keyId)).scalar;
    return new Uint8Array([...R, ...Fn.toBytes(Fn.add(r, Fn.mul(c, x)))]);
  }

  /**
   * Executes with the op's own permit and a signature by the key's group key over the act digest,
   * fixing a signing set first if the op has none (unless `fixSet` is false).
   */
  execute(opId: string, over: { permitId?: Uint8Array; signature?: Uint8Array; nodeId?: string; fixSet?: boolean } = {}): ApplyResult {
    let op = this.state.cluster?.ops[opId];
    if (op !== undefined && op.state === 'PendingRemote' && op.signingSet === null && over.fixSet !== false) {
      this.fixSigningSet(opId, over.nodeId === undefined ? {} : { nodeId: over.nodeId });
      op = this.state.cluster?.ops[opId];
    }
    const permitId = over.permitId ?? op?.permitId ?? new Uint8Array(32);
    const signature = over.signature ?? (op === undefined ? new Uint8Array(64) : this.frostSignature(opId) ?? ed25519Sign(op.act.messageDigest, this.groupSecret(op.act.keyId)));
    return this.entry({ type: 'ActExecuted', opId, permitId, signature, ...this.proposer(over.nodeId) }).result;
  }

  publish(opId: string, nodeId = 'node-0'): ApplyResult {
    return this.entry({ type: 'ActPublished', opId, ...this.proposer(nodeId) }).result;
  }

  settle(opId: string, confirmation = 'txid-1', nodeId = 'node-0'): ApplyResult {
    return this.entry({ type: 'ActSettled', opId, confirmation, ...this.proposer(nodeId) }).result;
  }

  abort(opId: string, reason: ReasonCode, nodeId = 'node-0'): ApplyResult {
    return this.entry({ type: 'ActAborted', opId, reason, ...this.proposer(nodeId) }).result;
  }

  fence(reporter: string, nodeId: string, passport?: string, reason = 'two leaders seen for one term'): ApplyResult {
    const target = passport ?? this.proposer(nodeId).passport;
    return this.entry({ type: 'FencingRecord', statement: this.statement(reporter, 'FencingRecord', { nodeId, passport: target }, { reason }) }).result;
  }
}
