/**
 * A cluster's trust policy: what an auditor needs, and all it needs, to check the cluster's
 * checkpoints offline (the C2SP tlog-policy style of Sigsum and Go's checksum database: one
 * keyword per line, keys as signed-note vkeys). Pure: no I/O, no clock, no randomness.
 *
 * One policy (a block):
 *
 *   custody-ledger/trust-policy/v1\n
 *   origin <checkpoint origin>\n                 custody-ledger/<clusterId> (ledger-log.ts)
 *   serial <decimal>\n                           0 for the genesis policy, +1 per roster change
 *   previous <base64 SHA-256 of the previous block's text>\n      absent in the genesis policy
 *   node <vkey>\n                                one per voter: cosignature/v1 key <origin>/<node id>
 *   quorum <decimal>\n                           distinct node keys a checkpoint needs
 *   [witness <vkey>\n]*                          optional witnesses (C2SP tlog-witness cosigners)
 *   [witness-quorum <decimal>\n]                 present exactly when a witness line is
 *
 * Lines appear in this order; node and witness names are distinct; quorum is between a majority
 * of the nodes and all of them (a minority quorum would let a minority certify a history), the
 * witness quorum between 1 and the number of witnesses.
 *
 * A policy file is a chain of blocks from genesis: the genesis block as plain text, then each
 * later block as a signed note (the block's text, a blank line, signature lines). Block k+1 must
 * be signed by at least quorum(k) distinct node keys of block k (cosignature/v1 lines over the
 * block's text), name block k's text digest in `previous` and carry serial k+1 and the same
 * origin. The signed text's first line is the policy header, which is no checkpoint origin a
 * node signs (parseCheckpoint refuses the text: its second line is not a tree size), so a node's
 * cosignature of a policy block can never be taken for a checkpoint cosignature, nor the reverse.
 *
 * Trust. The auditor pins the genesis block out of band (as a kernel pins the genesis event); the
 * file's later blocks are then checked, not trusted: each roster change is accepted only with the
 * signatures of a quorum of the roster it replaces, so a chain from the pinned genesis cannot be
 * extended by anyone the previous roster's majority did not vouch for. The last block is the
 * policy a checkpoint is checked against (policyTrust).
 *
 * API
 *   formatPolicy(p) / parsePolicy(text)        one block, strict (TRUST_POLICY_INVALID)
 *   policyDigest(text)                         SHA-256 of a block's text (the `previous` value)
 *   formatPolicyChain(blocks) / verifyPolicyChain(file[, pinnedGenesis])   the chain
 *   policyTrust(p)                             the CheckpointTrust of a block's nodes
 *   requireWitnesses(note, p)                  the witness quorum of a block, on a checkpoint note
 *   witnessSetRefusal(origin, vkeys, quorum)   why a witness set cannot be a policy's (null: it can)
 */
import { createHash } from 'node:crypto';
import { CustodyError } from '../../proto/errors.js';
import { tlog as limits } from '../../proto/limits.js';
import type { CheckpointTrust } from './checkpoint.js';
import { decodeBase64Strict, encodeBase64, openNote, parseNote, parseVkey, signNote, vkeyOf, SIG_COSIGNATURE_V1, type NoteSigner, type NoteVerifier } from './note.js';

export const POLICY_HEADER = 'custody-ledger/trust-policy/v1';

export interface TrustPolicy {
  readonly origin: string;
  readonly serial: number;
  /** SHA-256 of the previous block's text; null in the genesis policy. */
  readonly previous: Uint8Array | null;
  readonly nodes: readonly NoteVerifier[];
  readonly quorum: number;
  readonly witnesses: readonly NoteVerifier[];
  /** 0 when the policy names no witness. */
  readonly witnessQuorum: number;
}

function invalid(why: string): never {
  throw new CustodyError('TRUST_POLICY_INVALID', why);
}

const DECIMAL_RE = /^(0|[1-9][0-9]*)$/;

function decimal(what: string, s: string | undefined): number {
  if (s === undefined || !DECIMAL_RE.test(s) || !Number.isSafeInteger(Number(s))) invalid(`${what} is not a decimal without leading zeros`);
  return Number(s);
}

