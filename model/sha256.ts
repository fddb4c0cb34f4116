/**
 * SHA-256 as lowercase hex, the one digest helper of the suite: identity hashes of runs and
 * pretrainings, data file lists, source hashes of the code that computes results, checkpoint
 * and feature-cache keys.
 *
 * @module
 */

/** SHA-256 of `data` (text is hashed as UTF-8) as 64 lowercase hex digits. */
export async function sha256Hex(data: string | Uint8Array): Promise<string> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
