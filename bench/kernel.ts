/**
 * Kernel signing throughput against the crypto-only limit, measured in the same run.
 *
 *   node dist/bench/kernel.js [--suites ed25519,secp256k1,taproot] [--shares 200] [--signings 50] [--profile software|hsm]
 *
 * For each suite:
 *   crypto-only (this process, noble, no I/O): commit (RFC 9591 §5.1) and sign_share (§5.2)
 *     timed apart; one full 2-of-3 signature = 2 commits + 2 shares + aggregate, which
 *     verifies (§5.3), and the same without the commits (nonces presigned ahead);
 *   kernel (three real kernel processes on Unix sockets): signature shares per second from one
 *     kernel (each a framed request, permit checks, share and nonce unsealed, the share
 *     self-verified, the nonce consumed in an fsynced batch — and in the hsm profile a token
 *     counter raise — before the reply); and full 2-of-3 signing across processes
 *     (presign one nonce on each signer, sign on both in parallel, aggregate), with and without
 *     the presign round trip.
 * The ratios kernel / crypto-only are printed at the end, and a JSON line for tooling.
 */
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { suiteOf, SUITE_NAMES, type SuiteName } from '../kernel/suites.js';
import type { NonceCommitment } from '../kernel/wire.js';
import {
  Governance, runDkg, setupKernel, sha256, signAcross, startKernel, tempDir, toPackage, independentVerify,
  type KernelProcess, type Member, type Profile,
} from '../test/kernel/harness.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

const suites = arg('suites', SUITE_NAMES.join(',')).split(',') as SuiteName[];
const SHARES = Number(arg('shares', '200'));
const SIGNINGS = Number(arg('signings', '50'));
const profile = arg('profile', 'software') as Profile;

interface CryptoCost {
  /** RFC 9591 §5.1 commit for one signer. */
  commitMs: number;
  /** RFC 9591 §5.2 sign for one signer (the work of the kernel's sign step). */
  shareMs: number;
  /** 2 commits + 2 shares + aggregate with its verification (§5.3). */
  fullMs: number;
  /** 2 shares + aggregate, nonces committed ahead (the presigned steady state). */
  fullPresignedMs: number;
}

function cryptoOnly(name: SuiteName): CryptoCost {
  const { frost } = suiteOf(name);
  const deal = frost.trustedDealer({ min: 2, max: 3 });
  const ids = Object.keys(deal.secretShares);
  const [s1, s2] = [deal.secretShares[ids[0]!]!, deal.secretShares[ids[1]!]!];
  const msg = name === 'taproot' ? randomBytes(32) : Buffer.from('bench message');
  const other = frost.commit(s2);
  for (let i = 0; i < 5; i++) {
    const g = frost.commit(s1);
    frost.signShare(s1, deal.public, g.nonces, [g.commitments, other.commitments], msg);
  }
  let commitMs = 0;
  let shareMs = 0;
  for (let i = 0; i < SHARES; i++) {
    const t0 = performance.now();
    const g = frost.commit(s1);
    const t1 = performance.now();
    frost.signShare(s1, deal.public, g.nonces, [g.commitments, other.commitments], msg);
    shareMs += performance.now() - t1;
    commitMs += t1 - t0;
  }
  const rounds = Math.max(10, SIGNINGS);
  let fullMs = 0;
  let fullPresignedMs = 0;
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    const a = frost.commit(s1);
    const b = frost.commit(s2);
    const t1 = performance.now();
    const list = [a.commitments, b.commitments];
    const z1 = frost.signShare(s1, deal.public, a.nonces, list, msg);
    const z2 = frost.signShare(s2, deal.public, b.nonces, list, msg);
    frost.aggregate(deal.public, list, msg, { [s1.identifier]: z1, [s2.identifier]: z2 });
    const t2 = performance.now();
    fullMs += t2 - t0;
    fullPresignedMs += t2 - t1;
  }
  return { commitMs: commitMs / SHARES, shareMs: shareMs / SHARES, fullMs: fullMs / rounds, fullPresignedMs: fullPresignedMs / rounds };
}

