/**
 * The hsm profile over PKCS#11 (pkcs11js), tested on SoftHSM2.
 *
 * - The wrapping key is an AES-256 secret key generated inside the token (C_GenerateKey,
 *   CKM_AES_KEY_GEN) with CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE = true and CKA_EXTRACTABLE = false:
 *   its value never exists outside the token (PKCS#11 v2.40 §4.9: a sensitive, non-extractable key
 *   cannot be revealed by C_GetAttributeValue or wrapped out).
 * - Shares and nonces are sealed by C_Encrypt with CKM_AES_GCM inside the token, and opened by
 *   C_Decrypt only for the step that needs them; the kernel zero-fills its copy afterwards.
 * - The anti-rollback counter of each key is a token data object (CKO_DATA, label
 *   "custody-consumed/<keyId>", value a big-endian u64) raised with C_SetAttributeValue before a
 *   nonce's signature share leaves. It lives in the token, not in the kernel store, so restoring an
 *   older copy of the store cannot rewind it.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pkcs11js from 'pkcs11js';
import { CustodyError } from '../proto/errors.js';
import type { ExternalCounter, Vault } from './vault.js';

export interface HsmConfig {
  /** PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  module: string;
  tokenLabel: string;
  /** File holding the user PIN. */
  pinFile: string;
  /** Label of the wrapping key in the token. */
  keyLabel: string;
}

const IV_BYTES = 12;
const TAG_BITS = 128;
const COUNTER_APP = 'custody-kernel';

function readPin(path: string): string {
  const pin = readFileSync(path, 'utf8').trim();
  if (pin.length < 4) throw new CustodyError('CONFIG_INVALID', `PIN file ${path} holds no PIN`);
  return pin;
}

function wrapErr(what: string, e: unknown): CustodyError {
  return new CustodyError('INTERNAL', `${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}

interface Session {
  p11: pkcs11js.PKCS11;
  module: string;
  session: Buffer;
}

/**
 * One loaded module per process, reference-counted: PKCS#11 allows C_Initialize once per process
 * (a second call fails with CKR_CRYPTOKI_ALREADY_INITIALIZED) and C_Finalize ends every session.
 */
const modules = new Map<string, { p11: pkcs11js.PKCS11; refs: number }>();

function acquire(module: string): pkcs11js.PKCS11 {
  let m = modules.get(module);
  if (m === undefined) {
    const p11 = new pkcs11js.PKCS11();
    try {
      p11.load(module);
      p11.C_Initialize();
    } catch (e) {
      throw wrapErr(`cannot load PKCS#11 module ${module}`, e);
    }
    m = { p11, refs: 0 };
    modules.set(module, m);
  }
  m.refs++;
  return m.p11;
}

function release(module: string): void {
  const m = modules.get(module);
  if (m === undefined) return;
  if (--m.refs === 0) {
    modules.delete(module);
    m.p11.C_Finalize();
  }
}

function findSlot(p11: pkcs11js.PKCS11, label: string): Buffer | undefined {
  for (const slot of p11.C_GetSlotList(true)) {
    const info = p11.C_GetTokenInfo(slot);
    if (info.label.trim() === label && (info.flags & pkcs11js.CKF_TOKEN_INITIALIZED) !== 0) return slot;
  }
  return undefined;
}

function openSession(module: string, tokenLabel: string): Session {
  const p11 = acquire(module);
  const slot = findSlot(p11, tokenLabel);
  if (slot === undefined) {
    release(module);
    throw new CustodyError('CONFIG_INVALID', `no initialized token labelled ${JSON.stringify(tokenLabel)}; run \`custody kernel hsm-init\``);
  }
  const session = p11.C_OpenSession(slot, pkcs11js.CKF_RW_SESSION | pkcs11js.CKF_SERIAL_SESSION);
  return { p11, module, session };
}

/** Logs the user in; a login this process already holds on the token is fine (PKCS#11 §5.6). */
function login(s: Session, pin: string): void {
  try {
    s.p11.C_Login(s.session, pkcs11js.CKU_USER, pin);
  } catch (e) {
    if (!(e instanceof Error) || !e.message.includes('CKR_USER_ALREADY_LOGGED_IN')) throw e;
  }
}

function closeSession(s: Session, loggedIn: boolean): void {
  try {
    if (loggedIn) s.p11.C_Logout(s.session);
  } catch {
    // Another session of this process may hold the login (PKCS#11 logins are per token and
    // application); logging out once is enough.
  }
  try {
    s.p11.C_CloseSession(s.session);
  } finally {
    release(s.module);
  }
}

function findOne(s: Session, template: pkcs11js.Template): Buffer | null {
  s.p11.C_FindObjectsInit(s.session, template);
  try {
    const found = s.p11.C_FindObjects(s.session, 2);
    if (found.length > 1) throw new CustodyError('CONFIG_INVALID', 'two token objects share one label');
    return found[0] ?? null;
  } finally {
    s.p11.C_FindObjectsFinal(s.session);
  }
}

