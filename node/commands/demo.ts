/**
 * `custody demo`: the whole governed lifecycle on one machine, narrated as it runs.
 *
 *   1. certificates (cluster CA, node certificates, one operator certificate per role) and
 *      approver keys in a data directory (default ./.custody/demo)
 *   2. three `custody node` daemons (Raft + the ledger + the lifecycle, admin API on loopback over
 *      mTLS; `--nodes in-process` runs the same nodes inside this process) and three secret
 *      kernels, all as child processes
 *   3. genesis; a 2-of-3 DKG for ed25519 and one for Taproot driven through the ledger; activation
 *      of each key by 2-of-3 approvers
 *   4. one real transaction per key, built offline for the key's own address (`custody tx`): a
 *      Solana transfer (bitcoin-regtest and solana-devnet keys need no chain to sign for) that the
 *      policy's first matching rule allows and publishes at once, and a Taproot PSBT spending two
 *      coins of the key with change back to it, larger, so it matches a REQUIRE_APPROVAL rule: two
 *      approvers, shown the transaction's display re-derived from its bytes, sign the act before it
 *      is submitted, and that approval releases it at the publication gate; the signed
 *      transactions; settlement with an external confirmation
 *   5. share backups (daemons): a custodian's age identity, a BackupPolicy decided by approvers,
 *      every kernel's backup written and recorded, the identity split 3-of-5 among guardians, the
 *      backup folders copied off the hosts, and `custody admin backup drill` rebuilding every
 *      share of the ed25519 key in a throwaway process, recorded in the ledger and listed
 *   6. the chronicle with each act's facts and the rule that admitted it; an evidence bundle per
 *      act (its act carries the transaction) written to a named file and checked with
 *      `custody evidence verify` and an independent signature verifier; everything stopped.
 *
 * Every operator step goes through the admin API exactly as `custody admin ...` does.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { CustodyError, isCustodyError } from '../../proto/errors.js';
import { decode, fromHex, toHex } from '../../ledger/encoding.js';
import { actFromCbor } from '../../ledger/events.js';
import { formatUnits } from '../../ledger/tx/display.js';
import { decisionBodyFromCbor, decisionSigningBytes, ed25519Sign } from '../../ledger/decision.js';
import { LEDGER_ASSETS } from '../../ledger/asset-table.js';
import { type PolicyDocument, parsePolicyYaml } from '../../ledger/policy-engine/index.js';
import { verifyEvidenceBundle } from '../../ledger/receipts.js';
import { LocalCluster } from '../lifecycle/local-cluster.js';
import { DaemonCluster } from '../lifecycle/daemon-cluster.js';
import { verifyBundleSignature, type Bundle } from '../lifecycle/evidence.js';
import { AdminClient, type ActView } from '../admin/client.js';
import { issueOperatorCert, type OperatorRole } from '../admin/roles.js';
import { ensureCa } from '../certs.js';
import { CLI_PATH } from '../cluster.js';
import { formatAct } from './admin.js';
import { formatBackupList } from './backup.js';
import { keyContextOfView, verifiedApproval } from './act.js';
import { buildSolanaTransfer, buildTaprootPsbt } from '../lifecycle/tx-build.js';

/** Where the demo pays: a regtest Taproot address and a devnet address of keys nobody here holds. */
export const DEMO_BTC_DESTINATION = 'bcrt1pfqarxerx6v0zh6zcj2f3a3np8jselxn8vgefdx95c0n328qpzg4s2lxlrp';
export const DEMO_SOL_DESTINATION = 'GmaDrppBC7P5ARKV8g3djiwP89vz1jLK23V2GBjuAEGB';
/** A recent blockhash stands in for the chain's (the demo broadcasts nothing). */
const DEMO_BLOCKHASH = 'GHtXQBsoZHVnNFa9YevAzFr17DJjgHXk3ycTKD5xD3Zi';

