/**
 * The throwaway process of a backup drill (drill.ts): reads a DrillInput as JSON on stdin, runs
 * the drill, writes `{"report": ...}` or `{"refusal": {reason, detail}}` as JSON on stdout and
 * progress lines on stderr, and exits; the guardian files, the identity and the shares live only
 * here. The input is bounded (proto/limits.ts drill.inputCharsMax).
 */
import { isCustodyError } from '../../proto/errors.js';
import { drill as limits } from '../../proto/limits.js';
import { runDrill, type DrillInput } from './drill.js';

async function main(): Promise<void> {
  let text = '';
  for await (const chunk of process.stdin) {
    text += String(chunk);
    if (text.length > limits.inputCharsMax) {
      process.stdout.write(JSON.stringify({ refusal: { reason: 'LIMIT_EXCEEDED', detail: `drill input longer than ${limits.inputCharsMax} characters` } }));
      process.exitCode = 3;
      return;
    }
  }
  try {
    const report = await runDrill(JSON.parse(text) as DrillInput, (line) => void process.stderr.write(`${line}\n`));
    process.stdout.write(JSON.stringify({ report }));
  } catch (e) {
    if (!isCustodyError(e)) {
      process.stdout.write(JSON.stringify({ refusal: { reason: 'INTERNAL', detail: (e as Error).message } }));
      process.exitCode = 1;
      return;
    }
    process.stdout.write(JSON.stringify({ refusal: { reason: e.reason, detail: e.detail } }));
    process.exitCode = 3;
  }
}

void main();
