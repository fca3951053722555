/**
 * Operator roles (seed 002 "Institution-Grade MPC Key Management": key generator, custodian,
 * quorum approver, auditor) and what each may do on the admin API. Separation of duties: a
 * certificate carries exactly one role, and a role may only perform its own actions.
 *
 * Where the role lives: the operator certificate from the cluster CA has OU = operator (node/tls.ts)
 * and one subjectAltName URI `urn:custody:role:<role>`. A SAN URI rather than a second OU because
 * node/tls.ts reads a single OU as the certificate's kind (node | operator | client), and because
 * subjectAltName is the extension X.509 profiles intend for identities (RFC 5280 §4.2.1.6).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { CustodyError } from '../../proto/errors.js';
import { certs as certLimits } from '../../proto/limits.js';
import type { DecisionKind } from '../../ledger/decision.js';

export const OPERATOR_ROLES = ['key-generator', 'custodian', 'approver', 'auditor'] as const;
export type OperatorRole = (typeof OPERATOR_ROLES)[number];
export const ROLE_URI_PREFIX = 'urn:custody:role:';

export function isOperatorRole(x: unknown): x is OperatorRole {
  return typeof x === 'string' && (OPERATOR_ROLES as readonly string[]).includes(x);
}

export type AdminAction = 'read' | 'propose' | 'approve' | 'submit-decision' | 'submit-act' | 'settle-act' | 'fence' | 'backup' | 'transfer-leader' | 'import-share';

const ACTIONS: { readonly [r in OperatorRole]: readonly AdminAction[] } = {
  // Importing a share recovered from its backup is part of a key's lifecycle, like proposing its
  // ceremonies; what authorizes it is the RecoveryAuthorized decision the kernel checks.
  'key-generator': ['read', 'propose', 'import-share'],
  custodian: ['read', 'propose', 'submit-act', 'settle-act'],
  approver: ['read', 'propose', 'approve', 'submit-decision', 'fence', 'transfer-leader'],
  // A backup (snapshot save) reads in bulk what an auditor may read one by one; no role that can
  // change governance or move value is needed for it, so backup jobs run with the least privilege.
  auditor: ['read', 'backup'],
};

/** Which decisions each role may put up for approval. */
const PROPOSABLE: { readonly [r in OperatorRole]: readonly DecisionKind[] | 'all' } = {
  'key-generator': ['DkgAuthorized', 'KeyActivated', 'KeyRefreshed', 'KeyReshared', 'KeyRetired'],
  custodian: ['ActApproved', 'PublicationReleased'],
  approver: 'all',
  auditor: [],
};

export interface Operator {
  readonly id: string;
  readonly role: OperatorRole;
}

export function mayDo(role: OperatorRole, action: AdminAction): boolean {
  return ACTIONS[role].includes(action);
}

export function mayPropose(role: OperatorRole, kind: DecisionKind): boolean {
  const p = PROPOSABLE[role];
  return p === 'all' || p.includes(kind);
}

export function requireAction(op: Operator, action: AdminAction, what: string): void {
  if (!mayDo(op.role, action)) throw new CustodyError('ROLE_NOT_ALLOWED', `${op.id} (${op.role}) may not ${what}`);
}

/**
 * The operator a verified client certificate names: OU operator, a CN, and exactly one role URI.
 * Anything else (no certificate, a node or client certificate, no role or two) is refused.
 */
export function operatorOf(cert: PeerCertificate | undefined): Operator {
  if (cert === undefined || cert.subject === undefined) throw new CustodyError('UNAUTHENTICATED', 'no client certificate');
  const cn = cert.subject.CN;
  const ou = cert.subject.OU;
  if (typeof cn !== 'string' || cn.length === 0) throw new CustodyError('UNAUTHENTICATED', 'the client certificate names no CN');
  if (ou !== 'operator') throw new CustodyError('ROLE_NOT_ALLOWED', `${cn}: only operator certificates may use the admin API (OU is ${String(ou)})`);
  const uris = (cert.subjectaltname ?? '').split(/,\s*/).filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
  const roles = uris.filter((u) => u.startsWith(ROLE_URI_PREFIX)).map((u) => u.slice(ROLE_URI_PREFIX.length));
  if (roles.length !== 1 || !isOperatorRole(roles[0])) {
    throw new CustodyError('ROLE_NOT_ALLOWED', `${cn}: the certificate must carry exactly one role URI ${ROLE_URI_PREFIX}{${OPERATOR_ROLES.join('|')}}`);
  }
  return { id: cn, role: roles[0] };
}

function openssl(args: string[], what: string): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.error) throw new CustodyError('INTERNAL', `${what}: cannot run openssl (${r.error.message})`);
  if (r.status !== 0) throw new CustodyError('INTERNAL', `${what}: openssl failed: ${r.stderr.trim()}`);
}

/**
 * Operator certificates are short-lived (limits.certs): a stolen one is useful for at most its
 * remaining days even if nobody revokes it, and a revocation (OperatorRevoked) needs to be kept
 * only that long. Rotation is issuing again (a new key and serial) before the old one expires.
 */
export function checkOperatorDays(days: number): void {
  if (!Number.isSafeInteger(days) || days < 1 || days > certLimits.operatorDaysMax) {
    throw new CustodyError('INVALID_ARGUMENT', `an operator certificate is valid for 1..${certLimits.operatorDaysMax} days, not ${days}`);
  }
}

/**
 * Issues `<id>.crt` / `<id>.key` in `dir` (which holds the cluster CA, node/certs.ts ensureCa):
 * ECDSA P-256, clientAuth only, OU = operator, SAN URI = the role. Uses the openssl tool like the
 * node certificates do.
 */
export function issueOperatorCert(dir: string, id: string, role: OperatorRole, days: number = certLimits.operatorDaysDefault): { cert: string; key: string } {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(id)) throw new CustodyError('INVALID_ARGUMENT', `operator id "${id}" must be 1-64 letters, digits, '.', '_' or '-'`);
  checkOperatorDays(days);
  const ca = join(dir, 'ca.crt');
  const caKey = join(dir, 'ca.key');
  if (!existsSync(ca) || !existsSync(caKey)) throw new CustodyError('INVALID_ARGUMENT', `no CA in ${dir}`);
  const cert = join(dir, `${id}.crt`);
  const key = join(dir, `${id}.key`);
  const csr = join(dir, `${id}.csr`);
  const ext = join(dir, `${id}.ext`);
  writeFileSync(ext, [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=clientAuth',
    `subjectAltName=URI:${ROLE_URI_PREFIX}${role}`,
    'subjectKeyIdentifier=hash',
    'authorityKeyIdentifier=keyid',
  ].join('\n') + '\n');
  try {
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/O=custody/OU=operator/CN=${id}`], `creating the key of ${id}`);
    chmodSync(key, 0o600);
    openssl(['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-days', String(days), '-sha256', '-extfile', ext, '-out', cert], `signing the certificate of ${id}`);
  } finally {
    rmSync(csr, { force: true });
    rmSync(ext, { force: true });
  }
  return { cert, key };
}
