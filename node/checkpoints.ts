/**
 * Cosigned checkpoints of the ledger's Merkle tree (node/ledger-tree.ts), and the certificate a
 * node hands its kernel with a sign request (ledger/tlog/ledger-log.ts EntryCertificate).
 *
 * Message flow (collector C, the node whose participant signs; peers P):
 *   1. C waits until it has applied the entries asked for (bounded: limits.tlog.cosignApplyWaitMs)
 *      and takes a size S covering them: its tree's size (the entries its ledger chained). It computes the root at S from its
 *      own tree and formats the C2SP checkpoint <origin>\n<S>\n<root>\n; it signs that text with a
 *      cosignature/v1 line under its identity key (key name custody-ledger/<clusterId>/<C>).
 *   2. C asks every other voter P (peer service `Cosign`, mutual TLS with node certificates) to
 *      cosign size S. P waits until its own tree holds S leaves (same bound), computes the root
 *      at S from ITS OWN tree and answers its own note over its own text. P never takes a root
 *      from C: what it signs is always a checkpoint of its own replica.
 *   3. C keeps P's signature line only if it verifies, under P's identity key from C's ledger,
 *      over C's text. One that does not means P computed another root at S: the replicas hold
 *      different entries. C counts it (custody_checkpoint_divergence_total{peer}), logs both node
 *      ids and both roots, and goes on with the others.
 *   4. Once lines from a majority of the ledger roster's voters (C included) verify over the one
 *      text, C returns the note with each entry's inclusion proof at S. If every voter answered
 *      and no majority agrees: CHECKPOINT_DIVERGED when some disagreed, QUORUM_NOT_MET otherwise.
 *
 * Safety (who is trusted for what). Nobody: the kernel checks the note itself against the voter
 * keys it follows from its pinned genesis and verified governance (kernel/certificate.ts), and
 * each entry's proof against the note's root. C is trusted for nothing: it cannot make a peer
 * sign a root the peer did not compute, so a note that verifies under a majority of voter keys is
 * a statement by a majority of voters that their replicas' first S entries hash to this root
 * (RFC 9162 §2.1: a leaf in a tree with that root is one of those entries). A node never signs
 * two roots for one size: the root is computed from its stored tree, written once per position,
 * so a second request for S returns the same root (ledger-tree.ts). With a majority quorum, two
 * certified checkpoints of one size with different roots would need a node that signed both.
 *
 * The last certificate's note is kept: a later sign request whose entries it covers reuses it
 * (with proofs computed at its size) instead of asking the peers again, as long as the voter set
 * is the same.
 *
 * Evidence (node/lifecycle/evidence-proof.ts) takes the same steps at the tree's size when it is
 * exported (`evidence`: always a fresh note, the entries of a proven bundle with their proofs and,
 * asked, a consistency proof from an older bundle's size). `signStatement` is the one other text
 * a node signs with its identity key here: the statement over an exported bundle's digest, whose
 * fixed first line no checkpoint has, so it can never stand for a cosignature of a tree head.
 */
import { CustodyError, isCustodyError } from '../proto/errors.js';
import { tlog as limits } from '../proto/limits.js';
import { bytesEqual, toHex } from '../ledger/encoding.js';
import { certified, formatCheckpoint, parseCheckpoint } from '../ledger/tlog/checkpoint.js';
import { cosignatureSigner, openNote, parseNote, signNote } from '../ledger/tlog/note.js';
import { checkpointOrigin, clusterTrust, incarnationExtensions, nodeSignerName, nodeVerifier, type EntryCertificate, type EntryInclusion } from '../ledger/tlog/ledger-log.js';
import type { LedgerApp } from './ledger-app.js';
import { rosterVoters } from '../ledger/state.js';
import { STATEMENT_HEADER } from './lifecycle/evidence-proof.js';

/** Another voter, asked to cosign a size of its own replica (node/lifecycle/peer.ts RemoteCosigner). */
export interface CosignPeer {
  readonly nodeId: string;
  /** The peer's note over its own checkpoint at `size`. */
  cosign(size: number): Promise<string>;
  /** The peer's RFC 9162 consistency proof from size1 to size2 of its tree (untrusted: whoever uses it verifies it). */
  consistency?(size1: number, size2: number): Promise<Uint8Array[]>;
}

