/**
 * A cluster on separate hosts (README "Three hosts"): what `custody init node` writes on each
 * node host and what `custody init genesis` writes on the CA host.
 *
 * Trust flow. Private keys never leave the host that made them: each node host makes its TLS key
 * with a certificate request and its Ed25519 identity seed; only the request and the identity's
 * public key travel to the CA host. There the operator signs the request (`custody certs sign`,
 * node/certs.ts) and builds the genesis from every node's identity public key and the approvers'
 * public keys. The certificate, ca.crt and genesis.hex travel back. Nothing that travels is
 * secret; what makes it trustworthy is the operator comparing what they sign with what the host
 * printed (the node id, the addresses, the identity key), which `init node` prints and
 * `certs sign` echoes.
 *
 * Layout under --out (systemd units in cluster-configs/systemd/ expect /etc/custody):
 *   <id>.yaml               node config (node/config.ts)                         public
 *   <id>.lifecycle.yaml     lifecycle config (node/lifecycle/node.ts)            public
 *   <id>.identity           Ed25519 seed of the node's statements          0600  node user
 *   <id>.identity.pub       its public key, for the genesis                      public
 *   certs/<id>.key          TLS key (P-256)                                0600  node user
 *   certs/<id>.csr          certificate request for the CA                        public
 *   kernel/<id>.yaml        kernel config (kernel/config.ts)               0700 folder, kernel user
 *   kernel/<id>.key         the kernel's sealing key                       0600  kernel user
 *   later: certs/ca.crt, certs/<id>.crt (from the CA host), genesis.hex (from the CA host)
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { parse } from 'yaml';
import { CustodyError } from '../proto/errors.js';
import { fromHex, toHex } from '../ledger/encoding.js';
import { isAcceptablePublicKey, validateRoster, type ApproverRole } from '../ledger/decision.js';
import { LEDGER_ASSETS } from '../ledger/asset-table.js';
import { type PolicyDocument, parsePolicyYaml } from '../ledger/policy-engine/index.js';
import { encodeEvent, eventCid, type LedgerEvent } from '../ledger/events.js';
import { HOST_RE, checkId, createRequest } from './certs.js';

/** Ports every host uses (the same on each, so a peer list needs only the hosts). */
export const DEFAULT_PORTS = { raft: 7400, http: 8400, admin: 7500 } as const;

export interface InitNodeOptions {
  readonly id: string;
  readonly host: string;
  /** `id=host` entries (or comma-separated lists of them); this node is added if missing. */
  readonly peers: readonly string[];
  readonly out: string;
  readonly dataDir?: string;
  readonly kernelDataDir?: string;
  readonly kernelSocket?: string;
  /** The node daemon's group, given the kernel socket; '' keeps the socket private to one user. */
  readonly socketGroup?: string;
  readonly port?: number;
  readonly httpPort?: number;
  readonly adminPort?: number;
  readonly force?: boolean;
}

export interface InitNodeResult {
  readonly written: readonly string[];
  readonly identityPublicKey: string;
  readonly csr: string;
  readonly nextSteps: string;
}

const invalid = (field: string, why: string): CustodyError => new CustodyError('CONFIG_INVALID', `${field}: ${why}`);

function checkHost(h: string, field: string): string {
  if (isIP(h) === 0 && !HOST_RE.test(h)) throw invalid(field, `"${h}" is not an IP address or a DNS name`);
  return h;
}

function checkNodeId(id: string, field: string): string {
  try {
    checkId(id, 'node id');
  } catch (e) {
    throw invalid(field, (e as CustodyError).detail);
  }
  return id;
}

function checkPort(v: number | undefined, dflt: number, field: string): number {
  const p = v ?? dflt;
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw invalid(field, `${String(v)} is not a port in [1, 65535]`);
  return p;
}

function checkAbsolute(p: string | undefined, dflt: string, field: string): string {
  const v = p ?? dflt;
  if (!isAbsolute(v)) throw invalid(field, `"${v}" must be an absolute path (the daemons run from another folder)`);
  return v;
}

