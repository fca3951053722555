/**
 * The kernel's wire format: length-prefixed protobuf frames (proto/kernel.proto) and the strict
 * validation that turns a decoded frame into a typed request. Pure: no sockets here, so the
 * parser is tested byte by byte without a server (kernel/server.ts owns the socket).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { CustodyError } from '../proto/errors.js';
import { kernel as limits, shareBackup as backupLimits, tx as txLimits } from '../proto/limits.js';
import { isReasonCode, type ReasonCode } from '../proto/reasons.js';
import { tlog as tlogLimits } from '../proto/limits.js';
import type { EntryCertificate } from '../ledger/tlog/ledger-log.js';

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

function protoPath(): string {
  for (const rel of ['../../proto/kernel.proto', '../proto/kernel.proto']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error('proto/kernel.proto not found beside the kernel build');
}

export const schema: protobuf.Root = protobuf.loadSync(protoPath());
const RequestType = schema.lookupType('custody.kernel.v1.Request');
const ResponseType = schema.lookupType('custody.kernel.v1.Response');

// ---------------------------------------------------------------------------------------------
// Typed messages (mirror proto/kernel.proto; snake_case fields become camelCase)
// ---------------------------------------------------------------------------------------------

export interface Participant { identifier: string; nodeId: string; transportPublicKey: Uint8Array }
export interface Round1Package { identifier: string; commitment: Uint8Array[]; proofOfKnowledge: Uint8Array }
export interface SealedPackage { sender: string; recipient: string; enc: Uint8Array; ciphertext: Uint8Array }
export interface VerifyingShare { identifier: string; point: Uint8Array }
export interface PublicPackage { min: number; max: number; commitments: Uint8Array[]; verifyingShares: VerifyingShare[] }
export interface Permit { keyId: string; keyEpoch: number; requestId: string; messageDigest: Uint8Array; ledgerIndex: number }
export interface SigningCommitment { identifier: string; hiding: Uint8Array; binding: Uint8Array }
export interface CommittedDecision { decision: Uint8Array; ledgerIndex: number; stampMs: number }
export interface Deal { dealer: string; commitments: Uint8Array[]; package: SealedPackage }

export type RequestBody =
  | { kind: 'status' }
  | { kind: 'governance'; decisions: CommittedDecision[] }
  | { kind: 'fence'; passport: string; reason: string }
  | { kind: 'reconcile'; keyId: string; ledgerConsumedCounter: number }
  | { kind: 'publicPackage'; keyId: string; epoch: number }
  | { kind: 'dkgBegin'; ceremonyId: string; keyId: string; suite: string; min: number; participants: Participant[]; identifier: string }
  | { kind: 'dkgRound2'; ceremonyId: string; round1: Round1Package[] }
  | { kind: 'dkgFinish'; ceremonyId: string; round1: Round1Package[]; packages: SealedPackage[] }
  | {
      kind: 'redealBegin'; ceremonyId: string; keyId: string; fromEpoch: number; toEpoch: number; dealers: string[];
      min: number; committee: Participant[]; suite: string; current: PublicPackage; identifier: string;
    }
  | { kind: 'redealFinish'; ceremonyId: string; deals: Deal[] }
  | { kind: 'nonces'; keyId: string; keyEpoch: number; count: number }
  /** Back up this kernel's share of a key epoch to the decided custodians (kernel.ts shareBackup). */
  | { kind: 'shareBackup'; keyId: string; epoch: number; recipients: string[] }
  /** Import this kernel's share recovered from its backup (kernel/recovery.ts, kernel.ts importShare). */
  | { kind: 'importShare'; keyId: string; epoch: number; identifier: string; public: PublicPackage; sealed: SealedPackage; ledgerConsumedCounter: number }
  /**
   * Share repair (kernel/repair.ts, kernel.ts repairDeal / repairSum / repairFinish), each step only
   * for the repair a RepairAuthorized this kernel verified names (`ceremonyId` is its cid, hex).
   * Step 1, a helper: its deltas, sealed to each other helper (`helpers`: every helper of the
   * decision with its transport key, this kernel included).
   */
  | { kind: 'repairDeal'; ceremonyId: string; keyId: string; epoch: number; helpers: Participant[] }
  /** Step 2, a helper: its sum over one delta of every other helper, sealed to the target. */
  | { kind: 'repairSum'; ceremonyId: string; keyId: string; epoch: number; deltas: SealedPackage[]; target: Participant }
  /**
   * Step 3, the target: its share from one sum of every helper, checked against its verifying share
   * in `public` (a helper's package of the epoch) and sealed under the profile. Answered keyPackage.
   */
  | { kind: 'repairFinish'; ceremonyId: string; keyId: string; epoch: number; public: PublicPackage; sums: SealedPackage[]; ledgerConsumedCounter: number }
  /**
   * Every message of one act under one permit (permit.messageDigest = messagesDigest(messages),
   * ledger/tx/messages.ts): message i is signed with this kernel's presigned nonce counters[i]
   * and the commitment list lists[i]; counters rise strictly, every list names the same signers.
   */
  | {
      kind: 'sign'; permit: Permit; messages: Uint8Array[]; lists: SigningCommitment[][]; counters: number[];
      ledgerConsumedCounter: number;
      /** What the signature rests on (kernel/certificate.ts); null is refused CHECKPOINT_NOT_CERTIFIED there. */
      certificate?: EntryCertificate | null;
    };

