/**
 * Capacity: a node holding a long journal of settled acts, on its real LevelDB store.
 *
 *   node dist/bench/archive.js [--acts 200000] [--batch 64] [--lookups 2000] [--evidence 200] [--dir DIR] [--keep]
 *   node dist/bench/archive.js --measure --dir DIR [--lookups 2000] [--evidence 200]
 *
 * How long: the build runs at 850 to 1,000 acts per CPU second of the process (LevelDB's threads
 * included; slower as the store grows and compactions deepen; measured on a 2-core x86 VM), which
 * is its wall rate when it has a core to itself: the default 200,000 acts take about 3 minutes
 * (172 CPU s, 195 s of wall time), --acts 1000000 about 20 minutes (1,176 CPU s; 50 minutes of wall time on a machine
 * shared with other work), plus under a minute of lookups and evidence exports. The progress
 * lines give both rates: acts/cpu-s over acts/s is how much of a core the bench had.
 * --measure skips the build and measures a store an earlier run left (--dir with --keep, or a run
 * stopped part way: it holds the acts built so far): the restart, the lookups and the exports,
 * in a fresh process, so the RSS reported is that of a node that just opened the store.
 *
 * Builds a journal of `acts` settled signing acts by applying real ledger events through the
 * node's application (node/ledger-app.ts LedgerApp with its LevelDB archive) and writing each
 * batch of `batch` acts with LevelStorage.persist, as the Raft driver does after commit, without
 * Raft round trips. Every act goes Submitted -> Admitted -> PendingRemote -> (signing set fixed)
 * -> Executed -> Published -> Settled, with every check the ledger makes:
 *   - one act in `ed25519Every` (default 100) is on a 2-of-3 Ed25519 key: its ActExecuted carries
 *     a real FROST signature over the act's digest and the fixed signing set, which the ledger
 *     verifies (signature and group commitment, with noble point arithmetic: ~15 ms an act);
 *   - the others are on a 2-of-3 Taproot key, whose signing-set commitments the ledger checks as
 *     secp256k1 points and whose signature it leaves to the publisher (it carries a real BIP340
 *     signature by the group key here).
 * Acts of one key share one digest and one signing set, so one signature serves them all: the
 * ledger checks signatures, not nonce reuse (the kernels do).
 *
 * Reported: acts/s while building; the process's resident set (RSS) and V8 heap as the journal
 * grows, and the peak; after a restart of the application on the same store (as a node restarts):
 * the time to open and load it and the RSS; latency of `act show` (a read of an ended act from the
 * archive) and of an evidence export (the bundle built from the archived act, then verified
 * offline as an auditor would), p50/p99 over random acts. A JSON line for tooling closes the output.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LevelStorage } from '../raft/storage/leveldb.js';
import {
  UNLIMITED_RATE_POLICY, ScriptedCluster, rid, keyReadyCid, seedOf, statementCid, stateRoot, toHex, verifyEvidenceBundle,
  type Act, type SigningSetMember,
} from '../ledger/index.js';
import { frostIdentifier } from '../ledger/signing-set.js';
import { LedgerApp, decodeVerdict, encodeLedgerCommand, levelColdStore } from '../node/ledger-app.js';
import { evidenceBundleOf, verifyBundleSignature } from '../node/lifecycle/evidence.js';
import type { AppWrite } from '../raft/storage/leveldb.js';
import { type LogCursor, settledActCommands } from './settled.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : dflt;
}

const ACTS = Number(arg('acts', '200000'));
const BATCH = Number(arg('batch', '64'));
const LOOKUPS = Number(arg('lookups', '2000'));
const EVIDENCE = Number(arg('evidence', '200'));
const KEEP = process.argv.includes('--keep');
const MEASURE = process.argv.includes('--measure');
const ED25519_EVERY = Number(arg('ed25519Every', '100'));
const PROGRESS_MS = 20_000;
const conf = { voters: ['n1'], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };

const mib = (b: number): number => Math.round((b / 1048576) * 10) / 10;
const say = (s: string): void => void process.stdout.write(`${s}\n`);

/**
 * The resident set split as Linux counts it (/proc/self/status): anonymous memory (heaps, V8's
 * and LevelDB's caches) and file pages (LevelDB maps its table files, so pages a read touched
 * count as resident until the kernel reclaims them, as it does page cache). Empty elsewhere.
 */
