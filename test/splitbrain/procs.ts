/** Process helpers shared by the tests that start real daemons and a real Prometheus. */
import { until as pollUntil } from '../../node/probe.js';

export { freePort } from '../../node/probe.js';

/**
 * Polls `probe` every 500 ms until it returns non-null (0 and false count as answers: these probes
 * read Prometheus values), or fails naming `what` after the deadline.
 */
export async function until<T>(what: string, deadlineMs: number, probe: () => Promise<T | null>): Promise<T> {
  return (await pollUntil(what, async () => {
    const v = await probe();
    return v === null ? null : { v };
  }, deadlineMs, 500)).v;
}
