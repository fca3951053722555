/**
 * Nodes pushing their certified checkpoints to a witness (node/witness/pusher.ts), against a real
 * `WitnessServer` (HTTP, durable state) and the checkpoints of three ledger replicas
 * (node/checkpoints.ts Checkpointer, each cosigning from its own tree).
 *
 * Each certificate a node gathers is pushed: the first with old 0, the next with a consistency
 * proof from the node's tree; a node that restarted (knows no size) learns the witness's from its
 * 409 and sends the proof from there. Three replicas of a rewritten history (the same cluster, the
 * same node keys, a majority of them) certify their own checkpoint and push it: the witness refuses
 * it (422) and the failure is counted with its reason; a witness that is down, and one that answers
 * a cosignature that does not verify, are failures too and nothing of theirs is kept. `cosign`
 * (what proven evidence carries under a policy naming witnesses) returns a fresh certificate
 * with the witness's line, and null when no witness cosigned it.
 */
import t, { type Test } from 'tap';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScriptedCluster, rid } from '../../ledger/scenario.js';
import { decodeEvent } from '../../ledger/events.js';
import { certified, clusterTrust, makeVerifier, parseNote, SIG_COSIGNATURE_V1 } from '../../ledger/tlog/index.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { seedOf } from '../../ledger/index.js';
import { LedgerApp, encodeLedgerCommand } from '../../node/ledger-app.js';
import { Checkpointer, type CosignPeer } from '../../node/checkpoints.js';
import { WitnessState } from '../../node/witness/files.js';
import { WitnessServer } from '../../node/witness/server.js';
import { WitnessPusher, parseWitnessEndpoints, type WitnessEndpoint } from '../../node/witness/pusher.js';
import type { ReasonCode } from '../../proto/reasons.js';

const W_NAME = 'witness.test/push';
const W_SEED = seedOf('witness-push-key');
const W_VERIFIER = makeVerifier(W_NAME, SIG_COSIGNATURE_V1, ed25519.getPublicKey(W_SEED));

/** Three replicas of `s`'s log, each with a Checkpointer whose peers are the other two. */
function replicas(t: Test, s: ScriptedCluster, onCertified?: (note: string) => void): { apps: LedgerApp[]; checkpointers: Checkpointer[]; feed: (upTo: number) => void } {
  const apps = s.nodes.map(() => new LedgerApp());
  const checkpointers: Checkpointer[] = [];
  s.nodes.forEach((n, i) => {
    const peers = (): CosignPeer[] => checkpointers.filter((_, j) => j !== i).map((c, j) => ({ nodeId: s.nodes[j >= i ? j + 1 : j]!.info.id, cosign: (size: number) => c.cosign(size) }));
    checkpointers.push(new Checkpointer({ nodeId: n.info.id, identitySecretKey: n.secretKey, app: apps[i]!, peers, ...(i === 0 && onCertified ? { onCertified } : {}) }));
  });
  t.teardown(() => checkpointers.forEach((c) => c.stop()));
  let fed = 0;
  const feed = (upTo: number): void => {
    for (; fed < upTo; fed++) {
      const e = s.log[fed]!;
      for (const a of apps) a.apply(0, encodeLedgerCommand(e.stampMs, e.event));
    }
  };
  return { apps, checkpointers, feed };
}

function submittedIndex(s: ScriptedCluster, opId: string): number {
  const e = [...s.log].reverse().find((x) => {
    const ev = decodeEvent(x.event);
    return ev.type === 'ActSubmitted' && ev.opId === rid(opId);
  });
  if (e === undefined) throw new Error(`no ActSubmitted of ${opId}`);
  return e.index;
}

