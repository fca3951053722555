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
 * After the schedule the acts still Published are settled, and the run waits until every act has
 * ended and every node applied the same index with the same state root. Checks (DESIGN §3):
 *   admitted-lost       an act whose submission was acknowledged is in every node's chronicle;
 *   ends-once           every act ends, once: its history holds exactly one of Settled, Denied,
 *                       Aborted, as its last state;
 *   one-signature       an act is Executed at most once, its permit is no other act's, and none
 *                       of its signatures appears in another act;
 *   nonce-reused        no (node, key, nonce counter) appears in two signing sets, in any act;
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
import type { ActView, AdminClient } from '../../node/admin/client.js';
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
}

export interface LedgerViolation {
  readonly check: 'admitted-lost' | 'ends-once' | 'one-signature' | 'nonce-reused' | 'chronicle-diverged' | 'evidence' | 'settle';
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
  readonly outcomes: Readonly<Record<string, number>>;
  readonly signatures: number;
  readonly evidenceVerified: number;
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

/**
 * The replica and custody checks over every node's chronicle (the first is the reference) and the
 * acts whose submission was acknowledged: admitted-lost, ends-once, one-signature, nonce-reused,
 * chronicle-diverged (see the module header). Pure; evidence is checked by the caller.
 */
export function ledgerViolations(ids: readonly string[], chronicles: readonly (readonly ActView[])[], acknowledged: ReadonlySet<string>): LedgerViolation[] {
  const found: LedgerViolation[] = [];
  const acts = chronicles[0] ?? [];
  const reference = new Map(acts.map((a) => [a.opId, replicaView(a)]));
  chronicles.forEach((list, i) => {
    const views = new Map(list.map((a) => [a.opId, replicaView(a)]));
    if (views.size !== reference.size) found.push({ check: 'chronicle-diverged', detail: `${ids[i]} holds ${views.size} acts, ${ids[0]} ${reference.size}` });
    for (const [op, v] of views) if (reference.get(op) !== v) found.push({ check: 'chronicle-diverged', detail: `${ids[i]}: act ${op} differs from ${ids[0]}'s` });
  });
  const byOp = new Map(acts.map((a) => [a.opId, a]));
  for (const op of acknowledged) if (!byOp.has(op)) found.push({ check: 'admitted-lost', detail: `act ${op} was acknowledged but is in no chronicle` });
  const permits = new Map<string, string>();
  const nonces = new Map<string, string>();
  const signatures = new Map<string, string>();
  for (const a of acts) {
    const ends = a.history.filter((h) => TERMINAL.includes(h.state));
    if (ends.length !== 1 || !TERMINAL.includes(a.history[a.history.length - 1]?.state ?? '')) {
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
      start: async (id) => {
        await victim.startKernel(id);
        if (!running(id)) cluster.startDaemon(id, CLI);
      },
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
        if (k !== null && k.proc.exitCode === null && k.proc.signalCode === null) return;
        await cluster.startKernel(id);
      },
    };

    const t0 = performance.now();
    const now = (): number => performance.now() - t0;
    const rng = new SeededRng(o.seed ^ 0x1ed9e5);
    const attempted: string[] = [];
    const acknowledged = new Set<string>();
    const loop = async (slot: number): Promise<void> => {
      const crng = rng.fork();
      let n = 0;
      while (now() < o.seconds * 1000 && nemesisFailed === null) {
        const via = ids[crng.int(ids.length)] as string;
        const label = `j${o.seed}-${slot}-${++n}`;
        attempted.push(label);
        try {
          const c = caras.get(via) as AdminClient;
          const v = await submitAs(c, cara, { opId: label, keyId: 'k', ...(await actTx(c, 'k', String(100 + crng.int(900)), crng.chance(0.5) ? 'sol-treasury' : 'sol-exchange')) });
          if (v.opId !== '') acknowledged.add(rid(label));
        } catch {
          // Unknown outcome: the act may or may not have been admitted; the final checks read the ledger.
          await new Promise((r) => setTimeout(r, 500 + crng.int(1000)));
        }
        await new Promise((r) => setTimeout(r, crng.int(300)));
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
      await Promise.all(Array.from({ length: clients }, (_, i) => loop(i)));
    } finally {
      stop = true;
    }
    const events = await nemesis;
    if (nemesisFailed !== null) throw nemesisFailed;
    for (const id of ids) await victim.start(id);
    log(`ledger campaign: ${attempted.length} acts submitted (${acknowledged.size} acknowledged); settling and waiting for every act to end`);

    const found: LedgerViolation[] = [];
    // Settle what was published, until every act has ended (the coordinator finishes or aborts the rest).
    const settleDeadline = Date.now() + limits.campaignSettleMs;
    let acts: ActView[] = [];
    for (;;) {
      acts = await (admins.get('n1') as AdminClient).chronicle(0).then((r) => r.acts, () => []);
      const open = acts.filter((a) => !TERMINAL.includes(a.state));
      if (acts.length > 0 && open.length === 0) break;
      if (Date.now() > settleDeadline) {
        found.push({ check: 'ends-once', detail: `${open.length} acts never ended: ${open.slice(0, 5).map((a) => `${a.opId} ${a.state}`).join(', ')}` });
        break;
      }
      for (const a of open.filter((x) => x.state === 'Published')) {
        await (caras.get('n1') as AdminClient).settleAct(a.opId, `tx-${a.opId}`).catch(() => undefined);
      }
      await new Promise((r) => setTimeout(r, 1_000));
    }
    // Every node at one applied index and state root.
    try {
      await until('every node at one applied index and state root', async () => {
        const st = await Promise.all(ids.map((id) => (admins.get(id) as AdminClient).status().catch(() => null)));
        return st.every((s) => s !== null && s.applied === st[0]?.applied && s.stateRoot === st[0]?.stateRoot) ? st : null;
      }, 180_000);
    } catch (e) {
      found.push({ check: 'chronicle-diverged', detail: (e as Error).message });
    }
    const chronicles = await Promise.all(ids.map(async (id) => (await (admins.get(id) as AdminClient).chronicle(0)).acts));
    acts = chronicles[0] ?? [];
    found.push(...ledgerViolations(ids, chronicles, acknowledged));
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
    for (const v of found) log(`VIOLATION (${v.check}): ${v.detail}`);
    return {
      workload: 'ledger', seed: o.seed, seconds: o.seconds, mix: o.mix.join(','), submitted: attempted.length, acknowledged: acknowledged.size,
      acts: acts.length, outcomes, signatures, evidenceVerified, faults: events.filter((e) => e.what === 'fault').length,
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
