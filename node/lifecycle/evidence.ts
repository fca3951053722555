/**
 * The evidence bundle of one act: the ledger's bundle (ledger/receipts.ts: act, approval,
 * hash-linked receipts) plus what an outside verifier needs to check the public effect itself:
 *
 *   "signature": { "ciphersuite": "ed25519" | "taproot" | "secp256k1",
 *                  "network": the key's network,
 *                  "groupKey": hex (the group key as the ledger holds it),
 *                  "groupPublicKey": hex (the key as its ecosystem's verifiers take it: x-only for taproot),
 *                  "assets": { symbol: { network, onChain, decimals } } (the asset table the act was parsed with),
 *                  "display": the transaction's facts display, as the approvers saw it,
 *                  "messages": [hex, ...] (the exact bytes signed, one per message, in order),
 *                  "signatures": [hex, ...] (one per message),
 *                  "finalized": hex (finalizeBitcoin's extracted transaction, finalizeSolana's wire
 *                               transaction; for raw, the signature itself),
 *                  "signers": [ { "node", "identifier", "nonces": [ { "counter", "hiding", "binding" }, ... ] }, ... ] }
 *
 * `signers` is the signing set the ledger fixed for the act's permit (ActSigningSetFixed): the
 * nodes whose kernels produced shares, with their FROST identifiers and, per message, the nonce
 * commitments they used, sorted by identifier (RFC 9591 §5.2).
 *
 * verifyBundleSignature trusts nothing in the block that it can recompute: it parses the act's
 * transaction (ledger/tx/parse.ts) against the stated key and asset table, and requires the
 * derived facts to be the act's (asset, amount, destination, display digest, messages digest),
 * the display and messages to be the derived ones, the PublicationReceipt to name the digest of
 * exactly these signatures, every signature to verify over its message under the group key with
 * an independent verifier (verify.ts: OpenSSL Ed25519, BIP 340), and the finalized transaction to
 * be what finalizing the transaction with these signatures gives. For ed25519 it also recomputes
 * the group commitment R of each message's list (RFC 9591 §4.4, §4.5), which must be that
 * signature's first 32 bytes: the signatures were aggregated over exactly those signers. For the
 * secp256k1 suites the lists are checked for shape (sorted identifiers, valid group elements).
 * What the verifier must bring itself: the group key it expects (the bundle states one).
 */
import { CustodyError } from '../../proto/errors.js';
import { bytesEqual, decode, fromHex, toHex } from '../../ledger/encoding.js';
import { artifactDigest } from '../../ledger/apply.js';
import { assetTable } from '../../ledger/admission.js';
import { type SigningSetMember, actFromCbor } from '../../ledger/events.js';
import { exportEvidenceBundle, type EvidenceBundle } from '../../ledger/receipts.js';
import type { GovernanceDecision, KeyScheme } from '../../ledger/decision.js';
import { KEY_SCHEMES } from '../../ledger/decision.js';
import type { ClusterState, OpRecord } from '../../ledger/state.js';
import { keyContextOf } from '../../ledger/state.js';
import { ed25519GroupCommitment, isGroupElement, type ListEntry } from '../../ledger/signing-set.js';
import { declaredMismatch, deriveActFields } from '../../ledger/tx/act.js';
import { finalizeBitcoin, finalizeSolana } from '../../ledger/tx/parse.js';
import { NETWORKS, type AssetTable, type KeyContext, type Network, type TxFacts, type TxKind } from '../../ledger/tx/types.js';
import { verifierKey, verifySignature } from './verify.js';

export interface SignerEntry {
  readonly node: string;
  readonly identifier: string;
  readonly nonces: readonly { readonly counter: number; readonly hiding: string; readonly binding: string }[];
}

export interface SignatureBlock {
  readonly ciphersuite: KeyScheme;
  readonly network: Network;
  readonly groupKey: string;
  readonly groupPublicKey: string;
  readonly assets: { readonly [symbol: string]: { readonly network: Network; readonly onChain: 'native' | { readonly mint: string }; readonly decimals: number } };
  readonly display: string;
  readonly messages: readonly string[];
  readonly signatures: readonly string[];
  readonly finalized: string;
  readonly signers?: readonly SignerEntry[];
}

export type Bundle = EvidenceBundle & { readonly signature?: SignatureBlock };

export function evidenceBundle(c: ClusterState, opId: string, approval: GovernanceDecision | null): Bundle {
  const op = c.ops[opId];
  if (op === undefined) throw new CustodyError('UNKNOWN_SESSION', `no act ${opId}`);
  return evidenceBundleOf(c, op, approval);
}

/**
 * The signed transaction ready for its chain: the extracted Bitcoin transaction, the Solana wire
 * transaction, or for raw bytes the signature itself. Each finalizer checks every signature first.
 */
