/**
 * `custody witness serve` (node/witness/): the C2SP tlog-witness protocol over real HTTP.
 *
 * A log of three node keys feeds the witness. An honest sequence is cosigned and each cosignature
 * verifies under the vkey `custody witness keygen` wrote; a majority of the nodes signing a
 * rewritten history is refused (422 without a consistency proof, 409 for a second root at the held
 * size) with its reason code; the witness process killed with SIGKILL and started again still
 * refuses the rewrite and names its held size; two requests racing against one old size get one
 * cosignature and one 409. The attacker's side: a corrupted or foreign state file, a second
 * process on the state directory, a world-readable key, oversized and malformed requests.
 * A property: whatever order honest growth and rewrites arrive in, the witness's record only
 * grows and every checkpoint it cosigns extends the one it held (one append-only history).
 *
 * A failing property prints its seed; replay with FC_SEED=<seed> FC_PATH=<path>.
 */
import t, { type Test } from 'tap';
import fc from 'fast-check';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  certified, checkpointOrigin, consistencyProof, cosignatureSigner, ed25519Signer, encodeBase64, leafHash, memoryReader, nodeSignerName, parseVkey, rootOf, signCheckpoint,
  type CheckpointTrust,
} from '../../ledger/tlog/index.js';
import { bytesEqual, toHex } from '../../ledger/encoding.js';
import { ScriptedCluster } from '../../ledger/scenario.js';
import { logPolicyFromGenesis } from '../../node/commands/witness.js';
import { seedOf } from '../../ledger/index.js';
import { formatLogPolicy, loadLogPolicies, loadWitnessKey, parseLogPolicy, parseWitnessKey, WitnessState, writeWitnessKey } from '../../node/witness/files.js';
import { WitnessServer } from '../../node/witness/server.js';

const CLI = fileURLToPath(new URL('../../node/cli.js', import.meta.url));
const ORIGIN = 'custody-ledger/witness-test';
const NODES = [0, 1, 2].map((i) => ed25519Signer(`${ORIGIN}/n${i}`, seedOf(`witness-server-node-${i}`)));
const TRUST: CheckpointTrust = { origin: ORIGIN, verifiers: NODES.map((n) => n.verifier), quorum: 2 };
const enc = new TextEncoder();
const HONEST = Array.from({ length: 64 }, (_, i) => leafHash(enc.encode(`entry ${i}`)));
const forked = (from: number): Uint8Array[] => [...HONEST.slice(0, from), ...Array.from({ length: 64 - from }, (_, i) => leafHash(enc.encode(`rewritten ${from} ${i}`)))];

function body(leaves: readonly Uint8Array[], oldSize: number, size: number, signers = NODES.slice(0, 2), proofFrom: readonly Uint8Array[] = leaves): { body: string; note: string } {
  const note = signCheckpoint({ origin: ORIGIN, size, root: rootOf(leaves.slice(0, size)), extensions: [] }, signers);
  const proof = oldSize === 0 || oldSize > size ? [] : consistencyProof(oldSize, size, memoryReader(proofFrom));
  return { note, body: `old ${oldSize}\n${proof.map((h) => `${encodeBase64(h)}\n`).join('')}\n${note}` };
}

async function post(port: number, text: string, path = '/add-checkpoint', method = 'POST'): Promise<{ status: number; reason: string | null; type: string | null; text: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { method, ...(method === 'POST' ? { body: text } : {}) });
  return { status: r.status, reason: r.headers.get('custody-reason'), type: r.headers.get('content-type'), text: await r.text() };
}

/** A witness's files; the key from `custody witness keygen` when `viaCli`, else written in process. */
function setup(t: Test, viaCli = false): { dir: string; keyFile: string; policyFile: string; stateDir: string; vkey: string } {
  const dir = mkdtempSync(join(tmpdir(), 'custody-witness-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const keyFile = join(dir, 'witness.key');
  let vkey: string;
  if (viaCli) {
    const r = spawnSync(process.execPath, [CLI, 'witness', 'keygen', '--name', 'witness.test/w1', '--out', keyFile], { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`keygen failed: ${r.stderr}`);
    vkey = r.stdout.trim();
  } else vkey = writeWitnessKey(keyFile, 'witness.test/w1', seedOf('witness-server-key'));
  const policyFile = join(dir, 'log.policy');
  writeFileSync(policyFile, formatLogPolicy(TRUST));
  return { dir, keyFile, policyFile, stateDir: join(dir, 'state'), vkey };
}

/** Starts `custody witness serve` on a free port; resolves with the port once it listens. */
function startWitness(t: Test, f: { keyFile: string; stateDir: string; policyFile: string }): Promise<{ port: number; child: ChildProcess; stderr: () => string }> {
  const child = spawn(process.execPath, [CLI, 'witness', 'serve', '--listen', '127.0.0.1:0', '--key', f.keyFile, '--state', f.stateDir, '--log-policy', f.policyFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => void child.kill('SIGKILL'));
  let err = '';
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /\(port (\d+)\)/.exec(err);
      if (m) resolve({ port: Number(m[1]), child, stderr: () => err });
    });
    child.once('exit', (code) => reject(new Error(`witness exited ${code}: ${err}`)));
  });
}

