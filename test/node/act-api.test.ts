/**
 * Acts that carry their transaction, through the admin API (gRPC over mTLS) and the `custody` CLI:
 * the node derives the act from the transaction and nothing the caller says about it, refuses a
 * declared field or a transaction that does not hold before anything reaches the ledger, names the
 * caller as initiator, shows the facts and the signed transaction, and an approver signs only the
 * display it re-derived from the transaction of the very act the decision names.
 */
import t, { type Test } from 'tap';
import { writeFileSync } from 'node:fs';
import { createPrivateKey } from 'node:crypto';
import { join } from 'node:path';
import { Transaction } from '@scure/btc-signer';
import { ed25519 } from '@noble/curves/ed25519.js';
import { getTransactionDecoder } from '@solana/transactions';
import { getAddressDecoder } from '@solana/addresses';
import { adminPackage } from '../../node/admin/server.js';
import type { ActView, AdminClient, DecisionReply } from '../../node/admin/client.js';
import { buildSolanaTransfer, buildTaprootPsbt } from '../../node/lifecycle/tx-build.js';
import { verifiedApproval } from '../../node/commands/act.js';
import { deriveActFields } from '../../ledger/tx/act.js';
import { messagesDigest } from '../../ledger/tx/messages.js';
import { LEDGER_ASSETS } from '../../ledger/admission.js';
import { solanaAddress, taprootAddress } from '../../ledger/tx/parse.js';
import { fromHex, toHex } from '../../ledger/encoding.js';
import { isCustodyError } from '../../proto/errors.js';
import { node as nodeLimits } from '../../proto/limits.js';
import { APPROVERS, BTC, CUSTODIAN, SOL, startActNode } from './act-fixtures.js';
import { rid, seedOf } from '../../ledger/scenario.js';
import { makeApproverKey } from '../../ledger/decision.js';
import { encode } from '../../ledger/encoding.js';
import { actRequestToCbor, signActRequest, type ActRequestBody } from '../../ledger/act-request.js';
import { ledger as ledgerLimits } from '../../proto/limits.js';
import type { TxKind } from '../../ledger/tx/types.js';

/** `c` submits the act as cara's request, signed with her custodian key (the act id is rid(opId)). */
function submit(c: AdminClient, a: { opId: string; keyId: string; kind: string; tx: Uint8Array; approvalCid?: string; declared?: { asset?: string; amount?: string; destination?: string } }): Promise<ActView> {
  const { opId, kind, ...rest } = a;
  return c.submitActAs(CUSTODIAN, { ...rest, kind: kind as TxKind, requestId: rid(opId) });
}
import { ed25519Key, taprootKey, txidOf } from '../ledger/tx-fixtures.js';

const PAYEE_BTC = taprootAddress(taprootKey('surface-payee').key);
const OTHER_BTC = taprootAddress(taprootKey('surface-other').key);
const PAYEE_SOL = solanaAddress(ed25519Key('surface-payee-sol').key);
const OTHER_SOL = solanaAddress(ed25519Key('surface-other-sol').key);
const BLOCKHASH = getAddressDecoder().decode(new Uint8Array(32).fill(42));

const psbt = (pay = 150_000n, to = PAYEE_BTC) =>
  buildTaprootPsbt(BTC.key, [{ txid: txidOf('c1'), vout: 0, amountSat: 600_000n }, { txid: txidOf('c2'), vout: 1, amountSat: 400_000n }], [{ address: to, amount: pay }], 1_000n);
const solTransfer = (lamports = 1_000_000_000n, to = PAYEE_SOL) => buildSolanaTransfer(SOL.key, [{ address: to, amount: lamports }], BLOCKHASH);

/** A CLI run that must succeed; its stderr is the failure's message only when it did not. */
function exit0(t: Test, r: { code: number | null; stderr: string }, what: string): void {
  t.equal(r.code, 0, r.code === 0 ? `${what}: exit 0` : `${what}: ${r.stderr}`);
}

async function reason(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'accepted';
  } catch (e) {
    return isCustodyError(e) ? e.reason : String(e);
  }
}

