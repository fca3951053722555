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
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import { Transaction, OutScript, Address as BtcAddress } from '@scure/btc-signer';
import { getAddressDecoder, getAddressEncoder } from '@solana/addresses';
import type { ReasonCode } from '../proto/reasons.js';
import {
  type ApproverKey, type ApproverRoster, type DecisionAction, type DecisionBody, type GovernanceDecision, type KeyScheme, type NodeInfo,
  ed25519Sign, makeApproverKey, signDecision,
} from './decision.js';
import { isProposed, signProposed } from './proposer-sig.js';
import { type Act, type LedgerEntry, type LedgerEvent, type SignedStatement, type SigningSetMember, actCid, encodeEvent, listFor, signStatement, statementCid } from './events.js';
import { ledger as ledgerLimits, tx as txLimits } from '../proto/limits.js';
import { assetTable } from './admission.js';
import { deriveActFields } from './tx/act.js';
import type { KeyContext, Network, TxFacts, TxKind } from './tx/types.js';
import { keyContextOf } from './state.js';
import { ed25519GroupCommitment, frostIdentifier } from './signing-set.js';
import { type ApplyResult, apply, denialRuleDigest, keyReadyCid } from './apply.js';
import { type ClusterState, type LedgerState, emptyState } from './state.js';
import { epochSigners } from './signers.js';
import { bytesEqual, toHex } from './encoding.js';
import { LEDGER_ASSETS } from './asset-table.js';
import { type ActRequestBody, type SignedActRequest, REQUEST_ID_RE, signActRequest } from './act-request.js';
import { type Matchers, type PolicyDocument, type Rule, decodeDocument, encodeDocument } from './policy-engine/index.js';

export interface ScriptOptions {
  readonly clusterId?: string;
  readonly nodes?: number;
  readonly approvers?: number;
  readonly threshold?: number;
  /** Signers (governor or security) an EmergencyFreeze or NodeFenced needs (default 1). */
  readonly freezeThreshold?: number;
  readonly startMs?: number;
  readonly stepMs?: number;
  readonly policy?: PolicyDocument;
  /** Distinguishes the keys of two scripts (two clusters). */
  readonly label?: string;
  /** Roster ids holding the custodian role at genesis (default custodian-1, custodian-2, i1, cara, dana). */
  readonly custodians?: readonly string[];
}

/**
 * The act id (= request id, 32 lowercase hex) a script uses for a readable label: the label
 * itself when it already is one, else the first 16 bytes of its SHA-256. Every method of
 * ScriptedCluster that takes an act id maps it this way, so scripts and tests name acts by label.
 */
export function rid(label: string): string {
  return REQUEST_ID_RE.test(label) ? label : toHex(sha256(new TextEncoder().encode(`custody-ledger/script-act/${label}`))).slice(0, 32);
}

export interface ScriptNode {
  readonly info: NodeInfo;
  readonly secretKey: Uint8Array;
}

export function seedOf(label: string): Uint8Array {
  return sha256(new TextEncoder().encode(label));
}

// ------------------------------------------------------------------------------------------------
// Real transactions for scripted acts
// ------------------------------------------------------------------------------------------------

const REGTEST = { bech32: 'bcrt', pubKeyHash: 0x6f, scriptHash: 0xc4, wif: 0xef };

/** A Solana address derived from a label (base58 of an Ed25519 public key). */
export function solanaAddressOf(label: string): string {
  return getAddressDecoder().decode(ed25519.getPublicKey(seedOf(`address/${label}`)));
}

/** A regtest Taproot (bech32m) address derived from a label. */
export function regtestAddressOf(label: string): string {
  const x = secp256k1.Point.BASE.multiply(secp256k1.Point.Fn.create(bytesToNumberLE(seedOf(`address/${label}`))) || 1n).toBytes(true).slice(1);
  return BtcAddress(REGTEST).encode(OutScript.decode(OutScript.encode({ type: 'tr', pubkey: x })));
}

/** The address of a label on a network (what a scripted act pays to). */
export function addressOf(label: string, network: Network): string {
  return network.startsWith('bitcoin') ? regtestAddressOf(label) : solanaAddressOf(label);
}

