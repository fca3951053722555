/**
 * A cluster whose ledger clock is far behind real time, on real daemons: its journal (genesis, a
 * key made and activated) was written two hours ago, saved as `custody admin snapshot save` writes
 * a snapshot file, and seeded with `custody cluster restore`. Every stamp of the restarted cluster
 * is then more than ledger.stampAheadMs past the ledger clock; the leader's catch-up tick, carrying
 * a majority of the voters' signed clock readings (peer RPC ClockReading), brings it back, and the
 * cluster accepts acts again within a bounded wait with no governance decision.
 */
import t from 'tap';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { ScriptedCluster, keyReadyCid, seedOf, statementCid } from '../../ledger/index.js';
import type { ApproverRoster } from '../../ledger/index.js';
import { fromHex, toHex } from '../../ledger/encoding.js';
import { encodeEvent } from '../../ledger/events.js';
import { ledger as limits } from '../../proto/limits.js';
import { isCustodyError } from '../../proto/errors.js';
import type { AdminClient } from '../../node/admin/client.js';
import { issueOperatorCert } from '../../node/admin/roles.js';
import { SNAPSHOT_FORMAT } from '../../node/backup/format.js';
import { snapshotFrames } from '../../node/backup/source.js';
import { LedgerApp, decodeVerdict, encodeLedgerCommand, levelColdStore } from '../../node/ledger-app.js';
import { DaemonCluster } from '../../node/lifecycle/daemon-cluster.js';
import { until } from '../../node/probe.js';
import { LevelStorage, type AppWrite } from '../../raft/storage/leveldb.js';
import { CLI, OPERATORS, POLICY, runCli as cli, actTx, labelled, rid } from './harness.js';

const BEHIND_MS = 2 * 3600 * 1000;

/** A script whose cluster is `c`'s (its genesis is byte for byte the daemons'), its clock `startMs`. */
function scriptOf(c: DaemonCluster, startMs: number): ScriptedCluster {
  const s = new ScriptedCluster({ label: 'clock-catchup', clusterId: c.genesis.clusterId, policy: c.genesis.policy, stepMs: 5, startMs });
  s.nodes.splice(0, s.nodes.length, ...c.genesis.nodes.map((info) => ({ info, secretKey: fromHex(readFileSync(join(c.dir, `${info.id}.identity`), 'utf8').trim()) })));
  s.approvers.splice(0, s.approvers.length, ...c.approvers);
  s.keyring.splice(0, s.keyring.length, ...c.approvers, ...c.custodians);
  (s as { roster: ApproverRoster }).roster = c.genesis.roster;
  if (toHex(encodeEvent(s.genesisEvent())) !== readFileSync(join(c.dir, 'genesis.hex'), 'utf8').trim()) throw new Error('the script\'s genesis is not the cluster\'s');
  return s;
}

/** The journal applied into a store of its own, written as a snapshot file; returns the ledger clock it ends at. */
async function oldSnapshot(c: DaemonCluster, dir: string, file: string, startMs: number): Promise<number> {
  const s = scriptOf(c, startMs);
  const ids = c.genesis.nodes.map((n) => n.id);
  s.genesis();
  const tpKey = secp256k1.getPublicKey(seedOf('clock-catchup/taproot'), true);
  s.decide({ kind: 'DkgAuthorized', keyId: 'k', scheme: 'taproot', network: 'bitcoin-regtest', threshold: 2, participants: ids });
  for (const p of ids) s.round1(p, 'k', 0);
  for (const p of ids) s.keyReady(p, 'k', 0, tpKey);
  const ready = keyReadyCid('k', 0, tpKey, ids.map((p) => statementCid(s.readyStatement(p, 'k', 0, tpKey))));
  s.entry({ type: 'KeyObjectPublished', keyId: 'k', keyEpoch: 0, keyReadyCid: ready });
  s.decide({ kind: 'KeyActivated', keyId: 'k', keyEpoch: 0, keyReadyCid: ready });
  if (s.results.some((r) => !r.ok)) throw new Error('journal refused');
  const storage = await LevelStorage.open({ dir, bootstrapConf: { voters: ids, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false }, recoveryHint: 'test' });
  const app = new LedgerApp({ cold: levelColdStore(storage) });
  const commands = s.log.map((e) => encodeLedgerCommand(e.stampMs, e.event));
  await app.prepare(commands);
  const writes: AppWrite[] = [];
  for (const cmd of commands) {
    const r = app.apply(0, cmd);
    if (!decodeVerdict(r.result).ok) throw new Error('journal entry refused');
    for (const w of r.writes) writes.push({ key: `sm/${w.key}`, value: w.value });
  }
  for (const w of app.finish()) writes.push({ key: `sm/${w.key}`, value: w.value });
  await storage.persist({ hardState: null, entries: [], snapshot: null, app: writes, sync: true });
  const cl = app.state.cluster!;
  const out = createWriteStream(file);
  const write = (b: Uint8Array): Promise<void> => new Promise((res, rej) => out.write(b, (e) => (e ? rej(e) : res())));
  for await (const f of snapshotFrames({
    format: SNAPSHOT_FORMAT, clusterId: s.clusterId, incarnation: '', index: app.state.index + 1, term: 1, stateRoot: app.root(), ledgerIndex: app.state.index,
    membership: { voters: ids, learners: [] }, nodes: ids, takenFrom: ids[0] as string, takenAtMs: startMs,
  }, app.snapshot(), { count: cl.archived.count, records: app.archiveRecords(0, cl.archived.count) })) await write(f);
  await new Promise<void>((res, rej) => out.end((e?: Error | null) => (e ? rej(e) : res())));
  await storage.close();
  return app.state.clockMs;
}

