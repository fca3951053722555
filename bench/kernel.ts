/**
 * Kernel signing throughput against the crypto-only limit, measured in the same run.
 *
 *   node dist/bench/kernel.js [--suites ed25519,secp256k1,taproot] [--blocks 10] [--per-block 10] [--act-messages 16] [--profile software|hsm]
 *
 * For each suite, three kernel processes on Unix sockets hold a 2-of-3 key from a real DKG, and
 *   crypto-only (this process, noble, no I/O) times commit (RFC 9591 §5.1), sign_share (§5.2),
 *     and a full 2-of-3 signature: 2 commits + 2 shares + aggregate with its verification (§5.3);
 *   kernel times one signature share from one kernel (a framed request with its entry certificate,
 *     built before the clock starts; the certificate checks (kernel/certificate.ts); permit checks; share and
 *     nonce unsealed; the nonce consumed in an fsynced batch — in the hsm profile after a token
 *     counter raise — before the reply), and a full 2-of-3 signing across processes (presign a
 *     nonce on each signer, both sign in parallel, aggregate), with and without the presign;
 *   act times a whole act of --act-messages messages (default 16, e.g. a 16-input PSBT) signed
 *     2-of-3 from presigned nonces: one request per kernel carrying every message, both in
 *     parallel (per act, per message, and per message against one single-message share), and
 *     separately the aggregation of every message in this process.
 * The crypto and kernel measurements alternate in small blocks and the medians are reported, so
 * both see the same machine load; the ratio is kernel / crypto-only. A JSON line follows.
 */
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { suiteOf, SUITE_NAMES, type SuiteName } from '../kernel/suites.js';
import type { NonceCommitment, ResponseBody } from '../kernel/wire.js';
import { messagesDigest } from '../ledger/tx/messages.js';
import {
  Governance, independentVerify, runDkg, setupKernel, signAcross, startKernel, taprootSpend, tempDir, toPackage,
  type KernelProcess, type KeyResult, type Member, type Profile,
} from '../test/kernel/harness.js';
import { rid as requestIdOf } from '../ledger/scenario.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

const suites = arg('suites', SUITE_NAMES.join(',')).split(',') as SuiteName[];
const BLOCKS = Number(arg('blocks', '10'));
const PER_BLOCK = Number(arg('per-block', '10'));
const profile = arg('profile', 'software') as Profile;
const ACT_MESSAGES = Number(arg('act-messages', '16'));

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function time(samples: number[], f: () => unknown): Promise<void> {
  const t0 = performance.now();
  await f();
  samples.push(performance.now() - t0);
}

function cryptoSetup(name: SuiteName) {
  const { frost } = suiteOf(name);
  const deal = frost.trustedDealer({ min: 2, max: 3 });
  const ids = Object.keys(deal.secretShares);
  const [s1, s2] = [deal.secretShares[ids[0]!]!, deal.secretShares[ids[1]!]!];
  return { frost, deal, s1, s2, other: frost.commit(s2) };
}

