/**
 * The admin API's dry run of admission (node/admin/policy.ts) on a real Solana transfer parsed
 * against the ledger's key: the rule that matches and why, our own addresses recognised through the
 * key's network, refusals for what cannot be judged, and nothing recorded.
 */
import t from 'tap';
import { address, getAddressDecoder, type Address } from '@solana/addresses';
import { createNoopSigner } from '@solana/signers';
import {
  appendTransactionMessageInstructions, compileTransactionMessage, createTransactionMessage, getCompiledTransactionMessageEncoder,
  setTransactionMessageFeePayer, setTransactionMessageLifetimeUsingBlockhash,
} from '@solana/transaction-messages';
import { getTransferSolInstruction } from '@solana-program/system';
import { ScriptedCluster, bytesEqual, stateRoot } from '../../ledger/index.js';
import { ownAddresses } from '../../ledger/admission.js';
import { keyContextOf } from '../../ledger/state.js';
import { solanaAddress } from '../../ledger/tx/parse.js';
import { parsePolicyYaml } from '../../ledger/policy-engine/index.js';
import { LEDGER_ASSETS } from '../../ledger/asset-table.js';
import { policyReply, testPolicy } from '../../node/admin/policy.js';
import type { Operator } from '../../node/admin/roles.js';

const PAYEE = getAddressDecoder().decode(new Uint8Array(32).fill(9));
const STRANGER = getAddressDecoder().decode(new Uint8Array(32).fill(7));

const policy = parsePolicyYaml(`version: 1
rules:
  - id: sweep-home
    match: { assets: [SOL], destination: { ownKeys: true } }
    action: ALLOW
  - id: payouts
    match: { assets: [SOL], destination: { allow: [${PAYEE}] }, amount: { max: "0.000002" } }
    action: ALLOW
`, LEDGER_ASSETS);

function transfer(from: Address, to: Address, lamports: bigint): Uint8Array {
  let m: any = createTransactionMessage({ version: 'legacy' });
  m = setTransactionMessageFeePayer(from, m);
  m = setTransactionMessageLifetimeUsingBlockhash({ blockhash: getAddressDecoder().decode(new Uint8Array(32).fill(42)) as never, lastValidBlockHeight: 100n }, m);
  m = appendTransactionMessageInstructions([getTransferSolInstruction({ source: createNoopSigner(from), destination: to, amount: lamports })], m);
  return Uint8Array.from(getCompiledTransactionMessageEncoder().encode(compileTransactionMessage(m)));
}

const cara: Operator = { id: 'cara', role: 'custodian' } as Operator;

t.test('policy test: a Solana transfer judged by the rule that matches, with the reasons', async (t) => {
  const s = new ScriptedCluster({ label: 'admin-policy', policy });
  s.genesis();
  for (const r of s.createKey('k1')) if (!r.ok) throw new Error(`setup: ${r.reason} ${r.detail}`);
  s.createKey('k2');
  const key = keyContextOf(s.state.cluster!, 'k1')!;
  const me = address(solanaAddress(key));
  t.ok(ownAddresses(s.state.cluster!).has(me), 'an active ed25519 key\'s Solana address is one of our own');

  const before = stateRoot(s.state);
  const ok = testPolicy(cara, s.state, { keyId: 'k1', kind: 'solana', tx: transfer(me, PAYEE, 1_500n), initiator: '' }, s.nowMs);
  t.match(ok, { allowed: true, ruleId: 'payouts', reason: '' });
  t.match(ok.explanation, /^rule sweep-home: does not match\n[^]*?FAILS  destination\.allow: output 0 pays \S+, not on our own keys$/m, 'the first rule is shown failing, with the output that fails it');
  t.match(ok.explanation, /^rule payouts: MATCHED$/m);
  t.match(ok.explanation, /holds  amount: amount 0\.0000015 SOL is in \[0, 0\.000002 SOL\]/, 'amounts in asset units');
  t.match(ok.display, /solana/i, 'the display an approver would read');

  const home = testPolicy(cara, s.state, { keyId: 'k1', kind: 'solana', tx: transfer(me, address(solanaAddress(keyContextOf(s.state.cluster!, 'k2')!)), 10_000_000n), initiator: 'cara' }, s.nowMs);
  t.match(home, { allowed: true, ruleId: 'sweep-home' }, 'a transfer to another key of ours matches the ownKeys rule');

  const big = testPolicy(cara, s.state, { keyId: 'k1', kind: 'solana', tx: transfer(me, PAYEE, 2_001n), initiator: '' }, s.nowMs);
  t.match(big, { allowed: false, reason: 'POLICY_NO_RULE', ruleId: '' }, 'above the payout limit no rule matches: default deny');
  const away = testPolicy(cara, s.state, { keyId: 'k1', kind: 'solana', tx: transfer(me, STRANGER, 1n), initiator: '' }, s.nowMs);
  t.match(away, { allowed: false, reason: 'POLICY_NO_RULE' });
  t.ok(bytesEqual(stateRoot(s.state), before), 'a dry run changes nothing');

  t.throws(() => testPolicy(cara, s.state, { keyId: 'k1', kind: 'solana', tx: transfer(STRANGER, PAYEE, 1n), initiator: '' }, s.nowMs), /TX_/, 'a transaction the key does not pay for is refused by the parser, as apply would');
  t.throws(() => testPolicy(cara, s.state, { keyId: 'nope', kind: 'raw', tx: new Uint8Array([1]), initiator: '' }, s.nowMs), /UNKNOWN_KEY/);
  t.throws(() => testPolicy(cara, s.state, { keyId: 'k1', kind: 'psbt', tx: new Uint8Array([1]), initiator: '' }, s.nowMs), /INVALID_ARGUMENT: kind must be one of/);
  t.throws(() => testPolicy(cara, s.state, { keyId: 'k1', kind: 'raw', tx: new Uint8Array(200_000), initiator: '' }, s.nowMs), /LIMIT_EXCEEDED/);

  const shown = policyReply({ id: 'audra', role: 'auditor' } as Operator, s.state);
  t.match(shown, { governanceEpoch: 0 });
  t.match(shown.yaml, /- id: sweep-home/);
});
