/**
 * The kernel's own view of governance, followed from its pinned genesis through approver-signed
 * decisions that the daemon forwards (DESIGN.md §4: the kernel verifies authority itself, so a
 * compromised daemon cannot make it sign for a key or epoch the approvers did not activate).
 *
 * Each forwarded decision is decoded strictly (canonical CBOR, ledger/encoding.ts), verified with
 * the ledger's own `verifyDecision` against the roster in force at the current governance epoch,
 * stamped with its log entry's time, and must name the previous governance decision as its parent
 * (the genesis cid before the first). The daemon can therefore withhold decisions, but it cannot
 * forge, reorder, replay or skip one.
 *
 * Pure: apply(state, decision) -> state. The kernel persists the state after each update.
 */
import { CustodyError } from '../proto/errors.js';
import { ledger as ledgerLimits } from '../proto/limits.js';
import { decode, fromHex, toHex } from '../ledger/encoding.js';
import {
  ShapeError,
  decisionFromCbor,
  validateRoster,
  verifyDecision,
  type ApproverRoster,
  type GovernanceDecision,
  type KeyScheme,
} from '../ledger/decision.js';
import type { CommittedDecision } from './wire.js';
import { witnessSetRefusal } from '../ledger/tlog/trust-policy.js';
import { checkpointOrigin } from '../ledger/tlog/ledger-log.js';
import { encodeDocument } from '../ledger/policy-engine/index.js';
import { policyOf, withEra, type PolicyEra } from './policy-check.js';
import type { Network } from '../ledger/tx/types.js';
import { validateBackupRecipients } from '../ledger/backup-policy.js';

export interface RosterJson {
  approvers: { id: string; publicKey: string; roles: string[] }[];
  quorum: { threshold: number; freezeThreshold: number };
}

/** A voter node as the kernel follows it: its id and Ed25519 identity key (hex). */
export interface VoterJson { id: string; identityKey: string }

/** What the kernel pins at installation (its config): the cluster, its genesis approvers and nodes. */
export interface GenesisPin {
  clusterId: string;
  /** cid of the ClusterGenesis event: the parent of the first governance decision. */
  genesisCid: string;
  governanceEpoch: number;
  roster: RosterJson;
  /** The ClusterGenesis nodes: the first voters, whose majority certifies checkpoints (kernel/certificate.ts). */
  nodes: VoterJson[];
  /**
   * The ClusterGenesis act policy, hex of its canonical CBOR (ledger/policy-engine/yaml.ts
   * encodeDocument): the policy the kernel judges acts by (kernel/policy-check.ts) until a
   * PolicyChanged it verifies replaces it. Without it the kernel signs no act.
   */
  policy?: string;
}

/**
 * A key as governance sees it. Epochs follow the ledger: DkgAuthorized opens the ceremony of
 * epoch 0; KeyRefreshed / KeyReshared authorize the ceremony of a later epoch; only KeyActivated
 * makes an epoch the one that signs (and supersedes the one before).
 */
export interface KeyAuthority {
  scheme: KeyScheme;
  /**
   * The chain the key signs for, as its DkgAuthorized names it: the kernel parses an act's
   * transaction against it itself (kernel/act-check.ts). Absent only in state persisted before
   * the kernel tracked it; such a key signs no act until it is authorized again.
   */
  network?: Network;
  /** Threshold and node set of the active epoch (empty before the first activation). */
  threshold: number;
  participants: string[];
  /** null until a KeyActivated decision. */
  activeEpoch: number | null;
  activatedIndex: number;
  /** The ceremony a decision authorized and no activation has closed yet. */
  pending: { epoch: number; threshold: number; participants: string[]; authorizedIndex: number } | null;
  retired: boolean;
}

