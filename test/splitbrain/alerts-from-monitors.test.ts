/**
 * From detection to a firing alert, with everything real except the daemon around it: three
 * SplitBrainMonitors exchanging encoded exchanges, the real ledger applying the evidence they
 * produce, their metrics registered by registerCatalogMetrics and served over HTTP, and a real
 * Prometheus (Debian `prometheus`) evaluating the shipped alerts.yml. It injects the two faults of
 * issue 7 acceptance 2 — (a) a node restored from an old copy of its state, (b) a forged
 * conflicting signed vote — and reads the resulting alerts from Prometheus's HTTP API; then
 * fences the offender's passport and shows the ledger refusing it (SPLIT_BRAIN_FENCED).
 *
 * The same with real Raft daemons, each running its monitor (node/splitbrain/node-guard.ts), is
 * e2e-daemons.test.ts; this one isolates the monitors, the ledger and the rules.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import t from 'tap';
import { ScriptedCluster, apply, encodeEvent } from '../../ledger/index.js';
import { registerCatalogMetrics } from '../../node/metrics-catalog.js';
import { signVote } from '../../node/splitbrain/equivocation.js';
import { decodeExchange, encodeExchange } from '../../node/splitbrain/exchange.js';
import { ledgerSource } from '../../node/splitbrain/ledger-source.js';
import { SplitBrainMonitor } from '../../node/splitbrain/monitor.js';
import type { Observation } from '../../node/splitbrain/detector.js';
import type { DurableState } from '../../node/splitbrain/rollback.js';
import { prometheusDir } from './paths.js';
import { freePort, until } from './procs.js';

interface PromAlert { labels: Record<string, string>; state: string }

t.test('a restored node and a forged double vote become firing CustodySplitBrain and CustodyEquivocation alerts; the fenced passport is refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'custody-alerts-'));
  const servers: Server[] = [];
  const children: ChildProcess[] = [];
  t.teardown(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    rmSync(dir, { recursive: true, force: true });
  });

  // The cluster: a real ledger (one state, as every node holds after applying the same log).
  const sc = new ScriptedCluster({ nodes: 3, label: 'alerts-e2e' });
  t.ok(sc.genesis().ok, 'genesis applied');
  const ids = sc.nodes.map((n) => n.info.id) as [string, string, string];
  const [a, b, c] = ids;
  const keyOf = (id: string): Uint8Array | undefined => sc.nodes.find((n) => n.info.id === id)?.info.identityKey;
  const fresh: DurableState = { term: 6, vote: null, lastIndex: 40, lastLogTerm: 6 };
  // Node a restarts from an image two terms old; b witnessed it in term 6 before the restore.
  const atStart = (id: string): DurableState => (id === a ? { term: 4, vote: null, lastIndex: 12, lastLogTerm: 4 } : fresh);
  const nodes = await Promise.all(ids.map(async (id) => {
    const reg = new Registry();
    const metrics = registerCatalogMetrics(reg, { ledger: ledgerSource(() => sc.state) });
    const mon = new SplitBrainMonitor({ self: id, clusterId: sc.clusterId, voters: ids, identityKey: keyOf, atStart: atStart(id), metrics });
    const port = await freePort();
    const server = createHttpServer((_req, res) => {
      void reg.metrics().then((body) => {
        res.setHeader('content-type', reg.contentType);
        res.end(body);
      });
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    servers.push(server);
    const obs: Observation = { node: id, term: 6, leader: b, appliedIndex: 40, stateRoot: 'root-40' };
    return { id, mon, port, obs };
  }));
  const byId = (id: string) => nodes.find((n) => n.id === id) as (typeof nodes)[number];
  byId(b).mon.noteMessage({ type: 'appResp', from: a, to: b, term: 6, index: 40, reject: false });

  const round = (): void => {
    const wire: { to: (typeof nodes)[number]; from: string; bytes: Uint8Array }[] = [];
    for (const n of nodes) {
      n.mon.observeLocal(n.obs);
      for (const p of nodes) if (p !== n) wire.push({ to: p, from: n.id, bytes: encodeExchange(n.mon.outgoing(p.id, n.obs)) });
    }
    for (const w of wire) w.to.mon.incoming(w.from, decodeExchange(w.bytes, w.from));
  };

  // Prometheus with the shipped rules, scraping the three metric endpoints every second.
  const promPort = await freePort();
  mkdirSync(join(dir, 'data'), { recursive: true });
  writeFileSync(join(dir, 'prometheus.yml'), [
    'global:', '  scrape_interval: 1s', '  scrape_timeout: 900ms', '  evaluation_interval: 1s',
    'rule_files:', `  - ${join(prometheusDir, 'alerts.yml')}`,
    'scrape_configs:', '  - job_name: custody-monitors', '    static_configs:',
    ...nodes.map((n) => `      - targets: ['127.0.0.1:${n.port}']\n        labels: { cluster: monitors, node: ${n.id} }`), '',
  ].join('\n'));
  const prom = spawn('/usr/bin/prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn'], { stdio: 'ignore' });
  children.push(prom);
  const alerts = async (): Promise<PromAlert[]> => {
    const r = await fetch(`http://127.0.0.1:${promPort}/api/v1/alerts`, { signal: AbortSignal.timeout(5_000) });
    const j = (await r.json()) as { status: string; data: { alerts: PromAlert[] } };
    return j.data.alerts.filter((x) => x.labels.cluster === 'monitors');
  };
  await until('Prometheus scraping three targets', 60_000, async () => {
    const r = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent('sum(up{job="custody-monitors"})')}`);
    const j = (await r.json()) as { data: { result: { value: [number, string] }[] } };
    return j.data.result[0]?.value[1] === '3' ? true : null;
  });
  t.same((await alerts()).filter((x) => x.state === 'firing'), [], 'nothing fires before the faults');

  // (a) The restored node asks its peers what they saw of it, and is told.
  round();
  round();
  t.equal(byId(a).mon.gate.verdict().kind, 'rolled_back', `${a} learns its state went backwards`);
  t.notOk(byId(a).mon.mayVote(atStart(a)), `${a} withholds its vote`);

  // (b) c's key signs two votes in term 7, one to each candidate; the exchange spreads both.
  const secret = sc.node(c).secretKey;
  byId(a).mon.statement(signVote(sc.clusterId, c, 7, a, secret));
  byId(b).mon.statement(signVote(sc.clusterId, c, 7, b, secret));
  round();
  round();
  const evidence = nodes.flatMap((n) => n.mon.takeEvidence());
  t.equal(evidence.length, 3, 'every node holds the evidence');
  for (const ev of evidence) sc.entry(ev);
  t.equal(sc.state.cluster?.nodes[c]?.equivocated, true, `the ledger flags ${c}`);
  t.equal(Object.keys(sc.state.cluster?.evidence ?? {}).length, 1, 'one evidence record, however many nodes proposed it');

  const fired = await until('both alerts firing', 60_000, async () => {
    const f = (await alerts()).filter((x) => x.state === 'firing');
    const sb = f.find((x) => x.labels.alertname === 'CustodySplitBrain');
    const eq = f.find((x) => x.labels.alertname === 'CustodyEquivocation');
    return sb && eq ? { sb, eq } : null;
  });
  t.same({ node: fired.sb.labels.node, kind: fired.sb.labels.kind, severity: fired.sb.labels.severity }, { node: a, kind: 'rollback', severity: 'page' }, 'CustodySplitBrain{kind="rollback"} fires for the restored node');
  t.same({ offender: fired.eq.labels.offender, kind: fired.eq.labels.kind, severity: fired.eq.labels.severity }, { offender: c, kind: 'RaftVote', severity: 'page' }, 'CustodyEquivocation fires naming the offender');

  // Fencing: FencingRecords of a majority of voters (a and b, of three) fence c's passport; its proposals are refused.
  const passport = sc.proposer(c).passport;
  t.match(sc.fence(a, c, passport, 'equivocated: two RaftVote statements in term 7'), { ok: false, reason: 'FENCE_PENDING' }, 'one report fences nothing');
  const fenced = sc.fence(b, c, passport, 'equivocated: two RaftVote statements in term 7');
  t.ok(fenced.ok, 'the second voter\'s FencingRecord fences');
  const refused = apply(sc.state, { index: sc.state.index + 1, stampMs: sc.nowMs, event: encodeEvent({ type: 'ActSettled', opId: 'any', confirmation: 'x', nodeId: c, passport }) });
  t.match(refused.result, { ok: false, reason: 'SPLIT_BRAIN_FENCED' }, 'the fenced passport is refused');
  const fencedGauge = await until('custody_fenced_passports scraped', 30_000, async () => {
    const r = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent('max(custody_fenced_passports{cluster="monitors"})')}`);
    const j = (await r.json()) as { data: { result: { value: [number, string] }[] } };
    return j.data.result[0]?.value[1] === '1' ? 1 : null;
  });
  t.equal(fencedGauge, 1, 'Prometheus sees the fenced passport');
});
