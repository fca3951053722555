/**
 * What certified checkpoints cost: the Merkle tree kept beside the ledger, cosigning, collecting a
 * certificate, and the kernel's checks of it.
 *
 *   node dist/bench/checkpoint.js [--entries 20000] [--certificates 200] [--signs 60] [--profile software|hsm]
 *
 *   tree      LedgerTree.append per applied entry (leaf hash, the perfect subtrees it completes,
 *             their writes), over --entries entries; and a whole LedgerApp batch apply per entry
 *             for scale (prepare, apply, finish over an in-memory store)
 *   cosign    one node's note over its checkpoint at its applied size (root from stored nodes,
 *             one cosignature/v1 line)
 *   certify   Checkpointer.certificate of an act's two entries on three in-process replicas: its own
 *             cosignature, the two peers' over direct calls, verification of theirs, the
 *             certified() self-check and two inclusion proofs; and the same when the last
 *             certificate's note covers the entries (reused); amortized per applied entry (one
 *             certificate per act: its submission, permit and signing set)
 *   kernel    checkCertificate alone (kernel/certificate.ts, in this process), and the latency of
 *             one signature share from a kernel process with its certificate (the number
 *             bench/kernel.ts reports as "kernel: share", which now includes these checks)
 * Medians (ms). A JSON line follows.
 */
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { encode } from '../ledger/encoding.js';
import { ScriptedCluster, rid as requestIdOf } from '../ledger/scenario.js';
import type { LedgerEntry } from '../ledger/events.js';
import { LedgerApp, encodeLedgerCommand, type ColdStore } from '../node/ledger-app.js';
import { LedgerTree } from '../node/ledger-tree.js';
import { Checkpointer } from '../node/checkpoints.js';
import { checkCertificate } from '../kernel/certificate.js';
import type { NonceCommitment } from '../kernel/wire.js';
import { messagesDigest } from '../ledger/tx/messages.js';
import { Governance, runDkg, setupKernel, startKernel, tempDir, memberOf, type KernelProcess, type Profile } from '../test/kernel/harness.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}
const ENTRIES = Number(arg('entries', '20000'));
const CERTS = Number(arg('certificates', '200'));
const SIGNS = Number(arg('signs', '60'));
const profile = arg('profile', 'software') as Profile;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const f = (x: number): string => (x < 0.1 ? x.toFixed(4) : x.toFixed(3));

/** One driver batch: prepare, apply, finish, and the batch's writes persisted (as the driver does). */
async function applyBatch(app: LedgerApp, cold: ColdStore, batch: readonly Uint8Array[]): Promise<void> {
  await app.prepare(batch);
  const writes = [];
  for (const c of batch) {
    const r = app.apply(0, c);
    if ('writes' in r) writes.push(...r.writes);
  }
  writes.push(...app.finish());
  await cold.put(writes.filter((w) => w.key.startsWith('archive/')), false);
}

function memoryCold(): ColdStore {
  const m = new Map<string, Uint8Array>();
  return {
    get: async (k) => m.get(k),
    getMany: async (ks) => ks.map((k) => m.get(k)),
    scan: async function* () {},
    put: async (writes) => {
      for (const w of writes) if (w.value === null) m.delete(w.key); else m.set(w.key, w.value);
    },
  };
}

async function benchTree(): Promise<{ appendMs: number; applyPerEntryMs: number }> {
  const tree = new LedgerTree({ getMany: async (ks) => ks.map(() => undefined) });
  const event = encode({ type: 'bench', pad: new Uint8Array(400) });
  const t0 = performance.now();
  for (let i = 1; i <= ENTRIES; i++) tree.append({ index: i, stampMs: 1_700_000_000_000 + i, event }, null, i, false);
  const appendMs = (performance.now() - t0) / ENTRIES;
  // A ledger applying real events in batches of 32, with its tree: the scale the tree adds to.
  const s = new ScriptedCluster({ label: 'bench-checkpoint' });
  s.genesis();
  s.createKey('k1');
  for (let i = 0; s.log.length < 2_000; i++) s.submit(`op-${i}`, s.act('k1', { amount: BigInt(i + 1) }));
  const cold = memoryCold();
  const app = new LedgerApp({ cold });
  const cmds = s.log.map((e) => new Uint8Array(encodeLedgerCommand(e.stampMs, e.event)));
  const t1 = performance.now();
  for (let i = 0; i < cmds.length; i += 32) await applyBatch(app, cold, cmds.slice(i, i + 32));
  return { appendMs, applyPerEntryMs: (performance.now() - t1) / cmds.length };
}

