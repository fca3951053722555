/**
 * `custody admin act ...` and `custody admin key show`: signing acts that carry their transaction.
 *
 *   act submit   the custodian signs a request here with their custodian key (--custodian-key:
 *                the transaction file (PSBT, Solana message, raw bytes), the key, a fresh request
 *                id, the time) and hands it to the node; the node derives the act from it (asset,
 *                amount, destinations, display digest, the digest of the messages to sign) with
 *                the custodian as initiator, and every node and kernel checks the signature against
 *                the roster (ledger/act-request-check.ts). --amount / --to / --asset, signed into
 *                the request, only double-check: a value the transaction does not say is refused
 *                TX_DECLARED_MISMATCH before anything reaches the ledger.
 *   act propose  the same act put up for approval first (an ActApproved decision in the book).
 *   act approve  an approver signs what it was shown: see verifiedApproval.
 *   act show     the facts (outputs with addresses and amounts in asset units, fee, network,
 *                change, the messages), the ledger's verdict and rule, and once executed the
 *                signed transaction.
 *
 * What an approver signs, and why it is the transaction it saw (threat: the node serving the CLI,
 * or whoever proposed the decision, shows one transaction and asks for an approval of another):
 *
 *   node ── decision body (actCid, displayHash) + act (keyId, epoch, initiator, kind, tx)
 *        ── key (group key, scheme, network) + asset table
 *   CLI  ── re-derives the act's fields from tx locally (ledger/tx/act.ts, the ledger's own code)
 *        ── actCid(rebuilt act) == body.actCid   else BINDING_MISMATCH (not the act approved)
 *        ── facts.displayHash == body.displayHash else BINDING_MISMATCH (not the display shown)
 *        ── prints facts.display, then signs the body (Ed25519, the approver's key never leaves)
 *
 * The act's cid covers the key, the transaction and every derived field (display digest included,
 * and the display names the group key and renders amounts with the table's decimals), so a node
 * that lies about the key, the table or the transaction makes the rebuilt cid differ; the ledger
 * re-derives the display digest itself and refuses an approval of any other (BINDING_MISMATCH).
 */
import { createPrivateKey, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Argv } from 'yargs';
import { CustodyError } from '../../proto/errors.js';
import { bytesEqual, decode, fromHex, toHex } from '../../ledger/encoding.js';
import { decisionBodyFromCbor, decisionCid, decisionSigningBytes, ed25519Sign, type DecisionBody } from '../../ledger/decision.js';
import { actCid, type Act } from '../../ledger/events.js';
import { REQUEST_ID_RE } from '../../ledger/act-request.js';
import { deriveActFields, requireDeclaredMatch } from '../../ledger/tx/act.js';
import { NETWORKS, TX_KINDS, type AssetTable, type KeyContext, type Network, type TxFacts, type TxKind } from '../../ledger/tx/types.js';
import type { KeyScheme } from '../../ledger/decision.js';
import type { ActView, AdminClient, AssetView, DecisionReply, KeyView } from '../admin/client.js';
import { connOptions, out, readApproverKey, run, signingKeyId, type Cmd, type Conn } from './admin.js';

// -------------------------------------------------------------------------------------------------
// Transaction files
// -------------------------------------------------------------------------------------------------

const PSBT_MAGIC = Buffer.from('psbt\xff', 'latin1');

/**
 * A transaction file as `custody tx` writes it (binary). A PSBT may also be base64 text, the form
 * wallets export (it starts "cHNidP8").
 */
export function readTxFile(kind: TxKind, path: string): Uint8Array {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new CustodyError('INVALID_ARGUMENT', `${path}: ${(e as Error).message}`);
  }
  if (kind === 'btc-psbt' && !bytes.subarray(0, 5).equals(PSBT_MAGIC)) {
    const text = bytes.toString('latin1').trim();
    if (/^cHNidP8[A-Za-z0-9+/=]*$/.test(text)) return new Uint8Array(Buffer.from(text, 'base64'));
  }
  if (bytes.length === 0) throw new CustodyError('INVALID_ARGUMENT', `${path} is empty`);
  return new Uint8Array(bytes);
}

