/**
 * Certificates for a cluster, issued with the `openssl` command-line tool (never hand-built
 * ASN.1): one cluster CA, and leaf certificates whose subject CN is the holder's id and whose OU
 * is its role (`node`, `operator`, `client`; see tls.ts). Operator certificates are short-lived
 * (limits.certs, node/admin/roles.ts checkOperatorDays). Node certificates carry the node id as
 * a DNS subjectAltName (peers check it) plus the IP addresses the node listens on.
 *
 * Keys are ECDSA P-256 (RFC 5480), written 0600. Serial numbers are 128 random bits
 * (CA/Browser Forum BR §7.1 asks for at least 64).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { CustodyError } from '../proto/errors.js';
import type { CertRole } from './tls.js';
import { checkOperatorDays } from './admin/roles.js';
import { certs as certLimits } from '../proto/limits.js';

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function openssl(args: string[], what: string): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.error) throw new CustodyError('INTERNAL', `${what}: cannot run openssl (${r.error.message}); install the Debian package "openssl"`);
  if (r.status !== 0) throw new CustodyError('INTERNAL', `${what}: openssl failed: ${r.stderr.trim()}`);
}

export function checkId(id: string, what: string): void {
  if (!ID_RE.test(id)) throw new CustodyError('INVALID_ARGUMENT', `${what} "${id}" must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
}

export interface Issued {
  readonly cert: string;
  readonly key: string;
}

/** Create `ca.crt` / `ca.key` in `dir` unless they exist (then they are kept, never overwritten). */
export function ensureCa(dir: string, name = 'custody cluster CA', days = 3650): Issued & { created: boolean } {
  mkdirSync(dir, { recursive: true });
  const cert = join(dir, 'ca.crt');
  const key = join(dir, 'ca.key');
  if (existsSync(cert) && existsSync(key)) return { cert, key, created: false };
  if (existsSync(cert) || existsSync(key)) throw new CustodyError('INVALID_ARGUMENT', `${dir} holds only one of ca.crt and ca.key; refusing to replace a CA`);
  openssl(
    ['req', '-x509', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', String(days), '-sha256',
      '-subj', `/O=custody/OU=ca/CN=${name.replace(/[/=]/g, '_')}`,
      '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-addext', 'subjectKeyIdentifier=hash'],
    'creating the cluster CA',
  );
  chmodSync(key, 0o600);
  return { cert, key, created: true };
}

/**
 * Issue `<id>.crt` / `<id>.key` in `dir`, signed by the CA there. `hosts` become subjectAltNames
 * (IP addresses as IP, names as DNS); a node's own id is always a DNS name.
 */
export function issue(dir: string, role: CertRole, id: string, hosts: readonly string[] = [], days: number = role === 'operator' ? certLimits.operatorDaysDefault : 825, overwrite = false): Issued & { created: boolean } {
  checkId(id, `${role} id`);
  if (role === 'operator') checkOperatorDays(days);
  const { ca, caKey } = caFiles(dir);
  const cert = join(dir, `${id}.crt`);
  const key = join(dir, `${id}.key`);
  if (!overwrite && existsSync(cert) && existsSync(key)) return { cert, key, created: false };
  const csr = join(dir, `${id}.csr`);
  try {
    createRequest(key, csr, role, id);
    signWithCa(ca, caKey, csr, cert, role, id, sanOf(id, hosts), days);
  } finally {
    rmSync(csr, { force: true });
  }
  return { cert, key, created: true };
}

function caFiles(dir: string): { ca: string; caKey: string } {
  const ca = join(dir, 'ca.crt');
  const caKey = join(dir, 'ca.key');
  if (!existsSync(ca) || !existsSync(caKey)) throw new CustodyError('INVALID_ARGUMENT', `no CA in ${dir}: run \`custody certs ca --dir ${dir}\` first`);
  return { ca, caKey };
}

