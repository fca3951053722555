/**
 * The blob exchange between daemons (LifecyclePeer.Put/Get) from an attacker's seat: a node
 * certificate puts another node's key, overwrites a package, floods the store, or races a relay
 * in before the author; and the store survives a restart of the daemon in its LevelDB and is
 * dropped when the ceremony it belongs to ends. Real mutual TLS, real LevelDB.
 */
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ensureCa, issue } from '../../node/certs.js';
import { adminPackage } from '../../node/admin/server.js';
import { loadTls, serverCredentials } from '../../node/tls.js';
import { type BlobStore, MemoryBlobStore, PeerClient, PeerExchange, blobAuthor, levelBlobStore, peerHandlers } from '../../node/lifecycle/peer.js';
import { keys } from '../../node/lifecycle/participant.js';
import type { ParticipantPort } from '../../node/lifecycle/ports.js';
import { LevelStorage } from '../../raft/storage/leveldb.js';
import { isCustodyError } from '../../proto/errors.js';
import { lifecycle as limits } from '../../proto/limits.js';
import type { ClusterState } from '../../ledger/state.js';

const dir = mkdtempSync(join(tmpdir(), 'blob-adversary-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
ensureCa(dir);
for (const n of ['n1', 'n2', 'n3']) issue(dir, 'node', n, ['127.0.0.1', 'localhost']);
const tlsOf = (id: string) => loadTls({ ca: join(dir, 'ca.crt'), cert: join(dir, `${id}.crt`), key: join(dir, `${id}.key`) });
const noParticipant = { nodeId: 'n1', commit: async () => { throw new Error('unused'); }, sign: async () => { throw new Error('unused'); } } as ParticipantPort;

/** n1's exchange served over mTLS; clients hold n2's and n3's node certificates. */
async function serveN1(t: { teardown(f: () => unknown): void }, store: BlobStore) {
  const exchange = new PeerExchange('n1', [], () => {}, store);
  const server = new grpc.Server();
  server.addService(adminPackage()['custody.admin.v1.LifecyclePeer'] as grpc.ServiceDefinition, peerHandlers({ participant: noParticipant, exchange, isNode: (id) => ['n1', 'n2', 'n3'].includes(id) }));
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', serverCredentials(tlsOf('n1')), (e, p) => (e ? rej(e) : res(p))));
  const clients: PeerClient[] = [];
  t.teardown(() => {
    for (const c of clients) c.close();
    server.forceShutdown();
  });
  const as = (id: string) => {
    const c = new PeerClient('n1', `127.0.0.1:${port}`, tlsOf(id));
    clients.push(c);
    return c;
  };
  return { exchange, as, port };
}

async function reasonOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'accepted';
  } catch (e) {
    return isCustodyError(e) ? e.reason : `not a refusal: ${String(e)}`;
  }
}

t.test('keys name their author', async (t) => {
  t.equal(blobAuthor(keys.transport('n2')), 'n2');
  t.equal(blobAuthor(keys.round1('k/with/slashes', 3, 'n2')), 'n2');
  t.equal(blobAuthor(keys.round2('k1', 0, 'n2', 'n3')), 'n2', 'a sealed round-2 package is its sender\'s');
  t.equal(blobAuthor(keys.publicPackage('k1', 0, 'n3')), 'n3');
  for (const k of ['', 'x', 'transport/', 'transport/a/b', 'dkg/k1/0/round3/n2', 'dkg/k1/x/round1/n2', '../transport/n2', 'dkg/k1/0/round2/n2']) t.equal(blobAuthor(k), null, `no author: ${JSON.stringify(k)}`);
});

t.test('a peer puts only its own keys, first write wins', async (t) => {
  const s = await serveN1(t, new MemoryBlobStore());
  const n2 = s.as('n2');
  const bytes = new Uint8Array([1, 2, 3]);
  t.equal(await reasonOf(n2.call('Put', { key: keys.publicPackage('k1', 0, 'n3'), value: Buffer.from(bytes) }, 5_000)), 'BLOB_KEY_FOREIGN', 'n2 cannot put n3\'s public package');
  t.equal(await reasonOf(n2.call('Put', { key: keys.round2('k1', 0, 'n3', 'n1'), value: Buffer.from(bytes) }, 5_000)), 'BLOB_KEY_FOREIGN', 'nor a round-2 package sent by n3');
  t.equal(await reasonOf(n2.call('Put', { key: 'anything/n2', value: Buffer.from(bytes) }, 5_000)), 'BLOB_KEY_FOREIGN', 'nor a key that names no author');
  t.equal(s.exchange.local(keys.publicPackage('k1', 0, 'n3')), undefined, 'nothing stored for n3');
  const own = keys.round1('k1', 0, 'n2');
  t.equal(await reasonOf(n2.call('Put', { key: own, value: Buffer.from(bytes) }, 5_000)), 'accepted', 'its own round-1 package is stored');
  t.equal(await reasonOf(n2.call('Put', { key: own, value: Buffer.from(bytes) }, 5_000)), 'accepted', 'the same bytes again are a no-op');
  t.equal(await reasonOf(n2.call('Put', { key: own, value: Buffer.from([9]) }, 5_000)), 'BLOB_EXISTS', 'other bytes are refused, even from the author');
  t.same([...(s.exchange.local(own) ?? [])], [1, 2, 3], 'the first write stands');
  t.equal(await reasonOf(s.exchange.put(keys.round1('k1', 0, 'n3'), bytes)), 'BLOB_KEY_FOREIGN', 'this node puts only its own keys too');
});