export interface Request { callId: number; body: RequestBody }

export interface KeyInfo {
  keyId: string; epoch: number; suite: string; identifier: string; groupPublicKey: Uint8Array; active: boolean;
  commitmentsAvailable: number; consumedCounter: number;
}
export interface NonceCommitment { counter: number; identifier: string; hiding: Uint8Array; binding: Uint8Array }

export type ResponseBody =
  | { kind: 'error'; reason: ReasonCode; detail: string }
  | {
      kind: 'status'; nodeId: string; profile: string; transportPublicKey: Uint8Array; keys: KeyInfo[];
      governanceIndex: number; frozen: boolean; fenced: boolean;
      /** The certified checkpoint this kernel follows, per cluster incarnation (kernel/certificate.ts checkFollows): its tree size. */
      followed: { incarnation: string; size: number }[];
      /** The RecoveryAuthorized grants this kernel verified and has not used yet (kernel.ts importShare consumes one). */
      recoveriesPending: { keyId: string; epoch: number; identifier: string; ledgerIndex: number }[];
    }
  | { kind: 'governance'; governanceIndex: number; applied: number; frozen: boolean; fenced: boolean }
  | { kind: 'dkgRound1'; package: Round1Package }
  | { kind: 'dkgRound2'; packages: SealedPackage[] }
  | { kind: 'keyPackage'; keyId: string; epoch: number; suite: string; identifier: string; public: PublicPackage }
  | { kind: 'redealDealt'; dealer: string; commitments: Uint8Array[]; packages: SealedPackage[] }
  | { kind: 'nonceCommitments'; commitments: NonceCommitment[] }
  /** One signature share per message of the request, in its order, with the counters that signed them. */
  | { kind: 'signatureShares'; identifier: string; sigShares: Uint8Array[]; counters: number[] }
  | { kind: 'reconcile'; consumedCounter: number; burned: number }
  | { kind: 'shareBackup'; keyId: string; epoch: number; identifier: string; file: Uint8Array; recipientsDigest: Uint8Array }
  /**
   * A helper's deltas (repair step 1), one per other helper, each sealed to it, and the key package
   * they are bound to (with any enrolled identifier): the one the target's step 3 needs.
   */
  | { kind: 'repairDealt'; identifier: string; packages: SealedPackage[]; public: PublicPackage }
  /** A helper's sum (repair step 2), sealed to the target. */
  | { kind: 'repairSummed'; identifier: string; package: SealedPackage };

export interface Response { callId: number; body: ResponseBody }

// ---------------------------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------------------------

export const FRAME_HEADER_BYTES = 4;

