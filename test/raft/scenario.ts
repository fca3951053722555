/**
 * Scripted interaction scenarios with golden output (after etcd-io/raft's testdata/*.txt).
 *
 * A scenario file is a sequence of blocks:
 *
 *     # comment lines explain the step
 *     command arg arg
 *     ----
 *     expected output lines
 *
 * The command runs against a `Network` of real cores; its output must equal the expected lines.
 * Set CUSTODY_REWRITE_GOLDEN=1 to write the actual output back into the file (review the diff!).
 *
 * Commands:
 *   nodes <id>... [prevote] [checkquorum] [chunk=<bytes>]   create a cluster of voters
 *   add-node <id>                  a new empty node (not yet a member)
 *   campaign <id>                  start an election and deliver until quiet
 *   propose <id> <data>            propose and deliver until quiet; prints the result
 *   tick <id> <n>                  tick one node n times, delivering after each tick
 *   tick-all <n>                   tick every node n times, delivering after each round
 *   isolate <id> / heal            cut a node off both ways / restore every link
 *   compact <id>                   snapshot the node's applied state and compact its log
 *   conf <id> <change>... [explicit]   propose a membership change: add-voter:x add-learner:x remove:x
 *   transfer <id> <target>         ask for a leader transfer
 *   read <id> <context>            ReadIndex request; prints read states once quiet
 *   state                          one line per node: role, term, leader, commit, applied, conf
 *   applied <id>                   the node's applied data
 */
import type { Message } from '../../raft/core/types.js';
import { Network, type NodeOptions } from './harness.js';

export interface Block {
  readonly comments: string[];
  readonly command: string;
  readonly expected: string[];
}

export function parseScenario(text: string): Block[] {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  let i = 0;
  while (i < lines.length) {
    const comments: string[] = [];
    while (i < lines.length && (lines[i]?.startsWith('#') || lines[i]?.trim() === '')) {
      if (lines[i]?.startsWith('#')) comments.push(lines[i] as string);
      i++;
    }
    if (i >= lines.length) break;
    const command = (lines[i] as string).trim();
    i++;
    if (lines[i] !== '----') throw new Error(`scenario: expected ---- after "${command}" at line ${i + 1}`);
    i++;
    const expected: string[] = [];
    while (i < lines.length && (lines[i] as string).trim() !== '') expected.push(lines[i++] as string);
    blocks.push({ comments, command, expected });
  }
  return blocks;
}

export function formatScenario(blocks: readonly Block[], outputs: readonly string[][]): string {
  return blocks
    .map((b, i) => [...b.comments, b.command, '----', ...(outputs[i] ?? [])].join('\n'))
    .join('\n\n')
    .concat('\n');
}

function summarize(trace: readonly Message[]): string {
  const counts = new Map<string, number>();
  for (const m of trace) counts.set(m.type, (counts.get(m.type) ?? 0) + 1);
  return [...counts.entries()].map(([k, v]) => `${k}=${v}`).join(' ');
}

export class ScenarioRunner {
  private net: Network | null = null;

  private network(): Network {
    if (!this.net) throw new Error('scenario: run "nodes ..." first');
    return this.net;
  }

