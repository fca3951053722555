/**
 * Who holds a share of a key epoch and may therefore stand in its signing sets. Pure.
 *
 *   1. The epoch's participants, as the DKG, refresh or reshare decision listed them: participant
 *      i (0-based) is FROST identifier i + 1 (RFC 9591 §4.1; participant.ts identifierOf).
 *   2. Nodes enrolled by repair (ledger/apply.ts repairAuthorized, kernel/repair.ts; the
 *      Repairable Threshold Scheme, Laing and Stinson, eprint 2017/1155): a RepairAuthorized whose
 *      target held no share of the epoch names an identifier past the participants, and the
 *      target's ShareRepaired says its kernel holds the share for it. Until that report the node
 *      holds nothing the ledger knows of, and it is no signer.
 *
 * Why an enrolled holder may sign without weakening the threshold: repair evaluates the epoch's
 * one secret polynomial f at the new identifier, so the new share is f(j) on the same polynomial
 * of degree t - 1. Any t of the points {f(1..n), f(j)} interpolate the same secret; fewer than t
 * reveal nothing of it (Shamir), so the threshold stays t and the group key is unchanged. What
 * the enrolment adds is one more holder, which governance decided (the RepairAuthorized, approved
 * like any decision). A node's kernel checked share·G against the verifying share it interpolated
 * from the epoch's recorded ones before keeping the share; the ShareRepaired carries that
 * verifying share, which the coordinator uses to check the node's signature shares (RFC 9591
 * §5.4), and every aggregate is verified under the group key before it is proposed.
 *
 * A later RepairAuthorized for the same node and epoch replaces the record and clears its report
 * (ledger/apply.ts), so the node stops being a signer until it reports the new repair.
 *
 * Order: by identifier, the order of a FROST commitment list (RFC 9591 §5.2): participants first
 * (positions 1..n), then enrolled holders by their positions past n.
 */
import { kernel as kernelLimits } from '../proto/limits.js';
import type { KeyScheme } from './decision.js';
import { frostIdentifier } from './signing-set.js';
import { type ClusterState, type EpochRecord, repairsOf } from './state.js';

export interface EpochSigner {
  readonly nodeId: string;
  /** Its FROST identifier (hex, serialized scalar) in the epoch. */
  readonly identifier: string;
  /** The scalar of the identifier: 1..n for participants, past n for enrolled holders. */
  readonly position: number;
  /** True for a holder enrolled by repair (not a participant of the epoch). */
  readonly enrolled: boolean;
  /** An enrolled holder's verifying share, as its ShareRepaired reported it; null for participants. */
  readonly verifyingShare: Uint8Array | null;
}

/** The position of a FROST identifier past the epoch's participants, or 0 when it is none of them. */
export function enrolledPosition(scheme: KeyScheme, ep: EpochRecord, identifier: string): number {
  for (let n = ep.participants.length + 1; n <= kernelLimits.participantsMax; n++) if (frostIdentifier(scheme, n) === identifier) return n;
  return 0;
}

/** The share holders of key `keyId` epoch `ep` that may sign, sorted by identifier (the header). */
export function epochSigners(c: ClusterState, scheme: KeyScheme, keyId: string, ep: EpochRecord): EpochSigner[] {
  const out: EpochSigner[] = ep.participants.map((nodeId, i) => ({ nodeId, identifier: frostIdentifier(scheme, i + 1), position: i + 1, enrolled: false, verifyingShare: null }));
  const enrolled: EpochSigner[] = [];
  for (const r of Object.values(repairsOf(c))) {
    if (r.keyId !== keyId || r.keyEpoch !== ep.epoch || !r.enrol || r.repaired === null || ep.participants.includes(r.nodeId)) continue;
    const position = enrolledPosition(scheme, ep, r.identifier);
    if (position === 0) continue; // the ledger accepts no such decision (repairAuthorized); never a signer
    enrolled.push({ nodeId: r.nodeId, identifier: r.identifier, position, enrolled: true, verifyingShare: r.repaired.verifyingShare });
  }
  enrolled.sort((a, b) => a.position - b.position);
  return [...out, ...enrolled];
}

/** The next identifier an enrolment of key epoch `ep` may use: past the participants and every identifier already enrolled. */
export function nextEnrolIdentifier(c: ClusterState, scheme: KeyScheme, keyId: string, ep: EpochRecord): string | null {
  const taken = new Set(Object.values(repairsOf(c)).filter((r) => r.keyId === keyId && r.keyEpoch === ep.epoch).map((r) => r.identifier));
  for (let n = ep.participants.length + 1; n <= kernelLimits.participantsMax; n++) {
    const id = frostIdentifier(scheme, n);
    if (!taken.has(id)) return id;
  }
  return null;
}
