/**
 * C2SP signed notes (https://c2sp.org/signed-note) and verifier keys, with the two signature
 * types this product uses: 0x01 Ed25519 over the note text, and 0x04 timestamped Ed25519
 * cosignatures (https://c2sp.org/tlog-cosignature) over "cosignature/v1\ntime <t>\n" || text.
 * Pure: no I/O, no clock, no randomness.
 *
 *   <text ending in \n>
 *   <blank line>
 *   — <key name> base64(key ID (4 bytes, big-endian) || signature)      one or more lines
 *
 *   key ID = SHA-256(key name || 0x0A || type || public key)[:4]
 *   vkey   = <name>+<key ID as 8 lowercase hex>+base64(type || public key)
 *
 * API
 *   parseNote(note)                 structure only (no signature checked): { text, signatures }
 *   openNote(note, verifiers)       verifies; returns { text, verified, unverified }
 *   signNote(text, signers)         a new note;  addSignatures(note, signers) appends lines
 *   parseVkey / vkeyOf / noteKeyId  verifier keys
 *   ed25519Signer / cosignatureSigner(name, seed[, timestamp])   signers for both types
 *
 * Trust rules (signed-note §Signatures), as openNote applies them:
 *   - a signature line whose (name, key ID) matches no verifier is ignored (kept as unverified);
 *   - one that matches a verifier MUST verify, or the whole note is refused
 *     (NOTE_SIGNATURE_INVALID): a known key never signs something we then half-accept;
 *   - a note with no verified signature is refused (NOTE_SIGNATURE_INVALID);
 *   - verifiers sharing a (name, key ID) are ambiguous and refused when a line names them;
 *   - identical signature lines count once; any structural fault is NOTE_MALFORMED.
 * The text of a refused note must not be used: callers get it only from a successful open.
 */
import { createHash } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { CustodyError } from '../../proto/errors.js';
import { tlog as limits } from '../../proto/limits.js';
import { ed25519Sign, ed25519Verify, isAcceptablePublicKey } from '../decision.js';

export const SIG_ED25519 = 0x01;
export const SIG_COSIGNATURE_V1 = 0x04;
export type SignatureType = typeof SIG_ED25519 | typeof SIG_COSIGNATURE_V1;

const EM_DASH_PREFIX = '\u2014 ';
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function malformed(why: string): never {
  throw new CustodyError('NOTE_MALFORMED', why);
}

// ------------------------------------------------------------------------------------------------
// Encodings
// ------------------------------------------------------------------------------------------------

/** Standard base64 (RFC 4648 §4), canonical only: padding present, unused bits zero. */
export function decodeBase64Strict(s: string): Uint8Array | undefined {
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return undefined;
  const bytes = new Uint8Array(Buffer.from(s, 'base64'));
  return Buffer.from(bytes).toString('base64') === s ? bytes : undefined;
}

export function encodeBase64(b: Uint8Array): string {
  return Buffer.from(b).toString('base64');
}

/** Key names: non-empty, bounded, no Unicode space, no '+' (they delimit vkeys). */
export function isKeyName(name: string): boolean {
  return name.length > 0 && utf8.encode(name).length <= limits.keyNameBytesMax && !/[\s+]/u.test(name) && !hasControl(name);
}

function hasControl(s: string): boolean {
  return /[\u0000-\u0009\u000b-\u001f]/.test(s);
}

/** The key ID of (name, type, public key): the first four bytes of the hash, big-endian. */
export function noteKeyId(name: string, type: number, publicKey: Uint8Array): number {
  const h = createHash('sha256').update(utf8.encode(name)).update(new Uint8Array([0x0a, type])).update(publicKey).digest();
  return h.readUInt32BE(0);
}

const hex8 = (id: number): string => id.toString(16).padStart(8, '0');

// ------------------------------------------------------------------------------------------------
// Verifiers and signers
// ------------------------------------------------------------------------------------------------

/** A known key: the name and ID that signature lines must carry, and how to check them. */
export interface NoteVerifier {
  readonly name: string;
  readonly keyId: number;
  readonly type: SignatureType;
  readonly publicKey: Uint8Array;
}

export interface NoteSigner {
  readonly name: string;
  readonly keyId: number;
  readonly type: SignatureType;
  /** The signature bytes (without the key ID) over `text`, per the type. */
  sign(text: string): Uint8Array;
}

export function makeVerifier(name: string, type: SignatureType, publicKey: Uint8Array): NoteVerifier {
  if (!isKeyName(name)) malformed(`key name ${JSON.stringify(name)} is empty, too long, or contains a space or '+'`);
  if (!isAcceptablePublicKey(publicKey)) malformed('the public key is not an acceptable Ed25519 key');
  return { name, keyId: noteKeyId(name, type, publicKey), type, publicKey: publicKey.slice() };
}

/** The vkey encoding of a verifier: name+hex(key ID)+base64(type || public key). */
export function vkeyOf(v: NoteVerifier): string {
  return `${v.name}+${hex8(v.keyId)}+${encodeBase64(new Uint8Array([v.type, ...v.publicKey]))}`;
}

