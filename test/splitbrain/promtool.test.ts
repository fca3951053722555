/**
 * The alert rules are code and are tested like code (issue 7, acceptance 1): promtool checks the
 * rule and scrape files and runs the rule unit tests in alerts.test.yml. Beyond what promtool
 * checks, this file holds the rules to the product's conventions: every alert carries a severity,
 * a summary and a description; split-brain and equivocation fire without a `for:` delay; and every
 * alert has at least one test case where it fires and one where it stays quiet.
 *
 * promtool comes from Debian's `prometheus` package (test/setup.sh installs it). Missing, the
 * test fails: CI must not pass without having run the rule tests.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { prometheusDir } from './paths.js';

const PROMTOOL = '/usr/bin/promtool';

function promtool(...args: string[]): string {
  try {
    return execFileSync(PROMTOOL, args, { cwd: prometheusDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { status?: number; stdout?: string; stderr?: string; code?: string };
    throw new Error(`promtool ${args.join(' ')} failed (${err.code ?? `exit ${err.status}`}):\n${err.stdout ?? ''}${err.stderr ?? ''}`);
  }
}

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

interface AlertCase {
  alertname: string;
  eval_time: string;
  exp_alerts?: unknown[];
}

const rules = (parse(readFileSync(join(prometheusDir, 'alerts.yml'), 'utf8')) as { groups: { name: string; rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const alerts = rules.filter((r): r is Rule & { alert: string } => typeof r.alert === 'string');
const alertNames = [...new Set(alerts.map((r) => r.alert))];
const cases = (parse(readFileSync(join(prometheusDir, 'alerts.test.yml'), 'utf8')) as { tests: { alert_rule_test?: AlertCase[] }[] }).tests.flatMap(
  (g) => g.alert_rule_test ?? [],
);

t.test('promtool accepts the rule file', async (t) => {
  const out = promtool('check', 'rules', 'alerts.yml');
  t.match(out, new RegExp(`SUCCESS: ${rules.length} rules found`), 'every rule parses and its expression is valid PromQL');
});

t.test('promtool accepts the scrape configuration and the rule file it names', async (t) => {
  const out = promtool('check', 'config', 'prometheus.yml');
  t.match(out, /SUCCESS: prometheus\.yml is valid prometheus config file syntax/);
});

t.test('promtool rule unit tests pass', async (t) => {
  const out = promtool('test', 'rules', 'alerts.test.yml');
  t.match(out, /SUCCESS/);
  t.notMatch(out, /FAILED/);
});

t.test('the rules cover the consensus, safety, storage and kernel signals', async (t) => {
  t.same(alertNames.sort(), [
    'CustodyCheckpointDivergence',
    'CustodyEquivocation',
    'CustodyFollowerLagging',
    'CustodyFsyncSlow',
    'CustodyKernelDisconnected',
    'CustodyKernelRefusalsSpiking',
    'CustodyLeaderFlapping',
    'CustodyQuorumLost',
    'CustodySplitBrain',
    'CustodyWitnessRefused',
  ]);
});

t.test('every alert carries a severity, a summary and a description', async (t) => {
  for (const r of alerts) {
    t.ok(r.labels?.severity === 'page' || r.labels?.severity === 'ticket', `${r.alert}: severity is page or ticket`);
    t.ok((r.annotations?.summary ?? '').length > 10, `${r.alert}: has a summary`);
    t.ok((r.annotations?.description ?? '').length > 40, `${r.alert}: has a description`);
  }
});

t.test('split-brain, equivocation, checkpoint divergence and a witness refusal fire on the first evaluation; the other alerts wait out blips', async (t) => {
  for (const r of alerts) {
    if (r.alert === 'CustodySplitBrain' || r.alert === 'CustodyEquivocation' || r.alert === 'CustodyCheckpointDivergence' || r.alert === 'CustodyWitnessRefused') {
      t.equal(r.for, undefined, `${r.alert}: evidence is never noise, no for: delay`);
      t.equal(r.labels?.severity, 'page', `${r.alert}: pages`);
    } else {
      t.ok(typeof r.for === 'string' && /^\d+[smh]$/.test(r.for), `${r.alert}: has a for: duration (${r.for})`);
    }
  }
});

t.test('every alert has a firing case and a quiet case in alerts.test.yml', async (t) => {
  for (const name of alertNames) {
    const mine = cases.filter((c) => c.alertname === name);
    t.ok(mine.some((c) => (c.exp_alerts ?? []).length > 0), `${name}: at least one case where it fires`);
    t.ok(mine.some((c) => (c.exp_alerts ?? []).length === 0), `${name}: at least one case where it stays quiet`);
  }
  t.notOk(cases.some((c) => !alertNames.includes(c.alertname)), 'no test names an alert that does not exist');
});
