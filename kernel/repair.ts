/**
 * Share repair: a Repairable Threshold Scheme (RTS) over the kernel's FROST suites. t current
 * shareholders ("helpers") rebuild the share of a participant that lost it (same identifier), or
 * enrol a new identifier for a replacement node, without any backup and without anyone learning
 * the group secret or another participant's share. After Laing and Stinson, "A Survey and
 * Refinement of Repairable Threshold Schemes" (IACR eprint 2017/1155, §3, the enrolment protocol
 * of Stinson–Wei in its "sum of sums" form); frost-rs structures the same three steps in
 * frost-core keys/repairable.rs.
 *
 * Notation: the key epoch's shares are s_i = f(x_i) for a polynomial f of degree t - 1 with
 * f(0) = s, the group secret (RFC 9591 Appendix C); Y_i = s_i·G are the verifying shares the
 * ledger records; H is the helper set (|H| >= t), x is the target's identifier, and
 * λ_i(x) = Π_{j in H, j != i} (x - x_j) / (x_i - x_j) is the Lagrange coefficient of helper i at
 * x over H (RFC 9591 §4.2 evaluates the same product at 0; `lagrangeAt` below reuses it on the
 * shifted points x_j - x).
 *
 * Message flow (every arrow is a sealed package, HPKE RFC 9180 to the recipient kernel's
 * transport key, kernel/transport.ts; the AAD binds ceremony, key, key epoch, suite, target,
 * helper set, sender, recipient and the digest of the sender's public key package, and the
 * purpose separates deltas from sums):
 *   step 1, helper i:   checks s_i·G == Y_i, computes λ_i(x)·s_i and splits it into |H| additive
 *                       deltas δ_ij (all uniformly random but one, which makes the sum exact);
 *                       keeps δ_ii, sends δ_ij to helper j                     (purpose repair-delta)
 *   step 2, helper j:   σ_j = Σ_i δ_ij over exactly one delta from every helper; sends σ_j to the
 *                       target                                                 (purpose repair-sigma)
 *   step 3, target:     s_x = Σ_j σ_j over exactly one sum from every helper, then the check:
 *                       s_x·G == Y_x, the verifying share expected for x (below).
 * The expected verifying share is the one the ledger records for x when x is a current
 * participant (rebuild). For a new identifier (enrolment) it is interpolated in the exponent from
 * the t first recorded verifying shares, Y_x = Σ_{i in S} λ^S_i(x)·Y_i, after checking that the
 * same interpolation at 0 gives the group key and at every other recorded identifier gives that
 * participant's recorded verifying share; the ledger then records Y_x for the new participant.
 *
 * Safety argument (who is trusted for what):
 *   - Correctness. Σ_j σ_j = Σ_i Σ_j δ_ij = Σ_i λ_i(x)·s_i = f(x): Lagrange interpolation over
 *     |H| >= t points of the degree-(t - 1) polynomial f, evaluated at x. So the target's share
 *     is a point of the same polynomial: the group key f(0)·G, the threshold and every other
 *     share are unchanged, and for a rebuild it is the lost share itself. The check s_x·G == Y_x
 *     confirms it publicly; for enrolment, Y_x is derived only from values the ledger pinned
 *     (verifying shares and group key), never from anything a helper sends.
 *   - What a helper learns. Helper j receives one delta from each other helper i; any |H| - 1 of
 *     helper i's deltas are independent and uniform over the whole field (`uniformScalar`), so
 *     each one alone is a uniformly random scalar that says nothing about λ_i(x)·s_i. Helpers see
 *     no sum but their own; the sums travel encrypted to the target.
 *   - What the target learns. For each helper the vector (δ_i1, ..., δ_i|H|) is uniform on the
 *     hyperplane of vectors summing to λ_i(x)·s_i, so the vector of sums (σ_1, ..., σ_|H|) is
 *     uniform on the hyperplane summing to s_x as soon as t >= 2: the target learns s_x and
 *     nothing else. A coalition of the target and k helpers learns, beyond what their own shares
 *     give, only Σ over honest helpers of λ_i(x)·s_i = s_x - (the coalition's part), which the
 *     target's share already implies; as long as at least two helpers are honest (k <= |H| - 2)
 *     no single honest share is exposed. With k = t - 1 the coalition holds t shares (its own
 *     and the repaired one) and so the key anyway: the scheme cannot and does not protect
 *     against t colluding shareholders.
 *   - Fewer than t helpers cannot repair. Any t - 1 shares are consistent with every value of
 *     f(x) for x outside their identifiers (a degree t - 1 polynomial has t free coefficients),
 *     so t - 1 helpers hold no information about the target's share; the helper set is refused
 *     (REPAIR_HELPERS_INVALID) rather than letting them produce a share that cannot be right.
 *   - A cheating helper (a compromised kernel sending wrong deltas or a wrong sum) can only add
 *     an error e to the result: s_x + e fails s_x·G == Y_x unless e = 0, so the target refuses
 *     the share (REPAIR_SHARE_MISMATCH) and nothing is stored; the repair is retried with another
 *     helper set. It is NOT attributable here: the sums hide which delta was wrong. Naming the
 *     cheater needs each helper to commit to its deltas (δ_ij·G, checked against λ_i(x)·Y_i) and
 *     the sums to be opened, which this module does not do. A helper gains nothing by deviating:
 *     what it receives does not depend on what it sends.
 *   - The network and the daemons relay only HPKE ciphertexts. A delta or sum replayed into
 *     another repair (another ceremony, key, epoch, target, helper set, or a delta offered as a
 *     sum) does not open (REPAIR_PACKAGE_REJECTED); a missing or duplicated part is refused.
 *   - Not a remedy for a stolen share: repair rebuilds the same point of the same polynomial, so
 *     a share that leaked stays valid. A compromised participant is removed by a reshare
 *     (kernel/redeal.ts), not repaired. That a RepairAuthorized decision names the helpers and
 *     the target, and that a kernel never holds two identifiers of one key, is the caller's part:
 *     the ledger accepts a target only under its own identifier or, for a node holding none, one
 *     new identifier (ledger/apply.ts repairAuthorized); a kernel takes each step only under the
 *     decision it verified, in the role it names, and keeps no repaired share beside one it holds
 *     (kernel.ts repairDeal, repairSum, repairFinish).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, randomBytes } from '@noble/hashes/utils.js';
import { CustodyError } from '../proto/errors.js';
import { kernel as limits } from '../proto/limits.js';
import type { ReasonCode } from '../proto/reasons.js';
import { lagrangeAtZero, parseIdentifier, validateThreshold } from './redeal.js';
import type { GroupPoint, PublicKeyPackage, Rng, Suite } from './suites.js';
import { openFrom, sealTo, type PackageContext } from './transport.js';
import type { SealedPackage } from './wire.js';

/** One repair, as the RepairAuthorized decision names it. */
export interface RepairPlan {
  /** Names this run; bound into every package so parts of two runs never mix. */
  ceremonyId: string;
  keyId: string;
  /** The key epoch whose shares the helpers hold and the target's share belongs to. */
  epoch: number;
  /** Identifiers of the helpers (current shareholders of the epoch), at least t, distinct. */
  helpers: string[];
  /** The identifier to rebuild (a current participant) or to enrol (a new one). */
  target: string;
}

