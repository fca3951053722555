/**
 * The admin gRPC service (proto/admin.proto) over mutual TLS. Every request is bounded
 * (limits.node.adminRequestBytesMax, checked before decoding), decoded defensively (an
 * undecodable frame is refused FRAME_MALFORMED instead of failing inside grpc-js), attributed to
 * the operator its certificate names (roles.ts), and refused with exactly one reason code in the
 * status details ("REASON: detail") and the `custody-reason` trailer. A refused request changes
 * nothing and the server keeps serving.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';
import type { PeerCertificate } from 'node:tls';
import { CustodyError, isCustodyError } from '../../proto/errors.js';
import { ledger as ledgerLimits, node as nodeLimits, shareBackup as backupLimits } from '../../proto/limits.js';
import { grpcStatusOf, type ReasonCode } from '../../proto/reasons.js';
import { REASON_METADATA_KEY } from '../wire.js';
import { serverCredentials, type TlsMaterial } from '../tls.js';
import { actView, decisionView, keyView, requireNoneHeld, type AdminBackend } from './backend.js';
import { operatorOf, requireAction, type Operator } from './roles.js';
import { policyReply, testPolicy } from './policy.js';
import { backupList } from './backups.js';
import { revocationInterceptor } from '../revocation.js';
import type { KernelStatusView, ShareImportView } from '../lifecycle/share-import.js';
import { ARGS_DIGEST, argsDigest, auditInterceptor, auditRecord, type CallFacts } from './audit.js';
import type { LedgerEntry } from '../../ledger/events.js';

/** What the audit export reads: this node's tree and its kept leaves (node/ledger-tree.ts). */
export interface AuditSource {
  clusterId(): string | null;
  /** Leaves in the tree now. */
  size(): number;
  leaves(from: number, to: number): Promise<{ leafIndex: number; entry: LedgerEntry }[]>;
  /** Calls `l` after each applied entry; returns the unsubscribe. */
  subscribe(l: () => void): () => void;
}

/** Records read per step of an export. */
const AUDIT_EXPORT_BATCH = 256;

export const ADMIN_PROTO_PATH = fileURLToPath(new URL('../../../proto/admin.proto', import.meta.url));
const loaderOptions: protoLoader.Options = { keepCase: false, longs: Number, enums: String, bytes: Buffer, defaults: true, oneofs: true };

let cached: protoLoader.PackageDefinition | null = null;
export function adminPackage(): protoLoader.PackageDefinition {
  cached ??= protoLoader.loadSync(ADMIN_PROTO_PATH, loaderOptions);
  return cached;
}

export function refusal(reason: ReasonCode, detail: string): grpc.ServiceError {
  const metadata = new grpc.Metadata();
  metadata.set(REASON_METADATA_KEY, reason);
  return Object.assign(new Error(`${reason}: ${detail}`), { code: grpcStatusOf(reason), details: `${reason}: ${detail}`, metadata });
}

function errorOf(e: unknown): grpc.ServiceError {
  if (isCustodyError(e)) return refusal(e.reason, e.detail);
  return refusal('INTERNAL', e instanceof Error ? e.message : String(e));
}

interface BadFrame { readonly bad: 'FRAME_MALFORMED' | 'FRAME_TOO_LARGE'; readonly detail: string }
const isBad = (x: unknown): x is BadFrame => typeof x === 'object' && x !== null && 'bad' in x;

/** The service definition with size-checked, non-throwing request deserializers. */
export function guardedAdminService(service = 'Admin'): grpc.ServiceDefinition {
  const def = adminPackage()[`custody.admin.v1.${service}`] as unknown as Record<string, protoLoader.MethodDefinition<object, object>>;
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [m, d] of Object.entries(def)) {
    out[m] = {
      ...d,
      requestDeserialize: (buf: Buffer): unknown => {
        if (buf.length > nodeLimits.adminRequestBytesMax) {
          const big = { bad: 'FRAME_TOO_LARGE', detail: `request of ${buf.length} bytes exceeds ${nodeLimits.adminRequestBytesMax}` } satisfies BadFrame;
          return Object.defineProperty(big, ARGS_DIGEST, { value: argsDigest(buf), enumerable: false });
        }
        // Each request carries the digest of its bytes as received, for the operator audit record.
        const digest = argsDigest(buf);
        let out: object;
        try {
          out = d.requestDeserialize(buf);
        } catch (e) {
          out = { bad: 'FRAME_MALFORMED', detail: `undecodable request: ${(e as Error).message}` } satisfies BadFrame;
        }
        if (typeof out === 'object' && out !== null) Object.defineProperty(out, ARGS_DIGEST, { value: digest, enumerable: false });
        return out;
      },
    } as grpc.MethodDefinition<unknown, unknown>;
  }
  return out as grpc.ServiceDefinition;
}

