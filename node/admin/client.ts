/**
 * A client of the admin API (proto/admin.proto) over mutual TLS with an operator certificate.
 * Refusals come back as CustodyErrors carrying the server's reason code (node/client.ts errorOf).
 */
import * as grpc from '@grpc/grpc-js';
import { CustodyError } from '../../proto/errors.js';
import { lifecycle as lifecycleLimits, node as nodeLimits } from '../../proto/limits.js';
import { errorOf } from '../client.js';
import { channelCredentials, identityOptions, loadTls, type TlsFiles } from '../tls.js';
import { adminPackage } from './server.js';
import type { PolicyReply, PolicyTestReply } from './policy.js';
import type { BackupListReply } from './backups.js';
import type { KernelStatusView, ShareImportView } from '../lifecycle/share-import.js';
import { randomBytes } from 'node:crypto';
import { encode, fromHex } from '../../ledger/encoding.js';
import { type DecisionBody, decisionFromCbor, decisionToCbor, signDecision } from '../../ledger/decision.js';
import { DECISION_TTL_MS_DEFAULT } from '../lifecycle/acts.js';
import { type ActRequestBody, type SignedActRequest, actRequestFromCbor, actRequestToCbor, signActRequest } from '../../ledger/act-request.js';
import type { TxKind } from '../../ledger/tx/types.js';

type Unary = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => void;

export interface Verdict { ok: boolean; index: number; reason: string; detail: string }
export interface DecisionReply { cid: string; bodyCbor: Buffer; bodyJson: string; approvals: string[]; needed: number; state: string; verdict: Verdict | null; act: ActView | null }
export interface Note { atMs: number; text: string; reason: string }
export interface TxOutputView { address: string; amount: string; asset: string; change: boolean; amountBase: string }
export interface ActView {
  opId: string; state: string; reason: string; keyId: string; keyEpoch: number; asset: string; amount: string; destination: string; messageDigest: string;
  history: { state: string; index: number }[]; receipts: { type: string; cid: string; index: number }[]; signature: string; confirmation: string;
  notes: Note[]; verdict: Verdict | null;
  permitId: string; signingSet: { nodeId: string; identifier: string; hiding: string; binding: string; counter: number; nonces: { counter: number; hiding: string; binding: string }[] }[];
  initiator: string; kind: string; tx: Buffer; display: string; displayHash: string; network: string; outputs: TxOutputView[]; fee: string;
  factsRefused: string; signatures: string[]; signedTx: string; txid: string; rule: string; amountUnits: string; ruleAction: string; ruleDetail: string;
  /** The custodian's signed request the act is: its signer, id, issue time and canonical CBOR (empty when the act carries none). */
  custodian: string; requestId: string; requestIssuedMs: number | string; request: Buffer;
}
export interface KeyView { id: string; scheme: string; status: string; activeEpoch: number; publicKey: string; epochs: string[]; network: string; address: string; dealers: string[] }
export interface AssetView { symbol: string; network: string; mint: string; decimals: number }
export interface StatusReply {
  nodeId: string; caller: string; term: number; leader: string; commit: number; applied: number; stateRoot: string; clusterId: string;
  governanceEpoch: number; governanceHead: string; frozen: string; nodes: { id: string; status: string; passport: string; equivocated: boolean; fenceReporters: string[]; fenceNeeded: number }[];
  keys: KeyView[]; acts: number; height: number; assets: AssetView[];
  revoked: RevokedView[];
}

export interface RevokedView { serial: string; holder: string; id: string; reason: string; notAfterMs: number; sinceIndex: number }

export class AdminClient {
  private readonly client: grpc.Client;

  /** `serverId` is the node id the server's certificate must name; `service` another service of proto/admin.proto on the same port. */
  constructor(address: string, serverId: string, tls: TlsFiles, service: 'Admin' | 'Membership' = 'Admin') {
    const def = adminPackage()[`custody.admin.v1.${service}`] as grpc.ServiceDefinition;
    const Ctor = grpc.makeGenericClientConstructor(def, service);
    this.client = new Ctor(address, channelCredentials(loadTls(tls)), {
      ...identityOptions(serverId),
      'grpc.max_send_message_length': nodeLimits.adminRequestBytesMax * 2,
      'grpc.max_receive_message_length': 16 * 1024 * 1024,
    });
  }