function findWrappingKey(s: Session, keyLabel: string): Buffer | null {
  return findOne(s, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
    { type: pkcs11js.CKA_LABEL, value: keyLabel },
  ]);
}

/**
 * Token counters. Tokens commonly make CKA_VALUE of a data object read-only after creation
 * (SoftHSM2 does), so raising a counter creates a new object holding the new value and only then
 * destroys the older ones; the value read is the maximum over all objects with the label. A crash
 * between the two steps leaves two objects and the maximum is still right: the counter never
 * moves backwards.
 */
class TokenCounter implements ExternalCounter {
  /** The objects last seen per key (their handles stay valid while this session is open). */
  private readonly cache = new Map<string, { value: number; handles: Buffer[] }>();
  constructor(private readonly s: Session) {}

  private objects(keyId: string): { handle: Buffer; value: number }[] {
    this.s.p11.C_FindObjectsInit(this.s.session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_DATA },
      { type: pkcs11js.CKA_LABEL, value: `custody-consumed/${keyId}` },
    ]);
    let handles: Buffer[];
    try {
      handles = this.s.p11.C_FindObjects(this.s.session, 64);
    } finally {
      this.s.p11.C_FindObjectsFinal(this.s.session);
    }
    return handles.map((handle) => {
      const v = this.s.p11.C_GetAttributeValue(this.s.session, handle, [{ type: pkcs11js.CKA_VALUE }])[0]?.value;
      if (!Buffer.isBuffer(v) || v.length !== 8) throw new CustodyError('STORAGE_CORRUPT', `token counter for ${keyId} is malformed`);
      return { handle, value: Number(v.readBigUInt64BE(0)) };
    });
  }

  private load(keyId: string): { value: number; handles: Buffer[] } {
    let hit = this.cache.get(keyId);
    if (hit === undefined) {
      const objs = this.objects(keyId);
      hit = { value: Math.max(0, ...objs.map((o) => o.value)), handles: objs.map((o) => o.handle) };
      this.cache.set(keyId, hit);
    }
    return hit;
  }

  get(keyId: string): number {
    return this.load(keyId).value;
  }

  raise(keyId: string, value: number): void {
    const cur = this.load(keyId);
    if (value <= cur.value) return;
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(value));
    const handle = this.s.p11.C_CreateObject(this.s.session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_DATA },
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_LABEL, value: `custody-consumed/${keyId}` },
      { type: pkcs11js.CKA_APPLICATION, value: COUNTER_APP },
      { type: pkcs11js.CKA_VALUE, value: b },
    ]);
    for (const old of cur.handles) this.s.p11.C_DestroyObject(this.s.session, old);
    this.cache.set(keyId, { value, handles: [handle] });
  }
}

export class HsmVault implements Vault {
  readonly profile = 'hsm' as const;
  readonly counter: ExternalCounter;
  private constructor(private readonly s: Session, private readonly key: Buffer) {
    this.counter = new TokenCounter(s);
  }

  static open(cfg: HsmConfig): HsmVault {
    const s = openSession(cfg.module, cfg.tokenLabel);
    try {
      login(s, readPin(cfg.pinFile));
    } catch (e) {
      closeSession(s, false);
      throw new CustodyError('CONFIG_INVALID', `token login failed: ${(e as Error).message}`, { cause: e });
    }
    const key = findWrappingKey(s, cfg.keyLabel);
    if (key === null) {
      closeSession(s, true);
      throw new CustodyError('CONFIG_INVALID', `no wrapping key labelled ${JSON.stringify(cfg.keyLabel)} in the token; run \`custody kernel hsm-init\``);
    }
    return new HsmVault(s, key);
  }

  private gcm(iv: Buffer, aad: string): pkcs11js.Mechanism {
    const parameter: pkcs11js.AesGCM = { type: pkcs11js.CK_PARAMS_AES_GCM, iv, aad: Buffer.from(aad, 'utf8'), ivBits: IV_BYTES * 8, tagBits: TAG_BITS };
    return { mechanism: pkcs11js.CKM_AES_GCM, parameter };
  }

  seal(plain: Uint8Array, aad: string): Uint8Array {
    const iv = randomBytes(IV_BYTES);
    try {
      this.s.p11.C_EncryptInit(this.s.session, this.gcm(iv, aad), this.key);
      const ct = this.s.p11.C_Encrypt(this.s.session, Buffer.from(plain), Buffer.alloc(plain.length + TAG_BITS / 8));
      return Buffer.concat([iv, ct]);
    } catch (e) {
      throw wrapErr(`token could not seal ${aad}`, e);
    }
  }

