/**
 * `custody admin policy ...`: the act policy of a running cluster.
 *
 *   show                   the policy in force, as canonical YAML
 *   diff --file F          what proposing F would change (a line diff of the canonical YAML)
 *   propose --file F       a PolicyChanged decision for the approvers to sign, through the same
 *                          approval book as every governance decision (`admin decision approve`)
 *   review --cid C         what a pending PolicyChanged decision installs, read from the exact
 *                          bytes the approvers sign: its canonical YAML and the diff from now
 *   test --act A           a dry run of admission: which rule an act would match, and why
 *
 * A policy file is read and checked here with the same strict reader the ledger uses
 * (ledger/policy-engine/yaml.ts) against the ledger's asset table, so a file this command accepts
 * is a document every node accepts; what travels is its canonical CBOR.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Argv } from 'yargs';
import { CustodyError } from '../../proto/errors.js';
import { LEDGER_ASSETS } from '../../ledger/asset-table.js';
import { decode, fromHex, toHex } from '../../ledger/encoding.js';
import { decisionBodyFromCbor, decisionCid } from '../../ledger/decision.js';
import { decodeDocument, diffPolicies, encodeDocument, parsePolicyYaml, renderPolicyYaml, type PolicyDocument } from '../../ledger/policy-engine/index.js';
import type { AdminClient } from '../admin/client.js';
import { connOptions, out, run, type Cmd, type Conn } from './admin.js';

function readPolicyFile(path: string): PolicyDocument {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CustodyError('INVALID_ARGUMENT', `${path}: ${(e as Error).message}`);
  }
  return parsePolicyYaml(text, LEDGER_ASSETS);
}

async function inForce(c: AdminClient): Promise<{ doc: PolicyDocument; yaml: string; epoch: number; head: string }> {
  const r = await c.getPolicy();
  return { doc: decodeDocument(new Uint8Array(r.documentCbor), LEDGER_ASSETS), yaml: r.yaml, epoch: r.governanceEpoch, head: r.governanceHead };
}

/** The act file of `policy test`: {keyId, kind, txHex | txFile, initiator?}; txFile is relative to the act file. */
export function readActFile(path: string): { keyId: string; kind: string; tx: Uint8Array; initiator?: string } {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new CustodyError('INVALID_ARGUMENT', `${path}: ${(e as Error).message}`);
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new CustodyError('INVALID_ARGUMENT', `${path}: expected a JSON object {keyId, kind, txHex | txFile, initiator?}`);
  const text = (k: string): string => {
    if (typeof o[k] !== 'string' || (o[k] as string).length === 0) throw new CustodyError('INVALID_ARGUMENT', `${path}: ${k} is required (a string)`);
    return o[k] as string;
  };
  const unknown = Object.keys(o).filter((k) => !['keyId', 'kind', 'txHex', 'txFile', 'initiator'].includes(k));
  if (unknown.length > 0) throw new CustodyError('INVALID_ARGUMENT', `${path}: unexpected field ${unknown.join(', ')}`);
  if ((o.txHex === undefined) === (o.txFile === undefined)) throw new CustodyError('INVALID_ARGUMENT', `${path}: give exactly one of txHex and txFile`);
  let tx: Uint8Array;
  if (o.txHex !== undefined) {
    const hex = text('txHex');
    if (!/^([0-9a-fA-F]{2})+$/.test(hex)) throw new CustodyError('INVALID_ARGUMENT', `${path}: txHex must be hex`);
    tx = fromHex(hex.toLowerCase());
  } else {
    const file = resolve(dirname(path), text('txFile'));
    try {
      tx = new Uint8Array(readFileSync(file));
    } catch (e) {
      throw new CustodyError('INVALID_ARGUMENT', `${file}: ${(e as Error).message}`);
    }
  }
  return { keyId: text('keyId'), kind: text('kind'), tx, ...(o.initiator !== undefined ? { initiator: text('initiator') } : {}) };
}

const show: Cmd<Conn> = {
  command: 'show',
  describe: 'print the act policy in force as canonical YAML (the form `diff` and `propose` compare against)',
  builder: (y) => connOptions(y) as Argv<Conn>,
  handler: run(async (c, a) => {
    const p = await inForce(c);
    if (a.json) return out(JSON.stringify({ governanceEpoch: p.epoch, governanceHead: p.head, documentCborHex: toHex(encodeDocument(p.doc)), yaml: p.yaml }, null, 2));
    out(`# act policy in force at governance epoch ${p.epoch} (head ${p.head.slice(0, 16)})\n${p.yaml.replace(/\n$/, '')}`);
  }),
};

const diff: Cmd<Conn & { file: string }> = {
  command: 'diff',
  describe: 'show what proposing --file would change: a line diff of the canonical YAML ("- " in force only, "+ " in the file only)',
  builder: (y) => connOptions(y).option('file', { type: 'string', demandOption: true, describe: 'a YAML policy document (cluster-configs/policy.example.yaml shows the format)' }) as Argv<Conn & { file: string }>,
  handler: run(async (c, a) => {
    const next = readPolicyFile(a.file);
    const now = await inForce(c);
    const lines = diffPolicies(now.doc, next, LEDGER_ASSETS);
    const changed = lines.filter((l) => !l.startsWith('  '));
    if (a.json) return out(JSON.stringify({ changed: changed.length > 0, diff: lines }, null, 2));
    out(changed.length === 0 ? `${a.file} is the policy in force (no change)` : lines.join('\n'));
  }),
};

