/**
 * Token buckets keyed by caller identity: each key holds at most `burst` tokens, refilled at
 * `perSecond`; a take that would go below zero is refused and takes nothing. Time is passed in
 * (milliseconds), so the buckets are deterministic under test. Buckets of idle callers are
 * dropped once full again, so the map is bounded by the callers active within one refill time.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; atMs: number }>();

  constructor(private readonly burst: number, private readonly perSecond: number) {}

  take(key: string, n: number, nowMs: number): boolean {
    const b = this.buckets.get(key) ?? { tokens: this.burst, atMs: nowMs };
    const elapsed = Math.max(0, nowMs - b.atMs);
    const tokens = Math.min(this.burst, b.tokens + (elapsed * this.perSecond) / 1000);
    if (tokens < n) {
      this.buckets.set(key, { tokens, atMs: nowMs });
      return false;
    }
    this.buckets.set(key, { tokens: tokens - n, atMs: nowMs });
    this.sweep(nowMs);
    return true;
  }

  private sweep(nowMs: number): void {
    if (this.buckets.size < 1024) return;
    const fullAfterMs = (this.burst / this.perSecond) * 1000;
    for (const [k, b] of this.buckets) if (nowMs - b.atMs >= fullAfterMs) this.buckets.delete(k);
  }
}
