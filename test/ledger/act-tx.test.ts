/**
 * Acts that carry transactions, from an attacker's side: every node parses the act's transaction
 * itself when it applies ActSubmitted, so a transaction that does not parse, belongs to another
 * network or key, or says something else than the act declares is recorded Denied with its TX_*
 * reason before any permit exists; approvals and releases bind the display the transaction
 * renders; an act of N messages is signed with N nonce pairs per signer and N signatures.
 */
import t, { type Test } from 'tap';
import { schnorr } from '@noble/curves/secp256k1.js';
import { Transaction, OutScript } from '@scure/btc-signer';
import {
  ScriptedCluster, checkInvariants, consumedKey, seedOf, solanaAddressOf, solanaTransferMessage, taprootPsbt, taprootStandIn,
  regtestAddressOf, keyContextOf, type ApplyResult, type Act,
} from '../../ledger/index.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { messagesDigest } from '../../ledger/tx/messages.js';
import { finalizeBitcoin } from '../../ledger/tx/parse.js';
import { rid } from '../../ledger/scenario.js';

function ok(t: Test, r: ApplyResult, what?: string): void {
  t.ok(r.ok, what ?? (r.ok ? r.effect : `${r.reason}: ${r.detail}`));
}

function cluster(o: { network?: 'solana-mainnet' } = {}): ScriptedCluster {
  const s = new ScriptedCluster({ label: 'act-tx' });
  s.genesis();
  for (const r of s.createKey('sol', undefined, 2, o.network ? { network: o.network } : {})) if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  for (const r of s.createKey('btc', undefined, 2, { scheme: 'taproot' })) if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  return s;
}

/** Submits and asserts the act is recorded Denied with `reason`, holds no permit, and cannot get one. */
function deniedWith(t: Test, s: ScriptedCluster, opId: string, act: Act, reason: string, what: string): void {
  const r = s.submit(opId, act);
  t.match(r, { ok: false, reason, applied: true, opState: 'Denied' }, `${what}: Denied ${reason}${r.ok ? '' : ` (${r.detail})`}`);
  t.equal(s.state.cluster!.ops[rid(opId)]?.permitId, null, `${what}: no permit`);
  t.match(s.issuePermit(opId), { ok: false, reason: 'INVALID_TRANSITION' }, `${what}: no permit afterwards either`);
  t.same(checkInvariants(s.state), []);
}

t.test('a real Solana transfer and a two-input Taproot PSBT go through the ledger with one signature per message', async (t) => {
  const s = cluster();
  const sol = s.act('sol', { amount: 1_500n });
  t.equal(sol.kind, 'solana');
  t.equal(sol.amount, 1_500n);
  t.equal(sol.destination, solanaAddressOf('bc1-treasury'));
  t.same(sol.messageDigest, messagesDigest([sol.tx]), 'a Solana act signs its message bytes');
  ok(t, s.submit('sol-1', sol));
  ok(t, s.issuePermit('sol-1'));
  ok(t, s.execute('sol-1'));
  t.ok(ed25519.verify(s.state.cluster!.ops[rid('sol-1')]!.signatures![0]!, sol.tx, s.groupKey('sol')), 'the executed signature verifies over the message');

  const btc = s.act('btc', { amount: 2_000n, inputs: [30_000n, 40_000n] });
  t.equal(btc.kind, 'btc-psbt');
  t.equal(btc.destination, regtestAddressOf('bc1-treasury'), 'the change back to the key is not a destination');
  const facts = s.facts(btc);
  t.equal(facts.messages.length, 2, 'one BIP 341 sighash per input');
  t.same(btc.messageDigest, messagesDigest(facts.messages));
  ok(t, s.submit('btc-1', btc));
  ok(t, s.issuePermit('btc-1'));
  const set = s.signingSet('btc-1');
  t.ok(set.every((m) => m.nonces.length === 2 && m.nonces[1]!.counter > m.nonces[0]!.counter), 'two nonce pairs per signer, counters ascending');
  t.match(s.fixSigningSet('btc-1', { commitments: set.map((m) => ({ ...m, nonces: m.nonces.slice(0, 1) })) }), { ok: false, reason: 'PAYLOAD_REJECTED' }, 'one nonce pair for two messages is refused');
  const swapped = set.map((m) => ({ ...m, nonces: [m.nonces[1]!, m.nonces[0]!] }));
  t.match(s.fixSigningSet('btc-1', { commitments: swapped }), { ok: false, reason: 'PAYLOAD_REJECTED' }, 'counters that do not ascend are refused');
  ok(t, s.fixSigningSet('btc-1', { commitments: set }));
  const sigs = s.signatures('btc-1');
  t.match(s.execute('btc-1', { signatures: sigs.slice(0, 1) }), { ok: false, reason: 'PAYLOAD_REJECTED' }, 'one signature for two messages is refused');
  ok(t, s.execute('btc-1', { signatures: sigs }));
  const op = s.state.cluster!.ops[rid('btc-1')]!;
  t.equal(op.signatures?.length, 2);
  const q = taprootStandIn(s.groupSecret('btc'));
  facts.messages.forEach((m, i) => t.ok(schnorr.verify(op.signatures![i]!, m, q.groupKey.slice(1)), `signature ${i} verifies (BIP 340) over sighash ${i}`));
  t.ok(finalizeBitcoin(btc.tx, op.signatures!).tx.length > 0, 'the signed transaction finalizes');
  for (const m of set) t.equal(s.state.cluster!.consumed[consumedKey('btc', 0, m.nodeId)], m.nonces[1]!.counter, `${m.nodeId}: consumed is its last counter`);
  ok(t, s.publish('btc-1'));
  t.same(checkInvariants(s.state), []);
});

