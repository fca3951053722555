/**
 * The trust policy chain past genesis, as the ledger builds it (ledger/tlog/trust-policy.ts has
 * the block and file format an auditor checks). Pure: no I/O, no clock, no randomness.
 *
 * What it is for. An auditor pins the genesis policy (the genesis voters' note keys, a majority
 * quorum) and checks every later checkpoint against the last block of the chain. Each block after
 * genesis names the voters after a roster change and is signed by a quorum of the voters of the
 * block before it (C2SP tlog-cosignature cosignature/v1 lines over the block's text), so the
 * chain from the pinned genesis is extended only by what the previous roster's majority vouched
 * for.
 *
 * The block is a function of the ledger. After an accepted governance decision that changes the
 * voters (rosterVoters: NodeAdded, NodeRemoved) or the witnesses (WitnessesChanged, below), the
 * ledger records the chain (trustChainAfter: on the first change, the genesis block computed from
 * the policy before it; a decision after which the policy would not format, e.g. a node id with
 * a space, is refused PAYLOAD_REJECTED). From then on, whenever the policy in force differs from
 * the chain's last block (its head), the block that waits is
 *
 *   origin   custody-ledger/<clusterId>               (the checkpoint origin)
 *   serial   head serial + 1
 *   previous policyDigest(head text)
 *   node     one cosignature/v1 key <origin>/<id> per voter in force, sorted by id
 *   quorum   a majority of them
 *   witness  one per witness of the set in force, and its witness-quorum (none while none is set)
 *
 * (pendingTrustBlock). Every node computes the same text from its own replica; nobody proposes a
 * text. Two policy changes before the first block completes give one block from the head to the
 * policy in force: the signatures gathered for the intermediate text are dropped with it, and
 * every link of the chain is still signed by a quorum of the block before it.
 *
 * Message flow.
 *   1. A node of the head block sees a block waiting (it applied the roster change, or it sees a
 *      waiting block without its signature: node/lifecycle/trust-chain.ts) and signs the block's
 *      text with its identity key as its note key `<origin>/<id>` (cosignature/v1, the key and
 *      name it cosigns checkpoints with, ledger/tlog/ledger-log.ts), with its own clock as the
 *      cosignature's timestamp.
 *   2. It proposes TrustPolicySigned { serial, blockDigest, signature } in its own name
 *      (proposer-signed, ledger/proposer-sig.ts).
 *   3. Every replica applies it (ledger/apply.ts trustPolicySigned, checkTrustSignature here):
 *      the serial and digest must be those of the block this replica computes (BINDING_MISMATCH),
 *      the signer a node of the head block under the key that block names (UNKNOWN_NODE), the
 *      signature a valid cosignature/v1 by that key over the block's text (SIGNATURE_INVALID);
 *      a signer already recorded is a replay (the same bytes) or refused REPLAY_OR_CONFLICT
 *      (other bytes). The signature is kept with the waiting block.
 *   4. When the signatures of quorum(head) distinct nodes of the head are kept, the block joins
 *      the chain with them: it is the new head, and nothing waits until the policy changes again.
 *   5. `custody admin trust export` (node/admin/backend.ts) writes the genesis text and each
 *      completed block as a signed note with its recorded signature lines; verifyPolicyChain
 *      checks exactly what the ledger checked, offline.
 *
 * Safety. What an auditor accepts is decided by verifyPolicyChain alone, from the pinned genesis:
 * the ledger's checks only keep it from recording what the auditor would refuse. A block is
 * complete only with quorum(head) signatures of head nodes over its exact text, each verified by
 * every replica with the key the head names, so every exported block verifies as the next link.
 * The text is the ledger's own (the voters it applied), so a quorum of the previous roster signs
 * the roster the cluster actually runs, never a text someone handed it.
 *
 * Threat (who is trusted for what).
 *  - The previous roster's majority is trusted to vouch for the next roster, exactly as it is
 *    trusted to cosign checkpoints: a majority of voters that lies can certify any history anyway.
 *  - A minority of the head's nodes, a node of the new roster that was not in the head, any
 *    other node, a hostile leader or any host appending to the log cannot add a block: their
 *    signatures are refused (UNKNOWN_NODE, SIGNATURE_INVALID), or are not enough. A hostile
 *    leader can only withhold TrustPolicySigned events, which delays the block (the export then
 *    says which serial waits for how many signatures), and cannot forge a node's event (the
 *    proposer signature) or its cosignature (the identity key).
 *  - A signature over another text (a forged block, another serial, another cluster's origin) is
 *    refused BINDING_MISMATCH or SIGNATURE_INVALID, and a block text is never a checkpoint (its
 *    first line is the policy header), so no node's cosignature of one is taken for the other.
 *  - A removed node of the head may still sign the block that removes it: it is a voter of the
 *    head, and without it a two-voter cluster that removes one could never complete the block.
 *    A fenced passport signs nothing (SPLIT_BRAIN_FENCED), as for every proposed event.
 *
 * Bounds: at most ledger.trustChainBlocksMax blocks are kept (LIMIT_EXCEEDED past it; the file
 * format's own bound is larger); a block's signatures are at most its head's node count.
 *
 * Witnesses (C2SP tlog-witness). The witness set is a governance decision, WitnessesChanged
 * (canonical cosignature/v1 vkeys and a quorum, approved like NodeAdded; ledger and kernels check
 * it with witnessSetRefusal, so a set they accept always formats as a policy's witness lines),
 * not configuration: each node's lifecycle file only says where it pushes checkpoints. The
 * ledger keeps the set in force (ClusterState.witnesses) and the waiting block names it, so a
 * witness change makes a new block exactly as a voter change does, signed the same way by the
 * head's nodes: the witnesses an auditor requires are vouched for by the previous roster's
 * majority, never by one node's configuration. Under a block that names witnesses, a checkpoint
 * needs their quorum's cosignatures (requireWitnesses), so the evidence export pushes its fresh
 * certified checkpoint to the node's configured witnesses and carries their lines, or refuses
 * (node/admin/backend.ts witnessed: WITNESS_UNAVAILABLE, QUORUM_NOT_MET).
 */
