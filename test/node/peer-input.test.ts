/**
 * Acceptance 4: bad input on the peer port is refused (with a reason code wherever a gRPC channel
 * exists to carry one) and the node keeps serving.
 */
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureCa, issue } from '../../node/certs.js';
import { channelCredentials, identityOptions, loadTls, type TlsMaterial } from '../../node/tls.js';
import { packageDefinition, REASON_METADATA_KEY } from '../../node/wire.js';
import { node as nodeLimits } from '../../proto/limits.js';
import { Cluster, until } from './harness.js';

interface Refusal {
  code: number;
  reason: string | null;
  details: string;
}

/** Open a RaftPeer stream with raw frame bytes and report how the server ended it. */
function rawStream(address: string, serverId: string, tls: TlsMaterial, frames: Buffer[]): Promise<Refusal> {
  const client = new grpc.Client(address, channelCredentials(tls), { ...identityOptions(serverId), 'grpc.max_send_message_length': -1 });
  return new Promise((resolve) => {
    const call = client.makeClientStreamRequest<Buffer, Buffer>(
      '/custody.raft.v1.RaftPeer/Stream',
      (b: Buffer) => b,
      (b: Buffer) => b,
      new grpc.Metadata(),
      { deadline: Date.now() + 30_000 },
      (e) => {
        client.close();
        const reason = e?.metadata?.get(REASON_METADATA_KEY)[0];
        resolve({ code: e ? e.code : grpc.status.OK, reason: typeof reason === 'string' ? reason : null, details: e?.details ?? '' });
      },
    );
    call.on('error', () => {});
    for (const f of frames) call.write(f);
    call.end();
  });
}

function encodeBatch(batch: object): Buffer {
  const def = packageDefinition()['custody.raft.v1.RaftPeer'] as unknown as Record<string, { requestSerialize(v: object): Buffer }>;
  return (def.Stream as { requestSerialize(v: object): Buffer }).requestSerialize(batch);
}

const heartbeat = (from: string, to: string) => ({ type: 'HEARTBEAT', from, to, term: 1, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, context: Buffer.alloc(0) });

