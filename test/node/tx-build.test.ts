/**
 * The offline transaction builders (`custody tx psbt|solana`): what they build, the cluster's own
 * parser accepts with the facts the operator asked for (payments in order, change back to the key,
 * the fee), and a signature over the parsed messages finalizes into a transaction; what they must
 * not build (inputs not covering payments and fee, dust change, addresses of another network or
 * none at all, bad coin and payment syntax) is refused with a reason code.
 *
 * A property failure prints fast-check's seed and path; replay it exactly with
 *   FC_SEED=<seed> FC_PATH=<path> npx tap dist/test/node/tx-build.test.js
 */
import t from 'tap';
import fc from 'fast-check';
import { schnorr } from '@noble/curves/secp256k1.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { Transaction } from '@scure/btc-signer';
import { getAddressDecoder } from '@solana/addresses';
import { USDC_MINT } from '../ledger/tx-fixtures.js';
import { P2TR_DUST_SAT, buildSolanaTransfer, buildTaprootPsbt, parseCoin, parsePayment, type CoinSpent } from '../../node/lifecycle/tx-build.js';
import { finalizeBitcoin, finalizeSolana, parseTransaction, solanaAddress, taprootAddress } from '../../ledger/tx/parse.js';
import { ASSETS, ed25519Key, refusedWith, taprootKey, txidOf } from '../ledger/tx-fixtures.js';

const RUNS = Number(process.env.FC_RUNS ?? 100);
const replay = {
  ...(process.env.FC_SEED !== undefined ? { seed: Number(process.env.FC_SEED) } : {}),
  ...(process.env.FC_PATH !== undefined ? { path: process.env.FC_PATH } : {}),
};

const btc = taprootKey('build-btc');
const sol = ed25519Key('build-sol');
const DESTS = ['a', 'b', 'c'].map((l) => taprootAddress(taprootKey(`build-dest-${l}`).key));
const SOL_DESTS = [7, 8, 9].map((b) => getAddressDecoder().decode(new Uint8Array(32).fill(b)) as string);
const BLOCKHASH = getAddressDecoder().decode(new Uint8Array(32).fill(42));

t.test('a PSBT of two coins with change: parsed facts, signatures, a transaction', async (t) => {
  const coins: CoinSpent[] = [{ txid: txidOf('x'), vout: 0, amountSat: 6_000n }, { txid: txidOf('y'), vout: 3, amountSat: 5_000n }];
  const bytes = buildTaprootPsbt(btc.key, coins, [{ address: DESTS[0]!, amount: 8_000n }], 1_000n);
  const facts = parseTransaction('btc-psbt', bytes, btc.key, ASSETS);
  t.same(facts.outputs.map((o) => [o.address, o.amount, o.change]), [[DESTS[0], 8_000n, false], [taprootAddress(btc.key), 2_000n, true]], 'payment, then change to the key');
  t.equal(facts.fee, 1_000n);
  t.equal(facts.messages.length, 2, 'one sighash per coin');
  t.match(facts.display, `input 1: ${txidOf('y')}:3 0.00005000 BTC key path`, 'the coins spent, as stated');
  const sigs = facts.messages.map((m) => schnorr.sign(m, btc.outputSecret, new Uint8Array(32)));
  const done = finalizeBitcoin(bytes, sigs);
  const tx = Transaction.fromRaw(done.tx);
  t.equal(tx.outputsLength, 2);
  t.equal(tx.id, done.txid);
});

t.test('no change output when the payments and fee use the coins exactly', async (t) => {
  const bytes = buildTaprootPsbt(btc.key, [{ txid: txidOf('z'), vout: 0, amountSat: 10_000n }], [{ address: DESTS[1]!, amount: 9_500n }], 500n);
  const facts = parseTransaction('btc-psbt', bytes, btc.key, ASSETS);
  t.same(facts.outputs.map((o) => o.change), [false]);
  t.equal(facts.fee, 500n);
});

