/**
 * Proactive refresh and reshare ("redeal") on top of noble's FROST primitives, which have
 * neither.
 *
 * One construction serves both: a set D of current shareholders (|D| >= t_old) re-deals the
 * *same* group secret to a new committee N with threshold t_new. Refresh is the case N = the
 * current committee and t_new = t_old; reshare changes N or t_new. Each run yields a new key
 * epoch with the same group public key.
 *
 * Protocol (after Desmedt–Jajodia / Herzberg et al. proactive secret sharing, and the
 * verifiable secret sharing of RFC 9591 Appendix C.2):
 *   dealer i in D, holding share s_i of the epoch-e key, computes its Lagrange coefficient
 *   λ_i over D (RFC 9591 §4.2) and a fresh random polynomial f_i of degree t_new - 1 with
 *   f_i(0) = λ_i·s_i. It broadcasts the commitments F_ik = a_ik·G and sends f_i(j) to each
 *   j in N, encrypted to j's kernel (kernel/transport.ts), never in the clear.
 *   recipient j checks, for every dealer i:
 *     (1) F_i0 == λ_i·Y_i, with Y_i the dealer's epoch-e verifying share (public);
 *     (2) f_i(j)·G == Σ_k F_ik·j^k (Feldman check, RFC 9591 Appendix C.2 vss_verify);
 *   and for the whole run
 *     (3) Σ_i F_i0 == the group public key Y pinned for the key;
 *   then s'_j = Σ_i f_i(j), and the new public package is C_k = Σ_i F_ik with verifying
 *   shares Y'_j = Σ_k C_k·j^k; finally (4) s'_j·G == Y'_j.
 *
 * Why this is safe:
 *   - Same key: Σ_i f_i(0) = Σ_i λ_i s_i = s (Lagrange interpolation at 0 over D), so the new
 *     shares are a degree-(t_new - 1) sharing of the same s; (3) checks it publicly.
 *   - No dealer can shift the key or plant a rogue contribution: (1) pins each dealer's
 *     constant term to a value fixed by the epoch-e public package, so unlike a fresh DKG no
 *     proof of knowledge is needed (the constant is not the dealer's choice).
 *   - A dealer that sends inconsistent shares is caught by (2) and named; the run aborts and
 *     the epoch-e key stays in force (nothing is replaced until a KeyRefreshed/KeyReshared
 *     decision activates the new epoch).
 *   - Old shares are useless with new ones: the new polynomial Σ f_i is fresh random in every
 *     coefficient but the constant, so an adversary holding < t_old old shares and < t_new new
 *     shares learns nothing about s (the proactive-security argument); the kernel erases the
 *     epoch-e share when the new epoch is activated.
 *   - Threshold and participant sets are validated strictly (frost-rs 2.2.0 fixed a refresh
 *     bug where min_signers was not checked): t_new >= 2, t_new <= |N|, |D| >= t_old, D within
 *     the epoch-e committee, identifiers distinct and canonical, every commitment vector of
 *     length exactly t_new.
 */
import { hexToBytes, bytesToHex } from '@noble/hashes/utils.js';
import { CustodyError } from '../proto/errors.js';
import { kernel as limits } from '../proto/limits.js';
import type { GroupPoint, PublicKeyPackage as FrostPublic, Rng, Suite } from './suites.js';

export interface RedealPlan {
  /** Identifiers of the dealers D (current shareholders taking part). */
  dealers: string[];
  /** Identifiers of the new committee N. */
  committee: string[];
  /** New threshold t_new. */
  min: number;
}

/** What one dealer produces; `shares` are secret and must be encrypted before leaving. */
export interface RedealDeal {
  commitments: Uint8Array[];
  shares: Map<string, Uint8Array>;
}

export interface ReceivedDeal {
  dealer: string;
  commitments: Uint8Array[];
  /** f_dealer(me), already decrypted. */
  share: Uint8Array;
}

function reject(detail: string): never {
  throw new CustodyError('PAYLOAD_REJECTED', detail);
}