/** The demo's act policy: the genesis template (cluster-configs/policy.genesis.yaml), inline. */
export const DEMO_POLICY_YAML = `version: 1
groups:
  approvers:
    treasury: [approver-1, approver-2, approver-3]
rules:
  - id: raw-with-approvals
    match: { kinds: [raw] }
    action: REQUIRE_APPROVAL
    approvals: { k: 2, group: treasury, ttl: 1h }
  - id: btc-small
    match:
      assets: [BTC]
      destination: { allow: [${DEMO_BTC_DESTINATION}] }
      amount: { max: "0.00005" }
      windows: [{ per: key, length: 1h, maxAmount: "0.1", maxCount: 100 }]
    action: ALLOW
  - id: sol-small
    match:
      assets: [SOL]
      destination: { allow: [${DEMO_SOL_DESTINATION}] }
      amount: { max: "0.000005" }
      windows: [{ per: key, length: 1h, maxAmount: "0.01", maxCount: 100 }]
    action: ALLOW
  - id: btc-approved
    match: { assets: [BTC], destination: { allow: [${DEMO_BTC_DESTINATION}] }, amount: { max: "0.01" } }
    action: REQUIRE_APPROVAL
    approvals: { k: 2, group: treasury, ttl: 1h }
  - id: sol-approved
    match: { assets: [SOL], destination: { allow: [${DEMO_SOL_DESTINATION}] }, amount: { max: "0.001" } }
    action: REQUIRE_APPROVAL
    approvals: { k: 2, group: treasury, ttl: 1h }
`;

export const DEMO_POLICY: PolicyDocument = parsePolicyYaml(DEMO_POLICY_YAML, LEDGER_ASSETS);

const OPERATORS: Record<string, OperatorRole> = { kim: 'key-generator', cara: 'custodian', audra: 'auditor', 'approver-1': 'approver', 'approver-2': 'approver', 'approver-3': 'approver' };
const MARKER = '.custody-demo';

interface Args { dir: string; kernels: 'auto' | 'process' | 'twin'; nodes: 'daemons' | 'in-process'; strict: boolean }

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** A directory the demo may use: missing, empty, or one it made before (then it is cleared). */
function prepareDir(dir: string): void {
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    if (!existsSync(join(dir, MARKER))) throw new CustodyError('INVALID_ARGUMENT', `${dir} is not empty and was not made by the demo; choose another --dir`);
    rmSync(dir, { recursive: true, force: true });
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, MARKER), 'made by custody demo; removed and recreated by the next run\n');
}

/** Whether the kernel processes accept the ledger's first key epoch (0). */
async function kernelsTakeEpochZero(c: LocalCluster): Promise<boolean> {
  try {
    await c.nodes[0]!.kernel.port.call({ kind: 'nonces', keyId: 'epoch-probe', keyEpoch: 0, count: 1 }, 'nonceCommitments');
    return true;
  } catch (e) {
    return !(isCustodyError(e) && e.reason === 'PAYLOAD_REJECTED' && /keyEpoch/.test(e.detail));
  }
}

interface Running {
  /** How the nodes and kernels run, for the narration. */
  readonly what: string;
  readonly approvers: readonly { id: string; secretKey: Uint8Array }[];
  /** The custodians' request-signing keys (roster role `custodian`). */
  readonly custodians: readonly { id: string; secretKey: Uint8Array }[];
  client(as: string): AdminClient;
  /**
   * For the `custody admin ...` commands the demo runs as child processes, and the nodes' share
   * backup folders; daemons only (nodes in this process write no share backups).
   */
  readonly daemons?: { readonly node: string; readonly nodeId: string; readonly certs: string; readonly backupDirs: readonly { id: string; dir: string }[] };
  stop(): Promise<void>;
}

