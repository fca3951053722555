/**
 * A test client that runs inside one network namespace (`ip netns exec <ns> node netns-agent.js`)
 * and talks to the node on that host, for a test process that stays in the host namespace.
 * Protocol: one JSON request per stdin line, one JSON reply per stdout line, matched by `id`.
 *   { id, op: 'status' }                                  -> the node's /status
 *   { id, op: 'propose', clientId, seq, key, value, timeoutMs } -> { index, duplicate }
 *   { id, op: 'read', key, timeoutMs }
 *   { id, op: 'metrics' }                                 -> the node's /metrics text
 */
import { createInterface } from 'node:readline';
import { CustodyClient } from '../../node/client.js';
import { fetchStatus } from '../../node/cluster.js';
import { loadTls } from '../../node/tls.js';
import { CustodyError } from '../../proto/errors.js';

const [grpcAddress, httpAddress, nodeId, ca, cert, key] = process.argv.slice(2) as [string, string, string, string, string, string];
const client = new CustodyClient(grpcAddress, nodeId, loadTls({ ca, cert, key }));

const reply = (o: object): void => {
  process.stdout.write(`${JSON.stringify(o)}\n`);
};

createInterface({ input: process.stdin }).on('line', (line) => {
  const req = JSON.parse(line) as { id: number; op: string; clientId?: string; seq?: number; key?: string; value?: string; timeoutMs?: number };
  const done = (p: Promise<unknown>): void => {
    p.then(
      (result) => reply({ id: req.id, ok: true, result }),
      (e: unknown) => reply({ id: req.id, ok: false, reason: e instanceof CustodyError ? e.reason : 'INTERNAL', detail: String(e) }),
    );
  };
  if (req.op === 'status') done(fetchStatus(httpAddress, 1_000));
  else if (req.op === 'metrics') done(fetch(`http://${httpAddress}/metrics`, { signal: AbortSignal.timeout(5_000) }).then((r) => r.text()));
  else if (req.op === 'propose') done(client.propose(req.clientId as string, req.seq as number, req.key as string, Buffer.from(req.value ?? ''), req.timeoutMs).then((r) => ({ index: r.index, duplicate: r.duplicate })));
  else if (req.op === 'read') done(client.read(req.key as string, req.timeoutMs).then((r) => ({ index: r.index, found: r.found, value: r.value.toString() })));
  else reply({ id: req.id, ok: false, reason: 'INVALID_ARGUMENT', detail: `unknown op ${req.op}` });
});
process.stdin.on('end', () => {
  client.close();
  process.exit(0);
});