async function witnessServer(t: Test, trust: ReturnType<typeof clusterTrust>): Promise<{ url: string; state: WitnessState; server: WitnessServer }> {
  const dir = mkdtempSync(join(tmpdir(), 'custody-witness-push-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const state = WitnessState.open(dir);
  t.teardown(() => state.close());
  const server = new WitnessServer({ listen: { host: '127.0.0.1', port: 0 }, key: { name: W_NAME, seed: W_SEED, verifier: W_VERIFIER }, logs: new Map([[trust.origin, trust]]), state });
  const port = await server.start();
  t.teardown(() => server.stop());
  return { url: `http://127.0.0.1:${port}`, state, server };
}

t.test('certified checkpoints reach the witness with proofs; a restarted node catches up from a 409; a rewrite is refused and counted', async (t) => {
  const s = new ScriptedCluster({ label: 'witness-push' });
  s.genesis();
  s.createKey('k1');
  s.submit('op-1', s.act('k1'));
  const afterOp1 = s.log.length;
  const trust = clusterTrust(s.clusterId, s.nodes.map((n) => ({ id: n.info.id, identityKey: n.info.identityKey })));
  const w = await witnessServer(t, trust);
  const endpoints: WitnessEndpoint[] = [{ url: w.url, verifier: W_VERIFIER }];
  const failures: [string, ReasonCode][] = [];
  const cosigned: number[] = [];
  let pusher: WitnessPusher | null = null;
  const r = replicas(t, s, (note) => pusher!.push(note));
  const evidenceDir = mkdtempSync(join(tmpdir(), 'custody-witnessed-'));
  t.teardown(() => rmSync(evidenceDir, { recursive: true, force: true }));
  const evidenceFile = join(evidenceDir, 'n0.witnessed.note');
  pusher = new WitnessPusher({
    witnesses: endpoints, consistency: (a, b) => r.checkpointers[0]!.consistency(a, b), evidenceFile,
    onFailure: (x, reason) => failures.push([x, reason]), onCosigned: (_x, size) => cosigned.push(size),
  });
  r.feed(afterOp1);
  await r.checkpointers[0]!.certificate([submittedIndex(s, 'op-1')]);
  await pusher.settled();
  const first = w.state.latest(trust.origin)?.size;
  t.equal(first, r.apps[0]!.state.height, 'the first certified checkpoint is cosigned by the witness');

  s.submit('op-2', s.act('k1', { amount: 7n }));
  s.submit('op-3', s.act('k1', { amount: 8n }));
  r.feed(s.log.length);
  await r.checkpointers[0]!.certificate([submittedIndex(s, 'op-3')]);
  await pusher.settled();
  const second = w.state.latest(trust.origin)?.size;
  t.ok(second !== undefined && second > first!, `the next one (size ${second}) is cosigned with a consistency proof from ${first}`);
  t.same(cosigned, [first, second], 'each cosignature is reported');
  t.same(failures, [], 'no failure');
  const evidence = pusher.witnessed();
  t.ok(evidence !== null, 'the witnessed checkpoint is kept');
  const c = certified(evidence!, { ...trust, verifiers: [...trust.verifiers, W_VERIFIER], quorum: trust.quorum + 1 });
  t.ok(c.signers.includes(W_NAME) && c.checkpoint.size === second, 'it verifies under the node keys and the witness key, at the newest size');
  t.equal(readFileSync(evidenceFile, 'utf8'), evidence, 'and is written to the evidence file');
  t.equal(new WitnessPusher({ witnesses: endpoints, consistency: () => Promise.resolve([]), evidenceFile }).witnessed(), evidence, 'a restarted node reads it back');
  const line = evidence!.split('\n').find((l) => l.startsWith(`\u2014 ${W_NAME} `))!;
  const b64 = line.split(' ')[2]!;
  const flipped = Buffer.from(b64, 'base64');
  flipped[flipped.length - 1]! ^= 1;
  writeFileSync(evidenceFile, evidence!.replace(b64, flipped.toString('base64')));
  t.equal(new WitnessPusher({ witnesses: endpoints, consistency: () => Promise.resolve([]), evidenceFile, log: () => {} }).witnessed(), null, 'a kept file whose witness signature does not verify is not used');
  writeFileSync(evidenceFile, evidence!);

  // A node that restarted knows no witness size: the witness's 409 tells it, and it proves from there.
  s.submit('op-4', s.act('k1', { amount: 9n }));
  r.feed(s.log.length);
  const fresh = new WitnessPusher({ witnesses: endpoints, consistency: (a, b) => r.checkpointers[0]!.consistency(a, b), onFailure: (x, reason) => failures.push([x, reason]) });
  const cert = await r.checkpointers[1]!.certificate([submittedIndex(s, 'op-4')]);
  fresh.push(cert.note);
  await fresh.settled();
  t.equal(w.state.latest(trust.origin)?.size, r.apps[1]!.state.height, 'a fresh pusher is cosigned after learning the held size from a 409');
  t.same(failures, [], 'without a failure');

  // Proven evidence under a policy naming the witness: a fresh certificate with the witness's line.
  s.submit('op-5', s.act('k1', { amount: 10n }));
  r.feed(s.log.length);
  const c5 = await r.checkpointers[0]!.certificate([submittedIndex(s, 'op-5')]);
  const withWitness = await pusher.cosign(c5.note);
  t.ok(withWitness !== null && withWitness.startsWith(c5.note), 'cosign: the certificate\'s note with a line appended');
  const cw = certified(withWitness!, { ...trust, verifiers: [...trust.verifiers, W_VERIFIER], quorum: trust.quorum + 1 });
  t.ok(cw.signers.includes(W_NAME) && cw.checkpoint.size === r.apps[0]!.state.height, 'the witness cosigned exactly that checkpoint');

  // A majority rewriting history: three replicas of the same cluster (same keys) whose log
  // diverges after op-1 certify their own checkpoint and push it.
  const fork = new ScriptedCluster({ label: 'witness-push' });
  fork.genesis();
  fork.createKey('k1');
  fork.submit('op-1', fork.act('k1'));
  for (let i = 0; i < 6; i++) fork.submit(`rewrite-${i}`, fork.act('k1', { amount: BigInt(1000 + i) }));
  const forkFailures: ReasonCode[] = [];
  let forkPusher: WitnessPusher | null = null;
  const fr = replicas(t, fork, (note) => forkPusher!.push(note));
  forkPusher = new WitnessPusher({ witnesses: endpoints, consistency: (a, b) => fr.checkpointers[0]!.consistency(a, b), onFailure: (_x, reason) => forkFailures.push(reason) });
  fr.feed(fork.log.length);
  const forged = await fr.checkpointers[0]!.certificate([submittedIndex(fork, 'rewrite-5')]);
  t.ok(certified(forged.note, trust).signers.length >= 2, 'the rewrite is certified by a majority of the real node keys');
  const held = w.state.latest(trust.origin)!.size;
  t.ok(parseInt(parseNote(forged.note).text.split('\n')[1]!, 10) > held, 'and is larger than what the witness holds');
  await forkPusher.settled();
  t.same(forkFailures, ['TLOG_PROOF_INVALID'], 'the witness refuses it: counted as TLOG_PROOF_INVALID');
  t.equal(w.state.latest(trust.origin)!.size, held, 'the witness still holds the honest checkpoint');
  t.equal(forkPusher.witnessed(), null, 'nothing is kept from a refusal');
});

t.test('a witness down, or answering a cosignature that does not verify, is a failure and nothing is kept', async (t) => {
  const s = new ScriptedCluster({ label: 'witness-push-bad' });
  s.genesis();
  s.createKey('k1');
  s.submit('op-1', s.act('k1'));
  const r = replicas(t, s);
  r.feed(s.log.length);
  const cert = await r.checkpointers[0]!.certificate([submittedIndex(s, 'op-1')]);
  // A server that answers 200 with a line under the witness's name signed by another key.
  const liar = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`\u2014 ${W_NAME} ${Buffer.from(new Uint8Array(4 + 72)).toString('base64')}\n`);
    });
  });
  await new Promise<void>((res) => liar.listen(0, '127.0.0.1', () => res()));
  t.teardown(() => new Promise<void>((res) => liar.close(() => res())));
  const down = createServer();
  await new Promise<void>((res) => down.listen(0, '127.0.0.1', () => res()));
  const downPort = (down.address() as AddressInfo).port;
  await new Promise<void>((res) => down.close(() => res()));
  const failures: [string, ReasonCode][] = [];
  const other = makeVerifier('witness.test/down', SIG_COSIGNATURE_V1, ed25519.getPublicKey(seedOf('down')));
  const p = new WitnessPusher({
    witnesses: [{ url: `http://127.0.0.1:${(liar.address() as AddressInfo).port}`, verifier: W_VERIFIER }, { url: `http://127.0.0.1:${downPort}`, verifier: other }],
    consistency: (a, b) => r.checkpointers[0]!.consistency(a, b), onFailure: (x, reason) => failures.push([x, reason]),
  });
  p.push(cert.note);
  await p.settled();
  t.same(failures.sort(), [['witness.test/down', 'WITNESS_UNAVAILABLE'], [W_NAME, 'WITNESS_UNAVAILABLE']], 'both count as failures');
  t.equal(p.witnessed(), null, 'no forged cosignature is kept');
  t.equal(await p.cosign(cert.note), null, 'cosign: no witness cosigned, so nothing to carry');
  const bad = (f: string, why: string): Error => new Error(`${f}: ${why}`);
  t.throws(() => parseWitnessEndpoints([{ url: 'ftp://x', vkey: 'a' }], bad), /url/, 'a witness URL must be http(s)');
  t.throws(() => parseWitnessEndpoints([{ url: 'http://x:1', vkey: 'w+00000000+AAAA' }], bad), /vkey/, 'a malformed vkey is refused');
  t.equal(parseWitnessEndpoints(undefined, bad).length, 0, 'no witnesses configured: none');
});
