/**
 * A real Prometheus (Debian `prometheus`) for the end-to-end tests: the shipped alerts.yml, one
 * scrape job over the given node HTTP addresses labelled `cluster` and `node`, scraping and
 * evaluating every second, and small readers of its HTTP API (instant queries and alerts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { prometheusDir } from './paths.js';
import { freePort, until } from './procs.js';

export const PROMETHEUS = '/usr/bin/prometheus';

export interface PromAlert { labels: Record<string, string>; state: string }

export interface Prometheus {
  readonly proc: ChildProcess;
  /** `data` of a successful API answer; throws on an error answer. */
  api<T>(path: string): Promise<T>;
  /** The first value of an instant query, or null when it returns no series. */
  scalar(query: string): Promise<number | null>;
  /** Alerts (pending and firing) of this cluster. */
  alerts(): Promise<PromAlert[]>;
  /** Waits until an alert matching every label in `labels` is firing, and returns it. */
  firing(what: string, labels: Record<string, string>, deadlineMs: number): Promise<PromAlert>;
  /** Everything Prometheus wrote to stderr so far. */
  stderr(): string;
  stop(): void;
}

export async function startPrometheus(dir: string, cluster: string, targets: readonly { node: string; http: string }[]): Promise<Prometheus> {
  const port = await freePort();
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'prometheus.yml'), [
    'global:', '  scrape_interval: 1s', '  scrape_timeout: 900ms', '  evaluation_interval: 1s',
    'rule_files:', `  - ${join(prometheusDir, 'alerts.yml')}`,
    'scrape_configs:', `  - job_name: custody-${cluster}`, '    static_configs:',
    ...targets.map((x) => `      - targets: ['${x.http}']\n        labels: { cluster: ${cluster}, node: ${x.node} }`), '',
  ].join('\n'));
  const proc = spawn(PROMETHEUS, [
    `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr?.on('data', (b: Buffer) => { err += b.toString(); });
  const api = async <T>(path: string): Promise<T> => {
    const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5_000) });
    const j = (await r.json()) as { status: string; data: T };
    if (j.status !== 'success') throw new Error(`${path}: ${JSON.stringify(j)}`);
    return j.data;
  };
  const alerts = async (): Promise<PromAlert[]> => (await api<{ alerts: PromAlert[] }>('/api/v1/alerts')).alerts.filter((a) => a.labels.cluster === cluster);
  const p: Prometheus = {
    proc,
    api,
    async scalar(q) {
      const d = await api<{ result: { value: [number, string] }[] }>(`/api/v1/query?query=${encodeURIComponent(q)}`);
      return d.result.length === 0 ? null : Number(d.result[0]?.value[1]);
    },
    alerts,
    firing: (what, labels, deadlineMs) => until(what, deadlineMs, async () => (await alerts()).find((a) => a.state === 'firing' && Object.entries(labels).every(([k, v]) => a.labels[k] === v)) ?? null),
    stderr: () => err,
    stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    },
  };
  await until('Prometheus loaded the rules', 60_000, async () => ((await api<{ groups: unknown[] }>('/api/v1/rules')).groups.length > 0 ? true : null));
  return p;
}
