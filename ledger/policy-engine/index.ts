/**
 * The policy engine: rule documents (first match, default deny) judged against the facts of an
 * act's transaction. Pure: no I/O, no clock; time is the ledger's.
 */
export * from './types.js';
export * from './units.js';
export * from './history.js';
export * from './evaluate.js';
export * from './yaml.js';
