/**
 * CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78), as used by iSCSI (RFC 3720
 * §B.4), ext4 and LevelDB's own log. Chosen over CRC-32 (IEEE) for its better error detection on
 * the block sizes storage sees; over SHA-256 because it guards against corruption, not tampering
 * (an attacker with write access to the data directory is outside this check's threat model).
 *
 * Table-driven, one byte per step ("slicing-by-1"): simple enough to read against the RFC.
 */
const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32C of `data`, optionally continuing from a previous `crc`. */
export function crc32c(data: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = (TABLE[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return ~c >>> 0;
}
