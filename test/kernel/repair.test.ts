/**
 * Share repair (kernel/repair.ts) on its own, with trusted-dealer keys of every suite: t helpers
 * rebuild a lost share exactly, enrol a new identifier whose share signs with any t - 1 others,
 * and every check refuses what it exists to refuse, with its reason code.
 *
 * The properties draw every secret (the dealer's polynomial and the helpers' deltas) from a
 * 32-byte seed fast-check generates, so a failure is reproduced exactly by the seed and path
 * fast-check prints: rerun that test with FC_SEED=<seed> FC_PATH=<path> in the environment and
 * tap's --grep=<test name>.
 */
import t from 'tap';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { CustodyError } from '../../proto/errors.js';
import {
  checkRepairedShare, expectedVerifyingShare, openRepairPart, repairStep1, repairStep2, repairStep3, sealRepairPart,
  type RepairPart, type RepairPlan,
} from '../../kernel/repair.js';
import { SUITE_NAMES, suiteOf, type PublicKeyPackage, type Rng, type Suite } from '../../kernel/suites.js';
import { generateTransportKey, type TransportKey } from '../../kernel/transport.js';
import type { SealedPackage } from '../../kernel/wire.js';
import { signWith } from './harness.js';

const replay: { seed?: number; path?: string } = process.env['FC_SEED'] !== undefined
  ? { seed: Number(process.env['FC_SEED']), ...(process.env['FC_PATH'] !== undefined ? { path: process.env['FC_PATH'] } : {}) }
  : {};

/** A deterministic byte source (SHA-512 in counter mode over the seed). */
function seededRng(seed: Uint8Array, label: string): Rng {
  let counter = 0;
  return (len = 32) => {
    const out = new Uint8Array(len);
    for (let off = 0; off < len; off += 64) {
      const block = createHash('sha512').update(seed).update(label).update(String(counter++)).digest();
      out.set(block.subarray(0, Math.min(64, len - off)), off);
    }
    return out;
  };
}

