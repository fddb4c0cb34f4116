/**
 * Identity hashes: what makes two runs "the same result".
 *
 * The hash covers only settings that change results (STYLE rule 4): method, model, data and
 * its file-list hash, budget, probe protocol and seed. Runtime knobs (backend, batch per
 * device, workers, log and checkpoint cadence) never enter it, so a run on a GPU runner and
 * one on a laptop share an identity and a finished cell is not recomputed because a knob moved.
 *
 * Canonical JSON: object keys sorted recursively, no whitespace, `undefined` fields dropped;
 * numbers in JavaScript's shortest round-trip form. The hash is SHA-256 in hex.
 *
 * @module
 */
import { sha256Hex } from "../model/sha256.ts";

/** Deterministic JSON text of `value` with object keys sorted at every level. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeys(v);
    }
    return out;
  }
  if (typeof value === "number" && !Number.isFinite(value)) {
    throw new Error(`canonicalJson: non-finite number ${value} cannot be part of an identity`);
  }
  return value;
}

/** The identity hash of a settings object: SHA-256 of its canonical JSON. */
export function identityHash(settings: unknown): Promise<string> {
  return sha256Hex(canonicalJson(settings));
}

/**
 * Hash of a dataset's file list: one `relativePath\tsizeBytes` line per file, sorted by path.
 * Contents are not read (1.28M ImageNet files would take minutes); a changed size, added or
 * removed file changes the hash.
 */
export async function hashFileList(root: string): Promise<{ hash: string; numFiles: number }> {
  const lines: string[] = [];
  async function walk(dir: string, rel: string): Promise<void> {
    for await (const e of Deno.readDir(dir)) {
      const path = `${dir}/${e.name}`;
      const relPath = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) await walk(path, relPath);
      else if (e.isFile) lines.push(`${relPath}\t${(await Deno.stat(path)).size}`);
    }
  }
  try {
    await walk(root, "");
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Error(`hashFileList: data folder '${root}' does not exist (check the suite's data root)`);
    }
    throw err;
  }
  lines.sort();
  return { hash: await sha256Hex(lines.join("\n")), numFiles: lines.length };
}
