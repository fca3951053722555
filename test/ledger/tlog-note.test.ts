/**
 * ledger/tlog/note.ts against C2SP signed-note: the golang.org/x/mod sumdb/note vectors
 * (test/ledger/tlog-vectors.json), the spec's trust rules, timestamped cosignatures, and a
 * fast-check round trip.
 *
 * A failure prints fast-check's seed and path; replay it exactly with
 *   FC_SEED=<seed> FC_PATH=<path> npx tap dist/test/ledger/tlog-note.test.js
 */
import t from 'tap';
import fc from 'fast-check';
import { VECTORS, fcRun, refused } from './tlog-fixtures.js';
import {
  addSignatures, cosignatureMessage, cosignatureSigner, decodeBase64Strict, ed25519Signer, makeVerifier, noteKeyId, openNote,
  parseNote, parseVkey, signNote, vkeyOf, SIG_COSIGNATURE_V1, SIG_ED25519,
} from '../../ledger/tlog/index.js';
import { seedOf } from '../../ledger/index.js';

const RUN = fcRun(100);
const RUNS = RUN.numRuns;

const V = VECTORS.note;
const { text, peter, enoch } = V;
const peterV = parseVkey(peter.vkey);
const enochV = parseVkey(enoch.vkey);

/** The Go PRIVATE+KEY+<name>+<id>+base64(0x01 || seed) encoding, as the vectors give it. */
function seedFromSkey(skey: string): Uint8Array {
  const parts = skey.split('+');
  const raw = decodeBase64Strict(parts.slice(4).join('+'))!;
  return raw.subarray(1);
}

t.test('vectors: verifier keys parse, re-encode identically, and carry the published key IDs', async (t) => {
  for (const k of [peter, enoch]) {
    const v = parseVkey(k.vkey);
    t.equal(v.name, k.name);
    t.equal(v.keyId.toString(16).padStart(8, '0'), k.keyId, `${k.name} key ID`);
    t.equal(v.type, SIG_ED25519);
    t.equal(noteKeyId(v.name, SIG_ED25519, v.publicKey), v.keyId, 'key ID = SHA-256(name || 0x0A || 0x01 || key)[:4]');
    t.equal(vkeyOf(v), k.vkey, 'vkey round trip');
  }
  for (const bad of V.badVkeys) t.throws(() => parseVkey(bad), refused('NOTE_MALFORMED'), bad);
});

t.test('vectors: every proper substring and every one-byte change of a vkey is refused', async (t) => {
  const b = Buffer.from(peter.vkey);
  let accepted = 0;
  let tried = 0;
  const tryKey = (k: string): void => {
    tried++;
    try {
      parseVkey(k);
      accepted++;
    } catch { /* refused, as it must be */ }
  };
  for (let i = 0; i <= b.length; i++) for (let j = i + 1; j <= b.length; j++) if (i !== 0 || j !== b.length) tryKey(b.subarray(i, j).toString());
  for (let i = 0; i < b.length; i++) {
    const c = Buffer.from(b);
    c[i]! += 1;
    tryKey(c.toString());
  }
  t.equal(accepted, 0, `${tried} mangled vkeys refused`);
});

t.test('vectors: signing the text with the published key reproduces the published note byte for byte', async (t) => {
  const signer = ed25519Signer(peter.name, seedFromSkey(peter.skey!));
  t.equal(vkeyOf(signer.verifier), peter.vkey, 'the private key matches the vkey');
  t.equal(signNote(text, [signer]), `${text}\n${peter.signatureLine}`);
  const replaced = addSignatures(`${text}\n${peter.signatureLine}`, [signer]);
  t.equal(replaced, `${text}\n${peter.signatureLine}`, 'signing again replaces the line');
});

t.test('vectors: open accepts known keys, ignores unknown ones, refuses a note no known key signed', async (t) => {
  const both = `${text}\n${peter.signatureLine}${enoch.signatureLine}`;
  const one = openNote(both, [peterV]);
  t.equal(one.text, text);
  t.same(one.verified.map((s) => s.name), ['PeterNeumann']);
  t.same(one.unverified.map((s) => s.name), ['EnochRoot'], 'the unknown signature is kept aside, not trusted');
  t.same(openNote(both, [peterV, enochV]).verified.map((s) => s.name), ['PeterNeumann', 'EnochRoot']);
  t.throws(() => openNote(both, []), refused('NOTE_SIGNATURE_INVALID'), 'no known key');
  t.throws(() => openNote(`${text}\n${enoch.signatureLine}`, [enochV, peterV, enochV]), refused('INVALID_ARGUMENT'), 'ambiguous verifiers');
  t.equal(openNote(`${text}\n${peter.signatureLine}`, [enochV, peterV, enochV]).verified.length, 1, 'an unused ambiguity is harmless');
});

t.test('vectors: a bad signature by a known key refuses the note; duplicate lines count once', async (t) => {
  const ps = peter.signatureLine;
  const es = enoch.signatureLine;
  t.throws(() => openNote(`${text}\n${ps.slice(0, 60)}ABCD${ps.slice(60)}`, [peterV]), refused('NOTE_SIGNATURE_INVALID'));
  const dup = openNote(`${text}\n${ps}${ps}${es}${es}${es.slice(0, 60)}ABCD${es.slice(60)}`, [peterV]);
  t.equal(dup.verified.length, 1, 'two identical known lines count once');
  t.equal(dup.unverified.length, 2, 'two distinct unknown lines, the identical one once');
  t.throws(() => openNote(`${text}\n${ps.repeat(101)}`, [peterV]), refused('NOTE_MALFORMED'), 'more than 100 signatures');
});

