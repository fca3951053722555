/**
 * The trust policy chain past genesis (ledger/trust-chain.ts, ledger/apply.ts trustPolicySigned)
 * from an attacker's seat: after a roster change the ledger computes the next block itself and
 * keeps only cosignatures by nodes of the block before it, over exactly that text. A stranger, a
 * node of the new roster that was not in the old one, a signature over a forged block or another
 * serial, a node's cosignature carried in another node's name, a duplicate and a conflicting
 * second signature are refused; a quorum completes the block, and the exported chain verifies
 * with verifyPolicyChain from the pinned genesis through two roster changes. A witness set
 * (WitnessesChanged) is refused unless it can be a policy's witness lines, and makes a new block
 * that requires the witnesses' cosignatures of a checkpoint.
 */
import fc from 'fast-check';
import t from 'tap';
import { ed25519 } from '@noble/curves/ed25519.js';
import { ScriptedCluster, seedOf } from '../../ledger/scenario.js';
import { type LedgerEvent, decodeEvent, encodeEvent } from '../../ledger/events.js';
import { signProposed } from '../../ledger/proposer-sig.js';
import { restore, snapshot, stateRoot, type ClusterState } from '../../ledger/state.js';
import { checkInvariants } from '../../ledger/invariants.js';
import { pendingTrustBlock, trustChainBlocks } from '../../ledger/trust-chain.js';
import { nodeSignerName } from '../../ledger/tlog/ledger-log.js';
import { cosignatureSigner, ed25519Signer, signNote, vkeyOf } from '../../ledger/tlog/note.js';
import { formatPolicy, formatPolicyChain, parsePolicy, policyDigest, requireWitnesses, verifyPolicyChain } from '../../ledger/tlog/trust-policy.js';
import { ledger as limits } from '../../proto/limits.js';

const TS = 1_700_000_000;

function started(nodes = 3): ScriptedCluster {
  const s = new ScriptedCluster({ label: 'trust-chain', nodes });
  if (!s.genesis().ok) throw new Error('genesis');
  return s;
}

const cluster = (s: ScriptedCluster): ClusterState => s.state.cluster as ClusterState;

/** Secret keys of nodes added after genesis (the script knows only its genesis nodes). */
const extra = new Map<string, Uint8Array>();
function secretOf(s: ScriptedCluster, id: string): Uint8Array {
  return extra.get(id) ?? s.node(id).secretKey;
}

function addNode(s: ScriptedCluster, id: string): void {
  const sk = seedOf(`trust-chain/${id}`);
  extra.set(id, sk);
  const r = s.decide({ kind: 'NodeAdded', node: { id, identityKey: ed25519.getPublicKey(sk), passport: `passport-${id}` } });
  if (!r.ok) throw new Error(`add ${id}: ${r.reason}`);
}

function removeNode(s: ScriptedCluster, id: string): void {
  const r = s.decide({ kind: 'NodeRemoved', nodeId: id });
  if (!r.ok) throw new Error(`remove ${id}: ${r.reason}`);
}

/** `signer`'s cosignature over `text` (its note key `<origin>/<signer>`). */
function cosign(s: ScriptedCluster, signer: string, text: string, ts = TS): Uint8Array {
  return cosignatureSigner(nodeSignerName(s.clusterId, signer), secretOf(s, signer), ts).sign(text);
}

/** A TrustPolicySigned proposed (and proposer-signed) by `proposer`, over the waiting block unless told otherwise. */
function signed(s: ScriptedCluster, proposer: string, o: { signer?: string; text?: string; serial?: number; digest?: Uint8Array; ts?: number } = {}): LedgerEvent {
  const p = pendingTrustBlock(cluster(s));
  const text = o.text ?? p?.text ?? 'custody-ledger/trust-policy/v1\n';
  const rec = cluster(s).nodes[proposer];
  const e = {
    type: 'TrustPolicySigned' as const, serial: o.serial ?? p?.serial ?? 1, blockDigest: o.digest ?? p?.digest ?? policyDigest(text),
    signature: cosign(s, o.signer ?? proposer, text, o.ts), nodeId: proposer, passport: rec?.passport ?? `passport-${proposer}`,
  };
  return signProposed(s.clusterId, e, secretOf(s, proposer));
}