export function frame(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

export type FrameEvent =
  | { kind: 'frame'; payload: Buffer }
  /** A header announced more than the bound; the stream cannot be trusted further. */
  | { kind: 'tooLarge'; announced: number };

/**
 * Byte-level frame parser, a pure state machine: feed chunks, get whole frames. Memory is
 * bounded by `bytesMax` + header: a frame announcing more is reported at once, before any of
 * its body is buffered.
 */
export class FrameDecoder {
  private buf: Buffer = Buffer.alloc(0);
  private dead = false;
  constructor(private readonly bytesMax: number) {}

  push(chunk: Buffer): FrameEvent[] {
    if (this.dead) return [];
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: FrameEvent[] = [];
    while (this.buf.length >= FRAME_HEADER_BYTES) {
      const n = this.buf.readUInt32BE(0);
      if (n > this.bytesMax) {
        this.dead = true;
        this.buf = Buffer.alloc(0);
        out.push({ kind: 'tooLarge', announced: n });
        return out;
      }
      if (this.buf.length < FRAME_HEADER_BYTES + n) break;
      out.push({ kind: 'frame', payload: this.buf.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + n) });
      this.buf = this.buf.subarray(FRAME_HEADER_BYTES + n);
    }
    return out;
  }

  /** Bytes of an incomplete frame still held (non-zero at end of stream means truncation). */
  get pending(): number {
    return this.buf.length;
  }
}

// ---------------------------------------------------------------------------------------------
// Decoding and validation
// ---------------------------------------------------------------------------------------------

function reject(detail: string): never {
  throw new CustodyError('PAYLOAD_REJECTED', detail);
}

type Obj = Record<string, unknown>;

function obj(x: unknown, what: string): Obj {
  if (x === null || typeof x !== 'object' || Array.isArray(x)) reject(`${what} is missing`);
  return x as Obj;
}

function str(o: Obj, f: string, what: string, opts: { empty?: boolean } = {}): string {
  const v = o[f];
  if (typeof v !== 'string') reject(`${what}.${f} is missing`);
  if (!opts.empty && v.length === 0) reject(`${what}.${f} is empty`);
  if (Buffer.byteLength(v) > limits.idBytesMax) reject(`${what}.${f} is longer than ${limits.idBytesMax} bytes`);
  if (!/^[\x21-\x7e]*$/.test(v)) reject(`${what}.${f} has characters outside printable ASCII`);
  return v;
}

/** Human text (reasons): printable ASCII and spaces, bounded. */
function text(o: Obj, f: string, what: string): string {
  const v = o[f];
  if (typeof v !== 'string') reject(`${what}.${f} is missing`);
  if (Buffer.byteLength(v) > TEXT_BYTES_MAX) reject(`${what}.${f} is longer than ${TEXT_BYTES_MAX} bytes`);
  if (!/^[\x20-\x7e]*$/.test(v)) reject(`${what}.${f} has characters outside printable ASCII`);
  return v;
}

function bytes(o: Obj, f: string, what: string, lenMin: number, lenMax: number): Uint8Array {
  const v = o[f];
  if (!(v instanceof Uint8Array)) reject(`${what}.${f} is missing`);
  if (v.length < lenMin || v.length > lenMax) reject(`${what}.${f} has ${v.length} bytes, expected ${lenMin}..${lenMax}`);
  return new Uint8Array(v);
}

function u(o: Obj, f: string, what: string, min: number, max: number): number {
  const raw = o[f];
  const s = typeof raw === 'string' ? raw : typeof raw === 'number' ? String(raw) : undefined;
  if (s === undefined || !/^[0-9]+$/.test(s)) reject(`${what}.${f} is missing`);
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < min || n > max) reject(`${what}.${f} = ${s} is outside ${min}..${max}`);
  return n;
}

function arr(o: Obj, f: string, what: string, min: number, max: number): unknown[] {
  const v = o[f];
  if (!Array.isArray(v)) reject(`${what}.${f} is missing`);
  if (v.length < min || v.length > max) reject(`${what}.${f} has ${v.length} entries, expected ${min}..${max}`);
  return v;
}

