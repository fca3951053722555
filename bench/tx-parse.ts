/**
 * Transaction parsing cost: what every node (at admission and apply) and every kernel (before it
 * signs) spends deriving an act's facts from its transaction bytes.
 *
 *   node dist/bench/tx-parse.js [--iterations 2000] [--wide 64]
 *
 * Parses, `iterations` times each (a tenth as many for the wide PSBT): a two-input Taproot PSBT
 * with change, a PSBT with `wide` inputs (one BIP 341 sighash each), a legacy Solana SOL transfer
 * and a v0 SPL TransferChecked with compute budget instructions, and a 1 KiB raw message.
 * Reported per shape: microseconds per parse (p50, p99) and parses per second; a JSON line for
 * tooling closes the output.
 */
import { performance } from 'node:perf_hooks';
import { getAddressDecoder } from '@solana/addresses';
import { createNoopSigner } from '@solana/signers';
import {
  appendTransactionMessageInstructions, compileTransactionMessage, createTransactionMessage, getCompiledTransactionMessageEncoder,
  setTransactionMessageComputeUnitLimit, setTransactionMessageComputeUnitPrice, setTransactionMessageFeePayer,
  setTransactionMessageLifetimeUsingBlockhash,
} from '@solana/transaction-messages';
import { getTransferSolInstruction } from '@solana-program/system';
import { getTransferCheckedInstruction } from '@solana-program/token';
import { address } from '@solana/addresses';
import { parseTransaction, solanaAddress, taprootAddress } from '../ledger/tx/parse.js';
import type { KeyContext, TxKind } from '../ledger/tx/types.js';
import { ASSETS, USDC_MINT, buildPsbt, ed25519Key, p2trScript, taprootKey, txidOf } from '../test/ledger/tx-fixtures.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : dflt;
}
const ITERATIONS = Number(arg('iterations', '2000'));
const WIDE = Number(arg('wide', '64'));

const btc = taprootKey('bench');
const ours = p2trScript(btc.outputXOnly);
const dest = taprootAddress(taprootKey('bench-dest').key);
function psbt(inputs: number): Uint8Array {
  return buildPsbt({
    inputs: Array.from({ length: inputs }, (_, i) => ({ txid: txidOf(`bench-${i}`), index: i, amount: 100_000n, script: ours })),
    outputs: [{ address: dest, amount: 50_000n }, { address: taprootAddress(btc.key), amount: 100_000n * BigInt(inputs) - 51_000n }],
  });
}

const sol = ed25519Key('bench-sol');
const me = solanaAddress(sol.key);
const to = getAddressDecoder().decode(new Uint8Array(32).fill(9));
const blockhash = getAddressDecoder().decode(new Uint8Array(32).fill(42)) as string as Parameters<typeof setTransactionMessageLifetimeUsingBlockhash>[0]['blockhash'];
function solana(version: 'legacy' | 0, spl: boolean): Uint8Array {
  let m: any = setTransactionMessageFeePayer(me, createTransactionMessage({ version }));
  m = setTransactionMessageLifetimeUsingBlockhash({ blockhash, lastValidBlockHeight: 1n }, m);
  if (spl) m = setTransactionMessageComputeUnitPrice(10_000n, setTransactionMessageComputeUnitLimit(60_000, m));
  const ix = spl
    ? getTransferCheckedInstruction({ source: to, mint: address(USDC_MINT), destination: getAddressDecoder().decode(new Uint8Array(32).fill(4)), authority: createNoopSigner(me), amount: 1_000_000n, decimals: 6 })
    : getTransferSolInstruction({ source: createNoopSigner(me), destination: to, amount: 1_000_000_000n });
  m = appendTransactionMessageInstructions([ix], m);
  return Uint8Array.from(getCompiledTransactionMessageEncoder().encode(compileTransactionMessage(m)));
}

const shapes: { name: string; kind: TxKind; bytes: Uint8Array; key: KeyContext; iterations: number }[] = [
  { name: 'psbt 2 inputs', kind: 'btc-psbt', bytes: psbt(2), key: btc.key, iterations: ITERATIONS },
  { name: `psbt ${WIDE} inputs`, kind: 'btc-psbt', bytes: psbt(WIDE), key: btc.key, iterations: Math.max(1, Math.floor(ITERATIONS / 10)) },
  { name: 'solana SOL transfer', kind: 'solana', bytes: solana('legacy', false), key: sol.key, iterations: ITERATIONS },
  { name: 'solana v0 SPL transfer', kind: 'solana', bytes: solana(0, true), key: sol.key, iterations: ITERATIONS },
  { name: 'raw 1 KiB', kind: 'raw', bytes: new Uint8Array(1024).fill(0x61), key: sol.key, iterations: ITERATIONS },
];

const results: Record<string, { bytes: number; p50us: number; p99us: number; perSecond: number }> = {};
for (const s of shapes) {
  for (let i = 0; i < Math.min(50, s.iterations); i++) parseTransaction(s.kind, s.bytes, s.key, ASSETS); // warm-up
  const times: number[] = [];
  const start = performance.now();
  for (let i = 0; i < s.iterations; i++) {
    const t0 = performance.now();
    parseTransaction(s.kind, s.bytes, s.key, ASSETS);
    times.push((performance.now() - t0) * 1000);
  }
  const total = performance.now() - start;
  times.sort((a, b) => a - b);
  const q = (p: number) => Math.round(times[Math.min(times.length - 1, Math.floor(p * times.length))]!);
  results[s.name] = { bytes: s.bytes.length, p50us: q(0.5), p99us: q(0.99), perSecond: Math.round((s.iterations / total) * 1000) };
  console.log(`${s.name.padEnd(24)} ${String(s.bytes.length).padStart(6)} B  p50 ${String(q(0.5)).padStart(6)} µs  p99 ${String(q(0.99)).padStart(6)} µs  ${results[s.name]!.perSecond} parses/s (${s.iterations})`);
}
console.log(JSON.stringify({ bench: 'tx-parse', iterations: ITERATIONS, wide: WIDE, results }));
