/**
 * Test harness for the kernel: a governance twin that issues real approver-signed decisions
 * (ledger/decision.ts), kernel processes on real Unix sockets (or in-process kernels), SoftHSM2
 * tokens in temp folders, and a coordinator that plays the daemons' part in DKG and signing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, createPublicKey, randomBytes, verify as nodeVerify } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { schnorr } from '@noble/curves/secp256k1.js';
import { makeApproverKey, networkForScheme, signDecision, decisionToCbor, decisionCid, type ApproverKey, type DecisionAction, type DecisionBody, type GovernanceDecision } from '../../ledger/decision.js';
import { encode, toHex } from '../../ledger/encoding.js';
import type { GenesisPin } from '../../kernel/authority.js';
import { KernelClient } from '../../kernel/client.js';
import { hsmInit, type HsmConfig } from '../../kernel/hsm.js';
import { Kernel, type CrashPoint, type KernelOptions } from '../../kernel/kernel.js';
import { KernelStore } from '../../kernel/store.js';
import { externalPublicKey, suiteOf, type PublicKeyPackage, type Suite, type SuiteName } from '../../kernel/suites.js';
import { SoftwareVault, type Vault } from '../../kernel/vault.js';
import { HsmVault } from '../../kernel/hsm.js';
import type { CommittedDecision, NonceCommitment, Participant, Permit, PublicPackage, RequestBody, ResponseBody, SigningCommitment } from '../../kernel/wire.js';
import { messagesDigest } from '../../ledger/tx/messages.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { actCid, encodeEvent, type Act, type LedgerEntry, type SigningSetMember } from '../../ledger/events.js';
import { encodeDocument, parsePolicyYaml, type PolicyDocument } from '../../ledger/policy-engine/index.js';
import { signActRequest, type ActRequestBody, type SignedActRequest } from '../../ledger/act-request.js';
import { verifyActRequest } from '../../ledger/act-request-check.js';
import { deriveActFields } from '../../ledger/tx/act.js';
import { LEDGER_ASSETS } from '../../ledger/asset-table.js';
import { buildTaprootPsbt } from '../../node/lifecycle/tx-build.js';
import { taprootAddress as taprootAddressOf } from '../../ledger/tx/parse.js';
import type { KeyContext, TxKind } from '../../ledger/tx/types.js';
import { tx as txLimits } from '../../proto/limits.js';
import { CustodyError } from '../../proto/errors.js';
import type { ActCheckContext } from '../../kernel/act-check.js';
import type { ActSubmittedEvent } from '../../kernel/certificate.js';
import { checkpointOrigin, consistencyProof, cosignatureSigner, entryLeafHash, formatCheckpoint, inclusionProof, memoryReader, nodeHash, nodeSignerName, parseCheckpoint, parseNote, rootOf, signNote, type EntryCertificate, type NodeReader } from '../../ledger/tlog/index.js';

export type SignBody = Extract<RequestBody, { kind: 'sign' }>;

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const KERNEL_BIN = join(REPO, 'dist/kernel/bin.js');
export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';
export type Profile = 'software' | 'hsm';
export const PROFILES: Profile[] = ['software', 'hsm'];

export const sha256 = (b: Uint8Array): Uint8Array => createHash('sha256').update(b).digest();

export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `custody-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

// ---------------------------------------------------------------------------------------------
// Governance twin
// ---------------------------------------------------------------------------------------------

/**
 * The act policy the test kernels are pinned with unless a test sets its own: raw acts only with
 * two approvals of the governors (as every cluster's document must hold them), transactions
 * allowed. Acts carry the governors' approval by default (Governance.actEntries).
 */
export const TEST_POLICY: PolicyDocument = parsePolicyYaml(`version: 1
groups:
  approvers:
    governors: [alice, bob, carol]
rules:
  - id: raw-with-approvals
    match: { kinds: [raw] }
    action: REQUIRE_APPROVAL
    approvals: { k: 2, group: governors, ttl: 1h }
  - id: transfers
    action: ALLOW
`, LEDGER_ASSETS);

/** What approves an act in a certificate: a decision (or none) made from the act it approves. */
export type ApprovalOf = (a: { opId: string; act: Act }) => GovernanceDecision | null;

