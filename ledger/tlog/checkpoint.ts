/**
 * C2SP checkpoints (https://c2sp.org/tlog-checkpoint) and cosigned checkpoints: a checkpoint is
 * the text of a signed note; a cosigned checkpoint is one note carrying the signatures of several
 * nodes (and, later, witnesses). Pure: no I/O, no clock, no randomness.
 *
 *   <origin>\n                  non-empty, no control characters
 *   <tree size>\n               ASCII decimal, no leading zero (0 for the empty tree)
 *   <base64 root hash>\n        canonical base64 of exactly 32 bytes
 *   [<extension line>\n]*       each non-empty, at most limits.tlog.checkpointExtensionLinesMax
 *
 * API
 *   formatCheckpoint(cp) / parseCheckpoint(text)     strict, TLOG_CHECKPOINT_INVALID on any fault
 *   signCheckpoint(cp, signers)                      a note over the checkpoint
 *   certified(note, trust)                           the checkpoint, only with a quorum
 *   requireIncluded(cp, index, leafHash, proof)      the leaf is in the checkpoint's tree
 *   requireExtends(older, newer, proof)              the newer checkpoint's tree extends the older
 *
 * certified(): the safety argument. A reader (kernel, auditor) trusts a tree head only if at
 * least `quorum` distinct nodes of the trust policy signed that exact text. Each node signs only
 * checkpoints of its own replica (applied entries), so with quorum a majority of the roster, no
 * minority can make a reader accept a history the majority did not apply, and two certified
 * checkpoints of the same size with different roots prove that some node signed both (nodes are
 * counted by key name, so one node holding two keys still counts once). Signatures by keys not in
 * the policy are ignored (they may be witnesses or retired keys); a signature by a known key that
 * fails refuses the whole note, so a tampered note is never half-accepted.
 */
import { CustodyError } from '../../proto/errors.js';
import { tlog as limits } from '../../proto/limits.js';
import { HASH_BYTES, requireConsistency, requireInclusion } from './merkle.js';
import { decodeBase64Strict, encodeBase64, openNote, signNote, type NoteSigner, type NoteVerifier, type VerifiedSignature } from './note.js';

export interface Checkpoint {
  readonly origin: string;
  readonly size: number;
  readonly root: Uint8Array;
  readonly extensions: readonly string[];
}

function invalid(why: string): never {
  throw new CustodyError('TLOG_CHECKPOINT_INVALID', why);
}

const SIZE_RE = /^(0|[1-9][0-9]*)$/;
const CONTROL_RE = /[\u0000-\u001f]/;

function checkLine(what: string, line: string): void {
  if (line.length === 0) invalid(`${what} is empty`);
  if (CONTROL_RE.test(line)) invalid(`${what} contains a control character`);
}

/** The note text of a checkpoint; refuses values that would not parse back to the same checkpoint. */
export function formatCheckpoint(cp: Checkpoint): string {
  const text = `${cp.origin}\n${cp.size}\n${cp.root instanceof Uint8Array ? encodeBase64(cp.root) : ''}\n${cp.extensions.map((e) => `${e}\n`).join('')}`;
  parseCheckpoint(text);
  return text;
}

/** Parses a checkpoint note text strictly. */
export function parseCheckpoint(text: string): Checkpoint {
  if (!text.endsWith('\n')) invalid('checkpoint text must end with a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) invalid('a checkpoint has at least three lines');
  const [origin, sizeText, rootText, ...extensions] = lines as [string, string, string, ...string[]];
  checkLine('origin', origin);
  if (!SIZE_RE.test(sizeText)) invalid(`tree size ${JSON.stringify(sizeText)} is not a decimal without leading zeros`);
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size) || size > limits.treeSizeMax) invalid(`tree size ${sizeText} exceeds ${limits.treeSizeMax}`);
  const root = decodeBase64Strict(rootText);
  if (root === undefined || root.length !== HASH_BYTES) invalid('root hash is not canonical base64 of 32 bytes');
  if (extensions.length > limits.checkpointExtensionLinesMax) invalid(`more than ${limits.checkpointExtensionLinesMax} extension lines`);
  extensions.forEach((e, i) => checkLine(`extension line ${i + 1}`, e));
  return { origin, size, root, extensions };
}

/** A signed note over `cp` by every signer (node keys: Ed25519; witnesses: cosignatures). */
export function signCheckpoint(cp: Checkpoint, signers: readonly NoteSigner[]): string {
  return signNote(formatCheckpoint(cp), signers);
}

/** Who a reader trusts for one log: its origin, the node keys, and how many must sign. */
export interface CheckpointTrust {
  readonly origin: string;
  readonly verifiers: readonly NoteVerifier[];
  readonly quorum: number;
}

export interface CertifiedCheckpoint {
  readonly checkpoint: Checkpoint;
  /** Distinct key names whose signatures verified. */
  readonly signers: readonly string[];
  readonly signatures: readonly VerifiedSignature[];
}

/**
 * The checkpoint in `note`, only when at least `trust.quorum` distinct known keys (by name)
 * signed it and it names `trust.origin`. Refusals: CONFIG_INVALID (a quorum no policy can meet),
 * NOTE_MALFORMED / NOTE_SIGNATURE_INVALID (from openNote), TLOG_CHECKPOINT_INVALID (text or
 * origin), QUORUM_NOT_MET.
 */
export function certified(note: Uint8Array | string, trust: CheckpointTrust): CertifiedCheckpoint {
  const names = new Set(trust.verifiers.map((v) => v.name));
  if (!Number.isSafeInteger(trust.quorum) || trust.quorum < 1 || trust.quorum > names.size) {
    throw new CustodyError('CONFIG_INVALID', `checkpoint quorum ${trust.quorum} with ${names.size} known signers`);
  }
  const opened = openNote(note, trust.verifiers);
  const checkpoint = parseCheckpoint(opened.text);
  if (checkpoint.origin !== trust.origin) invalid(`checkpoint origin ${JSON.stringify(checkpoint.origin)} is not ${JSON.stringify(trust.origin)}`);
  const signers = [...new Set(opened.verified.map((s) => s.name))];
  if (signers.length < trust.quorum) {
    throw new CustodyError('QUORUM_NOT_MET', `checkpoint signed by ${signers.length} known keys, ${trust.quorum} required`);
  }
  return { checkpoint, signers, signatures: opened.verified };
}

/** Throws TLOG_PROOF_INVALID unless `proof` places `leaf` (a leaf hash) at `index` in the tree `cp` names. */
export function requireIncluded(cp: Checkpoint, index: number, leaf: Uint8Array, proof: readonly Uint8Array[]): void {
  requireInclusion(index, cp.size, leaf, proof, cp.root);
}

/**
 * Throws unless `newer` is the same log grown from `older`: TLOG_CHECKPOINT_INVALID for another
 * origin, TLOG_PROOF_INVALID when `proof` does not show older's tree is a prefix of newer's (a
 * smaller newer size, or the same size with another root, never verifies).
 */
export function requireExtends(older: Checkpoint, newer: Checkpoint, proof: readonly Uint8Array[]): void {
  if (older.origin !== newer.origin) invalid(`checkpoints of ${JSON.stringify(older.origin)} and ${JSON.stringify(newer.origin)} are of different logs`);
  requireConsistency(older.size, newer.size, older.root, newer.root, proof);
}