t.test('restored from a snapshot hours old, the cluster accepts acts again with no governance decision', { timeout: 600_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-clock-'));
  const c = await DaemonCluster.create(dir, POLICY, 3, 3_000);
  for (const [id, role] of Object.entries(OPERATORS)) issueOperatorCert(c.certs, id, role);
  const clients: AdminClient[] = [];
  t.teardown(async () => {
    for (const x of clients) x.close();
    await c.stop();
    if (!t.passing()) {
      for (const n of c.nodes) {
        const f = join(dir, `${n.id}.log`);
        if (existsSync(f)) t.comment(`--- ${f} (last lines)\n${readFileSync(f, 'utf8').split('\n').slice(-30).join('\n')}`);
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const file = join(dir, 'old.snap');
  const ledgerClock = await oldSnapshot(c, join(dir, 'build'), file, Date.now() - BEHIND_MS);
  t.ok(Date.now() - ledgerClock > limits.stampAheadMs, `the snapshot's ledger clock is ${Math.round((Date.now() - ledgerClock) / 60_000)} min behind real time, past the ${limits.stampAheadMs / 60_000} min bound`);
  const restored = await cli(['cluster', 'restore', '--snapshot', file, '--config', dir]);
  t.equal(restored.code, 0, `custody cluster restore exits 0 ${restored.stderr.trim()}`);
  await c.start('audra', CLI, 120_000);
  const audra = c.client('n1', 'audra');
  const caraClient = c.client('n2', 'cara');
  clients.push(audra, caraClient);
  const cara = labelled(caraClient, c.custodians[0]!);
  const decisionsBefore = (await audra.listDecisions()).decisions.length;

  // Acts are refused STAMP_AHEAD until the leader's attested tick; then one reaches the ledger
  // (to a destination the policy does not allow: journaled Denied in its one entry).
  let refusedAhead = 0;
  let opId = '';
  const t0 = Date.now();
  const answer = await until('an act journaled', async () => {
    opId = `after-restore-${Date.now()}`;
    const v = await cara.submitAct({ opId, keyId: 'k', ...(await actTx(cara, 'k', '5', 'sol-elsewhere')) }).catch((e: unknown) => e);
    if (isCustodyError(v) && v.reason === 'STAMP_AHEAD') {
      refusedAhead++;
      return null;
    }
    return { v };
  }, 180_000, 2_000);
  t.comment(`journaled ${Date.now() - t0} ms after the cluster was up, after ${refusedAhead} STAMP_AHEAD refusals`);
  t.match(answer.v, { reason: 'POLICY_NO_RULE' }, 'the ledger judged the act (its policy denies the destination)');
  t.equal((await audra.showAct(rid(opId))).state, 'Denied', 'and journaled it Denied');
  const after = await audra.status();
  t.ok(after.applied > 0, `applied ${after.applied}`);
  t.equal((await audra.listDecisions()).decisions.length, decisionsBefore, 'no governance decision was proposed or needed');
});