export interface CheckpointerOptions {
  readonly nodeId: string;
  /** The node's Ed25519 identity secret key (32-byte seed), as for its signed statements. */
  readonly identitySecretKey: Uint8Array;
  readonly app: LedgerApp;
  /** The peers to ask (only voters of the ledger roster are counted). */
  readonly peers: () => readonly CosignPeer[];
  /** Wall clock in ms, for cosignature timestamps. */
  readonly now?: () => number;
  readonly onDivergence?: (peer: string) => void;
  readonly log?: (line: string) => void;
  /** The cluster's incarnation ('' when never restored), named in every checkpoint (ledger-log.ts INCARNATION_EXTENSION). */
  readonly incarnation?: string;
  /** Each newly certified checkpoint note (a majority cosigned it), e.g. to push it to witnesses (node/witness/pusher.ts). */
  readonly onCertified?: (note: string) => void;
}

interface Cached { readonly note: string; readonly size: number; readonly voters: string }

export class Checkpointer {
  private cached: Cached | null = null;
  private readonly waiters = new Set<{ done: () => boolean; wake: () => void }>();
  private readonly unsubscribe: () => void;
  private readonly now: () => number;
  private readonly log: (line: string) => void;

  constructor(private readonly o: CheckpointerOptions) {
    this.now = o.now ?? Date.now;
    this.log = o.log ?? (() => {});
    this.unsubscribe = o.app.subscribe(() => {
      for (const w of this.waiters) if (w.done()) w.wake();
    });
  }

  stop(): void {
    this.unsubscribe();
    for (const w of this.waiters) w.wake();
    this.waiters.clear();
  }

  private get clusterId(): string {
    const c = this.o.app.state.cluster;
    if (c === null) throw new CustodyError('CHECKPOINT_NOT_CERTIFIED', 'the ledger has no cluster yet');
    return c.clusterId;
  }

  /** The roster's voters as the kernels follow them: every node not removed. */
  voters(): { id: string; identityKey: Uint8Array }[] {
    const c = this.o.app.state.cluster;
    if (c === null) return [];
    return rosterVoters(c.nodes).map((n) => ({ id: n.id, identityKey: n.identityKey }));
  }

