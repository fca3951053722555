/**
 * Shared by the ledger/tlog tests: the reference vectors (test/ledger/tlog-vectors.json, each
 * section naming its source) and fast-check run options that replay a printed failure.
 *
 *   FC_SEED=<seed> FC_PATH=<path> npx tap dist/test/ledger/tlog-<part>.test.js   replays a failure
 *   FC_RUNS=<n>                                                                    runs per property
 */
import { readFileSync } from 'node:fs';

export interface TlogVectors {
  merkle: {
    leaves: string[]; roots: string[]; leafHashes: string[];
    inclusion: { index: number; size: number; proof: string[] }[];
    consistency: { size1: number; size2: number; proof: string[] }[];
  };
  note: { text: string; peter: VectorKey; enoch: VectorKey; badVkeys: string[] };
  checkpoint: { note: string; origin: string; size: number; rootBase64: string; cosignatureMessage: string; cosignatureTimestamp: number };
}
export interface VectorKey { name: string; keyId: string; vkey: string; skey?: string; signatureLine: string }

/** The vectors file sits beside the test sources; compiled tests run from dist/test/ledger. */
export const VECTORS = JSON.parse(readFileSync(new URL('../../../test/ledger/tlog-vectors.json', import.meta.url), 'utf8')) as TlogVectors;

/** fast-check options: `defaultRuns` unless FC_RUNS says otherwise, and FC_SEED/FC_PATH to replay. */
export function fcRun(defaultRuns: number): { numRuns: number; seed?: number; path?: string } {
  return {
    numRuns: Number(process.env.FC_RUNS ?? defaultRuns),
    ...(process.env.FC_SEED !== undefined ? { seed: Number(process.env.FC_SEED) } : {}),
    ...(process.env.FC_PATH !== undefined ? { path: process.env.FC_PATH } : {}),
  };
}

/** The tap pattern of a CustodyError with this reason code. */
export const refused = (reason: string): { name: string; reason: string } => ({ name: 'CustodyError', reason });
