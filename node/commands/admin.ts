/**
 * `custody admin ...`: the operator CLI of the admin API (proto/admin.proto). Every call goes over
 * mutual TLS with the operator's certificate; a refusal prints `REASON: detail` on stderr and the
 * command exits 3 (2 for usage errors).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { CustodyError, isCustodyError } from '../../proto/errors.js';
import { decode, fromHex, toHex } from '../../ledger/encoding.js';
import { X509Certificate } from 'node:crypto';
import { canonicalSerial, decisionBodyFromCbor, decisionCid, decisionSigningBytes, ed25519Sign, makeApproverKey } from '../../ledger/decision.js';
import { AdminClient, type ActView, type DecisionReply } from '../admin/client.js';
import { OPERATOR_ROLES, checkOperatorDays, issueOperatorCert, type OperatorRole } from '../admin/roles.js';
import { certs as certLimits } from '../../proto/limits.js';
import { ensureCa } from '../certs.js';
import { adminSnapshotCommand } from './snapshot.js';
import { adminPolicyCommand } from './policy.js';
import { adminBackupCommand } from './backup.js';
import { adminKernelCommand, adminShareCommand } from './share.js';
import { leaderCommand, memberCommand, membershipJson, printMembership } from './member.js';
import { actCommand, approveShown, formatAct, keyCommand } from './act.js';
import { operatorCommand } from './operator.js';
import { auditCommand } from './audit.js';

export { formatAct };

export interface Conn {
  node: string;
  'node-id': string;
  certs?: string;
  as?: string;
  ca?: string;
  cert?: string;
  /** The operator's TLS private key file (CUSTODY_ADMIN_KEY), on every command. */
  key?: string;
  json: boolean;
}

const CONN_HELP = 'Connection: --node host:port --node-id <id the node certificate names>, and the operator\'s TLS material as --certs <dir> --as <operator id> (dir/ca.crt, dir/<id>.crt, dir/<id>.key) or --ca/--cert/--key. Every option may also come from the environment as CUSTODY_ADMIN_<OPTION> (e.g. CUSTODY_ADMIN_NODE), except a threshold key\'s id (--key-id), which is named on the command line only.';

/**
 * The connection options, the same on every command: --key (CUSTODY_ADMIN_KEY) is always the
 * operator's TLS key; a command that names a threshold key takes it as --key-id (signingKeyId).
 */
export function connOptions<T>(y: Argv<T>): Argv<T & Conn> {
  return y
    .option('node', { type: 'string', demandOption: true, describe: 'admin address of a node (host:port)' })
    .option('node-id', { type: 'string', demandOption: true, describe: 'the node id its certificate names (checked during the TLS handshake)' })
    .option('certs', { type: 'string', describe: 'directory holding ca.crt and the operator\'s <id>.crt / <id>.key' })
    .option('as', { type: 'string', describe: 'operator id inside --certs' })
    .option('ca', { type: 'string', describe: 'cluster CA certificate (instead of --certs)' })
    .option('cert', { type: 'string', describe: 'operator certificate (instead of --certs)' })
    .option('key', { type: 'string', describe: 'operator private key (instead of --certs)' })
    .option('json', { type: 'boolean', default: false, describe: 'print machine-readable JSON' }) as unknown as Argv<T & Conn>;
}

/**
 * The threshold key a command names (--key-id). It is read from the command line only: an
 * operator's environment holds connection settings, and a key id picked up from it would sign
 * with a key the command line does not show, so CUSTODY_ADMIN_KEY_ID is refused outright.
 */
export function signingKeyId(a: { 'key-id'?: string }, required: string): string {
  if (process.env.CUSTODY_ADMIN_KEY_ID !== undefined) {
    throw new CustodyError('INVALID_ARGUMENT', 'CUSTODY_ADMIN_KEY_ID is set: the threshold key is named with --key-id on the command line only; unset it');
  }
  const id = a['key-id'];
  if (id === undefined || id === '') throw new CustodyError('INVALID_ARGUMENT', required);
  return id;
}

