/**
 * BackupDrilled records on the real state machine (ScriptedCluster): a drill of an active key
 * epoch naming that epoch's recorded backups is kept as the epoch's last drill and survives
 * snapshot and restore; each refusal, with its reason code and nothing changed, is an attempt to
 * make the record claim more than a drill proved: a cid the ledger does not record for that key
 * epoch (another epoch's, another key's, made up), a participant twice, a pass without every
 * participant, an old signed drill replayed, a time far from the entry's stamp, an unsigned or
 * foreign-signed record, a retired key or a superseded epoch.
 * A failing property prints its seed; replay with FC_SEED=<seed>.
 */
import t, { type Test } from 'tap';
import fc from 'fast-check';
import {
  ScriptedCluster, backupRecipientsDigest, bytesEqual, checkInvariants, drillRecordKey, drillsOf, encodeEvent, restore, snapshot, stateRoot,
  type ApplyResult, type BackupRecipient, type LedgerEvent,
} from '../../ledger/index.js';
import { frostIdentifier } from '../../ledger/signing-set.js';
import { signProposed } from '../../ledger/proposer-sig.js';
import { drill as limits } from '../../proto/limits.js';
import { custodians } from './backup-fixtures.js';

const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31);
type Drilled = Extract<LedgerEvent, { type: 'BackupDrilled' }>;

function ok(t: Test, r: ApplyResult, what?: string): void {
  t.ok(r.ok, what ?? (r.ok ? r.effect : `${r.reason}: ${r.detail}`));
}

function refusedWith(t: Test, s: ScriptedCluster, reason: string, run: () => ApplyResult, what?: string): void {
  const before = s.state;
  const r = run();
  t.match(r, { ok: false, reason, applied: false }, what ?? `refused ${reason}`);
  t.ok(bytesEqual(stateRoot({ ...s.state, index: before.index, clockMs: before.clockMs }), stateRoot(before)), 'nothing but index and clock changed');
}

const cidOf = (nodeId: string, keyEpoch = 0): Uint8Array => new Uint8Array(32).fill(nodeId.charCodeAt(5) + 16 * keyEpoch);

function backedUp(s: ScriptedCluster, nodeId: string, recipients: readonly BackupRecipient[], keyEpoch = 0): void {
  const at = s.participants('k1', keyEpoch).indexOf(nodeId);
  const r = s.entry({
    type: 'KeyBackedUp', keyId: 'k1', keyEpoch, identifier: frostIdentifier('ed25519', at + 1),
    fileCid: cidOf(nodeId, keyEpoch), recipientsDigest: backupRecipientsDigest(recipients), ...s.proposer(nodeId),
  } as LedgerEvent).result;
  if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
}

/** Genesis, key k1 active at epoch 0 over node-0..2, a BackupPolicy and a KeyBackedUp of each node. */
async function drillable(): Promise<{ s: ScriptedCluster; recipients: BackupRecipient[] }> {
  const s = new ScriptedCluster({ label: 'drills', nodes: 3 });
  s.genesis();
  for (const r of s.createKey('k1')) if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  const recipients = (await custodians('alice')).map((c) => ({ label: c.label, recipient: c.recipient }));
  const d = s.decide({ kind: 'BackupPolicy', recipients });
  if (!d.ok) throw new Error(`setup: ${d.reason}`);
  for (const n of ['node-0', 'node-1', 'node-2']) backedUp(s, n, recipients);
  return { s, recipients };
}

function drilledEvent(s: ScriptedCluster, over: Partial<Drilled> = {}, by = 'node-0'): Drilled {
  return {
    type: 'BackupDrilled', keyId: 'k1', keyEpoch: 0, backupCids: ['node-0', 'node-1', 'node-2'].map((n) => cidOf(n)), passed: true,
    reportDigest: new Uint8Array(32).fill(9), drilledAtMs: s.nowMs, ...s.proposer(by), ...over,
  } as Drilled;
}

const drilled = (s: ScriptedCluster, over: Partial<Drilled> = {}, by = 'node-0'): ApplyResult => s.entry(drilledEvent(s, over, by)).result;

t.test('a drill naming every recorded backup is the epoch\'s last drill; a later one replaces it; snapshots keep it', async (t) => {
  const { s } = await drillable();
  ok(t, drilled(s));
  const rec = drillsOf(s.state.cluster!)[drillRecordKey('k1', 0)]!;
  t.match(rec, { keyId: 'k1', keyEpoch: 0, passed: true, nodeId: 'node-0', index: s.state.index });
  t.equal(rec.backupCids.length, 3);
  ok(t, drilled(s, { passed: false, backupCids: [cidOf('node-2')] }, 'node-1'), 'a failed drill of one backup, through another node');
  t.match(drillsOf(s.state.cluster!)[drillRecordKey('k1', 0)], { passed: false, nodeId: 'node-1' }, 'the last drill is what is shown, failed or not');
  t.ok(bytesEqual(stateRoot(restore(snapshot(s.state))), stateRoot(s.state)), 'the record survives snapshot and restore');
  t.same(checkInvariants(s.state), []);
});