import { CustodyError } from '../proto/errors.js';
import { ledger as limits } from '../proto/limits.js';
import { bytesEqual, toHex } from './encoding.js';
import { clusterTrust } from './tlog/ledger-log.js';
import { formatPolicy, parsePolicy, policyDigest, type TrustPolicy } from './tlog/trust-policy.js';
import { openNote, encodeBase64, parseVkey, vkeyOf, type NoteVerifier } from './tlog/note.js';
import { type ClusterState, type TrustBlockRecord, type TrustChainRecord, type TrustSignature, rosterVoters } from './state.js';

/** The policy in force (no serial or previous yet): the voters sorted by id, a majority quorum, the recorded witnesses. */
function votersPolicy(c: ClusterState): Pick<TrustPolicy, 'origin' | 'nodes' | 'quorum' | 'witnesses' | 'witnessQuorum'> {
  const t = clusterTrust(c.clusterId, rosterVoters(c.nodes));
  const w = c.witnesses;
  return { origin: t.origin, nodes: t.verifiers, quorum: t.quorum, witnesses: w === undefined ? [] : w.vkeys.map(parseVkey), witnessQuorum: w?.quorum ?? 0 };
}

/** The genesis block of a cluster whose policy is that of `c` (serial 0). */
export function genesisPolicyText(c: ClusterState): string {
  return formatPolicy({ ...votersPolicy(c), serial: 0, previous: null });
}

function keysOf(nodes: readonly NoteVerifier[]): string {
  return nodes.map(vkeyOf).join('\n');
}

/** What the policy in force is computed from: the voters' ids and keys, the witness set. */
function policyInputs(c: ClusterState): string {
  const w = c.witnesses;
  return `${rosterVoters(c.nodes).map((n) => `${n.id} ${toHex(n.identityKey)}`).join('\n')}\n${w === undefined ? '' : `${w.vkeys.join('\n')}\n${w.quorum}`}`;
}

/** Whether two policies name the same keys and quorums (serial and previous aside). */
function samePolicy(a: Pick<TrustPolicy, 'nodes' | 'quorum' | 'witnesses' | 'witnessQuorum'>, b: Pick<TrustPolicy, 'nodes' | 'quorum' | 'witnesses' | 'witnessQuorum'>): boolean {
  return keysOf(a.nodes) === keysOf(b.nodes) && a.quorum === b.quorum && keysOf(a.witnesses) === keysOf(b.witnesses) && a.witnessQuorum === b.witnessQuorum;
}

/**
 * The state after an accepted governance decision took `before` to `after`: on the first change
 * of the policy, the chain starts with the genesis block of the policy before it. Later changes
 * need nothing here: the waiting block is computed from the head and the policy in force. A
 * string instead: why the decision cannot take effect, because the policy after it would not be
 * a valid block (a node id that cannot be part of a note key name: a space, a '+', too long), so
 * every block the ledger computes later formats.
 */
export function trustChainAfter(before: ClusterState, after: ClusterState): ClusterState | string {
  // Most decisions change neither: a comparison of ids and keys, no key is parsed.
  if (policyInputs(before) === policyInputs(after)) return after;
  let next: ReturnType<typeof votersPolicy>;
  try {
    next = votersPolicy(after);
    formatPolicy({ ...next, serial: 1, previous: new Uint8Array(32) });
  } catch (e) {
    return `the trust policy after it would not be valid: ${e instanceof CustodyError ? e.detail : (e as Error).message}`;
  }
  if (after.trustChain !== undefined) return after;
  try {
    if (samePolicy(votersPolicy(before), next)) return after;
    return { ...after, trustChain: { genesis: genesisPolicyText(before), blocks: [], pending: null } };
  } catch (e) {
    return `the genesis trust policy is not valid: ${e instanceof CustodyError ? e.detail : (e as Error).message}`;
  }
}

