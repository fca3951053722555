/**
 * The daemon's relay of a recovered share (node/lifecycle/share-import.ts), against the real
 * ledger state machine and a recording kernel: what reaches the kernel is the file's sealed
 * package with a public package that matches the ledger and the ledger's consumed counter; an
 * untrusted exchange's forged packages never reach it; a package the kernel refuses
 * BINDING_MISMATCH is passed over for the next; the kernel's refusals keep their codes; once the
 * kernel accepted, ShareRecovered is proposed under the decision the ledger recorded.
 */
import t from 'tap';
import {
  ScriptedCluster, backupRecipientsDigest, backupRecordKey, bytesEqual, recoveriesOf, toHex,
  type ApplyResult, type LedgerEvent,
} from '../../ledger/index.js';
import { frostIdentifier } from '../../ledger/signing-set.js';
import { CustodyError } from '../../proto/errors.js';
import { lifecycle as lifecycleLimits } from '../../proto/limits.js';
import { encodeSealedShare } from '../../kernel/recovery.js';
import type { PublicPackage, RequestBody } from '../../kernel/wire.js';
import { keys, publicToBytes } from '../../node/lifecycle/participant.js';
import { MemoryExchange, type KernelPort, type LedgerPort } from '../../node/lifecycle/ports.js';
import { importSealedShare } from '../../node/lifecycle/share-import.js';
import type { LedgerVerdict } from '../../node/ledger-app.js';
import { reasonOfCall } from '../lifecycle/harness.js';
import { custodians } from '../ledger/backup-fixtures.js';

const must = (r: ApplyResult): void => {
  if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
};

async function rig() {
  const s = new ScriptedCluster({ label: 'share-import', nodes: 3 });
  s.genesis();
  for (const r of s.createKey('k1')) must(r);
  const recipients = (await custodians('alice')).map((c) => ({ label: c.label, recipient: c.recipient }));
  must(s.decide({ kind: 'BackupPolicy', recipients }));
  const ids = s.participants('k1', 0);
  const idOf = (n: string) => frostIdentifier('ed25519', ids.indexOf(n) + 1);
  for (const n of ids) must(s.entry({ type: 'KeyBackedUp', keyId: 'k1', keyEpoch: 0, identifier: idOf(n), fileCid: new Uint8Array(32).fill(7), recipientsDigest: backupRecipientsDigest(recipients), ...s.proposer(n) } as LedgerEvent).result);
  const groupKey = s.state.cluster!.keys['k1']!.epochs['0']!.groupKey!;
  const me = 'node-1';
  const good: PublicPackage = { min: s.state.cluster!.keys['k1']!.epochs['0']!.threshold, max: ids.length, commitments: [groupKey, new Uint8Array(32).fill(3)], verifyingShares: ids.map((n, i) => ({ identifier: idOf(n), point: new Uint8Array(32).fill(i + 1) })) };
  const exchange = new MemoryExchange();
  const calls: RequestBody[] = [];
  let answer: (b: Extract<RequestBody, { kind: 'importShare' }>) => void = () => undefined;
  const kernel: KernelPort = {
    call: async (body, expect) => {
      calls.push(body);
      if (body.kind !== 'importShare' || expect !== 'keyPackage') throw new Error(`unexpected ${body.kind}`);
      answer(body);
      return { kind: 'keyPackage', keyId: body.keyId, epoch: body.epoch, suite: 'ed25519', identifier: body.identifier, public: body.public } as never;
    },
  };
  const proposed: LedgerEvent[] = [];
  const ledger = {
    state: () => s.state,
    propose: async (e: LedgerEvent): Promise<LedgerVerdict> => {
      proposed.push(e);
      const r = s.entry(e).result;
      return r.ok ? { ok: true, index: r.index, type: r.type, detail: r.effect, applied: true, replayed: r.replayed } : { ok: false, index: r.index, type: r.type, reason: r.reason, detail: r.detail, applied: false, replayed: false };
    },
  } as unknown as LedgerPort;
  const file = encodeSealedShare({ keyId: 'k1', epoch: 0, identifier: idOf(me), backupCid: new Uint8Array(32).fill(7), sealed: { sender: 'custodian', recipient: idOf(me), enc: new Uint8Array(32).fill(9), ciphertext: new Uint8Array(48).fill(5) } });
  const logs: string[] = [];
  const o = { nodeId: me, ledger, kernel, exchange, log: (l: string) => logs.push(l) };
  return { s, ids, idOf, me, good, exchange, calls, proposed, file, o, setAnswer: (f: typeof answer) => (answer = f) };
}