export interface GovernanceState {
  clusterId: string;
  governanceEpoch: number;
  roster: RosterJson;
  lastCid: string;
  index: number;
  stampMs: number;
  frozen: boolean;
  /** This node was removed from the cluster by decision: permanently fenced. */
  removed: boolean;
  /** Passport this node was last rebound under (NodeRebound), if any. */
  passport: string | null;
  keys: Record<string, KeyAuthority>;
  /**
   * The ledger roster's voters: the genesis nodes, plus NodeAdded, minus NodeRemoved, as verified
   * decisions say (the ledger's own rule, ledger/apply.ts). Absent in a state stored before the
   * kernel followed them: such a kernel certifies nothing until re-installed from its genesis.
   */
  nodes?: VoterJson[];
  /**
   * Certificates revoked by decisions this kernel verified (OperatorRevoked,
   * NodeCertificateRevoked), in order. Absent in state files written before revocations existed.
   * The daemon cannot hide one: decisions form a parent chain (lastCid), so once the ledger
   * applied a revocation, no later governance decision verifies here until the revocation itself
   * was forwarded and recorded.
   */
  revoked?: KernelRevocation[];
  /**
   * The governance eras (roster, governance epoch, act policy) from the pinned genesis on, one more
   * per ApproversChanged or PolicyChanged, the last kernel.policyErasMax kept: an act is judged by
   * the era of its ActSubmitted entry (kernel/policy-check.ts). Absent in a state stored before
   * the kernel followed the policy, and empty when the genesis pin names none: such a kernel signs
   * no act until re-installed from a genesis that names it.
   */
  eras?: PolicyEra[];
  /**
   * The custodians of the last BackupPolicy decision this kernel verified (ledger/backup-policy.ts):
   * the only recipients it encrypts a share backup to (kernel.ts shareBackup). Absent until one.
   */
  backupPolicy?: { recipients: { label: string; recipient: string }[]; index: number };
  /**
   * Per key, the RecoveryAuthorized decision naming this node that this kernel verified and no
   * import has consumed yet (kernel/recovery.ts): the one share import it accepts for the key.
   * Dropped when another epoch of the key is activated or the key is retired. Absent until one.
   */
  recoveries?: Record<string, RecoveryGrant>;
  /**
   * Per key, the last RepairAuthorized this kernel verified (kernel/repair.ts), whether this node
   * is its target, one of its helpers, or neither: a repair step is taken only for the repair it
   * names. Dropped when another epoch of the key is activated or the key is retired. Absent
   * until one.
   */
  repairs?: Record<string, RepairGrant>;
}

/** A verified RepairAuthorized (hex for bytes). */
export interface RepairGrant {
  /** The decision's cid: the repair's ceremony id, bound into every package of it. */
  ceremonyId: string;
  epoch: number;
  /** The node whose share is rebuilt (or enrolled) and its identifier. */
  nodeId: string;
  identifier: string;
  /** The helpers' node ids, in the decision's order. */
  helpers: string[];
  groupKey: string;
  index: number;
}

/** A verified RecoveryAuthorized for this node (hex for bytes). */
export interface RecoveryGrant {
  epoch: number;
  identifier: string;
  backupCid: string;
  groupKey: string;
  verifyingShare: string;
  index: number;
}

export interface KernelRevocation {
  serial: string;
  holder: 'operator' | 'node';
  id: string;
  notAfterMs: number;
  index: number;
}

/**
 * Whether governance, as this kernel follows it, revoked a certificate of `holder` `id` (any
 * serial) at or before Raft index `atIndex`. A check that names an operator or node by its
 * certificate identity (an act's initiator as the admin port attributed it) asks this with the
 * index of the entry it checks. A certificate revocation is not an approver-key revocation: an
 * approver's Ed25519 key leaves the roster only by ApproversChanged, so verifyDecision does not
 * consult this list, and an operator whose lost certificate was revoked keeps approving with a
 * reissued one.
 */
export function revokedAt(state: GovernanceState, holder: KernelRevocation['holder'], id: string, atIndex: number): KernelRevocation | null {
  return (state.revoked ?? []).find((r) => r.holder === holder && r.id === id && r.index <= atIndex) ?? null;
}

