/**
 * LedgerPort over a Raft driver whose application is the LedgerApp: proposals are stamped with
 * this node's wall clock (the ledger's only source of time, DESIGN §3) and travel through Raft;
 * the verdict is the ledger's, as this node applied the entry.
 */
import { randomBytes } from 'node:crypto';
import { CustodyError } from '../../proto/errors.js';
import { node as nodeLimits } from '../../proto/limits.js';
import type { Driver } from '../../raft/driver.js';
import { encodeEvent, type LedgerEvent } from '../../ledger/events.js';
import { stampRefusal } from '../../ledger/apply.js';
import { isProposed, signProposed } from '../../ledger/proposer-sig.js';
import { decodeVerdict, encodeLedgerCommand, type LedgerApp, type LedgerVerdict } from '../ledger-app.js';
import type { LedgerPort } from './ports.js';
import { encodeBookCommand, type BookCommand } from '../approvals/book.js';

export class DriverLedgerPort implements LedgerPort {
  private readonly boot = randomBytes(8).toString('hex');
  private n = 0;

  /**
   * `identitySecretKey`: this node's identity key (the seed of the NodeRecord's identityKey), which
   * signs every journal event it proposes in its name; `now`: this node's wall clock, the stamp of
   * its proposals.
   */
  constructor(readonly nodeId: string, private readonly driver: Driver, private readonly app: LedgerApp, private readonly identitySecretKey: Uint8Array, private readonly timeoutMs: number = nodeLimits.clientTimeoutMsDefault, private readonly now: () => number = Date.now) {}

  state() {
    return this.app.state;
  }

  subscribe(l: Parameters<LedgerApp['subscribe']>[0]): () => void {
    return this.app.subscribe(l);
  }

  /**
   * Refused locally (STAMP_AHEAD), before anything reaches Raft, when this node's clock is
   * implausibly ahead of the ledger's time: the rule the ledger applies (ledger/apply.ts
   * stampRefusal) to the stamp this node would give, so a node with a fast clock neither moves the
   * ledger clock nor fills the log with entries every replica refuses.
   */
  propose(event: LedgerEvent): Promise<LedgerVerdict> {
    const stampMs = this.now();
    const ahead = stampRefusal(this.app.state, event, stampMs);
    if (ahead !== null) return Promise.reject(new CustodyError('STAMP_AHEAD', `node ${this.nodeId} proposes nothing while its clock is implausibly ahead of the ledger's: ${ahead}`));
    let signed: LedgerEvent;
    try {
      signed = this.signed(event);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.proposeCommand(encodeLedgerCommand(stampMs, encodeEvent(signed)));
  }

  /**
   * The single point where this node signs what it proposes in its own name (ledger/proposer-sig.ts):
   * every journal event that names a proposer is signed with this node's identity key for the
   * ledger's cluster. An event in another node's name is refused here (PROPOSER_SIGNATURE_INVALID)
   * rather than proposed: this node signs only as itself, and the ledger would refuse it anyway.
   */
  private signed(event: LedgerEvent): LedgerEvent {
    if (!isProposed(event)) return event;
    if (event.nodeId !== this.nodeId) throw new CustodyError('PROPOSER_SIGNATURE_INVALID', `node ${this.nodeId} does not propose a ${event.type} in the name of ${event.nodeId}`);
    const cluster = this.app.state.cluster;
    if (cluster === null) throw new CustodyError('PROPOSER_SIGNATURE_INVALID', `node ${this.nodeId} has no cluster to sign a ${event.type} for before genesis`);
    return signProposed(cluster.clusterId, event, this.identitySecretKey);
  }

  get approvals() {
    return { book: this.app.book, propose: (c: BookCommand) => this.proposeCommand(encodeBookCommand(Date.now(), c)) };
  }

  private async proposeCommand(command: Uint8Array): Promise<LedgerVerdict> {
    // One client session per proposal: proposals of one node run concurrently (participant and
    // coordinator), and a session orders its sequence numbers; the driver still retries each
    // proposal idempotently under its own (client id, 1).
    const clientId = `${this.nodeId}/${this.boot}/${++this.n}`;
    const o = await this.driver.propose(clientId, 1, command, this.timeoutMs);
    if (!o.ok) throw new CustodyError(o.reason, o.detail);
    return decodeVerdict(o.result);
  }

  decisionsAfter(index: number) {
    return this.app.decisionsAfter(index);
  }

  act(opId: string) {
    return this.app.act(opId);
  }

  endedActs(n: number) {
    return this.app.endedActs(n);
  }

  isLeader(): boolean {
    return this.driver.isLeader;
  }

  raftStatus() {
    const s = this.driver.status();
    return { term: s.term, leader: s.leader, commit: s.commit, applied: s.appliedIndex, root: s.root };
  }
}