async function benchSuite(name: SuiteName, members: Member[], gov: Governance) {
  const msg = name === 'taproot' ? randomBytes(32) : Buffer.from('bench message');
  const c = cryptoSetup(name);
  const key: KeyResult = await runDkg(gov, members, `bench-${name}-${randomBytes(3).toString('hex')}`, name, 2);
  // A second key for the runs that presign as they go: one key's nonces are consumed in counter
  // order, so those runs must not share a key with the presigned-ahead ones.
  const key2: KeyResult = await runDkg(gov, members, `bench2-${name}-${randomBytes(3).toString('hex')}`, name, 2);
  // A third key for the acts, presigned right before each (untimed) and consumed in order.
  const key3: KeyResult = await runDkg(gov, members, `bench3-${name}-${randomBytes(3).toString('hex')}`, name, 2);
  const [a, b] = members as [Member, Member];
  const pub = toPackage(key.public);
  // An act of several messages is a PSBT spending several coins of a taproot key (one BIP 341
  // sighash per input), which every kernel parses itself; the other suites sign one message per act
  // (a Solana message, raw bytes), so only taproot has this row.
  const actMessages = name === 'taproot' ? gov.transaction(key3.keyId, 'btc-psbt', taprootSpend(gov.keys.get(key3.keyId)!, `bench-act-${key3.keyId}`, ACT_MESSAGES)) : [];
  const presign = async (m: Member, count: number): Promise<NonceCommitment[]> => {
    const out: NonceCommitment[] = [];
    for (let left = count; left > 0; left -= 256) {
      out.push(...(await m.client.call({ kind: 'nonces', keyId: key.keyId, keyEpoch: 0, count: Math.min(256, left) }, 'nonceCommitments')).commitments);
    }
    return out;
  };
  const total = BLOCKS * PER_BLOCK;
  // Presigned ahead (not timed): nonces for the share runs and for the presigned full runs.
  const mine = await presign(a, total * 2);
  const theirs = await presign(b, total + 1);
  const fixedOther = theirs.pop()!;
  // A request with its entry certificate, made before the clock starts (the certificate is the
  // daemons' work, node/checkpoints.ts; bench/checkpoint.ts times it): what is timed is the kernel.
  const request = (n: NonceCommitment, list: NonceCommitment[], requestId: string, ledgerIndex: number = gov.permitIndex()) => gov.certified({
    kind: 'sign', permit: { keyId: key.keyId, keyEpoch: 0, requestId, messageDigest: messagesDigest([msg]), ledgerIndex },
    messages: [msg], lists: [list.map((x) => ({ identifier: x.identifier, hiding: x.hiding, binding: x.binding }))], counters: [n.counter], ledgerConsumedCounter: 0,
  });

  const s = { commit: [] as number[], share: [] as number[], full: [] as number[], fullPresigned: [] as number[], kShare: [] as number[], kFull: [] as number[], kFullPresigned: [] as number[], kAct: [] as number[], kActAggregate: [] as number[] };
  let mi = 0;
  let ti = 0;
  for (let blk = 0; blk < BLOCKS; blk++) {
    for (let i = 0; i < PER_BLOCK; i++) {
      // crypto-only
      let g = c.frost.commit(c.s1);
      await time(s.commit, () => (g = c.frost.commit(c.s1)));
      await time(s.share, () => c.frost.signShare(c.s1, c.deal.public, g.nonces, [g.commitments, c.other.commitments], msg));
      let x = c.frost.commit(c.s1);
      let y = c.frost.commit(c.s2);
      const t0 = performance.now();
      x = c.frost.commit(c.s1);
      y = c.frost.commit(c.s2);
      const t1 = performance.now();
      const list = [x.commitments, y.commitments];
      const z1 = c.frost.signShare(c.s1, c.deal.public, x.nonces, list, msg);
      const z2 = c.frost.signShare(c.s2, c.deal.public, y.nonces, list, msg);
      c.frost.aggregate(c.deal.public, list, msg, { [c.s1.identifier]: z1, [c.s2.identifier]: z2 });
      const t2 = performance.now();
      s.full.push(t2 - t0);
      s.fullPresigned.push(t2 - t1);
    }
    for (let i = 0; i < PER_BLOCK; i++) {
      // kernel: one share from one kernel
      const n = mine[mi++]!;
      const one = request(n, [n, fixedOther], requestIdOf(`${key.keyId}/share/${n.counter}`));
      await time(s.kShare, () => a.client.call(one, 'signatureShares'));
      // kernel: full 2-of-3 with presign round trips
      await time(s.kFull, async () => {
        const out = await signAcross(gov, [a, b], key2, msg);
        if (blk === 0 && i === 0 && !independentVerify(name, key2.public.commitments[0]!, msg, out.signature)) throw new Error('bench signature does not verify');
      });
      // kernel: full 2-of-3 from presigned nonces
      const pa = mine[mi++]!;
      const pb = theirs[ti++]!;
      const rid = requestIdOf(`${key.keyId}/full/${pa.counter}`);
      const at = gov.permitIndex();
      const [ra, rb] = [request(pa, [pa, pb], rid, at), request(pb, [pa, pb], rid, at)];
      await time(s.kFullPresigned, async () => {
        const shares = await Promise.all([a.client.call(ra, 'signatureShares'), b.client.call(rb, 'signatureShares')]);
        c.frost.aggregate(pub as never, [pa, pb].map((q) => ({ identifier: q.identifier, hiding: q.hiding, binding: q.binding })) as never, msg,
          Object.fromEntries(shares.map((r) => [r.identifier, r.sigShares[0]!])) as never);
      });
      // kernel: a whole act of ACT_MESSAGES messages from presigned nonces (presign untimed)
      if (actMessages.length === 0) continue;
      const [na, nb] = [
        (await a.client.call({ kind: 'nonces', keyId: key3.keyId, keyEpoch: 0, count: ACT_MESSAGES }, 'nonceCommitments')).commitments,
        (await b.client.call({ kind: 'nonces', keyId: key3.keyId, keyEpoch: 0, count: ACT_MESSAGES }, 'nonceCommitments')).commitments,
      ];
      const lists = actMessages.map((_, j) => [na[j]!, nb[j]!].map((q) => ({ identifier: q.identifier, hiding: q.hiding, binding: q.binding })));
      const permit = { keyId: key3.keyId, keyEpoch: 0, requestId: requestIdOf(`${key3.keyId}/act/${na[0]!.counter}`), messageDigest: messagesDigest(actMessages), ledgerIndex: gov.permitIndex() };
      let shares: Extract<ResponseBody, { kind: 'signatureShares' }>[] = [];
      const bodies = [[a, na] as const, [b, nb] as const].map(([m, ns]) =>
        [m, gov.certified({ kind: 'sign', permit, messages: actMessages, lists, counters: ns.map((q) => q.counter), ledgerConsumedCounter: 0 })] as const);
      await time(s.kAct, async () => {
        shares = await Promise.all(bodies.map(([m, body]) => m.client.call(body, 'signatureShares')));
      });
      await time(s.kActAggregate, () => {
        const sigs = actMessages.map((msgJ, j) => c.frost.aggregate(toPackage(key3.public) as never, lists[j] as never, msgJ,
          Object.fromEntries(shares.map((r) => [r.identifier, r.sigShares[j]!])) as never));
        if (blk === 0 && i === 0 && !sigs.every((sig, j) => independentVerify(name, key3.public.commitments[0]!, actMessages[j]!, sig))) throw new Error('bench act signature does not verify');
      });
    }
  }
  const m = Object.fromEntries(Object.entries(s).map(([k, v]) => [k, median(v)])) as Record<keyof typeof s, number>;
  return {
    suite: name, profile, samples: total,
    cryptoCommitMs: +m.commit.toFixed(3), cryptoShareMs: +m.share.toFixed(3), cryptoFullMs: +m.full.toFixed(3), cryptoFullPresignedMs: +m.fullPresigned.toFixed(3),
    kernelShareMs: +m.kShare.toFixed(3), kernelFullMs: +m.kFull.toFixed(3), kernelFullPresignedMs: +m.kFullPresigned.toFixed(3),
    actMessages: ACT_MESSAGES, kernelActMs: +m.kAct.toFixed(3), kernelActPerMessageMs: +(m.kAct / ACT_MESSAGES).toFixed(3),
    actAggregateMs: +m.kActAggregate.toFixed(3), actPerMessageShareRatio: +(m.kAct / ACT_MESSAGES / m.kShare).toFixed(2),
    cryptoSharesPerSec: +(1000 / m.share).toFixed(1), kernelSharesPerSec: +(1000 / m.kShare).toFixed(1), kernelSignaturesPerSec: +(1000 / m.kFullPresigned).toFixed(1),
    shareRatio: +(m.kShare / m.share).toFixed(2), fullRatio: +(m.kFull / m.full).toFixed(2), fullPresignedRatio: +(m.kFullPresigned / m.fullPresigned).toFixed(2),
  };
}

