/**
 * Guardians (node/guardian/, `custody guardian`): a custodian's age identity split 3-of-5 and
 * rebuilt by the CLI as a process, every attacker case refused with its reason code, naming the
 * file, with nothing written; and, on the pure functions, properties over random splits (any K of
 * N rebuild the identity, fewer are refused, an altered share never yields another identity).
 * A failing property prints its seed; replay with FC_SEED=<seed> (and FC_PATH=<path>).
 */
import t from 'tap';
import fc from 'fast-check';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { CustodyError } from '../../proto/errors.js';
import { checkShareSet, combineShares, parseShare, renderShare, splitIdentity, type GuardianShare, type NamedShare } from '../../node/guardian/shares.js';
import { reasonOf } from '../kernel/harness.js';
import { runCli } from './harness.js';

const replay = {
  ...(process.env.FC_SEED !== undefined ? { seed: Number(process.env.FC_SEED) } : {}),
  ...(process.env.FC_PATH !== undefined ? { path: process.env.FC_PATH } : {}),
};

/** `REASON: detail` of the CustodyError `f` throws, or 'OK'. */
function thrown(f: () => unknown): string {
  try {
    f();
    return 'OK';
  } catch (e) {
    if (e instanceof CustodyError) return `${e.reason}: ${e.detail}`;
    throw e;
  }
}

const named = (shares: GuardianShare[]): NamedShare[] => shares.map((share) => ({ name: `share-${share.index}`, share }));
const mode = (f: string): number => statSync(f).mode & 0o777;
const secretLine = (f: string): string => readFileSync(f, 'utf8').split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-1')) ?? '';

t.test('properties: any K of N rebuild the identity, fewer are refused, an altered share never yields another identity', async (t) => {
  const id = await generateX25519Identity();
  const recipient = await identityToRecipient(id);
  // N, K and an order of the N shares.
  const split = fc.integer({ min: 2, max: 9 }).chain((n) => {
    const all = Array.from({ length: n }, (_, i) => i);
    return fc.tuple(fc.constant(n), fc.integer({ min: 2, max: n }), fc.shuffledSubarray(all, { minLength: n, maxLength: n }));
  });
  let combined = 0;
  let refusedFew = 0;
  let refusedAltered = 0;
  let named1 = 0;
  await fc.assert(fc.asyncProperty(split, fc.integer({ min: 0, max: 73 }), fc.integer({ min: 1, max: 255 }), async ([n, k, perm], bytePos, flip) => {
    const shares = await splitIdentity(id, { shares: n, threshold: k, label: 'prop' });
    // Subsets of every size from 1 to n, in a random order.
    const order = perm.map((i) => shares[i]!);
    for (let size = 1; size <= n; size++) {
      const subset = named(order.slice(0, size));
      if (size < k) {
        if ((await reasonOf(combineShares(subset))) !== 'GUARDIAN_TOO_FEW_SHARES') return false;
        refusedFew++;
        continue;
      }
      const r = await combineShares(subset);
      if (r.identity !== id || r.recipient !== recipient) return false;
      combined++;
    }
    // One y-byte of one share altered (as if its checksum were recomputed): refused, or (never
    // expected) the real identity, but never another one.
    const altered = order.slice(0, k).map((s) => ({ ...s, data: s.data.slice() }));
    altered[0]!.data[bytePos % (altered[0]!.data.length - 1)]! ^= flip;
    const reason = await reasonOf(combineShares(named(altered)));
    if (reason !== 'GUARDIAN_COMBINE_MISMATCH') return false;
    refusedAltered++;
    // With one more (intact) file than the threshold, the altered file is named.
    if (n > k) {
      const more = named([...altered, order[k]!]);
      const detail = await combineShares(more).then(() => 'OK', (e: CustodyError) => e.detail);
      if (!detail.startsWith(`share-${altered[0]!.index}: its share disagrees with `)) return false;
      named1++;
    }
    return true;
  }), { numRuns: 40, ...replay });
  t.ok(combined > 40 && refusedFew > 0 && refusedAltered === 40 && named1 > 0, `${combined} combines of K..N shares gave the identity, ${refusedFew} subsets below K refused, ${refusedAltered} altered sets refused, ${named1} times the altered file named among K+1`);
});

t.test('properties: a rendered file parses back to itself; any single changed character is refused as corrupt', async (t) => {
  const shares = await splitIdentity(await generateX25519Identity(), { shares: 3, threshold: 2, label: 'render' });
  const text = renderShare(shares[1]!);
  t.same(parseShare('f', text), shares[1], 'round trip');
  t.same(parseShare('f', text.replace(/\n/g, '\r\n')), shares[1], 'CR LF line endings read the same');
  let refused = 0;
  fc.assert(fc.property(fc.nat({ max: text.length - 1 }), fc.integer({ min: 1, max: 127 }), (pos, x) => {
    const c = String.fromCharCode(text.charCodeAt(pos) ^ x);
    const bad = text.slice(0, pos) + c + text.slice(pos + 1);
    try {
      parseShare('f', bad);
      return false;
    } catch (e) {
      if (!(e instanceof CustodyError) || e.reason !== 'GUARDIAN_SHARE_CORRUPT' || !e.detail.startsWith('f: ')) return false;
      refused++;
      return true;
    }
  }), { numRuns: 300, ...replay });
  t.equal(refused, 300, 'all 300 single-character changes refused, naming the file');
});

