/**
 * Recovery of a lost share from its backup: the custodian's offline step (sealRecoveredShare) and
 * the checks the receiving kernel makes before it keeps the share (kernel.ts importShare).
 *
 * Message flow (README "Recovering a lost kernel's share"):
 *   1. the node's kernel lost its store; a fresh kernel starts from its pinned genesis, follows
 *      governance again and has a new X25519 transport key (status.transportPublicKey);
 *   2. approvers sign RecoveryAuthorized { nodeId, keyId, keyEpoch, identifier, backupCid,
 *      groupKey, verifyingShare } at the governance quorum; the ledger accepts it only when it
 *      records a KeyBackedUp of that participant with that cid and committed that group key
 *      (ledger/apply.ts); every kernel follows it through its governance chain (authority.ts),
 *      and only the kernel of `nodeId` keeps it, as the one recovery it may accept for the key;
 *   3. offline, the custodian rebuilds its age identity from guardian shares (node/guardian/),
 *      and `custody guardian recover-share` runs sealRecoveredShare: decrypts the backup checked
 *      against the metadata the decision names (kernel/backup.ts: BACKUP_FOREIGN, BACKUP_INVALID,
 *      SHARE_MISMATCH), and seals the share with HPKE (RFC 9180 base mode, kernel/transport.ts)
 *      to the target kernel's transport key, the AAD binding key, epoch, identifier and backup
 *      cid; the clear share is erased at once;
 *   4. the daemon relays the sealed package with the key's public package (from a live peer
 *      kernel's publicPackage) in importShare { keyId, epoch, identifier, public, sealed,
 *      ledgerConsumedCounter } to its kernel, which opens it and keeps it only under checks below.
 * So the share exists in the clear only in the custodian's offline process and inside the kernel.
 *
 * What the receiving kernel trusts, and for what:
 *   - The approver quorum (verified by the kernel itself from its pinned genesis, authority.ts),
 *     for which node may import which participant's share of which active epoch, and for the
 *     group key and verifying share the share must match. The ledger checked the group key
 *     against the one the participants' KeyReady statements committed and the cid against its
 *     KeyBackedUp record; the verifying share is the approvers' word, read from the backup's
 *     metadata (the custodian's decryption proves that file's share matches it).
 *   - Nobody for the share itself: anyone can seal bytes to a public transport key (HPKE base
 *     mode does not authenticate the sender), so the kernel keeps a share only if share·G is
 *     the decided verifying share (SHARE_MISMATCH otherwise). Shamir recombination of the
 *     custodian's identity and the age file carry no such check; this is the one that counts.
 *   - The daemon for nothing but liveness. The public package it passes must have the decided
 *     group key as commitments[0] and the decided verifying share for the identifier, the
 *     threshold and size governance activated, and every verifying share must be the commitment
 *     polynomial evaluated at its identifier (Y_j = Σ_k C_k·x_j^k, RFC 9591 Appendix C.2): a
 *     package that differs anywhere is refused (BINDING_MISMATCH) before the package is opened.
 *     A daemon passing a too-low ledgerConsumedCounter gains nothing: nonces are fresh random
 *     pairs drawn after the import (RFC 9591 §5.1), never a reuse of an old pair, and the
 *     counter only keeps the kernel's numbering above what the ledger saw consumed, so its
 *     commitments are not refused as stale.
 *   - A package sealed to another kernel does not open here (PAYLOAD_REJECTED); one sealed for
 *     another key, epoch, identifier or backup does not open either (the AAD differs).
 *   - Replay: a kernel that holds a share of the epoch refuses any import (SHARE_ALREADY_HELD),
 *     and the decision is consumed by the import that succeeds, so the same decision and package
 *     replayed later are refused (RECOVERY_NOT_AUTHORIZED). A recovered share never replaces a
 *     held one: the held one is either the same share (nothing to do) or a different one, which
 *     would mean two shares for one identifier. A kernel wiped again follows governance from
 *     genesis again and the same decision authorizes it once more: that is the same share into
 *     a store that has none.
 */
import { createHash } from 'node:crypto';
import { CustodyError } from '../proto/errors.js';
import { shareBackup as limits } from '../proto/limits.js';
import { decode, encode, type CborValue } from '../ledger/encoding.js';
import { decryptShareBackup, type ShareBackupMeta } from './backup.js';
import { evalCommitment, parseIdentifier } from './redeal.js';
import type { PublicKeyPackage, Suite } from './suites.js';
import { sealTo, type PackageContext } from './transport.js';
import type { SealedPackage } from './wire.js';

/** The sender name a recovered share's package carries: a custodian, not a kernel. */
export const RECOVERY_SENDER = 'custodian';

/** What a recovered share is sealed under: key, epoch, identifier and backup cid in the AAD. */
export function recoveryContext(keyId: string, epoch: number, identifier: string, backupCid: Uint8Array): PackageContext {
  return { purpose: 'recovery', ceremonyId: Buffer.from(backupCid).toString('hex'), keyId, sender: RECOVERY_SENDER, recipient: identifier, bind: [String(epoch)] };
}

/** The cid a KeyBackedUp records for a backup file: sha256 of its bytes. */
export function backupCid(file: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(file).digest());
}

/**
 * The custodian's offline step: decrypts `file` with `identity` (checked against `expected`, the
 * metadata the RecoveryAuthorized decision names) and seals the share to the target kernel's
 * transport key. The clear share is zero-filled before this returns, whatever happens.
 */