/** A part received by a helper (step 2) or the target (step 3), already opened. */
export interface RepairPart {
  /** The helper that produced it. */
  helper: string;
  /** A canonical scalar: a delta δ_ij (step 2) or a sum σ_j (step 3). */
  scalar: Uint8Array;
}

export type RepairStage = 'delta' | 'sigma';

function fail(reason: ReasonCode, detail: string): never {
  throw new CustodyError(reason, detail);
}

function checkId(v: unknown, what: string): asserts v is string {
  if (typeof v !== 'string' || v.length === 0 || Buffer.byteLength(v) > limits.idBytesMax || !/^[\x21-\x7e]*$/.test(v)) {
    fail('PAYLOAD_REJECTED', `${what} is not a printable identifier of at most ${limits.idBytesMax} bytes`);
  }
}

/** λ_i(x) over L: RFC 9591's interpolating value at 0 of the points shifted by -x. */
export function lagrangeAt(suite: Suite, L: bigint[], xi: bigint, x: bigint): bigint {
  return lagrangeAtZero(suite, L.map((v) => suite.Fn.sub(v, x)), suite.Fn.sub(xi, x));
}

/** Σ k_i·P_i, or null for the identity (noble refuses a zero multiplier). */
function linear(points: GroupPoint[], scalars: bigint[]): GroupPoint | null {
  let acc: GroupPoint | null = null;
  for (let i = 0; i < points.length; i++) {
    const k = scalars[i]!;
    if (k === 0n) continue;
    const term = points[i]!.multiply(k);
    acc = acc === null ? term : acc.add(term);
  }
  return acc === null || acc.is0() ? null : acc;
}