const apply = (s: ScriptedCluster, e: LedgerEvent) => s.entry(e).result;

t.test('nothing waits while the voters never changed', async (t) => {
  const s = started();
  t.equal(cluster(s).trustChain, undefined, 'no chain record: the state keeps its root');
  t.equal(pendingTrustBlock(cluster(s)), null);
  t.match(apply(s, signed(s, 'node-0')), { ok: false, reason: 'INVALID_TRANSITION' });
});

t.test('a roster change: the next block is the ledger\'s, and only the old roster can sign it', async (t) => {
  const s = started();
  const genesisVoters = Object.values(cluster(s).nodes).map((n) => n.id).sort();
  addNode(s, 'node-3');
  const c = cluster(s);
  const p = pendingTrustBlock(c);
  if (p === null) throw new Error('no block waits');
  const genesis = parsePolicy(c.trustChain!.genesis);
  t.same(genesis.nodes.map((v) => v.name), genesisVoters.map((id) => nodeSignerName(s.clusterId, id)), 'the genesis block names the voters before the change');
  t.equal(genesis.quorum, 2);
  const next = parsePolicy(p.text);
  t.equal(next.serial, 1);
  t.same(next.previous, policyDigest(c.trustChain!.genesis), 'previous is the genesis digest');
  t.same(next.nodes.map((v) => v.name), ['node-0', 'node-1', 'node-2', 'node-3'].map((id) => nodeSignerName(s.clusterId, id)));
  t.equal(next.quorum, 3, 'a majority of the new voters');
  t.same(p.signatures, []);

  // Attackers.
  t.match(apply(s, signed(s, 'node-3')), { ok: false, reason: 'UNKNOWN_NODE' }, 'a node of the new roster that was not in the old one');
  extra.set('node-9', seedOf('trust-chain/stranger'));
  t.match(apply(s, signed(s, 'node-9')), { ok: false, reason: 'UNKNOWN_NODE' }, 'a node that is no node of the cluster');
  const forged = formatPolicy({ ...next, nodes: [...next.nodes.slice(0, 3), cosignatureSigner(nodeSignerName(s.clusterId, 'node-3'), seedOf('attacker'), TS).verifier] });
  t.match(apply(s, signed(s, 'node-0', { text: forged, digest: policyDigest(forged) })), { ok: false, reason: 'BINDING_MISMATCH' }, 'a forged block (another node-3 key), named by its own digest');
  t.match(apply(s, signed(s, 'node-0', { text: forged, digest: p.digest })), { ok: false, reason: 'SIGNATURE_INVALID' }, 'a signature over a forged block, named as the waiting one');
  t.match(apply(s, signed(s, 'node-0', { text: c.trustChain!.genesis, digest: p.digest })), { ok: false, reason: 'SIGNATURE_INVALID' }, 'a signature over another text (the genesis block)');
  t.match(apply(s, signed(s, 'node-0', { serial: 2 })), { ok: false, reason: 'BINDING_MISMATCH' }, 'another serial');
  t.match(apply(s, signed(s, 'node-0', { signer: 'node-1' })), { ok: false, reason: 'SIGNATURE_INVALID' }, 'node-1\'s cosignature carried in node-0\'s name');
  const unsigned = { ...signed(s, 'node-0') } as { sig?: Uint8Array };
  delete unsigned.sig;
  t.match(s.entry(encodeEvent(unsigned as LedgerEvent)).result, { ok: false, reason: 'PROPOSER_SIGNATURE_INVALID' }, 'an event in node-0\'s name it did not sign');
  const otherCluster = formatPolicy({ ...next, origin: 'custody-ledger/cluster-other', nodes: next.nodes.map((_v, i) => cosignatureSigner(`custody-ledger/cluster-other/node-${i}`, secretOf(s, `node-${i}`), TS).verifier) });
  t.match(apply(s, signed(s, 'node-0', { text: otherCluster, digest: p.digest })), { ok: false, reason: 'SIGNATURE_INVALID' }, 'its signature over the same roster\'s block of another cluster');
  t.same(pendingTrustBlock(cluster(s))!.signatures, [], 'nothing of it was kept');

  // The old roster signs; a duplicate is a replay, a second signature a conflict.
  const first = signed(s, 'node-0');
  t.match(apply(s, first), { ok: true, replayed: false });
  t.equal(pendingTrustBlock(cluster(s))!.signatures.length, 1);
  t.match(apply(s, first), { ok: true, replayed: true }, 'the same event again');
  t.match(apply(s, signed(s, 'node-0', { ts: TS + 1 })), { ok: false, reason: 'REPLAY_OR_CONFLICT' }, 'another signature by the same node');
  t.equal(pendingTrustBlock(cluster(s))!.signatures.length, 1, 'kept once');
  t.match(apply(s, signed(s, 'node-2')), { ok: true }, 'the quorum of the old roster');
  t.equal(pendingTrustBlock(cluster(s)), null, 'complete: nothing waits');
  t.equal(cluster(s).trustChain!.blocks.length, 1);
  t.match(apply(s, first), { ok: true, replayed: true }, 'a signer of the completed block: a replay');
  t.match(apply(s, signed(s, 'node-1', { text: p.text, digest: p.digest, serial: 1 })), { ok: false, reason: 'INVALID_TRANSITION' }, 'a late signature adds nothing');

  const file = formatPolicyChain(trustChainBlocks(cluster(s)));
  const v = verifyPolicyChain(file, c.trustChain!.genesis);
  t.equal(v.length, 2);
  t.same(v.policy.nodes.map((x) => x.name), next.nodes.map((x) => x.name));
});