/** Points are at most 33 bytes (SEC1 compressed) in every suite; scalars 32. */
const POINT_BYTES_MAX = 33;
const U32 = 0xffff_ffff;
const TEXT_BYTES_MAX = 512;
const EPOCH_MAX = U32;
const INDEX_MAX = Number.MAX_SAFE_INTEGER;
const P = limits.participantsMax;

const participant = (x: unknown, w: string): Participant => {
  const o = obj(x, w);
  return { identifier: str(o, 'identifier', w), nodeId: str(o, 'nodeId', w), transportPublicKey: bytes(o, 'transportPublicKey', w, 32, 32) };
};
const points = (o: Obj, f: string, w: string): Uint8Array[] =>
  arr(o, f, w, 1, P).map((b, i) => bytes({ b }, 'b', `${w}.${f}[${i}]`, 32, POINT_BYTES_MAX));
const round1 = (x: unknown, w: string): Round1Package => {
  const o = obj(x, w);
  return { identifier: str(o, 'identifier', w), commitment: points(o, 'commitment', w), proofOfKnowledge: bytes(o, 'proofOfKnowledge', w, 64, 65) };
};
const sealed = (x: unknown, w: string): SealedPackage => {
  const o = obj(x, w);
  return {
    sender: str(o, 'sender', w), recipient: str(o, 'recipient', w), enc: bytes(o, 'enc', w, 32, 32),
    ciphertext: bytes(o, 'ciphertext', w, 1, 1024),
  };
};
const publicPackage = (x: unknown, w: string): PublicPackage => {
  const o = obj(x, w);
  return {
    min: u(o, 'min', w, 2, P), max: u(o, 'max', w, 2, P), commitments: points(o, 'commitments', w),
    verifyingShares: arr(o, 'verifyingShares', w, 2, P).map((v, i) => {
      const vo = obj(v, `${w}.verifyingShares[${i}]`);
      return { identifier: str(vo, 'identifier', w), point: bytes(vo, 'point', w, 32, POINT_BYTES_MAX) };
    }),
  };
};

/** A certificate's note (bounded, UTF-8 as protobuf decoded it) and its inclusions, each within its bounds. */
const certificate = (x: unknown, w: string): EntryCertificate => {
  const o = obj(x, w);
  const note = o['note'];
  if (typeof note !== 'string' || note.length === 0) reject(`${w}.note is missing`);
  if (Buffer.byteLength(note) > tlogLimits.noteBytesMax) reject(`${w}.note is longer than ${tlogLimits.noteBytesMax} bytes`);
  return {
    note,
    inclusions: arr(o, 'inclusions', w, 1, tlogLimits.certificateInclusionsMax).map((x, i) => {
      const iw = `${w}.inclusions[${i}]`;
      const io = obj(x, iw);
      const event = bytes(io, 'event', iw, 1, tlogLimits.certificateEntryBytesMax);
      return {
        leafIndex: u(io, 'leafIndex', iw, 0, tlogLimits.treeSizeMax - 1),
        entry: { index: u(io, 'index', iw, 1, INDEX_MAX), stampMs: u(io, 'stampMs', iw, 0, INDEX_MAX), event },
        proof: arr(io, 'proof', iw, 0, tlogLimits.proofHashesMax).map((h, j) => bytes({ h }, 'h', `${iw}.proof[${j}]`, 32, 32)),
      };
    }),
    ...(o['consistency'] === null || o['consistency'] === undefined ? {} : (() => {
      const cw = `${w}.consistency`;
      const co = obj(o['consistency'], cw);
      return {
        consistency: {
          size: u(co, 'size', cw, 1, tlogLimits.treeSizeMax),
          proof: arr(co, 'proof', cw, 0, tlogLimits.proofHashesMax).map((h, j) => bytes({ h }, 'h', `${cw}.proof[${j}]`, 32, 32)),
        },
      };
    })()),
  };
};

