/**
 * The cluster snapshot file: a consistent copy of the replicated state at one applied index, as
 * `custody admin snapshot save` writes it and `custody cluster restore` reads it.
 *
 *   file    = magic "CUSTSNAP" | version:u8 (=1) | frame(H) | frame(C)* | frame(T)
 *   frame   = kind:u8 | length:u32be | payload
 *     H  header, first and once: UTF-8 JSON SnapshotHeader (cluster id, applied index, term,
 *        state root, Raft membership, the ledger's node roster, the node it was taken from)
 *     C  one chunk of the application's state, in order; at most backup.chunkBytes each
 *     T  trailer, last and once: stateBytes:u64be | chunks:u32be | sha256:32
 *        sha256 is SHA-256 over every byte of the file before the trailer frame (magic, version,
 *        header, chunks), so the header is covered as well as the body
 *
 * Why a stream of chunks with a trailing digest rather than a length and digest up front: the
 * state is read through the Application interface (raft/driver.ts), whose snapshot may be one
 * buffer or a stream of chunks from the store; a writer that learns the size only at the end can
 * still write the file in one pass, and a reader can verify it in one pass with bounded memory.
 * A file that ends anywhere before its trailer, has bytes after it, or whose digest, sizes or
 * framing disagree is refused SNAPSHOT_INVALID with the byte offset of the first problem.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { CustodyError } from '../../proto/errors.js';
import { backup as limits } from '../../proto/limits.js';

export const SNAPSHOT_MAGIC = Buffer.from('CUSTSNAP', 'ascii');
export const SNAPSHOT_VERSION = 1;
export const SNAPSHOT_FORMAT = 'custody-snapshot/v1';
const FRAME_HEAD_BYTES = 5;
const TRAILER_BYTES = 8 + 4 + 32;
const KIND_HEADER = 0x48;
const KIND_CHUNK = 0x43;
const KIND_TRAILER = 0x54;

/** What the header says about the state the file carries. */
export interface SnapshotHeader {
  readonly format: typeof SNAPSHOT_FORMAT;
  /** The ledger's cluster id (from its genesis). */
  readonly clusterId: string;
  /** The incarnation of the cluster the copy was taken from ('' for a cluster never restored). */
  readonly incarnation: string;
  /** The Raft index the state was applied up to, and that entry's term. */
  readonly index: number;
  readonly term: number;
  /** The ledger's state root at `index` (hex), identical on every node at that index. */
  readonly stateRoot: string;
  /** The ledger's own entry count at `index` (its receipts and permits name these indexes). */
  readonly ledgerIndex: number;
  /** Raft membership at `index`. */
  readonly membership: { readonly voters: readonly string[]; readonly learners: readonly string[] };
  /** Node ids on the ledger's roster (the nodes a restored cluster may be made of). */
  readonly nodes: readonly string[];
  /** The node that served the copy, and its wall clock then (informational). */
  readonly takenFrom: string;
  readonly takenAtMs: number;
  /**
   * With an archive (node/backup/body.ts): the bytes of the application's snapshot at the start
   * of the body, and the archived records that follow it. Absent together for an application
   * that keeps its ended acts in its state.
   */
  readonly appStateBytes?: number;
  readonly archivedRecords?: number;
}

export interface SnapshotSummary {
  readonly header: SnapshotHeader;
  readonly stateBytes: number;
  readonly chunks: number;
  /** Hex SHA-256 from the trailer (verified). */
  readonly sha256: string;
  readonly fileBytes: number;
}

function frame(kind: number, payload: Uint8Array): Buffer {
  const b = Buffer.alloc(FRAME_HEAD_BYTES + payload.length);
  b[0] = kind;
  b.writeUInt32BE(payload.length, 1);
  b.set(payload, FRAME_HEAD_BYTES);
  return b;
}

/**
 * Produces the bytes of a snapshot file piece by piece: `start(header)`, `chunk(bytes)` for each
 * piece of state (split to backup.chunkBytes), `finish()`. Each returns the bytes to append.
 */
export class SnapshotEncoder {
  private readonly hash: Hash = createHash('sha256');
  private stateBytes = 0;
  private chunks = 0;
  private state: 'new' | 'body' | 'done' = 'new';

  start(h: SnapshotHeader): Buffer {
    if (this.state !== 'new') throw new CustodyError('INTERNAL', 'snapshot header written twice');
    const json = Buffer.from(JSON.stringify(checkHeader(h, 'header')), 'utf8');
    if (json.length > limits.headerBytesMax) throw new CustodyError('LIMIT_EXCEEDED', `snapshot header of ${json.length} bytes exceeds ${limits.headerBytesMax}`);
    this.state = 'body';
    return this.take(Buffer.concat([SNAPSHOT_MAGIC, Buffer.from([SNAPSHOT_VERSION]), frame(KIND_HEADER, json)]));
  }

