/**
 * The one place the simulator names the real Raft core: every simulated node runs this exact
 * code, with only its clock, randomness, storage and transport simulated.
 */
import { RaftCore } from '../../raft/core/raft.js';
import type { RaftApi, RaftConfig } from '../../raft/core/types.js';

export { decodeConfChange } from '../../raft/core/confchange.js';

export function newCore(cfg: RaftConfig): RaftApi {
  return new RaftCore(cfg);
}