export class Governance {
  readonly approvers: ApproverKey[] = [makeApproverKey('alice'), makeApproverKey('bob'), makeApproverKey('carol')];
  readonly clusterId = `cluster-${randomBytes(4).toString('hex')}`;
  readonly genesisCid = randomBytes(32);
  governanceEpoch = 0;
  index = 0;
  stampMs = 1_700_000_000_000;
  private lastCid: Uint8Array = this.genesisCid;
  /** Every decision issued, in order (what the ledger would hold). */
  readonly log: CommittedDecision[] = [];
  /** The genesis nodes (the first voters) and their identity keys: they cosign checkpoints. */
  readonly voters: { id: string; seed: Uint8Array; identityKey: Uint8Array }[] = ['v1', 'v2', 'v3'].map((id) => {
    const seed = new Uint8Array(randomBytes(32));
    return { id, seed, identityKey: ed25519.getPublicKey(seed) };
  });
  /** Leaf hashes of the ledger entries this twin has certified, in order (a tree of act entries only). */
  readonly leaves: Uint8Array[] = [];
  /** The custodian whose signed requests the acts carry (roster role `custodian`). */
  readonly custodian: ApproverKey = makeApproverKey('custodian-1');
  /** Keys as the ledger would know them once DKG finished (runDkg records them): what an act is parsed against. */
  readonly keys = new Map<string, KeyContext>();
  /** Unsigned transactions custodians asked to sign (`transaction`), by the digest of their messages. */
  private readonly txs = new Map<string, { kind: TxKind; tx: Uint8Array }>();
  /** The genesis act policy kernels are pinned with (set it before pinning a kernel). */
  policy: PolicyDocument = TEST_POLICY;

  /**
   * An ActApproved of the act, as approvers sign one (ledger/apply.ts checks the same binding):
   * by `signers` (default alice and bob), issued at the twin's clock for an hour; `over` replaces
   * body fields (another act's cid, an old issue time, ...).
   */
  approve(a: { opId: string; act: Act }, signers: ApproverKey[] = this.approvers.slice(0, 2), over: Partial<DecisionBody> = {}): GovernanceDecision {
    const cid = actCid(a.act);
    const body: DecisionBody = {
      clusterId: this.clusterId, governanceEpoch: this.governanceEpoch, parentCid: cid,
      action: { kind: 'ActApproved', opId: a.opId, actCid: cid, displayHash: a.act.displayHash },
      issuedMs: this.stampMs, expiresMs: this.stampMs + 3_600_000, ...over,
    };
    return signDecision(body, signers);
  }

  /**
   * A transaction a custodian will ask key `keyId` to sign, parsed as every node and kernel parses
   * it (ledger/tx/act.ts); returns the messages the key signs for it. A permit over exactly these
   * messages carries this transaction in its act.
   */
  transaction(keyId: string, kind: TxKind, tx: Uint8Array): Uint8Array[] {
    const key = this.keys.get(keyId);
    if (key === undefined) throw new Error(`no key ${keyId} was recorded by runDkg`);
    const { facts, fields } = deriveActFields(kind, tx, key, LEDGER_ASSETS);
    this.txs.set(toHex(fields.messageDigest), { kind, tx });
    return facts.messages.map((m) => Uint8Array.from(m));
  }

  pin(): GenesisPin {
    return {
      clusterId: this.clusterId,
      genesisCid: toHex(this.genesisCid),
      governanceEpoch: this.governanceEpoch,
      roster: {
        approvers: [
          ...this.approvers.map((a) => ({ id: a.id, publicKey: toHex(a.publicKey), roles: ['governor'] })),
          { id: this.custodian.id, publicKey: toHex(this.custodian.publicKey), roles: ['custodian'] },
        ],
        quorum: { threshold: 2, freezeThreshold: 1 },
      },
      nodes: this.voters.map((v) => ({ id: v.id, identityKey: toHex(v.identityKey) })),
      policy: toHex(encodeDocument(this.policy)),
    };
  }

  /** A voter's cosignature signer (node/checkpoints.ts signs the same way). */
  cosigner(v: { id: string; seed: Uint8Array }): ReturnType<typeof cosignatureSigner> {
    return cosignatureSigner(nodeSignerName(this.clusterId, v.id), v.seed, Math.floor(this.stampMs / 1000));
  }

