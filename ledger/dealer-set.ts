/**
 * Who deals a refresh / reshare (kernel/redeal.ts): t holders of the active epoch, chosen from
 * those whose kernels answer, the same set on every member. Pure: the ledger and every member
 * derive it from the log alone.
 *
 * Why the log chooses. The dealers' Lagrange coefficients λ_i are taken over the dealer set D, so
 * a dealing is made for one D (its constant commitment is λ_i·Y_i) and every recipient must
 * combine the dealings of that same D. Choosing D from the roster (the first t holders shown
 * active) let a holder whose kernel is dead but whose host is still on the roster be chosen, and
 * the ceremony waited for its dealing for good; and two members reading the roster at different
 * moments could choose two sets. Here D is fixed by entries of the log instead, from the holders
 * that said they can deal.
 *
 * Message flow (node/lifecycle/participant.ts redealStep), after a KeyRefreshed / KeyReshared
 * decision opens epoch e of a key whose active epoch is a (the ceremony's "from" epoch):
 *   1. each holder h of epoch a that is in e's committee asks its own kernel for its public
 *      package of epoch a; only if the kernel answers with the package the ledger committed
 *      (participant.ts publicMatchesLedger) does h sign and propose
 *        RedealReady  statement by h, slot { keyId, keyEpoch: e }, content { fromEpoch: a }
 *      A holder whose kernel is down, or holds no share of a (its store was lost), says nothing.
 *   2. the ledger accepts RedealReady (ledger/apply.ts redealReady, redealReadyRefusal below) only
 *      from a holder of the key's active epoch a that is in e's committee, in good standing on the
 *      roster (admitStatement: not removed, fenced or flagged), while e is in its ceremony, and
 *      only while fewer than t_a holders have said so: it appends h to e.dealersReady, in log order.
 *      The t_a-th accepted RedealReady fixes D; any later one is refused DEALERS_FIXED.
 *   3. every member of e waits until its own replica shows D fixed (redealDealerSet), then runs
 *      the ceremony with exactly D: a dealer in D deals for D, every other member joins; each
 *      combines the dealings of D alone (bound by cid in DkgRound1Published) and states KeyReady.
 *
 * Safety (trusted: the ledger's replication, i.e. every replica applies the same log prefix, and
 * each kernel's own checks; not trusted: any daemon, the exchange, the roster's timing).
 *   - One D per ceremony: D is a pure function of the accepted RedealReady entries of epoch e, and
 *     the ledger never accepts more than t_a of them, so once fixed D never changes. Two replicas
 *     that both show D fixed have applied the entry that fixed it, and by log matching the same
 *     entries before it, hence the same D. A member acts only once its replica shows D fixed, so
 *     no two members ever deal or combine for two different sets; the roster changing while the
 *     ceremony runs changes nothing (before, a member's D depended on when it read the roster).
 *   - Should a daemon nonetheless hand its kernel another set (a bug, a compromised daemon), two
 *     different sharings still cannot result: a recipient kernel accepts a dealing only if its
 *     constant matches λ over the recipient's own D (kernel/redeal.ts check 1) and the dealings of
 *     D sum to the pinned group key (check 3); a mismatch aborts that member's combine, nothing is
 *     replaced, and the old epoch stays in force until a new KeyRefreshed / KeyReshared decision.
 *   - A holder cannot enrol another: RedealReady is a statement signed by the holder itself, and a
 *     second, different one for the same slot is equivocation (recorded, refused). Only holders of
 *     the active epoch can be in D, so a dealer always holds a share to re-deal (check 1 refuses a
 *     dealing of a share the dealer does not hold).
 *   - |D| = t_a exactly: enough for Lagrange interpolation of the same secret at 0, and no more.
 *
 * Liveness: any t_a holders in the committee whose kernels answer fix D; a holder that is dead
 * (kernel down, host stopped, store lost) is never waited for as a dealer. A holder that said it
 * was ready and then lost its kernel before dealing stalls the ceremony; the remedy is the one for
 * any stuck ceremony: a new KeyRefreshed / KeyReshared decision aborts it and opens the next epoch,
 * whose readiness is collected afresh. An automatic re-fix would not finish such a ceremony
 * anyway: a dealer is a member of the committee, and the ledger publishes the new epoch only with
 * every member's KeyReady, which that member's kernel must state.
 */
import type { ReasonCode } from '../proto/reasons.js';
import type { EpochRecord, KeyRecord } from './state.js';

/** The holders that stated RedealReady for epoch `e`, in log order (at most t of the epoch redealt). */
export function dealersReadyOf(e: EpochRecord): readonly string[] {
  return e.dealersReady ?? [];
}

/**
 * The dealer set of the redeal from epoch `old` to epoch `e`, in `old`'s participant order (the
 * order of FROST identifiers), once fixed: the first t_old holders that stated RedealReady. Null
 * while fewer have.
 */
export function redealDealerSet(old: EpochRecord, e: EpochRecord): string[] | null {
  const ready = dealersReadyOf(e);
  if (ready.length < old.threshold) return null;
  const chosen = new Set(ready.slice(0, old.threshold));
  return old.participants.filter((p) => chosen.has(p));
}

/**
 * Why the ledger refuses a RedealReady by `nodeId` for epoch `e` of key `k` redealt from
 * `fromEpoch`, or null when it is accepted (the signer's standing on the roster is checked before,
 * by admitStatement). `e` must be a ceremony epoch the signer is a member of (ceremonyFor).
 */
export function redealReadyRefusal(k: KeyRecord, e: EpochRecord, nodeId: string, fromEpoch: number): { reason: ReasonCode; detail: string } | null {
  if (e.epoch === 0) return { reason: 'INVALID_TRANSITION', detail: `epoch 0 of ${k.id} is a DKG: it has no dealers` };
  if (k.status !== 'active' || k.activeEpoch === null) return { reason: 'KEY_NOT_ACTIVE', detail: `key ${k.id} is ${k.status}` };
  if (fromEpoch !== k.activeEpoch) return { reason: 'STALE_EPOCH', detail: `key ${k.id} is redealt from its active epoch ${k.activeEpoch}, not ${fromEpoch}` };
  const old = Object.hasOwn(k.epochs, String(fromEpoch)) ? k.epochs[String(fromEpoch)] : undefined;
  if (old === undefined || !old.participants.includes(nodeId)) return { reason: 'WRONG_RECIPIENT', detail: `${nodeId} holds no share of ${k.id} epoch ${fromEpoch}: it cannot deal` };
  const ready = dealersReadyOf(e);
  if (ready.includes(nodeId)) return { reason: 'REPLAY_OR_CONFLICT', detail: `${nodeId} already stated RedealReady for ${k.id} epoch ${e.epoch}` };
  if (ready.length >= old.threshold) return { reason: 'DEALERS_FIXED', detail: `the dealers of ${k.id} epoch ${e.epoch} are already fixed: ${ready.join(', ')}` };
  return null;
}
