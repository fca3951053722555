/**
 * Bitcoin PSBT parsing: a real two-input Taproot key-path PSBT with change (regtest), parsed into
 * facts, its sighashes signed with the BIP 86 tweaked key and verified by an independent
 * implementation (bitcoinjs-lib computing BIP 341 sighashes itself, tiny-secp256k1 verifying
 * BIP 340), then finalized into a transaction bitcoinjs deserializes. Then the attacks: every
 * PSBT that would make the key sign something other than what the display shows is refused with
 * its reason code. A property (fast-check) checks our sighashes against bitcoinjs over random
 * transactions; a failure prints its seed: replay with FC_SEED=<seed> FC_PATH=<path>.
 */
import t from 'tap';
import fc from 'fast-check';
import * as bitcoin from 'bitcoinjs-lib';
import * as ecc from 'tiny-secp256k1';
import { schnorr } from '@noble/curves/secp256k1.js';
import { SigHash, Transaction } from '@scure/btc-signer';
import { finalizeBitcoin, parseTransaction, taprootAddress } from '../../ledger/tx/parse.js';
import { tx as limits } from '../../proto/limits.js';
import { suiteOf } from '../../kernel/suites.js';
import { ASSETS, REGTEST, buildPsbt, refusedWith, p2trScript, taprootKey, txidOf, type PsbtSpec } from './tx-fixtures.js';

bitcoin.initEccLib(ecc);

const me = taprootKey('treasury');
const other = taprootKey('stranger');
const ours = p2trScript(me.outputXOnly);
const dest = bitcoin.payments.p2tr({ internalPubkey: other.internal, network: bitcoin.networks.regtest }).address!;
const destWpkh = bitcoin.payments.p2wpkh({ pubkey: Uint8Array.from(Buffer.from('02' + '11'.repeat(32), 'hex')), network: bitcoin.networks.regtest }).address!;

/** Two inputs of ours (0.006 + 0.004 BTC), 0.0015 BTC out, 0.00849 BTC change: fee 0.00001 BTC. */
function honest(): PsbtSpec {
  return {
    inputs: [
      { txid: txidOf('a'), index: 0, amount: 600_000n, script: ours, internal: me.internal },
      { txid: txidOf('b'), index: 3, amount: 400_000n, script: ours },
    ],
    outputs: [
      { address: dest, amount: 150_000n },
      { address: taprootAddress(me.key), amount: 849_000n },
    ],
  };
}

/** The unsigned transaction rebuilt by bitcoinjs from the PSBT's own fields (not from our parse). */
function bitcoinjsUnsigned(psbtBytes: Uint8Array): { tx: bitcoin.Transaction; scripts: Uint8Array[]; values: bigint[] } {
  const psbt = bitcoin.Psbt.fromBuffer(psbtBytes, { network: bitcoin.networks.regtest });
  const tx = new bitcoin.Transaction();
  tx.version = psbt.version;
  tx.locktime = psbt.locktime;
  for (const i of psbt.txInputs) tx.addInput(i.hash, i.index, i.sequence);
  for (const o of psbt.txOutputs) tx.addOutput(o.script, o.value);
  const scripts = psbt.data.inputs.map((i) => i.witnessUtxo!.script);
  const values = psbt.data.inputs.map((i) => i.witnessUtxo!.value);
  return { tx, scripts, values };
}

t.test('our address: BIP 86 output key of the internal key, derived the same by bitcoinjs', async (t) => {
  const bjs = bitcoin.payments.p2tr({ internalPubkey: me.internal, network: bitcoin.networks.regtest });
  t.equal(taprootAddress(me.key), bjs.address, 'bech32m address of the group key = bitcoinjs p2tr(internal key)');
  t.same(Buffer.from(ours), Buffer.from(bjs.output!), 'scriptPubKey OP_1 <x(Q)>');
  t.match(taprootAddress(me.key), /^bcrt1p/, 'regtest bech32m');
  t.match(taprootAddress({ ...me.key, network: 'bitcoin-mainnet' }), /^bc1p/, 'mainnet bech32m');
});

