/**
 * The profile contract: where secrets are sealed and where the anti-rollback counter lives.
 *
 *   software  AES-256-GCM (node:crypto) under a 32-byte key read from a key file or derived from a
 *             passphrase with scrypt (RFC 7914); the counter is the store's own, cross-checked
 *             against the ledger's record of consumed commitments.
 *   hsm       PKCS#11 (kernel/hsm.ts): AES-256-GCM inside the token under a wrapping key generated
 *             there as non-extractable and sensitive; the counter is a token object, outside the
 *             kernel store, so restoring an old store cannot rewind it.
 *
 * Every sealed blob is bound to its purpose by the AAD (e.g. "share/<key>/<epoch>"), so a blob
 * moved to another slot of the store fails to open rather than being used as something else.
 */
import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CustodyError } from '../proto/errors.js';
import { kernel as limits } from '../proto/limits.js';
import type { KernelStore } from './store.js';

/** A per-key monotonic counter held outside the kernel store. */
export interface ExternalCounter {
  get(keyId: string): number;
  /** Raises the counter to `value` (never lowers it); durable when it returns. */
  raise(keyId: string, value: number): void;
}

export interface Vault {
  readonly profile: 'software' | 'hsm';
  seal(plain: Uint8Array, aad: string): Uint8Array;
  open(sealed: Uint8Array, aad: string): Uint8Array;
  /** The hsm profile's token counter; null in the software profile. */
  readonly counter: ExternalCounter | null;
  close(): void;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;

/** AES-256-GCM with a fresh 96-bit IV per blob (NIST SP 800-38D §8.2.2, random IV construction). */
export class SoftwareVault implements Vault {
  readonly profile = 'software' as const;
  readonly counter = null;
  private constructor(private key: Buffer) {}

  static fromKey(key: Uint8Array): SoftwareVault {
    if (key.length !== 32) throw new CustodyError('CONFIG_INVALID', 'the sealing key must be 32 bytes');
    return new SoftwareVault(Buffer.from(key));
  }

  /** Key file: 32 raw bytes, or 64 hex digits (whitespace ignored). */
  static fromKeyFile(path: string): SoftwareVault {
    const raw = readFileSync(path);
    const text = raw.toString('utf8').trim();
    if (raw.length === 32) return SoftwareVault.fromKey(raw);
    if (/^[0-9a-fA-F]{64}$/.test(text)) return SoftwareVault.fromKey(Buffer.from(text, 'hex'));
    throw new CustodyError('CONFIG_INVALID', `key file ${path} must hold 32 raw bytes or 64 hex digits`);
  }

  /**
   * scrypt(passphrase, salt) (RFC 7914) with N = 2^limits.scryptLogN, r = 8, p = 1 for a new store;
   * the salt is random per store and kept in it, and the parameters beside it
   * (meta/scrypt-params, {"logN","r","p"}), so a store keeps opening under the parameters it was
   * made with. A store with a salt but no parameters was made when the cost was fixed at 2^15 and
   * opens with that. Parameters read back are bounded (scryptLogNMin..Max, r = 8, p = 1): a store
   * edited to a lower cost derives another key, which fails the vault check (checkVault) instead
   * of opening anything.
   */
  static async fromPassphrase(passphrase: string, store: KernelStore): Promise<SoftwareVault> {
    if (passphrase.length < 12) throw new CustodyError('CONFIG_INVALID', 'the passphrase must be at least 12 characters');
    const params = await scryptParams(store);
    const N = 2 ** params.logN;
    // maxmem: scrypt needs 128 * N * r bytes (RFC 7914 §2), plus slack.
    const key = scryptSync(passphrase.normalize('NFKC'), params.salt, 32, { N, r: params.r, p: params.p, maxmem: 128 * N * params.r + 16 * 1024 * 1024 });
    return new SoftwareVault(key);
  }

