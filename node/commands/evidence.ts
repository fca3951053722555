/**
 * `custody evidence verify <bundle.json>`: checks an act's evidence bundle offline, with no
 * cluster. Prints the verified chain and exits 0, or names the first broken link with its reason
 * code and exits 3 (through the CLI's CustodyError handler).
 *
 * The verdict names the policy rule that admitted the act, as the AdmissionReceipt records it.
 *
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

/** Reads and verifies a bundle file; throws CustodyError naming the first broken link. */
export function verifyEvidenceFile(path: string): Extract<EvidenceVerdict, { ok: true }> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CustodyError('INVALID_ARGUMENT', `cannot read ${path}: ${(e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new CustodyError('PAYLOAD_REJECTED', `link 0 (bundle): not JSON: ${(e as Error).message}`);
  }
  const v = verifyEvidence(parsed);
  if (!v.ok) throw new CustodyError(v.reason, `link ${v.link} (${v.name}) is broken: ${v.detail}`);
  return v;
}

const verify: CommandModule<object, { bundle: string; json: boolean }> = {
  command: 'verify <bundle>',
  describe: 'verify an evidence bundle offline: exit 0 if every link holds, else name the first broken link and exit 3',
  builder: (y) =>
    y
      .positional('bundle', { type: 'string', demandOption: true, describe: 'path of the bundle (JSON)' })
      .option('json', { type: 'boolean', default: false, describe: 'print the verdict as JSON' }) as never,
  handler: (a) => {
    const v = verifyEvidenceFile(a.bundle);
    process.stdout.write(a.json
      ? `${JSON.stringify(v)}\n`
      : `ok: act ${v.opId} of cluster ${v.clusterId}, admitted by ${v.rule === null ? 'no named rule' : `policy rule ${v.rule}`}: ${v.links.join(' -> ')}\n`);
  },
};

export const evidenceCommand: CommandModule<object, object> = {
  command: 'evidence',
  describe: 'evidence bundles of signing acts (offline verification)',
  builder: (y) => y.command(verify).demandCommand(1, 'name an evidence command') as never,
  handler: () => {},
};