t.test('a transaction that does not say what the act declares is Denied TX_DECLARED_MISMATCH before any permit', async (t) => {
  const s = cluster();
  // The attacker declares "1000 lamports to the treasury" over a message paying 1000 lamports to them.
  const theirs = s.act('sol', { destination: 'attacker', amount: 1_000n });
  const declared = s.act('sol', { destination: 'bc1-treasury', amount: 1_000n });
  deniedWith(t, s, 'dest', { ...declared, tx: theirs.tx }, 'TX_DECLARED_MISMATCH', 'declared destination over a transaction paying another');
  deniedWith(t, s, 'amount', s.act('sol', { amount: 1_000n }, { amount: 10n }), 'TX_DECLARED_MISMATCH', 'declared amount below what is paid');
  deniedWith(t, s, 'asset', s.act('sol', {}, { asset: 'BTC' }), 'TX_DECLARED_MISMATCH', 'declared asset');
  deniedWith(t, s, 'display', s.act('sol', {}, { displayHash: seedOf('a friendlier display') }), 'TX_DECLARED_MISMATCH', 'declared display digest');
  deniedWith(t, s, 'digest', s.act('sol', {}, { messageDigest: seedOf('other messages') }), 'TX_DECLARED_MISMATCH', 'declared messages digest');
  ok(t, s.submit('honest', declared), 'the honest act over the same transaction is admitted');
});

t.test('each transaction refusal of the parser is recorded Denied with its TX_* reason', async (t) => {
  const s = cluster();
  deniedWith(t, s, 'unparseable', s.act('sol', { tx: new Uint8Array([1, 2, 3, 4]) }), 'TX_UNPARSEABLE', 'bytes that are no Solana message');
  deniedWith(t, s, 'network', s.act('btc', { kind: 'solana', tx: s.act('sol').tx }), 'TX_NETWORK_MISMATCH', 'a Solana message for a Bitcoin key');
  const stranger = ed25519.getPublicKey(seedOf('stranger'));
  deniedWith(t, s, 'foreign', s.act('sol', { tx: solanaTransferMessage(stranger, [{ to: solanaAddressOf('bc1-treasury'), lamports: 1_000n }]) }), 'TX_FOREIGN_INPUT', 'a message paid for by another key');
  deniedWith(t, s, 'psbt-for-sol', s.act('sol', { kind: 'btc-psbt', tx: s.act('btc').tx }), 'TX_NETWORK_MISMATCH', 'a PSBT for a Solana key');
  // The System instruction's discriminator (the first of its 12 data bytes, at the end) turned from Transfer (2) into Assign (1).
  const other = s.act('sol').tx.slice();
  other[other.length - 12] = 1;
  deniedWith(t, s, 'unsupported', s.act('sol', { tx: other }), 'TX_UNSUPPORTED', 'a System instruction other than Transfer');
  const q = s.keyContext('btc').groupKey.slice(1);
  deniedWith(t, s, 'fee', s.act('btc', { tx: taprootPsbt(q, { to: regtestAddressOf('bc1-treasury'), amount: 1_000n, inputs: [7_000_000n], fee: 6_000_000n }) }), 'TX_FEE_INVALID', 'a fee above the bound');
  const incomplete = new Transaction({ version: 2 });
  incomplete.addInput({ txid: seedOf('prev'), index: 0 });
  incomplete.addOutput({ script: OutScript.encode({ type: 'tr', pubkey: q }), amount: 1_000n });
  deniedWith(t, s, 'incomplete', s.act('btc', { tx: incomplete.toPSBT(0) }), 'TX_INPUT_INCOMPLETE', 'an input without its previous output');
  const mainnet = cluster({ network: 'solana-mainnet' });
  deniedWith(t, mainnet, 'asset', mainnet.act('sol'), 'TX_ASSET_UNKNOWN', 'SOL on a network the asset table does not list');
  // TX_MULTI_ASSET and TX_ASSET_MISMATCH need SPL token transfers: test/ledger/tx-solana.test.ts refuses them in the parser every node runs here.
});

