/**
 * `custody witness serve`: a C2SP tlog-witness (https://c2sp.org/tlog-witness) over HTTP.
 *
 * Message flow. A log (a custody node, node/witness/pusher.ts) POSTs /add-checkpoint with
 *   old <size>\n  <base64 consistency proof hash>\n*  \n  <checkpoint note>
 * and the witness answers:
 *   200  the witness's cosignature line (text/plain), to append to the note
 *   400  malformed request; 403 not signed by a quorum of the log's keys; 404 unknown log
 *   409  `old` is not the size the witness holds: body "<size>\n" (text/x.tlog.size), so the log
 *        fetches a proof from there and asks again; also a second root for the held size
 *   422  the consistency proof from the held checkpoint does not verify
 * Every answer carries `Custody-Reason: <reason code>` (proto/reasons.ts); a refusal's body
 * other than a 409's is "<reason>: <detail>\n".
 *
 * Safety. The verdict is ledger/tlog/witness.ts addCheckpoint (its header has the argument: a
 * witness cosigns only checkpoints on one append-only history per log). This module makes the
 * check-and-update atomic per log and durable before the reply, as the spec requires: requests
 * for one origin run one at a time (a promise chain per origin); each reads the latest record,
 * decides, and on 200 writes the new record durably (files.ts WitnessState.commit: fsync and
 * rename) before answering. Two requests against one old size therefore get one 200 and one 409,
 * and a crash after a 200 never leaves the witness at an older size than a cosignature it gave.
 * The record is loaded at start, so a restarted witness refuses what it refused before.
 *
 * Threat. The log's nodes are untrusted as a group: a majority of them may sign a rewritten
 * history (that is what a witness is for). The witness trusts its log policy files (which keys
 * and how many sign a log's checkpoints), its key and its state directory. The HTTP channel needs
 * no integrity: requests are checked signatures and proofs, and the answer is a signature the
 * log verifies under the witness's vkey.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CustodyError, isCustodyError } from '../../proto/errors.js';
import { witness as limits } from '../../proto/limits.js';
import type { ReasonCode } from '../../proto/reasons.js';
import type { CheckpointTrust } from '../../ledger/tlog/checkpoint.js';
import { parseCheckpoint } from '../../ledger/tlog/checkpoint.js';
import { cosignatureSigner, parseNote } from '../../ledger/tlog/note.js';
import { addCheckpoint, parseAddCheckpoint } from '../../ledger/tlog/witness.js';
import type { WitnessKey, WitnessState } from './files.js';

export const ADD_CHECKPOINT_PATH = '/add-checkpoint';
export const SIZE_CONTENT_TYPE = 'text/x.tlog.size';
export const REASON_HEADER = 'custody-reason';

export interface WitnessServerOptions {
  readonly listen: { readonly host: string; readonly port: number };
  readonly key: WitnessKey;
  readonly logs: ReadonlyMap<string, CheckpointTrust>;
  readonly state: WitnessState;
  /** Wall clock in ms (cosignature timestamps). */
  readonly now?: () => number;
  readonly log?: (line: string) => void;
}

export interface WitnessAnswer { readonly status: number; readonly reason: ReasonCode | 'OK'; readonly contentType: string; readonly body: string }

export class WitnessServer {
  private readonly server: Server;
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly now: () => number;
  private readonly log: (line: string) => void;

  constructor(private readonly o: WitnessServerOptions) {
    this.now = o.now ?? Date.now;
    this.log = o.log ?? (() => {});
    this.server = createServer((req, res) => void this.serve(req, res));
    this.server.requestTimeout = limits.requestReadMs;
  }

