/**
 * Refusing revoked certificates at the node's ports.
 *
 * Message flow: approvers sign an OperatorRevoked / NodeCertificateRevoked decision (custody admin
 * operator revoke); once the ledger applies it, every replica holds the revocation in its
 * governance state (ledger/state.ts RevocationRecord). Each port then checks, on every call, the
 * serial of the client certificate the TLS handshake verified against the revocations of the
 * ledger state this node has applied, and refuses a match with OPERATOR_REVOKED or
 * NODE_CERT_REVOKED before any handler runs.
 *
 * Why the serial: within one CA, RFC 5280 §4.1.2.2 makes (issuer, serial) unique, and the
 * cluster has one CA; serials are 128 random bits (node/certs.ts). A holder reissued under the
 * same id gets a new serial, so revoking a lost certificate does not lock its owner out.
 *
 * Trust: the check is as current as this node's applied ledger. A node that lags (or a host an
 * attacker controls) may still serve a revoked certificate; what it can do with that is bounded
 * by what the ledger accepts, since every change is a Raft entry the other nodes apply with the
 * revocation in force. Certificates are short-lived (limits.certs.operatorDaysDefault) so that a
 * revocation matters only for its remaining days, and the ledger keeps it until notAfter.
 */
import * as grpc from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import { grpcStatusOf, type ReasonCode } from '../proto/reasons.js';
import { ShapeError, canonicalSerial } from '../ledger/decision.js';
import { revocationOf, type LedgerState, type RevocationRecord } from '../ledger/state.js';
import { REASON_METADATA_KEY } from './wire.js';

export interface RevokedRefusal {
  readonly reason: ReasonCode;
  readonly detail: string;
}

/** The canonical serial of a verified peer certificate, or null if it has none readable. */
export function peerSerial(cert: PeerCertificate | undefined): string | null {
  if (cert === undefined || typeof cert.serialNumber !== 'string') return null;
  try {
    return canonicalSerial(cert.serialNumber);
  } catch (e) {
    if (e instanceof ShapeError) return null;
    throw e;
  }
}

/**
 * Whether `cert` is revoked in `state`: an operator certificate (OU operator) against the
 * operator revocations, a node certificate (OU node) against the node ones. Other certificates
 * are no business of this check (their handlers refuse them by role).
 */
export function revokedRefusal(state: LedgerState, cert: PeerCertificate | undefined): RevokedRefusal | null {
  const g = state.cluster?.governance;
  if (g === undefined || cert === undefined || cert.subject === undefined) return null;
  const ou = cert.subject.OU;
  const holder: RevocationRecord['holder'] | null = ou === 'operator' ? 'operator' : ou === 'node' ? 'node' : null;
  if (holder === null) return null;
  const serial = peerSerial(cert);
  if (serial === null) return null;
  const r = revocationOf(g, holder, serial);
  if (r === undefined) return null;
  return {
    reason: holder === 'operator' ? 'OPERATOR_REVOKED' : 'NODE_CERT_REVOKED',
    detail: `${holder} certificate ${serial} of ${r.id} was revoked at ledger index ${r.sinceIndex}: ${r.reason}`,
  };
}

/**
 * A server interceptor that ends every call of a revoked certificate before its handler runs
 * (every method of every service on the server, streams included).
 */
export function revocationInterceptor(state: () => LedgerState, onRefused?: (r: RevokedRefusal) => void): grpc.ServerInterceptor {
  return (_method, call) => new grpc.ServerInterceptingCall(call, new grpc.ResponderBuilder()
    .withStart((next) => {
      const refused = revokedRefusal(state(), call.getAuthContext()?.sslPeerCertificate);
      if (refused === null) {
        next({});
        return;
      }
      onRefused?.(refused);
      const metadata = new grpc.Metadata();
      metadata.set(REASON_METADATA_KEY, refused.reason);
      call.sendStatus({ code: grpcStatusOf(refused.reason), details: `${refused.reason}: ${refused.detail}`, metadata });
    })
    .build());
}