t.test('what the PSBT builder refuses', async (t) => {
  const coin = [{ txid: txidOf('r'), vout: 0, amountSat: 10_000n }];
  refusedWith(t, () => buildTaprootPsbt(btc.key, coin, [{ address: DESTS[0]!, amount: 9_500n }], 1_000n), 'TX_FEE_INVALID', 'payments and fee above the coins');
  refusedWith(t, () => buildTaprootPsbt(btc.key, coin, [{ address: DESTS[0]!, amount: 9_500n - P2TR_DUST_SAT + 1n }], 500n), 'TX_FEE_INVALID', 'change below the dust limit');
  refusedWith(t, () => buildTaprootPsbt(btc.key, coin, [{ address: taprootAddress(taprootKey('m', 'bitcoin-mainnet').key), amount: 5_000n }], 500n), 'TX_NETWORK_MISMATCH', 'a mainnet address for a regtest key');
  refusedWith(t, () => buildTaprootPsbt(btc.key, coin, [{ address: 'bcrt1pnotanaddress', amount: 5_000n }], 500n), 'INVALID_ARGUMENT', 'not an address at all');
  refusedWith(t, () => buildTaprootPsbt(btc.key, [], [{ address: DESTS[0]!, amount: 5_000n }], 500n), 'INVALID_ARGUMENT', 'no coins');
  refusedWith(t, () => buildTaprootPsbt(btc.key, coin, [], 500n), 'INVALID_ARGUMENT', 'no payments');
  refusedWith(t, () => buildTaprootPsbt(sol.key, coin, [{ address: DESTS[0]!, amount: 5_000n }], 500n), 'TX_NETWORK_MISMATCH', 'a Solana key');
  refusedWith(t, () => parseCoin('abc:0:1'), 'INVALID_ARGUMENT', 'a short txid');
  refusedWith(t, () => parseCoin(`${txidOf('q')}:x:1`), 'INVALID_ARGUMENT', 'a non-numeric vout');
  refusedWith(t, () => parseCoin(`${txidOf('q')}:4294967296:1`), 'INVALID_ARGUMENT', 'a vout past 2^32 - 1');
  refusedWith(t, () => parsePayment(`${DESTS[0]}:1.5`), 'INVALID_ARGUMENT', 'a fractional amount (amounts are in the smallest unit)');
  refusedWith(t, () => parsePayment(`${DESTS[0]}:0`), 'INVALID_ARGUMENT', 'a zero payment');
  refusedWith(t, () => parsePayment('justanaddress'), 'INVALID_ARGUMENT', 'no amount');
  t.same(parseCoin(`${txidOf('q').toUpperCase()}:7:123`), { txid: txidOf('q'), vout: 7, amountSat: 123n }, 'a coin, txid in either case');
  t.same(parsePayment(`${DESTS[2]}:42`), { address: DESTS[2], amount: 42n });
});

t.test('property: any PSBT the builder makes parses to the payments asked for, change and fee exact', async (t) => {
  const spec = fc.record({
    coins: fc.array(fc.bigInt({ min: 1_000n, max: 50_000_000n }), { minLength: 1, maxLength: 6 }),
    payments: fc.array(fc.record({ to: fc.integer({ min: 0, max: 2 }), amount: fc.bigInt({ min: 1n, max: 10_000_000n }) }), { minLength: 1, maxLength: 5 }),
    fee: fc.bigInt({ min: 0n, max: 100_000n }),
  });
  const r = fc.check(fc.property(spec, (s) => {
    const coins = s.coins.map((amountSat, i) => ({ txid: txidOf(`p${i}`), vout: i, amountSat }));
    const payments = s.payments.map((p) => ({ address: DESTS[p.to]!, amount: p.amount }));
    const inSum = s.coins.reduce((a, b) => a + b, 0n);
    const paySum = s.payments.reduce((a, p) => a + p.amount, 0n);
    const change = inSum - paySum - s.fee;
    let bytes: Uint8Array;
    try {
      bytes = buildTaprootPsbt(btc.key, coins, payments, s.fee);
    } catch (e) {
      // Refused exactly when the coins do not cover it or the change would be dust.
      return (e as { reason?: string }).reason === 'TX_FEE_INVALID' && (change < 0n || (change > 0n && change < P2TR_DUST_SAT));
    }
    if (change < 0n || (change > 0n && change < P2TR_DUST_SAT)) return false;
    const f = parseTransaction('btc-psbt', bytes, btc.key, ASSETS);
    const paid = f.outputs.filter((o) => !o.change).map((o) => [o.address, o.amount]);
    const back = f.outputs.filter((o) => o.change).map((o) => o.amount);
    return JSON.stringify(paid, (_, v) => (typeof v === 'bigint' ? v.toString() : v)) === JSON.stringify(payments.map((p) => [p.address, p.amount.toString()]))
      && f.fee === s.fee && f.amount === paySum && (change === 0n ? back.length === 0 : back.length === 1 && back[0] === change)
      && f.messages.length === coins.length;
  }), { numRuns: RUNS, ...replay });
  t.notOk(r.failed, r.failed ? `counterexample ${fc.stringify(r.counterexample)}; replay with FC_SEED=${r.seed} FC_PATH=${r.counterexamplePath ?? ''}` : `${r.numRuns} PSBTs built and parsed back`);
});

