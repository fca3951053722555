/**
 * The governed lifecycle end to end through the admin API: a 2-of-3 DKG for ed25519 and for
 * Taproot driven through the ledger, activation by 2-of-3 approvers, one signing act per key
 * through the publication gate to Settled, and the evidence bundle verified offline by `custody
 * evidence verify` and, proven (v2), against the trust policy the cluster exports. The acts carry real transactions: a Solana transfer (one message) and a
 * two-input Taproot PSBT with change back to the key (two messages, one nonce pair and one
 * signature each). Signatures are checked by implementations independent of ours and of the FROST
 * code: OpenSSL Ed25519 (node:crypto) over the Solana message and the wire transaction decoded by
 * @solana/transactions; bitcoinjs-lib computing each input's BIP 341 sighash itself and
 * tiny-secp256k1 verifying BIP 340 over it, and the finalized transaction deserialized by bitcoinjs.
 */
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { createPublicKey, randomBytes, verify as nodeVerify } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { schnorr } from '@noble/curves/secp256k1.js';
import * as bitcoin from 'bitcoinjs-lib';
import * as ecc from 'tiny-secp256k1';
import { getTransactionDecoder } from '@solana/transactions';
import { verifyEvidenceBundle } from '../../ledger/receipts.js';
import { keys as exchangeKeys, publicFromBytes } from '../../node/lifecycle/participant.js';
import { verifyBundleSignature, type Bundle } from '../../node/lifecycle/evidence.js';
import { verifyProvenText } from '../../node/lifecycle/evidence-proof.js';
import { verifyPolicyChain } from '../../ledger/tlog/trust-policy.js';
import { until } from '../../node/lifecycle/local-cluster.js';
import { CLI, startHarness, waitAct, type Harness, actTx, rid, submitAs } from './harness.js';

bitcoin.initEccLib(ecc);

/** The unsigned transaction rebuilt by bitcoinjs from the PSBT's own fields (not from our parse). */
function bitcoinjsUnsigned(psbtBytes: Uint8Array): { tx: bitcoin.Transaction; scripts: Uint8Array[]; values: bigint[] } {
  const psbt = bitcoin.Psbt.fromBuffer(Buffer.from(psbtBytes), { network: bitcoin.networks.regtest });
  const tx = new bitcoin.Transaction();
  tx.version = psbt.version;
  tx.locktime = psbt.locktime;
  for (const i of psbt.txInputs) tx.addInput(i.hash, i.index, i.sequence);
  for (const o of psbt.txOutputs) tx.addOutput(o.script, o.value);
  return { tx, scripts: psbt.data.inputs.map((i) => i.witnessUtxo!.script), values: psbt.data.inputs.map((i) => i.witnessUtxo!.value) };
}

function ed25519VerifyOpenSsl(publicKeyHex: string, message: Buffer, signature: Buffer): boolean {
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKeyHex, 'hex').toString('base64url') }, format: 'jwk' });
  return nodeVerify(null, message, key, signature);
}