async function kernelRun(name: SuiteName, members: Member[], gov: Governance): Promise<{ shareMs: number; fullMs: number; fullPresignedMs: number }> {
  const key = await runDkg(gov, members, `bench-${name}-${randomBytes(3).toString('hex')}`, name, 2);
  const [a, b] = members as [Member, Member];
  const msg = name === 'taproot' ? randomBytes(32) : Buffer.from('bench message');

  // Signature shares per second from one kernel.
  const mine: NonceCommitment[] = [];
  for (let left = SHARES; left > 0; left -= 256) {
    mine.push(...(await a.client.call({ kind: 'nonces', keyId: key.keyId, keyEpoch: 1, count: Math.min(256, left) }, 'nonceCommitments')).commitments);
  }
  const [other] = (await b.client.call({ kind: 'nonces', keyId: key.keyId, keyEpoch: 1, count: 1 }, 'nonceCommitments')).commitments;
  const ledgerIndex = gov.permitIndex();
  let t0 = performance.now();
  for (const n of mine) {
    await a.client.call({
      kind: 'sign', permit: { keyId: key.keyId, keyEpoch: 1, requestId: `s-${n.counter}-${key.keyId}`, messageDigest: sha256(msg), ledgerIndex },
      message: msg, commitments: [n, other!].map((c) => ({ identifier: c.identifier, hiding: c.hiding, binding: c.binding })), counter: n.counter, ledgerConsumedCounter: 0,
    }, 'signatureShare');
  }
  const shareMs = (performance.now() - t0) / mine.length;

  // Full 2-of-3 signing across processes, presign included.
  t0 = performance.now();
  for (let i = 0; i < SIGNINGS; i++) {
    const out = await signAcross(gov, [a, b], key, msg);
    if (i === 0 && !independentVerify(name, key.public.commitments[0]!, msg, out.signature)) throw new Error('bench signature does not verify');
  }
  const fullMs = (performance.now() - t0) / SIGNINGS;

  // Full signing with nonces presigned ahead (the steady state with presign batches).
  const na = (await a.client.call({ kind: 'nonces', keyId: key.keyId, keyEpoch: 1, count: SIGNINGS }, 'nonceCommitments')).commitments;
  const nb = (await b.client.call({ kind: 'nonces', keyId: key.keyId, keyEpoch: 1, count: SIGNINGS }, 'nonceCommitments')).commitments;
  const { frost } = suiteOf(name);
  const pub = toPackage(key.public);
  t0 = performance.now();
  for (let i = 0; i < SIGNINGS; i++) {
    const pair = [na[i]!, nb[i]!];
    const commitments = pair.map((c) => ({ identifier: c.identifier, hiding: c.hiding, binding: c.binding }));
    const idx = gov.permitIndex();
    const requestId = `f-${i}-${key.keyId}`;
    const shares = await Promise.all([a, b].map((m, j) => m.client.call({
      kind: 'sign', permit: { keyId: key.keyId, keyEpoch: 1, requestId, messageDigest: sha256(msg), ledgerIndex: idx },
      message: msg, commitments, counter: pair[j]!.counter, ledgerConsumedCounter: 0,
    }, 'signatureShare')));
    frost.aggregate(pub as never, commitments as never, msg, Object.fromEntries(shares.map((s) => [s.identifier, s.sigShare])) as never);
  }
  const fullPresignedMs = (performance.now() - t0) / SIGNINGS;
  return { shareMs, fullMs, fullPresignedMs };
}

async function main(): Promise<void> {
  const { dir, cleanup } = tempDir('bench-kernel');
  const gov = new Governance();
  const procs: KernelProcess[] = [];
  try {
    for (const id of ['n1', 'n2', 'n3']) procs.push(await startKernel(setupKernel(dir, id, profile, gov)));
    const members = procs.map((p): Member => ({ nodeId: p.setup.nodeId, client: p.client, transportPublicKey: p.transportPublicKey }));
    const rows: Record<string, unknown>[] = [];
    console.log(`kernel bench: profile=${profile} shares=${SHARES} signings=${SIGNINGS} (node ${process.version})`);
    const f = (x: number): string => x.toFixed(2).padStart(8);
    console.log('suite     |  crypto: commit    share  2-of-3 (presigned) |  kernel: share  shares/s  2-of-3 (presigned) | ratio: share  2-of-3 (presigned)');
    for (const name of suites) {
      const c = cryptoOnly(name);
      const k = await kernelRun(name, members, gov);
      const row = {
        suite: name, profile,
        cryptoCommitMs: +c.commitMs.toFixed(3), cryptoShareMs: +c.shareMs.toFixed(3), cryptoFullMs: +c.fullMs.toFixed(3), cryptoFullPresignedMs: +c.fullPresignedMs.toFixed(3),
        kernelShareMs: +k.shareMs.toFixed(3), kernelSharesPerSec: +(1000 / k.shareMs).toFixed(1), cryptoSharesPerSec: +(1000 / c.shareMs).toFixed(1),
        kernelFullMs: +k.fullMs.toFixed(3), kernelFullPresignedMs: +k.fullPresignedMs.toFixed(3),
        shareRatio: +(k.shareMs / c.shareMs).toFixed(2), fullRatio: +(k.fullMs / c.fullMs).toFixed(2), fullPresignedRatio: +(k.fullPresignedMs / c.fullPresignedMs).toFixed(2),
      };
      rows.push(row);
      console.log(`${name.padEnd(9)} | ${f(c.commitMs)} ${f(c.shareMs)} ${f(c.fullMs)} (${f(c.fullPresignedMs)}) | ${f(k.shareMs)} ${(1000 / k.shareMs).toFixed(1).padStart(9)} ${f(k.fullMs)} (${f(k.fullPresignedMs)}) | ${row.shareRatio.toFixed(2).padStart(11)} ${row.fullRatio.toFixed(2).padStart(7)} (${row.fullPresignedRatio.toFixed(2)})`);
    }
    console.log(`times in ms per operation; ratio = kernel / crypto-only; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    console.log(JSON.stringify({ bench: 'kernel', rows }));
  } finally {
    for (const p of procs) await p.stop();
    cleanup();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
