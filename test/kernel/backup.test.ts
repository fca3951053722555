/**
 * Share backups (kernel/backup.ts) with real FROST key material from every suite's trusted dealer:
 * each participant's share round-trips through age to custodians' recipients and still signs;
 * a backup of another key, epoch, participant or group key, an altered clear metadata, a flipped
 * byte anywhere, the wrong identity and a forged share encrypted to the right recipients are all
 * refused with their reason codes. A failing property prints its seed; replay with FC_SEED=<seed>.
 */
import t from 'tap';
import fc from 'fast-check';
import { Encrypter, generateX25519Identity, identityToRecipient } from 'age-encryption';
import { bytesEqual, decode, encode, type CborValue } from '../../ledger/encoding.js';
import { BACKUP_FORMAT, decryptShareBackup, encryptShareBackup, readShareBackupMeta, type ShareBackupMeta } from '../../kernel/backup.js';
import { SUITE_NAMES, suiteOf, type PublicKeyPackage, type SuiteName } from '../../kernel/suites.js';
import { dealer, reasonOf, signWith } from './harness.js';

const replay = {
  ...(process.env.FC_SEED !== undefined ? { seed: Number(process.env.FC_SEED) } : {}),
  ...(process.env.FC_PATH !== undefined ? { path: process.env.FC_PATH } : {}),
};

function metaOf(scheme: SuiteName, pub: PublicKeyPackage, identifier: string, keyId = 'k-treasury', epoch = 3): ShareBackupMeta {
  return { keyId, epoch, identifier, verifyingShare: pub.verifyingShares[identifier]!, groupKey: pub.commitments[0]!, scheme };
}

function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(hay).indexOf(Buffer.from(needle)) !== -1;
}

const custodians = Promise.all([0, 1, 2].map(async () => {
  const identity = await generateX25519Identity();
  return { identity, recipient: await identityToRecipient(identity) };
}));

for (const scheme of SUITE_NAMES) {
  t.test(`${scheme}: every share of a 2-of-3 key round-trips through a backup to two custodians and still signs`, async (t) => {
    const suite = suiteOf(scheme);
    const [c1, c2, outsider] = await custodians;
    const { pub, shares } = dealer(suite, 2, 3);
    const restored: { me: string; share: Uint8Array }[] = [];
    for (const [id, share] of Object.entries(shares)) {
      const meta = metaOf(scheme, pub, id);
      const file = await encryptShareBackup(share, meta, [c1!.recipient, c2!.recipient]);
      t.notOk(contains(file, share), `${id}: the share's bytes do not appear in the file`);
      t.same(readShareBackupMeta(file), meta, `${id}: the clear metadata lists the backup`);
      for (const c of [c1!, c2!]) {
        const back = await decryptShareBackup(file, c.identity, meta);
        t.ok(bytesEqual(back, share), `${id}: custodian ${c.recipient.slice(0, 12)} recovers the share`);
      }
      t.equal(await reasonOf(decryptShareBackup(file, outsider!.identity, meta)), 'BACKUP_INVALID', `${id}: another custodian's identity cannot open it`);
      restored.push({ me: id, share: await decryptShareBackup(file, c1!.identity, meta) });
    }
    t.ok(signWith(suite, pub, restored.slice(0, 2)), 'two recovered shares sign under the group key');
    t.ok(signWith(suite, pub, restored.slice(1, 3)), 'and another two');
  });
}