  /** Resolves once `done()` holds after an applied entry; REMOTE_TIMEOUT with `what` after the bound. */
  private async until(done: () => boolean, what: () => string, waitMs: number = limits.cosignApplyWaitMs): Promise<void> {
    if (done()) return;
    let entry: { done: () => boolean; wake: () => void } | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        entry = { done, wake: resolve };
        this.waiters.add(entry);
        timer = setTimeout(() => reject(new CustodyError('REMOTE_TIMEOUT', `${what()} after ${waitMs} ms`)), waitMs);
      });
    } finally {
      if (entry) this.waiters.delete(entry);
      clearTimeout(timer);
    }
  }

  /** This node's note over its own checkpoint at `size` (the answer to a peer's Cosign). */
  async cosign(size: number): Promise<string> {
    if (!Number.isSafeInteger(size) || size < 1) throw new CustodyError('INVALID_ARGUMENT', `tree size ${size}`);
    const app = this.o.app;
    await this.until(() => app.state.height >= size, () => `this node's tree holds ${app.state.height} leaves, not ${size},`);
    return signNote(await this.text(size), [this.signer()]);
  }

  private async text(size: number): Promise<string> {
    const root = await this.o.app.tree.rootAt(size);
    return formatCheckpoint({ origin: checkpointOrigin(this.clusterId), size, root, extensions: incarnationExtensions(this.o.incarnation ?? '') });
  }

  private signer(): ReturnType<typeof cosignatureSigner> {
    return cosignatureSigner(nodeSignerName(this.clusterId, this.o.nodeId), this.o.identitySecretKey, Math.floor(this.now() / 1000));
  }

  /**
   * The certificate of the entries at ledger indexes `indexes` (the ActSubmitted and the
   * ActSigningSetFixed of an act): a checkpoint note cosigned by a majority of the voters and each
   * entry's inclusion, in the order asked.
   */
  async certificate(indexes: readonly number[]): Promise<EntryCertificate> {
    if (indexes.length < 1 || indexes.length > limits.certificateInclusionsMax || !indexes.every((i) => Number.isSafeInteger(i) && i >= 1)) {
      throw new CustodyError('INVALID_ARGUMENT', `a certificate covers 1..${limits.certificateInclusionsMax} ledger indexes, got ${JSON.stringify(indexes)}`);
    }
    const last = Math.max(...indexes);
    const app = this.o.app;
    await this.until(() => app.state.index >= last, () => `this node has applied up to ledger index ${app.state.index}, not ${last},`);
    const voters = this.voters();
    const votersKey = voters.map((v) => `${v.id}:${toHex(v.identityKey)}`).join(',');
    const c = this.cached;
    const tree = this.o.app.tree;
    if (c !== null && c.voters === votersKey && c.size >= tree.baseSize) {
      // Reused when every entry is among its leaves (an entry's leaf position is below its size).
      const covered = await Promise.all(indexes.map(async (i) => (await tree.entry(i)).leafIndex < c.size)).catch(() => [false]);
      if (covered.every(Boolean)) return { note: c.note, inclusions: await this.inclusions(indexes, c.size) };
    }
    const size = tree.size;
    if (size === null) throw new CustodyError('ENTRY_NOT_INCLUDED', 'this node\'s store predates its Merkle tree');
    const note = await this.collect(size, voters);
    this.cached = { note, size, voters: votersKey };
    this.o.onCertified?.(note);
    return { note, inclusions: await this.inclusions(indexes, size) };
  }

  /**
   * A fresh checkpoint of this node's replica cosigned by a majority of the voters (steps 1-4 of
   * the header, at the size of its tree now), the inclusion of each entry at ledger indexes
   * `indexes` (kept types only: node/ledger-tree.ts KEPT_ENTRY_TYPES), and, with
   * `consistencyFrom`, the consistency proof from that size to the checkpoint's: what a proven
   * evidence bundle carries (node/lifecycle/evidence-proof.ts).
   */
  async evidence(indexes: readonly number[], consistencyFrom?: number): Promise<EntryCertificate & { readonly size: number }> {
    if (indexes.length < 1 || indexes.length > limits.evidenceEntriesMax || !indexes.every((i) => Number.isSafeInteger(i) && i >= 1)) {
      throw new CustodyError('INVALID_ARGUMENT', `evidence covers 1..${limits.evidenceEntriesMax} ledger indexes, got ${JSON.stringify(indexes)}`);
    }
    const app = this.o.app;
    const last = Math.max(...indexes);
    await this.until(() => app.state.index >= last, () => `this node has applied up to ledger index ${app.state.index}, not ${last},`);
    const size = app.tree.size;
    if (size === null) throw new CustodyError('ENTRY_NOT_INCLUDED', 'this node\'s store predates its Merkle tree');
    const voters = this.voters();
    const note = await this.collect(size, voters);
    this.cached = { note, size, voters: voters.map((v) => `${v.id}:${toHex(v.identityKey)}`).join(',') };
    const inclusions = await this.inclusions(indexes, size);
    if (consistencyFrom === undefined) return { note, inclusions, size };
    if (!Number.isSafeInteger(consistencyFrom) || consistencyFrom < 1 || consistencyFrom > size) {
      throw new CustodyError('INVALID_ARGUMENT', `a consistency proof from size ${consistencyFrom} to ${size}`);
    }
    return { note, inclusions, size, consistency: { size: consistencyFrom, proof: await this.consistency(consistencyFrom, size) } };
  }

  /**
   * This node's signed statement over an evidence bundle it exports (evidence-proof.ts
   * statementText): a note under its identity key, only over a text of that form, never a
   * checkpoint text.
   */
  signStatement(text: string): string {
    if (!text.startsWith(`${STATEMENT_HEADER}\n`) || !/^[^\n]+\nsha256 [A-Za-z0-9+/]{43}=\n$/.test(text)) throw new CustodyError('INVALID_ARGUMENT', 'a node signs an evidence statement of its one form only');
    return signNote(text, [this.signer()]);
  }

  /**
   * The RFC 9162 consistency proof from size1 to size2 (size1 <= size2) for a kernel that follows
   * one of the two checkpoints. From this node's own tree; a node that joined by snapshot lacks
   * the nodes left of its tree's base, and asks its peers instead. A proof is checked by the
   * kernel against roots it holds, so where it came from does not matter.
   */
  async consistency(size1: number, size2: number): Promise<Uint8Array[]> {
    const app = this.o.app;
    try {
      return await this.ownConsistency(size1, size2);
    } catch (e) {
      if (!isCustodyError(e) || e.reason !== 'ENTRY_NOT_INCLUDED') throw e;
      const why: string[] = [e.detail];
      for (const p of this.o.peers()) {
        if (p.consistency === undefined) continue;
        try {
          const proof = await p.consistency(size1, size2);
          this.log(`checkpoints: consistency proof from ${size1} to ${size2} taken from ${p.nodeId} (this node's tree starts at ${app.tree.baseSize})`);
          return proof;
        } catch (pe) {
          why.push(`${p.nodeId}: ${isCustodyError(pe) ? `${pe.reason}: ${pe.detail}` : String(pe)}`);
        }
      }
      throw new CustodyError('ENTRY_NOT_INCLUDED', `no consistency proof from ${size1} to ${size2}: ${why.join('; ')}`);
    }
  }

  /** The consistency proof from this node's own tree only (what it answers a peer's Consistency). */
  async ownConsistency(size1: number, size2: number): Promise<Uint8Array[]> {
    const app = this.o.app;
    await this.until(() => app.state.height >= size2, () => `this node's tree holds ${app.state.height} leaves, not ${size2},`);
    return app.tree.consistency(size1, size2);
  }

  private async inclusions(indexes: readonly number[], size: number): Promise<EntryInclusion[]> {
    const tree = this.o.app.tree;
    return Promise.all(indexes.map(async (index) => {
      const { leafIndex, entry } = await tree.entry(index);
      return { leafIndex, entry, proof: await tree.proof(leafIndex, size) };
    }));
  }

  /** Steps 1-4 of the header: a note over this node's checkpoint at `size`, cosigned by a majority. */
  private async collect(size: number, voters: readonly { id: string; identityKey: Uint8Array }[]): Promise<string> {
    const clusterId = this.clusterId;
    const text = await this.text(size);
    const own = parseNote(signNote(text, [this.signer()])).signatures[0]!;
    const note = await gatherCosignatures({
      clusterId, nodeId: this.o.nodeId, text, own: `\u2014 ${own.name} ${own.base64}\n`, voters, what: `checkpoint at size ${size}`,
      peers: this.o.peers().map((p) => ({ nodeId: p.nodeId, ask: () => p.cosign(size) })),
      ...(this.o.onDivergence ? { onDivergence: this.o.onDivergence } : {}), log: this.log,
      retryTransient: { untilMs: this.now() + limits.cosignCallMs, retryMs: limits.cosignRetryMs, now: this.now },
    });
    // What the kernels will check, checked here first (a bug here must not reach them as a refusal).
    const check = certified(note, clusterTrust(clusterId, voters));
    if (!bytesEqual(check.checkpoint.root, parseCheckpoint(text).root)) throw new CustodyError('INTERNAL', 'the certified note names another root');
    return note;
  }
}

