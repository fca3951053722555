/**
 * Evidence bundles: an intact bundle verifies offline; changing any byte of any receipt (its
 * canonical bytes or its stated cid) breaks the chain at exactly that receipt, both through the
 * function and through the real CLI (`custody evidence verify`). The verdict names the policy rule
 * the AdmissionReceipt records; a bundle whose rule was changed does not verify.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { evidenceBundle, verifyBundleSignature, type Bundle, type SignatureBlock, type SignerEntry } from '../../node/lifecycle/evidence.js';
import { verifyEvidence } from '../../node/commands/evidence.js';
import { getTransactionDecoder } from '@solana/transactions';
import { ScriptedCluster, seedOf, exportEvidenceBundle, verifyEvidenceBundle, digest, fromHex, toHex, decode, encode, receiptCid, type CborValue, type EvidenceBundle, type GovernanceDecision } from '../../ledger/index.js';
import { rid } from '../../ledger/scenario.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'node', 'cli.js');

/** A published act that needed approvals and a release decision: the fullest bundle there is. */
function publishedCluster(): { s: ScriptedCluster; approval: GovernanceDecision } {
  const s = new ScriptedCluster();
  s.genesis();
  for (const r of s.createKey('k1')) if (!r.ok) throw new Error(`setup: ${r.reason}`);
  const act = s.act('k1', { amount: 50_000n });
  const approval: GovernanceDecision = s.approveAct('op-1', act);
  const steps = [s.submit('op-1', act, approval), s.issuePermit('op-1'), s.execute('op-1')];
  const aCid = s.state.cluster!.ops[rid('op-1')]!.actCid;
  steps.push(s.decide({ kind: 'PublicationReleased', opId: rid('op-1'), actCid: aCid, displayHash: act.displayHash }, undefined, { parentCid: aCid }), s.publish('op-1'));
  for (const r of steps) if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  return { s, approval };
}

function publishedBundle(): EvidenceBundle {
  const { s, approval } = publishedCluster();
  return JSON.parse(JSON.stringify(exportEvidenceBundle(s.clusterId, s.state.cluster!.ops[rid('op-1')]!, approval, { roster: s.state.cluster!.governance.roster, epoch: s.state.cluster!.governance.epoch }))) as EvidenceBundle;
}

function withReceipt(b: EvidenceBundle, i: number, field: 'cbor' | 'cid', hex: string): EvidenceBundle {
  return { ...b, receipts: b.receipts.map((r, j) => (j === i ? { ...r, [field]: hex } : r)) };
}

function flipByte(hex: string, at: number): string {
  const bytes = fromHex(hex);
  bytes[at] = (bytes[at] as number) ^ 0x01;
  return toHex(bytes);
}

const bundle = publishedBundle();

t.test('an intact bundle verifies: AdmissionReceipt -> PermitReceipt -> PublicationReceipt', async (t) => {
  t.same(verifyEvidenceBundle(bundle), { ok: true, links: ['AdmissionReceipt', 'PermitReceipt', 'PublicationReceipt'], ruleId: 'sol-approved' });
  t.match(bundle.rule, { id: 'sol-approved', action: 'REQUIRE_APPROVAL', detail: /2 of 2 approvals/ }, 'the bundle carries the rule with its explanation');
});

/** The bundle with its AdmissionReceipt re-encoded after `change`, its cid recomputed to match. */
function withAdmission(b: EvidenceBundle, change: (r: { [k: string]: CborValue }) => { [k: string]: CborValue }): EvidenceBundle {
  const r = change({ ...(decode(fromHex(b.receipts[0]!.cbor)) as { [k: string]: CborValue }) });
  const raw = encode(r);
  return { ...b, receipts: b.receipts.map((x, j) => (j === 0 ? { ...x, cbor: toHex(raw), cid: toHex(receiptCid(r)) } : x)) };
}