t.test('a two-input Taproot PSBT with change: facts, signatures verified independently, finalized', async (t) => {
  const psbt = buildPsbt(honest());
  const facts = parseTransaction('btc-psbt', psbt, me.key, ASSETS);
  t.equal(facts.kind, 'btc-psbt');
  t.equal(facts.network, 'bitcoin-regtest');
  t.equal(facts.asset, 'BTC');
  t.equal(facts.feeAsset, 'BTC');
  t.same(facts.outputs, [
    { address: dest, asset: 'BTC', amount: 150_000n, change: false },
    { address: taprootAddress(me.key), asset: 'BTC', amount: 849_000n, change: true },
  ], 'outputs in order, change marked');
  t.equal(facts.amount, 150_000n, 'amount = non-change outputs');
  t.equal(facts.fee, 1_000n, 'fee = inputs - outputs');
  t.equal(facts.messages.length, 2, 'one message per input');
  t.match(facts.display, /\noutput 0: bcrt1p\S+ 0\.00150000 BTC\n/, 'display: destination in BTC with 8 decimals');
  t.match(facts.display, /\noutput 1: bcrt1p\S+ 0\.00849000 BTC change\n/, 'display: change marked');
  t.match(facts.display, /\nfee: 0\.00001000 BTC\n/, 'display: fee');
  t.match(facts.display, `\ninput 0: ${txidOf('a')}:0 0.00600000 BTC key path\n`, 'display: each coin spent');
  t.match(facts.display, `\ninput 1: ${txidOf('b')}:3 0.00400000 BTC key path\n`);
  t.equal(facts.displayHash.length, 32);

  const { tx: unsigned, scripts, values } = bitcoinjsUnsigned(psbt);
  const sigs = facts.messages.map((m, i) => {
    const independent = unsigned.hashForWitnessV1(i, scripts, values, bitcoin.Transaction.SIGHASH_DEFAULT);
    t.same(Buffer.from(m), Buffer.from(independent), `input ${i}: our sighash = bitcoinjs BIP 341 sighash`);
    const sig = schnorr.sign(m, me.outputSecret, new Uint8Array(32));
    t.ok(ecc.verifySchnorr(independent, me.outputXOnly, sig), `input ${i}: BIP 340 signature verifies with tiny-secp256k1`);
    return sig;
  });

  const done = finalizeBitcoin(psbt, sigs);
  const final = bitcoin.Transaction.fromBuffer(done.tx);
  t.equal(final.getId(), done.txid, 'bitcoinjs deserializes the finalized transaction; same txid');
  t.equal(final.ins.length, 2);
  final.ins.forEach((input, i) => {
    t.equal(input.witness.length, 1, `input ${i}: key-path witness is one element`);
    t.same(Buffer.from(input.witness[0]!), Buffer.from(sigs[i]!), `input ${i}: the witness is the 64-byte signature`);
    const h = final.hashForWitnessV1(i, scripts, values, bitcoin.Transaction.SIGHASH_DEFAULT);
    t.ok(ecc.verifySchnorr(h, me.outputXOnly, input.witness[0]!), `input ${i}: the witness verifies over the final transaction`);
  });
  t.same(final.outs.map((o) => o.value), [150_000n, 849_000n], 'outputs unchanged');
  const fromFinalPsbt = bitcoin.Psbt.fromBuffer(done.psbt, { network: bitcoin.networks.regtest }).extractTransaction();
  t.equal(fromFinalPsbt.getId(), done.txid, 'the finalized PSBT extracts to the same transaction (bitcoinjs)');

  const swapped = [sigs[1]!, sigs[0]!];
  refusedWith(t, () => finalizeBitcoin(psbt, swapped), 'SIGNATURE_INVALID', 'signatures in the wrong order');
  refusedWith(t, () => finalizeBitcoin(psbt, [sigs[0]!]), 'INVALID_ARGUMENT', 'one signature short');
});