export function finalizedTransaction(kind: TxKind, tx: Uint8Array, signatures: readonly Uint8Array[]): Uint8Array {
  switch (kind) {
    case 'btc-psbt': return finalizeBitcoin(tx, signatures).tx;
    case 'solana': {
      if (signatures.length !== 1) throw new CustodyError('INVALID_ARGUMENT', `a Solana message takes one signature, not ${signatures.length}`);
      return finalizeSolana(tx, signatures[0] as Uint8Array).tx;
    }
    case 'raw': {
      if (signatures.length !== 1) throw new CustodyError('INVALID_ARGUMENT', `a raw message takes one signature, not ${signatures.length}`);
      return Uint8Array.from(signatures[0] as Uint8Array);
    }
  }
}

function assetsToJson(a: AssetTable): SignatureBlock['assets'] {
  const out: { [symbol: string]: SignatureBlock['assets'][string] } = {};
  for (const k of Object.keys(a).sort()) {
    const x = a[k]!;
    out[k] = { network: x.network, onChain: x.onChain, decimals: x.decimals };
  }
  return out;
}

function assetsFromJson(v: unknown): AssetTable {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('assets: an object');
  const out: { [symbol: string]: AssetTable[string] } = {};
  for (const [symbol, x] of Object.entries(v as Record<string, unknown>)) {
    const e = x as { network?: unknown; onChain?: unknown; decimals?: unknown };
    const onChain = e.onChain === 'native' ? 'native' as const
      : (e.onChain !== null && typeof e.onChain === 'object' && typeof (e.onChain as { mint?: unknown }).mint === 'string') ? { mint: (e.onChain as { mint: string }).mint } : undefined;
    if (!NETWORKS.includes(e.network as Network) || onChain === undefined || typeof e.decimals !== 'number' || !Number.isSafeInteger(e.decimals)) throw new Error(`assets.${symbol}: network, onChain and decimals`);
    out[symbol] = { symbol, network: e.network as Network, onChain, decimals: e.decimals };
  }
  return out;
}

/** The bundle of an act read from memory or from the archive (an ended act keeps every receipt). */
export function evidenceBundleOf(c: ClusterState, op: OpRecord, approval: GovernanceDecision | null): Bundle {
  const base = exportEvidenceBundle(c.clusterId, op, approval, { roster: c.governance.roster, epoch: c.governance.epoch });
  const key = keyContextOf(c, op.act.keyId);
  // Signatures leave the node only once the act is published (node/admin/backend.ts signaturesReleased).
  if (op.signatures === null || key === null || !(op.state === 'Published' || op.state === 'Settled')) return base;
  const assets = assetTable(c);
  const facts = deriveActFields(op.act.kind, op.act.tx, key, assets).facts;
  return {
    ...base,
    signature: {
      ciphersuite: key.scheme, network: key.network, groupKey: toHex(key.groupKey), groupPublicKey: toHex(verifierKey(key.scheme, key.groupKey)),
      assets: assetsToJson(assets), display: facts.display, messages: facts.messages.map(toHex), signatures: op.signatures.map(toHex),
      finalized: toHex(finalizedTransaction(op.act.kind, op.act.tx, op.signatures)),
      ...(op.signingSet === null ? {} : { signers: op.signingSet.commitments.map(signerEntry) }),
    },
  };
}

function signerEntry(m: SigningSetMember): SignerEntry {
  return { node: m.nodeId, identifier: m.identifier, nonces: m.nonces.map((n) => ({ counter: n.counter, hiding: toHex(n.hiding), binding: toHex(n.binding) })) };
}

export type SignatureVerdict = { readonly ok: true } | { readonly ok: false; readonly reason: 'BINDING_MISMATCH' | 'SIGNATURE_INVALID' | 'PAYLOAD_REJECTED'; readonly detail: string };

const mismatch = (detail: string): SignatureVerdict => ({ ok: false, reason: 'BINDING_MISMATCH', detail });

