/**
 * C2SP tlog-proof (https://c2sp.org/tlog-proof): one self-contained, offline-verifiable text that
 * an entry is in the log, under a cosigned checkpoint. Pure: no I/O, no clock, no randomness.
 *
 *   c2sp.org/tlog-proof@v1\n
 *   [extra <base64 opaque data>\n]          not authenticated: never trusted by itself
 *   index <decimal, no leading zero>\n
 *   <base64 32-byte hash>\n*                the inclusion proof, leaf's sibling first
 *   \n
 *   <the checkpoint note, verbatim>         checkpoint text, blank line, signature lines
 *
 * API
 *   formatTlogProof(p) / parseTlogProof(text)   strict; TLOG_PROOF_INVALID on any fault of the
 *                                               proof part, NOTE_MALFORMED / TLOG_CHECKPOINT_INVALID
 *                                               for the note and its checkpoint text (signatures are
 *                                               checked by verifyTlogProof, not here)
 *   verifyTlogProof(text, leafHash, trust)      certified(note, trust), then the leaf at `index`
 *                                               under that checkpoint: the whole check a kernel or
 *                                               an auditor needs for one entry
 */
import { CustodyError } from '../../proto/errors.js';
import { tlog as limits } from '../../proto/limits.js';
import { certified, parseCheckpoint, requireIncluded, type CertifiedCheckpoint, type CheckpointTrust } from './checkpoint.js';
import { HASH_BYTES } from './merkle.js';
import { decodeBase64Strict, encodeBase64, parseNote } from './note.js';

const HEADER = 'c2sp.org/tlog-proof@v1';
const INDEX_RE = /^index (0|[1-9][0-9]*)$/;

export interface TlogProof {
  /** Opaque, unauthenticated data for the application (absent when the line is omitted). */
  readonly extra?: Uint8Array;
  readonly index: number;
  readonly proof: readonly Uint8Array[];
  /** The cosigned checkpoint note, verbatim. */
  readonly note: string;
}

function invalid(why: string): never {
  throw new CustodyError('TLOG_PROOF_INVALID', `tlog-proof: ${why}`);
}

export function formatTlogProof(p: TlogProof): string {
  const extra = p.extra !== undefined ? `extra ${encodeBase64(p.extra)}\n` : '';
  const text = `${HEADER}\n${extra}index ${p.index}\n${p.proof.map((h) => `${encodeBase64(h)}\n`).join('')}\n${p.note}`;
  parseTlogProof(text);
  return text;
}

export function parseTlogProof(text: string): TlogProof {
  if (text.length > limits.proofTextBytesMax || Buffer.byteLength(text) > limits.proofTextBytesMax) invalid(`longer than ${limits.proofTextBytesMax} bytes`);
  const blank = text.indexOf('\n\n');
  if (blank < 0) invalid('no blank line before the checkpoint');
  const lines = text.slice(0, blank).split('\n');
  const note = text.slice(blank + 2);
  if (lines.shift() !== HEADER) invalid(`the first line is not ${HEADER}`);
  let extra: Uint8Array | undefined;
  if (lines[0]?.startsWith('extra ')) {
    extra = decodeBase64Strict(lines.shift()!.slice('extra '.length));
    if (extra === undefined || extra.length > limits.proofExtraBytesMax) invalid('extra is not canonical base64 within its bound');
  }
  const m = INDEX_RE.exec(lines.shift() ?? '');
  if (m === null) invalid('no "index <decimal>" line (no leading zeros)');
  const index = Number(m[1]);
  if (!Number.isSafeInteger(index) || index >= limits.treeSizeMax) invalid(`index ${m[1]} out of range`);
  if (lines.length > limits.proofHashesMax) invalid(`more than ${limits.proofHashesMax} proof hashes`);
  const proof = lines.map((l, i) => {
    const h = decodeBase64Strict(l);
    if (h === undefined || h.length !== HASH_BYTES) invalid(`proof line ${i + 1} is not canonical base64 of 32 bytes`);
    return h;
  });
  parseCheckpoint(parseNote(note).text);
  return { ...(extra !== undefined ? { extra } : {}), index, proof, note };
}

export interface VerifiedTlogProof extends CertifiedCheckpoint {
  readonly index: number;
  /** As carried, unauthenticated. */
  readonly extra?: Uint8Array;
}

/**
 * The checkpoint, when `text` proves `leaf` (a leaf hash) is entry `index` of a tree that a
 * quorum of `trust` certified. Refusals: those of parseTlogProof and certified, and
 * TLOG_PROOF_INVALID when the leaf is not proven under that checkpoint.
 */
export function verifyTlogProof(text: string, leaf: Uint8Array, trust: CheckpointTrust): VerifiedTlogProof {
  const p = parseTlogProof(text);
  const c = certified(p.note, trust);
  requireIncluded(c.checkpoint, p.index, leaf, p.proof);
  return { ...c, index: p.index, ...(p.extra !== undefined ? { extra: p.extra } : {}) };
}
