/**
 * Test harness for the lifecycle: a LocalCluster (three real Raft drivers with the ledger, three
 * real kernel processes, admin API on loopback with mTLS) plus operator certificates for every
 * role, admin clients, and the `custody admin` CLI as a child process.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CustodyError } from '../../proto/errors.js';
import { regtestAddressOf, resolveDestination, rid, seedOf, solanaAddressOf, solanaTransferMessage, taprootPsbt } from '../../ledger/scenario.js';
import { fromHex } from '../../ledger/encoding.js';
import type { Network, TxKind } from '../../ledger/tx/types.js';
import { decisionBodyFromCbor, decisionSigningBytes, ed25519Sign, networkForScheme } from '../../ledger/decision.js';
import { LEDGER_ASSETS } from '../../ledger/asset-table.js';
import { type PolicyDocument, parsePolicyYaml } from '../../ledger/policy-engine/index.js';
import { decode } from '../../ledger/encoding.js';
import { LocalCluster, until, type LocalClusterOptions } from '../../node/lifecycle/local-cluster.js';
import { AdminClient, type ActView } from '../../node/admin/client.js';
import { issueOperatorCert, type OperatorRole } from '../../node/admin/roles.js';

export const CLI = fileURLToPath(new URL('../../node/cli.js', import.meta.url));

/**
 * The test clusters' act policy: SOL to two destinations and BTC to one (the addresses the labels
 * 'sol-treasury', 'sol-exchange' and 'bc1p-treasury' resolve to), up to 5,000 base units
 * automatically and up to 1,000,000 with two approvers of the roster (approver-1..3), within
 * 10,000,000 per key and hour; the raw kind only with approvals.
 */
export const POLICY: PolicyDocument = parsePolicyYaml(`version: 1
groups:
  approvers:
    approvers: [approver-1, approver-2, approver-3]
rules:
  - id: raw-with-approvals
    match: { kinds: [raw] }
    action: REQUIRE_APPROVAL
    approvals: { k: 2, group: approvers, ttl: 1h }
  - id: sol-small
    match: { assets: [SOL], destination: { allow: [${solanaAddressOf('sol-treasury')}, ${solanaAddressOf('sol-exchange')}] }, amount: { max: "0.000005" }, windows: [{ per: key, length: 1h, maxAmount: "0.01" }] }
    action: ALLOW
  - id: btc-small
    match: { assets: [BTC], destination: { allow: [${regtestAddressOf('bc1p-treasury')}] }, amount: { max: "0.00005" }, windows: [{ per: key, length: 1h, maxAmount: "0.1" }] }
    action: ALLOW
  - id: sol-approved
    match: { assets: [SOL], destination: { allow: [${solanaAddressOf('sol-treasury')}, ${solanaAddressOf('sol-exchange')}] }, amount: { max: "0.001" }, windows: [{ per: key, length: 1h, maxAmount: "0.01" }] }
    action: REQUIRE_APPROVAL
    approvals: { k: 2, group: approvers, ttl: 1h }
  - id: btc-approved
    match: { assets: [BTC], destination: { allow: [${regtestAddressOf('bc1p-treasury')}] }, amount: { max: "0.01" }, windows: [{ per: key, length: 1h, maxAmount: "0.1" }] }
    action: REQUIRE_APPROVAL
    approvals: { k: 2, group: approvers, ttl: 1h }
`, LEDGER_ASSETS);

let txSeq = 0;

/**
 * The unsigned transaction of an act of `keyId` paying `amount` to `destination` (an address, or
 * a label whose address scenario.ts addressOf derives, as POLICY names them): a Solana transfer
 * for a Solana key, a two-input Taproot PSBT with change back to the key for a Bitcoin key, built
 * against the key as the node shows it (its group key and network).
 */
