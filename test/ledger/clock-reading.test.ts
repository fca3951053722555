/**
 * Attested ledger time from an attacker's seat: a ClockTick carrying voters' signed clock readings
 * may move the ledger clock past the ordinary bound only as far as the smallest reading of a
 * majority of the voters plus the bound; forged, foreign, duplicated, removed and non-voter
 * readings count for nothing, and a fast or lying leader gains nothing past honest time + B.
 */
import fc from 'fast-check';
import t from 'tap';
import { ScriptedCluster, seedOf } from '../../ledger/scenario.js';
import { stampRefusal } from '../../ledger/apply.js';
import { type ClockReading, attestedTime, chooseReadings, clockReadingSigningBytes, signClockReading, verifyClockReading } from '../../ledger/clock-reading.js';
import { type LedgerEvent, decodeEvent, encodeEvent } from '../../ledger/events.js';
import { ledger as limits } from '../../proto/limits.js';

const B = limits.stampAheadMs;
const WEEK = 7 * 24 * 3600 * 1000;
const YEAR = 365 * 24 * 3600 * 1000;

function started(nodes = 3): ScriptedCluster {
  const s = new ScriptedCluster({ label: 'attested', stepMs: 0, nodes });
  s.autoTick = false;
  if (!s.genesis().ok) throw new Error('genesis');
  return s;
}

const reading = (s: ScriptedCluster, nodeId: string, clockMs: number, clusterId = s.clusterId): ClockReading =>
  signClockReading({ clusterId, nodeId, clockMs }, s.node(nodeId).secretKey);
const tick = (s: ScriptedCluster, readings?: readonly ClockReading[], nodeId = 'node-0'): LedgerEvent =>
  readings === undefined ? { type: 'ClockTick', ...s.proposer(nodeId) } : { type: 'ClockTick', readings, ...s.proposer(nodeId) };

t.test('a reading verifies under its node key for its cluster only', async (t) => {
  const s = started();
  const r = reading(s, 'node-1', 1_700_000_000_000);
  t.ok(verifyClockReading(r, s.clusterId, s.node('node-1').info.identityKey));
  t.notOk(verifyClockReading(r, 'cluster-2', s.node('node-1').info.identityKey), 'another cluster');
  t.notOk(verifyClockReading(r, s.clusterId, s.node('node-2').info.identityKey), 'another node key');
  t.notOk(verifyClockReading({ ...r, clockMs: r.clockMs + 1 }, s.clusterId, s.node('node-1').info.identityKey), 'another time');
  t.notOk(verifyClockReading({ ...r, nodeId: 'node-2' }, s.clusterId, s.node('node-1').info.identityKey), 'another node id');
  t.equal(Buffer.from(clockReadingSigningBytes(r)).toString('latin1').split('\0')[0], 'custody-ledger/v1/clock-reading', 'domain separated');
});

t.test('a tick without readings encodes as before, and readings round-trip', async (t) => {
  const s = started();
  const plain = tick(s);
  t.same(Object.keys(decodeEvent(encodeEvent(plain))).sort(), ['nodeId', 'passport', 'type'], 'no readings field');
  const withReadings = tick(s, [reading(s, 'node-0', 5), reading(s, 'node-1', 6)]);
  t.same(decodeEvent(encodeEvent(withReadings)), withReadings);
  const tooMany = tick(s, Array.from({ length: limits.clockReadingsMax + 1 }, () => reading(s, 'node-0', 5)));
  t.throws(() => decodeEvent(encodeEvent(tooMany)), /more than/, 'the number of readings is bounded');
  const applied = s.entry(encodeEvent(tooMany), s.state.clockMs + 1).result;
  t.match(applied, { ok: false, reason: 'PAYLOAD_REJECTED' }, 'and the ledger refuses more');
});

t.test('a majority of valid readings moves the clock past the old bound', async (t) => {
  const s = started();
  const c0 = s.state.clockMs;
  const now = c0 + WEEK;
  t.match(s.entry(tick(s), now).result, { ok: false, reason: 'STAMP_AHEAD' }, 'without readings: refused, as before');
  const r = s.entry(tick(s, [reading(s, 'node-0', now), reading(s, 'node-1', now - 500)]), now).result;
  t.ok(r.ok, 'two of three voters attest the time');
  t.equal(s.state.clockMs, now);
  t.ok(s.entry(tick(s), now + 1_000).result.ok, 'ordinary entries follow with no governance decision');
});

