/**
 * The kernel and signing-act counters of the metric catalog (metrics-catalog.ts), fed from the
 * two places that see them: every request this node sends to its secret kernel, and every ledger
 * entry that moves a signing act.
 */
import { isCustodyError } from '../proto/errors.js';
import type { ResponseBody, RequestBody } from '../kernel/wire.js';
import type { LedgerApp } from './ledger-app.js';
import type { KernelPort } from './lifecycle/ports.js';
import type { CatalogMetrics } from './metrics-catalog.js';

/** `k`, counting each request by kind (custody_kernel_steps_total) and each refusal by reason code. */
export function countedKernel(k: KernelPort, m: Pick<CatalogMetrics, 'kernelSteps' | 'kernelRefusals'>): KernelPort {
  return {
    async call<K extends ResponseBody['kind']>(body: RequestBody, expect: K): Promise<Extract<ResponseBody, { kind: K }>> {
      m.kernelSteps.inc({ step: body.kind });
      try {
        return await k.call(body, expect);
      } catch (e) {
        if (isCustodyError(e)) m.kernelRefusals.inc({ reason: e.reason });
        throw e;
      }
    },
  };
}

/** Counts each state a signing act enters (custody_signing_act_transitions_total) as this node applies it. */
export function countActTransitions(app: LedgerApp, m: Pick<CatalogMetrics, 'signingActTransitions'>): () => void {
  return app.subscribe((_entry, r) => {
    if (r.ok && !r.replayed && r.opState !== undefined) m.signingActTransitions.inc({ state: r.opState });
  });
}

/**
 * Counts each committed entry the ledger refused (custody_ledger_entries_refused_total), by reason
 * code (a refusal the ledger journals, a Denied act or equivocation evidence, is not one). Raft commits whatever a leader appends; a leader that lies (a forged act, a proposer it is
 * not, a stamp far ahead) gets its entries committed and refused by every replica alike, and this
 * is where an operator sees it.
 */
export function countRefusedEntries(app: LedgerApp, m: Pick<CatalogMetrics, 'ledgerEntriesRefused'>): () => void {
  return app.subscribe((_entry, r) => {
    if (!r.ok && !r.applied) m.ledgerEntriesRefused.inc({ reason: r.reason });
  });
}