  /**
   * The ledger entries of one act, as the ledger would chain them: an ActSubmitted for the act the
   * permit names (its opId the permit's requestId, its key, epoch and messagesDigest the permit's)
   * at the ledger index before the permit's, and an ActSigningSetFixed at the permit's index whose
   * commitments are `lists`, each member's counters from `counters` (by identifier; members not
   * named there carry `fallback`). The act carries `o.approval` of it (default: the governors'
   * approval, `approve`).
   */
  actEntries(permit: Permit, lists: readonly (readonly SigningCommitment[])[], counters: Record<string, readonly number[]>, fallback: readonly number[], o: { setOpId?: string; messages?: readonly Uint8Array[]; approval?: ApprovalOf; alter?: (x: ReturnType<Governance['act']>) => { opId: string; act: Act; request: SignedActRequest | null } } = {}): [LedgerEntry, LedgerEntry] {
    const proposer = { nodeId: this.voters[0]!.id, passport: 'passport-v1' };
    const act = (o.alter ?? ((x) => x))(this.act(permit, o.messages));
    const submitted = encodeEvent({ type: 'ActSubmitted', ...act, approval: (o.approval ?? ((x) => this.approve(x)))(act), ...proposer });
    const members: SigningSetMember[] = (lists[0] ?? []).map((c) => ({
      nodeId: `node-of-${c.identifier.slice(0, 8)}`, identifier: c.identifier,
      nonces: lists.map((l, i) => {
        const x = l.find((y) => y.identifier === c.identifier) ?? c;
        return { counter: (counters[c.identifier] ?? fallback)[i] ?? 1, hiding: x.hiding, binding: x.binding };
      }),
    }));
    const fixed = encodeEvent({ type: 'ActSigningSetFixed', opId: o.setOpId ?? permit.requestId, permitId: sha256(Buffer.from(permit.requestId)), commitments: members, ...proposer });
    return [
      { index: Math.max(1, permit.ledgerIndex - 1), stampMs: this.stampMs, event: submitted },
      { index: permit.ledgerIndex, stampMs: this.stampMs, event: fixed },
    ];
  }

  /**
   * The act of a permit, as a custodian asked for it, under the custodian's signed request: the
   * transaction registered for the permit's messages (`transaction`), or else a raw act whose one
   * message is the message signed (what the kernel's own parse derives). Acts of several
   * unregistered messages (or of a key runDkg did not record) carry synthetic raw bytes and the
   * permit's digest: only a kernel whose act check is `syntheticActCheck` signs those.
   */
  act(permit: Permit, messages: readonly Uint8Array[] | undefined): { opId: string; act: Act; request: SignedActRequest } {
    const key = this.keys.get(permit.keyId);
    const registered = this.txs.get(toHex(permit.messageDigest));
    const single = messages !== undefined && messages.length === 1 && messages[0]!.length <= txLimits.rawBytesMax ? Uint8Array.from(messages[0]!) : undefined;
    const chosen = key === undefined ? undefined : registered ?? (single !== undefined ? { kind: 'raw' as const, tx: single } : undefined);
    const kind: TxKind = chosen?.kind ?? 'raw';
    const tx = chosen?.tx ?? new Uint8Array(permit.messageDigest);
    const body: ActRequestBody = {
      clusterId: this.clusterId, custodian: this.custodian.id, requestId: permit.requestId, issuedMs: this.stampMs,
      keyId: permit.keyId, keyEpoch: permit.keyEpoch, kind, tx, declared: { asset: '', amount: '', destination: '' },
    };
    const fields = chosen !== undefined
      ? deriveActFields(kind, tx, key!, LEDGER_ASSETS).fields
      : { asset: 'RAW', amount: 0n, destination: '', displayHash: new Uint8Array(32), messageDigest: permit.messageDigest };
    return {
      opId: permit.requestId,
      act: { keyId: permit.keyId, keyEpoch: permit.keyEpoch, initiator: this.custodian.id, kind, tx, ...fields, messageDigest: permit.messageDigest },
      request: signActRequest(body, this.custodian.secretKey),
    };
  }

  /**
   * Appends `entries` to the twin's tree and returns their certificate under a checkpoint of the
   * whole tree, cosigned by `signers` (default: every voter, as a healthy cluster would). With
   * `history`, the entries go to that tree instead (a branch: a copy of a prefix of `leaves`
   * with other leaves after it, as a lying leader makes one honest replica apply).
   */
  certify(entries: readonly LedgerEntry[], signers: readonly { id: string; seed: Uint8Array }[] = this.voters, history: Uint8Array[] = this.leaves, extensions: readonly string[] = []): EntryCertificate {
    const at = entries.map((e) => {
      history.push(entryLeafHash(e));
      return history.length - 1;
    });
    const size = history.length;
    const read = memoryReader(history);
    const text = formatCheckpoint({ origin: checkpointOrigin(this.clusterId), size, root: rootOf(history), extensions: [...extensions] });
    const note = signNote(text, signers.map((v) => this.cosigner(v)));
    certifiedHistories.set(note, history);
    return {
      note,
      inclusions: entries.map((entry, i) => ({ leafIndex: at[i]!, entry, proof: inclusionProof(at[i]!, size, read) })),
    };
  }

