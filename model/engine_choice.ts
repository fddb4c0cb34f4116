/**
 * Which engine computes: the `--engine tfjs|ort`, `--ep cpu|webgpu|cuda` and `--backend` flags of
 * every task (pretrain, bench, speed, parity, eval, embed), parsed and started in one place.
 *
 * - `tfjs`: the eager reference engine (model/tf_train_engine.ts) on a tfjs backend (`--backend`:
 *   `blas`, `wasm`, `cpu`, `webgpu`, `tensorflow`).
 * - `ort`: each training iteration as one ONNX graph (model/ops/ort_train_engine.ts) on an
 *   onnxruntime execution provider (`--ep`, default `cpu`; `webgpu` keeps the state on the device,
 *   `cuda` copies it each step: model/ops/README.md). A provider that cannot start fails in
 *   `startEngine`, before any data is read, in one line naming the missing piece and how to get
 *   it (model/ops/ep_diagnose.ts).
 *
 * tfjs is initialised in both cases: the probes (eval/) train their heads on it, so with
 * `--engine ort` the `--backend` flag still chooses where they run.
 *
 * @module
 */
import { type Backend, BACKENDS, initBackend, parseBackend } from "./engine.ts";
import { checkExecutionProvider, EXECUTION_PROVIDERS, type ExecutionProvider, ORT_VERSION } from "./ops/ort_program.ts";
import { ortEngineFactory } from "./ops/ort_train_engine.ts";
import { createTfTrainEngine, tfEngineDescription } from "./tf_train_engine.ts";
import type { EngineDescription, EngineFactory } from "./train_engine.ts";

export const ENGINE_NAMES = ["tfjs", "ort"] as const;
export type EngineName = typeof ENGINE_NAMES[number];

/** onnxruntime execution providers: MLAS on the CPU, Dawn over Vulkan/Metal/D3D12, CUDA 12. */
export const ORT_EPS = EXECUTION_PROVIDERS;
export type OrtEp = ExecutionProvider;

/** A parsed engine choice. `backend` is tfjs's (training with `tfjs`, probe heads always). */
export type EngineChoice =
  | { engine: "tfjs"; backend: Backend }
  | { engine: "ort"; ep: OrtEp; backend: Backend; threads?: number };

/** The engine flags of a command line, as strings (absent: undefined). */
export interface EngineFlags {
  engine?: string;
  ep?: string;
  backend?: string;
}

/**
 * Parse the engine flags; an error names the flag and lists the valid values. `defaults` gives
 * the task's (or suite's) engine and backend when the flags are absent.
 */
export function parseEngineChoice(
  flags: EngineFlags,
  defaults: { engine?: EngineName; ep?: OrtEp; backend?: Backend } = {},
): EngineChoice {
  const engine = flags.engine ?? defaults.engine ?? "tfjs";
  if (!(ENGINE_NAMES as readonly string[]).includes(engine)) {
    throw new Error(`--engine: expected one of ${ENGINE_NAMES.join(", ")}, got '${engine}'`);
  }
  const backend = flags.backend === undefined ? defaults.backend ?? "wasm" : parseBackend(flags.backend);
  if (engine === "tfjs") {
    if (flags.ep !== undefined) {
      throw new Error(`--ep ${flags.ep}: execution providers belong to --engine ort; the tfjs engine takes --backend`);
    }
    return { engine: "tfjs", backend };
  }
  const ep = flags.ep ?? defaults.ep ?? "cpu";
  if (!(ORT_EPS as readonly string[]).includes(ep)) {
    throw new Error(`--ep: expected one of ${ORT_EPS.join(", ")}, got '${ep}'`);
  }
  return { engine: "ort", ep: ep as OrtEp, backend };
}

/** What a started engine gives its task: a factory of `TrainEngine`s and what runs, for records. */
export interface StartedEngine {
  choice: EngineChoice;
  factory: EngineFactory;
  description: EngineDescription;
}

/** onnxruntime on `ep`, as records describe it (what `OrtTrainEngine.description` says). */
export function ortEngineDescription(ep: OrtEp): EngineDescription {
  return { engine: "ort", device: ep, versions: { "onnxruntime-node": ORT_VERSION } };
}

/**
 * Initialise tfjs on `choice.backend` and return the engine factory. An engine that cannot start
 * fails here with one line naming the missing piece.
 */
export async function startEngine(choice: EngineChoice): Promise<StartedEngine> {
  await initBackend(choice.backend);
  if (choice.engine === "tfjs") {
    return { choice, factory: createTfTrainEngine, description: tfEngineDescription() };
  }
  const { ep, threads } = choice;
  await checkExecutionProvider(ep); // one line naming the missing driver, adapter or provider library
  return { choice, factory: ortEngineFactory({ ep, threads }), description: ortEngineDescription(ep) };
}

/** One line for logs: `tfjs blas`, `ort cpu (probes on tfjs wasm)`. */
export function describeChoice(c: EngineChoice): string {
  return c.engine === "tfjs" ? `tfjs ${c.backend}` : `ort ${c.ep} (probes on tfjs ${c.backend})`;
}

/** Usage strings of the three flags, for CLI specs. */
export const ENGINE_FLAG_HELP = {
  engine: `training/feature engine: ${ENGINE_NAMES.join("|")}`,
  ep: `onnxruntime execution provider with --engine ort: ${ORT_EPS.join("|")} (default cpu)`,
  backend: `tfjs backend (--engine tfjs; probe heads always): ${BACKENDS.join("|")}`,
} as const;