export function genesisState(pin: GenesisPin): GovernanceState {
  const roster = rosterFromJson(pin.roster);
  const ok = validateRoster(roster);
  if (!ok.ok) throw new CustodyError('CONFIG_INVALID', `pinned genesis roster: ${ok.detail}`);
  if (!/^[0-9a-f]{64}$/.test(pin.genesisCid)) throw new CustodyError('CONFIG_INVALID', 'genesisCid must be 32 bytes of hex');
  if (!Array.isArray(pin.nodes) || pin.nodes.length === 0) throw new CustodyError('CONFIG_INVALID', 'the pinned genesis names no nodes: the kernel follows the voters whose majority certifies checkpoints');
  const seen = new Set<string>();
  for (const n of pin.nodes) {
    if (typeof n?.id !== 'string' || n.id.length === 0 || seen.has(n.id)) throw new CustodyError('CONFIG_INVALID', `genesis node ${JSON.stringify(n?.id)}: ids are non-empty and distinct`);
    if (typeof n.identityKey !== 'string' || !/^[0-9a-f]{64}$/.test(n.identityKey)) throw new CustodyError('CONFIG_INVALID', `genesis node ${n.id}: identityKey must be 32 bytes of lowercase hex`);
    seen.add(n.id);
  }
  return {
    clusterId: pin.clusterId,
    governanceEpoch: pin.governanceEpoch,
    roster: pin.roster,
    lastCid: pin.genesisCid,
    index: 0,
    stampMs: 0,
    frozen: false,
    removed: false,
    passport: null,
    keys: {},
    nodes: pin.nodes.map((n) => ({ id: n.id, identityKey: n.identityKey })),
    eras: pinnedEras(pin),
  };
}

/**
 * A state stored before the kernel followed the act policy (no `eras`) gets the pinned genesis era
 * when no ApproversChanged or PolicyChanged has applied since genesis (its governance epoch is
 * still the pinned one: only those two decisions open an epoch), since roster and policy are then
 * exactly the pinned ones. Otherwise it stays without eras and signs no act: the policy in force
 * is not known.
 */
export function withPinnedEras(state: GovernanceState, pin: GenesisPin): GovernanceState {
  if (state.eras !== undefined || state.governanceEpoch !== pin.governanceEpoch) return state;
  return { ...state, eras: pinnedEras(pin) };
}

/** The genesis era of a pin that names the act policy (checked to be a canonical document). */
function pinnedEras(pin: GenesisPin): PolicyEra[] {
  if (pin.policy === undefined) return [];
  if (typeof pin.policy !== 'string' || !/^([0-9a-f]{2})+$/.test(pin.policy)) throw new CustodyError('CONFIG_INVALID', 'genesis.policy must be the act policy\'s canonical CBOR in lowercase hex');
  try {
    policyOf(pin.policy);
  } catch (e) {
    throw new CustodyError('CONFIG_INVALID', `genesis.policy: ${(e as Error).message}`, { cause: e });
  }
  return [{ fromIndex: 0, governanceEpoch: pin.governanceEpoch, roster: pin.roster, policy: pin.policy }];
}

export function rosterFromJson(r: RosterJson): ApproverRoster {
  return {
    approvers: r.approvers.map((a) => ({ id: a.id, publicKey: fromHex(a.publicKey), roles: a.roles as ApproverRoster['approvers'][number]['roles'] })),
    quorum: { threshold: r.quorum.threshold, freezeThreshold: r.quorum.freezeThreshold },
  };
}

export function rosterToJson(r: ApproverRoster): RosterJson {
  return {
    approvers: r.approvers.map((a) => ({ id: a.id, publicKey: toHex(a.publicKey), roles: [...a.roles] })),
    quorum: { threshold: r.quorum.threshold, freezeThreshold: r.quorum.freezeThreshold },
  };
}

/** What changed, so the kernel can act on it (erase superseded shares, burn their nonces). */
export type Effect =
  | { kind: 'epochActivated'; keyId: string; epoch: number }
  | { kind: 'keyRetired'; keyId: string }
  | { kind: 'rebound'; passport: string }
  /** A NodeFenced decision names this node: it takes no part until a NodeRebound (kernel.ts fence record). */
  | { kind: 'fenced'; passport: string; reason: string }
  | { kind: 'certificateRevoked'; holder: 'operator' | 'node'; serial: string }
  /**
   * A RepairAuthorized enrols `identifier` as a new participant of `keyId` epoch `epoch`: a kernel
   * holding the epoch adds the identifier's verifying share, interpolated from the recorded ones
   * (kernel/repair.ts expectedVerifyingShare), to its public package, so it signs with the new
   * participant once that one holds its share.
   */
  | { kind: 'repairEnrolled'; keyId: string; epoch: number; identifier: string };

/** Governance actions the ledger accepts under an emergency freeze (leave it, contain a compromise). */
const ALLOWED_WHILE_FROZEN: readonly string[] = ['Unfreeze', 'EmergencyFreeze', 'ApproversChanged', 'NodeRemoved', 'NodeRebound', 'KeyRetired', 'OperatorRevoked', 'NodeCertificateRevoked', 'NodeFenced'];

