/**
 * The facts of an act's transaction: what every node and every kernel derive for themselves from
 * the transaction's own bytes, and what policy, approvals, the chronicle and evidence are about.
 *
 *   transaction bytes --parse (ledger/tx/parse.ts, pure, deterministic)--> TxFacts
 *
 * Nothing in TxFacts is taken from the caller: the asset, the amounts, the destinations, the fee,
 * the change and the messages the threshold key signs are all outputs of the parse. Two nodes
 * parsing the same bytes against the same key context get byte-identical facts (and so the same
 * display digest), which is what lets an approval bind to one transaction and nothing else.
 */

/** The transaction formats an act may carry. */
export type TxKind =
  /** A Bitcoin PSBT (BIP 174 v0 or BIP 370 v2) spending Taproot key-path inputs of the group key. */
  | 'btc-psbt'
  /** A Solana legacy or v0 message whose fee payer is the key's address. */
  | 'solana'
  /** Raw bytes signed as they are (off-chain attestations); policy never auto-allows them. */
  | 'raw';

export const TX_KINDS: readonly TxKind[] = ['btc-psbt', 'solana', 'raw'];

/** The network a key lives on: an address or transaction of another network is refused. */
export type Network =
  | 'bitcoin-mainnet'
  | 'bitcoin-testnet'
  | 'bitcoin-regtest'
  | 'solana-mainnet'
  | 'solana-devnet'
  | 'solana-testnet'
  /** Keys that sign raw messages only. */
  | 'none';

export const NETWORKS: readonly Network[] = [
  'bitcoin-mainnet', 'bitcoin-testnet', 'bitcoin-regtest', 'solana-mainnet', 'solana-devnet', 'solana-testnet', 'none',
];

/**
 * One asset the cluster knows: its symbol, the network it lives on, how it is identified on chain
 * (`native` for BTC and SOL, the mint address for an SPL token) and its decimals. Amounts are
 * always integers in the asset's smallest unit (satoshi, lamport, token base unit); `decimals`
 * only renders them (1 BTC = 10^8 sat).
 */
export interface AssetInfo {
  readonly symbol: string;
  readonly network: Network;
  readonly onChain: 'native' | { readonly mint: string };
  readonly decimals: number;
}

/** The assets the cluster knows, by symbol. */
export type AssetTable = { readonly [symbol: string]: AssetInfo };

/** What the parser needs to know about the signing key. */
export interface KeyContext {
  readonly keyId: string;
  readonly scheme: 'ed25519' | 'secp256k1' | 'taproot';
  /** The group public key as the ledger holds it (32-byte Ed25519, or 33-byte compressed secp256k1). */
  readonly groupKey: Uint8Array;
  readonly network: Network;
}

/** One payment the transaction makes. */
export interface TxOutput {
  /** The destination as the chain writes it (bech32m address, base58 Solana address). */
  readonly address: string;
  /** The asset symbol from the asset table. */
  readonly asset: string;
  /** In the asset's smallest unit. */
  readonly amount: bigint;
  /** True when the output pays back to the signing key itself (change). */
  readonly change: boolean;
}

export interface TxFacts {
  readonly kind: TxKind;
  readonly network: Network;
  /** The one asset the act moves (raw: 'RAW'); a transaction moving two assets is refused. */
  readonly asset: string;
  /** Every payment, change included, in transaction order. */
  readonly outputs: readonly TxOutput[];
  /** Sum of the non-change outputs, in the asset's smallest unit. */
  readonly amount: bigint;
  /** The fee, in the network's native asset's smallest unit (raw: 0n). */
  readonly fee: bigint;
  readonly feeAsset: string;
  /**
   * The exact messages the threshold key signs, in order: one BIP 341 sighash (32 bytes) per
   * input for a PSBT, the serialized message for Solana, the bytes themselves for raw.
   */
  readonly messages: readonly Uint8Array[];
  /** The canonical rendering a person approves (UTF-8 text, one fact per line). */
  readonly display: string;
  /** SHA-256 of the domain-separated display: what an approval signs. */
  readonly displayHash: Uint8Array;
}
