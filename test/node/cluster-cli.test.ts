/**
 * `custody cluster up|down|status` over a directory of node configs, with progress output and
 * `status --json` showing each node's role, term, leader, commit and applied index; the daemons'
 * /metrics, /healthz and /readyz endpoints.
 */
import t from 'tap';
import { Cluster, until } from './harness.js';

t.test('cluster up starts every node and waits for readiness; status --json; down stops them gracefully', async (t) => {
  const c = await Cluster.create(t, 3);
  t.teardown(async () => {
    await c.cli(['cluster', 'down', '--config', c.dir]);
  });
  const up = await c.cli(['cluster', 'up', '--config', c.dir, '--timeout', '120000']);
  t.equal(up.code, 0, 'cluster up succeeded');
  for (const id of ['n1', 'n2', 'n3']) {
    t.match(up.out, new RegExp(`${id}: started \\(pid \\d+\\)`), `progress: ${id} started`);
    t.match(up.out, new RegExp(`${id}: ready`), `progress: ${id} ready`);
  }
  const leader = await c.stableLeader();
  const st = await c.cli(['cluster', 'status', '--config', c.dir, '--json']);
  t.equal(st.code, 0);
  const rows = JSON.parse(st.out) as { id: string; up: boolean; role: string; term: number; leader: string; commit: number; applied: number }[];
  t.same(rows.map((r) => r.id), ['n1', 'n2', 'n3']);
  t.ok(rows.every((r) => r.up && typeof r.term === 'number' && typeof r.commit === 'number' && typeof r.applied === 'number'), 'role, term, commit, applied for each node');
  t.equal(rows.filter((r) => r.role === 'leader').length, 1, 'one leader');
  t.ok(rows.every((r) => r.leader === leader.id), 'all name the same leader');
  const table = await c.cli(['cluster', 'status', '--config', c.dir]);
  t.match(table.out, /node\s+state\s+role\s+term\s+leader\s+commit\s+applied/, 'a human-readable table too');

  const cl = c.client(leader.id);
  t.teardown(() => cl.close());
  const w = await cl.propose('cli-test', 1, 'k', Buffer.from('v'), 30_000);
  t.ok(w.index > 0, 'a write commits');
  const s = c.spec(leader.id);
  const base = `http://${s.host}:${s.httpPort}`;
  t.equal((await fetch(`${base}/healthz`)).status, 200, '/healthz');
  await until('/readyz', async () => (await fetch(`${base}/readyz`)).status === 200);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  for (const name of ['custody_raft_term', 'custody_raft_is_leader', 'custody_raft_leader', 'custody_raft_commit_index', 'custody_raft_applied_index',
    'custody_proposals_total', 'custody_raft_append_duration_seconds_bucket', 'custody_raft_fsync_duration_seconds_bucket', 'custody_peer_reachable']) {
    t.match(metrics, new RegExp(`^${name}`, 'm'), `/metrics exports ${name}`);
  }
  t.match(metrics, /^custody_raft_is_leader 1$/m, 'the leader reports itself as leader');
  t.match(metrics, /^custody_proposals_total\{result="committed"\} [1-9]/m, 'the committed proposal is counted');
  t.match(metrics, /^custody_peer_reachable\{peer="n\d"\} 1$/m, 'peer reachability');

  const down = await c.cli(['cluster', 'down', '--config', c.dir]);
  t.equal(down.code, 0, 'cluster down succeeded');
  for (const id of ['n1', 'n2', 'n3']) t.match(down.out, new RegExp(`${id}: stopped`), `${id} stopped`);
  for (const id of ['n1', 'n2', 'n3']) t.match(c.log(id), new RegExp(`node ${id} stopped`), `${id} shut down gracefully`);
  const after = await c.cli(['cluster', 'status', '--config', c.dir, '--json']);
  t.ok((JSON.parse(after.out) as { up: boolean }[]).every((r) => !r.up), 'status shows every node down');
});
