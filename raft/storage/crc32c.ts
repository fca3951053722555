/**
 * CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78), as used by iSCSI (RFC 3720
 * §B.4), ext4 and LevelDB's own log. Chosen over CRC-32 (IEEE) for its better error detection on
 * the block sizes storage sees; over SHA-256 because it guards against corruption, not tampering
 * (an attacker with write access to the data directory is outside this check's threat model).
 *
 * Table-driven, eight bytes per step ("slicing-by-8", Kounavis and Berry, "A Systematic Approach
 * to Building High Performance Software-based CRC Generators", ISCC 2005): TABLES[k][b] is the
 * CRC of byte b followed by k zero bytes, so eight table lookups advance the CRC over eight bytes
 * at once; the tail (and short inputs) go one byte at a time with TABLES[0], the classic table.
 * Every stored value is checksummed on write and on read, so this runs over every byte a node
 * stores or serves (test/node/storage.test.ts checks it against a bit-at-a-time CRC).
 */
/** Eight tables of 256 entries, end to end: TABLES[k * 256 + b] is the CRC of byte b followed by k zero bytes. */
const TABLES = (() => {
  const t = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c;
  }
  for (let k = 1; k < 8; k++) {
    for (let n = 0; n < 256; n++) {
      const p = t[(k - 1) * 256 + n] as number;
      t[k * 256 + n] = (t[p & 0xff] as number) ^ (p >>> 8);
    }
  }
  return t;
})();

/** CRC-32C of `data`, optionally continuing from a previous `crc`. */
export function crc32c(data: Uint8Array, crc = 0): number {
  const t = TABLES;
  let c = ~crc;
  let i = 0;
  const n8 = data.length - (data.length % 8);
  for (; i < n8; i += 8) {
    c ^= (data[i] as number) | ((data[i + 1] as number) << 8) | ((data[i + 2] as number) << 16) | ((data[i + 3] as number) << 24);
    c = (t[1792 + (c & 0xff)] as number) ^ (t[1536 + ((c >>> 8) & 0xff)] as number) ^ (t[1280 + ((c >>> 16) & 0xff)] as number) ^ (t[1024 + (c >>> 24)] as number)
      ^ (t[768 + (data[i + 4] as number)] as number) ^ (t[512 + (data[i + 5] as number)] as number) ^ (t[256 + (data[i + 6] as number)] as number) ^ (t[data[i + 7] as number] as number);
  }
  for (; i < data.length; i++) c = (t[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return ~c >>> 0;
}