/** `destination` itself when it is an address of the network, else the address of that label. */
export function resolveDestination(destination: string, network: Network): string {
  try {
    if (network.startsWith('bitcoin')) BtcAddress(REGTEST).decode(destination);
    else getAddressEncoder().encode(destination as Parameters<ReturnType<typeof getAddressEncoder>['encode']>[0]);
    return destination;
  } catch {
    return addressOf(destination, network);
  }
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

export const DEFAULT_POLICY: PolicyDocument = scenarioPolicy((label, asset) => asset === 'SOL' ? solanaAddressOf(label) : regtestAddressOf(label));

/** DEFAULT_POLICY without its hourly window (benchmarks and long histories that are not about rate limits). */
export const UNLIMITED_RATE_POLICY: PolicyDocument = {
  ...DEFAULT_POLICY,
  rules: DEFAULT_POLICY.rules.map((r) => ({ ...r, match: { ...r.match, windows: [] } })),
};

function compactU16(n: number): number[] {
  const out: number[] = [];
  let v = n;
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if (v === 0) { out.push(b); return out; }
    out.push(b | 0x80);
  }
}

/**
 * A legacy Solana message (the bytes the fee payer signs) in which `payer` (32-byte Ed25519 key)
 * transfers `lamports` to each destination with System Transfer instructions: header, account
 * keys (signer, writable destinations, the System program), recent blockhash, instructions.
 */
export function solanaTransferMessage(payer: Uint8Array, transfers: readonly { to: string; lamports: bigint }[], blockhash: Uint8Array = seedOf('blockhash')): Uint8Array {
  const enc = getAddressEncoder();
  const dests: Uint8Array[] = [];
  for (const t of transfers) {
    const b = Uint8Array.from(enc.encode(t.to as Parameters<typeof enc.encode>[0]));
    if (!dests.some((d) => bytesEqual(d, b))) dests.push(b);
  }
  const system = new Uint8Array(32);
  const keys = [payer, ...dests, system];
  const out: number[] = [1, 0, 1, ...compactU16(keys.length)];
  for (const k of keys) out.push(...k);
  out.push(...blockhash, ...compactU16(transfers.length));
  for (const t of transfers) {
    const b = Uint8Array.from(enc.encode(t.to as Parameters<typeof enc.encode>[0]));
    const at = 1 + dests.findIndex((d) => bytesEqual(d, b));
    const data = new Uint8Array(12);
    const v = new DataView(data.buffer);
    v.setUint32(0, 2, true);
    v.setBigUint64(4, t.lamports, true);
    out.push(keys.length - 1, ...compactU16(2), 0, at, ...compactU16(data.length), ...data);
  }
  return Uint8Array.from(out);
}

/** A Taproot key as the scripted cluster holds it: the BIP 86 internal key P and the output key Q's secret. */
export interface TaprootStandIn {
  readonly internal: Uint8Array;
  readonly outputSecret: Uint8Array;
  /** Q compressed (33 bytes): the group key the ledger records. */
  readonly groupKey: Uint8Array;
}

export function taprootStandIn(seed: Uint8Array): TaprootStandIn {
  const Fn = secp256k1.Point.Fn;
  let d = Fn.create(bytesToNumberLE(seed)) || 1n;
  let P = secp256k1.Point.BASE.multiply(d);
  if (P.y % 2n === 1n) { d = Fn.neg(d); P = P.negate(); }
  const internal = P.toBytes(true).slice(1);
  const t = Fn.fromBytes(schnorr.utils.taggedHash('TapTweak', internal));
  const Q = P.add(secp256k1.Point.BASE.multiply(t));
  return { internal, outputSecret: Fn.toBytes(Fn.add(d, t)), groupKey: Q.toBytes(true) };
}

/**
 * A PSBT (v0) spending `inputs` Taproot key-path outputs of the key Q (x-only `xOnly`), paying
 * `amount` sat to `to` and the rest, less `fee`, back to the key (change) when anything is left.
 */
export function taprootPsbt(xOnly: Uint8Array, o: { to: string; amount: bigint; inputs: readonly bigint[]; fee?: bigint; label?: string; internal?: Uint8Array }): Uint8Array {
  const script = OutScript.encode({ type: 'tr', pubkey: xOnly });
  const tx = new Transaction({ version: 2 });
  o.inputs.forEach((amount, i) => {
    tx.addInput({ txid: sha256(new TextEncoder().encode(`prev/${o.label ?? 'psbt'}/${i}`)), index: i, witnessUtxo: { script, amount }, ...(o.internal ? { tapInternalKey: o.internal } : {}) });
  });
  tx.addOutputAddress(o.to, o.amount, REGTEST);
  const change = o.inputs.reduce((a, b) => a + b, 0n) - o.amount - (o.fee ?? 1_000n);
  if (change > 0n) tx.addOutput({ script, amount: change });
  return tx.toPSBT(0);
}