t.test('one valid reading and a forged one: refused STAMP_AHEAD', async (t) => {
  const s = started();
  const c0 = s.state.clockMs;
  const now = c0 + WEEK;
  const honest = reading(s, 'node-0', now);
  const forgedKey = signClockReading({ clusterId: s.clusterId, nodeId: 'node-1', clockMs: now }, seedOf('not node-1'));
  const badSig = { ...reading(s, 'node-1', now), signature: new Uint8Array(64).fill(7) };
  const tampered = { ...reading(s, 'node-1', now - WEEK), clockMs: now };
  for (const [what, forged] of [['signed with another key', forgedKey], ['a bad signature', badSig], ['a reading altered after signing', tampered]] as const) {
    t.match(s.entry(tick(s, [honest, forged]), now).result, { ok: false, reason: 'STAMP_AHEAD' }, what);
  }
  t.equal(s.state.clockMs, c0, 'the clock has not moved');
});

t.test('duplicates, another cluster, a non-voter and a removed node are not counted', async (t) => {
  const s = started(5); // majority: 3
  const c0 = s.state.clockMs;
  const now = c0 + WEEK;
  const two = [reading(s, 'node-0', now), reading(s, 'node-1', now)];
  t.match(s.entry(tick(s, [...two, reading(s, 'node-1', now + 1), reading(s, 'node-0', now - 1)]), now).result, { ok: false, reason: 'STAMP_AHEAD' }, 'a voter\'s second reading adds no voter');
  t.match(s.entry(tick(s, [...two, reading(s, 'node-2', now, 'cluster-other')]), now).result, { ok: false, reason: 'STAMP_AHEAD' }, 'a reading of another cluster');
  const stranger = signClockReading({ clusterId: s.clusterId, nodeId: 'node-9', clockMs: now }, seedOf('stranger'));
  t.match(s.entry(tick(s, [...two, stranger]), now).result, { ok: false, reason: 'STAMP_AHEAD' }, 'a node not on the roster');
  // node-4 leaves the roster: 4 voters remain, majority 3; its reading no longer counts.
  t.ok(s.decide({ kind: 'NodeRemoved', nodeId: 'node-4' }, undefined, { issuedMs: c0, expiresMs: c0 + 3_600_000 }).ok, 'node-4 removed');
  t.match(s.entry(tick(s, [...two, reading(s, 'node-4', now)]), now).result, { ok: false, reason: 'STAMP_AHEAD' }, 'a removed node');
  t.ok(s.state.clockMs < now, 'the clock has not jumped');
  t.ok(s.entry(tick(s, [...two, reading(s, 'node-3', now)]), now).result.ok, 'three of the four remaining voters: accepted');
});

t.test('the clock never goes past the smallest reading of the majority plus the bound', async (t) => {
  const s = started();
  const c0 = s.state.clockMs;
  const now = c0 + WEEK;
  const readings = [reading(s, 'node-0', now + 10_000), reading(s, 'node-1', now)];
  t.match(s.entry(tick(s, readings), now + B + 1).result, { ok: false, reason: 'STAMP_AHEAD' }, 'one past min + B');
  t.ok(s.entry(tick(s, readings), now + B).result.ok, 'at min + B');
  t.equal(s.state.clockMs, now + B);
});

t.test('a fast-clock leader with its own reading far ahead and one honest reading gets at most honest + B', async (t) => {
  const s = started();
  const c0 = s.state.clockMs;
  const honest = c0 + WEEK;
  const readings = [reading(s, 'node-0', honest + YEAR), reading(s, 'node-1', honest)];
  t.match(s.entry(tick(s, readings), honest + YEAR).result, { ok: false, reason: 'STAMP_AHEAD' }, 'its own time: refused');
  t.not(stampRefusal(s.state, tick(s, readings), honest + YEAR), null, 'and refused by the local rule too');
  t.ok(s.entry(tick(s, readings), honest + B).result.ok, 'the most it can do');
  t.equal(s.state.clockMs, honest + B);
  // Old readings replayed later vouch only for their old time: nothing moves past it.
  const later = honest + WEEK;
  t.match(s.entry(tick(s, readings), later).result, { ok: false, reason: 'STAMP_AHEAD' }, 'replayed readings vouch for a past time');
  t.equal(s.state.clockMs, honest + B);
});