export interface TxFileArgs { psbt?: string; solana?: string; raw?: string }

export function txFileOptions<T>(y: Argv<T>): Argv<T & TxFileArgs> {
  return y
    .option('psbt', { type: 'string', describe: 'the unsigned transaction: a PSBT (binary, or base64 text) spending the key\'s Taproot outputs' })
    .option('solana', { type: 'string', describe: 'the unsigned transaction: a Solana message (binary) paid for by the key' })
    .option('raw', { type: 'string', describe: 'raw bytes to sign as they are (never auto-allowed by policy)' })
    .conflicts('psbt', ['solana', 'raw'])
    .conflicts('solana', 'raw') as unknown as Argv<T & TxFileArgs>;
}

export function txFromArgs(a: TxFileArgs): { kind: TxKind; tx: Uint8Array } | null {
  if (a.psbt !== undefined) return { kind: 'btc-psbt', tx: readTxFile('btc-psbt', a.psbt) };
  if (a.solana !== undefined) return { kind: 'solana', tx: readTxFile('solana', a.solana) };
  if (a.raw !== undefined) return { kind: 'raw', tx: readTxFile('raw', a.raw) };
  return null;
}

// -------------------------------------------------------------------------------------------------
// Keys and assets as the node states them
// -------------------------------------------------------------------------------------------------

export function assetTableOf(assets: readonly AssetView[]): AssetTable {
  const t: Record<string, AssetTable[string]> = {};
  for (const a of assets) {
    if (!(NETWORKS as readonly string[]).includes(a.network)) throw new CustodyError('PAYLOAD_REJECTED', `asset ${a.symbol} names an unknown network ${a.network}`);
    t[a.symbol] = { symbol: a.symbol, network: a.network as Network, onChain: a.mint === '' ? 'native' : { mint: a.mint }, decimals: a.decimals };
  }
  return t;
}

export function keyContextOfView(k: KeyView): KeyContext {
  if (k.publicKey === '') throw new CustodyError('KEY_NOT_PUBLISHED', `key ${k.id} has no group key yet`);
  if (!(NETWORKS as readonly string[]).includes(k.network)) throw new CustodyError('PAYLOAD_REJECTED', `key ${k.id} names an unknown network ${k.network}`);
  return { keyId: k.id, scheme: k.scheme as KeyScheme, groupKey: fromHex(k.publicKey), network: k.network as Network };
}

export async function keyAndAssets(c: AdminClient, keyId: string): Promise<{ key: KeyView; context: KeyContext; assets: AssetTable }> {
  const s = await c.status();
  const key = s.keys.find((k) => k.id === keyId);
  if (key === undefined) throw new CustodyError('UNKNOWN_KEY', `no key ${keyId}`);
  return { key, context: keyContextOfView(key), assets: assetTableOf(s.assets) };
}

// -------------------------------------------------------------------------------------------------
// What an approver signs
// -------------------------------------------------------------------------------------------------

export interface VerifiedApproval {
  readonly body: DecisionBody;
  readonly facts: TxFacts;
  readonly opId: string;
}

/**
 * Checks that the decision `d` approves (ActApproved) or releases (PublicationReleased) exactly
 * the act whose transaction the CLI re-derives here, and that its display digest is the digest of
 * the display re-derived from that transaction (the module comment has the argument).
 */
