/**
 * End to end with a real Prometheus (Debian `prometheus`) scraping a real 3-node cluster on
 * loopback: the shipped alerts.yml loads; every node's live /metrics serves every metric the rules
 * and the dashboard name (issue 7, acceptance 4); a healthy cluster raises no alert; killing the
 * leader and restarting it raises no split-brain alert, not even pending (acceptance 3, the
 * multi-process half, for the rule Prometheus evaluates itself); and killing two of the three
 * nodes makes CustodyQuorumLost firing as Prometheus's own HTTP API reports it. The rollback and
 * double-vote alerts need the daemon to feed its SplitBrainMonitor; alerts-from-monitors.test.ts
 * shows them firing from the monitors themselves.
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

const PROMETHEUS = '/usr/bin/prometheus';
const IDS = ['n1', 'n2', 'n3'] as const;

interface PromAlert { labels: Record<string, string>; state: string }

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
  const promPort = await freePort();
  const promDir = join(dir, 'prometheus');
  mkdirSync(promDir, { recursive: true });
  writeFileSync(join(promDir, 'prometheus.yml'), [
    'global:', '  scrape_interval: 1s', '  scrape_timeout: 900ms', '  evaluation_interval: 1s',
    'rule_files:', `  - ${join(prometheusDir, 'alerts.yml')}`,
    'scrape_configs:', '  - job_name: custody-e2e', '    static_configs:',
    ...IDS.map((id, i) => `      - targets: ['127.0.0.1:${http[i]}']\n        labels: { cluster: e2e, node: ${id} }`), '',
  ].join('\n'));
  const promLog = join(promDir, 'prometheus.log');
  const prom = spawn(PROMETHEUS, [
    `--config.file=${join(promDir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(promDir, 'data')}`,
    `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(prom);
  let promErr = '';
  prom.stderr?.on('data', (b: Buffer) => { promErr += b.toString(); });
  const api = async <T>(path: string): Promise<T> => {
    const r = await fetch(`http://127.0.0.1:${promPort}${path}`, { signal: AbortSignal.timeout(5_000) });
    const j = (await r.json()) as { status: string; data: T };
    if (j.status !== 'success') throw new Error(`${path}: ${JSON.stringify(j)}`);
    return j.data;
  };
  const scalar = async (q: string): Promise<number | null> => {
    const d = await api<{ result: { value: [number, string] }[] }>(`/api/v1/query?query=${encodeURIComponent(q)}`);
    return d.result.length === 0 ? null : Number(d.result[0]?.value[1]);
  };
  const firing = async (): Promise<PromAlert[]> => (await api<{ alerts: PromAlert[] }>('/api/v1/alerts')).alerts.filter((a) => a.labels.cluster === 'e2e');

  const groups = await until('rules loaded', 60_000, async () => {
    const d = await api<{ groups: { name: string; rules: { name: string }[] }[] }>('/api/v1/rules');
    return d.groups.length > 0 ? d.groups : null;
  });
  t.same(groups.map((g) => g.name).sort(), ['custody-consensus', 'custody-kernel', 'custody-safety'], 'Prometheus loaded the shipped rule groups');

  const scraped = await until('three targets up and one leader scraped', 120_000, async () => {
    const up = await scalar('sum(up{job="custody-e2e"})');
    const leaders = await scalar('sum(custody_raft_is_leader{cluster="e2e"})');
    return up === 3 && leaders === 1 ? { up, leaders } : null;
  });
  t.same(scraped, { up: 3, leaders: 1 }, 'Prometheus scrapes three nodes and sees exactly one leader');
  const terms = await scalar('count(count_values("term", custody_raft_term{cluster="e2e"}))');
  t.equal(terms, 1, 'all three nodes report one term');
  t.same((await firing()).filter((a) => a.state === 'firing').map((a) => a.labels.alertname), [], 'a healthy cluster fires nothing');

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
  const safety = await scalar('count(count_over_time(ALERTS{cluster="e2e", alertname=~"CustodySplitBrain|CustodyEquivocation"}[30m]))');
  t.equal(safety, null, 'no split-brain or equivocation alert was ever pending or firing through the leader change and restart');

  // Kill two of three: no live majority. CustodyQuorumLost (for: 30s) must become firing.
  const leader = (await fetchStatus(`127.0.0.1:${http[0]}`))?.leader ?? null;
  for (const id of ['n1', 'n2']) {
    const pid = readPid(clusterDir, id);
    if (pid !== null) process.kill(pid, 'SIGKILL');
  }
  t.comment(`killed n1 and n2 with SIGKILL (the leader was ${leader ?? 'unknown'})`);
  const alert = await until('CustodyQuorumLost firing', 180_000, async () => {
    const a = (await firing()).find((x) => x.labels.alertname === 'CustodyQuorumLost' && x.state === 'firing');
    return a ?? null;
  });
  t.same({ cluster: alert.labels.cluster, severity: alert.labels.severity }, { cluster: 'e2e', severity: 'page' }, 'CustodyQuorumLost fires for the cluster, as a page');
  t.equal(promErr.includes('level=error'), false, `Prometheus logged no error${promErr ? `:\n${promErr}` : ''}`);
});