/** Three `custody node` daemons and three `custody kernel` processes (node/lifecycle/daemon-cluster.ts). */
async function startDaemons(dir: string): Promise<Running> {
  // Every admin call is recorded in the log (OperatorCall), as on a production node.
  const dc = await DaemonCluster.create(dir, DEMO_POLICY, 3, 5_000, { lifecycle: ['auditCalls: true'] });
  for (const [id, role] of Object.entries(OPERATORS)) issueOperatorCert(dc.certs, id, role);
  try {
    await dc.start('audra', CLI_PATH, 30_000);
  } catch (e) {
    await dc.stop();
    throw e;
  }
  return {
    what: `3 node daemons (pids ${dc.nodes.map((n) => n.daemon?.pid).join(' ')}; admin API ${dc.nodes.map((n) => `${n.id}=${n.admin}`).join(' ')}; configs ${join(dir, 'n1.yaml')} and n1.lifecycle.yaml ...) and 3 kernel processes (pids ${dc.nodes.map((n) => n.kernel?.proc.pid).join(' ')})`,
    approvers: dc.approvers,
    custodians: dc.custodians,
    client: (as) => dc.client('n1', as),
    daemons: { node: dc.node('n1').admin, nodeId: 'n1', certs: dc.certs, backupDirs: dc.nodes.map((n) => ({ id: n.id, dir: join(dir, 'data', `${n.id}.share-backups`) })) },
    stop: () => dc.stop(),
  };
}

/** Three Raft nodes in this process, three kernel processes (node/lifecycle/local-cluster.ts). */
async function startInProcess(dir: string, certs: string, kernels: Args['kernels'], log: (l: string) => void): Promise<Running> {
  let mode: 'process' | 'twin' = kernels === 'twin' ? 'twin' : 'process';
  let cluster = await LocalCluster.start({ dir: join(dir, 'cluster'), policy: DEMO_POLICY, certsDir: certs, kernels: mode, log, remoteTimeoutMs: 10_000 });
  if (mode === 'process' && !(await kernelsTakeEpochZero(cluster))) {
    if (kernels === 'process') throw new CustodyError('CONFIG_INVALID', 'the kernel processes refuse key epoch 0, the ledger\'s first epoch; run with --kernels twin');
    say('      the kernel build refuses key epoch 0 (the ledger\'s first epoch), so signing could not be authorized: using the in-memory kernel twins');
    await cluster.close();
    mode = 'twin';
    cluster = await LocalCluster.start({ dir: join(dir, 'cluster-twin'), policy: DEMO_POLICY, certsDir: certs, kernels: mode, log, remoteTimeoutMs: 10_000 });
  }
  await cluster.genesis();
  const n1 = cluster.nodes[0]!;
  const c = cluster;
  return {
    what: `3 nodes in this process (Raft + ledger, admin API ${c.nodes.map((n) => `${n.id}=${n.adminAddress}`).join(' ')}) and 3 kernels (${mode === 'process' ? `child processes, pids ${c.nodes.map((n) => n.kernel.pid).join(' ')}` : 'in-memory twins'})`,
    approvers: c.approvers,
    custodians: c.custodians,
    client: (as) => new AdminClient(n1.adminAddress as string, n1.id, { ca: join(certs, 'ca.crt'), cert: join(certs, `${as}.crt`), key: join(certs, `${as}.key`) }),
    stop: () => c.close(),
  };
}