t.test('share sets: foreign, duplicate and too few are named', async (t) => {
  const id = await generateX25519Identity();
  const a = named(await splitIdentity(id, { shares: 5, threshold: 3, label: 'x' }));
  const b = named(await splitIdentity(id, { shares: 5, threshold: 3, label: 'x' }));
  t.match(thrown(() => checkShareSet([a[0]!, a[1]!, { ...b[2]!, name: 'other' }], true)), /^GUARDIAN_SHARE_FOREIGN: other: /, 'a share of another split of the same identity');
  t.match(thrown(() => checkShareSet([{ ...b[2]!, name: 'other' }, a[0]!, a[1]!], true)), /^GUARDIAN_SHARE_FOREIGN: other: /, 'named whatever its position');
  t.match(thrown(() => checkShareSet([a[0]!, a[1]!, { ...a[0]!, name: 'copy' }], true)), /^GUARDIAN_DUPLICATE_SHARE: copy is the same guardian share as share-1 /, 'a copy under another name');
  t.match(thrown(() => checkShareSet([a[0]!, a[1]!], true)), /^GUARDIAN_TOO_FEW_SHARES: /, 'two of three');
  t.equal(checkShareSet([a[0]!], false).threshold, 3, 'a single file checks on its own');
  t.equal(await reasonOf(splitIdentity(id, { shares: 256, threshold: 3, label: 'x' })), 'INVALID_ARGUMENT', 'N above 255');
  t.equal(await reasonOf(splitIdentity(id, { shares: 5, threshold: 1, label: 'x' })), 'INVALID_ARGUMENT', 'K of 1');
  t.equal(await reasonOf(splitIdentity(id, { shares: 3, threshold: 4, label: 'x' })), 'INVALID_ARGUMENT', 'K above N');
  t.equal(await reasonOf(splitIdentity(id, { shares: 3, threshold: 2, label: '../x' })), 'INVALID_ARGUMENT', 'a label that is not a plain name');
  t.equal(await reasonOf(splitIdentity('AGE-SECRET-KEY-1NOTAKEY', { shares: 3, threshold: 2, label: 'x' })), 'INVALID_ARGUMENT', 'not an identity');
});

