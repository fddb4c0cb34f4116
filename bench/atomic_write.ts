/**
 * Atomic file writes: write a temporary file beside the target, then rename it over the target.
 *
 * A rename within one directory is atomic on POSIX file systems, so a reader (or a re-run after
 * the harness was killed) sees either the old file or the complete new one, never half a record.
 *
 * @module
 */
import { dirname } from "node:path";

/** Write `text` to `path` atomically, creating the parent directory if needed. */
export async function atomicWriteTextFile(path: string, text: string): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  // The pid and a random suffix keep two concurrent writers (two shards on one disk) apart.
  const tmp = `${path}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await Deno.writeTextFile(tmp, text);
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`atomicWriteTextFile: could not write '${path}': ${(err as Error).message}`);
  }
}

/** `JSON.stringify` with two-space indent and a final newline, written atomically. */
export function atomicWriteJson(path: string, value: unknown): Promise<void> {
  return atomicWriteTextFile(path, JSON.stringify(value, null, 2) + "\n");
}

/** Read and parse a JSON file, or `null` when it does not exist. */
export async function readJsonIfExists(path: string): Promise<unknown | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`'${path}' is not valid JSON (${(err as Error).message}); delete it to recompute`);
  }
}
