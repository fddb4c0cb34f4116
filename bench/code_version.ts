/**
 * The code version a number was computed by: the git commit, whether the result-computing
 * sources differ from it, and a SHA-256 of those sources as they are on disk.
 *
 * The hash, not the commit, decides whether a finished cell or checkpoint is still valid: a
 * commit that only touches READMEs, tests or the leaderboard's rendering changes no number and
 * must not make a GPU-week of pretraining re-run, while an uncommitted edit of a model file must.
 * So each consumer hashes the sources that compute ITS numbers (`SOURCE_SETS`):
 *
 * - `pretraining` (bench cells' checkpoints): `model/` (methods, optimisers, schedules, engine,
 *   kernels, checkpoints), `datasets/` (decoding, resampling, augmentation, loader order) and
 *   `bench/bench_phases.ts` (method config per cell, crop scales, the data hook-up). Not `eval/`:
 *   a probe change must not invalidate checkpoints.
 * - `evaluation` (bench cells' probe numbers): the above plus `eval/` (features, probes, metrics),
 *   `bench/protocol_probes.ts` (which features each probe reads, the online/cached split, the
 *   limits) and `bench/raw_pixels.ts` (the raw-pixel baseline's encoder).
 * - `pretrainCli`, `evalCli`: what `deno task pretrain` and `deno task eval` compute with (their
 *   entry files carry their own data hook-up) instead of the bench wiring.
 *
 * Folders are hashed whole (every `.ts` file but tests, micro-benchmarks and `testdata/`): an
 * over-inclusive set costs a needless re-run at worst, a missing file would silently reuse a
 * stale number. Library versions are not sources: the engine description records them.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { sha256Hex } from "../model/sha256.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Folders (trailing slash) and files, relative to the repository root. */
export const SOURCE_SETS = {
  pretraining: ["model/", "datasets/", "bench/bench_phases.ts"],
  evaluation: [
    "model/",
    "datasets/",
    "eval/",
    "bench/bench_phases.ts",
    "bench/protocol_probes.ts",
    "bench/raw_pixels.ts",
  ],
  pretrainCli: ["model/", "datasets/", "bench/pretrain.ts"],
  evalCli: ["model/", "datasets/", "eval/", "bench/eval.ts"],
} as const;
export type SourceSet = keyof typeof SOURCE_SETS;

export interface CodeVersion {
  /** git HEAD, or `unknown` outside a git checkout. */
  commit: string;
  /** The set's files differ from HEAD (changed, added or deleted); true when git cannot tell. */
  dirty: boolean;
  /** Which `SOURCE_SETS` entry was hashed. */
  sources: SourceSet;
  /** SHA-256 over one `path<TAB>sha256(content)` line per file, sorted by path. */
  sourceHash: string;
  files: number;
}

/** Whether a repository path is a result-computing source (not a test, benchmark or test data). */
export function isSource(path: string): boolean {
  return /\.(ts|js|mjs)$/.test(path) && !/(_test|_bench)\.(ts|js|mjs)$/.test(path) &&
    !/(^|\/)testdata\//.test(path);
}

async function filesOf(root: string, set: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  async function walk(rel: string): Promise<void> {
    for await (const e of Deno.readDir(`${root}${rel}`)) {
      const path = `${rel}${e.name}`;
      if (e.isDirectory && e.name !== "node_modules") await walk(`${path}/`);
      else if (e.isFile && isSource(path)) out.push(path);
    }
  }
  for (const entry of set) {
    try {
      if (entry.endsWith("/")) await walk(entry);
      else {
        await Deno.stat(`${root}${entry}`);
        out.push(entry);
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      throw new Error(`SOURCE_SETS names '${entry}', which is not in ${root}: update bench/code_version.ts`);
    }
  }
  return [...new Set(out)].sort();
}

async function git(root: string, args: string[]): Promise<string | null> {
  try {
    const out = await new Deno.Command("git", { args, cwd: root, stdout: "piped", stderr: "null" }).output();
    return out.success ? new TextDecoder().decode(out.stdout) : null;
  } catch {
    return null; // no git on this machine
  }
}

/**
 * Hash of the set's sources as they are on disk, with the commit and dirty flag beside it.
 * `root` (with a trailing slash) is the repository root; tests point it at a scratch repository.
 */
export async function codeVersion(sources: SourceSet, root = ROOT): Promise<CodeVersion> {
  const set = SOURCE_SETS[sources];
  const files = await filesOf(root, set);
  const lines = await Promise.all(
    files.map(async (f) => `${f}\t${await sha256Hex(await Deno.readFile(`${root}${f}`))}`),
  );
  const commit = (await git(root, ["rev-parse", "HEAD"]))?.trim() || "unknown";
  // Changed or deleted tracked files, and untracked ones, restricted to this set's sources.
  const changed = await git(root, ["diff", "--name-only", "HEAD", "--", ...set]);
  const untracked = await git(root, ["ls-files", "--others", "--exclude-standard", "--", ...set]);
  const dirty = changed === null || untracked === null ||
    [...changed.split("\n"), ...untracked.split("\n")].some((p) => p !== "" && isSource(p));
  return { commit, dirty, sources, sourceHash: await sha256Hex(lines.join("\n")), files: files.length };
}
