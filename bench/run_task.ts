/**
 * Test helper: run an entry point the way `deno task NAME` does, as a subprocess, and collect
 * its exit code and output. The working directory is the caller's (a temp folder, so that a
 * test can see whether anything was written); the repository's deno.json is passed explicitly.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));

export interface TaskResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `deno run -A <file> ...args` in `cwd`; `file` is relative to the repository root. */
export async function runTask(
  file: string,
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
): Promise<TaskResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", `${REPO_ROOT}deno.json`, `${REPO_ROOT}${file}`, ...args],
    cwd,
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Run `jobs` two at a time (2 cores; each is a Deno start-up). */
export async function twoAtATime<T>(jobs: (() => Promise<T>)[]): Promise<T[]> {
  const results: T[] = [];
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]();
    }
  };
  await Promise.all([worker(), worker()]);
  return results;
}

/** A refused command line: exit 2, exactly `line` first, then the usage; no stack trace, no stdout. */
export function assertRefused(r: TaskResult, task: string, line: string): void {
  const lines = r.stderr.split("\n");
  assert.equal(r.code, 2, r.stderr);
  assert.equal(lines[0], line);
  assert.ok(lines[1].startsWith(`usage: deno task ${task}`), r.stderr);
  assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
  assert.equal(r.stdout, "");
}
