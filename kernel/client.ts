/**
 * The daemon's side of the kernel socket: one connection, requests answered in order. Error
 * frames become CustodyErrors with the kernel's reason code.
 */
import { connect, type Socket } from 'node:net';
import { CustodyError } from '../proto/errors.js';
import { kernel as limits } from '../proto/limits.js';
import { FrameDecoder, decodeResponse, encodeRequest, frame, type RequestBody, type Response, type ResponseBody } from './wire.js';

type Waiter = { resolve: (r: Response) => void; reject: (e: Error) => void };

export class KernelClient {
  private nextCallId = 1;
  private readonly waiting: Waiter[] = [];
  private readonly decoder = new FrameDecoder(limits.responseBytesMax);
  private failure: Error | null = null;
  private readonly closeListeners: ((e: Error) => void)[] = [];

  private constructor(private readonly sock: Socket) {
    sock.on('data', (chunk: Buffer) => {
      for (const ev of this.decoder.push(chunk)) {
        const w = this.waiting.shift();
        if (w === undefined) continue;
        if (ev.kind === 'tooLarge') {
          w.reject(new CustodyError('FRAME_TOO_LARGE', 'the kernel sent an oversized frame'));
          continue;
        }
        try {
          w.resolve(decodeResponse(ev.payload));
        } catch (e) {
          w.reject(e as Error);
        }
      }
    });
    const fail = (e: Error): void => {
      const first = this.failure === null;
      this.failure = e;
      for (const w of this.waiting.splice(0)) w.reject(e);
      if (first) for (const l of this.closeListeners.splice(0)) l(e);
    };
    sock.on('error', (e) => fail(new CustodyError('REMOTE_TIMEOUT', `kernel connection failed: ${e.message}`, { cause: e })));
    sock.on('close', () => fail(new CustodyError('REMOTE_TIMEOUT', 'the kernel closed the connection')));
  }

  static connect(socketPath: string): Promise<KernelClient> {
    return new Promise((resolve, reject) => {
      const sock = connect(socketPath);
      sock.once('connect', () => {
        sock.removeListener('error', reject);
        resolve(new KernelClient(sock));
      });
      sock.once('error', reject);
    });
  }

  /**
   * Called once when the connection ends (the kernel closed it, it failed, or close() was
   * called), with the error the calls in flight were rejected with; at once if it already ended.
   */
  onClose(l: (e: Error) => void): void {
    if (this.failure !== null) l(this.failure);
    else this.closeListeners.push(l);
  }

  /** Sends raw bytes and waits for the next response frame (fuzzing and framing tests). */
  rawExchange(bytes: Uint8Array, endAfter = false): Promise<Response> {
    return new Promise((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      this.waiting.push({ resolve, reject });
      this.sock.write(bytes);
      if (endAfter) this.sock.end();
    });
  }

  /** Sends a request and returns the kernel's full response (including error bodies). */
  async exchange(body: RequestBody): Promise<Response> {
    const callId = this.nextCallId++;
    const res = await this.rawExchange(frame(encodeRequest({ callId, body })));
    if (res.callId !== callId && res.body.kind !== 'error') throw new CustodyError('SESSION_MISMATCH', `response ${res.callId} to call ${callId}`);
    return res;
  }

  /** Sends a request; an error response throws a CustodyError with the kernel's reason. */
  async call<K extends ResponseBody['kind']>(body: RequestBody, expect: K): Promise<Extract<ResponseBody, { kind: K }>> {
    const res = await this.exchange(body);
    if (res.body.kind === 'error') throw new CustodyError(res.body.reason, res.body.detail);
    if (res.body.kind !== expect) throw new CustodyError('PAYLOAD_REJECTED', `expected ${expect}, got ${res.body.kind}`);
    return res.body as Extract<ResponseBody, { kind: K }>;
  }

  close(): void {
    this.sock.destroy();
  }
}
