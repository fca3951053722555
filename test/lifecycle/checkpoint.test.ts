/**
 * Certified checkpoints on three Raft replicas of the ledger (real LevelDB, in-memory network),
 * one of which joined by snapshot: each node cosigns only checkpoints of its own replica, a
 * collector's certificate verifies under a majority of the voters' keys with both act entries
 * proven, consecutive certificates reuse the note, and a peer whose replica holds other entries is
 * detected (its cosignature does not verify over the collector's text), counted, and refused when
 * no majority agrees.
 */
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NodeId } from '../../raft/core/types.js';
import { ScriptedCluster, rid } from '../../ledger/scenario.js';
import { bytesEqual } from '../../ledger/encoding.js';
import { decodeEvent } from '../../ledger/events.js';
import { certified, clusterTrust, entryLeafHash, parseNote, requireIncluded } from '../../ledger/tlog/index.js';
import { LedgerApp, encodeLedgerCommand } from '../../node/ledger-app.js';
import { Checkpointer, type CosignPeer } from '../../node/checkpoints.js';
import { Hub, until } from '../../node/lifecycle/local-cluster.js';
import { ids, startLedgerNode, stopLedgerNode, type LedgerNode as N } from './ledger-nodes.js';

const startNode = (hub: Hub, id: NodeId, dir: string): Promise<N> => startLedgerNode(hub, id, dir, { archive: true, snapshotEveryEntries: 8, compactionKeepEntries: 1 });

/** A cluster's history with one act that reaches a fixed signing set after the late node joins. */
function history(): { script: ScriptedCluster; before: number } {
  const s = new ScriptedCluster({ label: 'checkpoint' });
  s.genesis();
  s.createKey('k1');
  s.submit('settled-1', s.act('k1'));
  s.issuePermit('settled-1');
  s.execute('settled-1');
  s.publish('settled-1');
  s.settle('settled-1');
  const before = s.log.length;
  s.submit('flight-1', s.act('k1', { amount: 9n }));
  s.issuePermit('flight-1');
  s.fixSigningSet('flight-1');
  return { script: s, before };
}

function indexOf(s: ScriptedCluster, type: string, opId: string): number {
  const e = s.log.find((x) => {
    const ev = decodeEvent(x.event);
    return ev.type === type && 'opId' in ev && ev.opId === opId;
  });
  if (e === undefined) throw new Error(`no ${type} of ${opId}`);
  return e.index;
}