export function client(a: Conn, service: 'Admin' | 'Membership' = 'Admin'): AdminClient {
  let files: { ca: string; cert: string; key: string };
  if (a.certs !== undefined) {
    if (a.as === undefined) throw new CustodyError('INVALID_ARGUMENT', '--certs needs --as <operator id>');
    files = { ca: join(a.certs, 'ca.crt'), cert: join(a.certs, `${a.as}.crt`), key: join(a.certs, `${a.as}.key`) };
  } else {
    if (a.ca === undefined || a.cert === undefined || a.key === undefined) throw new CustodyError('INVALID_ARGUMENT', 'give --certs and --as, or all of --ca, --cert and --key');
    files = { ca: a.ca, cert: a.cert, key: a.key };
  }
  return new AdminClient(a.node, a['node-id'], files, service);
}

/** Runs a handler; a refusal becomes `REASON: detail` on stderr and exit status 3. */
export function run<A extends Conn>(f: (c: AdminClient, a: A) => Promise<void>): (a: A) => Promise<void> {
  return async (a) => {
    let c: AdminClient | null = null;
    try {
      c = client(a);
      await f(c, a);
    } catch (e) {
      if (!isCustodyError(e)) throw e;
      process.stderr.write(`${e.reason}: ${e.detail}\n`);
      process.exitCode = 3;
    } finally {
      c?.close();
    }
  };
}

export const out = (s: string): void => void process.stdout.write(`${s}\n`);

export function formatDecision(d: DecisionReply): string {
  const v = d.verdict ? `  ledger: ${d.verdict.ok ? `applied at index ${d.verdict.index}` : `${d.verdict.reason}: ${d.verdict.detail}`}` : '';
  // An approval of an act not yet submitted: the act as the node derives it (`act approve` re-derives it before signing).
  const act = d.act ? `  the act it approves, as the node shows it:\n${formatAct(d.act, true).replace(/^/gm, '    ')}` : '';
  return [`decision ${d.cid}: ${d.state}, ${d.approvals.length} of ${d.needed} approvals${d.approvals.length ? ` (${d.approvals.join(', ')})` : ''}`, `  body: ${d.bodyJson}`, v, act].filter(Boolean).join('\n');
}

/** An approver key file: {"id", "secretKey": hex, "publicKey": hex}, written 0600. */
export function readApproverKey(path: string): { id: string; secretKey: Uint8Array; publicKey: Uint8Array } {
  let j: { id?: unknown; secretKey?: unknown; publicKey?: unknown };
  try {
    j = JSON.parse(readFileSync(path, 'utf8')) as typeof j;
  } catch (e) {
    throw new CustodyError('INVALID_ARGUMENT', `${path}: not an approver key file: ${(e as Error).message}`);
  }
  if (typeof j.id !== 'string' || typeof j.secretKey !== 'string' || !/^[0-9a-f]{64}$/.test(j.secretKey)) throw new CustodyError('INVALID_ARGUMENT', `${path}: needs "id" and a 32-byte hex "secretKey"`);
  const k = makeApproverKey(j.id, fromHex(j.secretKey));
  return { id: k.id, secretKey: k.secretKey, publicKey: k.publicKey };
}

export type Cmd<A> = CommandModule<object, A>;

