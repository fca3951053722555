/**
 * Operator audit and SIEM export (node/admin/audit.ts, audit-format.ts, `custody admin audit
 * export`) on a three-node cluster with the admin API over mTLS:
 *  - every admin call is an OperatorCall in the log: operator id, role, certificate serial (read
 *    from the operator's certificate here), method, sha256 of the request bytes (computed here
 *    from the request), verdict and reason code; an allowed call and a refused one;
 *  - the JSON lines export holds chronicle, governance and operator records, every line valid
 *    against proto/audit.schema.json (checked by a validator written here for the schema's
 *    keywords), each leaf hash proven in the node's tree by an inclusion proof;
 *  - the CEF lines parse (a parser written here from the CEF header and escaping rules) back to
 *    the same facts; `--follow` delivers a record made after it started;
 *  - syslog records sent over TCP reach a real rsyslogd (Debian package, started here with its
 *    own configuration on a loopback port), which parses them as RFC 5424: facility, severity,
 *    MSGID, structured data and the JSON message;
 *  - the ledger refuses an OperatorCall in another node's name or malformed (attacker's view).
 */
import t from 'tap';
import fc from 'fast-check';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as grpc from '@grpc/grpc-js';
import { adminPackage } from '../../node/admin/server.js';
import type { AuditRecord } from '../../node/admin/audit.js';
import { formatCef } from '../../node/admin/audit-format.js';
import { canonicalSerial } from '../../ledger/decision.js';
import { verifyInclusion } from '../../ledger/tlog/merkle.js';
import { fromHex } from '../../ledger/encoding.js';
import { encodeEvent, type LedgerEvent } from '../../ledger/events.js';
import { signProposed } from '../../ledger/proposer-sig.js';
import { ScriptedCluster } from '../../ledger/scenario.js';
import { until } from '../../node/lifecycle/local-cluster.js';
import { actTx, startHarness, submitAs } from './harness.js';

const SCHEMA = JSON.parse(readFileSync(fileURLToPath(new URL('../../../proto/audit.schema.json', import.meta.url)), 'utf8')) as Schema;

// ------------------------------------------------------------------------------------------------
// A validator for the JSON Schema keywords proto/audit.schema.json uses (draft 2020-12 meaning):
// type, const, enum, pattern, minimum, maxLength, required, properties, additionalProperties,
// allOf, if/then. Any other keyword in the schema fails the test, so the file cannot outgrow it.
// ------------------------------------------------------------------------------------------------
type Schema = { [k: string]: unknown };
const KNOWN = new Set(['$schema', '$id', 'title', 'description', 'type', 'const', 'enum', 'pattern', 'minimum', 'maxLength', 'required', 'properties', 'additionalProperties', 'allOf', 'if', 'then']);

function typeOk(v: unknown, type: string): boolean {
  switch (type) {
    case 'object': return typeof v === 'object' && v !== null && !Array.isArray(v);
    case 'array': return Array.isArray(v);
    case 'string': return typeof v === 'string';
    case 'integer': return typeof v === 'number' && Number.isInteger(v);
    case 'number': return typeof v === 'number';
    case 'boolean': return typeof v === 'boolean';
    case 'null': return v === null;
    default: throw new Error(`schema type ${type} not supported`);
  }
}

