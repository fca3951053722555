/**
 * The daemons' part of the trust policy chain (ledger/trust-chain.ts has the block, the message
 * flow, the safety argument and the threat): a node of the chain's head that sees a block waiting
 * without its signature (it applied the roster change, or it restarted, or its earlier proposal
 * found no leader) signs the block's text with its identity key as its note key `<origin>/<id>`
 * (cosignature/v1, its own clock as the timestamp, as it cosigns checkpoints) and proposes
 * TrustPolicySigned in its own name. Driven only by this node's replica: the text it signs is the
 * one its own ledger computed from the voters it applied, never one it was handed.
 *
 * Each waiting block is proposed once per process unless the proposal failed without a verdict
 * (no leader, shutting down), which is tried again on the next pass; a refusal is logged and
 * final for that block (the ledger would refuse it again).
 */
import { bytesEqual, toHex } from '../../ledger/encoding.js';
import { nodeSignerName } from '../../ledger/tlog/ledger-log.js';
import { cosignatureSigner } from '../../ledger/tlog/note.js';
import { headKeyOf, pendingTrustBlock } from '../../ledger/trust-chain.js';
import { lifecycle as limits } from '../../proto/limits.js';
import type { LedgerPort } from './ports.js';
import { Rerunner } from './rerun.js';

export interface TrustPolicySignerOptions {
  readonly nodeId: string;
  readonly identitySecretKey: Uint8Array;
  readonly ledger: LedgerPort;
  readonly log: (line: string) => void;
  /** Wall clock in ms, for the cosignature timestamp. */
  readonly now?: () => number;
}

export class TrustPolicySigner {
  private readonly o: TrustPolicySignerOptions;
  /** hex digest of each waiting block this process proposed a signature of with a verdict. */
  private readonly done = new Set<string>();
  /** hex digest of each waiting block whose proposal failed without a verdict (logged once). */
  private readonly failed = new Set<string>();
  private unsub: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly rerun = new Rerunner(
    () => this.reconcile(),
    (e) => this.o.log(`${this.o.nodeId}: signing the trust policy block failed: ${e.message}`),
    () => this.stopped,
  );

  constructor(o: TrustPolicySignerOptions) {
    this.o = o;
  }

  start(): void {
    this.unsub = this.o.ledger.subscribe((_entry, result) => {
      if (result.type === 'GovernanceDecision' || result.type === 'TrustPolicySigned') this.rerun.kick();
    });
    this.timer = setInterval(() => this.rerun.kick(), limits.trustPolicySignRetryMs);
    this.timer.unref();
    this.rerun.kick();
  }

  stop(): void {
    this.stopped = true;
    this.unsub?.();
    if (this.timer !== null) clearInterval(this.timer);
  }

  private async reconcile(): Promise<void> {
    const c = this.o.ledger.state().cluster;
    if (c === null) return;
    const p = pendingTrustBlock(c);
    if (p === null) return;
    const me = c.nodes[this.o.nodeId];
    const key = headKeyOf(p.head, this.o.nodeId);
    if (me === undefined || key === undefined || !bytesEqual(key.publicKey, me.identityKey)) return;
    if (p.signatures.some((s) => s.nodeId === this.o.nodeId)) return;
    const id = toHex(p.digest);
    if (this.done.has(id)) return;
    const now = (this.o.now ?? Date.now)();
    const signature = cosignatureSigner(nodeSignerName(c.clusterId, this.o.nodeId), this.o.identitySecretKey, Math.floor(now / 1000)).sign(p.text);
    let v;
    try {
      v = await this.o.ledger.propose({ type: 'TrustPolicySigned', serial: p.serial, blockDigest: p.digest, signature, nodeId: this.o.nodeId, passport: me.passport });
    } catch (e) {
      // No verdict (no leader; a removed node that no longer reaches one): tried again on the
      // next pass, logged once per block.
      if (!this.failed.has(id)) this.o.log(`${this.o.nodeId}: proposing its signature of trust policy serial ${p.serial} failed, trying again: ${(e as Error).message}`);
      this.failed.add(id);
      return;
    }
    this.done.add(id);
    if (v.ok) this.o.log(`${this.o.nodeId}: signed trust policy serial ${p.serial} (ledger index ${v.index})`);
    else this.o.log(`${this.o.nodeId}: the ledger refused its signature of trust policy serial ${p.serial}: ${v.reason ?? ''} ${v.detail}`);
  }
}
