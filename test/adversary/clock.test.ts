/**
 * The ledger clock from an attacker's seat: a node whose clock runs far ahead (a year, or just
 * past the bound) tries to move the ledger's time, interleaved with an honest leader's entries
 * and idle gaps of any length; a forged decision tries to vouch for a far-future time; and the
 * node-side refusal keeps a fast clock's proposals (and ticks) from reaching Raft at all.
 */
import fc from 'fast-check';
import t from 'tap';
import { ScriptedCluster } from '../../ledger/scenario.js';
import { stampRefusal } from '../../ledger/apply.js';
import type { DecisionAction } from '../../ledger/decision.js';
import { type LedgerEvent, decodeEvent } from '../../ledger/events.js';
import { ledger as limits } from '../../proto/limits.js';
import { isCustodyError } from '../../proto/errors.js';
import { DriverLedgerPort } from '../../node/lifecycle/driver-ledger.js';
import { ClockTicker, type ClockWitnesses } from '../../node/lifecycle/clock.js';
import { signClockReading } from '../../ledger/clock-reading.js';
import { seedOf } from '../../ledger/scenario.js';
import type { Driver } from '../../raft/driver.js';
import type { LedgerApp } from '../../node/ledger-app.js';
import { decodeLedgerCommand, encodeVerdict } from '../../node/ledger-app.js';

const B = limits.stampAheadMs;
const YEAR = 365 * 24 * 3600 * 1000;
const tick = (s: ScriptedCluster, nodeId: string): LedgerEvent => ({ type: 'ClockTick', ...s.proposer(nodeId) });
const dkg = (keyId: string): DecisionAction => ({ kind: 'DkgAuthorized', keyId, scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ['node-0', 'node-1', 'node-2'] });

function started(): ScriptedCluster {
  const s = new ScriptedCluster({ label: 'clock', stepMs: 0 });
  s.autoTick = false; // every stamp below is the attacker's or the honest leader's, nothing is added
  if (!s.genesis().ok) throw new Error('genesis');
  return s;
}

t.test('a stamp a year ahead is refused and moves nothing', async (t) => {
  const s = started();
  const before = s.state.clockMs;
  const d = s.decision(dkg('k-late'));
  const r = s.entry(tick(s, 'node-1'), before + YEAR).result;
  t.match(r, { ok: false, reason: 'STAMP_AHEAD' });
  t.equal(s.state.clockMs, before, 'the ledger clock is where it was');
  t.ok(s.entry({ type: 'GovernanceDecision', decision: d }, before + 1_000).result.ok, 'a decision issued before it still applies: nothing expired');
});

t.test('the bound is exact: a liar gains at most the bound per entry', async (t) => {
  const s = started();
  const c0 = s.state.clockMs;
  t.match(s.entry(tick(s, 'node-1'), c0 + B + 1).result, { ok: false, reason: 'STAMP_AHEAD' }, 'one past the bound: refused');
  t.ok(s.entry(tick(s, 'node-1'), c0 + B).result.ok, 'at the bound: applied');
  t.equal(s.state.clockMs, c0 + B, 'the clock moved by the bound, no more');
});

t.test('a quorum-signed decision vouches for a jump; a forged one does not', async (t) => {
  const s = started();
  const c0 = s.state.clockMs;
  const week = 7 * 24 * 3600 * 1000;
  // The whole cluster was down a week: no leader ticked. The first tick is refused ...
  t.match(s.entry(tick(s, 'node-0'), c0 + week).result, { ok: false, reason: 'STAMP_AHEAD' });
  // ... a decision signed by one approver (below the quorum) claiming that time moves nothing ...
  const few = s.decision(dkg('k-few'), s.defaultSigners(1), { issuedMs: c0 + week, expiresMs: c0 + week + 3_600_000 });
  t.match(s.entry({ type: 'GovernanceDecision', decision: few }, c0 + week).result, { ok: false, reason: 'STAMP_AHEAD' });
  // ... nor a quorum-signed one stamped further ahead than its own issue time allows ...
  const honest = s.decision(dkg('k-wake'), undefined, { issuedMs: c0 + week, expiresMs: c0 + week + 3_600_000 });
  t.match(s.entry({ type: 'GovernanceDecision', decision: honest }, c0 + week + B + 1).result, { ok: false, reason: 'STAMP_AHEAD' });
  t.equal(s.state.clockMs, c0, 'the clock has not moved');
  // ... the quorum's decision at its own time does.
  t.ok(s.entry({ type: 'GovernanceDecision', decision: honest }, c0 + week + 1_000).result.ok);
  t.equal(s.state.clockMs, c0 + week + 1_000);
  t.ok(s.entry(tick(s, 'node-0'), c0 + week + 2_000).result.ok, 'and the leader\'s entries follow');
});

