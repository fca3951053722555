/**
 * The kernel's own check of the act it is asked to sign for: before any nonce commitment or share,
 * the kernel re-verifies the custodian's signed request inside the act's ActSubmitted entry and
 * parses the transaction itself (the shared contract, items 3 and 4: no single compromised host can
 * make the cluster sign).
 *
 * Message flow
 *   daemon -> kernel  sign { ..., certificate: [ActSubmitted entry, ActSigningSetFixed entry],
 *                     messages }  (the certificate's inclusion [0] gives this event and its stamp;
 *                     its checkpoint is cosigned by a majority of voters, checked elsewhere)
 *   kernel            checkSubmittedAct(event, { clusterId, roster, key, stampMs }, messages)
 *                       1. the request is a custodian's, for this cluster, and the act is exactly
 *                          it (ledger/act-request-check.ts verifyActRequest, the ledger's own code,
 *                          against the roster the kernel follows itself: kernel/authority.ts)
 *                       2. the act is for the key this kernel holds, at its active epoch
 *                       3. the transaction parses against the key's scheme, network and group
 *                          key as the kernel holds them (ledger/tx deriveActFields, the parser
 *                          every node runs), and the messages derived are exactly the daemon's
 *                          `messages` and the act's messageDigest
 *                     -> { messages (the kernel's own), opId, facts (for kernel/policy-check.ts) };
 *                     any failure throws CustodyError
 *
 * Threat: the daemon is compromised. It may forward a request signed by an approver (governor) or
 * by a custodian since removed, a request of another cluster, a request with its transaction
 * swapped after signing, or the right act with other messages to sign (another sighash, another
 * Solana message). Each is refused with its own reason code: NOT_A_CUSTODIAN,
 * REQUEST_SIGNATURE_INVALID, REQUEST_MISMATCH, TX_MESSAGES_MISMATCH (REQUEST_UNSIGNED when there
 * is no request, REQUEST_EXPIRED outside the window when the entry's stamp is known). The daemon
 * can still withhold governance (an old roster) but the checkpoint certificate binds the ledger
 * state the act was applied in; the roster here is the one the kernel followed from its pinned
 * genesis through decisions it verified.
 *
 * Assets: the kernel parses with the ledger's asset table (ledger/asset-table.ts), the one every
 * node parses with; it only affects what a transaction's facts say, never its messages.
 *
 * Pure: no clock, no I/O.
 */
import { CustodyError } from '../proto/errors.js';
import { bytesEqual, fromHex } from '../ledger/encoding.js';
import type { ApproverRoster, KeyScheme } from '../ledger/decision.js';
import type { LedgerEvent } from '../ledger/events.js';
import { requestDeclaredMismatch, verifyActRequest } from '../ledger/act-request-check.js';
import { declaredMismatch, deriveActFields } from '../ledger/tx/act.js';
import { messagesDigest } from '../ledger/tx/messages.js';
import type { Network, TxFacts } from '../ledger/tx/types.js';
import { LEDGER_ASSETS } from '../ledger/asset-table.js';
import type { SignedActRequest } from '../ledger/act-request.js';
import type { RosterJson } from './authority.js';

export type ActSubmittedEvent = Extract<LedgerEvent, { type: 'ActSubmitted' }>;

/** The key as this kernel holds it: its governance record and the group key of its shares. */
export interface KernelKeyView {
  readonly keyId: string;
  readonly scheme: KeyScheme;
  readonly network: Network | undefined;
  readonly groupKey: Uint8Array;
  readonly activeEpoch: number | null;
}

export interface ActCheckContext {
  readonly clusterId: string;
  /** The roster in force as the kernel follows it (kernel/authority.ts GovernanceState.roster). */
  readonly roster: RosterJson | ApproverRoster;
  readonly key: KernelKeyView;
  /** The stamp of the ActSubmitted entry (from the certificate's inclusion); null skips the window check. */
  readonly stampMs?: number | null;
}

function rosterOf(r: RosterJson | ApproverRoster): ApproverRoster {
  return {
    approvers: r.approvers.map((a) => ({
      id: a.id,
      publicKey: typeof a.publicKey === 'string' ? fromHex(a.publicKey) : a.publicKey,
      roles: a.roles as ApproverRoster['approvers'][number]['roles'],
    })),
    quorum: { threshold: r.quorum.threshold, freezeThreshold: r.quorum.freezeThreshold },
  };
}

/**
 * Checks the act of `event` for this kernel and returns the messages to sign, derived by the
 * kernel itself (equal to the daemon's `messages`), and the act's opId. Throws CustodyError.
 */
export function checkSubmittedAct(event: ActSubmittedEvent, ctx: ActCheckContext, messages: readonly Uint8Array[]): { messages: Uint8Array[]; opId: string; request: SignedActRequest; facts: TxFacts } {
  if (event.type !== 'ActSubmitted') throw new CustodyError('PAYLOAD_REJECTED', `expected an ActSubmitted event, not ${String((event as { type?: unknown }).type)}`);
  const v = verifyActRequest(event, { clusterId: ctx.clusterId, roster: rosterOf(ctx.roster), nowMs: ctx.stampMs ?? null });
  if (!v.ok) throw new CustodyError(v.reason, v.detail);
  const request = event.request as SignedActRequest;
  const act = event.act;
  const k = ctx.key;
  if (act.keyId !== k.keyId) throw new CustodyError('REQUEST_MISMATCH', `the request is for key ${act.keyId}; this kernel was asked to sign with ${k.keyId}`);
  if (k.activeEpoch === null || act.keyEpoch !== k.activeEpoch) throw new CustodyError('STALE_EPOCH', `the request is for epoch ${act.keyEpoch} of ${k.keyId}; the active epoch is ${k.activeEpoch ?? 'none'}`);
  if (k.network === undefined) throw new CustodyError('KEY_NOT_ACTIVE', `this kernel does not know the network of ${k.keyId}; it signs no act for it`);
  // The kernel's own parse: TX_* refusals propagate with their codes.
  const { facts, fields } = deriveActFields(act.kind, act.tx, { keyId: k.keyId, scheme: k.scheme, network: k.network, groupKey: k.groupKey }, LEDGER_ASSETS);
  const own = facts.messages.map((m) => Uint8Array.from(m));
  if (!bytesEqual(messagesDigest(own), act.messageDigest)) throw new CustodyError('TX_MESSAGES_MISMATCH', 'the act\'s messageDigest is not the digest of the messages its transaction signs');
  if (messages.length !== own.length) throw new CustodyError('TX_MESSAGES_MISMATCH', `asked to sign ${messages.length} messages; the transaction signs ${own.length}`);
  for (let i = 0; i < own.length; i++) {
    if (!bytesEqual(messages[i] as Uint8Array, own[i] as Uint8Array)) throw new CustodyError('TX_MESSAGES_MISMATCH', `message ${i} is not the one the transaction signs`);
  }
  const why = declaredMismatch(act, fields) ?? requestDeclaredMismatch(request, fields);
  if (why !== null) throw new CustodyError('TX_DECLARED_MISMATCH', why);
  return { messages: own, opId: event.opId, request, facts };
}
