/**
 * Equivocation (node/splitbrain/equivocation.ts): signed votes and leader announcements, generic
 * (kind, slot) comparison, and evidence the real ledger accepts as EquivocationEvidence.
 */
import t from 'tap';
import { ScriptedCluster, apply, encodeEvent, signStatement, statementSigningBytes, STATEMENT_DOMAIN, type LedgerState } from '../../ledger/index.js';
import {
  EquivocationDetector, LEADER_ANNOUNCEMENT, RAFT_VOTE, evidenceOf, signLeaderAnnouncement, signVote, verifyNodeStatement,
  type SignedStatement,
} from '../../node/splitbrain/equivocation.js';

const sc = new ScriptedCluster({ nodes: 3, label: 'equivocation' });
const genesis = sc.genesis();
const ids = sc.nodes.map((n) => n.info.id);
const [a, b, c] = ids as [string, string, string];
const keyOf = (id: string): Uint8Array | undefined => sc.nodes.find((n) => n.info.id === id)?.info.identityKey;
const secretOf = (id: string): Uint8Array => sc.node(id).secretKey;
const detector = (max?: number): EquivocationDetector => new EquivocationDetector({ clusterId: sc.clusterId, identityKey: keyOf, ...(max ? { statementsTrackedMax: max } : {}) });

t.test('the scripted cluster starts from a valid genesis', async (t) => {
  t.ok(genesis.ok);
});

t.test('signing bytes are domain-separated canonical CBOR of the statement body', async (t) => {
  const v = signVote(sc.clusterId, a, 5, b, secretOf(a));
  const bytes = statementSigningBytes(v);
  const tag = new TextEncoder().encode(STATEMENT_DOMAIN);
  t.same(bytes.subarray(0, tag.length), tag, 'starts with the domain tag');
  t.equal(bytes[tag.length], 0, 'then a zero byte');
  t.equal(v.kind, RAFT_VOTE);
  t.same(v.slot, { term: 5 });
  t.same(v.content, { candidate: b });
  t.equal(verifyNodeStatement(v, sc.clusterId, keyOf), null, 'verifies against the roster key');
  t.same(signVote(sc.clusterId, a, 5, b, secretOf(a)).signature, v.signature, 'Ed25519 is deterministic (RFC 8032)');
});

t.test('verification refuses forgeries, other clusters, unknown nodes, wrong shapes and oversize statements', async (t) => {
  const v = signVote(sc.clusterId, a, 5, b, secretOf(a));
  t.equal(verifyNodeStatement({ ...v, content: { candidate: c } }, sc.clusterId, keyOf)?.reason, 'SIGNATURE_INVALID', 'content changed after signing');
  t.equal(verifyNodeStatement({ ...v, nodeId: b }, sc.clusterId, keyOf)?.reason, 'SIGNATURE_INVALID', 'claims another signer');
  t.equal(verifyNodeStatement(signVote(sc.clusterId, a, 5, b, secretOf(b)), sc.clusterId, keyOf)?.reason, 'SIGNATURE_INVALID', 'signed with another node\'s key');
  t.equal(verifyNodeStatement(v, 'other-cluster', keyOf)?.reason, 'BINDING_MISMATCH');
  t.equal(verifyNodeStatement(signVote(sc.clusterId, 'stranger', 5, b, secretOf(a)), sc.clusterId, keyOf)?.reason, 'UNKNOWN_NODE');
  const badSlot = signStatement({ clusterId: sc.clusterId, nodeId: a, kind: RAFT_VOTE, slot: { term: 0 }, content: { candidate: b } }, secretOf(a));
  t.equal(verifyNodeStatement(badSlot, sc.clusterId, keyOf)?.reason, 'PAYLOAD_REJECTED');
  const extra = signStatement({ clusterId: sc.clusterId, nodeId: a, kind: LEADER_ANNOUNCEMENT, slot: { term: 3 }, content: { startIndex: 9, note: 'x' } }, secretOf(a));
  t.equal(verifyNodeStatement(extra, sc.clusterId, keyOf)?.reason, 'PAYLOAD_REJECTED');
  const big = signStatement({ clusterId: sc.clusterId, nodeId: a, kind: 'DkgRound1Published', slot: { keyId: 'k', keyEpoch: 0 }, content: { blob: new Uint8Array(5000) } }, secretOf(a));
  t.equal(verifyNodeStatement(big, sc.clusterId, keyOf)?.reason, 'FRAME_TOO_LARGE');
  t.throws(() => signVote(sc.clusterId, a, 0, b, secretOf(a)), RangeError);
  t.throws(() => signLeaderAnnouncement(sc.clusterId, a, 1, 0, secretOf(a)), RangeError);
});

t.test('two votes by one node in one term for different candidates are equivocation', async (t) => {
  const d = detector();
  const v1 = signVote(sc.clusterId, a, 9, b, secretOf(a));
  const v2 = signVote(sc.clusterId, a, 9, c, secretOf(a));
  t.same(d.submit(v1), { kind: 'new' });
  t.same(d.submit(v1), { kind: 'duplicate' }, 'the same vote relayed again');
  t.same(d.submit(signVote(sc.clusterId, a, 10, c, secretOf(a))), { kind: 'new' }, 'a vote in another term is no conflict');
  t.same(d.submit(signVote(sc.clusterId, b, 9, c, secretOf(b))), { kind: 'new' }, 'another node voting in the same term is no conflict');
  const r = d.submit(v2);
  t.equal(r.kind, 'equivocation');
  if (r.kind !== 'equivocation') return;
  t.equal(r.evidence.type, 'EquivocationEvidence');
  t.same(new Set([r.evidence.first, r.evidence.second]), new Set([v1, v2]));
  t.same(d.submit(v2), { kind: 'duplicate' }, 'one incident is reported once');
});

