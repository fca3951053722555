/**
 * Solana message parsing: real legacy and v0 messages built with the official libraries (a SOL
 * transfer, an SPL Token TransferChecked, compute budget instructions), parsed into facts, signed
 * with a plain Ed25519 secret, verified with node:crypto over the message bytes, and decoded back
 * from the wire transaction with the official decoder. Then the attacks, each refused with its code.
 */
import t from 'tap';
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { address, getAddressDecoder, type Address } from '@solana/addresses';
import { AccountRole } from '@solana/instructions';
import { createNoopSigner } from '@solana/signers';
import {
  appendTransactionMessageInstructions, compileTransactionMessage, createTransactionMessage, decompileTransactionMessage,
  getCompiledTransactionMessageDecoder, getCompiledTransactionMessageEncoder, setTransactionMessageComputeUnitLimit,
  setTransactionMessageComputeUnitPrice, setTransactionMessageFeePayer, setTransactionMessageLifetimeUsingBlockhash,
  setTransactionMessageLifetimeUsingDurableNonce,
} from '@solana/transaction-messages';
import { getTransactionDecoder, getTransactionEncoder, type Transaction } from '@solana/transactions';
import { getTransferSolInstruction, getCreateAccountInstruction, parseTransferSolInstruction } from '@solana-program/system';
import { getTransferCheckedInstruction, getTransferInstruction } from '@solana-program/token';
import { finalizeSolana, parseTransaction, solanaAddress } from '../../ledger/tx/parse.js';
import { getBase58Decoder } from '@solana/codecs';
import { tx as limits } from '../../proto/limits.js';
import { ASSETS, USDC_MINT, ed25519Key, refusedWith } from './tx-fixtures.js';

const me = ed25519Key('sol-treasury');
const stranger = ed25519Key('sol-stranger');
const meAddr = solanaAddress(me.key);
const strangerAddr = solanaAddress(stranger.key);
const dest = getAddressDecoder().decode(ed25519.getPublicKey(new Uint8Array(32).fill(9)));
const blockhash = getAddressDecoder().decode(new Uint8Array(32).fill(42)) as string as Parameters<typeof setTransactionMessageLifetimeUsingBlockhash>[0]['blockhash'];
const otherProgram = getAddressDecoder().decode(new Uint8Array(32).fill(11));
const mint = address(USDC_MINT);
const srcAta = getAddressDecoder().decode(new Uint8Array(32).fill(3));
const dstAta = getAddressDecoder().decode(new Uint8Array(32).fill(4));

type Ix = Parameters<typeof appendTransactionMessageInstructions>[0][number];

function message(instructions: readonly Ix[], opts: { payer?: Address; version?: 'legacy' | 0; limit?: number; price?: bigint } = {}): Uint8Array {
  let m: any = createTransactionMessage({ version: opts.version ?? 'legacy' });
  m = setTransactionMessageFeePayer(opts.payer ?? meAddr, m);
  m = setTransactionMessageLifetimeUsingBlockhash({ blockhash, lastValidBlockHeight: 100n }, m);
  if (opts.limit !== undefined) m = setTransactionMessageComputeUnitLimit(opts.limit, m);
  if (opts.price !== undefined) m = setTransactionMessageComputeUnitPrice(opts.price, m);
  m = appendTransactionMessageInstructions(instructions as Ix[], m);
  return Uint8Array.from(getCompiledTransactionMessageEncoder().encode(compileTransactionMessage(m)));
}

const solTransfer = (amount: bigint, from: Address = meAddr, to: Address = dest) =>
  getTransferSolInstruction({ source: createNoopSigner(from), destination: to, amount });
const usdcTransfer = (amount: bigint, decimals = 6, authority: Address = meAddr, tokenMint: Address = mint) =>
  getTransferCheckedInstruction({ source: srcAta, mint: tokenMint, destination: dstAta, authority: createNoopSigner(authority), amount, decimals });