/** `id=host` entries, comma lists allowed, as a map in the given order. */
export function parseAssignments(entries: readonly string[], field: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of entries.flatMap((x) => x.split(',')).map((x) => x.trim()).filter((x) => x.length > 0)) {
    const i = e.indexOf('=');
    if (i <= 0 || i === e.length - 1) throw invalid(field, `"${e}" must be <id>=<value>`);
    const id = checkNodeId(e.slice(0, i), field);
    if (out.has(id)) throw invalid(field, `${id} is listed twice`);
    out.set(id, e.slice(i + 1));
  }
  return out;
}

/**
 * A YAML scalar that reads back as this string, in block and flow context alike: plain when it is
 * a simple word YAML reads as that string, otherwise double-quoted (JSON strings are YAML).
 */
const q = (v: string): string => (/^[A-Za-z0-9_./@-][A-Za-z0-9_./:@-]*$/.test(v) && parse(v) === v ? v : JSON.stringify(v));

function yamlMap(entries: Iterable<[string, string]>): string[] {
  return [...entries].map(([k, v]) => `  ${q(k)}: ${q(v)}`);
}

/** Writes one node host's configuration and secrets under `o.out`; never replaces a file unless `force`. */
export function initNode(o: InitNodeOptions): InitNodeResult {
  const id = checkNodeId(o.id, '--id');
  const host = checkHost(o.host, '--host');
  const ports = { raft: checkPort(o.port, DEFAULT_PORTS.raft, '--port'), http: checkPort(o.httpPort, DEFAULT_PORTS.http, '--http-port'), admin: checkPort(o.adminPort, DEFAULT_PORTS.admin, '--admin-port') };
  if (new Set(Object.values(ports)).size !== 3) throw invalid('--port', `the Raft, HTTP and admin ports must differ (${ports.raft}, ${ports.http}, ${ports.admin})`);
  const peers = parseAssignments(o.peers, '--peers');
  for (const [p, h] of peers) checkHost(h, `--peers (${p})`);
  if (peers.has(id) && peers.get(id) !== host) throw invalid('--peers', `lists ${id} at ${peers.get(id)}, but --host is ${host}`);
  if (!peers.has(id)) peers.set(id, host);
  if (peers.size < 3) throw invalid('--peers', `${peers.size} node(s): a cluster that survives one failure needs at least 3`);
  const dataDir = checkAbsolute(o.dataDir, `/var/lib/custody/${id}`, '--data-dir');
  const kernelDataDir = checkAbsolute(o.kernelDataDir, `/var/lib/custody-kernel/${id}`, '--kernel-data-dir');
  const kernelSocket = checkAbsolute(o.kernelSocket, '/run/custody-kernel/kernel.sock', '--kernel-socket');
  const group = o.socketGroup ?? 'custody';
  if (group !== '' && !/^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/.test(group)) throw invalid('--socket-group', `"${group}" is not a group name`);
  const out = resolve(o.out);

  const f = {
    node: join(out, `${id}.yaml`),
    lifecycle: join(out, `${id}.lifecycle.yaml`),
    identity: join(out, `${id}.identity`),
    identityPub: join(out, `${id}.identity.pub`),
    tlsKey: join(out, 'certs', `${id}.key`),
    csr: join(out, 'certs', `${id}.csr`),
    kernel: join(out, 'kernel', `${id}.yaml`),
    kernelKey: join(out, 'kernel', `${id}.key`),
  };
  const existing = Object.values(f).filter((p) => existsSync(p));
  if (existing.length > 0 && o.force !== true) throw invalid('--out', `would replace ${existing.join(', ')}; repeat with --force to replace them`);

  mkdirSync(join(out, 'certs'), { recursive: true, mode: 0o755 });
  mkdirSync(join(out, 'kernel'), { recursive: true, mode: 0o700 });
  chmodSync(join(out, 'kernel'), 0o700);
  const put = (path: string, lines: string[], mode: number): void => {
    writeFileSync(path, lines.join('\n') + '\n', { mode });
    chmodSync(path, mode);
  };
  const addr = (h: string, port: number): string => (isIP(h) === 6 ? `[${h}]:${port}` : `${h}:${port}`);

  put(f.node, [
    `# Node ${id} on ${host}: custody node --config ${f.node} (systemd: custody-node@${id})`,
    '# Fields: node/config.ts. Raft timing defaults come from proto/limits.ts.',
    `id: ${q(id)}`,
    `dataDir: ${q(dataDir)}`,
    `listen: ${q(addr(host, ports.raft))}`,
    `http: ${q(addr(host, ports.http))}`,
    'peers:', ...yamlMap([...peers].map(([p, h]) => [p, addr(h, ports.raft)])),
    `tls: { ca: certs/ca.crt, cert: ${q(`certs/${id}.crt`)}, key: ${q(`certs/${id}.key`)} }`,
  ], 0o644);
  put(f.lifecycle, [
    `# The lifecycle of node ${id} (node/lifecycle/node.ts): admin API, peers' admin addresses, kernel, genesis`,
    `admin: ${q(addr(host, ports.admin))}`,
    'peers:', ...yamlMap([...peers].map(([p, h]) => [p, addr(h, ports.admin)])),
    `identity: ${q(`${id}.identity`)}`,
    `kernel: { socket: ${q(kernelSocket)} }`,
    'genesis: genesis.hex',
  ], 0o644);
  const seed = randomBytes(32);
  const pub = toHex(ed25519.getPublicKey(seed));
  put(f.identity, [toHex(seed)], 0o600);
  seed.fill(0);
  put(f.identityPub, [pub], 0o644);
  put(f.kernel, [
    `# The secret kernel of node ${id}: custody kernel --config ${f.kernel} (systemd: custody-kernel@${id})`,
    '# Fields: kernel/config.ts. Secrets must be 0600 and the store folder 0700, or the kernel refuses to start.',
    `nodeId: ${q(id)}`,
    `socketPath: ${q(kernelSocket)}`,
    ...(group !== '' ? [`socketGroup: ${q(group)}          # the node daemon's group: socket 0660 in a 0750 folder`] : []),
    `storeDir: ${q(kernelDataDir)}`,
    'profile: software',
    `software: { keyFile: ${q(`${id}.key`)} }`,
    'genesisFile: ../genesis.hex',
  ], 0o644);
  put(f.kernelKey, [randomBytes(32).toString('hex')], 0o600);
  createRequest(f.tlsKey, f.csr, 'node', id, [host]);

  const nextSteps = [
    `Node ${id} at ${host}: configuration written to ${out}.`,
    `  identity public key (for the genesis): ${pub}`,
    '',
    'Next steps:',
    `  1. On the CA host, sign the request (check it names ${id} and ${host}):`,
    `       custody certs sign --dir <ca-dir> --csr ${id}.csr          # copy ${f.csr} there first`,
    `  2. On the CA host, once every node's identity key is known, write the genesis (same file for every node):`,
    `       custody init genesis --out genesis.hex --node ${[...peers.keys()].map((p) => (p === id ? `${p}=${pub}` : `${p}=<key>`)).join(' --node ')} \\`,
    '         --approver <id>=<public key> ... --threshold 2',
    `  3. Back on this host: ca.crt and ${id}.crt into ${join(out, 'certs')}/, genesis.hex into ${out}/.`,
    `  4. Owners (the units run the node as user custody and the kernel as user custody-kernel):`,
    `       chown custody: ${f.identity} ${f.tlsKey}`,
    `       chown -R custody-kernel: ${join(out, 'kernel')}`,
    `  5. systemctl enable --now custody-kernel@${id} custody-node@${id}`,
  ].join('\n');
  return { written: Object.values(f), identityPublicKey: pub, csr: f.csr, nextSteps };
}

