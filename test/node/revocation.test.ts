/**
 * Operator certificate revocation at the admin port: `custody admin operator revoke` proposes the
 * decision through the approval book, and once the ledger holds the revocation every call made
 * with that certificate (unary and streaming, any role) is refused OPERATOR_REVOKED before its
 * handler runs, while a certificate reissued to the same operator (a new serial) is served.
 */
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { CLI_PATH } from '../../node/cluster.js';
import { certs as certLimits } from '../../proto/limits.js';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ensureCa, issue } from '../../node/certs.js';
import { NodeServer } from '../../node/server.js';
import { channelCredentials, identityOptions, loadTls } from '../../node/tls.js';
import { packageDefinition, REASON_METADATA_KEY } from '../../node/wire.js';
import type { PeerCertificate } from 'node:tls';
import fc from 'fast-check';
import { startActNode } from './act-fixtures.js';
import { issueOperatorCert } from '../../node/admin/roles.js';
import { revokedRefusal, peerSerial } from '../../node/revocation.js';
import { revokeAction } from '../../node/commands/operator.js';
import { canonicalSerial } from '../../ledger/decision.js';
import type { LedgerState, RevocationRecord } from '../../ledger/state.js';
import { isCustodyError } from '../../proto/errors.js';

async function reasonOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'served';
  } catch (e) {
    return isCustodyError(e) ? e.reason : String(e);
  }
}

function thrown(f: () => unknown): string {
  try {
    f();
    return 'returned';
  } catch (e) {
    return isCustodyError(e) ? e.reason : String(e);
  }
}

function record(serial: string, holder: RevocationRecord['holder'], id: string): RevocationRecord {
  return { serial, holder, id, reason: 'test', notAfterMs: Date.now() + 86_400_000, decisionCid: new Uint8Array(32), sinceIndex: 7 };
}

t.test('revoke through the CLI, then every call with the revoked certificate is refused OPERATOR_REVOKED', { timeout: 120_000 }, async (t) => {
  const node = await startActNode();
  t.teardown(() => node.close());
  const caraCert = new X509Certificate(readFileSync(join(node.certs, 'cara.crt')));
  const serial = canonicalSerial(caraCert.serialNumber);

  const byCustodian = await node.cli('cara', ['admin', 'operator', 'revoke', '--revoked-cert', join(node.certs, 'cara.crt'), '--operator', 'cara', '--reason', 'self']);
  t.equal(byCustodian.code, 3, 'a custodian may not propose a revocation');
  t.match(byCustodian.stderr, /ROLE_NOT_ALLOWED/);

  const wrongHolder = await node.cli('approver-0', ['admin', 'operator', 'revoke', '--revoked-cert', join(node.certs, 'cara.crt'), '--operator', 'audra', '--reason', 'mix-up']);
  t.equal(wrongHolder.code, 3, 'the certificate file must name the operator given');
  t.match(wrongHolder.stderr, /BINDING_MISMATCH/);

  const proposed = await node.cli('approver-0', ['admin', 'operator', 'revoke', '--revoked-cert', join(node.certs, 'cara.crt'), '--operator', 'cara', '--reason', 'laptop lost']);
  t.equal(proposed.code, 0, proposed.stderr);
  const pending = node.ledger.book.list();
  t.equal(pending.length, 1, 'one decision pending in the book');
  t.same(pending[0]!.body.action, { kind: 'OperatorRevoked', serial, operatorId: 'cara', reason: 'laptop lost', notAfterMs: Date.parse(caraCert.validTo) }, 'serial and notAfter come from the certificate');
  t.match(proposed.stdout, new RegExp(`decision ${pending[0]!.cid}: pending`));
  t.equal(pending[0]!.proposer, 'approver-0', 'the book records the proposing operator (its quota counts it)');

  t.equal(await reasonOf(node.client('cara').status()), 'served', 'before the ledger applies it, nothing is revoked');
  const g = node.ledger.state().cluster!.governance;
  node.ledger.setGovernance({ ...g, revoked: [record(serial, 'operator', 'cara')] });

  t.equal(await reasonOf(node.client('cara').status()), 'OPERATOR_REVOKED', 'a read is refused');
  t.equal(await reasonOf(node.client('cara').listDecisions()), 'OPERATOR_REVOKED', 'every method is refused');
  const stream = node.client('cara').watch('no-such-act', () => undefined, () => true, 20_000);
  t.equal(await reasonOf(stream), 'OPERATOR_REVOKED', 'a streaming method is refused before its handler');
  t.equal(await reasonOf(node.client('audra').status()), 'served', 'other operators are served');

  const listed = await node.cli('audra', ['admin', 'operator', 'list']);
  t.equal(listed.code, 0, listed.stderr);
  t.match(listed.stdout, new RegExp(`operator cara: serial ${serial} revoked at ledger index 7`));

  // Reissued to the same operator: a new key and serial, not revoked.
  issueOperatorCert(node.certs, 'cara', 'custodian');
  t.not(canonicalSerial(new X509Certificate(readFileSync(join(node.certs, 'cara.crt'))).serialNumber), serial);
  t.equal(await reasonOf(node.client('cara').status()), 'served', 'a reissued certificate is served');
});