function vkey(what: string, s: string): NoteVerifier {
  try {
    return parseVkey(s);
  } catch (e) {
    return invalid(`${what}: ${(e as Error).message}`);
  }
}

/** The text of one block; refuses a policy that would not parse back to itself. */
export function formatPolicy(p: TrustPolicy): string {
  const lines = [
    POLICY_HEADER,
    `origin ${p.origin}`,
    `serial ${p.serial}`,
    ...(p.previous === null ? [] : [`previous ${encodeBase64(p.previous)}`]),
    ...p.nodes.map((v) => `node ${vkeyOf(v)}`),
    `quorum ${p.quorum}`,
    ...p.witnesses.map((v) => `witness ${vkeyOf(v)}`),
    ...(p.witnesses.length === 0 ? [] : [`witness-quorum ${p.witnessQuorum}`]),
  ];
  const text = `${lines.join('\n')}\n`;
  parsePolicy(text);
  return text;
}

/** Parses one block's text strictly (see the header for the grammar and the bounds). */
export function parsePolicy(text: string): TrustPolicy {
  if (Buffer.byteLength(text) > limits.policyBytesMax) invalid(`a policy block is longer than ${limits.policyBytesMax} bytes`);
  if (!text.endsWith('\n')) invalid('a policy block ends with a newline');
  const lines = text.slice(0, -1).split('\n');
  let i = 0;
  const next = (keyword: string): string | undefined => {
    const l = lines[i];
    if (l === undefined || !l.startsWith(`${keyword} `)) return undefined;
    i++;
    return l.slice(keyword.length + 1);
  };
  if (lines[i++] !== POLICY_HEADER) invalid(`the first line is not ${POLICY_HEADER}`);
  const origin = next('origin');
  if (origin === undefined || origin.length === 0 || /[\u0000-\u001f]/.test(origin)) invalid('no "origin <checkpoint origin>" line');
  const serial = decimal('serial', next('serial'));
  const prevText = next('previous');
  let previous: Uint8Array | null = null;
  if (prevText !== undefined) {
    const d = decodeBase64Strict(prevText);
    if (d === undefined || d.length !== 32) invalid('previous is not canonical base64 of a SHA-256 digest');
    previous = d;
  }
  if ((serial === 0) !== (previous === null)) invalid('the genesis policy (serial 0), and only it, names no previous policy');
  const nodes: NoteVerifier[] = [];
  for (let v = next('node'); v !== undefined; v = next('node')) nodes.push(vkey(`node ${nodes.length + 1}`, v));
  const quorum = decimal('quorum', next('quorum'));
  const witnesses: NoteVerifier[] = [];
  for (let v = next('witness'); v !== undefined; v = next('witness')) witnesses.push(vkey(`witness ${witnesses.length + 1}`, v));
  const wq = next('witness-quorum');
  const witnessQuorum = wq === undefined ? 0 : decimal('witness-quorum', wq);
  if (i !== lines.length) invalid(`line ${i + 1} is not where the grammar allows it: ${JSON.stringify(lines[i]?.slice(0, 40))}`);
  if (nodes.length === 0 || nodes.length > limits.policyKeysMax) invalid(`a policy names 1 to ${limits.policyKeysMax} node keys`);
  if (witnesses.length > limits.policyKeysMax) invalid(`a policy names at most ${limits.policyKeysMax} witnesses`);
  const names = [...nodes, ...witnesses].map((v) => v.name);
  if (new Set(names).size !== names.length) invalid('two keys of the policy share a name');
  if (nodes.some((v) => v.type !== SIG_COSIGNATURE_V1) || witnesses.some((v) => v.type !== SIG_COSIGNATURE_V1)) invalid('policy keys are cosignature/v1 (type 0x04) keys');
  if (nodes.some((v) => !v.name.startsWith(`${origin}/`))) invalid(`node key names start with the origin and a slash (${origin}/<node id>)`);
  if (quorum <= nodes.length / 2 || quorum > nodes.length) invalid(`quorum ${quorum} is not a majority of the ${nodes.length} nodes`);
  if ((witnesses.length === 0) !== (wq === undefined)) invalid('witness-quorum is present exactly when the policy names witnesses');
  if (witnesses.length > 0 && (witnessQuorum < 1 || witnessQuorum > witnesses.length)) invalid(`witness-quorum ${witnessQuorum} with ${witnesses.length} witnesses`);
  return { origin, serial, previous, nodes, quorum, witnesses, witnessQuorum };
}

