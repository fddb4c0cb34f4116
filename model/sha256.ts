/**
 * SHA-256 as lowercase hex, the one digest helper of the suite: identity hashes of runs and
 * pretrainings, data file lists, source hashes of the code that computes results, checkpoint
 * and feature-cache keys, downloaded weights.
 *
 * @module
 */
import { createHash } from "node:crypto";

/** SHA-256 of `data` (text is hashed as UTF-8) as 64 lowercase hex digits. */
export async function sha256Hex(data: string | Uint8Array): Promise<string> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * SHA-256 of the file at `path`, streamed in 4 MiB chunks: hashing a 1 GB checkpoint costs 4 MiB
 * of memory, not the file (WebCrypto's `digest` needs the whole buffer).
 */
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