/**
 * Real time advances by gaps from nothing to days; the honest leader (node-0, clock within S of
 * real time) proposes entries and, while idle, ticks as seldom as a ticker may and still keep up
 * (every B - 2S of ledger silence: the worst case; the node's ticker does it every
 * clockTickIdleMs); a fast node (node-1, its clock `offset` ahead, past B + S) proposes at random.
 */
const S = 2_000;
const step = fc.record({
  gapMs: fc.oneof(fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 0, max: 3 * 24 * 3600 * 1000 })),
  honestSkewMs: fc.integer({ min: -S, max: S }),
  fast: fc.boolean(),
});
t.test('property: honest stamps are never refused, a fast clock never moves the ledger', async (t) => {
  let checked = 0;
  fc.assert(fc.property(fc.array(step, { minLength: 1, maxLength: 40 }), fc.integer({ min: B + S + 1, max: 2 * YEAR }), (steps, offset) => {
    const s = started();
    let real = s.state.clockMs + S;
    for (const st of steps) {
      // Idle: the leader ticks each time the ledger clock sat still for clockTickIdleMs.
      const end = real + st.gapMs;
      const every = B - 2 * S;
      while (end - s.state.clockMs >= every + S) {
        real = Math.max(real, s.state.clockMs + every);
        const r = s.entry(tick(s, 'node-0'), real + st.honestSkewMs).result;
        if (!r.ok) throw new Error(`honest tick refused at real ${real}: ${r.reason} ${r.detail}`);
      }
      real = end;
      const before = s.state.clockMs;
      if (st.fast) {
        const r = s.entry(tick(s, 'node-1'), real + offset).result;
        if (r.ok || r.reason !== 'STAMP_AHEAD') throw new Error(`a clock ${offset} ms fast was not refused STAMP_AHEAD`);
        if (s.state.clockMs !== before) throw new Error('a refused stamp moved the clock');
      } else {
        const r = s.entry(tick(s, 'node-0'), real + st.honestSkewMs).result;
        if (!r.ok) throw new Error(`honest entry refused after a gap of ${st.gapMs} ms: ${r.reason} ${r.detail}`);
      }
      if (s.state.clockMs < before) throw new Error('the clock ran backwards');
      if (s.state.clockMs > real + S) throw new Error(`ledger clock ${s.state.clockMs - real} ms ahead of real time`);
      checked++;
    }
    return true;
  }), { numRuns: 100 });
  t.ok(checked > 100, `${checked} stamps checked`);
  t.ok(limits.clockTickIdleMs < B - 2 * S, 'the node\'s ticker ticks more often than the worst case modelled here');
});

/** A port over a recording driver and a ledger state, with the node's clock given. */
function port(s: ScriptedCluster, now: () => number) {
  const proposed: Uint8Array[] = [];
  const driver = {
    propose: async (_c: string, _s: number, command: Uint8Array) => {
      proposed.push(command);
      return { ok: true as const, index: 1, result: encodeVerdict({ ok: true, index: 1, type: 'ClockTick', detail: 'tick', applied: true, replayed: false }), duplicate: false };
    },
    isLeader: true,
  } as unknown as Driver;
  const app = { get state() { return s.state; } } as unknown as LedgerApp;
  return { port: new DriverLedgerPort('node-0', driver, app, s.node('node-0').secretKey, 1_000, now), proposed };
}