t.test('one author\'s budget: bytes and count', async (t) => {
  const s = await serveN1(t, new MemoryBlobStore());
  const n3 = s.as('n3');
  const big = Buffer.alloc(limits.blobBytesMax + 1);
  t.equal(await reasonOf(n3.call('Put', { key: keys.round1('big', 0, 'n3'), value: big }, 5_000)), 'BLOB_BUDGET_EXCEEDED', 'a blob over the size bound');
  const full = Buffer.alloc(limits.blobBytesMax, 7);
  const fits = Math.floor(limits.blobAuthorBytesMax / limits.blobBytesMax);
  for (let i = 0; i < fits; i++) t.equal(await reasonOf(n3.call('Put', { key: keys.round1(`k${i}`, 0, 'n3'), value: full }, 5_000)), 'accepted', `fill ${i}`);
  t.equal(s.exchange.heldBy('n3').bytes, fits * limits.blobBytesMax, 'the author holds its budget');
  t.equal(await reasonOf(n3.call('Put', { key: keys.round1('one-more', 0, 'n3'), value: full }, 5_000)), 'BLOB_BUDGET_EXCEEDED', 'one more is refused');
  t.equal(await reasonOf(s.as('n2').call('Put', { key: keys.round1('k0', 0, 'n2'), value: full }, 5_000)), 'accepted', 'another author is not starved by it');
  t.ok(limits.blobsPerAuthorMax * 1 <= limits.blobAuthorBytesMax, 'the count bound is reached before the bytes with one-byte blobs');
});

t.test('the count bound', async (t) => {
  const store = new MemoryBlobStore();
  const x = new PeerExchange('n1', [], () => {}, store);
  for (let i = 0; i < limits.blobsPerAuthorMax; i++) await x.store(keys.round1(`c${i}`, 0, 'n2'), new Uint8Array([1]), 'n2');
  t.equal(await reasonOf(x.store(keys.round1('over', 0, 'n2'), new Uint8Array([1]), 'n2')), 'BLOB_BUDGET_EXCEEDED');
  t.equal(x.heldBy('n2').count, limits.blobsPerAuthorMax);
});

t.test('a relay cannot take a key before its author', async (t) => {
  // n1 fetches n3's package while n3 is away; n2 answers with bytes of its choosing.
  const relay = await serveN1(t, new MemoryBlobStore());
  await relay.exchange.store(keys.publicPackage('k1', 0, 'n3'), new Uint8Array([6, 6, 6]), 'n3');
  const reader = new PeerExchange('n4', [new PeerClient('n1', `127.0.0.1:${relay.port}`, tlsOf('n2'))], () => {});
  t.teardown(() => reader.close());
  const got = await reader.get(keys.publicPackage('k1', 0, 'n3'));
  t.same([...(got ?? [])], [6, 6, 6], 'the relayed bytes are handed to the caller (who checks them against the ledger)');
  t.equal(reader.local(keys.publicPackage('k1', 0, 'n3')), undefined, 'but not stored: the author\'s own put still lands');
  await reader.store(keys.publicPackage('k1', 0, 'n3'), new Uint8Array([1]), 'n3');
  t.same([...(reader.local(keys.publicPackage('k1', 0, 'n3')) ?? [])], [1]);
});

function clusterWith(status: string, nodes: string[]): ClusterState {
  const epoch = { epoch: 0, status };
  return { keys: { k1: { epochs: { '0': epoch } } }, nodes: Object.fromEntries(nodes.map((n) => [n, { status: 'active' }])) } as unknown as ClusterState;
}

t.test('kept in LevelDB across a restart, dropped when the ceremony ends', async (t) => {
  const data = join(dir, 'store');
  const conf = { voters: ['n1'], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
  let storage = await LevelStorage.open({ dir: data, bootstrapConf: conf, recoveryHint: 'test' });
  let x = new PeerExchange('n1', [], () => {}, levelBlobStore(storage));
  await x.put(keys.round1('k1', 0, 'n1'), new Uint8Array([1]));
  await x.store(keys.round2('k1', 0, 'n2', 'n1'), new Uint8Array([2]), 'n2');
  await x.store(keys.publicPackage('k1', 0, 'n2'), new Uint8Array([3]), 'n2');
  await x.store(keys.transport('n2'), new Uint8Array([4]), 'n2');
  await x.store(keys.transport('n3'), new Uint8Array([5]), 'n3');
  await storage.close();

  storage = await LevelStorage.open({ dir: data, bootstrapConf: conf, recoveryHint: 'test' });
  t.teardown(() => storage.close());
  x = new PeerExchange('n1', [], () => {}, levelBlobStore(storage));
  t.same([...(x.local(keys.round2('k1', 0, 'n2', 'n1')) ?? [])], [2], 'a restarted daemon still holds what it took');
  t.same(x.heldBy('n2'), { bytes: 3, count: 3 }, 'and counts it against its author');
  t.equal(await reasonOf(x.store(keys.round2('k1', 0, 'n2', 'n1'), new Uint8Array([9]), 'n2')), 'BLOB_EXISTS', 'first write still wins after the restart');

  t.equal(await x.prune(clusterWith('ceremony', ['n1', 'n2', 'n3'])), 0, 'nothing ends while the ceremony runs');
  t.equal(await x.prune(clusterWith('active', ['n1', 'n2'])), 3, 'round 1, round 2 and the removed node\'s transport statement go');
  t.equal(x.local(keys.round1('k1', 0, 'n1')), undefined);
  t.equal(x.local(keys.transport('n3')), undefined);
  t.same([...(x.local(keys.publicPackage('k1', 0, 'n2')) ?? [])], [3], 'the public package stays while the epoch is active');
  t.equal(await x.prune(clusterWith('superseded', ['n1', 'n2'])), 1, 'and goes with its epoch');
  const left = levelBlobStore(storage).load();
  t.same([...left].map(([k]) => k), [keys.transport('n2')], 'the store on disk holds exactly what is left');
});
