/**
 * A wiped node back in sync: three real node daemons (with their kernels) whose ledger holds a
 * long journal of settled acts; one node is killed, wiped with `custody node wipe`, and started
 * again. It catches up by installing a Raft snapshot that carries only the ledger's live state and
 * the archive's count and head, and fetches the archived records from its peers over the peer
 * transport (gRPC ArchiveRange), checking them against the hash chain.
 *
 *   node dist/bench/resync.js [--acts 20000] [--batch 256] [--dir DIR] [--keep]
 *   node dist/bench/resync.js --seeded DIR
 *
 * (--help prints the options and their defaults.) --acts 1000000 measures a million-act journal:
 * its build and the cluster restore that seeds it take about 50 times as long as the default's
 * (on two shared cores: 37 minutes of build, a 1.9 GiB snapshot file, about 20 minutes of restore).
 * --seeded DIR measures the journal an earlier run built and kept (--dir DIR --keep; give the same
 * --acts): DIR holds its cluster's CA, node identities, approvers and genesis and its
 * journal.snap; the run seeds a new cluster of the same nodes in DIR/seeded-<time> (new ports,
 * configs and stores, as `custody cluster restore` onto new hosts) and measures there, so one
 * long build serves any number of measurements, of any build of the node.
 *
 * The journal is built as bench/archive.ts builds one: real ledger events (every act Submitted,
 * permitted, signing set fixed, Executed, Published, Settled, on a Taproot key whose commitments
 * the ledger checks as secp256k1 points) applied through the node's application into a LevelDB
 * store, a batch at a time, as the driver writes after commit. The script's cluster is made to be
 * the daemons' cluster (same cluster id, node identities, approvers and policy), so the journal's
 * genesis is theirs. From that store the bench writes a snapshot file exactly as `custody admin
 * snapshot save` does (the same header, the application's snapshot and its archive streamed
 * record by record; node/backup/source.ts reads a running node instead), and seeds the cluster
 * with the product's own `custody cluster restore`. Then it starts the cluster, waits for a
 * leader, and wipes and restarts the third node.
 *
 * Reported: the build rate; the time from the wiped node's start until it holds the leader's
 * applied index with the whole archive readable (its newest and oldest acts read back through
 * `act show` on it); the wiped node's peak resident set (VmHWM); from its log, when it had the
 * snapshot in hand (its archive fetch began) and when the fetch ended, and where the fetch's time
 * went (waiting for answers, checking the chain, writing). A JSON line for tooling closes the output.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import { UNLIMITED_RATE_POLICY, ScriptedCluster, rid, decodeEvent, encodeEvent, keyReadyCid, seedOf, statementCid, type Act, type SigningSetMember } from '../ledger/index.js';
import { fromHex, toHex } from '../ledger/encoding.js';
import type { ApproverRoster } from '../ledger/index.js';
import { frostIdentifier } from '../ledger/signing-set.js';
import { LedgerApp, decodeVerdict, encodeLedgerCommand, levelColdStore } from '../node/ledger-app.js';
import { issueOperatorCert } from '../node/admin/roles.js';
import { SNAPSHOT_FORMAT } from '../node/backup/format.js';
import { snapshotFrames } from '../node/backup/source.js';
import { DaemonCluster } from '../node/lifecycle/daemon-cluster.js';
import { until } from '../node/probe.js';
import { LevelStorage, type AppWrite } from '../raft/storage/leveldb.js';
import { type LogCursor, settledActCommands } from './settled.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : dflt;
}

const HELP = `node dist/bench/resync.js [options]
  --acts N     settled acts in the journal (default 20000; 1000000 for the million-act figure)
  --batch N    acts applied per LevelDB batch while building the journal (default 256)
  --dir DIR    work in DIR (default: a new temporary directory, removed at the end)
  --keep       keep the temporary directory
  --seeded DIR measure the journal a run kept in DIR (--dir DIR --keep) instead of building one;
               give that run's --acts too (default: build). With --keep, the restored cluster
               (DIR/seeded-<time>) is kept too
  --restored D with --seeded DIR: measure again on the cluster a --seeded --keep run restored in
               D (one of DIR/seeded-*), without restoring it again (default: restore)
  --help       this text`;
if (process.argv.includes('--help')) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}
const ACTS = Number(arg('acts', '20000'));
const SEEDED = arg('seeded', '');
const RESTORED = arg('restored', '');
const BATCH = Number(arg('batch', '256'));
const KEEP = process.argv.includes('--keep');
const CLI = fileURLToPath(new URL('../node/cli.js', import.meta.url));
const say = (s: string): void => void process.stdout.write(`${s}\n`);
const mib = (kib: number): number => Math.round((kib / 1024) * 10) / 10;

function cli(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr.on('data', (b: Buffer) => (out += b.toString()));
    p.on('exit', (code) => resolve({ code, out }));
  });
}

/** CPU seconds a process (or, with `file`, one of its threads) has used, user and system, from /proc. */
function cpuOf(pid: number | undefined, file = `/proc/${pid}/stat`): number {
  if (pid === undefined) return 0;
  const f = readFileSync(file, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' '); // fields from the 3rd on (the name may hold spaces)
  return (Number(rest[11]) + Number(rest[12])) / 100; // utime and stime, in USER_HZ (100 on Linux)
}