/** SHA-256 of a block's text: what the next block's `previous` names. */
export function policyDigest(text: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(text, 'utf8').digest());
}

/** What a checkpoint must satisfy under policy `p`: its origin, its node keys and quorum. */
export function policyTrust(p: TrustPolicy): CheckpointTrust {
  return { origin: p.origin, verifiers: p.nodes, quorum: p.quorum };
}

/** Throws QUORUM_NOT_MET unless `note` carries cosignatures of `p.witnessQuorum` distinct witnesses of `p` (nothing when it names none). */
export function requireWitnesses(note: string, p: TrustPolicy): void {
  if (p.witnesses.length === 0) return;
  let signers: string[] = [];
  try {
    signers = [...new Set(openNote(note, p.witnesses).verified.map((s) => s.name))];
  } catch (e) {
    if (!(e instanceof CustodyError) || e.reason !== 'NOTE_SIGNATURE_INVALID' || e.detail !== 'no known key signed the note') throw e;
  }
  if (signers.length < p.witnessQuorum) throw new CustodyError('QUORUM_NOT_MET', `checkpoint cosigned by ${signers.length} witnesses of the policy, ${p.witnessQuorum} required`);
}

/**
 * Why `vkeys` with `quorum` cannot be the witness lines of a policy of `origin` (null when they
 * can): each a canonical cosignature/v1 vkey, distinct names, none under `<origin>/` (the node
 * keys' names), at most policyKeysMax; quorum 1 to their number, or 0 with none. Shared by the
 * ledger and the kernels (a WitnessesChanged decision), so a set they accept always formats.
 */
export function witnessSetRefusal(origin: string, vkeys: readonly string[], quorum: number): string | null {
  if (vkeys.length > limits.policyKeysMax) return `at most ${limits.policyKeysMax} witnesses`;
  if (vkeys.length === 0) return quorum === 0 ? null : 'no witness and a witness quorum';
  if (!Number.isSafeInteger(quorum) || quorum < 1 || quorum > vkeys.length) return `witness quorum ${quorum} with ${vkeys.length} witnesses`;
  const names = new Set<string>();
  for (const [i, k] of vkeys.entries()) {
    let v: NoteVerifier;
    try {
      v = parseVkey(k);
    } catch (e) {
      return `witness ${i + 1}: ${(e as Error).message}`;
    }
    if (vkeyOf(v) !== k) return `witness ${i + 1} is not a canonical vkey`;
    if (v.type !== SIG_COSIGNATURE_V1) return `witness ${i + 1} is not a cosignature/v1 (type 0x04) key`;
    if (v.name.startsWith(`${origin}/`)) return `witness ${i + 1} is named like a node key of ${origin}`;
    if (names.has(v.name)) return `two witnesses are named ${v.name}`;
    names.add(v.name);
  }
  return null;
}

/**
 * The text of the block that follows `prev` with the nodes (and witnesses) `next`, signed by
 * `signers` (keys of `prev`'s nodes). Refuses TRUST_POLICY_INVALID when the result would not
 * verify as the next link.
 */
export function nextPolicyBlock(prevText: string, next: Omit<TrustPolicy, 'serial' | 'previous' | 'origin'>, signers: readonly NoteSigner[]): string {
  const prev = parsePolicy(prevText);
  const text = formatPolicy({ ...next, origin: prev.origin, serial: prev.serial + 1, previous: policyDigest(prevText) });
  const note = signNote(text, signers);
  checkLink(prev, prevText, note);
  return note;
}