t.test('bad input on the peer port is refused with a reason code and the node keeps serving', async (t) => {
  const c = await Cluster.create(t, 3);
  c.startAll();
  const l = await c.stableLeader();
  const target = l.id;
  const spec = c.spec(target);
  const address = `${spec.host}:${spec.grpcPort}`;
  const other = ['n1', 'n2', 'n3'].find((id) => id !== target) as string;
  const third = ['n1', 'n2', 'n3'].find((id) => id !== target && id !== other) as string;
  const peerTls = loadTls({ ca: join(c.dir, 'certs', 'ca.crt'), cert: join(c.dir, 'certs', `${other}.crt`), key: join(c.dir, 'certs', `${other}.key`) });
  const cl = c.client(target);
  t.teardown(() => cl.close());
  let seq = 0;
  const stillServing = async (what: string): Promise<void> => {
    const r = await cl.propose('probe', ++seq, `after-${seq}`, Buffer.from(what), 30_000);
    t.ok(r.index > 0, `still serving after ${what}`);
  };

  // 1. Garbage bytes straight onto the TCP port (not TLS at all).
  const ended = await new Promise<'closed by the server' | 'still open after 30 s'>((resolve) => {
    const s = connect(spec.grpcPort, spec.host, () => s.write(Buffer.from('GET / HTTP/1.1\r\n\r\n\x00\xff\xfe garbage \x16\x03\x01')));
    s.on('error', () => resolve('closed by the server'));
    s.on('close', () => resolve('closed by the server'));
    s.setTimeout(30_000, () => {
      resolve('still open after 30 s');
      s.destroy();
    });
  });
  t.equal(ended, 'closed by the server', 'the server closed a connection of garbage bytes');
  await stillServing('garbage TCP bytes');

  // 2. A well-authenticated peer sending an undecodable frame.
  const garbage = await rawStream(address, target, peerTls, [Buffer.from([0xff, 0xff, 0xff, 0x0f, 0x01, 0x02, 0x03])]);
  t.equal(garbage.reason, 'FRAME_MALFORMED', `undecodable frame refused: ${garbage.details}`);
  t.equal(garbage.code, grpc.status.INVALID_ARGUMENT);
  await stillServing('an undecodable frame');

  // 3. Oversized frames: above the peer batch bound, and above the gRPC message limit.
  const tooBig = Buffer.alloc(nodeLimits.peerBatchBytesMax + 1024, 0);
  const over = await rawStream(address, target, peerTls, [tooBig]);
  t.equal(over.reason, 'FRAME_TOO_LARGE', `frame above the batch bound refused: ${over.details}`);
  t.equal(over.code, grpc.status.RESOURCE_EXHAUSTED);
  const huge = await rawStream(address, target, peerTls, [Buffer.alloc(nodeLimits.peerMessageBytesMax + 1024, 0)]);
  t.equal(huge.code, grpc.status.RESOURCE_EXHAUSTED, `frame above the gRPC message limit refused by the transport: ${huge.details}`);
  await stillServing('oversized frames');

  // 4. A valid peer certificate claiming to be another node.
  const spoof = await rawStream(address, target, peerTls, [encodeBatch({ from: third, messages: [heartbeat(third, target)] })]);
  t.equal(spoof.reason, 'PEER_IDENTITY_MISMATCH', `a frame claiming another node's identity is refused: ${spoof.details}`);
  t.equal(spoof.code, grpc.status.PERMISSION_DENIED);
  const inner = await rawStream(address, target, peerTls, [encodeBatch({ from: other, messages: [heartbeat(third, target)] })]);
  t.equal(inner.reason, 'PEER_IDENTITY_MISMATCH', 'a message inside a batch claiming another node is refused');
  const misaddressed = await rawStream(address, target, peerTls, [encodeBatch({ from: other, messages: [heartbeat(other, 'n9')] })]);
  t.equal(misaddressed.reason, 'WRONG_RECIPIENT', 'a message addressed to another node is refused');
  // A client certificate (not a node) on the peer service.
  const clientOnPeer = await rawStream(address, target, c.tls(), [encodeBatch({ from: 'tester', messages: [] })]);
  t.equal(clientOnPeer.reason, 'PEER_IDENTITY_MISMATCH', 'a non-node certificate may not use the peer service');
  await stillServing('identity mismatches');

  // 5. A certificate from another CA: refused at the TLS handshake, before any frame is read; the
  //    node still logs and counts the refusal with its reason code.
  const unauthenticated = async (): Promise<number> => {
    const m = await (await fetch(`http://${spec.host}:${spec.httpPort}/metrics`)).text();
    return Number(/custody_refused_total\{service="peer",reason="UNAUTHENTICATED"\} (\d+)/.exec(m)?.[1] ?? 0);
  };
  const before = await unauthenticated();
  const foreignDir = mkdtempSync(join(tmpdir(), 'custody-foreign-ca-'));
  t.teardown(() => rmSync(foreignDir, { recursive: true, force: true }));
  ensureCa(foreignDir, 'some other CA');
  issue(foreignDir, 'node', other, ['127.0.0.1']);
  // loadTls refuses a certificate not issued by the CA it trusts, so assemble the material by hand.
  const foreign: TlsMaterial = { ca: readFileSync(join(c.dir, 'certs', 'ca.crt')), cert: readFileSync(join(foreignDir, `${other}.crt`)), key: readFileSync(join(foreignDir, `${other}.key`)), id: other, role: 'node' };
  const alien = await rawStream(address, target, foreign, [encodeBatch({ from: other, messages: [heartbeat(other, target)] })]);
  t.equal(alien.code, grpc.status.UNAVAILABLE, `a certificate from another CA gets no channel at all: ${alien.details}`);
  await stillServing('a foreign-CA certificate');
  const after = await until('the handshake refusal is counted', async () => ((await unauthenticated()) > before ? unauthenticated() : null));
  t.ok(after > before, `UNAUTHENTICATED refusals counted: ${before} -> ${after}`);
  t.match(c.log(target), /refused peer .*: UNAUTHENTICATED: the (TLS handshake failed|client certificate is not issued by the cluster CA)/, 'the node logs the refusal with its reason code');

  // The refusals are counted by reason.
  const metrics = await (await fetch(`http://${spec.host}:${spec.httpPort}/metrics`)).text();
  for (const reason of ['FRAME_MALFORMED', 'FRAME_TOO_LARGE', 'PEER_IDENTITY_MISMATCH', 'WRONG_RECIPIENT']) {
    t.match(metrics, new RegExp(`custody_refused_total\\{service="peer",reason="${reason}"\\} [1-9]`), `${reason} counted in /metrics`);
  }
  const st = await c.stableLeader();
  t.equal(st.id, target, 'the node kept its leadership through all of it');
});
