/**
 * The node's YAML configuration, validated field by field: every refusal is CONFIG_INVALID and
 * names the file and the field, so an operator can fix it without reading code. Relative paths
 * are resolved against the file's own directory.
 *
 * ```yaml
 * id: n1                          # this node's id; must be a key of peers
 * dataDir: data/n1                # LevelDB store of the Raft log and the state machine
 * listen: 127.0.0.1:7101          # gRPC, mutual TLS: peer stream and client service
 * http: 127.0.0.1:8101            # plain HTTP: /metrics /healthz /readyz /status
 * peers:                          # every node's id and gRPC address: the voters (a ledger node takes its
 *                                 # voters from the genesis and decisions; then this is its address book)
 *   n1: 127.0.0.1:7101
 *   n2: 127.0.0.1:7102
 *   n3: 127.0.0.1:7103
 * tls: { ca: certs/ca.crt, cert: certs/n1.crt, key: certs/n1.key }
 * raft:                           # optional; defaults from proto/limits.ts
 *   tickMs: 100
 *   electionTicks: 10
 *   heartbeatTicks: 1
 *   snapshotEveryEntries: 10000
 *   compactionKeepEntries: 1000
 *   proposalsPerEntryMax: 1024     # client commands packed into one entry (1 = no batching)
 * ```
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse } from 'yaml';
import { CustodyError } from '../proto/errors.js';
import { node as nodeLimits, raft as raftLimits } from '../proto/limits.js';
import type { FaultSwitches, NodeId } from '../raft/core/types.js';
import { checkId } from './certs.js';

export interface NodeConfig {
  readonly file: string;
  readonly id: NodeId;
  readonly dataDir: string;
  readonly listen: string;
  readonly http: string;
  readonly peers: ReadonlyMap<NodeId, string>;
  readonly tls: { readonly ca: string; readonly cert: string; readonly key: string };
  readonly raft: {
    readonly tickMs: number;
    readonly electionTicks: number;
    readonly heartbeatTicks: number;
    readonly preVote: boolean;
    readonly checkQuorum: boolean;
    readonly snapshotEveryEntries: number;
    readonly compactionKeepEntries: number;
    readonly proposalsPerEntryMax: number;
    readonly faults: FaultSwitches;
  };
}

const RAFT_KEYS = ['tickMs', 'electionTicks', 'heartbeatTicks', 'preVote', 'checkQuorum', 'snapshotEveryEntries', 'compactionKeepEntries', 'proposalsPerEntryMax', 'faults'];
const TOP_KEYS = ['id', 'dataDir', 'listen', 'http', 'peers', 'tls', 'raft'];

export function loadConfig(file: string): NodeConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CustodyError('CONFIG_INVALID', `${file}: cannot read: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    throw new CustodyError('CONFIG_INVALID', `${file}: not valid YAML: ${(e as Error).message}`);
  }
  return validateConfig(doc, file);
}

export function validateConfig(doc: unknown, file: string): NodeConfig {
  const bad = (field: string, why: string): CustodyError => new CustodyError('CONFIG_INVALID', `${file}: ${field}: ${why}`);
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw bad('(top level)', 'must be a mapping');
  const d = doc as Record<string, unknown>;
  for (const k of Object.keys(d)) if (!TOP_KEYS.includes(k)) throw bad(k, `unknown field (expected one of ${TOP_KEYS.join(', ')})`);
  const base = dirname(resolve(file));
  const str = (v: unknown, field: string): string => {
    if (typeof v !== 'string' || v.length === 0) throw bad(field, 'required, a non-empty string');
    return v;
  };
  const path = (v: unknown, field: string): string => resolve(base, str(v, field));
  const addr = (v: unknown, field: string): string => {
    const s = str(v, field);
    const m = /^(.+):(\d{1,5})$/.exec(s);
    if (!m || Number(m[2]) > 65535) throw bad(field, `"${s}" must be host:port`);
    return s;
  };

  const id = str(d.id, 'id');
  try {
    checkId(id, 'id');
  } catch (e) {
    throw bad('id', (e as Error).message);
  }
  if (typeof d.peers !== 'object' || d.peers === null || Array.isArray(d.peers)) throw bad('peers', 'required, a mapping of node id to host:port');
  const peers = new Map<NodeId, string>();
  for (const [pid, a] of Object.entries(d.peers as Record<string, unknown>)) {
    try {
      checkId(pid, 'node id');
    } catch (e) {
      throw bad(`peers.${pid}`, (e as Error).message);
    }
    peers.set(pid, addr(a, `peers.${pid}`));
  }
  if (!peers.has(id)) throw bad('peers', `must list this node's own id "${id}"`);
  if (peers.size < 1) throw bad('peers', 'must list at least this node');
  const listen = addr(d.listen, 'listen');
  const http = addr(d.http, 'http');
  if (typeof d.tls !== 'object' || d.tls === null) throw bad('tls', 'required: { ca, cert, key } file paths');
  const tl = d.tls as Record<string, unknown>;
  const tls = { ca: path(tl.ca, 'tls.ca'), cert: path(tl.cert, 'tls.cert'), key: path(tl.key, 'tls.key') };

  const r = (d.raft ?? {}) as Record<string, unknown>;
  if (typeof r !== 'object' || Array.isArray(r)) throw bad('raft', 'must be a mapping');
  for (const k of Object.keys(r)) if (!RAFT_KEYS.includes(k)) throw bad(`raft.${k}`, `unknown field (expected one of ${RAFT_KEYS.join(', ')})`);
  const int = (k: string, def: number, min: number, max: number): number => {
    const v = r[k] ?? def;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(`raft.${k}`, `must be an integer in [${min}, ${max}]`);
    return v;
  };
  const bool = (k: string, def: boolean): boolean => {
    const v = r[k] ?? def;
    if (typeof v !== 'boolean') throw bad(`raft.${k}`, 'must be true or false');
    return v;
  };
  const tickMs = int('tickMs', raftLimits.tickMs, 1, 10_000);
  const electionTicks = int('electionTicks', raftLimits.electionTicksMin, 2, 10_000);
  const heartbeatTicks = int('heartbeatTicks', raftLimits.heartbeatTicks, 1, 10_000);
  if (heartbeatTicks >= electionTicks) throw bad('raft.heartbeatTicks', 'must be smaller than raft.electionTicks');
  const snapshotEveryEntries = int('snapshotEveryEntries', raftLimits.snapshotEveryEntries, 2, 100_000_000);
  const compactionKeepEntries = int('compactionKeepEntries', raftLimits.compactionKeepEntries, 0, 100_000_000);
  if (compactionKeepEntries >= snapshotEveryEntries) throw bad('raft.compactionKeepEntries', 'must be smaller than raft.snapshotEveryEntries');
  const proposalsPerEntryMax = int('proposalsPerEntryMax', nodeLimits.proposalsPerEntryMax, 1, nodeLimits.proposalsPerEntryMax);
  const faults = (r.faults ?? {}) as FaultSwitches;
  if (typeof faults !== 'object' || faults === null || Array.isArray(faults)) throw bad('raft.faults', 'must be a mapping');

  return {
    file: resolve(file),
    id,
    dataDir: path(d.dataDir, 'dataDir'),
    listen,
    http,
    peers,
    tls,
    raft: { tickMs, electionTicks, heartbeatTicks, preVote: bool('preVote', true), checkQuorum: bool('checkQuorum', true), snapshotEveryEntries, compactionKeepEntries, proposalsPerEntryMax, faults },
  };
}

/** The names of fault switches that are set (the daemon refuses to start with any). */
export function faultsSet(f: FaultSwitches): string[] {
  return Object.entries(f).filter(([, v]) => v !== undefined && v !== false).map(([k]) => k);
}
