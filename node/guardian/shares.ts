/**
 * A custodian's age identity split among guardians (Shamir over GF(256), `shamir-secret-sharing`).
 * Pure: no file system; node/guardian/files.ts reads and writes, node/commands/guardian.ts is the CLI.
 *
 * Guardian file (UTF-8 text, one per guardian; exactly this rendering is accepted):
 *
 *   custody guardian share v1
 *   # 3 of the 5 files of this set rebuild the age identity of age1...; keep this file offline.
 *   label: treasury-a
 *   share: 2 of 5
 *   threshold: 3
 *   set: <32 hex: random id shared by the files of one split>
 *   recipient: age1...        the identity's public recipient, what a combine is checked against
 *   data: <hex: the Shamir share, y-bytes then the x-coordinate>
 *   sha256: <hex>             digest('custody/guardian-share/v1', canonical CBOR of the fields above)
 *
 * Threats and the check that meets each (every refusal names the file):
 *   - a flipped byte, a truncated or edited file: the rendering or the checksum differs
 *     (GUARDIAN_SHARE_CORRUPT);
 *   - a file of another split (another custodian, or an earlier split of the same one): set id,
 *     label, counts or recipient differ from the others' (GUARDIAN_SHARE_FOREIGN);
 *   - the same share twice, under two names or with a renumbered index: equal index or equal
 *     x-coordinate (GUARDIAN_DUPLICATE_SHARE); fewer distinct shares than the threshold
 *     (GUARDIAN_TOO_FEW_SHARES) -- Shamir would "succeed" with them and return noise;
 *   - a share whose bytes were altered and whose checksum was recomputed (the checksum is an
 *     integrity check, not a signature: anyone can recompute it). Shamir does not verify a
 *     reconstruction, so the combined secret is checked: it must be a well-formed age X25519
 *     identity whose recipient is the recorded one (GUARDIAN_COMBINE_MISMATCH). The recipient is
 *     bound to the identity by X25519 itself, so no set of wrong shares can pass that check
 *     without producing the custodian's real identity.
 * The recorded recipient is public; publishing it (e.g. in the ledger's BackupPolicy) lets a
 * custodian check that the files rebuild the identity the cluster encrypts to.
 */
import { randomBytes } from 'node:crypto';
import { identityToRecipient } from 'age-encryption';
import { combine, split } from 'shamir-secret-sharing';
import { CustodyError } from '../../proto/errors.js';
import { guardian as limits } from '../../proto/limits.js';
import { cid, fromHex, toHex } from '../../ledger/encoding.js';

export const SHARE_MAGIC = 'custody guardian share v1';
const CHECKSUM_DOMAIN = 'custody/guardian-share/v1';
/** An age X25519 identity: "AGE-SECRET-KEY-1" and 58 characters of upper-case Bech32. */
const IDENTITY_RE = /^AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}$/;
const RECIPIENT_RE = /^age1[02-9ac-hj-np-z]{58}$/;
const LABEL_RE = new RegExp(`^[A-Za-z0-9][A-Za-z0-9._-]{0,${limits.labelCharsMax - 1}}$`);

export interface GuardianShare {
  label: string;
  /** 1-based position of this file among the split's files. */
  index: number;
  shares: number;
  threshold: number;
  /** Hex, limits.setIdBytes random bytes. */
  set: string;
  recipient: string;
  /** The Shamir share: y-bytes, then the x-coordinate (1..255). */
  data: Uint8Array;
}

/** A share and the name (a path) it is reported by. */
export interface NamedShare { name: string; share: GuardianShare }

export interface SplitOptions { shares: number; threshold: number; label: string }

function fields(s: GuardianShare): Record<string, string | number | Uint8Array> {
  return { v: 1, label: s.label, index: s.index, shares: s.shares, threshold: s.threshold, set: fromHex(s.set), recipient: s.recipient, data: s.data };
}

export function shareChecksum(s: GuardianShare): string {
  return toHex(cid(CHECKSUM_DOMAIN, fields(s)));
}

