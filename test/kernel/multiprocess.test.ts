/**
 * DKG and 2-of-3 signing across THREE kernel processes on Unix sockets, for every suite and both
 * profiles; every signature checked by a verifier independent of the FROST code (OpenSSL Ed25519
 * for ed25519, BIP340 Schnorr for taproot). Then proactive refresh and reshare across the same
 * processes: new epoch, same group key, old epoch refused.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { SUITE_NAMES } from '../../kernel/suites.js';
import {
  Governance, PROFILES, identifierFor, independentVerify, reasonOf, runDkg, setupKernel, signAcross, startKernel, tempDir, toPackage,
  type KernelProcess, type Member,
} from './harness.js';
import type { Participant, PublicPackage } from '../../kernel/wire.js';

for (const profile of PROFILES) {
  t.test(`three ${profile} kernel processes: DKG, signing, refresh, reshare`, { timeout: 600_000 }, async (t) => {
    const { dir, cleanup } = tempDir(`mp-${profile}`);
    const gov = new Governance();
    const procs: KernelProcess[] = [];
    t.teardown(async () => {
      for (const p of procs) await p.stop();
      cleanup();
    });
    for (const id of ['n1', 'n2', 'n3']) procs.push(await startKernel(setupKernel(dir, id, profile, gov)));
    const members: Member[] = procs.map((p) => ({ nodeId: p.setup.nodeId, client: p.client, transportPublicKey: p.transportPublicKey }));

    t.test('the socket is 0600 inside a 0700 folder', async (t) => {
      for (const p of procs) {
        t.equal(statSync(p.setup.socketPath).mode & 0o777, 0o600, `${p.setup.nodeId} socket mode`);
        t.equal(statSync(dirname(p.setup.socketPath)).mode & 0o777, 0o700, `${p.setup.nodeId} folder mode`);
      }
    });

    for (const suite of SUITE_NAMES) {
      t.test(`${suite}: DKG then 2-of-3 signatures that verify independently`, async (t) => {
        const key = await runDkg(gov, members, `key-${suite}`, suite, 2);
        const groupKey = key.public.commitments[0]!;
        // Each pair of kernels signs; every signature verifies outside the FROST code.
        for (const pair of [[0, 1], [1, 2], [0, 2]] as const) {
          const message = suite === 'taproot' ? randomBytes(32) : Buffer.from(`pay 1 unit, pair ${pair.join('+')}`);
          const out = await signAcross(gov, pair.map((i) => members[i]!), key, message);
          t.ok(independentVerify(suite, groupKey, message, out.signature), `signers ${pair.join('+')}`);
          t.notOk(independentVerify(suite, groupKey, Buffer.concat([message, Buffer.from([1])]), out.signature), 'and not for another message');
        }
      });
    }

    t.test('refresh: new epoch, same group key; the old epoch is refused', async (t) => {
      const key = await runDkg(gov, members, 'key-refresh', 'ed25519', 2);
      const committee: Participant[] = members.map((m) => ({ identifier: key.identifiers[m.nodeId]!, nodeId: m.nodeId, transportPublicKey: m.transportPublicKey }));
      const authz = gov.decide({ kind: 'KeyRefreshed', keyId: key.keyId, keyEpoch: 1 });
      for (const m of members) await m.client.call({ kind: 'governance', decisions: [authz] }, 'governance');
      const next = await redeal(members, key.keyId, 'ed25519', 0, [members[0]!, members[2]!].map((m) => key.identifiers[m.nodeId]!), committee, 2, key.public);
      t.equal(Buffer.from(next.commitments[0]!).toString('hex'), Buffer.from(key.public.commitments[0]!).toString('hex'), 'same group public key');
      const hex = (p: PublicPackage): string[] => p.verifyingShares.map((v) => Buffer.from(v.point).toString('hex')).sort();
      t.notSame(hex(next), hex(key.public), 'fresh verifying shares');
      const act = gov.decide({ kind: 'KeyActivated', keyId: key.keyId, keyEpoch: 1, keyReadyCid: randomBytes(32) });
      for (const m of members) await m.client.call({ kind: 'governance', decisions: [act] }, 'governance');
      const message = Buffer.from('after refresh');
      const out = await signAcross(gov, [members[1]!, members[2]!], key, message, 1, next);
      t.ok(independentVerify('ed25519', key.public.commitments[0]!, message, out.signature), 'epoch-1 signature verifies under the unchanged key');
      t.equal(await reasonOf(members[0]!.client.call({ kind: 'nonces', keyId: key.keyId, keyEpoch: 0, count: 1 }, 'nonceCommitments')), 'UNKNOWN_KEY', 'epoch-0 shares are erased');
    });

    t.test('reshare: 2-of-3 becomes 3-of-3 under the same key (taproot)', async (t) => {
      const key = await runDkg(gov, members, 'key-reshare', 'taproot', 2);
      const committee: Participant[] = members.map((m) => ({ identifier: key.identifiers[m.nodeId]!, nodeId: m.nodeId, transportPublicKey: m.transportPublicKey }));
      const authz = gov.decide({ kind: 'KeyReshared', keyId: key.keyId, keyEpoch: 1, threshold: 3, participants: members.map((m) => m.nodeId) });
      for (const m of members) await m.client.call({ kind: 'governance', decisions: [authz] }, 'governance');
      const next = await redeal(members, key.keyId, 'taproot', 0, [members[0]!, members[1]!].map((m) => key.identifiers[m.nodeId]!), committee, 3, key.public);
      t.equal(next.min, 3);
      const act = gov.decide({ kind: 'KeyActivated', keyId: key.keyId, keyEpoch: 1, keyReadyCid: randomBytes(32) });
      for (const m of members) await m.client.call({ kind: 'governance', decisions: [act] }, 'governance');
      const message = randomBytes(32);
      const all = await signAcross(gov, members, key, message, 1, next);
      t.ok(independentVerify('taproot', key.public.commitments[0]!, message, all.signature), '3-of-3 signature verifies (BIP340)');
      t.equal(await reasonOf(signAcross(gov, [members[0]!, members[1]!], key, message, 1, next)), 'PAYLOAD_REJECTED', 'two signers no longer suffice');
    });

    t.test('reshare to a new committee: n1 leaves, a fresh kernel n4 joins (secp256k1)', async (t) => {
      const key = await runDkg(gov, members, 'key-move', 'secp256k1', 2);
      const n4 = await startKernel(setupKernel(dir, 'n4', profile, gov));
      procs.push(n4);
      const m4: Member = { nodeId: 'n4', client: n4.client, transportPublicKey: n4.transportPublicKey };
      // The newcomer follows governance from its pinned genesis through the whole decision log.
      const caught = await m4.client.call({ kind: 'governance', decisions: gov.log }, 'governance');
      t.equal(caught.applied, gov.log.length, 'n4 verified and applied every decision since genesis');
      const [, m2, m3] = members as [Member, Member, Member];
      const committee: Participant[] = [
        { identifier: key.identifiers['n2']!, nodeId: 'n2', transportPublicKey: m2.transportPublicKey },
        { identifier: key.identifiers['n3']!, nodeId: 'n3', transportPublicKey: m3.transportPublicKey },
        { identifier: identifierFor('secp256k1', 4), nodeId: 'n4', transportPublicKey: m4.transportPublicKey },
      ];
      const authz = gov.decide({ kind: 'KeyReshared', keyId: key.keyId, keyEpoch: 1, threshold: 2, participants: ['n2', 'n3', 'n4'] });
      for (const m of [...members, m4]) await m.client.call({ kind: 'governance', decisions: [authz] }, 'governance');
      const next = await redeal([...members, m4], key.keyId, 'secp256k1', 0, [key.identifiers['n2']!, key.identifiers['n3']!], committee, 2, key.public);
      t.equal(Buffer.from(next.commitments[0]!).toString('hex'), Buffer.from(key.public.commitments[0]!).toString('hex'), 'same group public key');
      const act = gov.decide({ kind: 'KeyActivated', keyId: key.keyId, keyEpoch: 1, keyReadyCid: randomBytes(32) });
      for (const m of [...members, m4]) await m.client.call({ kind: 'governance', decisions: [act] }, 'governance');
      const message = Buffer.from('signed by the new committee');
      const out = await signAcross(gov, [m3, m4], key, message, 1, next);
      t.ok(independentVerify('secp256k1', key.public.commitments[0]!, message, out.signature), 'n3 + n4 sign under the unchanged key');
      t.equal(await reasonOf(members[0]!.client.call({ kind: 'nonces', keyId: key.keyId, keyEpoch: 1, count: 1 }, 'nonceCommitments')), 'UNKNOWN_KEY', 'n1 left the committee and holds nothing of epoch 1');
      t.equal(await reasonOf(members[0]!.client.call({ kind: 'nonces', keyId: key.keyId, keyEpoch: 0, count: 1 }, 'nonceCommitments')), 'UNKNOWN_KEY', 'and its epoch-0 share is erased');
    });
  });
}

/** Drives a redeal ceremony across the kernels (what the daemons do). */
async function redeal(
  members: Member[], keyId: string, suite: 'ed25519' | 'taproot' | 'secp256k1', fromEpoch: number, dealers: string[],
  committee: Participant[], min: number, current: PublicPackage,
): Promise<PublicPackage> {
  const ceremonyId = `redeal-${keyId}-${fromEpoch}`;
  const dealt = await Promise.all(members.map((m) => m.client.call({
    kind: 'redealBegin', ceremonyId, keyId, fromEpoch, toEpoch: fromEpoch + 1, dealers, min, committee, suite, current,
    identifier: committee.find((c) => c.nodeId === m.nodeId)?.identifier ?? '',
  }, 'redealDealt')));
  const deals = dealt.filter((d) => d.dealer !== '');
  const stay = members.filter((m) => committee.some((c) => c.nodeId === m.nodeId));
  const results = await Promise.all(stay.map((m) => {
    const me = committee.find((c) => c.nodeId === m.nodeId)!.identifier;
    return m.client.call({
      kind: 'redealFinish', ceremonyId,
      deals: deals.map((d) => ({ dealer: d.dealer, commitments: d.commitments, package: d.packages.find((p) => p.recipient === me)! })),
    }, 'keyPackage');
  }));
  const first = results[0]!.public;
  for (const r of results) {
    if (JSON.stringify(toPackage(r.public).commitments.map((c) => Buffer.from(c).toString('hex'))) !== JSON.stringify(toPackage(first).commitments.map((c) => Buffer.from(c).toString('hex')))) {
      throw new Error('kernels disagree on the new package');
    }
  }
  return first;
}
