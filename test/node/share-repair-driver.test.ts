/**
 * The daemons' part of a share repair (node/lifecycle/repair.ts), three nodes over the real ledger
 * state machine, one exchange and recording kernels: the helpers deal only once every helper's
 * transport key is published, sum only once the target announced its kernel (a statement its own
 * identity key signs: one signed by another node is passed over), seal the sums to the key the
 * target announced, and the target finishes with every helper's sum and proposes ShareRepaired
 * under the decision the ledger recorded, with the verifying share its kernel matched.
 */
import t from 'tap';
import { ed25519 } from '@noble/curves/ed25519.js';
import { ScriptedCluster, backupRecordKey, bytesEqual, encode, repairsOf, toHex, type ApplyResult, type LedgerEvent } from '../../ledger/index.js';
import { signStatement, statementToCbor } from '../../ledger/events.js';
import { frostIdentifier } from '../../ledger/signing-set.js';
import type { PublicPackage, RequestBody, ResponseBody } from '../../kernel/wire.js';
import { MemoryExchange, type KernelPort, type LedgerPort } from '../../node/lifecycle/ports.js';
import { ShareRepairs, repairKeys } from '../../node/lifecycle/repair.js';
import type { LedgerVerdict } from '../../node/ledger-app.js';
import { until } from '../../node/probe.js';

const must = (r: ApplyResult): void => {
  if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
};