/** The one accepted rendering of a guardian file. */
export function renderShare(s: GuardianShare, checksum = shareChecksum(s)): string {
  return [
    SHARE_MAGIC,
    `# ${s.threshold} of the ${s.shares} files of this set rebuild the age identity of ${s.recipient}; keep this file offline.`,
    `label: ${s.label}`,
    `share: ${s.index} of ${s.shares}`,
    `threshold: ${s.threshold}`,
    `set: ${s.set}`,
    `recipient: ${s.recipient}`,
    `data: ${toHex(s.data)}`,
    `sha256: ${checksum}`,
    '',
  ].join('\n');
}

/** Refuses split parameters outside proto/limits.ts `guardian`. */
export function checkSplitOptions(o: SplitOptions): void {
  const bad = (what: string): never => { throw new CustodyError('INVALID_ARGUMENT', what); };
  if (!Number.isInteger(o.shares) || o.shares < limits.sharesMin || o.shares > limits.sharesMax) bad(`--shares must be an integer from ${limits.sharesMin} to ${limits.sharesMax}`);
  if (!Number.isInteger(o.threshold) || o.threshold < limits.thresholdMin || o.threshold > o.shares) bad(`--threshold must be an integer from ${limits.thresholdMin} to --shares (${o.shares})`);
  if (!LABEL_RE.test(o.label)) bad(`--label must be 1 to ${limits.labelCharsMax} characters of A-Z a-z 0-9 . _ - and start with a letter or digit`);
}

/** Strict parse of a guardian file's text; any deviation from `renderShare` is GUARDIAN_SHARE_CORRUPT naming `name`. */
export function parseShare(name: string, raw: string): GuardianShare {
  // A file copied through a system that ends lines with CR LF keeps its content; the checksum
  // covers the fields, not the line endings.
  const text = raw.replace(/\r\n/g, '\n');
  const corrupt = (what: string): never => { throw new CustodyError('GUARDIAN_SHARE_CORRUPT', `${name}: ${what}`); };
  const lines = text.split('\n');
  if (lines[0] !== SHARE_MAGIC) corrupt(`not a guardian file (first line is not "${SHARE_MAGIC}")`);
  const get = (i: number, key: string, re: RegExp): RegExpExecArray => {
    const line = lines[i] ?? '';
    const m = re.exec(line.startsWith(`${key}: `) ? line.slice(key.length + 2) : '');
    return m ?? corrupt(`line ${i + 1} is not a well-formed "${key}:" line`);
  };
  const label = get(2, 'label', LABEL_RE)[0];
  const sh = get(3, 'share', /^([1-9][0-9]{0,2}) of ([1-9][0-9]{0,2})$/);
  const threshold = Number(get(4, 'threshold', /^[1-9][0-9]{0,2}$/)[0]);
  const set = get(5, 'set', new RegExp(`^[0-9a-f]{${limits.setIdBytes * 2}}$`))[0];
  const recipient = get(6, 'recipient', RECIPIENT_RE)[0];
  const data = fromHex(get(7, 'data', /^(?:[0-9a-f]{2}){2,}$/)[0]);
  const checksum = get(8, 'sha256', /^[0-9a-f]{64}$/)[0];
  const s: GuardianShare = { label, index: Number(sh[1]), shares: Number(sh[2]), threshold, set, recipient, data };
  if (s.shares < limits.sharesMin || s.shares > limits.sharesMax || s.index > s.shares || threshold < limits.thresholdMin || threshold > s.shares) {
    corrupt(`share ${s.index} of ${s.shares} with threshold ${threshold} is outside the bounds a split writes`);
  }
  if (data[data.length - 1] === 0) corrupt('the share\'s x-coordinate is 0');
  if (renderShare(s, checksum) !== text) corrupt('the file differs from its canonical form (edited, reformatted or truncated)');
  if (shareChecksum(s) !== checksum) corrupt('SHA-256 checksum mismatch: the file was altered or damaged');
  return s;
}

