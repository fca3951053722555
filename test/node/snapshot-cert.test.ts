/**
 * Certified Raft snapshots (node/snapshot-cert.ts), attacked: a follower installs a snapshot only
 * when a majority of the voters it knows cosigned exactly the snapshot's content. Three honest
 * replicas apply the same scripted ledger; a hostile node holding one node's identity key tries
 * to get a forged or altered snapshot past the check.
 */
import t from 'tap';
import fc from 'fast-check';
import { ScriptedCluster } from '../../ledger/scenario.js';
import { LedgerApp, encodeLedgerCommand } from '../../node/ledger-app.js';
import { SnapshotCertifier, checkCertifiedSnapshot, snapshotCheckpointText } from '../../node/snapshot-cert.js';
import { parseSnapshotEnvelope, snapshotEnvelope, snapshotWithCertificate } from '../../raft/driver.js';
import { cosignatureSigner, signNote } from '../../ledger/tlog/note.js';
import { nodeSignerName } from '../../ledger/tlog/ledger-log.js';
import { seedOf } from '../../ledger/scenario.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import type { Snapshot, SnapshotMeta } from '../../raft/core/types.js';

const s = new ScriptedCluster({ nodes: 3, label: 'snapshot-cert' });
s.genesis();
s.createKey('k1');
for (let i = 0; i < 3; i++) {
  const op = `op-${i}`;
  s.submit(op, s.act('k1', { amount: 100n + BigInt(i) }));
  s.issuePermit(op);
}
const commands = s.log.map((e) => encodeLedgerCommand(e.stampMs, e.event));
const ids = s.nodes.map((n) => n.info.id);
const voters = s.nodes.map((n) => ({ id: n.info.id, identityKey: n.info.identityKey }));
const trust = { clusterId: s.clusterId, voters };

function replica(upTo = commands.length): LedgerApp {
  const app = new LedgerApp();
  commands.slice(0, upTo).forEach((c, i) => app.apply(i + 1, c));
  return app;
}

const R = 40;
const meta: SnapshotMeta = { index: R, term: 3, conf: { voters: ids, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } };
const dataOf = (app: LedgerApp, sessions: [string, unknown][] = []): Uint8Array => snapshotEnvelope(3, sessions as never, app.snapshot());

interface Node { readonly id: string; readonly app: LedgerApp; readonly cert: SnapshotCertifier; stored: Snapshot }

/** Three honest nodes, each holding its own snapshot at R, cosigning for each other in process. */
function cluster(): Node[] {
  const nodes: Node[] = [];
  for (const [i, sn] of s.nodes.entries()) {
    const app = replica();
    const stored: Snapshot = { meta, data: dataOf(app) };
    const node: Node = {
      id: sn.info.id, app, stored,
      cert: new SnapshotCertifier({
        nodeId: sn.info.id, identitySecretKey: sn.secretKey, app, stored: () => node.stored, now: () => 1_700_000_000_000 + i,
        peers: () => nodes.filter((p) => p.id !== sn.info.id).map((p) => ({ nodeId: p.id, cosignSnapshot: async (index: number) => p.cert.cosign(index) })),
      }),
    };
    node.cert.recorded(R, meta.term, node.cert.statement(meta, stored.data) as string);
    nodes.push(node);
  }
  return nodes;
}

t.test('a snapshot a majority certified installs on a lagging follower; every alteration of it is refused SNAPSHOT_NOT_CERTIFIED', async (t) => {
  const [a] = cluster();
  const note = await a!.cert.gather(meta, a!.stored.data);
  const genuine = snapshotWithCertificate(a!.stored.data, note);
  // The follower is far behind (it applied the genesis only): it checks against its own roster.
  const follower = new SnapshotCertifier({ nodeId: 'node-2', identitySecretKey: s.nodes[2]!.secretKey, app: replica(1), stored: () => ({ meta: { ...meta, index: 0 }, data: new Uint8Array(0) }) });
  t.equal(follower.check(meta, genuine), null, 'the genuine snapshot passes');

  const refused = (m: SnapshotMeta, d: Uint8Array, why: string): void => {
    const r = follower.check(m, d);
    t.equal(r?.reason, 'SNAPSHOT_NOT_CERTIFIED', why);
  };
  // The genuine note over another state (a replica that applied fewer entries).
  refused(meta, snapshotWithCertificate(dataOf(replica(commands.length - 1)), note), 'a genuine note with another state');
  // The genuine note and state, with a higher term or another index in the Raft meta.
  refused({ ...meta, term: 9 }, genuine, 'a higher term');
  refused({ ...meta, index: R + 8 }, genuine, 'another index');
  // A membership that makes the follower a cluster of one.
  refused({ ...meta, conf: { ...meta.conf, voters: ['node-2'] } }, genuine, 'another configuration');
  // Client sessions that would make the follower skip a command its peers apply.
  refused(meta, snapshotWithCertificate(dataOf(a!.app, [['client-x', { seq: 1_000, digest: 'x', index: 1, ok: true, result: '' }]]), note), 'forged client sessions');
  // No certificate at all.
  refused(meta, a!.stored.data, 'no certificate');
});