export async function actTx(c: Pick<AdminClient, 'chronicle'>, keyId: string, amount: string | bigint, destination: string): Promise<{ kind: TxKind; tx: Uint8Array }> {
  const k = (await c.chronicle(1)).keys.find((x) => x.id === keyId);
  if (k === undefined || k.publicKey === '') throw new Error(`no published key ${keyId}`);
  const groupKey = fromHex(k.publicKey);
  const network = k.network as Network;
  const to = resolveDestination(destination, network);
  const n = BigInt(amount);
  txSeq++;
  if (network.startsWith('bitcoin')) return { kind: 'btc-psbt', tx: taprootPsbt(groupKey.slice(1), { to, amount: n, inputs: [60_000n + n, 60_000n], label: `harness/${process.pid}/${txSeq}` }) };
  return { kind: 'solana', tx: solanaTransferMessage(groupKey, [{ to, lamports: n }], seedOf(`blockhash/${process.pid}/${txSeq}`)) };
}

/** `custody admin act submit` arguments for a transfer from `keyId` (its transaction written to a file in `dir`). */
export async function actSubmitArgs(c: Pick<AdminClient, 'chronicle'>, dir: string, opId: string, keyId: string, amount: string, destination: string): Promise<string[]> {
  const x = await actTx(c, keyId, amount, destination);
  const file = join(dir, `${opId}.${x.kind}`);
  writeFileSync(file, x.tx);
  return ['act', 'submit', '--op', rid(opId), '--key-id', keyId, x.kind === 'btc-psbt' ? '--psbt' : '--solana', file, '--custodian-key', join(dir, 'custodians', 'cara.key')];
}

/**
 * What `custody admin act submit --custodian-key` does: `custodian` signs the request for the act
 * (its id is rid(opId), so tests name acts by label) and `c` submits it.
 */
export function submitAs(c: AdminClient, custodian: { readonly id: string; readonly secretKey: Uint8Array }, a: {
  opId: string; keyId: string; kind: TxKind | string; tx: Uint8Array; keyEpoch?: number; approvalCid?: string; declared?: { asset?: string; amount?: string; destination?: string };
}): Promise<ActView> {
  const { opId, kind, ...rest } = a;
  return c.submitActAs(custodian, { ...rest, kind: kind as TxKind, requestId: rid(opId) });
}

export { rid };

/** An act as the tests name it: by label (its request id is rid(label)), signed by `custodian` on submission. */
export type LabelledSubmit = { opId: string; keyId: string; kind?: TxKind | string; tx?: Uint8Array; keyEpoch?: number; approvalCid?: string; declared?: { asset?: string; amount?: string; destination?: string } };
export type LabelledClient = Omit<AdminClient, 'submitAct'> & { submitAct(a: LabelledSubmit): Promise<ActView> };

/**
 * `c` as the tests use it: acts named by label (showAct, watch, settleAct and exportEvidence take
 * the label and ask for rid(label)), and submitAct signs the request as `custodian`.
 */
export function labelled(c: AdminClient, custodian: { readonly id: string; readonly secretKey: Uint8Array }): LabelledClient {
  return new Proxy(c, {
    get(target, prop) {
      if (prop === 'submitAct') {
        return (a: LabelledSubmit) => submitAs(target, custodian, { ...a, kind: a.kind ?? '', tx: a.tx ?? new Uint8Array(0) });
      }
      if (prop === 'showAct' || prop === 'settleAct' || prop === 'exportEvidence' || prop === 'watch') {
        const f = (target[prop] as (op: string, ...rest: unknown[]) => unknown).bind(target);
        return (op: string, ...rest: unknown[]) => f(rid(op), ...rest);
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...x: unknown[]) => unknown).bind(target) : v;
    },
  }) as unknown as LabelledClient;
}

export interface Harness {
  readonly dir: string;
  readonly certs: string;
  readonly cluster: LocalCluster;
  /** cara's custodian key (roster role `custodian`): signs the acts' requests; its file is `<dir>/custodians/cara.key`. */
  readonly custodian: { readonly id: string; readonly secretKey: Uint8Array };
  /** An admin client of node `nodeId` (default the first) authenticated as operator `as`. */
  client(as: string, nodeId?: string): AdminClient;
  /** Runs `custody admin <args>` as operator `as` against node `nodeId`. */
  cli(as: string, args: string[], nodeId?: string): Promise<{ code: number | null; stdout: string; stderr: string }>;
  approve(cid: string, approverIds: readonly string[], nodeId?: string): Promise<void>;
  /** kim proposes DkgAuthorized, two approvers approve, the ceremony runs, activation by two approvers. */
  createKey(keyId: string, scheme: 'ed25519' | 'taproot' | 'secp256k1'): Promise<void>;
  close(): Promise<void>;
}