t.test('a Solana transfer: facts, signature, wire transaction; an SPL token transfer from the key\'s token account', async (t) => {
  const bytes = await buildSolanaTransfer(sol.key, [{ address: SOL_DESTS[0]!, amount: 1_000n }, { address: SOL_DESTS[1]!, amount: 2_000n }], BLOCKHASH);
  const facts = parseTransaction('solana', bytes, sol.key, ASSETS);
  t.same(facts.outputs.map((o) => [o.address, o.amount]), [[SOL_DESTS[0], 1_000n], [SOL_DESTS[1], 2_000n]]);
  t.equal(facts.amount, 3_000n);
  t.match(facts.display, `fee payer: ${solanaAddress(sol.key)}`);
  const done = finalizeSolana(bytes, ed25519.sign(bytes, sol.secret));
  t.ok(done.tx.length > bytes.length, 'the wire transaction carries the signature');

  const token = await buildSolanaTransfer(sol.key, [{ address: SOL_DESTS[2]!, amount: 5_000_000n }], BLOCKHASH, { mint: USDC_MINT, decimals: 6 });
  const tf = parseTransaction('solana', token, sol.key, ASSETS);
  t.equal(tf.asset, 'USDC');
  t.same(tf.outputs.map((o) => [o.address, o.amount]), [[SOL_DESTS[2], 5_000_000n]]);
  t.match(tf.display, /token transfer 0: from [1-9A-HJ-NP-Za-km-z]+ mint /, 'from the key\'s associated token account');
  const wrongDecimals = await buildSolanaTransfer(sol.key, [{ address: SOL_DESTS[2]!, amount: 5n }], BLOCKHASH, { mint: USDC_MINT, decimals: 9 });
  refusedWith(t, () => parseTransaction('solana', wrongDecimals, sol.key, ASSETS), 'TX_ASSET_MISMATCH', 'decimals the asset table does not state are refused by the cluster');
});

t.test('what the Solana builder refuses', async (t) => {
  const refused = async (p: Promise<unknown>): Promise<string> => p.then(() => 'built', (e: { reason?: string }) => e.reason ?? String(e));
  t.equal(await refused(buildSolanaTransfer(sol.key, [{ address: 'not-base58!', amount: 1n }], BLOCKHASH)), 'INVALID_ARGUMENT', 'a destination that is no address');
  t.equal(await refused(buildSolanaTransfer(sol.key, [{ address: SOL_DESTS[0]!, amount: 1n }], 'short')), 'INVALID_ARGUMENT', 'a blockhash that is not 32 bytes');
  t.equal(await refused(buildSolanaTransfer(sol.key, [], BLOCKHASH)), 'INVALID_ARGUMENT', 'no payment');
  t.equal(await refused(buildSolanaTransfer(btc.key, [{ address: SOL_DESTS[0]!, amount: 1n }], BLOCKHASH)), 'TX_UNSUPPORTED', 'a Taproot key');
});