async function main(): Promise<void> {
  const { dir, cleanup } = tempDir('bench-kernel');
  const gov = new Governance();
  const procs: KernelProcess[] = [];
  try {
    for (const id of ['n1', 'n2', 'n3']) procs.push(await startKernel(setupKernel(dir, id, profile, gov)));
    const members = procs.map((p): Member => ({ nodeId: p.setup.nodeId, client: p.client, transportPublicKey: p.transportPublicKey }));
    const rows: Awaited<ReturnType<typeof benchSuite>>[] = [];
    console.log(`kernel bench: profile=${profile}, ${BLOCKS} blocks x ${PER_BLOCK}, medians in ms (node ${process.version}, load ${loadavg().map((x) => x.toFixed(1)).join(' ')})`);
    const f = (x: number): string => x.toFixed(2).padStart(7);
    console.log(`suite     | crypto: commit   share  2-of-3 (presigned) | kernel: share shares/s  2-of-3 (presigned) | ratio: share 2-of-3 (presigned) | act of ${ACT_MESSAGES}: kernels per message (vs one share) aggregate`);
    for (const name of suites) {
      const r = await benchSuite(name, members, gov);
      rows.push(r);
      const fa = (x: number): string => (Number.isFinite(x) ? f(x) : '    n/a');
      console.log(`${name.padEnd(9)} | ${f(r.cryptoCommitMs)} ${f(r.cryptoShareMs)} ${f(r.cryptoFullMs)} (${f(r.cryptoFullPresignedMs)}) | ${f(r.kernelShareMs)} ${r.kernelSharesPerSec.toFixed(1).padStart(8)} ${f(r.kernelFullMs)} (${f(r.kernelFullPresignedMs)}) | ${r.shareRatio.toFixed(2).padStart(11)} ${r.fullRatio.toFixed(2).padStart(6)} (${r.fullPresignedRatio.toFixed(2)}) | ${fa(r.kernelActMs)} ${fa(r.kernelActPerMessageMs)} (${Number.isFinite(r.actPerMessageShareRatio) ? r.actPerMessageShareRatio.toFixed(2) : 'n/a'}) ${fa(r.actAggregateMs)}`);
    }
    console.log(`load average at the end: ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
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