t.test('two roster changes: the chain verifies from genesis, a removed node of the head may still sign', async (t) => {
  const s = started();
  addNode(s, 'node-3');
  const genesisText = cluster(s).trustChain!.genesis;
  t.ok(apply(s, signed(s, 'node-1')).ok);
  t.ok(apply(s, signed(s, 'node-0')).ok);
  removeNode(s, 'node-1');
  const p = pendingTrustBlock(cluster(s))!;
  t.equal(p.serial, 2);
  t.equal(p.head.quorum, 3, 'signed by three of the four nodes of serial 1');
  t.equal(parsePolicy(p.text).quorum, 2, 'three voters remain');
  t.ok(apply(s, signed(s, 'node-3')).ok, 'node-3 is a node of serial 1: it signs serial 2');
  const asRemoved = signed(s, 'node-1') as Extract<LedgerEvent, { type: 'TrustPolicySigned' }>;
  t.match(apply(s, signProposed(s.clusterId, { ...asRemoved, sig: undefined }, secretOf(s, 'node-2'))), { ok: false, reason: 'PROPOSER_SIGNATURE_INVALID' }, 'the removed node\'s event signed by another key');
  t.match(apply(s, signProposed(s.clusterId, { ...asRemoved, passport: 'passport-old', sig: undefined }, secretOf(s, 'node-1'))), { ok: false, reason: 'BINDING_MISMATCH' }, 'under a passport it never held');
  t.ok(apply(s, signed(s, 'node-1')).ok, 'node-1, removed by this change, is a node of serial 1');
  t.equal(pendingTrustBlock(cluster(s))!.signatures.length, 2, 'two of three');
  t.ok(apply(s, signed(s, 'node-2')).ok);
  t.equal(pendingTrustBlock(cluster(s)), null);

  const file = formatPolicyChain(trustChainBlocks(cluster(s)));
  const v = verifyPolicyChain(file, genesisText);
  t.equal(v.length, 3);
  t.equal(v.policy.serial, 2);
  t.same(v.policy.nodes.map((x) => x.name), ['node-0', 'node-2', 'node-3'].map((id) => nodeSignerName(s.clusterId, id)));
  t.throws(() => verifyPolicyChain(file, formatPolicy({ ...parsePolicy(genesisText), quorum: 3 })), /pinned/, 'another pinned genesis');

  t.same(checkInvariants(s.state), [], 'the invariants hold');
  const back = restore(snapshot(s.state));
  t.same(stateRoot(back), stateRoot(s.state), 'the chain survives a snapshot');
  t.equal(formatPolicyChain(trustChainBlocks(back.cluster!)), file);
});