/**
 * Steps 2-4 of the header for any checkpoint text `text` this node formatted from its own replica
 * and signed (`own`, its signature line): asks every other voter among `peers` for its note over
 * its own text, keeps each line that verifies over `text` under that voter's identity key, and
 * returns the note once a majority of `voters` (this node included) signed. A line that does not
 * verify is a peer that computed another text (divergence: counted, logged, skipped). Refusals:
 * CHECKPOINT_NOT_CERTIFIED (this node is no voter), CHECKPOINT_DIVERGED, QUORUM_NOT_MET.
 */
export async function gatherCosignatures(o: {
  readonly clusterId: string;
  readonly nodeId: string;
  readonly text: string;
  readonly own: string;
  readonly voters: readonly { id: string; identityKey: Uint8Array }[];
  readonly peers: readonly { readonly nodeId: string; ask(): Promise<string> }[];
  readonly what: string;
  readonly onDivergence?: (peer: string) => void;
  readonly log: (line: string) => void;
  /**
   * Ask a peer again, every `retryMs`, while its answer is REMOTE_TIMEOUT (no connection yet: a
   * peer still starting after a restart of every node) and `untilMs` (wall clock) has not passed,
   * and the quorum is not reached. Without it, every failure is final.
   */
  readonly retryTransient?: { readonly untilMs: number; readonly retryMs: number; readonly now: () => number };
}): Promise<string> {
  const { clusterId, text, voters } = o;
  const lines = [o.own];
  const quorum = Math.floor(voters.length / 2) + 1;
  const byId = new Map(voters.map((v) => [v.id, v]));
  if (!byId.has(o.nodeId)) throw new CustodyError('CHECKPOINT_NOT_CERTIFIED', `${o.nodeId} is not a voter of the ledger roster`);
  const peers = o.peers.filter((p) => p.nodeId !== o.nodeId && byId.has(p.nodeId));
  const diverged: string[] = [];
  const failed: string[] = [];
  const ourRoot = parseCheckpoint(text).root;
  let reached = false;
  const ask = async (p: (typeof peers)[number]): Promise<string> => {
    for (;;) {
      try {
        return await p.ask();
      } catch (e) {
        const r = o.retryTransient;
        if (r === undefined || reached || !isCustodyError(e) || e.reason !== 'REMOTE_TIMEOUT' || r.now() + r.retryMs >= r.untilMs) throw e;
        await new Promise((res) => setTimeout(res, r.retryMs));
      }
    }
  };
  await new Promise<void>((resolve) => {
    let pending = peers.length;
    const done = (): void => {
      if (lines.length >= quorum || pending === 0) {
        reached = true;
        resolve();
      }
    };
    done();
    for (const p of peers) {
      const v = byId.get(p.nodeId)!;
      ask(p).then((theirs) => {
        const verifier = nodeVerifier(clusterId, p.nodeId, v.identityKey);
        const line = parseNote(theirs).signatures.find((l) => l.name === verifier.name && l.keyId === verifier.keyId);
        if (line === undefined) throw new CustodyError('NOTE_SIGNATURE_INVALID', `${p.nodeId} answered no signature of its own`);
        const candidate = `${text}\n\u2014 ${line.name} ${line.base64}\n`;
        try {
          openNote(candidate, [verifier]);
        } catch {
          let theirs2 = '(unparsed)';
          try {
            const cp = parseCheckpoint(parseNote(theirs).text);
            theirs2 = [toHex(cp.root), ...cp.extensions].join(' ');
          } catch {
            // The peer's text is not even a checkpoint: still a signature that is not over ours.
          }
          diverged.push(p.nodeId);
          o.onDivergence?.(p.nodeId);
          o.log(`checkpoint: ${p.nodeId}'s cosignature of the ${o.what} does not verify over ${o.nodeId}'s: ${o.nodeId} computed root ${toHex(ourRoot)}, ${p.nodeId} signed ${theirs2}`);
          return;
        }
        lines.push(`\u2014 ${line.name} ${line.base64}\n`);
      }).catch((e: unknown) => {
        failed.push(`${p.nodeId}: ${isCustodyError(e) ? `${e.reason}: ${e.detail}` : String(e)}`);
      }).finally(() => {
        pending--;
        done();
      });
    }
  });
  const signed = lines.length;
  if (signed < quorum) {
    if (diverged.length > 0) throw new CustodyError('CHECKPOINT_DIVERGED', `${o.what}: only ${signed} of ${voters.length} voters signed root ${toHex(ourRoot)}; ${diverged.join(', ')} computed another${failed.length ? `; ${failed.join('; ')}` : ''}`);
    throw new CustodyError('QUORUM_NOT_MET', `${o.what} cosigned by ${signed} of ${voters.length} voters, ${quorum} needed${failed.length ? `: ${failed.join('; ')}` : ''}`);
  }
  return `${text}\n${lines.join('')}`;
}