t.test('a bundle whose rule was changed does not verify', async (t) => {
  // The bundle's own rule field alone: it must be the rule the receipt names.
  t.match(verifyEvidenceBundle({ ...bundle, rule: { ...bundle.rule!, id: 'sol-small' } }), { ok: false, link: 1, reason: 'BINDING_MISMATCH' });
  t.match(verifyEvidenceBundle({ ...bundle, rule: { ...bundle.rule!, id: null } }), { ok: false, link: 1, reason: 'BINDING_MISMATCH' });
  t.match(verifyEvidenceBundle({ ...bundle, rule: null }), { ok: false, link: 1, reason: 'BINDING_MISMATCH' });
  // The receipt's rule id, re-hashed so its own cid holds and the bundle's field agrees: the permit
  // receipt still names the original admission.
  const forged = withAdmission({ ...bundle, rule: { ...bundle.rule!, id: 'sol-small' } }, (r) => ({ ...r, ruleId: 'sol-small' }));
  t.match(verifyEvidenceBundle(forged), { ok: false, link: 2, name: 'PermitReceipt', reason: 'BINDING_MISMATCH' });
  t.match(verifyEvidence(forged), { ok: false, link: 2 });
  // Without re-hashing, the admission itself breaks.
  const unhashed = { ...forged, receipts: forged.receipts.map((x, j) => (j === 0 ? { ...x, cid: bundle.receipts[0]!.cid } : x)) };
  t.match(verifyEvidenceBundle(unhashed), { ok: false, link: 1, reason: 'BINDING_MISMATCH' });
  // A receipt without the field, or with a rule id that is not text, is malformed.
  t.match(verifyEvidenceBundle(withAdmission(bundle, (r) => { const { ruleId: _drop, ...rest } = r; return rest; })), { ok: false, link: 1, reason: 'PAYLOAD_REJECTED' });
  t.match(verifyEvidenceBundle(withAdmission({ ...bundle, rule: undefined }, (r) => ({ ...r, ruleId: 7 }))), { ok: false, link: 1, reason: 'PAYLOAD_REJECTED' });
  t.match(verifyEvidenceBundle(withAdmission({ ...bundle, rule: undefined }, (r) => ({ ...r, ruleId: '' }))), { ok: false, link: 1, reason: 'PAYLOAD_REJECTED' });
});

t.test('changing any byte of any receipt breaks the chain at that receipt', async (t) => {
  for (let i = 0; i < bundle.receipts.length; i++) {
    const r = bundle.receipts[i]!;
    const n = fromHex(r.cbor).length;
    let broken = 0;
    for (let at = 0; at < n; at++) {
      const v = verifyEvidenceBundle(withReceipt(bundle, i, 'cbor', flipByte(r.cbor, at)));
      if (!v.ok && v.link === i + 1 && v.name === r.type) broken++;
      else t.fail(`receipt ${i + 1} byte ${at}: ${JSON.stringify(v)}`);
    }
    t.equal(broken, n, `all ${n} one-byte changes of ${r.type} are caught at link ${i + 1}`);
    let cidBroken = 0;
    for (let at = 0; at < 32; at++) {
      const v = verifyEvidenceBundle(withReceipt(bundle, i, 'cid', flipByte(r.cid, at)));
      if (!v.ok && v.link === i + 1 && v.reason === 'BINDING_MISMATCH') cidBroken++;
    }
    t.equal(cidBroken, 32, `all 32 one-byte changes of the stated cid of ${r.type} are caught`);
  }
});

t.test('a receipt recomputed to hide a change still breaks the next link', async (t) => {
  // Re-hashing a forged receipt makes its own cid consistent, but its successor names the original.
  const tampered = fromHex(bundle.receipts[0]!.cbor);
  const ix = tampered.length - 40;
  tampered[ix] = (tampered[ix] as number) ^ 0x01;
  const rehashed = { ...bundle, receipts: bundle.receipts.map((r, j) => (j === 0 ? { ...r, cbor: toHex(tampered), cid: toHex(digest('custody-ledger/v1/receipt', tampered)) } : r)) };
  const w = verifyEvidenceBundle(rehashed);
  t.ok(!w.ok && (w.link === 1 || w.link === 2), `caught at link ${w.ok ? '-' : w.link}: ${w.ok ? '' : w.detail}`);
});