  call<T>(method: string, req: object, deadlineMs = 30_000): Promise<T> {
    const f = (this.client as unknown as Record<string, Unary>)[method];
    if (f === undefined) return Promise.reject(new CustodyError('INVALID_ARGUMENT', `no method ${method}`));
    return new Promise<T>((resolve, reject) => {
      f.call(this.client, req, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (e, r) => (e ? reject(errorOf(e)) : resolve(r as T)));
    });
  }

  status(): Promise<StatusReply> { return this.call('Status', {}); }
  proposeDecision(actionJson: string, ttlMs = 0): Promise<DecisionReply> { return this.call('ProposeDecision', { actionJson, ttlMs }); }
  getDecision(cid: string): Promise<DecisionReply> { return this.call('GetDecision', { cid }); }
  listDecisions(): Promise<{ decisions: DecisionReply[] }> { return this.call('ListDecisions', {}); }
  approveDecision(cid: string, approverId: string, signature: Uint8Array): Promise<DecisionReply> { return this.call('ApproveDecision', { cid, approverId, signature: Buffer.from(signature) }); }
  submitDecision(decisionCbor: Uint8Array): Promise<DecisionReply> { return this.call('SubmitDecision', { decisionCbor: Buffer.from(decisionCbor) }); }
  chronicle(limit = 0): Promise<{ acts: ActView[]; keys: KeyView[] }> { return this.call('ListChronicle', { limit }); }
  /**
   * The act a custodian's signed request asks for (`request`: canonical CBOR of actRequestToCbor;
   * the node derives every field from its transaction), with `approvalCid` the approved
   * ActApproved in the book that names that act.
   */
  submitAct(req: { request: Uint8Array; approvalCid?: string }): Promise<ActView> {
    return this.call('SubmitAct', { request: Buffer.from(req.request), approvalCid: req.approvalCid ?? '' });
  }
  /**
   * Signs a request as `custodian` (its Ed25519 roster key, which never leaves this process) and
   * submits it: the cluster id and, unless given, the key's active epoch come from this node's
   * status (a node that lies about either only gets a request every node refuses); the request id
   * is `requestId` or 16 fresh random bytes, `issuedMs` this machine's clock.
   */
  async submitActAs(custodian: { readonly id: string; readonly secretKey: Uint8Array }, a: {
    requestId?: string; keyId: string; kind: TxKind; tx: Uint8Array; keyEpoch?: number; approvalCid?: string;
    declared?: { asset?: string; amount?: string; destination?: string }; issuedMs?: number;
  }): Promise<ActView> {
    const s = await this.status();
    let keyEpoch = a.keyEpoch ?? -1;
    if (keyEpoch < 0) {
      const k = s.keys.find((x) => x.id === a.keyId);
      if (k === undefined) throw new CustodyError('UNKNOWN_KEY', `no key ${a.keyId}`);
      if (k.activeEpoch < 0) throw new CustodyError('KEY_NOT_ACTIVE', `key ${a.keyId} is ${k.status}`);
      keyEpoch = k.activeEpoch;
    }
    const requestId = a.requestId ?? randomBytes(16).toString('hex');
    const d = a.declared ?? {};
    const body: ActRequestBody = {
      clusterId: s.clusterId, custodian: custodian.id, requestId, issuedMs: a.issuedMs ?? Date.now(), keyId: a.keyId, keyEpoch, kind: a.kind, tx: Uint8Array.from(a.tx),
      declared: { asset: d.asset ?? '', amount: d.amount ?? '', destination: d.destination ?? '' },
    };
    let signed: SignedActRequest;
    try {
      // Encoded through the strict reader first, so a field out of bounds is refused here, not by the node.
      signed = actRequestFromCbor(actRequestToCbor(signActRequest(body, custodian.secretKey)));
    } catch (e) {
      throw new CustodyError('INVALID_ARGUMENT', `the request: ${(e as Error).message}`);
    }
    return this.submitAct({ request: encode(actRequestToCbor(signed)), approvalCid: a.approvalCid ?? '' });
  }
  showAct(opId: string): Promise<ActView> { return this.call('ShowAct', { opId }); }
  settleAct(opId: string, confirmation: string): Promise<ActView> { return this.call('SettleAct', { opId, confirmation }); }
  /** Sends a NodeFenced decision as it is (canonical CBOR of {body, approvals}); without one the node refuses FENCE_UNSIGNED. */
  fenceNode(nodeId: string, decisionCbor: Uint8Array): Promise<DecisionReply> { return this.call('FenceNode', { nodeId, decisionCbor: Buffer.from(decisionCbor) }); }
  /**
   * Fences `nodeId` by a NodeFenced decision signed here with `approver`'s Ed25519 roster key
   * (which never leaves this process). The cluster id, governance epoch and head, and the node's
   * current passport (unless `passport` is given) come from this node's status: a node that lies
   * about any of them only gets a decision the ledger refuses. `onBody` sees the body before it is
   * signed (the CLI prints it).
   */
  async fenceNodeAs(approver: { readonly id: string; readonly secretKey: Uint8Array }, a: { nodeId: string; reason: string; passport?: string; ttlMs?: number; onBody?: (b: DecisionBody) => void }): Promise<DecisionReply> {
    const s = await this.status();
    const target = s.nodes.find((n) => n.id === a.nodeId);
    if (target === undefined) throw new CustodyError('UNKNOWN_NODE', `no node ${a.nodeId} on the roster`);
    const issuedMs = Date.now();
    const body: DecisionBody = {
      clusterId: s.clusterId, governanceEpoch: Number(s.governanceEpoch), parentCid: fromHex(s.governanceHead),
      action: { kind: 'NodeFenced', nodeId: a.nodeId, passport: a.passport !== undefined && a.passport !== '' ? a.passport : target.passport, reason: a.reason },
      issuedMs, expiresMs: issuedMs + (a.ttlMs !== undefined && a.ttlMs > 0 ? a.ttlMs : DECISION_TTL_MS_DEFAULT),
    };
    let cbor: Uint8Array;
    try {
      // Through the strict reader first, so a field out of bounds is refused here, not by the node.
      cbor = encode(decisionToCbor(decisionFromCbor(decisionToCbor(signDecision(body, [{ id: approver.id, secretKey: approver.secretKey, publicKey: new Uint8Array(32) }])))));
    } catch (e) {
      throw new CustodyError('INVALID_ARGUMENT', `the decision: ${(e as Error).message}`);
    }
    a.onBody?.(body);
    return this.fenceNode(a.nodeId, cbor);
  }
  exportEvidence(opId: string): Promise<{ bundleJson: string }> { return this.call('ExportEvidence', { opId }); }
  exportProvenEvidence(opId: string, consistencyFrom = 0): Promise<{ bundleJson: string }> { return this.call('ExportProvenEvidence', { opId, consistencyFrom }); }
  exportTrustPolicy(current = false): Promise<{ policy: string; waiting: string }> { return this.call('ExportTrustPolicy', { current }); }
  getPolicy(): Promise<PolicyReply> { return this.call('GetPolicy', {}); }
  listBackups(): Promise<BackupListReply> { return this.call('ListBackups', {}); }
  recordDrill(d: { keyId: string; keyEpoch: number; backupCids: string[]; passed: boolean; reportDigest: string }): Promise<{ index: number; detail: string }> { return this.call('RecordDrill', d); }
  kernelStatus(): Promise<KernelStatusView> { return this.call('KernelStatus', {}); }
  /** Imports a sealed-share file (`custody guardian recover-share`) into this node's kernel. */
  importShare(sealedShare: Uint8Array): Promise<ShareImportView> {
    // The node answers after its kernel imported and the ledger took (or gave up on) ShareRecovered:
    // the deadline covers every try of that proposal, so an import is not reported as failed
    // because its record took long (node/lifecycle/share-import.ts).
    const deadlineMs = 30_000 + lifecycleLimits.shareRecoveredProposeAttempts * (nodeLimits.clientTimeoutMsDefault + lifecycleLimits.shareRecoveredRetryMs);
    return this.call('ImportShare', { sealedShare: Buffer.from(sealedShare) }, deadlineMs);
  }
  testPolicy(req: { keyId: string; kind: string; tx: Uint8Array; initiator?: string }): Promise<PolicyTestReply> {
    return this.call('TestPolicy', { keyId: req.keyId, kind: req.kind, tx: Buffer.from(req.tx), initiator: req.initiator ?? '' });
  }

