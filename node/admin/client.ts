/**
 * A client of the admin API (proto/admin.proto) over mutual TLS with an operator certificate.
 * Refusals come back as CustodyErrors carrying the server's reason code (node/client.ts errorOf).
 */
import * as grpc from '@grpc/grpc-js';
import { CustodyError } from '../../proto/errors.js';
import { node as nodeLimits } from '../../proto/limits.js';
import { errorOf } from '../client.js';
import { channelCredentials, identityOptions, loadTls, type TlsFiles } from '../tls.js';
import { adminPackage } from './server.js';
import type { PolicyReply, PolicyTestReply } from './policy.js';

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
}
export interface KeyView { id: string; scheme: string; status: string; activeEpoch: number; publicKey: string; epochs: string[]; network: string; address: string }
export interface AssetView { symbol: string; network: string; mint: string; decimals: number }
export interface StatusReply {
  nodeId: string; caller: string; term: number; leader: string; commit: number; applied: number; stateRoot: string; clusterId: string;
  governanceEpoch: number; governanceHead: string; frozen: string; nodes: { id: string; status: string; passport: string; equivocated: boolean }[];
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
  /** An act from its transaction (the node derives every field; `declared` only double-checks), or the act an approved decision names. */
  submitAct(req: {
    opId: string; keyId: string; kind?: string; tx?: Uint8Array; keyEpoch?: number; approvalCid?: string;
    declared?: { asset?: string; amount?: string; destination?: string };
  }): Promise<ActView> {
    return this.call('SubmitAct', { ...req, keyEpoch: req.keyEpoch ?? -1, kind: req.kind ?? '', tx: Buffer.from(req.tx ?? new Uint8Array(0)), declared: req.declared ?? null });
  }
  showAct(opId: string): Promise<ActView> { return this.call('ShowAct', { opId }); }
  settleAct(opId: string, confirmation: string): Promise<ActView> { return this.call('SettleAct', { opId, confirmation }); }
  fenceNode(nodeId: string, reason: string, passport = ''): Promise<{ ok: boolean; index: number; reason: string; detail: string }> { return this.call('FenceNode', { nodeId, passport, reason }); }
  exportEvidence(opId: string): Promise<{ bundleJson: string }> { return this.call('ExportEvidence', { opId }); }
  getPolicy(): Promise<PolicyReply> { return this.call('GetPolicy', {}); }
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

  close(): void {
    this.client.close();
  }
}
