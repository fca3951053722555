/**
 * Certificates for a cluster, issued with the `openssl` command-line tool (never hand-built
 * ASN.1): one cluster CA, and leaf certificates whose subject CN is the holder's id and whose OU
 * is its role (`node`, `operator`, `client`; see tls.ts). Node certificates carry the node id as
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
export function issue(dir: string, role: CertRole, id: string, hosts: readonly string[] = [], days = 825, overwrite = false): Issued & { created: boolean } {
  checkId(id, `${role} id`);
  const ca = join(dir, 'ca.crt');
  const caKey = join(dir, 'ca.key');
  if (!existsSync(ca) || !existsSync(caKey)) throw new CustodyError('INVALID_ARGUMENT', `no CA in ${dir}: run \`custody certs ca --dir ${dir}\` first`);
  const cert = join(dir, `${id}.crt`);
  const key = join(dir, `${id}.key`);
  if (!overwrite && existsSync(cert) && existsSync(key)) return { cert, key, created: false };
  const csr = join(dir, `${id}.csr`);
  const ext = join(dir, `${id}.ext`);
  const san = [...new Set([id, ...hosts])].map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
  const eku = role === 'node' ? 'serverAuth,clientAuth' : 'clientAuth';
  writeFileSync(ext, [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    `extendedKeyUsage=${eku}`,
    `subjectAltName=${san}`,
    'subjectKeyIdentifier=hash',
    'authorityKeyIdentifier=keyid',
  ].join('\n') + '\n');
  try {
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/O=custody/OU=${role}/CN=${id}`], `creating the key of ${id}`);
    chmodSync(key, 0o600);
    openssl(['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-days', String(days), '-sha256', '-extfile', ext, '-out', cert], `signing the certificate of ${id}`);
  } finally {
    rmSync(csr, { force: true });
    rmSync(ext, { force: true });
  }
  return { cert, key, created: true };
}
