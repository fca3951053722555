/**
 * DKG integrity (in-process kernels, the same core the socket serves): proofs of knowledge are
 * checked (RFC 9591 App. C / noble round 2), round-2 packages travel as HPKE ciphertexts
 * (RFC 9180) that open only for their recipient, in their ceremony, from their sender, and a
 * key generation needs its DkgAuthorized decision to match.
 */
import t from 'tap';
import type { Kernel } from '../../kernel/kernel.js';
import type { Participant, ResponseBody, Round1Package, SealedPackage } from '../../kernel/wire.js';
import { Governance, identifierFor, openInProcess, tempDir } from './harness.js';

async function call(k: Kernel, body: Parameters<Kernel['handle']>[0]): Promise<ResponseBody> {
  return k.handle(body).catch((e: unknown) => ({ kind: 'error', reason: (e as { reason: never }).reason, detail: String(e) }) as ResponseBody);
}
const reason = (r: ResponseBody): string => (r.kind === 'error' ? r.reason : 'OK');

t.test('DKG refuses forged proofs and misrouted, tampered or replayed packages', { timeout: 300_000 }, async (t) => {
  const { dir, cleanup } = tempDir('dkg');
  const gov = new Governance();
  const ks = await Promise.all(['n1', 'n2', 'n3'].map((id) => openInProcess(dir, id, 'software', gov)));
  t.teardown(async () => {
    for (const k of ks) await k.close();
    cleanup();
  });
  const [k1, k2, k3] = ks.map((k) => k.kernel) as [Kernel, Kernel, Kernel];
  const participants: Participant[] = ks.map((k, i) => ({ identifier: identifierFor('ed25519', i + 1), nodeId: `n${i + 1}`, transportPublicKey: k.kernel.transportPublicKey }));
  const authz = gov.decide({ kind: 'DkgAuthorized', keyId: 'k-dkg', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ['n1', 'n2', 'n3'] });
  for (const k of [k1, k2, k3]) await k.handle({ kind: 'governance', decisions: [authz] });

  t.equal(reason(await call(k1, { kind: 'dkgBegin', ceremonyId: 'c0', keyId: 'k-dkg', suite: 'ed25519', min: 3, participants, identifier: participants[0]!.identifier })), 'BINDING_MISMATCH', 'a threshold other than the decision\'s');
  t.equal(reason(await call(k1, { kind: 'dkgBegin', ceremonyId: 'c0', keyId: 'k-dkg', suite: 'secp256k1', min: 2, participants, identifier: participants[0]!.identifier })), 'BINDING_MISMATCH', 'a suite other than the decision\'s');
  const swapped = participants.map((p, i) => (i === 1 ? { ...p, transportPublicKey: participants[0]!.transportPublicKey } : p));
  t.equal(reason(await call(k2, { kind: 'dkgBegin', ceremonyId: 'c0', keyId: 'k-dkg', suite: 'ed25519', min: 2, participants: swapped, identifier: participants[1]!.identifier })), 'BINDING_MISMATCH', 'a transport key for this node that is not its own');

  const r1: Round1Package[] = [];
  for (const [i, k] of [k1, k2, k3].entries()) {
    const r = await k.handle({ kind: 'dkgBegin', ceremonyId: 'c1', keyId: 'k-dkg', suite: 'ed25519', min: 2, participants, identifier: participants[i]!.identifier });
    if (r.kind !== 'dkgRound1') throw new Error('round 1 failed');
    r1.push(r.package);
  }
  // A forged proof of knowledge (one bit of the response scalar flipped) is refused.
  const forged = r1.map((p, i) => (i === 1 ? { ...p, proofOfKnowledge: Uint8Array.from(p.proofOfKnowledge, (b, j) => (j === 40 ? b ^ 1 : b)) } : p));
  t.equal(reason(await call(k1, { kind: 'dkgRound2', ceremonyId: 'c1', round1: [forged[1]!, forged[2]!] })), 'PAYLOAD_REJECTED', 'forged proof of knowledge');
  t.equal(reason(await call(k1, { kind: 'dkgRound2', ceremonyId: 'c1', round1: [r1[1]!] })), 'SESSION_MISMATCH', 'a missing participant');

  const sealed: SealedPackage[] = [];
  for (const [i, k] of [k1, k2, k3].entries()) {
    const r = await k.handle({ kind: 'dkgRound2', ceremonyId: 'c1', round1: r1.filter((_, j) => j !== i) });
    if (r.kind !== 'dkgRound2') throw new Error('round 2 failed');
    sealed.push(...r.packages);
  }
  t.equal(sealed.length, 6, 'one sealed package per ordered pair');
  const to = (i: number): SealedPackage[] => sealed.filter((p) => p.recipient === participants[i]!.identifier);
  const others = (i: number): Round1Package[] => r1.filter((_, j) => j !== i);

  t.equal(reason(await call(k1, { kind: 'dkgFinish', ceremonyId: 'c1', round1: others(0), packages: to(1) })), 'WRONG_RECIPIENT', 'packages addressed to another kernel');
  const flipped = to(0).map((p, i) => (i === 0 ? { ...p, ciphertext: Uint8Array.from(p.ciphertext, (b, j) => (j === 3 ? b ^ 0x80 : b)) } : p));
  t.equal(reason(await call(k1, { kind: 'dkgFinish', ceremonyId: 'c1', round1: others(0), packages: flipped })), 'PAYLOAD_REJECTED', 'a tampered ciphertext does not open');
  const misattributed = to(0).map((p) => ({ ...p, sender: p.sender === participants[1]!.identifier ? participants[2]!.identifier : participants[1]!.identifier }));
  t.equal(reason(await call(k1, { kind: 'dkgFinish', ceremonyId: 'c1', round1: others(0), packages: misattributed })), 'PAYLOAD_REJECTED', 'a package claimed by another sender does not open (AAD binds the sender)');
  t.equal(reason(await call(k1, { kind: 'dkgFinish', ceremonyId: 'c-other', round1: others(0), packages: to(0) })), 'UNKNOWN_SESSION', 'another ceremony');

  const keys: Extract<ResponseBody, { kind: 'keyPackage' }>[] = [];
  for (const [i, k] of [k1, k2, k3].entries()) {
    const r = await k.handle({ kind: 'dkgFinish', ceremonyId: 'c1', round1: others(i), packages: to(i) });
    if (r.kind !== 'keyPackage') throw new Error(`finish failed: ${JSON.stringify(r)}`);
    keys.push(r);
  }
  t.ok(keys.every((k) => Buffer.from(k.public.commitments[0]!).equals(Buffer.from(keys[0]!.public.commitments[0]!))), 'all three agree on the group key after the refusals');
  t.ok(keys.every((k) => k.epoch === 0), 'the DKG result is epoch 0, as the ledger numbers it');
  t.equal(reason(await call(k1, { kind: 'dkgBegin', ceremonyId: 'c2', keyId: 'k-dkg', suite: 'ed25519', min: 2, participants, identifier: participants[0]!.identifier })), 'REPLAY_OR_CONFLICT', 'a second key generation for an existing key is refused');
});
