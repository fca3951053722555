/**
 * The decision a C2SP tlog-witness (https://c2sp.org/tlog-witness) makes on one add-checkpoint
 * request, as a pure function: the HTTP server, the clock and the store belong to the caller.
 *
 *   request body:  old <size>\n  <base64 consistency proof hash>\n*  \n  <checkpoint note>
 *   reply 200:     the witness's cosignature line(s), to append to the checkpoint note
 *
 * Message flow and safety argument. The witness keeps, per log origin, the latest checkpoint it
 * cosigned (size, root). It cosigns a new checkpoint only when (1) a quorum of the log's keys
 * signed it (for this product: the cluster's node keys and quorum, so no minority can feed it);
 * (2) the client names the witness's own latest size as `old` (409 with that size otherwise, so the
 * client can fetch a proof from there); (3) a consistency proof shows the witness's stored tree is a
 * prefix of the new one (422 otherwise), or, at equal size, the roots are equal (409 otherwise:
 * the log signed two trees of one size). Every checkpoint it ever cosigned for an origin therefore
 * lies on one append-only history: a majority of nodes that rewrites history cannot get this
 * witness's cosignature for the rewrite, and a reader whose policy requires the witness refuses it.
 *
 * The caller MUST make the check-and-update atomic per origin and persist `record` before replying
 * (the spec's race: two requests checked against the same old size must not both be cosigned and
 * the larger then rolled back). The cosignature's timestamp is the signer's (see
 * note.ts cosignatureSigner): this module reads no clock.
 *
 * API
 *   parseAddCheckpoint(body)                              { oldSize, proof, note }, strict
 *   addCheckpoint(body, logs, latest, signers)            WitnessVerdict
 */
import type { ReasonCode } from '../../proto/reasons.js';
import { isCustodyError } from '../../proto/errors.js';
import { tlog as limits } from '../../proto/limits.js';
import { certified, parseCheckpoint, type Checkpoint, type CheckpointTrust } from './checkpoint.js';
import { HASH_BYTES, verifyConsistency } from './merkle.js';
import { decodeBase64Strict, parseNote, addSignatures, type NoteSigner } from './note.js';
import { bytesEqual } from '../encoding.js';

/** The latest checkpoint a witness cosigned for one origin. */
export interface WitnessRecord { readonly size: number; readonly root: Uint8Array }

export type WitnessVerdict =
  | { readonly status: 200; readonly checkpoint: Checkpoint; readonly record: WitnessRecord; readonly body: string }
  | { readonly status: 400 | 403 | 404 | 409 | 422; readonly reason: ReasonCode; readonly detail: string; readonly body: string };

export interface AddCheckpointRequest { readonly oldSize: number; readonly proof: readonly Uint8Array[]; readonly note: string }

/** The spec allows at most 63 proof lines; our proof bound is the tighter of the two. */
const WITNESS_PROOF_LINES_MAX = Math.min(63, limits.proofHashesMax);

export function parseAddCheckpoint(body: string): AddCheckpointRequest | { error: string } {
  if (Buffer.byteLength(body) > limits.proofTextBytesMax) return { error: `body over ${limits.proofTextBytesMax} bytes` };
  const blank = body.indexOf('\n\n');
  if (blank < 0) return { error: 'no blank line before the checkpoint' };
  const lines = body.slice(0, blank).split('\n');
  const m = /^old (0|[1-9][0-9]*)$/.exec(lines.shift() ?? '');
  if (m === null || !Number.isSafeInteger(Number(m[1]))) return { error: 'the first line is not "old <size>"' };
  if (lines.length > WITNESS_PROOF_LINES_MAX) return { error: `more than ${WITNESS_PROOF_LINES_MAX} proof lines` };
  const proof: Uint8Array[] = [];
  for (const l of lines) {
    const h = decodeBase64Strict(l);
    if (h === undefined || h.length !== HASH_BYTES) return { error: 'a proof line is not canonical base64 of 32 bytes' };
    proof.push(h);
  }
  return { oldSize: Number(m[1]), proof, note: body.slice(blank + 2) };
}

/**
 * Decides one add-checkpoint request. `logs(origin)` is the trust the witness has in that log
 * (undefined: unknown log), `latest(origin)` its latest cosigned record (undefined: none yet),
 * `signers` its cosignature signers (each with the timestamp the caller chose).
 */
export function addCheckpoint(
  body: string,
  logs: (origin: string) => CheckpointTrust | undefined,
  latest: (origin: string) => WitnessRecord | undefined,
  signers: readonly NoteSigner[],
): WitnessVerdict {
  const no = (status: 400 | 403 | 404 | 409 | 422, reason: ReasonCode, detail: string, text = ''): WitnessVerdict => ({ status, reason, detail, body: text });
  const req = parseAddCheckpoint(body);
  if ('error' in req) return no(400, 'TLOG_CHECKPOINT_INVALID', req.error);
  let origin: string;
  try {
    origin = parseCheckpoint(parseNote(req.note).text).origin;
  } catch (e) {
    return no(400, isCustodyError(e) ? e.reason : 'TLOG_CHECKPOINT_INVALID', isCustodyError(e) ? e.detail : 'malformed checkpoint');
  }
  const trust = logs(origin);
  if (trust === undefined) return no(404, 'TLOG_CHECKPOINT_INVALID', `unknown log ${JSON.stringify(origin)}`);
  let cp: Checkpoint;
  try {
    cp = certified(req.note, trust).checkpoint;
  } catch (e) {
    // A trust the witness cannot satisfy (CONFIG_INVALID) is its operator's fault, not the client's.
    if (!isCustodyError(e) || e.reason === 'CONFIG_INVALID') throw e;
    return no(e.reason === 'NOTE_MALFORMED' || e.reason === 'TLOG_CHECKPOINT_INVALID' ? 400 : 403, e.reason, e.detail);
  }
  if (req.oldSize > cp.size) return no(400, 'TLOG_CHECKPOINT_INVALID', `old size ${req.oldSize} is above the checkpoint size ${cp.size}`);
  const last = latest(origin) ?? { size: 0, root: new Uint8Array(HASH_BYTES) };
  if (req.oldSize !== last.size) return no(409, 'TLOG_WITNESS_CONFLICT', `the latest cosigned size is ${last.size}, not ${req.oldSize}`, `${last.size}\n`);
  if (req.oldSize === 0 ? req.proof.length !== 0 : req.oldSize !== cp.size && !verifyConsistency(last.size, cp.size, last.root, cp.root, req.proof)) {
    return no(422, 'TLOG_PROOF_INVALID', `no valid consistency proof from ${last.size} to ${cp.size}`);
  }
  if (req.oldSize === cp.size && req.oldSize !== 0 && (req.proof.length !== 0 || !bytesEqual(last.root, cp.root))) {
    return bytesEqual(last.root, cp.root)
      ? no(422, 'TLOG_PROOF_INVALID', 'a proof between equal sizes must be empty')
      : no(409, 'EQUIVOCATION', `the log signed two roots for size ${cp.size}`, `${last.size}\n`);
  }
  const cosigned = addSignatures(req.note, signers);
  const lines = cosigned.split('\n').filter((l) => signers.some((s) => l.startsWith(`\u2014 ${s.name} `))).map((l) => `${l}\n`).join('');
  return { status: 200, checkpoint: cp, record: { size: cp.size, root: cp.root }, body: lines };
}
