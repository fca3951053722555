/**
 * The proposer's signature over a journal event (ledger/events.ts Proposer.sig). Pure.
 *
 * Message: "custody-ledger/v1/proposer" || 0x00 || CBOR({ clusterId, event }) where `event` is the
 * canonical encoding of the event with its `sig` field omitted (ledger/encoding.ts; the same map
 * the entry carries, minus one key). The signer is the node the event names (`nodeId`), with the
 * Ed25519 identity key the ledger holds for it (NodeRecord.identityKey), the key of its signed
 * statements and checkpoint cosignatures. The domain tag keeps the signature from being read as
 * a statement, a clock reading or a cosignature by the same key; the cluster id keeps an event
 * signed for one cluster from being appended to another's log.
 *
 * Threat: the node that proposes is trusted only for its own events. A hostile leader or any
 * host that can append to the log knows every passport (they are public) but not another node's
 * identity key, so it cannot journal an event in that node's name; it can only withhold, delay,
 * restamp or replay events that node signed, which the leader can always do (Raft tolerates
 * crashes, not lies: a hostile leader can still refuse to append).
 *
 * What is not signed, and why that is harmless:
 *  - The stamp (the leader stamps the entry, DESIGN §3). Restamping moves the time within the
 *    bound every replica enforces (ledger/apply.ts stampRefusal), which the leader can do with a
 *    ClockTick of its own anyway; the ledger clock never runs backwards.
 *  - The index. A replay of a signed event at a later index is a state transition of one act that
 *    has already happened: act states only move forward (ledger/state.ts OP_TRANSITIONS), so a
 *    replayed ActPermitIssued, ActSigningSetFixed, ActExecuted, ActPublished, ActSettled or
 *    ActAborted is refused INVALID_TRANSITION (or is the idempotent replay of an ActSubmitted,
 *    which changes nothing); a replayed ClockTick only moves the clock to a stamp the leader
 *    could give anyway, never backwards; a replayed TrustPolicySigned finds its signature kept
 *    (a replay, nothing changes) or names a block that no longer waits (refused).
 */
import { domainMessage, encode } from './encoding.js';
import { ed25519Sign, ed25519Verify } from './decision.js';
import { type LedgerEvent, type Proposer, eventToCbor } from './events.js';

export const PROPOSER_DOMAIN = 'custody-ledger/v1/proposer';

/** The journal events a node proposes in its own name. */
export type ProposedEvent = Extract<LedgerEvent, Proposer>;

const PROPOSED_TYPES: ReadonlySet<string> = new Set([
  'ActSubmitted', 'ActPermitIssued', 'ActSigningSetFixed', 'ActExecuted', 'ActPublished', 'ActSettled', 'ActAborted', 'ActDenialRecorded', 'ClockTick', 'KeyBackedUp', 'BackupDrilled', 'ShareRecovered', 'ShareRepaired', 'OperatorCall', 'TrustPolicySigned',
]);

export function isProposed(e: LedgerEvent): e is ProposedEvent {
  return PROPOSED_TYPES.has(e.type);
}

/** The bytes the proposer signs: the event without `sig`, bound to the cluster. */
export function proposerSigningBytes(clusterId: string, e: ProposedEvent): Uint8Array {
  const unsigned: { sig?: Uint8Array } = { ...e };
  delete unsigned.sig;
  return domainMessage(PROPOSER_DOMAIN, encode({ clusterId, event: eventToCbor(unsigned as LedgerEvent) }));
}

/** The event signed by its proposer's identity secret key (a 32-byte Ed25519 seed); any earlier sig is replaced. */
export function signProposed<E extends ProposedEvent>(clusterId: string, e: E, identitySecretKey: Uint8Array): E {
  return { ...e, sig: ed25519Sign(proposerSigningBytes(clusterId, e), identitySecretKey) };
}

/** True when `e.sig` is present and verifies under `identityKey` for this cluster. */
export function verifyProposed(clusterId: string, e: ProposedEvent, identityKey: Uint8Array): boolean {
  if (e.sig === undefined) return false;
  return ed25519Verify(e.sig, proposerSigningBytes(clusterId, e), identityKey);
}