export function verifyBundleSignature(b: Bundle): SignatureVerdict {
  const s = b.signature;
  if (s === undefined) return { ok: false, reason: 'PAYLOAD_REJECTED', detail: 'the bundle carries no signature block' };
  try {
    if (!KEY_SCHEMES.includes(s.ciphersuite)) return { ok: false, reason: 'PAYLOAD_REJECTED', detail: `unknown ciphersuite ${String(s.ciphersuite)}` };
    if (!NETWORKS.includes(s.network)) return { ok: false, reason: 'PAYLOAD_REJECTED', detail: `unknown network ${String(s.network)}` };
    if (!Array.isArray(s.messages) || !Array.isArray(s.signatures)) return { ok: false, reason: 'PAYLOAD_REJECTED', detail: 'messages and signatures: lists' };
    const act = actFromCbor(decode(fromHex(b.act)));
    const groupKey = fromHex(s.groupKey);
    if (!bytesEqual(fromHex(s.groupPublicKey), verifierKey(s.ciphersuite, groupKey))) return mismatch('groupPublicKey is not the verifier form of groupKey');
    const key: KeyContext = { keyId: act.keyId, scheme: s.ciphersuite, groupKey, network: s.network };
    // The facts come from the transaction's bytes, never from the block: the block must agree with them.
    let facts: TxFacts;
    try {
      facts = deriveActFields(act.kind, act.tx, key, assetsFromJson(s.assets)).facts;
    } catch (e) {
      return mismatch(`the act's transaction does not parse for this key: ${(e as Error).message}`);
    }
    const why = declaredMismatch(act, deriveActFields(act.kind, act.tx, key, assetsFromJson(s.assets)).fields);
    if (why !== null) return mismatch(`the act says other than its transaction: ${why}`);
    if (s.display !== facts.display) return mismatch('the display is not the one the transaction renders');
    const messages = s.messages.map((m) => fromHex(m));
    if (messages.length !== facts.messages.length || messages.some((m, i) => !bytesEqual(m, facts.messages[i] as Uint8Array))) {
      return mismatch('the signed messages are not the ones the transaction signs');
    }
    const signatures = s.signatures.map((x) => fromHex(x));
    if (signatures.length !== messages.length) return mismatch(`${signatures.length} signatures for ${messages.length} messages`);
    const pub = b.receipts.find((r) => r.type === 'PublicationReceipt');
    if (pub === undefined) return mismatch('no PublicationReceipt: the signatures were never released');
    const r = decode(fromHex(pub.cbor)) as { signatureDigest?: unknown };
    if (!(r.signatureDigest instanceof Uint8Array) || !bytesEqual(r.signatureDigest, artifactDigest(signatures))) {
      return mismatch('the PublicationReceipt names other signatures');
    }
    for (let i = 0; i < messages.length; i++) {
      if (!verifySignature(s.ciphersuite, groupKey, messages[i] as Uint8Array, signatures[i] as Uint8Array)) {
        return { ok: false, reason: 'SIGNATURE_INVALID', detail: `signature ${i} (${s.ciphersuite}) does not verify over message ${i} under the group key` };
      }
    }
    let finalized: Uint8Array;
    try {
      finalized = finalizedTransaction(act.kind, act.tx, signatures);
    } catch (e) {
      return { ok: false, reason: 'SIGNATURE_INVALID', detail: `the transaction does not finalize with these signatures: ${(e as Error).message}` };
    }
    if (!bytesEqual(finalized, fromHex(s.finalized))) return mismatch('the finalized transaction is not the transaction signed with these signatures');
    return s.signers === undefined ? { ok: true } : checkSigners(s.ciphersuite, s.signers, verifierKey(s.ciphersuite, groupKey), messages, signatures);
  } catch (e) {
    return { ok: false, reason: 'PAYLOAD_REJECTED', detail: `signature block: ${(e as Error).message}` };
  }
}

/** The signing set block: well formed, one nonce pair per message, and for ed25519 the lists each signature was aggregated over. */
function checkSigners(scheme: KeyScheme, signers: readonly SignerEntry[], pk: Uint8Array, messages: readonly Uint8Array[], signatures: readonly Uint8Array[]): SignatureVerdict {
  if (!Array.isArray(signers) || signers.length === 0) return { ok: false, reason: 'PAYLOAD_REJECTED', detail: 'signers: a non-empty list' };
  const lists: ListEntry[][] = messages.map(() => []);
  signers.forEach((m, i) => {
    if (typeof m?.node !== 'string' || typeof m.identifier !== 'string' || !/^[0-9a-f]{64}$/.test(m.identifier)) throw new Error(`signers[${i}]: node and a 32-byte hex identifier`);
    if (!Array.isArray(m.nonces) || m.nonces.length !== messages.length) throw new Error(`signers[${i}]: one nonce pair per message`);
    (m.nonces as SignerEntry['nonces']).forEach((n, j) => {
      if (j > 0 && !(n.counter > (m.nonces[j - 1] as { counter: number }).counter)) throw new Error(`signers[${i}]: counters ascend`);
      const e = { identifier: m.identifier, hiding: fromHex(n.hiding), binding: fromHex(n.binding) };
      if (!isGroupElement(scheme, e.hiding) || !isGroupElement(scheme, e.binding)) throw new Error(`signers[${i}]: a commitment is not a valid ${scheme} group element`);
      (lists[j] as ListEntry[]).push(e);
    });
  });
  const list0 = lists[0] as ListEntry[];
  if (!list0.every((e, i) => i === 0 || (list0[i - 1] as ListEntry).identifier < e.identifier)) return { ok: false, reason: 'PAYLOAD_REJECTED', detail: 'signers: not sorted by identifier' };
  if (scheme === 'ed25519') {
    for (let j = 0; j < messages.length; j++) {
      if (!bytesEqual(ed25519GroupCommitment(pk, messages[j] as Uint8Array, lists[j] as ListEntry[]).R, (signatures[j] as Uint8Array).subarray(0, 32))) {
        return mismatch(`signature ${j} was not aggregated over the listed signers (${signers.map((m) => m.node).join(', ')})`);
      }
    }
  }
  return { ok: true };
}