export function parseIdentifier(suite: Suite, id: string): bigint {
  if (typeof id !== 'string' || id.length !== suite.Fn.BYTES * 2) reject(`identifier ${JSON.stringify(id)} is not canonical`);
  let n: bigint;
  try {
    n = suite.Fn.fromBytes(hexToBytes(id));
  } catch {
    reject(`identifier ${JSON.stringify(id)} is not canonical`);
  }
  if (n === 0n || !suite.Fn.isValid(n) || bytesToHex(suite.Fn.toBytes(n)) !== id) reject(`identifier ${id} is not canonical`);
  return n;
}

/** Validates a participant set: canonical, distinct, within bounds. Returns the scalars. */
export function validateParticipants(suite: Suite, ids: string[], what: string): bigint[] {
  if (ids.length < 2 || ids.length > limits.participantsMax) reject(`${what}: ${ids.length} participants, expected 2..${limits.participantsMax}`);
  const seen = new Set<string>();
  const out: bigint[] = [];
  for (const id of ids) {
    if (seen.has(id)) reject(`${what}: duplicate identifier ${id}`);
    seen.add(id);
    out.push(parseIdentifier(suite, id));
  }
  return out;
}

/** Strict threshold validation (RFC 9591 §5: 2 <= MIN_PARTICIPANTS <= MAX_PARTICIPANTS). */
export function validateThreshold(min: number, max: number, what: string): void {
  if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || min < 2 || min > max) {
    reject(`${what}: threshold ${min} of ${max} is not valid (need 2 <= t <= n)`);
  }
}

/** λ_i over the set L, evaluated at 0 (RFC 9591 §4.2 derive_interpolating_value). */
export function lagrangeAtZero(suite: Suite, L: bigint[], xi: bigint): bigint {
  const Fn = suite.Fn;
  let num = 1n;
  let den = 1n;
  for (const x of L) {
    if (x === xi) continue;
    num = Fn.mul(num, x);
    den = Fn.mul(den, Fn.sub(x, xi));
  }
  return Fn.div(num, den);
}

function evalPoly(suite: Suite, coeffs: bigint[], x: bigint): bigint {
  const Fn = suite.Fn;
  let acc = 0n;
  for (let k = coeffs.length - 1; k >= 0; k--) acc = Fn.add(Fn.mul(acc, x), coeffs[k]!);
  return acc;
}

export function evalCommitment(suite: Suite, points: GroupPoint[], x: bigint): GroupPoint {
  let acc: GroupPoint | null = null;
  let pow = 1n;
  for (const P of points) {
    const term = P.multiply(pow);
    acc = acc === null ? term : acc.add(term);
    pow = suite.Fn.mul(pow, x);
  }
  if (acc === null) reject('empty commitment');
  return acc;
}

function validatePlan(suite: Suite, pub: FrostPublic, plan: RedealPlan): { D: bigint[]; N: bigint[] } {
  const oldIds = Object.keys(pub.verifyingShares);
  validateThreshold(pub.signers.min, pub.signers.max, 'current key');
  const D = validateParticipants(suite, plan.dealers, 'dealers');
  for (const d of plan.dealers) if (!oldIds.includes(d)) reject(`dealer ${d} holds no share of the current epoch`);
  if (plan.dealers.length < pub.signers.min) reject(`${plan.dealers.length} dealers cannot re-deal a ${pub.signers.min}-of-${pub.signers.max} key`);
  const N = validateParticipants(suite, plan.committee, 'committee');
  validateThreshold(plan.min, plan.committee.length, 'new committee');
  return { D, N };
}

