/**
 * The governed lifecycle end to end through the admin API: a 2-of-3 DKG for ed25519 and for
 * Taproot driven through the ledger, activation by 2-of-3 approvers, one signing act per key
 * through the publication gate to Settled, signatures checked by verifiers independent of the
 * FROST code (OpenSSL Ed25519 through node:crypto; BIP340 Schnorr from @noble/curves), and the
 * evidence bundle verified offline by `custody evidence verify`.
 */
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { createPublicKey, randomBytes, verify as nodeVerify } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { schnorr } from '@noble/curves/secp256k1.js';
import { verifyEvidenceBundle } from '../../ledger/receipts.js';
import { keys as exchangeKeys, publicFromBytes } from '../../node/lifecycle/participant.js';
import { verifyBundleSignature, type Bundle } from '../../node/lifecycle/evidence.js';
import { until } from '../../node/lifecycle/local-cluster.js';
import { CLI, startHarness, waitAct, type Harness, actTx } from './harness.js';

function ed25519VerifyOpenSsl(publicKeyHex: string, message: Buffer, signature: Buffer): boolean {
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKeyHex, 'hex').toString('base64url') }, format: 'jwk' });
  return nodeVerify(null, message, key, signature);
}

async function signAndSettle(t: Test, h: Harness, opId: string, keyId: string, asset: string, destination: string, scheme: 'ed25519' | 'taproot'): Promise<void> {
  const cara = h.client('cara');
  const digest = randomBytes(32);
  const submitted = await cara.submitAct({ opId, keyId, ...(await actTx(cara, keyId, '1000', destination)) });
  t.equal(submitted.state, 'Admitted', `${opId} admitted`);
  t.equal(submitted.receipts[0]?.type, 'AdmissionReceipt');
  const published = await waitAct(cara, opId, 'Published');
  t.equal(published.state, 'Published', `${opId} passed the publication gate`);
  t.same(published.history.map((s) => s.state), ['Submitted', 'Admitted', 'PendingRemote', 'Executed', 'Published']);
  t.same(published.receipts.map((r) => r.type), ['AdmissionReceipt', 'PermitReceipt', 'PublicationReceipt'], 'one receipt per stage');

  const status = await h.client('audra').status();
  const key = status.keys.find((k) => k.id === keyId);
  t.ok(key, `${keyId} listed`);
  const sig = Buffer.from(published.signature, 'hex');
  if (scheme === 'ed25519') {
    t.ok(ed25519VerifyOpenSsl(key!.publicKey, digest, sig), 'the Ed25519 signature verifies under OpenSSL (RFC 8032)');
    t.notOk(ed25519VerifyOpenSsl(key!.publicKey, randomBytes(32), sig), 'and not for another message');
  } else {
    const xOnly = Buffer.from(key!.publicKey, 'hex').subarray(1);
    t.ok(schnorr.verify(sig, digest, xOnly), 'the Taproot signature verifies under BIP340');
    t.notOk(schnorr.verify(sig, randomBytes(32), xOnly), 'and not for another message');
  }

  const settled = await cara.settleAct(opId, `tx-${opId}`);
  t.equal(settled.state, 'Settled');
  t.equal(settled.confirmation, `tx-${opId}`);

  const bundle = JSON.parse((await h.client('audra').exportEvidence(opId)).bundleJson) as Bundle;
  t.ok(verifyEvidenceBundle(bundle).ok, 'the receipt chain verifies offline');
  t.same(verifyBundleSignature(bundle), { ok: true }, 'the signature block verifies against the bundle');
  const file = join(h.dir, `${opId}.evidence.json`);
  writeFileSync(file, JSON.stringify(bundle));
  const v = spawnSync(process.execPath, [CLI, 'evidence', 'verify', file], { encoding: 'utf8' });
  t.equal(v.status, 0, `custody evidence verify accepts it: ${v.stdout}${v.stderr}`);
  t.equal(bundle.signature?.signers?.length, 2, 'the bundle names the two signers the ledger fixed');
  t.match(v.stdout, new RegExp(`signers ${bundle.signature!.signers!.map((m) => m.node).join('\\+')} \\(${scheme === 'ed25519' ? 'the signature\'s R is their group commitment' : 'listed'}`), 'and the CLI reports them');
  const tampered = { ...bundle, receipts: bundle.receipts.map((r, i) => (i === 1 ? { ...r, cbor: r.cbor.replace(/.$/, (c) => (c === '0' ? '1' : '0')) } : r)) };
  writeFileSync(file, JSON.stringify(tampered));
  const bad = spawnSync(process.execPath, [CLI, 'evidence', 'verify', file], { encoding: 'utf8' });
  t.equal(bad.status, 3, 'a tampered bundle is refused');
}

for (const kernels of ['process', 'twin'] as const) {
  t.test(`lifecycle with ${kernels === 'process' ? 'three kernel processes' : 'in-process kernel twins'}: DKG ed25519 + Taproot, activation, signing through the gate, evidence`, { timeout: 600_000 }, async (t) => {
    const h = await startHarness({ kernels });
    t.teardown(() => h.close());
    await h.createKey('k-ed', 'ed25519');
    await h.createKey('k-tr', 'taproot');
    const st = await h.client('audra').status();
    t.same(st.keys.map((k) => [k.id, k.status, k.activeEpoch]), [['k-ed', 'active', 0], ['k-tr', 'active', 0]]);
    t.equal(Buffer.from(st.keys[1]!.publicKey, 'hex').length, 33, 'the Taproot group key is a compressed point');
    const l = await h.cluster.waitLeader();
    for (const keyId of ['k-ed', 'k-tr']) {
      const e = l.ledger.state().cluster!.keys[keyId]!.epochs['0']!;
      t.same(Object.keys(e.round1).sort(), ['n1', 'n2', 'n3'], `${keyId}: round 1 of every kernel is in the log`);
      for (const n of ['n1', 'n2', 'n3']) {
        const b = await h.cluster.exchange.get(exchangeKeys.publicPackage(keyId, 0, n));
        t.same(Buffer.from(publicFromBytes(b!).commitments[0]!), Buffer.from(e.groupKey!), `${keyId}: the kernel of ${n} holds the published group key`);
      }
    }
    await signAndSettle(t, h, 'pay-ed', 'k-ed', 'SOL', 'sol-treasury', 'ed25519');
    await signAndSettle(t, h, 'pay-tr', 'k-tr', 'BTC', 'bc1p-treasury', 'taproot');
    await until('every node applied the same entries', () => h.cluster.nodes.every((n) => n.driver.status().appliedIndex === h.cluster.nodes[0]!.driver.status().appliedIndex));
    t.equal(new Set(h.cluster.nodes.map((n) => n.app.root())).size, 1, 'one state root on every node');
  });
}
