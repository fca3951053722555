/**
 * End to end with a real Prometheus (Debian `prometheus`) scraping a real 3-node cluster on
 * loopback: the shipped alerts.yml loads; every node's live /metrics serves every metric the rules
 * and the dashboard name (issue 7, acceptance 4); a healthy cluster raises no alert; killing the
 * leader and restarting it raises no split-brain alert, not even pending (acceptance 3, the
 * multi-process half); neither does cutting the leader off (SIGSTOP) until the others elect
 * another and healing the cut: each daemon's own monitor (node/splitbrain/node-guard.ts) raises
 * nothing either. Killing two of the three nodes makes CustodyQuorumLost firing as Prometheus's
 * own HTTP API reports it. The rollback and double-vote alerts firing from real daemons are in
 * e2e-daemons.test.ts.
 *
 * Everything runs on free loopback ports in a temporary directory; the test stops every process
 * it started. Waits have generous deadlines (a loaded 2-core machine) and assert states, never
 * durations.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { clusterUp, fetchStatus, isAlive, readPid } from '../../node/cluster.js';
import { METRICS, exportedBase } from '../../node/metrics-catalog.js';
import { metricNamesIn } from './promql.js';
import { grafanaDir, prometheusDir } from './paths.js';
import { freePort, until } from './procs.js';
import { startPrometheus } from './prometheus.js';

const IDS = ['n1', 'n2', 'n3'] as const;


t.test('a real Prometheus scraping a real 3-node cluster: rules load, live metrics match, a leader change raises no split-brain alert, quorum loss fires', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-e2e-prom-'));
  const children: ChildProcess[] = [];
  const nodePids: number[] = [];
  const clusterDir = join(dir, 'cluster');
  t.teardown(async () => {
    // Every daemon this test started, by the pid clusterUp recorded (even if start failed half way).
    for (const id of IDS) {
      const pid = readPid(clusterDir, id);
      if (pid !== null && !nodePids.includes(pid)) nodePids.push(pid);
    }
    for (const pid of nodePids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  // The cluster: local-3's shape on free ports.
  const grpc = await Promise.all(IDS.map(() => freePort()));
  const http = await Promise.all(IDS.map(() => freePort()));
  mkdirSync(clusterDir, { recursive: true });
  IDS.forEach((id, i) => {
    writeFileSync(join(clusterDir, `${id}.yaml`), [
      `id: ${id}`, `dataDir: data/${id}`, `listen: 127.0.0.1:${grpc[i]}`, `http: 127.0.0.1:${http[i]}`, 'peers:',
      ...IDS.map((p, j) => `  ${p}: 127.0.0.1:${grpc[j]}`),
      'tls:', '  ca: certs/ca.crt', `  cert: certs/${id}.crt`, `  key: certs/${id}.key`, '',
    ].join('\n'));
  });
  try {
    await clusterUp(clusterDir, (line) => t.comment(line), 120_000);
  } catch (e) {
    for (const id of IDS) {
      let log = '';
      try {
        log = readFileSync(join(clusterDir, 'logs', `${id}.log`), 'utf8');
      } catch {
        log = '(no log)';
      }
      t.comment(`${id} log:\n${log.slice(-2000)}`);
    }
    throw e;
  }
  for (const id of IDS) {
    const pid = readPid(clusterDir, id);
    if (pid !== null) nodePids.push(pid);
  }
  t.equal(nodePids.length, 3, 'three daemons running');

  // Live /metrics (acceptance 4): every metric the rules and the dashboard name is served by every
  // node (node/daemon.ts registers node/metrics.ts and registerCatalogMetrics on one registry).
  const named = new Set<string>();
  const rules = (parse(readFileSync(join(prometheusDir, 'alerts.yml'), 'utf8')) as { groups: { rules: { expr: string }[] }[] }).groups.flatMap((g) => g.rules);
  for (const r of rules) for (const n of metricNamesIn(r.expr)) named.add(exportedBase(n) ?? n);
  const dash = JSON.parse(readFileSync(join(grafanaDir, 'custody-cluster.json'), 'utf8')) as { panels: { targets?: { expr: string }[] }[] };
  for (const p of dash.panels) for (const x of p.targets ?? []) for (const n of metricNamesIn(x.expr)) named.add(exportedBase(n) ?? n);
  const catalogNamed = METRICS.filter((s) => named.has(s.name)).map((s) => s.name);
  t.ok(catalogNamed.length >= 25, `${catalogNamed.length} catalog metrics are named by rules or dashboard`);
  t.same([...named].filter((n) => !catalogNamed.includes(n)), ['up'], 'the only other series named is Prometheus\'s own up');
  for (const [i, id] of IDS.entries()) {
    const text = await (await fetch(`http://127.0.0.1:${http[i]}/metrics`)).text();
    const live = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] as string));
    t.same(catalogNamed.filter((name) => !live.has(name)), [], `${id} serves every metric the rules and dashboard name`);
  }

  // Prometheus with the shipped rules, scraping the cluster every second.
  const prom = await startPrometheus(join(dir, 'prometheus'), 'e2e', IDS.map((id, i) => ({ node: id, http: `127.0.0.1:${http[i]}` })));
  children.push(prom.proc);
  const { scalar } = prom;
  const groups = await prom.api<{ groups: { name: string }[] }>('/api/v1/rules');
  t.same(groups.groups.map((g) => g.name).sort(), ['custody-consensus', 'custody-kernel', 'custody-safety'], 'Prometheus loaded the shipped rule groups');

  const scraped = await until('three targets up and one leader scraped', 120_000, async () => {
    const up = await scalar('sum(up{job="custody-e2e"})');
    const leaders = await scalar('sum(custody_raft_is_leader{cluster="e2e"})');
    return up === 3 && leaders === 1 ? { up, leaders } : null;
  });
  t.same(scraped, { up: 3, leaders: 1 }, 'Prometheus scrapes three nodes and sees exactly one leader');
  const terms = await scalar('count(count_values("term", custody_raft_term{cluster="e2e"}))');
  t.equal(terms, 1, 'all three nodes report one term');
  t.same((await prom.alerts()).filter((a) => a.state === 'firing').map((a) => a.labels.alertname), [], 'a healthy cluster fires nothing');
  const gates = await until('every node past its rollback gate', 60_000, async () => ((await scalar('sum(custody_rollback_vote_withheld{cluster="e2e"})')) === 0 ? 0 : null));
  t.equal(gates, 0, 'each node heard what its peers witnessed of it and votes (the daemons run the split-brain monitor)');
  const exchanged = await until('observations exchanged', 60_000, async () => {
    const n = await scalar('sum(custody_split_brain_observations_total{cluster="e2e", result="accepted"})');
    return n !== null && n > 0 ? n : null;
  });
  t.ok(exchanged > 0, `${exchanged} observations from peers accepted and compared`);

  // A leader change and a restart (acceptance 3, multi-process half): the split-brain rule that
  // Prometheus evaluates itself (two nodes scraped as leaders of one term) must stay quiet, not
  // even pending, while the old leader dies, a new one is elected and the old one rejoins.
  const before = await until('a leader known', 30_000, async () => {
    const s = await fetchStatus(`127.0.0.1:${http[2]}`);
    return s && s.leader ? s : null;
  });
  const oldLeader = before.leader as string;
  const oldPid = readPid(clusterDir, oldLeader);
  if (oldPid !== null) process.kill(oldPid, 'SIGKILL');
  t.comment(`killed leader ${oldLeader} of term ${before.term} with SIGKILL`);
  const newTerm = await until('a new leader in a later term', 120_000, async () => {
    const term = await scalar('max(custody_raft_term{cluster="e2e"} and on (node) (custody_raft_is_leader{cluster="e2e"} == 1))');
    return term !== null && term > before.term ? term : null;
  });
  t.ok(newTerm > before.term, `a new leader was elected in term ${newTerm}`);
  await clusterUp(clusterDir, (line) => t.comment(line), 120_000);
  await until('the restarted node scraped and every node in one term', 120_000, async () => {
    const up = await scalar('sum(up{job="custody-e2e"})');
    const terms = await scalar('count(count_values("term", custody_raft_term{cluster="e2e"}))');
    const leaders = await scalar('sum(custody_raft_is_leader{cluster="e2e"})');
    return up === 3 && terms === 1 && leaders === 1 ? true : null;
  });
  // The restarted node votes again only once every other voter has said what it witnessed of it
  // (node/splitbrain/rollback.ts): cut nothing off before that, or the remaining two cannot elect.
  await until('the restarted node past its rollback gate', 60_000, async () => ((await scalar('sum(custody_rollback_vote_withheld{cluster="e2e"})')) === 0 ? true : null));

  // A partition that heals: the leader is frozen (SIGSTOP: it hears nothing and says nothing),
  // the other two elect a new leader, and the old one comes back believing it still leads an
  // older term until it hears the new one. Two leaders exist at once, in different terms: the
  // detectors must tell that apart from split-brain.
  const cut = await until('a leader to cut off', 30_000, async () => {
    const s = await fetchStatus(`127.0.0.1:${http[0]}`);
    return s && s.leader ? s : null;
  });
  const cutPid = readPid(clusterDir, cut.leader as string) as number;
  process.kill(cutPid, 'SIGSTOP');
  t.comment(`cut off leader ${cut.leader} of term ${cut.term} (SIGSTOP)`);
  try {
    const healedTerm = await until('a new leader while the old one is cut off', 120_000, async () => {
      const term = await scalar(`max(custody_raft_term{cluster="e2e", node!="${cut.leader}"} and on (node) (custody_raft_is_leader{cluster="e2e"} == 1))`);
      return term !== null && term > cut.term ? term : null;
    });
    t.ok(healedTerm > cut.term, `the majority elected a leader in term ${healedTerm}`);
  } finally {
    process.kill(cutPid, 'SIGCONT');
  }
  await until('the partition healed: one term, one leader', 120_000, async () => {
    const terms = await scalar('count(count_values("term", custody_raft_term{cluster="e2e"}))');
    const leaders = await scalar('sum(custody_raft_is_leader{cluster="e2e"})');
    return terms === 1 && leaders === 1 ? true : null;
  });
  // Let every node exchange observations again after the heal before asking.
  await new Promise((r) => setTimeout(r, 5_000));
  const safety = await scalar('count(count_over_time(ALERTS{cluster="e2e", alertname=~"CustodySplitBrain|CustodyEquivocation"}[30m]))');
  t.equal(safety, null, 'no split-brain or equivocation alert was ever pending or firing through the leader change, restart and healed partition');
  const raised = await scalar('sum(custody_split_brain_alarms_total{cluster="e2e"})');
  t.equal(raised, 0, 'no node\'s monitor raised a split-brain alarm of any kind (two leaders, two roots, rollback)');

  // Kill two of three: no live majority. CustodyQuorumLost (for: 30s) must become firing.
  const leader = (await fetchStatus(`127.0.0.1:${http[0]}`))?.leader ?? null;
  for (const id of ['n1', 'n2']) {
    const pid = readPid(clusterDir, id);
    if (pid !== null) process.kill(pid, 'SIGKILL');
  }
  t.comment(`killed n1 and n2 with SIGKILL (the leader was ${leader ?? 'unknown'})`);
  const alert = await prom.firing('CustodyQuorumLost firing', { alertname: 'CustodyQuorumLost' }, 180_000);
  t.same({ cluster: alert.labels.cluster, severity: alert.labels.severity }, { cluster: 'e2e', severity: 'page' }, 'CustodyQuorumLost fires for the cluster, as a page');
  t.equal(prom.stderr().includes('level=error'), false, `Prometheus logged no error${prom.stderr() ? `:\n${prom.stderr()}` : ''}`);
});