  /**
   * A sign request as a daemon would send it: `body` with the certificate of the act and signing
   * set its own fields name (every member of its lists carries the request's counters: each kernel
   * checks only its own). Replaces any certificate the body carries.
   */
  certified(body: SignBody | RequestBody): SignBody {
    const b = body as SignBody;
    if (b.permit === undefined || b.permit === null) return b; // refused for that before any certificate is read
    return { ...b, certificate: this.certify(this.actEntries(b.permit, b.lists, {}, b.counters, { messages: b.messages })) };
  }

  /** A decision signed by two of the three approvers, chained to the previous one. */
  decide(action: DecisionAction, signers: ApproverKey[] = this.approvers.slice(0, 2)): CommittedDecision {
    this.index += 1;
    this.stampMs += 1000;
    const body = {
      clusterId: this.clusterId, governanceEpoch: this.governanceEpoch, parentCid: this.lastCid, action,
      issuedMs: this.stampMs, expiresMs: this.stampMs + 3_600_000,
    };
    const d = signDecision(body, signers);
    this.lastCid = decisionCid(body);
    const c = { decision: encode(decisionToCbor(d)), ledgerIndex: this.index, stampMs: this.stampMs };
    this.log.push(c);
    return c;
  }

  /** A ledger index for a signing permit (after everything decided so far). */
  permitIndex(): number {
    this.index += 1;
    return this.index;
  }
}

// ---------------------------------------------------------------------------------------------
// Kernel processes
// ---------------------------------------------------------------------------------------------

export interface SoftHsm {
  env: Record<string, string>;
  hsm: HsmConfig;
}

/** A SoftHSM2 token in its own temp folder (never the system token store). */
export function makeSoftHsm(dir: string, label: string): SoftHsm {
  const tokens = join(dir, 'tokens');
  mkdirSync(tokens, { recursive: true });
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  writeFileSync(join(dir, 'pin'), '246810\n', { mode: 0o600 });
  writeFileSync(join(dir, 'so-pin'), '13579111\n', { mode: 0o600 });
  const hsm: HsmConfig = { module: SOFTHSM_MODULE, tokenLabel: label, pinFile: join(dir, 'pin'), keyLabel: 'custody-wrap' };
  const prev = process.env['SOFTHSM2_CONF'];
  process.env['SOFTHSM2_CONF'] = conf;
  try {
    hsmInit({ ...hsm, soPinFile: join(dir, 'so-pin') });
  } finally {
    if (prev === undefined) delete process.env['SOFTHSM2_CONF'];
    else process.env['SOFTHSM2_CONF'] = prev;
  }
  return { env: { SOFTHSM2_CONF: conf }, hsm };
}

export interface KernelSetup {
  nodeId: string;
  dir: string;
  configPath: string;
  socketPath: string;
  storeDir: string;
  profile: Profile;
  env: Record<string, string>;
  hsm?: HsmConfig;
}

/** Writes a kernel's config (and its key file or SoftHSM token) under `root`. */
export function setupKernel(root: string, nodeId: string, profile: Profile, gov: Governance, opts: { sharedHsmDir?: string } = {}): KernelSetup {
  const dir = join(root, nodeId);
  mkdirSync(dir, { recursive: true });
  const socketPath = join(dir, 'run', 'kernel.sock');
  const storeDir = join(dir, 'store');
  const cfg: Record<string, unknown> = { nodeId, socketPath, storeDir, profile, genesis: gov.pin() };
  let env: Record<string, string> = {};
  let hsm: HsmConfig | undefined;
  if (profile === 'software') {
    writeFileSync(join(dir, 'kernel.key'), randomBytes(32).toString('hex'), { mode: 0o600 });
    cfg['software'] = { keyFile: join(dir, 'kernel.key') };
  } else {
    const h = makeSoftHsm(opts.sharedHsmDir ?? join(dir, 'hsm'), nodeId);
    env = h.env;
    hsm = h.hsm;
    cfg['hsm'] = h.hsm;
  }
  const configPath = join(dir, 'kernel.json');
  writeFileSync(configPath, JSON.stringify(cfg, null, 2));
  return { nodeId, dir, configPath, socketPath, storeDir, profile, env, ...(hsm ? { hsm } : {}) };
}

