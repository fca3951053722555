/**
 * checkInvariants(state): the properties of DESIGN §3 that must hold in every reachable state,
 * checked from the state alone. Returns the violations found (empty when all hold). The property
 * tests and the cluster simulator call it after every step; a violation is a bug in apply.
 */
import { bytesEqual, toHex } from './encoding.js';
import { validateRoster } from './decision.js';
import { keyReadyCid } from './apply.js';
import { receiptCid } from './receipts.js';
import { type CborValue } from './encoding.js';
import { type ClusterState, type EpochRecord, type LedgerState, type OpState, OP_TRANSITIONS, TERMINAL_OP_STATES, backupsOf, destroyedBackupsOf, drillsOf, fenceReportsOf, recoveriesOf, revocationsOf, repairsOf } from './state.js';
import { ledger as ledgerLimits } from '../proto/limits.js';
import { backupRecordKey, drillRecordKey, validateBackupRecipients } from './backup-policy.js';
import { frostIdentifier } from './signing-set.js';
import { headKeyOf, trustChainBlocks, trustHeadText } from './trust-chain.js';
import { formatPolicyChain, parsePolicy, verifyPolicyChain, witnessSetRefusal } from './tlog/trust-policy.js';
import { checkpointOrigin } from './tlog/ledger-log.js';

function own<T>(m: { readonly [k: string]: T }, k: string): T | undefined {
  return Object.hasOwn(m, k) ? m[k] : undefined;
}

const RECEIPTS_BY_STATE: { readonly [s in OpState]: readonly number[] } = {
  Submitted: [0], Admitted: [1], PendingRemote: [2], Executed: [2], Published: [3], Settled: [3], Denied: [0], Aborted: [1, 2],
};