async function benchCertify(): Promise<{ cosignMs: number; certifyMs: number; reusedMs: number; perEntryMs: number; entriesPerAct: number; checkMs: number }> {
  const s = new ScriptedCluster({ label: 'bench-checkpoint' });
  s.genesis();
  s.createKey('k1');
  const acts: { submitted: number; fixed: number }[] = [];
  for (let i = 0; i < CERTS; i++) {
    const op = `op-${i}`;
    s.submit(op, s.act('k1', { amount: BigInt(i + 1) }));
    const submitted = s.log[s.log.length - 1]!.index;
    s.issuePermit(op);
    s.fixSigningSet(op);
    acts.push({ submitted, fixed: s.log[s.log.length - 1]!.index });
  }
  const colds = s.nodes.map(() => memoryCold());
  const apps = colds.map((cold) => new LedgerApp({ cold }));
  const cps: Checkpointer[] = [];
  s.nodes.forEach((n, i) => {
    cps.push(new Checkpointer({
      nodeId: n.info.id, identitySecretKey: n.secretKey, app: apps[i]!,
      peers: () => cps.filter((_, j) => j !== i).map((c, j) => ({ nodeId: s.nodes[j >= i ? j + 1 : j]!.info.id, cosign: (size: number) => c.cosign(size) })),
    }));
  });
  const cosign: number[] = [];
  const certify: number[] = [];
  const reused: number[] = [];
  const check: number[] = [];
  let applied = 0;
  const voters = s.nodes.map((n) => ({ id: n.info.id, identityKey: Buffer.from(n.info.identityKey).toString('hex') }));
  for (const [i, a] of acts.entries()) {
    // Apply up to this act's signing set on every replica, then certify it as its signer would.
    const upTo = s.log.findIndex((e) => e.index === a.fixed) + 1;
    const batch = s.log.slice(applied, upTo).map((e: LedgerEntry) => new Uint8Array(encodeLedgerCommand(e.stampMs, e.event)));
    applied = upTo;
    for (const [j, app] of apps.entries()) await applyBatch(app, colds[j]!, batch);
    let t0 = performance.now();
    await cps[0]!.cosign(apps[0]!.tree.size!);
    cosign.push(performance.now() - t0);
    t0 = performance.now();
    const cert = await cps[i % 3]!.certificate([a.submitted, a.fixed]);
    certify.push(performance.now() - t0);
    t0 = performance.now();
    await cps[i % 3]!.certificate([a.submitted, a.fixed]);
    reused.push(performance.now() - t0);
    const set = s.state.cluster!.ops[requestIdOf(`op-${i}`)]!.signingSet!.commitments;
    const me = set[0]!;
    t0 = performance.now();
    checkCertificate(cert, {
      clusterId: s.clusterId, voters, lists: me.nonces.map((_, j) => set.map((m) => ({ identifier: m.identifier, hiding: m.nonces[j]!.hiding, binding: m.nonces[j]!.binding }))),
      counters: me.nonces.map((n) => n.counter), identifierFor: () => me.identifier, active: () => ({ epoch: 0, activatedIndex: 0 }),
    });
    check.push(performance.now() - t0);
  }
  for (const c of cps) c.stop();
  const perAct = s.log.length / CERTS;
  return { cosignMs: median(cosign), certifyMs: median(certify), reusedMs: median(reused), perEntryMs: median(certify) / Math.max(1, perAct), entriesPerAct: perAct, checkMs: median(check) };
}

async function benchKernel(): Promise<{ shareMs: number }> {
  const { dir, cleanup } = tempDir('bench-checkpoint');
  const gov = new Governance();
  const procs: KernelProcess[] = [];
  try {
    for (const id of ['n1', 'n2']) procs.push(await startKernel(setupKernel(dir, id, profile, gov)));
    const [a, b] = procs.map(memberOf);
    const key = await runDkg(gov, [a!, b!], 'bench-cert', 'ed25519', 2);
    const presign = async (m: typeof a, n: number): Promise<NonceCommitment[]> => (await m!.client.call({ kind: 'nonces', keyId: key.keyId, keyEpoch: 0, count: n }, 'nonceCommitments')).commitments;
    const mine = await presign(a, SIGNS);
    const [other] = await presign(b, 1);
    const msg = Buffer.from('bench checkpoint');
    const times: number[] = [];
    for (const n of mine) {
      const lists = [[n, other!].map((x) => ({ identifier: x.identifier, hiding: x.hiding, binding: x.binding }))];
      const body = gov.certified({ kind: 'sign', permit: { keyId: key.keyId, keyEpoch: 0, requestId: requestIdOf(`${key.keyId}/bench/${n.counter}`), messageDigest: messagesDigest([msg]), ledgerIndex: gov.permitIndex() }, messages: [msg], lists, counters: [n.counter], ledgerConsumedCounter: 0 });
      const t0 = performance.now();
      await a!.client.call(body, 'signatureShares');
      times.push(performance.now() - t0);
    }
    return { shareMs: median(times) };
  } finally {
    for (const p of procs) await p.stop();
    cleanup();
  }
}

const tree = await benchTree();
const cert = await benchCertify();
const kernel = await benchKernel();
console.log(`checkpoint bench: ${ENTRIES} tree appends, ${CERTS} certificates, ${SIGNS} kernel signs (${profile}); medians in ms (node ${process.version}, load ${loadavg().map((x) => x.toFixed(1)).join(' ')})`);
console.log(`tree     append per entry ${f(tree.appendMs)}    ledger apply per entry (tree included) ${f(tree.applyPerEntryMs)}`);
console.log(`cosign   one node's note ${f(cert.cosignMs)}`);
console.log(`certify  3 replicas ${f(cert.certifyMs)}    reused note ${f(cert.reusedMs)}    per applied entry (${cert.entriesPerAct.toFixed(1)} entries per act) ${f(cert.perEntryMs)}`);
console.log(`kernel   checkCertificate ${f(cert.checkMs)}    one share with its certificate ${f(kernel.shareMs)} (compare bench/kernel.js "kernel: share")`);
console.log(JSON.stringify({ bench: 'checkpoint', tree, cert, kernel }));