/** Runs the `custody` CLI with `args` to its exit; `env` adds to (or, as undefined, removes from) the environment. */
export function runCli(args: readonly string[], env: Record<string, string | undefined> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const full: NodeJS.ProcessEnv = { ...process.env };
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete full[k]; else full[k] = v;
    const p = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: full });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

export const OPERATORS: Record<string, OperatorRole> = { kim: 'key-generator', cara: 'custodian', audra: 'auditor', 'approver-1': 'approver', 'approver-2': 'approver', 'approver-3': 'approver' };

export async function startHarness(extra: Partial<LocalClusterOptions> = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'custody-lifecycle-'));
  const certs = join(dir, 'certs');
  const cluster = await LocalCluster.start({ dir, policy: POLICY, certsDir: certs, remoteTimeoutMs: 3_000, ...extra });
  for (const [id, role] of Object.entries(OPERATORS)) issueOperatorCert(certs, id, role);
  await cluster.genesis();
  const clients: AdminClient[] = [];
  const node = (nodeId?: string) => cluster.node(nodeId ?? cluster.nodes[0]!.id);
  const h: Harness = {
    dir, certs, cluster, custodian: cluster.custodians[0]!,
    client(as, nodeId) {
      const n = node(nodeId);
      const c = new AdminClient(n.adminAddress as string, n.id, { ca: join(certs, 'ca.crt'), cert: join(certs, `${as}.crt`), key: join(certs, `${as}.key`) });
      clients.push(c);
      return c;
    },
    cli(as, args, nodeId) {
      const n = node(nodeId);
      return runCli(['admin', ...args, '--node', n.adminAddress as string, '--node-id', n.id, '--certs', certs, '--as', as]);
    },
    async approve(cid, approverIds, nodeId) {
      for (const id of approverIds) {
        const c = h.client(id, nodeId);
        const d = await c.getDecision(cid);
        const body = decisionBodyFromCbor(decode(new Uint8Array(d.bodyCbor)));
        const key = cluster.approvers.find((a) => a.id === id);
        if (key === undefined) throw new Error(`no approver ${id}`);
        await c.approveDecision(cid, id, ed25519Sign(decisionSigningBytes(body), key.secretKey));
      }
    },
    async createKey(keyId, scheme) {
      const kim = h.client('kim');
      const authz = await kim.proposeDecision(JSON.stringify({ kind: 'DkgAuthorized', keyId, scheme, network: networkForScheme(scheme), threshold: 2, participants: cluster.nodes.map((n) => n.id) }));
      await h.approve(authz.cid, ['approver-1', 'approver-2']);
      await until(`${keyId} published on every node`, () => cluster.nodes.every((n) => !n.up || n.ledger.state().cluster?.keys[keyId]?.epochs['0']?.status === 'published'), 120_000);
      const act = await kim.proposeDecision(JSON.stringify({ kind: 'KeyActivated', keyId, keyEpoch: 0 }));
      await h.approve(act.cid, ['approver-2', 'approver-3']);
      await until(`${keyId} active everywhere`, () => cluster.nodes.every((n) => !n.up || n.ledger.state().cluster?.keys[keyId]?.status === 'active'), 30_000);
    },
    async close() {
      for (const c of clients) c.close();
      await cluster.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return h;
}

/** Watches until the act reaches `state` (or ends); returns the last view. */
export async function waitAct(c: Pick<AdminClient, 'watch'>, opId: string, state: string, timeoutMs = 120_000): Promise<ActView> {
  return c.watch(rid(opId), () => undefined, (v) => v.state === state || ['Settled', 'Denied', 'Aborted'].includes(v.state), timeoutMs);
}

/** The reason code a call was refused with ('resolved' if it was not refused). */
export async function reasonOfCall(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return reasonOf(e);
  }
}

export function reasonOf(e: unknown): string {
  return e instanceof CustodyError ? e.reason : `not a CustodyError: ${String(e)}`;
}