/** The chain's last completed block's text (the genesis block's before any completed); null while the voters never changed. */
export function trustHeadText(c: ClusterState): string | null {
  const t = c.trustChain;
  if (t === undefined) return null;
  return t.blocks.length === 0 ? t.genesis : (t.blocks[t.blocks.length - 1] as TrustBlockRecord).text;
}

export interface PendingTrustBlock {
  readonly serial: number;
  readonly text: string;
  readonly digest: Uint8Array;
  /** The head block, whose nodes sign this one. */
  readonly head: TrustPolicy;
  /** The signatures kept for exactly this block (none when the kept ones signed another text). */
  readonly signatures: readonly TrustSignature[];
}

/** The block that waits for the head's signatures, or null when the head names the voters in force. */
export function pendingTrustBlock(c: ClusterState): PendingTrustBlock | null {
  const headText = trustHeadText(c);
  if (headText === null) return null;
  const head = parsePolicy(headText);
  const next = votersPolicy(c);
  if (samePolicy(next, head)) return null;
  const text = formatPolicy({ ...next, serial: head.serial + 1, previous: policyDigest(headText) });
  const digest = policyDigest(text);
  const p = (c.trustChain as TrustChainRecord).pending;
  const signatures = p !== null && bytesEqual(p.digest, digest) ? p.signatures : [];
  return { serial: head.serial + 1, text, digest, head, signatures };
}

/** The head's key of node `nodeId` (named `<origin>/<nodeId>`), if the head names one. */
export function headKeyOf(head: TrustPolicy, nodeId: string): NoteVerifier | undefined {
  return head.nodes.find((v) => v.name === `${head.origin}/${nodeId}`);
}

/** The note line `— <name> base64(key ID || signature)` of a recorded cosignature. */
export function signatureLine(v: NoteVerifier, signature: Uint8Array): string {
  const raw = new Uint8Array(4 + signature.length);
  new DataView(raw.buffer).setUint32(0, v.keyId);
  raw.set(signature, 4);
  return `\u2014 ${v.name} ${encodeBase64(raw)}\n`;
}

/** True when `signature` (cosignature/v1: 8-byte timestamp || Ed25519) is `v`'s over `text`. */
export function checkTrustSignature(v: NoteVerifier, text: string, signature: Uint8Array): boolean {
  if (signature.length !== 72) return false;
  try {
    return openNote(`${text}\n${signatureLine(v, signature)}`, [v]).verified.length === 1;
  } catch {
    return false;
  }
}

/** A completed block as its chain link: the text and its signature lines, sorted by node id. */
export function trustBlockNote(head: TrustPolicy, b: TrustBlockRecord): string {
  const lines = b.signatures.map((s) => {
    const v = headKeyOf(head, s.nodeId);
    if (v === undefined) throw new Error(`node ${s.nodeId} signed policy serial ${head.serial + 1} but is no node of serial ${head.serial}`);
    return signatureLine(v, s.signature);
  });
  return `${b.text}\n${lines.join('')}`;
}

/** The chain's texts as the policy file holds them: the genesis text, then each completed block's note. */
export function trustChainBlocks(c: ClusterState): string[] {
  const t = c.trustChain;
  if (t === undefined) return [];
  const out = [t.genesis];
  let headText = t.genesis;
  for (const b of t.blocks) {
    out.push(trustBlockNote(parsePolicy(headText), b));
    headText = b.text;
  }
  return out;
}

/**
 * The chain after a verified signature of `nodeId` over `pending`: kept with the waiting block,
 * and the block completed when quorum(head) nodes signed it. The caller checked everything.
 */
export function withTrustSignature(c: ClusterState, pending: PendingTrustBlock, s: TrustSignature): { cluster: ClusterState; completed: boolean } {
  const t = c.trustChain as TrustChainRecord;
  const signatures = [...pending.signatures, s].sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  if (signatures.length >= pending.head.quorum) {
    return { cluster: { ...c, trustChain: { ...t, blocks: [...t.blocks, { text: pending.text, signatures }], pending: null } }, completed: true };
  }
  return { cluster: { ...c, trustChain: { ...t, pending: { digest: pending.digest, signatures } } }, completed: false };
}

/** The bound on kept blocks (genesis included). */
export function trustChainFull(c: ClusterState): boolean {
  return (c.trustChain?.blocks.length ?? 0) + 1 >= limits.trustChainBlocksMax;
}
