/**
 * A kernel's key share encrypted with age to custodians' X25519 recipients, and its checked
 * decryption. Pure apart from age's own randomness (the file key and ephemeral keys): no file
 * system, clock or network; the caller decides where the bytes go and which metadata to expect
 * (the ledger's key object for that key and epoch).
 *
 * File (canonical CBOR, ledger/encoding.ts, so one value has one byte string):
 *
 *   { format: "custody-share-backup/v1",
 *     meta:   { keyId, epoch, identifier, verifyingShare, groupKey, scheme },   in clear
 *     age:    <age v1 file, binary, to 1..shareBackup.recipientsMax recipients> }
 *
 *   age plaintext (canonical CBOR): { meta: <the same map>, share: <the signing share scalar> }
 *
 * Safety argument.
 *   - Confidentiality: the share exists only inside the age payload (ChaCha20-Poly1305 under a
 *     random file key wrapped to each recipient by X25519); the clear metadata holds only public
 *     values (the verifying share and group key are published in the key object).
 *   - The metadata is authenticated by the payload: age's payload AEAD and header MAC make the
 *     encrypted copy of `meta` exactly what the encryptor wrote, and decryption requires the
 *     clear copy to be byte-equal to it (canonical encoding: equal values, equal bytes). A clear
 *     copy edited to make a backup of one key, epoch or participant pass for another is refused
 *     BACKUP_INVALID; the clear copy exists so a backup can be listed and matched without a
 *     custodian's identity.
 *   - Not the encryptor's identity: age has no sender authentication, so anyone who knows the
 *     custodians' public recipients can write a well-formed backup with any metadata. What makes
 *     a decrypted share trustworthy is therefore not the file but two checks against the ledger:
 *     the caller passes the metadata the ledger records for (key, epoch, participant) and any
 *     difference is BACKUP_FOREIGN naming the field; and share*G must equal the verifying share
 *     (SHARE_MISMATCH otherwise), so a forged or mismatched share is never returned, and a share
 *     that passes is by construction the participant's real share of that epoch.
 *   - Encryption checks share*G too, so a kernel never writes a backup that could not restore.
 */
import { Decrypter, Encrypter } from 'age-encryption';
import { CustodyError } from '../proto/errors.js';
import { shareBackup as limits } from '../proto/limits.js';
import { bytesEqual, decode, encode, type CborValue } from '../ledger/encoding.js';
import { isSuiteName, suiteOf, type SuiteName } from './suites.js';

export const BACKUP_FORMAT = 'custody-share-backup/v1';

/** What a backup is of: the public facts of one participant's share of one key epoch. */
export interface ShareBackupMeta {
  keyId: string;
  epoch: number;
  /** The participant's FROST identifier (hex, as in the key's public package). */
  identifier: string;
  /** share*G, serialized as the suite does (from the key object's verifying shares). */
  verifyingShare: Uint8Array;
  /** The group public key (commitments[0] of the public package). */
  groupKey: Uint8Array;
  scheme: SuiteName;
}

const META_FIELDS = ['keyId', 'epoch', 'identifier', 'verifyingShare', 'groupKey', 'scheme'] as const;
const utf8Bytes = (s: string): number => new TextEncoder().encode(s).length;

function metaValue(m: ShareBackupMeta): CborValue {
  return { keyId: m.keyId, epoch: m.epoch, identifier: m.identifier, verifyingShare: m.verifyingShare, groupKey: m.groupKey, scheme: m.scheme };
}

