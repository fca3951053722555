/**
 * The fields of an act that are derived from its transaction. A submitting node fills them in with
 * `deriveActFields`; every node re-derives them when it applies ActSubmitted and refuses the act
 * (TX_DECLARED_MISMATCH, before any permit) when one differs, so a caller can declare nothing that
 * the transaction does not say:
 *
 *   asset          facts.asset
 *   amount         facts.amount (the non-change outputs, in the asset's smallest unit)
 *   destination    the non-change outputs' addresses in transaction order, each once, joined by ' '
 *                  ('' when nothing leaves the key: raw messages, pure change)
 *   displayHash    facts.displayHash (what an approval signs)
 *   messageDigest  messagesDigest(facts.messages) (what the step permit and every kernel bind to)
 */
import { CustodyError } from '../../proto/errors.js';
import { bytesEqual } from '../encoding.js';
import { messagesDigest } from './messages.js';
import { parseTransaction } from './parse.js';
import type { AssetTable, KeyContext, TxFacts, TxKind } from './types.js';

export interface DerivedActFields {
  readonly asset: string;
  readonly amount: bigint;
  readonly destination: string;
  readonly displayHash: Uint8Array;
  readonly messageDigest: Uint8Array;
}

export function destinationOf(facts: TxFacts): string {
  const seen: string[] = [];
  for (const o of facts.outputs) if (!o.change && !seen.includes(o.address)) seen.push(o.address);
  return seen.join(' ');
}

export function fieldsOf(facts: TxFacts): DerivedActFields {
  return { asset: facts.asset, amount: facts.amount, destination: destinationOf(facts), displayHash: facts.displayHash, messageDigest: messagesDigest(facts.messages) };
}

/** Parses the transaction and returns its facts with the act fields they fix. Refusals are TX_* CustodyErrors. */
export function deriveActFields(kind: TxKind, tx: Uint8Array, key: KeyContext, assets: AssetTable): { facts: TxFacts; fields: DerivedActFields } {
  const facts = parseTransaction(kind, tx, key, assets);
  return { facts, fields: fieldsOf(facts) };
}

/** The first declared field that differs from the derived ones, or null when all agree. */
export function declaredMismatch(declared: DerivedActFields, derived: DerivedActFields): string | null {
  if (declared.asset !== derived.asset) return `asset: declared ${declared.asset}, the transaction moves ${derived.asset}`;
  if (declared.amount !== derived.amount) return `amount: declared ${declared.amount}, the transaction pays ${derived.amount}`;
  if (declared.destination !== derived.destination) return `destination: declared ${JSON.stringify(declared.destination)}, the transaction pays ${JSON.stringify(derived.destination)}`;
  if (!bytesEqual(declared.displayHash, derived.displayHash)) return 'displayHash: not the digest of the transaction\'s display';
  if (!bytesEqual(declared.messageDigest, derived.messageDigest)) return 'messageDigest: not the digest of the messages the transaction signs';
  return null;
}

/** Throws TX_DECLARED_MISMATCH when a declared field differs from the transaction's own. */
export function requireDeclaredMatch(declared: DerivedActFields, derived: DerivedActFields): void {
  const why = declaredMismatch(declared, derived);
  if (why !== null) throw new CustodyError('TX_DECLARED_MISMATCH', why);
}