/** What `ScriptedCluster.act` builds: the transaction and who asks for it. */
export interface ActSpec {
  /** Default: 'solana' for a Solana key, 'btc-psbt' for a Bitcoin key, 'raw' otherwise. */
  readonly kind?: TxKind;
  /** In the asset's smallest unit (default 1000). */
  readonly amount?: bigint;
  /**
   * What the transaction pays: an address of the key's network, or a label whose address
   * (addressOf) it pays. Default 'bc1-treasury', which DEFAULT_POLICY allows with 'bc1-exchange'.
   */
  readonly destination?: string;
  /** Amounts of the PSBT's inputs (default two inputs of 60,000 sat). */
  readonly inputs?: readonly bigint[];
  readonly keyEpoch?: number;
  readonly initiator?: string;
  /** The transaction bytes as they are, instead of building one. */
  readonly tx?: Uint8Array;
}

export class ScriptedCluster {
  readonly clusterId: string;
  readonly nodes: ScriptNode[];
  readonly approvers: ApproverKey[];
  /** Custodian keys (role `custodian` in the genesis roster): they sign the scripted acts' requests. */
  readonly custodians: ApproverKey[];
  readonly roster: ApproverRoster;
  readonly policy: PolicyDocument;
  readonly stepMs: number;
  state: LedgerState = emptyState();
  readonly log: LedgerEntry[] = [];
  readonly results: ApplyResult[] = [];
  nowMs: number;
  readonly label: string;

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
    this.custodians = (o.custodians ?? ['custodian-1', 'custodian-2', 'i1', 'cara', 'dana']).map((id) => makeApproverKey(id, seedOf(`${this.label}/custodian/${id}`)));
    this.roster = {
      // The last approver of a roster larger than its threshold also holds the security role.
      approvers: [
        ...this.approvers.map((a, i) => ({ id: a.id, publicKey: a.publicKey, roles: i === m - 1 && m > (o.threshold ?? 2) ? ['governor', 'security'] as const : ['governor'] as const })),
        ...this.custodians.map((k) => ({ id: k.id, publicKey: k.publicKey, roles: ['custodian'] as const })),
      ],
      quorum: { threshold: o.threshold ?? 2, freezeThreshold: o.freezeThreshold ?? 1 },
    };
    this.keyring.push(...this.approvers, ...this.custodians);
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

  /**
   * Whether time that passes in the script is ticked into the ledger as a running leader would
   * (ClockTick entries, each at most ledger.stampAheadMs after the last, before an entry stamped
   * further ahead). Off, an entry stamped too far ahead is applied as it is (and refused STAMP_AHEAD).
   */
  autoTick = true;