export interface GenesisOptions {
  readonly out: string;
  /** `id=<hex public key | file holding it>` per node. */
  readonly nodes: readonly string[];
  /** `id=<hex public key | file holding it>` per approver; every approver is a governor. */
  readonly approvers: readonly string[];
  /** Approver ids who also hold the security role (may freeze). */
  readonly security?: readonly string[];
  /** `id=<hex public key | file holding it>` per custodian: role `custodian`, signs act requests, never counts toward a quorum. */
  readonly custodians?: readonly string[];
  readonly threshold?: number;
  readonly freezeThreshold?: number;
  readonly clusterId?: string;
  /** A YAML policy document (cluster-configs/policy.example.yaml); default: no rules, every act refused. */
  readonly policyFile?: string;
  readonly force?: boolean;
}

/**
 * The starting policy when none is given: a document without rules, so every act is refused
 * (default deny, POLICY_NO_RULE) until a PolicyChanged decision installs rules
 * (cluster-configs/policy.genesis.yaml is a starting point).
 */
export const CLOSED_POLICY: PolicyDocument = { version: 1, approverGroups: [], initiatorGroups: [], rules: [] };

function publicKeyOf(v: string, field: string): Uint8Array {
  let text = v;
  if (!/^[0-9a-fA-F]{64}$/.test(v)) {
    try {
      text = readFileSync(v, 'utf8').trim();
    } catch (e) {
      throw invalid(field, `"${v}" is neither 64 hex digits nor a readable file (${(e as Error).message})`);
    }
  }
  if (!/^[0-9a-fA-F]{64}$/.test(text)) throw invalid(field, `${v} does not hold a 32-byte hex public key`);
  const pk = fromHex(text.toLowerCase());
  if (!isAcceptablePublicKey(pk)) throw invalid(field, `${v} is not an acceptable Ed25519 public key`);
  return pk;
}