const propose: Cmd<Conn & { file: string; 'ttl-ms': number }> = {
  command: 'propose',
  describe: 'put --file up as a PolicyChanged decision; approvers sign it with `custody admin decision approve --cid <cid>`, and at quorum it takes effect for the next act',
  builder: (y) => connOptions(y)
    .option('file', { type: 'string', demandOption: true, describe: 'a YAML policy document; checked here exactly as the ledger will check it' })
    .option('ttl-ms', { type: 'number', default: 0, describe: 'how long the decision stays valid for signatures (0 = 24 h)' }) as Argv<Conn & { file: string; 'ttl-ms': number }>,
  handler: run(async (c, a) => {
    const next = readPolicyFile(a.file);
    const now = await inForce(c);
    const lines = diffPolicies(now.doc, next, LEDGER_ASSETS);
    if (lines.every((l) => l.startsWith('  '))) throw new CustodyError('INVALID_ARGUMENT', `${a.file} is the policy in force; nothing to propose`);
    const d = await c.proposeDecision(JSON.stringify({ kind: 'PolicyChanged', policy: toHex(encodeDocument(next)) }), a['ttl-ms']);
    if (a.json) return out(JSON.stringify({ cid: d.cid, state: d.state, diff: lines }, null, 2));
    out(`decision ${d.cid}: PolicyChanged ${d.state} (${d.approvals.length} of ${d.needed} approvals)`);
    out(lines.filter((l) => !l.startsWith('  ')).join('\n'));
    out(`approvers read it with: custody admin policy review --cid ${d.cid}`);
    out(`and sign it with: custody admin decision approve --cid ${d.cid} --key-file <approver key>`);
  }),
};

const review: Cmd<Conn & { cid: string }> = {
  command: 'review',
  describe: 'before signing a PolicyChanged decision: the policy it installs, decoded from the exact body its cid names, and the diff from the policy in force',
  builder: (y) => connOptions(y).option('cid', { type: 'string', demandOption: true, describe: 'the decision\'s cid' }) as Argv<Conn & { cid: string }>,
  handler: run(async (c, a) => {
    const d = await c.getDecision(a.cid);
    // Read only what is signed: the body must hash to the cid that was asked for.
    const body = decisionBodyFromCbor(decode(new Uint8Array(d.bodyCbor)));
    if (toHex(decisionCid(body)) !== a.cid.toLowerCase()) throw new CustodyError('BINDING_MISMATCH', 'the node returned a body that is not the decision asked for');
    if (body.action.kind !== 'PolicyChanged') throw new CustodyError('INVALID_ARGUMENT', `decision ${a.cid} is ${body.action.kind}, not PolicyChanged`);
    const now = await inForce(c);
    const lines = diffPolicies(now.doc, body.action.policy, LEDGER_ASSETS);
    if (a.json) return out(JSON.stringify({ cid: d.cid, state: d.state, governanceEpoch: body.governanceEpoch, yaml: renderPolicyYaml(body.action.policy, LEDGER_ASSETS), diff: lines }, null, 2));
    out(`decision ${d.cid}: PolicyChanged for governance epoch ${body.governanceEpoch}, ${d.state} (${d.approvals.length} of ${d.needed} approvals)`);
    out(`what it changes (- in force now, + after):\n${lines.filter((l) => !l.startsWith('  ')).join('\n') || '(nothing)'}`);
    out(`\nthe policy it installs:\n${renderPolicyYaml(body.action.policy, LEDGER_ASSETS).replace(/\n$/, '')}`);
  }),
};

const test: Cmd<Conn & { act: string }> = {
  command: 'test',
  describe: 'dry-run admission of a transaction against the ledger as it stands (no approvals, nothing recorded): the verdict, the rule that matched and why, matcher by matcher',
  builder: (y) => connOptions(y)
    .option('act', { type: 'string', demandOption: true, describe: 'JSON file {"keyId", "kind": "btc-psbt"|"solana"|"raw", "txHex" or "txFile" (relative to this file), "initiator"? (default: you)}' }) as Argv<Conn & { act: string }>,
  handler: run(async (c, a) => {
    const r = await c.testPolicy(readActFile(a.act));
    if (a.json) return out(JSON.stringify(r, null, 2));
    const by = r.ruleId === '' ? 'no rule (default deny)' : `rule ${r.ruleId}`;
    out(r.allowed ? `ADMITTED by ${by}` : `REFUSED ${r.reason} by ${by}`);
    out(`  ${r.detail}`);
    out(`judged at ${new Date(r.atMs).toISOString()} (ledger clock)\n\n${r.explanation}\n\n${r.display.replace(/\n$/, '')}`);
  }),
};

export const adminPolicyCommand: Cmd<object> = {
  command: 'policy <command>',
  describe: 'the act policy: show the one in force, diff, propose or review a new one, test which rule an act would match',
  builder: (y) => y.command(show).command(diff).command(propose).command(review).command(test).demandCommand(1, 'name a policy command: show, diff, propose, review, test') as Argv<object>,
  handler: () => undefined,
};
