/**
 * The daemon's part of recovering a kernel's share from its backup (kernel/recovery.ts has the
 * whole flow and its safety argument): `custody admin share import` hands this node a sealed-share
 * file, which it forwards to its own kernel's importShare with the two public facts the kernel
 * needs and cannot read from the file.
 *
 * Message flow:
 *   1. the operator sends the file (custody-sealed-share/v1: key, epoch, identifier, backup cid,
 *      one HPKE package to this kernel's transport key); the daemon parses it (PAYLOAD_REJECTED);
 *   2. from its replica: the key is active at that epoch (KEY_NOT_ACTIVE, STALE_EPOCH) and names
 *      this node a participant (WRONG_RECIPIENT); the ledger's consumed nonce counter of this node
 *      for the key epoch (the running maximum of executed signing sets, ledger/state.ts consumed);
 *   3. the key epoch's public package from the exchange: each participant's daemon puts its own
 *      kernel's copy there; only one that matches the ledger's group key and committee is used
 *      (publicMatchesLedger), and if the kernel refuses it BINDING_MISMATCH the next one is tried;
 *   4. importShare through the participant's queue (after every decision forwarded so far, so the
 *      kernel holds the RecoveryAuthorized this replica shows); every refusal keeps its code;
 *   5. once the kernel accepted, the node proposes ShareRecovered { key, epoch, identifier, cid of
 *      the RecoveryAuthorized the ledger recorded for it } in its own name (ledger/apply.ts
 *      shareRecovered checks it names that decision, once); the reply says whether the ledger
 *      recorded it (an import is never undone for a report the ledger did not take).
 *   6. the same file again, after an import whose report was lost (the daemon stopped, or every
 *      proposal failed): the kernel refuses SHARE_ALREADY_HELD, and the node asks the kernel's
 *      status. If the kernel holds the share under the decided identifier, has followed the
 *      RecoveryAuthorized (its governance index reaches the decision's) and holds no unused grant
 *      for the key any more (only an import consumes one), the import happened under that
 *      decision, and step 5 runs now: re-running the command completes a lost report. Otherwise
 *      (the kernel held its share all along, so its grant is still unused) the refusal stands and
 *      nothing is recorded.
 *
 * Trust: the daemon is not trusted with the share nor for the package. It never sees the share
 * (the package opens only inside the kernel); a package it forged or took from a lying peer is
 * refused by the kernel, which checks it against the group key and verifying share of the
 * RecoveryAuthorized decision it verified itself, and the commitment polynomial. The consumed
 * counter only raises the kernel's own nonce counter (it starts above the larger of the two), so
 * a daemon passing a lower one cannot make the kernel number a nonce below one it drew.
 */
import { CustodyError, isCustodyError } from '../../proto/errors.js';
import { lifecycle as limits } from '../../proto/limits.js';
import { consumedKey, recoveriesOf, type ClusterState } from '../../ledger/state.js';
import { backupRecordKey } from '../../ledger/backup-policy.js';
import { toHex } from '../../ledger/encoding.js';
import { decodeSealedShare } from '../../kernel/recovery.js';
import type { PublicPackage } from '../../kernel/wire.js';
import { keys, publicFromBytes, publicMatchesLedger } from './participant.js';
import { kernelEpoch } from './kernel-port.js';
import type { Exchange, KernelPort, LedgerPort } from './ports.js';

export interface ShareImportOptions {
  readonly nodeId: string;
  readonly ledger: LedgerPort;
  /** This node's kernel, through the participant's queue (after every decision it forwarded). */
  readonly kernel: KernelPort;
  readonly exchange: Exchange;
  readonly log: (line: string) => void;
  /** The pause between ShareRecovered proposals that failed without a verdict (injected in tests). */
  readonly retryMs?: number;
}

export interface KernelStatusView {
  readonly nodeId: string;
  readonly profile: string;
  readonly transportPublicKey: string;
  readonly governanceIndex: number;
  readonly frozen: boolean;
  readonly fenced: boolean;
  readonly keys: readonly { readonly keyId: string; readonly keyEpoch: number; readonly identifier: string; readonly consumedCounter: number }[];
}