const status: Cmd<Conn> = {
  command: 'status',
  describe: 'cluster status as this node sees it: Raft, governance, nodes, keys',
  builder: (y) => connOptions(y),
  handler: run(async (c, a) => {
    const s = await c.status();
    if (a.json) return out(JSON.stringify({ ...s, membership: await membershipJson(c, a) }, null, 2));
    out(`node ${s.nodeId} (you are ${s.caller}); leader ${s.leader || 'unknown'}, term ${s.term}, commit ${s.commit}, applied ${s.applied}`);
    out(`cluster ${s.clusterId || '(no genesis)'}; governance epoch ${s.governanceEpoch}, head ${s.governanceHead.slice(0, 16)}; ${s.frozen ? `FROZEN: ${s.frozen}` : 'not frozen'}; state root ${s.stateRoot.slice(0, 16)}`);
    for (const n of s.nodes) out(`  node ${n.id}: ${n.status}${n.equivocated ? ', EQUIVOCATED' : ''}, passport ${n.passport}${n.fenceReporters.length > 0 ? `; fencing reported by ${n.fenceReporters.join(', ')} (${n.fenceReporters.length} of ${n.fenceNeeded} voters)` : ''}`);
    await printMembership(c, a);
    for (const k of s.keys) out(`  key ${k.id} (${k.scheme}): ${k.status}${k.activeEpoch >= 0 ? ` at epoch ${k.activeEpoch}` : ''}, epochs ${k.epochs.join(' ')}${(k.dealers ?? []).length > 0 ? `, dealers ${k.dealers.join(' ')}` : ''}${k.publicKey ? `, public key ${k.publicKey}` : ''}`);
    out(`  ${s.acts} signing acts, ${s.height} events in the hash chain`);
  }),
};

const decision: Cmd<object> = {
  command: 'decision <action>',
  describe: 'governance decisions: propose, show, list, approve (sign with your approver key), submit',
  builder: (y) => y
    .command<Conn & { 'action-json': string; 'ttl-ms': number }>({
      command: 'propose',
      describe: 'put a decision up for approval; prints its cid and the exact body approvers sign',
      builder: (y2) => connOptions(y2)
        .option('action-json', { type: 'string', demandOption: true, describe: 'the action, e.g. \'{"kind":"DkgAuthorized","keyId":"k1","scheme":"ed25519","threshold":2,"participants":["n1","n2","n3"]}\'; byte fields in hex; KeyActivated may omit keyReadyCid' })
        .option('ttl-ms', { type: 'number', default: 0, describe: 'how long the decision stays valid (0 = 24 h)' })
        .example('$0 admin decision propose --action-json \'{"kind":"EmergencyFreeze","reason":"incident 42"}\' --node 127.0.0.1:7201 --node-id n1 --certs certs --as alice', 'propose a freeze'),
      handler: run(async (c, a) => {
        const d = await c.proposeDecision(a['action-json'], a['ttl-ms']);
        out(a.json ? JSON.stringify({ ...d, bodyCbor: d.bodyCbor.toString('hex') }, null, 2) : formatDecision(d));
      }),
    })
    .command<Conn & { cid: string; 'key-file': string }>({
      command: 'approve',
      describe: 'sign a pending decision with your Ed25519 approver key (the key never leaves this machine); at quorum the node submits it',
      builder: (y2) => connOptions(y2)
        .option('cid', { type: 'string', demandOption: true, describe: 'the decision\'s cid' })
        .option('key-file', { type: 'string', demandOption: true, describe: 'approver key file {"id","secretKey"} (see `custody admin approver-key`)' }),
      handler: run(async (c, a) => {
        const key = readApproverKey(a['key-file']);
        const d = await c.getDecision(a.cid);
        // Sign only what was shown: the body must hash to the cid that was asked for.
        const body = decisionBodyFromCbor(decode(new Uint8Array(d.bodyCbor)));
        if (toHex(decisionCid(body)) !== a.cid.toLowerCase()) throw new CustodyError('BINDING_MISMATCH', 'the node returned a body that is not the decision asked for');
        let r: DecisionReply;
        if (body.action.kind === 'ActApproved' || body.action.kind === 'PublicationReleased') {
          // An approval of an act shows, and binds, the transaction's display (act.ts verifiedApproval).
          r = await approveShown(c, d, a.cid, a['key-file']);
        } else {
          process.stderr.write(`signing as ${key.id}: ${d.bodyJson}\n`);
          r = await c.approveDecision(a.cid, key.id, ed25519Sign(decisionSigningBytes(body), key.secretKey));
        }
        out(a.json ? JSON.stringify({ ...r, bodyCbor: r.bodyCbor.toString('hex') }, null, 2) : formatDecision(r));
      }),
    })
    .command<Conn & { cid: string }>({
      command: 'show',
      describe: 'a decision held on this node, with its approvals and ledger verdict',
      builder: (y2) => connOptions(y2).option('cid', { type: 'string', demandOption: true }),
      handler: run(async (c, a) => out(formatDecision(await c.getDecision(a.cid)))),
    })
    .command<Conn>({
      command: 'list',
      describe: 'decisions held on this node',
      builder: (y2) => connOptions(y2),
      handler: run(async (c) => {
        for (const d of (await c.listDecisions()).decisions) out(formatDecision(d));
      }),
    })
    .command<Conn & { file: string }>({
      command: 'submit',
      describe: 'submit a complete decision (hex of canonical CBOR {body, approvals}) as it is; the ledger judges its quorum',
      builder: (y2) => connOptions(y2).option('file', { type: 'string', demandOption: true, describe: 'file with the decision in hex' }),
      handler: run(async (c, a) => out(formatDecision(await c.submitDecision(fromHex(readFileSync(a.file, 'utf8').trim()))))),
    })
    .demandCommand(1, 'name a decision action'),
  handler: () => undefined,
};

