/**
 * `custody evidence verify [--trust POLICY] <bundle.json> [<older-or-newer.json>]`: checks evidence
 * bundles offline, with no cluster. Prints the verified chain and exits 0, or names the first
 * broken link with its reason code and exits 3 (through the CLI's CustodyError handler).
 *
 * With --trust (a trust policy file, ledger/tlog/trust-policy.ts, as `custody admin trust export`
 * writes it), a bundle must be a proven one (custody-ledger/evidence/v2,
 * node/lifecycle/evidence-proof.ts): its checkpoint cosigned by a quorum of the policy's node
 * keys, each of its entries included under that checkpoint, and everything it claims derived
 * from those entries. Given two bundles, their checkpoints must also lie on one append-only
 * history (an RFC 9162 consistency proof carried by the newer one, or equal roots).
 *
 * Without --trust (and for v1 bundles, custody-ledger/evidence/v1), the bundle is checked by
 * itself and the verdict says so: it is self-vouched, since whoever made it chose its roster,
 * keys and receipts.
 *
 * The v1 verdict names the policy rule that admitted the act, as the AdmissionReceipt records it.
 * Links, in order: 0 the bundle itself (format, act, approval, and the custodian's signed request
 * for the act, checked against the bundle's roster), 1 AdmissionReceipt,
 * 2 PermitReceipt, 3 PublicationReceipt (ledger/receipts.ts), then, when the bundle carries one,
 * the signature block (the released signature verifies under the group key and is the one the
 * PublicationReceipt names; for ed25519 it was aggregated over the listed signing set;
 * node/lifecycle/evidence.ts).
 */
import { readFileSync } from 'node:fs';
import type { CommandModule } from 'yargs';
import { CustodyError } from '../../proto/errors.js';
import type { ReasonCode } from '../../proto/reasons.js';
import { verifyEvidenceBundle } from '../../ledger/receipts.js';
import { actRequestFromCbor } from '../../ledger/act-request.js';
import { decode, fromHex } from '../../ledger/encoding.js';
import { verifyBundleSignature, type Bundle } from '../lifecycle/evidence.js';
import { PROVEN_BUNDLE_FORMAT, verifyConsistentBundles, verifyProvenText, type ProvenBundle } from '../lifecycle/evidence-proof.js';
import { verifyPolicyChain } from '../../ledger/tlog/trust-policy.js';
import { tlog as limits } from '../../proto/limits.js';

export type EvidenceVerdict =
  | { readonly ok: true; readonly opId: string; readonly clusterId: string; readonly links: readonly string[]; readonly rule: string | null }
  | { readonly ok: false; readonly link: number; readonly name: string; readonly reason: ReasonCode; readonly detail: string };

/** Verifies a parsed bundle: the receipt chain first, then the signature block if present. */
export function verifyEvidence(bundle: unknown): EvidenceVerdict {
  const chain = verifyEvidenceBundle(bundle);
  if (!chain.ok) return chain;
  const b = bundle as Bundle;
  // verifyEvidenceBundle checked the request against the bundle's roster: name who signed it.
  const custodian = actRequestFromCbor(decode(fromHex(b.request as string))).body.custodian;
  const links = [`request signed by custodian ${custodian} (roster of governance epoch ${String(b.rosterEpoch)})`, ...chain.links];
  if (b.signature !== undefined) {
    const s = verifyBundleSignature(b);
    if (!s.ok) return { ok: false, link: chain.links.length + 1, name: 'signature', reason: s.reason, detail: s.detail };
    links.push('signature');
    const signers = b.signature.signers;
    if (signers !== undefined) links.push(`signers ${signers.map((m) => m.node).join('+')} (${b.signature.ciphersuite === 'ed25519' ? 'the signature\'s R is their group commitment' : 'listed; the ledger fixed them'})`);
  }
  return { ok: true, opId: b.opId, clusterId: b.clusterId, links, rule: chain.ruleId };
}

function readText(path: string, what: string, max: number): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CustodyError('INVALID_ARGUMENT', `cannot read ${what} ${path}: ${(e as Error).message}`);
  }
  if (Buffer.byteLength(text) > max) throw new CustodyError('LIMIT_EXCEEDED', `${what} ${path} is longer than ${max} bytes`);
  return text;
}

function readBundle(path: string): unknown {
  const text = readText(path, 'bundle', limits.evidenceBundleBytesMax);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CustodyError('PAYLOAD_REJECTED', `link 0 (bundle): not JSON: ${(e as Error).message}`);
  }
}

/** Reads and verifies a bundle file by itself (self-vouched); throws CustodyError naming the first broken link. */
export function verifyEvidenceFile(path: string): Extract<EvidenceVerdict, { ok: true }> {
  const parsed = readBundle(path);
  // A v2 bundle carries the v1 fields: checked by themselves, they say as much as a v1 bundle.
  const asV1 = parsed !== null && typeof parsed === 'object' && (parsed as { format?: unknown }).format === PROVEN_BUNDLE_FORMAT ? { ...(parsed as object), format: 'custody-ledger/evidence/v1' } : parsed;
  const v = verifyEvidence(asV1);
  if (!v.ok) throw new CustodyError(v.reason, `link ${v.link} (${v.name}) is broken: ${v.detail}`);
  return v;
}