  /** Frames for `data`, split into chunks of at most backup.chunkBytes. */
  chunk(data: Uint8Array): Buffer[] {
    if (this.state !== 'body') throw new CustodyError('INTERNAL', 'snapshot chunk outside the body');
    const out: Buffer[] = [];
    for (let o = 0; o < data.length; o += limits.chunkBytes) {
      const piece = data.subarray(o, Math.min(data.length, o + limits.chunkBytes));
      this.stateBytes += piece.length;
      if (this.stateBytes > limits.stateBytesMax) throw new CustodyError('LIMIT_EXCEEDED', `the state exceeds ${limits.stateBytesMax} bytes`);
      this.chunks++;
      out.push(this.take(frame(KIND_CHUNK, piece)));
    }
    return out;
  }

  finish(): Buffer {
    if (this.state !== 'body') throw new CustodyError('INTERNAL', 'snapshot trailer outside the body');
    this.state = 'done';
    const t = Buffer.alloc(TRAILER_BYTES);
    t.writeBigUInt64BE(BigInt(this.stateBytes), 0);
    t.writeUInt32BE(this.chunks, 8);
    this.hash.digest().copy(t, 12);
    return frame(KIND_TRAILER, t);
  }

  private take(b: Buffer): Buffer {
    this.hash.update(b);
    return b;
  }
}

const invalid = (where: string, why: string): CustodyError => new CustodyError('SNAPSHOT_INVALID', `${where}: ${why}`);

function checkHeader(v: unknown, where: string): SnapshotHeader {
  const bad = (why: string): CustodyError => invalid(where, `header ${why}`);
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad('is not an object');
  const o = v as Record<string, unknown>;
  const str = (k: string, re: RegExp | null = null): string => {
    const x = o[k];
    if (typeof x !== 'string' || (re !== null && !re.test(x))) throw bad(`field ${k} is missing or malformed`);
    return x;
  };
  const int = (k: string, min: number): number => {
    const x = o[k];
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < min) throw bad(`field ${k} must be an integer >= ${min}`);
    return x;
  };
  const ids = (x: unknown, k: string, nonEmpty: boolean): string[] => {
    if (!Array.isArray(x) || (nonEmpty && x.length === 0) || !x.every((i) => typeof i === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(i))) throw bad(`field ${k} must be a list of node ids`);
    return x as string[];
  };
  const archiveFields = (): { appStateBytes?: number; archivedRecords?: number } => {
    if (o.appStateBytes === undefined && o.archivedRecords === undefined) return {};
    return { appStateBytes: int('appStateBytes', 1), archivedRecords: int('archivedRecords', 0) };
  };
  if (o.format !== SNAPSHOT_FORMAT) throw bad(`format is ${JSON.stringify(o.format)}, not ${SNAPSHOT_FORMAT}`);
  const m = o.membership as Record<string, unknown> | null | undefined;
  if (m === null || typeof m !== 'object') throw bad('field membership is missing');
  return {
    format: SNAPSHOT_FORMAT,
    clusterId: str('clusterId', /^.{1,256}$/s),
    incarnation: str('incarnation', /^([0-9a-f]{32})?$/),
    // Index 1 is every store's bootstrap point (the roster, no data): a backup is past it.
    index: int('index', 2),
    term: int('term', 1),
    stateRoot: str('stateRoot', /^[0-9a-f]{64}$/),
    ledgerIndex: int('ledgerIndex', 0),
    membership: { voters: ids(m.voters, 'membership.voters', true), learners: ids(m.learners, 'membership.learners', false) },
    nodes: ids(o.nodes, 'nodes', true),
    takenFrom: str('takenFrom', /^.{1,64}$/s),
    takenAtMs: int('takenAtMs', 0),
    ...archiveFields(),
  };
}

/**
 * An incremental reader: `push` bytes as they arrive, `end()` when the input ends. Chunks of state
 * are handed to `onChunk` as they are framed (before the trailer has verified them: a caller that
 * writes them anywhere lasting must do so where a failed `end()` can discard them).
 */
export class SnapshotParser {
  private readonly hash: Hash = createHash('sha256');
  private buf: Buffer = Buffer.alloc(0);
  private offset = 0;
  private stage: 'magic' | 'header' | 'body' | 'done' = 'magic';
  private header: SnapshotHeader | null = null;
  private stateBytes = 0;
  private chunks = 0;
  private summary: SnapshotSummary | null = null;

  constructor(private readonly where: string, private readonly onChunk: (data: Buffer, header: SnapshotHeader) => void = () => {}) {}

