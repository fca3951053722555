/**
 * A node's admin API over mutual TLS (the real AdminServer and AdminBackend, the real approval
 * book) in front of a ledger stand-in that holds one cluster state with a Taproot key on
 * bitcoin-regtest and an Ed25519 key on solana-devnet, whose secrets the tests hold (plain keys,
 * test/ledger/tx-fixtures.ts), so acts can be "executed" with real signatures. The stand-in
 * records every event proposed to it: a refusal "before anything reaches the ledger" is a
 * refusal with nothing recorded.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { schnorr } from '@noble/curves/secp256k1.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { AdminBackend } from '../../node/admin/backend.js';
import { AdminServer } from '../../node/admin/server.js';
import { AdminClient } from '../../node/admin/client.js';
import { issueOperatorCert } from '../../node/admin/roles.js';
import { ensureCa, issue } from '../../node/certs.js';
import { loadTls } from '../../node/tls.js';
import { CLI_PATH } from '../../node/cluster.js';
import { ApprovalBook, type BookCommand } from '../../node/approvals/book.js';
import type { LedgerPort } from '../../node/lifecycle/ports.js';
import type { LedgerVerdict } from '../../node/ledger-app.js';
import { actCid, type Act, type LedgerEvent } from '../../ledger/events.js';
import { decisionCid, makeApproverKey, type ApproverKey } from '../../ledger/decision.js';
import { DEFAULT_POLICY, seedOf } from '../../ledger/scenario.js';
import { emptyHistory } from '../../ledger/policy-engine/history.js';
import type { ClusterState, KeyRecord, LedgerState, OpRecord } from '../../ledger/state.js';
import { parseTransaction } from '../../ledger/tx/parse.js';
import { assetTable } from '../../ledger/admission.js';
import { keyContextOf } from '../../ledger/state.js';
import { approverKeys, rosterOf } from '../ledger/fixtures.js';
import { ed25519Key, taprootKey } from '../ledger/tx-fixtures.js';

export const BTC = taprootKey('surface-btc');
export const SOL = ed25519Key('surface-sol');
export const APPROVERS: readonly ApproverKey[] = approverKeys(3);
/** cara's custodian key: the roster entry with role `custodian` that signs the acts' requests. */
export const CUSTODIAN: ApproverKey = makeApproverKey('cara', seedOf('surface/custodian/cara'));

function keyRecord(id: string, scheme: KeyRecord['scheme'], network: KeyRecord['network'], publicKey: Uint8Array): KeyRecord {
  return { id, scheme, network, status: 'active', activeEpoch: 0, publicKey, epochs: {} };
}

export function clusterState(): ClusterState {
  return {
    clusterId: 'cluster-surface', genesisCid: new Uint8Array(32),
    governance: { epoch: 0, headCid: new Uint8Array(32), roster: { ...rosterOf(APPROVERS, 2), approvers: [...rosterOf(APPROVERS, 2).approvers, { id: CUSTODIAN.id, publicKey: CUSTODIAN.publicKey, roles: ['custodian'] }] }, policy: DEFAULT_POLICY, frozen: null },
    nodes: { n1: { id: 'n1', identityKey: new Uint8Array(32), passport: 'p1', status: 'active', fencedPassports: [], equivocated: false } },
    keys: {
      [BTC.key.keyId]: keyRecord(BTC.key.keyId, 'taproot', 'bitcoin-regtest', BTC.key.groupKey),
      [SOL.key.keyId]: keyRecord(SOL.key.keyId, 'ed25519', 'solana-devnet', SOL.key.groupKey),
    },
    ops: {}, opCount: 0, inFlight: 0, archived: { count: 0, head: new Uint8Array(32) }, endedByState: {}, permits: {}, policyHistory: emptyHistory(DEFAULT_POLICY), consumed: {}, statements: {}, evidence: {},
  } as unknown as ClusterState;
}

export class StandInLedger implements LedgerPort {
  readonly nodeId = 'n1';
  /** Every event proposed, in order. */
  readonly proposed: LedgerEvent[] = [];
  readonly book = new ApprovalBook();
  private s: LedgerState;
  private readonly listeners = new Set<() => void>();

  constructor() {
    this.s = { index: 1, clockMs: Date.now(), chainHead: new Uint8Array(32), height: 1, cluster: clusterState() };
  }

  state(): LedgerState { return this.s; }
  subscribe(l: (...args: never[]) => void): () => void {
    const f = (): void => (l as unknown as () => void)();
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }
  isLeader(): boolean { return true; }
  decisionsAfter(): readonly { index: number; stampMs: number; decision: Uint8Array }[] { return []; }
  raftStatus() { return { term: 1, leader: 'n1', commit: this.s.index, applied: this.s.index, root: '00' }; }

  readonly approvals = {
    book: this.book,
    propose: async (c: BookCommand): Promise<LedgerVerdict> => {
      const r = this.book.apply(Date.now(), c, this.s);
      return r.verdict.ok
        ? { ok: true, index: this.s.index, type: null, detail: r.verdict.detail, applied: true, replayed: false }
        : { ok: false, index: this.s.index, type: null, reason: r.verdict.reason, detail: r.verdict.detail, applied: false, replayed: false };
    },
  };

