/**
 * The one place that verifies transparency-log statements: RFC 9162 Merkle trees and proofs,
 * C2SP signed notes, checkpoints and cosignatures. Pure; the kernel, `custody evidence verify`
 * and a witness import it.
 *
 *   merkle.ts      hashing, MTH, inclusion / consistency proofs, CompactTree
 *   note.ts        signed notes, verifier keys, Ed25519 and cosignature signers
 *   checkpoint.ts  checkpoint text, signCheckpoint, certified(note, trust)
 *   proof.ts       C2SP tlog-proof: one entry's inclusion proof under a cosigned checkpoint
 *   witness.ts     C2SP tlog-witness add-checkpoint: the witness's decision, pure
 *   ledger-log.ts  the cluster event log as a tlog: leaves, origin, node signer names, certificates
 *   trust-policy.ts  an auditor's trust policy: origin, node keys, quorum, witnesses, its chain
 */
export * from './merkle.js';
export * from './note.js';
export * from './checkpoint.js';
export * from './proof.js';
export * from './witness.js';
export * from './ledger-log.js';
export * from './trust-policy.js';
