/**
 * Kernel configuration (YAML or JSON). Relative paths resolve against the config file's folder.
 *
 *   nodeId: n1
 *   socketPath: run/kernel.sock         # its folder is created 0700; the socket is 0600
 *   socketGroup: custody                # optional: share the socket with this group (name or
 *                                       # gid): folder 0750, socket 0660 (kernel/perms.ts)
 *   storeDir: data/kernel
 *   profile: software                   # or hsm
 *   software: { keyFile: secrets/kernel.key }          # or { passphraseFile: ... }
 *   hsm: { module: /usr/lib/softhsm/libsofthsm2.so, tokenLabel: n1, pinFile: secrets/pin, keyLabel: custody-wrap }
 *   genesisFile: genesis.hex            # the ClusterGenesis event (hex of its canonical CBOR),
 *                                       # the file the node's lifecycle config names; or inline:
 *   genesis:                            # pinned: the kernel trusts nothing else to start from
 *     clusterId: c1
 *     genesisCid: <64 hex>
 *     governanceEpoch: 1
 *     roster: { approvers: [{ id, publicKey: <hex>, roles: [governor] }], quorum: { threshold, freezeThreshold } }
 *     nodes: [{ id: n1, identityKey: <64 hex> }, ...]   # the genesis nodes: the first voters
 *     policy: <hex>                     # the genesis act policy (canonical CBOR); without it
 *                                       # the kernel signs no act (kernel/policy-check.ts)
 *
 * Secret files (keyFile, passphraseFile, pinFile) and the store folder must have no group or
 * world bits: the kernel refuses to start otherwise (SECRET_EXPOSED, kernel/perms.ts).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse } from 'yaml';
import { CustodyError } from '../proto/errors.js';
import { fromHex, toHex } from '../ledger/encoding.js';
import { decodeEvent, eventCid } from '../ledger/events.js';
import { encodeDocument } from '../ledger/policy-engine/index.js';
import { rosterToJson, type GenesisPin } from './authority.js';
import type { HsmConfig } from './hsm.js';
import { resolveGroup } from './perms.js';

export interface KernelConfig {
  nodeId: string;
  socketPath: string;
  /** The group the socket is shared with (socketGroup), or undefined: private to this user. */
  socketGid?: number;
  storeDir: string;
  profile: 'software' | 'hsm';
  software?: { keyFile?: string; passphraseFile?: string };
  hsm?: HsmConfig;
  genesis: GenesisPin;
}

function bad(detail: string): never {
  throw new CustodyError('CONFIG_INVALID', detail);
}

function s(o: Record<string, unknown>, k: string, where: string): string {
  const v = o[k];
  if (typeof v !== 'string' || v.length === 0) bad(`${where}.${k} must be a non-empty string`);
  return v;
}

export function loadConfig(path: string): KernelConfig {
  let raw: unknown;
  try {
    raw = parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new CustodyError('CONFIG_INVALID', `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (raw === null || typeof raw !== 'object') bad('the config must be a map');
  const o = raw as Record<string, unknown>;
  const base = dirname(resolve(path));
  const p = (x: string): string => resolve(base, x);
  const profile = o['profile'];
  if (profile !== 'software' && profile !== 'hsm') bad('profile must be software or hsm');
  const cfg: KernelConfig = {
    nodeId: s(o, 'nodeId', 'config'),
    socketPath: p(s(o, 'socketPath', 'config')),
    storeDir: p(s(o, 'storeDir', 'config')),
    profile,
    genesis: undefined as never,
  };
  if (profile === 'software') {
    const sw = (o['software'] ?? {}) as Record<string, unknown>;
    const keyFile = typeof sw['keyFile'] === 'string' ? p(sw['keyFile']) : undefined;
    const passphraseFile = typeof sw['passphraseFile'] === 'string' ? p(sw['passphraseFile']) : undefined;
    if ((keyFile === undefined) === (passphraseFile === undefined)) bad('software profile needs exactly one of software.keyFile, software.passphraseFile');
    cfg.software = keyFile !== undefined ? { keyFile } : { passphraseFile: passphraseFile! };
  } else {
    const h = (o['hsm'] ?? {}) as Record<string, unknown>;
    cfg.hsm = { module: s(h, 'module', 'hsm'), tokenLabel: s(h, 'tokenLabel', 'hsm'), pinFile: p(s(h, 'pinFile', 'hsm')), keyLabel: s(h, 'keyLabel', 'hsm') };
  }
  const sg = o['socketGroup'];
  if (sg !== undefined) {
    if (typeof sg !== 'string' && typeof sg !== 'number') bad('socketGroup must be a group name or id');
    cfg.socketGid = resolveGroup(sg, 'socketGroup');
  }
  if (o['genesisFile'] !== undefined) {
    if (o['genesis'] !== undefined) bad('give one of genesis, genesisFile');
    cfg.genesis = pinFromGenesisFile(p(s(o, 'genesisFile', 'config')));
    return cfg;
  }
  const g = o['genesis'] as Record<string, unknown> | undefined;
  if (g === undefined || typeof g !== 'object') bad('genesis is required: the kernel pins the genesis approver roster');
  const epoch = g['governanceEpoch'];
  if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 0) bad('genesis.governanceEpoch must be a non-negative integer');
  cfg.genesis = {
    clusterId: s(g, 'clusterId', 'genesis'),
    genesisCid: s(g, 'genesisCid', 'genesis'),
    governanceEpoch: epoch,
    roster: g['roster'] as GenesisPin['roster'],
    nodes: g['nodes'] as GenesisPin['nodes'],
    ...(g['policy'] !== undefined ? { policy: g['policy'] as string } : {}),
  };
  if (!Array.isArray(cfg.genesis.nodes)) bad('genesis.nodes is required: the genesis nodes, whose majority certifies the checkpoints a sign request rests on');
  if (!cfg.genesis.roster || !Array.isArray(cfg.genesis.roster.approvers)) bad('genesis.roster.approvers is required');
  return cfg;
}

/** The pin of a genesis file (hex of the ClusterGenesis event's canonical CBOR): epoch 0, its roster. */
function pinFromGenesisFile(path: string): GenesisPin {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw new CustodyError('CONFIG_INVALID', `genesisFile: cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (!/^([0-9a-f]{2})+$/.test(text)) bad(`genesisFile: ${path} must hold the genesis event in lowercase hex`);
  const bytes = fromHex(text);
  let ev;
  try {
    ev = decodeEvent(bytes);
  } catch (e) {
    throw new CustodyError('CONFIG_INVALID', `genesisFile: ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (ev.type !== 'ClusterGenesis') bad(`genesisFile: ${path} holds a ${ev.type}, not a ClusterGenesis`);
  return { clusterId: ev.clusterId, genesisCid: toHex(eventCid(bytes)), governanceEpoch: 0, roster: rosterToJson(ev.roster), nodes: ev.nodes.map((n) => ({ id: n.id, identityKey: toHex(n.identityKey) })), policy: toHex(encodeDocument(ev.policy)) };
}