/** subjectAltNames for a holder: its id as DNS, then each host (IP addresses as IP). */
function sanOf(id: string, hosts: readonly string[]): string[] {
  return [...new Set([id, ...hosts])].map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`));
}

/**
 * A new P-256 key (0600) and a certificate signing request for it: subject O=custody, OU=role,
 * CN=id, and the subjectAltNames it asks for (the CA decides what it signs: signRequest).
 */
export function createRequest(keyOut: string, csrOut: string, role: CertRole, id: string, hosts: readonly string[] = []): void {
  checkId(id, `${role} id`);
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyOut, '-out', csrOut, '-subj', `/O=custody/OU=${role}/CN=${id}`,
    ...(hosts.length > 0 ? ['-addext', `subjectAltName=${sanOf(id, hosts).join(',')}`] : [])], `creating the key of ${id}`);
  chmodSync(keyOut, 0o600);
}

function signWithCa(ca: string, caKey: string, csr: string, certOut: string, role: CertRole, id: string, san: readonly string[], days: number): void {
  const ext = `${certOut}.ext`;
  writeFileSync(ext, [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    `extendedKeyUsage=${role === 'node' ? 'serverAuth,clientAuth' : 'clientAuth'}`,
    `subjectAltName=${san.join(',')}`,
    'subjectKeyIdentifier=hash',
    'authorityKeyIdentifier=keyid',
  ].join('\n') + '\n');
  try {
    openssl(['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-days', String(days), '-sha256', '-extfile', ext, '-out', certOut], `signing the certificate of ${id}`);
  } finally {
    rmSync(ext, { force: true });
  }
}

export interface SignedRequest {
  readonly cert: string;
  readonly id: string;
  readonly san: readonly string[];
}

/**
 * The CA host's half of `custody init node`: turn a node's certificate signing request into its
 * certificate, signed by the CA in `dir`. The request must carry a valid self-signature (proof
 * that its sender holds the key), the subject O=custody, OU=node, CN=<node id>, and only DNS and
 * IP subjectAltNames; the certificate carries the node id as DNS name plus the requested names,
 * and the CA's own extensions (nothing else from the request is copied). Refuses to replace an
 * existing certificate unless `overwrite`.
 */
export function signRequest(dir: string, csr: string, certOut: string, days = 825, overwrite = false): SignedRequest {
  const { ca, caKey } = caFiles(dir);
  if (!existsSync(csr)) throw new CustodyError('INVALID_ARGUMENT', `no certificate request at ${csr}`);
  if (!overwrite && existsSync(certOut)) throw new CustodyError('INVALID_ARGUMENT', `${certOut} exists; repeat with --force to replace it`);
  const verify = spawnSync('openssl', ['req', '-in', csr, '-noout', '-verify'], { encoding: 'utf8' });
  if (verify.error) throw new CustodyError('INTERNAL', `cannot run openssl (${verify.error.message}); install the Debian package "openssl"`);
  // OpenSSL 3.0 exits 0 on a mismatching self-signature; only its "verify OK" means it verified.
  if (verify.status !== 0 || !/self-signature verify OK/.test(verify.stderr + verify.stdout)) throw new CustodyError('SIGNATURE_INVALID', `${csr} is not a certificate request with a valid self-signature: ${`${verify.stderr}${verify.stdout}`.trim()}`);
  const text = spawnSync('openssl', ['req', '-in', csr, '-noout', '-subject', '-nameopt', 'RFC2253', '-text'], { encoding: 'utf8' }).stdout;
  const subject = /^subject=(.*)$/m.exec(text)?.[1] ?? '';
  const rdn = new Map(subject.split(',').map((p) => p.split('=') as [string, string]));
  if (rdn.size !== 3 || rdn.get('O') !== 'custody' || rdn.get('OU') !== 'node' || !rdn.has('CN')) {
    throw new CustodyError('PAYLOAD_REJECTED', `${csr}: subject "${subject}" is not O=custody, OU=node, CN=<node id> (made by \`custody init node\`)`);
  }
  const id = rdn.get('CN') as string;
  try {
    checkId(id, 'node id');
  } catch (e) {
    throw new CustodyError('PAYLOAD_REJECTED', `${csr}: ${(e as CustodyError).detail}`);
  }
  const line = /X509v3 Subject Alternative Name:\s*\n\s*(.+)/.exec(text)?.[1] ?? '';
  const hosts: string[] = [];
  for (const part of line.split(',').map((x) => x.trim()).filter((x) => x.length > 0)) {
    const m = /^(DNS|IP Address):(.+)$/.exec(part);
    const h = m?.[2] ?? '';
    if (m === null || (m[1] === 'IP Address' ? isIP(h) === 0 : !HOST_RE.test(h))) throw new CustodyError('PAYLOAD_REJECTED', `${csr}: subjectAltName "${part}" is not a DNS name or an IP address`);
    hosts.push(h);
  }
  const san = sanOf(id, hosts);
  signWithCa(ca, caKey, csr, certOut, 'node', id, san, days);
  return { cert: certOut, id, san };
}

/** A DNS host name (RFC 1123 labels). */
export const HOST_RE = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