/** Builds the ClusterGenesis event and writes it as hex (what lifecycle and kernel configs name). */
export function makeGenesis(o: GenesisOptions): { path: string; cid: string; genesis: Extract<LedgerEvent, { type: 'ClusterGenesis' }> } {
  const nodes = parseAssignments(o.nodes, '--node');
  if (nodes.size < 1) throw invalid('--node', 'name every node: --node <id>=<identity public key>');
  const approvers = parseAssignments(o.approvers, '--approver');
  const security = new Set(o.security ?? []);
  for (const s of security) if (!approvers.has(s)) throw invalid('--security', `${s} is not an --approver`);
  const threshold = o.threshold ?? 2;
  const freezeThreshold = o.freezeThreshold ?? 1;
  const clusterId = o.clusterId ?? `cluster-${randomBytes(4).toString('hex')}`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(clusterId)) throw invalid('--cluster-id', `"${clusterId}" must be 1-64 letters, digits, '.', '_' or '-'`);
  const nodeKeys = [...nodes].map(([id, v]) => ({ id, identityKey: publicKeyOf(v, `--node (${id})`), passport: `${id}-p1` }));
  if (new Set(nodeKeys.map((n) => toHex(n.identityKey))).size !== nodeKeys.length) throw invalid('--node', 'two nodes share an identity key');
  const custodians = parseAssignments(o.custodians ?? [], '--custodian');
  for (const id of custodians.keys()) if (approvers.has(id)) throw invalid('--custodian', `${id} is also an --approver: a custodian key holds no other role`);
  const roster = {
    approvers: [
      ...[...approvers].map(([id, v]) => ({ id, publicKey: publicKeyOf(v, `--approver (${id})`), roles: (security.has(id) ? ['governor', 'security'] : ['governor']) as ApproverRole[] })),
      ...[...custodians].map(([id, v]) => ({ id, publicKey: publicKeyOf(v, `--custodian (${id})`), roles: ['custodian'] as ApproverRole[] })),
    ],
    quorum: { threshold, freezeThreshold },
  };
  const rv = validateRoster(roster);
  if (!rv.ok) throw invalid('--approver', rv.detail);
  let policy = CLOSED_POLICY;
  if (o.policyFile !== undefined) {
    try {
      policy = parsePolicyYaml(readFileSync(o.policyFile, 'utf8'), LEDGER_ASSETS);
      const unknown = policy.approverGroups.flatMap((g) => g.members.filter((m) => !approvers.has(m)).map((m) => `${m} (group ${g.name})`));
      if (unknown.length > 0) throw new CustodyError('POLICY_DOCUMENT_INVALID', `approver group members not on the roster: ${unknown.join(', ')}`);
    } catch (e) {
      throw invalid('--policy', `${o.policyFile}: ${e instanceof CustodyError ? e.detail : (e as Error).message}`);
    }
  }
  const genesis = { type: 'ClusterGenesis' as const, clusterId, nodes: nodeKeys, roster, policy };
  const bytes = encodeEvent(genesis);
  const path = resolve(o.out);
  if (existsSync(path) && o.force !== true) throw invalid('--out', `${path} exists; repeat with --force to replace it`);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, toHex(bytes) + '\n', { mode: 0o644 });
  return { path, cid: toHex(eventCid(bytes)), genesis };
}
