/**
 * A client of the Custody service (proto/raft.proto) over mutual TLS: propose and linearizable
 * read, with refusals surfaced as CustodyError carrying the server's reason code.
 */
import * as grpc from '@grpc/grpc-js';
import { CustodyError } from '../proto/errors.js';
import { node as nodeLimits } from '../proto/limits.js';
import { isReasonCode } from '../proto/reasons.js';
import { channelCredentials, identityOptions, type TlsMaterial } from './tls.js';
import { REASON_METADATA_KEY, clientConstructor } from './wire.js';

export interface ProposeReply {
  readonly index: number;
  readonly result: Buffer;
  readonly duplicate: boolean;
}

export interface ReadReply {
  readonly index: number;
  readonly found: boolean;
  readonly value: Buffer;
}

export interface StatusReply {
  readonly id: string;
  readonly role: string;
  readonly term: number;
  readonly leader: string;
  readonly commit: number;
  readonly applied: number;
  readonly lastIndex: number;
  readonly snapshotIndex: number;
  readonly root: string;
  readonly voters: string[];
}

/** The reason code of a failed call: from the server's metadata, else mapped from the transport. */
export function errorOf(e: grpc.ServiceError): CustodyError {
  const r = e.metadata?.get(REASON_METADATA_KEY)[0];
  if (typeof r === 'string' && isReasonCode(r)) return new CustodyError(r, e.details.replace(new RegExp(`^${r}: `), ''), { cause: e });
  if (e.code === grpc.status.DEADLINE_EXCEEDED) return new CustodyError('REMOTE_TIMEOUT', e.details, { cause: e });
  if (e.code === grpc.status.RESOURCE_EXHAUSTED) return new CustodyError('FRAME_TOO_LARGE', e.details, { cause: e });
  if (e.code === grpc.status.UNAVAILABLE) return new CustodyError('REMOTE_TIMEOUT', `unavailable: ${e.details}`, { cause: e });
  return new CustodyError('INTERNAL', `${grpc.status[e.code] ?? e.code}: ${e.details}`, { cause: e });
}

type Unary = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => void;

export class CustodyClient {
  private readonly client: grpc.Client;

  /** `serverId` is the node id the server's certificate must name. */
  constructor(address: string, serverId: string, tls: TlsMaterial) {
    const Ctor = clientConstructor('Custody');
    this.client = new Ctor(address, channelCredentials(tls), {
      ...identityOptions(serverId),
      'grpc.max_send_message_length': nodeLimits.clientRequestBytesMax,
      'grpc.max_receive_message_length': nodeLimits.clientRequestBytesMax,
    });
  }

  private call<T>(method: string, req: object, deadlineMs: number): Promise<T> {
    const f = (this.client as unknown as Record<string, Unary>)[method] as Unary;
    return new Promise<T>((resolve, reject) => {
      f.call(this.client, req, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (e, r) => (e ? reject(errorOf(e)) : resolve(r as T)));
    });
  }

  propose(clientId: string, seq: number, key: string, value: Uint8Array, timeoutMs: number = nodeLimits.clientTimeoutMsDefault): Promise<ProposeReply> {
    return this.call('Propose', { clientId, seq, key, value: Buffer.from(value), timeoutMs }, timeoutMs + 5_000);
  }

  read(key: string, timeoutMs: number = nodeLimits.clientTimeoutMsDefault): Promise<ReadReply> {
    return this.call('Read', { key, timeoutMs }, timeoutMs + 5_000);
  }

  status(timeoutMs = 5_000): Promise<StatusReply> {
    return this.call('Status', {}, timeoutMs);
  }

  close(): void {
    this.client.close();
  }
}