t.test('PSBT v2 (BIP 370) of the same transaction parses to the same facts', async (t) => {
  const v0 = parseTransaction('btc-psbt', buildPsbt(honest()), me.key, ASSETS);
  const v2 = parseTransaction('btc-psbt', buildPsbt({ ...honest(), psbtVersion: 2 }), me.key, ASSETS);
  t.same(v2.outputs, v0.outputs);
  t.same(v2.messages.map((m) => Buffer.from(m)), v0.messages.map((m) => Buffer.from(m)), 'same sighashes');
  t.equal(v2.display, v0.display, 'same display');
});

t.test('attacks and malformed PSBTs are refused with their reason codes', async (t) => {
  const base = honest();
  const theirs = p2trScript(other.outputXOnly);
  const parse = (spec: PsbtSpec, key = me.key) => () => parseTransaction('btc-psbt', buildPsbt(spec), key, ASSETS);

  refusedWith(t, parse({ ...base, inputs: [base.inputs[0]!, { ...base.inputs[1]!, script: theirs }] }), 'TX_FOREIGN_INPUT', 'an input of another key');
  refusedWith(t, parse({ ...base, inputs: [{ ...base.inputs[0]!, extra: { sighashType: SigHash.ALL } }, base.inputs[1]!] }), 'TX_UNSUPPORTED', 'SIGHASH_ALL (not DEFAULT)');
  refusedWith(t, parse({ ...base, inputs: [{ ...base.inputs[0]!, extra: { sighashType: SigHash.ALL_ANYONECANPAY } }, base.inputs[1]!] }), 'TX_UNSUPPORTED', 'ANYONECANPAY');
  refusedWith(t, parse(base, { ...me.key, network: 'solana-devnet' }), 'TX_NETWORK_MISMATCH', 'a PSBT for a key of a Solana network');
  refusedWith(t, parse(base, { ...me.key, network: 'none' }), 'TX_NETWORK_MISMATCH', 'a PSBT for a raw-only key');
  refusedWith(t, parse(base, { ...me.key, network: 'bitcoin-mainnet' }), 'TX_ASSET_UNKNOWN', 'a mainnet key with only a regtest BTC in the table');
  refusedWith(t, parse(base, { ...me.key, scheme: 'ed25519', groupKey: me.key.groupKey.slice(1) }), 'TX_UNSUPPORTED', 'a PSBT for an ed25519 key');
  refusedWith(t, parse({ ...base, outputs: [{ amount: 0n, script: Uint8Array.from([0x6a, 0x04, 1, 2, 3, 4]) }, base.outputs[1]!] }), 'TX_UNSUPPORTED', 'an OP_RETURN output');
  const nonMinimal = Uint8Array.from([0x51, 0x4c, 0x20, ...other.outputXOnly]);
  refusedWith(t, parse({ ...base, outputs: [{ amount: 150_000n, script: nonMinimal }, base.outputs[1]!] }), 'TX_UNSUPPORTED', 'a non-minimal encoding of a Taproot output script');
  refusedWith(t, parse({ ...base, outputs: [{ address: dest, amount: 1_000_001n }] }), 'TX_FEE_INVALID', 'outputs exceed inputs');
  const big = [{ ...base.inputs[0]!, amount: 100_000_000n }];
  refusedWith(t, parse({ inputs: big, outputs: [{ address: dest, amount: 100_000_000n - BigInt(limits.btcFeeSatMax) - 1n }] }), 'TX_FEE_INVALID', 'fee above the bound');
  t.equal(parse({ inputs: big, outputs: [{ address: dest, amount: 100_000_000n - BigInt(limits.btcFeeSatMax) }] })().fee, BigInt(limits.btcFeeSatMax), 'a fee at the bound is accepted');
  refusedWith(t, parse({ ...base, inputs: [base.inputs[0]!, { ...base.inputs[0]! }] }), 'TX_UNPARSEABLE', 'the same coin spent twice');
  refusedWith(t, parse({ ...base, inputs: [{ ...base.inputs[0]!, internal: other.internal }, base.inputs[1]!] }), 'TX_FOREIGN_INPUT', 'an internal key that does not tweak to the key');
  refusedWith(t, parse({ ...base, inputs: [{ ...base.inputs[0]!, extra: { tapMerkleRoot: new Uint8Array(32).fill(7) } }, base.inputs[1]!] }), 'TX_UNSUPPORTED', 'script-path data (a merkle root)');
  refusedWith(t, parse({ ...base, inputs: [{ ...base.inputs[0]!, extra: { tapKeySig: new Uint8Array(64).fill(1) } }, base.inputs[1]!] }), 'TX_UNSUPPORTED', 'a PSBT that already carries a signature');
  const many = Array.from({ length: limits.btcInputsMax + 1 }, (_, i) => ({ txid: txidOf(`m${i}`), index: 0, amount: 10_000n, script: ours }));
  refusedWith(t, parse({ inputs: many, outputs: [{ address: dest, amount: 10_000n * BigInt(many.length) - 5_000n }] }), 'LIMIT_EXCEEDED', 'more inputs than the bound');

  const wide = Array.from({ length: limits.btcOutputsMax + 1 }, () => ({ address: dest, amount: 1_000n }));
  refusedWith(t, parse({ ...base, outputs: wide }), 'LIMIT_EXCEEDED', 'more outputs than the bound');
  const withUnknown = (add: (p: bitcoin.Psbt) => void) => () => {
    const p = bitcoin.Psbt.fromBuffer(buildPsbt(base));
    add(p);
    return parseTransaction('btc-psbt', p.toBuffer(), me.key, ASSETS);
  };
  refusedWith(t, withUnknown((p) => p.addUnknownKeyValToInput(0, { key: Uint8Array.from([0x99, 1]), value: Uint8Array.from([1]) })), 'TX_UNSUPPORTED', 'an unknown input field');
  refusedWith(t, withUnknown((p) => p.addUnknownKeyValToOutput(1, { key: Uint8Array.from([0x98]), value: Uint8Array.from([1]) })), 'TX_UNSUPPORTED', 'an unknown output field');
  refusedWith(t, withUnknown((p) => p.addUnknownKeyValToGlobal({ key: Uint8Array.from([0x97]), value: Uint8Array.from([1]) })), 'TX_UNSUPPORTED', 'an unknown global field');
  refusedWith(t, withUnknown((p) => p.addUnknownKeyValToInput(0, { key: Uint8Array.from([0xfc, 3, 0x61, 0x62, 0x63, 0]), value: Uint8Array.from([1]) })), 'TX_UNSUPPORTED', 'a proprietary input field');

  const noUtxo = new Transaction({ version: 2 });
  noUtxo.addInput({ txid: txidOf('c'), index: 0 });
  noUtxo.addOutputAddress(dest, 1_000n, REGTEST);
  refusedWith(t, () => parseTransaction('btc-psbt', noUtxo.toPSBT(0), me.key, ASSETS), 'TX_INPUT_INCOMPLETE', 'an input without its witnessUtxo');
  refusedWith(t, () => parseTransaction('btc-psbt', Uint8Array.from(Buffer.from('70736274ff0100', 'hex')), me.key, ASSETS), 'TX_UNPARSEABLE', 'truncated PSBT');
  refusedWith(t, () => parseTransaction('btc-psbt', new Uint8Array(limits.psbtBytesMax + 1), me.key, ASSETS), 'LIMIT_EXCEEDED', 'oversized PSBT');
});