export async function sealRecoveredShare(file: Uint8Array, identity: string, expected: ShareBackupMeta, kernelTransportKey: Uint8Array): Promise<{ sealed: SealedPackage; backupCid: Uint8Array }> {
  if (kernelTransportKey.length !== 32) throw new CustodyError('INVALID_ARGUMENT', `a kernel transport key is 32 bytes (X25519), not ${kernelTransportKey.length}`);
  const share = await decryptShareBackup(file, identity, expected);
  try {
    const cid = backupCid(file);
    // A copy: a Node Buffer may be a view into a shared pool, and HPKE reads the whole ArrayBuffer.
    const sealed = await sealTo(new Uint8Array(kernelTransportKey), recoveryContext(expected.keyId, expected.epoch, expected.identifier, cid), share);
    return { sealed, backupCid: cid };
  } finally {
    share.fill(0);
  }
}

/**
 * Refuses (BINDING_MISMATCH) a public package that is not the decided key epoch: group key,
 * the identifier's verifying share, threshold and size, and every verifying share on the
 * commitment polynomial.
 */
export function checkRecoveryPackage(
  suite: Suite, pub: PublicKeyPackage,
  decided: { identifier: string; groupKey: Uint8Array; verifyingShare: Uint8Array; threshold: number; participants: number },
): void {
  const bad = (why: string): never => {
    throw new CustodyError('BINDING_MISMATCH', `the public package is not the key epoch the RecoveryAuthorized decision names: ${why}`);
  };
  const eq = (a: Uint8Array | undefined, b: Uint8Array): boolean => a !== undefined && Buffer.from(a).equals(Buffer.from(b));
  if (!eq(pub.commitments[0], decided.groupKey)) bad('another group key');
  if (!eq(pub.verifyingShares[decided.identifier], decided.verifyingShare)) bad(`another verifying share for ${decided.identifier}`);
  if (pub.signers.min !== decided.threshold || pub.signers.max !== decided.participants) bad(`${pub.signers.min} of ${pub.signers.max}, governance activated ${decided.threshold} of ${decided.participants}`);
  let C;
  try {
    C = pub.commitments.map((c) => suite.parsePoint(c));
  } catch (e) {
    return bad(`a commitment is not a group element (${(e as Error).message})`);
  }
  for (const [id, y] of Object.entries(pub.verifyingShares)) {
    let Y;
    try {
      Y = suite.parsePoint(y);
    } catch (e) {
      return bad(`the verifying share of ${id} is not a group element (${(e as Error).message})`);
    }
    if (!evalCommitment(suite, C, parseIdentifier(suite, id)).equals(Y)) bad(`the verifying share of ${id} is not on the commitment polynomial`);
  }
}

export const SEALED_SHARE_FORMAT = 'custody-sealed-share/v1';

/** A recovered share sealed to one kernel, as `custody guardian recover-share` writes it. */
export interface SealedShareFile {
  keyId: string;
  epoch: number;
  identifier: string;
  backupCid: Uint8Array;
  sealed: SealedPackage;
}

/** The file's bytes: canonical CBOR (ledger/encoding.ts). Holds only ciphertext and public facts. */
export function encodeSealedShare(f: SealedShareFile): Uint8Array {
  return encode({
    format: SEALED_SHARE_FORMAT, keyId: f.keyId, epoch: f.epoch, identifier: f.identifier, backupCid: f.backupCid,
    sealed: { sender: f.sealed.sender, recipient: f.sealed.recipient, enc: f.sealed.enc, ciphertext: f.sealed.ciphertext },
  });
}

/** Parses a sealed-share file; PAYLOAD_REJECTED naming what is wrong. */
export function decodeSealedShare(bytes: Uint8Array): SealedShareFile {
  const bad = (why: string): never => {
    throw new CustodyError('PAYLOAD_REJECTED', `sealed share file: ${why}`);
  };
  if (bytes.length > limits.sealedShareBytesMax) bad(`${bytes.length} bytes, more than ${limits.sealedShareBytesMax}`);
  let v: CborValue;
  try {
    v = decode(bytes, { bytesMax: limits.sealedShareBytesMax });
  } catch (e) {
    return bad((e as Error).message);
  }
  const o = v as Record<string, CborValue>;
  if (o === null || typeof o !== 'object' || Array.isArray(o) || o instanceof Uint8Array) return bad('not a map');
  if (Object.keys(o).sort().join(',') !== 'backupCid,epoch,format,identifier,keyId,sealed' || o.format !== SEALED_SHARE_FORMAT) bad(`not a ${SEALED_SHARE_FORMAT} file`);
  const s = o.sealed as Record<string, CborValue>;
  if (typeof o.keyId !== 'string' || typeof o.identifier !== 'string' || typeof o.epoch !== 'number' || !(o.backupCid instanceof Uint8Array) || o.backupCid.length !== 32) bad('keyId, epoch, identifier or backupCid malformed');
  if (s === null || typeof s !== 'object' || typeof s.sender !== 'string' || typeof s.recipient !== 'string' || !(s.enc instanceof Uint8Array) || !(s.ciphertext instanceof Uint8Array)) bad('sealed package malformed');
  // Copies: the input may be a Node Buffer, whose views share one pool.
  return {
    keyId: o.keyId as string, epoch: o.epoch as number, identifier: o.identifier as string, backupCid: new Uint8Array(o.backupCid as Uint8Array),
    sealed: { sender: s.sender as string, recipient: s.recipient as string, enc: new Uint8Array(s.enc as Uint8Array), ciphertext: new Uint8Array(s.ciphertext as Uint8Array) },
  };
}
