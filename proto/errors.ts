import { REASONS, type ReasonCode } from './reasons.js';

/**
 * The error that crosses a boundary. It carries exactly one reason code from proto/reasons.ts;
 * `detail` is for humans and logs, never parsed. Programmer errors (broken invariants) are not
 * CustodyErrors: they are assertions and crash the process.
 */
export class CustodyError extends Error {
  override readonly name = 'CustodyError';
  readonly reason: ReasonCode;
  readonly detail: string;

  constructor(reason: ReasonCode, detail?: string, options?: { cause?: unknown }) {
    const text = detail ?? REASONS[reason].text;
    super(`${reason}: ${text}`, options);
    this.reason = reason;
    this.detail = text;
  }
}

export function isCustodyError(e: unknown): e is CustodyError {
  return e instanceof CustodyError;
}

/** An invariant that must hold; failure is a bug and crashes (TigerBeetle style). */
export function assert(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(`assertion failed: ${what}`);
}