/**
 * A uniformly random scalar: Fn.BYTES + 16 random bytes reduced modulo the group order (statistical
 * distance below 2^-128). Not the suite's `randomScalar`: for the taproot suite that one returns
 * only scalars whose point has an even Y (BIP340 key convention), half of the field, and deltas
 * drawn from half the field would each tell their recipient about one bit of the helper's share.
 */
function uniformScalar(suite: Suite, rng: Rng = randomBytes): bigint {
  const bytes = rng(suite.Fn.BYTES + 16);
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  bytes.fill(0);
  return n % suite.Fn.ORDER;
}

/** A canonical scalar of the suite (zero allowed: a delta may be zero), or null. */
function decodeScalar(suite: Suite, bytes: Uint8Array): bigint | null {
  if (!(bytes instanceof Uint8Array) || bytes.length !== suite.Fn.BYTES) return null;
  try {
    const n = suite.Fn.fromBytes(bytes);
    if (!suite.Fn.isValid(n) || bytesToHex(suite.Fn.toBytes(n)) !== bytesToHex(bytes)) return null;
    return n;
  } catch {
    return null;
  }
}

interface Parsed {
  H: bigint[];
  x: bigint;
  /** True when the target is a new identifier. */
  enrol: boolean;
}

function validatePlan(suite: Suite, pub: PublicKeyPackage, plan: RepairPlan): Parsed {
  checkId(plan.ceremonyId, 'ceremony id');
  checkId(plan.keyId, 'key id');
  if (!Number.isSafeInteger(plan.epoch) || plan.epoch < 0) fail('PAYLOAD_REJECTED', `key epoch ${plan.epoch} is not a non-negative integer`);
  const held = Object.keys(pub.verifyingShares);
  validateThreshold(pub.signers.min, pub.signers.max, 'current key');
  if (held.length < pub.signers.min || held.length > limits.participantsMax) fail('PAYLOAD_REJECTED', `the key records ${held.length} verifying shares for a threshold of ${pub.signers.min}`);
  if (!Array.isArray(plan.helpers)) fail('REPAIR_HELPERS_INVALID', 'no helper list');
  if (plan.helpers.length < pub.signers.min) fail('REPAIR_HELPERS_INVALID', `${plan.helpers.length} helpers cannot repair a share of a ${pub.signers.min}-of-${pub.signers.max} key`);
  if (plan.helpers.length > limits.repairHelpersMax) fail('REPAIR_HELPERS_INVALID', `${plan.helpers.length} helpers, at most ${limits.repairHelpersMax}`);
  let x: bigint;
  try {
    x = parseIdentifier(suite, plan.target);
  } catch {
    fail('REPAIR_HELPERS_INVALID', `target ${JSON.stringify(plan.target)} is not a canonical identifier`);
  }
  const seen = new Set<string>();
  const H: bigint[] = [];
  for (const h of plan.helpers) {
    if (seen.has(h)) fail('REPAIR_HELPERS_INVALID', `helper ${h} is listed twice`);
    seen.add(h);
    if (h === plan.target) fail('REPAIR_HELPERS_INVALID', `the target ${h} cannot help repair itself`);
    if (!held.includes(h)) fail('REPAIR_HELPERS_INVALID', `helper ${JSON.stringify(h)} holds no share of ${plan.keyId} epoch ${plan.epoch}`);
    H.push(parseIdentifier(suite, h));
  }
  const enrol = !held.includes(plan.target);
  if (enrol && held.length + 1 > limits.participantsMax) fail('LIMIT_EXCEEDED', `enrolling ${plan.target} would exceed ${limits.participantsMax} participants`);
  return { H, x, enrol };
}

