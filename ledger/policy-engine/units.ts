/**
 * The written forms of a policy document's numbers: amounts in asset units with the asset's
 * decimals ("1.5" BTC = 150000000 sat), durations ("90s", "15m", "24h", "7d") and UTC clock
 * times ("08:30"). Each parser returns the value or a sentence saying what is wrong; each
 * formatter writes the one canonical form its parser reads back to the same value.
 */
import { policyEngine as limits } from '../../proto/limits.js';

const DECIMAL = /^(0|[1-9][0-9]*)(?:\.([0-9]+))?$/;

/** "1.5" with 8 decimals -> 150000000n. No sign, no exponent, no leading zeros, at most `decimals` fraction digits. */
export function parseUnits(text: string, decimals: number): bigint | string {
  const m = DECIMAL.exec(text);
  if (m === null) return `"${text}" is not a non-negative decimal amount such as "1.5"`;
  const frac = m[2] ?? '';
  if (frac.length > decimals) return `"${text}" has ${frac.length} decimals, the asset has ${decimals}`;
  const v = BigInt((m[1] as string) + frac.padEnd(decimals, '0'));
  if (v > limits.amountMax) return `"${text}" is above the largest amount (${formatUnits(limits.amountMax, decimals)})`;
  return v;
}

/** 150000000n with 8 decimals -> "1.5" (no trailing zeros, no point for whole amounts). */
export function formatUnits(v: bigint, decimals: number): string {
  const neg = v < 0n;
  const digits = (neg ? -v : v).toString().padStart(decimals + 1, '0');
  const whole = digits.slice(0, digits.length - decimals);
  const frac = digits.slice(digits.length - decimals).replace(/0+$/, '');
  return `${neg ? '-' : ''}${whole}${frac === '' ? '' : `.${frac}`}`;
}

const UNITS: readonly (readonly [string, number])[] = [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]];
const DURATION = /^([1-9][0-9]{0,15})(ms|s|m|h|d)$/;

export function parseDuration(text: string): number | string {
  const m = DURATION.exec(text);
  if (m === null) return `"${text}" is not a duration such as "90s", "15m", "24h" or "7d"`;
  const unit = UNITS.find(([u]) => u === m[2]) as readonly [string, number];
  const ms = Number(m[1]) * unit[1];
  if (!Number.isSafeInteger(ms)) return `"${text}" is too long`;
  return ms;
}

/** The largest unit that divides the duration exactly. */
export function formatDuration(ms: number): string {
  for (const [u, f] of UNITS) if (ms % f === 0) return `${ms / f}${u}`;
  return `${ms}ms`;
}

const CLOCK = /^([01][0-9]|2[0-3]):([0-5][0-9])$|^24:00$/;

/** "08:30" -> 510 (minutes of the UTC day); "24:00" -> 1440, the end of the day. */
export function parseClock(text: string): number | string {
  const m = CLOCK.exec(text);
  if (m === null) return `"${text}" is not a UTC time such as "08:30" (00:00 to 24:00)`;
  return m[1] === undefined ? 1440 : Number(m[1]) * 60 + Number(m[2]);
}

export function formatClock(minute: number): string {
  return `${String(Math.floor(minute / 60)).padStart(2, '0')}:${String(minute % 60).padStart(2, '0')}`;
}