t.test('a node id that cannot be part of a note key name is refused before it could break a block', async (t) => {
  const s = started();
  for (const id of ['node 9', 'node+9', 'node\u00a09']) {
    const r = s.decide({ kind: 'NodeAdded', node: { id, identityKey: ed25519.getPublicKey(seedOf(`trust-chain/${id}`)), passport: 'p-9' } });
    t.match(r, { ok: false, reason: 'PAYLOAD_REJECTED' }, JSON.stringify(id));
  }
  t.equal(cluster(s).trustChain, undefined, 'nothing changed');
  t.equal(Object.keys(cluster(s).nodes).length, 3);
});

t.test('the invariants catch a kept chain that an auditor would refuse', async (t) => {
  const s = started();
  addNode(s, 'node-3');
  t.ok(apply(s, signed(s, 'node-0')).ok);
  t.ok(apply(s, signed(s, 'node-1')).ok);
  const c = cluster(s);
  const t0 = c.trustChain!;
  const b = t0.blocks[0]!;
  const forged = { ...s.state, cluster: { ...c, trustChain: { ...t0, blocks: [{ ...b, signatures: b.signatures.slice(0, 1) }] } } };
  t.match(checkInvariants(forged).join('\n'), /does not verify/, 'a block below its quorum');
  const swapped = { ...s.state, cluster: { ...c, trustChain: { ...t0, blocks: [{ ...b, signatures: [{ ...b.signatures[0]!, nodeId: 'node-2' }, b.signatures[1]!] }] } } };
  t.match(checkInvariants(swapped).join('\n'), /does not verify|not/, 'a signature filed under another node');
});

t.test('the kept chain is bounded: once it holds ledger.trustChainBlocksMax blocks no signature for another is kept', async (t) => {
  const s = started();
  addNode(s, 'node-3');
  t.ok(apply(s, signed(s, 'node-0')).ok);
  t.ok(apply(s, signed(s, 'node-1')).ok);
  removeNode(s, 'node-3');
  const c = cluster(s);
  const t0 = c.trustChain!;
  // The head is unchanged (the last block), only the count of kept blocks is at the bound.
  s.state = { ...s.state, cluster: { ...c, trustChain: { ...t0, blocks: Array.from({ length: limits.trustChainBlocksMax - 1 }, () => t0.blocks[0]!) } } };
  t.match(apply(s, signed(s, 'node-0')), { ok: false, reason: 'LIMIT_EXCEEDED' });
});

t.test('a change before the block completes: the old text\'s signatures no longer count', async (t) => {
  const s = started(5);
  addNode(s, 'node-5');
  const a = pendingTrustBlock(cluster(s))!;
  t.ok(apply(s, signed(s, 'node-0')).ok);
  t.ok(apply(s, signed(s, 'node-1')).ok);
  removeNode(s, 'node-4');
  const b = pendingTrustBlock(cluster(s))!;
  t.equal(b.serial, 1, 'still the block after genesis');
  t.notSame(b.digest, a.digest);
  t.same(b.signatures, [], 'the signatures over the first text are not the second\'s');
  t.match(apply(s, signed(s, 'node-2', { text: a.text, digest: a.digest })), { ok: false, reason: 'BINDING_MISMATCH' }, 'a signature over the superseded text');
  for (const id of ['node-0', 'node-1', 'node-4']) t.ok(apply(s, signed(s, id)).ok, `${id} signs the block in force`);
  t.same(verifyPolicyChain(formatPolicyChain(trustChainBlocks(cluster(s)))).policy.nodes.map((x) => x.name.split('/').pop()), ['node-0', 'node-1', 'node-2', 'node-3', 'node-5']);
});