t.test('the kernel gets the sealed package, a package matching the ledger and the consumed counter; ShareRecovered follows under the recorded decision', async (t) => {
  const r = await rig();
  must(r.s.decide({ kind: 'RecoveryAuthorized', nodeId: r.me, keyId: 'k1', keyEpoch: 0, identifier: r.idOf(r.me), backupCid: new Uint8Array(32).fill(7), groupKey: r.good.commitments[0]!, verifyingShare: r.good.verifyingShares[1]!.point }));
  // A forged package (another group key) from node-0, the right one from node-2.
  await r.exchange.put(keys.publicPackage('k1', 0, 'node-0'), publicToBytes({ ...r.good, commitments: [new Uint8Array(32).fill(1), r.good.commitments[1]!] }));
  await r.exchange.put(keys.publicPackage('k1', 0, 'node-2'), publicToBytes(r.good));
  const v = await importSealedShare(r.o, r.file);
  t.equal(r.calls.length, 1, 'the forged package never reached the kernel');
  const call = r.calls[0] as Extract<RequestBody, { kind: 'importShare' }>;
  t.ok(bytesEqual(call.public.commitments[0]!, r.good.commitments[0]!), 'the package that matches the ledger');
  t.same([call.keyId, call.epoch, call.identifier, call.ledgerConsumedCounter, toHex(call.sealed.ciphertext)], ['k1', 0, r.idOf(r.me), 0, toHex(new Uint8Array(48).fill(5))]);
  t.equal(r.proposed.length, 1);
  const rec = recoveriesOf(r.s.state.cluster!)[backupRecordKey('k1', 0, r.me)]!;
  t.match(r.proposed[0], { type: 'ShareRecovered', keyId: 'k1', keyEpoch: 0, identifier: r.idOf(r.me), nodeId: r.me });
  t.ok(bytesEqual((r.proposed[0] as Extract<LedgerEvent, { type: 'ShareRecovered' }>).decisionCid, rec.decisionCid), 'under the decision the ledger recorded');
  t.ok(v.recordedIndex > 0 && v.recordRefused === '', `recorded at index ${v.recordedIndex}`);
  t.equal(rec.recovered?.index, v.recordedIndex);
});

t.test('a package the kernel refuses BINDING_MISMATCH is passed over; other refusals keep their codes; none usable is PUBLIC_PACKAGE_UNAVAILABLE', async (t) => {
  const r = await rig();
  t.equal(await reasonOfCall(importSealedShare(r.o, r.file)), 'PUBLIC_PACKAGE_UNAVAILABLE', 'no participant serves a package');
  t.equal(r.calls.length, 0, 'nothing reached the kernel');
  await r.exchange.put(keys.publicPackage('k1', 0, 'node-0'), publicToBytes({ ...r.good, min: r.good.min + 1 }));
  await r.exchange.put(keys.publicPackage('k1', 0, 'node-2'), new Uint8Array([1, 2, 3]));
  t.equal(await reasonOfCall(importSealedShare(r.o, r.file)), 'PUBLIC_PACKAGE_UNAVAILABLE', 'another threshold, and bytes that are no package');
  t.equal(r.calls.length, 0, 'nothing reached the kernel');

  const r2 = await rig();
  await r2.exchange.put(keys.publicPackage('k1', 0, 'node-0'), publicToBytes(r2.good));
  await r2.exchange.put(keys.publicPackage('k1', 0, 'node-2'), publicToBytes(r2.good));
  r2.setAnswer(() => {
    throw new CustodyError('BINDING_MISMATCH', 'the verifying share is not the decided one');
  });
  t.equal(await reasonOfCall(importSealedShare(r2.o, r2.file)), 'PUBLIC_PACKAGE_UNAVAILABLE', 'every package refused by the kernel');
  t.equal(r2.calls.length, 2, 'each candidate was tried once');
  for (const reason of ['RECOVERY_NOT_AUTHORIZED', 'SHARE_MISMATCH', 'PAYLOAD_REJECTED', 'SHARE_ALREADY_HELD'] as const) {
    r2.setAnswer(() => {
      throw new CustodyError(reason, 'the kernel says so');
    });
    t.equal(await reasonOfCall(importSealedShare(r2.o, r2.file)), reason, `the kernel's ${reason} reaches the caller`);
  }
  t.equal(r2.proposed.length, 0, 'no ShareRecovered after a refusal');
});