export function decodeDecision(bytes: Uint8Array): GovernanceDecision {
  try {
    return decisionFromCbor(decode(bytes));
  } catch (e) {
    if (e instanceof ShapeError) throw new CustodyError('PAYLOAD_REJECTED', `decision: ${e.message}`);
    throw e;
  }
}

/**
 * Verifies and applies one committed decision. Returns the new state and its effects; throws a
 * CustodyError carrying the verifier's reason code when the decision is refused. A decision at
 * or below the last applied index is a re-delivery and is skipped if it is the same decision.
 */
export function applyDecision(
  state: GovernanceState,
  committed: CommittedDecision,
  nodeId: string,
): { state: GovernanceState; effects: Effect[]; applied: boolean } {
  const d = decodeDecision(committed.decision);
  if (committed.ledgerIndex <= state.index) {
    return { state, effects: [], applied: false };
  }
  if (committed.stampMs < state.stampMs) throw new CustodyError('PAYLOAD_REJECTED', 'decision stamps must not go backwards');
  const verdict = verifyDecision(d, rosterFromJson(state.roster), state.clusterId, state.governanceEpoch, committed.stampMs);
  if (!verdict.ok) throw new CustodyError(verdict.reason, verdict.detail);
  if (toHex(d.body.parentCid) !== state.lastCid) {
    throw new CustodyError('BINDING_MISMATCH', `decision at index ${committed.ledgerIndex} does not follow the last applied decision`);
  }
  // The ledger refuses most governance while frozen (ledger/apply.ts ALLOWED_WHILE_FROZEN); the
  // kernel applies the same rule, so a decision the ledger refused cannot be slipped in here.
  if (state.frozen && !ALLOWED_WHILE_FROZEN.includes(d.body.action.kind)) {
    throw new CustodyError('FROZEN', `${d.body.action.kind} while the cluster is frozen`);
  }
  const s: GovernanceState = structuredClone(state);
  const effects: Effect[] = [];
  const a = d.body.action;
  const key = (id: string): KeyAuthority => {
    const k = s.keys[id];
    if (k === undefined) throw new CustodyError('UNKNOWN_KEY', `decision names key ${id}, which was never authorized`);
    return k;
  };
  switch (a.kind) {
    case 'DkgAuthorized':
      if (s.keys[a.keyId] !== undefined) throw new CustodyError('REPLAY_OR_CONFLICT', `key ${a.keyId} was already authorized`);
      s.keys[a.keyId] = {
        scheme: a.scheme, network: a.network, threshold: 0, participants: [], activeEpoch: null, activatedIndex: 0, retired: false,
        pending: { epoch: 0, threshold: a.threshold, participants: [...a.participants], authorizedIndex: committed.ledgerIndex },
      };
      break;
    case 'KeyRefreshed':
    case 'KeyReshared': {
      const k = key(a.keyId);
      if (k.activeEpoch === null || k.retired) throw new CustodyError('KEY_NOT_ACTIVE', `key ${a.keyId} is not active`);
      if (a.keyEpoch <= k.activeEpoch) throw new CustodyError('STALE_EPOCH', `key ${a.keyId} epoch ${a.keyEpoch} is not newer than ${k.activeEpoch}`);
      // A newer authorization supersedes a ceremony that never completed (as the ledger does).
      k.pending = a.kind === 'KeyReshared'
        ? { epoch: a.keyEpoch, threshold: a.threshold, participants: [...a.participants], authorizedIndex: committed.ledgerIndex }
        : { epoch: a.keyEpoch, threshold: k.threshold, participants: [...k.participants], authorizedIndex: committed.ledgerIndex };
      break;
    }
    case 'KeyActivated': {
      const k = key(a.keyId);
      if (k.retired) throw new CustodyError('KEY_NOT_ACTIVE', `key ${a.keyId} is retired`);
      if (k.pending === null || k.pending.epoch !== a.keyEpoch) throw new CustodyError('STALE_EPOCH', `key ${a.keyId} has no authorized ceremony for epoch ${a.keyEpoch}`);
      k.activeEpoch = a.keyEpoch;
      k.activatedIndex = committed.ledgerIndex;
      k.threshold = k.pending.threshold;
      k.participants = k.pending.participants;
      k.pending = null;
      if (s.recoveries?.[a.keyId] !== undefined) delete s.recoveries[a.keyId];
      if (s.repairs?.[a.keyId] !== undefined) delete s.repairs[a.keyId];
      effects.push({ kind: 'epochActivated', keyId: a.keyId, epoch: a.keyEpoch });
      break;
    }
    case 'KeyRetired':
      key(a.keyId).retired = true;
      if (s.recoveries?.[a.keyId] !== undefined) delete s.recoveries[a.keyId];
      if (s.repairs?.[a.keyId] !== undefined) delete s.repairs[a.keyId];
      effects.push({ kind: 'keyRetired', keyId: a.keyId });
      break;
    case 'NodeRemoved':
      if (a.nodeId === nodeId) s.removed = true;
      if (s.nodes !== undefined) s.nodes = s.nodes.filter((n) => n.id !== a.nodeId);
      break;
    case 'NodeRebound':
      if (a.nodeId === nodeId) {
        s.passport = a.passport;
        effects.push({ kind: 'rebound', passport: a.passport });
      }
      break;
    case 'NodeFenced':
      // Approver-signed and verified above, so the daemon can neither forge one nor (decisions
      // form a parent chain) hide one and forward any later decision. The ledger accepts a
      // NodeFenced only for the node's current passport, so one naming this node fences it.
      if (a.nodeId === nodeId) effects.push({ kind: 'fenced', passport: a.passport, reason: a.reason });
      break;
    case 'ApproversChanged': {
      const ok = validateRoster(a.roster);
      if (!ok.ok) throw new CustodyError(ok.reason, ok.detail);
      s.roster = rosterToJson(a.roster);
      // A new roster or policy opens a new governance epoch (as ledger/apply.ts does): decisions
      // signed for the old epoch no longer verify (verifyDecision binds body.governanceEpoch).
      s.governanceEpoch += 1;
      // The policy stays; a kernel that knows none keeps knowing none (it signs no act).
      const last = s.eras?.[s.eras.length - 1];
      if (last !== undefined) s.eras = withEra(s.eras, { fromIndex: committed.ledgerIndex, governanceEpoch: s.governanceEpoch, roster: s.roster, policy: last.policy });
      break;
    }
    case 'PolicyChanged':
      s.governanceEpoch += 1;
      // From here on acts are judged by this document (kernel/policy-check.ts).
      s.eras = withEra(s.eras, { fromIndex: committed.ledgerIndex, governanceEpoch: s.governanceEpoch, roster: s.roster, policy: toHex(encodeDocument(a.policy)) });
      break;
    case 'EmergencyFreeze':
      s.frozen = true;
      break;
    case 'Unfreeze':
      s.frozen = false;
      break;
    case 'NodeAdded':
      // The ledger refuses a node id it already holds (ledger/apply.ts validateNewNode), removed ones
      // included; the kernel keeps the first key it saw for an id.
      if (s.nodes !== undefined && !s.nodes.some((n) => n.id === a.node.id)) s.nodes.push({ id: a.node.id, identityKey: toHex(a.node.identityKey) });
      break;
    case 'OperatorRevoked':
    case 'NodeCertificateRevoked': {
      // The same bound and expiry rule as the ledger (ledger/apply.ts certificateRevoked), on the
      // entry's stamp, which the daemon forwards as the ledger clock at that entry
      // (node/ledger-app.ts decisionsAfter): both lists see the same decisions in the same order
      // and prune alike, so this bound refuses only what the ledger refused (and a withheld or
      // forged revocation never gets here). Refusing keeps the kernel closed rather than dropping
      // a revocation the ledger still holds.
      const holder = a.kind === 'OperatorRevoked' ? 'operator' : 'node';
      const live = (s.revoked ?? []).filter((r) => r.notAfterMs + ledgerLimits.revocationExpiryGraceMs > committed.stampMs);
      if (live.length >= ledgerLimits.revokedMax) throw new CustodyError('LIMIT_EXCEEDED', `${ledgerLimits.revokedMax} certificates are revoked and not yet expired`);
      s.revoked = [...live, { serial: a.serial, holder, id: a.kind === 'OperatorRevoked' ? a.operatorId : a.nodeId, notAfterMs: a.notAfterMs, index: committed.ledgerIndex }];
      effects.push({ kind: 'certificateRevoked', holder, serial: a.serial });
      break;
    }
    case 'BackupPolicy': {
      // The ledger's own check (ledger/apply.ts): a policy it refuses never becomes the head of
      // the chain, so refusing it here keeps this kernel on the ledger's chain.
      const bad = validateBackupRecipients(a.recipients);
      if (bad !== null) throw new CustodyError('BACKUP_POLICY_INVALID', bad);
      s.backupPolicy = { recipients: a.recipients.map((r) => ({ label: r.label, recipient: r.recipient })), index: committed.ledgerIndex };
      break;
    }
    case 'RecoveryAuthorized': {
      // The ledger accepts it only for the active epoch of a live key (ledger/apply.ts); the same
      // here keeps this kernel on the ledger's chain. Whether the backup exists is the ledger's
      // part: the share is checked against the verifying share at import, whatever file it came from.
      const k = key(a.keyId);
      if (k.retired || k.activeEpoch === null) throw new CustodyError('KEY_NOT_ACTIVE', `key ${a.keyId} is not active`);
      if (a.keyEpoch !== k.activeEpoch) throw new CustodyError('STALE_EPOCH', `key ${a.keyId} epoch ${a.keyEpoch} is not the active epoch ${k.activeEpoch}`);
      if (a.nodeId === nodeId) {
        s.recoveries = {
          ...(s.recoveries ?? {}),
          [a.keyId]: {
            epoch: a.keyEpoch, identifier: a.identifier, backupCid: toHex(a.backupCid), groupKey: toHex(a.groupKey),
            verifyingShare: toHex(a.verifyingShare), index: committed.ledgerIndex,
          },
        };
      }
      break;
    }
    case 'BackupsDestroyed':
      // Nothing for the kernel to erase (it holds no backup; KeyRetired erased its shares): the
      // ledger's own rule keeps this kernel on the ledger's chain.
      if (!key(a.keyId).retired) throw new CustodyError('KEY_NOT_RETIRED', `key ${a.keyId} is not retired`);
      break;
    case 'RepairAuthorized': {
      // The ledger accepts it only for the active epoch of a live key, with at least t distinct
      // participants as helpers and never the target among them (ledger/apply.ts); the same
      // checks here keep this kernel on the ledger's chain. The helper set is checked against
      // the key package again at each step (kernel/repair.ts).
      const k = key(a.keyId);
      if (k.retired || k.activeEpoch === null) throw new CustodyError('KEY_NOT_ACTIVE', `key ${a.keyId} is not active`);
      if (a.keyEpoch !== k.activeEpoch) throw new CustodyError('STALE_EPOCH', `key ${a.keyId} epoch ${a.keyEpoch} is not the active epoch ${k.activeEpoch}`);
      if (new Set(a.helpers).size !== a.helpers.length || a.helpers.length < k.threshold || a.helpers.includes(a.nodeId) || a.helpers.some((h) => !k.participants.includes(h))) {
        throw new CustodyError('REPAIR_HELPERS_INVALID', `the helpers ${a.helpers.join(', ')} are not ${k.threshold} or more distinct participants of ${a.keyId} other than ${a.nodeId}`);
      }
      s.repairs = {
        ...(s.repairs ?? {}),
        [a.keyId]: { ceremonyId: toHex(verdict.cid), epoch: a.keyEpoch, nodeId: a.nodeId, identifier: a.identifier, helpers: [...a.helpers], groupKey: toHex(a.groupKey), index: committed.ledgerIndex },
      };
      if (!k.participants.includes(a.nodeId)) effects.push({ kind: 'repairEnrolled', keyId: a.keyId, epoch: a.keyEpoch, identifier: a.identifier });
      break;
    }
    case 'WitnessesChanged': {
      // Nothing for a kernel to hold (the witnesses matter to auditors, ledger/trust-chain.ts);
      // the ledger's own check keeps this kernel on the ledger's chain.
      const bad = witnessSetRefusal(checkpointOrigin(s.clusterId), a.witnesses, a.quorum);
      if (bad !== null) throw new CustodyError('PAYLOAD_REJECTED', bad);
      break;
    }
    case 'ActApproved':
    case 'PublicationReleased':
      throw new CustodyError('PAYLOAD_REJECTED', `${a.kind} is an operation-journal approval, not a governance decision`);
  }
  s.lastCid = toHex(verdict.cid);
  s.index = committed.ledgerIndex;
  s.stampMs = committed.stampMs;
  return { state: s, effects, applied: true };
}