t.test('the event round trips and is bounded at decode', async (t) => {
  const s = started();
  addNode(s, 'node-3');
  const e = signed(s, 'node-0');
  t.same(decodeEvent(encodeEvent(e)), e);
  t.throws(() => decodeEvent(encodeEvent({ ...(e as Extract<LedgerEvent, { type: 'TrustPolicySigned' }>), serial: 0 })), /serial/, 'the genesis block is never signed');
  t.throws(() => decodeEvent(encodeEvent({ ...(e as Extract<LedgerEvent, { type: 'TrustPolicySigned' }>), signature: new Uint8Array(64) })), /signature/, 'a cosignature is 72 bytes');
  t.ok(limits.trustChainBlocksMax > 2);
});

t.test('property: whatever the roster changes and which old voters sign, the exported chain verifies and ends at the voters once complete', async (t) => {
  const seed = Number(process.env.FC_SEED ?? Date.now() % 2_147_483_647);
  t.comment(`FC_SEED=${seed}`);
  const step = fc.record({ add: fc.boolean(), pick: fc.nat(), signers: fc.array(fc.nat(), { maxLength: 6 }) });
  const result = fc.check(fc.property(fc.array(step, { minLength: 1, maxLength: 6 }), (steps) => {
    const s = started(3);
    let added = 0;
    for (const st of steps) {
      const voters = Object.values(cluster(s).nodes).filter((n) => n.status !== 'removed').map((n) => n.id);
      if (st.add || voters.length <= 2) addNode(s, `new-${added++}`);
      else removeNode(s, voters[st.pick % voters.length] as string);
      const p = pendingTrustBlock(cluster(s));
      if (p === null) continue;
      const head = p.head.nodes.map((v) => v.name.slice(v.name.lastIndexOf('/') + 1));
      for (const i of st.signers) {
        if (pendingTrustBlock(cluster(s)) === null) break;
        const r = apply(s, signed(s, head[i % head.length] as string));
        if (!r.ok && r.reason !== 'REPLAY_OR_CONFLICT') throw new Error(`a head node's signature refused: ${r.reason} ${r.detail}`);
      }
    }
    const c = cluster(s);
    const broken = checkInvariants(s.state);
    if (broken.length > 0) throw new Error(`invariants: ${broken.join('; ')}`);
    const v = verifyPolicyChain(formatPolicyChain(trustChainBlocks(c)), c.trustChain!.genesis);
    if (pendingTrustBlock(c) === null) {
      const voters = Object.values(c.nodes).filter((n) => n.status !== 'removed').map((n) => nodeSignerName(s.clusterId, n.id)).sort();
      if (JSON.stringify(v.policy.nodes.map((x) => x.name)) !== JSON.stringify(voters)) throw new Error('a complete chain does not end at the voters');
    }
  }), { seed, numRuns: 25 });
  t.notOk(result.failed, result.failed ? `counterexample ${JSON.stringify(result.counterexample)}: ${String(result.errorInstance)} (replay with FC_SEED=${seed})` : `${result.numRuns} histories: every chain verified from genesis (FC_SEED=${seed})`);
});