async function signAndSettle(t: Test, h: Harness, opId: string, keyId: string, asset: string, destination: string, scheme: 'ed25519' | 'taproot'): Promise<void> {
  const cara = h.client('cara');
  opId = rid(opId);
  const submitted = await submitAs(cara, h.custodian, { opId, keyId, ...(await actTx(cara, keyId, '1000', destination)) });
  t.equal(submitted.custodian, 'cara', 'the act names the custodian who signed its request');
  t.equal(submitted.initiator, 'cara');
  t.equal(submitted.requestId, opId, 'its id is the request id');
  t.equal(submitted.state, 'Admitted', `${opId} admitted`);
  t.equal(submitted.receipts[0]?.type, 'AdmissionReceipt');
  t.equal(submitted.asset, asset);
  const published = await waitAct(cara, opId, 'Published');
  t.equal(published.state, 'Published', `${opId} passed the publication gate`);
  t.same(published.history.map((s) => s.state), ['Submitted', 'Admitted', 'PendingRemote', 'Executed', 'Published']);
  t.same(published.receipts.map((r) => r.type), ['AdmissionReceipt', 'PermitReceipt', 'PublicationReceipt'], 'one receipt per stage');

  const status = await h.client('audra').status();
  const key = status.keys.find((k) => k.id === keyId);
  t.ok(key, `${keyId} listed`);
  const tx = new Uint8Array(published.tx);
  const sigs = published.signatures.map((x) => Buffer.from(x, 'hex'));
  const signed = Buffer.from(published.signedTx, 'hex');
  if (scheme === 'ed25519') {
    t.equal(sigs.length, 1, 'a Solana message is signed once');
    t.ok(ed25519VerifyOpenSsl(key!.publicKey, Buffer.from(tx), sigs[0]!), 'the Ed25519 signature verifies under OpenSSL (RFC 8032) over the Solana message');
    t.notOk(ed25519VerifyOpenSsl(key!.publicKey, randomBytes(tx.length), sigs[0]!), 'and not for another message');
    const wire = getTransactionDecoder().decode(signed);
    t.same(Buffer.from(wire.messageBytes), Buffer.from(tx), 'the signed transaction decodes (@solana/transactions) to the act\'s message');
    t.same(Object.values(wire.signatures).map((x) => Buffer.from(x!)), sigs, 'with the signature, under the fee payer');
  } else {
    const xOnly = Buffer.from(key!.publicKey, 'hex').subarray(1);
    const { tx: unsigned, scripts, values } = bitcoinjsUnsigned(tx);
    t.equal(unsigned.ins.length, 2, 'a two-input PSBT');
    t.equal(sigs.length, 2, 'one signature per input');
    const own = bitcoin.payments.p2tr({ pubkey: xOnly, network: bitcoin.networks.regtest }).output!;
    t.ok(unsigned.outs.some((o) => Buffer.from(o.script).equals(own)), 'with change back to the key');
    sigs.forEach((sig, i) => {
      const sighash = unsigned.hashForWitnessV1(i, scripts, values, bitcoin.Transaction.SIGHASH_DEFAULT);
      t.ok(ecc.verifySchnorr(sighash, xOnly, sig), `input ${i}: the signature verifies (tiny-secp256k1, BIP 340) over its BIP 341 sighash (bitcoinjs)`);
      t.ok(schnorr.verify(sig, sighash, xOnly), `input ${i}: and under @noble BIP 340`);
      t.notOk(ecc.verifySchnorr(unsigned.hashForWitnessV1(1 - i, scripts, values, bitcoin.Transaction.SIGHASH_DEFAULT), xOnly, sig), `input ${i}: and not over the other input's sighash`);
    });
    const final = bitcoin.Transaction.fromBuffer(signed);
    t.equal(final.getId(), unsigned.getId(), 'the finalized transaction (bitcoinjs) is the PSBT\'s transaction');
    final.ins.forEach((input, i) => {
      t.same(Buffer.from(input.witness[0]!), sigs[i], `input ${i}: the key-path witness is its signature`);
      t.ok(ecc.verifySchnorr(final.hashForWitnessV1(i, scripts, values, bitcoin.Transaction.SIGHASH_DEFAULT), xOnly, input.witness[0]!), `input ${i}: the witness verifies over the final transaction`);
    });
  }

  const settled = await cara.settleAct(opId, `tx-${opId}`);
  t.equal(settled.state, 'Settled');
  t.equal(settled.confirmation, `tx-${opId}`);

  // The proven bundle (v2), checked against the trust policy the cluster exports: its entries under
  // a checkpoint the nodes cosigned through the real peer service.
  const policy = verifyPolicyChain((await h.client('audra').exportTrustPolicy()).policy).policy;
  const proven = verifyProvenText(`${(await h.client('audra').exportProvenEvidence(opId)).bundleJson}\n`, policy);
  t.ok(proven.ok, `the proven bundle verifies with the exported trust policy: ${proven.ok ? proven.lines.join('; ') : `${proven.step}: ${proven.reason} ${proven.detail}`}`);

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
  // The bundle proves who asked: the custodian's request, checked against the bundle's roster.
  t.type(bundle.request, 'string', 'the bundle carries the custodian\'s signed request');
  const req = Buffer.from(bundle.request!, 'hex');
  req[req.length - 1]! ^= 1; // the last byte of the signature
  t.match(verifyEvidenceBundle({ ...bundle, request: req.toString('hex') }), { ok: false, link: 0, reason: 'REQUEST_SIGNATURE_INVALID' }, 'a request whose signature was altered breaks the bundle');
  t.match(verifyEvidenceBundle({ ...bundle, request: null }), { ok: false, link: 0, reason: 'REQUEST_UNSIGNED' }, 'so does a bundle without the request');
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
