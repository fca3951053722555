/**
 * The body of a snapshot file (the bytes its chunk frames carry, format.ts):
 *
 *   body = appState | (length:u32be | record)*
 *
 * appState is the ledger application's snapshot (node/ledger-app.ts: state, applied decisions,
 * approval book); the records are the archive of ended acts in the order they ended, position 0
 * first, each the canonical record bytes its state's accumulator hashes. The header says how
 * many bytes appState has (`appStateBytes`) and how many records follow (`archivedRecords`); a
 * header naming neither is of an application without an archive, whose body is appState alone.
 *
 * The archive is read from the store and written to the file record by record, and read back the
 * same way, so neither side ever holds more than one chunk of it.
 */
import { CustodyError } from '../../proto/errors.js';
import { backup as limits } from '../../proto/limits.js';

/** The body in pieces of at most backup.chunkBytes (one chunk frame each). */
export async function* bodyPieces(appState: Uint8Array, records: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for (let o = 0; o < appState.length; o += limits.chunkBytes) yield appState.subarray(o, Math.min(appState.length, o + limits.chunkBytes));
  let pending: Buffer[] = [];
  let bytes = 0;
  for await (const r of records) {
    if (r.length > limits.recordBytesMax) throw new CustodyError('LIMIT_EXCEEDED', `an archived record of ${r.length} bytes exceeds ${limits.recordBytesMax}`);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(r.length, 0);
    pending.push(len, Buffer.from(r.buffer, r.byteOffset, r.length));
    bytes += 4 + r.length;
    if (bytes >= limits.chunkBytes) {
      const all = Buffer.concat(pending);
      let o = 0;
      for (; all.length - o >= limits.chunkBytes; o += limits.chunkBytes) yield all.subarray(o, o + limits.chunkBytes);
      pending = o < all.length ? [all.subarray(o)] : [];
      bytes = all.length - o;
    }
  }
  if (bytes > 0) yield Buffer.concat(pending);
}

/**
 * Splits a body back into appState and records as chunks arrive: `push` each chunk, `end()` when
 * the file ends. Each record goes to `onRecord` with its position; a body that does not end
 * exactly after the records the header counts is SNAPSHOT_INVALID.
 */
export class BodyReader {
  private state: Buffer[] = [];
  private stateHeld = 0;
  private buf: Buffer = Buffer.alloc(0);
  private seq = 0;

  constructor(
    private readonly where: string,
    /** From the header; null for a body that is appState alone. */
    private readonly appStateBytes: number | null,
    private readonly records: number,
    private readonly onRecord: (seq: number, record: Buffer) => void = () => {},
  ) {}

  push(chunk: Buffer): void {
    let c = chunk;
    if (this.appStateBytes === null || this.stateHeld < this.appStateBytes) {
      const take = this.appStateBytes === null ? c.length : Math.min(c.length, this.appStateBytes - this.stateHeld);
      this.state.push(c.subarray(0, take));
      this.stateHeld += take;
      c = c.subarray(take);
      if (c.length === 0) return;
    }
    this.buf = this.buf.length === 0 ? c : Buffer.concat([this.buf, c]);
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0);
      if (len === 0 || len > limits.recordBytesMax) throw this.fail(`archived record ${this.seq} has a length of ${len} bytes`);
      if (this.buf.length < 4 + len) return;
      if (this.seq >= this.records) throw this.fail(`more archived records than the ${this.records} the header counts`);
      this.onRecord(this.seq++, Buffer.from(this.buf.subarray(4, 4 + len)));
      this.buf = this.buf.subarray(4 + len);
    }
  }

  /** The application's snapshot and the count of records read. */
  end(): { appState: Buffer; records: number } {
    if (this.appStateBytes !== null && this.stateHeld < this.appStateBytes) throw this.fail(`the application state ends after ${this.stateHeld} of ${this.appStateBytes} bytes`);
    if (this.buf.length > 0 || this.seq !== this.records) throw this.fail(`the body holds ${this.seq} archived records (and ${this.buf.length} bytes more), the header counts ${this.records}`);
    return { appState: Buffer.concat(this.state), records: this.seq };
  }

  private fail(why: string): CustodyError {
    return new CustodyError('SNAPSHOT_INVALID', `${this.where}: ${why}`);
  }
}