  seal(plain: Uint8Array, aad: string): Uint8Array {
    const iv = randomBytes(IV_BYTES);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(Buffer.from(aad, 'utf8'));
    const body = Buffer.concat([c.update(plain), c.final()]);
    return Buffer.concat([iv, body, c.getAuthTag()]);
  }

  open(sealed: Uint8Array, aad: string): Uint8Array {
    if (sealed.length < IV_BYTES + TAG_BYTES) throw new CustodyError('STORAGE_CORRUPT', `sealed ${aad} is truncated`);
    const iv = sealed.subarray(0, IV_BYTES);
    const tag = sealed.subarray(sealed.length - TAG_BYTES);
    const d = createDecipheriv('aes-256-gcm', this.key, iv);
    d.setAAD(Buffer.from(aad, 'utf8'));
    d.setAuthTag(tag);
    try {
      return new Uint8Array(Buffer.concat([d.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)), d.final()]));
    } catch (e) {
      throw new CustodyError('STORAGE_CORRUPT', `sealed ${aad} does not open under this kernel's key`, { cause: e });
    }
  }

  close(): void {
    this.key.fill(0);
  }
}

export interface ScryptParams {
  readonly salt: Uint8Array;
  readonly logN: number;
  readonly r: number;
  readonly p: number;
}

/** The store's scrypt salt and parameters; a store without a salt gets both (at today's cost). */
export async function scryptParams(store: KernelStore): Promise<ScryptParams> {
  const salt = await store.get('meta/scrypt-salt');
  const raw = await store.get('meta/scrypt-params');
  if (salt === undefined) {
    if (raw !== undefined) throw new CustodyError('STORAGE_CORRUPT', 'meta/scrypt-params without meta/scrypt-salt');
    const fresh = { salt: randomBytes(16), logN: limits.scryptLogN, r: 8, p: 1 };
    await store.write([
      { type: 'put', key: 'meta/scrypt-salt', value: fresh.salt },
      { type: 'put', key: 'meta/scrypt-params', value: Buffer.from(JSON.stringify({ logN: fresh.logN, r: fresh.r, p: fresh.p })) },
    ]);
    return fresh;
  }
  if (raw === undefined) return { salt, logN: limits.scryptLogNMin, r: 8, p: 1 };
  let o: { logN?: unknown; r?: unknown; p?: unknown };
  try {
    o = JSON.parse(Buffer.from(raw).toString('utf8')) as typeof o;
  } catch {
    throw new CustodyError('STORAGE_CORRUPT', 'meta/scrypt-params is not JSON');
  }
  if (!Number.isSafeInteger(o.logN) || (o.logN as number) < limits.scryptLogNMin || (o.logN as number) > limits.scryptLogNMax || o.r !== 8 || o.p !== 1 || Object.keys(o).length !== 3) {
    throw new CustodyError('STORAGE_CORRUPT', `meta/scrypt-params ${Buffer.from(raw).toString('utf8')} is outside logN ${limits.scryptLogNMin}..${limits.scryptLogNMax}, r 8, p 1`);
  }
  return { salt, logN: o.logN as number, r: 8, p: 1 };
}

/**
 * Checks the vault against a sealed known plaintext kept in the store (written on first use), so
 * a wrong passphrase, key file or token fails at start with one clear error.
 */
export async function checkVault(vault: Vault, store: KernelStore): Promise<void> {
  const known = Buffer.from('custody-kernel vault check v1');
  const sealed = await store.get('meta/vault-check');
  if (sealed === undefined) {
    await store.write([{ type: 'put', key: 'meta/vault-check', value: vault.seal(known, 'meta/vault-check') }]);
    return;
  }
  let plain: Uint8Array;
  try {
    plain = vault.open(sealed, 'meta/vault-check');
  } catch (e) {
    throw new CustodyError('CONFIG_INVALID', 'the store was sealed under another key, passphrase or token', { cause: e });
  }
  if (!known.equals(Buffer.from(plain))) throw new CustodyError('CONFIG_INVALID', 'vault check mismatch');
}