  push(data: Uint8Array): void {
    this.buf = this.buf.length === 0 ? Buffer.from(data) : Buffer.concat([this.buf, data]);
    for (;;) {
      if (this.stage === 'done') {
        if (this.buf.length > 0) throw this.fail(`${this.buf.length} bytes follow the trailer`);
        return;
      }
      if (this.stage === 'magic') {
        if (this.buf.length < SNAPSHOT_MAGIC.length + 1) return;
        if (!this.buf.subarray(0, SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) throw this.fail('not a custody snapshot file (bad magic)');
        if (this.buf[SNAPSHOT_MAGIC.length] !== SNAPSHOT_VERSION) throw this.fail(`unknown snapshot version ${this.buf[SNAPSHOT_MAGIC.length]}`);
        this.consume(SNAPSHOT_MAGIC.length + 1, true);
        this.stage = 'header';
        continue;
      }
      if (this.buf.length < FRAME_HEAD_BYTES) return;
      const kind = this.buf[0] as number;
      const len = this.buf.readUInt32BE(1);
      const max = kind === KIND_HEADER ? limits.headerBytesMax : kind === KIND_CHUNK ? limits.chunkBytes : TRAILER_BYTES;
      if (kind !== KIND_HEADER && kind !== KIND_CHUNK && kind !== KIND_TRAILER) throw this.fail(`unknown frame kind 0x${kind.toString(16)}`);
      if (len > max || (kind === KIND_TRAILER && len !== TRAILER_BYTES)) throw this.fail(`frame of ${len} bytes is out of bounds for its kind`);
      if (this.stage === 'header' && kind !== KIND_HEADER) throw this.fail('the first frame is not the header');
      if (this.stage === 'body' && kind === KIND_HEADER) throw this.fail('a second header');
      if (this.buf.length < FRAME_HEAD_BYTES + len) return;
      const payload = this.buf.subarray(FRAME_HEAD_BYTES, FRAME_HEAD_BYTES + len);
      if (kind === KIND_HEADER) {
        let json: unknown;
        try {
          json = JSON.parse(payload.toString('utf8'));
        } catch {
          throw this.fail('the header is not JSON');
        }
        this.header = checkHeader(json, `${this.where} at byte ${this.offset}`);
        this.consume(FRAME_HEAD_BYTES + len, true);
        this.stage = 'body';
      } else if (kind === KIND_CHUNK) {
        if (len === 0) throw this.fail('an empty chunk');
        this.stateBytes += len;
        if (this.stateBytes > limits.stateBytesMax) throw this.fail(`the state exceeds ${limits.stateBytesMax} bytes`);
        this.chunks++;
        const chunk = Buffer.from(payload);
        this.consume(FRAME_HEAD_BYTES + len, true);
        this.onChunk(chunk, this.header as SnapshotHeader);
      } else {
        const bytes = Number(payload.readBigUInt64BE(0));
        const chunks = payload.readUInt32BE(8);
        const want = payload.subarray(12, 44);
        const got = this.hash.digest();
        if (bytes !== this.stateBytes || chunks !== this.chunks) throw this.fail(`the trailer counts ${chunks} chunks of ${bytes} bytes, the file holds ${this.chunks} of ${this.stateBytes}`);
        if (!got.equals(want)) throw this.fail(`SHA-256 mismatch (trailer ${want.toString('hex')}, computed ${got.toString('hex')})`);
        this.consume(FRAME_HEAD_BYTES + len, false);
        this.stage = 'done';
        this.summary = { header: this.header as SnapshotHeader, stateBytes: bytes, chunks, sha256: got.toString('hex'), fileBytes: this.offset };
      }
    }
  }

  /** The verified summary; refuses an input that ended before its trailer. */
  end(): SnapshotSummary {
    if (this.summary === null) throw this.fail(`the file ends before its trailer (truncated; ${this.buf.length} bytes of an unfinished ${this.stage === 'magic' ? 'preamble' : 'frame'})`);
    return this.summary;
  }

  private consume(n: number, hashed: boolean): void {
    if (hashed) this.hash.update(this.buf.subarray(0, n));
    this.buf = this.buf.subarray(n);
    this.offset += n;
  }

  private fail(why: string): CustodyError {
    return invalid(`${this.where} at byte ${this.offset}`, why);
  }
}

/**
 * Reads and verifies a snapshot file in one pass with bounded memory, handing each chunk of state
 * to `onChunk`; `progress` gets the bytes read so far about every backup.progressEveryBytes;
 * `drain`, when given, is awaited after each read (a caller writing the chunks keeps up).
 */
export async function readSnapshotFile(file: string, onChunk: (data: Buffer, header: SnapshotHeader) => void = () => {}, progress: (bytes: number) => void = () => {}, drain?: () => Promise<void>): Promise<SnapshotSummary> {
  const p = new SnapshotParser(file, onChunk);
  let read = 0;
  let next = limits.progressEveryBytes;
  try {
    for await (const b of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
      p.push(b as Buffer);
      // The chunks just handed over are written somewhere before more of the file is read.
      if (drain) await drain();
      read += (b as Buffer).length;
      if (read >= next) {
        progress(read);
        next = read + limits.progressEveryBytes;
      }
    }
  } catch (e) {
    if (e instanceof CustodyError) throw e;
    throw new CustodyError('SNAPSHOT_INVALID', `${file}: cannot read it: ${(e as Error).message}`);
  }
  return p.end();
}
