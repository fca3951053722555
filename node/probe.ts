/**
 * Waiting on local processes, for the demo, the benchmarks and the tests: poll a condition until
 * it holds, and find a free loopback port to start a process on.
 */
import { createServer } from 'node:net';
import { CustodyError } from '../proto/errors.js';

/**
 * Calls `f` every `everyMs` until it returns a truthy value, and returns that value. A call that
 * throws counts as not yet (the last error is named if time runs out). After `timeoutMs`, fails
 * REMOTE_TIMEOUT naming `what`.
 */
export async function until<T>(what: string, f: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs = 60_000, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new CustodyError('REMOTE_TIMEOUT', `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A TCP port on `host` that was free a moment ago. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}
