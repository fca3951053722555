/**
 * Refresh and reshare (kernel/redeal.ts) on their own, with a trusted-dealer key: the group key
 * is unchanged, the new shares sign, and each check of the construction rejects what it exists
 * to reject (RFC 9591 §4.2 Lagrange, Appendix C.2 Feldman verification).
 */
import t from 'tap';
import { CustodyError } from '../../proto/errors.js';
import { combine, deal, type RedealPlan } from '../../kernel/redeal.js';
import { SUITE_NAMES, suiteOf, type PublicKeyPackage, type Suite } from '../../kernel/suites.js';
import { dealer, signWith } from './harness.js';

function run(suite: Suite, pub: PublicKeyPackage, shares: Record<string, Uint8Array>, plan: RedealPlan) {
  const deals = plan.dealers.map((d) => ({ dealer: d, ...deal(suite, pub, d, shares[d]!, plan) }));
  return plan.committee.map((me) => ({
    me,
    ...combine(suite, pub, me, plan, deals.map((d) => ({ dealer: d.dealer, commitments: d.commitments, share: d.shares.get(me)! }))),
  }));
}

const reason = (f: () => unknown): string => {
  try {
    f();
    return 'OK';
  } catch (e) {
    return e instanceof CustodyError ? `${e.reason}: ${e.detail}` : `throw: ${(e as Error).message}`;
  }
};

for (const name of SUITE_NAMES) {
  const suite = suiteOf(name);
  const id = (n: number): string => suite.frost.Identifier.fromNumber(n);

  t.test(`${name}: refresh keeps the group key and the new shares sign`, async (t) => {
    const { pub, shares } = dealer(suite, 2, 3);
    const plan = { dealers: [id(1), id(3)], committee: [id(1), id(2), id(3)], min: 2 };
    const out = run(suite, pub, shares, plan);
    const next = out[0]!.public;
    for (const o of out) t.same(o.public, next, `${o.me} computed the same package`);
    t.equal(Buffer.from(next.commitments[0]!).toString('hex'), Buffer.from(pub.commitments[0]!).toString('hex'), 'same group key');
    t.ok(signWith(suite, next, [out[1]!, out[2]!].map((o) => ({ me: o.me, share: o.share }))), 'new shares 2+3 sign');
    t.notOk(Buffer.from(out[0]!.share).equals(Buffer.from(shares[id(1)]!)), 'share 1 changed');
  });

  t.test(`${name}: reshare 2-of-3 to a new 3-of-4 committee with a new member`, async (t) => {
    const { pub, shares } = dealer(suite, 2, 3);
    const plan = { dealers: [id(2), id(3)], committee: [id(1), id(2), id(3), id(4)], min: 3 };
    const out = run(suite, pub, shares, plan);
    const next = out[0]!.public;
    t.equal(next.signers.min, 3);
    t.equal(next.signers.max, 4);
    t.ok(signWith(suite, next, [out[0]!, out[2]!, out[3]!].map((o) => ({ me: o.me, share: o.share }))), 'members 1, 3 and the new 4 sign');
  });

  t.test(`${name}: every check refuses what it exists to refuse`, async (t) => {
    const { pub, shares } = dealer(suite, 2, 3);
    const plan = { dealers: [id(1), id(2)], committee: [id(1), id(2), id(3)], min: 2 };
    const deals = plan.dealers.map((d) => ({ dealer: d, ...deal(suite, pub, d, shares[d]!, plan) }));
    const received = (me: string) => deals.map((d) => ({ dealer: d.dealer, commitments: d.commitments, share: d.shares.get(me)! }));
    t.match(reason(() => deal(suite, pub, id(1), shares[id(1)]!, { ...plan, min: 1 })), /PAYLOAD_REJECTED: new committee: threshold 1/, 'threshold below 2');
    t.match(reason(() => deal(suite, pub, id(1), shares[id(1)]!, { ...plan, min: 4 })), /PAYLOAD_REJECTED: new committee: threshold 4 of 3/, 'threshold above the committee');
    t.match(reason(() => deal(suite, pub, id(1), shares[id(1)]!, { ...plan, dealers: [id(1)] })), /PAYLOAD_REJECTED/, 'fewer dealers than the old threshold');
    t.match(reason(() => deal(suite, pub, id(1), shares[id(1)]!, { ...plan, dealers: [id(1), id(1)] })), /duplicate identifier/, 'a dealer listed twice');
    t.match(reason(() => deal(suite, pub, id(1), shares[id(1)]!, { ...plan, dealers: [id(1), id(5)] })), /holds no share/, 'a dealer outside the committee');
    const r1 = received(id(3));
    const tamperedShare = r1.map((d, i) => (i === 0 ? { ...d, share: suite.Fn.toBytes(suite.Fn.add(suite.Fn.fromBytes(d.share), 1n)) } : d));
    t.match(reason(() => combine(suite, pub, id(3), plan, tamperedShare)), /check 2/, 'a share that does not match its commitments (Feldman)');
    // A dealer that re-deals some other value than its own share: consistent commitments, wrong constant.
    const rogue = deal(suite, pub, id(1), suite.Fn.toBytes(suite.Fn.add(suite.Fn.fromBytes(shares[id(1)]!), 1n)), plan);
    const withRogue = [{ dealer: id(1), commitments: rogue.commitments, share: rogue.shares.get(id(3))! }, r1[1]!];
    t.match(reason(() => combine(suite, pub, id(3), plan, withRogue)), /check 1/, 'a dealer that shifts the key is caught');
    t.match(reason(() => combine(suite, pub, id(3), plan, [r1[0]!])), /expected 2 deals/, 'a missing deal');
    t.match(reason(() => combine(suite, pub, id(3), plan, [r1[0]!, r1[0]!])), /two deals/, 'a duplicated deal');
    t.match(reason(() => combine(suite, pub, id(3), plan, r1.map((d) => ({ ...d, commitments: d.commitments.slice(0, 1) })))), /degree/, 'a commitment vector of the wrong length');
    t.equal(reason(() => combine(suite, pub, id(3), plan, r1)), 'OK', 'the untampered deals combine');
  });
}
