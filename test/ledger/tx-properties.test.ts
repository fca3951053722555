/**
 * Properties of the transaction parser (fast-check), the raw kind, and the display.
 *
 *   - parse is deterministic: the same bytes give byte-identical facts, display and displayHash;
 *   - the display and its hash change whenever an output's destination or amount, or the fee,
 *     changes (Bitcoin and Solana);
 *   - random bytes, and valid transactions with random corruption, never make the parser throw
 *     anything but a CustodyError with a code from proto/reasons.ts;
 *   - amounts render exactly (bigint), and no key id or raw text can forge a display line.
 *
 * A failure prints fast-check's seed and path; replay it exactly with
 *   FC_SEED=<seed> FC_PATH=<path> npx tap dist/test/ledger/tx-properties.test.js
 */
import t from 'tap';
import fc from 'fast-check';
import { getAddressDecoder, type Address } from '@solana/addresses';
import { createNoopSigner } from '@solana/signers';
import {
  appendTransactionMessageInstructions, compileTransactionMessage, createTransactionMessage, getCompiledTransactionMessageEncoder,
  setTransactionMessageComputeUnitPrice, setTransactionMessageFeePayer, setTransactionMessageLifetimeUsingBlockhash,
} from '@solana/transaction-messages';
import { getTransferSolInstruction } from '@solana-program/system';
import { formatUnits, parseTransaction, solanaAddress, taprootAddress } from '../../ledger/tx/parse.js';
import type { TxFacts, TxKind } from '../../ledger/tx/types.js';
import { isCustodyError } from '../../proto/errors.js';
import { isReasonCode } from '../../proto/reasons.js';
import { ASSETS, buildPsbt, ed25519Key, p2trScript, refusedWith, taprootKey, txidOf, type PsbtSpec } from './tx-fixtures.js';

const RUNS = Number(process.env.FC_RUNS ?? 100);
const replay = {
  ...(process.env.FC_SEED !== undefined ? { seed: Number(process.env.FC_SEED) } : {}),
  ...(process.env.FC_PATH !== undefined ? { path: process.env.FC_PATH } : {}),
};

const btc = taprootKey('prop-btc');
const ours = p2trScript(btc.outputXOnly);
const DESTS = ['a', 'b', 'c'].map((l) => taprootAddress(taprootKey(`prop-dest-${l}`).key));
const sol = ed25519Key('prop-sol');
const solMe = solanaAddress(sol.key);
const SOL_DESTS = [7, 8, 9].map((b) => getAddressDecoder().decode(new Uint8Array(32).fill(b)));
const blockhash = getAddressDecoder().decode(new Uint8Array(32).fill(42)) as string as Parameters<typeof setTransactionMessageLifetimeUsingBlockhash>[0]['blockhash'];

function same(a: TxFacts, b: TxFacts): boolean {
  return JSON.stringify(a, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v))
    === JSON.stringify(b, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v));
}

// A Bitcoin transaction: 1-3 inputs of ours, 1-3 outputs (destination index, amount), change always last.
interface BtcCase { inputs: bigint[]; outputs: [number, bigint][]; fee: bigint }
const btcCase: fc.Arbitrary<BtcCase> = fc.record({
  inputs: fc.array(fc.bigInt(10_000n, 10n ** 10n), { minLength: 1, maxLength: 3 }),
  outputs: fc.array(fc.tuple(fc.nat(DESTS.length - 1), fc.bigInt(546n, 1_000_000n)), { minLength: 1, maxLength: 3 }),
  fee: fc.bigInt(0n, 100_000n),
}).filter((c) => c.inputs.reduce((a, b) => a + b, 0n) >= c.outputs.reduce((a, [, v]) => a + v, 0n) + c.fee);

function btcSpec(c: BtcCase): PsbtSpec {
  const inSum = c.inputs.reduce((a, b) => a + b, 0n);
  const outSum = c.outputs.reduce((a, [, v]) => a + v, 0n);
  return {
    inputs: c.inputs.map((amount, i) => ({ txid: txidOf(`prop-${i}`), index: i, amount, script: ours })),
    outputs: [...c.outputs.map(([d, amount]) => ({ address: DESTS[d]!, amount })), { address: taprootAddress(btc.key), amount: inSum - outSum - c.fee }],
  };
}
const parseBtc = (c: BtcCase) => parseTransaction('btc-psbt', buildPsbt(btcSpec(c)), btc.key, ASSETS);