function validateBody(o: Obj): RequestBody {
  const which = o['body'];
  switch (which) {
    case 'status':
      return { kind: 'status' };
    case 'governance': {
      const b = obj(o['governance'], 'governance');
      const decisions = arr(b, 'decisions', 'governance', 1, limits.decisionsPerUpdateMax).map((d, i) => {
        const w = `governance.decisions[${i}]`;
        const dob = obj(d, w);
        return {
          decision: bytes(dob, 'decision', w, 1, limits.frameBytesMax), ledgerIndex: u(dob, 'ledgerIndex', w, 1, INDEX_MAX),
          stampMs: u(dob, 'stampMs', w, 0, INDEX_MAX),
        };
      });
      return { kind: 'governance', decisions };
    }
    case 'reconcile': {
      const b = obj(o['reconcile'], 'reconcile');
      return { kind: 'reconcile', keyId: str(b, 'keyId', 'reconcile'), ledgerConsumedCounter: u(b, 'ledgerConsumedCounter', 'reconcile', 0, INDEX_MAX) };
    }
    case 'publicPackage': {
      const w = 'publicPackage';
      const b = obj(o[w], w);
      return { kind: w, keyId: str(b, 'keyId', w), epoch: u(b, 'epoch', w, 0, EPOCH_MAX) };
    }
    case 'fence': {
      const b = obj(o['fence'], 'fence');
      const reason = text(b, 'reason', 'fence');
      if (reason.length === 0) reject('fence.reason is empty: a fence says why');
      return { kind: 'fence', passport: str(b, 'passport', 'fence'), reason };
    }
    case 'dkgBegin': {
      const w = 'dkgBegin';
      const b = obj(o[w], w);
      return {
        kind: w, ceremonyId: str(b, 'ceremonyId', w), keyId: str(b, 'keyId', w), suite: str(b, 'suite', w),
        min: u(b, 'min', w, 2, P), participants: arr(b, 'participants', w, 2, P).map((p, i) => participant(p, `${w}.participants[${i}]`)),
        identifier: str(b, 'identifier', w),
      };
    }
    case 'dkgRound2': {
      const w = 'dkgRound2';
      const b = obj(o[w], w);
      return { kind: w, ceremonyId: str(b, 'ceremonyId', w), round1: arr(b, 'round1', w, 1, P).map((r, i) => round1(r, `${w}.round1[${i}]`)) };
    }
    case 'dkgFinish': {
      const w = 'dkgFinish';
      const b = obj(o[w], w);
      return {
        kind: w, ceremonyId: str(b, 'ceremonyId', w), round1: arr(b, 'round1', w, 1, P).map((r, i) => round1(r, `${w}.round1[${i}]`)),
        packages: arr(b, 'packages', w, 1, P).map((s, i) => sealed(s, `${w}.packages[${i}]`)),
      };
    }
    case 'redealBegin': {
      const w = 'redealBegin';
      const b = obj(o[w], w);
      return {
        kind: w, ceremonyId: str(b, 'ceremonyId', w), keyId: str(b, 'keyId', w), fromEpoch: u(b, 'fromEpoch', w, 0, EPOCH_MAX),
        toEpoch: u(b, 'toEpoch', w, 0, EPOCH_MAX),
        dealers: arr(b, 'dealers', w, 2, P).map((d, i) => str({ d }, 'd', `${w}.dealers[${i}]`)),
        min: u(b, 'min', w, 2, P), committee: arr(b, 'committee', w, 2, P).map((p, i) => participant(p, `${w}.committee[${i}]`)),
        suite: str(b, 'suite', w), current: publicPackage(b['current'], `${w}.current`), identifier: str(b, 'identifier', w, { empty: true }),
      };
    }
    case 'redealFinish': {
      const w = 'redealFinish';
      const b = obj(o[w], w);
      return {
        kind: w, ceremonyId: str(b, 'ceremonyId', w),
        deals: arr(b, 'deals', w, 2, P).map((d, i) => {
          const dw = `${w}.deals[${i}]`;
          const dob = obj(d, dw);
          return { dealer: str(dob, 'dealer', dw), commitments: points(dob, 'commitments', dw), package: sealed(dob['package'], `${dw}.package`) };
        }),
      };
    }
    case 'repairDeal': {
      const w = 'repairDeal';
      const b = obj(o[w], w);
      return {
        kind: w, ceremonyId: str(b, 'ceremonyId', w), keyId: str(b, 'keyId', w), epoch: u(b, 'epoch', w, 0, EPOCH_MAX),
        helpers: arr(b, 'helpers', w, 2, limits.repairHelpersMax).map((p, i) => participant(p, `${w}.helpers[${i}]`)),
      };
    }
    case 'repairSum': {
      const w = 'repairSum';
      const b = obj(o[w], w);
      return {
        kind: w, ceremonyId: str(b, 'ceremonyId', w), keyId: str(b, 'keyId', w), epoch: u(b, 'epoch', w, 0, EPOCH_MAX),
        deltas: arr(b, 'deltas', w, 1, limits.repairHelpersMax - 1).map((p, i) => sealed(p, `${w}.deltas[${i}]`)),
        target: participant(b['target'], `${w}.target`),
      };
    }
    case 'repairFinish': {
      const w = 'repairFinish';
      const b = obj(o[w], w);
      return {
        kind: w, ceremonyId: str(b, 'ceremonyId', w), keyId: str(b, 'keyId', w), epoch: u(b, 'epoch', w, 0, EPOCH_MAX),
        public: publicPackage(b['public'], `${w}.public`), sums: arr(b, 'sums', w, 2, limits.repairHelpersMax).map((p, i) => sealed(p, `${w}.sums[${i}]`)),
        ledgerConsumedCounter: u(b, 'ledgerConsumedCounter', w, 0, INDEX_MAX),
      };
    }
    case 'shareBackup': {
      const w = 'shareBackup';
      const b = obj(o[w], w);
      return {
        kind: w, keyId: str(b, 'keyId', w), epoch: u(b, 'epoch', w, 0, EPOCH_MAX),
        recipients: arr(b, 'recipients', w, 1, backupLimits.recipientsMax).map((r, i) => str({ r }, 'r', `${w}.recipients[${i}]`)),
      };
    }
    case 'importShare': {
      const w = 'importShare';
      const b = obj(o[w], w);
      return {
        kind: w, keyId: str(b, 'keyId', w), epoch: u(b, 'epoch', w, 0, EPOCH_MAX), identifier: str(b, 'identifier', w),
        public: publicPackage(b['public'], `${w}.public`), sealed: sealed(b['sealed'], `${w}.sealed`),
        ledgerConsumedCounter: u(b, 'ledgerConsumedCounter', w, 0, INDEX_MAX),
      };
    }
    case 'nonces': {
      const w = 'nonces';
      const b = obj(o[w], w);
      return { kind: w, keyId: str(b, 'keyId', w), keyEpoch: u(b, 'keyEpoch', w, 0, EPOCH_MAX), count: u(b, 'count', w, 1, limits.nonceBatchMax) };
    }
    case 'sign': {
      const w = 'sign';
      const b = obj(o[w], w);
      // A signing step without a permit is refused as such, not as a malformed payload.
      if (b['permit'] === null || b['permit'] === undefined) throw new CustodyError('PERMIT_MISSING', 'the signing request carries no permit');
      const p = obj(b['permit'], 'permit');
      return {
        kind: w,
        permit: {
          keyId: str(p, 'keyId', 'permit'), keyEpoch: u(p, 'keyEpoch', 'permit', 0, EPOCH_MAX), requestId: str(p, 'requestId', 'permit'),
          messageDigest: bytes(p, 'messageDigest', 'permit', 32, 32), ledgerIndex: u(p, 'ledgerIndex', 'permit', 1, INDEX_MAX),
        },
        messages: arr(b, 'messages', w, 1, txLimits.messagesPerActMax).map((m, i) => bytes({ m }, 'm', `${w}.messages[${i}]`, 1, limits.messageBytesMax)),
        lists: arr(b, 'lists', w, 1, txLimits.messagesPerActMax).map((l, i) => {
          const lw = `${w}.lists[${i}]`;
          return arr(obj(l, lw), 'commitments', lw, 2, P).map((c, j) => {
            const cw = `${lw}.commitments[${j}]`;
            const co = obj(c, cw);
            return { identifier: str(co, 'identifier', cw), hiding: bytes(co, 'hiding', cw, 32, POINT_BYTES_MAX), binding: bytes(co, 'binding', cw, 32, POINT_BYTES_MAX) };
          });
        }),
        counters: arr(b, 'counters', w, 1, txLimits.messagesPerActMax).map((c, i) => u({ c }, 'c', `${w}.counters[${i}]`, 1, INDEX_MAX)),
        ledgerConsumedCounter: u(b, 'ledgerConsumedCounter', w, 0, INDEX_MAX),
        certificate: b['certificate'] === null || b['certificate'] === undefined ? null : certificate(b['certificate'], `${w}.certificate`),
      };
    }
    default:
      reject('the request names no known operation');
  }
}