/** Block k+1 (a signed note) after block k: quorum(k) signers of k, digest, serial, origin. Returns its text. */
function checkLink(prev: TrustPolicy, prevText: string, note: string): string {
  let opened;
  try {
    opened = openNote(note, prev.nodes);
  } catch (e) {
    if (e instanceof CustodyError && e.reason === 'NOTE_SIGNATURE_INVALID' && e.detail === 'no known key signed the note') {
      throw new CustodyError('QUORUM_NOT_MET', `policy serial ${prev.serial + 1} is signed by no node of policy serial ${prev.serial}`);
    }
    throw e;
  }
  const p = parsePolicy(opened.text);
  const signers = new Set(opened.verified.map((s) => s.name));
  if (signers.size < prev.quorum) throw new CustodyError('QUORUM_NOT_MET', `policy serial ${p.serial} is signed by ${signers.size} nodes of the policy before it, ${prev.quorum} required`);
  if (p.serial !== prev.serial + 1) invalid(`policy serial ${p.serial} follows serial ${prev.serial}`);
  if (p.origin !== prev.origin) invalid(`policy serial ${p.serial} names origin ${JSON.stringify(p.origin)}, the chain ${JSON.stringify(prev.origin)}`);
  const d = policyDigest(prevText);
  if (p.previous === null || Buffer.compare(Buffer.from(p.previous), Buffer.from(d)) !== 0) invalid(`policy serial ${p.serial} does not name the digest of the policy before it`);
  return opened.text;
}

/** A policy file: the genesis block's text, then each later block's note, concatenated. */
export function formatPolicyChain(blocks: readonly string[]): string {
  const file = blocks.join('');
  verifyPolicyChain(file);
  return file;
}

export interface VerifiedPolicyChain {
  /** The policy in force: the last block. */
  readonly policy: TrustPolicy;
  readonly genesis: TrustPolicy;
  /** Digest of the genesis block's text: what an auditor compares with the one it pinned. */
  readonly genesisDigest: Uint8Array;
  readonly length: number;
}

/**
 * Checks a policy file from its genesis block to its last (see the header). With `pinnedGenesis`
 * (a genesis block's text the auditor holds), the file's genesis must be exactly it
 * (TRUST_POLICY_INVALID otherwise). Refusals: TRUST_POLICY_INVALID, QUORUM_NOT_MET,
 * NOTE_MALFORMED, NOTE_SIGNATURE_INVALID.
 */
export function verifyPolicyChain(file: string, pinnedGenesis?: string): VerifiedPolicyChain {
  if (Buffer.byteLength(file) > limits.policyChainBytesMax) invalid(`a policy file is longer than ${limits.policyChainBytesMax} bytes`);
  if (!file.startsWith(`${POLICY_HEADER}\n`)) invalid(`a policy file starts with ${POLICY_HEADER}`);
  // Blocks start at the header line; no signature line (em dash) or policy line can equal it.
  const starts: number[] = [];
  for (let at = 0; at >= 0 && at < file.length; at = file.indexOf(`\n${POLICY_HEADER}\n`, at)) {
    starts.push(at === 0 ? 0 : at + 1);
    at = at === 0 ? 1 : at + 1;
  }
  const blocks = starts.map((s, i) => file.slice(s, starts[i + 1] ?? file.length));
  if (blocks.length > limits.policyChainBlocksMax) invalid(`a policy file holds at most ${limits.policyChainBlocksMax} blocks`);
  const genesisText = blocks[0] as string;
  if (pinnedGenesis !== undefined && genesisText !== pinnedGenesis) invalid('the file\'s genesis policy is not the pinned one');
  const genesis = parsePolicy(genesisText);
  if (genesis.serial !== 0) invalid('the first block is not a genesis policy (serial 0)');
  let prev = genesis;
  let prevText = genesisText;
  for (const note of blocks.slice(1)) {
    parseNote(note);
    prevText = checkLink(prev, prevText, note);
    prev = parsePolicy(prevText);
  }
  return { policy: prev, genesis, genesisDigest: policyDigest(genesisText), length: blocks.length };
}