/**
 * The verifying share a share of `target` must match: the recorded one for a current participant;
 * for a new identifier, interpolated in the exponent from the first t recorded verifying shares,
 * once every recorded verifying share and the group key are found to lie on that one polynomial.
 */
export function expectedVerifyingShare(suite: Suite, pub: PublicKeyPackage, target: string): GroupPoint {
  const x = parseIdentifier(suite, target);
  const ids = Object.keys(pub.verifyingShares);
  const t = pub.signers.min;
  validateThreshold(t, pub.signers.max, 'current key');
  if (ids.length < t || ids.length > limits.participantsMax) fail('REPAIR_PUBLIC_INCONSISTENT', `${ids.length} verifying shares recorded for a threshold of ${t}`);
  const point = (b: Uint8Array | undefined, what: string): GroupPoint => {
    try {
      return suite.parsePoint(b!);
    } catch (e) {
      fail('REPAIR_PUBLIC_INCONSISTENT', `${what} is not a valid group element: ${(e as Error).message}`);
    }
  };
  if (ids.includes(target)) return point(pub.verifyingShares[target], `verifying share of ${target}`);
  const xs = ids.map((id) => parseIdentifier(suite, id));
  const Ys = ids.map((id) => point(pub.verifyingShares[id], `verifying share of ${id}`));
  const S = xs.slice(0, t);
  const YS = Ys.slice(0, t);
  const at = (v: bigint): GroupPoint | null => linear(YS, S.map((xi) => lagrangeAt(suite, S, xi, v)));
  const groupKey = point(pub.commitments[0], 'group key');
  const atZero = at(0n);
  if (atZero === null || !atZero.equals(groupKey)) fail('REPAIR_PUBLIC_INCONSISTENT', 'the first t verifying shares do not interpolate to the group key');
  for (let k = t; k < ids.length; k++) {
    const Yk = at(xs[k]!);
    if (Yk === null || !Yk.equals(Ys[k]!)) fail('REPAIR_PUBLIC_INCONSISTENT', `verifying share of ${ids[k]} is off the polynomial of the first t`);
  }
  const Yx = at(x);
  if (Yx === null) fail('REPAIR_PUBLIC_INCONSISTENT', `the interpolated verifying share of ${target} is the identity`);
  return Yx;
}

/**
 * Checks a (repaired) share of `target` against its expected verifying share; returns the
 * verifying share's bytes (for a new identifier, what the ledger records).
 */
export function checkRepairedShare(suite: Suite, pub: PublicKeyPackage, target: string, share: Uint8Array): Uint8Array {
  const expected = expectedVerifyingShare(suite, pub, target);
  const s = decodeScalar(suite, share);
  if (s === null || s === 0n || !suite.base.multiply(s).equals(expected)) fail('REPAIR_SHARE_MISMATCH', `the share of ${target} does not match its expected verifying share`);
  return expected.toBytes();
}

/**
 * Step 1, helper `me`: splits λ_me(x)·s_me into one delta per helper (its own included).
 * The deltas are secret: every one but `me`'s own leaves only sealed (`sealRepairPart`).
 */
