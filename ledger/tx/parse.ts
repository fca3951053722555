/**
 * The one entry point every node and every kernel runs on an act's transaction:
 *
 *   parseTransaction(kind, bytes, key, assets) -> TxFacts        (pure: no I/O, clock or randomness)
 *
 * Same inputs, same facts, byte for byte (display and displayHash included). Every refusal is a
 * CustodyError with a reason code; anything else escaping from a decoding library is caught at
 * this boundary and refused TX_UNPARSEABLE, so untrusted bytes can never crash a node or a kernel.
 */
import { CustodyError, isCustodyError } from '../../proto/errors.js';
import { tx as limits } from '../../proto/limits.js';
import { parseBitcoin } from './bitcoin.js';
import { finishFacts, type ParsedBody } from './display.js';
import { parseRaw } from './raw.js';
import { parseSolana } from './solana.js';
import { TX_KINDS, type AssetTable, type KeyContext, type TxFacts, type TxKind } from './types.js';

export function parseTransaction(kind: TxKind, bytes: Uint8Array, key: KeyContext, assets: AssetTable): TxFacts {
  if (!TX_KINDS.includes(kind)) throw new CustodyError('TX_UNSUPPORTED', `unknown transaction kind ${JSON.stringify(kind)}`);
  let body: ParsedBody;
  try {
    switch (kind) {
      case 'btc-psbt': body = parseBitcoin(bytes, key, assets); break;
      case 'solana': body = parseSolana(bytes, key, assets); break;
      case 'raw': body = parseRaw(bytes, key); break;
    }
  } catch (e) {
    if (isCustodyError(e)) throw e;
    throw new CustodyError('TX_UNPARSEABLE', `the ${kind} transaction does not decode: ${e instanceof Error ? e.message : String(e)}`.slice(0, limits.refusalDetailCharsMax), { cause: e });
  }
  return finishFacts(body, key);
}

export { finalizeBitcoin, taprootAddress, taprootScript, type FinalizedBitcoin } from './bitcoin.js';
export { finalizeSolana, solanaAddress, type FinalizedSolana } from './solana.js';
export { displayHash, formatUnits, TX_DISPLAY_DOMAIN } from './display.js';