t.test('a witness set is a governance decision: checked as a policy\'s witness lines, and a new block like a roster change', async (t) => {
  const s = started();
  const origin = `custody-ledger/${s.clusterId}`;
  const w1 = cosignatureSigner('witness.example/w1', seedOf('trust-chain/w1'), TS);
  const w2 = cosignatureSigner('witness.example/w2', seedOf('trust-chain/w2'), TS);
  const vk = (x: { verifier: Parameters<typeof vkeyOf>[0] }): string => vkeyOf(x.verifier);
  const refusedSet = (witnesses: string[], quorum: number, why: string): void => {
    t.match(s.decide({ kind: 'WitnessesChanged', witnesses, quorum }), { ok: false, reason: 'PAYLOAD_REJECTED' }, why);
  };
  refusedSet(['not a vkey'], 1, 'a text that is no vkey');
  refusedSet([vkeyOf(ed25519Signer('witness.example/w1', seedOf('trust-chain/w1')).verifier)], 1, 'an Ed25519 (0x01) key, not a cosignature/v1 one');
  refusedSet([vkeyOf(cosignatureSigner(`${origin}/node-9`, seedOf('trust-chain/w9'), TS).verifier)], 1, 'a witness named like a node key of the cluster');
  refusedSet([vk(w1), vkeyOf(cosignatureSigner('witness.example/w1', seedOf('trust-chain/other'), TS).verifier)], 1, 'two witnesses of one name');
  refusedSet([vk(w1), vk(w2)], 0, 'witnesses and no quorum');
  refusedSet([vk(w1), vk(w2)], 3, 'a quorum above the witnesses');
  refusedSet([], 1, 'a quorum and no witness');
  refusedSet(Array.from({ length: limits.witnessesMax + 1 }, (_, i) => vkeyOf(cosignatureSigner(`witness.example/x${i}`, seedOf(`trust-chain/x${i}`), TS).verifier)), 1, 'more witnesses than the bound (refused at decode)');
  t.equal(cluster(s).trustChain, undefined, 'nothing recorded');

  t.ok(s.decide({ kind: 'WitnessesChanged', witnesses: [vk(w1), vk(w2)], quorum: 1 }).ok);
  const p = pendingTrustBlock(cluster(s))!;
  t.equal(parsePolicy(cluster(s).trustChain!.genesis).witnesses.length, 0, 'the genesis block names none');
  const next = parsePolicy(p.text);
  t.same(next.witnesses.map((w) => w.name), ['witness.example/w1', 'witness.example/w2']);
  t.equal(next.witnessQuorum, 1);
  t.same(next.nodes.map((v) => v.name), parsePolicy(cluster(s).trustChain!.genesis).nodes.map((v) => v.name), 'the same voters');
  t.ok(apply(s, signed(s, 'node-0')).ok);
  t.ok(apply(s, signed(s, 'node-2')).ok);
  const v = verifyPolicyChain(formatPolicyChain(trustChainBlocks(cluster(s))));
  t.equal(v.policy.serial, 1);
  // Under that policy a checkpoint needs a witness's cosignature besides the nodes'.
  const cp = `${origin}\n5\n${Buffer.alloc(32).toString('base64')}\n`;
  const nodes = ['node-0', 'node-1'].map((id) => cosignatureSigner(nodeSignerName(s.clusterId, id), secretOf(s, id), TS));
  t.throws(() => requireWitnesses(signNote(cp, nodes), v.policy), /QUORUM_NOT_MET|witnesses/, 'no witness line: refused');
  t.doesNotThrow(() => requireWitnesses(signNote(cp, [...nodes, w2]), v.policy), 'one of the two witnesses suffices');

  const back = restore(snapshot(s.state));
  t.same(stateRoot(back), stateRoot(s.state), 'the witness set survives a snapshot');
  t.ok(s.decide({ kind: 'WitnessesChanged', witnesses: [], quorum: 0 }).ok, 'the set cleared');
  t.equal(cluster(s).witnesses, undefined, 'absent again');
  const cleared = parsePolicy(pendingTrustBlock(cluster(s))!.text);
  t.equal(cleared.serial, 2);
  t.same(cleared.witnesses, [], 'the next block names none');
});
