/**
 * The assets the ledger knows until governance decides its own table: every parse of an act and
 * every policy document (its asset names and amount decimals) read this one table, so a document
 * a node accepts is a document every node accepts.
 */
import type { AssetTable } from './tx/types.js';

export const LEDGER_ASSETS: AssetTable = {
  BTC: { symbol: 'BTC', network: 'bitcoin-regtest', onChain: 'native', decimals: 8 },
  SOL: { symbol: 'SOL', network: 'solana-devnet', onChain: 'native', decimals: 9 },
};
