/**
 * RFC 9591 Appendix E test vectors through the kernel's own code path: the dealer shares are
 * installed in two kernels (participants 1 and 3), the vector's nonce randomness drives the
 * kernel's presign step (RFC 9591 §5.1 nonce_generate / commit), and the kernel's sign step
 * (permit checks, durable nonce consumption, §5.2 sign) must return the published signature
 * shares; aggregating them (§5.3) must give the published signature. Run in both profiles.
 * The Taproot suite has no RFC vectors; it is covered by BIP340 verification elsewhere.
 */
import t from 'tap';
import { rid } from '../../ledger/scenario.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hexToBytes, bytesToHex } from '@noble/hashes/utils.js';
import { suiteOf, type SuiteName } from '../../kernel/suites.js';
import { Governance, PROFILES, REPO, openInProcess, tempDir } from './harness.js';
import { messagesDigest } from '../../ledger/tx/messages.js';
import { networkForScheme } from '../../ledger/decision.js';

interface Vector {
  suite: SuiteName;
  source: string;
  group_public_key: string;
  message: string;
  share_polynomial_coefficients: string[];
  participant_shares: Record<string, string>;
  round_one: Record<string, { hiding_nonce_randomness: string; binding_nonce_randomness: string; hiding_nonce_commitment: string; binding_nonce_commitment: string }>;
  sig_shares: Record<string, string>;
  sig: string;
}

const vectors: Vector[] = ['rfc9591-ed25519.json', 'rfc9591-secp256k1.json'].map((f) =>
  JSON.parse(readFileSync(join(REPO, 'test/kernel/vectors', f), 'utf8')) as Vector);

for (const profile of PROFILES) {
  for (const v of vectors) {
    t.test(`${v.source}: the kernel reproduces the published shares and signature (${profile})`, { timeout: 300_000 }, async (t) => {
      const { dir, cleanup } = tempDir(`rfc-${v.suite}-${profile}`);
      const gov = new Governance();
      const suite = suiteOf(v.suite);
      const Fn = suite.Fn;
      const ids = Object.keys(v.round_one); // the signing set, participants 1 and 3
      const id = (n: string): string => suite.frost.Identifier.fromNumber(Number(n));
      const pub = {
        signers: { min: 2, max: 3 },
        commitments: [hexToBytes(v.group_public_key), ...v.share_polynomial_coefficients.map((c) => suite.base.multiply(Fn.fromBytes(hexToBytes(c))).toBytes())],
        verifyingShares: Object.fromEntries(Object.entries(v.participant_shares).map(([n, s]) => [id(n), suite.base.multiply(Fn.fromBytes(hexToBytes(s))).toBytes()])),
      };
      const kernels = await Promise.all(ids.map((n) => openInProcess(dir, `n${n}`, profile, gov)));
      t.teardown(async () => {
        for (const k of kernels) await k.close();
        cleanup();
      });
      const keyId = `rfc-${v.suite}`;
      const decisions = [
        gov.decide({ kind: 'DkgAuthorized', keyId, scheme: v.suite, network: networkForScheme(v.suite), threshold: 2, participants: ['n1', 'n2', 'n3'] }),
        gov.decide({ kind: 'KeyActivated', keyId, keyEpoch: 0, keyReadyCid: new Uint8Array(32) }),
      ];
      // The key as the ledger knows it: the act signing the vector's message is a raw act parsed against it.
      gov.keys.set(keyId, { keyId, scheme: v.suite, network: networkForScheme(v.suite), groupKey: hexToBytes(v.group_public_key) });
      for (const [i, n] of ids.entries()) {
        const k = kernels[i]!.kernel;
        await k.importDealerShare(keyId, v.suite, id(n), pub, hexToBytes(v.participant_shares[n]!));
        await k.handle({ kind: 'governance', decisions });
      }

      // §5.1: the vector's randomness through the kernel's presign path.
      const presigned = [];
      for (const [i, n] of ids.entries()) {
        const r = v.round_one[n]!;
        const feed = [hexToBytes(r.hiding_nonce_randomness), hexToBytes(r.binding_nonce_randomness)];
        const res = await kernels[i]!.kernel.presignWithRng({ kind: 'nonces', keyId, keyEpoch: 0, count: 1 }, () => feed.shift()!);
        if (res.kind !== 'nonceCommitments') throw new Error(`presign refused: ${JSON.stringify(res)}`);
        const c = res.commitments[0]!;
        t.equal(bytesToHex(c.hiding), r.hiding_nonce_commitment, `participant ${n} hiding nonce commitment`);
        t.equal(bytesToHex(c.binding), r.binding_nonce_commitment, `participant ${n} binding nonce commitment`);
        presigned.push(c);
      }

      // §5.2: each kernel signs under a permit; the shares are the published ones.
      const message = hexToBytes(v.message);
      const commitments = presigned.map((c) => ({ identifier: c.identifier, hiding: c.hiding, binding: c.binding }));
      const ledgerIndex = gov.permitIndex();
      const shares: Record<string, Uint8Array> = {};
      for (const [i, n] of ids.entries()) {
        const res = await kernels[i]!.kernel.handle(gov.certified({
          kind: 'sign', permit: { keyId, keyEpoch: 0, requestId: rid(`rfc-${n}`), messageDigest: messagesDigest([message]), ledgerIndex },
          messages: [message], lists: [commitments], counters: [presigned[i]!.counter], ledgerConsumedCounter: 0,
        }));
        if (res.kind !== 'signatureShares') throw new Error(`sign refused: ${JSON.stringify(res)}`);
        t.equal(bytesToHex(res.sigShares[0]!), v.sig_shares[n], `participant ${n} signature share (§5.2)`);
        shares[res.identifier] = res.sigShares[0]!;
      }

      // §5.3: aggregation gives the published signature, which verifies under the group key.
      const sig = suite.frost.aggregate(pub as never, commitments as never, message, shares as never);
      t.equal(bytesToHex(sig), v.sig, 'aggregate signature (§5.3)');
      t.ok(suite.frost.verify(sig, message, hexToBytes(v.group_public_key)), 'signature verifies under the group public key');
    });
  }
}
