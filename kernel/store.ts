/**
 * The kernel's own durable store: LevelDB (the `level` package), every write a `sync: true`
 * batch.
 *
 * Why LevelDB rather than a hand-written file: consuming a nonce is several writes that must land
 * together or not at all (delete the sealed nonce, burn the older ones, raise the key's consumed
 * counter, record the permit as used). A LevelDB batch is atomic and, with `sync: true`, is on
 * disk (the write-ahead log is fsynced) before the call returns; a torn or partial update cannot
 * be observed after a crash. The daemon uses the same engine, so operators back up and inspect
 * one kind of store.
 *
 * Key layout (one database; values are bytes, secrets always sealed by the vault; <key> and
 * <request> are hex-encoded ids, so one id's range never contains another's):
 *   meta/format, meta/scrypt-salt, meta/vault-check   store and vault bookkeeping
 *   meta/counter                   next nonce counter to allocate (big-endian u64)
 *   meta/transport[-public]        sealed X25519 transport private key, and its public half
 *   meta/governance                JSON governance view (kernel/authority.ts)
 *   meta/fence                     JSON fence record
 *   key/<key>                      JSON key record (suite, identifier and public package per epoch)
 *   share/<key>/<epoch>            sealed signing share
 *   nonce/<key>/<ctr16>            presigned nonce pair: public commitments + sealed nonces
 *                                  (counter as 16 hex digits: key order is counter order)
 *   consumed/<key>                 highest consumed nonce counter for the key (u64)
 *   permit/<key>/<request>         a used permit (JSON), dropped when its epoch is superseded
 */
import { Level } from 'level';

export type BatchOp = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string };

export class KernelStore {
  private constructor(private readonly db: Level<string, Uint8Array>) {}

  static async open(dir: string): Promise<KernelStore> {
    const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
    await db.open();
    return new KernelStore(db);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const v = await this.db.get(key);
    return v === undefined ? undefined : new Uint8Array(v);
  }

  async getJson<T>(key: string): Promise<T | undefined> {
    const v = await this.get(key);
    return v === undefined ? undefined : (JSON.parse(Buffer.from(v).toString('utf8')) as T);
  }

  async getU64(key: string): Promise<number> {
    const v = await this.get(key);
    return v === undefined ? 0 : Number(Buffer.from(v).readBigUInt64BE(0));
  }

  /** Atomic and durable: returns only after the batch is fsynced. */
  async write(ops: BatchOp[]): Promise<void> {
    if (ops.length === 0) return;
    await this.db.batch(ops, { sync: true });
  }

  /** Keys (and values) under a prefix, in key order, at most `limit`. */
  async list(prefix: string, limit: number): Promise<{ key: string; value: Uint8Array }[]> {
    const out: { key: string; value: Uint8Array }[] = [];
    for await (const [key, value] of this.db.iterator({ gte: prefix, lt: prefix + '\xff', limit })) {
      out.push({ key, value: new Uint8Array(value) });
    }
    return out;
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

export const u64 = (n: number): Uint8Array => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
};

export const json = (v: unknown): Uint8Array => Buffer.from(JSON.stringify(v), 'utf8');

export const counterKey = (n: number): string => n.toString(16).padStart(16, '0');