t.test('dropped, reordered or foreign receipts and a changed act are refused', async (t) => {
  t.match(verifyEvidenceBundle({ ...bundle, receipts: [bundle.receipts[0]!, bundle.receipts[2]!] }), { ok: false, link: 2, name: 'PermitReceipt' });
  t.match(verifyEvidenceBundle({ ...bundle, receipts: [...bundle.receipts].reverse() }), { ok: false, link: 1 });
  t.match(verifyEvidenceBundle({ ...bundle, opId: 'op-2' }), { ok: false });
  t.match(verifyEvidenceBundle({ ...bundle, clusterId: 'elsewhere' }), { ok: false });
  const act = fromHex(bundle.act);
  for (let at = 0; at < act.length; at += 5) {
    t.match(verifyEvidenceBundle({ ...bundle, act: flipByte(bundle.act, at) }), { ok: false }, `act byte ${at}`);
  }
  t.match(verifyEvidenceBundle({ ...bundle, approval: null }), { ok: false, link: 1, reason: 'BINDING_MISMATCH' });
  t.match(verifyEvidenceBundle({ format: 'other' }), { ok: false, link: 0, reason: 'PAYLOAD_REJECTED' });
  t.match(verifyEvidenceBundle(null), { ok: false, link: 0 });
});

t.test('a bundle with the released signature verifies it under the group key; a changed signature breaks that link', async (t) => {
  const { s, approval } = publishedCluster();
  const full = JSON.parse(JSON.stringify(evidenceBundle(s.state.cluster!, rid('op-1'), approval))) as Bundle & { signature: SignatureBlock };
  const op = s.state.cluster!.ops[rid('op-1')]!;
  const set = op.signingSet!.commitments.map((m) => m.nodeId);
  t.same(verifyEvidence(full), { ok: true, opId: rid('op-1'), clusterId: s.clusterId, rule: 'sol-approved', links: [`request signed by custodian custodian-1 (roster of governance epoch ${String(full.rosterEpoch)})`, 'AdmissionReceipt', 'PermitReceipt', 'PublicationReceipt', 'signature', `signers ${set.join('+')} (the signature's R is their group commitment)`] });
  t.equal(full.signature.display, s.facts(op.act).display, 'the bundle carries the display the approvers saw');
  t.same(full.signature.messages, [toHex(op.act.tx)], 'a Solana act signs its message');
  const wire = getTransactionDecoder().decode(fromHex(full.signature.finalized));
  t.same(Buffer.from(wire.messageBytes), Buffer.from(op.act.tx), 'the finalized transaction decodes (@solana/transactions) to the act\'s message');
  t.same(Object.values(wire.signatures).map((x) => toHex(x!)), full.signature.signatures, 'with the released signature');
  const forged = { ...full, signature: { ...full.signature, signatures: [flipByte(full.signature.signatures[0]!, 3)] } };
  t.match(verifyEvidence(forged), { ok: false, link: 4, name: 'signature' });
  // An attacker's block: another display, other messages, another finalized transaction, another key or asset table.
  const block = (over: Partial<SignatureBlock>) => verifyBundleSignature({ ...full, signature: { ...full.signature, ...over } });
  t.match(block({ display: full.signature.display.replace('output 0', 'output 1') }), { ok: false, reason: 'BINDING_MISMATCH', detail: /display/ });
  t.match(block({ messages: [toHex(seedOf('another message'))] }), { ok: false, reason: 'BINDING_MISMATCH', detail: /messages/ });
  t.match(block({ finalized: flipByte(full.signature.finalized, 70) }), { ok: false, reason: 'BINDING_MISMATCH', detail: /finalized/ });
  t.match(block({ groupKey: toHex(s.groupKey('k-other')), groupPublicKey: toHex(s.groupKey('k-other')) }), { ok: false, reason: 'BINDING_MISMATCH' }, 'another key: the transaction is not its own');
  t.match(block({ assets: { SOL: { network: 'solana-devnet', onChain: 'native', decimals: 6 } } }), { ok: false, reason: 'BINDING_MISMATCH', detail: /display/ }, 'another asset table renders another display');
  t.match(block({ signatures: [...full.signature.signatures, ...full.signature.signatures] }), { ok: false, reason: 'BINDING_MISMATCH' }, 'two signatures for one message');
  t.match(verifyEvidence({ ...full, receipts: full.receipts.slice(0, 2) }), { ok: false, link: 3, name: 'signature', reason: 'BINDING_MISMATCH' }, 'a signature never released');
});