export function checkInvariants(s: LedgerState): string[] {
  const bad: string[] = [];
  const c = s.cluster;
  if (c === null) {
    if (s.height !== 0) bad.push('events were accepted before genesis');
    return bad;
  }
  const g = c.governance;
  const rv = validateRoster(g.roster);
  if (!rv.ok) bad.push(`roster in force is invalid: ${rv.detail}`);
  if (g.epoch < 0 || g.headCid.length !== 32) bad.push('governance head malformed');
  const revoked = revocationsOf(g);
  if (revoked.length > ledgerLimits.revokedMax) bad.push(`${revoked.length} revocations exceed ${ledgerLimits.revokedMax}`);
  if (new Set(revoked.map((r) => `${r.holder}/${r.serial}`)).size !== revoked.length) bad.push('a certificate is revoked twice');
  // Pending fencing reports: one per target, for its current passport, never for a removed node
  // or a passport already fenced, each with at least one reporter (ledger/apply.ts fencing).
  const reports = fenceReportsOf(c);
  if (reports.length > ledgerLimits.fenceReportsMax) bad.push(`${reports.length} pending fencing reports exceed ${ledgerLimits.fenceReportsMax}`);
  if (new Set(reports.map((r) => r.nodeId)).size !== reports.length) bad.push('two pending fencing reports for one node');
  for (const r of reports) {
    const n = own(c.nodes, r.nodeId);
    if (n === undefined || n.status === 'removed') bad.push(`a fencing report of ${r.nodeId}, which is not on the roster`);
    else if (r.passport !== n.passport || n.fencedPassports.includes(r.passport)) bad.push(`a pending fencing report of ${r.nodeId} names passport ${r.passport}, not its current unfenced one`);
    if (r.reporters.length === 0) bad.push(`a fencing report of ${r.nodeId} with no reporter`);
  }

  // Share backups (ledger/apply.ts keyBackedUp): a policy in force is a valid one, and every record
  // is of a participant of an epoch the ledger holds, under the identifier it holds there.
  if (g.backupPolicy !== undefined) {
    const why = validateBackupRecipients(g.backupPolicy.recipients);
    if (why !== null) bad.push(`the backup policy in force is invalid: ${why}`);
  }
  for (const [rk, b] of Object.entries(backupsOf(c))) {
    if (rk !== backupRecordKey(b.keyId, b.keyEpoch, b.nodeId)) bad.push(`backup record ${rk} is filed under another key`);
    const k = own(c.keys, b.keyId);
    const e = k === undefined ? undefined : own(k.epochs, String(b.keyEpoch));
    const at = e === undefined ? -1 : e.participants.indexOf(b.nodeId);
    if (k === undefined || at < 0) bad.push(`backup of ${b.keyId} epoch ${b.keyEpoch} by ${b.nodeId}, who holds no share of it`);
    else if (b.identifier !== frostIdentifier(k.scheme, at + 1)) bad.push(`backup of ${b.keyId} epoch ${b.keyEpoch} by ${b.nodeId} under identifier ${b.identifier}, not its own`);
    if (g.backupPolicy === undefined) bad.push(`backup of ${b.keyId} epoch ${b.keyEpoch} by ${b.nodeId} without any backup policy`);
  }
  // Share recoveries (ledger/apply.ts recoveryAuthorized, shareRecovered): every record is of a
  // participant of an epoch the ledger holds, under its identifier, reported after its decision.
  for (const [rk, r] of Object.entries(recoveriesOf(c))) {
    if (rk !== backupRecordKey(r.keyId, r.keyEpoch, r.nodeId)) bad.push(`recovery record ${rk} is filed under another key`);
    const k = own(c.keys, r.keyId);
    const e = k === undefined ? undefined : own(k.epochs, String(r.keyEpoch));
    const at = e === undefined ? -1 : e.participants.indexOf(r.nodeId);
    if (k === undefined || at < 0) bad.push(`recovery of ${r.keyId} epoch ${r.keyEpoch} by ${r.nodeId}, who holds no share of it`);
    else if (r.identifier !== frostIdentifier(k.scheme, at + 1)) bad.push(`recovery of ${r.keyId} epoch ${r.keyEpoch} by ${r.nodeId} under identifier ${r.identifier}, not its own`);
    if (r.recovered !== null && r.recovered.index <= r.authorizedIndex) bad.push(`recovery of ${r.keyId} epoch ${r.keyEpoch} by ${r.nodeId} reported before its decision`);
  }

  // Destroyed backups (ledger/apply.ts backupsDestroyed): only of a retired key, of an epoch with a
  // recorded backup, whose KeyBackedUp records stay.
  for (const [dk, d] of Object.entries(destroyedBackupsOf(c))) {
    if (dk !== drillRecordKey(d.keyId, d.keyEpoch)) bad.push(`destroyed-backups record ${dk} is filed under another key`);
    if (own(c.keys, d.keyId)?.status !== 'retired') bad.push(`backups of ${d.keyId} epoch ${d.keyEpoch} destroyed while the key is not retired`);
    if (!Object.values(backupsOf(c)).some((b) => b.keyId === d.keyId && b.keyEpoch === d.keyEpoch)) bad.push(`backups of ${d.keyId} epoch ${d.keyEpoch} destroyed, but none is recorded`);
  }

  // Share repairs (ledger/apply.ts repairAuthorized, shareRepaired): every record is of an epoch
  // the ledger holds; a rebuild is of a participant under its identifier, an enrolment of a node
  // that is none; helpers are participants; a report follows its decision.
  for (const [rk, r] of Object.entries(repairsOf(c))) {
    if (rk !== backupRecordKey(r.keyId, r.keyEpoch, r.nodeId)) bad.push(`repair record ${rk} is filed under another key`);
    const k = own(c.keys, r.keyId);
    const e = k === undefined ? undefined : own(k.epochs, String(r.keyEpoch));
    if (k === undefined || e === undefined) {
      bad.push(`repair of ${r.keyId} epoch ${r.keyEpoch}, an epoch the ledger does not hold`);
      continue;
    }
    const at = e.participants.indexOf(r.nodeId);
    if (r.enrol !== (at < 0)) bad.push(`repair of ${r.keyId} epoch ${r.keyEpoch} for ${r.nodeId} recorded as ${r.enrol ? 'an enrolment of a participant' : 'a rebuild of a non-participant'}`);
    else if (!r.enrol && r.identifier !== frostIdentifier(k.scheme, at + 1)) bad.push(`repair of ${r.keyId} epoch ${r.keyEpoch} for ${r.nodeId} under identifier ${r.identifier}, not its own`);
    if (r.helpers.some((h) => !e.participants.includes(h) || h === r.nodeId)) bad.push(`repair of ${r.keyId} epoch ${r.keyEpoch} for ${r.nodeId} names a helper that holds no share, or the target`);
    if (r.repaired !== null && r.repaired.index <= r.authorizedIndex) bad.push(`repair of ${r.keyId} epoch ${r.keyEpoch} for ${r.nodeId} reported before its decision`);
  }

  // Backup drills (ledger/apply.ts backupDrilled): a record is of an epoch the ledger holds, names
  // each participant's backup at most once, and a passed one names one per participant. (The cids
  // need not be the current records: a later policy replaces the backups a drill opened.)
  for (const [dk, d] of Object.entries(drillsOf(c))) {
    if (dk !== drillRecordKey(d.keyId, d.keyEpoch)) bad.push(`drill record ${dk} is filed under another key`);
    const k = own(c.keys, d.keyId);
    const e = k === undefined ? undefined : own(k.epochs, String(d.keyEpoch));
    if (e === undefined) bad.push(`drill of ${d.keyId} epoch ${d.keyEpoch}, an epoch the ledger does not hold`);
    else if (d.backupCids.length > e.participants.length || (d.passed && d.backupCids.length !== e.participants.length)) {
      bad.push(`drill of ${d.keyId} epoch ${d.keyEpoch} names ${d.backupCids.length} backups of ${e.participants.length} participants${d.passed ? ' and passed' : ''}`);
    }
    if (new Set(d.backupCids.map(toHex)).size !== d.backupCids.length) bad.push(`drill of ${d.keyId} epoch ${d.keyEpoch} names a backup twice`);
  }

  for (const k of Object.values(c.keys)) {
    const epochs = Object.values(k.epochs);
    const active = epochs.filter((e) => e.status === 'active');
    const open = epochs.filter((e) => e.status === 'ceremony' || e.status === 'published');
    if (active.length > 1) bad.push(`key ${k.id} has ${active.length} active epochs`);
    if (open.length > 1) bad.push(`key ${k.id} has ${open.length} ceremonies open`);
    if ((k.status === 'active') !== (k.activeEpoch !== null)) bad.push(`key ${k.id} is ${k.status} with active epoch ${k.activeEpoch}`);
    if (k.activeEpoch !== null) {
      const e = k.epochs[String(k.activeEpoch)];
      if (e === undefined || e.status !== 'active') bad.push(`key ${k.id} active at epoch ${k.activeEpoch} without an active epoch record`);
    }
    for (const e of epochs) bad.push(...checkEpoch(k.id, k.publicKey, e));
  }

  let ops = 0;
  let live = 0;
  for (const op of Object.values(c.ops)) {
    ops++;
    if (!TERMINAL_OP_STATES.includes(op.state)) live++;
    const h = op.history;
    if (h.length < 2 || h[0]?.state !== 'Submitted') bad.push(`act ${op.opId} history does not start Submitted`);
    for (let i = 1; i < h.length; i++) {
      const from = (h[i - 1] as { state: OpState }).state;
      const to = (h[i] as { state: OpState }).state;
      if (!OP_TRANSITIONS[from].includes(to)) bad.push(`act ${op.opId} moved ${from} -> ${to}`);
      if ((h[i] as { index: number }).index < (h[i - 1] as { index: number }).index) bad.push(`act ${op.opId} history runs backwards`);
    }
    if (h[h.length - 1]?.state !== op.state) bad.push(`act ${op.opId} is ${op.state} but its history ends elsewhere`);
    if ((op.state === 'Denied' || op.state === 'Aborted') !== (op.reason !== null)) bad.push(`act ${op.opId} is ${op.state} with reason ${op.reason}`);
    if (!RECEIPTS_BY_STATE[op.state].includes(op.receipts.length)) bad.push(`act ${op.opId} is ${op.state} with ${op.receipts.length} receipts`);
    for (let i = 0; i < op.receipts.length; i++) {
      const prev = (op.receipts[i] as { prev?: CborValue }).prev;
      const ok = i === 0 ? prev === null : prev instanceof Uint8Array && bytesEqual(prev, receiptCid(op.receipts[i - 1] as CborValue));
      if (!ok) bad.push(`act ${op.opId} receipt ${i} is not linked to its predecessor`);
    }
    const admittedAt = h.find((x) => x.state === 'Admitted')?.index;
    // The rule that admitted an act is recorded with it and named by its AdmissionReceipt; a denial
    // by the rules never records an ALLOW.
    if (admittedAt !== undefined) {
      if (op.rule === null || op.rule.action === 'BLOCK') bad.push(`act ${op.opId} was admitted without an admitting rule`);
      else if ((op.receipts[0] as { ruleId?: CborValue } | undefined)?.ruleId !== op.rule.id) bad.push(`act ${op.opId}: its AdmissionReceipt names another rule than its record`);
    } else if (op.rule !== null && op.rule.action === 'ALLOW') bad.push(`act ${op.opId} is ${op.state} with an allowing rule`);
    if (g.frozen !== null && admittedAt !== undefined && admittedAt > g.frozen.sinceIndex) bad.push(`act ${op.opId} admitted while frozen`);
    // An admitted act is a custodian's signed request, kept with it (ledger/act-request-check.ts).
    // The signature was checked against the roster in force at admission, which may have changed
    // since; what must always hold is that the act is exactly the request.
    if (admittedAt !== undefined) {
      const r = op.request?.body;
      if (r === undefined) bad.push(`act ${op.opId} was admitted without a custodian's request`);
      else if (r.requestId !== op.opId || r.custodian !== op.act.initiator || r.keyId !== op.act.keyId || r.keyEpoch !== op.act.keyEpoch || r.kind !== op.act.kind || !bytesEqual(r.tx, op.act.tx)) {
        bad.push(`act ${op.opId} is not the request it was admitted with`);
      }
    }
    const pastPermit = ['Executed', 'Published', 'Settled'].includes(op.state);
    if (op.state === 'PendingRemote' || pastPermit) {
      const p = op.permitId === null ? undefined : c.permits[toHex(op.permitId)];
      if (p === undefined || p.opId !== op.opId) bad.push(`act ${op.opId} is ${op.state} without its permit`);
      else if (p.used !== pastPermit) bad.push(`act ${op.opId} is ${op.state} with a permit ${p.used ? 'used' : 'unused'}`);
      if (pastPermit && (op.signatures === null || op.signatures.length === 0)) bad.push(`act ${op.opId} is ${op.state} without a signature`);
      if (pastPermit && op.signatures !== null && op.signingSet !== null && op.signingSet.commitments.some((m) => m.nonces.length !== op.signatures?.length)) {
        bad.push(`act ${op.opId} is ${op.state} with ${op.signatures.length} signatures but a signing set of another message count`);
      }
      if (pastPermit && op.signingSet === null) bad.push(`act ${op.opId} is ${op.state} without a fixed signing set`);
    }
    if (op.state === 'Aborted' && op.permitId !== null && c.permits[toHex(op.permitId)]?.used !== true) bad.push(`aborted act ${op.opId} left a usable permit`);
    if (op.signingSet !== null && op.signingSet.commitments.some((m) => m.nonces.some((n, i) => i > 0 && n.counter <= (m.nonces[i - 1] as { counter: number }).counter))) {
      bad.push(`act ${op.opId} has a signing set whose nonce counters do not ascend`);
    }
    if (op.signingSet !== null && (op.permitId === null || op.signingSet.index < (h.find((x) => x.state === 'PendingRemote')?.index ?? Infinity))) bad.push(`act ${op.opId} has a signing set without a permit before it`);
  }
  // Ended acts are counted by the archive accumulator whether they stay in memory or not.
  if (live !== c.inFlight) bad.push(`inFlight ${c.inFlight} but ${live} acts in flight`);
  if (c.inFlight + c.archived.count !== c.opCount) bad.push(`opCount ${c.opCount} but ${c.inFlight} in flight and ${c.archived.count} ended`);
  if (ops > c.opCount) bad.push(`opCount ${c.opCount} but ${ops} acts held`);
  const endedSum = Object.values(c.endedByState).reduce((x, y) => x + y, 0);
  if (endedSum !== c.archived.count) bad.push(`${endedSum} ended acts by state but ${c.archived.count} archived`);
  for (const [hex, p] of Object.entries(c.permits)) {
    const op = own(c.ops, p.opId);
    if (op === undefined || op.permitId === null || toHex(op.permitId) !== hex) bad.push(`permit ${hex} is not the permit of act ${p.opId}`);
  }
  for (const n of Object.values(c.nodes)) {
    const fenced = n.fencedPassports.includes(n.passport);
    if ((n.status === 'fenced') !== fenced && n.status !== 'removed') bad.push(`node ${n.id} is ${n.status} but its passport is ${fenced ? '' : 'not '}fenced`);
  }
  bad.push(...checkTrustChain(c));
  return bad;
}

