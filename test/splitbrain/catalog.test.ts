/**
 * One catalog of metric names (node/metrics-catalog.ts), and everything that names metrics holds
 * to it: the alert rules and their test series, node/metrics.ts's registry, and the catalog's own
 * registrar. A rule naming a metric nobody exports would never fire; this is where that fails.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import t from 'tap';
import { parse } from 'yaml';
import { NodeMetrics } from '../../node/metrics.js';
import { METRICS, SPLIT_BRAIN_KINDS, exportedBase, registerCatalogMetrics, type CatalogSources } from '../../node/metrics-catalog.js';
import { metricNamesIn, seriesName } from './promql.js';
import { prometheusDir } from './paths.js';

type Internal = { labelNames?: string[]; help: string; name: string };

function registered(r: Registry): Map<string, { type: string; help: string; labels: string[] }> {
  const out = new Map<string, { type: string; help: string; labels: string[] }>();
  for (const mt of r.getMetricsAsArray()) {
    const i = mt as unknown as Internal;
    const type = String((mt as unknown as { type?: string }).type ?? '');
    out.set(i.name, { type, help: i.help, labels: [...(i.labelNames ?? [])] });
  }
  return out;
}

t.test('metricNamesIn finds metric names and only metric names', async (t) => {
  t.same(metricNamesIn('max by (cluster, node, kind) (custody_split_brain_active) > 0'), ['custody_split_brain_active']);
  t.same(metricNamesIn('count_values by (cluster) ("term", custody_raft_term and on (cluster, node) (custody_raft_is_leader == 1)) > 1'), ['custody_raft_is_leader', 'custody_raft_term']);
  t.same(metricNamesIn('histogram_quantile(0.99, sum by (le) (rate(custody_raft_fsync_duration_seconds_bucket{cluster=~"$cluster"}[$__rate_interval]))) > 0.25'), ['custody_raft_fsync_duration_seconds_bucket']);
  t.same(metricNamesIn('sum(up{job=~"custody-.*"}) <= count(up) / 2 or vector(1e3) offset 5m'), ['up']);
  t.same(metricNamesIn('rate(foo_total[5m:30s]) * on (a) group_left (b) bar'), ['bar', 'foo_total']);
});

const rules = (parse(readFileSync(join(prometheusDir, 'alerts.yml'), 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] }).groups.flatMap((g) => g.rules);
const testSeries = (parse(readFileSync(join(prometheusDir, 'alerts.test.yml'), 'utf8')) as { tests: { input_series: { series: string }[] }[] }).tests.flatMap((g) =>
  g.input_series.map((s) => seriesName(s.series)),
);

t.test('every metric an alert rule names is in the catalog', async (t) => {
  let n = 0;
  for (const r of rules) {
    const names = metricNamesIn(r.expr);
    t.ok(names.length > 0, `${r.alert}: names at least one metric`);
    for (const name of names) {
      n++;
      t.not(exportedBase(name), null, `${r.alert}: ${name} is exported`);
    }
  }
  t.ok(n >= rules.length);
});

t.test('every series the rule tests feed in is an exported series', async (t) => {
  for (const name of new Set(testSeries)) t.not(exportedBase(name), null, `${name} is exported`);
});

t.test('catalog names are unique, prefixed, and counters end in _total', async (t) => {
  t.equal(new Set(METRICS.map((s) => s.name)).size, METRICS.length);
  for (const s of METRICS) {
    t.match(s.name, /^custody_[a-z0-9_]+$/, `${s.name} has the custody_ prefix`);
    if (s.type === 'counter') t.match(s.name, /_total$/, `${s.name} is a counter ending in _total`);
    else t.notMatch(s.name, /_total$/, `${s.name} is not a counter and does not end in _total`);
    t.ok(s.help.length > 10, `${s.name} has help text`);
  }
});

t.test('node/metrics.ts registers exactly the rows the catalog attributes to it, with the same type, help and labels', async (t) => {
  const got = registered(new NodeMetrics().registry);
  const custody = [...got.keys()].filter((n) => n.startsWith('custody_'));
  const want = METRICS.filter((s) => s.by === 'node/metrics.ts');
  t.same(custody.sort(), want.map((s) => s.name).sort(), 'same custody_* names');
  for (const s of want) {
    const g = got.get(s.name);
    t.same(g, { type: s.type, help: s.help, labels: [...s.labels] }, s.name);
  }
});

t.test('registerCatalogMetrics registers exactly the catalog rows, beside NodeMetrics on one registry', async (t) => {
  const nm = new NodeMetrics();
  registerCatalogMetrics(nm.registry);
  const got = registered(nm.registry);
  for (const s of METRICS) t.same(got.get(s.name), { type: s.type, help: s.help, labels: [...s.labels] }, s.name);
  const custody = [...got.keys()].filter((n) => n.startsWith('custody_')).sort();
  t.same(custody, METRICS.map((s) => s.name).sort(), 'no custody_* metric outside the catalog');
});

t.test('scrape-time metrics read their sources: lag per follower on the leader only, core counters, ledger flags', async (t) => {
  let role = 'leader';
  const sources: CatalogSources = {
    raft: () => ({ id: 'n1', role, commit: 120, appliedIndex: 100, lastIndex: 2000, conf: { voters: ['n1', 'n2', 'n3'] }, progress: role === 'leader' ? { n1: { match: 2000 }, n2: { match: 1990 }, n3: { match: 400 } } : null }),
    coreStats: () => ({ elections: 3, leaderChanges: 5 }),
    ledger: () => ({ equivocated: [{ offender: 'n3', kind: 'RaftVote' }], fencedPassports: 1, actsByState: { Settled: 7 } }),
  };
  const r = new Registry();
  const cm = registerCatalogMetrics(r, sources);
  cm.splitBrainActive.set({ kind: 'two_roots' }, 1);
  const text = await r.metrics();
  t.match(text, /^custody_raft_follower_lag_entries\{peer="n2"\} 10$/m);
  t.match(text, /^custody_raft_follower_lag_entries\{peer="n3"\} 1600$/m);
  t.notMatch(text, /custody_raft_follower_lag_entries\{peer="n1"\}/, 'the leader is not its own follower');
  t.match(text, /^custody_raft_apply_lag_entries 20$/m);
  t.match(text, /^custody_raft_voters 3$/m);
  t.match(text, /^custody_raft_leader_changes_total 5$/m);
  t.match(text, /^custody_raft_elections_total 3$/m);
  t.match(text, /^custody_equivocation_active\{offender="n3",kind="RaftVote"\} 1$/m);
  t.match(text, /^custody_fenced_passports 1$/m);
  t.match(text, /^custody_signing_acts\{state="Settled"\} 7$/m);
  t.match(text, /^custody_signing_acts\{state="Submitted"\} 0$/m);
  t.match(text, /^custody_split_brain_active\{kind="two_roots"\} 1$/m);
  for (const kind of SPLIT_BRAIN_KINDS) t.match(text, new RegExp(`^custody_split_brain_alarms_total\\{kind="${kind}"\\} 0$`, 'm'), `${kind} alarms start at zero`);
  t.match(text, /^custody_kernel_refusals_total\{reason="PERMIT_MISSING"\} 0$/m, 'refusal series exist before the first refusal');

  role = 'follower';
  const after = await r.metrics();
  t.notMatch(after, /^custody_raft_follower_lag_entries\{/m, 'a deposed leader stops exporting follower lag');
  t.match(after, /^custody_raft_leader_changes_total 5$/m, 'a counter mirrored from the core does not double on a second scrape');
});