/** Validates metadata (types, bounds, points on the suite's group); `fail` picks the refusal. */
function checkMeta(x: unknown, fail: (what: string) => never): ShareBackupMeta {
  if (x === null || typeof x !== 'object' || Array.isArray(x) || x instanceof Uint8Array) return fail('metadata is not a map');
  const m = x as Record<string, unknown>;
  const keys = Object.keys(m).sort();
  if (keys.join(',') !== [...META_FIELDS].sort().join(',')) fail(`metadata fields are ${keys.join(', ')}, expected ${META_FIELDS.join(', ')}`);
  if (typeof m.keyId !== 'string' || m.keyId === '' || utf8Bytes(m.keyId) > limits.keyIdBytesMax) fail(`keyId must be 1 to ${limits.keyIdBytesMax} bytes of text`);
  if (typeof m.epoch !== 'number' || !Number.isSafeInteger(m.epoch) || m.epoch < 0) fail('epoch must be a non-negative integer');
  if (typeof m.identifier !== 'string' || !/^[0-9a-f]+$/.test(m.identifier) || m.identifier.length > limits.identifierBytesMax) fail(`identifier must be 1 to ${limits.identifierBytesMax} hex digits`);
  if (!isSuiteName(m.scheme)) return fail(`scheme ${JSON.stringify(m.scheme)} is not a ciphersuite`);
  const suite = suiteOf(m.scheme);
  for (const f of ['verifyingShare', 'groupKey'] as const) {
    const v = m[f];
    if (!(v instanceof Uint8Array)) return fail(`${f} must be bytes`);
    try {
      suite.parsePoint(v);
    } catch (e) {
      fail(`${f} is not a point of ${m.scheme}: ${(e as Error).message}`);
    }
  }
  return m as unknown as ShareBackupMeta;
}

/** Refuses (SHARE_MISMATCH) unless `share` is a nonzero scalar whose multiple of the base point is the verifying share. */
function checkShare(meta: ShareBackupMeta, share: Uint8Array): void {
  const suite = suiteOf(meta.scheme);
  const mismatch = (why: string): never => {
    throw new CustodyError('SHARE_MISMATCH', `share of ${meta.identifier} for key ${meta.keyId} epoch ${meta.epoch}: ${why}`);
  };
  if (share.length !== suite.Fn.BYTES) mismatch(`${share.length} bytes, a ${meta.scheme} scalar has ${suite.Fn.BYTES}`);
  let s: bigint;
  try {
    s = suite.Fn.fromBytes(share);
  } catch {
    return mismatch('not a scalar of the group');
  }
  if (s === 0n || !suite.Fn.isValid(s)) mismatch('not a nonzero scalar of the group');
  if (!suite.base.multiply(s).equals(suite.parsePoint(meta.verifyingShare))) mismatch('share*G is not the verifying share');
}

/**
 * Encrypts `share` (the participant's signing share, the suite's scalar bytes) to `recipients`
 * (custodians' `age1...` X25519 recipients) with `meta` authenticated beside it. Refuses a share
 * that does not match its verifying share (SHARE_MISMATCH) and recipient lists outside the bounds.
 */
export async function encryptShareBackup(share: Uint8Array, meta: ShareBackupMeta, recipients: readonly string[]): Promise<Uint8Array> {
  const m = checkMeta(metaValue(meta), (what) => { throw new CustodyError('INVALID_ARGUMENT', `backup metadata: ${what}`); });
  if (recipients.length === 0 || recipients.length > limits.recipientsMax) throw new CustodyError('INVALID_ARGUMENT', `a backup needs 1 to ${limits.recipientsMax} recipients, got ${recipients.length}`);
  if (new Set(recipients).size !== recipients.length) throw new CustodyError('INVALID_ARGUMENT', 'a recipient is listed twice');
  checkShare(m, share);
  const e = new Encrypter();
  for (const r of recipients) {
    if (!/^age1[02-9ac-hj-np-z]{58}$/.test(r)) throw new CustodyError('INVALID_ARGUMENT', `${JSON.stringify(r)} is not an age X25519 recipient (age1...)`);
    try {
      e.addRecipient(r);
    } catch (err) {
      throw new CustodyError('INVALID_ARGUMENT', `recipient ${r}: ${(err as Error).message}`);
    }
  }
  const plain = encode({ meta: metaValue(m), share });
  try {
    const age = await e.encrypt(plain);
    const file = encode({ format: BACKUP_FORMAT, meta: metaValue(m), age });
    if (file.length > limits.fileBytesMax) throw new CustodyError('LIMIT_EXCEEDED', `backup of ${file.length} bytes exceeds ${limits.fileBytesMax}`);
    return file;
  } finally {
    plain.fill(0);
  }
}