t.test('an approval or a release signed over another display than the transaction\'s is refused BINDING_MISMATCH', async (t) => {
  const s = cluster();
  const act = s.act('sol', { amount: 50_000n });
  const { actCid } = await import('../../ledger/events.js');
  const aCid = actCid(act);
  const elsewhere = s.decision({ kind: 'ActApproved', opId: rid('a'), actCid: aCid, displayHash: seedOf('what the approvers were shown instead') }, undefined, { parentCid: aCid });
  t.match(s.submit('a', act, elsewhere), { ok: false, reason: 'BINDING_MISMATCH', opState: 'Denied' });
  const act2 = s.act('sol', { amount: 50_000n, destination: 'bc1-exchange' });
  ok(t, s.submit('b', act2, s.approveAct('b', act2)));
  ok(t, s.issuePermit('b'));
  ok(t, s.execute('b'));
  const bCid = s.state.cluster!.ops[rid('b')]!.actCid;
  t.match(s.decide({ kind: 'PublicationReleased', opId: rid('b'), actCid: bCid, displayHash: act.displayHash }, undefined, { parentCid: bCid }), { ok: false, reason: 'BINDING_MISMATCH' });
  ok(t, s.decide({ kind: 'PublicationReleased', opId: rid('b'), actCid: bCid, displayHash: act2.displayHash }, undefined, { parentCid: bCid }));
  ok(t, s.publish('b'));
});

t.test('a key\'s network must suit its scheme, and the ledger parses against the key\'s own context', async (t) => {
  const s = cluster();
  t.match(s.decide({ kind: 'DkgAuthorized', keyId: 'k-bad', scheme: 'ed25519', network: 'bitcoin-mainnet', threshold: 2, participants: ['node-0', 'node-1'] }), { ok: false, reason: 'PAYLOAD_REJECTED' });
  t.match(s.decide({ kind: 'DkgAuthorized', keyId: 'k-bad', scheme: 'taproot', network: 'solana-devnet', threshold: 2, participants: ['node-0', 'node-1'] }), { ok: false, reason: 'PAYLOAD_REJECTED' });
  const k = keyContextOf(s.state.cluster!, 'btc')!;
  t.match(k, { keyId: 'btc', scheme: 'taproot', network: 'bitcoin-regtest' });
  t.same(k.groupKey, s.groupKey('btc'));
  t.equal(keyContextOf(s.state.cluster!, 'nope'), null);
});

t.test('the act codec bounds the transaction by its kind and the destination: a larger one is refused PAYLOAD_REJECTED, not journaled', async (t) => {
  const s = cluster();
  const { tx: limits } = await import('../../proto/limits.js');
  const cases: [string, Act][] = [
    ['a raw message one byte over its bound', s.act('sol', { kind: 'raw', tx: new Uint8Array(limits.rawBytesMax + 1).fill(0x61) })],
    ['a Solana message one byte over its bound', s.act('sol', { tx: new Uint8Array(limits.solanaMessageBytesMax + 1) })],
    ['an empty transaction', s.act('sol', { tx: new Uint8Array(0) })],
    ['a destination over its bound', s.act('sol', {}, { destination: 'x'.repeat(limits.destinationBytesMax + 1) })],
    ['an unknown kind', s.act('sol', {}, { kind: 'eth' as never })],
  ];
  for (const [what, act] of cases) {
    const before = s.state.height;
    t.match(s.submit(`big-${what}`, act), { ok: false, reason: 'PAYLOAD_REJECTED', applied: false }, what);
    t.equal(s.state.height, before, `${what}: nothing journaled`);
  }
  const atBound = s.act('sol', { kind: 'raw', tx: new Uint8Array(limits.rawBytesMax).fill(0x61) });
  t.match(s.submit('raw-at-bound', atBound), { ok: false, reason: 'POLICY_NO_RULE', applied: true }, 'a raw message at its bound decodes (and policy never auto-allows raw)');
  t.match(s.state.cluster!.ops[rid('raw-at-bound')]!.rule, { id: null, action: 'BLOCK' }, 'no rule admits it: default deny');
});