async function run(a: Args): Promise<void> {
  const t0 = Date.now();
  const dir = resolve(a.dir);
  prepareDir(dir);
  say(`custody demo: data directory ${dir}`);
  const certs = join(dir, 'certs');
  ensureCa(certs);
  for (const [id, role] of Object.entries(OPERATORS)) issueOperatorCert(certs, id, role);
  say(`[1/8] certificates in ${certs}: cluster CA, node certificates, operators ${Object.entries(OPERATORS).map(([i, r]) => `${i} (${r})`).join(', ')}`);

  const log = (l: string): void => {
    if (/refused|failed|stopped/.test(l)) say(`      ${l}`);
  };
  let running: Running;
  if (a.nodes === 'daemons' && a.kernels !== 'twin') {
    try {
      running = await startDaemons(join(dir, 'daemons'));
    } catch (e) {
      if (!isCustodyError(e) || a.strict) throw e;
      say(`      the node daemons did not serve the lifecycle (${e.reason}: ${e.detail}); running the nodes in this process instead`);
      running = await startInProcess(dir, certs, a.kernels, log);
    }
  } else {
    running = await startInProcess(dir, certs, a.kernels, log);
  }
  const clients: AdminClient[] = [];
  try {
    say(`[2/8] ${running.what}`);
    const client = (as: string): AdminClient => {
      const c = running.client(as);
      clients.push(c);
      return c;
    };
    const approve = async (cid: string, who: string[]): Promise<void> => {
      for (const id of who) {
        const c = client(id);
        const d = await c.getDecision(cid);
        const key = running.approvers.find((x) => x.id === id)!;
        const body = decisionBodyFromCbor(decode(new Uint8Array(d.bodyCbor)));
        if (body.action.kind === 'ActApproved' || body.action.kind === 'PublicationReleased') {
          // What `custody admin act approve` does: re-derive the display from the transaction's
          // bytes, check the decision names exactly that act and display, show it, then sign.
          const v = await verifiedApproval(c, d, cid);
          say(`      ${id} is shown the transaction of ${v.opId}, re-derived from its bytes (display digest ${toHex(v.facts.displayHash).slice(0, 16)}, the one the decision binds):`);
          for (const line of v.facts.display.trimEnd().split('\n')) say(`        | ${line}`);
        }
        const r = await c.approveDecision(cid, id, ed25519Sign(decisionSigningBytes(body), key.secretKey));
        say(`      ${id} signed ${cid.slice(0, 16)}: ${r.state}${r.verdict ? (r.verdict.ok ? ` at ledger index ${r.verdict.index}` : ` ${r.verdict.reason}`) : ''}`);
      }
    };
    const audra = client('audra');
    const st = await audra.status();
    say(`[3/8] genesis of ${st.clusterId}: leader ${st.leader}, ${st.nodes.length} nodes, approvers approver-1..3 (2 of 3 decide), state root ${st.stateRoot.slice(0, 16)}`);

    const kim = client('kim');
    for (const [keyId, scheme, network] of [['treasury-ed25519', 'ed25519', 'solana-devnet'], ['treasury-taproot', 'taproot', 'bitcoin-regtest']] as const) {
      const d = await kim.proposeDecision(JSON.stringify({ kind: 'DkgAuthorized', keyId, scheme, network, threshold: 2, participants: st.nodes.map((n) => n.id) }));
      say(`[4/8] kim proposes a 2-of-3 ${scheme} DKG for ${keyId} on ${network}: decision ${d.cid.slice(0, 16)}`);
      await approve(d.cid, ['approver-1', 'approver-2']);
      const deadline = Date.now() + 120_000;
      for (;;) {
        const k = (await audra.status()).keys.find((x) => x.id === keyId);
        if (k?.epochs.includes('0:published')) break;
        if (Date.now() > deadline) throw new CustodyError('REMOTE_TIMEOUT', `the ${keyId} ceremony did not complete`);
        await new Promise((r) => setTimeout(r, 100));
      }
      say('      round 1 of every node in the log; round 2 sealed kernel to kernel; KeyReady from every node; KeyObjectPublished');
      const act = await kim.proposeDecision(JSON.stringify({ kind: 'KeyActivated', keyId, keyEpoch: 0 }));
      say(`      kim proposes activation ${act.cid.slice(0, 16)} (key exists != key is authority)`);
      await approve(act.cid, ['approver-2', 'approver-3']);
    }
    const status = await audra.status();
    for (const k of status.keys) say(`      key ${k.id} (${k.scheme}) ${k.status} at epoch ${k.activeEpoch} on ${k.network}: group public key ${k.publicKey}, address ${k.address}`);

    // The transactions, built offline for each key's own address as `custody tx` builds them.
    const contextOf = (keyId: string) => keyContextOfView(status.keys.find((k) => k.id === keyId)!);
    const btcKey = contextOf('treasury-taproot');
    const coin = (label: string, vout: number, amountSat: bigint) => ({ txid: createHash('sha256').update(`custody demo coin ${label}`).digest('hex'), vout, amountSat });
    const acts = [
      {
        name: 'pay-sol-1', opId: randomBytes(16).toString('hex'), keyId: 'treasury-ed25519', kind: 'solana' as const, asset: 'SOL', amount: 1000n, destination: DEMO_SOL_DESTINATION, rule: 'sol-small',
        tx: await buildSolanaTransfer(contextOf('treasury-ed25519'), [{ address: DEMO_SOL_DESTINATION, amount: 1000n }], DEMO_BLOCKHASH),
        what: 'a Solana transfer of 1000 lamports',
      },
      {
        name: 'pay-btc-1', opId: randomBytes(16).toString('hex'), keyId: 'treasury-taproot', kind: 'btc-psbt' as const, asset: 'BTC', amount: 8000n, destination: DEMO_BTC_DESTINATION, rule: 'btc-approved',
        tx: buildTaprootPsbt(btcKey, [coin('a', 0, 6000n), coin('b', 1, 5000n)], [{ address: DEMO_BTC_DESTINATION, amount: 8000n }], 1000n),
        what: 'a Taproot PSBT spending two coins of the key (6000 + 5000 sat), paying 8000 sat, fee 1000 sat, change 2000 sat back to the key',
      },
    ];
    const cara = client('cara');
    for (const x of acts) {
      const file = join(dir, `${x.name}.${x.kind === 'btc-psbt' ? 'psbt' : 'msg'}`);
      writeFileSync(file, x.tx);
      say(`[5/8] cara builds ${x.what}: ${file}; her act ${x.name} has request id ${x.opId}`);
      let approvalCid = '';
      const rule = DEMO_POLICY.rules.find((r) => r.id === x.rule);
      if (rule?.action.kind === 'REQUIRE_APPROVAL') {
        // The act matches a REQUIRE_APPROVAL rule: it carries its approval at submission. It goes up
        // for approval first (what `custody admin act propose` does); approvers are shown its
        // display, re-derived from the bytes, and sign it.
        const held = await cara.proposeDecision(JSON.stringify({ kind: 'ActApproved', opId: x.opId, act: { keyId: x.keyId, kind: x.kind, tx: toHex(x.tx), custodian: 'cara' } }));
        say(`      ${x.opId} matches policy rule ${x.rule} (REQUIRE_APPROVAL ${rule.action.k} of ${rule.action.group}): cara proposes the act for approval, decision ${held.cid.slice(0, 16)}`);
        await approve(held.cid, ['approver-1', 'approver-3']);
        approvalCid = held.cid;
      }
      // What `custody admin act submit --custodian-key` does: cara signs the request with her
      // custodian key here (it never reaches a node); every node and every signing kernel checks it.
      const caraKey = running.custodians.find((k) => k.id === 'cara')!;
      const v = await cara.submitActAs(caraKey, { requestId: x.opId, keyId: x.keyId, kind: x.kind, tx: x.tx, approvalCid, declared: { amount: x.amount.toString(), destination: x.destination } });
      say(`      cara signs her request ${x.opId} with her custodian key and submits it with ${x.keyId} (double-checking ${x.amount} to ${x.destination}${approvalCid ? ', with its approval' : ''}): ${v.state} (${v.receipts.map((r) => r.type).join(', ')}); the node derived:`);
      for (const line of formatAct(v).split('\n').slice(1, 4)) say(`      ${line}`);
      let shown = 0;
      const progress = (w: ActView): void => {
        for (const n of w.notes.slice(shown)) say(`      ${n.reason ? `${n.reason}: ` : ''}${n.text}`);
        shown = w.notes.length;
        say(`      ${w.opId}: ${w.state}`);
      };
      // The gate re-judges the act under the policy in force: the small payment's rule allows it,
      // the larger one is released by the approval it was admitted with.
      const w = await cara.watch(x.opId, progress, (y) => ['Published', 'Denied', 'Aborted'].includes(y.state));
      if (w.state !== 'Published') throw new CustodyError((w.reason || 'INTERNAL') as never, `${x.opId} ended ${w.state}`);
      const signed = await cara.showAct(x.opId);
      say(`      ${x.opId} signed: ${signed.signatures.length} signature(s), one per message; the signed transaction${signed.txid ? ` ${signed.txid}` : ''}, ready to broadcast:`);
      say(`        ${signed.signedTx || `(not finalized: ${signed.factsRefused || 'no signed transaction'})`}`);
      const s = await cara.settleAct(x.opId, signed.txid || `confirmed-${x.opId}-${randomBytes(4).toString('hex')}`);
      say(`      ${x.opId}: ${s.state}; confirmation ${s.confirmation}`);
    }

    // Share backups to a custodian whose identity is split among guardians, and a drill.
    if (running.daemons !== undefined) await backupDrill(dir, running.daemons, client, approve);
    else say('[6/8] share backups: written by `custody node` daemons only; this run has the nodes in this process, so no backup policy and no drill');

    say('[7/8] the chronicle:');
    const ch = await audra.chronicle();
    for (const v of ch.acts) for (const line of formatAct(v).split('\n')) say(`      ${line}`);

    say('[8/8] evidence:');
    for (const x of acts) {
      const json = (await audra.exportEvidence(x.opId)).bundleJson;
      const file = join(dir, `evidence-${x.name}.json`);
      writeFileSync(file, json + '\n');
      const b = JSON.parse(json) as Bundle;
      const chain = verifyEvidenceBundle(b);
      const sig = verifyBundleSignature(b);
      const cli = spawnSync(process.execPath, [CLI_PATH, 'evidence', 'verify', file], { encoding: 'utf8' });
      const carried = actFromCbor(decode(fromHex(b.act)));
      say(`      ${file}: ${b.signature?.ciphersuite} group key ${b.signature?.groupPublicKey}`);
      say(`        the act in the bundle carries its ${carried.kind} transaction (${carried.tx.length} bytes, from ${carried.initiator}): ${formatUnits(carried.amount, b.signature?.assets[carried.asset]?.decimals ?? 0)} ${carried.asset} to ${carried.destination}, display digest ${toHex(carried.displayHash).slice(0, 16)}`);
      (b.signature?.messages ?? []).forEach((m, i) => say(`        message ${i} ${m.length > 128 ? `${m.slice(0, 128)}…` : m}: signature ${b.signature?.signatures[i]}`));
      say(`        finalized transaction ${b.signature?.finalized}`);
      say(`        signers ${(b.signature?.signers ?? []).map((m) => m.node).join(', ')} (the set the ledger fixed for its permit)`);
      say(`        custody evidence verify: exit ${cli.status}: ${(cli.stdout + cli.stderr).trim()}`);
      say(`        receipt chain ${chain.ok ? `ok, admitted by rule ${chain.ruleId ?? '(none)'}` : `BROKEN ${chain.reason}`}; signature ${sig.ok ? `verifies (${b.signature?.ciphersuite === 'taproot' ? 'BIP340' : 'RFC 8032'})` : `${sig.reason}: ${sig.detail}`}`);
      if (cli.status !== 0 || !chain.ok || !sig.ok) throw new CustodyError('SIGNATURE_INVALID', `evidence of ${x.opId} does not verify`);
    }
    await provenEvidence({ dir, audra, cara, custodian: running.custodians.find((k) => k.id === 'cara')!, acts, deny: await buildSolanaTransfer(contextOf('treasury-ed25519'), [{ address: DEMO_SOL_DESTINATION, amount: 2_000_000n }], DEMO_BLOCKHASH) });
    if (running.daemons !== undefined) auditExport(dir, running.daemons);
    say(`custody demo: done in ${((Date.now() - t0) / 1000).toFixed(1)} s; everything stopped; files in ${dir}`);
  } finally {
    for (const c of clients) c.close();
    await running.stop();
  }
}

