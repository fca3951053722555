/**
 * Operator audit: every admin API call is recorded in the replicated log, and the log's records
 * export to a SIEM (`custody admin audit export`).
 *
 * Recording (message flow). A server interceptor on the admin port sees each call of the Admin and
 * Membership services from its start to its status: the verified client certificate (operator id
 * and role as roles.ts reads them, serial as revocation.ts reads it), the method, and sha256 of the
 * request bytes as received (attached by the guarded deserializer, server.ts). When the call ends
 * (its status is sent, or the caller cancels it) the node proposes one OperatorCall event in its
 * own name, signed by its identity key (ledger/events.ts; apply checks the proposer). The verdict
 * is `allowed` for status OK, else `refused` with the reason code of the status (the
 * `custody-reason` trailer); a call the caller cancelled is `allowed` if the handler had answered
 * anything, else `refused` CALL_CANCELLED. The record is in the Merkle tree with every other
 * entry, so each checkpoint the nodes cosign (and the witnesses) commits to it.
 *
 * Trust. The record is the serving node's word: a node that serves calls and records nothing is
 * possible (a compromised host), and is visible only as a gap between what operators did and what
 * the log says; what a recorded call cannot be is changed or removed later without a consistency
 * proof failing (node/witness/). Recording never blocks or fails the call: it follows it, and a
 * record the log could not take is counted (custody_audit_record_failures_total) and logged.
 * Arguments are recorded only as a digest: secrets and transaction bytes stay out of the SIEM, and
 * whoever holds the request can prove it was that call.
 *
 * Export (proto/audit.schema.json, one JSON object per record): every kept leaf of the node's tree
 * (ledger-tree.ts leaves: every entry but ClockTick) with its leaf index and RFC 9162 leaf hash,
 * the ledger index and stamp, a category (chronicle: the act journal; governance: genesis,
 * decisions, node statements, key and backup records; operator: OperatorCall), and the event
 * itself as JSON (bytes as lowercase hex, amounts as decimal strings). An auditor checks a record
 * against a cosigned checkpoint with an inclusion proof of its leaf hash at its leaf index.
 */
import * as grpc from '@grpc/grpc-js';
import { createHash, randomBytes } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { isReasonCode, type ReasonCode } from '../../proto/reasons.js';
import type { CborValue } from '../../ledger/encoding.js';
import { toHex } from '../../ledger/encoding.js';
import { decodeEvent, eventToCbor, type LedgerEntry, type LedgerEvent } from '../../ledger/events.js';
import { entryLeafHash } from '../../ledger/tlog/ledger-log.js';
import { checkpointOrigin } from '../../ledger/tlog/ledger-log.js';
import { REASON_METADATA_KEY } from '../wire.js';
import { peerSerial } from '../revocation.js';
import { operatorOf } from './roles.js';

export const AUDIT_SCHEMA_ID = 'custody-audit/v1';

/** Where the guarded deserializer leaves the digest of the request bytes (server.ts). */
export const ARGS_DIGEST = Symbol('custody.argsDigest');

export function argsDigest(buf: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(buf).digest());
}

/** The services whose calls are operators' (LifecyclePeer is node to node, not recorded). */
const AUDITED_SERVICES = ['/custody.admin.v1.Admin/', '/custody.admin.v1.Membership/'];

export interface CallFacts {
  readonly operatorId: string;
  readonly role: string;
  readonly certSerial: string;
  readonly method: string;
  readonly argsDigest: Uint8Array;
  readonly verdict: 'allowed' | 'refused';
  readonly reason: ReasonCode | '';
  readonly atMs: number;
}

function who(cert: PeerCertificate | undefined): { operatorId: string; role: string; certSerial: string } {
  const certSerial = peerSerial(cert) ?? '';
  try {
    const op = operatorOf(cert);
    return { operatorId: op.id, role: op.role, certSerial };
  } catch {
    const cn = cert?.subject?.CN;
    return { operatorId: typeof cn === 'string' ? cn.slice(0, 128) : '', role: '', certSerial };
  }
}

/**
 * A server interceptor that reports each Admin or Membership call once, as it ends, to `record`.
 * Placed first on the server so it sees the final status of every other interceptor too.
 */
export function auditInterceptor(record: (f: CallFacts) => void, now: () => number = Date.now): grpc.ServerInterceptor {
  return (method, call) => {
    const path = method.path;
    if (!AUDITED_SERVICES.some((s) => path.startsWith(s))) return new grpc.ServerInterceptingCall(call);
    let digest: Uint8Array = argsDigest(new Uint8Array(0));
    let answered = false;
    let done = false;
    const finish = (verdict: 'allowed' | 'refused', reason: ReasonCode | ''): void => {
      if (done) return;
      done = true;
      const cert = call.getAuthContext()?.sslPeerCertificate;
      record({ ...who(cert), method: path, argsDigest: digest, verdict, reason, atMs: now() });
    };
    return new grpc.ServerInterceptingCall(call, new grpc.ResponderBuilder()
      .withStart((next) => {
        next(new grpc.ServerListenerBuilder()
          .withOnReceiveMessage((message, nextMsg) => {
            const d = (message as { [ARGS_DIGEST]?: Uint8Array } | null)?.[ARGS_DIGEST];
            if (d !== undefined) digest = d;
            nextMsg(message);
          })
          .withOnCancel(() => finish(answered ? 'allowed' : 'refused', answered ? '' : 'CALL_CANCELLED'))
          .build());
      })
      .withSendMetadata((md, next) => {
        answered = true;
        next(md);
      })
      .withSendMessage((m, next) => {
        answered = true;
        next(m);
      })
      .withSendStatus((status, next) => {
        if (status.code === grpc.status.OK) finish('allowed', '');
        else {
          const fromTrailer = status.metadata?.get(REASON_METADATA_KEY)[0];
          const fromDetails = /^([A-Z_]+):/.exec(status.details ?? '')?.[1];
          const r = [fromTrailer, fromDetails].find((x) => isReasonCode(x));
          finish('refused', (r as ReasonCode | undefined) ?? 'INTERNAL');
        }
        next(status);
      })
      .build());
  };
}