  /** Streams the act's views until `until` returns true for one, the act ends, or the deadline. */
  watch(opId: string, onView: (v: ActView) => void, until: (v: ActView) => boolean, deadlineMs = 120_000): Promise<ActView> {
    const f = (this.client as unknown as Record<string, (req: object, md: grpc.Metadata, opts: grpc.CallOptions) => grpc.ClientReadableStream<ActView>>)['WatchAct'] as
      (req: object, md: grpc.Metadata, opts: grpc.CallOptions) => grpc.ClientReadableStream<ActView>;
    return new Promise<ActView>((resolve, reject) => {
      const s = f.call(this.client, { opId }, new grpc.Metadata(), { deadline: Date.now() + deadlineMs });
      let last: ActView | null = null;
      let settled = false;
      s.on('data', (v: ActView) => {
        last = v;
        onView(v);
        if (!settled && until(v)) {
          settled = true;
          s.cancel();
          resolve(v);
        }
      });
      s.on('error', (e: grpc.ServiceError) => {
        if (settled) return;
        settled = true;
        reject(errorOf(e));
      });
      s.on('end', () => {
        if (settled) return;
        settled = true;
        if (last) resolve(last);
        else reject(new CustodyError('UNKNOWN_SESSION', `no view of act ${opId}`));
      });
    });
  }

