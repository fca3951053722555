/**
 * Proven evidence bundles (node/lifecycle/evidence-proof.ts) and the trust policy
 * (ledger/tlog/trust-policy.ts), from the auditor's side: bundles exported by the admin backend
 * from a scripted ledger whose entries feed the node's own Merkle tree (node/ledger-tree.ts),
 * checkpoints cosigned by the scripted nodes' identity keys.
 *
 * Accepted: a published act (approval, key authority, three receipts, signature block), a Denied
 * act (refusal, rule, reason code), an Aborted act (its ActAborted), and two bundles whose
 * checkpoints one consistency proof joins. Refused: a bundle from a self-made cluster (its own
 * keys, its own receipts), another cluster's bundle, a checkpoint below the quorum, every single
 * byte changed (a property over positions), and a consistency proof that is missing or altered.
 * After a roster change the trust policy exports to its last complete block and names the one
 * that waits; once a witness set is decided, an export carries the witness's cosignature of its
 * checkpoint or refuses (no witness pushed to, none cosigned, a line by another key).
 * The inclusion and consistency proofs are also checked with a second implementation written
 * here from RFC 9162 §2.1.3.2 and §2.1.4.2, over trees of many sizes.
 *
 * A failure prints fast-check's seed and path; replay it exactly with
 *   FC_SEED=<seed> FC_PATH=<path> npx tap dist/test/ledger/evidence-proof.test.js
 */
import t from 'tap';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fcRun } from './tlog-fixtures.js';
import { ScriptedCluster, encodeEvent, type GovernanceDecision, type LedgerEntry, type LedgerEvent, type EventType, type ApplyResult } from '../../ledger/index.js';
import { rid } from '../../ledger/scenario.js';
import { seedOf } from '../../ledger/index.js';
import { bytesEqual, toHex } from '../../ledger/encoding.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { LedgerTree } from '../../node/ledger-tree.js';
import { AdminBackend, evidenceLogOf } from '../../node/admin/backend.js';
import type { LedgerPort } from '../../node/lifecycle/ports.js';
import { verifyEvidence } from '../../node/commands/evidence.js';
import {
  provenBundleText, statementText, verifyConsistentBundles, verifyProvenText, type ProvenBundle,
} from '../../node/lifecycle/evidence-proof.js';
import {
  addSignatures, checkpointOrigin, cosignatureSigner, decodeBase64Strict, encodeBase64, entryLeafData, formatCheckpoint, formatPolicy, nodeSignerName, parseCheckpoint, parseNote, signNote,
} from '../../ledger/tlog/index.js';
import { verifyPolicyChain, type TrustPolicy } from '../../ledger/tlog/trust-policy.js';
import { vkeyOf } from '../../ledger/tlog/note.js';
import { pendingTrustBlock } from '../../ledger/trust-chain.js';
import { refused } from './tlog-fixtures.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'node', 'cli.js');
const RUN = fcRun(150);
const AUDITOR = { id: 'audra', role: 'auditor' as const };

/** A scripted ledger whose chained entries also go into a node's Merkle tree, as LedgerApp appends them. */
class TreeCluster extends ScriptedCluster {
  readonly tree = new LedgerTree(null);
  override entry(event: LedgerEvent | Uint8Array, stampMs?: number): { entry: LedgerEntry; result: ApplyResult } {
    const h = this.state.height;
    const r = super.entry(event, stampMs);
    if (this.state.height > h) this.tree.append(r.entry, (r.result as { type?: EventType }).type ?? null, this.state.height, false);
    return r;
  }

  signer(i: number): ReturnType<typeof cosignatureSigner> {
    const n = this.nodes[i]!;
    return cosignatureSigner(nodeSignerName(this.clusterId, n.info.id), n.secretKey, 1_700_000_000 + i);
  }

  /** The checkpoint of the tree now, cosigned by the nodes `who`. */
  async checkpoint(who: readonly number[], size = this.tree.size as number): Promise<string> {
    const text = formatCheckpoint({ origin: checkpointOrigin(this.clusterId), size, root: await this.tree.rootAt(size), extensions: [] });
    return signNote(text, who.map((i) => this.signer(i)));
  }

  /** The nodes `who` sign the trust policy block that waits (ledger/trust-chain.ts), each in its own name. */
  signTrustBlock(who: readonly number[]): void {
    for (const i of who) {
      const p = pendingTrustBlock(this.state.cluster!);
      if (p === null) return;
      const r = this.entry({ type: 'TrustPolicySigned', serial: p.serial, blockDigest: p.digest, signature: this.signer(i).sign(p.text), ...this.proposer(this.nodes[i]!.info.id) }).result;
      if (!r.ok) throw new Error(`setup: TrustPolicySigned ${r.reason} ${r.detail}`);
    }
  }

