/** Starts the membership loop (reconciler.ts) of a ledger node: the roster is the ledger's, read on every run. */
import type { Driver } from '../../raft/driver.js';
import type { LedgerApp } from '../ledger-app.js';
import { governingDecision } from './guard.js';
import { MembershipReconciler } from './reconciler.js';

export function startMembership(self: string, driver: Driver, app: LedgerApp, log: (line: string) => void): MembershipReconciler {
  const r = new MembershipReconciler({
    self,
    driver,
    roster: () => {
      const c = app.state.cluster;
      return c === null ? null : Object.values(c.nodes).map((n) => ({ id: n.id, status: n.status }));
    },
    decisionFor: (type, node) => governingDecision(app.decisionsAfter(0), type, node),
    log,
  });
  // Every applied NodeAdded / NodeRemoved may change the next step. Listeners run inside the
  // driver's apply step, so the run is scheduled after it (one per burst of entries).
  let scheduled = false;
  app.subscribe(() => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      r.kick();
    });
  });
  r.start();
  return r;
}
