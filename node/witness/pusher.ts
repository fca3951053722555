/**
 * A node pushing its cosigned checkpoints to witnesses (C2SP tlog-witness, client side).
 *
 * Message flow, per witness W (one push at a time per witness; a newer checkpoint that arrives
 * meanwhile replaces the queued one, since a witness only needs the latest):
 *   1. the node holds the size W last cosigned for this node (`known`, 0 at start: a restarted
 *      node does not know it);
 *   2. POST /add-checkpoint: "old <known>", the RFC 9162 consistency proof from `known` to the
 *      checkpoint's size, taken from the node's own tree (node/checkpoints.ts consistency), and
 *      the majority-cosigned checkpoint note;
 *   3. 200: the answer must be a cosignature line that verifies, under W's vkey from the node's
 *      configuration, over this checkpoint's text; it is kept (the evidence: `witnessed()` is the
 *      checkpoint note with every witness's line, also written to `evidenceFile`, where the node
 *      keeps it as <dataDir>.witnessed.note) and `known` becomes the size;
 *      409 with a size: `known` becomes it and step 2 runs again once (the proof now from there);
 *      a held size above the checkpoint's means W already holds a newer checkpoint of this log
 *      (another node pushed it): nothing to do;
 *      anything else (403, 404, 422, no answer, an answer that does not verify) is a failure:
 *      counted by reason (custody_witness_push_failures_total) and logged, and the node goes on.
 *
 * Trust. The node trusts nothing W says except a cosignature that verifies under W's key over
 * the exact text the node's majority certified; a 409 size only selects which proof to send (a
 * lying witness can make the node send useless proofs, never accept anything). The witness trusts
 * nothing the node says but a quorum of node signatures and a proof (witness.ts). A refusal by a
 * witness (422: the checkpoint does not extend the one it holds) is the alarm this exists for:
 * the majority that certified this checkpoint rewrote history the witness saw.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { CustodyError, isCustodyError } from '../../proto/errors.js';
import { witness as limits } from '../../proto/limits.js';
import { isReasonCode, type ReasonCode } from '../../proto/reasons.js';
import { parseCheckpoint } from '../../ledger/tlog/checkpoint.js';
import { encodeBase64, openNote, parseNote, parseVkey, type NoteVerifier } from '../../ledger/tlog/note.js';
import { ADD_CHECKPOINT_PATH, REASON_HEADER } from './server.js';

export interface WitnessEndpoint {
  /** Base URL, e.g. http://witness.example:7380 (the endpoint is <url>/add-checkpoint). */
  readonly url: string;
  readonly verifier: NoteVerifier;
}

/** Parses the `witnesses:` entries of a lifecycle config: [{ url, vkey }]. */
export function parseWitnessEndpoints(v: unknown, bad: (field: string, why: string) => Error): WitnessEndpoint[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw bad('witnesses', 'a list of { url, vkey }');
  if (v.length > limits.witnessesPerNodeMax) throw bad('witnesses', `at most ${limits.witnessesPerNodeMax}`);
  return v.map((w: unknown, i) => {
    const o = (w ?? {}) as { url?: unknown; vkey?: unknown };
    if (typeof o.url !== 'string' || !/^https?:\/\/[^\s/]+(\/[^\s]*)?$/.test(o.url)) throw bad(`witnesses[${i}].url`, 'an http:// or https:// URL');
    if (typeof o.vkey !== 'string') throw bad(`witnesses[${i}].vkey`, 'the witness\'s verifier key (custody witness keygen wrote it to <key>.vkey)');
    try {
      return { url: o.url.replace(/\/+$/, ''), verifier: parseVkey(o.vkey) };
    } catch (e) {
      throw bad(`witnesses[${i}].vkey`, (e as Error).message);
    }
  });
}

export interface WitnessPusherOptions {
  readonly witnesses: readonly WitnessEndpoint[];
  /** The RFC 9162 consistency proof from size1 to size2 of this node's tree. */
  readonly consistency: (size1: number, size2: number) => Promise<Uint8Array[]>;
  readonly onFailure?: (witness: string, reason: ReasonCode) => void;
  readonly onCosigned?: (witness: string, size: number) => void;
  readonly log?: (line: string) => void;
  /**
   * Where the witnessed checkpoint (witnessed()) is kept across restarts: rewritten (temporary
   * file, fsync, rename) each time a witness cosigns; read back at start.
   */
  readonly evidenceFile?: string;
}