/** The history (leaf hashes, append-only) behind each note a Governance certified, for `following`. */
const certifiedHistories = new Map<string, readonly Uint8Array[]>();

type SignBodyOf = Extract<RequestBody, { kind: 'sign' }>;

/**
 * Perfect-subtree hashes of an append-only history, computed on demand and kept: a complete
 * subtree never changes as leaves are appended, so a consistency proof costs O(log n) hashes once
 * warm, as a daemon's stored tree gives it (the kernel bench times the share, not the proof).
 */
const subtrees = new WeakMap<readonly Uint8Array[], Map<string, Uint8Array>>();
function historyReader(leaves: readonly Uint8Array[]): NodeReader {
  let memo = subtrees.get(leaves);
  if (memo === undefined) subtrees.set(leaves, (memo = new Map()));
  const known = memo;
  const read: NodeReader = (level, index) => {
    if (level === 0) return leaves[index] as Uint8Array;
    const k = `${level}/${index}`;
    let h = known.get(k);
    if (h === undefined) known.set(k, (h = nodeHash(read(level - 1, 2 * index), read(level - 1, 2 * index + 1))));
    return h;
  };
  return read;
}

/**
 * Makes `client` send sign requests as a daemon does (node/lifecycle/participant.ts
 * signFollowing): a certificate a Governance made, without a consistency proof, gets the one its
 * kernel needs, from the checkpoint the kernel follows (status followedSize) over that
 * Governance's history. A certificate with a `consistency` property of its own (even undefined)
 * is sent as it is: attack tests choose what the kernel sees. Returns the same client.
 */
export function following<C extends Pick<KernelClient, 'call'>>(client: C): C {
  const raw = client.call.bind(client) as KernelClient['call'];
  // What the kernel follows, as a daemon keeps it: asked once, then moved by each signature.
  let followed: number | null = null;
  const call = async (body: RequestBody, expect: ResponseBody['kind']): Promise<ResponseBody> => {
    const cert = body.kind === 'sign' ? (body as SignBodyOf).certificate : null;
    const leaves = cert ? certifiedHistories.get(cert.note) : undefined;
    if (!cert || !leaves || 'consistency' in cert) return raw(body, expect);
    const size = parseCheckpoint(parseNote(cert.note).text).size;
    for (let attempt = 0; ; attempt++) {
      followed ??= (await raw({ kind: 'status' }, 'status')).followed.find((x) => x.incarnation === '')?.size ?? 0;
      const f = followed;
      let sent: SignBodyOf = body as SignBodyOf;
      if (f !== 0 && f !== size && Math.max(f, size) <= leaves.length) {
        const [a, b] = [Math.min(f, size), Math.max(f, size)];
        sent = { ...sent, certificate: { ...cert, consistency: { size: f, proof: consistencyProof(a, b, historyReader(leaves)) } } };
      }
      try {
        const r = await raw(sent, expect);
        if (r.kind === 'signatureShares') followed = Math.max(f, size);
        return r;
      } catch (e) {
        // Another client of the same kernel may have moved it: ask again, once.
        if (attempt > 0 || !(e instanceof CustodyError) || e.reason !== 'CHECKPOINT_INCONSISTENT') throw e;
        followed = null;
      }
    }
  };
  (client as { call: unknown }).call = call;
  return client;
}

export interface KernelProcess {
  setup: KernelSetup;
  proc: ChildProcess;
  client: KernelClient;
  transportPublicKey: Uint8Array;
  /** Resolves with the exit signal/code once the process is gone. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 120_000;

/** Spawns `node dist/kernel/bin.js --config ...` and waits for its readiness line. */
export async function startKernel(setup: KernelSetup, extraEnv: Record<string, string> = {}): Promise<KernelProcess> {
  const proc = spawn(process.execPath, [KERNEL_BIN, '--config', setup.configPath], {
    env: { ...process.env, ...setup.env, ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const ready = await new Promise<{ transportPublicKey: string }>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`kernel ${setup.nodeId} not ready in time; stderr: ${stderr}`)), READY_TIMEOUT_MS);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        try {
          resolve(JSON.parse(out.slice(0, nl)) as { transportPublicKey: string });
        } catch (e) {
          reject(e as Error);
        }
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`kernel ${setup.nodeId} exited (${code ?? signal}) before ready; stderr: ${stderr}`));
    });
  });
  const client = following(await KernelClient.connect(setup.socketPath));
  return {
    setup, proc, client, exited,
    transportPublicKey: Buffer.from(ready.transportPublicKey, 'hex'),
    async stop() {
      client.close();
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        await exited;
      }
    },
  };
}

