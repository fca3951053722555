/**
 * A hostile daemon: a process holding one node's certificate, identity key and kernel socket (a
 * stolen host), speaking the peer and kernel protocols the way a lying node would.
 *
 * Who is trusted for what (kernel/THREATS.md "one node host"): the attacker owns node X's mutual
 * TLS certificate (so every peer accepts its streams as X's), its Ed25519 identity seed (so it
 * signs statements, votes and checkpoint cosignatures as X), its ledger replica and the socket of
 * X's kernel. It holds no approver, custodian or other node's key. Raft tolerates crashes, not lies:
 * a peer cannot tell a hostile X from an honest X, so whatever X can make followers append and
 * commit (Raft §5.3: a follower takes entries from any leader of a term not below its own) must be
 * refused by what every replica checks itself (the ledger's apply, the kernel's own checks).
 *
 * Message flow it uses:
 *   kernel protocol   KernelClient on X's socket (kernel/wire.ts): `nonces`, `sign` under made-up
 *                     permits and certificates only X cosigned, `governance` with forged decisions.
 *   peer protocol     an outbound RaftPeer stream per peer (node/peers.ts PeerTransport, as X) for
 *                     AppendEntries / InstallSnapshot / observation exchanges, and a RaftPeer
 *                     server on X's listen address (node/server.ts NodeServer) so the peers'
 *                     answers (appResp) reach it; LifecyclePeer.Put on each peer's admin port for
 *                     the blob exchange (node/lifecycle/peer.ts).
 *
 * Each attack returns what the attacker saw, and the test asserts the refusals on the honest side
 * (reason codes in replies, `custody_ledger_entries_refused_total{reason}` and the split-brain and
 * equivocation metrics on each node's /metrics).
 */
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { KernelClient } from '../../kernel/client.js';
import type { CommittedDecision, Permit, RequestBody, ResponseBody, SigningCommitment } from '../../kernel/wire.js';
import { isCustodyError } from '../../proto/errors.js';
import { lifecycle as lifecycleLimits } from '../../proto/limits.js';
import { encode } from '../../ledger/encoding.js';
import { decisionToCbor, makeApproverKey, signDecision, type DecisionAction } from '../../ledger/decision.js';
import { encodeEvent, signStatement, type Act, type LedgerEntry, type LedgerEvent, type SigningSetMember } from '../../ledger/events.js';
import { signActRequest } from '../../ledger/act-request.js';
import { deriveActFields } from '../../ledger/tx/act.js';
import { messagesDigest } from '../../ledger/tx/messages.js';
import { LEDGER_ASSETS } from '../../ledger/asset-table.js';
import type { KeyContext, TxKind } from '../../ledger/tx/types.js';
import { checkpointOrigin, cosignatureSigner, entryLeafHash, formatCheckpoint, inclusionProof, memoryReader, nodeSignerName, rootOf, signNote, type EntryCertificate } from '../../ledger/tlog/index.js';
import { encodeCommand } from '../../raft/driver.js';
import { encodeConfChange } from '../../raft/core/confchange.js';
import { msg } from '../../raft/core/message.js';
import type { ConfChange, ConfState, Entry, Message } from '../../raft/core/types.js';
import type { Driver } from '../../raft/driver.js';
import { loadConfig } from '../../node/config.js';
import { loadLifecycleConfig, type LifecycleConfig } from '../../node/lifecycle/node.js';
import { PeerClient } from '../../node/lifecycle/peer.js';
import { keys as blobKeys } from '../../node/lifecycle/participant.js';
import { encodeLedgerCommand } from '../../node/ledger-app.js';
import { type ProposedEvent, isProposed, signProposed } from '../../ledger/proposer-sig.js';
import { PeerTransport } from '../../node/peers.js';
import { NodeServer } from '../../node/server.js';
import { encodeExchange, newBootId } from '../../node/splitbrain/exchange.js';
import { signVote } from '../../node/splitbrain/equivocation.js';
import { channelCredentials, identityOptions, loadTls, type TlsMaterial } from '../../node/tls.js';
import { clientConstructor } from '../../node/wire.js';
import { until } from '../../node/probe.js';