function rssSplit(): string {
  try {
    const st = readFileSync('/proc/self/status', 'utf8');
    const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(st)?.[1] ?? NaN);
    return ` (anonymous ${mib(kb('RssAnon') * 1024)} MiB, mapped files ${mib(kb('RssFile') * 1024)} MiB)`;
  } catch {
    return '';
  }
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
}

/** Applies commands through the application and writes them as the driver does: one batch. */
async function applyBatch(app: LedgerApp, storage: LevelStorage, commands: readonly Uint8Array[], check: (i: number, ok: boolean, detail: string) => void): Promise<void> {
  await app.prepare(commands);
  const writes: AppWrite[] = [];
  commands.forEach((c, i) => {
    const r = app.apply(0, c);
    const v = decodeVerdict(r.result);
    check(i, v.ok, `${v.type ?? '?'} ${v.reason ?? ''} ${v.detail}`);
    for (const w of r.writes) writes.push({ key: `sm/${w.key}`, value: w.value });
  });
  for (const w of app.finish()) writes.push({ key: `sm/${w.key}`, value: w.value });
  await storage.persist({ hardState: null, entries: [], snapshot: null, app: writes, sync: false });
}

interface Built {
  readonly root: string;
  readonly buildS: number;
  readonly buildCpuS: number;
  readonly peak: number;
  readonly rss: readonly { acts: number; rssMiB: number; heapMiB: number }[];
}

