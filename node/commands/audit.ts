/**
 * `custody admin audit export`: the node's audit records (chronicle, governance, operator calls;
 * node/admin/audit.ts) for a SIEM, one per line, in JSON lines, CEF or RFC 5424 syslog
 * (node/admin/audit-format.ts), to stdout or (syslog) straight to a collector over TCP (RFC 6587
 * octet counting) or UDP (RFC 5426, one record per datagram).
 */
import { hostname } from 'node:os';
import { createConnection, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import { CustodyError } from '../../proto/errors.js';
import type { AuditRecord } from '../admin/audit.js';
import { AUDIT_FORMATS, formatRecord, octetFrame, type AuditFormat } from '../admin/audit-format.js';
import { connOptions, run, type Cmd, type Conn } from './admin.js';

/** --since: a leaf index (digits) or a date-time (ISO 8601). */
export function parseSince(s: string | undefined): { fromLeaf: number; sinceMs: number } {
  if (s === undefined) return { fromLeaf: 0, sinceMs: 0 };
  if (/^\d+$/.test(s) && Number.isSafeInteger(Number(s))) return { fromLeaf: Number(s), sinceMs: 0 };
  const ms = Date.parse(s);
  if (!Number.isFinite(ms) || ms < 0) throw new CustodyError('INVALID_ARGUMENT', `--since ${JSON.stringify(s)}: a leaf index or an ISO 8601 date-time`);
  return { fromLeaf: 0, sinceMs: ms };
}

interface Sink { write(line: string): Promise<void>; close(): Promise<void> }

async function syslogSink(to: string): Promise<Sink> {
  const m = /^(tcp|udp):\/\/(\[[0-9a-fA-F:.]+\]|[^:/\s]+):(\d{1,5})$/.exec(to);
  if (m === null) throw new CustodyError('INVALID_ARGUMENT', `--to ${JSON.stringify(to)}: tcp://HOST:PORT or udp://HOST:PORT`);
  const host = m[2]!.replace(/^\[|\]$/g, '');
  const port = Number(m[3]);
  if (m[1] === 'udp') {
    const sock = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    return {
      write: (line) => new Promise((resolve, reject) => sock.send(Buffer.from(line), port, host, (e) => (e ? reject(new CustodyError('REMOTE_TIMEOUT', `syslog ${to}: ${e.message}`)) : resolve()))),
      close: () => new Promise((resolve) => sock.close(() => resolve())),
    };
  }
  const sock: Socket = await new Promise((resolve, reject) => {
    const s = createConnection({ host, port }, () => resolve(s));
    s.once('error', (e) => reject(new CustodyError('REMOTE_TIMEOUT', `syslog ${to}: ${e.message}`)));
  });
  return {
    write: (line) => new Promise((resolve, reject) => sock.write(octetFrame(line), (e) => (e ? reject(new CustodyError('REMOTE_TIMEOUT', `syslog ${to}: ${e.message}`)) : resolve()))),
    close: () => new Promise((resolve) => sock.end(() => resolve())),
  };
}

const exportCmd: Cmd<Conn & { format: AuditFormat; since?: string; follow: boolean; to?: string; hostname?: string }> = {
  command: 'export',
  describe: 'export the audit records of the node\'s log (acts, governance, every admin API call), each with its leaf index and leaf hash in the Merkle tree',
  builder: (y) => connOptions(y)
    .option('format', { choices: AUDIT_FORMATS, default: 'jsonl' as AuditFormat, describe: 'jsonl (proto/audit.schema.json), cef (ArcSight CEF), syslog (RFC 5424, facility log audit)' })
    .option('since', { type: 'string', describe: 'start at this leaf index (digits), or at records stamped at or after this ISO 8601 date-time' })
    .option('follow', { type: 'boolean', default: false, describe: 'keep the stream open and export new records as the node applies them (stop with Ctrl-C)' })
    .option('to', { type: 'string', describe: 'syslog only: send to a collector, tcp://HOST:PORT (RFC 6587 octet counting) or udp://HOST:PORT, instead of stdout' })
    .option('hostname', { type: 'string', describe: 'syslog HOSTNAME field (default: this host\'s name)' })
    .epilogue('Each record names its leaf index and leaf hash: an auditor proves it is in the log with an inclusion proof under a cosigned checkpoint. Admin calls are recorded as OperatorCall (operator id, role, certificate serial, method, sha256 of the request, verdict, reason code).') as never,
  handler: run(async (c, a) => {
    if (a.to !== undefined && a.format !== 'syslog') throw new CustodyError('INVALID_ARGUMENT', '--to sends syslog records; add --format syslog');
    const since = parseSince(a.since);
    const host = a.hostname ?? hostname();
    const sink: Sink = a.to !== undefined ? await syslogSink(a.to) : { write: async (l) => void process.stdout.write(`${l}\n`), close: async () => {} };
    const ac = new AbortController();
    const stop = (): void => ac.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      await c.exportAudit({ ...since, follow: a.follow }, (json) => sink.write(formatRecord(JSON.parse(json) as AuditRecord, a.format, host)), ac.signal);
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      await sink.close();
    }
  }),
};

export const auditCommand: Cmd<object> = {
  command: 'audit <command>',
  describe: 'the audit trail for a SIEM: export',
  builder: (y) => y.command(exportCmd).demandCommand(1) as never,
  handler: () => undefined,
};
