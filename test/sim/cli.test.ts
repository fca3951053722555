/**
 * `custody sim` as an operator uses it: a multi-seed run ends with exactly one JSON line and exits
 * 0; a violation prints the seed, the checker and the replay command, and exits non-zero; the
 * printed replay command reproduces the same run.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const cli = fileURLToPath(new URL('../../node/cli.js', import.meta.url));
const repo = fileURLToPath(new URL('../../../', import.meta.url));

function sim(args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [cli, 'sim', ...args], { cwd: repo, encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

t.test('custody sim --seeds ends with one JSON summary line and exits 0', (t) => {
  const r = sim(['--seeds', '4', '--base', '77', '--nodes', '3', '--ticks', '200']);
  t.equal(r.code, 0, r.err);
  const lines = r.out.trim().split('\n');
  t.match(lines[0], /^base seed 77 /, 'the base is printed first');
  const last = JSON.parse(lines[lines.length - 1] as string) as { seeds: number; violations: number; elections: number; committed: number; faults: Record<string, number> };
  t.equal(last.seeds, 4);
  t.equal(last.violations, 0);
  t.ok(last.elections > 0 && last.committed > 0, 'elections and commits counted');
  t.ok('dropped' in last.faults && 'partitions' in last.faults && 'crashes' in last.faults && 'torn' in last.faults, 'fault counters present');
  t.match(r.err, /sim: 4\/4 seeds, 0 violations/, 'progress on stderr');
  t.end();
});

t.test('custody sim reports a violation with its seed, checker and replay command, and exits 1', (t) => {
  const r = sim(['--seeds', '2', '--base', '1', '--nodes', '3', '--ticks', '1000', '--profile', 'heavy', '--fault', 'voteIgnoringLog', '--no-progress']);
  t.equal(r.code, 1, 'non-zero exit');
  t.match(r.out, /VIOLATION seed 1 \(3 nodes\): leader-completeness/);
  t.match(r.out, /replay: node dist\/node\/cli\.js sim --seed 1 --nodes 3 --ticks 1000 --profile heavy --fault voteIgnoringLog/);
  const summary = JSON.parse(r.out.trim().split('\n').pop() as string) as { violations: number; failed: { seed: number; checker: string }[] };
  t.ok(summary.violations >= 1, 'counted in the summary');
  t.equal(summary.failed[0]?.checker, 'leader-completeness');
  t.end();
});

t.test('the printed replay command reproduces the run exactly', (t) => {
  const a = sim(['--seed', '1', '--nodes', '3', '--ticks', '1000', '--profile', 'heavy', '--fault', 'voteIgnoringLog']);
  const b = sim(['--seed', '1', '--nodes', '3', '--ticks', '1000', '--profile', 'heavy', '--fault', 'voteIgnoringLog']);
  t.equal(a.code, 1);
  t.equal(a.out, b.out, 'identical output, trace hash included');
  t.match(a.out, /trace hash [0-9a-f]{16}/);
  t.end();
});

t.test('custody sim --whole-node: one JSON line with the whole-node counters, and a replayable seed', (t) => {
  const r = sim(['--whole-node', '--seeds', '2', '--base', '7', '--ticks', '120', '--no-progress']);
  t.equal(r.code, 0, r.err);
  const lines = r.out.trim().split('\n');
  t.match(lines[0], /^whole-node base seed 7 /, 'the base is printed first');
  const last = JSON.parse(lines[lines.length - 1] as string) as { mode: string; seeds: number; violations: number; faults: Record<string, number> };
  t.equal(last.mode, 'whole-node');
  t.equal(last.seeds, 2);
  t.equal(last.violations, 0);
  t.ok('restoresMarked' in last.faults && 'permanentFailures' in last.faults && 'rollingRestarts' in last.faults, 'whole-node fault counters present');
  const a = sim(['--whole-node', '--seed', '7', '--ticks', '120']);
  const b = sim(['--whole-node', '--seed', '7', '--ticks', '120']);
  t.equal(a.code, 0, a.err);
  t.equal(a.out, b.out, 'one seed replays to identical output, trace hash included');
  t.match(a.out, /trace hash [0-9a-f]{16}/);
  t.end();
});