t.test('a 3-node cluster certifies act entries; a divergent peer is detected and counted', async (t) => {
  const hub = new Hub();
  const dirs = new Map<NodeId, string>();
  for (const id of ids) {
    const dir = await mkdtemp(join(tmpdir(), `custody-ckpt-${id}-`));
    dirs.set(id, dir);
    t.teardown(() => rm(dir, { recursive: true, force: true }));
  }
  const nodes: N[] = [await startNode(hub, 'a', dirs.get('a') as string), await startNode(hub, 'b', dirs.get('b') as string)];
  t.teardown(async () => {
    for (const n of nodes) if (hub.drivers.get(n.id) === n.driver) await stopLedgerNode(hub, n);
  });
  const { script, before } = history();
  const leader = await until('a leader', () => nodes.find((n) => n.driver.isLeader), 60_000);
  const propose = async (from: number, to: number): Promise<void> => {
    for (let i = from; i < to; i++) {
      const e = script.log[i]!;
      const o = await leader.driver.propose(`ckpt-${i}`, 1, encodeLedgerCommand(e.stampMs, e.event), 30_000);
      t.ok(o.ok, `entry ${i + 1} committed`);
    }
  };
  await propose(0, before);
  // c joins after the log is compacted: it installs a snapshot and holds no leaves before it.
  await until('the leader compacted its log', () => leader.storage.firstIndex() > 2, 30_000);
  const late = await startNode(hub, 'c', dirs.get('c') as string);
  nodes.push(late);
  await until('the late node caught up', () => late.app.state.index === before, 60_000);
  t.ok(late.app.tree.baseSize > 1 && late.app.tree.baseSize <= late.app.state.index, 'the late node\'s tree starts at the snapshot it installed');
  await propose(before, script.log.length);
  await until('every node applied everything', () => nodes.every((n) => n.app.state.index === script.log.length), 60_000);

  // The ledger's node ids are the script's (node-0..2); the Raft ids a, b, c carry them.
  const ledgerId = new Map<NodeId, string>(ids.map((id, i) => [id, script.nodes[i]!.info.id]));
  const secret = new Map(script.nodes.map((n) => [n.info.id, n.secretKey]));
  const divergences: string[] = [];
  const lines: string[] = [];
  const checkpointers = new Map<string, Checkpointer>();
  const peersOf = (self: string, override: Map<string, CosignPeer> = new Map()): (() => CosignPeer[]) => () =>
    [...checkpointers.entries()].filter(([id]) => id !== self).map(([id, c]) => override.get(id) ?? { nodeId: id, cosign: (size: number) => c.cosign(size) });
  const make = (n: N, override?: Map<string, CosignPeer>): Checkpointer => {
    const id = ledgerId.get(n.id)!;
    return new Checkpointer({ nodeId: id, identitySecretKey: secret.get(id)!, app: n.app, peers: peersOf(id, override), onDivergence: (p) => divergences.push(p), log: (l) => lines.push(l) });
  };
  for (const n of nodes) checkpointers.set(ledgerId.get(n.id)!, make(n));
  t.teardown(() => {
    for (const c of checkpointers.values()) c.stop();
  });

  const submitted = indexOf(script, 'ActSubmitted', rid('flight-1'));
  const fixed = indexOf(script, 'ActSigningSetFixed', rid('flight-1'));
  const trust = clusterTrust(script.clusterId, script.nodes.map((n) => ({ id: n.info.id, identityKey: n.info.identityKey })));
  const check = (cert: { note: string; inclusions: readonly { leafIndex: number; entry: { index: number }; proof: readonly Uint8Array[] }[] }, what: string): void => {
    const c = certified(cert.note, trust);
    t.ok(c.signers.length >= 2, `${what}: a majority of the three voters signed`);
    t.equal(c.checkpoint.size, script.log.length, `${what}: at the applied count`);
    t.same(cert.inclusions.map((i) => i.entry.index), [submitted, fixed], `${what}: the ActSubmitted and the ActSigningSetFixed, in the order asked`);
    for (const inc of cert.inclusions) {
      t.doesNotThrow(() => requireIncluded(c.checkpoint, inc.leafIndex, entryLeafHash(inc.entry as never), inc.proof), `${what}: entry ${inc.entry.index} is proven in the checkpoint`);
      t.ok(bytesEqual(entryLeafHash(inc.entry as never), entryLeafHash(script.log[inc.entry.index - 1]!)), `${what}: entry ${inc.entry.index} is the one the ledger applied`);
    }
  };
  for (const [id, c] of checkpointers) check(await c.certificate([submitted, fixed]), `collected by ${id}`);
  const lateId = ledgerId.get('c')!;
  const again = await checkpointers.get(lateId)!.certificate([submitted, fixed]);
  const first = await checkpointers.get(lateId)!.certificate([submitted]);
  t.equal(first.note, again.note, 'a certificate whose entries the last one covers reuses its note');
  await t.rejects(checkpointers.get(lateId)!.cosign(1), { name: 'CustodyError', reason: 'ENTRY_NOT_INCLUDED' }, 'the late node cosigns no size below its snapshot');
  await t.rejects(checkpointers.get(lateId)!.certificate([1]), { name: 'CustodyError', reason: 'ENTRY_NOT_INCLUDED' }, 'nor proves an entry before it');

  // A divergent replica: node-2's key over a ledger that applied another history (same length).
  const other = new ScriptedCluster({ label: 'checkpoint' });
  other.genesis();
  other.createKey('k1');
  for (let i = 0; other.log.length < script.log.length; i++) other.submit(`other-${i}`, other.act('k1', { amount: BigInt(i + 1) }));
  const forked = new LedgerApp();
  for (const e of other.log) forked.apply(0, encodeLedgerCommand(e.stampMs, e.event));
  t.equal(forked.state.index, script.log.length, 'the divergent replica has applied as many entries');
  const divergentId = ledgerId.get('c')!;
  const divergent = new Checkpointer({ nodeId: divergentId, identitySecretKey: secret.get(divergentId)!, app: forked, peers: () => [] });
  t.teardown(() => divergent.stop());
  const aId = ledgerId.get('a')!;
  const bId = ledgerId.get('b')!;
  const aNode = nodes.find((n) => n.id === 'a')!;
  const withDivergent = make(aNode, new Map([[divergentId, { nodeId: divergentId, cosign: (s: number) => divergent.cosign(s) }]]));
  t.teardown(() => withDivergent.stop());
  const cert = await withDivergent.certificate([submitted, fixed]);
  check(cert, 'with a divergent peer and an honest one');
  await until('the divergent answer is in', () => divergences.length > 0, 10_000);
  t.same(divergences, [divergentId], 'the divergent peer is counted');
  t.ok(lines.some((l) => l.includes(divergentId) && l.includes(aId) && l.includes('does not verify')), 'and logged with both node ids');
  t.notOk(parseNote(cert.note).signatures.some((s) => s.name.endsWith(`/${divergentId}`)), 'its signature is not in the note');

  // The honest peer down and the other divergent: no majority agrees, and the collector says why.
  const down: CosignPeer = { nodeId: bId, cosign: async () => { throw new Error('unreachable'); } };
  const alone = make(aNode, new Map([[divergentId, { nodeId: divergentId, cosign: (s: number) => divergent.cosign(s) }], [bId, down]]));
  t.teardown(() => alone.stop());
  await t.rejects(alone.certificate([submitted, fixed]), { name: 'CustodyError', reason: 'CHECKPOINT_DIVERGED' }, 'no certificate when no majority computed the same root');
  const quiet = make(aNode, new Map([[divergentId, down as CosignPeer], [bId, down]]));
  t.teardown(() => quiet.stop());
  await t.rejects(quiet.certificate([submitted, fixed]), { name: 'CustodyError', reason: 'QUORUM_NOT_MET' }, 'nor when the peers do not answer');

  // A collector cannot borrow a peer's signature for its own text: a peer that signs the
  // collector's root without computing it is exactly what the nodes never do (cosign takes a size).
  const borrowed: CosignPeer = { nodeId: bId, cosign: (s: number) => checkpointers.get(aId)!.cosign(s) };
  const forged = make(aNode, new Map([[bId, borrowed], [divergentId, down]]));
  t.teardown(() => forged.stop());
  await t.rejects(forged.certificate([submitted, fixed]), { name: 'CustodyError', reason: 'QUORUM_NOT_MET' }, 'a peer answering another node\'s signature counts for nothing');
});