/** Builds the journal into the store at `dir` and closes it. */
async function build(dir: string): Promise<Built> {
  say(`archive bench: ${ACTS} settled acts into ${dir}`);

  // Genesis, an active 2-of-3 Ed25519 key, and one act signed for real to take its signing set and
  // signature from. The policy has no rolling window: the ledger keeps no admissions for it.
  const policy = UNLIMITED_RATE_POLICY;
  const s = new ScriptedCluster({ label: 'bench-archive', policy, stepMs: 5 });
  s.genesis();
  s.createKey('k1');
  const setup = s.log.length;
  const act: Act = s.act('k1', { amount: 1n });
  s.submit('template', act);
  s.issuePermit('template');
  s.execute('template');
  const tpl = s.state.cluster?.ops[rid('template')];
  if (tpl?.state !== 'Executed' || tpl.signingSet === null || tpl.signatures === null) throw new Error('bench setup: the template act did not execute');
  // The Taproot key: a DKG whose participants state a real secp256k1 group key.
  const tpSecret = seedOf('bench-archive/taproot');
  const tpKey = secp256k1.getPublicKey(tpSecret, true);
  const ps = ['node-0', 'node-1', 'node-2'];
  const must = (r: { ok: boolean }, what: string): void => {
    if (!r.ok) throw new Error(`bench setup: ${what} refused: ${JSON.stringify(r, (_, v) => (typeof v === 'bigint' ? String(v) : v))}`);
  };
  must(s.decide({ kind: 'DkgAuthorized', keyId: 'k2', scheme: 'taproot', network: 'bitcoin-regtest', threshold: 2, participants: ps }), 'DkgAuthorized k2');
  for (const p of ps) must(s.round1(p, 'k2', 0), 'round 1');
  for (const p of ps) must(s.keyReady(p, 'k2', 0, tpKey), 'KeyReady');
  const tpReady = keyReadyCid('k2', 0, tpKey, ps.map((p) => statementCid(s.readyStatement(p, 'k2', 0, tpKey))));
  must(s.entry({ type: 'KeyObjectPublished', keyId: 'k2', keyEpoch: 0, keyReadyCid: tpReady }).result, 'KeyObjectPublished k2');
  must(s.decide({ kind: 'KeyActivated', keyId: 'k2', keyEpoch: 0, keyReadyCid: tpReady }), 'KeyActivated k2');
  const tpAct: Act = s.act('k2', { amount: 1n });
  const point = (label: string): Uint8Array => secp256k1.getPublicKey(seedOf(`bench-archive/nonce/${label}`), true);
  const tpMessages = s.facts(tpAct).messages;
  const tpSet: SigningSetMember[] = ps.slice(0, 2).map((nodeId, i) => ({
    nodeId, identifier: frostIdentifier('taproot', i + 1), nonces: tpMessages.map((_, j) => ({ counter: j + 1, hiding: point(`${nodeId}/d/${j}`), binding: point(`${nodeId}/e/${j}`) })),
  }));
  const tpSignatures = tpMessages.map((m) => schnorr.sign(m, tpSecret, new Uint8Array(32)));
  const kinds = {
    ed25519: { act, commitments: tpl.signingSet.commitments as readonly SigningSetMember[], signatures: tpl.signatures },
    taproot: { act: tpAct, commitments: tpSet as readonly SigningSetMember[], signatures: tpSignatures },
  };
  const clusterId = s.clusterId;
  const proposer = s.proposer('node-0');

  const storage = await LevelStorage.open({ dir, bootstrapConf: conf, recoveryHint: 'bench' });
  const app = new LedgerApp({ cold: levelColdStore(storage) });
  const fail = (i: number, ok: boolean, detail: string): void => {
    if (!ok) throw new Error(`bench: setup entry ${i} refused: ${detail}`);
  };
  // Everything but the template act (applied only by the script, to sign it).
  const tplEntries = new Set(s.log.slice(setup, setup + 4));
  await applyBatch(app, storage, s.log.filter((e) => !tplEntries.has(e)).map((e) => encodeLedgerCommand(e.stampMs, e.event)), fail);

  let nowMs = s.nowMs;
  const rss: { acts: number; rssMiB: number; heapMiB: number }[] = [];
  let peak = 0;
  const sample = (n: number): void => {
    const m = process.memoryUsage();
    peak = Math.max(peak, m.rss);
    rss.push({ acts: n, rssMiB: mib(m.rss), heapMiB: mib(m.heapUsed) });
  };
  const every = Math.max(BATCH, Math.floor(ACTS / 20 / BATCH) * BATCH);
  const t0 = performance.now();
  // CPU seconds of the whole process (every thread, LevelDB's included): on a shared machine the
  // wall-clock rate depends on the other load, the rate per CPU second much less.
  const cpu0 = process.cpuUsage();
  const cpuS = (): number => {
    const u = process.cpuUsage(cpu0);
    return (u.user + u.system) / 1e6;
  };
  let lastLine = t0;
  for (let done = 0; done < ACTS; done += BATCH) {
    const n = Math.min(BATCH, ACTS - done);
    const commands: Uint8Array[] = [];
    // 200 ms apart (the policy keeps no window of admissions).
    const at: LogCursor = { index: app.state.index, nowMs };
    for (let j = 0; j < n; j++) {
      const kind = (done + j) % ED25519_EVERY === 0 ? kinds.ed25519 : kinds.taproot;
      settledActCommands({ opId: rid(`act-${done + j}`), ...kind, confirmation: `tx-${done + j}` }, { clusterId, proposer, stepMs: 200, custodian: s.keyOf(kind.act.initiator), sign: (e) => s.signed(e) }, at, commands);
    }
    nowMs = at.nowMs;
    await applyBatch(app, storage, commands, (i, ok, detail) => {
      if (!ok) throw new Error(`bench: act ${done + Math.floor(i / 6)} entry ${i % 6} refused: ${detail}`);
    });
    // A line at each twentieth of the run, and at least every PROGRESS_MS in between.
    if ((done + n) % every === 0 || done + n === ACTS || performance.now() - lastLine >= PROGRESS_MS) {
      lastLine = performance.now();
      sample(done + n);
      const el = (performance.now() - t0) / 1000;
      say(`  ${String(done + n).padStart(8)} acts  ${((done + n) / el).toFixed(0).padStart(5)} acts/s  ${((done + n) / cpuS()).toFixed(0).padStart(5)} acts/cpu-s  rss ${rss[rss.length - 1]?.rssMiB} MiB  heap ${rss[rss.length - 1]?.heapMiB} MiB`);
    }
  }
  const buildS = (performance.now() - t0) / 1000;
  const buildCpuS = cpuS();
  await storage.persist({ hardState: null, entries: [], snapshot: null, app: [], sync: true });
  const c = app.state.cluster;
  if (c === null || c.archived.count !== ACTS || c.inFlight !== 0) throw new Error(`bench: expected ${ACTS} ended acts and none in flight, got ${c?.archived.count} and ${c?.inFlight}`);
  const root = toHex(stateRoot(app.state));
  say(`built: ${ACTS} settled acts in ${buildS.toFixed(1)} s (${(ACTS / buildS).toFixed(0)} acts/s, ${(ACTS * 6 / buildS).toFixed(0)} entries/s; ${buildCpuS.toFixed(1)} CPU s, ${(ACTS / buildCpuS).toFixed(0)} acts per CPU second); acts in memory: ${Object.keys(c.ops).length}; peak RSS ${mib(peak)} MiB`);
  await storage.close();
  return { root, buildS, buildCpuS, peak, rss };
}

