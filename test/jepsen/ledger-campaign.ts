/**
 * The ledger workload under the nemesis: three `custody node` daemons with their `custody kernel`
 * processes (node/lifecycle/daemon-cluster.ts, on loopback), a 2-of-3 ed25519 key made by DKG and
 * activated by approvers, then client processes submitting governed signing acts (Solana transfers
 * within the policy's automatic rule, each request signed by custodian cara) while the nemesis
 * kills, pauses and restarts processes. Partitions and clock skew need the netns hosts and are
 * played by the register workload (campaign.ts); the loopback cluster takes the process faults:
 *   kill          SIGKILL of the node's daemon and its kernel; heal: both started again;
 *   pause         SIGSTOP of the daemon; heal: SIGCONT;
 *   restart-all   SIGKILL of every daemon and kernel, then all started;
 *   kill-kernel   SIGKILL of the kernel alone; its daemon keeps running and reconnects once the
 *                 kernel is started again.
 *
 * Each client holds at most limits.workloadOpenActsPerClient acts open (submitted and not ended,
 * or submitted without an answer and not yet found or given up on): at the bound it reads their
 * states until one ends, settling the published ones as an operator would, before it submits the
 * next. So the acts in flight stay within what the cluster can sign under the faults, and the
 * settle window measures the cluster, not a backlog the workload piled up. Meanwhile a governor
 * refreshes key k (KeyRefreshed, the redeal ceremony, KeyActivated, each approved by two
 * approvers), so decisions and acts apply concurrently; acts of the old epoch in flight at an
 * activation end STALE_EPOCH.
 *
 * After the schedule every fault is healed and the run waits, at most limits.campaignSettleMs,
 * until no act is open (settling those published), showing the open acts by state every
 * limits.campaignProgressMs. Then every node must reach one applied index and state root and the
 * chronicles are compared whole; if acts are still open when the window closes, that is a
 * liveness violation naming them, and the chronicles are compared as of the lowest index every
 * node had applied (the nodes are still signing). Checks (DESIGN §3):
 *   admitted-lost       an act whose submission was acknowledged is in every node's chronicle;
 *   ends-once           every act ends, once: its history holds exactly one of Settled, Denied,
 *                       Aborted, as its last state;
 *   liveness            no act is still open when the settle window closes;
 *   one-signature       an act is Executed at most once, its permit is no other act's, and none
 *                       of its signatures appears in another act;
 *   nonce-reused        no (node, key, nonce counter) appears in two signing sets, in any act;
 *   stale-epoch         a key's acts execute in the order of their key epochs, and none under an
 *                       epoch older than one activated before its execution;
 *   chronicle-diverged  every node's chronicle (each act's states, signatures, permit, signing set)
 *                       is the same, and so is its state root at one applied index;
 *   evidence            every act that was Published has an evidence bundle that verifies
 *                       (`verifyEvidence`, as `custody evidence verify` does).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { decisionBodyFromCbor, decisionSigningBytes, ed25519Sign } from '../../ledger/decision.js';
import { decode } from '../../ledger/encoding.js';
import type { ActView, AdminClient, DecisionReply, KeyView, StatusReply } from '../../node/admin/client.js';
import { isCustodyError } from '../../proto/errors.js';
import { issueOperatorCert } from '../../node/admin/roles.js';
import { verifyEvidence } from '../../node/commands/evidence.js';
import { DaemonCluster } from '../../node/lifecycle/daemon-cluster.js';
import { until } from '../../node/probe.js';
import { SeededRng } from '../../raft/core/rng.js';
import { jepsen as limits } from '../../proto/limits.js';
import { CLI, OPERATORS, POLICY, actTx, rid, submitAs } from '../lifecycle/harness.js';
import { MIXES, describeFault, planSchedule, runNemesis, type Fault, type FaultKind, type NemesisEvent, type Victim } from './nemesis.js';

const TERMINAL = ['Settled', 'Denied', 'Aborted'];

export interface LedgerCampaignOptions {
  readonly seconds: number;
  readonly seed: number;
  readonly mix: readonly FaultKind[];
  readonly clients?: number;
  readonly faultsMax?: number;
  readonly schedule?: readonly Fault[];
  readonly log?: (line: string) => void;
  /** How long the acts have to end after the last heal (default limits.campaignSettleMs). */
  readonly settleMs?: number;
  /** Whether key-refresh decisions are proposed while the clients submit acts (default true). */
  readonly decisions?: boolean;
}