t.test('a tampered witnessUtxo amount changes the fee and every sighash; the honest signature fails', async (t) => {
  const good = parseTransaction('btc-psbt', buildPsbt(honest()), me.key, ASSETS);
  const spec = honest();
  const lie: PsbtSpec = { ...spec, inputs: [{ ...spec.inputs[0]!, amount: 600_500n }, spec.inputs[1]!] };
  const bad = parseTransaction('btc-psbt', buildPsbt(lie), me.key, ASSETS);
  t.equal(bad.fee, good.fee + 500n, 'the parse reports the fee the lie implies');
  t.not(Buffer.from(bad.displayHash).toString('hex'), Buffer.from(good.displayHash).toString('hex'), 'another display');
  bad.messages.forEach((m, i) => t.not(Buffer.from(m).toString('hex'), Buffer.from(good.messages[i]!).toString('hex'), `input ${i}: another sighash (BIP 341 commits to all amounts)`));
  const { tx, scripts } = bitcoinjsUnsigned(buildPsbt(honest()));
  const onChain = tx.hashForWitnessV1(0, scripts, [600_000n, 400_000n], bitcoin.Transaction.SIGHASH_DEFAULT);
  const sigOverLie = schnorr.sign(bad.messages[0]!, me.outputSecret, new Uint8Array(32));
  t.notOk(ecc.verifySchnorr(onChain, me.outputXOnly, sigOverLie), 'a signature over the lie is invalid for the real coin');
});