export async function verifiedApproval(c: AdminClient, d: DecisionReply, cid: string): Promise<VerifiedApproval> {
  const body = decisionBodyFromCbor(decode(new Uint8Array(d.bodyCbor)));
  if (toHex(decisionCid(body)) !== cid.toLowerCase()) throw new CustodyError('BINDING_MISMATCH', 'the node returned a body that is not the decision asked for');
  const a = body.action;
  if (a.kind !== 'ActApproved' && a.kind !== 'PublicationReleased') throw new CustodyError('INVALID_ARGUMENT', `decision ${cid} is a ${a.kind}, not an approval of an act`);
  const view: ActView = d.act ?? (await c.showAct(a.opId));
  if (view.opId !== a.opId) throw new CustodyError('BINDING_MISMATCH', `the node showed act ${view.opId} for a decision about ${a.opId}`);
  if (!(TX_KINDS as readonly string[]).includes(view.kind)) throw new CustodyError('TX_UNSUPPORTED', `the act carries a transaction of kind ${JSON.stringify(view.kind)}`);
  const { context, assets } = await keyAndAssets(c, view.keyId);
  const { facts, fields } = deriveActFields(view.kind as TxKind, new Uint8Array(view.tx), context, assets);
  const act: Act = { keyId: view.keyId, keyEpoch: view.keyEpoch, initiator: view.initiator, kind: view.kind as TxKind, tx: new Uint8Array(view.tx), ...fields };
  if (!bytesEqual(actCid(act), a.actCid)) {
    throw new CustodyError('BINDING_MISMATCH', `the transaction shown is not the act decision ${cid} approves (act cid ${toHex(actCid(act)).slice(0, 16)} rebuilt here, ${toHex(a.actCid).slice(0, 16)} in the decision)`);
  }
  if (!bytesEqual(facts.displayHash, a.displayHash)) {
    throw new CustodyError('BINDING_MISMATCH', `decision ${cid} names another display than the one its transaction renders here`);
  }
  return { body, facts, opId: a.opId };
}

/** Signs a verified approval after printing what is signed (on stderr, so --json stays parseable). */
export async function approveShown(c: AdminClient, d: DecisionReply, cid: string, keyFile: string): Promise<DecisionReply> {
  const key = readApproverKey(keyFile);
  const v = await verifiedApproval(c, d, cid);
  process.stderr.write(`${key.id} approves ${v.body.action.kind} of act ${v.opId}; the transaction, as re-derived here from its bytes:\n`);
  for (const line of v.facts.display.trimEnd().split('\n')) process.stderr.write(`  | ${line}\n`);
  process.stderr.write(`  display digest ${toHex(v.facts.displayHash)} (in the signed decision ${cid})\n`);
  return c.approveDecision(cid, key.id, ed25519Sign(decisionSigningBytes(v.body), key.secretKey));
}

/** The pending ActApproved (or PublicationReleased) decision about act `opId` held on the node. */
export async function approvalDecisionFor(c: AdminClient, opId: string): Promise<DecisionReply> {
  const found = (await c.listDecisions()).decisions.filter((d) => {
    if (d.state !== 'pending' && d.state !== 'approved') return false;
    const a = decisionBodyFromCbor(decode(new Uint8Array(d.bodyCbor))).action;
    return (a.kind === 'ActApproved' || a.kind === 'PublicationReleased') && a.opId === opId;
  });
  if (found.length === 0) throw new CustodyError('UNKNOWN_SESSION', `no pending approval or release decision for act ${opId} on this node`);
  if (found.length > 1) throw new CustodyError('INVALID_ARGUMENT', `${found.length} pending decisions for act ${opId}: name one with --cid (${found.map((d) => d.cid.slice(0, 16)).join(', ')})`);
  return found[0]!;
}

// -------------------------------------------------------------------------------------------------
// Printing
// -------------------------------------------------------------------------------------------------