/**
 * The auditor's way: the cluster's trust policy exported once, then every act's proven bundle
 * (v2) checked against it by `custody evidence verify --trust`, a Denied act's too, and the first
 * and last bundles' checkpoints checked for one append-only history.
 */
async function provenEvidence(o: { dir: string; audra: AdminClient; cara: AdminClient; custodian: { id: string; secretKey: Uint8Array }; acts: readonly { name: string; opId: string }[]; deny: Uint8Array }): Promise<void> {
  const policy = join(o.dir, 'trust-policy.txt');
  writeFileSync(policy, (await o.audra.exportTrustPolicy()).policy);
  say(`      the cluster's trust policy (origin, node keys, cosignature quorum): ${policy}`);
  const denyId = randomBytes(16).toString('hex');
  const submitDenied = async (): Promise<void> => {
    let denied: string;
    try {
      const v = await o.cara.submitActAs(o.custodian, { requestId: denyId, keyId: 'treasury-ed25519', kind: 'solana', tx: o.deny, declared: { amount: '2000000', destination: DEMO_SOL_DESTINATION } });
      denied = `${v.state} ${v.reason}`;
    } catch (e) {
      if (!isCustodyError(e)) throw e;
      denied = `refused ${e.reason}`;
    }
    say(`      cara submits ${denyId}, 2000000 lamports, above every rule: ${denied}`);
  };
  const files: string[] = [];
  for (const x of [...o.acts, { name: 'deny-sol-1', opId: denyId }]) {
    if (x.opId === denyId) await submitDenied();
    // Each bundle after the first also proves its checkpoint extends the first one's.
    const first = files.length === 0 ? 0 : Number((JSON.parse(readFileSync(files[0]!, 'utf8')) as { log: { checkpoint: string } }).log.checkpoint.split('\n')[1]);
    const file = join(o.dir, `evidence-${x.name}.v2.json`);
    writeFileSync(file, `${(await o.audra.exportProvenEvidence(x.opId, first)).bundleJson}\n`);
    files.push(file);
    const cli = spawnSync(process.execPath, [CLI_PATH, 'evidence', 'verify', '--trust', policy, file], { encoding: 'utf8' });
    say(`      ${file}: custody evidence verify --trust: exit ${cli.status}: ${(cli.stdout + cli.stderr).trim()}`);
    if (cli.status !== 0) throw new CustodyError('EVIDENCE_UNPROVEN', `the proven evidence of ${x.opId} does not verify with the trust policy`);
  }
  const both = spawnSync(process.execPath, [CLI_PATH, 'evidence', 'verify', '--trust', policy, files[0]!, files[files.length - 1]!], { encoding: 'utf8' });
  say(`      custody evidence verify --trust ${policy} <first> <last>: exit ${both.status}: ${(both.stdout + both.stderr).trim().split('\n').pop()}`);
  if (both.status !== 0) throw new CustodyError('TLOG_PROOF_INVALID', 'the first and last bundles are not one append-only history');
}