/** CPU seconds of each of a process's threads, labelled `main` or by name and thread id (the thread pool's, LevelDB's, the GC's). */
function threadCpuOf(pid: number | undefined): Map<string, number> {
  const out = new Map<string, number>();
  if (pid === undefined) return out;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const label = tid === String(pid) ? 'main' : `${name}:${tid}`;
      out.set(label, cpuOf(Number(tid), `/proc/${pid}/task/${tid}/stat`));
    } catch {
      // the thread ended between the listing and the read: its time is in no other thread's
    }
  }
  return out;
}

/** Peak and current resident set of a process, and the current split into anonymous and file pages, in KiB (Linux /proc). */
function rssOf(pid: number): { peakKiB: number; nowKiB: number; anonKiB: number; fileKiB: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? 0);
  return { peakKiB: kib('VmHWM'), nowKiB: kib('VmRSS'), anonKiB: kib('RssAnon'), fileKiB: kib('RssFile') };
}

/** A script whose cluster is `c`'s: its genesis event is byte for byte the one the daemons start from. */
function scriptOf(c: DaemonCluster): ScriptedCluster {
  const s = new ScriptedCluster({ label: 'bench-resync', clusterId: c.genesis.clusterId, policy: c.genesis.policy, stepMs: 5 });
  s.nodes.splice(0, s.nodes.length, ...c.genesis.nodes.map((info) => ({ info, secretKey: fromHex(readFileSync(join(c.dir, `${info.id}.identity`), 'utf8').trim()) })));
  s.approvers.splice(0, s.approvers.length, ...c.approvers);
  s.keyring.splice(0, s.keyring.length, ...c.approvers, ...c.custodians);
  (s as { roster: ApproverRoster }).roster = c.genesis.roster;
  if (toHex(encodeEvent(s.genesisEvent())) !== readFileSync(join(c.dir, 'genesis.hex'), 'utf8').trim()) throw new Error('bench: the script\'s genesis is not the cluster\'s');
  return s;
}

async function applyBatch(app: LedgerApp, storage: LevelStorage, commands: readonly Uint8Array[], what: string): Promise<void> {
  await app.prepare(commands);
  const writes: AppWrite[] = [];
  commands.forEach((c, i) => {
    const r = app.apply(0, c);
    const v = decodeVerdict(r.result);
    if (!v.ok) throw new Error(`bench: ${what} entry ${i} refused: ${v.type ?? '?'} ${v.reason ?? ''} ${v.detail}`);
    for (const w of r.writes) writes.push({ key: `sm/${w.key}`, value: w.value });
  });
  for (const w of app.finish()) writes.push({ key: `sm/${w.key}`, value: w.value });
  await storage.persist({ hardState: null, entries: [], snapshot: null, app: writes, sync: false });
}

