/**
 * The cluster event log as a transparency log: which bytes are a leaf, what a checkpoint's origin
 * and signer names are, and what a node hands its kernel so the kernel can check, by itself, that
 * a majority of the cluster applied the entries that authorize a signature.
 *
 *   leaf i   the i-th applied ledger entry (Raft's own entries are not leaves), as
 *            entryLeafData(entry) = canonical CBOR {index, stampMs, event}; leafHash is RFC 9162
 *            §2.1.1 (merkle.ts)
 *   origin   `custody-ledger/<clusterId>`, one log per cluster incarnation
 *   signer   node `n` cosigns as key name `<origin>/<n>` with its Ed25519 identity key, type
 *            cosignature/v1 (C2SP tlog-cosignature), and only checkpoints of its own replica:
 *            the root of the entries it applied, computed by itself
 *
 * A checkpoint cosigned by a majority of the voters is the cluster's certified state
 * (checkpoint.ts certified(): with quorum a majority, no minority can make a reader accept a
 * history the majority did not apply).
 *
 * Pure.
 */
import { encode } from '../encoding.js';
import type { LedgerEntry } from '../events.js';
import { leafHash } from './merkle.js';
import { makeVerifier, SIG_COSIGNATURE_V1, type NoteVerifier } from './note.js';
import type { CheckpointTrust } from './checkpoint.js';

/**
 * The extension line a restored cluster's checkpoints carry (C2SP tlog-checkpoint allows lines
 * after the root hash): `custody-incarnation/v1 <id>`, the incarnation `custody cluster restore`
 * gave every node it seeded (node/backup/incarnation.ts). A cluster never restored writes none.
 * Every node writes its own, so a majority-cosigned checkpoint names the incarnation of the nodes
 * that cosigned it: one node alone cannot make one of another incarnation.
 */
export const INCARNATION_EXTENSION = 'custody-incarnation/v1';

/** The extension lines of a checkpoint of a cluster of incarnation `incarnation` ('' when never restored). */
export function incarnationExtensions(incarnation: string): string[] {
  return incarnation === '' ? [] : [`${INCARNATION_EXTENSION} ${incarnation}`];
}

/** The incarnation a checkpoint names ('' when it names none). */
export function checkpointIncarnation(extensions: readonly string[]): string {
  const line = extensions.find((x) => x.startsWith(`${INCARNATION_EXTENSION} `));
  return line === undefined ? '' : line.slice(INCARNATION_EXTENSION.length + 1);
}

export function checkpointOrigin(clusterId: string): string {
  return `custody-ledger/${clusterId}`;
}

export function nodeSignerName(clusterId: string, nodeId: string): string {
  return `${checkpointOrigin(clusterId)}/${nodeId}`;
}

export function entryLeafData(e: LedgerEntry): Uint8Array {
  return encode({ index: e.index, stampMs: e.stampMs, event: e.event });
}

export function entryLeafHash(e: LedgerEntry): Uint8Array {
  return leafHash(entryLeafData(e));
}

export function nodeVerifier(clusterId: string, nodeId: string, identityKey: Uint8Array): NoteVerifier {
  return makeVerifier(nodeSignerName(clusterId, nodeId), SIG_COSIGNATURE_V1, identityKey);
}

/** Trust in a cluster's checkpoints: its voters' identity keys, a majority of them to certify. */
export function clusterTrust(clusterId: string, voters: readonly { id: string; identityKey: Uint8Array }[]): CheckpointTrust {
  return {
    origin: checkpointOrigin(clusterId),
    verifiers: voters.map((v) => nodeVerifier(clusterId, v.id, v.identityKey)),
    quorum: Math.floor(voters.length / 2) + 1,
  };
}

/** One applied entry and where it sits in the tree. */
export interface EntryInclusion {
  /** Position among applied entries (0-based), not the Raft index. */
  readonly leafIndex: number;
  readonly entry: LedgerEntry;
  /** RFC 9162 inclusion proof of the entry's leaf in the certificate's checkpoint. */
  readonly proof: readonly Uint8Array[];
}

/**
 * What a node gives its kernel with a sign request: a checkpoint note cosigned by a majority of
 * the voters, and the inclusion of each entry the signature rests on (the ActSubmitted with the
 * custodian's request, and the ActSigningSetFixed that fixes the permit's commitment lists).
 */
export interface EntryCertificate {
  readonly note: string;
  readonly inclusions: readonly EntryInclusion[];
  /**
   * An RFC 9162 consistency proof between the checkpoint of `size` leaves the kernel follows and
   * the note's checkpoint, from the smaller to the larger (kernel/certificate.ts checkFollows).
   */
  readonly consistency?: { readonly size: number; readonly proof: readonly Uint8Array[] };
}
