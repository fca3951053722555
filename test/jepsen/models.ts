/**
 * Sequential specifications for the linearizability checker: each model says what one object does
 * when calls reach it one at a time (Herlihy & Wing 1990 §2: the sequential specification).
 *
 * A model is pure and deterministic: step(state, input, observed) is the state after the call, or
 * REFUSED when the call cannot take effect in that state with that answer (any value, null
 * included, may be a state). `observed.known` is false
 * for an indeterminate call (the client never learned the answer): the step then only checks the
 * input and returns the state the call would leave. stateKey gives equal states equal strings; the
 * checker memoizes on it (Lowe 2017 §4), so two states with one key must be interchangeable for
 * every later call.
 *
 * A model whose object is nondeterministic (one call, several possible next states) lifts to a
 * deterministic model over sets of states, as Porcupine does; the models here need none.
 *
 *   registerModel   read / write / compare-and-set on one value
 *   appendModel     a list that calls append to and read whole (a write applied twice shows)
 *   actModel        the custody act of one act id: submitted once, ended once with one outcome
 */

/** What step answers for a call that cannot take effect in the state with the answer observed. */
export const REFUSED: unique symbol = Symbol('refused');
export type Refused = typeof REFUSED;

export type Observed<O> = { readonly known: true; readonly output: O } | { readonly known: false };

export interface Model<S, I, O> {
  readonly name: string;
  /** The state of every key before any call. */
  readonly init: S;
  step(state: S, input: I, observed: Observed<O>): S | Refused;
  stateKey(state: S): string;
  /**
   * True when a call with this input never changes the state (step returns the state it was
   * given, or REFUSED). The checker drops such calls when indeterminate: taking one as not having
   * happened is always allowed, and having happened would change nothing later, so the answer is
   * the same without them, and the search does not branch on them.
   */
  readOnly?(input: I): boolean;
  describeState(state: S): string;
  describeOp(input: I, observed: Observed<O>): string;
}

const show = (v: unknown): string => JSON.stringify(v) ?? String(v);

// ---------------------------------------------------------------------------------------------
// Register
// ---------------------------------------------------------------------------------------------
export type RegisterValue = number | string | null;
export type RegisterInput =
  | { readonly f: 'read' }
  | { readonly f: 'write'; readonly value: RegisterValue }
  | { readonly f: 'cas'; readonly from: RegisterValue; readonly to: RegisterValue };
/** read answers the value; write answers null; cas answers whether it swapped. */
export type RegisterOutput = RegisterValue | boolean;

export function registerModel(init: RegisterValue = null): Model<RegisterValue, RegisterInput, RegisterOutput> {
  return {
    name: 'register',
    init,
    step(state, input, observed) {
      switch (input.f) {
        case 'read':
          return !observed.known || observed.output === state ? state : REFUSED;
        case 'write':
          return !observed.known || observed.output === null ? input.value : REFUSED;
        case 'cas': {
          const swapped = state === input.from;
          if (observed.known && observed.output !== swapped) return REFUSED;
          return swapped ? input.to : state;
        }
      }
    },
    stateKey: (s) => show(s),
    readOnly: (input) => input.f === 'read',
    describeState: (s) => `value ${show(s)}`,
    describeOp(input, observed) {
      const out = observed.known ? show(observed.output) : '?';
      switch (input.f) {
        case 'read': return `read -> ${out}`;
        case 'write': return `write ${show(input.value)}${observed.known ? '' : ' -> ?'}`;
        case 'cas': return `cas ${show(input.from)}->${show(input.to)} -> ${out}`;
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Append-only list
// ---------------------------------------------------------------------------------------------
export type AppendInput = { readonly f: 'append'; readonly value: number } | { readonly f: 'read' };
/** append answers null; read answers the whole list. */
export type AppendOutput = null | readonly number[];

export const appendModel: Model<readonly number[], AppendInput, AppendOutput> = {
  name: 'append-list',
  init: [],
  step(state, input, observed) {
    if (input.f === 'append') return !observed.known || observed.output === null ? [...state, input.value] : REFUSED;
    if (!observed.known) return state;
    const out = observed.output;
    if (out === null || out.length !== state.length) return REFUSED;
    return out.every((v, i) => v === state[i]) ? state : REFUSED;
  },
  stateKey: (s) => s.join(','),
  readOnly: (input) => input.f === 'read',
  describeState: (s) => `list [${s.join(',')}]`,
  describeOp: (input, observed) =>
    input.f === 'append' ? `append ${input.value}${observed.known ? '' : ' -> ?'}` : `read -> ${observed.known ? show(observed.output) : '?'}`,
};

// ---------------------------------------------------------------------------------------------
// Custody act (one act id per key)
// ---------------------------------------------------------------------------------------------
/**
 * The life of one act as its clients see it (DESIGN §3, the operation journal): a submit admits
 * the act once, a second submit of the same act id is answered `duplicate` (the idempotency key
 * returns the original result); an act ends exactly once with one outcome (Settled, Denied,
 * Aborted), a second end is refused `already-ended`, an end before any submit `not-submitted`; a
 * read answers the act's status.
 */
export type ActStatus = { readonly kind: 'absent' } | { readonly kind: 'open' } | { readonly kind: 'ended'; readonly outcome: string };
export type ActInput =
  | { readonly f: 'submit' }
  | { readonly f: 'end'; readonly outcome: string }
  | { readonly f: 'read' };
export type ActOutput = 'accepted' | 'duplicate' | 'ended' | 'already-ended' | 'not-submitted' | ActStatus;

const ABSENT: ActStatus = { kind: 'absent' };
const OPEN: ActStatus = { kind: 'open' };
const sameStatus = (a: ActStatus, b: unknown): boolean =>
  typeof b === 'object' && b !== null && (b as ActStatus).kind === a.kind &&
  (a.kind !== 'ended' || (b as { outcome?: unknown }).outcome === a.outcome);
const statusKey = (s: ActStatus): string => (s.kind === 'ended' ? `ended:${s.outcome}` : s.kind);

export const actModel: Model<ActStatus, ActInput, ActOutput> = {
  name: 'custody-act',
  init: ABSENT,
  step(state, input, observed) {
    const answers = (o: ActOutput): boolean => !observed.known || observed.output === o;
    switch (input.f) {
      case 'submit':
        if (state.kind === 'absent') return answers('accepted') ? OPEN : REFUSED;
        return answers('duplicate') ? state : REFUSED;
      case 'end':
        if (state.kind === 'open') return answers('ended') ? { kind: 'ended', outcome: input.outcome } : REFUSED;
        return answers(state.kind === 'absent' ? 'not-submitted' : 'already-ended') ? state : REFUSED;
      case 'read':
        return !observed.known || sameStatus(state, observed.output) ? state : REFUSED;
    }
  },
  stateKey: statusKey,
  readOnly: (input) => input.f === 'read',
  describeState: (s) => `act ${statusKey(s)}`,
  describeOp(input, observed) {
    const out = !observed.known ? '?' : typeof observed.output === 'string' ? observed.output : statusKey(observed.output);
    return input.f === 'end' ? `end ${input.outcome} -> ${out}` : `${input.f} -> ${out}`;
  },
};