  /** The admin backend of node-0 over this ledger, proving with this tree and a majority's cosignatures (and `witness`, the pusher's cosign). */
  backend(cosigners: readonly number[] = [0, 1], tree: LedgerTree = this.tree, witness?: (note: string) => Promise<string | null>): AdminBackend {
    const b = new AdminBackend('node-0', { state: () => this.state, act: async () => undefined } as unknown as LedgerPort, { notesOf: () => [], onNote: () => () => {} });
    b.useEvidenceLog(evidenceLogOf({
      evidence: async (indexes, from) => {
        const size = tree.size as number;
        const inclusions = await Promise.all(indexes.map(async (i) => {
          const { leafIndex, entry } = await tree.entry(i);
          return { leafIndex, entry, proof: await tree.proof(leafIndex, size) };
        }));
        const note = await this.checkpoint(cosigners, size);
        return { note, inclusions, size, ...(from === undefined ? {} : { consistency: { size: from, proof: await tree.consistency(from, size) } }) };
      },
      signStatement: (text) => signNote(text, [this.signer(0)]),
    }, { tree }, this.nodes.map((n) => n.info), witness));
    return b;
  }
}

/** A cluster with a published act (op-1), then a Denied (op-2) and an Aborted one (op-3), then a roster change. */
async function scenario(o: { clusterId?: string; label?: string } = {}): Promise<{ s: TreeCluster; policyText: string; policy: TrustPolicy; texts: Map<string, string> }> {
  const s = new TreeCluster(o);
  s.genesis();
  for (const r of s.createKey('k1')) if (!r.ok) throw new Error(`setup: ${r.reason}`);
  const act = s.act('k1', { amount: 50_000n });
  const approval: GovernanceDecision = s.approveAct('op-1', act);
  const steps = [s.submit('op-1', act, approval), s.issuePermit('op-1'), s.execute('op-1')];
  const aCid = s.state.cluster!.ops[rid('op-1')]!.actCid;
  steps.push(s.decide({ kind: 'PublicationReleased', opId: rid('op-1'), actCid: aCid, displayHash: act.displayHash }, undefined, { parentCid: aCid }), s.publish('op-1'));
  for (const r of steps) if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  const backend = s.backend();
  const policyText = backend.trustPolicy(AUDITOR);
  const texts = new Map<string, string>();
  texts.set('op-1', `${await backend.provenEvidence(AUDITOR, rid('op-1'))}\n`);
  const firstSize = s.tree.size as number;
  s.submit('op-2', s.act('k1', { amount: 50_000n }));
  if (s.state.cluster!.ops[rid('op-2')]?.state !== 'Denied') throw new Error('setup: op-2 is not Denied');
  // The node that took the submission enters the verdict in the log (node/admin/backend.ts).
  const recorded = s.recordDenial('op-2');
  if (!recorded.ok) throw new Error(`setup: ActDenialRecorded ${recorded.reason} ${recorded.detail}`);
  const small = s.act('k1', { amount: 1_000n });
  for (const r of [s.submit('op-3', small), s.issuePermit('op-3'), s.abort('op-3', 'REMOTE_TIMEOUT')]) if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  // A roster change after the acts: the export walks back to the roster in force at each act.
  const changed = s.decide({ kind: 'ApproversChanged', roster: { ...s.roster, approvers: [...s.roster.approvers].reverse() } });
  if (!changed.ok) throw new Error(`setup: ApproversChanged ${changed.reason} ${changed.detail}`);
  texts.set('op-2', `${await backend.provenEvidence(AUDITOR, rid('op-2'), firstSize)}\n`);
  texts.set('op-3', `${await backend.provenEvidence(AUDITOR, rid('op-3'))}\n`);
  return { s, policyText, policy: verifyPolicyChain(policyText).policy, texts };
}

const real = await scenario();
const bundleOf = (label: string): ProvenBundle => JSON.parse(real.texts.get(label)!) as ProvenBundle;

/** A bundle's text after `change`, with the statement signed again by node `signer` of the real cluster (isolating the check under test). */
function resigned(b: ProvenBundle, s: TreeCluster, signer = 0): string {
  const { statement: _old, ...unsigned } = b;
  return provenBundleText({ ...unsigned, statement: signNote(statementText(unsigned), [s.signer(signer)]) });
}

t.test('the trust policy: the genesis block names the origin, the three node keys and a majority quorum', async (t) => {
  t.match(real.policyText, new RegExp(`^custody-ledger/trust-policy/v1\norigin ${checkpointOrigin(real.s.clusterId)}\nserial 0\n(node custody-ledger/cluster-1/node-\\d\\+[0-9a-f]{8}\\+\\S+\n){3}quorum 2\n$`));
  t.equal(real.policy.nodes.length, 3);
  t.equal(real.policy.quorum, 2);
});

