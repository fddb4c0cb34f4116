/**
 * Atomic file writes, the one helper every module of the suite uses (checkpoints, feature
 * caches, run records, leaderboards, run descriptions): the bytes go to a temporary file beside
 * the target, are flushed to disk, and the temporary file is renamed over the target.
 *
 * A rename within one directory is atomic on POSIX file systems, so a reader (or a re-run after
 * the process was killed) sees either the old file or the complete new one, never half of it.
 * The flush before the rename keeps a power cut from leaving a renamed but empty file (ext4 and
 * xfs may otherwise commit the rename before the data).
 *
 * It lives in model/ because model/ is the bottom of the dependency order (datasets/, eval/ and
 * bench/ import from it, never the other way round) and checkpoints are written here.
 *
 * @module
 */
import { dirname } from "node:path";

/** Write `data` (bytes, or text as UTF-8) to `path` atomically, creating the parent folder if needed. */
export async function atomicWriteFile(path: string, data: Uint8Array | string): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  // The pid and a random suffix keep two concurrent writers (two shards on one disk) apart.
  const tmp = `${path}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  try {
    const file = await Deno.open(tmp, { write: true, createNew: true });
    try {
      let done = 0;
      while (done < bytes.length) done += await file.write(bytes.subarray(done));
      await file.syncData();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`could not write '${path}': ${(err as Error).message}`);
  }
}

/** `JSON.stringify` with two-space indent and a final newline, written atomically. */
export function atomicWriteJson(path: string, value: unknown): Promise<void> {
  return atomicWriteFile(path, JSON.stringify(value, null, 2) + "\n");
}