/** Decodes one frame payload. FRAME_MALFORMED if it is not a Request; PAYLOAD_REJECTED if invalid. */
export function decodeRequest(payload: Uint8Array): Request {
  let msg: protobuf.Message;
  try {
    msg = RequestType.decode(payload);
  } catch (e) {
    throw new CustodyError('FRAME_MALFORMED', `the frame is not a kernel Request: ${(e as Error).message}`);
  }
  const o = RequestType.toObject(msg, { longs: String, defaults: true, oneofs: true, arrays: true }) as Obj;
  let callId = 0;
  try {
    callId = u(o, 'callId', 'request', 0, INDEX_MAX);
  } catch {
    throw new CustodyError('PAYLOAD_REJECTED', 'call_id is out of range');
  }
  try {
    return { callId, body: validateBody(o) };
  } catch (e) {
    if (e instanceof CustodyError) throw Object.assign(e, { callId });
    throw e;
  }
}

export function encodeRequest(req: Request): Uint8Array {
  const { kind, ...fields } = req.body;
  // A list of lists has no protobuf form: each message's list travels as a CommitmentList; an
  // inclusion's entry travels as its three fields.
  const wire = req.body.kind === 'sign'
    ? {
        ...fields, lists: req.body.lists.map((commitments) => ({ commitments })),
        certificate: req.body.certificate === null || req.body.certificate === undefined ? null : {
          note: req.body.certificate.note,
          inclusions: req.body.certificate.inclusions.map((i) => ({ leafIndex: i.leafIndex, index: i.entry.index, stampMs: i.entry.stampMs, event: i.entry.event, proof: [...i.proof] })),
          ...(req.body.certificate.consistency === undefined ? {} : { consistency: { size: req.body.certificate.consistency.size, proof: [...req.body.certificate.consistency.proof] } }),
        },
      }
    : fields;
  const m = RequestType.fromObject({ callId: req.callId, [kind]: wire });
  return RequestType.encode(m).finish();
}