// A Solana transaction: 1-3 SOL transfers (destination index, lamports) and a compute unit price.
interface SolCase { transfers: [number, bigint][]; price: bigint }
const solCase: fc.Arbitrary<SolCase> = fc.record({
  transfers: fc.array(fc.tuple(fc.nat(SOL_DESTS.length - 1), fc.bigInt(1n, 10n ** 15n)), { minLength: 1, maxLength: 3 }),
  price: fc.bigInt(0n, 10_000n),
});
function solBytes(c: SolCase): Uint8Array {
  let m: any = createTransactionMessage({ version: 'legacy' });
  m = setTransactionMessageFeePayer(solMe, m);
  m = setTransactionMessageLifetimeUsingBlockhash({ blockhash, lastValidBlockHeight: 1n }, m);
  if (c.price > 0n) m = setTransactionMessageComputeUnitPrice(c.price, m);
  m = appendTransactionMessageInstructions(c.transfers.map(([d, amount]) =>
    getTransferSolInstruction({ source: createNoopSigner(solMe), destination: SOL_DESTS[d] as Address, amount })), m);
  return Uint8Array.from(getCompiledTransactionMessageEncoder().encode(compileTransactionMessage(m)));
}
const parseSol = (c: SolCase) => parseTransaction('solana', solBytes(c), sol.key, ASSETS);

function differs(a: TxFacts, b: TxFacts): boolean {
  return a.display !== b.display && Buffer.compare(Buffer.from(a.displayHash), Buffer.from(b.displayHash)) !== 0;
}

t.test('parse is deterministic (same bytes, byte-identical facts)', async (t) => {
  t.doesNotThrow(() => {
    fc.assert(fc.property(btcCase, (c) => {
      const bytes = buildPsbt(btcSpec(c));
      return same(parseTransaction('btc-psbt', bytes, btc.key, ASSETS), parseTransaction('btc-psbt', Uint8Array.from(bytes), btc.key, ASSETS));
    }), { numRuns: RUNS, ...replay });
    fc.assert(fc.property(solCase, (c) => {
      const bytes = solBytes(c);
      return same(parseTransaction('solana', bytes, sol.key, ASSETS), parseTransaction('solana', Uint8Array.from(bytes), sol.key, ASSETS));
    }), { numRuns: RUNS, ...replay });
  }, `${RUNS} Bitcoin and ${RUNS} Solana transactions parsed twice to identical facts`);
});

t.test('the display and its hash change whenever a destination, an amount or the fee changes (Bitcoin)', async (t) => {
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('dest' as const), at: fc.nat(), to: fc.nat(DESTS.length - 1) }),
    fc.record({ kind: fc.constant('amount' as const), at: fc.nat(), by: fc.bigInt(1n, 500n) }),
    fc.record({ kind: fc.constant('fee' as const), by: fc.bigInt(1n, 500n) }),
  );
  let changed = 0;
  fc.assert(fc.property(btcCase, mutation, (c, m) => {
    const outputs = c.outputs.map(([d, v]) => [d, v] as [number, bigint]);
    const i = m.kind === 'fee' ? 0 : m.at % outputs.length;
    if (m.kind === 'dest') {
      if (outputs[i]![0] === m.to) return true; // not a change
      outputs[i]![0] = m.to;
    }
    if (m.kind === 'amount') outputs[i]![1] += m.by; // the change output absorbs it: fee unchanged
    const next: BtcCase = { ...c, outputs, fee: m.kind === 'fee' ? c.fee + m.by : c.fee };
    if (btcSpec(next).outputs.at(-1)!.amount < 0n) return true; // not fundable
    changed++;
    return differs(parseBtc(c), parseBtc(next));
  }), { numRuns: RUNS, ...replay });
  t.ok(changed > RUNS / 2, `${changed} of ${RUNS} runs changed the transaction and its display`);
});

t.test('the display and its hash change whenever a destination, an amount or the fee changes (Solana)', async (t) => {
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('dest' as const), at: fc.nat(), to: fc.nat(SOL_DESTS.length - 1) }),
    fc.record({ kind: fc.constant('amount' as const), at: fc.nat(), by: fc.bigInt(1n, 10n ** 9n) }),
    fc.record({ kind: fc.constant('fee' as const), by: fc.bigInt(5n, 10_000n) }),
  );
  let changed = 0;
  fc.assert(fc.property(solCase, mutation, (c, m) => {
    const transfers = c.transfers.map(([d, v]) => [d, v] as [number, bigint]);
    const i = m.kind === 'fee' ? 0 : m.at % transfers.length;
    if (m.kind === 'dest') {
      if (transfers[i]![0] === m.to) return true;
      transfers[i]![0] = m.to;
    }
    if (m.kind === 'amount') transfers[i]![1] += m.by;
    // A price step of at least 5 µlamports over 200,000+ CU moves the fee by at least one lamport.
    const next: SolCase = { transfers, price: m.kind === 'fee' ? c.price + m.by : c.price };
    changed++;
    return differs(parseSol(c), parseSol(next));
  }), { numRuns: RUNS, ...replay });
  t.ok(changed > RUNS / 2, `${changed} of ${RUNS} runs changed the transaction and its display`);
});

