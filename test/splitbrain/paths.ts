/**
 * Repository paths for the split-brain tests. Compiled tests run from dist/test/splitbrain/, so
 * the repository root is three levels up from this file's compiled location.
 */
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const prometheusDir = join(repoRoot, 'cluster-configs', 'prometheus');
export const grafanaDir = join(repoRoot, 'cluster-configs', 'grafana');
