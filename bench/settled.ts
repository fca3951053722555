/**
 * The six ledger entries of one signing act that settles, as the benchmarks that build long
 * histories feed them to the node's application (bench/archive.ts, bench/resync.ts): Submitted,
 * permit issued, signing set fixed, Executed (with the signature the ledger checks), Published,
 * Settled. Entries are stamped `stepMs` apart; the permit id is the one the ledger derives from
 * the index its ActPermitIssued entry lands at. Each entry carries its proposer's signature.
 */
import { encodeEvent, permitIdOf, signActRequest, type Act, type LedgerEvent, type SigningSetMember } from '../ledger/index.js';
import { encodeLedgerCommand } from '../node/ledger-app.js';

export interface SettledAct {
  /** The request id (32 lowercase hex) the custodian signs: the act's opId. */
  readonly opId: string;
  readonly act: Act;
  readonly commitments: readonly SigningSetMember[];
  /** One per message of the act. */
  readonly signatures: readonly Uint8Array[];
  readonly confirmation: string;
}

/** A cursor over the log being built: the last index and stamp used. */
export interface LogCursor {
  index: number;
  nowMs: number;
}

/** Appends the act's six commands to `out`, advancing `at`. */
export function settledActCommands(
  a: SettledAct,
  ctx: {
    readonly clusterId: string; readonly proposer: { readonly nodeId: string; readonly passport: string }; readonly stepMs: number;
    /** The custodian the act's initiator names: signs its request, issued at the submission's stamp. */
    readonly custodian: { readonly id: string; readonly secretKey: Uint8Array };
    /** Signs an event in the proposer's name (ledger/proposer-sig.ts), as the node's ledger port does: the ledger refuses unsigned ones. */
    readonly sign: (e: LedgerEvent) => LedgerEvent;
  },
  at: LogCursor,
  out: Uint8Array[],
): void {
  const { opId, act } = a;
  const p = ctx.proposer;
  const cmd = (ev: LedgerEvent): void => {
    at.index++;
    at.nowMs += ctx.stepMs;
    out.push(encodeLedgerCommand(at.nowMs, encodeEvent(ctx.sign(ev))));
  };
  const request = signActRequest({
    clusterId: ctx.clusterId, custodian: ctx.custodian.id, requestId: opId, issuedMs: at.nowMs + ctx.stepMs,
    keyId: act.keyId, keyEpoch: act.keyEpoch, kind: act.kind, tx: act.tx, declared: { asset: '', amount: '', destination: '' },
  }, ctx.custodian.secretKey);
  cmd({ type: 'ActSubmitted', opId, act, approval: null, request, ...p });
  cmd({ type: 'ActPermitIssued', opId, ...p });
  const permitId = permitIdOf({ clusterId: ctx.clusterId, opId, keyId: act.keyId, keyEpoch: act.keyEpoch, messageDigest: act.messageDigest, index: at.index, nodeId: p.nodeId });
  cmd({ type: 'ActSigningSetFixed', opId, permitId, commitments: [...a.commitments], ...p });
  cmd({ type: 'ActExecuted', opId, permitId, signatures: [...a.signatures], ...p });
  cmd({ type: 'ActPublished', opId, ...p });
  cmd({ type: 'ActSettled', opId, confirmation: a.confirmation, ...p });
}