t.test('the file and the ledger are checked before the kernel is asked', async (t) => {
  const r = await rig();
  await r.exchange.put(keys.publicPackage('k1', 0, 'node-0'), publicToBytes(r.good));
  t.equal(await reasonOfCall(importSealedShare(r.o, new Uint8Array([0xa0]))), 'PAYLOAD_REJECTED', 'not a sealed-share file');
  t.equal(await reasonOfCall(importSealedShare(r.o, new Uint8Array(5000))), 'PAYLOAD_REJECTED', 'larger than a sealed-share file');
  const of = (keyId: string, epoch: number) => encodeSealedShare({ keyId, epoch, identifier: r.idOf(r.me), backupCid: new Uint8Array(32), sealed: { sender: 'custodian', recipient: r.idOf(r.me), enc: new Uint8Array(32), ciphertext: new Uint8Array(48) } });
  t.equal(await reasonOfCall(importSealedShare(r.o, of('k9', 0))), 'KEY_NOT_ACTIVE', 'an unknown key');
  t.equal(await reasonOfCall(importSealedShare(r.o, of('k1', 1))), 'STALE_EPOCH', 'an epoch that is not active');
  t.equal(await reasonOfCall(importSealedShare({ ...r.o, nodeId: 'node-7' }, of('k1', 0))), 'WRONG_RECIPIENT', 'a node that is no participant');
  t.equal(r.calls.length, 0, 'the kernel was never asked');
});

t.test('a ShareRecovered proposal that fails without a verdict is tried again, a bounded number of times; a ledger refusal is final', async (t) => {
  const attempts = lifecycleLimits.shareRecoveredProposeAttempts;
  for (const failures of [attempts - 1, attempts]) {
    const r = await rig();
    must(r.s.decide({ kind: 'RecoveryAuthorized', nodeId: r.me, keyId: 'k1', keyEpoch: 0, identifier: r.idOf(r.me), backupCid: new Uint8Array(32).fill(7), groupKey: r.good.commitments[0]!, verifyingShare: r.good.verifyingShares[1]!.point }));
    await r.exchange.put(keys.publicPackage('k1', 0, 'node-0'), publicToBytes(r.good));
    let tries = 0;
    const propose = r.o.ledger.propose.bind(r.o.ledger);
    const ledger = { ...r.o.ledger, state: r.o.ledger.state, propose: async (e: LedgerEvent) => {
      tries++;
      if (tries <= failures) throw new CustodyError('NOT_LEADER', 'no leader yet');
      return propose(e);
    } } as LedgerPort;
    const v = await importSealedShare({ ...r.o, ledger, retryMs: 1 }, r.file);
    if (failures < attempts) t.ok(v.recordedIndex > 0 && tries === failures + 1, `recorded after ${failures} failed tries`);
    else t.same([v.recordedIndex, tries, v.recordRefused.startsWith('NOT_LEADER: ')], [0, attempts, true], `given up after ${attempts} tries, saying why; the share stays imported`);
  }
  {
    const r = await rig();
    must(r.s.decide({ kind: 'RecoveryAuthorized', nodeId: r.me, keyId: 'k1', keyEpoch: 0, identifier: r.idOf(r.me), backupCid: new Uint8Array(32).fill(7), groupKey: r.good.commitments[0]!, verifyingShare: r.good.verifyingShares[1]!.point }));
    await r.exchange.put(keys.publicPackage('k1', 0, 'node-0'), publicToBytes(r.good));
    let tries = 0;
    const ledger = { ...r.o.ledger, state: r.o.ledger.state, propose: async (): Promise<LedgerVerdict> => {
      tries++;
      return { ok: false, index: 99, type: 'ShareRecovered', reason: 'BINDING_MISMATCH', detail: 'refused', applied: false, replayed: false };
    } } as LedgerPort;
    const v = await importSealedShare({ ...r.o, ledger, retryMs: 1 }, r.file);
    t.same([v.recordedIndex, tries, v.recordRefused], [0, 1, 'BINDING_MISMATCH: refused'], 'a ledger refusal is not tried again, and is said');
  }
  const r = await rig();
  await r.exchange.put(keys.publicPackage('k1', 0, 'node-0'), publicToBytes(r.good));
  const v = await importSealedShare({ ...r.o, retryMs: 1 }, r.file);
  t.same([v.recordedIndex, v.recordRefused.split(':')[0]], [0, 'RECOVERY_NOT_AUTHORIZED'], 'the replica records no decision: not proposed, said');
  t.equal(r.proposed.length, 0);
});