/** Dealer side: re-deal my share `myShare` (epoch e) to the new committee. */
export function deal(
  suite: Suite,
  pub: FrostPublic,
  myId: string,
  myShare: Uint8Array,
  plan: RedealPlan,
  rng?: Rng,
): RedealDeal {
  const { D, N } = validatePlan(suite, pub, plan);
  const me = parseIdentifier(suite, myId);
  if (!D.includes(me)) reject('this kernel is not among the dealers');
  const Fn = suite.Fn;
  const constant = Fn.mul(lagrangeAtZero(suite, D, me), Fn.fromBytes(myShare));
  const coeffs = [constant];
  for (let k = 1; k < plan.min; k++) coeffs.push(Fn.fromBytes(suite.frost.utils.randomScalar(rng as never)));
  const commitments = coeffs.map((c) => suite.base.multiply(c).toBytes());
  const shares = new Map<string, Uint8Array>();
  plan.committee.forEach((id, i) => shares.set(id, Fn.toBytes(evalPoly(suite, coeffs, N[i]!))));
  coeffs.fill(0n);
  return { commitments, shares };
}

/** Recipient side: verify every deal (checks 1–4 above) and assemble my new share and package. */
export function combine(
  suite: Suite,
  pub: FrostPublic,
  myId: string,
  plan: RedealPlan,
  deals: ReceivedDeal[],
): { share: Uint8Array; public: FrostPublic } {
  const { D, N } = validatePlan(suite, pub, plan);
  const me = parseIdentifier(suite, myId);
  if (!N.includes(me)) reject('this kernel is not in the new committee');
  if (deals.length !== plan.dealers.length) reject(`expected ${plan.dealers.length} deals, got ${deals.length}`);
  const Fn = suite.Fn;
  const byDealer = new Map<string, ReceivedDeal>();
  for (const d of deals) {
    if (!plan.dealers.includes(d.dealer)) reject(`deal from ${d.dealer}, who is not a dealer`);
    if (byDealer.has(d.dealer)) reject(`two deals from ${d.dealer}`);
    byDealer.set(d.dealer, d);
  }
  const sum: GroupPoint[] = [];
  let s = 0n;
  plan.dealers.forEach((dealer, i) => {
    const d = byDealer.get(dealer)!;
    if (d.commitments.length !== plan.min) reject(`deal from ${dealer} commits to degree ${d.commitments.length - 1}, expected ${plan.min - 1}`);
    let F: GroupPoint[];
    try {
      F = d.commitments.map((c) => suite.parsePoint(c));
    } catch (e) {
      reject(`deal from ${dealer} carries an invalid commitment: ${(e as Error).message}`);
    }
    const Yi = suite.parsePoint(pub.verifyingShares[dealer]!);
    if (!F[0]!.equals(Yi.multiply(lagrangeAtZero(suite, D, D[i]!)))) reject(`deal from ${dealer} does not re-deal its own share (check 1)`);
    let fi = 0n;
    try {
      if (d.share.length === Fn.BYTES) fi = Fn.fromBytes(d.share);
    } catch {
      fi = 0n; // not a canonical scalar: refused just below
    }
    // A zero share is refused outright (an honest dealer produces one with probability 1/q).
    if (fi === 0n || !Fn.isValid(fi) || !suite.base.multiply(fi).equals(evalCommitment(suite, F, me))) {
      reject(`share from ${dealer} does not match its commitments (check 2)`);
    }
    s = Fn.add(s, fi);
    F.forEach((P, k) => (sum[k] = sum[k] === undefined ? P : sum[k]!.add(P)));
  });
  const groupKey = suite.parsePoint(pub.commitments[0]!);
  if (!sum[0]!.equals(groupKey)) reject('the deals do not re-share the pinned group key (check 3)');
  const verifyingShares: Record<string, Uint8Array> = {};
  plan.committee.forEach((id, i) => (verifyingShares[id] = evalCommitment(suite, sum, N[i]!).toBytes()));
  if (s === 0n || !suite.base.multiply(s).equals(suite.parsePoint(verifyingShares[myId]!))) reject('new share does not match the new package (check 4)');
  return {
    share: Fn.toBytes(s),
    public: {
      signers: { min: plan.min, max: plan.committee.length },
      // The constant commitment is the pinned group key byte for byte.
      commitments: [pub.commitments[0]!.slice(), ...sum.slice(1).map((P) => P.toBytes())],
      verifyingShares,
    },
  };
}