  /** The bytes of a snapshot file of the node's replicated state, as the node streams them (SaveSnapshot). */
  async *saveSnapshot(deadlineMs = 600_000): AsyncGenerator<Buffer> {
    const f = (this.client as unknown as Record<string, (req: object, md: grpc.Metadata, opts: grpc.CallOptions) => grpc.ClientReadableStream<{ data: Buffer }>>)['SaveSnapshot'] as
      (req: object, md: grpc.Metadata, opts: grpc.CallOptions) => grpc.ClientReadableStream<{ data: Buffer }>;
    const s = f.call(this.client, {}, new grpc.Metadata(), { deadline: Date.now() + deadlineMs });
    try {
      for await (const m of s as AsyncIterable<{ data: Buffer }>) yield m.data;
    } catch (e) {
      throw errorOf(e as grpc.ServiceError);
    } finally {
      s.cancel();
    }
  }

  /**
   * The node's audit records (ExportAudit) as JSON lines, each passed to `onRecord` in order; with
   * `follow`, until `signal` aborts. Resolves when the stream ends.
   */
  exportAudit(req: { fromLeaf: number; sinceMs: number; follow: boolean }, onRecord: (json: string) => void | Promise<void>, signal?: AbortSignal): Promise<void> {
    const f = (this.client as unknown as Record<string, (req: object, md: grpc.Metadata, opts: grpc.CallOptions) => grpc.ClientReadableStream<{ json: string }>>)['ExportAudit'] as
      (req: object, md: grpc.Metadata, opts: grpc.CallOptions) => grpc.ClientReadableStream<{ json: string }>;
    const s = f.call(this.client, req, new grpc.Metadata(), req.follow ? {} : { deadline: Date.now() + 600_000 });
    const onAbort = (): void => s.cancel();
    signal?.addEventListener('abort', onAbort);
    return (async () => {
      try {
        for await (const m of s as AsyncIterable<{ json: string }>) await onRecord(m.json);
      } catch (e) {
        if ((e as grpc.ServiceError).code === grpc.status.CANCELLED && signal?.aborted) return;
        throw errorOf(e as grpc.ServiceError);
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    })();
  }

  close(): void {
    this.client.close();
  }
}