export interface TrustedVerdict {
  readonly policy: { readonly origin: string; readonly serial: number; readonly blocks: number };
  readonly bundles: readonly { readonly file: string; readonly opId: string; readonly outcome: string; readonly size: number; readonly lines: readonly string[] }[];
  readonly consistency: string | null;
}

/** Verifies one or two proven bundles against a trust policy file; throws CustodyError at the first failure. */
export function verifyWithTrust(policyPath: string, files: readonly string[], genesisPath?: string): TrustedVerdict {
  const pinned = genesisPath === undefined ? undefined : readText(genesisPath, 'pinned genesis policy', limits.policyBytesMax);
  const chain = verifyPolicyChain(readText(policyPath, 'trust policy', limits.policyChainBytesMax), pinned);
  const verified = files.map((file) => {
    const v = verifyProvenText(readText(file, 'bundle', limits.evidenceBundleBytesMax), chain.policy);
    if (!v.ok) throw new CustodyError(v.reason, `${file}: ${v.step}: ${v.detail}`);
    return { file, bundle: v.bundle as ProvenBundle, v };
  });
  let consistency: string | null = null;
  if (verified.length === 2) {
    const [a, b] = verified as [typeof verified[0], typeof verified[0]];
    consistency = verifyConsistentBundles({ bundle: a.bundle, checkpoint: a.v.checkpoint }, { bundle: b.bundle, checkpoint: b.v.checkpoint });
  }
  return {
    policy: { origin: chain.policy.origin, serial: chain.policy.serial, blocks: chain.length },
    bundles: verified.map(({ file, v }) => ({ file, opId: v.opId, outcome: v.outcome.state, size: v.checkpoint.size, lines: v.lines })),
    consistency,
  };
}

const verify: CommandModule<object, { bundle: string; other?: string; trust?: string; genesis?: string; json: boolean }> = {
  command: 'verify <bundle> [other]',
  describe: 'verify an evidence bundle offline: exit 0 if every link holds, else name the first broken link and exit 3; with --trust, against the cluster\'s trust policy (and, given two bundles, that their checkpoints are one append-only history)',
  builder: (y) =>
    y
      .positional('bundle', { type: 'string', demandOption: true, describe: 'path of the bundle (JSON)' })
      .positional('other', { type: 'string', describe: 'a second proven bundle of the same cluster (with --trust): checks the consistency of the two checkpoints' })
      .option('trust', { type: 'string', describe: 'the cluster\'s trust policy file (custody admin trust export); without it the bundle only vouches for itself' })
      .option('genesis', { type: 'string', describe: 'the genesis policy you pinned (the first block of an earlier export): the --trust file must start with exactly it' })
      .option('json', { type: 'boolean', default: false, describe: 'print the verdict as JSON' }) as never,
  handler: (a) => {
    if (a.trust === undefined) {
      if (a.genesis !== undefined) throw new CustodyError('INVALID_ARGUMENT', '--genesis pins the genesis of a --trust policy: pass --trust');
      if (a.other !== undefined) throw new CustodyError('INVALID_ARGUMENT', 'two bundles are compared only against a trust policy: pass --trust');
      const v = verifyEvidenceFile(a.bundle);
      process.stdout.write(a.json
        ? `${JSON.stringify({ ...v, trust: 'self-vouched' })}\n`
        : `ok: act ${v.opId} of cluster ${v.clusterId}, admitted by ${v.rule === null ? 'no named rule' : `policy rule ${v.rule}`}: ${v.links.join(' -> ')}\n`
          + 'self-vouched: the bundle agrees with itself; its roster, keys and receipts are its own word (verify with --trust <policy> for proof under the cluster\'s cosigned log)\n');
      return;
    }
    const v = verifyWithTrust(a.trust, a.other === undefined ? [a.bundle] : [a.bundle, a.other], a.genesis);
    if (a.json) {
      process.stdout.write(`${JSON.stringify(v)}\n`);
      return;
    }
    for (const b of v.bundles) process.stdout.write(`ok: act ${b.opId} (${b.outcome}) proven under ${v.policy.origin} (trust policy serial ${v.policy.serial}): ${b.lines.join('; ')}\n`);
    if (v.consistency !== null) process.stdout.write(`ok: consistent: ${v.consistency}\n`);
  },
};

export const evidenceCommand: CommandModule<object, object> = {
  command: 'evidence',
  describe: 'evidence bundles of signing acts (offline verification)',
  builder: (y) => y.command(verify).demandCommand(1, 'name an evidence command') as never,
  handler: () => {},
};
