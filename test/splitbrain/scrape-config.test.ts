/**
 * prometheus.yml scrapes exactly the nodes the shipped cluster configs define: for each cluster
 * directory (local-3, local-5, netns-3) one job `custody-<dir>`, one target per node at the node's
 * `http:` address, labelled with the cluster and the node id. A port changed in one place and not
 * the other would leave a node unwatched.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { prometheusDir, repoRoot } from './paths.js';

interface Job { job_name: string; static_configs: { targets: string[]; labels: Record<string, string> }[] }
const prom = parse(readFileSync(join(prometheusDir, 'prometheus.yml'), 'utf8')) as { rule_files: string[]; scrape_configs: Job[] };

for (const cluster of ['local-3', 'local-5', 'netns-3']) {
  t.test(`${cluster}: one target per node at its http address, labelled cluster and node`, async (t) => {
    const dir = join(repoRoot, 'cluster-configs', cluster);
    const nodes = readdirSync(dir)
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => parse(readFileSync(join(dir, f), 'utf8')) as { id?: string; http?: string })
      .filter((c): c is { id: string; http: string } => typeof c.id === 'string' && typeof c.http === 'string')
      .map((c) => ({ target: c.http, labels: { cluster, node: c.id } }))
      .sort((a, b) => a.labels.node.localeCompare(b.labels.node));
    t.ok(nodes.length >= 3, `${nodes.length} node configs`);
    const job = prom.scrape_configs.find((j) => j.job_name === `custody-${cluster}`);
    t.ok(job, `job custody-${cluster}`);
    const targets = (job?.static_configs ?? [])
      .flatMap((s) => s.targets.map((target) => ({ target, labels: s.labels })))
      .sort((a, b) => (a.labels.node ?? '').localeCompare(b.labels.node ?? ''));
    t.same(targets, nodes);
  });
}

t.test('the scrape configuration loads the shipped rules', async (t) => {
  t.same(prom.rule_files, ['alerts.yml']);
  t.same(prom.scrape_configs.map((j) => j.job_name).sort(), ['custody-local-3', 'custody-local-5', 'custody-netns-3'], 'every job matches the custody-.* selector the alerts use');
});