/** Parses a vkey, refusing anything but a well-formed 0x01 or 0x04 Ed25519 key whose ID matches. */
export function parseVkey(vkey: string): NoteVerifier {
  const parts = vkey.split('+');
  // Base64 itself may contain '+': the name is before the first, the ID before the second.
  if (parts.length < 3) malformed('a vkey has three parts separated by +');
  const [name, id] = [parts[0]!, parts[1]!];
  const key = decodeBase64Strict(parts.slice(2).join('+'));
  if (!isKeyName(name)) malformed('vkey name is empty or contains a space or +');
  if (!/^[0-9a-f]{8}$/.test(id)) malformed('vkey key ID is not 8 lowercase hex digits');
  if (key === undefined || key.length !== 33) malformed('vkey key is not base64 of a type byte and a 32-byte key');
  const type = key[0]!;
  if (type !== SIG_ED25519 && type !== SIG_COSIGNATURE_V1) malformed(`vkey signature type 0x${type.toString(16)} is not supported`);
  const v = makeVerifier(name, type, key.subarray(1));
  if (hex8(v.keyId) !== id) malformed('vkey key ID does not match its name and key');
  return v;
}

/** An Ed25519 (type 0x01) signer from a 32-byte seed. */
export function ed25519Signer(name: string, seed: Uint8Array): NoteSigner & { verifier: NoteVerifier } {
  const verifier = makeVerifier(name, SIG_ED25519, ed25519.getPublicKey(seed));
  return { name, keyId: verifier.keyId, type: SIG_ED25519, verifier, sign: (text) => ed25519Sign(utf8.encode(text), seed) };
}

/**
 * A timestamped cosignature (type 0x04) signer from a 32-byte seed. The timestamp (POSIX seconds)
 * is the caller's: this module reads no clock.
 */
export function cosignatureSigner(name: string, seed: Uint8Array, timestamp: number): NoteSigner & { verifier: NoteVerifier } {
  if (!Number.isSafeInteger(timestamp) || timestamp < 0 || timestamp > limits.cosignatureTimestampMax) {
    throw new CustodyError('INVALID_ARGUMENT', `cosignature timestamp ${timestamp} out of range`);
  }
  const verifier = makeVerifier(name, SIG_COSIGNATURE_V1, ed25519.getPublicKey(seed));
  return {
    name, keyId: verifier.keyId, type: SIG_COSIGNATURE_V1, verifier,
    sign: (text) => {
      const out = new Uint8Array(8 + 64);
      new DataView(out.buffer).setBigUint64(0, BigInt(timestamp));
      out.set(ed25519Sign(cosignatureMessage(timestamp, text), seed), 8);
      return out;
    },
  };
}

/** tlog-cosignature §Ed25519 signed message: "cosignature/v1\ntime <t>\n" || note text. */
export function cosignatureMessage(timestamp: number, text: string): Uint8Array {
  return utf8.encode(`cosignature/v1\ntime ${timestamp}\n${text}`);
}

/** Checks one signature (key ID already stripped); returns the cosignature timestamp if any. */
function checkSignature(v: NoteVerifier, text: string, sig: Uint8Array): { ok: boolean; timestamp?: number } {
  if (v.type === SIG_ED25519) return { ok: ed25519Verify(sig, utf8.encode(text), v.publicKey) };
  if (sig.length !== 8 + 64) return { ok: false };
  const ts = new DataView(sig.buffer, sig.byteOffset, 8).getBigUint64(0);
  if (ts > BigInt(limits.cosignatureTimestampMax)) return { ok: false };
  const timestamp = Number(ts);
  return { ok: ed25519Verify(sig.subarray(8), cosignatureMessage(timestamp, text), v.publicKey), timestamp };
}

// ------------------------------------------------------------------------------------------------
// Notes
// ------------------------------------------------------------------------------------------------

export interface SignatureLine {
  readonly name: string;
  readonly keyId: number;
  /** The base64 text as it appears on the line (key ID included). */
  readonly base64: string;
  /** The signature bytes after the key ID. */
  readonly signature: Uint8Array;
}

export interface ParsedNote { readonly text: string; readonly signatures: readonly SignatureLine[] }

function noteString(note: Uint8Array | string): string {
  const bytes = typeof note === 'string' ? utf8.encode(note) : note;
  if (bytes.length > limits.noteBytesMax) malformed(`note of ${bytes.length} bytes exceeds ${limits.noteBytesMax}`);
  let s: string;
  try {
    s = strictUtf8.decode(bytes);
  } catch {
    malformed('note is not valid UTF-8');
  }
  if (typeof note === 'string' && s !== note) malformed('note is not valid UTF-8');
  if (hasControl(s)) malformed('note contains an ASCII control character other than newline');
  return s;
}

/** A text a note may carry: non-empty, ending in a newline, UTF-8 without control characters. */
function checkText(text: string): void {
  if (text.length === 0 || !text.endsWith('\n')) malformed('note text must be non-empty and end with a newline');
  if (hasControl(text)) malformed('note text contains an ASCII control character other than newline');
}