type Call = { request: unknown; getAuthContext(): { sslPeerCertificate?: PeerCertificate } | null };

function caller(call: Call): Operator {
  if (isBad(call.request)) throw new CustodyError(call.request.bad, call.request.detail);
  return operatorOf(call.getAuthContext()?.sslPeerCertificate);
}

export function unary<Req, Res>(f: (op: Operator, req: Req) => Res | Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, cb) => {
    Promise.resolve()
      .then(() => f(caller(call as unknown as Call), call.request))
      .then((r) => cb(null, r), (e: unknown) => cb(errorOf(e)));
  };
}

function str(v: unknown, what: string, maxBytes = 1024): string {
  if (typeof v !== 'string') throw new CustodyError('INVALID_ARGUMENT', `${what} is required`);
  if (Buffer.byteLength(v) > maxBytes) throw new CustodyError('LIMIT_EXCEEDED', `${what} exceeds ${maxBytes} bytes`);
  return v;
}

function need(v: unknown, what: string, maxBytes = 128): string {
  const s = str(v, what, maxBytes);
  if (s.length === 0) throw new CustodyError('INVALID_ARGUMENT', `${what} is required`);
  return s;
}

export interface AdminServerOptions {
  readonly listen: string;
  readonly tls: TlsMaterial;
  readonly backend: AdminBackend;
  readonly log?: (line: string) => void;
  /** The lifecycle's node-to-node service (node/lifecycle/peer.ts), served on the same port. */
  readonly peer?: grpc.UntypedServiceImplementation;
  /** The bytes of a snapshot file of this node's replicated state (node/backup/source.ts). */
  readonly snapshot?: () => AsyncIterable<Buffer>;
  /** The Membership service (node/membership/service.ts), served on the same port. */
  readonly membership?: grpc.UntypedServiceImplementation;
  /** This node's kernel, for its status and for importing a recovered share (node/lifecycle/share-import.ts). */
  readonly kernel?: {
    status(): Promise<KernelStatusView>;
    importShare(sealedShare: Uint8Array): Promise<ShareImportView>;
  };
  /** Operator audit (audit.ts): `record` takes each Admin and Membership call as it ends; `source` serves ExportAudit. */
  readonly audit?: { readonly record?: (f: CallFacts) => void; readonly source?: AuditSource };
}

export class AdminServer {
  private readonly server: grpc.Server;

