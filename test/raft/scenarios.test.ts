/**
 * Runs every scripted scenario in test/raft/scenarios/ against the real core and compares the
 * output with the golden text. CUSTODY_REWRITE_GOLDEN=1 rewrites the files from actual output.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import t from 'tap';
import { formatScenario, parseScenario, ScenarioRunner } from './scenario.js';

const dir = new URL('../../../test/raft/scenarios/', import.meta.url);
const rewrite = process.env['CUSTODY_REWRITE_GOLDEN'] === '1';

for (const file of readdirSync(dir).filter((f) => f.endsWith('.txt')).sort()) {
  t.test(`scenario ${file}`, async (t) => {
    const path = new URL(file, dir);
    const blocks = parseScenario(readFileSync(path, 'utf8'));
    const runner = new ScenarioRunner();
    const outputs: string[][] = [];
    for (const b of blocks) {
      const out = runner.run(b.command);
      outputs.push(out);
      if (!rewrite) t.same(out, b.expected, `${file}: ${b.command}`);
    }
    if (rewrite) {
      writeFileSync(path, formatScenario(blocks, outputs));
      t.ok(true, `rewrote ${file}`);
    }
  });
}