  /** Appends an entry (an event or raw bytes) stamped at the script clock and applies it. */
  entry(event: LedgerEvent | Uint8Array, stampMs?: number): { entry: LedgerEntry; result: ApplyResult } {
    const at = stampMs ?? this.nowMs;
    if (this.autoTick && this.state.cluster !== null) {
      const ticker = Object.values(this.state.cluster.nodes).find((n) => n.status === 'active') ?? this.nodes[0]!.info;
      const now = this.nowMs;
      // Through entry() itself (subclasses see every entry); script time is not moved by ticks.
      while (at > this.state.clockMs + ledgerLimits.stampAheadMs) this.entry({ type: 'ClockTick', nodeId: ticker.id, passport: ticker.passport }, this.state.clockMs + ledgerLimits.stampAheadMs);
      this.nowMs = now;
    }
    const entry: LedgerEntry = { index: this.state.index + 1, stampMs: at, event: event instanceof Uint8Array ? event : encodeEvent(this.signed(event)) };
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
      pk = this.schemeOf(keyId) === 'ed25519' ? ed25519.getPublicKey(this.groupSecret(keyId)) : taprootStandIn(this.groupSecret(keyId)).groupKey;
      this.groupKeys.set(keyId, pk);
    }
    return pk;
  }

  private readonly groupKeys = new Map<string, Uint8Array>();
  private readonly schemes = new Map<string, KeyScheme>();

  /** The scheme of a key: as the ledger records it, else as createKey was asked. */
  schemeOf(keyId: string): KeyScheme {
    return this.state.cluster?.keys[keyId]?.scheme ?? this.schemes.get(keyId) ?? 'ed25519';
  }

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

  /**
   * DkgAuthorized, both rounds, KeyObjectPublished and KeyActivated: a key ready to sign at epoch 0.
   * Ed25519 keys default to solana-devnet, Taproot keys to bitcoin-regtest.
   */
  createKey(keyId: string, participants?: readonly string[], threshold = 2, o: { scheme?: KeyScheme; network?: Network } = {}): ApplyResult[] {
    const ps = participants ?? this.nodes.map((n) => n.info.id);
    const scheme = o.scheme ?? 'ed25519';
    this.schemes.set(keyId, scheme);
    const network = o.network ?? (scheme === 'ed25519' ? 'solana-devnet' : scheme === 'taproot' ? 'bitcoin-regtest' : 'none');
    return [
      this.decide({ kind: 'DkgAuthorized', keyId, scheme, network, threshold, participants: ps }),
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

  /** The context the ledger parses this key's transactions against (as held now). */
  keyContext(keyId: string): KeyContext {
    const c = this.state.cluster;
    const k = c === null ? null : keyContextOf(c, keyId);
    return k ?? { keyId, scheme: this.schemeOf(keyId), groupKey: this.groupKey(keyId), network: this.schemeOf(keyId) === 'ed25519' ? 'solana-devnet' : 'bitcoin-regtest' };
  }

  /** The unsigned transaction of an act of `keyId` as `spec` asks. */
  transaction(keyId: string, spec: ActSpec = {}): { kind: TxKind; tx: Uint8Array } {
    const key = this.keyContext(keyId);
    const kind: TxKind = spec.kind ?? (key.network.startsWith('solana') ? 'solana' : key.network.startsWith('bitcoin') ? 'btc-psbt' : 'raw');
    if (spec.tx !== undefined) return { kind, tx: spec.tx };
    const amount = spec.amount ?? 1_000n;
    const to = resolveDestination(spec.destination ?? 'bc1-treasury', key.network);
    switch (kind) {
      case 'solana':
        return { kind, tx: solanaTransferMessage(key.groupKey, [{ to, lamports: amount }], seedOf(`blockhash/${this.label}/${this.log.length}`)) };
      case 'btc-psbt':
        return { kind, tx: taprootPsbt(key.groupKey.slice(1), { to, amount, inputs: spec.inputs ?? [60_000n + amount, 60_000n], label: `${this.label}/${this.log.length}` }) };
      case 'raw':
        return { kind, tx: new TextEncoder().encode(`attestation ${this.label} ${this.log.length} ${amount}`) };
    }
  }

  /** The facts of an act's transaction, as the ledger derives them now (throws the parse's refusal). */
  facts(act: Pick<Act, 'keyId' | 'kind' | 'tx'>): TxFacts {
    const c = this.state.cluster;
    if (c === null) throw new Error('no cluster yet');
    return deriveActFields(act.kind, act.tx, this.keyContext(act.keyId), assetTable(c)).facts;
  }

  /**
   * An act over a real transaction built from `spec`, its fields derived as a submitting node
   * derives them; `forge` then overrides any field (an attacker's act). A transaction that does
   * not parse gets placeholder fields, so the ledger's refusal of it can be tested.
   */
  act(keyId: string, spec: ActSpec = {}, forge: Partial<Act> = {}): Act {
    const k = this.state.cluster?.keys[keyId];
    const { kind, tx } = this.transaction(keyId, spec);
    let fields: Pick<Act, 'asset' | 'amount' | 'destination' | 'displayHash' | 'messageDigest'>;
    try {
      const c = this.state.cluster;
      if (c === null) throw new Error('no cluster yet');
      fields = deriveActFields(kind, tx, this.keyContext(keyId), assetTable(c)).fields;
    } catch {
      fields = { asset: 'SOL', amount: spec.amount ?? 1_000n, destination: spec.destination ?? '', displayHash: seedOf(`display/${keyId}/${this.log.length}`), messageDigest: seedOf(`digest/${keyId}/${this.log.length}`) };
    }
    const base: Act = { keyId, keyEpoch: spec.keyEpoch ?? k?.activeEpoch ?? 0, initiator: spec.initiator ?? 'custodian-1', kind, tx, ...fields };
    return { ...base, ...forge };
  }

  /** An ActApproved decision for an act (its parent is the act's cid). */
  approveAct(label: string, act: Act, signers?: readonly ApproverKey[]): GovernanceDecision {
    const opId = rid(label);
    const aCid = actCid(act);
    return this.decision({ kind: 'ActApproved', opId, actCid: aCid, displayHash: act.displayHash }, signers, { parentCid: aCid });
  }

  /**
   * The event as its proposer would propose it: an event in a scripted node's name and not yet
   * signed is signed with that node's identity key (ledger/proposer-sig.ts), as the node's ledger
   * port does. Anything else (already signed, another node's name, not a proposed event) is
   * returned as it is, so a script can still append what a hostile host would.
   */
  signed<E extends LedgerEvent>(event: E): E {
    if (!isProposed(event) || event.sig !== undefined) return event;
    const n = this.nodes.find((x) => x.info.id === event.nodeId);
    return n === undefined ? event : signProposed(this.clusterId, event, n.secretKey) as E;
  }

  proposer(nodeId = 'node-0'): { nodeId: string; passport: string } {
    const rec = this.state.cluster?.nodes[nodeId];
    return { nodeId, passport: rec?.passport ?? this.node(nodeId).info.passport };
  }

  /**
   * The request body a custodian signs for `act` under act id `label`, issued at the script clock
   * (the stamp the next entry gets); `over` changes any field (an attacker's request).
   */
  requestBody(label: string, act: Act, over: Partial<ActRequestBody> = {}): ActRequestBody {
    return {
      clusterId: this.clusterId, custodian: act.initiator, requestId: rid(label), issuedMs: this.nowMs,
      keyId: act.keyId, keyEpoch: act.keyEpoch, kind: act.kind, tx: act.tx, declared: { asset: '', amount: '', destination: '' }, ...over,
    };
  }

  /** The key this script holds for a roster id (custodian or approver), or one no roster names. */
  keyOf(id: string): ApproverKey {
    return this.keyring.find((k) => k.id === id) ?? makeApproverKey(id, seedOf(`${this.label}/stranger/${id}`));
  }

  /** `act`'s request signed by its initiator's key (as the custodian signs it with `custody admin act submit`). */
  request(label: string, act: Act, over: Partial<ActRequestBody> = {}, signer?: ApproverKey): SignedActRequest {
    const body = this.requestBody(label, act, over);
    return signActRequest(body, (signer ?? this.keyOf(body.custodian)).secretKey);
  }

  /** The request `submit` signed for this act id and act (a resubmission carries the same signed request). */
  private readonly requests = new Map<string, SignedActRequest>();

  /** ActSubmitted for `act` under act id rid(label), with its initiator's signed request unless `request` is given (null: none). */
  submit(label: string, act: Act, approval: GovernanceDecision | null = null, nodeId = 'node-0', request?: SignedActRequest | null): ApplyResult {
    const opId = rid(label);
    const memo = `${opId}/${toHex(actCid(act))}`;
    const r = request === undefined ? (this.requests.get(memo) ?? this.request(label, act)) : request;
    if (r !== null) this.requests.set(memo, r);
    return this.entry({ type: 'ActSubmitted', opId, act, approval, request: r, ...this.proposer(nodeId) }).result;
  }

  issuePermit(label: string, nodeId = 'node-0'): ApplyResult {
    const opId = rid(label);
    return this.entry({ type: 'ActPermitIssued', opId, ...this.proposer(nodeId) }).result;
  }

  /** Nonce scalars (hiding d, binding e) of every commitment this script made, by hex(D). */
  private readonly nonces = new Map<string, { d: bigint; e: bigint }>();

  /** The messages the key signs for an act (its transaction parsed as the ledger parses it). */
  messagesOf(act: Act): readonly Uint8Array[] {
    try {
      return this.facts(act).messages;
    } catch {
      return [act.messageDigest];
    }
  }

  /**
   * A signing set for the op's permit: the first `threshold` active participants of its key epoch
   * (or `signers`), each with fresh commitments D = d*G, E = e*G for every message of the act
   * (ascending counters) from nonces the script keeps.
   */
  signingSet(label: string, signers?: readonly string[]): SigningSetMember[] {
    const opId = rid(label);
    const op = this.state.cluster?.ops[opId];
    const ep = op === undefined ? undefined : this.state.cluster?.keys[op.act.keyId]?.epochs[String(op.act.keyEpoch)];
    if (op === undefined || ep === undefined) return [];
    const scheme = this.schemeOf(op.act.keyId);
    const nodes = this.state.cluster?.nodes ?? {};
    const usable = ep.participants.filter((p) => nodes[p]?.status === 'active' && nodes[p]?.equivocated === false);
    const chosen = signers ?? (usable.length >= ep.threshold ? usable : ep.participants).slice(0, ep.threshold);
    const count = this.messagesOf(op.act).length;
    const holders = epochSigners(this.state.cluster as ClusterState, scheme, op.act.keyId, ep);
    return chosen.map((nodeId) => {
      const at = ep.participants.indexOf(nodeId);
      const holder = holders.find((h) => h.nodeId === nodeId);
      const nonces = Array.from({ length: count }, (_, i) => {
        const label = (x: string): Uint8Array => seedOf(`${this.label}/nonce/${opId}/${this.log.length}/${nodeId}/${i}/${x}`);
        if (scheme !== 'ed25519') {
          const P = (x: string): Uint8Array => secp256k1.Point.BASE.multiply(secp256k1.Point.Fn.create(bytesToNumberLE(label(x))) || 1n).toBytes(true);
          return { counter: this.log.length * txLimits.messagesPerActMax + i + 1, hiding: P('hiding'), binding: P('binding') };
        }
        const scalar = (x: string): bigint => ed25519.Point.Fn.create(bytesToNumberLE(label(x))) || 1n;
        const n = { d: scalar('hiding'), e: scalar('binding') };
        const hiding = ed25519.Point.BASE.multiply(n.d).toBytes();
        this.nonces.set(toHex(hiding), n);
        return { counter: this.log.length * txLimits.messagesPerActMax + i + 1, hiding, binding: ed25519.Point.BASE.multiply(n.e).toBytes() };
      });
      return { nodeId, identifier: holder?.identifier ?? frostIdentifier(scheme, at + 1), nonces };
    });
  }

  fixSigningSet(label: string, over: { commitments?: readonly SigningSetMember[]; permitId?: Uint8Array; nodeId?: string } = {}): ApplyResult {
    const opId = rid(label);
    const op = this.state.cluster?.ops[opId];
    const permitId = over.permitId ?? op?.permitId ?? new Uint8Array(32);
    return this.entry({ type: 'ActSigningSetFixed', opId, permitId, commitments: over.commitments ?? this.signingSet(opId), ...this.proposer(over.nodeId) }).result;
  }

  /**
   * The signature a FROST signing over list `i` of the op's fixed set would produce for message
   * `i`: R is that list's group commitment and z = r + c*x with r the sum of d_j + rho_j*e_j (RFC
   * 9591 §5.2/§5.3), x the stand-in group secret. Null when the set is not one this script made.
   */
  frostSignature(label: string, i = 0): Uint8Array | null {
    const opId = rid(label);
    const op = this.state.cluster?.ops[opId];
    if (op === undefined || op.signingSet === null) return null;
    const Fn = ed25519.Point.Fn;
    const list = listFor(op.signingSet.commitments, i);
    const gk = this.groupKey(op.act.keyId);
    const msg = this.messagesOf(op.act)[i];
    if (msg === undefined) return null;
    const { R, bindingFactors } = ed25519GroupCommitment(gk, msg, list);
    let r = 0n;
    for (const [j, m] of list.entries()) {
      const n = this.nonces.get(toHex(m.hiding));
      if (n === undefined || !bytesEqual(ed25519.Point.BASE.multiply(n.e).toBytes(), m.binding)) return null;
      r = Fn.add(r, Fn.add(n.d, Fn.mul(n.e, bindingFactors[j] as bigint)));
    }
    const c = Fn.create(bytesToNumberLE(sha512(new Uint8Array([...R, ...gk, ...msg]))));
    const x = ed25519.utils.getExtendedPublicKey(this.groupSecret(op.act.keyId)).scalar;
    return new Uint8Array([...R, ...Fn.toBytes(Fn.add(r, Fn.mul(c, x)))]);
  }

  /** One signature per message of the op's act by the stand-in group key (FROST-shaped for Ed25519, BIP 340 for Taproot). */
  signatures(label: string): Uint8Array[] {
    const opId = rid(label);
    const op = this.state.cluster?.ops[opId];
    if (op === undefined) return [new Uint8Array(64)];
    const msgs = this.messagesOf(op.act);
    if (this.schemeOf(op.act.keyId) !== 'ed25519') {
      const secret = taprootStandIn(this.groupSecret(op.act.keyId)).outputSecret;
      return msgs.map((m, i) => schnorr.sign(m, secret, seedOf(`aux/${opId}/${i}`)));
    }
    return msgs.map((m, i) => this.frostSignature(opId, i) ?? ed25519Sign(m, this.groupSecret(op.act.keyId)));
  }

  /**
   * Executes with the op's own permit and signatures by the key's group key over the act's
   * messages, fixing a signing set first if the op has none (unless `fixSet` is false).
   */
  execute(label: string, over: { permitId?: Uint8Array; signatures?: readonly Uint8Array[]; nodeId?: string; fixSet?: boolean } = {}): ApplyResult {
    const opId = rid(label);
    let op = this.state.cluster?.ops[opId];
    if (op !== undefined && op.state === 'PendingRemote' && op.signingSet === null && over.fixSet !== false) {
      this.fixSigningSet(opId, over.nodeId === undefined ? {} : { nodeId: over.nodeId });
      op = this.state.cluster?.ops[opId];
    }
    const permitId = over.permitId ?? op?.permitId ?? new Uint8Array(32);
    const signatures = over.signatures ?? this.signatures(opId);
    return this.entry({ type: 'ActExecuted', opId, permitId, signatures: [...signatures], ...this.proposer(over.nodeId) }).result;
  }

  publish(label: string, nodeId = 'node-0'): ApplyResult {
    const opId = rid(label);
    return this.entry({ type: 'ActPublished', opId, ...this.proposer(nodeId) }).result;
  }

  settle(label: string, confirmation = 'txid-1', nodeId = 'node-0'): ApplyResult {
    const opId = rid(label);
    return this.entry({ type: 'ActSettled', opId, confirmation, ...this.proposer(nodeId) }).result;
  }

  abort(label: string, reason: ReasonCode, nodeId = 'node-0'): ApplyResult {
    const opId = rid(label);
    return this.entry({ type: 'ActAborted', opId, reason, ...this.proposer(nodeId) }).result;
  }

  /** One node's fencing report (a FencingRecord it signs); a majority of voters' reports fences. */
  /** Enters a Denied act's verdict in the log (ActDenialRecorded), as the ledger recorded it unless `over` says otherwise. */
  recordDenial(label: string, over: { reason?: ReasonCode; ruleDigest?: Uint8Array; opId?: string } = {}, nodeId = 'node-0'): ApplyResult {
    const opId = over.opId ?? rid(label);
    const op = this.state.cluster?.ops[opId];
    return this.entry({ type: 'ActDenialRecorded', opId, reason: over.reason ?? op?.reason ?? 'POLICY_DENIED', ruleDigest: over.ruleDigest ?? denialRuleDigest(op?.rule ?? null), ...this.proposer(nodeId) }).result;
  }

  fence(reporter: string, nodeId: string, passport?: string, reason = 'two leaders seen for one term'): ApplyResult {
    const target = passport ?? this.proposer(nodeId).passport;
    return this.entry({ type: 'FencingRecord', statement: this.statement(reporter, 'FencingRecord', { nodeId, passport: target }, { reason }) }).result;
  }

  /** Fences `nodeId`'s current passport (or `passport`) by a NodeFenced decision (default signers: the quorum). */
  fenceByDecision(nodeId: string, o: { passport?: string; reason?: string; signers?: readonly ApproverKey[] } = {}): ApplyResult {
    const passport = o.passport ?? this.proposer(nodeId).passport;
    return this.decide({ kind: 'NodeFenced', nodeId, passport, reason: o.reason ?? 'equivocation evidence reviewed' }, o.signers);
  }
}