t.test('outputs carry no network: a mainnet address in the PSBT is shown as the regtest address the chain pays', async (t) => {
  const mainnet = bitcoin.payments.p2tr({ internalPubkey: other.internal, network: bitcoin.networks.bitcoin }).address!;
  const spec = honest();
  const tx = new Transaction({ version: 2 });
  for (const i of spec.inputs) tx.addInput({ txid: i.txid, index: i.index, witnessUtxo: { script: i.script, amount: i.amount } });
  tx.addOutputAddress(mainnet, 150_000n);
  tx.addOutputAddress(destWpkh, 849_000n, REGTEST);
  const facts = parseTransaction('btc-psbt', tx.toPSBT(0), me.key, ASSETS);
  t.equal(facts.outputs[0]!.address, dest, 'the output script renders as the key network\'s (regtest) address');
  t.notMatch(facts.display, mainnet, 'the mainnet string never reaches the display');
  t.equal(facts.outputs[1]!.address, destWpkh, 'segwit v0 outputs render as bech32');
});

t.test('the kernel\'s taproot suite: a DKG group key is the output key; FROST signatures of the parsed sighashes verify with bitcoinjs', async (t) => {
  // The same noble FROST the kernels run (kernel/suites.ts), in one process: a 2-of-3 DKG.
  const frost = suiteOf('taproot').frost;
  const ids = ['n1', 'n2', 'n3'].map((n) => frost.Identifier.derive(n));
  const r1 = ids.map((id) => frost.DKG.round1(id, { min: 2, max: 3 }));
  const r2 = r1.map((r, i) => frost.DKG.round2(r.secret, r1.filter((_, j) => j !== i).map((o) => o.public)));
  const keys = r1.map((r, i) => frost.DKG.round3(
    r.secret,
    r1.filter((_, j) => j !== i).map((o) => o.public),
    r2.filter((_, j) => j !== i).map((out) => out[ids[i]!]!),
  ));
  const pub = keys[0]!.public;
  const groupKey = Uint8Array.from(pub.commitments[0]!);
  const key = { keyId: 'dkg', scheme: 'taproot' as const, groupKey, network: 'bitcoin-regtest' as const };
  const xOnly = groupKey.slice(1);
  const script = p2trScript(xOnly);

  const psbt = buildPsbt({
    inputs: [
      { txid: txidOf('d1'), index: 0, amount: 70_000n, script },
      { txid: txidOf('d2'), index: 1, amount: 30_000n, script },
    ],
    outputs: [{ address: dest, amount: 60_000n }, { address: taprootAddress(key), amount: 39_500n }],
  });
  const facts = parseTransaction('btc-psbt', psbt, key, ASSETS);
  t.equal(facts.fee, 500n);
  t.equal(facts.outputs[1]!.change, true, 'the DKG key\'s own address is recognised as change');

  const signers = [0, 2];
  const sigs = facts.messages.map((m) => {
    const nonces = signers.map((i) => frost.commit(keys[i]!.secret));
    const commitments = nonces.map((n) => n.commitments);
    const shares: Record<string, Uint8Array> = {};
    signers.forEach((i, k) => { shares[ids[i]!] = frost.signShare(keys[i]!.secret, pub, nonces[k]!.nonces, commitments, m); });
    return frost.aggregate(pub, commitments, m, shares);
  });
  const { tx: unsigned, scripts, values } = bitcoinjsUnsigned(psbt);
  sigs.forEach((sig, i) => {
    const h = unsigned.hashForWitnessV1(i, scripts, values, bitcoin.Transaction.SIGHASH_DEFAULT);
    t.ok(ecc.verifySchnorr(h, xOnly, sig), `input ${i}: the threshold signature verifies under x(group key) over bitcoinjs's sighash`);
  });
  const final = bitcoin.Transaction.fromBuffer(finalizeBitcoin(psbt, sigs).tx);
  t.equal(final.ins.length, 2, 'the finalized transaction deserializes');
});