t.test('real bundles verify: published, denied and aborted, each with what proves it', async (t) => {
  const pub = verifyProvenText(real.texts.get('op-1')!, real.policy);
  t.ok(pub.ok, `op-1: ${pub.ok ? pub.lines.join('; ') : `${pub.step} ${pub.reason} ${pub.detail}`}`);
  if (pub.ok) {
    t.equal(pub.outcome.state, 'Published');
    t.match(pub.lines.join('\n'), /approved by approver-\d, approver-\d/, 'the approval\'s signatures verified against the roster in force');
    t.match(pub.lines.join('\n'), /key k1 epoch 0 published at \d+, KeyActivated at \d+/, 'the key\'s authority chain is proven');
    t.match(pub.lines.join('\n'), /receipts AdmissionReceipt -> PermitReceipt -> PublicationReceipt, each bound to its entry/);
    t.match(pub.lines.join('\n'), /signature ed25519 verifies/);
  }
  const denied = verifyProvenText(real.texts.get('op-2')!, real.policy);
  t.ok(denied.ok, `op-2: ${denied.ok ? denied.lines.join('; ') : `${denied.step} ${denied.reason} ${denied.detail}`}`);
  if (denied.ok) {
    t.equal(denied.outcome.state, 'Denied');
    t.type(denied.outcome.reason, 'string', 'the refusal names its reason code');
    t.not(denied.outcome.rule, null, 'and the rule that decided it');
    t.match(denied.lines.join('\n'), new RegExp(`Denied ${denied.outcome.reason} by rule \\S+ \\(\\w+\\), entered in the log at index \\d+`), 'the verdict is proven by its denial entry');
  }
  const aborted = verifyProvenText(real.texts.get('op-3')!, real.policy);
  t.ok(aborted.ok, `op-3: ${aborted.ok ? aborted.lines.join('; ') : `${aborted.step} ${aborted.reason} ${aborted.detail}`}`);
  if (aborted.ok) t.match(aborted.outcome, { state: 'Aborted', reason: 'REMOTE_TIMEOUT' });
  t.equal(bundleOf('op-3').signature, undefined, 'an aborted act\'s bundle carries no signature');
  t.notOk(bundleOf('op-3').log.entries.some((e) => e.data.includes('6b41637445786563757465')), 'nor its ActExecuted (there was none released)');
});

t.test('the three bundles checked through the CLI with the exported policy; two of them for consistency', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'evidence-proof-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const policy = join(dir, 'policy.txt');
  writeFileSync(policy, real.policyText);
  for (const [label, text] of real.texts) writeFileSync(join(dir, `${label}.json`), text);
  const run = (...args: string[]) => spawnSync(process.execPath, [CLI, 'evidence', 'verify', ...args], { encoding: 'utf8', timeout: 120_000 });
  const both = run('--trust', policy, join(dir, 'op-1.json'), join(dir, 'op-2.json'));
  t.equal(both.status, 0, `${both.stdout}${both.stderr}`);
  t.match(both.stdout, /ok: act .* \(Published\) proven under custody-ledger\/cluster-1/);
  t.match(both.stdout, /ok: consistent: size \d+ \(.*\) is a prefix of size \d+/);
  const self = run(join(dir, 'op-1.json'));
  t.equal(self.status, 0, 'without --trust, a v2 bundle is checked as a v1 bundle');
  t.match(self.stdout, /self-vouched/, 'and the verdict says it vouches only for itself');
  const otherGenesis = join(dir, 'other-genesis.txt');
  writeFileSync(otherGenesis, real.policyText.replace('quorum 2', 'quorum 3'));
  const pinned = run('--trust', policy, '--genesis', otherGenesis, join(dir, 'op-1.json'));
  t.equal(pinned.status, 3, 'a policy that does not start with the pinned genesis is refused');
  t.match(pinned.stderr, /TRUST_POLICY_INVALID/);
  const noProof = run('--trust', policy, '--genesis', policy, join(dir, 'op-1.json'), join(dir, 'op-3.json'));
  t.equal(noProof.status, 3, 'two bundles without a consistency proof between them are refused');
  t.match(noProof.stderr, /TLOG_PROOF_INVALID/);
});