  private put(op: OpRecord): void {
    const c = this.s.cluster!;
    this.s = { ...this.s, index: this.s.index + 1, cluster: { ...c, ops: { ...c.ops, [op.opId]: op } } };
    for (const l of this.listeners) l();
  }

  async propose(e: LedgerEvent): Promise<LedgerVerdict> {
    this.proposed.push(e);
    if (e.type !== 'ActSubmitted') return { ok: false, index: this.s.index, type: e.type, reason: 'INVALID_TRANSITION', detail: 'the stand-in takes acts only', applied: false, replayed: false };
    const index = this.s.index + 1;
    this.put({
      opId: e.opId, submissionCid: new Uint8Array(32), act: e.act, actCid: actCid(e.act), nodeId: e.nodeId, state: 'Admitted', reason: null,
      history: [{ state: 'Submitted', index }, { state: 'Admitted', index }],
      approvalCid: e.approval === null ? null : decisionCid(e.approval.body), approval: e.approval, request: e.request, permitId: null, signingSet: null, releasedBy: null,
      signatures: null, confirmation: null, receipts: [], rule: { id: 'allow-all', action: 'ALLOW', detail: 'rule allow-all allows every act' },
    });
    return { ok: true, index, type: 'ActSubmitted', detail: `act ${e.opId} admitted`, applied: true, replayed: false, opState: 'Admitted' };
  }

  /** Records `act` Denied with `reason`, as apply does for a transaction that does not hold. */
  deny(opId: string, act: Act, reason: OpRecord['reason']): void {
    const index = this.s.index + 1;
    this.put({
      opId, submissionCid: new Uint8Array(32), act, actCid: actCid(act), nodeId: 'n1', state: 'Denied', reason,
      history: [{ state: 'Submitted', index }, { state: 'Denied', index }], approvalCid: null, approval: null, request: null, permitId: null, signingSet: null, releasedBy: null,
      signatures: null, confirmation: null, receipts: [], rule: null,
    });
  }

  /** Signs the act's messages with the test keys' plain secrets and records it Executed. */
  execute(opId: string): readonly Uint8Array[] {
    const op = this.s.cluster!.ops[opId]!;
    const facts = parseTransaction(op.act.kind, op.act.tx, keyContextOf(this.s.cluster!, op.act.keyId)!, assetTable(this.s.cluster!));
    const signatures = facts.messages.map((m) => (op.act.keyId === BTC.key.keyId ? schnorr.sign(m, BTC.outputSecret, new Uint8Array(32)) : ed25519.sign(m, SOL.secret)));
    this.put({ ...op, state: 'Executed', signatures, history: [...op.history, { state: 'Executed', index: this.s.index + 1 }] });
    return signatures;
  }

  /** Replaces the governance state (as an applied decision would). */
  setGovernance(g: ClusterState['governance']): void {
    this.s = { ...this.s, index: this.s.index + 1, cluster: { ...this.s.cluster!, governance: g } };
  }

  /** Records an Executed act Published (the gate released it): only now do its signatures leave the node. */
  publish(opId: string): void {
    const op = this.s.cluster!.ops[opId]!;
    this.put({ ...op, state: 'Published', history: [...op.history, { state: 'Published', index: this.s.index + 1 }] });
  }

  submittedActs(): Act[] {
    return this.proposed.flatMap((e) => (e.type === 'ActSubmitted' ? [e.act] : []));
  }
}

export interface ActNode {
  readonly ledger: StandInLedger;
  readonly address: string;
  readonly certs: string;
  client(as: string): AdminClient;
  cli(as: string, args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
  close(): Promise<void>;
}

export const OPERATORS = { cara: 'custodian', audra: 'auditor', 'approver-0': 'approver', 'approver-1': 'approver', 'approver-2': 'approver' } as const;

export async function startActNode(): Promise<ActNode> {
  const dir = mkdtempSync(join(tmpdir(), 'custody-act-api-'));
  const certs = join(dir, 'certs');
  ensureCa(certs);
  const files = issue(certs, 'node', 'n1', ['127.0.0.1', 'localhost']);
  for (const [id, role] of Object.entries(OPERATORS)) issueOperatorCert(certs, id, role);
  const ledger = new StandInLedger();
  const backend = new AdminBackend('n1', ledger, { notesOf: () => [], onNote: () => () => undefined });
  const server = new AdminServer({ listen: '127.0.0.1:0', tls: loadTls({ ca: join(certs, 'ca.crt'), cert: files.cert, key: files.key }), backend });
  const address = `127.0.0.1:${await server.start()}`;
  const clients: AdminClient[] = [];
  return {
    ledger, address, certs,
    client(as) {
      const c = new AdminClient(address, 'n1', { ca: join(certs, 'ca.crt'), cert: join(certs, `${as}.crt`), key: join(certs, `${as}.key`) });
      clients.push(c);
      return c;
    },
    cli(as, args) {
      return new Promise((resolve) => {
        const p = spawn(process.execPath, [CLI_PATH, ...args, '--node', address, '--node-id', 'n1', '--certs', certs, '--as', as], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        p.on('exit', (code) => resolve({ code, stdout, stderr }));
      });
    },
    async close() {
      for (const c of clients) c.close();
      await server.stop(1000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