export function formatAct(v: ActView, full = false): string {
  const lines = [`act ${v.opId}: ${v.state}${v.reason ? ` (${v.reason})` : ''}  key ${v.keyId}@${v.keyEpoch}  ${v.amountUnits || `${v.amount} base units of`} ${v.asset} -> ${v.destination || '(nothing leaves the key)'}`];
  if (v.kind) lines.push(`  ${v.kind} transaction from ${v.initiator || '?'}${v.network ? ` on ${v.network}` : ''}${v.fee ? `, fee ${v.fee}` : ''}`);
  if (v.custodian) lines.push(`  requested by custodian ${v.custodian}: request ${v.requestId}, signed at ${new Date(Number(v.requestIssuedMs)).toISOString()} (their clock)`);
  else if (v.opId !== undefined && v.state === 'Denied' && v.reason === 'REQUEST_UNSIGNED') lines.push('  no custodian request');
  for (const o of v.outputs ?? []) lines.push(`  pays ${o.address} ${o.amount} ${o.asset}${o.change ? ' (change, back to the key)' : ''}`);
  if (v.factsRefused) lines.push(`  the transaction does not parse: ${v.factsRefused}`);
  if (v.ruleAction) {
    // The engine's explanation usually starts with the rule it names; say it once.
    const by = v.rule ? `rule ${v.rule}` : 'no rule';
    lines.push(`  policy (${v.ruleAction}) ${v.ruleDetail.startsWith(by) ? v.ruleDetail : `${by}: ${v.ruleDetail}`}`);
  }
  else if (v.rule) lines.push(`  policy rule: ${v.rule}`);
  if (v.verdict) lines.push(`  ledger verdict: ${v.verdict.ok ? 'ok' : `${v.verdict.reason}: ${v.verdict.detail}`} at index ${v.verdict.index}`);
  lines.push(`  history: ${v.history.map((h) => `${h.state}@${h.index}`).join(' -> ')}`);
  if (full) {
    if (v.display) {
      lines.push('  display (re-derived from the transaction by the node):');
      for (const l of v.display.trimEnd().split('\n')) lines.push(`    | ${l}`);
      lines.push(`  display digest ${v.displayHash}; messages digest ${v.messageDigest}`);
    }
    for (const r of v.receipts) lines.push(`  receipt ${r.type} at index ${r.index}: ${r.cid}`);
  }
  (v.signatures?.length ? v.signatures : v.signature ? [v.signature] : []).forEach((s, i) => lines.push(`  signature ${i}: ${s}`));
  if (v.state === 'Executed') lines.push('  signatures: SIGNATURE_WITHHELD until the publication gate releases the act');
  if (v.signedTx) lines.push(`  signed transaction${v.txid ? ` ${v.txid}` : ''}: ${v.signedTx}`);
  if (v.confirmation) lines.push(`  confirmation: ${v.confirmation}`);
  for (const n of v.notes) lines.push(`  note ${new Date(n.atMs).toISOString()}: ${n.reason ? `${n.reason}: ` : ''}${n.text}`);
  return lines.join('\n');
}

// -------------------------------------------------------------------------------------------------
// Commands
// -------------------------------------------------------------------------------------------------

interface SubmitArgs extends Conn, TxFileArgs {
  'key-id'?: string; op?: string; asset?: string; amount?: string; to?: string[]; 'key-epoch': number; approval: string; watch: boolean;
  'custodian-key'?: string; custodian?: string;
}

const submitDescription = `submit a signing act (custodian): you sign a request for it here with your custodian key (--custodian-key; it never leaves this machine), naming the key, the transaction and a fresh request id (the act's id); the node derives the act from the transaction (asset, amount, destinations, display digest, the digest of the messages to sign) with you as initiator, and every node and every signing kernel checks your signature against the roster; the ledger admits or denies it by policy.
  --amount, --to and --asset are a double check, signed into the request: a value the transaction does not say is refused TX_DECLARED_MISMATCH; a transaction the parser refuses is refused with its TX_* code. With --approval the act is the one that approved decision names: give the same transaction, and the request id is the decision's act id.`;

