/**
 * Share repair, the daemons' part: under a RepairAuthorized decision the helpers' kernels rebuild
 * the share of the target node (a participant whose kernel lost its store, or a node enrolled
 * under a new identifier) with the Repairable Threshold Scheme (kernel/repair.ts has the
 * protocol, the safety argument and who is trusted for what). Every node runs this, driven only
 * by what its own replica applied; packages travel through the peer blob exchange (peer.ts), under
 * keys `repair/<key>/<epoch>/<target>/<decision cid>/...`, each written once by its author.
 *
 * Message flow, for each repair record of an active epoch that is not yet reported done:
 *   1. the target puts its kernel's current transport key, in a KernelTransportKey statement its
 *      identity key signs, at `.../target/<target>` (a fresh kernel's key may not be the one the
 *      target published before its store was lost; the helpers seal the sums to this one);
 *   2. each helper, once every helper's transport key is published: asks its kernel for its
 *      deltas (repairDeal: the kernel checks the decision, its own share and the helper list) and
 *      puts each, sealed to its recipient kernel, at `.../delta/<from>/<to>`, and the key package
 *      its kernel bound them to at `.../public/<from>`;
 *   3. each helper, once it has one delta from every other helper and the target's statement:
 *      asks its kernel for its sum (repairSum) and puts it, sealed to the target's kernel, at
 *      `.../sum/<from>`;
 *   4. the target, once it has every helper's sum and a helper's package: asks its kernel to
 *      finish (repairFinish: the kernel opens the sums only under that package's digest, checks
 *      share·G against the verifying share, seals the share under its profile, numbers nonces
 *      above the ledger's consumed counter), then proposes ShareRepaired in its own name with the
 *      verifying share its kernel matched.
 * Each step is taken once per process; a step whose kernel call failed for a passing reason (its
 * kernel was unreachable) is taken again on the next pass; a helper's kernel that restarts
 * between its steps keeps its own delta sealed in its store and sums on. A repair that cannot
 * complete (a helper's kernel lost its store, or its daemon restarted after dealing and lost the
 * sealed deltas with the peer exchange, or a helper cheated and
 * the kernel refused the result REPAIR_SHARE_MISMATCH) is run again under a new decision, with
 * another helper set if one is suspect; the ledger keeps only the last decision per target.
 *
 * Trust: the daemons see only HPKE ciphertexts and public packages. A daemon that withholds or
 * garbles a package stops the repair (liveness); it cannot make a kernel keep a wrong share, or
 * learn one: see kernel/repair.ts and kernel/THREATS.md.
 */
import { isCustodyError } from '../../proto/errors.js';
import { lifecycle as limits } from '../../proto/limits.js';
import type { RepairRecord } from '../../ledger/backup-policy.js';
import { decode, encode, toHex } from '../../ledger/encoding.js';
import { signStatement, statementFromCbor, statementToCbor, verifyStatement } from '../../ledger/events.js';
import { consumedKey, repairsOf, type ClusterState } from '../../ledger/state.js';
import type { Participant, SealedPackage } from '../../kernel/wire.js';
import { identifierOf, publicFromBytes, publicToBytes } from './participant.js';
import { kernelEpoch } from './kernel-port.js';
import type { Exchange, KernelPort, LedgerPort } from './ports.js';
import { Rerunner } from './rerun.js';

export interface ShareRepairOptions {
  readonly nodeId: string;
  readonly identitySecretKey: Uint8Array;
  readonly ledger: LedgerPort;
  /** This node's kernel, through the participant's queue (after every decision it forwarded). */
  readonly kernel: KernelPort;
  readonly exchange: Exchange;
  readonly log: (line: string) => void;
}

/** The exchange keys of one repair. */
export function repairKeys(r: Pick<RepairRecord, 'keyId' | 'keyEpoch' | 'nodeId' | 'decisionCid'>) {
  const base = `repair/${r.keyId}/${r.keyEpoch}/${r.nodeId}/${toHex(r.decisionCid)}`;
  return {
    target: `${base}/target/${r.nodeId}`,
    delta: (from: string, to: string) => `${base}/delta/${from}/${to}`,
    sum: (from: string) => `${base}/sum/${from}`,
    public: (from: string) => `${base}/public/${from}`,
  };
}

function sealedToBytes(p: SealedPackage): Uint8Array {
  return encode({ sender: p.sender, recipient: p.recipient, enc: new Uint8Array(p.enc), ciphertext: new Uint8Array(p.ciphertext) });
}

function sealedFromBytes(b: Uint8Array): SealedPackage {
  const o = decode(b) as { sender?: unknown; recipient?: unknown; enc?: unknown; ciphertext?: unknown };
  if (typeof o.sender !== 'string' || typeof o.recipient !== 'string' || !(o.enc instanceof Uint8Array) || !(o.ciphertext instanceof Uint8Array)) {
    throw new Error('a repair package from the exchange is not a sealed package');
  }
  return { sender: o.sender, recipient: o.recipient, enc: o.enc, ciphertext: o.ciphertext };
}