const chronicle: Cmd<Conn & { limit: number }> = {
  command: 'chronicle',
  describe: 'the chronicle: every act with its states, receipts and reason codes, and every key',
  builder: (y) => connOptions(y).option('limit', { type: 'number', default: 0, describe: 'only the last N acts' }),
  handler: run(async (c, a) => {
    const ch = await c.chronicle(a.limit);
    if (a.json) return out(JSON.stringify(ch, null, 2));
    for (const k of ch.keys) out(`key ${k.id} (${k.scheme}): ${k.status}${k.activeEpoch >= 0 ? ` at epoch ${k.activeEpoch}` : ''}; epochs ${k.epochs.join(' ')}`);
    for (const v of ch.acts) out(formatAct(v));
  }),
};

const fence: Cmd<Conn & { target: string; reason: string; passport: string; 'approver-key': string; 'ttl-ms': number }> = {
  command: 'fence',
  describe: 'fence a node\'s passport by a NodeFenced decision signed here with your approver key (the key never leaves this machine), e.g. after equivocation evidence: the ledger refuses its proposals and its kernel takes no part (SPLIT_BRAIN_FENCED) until a NodeRebound decision gives it a new passport. The freeze quorum (freezeThreshold signers with the governor or security role) fences; below it the decision waits for `decision approve --cid`. No signature, no fence (FENCE_UNSIGNED)',
  builder: (y) => connOptions(y)
    .option('target', { type: 'string', demandOption: true, describe: 'the node to fence' })
    .option('reason', { type: 'string', demandOption: true, describe: 'why, recorded in the ledger' })
    .option('approver-key', { type: 'string', demandOption: true, describe: 'your approver key file {"id","secretKey"} (see `custody admin approver-key`): it signs the NodeFenced decision' })
    .option('passport', { type: 'string', default: '', describe: 'the passport to fence (default: the node\'s current one, as the node you call shows it)' })
    .option('ttl-ms', { type: 'number', default: 0, describe: 'how long the decision stays valid for other approvers to add theirs (0 = 24 h)' })
    .example('$0 admin fence --target n3 --reason "two signed votes in term 7" --approver-key alice.key.json --node 127.0.0.1:7201 --node-id n1 --certs certs --as alice', 'fence n3 by a decision alice signs'),
  handler: run(async (c, a) => {
    const key = readApproverKey(a['approver-key']);
    const d = await c.fenceNodeAs(key, {
      nodeId: a.target, reason: a.reason, passport: a.passport, ttlMs: a['ttl-ms'],
      onBody: (b) => process.stderr.write(`signing as ${key.id}: NodeFenced ${b.action.kind === 'NodeFenced' ? `${b.action.nodeId} passport ${b.action.passport}` : ''} (cluster ${b.clusterId}, governance epoch ${b.governanceEpoch})\n`),
    });
    if (a.json) return out(JSON.stringify({ ...d, bodyCbor: d.bodyCbor.toString('hex') }, null, 2));
    out(formatDecision(d));
    if (d.state === 'pending') out(`  ${d.needed - d.approvals.length} more approval(s) fence ${a.target}: custody admin decision approve --cid ${d.cid} --key-file <approver key>`);
  }),
};

