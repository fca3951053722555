/**
 * Mutual TLS material and identities. Every certificate is issued by the cluster CA
 * (`custody certs ...`); its subject CN is the holder's id and its OU its role: `node` for
 * daemons (allowed on the peer service), `operator` or `client` for people and programs using the
 * client-facing service. The TLS handshake proves the holder has the key; the handlers then check
 * that the id a peer claims in its frames is the one its certificate names.
 */
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { CustodyError } from '../proto/errors.js';

export type CertRole = 'node' | 'operator' | 'client';

export interface TlsFiles {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

export interface TlsMaterial {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
  /** CN of our own certificate. */
  readonly id: string;
  readonly role: CertRole | null;
}

export function loadTls(files: TlsFiles): TlsMaterial {
  const read = (what: string, p: string): Buffer => {
    try {
      return readFileSync(p);
    } catch (e) {
      throw new CustodyError('CONFIG_INVALID', `tls.${what}: cannot read ${p}: ${(e as Error).message}`);
    }
  };
  const ca = read('ca', files.ca);
  const cert = read('cert', files.cert);
  const key = read('key', files.key);
  let x: X509Certificate;
  let caX: X509Certificate;
  try {
    x = new X509Certificate(cert);
    caX = new X509Certificate(ca);
  } catch (e) {
    throw new CustodyError('CONFIG_INVALID', `tls: not a PEM certificate: ${(e as Error).message}`);
  }
  if (!x.checkIssued(caX) || !x.verify(caX.publicKey)) throw new CustodyError('CONFIG_INVALID', `tls.cert ${files.cert} is not issued by the CA in ${files.ca}`);
  const subj = parseSubject(x.subject);
  return { ca, cert, key, id: subj.CN ?? '', role: roleOf(subj.OU) };
}

export function serverCredentials(t: TlsMaterial): grpc.ServerCredentials {
  // checkClientCertificate=true: the handshake fails for a client without a certificate from the
  // cluster CA (a foreign CA is refused before any frame is read).
  const creds = grpc.ServerCredentials.createSsl(t.ca, [{ private_key: t.key, cert_chain: t.cert }], true);
  return withNoDelay(creds);
}

/**
 * grpc-js disables Nagle's algorithm on client sockets (grpc-node PR #2936) but not on server
 * sockets; there, a small response queued behind an unacknowledged segment waits for the peer's
 * delayed ACK (up to 40 ms on Linux), which dominated the latency of a Raft round trip. The
 * secure server's constructor options are handed to tls.createServer, whose net.Server accepts
 * `noDelay`. grpc-js is pinned exactly; the check below fails loudly if that hook ever moves.
 */
function withNoDelay(creds: grpc.ServerCredentials): grpc.ServerCredentials {
  const c = creds as unknown as { _getConstructorOptions?: () => object | null };
  const inner = c._getConstructorOptions;
  if (typeof inner !== 'function') throw new Error('grpc-js ServerCredentials no longer exposes _getConstructorOptions; revisit withNoDelay');
  c._getConstructorOptions = () => ({ ...(inner.call(creds) ?? {}), noDelay: true });
  return creds;
}

export function channelCredentials(t: TlsMaterial): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(t.ca, t.key, t.cert);
}

/** Channel options that make the client check the server's certificate names `expectedId`. */
export function identityOptions(expectedId: string): grpc.ChannelOptions {
  return { 'grpc.ssl_target_name_override': expectedId, 'grpc.default_authority': expectedId };
}

export interface PeerIdentity {
  readonly id: string;
  readonly role: CertRole | null;
}

/** Identity from the verified client certificate of a server call, or null. */
/** What grpc-js exposes of a call's TLS session (its AuthContext). */
export interface HasAuthContext {
  getAuthContext(): { sslPeerCertificate?: PeerCertificate } | null;
}

export function callIdentity(call: HasAuthContext): PeerIdentity | null {
  const cert = call.getAuthContext()?.sslPeerCertificate;
  if (!cert || !cert.subject) return null;
  const cn = cert.subject.CN;
  const ou = cert.subject.OU;
  const id = Array.isArray(cn) ? undefined : cn;
  if (!id) return null;
  return { id, role: roleOf(Array.isArray(ou) ? undefined : ou) };
}

function roleOf(ou: string | undefined): CertRole | null {
  return ou === 'node' || ou === 'operator' || ou === 'client' ? ou : null;
}

function parseSubject(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of s.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}