t.test('refused: a bundle made with self-made keys and receipts, though it agrees with itself', async (t) => {
  const forged = await scenario({ label: 'forger' });
  const text = forged.texts.get('op-1')!;
  t.ok(verifyEvidence({ ...JSON.parse(text), format: 'custody-ledger/evidence/v1' }).ok, 'by itself (v1, self-vouched) the forgery passes');
  t.ok(verifyProvenText(text, forged.policy).ok, 'under its own made-up policy too');
  t.match(verifyProvenText(text, real.policy), { ok: false, step: 'checkpoint', reason: 'NOTE_SIGNATURE_INVALID' }, 'under the cluster\'s policy its checkpoint is signed by no known key');
  // Its checkpoint swapped for a real one: the entries are not under it.
  const grafted = resigned({ ...(JSON.parse(text) as ProvenBundle), log: { ...(JSON.parse(text) as ProvenBundle).log, checkpoint: bundleOf('op-1').log.checkpoint } }, real.s);
  t.match(verifyProvenText(grafted, real.policy), { ok: false, reason: 'TLOG_PROOF_INVALID' }, 'with a real checkpoint, its entries are not in the real tree');
});

t.test('refused: another cluster\'s bundle', async (t) => {
  const other = await scenario({ clusterId: 'cluster-2', label: 'script' });
  t.match(verifyProvenText(other.texts.get('op-1')!, real.policy), { ok: false, step: 'checkpoint', reason: 'TLOG_CHECKPOINT_INVALID' });
  const relabelled = resigned({ ...(JSON.parse(other.texts.get('op-1')!) as ProvenBundle), clusterId: 'cluster-1' }, real.s);
  t.match(verifyProvenText(relabelled, real.policy), { ok: false, step: 'checkpoint', reason: 'NOTE_SIGNATURE_INVALID' }, 'relabelled as ours: its checkpoint is signed by keys of another log');
});

t.test('refused: a checkpoint cosigned by fewer nodes than the quorum', async (t) => {
  const b = bundleOf('op-1');
  const size = parseCheckpoint(parseNote(b.log.checkpoint).text).size;
  const one = await real.s.checkpoint([1], size);
  t.match(verifyProvenText(resigned({ ...b, log: { ...b.log, checkpoint: one } }, real.s), real.policy), { ok: false, step: 'checkpoint', reason: 'QUORUM_NOT_MET' });
  const two = await real.s.checkpoint([1, 2], size);
  t.ok(verifyProvenText(resigned({ ...b, log: { ...b.log, checkpoint: two } }, real.s), real.policy).ok, 'the same checkpoint with two of three verifies');
  // The same key twice counts once.
  const dup = `${one}${one.slice(one.lastIndexOf('\u2014'))}`;
  t.match(verifyProvenText(resigned({ ...b, log: { ...b.log, checkpoint: dup } }, real.s), real.policy), { ok: false, step: 'checkpoint' });
});

t.test('refused: a statement by a key outside the policy, or over another bundle', async (t) => {
  const b = bundleOf('op-3');
  const outsider = cosignatureSigner(nodeSignerName('cluster-1', 'node-9'), new Uint8Array(32).fill(9), 1);
  const { statement: _s, ...unsigned } = b;
  t.match(verifyProvenText(provenBundleText({ ...unsigned, statement: signNote(statementText(unsigned), [outsider]) }), real.policy), { ok: false, step: 'statement', reason: 'NOTE_SIGNATURE_INVALID' });
  t.match(verifyProvenText(provenBundleText({ ...b, statement: bundleOf('op-2').statement }), real.policy), { ok: false, step: 'statement', reason: 'BINDING_MISMATCH' });
});

