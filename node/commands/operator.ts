/**
 * `custody admin operator revoke | list`: certificate revocation through governance.
 *
 * `revoke` proposes an OperatorRevoked (or, with --node-cert, a NodeCertificateRevoked) decision through
 * the ordinary proposal flow (ProposeDecision); approvers then sign it with `custody admin decision
 * approve --cid ...` and at quorum the node submits it. Nothing is revoked before the ledger
 * applies the decision. `list` shows the revocations the ledger holds.
 */
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { CustodyError } from '../../proto/errors.js';
import { ShapeError, canonicalSerial } from '../../ledger/decision.js';
import type { DecisionReply } from '../admin/client.js';
import { connOptions, out, run, type Cmd, type Conn } from './admin.js';

/**
 * How long a revocation is kept when neither the certificate nor its notAfter is given: the
 * longest lifetime custody's own tools ever issued an operator or node certificate for (825 days).
 */
export const UNKNOWN_NOT_AFTER_DAYS = 825;

export interface RevokeArgs {
  serial?: string;
  operator?: string;
  'node-cert'?: string;
  reason: string;
  'not-after'?: string;
  'revoked-cert'?: string;
}

/** The action a `revoke` proposes, from its arguments (pure but for reading --revoked-cert). */
export function revokeAction(a: RevokeArgs, nowMs: number): Record<string, unknown> {
  if ((a.operator === undefined) === (a['node-cert'] === undefined)) throw new CustodyError('INVALID_ARGUMENT', 'name the holder: --operator <id> or --node-cert <node id> (one of them)');
  let serial = a.serial;
  let notAfterMs: number | undefined;
  const holderId = (a.operator ?? a['node-cert']) as string;
  if (a['revoked-cert'] !== undefined) {
    let x: X509Certificate;
    try {
      x = new X509Certificate(readFileSync(a['revoked-cert']));
    } catch (e) {
      throw new CustodyError('INVALID_ARGUMENT', `${a['revoked-cert']}: not a PEM certificate: ${(e as Error).message}`);
    }
    const cn = /^CN=(.*)$/m.exec(x.subject)?.[1];
    if (cn !== holderId) throw new CustodyError('BINDING_MISMATCH', `${a['revoked-cert']} names ${String(cn)}, not ${holderId}`);
    const certSerial = x.serialNumber;
    if (serial !== undefined && canonicalSerialOrThrow(serial) !== canonicalSerialOrThrow(certSerial)) throw new CustodyError('BINDING_MISMATCH', `--serial ${serial} is not the serial of ${a['revoked-cert']} (${certSerial})`);
    serial = certSerial;
    notAfterMs = Date.parse(x.validTo);
  }
  if (serial === undefined) throw new CustodyError('INVALID_ARGUMENT', 'give --serial <hex> (openssl x509 -noout -serial -in <cert>) or --revoked-cert <file>');
  if (a['not-after'] !== undefined) {
    const t = Date.parse(a['not-after']);
    if (!Number.isFinite(t)) throw new CustodyError('INVALID_ARGUMENT', `--not-after ${a['not-after']} is not a date`);
    if (notAfterMs !== undefined && t !== notAfterMs) throw new CustodyError('BINDING_MISMATCH', `--not-after differs from the certificate's notAfter ${new Date(notAfterMs).toISOString()}`);
    notAfterMs = t;
  }
  notAfterMs ??= nowMs + UNKNOWN_NOT_AFTER_DAYS * 86_400_000;
  const s = canonicalSerialOrThrow(serial);
  return a.operator !== undefined
    ? { kind: 'OperatorRevoked', serial: s, operatorId: a.operator, reason: a.reason, notAfterMs }
    : { kind: 'NodeCertificateRevoked', serial: s, nodeId: a['node-cert'], reason: a.reason, notAfterMs };
}

function canonicalSerialOrThrow(s: string): string {
  try {
    return canonicalSerial(s);
  } catch (e) {
    if (e instanceof ShapeError) throw new CustodyError('INVALID_ARGUMENT', e.message);
    throw e;
  }
}

const revoke: Cmd<Conn & RevokeArgs & { 'ttl-ms': number }> = {
  command: 'revoke',
  describe: 'propose revoking an operator certificate (or with --node-cert a node certificate); approvers approve it like any decision, and once the ledger applies it every node refuses the certificate (OPERATOR_REVOKED / NODE_CERT_REVOKED)',
  builder: (y) => (connOptions(y)
    .option('serial', { type: 'string', describe: 'the certificate serial in hex (openssl x509 -noout -serial -in <cert>)' })
    .option('operator', { type: 'string', describe: 'the operator id the certificate names' })
    .option('node-cert', { type: 'string', describe: 'instead of --operator: the node id a node certificate names (NodeCertificateRevoked)' })
    .option('reason', { type: 'string', demandOption: true, describe: 'why, recorded in the ledger' })
    .option('revoked-cert', { type: 'string', describe: 'the certificate file itself: its serial, CN and notAfter are read from it' })
    .option('not-after', { type: 'string', describe: `the certificate's notAfter (ISO date); the ledger keeps the revocation until then. Default: ${UNKNOWN_NOT_AFTER_DAYS} days from now` })
    .option('ttl-ms', { type: 'number', default: 0, describe: 'how long the decision stays open for approval (0 = 24 h)' })
    .example('$0 admin operator revoke --serial 7F3A09 --operator alice --reason "laptop lost" --node 127.0.0.1:7201 --node-id n1 --certs certs --as bob', 'propose revoking alice\'s certificate')) as never,
  handler: run(async (c, a) => {
    const d: DecisionReply = await c.proposeDecision(JSON.stringify(revokeAction(a, Date.now())), a['ttl-ms']);
    if (a.json) return out(JSON.stringify({ ...d, bodyCbor: d.bodyCbor.toString('hex') }, null, 2));
    out(`decision ${d.cid}: ${d.state}, ${d.approvals.length} of ${d.needed} approvals`);
    out(`  body: ${d.bodyJson}`);
    out(`  approvers: custody admin decision approve --cid ${d.cid} --key-file <approver key> ...`);
  }),
};

const list: Cmd<Conn> = {
  command: 'list',
  describe: 'the certificates the ledger holds as revoked (operators and nodes), until each expires',
  builder: (y) => connOptions(y),
  handler: run(async (c, a) => {
    const revoked = (await c.status()).revoked ?? [];
    if (a.json) return out(JSON.stringify(revoked, null, 2));
    if (revoked.length === 0) return out('no revoked certificates');
    for (const r of revoked) out(`${r.holder} ${r.id}: serial ${r.serial} revoked at ledger index ${r.sinceIndex} (${r.reason}); certificate valid until ${new Date(Number(r.notAfterMs)).toISOString()}`);
  }),
};

export const operatorCommand: Cmd<object> = {
  command: 'operator <action>',
  describe: 'operator certificates: revoke one through governance, list the revoked ones',
  builder: (y) => y.command(revoke).command(list).demandCommand(1, 'name an operator action'),
  handler: () => undefined,
};