t.test('a note cosigned by one node of three, or with a removed node counted, is refused', async (t) => {
  const forged = dataOf(replica(commands.length - 2));
  const { text } = snapshotCheckpointText(meta, forged);
  const signer = (i: number) => cosignatureSigner(nodeSignerName(s.clusterId, ids[i]!), s.nodes[i]!.secretKey, 1_700_000_000);
  // A hostile node holding node-0's key signs its made-up state.
  const one = snapshotWithCertificate(forged, signNote(text, [signer(0)]));
  t.equal(checkCertifiedSnapshot(meta, one, trust)?.reason, 'SNAPSHOT_NOT_CERTIFIED');
  t.match(checkCertifiedSnapshot(meta, one, trust)?.detail, /QUORUM_NOT_MET/);
  // A stranger's key (a node the follower does not know, or no longer counts) adds nothing.
  const strangerSeed = seedOf('snapshot-cert/stranger');
  const stranger = cosignatureSigner(nodeSignerName(s.clusterId, 'node-9'), strangerSeed, 1_700_000_000);
  t.equal(checkCertifiedSnapshot(meta, snapshotWithCertificate(forged, signNote(text, [signer(0), stranger])), trust)?.reason, 'SNAPSHOT_NOT_CERTIFIED', 'an unknown key does not count');
  // node-1 was removed from the follower's roster: its cosignature no longer counts, so two
  // signatures of three are one of the two voters the follower knows.
  const two = snapshotWithCertificate(forged, signNote(text, [signer(0), signer(1)]));
  t.equal(checkCertifiedSnapshot(meta, two, trust), null, 'two of three voters certify (the control)');
  const withoutRemoved = { clusterId: s.clusterId, voters: voters.filter((v) => v.id !== 'node-1').concat([{ id: 'node-9', identityKey: ed25519.getPublicKey(strangerSeed) }]) };
  t.equal(checkCertifiedSnapshot(meta, two, withoutRemoved)?.reason, 'SNAPSHOT_NOT_CERTIFIED', 'a removed node\'s cosignature does not count');
  // A node that knows no voters installs nothing.
  t.equal(checkCertifiedSnapshot(meta, two, null)?.reason, 'SNAPSHOT_NOT_CERTIFIED');
});

t.test('a voter cosigns only its own snapshot: a leader with another state gathers no majority', async (t) => {
  const nodes = cluster();
  const [a, b, c] = nodes;
  // The leader's replica differs (a hostile leader, or a diverged one): b and c sign their own text.
  const liar = replica(commands.length - 1);
  a!.stored = { meta, data: dataOf(liar) };
  a!.cert.recorded(R, meta.term, a!.cert.statement(meta, a!.stored.data) as string);
  await t.rejects(a!.cert.gather(meta, a!.stored.data), { name: 'CustodyError', reason: 'CHECKPOINT_DIVERGED' }, 'no majority for another state');
  // A node that holds no snapshot at the index asked refuses to cosign it.
  t.throws(() => b!.cert.cosign(R + 8), { name: 'CustodyError', reason: 'SNAPSHOT_NOT_CERTIFIED' }, 'no own snapshot there');
  // With two honest voters the same note is gathered by either of them.
  const note = await b!.cert.gather(meta, b!.stored.data);
  t.equal(checkCertifiedSnapshot(meta, snapshotWithCertificate(c!.stored.data, note), trust), null, 'the honest majority certifies the honest snapshot');
});

t.test('certificate() gathers beside the caller and answers null until a majority signed', async (t) => {
  const [a] = cluster();
  t.equal(a!.cert.certificate(meta, a!.stored.data), null, 'none yet: gathering starts');
  await new Promise((r) => setImmediate(r));
  const note = a!.cert.certificate(meta, a!.stored.data);
  t.type(note, 'string', 'then the note');
  t.equal(checkCertifiedSnapshot(meta, snapshotWithCertificate(a!.stored.data, note as string), trust), null);
});

t.test('a single-node cluster certifies its snapshots by its own cosignature', async (t) => {
  const one = new ScriptedCluster({ nodes: 1, label: 'snapshot-cert-one' });
  one.genesis();
  const app = new LedgerApp();
  one.log.forEach((e, i) => app.apply(i + 1, encodeLedgerCommand(e.stampMs, e.event)));
  const m: SnapshotMeta = { index: 8, term: 1, conf: { voters: ['node-0'], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } };
  const data = snapshotEnvelope(1, [], app.snapshot());
  const cert = new SnapshotCertifier({ nodeId: 'node-0', identitySecretKey: one.nodes[0]!.secretKey, app, stored: () => ({ meta: m, data }) });
  const note = await cert.gather(m, data);
  t.equal(cert.check(m, snapshotWithCertificate(data, note)), null);
});

t.test('property: any byte changed in the application state of a certified snapshot is refused', async (t) => {
  const [a] = cluster();
  const note = await a!.cert.gather(meta, a!.stored.data);
  const genuine = snapshotWithCertificate(a!.stored.data, note);
  const app = parseSnapshotEnvelope(genuine).app;
  const start = genuine.length - app.length;
  fc.assert(fc.property(fc.integer({ min: 0, max: app.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, x) => {
    const d = Uint8Array.from(genuine);
    d[start + at] = (d[start + at] as number) ^ x;
    return checkCertifiedSnapshot(meta, d, trust)?.reason === 'SNAPSHOT_NOT_CERTIFIED';
  }), { numRuns: 200 });
  t.pass('every altered byte refused');
});
