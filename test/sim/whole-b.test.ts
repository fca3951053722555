/**
 * Whole-node fresh seeds, second block (in parallel with whole-a): the default fault profile on 3
 * and 5 voters. Together with whole-a each CI run covers 510 seeds nobody ran before, with every
 * fault kind (restores with and without the marker, wipes, permanent failures, rolling restarts).
 */
import t from 'tap';
import { freshWholeSeeds } from './whole/fresh.js';

/** Ticks of each seed's fault phase: shorter than the CLI default, to fit the CI time budget. */
const CI_TICKS = 200;

t.test('Whole node: fresh seeds under the default fault profile on 3 and 5 voters keep every safety property, raise no false alarm and recover', async (t) => {
  await freshWholeSeeds(t, 250, [3, 3, 3, 5], 'default', CI_TICKS);
});
