/**
 * Certified Raft snapshots: a follower installs a snapshot only when a majority of the voters it
 * knows certified exactly its content. Raft's InstallSnapshot (§7) trusts the leader; here it
 * does not have to: one compromised host holding a node's certificate and identity key, sending a
 * forged snapshot of a higher term, gets it refused (SNAPSHOT_NOT_CERTIFIED) and the follower
 * keeps its replica.
 *
 * What is certified: a C2SP checkpoint (https://c2sp.org/tlog-checkpoint) of the ledger's tree at
 * the snapshot, with one extension line (the spec allows extension lines after the root hash):
 *
 *   custody-ledger/<clusterId>                       origin (ledger/tlog/ledger-log.ts)
 *   <tree size S>                                     leaves of the snapshot's tree edge (= state height)
 *   <base64 root at S>                                the root the snapshot's tree edge gives
 *   custody-snapshot/v1 <R> <T> <I> <stateRoot> <D>  Raft index and term, ledger index, state root
 *                                                     (ledger/state.ts stateRoot), and the digest D
 *
 * D = SHA-256("custody-ledger/v1/snapshot" || 0 || CBOR{index R, term T, conf (each list sorted),
 * appliedTerm, sessions (the client sessions' JSON, in eviction order), app: SHA-256(application
 * snapshot bytes)}). The application snapshot (node/ledger-app.ts) is canonical CBOR of the full
 * ledger state, the applied decisions, the approval book and the tree edge, so D binds everything
 * a follower installs: the state (not only what stateRoot covers: ended acts held in memory too),
 * the decisions the kernels catch up from, the book, the membership in the Raft snapshot's meta
 * (a forged configuration could make a follower a cluster of one), and the client sessions (which
 * decide whether a retried command is applied). The certificate travels in the snapshot's
 * envelope (raft/driver.ts `cert`) and is not part of D.
 *
 * Message flow (leader L sends its snapshot at Raft index R to follower F; voters V):
 *   1. Every node takes its snapshots at the same indexes, each multiple R of
 *      raft.snapshotEveryEntries (raft/driver.ts captures the state right after applying R), and
 *      records the checkpoint text of its OWN snapshot at R (`statement`, `recorded`) in the batch
 *      that applied R, so it survives a crash with what it applied (the last
 *      tlog.snapshotStatementsKeptMax; and it can always vouch for the snapshot it stores).
 *   2. When L's core needs to send its stored snapshot and L holds no certificate for it, L signs
 *      its own text (cosignature/v1 under its identity key, name custody-ledger/<clusterId>/<L>)
 *      and asks every other voter P (peer service `Cosign` with snapshot_index R, mutual TLS).
 *      P answers a note over ITS OWN text for R, or refuses if it holds none (not there yet, or
 *      past the window): P never signs content it was given. L keeps P's line only if it verifies
 *      over L's text (node/checkpoints.ts gatherCosignatures: a line that does not is a divergence,
 *      counted and logged). Gathering runs beside the Raft loop, never in it: until a majority
 *      signed, L sends no snapshot at R (it sends the certified one it kept, 2a; with none, the
 *      core keeps probing F and asks again at F's next answer;
 *      attempts at most every tlog.snapshotCertRetryMs). Every node gathers for its own newest
 *      snapshot as soon as it stores it, while the voters that applied the index hold their
 *      statements; a snapshot installed from a leader carries its certificate, which counts once
 *      checked.
 *   2a. Liveness. A node compacts its log only up to a snapshot it holds a certificate for, and
 *      keeps that snapshot, with the certificate, until a newer one is certified
 *      (raft/driver.ts sendableSnapshot, LevelStorage.keepSendable); that is the snapshot L sends.
 *      So a follower never needs a snapshot no majority can certify: without the rule a leader
 *      whose newest snapshot no other voter has applied yet (one lags, one lost its disk) would
 *      compact past it, and both followers would wait for good for a certificate only their own
 *      catching up could make (whole-node simulator seed 3310480262). With it they install the
 *      certified snapshot, catch up by log, apply the newer index themselves and then cosign it.
 *      While no majority applies anything the log grows, as it does without compaction.
 *   3. F assembles the chunks; before the core changes anything, `check` recomputes the text from
 *      the received bytes (tree edge -> S and root, stateRoot, D over meta, sessions and the
 *      application bytes), and requires the certificate to be a note over exactly that text
 *      signed by a majority of the voters F knows: the nodes not removed in F's own applied
 *      ledger roster (or, for a node whose ledger holds no cluster yet, the pinned genesis
 *      roster). Otherwise the core drops the snapshot, counts it, and F's log, state and store
 *      stay as they were (custody_snapshot_refused_total{reason}).
 *
 * Safety (who is trusted for what). The sender is trusted for nothing: F recomputes everything
 * the note says from the bytes it would install, and the note's signatures are checked under keys
 * F takes from its own replica. A voter signs a text only for a snapshot of its own replica at R,
 * and Raft's log matching makes every honest replica's state at a committed R the same, so a
 * certificate is a statement by a majority of F's voters that their replicas at R are exactly
 * these bytes. A minority (one compromised node, or several short of a majority) cannot produce
 * one for any other content; keys of nodes removed from F's roster do not count; signatures by
 * unknown keys are ignored; a signature by a known key that fails refuses the note (checkpoint.ts
 * certified). Trust in F's roster is trust in F's own applied log, as for everything else F does.
 *
 * What this does not change: `custody cluster restore --snapshot FILE` seeds a new cluster from the
 * operator's own file (node/backup/restore.ts, raft/driver.ts seedStore): that is the operator's
 * decision, taken without this check. A fresh node whose roster is only its genesis can install a
 * snapshot only while a majority of the genesis voters still vote and cosign.
 */