/**
 * The SIEM's view (README "Operator audit and SIEM export"): `custody admin audit export` as JSON
 * lines, every record with its leaf in the cosigned Merkle tree; the operator calls of this run
 * are among them.
 */
function auditExport(dir: string, d: NonNullable<Running['daemons']>): void {
  const file = join(dir, 'audit.jsonl');
  const out = custody(['admin', 'audit', 'export', '--format', 'jsonl', '--node', d.node, '--node-id', d.nodeId, '--certs', d.certs, '--as', 'audra'], 'the audit export');
  writeFileSync(file, out);
  const records = out.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { category: string });
  const count = (c: string): number => records.filter((r) => r.category === c).length;
  say(`      custody admin audit export --format jsonl: ${records.length} records in ${file} (${count('chronicle')} chronicle, ${count('governance')} governance, ${count('operator')} operator calls), each with its leaf index and hash`);
  if (count('operator') === 0) throw new CustodyError('INTERNAL', 'the audit export holds no operator call, though every admin call of this run is recorded');
}

/** A `custody` command as a child process; its output, or a refusal naming what failed. */
function custody(args: readonly string[], what: string): string {
  const r = spawnSync(process.execPath, [CLI_PATH, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new CustodyError('INTERNAL', `${what}: custody ${args.slice(0, 3).join(' ')} exited ${r.status}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/**
 * Step 6, the backup runbook (README "Key share backups to custodians" and "Drills"): a custodian
 * age identity, a BackupPolicy decided by approvers, every kernel's backup written and recorded,
 * the identity split 3-of-5 among guardians and destroyed, the backup folders copied off the
 * hosts, and `custody admin backup drill` with three guardian files: every share decrypted and
 * checked in a throwaway process, the drill recorded in the ledger and listed.
 */
async function backupDrill(dir: string, d: NonNullable<Running['daemons']>, client: (as: string) => AdminClient, approve: (cid: string, who: string[]) => Promise<void>): Promise<void> {
  const conn = ['--node', d.node, '--node-id', d.nodeId, '--certs', d.certs];
  const idFile = join(dir, 'custodian-a.id');
  const made = custody(['guardian', 'identity', '--out', idFile], 'the custodian identity');
  const recipient = /^(age1[0-9a-z]{58})$/m.exec(made)?.[1];
  if (recipient === undefined) throw new CustodyError('INTERNAL', `guardian identity printed no recipient: ${made}`);
  say(`[6/8] custody guardian identity: custodian-a's age identity in ${idFile}, recipient ${recipient}`);
  const p = await client('approver-1').proposeDecision(JSON.stringify({ kind: 'BackupPolicy', recipients: [{ label: 'custodian-a', recipient }] }));
  say(`      approver-1 proposes a BackupPolicy to custodian-a (custody admin backup policy --custodian custodian-a=${recipient.slice(0, 12)}...): decision ${p.cid.slice(0, 16)}`);
  await approve(p.cid, ['approver-1', 'approver-2']);
  const audra = client('audra');
  const deadline = Date.now() + 60_000;
  let listed = await audra.listBackups();
  while (listed.missing > 0 || listed.entries.length === 0) {
    if (Date.now() > deadline) throw new CustodyError('REMOTE_TIMEOUT', `the kernels did not back up their shares: ${listed.missing} missing`);
    await new Promise((r) => setTimeout(r, 100));
    listed = await audra.listBackups();
  }
  say(`      every kernel encrypted its share of each key to custodian-a; each node wrote the file once and recorded it (KeyBackedUp): ${listed.entries.length} backups, none missing`);
  const guardians = join(dir, 'guardians');
  custody(['guardian', 'split', '--identity-file', idFile, '--shares', '5', '--threshold', '3', '--out', guardians, '--label', 'custodian-a'], 'the guardian split');
  rmSync(idFile);
  const files = readdirSync(guardians).sort().map((n) => join(guardians, n));
  say(`      custody guardian split --shares 5 --threshold 3: custodian-a's identity in ${files.length} guardian files (${guardians}); the identity file is destroyed`);
  const copies = join(dir, 'backup-copies');
  for (const b of d.backupDirs) cpSync(b.dir, join(copies, b.id), { recursive: true });
  say(`      the nodes' backup folders copied off the hosts to ${copies}`);
  const keyId = 'treasury-ed25519';
  const args = ['admin', 'backup', 'drill', '--key-id', keyId, '--guardian-shares', files[0]!, files[2]!, files[4]!, '--backups', ...d.backupDirs.map((b) => join(copies, b.id)), ...conn, '--as', 'audra'];
  say(`      custody admin backup drill --key-id ${keyId} --guardian-shares <3 of the 5 guardian files> --backups <the copies> --as audra:`);
  for (const line of custody(args, 'the backup drill').trimEnd().split('\n')) say(`        | ${line}`);
  for (const line of formatBackupList(await audra.listBackups()).split('\n')) say(`      ${line}`);
}

export const demoCommand: CommandModule<object, Args> = {
  command: 'demo',
  describe: 'run the whole governed lifecycle on this machine: 3 nodes, 3 kernels, DKG for ed25519 (solana-devnet) and Taproot (bitcoin-regtest), approvals, a Solana transfer and a two-input Taproot PSBT signed through the publication gate, chronicle and evidence',
  builder: (y) => y
    .option('dir', { type: 'string', default: './.custody/demo', describe: 'data directory (created; a previous demo run there is replaced)' })
    .option('nodes', { choices: ['daemons', 'in-process'] as const, default: 'daemons' as const, describe: 'nodes as `custody node` child processes, or as Raft drivers in this process' })
    .option('kernels', { choices: ['auto', 'process', 'twin'] as const, default: 'auto' as const, describe: 'secret kernels as child processes, or in-memory twins (in-process nodes only); auto uses processes when they accept the ledger\'s key epochs' })
    .option('strict', { type: 'boolean', default: false, describe: 'fail instead of falling back to in-process nodes when the daemons do not serve the lifecycle' }) as never,
  handler: async (a) => {
    try {
      await run(a);
    } catch (e) {
      if (!isCustodyError(e)) throw e;
      process.stderr.write(`${e.reason}: ${e.detail}\n`);
      process.exitCode = 3;
    }
  },
};
