/**
 * The governance ledger: the cluster event log and the operation journal as one deterministic
 * state machine. Import from here; each module documents its own part of the API.
 *
 *   encoding.ts    canonical CBOR (RFC 8949 §4.2.1), cid, strict decoder
 *   decision.ts    GovernanceDecision, approver rosters, verifyDecision (shared with the kernel)
 *   backup-policy.ts  BackupPolicy recipients and KeyBackedUp records (shared with the kernel)
 *   events.ts      LedgerEntry, LedgerEvent, node statements, the typed act
 *   apply.ts       apply(state, entry, archive?) -> { state, result, archived }
 *   archive.ts     ended acts out of memory: the archive reader, its records and accumulator
 *   state.ts       LedgerState, stateRoot, snapshot / restore
 *   admission.ts   the policy seam: admission and publication judged by the rule engine (policy-engine/)
 *   receipts.ts    hash-linked receipts, evidence bundle export and offline verification
 *   invariants.ts  checkInvariants(state)
 *   scenario.ts    ScriptedCluster, deterministic histories for tests, bench, demo and simulator
 *   act-request.ts, act-request-check.ts   a custodian's signed act request, and who may start an act
 *   trust-chain.ts the trust policy chain past genesis: the block after a roster or witness change, its signatures
 */
export * from './encoding.js';
export * from './decision.js';
export * from './backup-policy.js';
export * from './events.js';
export * from './apply.js';
export * from './archive.js';
export * from './state.js';
export * from './admission.js';
export * from './receipts.js';
export * from './invariants.js';
export * from './scenario.js';
export * from './act-request.js';
export * from './act-request-check.js';
