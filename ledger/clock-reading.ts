/**
 * Clock readings: a node's signed statement "my clock read T", and the time a majority of the
 * voters attests with them (ledger/apply.ts stampRefusal says what the ledger does with it).
 *
 *   ClockReading { clusterId, nodeId, clockMs, signature }
 *     signature  raw 64-byte Ed25519 signature, under the node's identity key (the key its
 *                statements and checkpoint cosignatures are signed with), over
 *                domainMessage('custody-ledger/v1/clock-reading', CBOR { clusterId, nodeId, clockMs })
 *
 * The domain tag keeps a reading from being taken for any other signed statement of the node (and
 * the reverse); the cluster id keeps a reading of one cluster from counting in another; the node id
 * names whose key must verify it. A reading carries no nonce and no expiry on purpose: it only
 * ever vouches that a time was reached, and the ledger clock never runs backwards, so replaying an
 * old reading vouches for a past time and moves nothing.
 *
 * Pure: no clock, no randomness; the caller passes the time it read and the key it signs with.
 */
import { ledger as limits } from '../proto/limits.js';
import { type CborValue, domainMessage, encode } from './encoding.js';
import { ShapeError, arr, bytes, ed25519Sign, ed25519Verify, int, obj, str } from './decision.js';
import { type NodeRecord, rosterVoters } from './state.js';

export const CLOCK_READING_DOMAIN = 'custody-ledger/v1/clock-reading';

export interface ClockReading {
  readonly clusterId: string;
  readonly nodeId: string;
  /** The node's wall clock when it signed, in ms since the epoch. */
  readonly clockMs: number;
  readonly signature: Uint8Array;
}

export type UnsignedClockReading = Omit<ClockReading, 'signature'>;

export function clockReadingSigningBytes(r: UnsignedClockReading): Uint8Array {
  return domainMessage(CLOCK_READING_DOMAIN, encode({ clusterId: r.clusterId, nodeId: r.nodeId, clockMs: r.clockMs }));
}

export function signClockReading(r: UnsignedClockReading, identitySecretKey: Uint8Array): ClockReading {
  if (!Number.isSafeInteger(r.clockMs) || r.clockMs < 0) throw new ShapeError(`clock reading: ${r.clockMs} is no time`);
  return { ...r, signature: ed25519Sign(clockReadingSigningBytes(r), identitySecretKey) };
}

/** Whether `r` is `nodeId`'s reading for `clusterId`, signed under `identityKey`. */
export function verifyClockReading(r: ClockReading, clusterId: string, identityKey: Uint8Array): boolean {
  return r.clusterId === clusterId && ed25519Verify(r.signature, clockReadingSigningBytes(r), identityKey);
}

export function clockReadingToCbor(r: ClockReading): CborValue {
  return { clusterId: r.clusterId, nodeId: r.nodeId, clockMs: r.clockMs, signature: r.signature };
}

export function clockReadingFromCbor(v: CborValue | undefined, what = 'reading'): ClockReading {
  const o = obj(v, what, ['clusterId', 'nodeId', 'clockMs', 'signature']);
  return { clusterId: str(o.clusterId, `${what}.clusterId`), nodeId: str(o.nodeId, `${what}.nodeId`), clockMs: int(o.clockMs, `${what}.clockMs`), signature: bytes(o.signature, `${what}.signature`, 64) };
}

export function clockReadingsFromCbor(v: CborValue | undefined): ClockReading[] {
  return arr(v, 'readings', limits.clockReadingsMax).map((x, i) => clockReadingFromCbor(x, `readings[${i}]`));
}

/**
 * The time a majority of the roster's voters attests, or null when the readings carry no majority.
 *
 * Counted: readings of `clusterId` by a voter (rosterVoters: every node not removed) whose
 * signature verifies under that voter's identity key on the roster. Not counted: readings by
 * non-voters or removed nodes, for another cluster, with a bad signature; a voter's second reading
 * adds no voter. If the counted readings come from a majority of the voters (more than half),
 * the attested time is the smallest counted reading: any majority includes a voter that tells the
 * truth when at most a minority lies, so the smallest reading of a majority is no later than some
 * honest clock. Else null.
 */
export function attestedTime(nodes: { readonly [id: string]: NodeRecord }, clusterId: string, readings: readonly ClockReading[]): number | null {
  if (readings.length === 0) return null;
  const voters = new Map(rosterVoters(nodes).map((n) => [n.id, n]));
  const quorum = Math.floor(voters.size / 2) + 1;
  const counted = new Set<string>();
  let smallest = Number.POSITIVE_INFINITY;
  for (const r of readings.slice(0, limits.clockReadingsMax)) {
    const v = voters.get(r.nodeId);
    if (v === undefined || !verifyClockReading(r, clusterId, v.identityKey)) continue;
    counted.add(r.nodeId);
    smallest = Math.min(smallest, r.clockMs);
  }
  return counted.size >= quorum ? smallest : null;
}

/**
 * The readings a proposer carries, chosen from valid answers so that one low reading (a lagging or
 * lying minority voter) does not drag the attested time back: one reading per voter, the latest
 * `quorum` of them. Safe for the same reason as attestedTime: the smallest of any majority is no
 * later than an honest clock, whichever majority is chosen. Readings that would not count
 * (non-voter, other cluster, bad signature) are left out.
 */
export function chooseReadings(nodes: { readonly [id: string]: NodeRecord }, clusterId: string, readings: readonly ClockReading[]): ClockReading[] {
  const voters = new Map(rosterVoters(nodes).map((n) => [n.id, n]));
  const quorum = Math.floor(voters.size / 2) + 1;
  const best = new Map<string, ClockReading>();
  for (const r of readings) {
    const v = voters.get(r.nodeId);
    if (v === undefined || !verifyClockReading(r, clusterId, v.identityKey)) continue;
    const had = best.get(r.nodeId);
    if (had === undefined || r.clockMs > had.clockMs) best.set(r.nodeId, r);
  }
  return [...best.values()].sort((a, b) => b.clockMs - a.clockMs || (a.nodeId < b.nodeId ? -1 : 1)).slice(0, quorum);
}