function validate(v: unknown, s: Schema, path = '$'): string[] {
  for (const k of Object.keys(s)) if (!KNOWN.has(k)) throw new Error(`schema keyword ${k} at ${path} is not supported by this validator`);
  const errs: string[] = [];
  if (s.type !== undefined && !typeOk(v, s.type as string)) return [`${path}: not ${String(s.type)}`];
  if ('const' in s && JSON.stringify(v) !== JSON.stringify(s.const)) errs.push(`${path}: not ${JSON.stringify(s.const)}`);
  if (s.enum !== undefined && !(s.enum as unknown[]).some((x) => JSON.stringify(x) === JSON.stringify(v))) errs.push(`${path}: not one of ${JSON.stringify(s.enum)}`);
  if (typeof v === 'string') {
    if (s.pattern !== undefined && !new RegExp(s.pattern as string, 'u').test(v)) errs.push(`${path}: ${JSON.stringify(v.slice(0, 80))} does not match ${String(s.pattern)}`);
    if (s.maxLength !== undefined && [...v].length > (s.maxLength as number)) errs.push(`${path}: longer than ${String(s.maxLength)}`);
  }
  if (typeof v === 'number' && s.minimum !== undefined && v < (s.minimum as number)) errs.push(`${path}: below ${String(s.minimum)}`);
  if (typeOk(v, 'object')) {
    const o = v as Record<string, unknown>;
    for (const r of (s.required as string[] | undefined) ?? []) if (!(r in o)) errs.push(`${path}: missing ${r}`);
    const props = (s.properties as Record<string, Schema> | undefined) ?? {};
    for (const [k, x] of Object.entries(o)) {
      if (props[k] !== undefined) errs.push(...validate(x, props[k]!, `${path}.${k}`));
      else if (s.additionalProperties === false) errs.push(`${path}: unexpected property ${k}`);
    }
  }
  for (const sub of (s.allOf as Schema[] | undefined) ?? []) errs.push(...validate(v, sub, path));
  if (s.if !== undefined && validate(v, s.if as Schema, path).length === 0 && s.then !== undefined) errs.push(...validate(v, s.then as Schema, path));
  return errs;
}

// ------------------------------------------------------------------------------------------------
// A CEF parser, from the format's rules: 7 header fields after "CEF:", '|' and '\' escaped in
// the header; the extension is key=value pairs separated by spaces, '=' '\' and newlines escaped.
// ------------------------------------------------------------------------------------------------
function parseCef(line: string): { header: string[]; ext: Record<string, string> } {
  if (!line.startsWith('CEF:')) throw new Error('no CEF: prefix');
  const header: string[] = [];
  let cur = '';
  let i = 4;
  for (; i < line.length && header.length < 7; i++) {
    const c = line[i]!;
    if (c === '\\' && (line[i + 1] === '|' || line[i + 1] === '\\')) cur += line[++i];
    else if (c === '|') {
      header.push(cur);
      cur = '';
    } else cur += c;
  }
  if (header.length !== 7) throw new Error('fewer than 7 header fields');
  const rest = line.slice(i);
  const ext: Record<string, string> = {};
  // A key starts where an unescaped '=' is preceded by a space-free token after a space.
  const keyRe = /(?:^| )([A-Za-z0-9_]+)=/g;
  const keys: { key: string; start: number; valueStart: number }[] = [];
  for (let m = keyRe.exec(rest); m !== null; m = keyRe.exec(rest)) {
    const eq = m.index + m[0].length - 1;
    let bs = 0;
    for (let j = eq - 1; j >= 0 && rest[j] === '\\'; j--) bs++;
    if (bs % 2 === 0) keys.push({ key: m[1]!, start: m.index, valueStart: eq + 1 });
  }
  keys.forEach((k, n) => {
    const raw = rest.slice(k.valueStart, n + 1 < keys.length ? keys[n + 1]!.start : rest.length);
    ext[k.key] = raw.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c === 'r' ? '\r' : c));
  });
  return { header, ext };
}

interface Rec { leafIndex: number; leafHash: string; ledgerIndex: number; category: string; type: string; actor: string; outcome: string; reason: string; stampMs: number; event: Record<string, unknown> }

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

