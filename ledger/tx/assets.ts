/**
 * Asset table lookups the parsers share. The table belongs to the ledger (governance decides it);
 * a parser only reads it, and an ambiguous or malformed entry is a configuration error, never a
 * guess.
 */
import { CustodyError } from '../../proto/errors.js';
import { tx as limits } from '../../proto/limits.js';
import type { AssetInfo, AssetTable, Network } from './types.js';

export interface ResolvedAsset {
  readonly symbol: string;
  readonly info: AssetInfo;
}

function checkEntry(symbol: string, info: AssetInfo): void {
  if (!Number.isInteger(info.decimals) || info.decimals < 0 || info.decimals > limits.assetDecimalsMax) {
    throw new CustodyError('CONFIG_INVALID', `asset ${JSON.stringify(symbol)} declares ${String(info.decimals)} decimals (0..${limits.assetDecimalsMax})`);
  }
  if (!/^[A-Za-z0-9._-]{1,16}$/.test(symbol) || info.symbol !== symbol) {
    throw new CustodyError('CONFIG_INVALID', `asset table entry ${JSON.stringify(symbol)} is not keyed by its own symbol (letters, digits, . _ -)`);
  }
}

/** Symbols in a fixed order, so a lookup never depends on the order the table was built in. */
function sortedEntries(assets: AssetTable): ResolvedAsset[] {
  return Object.keys(assets).sort().map((symbol) => ({ symbol, info: assets[symbol]! }));
}

function one(found: ResolvedAsset[], what: string): ResolvedAsset {
  if (found.length === 0) throw new CustodyError('TX_ASSET_UNKNOWN', `no asset in the table for ${what}`);
  if (found.length > 1) {
    throw new CustodyError('CONFIG_INVALID', `the asset table names ${what} more than once (${found.map((a) => a.symbol).join(', ')})`);
  }
  checkEntry(found[0]!.symbol, found[0]!.info);
  return found[0]!;
}

/** The network's native asset (BTC, SOL): the one table entry with `onChain: 'native'` on it. */
export function nativeAsset(assets: AssetTable, network: Network): ResolvedAsset {
  return one(sortedEntries(assets).filter((a) => a.info.network === network && a.info.onChain === 'native'), `the native asset of ${network}`);
}

/** The SPL token with this mint on the network. */
export function mintAsset(assets: AssetTable, network: Network, mint: string): ResolvedAsset {
  return one(
    sortedEntries(assets).filter((a) => a.info.network === network && typeof a.info.onChain === 'object' && a.info.onChain.mint === mint),
    `mint ${mint} on ${network}`,
  );
}