export interface LedgerViolation {
  readonly check: 'admitted-lost' | 'ends-once' | 'one-signature' | 'nonce-reused' | 'chronicle-diverged' | 'evidence' | 'stale-epoch' | 'liveness';
  readonly detail: string;
}

export interface LedgerSummary {
  readonly workload: 'ledger';
  readonly seed: number;
  readonly seconds: number;
  readonly mix: string;
  readonly submitted: number;
  readonly acknowledged: number;
  readonly acts: number;
  /** Acts still open when the settle window closed (each named in a liveness violation). */
  readonly open: number;
  readonly outcomes: Readonly<Record<string, number>>;
  readonly signatures: number;
  readonly evidenceVerified: number;
  /** Governance decisions (key refreshes and activations) the workload saw applied. */
  readonly decisions: number;
  /** The active epoch of key k at the end. */
  readonly keyEpoch: number;
  readonly faults: number;
  readonly violations: number;
  readonly verdict: 'ok' | 'violation';
  readonly found: readonly LedgerViolation[];
}

/** The fault kinds the loopback ledger cluster can take. */
export const LEDGER_KINDS: readonly FaultKind[] = MIXES.ledger as readonly FaultKind[];

/** The part of an act every replica must agree on. */
const replicaView = (a: ActView): string => JSON.stringify({
  opId: a.opId, state: a.state, reason: a.reason, history: a.history, signatures: a.signatures, permitId: a.permitId,
  signingSet: a.signingSet.map((m) => ({ nodeId: m.nodeId, counter: m.counter, nonces: m.nonces.map((n) => n.counter) })), confirmation: a.confirmation,
});

const ended = (a: ActView): boolean => TERMINAL.includes(a.history[a.history.length - 1]?.state ?? '');

/**
 * An act as of ledger index `upTo`: whole if it ended by then (an ended act changes no more);
 * else only its history up to `upTo`, since its signing set, signatures and state may have moved
 * after it on a node that applied further. Null if it was not yet submitted at `upTo`.
 */
function viewUpTo(a: ActView, upTo: number): string | null {
  const last = a.history[a.history.length - 1];
  if (last !== undefined && ended(a) && last.index <= upTo) return replicaView(a);
  const before = a.history.filter((h) => h.index <= upTo);
  return before.length === 0 ? null : JSON.stringify({ opId: a.opId, history: before });
}

export interface CompareOptions {
  /**
   * Compare the chronicles only as of this ledger index, one every node had applied before its
   * chronicle was read (the acts were still moving). Acts still open are then not reported by
   * ends-once: the caller reports them as a liveness violation.
   */
  readonly upTo?: number;
  /** Key epochs activated during the run with the ledger index of their decision. */
  readonly activations?: readonly { readonly keyId: string; readonly keyEpoch: number; readonly index: number }[];
}

/**
 * The replica and custody checks over every node's chronicle (the first is the reference) and the
 * acts whose submission was acknowledged: admitted-lost, ends-once, one-signature, nonce-reused,
 * chronicle-diverged, stale-epoch (see the module header). Pure; evidence is checked by the caller.
 */