function ed25519Verify(publicKey: Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean {
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' });
  return nodeVerify(null, msg, key, sig);
}

t.test('a SOL transfer: facts, an Ed25519 signature node:crypto verifies, the wire transaction decodes', async (t) => {
  const bytes = message([solTransfer(1_500_000_000n), solTransfer(1_000n, meAddr, meAddr)]);
  const facts = parseTransaction('solana', bytes, me.key, ASSETS);
  t.equal(facts.kind, 'solana');
  t.equal(facts.network, 'solana-devnet');
  t.equal(facts.asset, 'SOL');
  t.same(facts.outputs, [
    { address: dest, asset: 'SOL', amount: 1_500_000_000n, change: false },
    { address: meAddr, asset: 'SOL', amount: 1_000n, change: true },
  ]);
  t.equal(facts.amount, 1_500_000_000n, 'amount = non-change transfers');
  t.equal(facts.fee, 5_000n, 'one signature, no priority fee');
  t.equal(facts.feeAsset, 'SOL');
  t.equal(facts.messages.length, 1);
  t.same(Buffer.from(facts.messages[0]!), Buffer.from(bytes), 'the message is the bytes the signature covers');
  t.match(facts.display, `\noutput 0: ${dest} 1.500000000 SOL\n`);
  t.match(facts.display, `\nrecent blockhash: ${blockhash}\n`, 'display notes the recent blockhash');
  t.match(facts.display, /\ncluster: not named by the message/, 'display says the message names no cluster');

  const sig = ed25519.sign(facts.messages[0]!, me.secret);
  t.ok(ed25519Verify(me.key.groupKey, facts.messages[0]!, sig), 'node:crypto Ed25519 verifies the signature over the message');
  const done = finalizeSolana(bytes, sig);
  t.same(Buffer.from(done.tx), Buffer.from(getTransactionEncoder().encode({ messageBytes: bytes, signatures: { [meAddr]: sig } } as unknown as Transaction)), 'finalizeSolana = the official wire encoding');
  t.equal(done.signature, getBase58Decoder().decode(sig), 'the transaction id is the base58 signature');
  const back = getTransactionDecoder().decode(done.tx);
  t.same(Buffer.from(back.signatures[meAddr]!), Buffer.from(sig), 'the official decoder reads our signature for the fee payer');
  refusedWith(t, () => finalizeSolana(bytes, ed25519.sign(bytes, stranger.secret)), 'SIGNATURE_INVALID', 'a signature by another key');
  refusedWith(t, () => finalizeSolana(bytes, sig.slice(0, 63)), 'SIGNATURE_INVALID', 'a short signature');
  const decoded = decompileTransactionMessage(getCompiledTransactionMessageDecoder().decode(back.messageBytes));
  const first = parseTransferSolInstruction(decoded.instructions[0] as never);
  t.equal(first.data.amount, 1_500_000_000n, 'the official System decoder reads the amount');
  t.equal(first.accounts.destination.address, dest);
});

t.test('an SPL TransferChecked (v0 message, compute budget): facts and fee', async (t) => {
  const bytes = message([usdcTransfer(2_500_000n)], { version: 0, limit: 50_000, price: 1_000_001n });
  const facts = parseTransaction('solana', bytes, me.key, ASSETS);
  t.equal(facts.asset, 'USDC');
  t.same(facts.outputs, [{ address: dstAta, asset: 'USDC', amount: 2_500_000n, change: false }]);
  t.equal(facts.amount, 2_500_000n);
  // 5000 + ceil(50,000 CU × 1,000,001 µlamports / 10^6) = 5000 + 50,001
  t.equal(facts.fee, 55_001n, 'base fee plus the priority fee at the requested limit, rounded up');
  t.equal(facts.feeAsset, 'SOL');
  t.match(facts.display, `\noutput 0: ${dstAta} 2.500000 USDC\n`, 'token amount with the table\'s 6 decimals');
  t.match(facts.display, '\nfee: 0.000055001 SOL\n');
  t.match(facts.display, '\nmessage version: 0\n');
  t.match(facts.display, `\ntoken transfer 0: from ${srcAta} mint ${USDC_MINT}\n`, 'display: the token account debited and the mint');
  const sig = ed25519.sign(bytes, me.secret);
  t.ok(ed25519Verify(me.key.groupKey, facts.messages[0]!, sig), 'node:crypto Ed25519 verifies');

  const noLimit = parseTransaction('solana', message([usdcTransfer(1n)], { price: 1_000_000n }), me.key, ASSETS);
  t.equal(noLimit.fee, 5_000n + 200_000n, 'without a limit, 200,000 CU per instruction is the maximum counted');
});

t.test('attacks and malformed messages are refused with their reason codes', async (t) => {
  const parse = (bytes: Uint8Array, key = me.key) => () => parseTransaction('solana', bytes, key, ASSETS);
  refusedWith(t, parse(message([solTransfer(1n, strangerAddr)], { payer: strangerAddr })), 'TX_FOREIGN_INPUT', 'another fee payer');
  refusedWith(t, parse(message([solTransfer(1n), solTransfer(1n, strangerAddr)])), 'TX_UNSUPPORTED', 'a second signer (a transfer from another account)');
  refusedWith(t, parse(message([solTransfer(1n), getCreateAccountInstruction({ payer: createNoopSigner(meAddr), newAccount: createNoopSigner(meAddr), lamports: 1n, space: 0, programAddress: dest })])), 'TX_UNSUPPORTED', 'an extra (non-transfer) System instruction');
  refusedWith(t, parse(message([usdcTransfer(1n), getTransferInstruction({ source: srcAta, destination: dstAta, authority: createNoopSigner(meAddr), amount: 1n })])), 'TX_UNSUPPORTED', 'an unchecked SPL Transfer');
  refusedWith(t, parse(message([solTransfer(1n), { programAddress: otherProgram, accounts: [], data: new Uint8Array([1]) } as unknown as Ix])), 'TX_UNSUPPORTED', 'an instruction of another program');
  const unsignedSource = { ...solTransfer(1n), accounts: [{ address: strangerAddr, role: AccountRole.WRITABLE }, { address: dest, role: AccountRole.WRITABLE }] };
  refusedWith(t, parse(message([unsignedSource as unknown as Ix])), 'TX_FOREIGN_INPUT', 'a transfer from an account that is not the key');
  const tokenOfOther = { ...usdcTransfer(1n), accounts: [...usdcTransfer(1n).accounts.slice(0, 3), { address: strangerAddr, role: AccountRole.READONLY }] };
  refusedWith(t, parse(message([tokenOfOther as unknown as Ix])), 'TX_FOREIGN_INPUT', 'a token transfer under another authority');
  refusedWith(t, parse(message([usdcTransfer(1n, 9)])), 'TX_ASSET_MISMATCH', 'wrong decimals');
  refusedWith(t, parse(message([usdcTransfer(1n, 6, meAddr, dest)])), 'TX_ASSET_UNKNOWN', 'a mint not in the table');
  refusedWith(t, parse(message([solTransfer(1n), usdcTransfer(1n)])), 'TX_MULTI_ASSET', 'SOL and USDC in one act');
  refusedWith(t, parse(message([solTransfer(1n)], { price: 10n ** 12n })), 'TX_FEE_INVALID', 'a priority fee above the bound');
  refusedWith(t, parse(message([])), 'TX_UNSUPPORTED', 'a message that transfers nothing');
  refusedWith(t, parse(message([solTransfer(1n)]), { ...me.key, network: 'bitcoin-regtest' }), 'TX_NETWORK_MISMATCH', 'a Solana message for a Bitcoin key');
  refusedWith(t, parse(message([solTransfer(1n)]), { ...me.key, network: 'solana-mainnet' }), 'TX_ASSET_UNKNOWN', 'a mainnet key with only devnet assets in the table');
  let nonced: any = setTransactionMessageFeePayer(meAddr, createTransactionMessage({ version: 'legacy' }));
  nonced = setTransactionMessageLifetimeUsingDurableNonce({ nonce: blockhash as string as never, nonceAccountAddress: dest, nonceAuthorityAddress: meAddr }, nonced);
  nonced = appendTransactionMessageInstructions([solTransfer(1n)], nonced);
  refusedWith(t, parse(Uint8Array.from(getCompiledTransactionMessageEncoder().encode(compileTransactionMessage(nonced)))), 'TX_UNSUPPORTED', 'a durable nonce message');
  const v0 = getCompiledTransactionMessageDecoder().decode(message([solTransfer(1n)], { version: 0 }));
  const withLookup = { ...v0, addressTableLookups: [{ lookupTableAddress: otherProgram, writableIndexes: [0], readonlyIndexes: [] }] };
  refusedWith(t, parse(Uint8Array.from(getCompiledTransactionMessageEncoder().encode(withLookup as never))), 'TX_UNSUPPORTED', 'a v0 message with an address lookup table');
  const good = message([solTransfer(1n)]);
  refusedWith(t, parse(Uint8Array.from([...good, 0])), 'TX_UNPARSEABLE', 'a trailing byte');
  refusedWith(t, parse(good.slice(0, good.length - 3)), 'TX_UNPARSEABLE', 'truncated');
  refusedWith(t, parse(new Uint8Array(limits.solanaMessageBytesMax + 1)), 'LIMIT_EXCEEDED', 'oversized');
  const many = Array.from({ length: limits.solanaInstructionsMax + 1 }, () => solTransfer(1n));
  refusedWith(t, parse(message(many)), 'LIMIT_EXCEEDED', 'more instructions than the bound');
});