t.test('CLI: identity, split 3-of-5, combine with 3 and with 5, and every refusal names its file and writes nothing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-guardian-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cli = (...args: string[]) => runCli(['guardian', ...args], dir);
  const f = (name: string): string => join(dir, name);

  const made = await cli('identity', '--out', 'id.txt');
  t.equal(made.code, 0, made.out);
  const recipient = /^(age1[0-9a-z]{58})$/m.exec(made.out)?.[1] ?? '';
  t.match(recipient, /^age1/, 'prints the recipient');
  t.equal(mode(f('id.txt')), 0o600, 'identity file is 0600');
  t.equal(await identityToRecipient(secretLine(f('id.txt'))), recipient, 'the printed recipient is the identity\'s');
  const again = await cli('identity', '--out', 'id.txt');
  t.equal(again.code, 3, 'identity refuses to overwrite');
  t.match(again.out, /OUTPUT_EXISTS: id\.txt/);

  const sp = await cli('split', '--identity-file', 'id.txt', '--shares', '5', '--threshold', '3', '--out', 'g', '--label', 'treasury-a');
  t.equal(sp.code, 0, sp.out);
  const share = (i: number): string => join('g', `treasury-a-guardian-${i}-of-5.txt`);
  for (let i = 1; i <= 5; i++) t.equal(mode(f(share(i))), 0o600, `guardian file ${i} is 0600`);
  t.match(readFileSync(f(share(2)), 'utf8'), new RegExp(`label: treasury-a\nshare: 2 of 5\nthreshold: 3\nset: [0-9a-f]{32}\nrecipient: ${recipient}\n`), 'labelled');
  const resplit = await cli('split', '--identity-file', 'id.txt', '--shares', '5', '--threshold', '3', '--out', 'g', '--label', 'treasury-a');
  t.equal(resplit.code, 3, 'a second split into the same folder is refused');
  t.match(resplit.out, /OUTPUT_EXISTS/);

  const ok = await cli('verify', ...[1, 2, 3, 4, 5].map(share));
  t.equal(ok.code, 0, ok.out);
  t.match(ok.out, /5 distinct shares of the 3 needed, enough to rebuild/);

  for (const [out, ids] of [['from3.txt', [1, 3, 5]], ['from5.txt', [5, 4, 3, 2, 1]]] as const) {
    const r = await cli('combine', '--out', out, ...ids.map(share));
    t.equal(r.code, 0, r.out);
    t.equal(secretLine(f(out)), secretLine(f('id.txt')), `combine of ${ids.join(',')} rebuilds the identity`);
    t.equal(mode(f(out)), 0o600, `${out} is 0600`);
  }

  const refused = async (what: string, reason: string, file: RegExp | null, ...shares: string[]): Promise<void> => {
    const r = await cli('combine', '--out', 'bad.txt', ...shares);
    t.equal(r.code, 3, `${what}: exit 3`);
    t.match(r.out, new RegExp(`${reason}: `), `${what}: ${reason}`);
    if (file !== null) t.match(r.out, file, `${what}: names the file`);
    t.notOk(existsSync(f('bad.txt')), `${what}: nothing written`);
  };

  await refused('two shares', 'GUARDIAN_TOO_FEW_SHARES', /2 guardian files given.*needs 3 of 5/, share(1), share(2));
  await refused('a share given twice', 'GUARDIAN_DUPLICATE_SHARE', /treasury-a-guardian-2-of-5\.txt is the same guardian share/, share(1), share(2), share(2));
  copyFileSync(f(share(3)), f('copy-of-3.txt'));
  await refused('a copy under another name', 'GUARDIAN_DUPLICATE_SHARE', /copy-of-3\.txt is the same guardian share as g\/treasury-a-guardian-3-of-5\.txt/, share(3), share(1), 'copy-of-3.txt');

  // A flipped byte in the share data: the checksum catches it.
  const text4 = readFileSync(f(share(4)), 'utf8');
  const at = text4.indexOf('data: ') + 10;
  writeFileSync(f('flipped.txt'), text4.slice(0, at) + (text4[at] === '0' ? '1' : '0') + text4.slice(at + 1), { mode: 0o600 });
  await refused('a flipped byte', 'GUARDIAN_SHARE_CORRUPT', /flipped\.txt: SHA-256 checksum mismatch/, share(1), share(2), 'flipped.txt');
  const verifyBad = await cli('verify', share(1), 'flipped.txt');
  t.equal(verifyBad.code, 3, 'verify refuses the flipped file too');
  t.match(verifyBad.out, /GUARDIAN_SHARE_CORRUPT: flipped\.txt/);

  // A share of another split of the same identity.
  const sp2 = await cli('split', '--identity-file', 'id.txt', '--shares', '5', '--threshold', '3', '--out', 'g2', '--label', 'treasury-a');
  t.equal(sp2.code, 0, sp2.out);
  await refused('a share of another split', 'GUARDIAN_SHARE_FOREIGN', /g2\/treasury-a-guardian-3-of-5\.txt: not of the split of g\/treasury-a-guardian-1-of-5\.txt, g\/treasury-a-guardian-2-of-5\.txt/, share(1), share(2), join('g2', 'treasury-a-guardian-3-of-5.txt'));

  // The share bytes altered and the checksum recomputed: only the recipient check after combining catches it.
  const s4 = parseShare('4', text4);
  const data = s4.data.slice();
  data[0] = data[0]! ^ 0x01;
  writeFileSync(f('rechecked.txt'), renderShare({ ...s4, data }), { mode: 0o600 });
  const v = await cli('verify', 'rechecked.txt');
  t.equal(v.code, 0, 'the recomputed checksum passes on its own (it is not a signature)');
  await refused('altered share with a recomputed checksum', 'GUARDIAN_COMBINE_MISMATCH', new RegExp(`do not rebuild the identity of ${recipient}`), share(1), share(2), 'rechecked.txt');
  await refused('altered share among more files than the threshold', 'GUARDIAN_COMBINE_MISMATCH', /rechecked\.txt: its share disagrees with g\/treasury-a-guardian-1-of-5\.txt, g\/treasury-a-guardian-2-of-5\.txt, g\/treasury-a-guardian-3-of-5\.txt/, share(1), 'rechecked.txt', share(2), share(3));

  // An identity file open to the group or others is refused on read.
  for (const m of [0o640, 0o604, 0o660]) {
    chmodSync(f('id.txt'), m);
    const r = await cli('split', '--identity-file', 'id.txt', '--shares', '3', '--threshold', '2', '--out', `exposed-${m.toString(8)}`);
    t.equal(r.code, 3, `mode ${m.toString(8)} refused`);
    t.match(r.out, /SECRET_EXPOSED: identity file id\.txt has mode 0\d+.*chmod 600 id\.txt/);
    t.notOk(existsSync(f(`exposed-${m.toString(8)}`)), 'no guardian file written');
  }
});