import { createHash } from 'node:crypto';
import { CustodyError, isCustodyError } from '../proto/errors.js';
import { tlog as limits } from '../proto/limits.js';
import type { ReasonCode } from '../proto/reasons.js';
import { encode } from '../ledger/encoding.js';
import { stateRoot } from '../ledger/state.js';
import { certified, formatCheckpoint } from '../ledger/tlog/checkpoint.js';
import { CompactTree } from '../ledger/tlog/merkle.js';
import { cosignatureSigner, encodeBase64, parseNote, signNote } from '../ledger/tlog/note.js';
import { checkpointOrigin, clusterTrust, nodeSignerName } from '../ledger/tlog/ledger-log.js';
import type { Snapshot, SnapshotMeta } from '../raft/core/types.js';
import { parseSnapshotEnvelope, snapshotWithCertificate as withCert, type SnapshotCertification, type SnapshotEnvelope } from '../raft/driver.js';
import { gatherCosignatures } from './checkpoints.js';
import { decodeAppSnapshot, type LedgerApp } from './ledger-app.js';

export const SNAPSHOT_EXTENSION = 'custody-snapshot/v1';
const DIGEST_DOMAIN = 'custody-ledger/v1/snapshot';

export interface Voter {
  readonly id: string;
  readonly identityKey: Uint8Array;
}

/** Another voter, asked for its note over its own snapshot at a Raft index (node/lifecycle/peer.ts RemoteCosigner). */
export interface SnapshotCosignPeer {
  readonly nodeId: string;
  cosignSnapshot(index: number): Promise<string>;
}

function notCertified(detail: string): CustodyError {
  return new CustodyError('SNAPSHOT_NOT_CERTIFIED', detail);
}