/**
 * A custodian's Ed25519 signing key from a file, in one of three forms: the JSON key file of
 * `custody admin approver-key` ({"id","secretKey"}: the id comes with it), a file holding the
 * 32-byte RFC 8032 seed as 64 hex digits, or a PEM PKCS#8 Ed25519 private key
 * (`openssl genpkey -algorithm ed25519`). For the last two, --custodian names the roster id.
 */
export function readCustodianKey(path: string, id: string | undefined): { id: string; secretKey: Uint8Array } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw new CustodyError('INVALID_ARGUMENT', `${path}: ${(e as Error).message}`);
  }
  let fileId: string | undefined;
  let seed: Uint8Array;
  if (text.startsWith('{')) {
    const k = readApproverKey(path);
    fileId = k.id;
    seed = k.secretKey;
  } else if (/^[0-9a-fA-F]{64}$/.test(text)) {
    seed = fromHex(text.toLowerCase());
  } else if (text.startsWith('-----BEGIN PRIVATE KEY-----')) {
    let jwk: { crv?: string; d?: string };
    try {
      jwk = createPrivateKey(text).export({ format: 'jwk' }) as typeof jwk;
    } catch (e) {
      throw new CustodyError('INVALID_ARGUMENT', `${path}: not a PEM private key: ${(e as Error).message}`);
    }
    if (jwk.crv !== 'Ed25519' || jwk.d === undefined) throw new CustodyError('INVALID_ARGUMENT', `${path}: not an Ed25519 private key`);
    seed = new Uint8Array(Buffer.from(jwk.d, 'base64url'));
  } else {
    throw new CustodyError('INVALID_ARGUMENT', `${path}: expected a custodian key: 64 hex digits (the Ed25519 seed), a PEM PKCS#8 Ed25519 private key, or an approver-key JSON file`);
  }
  if (fileId !== undefined && id !== undefined && id !== fileId) throw new CustodyError('INVALID_ARGUMENT', `${path} is the key of ${fileId}, not of --custodian ${id}`);
  const who = id ?? fileId;
  if (who === undefined || who === '') throw new CustodyError('INVALID_ARGUMENT', `--custodian names your roster id (${path} does not say it)`);
  return { id: who, secretKey: seed };
}

function custodianOptions<T>(y: Argv<T>): Argv<T> {
  return y
    .option('custodian-key', { type: 'string', describe: 'your custodian signing key: a file holding the Ed25519 seed as 64 hex digits, a PEM PKCS#8 Ed25519 private key, or the JSON file of `custody admin approver-key --custodian`; it signs the request here and never leaves this machine' })
    .option('custodian', { type: 'string', describe: 'your roster id as a custodian (default: the id in a JSON key file)' }) as unknown as Argv<T>;
}

function declaredOf(a: SubmitArgs): { asset?: string; amount?: string; destination?: string } {
  if (a.amount !== undefined && !/^[0-9]{1,30}$/.test(a.amount)) throw new CustodyError('INVALID_ARGUMENT', '--amount is an integer in the asset\'s smallest unit (satoshi, lamport, token base unit)');
  return { ...(a.asset ? { asset: a.asset } : {}), ...(a.amount ? { amount: a.amount } : {}), ...(a.to && a.to.length > 0 ? { destination: a.to.join(' ') } : {}) };
}

function submitOptions<T>(y: Argv<T>): Argv<T & SubmitArgs> {
  return txFileOptions(connOptions(y))
    .option('key-id', { type: 'string', describe: 'the threshold key that signs (its id; command line only, never from the environment)' })
    .option('op', { type: 'string', describe: 'idempotency key of the act (default: a fresh random one, printed); re-submitting the same content returns the original result' })
    .option('asset', { type: 'string', describe: 'double check: the asset symbol the transaction moves' })
    .option('amount', { type: 'string', describe: 'double check: what the transaction pays out, change excluded, in the smallest unit' })
    .option('to', { type: 'string', array: true, describe: 'double check: the addresses paid, change excluded, in transaction order (repeat --to)' })
    .option('key-epoch', { type: 'number', default: -1, describe: 'key epoch (default: the active one)' }) as unknown as Argv<T & SubmitArgs>;
}