/** Splits `identity` (an age X25519 identity) into `o.shares` guardian shares, any `o.threshold` of which rebuild it. */
export async function splitIdentity(identity: string, o: SplitOptions, rng: (n: number) => Uint8Array = randomBytes): Promise<GuardianShare[]> {
  checkSplitOptions(o);
  const recipient = await recipientOf(identity, 'the identity file');
  const set = toHex(rng(limits.setIdBytes));
  const secret = new TextEncoder().encode(identity);
  try {
    const parts = await split(secret, o.shares, o.threshold);
    return parts.map((data, i) => ({ label: o.label, index: i + 1, shares: o.shares, threshold: o.threshold, set, recipient, data }));
  } finally {
    secret.fill(0);
  }
}

/**
 * Checks that `shares` are of one split, distinct, and at least its threshold (when `needThreshold`).
 * Files of the largest set are taken as the split; every other file is named as foreign.
 */
export function checkShareSet(shares: readonly NamedShare[], needThreshold: boolean): GuardianShare {
  if (shares.length === 0) throw new CustodyError('INVALID_ARGUMENT', 'name at least one guardian file');
  const key = (s: GuardianShare): string => `${s.set}|${s.label}|${s.shares}|${s.threshold}|${s.recipient}|${s.data.length}`;
  const bySet = new Map<string, NamedShare[]>();
  for (const n of shares) bySet.set(key(n.share), [...(bySet.get(key(n.share)) ?? []), n]);
  const main = [...bySet.values()].reduce((a, b) => (b.length > a.length ? b : a));
  const ref = main[0]!.share;
  const foreign = shares.filter((n) => key(n.share) !== key(ref));
  if (foreign.length > 0) {
    const f = foreign[0]!.share;
    throw new CustodyError('GUARDIAN_SHARE_FOREIGN', `${foreign.map((n) => n.name).join(', ')}: not of the split of ${main.map((n) => n.name).join(', ')} (set ${f.set} label ${f.label} ${f.threshold} of ${f.shares} for ${f.recipient}, expected set ${ref.set} label ${ref.label} ${ref.threshold} of ${ref.shares} for ${ref.recipient})`);
  }
  for (let i = 0; i < shares.length; i++) {
    for (let j = 0; j < i; j++) {
      const a = shares[j]!;
      const b = shares[i]!;
      if (a.share.index === b.share.index || a.share.data[a.share.data.length - 1] === b.share.data[b.share.data.length - 1]) {
        throw new CustodyError('GUARDIAN_DUPLICATE_SHARE', `${b.name} is the same guardian share as ${a.name} (share ${b.share.index} of ${ref.shares})`);
      }
    }
  }
  if (needThreshold && shares.length < ref.threshold) {
    throw new CustodyError('GUARDIAN_TOO_FEW_SHARES', `${shares.length} guardian file${shares.length === 1 ? '' : 's'} given (${shares.map((n) => n.name).join(', ')}); this split needs ${ref.threshold} of ${ref.shares}`);
  }
  return ref;
}

/** Combines `shares` and returns the identity only if it is a well-formed age X25519 identity with `recipient`. */
async function tryCombine(shares: readonly GuardianShare[], recipient: string): Promise<string | null> {
  const secret = await combine(shares.map((s) => s.data));
  try {
    let identity: string;
    try {
      identity = new TextDecoder('utf-8', { fatal: true }).decode(secret);
    } catch {
      return null;
    }
    if (!IDENTITY_RE.test(identity)) return null;
    // age refusing a string of the identity's shape means it is not this recipient's identity:
    // null, and the caller refuses the combine with GUARDIAN_COMBINE_MISMATCH naming the files.
    const got = await identityToRecipient(identity).catch(() => null);
    return got === recipient ? identity : null;
  } finally {
    secret.fill(0);
  }
}

