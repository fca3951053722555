/**
 * ledger/tlog/trust-policy.ts: one block's grammar (round trip, strict refusals), and the chain
 * from genesis: a roster change is accepted only when a quorum of the roster it replaces signed
 * it, names the digest of the block before it and the next serial; a pinned genesis must be the
 * file's. The attacker's view: a chain extended by a minority, by strangers, out of order, with
 * another origin, or from another genesis.
 */
import t from 'tap';
import { refused } from './tlog-fixtures.js';
import { seedOf } from '../../ledger/index.js';
import {
  POLICY_HEADER, cosignatureSigner, ed25519Signer, formatPolicy, formatPolicyChain, nextPolicyBlock, parsePolicy, policyDigest, policyTrust,
  requireWitnesses, signCheckpoint, signNote, verifyPolicyChain, certified, type TrustPolicy,
} from '../../ledger/tlog/index.js';

const ORIGIN = 'custody-ledger/cluster-1';
const node = (id: string) => cosignatureSigner(`${ORIGIN}/${id}`, seedOf(`trust-policy/${id}`), 1_700_000_000);
const [n1, n2, n3, n4] = ['n1', 'n2', 'n3', 'n4'].map(node) as [ReturnType<typeof node>, ReturnType<typeof node>, ReturnType<typeof node>, ReturnType<typeof node>];
const witness = cosignatureSigner('witness.example/w1', seedOf('trust-policy/w1'), 1_700_000_000);

const genesis: TrustPolicy = { origin: ORIGIN, serial: 0, previous: null, nodes: [n1, n2, n3].map((n) => n.verifier), quorum: 2, witnesses: [], witnessQuorum: 0 };
const genesisText = formatPolicy(genesis);

t.test('a block round trips and is the grammar it documents', async (t) => {
  t.match(genesisText, new RegExp(`^${POLICY_HEADER}\norigin ${ORIGIN}\nserial 0\nnode ${ORIGIN}/n1\\+[0-9a-f]{8}\\+\\S+\nnode .*\nnode .*\nquorum 2\n$`));
  const p = parsePolicy(genesisText);
  t.equal(formatPolicy(p), genesisText);
  const withWitness = formatPolicy({ ...genesis, witnesses: [witness.verifier], witnessQuorum: 1 });
  t.match(withWitness, /\nquorum 2\nwitness witness\.example\/w1\+[0-9a-f]{8}\+\S+\nwitness-quorum 1\n$/);
  t.same(parsePolicy(withWitness).witnesses.map((w) => w.name), ['witness.example/w1']);
});

t.test('malformed or unsafe blocks are refused', async (t) => {
  const bad = (text: string, why: string) => t.throws(() => parsePolicy(text), refused('TRUST_POLICY_INVALID'), why);
  const lines = genesisText.slice(0, -1).split('\n');
  bad(genesisText.slice(0, -1), 'no final newline');
  bad(['custody-ledger/trust-policy/v2', ...lines.slice(1)].join('\n') + '\n', 'another header');
  bad([...lines.slice(0, 5), 'quorum 1'].join('\n') + '\n', 'a minority quorum');
  bad([...lines.slice(0, 5), 'quorum 4'].join('\n') + '\n', 'a quorum above the nodes');
  bad([...lines.slice(0, 5), 'quorum 02'].join('\n') + '\n', 'a leading zero');
  bad([...lines.slice(0, 3), lines[3]!, lines[3]!, lines[4]!, 'quorum 2'].join('\n') + '\n', 'one key twice');
  bad([...lines.slice(0, 3), 'quorum 2'].join('\n') + '\n', 'no node');
  bad([lines[0]!, lines[1]!, 'serial 1', ...lines.slice(3)].join('\n') + '\n', 'serial 1 without previous');
  bad([...lines, 'extra line'].join('\n') + '\n', 'a line outside the grammar');
  bad([...lines, `witness ${'x'}`].join('\n') + '\n', 'a malformed witness key');
  const foreignNode = cosignatureSigner('other.example/n9', seedOf('x'), 1);
  t.throws(() => formatPolicy({ ...genesis, nodes: [...genesis.nodes.slice(0, 2), foreignNode.verifier] }), refused('TRUST_POLICY_INVALID'), 'a node key outside the origin');
  const ed = ed25519Signer(`${ORIGIN}/n9`, seedOf('y'));
  t.throws(() => formatPolicy({ ...genesis, nodes: [...genesis.nodes.slice(0, 2), ed.verifier] }), refused('TRUST_POLICY_INVALID'), 'a key that is not cosignature/v1');
  t.throws(() => formatPolicy({ ...genesis, witnesses: [witness.verifier], witnessQuorum: 2 }), refused('TRUST_POLICY_INVALID'), 'a witness quorum above the witnesses');
});