  /** Run one command; return its output lines. */
  run(command: string): string[] {
    const [cmd, ...args] = command.split(/\s+/);
    const a0 = args[0] ?? '';
    switch (cmd) {
      case 'nodes': {
        const ids = args.filter((x) => !['prevote', 'checkquorum'].includes(x) && !x.startsWith('chunk='));
        const chunk = args.find((x) => x.startsWith('chunk='));
        const opts: NodeOptions = {
          bootstrapIndex: 1,
          preVote: args.includes('prevote'),
          checkQuorum: args.includes('checkquorum'),
          ...(chunk ? { snapshotChunkBytes: Number(chunk.slice(6)) } : {}),
        };
        this.net = new Network(ids, opts, 1);
        return [`${ids.length} nodes, pre-vote ${opts.preVote ? 'on' : 'off'}, check-quorum ${opts.checkQuorum ? 'on' : 'off'}`];
      }
      case 'add-node': {
        const net = this.network();
        const first = [...net.nodes.values()][0];
        net.addNode(a0, first?.opts ?? {});
        return [`${a0} started with no configuration`];
      }
      case 'campaign':
        return this.deliver(() => this.network().node(a0).core.campaign());
      case 'propose': {
        let result = '';
        const out = this.deliver(() => {
          const r = this.network().node(a0).core.propose(new TextEncoder().encode(args[1] ?? ''));
          result = r.ok ? (r.forwarded ? 'forwarded to the leader' : `appended at index ${r.index}, term ${r.term}`) : `refused: ${r.reason} (${r.detail})`;
        });
        return [result, ...out];
      }
      case 'tick': {
        const before = this.network().trace.length;
        for (let i = 0; i < Number(args[1] ?? 1); i++) {
          this.network().node(a0).core.tick();
          this.network().stabilize();
        }
        return [`delivered: ${summarize(this.network().trace.slice(before)) || 'nothing'}`];
      }
      case 'tick-all': {
        const before = this.network().trace.length;
        this.network().tickAll(Number(a0));
        return [`delivered: ${summarize(this.network().trace.slice(before)) || 'nothing'}`];
      }
      case 'isolate':
        this.network().isolated.add(a0);
        return [`${a0} isolated`];
      case 'heal':
        this.network().clearFilters();
        return ['all links restored'];
      case 'compact': {
        const n = this.network().node(a0);
        n.snapshotAndCompact(n.appliedIndex);
        return [`${a0} snapshot at ${n.appliedIndex}, log now starts at ${n.storage.firstIndex()}`];
      }
      case 'conf': {
        const explicit = args.includes('explicit');
        const changes = args.slice(1).filter((x) => x !== 'explicit').map((c) => {
          const [type, node] = c.split(':');
          if (type !== 'add-voter' && type !== 'add-learner' && type !== 'remove') throw new Error(`scenario: bad change ${c}`);
          const t = type === 'add-voter' ? 'addVoter' : type === 'add-learner' ? 'addLearner' : 'remove';
          return { type: t, node: node ?? '' } as const;
        });
        let result = '';
        const out = this.deliver(() => {
          const r = this.network().node(a0).core.proposeConfChange({ changes, transition: explicit ? 'explicit' : 'auto' });
          result = r.ok ? (r.forwarded ? 'forwarded to the leader' : `membership change at index ${r.index}`) : `refused: ${r.reason} (${r.detail})`;
        });
        return [result, ...out];
      }
      case 'transfer':
        return this.deliver(() => this.network().node(a0).core.transferLeadership(args[1] ?? ''));
      case 'read': {
        const n = this.network().node(a0);
        n.readStates = [];
        const out = this.deliver(() => n.core.readIndex(new TextEncoder().encode(args[1] ?? '')));
        const rs = n.readStates.map((r) => `read state: index=${r.index} context=${r.context}`);
        return [...(rs.length ? rs : ['no read state']), ...out];
      }
      case 'state':
        return [...this.network().nodes.values()].map((n) => {
          const s = n.core.status();
          const c = s.conf;
          const joint = c.votersOutgoing.length ? `&&(${c.votersOutgoing.join(',')})` : '';
          const learners = c.learners.length ? ` learners=(${c.learners.join(',')})` : '';
          return `${s.id}: ${s.role} term=${s.term} leader=${s.leader ?? '-'} commit=${s.commit} applied=${n.appliedIndex} last=${s.lastIndex} voters=(${c.voters.join(',')})${joint}${learners}`;
        });
      case 'applied':
        return [`${a0}: ${this.network().node(a0).applied.join(' ') || '(nothing)'}`];
      default:
        throw new Error(`scenario: unknown command "${cmd}"`);
    }
  }

  private deliver(action: () => void): string[] {
    const net = this.network();
    const before = net.trace.length;
    action();
    net.stabilize();
    return [`delivered: ${summarize(net.trace.slice(before)) || 'nothing'}`];
  }
}