/** The repairs this replica shows under way: recorded, not reported, of the active epoch of a live key. */
export function repairsUnderWay(c: ClusterState): RepairRecord[] {
  return Object.values(repairsOf(c)).filter((r) => {
    const k = c.keys[r.keyId];
    return r.repaired === null && k !== undefined && k.status === 'active' && k.activeEpoch === r.keyEpoch;
  });
}

interface Progress { announced: boolean; dealt: boolean; summed: boolean; finished: boolean }

export class ShareRepairs {
  private readonly o: ShareRepairOptions;
  private readonly progress = new Map<string, Progress>();
  private readonly unsubs: (() => void)[] = [];
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly rerun = new Rerunner(
    () => this.reconcile(),
    (e) => this.o.log(`${this.o.nodeId}: share repair step failed: ${e.message}`),
    () => this.stopped,
  );

  constructor(o: ShareRepairOptions) {
    this.o = o;
  }

  start(): void {
    this.unsubs.push(this.o.ledger.subscribe((_entry, result) => {
      if (result.type === 'GovernanceDecision' || result.type === 'ShareRepaired') this.rerun.kick();
    }));
    this.unsubs.push(this.o.exchange.watch((key) => {
      if (key.startsWith('repair/') || key.startsWith('transport/')) this.rerun.kick();
    }));
    this.timer = setInterval(() => this.rerun.kick(), limits.shareRepairRetryMs);
    this.timer.unref();
    this.rerun.kick();
  }

  stop(): void {
    this.stopped = true;
    for (const u of this.unsubs.splice(0)) u();
    if (this.timer !== null) clearInterval(this.timer);
  }

  private async reconcile(): Promise<void> {
    const c = this.o.ledger.state().cluster;
    if (c === null) return;
    const me = c.nodes[this.o.nodeId];
    if (me === undefined || me.status !== 'active' || me.equivocated) return;
    const under = repairsUnderWay(c);
    // Steps of repairs no longer under way (done, replaced, their epoch superseded) are forgotten.
    const live = new Set(under.map((r) => toHex(r.decisionCid)));
    for (const id of [...this.progress.keys()]) if (!live.has(id)) this.progress.delete(id);
    for (const r of under) {
      const id = toHex(r.decisionCid);
      const p = this.progress.get(id) ?? { announced: false, dealt: false, summed: false, finished: false };
      this.progress.set(id, p);
      if (r.nodeId === this.o.nodeId) await this.targetSteps(c, r, p);
      else if (r.helpers.includes(this.o.nodeId)) await this.helperSteps(c, r, p);
    }
  }

  /** A node's kernel transport key from a KernelTransportKey statement in the exchange, if its identity key signed it. */
  private async statementKey(c: ClusterState, key: string, nodeId: string): Promise<Uint8Array | null> {
    const b = await this.o.exchange.get(key);
    const n = c.nodes[nodeId];
    if (b === undefined || n === undefined) return null;
    try {
      const s = statementFromCbor(decode(b));
      if (s.nodeId !== nodeId || s.kind !== 'KernelTransportKey' || s.clusterId !== c.clusterId || !verifyStatement(s, n.identityKey)) return null;
      const k = (s.content as { transportPublicKey?: unknown }).transportPublicKey;
      return k instanceof Uint8Array && k.length === 32 ? k : null;
    } catch {
      return null;
    }
  }

  private async helperSteps(c: ClusterState, r: RepairRecord, p: Progress): Promise<void> {
    const k = c.keys[r.keyId]!;
    const ep = k.epochs[String(r.keyEpoch)]!;
    const keys = repairKeys(r);
    const me = this.o.nodeId;
    const epoch = kernelEpoch(r.keyEpoch);
    const ceremonyId = toHex(r.decisionCid);
    const idOf = (n: string): string => identifierOf(k.scheme, ep.participants, n);
    if (!p.dealt) {
      const helpers: Participant[] = [];
      for (const h of r.helpers) {
        const tk = await this.statementKey(c, `transport/${h}`, h);
        if (tk === null) return; // wait for every helper's transport key
        helpers.push({ nodeId: h, identifier: idOf(h), transportPublicKey: tk });
      }
      p.dealt = true;
      let dealt: Extract<Awaited<ReturnType<KernelPort['call']>>, { kind: 'repairDealt' }>;
      try {
        dealt = await this.o.kernel.call({ kind: 'repairDeal', ceremonyId, keyId: r.keyId, epoch, helpers }, 'repairDealt');
      } catch (e) {
        // Dealt already (this daemon restarted after the kernel answered): the deltas are lost with
        // that answer, and the repair needs a new decision. Anything else is tried again.
        if (!isCustodyError(e) || e.reason !== 'REPLAY_OR_CONFLICT') p.dealt = false;
        throw e;
      }
      await this.o.exchange.put(keys.public(me), publicToBytes(dealt.public));
      for (const d of dealt.packages) {
        const to = r.helpers.find((h) => idOf(h) === d.recipient);
        if (to !== undefined) await this.o.exchange.put(keys.delta(me, to), sealedToBytes(d));
      }
      this.o.log(`${me}: dealt its repair deltas for ${r.nodeId} in ${r.keyId} epoch ${r.keyEpoch}`);
    }
    if (!p.summed) {
      const deltas: SealedPackage[] = [];
      for (const h of r.helpers) {
        if (h === me) continue;
        const b = await this.o.exchange.get(keys.delta(h, me));
        if (b === undefined) return;
        deltas.push(sealedFromBytes(b));
      }
      const tk = await this.statementKey(c, keys.target, r.nodeId);
      if (tk === null) return; // the target has not announced its kernel yet
      p.summed = true;
      const s = await this.o.kernel.call({ kind: 'repairSum', ceremonyId, keyId: r.keyId, epoch, deltas, target: { nodeId: r.nodeId, identifier: r.identifier, transportPublicKey: tk } }, 'repairSummed');
      await this.o.exchange.put(keys.sum(me), sealedToBytes(s.package));
      this.o.log(`${me}: sent its repair sum to ${r.nodeId} for ${r.keyId} epoch ${r.keyEpoch}`);
    }
  }