/** The clear metadata of a backup file (for listing and matching; not yet authenticated). */
export function readShareBackupMeta(bytes: Uint8Array): ShareBackupMeta {
  return parseFile(bytes).meta;
}

function parseFile(bytes: Uint8Array): { meta: ShareBackupMeta; age: Uint8Array } {
  const invalid = (what: string): never => { throw new CustodyError('BACKUP_INVALID', `share backup: ${what}`); };
  if (bytes.length > limits.fileBytesMax) invalid(`${bytes.length} bytes, more than ${limits.fileBytesMax}`);
  let v: CborValue;
  try {
    v = decode(bytes, { bytesMax: limits.fileBytesMax });
  } catch (e) {
    return invalid((e as Error).message);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) return invalid('not a map');
  const f = v as Record<string, CborValue>;
  if (Object.keys(f).sort().join(',') !== 'age,format,meta' || f.format !== BACKUP_FORMAT) invalid(`not a ${BACKUP_FORMAT} file`);
  if (!(f.age instanceof Uint8Array)) return invalid('age payload is not bytes');
  return { meta: checkMeta(f.meta, invalid), age: f.age };
}

/**
 * Decrypts a backup with a custodian's `identity` (AGE-SECRET-KEY-1...) and returns the share,
 * only if: the file is well-formed; its metadata is `expected` (BACKUP_FOREIGN naming the first
 * field that differs); the identity opens it and the payload is intact (BACKUP_INVALID); the
 * encrypted metadata equals the clear one (BACKUP_INVALID); share*G is the verifying share
 * (SHARE_MISMATCH). The caller must erase the returned bytes when done with them.
 */
export async function decryptShareBackup(bytes: Uint8Array, identity: string, expected: ShareBackupMeta): Promise<Uint8Array> {
  const { meta, age } = parseFile(bytes);
  for (const f of META_FIELDS) {
    const a = meta[f];
    const b = expected[f];
    const same = a instanceof Uint8Array && b instanceof Uint8Array ? bytesEqual(a, b) : a === b;
    if (!same) throw new CustodyError('BACKUP_FOREIGN', `share backup of ${meta.keyId} epoch ${meta.epoch} participant ${meta.identifier}: its ${f} is not the expected one`);
  }
  const d = new Decrypter();
  try {
    d.addIdentity(identity);
  } catch (e) {
    throw new CustodyError('INVALID_ARGUMENT', `not an age identity: ${(e as Error).message}`);
  }
  let plain: Uint8Array;
  try {
    plain = await d.decrypt(age);
  } catch (e) {
    throw new CustodyError('BACKUP_INVALID', `share backup of ${meta.keyId} epoch ${meta.epoch}: the identity does not open it, or it was altered (${(e as Error).message})`);
  }
  try {
    let inner: CborValue;
    try {
      inner = decode(plain, { bytesMax: limits.fileBytesMax });
    } catch (e) {
      throw new CustodyError('BACKUP_INVALID', `share backup payload: ${(e as Error).message}`);
    }
    const p = inner as Record<string, CborValue>;
    if (p === null || typeof p !== 'object' || Object.keys(p).sort().join(',') !== 'meta,share' || !(p.share instanceof Uint8Array)) {
      throw new CustodyError('BACKUP_INVALID', 'share backup payload is not { meta, share }');
    }
    if (!bytesEqual(encode(p.meta as CborValue), encode(metaValue(meta)))) {
      throw new CustodyError('BACKUP_INVALID', `share backup of ${meta.keyId} epoch ${meta.epoch}: the clear metadata differs from the encrypted copy (altered)`);
    }
    const share = p.share.slice();
    p.share.fill(0);
    try {
      checkShare(meta, share);
    } catch (e) {
      share.fill(0);
      throw e;
    }
    return share;
  } finally {
    plain.fill(0);
  }
}