/** Builds the journal into a store of its own and writes it as a snapshot file; returns the ledger's entry count. */
async function buildJournal(c: DaemonCluster, dir: string, file: string): Promise<{ entries: number; seconds: number }> {
  const s = scriptOf(c);
  const ids = c.genesis.nodes.map((n) => n.id);
  s.genesis();
  const tpSecret = seedOf('bench-resync/taproot');
  const tpKey = secp256k1.getPublicKey(tpSecret, true);
  s.decide({ kind: 'DkgAuthorized', keyId: 'k', scheme: 'taproot', network: 'bitcoin-regtest', threshold: 2, participants: ids });
  for (const p of ids) s.round1(p, 'k', 0);
  for (const p of ids) s.keyReady(p, 'k', 0, tpKey);
  const ready = keyReadyCid('k', 0, tpKey, ids.map((p) => statementCid(s.readyStatement(p, 'k', 0, tpKey))));
  s.entry({ type: 'KeyObjectPublished', keyId: 'k', keyEpoch: 0, keyReadyCid: ready });
  s.decide({ kind: 'KeyActivated', keyId: 'k', keyEpoch: 0, keyReadyCid: ready });
  if (s.results.some((r) => !r.ok)) throw new Error(`bench: setup refused: ${JSON.stringify(s.results.find((r) => !r.ok), (_, v) => (typeof v === 'bigint' ? String(v) : v))}`);
  const custodian = c.custodians[0]!;
  const act: Act = s.act('k', { amount: 1n, destination: 'bc1-treasury', initiator: custodian.id });
  const messages = s.facts(act).messages;
  const point = (label: string): Uint8Array => secp256k1.getPublicKey(seedOf(`bench-resync/nonce/${label}`), true);
  const commitments: SigningSetMember[] = ids.slice(0, 2).map((nodeId, i) => ({
    nodeId, identifier: frostIdentifier('taproot', i + 1), nonces: messages.map((_, j) => ({ counter: j + 1, hiding: point(`${nodeId}/d/${j}`), binding: point(`${nodeId}/e/${j}`) })),
  }));
  const signatures = messages.map((m) => schnorr.sign(m, tpSecret, new Uint8Array(32)));
  const proposer = s.proposer(ids[0]);

  const storage = await LevelStorage.open({ dir, bootstrapConf: { voters: ids, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false }, recoveryHint: 'bench' });
  const app = new LedgerApp({ cold: levelColdStore(storage) });
  await applyBatch(app, storage, s.log.map((e) => encodeLedgerCommand(e.stampMs, e.event)), 'setup');
  let nowMs = s.nowMs;
  const t0 = performance.now();
  for (let done = 0; done < ACTS; done += BATCH) {
    const n = Math.min(BATCH, ACTS - done);
    const commands: Uint8Array[] = [];
    const at: LogCursor = { index: app.state.index, nowMs };
    for (let j = 0; j < n; j++) settledActCommands({ opId: rid(`act-${done + j}`), act, commitments, signatures, confirmation: `tx-${done + j}` }, { clusterId: s.clusterId, proposer, stepMs: 200, custodian, sign: (e) => s.signed(e) }, at, commands);
    nowMs = at.nowMs;
    await applyBatch(app, storage, commands, `act ${done}..`);
    if ((done + n) % Math.max(BATCH, Math.floor(ACTS / 10 / BATCH) * BATCH) === 0 || done + n === ACTS) {
      say(`  ${String(done + n).padStart(8)} acts settled  ${((done + n) / ((performance.now() - t0) / 1000)).toFixed(0)} acts/s`);
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  await storage.persist({ hardState: null, entries: [], snapshot: null, app: [], sync: true });
  const cl = app.state.cluster;
  if (cl === null || cl.archived.count !== ACTS) throw new Error(`bench: expected ${ACTS} archived acts, got ${cl?.archived.count}`);
  // The snapshot file, as `custody admin snapshot save` writes it. Raft index: one entry per
  // ledger entry past the bootstrap point, in term 1 (the restore starts the new cluster there).
  const out = createWriteStream(file);
  const write = (b: Uint8Array): Promise<void> => new Promise((res, rej) => out.write(b, (e) => (e ? rej(e) : res())));
  for await (const f of snapshotFrames({
    format: SNAPSHOT_FORMAT, clusterId: s.clusterId, incarnation: '', index: app.state.index + 1, term: 1, stateRoot: app.root(), ledgerIndex: app.state.index,
    membership: { voters: ids, learners: [] }, nodes: ids, takenFrom: ids[0] as string, takenAtMs: Date.now(),
  }, app.snapshot(), { count: cl.archived.count, records: app.archiveRecords(0, cl.archived.count) })) await write(f);
  await new Promise<void>((res, rej) => out.end((e?: Error | null) => (e ? rej(e) : res())));
  await storage.close();
  return { entries: app.state.index, seconds };
}

/**
 * The cluster a kept run built its journal for, as DaemonCluster.restoredFrom reads it: its
 * directory (node identities), CA, approvers, genesis and kernel home.
 */
function keptCluster(dir: string): DaemonCluster {
  const genesis = decodeEvent(fromHex(readFileSync(join(dir, 'genesis.hex'), 'utf8').trim()));
  if (genesis.type !== 'ClusterGenesis') throw new Error(`bench: ${dir}/genesis.hex is not a cluster genesis`);
  const approvers = readdirSync(join(dir, 'approvers')).filter((f) => f.endsWith('.key')).sort().map((f) => {
    const k = JSON.parse(readFileSync(join(dir, 'approvers', f), 'utf8')) as { id: string; secretKey: string; publicKey: string };
    return { id: k.id, secretKey: fromHex(k.secretKey), publicKey: fromHex(k.publicKey) };
  });
  const nodes = genesis.nodes.map((n) => ({ id: n.id, admin: '', daemon: null, kernel: null }));
  return { dir, genesis, approvers, certs: join(dir, 'certs'), kernelHome: dir, nodes, members: nodes } as unknown as DaemonCluster;
}

async function main(): Promise<void> {
  let root: string;
  let c: DaemonCluster;
  let built: { entries: number; seconds: number } = { entries: 0, seconds: 0 };
  let file: string;
  if (RESTORED !== '' && SEEDED === '') throw new Error('bench: --restored needs --seeded (the directory of the kept journal)');
  if (SEEDED !== '') {
    file = join(SEEDED, 'journal.snap');
    root = RESTORED !== '' ? RESTORED : join(SEEDED, `seeded-${Date.now()}`);
    if (RESTORED === '') mkdirSync(root);
    c = await DaemonCluster.restoredFrom(keptCluster(SEEDED), root, 5_000);
    say(`resync bench: the journal kept in ${SEEDED} (${(statSync(file).size / 1048576).toFixed(1)} MiB), 3 daemons, in ${root}`);
  } else {
    root = arg('dir', '') || mkdtempSync(join(tmpdir(), 'custody-bench-resync-'));
    say(`resync bench: ${ACTS} settled acts, 3 daemons, in ${root}`);
    // No rolling window: the ledger keeps no admissions for the policy.
    const policy = UNLIMITED_RATE_POLICY;
    c = await DaemonCluster.create(root, policy, 3, 5_000);
    issueOperatorCert(c.certs, 'audra', 'auditor');
    file = join(root, 'journal.snap');
    built = await buildJournal(c, join(root, 'build'), file);
    say(`built: ${ACTS} settled acts (${built.entries} ledger entries) in ${built.seconds.toFixed(1)} s (${(ACTS / built.seconds).toFixed(0)} acts/s); snapshot file ${(statSync(file).size / 1048576).toFixed(1)} MiB`);
    rmSync(join(root, 'build'), { recursive: true, force: true });
  }

  let result: Record<string, unknown> = {};
  try {
    if (RESTORED === '') {
      const restored = await cli(['cluster', 'restore', '--snapshot', file, '--config', root]);
      if (restored.code !== 0) throw new Error(`bench: cluster restore failed: ${restored.out}`);
      say(`seeded with custody cluster restore: ${restored.out.trim().split('\n').at(-1) ?? ''}`);
    } else say(`measuring again on the cluster restored in ${root}`);
    await c.start('audra', CLI, 300_000);
    const probe = c.client('n1', 'audra');
    const leader = await until('a leader', async () => {
      const s = await probe.status().catch(() => null);
      return s !== null && s.leader !== '' ? s : null;
    }, 120_000);
    probe.close();
    say(`cluster up: leader ${leader.leader}, applied ${leader.applied}`);

    await c.kill('n3');
    const wiped = await cli(['node', 'wipe', '--config', join(root, 'n3.yaml'), '--yes']);
    if (wiped.code !== 0) throw new Error(`bench: node wipe failed: ${wiped.out}`);
    await c.startKernel('n3');
    const t0 = performance.now();
    const startedAt = Date.now();
    const peersCpu0 = c.members.filter((n) => n.id !== 'n3').map((n) => cpuOf(n.daemon?.pid));
    const logFrom = statSync(join(root, 'n3.log')).size; // what n3 logged before the wipe is not read
    const d = c.startDaemon('n3');
    const n3 = c.client('n3', 'audra');
    let peakKiB = 0;
    const caught = await until('the wiped node holds the leader\'s applied index and the archive', async () => {
      if (d.pid !== undefined) peakKiB = Math.max(peakKiB, rssOf(d.pid).peakKiB);
      const s = await n3.status().catch(() => null);
      if (s === null || s.applied < leader.applied) return null;
      const newest = await n3.showAct(rid(`act-${ACTS - 1}`)).catch(() => null);
      return newest?.state === 'Settled' ? s : null;
    }, 1_800_000, 100);
    const syncMs = performance.now() - t0;
    const threads = threadCpuOf(d.pid);
    const cpu = { n3: cpuOf(d.pid), peers: c.members.filter((n) => n.id !== 'n3').map((n, i) => cpuOf(n.daemon?.pid) - (peersCpu0[i] as number)) };
    const oldest = await n3.showAct(rid('act-0'));
    if (oldest.state !== 'Settled') throw new Error('bench: the oldest act does not read back on the wiped node');
    if (d.pid !== undefined) peakKiB = Math.max(peakKiB, rssOf(d.pid).peakKiB);
    const rss = d.pid !== undefined ? rssOf(d.pid) : { nowKiB: 0, anonKiB: 0, fileKiB: 0 };
    const now = rss.nowKiB;
    n3.close();
    const log = readFileSync(join(root, 'n3.log')).subarray(logFrom).toString('utf8');
    const fetched = /archive: fetched records (\d+)\.\.(\d+) from (\S+)/.exec(log);
    // Phases from the node's own log (every line starts with its ISO time): the snapshot in hand
    // (the archive fetch begins), the archive fetched; the rest is installing and the log catch-up.
    const at = (re: RegExp): number | null => {
      const m = new RegExp(`^(\\S+) .*${re.source}`, 'm').exec(log);
      return m ? (Date.parse(m[1] as string) - startedAt) / 1000 : null;
    };
    const phases = { snapshotInHand: at(/archive: the snapshot counts/), archiveFetched: at(/archive: fetched records/) };
    const timing = /archive: fetched records \S+ from \S+ in (.*)$/m.exec(log)?.[1];
    say(`n3 phases (s from its start): snapshot in hand ${phases.snapshotInHand ?? '?'}, archive fetched ${phases.archiveFetched ?? '?'}, in sync ${(syncMs / 1000).toFixed(1)}${timing ? `; fetch: ${timing}` : ''}`);
    say(`wiped node n3 in sync after ${(syncMs / 1000).toFixed(1)} s: applied ${caught.applied}, ${fetched ? `archive records ${fetched[1]}..${fetched[2]} fetched from ${fetched[3]}` : 'no archive fetch logged'}; act-0 and act-${ACTS - 1} read back Settled`);
    say(`n3 resident set: peak ${mib(peakKiB)} MiB, now ${mib(now)} MiB (${mib(rss.anonKiB)} MiB anonymous, ${mib(rss.fileKiB)} MiB pages of files it maps: LevelDB maps its table files to read them)`);
    say(`CPU while n3 caught up: n3 ${cpu.n3.toFixed(1)} s, its peers ${cpu.peers.map((x) => x.toFixed(1)).join(' s and ')} s (two cores: at most ${(2 * syncMs / 1000).toFixed(0)} s in all)`);
    say(`n3's threads: ${[...threads].sort((a, b) => b[1] - a[1]).filter(([, v]) => v >= 0.5).map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(', ')}`);
    result = { bench: 'resync', acts: ACTS, buildSeconds: Math.round(built.seconds * 10) / 10, snapshotFileMiB: Math.round(statSync(file).size / 104857.6) / 10, syncSeconds: Math.round(syncMs / 100) / 10, peakRssMiB: mib(peakKiB), rssMiB: mib(now), cpuSeconds: { n3: Math.round(cpu.n3 * 10) / 10, peers: cpu.peers.map((x) => Math.round(x * 10) / 10) }, fetched: fetched ? Number(fetched[2]) + 1 : 0, ...phases };
  } finally {
    await c.stop();
    if (!KEEP && RESTORED === '' && arg('dir', '') === '') rmSync(root, { recursive: true, force: true });
  }
  say(JSON.stringify(result));
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