/** D of the header: binds the Raft meta, the envelope's head and the application bytes. */
export function snapshotDigest(meta: SnapshotMeta, env: SnapshotEnvelope): Uint8Array {
  const sorted = (xs: readonly string[]): string[] => [...xs].sort();
  const body = encode({
    index: meta.index,
    term: meta.term,
    conf: { voters: sorted(meta.conf.voters), learners: sorted(meta.conf.learners), votersOutgoing: sorted(meta.conf.votersOutgoing), learnersNext: sorted(meta.conf.learnersNext), autoLeave: meta.conf.autoLeave },
    appliedTerm: env.appliedTerm,
    sessions: Buffer.from(JSON.stringify(env.sessions), 'utf8'),
    app: createHash('sha256').update(env.app).digest(),
  });
  return createHash('sha256').update(DIGEST_DOMAIN).update(Buffer.from([0])).update(body).digest();
}

/**
 * The checkpoint text certifying the snapshot (meta, data), computed from the bytes alone.
 * SNAPSHOT_NOT_CERTIFIED when the snapshot cannot be certified (no cluster, no tree edge, an edge
 * that disagrees with the state), STORAGE_CORRUPT when it does not decode.
 */
export function snapshotCheckpointText(meta: SnapshotMeta, data: Uint8Array): { readonly clusterId: string; readonly text: string } {
  const env = parseSnapshotEnvelope(data);
  const { o, state } = decodeAppSnapshot(env.app);
  const c = state.cluster;
  if (c === null) throw notCertified('its ledger state holds no cluster');
  if (!(o.tlog instanceof Uint8Array)) throw notCertified('it carries no Merkle tree edge');
  let tree: CompactTree;
  try {
    tree = CompactTree.fromBytes(o.tlog);
  } catch (e) {
    throw notCertified(`its Merkle tree edge: ${(e as Error).message}`);
  }
  if (tree.size !== state.height) throw notCertified(`its tree edge has ${tree.size} leaves, its state ${state.height} entries`);
  const line = `${SNAPSHOT_EXTENSION} ${meta.index} ${meta.term} ${state.index} ${encodeBase64(stateRoot(state))} ${encodeBase64(snapshotDigest(meta, env))}`;
  return { clusterId: c.clusterId, text: formatCheckpoint({ origin: checkpointOrigin(c.clusterId), size: tree.size, root: tree.root(), extensions: [line] }) };
}

/**
 * Step 3 of the header: null when `data` carries a certificate, by a majority of `voters` of
 * cluster `clusterId`, over exactly the text its own bytes give; otherwise the refusal.
 */
export function checkCertifiedSnapshot(meta: SnapshotMeta, data: Uint8Array, trust: { readonly clusterId: string; readonly voters: readonly Voter[] } | null): { readonly reason: ReasonCode; readonly detail: string } | null {
  const refuse = (detail: string): { reason: ReasonCode; detail: string } => ({ reason: 'SNAPSHOT_NOT_CERTIFIED', detail });
  try {
    if (trust === null || trust.voters.length === 0) return refuse('this node knows no voters to check a snapshot against');
    const cert = parseSnapshotEnvelope(data).cert;
    if (cert === undefined) return refuse('the snapshot carries no certificate');
    const { text } = snapshotCheckpointText(meta, data);
    let signers: readonly string[];
    try {
      signers = certified(cert, clusterTrust(trust.clusterId, trust.voters)).signers;
    } catch (e) {
      return refuse(`its certificate is not a note a majority of this node's ${trust.voters.length} voters signed: ${isCustodyError(e) ? `${e.reason}: ${e.detail}` : String(e)}`);
    }
    if (parseNote(cert).text !== text) return refuse(`its certificate (signed by ${signers.length}) is over other content than the snapshot's own: ${JSON.stringify(parseNote(cert).text)} vs ${JSON.stringify(text)}`);
    return null;
  } catch (e) {
    return refuse(isCustodyError(e) ? `${e.reason}: ${e.detail}` : String(e));
  }
}

/** The cluster id of a checkpoint text this module formatted (its origin line is checkpointOrigin(id)). */
function originCluster(text: string): string {
  return text.slice(checkpointOrigin('').length, text.indexOf('\n'));
}