export function repairStep1(suite: Suite, pub: PublicKeyPackage, plan: RepairPlan, me: string, myShare: Uint8Array, rng?: Rng): Map<string, Uint8Array> {
  const { H, x } = validatePlan(suite, pub, plan);
  const idx = plan.helpers.indexOf(me);
  if (idx < 0) fail('REPAIR_HELPERS_INVALID', `this kernel (${me}) is not among the helpers`);
  const Fn = suite.Fn;
  const s = decodeScalar(suite, myShare);
  // A helper that repairs from a wrong share spoils the repair for everyone: refuse it first.
  let mine: GroupPoint;
  try {
    mine = suite.parsePoint(pub.verifyingShares[me]!);
  } catch (e) {
    fail('REPAIR_PUBLIC_INCONSISTENT', `the recorded verifying share of ${me} is not a valid group element: ${(e as Error).message}`);
  }
  if (s === null || s === 0n || !suite.base.multiply(s).equals(mine)) {
    fail('REPAIR_SHARE_MISMATCH', `helper ${me}'s own share does not match its verifying share`);
  }
  const parts: bigint[] = [Fn.mul(lagrangeAt(suite, H, H[idx]!, x), s)];
  const deltas = new Map<string, Uint8Array>();
  let rest = parts[0]!;
  for (let j = 0; j < plan.helpers.length - 1; j++) {
    const d = uniformScalar(suite, rng);
    deltas.set(plan.helpers[j]!, Fn.toBytes(d));
    rest = Fn.sub(rest, d);
  }
  deltas.set(plan.helpers[plan.helpers.length - 1]!, Fn.toBytes(rest));
  parts.fill(0n);
  return deltas;
}

/** Sums exactly one part from each helper. */
function sumParts(suite: Suite, plan: RepairPlan, parts: RepairPart[], what: string): bigint {
  if (!Array.isArray(parts) || parts.length !== plan.helpers.length) fail('REPAIR_PACKAGE_REJECTED', `expected ${plan.helpers.length} ${what}s, got ${Array.isArray(parts) ? parts.length : 'none'}`);
  const seen = new Set<string>();
  let acc = 0n;
  for (const p of parts) {
    if (!plan.helpers.includes(p.helper)) fail('REPAIR_PACKAGE_REJECTED', `${what} from ${JSON.stringify(p.helper)}, who is not a helper`);
    if (seen.has(p.helper)) fail('REPAIR_PACKAGE_REJECTED', `two ${what}s from ${p.helper}`);
    seen.add(p.helper);
    const v = decodeScalar(suite, p.scalar);
    if (v === null) fail('REPAIR_PACKAGE_REJECTED', `${what} from ${p.helper} is not a canonical scalar`);
    acc = suite.Fn.add(acc, v);
  }
  return acc;
}

/** Step 2, helper `me`: σ_me from exactly one delta of every helper (its own included). */
export function repairStep2(suite: Suite, pub: PublicKeyPackage, plan: RepairPlan, me: string, deltas: RepairPart[]): Uint8Array {
  validatePlan(suite, pub, plan);
  if (!plan.helpers.includes(me)) fail('REPAIR_HELPERS_INVALID', `this kernel (${me}) is not among the helpers`);
  return suite.Fn.toBytes(sumParts(suite, plan, deltas, 'delta'));
}

/**
 * Step 3, the target: its share from exactly one sum of every helper, checked against the
 * expected verifying share. Returns the share, its verifying share and the key's public package
 * with the target in it (unchanged for a rebuild; one more participant for an enrolment).
 */
export function repairStep3(suite: Suite, pub: PublicKeyPackage, plan: RepairPlan, sigmas: RepairPart[]): { share: Uint8Array; verifyingShare: Uint8Array; public: PublicKeyPackage } {
  const { enrol } = validatePlan(suite, pub, plan);
  const share = suite.Fn.toBytes(sumParts(suite, plan, sigmas, 'sum'));
  const verifyingShare = checkRepairedShare(suite, pub, plan.target, share);
  const verifyingShares: Record<string, Uint8Array> = {};
  for (const [id, Y] of Object.entries(pub.verifyingShares)) verifyingShares[id] = Y.slice();
  if (enrol) verifyingShares[plan.target] = verifyingShare.slice();
  const count = Object.keys(verifyingShares).length;
  return {
    share,
    verifyingShare,
    public: {
      signers: { min: pub.signers.min, max: Math.max(pub.signers.max, count) },
      commitments: pub.commitments.map((c) => c.slice()),
      verifyingShares,
    },
  };
}

/**
 * sha256 over the public key package in one canonical form (verifying shares in identifier order):
 * bound into every part, so a part opens only for a kernel that holds the very package its sender
 * computed from. A target that was handed another package (another group key, threshold or
 * verifying share, by its daemon) opens no sum at all.
 */