/** The first `k`-subset of `items` (in lexicographic order of positions) for which `ok` holds, looking at most at `max` subsets. */
async function findSubset<T>(items: readonly T[], k: number, max: number, ok: (subset: T[]) => Promise<boolean>): Promise<T[] | null> {
  const pos = Array.from({ length: k }, (_, i) => i);
  for (let tried = 0; tried < max; tried++) {
    const subset = pos.map((i) => items[i]!);
    if (await ok(subset)) return subset;
    let i = k - 1;
    while (i >= 0 && pos[i] === items.length - k + i) i--;
    if (i < 0) return null;
    pos[i]!++;
    for (let j = i + 1; j < k; j++) pos[j] = pos[j - 1]! + 1;
  }
  return null;
}

/**
 * Rebuilds the identity from `shares` and checks it (see the threats above): returns it only if it
 * is a well-formed age X25519 identity whose recipient is the one every file records. When the
 * check fails and more files than the threshold were given, subsets of threshold size are tried
 * (at most `guardian.combineSubsetsMax`) to name the files that disagree with a verifying subset.
 */
export async function combineShares(shares: readonly NamedShare[]): Promise<{ identity: string; recipient: string }> {
  const ref = checkShareSet(shares, true);
  const identity = await tryCombine(shares.map((n) => n.share), ref.recipient);
  if (identity !== null) return { identity, recipient: ref.recipient };
  const names = (ns: readonly NamedShare[]): string => ns.map((n) => n.name).join(', ');
  if (shares.length > ref.threshold) {
    const good = await findSubset(shares, ref.threshold, limits.combineSubsetsMax, async (sub) => (await tryCombine(sub.map((n) => n.share), ref.recipient)) !== null);
    if (good !== null) {
      const bad = [];
      for (const n of shares) {
        if (good.includes(n)) continue;
        if ((await tryCombine([...good.slice(1).map((g) => g.share), n.share], ref.recipient)) === null) bad.push(n);
      }
      throw new CustodyError('GUARDIAN_COMBINE_MISMATCH', `${names(bad)}: ${bad.length === 1 ? 'its share disagrees' : 'their shares disagree'} with ${names(good)}, which rebuild the identity of ${ref.recipient}: altered (checksum recomputed) or of another identity; combine without ${bad.length === 1 ? 'it' : 'them'}; nothing was written`);
    }
  }
  throw new CustodyError('GUARDIAN_COMBINE_MISMATCH', `the ${shares.length} files (${names(shares)}) do not rebuild the identity of ${ref.recipient}: at least one share's content was altered (its checksum recomputed) or belongs to another identity; nothing was written`);
}

/** The recipient of an age X25519 identity; a malformed identity is INVALID_ARGUMENT naming `what`. */
export async function recipientOf(identity: string, what: string): Promise<string> {
  if (IDENTITY_RE.test(identity)) {
    try {
      return await identityToRecipient(identity);
    } catch {
      // Falls through to the refusal: the Bech32 checksum is wrong.
    }
  }
  throw new CustodyError('INVALID_ARGUMENT', `${what} does not hold an age X25519 identity (AGE-SECRET-KEY-1...)`);
}

/** An identity file as age-keygen writes it. */
export function renderIdentityFile(identity: string, recipient: string, createdMs: number): string {
  return `# created: ${new Date(createdMs).toISOString()}\n# public key: ${recipient}\n${identity}\n`;
}

/**
 * The identity in an identity file (age-keygen format: `#` comments, blank lines, one
 * AGE-SECRET-KEY-1 line). A `# public key:` comment, if present, must match the identity.
 */
export async function parseIdentityFile(name: string, text: string): Promise<{ identity: string; recipient: string }> {
  const keys = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  if (keys.length !== 1) throw new CustodyError('INVALID_ARGUMENT', `${name}: an identity file holds exactly one AGE-SECRET-KEY-1 line, found ${keys.length} non-comment lines`);
  const identity = keys[0]!;
  const recipient = await recipientOf(identity, name);
  const claimed = /^# public key: (\S+)$/m.exec(text)?.[1];
  if (claimed !== undefined && claimed !== recipient) throw new CustodyError('INVALID_ARGUMENT', `${name}: its "# public key:" comment ${claimed} is not the identity's recipient ${recipient}`);
  return { identity, recipient };
}