/**
 * The trust policy chain (ledger/trust-chain.ts): absent until the policy first changed (so no
 * witness set without it); the kept blocks are a chain an auditor accepts from their genesis (each
 * signed by a quorum of the block before it), within the bound; the signatures kept for the
 * waiting block are distinct nodes of the head, fewer than its quorum; the witness set formats.
 */
function checkTrustChain(c: ClusterState): string[] {
  const t = c.trustChain;
  if (t === undefined) return c.witnesses === undefined ? [] : ['a witness set is recorded but no trust policy chain'];
  const bad: string[] = [];
  if (t.blocks.length + 1 > ledgerLimits.trustChainBlocksMax) bad.push(`the trust policy chain keeps ${t.blocks.length + 1} blocks`);
  try {
    verifyPolicyChain(formatPolicyChain(trustChainBlocks(c)), t.genesis);
  } catch (e) {
    bad.push(`the kept trust policy chain does not verify: ${(e as Error).message}`);
    return bad;
  }
  if (t.pending !== null) {
    const head = parsePolicy(trustHeadText(c) as string);
    const ids = t.pending.signatures.map((x) => x.nodeId);
    if (new Set(ids).size !== ids.length || ids.some((id) => headKeyOf(head, id) === undefined)) bad.push('a signature kept for the waiting trust policy block is not of a distinct node of the head');
    if (ids.length >= head.quorum) bad.push(`${ids.length} signatures kept for a trust policy block the head's quorum ${head.quorum} would have completed`);
  }
  if (c.witnesses !== undefined && witnessSetRefusal(checkpointOrigin(c.clusterId), c.witnesses.vkeys, c.witnesses.quorum) !== null) bad.push('the recorded witness set is not a policy\'s witness lines');
  return bad;
}

