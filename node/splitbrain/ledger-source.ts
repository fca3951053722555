/**
 * The ledger-derived inputs of the scrape-time metrics (metrics-catalog.ts CatalogSources.ledger):
 * which nodes the ledger flags for equivocation and for which statement kind, how many passports
 * it records as fenced, and how many signing acts sit in each lifecycle state.
 *
 * Read from the applied ledger state rather than counted from events, so the gauges are the same
 * on every node at the same applied index, survive restarts, and clear exactly when the ledger
 * clears them (a NodeRebound decision clears `equivocated`, ledger/apply.ts).
 */
import { TERMINAL_OP_STATES, type LedgerState } from '../../ledger/state.js';
import type { CatalogSources } from '../metrics-catalog.js';

type LedgerView = ReturnType<NonNullable<CatalogSources['ledger']>>;

export function ledgerView(state: LedgerState): LedgerView {
  const c = state.cluster;
  if (c === null) return { equivocated: [], fencedPassports: 0, actsByState: {} };
  const flagged = new Set(Object.values(c.nodes).filter((n) => n.equivocated).map((n) => n.id));
  // One series per (offender, kind) with recorded evidence, for offenders still flagged.
  const seen = new Set<string>();
  const equivocated: { offender: string; kind: string }[] = [];
  for (const ev of Object.values(c.evidence)) {
    const key = `${ev.nodeId}\u0000${ev.kind}`;
    if (!flagged.has(ev.nodeId) || seen.has(key)) continue;
    seen.add(key);
    equivocated.push({ offender: ev.nodeId, kind: ev.kind });
  }
  let fencedPassports = 0;
  for (const n of Object.values(c.nodes)) fencedPassports += n.fencedPassports.length;
  // Acts in flight from memory; ended acts from their counts (they may be in the archive).
  const actsByState: Record<string, number> = { ...c.endedByState };
  for (const op of Object.values(c.ops)) if (!TERMINAL_OP_STATES.includes(op.state)) actsByState[op.state] = (actsByState[op.state] ?? 0) + 1;
  return { equivocated, fencedPassports, actsByState };
}

/** A CatalogSources.ledger reading the node's current ledger state on each scrape. */
export function ledgerSource(current: () => LedgerState | null): NonNullable<CatalogSources['ledger']> {
  return () => {
    const s = current();
    return s === null ? null : ledgerView(s);
  };
}