async function watchUntil(c: AdminClient, opId: string, json: boolean, until: string): Promise<void> {
  let printed = 0;
  const v = await c.watch(opId, (x) => {
    if (json) return out(JSON.stringify(x));
    for (const n of x.notes.slice(printed)) out(`  ${n.reason ? `${n.reason}: ` : ''}${n.text}`);
    printed = x.notes.length;
    out(`${x.opId}: ${x.state}${x.reason ? ` (${x.reason})` : ''}`);
  }, (x) => x.state === until || ['Settled', 'Denied', 'Aborted'].includes(x.state));
  if (v.state === 'Denied' || v.state === 'Aborted') throw new CustodyError((v.reason || 'INTERNAL') as never, `act ${opId} ended ${v.state}`);
}

const jsonAct = (v: ActView): string => JSON.stringify({ ...v, tx: Buffer.from(v.tx ?? []).toString('hex') }, null, 2);

export const actCommand: Cmd<object> = {
  command: 'act <action>',
  describe: 'signing acts that carry their transaction: submit, propose for approval, approve, show, watch, settle',
  builder: (y) => y
    .command<SubmitArgs>({
      command: 'submit',
      describe: submitDescription,
      builder: (y2) => custodianOptions(submitOptions(y2))
        .option('approval', { type: 'string', default: '', describe: 'cid of an approved ActApproved decision held on the node: submit the act it approves (give the same transaction and key)' })
        .option('watch', { type: 'boolean', default: false, describe: 'then follow it until Published or it ends' })
        .example('$0 admin act submit --key-id treasury-taproot --psbt pay.psbt --amount 150000 --to bcrt1p... --custodian-key cara.key --certs certs --as cara --node 127.0.0.1:7201 --node-id n1', 'sign and submit a PSBT, double-checking what it pays'),
      handler: run(async (c, a) => {
        const t = txFromArgs(a);
        if (t === null) throw new CustodyError('INVALID_ARGUMENT', 'give the transaction (--psbt, --solana or --raw): the request you sign carries it');
        const keyId = signingKeyId(a, '--key-id names the threshold key that signs');
        if (a['custodian-key'] === undefined) throw new CustodyError('REQUEST_UNSIGNED', 'an act is a custodian\'s signed request: give --custodian-key (and --custodian unless the key file names you)');
        const custodian = readCustodianKey(a['custodian-key'], a.custodian);
        let requestId = a.op;
        if (a.approval !== '') {
          // The approved act's id is the request id the approvers' decision names.
          const d = await c.getDecision(a.approval);
          const action = decisionBodyFromCbor(decode(new Uint8Array(d.bodyCbor))).action;
          if (action.kind !== 'ActApproved') throw new CustodyError('INVALID_ARGUMENT', `decision ${a.approval} is a ${action.kind}, not an ActApproved`);
          if (requestId !== undefined && requestId !== action.opId) throw new CustodyError('BINDING_MISMATCH', `decision ${a.approval} approves act ${action.opId}, not --op ${requestId}`);
          requestId = action.opId;
        }
        if (requestId !== undefined && !REQUEST_ID_RE.test(requestId)) throw new CustodyError('INVALID_ARGUMENT', '--op is the request id: 32 lowercase hex characters (default: a fresh random one)');
        const v = await c.submitActAs(custodian, { ...(requestId !== undefined ? { requestId } : {}), keyId, ...(a['key-epoch'] >= 0 ? { keyEpoch: a['key-epoch'] } : {}), approvalCid: a.approval, ...t, declared: declaredOf(a) });
        out(a.json ? jsonAct(v) : formatAct(v, true));
        if (a.watch) await watchUntil(c, v.opId, a.json, 'Published');
      }),
    })
    .command<SubmitArgs & { 'ttl-ms': number }>({
      command: 'propose',
      describe: 'put an act up for approval before it is submitted (custodian): the node derives it from the transaction and proposes an ActApproved decision binding the act (its id is the request id the custodian will sign, its initiator the custodian) and its display; approvers run `act approve`, then the custodian signs and submits it with `act submit --approval CID` and the same transaction',
      builder: (y2) => submitOptions(y2)
        .option('custodian', { type: 'string', describe: 'the custodian who will sign the request (default: you)' })
        .option('ttl-ms', { type: 'number', default: 0, describe: 'how long the approval stays valid (0 = 24 h)' }),
      handler: run(async (c, a) => {
        const t = txFromArgs(a);
        if (t === null) throw new CustodyError('INVALID_ARGUMENT', '--key-id and the transaction (--psbt, --solana or --raw) are required');
        const keyId = signingKeyId(a, '--key-id and the transaction (--psbt, --solana or --raw) are required');
        const opId = a.op ?? randomBytes(16).toString('hex');
        if (!REQUEST_ID_RE.test(opId)) throw new CustodyError('INVALID_ARGUMENT', '--op is the request id the custodian will sign: 32 lowercase hex characters (default: a fresh random one)');
        // The double check before anything is proposed, on the fields derived here from the bytes.
        const { context, assets } = await keyAndAssets(c, keyId);
        const { fields } = deriveActFields(t.kind, t.tx, context, assets);
        const d0 = declaredOf(a);
        requireDeclaredMatch({ ...fields, ...(d0.asset !== undefined ? { asset: d0.asset } : {}), ...(d0.amount !== undefined ? { amount: BigInt(d0.amount) } : {}), ...(d0.destination !== undefined ? { destination: d0.destination } : {}) }, fields);
        const d = await c.proposeDecision(JSON.stringify({ kind: 'ActApproved', opId, act: { keyId, kind: t.kind, tx: toHex(t.tx), ...(a['key-epoch'] >= 0 ? { keyEpoch: a['key-epoch'] } : {}), ...(a.custodian !== undefined ? { custodian: a.custodian } : {}) } }), a['ttl-ms']);
        const act = d.act;
        if (a.json) return out(JSON.stringify({ ...d, bodyCbor: d.bodyCbor.toString('hex'), act: act ? { ...act, tx: Buffer.from(act.tx).toString('hex') } : null }, null, 2));
        out(`act ${opId} proposed for approval: decision ${d.cid} (${d.approvals.length} of ${d.needed} approvals)`);
        if (act) out(formatAct(act, true));
        out(`approvers: custody admin act approve ${opId} --key-file <approver key>; then the custodian: custody admin act submit --approval ${d.cid} --key-id ${keyId} <the same transaction> --custodian-key <custodian key>`);
      }),
    })
    .command<Conn & { op?: string; cid?: string; 'key-file': string }>({
      command: 'approve [op]',
      describe: 'approve an act (approver): prints the transaction display re-derived here from the transaction\'s own bytes, checks that the decision names exactly that act and display (BINDING_MISMATCH otherwise), and signs it with your Ed25519 approver key (which never leaves this machine). Works for an ActApproved (before submission) and a PublicationReleased (an executed act held at the publication gate)',
      builder: (y2) => connOptions(y2)
        .positional('op', { type: 'string', describe: 'the act\'s id: its pending approval or release decision is looked up on the node' })
        .option('cid', { type: 'string', describe: 'the decision\'s cid (instead of the act\'s id)' })
        .option('key-file', { type: 'string', demandOption: true, describe: 'approver key file {"id","secretKey"} (see `custody admin approver-key`)' }),
      handler: run(async (c, a) => {
        if (a.cid === undefined && a.op === undefined) throw new CustodyError('INVALID_ARGUMENT', 'name the act (its id) or the decision (--cid)');
        const d = a.cid !== undefined ? await c.getDecision(a.cid) : await approvalDecisionFor(c, a.op!);
        const r = await approveShown(c, d, d.cid, a['key-file']);
        if (a.json) return out(JSON.stringify({ ...r, bodyCbor: r.bodyCbor.toString('hex'), act: null }, null, 2));
        out(`decision ${r.cid}: ${r.state}, ${r.approvals.length} of ${r.needed} approvals (${r.approvals.join(', ')})${r.verdict ? `; ledger: ${r.verdict.ok ? `applied at index ${r.verdict.index}` : `${r.verdict.reason}: ${r.verdict.detail}`}` : ''}`);
      }),
    })
    .command<Conn & { op?: string; id?: string; until: string }>({
      command: 'watch [id]',
      describe: 'follow an act as it moves (states, receipts, notes with reason codes)',
      builder: (y2) => connOptions(y2).positional('id', { type: 'string' }).option('op', { type: 'string', describe: 'the act\'s id (or give it as the argument)' })
        .option('until', { type: 'string', default: 'Settled', describe: 'stop at this state (or when the act ends)' }),
      handler: run(async (c, a) => watchUntil(c, opArg(a), a.json, a.until)),
    })
    .command<Conn & { op?: string; id?: string }>({
      command: 'show [id]',
      describe: 'one act: the transaction\'s facts as the node re-derives them (each output\'s address and amount in asset units, change, fee, network, the messages signed, the display an approval signs), the ledger\'s verdict and policy rule, history, receipts, notes, and once executed the signatures and the signed transaction (hex) ready to broadcast',
      builder: (y2) => connOptions(y2).positional('id', { type: 'string' }).option('op', { type: 'string', describe: 'the act\'s id (or give it as the argument)' }),
      handler: run(async (c, a) => {
        const v = await c.showAct(opArg(a));
        out(a.json ? jsonAct(v) : formatAct(v, true));
      }),
    })
    .command<Conn & { op?: string; id?: string; confirmation: string }>({
      command: 'settle [id]',
      describe: 'attach the external confirmation (e.g. a transaction id) to a Published act (custodian)',
      builder: (y2) => connOptions(y2).positional('id', { type: 'string' }).option('op', { type: 'string' }).option('confirmation', { type: 'string', demandOption: true }),
      handler: run(async (c, a) => out(formatAct(await c.settleAct(opArg(a), a.confirmation)))),
    })
    .demandCommand(1, 'name an act action'),
  handler: () => undefined,
};