t.test('refused: claims the entries do not prove', async (t) => {
  const b = bundleOf('op-3');
  t.match(verifyProvenText(resigned({ ...b, outcome: { ...b.outcome, reason: 'POLICY_DENIED' } }, real.s), real.policy), { ok: false, step: 'outcome', reason: 'EVIDENCE_UNPROVEN' }, 'another abort reason');
  t.match(verifyProvenText(resigned({ ...b, outcome: { ...b.outcome, state: 'Denied' } }, real.s), real.policy), { ok: false, reason: 'EVIDENCE_UNPROVEN' }, 'an aborted act called Denied');
  const withoutAbort = { ...b, log: { ...b.log, entries: b.log.entries.slice(0, -1) } };
  t.match(verifyProvenText(resigned(withoutAbort, real.s), real.policy), { ok: false, reason: 'EVIDENCE_UNPROVEN' }, 'its ActAborted left out');
  const p = bundleOf('op-1');
  t.match(verifyProvenText(resigned({ ...p, log: { ...p.log, entries: p.log.entries.filter((_e, i) => i !== 1) } }, real.s), real.policy), { ok: false, step: 'key', reason: 'EVIDENCE_UNPROVEN' }, 'the key\'s publication left out');
  t.match(verifyProvenText(resigned({ ...p, log: { ...p.log, entries: p.log.entries.slice(1) } }, real.s), real.policy), { ok: false, step: 'roster', reason: 'EVIDENCE_UNPROVEN' }, 'the roster entry left out');
  t.match(verifyProvenText(resigned({ ...p, outcome: { ...p.outcome, rule: { ...p.outcome.rule!, id: 'sol-small' } } }, real.s), real.policy), { ok: false, reason: 'BINDING_MISMATCH' }, 'an outcome naming another rule than the bundle');
  t.match(verifyProvenText(resigned({ ...p, outcome: { ...p.outcome, reason: 'POLICY_DENIED' } }, real.s), real.policy), { ok: false, reason: 'PAYLOAD_REJECTED' }, 'a published act with a refusal code');
  t.match(verifyProvenText(resigned({ ...p, outcome: { ...p.outcome, state: 'Settled' } }, real.s), real.policy), { ok: false, step: 'outcome', reason: 'EVIDENCE_UNPROVEN' }, 'a published act called Settled');
  const d = bundleOf('op-2');
  // The exporting node lies about a Denied act's verdict: the denial entry contradicts it.
  t.match(verifyProvenText(resigned({ ...d, outcome: { ...d.outcome, reason: 'FROZEN' } }, real.s), real.policy), { ok: false, step: 'outcome', reason: 'EVIDENCE_UNPROVEN' }, 'a Denied act under another reason code than its denial entry');
  const otherRule = { ...d.outcome.rule!, id: 'sol-small' };
  t.match(verifyProvenText(resigned({ ...d, rule: otherRule, outcome: { ...d.outcome, rule: otherRule } }, real.s), real.policy), { ok: false, step: 'outcome', reason: 'EVIDENCE_UNPROVEN' }, 'a Denied act under another rule than its denial entry');
  const unrecorded = verifyProvenText(resigned({ ...d, log: { ...d.log, entries: d.log.entries.filter((x) => !/^[0-9a-f]+$/.test(x.data) || !Buffer.from(x.data, 'hex').includes(Buffer.from('ActDenialRecorded'))) } }, real.s), real.policy);
  t.ok(unrecorded.ok && /as the exporting node states .*no denial entry in the log proves it/.test(unrecorded.lines.join('\n')), 'without its denial entry the verdict verifies only as the exporting node\'s word, and says so');
  t.match(verifyProvenText(resigned({ ...d, log: { ...d.log, entries: [...d.log.entries, d.log.entries[d.log.entries.length - 1]!] } }, real.s), real.policy), { ok: false }, 'the denial entry listed twice');
  t.match(verifyProvenText(resigned({ ...d, roster: p.roster === d.roster ? d.roster!.replace(/.$/, (c) => (c === '0' ? '1' : '0')) : p.roster }, real.s), real.policy), { ok: false, step: 'roster' }, 'a roster other than the proven one');
});