  open(sealed: Uint8Array, aad: string): Uint8Array {
    if (sealed.length < IV_BYTES + TAG_BITS / 8) throw new CustodyError('STORAGE_CORRUPT', `sealed ${aad} is truncated`);
    const iv = Buffer.from(sealed.subarray(0, IV_BYTES));
    try {
      this.s.p11.C_DecryptInit(this.s.session, this.gcm(iv, aad), this.key);
      const out = this.s.p11.C_Decrypt(this.s.session, Buffer.from(sealed.subarray(IV_BYTES)), Buffer.alloc(sealed.length));
      return new Uint8Array(out);
    } catch (e) {
      throw new CustodyError('STORAGE_CORRUPT', `sealed ${aad} does not open under the token's key`, { cause: e });
    }
  }

  close(): void {
    closeSession(this.s, true);
  }
}

export interface HsmInitOptions extends HsmConfig {
  /** Security-officer PIN file, needed only when the token is not yet initialized. */
  soPinFile?: string;
}

/**
 * Initializes the token (if no token carries the label yet, the first free slot is initialized
 * with the SO PIN and the user PIN is set) and generates the wrapping key inside it (if absent).
 * Idempotent. Returns what it did.
 */
export function hsmInit(opts: HsmInitOptions): { tokenInitialized: boolean; keyGenerated: boolean } {
  const p11 = acquire(opts.module);
  let tokenInitialized = false;
  try {
    if (findSlot(p11, opts.tokenLabel) === undefined) {
      if (opts.soPinFile === undefined) throw new CustodyError('CONFIG_INVALID', 'the token is not initialized; pass --so-pin-file');
      const soPin = readPin(opts.soPinFile);
      const free = p11.C_GetSlotList(true).find((slot) => (p11.C_GetTokenInfo(slot).flags & pkcs11js.CKF_TOKEN_INITIALIZED) === 0);
      if (free === undefined) throw new CustodyError('CONFIG_INVALID', 'no free slot to initialize a token in');
      p11.C_InitToken(free, soPin, opts.tokenLabel.padEnd(32, ' '));
      // SoftHSM renumbers a slot once its token is initialized: look it up again by label.
      const slot = findSlot(p11, opts.tokenLabel);
      if (slot === undefined) throw new CustodyError('INTERNAL', 'the token vanished after initialization');
      const so = p11.C_OpenSession(slot, pkcs11js.CKF_RW_SESSION | pkcs11js.CKF_SERIAL_SESSION);
      p11.C_Login(so, pkcs11js.CKU_SO, soPin);
      p11.C_InitPIN(so, readPin(opts.pinFile));
      p11.C_Logout(so);
      p11.C_CloseSession(so);
      tokenInitialized = true;
    }
  } finally {
    release(opts.module);
  }
  const s = openSession(opts.module, opts.tokenLabel);
  try {
    login(s, readPin(opts.pinFile));
    if (findWrappingKey(s, opts.keyLabel) !== null) return { tokenInitialized, keyGenerated: false };
    s.p11.C_GenerateKey(s.session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
      { type: pkcs11js.CKA_LABEL, value: opts.keyLabel },
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: false },
      { type: pkcs11js.CKA_ENCRYPT, value: true },
      { type: pkcs11js.CKA_DECRYPT, value: true },
      { type: pkcs11js.CKA_WRAP, value: true },
      { type: pkcs11js.CKA_UNWRAP, value: true },
      { type: pkcs11js.CKA_MODIFIABLE, value: false },
    ]);
    return { tokenInitialized, keyGenerated: true };
  } finally {
    closeSession(s, true);
  }
}

/** Reads the wrapping key's protection attributes through PKCS#11 (operator check and tests). */
export function wrappingKeyAttributes(cfg: HsmConfig): { extractable: boolean; sensitive: boolean; neverExtractable: boolean; alwaysSensitive: boolean; valueReadable: boolean } {
  const s = openSession(cfg.module, cfg.tokenLabel);
  try {
    login(s, readPin(cfg.pinFile));
    const key = findWrappingKey(s, cfg.keyLabel);
    if (key === null) throw new CustodyError('CONFIG_INVALID', 'no wrapping key');
    const attrs = s.p11.C_GetAttributeValue(s.session, key, [
      { type: pkcs11js.CKA_EXTRACTABLE },
      { type: pkcs11js.CKA_SENSITIVE },
      { type: pkcs11js.CKA_NEVER_EXTRACTABLE },
      { type: pkcs11js.CKA_ALWAYS_SENSITIVE },
    ]);
    const bool = (i: number): boolean => {
      const v = attrs[i]?.value;
      return Buffer.isBuffer(v) ? v[0] === 1 : v === true;
    };
    let valueReadable = true;
    try {
      s.p11.C_GetAttributeValue(s.session, key, [{ type: pkcs11js.CKA_VALUE }]);
    } catch {
      valueReadable = false; // CKR_ATTRIBUTE_SENSITIVE
    }
    return { extractable: bool(0), sensitive: bool(1), neverExtractable: bool(2), alwaysSensitive: bool(3), valueReadable };
  } finally {
    closeSession(s, true);
  }
}