interface Slot {
  known: number;
  running: boolean;
  queued: string | null;
  idle: Array<() => void>;
}

export class WitnessPusher {
  private readonly slots: Map<string, Slot>;
  private readonly log: (line: string) => void;
  /** The newest checkpoint text any witness cosigned, with the node note and the witness lines. */
  private evidence: { text: string; size: number; note: string; lines: Map<string, string> } | null = null;

  constructor(private readonly o: WitnessPusherOptions) {
    this.log = o.log ?? (() => {});
    this.slots = new Map(o.witnesses.map((w) => [w.verifier.name, { known: 0, running: false, queued: null, idle: [] }]));
    if (o.evidenceFile !== undefined && existsSync(o.evidenceFile)) this.evidence = this.load(o.evidenceFile);
  }

  /** The kept note, its witness lines checked again under the configured vkeys (lines of other keys are dropped). */
  private load(file: string): WitnessPusher['evidence'] {
    try {
      const note = readFileSync(file, 'utf8');
      const parsed = parseNote(note);
      const size = parseCheckpoint(parsed.text).size;
      const lines = new Map<string, string>();
      for (const w of this.o.witnesses) {
        const l = parsed.signatures.find((x) => x.name === w.verifier.name && x.keyId === w.verifier.keyId);
        if (l === undefined) continue;
        const line = `\u2014 ${l.name} ${l.base64}\n`;
        openNote(`${parsed.text}\n${line}`, [w.verifier]);
        lines.set(w.verifier.name, line);
      }
      const names = new Set(this.o.witnesses.map((w) => w.verifier.name));
      const nodeLines = parsed.signatures.filter((x) => !names.has(x.name)).map((x) => `\u2014 ${x.name} ${x.base64}\n`).join('');
      return lines.size === 0 ? null : { text: parsed.text, size, note: `${parsed.text}\n${nodeLines}`, lines };
    } catch (e) {
      this.log(`witness: the kept witnessed checkpoint ${file} is not usable, starting without it: ${(e as Error).message}`);
      return null;
    }
  }

  private persist(): void {
    const f = this.o.evidenceFile;
    const note = this.witnessed();
    if (f === undefined || note === null) return;
    try {
      const tmp = `${f}.tmp`;
      const fd = openSync(tmp, 'w', 0o644);
      try {
        writeSync(fd, note);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, f);
    } catch (e) {
      this.log(`witness: cannot keep the witnessed checkpoint in ${f}: ${(e as Error).message}`);
    }
  }

  /** Queues `note` (a majority-cosigned checkpoint) for every witness; returns at once. */
  push(note: string): void {
    for (const w of this.o.witnesses) {
      const slot = this.slots.get(w.verifier.name)!;
      slot.queued = note;
      if (!slot.running) void this.drain(w, slot);
    }
  }

  /** Resolves once every witness has no push running or queued. */
  async settled(): Promise<void> {
    await Promise.all([...this.slots.values()].map((s) => (s.running ? new Promise<void>((r) => s.idle.push(r)) : Promise.resolve())));
  }

  /**
   * `note` (a majority-cosigned checkpoint) with the cosignature line of every configured witness
   * that cosigned it, once every push settled: what proven evidence carries when the trust policy
   * names witnesses. Null when none did (a witness down, or a newer checkpoint pushed meanwhile:
   * the caller asks again with a fresh one).
   */
  async cosign(note: string): Promise<string | null> {
    const text = parseNote(note).text;
    this.push(note);
    await this.settled();
    const e = this.evidence;
    return e === null || e.text !== text ? null : `${note}${[...e.lines.values()].join('')}`;
  }

  /**
   * The newest checkpoint note a witness cosigned, carrying the nodes' signatures and the
   * cosignature line of every witness that cosigned that same checkpoint (null: none yet).
   */
  witnessed(): string | null {
    const e = this.evidence;
    return e === null ? null : `${e.note}${[...e.lines.values()].join('')}`;
  }