  start(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', (e) => reject(new CustodyError('CONFIG_INVALID', `witness listen ${this.o.listen.host}:${this.o.listen.port}: ${e.message}`)));
      this.server.listen(this.o.listen.port, this.o.listen.host, () => resolve((this.server.address() as AddressInfo).port));
    });
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  /** One add-checkpoint request body, decided and (on 200) recorded: the server's whole logic. */
  async addCheckpoint(body: string): Promise<WitnessAnswer> {
    const origin = originOf(body);
    // Requests of one log run one after the other: read, decide, persist, then the next.
    const prev = origin === undefined ? Promise.resolve() : (this.chains.get(origin) ?? Promise.resolve());
    const run = prev.then(() => this.decide(body), () => this.decide(body));
    if (origin !== undefined) {
      // Only the chain's link: `run` itself, with its failure, goes back to the caller below.
      const tail = run.catch(() => undefined);
      this.chains.set(origin, tail);
      void tail.then(() => {
        if (this.chains.get(origin) === tail) this.chains.delete(origin);
      });
    }
    return run;
  }

  private async decide(body: string): Promise<WitnessAnswer> {
    const k = this.o.key;
    const signer = cosignatureSigner(k.name, k.seed, Math.floor(this.now() / 1000));
    const v = addCheckpoint(body, (o) => this.o.logs.get(o), (o) => this.o.state.latest(o), [signer]);
    if (v.status !== 200) {
      this.log(`witness: refused ${v.status} ${v.reason}: ${v.detail}`);
      if (v.status === 409) return { status: 409, reason: v.reason, contentType: SIZE_CONTENT_TYPE, body: v.body };
      return { status: v.status, reason: v.reason, contentType: 'text/plain; charset=utf-8', body: `${v.reason}: ${v.detail}\n` };
    }
    const req = parseAddCheckpoint(body);
    if ('error' in req) throw new CustodyError('INTERNAL', 'a cosigned request no longer parses');
    await this.o.state.commit({ origin: v.checkpoint.origin, size: v.record.size, root: v.record.root, note: req.note });
    this.log(`witness: cosigned ${v.checkpoint.origin} at size ${v.record.size}`);
    return { status: 200, reason: 'OK', contentType: 'text/plain; charset=utf-8', body: v.body };
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const answer = (a: WitnessAnswer): void => {
      res.writeHead(a.status, { 'content-type': a.contentType, [REASON_HEADER]: a.reason, 'cache-control': 'no-store' });
      res.end(a.body);
    };
    const refuse = (status: number, reason: ReasonCode, detail: string): void => answer({ status, reason, contentType: 'text/plain; charset=utf-8', body: `${reason}: ${detail}\n` });
    try {
      const path = (req.url ?? '').split('?')[0];
      if (path !== ADD_CHECKPOINT_PATH) return refuse(404, 'INVALID_ARGUMENT', `no such endpoint ${JSON.stringify(path)}; POST ${ADD_CHECKPOINT_PATH}`);
      if (req.method !== 'POST') {
        res.setHeader('allow', 'POST');
        return refuse(405, 'INVALID_ARGUMENT', `${ADD_CHECKPOINT_PATH} takes POST`);
      }
      const chunks: Buffer[] = [];
      let n = 0;
      for await (const c of req as AsyncIterable<Buffer>) {
        n += c.length;
        if (n > limits.requestBytesMax) {
          res.setHeader('connection', 'close');
          return refuse(413, 'LIMIT_EXCEEDED', `request body over ${limits.requestBytesMax} bytes`);
        }
        chunks.push(c);
      }
      const buf = Buffer.concat(chunks);
      const body = buf.toString('utf8');
      if (!Buffer.from(body, 'utf8').equals(buf)) return refuse(400, 'TLOG_CHECKPOINT_INVALID', 'the body is not UTF-8');
      answer(await this.addCheckpoint(body));
    } catch (e) {
      this.log(`witness: error: ${isCustodyError(e) ? `${e.reason}: ${e.detail}` : String(e)}`);
      if (!res.headersSent) refuse(500, isCustodyError(e) ? e.reason : 'INTERNAL', isCustodyError(e) ? e.detail : 'internal error');
      else res.destroy();
    }
  }
}

/** The origin a request names, read without checking anything else (undefined: malformed). */
function originOf(body: string): string | undefined {
  try {
    const r = parseAddCheckpoint(body);
    if ('error' in r) return undefined;
    return parseCheckpoint(parseNote(r.note).text).origin;
  } catch {
    return undefined;
  }
}

/** Parses HOST:PORT (IPv6 in brackets). */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(s);
  if (m === null || Number(m[3]) > 65535) throw new CustodyError('CONFIG_INVALID', `--listen ${JSON.stringify(s)}: expected HOST:PORT`);
  return { host: m[1] ?? (m[2] as string), port: Number(m[3]) };
}