function stopHard(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

t.test('the witness process: honest sequence cosigned, majority rewrite refused, SIGKILL and restart remembers', async (t) => {
  const f = setup(t, true);
  const wv = parseVkey(f.vkey);
  t.equal(readFileSync(`${f.keyFile}.vkey`, 'utf8').trim(), f.vkey, 'keygen wrote the vkey beside the key');
  let w = await startWitness(t, f);
  let old = 0;
  for (const size of [1, 5, 11, 11, 16, 20]) {
    const r = body(HONEST, old, size);
    const a = await post(w.port, r.body);
    t.equal(a.status, 200, `${old} -> ${size} cosigned`);
    const c = certified(r.note + a.text, { origin: ORIGIN, verifiers: [...TRUST.verifiers, wv], quorum: 3 });
    t.ok(c.signers.includes('witness.test/w1'), `${size}: the cosignature verifies under the keygen vkey`);
    old = size;
  }
  // Every node signs a history rewritten from entry 7; its only proof is from its own tree.
  const rewrite = body(forked(7), 20, 30, NODES, forked(7));
  const refused = await post(w.port, rewrite.body);
  t.same([refused.status, refused.reason], [422, 'TLOG_PROOF_INVALID'], 'a majority rewriting history gets no cosignature (422)');
  t.match(refused.text, /TLOG_PROOF_INVALID: no valid consistency proof from 20 to 30/, 'the answer names the reason');
  const sameSize = await post(w.port, `old 20\n\n${signCheckpoint({ origin: ORIGIN, size: 20, root: rootOf(forked(7).slice(0, 20)), extensions: [] }, NODES)}`);
  t.same([sameSize.status, sameSize.reason, sameSize.text], [409, 'EQUIVOCATION', '20\n'], 'a second root for the held size: 409');

  await stopHard(w.child);
  w = await startWitness(t, f);
  t.match(w.stderr(), /last cosigned size 20/, 'the restarted witness reports its record');
  const fresh = await post(w.port, body(HONEST, 0, 25).body);
  t.same([fresh.status, fresh.type, fresh.text, fresh.reason], [409, 'text/x.tlog.size', '20\n', 'TLOG_WITNESS_CONFLICT'], 'after SIGKILL and restart it still holds size 20 (409 with the size)');
  t.equal((await post(w.port, rewrite.body)).status, 422, 'and still refuses the rewrite');
  t.equal((await post(w.port, body(HONEST, 20, 40).body)).status, 200, 'the honest log goes on from the remembered size');
  await stopHard(w.child);
});

t.test('two requests against one old size: one cosignature, one 409; the record is the cosigned one', async (t) => {
  const f = setup(t);
  const state = WitnessState.open(f.stateDir);
  t.teardown(() => state.close());
  const server = new WitnessServer({ listen: { host: '127.0.0.1', port: 0 }, key: parseWitnessKey(readFileSync(f.keyFile, 'utf8')), logs: loadLogPolicies([f.policyFile]), state });
  const port = await server.start();
  t.teardown(() => server.stop());
  t.equal((await post(port, body(HONEST, 0, 4).body)).status, 200);
  let held = 4;
  for (let round = 0; round < 6; round++) {
    const [s1, s2] = [held + 1 + round, held + 3 + round];
    const [a, b] = await Promise.all([post(port, body(HONEST, held, s1).body), post(port, body(HONEST, held, s2).body)]);
    const statuses = [a.status, b.status].sort();
    t.same(statuses, [200, 409], `round ${round}: exactly one of two racing requests from ${held} is cosigned`);
    const won = a.status === 200 ? s1 : s2;
    t.equal(state.latest(ORIGIN)?.size, won, `round ${round}: the record is the cosigned size ${won}`);
    t.equal((a.status === 409 ? a : b).text, `${won}\n`, 'the loser learns the new size');
    held = won;
  }
});

t.test('attacker\'s view: corrupt or foreign state, a second process, a readable key, bad requests', async (t) => {
  const f = setup(t);
  const w = await startWitness(t, f);
  t.equal((await post(w.port, body(HONEST, 0, 8).body)).status, 200);
  t.equal((await post(w.port, '', '/add-checkpoint', 'GET')).status, 405, 'GET is refused');
  t.equal((await post(w.port, 'x', '/other')).status, 404, 'unknown endpoint');
  const big = await post(w.port, 'old 0\n' + 'A'.repeat(200 * 1024));
  t.same([big.status, big.reason], [413, 'LIMIT_EXCEEDED'], 'an oversized body is refused');
  t.same([(await post(w.port, 'old 8\n\nnot a note')).status], [400], 'a malformed note: 400');
  const one = await post(w.port, body(HONEST, 8, 9, NODES.slice(0, 1)).body);
  t.same([one.status, one.reason], [403, 'QUORUM_NOT_MET'], 'one node of three cannot feed the witness');
  const stranger = ed25519Signer(`${ORIGIN}/n0`, seedOf('stranger'));
  t.equal((await post(w.port, body(HONEST, 8, 9, [stranger, NODES[1]!]).body)).status, 403, 'a key with a node\'s name but another key does not count');
  // A second witness on the same state would race the first: refused while the process runs.
  t.throws(() => WitnessState.open(f.stateDir), { message: /in use by process/ }, 'a second witness on the state directory is refused');
  await stopHard(w.child);

  const [file] = readdirSync(f.stateDir).filter((x) => x.endsWith('.json'));
  const path = join(f.stateDir, file!);
  const good = readFileSync(path, 'utf8');
  const tampered: [string, string][] = [
    ['truncated', good.slice(0, 20)],
    ['size lowered (the record no longer matches its note)', good.replace('"size":8', '"size":2')],
    ['another log\'s record under this log\'s name', good.replaceAll(ORIGIN, 'custody-ledger/other')],
  ];
  for (const [what, text] of tampered) {
    writeFileSync(path, text);
    t.throws(() => WitnessState.open(f.stateDir), { name: 'CustodyError', reason: 'STORAGE_CORRUPT' }, `${what}: the witness refuses to start (STORAGE_CORRUPT)`);
  }
  writeFileSync(path, good);
  const reopened = WitnessState.open(f.stateDir);
  t.equal(reopened.latest(ORIGIN)?.size, 8, 'the lock of the killed process is taken over, and the record read back');
  reopened.close();
  chmodSync(f.keyFile, 0o644);
  t.throws(() => loadWitnessKey(f.keyFile), { message: /readable by others/ }, 'a key file others can read is refused');
  t.throws(() => writeWitnessKey(f.keyFile, 'w', seedOf('x')), { message: /never overwritten/ }, 'keygen never overwrites a key');
  t.throws(() => writeWitnessKey(join(f.dir, 'k2'), 'bad name', seedOf('x')), 'a key name with a space is refused');
  const key = readFileSync(f.keyFile, 'utf8');
  t.throws(() => parseWitnessKey(key.replace(/\+([0-9a-f]{8})\+/, '+00000000+')), { name: 'CustodyError', reason: 'CONFIG_INVALID' }, 'a key whose ID does not match is refused');
});

t.test('the log policy from a genesis trusts exactly what the cluster\'s nodes cosign', async (t) => {
  const s = new ScriptedCluster({ label: 'witness-policy' });
  s.genesis();
  const policy = parseLogPolicy(logPolicyFromGenesis(toHex(s.log[0]!.event)));
  t.same([policy.origin, policy.quorum, policy.verifiers.length], [checkpointOrigin(s.clusterId), 2, 3], 'origin of the cluster, majority of three');
  const cp = { origin: checkpointOrigin(s.clusterId), size: 5, root: rootOf(HONEST.slice(0, 5)), extensions: [] };
  const signer = (i: number) => cosignatureSigner(nodeSignerName(s.clusterId, s.nodes[i]!.info.id), s.nodes[i]!.secretKey, 1_700_000_000);
  t.equal(certified(signCheckpoint(cp, [signer(0), signer(2)]), policy).checkpoint.size, 5, 'two node cosignatures, as node/checkpoints.ts makes them, satisfy it');
  t.throws(() => certified(signCheckpoint(cp, [signer(1)]), policy), { name: 'CustodyError', reason: 'QUORUM_NOT_MET' }, 'one does not');
  t.throws(() => logPolicyFromGenesis(toHex(s.log[0]!.event).slice(2)), { name: 'CustodyError', reason: 'CONFIG_INVALID' }, 'a damaged genesis file is refused');
});

t.test('log policy files: strict', async (t) => {
  const good = formatLogPolicy(TRUST);
  t.same(parseLogPolicy(good).quorum, 2);
  t.equal(parseLogPolicy(good).origin, ORIGIN);
  const bad: [string, string][] = [
    ['no log line', good.replace(/^log .*\n/, '')],
    ['two log lines', `${good}log other\n`],
    ['no vkey', `log ${ORIGIN}\nquorum 1\n`],
    ['quorum above the keys', good.replace('quorum 2', 'quorum 4')],
    ['quorum 0', good.replace('quorum 2', 'quorum 0')],
    ['a tampered vkey (key ID mismatch)', good.replace(/vkey ([^+]+)\+/, 'vkey $1x+')],
    ['an unknown line', `${good}witness foo\n`],
    ['a duplicated key', `${good}vkey ${good.split('\n')[1]!.slice(5)}\n`],
  ];
  for (const [what, text] of bad) t.throws(() => parseLogPolicy(text), { name: 'CustodyError', reason: 'CONFIG_INVALID' }, what);
});

t.test('property: the record only grows, and every checkpoint cosigned extends the one held before', async (t) => {
  const f = setup(t);
  const state = WitnessState.open(f.stateDir);
  t.teardown(() => state.close());
  const server = new WitnessServer({ listen: { host: '127.0.0.1', port: 0 }, key: parseWitnessKey(readFileSync(f.keyFile, 'utf8')), logs: loadLogPolicies([f.policyFile]), state });
  // One step: an honest growth to `size`, or a majority signing a history rewritten from `from`,
  // each claiming some old size (the held one, or another).
  const step = fc.record({ rewrite: fc.boolean(), size: fc.integer({ min: 0, max: 64 }), from: fc.integer({ min: 0, max: 63 }), oldDelta: fc.integer({ min: -3, max: 3 }), honestOld: fc.boolean() });
  const replay = {
    ...(process.env.FC_SEED !== undefined ? { seed: Number(process.env.FC_SEED) } : {}),
    ...(process.env.FC_PATH !== undefined ? { path: process.env.FC_PATH } : {}),
  };
  let cosigned = 0;
  let refusedRewrites = 0;
  let run = 0;
  const out = await fc.check(fc.asyncProperty(fc.array(step, { minLength: 2, maxLength: 10 }), async (steps) => {
    // Each run is a fresh log name so the runs share the one state directory without meeting.
    const origin = `${ORIGIN}-p${run++}`;
    const trust = { ...TRUST, origin };
    const nodes = [0, 1, 2].map((i) => ed25519Signer(`${origin}/n${i}`, seedOf(`witness-server-node-${i}`)));
    (server as unknown as { o: { logs: Map<string, CheckpointTrust> } }).o.logs.set(origin, { ...trust, verifiers: nodes.map((n) => n.verifier) });
    let held = 0;
    let heldRoot: Uint8Array = new Uint8Array(32);
    for (const s of steps) {
      const leaves = s.rewrite ? forked(s.from) : HONEST;
      const old = s.honestOld ? held : Math.max(0, held + s.oldDelta);
      const note = signCheckpoint({ origin, size: s.size, root: rootOf(leaves.slice(0, s.size)), extensions: [] }, nodes);
      const proof = old === 0 || old > s.size ? [] : consistencyProof(old, s.size, memoryReader(leaves));
      const a = await server.addCheckpoint(`old ${old}\n${proof.map((h) => `${encodeBase64(h)}\n`).join('')}\n${note}`);
      const r = state.latest(origin);
      if (a.status === 200) {
        cosigned++;
        // Cosigned: the tree extends the one held (its first `held` leaves hash to the held root).
        if (held > 0 && !bytesEqual(rootOf(leaves.slice(0, held)), heldRoot)) return false;
        if (s.size < held || r?.size !== s.size) return false;
        held = s.size;
        heldRoot = rootOf(leaves.slice(0, held));
      } else {
        if (held > 0 && s.size > held && !bytesEqual(rootOf(leaves.slice(0, held)), heldRoot)) refusedRewrites++;
        if ((r?.size ?? 0) !== held) return false;
      }
    }
    return true;
  }), { numRuns: Number(process.env.FC_RUNS ?? 20), ...replay });
  if (out.failed) t.fail(`counterexample ${JSON.stringify(out.counterexample?.[0])}: replay with FC_SEED=${out.seed} FC_PATH=${String(out.counterexamplePath)}`);
  t.ok(!out.failed, `${out.numRuns} runs: the record never shrinks and every cosigned tree extends the held one`);
  t.ok(cosigned > 0 && refusedRewrites > 0, `not vacuous: ${cosigned} cosigned, ${refusedRewrites} rewrites above the held size refused`);
});
