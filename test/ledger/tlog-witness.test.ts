/**
 * ledger/tlog/witness.ts: a witness following a cluster's log through C2SP tlog-witness
 * add-checkpoint requests. An honest sequence is cosigned and its cosignatures verify; a majority
 * of nodes signing a rewritten history is refused (no consistency proof, or two roots for one
 * size); stale, unknown, under-signed and malformed requests get the spec's status codes.
 */
import t from 'tap';
import {
  addCheckpoint, certified, consistencyProof, cosignatureSigner, ed25519Signer, encodeBase64, leafHash, memoryReader, rootOf, signCheckpoint,
  type CheckpointTrust, type WitnessRecord,
} from '../../ledger/tlog/index.js';
import { seedOf } from '../../ledger/index.js';

const ORIGIN = 'custody.example/cluster-1';
const NODES = [0, 1, 2].map((i) => ed25519Signer(`node-${i}.custody.example`, seedOf(`tlog-witness-node-${i}`)));
const TRUST: CheckpointTrust = { origin: ORIGIN, verifiers: NODES.map((n) => n.verifier), quorum: 2 };
const HONEST = Array.from({ length: 40 }, (_, i) => leafHash(new TextEncoder().encode(`entry ${i}`)));
/** The same log with entries 5.. rewritten: a history the honest witness already saw past. */
const FORKED = [...HONEST.slice(0, 5), ...Array.from({ length: 35 }, (_, i) => leafHash(new TextEncoder().encode(`rewritten ${i}`)))];

/** A witness with an in-memory record, as a server would hold it (persisted before replying). */
function makeWitness() {
  const records = new Map<string, WitnessRecord>();
  let now = 1_700_000_000;
  const w = cosignatureSigner('witness.example/w1', seedOf('tlog-witness-w1'), now);
  const submit = (body: string) => {
    const signer = cosignatureSigner('witness.example/w1', seedOf('tlog-witness-w1'), now++);
    const v = addCheckpoint(body, (o) => (o === ORIGIN ? TRUST : undefined), (o) => records.get(o), [signer]);
    if (v.status === 200) records.set(v.checkpoint.origin, v.record);
    return v;
  };
  return { submit, verifier: w.verifier, records };
}

function request(leaves: readonly Uint8Array[], oldSize: number, size: number, signers = NODES.slice(0, 2), origin = ORIGIN): { body: string; note: string } {
  const note = signCheckpoint({ origin, size, root: rootOf(leaves.slice(0, size)), extensions: [] }, signers);
  const proof = consistencyProof(oldSize, size, memoryReader(leaves));
  return { note, body: `old ${oldSize}\n${proof.map((h) => `${encodeBase64(h)}\n`).join('')}\n${note}` };
}

t.test('an honest sequence is cosigned, and the cosignatures verify with the witness key', async (t) => {
  const w = makeWitness();
  let old = 0;
  for (const size of [0, 1, 5, 11, 11, 16, 40]) {
    const r = request(HONEST, old, size);
    const v = w.submit(r.body);
    t.equal(v.status, 200, `${old} -> ${size} cosigned`);
    if (v.status !== 200) continue;
    const c = certified(r.note + v.body, { origin: ORIGIN, verifiers: [...TRUST.verifiers, w.verifier], quorum: 3 });
    t.ok(c.signers.includes('witness.example/w1'), `${size}: the cosignature verifies`);
    t.equal(w.records.get(ORIGIN)!.size, size);
    old = size;
  }
});

t.test('a majority rewriting history is refused by the witness', async (t) => {
  const w = makeWitness();
  t.equal(w.submit(request(HONEST, 0, 11).body).status, 200);
  // Every node signs the rewritten tree; the only proof it can offer is from its own history.
  const rewrite = request(FORKED, 11, 20, NODES);
  const v = w.submit(rewrite.body);
  t.equal(v.status, 422, 'no consistency proof from the cosigned tree to the rewrite');
  t.equal(v.status !== 200 && v.reason, 'TLOG_PROOF_INVALID');
  // Rewriting the cosigned size itself: two roots for one size.
  const same = w.submit(`old 11\n\n${signCheckpoint({ origin: ORIGIN, size: 11, root: rootOf(FORKED.slice(0, 11)), extensions: [] }, NODES)}`);
  t.equal(same.status, 409);
  t.equal(same.status !== 200 && same.reason, 'EQUIVOCATION');
  t.equal(w.records.get(ORIGIN)!.size, 11, 'the record still holds the honest tree');
  t.equal(w.submit(request(HONEST, 11, 30).body).status, 200, 'and the honest log goes on');
});

t.test('stale, unknown, under-signed and malformed requests get the spec\'s statuses', async (t) => {
  const w = makeWitness();
  t.equal(w.submit(request(HONEST, 0, 11).body).status, 200);
  const stale = w.submit(request(HONEST, 5, 16).body);
  t.same([stale.status, stale.body, stale.status !== 200 && stale.reason], [409, '11\n', 'TLOG_WITNESS_CONFLICT'], 'old size not the latest: 409 with the latest size');
  t.equal(w.submit(request(HONEST, 0, 16, NODES.slice(0, 2), 'custody.example/other').body).status, 404, 'unknown log');
  const one = w.submit(request(HONEST, 11, 16, NODES.slice(0, 1)).body);
  t.same([one.status, one.status !== 200 && one.reason], [403, 'QUORUM_NOT_MET'], 'one node of three');
  const stranger = ed25519Signer('node-9.custody.example', seedOf('stranger'));
  t.equal(w.submit(request(HONEST, 11, 16, [stranger]).body).status, 403, 'no known key');
  t.equal(w.submit(request(HONEST, 11, 16).body.replace('old 11', 'old 20')).status, 400, 'old above the size');
  t.equal(w.submit(request(HONEST, 11, 16).body.replace('old 11', 'old 011')).status, 400, 'leading zero');
  t.equal(w.submit('old 11\n').status, 400, 'no checkpoint');
  const withProof = request(HONEST, 5, 16).body.replace('old 5', 'old 0');
  t.equal(w.submit(withProof).status, 409, 'a fresh client must first learn the latest size');
  const w2 = makeWitness();
  t.equal(w2.submit(withProof).status, 422, 'old 0 with a proof');
  t.equal(w.records.get(ORIGIN)!.size, 11, 'nothing refused changed the record');
  const misconfigured = () => addCheckpoint(request(HONEST, 0, 5).body, () => ({ ...TRUST, quorum: 4 }), () => undefined, []);
  t.throws(misconfigured, { name: 'CustodyError', reason: 'CONFIG_INVALID' }, 'a trust no log can meet is the operator\'s error, thrown');
});