export function encodeResponse(res: Response): Uint8Array {
  const { kind, ...fields } = res.body;
  const m = ResponseType.fromObject({ callId: res.callId, [kind]: fields });
  const out = ResponseType.encode(m).finish();
  if (out.length > limits.responseBytesMax) {
    return encodeResponse({ callId: res.callId, body: { kind: 'error', reason: 'LIMIT_EXCEEDED', detail: 'response exceeds its bound' } });
  }
  return out;
}

/** The client side: a Response payload to a typed response. */
export function decodeResponse(payload: Uint8Array): Response {
  let msg: protobuf.Message;
  try {
    msg = ResponseType.decode(payload);
  } catch (e) {
    throw new CustodyError('FRAME_MALFORMED', `the frame is not a kernel Response: ${(e as Error).message}`);
  }
  const o = ResponseType.toObject(msg, { longs: Number, defaults: true, oneofs: true, arrays: true }) as Obj;
  const kind = o['body'];
  if (typeof kind !== 'string') throw new CustodyError('FRAME_MALFORMED', 'response without a body');
  const body = { kind, ...obj(o[kind], kind) } as ResponseBody;
  if (body.kind === 'error' && !isReasonCode(body.reason)) throw new CustodyError('FRAME_MALFORMED', `unknown reason code ${String(body.reason)}`);
  return { callId: Number(o['callId']), body };
}