  constructor(private readonly o: AdminServerOptions) {
    const b = o.backend;
    // Every call on this port (Admin, Membership, LifecyclePeer) is checked against the
    // certificate revocations of the ledger this node applied, before its handler (node/revocation.ts).
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': nodeLimits.adminRequestBytesMax + 1024,
      'grpc.max_send_message_length': 16 * 1024 * 1024,
      interceptors: [
        ...(o.audit?.record ? [auditInterceptor(o.audit.record)] : []),
        revocationInterceptor(() => b.ledger.state(), (r) => o.log?.(`refused admin call: ${r.reason}: ${r.detail}`)),
      ],
    });
    type R = Record<string, unknown>;
    this.server.addService(guardedAdminService(), {
      Status: unary<R, unknown>((op) => b.status(op)),
      ProposeDecision: unary<R, unknown>(async (op, r) => {
        const p = await b.proposeDecision(op, str(r.actionJson, 'action_json', nodeLimits.adminRequestBytesMax), Number(r.ttlMs ?? 0));
        return decisionView(p, b.needed(p), b.pendingAct(p));
      }),
      GetDecision: unary<R, unknown>((op, r) => {
        const p = b.getDecision(op, need(r.cid, 'cid'));
        return decisionView(p, b.needed(p), b.pendingAct(p));
      }),
      ListDecisions: unary<R, unknown>((op) => ({ decisions: b.listDecisions(op).map((p) => decisionView(p, b.needed(p), b.pendingAct(p))) })),
      ApproveDecision: unary<R, unknown>(async (op, r) => {
        const sig = r.signature;
        if (!Buffer.isBuffer(sig) || sig.length !== 64) throw new CustodyError('INVALID_ARGUMENT', 'signature must be 64 bytes');
        const p = await b.approveDecision(op, need(r.cid, 'cid'), need(r.approverId, 'approver_id'), new Uint8Array(sig));
        return decisionView(p, b.needed(p), b.pendingAct(p));
      }),
      SubmitDecision: unary<R, unknown>(async (op, r) => {
        const c = r.decisionCbor;
        if (!Buffer.isBuffer(c) || c.length === 0) throw new CustodyError('INVALID_ARGUMENT', 'decision_cbor is required');
        const p = await b.submitDecision(op, new Uint8Array(c));
        return decisionView(p, b.needed(p), b.pendingAct(p));
      }),
      ListChronicle: unary<R, unknown>(async (op, r) => {
        const ch = await b.chronicle(op, Number(r.limit ?? 0));
        return { acts: ch.acts.map(actView), keys: ch.keys.map((k) => keyView(k, b.ledger.state().cluster)) };
      }),
      SubmitAct: unary<R, unknown>(async (op, r) => {
        const request = r.request;
        if (!Buffer.isBuffer(request) || request.length === 0) throw new CustodyError('REQUEST_UNSIGNED', 'an act is submitted as a custodian\'s signed request (request: its canonical CBOR)');
        const approvalCid = str(r.approvalCid ?? '', 'approval_cid', 128);
        const a = await b.submitAct(op, new Uint8Array(request), approvalCid);
        return actView(a);
      }),
      ShowAct: unary<R, unknown>(async (op, r) => actView(await b.act(op, need(r.opId, 'op_id')))),
      SettleAct: unary<R, unknown>(async (op, r) => actView(await b.settleAct(op, need(r.opId, 'op_id'), need(r.confirmation, 'confirmation', 1024)))),
      FenceNode: unary<R, unknown>(async (op, r) => {
        const c = r.decisionCbor;
        const p = await b.fenceNode(op, need(r.nodeId, 'node_id'), Buffer.isBuffer(c) ? new Uint8Array(c) : new Uint8Array(0));
        return decisionView(p, b.needed(p), b.pendingAct(p));
      }),
      ExportEvidence: unary<R, unknown>(async (op, r) => ({ bundleJson: await b.evidence(op, need(r.opId, 'op_id')) })),
      ExportProvenEvidence: unary<R, unknown>(async (op, r) => {
        const from = Number(r.consistencyFrom ?? 0);
        if (!Number.isSafeInteger(from) || from < 0) throw new CustodyError('INVALID_ARGUMENT', 'consistency_from: a tree size');
        return { bundleJson: await b.provenEvidence(op, need(r.opId, 'op_id'), from === 0 ? undefined : from) };
      }),
      ExportTrustPolicy: unary<{ current?: boolean }, unknown>(async (op, req) => b.trustPolicyExport(op, req.current === true)),
      SaveSnapshot: (call: grpc.ServerWritableStream<R, unknown>) => {
        void (async () => {
          requireAction(caller(call as unknown as Call), 'backup', 'save a snapshot of the cluster (the auditor role does)');
          const c = b.ledger.state().cluster;
          if (c !== null) requireNoneHeld(c);
          const bytes = this.o.snapshot;
          if (bytes === undefined) throw new CustodyError('INTERNAL', 'this node serves no snapshots');
          for await (const data of bytes()) {
            if (call.cancelled) return;
            if (!call.write({ data })) await new Promise((r) => call.once('drain', r));
          }
          call.end();
          // grpc-js turns an 'error' event into the call's status (destroy() would end it without one).
        })().catch((e: unknown) => call.emit('error', errorOf(e)));
      },
      GetPolicy: unary<R, unknown>((op) => policyReply(op, b.ledger.state())),
      ListBackups: unary<R, unknown>((op) => backupList(op, b.ledger.state())),
      RecordDrill: unary<R, unknown>(async (op, r) => {
        const hex32 = (x: unknown, what: string): Uint8Array => {
          if (typeof x !== 'string' || !/^[0-9a-f]{64}$/.test(x)) throw new CustodyError('INVALID_ARGUMENT', `${what} must be 64 lowercase hex digits`);
          return Uint8Array.from(Buffer.from(x, 'hex'));
        };
        const cids = Array.isArray(r.backupCids) ? r.backupCids : [];
        if (cids.length > ledgerLimits.nodesMax) throw new CustodyError('LIMIT_EXCEEDED', `more than ${ledgerLimits.nodesMax} backup cids`);
        return b.recordDrill(op, {
          keyId: need(r.keyId, 'key_id'), keyEpoch: Number(r.keyEpoch ?? 0), backupCids: cids.map((c, i) => hex32(c, `backup_cids[${i}]`)),
          passed: r.passed === true, reportDigest: hex32(r.reportDigest, 'report_digest'),
        });
      }),
      KernelStatus: unary<R, unknown>(async (op) => {
        requireAction(op, 'read', 'read the kernel\'s status');
        if (this.o.kernel === undefined) throw new CustodyError('INTERNAL', 'this node serves no kernel');
        return this.o.kernel.status();
      }),
      ImportShare: unary<R, unknown>(async (op, r) => {
        requireAction(op, 'import-share', 'import a recovered share into the kernel (the key-generator role does)');
        const f = r.sealedShare;
        if (!Buffer.isBuffer(f) || f.length === 0) throw new CustodyError('INVALID_ARGUMENT', 'sealed_share is required');
        if (f.length > backupLimits.sealedShareBytesMax) throw new CustodyError('PAYLOAD_REJECTED', `sealed share file of ${f.length} bytes, more than ${backupLimits.sealedShareBytesMax}`);
        if (this.o.kernel === undefined) throw new CustodyError('INTERNAL', 'this node serves no kernel');
        return this.o.kernel.importShare(new Uint8Array(f));
      }),
      TestPolicy: unary<R, unknown>((op, r) => {
        const tx = r.tx;
        if (!Buffer.isBuffer(tx)) throw new CustodyError('INVALID_ARGUMENT', 'tx must be bytes');
        return testPolicy(op, b.ledger.state(), { keyId: need(r.keyId, 'key_id'), kind: need(r.kind, 'kind', 16), tx: new Uint8Array(tx), initiator: str(r.initiator ?? '', 'initiator', 128) }, Date.now());
      }),
      ExportAudit: (call: grpc.ServerWritableStream<R, unknown>) => {
        void (async () => {
          requireAction(caller(call as unknown as Call), 'read', 'export the audit records');
          const src = this.o.audit?.source;
          if (src === undefined) throw new CustodyError('INTERNAL', 'this node serves no audit export');
          const follow = call.request.follow === true;
          const sinceMs = Number(call.request.sinceMs ?? 0);
          let next = Number(call.request.fromLeaf ?? 0);
          if (!Number.isSafeInteger(next) || next < 0 || !Number.isSafeInteger(sinceMs) || sinceMs < 0) throw new CustodyError('INVALID_ARGUMENT', 'from_leaf and since_ms must be non-negative integers');
          call.sendMetadata(new grpc.Metadata());
          let cancelled = false;
          let wake: (() => void) | null = null;
          let drained: (() => void) | null = null;
          call.on('cancelled', () => {
            cancelled = true;
            wake?.();
            drained?.();
          });
          const unsubscribe = src.subscribe(() => wake?.());
          try {
            for (;;) {
              const size = src.size();
              while (next < size && !cancelled) {
                const to = Math.min(size, next + AUDIT_EXPORT_BATCH);
                const clusterId = src.clusterId();
                for (const l of await src.leaves(next, to)) {
                  if (clusterId === null || l.entry.stampMs < sinceMs) continue;
                  if (cancelled) break;
                  if (!call.write({ json: JSON.stringify(auditRecord(clusterId, l.leafIndex, l.entry)) })) {
                    // Wait for the client to read, or for it to go away (a cancelled call never drains).
                    await new Promise<void>((r) => {
                      drained = r;
                      call.once('drain', () => r());
                      if (cancelled) r();
                    });
                    drained = null;
                  }
                }
                next = to;
              }
              if (!follow || cancelled) break;
              await new Promise<void>((r) => {
                wake = r;
                if (src.size() > next || cancelled) r();
              });
              wake = null;
            }
          } finally {
            unsubscribe();
          }
          if (!cancelled) call.end();
        })().catch((e: unknown) => call.emit('error', errorOf(e)));
      },
      WatchAct: (call: grpc.ServerWritableStream<R, unknown>) => {
        let stop: (() => void) | null = null;
        try {
          const op = caller(call as unknown as Call);
          stop = b.watch(op, need(call.request.opId, 'op_id'), (a) => call.write(actView(a)), () => call.end(), (e) => call.destroy(errorOf(e)));
          call.on('cancelled', () => stop?.());
        } catch (e) {
          call.destroy(errorOf(e));
        }
      },
    });
  }

  /** Binds and serves; resolves with the bound port. */
  private peerAdded = false;
  private membershipAdded = false;

  start(): Promise<number> {
    if (this.o.peer && !this.peerAdded) {
      this.peerAdded = true;
      this.server.addService(adminPackage()['custody.admin.v1.LifecyclePeer'] as grpc.ServiceDefinition, this.o.peer);
    }
    if (this.o.membership && !this.membershipAdded) {
      this.membershipAdded = true;
      this.server.addService(guardedAdminService('Membership'), this.o.membership);
    }
    return new Promise((resolve, reject) => {
      this.server.bindAsync(this.o.listen, serverCredentials(this.o.tls), (e, port) => {
        if (e) return reject(new CustodyError('CONFIG_INVALID', `admin ${this.o.listen}: ${e.message}`));
        resolve(port);
      });
    });
  }

  stop(graceMs: number = nodeLimits.shutdownGraceMs): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}