t.test('transaction-carrying acts through the admin API and the CLI', { timeout: 240_000 }, async (t) => {
  const node = await startActNode();
  t.teardown(() => node.close());
  const cara = node.client('cara');

  t.test('SubmitAct derives every field from the custodian\'s signed request and names the custodian as initiator', async (t) => {
    const tx = psbt();
    const v = await submit(cara, { opId: 'btc-1', keyId: BTC.key.keyId, kind: 'btc-psbt', tx });
    const derived = deriveActFields('btc-psbt', tx, BTC.key, LEDGER_ASSETS);
    const act = node.ledger.submittedActs().at(-1)!;
    t.equal(act.initiator, 'cara', 'the initiator is the custodian who signed the request');
    const e = node.ledger.proposed.at(-1)!;
    t.ok(e.type === 'ActSubmitted' && e.request !== null && e.request.body.requestId === rid('btc-1') && e.opId === rid('btc-1'), 'the event carries the request; its id is the act\'s');
    t.equal(v.custodian, 'cara', 'the view names the custodian');
    t.equal(v.requestId, rid('btc-1'), 'and the request id');
    t.same([act.kind, toHex(act.tx)], ['btc-psbt', toHex(tx)], 'the act carries the transaction as given');
    t.same([act.asset, act.amount, act.destination], ['BTC', 150_000n, PAYEE_BTC], 'asset, amount and destination come from the transaction');
    t.equal(toHex(act.displayHash), toHex(derived.facts.displayHash), 'the display digest is the transaction\'s');
    t.equal(toHex(act.messageDigest), toHex(messagesDigest(derived.facts.messages)), 'the digest the key signs covers the two BIP 341 sighashes');
    t.equal(v.initiator, 'cara');
    t.equal(v.display, derived.facts.display, 'the view carries the canonical display');
    t.same(v.outputs.map((o) => [o.address, o.amount, o.change]), [[PAYEE_BTC, '0.00150000', false], [taprootAddress(BTC.key), '0.00849000', true]], 'outputs in asset units, change marked');
    t.equal(v.fee, '0.00001000 BTC');
    t.equal(v.amountUnits, '0.00150000', 'the amount in asset units');
    t.equal(v.network, 'bitcoin-regtest');
  });

  t.test('attacker: a declared field the transaction does not say is refused before the ledger (TX_DECLARED_MISMATCH)', async (t) => {
    const before = node.ledger.proposed.length;
    const tx = await solTransfer(1_000_000_000n, OTHER_SOL);
    // "1 SOL to X" over a transaction paying 1 SOL to Y.
    t.equal(await reason(submit(cara, { opId: 'lie-1', keyId: SOL.key.keyId, kind: 'solana', tx, declared: { asset: 'SOL', amount: '1000000000', destination: PAYEE_SOL } })), 'TX_DECLARED_MISMATCH', 'destination');
    t.equal(await reason(submit(cara, { opId: 'lie-2', keyId: SOL.key.keyId, kind: 'solana', tx, declared: { amount: '1' } })), 'TX_DECLARED_MISMATCH', 'amount');
    t.equal(await reason(submit(cara, { opId: 'lie-3', keyId: SOL.key.keyId, kind: 'solana', tx, declared: { asset: 'BTC' } })), 'TX_DECLARED_MISMATCH', 'asset');
    t.equal(node.ledger.proposed.length, before, 'nothing was proposed to the ledger');
    const ok = await submit(cara, { opId: 'sol-1', keyId: SOL.key.keyId, kind: 'solana', tx, declared: { asset: 'SOL', amount: '1000000000', destination: OTHER_SOL } });
    t.equal(ok.state, 'Admitted', 'the same transaction declared truthfully goes through');
  });

  t.test('attacker: a transaction that does not hold is refused with its TX_* code before the ledger', async (t) => {
    const before = node.ledger.proposed.length;
    const stranger = ed25519Key('surface-stranger');
    const foreign = await buildSolanaTransfer(stranger.key, [{ address: PAYEE_SOL, amount: 5n }], BLOCKHASH);
    t.equal(await reason(submit(cara, { opId: 'x-1', keyId: SOL.key.keyId, kind: 'solana', tx: foreign })), 'TX_FOREIGN_INPUT', 'another key pays the fee');
    t.equal(await reason(submit(cara, { opId: 'x-2', keyId: SOL.key.keyId, kind: 'solana', tx: psbt() })), 'TX_UNPARSEABLE', 'a PSBT passed off as a Solana message');
    t.equal(await reason(submit(cara, { opId: 'x-3', keyId: BTC.key.keyId, kind: 'btc-psbt', tx: await solTransfer() })), 'TX_UNPARSEABLE', 'a Solana message passed off as a PSBT');
    t.equal(await reason(submit(cara, { opId: 'x-4', keyId: BTC.key.keyId, kind: 'bitcoin', tx: psbt() })), 'INVALID_ARGUMENT', 'an unknown kind is not a request the client signs');
    t.equal(await reason(submit(cara, { opId: 'x-5', keyId: SOL.key.keyId, kind: 'btc-psbt', tx: psbt() })), 'TX_NETWORK_MISMATCH', 'a PSBT for a Solana key');
    t.equal(await reason(submit(cara, { opId: 'x-6', keyId: 'no-such-key', kind: 'raw', tx: new Uint8Array([1]) })), 'UNKNOWN_KEY');
    t.equal(await reason(cara.submitAct({ request: new Uint8Array(0) })), 'REQUEST_UNSIGNED', 'no request at all');
    t.equal(await reason(submit(node.client('audra'), { opId: 'x-8', keyId: SOL.key.keyId, kind: 'solana', tx: await solTransfer() })), 'ROLE_NOT_ALLOWED', 'an auditor submits nothing');
    t.equal(node.ledger.proposed.length, before, 'nothing was proposed to the ledger');
  });

  t.test('the caller\'s digest, display and unsigned submission are gone from the API', async (t) => {
    const def = adminPackage()['custody.admin.v1.SubmitActRequest'] as unknown as { type: { field: { name: string }[] } };
    const fields = def.type.field.map((f) => f.name);
    t.same(fields.sort(), ['approvalCid', 'request'], `SubmitActRequest fields: ${fields.join(', ')}`);
    // A client that still sends an unsigned act: the fields are not on the wire, and without a request nothing is proposed.
    const before = node.ledger.proposed.length;
    const tx = await solTransfer(7n);
    t.equal(await reason(cara.call('SubmitAct', { opId: 'old-client', keyId: SOL.key.keyId, kind: 'solana', tx: Buffer.from(tx), keyEpoch: -1, messageDigest: Buffer.alloc(32, 7), display: 'pay 1 lamport', initiator: 'someone-else' })), 'REQUEST_UNSIGNED', 'an unsigned submission is refused');
    t.equal(node.ledger.proposed.length, before, 'nothing was proposed to the ledger');
  });

  t.test('attacker: a request that is not a custodian\'s, for this cluster, in its window is refused before the ledger', async (t) => {
    const before = node.ledger.proposed.length;
    const tx = await solTransfer(9n);
    const clusterId = (await cara.status()).clusterId;
    const body = (over: Partial<ActRequestBody> = {}): ActRequestBody => ({
      clusterId, custodian: 'cara', requestId: rid(`forged-${Object.keys(over).join('-')}`), issuedMs: Date.now(), keyId: SOL.key.keyId, keyEpoch: 0, kind: 'solana', tx,
      declared: { asset: '', amount: '', destination: '' }, ...over,
    });
    const send = (b: ActRequestBody, key: Uint8Array = CUSTODIAN.secretKey): Promise<string> => reason(cara.submitAct({ request: encode(actRequestToCbor(signActRequest(b, key))) }));
    const governor = APPROVERS[0]!;
    t.equal(await send(body({ custodian: governor.id }), governor.secretKey), 'NOT_A_CUSTODIAN', 'signed by a governor in its own name');
    t.equal(await send(body(), governor.secretKey), 'REQUEST_SIGNATURE_INVALID', 'cara\'s request signed with a governor\'s key');
    t.equal(await send(body(), makeApproverKey('cara', seedOf('not cara')).secretKey), 'REQUEST_SIGNATURE_INVALID', 'signed with another key');
    t.equal(await send(body({ custodian: 'mallory' }), makeApproverKey('mallory', seedOf('mallory')).secretKey), 'NOT_A_CUSTODIAN', 'a signer off the roster');
    t.equal(await send(body({ clusterId: 'another-cluster' })), 'REQUEST_MISMATCH', 'a request of another cluster');
    t.equal(await send(body({ issuedMs: Date.now() - ledgerLimits.actRequestAgeMsMax - 60_000 })), 'REQUEST_EXPIRED', 'issued before the window');
    t.equal(await send(body({ issuedMs: Date.now() + ledgerLimits.actRequestSkewMsMax + 60_000 })), 'REQUEST_EXPIRED', 'issued too far ahead');
    t.equal(await send(body({ declared: { asset: '', amount: '1', destination: '' } })), 'TX_DECLARED_MISMATCH', 'a declared amount the transaction does not pay');
    const bytes = encode(actRequestToCbor(signActRequest(body(), CUSTODIAN.secretKey)));
    t.equal(await reason(cara.submitAct({ request: bytes.subarray(0, bytes.length - 1) })), 'REQUEST_UNSIGNED', 'a request that is not well-formed');
    t.equal(node.ledger.proposed.length, before, 'nothing was proposed to the ledger');
  });

  t.test('once published, ShowAct carries the signatures and the finalized transaction', async (t) => {
    const sigs = node.ledger.execute(rid('btc-1'));
    t.same((await cara.showAct(rid('btc-1'))).signatures, [], 'none while the act is held at the publication gate');
    node.ledger.publish(rid('btc-1'));
    const v = await cara.showAct(rid('btc-1'));
    t.equal(v.signatures.length, 2, 'one signature per input');
    t.same(v.signatures, sigs.map(toHex));
    const tx = Transaction.fromRaw(fromHex(v.signedTx));
    t.equal(tx.inputsLength, 2);
    t.equal(tx.id, v.txid, 'the txid shown is the transaction\'s');
    t.same(tx.getInput(0).finalScriptWitness?.map(toHex), [toHex(sigs[0]!)], 'the key-path witness is the threshold signature');

    const [solSig] = node.ledger.execute(rid('sol-1'));
    node.ledger.publish(rid('sol-1'));
    const s = await cara.showAct(rid('sol-1'));
    const wire = getTransactionDecoder().decode(fromHex(s.signedTx));
    const payer = solanaAddress(SOL.key);
    t.equal(toHex(wire.signatures[payer]!), toHex(solSig!), 'the wire transaction carries the fee payer\'s signature');
    t.ok(ed25519.verify(wire.signatures[payer]!, new Uint8Array(wire.messageBytes), SOL.key.groupKey), 'which verifies over the message');
  });

  t.test('CLI: key show, tx psbt, act submit signed with the custodian key and a double check, act show', async (t) => {
    const custodianKey = join(node.certs, 'cara.custodian.key');
    writeFileSync(custodianKey, toHex(CUSTODIAN.secretKey) + '\n', { mode: 0o600 });
    const cust = ['--custodian-key', custodianKey, '--custodian', 'cara'];
    const key = await node.cli('audra', ['admin', 'key', 'show', BTC.key.keyId]);
    exit0(t, key, 'key show');
    t.match(key.stdout, `address ${taprootAddress(BTC.key)}`, 'the key\'s address on its network');
    t.match(key.stdout, 'on bitcoin-regtest');

    const file = join(node.certs, 'pay.psbt');
    const built = await node.cli('cara', ['tx', 'psbt', '--key-id', BTC.key.keyId, '--input', `${txidOf('c3')}:0:500000`, '--input', `${txidOf('c4')}:2:70000`, '--to', `${PAYEE_BTC}:250000`, '--fee', '2000', '--out', file]);
    exit0(t, built, 'tx psbt');
    t.match(built.stdout, 'output 1: ' + taprootAddress(BTC.key) + ' 0.00318000 BTC change', 'change back to the key');

    const unsigned = await node.cli('cara', ['admin', 'act', 'submit', '--key-id', BTC.key.keyId, '--psbt', file, '--op', rid('cli-1')]);
    t.equal(unsigned.code, 3, 'no custodian key, no act');
    t.match(unsigned.stderr, /^REQUEST_UNSIGNED: /m);
    const lie = await node.cli('cara', ['admin', 'act', 'submit', '--key-id', BTC.key.keyId, '--psbt', file, '--op', rid('cli-1'), '--amount', '250000', '--to', OTHER_BTC, ...cust]);
    t.equal(lie.code, 3, 'a destination the PSBT does not pay');
    t.match(lie.stderr, /^TX_DECLARED_MISMATCH: destination/m);

    const ok = await node.cli('cara', ['admin', 'act', 'submit', '--key-id', BTC.key.keyId, '--psbt', file, '--op', rid('cli-1'), '--amount', '250000', '--to', PAYEE_BTC, ...cust]);
    exit0(t, ok, 'act submit declared truthfully');
    t.match(ok.stdout, `act ${rid('cli-1')}: Admitted`);
    t.match(ok.stdout, `requested by custodian cara: request ${rid('cli-1')}`, 'the custodian and the request id');
    t.match(ok.stdout, `pays ${PAYEE_BTC} 0.00250000 BTC`);
    t.match(ok.stdout, '| fee: 0.00002000 BTC', 'the display, line by line');

    node.ledger.execute(rid('cli-1'));
    node.ledger.publish(rid('cli-1'));
    const show = await node.cli('audra', ['admin', 'act', 'show', rid('cli-1')]);
    exit0(t, show, 'act show');
    t.match(show.stdout, /signature 1: [0-9a-f]{128}/);
    t.match(show.stdout, /signed transaction [0-9a-f]{64}: 02000000/, 'the finalized transaction in hex');
    t.match(show.stdout, 'message 1 sighash', 'the messages signed');

    const msg = join(node.certs, 'pay.msg');
    const sol = await node.cli('cara', ['tx', 'solana', '--key-id', SOL.key.keyId, '--to', `${PAYEE_SOL}:2500000`, '--blockhash', BLOCKHASH, '--out', msg]);
    exit0(t, sol, 'tx solana');
    t.match(sol.stdout, `output 0: ${PAYEE_SOL} 0.002500000 SOL`, 'the transfer as the cluster will show it');
    // The key as a PEM PKCS#8 file, and no --op: a fresh random request id.
    const pem = join(node.certs, 'cara.custodian.pem');
    writeFileSync(pem, createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: Buffer.from(CUSTODIAN.secretKey).toString('base64url'), x: Buffer.from(CUSTODIAN.publicKey).toString('base64url') }, format: 'jwk' }).export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const solSubmit = await node.cli('cara', ['admin', 'act', 'submit', '--key-id', SOL.key.keyId, '--solana', msg, '--to', PAYEE_SOL, '--amount', '2500000', '--asset', 'SOL', '--custodian-key', pem, '--custodian', 'cara']);
    exit0(t, solSubmit, 'act submit --solana with a PEM key');
    t.match(solSubmit.stdout, /act [0-9a-f]{32}: Admitted {2}key key-surface-sol@0 {2}0\.002500000 SOL/, 'the amount in asset units');

    const help = await node.cli('cara', ['admin', 'act', 'submit', '--help']);
    t.match(help.stdout, 'TX_DECLARED_MISMATCH', 'the help says what the double check does');
    t.match(help.stdout, '64 hex digits', 'and which custodian key files it reads');
    t.match(help.stdout, '--psbt');
  });

  t.test('approvals show and bind the display; an approval for one display is refused for any other transaction', async (t) => {
    const keyFile = (i: number): string => {
      const f = join(node.certs, `approver-${i}.json`);
      writeFileSync(f, JSON.stringify({ id: APPROVERS[i]!.id, secretKey: toHex(APPROVERS[i]!.secretKey) }));
      return f;
    };
    const file = join(node.certs, 'big.msg');
    writeFileSync(file, await solTransfer(3_000_000_000n));
    const proposed = await node.cli('cara', ['admin', 'act', 'propose', '--key-id', SOL.key.keyId, '--solana', file, '--op', rid('big-1'), '--amount', '3000000000']);
    exit0(t, proposed, 'act propose');
    const cid = /decision ([0-9a-f]{64})/.exec(proposed.stdout)?.[1] ?? '';
    t.match(proposed.stdout, `pays ${PAYEE_SOL} 3.000000000 SOL`);

    const pending = node.ledger.book.size;
    const lying = await node.cli('cara', ['admin', 'act', 'propose', '--key-id', SOL.key.keyId, '--solana', file, '--op', rid('big-lie'), '--to', OTHER_SOL]);
    t.equal(lying.code, 3, 'a proposal declaring another payee');
    t.match(lying.stderr, /^TX_DECLARED_MISMATCH: destination/m);
    t.equal(node.ledger.book.size, pending, 'is refused before anything is proposed');

    const a0 = await node.cli('approver-0', ['admin', 'act', 'approve', rid('big-1'), '--key-file', keyFile(0)]);
    exit0(t, a0, 'approver-0 act approve');
    t.match(a0.stderr, `| output 0: ${PAYEE_SOL} 3.000000000 SOL`, 'the approver is shown the display re-derived from the bytes');
    t.match(a0.stdout, '1 of 2 approvals');

    // A node or proposer that binds another display to the same act: the CLI refuses to sign.
    const forged = await node.client('approver-1').proposeDecision(JSON.stringify({
      kind: 'ActApproved', opId: rid('big-2'), displayHash: toHex(new Uint8Array(32).fill(1)),
      act: { keyId: SOL.key.keyId, kind: 'solana', tx: toHex(await solTransfer(3_000_000_000n, OTHER_SOL)) },
    }));
    const refused = await node.cli('approver-1', ['admin', 'act', 'approve', '--cid', forged.cid, '--key-file', keyFile(1)]);
    t.equal(refused.code, 3);
    t.match(refused.stderr, /^BINDING_MISMATCH: decision [0-9a-f]+ names another display/m);
    const viaDecision = await node.cli('approver-1', ['admin', 'decision', 'approve', '--cid', forged.cid, '--key-file', keyFile(1)]);
    t.equal(viaDecision.code, 3, 'the general decision approval checks the same');
    t.match(viaDecision.stderr, /^BINDING_MISMATCH/m);

    // A node showing another transaction than the act the decision approves.
    const c = node.client('approver-1');
    const real = await c.getDecision(cid);
    const other = await solTransfer(3_000_000_000n, OTHER_SOL);
    const liarClient = Object.create(c) as AdminClient;
    const shown: ActView = { ...(real.act as ActView), tx: Buffer.from(other) };
    const liar: DecisionReply = { ...real, act: shown };
    t.equal(await reason(verifiedApproval(liarClient, liar, cid)), 'BINDING_MISMATCH', 'the transaction shown is not the act approved');
    t.equal(await reason(verifiedApproval(liarClient, { ...real, act: { ...(real.act as ActView), initiator: 'mallory' } }, cid)), 'BINDING_MISMATCH', 'nor is the same transaction from another initiator');
    const honest = await verifiedApproval(c, real, cid);
    t.equal(honest.opId, rid('big-1'));

    const a1 = await node.cli('approver-1', ['admin', 'act', 'approve', rid('big-1'), '--key-file', keyFile(1)]);
    exit0(t, a1, 'approver-1 act approve');
    t.match(a1.stdout, '2 of 2 approvals');

    // Submitting with the approval: another transaction beside it is refused; the approved act goes through.
    t.equal(await reason(submit(cara, { opId: 'big-1', keyId: SOL.key.keyId, kind: 'solana', tx: other, approvalCid: cid })), 'BINDING_MISMATCH', 'the approval does not travel with another transaction');
    const custodianKey = join(node.certs, 'cara.custodian.json');
    writeFileSync(custodianKey, JSON.stringify({ id: 'cara', secretKey: toHex(CUSTODIAN.secretKey) }), { mode: 0o600 });
    const before = node.ledger.proposed.length;
    const noRequest = await node.cli('cara', ['admin', 'act', 'submit', '--approval', cid, '--key-id', SOL.key.keyId, '--solana', file]);
    t.equal(noRequest.code, 3, 'an approved act still needs the custodian\'s signed request');
    t.match(noRequest.stderr, /^REQUEST_UNSIGNED/m);
    const otherTx = join(node.certs, 'other.msg');
    writeFileSync(otherTx, other);
    const swapped = await node.cli('cara', ['admin', 'act', 'submit', '--approval', cid, '--key-id', SOL.key.keyId, '--solana', otherTx, '--custodian-key', custodianKey]);
    t.equal(swapped.code, 3, 'a signed request for another transaction does not travel with the approval');
    t.match(swapped.stderr, /^BINDING_MISMATCH/m);
    t.equal(node.ledger.proposed.length, before, 'nothing was proposed');
    const sub = await node.cli('cara', ['admin', 'act', 'submit', '--approval', cid, '--key-id', SOL.key.keyId, '--solana', file, '--custodian-key', custodianKey]);
    exit0(t, sub, 'act submit --approval with the custodian\'s signed request');
    const carried = node.ledger.proposed.at(-1)!;
    t.ok(carried.type === 'ActSubmitted' && carried.approval !== null && carried.approval.approvals.length === 2, 'the act is submitted with its two approvals');
    if (carried.type === 'ActSubmitted' && carried.approval !== null && carried.approval.body.action.kind === 'ActApproved') {
      t.equal(toHex(carried.approval.body.action.displayHash), toHex(carried.act.displayHash), 'the approval binds the act\'s display digest');
      t.equal(carried.act.initiator, 'cara', 'the initiator is the custodian who signed the request');
      t.equal(carried.request?.body.requestId, rid('big-1'), 'the request id is the act the approval names');
    }
  });

  t.test('the chronicle parses the newest acts only (node.chronicleFactsActsMax); ShowAct shows any act in full', async (t) => {
    const tx = await solTransfer(11n);
    for (let i = 0; i < nodeLimits.chronicleFactsActsMax + 5; i++) await submit(cara, { opId: `many-${i}`, keyId: SOL.key.keyId, kind: 'solana', tx });
    const ch = await node.client('audra').chronicle();
    const withFacts = ch.acts.filter((a) => a.display !== '');
    t.equal(withFacts.length, nodeLimits.chronicleFactsActsMax, 'as many acts with their facts as the bound');
    t.same(withFacts.map((a) => a.opId), ch.acts.slice(-nodeLimits.chronicleFactsActsMax).map((a) => a.opId), 'the newest ones');
    const oldest = ch.acts[0]!;
    t.same([oldest.display, oldest.asset, oldest.kind], ['', 'BTC', 'btc-psbt'], 'an older act by its ledger fields');
    t.ok(ch.acts.every((a) => a.signedTx === ''), 'no finalized transaction in the chronicle');
    t.ok(ch.acts.find((a) => a.opId === rid('btc-1'))!.signatures.length === 2, 'the signatures are listed all the same');
    const full = await cara.showAct(oldest.opId);
    t.not(full.display, '', 'ShowAct parses it');
    t.not(full.signedTx, '', 'and finalizes it');
  });

  t.test('a denied act whose transaction never parsed is shown with the refusal; a decision shows the act it approves', async (t) => {
    const garbage = new Uint8Array([0x70, 0x73, 0x62, 0x74, 0xff, 0x00]);
    node.ledger.deny(rid('bad-1'), { ...node.ledger.submittedActs()[0]!, tx: garbage }, 'TX_UNPARSEABLE');
    const v = await node.client('audra').showAct(rid('bad-1'));
    t.equal(v.state, 'Denied');
    t.match(v.factsRefused, /^TX_UNPARSEABLE: /, 'the parse refusal, with its code');
    t.equal(v.display, '', 'and no display');
    const shown = await node.cli('audra', ['admin', 'act', 'show', rid('bad-1')]);
    exit0(t, shown, 'act show of a denied act');
    t.match(shown.stdout, 'the transaction does not parse: TX_UNPARSEABLE');

    const file = join(node.certs, 'to-approve.msg');
    writeFileSync(file, await solTransfer(4_000_000_000n));
    const p = await node.cli('cara', ['admin', 'act', 'propose', '--key-id', SOL.key.keyId, '--solana', file, '--op', rid('big-3')]);
    exit0(t, p, 'act propose');
    const cid = /decision ([0-9a-f]{64})/.exec(p.stdout)?.[1] ?? '';
    const d = await node.cli('audra', ['admin', 'decision', 'show', '--cid', cid]);
    exit0(t, d, 'decision show');
    t.match(d.stdout, `pays ${PAYEE_SOL} 4.000000000 SOL`, 'decision show prints the act it approves');
  });
});