t.test('the ledger refuses an OperatorCall in another node\'s name, or malformed', async (t) => {
  const s = new ScriptedCluster({ label: 'audit-refusals' });
  s.genesis();
  const call = (over: Partial<Extract<LedgerEvent, { type: 'OperatorCall' }>> = {}): Extract<LedgerEvent, { type: 'OperatorCall' }> => ({
    type: 'OperatorCall', callId: 'c1', operatorId: 'audra', role: 'auditor', certSerial: 'ab', method: '/custody.admin.v1.Admin/Status',
    argsDigest: new Uint8Array(32), verdict: 'allowed', reason: '', atMs: 1, ...s.proposer('node-0'), ...over,
  });
  t.equal(s.entry(call()).result.ok, true, 'a node records a call it served, signed');
  const unsigned = s.entry(encodeEvent(call())).result;
  t.same([unsigned.ok, !unsigned.ok && unsigned.reason], [false, 'PROPOSER_SIGNATURE_INVALID'], 'unsigned: refused');
  const otherKey = s.entry(encodeEvent(signProposed(s.clusterId, call(), s.nodes[1]!.secretKey))).result;
  t.same([otherKey.ok, !otherKey.ok && otherKey.reason], [false, 'PROPOSER_SIGNATURE_INVALID'], 'in node-0\'s name signed by node-1: refused');
  const allowedWithReason = s.entry(call({ reason: 'ROLE_NOT_ALLOWED' })).result;
  t.same([allowedWithReason.ok, !allowedWithReason.ok && allowedWithReason.reason], [false, 'PAYLOAD_REJECTED'], 'allowed with a reason code: malformed');
  const badReason = s.entry(call({ verdict: 'refused', reason: 'NOT_A_CODE' as never })).result;
  t.same([badReason.ok, !badReason.ok && badReason.reason], [false, 'PAYLOAD_REJECTED'], 'an unknown reason code: malformed');
  const shortDigest = s.entry(call({ argsDigest: new Uint8Array(31) })).result;
  t.same([shortDigest.ok, !shortDigest.ok && shortDigest.reason], [false, 'PAYLOAD_REJECTED'], 'a digest of 31 bytes: malformed');
});

t.test('property: a CEF line parses back to its record whatever its text holds (no field injection)', async (t) => {
  // Text with the characters CEF escapes, and words that look like extension keys.
  const text = fc.array(fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('|', '\\', '=', '\n', '\r', ' ', 'cs1=', 'suser=x', ' act=')), { maxLength: 8 }).map((a) => a.join(''));
  const replay = {
    ...(process.env.FC_SEED !== undefined ? { seed: Number(process.env.FC_SEED) } : {}),
    ...(process.env.FC_PATH !== undefined ? { path: process.env.FC_PATH } : {}),
  };
  const out = fc.check(fc.property(text, text, text, fc.boolean(), (actor, outcome, method, operator) => {
    const r = {
      schema: 'custody-audit/v1', origin: 'custody-ledger/c', leafIndex: 7, leafHash: 'ab'.repeat(32), ledgerIndex: 9, stampMs: 1, time: new Date(1).toISOString(),
      category: operator ? 'operator' : 'governance', type: operator ? 'OperatorCall' : 'KeyReady', actor, outcome, reason: operator ? 'ROLE_NOT_ALLOWED' : '',
      event: { method, certSerial: '01', argsDigest: 'cd'.repeat(32), role: 'auditor', verdict: 'refused' },
    } as AuditRecord;
    const p = parseCef(formatCef(r));
    const keys = Object.keys(p.ext).sort();
    const want = ['cat', 'cn1', 'cn1Label', 'cs1', 'cs1Label', 'cs2', 'cs2Label', 'externalId', 'rt', ...(actor === '' ? [] : ['suser']), ...(outcome === '' ? [] : ['act']), ...(operator ? ['reason', ...(method === '' ? [] : ['cs3']), 'cs3Label', 'cs4', 'cs4Label', 'cs5', 'cs5Label', 'cs6', 'cs6Label', 'outcome'] : [])].sort();
    return JSON.stringify(keys) === JSON.stringify(want) && (p.ext.suser ?? '') === actor && (p.ext.act ?? '') === outcome && p.header[5] === outcome.replace(/[\r\n]/g, ' ') && (!operator || (p.ext.cs3 ?? '') === method);
  }), { numRuns: Number(process.env.FC_RUNS ?? 300), ...replay });
  if (out.failed) t.fail(`counterexample ${JSON.stringify(out.counterexample)}: replay with FC_SEED=${out.seed} FC_PATH=${String(out.counterexamplePath)}`);
  t.ok(!out.failed, `${out.numRuns} records: every field parses back, no text adds or hides a field`);
});