export function ledgerViolations(ids: readonly string[], chronicles: readonly (readonly ActView[])[], acknowledged: ReadonlySet<string>, opts: CompareOptions = {}): LedgerViolation[] {
  const found: LedgerViolation[] = [];
  const acts = chronicles[0] ?? [];
  const { upTo } = opts;
  const views = (list: readonly ActView[]): Map<string, string> => new Map(list.flatMap((a) => {
    const v = upTo === undefined ? replicaView(a) : viewUpTo(a, upTo);
    return v === null ? [] : [[a.opId, v] as const];
  }));
  const reference = views(acts);
  chronicles.forEach((list, i) => {
    const mine = views(list);
    if (mine.size !== reference.size) found.push({ check: 'chronicle-diverged', detail: `${ids[i]} holds ${mine.size} acts, ${ids[0]} ${reference.size}${upTo !== undefined ? ` (as of index ${upTo})` : ''}` });
    for (const [op, v] of mine) if (reference.get(op) !== v) found.push({ check: 'chronicle-diverged', detail: `${ids[i]}: act ${op} differs from ${ids[0]}'s${upTo !== undefined ? ` (as of index ${upTo})` : ''}` });
  });
  const byOp = new Map(acts.map((a) => [a.opId, a]));
  for (const op of acknowledged) if (!byOp.has(op)) found.push({ check: 'admitted-lost', detail: `act ${op} was acknowledged but is in no chronicle` });
  const permits = new Map<string, string>();
  const nonces = new Map<string, string>();
  const signatures = new Map<string, string>();
  for (const a of acts) {
    const ends = a.history.filter((h) => TERMINAL.includes(h.state));
    const stillOpen = upTo !== undefined && ends.length === 0;
    if (!stillOpen && (ends.length !== 1 || !ended(a))) {
      found.push({ check: 'ends-once', detail: `act ${a.opId}: history ${a.history.map((h) => h.state).join(' > ')}` });
    }
    const executed = a.history.filter((h) => h.state === 'Executed').length;
    if (executed > 1) found.push({ check: 'one-signature', detail: `act ${a.opId} executed ${executed} times` });
    if (a.permitId !== '') {
      const other = permits.get(a.permitId);
      if (other !== undefined) found.push({ check: 'one-signature', detail: `permit ${a.permitId} used by ${other} and ${a.opId}` });
      permits.set(a.permitId, a.opId);
    }
    for (const sig of a.signatures) {
      const other = signatures.get(sig);
      if (other !== undefined) found.push({ check: 'one-signature', detail: `signature ${sig.slice(0, 16)}... in ${other} and ${a.opId}` });
      signatures.set(sig, a.opId);
    }
    for (const m of a.signingSet) {
      const counters = m.nonces.length > 0 ? m.nonces.map((x) => x.counter) : [m.counter];
      for (const c of counters) {
        const k = `${m.nodeId}/${a.keyId}/${c}`;
        const other = nonces.get(k);
        if (other !== undefined) found.push({ check: 'nonce-reused', detail: `node ${m.nodeId} key ${a.keyId} nonce counter ${c} in ${other} and ${a.opId}` });
        nonces.set(k, a.opId);
      }
    }
  }
  found.push(...staleEpochs(acts, opts.activations ?? []));
  return found;
}

/**
 * stale-epoch: a key's acts are executed in the order of their key epochs (once an act of epoch
 * e' executed, no act of an older epoch e < e' executes after it: the activation of e' lies
 * between them and makes e stale), and no act executes under an epoch older than one activated
 * at a lower index.
 */
export function staleEpochs(acts: readonly ActView[], activations: readonly { readonly keyId: string; readonly keyEpoch: number; readonly index: number }[]): LedgerViolation[] {
  const found: LedgerViolation[] = [];
  const executions = acts.flatMap((a) => {
    const at = a.history.find((h) => h.state === 'Executed')?.index;
    return at === undefined ? [] : [{ a, at }];
  }).sort((x, y) => x.at - y.at);
  const newest = new Map<string, { epoch: number; opId: string }>();
  for (const { a, at } of executions) {
    const seen = newest.get(a.keyId);
    if (seen !== undefined && a.keyEpoch < seen.epoch) found.push({ check: 'stale-epoch', detail: `act ${a.opId} executed at index ${at} under epoch ${a.keyEpoch} of ${a.keyId}, after act ${seen.opId} under epoch ${seen.epoch}` });
    if (seen === undefined || a.keyEpoch > seen.epoch) newest.set(a.keyId, { epoch: a.keyEpoch, opId: a.opId });
    const later = activations.find((v) => v.keyId === a.keyId && v.keyEpoch > a.keyEpoch && v.index < at);
    if (later !== undefined) found.push({ check: 'stale-epoch', detail: `act ${a.opId} executed at index ${at} under epoch ${a.keyEpoch} of ${a.keyId}, which epoch ${later.keyEpoch} replaced at index ${later.index}` });
  }
  return found;
}