function opArg(a: { op?: string; id?: string }): string {
  const op = a.id ?? a.op;
  if (op === undefined || op === '') throw new CustodyError('INVALID_ARGUMENT', 'name the act: its id as the argument or --op');
  return op;
}

export const keyCommand: Cmd<object> = {
  command: 'key <action>',
  describe: 'threshold keys as the ledger holds them',
  builder: (y) => y
    .command<Conn & { id: string }>({
      command: 'show <id>',
      describe: 'a key: scheme, network, status, epochs, group public key and its own address on its network (where its coins or its fee payer live)',
      builder: (y2) => connOptions(y2).positional('id', { type: 'string', demandOption: true }),
      handler: run(async (c, a) => {
        const k = (await c.status()).keys.find((x) => x.id === a.id);
        if (k === undefined) throw new CustodyError('UNKNOWN_KEY', `no key ${a.id}`);
        if (a.json) return out(JSON.stringify(k, null, 2));
        out(`key ${k.id} (${k.scheme}) on ${k.network}: ${k.status}${k.activeEpoch >= 0 ? ` at epoch ${k.activeEpoch}` : ''}; epochs ${k.epochs.join(' ')}`);
        out(`  group public key ${k.publicKey || '(not yet published)'}`);
        out(`  address ${k.address || '(none: no group key yet, or a network without addresses)'}`);
      }),
    })
    .demandCommand(1, 'name a key action'),
  handler: () => undefined,
};