const evidence: Cmd<Conn & { op: string; out: string; format: 'v1' | 'v2'; 'consistent-with'?: string }> = {
  command: 'evidence',
  describe: 'export the evidence bundle of an act to a file: v2 (default) proves each of its ledger entries under a checkpoint a majority of the nodes cosigns now (verify with custody evidence verify --trust); v1 is the act\'s receipts and signature block alone',
  builder: (y) => connOptions(y)
    .option('op', { type: 'string', demandOption: true })
    .option('out', { type: 'string', demandOption: true, describe: 'file to write' })
    .option('format', { choices: ['v1', 'v2'] as const, default: 'v2' as const, describe: 'v2: proven (a published or ended act); v1: self-vouched (any act)' })
    .option('consistent-with', { type: 'string', describe: 'an older v2 bundle of this cluster: the new bundle also carries the consistency proof from its checkpoint' }),
  handler: run(async (c, a) => {
    if (a.format === 'v1') {
      if (a['consistent-with'] !== undefined) throw new CustodyError('INVALID_ARGUMENT', '--consistent-with needs --format v2');
      const r = await c.exportEvidence(a.op);
      writeFileSync(a.out, r.bundleJson + '\n');
      out(`evidence bundle (v1, self-vouched) of ${a.op} written to ${a.out}`);
      return;
    }
    let from = 0;
    if (a['consistent-with'] !== undefined) {
      let older: { log?: { checkpoint?: unknown } };
      try {
        older = JSON.parse(readFileSync(a['consistent-with'], 'utf8')) as typeof older;
      } catch (e) {
        throw new CustodyError('INVALID_ARGUMENT', `--consistent-with ${a['consistent-with']}: ${(e as Error).message}`);
      }
      const cp = typeof older.log?.checkpoint === 'string' ? older.log.checkpoint.split('\n')[1] : undefined;
      if (cp === undefined || !/^[1-9][0-9]*$/.test(cp)) throw new CustodyError('INVALID_ARGUMENT', `--consistent-with ${a['consistent-with']}: not a v2 bundle with a checkpoint`);
      from = Number(cp);
    }
    const r = await c.exportProvenEvidence(a.op, from);
    writeFileSync(a.out, r.bundleJson + '\n');
    out(`evidence bundle (v2, proven) of ${a.op} written to ${a.out}`);
  }),
};

const trustExport: Cmd<Conn & { out: string; current: boolean }> = {
  command: 'export',
  describe: 'write the cluster\'s trust policy to a file: the genesis policy (origin, node keys, cosignature quorum) and, after each roster change, the block of the new voters signed by a quorum of the roster before it; what an auditor verifies proven evidence with. A block still waiting for signatures is left out (the output says which serial waits for how many), and the file ends at the last complete block',
  builder: (y) => connOptions(y)
    .option('out', { type: 'string', demandOption: true, describe: 'file to write' })
    .option('current', { type: 'boolean', default: false, describe: 'refuse (TRUST_POLICY_PENDING, nothing written) unless the file ends at the block of the voters in force' }),
  handler: run(async (c, a) => {
    const r = await c.exportTrustPolicy(a.current);
    writeFileSync(a.out, r.policy);
    out(`trust policy written to ${a.out}:`);
    out(r.policy.trimEnd());
    if (r.waiting !== '') out(`not included: ${r.waiting}`);
  }),
};

