/**
 * The kernel twin (node/lifecycle/kernel-twin.ts) keeps the kernel's signing contract: every
 * message of an act in one request under one permit, message i with nonce counters[i] and list
 * lists[i], checked before any nonce is consumed; the identical request replays, anything else
 * under a used permit is STEP_PERMIT_REUSED. Signatures are aggregated from the twins' shares and
 * checked with verifiers independent of the FROST code (BIP 340 for taproot, OpenSSL Ed25519).
 * The governance decisions are real approver-signed ones (test/kernel/harness.ts Governance).
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { fromHex } from '../../ledger/encoding.js';
import { messagesDigest } from '../../ledger/tx/messages.js';
import { rosterFromJson } from '../../kernel/authority.js';
import type { KernelClient } from '../../kernel/client.js';
import { suiteOf, type SuiteName } from '../../kernel/suites.js';
import type { NonceCommitment, RequestBody, SigningCommitment } from '../../kernel/wire.js';
import { KernelTwin } from '../../node/lifecycle/kernel-twin.js';
import { tx as txLimits } from '../../proto/limits.js';
import {
  following, Governance, independentVerify, permitOver, reasonOf, runDkg, signManyAcross, toPackage, type KeyResult, type Member,
  syntheticActCheck, TEST_POLICY, type ApprovalOf, signWith,
} from '../kernel/harness.js';
import { decryptShareBackup, readShareBackupMeta } from '../../kernel/backup.js';
import { custodians, type Custodian } from '../ledger/backup-fixtures.js';

type SignBody = Extract<RequestBody, { kind: 'sign' }>;

async function twins(gov: Governance, ids: string[], synthetic = true): Promise<Member[]> {
  const pin = gov.pin();
  const out: Member[] = [];
  for (const id of ids) {
    const k = await KernelTwin.open(id, pin.clusterId, fromHex(pin.genesisCid), rosterFromJson(pin.roster), pin.nodes.map((n) => ({ id: n.id, identityKey: fromHex(n.identityKey) })), gov.policy);
    // Synthetic acts of several messages: the request is checked, the parse is kernel/act-check.ts's tests'.
    if (synthetic) k.actCheck = syntheticActCheck;
    const s = await k.call({ kind: 'status' }, 'status');
    out.push({ nodeId: id, client: following(k as unknown as KernelClient), transportPublicKey: s.transportPublicKey });
  }
  return out;
}

const listOf = (ns: readonly NonceCommitment[]): SigningCommitment[] => ns.map((n) => ({ identifier: n.identifier, hiding: n.hiding, binding: n.binding }));
const presign = async (m: Member, key: KeyResult, count: number): Promise<NonceCommitment[]> =>
  (await m.client.call({ kind: 'nonces', keyId: key.keyId, keyEpoch: 0, count }, 'nonceCommitments')).commitments;

t.test('the twin signs N messages in one request, every suite', async (t) => {
  const gov = new Governance();
  const [a, b, c] = (await twins(gov, ['n1', 'n2', 'n3'])) as [Member, Member, Member];
  for (const suite of ['taproot', 'secp256k1', 'ed25519'] as SuiteName[]) {
    const key = await runDkg(gov, [a, b, c], `twin-${suite}`, suite, 2);
    for (const messages of [[randomBytes(32)], [randomBytes(32), randomBytes(32)], Array.from({ length: 5 }, () => randomBytes(32)), [randomBytes(txLimits.solanaMessageBytesMax)]]) {
      const out = await signManyAcross(gov, [a, c], key, messages);
      t.ok(out.signatures.every((sig, i) => independentVerify(suite, key.public.commitments[0]!, messages[i]!, sig)), `${suite}: ${messages.length} message(s) of ${messages[0]!.length} bytes, each signature verifies`);
    }
  }
});

t.test('the twin refuses every change to a permitted request and replays only the identical one', async (t) => {
  const gov = new Governance();
  const [a, b, c] = (await twins(gov, ['n1', 'n2', 'n3'])) as [Member, Member, Member];
  const key = await runDkg(gov, [a, b, c], 'twin-attack', 'ed25519', 2);
  const sign = (body: RequestBody): Promise<string> => reasonOf(a.client.call(gov.certified(body), 'signatureShares'));
  const messages = [Buffer.from('input 0'), Buffer.from('input 1'), Buffer.from('input 2')];
  const mine = await presign(a, key, 3);
  const theirs = await presign(b, key, 3);
  const strangers = await presign(c, key, 3);
  const lists = messages.map((_, i) => listOf([mine[i]!, theirs[i]!]));
  const good: SignBody = { kind: 'sign', permit: permitOver(key, messages, gov.permitIndex()), messages, lists, counters: mine.map((n) => n.counter), ledgerConsumedCounter: 0 };
  const swap = <T>(xs: readonly T[], i: number, j: number): T[] => xs.map((x, k) => (k === i ? xs[j]! : k === j ? xs[i]! : x));

  const variants: [string, SignBody, string][] = [
    ['a message swapped', { ...good, messages: [messages[0]!, Buffer.from('input 1, elsewhere'), messages[2]!] }, 'DIGEST_MISMATCH'],
    ['messages reordered', { ...good, messages: swap(messages, 0, 1) }, 'DIGEST_MISMATCH'],
    ['a message dropped with its list and counter', { ...good, messages: messages.slice(1), lists: lists.slice(1), counters: good.counters.slice(1) }, 'DIGEST_MISMATCH'],
    ['counters not ascending', { ...good, counters: swap(good.counters, 0, 1), lists: swap(lists, 0, 1) }, 'PAYLOAD_REJECTED'],
    ['a counter repeated', { ...good, counters: [good.counters[0]!, good.counters[0]!, good.counters[2]!] }, 'NONCE_REUSED'],
    ['a list naming another counter\'s commitment', { ...good, lists: [lists[0]!, listOf([mine[2]!, theirs[1]!]), lists[2]!] }, 'BINDING_MISMATCH'],
    ['a list naming another signer set', { ...good, lists: [lists[0]!, listOf([mine[1]!, strangers[1]!]), lists[2]!] }, 'PAYLOAD_REJECTED'],
    ['fewer lists than messages', { ...good, lists: lists.slice(0, 2) }, 'PAYLOAD_REJECTED'],
    ['more counters than messages', { ...good, counters: [...good.counters, good.counters[2]! + 1] }, 'PAYLOAD_REJECTED'],
  ];
  for (const [what, body, reason] of variants) t.equal(await sign(body), reason, what);

  const first = await a.client.call(gov.certified(good), 'signatureShares');
  t.same(first.counters, good.counters, 'the refusals left every nonce of the act usable');
  const again = await a.client.call(gov.certified(good), 'signatureShares');
  t.same(again.sigShares.map((x) => Buffer.from(x)), first.sigShares.map((x) => Buffer.from(x)), 'the identical request again returns identical shares');
  const other = await b.client.call(gov.certified({ ...good, counters: theirs.map((n) => n.counter) }), 'signatureShares');
  for (const [i, m] of messages.entries()) {
    const sig = suiteOf('ed25519').frost.aggregate(toPackage(key.public) as never, lists[i] as never, m, { [first.identifier]: again.sigShares[i]!, [other.identifier]: other.sigShares[i]! } as never);
    t.ok(independentVerify('ed25519', key.public.commitments[0]!, m, sig), `replayed share ${i} completes a valid signature`);
  }
  const fresh = await presign(a, key, 3);
  t.equal(await sign({ ...good, lists: messages.map((_, i) => listOf([fresh[i]!, theirs[i]!])), counters: fresh.map((n) => n.counter) }), 'STEP_PERMIT_REUSED', 'fresh nonces under the used permit');
  const two = messages.slice(0, 2);
  t.equal(await sign({ ...good, messages: two, lists: lists.slice(0, 2), counters: good.counters.slice(0, 2), permit: { ...good.permit, messageDigest: messagesDigest(two) } }), 'STEP_PERMIT_REUSED', 'a subset of the messages under the used permit id');
  t.equal(await sign({ ...good, permit: permitOver(key, messages, gov.permitIndex()) }), 'NONCE_REUSED', 'the consumed counters under a new permit');
});

t.test('the twin checks the certificate as the kernel does, before any nonce', async (t) => {
  const gov = new Governance();
  const [a, b] = (await twins(gov, ['n1', 'n2'])) as [Member, Member];
  const key = await runDkg(gov, [a, b], 'twin-cert', 'ed25519', 2);
  const messages = [Buffer.from('input 0')];
  const [mine] = await presign(a, key, 1);
  const [theirs] = await presign(b, key, 1);
  const lists = [listOf([mine!, theirs!])];
  const good: SignBody = { kind: 'sign', permit: permitOver(key, messages, gov.permitIndex()), messages, lists, counters: [mine!.counter], ledgerConsumedCounter: 0 };
  const entries = () => gov.actEntries(good.permit, lists, { [mine!.identifier]: [mine!.counter], [theirs!.identifier]: [theirs!.counter] }, []);
  const sign = (body: SignBody): Promise<string> => reasonOf(a.client.call(body, 'signatureShares'));
  t.equal(await sign(good), 'CHECKPOINT_NOT_CERTIFIED', 'no certificate');
  t.equal(await sign({ ...good, certificate: gov.certify(entries(), [gov.voters[0]!]) }), 'CHECKPOINT_NOT_CERTIFIED', 'one voter of three');
  t.equal(await sign({ ...good, certificate: gov.certify(gov.actEntries(good.permit, lists, { [mine!.identifier]: [mine!.counter + 1] }, [])) }), 'SIGNING_SET_MISMATCH', 'counters not the set\'s');
  const real = gov.certify(entries());
  t.equal(await sign({ ...good, certificate: { ...real, inclusions: [real.inclusions[0]!, { ...real.inclusions[1]!, proof: [] }] } }), 'ENTRY_NOT_INCLUDED', 'an entry without its proof');
  await a.client.call({ kind: 'governance', decisions: [gov.decide({ kind: 'NodeRemoved', nodeId: 'v3' })] }, 'governance');
  t.equal(await sign({ ...good, certificate: gov.certify(entries(), [gov.voters[0]!, gov.voters[2]!]) }), 'CHECKPOINT_NOT_CERTIFIED', 'a removed node does not count');
  t.equal(await sign({ ...good, certificate: gov.certify(entries(), [gov.voters[0]!, gov.voters[1]!]) }), 'OK', 'the nonce signs once a majority certified');
});

t.test('the twin runs the kernel\'s policy check: a raw act signs only with the approvals its rule requires', async (t) => {
  const gov = new Governance();
  const [a, b] = (await twins(gov, ['n1', 'n2'], false)) as [Member, Member];
  const key = await runDkg(gov, [a, b], 'twin-policy', 'ed25519', 2);
  const message = Buffer.from('attest: reserves at block 840000');
  const messages = gov.transaction(key.keyId, 'raw', message);
  const [mine] = await presign(a, key, 1);
  const [theirs] = await presign(b, key, 1);
  const lists = [listOf([mine!, theirs!])];
  const body = (): SignBody => ({ kind: 'sign', permit: permitOver(key, messages, gov.permitIndex()), messages, lists, counters: [mine!.counter], ledgerConsumedCounter: 0 });
  const attempt = (approval: ApprovalOf): Promise<string> => {
    const b0 = body();
    return reasonOf(a.client.call({ ...b0, certificate: gov.certify(gov.actEntries(b0.permit, lists, {}, b0.counters, { messages, approval })) }, 'signatureShares'));
  };
  t.equal(await attempt(() => null), 'APPROVALS_MISSING', 'without an approval the twin refuses, as the kernel does');
  t.equal(await attempt((x) => gov.approve(x, gov.approvers.slice(0, 1))), 'APPROVALS_MISSING', 'one approver is not two');
  t.equal(gov.policy, TEST_POLICY, 'the twins were opened with the governors-approve-raw policy');
  t.equal(await attempt((x) => gov.approve(x)), 'OK', 'with two approvals of the governors it signs, with the nonce the refusals left unconsumed');
});

t.test('the twin backs up a share only to the custodians of the BackupPolicy it verified', async (t) => {
  const gov = new Governance();
  const [a, b] = (await twins(gov, ['n1', 'n2'])) as [Member, Member];
  const key = await runDkg(gov, [a, b], 'twin-backup', 'ed25519', 2);
  const [alice, mallory] = await custodians('alice', 'mallory') as [Custodian, Custodian];
  const backup = (m: Member, recipients: string[], keyId = key.keyId, epoch = 0) => m.client.call({ kind: 'shareBackup', keyId, epoch, recipients }, 'shareBackup');
  t.equal(await reasonOf(backup(a, [alice.recipient])), 'BACKUP_POLICY_MISSING');
  const d = gov.decide({ kind: 'BackupPolicy', recipients: [{ label: 'alice', recipient: alice.recipient }] });
  for (const m of [a, b]) await m.client.call({ kind: 'governance', decisions: [d] }, 'governance');
  t.equal(await reasonOf(backup(a, [mallory.recipient])), 'BACKUP_RECIPIENTS_MISMATCH');
  t.equal(await reasonOf(backup(a, [alice.recipient, mallory.recipient])), 'BACKUP_RECIPIENTS_MISMATCH');
  t.equal(await reasonOf(backup(a, [alice.recipient], 'no-key')), 'KEY_NOT_ACTIVE');
  t.equal(await reasonOf(backup(a, [alice.recipient], key.keyId, 1)), 'STALE_EPOCH');
  const shares: { me: string; share: Uint8Array }[] = [];
  for (const m of [a, b]) {
    const r = await backup(m, [alice.recipient]);
    const meta = readShareBackupMeta(r.file);
    t.equal(meta.identifier, key.identifiers[m.nodeId]);
    t.same(meta.groupKey, key.public.commitments[0]);
    shares.push({ me: meta.identifier, share: await decryptShareBackup(r.file, alice.identity, meta) });
  }
  t.ok(signWith(suiteOf('ed25519'), toPackage(key.public), shares), 'the recovered shares sign under the group key');
});