t.test('the same file again completes a report the first import lost, only when an import under the decision put the share there', async (t) => {
  const r = await rig();
  must(r.s.decide({ kind: 'RecoveryAuthorized', nodeId: r.me, keyId: 'k1', keyEpoch: 0, identifier: r.idOf(r.me), backupCid: new Uint8Array(32).fill(7), groupKey: r.good.commitments[0]!, verifyingShare: r.good.verifyingShares[1]!.point }));
  await r.exchange.put(keys.publicPackage('k1', 0, 'node-0'), publicToBytes(r.good));
  const rec = () => recoveriesOf(r.s.state.cluster!)[backupRecordKey('k1', 0, r.me)]!;
  // The kernel after an import: it holds the share under the decided identifier and has used its grant.
  const after = { held: r.idOf(r.me), pending: false, governanceIndex: rec().authorizedIndex };
  let imported = false;
  const kernel: KernelPort = {
    call: async (body, expect) => {
      r.calls.push(body);
      if (body.kind === 'status') {
        return {
          kind: 'status', nodeId: r.me, profile: 'software', transportPublicKey: new Uint8Array(32), governanceIndex: after.governanceIndex, frozen: false, fenced: false, followed: [],
          keys: [{ keyId: 'k1', epoch: 0, suite: 'ed25519', identifier: after.held, groupPublicKey: r.good.commitments[0]!, active: true, commitmentsAvailable: 0, consumedCounter: 0 }],
          recoveriesPending: after.pending ? [{ keyId: 'k1', epoch: 0, identifier: r.idOf(r.me), ledgerIndex: rec().authorizedIndex }] : [],
        } as never;
      }
      if (body.kind !== 'importShare' || expect !== 'keyPackage') throw new Error(`unexpected ${body.kind}`);
      if (imported) throw new CustodyError('SHARE_ALREADY_HELD', `this kernel holds a share of ${body.keyId} epoch ${body.epoch}`);
      imported = true;
      return { kind: 'keyPackage', keyId: body.keyId, epoch: body.epoch, suite: 'ed25519', identifier: body.identifier, public: body.public } as never;
    },
  };
  // The first import lands in the kernel; every ShareRecovered proposal fails (as when the daemon stops).
  const down = { ...r.o.ledger, state: r.o.ledger.state, propose: async (): Promise<LedgerVerdict> => {
    throw new CustodyError('NOT_LEADER', 'no leader');
  } } as LedgerPort;
  const first = await importSealedShare({ ...r.o, kernel, ledger: down, retryMs: 1 }, r.file);
  t.same([first.recordedIndex, rec().recovered], [0, null], 'the import happened, its report did not');

  // What a kernel that never lost its share, or has not followed the decision, says: refused, nothing proposed.
  for (const [why, change] of [
    ['its grant is still unused', () => { after.pending = true; }],
    ['it lists another identifier', () => { after.held = r.idOf('node-0'); }],
    ['it has not followed the decision', () => { after.governanceIndex = rec().authorizedIndex - 1; }],
  ] as const) {
    const saved = { ...after };
    change();
    const e = await importSealedShare({ ...r.o, kernel, retryMs: 1 }, r.file).then(() => null, (x: unknown) => x as CustodyError);
    t.equal(e?.reason, 'SHARE_ALREADY_HELD', `the kernel holds the share but ${why}: SHARE_ALREADY_HELD`);
    t.match(e?.detail ?? '', /nothing recorded/);
    Object.assign(after, saved);
  }
  t.equal(r.proposed.length, 0, 'no ShareRecovered was proposed for those');

  const again = await importSealedShare({ ...r.o, kernel, retryMs: 1 }, r.file);
  t.ok(again.recordedIndex > 0 && again.recordRefused === '', `the same file again records the import (index ${again.recordedIndex})`);
  t.equal(rec().recovered?.index, again.recordedIndex, 'the ledger holds the report');
  t.equal(r.proposed.length, 1);
  const third = await importSealedShare({ ...r.o, kernel, retryMs: 1 }, r.file);
  t.same([third.recordedIndex, r.proposed.length], [again.recordedIndex, 1], 'once recorded, the same file again says where, and proposes nothing');
  t.same([first.earlier, again.earlier, third.earlier], [false, true, true], 'the replies say which run imported');
  t.equal(r.calls.filter((c) => c.kind === 'importShare').length, 6, 'every run asked the kernel to import (it is the kernel that refuses)');
});