const trust: CommandModule<object, object> = {
  command: 'trust <command>',
  describe: 'the cluster\'s trust policy for auditors',
  builder: (y) => y.command(trustExport as never).demandCommand(1, 'name a trust command') as never,
  handler: () => {},
};

const operatorCert: Cmd<{ dir: string; id: string; role: OperatorRole; days: number }> = {
  command: 'operator-cert',
  describe: 'issue (or rotate: issue again) an operator certificate carrying one role (CN = id, OU = operator, SAN URI urn:custody:role:<role>) from the cluster CA in --dir; a new key and serial every time',
  builder: (y) => y
    .option('dir', { type: 'string', demandOption: true, describe: 'directory holding ca.crt and ca.key (created if missing)' })
    .option('id', { type: 'string', demandOption: true, describe: 'operator id (an approver\'s must equal its roster id)' })
    .option('role', { choices: OPERATOR_ROLES, demandOption: true, describe: 'key-generator | custodian | approver | auditor (read-only)' })
    .option('days', { type: 'number', default: certLimits.operatorDaysDefault, describe: `validity in days (at most ${certLimits.operatorDaysMax}); rotate before it ends by running this again` }) as never,
  handler: (a) => {
    checkOperatorDays(a.days);
    ensureCa(a.dir);
    const r = issueOperatorCert(a.dir, a.id, a.role, a.days);
    const x = new X509Certificate(readFileSync(r.cert));
    out(`issued ${a.role} certificate ${r.cert} (key ${r.key}), serial ${canonicalSerial(x.serialNumber)}, valid until ${new Date(x.validTo).toISOString()}`);
  },
};

const approverKey: Cmd<{ id: string; out: string; custodian: boolean }> = {
  command: 'approver-key',
  describe: 'create an Ed25519 approver key file (0600, JSON {"id","secretKey","publicKey"}) and print its public key for the roster; with --custodian, a custodian\'s request-signing key (roster role `custodian`, for `act submit --custodian-key`)',
  builder: (y) => y.option('id', { type: 'string', demandOption: true }).option('out', { type: 'string', demandOption: true })
    .option('custodian', { type: 'boolean', default: false, describe: 'a custodian key: prints its roster entry with the role custodian (it signs act requests and never counts toward a quorum)' }) as never,
  handler: (a) => {
    const k = makeApproverKey(a.id);
    writeFileSync(a.out, JSON.stringify({ id: k.id, secretKey: toHex(k.secretKey), publicKey: toHex(k.publicKey) }, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
    if (a.custodian) {
      out(`custodian ${a.id}: public key ${toHex(k.publicKey)} (secret in ${a.out})`);
      out(`roster entry (genesis --custodian ${a.id}=${toHex(k.publicKey)}, or an ApproversChanged decision): ${JSON.stringify({ id: a.id, publicKey: toHex(k.publicKey), roles: ['custodian'] })}`);
      return;
    }
    out(`approver ${a.id}: public key ${toHex(k.publicKey)} (secret in ${a.out})`);
  },
};

export const adminCommand: CommandModule<object, object> = {
  command: 'admin <command>',
  describe: 'operate a cluster over the admin API (mTLS operator certificates; roles key-generator, custodian, approver, auditor)',
  builder: (y) => y
    .env('CUSTODY_ADMIN')
    .command(status)
    .command(decision)
    .command(actCommand)
    .command(keyCommand)
    .command(chronicle)
    .command(fence)
    .command(memberCommand)
    .command(leaderCommand)
    .command(evidence)
    .command(trust)
    .command(operatorCert)
    .command(operatorCommand)
    .command(approverKey)
    .command(adminSnapshotCommand)
    .command(adminPolicyCommand)
    .command(adminBackupCommand)
    .command(adminKernelCommand)
    .command(adminShareCommand)
    .command(auditCommand)
    .epilogue(`${CONN_HELP}\n\nA refusal prints "REASON: detail" (reason codes of proto/reasons.ts) and exits 3.`)
    .demandCommand(1, 'name an admin command'),
  handler: () => undefined,
};