t.test('the serial comparison holds for every spelling OpenSSL and Node print', async (t) => {
  const state = (r: RevocationRecord[]): LedgerState => ({ index: 1, clockMs: 0, chainHead: new Uint8Array(32), height: 1, cluster: { governance: { revoked: r } } } as unknown as LedgerState);
  const cert = (ou: string, serialNumber: string): PeerCertificate => ({ subject: { CN: 'x', OU: ou }, serialNumber } as unknown as PeerCertificate);
  fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 20 }), fc.boolean(), (raw, upper) => {
    const hex = Buffer.from(raw).toString('hex');
    const spelled = upper ? hex.toUpperCase() : hex;
    const canonical = canonicalSerial(hex);
    const s = state([record(canonical, 'operator', 'x')]);
    return revokedRefusal(s, cert('operator', spelled))?.reason === 'OPERATOR_REVOKED'
      && revokedRefusal(s, cert('node', spelled)) === null
      && revokedRefusal(state([record(canonical, 'node', 'x')]), cert('node', spelled))?.reason === 'NODE_CERT_REVOKED';
  }), { verbose: 1 });
  t.equal(peerSerial(cert('operator', '00:0A:FF')), 'aff', 'colons and leading zeros');
  t.equal(revokedRefusal(state([record('aff', 'operator', 'x')]), cert('client', '0AFF')), null, 'certificates of other kinds are left to their handlers');
  t.equal(revokedRefusal(state([record('aff', 'operator', 'x')]), cert('operator', '0AFE')), null, 'another serial passes');
});

t.test('revokeAction: a holder, a serial, and a notAfter the ledger can expire the entry by', async (t) => {
  const now = 1_800_000_000_000;
  t.same(revokeAction({ serial: '0x00AB', operator: 'alice', reason: 'r' }, now), { kind: 'OperatorRevoked', serial: 'ab', operatorId: 'alice', reason: 'r', notAfterMs: now + 825 * 86_400_000 });
  t.same(revokeAction({ serial: 'ab', 'node-cert': 'n2', reason: 'r', 'not-after': '2027-01-01T00:00:00Z' }, now), { kind: 'NodeCertificateRevoked', serial: 'ab', nodeId: 'n2', reason: 'r', notAfterMs: Date.parse('2027-01-01T00:00:00Z') });
  t.equal(thrown(() => revokeAction({ serial: 'ab', reason: 'r' }, now)), 'INVALID_ARGUMENT', 'no holder');
  t.equal(thrown(() => revokeAction({ serial: 'ab', operator: 'a', 'node-cert': 'b', reason: 'r' }, now)), 'INVALID_ARGUMENT', 'two holders');
  t.equal(thrown(() => revokeAction({ serial: 'xyz', operator: 'a', reason: 'r' }, now)), 'INVALID_ARGUMENT', 'not hex');
  t.equal(thrown(() => revokeAction({ operator: 'a', reason: 'r' }, now)), 'INVALID_ARGUMENT', 'no serial');
});

