/**
 * SHA-256 of a file, streamed in 4 MiB chunks: hashing a 1 GB checkpoint costs 4 MiB of
 * memory, not the file (WebCrypto's `digest` needs the whole buffer).
 *
 * @module
 */
import { createHash } from "node:crypto";

/** Hex SHA-256 of the file at `path`. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(4 << 20);
    for (;;) {
      const n = await file.read(buf);
      if (n === null) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    file.close();
  }
  return hash.digest("hex");
}