/** An in-process kernel over a temp store (unit tests that need no socket). */
export async function openInProcess(root: string, nodeId: string, profile: Profile, gov: Governance, crashPoint?: (p: CrashPoint) => void, options: Pick<KernelOptions, 'checkSubmittedAct'> = {}): Promise<{ kernel: Kernel; close: () => Promise<void>; setup: KernelSetup }> {
  // One process can load a PKCS#11 module once, with one SoftHSM2 config: in-process kernels of
  // the hsm profile share a token folder (one token each).
  const setup = setupKernel(root, nodeId, profile, gov, { sharedHsmDir: join(root, 'softhsm-shared') });
  const store = await KernelStore.open(setup.storeDir);
  let vault: Vault;
  if (profile === 'software') {
    vault = SoftwareVault.fromKeyFile(join(setup.dir, 'kernel.key'));
  } else {
    process.env['SOFTHSM2_CONF'] = setup.env['SOFTHSM2_CONF']!;
    vault = HsmVault.open(setup.hsm!);
  }
  const kernel = await Kernel.open({ nodeId, store, vault, genesis: gov.pin(), ...(crashPoint ? { crashPoint } : {}), ...options });
  return {
    kernel, setup,
    async close() {
      await kernel.close();
      vault.close();
      await store.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The daemons' part: DKG and signing across kernels
// ---------------------------------------------------------------------------------------------

export interface Member { nodeId: string; client: KernelClient; transportPublicKey: Uint8Array }

export interface KeyResult { keyId: string; suite: SuiteName; public: PublicPackage; identifiers: Record<string, string> }

/** A kernel process as a DKG or signing member. */
export const memberOf = (p: KernelProcess): Member => ({ nodeId: p.setup.nodeId, client: p.client, transportPublicKey: p.transportPublicKey });

/**
 * Two kernel processes, n1 and n2, holding a 2-of-2 ed25519 key `keyId` at epoch 0. `kernels.victim`
 * is the one a test kills and restarts (assign the restarted process back to it); whatever
 * processes the pair holds at teardown are stopped and the folder removed.
 */
export async function kernelPair(t: { teardown(f: () => unknown): void }, prefix: string, profile: Profile, keyId: string): Promise<{ gov: Governance; kernels: { victim: KernelProcess; helper: KernelProcess }; key: KeyResult }> {
  const { dir, cleanup } = tempDir(`${prefix}-${profile}`);
  const gov = new Governance();
  const [s1, s2] = ['n1', 'n2'].map((id) => setupKernel(dir, id, profile, gov)) as [KernelSetup, KernelSetup];
  const kernels = { victim: await startKernel(s1), helper: await startKernel(s2) };
  t.teardown(async () => {
    await kernels.victim.stop();
    await kernels.helper.stop();
    cleanup();
  });
  const key = await runDkg(gov, [memberOf(kernels.victim), memberOf(kernels.helper)], keyId, 'ed25519', 2);
  return { gov, kernels, key };
}

export function identifierFor(suite: SuiteName, index: number): string {
  return suiteOf(suite).frost.Identifier.fromNumber(index);
}

/** DKG across `members` (authorized and activated by decisions) — RFC 9591 App. C via noble. */
export async function runDkg(gov: Governance, members: Member[], keyId: string, suite: SuiteName, min: number, activate = true): Promise<KeyResult> {
  const participants: Participant[] = members.map((m, i) => ({ identifier: identifierFor(suite, i + 1), nodeId: m.nodeId, transportPublicKey: m.transportPublicKey }));
  const authz = gov.decide({ kind: 'DkgAuthorized', keyId, scheme: suite, network: networkForScheme(suite), threshold: min, participants: members.map((m) => m.nodeId) });
  for (const m of members) await m.client.call({ kind: 'governance', decisions: [authz] }, 'governance');
  const ceremonyId = `dkg-${keyId}`;
  const r1 = await Promise.all(members.map((m, i) =>
    m.client.call({ kind: 'dkgBegin', ceremonyId, keyId, suite, min, participants, identifier: participants[i]!.identifier }, 'dkgRound1')));
  const pk = r1.map((r) => r.package);
  const r2 = await Promise.all(members.map((m, i) =>
    m.client.call({ kind: 'dkgRound2', ceremonyId, round1: pk.filter((_, j) => j !== i) }, 'dkgRound2')));
  const all = r2.flatMap((r) => r.packages);
  const finals = await Promise.all(members.map((m, i) =>
    m.client.call({ kind: 'dkgFinish', ceremonyId, round1: pk.filter((_, j) => j !== i), packages: all.filter((p) => p.recipient === participants[i]!.identifier) }, 'keyPackage')));
  const first = finals[0]!;
  for (const f of finals) {
    if (Buffer.compare(Buffer.from(f.public.commitments[0]!), Buffer.from(first.public.commitments[0]!)) !== 0) throw new Error('kernels disagree on the group key');
  }
  if (activate) {
    const act = gov.decide({ kind: 'KeyActivated', keyId, keyEpoch: 0, keyReadyCid: randomBytes(32) });
    for (const m of members) await m.client.call({ kind: 'governance', decisions: [act] }, 'governance');
  }
  gov.keys.set(keyId, { keyId, scheme: suite, network: networkForScheme(suite), groupKey: new Uint8Array(first.public.commitments[0]!) });
  return { keyId, suite, public: first.public, identifiers: Object.fromEntries(members.map((m, i) => [m.nodeId, participants[i]!.identifier])) };
}

export function toPackage(p: PublicPackage): PublicKeyPackage {
  return {
    signers: { min: p.min, max: p.max }, commitments: p.commitments,
    verifyingShares: Object.fromEntries(p.verifyingShares.map((v) => [v.identifier, v.point])),
  };
}

export interface SignOutcome {
  signature: Uint8Array;
  commitments: SigningCommitment[];
  shares: Record<string, Uint8Array>;
}

export interface SignManyOutcome {
  /** One signature per message, in order. */
  signatures: Uint8Array[];
  /** The commitment list each message was signed with. */
  lists: SigningCommitment[][];
  /** Each message's shares by identifier. */
  shares: Record<string, Uint8Array>[];
  /** Each signer's counters, by node id. */
  counters: Record<string, number[]>;
}

/** The step permit of one act over `messages` (kernel/kernel.ts sign): what the ledger would issue. */
export function permitOver(key: { keyId: string }, messages: readonly Uint8Array[], ledgerIndex: number, epoch = 0, requestId = randomBytes(16).toString('hex')): Permit {
  return { keyId: key.keyId, keyEpoch: epoch, requestId, messageDigest: messagesDigest(messages), ledgerIndex };
}

/**
 * Full signing of one act's messages: one presigned commitment per message from each signer, one
 * permit over all the messages, one sign request per kernel, and each message aggregated.
 */
export async function signManyAcross(gov: Governance, signers: Member[], key: KeyResult, messages: Uint8Array[], epoch = 0, pub?: PublicPackage, ledgerConsumed?: Record<string, number>): Promise<SignManyOutcome> {
  const nonces: NonceCommitment[][] = [];
  for (const m of signers) {
    const r = await m.client.call({ kind: 'nonces', keyId: key.keyId, keyEpoch: epoch, count: messages.length }, 'nonceCommitments');
    nonces.push(r.commitments);
  }
  const lists = messages.map((_, i) => nonces.map((ns) => ({ identifier: ns[i]!.identifier, hiding: ns[i]!.hiding, binding: ns[i]!.binding })));
  const permit = permitOver(key, messages, gov.permitIndex(), epoch);
  const shares: Record<string, Uint8Array>[] = messages.map(() => ({}));
  // One certificate for every signer: the act and its signing set with each member's own counters.
  const counters = Object.fromEntries(nonces.map((ns) => [ns[0]!.identifier, ns.map((n) => n.counter)]));
  const certificate = gov.certify(gov.actEntries(permit, lists, counters, [], { messages }));
  await Promise.all(signers.map(async (m, s) => {
    const r = await m.client.call({
      kind: 'sign', permit, messages, lists, counters: nonces[s]!.map((n) => n.counter), ledgerConsumedCounter: ledgerConsumed?.[m.nodeId] ?? 0, certificate,
    }, 'signatureShares');
    r.sigShares.forEach((z, i) => (shares[i]![r.identifier] = z));
  }));
  const suite = suiteOf(key.suite);
  const pkg = toPackage(pub ?? key.public);
  const signatures = messages.map((msg, i) => suite.frost.aggregate(pkg as never, lists[i] as never, msg, shares[i] as never));
  return { signatures, lists, shares, counters: Object.fromEntries(signers.map((m, s) => [m.nodeId, nonces[s]!.map((n) => n.counter)])) };
}

/** Full signing of one message (an act with a single message). */
export async function signAcross(gov: Governance, signers: Member[], key: KeyResult, message: Uint8Array, epoch = 0, pub?: PublicPackage, ledgerConsumed?: Record<string, number>): Promise<SignOutcome> {
  const out = await signManyAcross(gov, signers, key, [message], epoch, pub, ledgerConsumed);
  return { signature: out.signatures[0]!, commitments: out.lists[0]!, shares: out.shares[0]! };
}

/** Verifies with a verifier independent of the FROST code: OpenSSL Ed25519, BIP340 Schnorr. */
export function independentVerify(suiteName: SuiteName, groupKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  const suite = suiteOf(suiteName);
  const pk = externalPublicKey(suite, groupKey);
  if (suiteName === 'ed25519') {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(pk).toString('base64url') }, format: 'jwk' });
    return nodeVerify(null, message, key, signature);
  }
  if (suiteName === 'taproot') return schnorr.verify(signature, message, pk);
  // RFC 9591 §6.5 secp256k1 signatures have no non-FROST verifier; the suite's single-party
  // verification (RFC 9591 §6.5 / Appendix B) is used.
  return suite.frost.verify(signature, message, pk);
}

