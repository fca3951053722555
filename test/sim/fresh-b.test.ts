/**
 * Fresh seeds, second block (runs in parallel with fresh-a): more of the default profile, then the
 * fault-dense heavy profile with no defect switched on — it must stay safe too, or the fault-switch
 * tests would prove nothing.
 */
import t from 'tap';
import { freshSeeds } from './fresh.js';

t.test('Cluster: fresh seeds under the default fault profile keep every safety property and recover', (t) => {
  freshSeeds(t, 180, [5, 3, 7], 'default');
  t.end();
});

t.test('Cluster: fresh seeds under the heavy fault profile, with a correct core, keep every safety property', (t) => {
  freshSeeds(t, 60, [3, 5], 'heavy');
  t.end();
});