t.test('property: over random transactions, every sighash equals bitcoinjs\'s and a tampered amount changes them all', async (t) => {
  const RUNS = Number(process.env.FC_RUNS ?? 50);
  const replay = {
    ...(process.env.FC_SEED !== undefined ? { seed: Number(process.env.FC_SEED) } : {}),
    ...(process.env.FC_PATH !== undefined ? { path: process.env.FC_PATH } : {}),
  };
  const scripts = [dest, destWpkh, taprootAddress(me.key)];
  const arb = fc.record({
    inputs: fc.array(fc.record({ amount: fc.bigInt(100_000n, 10n ** 9n), sequence: fc.constantFrom(0xffffffff, 0xfffffffd, 0), index: fc.nat(9) }), { minLength: 1, maxLength: 5 }),
    outputs: fc.array(fc.record({ to: fc.nat(scripts.length - 1), amount: fc.bigInt(546n, 10_000n) }), { minLength: 1, maxLength: 4 }),
    fee: fc.bigInt(0n, 50_000n),
    lockTime: fc.constantFrom(0, 500_000, 1_700_000_000),
    version: fc.constantFrom(1, 2),
    psbtVersion: fc.constantFrom(0 as const, 2 as const),
    tamper: fc.nat(),
  });
  let checked = 0;
  fc.assert(fc.property(arb, (c) => {
    // The last output takes the balance less the fee: inputs are at least 100,000 sat, the other
    // outputs at most 40,000 and the fee at most 50,000, so it is at least 10,000 sat.
    const inSum = c.inputs.reduce((a, i) => a + i.amount, 0n);
    const outputs = [...c.outputs, { to: c.outputs[0]!.to, amount: inSum - c.outputs.reduce((a, o) => a + o.amount, 0n) - c.fee }];
    const tx = new Transaction({ version: c.version, lockTime: c.lockTime });
    c.inputs.forEach((i, k) => tx.addInput({ txid: txidOf(`fc-${k}`), index: i.index, sequence: i.sequence, witnessUtxo: { script: ours, amount: i.amount } }));
    outputs.forEach((o) => tx.addOutputAddress(scripts[o.to]!, o.amount, REGTEST));
    const bytes = tx.toPSBT(c.psbtVersion);
    const facts = parseTransaction('btc-psbt', bytes, me.key, ASSETS);
    const { tx: unsigned, scripts: prev, values } = bitcoinjsUnsigned(c.psbtVersion === 0 ? bytes : Transaction.fromPSBT(bytes).toPSBT(0));
    const agree = facts.messages.every((m, i) => Buffer.from(m).equals(Buffer.from(unsigned.hashForWitnessV1(i, prev, values, bitcoin.Transaction.SIGHASH_DEFAULT))));
    const k = c.tamper % c.inputs.length;
    const lie = new Transaction({ version: c.version, lockTime: c.lockTime });
    c.inputs.forEach((i, j) => lie.addInput({ txid: txidOf(`fc-${j}`), index: i.index, sequence: i.sequence, witnessUtxo: { script: ours, amount: j === k ? i.amount + 1n : i.amount } }));
    outputs.forEach((o) => lie.addOutputAddress(scripts[o.to]!, o.amount, REGTEST));
    const tampered = parseTransaction('btc-psbt', lie.toPSBT(c.psbtVersion), me.key, ASSETS);
    checked++;
    return agree && facts.fee === c.fee && tampered.fee === c.fee + 1n && tampered.messages.every((m, i) => !Buffer.from(m).equals(Buffer.from(facts.messages[i]!)));
  }), { numRuns: RUNS, ...replay });
  t.equal(checked, RUNS, `${checked} of ${RUNS} random transactions: sighashes equal bitcoinjs's, and one satoshi more on one input changes the fee and every sighash`);
});
