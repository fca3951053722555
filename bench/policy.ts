/**
 * The policy engine's cost per act (ledger/policy-engine), pure and in memory.
 *
 *   node dist/bench/policy.js [--rules 256] [--entries 10000] [--acts 2000]
 *
 * A document of `rules` rules (the bound is policyEngine.rulesMax) in which only the last one
 * matches, each earlier rule failing on its last matcher so every matcher runs; every rule reads a
 * 24h window per key and per asset. The history holds `entries` admissions of the act's key and
 * asset inside the window. Reported: evaluate() and record() latency, p50 and p99 over `acts`
 * acts, and the YAML parse and render time of the document. A JSON line for tooling closes the
 * output.
 */
import { performance } from 'node:perf_hooks';
import {
  emptyHistory, evaluate, parsePolicyYaml, record, renderPolicyYaml, type PolicyDocument, type PolicyHistory,
} from '../ledger/policy-engine/index.js';
import type { AssetTable, TxFacts } from '../ledger/tx/types.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : dflt;
}

const RULES = Number(arg('rules', '256'));
const ENTRIES = Number(arg('entries', '10000'));
const ACTS = Number(arg('acts', '2000'));

const ASSETS: AssetTable = { BTC: { symbol: 'BTC', network: 'bitcoin-regtest', onChain: 'native', decimals: 8 } };
const DAY = 86_400_000;
const T0 = Date.UTC(2026, 0, 5);

function documentText(): string {
  const rule = (i: number, last: boolean): string => [
    `  - id: r${i}`,
    '    match:',
    '      initiators: { ids: [i1, i2] }',
    '      keys: [k1, k2]',
    '      assets: [BTC]',
    '      destination: { allow: [a1, a2, a3], ownKeys: true }',
    '      amount: { max: "1000" }',
    '      windows:',
    '        - { per: key, length: 24h, maxAmount: "100000", maxCount: 60000 }',
    '        - { per: asset, length: 24h, maxCount: 60000 }',
    `      weekdays: [${last ? 'sun, mon, tue, wed, thu, fri, sat' : 'sun'}]`,
    '    action: ALLOW',
  ].join('\n');
  return `version: 1\nrules:\n${Array.from({ length: RULES }, (_, i) => rule(i, i === RULES - 1)).join('\n')}\n`;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
}

const text = documentText();
let t = performance.now();
const policy: PolicyDocument = parsePolicyYaml(text, ASSETS);
const parseMs = performance.now() - t;
t = performance.now();
renderPolicyYaml(policy, ASSETS);
const renderMs = performance.now() - t;

let history: PolicyHistory = emptyHistory(policy);
const start = T0 + DAY; // a Tuesday: only the last rule's weekdays hold
for (let i = 0; i < ENTRIES; i++) history = record(history, { keyId: 'k1', initiator: 'i1', asset: 'BTC', amount: 1n, stampMs: start + i });

const facts: TxFacts = {
  kind: 'btc-psbt', network: 'bitcoin-regtest', asset: 'BTC',
  outputs: [{ address: 'a1', asset: 'BTC', amount: 1000n, change: false }, { address: 'own', asset: 'BTC', amount: 5n, change: true }],
  amount: 1000n, fee: 10n, feeAsset: 'BTC', messages: [], display: '', displayHash: new Uint8Array(32),
};
const own = new Set(['own']);
const evalMs: number[] = [];
const recordMs: number[] = [];
let allowed = 0;
for (let i = 0; i < ACTS; i++) {
  const nowMs = start + ENTRIES + i;
  const a = performance.now();
  const v = evaluate(policy, facts, { initiator: 'i1', keyId: 'k1', nowMs, history, ownAddresses: own, assets: ASSETS });
  const b = performance.now();
  if (v.action === 'ALLOW') {
    allowed++;
    history = record(history, { keyId: 'k1', initiator: 'i1', asset: 'BTC', amount: 1000n, stampMs: nowMs });
  }
  recordMs.push(performance.now() - b);
  evalMs.push(b - a);
}

const out = {
  rules: RULES, entries: ENTRIES, acts: ACTS, allowed,
  parseMs: +parseMs.toFixed(2), renderMs: +renderMs.toFixed(2), documentBytes: text.length,
  evaluateP50Ms: +pct(evalMs, 50).toFixed(3), evaluateP99Ms: +pct(evalMs, 99).toFixed(3),
  recordP50Ms: +pct(recordMs, 50).toFixed(3), recordP99Ms: +pct(recordMs, 99).toFixed(3),
};
console.log(`policy document: ${RULES} rules, ${text.length} bytes of YAML; parse ${out.parseMs} ms, render ${out.renderMs} ms`);
console.log(`history: ${ENTRIES} admissions of the key inside its 24h window`);
console.log(`evaluate (last rule matches): p50 ${out.evaluateP50Ms} ms, p99 ${out.evaluateP99Ms} ms over ${ACTS} acts (${allowed} allowed)`);
console.log(`record: p50 ${out.recordP50Ms} ms, p99 ${out.recordP99Ms} ms`);
console.log(JSON.stringify(out));