t.test('a node whose clock is implausibly ahead proposes nothing', async (t) => {
  const s = started();
  const fast = port(s, () => s.state.clockMs + YEAR);
  try {
    await fast.port.propose(tick(s, 'node-0'));
    t.fail('proposed');
  } catch (e) {
    t.equal(isCustodyError(e) ? e.reason : String(e), 'STAMP_AHEAD', 'refused locally with its code');
  }
  t.equal(fast.proposed.length, 0, 'nothing reached Raft');
  const ok = port(s, () => s.state.clockMs + 1_000);
  t.ok((await ok.port.propose(tick(s, 'node-0'))).ok, 'a clock within the bound proposes');
  t.equal(ok.proposed.length, 1);
  t.equal(stampRefusal(s.state, tick(s, 'node-0'), s.state.clockMs + B), null, 'the port and the ledger apply one rule');
});

t.test('the leader ticks an idle ledger, and a fast leader ticks nothing', async (t) => {
  const s = started();
  const logs: string[] = [];
  const idle = s.state.clockMs + limits.clockTickIdleMs;
  const honest = port(s, () => idle);
  const ticker = new ClockTicker({ nodeId: 'node-0', ledger: honest.port, log: (l) => logs.push(l), now: () => idle });
  t.ok(await ticker.tick(), 'idle for the tick interval: a tick');
  t.equal(honest.proposed.length, 1);
  const early = new ClockTicker({ nodeId: 'node-0', ledger: honest.port, log: (l) => logs.push(l), now: () => idle - 1 });
  t.notOk(await early.tick(), 'not idle long enough: none');
  const fast = port(s, () => s.state.clockMs + YEAR);
  const fastTicker = new ClockTicker({ nodeId: 'node-0', ledger: fast.port, log: (l) => logs.push(l), now: () => s.state.clockMs + YEAR });
  t.notOk(await fastTicker.tick(), 'a fast clock does not tick');
  t.notOk(await fastTicker.tick());
  t.equal(fast.proposed.length, 0, 'nothing reached Raft');
  t.equal(logs.filter((l) => l.includes('STAMP_AHEAD')).length, 1, 'the refusal is said once, with its code');
});

/**
 * Catching up after an outage longer than the bound: the leader's ticker gathers the voters'
 * signed clock readings and the ledger (and the port's local rule) accepts its tick up to the
 * smallest of a majority + B; a leader alone, or a leader with a fast clock, moves nothing.
 */
function witnesses(s: ScriptedCluster, own: { id: string; clockMs: () => number }, peers: { id: string; clockMs: () => number; fails?: boolean; key?: Uint8Array }[]): ClockWitnesses {
  const sign = (id: string, clockMs: number, key?: Uint8Array) => signClockReading({ clusterId: s.clusterId, nodeId: id, clockMs }, key ?? s.node(id).secretKey);
  return {
    own: () => sign(own.id, own.clockMs()),
    peers: () => peers.map((p) => ({ nodeId: p.id, reading: async () => (p.fails ? Promise.reject(new Error('unreachable')) : sign(p.id, p.clockMs(), p.key)) })),
  };
}

/** Applies what the port proposed, as every replica would. */
function applyProposed(s: ScriptedCluster, proposed: readonly Uint8Array[]) {
  return proposed.map((c) => {
    const d = decodeLedgerCommand(c);
    if (d === null) throw new Error('not a ledger command');
    return s.entry(d.event, d.stampMs).result;
  });
}

t.test('after an outage longer than the bound, the leader catches up on a majority of readings, with no decision', async (t) => {
  const s = started();
  const real = s.state.clockMs + 30 * 24 * 3600 * 1000; // a month down
  const logs: string[] = [];
  const p = port(s, () => real);
  const ticker = new ClockTicker({ nodeId: 'node-0', ledger: p.port, log: (l) => logs.push(l), now: () => real, witnesses: witnesses(s, { id: 'node-0', clockMs: () => real }, [{ id: 'node-1', clockMs: () => real - 40 }, { id: 'node-2', clockMs: () => 0, fails: true }]) });
  t.ok(await ticker.tick(), 'the leader proposed a tick');
  t.equal(p.proposed.length, 1, 'it reached Raft: the port accepts the attested tick');
  const [r] = applyProposed(s, p.proposed);
  t.match(r, { ok: true, type: 'ClockTick' }, 'and the ledger applies it');
  t.equal(s.state.clockMs, real, 'the ledger clock caught up with the leader\'s');
  t.ok(s.entry(tick(s, 'node-1'), real + 1_000).result.ok, 'ordinary entries follow');
  t.same(logs, [], 'nothing refused');
});