t.test('random and corrupted bytes never throw anything but a CustodyError with a known code', async (t) => {
  const seeds: Record<TxKind, Uint8Array> = {
    'btc-psbt': buildPsbt(btcSpec({ inputs: [600_000n, 400_000n], outputs: [[0, 150_000n]], fee: 1_000n })),
    solana: solBytes({ transfers: [[0, 1_000n]], price: 10n }),
    raw: new TextEncoder().encode('attest: hello'),
  };
  const keys = { 'btc-psbt': btc.key, solana: sol.key, raw: sol.key } as const;
  const corrupt = fc.oneof(
    fc.uint8Array({ maxLength: 600 }).map((b) => () => b),
    fc.record({ at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 4 }) }).map(({ at, bytes }) => (s: Uint8Array) => {
      const out = Uint8Array.from(s);
      bytes.forEach((b, j) => { out[(at + j) % out.length] = b; });
      return out;
    }),
    fc.nat().map((n) => (s: Uint8Array) => s.slice(0, n % s.length)),
    fc.record({ at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }).map(({ at, bytes }) => (s: Uint8Array) =>
      Uint8Array.from([...s.slice(0, at % s.length), ...bytes, ...s.slice(at % s.length)])),
  );
  let refused = 0;
  let parsed = 0;
  fc.assert(fc.property(fc.constantFrom<TxKind>('btc-psbt', 'solana', 'raw'), corrupt, (kind, f) => {
    try {
      parseTransaction(kind, f(seeds[kind]), keys[kind], ASSETS);
      parsed++;
      return true;
    } catch (e) {
      refused++;
      return isCustodyError(e) && isReasonCode(e.reason);
    }
  }), { numRuns: RUNS * 10, ...replay });
  t.ok(refused > RUNS, `${refused} refused with a reason code, ${parsed} still parsed`);
});

t.test('raw: the bytes themselves, shown in hex and, when printable, as text', async (t) => {
  const bytes = new TextEncoder().encode('I, treasury, attest to reserves at block 900000.');
  const facts = parseTransaction('raw', bytes, sol.key, ASSETS);
  t.equal(facts.asset, 'RAW');
  t.same(facts.outputs, []);
  t.equal(facts.amount, 0n);
  t.equal(facts.fee, 0n);
  t.same(facts.messages.map((m) => Buffer.from(m)), [Buffer.from(bytes)], 'the one message is the bytes');
  t.match(facts.display, `\nbytes: ${bytes.length} ${Buffer.from(bytes).toString('hex')}\n`);
  t.match(facts.display, '\ntext: "I, treasury, attest to reserves at block 900000."\n');
  t.notMatch(facts.display, /\namount:|\nfee:/, 'no amounts for raw bytes');
  for (const trick of ['line one\nfee: 0 BTC', 'abc\u202edcba', '\u0000x']) {
    const d = parseTransaction('raw', new TextEncoder().encode(trick), sol.key, ASSETS).display;
    t.notMatch(d, /\ntext:/, `no text line for ${JSON.stringify(trick)} (control or bidi characters)`);
  }
  const binary = parseTransaction('raw', Uint8Array.from([0xff, 0xfe, 0x00]), sol.key, ASSETS);
  t.match(binary.display, '\nbytes: 3 fffe00\n');
  t.notMatch(binary.display, /\ntext:/, 'not UTF-8: hex only');
  refusedWith(t, () => parseTransaction('raw', new Uint8Array(0), sol.key, ASSETS), 'TX_UNPARSEABLE', 'empty raw message');
  refusedWith(t, () => parseTransaction('raw', new Uint8Array(4097), sol.key, ASSETS), 'LIMIT_EXCEEDED', 'oversized raw message');
  refusedWith(t, () => parseTransaction('ethereum' as TxKind, bytes, sol.key, ASSETS), 'TX_UNSUPPORTED', 'an unknown kind');
});

t.test('display: exact decimals, and no value can forge a line', async (t) => {
  t.equal(formatUnits(150_000n, 8), '0.00150000');
  t.equal(formatUnits(2_100_000_000_000_000n, 8), '21000000.00000000');
  t.equal(formatUnits(1n, 9), '0.000000001');
  t.equal(formatUnits(42n, 0), '42');
  t.equal(formatUnits(10n ** 40n + 1n, 30), '10000000000.000000000000000000000000000001', 'no floating point anywhere');
  fc.assert(fc.property(fc.bigInt(0n, 10n ** 30n), fc.nat(30), (a, d) => {
    const s = formatUnits(a, d);
    const [whole, frac = ''] = s.split('.');
    return frac.length === d && BigInt(whole! + frac) === a && (d === 0 || s.includes('.'));
  }), { numRuns: RUNS * 5, ...replay });
  const sneaky = { ...btc.key, keyId: 'k\noutput 9: bcrt1qattacker 9.00000000 BTC' };
  const facts = parseTransaction('btc-psbt', buildPsbt(btcSpec({ inputs: [100_000n], outputs: [[0, 50_000n]], fee: 500n })), sneaky, ASSETS);
  t.notMatch(facts.display, /\noutput 9:/, 'a key id with a line break stays on its own line (JSON string)');
  t.equal(facts.display.split('\n').filter((l) => l.startsWith('output ')).length, 2, 'two outputs, two output lines');
});