t.test('every single-byte change of a real bundle is refused (property over positions)', async (t) => {
  for (const label of ['op-1', 'op-2', 'op-3']) {
    const bytes = Buffer.from(real.texts.get(label)!, 'utf8');
    const r = fc.check(fc.property(fc.nat({ max: bytes.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, delta) => {
      const changed = Buffer.from(bytes);
      changed[at] = (changed[at]! + delta) % 256;
      const v = verifyProvenText(changed.toString('utf8'), real.policy);
      return !v.ok;
    }), RUN);
    t.equal(r.failed, false, `${label}: ${r.numRuns} single-byte changes over ${bytes.length} bytes, each refused${r.failed ? `; accepted: ${fc.defaultReportMessage(r) ?? ''}` : ''}`);
  }
});

t.test('consistency: equal checkpoints agree; a missing or altered proof, or a forked root, is refused', async (t) => {
  const v = (label: string) => {
    const r = verifyProvenText(real.texts.get(label)!, real.policy);
    if (!r.ok) throw new Error(`${label}: ${r.detail}`);
    return { bundle: r.bundle!, checkpoint: r.checkpoint };
  };
  const [a, b, c] = [v('op-1'), v('op-2'), v('op-3')];
  t.match(verifyConsistentBundles(a, b), /is a prefix of/);
  t.match(verifyConsistentBundles(b, a), /is a prefix of/, 'in either order');
  t.match(verifyConsistentBundles(b, c), /same root/, 'same size, same root');
  t.throws(() => verifyConsistentBundles(a, c), refused('TLOG_PROOF_INVALID'), 'no proof carried');
  const proof = b.bundle.log.consistency!.proof;
  const altered = proof.map((h, i) => (i === 0 ? encodeBase64(decodeBase64Strict(h)!.map((x, j) => (j === 0 ? x ^ 1 : x))) : h));
  t.throws(() => verifyConsistentBundles(a, { ...b, bundle: { ...b.bundle, log: { ...b.bundle.log, consistency: { size: a.checkpoint.size, proof: altered } } } }), refused('TLOG_PROOF_INVALID'));
  const fork = { ...c, checkpoint: { ...c.checkpoint, root: new Uint8Array(32).fill(7) } };
  t.throws(() => verifyConsistentBundles(b, fork), refused('EQUIVOCATION'), 'two roots of one size');
});

t.test('an act aborted after its signatures were made: its bundle leaves them out, and a bundle that adds their entry is refused', async (t) => {
  const s = new TreeCluster({ label: 'executed' });
  s.genesis();
  for (const r of s.createKey('k1')) if (!r.ok) throw new Error(`setup: ${r.reason}`);
  for (const r of [s.submit('op-4', s.act('k1', { amount: 1_000n })), s.issuePermit('op-4'), s.execute('op-4'), s.abort('op-4', 'PUBLICATION_DENIED')]) if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  const backend = s.backend();
  const policy = verifyPolicyChain(backend.trustPolicy(AUDITOR)).policy;
  const text = `${await backend.provenEvidence(AUDITOR, rid('op-4'))}\n`;
  const v = verifyProvenText(text, policy);
  t.ok(v.ok && v.outcome.state === 'Aborted', `it verifies: ${v.ok ? v.lines.join('; ') : v.detail}`);
  const b = JSON.parse(text) as ProvenBundle;
  t.equal(b.signature, undefined, 'no signature block');
  const executedIndex = s.state.cluster!.ops[rid('op-4')]!.history.find((h) => h.state === 'Executed')!.index;
  const size = parseCheckpoint(parseNote(b.log.checkpoint).text).size;
  const { leafIndex, entry } = await s.tree.entry(executedIndex);
  t.notOk(b.log.entries.some((e) => e.leafIndex === leafIndex), 'the ActExecuted leaf is not among the bundle\'s');
  const injected = { leafIndex, data: toHex(entryLeafData(entry)), proof: (await s.tree.proof(leafIndex, size)).map(encodeBase64) };
  const entries = [...b.log.entries, injected].sort((x, y) => x.leafIndex - y.leafIndex);
  t.match(verifyProvenText(resigned({ ...b, log: { ...b.log, entries } }, s), policy), { ok: false, step: 'signature', reason: 'EVIDENCE_UNPROVEN' });
});

t.test('a Denied act of a key published but not activated: its bundle proves the publication and verifies', async (t) => {
  const s = new TreeCluster({ label: 'inactive' });
  s.genesis();
  const setup = [s.decide({ kind: 'DkgAuthorized', keyId: 'k2', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: s.nodes.map((n) => n.info.id) }), ...s.runCeremony('k2', 0)];
  for (const r of setup) if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  s.submit('op-5', s.act('k2', { amount: 1_000n }));
  const op = s.state.cluster!.ops[rid('op-5')]!;
  t.equal(op.state, 'Denied', `the act is Denied ${op.reason}`);
  const backend = s.backend();
  const policy = verifyPolicyChain(backend.trustPolicy(AUDITOR)).policy;
  const v = verifyProvenText(`${await backend.provenEvidence(AUDITOR, rid('op-5'))}\n`, policy);
  t.ok(v.ok, `it verifies: ${v.ok ? v.lines.join('; ') : `${v.step} ${v.reason} ${v.detail}`}`);
  if (v.ok) {
    t.match(v.lines.join('\n'), /key k2 epoch 0 published at \d+, not shown activated/);
    t.match(v.outcome, { state: 'Denied', reason: op.reason });
  }
});

t.test('a policy that names a witness refuses a checkpoint without its cosignature and accepts one with it', async (t) => {
  const w = cosignatureSigner('witness.example/w1', seedOf('evidence-proof/witness'), 1_700_000_000);
  const policy = verifyPolicyChain(formatPolicy({ ...real.policy, witnesses: [w.verifier], witnessQuorum: 1 })).policy;
  t.match(verifyProvenText(real.texts.get('op-1')!, policy), { ok: false, step: 'checkpoint', reason: 'QUORUM_NOT_MET' });
  const b = bundleOf('op-1');
  t.ok(verifyProvenText(resigned({ ...b, log: { ...b.log, checkpoint: addSignatures(b.log.checkpoint, [w]) } }, real.s), policy).ok, 'with the witness\'s cosignature it verifies');
});

t.test('a witness set decided in the ledger: the policy names it, and the export carries the witness\'s cosignature or refuses', async (t) => {
  const r = await scenario({ label: 'witnessed' });
  const s = r.s;
  const w = cosignatureSigner('witness.example/w1', seedOf('evidence-proof/witness'), 1_700_000_000);
  const stranger = cosignatureSigner('witness.example/w1', seedOf('evidence-proof/not-the-witness'), 1_700_000_000);
  const decided = s.decide({ kind: 'WitnessesChanged', witnesses: [vkeyOf(w.verifier)], quorum: 1 });
  if (!decided.ok) throw new Error(`setup: WitnessesChanged ${decided.reason} ${decided.detail}`);
  s.signTrustBlock([0, 2]);
  const policy = verifyPolicyChain(s.backend().trustPolicyExport(AUDITOR, true).policy, r.policyText).policy;
  t.same(policy.witnesses.map((x) => x.name), ['witness.example/w1'], 'serial 1 names the witness');
  t.match(verifyProvenText(r.texts.get('op-1')!, policy), { ok: false, step: 'checkpoint', reason: 'QUORUM_NOT_MET' }, 'a bundle exported before carries no witness line');
  const text = `${await s.backend([0, 1], s.tree, async (note) => addSignatures(note, [w])).provenEvidence(AUDITOR, rid('op-1'))}\n`;
  const v = verifyProvenText(text, policy);
  t.ok(v.ok, `with the witness's cosignature the new export verifies: ${v.ok ? v.lines[0] : `${v.step} ${v.reason} ${v.detail}`}`);
  await t.rejects(s.backend().provenEvidence(AUDITOR, rid('op-1')), refused('WITNESS_UNAVAILABLE'), 'a node that pushes to no witness refuses');
  await t.rejects(s.backend([0, 1], s.tree, async () => null).provenEvidence(AUDITOR, rid('op-1')), refused('WITNESS_UNAVAILABLE'), 'no witness cosigned the checkpoint');
  await t.rejects(s.backend([0, 1], s.tree, async (note) => addSignatures(note, [stranger])).provenEvidence(AUDITOR, rid('op-1')), refused('QUORUM_NOT_MET'), 'a line under the witness\'s name by another key');
});

t.test('export after a roster change: the chain to the last complete block, the waiting one named; a node that does not know the roster in force refuses', async (t) => {
  const s = new TreeCluster({ label: 'members' });
  s.genesis();
  const genesisText = s.backend().trustPolicy(AUDITOR);
  t.ok(verifyPolicyChain(genesisText).policy, 'the genesis policy exports');
  const added = s.decide({ kind: 'NodeAdded', node: { id: 'node-9', identityKey: ed25519.getPublicKey(seedOf('members/node/9')), passport: 'passport-9-0' } });
  if (!added.ok) throw new Error(`setup: NodeAdded ${added.reason} ${added.detail}`);
  const waiting = s.backend().trustPolicyExport(AUDITOR);
  t.equal(waiting.policy, genesisText, 'while serial 1 waits, the file ends at the genesis block');
  t.match(waiting.waiting, /^trust policy serial 1 waits for 2 more signature\(s\) of the nodes of serial 0 \(0 of 2 recorded\)$/);
  t.throws(() => s.backend().trustPolicyExport(AUDITOR, true), refused('TRUST_POLICY_PENDING'), 'asked for the policy of the voters in force: refused');
  s.signTrustBlock([0, 1]);
  const done = s.backend().trustPolicyExport(AUDITOR, true);
  t.equal(done.waiting, '');
  const chain = verifyPolicyChain(done.policy, genesisText);
  t.equal(chain.length, 2, 'genesis and the block of the four voters');
  t.equal(chain.policy.nodes.length, 4);
  const r = await scenario({ label: 'snapshot' });
  const restored = new LedgerTree(null);
  restored.restore(r.s.tree.snapshotEdge(), r.s.state.height);
  await t.rejects(r.s.backend([0, 1], restored).provenEvidence(AUDITOR, rid('op-1')), refused('ENTRY_NOT_INCLUDED'), 'a node that joined by snapshot refuses');
  await t.rejects(r.s.backend().provenEvidence(AUDITOR, 'no-such-act'), refused('UNKNOWN_SESSION'));
});

// ------------------------------------------------------------------------------------------------
// RFC 9162 §2.1.3.2 and §2.1.4.2, transcribed here (shares no code with ledger/tlog/merkle.ts).
// ------------------------------------------------------------------------------------------------
const sha = (...parts: Uint8Array[]): Uint8Array => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};
const ONE = new Uint8Array([1]);
const lsb = (n: number): boolean => n % 2 === 1;
const half = (n: number): number => Math.floor(n / 2);