export interface ShareImportView {
  readonly keyId: string;
  readonly keyEpoch: number;
  readonly identifier: string;
  readonly groupKey: string;
  readonly consumedCounter: number;
  /** Ledger index of the ShareRecovered that records the import; 0 when the ledger did not take it. */
  readonly recordedIndex: number;
  /** Why the ledger did not record it ("REASON: detail"); empty when it did. */
  readonly recordRefused: string;
  /** The kernel held the share from an earlier import under the decision (step 6): this call imported nothing. */
  readonly earlier: boolean;
}

/** The kernel's status, public facts only (no commitments, no checkpoint it follows). */
export async function kernelStatusView(kernel: KernelPort): Promise<KernelStatusView> {
  const st = await kernel.call({ kind: 'status' }, 'status');
  return {
    nodeId: st.nodeId, profile: st.profile, transportPublicKey: toHex(st.transportPublicKey), governanceIndex: st.governanceIndex, frozen: st.frozen, fenced: st.fenced,
    keys: st.keys.map((k) => ({ keyId: k.keyId, keyEpoch: k.epoch, identifier: k.identifier, consumedCounter: k.consumedCounter })),
  };
}

function cluster(ledger: LedgerPort): ClusterState {
  const c = ledger.state().cluster;
  if (c === null) throw new CustodyError('GENESIS_MISSING', 'the cluster has no genesis yet');
  return c;
}

/** Proposes ShareRecovered under the RecoveryAuthorized this replica records for the node (step 5). */
async function recordRecovery(o: ShareImportOptions, keyId: string, keyEpoch: number, identifier: string): Promise<{ recordedIndex: number; recordRefused: string }> {
  const c = cluster(o.ledger);
  const rec = recoveriesOf(c)[backupRecordKey(keyId, keyEpoch, o.nodeId)];
  const me = c.nodes[o.nodeId];
  if (rec === undefined || me === undefined) return { recordedIndex: 0, recordRefused: `RECOVERY_NOT_AUTHORIZED: this replica records no RecoveryAuthorized of ${o.nodeId} for ${keyId} epoch ${keyEpoch}` };
  let why = '';
  for (let attempt = 1; attempt <= limits.shareRecoveredProposeAttempts; attempt++) {
    try {
      const v = await o.ledger.propose({ type: 'ShareRecovered', keyId, keyEpoch, identifier, decisionCid: rec.decisionCid, nodeId: o.nodeId, passport: me.passport });
      if (v.ok) return { recordedIndex: v.index, recordRefused: '' };
      o.log(`${o.nodeId}: the ledger refused ShareRecovered of ${keyId} epoch ${keyEpoch}: ${v.reason ?? ''} ${v.detail}`);
      return { recordedIndex: 0, recordRefused: `${v.reason ?? 'INTERNAL'}: ${v.detail}` };
    } catch (err) {
      why = isCustodyError(err) ? `${err.reason}: ${err.detail}` : `INTERNAL: ${(err as Error).message}`;
      o.log(`${o.nodeId}: proposing ShareRecovered of ${keyId} epoch ${keyEpoch} failed (try ${attempt} of ${limits.shareRecoveredProposeAttempts}): ${why}`);
    }
    if (attempt < limits.shareRecoveredProposeAttempts) await new Promise((r) => setTimeout(r, o.retryMs ?? limits.shareRecoveredRetryMs));
  }
  return { recordedIndex: 0, recordRefused: why };
}

/** Step 6: the kernel already holds the share; report it if an import under the decision put it there. */
async function completeEarlierImport(o: ShareImportOptions, keyId: string, keyEpoch: number, groupKey: string, consumed: number, refusal: CustodyError): Promise<ShareImportView> {
  const rec = recoveriesOf(cluster(o.ledger))[backupRecordKey(keyId, keyEpoch, o.nodeId)];
  if (rec === undefined) throw refusal;
  const st = await o.kernel.call({ kind: 'status' }, 'status');
  const held = st.keys.find((k) => k.keyId === keyId && k.epoch === kernelEpoch(keyEpoch));
  const unused = st.recoveriesPending.some((g) => g.keyId === keyId);
  if (held?.identifier !== rec.identifier || unused || st.governanceIndex < rec.authorizedIndex) {
    throw new CustodyError('SHARE_ALREADY_HELD', `${refusal.detail}, and not from an import under the RecoveryAuthorized at index ${rec.authorizedIndex} (${unused ? 'the kernel has not used that grant' : held === undefined ? 'the kernel lists no such share' : held.identifier !== rec.identifier ? `its identifier is ${held.identifier}, not ${rec.identifier}` : 'the kernel has not followed that decision'}): nothing recorded`);
  }
  o.log(`${o.nodeId}: the kernel already imported its share of ${keyId} epoch ${keyEpoch} under the RecoveryAuthorized at index ${rec.authorizedIndex}; ${rec.recovered === null ? 'reporting it now' : `recorded at index ${rec.recovered.index}`}`);
  const recorded = rec.recovered !== null ? { recordedIndex: rec.recovered.index, recordRefused: '' } : await recordRecovery(o, keyId, keyEpoch, rec.identifier);
  return { keyId, keyEpoch, identifier: rec.identifier, groupKey, consumedCounter: consumed, ...recorded, earlier: true };
}