async function main(): Promise<void> {
  const dir = arg('dir', '') || (await mkdtemp(join(tmpdir(), 'custody-bench-archive-')));
  if (MEASURE && arg('dir', '') === '') throw new Error('bench: --measure needs --dir, a store this bench built');
  const built = MEASURE ? null : await build(dir);
  let peak = built?.peak ?? 0;

  // Restart on the same store, as a node does: state and applied index from disk, archive cold.
  const tOpen = performance.now();
  const again = await LevelStorage.open({ dir, bootstrapConf: conf, recoveryHint: 'bench' });
  const app = new LedgerApp({ cold: levelColdStore(again) });
  app.load((k) => again.appValue(`sm/${k}`), function* () {
    for (const k of again.appKeys()) if (k.startsWith('sm/')) yield k.slice(3);
  });
  const openMs = performance.now() - tOpen;
  if (built !== null && toHex(stateRoot(app.state)) !== built.root) throw new Error('bench: the reopened store has another root');
  // Acts act-0 .. act-(acts-1), in the order they were built (a store cut short holds a prefix).
  const acts = app.state.cluster?.archived.count ?? 0;
  if (acts === 0) throw new Error(`bench: no settled acts in ${dir}`);
  if (MEASURE) say(`archive bench: measuring the ${acts} settled acts in ${dir}`);
  const afterOpen = process.memoryUsage();
  say(`restart: store opened and state loaded in ${openMs.toFixed(0)} ms; RSS ${mib(afterOpen.rss)} MiB${rssSplit()}, V8 heap ${mib(afterOpen.heapUsed)} MiB`);

  // Lookups of random ended acts from the archive.
  let x = 0x9e3779b9;
  const rnd = (): number => {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    return (x >>> 0) % acts;
  };
  const lookups: number[] = [];
  for (let i = 0; i < LOOKUPS; i++) {
    const id = rid(`act-${rnd()}`);
    const t1 = performance.now();
    const op = await app.act(id);
    lookups.push(performance.now() - t1);
    if (op?.state !== 'Settled') throw new Error(`bench: ${id} did not read back Settled`);
  }
  const exports: number[] = [];
  for (let i = 0; i < EVIDENCE; i++) {
    // Acts whose signature the ledger verified: their bundles carry a signature an auditor checks.
    const id = rid(`act-${Math.floor(rnd() / ED25519_EVERY) * ED25519_EVERY}`);
    const t1 = performance.now();
    const op = await app.act(id);
    const bundle = JSON.parse(JSON.stringify(evidenceBundleOf(app.state.cluster!, op!, null)));
    const ok = verifyEvidenceBundle(bundle).ok && verifyBundleSignature(bundle).ok;
    exports.push(performance.now() - t1);
    if (!ok) throw new Error(`bench: the evidence of ${id} does not verify`);
  }
  const m = process.memoryUsage();
  peak = Math.max(peak, m.rss);
  say(`act show from the archive: p50 ${percentile(lookups, 50).toFixed(3)} ms  p99 ${percentile(lookups, 99).toFixed(3)} ms  (${LOOKUPS} random acts)`);
  say(`evidence export + offline verify: p50 ${percentile(exports, 50).toFixed(2)} ms  p99 ${percentile(exports, 99).toFixed(2)} ms  (${EVIDENCE} random acts)`);
  say(`RSS at the end ${mib(m.rss)} MiB${rssSplit()}, V8 heap ${mib(m.heapUsed)} MiB; peak RSS ${mib(peak)} MiB`);
  await again.close();
  if (!KEEP && !MEASURE && arg('dir', '') === '') await rm(dir, { recursive: true, force: true });
  const b = built === null ? {} : {
    buildSeconds: Math.round(built.buildS * 10) / 10, actsPerSecond: Math.round(acts / built.buildS), buildCpuSeconds: Math.round(built.buildCpuS * 10) / 10, rss: built.rss,
  };
  say(JSON.stringify({
    bench: 'archive', acts, ed25519Every: ED25519_EVERY, ...b, peakRssMiB: mib(peak),
    restartOpenMs: Math.round(openMs), restartRssMiB: mib(afterOpen.rss), endRssMiB: mib(m.rss),
    lookupMs: { p50: percentile(lookups, 50), p99: percentile(lookups, 99) }, evidenceMs: { p50: percentile(exports, 50), p99: percentile(exports, 99) },
  }));
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
