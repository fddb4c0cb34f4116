/**
 * The command-line contract of every entry point (`deno task bench | pretrain | eval | data |
 * leaderboard | speed | parity`), in one place so that they all fail the same way:
 *
 * - flags are declared once, with the placeholder and the help line the usage is generated from;
 * - `--help` (`-h`) prints the usage on stdout and exits 0;
 * - an unknown flag, a missing or invalid value, or a refused combination prints ONE line on
 *   stderr (`<task>: <what is wrong>`), then the usage, and exits 2. All of this happens in the
 *   `check` step, before `run` starts, so a refused command line has written nothing;
 * - a failure while running prints `<task>: <message>` without a stack trace and exits 1
 *   (a stack is printed only for programming errors: TypeError, ReferenceError, SyntaxError).
 *
 * Built on `node:util` `parseArgs` (JSR's `@std/cli` is not reachable from our machines).
 *
 * @example
 * ```ts
 * import { type CliSpec, intFlag, runCli } from "./cli.ts";
 * const CLI = {
 *   name: "demo",
 *   synopsis: "deno task demo [--steps N]",
 *   summary: "Counts.",
 *   flags: { steps: { type: "string", arg: "N", help: "how many (default 3)" } },
 * } as const satisfies CliSpec;
 * const lines: string[] = [];
 * const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
 * const code = await runCli(CLI, ["--steps", "0"], {
 *   check: ({ values }) => ({ steps: intFlag("steps", values.steps, { min: 1, fallback: 3 }) }),
 *   run: () => Promise.resolve(0),
 * }, io);
 * if (code !== 2 || lines[0] !== "demo: --steps: expected an integer >= 1, got '0'") throw new Error(lines[0]);
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";

/** One flag: `string` flags take a value (`--steps 5` or `--steps=5`), `boolean` flags do not. */
export interface Flag {
  type: "string" | "boolean";
  /** Placeholder of the value in the usage, e.g. `N`, `DIR`, `capi|mae|simmim`. */
  arg?: string;
  short?: string;
  /** Used when the flag is absent; say it in `help` as `(default X)` too. */
  default?: string | boolean;
  help: string;
}

export interface CliSpec {
  /** The task name that starts every message: `pretrain: ...`. */
  name: string;
  /** The first usage line after `usage: `, e.g. `deno task pretrain [flags]`. */
  synopsis: string;
  /** A sentence or two under the synopsis. */
  summary: string;
  flags: Record<string, Flag>;
  /** Positional arguments accepted (default none; no `max` = any number). */
  positionals?: { min: number; max?: number };
  /** Extra usage lines after the flags (examples, subcommands). */
  notes?: string[];
}

/** Parsed values: strings for string flags, booleans for boolean flags; absent without a default. */
export type FlagValues<F extends Record<string, Flag>> = {
  [K in keyof F]: F[K] extends { default: infer D } ? (D extends boolean ? boolean : string)
    : F[K]["type"] extends "boolean" ? boolean | undefined
    : string | undefined;
};

export interface ParsedArgs<S extends CliSpec> {
  values: FlagValues<S["flags"]>;
  positionals: string[];
}

/** A refused command line: exit 2 with this one line and the usage. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

const HELP: Flag = { type: "boolean", short: "h", help: "print this help and exit" };

/** The usage text generated from the spec. */
export function usage(spec: CliSpec): string {
  const rows = Object.entries({ ...spec.flags, help: HELP }).map(([name, f]) => {
    const left = `${f.short ? `-${f.short}, ` : ""}--${name}${f.type === "string" ? ` ${f.arg ?? "VALUE"}` : ""}`;
    return [left, f.help];
  });
  const width = Math.min(34, Math.max(...rows.map(([l]) => l.length)));
  const lines = [`usage: ${spec.synopsis}`, `  ${spec.summary}`, "flags:"];
  for (const [left, help] of rows) {
    lines.push(left.length > width ? `  ${left}\n  ${" ".repeat(width)}  ${help}` : `  ${left.padEnd(width)}  ${help}`);
  }
  if (spec.notes?.length) lines.push(...spec.notes);
  return lines.join("\n");
}

/** Edit distance, for "did you mean" (flags are short, so the quadratic table is nothing). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

function suggestion(flag: string, known: string[]): string {
  const name = flag.replace(/^-+/, "").split("=")[0];
  const best = known.map((k) => [k, distance(name, k)] as const).sort((a, b) => a[1] - b[1])[0];
  // One typo in a short name, two (a swap counts two) in a longer one.
  return best && best[1] <= (name.length <= 4 ? 1 : 2) ? ` (did you mean --${best[0]}?)` : "";
}

/** node:util's parse errors rewritten as one line that names the flag. */
function parseError(spec: CliSpec, err: Error & { code?: string }): UsageError {
  const quoted = /'(-[^' ]*)/.exec(err.message)?.[1] ?? "";
  switch (err.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return new UsageError(`unknown flag '${quoted}'${suggestion(quoted, Object.keys(spec.flags))}`);
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE": {
      const flag = quoted.replace(/^-+/, "");
      const f = spec.flags[flag];
      if (f?.type === "boolean") return new UsageError(`${quoted} takes no value`);
      // node:util reads `--seed -1` as a flag followed by another flag.
      const dash = /ambiguous/.test(err.message) ? `; a value starting with '-' is written ${quoted}=-VALUE` : "";
      return new UsageError(`${quoted} needs a value (${f?.arg ?? "VALUE"})${dash}`);
    }
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return new UsageError(`unexpected argument '${/argument '([^']*)'/.exec(err.message)?.[1] ?? ""}'`);
    default:
      return new UsageError(err.message.split("\n")[0]);
  }
}

