/**
 * The admin API end to end over mTLS, through the `custody admin` CLI where it matters: roles
 * from operator certificates, refusals with reason codes (CLI exit status 3 and `REASON: detail`),
 * bad input refused without harm, and the node serving on afterwards.
 */
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { adminPackage } from '../../node/admin/server.js';
import { channelCredentials, identityOptions, loadTls } from '../../node/tls.js';
import { issue } from '../../node/certs.js';
import { encode, toHex } from '../../ledger/encoding.js';
import { decisionToCbor, signDecision } from '../../ledger/decision.js';
import { decisionBodyFor } from '../../node/lifecycle/acts.js';
import { node as nodeLimits } from '../../proto/limits.js';
import { startHarness, reasonOfCall, runCli } from './harness.js';

t.test('admin API: roles, refusals with reason codes, bad input', { timeout: 300_000 }, async (t) => {
  const h = await startHarness();
  t.teardown(() => h.close());
  const n1 = h.cluster.nodes[0]!;

  t.test('every role may read the status; the CLI prints who you are', async (t) => {
    const r = await h.cli('audra', ['status']);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /you are audra \(auditor\)/);
    t.match(r.stdout, new RegExp(`cluster ${h.cluster.clusterId}`));
  });

  t.test('a role may only do its own actions (ROLE_NOT_ALLOWED)', async (t) => {
    const rawFile = join(h.dir, 'attestation.raw');
    writeFileSync(rawFile, 'an attestation');
    const auditorPropose = await h.cli('audra', ['decision', 'propose', '--action-json', '{"kind":"EmergencyFreeze","reason":"x"}']);
    t.equal(auditorPropose.code, 3, 'auditor cannot propose');
    t.match(auditorPropose.stderr, /^ROLE_NOT_ALLOWED: audra \(auditor\) may not propose decisions/m);
    const kimFreeze = await h.cli('kim', ['decision', 'propose', '--action-json', '{"kind":"EmergencyFreeze","reason":"x"}']);
    t.equal(kimFreeze.code, 3, 'key generator cannot propose a freeze');
    t.match(kimFreeze.stderr, /^ROLE_NOT_ALLOWED: kim \(key-generator\) may not propose EmergencyFreeze/m);
    // With the epoch given, the CLI signs without looking the key up: the node decides.
    const custodianKey = ['--custodian-key', join(h.dir, 'custodians', 'cara.key'), '--key-epoch', '0'];
    const caraAct = await h.cli('kim', ['act', 'submit', '--key-id', 'k', '--raw', rawFile, ...custodianKey]);
    t.equal(caraAct.code, 3);
    t.match(caraAct.stderr, /^ROLE_NOT_ALLOWED: kim \(key-generator\) may not submit signing acts/m);
    // The TLS key is --key (CUSTODY_ADMIN_KEY) on act submit too; the signing key is --key-id.
    const n = h.cluster.nodes[0]!;
    const conn = ['--node', n.adminAddress as string, '--node-id', n.id];
    const tlsEnv = { CUSTODY_ADMIN_CA: join(h.certs, 'ca.crt'), CUSTODY_ADMIN_CERT: join(h.certs, 'kim.crt'), CUSTODY_ADMIN_KEY: join(h.certs, 'kim.key'), CUSTODY_ADMIN_KEY_ID: undefined };
    const viaEnv = await runCli(['admin', 'act', 'submit', ...conn, '--key-id', 'k', '--raw', rawFile, ...custodianKey], tlsEnv);
    t.match(viaEnv.stderr, /^ROLE_NOT_ALLOWED: kim \(key-generator\)/m, 'CUSTODY_ADMIN_KEY is the operator\'s TLS key on act submit: the node knows kim');
    const viaFlag = await runCli(['admin', 'act', 'submit', ...conn, '--ca', tlsEnv.CUSTODY_ADMIN_CA, '--cert', tlsEnv.CUSTODY_ADMIN_CERT, '--key', tlsEnv.CUSTODY_ADMIN_KEY, '--key-id', 'k', '--raw', rawFile, ...custodianKey]);
    t.match(viaFlag.stderr, /^ROLE_NOT_ALLOWED: kim \(key-generator\)/m, 'and so is --key');
    // A signing key picked up from the environment is refused before anything is sent.
    const fromEnv = await runCli(['admin', 'act', 'submit', ...conn, '--key-id', 'k', '--raw', rawFile, ...custodianKey], { ...tlsEnv, CUSTODY_ADMIN_KEY_ID: 'k' });
    t.equal(fromEnv.code, 3);
    t.match(fromEnv.stderr, /^INVALID_ARGUMENT: CUSTODY_ADMIN_KEY_ID is set/m, 'CUSTODY_ADMIN_KEY_ID is refused');
    const proposeEnv = await runCli(['admin', 'act', 'propose', ...conn, '--raw', rawFile], { ...tlsEnv, CUSTODY_ADMIN_KEY_ID: 'k' });
    t.match(proposeEnv.stderr, /^INVALID_ARGUMENT: CUSTODY_ADMIN_KEY_ID is set/m, 'on act propose too, even without --key-id');
    // The former spelling, a key id in --key, is not read as the signing key.
    const old = await h.cli('cara', ['act', 'submit', '--key', 'k', '--raw', rawFile, ...custodianKey]);
    t.equal(old.code, 3);
    t.match(old.stderr, /^INVALID_ARGUMENT: --key-id names the threshold key that signs/m, 'a key id given as --key is refused, not signed with');
    // An approver signs only as itself.
    const d = await h.client('approver-1').proposeDecision('{"kind":"Unfreeze"}');
    t.equal(await reasonOfCall(h.client('approver-1').approveDecision(d.cid, 'approver-2', new Uint8Array(64))), 'ROLE_NOT_ALLOWED', 'an approver signs only as itself');
  });

  t.test('a node certificate is not an operator (ROLE_NOT_ALLOWED); no certificate never gets in', async (t) => {
    const nodeTls = loadTls({ ca: join(h.certs, 'ca.crt'), cert: join(h.certs, 'n2.crt'), key: join(h.certs, 'n2.key') });
    const Ctor = grpc.makeGenericClientConstructor(adminPackage()['custody.admin.v1.Admin'] as grpc.ServiceDefinition, 'Admin');
    const asNode = new Ctor(n1.adminAddress as string, channelCredentials(nodeTls), identityOptions(n1.id));
    const e1 = await new Promise<grpc.ServiceError | null>((r) => (asNode as unknown as { Status: (q: object, cb: (e: grpc.ServiceError | null) => void) => void }).Status({}, (e) => r(e)));
    t.equal(e1?.metadata.get('custody-reason')[0], 'ROLE_NOT_ALLOWED', 'node certificate refused with a reason code');
    asNode.close();
    // Without a client certificate the TLS handshake itself fails (mTLS, node/tls.ts).
    const noCert = new Ctor(n1.adminAddress as string, grpc.credentials.createSsl(loadTls({ ca: join(h.certs, 'ca.crt'), cert: join(h.certs, 'n2.crt'), key: join(h.certs, 'n2.key') }).ca), identityOptions(n1.id));
    const e2 = await new Promise<grpc.ServiceError | null>((r) => (noCert as unknown as { Status: (q: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => void }).Status({}, { deadline: Date.now() + 10_000 }, (e) => r(e)));
    t.ok(e2 !== null && e2.code === grpc.status.UNAVAILABLE, `unauthenticated caller refused (${e2?.code})`);
    noCert.close();
    // A certificate with the operator OU but no role URI (issued by the plain node/certs.ts path).
    issue(h.certs, 'operator', 'norole');
    const r = await h.cli('norole', ['status']);
    t.equal(r.code, 3);
    t.match(r.stderr, /^ROLE_NOT_ALLOWED: norole: the certificate must carry exactly one role URI/m);
  });

  t.test('malformed and oversized requests are refused with reason codes; the node keeps serving', async (t) => {
    const c = h.client('approver-1');
    t.equal(await reasonOfCall(c.proposeDecision('{not json')), 'INVALID_ARGUMENT', 'bad JSON');
    t.equal(await reasonOfCall(c.proposeDecision('{"kind":"DkgAuthorized","keyId":"k"}')), 'PAYLOAD_REJECTED', 'missing fields');
    t.equal(await reasonOfCall(c.proposeDecision('{"kind":"NoSuchThing"}')), 'PAYLOAD_REJECTED', 'unknown action');
    t.equal(await reasonOfCall(c.submitDecision(new Uint8Array([0xff, 0x01, 0x02]))), 'PAYLOAD_REJECTED', 'garbage CBOR');
    t.equal(await reasonOfCall(c.call('ProposeDecision', { actionJson: 'x'.repeat(nodeLimits.adminRequestBytesMax + 10) })), 'FRAME_TOO_LARGE', 'oversized request');
    // A request that is not the message it claims to be: raw bytes on the wire.
    const Ctor = grpc.makeGenericClientConstructor({
      Status: { path: '/custody.admin.v1.Admin/ProposeDecision', requestStream: false, responseStream: false, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b },
    }, 'Raw');
    const raw = new Ctor(n1.adminAddress as string, channelCredentials(loadTls({ ca: join(h.certs, 'ca.crt'), cert: join(h.certs, 'approver-1.crt'), key: join(h.certs, 'approver-1.key') })), identityOptions(n1.id));
    const e = await new Promise<grpc.ServiceError | null>((r) => (raw as unknown as { Status: (q: Buffer, cb: (e: grpc.ServiceError | null) => void) => void }).Status(Buffer.from([0x0a, 0xff, 0xff, 0xff]), (err) => r(err)));
    t.equal(e?.metadata.get('custody-reason')[0], 'FRAME_MALFORMED', 'undecodable frame refused as such');
    raw.close();
    const s = await h.client('audra').status();
    t.equal(s.clusterId, h.cluster.clusterId, 'the node still serves');
    t.equal(s.height, 1, 'and nothing reached the ledger');
  });

  t.test('an under-quorum decision is refused by the ledger with QUORUM_NOT_MET (CLI exit 3)', async (t) => {
    const st = h.cluster.nodes[0]!.ledger.state();
    const policyOne = signDecision(decisionBodyFor(st, { kind: 'Unfreeze' }, Date.now()), h.cluster.approvers.slice(0, 1));
    const f1 = join(h.dir, 'one.hex');
    writeFileSync(f1, toHex(encode(decisionToCbor(policyOne))));
    const r = await h.cli('approver-1', ['decision', 'submit', '--file', f1]);
    t.equal(r.code, 3, r.stdout);
    t.match(r.stderr, /^QUORUM_NOT_MET: 1 of 2 required approvals for Unfreeze/m);
  });

  t.test('approvals collect on the node; at quorum the decision applies', async (t) => {
    const d = await h.client('kim').proposeDecision(JSON.stringify({ kind: 'DkgAuthorized', keyId: 'kq', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ['n1', 'n2', 'n3'] }));
    t.equal(d.state, 'pending');
    t.equal(d.needed, 2);
    const keyFile = join(h.dir, 'approver-1.key');
    writeFileSync(keyFile, JSON.stringify({ id: 'approver-1', secretKey: toHex(h.cluster.approvers[0]!.secretKey) }));
    const first = await h.cli('approver-1', ['decision', 'approve', '--cid', d.cid, '--key-file', keyFile]);
    t.equal(first.code, 0, first.stderr);
    t.match(first.stdout, /pending, 1 of 2 approvals \(approver-1\)/);
    await h.approve(d.cid, ['approver-2']);
    const after = await h.client('audra').getDecision(d.cid);
    t.equal(after.state, 'applied');
    t.ok(after.verdict?.ok, 'the ledger applied it');
  });
});
