/**
 * Share repair on real kernel processes, both profiles (kernel/repair.ts, kernel.ts repairDeal /
 * repairSum / repairFinish): a 2-of-3 key of n1, n2, n3; n3's kernel store is deleted and a
 * fresh kernel follows governance from its genesis; under a RepairAuthorized decision n1 and n2
 * rebuild n3's share with no backup, and n3 signs with n1 and with n2 signatures that verify under
 * the unchanged group key with an independent verifier. Then a fourth node, n4, which never held
 * a share, is enrolled by n2 and the repaired n3 under a new identifier and signs with n1. The
 * daemons' side is played by the test, as an attacker too: each step without its decision or
 * outside its role, a delta or sum of another repair, a public package other than the helpers',
 * a wrong helper list or target, a cheating helper's sum (a share that does not match its
 * verifying share), a repeated step; nothing is stored after any refusal. The hsm profile keeps
 * its token (only the kernel store is deleted).
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { decisionCid, decisionFromCbor } from '../../ledger/decision.js';
import { decode, toHex } from '../../ledger/encoding.js';
import { sealRepairPart } from '../../kernel/repair.js';
import { suiteOf, type SuiteName } from '../../kernel/suites.js';
import type { CommittedDecision, Participant, PublicPackage, SealedPackage } from '../../kernel/wire.js';
import {
  Governance, PROFILES, identifierFor, independentVerify, memberOf, reasonOf, runDkg, setupKernel, signAcross, startKernel, tempDir, toPackage,
  type KernelProcess,
} from './harness.js';

const cidOf = (d: CommittedDecision): string => toHex(decisionCid(decisionFromCbor(decode(d.decision)).body));

for (const profile of PROFILES) {
  const suiteName: SuiteName = profile === 'software' ? 'ed25519' : 'taproot';
  t.test(`${profile}: n1 and n2 rebuild n3's lost share under a decision; n4 is enrolled and signs with n1`, { timeout: 900_000 }, async (t) => {
    const { dir, cleanup } = tempDir(`share-repair-${profile}`);
    const gov = new Governance();
    const ids = ['n1', 'n2', 'n3', 'n4'];
    const setups = ids.map((id) => setupKernel(dir, id, profile, gov));
    const procs: Record<string, KernelProcess> = {};
    t.teardown(async () => {
      for (const p of Object.values(procs)) await p.stop();
      cleanup();
    });
    for (const s of setups) procs[s.nodeId] = await startKernel(s);
    const forward = async (d: CommittedDecision): Promise<void> => {
      for (const id of ids) await procs[id]!.client.call({ kind: 'governance', decisions: [d] }, 'governance');
    };
    const key = await runDkg(gov, ['n1', 'n2', 'n3'].map((id) => memberOf(procs[id]!)), 'k-repair', suiteName, 2);
    await procs['n4']!.client.call({ kind: 'governance', decisions: [...gov.log] }, 'governance');
    const groupKey = key.public.commitments[0]!;
    const suite = suiteOf(suiteName);

    const before = await signAcross(gov, ['n2', 'n3'].map((id) => memberOf(procs[id]!)), key, randomBytes(32));
    t.ok(before.signature.length > 0, 'n2 and n3 sign before the loss');
    const n3Consumed = (await procs['n3']!.client.call({ kind: 'status' }, 'status')).keys.find((k) => k.keyId === key.keyId)!.consumedCounter;

    // Disaster: n3's kernel store is deleted; no backup is used.
    await procs['n3']!.stop();
    rmSync(setups[2]!.storeDir, { recursive: true, force: true });
    procs['n3'] = await startKernel(setups[2]!);
    await procs['n3'].client.call({ kind: 'governance', decisions: [...gov.log] }, 'governance');
    t.same((await procs['n3'].client.call({ kind: 'status' }, 'status')).keys, [], 'the fresh kernel holds no share');

    const part = (id: string, identifier = key.identifiers[id]!): Participant => ({ nodeId: id, identifier, transportPublicKey: procs[id]!.transportPublicKey });
    const decide = (over: Record<string, unknown> = {}): CommittedDecision => gov.decide({
      kind: 'RepairAuthorized', nodeId: 'n3', keyId: key.keyId, keyEpoch: 0, identifier: key.identifiers['n3']!, helpers: ['n1', 'n2'], groupKey, ...over,
    } as never);
    const deal = (id: string, ceremonyId: string, helpers: Participant[] = [part('n1'), part('n2')]) =>
      procs[id]!.client.call({ kind: 'repairDeal', ceremonyId, keyId: key.keyId, epoch: 0, helpers }, 'repairDealt');
    const sum = (id: string, ceremonyId: string, deltas: SealedPackage[], target: Participant = part('n3')) =>
      procs[id]!.client.call({ kind: 'repairSum', ceremonyId, keyId: key.keyId, epoch: 0, deltas, target }, 'repairSummed');
    const finish = (id: string, ceremonyId: string, sums: SealedPackage[], pub: PublicPackage = key.public) =>
      procs[id]!.client.call({ kind: 'repairFinish', ceremonyId, keyId: key.keyId, epoch: 0, public: pub, sums, ledgerConsumedCounter: n3Consumed }, 'keyPackage');
    /** Steps 1 and 2 between two helpers: each one's sum, sealed to the target. */
    const dealAndSum = async (ceremonyId: string, helpers: [string, string], target: Participant): Promise<SealedPackage[]> => {
      const hs = helpers.map((h) => part(h));
      const dealt = await Promise.all(helpers.map((h) => deal(h, ceremonyId, hs)));
      const sums = await Promise.all(helpers.map((h, i) => sum(h, ceremonyId, dealt[1 - i]!.packages, target)));
      return sums.map((s) => s.package);
    };
    const held = async (id: string): Promise<number> => (await procs[id]!.client.call({ kind: 'status' }, 'status')).keys.length;

    await t.test('without a decision every step is refused REPAIR_NOT_AUTHORIZED', async (t) => {
      const made = toHex(randomBytes(32));
      const junk = (from: string, to: string): SealedPackage => ({ sender: key.identifiers[from]!, recipient: key.identifiers[to]!, enc: randomBytes(32), ciphertext: randomBytes(48) });
      t.equal(await reasonOf(deal('n1', made)), 'REPAIR_NOT_AUTHORIZED', 'step 1');
      t.equal(await reasonOf(sum('n1', made, [junk('n2', 'n1')])), 'REPAIR_NOT_AUTHORIZED', 'step 2');
      t.equal(await reasonOf(finish('n3', made, [junk('n1', 'n3'), junk('n2', 'n3')])), 'REPAIR_NOT_AUTHORIZED', 'step 3');
      t.equal(await held('n3'), 0, 'nothing stored');
    });

    const d1 = decide();
    await forward(d1);
    const c1 = cidOf(d1);

    await t.test('outside its role, or with another helper list or target, a step is refused', async (t) => {
      t.equal(await reasonOf(deal('n3', c1, [part('n1'), part('n2')])), 'REPAIR_NOT_AUTHORIZED', 'the target is not a helper');
      t.equal(await reasonOf(deal('n4', c1)), 'REPAIR_NOT_AUTHORIZED', 'a node that is neither');
      t.equal(await reasonOf(deal('n1', c1, [part('n1'), part('n3')])), 'BINDING_MISMATCH', 'the daemon names another helper than the decision');
      t.equal(await reasonOf(deal('n1', c1, [part('n1'), part('n2', key.identifiers['n3'])])), 'BINDING_MISMATCH', 'a helper under another identifier');
      const junk = (from: string): SealedPackage => ({ sender: key.identifiers[from]!, recipient: key.identifiers['n3']!, enc: randomBytes(32), ciphertext: randomBytes(48) });
      t.equal(await reasonOf(finish('n1', c1, [junk('n1'), junk('n2')])), 'REPAIR_NOT_AUTHORIZED', 'step 3 on a node that is not the target');
      const d1n1 = await deal('n1', c1);
      t.equal(await reasonOf(deal('n1', c1)), 'REPLAY_OR_CONFLICT', 'step 1 twice for one repair');
      const d1n2 = await deal('n2', c1);
      t.equal(await reasonOf(sum('n1', c1, d1n2.packages, part('n4', identifierFor(suiteName, 4)))), 'BINDING_MISMATCH', 'a sum for another target than the decision\'s');
      t.equal(await reasonOf(sum('n1', c1, d1n1.packages)), 'WRONG_RECIPIENT', 'n1 presented its own delta to n2 as one for itself');
      t.equal(await held('n3'), 0, 'nothing stored');
    });

    // A fresh run of the first repair: steps 1 and 2 complete, the sums are kept for the attacks.
    const d2 = decide({ helpers: ['n2', 'n1'] });
    await forward(d2);
    const c2 = cidOf(d2);
    const sums2 = await dealAndSum(c2, ['n1', 'n2'], part('n3'));

    await t.test('a delta or a sum of another repair does not open; a package other than the helpers\' opens no sum', async (t) => {
      const d3 = decide();
      await forward(d3);
      const c3 = cidOf(d3);
      t.equal(await reasonOf(finish('n3', c2, sums2)), 'REPAIR_NOT_AUTHORIZED', 'the decision of these sums was replaced');
      t.equal(await reasonOf(finish('n3', c3, sums2)), 'REPAIR_PACKAGE_REJECTED', 'sums of repair c2 presented under repair c3');
      const old = await Promise.all(['n1', 'n2'].map((h) => deal(h, c3)));
      // Deltas of the previous ceremony presented under a new one.
      const d4 = decide();
      await forward(d4);
      const c4 = cidOf(d4);
      await deal('n1', c4);
      t.equal(await reasonOf(sum('n1', c4, old[1]!.packages)), 'REPAIR_PACKAGE_REJECTED', 'n2\'s delta of repair c3 presented to n1 under repair c4');
      await deal('n1', c4).catch(() => undefined);
      // n1's kernel restarts between its two steps: the delta it kept is in its store, sealed,
      // and it still sums.
      const d5 = decide();
      await forward(d5);
      const c5 = cidOf(d5);
      const dealt5 = await Promise.all(['n1', 'n2'].map((h) => deal(h, c5, [part('n1'), part('n2')])));
      await procs['n1']!.stop();
      procs['n1'] = await startKernel(setups[0]!);
      t.equal(await reasonOf(deal('n1', c5, [part('n1'), part('n2')])), 'REPLAY_OR_CONFLICT', 'after its restart n1 still knows it dealt for this repair');
      const sums5 = (await Promise.all(['n1', 'n2'].map((h, i) => sum(h, c5, dealt5[1 - i]!.packages, part('n3'))))).map((x) => x.package);
      t.same(sums5.map((x) => x.sender), [key.identifiers['n1'], key.identifiers['n2']], 'n1 sums after its restart with the delta it kept (the share these sums rebuild is checked below)');
      t.equal(await reasonOf(sum('n1', c5, dealt5[1]!.packages, part('n3'))), 'REPAIR_PACKAGE_REJECTED', 'the kept delta is spent: a second sum is refused');
      const vs = key.public.verifyingShares.map((v) => (v.identifier === key.identifiers['n1'] ? { ...v, point: key.public.verifyingShares[1]!.point } : v));
      t.equal(await reasonOf(finish('n3', c5, sums5, { ...key.public, verifyingShares: vs })), 'REPAIR_PACKAGE_REJECTED', 'a forged verifying share in the package');
      t.equal(await reasonOf(finish('n3', c5, sums5, { ...key.public, commitments: [key.public.verifyingShares[0]!.point, ...key.public.commitments.slice(1)] })), 'BINDING_MISMATCH', 'another group key');
      t.equal(await reasonOf(finish('n3', c5, [sums5[0]!, sums5[0]!])), 'REPAIR_PACKAGE_REJECTED', 'one helper\'s sum twice');
      t.equal(await reasonOf(finish('n3', c5, sums5.map((s) => ({ ...s, ciphertext: s.ciphertext.map((b, i) => (i === 0 ? b ^ 1 : b)) })))), 'REPAIR_PACKAGE_REJECTED', 'a tampered sum');

      // A cheating helper: n2's kernel seals a sum that is off by a random error, under every
      // right binding. The result does not match n3's verifying share: refused, nothing stored.
      const plan = { ceremonyId: c5, keyId: key.keyId, epoch: 0, helpers: [key.identifiers['n1']!, key.identifiers['n2']!], target: key.identifiers['n3']! };
      const wrong = suite.Fn.toBytes(BigInt(`0x${randomBytes(40).toString('hex')}`) % suite.Fn.ORDER);
      const cheat = await sealRepairPart(suite, toPackage(key.public), 'sigma', plan, key.identifiers['n2']!, key.identifiers['n3']!, new Uint8Array(procs['n3']!.transportPublicKey), wrong);
      t.equal(await reasonOf(finish('n3', c5, [sums5.find((s) => s.sender === key.identifiers['n1'])!, cheat])), 'REPAIR_SHARE_MISMATCH', 'a result that does not match the verifying share');
      t.equal(await held('n3'), 0, 'nothing was stored after any refusal');

      // The same sums, honest, rebuild the share.
      const r = await finish('n3', c5, sums5);
      t.equal(r.identifier, key.identifiers['n3'], 'n3 holds its share again, under its own identifier');
      t.equal(await reasonOf(finish('n3', c5, sums5)), 'SHARE_ALREADY_HELD', 'the repair again');
    });

    await t.test('the repaired n3 signs with n1 and with n2 under the unchanged group key, its nonces above the ledger\'s counter', async (t) => {
      const st = (await procs['n3']!.client.call({ kind: 'status' }, 'status')).keys.find((k) => k.keyId === key.keyId)!;
      t.ok(st.active, 'the key is active on n3 again');
      t.ok(st.consumedCounter >= n3Consumed, `consumed counter ${st.consumedCounter} is at least the ledger's ${n3Consumed}`);
      t.ok(Buffer.from(st.groupPublicKey).equals(Buffer.from(groupKey)), 'the group key is unchanged');
      for (const peer of ['n1', 'n2']) {
        const msg = randomBytes(32);
        const s = await signAcross(gov, [peer, 'n3'].map((id) => memberOf(procs[id]!)), key, msg);
        t.ok(independentVerify(suiteName, groupKey, msg, s.signature), `${peer} and the repaired n3 sign (independent verifier)`);
      }
    });

    await t.test('n4 is enrolled by n2 and the repaired n3 under a new identifier, and signs with n1', async (t) => {
      const id4 = identifierFor(suiteName, 4);
      const d = decide({ nodeId: 'n4', identifier: id4, helpers: ['n2', 'n3'] });
      await forward(d);
      const c = cidOf(d);
      const committee = (await procs['n1']!.client.call({ kind: 'publicPackage', keyId: key.keyId, epoch: 0 }, 'keyPackage')).public;
      t.equal(committee.verifyingShares.length, 3, 'n1\'s package of the epoch stays the committee\'s (what a refresh checks)');
      const target: Participant = { nodeId: 'n4', identifier: id4, transportPublicKey: procs['n4']!.transportPublicKey };
      const hs = [part('n2'), part('n3')];
      const dealt = await Promise.all(['n2', 'n3'].map((h) => deal(h, c, hs)));
      t.equal(dealt[0]!.public.verifyingShares.length, 4, 'the helpers bind their deltas to the package with the enrolled identifier');
      const sums = await Promise.all(['n2', 'n3'].map((h, i) => sum(h, c, dealt[1 - i]!.packages, target)));
      t.equal(await reasonOf(procs['n4']!.client.call({ kind: 'repairFinish', ceremonyId: c, keyId: key.keyId, epoch: 0, public: committee, sums: sums.map((s) => s.package), ledgerConsumedCounter: 0 }, 'keyPackage')), 'BINDING_MISMATCH', 'the committee\'s package names no verifying share of the new identifier');
      const r = await procs['n4']!.client.call({ kind: 'repairFinish', ceremonyId: c, keyId: key.keyId, epoch: 0, public: dealt[0]!.public, sums: sums.map((s) => s.package), ledgerConsumedCounter: 0 }, 'keyPackage');
      t.equal(r.identifier, id4, 'n4 holds a share under the new identifier');
      const extended = r.public;
      const mine = extended.verifyingShares.find((v) => v.identifier === id4)!.point;
      t.ok(Buffer.from(mine).equals(Buffer.from(dealt[1]!.public.verifyingShares.find((v) => v.identifier === id4)!.point)), 'its verifying share is the one the helpers interpolated');
      t.ok(Buffer.from(extended.commitments[0]!).equals(Buffer.from(groupKey)), 'under the same group key');
      const msg = randomBytes(32);
      const s = await signAcross(gov, ['n1', 'n4'].map((id) => memberOf(procs[id]!)), key, msg, 0, extended);
      t.ok(independentVerify(suiteName, groupKey, msg, s.signature), 'n1 and the enrolled n4 sign under the group key (independent verifier)');
    });

    await t.test('a decision naming the target among its helpers is refused by the kernel', async (t) => {
      // Last: a refused decision leaves the kernel's chain behind the harness's, as the ledger's would be.
      t.equal(await reasonOf(procs['n2']!.client.call({ kind: 'governance', decisions: [decide({ helpers: ['n1', 'n3'] })] }, 'governance')), 'REPAIR_HELPERS_INVALID');
      t.equal(await reasonOf(deal('n2', toHex(randomBytes(32)))), 'REPAIR_NOT_AUTHORIZED', 'and it grants nothing');
    });
  });
}