/** The reason code a kernel call was refused with, or 'OK' if it succeeded. */
export async function reasonOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (e) {
    if (e instanceof Error && 'reason' in e) return String((e as { reason: unknown }).reason);
    throw e;
  }
}

/** A trusted-dealer key (RFC 9591 Appendix C) of `suite`: its public package and each participant's signing share. */
export function dealer(suite: Suite, min: number, max: number): { pub: PublicKeyPackage; shares: Record<string, Uint8Array> } {
  const d = suite.frost.trustedDealer({ min, max });
  return {
    pub: d.public as unknown as PublicKeyPackage,
    shares: Object.fromEntries(Object.entries(d.secretShares).map(([id, s]) => [id, s.signingShare as Uint8Array])),
  };
}

/** Signs a random message with `signers` (FROST, in process) and verifies it under the group key. */
export function signWith(suite: Suite, pub: PublicKeyPackage, signers: { me: string; share: Uint8Array }[]): boolean {
  const msg = randomBytes(32);
  const gen = signers.map((s) => ({ s, g: suite.frost.commit({ identifier: s.me, signingShare: s.share } as never) }));
  const list = gen.map((x) => x.g.commitments);
  const sigShares = Object.fromEntries(gen.map((x) => [x.s.me, suite.frost.signShare({ identifier: x.s.me, signingShare: x.s.share } as never, pub as never, x.g.nonces, list, msg)]));
  const sig = suite.frost.aggregate(pub as never, list, msg, sigShares);
  return suite.frost.verify(sig, msg, pub.commitments[0]!);
}