/** Imports a sealed-share file into this node's kernel (steps 1-4 above; step 6 for the same file again). */
export async function importSealedShare(o: ShareImportOptions, file: Uint8Array): Promise<ShareImportView> {
  const f = decodeSealedShare(file);
  const c = cluster(o.ledger);
  const k = c.keys[f.keyId];
  if (k === undefined || k.status !== 'active' || k.activeEpoch === null) throw new CustodyError('KEY_NOT_ACTIVE', `key ${f.keyId} is not active`);
  if (f.epoch !== k.activeEpoch) throw new CustodyError('STALE_EPOCH', `epoch ${k.activeEpoch} of ${f.keyId} is active, not ${f.epoch}`);
  const e = k.epochs[String(f.epoch)];
  if (e === undefined || e.groupKey === null) throw new CustodyError('KEY_NOT_ACTIVE', `key ${f.keyId} epoch ${f.epoch} has no group key`);
  if (!e.participants.includes(o.nodeId)) throw new CustodyError('WRONG_RECIPIENT', `node ${o.nodeId} holds no share of ${f.keyId} epoch ${f.epoch} by governance`);
  const consumed = Object.hasOwn(c.consumed, consumedKey(f.keyId, f.epoch, o.nodeId)) ? (c.consumed[consumedKey(f.keyId, f.epoch, o.nodeId)] as number) : 0;

  // The exchange is untrusted: what is not a package, or not the ledger's, is passed over.
  const tried: string[] = [];
  for (const p of e.participants) {
    const b = await o.exchange.get(keys.publicPackage(f.keyId, f.epoch, p));
    if (b === undefined) continue;
    let pub: PublicPackage;
    try {
      pub = publicFromBytes(b);
    } catch {
      tried.push(`${p}: not a public key package`);
      continue;
    }
    if (!publicMatchesLedger(pub, k.scheme, e)) {
      tried.push(`${p}: its group key or committee is not the ledger's`);
      continue;
    }
    try {
      const r = await o.kernel.call({ kind: 'importShare', keyId: f.keyId, epoch: kernelEpoch(f.epoch), identifier: f.identifier, public: pub, sealed: f.sealed, ledgerConsumedCounter: consumed }, 'keyPackage');
      o.log(`${o.nodeId}: the kernel imported its share of ${f.keyId} epoch ${f.epoch} (identifier ${r.identifier}) recovered from backup ${toHex(f.backupCid)}, nonces above ${consumed}`);
      const recorded = await recordRecovery(o, f.keyId, f.epoch, r.identifier);
      return { keyId: f.keyId, keyEpoch: f.epoch, identifier: r.identifier, groupKey: toHex(e.groupKey), consumedCounter: consumed, ...recorded, earlier: false };
    } catch (err) {
      if (isCustodyError(err) && err.reason === 'SHARE_ALREADY_HELD') return completeEarlierImport(o, f.keyId, f.epoch, toHex(e.groupKey), consumed, err);
      if (!isCustodyError(err) || err.reason !== 'BINDING_MISMATCH') throw err;
      tried.push(`${p}: refused by the kernel: ${err.detail}`);
    }
  }
  throw new CustodyError('PUBLIC_PACKAGE_UNAVAILABLE', `no public package of ${f.keyId} epoch ${f.epoch} the kernel accepts${tried.length > 0 ? ` (${tried.join('; ')})` : ': no participant serves one'}`);
}