t.test('a chain from genesis: each roster change signed by a quorum of the roster it replaces', async (t) => {
  const added = { nodes: [n1, n2, n3, n4].map((n) => n.verifier), quorum: 3, witnesses: [], witnessQuorum: 0 };
  const b1 = nextPolicyBlock(genesisText, added, [n1, n3]);
  const b1Text = b1.slice(0, b1.lastIndexOf('\n\n') + 1);
  const removed = { nodes: [n2, n3, n4].map((n) => n.verifier), quorum: 2, witnesses: [witness.verifier], witnessQuorum: 1 };
  const b2 = nextPolicyBlock(b1Text, removed, [n2, n3, n4]);
  const file = formatPolicyChain([genesisText, b1, b2]);
  const v = verifyPolicyChain(file, genesisText);
  t.equal(v.length, 3);
  t.equal(v.policy.serial, 2);
  t.same(v.policy.nodes.map((n) => n.name), [n2, n3, n4].map((n) => n.name));
  t.same([...v.genesisDigest], [...policyDigest(genesisText)]);
  // The policy in force certifies checkpoints: n1 (removed) no longer counts, the witness is required.
  const cp = { origin: ORIGIN, size: 5, root: new Uint8Array(32).fill(1), extensions: [] };
  t.throws(() => certified(signCheckpoint(cp, [n1, n2]), policyTrust(v.policy)), refused('QUORUM_NOT_MET'), 'a removed node does not count');
  const note = signCheckpoint(cp, [n2, n3]);
  t.ok(certified(note, policyTrust(v.policy)));
  t.throws(() => requireWitnesses(note, v.policy), refused('QUORUM_NOT_MET'), 'without the witness the policy refuses it');
  t.doesNotThrow(() => requireWitnesses(signNote(note.slice(0, note.indexOf('\n\n') + 1), [n2, n3, witness]), v.policy), 'with the witness it accepts it');
});

t.test('refused chains: a minority, strangers, a wrong digest, serial or origin, another genesis', async (t) => {
  const next = { nodes: [n1, n2, n3, n4].map((n) => n.verifier), quorum: 3, witnesses: [], witnessQuorum: 0 };
  t.throws(() => nextPolicyBlock(genesisText, next, [n1]), refused('QUORUM_NOT_MET'), 'one of three signed');
  t.throws(() => nextPolicyBlock(genesisText, next, [n4]), refused('QUORUM_NOT_MET'), 'only the new node signed');
  // The same two signatures twice count once.
  const good = nextPolicyBlock(genesisText, next, [n1, n2]);
  const sigLine = good.slice(good.lastIndexOf('\u2014'));
  const oneTwice = good.slice(0, good.indexOf('\u2014')) + sigLine + sigLine;
  t.throws(() => verifyPolicyChain(genesisText + oneTwice), refused('QUORUM_NOT_MET'), 'one signature line repeated');
  const forge = (p: Partial<TrustPolicy>) => {
    const text = formatPolicy({ ...next, origin: ORIGIN, serial: 1, previous: policyDigest(genesisText), ...p });
    return genesisText + signNote(text, [n1, n2]);
  };
  t.ok(verifyPolicyChain(forge({})), 'the honest link verifies');
  t.throws(() => verifyPolicyChain(forge({ previous: policyDigest(genesisText + ' ') })), refused('TRUST_POLICY_INVALID'), 'another previous digest');
  t.throws(() => verifyPolicyChain(forge({ serial: 2 })), refused('TRUST_POLICY_INVALID'), 'a skipped serial');
  t.throws(() => verifyPolicyChain(forge({ origin: 'custody-ledger/cluster-2', nodes: [cosignatureSigner('custody-ledger/cluster-2/n1', seedOf('z'), 1).verifier] , quorum: 1 })), refused('TRUST_POLICY_INVALID'), 'another origin');
  const tampered = forge({}).replace('quorum 3', 'quorum 4');
  t.throws(() => verifyPolicyChain(tampered), refused('NOTE_SIGNATURE_INVALID'), 'a signed block changed after signing');
  const otherGenesis = formatPolicy({ ...genesis, nodes: [n2, n3, n4].map((n) => n.verifier) });
  t.throws(() => verifyPolicyChain(forge({}), otherGenesis), refused('TRUST_POLICY_INVALID'), 'not the pinned genesis');
  t.throws(() => verifyPolicyChain(signNote(genesisText, [n1, n2])), refused('TRUST_POLICY_INVALID'), 'a genesis block is plain text');
  t.throws(() => verifyPolicyChain(forge({}).slice(genesisText.length)), refused('TRUST_POLICY_INVALID'), 'a chain that does not start at serial 0');
});