/** What one attack got: 'accepted', or the reason code it was refused with. */
export async function outcomeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'accepted';
  } catch (e) {
    return isCustodyError(e) ? e.reason : `not a refusal: ${String(e)}`;
  }
}

/** The Raft status a peer serves to any roster certificate (proto/raft.proto Custody.Status). */
export interface PeerRaftStatus { id: string; role: string; term: number; leader: string; commit: number; applied: number; lastIndex: number; root: string; voters: string[] }

/** The result of one forged append as the attacker saw it: the peer's answer, and where its entries went. */
export interface AppendOutcome {
  readonly term: number;
  readonly prevIndex: number;
  /** Raft indexes of the forged entries, when the peer took them. */
  readonly indexes: readonly number[];
  /** The peer's appResp; null when it sent none (it ignored the append). */
  readonly answer: Message | null;
}

export class HostileDaemon {
  readonly id: string;
  readonly clusterId: string;
  readonly passport: string;
  private readonly identity: Uint8Array;
  private readonly tls: TlsMaterial;
  private readonly inbox: Message[] = [];
  private readonly waiters = new Set<() => void>();
  private readonly statusClients = new Map<string, grpc.Client>();
  private readonly blobClients = new Map<string, PeerClient>();
  private kernelClient: KernelClient | null = null;
  private seq = 0;

  private constructor(
    private readonly lc: LifecycleConfig,
    private readonly peers: ReadonlyMap<string, string>,
    private readonly transport: PeerTransport,
    private readonly server: NodeServer,
    id: string, tls: TlsMaterial,
  ) {
    this.id = id;
    this.tls = tls;
    this.identity = lc.identitySecretKey;
    this.clusterId = lc.genesisEvent.clusterId;
    this.passport = lc.genesisEvent.nodes.find((n) => n.id === id)?.passport ?? '';
  }

  /**
   * Takes over node `configFile`'s seat (its daemon must be stopped: the hostile listens on its
   * peer address): its node config (listen address, peers, TLS files) and lifecycle config
   * (identity seed, kernel socket, admin addresses of the peers, genesis).
   */
  static async start(configFile: string, lifecycleFile: string): Promise<HostileDaemon> {
    const cfg = loadConfig(configFile);
    const lc = loadLifecycleConfig(lifecycleFile);
    const tls = loadTls(cfg.tls);
    let self: HostileDaemon | null = null;
    // The peers answer X's appends on their own streams to X: a RaftPeer server on X's address
    // collects them (the driver the server would feed is this inbox).
    const inbox = {
      receive: (m: Message) => self?.take(m),
      status: () => ({ id: cfg.id, role: 'follower', term: 0, leader: null, commit: 0, appliedIndex: 0, lastIndex: 0, snapshotIndex: 0, root: '', conf: { voters: [] } }),
    } as unknown as Driver;
    const server = new NodeServer({ id: cfg.id, listen: cfg.listen, roster: new Set(cfg.peers.keys()), tls, driver: inbox, app: null });
    await server.start();
    const transport = new PeerTransport(cfg.id, cfg.peers, tls, {}, () => {}, '', newBootId());
    self = new HostileDaemon(lc, new Map([...cfg.peers].filter(([p]) => p !== cfg.id)), transport, server, cfg.id, tls);
    transport.start();
    await until('the hostile daemon\'s streams to its peers', async () => [...self.peers.keys()].every((p) => transport.reachable(p)), 30_000);
    return self;
  }

  private take(m: Message): void {
    this.inbox.push(m);
    for (const w of this.waiters) w();
  }