  private async targetSteps(c: ClusterState, r: RepairRecord, p: Progress): Promise<void> {
    const keys = repairKeys(r);
    const me = this.o.nodeId;
    const epoch = kernelEpoch(r.keyEpoch);
    if (!p.announced) {
      const st = await this.o.kernel.call({ kind: 'status' }, 'status');
      const s = signStatement({ clusterId: c.clusterId, nodeId: me, kind: 'KernelTransportKey', slot: { nodeId: me }, content: { transportPublicKey: st.transportPublicKey } }, this.o.identitySecretKey);
      await this.o.exchange.put(keys.target, encode(statementToCbor(s)));
      p.announced = true;
    }
    if (p.finished) return;
    const sums: SealedPackage[] = [];
    let pubBytes: Uint8Array | undefined;
    for (const h of r.helpers) {
      const b = await this.o.exchange.get(keys.sum(h));
      if (b === undefined) return;
      sums.push(sealedFromBytes(b));
      pubBytes ??= await this.o.exchange.get(keys.public(h));
    }
    if (pubBytes === undefined) return;
    p.finished = true;
    const consumed = c.consumed[consumedKey(r.keyId, r.keyEpoch, me)] ?? 0;
    let verifyingShare: Uint8Array;
    try {
      const kp = await this.o.kernel.call({ kind: 'repairFinish', ceremonyId: toHex(r.decisionCid), keyId: r.keyId, epoch, public: publicFromBytes(pubBytes), sums, ledgerConsumedCounter: consumed }, 'keyPackage');
      verifyingShare = kp.public.verifyingShares.find((v) => v.identifier === r.identifier)!.point;
      this.o.log(`${me}: its kernel holds its share of ${r.keyId} epoch ${r.keyEpoch} again, rebuilt by ${r.helpers.join(', ')}`);
    } catch (e) {
      if (isCustodyError(e) && e.reason === 'SHARE_ALREADY_HELD') {
        // Finished before this daemon restarted: the report is what is missing.
        const kp = await this.o.kernel.call({ kind: 'publicPackage', keyId: r.keyId, epoch }, 'keyPackage');
        verifyingShare = kp.public.verifyingShares.find((v) => v.identifier === r.identifier)!.point;
      } else {
        // A refusal of the repair itself (REPAIR_*) is final for this decision; anything else is tried again.
        if (!isCustodyError(e) || !e.reason.startsWith('REPAIR_')) p.finished = false;
        throw e;
      }
    }
    await this.report(c, r, verifyingShare);
  }

  /** ShareRepaired in this node's name, tried again (bounded) when the proposal fails without a verdict. */
  private async report(c: ClusterState, r: RepairRecord, verifyingShare: Uint8Array): Promise<void> {
    const me = c.nodes[this.o.nodeId]!;
    for (let attempt = 1; attempt <= limits.shareRecoveredProposeAttempts; attempt++) {
      try {
        const v = await this.o.ledger.propose({
          type: 'ShareRepaired', keyId: r.keyId, keyEpoch: r.keyEpoch, identifier: r.identifier, decisionCid: r.decisionCid, verifyingShare, nodeId: this.o.nodeId, passport: me.passport,
        });
        if (v.ok) this.o.log(`${this.o.nodeId}: ShareRepaired of ${r.keyId} epoch ${r.keyEpoch} recorded at ledger index ${v.index}`);
        else this.o.log(`${this.o.nodeId}: the ledger refused ShareRepaired of ${r.keyId} epoch ${r.keyEpoch}: ${v.reason ?? ''} ${v.detail}`);
        return;
      } catch (e) {
        this.o.log(`${this.o.nodeId}: proposing ShareRepaired of ${r.keyId} epoch ${r.keyEpoch} failed (try ${attempt} of ${limits.shareRecoveredProposeAttempts}): ${(e as Error).message}`);
      }
      if (attempt < limits.shareRecoveredProposeAttempts) await new Promise((res) => setTimeout(res, limits.shareRecoveredRetryMs));
    }
  }
}
