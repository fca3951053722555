/**
 * Who deals a refresh / reshare (node/lifecycle/participant.ts redealDealers): t holders of the
 * active epoch that are live on the roster and stay in the new committee, so a reshare that
 * replaces a dead, removed holder is dealt by the live ones.
 */
import t from 'tap';
import { redealDealers } from '../../node/lifecycle/participant.js';
import type { ClusterState, EpochRecord } from '../../ledger/state.js';

const cluster = (status: Record<string, 'active' | 'fenced' | 'removed'>, equivocated: string[] = []): ClusterState =>
  ({ nodes: Object.fromEntries(Object.entries(status).map(([id, s]) => [id, { id, status: s, equivocated: equivocated.includes(id) }])) }) as unknown as ClusterState;
const epoch = (participants: string[], threshold: number): EpochRecord => ({ participants, threshold }) as unknown as EpochRecord;

t.test('the dealers of a redeal', (t) => {
  const old = epoch(['n1', 'n2', 'n3'], 2);
  t.same(redealDealers(cluster({ n1: 'active', n2: 'active', n3: 'active' }), old, epoch(['n1', 'n2', 'n3'], 2)), ['n1', 'n2'], 'a refresh: the first t holders');
  t.same(redealDealers(cluster({ n1: 'removed', n2: 'active', n3: 'active', n4: 'active' }), old, epoch(['n2', 'n3', 'n4'], 2)), ['n2', 'n3'], 'the first holder dead and removed: the next live holders deal');
  t.same(redealDealers(cluster({ n1: 'active', n2: 'active', n3: 'removed', n5: 'active' }), old, epoch(['n1', 'n2', 'n5'], 2)), ['n1', 'n2'], 'replacing n3 by n5: n1 and n2 deal');
  t.same(redealDealers(cluster({ n1: 'active', n2: 'fenced', n3: 'active' }), old, epoch(['n1', 'n2', 'n3'], 2)), ['n1', 'n3'], 'a fenced holder does not deal');
  t.same(redealDealers(cluster({ n1: 'active', n2: 'active', n3: 'active' }, ['n1']), old, epoch(['n1', 'n2', 'n3'], 2)), ['n2', 'n3'], 'nor one flagged for equivocation');
  t.same(redealDealers(cluster({ n1: 'active', n2: 'removed', n3: 'removed', n4: 'active' }), old, epoch(['n1', 'n4'], 2)), ['n1'], 'fewer than t live holders: too few dealers (the ceremony waits)');
  t.same(redealDealers(cluster({ n1: 'active', n2: 'active', n3: 'active', n4: 'active' }), old, epoch(['n3', 'n4', 'n1'], 2)), ['n1', 'n3'], 'in the old epoch\'s order, only holders that stay in the committee');
  t.end();
});