export function publicDigest(pub: PublicKeyPackage): string {
  const ids = Object.keys(pub.verifyingShares).sort();
  const canonical = JSON.stringify({
    min: pub.signers.min, max: pub.signers.max, commitments: pub.commitments.map((c) => bytesToHex(c)),
    verifyingShares: ids.map((id) => [id, bytesToHex(pub.verifyingShares[id]!)]),
  });
  return bytesToHex(sha256(new TextEncoder().encode(canonical)));
}

/** The HPKE context of one part: the AAD binds everything the part's value depends on. */
function context(suite: Suite, pub: PublicKeyPackage, stage: RepairStage, plan: RepairPlan, sender: string, recipient: string): PackageContext {
  return {
    purpose: stage === 'delta' ? 'repair-delta' : 'repair-sigma',
    ceremonyId: plan.ceremonyId,
    keyId: plan.keyId,
    sender,
    recipient,
    bind: [suite.name, String(plan.epoch), plan.target, plan.helpers.join(','), publicDigest(pub)],
  };
}

function checkRoute(stage: RepairStage, plan: RepairPlan, sender: string, recipient: string): void {
  if (!plan.helpers.includes(sender)) fail('REPAIR_PACKAGE_REJECTED', `a ${stage} from ${JSON.stringify(sender)}, who is not a helper`);
  if (stage === 'delta' && (!plan.helpers.includes(recipient) || recipient === sender)) fail('REPAIR_PACKAGE_REJECTED', `a delta goes from one helper to another, not ${sender} -> ${recipient}`);
  if (stage === 'sigma' && recipient !== plan.target) fail('REPAIR_PACKAGE_REJECTED', `a sum goes to the target ${plan.target}, not ${recipient}`);
}

/** Seals one delta (helper -> helper) or sum (helper -> target) to the recipient kernel's transport key. */
export async function sealRepairPart(
  suite: Suite, pub: PublicKeyPackage, stage: RepairStage, plan: RepairPlan, sender: string, recipient: string,
  recipientTransportKey: Uint8Array, scalar: Uint8Array,
): Promise<SealedPackage> {
  validatePlan(suite, pub, plan);
  checkRoute(stage, plan, sender, recipient);
  if (decodeScalar(suite, scalar) === null) fail('REPAIR_PACKAGE_REJECTED', `the ${stage} to seal is not a canonical scalar`);
  return sealTo(recipientTransportKey, context(suite, pub, stage, plan, sender, recipient), scalar);
}

/**
 * Opens one delta or sum addressed to this kernel (`recipient`) from `sender`, under this repair's
 * bindings; returns it as a part for step 2 or 3. Sizes are checked before anything is decrypted.
 */
export async function openRepairPart(
  suite: Suite, pub: PublicKeyPackage, stage: RepairStage, plan: RepairPlan, sender: string, recipient: string,
  transportPrivateKey: Uint8Array, p: SealedPackage,
): Promise<RepairPart> {
  validatePlan(suite, pub, plan);
  checkRoute(stage, plan, sender, recipient);
  if (!(p.enc instanceof Uint8Array) || !(p.ciphertext instanceof Uint8Array)
    || p.enc.length > limits.repairSealedBytesMax || p.ciphertext.length > limits.repairSealedBytesMax) {
    fail('REPAIR_PACKAGE_REJECTED', `the ${stage} from ${sender} is larger than a sealed scalar`);
  }
  let plain: Uint8Array;
  try {
    plain = await openFrom(transportPrivateKey, context(suite, pub, stage, plan, sender, recipient), p);
  } catch (e) {
    if (e instanceof CustodyError && e.reason === 'WRONG_RECIPIENT') throw e;
    throw new CustodyError('REPAIR_PACKAGE_REJECTED', `the ${stage} from ${sender} does not open under this repair (ceremony, key, epoch, target, helpers)`, { cause: e });
  }
  if (decodeScalar(suite, plain) === null) fail('REPAIR_PACKAGE_REJECTED', `the ${stage} from ${sender} is not a canonical scalar`);
  return { helper: sender, scalar: plain };
}