/**
 * The act check of unit tests that sign synthetic acts of several messages (the nonce and permit
 * mechanics, every suite): the custodian's request is verified as the kernel does (the ledger's
 * own verifyActRequest against the roster the kernel follows), and the messages must be the ones
 * the act's digest names; only the kernel's own parse of a transaction is left out, since the
 * messages are not a transaction's. kernel/act-check.ts and its tests cover the parse.
 */
export function syntheticActCheck(ev: ActSubmittedEvent, ctx: ActCheckContext, messages: readonly Uint8Array[]): void {
  const roster = {
    approvers: ctx.roster.approvers.map((a) => ({ id: a.id, publicKey: typeof a.publicKey === 'string' ? Buffer.from(a.publicKey, 'hex') : a.publicKey, roles: a.roles as never })),
    quorum: ctx.roster.quorum,
  };
  const v = verifyActRequest(ev, { clusterId: ctx.clusterId, roster, nowMs: ctx.stampMs ?? null });
  if (!v.ok) throw new CustodyError(v.reason, v.detail);
  if (Buffer.compare(Buffer.from(messagesDigest(messages)), Buffer.from(ev.act.messageDigest)) !== 0) throw new CustodyError('TX_MESSAGES_MISMATCH', 'the messages are not the ones the act names');
}

/** An unsigned PSBT spending `inputs` coins of taproot key `key` (one BIP 341 sighash per input), distinct per `label`. */
export function taprootSpend(key: KeyContext, label: string, inputs: number): Uint8Array {
  const coins = Array.from({ length: inputs }, (_, i) => ({ txid: createHash('sha256').update(`${label}/${i}`).digest('hex'), vout: i, amountSat: 100_000n }));
  const payee = taprootAddressOf(key);
  return buildTaprootPsbt(key, coins, [{ address: payee, amount: 50_000n }], 1_000n);
}