t.test('helpers deal, sum to the key the target announced, and the target finishes and records ShareRepaired', async (t) => {
  const s = new ScriptedCluster({ label: 'share-repair-driver', nodes: 3 });
  s.genesis();
  for (const r of s.createKey('k1')) must(r);
  const ids = ['node-0', 'node-1', 'node-2'];
  const idOf = (n: string): string => frostIdentifier('ed25519', ids.indexOf(n) + 1);
  const groupKey = s.state.cluster!.keys['k1']!.epochs['0']!.groupKey!;
  const repairedY = ed25519.Point.BASE.multiply(5n).toBytes();
  const pub: PublicPackage = { min: 2, max: 3, commitments: [groupKey, new Uint8Array(32).fill(3)], verifyingShares: ids.map((n, i) => ({ identifier: idOf(n), point: i === 2 ? repairedY : new Uint8Array(32).fill(i + 1) })) };
  const transportKey = (n: string): Uint8Array => new Uint8Array(32).fill(0x10 + ids.indexOf(n));
  const exchange = new MemoryExchange();
  const calls: Record<string, RequestBody[]> = { 'node-0': [], 'node-1': [], 'node-2': [] };
  const kernelOf = (me: string): KernelPort => ({
    call: async (body) => {
      calls[me]!.push(body);
      const sealed = (to: string) => ({ sender: idOf(me), recipient: to, enc: new Uint8Array(32).fill(1), ciphertext: new Uint8Array(48).fill(ids.indexOf(me)) });
      const answers: Partial<Record<RequestBody['kind'], () => ResponseBody>> = {
        status: () => ({ kind: 'status', nodeId: me, profile: 'software', transportPublicKey: transportKey(me), keys: [], governanceIndex: 0, frozen: false, fenced: false, followed: [], recoveriesPending: [] }),
        repairDeal: () => ({ kind: 'repairDealt', identifier: idOf(me), packages: ['node-0', 'node-1'].filter((h) => h !== me).map((h) => sealed(idOf(h))), public: pub }),
        repairSum: () => ({ kind: 'repairSummed', identifier: idOf(me), package: sealed(idOf('node-2')) }),
        repairFinish: () => ({ kind: 'keyPackage', keyId: 'k1', epoch: 0, suite: 'ed25519', identifier: idOf(me), public: pub }),
      };
      const a = answers[body.kind];
      if (a === undefined) throw new Error(`unexpected ${body.kind}`);
      return a() as never;
    },
  });
  const proposed: LedgerEvent[] = [];
  const ledger = {
    state: () => s.state,
    subscribe: () => () => undefined,
    propose: async (e: LedgerEvent): Promise<LedgerVerdict> => {
      proposed.push(e);
      const r = s.entry(e).result;
      return r.ok ? { ok: true, index: r.index, type: r.type, detail: r.effect, applied: true, replayed: r.replayed } : { ok: false, index: r.index, type: r.type, reason: r.reason, detail: r.detail, applied: false, replayed: false } as never;
    },
  } as unknown as LedgerPort;
  const logs: string[] = [];
  const drivers = ids.map((n) => new ShareRepairs({ nodeId: n, identitySecretKey: s.node(n).secretKey, ledger, kernel: kernelOf(n), exchange, log: (l) => logs.push(l) }));
  t.teardown(() => drivers.forEach((d) => d.stop()));

  must(s.decide({ kind: 'RepairAuthorized', nodeId: 'node-2', keyId: 'k1', keyEpoch: 0, identifier: idOf('node-2'), helpers: ['node-0', 'node-1'], groupKey }));
  const rec = repairsOf(s.state.cluster!)[backupRecordKey('k1', 0, 'node-2')]!;
  const keys = repairKeys(rec);
  const statement = (of: string, signer: string, key: Uint8Array) => encode(statementToCbor(signStatement({ clusterId: s.clusterId, nodeId: of, kind: 'KernelTransportKey', slot: { nodeId: of }, content: { transportPublicKey: key } }, s.node(signer).secretKey)));
  // A forged target statement (node-0's key signing in node-2's name) is in the exchange first;
  // the real target's kernel has not announced itself.
  await exchange.put(keys.target, statement('node-2', 'node-0', new Uint8Array(32).fill(0xee)));
  drivers[0]!.start();
  drivers[1]!.start();
  await new Promise((r) => setTimeout(r, 50));
  t.same(calls['node-0'], [], 'no helper deals before every helper\'s transport key is published');
  for (const h of ['node-0', 'node-1']) await exchange.put(`transport/${h}`, statement(h, h, transportKey(h)));
  await until('both helpers dealt', async () => (['node-0', 'node-1'].every((h) => calls[h]!.some((c) => c.kind === 'repairDeal')) ? true : null), 10_000);
  const deal = calls['node-0']!.find((c) => c.kind === 'repairDeal') as Extract<RequestBody, { kind: 'repairDeal' }>;
  t.equal(deal.ceremonyId, toHex(rec.decisionCid), 'the ceremony is the decision\'s cid');
  t.same(deal.helpers.map((p) => [p.nodeId, p.identifier]), [['node-0', idOf('node-0')], ['node-1', idOf('node-1')]], 'the decision\'s helpers under their identifiers');
  t.ok(bytesEqual(deal.helpers[1]!.transportPublicKey, transportKey('node-1')), 'with the transport key node-1 signed');
  await new Promise((r) => setTimeout(r, 50));
  t.notOk(calls['node-0']!.some((c) => c.kind === 'repairSum'), 'no sum to a target statement its node did not sign');

  // The target starts: it announces its kernel's key (over the forged one: in the peer exchange
  // only node-2 may write that key, peer.ts blobAuthor).
  drivers[2]!.start();
  await until('node-2 records ShareRepaired', async () => (proposed.some((e) => e.type === 'ShareRepaired') ? true : null), 10_000);
  for (const h of ['node-0', 'node-1']) {
    const sum = calls[h]!.find((c) => c.kind === 'repairSum') as Extract<RequestBody, { kind: 'repairSum' }>;
    t.ok(bytesEqual(sum.target.transportPublicKey, transportKey('node-2')), `${h} seals its sum to the key node-2 announced`);
    t.same(sum.deltas.map((d) => d.sender), [idOf(h === 'node-0' ? 'node-1' : 'node-0')], `${h} sums the other helper's delta`);
  }
  const finish = calls['node-2']!.find((c) => c.kind === 'repairFinish') as Extract<RequestBody, { kind: 'repairFinish' }>;
  t.same(finish.sums.map((x) => x.sender).sort(), [idOf('node-0'), idOf('node-1')].sort(), 'the target finishes with one sum of each helper');
  t.same(finish.public, pub, 'and the package the helpers bound them to');
  const repaired = repairsOf(s.state.cluster!)[backupRecordKey('k1', 0, 'node-2')]!.repaired;
  t.ok(repaired !== null && bytesEqual(repaired.verifyingShare, repairedY), 'the ledger records the repair with the verifying share the kernel matched');
  t.notOk(calls['node-0']!.some((c) => c.kind === 'repairFinish') || calls['node-2']!.some((c) => c.kind === 'repairDeal'), 'each node only in its role');
});