/** Parse `args` against the spec; a `UsageError` for anything it does not accept. */
export function parseFlags<S extends CliSpec>(spec: S, args: string[]): ParsedArgs<S> & { help: boolean } {
  const options: Record<string, { type: "string" | "boolean"; short?: string; default?: string | boolean }> = {};
  for (const [name, f] of Object.entries({ ...spec.flags, help: HELP })) {
    options[name] = { type: f.type, ...(f.short ? { short: f.short } : {}) };
    if (f.default !== undefined) options[name].default = f.default;
  }
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: spec.positionals !== undefined, strict: true });
  } catch (err) {
    throw parseError(spec, err as Error);
  }
  const { help, ...values } = parsed.values as Record<string, string | boolean | undefined>;
  if (help) return { values: values as FlagValues<S["flags"]>, positionals: parsed.positionals, help: true };
  for (const [name, v] of Object.entries(values)) {
    // `--out --resume` would otherwise take "--resume" as the folder name.
    if (typeof v === "string" && v.startsWith("--") && spec.flags[name]?.type === "string") {
      throw new UsageError(`--${name} needs a value (${spec.flags[name].arg ?? "VALUE"}), got the flag '${v}'`);
    }
  }
  const p = spec.positionals ?? { min: 0, max: 0 };
  if (parsed.positionals.length < p.min) {
    throw new UsageError(`expected at least ${p.min} argument(s), got ${parsed.positionals.length}`);
  }
  if (p.max !== undefined && parsed.positionals.length > p.max) {
    throw new UsageError(`unexpected argument '${parsed.positionals[p.max]}'`);
  }
  return { values: values as FlagValues<S["flags"]>, positionals: parsed.positionals, help: false };
}

/** An integer flag value (`fallback` when absent); the error names the flag, the bound and the value. */
export function intFlag(
  name: string,
  text: string | undefined,
  o: { min: number; fallback: number },
): number;
export function intFlag(name: string, text: string | undefined, o: { min: number }): number | undefined;
export function intFlag(name: string, text: string | undefined, o: { min: number; fallback?: number }) {
  if (text === undefined) return o.fallback;
  const n = Number(text);
  if (text.trim() === "" || !Number.isInteger(n) || n < o.min) {
    throw new UsageError(`--${name}: expected an integer >= ${o.min}, got '${text}'`);
  }
  return n;
}

/** One of `choices`; the error lists them. */
export function choiceFlag<T extends string>(name: string, text: string, choices: readonly T[]): T {
  if ((choices as readonly string[]).includes(text)) return text as T;
  throw new UsageError(`--${name}: expected one of ${choices.join(", ")}, got '${text}'`);
}

/** A flag that must be given. */
export function requiredFlag(name: string, text: string | undefined, arg: string): string {
  if (text === undefined || text === "") throw new UsageError(`--${name} ${arg} is required`);
  return text;
}

/** Where the lines go (tests pass collectors). */
export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

const CONSOLE: CliIo = { out: (l) => console.log(l), err: (l) => console.error(l) };

/** Errors that are bugs in our code: their stack is what a bug report needs. */
const isBug = (e: unknown) => e instanceof TypeError || e instanceof ReferenceError || e instanceof SyntaxError;

/**
 * Parse, check, run; returns the exit code (0, 1 or 2; `run` may return its own).
 * Anything `check` throws is a usage error (exit 2): it must only read, never write.
 */
export async function runCli<S extends CliSpec, T>(
  spec: S,
  args: string[],
  steps: { check: (parsed: ParsedArgs<S>) => T | Promise<T>; run: (options: T) => Promise<number | void> },
  io: CliIo = CONSOLE,
): Promise<number> {
  let options: T;
  try {
    const parsed = parseFlags(spec, args);
    if (parsed.help) {
      io.out(usage(spec));
      return 0;
    }
    options = await steps.check(parsed);
  } catch (err) {
    if (isBug(err)) throw err;
    const message = (err as Error).message.replace(/\s*\n\s*/g, " ").trim();
    io.err(`${spec.name}: ${message}`);
    io.err(usage(spec));
    return 2;
  }
  try {
    return (await steps.run(options)) ?? 0;
  } catch (err) {
    io.err(isBug(err) ? `${spec.name}: ${(err as Error).stack}` : `${spec.name}: ${(err as Error).message}`);
    return 1;
  }
}
