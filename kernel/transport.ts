/**
 * Kernel-to-kernel confidentiality for DKG round-2 packages, redeal shares and repair parts: HPKE (RFC 9180)
 * base mode, single-shot (§6.1), suite DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM,
 * through @hpke/core. Each kernel holds its own X25519 transport key (private half sealed in its
 * store); the daemons relay only ciphertexts.
 *
 * `info` names the protocol and purpose (RFC 9180 §8.1: application-supplied context); the AAD
 * binds ceremony, key, sender and recipient, so a package cannot be replayed into another
 * ceremony, redirected to another recipient, or attributed to another sender.
 */
import { Aes256Gcm, CipherSuite, HkdfSha256 } from '@hpke/core';
import { DhkemX25519HkdfSha256 } from '@hpke/dhkem-x25519';
import { CustodyError } from '../proto/errors.js';
import type { SealedPackage } from './wire.js';

const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });
const te = new TextEncoder();

export interface TransportKey {
  publicKey: Uint8Array;
  privateKey: Uint8Array;
}

export async function generateTransportKey(): Promise<TransportKey> {
  const kp = await suite.kem.generateKeyPair();
  return {
    publicKey: new Uint8Array(await suite.kem.serializePublicKey(kp.publicKey)),
    privateKey: new Uint8Array(await suite.kem.serializePrivateKey(kp.privateKey)),
  };
}

export interface PackageContext {
  purpose: 'dkg-round2' | 'redeal' | 'repair-delta' | 'repair-sigma' | 'recovery';
  ceremonyId: string;
  keyId: string;
  sender: string;
  recipient: string;
  /**
   * Further context the AAD binds after the recipient (printable ASCII each), for packages whose
   * meaning depends on more than the ceremony and key (a repair's epoch, target and helper set).
   */
  bind?: readonly string[];
}

function aad(c: PackageContext): Uint8Array {
  // NUL-separated: every field is printable ASCII (kernel/wire.ts), so the split is unambiguous.
  return te.encode(['custody-kernel/v1', c.purpose, c.ceremonyId, c.keyId, c.sender, c.recipient, ...(c.bind ?? [])].join('\0'));
}

const info = (c: PackageContext): Uint8Array => te.encode(`custody-kernel/v1 ${c.purpose}`);

export async function sealTo(recipientPublicKey: Uint8Array, c: PackageContext, plaintext: Uint8Array): Promise<SealedPackage> {
  let pk: Awaited<ReturnType<typeof suite.kem.deserializePublicKey>>;
  try {
    pk = await suite.kem.deserializePublicKey(recipientPublicKey.slice().buffer);
  } catch (e) {
    throw new CustodyError('PAYLOAD_REJECTED', `transport key of ${c.recipient} is not an X25519 public key`, { cause: e });
  }
  const { enc, ct } = await suite.seal({ recipientPublicKey: pk, info: info(c) }, plaintext.slice().buffer, aad(c).slice().buffer);
  return { sender: c.sender, recipient: c.recipient, enc: new Uint8Array(enc), ciphertext: new Uint8Array(ct) };
}

export async function openFrom(privateKey: Uint8Array, c: PackageContext, p: SealedPackage): Promise<Uint8Array> {
  if (p.sender !== c.sender || p.recipient !== c.recipient) throw new CustodyError('WRONG_RECIPIENT', `package ${p.sender}->${p.recipient} is not ${c.sender}->${c.recipient}`);
  const sk = await suite.kem.deserializePrivateKey(privateKey.slice().buffer);
  try {
    const pt = await suite.open({ recipientKey: sk, enc: p.enc.slice().buffer, info: info(c) }, p.ciphertext.slice().buffer, aad(c).slice().buffer);
    return new Uint8Array(pt);
  } catch (e) {
    throw new CustodyError('PAYLOAD_REJECTED', `package from ${c.sender} does not open for this kernel`, { cause: e });
  }
}