/** Runs the ledger workload under a process-fault schedule (see the module header). */
export async function runLedgerCampaign(o: LedgerCampaignOptions): Promise<LedgerSummary> {
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const bad = o.mix.filter((k) => !LEDGER_KINDS.includes(k));
  if (bad.length > 0) throw new RangeError(`the ledger workload runs on loopback and takes only ${LEDGER_KINDS.join(', ')}, not ${bad.join(', ')}`);
  const clients = o.clients ?? 3;
  const ids = ['n1', 'n2', 'n3'];
  const schedule = o.schedule ?? planSchedule(o.seed, { seconds: o.seconds, nodes: ids, mix: o.mix, ...(o.faultsMax !== undefined ? { faultsMax: o.faultsMax } : {}) });
  log(`ledger campaign: seed ${o.seed}, ${o.seconds} s, mix ${o.mix.join(',')}, ${clients} clients; schedule (${schedule.length} faults):`);
  for (const f of schedule) log(`  ${describeFault(f)}`);

  const dir = mkdtempSync(join(tmpdir(), 'custody-jepsen-ledger-'));
  const cluster = await DaemonCluster.create(dir, POLICY, 3, 3_000);
  for (const [id, role] of Object.entries(OPERATORS)) issueOperatorCert(cluster.certs, id, role);
  const open: AdminClient[] = [];
  const client = (as: string, id: string): AdminClient => {
    const c = cluster.client(id, as);
    open.push(c);
    return c;
  };
  const cara = cluster.custodians[0] as { id: string; secretKey: Uint8Array };
  try {
    await cluster.start('audra', CLI, 120_000);
    const admins = new Map(ids.map((id) => [id, client('audra', id)]));
    const caras = new Map(ids.map((id) => [id, client('cara', id)]));
    const approve = async (cid: string, who: string[]): Promise<void> => {
      for (const a of who) {
        const c = client(a, 'n1');
        const d = await c.getDecision(cid);
        await c.approveDecision(cid, a, ed25519Sign(decisionSigningBytes(decisionBodyFromCbor(decode(new Uint8Array(d.bodyCbor)))), cluster.approvers.find((k) => k.id === a)!.secretKey));
      }
    };
    const dk = await client('kim', 'n1').proposeDecision(JSON.stringify({ kind: 'DkgAuthorized', keyId: 'k', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ids }));
    await approve(dk.cid, ['approver-1', 'approver-2']);
    await until('key k published', async () => (await (admins.get('n1') as AdminClient).status()).keys.find((k) => k.id === 'k')?.epochs.includes('0:published'), 180_000);
    const ka = await client('kim', 'n1').proposeDecision(JSON.stringify({ kind: 'KeyActivated', keyId: 'k', keyEpoch: 0 }));
    await approve(ka.cid, ['approver-2', 'approver-3']);
    await until('key k active', async () => (await (admins.get('n1') as AdminClient).status()).keys.find((k) => k.id === 'k')?.status === 'active', 120_000);
    log('ledger campaign: key k made and active');

    const running = (id: string): boolean => {
      const d = cluster.node(id).daemon;
      return d !== null && d.exitCode === null && d.signalCode === null;
    };
    const victim: Victim = {
      nodes: ids,
      leader: async () => {
        for (const id of ids) {
          const s = await (admins.get(id) as AdminClient).status().catch(() => null);
          if (s && s.leader !== '') return s.leader;
        }
        return ids[0] as string;
      },
      follower: async () => {
        const l = await victim.leader();
        return ids.find((n) => n !== l) as string;
      },
      kill: (id) => cluster.kill(id),
      start: (id) => victim.startKernel(id),
      pause: async (id) => {
        cluster.node(id).daemon?.kill('SIGSTOP');
      },
      resume: async (id) => {
        cluster.node(id).daemon?.kill('SIGCONT');
      },
      cut: () => Promise.reject(new RangeError('no partitions on the loopback ledger cluster')),
      heal: () => Promise.reject(new RangeError('no partitions on the loopback ledger cluster')),
      block: () => Promise.reject(new RangeError('no partitions on the loopback ledger cluster')),
      skew: () => Promise.reject(new RangeError('no clock skew on the loopback ledger cluster')),
      killKernel: async (id) => {
        const k = cluster.node(id).kernel;
        if (k === null || k.proc.exitCode !== null || k.proc.signalCode !== null) return;
        k.proc.kill('SIGKILL');
        await k.exited;
      },
      startKernel: async (id) => {
        const k = cluster.node(id).kernel;
        if (k === null || k.proc.exitCode !== null || k.proc.signalCode !== null) await cluster.startKernel(id);
        // A daemon (re)started while its kernel was down exits (it refuses to start without its
        // kernel): started again, as its supervisor would.
        if (!running(id)) {
          const code = cluster.node(id).daemon?.exitCode ?? null;
          if (code !== null) log(`ledger campaign: the daemon of ${id} had exited with code ${code}; started again`);
          cluster.startDaemon(id, CLI);
        }
      },
    };

    const t0 = performance.now();
    const now = (): number => performance.now() - t0;
    const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
    const rng = new SeededRng(o.seed ^ 0x1ed9e5);
    const attempted: string[] = [];
    const acknowledged = new Set<string>();
    let givenUp = 0;
    const submitting = (): boolean => now() < o.seconds * 1000 && nemesisFailed === null;

    // A client's open act: submitted and not ended, or submitted without an answer (it may have
    // applied) and not yet given up on. At limits.workloadOpenActsPerClient the client reads its
    // open acts until one ends, settling those published as an operator would once the
    // transaction is broadcast; only then does it submit another.
    interface OpenAct { readonly op: string; readonly since: number; readonly answered: boolean }
    const poll = async (mine: readonly OpenAct[], crng: SeededRng): Promise<OpenAct[]> => {
      const keep: OpenAct[] = [];
      for (const a of mine) {
        const c = caras.get(ids[crng.int(ids.length)] as string) as AdminClient;
        try {
          const v = await c.call<ActView>('ShowAct', { opId: a.op }, limits.workloadCallTimeoutMs);
          if (TERMINAL.includes(v.state)) continue;
          if (v.state === 'Published') await c.call('SettleAct', { opId: a.op, confirmation: `tx-${a.op}` }, limits.workloadCallTimeoutMs).catch(() => undefined);
          keep.push({ ...a, answered: true });
        } catch (e) {
          // No such act (yet): a submission that got no answer and never applied is given up on
          // after workloadUnansweredActMs. Any other failure (that node is down) keeps it open.
          if (!a.answered && isCustodyError(e) && e.reason === 'UNKNOWN_SESSION' && now() - a.since > limits.workloadUnansweredActMs) {
            givenUp++;
            continue;
          }
          keep.push(a);
        }
      }
      return keep;
    };
    const loop = async (slot: number): Promise<void> => {
      const crng = rng.fork();
      let n = 0;
      let mine: OpenAct[] = [];
      while (submitting()) {
        if (mine.length >= limits.workloadOpenActsPerClient) {
          mine = await poll(mine, crng);
          if (mine.length >= limits.workloadOpenActsPerClient) await sleep(limits.workloadActPollMs);
          continue;
        }
        const via = ids[crng.int(ids.length)] as string;
        const label = `j${o.seed}-${slot}-${++n}`;
        attempted.push(label);
        try {
          const c = caras.get(via) as AdminClient;
          const v = await submitAs(c, cara, { opId: label, keyId: 'k', ...(await actTx(c, 'k', String(100 + crng.int(900)), crng.chance(0.5) ? 'sol-treasury' : 'sol-exchange')) });
          if (v.opId !== '') acknowledged.add(rid(label));
          mine.push({ op: rid(label), since: now(), answered: v.opId !== '' });
        } catch {
          // Unknown outcome: the act may or may not have been admitted; it stays open until found
          // or given up on, and the final checks read the ledger.
          mine.push({ op: rid(label), since: now(), answered: false });
          await sleep(500 + crng.int(1000));
        }
        await sleep(crng.int(300));
      }
    };

    // Governance decisions while the clients submit: key refreshes of k (KeyRefreshed, the
    // ceremony, KeyActivated), each step re-derived from the key's state so that a decision whose
    // answer was lost is not proposed twice. Acts of the old epoch in flight at an activation end
    // STALE_EPOCH; the stale-epoch check holds the executions to the epochs' order.
    const activations: { keyId: string; keyEpoch: number; index: number | null }[] = [];
    let decisionsApplied = 0;
    const named = new Map<string, AdminClient>();
    const as = (who: string, id: string): AdminClient => {
      const k = `${who}@${id}`;
      if (!named.has(k)) named.set(k, client(who, id));
      return named.get(k) as AdminClient;
    };
    const keyK = async (): Promise<KeyView | null> => {
      for (const id of ids) {
        const k = await (admins.get(id) as AdminClient).call<StatusReply>('Status', {}, limits.workloadCallTimeoutMs).then((s) => s.keys.find((x) => x.id === 'k'), () => undefined);
        if (k !== undefined) return k;
      }
      return null;
    };
    const decide = async (action: { kind: string; keyId: string; keyEpoch: number }, who: readonly string[], grng: SeededRng): Promise<number | null> => {
      const via = ids[grng.int(ids.length)] as string;
      const d = await as('kim', via).proposeDecision(JSON.stringify(action));
      let last: DecisionReply = d;
      for (const a of who) {
        const sig = ed25519Sign(decisionSigningBytes(decisionBodyFromCbor(decode(new Uint8Array(d.bodyCbor)))), cluster.approvers.find((k) => k.id === a)!.secretKey);
        last = await as(a, via).approveDecision(d.cid, a, sig);
      }
      if (last.state !== 'applied') throw new Error(`${action.kind} ${action.keyEpoch} is ${last.state}${last.verdict ? `: ${last.verdict.reason} ${last.verdict.detail}` : ''}`);
      decisionsApplied++;
      log(`ledger campaign: ${action.kind} ${action.keyId} epoch ${action.keyEpoch} applied${last.verdict ? ` at index ${last.verdict.index}` : ''}`);
      return last.verdict?.index ?? null;
    };
    // One step of the refresh cycle, from the key's state: the newest epoch published is
    // activated; one in ceremony is waited for, at most workloadCeremonyWaitMs; past that, or
    // when none is pending, a new KeyRefreshed is decided (it supersedes a ceremony held up by a
    // member that stays down, as an operator's would).
    const stalled = new Set<number>();
    const refresh = async (grng: SeededRng): Promise<void> => {
      const k = await keyK();
      if (k === null) return;
      const epochs = k.epochs.map((x) => ({ n: Number(x.split(':')[0]), status: x.split(':')[1] ?? '' })).sort((a, b) => a.n - b.n);
      let newest = epochs[epochs.length - 1];
      if (newest === undefined) return;
      if (newest.n <= k.activeEpoch || newest.status !== 'ceremony' && newest.status !== 'published' || stalled.has(newest.n)) {
        const target = newest.n + 1;
        await decide({ kind: 'KeyRefreshed', keyId: 'k', keyEpoch: target }, ['approver-1', 'approver-2'], grng);
        newest = { n: target, status: 'ceremony' };
      }
      const target = newest.n;
      const waitFrom = Date.now();
      for (;;) {
        const e = await keyK();
        if (e?.epochs.includes(`${target}:published`)) break;
        if (!submitting() || e?.epochs.some((x) => x.startsWith(`${target}:`) && x !== `${target}:ceremony`)) return;
        if (Date.now() - waitFrom > limits.workloadCeremonyWaitMs) {
          stalled.add(target);
          log(`ledger campaign: epoch ${target} of k still in ceremony after ${Math.round((Date.now() - waitFrom) / 1000)} s; the next refresh supersedes it`);
          return;
        }
        await sleep(limits.workloadActPollMs);
      }
      const index = await decide({ kind: 'KeyActivated', keyId: 'k', keyEpoch: target }, ['approver-2', 'approver-3'], grng);
      activations.push({ keyId: 'k', keyEpoch: target, index });
    };
    const governor = async (): Promise<void> => {
      const grng = rng.fork();
      for (;;) {
        const until = now() + limits.workloadDecisionGapMs / 2 + grng.int(limits.workloadDecisionGapMs);
        while (now() < until && submitting()) await sleep(limits.workloadActPollMs);
        if (!submitting()) return;
        try {
          await refresh(grng);
        } catch (e) {
          log(`ledger campaign: key refresh: ${(e as Error).message}`);
        }
      }
    };

    let stop = false;
    // Settled at once, so a fault that cannot be played stops the clients instead of crashing the
    // process as an unhandled rejection; its error is thrown when the nemesis is awaited.
    let nemesisFailed: unknown = null;
    const nemesis = runNemesis(schedule, victim, now, log, () => stop || nemesisFailed !== null).catch((e: unknown) => {
      nemesisFailed = e;
      return [] as NemesisEvent[];
    });
    try {
      await Promise.all([...Array.from({ length: clients }, (_, i) => loop(i)), ...(o.decisions === false ? [] : [governor()])]);
    } finally {
      stop = true;
    }
    const events = await nemesis;
    if (nemesisFailed !== null) throw nemesisFailed;
    for (const id of ids) await victim.start(id);
    log(`ledger campaign: ${attempted.length} acts submitted (${acknowledged.size} acknowledged, ${givenUp} unanswered and not found); waiting for every act to end`);

    // Every act must end: the coordinator finishes or aborts what is in flight, and what was
    // published is settled here. Bounded by settleMs; past it the open acts are a liveness
    // violation, named with their states.
    const found: LedgerViolation[] = [];
    const settleMs = o.settleMs ?? limits.campaignSettleMs;
    const settleFrom = Date.now();
    let shownAt = 0;
    let openActs: ActView[] = [];
    const byState = (acts: readonly ActView[]): string => JSON.stringify(acts.reduce<Record<string, number>>((m, a) => ({ ...m, [a.state]: (m[a.state] ?? 0) + 1 }), {}));
    for (;;) {
      let read: ActView[] | null = null;
      for (const id of ids) {
        read = await (admins.get(id) as AdminClient).chronicle(0).then((r) => r.acts, () => null);
        if (read !== null) break;
      }
      if (read !== null) {
        openActs = read.filter((a) => !TERMINAL.includes(a.state));
        if (openActs.length === 0) break;
        for (const a of openActs.filter((x) => x.state === 'Published')) {
          await (caras.get('n1') as AdminClient).call('SettleAct', { opId: a.opId, confirmation: `tx-${a.opId}` }, limits.workloadCallTimeoutMs).catch(() => undefined);
        }
      }
      const waited = Date.now() - settleFrom;
      if (Date.now() - shownAt >= limits.campaignProgressMs) {
        shownAt = Date.now();
        log(`ledger campaign: settling ${Math.round(waited / 1000)} s: ${read === null ? 'no node answers' : `${openActs.length} acts open ${byState(openActs)}`}`);
      }
      if (waited > settleMs) {
        found.push({ check: 'liveness', detail: `${openActs.length} acts still open ${Math.round(settleMs / 1000)} s after the last heal ${byState(openActs)}: ${openActs.map((a) => `${a.opId} ${a.state}`).join(', ')}` });
        break;
      }
      await sleep(1_000);
    }
    // With no act open every node must reach one applied index and state root, and the
    // chronicles are compared whole. With acts still open the nodes are still signing: the
    // chronicles are compared up to the lowest index every node had applied before its read.
    let upTo: number | undefined;
    if (openActs.length === 0) {
      try {
        await until('every node at one applied index and state root', async () => {
          const st = await Promise.all(ids.map((id) => (admins.get(id) as AdminClient).status().catch(() => null)));
          return st.every((s) => s !== null && s.applied === st[0]?.applied && s.stateRoot === st[0]?.stateRoot) ? st : null;
        }, settleMs);
      } catch (e) {
        found.push({ check: 'chronicle-diverged', detail: (e as Error).message });
      }
    } else {
      upTo = Math.min(...(await Promise.all(ids.map(async (id) => (await (admins.get(id) as AdminClient).status()).applied))));
    }
    const chronicles = await Promise.all(ids.map(async (id) => (await (admins.get(id) as AdminClient).chronicle(0)).acts));
    const acts = chronicles[0] ?? [];
    found.push(...ledgerViolations(ids, chronicles, acknowledged, { ...(upTo !== undefined ? { upTo } : {}), activations: activations.flatMap((a) => (a.index === null ? [] : [{ ...a, index: a.index }])) }));
    const signatures = acts.reduce((n, a) => n + a.signatures.length, 0);
    let evidenceVerified = 0;
    for (const a of acts) {
      if (a.history.some((h) => h.state === 'Published')) {
        try {
          const bundle = JSON.parse((await (admins.get('n2') as AdminClient).exportEvidence(a.opId)).bundleJson) as unknown;
          const v = verifyEvidence(bundle);
          if (v.ok) evidenceVerified++;
          else found.push({ check: 'evidence', detail: `act ${a.opId}: ${v.reason} at link ${v.link}: ${v.detail}` });
        } catch (e) {
          found.push({ check: 'evidence', detail: `act ${a.opId}: no bundle: ${(e as Error).message}` });
        }
      }
    }
    const outcomes: Record<string, number> = {};
    for (const a of acts) outcomes[`${a.state}${a.reason ? `:${a.reason}` : ''}`] = (outcomes[`${a.state}${a.reason ? `:${a.reason}` : ''}`] ?? 0) + 1;
    const keyEpoch = (await keyK())?.activeEpoch ?? -1;
    for (const v of found) log(`VIOLATION (${v.check}): ${v.detail}`);
    return {
      workload: 'ledger', seed: o.seed, seconds: o.seconds, mix: o.mix.join(','), submitted: attempted.length, acknowledged: acknowledged.size,
      acts: acts.length, open: openActs.length, outcomes, signatures, evidenceVerified, decisions: decisionsApplied, keyEpoch,
      faults: events.filter((e) => e.what === 'fault').length,
      violations: found.length, verdict: found.length > 0 ? 'violation' : 'ok', found,
    };
  } catch (e) {
    for (const id of ids) log(`--- ${id}.log (last lines)\n${(() => { try { return readFileSync(join(dir, `${id}.log`), 'utf8').split('\n').slice(-15).join('\n'); } catch { return ''; } })()}`);
    throw e;
  } finally {
    for (const c of open) c.close();
    for (const id of ids) cluster.node(id).daemon?.kill('SIGCONT');
    await cluster.stop();
    if (!process.env.CUSTODY_KEEP_TEST_DIRS) rmSync(dir, { recursive: true, force: true });
  }
}