export interface SnapshotCertifierOptions {
  readonly nodeId: string;
  /** The node's Ed25519 identity secret key (32-byte seed). */
  readonly identitySecretKey: Uint8Array;
  readonly app: LedgerApp;
  /** The node's stored Raft snapshot (raft/storage/leveldb.ts snapshot()). */
  readonly stored: () => Snapshot;
  /** The other voters to ask (or later, with usePeers, once the peer service is up). */
  readonly peers?: () => readonly SnapshotCosignPeer[];
  /** The roster to check snapshots against while this node's ledger holds no cluster (its pinned genesis). */
  readonly anchor?: { readonly clusterId: string; readonly voters: readonly Voter[] };
  /** Wall clock in ms (cosignature timestamps, retry pacing). */
  readonly now?: () => number;
  readonly onDivergence?: (peer: string) => void;
  readonly log?: (line: string) => void;
}

/** The node's side of the header: records, cosigns, gathers and checks (raft/driver.ts SnapshotCertification). */
export class SnapshotCertifier implements SnapshotCertification {
  private readonly statements = new Map<number, { readonly term: number; readonly text: string }>();
  private storedText: { readonly index: number; readonly term: number; readonly text: string | null } | null = null;
  private note: { readonly index: number; readonly term: number; readonly note: string } | null = null;
  private gathering = false;
  /** The stored snapshot (`index/term`) whose carried certificate was last looked at. */
  private carriedChecked: string | null = null;
  private lastAttemptMs = -Infinity;
  private readonly now: () => number;
  private readonly log: (line: string) => void;
  private peers: () => readonly SnapshotCosignPeer[];

  constructor(private readonly o: SnapshotCertifierOptions) {
    this.now = o.now ?? Date.now;
    this.log = o.log ?? (() => {});
    this.peers = o.peers ?? (() => []);
  }

  /** The other voters to ask from now on. */
  usePeers(peers: () => readonly SnapshotCosignPeer[]): void {
    this.peers = peers;
  }

  /** The voters this node checks against: its own applied roster (nodes not removed), else its anchor. */
  trust(): { clusterId: string; voters: Voter[] } | null {
    const c = this.o.app.state.cluster;
    if (c === null) return this.o.anchor ? { clusterId: this.o.anchor.clusterId, voters: [...this.o.anchor.voters] } : null;
    const voters = Object.values(c.nodes).filter((n) => n.status !== 'removed').map((n) => ({ id: n.id, identityKey: n.identityKey })).sort((a, b) => (a.id < b.id ? -1 : 1));
    return { clusterId: c.clusterId, voters };
  }

  statement(meta: SnapshotMeta, data: Uint8Array): string | null {
    try {
      return snapshotCheckpointText(meta, data).text;
    } catch (e) {
      this.log(`snapshot: no statement for the snapshot at ${meta.index}: ${isCustodyError(e) ? `${e.reason}: ${e.detail}` : String(e)}`);
      return null;
    }
  }

  recorded(index: number, term: number, text: string): void {
    this.statements.set(index, { term, text });
    while (this.statements.size > limits.snapshotStatementsKeptMax) {
      const oldest = Math.min(...this.statements.keys());
      this.statements.delete(oldest);
    }
  }

  /** This node's text for its own snapshot at Raft index `index`, or null when it holds none. */
  private statementAt(index: number): { term: number; text: string } | null {
    const s = this.statements.get(index);
    if (s !== undefined) return s;
    const st = this.o.stored();
    if (st.meta.index !== index) return null;
    if (this.storedText === null || this.storedText.index !== index || this.storedText.term !== st.meta.term) {
      let text: string | null = null;
      try {
        text = snapshotCheckpointText(st.meta, st.data).text;
      } catch {
        text = null;
      }
      this.storedText = { index, term: st.meta.term, text };
    }
    return this.storedText.text === null ? null : { term: this.storedText.term, text: this.storedText.text };
  }

