/**
 * The Grafana dashboard (cluster-configs/grafana/custody-cluster.json) is valid, uses a Prometheus
 * datasource variable, and names only metrics the nodes export (issue 7, acceptance 4; the check
 * against a live /metrics waits for the end-to-end test). Each expression is also parsed by
 * promtool, as a recording rule with the dashboard variables filled in, so a typo in PromQL fails
 * here rather than as an empty panel in front of an operator.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { exportedBase } from '../../node/metrics-catalog.js';
import { metricNamesIn } from './promql.js';
import { grafanaDir } from './paths.js';

interface Target { refId?: string; expr?: string; datasource?: { type?: string; uid?: string } }
interface Panel { id?: number; type?: string; title?: string; description?: string; gridPos?: { x: number; y: number; w: number; h: number }; datasource?: { type?: string; uid?: string }; targets?: Target[]; panels?: Panel[] }
interface Variable { name: string; type: string; query?: string; datasource?: { type?: string; uid?: string } }
interface Dashboard { title?: string; uid?: string; schemaVersion?: number; panels?: Panel[]; templating?: { list?: Variable[] } }

const text = readFileSync(join(grafanaDir, 'custody-cluster.json'), 'utf8');
const dash = JSON.parse(text) as Dashboard;
const allPanels = (dash.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]);
const dataPanels = allPanels.filter((p) => p.type !== 'row');
const exprs = dataPanels.flatMap((p) => (p.targets ?? []).map((x) => ({ panel: p.title ?? '?', expr: x.expr ?? '' })));

/** `label_values(metric{...}, label)`: the metric is the only name in it. */
function variableMetric(query: string): string | null {
  const m = /^label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?\s*,\s*[A-Za-z_][A-Za-z0-9_]*\s*\)$/.exec(query.trim());
  return m ? (m[1] as string) : null;
}

t.test('the dashboard is a Grafana dashboard model with a stable uid', async (t) => {
  t.equal(typeof dash.title, 'string');
  t.match(dash.uid ?? '', /^[a-z0-9-]{1,40}$/, 'uid: short, URL-safe (Grafana limits uids to 40 characters)');
  t.ok(Number.isInteger(dash.schemaVersion) && (dash.schemaVersion ?? 0) >= 30, 'schemaVersion is a modern integer');
  t.ok(dataPanels.length >= 15, `${dataPanels.length} panels`);
});

t.test('a Prometheus datasource variable feeds every panel and query', async (t) => {
  const vars = dash.templating?.list ?? [];
  const ds = vars.find((v) => v.type === 'datasource');
  t.ok(ds, 'a datasource variable');
  t.equal(ds?.query, 'prometheus');
  const ref = `\${${ds?.name ?? 'datasource'}}`;
  for (const p of dataPanels) {
    t.same(p.datasource, { type: 'prometheus', uid: ref }, `${p.title}: panel datasource`);
    for (const x of p.targets ?? []) t.same(x.datasource, { type: 'prometheus', uid: ref }, `${p.title} ${x.refId}: target datasource`);
  }
  for (const v of vars.filter((v) => v.type === 'query')) {
    t.same(v.datasource, { type: 'prometheus', uid: ref }, `$${v.name} queries the datasource variable`);
    t.not(variableMetric(v.query ?? ''), null, `$${v.name}: a label_values query`);
    t.not(exportedBase(variableMetric(v.query ?? '') ?? ''), null, `$${v.name}: names an exported metric`);
  }
});

t.test('panels have unique ids, titles, descriptions and fit the 24-column grid without overlapping', async (t) => {
  const ids = allPanels.map((p) => p.id);
  t.equal(new Set(ids).size, ids.length, 'unique ids');
  const cells = new Set<string>();
  for (const p of allPanels) {
    const g = p.gridPos;
    t.ok(g && g.x >= 0 && g.w >= 1 && g.x + g.w <= 24 && g.h >= 1 && g.y >= 0, `${p.title}: gridPos inside the grid`);
    if (!g) continue;
    for (let x = g.x; x < g.x + g.w; x++) for (let y = g.y; y < g.y + g.h; y++) {
      const k = `${x},${y}`;
      if (cells.has(k)) t.fail(`${p.title} overlaps another panel at ${k}`);
      cells.add(k);
    }
  }
  for (const p of dataPanels) {
    t.ok((p.title ?? '').length > 3 && (p.description ?? '').length > 20, `${p.title}: title and description`);
    t.ok((p.targets ?? []).length > 0 && (p.targets ?? []).every((x) => (x.expr ?? '').length > 0), `${p.title}: has queries`);
  }
});

t.test('every expression names only metrics in the catalog', async (t) => {
  for (const { panel, expr } of exprs) {
    const names = metricNamesIn(expr);
    t.ok(names.length > 0, `${panel}: names a metric`);
    for (const n of names) t.not(exportedBase(n), null, `${panel}: ${n} is exported`);
  }
});

t.test('the dashboard shows the signals of issue 7', async (t) => {
  const named = new Set(exprs.flatMap((e) => metricNamesIn(e.expr)).map((n) => exportedBase(n)));
  for (const m of [
    'custody_split_brain_active', 'custody_split_brain_alarms_total', 'custody_equivocation_active', 'custody_equivocation_evidence_total',
    'custody_rollback_vote_withheld', 'custody_raft_leader_changes_total', 'custody_raft_term', 'custody_raft_follower_lag_entries',
    'custody_raft_apply_lag_entries', 'custody_raft_fsync_duration_seconds', 'custody_raft_append_duration_seconds',
    'custody_kernel_steps_total', 'custody_kernel_refusals_total', 'custody_signing_acts',
  ]) t.ok(named.has(m), `a panel shows ${m}`);
});

t.test('promtool parses every expression (dashboard variables filled in)', async (t) => {
  const fill = (e: string): string => e.replace(/\$__rate_interval/g, '1m').replace(/\$\{?(cluster|node)\}?/g, '.*');
  const rules = { groups: [{ name: 'dashboard', rules: exprs.map((e, i) => ({ record: `dashboard:expr_${i}`, expr: fill(e.expr) })) }] };
  const dir = mkdtempSync(join(tmpdir(), 'custody-grafana-'));
  try {
    const file = join(dir, 'dashboard-exprs.yml');
    writeFileSync(file, stringify(rules));
    let out: string;
    try {
      out = execFileSync('/usr/bin/promtool', ['check', 'rules', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string };
      throw new Error(`promtool rejected a dashboard expression:\n${err.stdout ?? ''}${err.stderr ?? ''}`);
    }
    t.match(out, new RegExp(`SUCCESS: ${exprs.length} rules found`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