t.test('BackupDrilled refusals: cids the ledger does not record for the epoch, a participant twice, a pass without all', async (t) => {
  const { s, recipients } = await drillable();
  refusedWith(t, s, 'DRILL_RECORD_INVALID', () => drilled(s, { backupCids: [cidOf('node-0'), cidOf('node-1'), new Uint8Array(32).fill(0xee)] }), 'a made-up cid');
  refusedWith(t, s, 'DRILL_RECORD_INVALID', () => drilled(s, { backupCids: [cidOf('node-0'), cidOf('node-0'), cidOf('node-1')] }), 'a participant twice');
  refusedWith(t, s, 'DRILL_RECORD_INVALID', () => drilled(s, { backupCids: [cidOf('node-0'), cidOf('node-1')] }), 'a pass that opened two of three');
  refusedWith(t, s, 'UNKNOWN_KEY', () => drilled(s, { keyId: 'k9' }));
  refusedWith(t, s, 'STALE_EPOCH', () => drilled(s, { keyEpoch: 1 }));
  refusedWith(t, s, 'DRILL_RECORD_INVALID', () => drilled(s, { drilledAtMs: s.nowMs - limits.recordSkewMs - 60_000 }), 'a drill long before its entry');
  refusedWith(t, s, 'DRILL_RECORD_INVALID', () => drilled(s, { drilledAtMs: s.nowMs + limits.recordSkewMs + 60_000 }), 'a drill dated in the future');
  // After a refresh, epoch 0's backups do not stand for epoch 1, and epoch 0 is no longer drilled.
  for (const r of s.refreshKey('k1')) ok(t, r);
  for (const n of ['node-0', 'node-1', 'node-2']) backedUp(s, n, recipients, 1);
  refusedWith(t, s, 'STALE_EPOCH', () => drilled(s), 'the superseded epoch');
  refusedWith(t, s, 'DRILL_RECORD_INVALID', () => drilled(s, { keyEpoch: 1 }), 'epoch 0\'s backups named for epoch 1');
  ok(t, drilled(s, { keyEpoch: 1, backupCids: ['node-0', 'node-1', 'node-2'].map((n) => cidOf(n, 1)) }));
  ok(t, s.decide({ kind: 'KeyRetired', keyId: 'k1' }));
  refusedWith(t, s, 'KEY_NOT_ACTIVE', () => drilled(s, { keyEpoch: 1, backupCids: ['node-0', 'node-1', 'node-2'].map((n) => cidOf(n, 1)) }));
});

t.test('BackupDrilled must be signed by the node it names, and an old signed drill cannot be replayed as new', async (t) => {
  const { s } = await drillable();
  const event = drilledEvent(s);
  refusedWith(t, s, 'PROPOSER_SIGNATURE_INVALID', () => s.entry(encodeEvent(event)).result, 'unsigned');
  refusedWith(t, s, 'PROPOSER_SIGNATURE_INVALID', () => s.entry(encodeEvent(signProposed(s.clusterId, event, s.node('node-1').secretKey))).result, 'signed by another node');
  const signed = encodeEvent(signProposed(s.clusterId, event, s.node('node-0').secretKey));
  ok(t, s.entry(signed).result);
  refusedWith(t, s, 'REPLAY_OR_CONFLICT', () => s.entry(signed).result, 'the same signed drill again');
  const newer = drilledEvent(s, { drilledAtMs: s.nowMs + 1000, passed: false, backupCids: [] });
  const older = drilledEvent(s, { drilledAtMs: event.drilledAtMs - 1 });
  ok(t, s.entry(newer).result);
  refusedWith(t, s, 'REPLAY_OR_CONFLICT', () => s.entry(older).result, 'a drill older than the last one recorded');
});

t.test('property: a drill is recorded exactly when its cids are distinct recorded backups of the epoch, all of them if it passed', async (t) => {
  t.comment(`seed ${seed}`);
  const { s: base } = await drillable();
  const all = ['node-0', 'node-1', 'node-2'].map((n) => cidOf(n));
  const junk = [new Uint8Array(32).fill(0xee), cidOf('node-0', 1)];
  await fc.assert(fc.asyncProperty(fc.array(fc.integer({ min: 0, max: all.length + junk.length - 1 }), { maxLength: 6 }), fc.boolean(), async (picks, passed) => {
    const s = new ScriptedCluster({ label: 'drills', nodes: 3 });
    s.genesis();
    s.state = base.state;
    s.nowMs = base.nowMs;
    const cids = picks.map((i) => (i < all.length ? all[i]! : junk[i - all.length]!));
    const distinctKnown = picks.every((i) => i < all.length) && new Set(picks).size === picks.length;
    const expected = distinctKnown && (!passed || picks.length === all.length);
    const r = drilled(s, { backupCids: cids, passed });
    if (r.ok !== expected) return false;
    if (!r.ok) return r.reason === 'DRILL_RECORD_INVALID' && bytesEqual(stateRoot({ ...s.state, index: base.state.index, clockMs: base.state.clockMs }), stateRoot(base.state));
    return checkInvariants(s.state).length === 0 && bytesEqual(stateRoot(restore(snapshot(s.state))), stateRoot(s.state));
  }), { seed, numRuns: 80 });
});

t.test('invariants catch a drill record the ledger would not have accepted', async (t) => {
  const { s } = await drillable();
  ok(t, drilled(s));
  const c = s.state.cluster!;
  const rk = drillRecordKey('k1', 0);
  const rec = drillsOf(c)[rk]!;
  const withDrill = (d: typeof rec, key = rk) => ({ ...s.state, cluster: { ...c, drills: { [key]: d } } });
  t.same(checkInvariants(s.state), [], 'the accepted record holds');
  t.match(checkInvariants(withDrill({ ...rec, backupCids: rec.backupCids.slice(0, 2) })).join('\n'), /names 2 backups of 3 participants and passed/);
  t.match(checkInvariants(withDrill({ ...rec, passed: false, backupCids: [rec.backupCids[0]!, rec.backupCids[0]!] })).join('\n'), /names a backup twice/);
  t.match(checkInvariants(withDrill({ ...rec, keyEpoch: 5 }, drillRecordKey('k1', 5))).join('\n'), /an epoch the ledger does not hold/);
  t.match(checkInvariants(withDrill(rec, drillRecordKey('k1', 1))).join('\n'), /filed under another key/);
});