t.test('two leader announcements by one node for one term are equivocation', async (t) => {
  const d = detector();
  t.same(d.submit(signLeaderAnnouncement(sc.clusterId, b, 4, 17, secretOf(b))), { kind: 'new' });
  t.same(d.submit(signLeaderAnnouncement(sc.clusterId, b, 4, 17, secretOf(b))), { kind: 'duplicate' });
  t.equal(d.submit(signLeaderAnnouncement(sc.clusterId, b, 4, 12, secretOf(b))).kind, 'equivocation');
});

t.test('the slot is generic: two different DKG round-1 packages for one key epoch are equivocation', async (t) => {
  const d = detector();
  const pkg = (cidByte: number): SignedStatement =>
    signStatement({ clusterId: sc.clusterId, nodeId: c, kind: 'DkgRound1Published', slot: { keyId: 'treasury', keyEpoch: 2 }, content: { round1Cid: new Uint8Array(32).fill(cidByte) } }, secretOf(c));
  t.same(d.submit(pkg(1)), { kind: 'new' });
  t.same(d.submit(signStatement({ clusterId: sc.clusterId, nodeId: c, kind: 'DkgRound1Published', slot: { keyId: 'treasury', keyEpoch: 3 }, content: { round1Cid: new Uint8Array(32).fill(2) } }, secretOf(c))), { kind: 'new' }, 'another epoch');
  t.equal(d.submit(pkg(2)).kind, 'equivocation');
});

t.test('an invalid statement never enters the comparison: a forged second vote proves nothing', async (t) => {
  const d = detector();
  const v1 = signVote(sc.clusterId, a, 9, b, secretOf(a));
  d.submit(v1);
  const forged: SignedStatement = { ...v1, content: { candidate: c } };
  t.same(d.submit(forged), { kind: 'rejected', reason: 'SIGNATURE_INVALID', detail: `the ${RAFT_VOTE} statement is not signed by ${a}` });
});

t.test('evidence is canonical: both orders of discovery give byte-identical ledger events', async (t) => {
  const v1 = signVote(sc.clusterId, a, 11, b, secretOf(a));
  const v2 = signVote(sc.clusterId, a, 11, c, secretOf(a));
  t.same(encodeEvent(evidenceOf(v1, v2)), encodeEvent(evidenceOf(v2, v1)));
  t.throws(() => evidenceOf(v1, signVote(sc.clusterId, a, 12, c, secretOf(a))), /one slot/);
});

t.test('the real ledger accepts the evidence, flags the node, and records the pair once', async (t) => {
  const d = detector();
  d.submit(signVote(sc.clusterId, a, 21, b, secretOf(a)));
  const r = d.submit(signVote(sc.clusterId, a, 21, c, secretOf(a)));
  if (r.kind !== 'equivocation') return t.fail(`expected equivocation, got ${r.kind}`);
  let state: LedgerState = sc.state;
  const first = apply(state, { index: state.index + 1, stampMs: 1_000_000, event: encodeEvent(r.evidence) });
  t.ok(first.result.ok, `applied: ${JSON.stringify(first.result.ok ? first.result.effect : first.result)}`);
  state = first.state;
  t.equal(state.cluster?.nodes[a]?.equivocated, true, `${a} is flagged`);
  t.equal(Object.keys(state.cluster?.evidence ?? {}).length, 1);
  const again = apply(state, { index: state.index + 1, stampMs: 1_000_001, event: encodeEvent(evidenceOf(r.evidence.second, r.evidence.first)) });
  t.ok(again.result.ok && again.result.replayed, 'the same pair proposed by another node is a replay');
  t.equal(Object.keys(again.state.cluster?.evidence ?? {}).length, 1);
});

t.test('memory is bounded: the oldest slot is forgotten first', async (t) => {
  const d = detector(4);
  for (let term = 1; term <= 10; term++) d.submit(signVote(sc.clusterId, a, term, b, secretOf(a)));
  t.equal(d.tracked(), 4);
  t.same(d.submit(signVote(sc.clusterId, a, 1, c, secretOf(a))), { kind: 'new' }, 'term 1 was forgotten');
  t.equal(d.submit(signVote(sc.clusterId, a, 10, c, secretOf(a))).kind, 'equivocation', 'term 10 is remembered');
});

t.test('two fencing reports by one node for one passport do not conflict, as in the ledger', async (t) => {
  const d = detector();
  const report = (reason: string): SignedStatement =>
    signStatement({ clusterId: sc.clusterId, nodeId: a, kind: 'FencingRecord', slot: { nodeId: c, passport: 'passport-x' }, content: { reason } }, secretOf(a));
  t.same(d.submit(report('two leaders seen for term 9')), { kind: 'new' });
  t.same(d.submit(report('equivocated in term 9')), { kind: 'new' }, 'another reason is another report, not a conflict');
  t.same(d.submit(report('equivocated in term 9')), { kind: 'duplicate' }, 'the same report relayed again');
  t.throws(() => evidenceOf(report('one'), report('two')), /do not conflict/);
  const refused = apply(sc.state, { index: sc.state.index + 1, stampMs: 1_000_000, event: encodeEvent({ type: 'EquivocationEvidence', first: report('one'), second: report('two') }) });
  t.match(refused.result, { ok: false, reason: 'PAYLOAD_REJECTED' }, 'the ledger refuses such a pair as evidence too');
});