/** Proposes each reported call as an OperatorCall in this node's name; never throws. */
export class AuditRecorder {
  private failures = 0;
  private readonly boot = randomBytes(6).toString('hex');
  private n = 0;

  constructor(private readonly o: {
    readonly nodeId: string;
    readonly passport: () => string | null;
    readonly propose: (e: LedgerEvent) => Promise<{ ok: boolean; reason?: string | null; detail?: string }>;
    readonly onFailure?: () => void;
    readonly log?: (line: string) => void;
  }) {}

  record(f: CallFacts): void {
    const passport = this.o.passport();
    if (passport === null) return; // before genesis there is no log to record in (and no operator to record)
    const e: LedgerEvent = {
      type: 'OperatorCall', callId: `${this.o.nodeId}/${this.boot}/${++this.n}`, operatorId: f.operatorId, role: f.role, certSerial: f.certSerial,
      method: f.method, argsDigest: f.argsDigest, verdict: f.verdict, reason: f.reason, atMs: f.atMs, nodeId: this.o.nodeId, passport,
    };
    this.o.propose(e).then((v) => {
      if (!v.ok) this.failed(`${v.reason ?? ''}: ${v.detail ?? ''}`);
    }, (err: unknown) => this.failed(err instanceof Error ? err.message : String(err)));
  }

  private failed(why: string): void {
    this.failures++;
    this.o.onFailure?.();
    if (this.failures === 1 || this.failures % 100 === 0) this.o.log?.(`audit: an operator call was not recorded (${this.failures} so far): ${why}`);
  }
}

// ------------------------------------------------------------------------------------------------
// Records
// ------------------------------------------------------------------------------------------------

export type AuditCategory = 'chronicle' | 'governance' | 'operator';

export interface AuditRecord {
  readonly schema: typeof AUDIT_SCHEMA_ID;
  readonly origin: string;
  readonly leafIndex: number;
  readonly leafHash: string;
  readonly ledgerIndex: number;
  readonly stampMs: number;
  readonly time: string;
  readonly category: AuditCategory;
  readonly type: string;
  readonly actor: string;
  readonly outcome: string;
  readonly reason: string;
  readonly event: unknown;
}

export function categoryOf(e: LedgerEvent): AuditCategory {
  if (e.type === 'OperatorCall') return 'operator';
  if (e.type.startsWith('Act')) return 'chronicle';
  return 'governance';
}

/** CBOR value as JSON: bytes as lowercase hex, bigints as decimal strings. */
export function cborJson(v: CborValue | undefined): unknown {
  if (v instanceof Uint8Array) return toHex(v);
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return v.map((x) => cborJson(x));
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, cborJson(x as CborValue)]));
  return v ?? null;
}

function summary(e: LedgerEvent): { actor: string; outcome: string; reason: string } {
  switch (e.type) {
    case 'OperatorCall': return { actor: e.operatorId, outcome: `${e.method} ${e.verdict}`, reason: e.reason };
    case 'GovernanceDecision': return { actor: e.decision.approvals.map((a) => a.approverId).join(','), outcome: e.decision.body.action.kind, reason: '' };
    case 'ClusterGenesis': return { actor: '', outcome: `cluster ${e.clusterId} created`, reason: '' };
    case 'ActAborted': return { actor: e.nodeId, outcome: `act ${e.opId} aborted`, reason: e.reason };
    case 'ActDenialRecorded': return { actor: e.nodeId, outcome: `act ${e.opId} denied`, reason: e.reason };
    default: {
      const actor = 'nodeId' in e ? e.nodeId : 'statement' in e ? e.statement.nodeId : '';
      const op = 'opId' in e ? ` ${e.opId}` : 'keyId' in e ? ` ${e.keyId}` : '';
      return { actor, outcome: `${e.type}${op}`, reason: '' };
    }
  }
}

/** The audit record of an applied entry at leaf `leafIndex` of the log of `clusterId`. */
export function auditRecord(clusterId: string, leafIndex: number, entry: LedgerEntry): AuditRecord {
  const e = decodeEvent(entry.event);
  const s = summary(e);
  return {
    schema: AUDIT_SCHEMA_ID, origin: checkpointOrigin(clusterId), leafIndex, leafHash: toHex(entryLeafHash(entry)), ledgerIndex: entry.index,
    stampMs: entry.stampMs, time: new Date(entry.stampMs).toISOString(), category: categoryOf(e), type: e.type, ...s, event: cborJson(eventToCbor(e)),
  };
}