t.test('vectors: malformed notes are refused', async (t) => {
  const ps = peter.signatureLine;
  const bad: [string, string][] = [
    ['no signatures', text],
    ['blank line, no signatures', `${text}\n`],
    ['truncated last line (no newline)', `${text}\n${ps.slice(0, -1)}`],
    ['control character', `\x01${text}\n${ps}`],
    ['not UTF-8', `\xff${text}\n${ps}`],
    ['space in key name', `${text}\n\u2014 Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`],
    ['a line after the signatures', `${text}\n${ps}Unexpected line.\n`],
    ['truncated signature', `${text}\n${ps.slice(0, 40)}\n`],
    ['hyphen for em dash', `${text}\n-${ps.slice(1)}`],
    ['plus in key name', `${text}\n${ps.replace('PeterNeumann', 'Peter+Neumann')}`],
    ['non-canonical base64', `${text}\n${ps.replace('AM=', 'AN=')}`],
  ];
  for (const [what, note] of bad) {
    const bytes = what === 'not UTF-8' ? Buffer.concat([Buffer.from([0xff]), Buffer.from(note.slice(1))]) : note;
    t.throws(() => openNote(bytes, [peterV]), refused('NOTE_MALFORMED'), what);
  }
  t.throws(() => signNote('abc', [ed25519Signer('n', seedOf('n'))]), refused('NOTE_MALFORMED'), 'text without a final newline');
});

t.test('a modified body, an impostor key under a known name, and a wrong-name signature are refused', async (t) => {
  const ps = peter.signatureLine;
  t.throws(() => openNote(`${text.replace('answer', 'Answer')}\n${ps}`, [peterV]), refused('NOTE_SIGNATURE_INVALID'), 'modified body');
  const impostor = ed25519Signer(peter.name, seedOf('impostor'));
  const forged = signNote(text, [impostor]);
  t.throws(() => openNote(forged, [peterV]), refused('NOTE_SIGNATURE_INVALID'), 'same name, other key: ignored, so nothing known signed');
  t.equal(openNote(`${forged}${ps}`, [peterV]).unverified.length, 1, 'and beside a real signature it stays unverified');
  const renamed = ps.replace('PeterNeumann', 'PeterNeumann2');
  t.throws(() => openNote(`${text}\n${renamed}`, [peterV]), refused('NOTE_SIGNATURE_INVALID'), 'a signature under another name is not that key\'s');
});

t.test('timestamped cosignatures (type 0x04): the message format, round trip, and tampering', async (t) => {
  const body = 'example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n';
  t.equal(Buffer.from(cosignatureMessage(1679315147, body)).toString(), `cosignature/v1\ntime 1679315147\n${body}`);
  const w = cosignatureSigner('witness.example.com/w1', seedOf('w1'), 1679315147);
  t.equal(w.verifier.type, SIG_COSIGNATURE_V1);
  const v = parseVkey(vkeyOf(w.verifier));
  t.equal(v.keyId, noteKeyId('witness.example.com/w1', 0x04, v.publicKey), 'cosigner key ID uses type 0x04');
  const log = ed25519Signer('example.com/behind-the-sofa', seedOf('log'));
  const note = addSignatures(signNote(body, [log]), [w]);
  const opened = openNote(note, [log.verifier, v]);
  t.same(opened.verified.map((s) => [s.name, s.timestamp]), [['example.com/behind-the-sofa', undefined], ['witness.example.com/w1', 1679315147]]);
  // Change the timestamp inside the signature: the signed message changes with it.
  const line = parseNote(note).signatures[1]!;
  const raw = decodeBase64Strict(line.base64)!;
  raw[11]! ^= 1;
  const tampered = note.replace(line.base64, Buffer.from(raw).toString('base64'));
  t.throws(() => openNote(tampered, [log.verifier, v]), refused('NOTE_SIGNATURE_INVALID'));
  t.throws(() => cosignatureSigner('w', seedOf('w'), -1), refused('INVALID_ARGUMENT'));
  t.throws(() => makeVerifier('bad name', SIG_ED25519, v.publicKey), refused('NOTE_MALFORMED'));
  t.throws(() => makeVerifier('small-order', SIG_ED25519, new Uint8Array(32)), refused('NOTE_MALFORMED'), 'a small-order key is no key');
});

t.test('property: any text signs and opens to itself; any changed byte of it is refused', async (t) => {
  const line = fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => s.replace(/[\u0000-\u001f\u007f]/g, ''));
  let checked = 0;
  fc.assert(fc.property(fc.array(line, { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 4 }), fc.nat(), (lines, count, pick) => {
    const body = `${lines.join('\n')}\n`;
    const signers = Array.from({ length: count }, (_, i) => ed25519Signer(`node-${i}.example`, seedOf(`prop-node-${i}`)));
    const note = signNote(body, signers);
    const opened = openNote(note, signers.map((s) => s.verifier));
    if (opened.text !== body || opened.verified.length !== count) return false;
    // Change one byte of the text (kept printable ASCII so the note stays well-formed).
    const bytes = Buffer.from(body);
    const i = pick % bytes.length;
    if (bytes[i] === 0x0a) return (checked++, true);
    bytes[i] = bytes[i] === 0x41 ? 0x42 : 0x41;
    try {
      openNote(Buffer.concat([bytes, Buffer.from(note.slice(body.length))]), signers.map((s) => s.verifier));
      return false;
    } catch {
      checked++;
      return true;
    }
  }), RUN);
  t.equal(checked, RUNS, `${checked} random notes round-tripped and refused when altered`);
});
