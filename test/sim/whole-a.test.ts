/**
 * Whole-node fresh seeds, first block: the default fault profile on 3 voters. With
 * whole-b.test.ts (run in parallel by tap) each CI run covers more than 500 seeds nobody ran before.
 */
import t from 'tap';
import { freshWholeSeeds } from './whole/fresh.js';

/** Ticks of each seed's fault phase: shorter than the CLI default, to fit the CI time budget. */
const CI_TICKS = 200;

t.test('Whole node: fresh seeds under the default fault profile keep every safety property, raise no false alarm and recover', async (t) => {
  await freshWholeSeeds(t, 260, [3], 'default', CI_TICKS);
});