function dealt(suite: Suite, min: number, max: number, rng: Rng): { pub: PublicKeyPackage; shares: Record<string, Uint8Array> } {
  const d = suite.frost.trustedDealer({ min, max }, undefined, undefined, rng as never);
  return {
    pub: d.public as unknown as PublicKeyPackage,
    shares: Object.fromEntries(Object.entries(d.secretShares).map(([id, s]) => [id, s.signingShare as Uint8Array])),
  };
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function reason(f: () => unknown): string {
  try {
    f();
    return 'OK';
  } catch (e) {
    if (e instanceof CustodyError) return e.reason;
    throw e;
  }
}

async function reasonAsync(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (e) {
    if (e instanceof CustodyError) return e.reason;
    throw e;
  }
}

/** All deltas of a run: deltas[i] is helper i's map (recipient -> delta). */
function allDeltas(suite: Suite, pub: PublicKeyPackage, plan: RepairPlan, shares: Record<string, Uint8Array>, rng?: Rng): Map<string, Uint8Array>[] {
  return plan.helpers.map((h) => repairStep1(suite, pub, plan, h, shares[h]!, rng));
}

function deltasFor(plan: RepairPlan, deltas: Map<string, Uint8Array>[], j: string): RepairPart[] {
  return plan.helpers.map((h, i) => ({ helper: h, scalar: deltas[i]!.get(j)! }));
}

function sigmasOf(suite: Suite, pub: PublicKeyPackage, plan: RepairPlan, deltas: Map<string, Uint8Array>[]): RepairPart[] {
  return plan.helpers.map((j) => ({ helper: j, scalar: repairStep2(suite, pub, plan, j, deltasFor(plan, deltas, j)) }));
}

/** The three steps in process (no transport). */
function repairInProcess(suite: Suite, pub: PublicKeyPackage, plan: RepairPlan, shares: Record<string, Uint8Array>, rng?: Rng) {
  return repairStep3(suite, pub, plan, sigmasOf(suite, pub, plan, allDeltas(suite, pub, plan, shares, rng)));
}

/** f(x) from t shares, computed in the clear by the test (the oracle the repair must match). */
function interpolate(suite: Suite, points: { x: bigint; y: bigint }[], x: bigint): bigint {
  const Fn = suite.Fn;
  let acc = 0n;
  for (const p of points) {
    let num = 1n;
    let den = 1n;
    for (const q of points) {
      if (q.x === p.x) continue;
      num = Fn.mul(num, Fn.sub(x, q.x));
      den = Fn.mul(den, Fn.sub(p.x, q.x));
    }
    acc = Fn.add(acc, Fn.mul(p.y, Fn.div(num, den)));
  }
  return acc;
}

/** A random (t, n), a permutation of the n participants and a seed. */
const scenario = fc.integer({ min: 2, max: 4 }).chain((min) => fc.integer({ min: min + 1, max: min + 3 }).chain((max) => fc.record({
  min: fc.constant(min),
  max: fc.constant(max),
  order: fc.shuffledSubarray([...Array(max).keys()], { minLength: max, maxLength: max }),
  moreHelpers: fc.boolean(),
  seed: fc.uint8Array({ minLength: 32, maxLength: 32 }),
})));

const plan = (helpers: string[], target: string, o: Partial<RepairPlan> = {}): RepairPlan => ({ ceremonyId: 'repair-1', keyId: 'treasury', epoch: 3, helpers, target, ...o });

for (const name of SUITE_NAMES) {
  const suite = suiteOf(name);
  const id = (n: number): string => suite.frost.Identifier.fromNumber(n);
  const Fn = suite.Fn;

  t.test(`${name}: t helpers rebuild a lost share exactly (property)`, async (t) => {
    let runs = 0;
    fc.assert(fc.property(scenario, (s) => {
      runs++;
      const { pub, shares } = dealt(suite, s.min, s.max, seededRng(s.seed, 'dealer'));
      const ids = s.order.map((i) => id(i + 1));
      const lost = ids[0]!;
      const count = s.min + (s.moreHelpers && s.max - 1 > s.min ? 1 : 0);
      const p = plan(ids.slice(1, 1 + count), lost);
      const out = repairInProcess(suite, pub, p, shares, seededRng(s.seed, 'deltas'));
      if (hex(out.share) !== hex(shares[lost]!)) throw new Error(`the repaired share of ${lost} differs from the lost one`);
      if (hex(out.verifyingShare) !== hex(pub.verifyingShares[lost]!)) throw new Error('the verifying share changed');
      if (Object.keys(out.public.verifyingShares).length !== s.max || out.public.signers.max !== pub.signers.max) throw new Error('a rebuild changed the committee');
    }), { numRuns: 25, ...replay });
    t.equal(runs >= 25, true, 'every generated case rebuilt the lost share byte for byte');
  });

  t.test(`${name}: a new identifier enrolled by t helpers signs with any t - 1 originals (property)`, async (t) => {
    let runs = 0;
    fc.assert(fc.property(scenario, fc.integer({ min: 1, max: 1000 }), (s, offset) => {
      runs++;
      const { pub, shares } = dealt(suite, s.min, s.max, seededRng(s.seed, 'dealer'));
      const ids = s.order.map((i) => id(i + 1));
      const fresh = id(s.max + offset);
      const count = s.min + (s.moreHelpers ? 1 : 0);
      const p = plan(ids.slice(0, count), fresh);
      const out = repairInProcess(suite, pub, p, shares, seededRng(s.seed, 'deltas'));
      // Oracle: f(x) interpolated in the clear from t original shares the repair did not use as helpers where possible.
      const basis = ids.slice(ids.length - s.min).map((i) => ({ x: Fn.fromBytes(Buffer.from(i, 'hex')), y: Fn.fromBytes(shares[i]!) }));
      const expect = interpolate(suite, basis, Fn.fromBytes(Buffer.from(fresh, 'hex')));
      if (hex(out.share) !== hex(Fn.toBytes(expect))) throw new Error('the enrolled share is not f(x)');
      if (Object.keys(out.public.verifyingShares).length !== s.max + 1) throw new Error('the new verifying share is not in the package');
      if (hex(out.public.commitments[0]!) !== hex(pub.commitments[0]!)) throw new Error('the group key changed');
      // The new participant and t - 1 originals (taken from the end of the permutation) sign.
      const cosigners = ids.slice(ids.length - (s.min - 1)).map((me) => ({ me, share: shares[me]! }));
      if (!signWith(suite, out.public, [{ me: fresh, share: out.share }, ...cosigners])) throw new Error('the signature does not verify under the group key');
    }), { numRuns: 12, ...replay });
    t.equal(runs >= 12, true, 'every generated enrolment signed and verified');
  });

  t.test(`${name}: a cheating helper's wrong delta or sum is caught by the verifying-share check (property)`, async (t) => {
    let runs = 0;
    fc.assert(fc.property(scenario, fc.nat(), fc.nat(), fc.bigInt({ min: 1n, max: Fn.ORDER - 1n }), fc.boolean(), fc.boolean(), (s, cheat, victim, e, inSum, enrol) => {
      runs++;
      const { pub, shares } = dealt(suite, s.min, s.max, seededRng(s.seed, 'dealer'));
      const ids = s.order.map((i) => id(i + 1));
      const target = enrol ? id(s.max + 1) : ids[0]!;
      const p = plan(ids.slice(1, 1 + s.min), target);
      const deltas = allDeltas(suite, pub, p, shares, seededRng(s.seed, 'deltas'));
      const c = cheat % p.helpers.length;
      const off = (b: Uint8Array): Uint8Array => Fn.toBytes(Fn.add(Fn.fromBytes(b), e));
      if (!inSum) {
        const to = p.helpers[victim % p.helpers.length]!;
        deltas[c]!.set(to, off(deltas[c]!.get(to)!));
      }
      const sigmas = sigmasOf(suite, pub, p, deltas);
      if (inSum) sigmas[c] = { helper: sigmas[c]!.helper, scalar: off(sigmas[c]!.scalar) };
      const r = reason(() => repairStep3(suite, pub, p, sigmas));
      if (r !== 'REPAIR_SHARE_MISMATCH') throw new Error(`a cheating helper's error gave ${r}`);
    }), { numRuns: 20, ...replay });
    t.equal(runs >= 20, true, 'every cheat was refused REPAIR_SHARE_MISMATCH');
  });

  t.test(`${name}: a helper's deltas to others do not depend on its share (property)`, async (t) => {
    // All deltas but one are drawn before the share enters; the last makes the sum exact. So with
    // the same randomness, two different keys give a helper the same deltas to every helper but
    // the last: what a helper receives from another is a uniformly random scalar.
    let runs = 0;
    fc.assert(fc.property(scenario, fc.uint8Array({ minLength: 32, maxLength: 32 }), (s, otherSeed) => {
      runs++;
      const a = dealt(suite, s.min, s.max, seededRng(s.seed, 'dealer'));
      const b = dealt(suite, s.min, s.max, seededRng(otherSeed, 'dealer'));
      const ids = s.order.map((i) => id(i + 1));
      const p = plan(ids.slice(1, 1 + s.min), ids[0]!);
      const me = p.helpers[0]!;
      const da = repairStep1(suite, a.pub, p, me, a.shares[me]!, seededRng(s.seed, 'deltas'));
      const db = repairStep1(suite, b.pub, p, me, b.shares[me]!, seededRng(s.seed, 'deltas'));
      for (const j of p.helpers.slice(0, -1)) if (hex(da.get(j)!) !== hex(db.get(j)!)) throw new Error(`the delta to ${j} depends on the share`);
      const last = p.helpers[p.helpers.length - 1]!;
      const sum = (d: Map<string, Uint8Array>): bigint => [...d.values()].reduce((acc, v) => Fn.add(acc, Fn.fromBytes(v)), 0n);
      if (hex(a.shares[me]!) !== hex(b.shares[me]!) && hex(da.get(last)!) === hex(db.get(last)!)) throw new Error('the last delta ignores the share');
      const lambda = interpolate(suite, p.helpers.map((h) => ({ x: Fn.fromBytes(Buffer.from(h, 'hex')), y: h === me ? 1n : 0n })), Fn.fromBytes(Buffer.from(p.target, 'hex')));
      if (sum(da) !== Fn.mul(lambda, Fn.fromBytes(a.shares[me]!))) throw new Error('the deltas do not sum to the Lagrange-weighted share');
    }), { numRuns: 15, ...replay });
    t.equal(runs >= 15, true, 'in every case only the last delta carries the share, and all of them sum to it');
  });

  if (name !== 'ed25519') {
    t.test(`${name}: deltas range over the whole field, not only scalars whose point has an even Y`, async (t) => {
      // The BIP340 convention restricts the taproot suite's own random scalars to even-Y points;
      // a delta drawn that way would tell its recipient which half of the field the share's part is in.
      const { pub, shares } = dealt(suite, 2, 3, seededRng(new Uint8Array(32), `${name}/parity`));
      const p = plan([id(1), id(2)], id(3));
      const parities = new Set<number>();
      for (let i = 0; i < 40; i++) {
        const d = repairStep1(suite, pub, p, id(1), shares[id(1)]!).get(id(1))!;
        const v = Fn.fromBytes(d);
        if (v !== 0n) parities.add(suite.base.multiply(v).toBytes()[0]!);
      }
      t.same([...parities].sort(), [2, 3], 'deltas with even-Y and odd-Y points both occur (all 40 of one parity: probability 2^-39)');
    });
  }

  t.test(`${name}: helper sets that cannot repair are refused REPAIR_HELPERS_INVALID`, async (t) => {
    const { pub, shares } = dealt(suite, 3, 5, seededRng(new Uint8Array(32), name));
    const lost = id(1);
    const ok = plan([id(2), id(3), id(4)], lost);
    t.equal(hex(repairInProcess(suite, pub, ok, shares).share), hex(shares[lost]!), 'three helpers rebuild share 1');
    const cases: [string, RepairPlan][] = [
      ['fewer than t helpers', plan([id(2), id(3)], lost)],
      ['a helper listed twice', plan([id(2), id(3), id(3)], lost)],
      ['the target among the helpers', plan([id(1), id(2), id(3)], lost)],
      ['a helper that holds no share', plan([id(2), id(3), id(9)], lost)],
      ['a target that is not a canonical identifier', plan([id(2), id(3), id(4)], 'not-an-identifier')],
      ['the zero identifier as target', plan([id(2), id(3), id(4)], hex(new Uint8Array(Fn.BYTES)))],
    ];
    for (const [what, bad] of cases) {
      const helper = bad.helpers.find((h) => h !== bad.target && shares[h] !== undefined)!;
      t.equal(reason(() => repairStep1(suite, pub, bad, helper, shares[helper]!)), 'REPAIR_HELPERS_INVALID', `step 1: ${what}`);
      t.equal(reason(() => repairStep2(suite, pub, bad, helper, [])), 'REPAIR_HELPERS_INVALID', `step 2: ${what}`);
      t.equal(reason(() => repairStep3(suite, pub, bad, [])), 'REPAIR_HELPERS_INVALID', `step 3: ${what}`);
    }
    t.equal(reason(() => repairStep1(suite, pub, ok, id(5), shares[id(5)]!)), 'REPAIR_HELPERS_INVALID', 'a shareholder outside the helper set is not asked for deltas');
    t.equal(reason(() => repairStep2(suite, pub, ok, id(5), [])), 'REPAIR_HELPERS_INVALID', 'nor sums them');
    t.equal(reason(() => repairStep1(suite, pub, ok, id(2), shares[id(3)]!)), 'REPAIR_SHARE_MISMATCH', 'a helper whose share is not its own (wrong or corrupt store) is refused before it sends anything');
    t.equal(reason(() => repairStep1(suite, pub, { ...ok, epoch: -1 }, id(2), shares[id(2)]!)), 'PAYLOAD_REJECTED', 'a negative epoch');
    t.equal(reason(() => repairStep1(suite, pub, { ...ok, keyId: 'a\0b' }, id(2), shares[id(2)]!)), 'PAYLOAD_REJECTED', 'a key id that is not printable');
  });

  t.test(`${name}: bounds and malformed packages are refused before any secret is used`, async (t) => {
    const { pub, shares } = dealt(suite, 2, 32, seededRng(new Uint8Array(32), `${name}/bounds`));
    t.equal(reason(() => repairStep1(suite, pub, plan([id(1), id(2)], id(33)), id(1), shares[id(1)]!)), 'LIMIT_EXCEEDED', 'enrolling a 33rd participant of a 32-member committee');
    t.equal(hex(repairInProcess(suite, pub, plan([id(2), id(3)], id(1)), shares).share), hex(shares[id(1)]!), 'rebuilding a share of the full committee is fine');
    const many = Array.from({ length: 33 }, (_, i) => id((i % 31) + 2));
    t.equal(reason(() => repairStep1(suite, pub, plan(many, id(1)), id(2), shares[id(2)]!)), 'REPAIR_HELPERS_INVALID', 'more helpers than repairHelpersMax');
    const thin = { ...pub, verifyingShares: { [id(1)]: pub.verifyingShares[id(1)]! } };
    t.equal(reason(() => repairStep1(suite, thin, plan([id(1), id(2)], id(3)), id(1), shares[id(1)]!)), 'PAYLOAD_REJECTED', 'a package with fewer verifying shares than its threshold');
    const garbled = { ...pub, verifyingShares: { ...pub.verifyingShares, [id(1)]: new Uint8Array(pub.verifyingShares[id(1)]!.length).fill(0xff) } };
    t.equal(reason(() => repairStep1(suite, garbled, plan([id(1), id(2)], id(3)), id(1), shares[id(1)]!)), 'REPAIR_PUBLIC_INCONSISTENT', 'a recorded verifying share that is not a group element');
    t.equal(reason(() => repairInProcess(suite, garbled, plan([id(2), id(3)], id(1)), shares)), 'REPAIR_PUBLIC_INCONSISTENT', 'a target whose recorded verifying share is not a group element accepts no share');
  });

  t.test(`${name}: missing, duplicated, foreign and malformed parts are refused REPAIR_PACKAGE_REJECTED`, async (t) => {
    const { pub, shares } = dealt(suite, 2, 3, seededRng(new Uint8Array(32), `${name}/parts`));
    const p = plan([id(2), id(3)], id(1));
    const deltas = allDeltas(suite, pub, p, shares);
    const to2 = deltasFor(p, deltas, id(2));
    t.equal(reason(() => repairStep2(suite, pub, p, id(2), to2.slice(0, 1))), 'REPAIR_PACKAGE_REJECTED', 'a missing delta');
    t.equal(reason(() => repairStep2(suite, pub, p, id(2), [to2[0]!, to2[0]!])), 'REPAIR_PACKAGE_REJECTED', 'one helper\'s delta twice');
    t.equal(reason(() => repairStep2(suite, pub, p, id(2), [to2[0]!, { ...to2[1]!, helper: id(1) }])), 'REPAIR_PACKAGE_REJECTED', 'a delta from the target, who is not a helper');
    t.equal(reason(() => repairStep2(suite, pub, p, id(2), [to2[0]!, { ...to2[1]!, scalar: to2[1]!.scalar.slice(1) }])), 'REPAIR_PACKAGE_REJECTED', 'a short delta');
    t.equal(reason(() => repairStep2(suite, pub, p, id(2), [to2[0]!, { ...to2[1]!, scalar: new Uint8Array(Fn.BYTES).fill(0xff) }])), 'REPAIR_PACKAGE_REJECTED', 'a delta that is not a canonical scalar');
    const sigmas = sigmasOf(suite, pub, p, deltas);
    t.equal(reason(() => repairStep3(suite, pub, p, sigmas.slice(1))), 'REPAIR_PACKAGE_REJECTED', 'a missing sum');
    t.equal(reason(() => repairStep3(suite, pub, p, [sigmas[0]!, sigmas[0]!])), 'REPAIR_PACKAGE_REJECTED', 'one helper\'s sum twice');
    t.equal(hex(repairStep3(suite, pub, p, sigmas).share), hex(shares[id(1)]!), 'the untampered parts rebuild the share');
    // Sums of one run with deltas of another (same plan) do not add up.
    const other = sigmasOf(suite, pub, p, allDeltas(suite, pub, p, shares));
    t.equal(reason(() => repairStep3(suite, pub, p, [sigmas[0]!, other[1]!])), 'REPAIR_SHARE_MISMATCH', 'sums of two runs mixed');
  });

  t.test(`${name}: the expected verifying share of a new identifier is derived only from a consistent package`, async (t) => {
    const { pub, shares } = dealt(suite, 2, 4, seededRng(new Uint8Array(32), `${name}/public`));
    const fresh = id(7);
    const y = Fn.fromBytes(shares[id(1)]!);
    const x1 = Fn.fromBytes(Buffer.from(id(1), 'hex'));
    const x2 = Fn.fromBytes(Buffer.from(id(2), 'hex'));
    const f7 = interpolate(suite, [{ x: x1, y }, { x: x2, y: Fn.fromBytes(shares[id(2)]!) }], Fn.fromBytes(Buffer.from(fresh, 'hex')));
    t.equal(hex(expectedVerifyingShare(suite, pub, fresh).toBytes()), hex(suite.base.multiply(f7).toBytes()), 'interpolation in the exponent gives f(x)·G');
    t.equal(hex(checkRepairedShare(suite, pub, fresh, Fn.toBytes(f7))), hex(suite.base.multiply(f7).toBytes()), 'f(x) passes the check');
    t.equal(reason(() => checkRepairedShare(suite, pub, fresh, Fn.toBytes(Fn.add(f7, 1n)))), 'REPAIR_SHARE_MISMATCH', 'f(x) + 1 does not');
    t.equal(reason(() => checkRepairedShare(suite, pub, id(1), shares[id(2)]!)), 'REPAIR_SHARE_MISMATCH', 'another participant\'s share does not pass as share 1');
    t.equal(reason(() => checkRepairedShare(suite, pub, fresh, new Uint8Array(Fn.BYTES))), 'REPAIR_SHARE_MISMATCH', 'the zero share does not');
    const swapped = { ...pub, verifyingShares: { ...pub.verifyingShares, [id(4)]: pub.verifyingShares[id(3)]! } };
    t.equal(reason(() => expectedVerifyingShare(suite, swapped, fresh)), 'REPAIR_PUBLIC_INCONSISTENT', 'a recorded verifying share off the polynomial');
    const rekeyed = { ...pub, commitments: [pub.verifyingShares[id(1)]!, ...pub.commitments.slice(1)] };
    t.equal(reason(() => expectedVerifyingShare(suite, rekeyed, fresh)), 'REPAIR_PUBLIC_INCONSISTENT', 'a group key the verifying shares do not interpolate to');
    t.equal(reason(() => repairInProcess(suite, rekeyed, plan([id(1), id(2)], fresh), shares)), 'REPAIR_PUBLIC_INCONSISTENT', 'so no enrolment is accepted against it');
    const short = { ...pub, verifyingShares: { [id(1)]: pub.verifyingShares[id(1)]! } };
    t.equal(reason(() => expectedVerifyingShare(suite, short, fresh)), 'REPAIR_PUBLIC_INCONSISTENT', 'fewer verifying shares than the threshold');
  });

  t.test(`${name}: sealed deltas and sums (HPKE) repair end to end and open only under their own bindings`, async (t) => {
    const { pub, shares } = dealt(suite, 2, 3, seededRng(new Uint8Array(32), `${name}/sealed`));
    const fresh = id(4);
    const p = plan([id(1), id(3)], fresh);
    const keys: Record<string, TransportKey> = {};
    for (const i of [id(1), id(2), id(3), fresh]) keys[i] = await generateTransportKey();
    // Step 1: each helper keeps its own delta and seals the others.
    const deltas = allDeltas(suite, pub, p, shares);
    const sealed: { from: string; to: string; pkg: SealedPackage }[] = [];
    for (const [i, from] of p.helpers.entries()) {
      for (const to of p.helpers) {
        if (to !== from) sealed.push({ from, to, pkg: await sealRepairPart(suite, pub, 'delta', p, from, to, keys[to]!.publicKey, deltas[i]!.get(to)!) });
      }
    }
    // Step 2: each helper opens the deltas addressed to it and seals its sum to the target.
    const sums: { from: string; pkg: SealedPackage }[] = [];
    for (const [j, me] of p.helpers.entries()) {
      const parts: RepairPart[] = [{ helper: me, scalar: deltas[j]!.get(me)! }];
      for (const s of sealed.filter((x) => x.to === me)) parts.push(await openRepairPart(suite, pub, 'delta', p, s.from, me, keys[me]!.privateKey, s.pkg));
      const sigma = repairStep2(suite, pub, p, me, parts);
      sums.push({ from: me, pkg: await sealRepairPart(suite, pub, 'sigma', p, me, fresh, keys[fresh]!.publicKey, sigma) });
    }
    // Step 3: the target opens the sums and rebuilds.
    const opened: RepairPart[] = [];
    for (const s of sums) opened.push(await openRepairPart(suite, pub, 'sigma', p, s.from, fresh, keys[fresh]!.privateKey, s.pkg));
    const out = repairStep3(suite, pub, p, opened);
    t.ok(signWith(suite, out.public, [{ me: fresh, share: out.share }, { me: id(2), share: shares[id(2)]! }]), 'the enrolled participant and participant 2 (not a helper) sign');

    const d = sealed.find((x) => x.from === id(1) && x.to === id(3))!;
    const open = (q: RepairPlan, pkg: SealedPackage = d.pkg, stage: 'delta' | 'sigma' = 'delta', from = d.from, to = d.to) =>
      reasonAsync(openRepairPart(suite, pub, stage, q, from, to, keys[to]!.privateKey, pkg));
    t.equal(await open(p), 'OK', 'the delta opens under its own repair');
    const flipped = { ...d.pkg, ciphertext: d.pkg.ciphertext.slice() };
    flipped.ciphertext[0] = flipped.ciphertext[0]! ^ 1;
    t.equal(await open(p, flipped), 'REPAIR_PACKAGE_REJECTED', 'a tampered delta');
    t.equal(await open({ ...p, keyId: 'another-key' }), 'REPAIR_PACKAGE_REJECTED', 'a delta for another key');
    t.equal(await open({ ...p, epoch: p.epoch + 1 }), 'REPAIR_PACKAGE_REJECTED', 'a delta for another epoch');
    t.equal(await open({ ...p, target: id(5) }), 'REPAIR_PACKAGE_REJECTED', 'a delta for another target');
    t.equal(await open({ ...p, ceremonyId: 'repair-2' }), 'REPAIR_PACKAGE_REJECTED', 'a delta from another repair of the same target');
    t.equal(await open({ ...p, helpers: [id(1), id(2), id(3)] }), 'REPAIR_PACKAGE_REJECTED', 'a delta computed for another helper set');
    const sumFrom1 = sums.find((x) => x.from === id(1))!;
    t.equal(await reasonAsync(openRepairPart(suite, pub, 'delta', p, id(1), id(3), keys[fresh]!.privateKey, sumFrom1.pkg)), 'WRONG_RECIPIENT', 'a sum to the target offered to a helper as a delta');
    t.equal(await open(p, { ...d.pkg, recipient: fresh }, 'sigma', d.from, fresh), 'REPAIR_PACKAGE_REJECTED', 'a delta re-addressed to the target as a sum');
    t.equal(await open(p, d.pkg, 'delta', id(3), id(1)), 'WRONG_RECIPIENT', 'a delta presented to another helper than the one it was sealed to');
    t.equal(await open(p, d.pkg, 'delta', id(2), id(3)), 'REPAIR_PACKAGE_REJECTED', 'a delta claimed from a participant that is not a helper');
    t.equal(await open(p, { ...d.pkg, ciphertext: new Uint8Array(4096) }), 'REPAIR_PACKAGE_REJECTED', 'an oversized package, before any decryption');
    t.equal(await reasonAsync(sealRepairPart(suite, pub, 'sigma', p, id(1), id(3), keys[id(3)]!.publicKey, deltas[0]!.get(id(3))!)), 'REPAIR_PACKAGE_REJECTED', 'a sum is sealed only to the target');
    if (name === 'secp256k1') {
      // secp256k1 and taproot share the curve and the identifiers: the suite is bound as well.
      t.equal(await reasonAsync(openRepairPart(suiteOf('taproot'), pub, 'delta', p, d.from, d.to, keys[d.to]!.privateKey, d.pkg)), 'REPAIR_PACKAGE_REJECTED', 'a delta of a secp256k1 key opened as a taproot one');
    }
  });
}