t.test('refusals: another key, epoch, participant or group key; altered metadata; a forged share; bad inputs', async (t) => {
  const scheme: SuiteName = 'secp256k1';
  const suite = suiteOf(scheme);
  const [c1] = await custodians;
  const { pub, shares } = dealer(suite, 2, 3);
  const [id1, id2] = Object.keys(shares) as [string, string];
  const other = dealer(suite, 2, 3);
  const meta = metaOf(scheme, pub, id1);
  const file = await encryptShareBackup(shares[id1]!, meta, [c1!.recipient]);
  const dec = (f: Uint8Array, m: ShareBackupMeta) => reasonOf(decryptShareBackup(f, c1!.identity, m));

  t.equal(await dec(file, { ...meta, keyId: 'k-other' }), 'BACKUP_FOREIGN', 'a backup of another key');
  t.equal(await dec(file, { ...meta, epoch: 4 }), 'BACKUP_FOREIGN', 'a backup of another epoch');
  t.equal(await dec(file, metaOf(scheme, pub, id2)), 'BACKUP_FOREIGN', 'a backup of another participant');
  t.equal(await dec(file, { ...meta, groupKey: other.pub.commitments[0]! }), 'BACKUP_FOREIGN', 'a backup under another group key');

  // The clear metadata edited to pass for epoch 4: the encrypted copy still says epoch 3.
  const f = decode(file, { bytesMax: 1 << 20 }) as Record<string, CborValue>;
  const relabelled = encode({ ...f, meta: { ...(f.meta as Record<string, CborValue>), epoch: 4 } });
  t.equal(await dec(relabelled, { ...meta, epoch: 4 }), 'BACKUP_INVALID', 'clear metadata altered to another epoch');

  // Anyone who knows the recipients can write a backup: a wrong share under the right metadata is
  // refused by share*G, after decryption, and never returned.
  const forge = async (share: Uint8Array): Promise<Uint8Array> => {
    const e = new Encrypter();
    e.addRecipient(c1!.recipient);
    const m = { keyId: meta.keyId, epoch: meta.epoch, identifier: meta.identifier, verifyingShare: meta.verifyingShare, groupKey: meta.groupKey, scheme };
    return encode({ format: BACKUP_FORMAT, meta: m, age: await e.encrypt(encode({ meta: m, share })) });
  };
  t.equal(await dec(await forge(shares[id2]!), meta), 'SHARE_MISMATCH', 'another participant\'s share under this participant\'s metadata');
  t.equal(await dec(await forge(other.shares[id1]!), meta), 'SHARE_MISMATCH', 'a share of another key');
  t.equal(await dec(await forge(new Uint8Array(32)), meta), 'SHARE_MISMATCH', 'the zero scalar');
  t.equal(await dec(await forge(new Uint8Array(31)), meta), 'SHARE_MISMATCH', 'a short share');

  t.equal(await dec(file.subarray(0, file.length - 1), meta), 'BACKUP_INVALID', 'a truncated file');
  t.equal(await dec(new Uint8Array(70_000), meta), 'BACKUP_INVALID', 'an oversized file');

  const enc = (share: Uint8Array, m: ShareBackupMeta, r: string[]) => reasonOf(encryptShareBackup(share, m, r));
  t.equal(await enc(shares[id2]!, meta, [c1!.recipient]), 'SHARE_MISMATCH', 'a kernel never writes a backup whose share does not match its verifying share');
  t.equal(await enc(shares[id1]!, meta, []), 'INVALID_ARGUMENT', 'no recipient');
  t.equal(await enc(shares[id1]!, meta, Array.from({ length: 17 }, () => c1!.recipient)), 'INVALID_ARGUMENT', 'more recipients than the bound');
  t.equal(await enc(shares[id1]!, meta, [c1!.recipient, c1!.recipient]), 'INVALID_ARGUMENT', 'a recipient twice');
  t.equal(await enc(shares[id1]!, meta, ['age1notarecipient']), 'INVALID_ARGUMENT', 'not a recipient');
  t.equal(await enc(shares[id1]!, { ...meta, verifyingShare: new Uint8Array(33) }, [c1!.recipient]), 'INVALID_ARGUMENT', 'a verifying share that is not a point');
});

t.test('property: a backup with any single byte changed is refused, never decrypted to a share', async (t) => {
  const scheme: SuiteName = 'ed25519';
  const [c1, c2] = await custodians;
  const { pub, shares } = dealer(suiteOf(scheme), 2, 3);
  const id = Object.keys(shares)[0]!;
  const meta = metaOf(scheme, pub, id);
  const file = await encryptShareBackup(shares[id]!, meta, [c1!.recipient, c2!.recipient]);
  const seen = new Map<string, number>();
  await fc.assert(fc.asyncProperty(fc.nat({ max: file.length - 1 }), fc.integer({ min: 1, max: 255 }), async (pos, x) => {
    const bad = file.slice();
    bad[pos]! ^= x;
    const r = await reasonOf(decryptShareBackup(bad, c1!.identity, meta));
    seen.set(r, (seen.get(r) ?? 0) + 1);
    return r === 'BACKUP_INVALID' || r === 'BACKUP_FOREIGN';
  }), { numRuns: 200, ...replay });
  t.notOk(seen.has('OK'), `200 single-byte changes refused: ${[...seen].map(([r, n]) => `${r}=${n}`).join(' ')}`);
});
