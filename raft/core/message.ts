/**
 * Building and checking peer messages. A peer may be buggy or hostile, so the core checks every
 * field before acting on it; a message that fails is dropped and counted, never half-applied.
 */
import type { Entry, Message, MessageType, NodeId } from './types.js';

const TYPES: ReadonlySet<MessageType> = new Set<MessageType>([
  'app', 'appResp', 'vote', 'voteResp', 'preVote', 'preVoteResp', 'heartbeat', 'heartbeatResp',
  'snap', 'snapResp', 'timeoutNow', 'prop', 'readIndex', 'readIndexResp', 'transferLeader',
]);

const EMPTY = new Uint8Array(0);

export function msg(type: MessageType, from: NodeId, to: NodeId, term: number, fields: Partial<Message> = {}): Message {
  return {
    type,
    from,
    to,
    term,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    context: EMPTY,
    snapshot: null,
    ...fields,
  };
}

function natural(n: unknown): boolean {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

function validEntry(e: Entry): boolean {
  return natural(e.term) && natural(e.index) && e.index > 0 && (e.type === 'normal' || e.type === 'conf') && e.data instanceof Uint8Array;
}

/** Why a message is unacceptable to node `self`, or null when it is well-formed. */
export function invalidReason(m: Message, self: NodeId): string | null {
  if (!TYPES.has(m.type)) return 'unknown type';
  if (typeof m.from !== 'string' || m.from.length === 0) return 'missing sender';
  if (m.from === self) return 'message from self';
  if (m.to !== self) return 'wrong recipient';
  if (!natural(m.term) || !natural(m.logTerm) || !natural(m.index) || !natural(m.commit) || !natural(m.rejectHint)) return 'negative or non-integer field';
  if (!(m.context instanceof Uint8Array)) return 'bad context';
  if (!Array.isArray(m.entries)) return 'bad entries';
  if (m.entries.length > 0 && m.type !== 'app' && m.type !== 'prop') return 'entries on a non-append message';
  if (m.type === 'app') {
    let want = m.index + 1;
    let lastTerm = m.logTerm;
    for (const e of m.entries) {
      if (!validEntry(e)) return 'bad entry';
      if (e.index !== want) return 'entries not contiguous after prev index';
      if (e.term < lastTerm || e.term > m.term) return 'entry terms out of order';
      lastTerm = e.term;
      want++;
    }
    if (m.logTerm > m.term) return 'prev term beyond message term';
  }
  if (m.type === 'prop') {
    if (m.entries.length === 0) return 'empty proposal';
    for (const e of m.entries) if (!(e.data instanceof Uint8Array) || (e.type !== 'normal' && e.type !== 'conf')) return 'bad proposal entry';
  }
  if (m.type === 'snap') {
    const s = m.snapshot;
    if (!s) return 'snapshot chunk missing';
    if (!natural(s.size) || !natural(s.offset) || !(s.data instanceof Uint8Array)) return 'bad snapshot chunk';
    if (s.offset + s.data.length > s.size) return 'snapshot chunk beyond its size';
    if (s.last !== (s.offset + s.data.length === s.size)) return 'snapshot chunk end mismatch';
    if (!natural(s.meta.index) || !natural(s.meta.term) || s.meta.term > m.term) return 'bad snapshot meta';
    const c = s.meta.conf;
    if (!c || !Array.isArray(c.voters) || !Array.isArray(c.learners) || !Array.isArray(c.votersOutgoing) || !Array.isArray(c.learnersNext)) return 'bad snapshot conf';
  } else if (m.snapshot !== null) {
    return 'snapshot on a non-snapshot message';
  }
  return null;
}
