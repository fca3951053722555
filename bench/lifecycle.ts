/**
 * Governed signing against the crypto-only limit, measured in the same run on this machine.
 *
 *   crypto-only     noble FROST 2-of-3 in one process: 2 commits, 2 signature shares, aggregate,
 *                   verify (RFC 9591 §5) — the floor any governed act pays
 *   governed act    ActSubmitted -> Admitted -> permit -> commitments -> shares -> ActExecuted ->
 *                   ActPublished, on a 3-node cluster (real Raft drivers with fsync'd LevelDB,
 *                   the ledger, the lifecycle coordinator), sequential (latency) and with
 *                   `--concurrency` acts in flight (throughput)
 *   decision        a fully signed governance decision from submission to applied on all 3 nodes
 *
 * Usage: node dist/bench/lifecycle.js [--acts 40] [--concurrency 8] [--decisions 20]
 *        [--kernels auto|process|twin] [--scheme ed25519|taproot]
 * Prints one JSON line of figures at the end. Never run as a test: figures depend on the machine.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { suiteOf } from '../kernel/suites.js';
import { isCustodyError } from '../proto/errors.js';
import { signDecision } from '../ledger/decision.js';
import { signActRequest } from '../ledger/act-request.js';
import { LocalCluster, until } from '../node/lifecycle/local-cluster.js';
import { actFor, decisionBodyFor } from '../node/lifecycle/acts.js';
import { DEMO_BTC_DESTINATION, DEMO_POLICY, DEMO_SOL_DESTINATION } from '../node/commands/demo.js';
import { buildSolanaTransfer, buildTaprootPsbt } from '../node/lifecycle/tx-build.js';
import { keyContextOf } from '../ledger/state.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

const r2 = (x: number): number => Math.round(x * 100) / 100;

function cryptoOnly(scheme: 'ed25519' | 'taproot', n: number): number[] {
  const { frost } = suiteOf(scheme);
  const ids = [1, 2, 3].map((i) => frost.Identifier.fromNumber(i));
  const keys = frost.trustedDealer({ min: 2, max: 3 }, ids);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const msg = randomBytes(32);
    const t0 = performance.now();
    const signers = [ids[0]!, ids[1]!];
    const c = signers.map((id) => frost.commit(keys.secretShares[id]!));
    const list = c.map((x) => x.commitments);
    const shares: Record<string, Uint8Array> = {};
    signers.forEach((id, j) => { shares[id] = frost.signShare(keys.secretShares[id]!, keys.public, c[j]!.nonces, list, msg); });
    const sig = frost.aggregate(keys.public, list, msg, shares);
    if (!frost.verify(sig, msg, keys.public.commitments[0]!)) throw new Error('crypto-only signature does not verify');
    out.push(performance.now() - t0);
  }
  return out;
}

async function main(): Promise<void> {
  const acts = Number(arg('acts', '40'));
  const concurrency = Number(arg('concurrency', '8'));
  const decisions = Number(arg('decisions', '20'));
  const scheme = arg('scheme', 'ed25519') as 'ed25519' | 'taproot';
  const kernelsArg = arg('kernels', 'auto');
  const dir = mkdtempSync(join(tmpdir(), 'custody-bench-lifecycle-'));
  // The demo's rules without their hourly budget: the bench is about throughput, not rate limits.
  const policy = { ...DEMO_POLICY, rules: DEMO_POLICY.rules.map((r) => ({ ...r, match: { ...r.match, windows: [] } })) };
  let kernels: 'process' | 'twin' = kernelsArg === 'twin' ? 'twin' : 'process';
  let c = await LocalCluster.start({ dir: join(dir, 'a'), policy, kernels, remoteTimeoutMs: 30_000, log: (l) => { if (/driver stopped|refused|failed/.test(l)) process.stderr.write(`${l}\n`); } });
  if (kernels === 'process' && kernelsArg === 'auto') {
    try {
      await c.nodes[0]!.kernel.port.call({ kind: 'nonces', keyId: 'epoch-probe', keyEpoch: 0, count: 1 }, 'nonceCommitments');
    } catch (e) {
      if (isCustodyError(e) && e.reason === 'PAYLOAD_REJECTED' && /keyEpoch/.test(e.detail)) {
        await c.close();
        kernels = 'twin';
        c = await LocalCluster.start({ dir: join(dir, 'b'), policy, kernels, remoteTimeoutMs: 30_000, log: (l) => { if (/driver stopped|refused|failed/.test(l)) process.stderr.write(`${l}\n`); } });
      }
    }
  }
  try {
    await c.genesis();
    const l = await c.waitLeader();
    const decide = async (action: Parameters<typeof decisionBodyFor>[1]) => {
      const v = await l.ledger.propose({ type: 'GovernanceDecision', decision: signDecision(decisionBodyFor(l.ledger.state(), action, Date.now()), c.approvers.slice(0, 2)) });
      if (!v.ok) throw new Error(`${v.reason}: ${v.detail}`);
      return v;
    };
    await decide({ kind: 'DkgAuthorized', keyId: 'k', scheme, network: scheme === 'taproot' ? 'bitcoin-regtest' : 'solana-devnet', threshold: 2, participants: c.nodes.map((n) => n.id) });
    await until('published', () => l.ledger.state().cluster?.keys['k']?.epochs['0']?.status === 'published', 120_000);
    await decide({ kind: 'KeyActivated', keyId: 'k', keyEpoch: 0, keyReadyCid: l.ledger.state().cluster!.keys['k']!.epochs['0']!.keyReadyCid! });

    const me = l.ledger.state().cluster!.nodes[l.id]!;
    const key = keyContextOf(l.ledger.state().cluster!, 'k')!;
    // One real transaction per act, each distinct: a SOL transfer, or a one-coin PSBT with change.
    const txOf = async (n: number): Promise<{ kind: 'solana' | 'btc-psbt'; tx: Uint8Array }> => (scheme === 'taproot'
      ? { kind: 'btc-psbt', tx: buildTaprootPsbt(key, [{ txid: randomBytes(32).toString('hex'), vout: 0, amountSat: 5_000n }], [{ address: DEMO_BTC_DESTINATION, amount: 1_000n + BigInt(n) }], 500n) }
      : { kind: 'solana', tx: await buildSolanaTransfer(key, [{ address: DEMO_SOL_DESTINATION, amount: 100n + BigInt(n) }], 'GHtXQBsoZHVnNFa9YevAzFr17DJjgHXk3ycTKD5xD3Zi') });
    let seq = 0;
    const oneAct = async (): Promise<number> => {
      ++seq;
      const opId = randomBytes(16).toString('hex');
      const custodian = c.custodians[0]!;
      const a = actFor(l.ledger.state(), { keyId: 'k', ...(await txOf(seq)) }, custodian.id).act;
      const request = signActRequest({ clusterId: c.clusterId, custodian: custodian.id, requestId: opId, issuedMs: Date.now(), keyId: a.keyId, keyEpoch: a.keyEpoch, kind: a.kind, tx: a.tx, declared: { asset: '', amount: '', destination: '' } }, custodian.secretKey);
      const t0 = performance.now();
      const v = await l.ledger.propose({ type: 'ActSubmitted', opId, act: a, approval: null, request, nodeId: me.id, passport: me.passport });
      if (!v.ok) throw new Error(`${v.reason}: ${v.detail}`);
      await new Promise<void>((resolve, reject) => {
        const check = (): boolean => {
          const s = l.ledger.state().cluster?.ops[opId]?.state;
          if (s === 'Published') return true;
          if (s === 'Aborted' || s === 'Denied') throw new Error(`${opId} ${s}`);
          return false;
        };
        try {
          if (check()) return resolve();
        } catch (e) {
          return reject(e as Error);
        }
        const un = l.ledger.subscribe(() => queueMicrotask(() => {
          try {
            if (check()) {
              un();
              resolve();
            }
          } catch (e) {
            un();
            reject(e as Error);
          }
        }));
      });
      return performance.now() - t0;
    };

    const progress = (l: string): void => void process.stderr.write(`${l}\n`);
    progress('key active; warming up');
    await oneAct(); // warm-up
    const seqMs: number[] = [];
    for (let i = 0; i < acts; i++) seqMs.push(await oneAct());
    progress(`sequential: ${seqMs.length} acts`);
    const parMs: number[] = [];
    const dump = setInterval(() => progress(`concurrent: ${parMs.length} of ${acts} acts published`), 5000);
    const t0 = performance.now();
    let left = acts;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (left-- > 0) parMs.push(await oneAct());
    }));
    const parWallMs = performance.now() - t0;

    clearInterval(dump);
    progress(`concurrent: ${parMs.length} acts`);
    const decMs: number[] = [];
    for (let i = 0; i < decisions; i++) {
      const t1 = performance.now();
      const v = await decide(i % 2 === 0 ? { kind: 'EmergencyFreeze', reason: `bench ${i}` } : { kind: 'Unfreeze' });
      await until('applied on all nodes', () => c.nodes.every((n) => n.app.state.index >= v.index), 30_000, 1);
      decMs.push(performance.now() - t1);
    }
    const crypto = cryptoOnly(scheme, acts);

    const fig = {
      scheme, kernels, acts, concurrency,
      governed_p50_ms: r2(pct(seqMs, 50)), governed_p99_ms: r2(pct(seqMs, 99)),
      governed_throughput_per_s: r2((acts / parWallMs) * 1000), governed_concurrent_p50_ms: r2(pct(parMs, 50)), governed_concurrent_p99_ms: r2(pct(parMs, 99)),
      crypto_only_p50_ms: r2(pct(crypto, 50)), crypto_only_p99_ms: r2(pct(crypto, 99)), crypto_only_throughput_per_s: r2(1000 / (crypto.reduce((a, b) => a + b, 0) / crypto.length)),
      decision_p50_ms: r2(pct(decMs, 50)), decision_p99_ms: r2(pct(decMs, 99)),
    };
    process.stdout.write(`governed signing (${scheme}, kernels ${kernels}): admission -> Published p50 ${fig.governed_p50_ms} ms, p99 ${fig.governed_p99_ms} ms; ${fig.governed_throughput_per_s} acts/s with ${concurrency} in flight\n`);
    process.stdout.write(`crypto only (noble FROST 2-of-3 in one process): p50 ${fig.crypto_only_p50_ms} ms, p99 ${fig.crypto_only_p99_ms} ms, ${fig.crypto_only_throughput_per_s} signatures/s\n`);
    process.stdout.write(`governance decision, submit -> applied on all 3 nodes: p50 ${fig.decision_p50_ms} ms, p99 ${fig.decision_p99_ms} ms\n`);
    process.stdout.write(`${JSON.stringify(fig)}\n`);
  } finally {
    await c.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