/** Splits a note into its text and signature lines; checks structure, not signatures. */
export function parseNote(note: Uint8Array | string): ParsedNote {
  const s = noteString(note);
  const split = s.lastIndexOf('\n\n');
  if (split < 0) malformed('note has no blank line before its signatures');
  const text = s.slice(0, split + 1);
  const block = s.slice(split + 2);
  if (!block.endsWith('\n')) malformed('note does not end with a newline after its last signature');
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > limits.noteSignaturesMax) malformed(`note has more than ${limits.noteSignaturesMax} signatures`);
  const signatures = lines.map((line): SignatureLine => {
    if (!line.startsWith(EM_DASH_PREFIX)) malformed('a signature line does not start with an em dash and a space');
    const fields = line.slice(EM_DASH_PREFIX.length).split(' ');
    if (fields.length !== 2) malformed('a signature line is not "— <name> <signature>"');
    const [name, base64] = fields as [string, string];
    if (!isKeyName(name)) malformed(`signature key name ${JSON.stringify(name)} is not a valid key name`);
    const raw = decodeBase64Strict(base64);
    if (raw === undefined || raw.length < 5) malformed('a signature is not canonical base64 of a key ID and signature bytes');
    return { name, keyId: new DataView(raw.buffer, raw.byteOffset, 4).getUint32(0), base64, signature: raw.subarray(4) };
  });
  if (signatures.length === 0) malformed('note has no signature lines');
  return { text, signatures };
}

export interface VerifiedSignature {
  readonly name: string;
  readonly keyId: number;
  readonly type: SignatureType;
  /** POSIX seconds, for cosignatures (type 0x04). */
  readonly timestamp?: number;
}

export interface OpenedNote {
  readonly text: string;
  /** One entry per distinct verified signature line, in note order. */
  readonly verified: readonly VerifiedSignature[];
  /** Lines from keys not among the verifiers, ignored per the spec. */
  readonly unverified: readonly SignatureLine[];
}

/** Verifies a note against known keys (see the trust rules at the top of this file). */
export function openNote(note: Uint8Array | string, verifiers: readonly NoteVerifier[]): OpenedNote {
  const parsed = parseNote(note);
  const known = new Map<string, NoteVerifier[]>();
  for (const v of verifiers) {
    const k = `${v.name}+${hex8(v.keyId)}`;
    known.set(k, [...(known.get(k) ?? []), v]);
  }
  const seen = new Set<string>();
  const verified: VerifiedSignature[] = [];
  const unverified: SignatureLine[] = [];
  for (const line of parsed.signatures) {
    const id = `${line.name}+${hex8(line.keyId)}`;
    if (seen.has(`${id} ${line.base64}`)) continue;
    seen.add(`${id} ${line.base64}`);
    const matches = known.get(id);
    if (matches === undefined) {
      unverified.push(line);
      continue;
    }
    if (matches.length > 1) throw new CustodyError('INVALID_ARGUMENT', `ambiguous verifier key ${id}`);
    const v = matches[0]!;
    const r = checkSignature(v, parsed.text, line.signature);
    if (!r.ok) throw new CustodyError('NOTE_SIGNATURE_INVALID', `invalid signature for key ${id}`);
    verified.push({ name: v.name, keyId: v.keyId, type: v.type, ...(r.timestamp !== undefined ? { timestamp: r.timestamp } : {}) });
  }
  if (verified.length === 0) throw new CustodyError('NOTE_SIGNATURE_INVALID', 'no known key signed the note');
  return { text: parsed.text, verified, unverified };
}

function signatureLine(signer: NoteSigner, text: string): string {
  if (!isKeyName(signer.name)) malformed(`signer name ${JSON.stringify(signer.name)} is not a valid key name`);
  const sig = signer.sign(text);
  const raw = new Uint8Array(4 + sig.length);
  new DataView(raw.buffer).setUint32(0, signer.keyId);
  raw.set(sig, 4);
  return `${EM_DASH_PREFIX}${signer.name} ${encodeBase64(raw)}\n`;
}

/** A signed note over `text` (which must end with a newline) with one line per signer. */
export function signNote(text: string, signers: readonly NoteSigner[]): string {
  checkText(text);
  if (signers.length === 0) throw new CustodyError('INVALID_ARGUMENT', 'a note needs at least one signer');
  const note = `${text}\n${signers.map((s) => signatureLine(s, text)).join('')}`;
  parseNote(note);
  return note;
}

/**
 * Appends signatures to a note (cosigning). Existing lines are kept as they are; a signer whose
 * (name, key ID) already signed replaces its old line.
 */
export function addSignatures(note: Uint8Array | string, signers: readonly NoteSigner[]): string {
  const parsed = parseNote(note);
  const fresh = new Set(signers.map((s) => `${s.name}+${hex8(s.keyId)}`));
  const kept = parsed.signatures.filter((l) => !fresh.has(`${l.name}+${hex8(l.keyId)}`)).map((l) => `${EM_DASH_PREFIX}${l.name} ${l.base64}\n`);
  const out = `${parsed.text}\n${kept.join('')}${signers.map((s) => signatureLine(s, parsed.text)).join('')}`;
  parseNote(out);
  return out;
}
