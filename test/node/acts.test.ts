/**
 * Building an act from a request (node/lifecycle/acts.ts actFor), as a property over transactions
 * and declarations: the act's fields are always the transaction's own, the initiator is the one
 * the node authenticated, and a declaration is refused TX_DECLARED_MISMATCH exactly when one of
 * its fields differs from what the transaction says.
 *
 * A property failure prints fast-check's seed and path; replay it exactly with
 *   FC_SEED=<seed> FC_PATH=<path> npx tap dist/test/node/acts.test.js
 */
import t from 'tap';
import fc from 'fast-check';
import { actFor } from '../../node/lifecycle/acts.js';
import { buildTaprootPsbt } from '../../node/lifecycle/tx-build.js';
import { deriveActFields } from '../../ledger/tx/act.js';
import { LEDGER_ASSETS } from '../../ledger/admission.js';
import { taprootAddress } from '../../ledger/tx/parse.js';
import { toHex } from '../../ledger/encoding.js';
import type { LedgerState } from '../../ledger/state.js';
import { isCustodyError } from '../../proto/errors.js';
import { BTC, SOL, clusterState } from './act-fixtures.js';
import { refusedWith, taprootKey, txidOf } from '../ledger/tx-fixtures.js';

const RUNS = Number(process.env.FC_RUNS ?? 100);
const replay = {
  ...(process.env.FC_SEED !== undefined ? { seed: Number(process.env.FC_SEED) } : {}),
  ...(process.env.FC_PATH !== undefined ? { path: process.env.FC_PATH } : {}),
};

const state: LedgerState = { index: 1, clockMs: 0, chainHead: new Uint8Array(32), height: 1, cluster: clusterState() };
const DESTS = ['p', 'q', 'r'].map((l) => taprootAddress(taprootKey(`acts-${l}`).key));

t.test('property: the act is the transaction\'s; a declaration is refused exactly when it differs', async (t) => {
  const spec = fc.record({
    payments: fc.array(fc.record({ to: fc.integer({ min: 0, max: 2 }), amount: fc.bigInt({ min: 1n, max: 1_000_000n }) }), { minLength: 1, maxLength: 4 }),
    declareAsset: fc.option(fc.constantFrom('BTC', 'SOL', 'btc'), { nil: undefined }),
    amountDelta: fc.option(fc.constantFrom(0n, 1n, -1n, 1000n), { nil: undefined }),
    declareDest: fc.option(fc.constantFrom('truth', 'first-only', 'reversed', 'other'), { nil: undefined }),
    initiator: fc.constantFrom('cara', 'dan', 'operator-7'),
  });
  const r = fc.check(fc.property(spec, (s) => {
    const payments = s.payments.map((p) => ({ address: DESTS[p.to]!, amount: p.amount }));
    const total = payments.reduce((a, p) => a + p.amount, 0n);
    const tx = buildTaprootPsbt(BTC.key, [{ txid: txidOf('acts'), vout: 0, amountSat: total + 10_000n }], payments, 1_000n);
    const truth = deriveActFields('btc-psbt', tx, BTC.key, LEDGER_ASSETS).fields;
    const unique = [...new Set(payments.map((p) => p.address))];
    const dest = s.declareDest === undefined ? undefined
      : s.declareDest === 'truth' ? truth.destination
        : s.declareDest === 'first-only' ? unique[0]!
          : s.declareDest === 'reversed' ? [...unique].reverse().join(' ')
            : DESTS.filter((d) => !unique.includes(d)).join(' ') || 'bcrt1pnothing';
    const amount = s.amountDelta === undefined ? undefined : truth.amount + s.amountDelta;
    const declared = { ...(s.declareAsset !== undefined ? { asset: s.declareAsset } : {}), ...(amount !== undefined ? { amount } : {}), ...(dest !== undefined ? { destination: dest } : {}) };
    const lies = (s.declareAsset !== undefined && s.declareAsset !== 'BTC') || (amount !== undefined && amount !== truth.amount) || (dest !== undefined && dest !== truth.destination);
    try {
      const { act } = actFor(state, { keyId: BTC.key.keyId, kind: 'btc-psbt', tx, declared }, s.initiator);
      return !lies && act.initiator === s.initiator && act.asset === truth.asset && act.amount === truth.amount && act.destination === truth.destination
        && toHex(act.displayHash) === toHex(truth.displayHash) && toHex(act.messageDigest) === toHex(truth.messageDigest) && toHex(act.tx) === toHex(tx) && act.keyEpoch === 0;
    } catch (e) {
      return lies && isCustodyError(e) && e.reason === 'TX_DECLARED_MISMATCH';
    }
  }), { numRuns: RUNS, ...replay });
  t.notOk(r.failed, r.failed ? `counterexample ${fc.stringify(r.counterexample)}; replay with FC_SEED=${r.seed} FC_PATH=${r.counterexamplePath ?? ''}` : `${r.numRuns} requests built or refused as they should be`);
});

t.test('what actFor refuses besides declarations', async (t) => {
  const tx = buildTaprootPsbt(BTC.key, [{ txid: txidOf('acts-r'), vout: 0, amountSat: 20_000n }], [{ address: DESTS[0]!, amount: 5_000n }], 1_000n);
  refusedWith(t, () => actFor(state, { keyId: 'nope', kind: 'btc-psbt', tx }, 'cara'), 'UNKNOWN_KEY', 'an unknown key');
  refusedWith(t, () => actFor(state, { keyId: SOL.key.keyId, kind: 'btc-psbt', tx }, 'cara'), 'TX_NETWORK_MISMATCH', 'a PSBT for the Solana key');
  refusedWith(t, () => actFor(state, { keyId: BTC.key.keyId, kind: 'btc-psbt', tx }, ''), 'INVALID_ARGUMENT', 'no initiator');
  refusedWith(t, () => actFor({ ...state, cluster: null }, { keyId: BTC.key.keyId, kind: 'btc-psbt', tx }, 'cara'), 'GENESIS_MISSING', 'before genesis');
  const c = clusterState();
  const pending = { ...state, cluster: { ...c, keys: { ...c.keys, [BTC.key.keyId]: { ...c.keys[BTC.key.keyId]!, activeEpoch: null, status: 'pending' as const } } } };
  refusedWith(t, () => actFor(pending, { keyId: BTC.key.keyId, kind: 'btc-psbt', tx }, 'cara'), 'KEY_NOT_ACTIVE', 'a key not yet active');
  const { act } = actFor(state, { keyId: BTC.key.keyId, kind: 'btc-psbt', tx, keyEpoch: 3 }, 'cara');
  t.equal(act.keyEpoch, 3, 'an explicit epoch is kept (the ledger judges it: STALE_EPOCH)');
});