  private async drain(w: WitnessEndpoint, slot: Slot): Promise<void> {
    slot.running = true;
    try {
      while (slot.queued !== null) {
        const note = slot.queued;
        slot.queued = null;
        try {
          await this.pushOne(w, slot, note);
        } catch (e) {
          const reason: ReasonCode = isCustodyError(e) ? e.reason : 'WITNESS_UNAVAILABLE';
          this.o.onFailure?.(w.verifier.name, reason);
          this.log(`witness ${w.verifier.name} (${w.url}): push failed: ${reason}: ${isCustodyError(e) ? e.detail : String(e)}`);
        }
      }
    } finally {
      slot.running = false;
      for (const r of slot.idle.splice(0)) r();
    }
  }

  private async pushOne(w: WitnessEndpoint, slot: Slot, note: string): Promise<void> {
    const text = parseNote(note).text;
    const size = parseCheckpoint(text).size;
    for (let attempt = 0; attempt < limits.pushAttemptsMax; attempt++) {
      if (slot.known > size) {
        this.log(`witness ${w.verifier.name}: holds size ${slot.known}, above ${size}: nothing to push`);
        return;
      }
      const proof = slot.known === 0 || slot.known === size ? [] : await this.o.consistency(slot.known, size);
      const body = `old ${slot.known}\n${proof.map((h) => `${encodeBase64(h)}\n`).join('')}\n${note}`;
      const r = await post(`${w.url}${ADD_CHECKPOINT_PATH}`, body);
      if (r.status === 200) {
        const line = r.text.split('\n').find((l) => l.startsWith(`\u2014 ${w.verifier.name} `));
        if (line === undefined) throw new CustodyError('WITNESS_UNAVAILABLE', 'a 200 without the witness\'s cosignature line');
        try {
          const opened = openNote(`${text}\n${line}\n`, [w.verifier]);
          if (opened.verified.length !== 1) throw new Error('not verified');
        } catch {
          throw new CustodyError('WITNESS_UNAVAILABLE', 'the witness\'s cosignature does not verify over this checkpoint under its vkey');
        }
        slot.known = size;
        this.keep(text, size, note, w.verifier.name, `${line}\n`);
        this.persist();
        this.o.onCosigned?.(w.verifier.name, size);
        return;
      }
      if (r.status === 409 && /^(0|[1-9][0-9]*)\n$/.test(r.text) && Number.isSafeInteger(Number(r.text.trim()))) {
        const held = Number(r.text.trim());
        if (held === slot.known) throw new CustodyError(reasonOf(r.reason, 'TLOG_WITNESS_CONFLICT'), `409 at the size it holds (${held}): ${r.reason ?? ''}`);
        slot.known = held;
        continue;
      }
      throw new CustodyError(reasonOf(r.reason, 'WITNESS_UNAVAILABLE'), `HTTP ${r.status}: ${r.text.trim().slice(0, 300)}`);
    }
    throw new CustodyError('TLOG_WITNESS_CONFLICT', `no agreement on the old size after ${limits.pushAttemptsMax} requests`);
  }

  private keep(text: string, size: number, note: string, name: string, line: string): void {
    const e = this.evidence;
    if (e !== null && e.text === text) {
      e.lines.set(name, line);
      return;
    }
    if (e !== null && e.size > size) return;
    this.evidence = { text, size, note, lines: new Map([[name, line]]) };
  }
}

function reasonOf(header: string | null, dflt: ReasonCode): ReasonCode {
  return header !== null && isReasonCode(header) ? header : dflt;
}

async function post(url: string, body: string): Promise<{ status: number; reason: string | null; text: string }> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), limits.pushCallMs);
  try {
    const r = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'text/plain; charset=utf-8' }, signal: ac.signal });
    const text = await r.text();
    return { status: r.status, reason: r.headers.get(REASON_HEADER), text: text.slice(0, 64 * 1024) };
  } catch (e) {
    throw new CustodyError('WITNESS_UNAVAILABLE', `${url}: ${(e as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}
