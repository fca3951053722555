/**
 * The Custody key-value service from an attacker's seat: an operator certificate (an auditor's)
 * and even a writer's certificate try to append raw entries to a ledger node's Raft log; an
 * auditor tries to write a key-value cluster; a writer tries to flood one. The server runs in
 * process over real mutual TLS; the Raft driver is a recorder, so "nothing reached Raft" is
 * observed directly.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { CustodyClient } from '../../node/client.js';
import { ensureCa, issue } from '../../node/certs.js';
import { issueOperatorCert } from '../../node/admin/roles.js';
import { NodeServer } from '../../node/server.js';
import { loadTls } from '../../node/tls.js';
import { KvApp } from '../../node/kv.js';
import { isCustodyError } from '../../proto/errors.js';
import { node as nodeLimits } from '../../proto/limits.js';
import { TokenBuckets } from '../../node/rate.js';
import type { Driver } from '../../raft/driver.js';

const dir = mkdtempSync(join(tmpdir(), 'kv-adversary-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
ensureCa(dir);
issue(dir, 'node', 'n1', ['127.0.0.1', 'localhost']);
issue(dir, 'client', 'writer');
issueOperatorCert(dir, 'audit-1', 'auditor');
const ca = join(dir, 'ca.crt');
const tlsOf = (id: string) => loadTls({ ca, cert: join(dir, `${id}.crt`), key: join(dir, `${id}.key`) });

function recordingDriver(): { driver: Driver; proposed: Uint8Array[] } {
  const proposed: Uint8Array[] = [];
  const driver = {
    propose: async (_c: string, _s: number, command: Uint8Array) => {
      proposed.push(command);
      return { ok: true as const, index: proposed.length, result: new Uint8Array(32), duplicate: false };
    },
    readIndex: async () => proposed.length,
    status: () => ({ id: 'n1', role: 'leader', term: 1, leader: 'n1', commit: 0, appliedIndex: 0, lastIndex: 0, snapshotIndex: 0, root: '', conf: { voters: new Set(['n1']) } }),
    receive: () => {},
  };
  return { driver: driver as unknown as Driver, proposed };
}

// A byte bucket of 3 MiB that practically never refills, so the flood test does not depend on timing.
const PINNED = { writesBurst: 1000, writesPerSecond: 1000, bytesBurst: 3 * 1024 * 1024 + 1024, bytesPerSecond: 1 };

async function serve(t: { teardown(f: () => unknown): void }, app: KvApp | null) {
  const { driver, proposed } = recordingDriver();
  const server = new NodeServer({ id: 'n1', listen: '127.0.0.1:0', roster: new Set(['n1']), tls: tlsOf('n1'), driver, app, kvRate: PINNED });
  const port = await server.start();
  const clients: CustodyClient[] = [];
  t.teardown(async () => {
    for (const c of clients) c.close();
    await server.stop(1_000);
  });
  const client = (id: string) => {
    const c = new CustodyClient(`127.0.0.1:${port}`, 'n1', tlsOf(id));
    clients.push(c);
    return c;
  };
  return { proposed, client };
}

async function reasonOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'accepted';
  } catch (e) {
    return isCustodyError(e) ? e.reason : `not a refusal: ${String(e)}`;
  }
}

t.test('an auditor certificate cannot append to a ledger node: Propose is not served there', async (t) => {
  const s = await serve(t, null);
  const big = new Uint8Array(1024 * 1024);
  for (let i = 0; i < 20; i++) t.equal(await reasonOf(s.client('audit-1').propose('attacker', i + 1, `blob-${i}`, big)), 'SERVICE_NOT_SERVED', `1 MB put ${i} refused`);
  t.equal(await reasonOf(s.client('writer').propose('w', 1, 'k', new Uint8Array(8))), 'SERVICE_NOT_SERVED', 'not even a writer certificate appends raw entries to a ledger');
  t.equal(await reasonOf(s.client('n1').propose('node', 1, 'k', new Uint8Array(8))), 'SERVICE_NOT_SERVED', 'nor a node certificate');
  t.equal(await reasonOf(s.client('audit-1').read('k')), 'SERVICE_NOT_SERVED', 'Read is not served either');
  t.equal(s.proposed.length, 0, 'nothing reached Raft');
  const st = await s.client('audit-1').status();
  t.equal(st.id, 'n1', 'Status stays served');
});

t.test('on a key-value cluster only a writer certificate writes', async (t) => {
  const s = await serve(t, new KvApp());
  t.equal(await reasonOf(s.client('audit-1').propose('attacker', 1, 'k', new Uint8Array(8))), 'ROLE_NOT_ALLOWED', 'an operator certificate is refused');
  t.equal(await reasonOf(s.client('n1').propose('node', 1, 'k', new Uint8Array(8))), 'ROLE_NOT_ALLOWED', 'a node certificate is refused');
  t.equal(s.proposed.length, 0, 'the refused writes never reached Raft');
  t.equal(await reasonOf(s.client('writer').propose('w', 1, 'k', new Uint8Array(8))), 'accepted', 'the writer writes');
  t.equal(s.proposed.length, 1);
});

t.test('a writer that floods is cut off at its bucket', async (t) => {
  const s = await serve(t, new KvApp());
  const w = s.client('writer');
  const value = new Uint8Array(1024 * 1024);
  const reasons: string[] = [];
  for (let i = 0; i < 20; i++) reasons.push(await reasonOf(w.propose('w', i + 1, `k${i}`, value)));
  t.same(reasons.slice(0, 3), ['accepted', 'accepted', 'accepted'], 'the burst is served');
  t.same(new Set(reasons.slice(3)), new Set(['LIMIT_EXCEEDED']), 'every write past the byte budget is refused with its code');
  t.equal(s.proposed.length, 3, 'only the budget reached Raft');
  t.equal(await reasonOf(s.client('audit-1').propose('a', 1, 'k', new Uint8Array(1))), 'ROLE_NOT_ALLOWED', 'another identity is not served from the writer\'s bucket either way');
});

t.test('token buckets: burst, refill, and a refused take takes nothing', async (t) => {
  const b = new TokenBuckets(3, 1);
  t.ok(b.take('a', 3, 0));
  t.notOk(b.take('a', 1, 0), 'empty');
  t.notOk(b.take('a', 1, 500), 'half a token is not one');
  t.ok(b.take('a', 1, 1000), 'one refilled');
  t.ok(b.take('b', 3, 1000), 'buckets are per identity');
  t.notOk(b.take('a', 4, 100_000), 'never more than the burst');
  t.ok(nodeLimits.kvWriteBytesBurst >= nodeLimits.clientRequestBytesMax - 64 * 1024, 'one largest request fits the byte burst');
});
