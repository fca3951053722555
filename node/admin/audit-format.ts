/**
 * The SIEM formats of an audit record (audit.ts AuditRecord), one line each:
 *
 *   jsonl   the record as one JSON object (proto/audit.schema.json)
 *   cef     ArcSight Common Event Format:
 *             CEF:0|custody|custody-ledger|1|<type>|<outcome>|<severity 0-10>|<extension>
 *           header fields escape \ and |; extension values escape \ = and newlines; keys:
 *             rt (stamp, ms) cat (category) suser (actor) act (outcome) reason externalId (ledger index)
 *             cn1 leafIndex, cs1 leafHash, cs2 origin; operator records also cs3 method,
 *             cs4 certSerial, cs5 argsDigest, cs6 role, outcome (allowed | refused)
 *   syslog  RFC 5424: <PRI>1 TIMESTAMP HOSTNAME custody - <type> [custody@32473 ...] <json record>
 *           facility 13 (log audit); severity from the record (below); the structured data names
 *           origin, leafIndex, leafHash, ledgerIndex and category (SD-ID under enterprise number
 *           32473, the one RFC 5612 reserves for documentation: replace it with your own PEN if
 *           your collector routes on it). Over TCP, records are framed by octet counting
 *           (RFC 6587 §3.4.1: "<length> <record>").
 *
 * Severity (CEF 0-10 / syslog): EquivocationEvidence 9 / 2 critical; FencingRecord 7 / 3 error;
 * a refused operator call or an aborted act 5 / 4 warning; anything else 3 / 6 informational.
 */
import type { AuditRecord } from './audit.js';

export const AUDIT_FORMATS = ['jsonl', 'cef', 'syslog'] as const;
export type AuditFormat = (typeof AUDIT_FORMATS)[number];

export const SYSLOG_FACILITY_AUDIT = 13;
export const SYSLOG_SD_ID = 'custody@32473';

export function cefSeverity(r: AuditRecord): number {
  if (r.type === 'EquivocationEvidence') return 9;
  if (r.type === 'FencingRecord') return 7;
  if ((r.type === 'OperatorCall' && r.reason !== '') || r.type === 'ActAborted' || r.type === 'ActDenialRecorded') return 5;
  return 3;
}

export function syslogSeverity(r: AuditRecord): number {
  const c = cefSeverity(r);
  return c >= 9 ? 2 : c >= 7 ? 3 : c >= 5 ? 4 : 6;
}

const cefHeader = (s: string): string => s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/[\r\n]/g, ' ');
const cefValue = (s: string): string => s.replace(/\\/g, '\\\\').replace(/=/g, '\\=').replace(/\r/g, '\\r').replace(/\n/g, '\\n');

export function formatCef(r: AuditRecord): string {
  const ext: [string, string | number][] = [
    ['rt', r.stampMs], ['cat', r.category], ['suser', r.actor], ['act', r.outcome], ['reason', r.reason], ['externalId', r.ledgerIndex],
    ['cn1', r.leafIndex], ['cn1Label', 'leafIndex'], ['cs1', r.leafHash], ['cs1Label', 'leafHash'], ['cs2', r.origin], ['cs2Label', 'origin'],
  ];
  if (r.type === 'OperatorCall') {
    const e = r.event as { method: string; certSerial: string; argsDigest: string; role: string; verdict: string };
    ext.push(['cs3', e.method], ['cs3Label', 'method'], ['cs4', e.certSerial], ['cs4Label', 'certSerial'], ['cs5', e.argsDigest], ['cs5Label', 'argsDigest'], ['cs6', e.role], ['cs6Label', 'role'], ['outcome', e.verdict]);
  }
  const extension = ext.filter(([, v]) => v !== '').map(([k, v]) => `${k}=${cefValue(String(v))}`).join(' ');
  return `CEF:0|custody|custody-ledger|1|${cefHeader(r.type)}|${cefHeader(r.outcome)}|${cefSeverity(r)}|${extension}`;
}

const sdValue = (s: string): string => s.replace(/[\\"\]]/g, (c) => `\\${c}`);
/** PRINTUSASCII without spaces, at most `max` characters, or the NILVALUE. */
const header = (s: string, max: number): string => {
  const t = s.replace(/[^\x21-\x7e]/g, '').slice(0, max);
  return t === '' ? '-' : t;
};

export function formatSyslog(r: AuditRecord, hostname: string): string {
  const pri = SYSLOG_FACILITY_AUDIT * 8 + syslogSeverity(r);
  const sd = `[${SYSLOG_SD_ID} origin="${sdValue(r.origin)}" leafIndex="${r.leafIndex}" leafHash="${r.leafHash}" ledgerIndex="${r.ledgerIndex}" category="${r.category}"]`;
  return `<${pri}>1 ${r.time} ${header(hostname, 255)} custody - ${header(r.type, 32)} ${sd} ${JSON.stringify(r)}`;
}

export function formatRecord(r: AuditRecord, format: AuditFormat, hostname: string): string {
  if (format === 'jsonl') return JSON.stringify(r);
  if (format === 'cef') return formatCef(r);
  return formatSyslog(r, hostname);
}

/** RFC 6587 §3.4.1 octet-counting frame of one syslog record. */
export function octetFrame(record: string): Buffer {
  const b = Buffer.from(record, 'utf8');
  return Buffer.concat([Buffer.from(`${b.length} `), b]);
}
