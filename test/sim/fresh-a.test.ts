/**
 * Fresh seeds, first block: the default fault profile on 3, 5 and 7 nodes. Together with
 * fresh-b.test.ts each CI run covers more than 500 seeds nobody has run before.
 */
import t from 'tap';
import { freshSeeds } from './fresh.js';

t.test('Cluster: fresh seeds under the default fault profile keep every safety property and recover', (t) => {
  freshSeeds(t, 300, [3, 5, 7], 'default');
  t.end();
});