t.test('the signing set in the bundle is the one the signature was aggregated over: another set, order or commitment is refused', async (t) => {
  const { s, approval } = publishedCluster();
  const full = JSON.parse(JSON.stringify(evidenceBundle(s.state.cluster!, rid('op-1'), approval))) as Bundle & { signature: SignatureBlock & { signers: SignerEntry[] } };
  const signers = full.signature.signers;
  t.equal(signers.length, 2, 'a 2-of-3 key lists the two signers the ledger fixed');
  t.same(signers.map((m) => m.node), s.state.cluster!.ops[rid('op-1')]!.signingSet!.commitments.map((m) => m.nodeId));
  const withSigners = (list: unknown) => verifyBundleSignature({ ...full, signature: { ...full.signature, signers: list as SignerEntry[] } });
  t.same(withSigners(signers), { ok: true });
  const [a, b] = signers as [SignerEntry, SignerEntry];
  const nonce = (x: SignerEntry, over: object): SignerEntry => ({ ...x, nonces: [{ ...x.nonces[0]!, ...over }] });
  t.match(withSigners([a]), { ok: false, reason: 'BINDING_MISMATCH', detail: /not aggregated over the listed signers/ }, 'one signer left out');
  t.match(withSigners([a, nonce(b, { hiding: a.nonces[0]!.hiding })]), { ok: false, reason: 'BINDING_MISMATCH' }, 'a commitment replaced by another valid point');
  t.match(withSigners([a, { ...b, identifier: '03'.padEnd(64, '0') }]), { ok: false, reason: 'BINDING_MISMATCH' }, 'another identifier');
  t.match(withSigners([b, a]), { ok: false, reason: 'PAYLOAD_REJECTED', detail: /sorted/ }, 'the same set out of order');
  t.match(withSigners([a, nonce(b, { binding: '00'.repeat(32) })]), { ok: false, reason: 'PAYLOAD_REJECTED', detail: /group element/ }, 'a commitment that is no point');
  t.match(withSigners([a, { ...b, nonces: [...b.nonces, ...b.nonces] }]), { ok: false, reason: 'PAYLOAD_REJECTED', detail: /one nonce pair per message/ }, 'two nonce pairs for one message');
  t.match(withSigners([]), { ok: false, reason: 'PAYLOAD_REJECTED' });
  t.match(withSigners('n1'), { ok: false, reason: 'PAYLOAD_REJECTED' });
  t.match(verifyEvidence({ ...full, signature: { ...full.signature, signers: [a] } }), { ok: false, link: 4, name: 'signature', reason: 'BINDING_MISMATCH' });
  const { signers: _dropped, ...withoutSigners } = full.signature;
  t.same(verifyBundleSignature({ ...full, signature: withoutSigners }), { ok: true }, 'a bundle without the block still verifies its signature');
});

t.test('custody evidence verify (the real CLI) passes an intact bundle and names the broken link of a tampered one', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'evidence-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const run = (b: unknown) => {
    const f = join(dir, 'bundle.json');
    writeFileSync(f, typeof b === 'string' ? b : JSON.stringify(b));
    return spawnSync(process.execPath, [CLI, 'evidence', 'verify', f], { encoding: 'utf8', timeout: 120_000 });
  };
  const intact = run(bundle);
  t.equal(intact.status, 0, intact.stderr);
  t.match(intact.stdout, new RegExp(`ok: act ${rid('op-1')} .*admitted by policy rule sol-approved: request signed by custodian custodian-1 \\(roster of governance epoch \\d+\\) -> AdmissionReceipt -> PermitReceipt -> PublicationReceipt`));
  // Link 0 holds the custodian's request: a bundle whose request was signed by a governor, or whose
  // roster no longer names the custodian, is refused with the reason.
  const roster = decode(fromHex(bundle.roster!)) as { approvers: { id: string }[]; quorum: CborValue };
  const withoutCustodian = toHex(encode({ ...roster, approvers: roster.approvers.filter((a) => a.id !== 'custodian-1') } as unknown as CborValue));
  const removed = run({ ...bundle, roster: withoutCustodian });
  t.equal(removed.status, 3, 'a roster without the custodian: exit 3');
  t.match(removed.stderr, /NOT_A_CUSTODIAN: link 0 \(bundle\) is broken/);
  for (let i = 0; i < bundle.receipts.length; i++) {
    const r = bundle.receipts[i]!;
    const at = Math.floor(fromHex(r.cbor).length / 2);
    const res = run(withReceipt(bundle, i, 'cbor', flipByte(r.cbor, at)));
    t.equal(res.status, 3, `tampered ${r.type}: exit 3`);
    t.match(res.stderr, new RegExp(`link ${i + 1} \\(${r.type}\\) is broken`), `names ${r.type}`);
  }
  const junk = run('{ not json');
  t.equal(junk.status, 3);
  t.match(junk.stderr, /PAYLOAD_REJECTED/);
});