t.test('a node cosigns a size only once it has applied it, and only sizes it holds', async (t) => {
  const s = new ScriptedCluster({ label: 'checkpoint-wait' });
  s.genesis();
  s.createKey('k1');
  s.submit('op-1', s.act('k1'));
  const app = new LedgerApp();
  const me = s.nodes[0]!;
  const c = new Checkpointer({ nodeId: me.info.id, identitySecretKey: me.secretKey, app, peers: () => [] });
  t.teardown(() => c.stop());
  const cmds = s.log.map((e) => encodeLedgerCommand(e.stampMs, e.event));
  for (const cmd of cmds.slice(0, -1)) app.apply(0, cmd);
  await t.rejects(c.cosign(0), { name: 'CustodyError', reason: 'INVALID_ARGUMENT' }, 'size 0 is no checkpoint to cosign');
  await t.rejects(c.cosign(2.5), { name: 'CustodyError', reason: 'INVALID_ARGUMENT' }, 'nor a fractional size');
  const size = app.state.height + 1;
  const pending = c.cosign(size);
  let done = false;
  void pending.then(() => (done = true), () => (done = true));
  await new Promise((r) => setImmediate(r));
  t.notOk(done, 'a size beyond the applied entries waits');
  app.apply(0, cmds[cmds.length - 1]!);
  const note = await pending;
  const trust = clusterTrust(s.clusterId, s.nodes.map((n) => ({ id: n.info.id, identityKey: n.info.identityKey })));
  const opened = parseNote(note);
  t.equal(opened.signatures.length, 1, 'answered with its own cosignature once applied');
  t.match(opened.text, new RegExp(`^custody-ledger/${s.clusterId}\\n${size}\\n`), 'over its checkpoint at that size');
  t.throws(() => certified(note, trust), { name: 'CustodyError', reason: 'QUORUM_NOT_MET' }, 'one node\'s note alone is not certified');
  t.equal(parseNote(await c.cosign(size)).text, opened.text, 'the same root for the same size');
});