t.test('admin calls are recorded; the export validates, parses, follows, and reaches rsyslog', { timeout: 300_000 }, async (t) => {
  const h = await startHarness({ kernels: 'twin', audit: true });
  t.teardown(() => h.close());
  const n1 = h.cluster.nodes[0]!;
  const audra = h.client('audra');
  const cara = h.client('cara');

  // An allowed call and a refused one, and a chronicle record (an act of no key: Denied).
  await audra.status();
  const proposal = { actionJson: '{"kind":"EmergencyFreeze","reason":"audit test"}', ttlMs: 0 };
  await t.rejects(audra.proposeDecision(proposal.actionJson), { reason: 'ROLE_NOT_ALLOWED' } as never, 'the auditor may not propose');
  await h.createKey('k', 'ed25519');
  const { kind, tx } = await actTx(cara, 'k', 1n, 'sol-nowhere');
  await t.rejects(submitAs(cara, h.custodian, { opId: 'audit-denied', keyId: 'k', kind, tx }), { reason: 'POLICY_NO_RULE' } as never, 'an act to a destination no rule allows is journaled Denied (a chronicle record)');
  // The records are proposed as the calls end: wait until both are applied, then export through the CLI.
  const viaApi = async (): Promise<Rec[]> => {
    const out: Rec[] = [];
    await audra.exportAudit({ fromLeaf: 0, sinceMs: 0, follow: false }, (j) => void out.push(JSON.parse(j) as Rec));
    return out;
  };
  await until('both calls are in the log', async () => (await viaApi()).filter((r) => r.type === 'OperatorCall' && r.event.operatorId === 'audra' && r.event.method !== '/custody.admin.v1.Admin/ExportAudit').length >= 2, 60_000);
  const exported = await h.cli('audra', ['audit', 'export', '--format', 'jsonl']);
  t.equal(exported.code, 0, exported.stderr);
  const lines = exported.stdout.trim().split('\n');
  const recs = lines.map((l) => JSON.parse(l) as Rec);

  // Every line valid against the shipped schema; and the schema refuses a record changed.
  let invalid = 0;
  for (const l of lines) {
    const errs = validate(JSON.parse(l), SCHEMA);
    if (errs.length > 0) {
      invalid++;
      t.fail(`invalid record: ${errs.join('; ')}`);
    }
  }
  t.equal(invalid, 0, `all ${lines.length} exported lines are valid against proto/audit.schema.json`);
  const sample = JSON.parse(lines.find((l) => l.includes('"OperatorCall"'))!) as Record<string, unknown>;
  t.ok(validate({ ...sample, leafHash: 'zz' }, SCHEMA).length > 0 && validate({ ...sample, extra: 1 }, SCHEMA).length > 0 && validate({ ...sample, category: 'chronicle' }, SCHEMA).length > 0, 'the schema check is not vacuous: a bad hash, an extra field, a wrong category fail');

  t.same([...new Set(recs.map((r) => r.category))].sort(), ['chronicle', 'governance', 'operator'], 'chronicle, governance and operator records');
  const chron = recs.find((r) => r.type === 'ActSubmitted');
  t.ok(chron !== undefined && chron.category === 'chronicle', 'the denied act is a chronicle record');
  t.ok(recs.some((r) => r.type === 'ClusterGenesis' && r.category === 'governance'), 'the genesis is a governance record');

  // The operator records, checked against facts taken independently of the product.
  const serial = canonicalSerial(new X509Certificate(readFileSync(join(h.certs, 'audra.crt'))).serialNumber);
  const calls = recs.filter((r) => r.type === 'OperatorCall' && r.event.operatorId === 'audra').map((r) => r.event);
  const status = calls.find((c) => c.method === '/custody.admin.v1.Admin/Status');
  t.match(status, { operatorId: 'audra', role: 'auditor', certSerial: serial, verdict: 'allowed', reason: '', nodeId: n1.id }, 'the status call: allowed, with the certificate serial');
  const def = adminPackage()['custody.admin.v1.Admin'] as unknown as Record<string, grpc.MethodDefinition<object, object>>;
  const digest = createHash('sha256').update(def.ProposeDecision!.requestSerialize(proposal)).digest('hex');
  const refused = calls.find((c) => c.method === '/custody.admin.v1.Admin/ProposeDecision');
  t.match(refused, { verdict: 'refused', reason: 'ROLE_NOT_ALLOWED', argsDigest: digest, role: 'auditor' }, 'the refused proposal: its reason code and the digest of its request bytes');

  // Each record's leaf hash is in the node's tree.
  const size = n1.app.tree.size!;
  const root = await n1.app.tree.rootAt(size);
  let proven = 0;
  for (const r of recs.filter((x) => x.leafIndex < size)) {
    if (verifyInclusion(r.leafIndex, size, fromHex(r.leafHash), await n1.app.tree.proof(r.leafIndex, size), root)) proven++;
  }
  t.equal(proven, recs.filter((x) => x.leafIndex < size).length, `every record's leaf hash has an inclusion proof under the root at ${size} (${proven})`);
  t.notOk(verifyInclusion(recs[0]!.leafIndex, size, fromHex(recs[1]!.leafHash), await n1.app.tree.proof(recs[0]!.leafIndex, size), root), 'and another record\'s hash at that index does not');

  // CEF: every line parses back to the record's facts.
  const cef = (await h.cli('audra', ['audit', 'export', '--format', 'cef', '--since', String(recs[0]!.leafIndex)])).stdout.trim().split('\n');
  t.ok(cef.length >= recs.length, 'a CEF line per record');
  let cefOk = 0;
  for (const line of cef) {
    const p = parseCef(line);
    const r = recs.find((x) => String(x.leafIndex) === p.ext.cn1);
    if (r === undefined) continue;
    const ok = p.header[0] === '0' && p.header[1] === 'custody' && p.header[4] === r.type && p.header[5] === r.outcome && p.ext.cs1 === r.leafHash && p.ext.rt === String(r.stampMs)
      && p.ext.cat === r.category && (p.ext.reason ?? '') === r.reason && p.ext.externalId === String(r.ledgerIndex) && (p.ext.suser ?? '') === r.actor;
    if (ok) cefOk++;
    else t.fail(`CEF line does not match its record: ${line.slice(0, 300)}`);
  }
  t.equal(cefOk, recs.length, 'every CEF line parses to its record\'s type, outcome, leaf, stamp, category, actor and reason');
  const refusedCef = parseCef(cef.find((l) => l.includes('ProposeDecision'))!);
  t.same([refusedCef.header[6], refusedCef.ext.outcome, refusedCef.ext.cs3], ['5', 'refused', '/custody.admin.v1.Admin/ProposeDecision'], 'a refused call has severity 5 and its method');
  const tricky = parseCef('CEF:0|a\\|b|p|1|T|n|3|act=x\\=y z cs1=back\\\\slash msg=two\\nlines');
  t.same([tricky.header[1], tricky.ext.act, tricky.ext.cs1, tricky.ext.msg], ['a|b', 'x=y z', 'back\\slash', 'two\nlines'], 'the parser itself honours the escapes');

  // --follow: a record made after the stream started arrives.
  // It starts at the last exported record, so its first line shows the stream is open.
  const since = String(Math.max(...recs.map((r) => r.leafIndex)));
  const follow = spawn(process.execPath, [fileURLToPath(new URL('../../node/cli.js', import.meta.url)), 'admin', 'audit', 'export', '--format', 'jsonl', '--follow', '--since', since, '--node', n1.adminAddress!, '--node-id', n1.id, '--certs', h.certs, '--as', 'audra'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => void follow.kill('SIGKILL'));
  let followed = '';
  follow.stdout.on('data', (d: Buffer) => (followed += d.toString()));
  await until('the follow stream is open', () => followed.includes(`"leafIndex":${since},`), 60_000);
  await h.client('kim').status();
  type Line = { category: string; leafIndex: number; event: { operatorId?: string; method?: string } };
  const rec = await until('a new record arrives on the open stream', () => followed.split('\n').filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line).find((r) => r.leafIndex > Number(since) && r.event.operatorId === 'kim') ?? null, 60_000);
  t.match(rec, { category: 'operator', event: { method: '/custody.admin.v1.Admin/Status' } }, '--follow delivered the record of kim\'s Status call, made after the stream started');
  t.ok(rec.leafIndex > Number(since), `at leaf ${rec.leafIndex}, past the last exported one (${since})`);
  follow.kill('SIGINT');

  // Syslog to a real rsyslogd on loopback, over TCP with octet counting.
  const rsyslogd = ['/usr/sbin/rsyslogd', '/sbin/rsyslogd'].find((p) => existsSync(p));
  t.ok(rsyslogd !== undefined, 'rsyslogd is installed (test/setup.sh installs the rsyslog package)');
  if (rsyslogd === undefined) return;
  const port = await freePort();
  const out = join(h.dir, 'rsyslog-out.log');
  const conf = join(h.dir, 'rsyslog.conf');
  writeFileSync(conf, [
    `global(workDirectory="${h.dir}" maxMessageSize="256k" net.enableDNS="off")`,
    'module(load="imtcp")',
    'template(name="fields" type="string" string="%syslogfacility%|%syslogseverity%|%protocol-version%|%app-name%|%msgid%|%structured-data%|%msg%\\n")',
    `ruleset(name="audit") { action(type="omfile" file="${out}" template="fields") }`,
    `input(type="imtcp" address="127.0.0.1" port="${port}" ruleset="audit")`,
  ].join('\n') + '\n');
  const check = spawnSync(rsyslogd, ['-N1', '-f', conf], { encoding: 'utf8' });
  t.equal(check.status, 0, `rsyslogd accepts its configuration: ${check.stderr}`);
  const rs = spawn(rsyslogd, ['-n', '-f', conf, '-i', join(h.dir, 'rsyslogd.pid')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let rsErr = '';
  rs.stderr.on('data', (d: Buffer) => (rsErr += d.toString()));
  t.teardown(() => void rs.kill('SIGKILL'));
  await until('rsyslogd listens', () => new Promise<boolean>((resolve) => {
    const c = connect(port, '127.0.0.1', () => {
      c.destroy();
      resolve(true);
    });
    c.on('error', () => resolve(false));
  }), 60_000);
  const sent = await h.cli('audra', ['audit', 'export', '--format', 'syslog', '--to', `tcp://127.0.0.1:${port}`, '--hostname', 'custody-test', '--since', String(recs[0]!.leafIndex)]);
  t.equal(sent.code, 0, sent.stderr);
  const expected = recs.length;
  await until(`rsyslog wrote ${expected} records`, () => existsSync(out) && readFileSync(out, 'utf8').trim().split('\n').length >= expected, 60_000).catch(() => t.fail(`rsyslog: ${rsErr}`));
  const got = readFileSync(out, 'utf8').trim().split('\n');
  let parsed = 0;
  for (const line of got) {
    const [facility, severity, version, app, msgid, ...rest] = line.split('|');
    const msg = rest.slice(1).join('|');
    const sd = rest[0]!;
    let rec: Rec;
    try {
      rec = JSON.parse(msg.trim()) as Rec;
    } catch {
      t.fail(`rsyslog's message is not the JSON record: ${line.slice(0, 200)}`);
      continue;
    }
    const want = recs.find((r) => r.leafIndex === rec.leafIndex);
    if (want === undefined) continue;
    const ok = facility === '13' && version === '1' && app === 'custody' && msgid === want.type && sd.includes(`leafIndex="${want.leafIndex}"`) && sd.includes(`leafHash="${want.leafHash}"`) && sd.startsWith('[custody@32473 ')
      && validate(rec, SCHEMA).length === 0 && Number(severity) === ((want.type === 'OperatorCall' && want.reason !== '') || want.type === 'ActAborted' || want.type === 'ActDenialRecorded' ? 4 : 6);
    if (ok) parsed++;
    else t.fail(`rsyslog parsed a record differently: ${line.slice(0, 300)}`);
  }
  t.equal(parsed, expected, `rsyslog parsed all ${expected} records as RFC 5424: facility 13, version 1, app custody, MSGID the type, the structured data, the JSON message`);
});
