/**
 * The one table of reason codes. Every refusal that crosses a boundary (ledger apply result,
 * kernel frame, gRPC status, CLI exit) names exactly one of these. The gRPC status each maps to
 * is decided here, once, so a client sees the same code whichever layer refused.
 *
 * Codes are stable API: never rename or reuse one; add new codes at the end of their group.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';

export const REASONS = {
  // Binding and session integrity (seed 001).
  BINDING_MISMATCH: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the request is not bound to the object, key or epoch it names' },
  WRONG_RECIPIENT: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'the message was addressed to another party' },
  SESSION_MISMATCH: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the message belongs to another session' },
  PAYLOAD_REJECTED: { grpc: GrpcStatus.INVALID_ARGUMENT, text: 'the payload failed validation' },
  REPLAY_OR_CONFLICT: { grpc: GrpcStatus.ALREADY_EXISTS, text: 'an idempotency key was reused with different content' },
  STEP_PERMIT_REUSED: { grpc: GrpcStatus.ALREADY_EXISTS, text: 'a one-time step permit was presented again' },
  SPLIT_BRAIN_FENCED: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'the node or passport is fenced' },
  PROPOSER_SIGNATURE_INVALID: { grpc: GrpcStatus.UNAUTHENTICATED, text: 'a journal event is not signed by the identity key of the node it names as proposer' },
  EQUIVOCATION: { grpc: GrpcStatus.ABORTED, text: 'one party signed two conflicting statements' },
  REMOTE_TIMEOUT: { grpc: GrpcStatus.DEADLINE_EXCEEDED, text: 'a peer did not answer in time' },
  PUBLICATION_DENIED: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'the publication gate refused to release the artifact' },
  STALE_EPOCH: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the key epoch or governance epoch is not the current one' },

  // Governance.
  QUORUM_NOT_MET: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'not enough valid approver signatures' },
  SIGNATURE_INVALID: { grpc: GrpcStatus.UNAUTHENTICATED, text: 'a signature does not verify' },
  DECISION_EXPIRED: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the decision is past its expiry' },
  UNKNOWN_APPROVER: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'the signer is not on the approver roster in force' },
  ROLE_NOT_ALLOWED: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'the caller\'s role may not perform this action' },
  FROZEN: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the cluster is under emergency freeze' },
  GENESIS_MISSING: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the cluster has no genesis yet' },
  GENESIS_EXISTS: { grpc: GrpcStatus.ALREADY_EXISTS, text: 'the cluster already has a genesis' },

  // Keys.
  UNKNOWN_KEY: { grpc: GrpcStatus.NOT_FOUND, text: 'no such key' },
  KEY_NOT_ACTIVE: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the key is not active' },
  KEY_NOT_PUBLISHED: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the key object has not been published' },
  DKG_INCOMPLETE: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the key generation ceremony has not completed' },
  INVALID_TRANSITION: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the object is not in a state that allows this transition' },

  // Signing acts and kernel.
  UNKNOWN_SESSION: { grpc: GrpcStatus.NOT_FOUND, text: 'no such session or operation' },
  PERMIT_MISSING: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'the step carries no valid permit' },
  DIGEST_MISMATCH: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the message digest does not match the permit' },
  NONCE_REUSED: { grpc: GrpcStatus.ALREADY_EXISTS, text: 'a nonce commitment was presented again' },
  STORE_ROLLED_BACK: { grpc: GrpcStatus.DATA_LOSS, text: 'the local store is older than the record it must follow' },
  POLICY_DENIED: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'the policy engine denied the act' },
  SECRET_EXPOSED: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'a secret file or folder is open to other users (group or world permission bits)' },

  // Policy rule documents (ledger/policy-engine/). POLICY_DENIED above stays the verdict of the
  // tiered act policy (ledger/policy.ts); these name which part of a rule document refused an act.
  POLICY_NO_RULE: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'no policy rule matched the act (default deny)' },
  POLICY_BLOCKED: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'a BLOCK policy rule matched the act' },
  POLICY_WINDOW_EXCEEDED: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'the act would exceed a rolling-window amount or count limit of the policy' },
  POLICY_CAP_EXCEEDED: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'the act would exceed a lifetime cap of the policy' },
  POLICY_APPROVAL_REQUIRED: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the matched policy rule holds the act for approvals' },
  POLICY_DOCUMENT_INVALID: { grpc: GrpcStatus.INVALID_ARGUMENT, text: 'the policy document is malformed or breaks a rule of its format' },

  // Consensus and node.
  NOT_LEADER: { grpc: GrpcStatus.UNAVAILABLE, text: 'this node is not the leader' },
  PROPOSAL_DROPPED: { grpc: GrpcStatus.UNAVAILABLE, text: 'the proposal was dropped (no leader, transfer in progress, or queue full)' },
  STORAGE_CORRUPT: { grpc: GrpcStatus.DATA_LOSS, text: 'stored data failed its checksum' },
  PEER_IDENTITY_MISMATCH: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'the peer certificate does not match the node it claims to be' },
  UNAUTHENTICATED: { grpc: GrpcStatus.UNAUTHENTICATED, text: 'no valid client certificate' },
  UNKNOWN_NODE: { grpc: GrpcStatus.NOT_FOUND, text: 'the node is not on the cluster roster' },
  INCARNATION_MISMATCH: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'the peer belongs to another incarnation of the cluster (another restore, or the cluster a backup was taken from)' },
  SNAPSHOT_INVALID: { grpc: GrpcStatus.DATA_LOSS, text: 'the snapshot file is malformed, truncated or fails its checksum' },
  ARCHIVE_RANGE_REFUSED: { grpc: GrpcStatus.OUT_OF_RANGE, text: 'the archive range asked for is past what this node has archived, or outside the fetch bounds' },
  ARCHIVE_RECORD_REJECTED: { grpc: GrpcStatus.DATA_LOSS, text: 'archived records served by a peer are missing, altered or out of order (they do not reproduce the snapshot\'s archive head)' },
  ARCHIVE_UNAVAILABLE: { grpc: GrpcStatus.UNAVAILABLE, text: 'no peer served the archived records a snapshot counts' },
  CONF_CHANGE_UNAUTHORIZED: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'a Raft membership change that no applied NodeAdded / NodeRemoved decision asks for' },

  // Key backups and guardians.
  GUARDIAN_SHARE_CORRUPT: { grpc: GrpcStatus.DATA_LOSS, text: 'a guardian file is malformed or fails its checksum' },
  GUARDIAN_SHARE_FOREIGN: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'a guardian file belongs to another split (set id, label, threshold or recipient differ)' },
  GUARDIAN_TOO_FEW_SHARES: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'fewer guardian files than the split\'s threshold' },
  GUARDIAN_DUPLICATE_SHARE: { grpc: GrpcStatus.INVALID_ARGUMENT, text: 'the same guardian share was given twice' },
  GUARDIAN_COMBINE_MISMATCH: { grpc: GrpcStatus.DATA_LOSS, text: 'the guardian shares do not rebuild the identity of the recorded recipient' },
  BACKUP_INVALID: { grpc: GrpcStatus.DATA_LOSS, text: 'the share backup is malformed, cannot be decrypted with this identity, or its metadata was altered' },
  BACKUP_FOREIGN: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the share backup belongs to another key, epoch, participant or group key' },
  SHARE_MISMATCH: { grpc: GrpcStatus.DATA_LOSS, text: 'a recovered share does not match its verifying share' },
  OUTPUT_EXISTS: { grpc: GrpcStatus.ALREADY_EXISTS, text: 'the output file already exists and is never overwritten' },
  BACKUP_POLICY_INVALID: { grpc: GrpcStatus.INVALID_ARGUMENT, text: 'a BackupPolicy decision names no custodian, too many, a label or recipient twice, or a recipient that is not an age X25519 recipient' },
  BACKUP_POLICY_MISSING: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'no BackupPolicy decision is in force (as the ledger or this kernel follows governance)' },
  BACKUP_RECIPIENTS_MISMATCH: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'the backup names other custodian recipients than the BackupPolicy decision in force' },
  RECOVERY_BACKUP_MISSING: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'a RecoveryAuthorized decision names a participant of a key epoch whose backup the ledger does not record' },
  RECOVERY_BACKUP_MISMATCH: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'a RecoveryAuthorized decision names another backup file, identifier or group key than the ledger records' },
  PUBLIC_PACKAGE_UNAVAILABLE: { grpc: GrpcStatus.UNAVAILABLE, text: 'no peer serves a public key package of the key epoch that matches the group key and committee the ledger committed (their daemons or kernels may still be starting)' },
  RECOVERY_NOT_AUTHORIZED: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'no RecoveryAuthorized decision this kernel verified names this node, key, epoch and identifier' },
  SHARE_ALREADY_HELD: { grpc: GrpcStatus.ALREADY_EXISTS, text: 'this kernel already holds a share of that key epoch; a recovered share never replaces one' },

  // Share repair (kernel/repair.ts): rebuilding a lost share, or enrolling a new identifier, from t helpers.
  REPAIR_HELPERS_INVALID: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the repair\'s helper set is not t or more distinct current shareholders, or it includes the participant being repaired' },
  REPAIR_PACKAGE_REJECTED: { grpc: GrpcStatus.INVALID_ARGUMENT, text: 'a repair delta or sum is malformed, duplicated, missing, or does not open under this repair\'s key, epoch, helpers and target' },
  REPAIR_SHARE_MISMATCH: { grpc: GrpcStatus.DATA_LOSS, text: 'a repaired share (or a helper\'s own share) does not match the verifying share expected for its identifier' },
  REPAIR_PUBLIC_INCONSISTENT: { grpc: GrpcStatus.DATA_LOSS, text: 'the key\'s verifying shares are not one degree t-1 sharing of its group key, so no verifying share can be derived for a new identifier' },
  REPAIR_NOT_AUTHORIZED: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'no RepairAuthorized decision (as the ledger or this kernel follows governance) names this repair: its ceremony, key, epoch, target or this kernel among its helpers' },

  // Transparency log (ledger/tlog/): proofs, checkpoints, signed notes.
  TLOG_PROOF_INVALID: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'a Merkle inclusion or consistency proof does not verify' },
  TLOG_CHECKPOINT_INVALID: { grpc: GrpcStatus.INVALID_ARGUMENT, text: 'the checkpoint is malformed or names another log' },
  TLOG_STATE_INVALID: { grpc: GrpcStatus.DATA_LOSS, text: 'the persisted Merkle tree state is malformed' },
  NOTE_MALFORMED: { grpc: GrpcStatus.INVALID_ARGUMENT, text: 'the signed note or verifier key is malformed' },
  NOTE_SIGNATURE_INVALID: { grpc: GrpcStatus.UNAUTHENTICATED, text: 'a signature from a known key does not verify, or no known key signed the note' },
  TLOG_WITNESS_CONFLICT: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the checkpoint does not follow the latest one the witness cosigned for that log' },
  TRUST_POLICY_INVALID: { grpc: GrpcStatus.INVALID_ARGUMENT, text: 'the trust policy file is malformed, or a block of its chain does not follow the one before it' },
  EVIDENCE_UNPROVEN: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'an evidence bundle claims something its proven log entries do not show' },
  CALL_CANCELLED: { grpc: GrpcStatus.CANCELLED, text: 'the caller cancelled the call before it was answered' },
  WITNESS_UNAVAILABLE: { grpc: GrpcStatus.UNAVAILABLE, text: 'a witness did not answer, or answered something that is not a cosignature of the checkpoint pushed' },
  TRUST_POLICY_PENDING: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the trust policy block of the voters in force still waits for signatures of a quorum of the roster before it' },

  // Input and limits.
  FRAME_MALFORMED: { grpc: GrpcStatus.INVALID_ARGUMENT, text: 'the frame could not be decoded' },
  FRAME_TOO_LARGE: { grpc: GrpcStatus.RESOURCE_EXHAUSTED, text: 'the frame exceeds its size limit' },
  LIMIT_EXCEEDED: { grpc: GrpcStatus.RESOURCE_EXHAUSTED, text: 'a configured bound was exceeded' },
  INVALID_ARGUMENT: { grpc: GrpcStatus.INVALID_ARGUMENT, text: 'an argument is missing or out of range' },
  CONFIG_INVALID: { grpc: GrpcStatus.INVALID_ARGUMENT, text: 'the configuration is invalid' },
  INTERNAL: { grpc: GrpcStatus.INTERNAL, text: 'an internal error' },

  // Transactions an act carries (ledger/tx).
  TX_UNPARSEABLE: { grpc: GrpcStatus.INVALID_ARGUMENT, text: 'the transaction bytes do not decode as the kind they claim, or not canonically' },
  TX_NETWORK_MISMATCH: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the transaction belongs to another network than the key' },
  TX_FOREIGN_INPUT: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'the transaction spends from, or is paid for by, something other than the key' },
  TX_UNSUPPORTED: { grpc: GrpcStatus.INVALID_ARGUMENT, text: 'the transaction uses a script, instruction, field or sighash type the parser does not accept' },
  TX_MULTI_ASSET: { grpc: GrpcStatus.INVALID_ARGUMENT, text: 'the transaction moves more than one asset' },
  TX_FEE_INVALID: { grpc: GrpcStatus.INVALID_ARGUMENT, text: 'the transaction fee is negative or above its bound' },
  TX_ASSET_UNKNOWN: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the asset is not in the asset table for the key\'s network' },
  TX_ASSET_MISMATCH: { grpc: GrpcStatus.INVALID_ARGUMENT, text: 'the transaction states the asset differently from the asset table (decimals)' },
  TX_INPUT_INCOMPLETE: { grpc: GrpcStatus.INVALID_ARGUMENT, text: 'an input lacks the previous output (amount and script) its fee and signature hash need' },
  TX_DECLARED_MISMATCH: { grpc: GrpcStatus.INVALID_ARGUMENT, text: 'a field the act declares differs from what its transaction says' },

  // Certified checkpoints (node/checkpoints.ts, kernel sign).
  CHECKPOINT_NOT_CERTIFIED: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'the sign request carries no checkpoint a majority of the voter nodes cosigned' },
  ENTRY_NOT_INCLUDED: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'an entry the signature rests on is not proven in the certified checkpoint' },
  CHECKPOINT_INCONSISTENT: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the certified checkpoint is not proven to extend the history this kernel follows (RFC 9162 consistency): a kernel signs on one history only' },
  CHECKPOINT_DIVERGED: { grpc: GrpcStatus.DATA_LOSS, text: 'peers computed another tree root at the same size: no majority of the voters agrees on the checkpoint' },
  SNAPSHOT_NOT_CERTIFIED: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'the Raft snapshot carries no certificate, cosigned by a majority of the voters this node knows, of exactly its content' },
  SIGNING_SET_MISMATCH: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'the sign request is not the signing set the ledger fixed for the act' },

  // Certificate revocation and the kernel's host boundary.
  OPERATOR_REVOKED: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'the operator certificate was revoked by a governance decision' },
  NODE_CERT_REVOKED: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'the node certificate was revoked by a governance decision' },
  KERNEL_PATH_UNREACHABLE: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the kernel\'s OS user cannot reach its program: a directory on the path denies it search or read' },

  // Replica and read-path hardening: what one bad peer, client or host is refused.
  STAMP_AHEAD: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the entry is stamped further ahead of the ledger clock than the bounded skew allows' },
  SERVICE_NOT_SERVED: { grpc: GrpcStatus.UNIMPLEMENTED, text: 'this node does not serve that service (a ledger node serves no key-value writes)' },
  BLOB_KEY_FOREIGN: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'the blob key names another author than the sender' },
  BLOB_EXISTS: { grpc: GrpcStatus.ALREADY_EXISTS, text: 'a blob with other bytes is already stored under that key (first write wins)' },
  BLOB_BUDGET_EXCEEDED: { grpc: GrpcStatus.RESOURCE_EXHAUSTED, text: 'the blob would exceed the byte or count budget for blobs' },
  SIGNATURE_WITHHELD: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the signature is withheld until the act is published' },

  // Custodians' signed act requests (ledger/act-request.ts): checked by every node at apply and by every kernel.
  REQUEST_UNSIGNED: { grpc: GrpcStatus.UNAUTHENTICATED, text: 'the act carries no custodian request, or one that is not well-formed' },
  REQUEST_SIGNATURE_INVALID: { grpc: GrpcStatus.UNAUTHENTICATED, text: 'the custodian\'s signature over the act request does not verify' },
  NOT_A_CUSTODIAN: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'the request\'s signer is not on the roster in force with the custodian role' },
  REQUEST_EXPIRED: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the request was issued outside the window the ledger accepts around its clock' },
  REQUEST_MISMATCH: { grpc: GrpcStatus.INVALID_ARGUMENT, text: 'the act is not exactly what the custodian requested (cluster, request id, key, epoch, kind, transaction, initiator)' },
  TX_MESSAGES_MISMATCH: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'the messages to sign are not the ones derived from the requested transaction' },

  // Fencing (ledger/apply.ts fencing, NodeFenced decisions): node reports need a majority of voters; an operator fences by an approver-signed decision.
  FENCE_PENDING: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the fencing report is recorded but fences nothing until a majority of voter nodes report it or an approver-signed NodeFenced decision applies' },
  FENCE_UNSIGNED: { grpc: GrpcStatus.UNAUTHENTICATED, text: 'fencing is an approver-signed NodeFenced decision: the request carries no approver signature' },

  // Backup drills (node/guardian/drill.ts): the recovered shares must be the key.
  DRILL_RECORD_INVALID: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'a BackupDrilled names a backup the ledger does not record for that key epoch, a participant twice, passes without every participant\'s backup, or ran too far from its entry\'s stamp' },
  DRILL_RECONSTRUCTION_FAILED: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'a backup drill recovered fewer shares than the threshold, or shares that do not reconstruct the group key' },

  // The kernel's own policy check (kernel/policy-check.ts): the history-free rules and approvals, before any nonce or share.
  KERNEL_POLICY_REFUSED: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'the kernel\'s own evaluation of the policy in force refuses the act (the detail names the rule and the engine\'s code)' },
  APPROVALS_MISSING: { grpc: GrpcStatus.PERMISSION_DENIED, text: 'the matched policy rule needs approvals the act does not carry: too few distinct group members, or an approval that does not verify, bind the act or is no longer fresh' },

  // Refresh and reshare dealers (ledger/dealer-set.ts): t holders whose kernels answered, fixed by the log.
  DEALERS_FIXED: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the dealers of this refresh or reshare are already fixed: t holders of the active epoch stated RedealReady before this one' },

  // Backups of retired keys (ledger/apply.ts BackupsDestroyed): kept until approvers decide their destruction.
  KEY_NOT_RETIRED: { grpc: GrpcStatus.FAILED_PRECONDITION, text: 'the share backups of a key are destroyed only after the key is retired: this key is still live' },
  BACKUPS_NOT_FOUND: { grpc: GrpcStatus.NOT_FOUND, text: 'the ledger records no share backup of that key epoch, or their destruction was already decided' },
} as const;

export type ReasonCode = keyof typeof REASONS;

export const REASON_CODES = Object.freeze(Object.keys(REASONS) as ReasonCode[]);

export function isReasonCode(x: unknown): x is ReasonCode {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(REASONS, x);
}

export function grpcStatusOf(code: ReasonCode): GrpcStatus {
  return REASONS[code].grpc;
}