  /** The next message from `from` matching `f` (messages already received count), within `ms`. */
  private answer(from: string, f: (m: Message) => boolean, ms = 15_000): Promise<Message> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const i = this.inbox.findIndex((m) => m.from === from && f(m));
        if (i < 0) return;
        const [m] = this.inbox.splice(i, 1);
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve(m as Message);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`no answer from ${from} within ${ms} ms`));
      }, ms);
      this.waiters.add(check);
      check();
    });
  }

  // -------------------------------------------------------------------------------------------
  // Peer protocol: Raft
  // -------------------------------------------------------------------------------------------

  /** `peer`'s Raft status over its Custody service, asked with X's node certificate. */
  raftStatus(peer: string): Promise<PeerRaftStatus> {
    let c = this.statusClients.get(peer);
    if (c === undefined) {
      const Ctor = clientConstructor('Custody');
      c = new Ctor(this.peers.get(peer) as string, channelCredentials(this.tls), identityOptions(peer));
      this.statusClients.set(peer, c);
    }
    const client = c as unknown as { Status(req: object, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: PeerRaftStatus) => void): void };
    return new Promise((resolve, reject) => client.Status({}, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (e, r) => (e ? reject(e) : resolve(r as PeerRaftStatus))));
  }

  /** The leader as the peers see it (not X). */
  async leader(): Promise<string> {
    return until('a leader among the peers', async () => {
      for (const p of this.peers.keys()) {
        const s = await this.raftStatus(p).catch(() => null);
        if (s && s.leader !== '' && s.leader !== this.id && s.role === 'leader' && s.id === s.leader) return s.leader;
      }
      return null;
    }, 60_000);
  }

  /**
   * A ledger command as a node proposes it (driver envelope around node/ledger-app.ts's command).
   * An event in X's own name is signed with X's identity key (ledger/proposer-sig.ts), as X's
   * ledger port would; one in another node's name cannot be, and goes out unsigned.
   */
  command(event: LedgerEvent | Uint8Array, stampMs = Date.now()): Uint8Array {
    const own = !(event instanceof Uint8Array) && isProposed(event) && event.nodeId === this.id && event.sig === undefined;
    const bytes = event instanceof Uint8Array ? event : encodeEvent(own ? signProposed(this.clusterId, event as ProposedEvent, this.identity) : event);
    return encodeCommand(`${this.id}/hostile/${++this.seq}`, 1, encodeLedgerCommand(stampMs, bytes));
  }

  /**
   * AppendEntries as X claiming leadership of a term (`term`: 'higher' = the leader's term + 1, so
   * every follower takes it and the leader steps down, Raft §5.1; 'same' = the leader's own term,
   * so a follower that already follows the leader of that term hears a second leader; the result
   * then has no answer when the peer ignored it). The entries follow the target's last entry and are marked committed (commit = the last forged index), so
   * the peer applies them at once. Retried while the peer's log moves under the attempt.
   */
  async appendForged(target: string, entries: readonly { data: Uint8Array; type?: 'normal' | 'conf' }[], term: 'higher' | 'same' = 'higher', answerMs = 15_000): Promise<AppendOutcome> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const s = await this.raftStatus(target);
      // The leader's last entry carries its current term (it appends an empty entry when elected).
      // At a higher term the leader's log head is the one to follow; in the same term a follower's.
      if (term === 'higher' && s.role !== 'leader') throw new Error(`appendForged: ${target} is ${s.role}, the attack needs the leader's log head`);
      const t = term === 'higher' ? s.term + 1 : s.term;
      const prevIndex = s.lastIndex;
      const es: Entry[] = entries.map((e, i) => ({ term: t, index: prevIndex + 1 + i, type: e.type ?? 'normal', data: e.data }));
      const last = prevIndex + es.length;
      this.inbox.length = 0;
      this.transport.send([msg('app', this.id, target, t, { index: prevIndex, logTerm: s.term, entries: es, commit: last })]);
      const answer = await this.answer(target, (m) => m.type === 'appResp', answerMs).catch(() => null);
      if (answer === null) {
        if (term === 'same') return { term: t, prevIndex, indexes: [], answer: null };
        continue;
      }
      if (!answer.reject && answer.index === last) return { term: t, prevIndex, indexes: es.map((e) => e.index), answer };
    }
    throw new Error(`appendForged: ${target} never took the forged entries`);
  }

  /**
   * Two different histories in one new term: X claims term T+1 (T the leader's) to the follower
   * first and then to the leader, with a different entry for the same (index, term) on each, both
   * marked committed. Raft's log matching (§5.3) compares terms only, so the two honest replicas
   * hold different committed entries under one (index, term) for good. Returns the (index, term)
   * pairs each took. Not refused today: both replicas raise custody_split_brain_active{kind="two_roots"}
   * and no checkpoint finds a majority of cosigners again, so signing stops.
   */
  async forkHonest(leader: string, follower: string): Promise<{ leader: AppendOutcome | null; follower: AppendOutcome | null }> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const [l, f] = [await this.raftStatus(leader), await this.raftStatus(follower)];
      if (l.role !== 'leader' || f.lastIndex !== l.lastIndex) continue;
      const t = l.term + 1;
      const prev = l.lastIndex;
      const one = (to: string, stamp: number): Promise<Message | null> => {
        const e: Entry = { term: t, index: prev + 1, type: 'normal', data: this.command({ type: 'ClockTick', nodeId: this.id, passport: this.passport }, stamp) };
        this.transport.send([msg('app', this.id, to, t, { index: prev, logTerm: l.term, entries: [e], commit: prev + 1 })]);
        return this.answer(to, (m) => m.type === 'appResp', 5_000).catch(() => null);
      };
      this.inbox.length = 0;
      const af = await one(follower, Date.now());
      const al = await one(leader, Date.now() + 1);
      const took = (a: Message | null): AppendOutcome | null => (a !== null && !a.reject && a.index === prev + 1 ? { term: t, prevIndex: prev, indexes: [prev + 1], answer: a } : null);
      if (took(af) !== null || took(al) !== null) return { leader: took(al), follower: took(af) };
    }
    return { leader: null, follower: null };
  }

  /**
   * AppendEntries at the leader's term + 1 whose entries replace committed ones: the previous
   * index is `back` entries before the peer's commit index, and the entries carry other data.
   */
  async overwriteCommitted(target: string, back = 3): Promise<{ sent: { prevIndex: number; term: number; commit: number }; answer: Message }> {
    const s = await this.raftStatus(target);
    const t = s.term + 1;
    const prevIndex = Math.max(0, s.commit - back);
    const es: Entry[] = [0, 1, 2].map((i) => ({ term: t, index: prevIndex + 1 + i, type: 'normal', data: this.command({ type: 'ClockTick', nodeId: this.id, passport: this.passport }) }));
    this.inbox.length = 0;
    this.transport.send([msg('app', this.id, target, t, { index: prevIndex, logTerm: s.term, entries: es, commit: prevIndex + es.length })]);
    const answer = await this.answer(target, (m) => m.type === 'appResp');
    return { sent: { prevIndex, term: t, commit: s.commit }, answer };
  }

  /**
   * Prepared: a membership change forged as X at the leader's term + 1 (a conf entry no
   * governance decision asked for), e.g. { changes: [{ type: 'remove', node: 'n1' }], transition: 'auto' }.
   * Expected refused once conf entries are taken only from governance decisions.
   */
  forgedConfChange(target: string, cc: ConfChange): Promise<AppendOutcome> {
    return this.appendForged(target, [{ type: 'conf', data: encodeConfChange(cc) }]);
  }

  /**
   * One AppendEntries as X at the leader's term + 1 carrying configuration change `cc` after the
   * leader's last entry, marked committed; returns what the peer answered (null: no answer) and
   * whether it took the entry (its answer acknowledges the entry's index).
   */
  async offerConfChange(target: string, cc: ConfChange, answerMs = 15_000): Promise<{ took: boolean; index: number; answer: Message | null }> {
    const s = await this.raftStatus(target);
    if (s.role !== 'leader') throw new Error(`offerConfChange: ${target} is ${s.role}, the attack needs the leader's log head`);
    const t = s.term + 1;
    const e: Entry = { term: t, index: s.lastIndex + 1, type: 'conf', data: encodeConfChange(cc) };
    this.inbox.length = 0;
    this.transport.send([msg('app', this.id, target, t, { index: s.lastIndex, logTerm: s.term, entries: [e], commit: e.index })]);
    const answer = await this.answer(target, (m) => m.type === 'appResp', answerMs).catch(() => null);
    return { took: answer !== null && !answer.reject && answer.index >= e.index, index: e.index, answer };
  }

  /**
   * An abort of act `opId` in node `victim`'s name (under its passport, which the genesis and the
   * ledger publish), appended as X at the leader's term + 1, with no proposer signature (X does
   * not hold the victim's identity key). Expected refused PROPOSER_SIGNATURE_INVALID on every
   * replica (ledger/apply.ts checkProposer): the act is not Aborted.
   */
  abortInNameOf(leader: string, opId: string, victim: string, passport: string, reason: 'REMOTE_TIMEOUT' | 'PAYLOAD_REJECTED' = 'REMOTE_TIMEOUT'): Promise<AppendOutcome> {
    return this.appendForged(leader, [{ data: this.command({ type: 'ActAborted', opId, reason, nodeId: victim, passport }) }]);
  }

  /**
   * Prepared: a fencing of node `victim` (its passport) stated by X alone, signed with X's identity
   * key, appended as X at the leader's term + 1. Expected refused once fencing needs a majority of
   * node reports or an approver-signed decision.
   */
  forgedFencing(target: string, victim: string, passport: string, reason = 'split brain (forged)'): Promise<AppendOutcome> {
    const statement = signStatement({ clusterId: this.clusterId, nodeId: this.id, kind: 'FencingRecord', slot: { nodeId: victim, passport }, content: { reason } }, this.identity);
    return this.appendForged(target, [{ data: this.command({ type: 'FencingRecord', statement }) }]);
  }

  /**
   * Prepared: InstallSnapshot as X at the leader's term + 1 claiming a snapshot `ahead` entries
   * past the peer's commit index, whose data is `data` (a state X made up), in one chunk.
   * Expected refused once snapshots are installed only when certified.
   */
  async forgedSnapshot(target: string, data: Uint8Array, ahead = 100): Promise<{ meta: { index: number; term: number; conf: ConfState }; answer: Message | null }> {
    const s = await this.raftStatus(target);
    const t = s.term + 1;
    const voters = [...this.peers.keys(), this.id].sort();
    const meta = { index: s.commit + ahead, term: t, conf: { voters, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } };
    this.inbox.length = 0;
    this.transport.send([msg('snap', this.id, target, t, { snapshot: { meta, size: data.length, offset: 0, data, last: true } })]);
    const answer = await this.answer(target, (m) => m.type === 'appResp' || m.type === 'snapResp').catch(() => null);
    return { meta, answer };
  }

  /**
   * An observation exchange (node/splitbrain/exchange.ts) from X reporting `leader` as the leader
   * of `term`, carrying `statements` X signed: to every peer.
   */
  sendExchange(o: { term: number; leader: string | null; appliedIndex: number; stateRoot: string; statements?: ReturnType<typeof signVote>[] }): void {
    const bytes = encodeExchange({
      from: this.id, observation: { node: this.id, term: o.term, leader: o.leader, appliedIndex: o.appliedIndex, stateRoot: o.stateRoot },
      statements: o.statements ?? [], query: false,
    });
    for (const p of this.peers.keys()) this.transport.sendExchange(p, bytes);
  }

  /** Two votes X signs for one term, for two candidates: a double vote (equivocation.ts RaftVote). */
  doubleVote(term: number, a: string, b: string): ReturnType<typeof signVote>[] {
    return [signVote(this.clusterId, this.id, term, a, this.identity), signVote(this.clusterId, this.id, term, b, this.identity)];
  }

  // -------------------------------------------------------------------------------------------
  // Forged ledger events
  // -------------------------------------------------------------------------------------------

  /** The act a custodian would ask for with `tx` on `key` (every field derived as nodes derive it). */
  act(key: KeyContext, kind: TxKind, tx: Uint8Array, keyEpoch = 0, initiator = 'cara'): Act {
    const { fields } = deriveActFields(kind, tx, key, LEDGER_ASSETS);
    return { keyId: key.keyId, keyEpoch, initiator, kind, tx, ...fields };
  }

  /** ActSubmitted proposed as X for `act` with no custodian's signed request. */
  unsignedSubmission(opId: string, act: Act): LedgerEvent {
    return { type: 'ActSubmitted', opId, act, approval: null, request: null, nodeId: this.id, passport: this.passport };
  }

  /** ActSubmitted with a request in the custodian's name, signed by X's identity key (no custodian key). */
  misSignedSubmission(opId: string, act: Act, custodian = act.initiator): LedgerEvent {
    const request = signActRequest({
      clusterId: this.clusterId, custodian, requestId: opId, issuedMs: Date.now(), keyId: act.keyId, keyEpoch: act.keyEpoch,
      kind: act.kind, tx: act.tx, declared: { asset: '', amount: '', destination: '' },
    }, this.identity);
    return { type: 'ActSubmitted', opId, act, approval: null, request, nodeId: this.id, passport: this.passport };
  }

  /** A governance decision signed by approver keys X made up under the roster's names. */
  forgedDecision(action: DecisionAction, names: readonly string[], parentCid: Uint8Array, governanceEpoch = 0): LedgerEvent {
    const now = Date.now();
    const signers = names.map((n) => makeApproverKey(n, new Uint8Array(randomBytes(32))));
    const decision = signDecision({ clusterId: this.clusterId, governanceEpoch, parentCid, action, issuedMs: now, expiresMs: now + 3_600_000 }, signers);
    return { type: 'GovernanceDecision', decision };
  }

  // -------------------------------------------------------------------------------------------
  // Kernel protocol
  // -------------------------------------------------------------------------------------------

  async kernel(): Promise<KernelClient> {
    if (this.kernelClient === null) {
      if (this.lc.kernel === 'twin') throw new Error('this node runs no kernel process');
      this.kernelClient = await KernelClient.connect(this.lc.kernel.socket);
    }
    return this.kernelClient;
  }

  /** A request to X's kernel: 'accepted' with the body, or the kernel's reason code. */
  async ask<K extends ResponseBody['kind']>(body: RequestBody, expect: K): Promise<{ outcome: string; body: Extract<ResponseBody, { kind: K }> | null }> {
    const k = await this.kernel();
    try {
      return { outcome: 'accepted', body: await k.call(body, expect) };
    } catch (e) {
      return { outcome: isCustodyError(e) ? e.reason : `not a refusal: ${String(e)}`, body: null };
    }
  }

  /**
   * A sign request X makes up for its own kernel: one of the kernel's fresh nonces, a commitment
   * list with a second member X invents, a permit whose fields X chose (`permit` overrides), and a
   * certificate as given.
   */
  async madeUpSign(keyId: string, message: Uint8Array, o: { permit?: Partial<Permit>; certificate?: (b: Extract<RequestBody, { kind: 'sign' }>) => EntryCertificate | null } = {}): Promise<{ outcome: string; body: Extract<RequestBody, { kind: 'sign' }> }> {
    const n = await this.ask({ kind: 'nonces', keyId, keyEpoch: o.permit?.keyEpoch ?? 0, count: 1 }, 'nonceCommitments');
    if (n.body === null) throw new Error(`the kernel gave no nonce: ${n.outcome}`);
    const mine = n.body.commitments[0]!;
    const other = { identifier: Buffer.from(randomBytes(32)).toString('hex'), hiding: ed25519.Point.BASE.multiply(7n).toBytes(), binding: ed25519.Point.BASE.multiply(11n).toBytes() };
    const lists: SigningCommitment[][] = [[{ identifier: mine.identifier, hiding: mine.hiding, binding: mine.binding }, other]];
    const permit: Permit = { keyId, keyEpoch: 0, requestId: randomBytes(16).toString('hex'), messageDigest: messagesDigest([message]), ledgerIndex: 1_000_000, ...o.permit };
    const body: Extract<RequestBody, { kind: 'sign' }> = { kind: 'sign', permit, messages: [message], lists, counters: [mine.counter], ledgerConsumedCounter: 0, certificate: null };
    const withCert = { ...body, certificate: o.certificate ? o.certificate(body) : null };
    const r = await this.ask(withCert, 'signatureShares');
    return { outcome: r.outcome, body: withCert };
  }

  /**
   * A certificate for a sign request built the way a daemon builds one (an ActSubmitted and an
   * ActSigningSetFixed naming the request's act and lists, in a tree, under a checkpoint) but
   * cosigned only by `signers`: X's own identity, and made-up keys under other nodes' names.
   */
  certificate(b: Extract<RequestBody, { kind: 'sign' }>, act: Act, signers: readonly { name: string; seed: Uint8Array }[]): EntryCertificate {
    const proposer = { nodeId: this.id, passport: this.passport };
    const stamp = Date.now();
    const submitted: LedgerEntry = { index: b.permit.ledgerIndex - 1, stampMs: stamp, event: encodeEvent({ type: 'ActSubmitted', opId: b.permit.requestId, act, approval: null, request: null, ...proposer }) };
    const members: SigningSetMember[] = b.lists[0]!.map((c) => ({ nodeId: c.identifier === b.lists[0]![0]!.identifier ? this.id : 'n1', identifier: c.identifier, nonces: [{ counter: b.counters[0]!, hiding: c.hiding, binding: c.binding }] }));
    const fixed: LedgerEntry = { index: b.permit.ledgerIndex, stampMs: stamp, event: encodeEvent({ type: 'ActSigningSetFixed', opId: b.permit.requestId, permitId: new Uint8Array(randomBytes(32)), commitments: members, ...proposer }) };
    const leaves = [entryLeafHash(submitted), entryLeafHash(fixed)];
    const text = formatCheckpoint({ origin: checkpointOrigin(this.clusterId), size: leaves.length, root: rootOf(leaves), extensions: [] });
    const note = signNote(text, signers.map((s) => cosignatureSigner(nodeSignerName(this.clusterId, s.name), s.seed, Math.floor(stamp / 1000))));
    const read = memoryReader(leaves);
    return { note, inclusions: [submitted, fixed].map((entry, i) => ({ leafIndex: i, entry, proof: inclusionProof(i, leaves.length, read) })) };
  }

  /** X's own cosigner (its identity seed) for certificate(). */
  get selfSigner(): { name: string; seed: Uint8Array } {
    return { name: this.id, seed: this.identity };
  }

  /** A decision to feed X's kernel: `action` signed by made-up approver keys under the roster's names. */
  forgedKernelDecision(action: DecisionAction, parentCid: Uint8Array, ledgerIndex: number, names: readonly string[]): CommittedDecision {
    const ev = this.forgedDecision(action, names, parentCid) as Extract<LedgerEvent, { type: 'GovernanceDecision' }>;
    return { decision: encode(decisionToCbor(ev.decision)), ledgerIndex, stampMs: Date.now() };
  }

  // -------------------------------------------------------------------------------------------
  // Peer protocol: the blob exchange
  // -------------------------------------------------------------------------------------------

  /** LifecyclePeer.Put on `peer`'s admin port as X. */
  put(peer: string, key: string, value: Uint8Array): Promise<string> {
    let c = this.blobClients.get(peer);
    if (c === undefined) {
      c = new PeerClient(peer, this.lc.peers.get(peer) as string, this.tls);
      this.blobClients.set(peer, c);
    }
    return outcomeOf(c.call('Put', { key, value: Buffer.from(value) }, 15_000));
  }

  /**
   * Fills X's budget on `peer` with blobs of the largest size under keys of X's own, until the
   * peer refuses one; returns how many it took and the refusal.
   */
  async floodBlobs(peer: string, label = randomBytes(4).toString('hex')): Promise<{ taken: number; refusal: string }> {
    const full = new Uint8Array(lifecycleLimits.blobBytesMax).fill(0x5a);
    const cap = Math.ceil(lifecycleLimits.blobAuthorBytesMax / lifecycleLimits.blobBytesMax) + 2;
    for (let i = 0; i < cap; i++) {
      const r = await this.put(peer, blobKeys.round1(`flood-${label}-${i}`, 0, this.id), full);
      if (r !== 'accepted') return { taken: i, refusal: r };
    }
    return { taken: cap, refusal: 'accepted' };
  }

  async close(): Promise<void> {
    this.kernelClient?.close();
    for (const c of this.statusClients.values()) c.close();
    for (const c of this.blobClients.values()) c.close();
    await this.transport.close();
    await this.server.stop(500);
  }
}