t.test('an honest leader leaves a lagging minority out', async (t) => {
  const s = started();
  const c = s.state.cluster!;
  const now = s.state.clockMs + WEEK;
  const all = [reading(s, 'node-0', now), reading(s, 'node-1', now - 2), reading(s, 'node-2', 0), reading(s, 'node-2', 1), { ...reading(s, 'node-1', now), clusterId: 'x' }];
  const chosen = chooseReadings(c.nodes, c.clusterId, all);
  t.same(chosen.map((r) => [r.nodeId, r.clockMs]), [['node-0', now], ['node-1', now - 2]], 'the latest majority, one per voter');
  t.equal(attestedTime(c.nodes, c.clusterId, chosen), now - 2);
  t.equal(attestedTime(c.nodes, c.clusterId, all), 0, 'all of them: the lagging reading bounds the time');
  t.ok(s.entry(tick(s, chosen), now).result.ok);
});

/**
 * Property: over random sets of readings (honest, lying, forged, foreign, duplicated; 3 to 7
 * voters, at most a minority lying), a tick is accepted only if a majority of distinct voters
 * signed valid readings, and then the clock lands at most the smallest of them + B, hence at most
 * honest time + B.
 */
const kind = fc.constantFrom('signed', 'signed', 'forged', 'foreign', 'stranger');
t.test('property: the clock never passes honest time + B, whatever readings a tick carries', async (t) => {
  const clusters = new Map<number, ScriptedCluster>();
  let accepted = 0;
  let refused = 0;
  fc.assert(fc.property(
    fc.integer({ min: 3, max: 7 }),
    fc.array(fc.record({ node: fc.nat(), kind, skew: fc.integer({ min: -3_600_000, max: YEAR }) }), { maxLength: 12 }),
    fc.integer({ min: 0, max: 2 * YEAR }),
    fc.integer({ min: 0, max: WEEK }),
    (n, picks, stampOffset, gap) => {
      const base = clusters.get(n) ?? started(n);
      clusters.set(n, base);
      const s = base;
      const liars = new Set(Array.from({ length: Math.floor((n - 1) / 2) }, (_, i) => `node-${n - 1 - i}`));
      const c0 = s.state.clockMs;
      const honestNow = c0 + gap;
      // A voter's reading: an honest voter's is its clock (honest time, up to a minute behind); a
      // liar's is any time it likes. Forged, foreign and strangers' readings claim any time.
      const readings: ClockReading[] = picks.map((p) => {
        const id = `node-${p.node % n}`;
        const claim = Math.max(0, honestNow + p.skew);
        if (p.kind === 'forged') return signClockReading({ clusterId: s.clusterId, nodeId: id, clockMs: claim }, seedOf(`forger/${p.node}`));
        if (p.kind === 'foreign') return signClockReading({ clusterId: 'cluster-other', nodeId: id, clockMs: claim }, s.node(id).secretKey);
        if (p.kind === 'stranger') return signClockReading({ clusterId: s.clusterId, nodeId: `node-${n + (p.node % 3)}`, clockMs: claim }, seedOf(`stranger/${p.node}`));
        return reading(s, id, liars.has(id) ? claim : Math.max(0, honestNow - (Math.abs(p.skew) % 60_000)));
      });
      const c = s.state.cluster!;
      const valid = new Set(readings.filter((r) => r.clusterId === s.clusterId && c.nodes[r.nodeId] !== undefined && verifyClockReading(r, s.clusterId, c.nodes[r.nodeId]!.identityKey)).map((r) => r.nodeId));
      const majority = valid.size > n / 2;
      const stamp = c0 + stampOffset;
      const verdict = stampRefusal(s.state, tick(s, readings), stamp);
      const A = attestedTime(c.nodes, c.clusterId, readings);
      if (majority !== (A !== null)) throw new Error(`majority ${majority} but attested ${A}`);
      const bound = Math.max(c0, A ?? c0) + B;
      if ((verdict === null) !== (stamp <= bound)) throw new Error(`stamp ${stamp} bound ${bound}: verdict ${verdict}`);
      if (verdict === null) {
        accepted++;
        // Any majority holds an honest voter: the attested time is no later than honest time.
        if (A !== null && A > honestNow) throw new Error(`attested ${A} after honest time ${honestNow}`);
        if (stamp > Math.max(c0, honestNow) + B) throw new Error(`stamp ${stamp} past honest time + B`);
      } else refused++;
      return true;
    },
  ), { numRuns: 300 });
  t.ok(accepted > 0 && refused > 0, `${accepted} accepted, ${refused} refused`);
});