t.test('a leader alone, or with forged readings, cannot catch the clock up', async (t) => {
  const s = started();
  const c0 = s.state.clockMs;
  const real = c0 + 30 * 24 * 3600 * 1000;
  const logs: string[] = [];
  const alone = port(s, () => real);
  const lonely = new ClockTicker({ nodeId: 'node-0', ledger: alone.port, log: (l) => logs.push(l), now: () => real, witnesses: witnesses(s, { id: 'node-0', clockMs: () => real }, [{ id: 'node-1', clockMs: () => real, fails: true }, { id: 'node-2', clockMs: () => real, fails: true }]) });
  t.notOk(await lonely.tick(), 'its own reading is no majority');
  t.equal(alone.proposed.length, 0, 'nothing reached Raft');
  const forging = port(s, () => real);
  const forger = new ClockTicker({ nodeId: 'node-0', ledger: forging.port, log: (l) => logs.push(l), now: () => real, witnesses: witnesses(s, { id: 'node-0', clockMs: () => real }, [{ id: 'node-1', clockMs: () => real, key: seedOf('not node-1') }, { id: 'node-2', clockMs: () => real, key: seedOf('not node-2') }]) });
  t.notOk(await forger.tick(), 'readings signed with other keys do not count');
  t.equal(forging.proposed.length, 0);
  t.equal(s.state.clockMs, c0, 'the ledger clock has not moved');
  t.equal(logs.filter((l) => l.includes('STAMP_AHEAD')).length, 2, 'each refused STAMP_AHEAD, and said');
  t.equal(logs.length, 2);
});

t.test('a leader a year ahead cannot move the ledger clock, even with honest readings', async (t) => {
  const s = started();
  const real = s.state.clockMs + 30 * 24 * 3600 * 1000;
  const logs: string[] = [];
  const fast = port(s, () => real + YEAR);
  const ticker = new ClockTicker({ nodeId: 'node-0', ledger: fast.port, log: (l) => logs.push(l), now: () => real + YEAR, witnesses: witnesses(s, { id: 'node-0', clockMs: () => real + YEAR }, [{ id: 'node-1', clockMs: () => real }, { id: 'node-2', clockMs: () => real }]) });
  t.notOk(await ticker.tick(), 'refused locally');
  t.equal(fast.proposed.length, 0, 'nothing reached Raft');
  t.match(logs, [/STAMP_AHEAD/]);
  // An honest leader beside a fast voter: the latest majority holds the fast reading and its own,
  // and the smallest of them (its own) bounds the tick.
  const honest = port(s, () => real);
  const beside = new ClockTicker({ nodeId: 'node-0', ledger: honest.port, log: (l) => logs.push(l), now: () => real, witnesses: witnesses(s, { id: 'node-0', clockMs: () => real }, [{ id: 'node-1', clockMs: () => real + YEAR }, { id: 'node-2', clockMs: () => 0 }]) });
  t.ok(await beside.tick());
  applyProposed(s, honest.proposed);
  t.equal(s.state.clockMs, real, 'the clock is the honest leader\'s, not the fast voter\'s');
});

t.test('within the bound the leader ticks without asking anyone for readings', async (t) => {
  const s = started();
  const idle = s.state.clockMs + limits.clockTickIdleMs;
  let asked = 0;
  const p = port(s, () => idle);
  const w = witnesses(s, { id: 'node-0', clockMs: () => idle }, [{ id: 'node-1', clockMs: () => idle }]);
  const counting: ClockWitnesses = { own: () => (asked++, w.own()), peers: () => (asked++, w.peers()) };
  const ticker = new ClockTicker({ nodeId: 'node-0', ledger: p.port, log: () => undefined, now: () => idle, witnesses: counting });
  t.ok(await ticker.tick());
  t.equal(asked, 0, 'no readings gathered');
  const [d] = p.proposed.map((c) => decodeLedgerCommand(c));
  t.same(Object.keys(decodeEvent(d!.event)).sort(), ['nodeId', 'passport', 'sig', 'type'], 'a plain tick with no readings, signed by its proposer');
});