function checkEpoch(keyId: string, publicKey: Uint8Array | null, e: EpochRecord): string[] {
  const bad: string[] = [];
  const at = `key ${keyId} epoch ${e.epoch}`;
  if (e.threshold < 2 || e.threshold > e.participants.length) bad.push(`${at}: threshold ${e.threshold} of ${e.participants.length}`);
  const everPublished = e.keyReadyCid !== null;
  if (['published', 'active', 'superseded'].includes(e.status) && !everPublished) bad.push(`${at} is ${e.status} but was never published`);
  if (everPublished) {
    // Published means every participant completed both rounds and named one group key.
    const ready = e.participants.map((p) => own(e.ready, p));
    if (ready.some((r) => r === undefined) || e.participants.some((p) => own(e.round1, p) === undefined)) bad.push(`${at} published before the ceremony completed`);
    else if (e.groupKey === null || !bytesEqual(e.keyReadyCid as Uint8Array, keyReadyCid(keyId, e.epoch, e.groupKey, ready.map((r) => (r as { statementCid: Uint8Array }).statementCid)))) {
      bad.push(`${at} key_ready_cid does not name its KeyReady statements`);
    }
    if (publicKey === null || e.groupKey === null || !bytesEqual(publicKey, e.groupKey)) bad.push(`${at} group key differs from the key's public key`);
  }
  // Key exists != key is authority: an epoch becomes authority only through an activation decision.
  if ((e.activatedBy !== null) !== ['active', 'superseded'].includes(e.status) && e.status !== 'retired') bad.push(`${at} is ${e.status} with activatedBy ${e.activatedBy === null ? 'unset' : 'set'}`);
  if (e.activatedBy !== null && !everPublished) bad.push(`${at} activated without KeyObjectPublished`);
  return bad;
}