t.test('the peer port refuses a revoked node certificate, the client port a revoked operator certificate', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-revoked-peer-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  ensureCa(dir);
  const own = issue(dir, 'node', 'n1', ['127.0.0.1']);
  for (const n of ['n2', 'n3']) issue(dir, 'node', n);
  issueOperatorCert(dir, 'ops', 'auditor');
  const serialOf = (id: string): string => canonicalSerial(new X509Certificate(readFileSync(join(dir, `${id}.crt`))).serialNumber);
  const revoked = [record(serialOf('n2'), 'node', 'n2'), record(serialOf('ops'), 'operator', 'ops')];
  const state = { index: 1, clockMs: 0, chainHead: new Uint8Array(32), height: 1, cluster: { governance: { revoked } } } as unknown as LedgerState;
  // Only the checks before any Raft work run here: a call that passes them is refused by the
  // archive range handler (no archive), which is what tells the two apart.
  const server = new NodeServer({ id: 'n1', listen: '127.0.0.1:0', roster: new Set(['n2', 'n3']), tls: loadTls({ ca: join(dir, 'ca.crt'), cert: own.cert, key: own.key }), driver: {} as never, app: {} as never, ledgerState: () => state });
  const port = await server.start();
  t.teardown(() => server.stop(1000));
  const Ctor = grpc.makeGenericClientConstructor(packageDefinition()['custody.raft.v1.RaftPeer'] as grpc.ServiceDefinition, 'RaftPeer');
  const CustodyCtor = grpc.makeGenericClientConstructor(packageDefinition()['custody.raft.v1.Custody'] as grpc.ServiceDefinition, 'Custody');
  const reasonFrom = (e: grpc.ServiceError | null): string => (e === null ? 'served' : String(e.metadata?.get(REASON_METADATA_KEY)[0] ?? e.code));
  const call = (as: string, ctor: typeof Ctor, method: string, req: object): Promise<string> => new Promise((resolve) => {
    const c = new ctor(`127.0.0.1:${port}`, channelCredentials(loadTls({ ca: join(dir, 'ca.crt'), cert: join(dir, `${as}.crt`), key: join(dir, `${as}.key`) })), identityOptions('n1'));
    (c as unknown as Record<string, (r: object, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => void>)[method]!.call(c, req, new grpc.Metadata(), { deadline: Date.now() + 20_000 }, (e) => {
      c.close();
      resolve(reasonFrom(e));
    });
  });
  t.equal(await call('n2', Ctor, 'ArchiveRange', { fromSeq: 0, count: 1 }), 'NODE_CERT_REVOKED', 'a revoked node certificate is refused on the peer port');
  t.equal(await call('n3', Ctor, 'ArchiveRange', { fromSeq: 0, count: 1 }), 'ARCHIVE_RANGE_REFUSED', 'another node gets past the check');
  t.equal(await call('ops', CustodyCtor, 'Status', {}), 'OPERATOR_REVOKED', 'a revoked operator certificate is refused on the client port');
});

t.test('operator certificates are short-lived by default and bounded', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-operator-days-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  ensureCa(dir);
  const lifetimeDays = (file: string): number => {
    const x = new X509Certificate(readFileSync(file));
    return Math.round((Date.parse(x.validTo) - Date.parse(x.validFrom)) / 86_400_000);
  };
  t.equal(lifetimeDays(issueOperatorCert(dir, 'alice', 'approver').cert), certLimits.operatorDaysDefault, 'the default lifetime');
  t.equal(lifetimeDays(issueOperatorCert(dir, 'alice', 'approver', certLimits.operatorDaysMax).cert), certLimits.operatorDaysMax, 'longer on request, up to the bound');
  for (const days of [0, certLimits.operatorDaysMax + 1, 825, 1.5]) t.equal(thrown(() => issueOperatorCert(dir, 'bob', 'approver', days)), 'INVALID_ARGUMENT', `${days} days refused`);
  const before = canonicalSerial(new X509Certificate(readFileSync(join(dir, 'alice.crt'))).serialNumber);
  const cli = spawnSync(process.execPath, [CLI_PATH, 'admin', 'operator-cert', '--dir', dir, '--id', 'alice', '--role', 'approver'], { encoding: 'utf8' });
  t.equal(cli.status, 0, cli.stderr);
  const after = canonicalSerial(new X509Certificate(readFileSync(join(dir, 'alice.crt'))).serialNumber);
  t.not(after, before, 'rotation issues a new serial');
  t.match(cli.stdout, new RegExp(`serial ${after}, valid until`));
  const tooLong = spawnSync(process.execPath, [CLI_PATH, 'certs', 'operator', '--dir', dir, '--id', 'carol', '--days', '825'], { encoding: 'utf8' });
  t.not(tooLong.status, 0, '`custody certs operator --days 825` is refused');
  t.match(tooLong.stderr, /INVALID_ARGUMENT/);
});