  private signer(clusterId: string): ReturnType<typeof cosignatureSigner> {
    return cosignatureSigner(nodeSignerName(clusterId, this.o.nodeId), this.o.identitySecretKey, Math.floor(this.now() / 1000));
  }

  /** A peer's Cosign for a snapshot: this node's note over its own text at `index`, never over content it was sent. */
  cosign(index: number): string {
    if (!Number.isSafeInteger(index) || index < 1) throw new CustodyError('INVALID_ARGUMENT', `snapshot index ${index}`);
    const s = this.statementAt(index);
    if (s === null) throw notCertified(`${this.o.nodeId} holds no snapshot of its own at index ${index}`);
    return signNote(s.text, [this.signer(originCluster(s.text))]);
  }

  certified(meta: SnapshotMeta, note: string): void {
    this.note = { index: meta.index, term: meta.term, note };
  }

  certificate(meta: SnapshotMeta, data: Uint8Array): string | null {
    const n = this.note;
    if (n !== null && n.index === meta.index && n.term === meta.term) return n.note;
    // A snapshot installed from a leader carries the certificate it passed `check` with: checked
    // again against this node's voters (once per snapshot), it is this node's certificate too.
    const id = `${meta.index}/${meta.term}`;
    if (this.carriedChecked !== id) {
      this.carriedChecked = id;
      let carried: string | undefined;
      try {
        carried = parseSnapshotEnvelope(data).cert;
      } catch {
        carried = undefined;
      }
      if (carried !== undefined && checkCertifiedSnapshot(meta, data, this.trust()) === null) {
        this.note = { index: meta.index, term: meta.term, note: carried };
        return carried;
      }
    }
    if (!this.gathering && this.now() - this.lastAttemptMs >= limits.snapshotCertRetryMs) {
      this.gathering = true;
      this.lastAttemptMs = this.now();
      void this.gather(meta, data).then((note) => {
        this.note = { index: meta.index, term: meta.term, note };
        this.log(`snapshot: the snapshot at ${meta.index} is certified`);
      }, (e: unknown) => {
        this.log(`snapshot: could not certify the snapshot at ${meta.index}: ${isCustodyError(e) ? `${e.reason}: ${e.detail}` : String(e)}`);
      }).finally(() => {
        this.gathering = false;
      });
    }
    return null;
  }

  /** Step 2 of the header. */
  async gather(meta: SnapshotMeta, data: Uint8Array): Promise<string> {
    const trust = this.trust();
    if (trust === null) throw notCertified('this node knows no voters');
    const mine = this.statementAt(meta.index);
    // The text this node recorded when it applied the index (computed again only if it holds none).
    const { clusterId, text } = mine !== null && mine.term === meta.term ? { clusterId: originCluster(mine.text), text: mine.text } : snapshotCheckpointText(meta, data);
    if (mine === null || mine.text !== text) throw notCertified(`the snapshot at ${meta.index} is not this node's own`);
    const own = parseNote(signNote(text, [this.signer(clusterId)])).signatures[0]!;
    const note = await gatherCosignatures({
      clusterId, nodeId: this.o.nodeId, text, own: `\u2014 ${own.name} ${own.base64}\n`, voters: trust.voters, what: `snapshot at index ${meta.index}`,
      peers: this.peers().map((p) => ({ nodeId: p.nodeId, ask: () => p.cosignSnapshot(meta.index) })),
      ...(this.o.onDivergence ? { onDivergence: this.o.onDivergence } : {}), log: this.log,
    });
    // What followers will check, checked here first.
    const refused = checkCertifiedSnapshot(meta, withCert(data, note), trust);
    if (refused !== null) throw new CustodyError('INTERNAL', `the gathered certificate does not pass its own check: ${refused.detail}`);
    return note;
  }

  check(meta: SnapshotMeta, data: Uint8Array): { readonly reason: ReasonCode; readonly detail: string } | null {
    return checkCertifiedSnapshot(meta, data, this.trust());
  }
}