function rfcVerifyInclusion(leafIndex: number, treeSize: number, leaf: Uint8Array, path: readonly Uint8Array[], root: Uint8Array): boolean {
  if (leafIndex >= treeSize) return false;
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return false;
    if (lsb(fn) || fn === sn) {
      r = sha(ONE, p, r);
      if (!lsb(fn)) while (!(lsb(fn) || fn === 0)) { fn = half(fn); sn = half(sn); }
    } else {
      r = sha(ONE, r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && bytesEqual(r, root);
}

function rfcVerifyConsistency(first: number, second: number, firstHash: Uint8Array, secondHash: Uint8Array, path: readonly Uint8Array[]): boolean {
  if (first === second) return path.length === 0 && bytesEqual(firstHash, secondHash);
  if (path.length === 0 || first === 0 || first > second) return false;
  const p = (first & (first - 1)) === 0 ? [firstHash, ...path] : [...path];
  let fn = first - 1;
  let sn = second - 1;
  while (lsb(fn)) { fn = half(fn); sn = half(sn); }
  let fr = p[0]!;
  let sr = p[0]!;
  for (const c of p.slice(1)) {
    if (sn === 0) return false;
    if (lsb(fn) || fn === sn) {
      fr = sha(ONE, c, fr);
      sr = sha(ONE, c, sr);
      if (!lsb(fn)) while (!(lsb(fn) || fn === 0)) { fn = half(fn); sn = half(sn); }
    } else {
      sr = sha(ONE, sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return bytesEqual(fr, firstHash) && bytesEqual(sr, secondHash) && sn === 0;
}

t.test('the bundles\' inclusion and consistency proofs verify with the RFC 9162 transcription', async (t) => {
  for (const label of ['op-1', 'op-2', 'op-3']) {
    const b = bundleOf(label);
    const cp = parseCheckpoint(parseNote(b.log.checkpoint).text);
    for (const e of b.log.entries) {
      const leaf = sha(new Uint8Array([0]), Buffer.from(e.data, 'hex'));
      t.ok(rfcVerifyInclusion(e.leafIndex, cp.size, leaf, e.proof.map((h) => decodeBase64Strict(h)!), cp.root), `${label}: leaf ${e.leafIndex} of ${cp.size}`);
    }
  }
  const older = parseCheckpoint(parseNote(bundleOf('op-1').log.checkpoint).text);
  const newer = parseCheckpoint(parseNote(bundleOf('op-2').log.checkpoint).text);
  t.ok(rfcVerifyConsistency(older.size, newer.size, older.root, newer.root, bundleOf('op-2').log.consistency!.proof.map((h) => decodeBase64Strict(h)!)), `consistency ${older.size} -> ${newer.size}`);
});

t.test('the node\'s stored tree: every proof over many tree sizes verifies with the RFC 9162 transcription, a changed bit never', async (t) => {
  const tree = new LedgerTree(null);
  const N = 600;
  const entries: LedgerEntry[] = Array.from({ length: N }, (_, k) => ({ index: 2 * (k + 1), stampMs: k + 1, event: encodeEvent({ type: 'ClockTick', nodeId: 'n1', passport: `p-${k + 1}` }) }));
  entries.forEach((e, k) => tree.append(e, null, k + 1, false));
  const roots: Uint8Array[] = [sha()];
  for (let n = 1; n <= N; n++) roots.push(await tree.rootAt(n));
  // Leaf i is the entry's canonical CBOR { index, stampMs, event } (ledger-log.ts), hashed here with RFC 9162 §2.1.1's 0x00 prefix.
  const leaves = entries.map((e) => sha(new Uint8Array([0]), entryLeafData(e)));
  const r = await fc.check(fc.asyncProperty(fc.integer({ min: 1, max: N }), fc.nat(), fc.nat(), async (size, i, j) => {
    const index = i % size;
    const proof = await tree.proof(index, size);
    if (!rfcVerifyInclusion(index, size, leaves[index]!, proof, roots[size]!)) return false;
    if (proof.length > 0) {
      const bad = proof.map((h, k) => (k === j % proof.length ? h.map((x, m) => (m === 0 ? x ^ 0x10 : x)) : h));
      if (rfcVerifyInclusion(index, size, leaves[index]!, bad, roots[size]!)) return false;
    }
    const first = 1 + (j % size);
    const cons = await tree.consistency(first, size);
    if (!rfcVerifyConsistency(first, size, roots[first]!, roots[size]!, cons)) return false;
    if (cons.length > 0) {
      const bad = cons.map((h, k) => (k === i % cons.length ? h.map((x, m) => (m === 31 ? x ^ 1 : x)) : h));
      if (rfcVerifyConsistency(first, size, roots[first]!, roots[size]!, bad)) return false;
    }
    return true;
  }), { ...RUN, numRuns: Math.max(RUN.numRuns, 300) });
  t.equal(r.failed, false, `inclusion and consistency proofs of trees of 1..${N} leaves verify with the transcription (${r.numRuns} runs)${r.failed ? `: ${fc.defaultReportMessage(r) ?? ''}` : ''}`);
});
