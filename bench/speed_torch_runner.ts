/**
 * The PyTorch side of `deno task speed --vs-torch`: writes what the twin needs (our initial parameters,
 * images and first draws, the config and schedule values) to one safetensors file, and runs
 * bench/speed_torch.py on it with the first python that imports torch.
 *
 * Python candidates: `$PYTHON`, `python3` on PATH (often pyenv's, without torch), then the system
 * `/usr/bin/python3` (where Debian's `python3-torch` lives).
 *
 * @module
 */
import { type SafeTensor, writeSafetensors } from "../model/safetensors.ts";
import type { SpeedSubject } from "./speed_subject.ts";

/** The JSON line speed_torch.py prints. */
export interface TorchSpeed {
  imgPerSec: number;
  msPerStep: number;
  /** CPU time of the torch process (all threads) per timed step. */
  cpuMsPerStep?: number;
  peakRssMb: number;
  torch: string;
  threads: number;
  /** Losses of the first steps, on our weights and draws. */
  checkLosses: number[];
  /** How each parameter moved over those steps, by our name: `[|dp|, <dp, p0>/|p0|]` (bench/speed_round.ts). */
  checkUpdates: Record<string, [number, number]>;
}

export type TorchRun = { ok: true; result: TorchSpeed; python: string } | { ok: false; reason: string };

const SCRIPT = new URL("./speed_torch.py", import.meta.url).pathname;

async function output(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    // No __pycache__ beside the twins in the source tree.
    const env = { PYTHONDONTWRITEBYTECODE: "1" };
    const r = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
    const dec = new TextDecoder();
    return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
  } catch (e) {
    return { code: -1, stdout: "", stderr: (e as Error).message };
  }
}

/** The first python that can `import torch`, or null. */
export async function findTorchPython(): Promise<string | null> {
  const env = Deno.env.get("PYTHON");
  for (const py of [...(env ? [env] : []), "python3", "/usr/bin/python3"]) {
    if ((await output(py, ["-c", "import torch"])).code === 0) return py;
  }
  return null;
}

/**
 * The twin's inputs: `param.<name>` (every parameter of the step spec, official names), `images`,
 * `step<k>.<draw>` for k = 1..checkSteps (the draws of iterations 0..checkSteps-1), and metadata `method`,
 * `config`, `hyper` (JSON) and `check_steps`. Written atomically.
 */
export async function writeTorchInputs(path: string, subject: SpeedSubject, checkSteps: number): Promise<void> {
  const tensors = new Map<string, SafeTensor>();
  for (const [name, p] of subject.spec.params) tensors.set(`param.${name}`, p.value);
  tensors.set("images", subject.images);
  for (let k = 1; k <= checkSteps; k++) {
    for (const [name, d] of Object.entries(subject.draw(k - 1))) tensors.set(`step${k}.${name}`, d as SafeTensor);
  }
  await writeSafetensors(path, tensors, {
    method: subject.method,
    config: JSON.stringify(subject.torch.config),
    hyper: JSON.stringify(subject.torch.hyper),
    check_steps: String(checkSteps),
  });
}

/** Train the twin on `inputs` (written by `writeTorchInputs`) with the same steps and thread count. */
export async function runTorchSpeed(
  o: { inputs: string; steps: number; warmup: number; threads: number },
): Promise<TorchRun> {
  const py = await findTorchPython();
  if (!py) {
    return {
      ok: false,
      reason: "no python with torch (tried $PYTHON, python3, /usr/bin/python3); Debian: " +
        "`apt-get install python3-torch libopenblas0-pthread`",
    };
  }
  const args = [SCRIPT, "--inputs", o.inputs, "--steps", o.steps, "--warmup", o.warmup, "--threads", o.threads]
    .map(String);
  const r = await output(py, args);
  const line = r.stdout.trim().split("\n").pop() ?? "";
  if (r.code !== 0 || !line.startsWith("{")) {
    return { ok: false, reason: `${py} ${SCRIPT} exited ${r.code}: ${r.stderr.trim().split("\n").pop()}` };
  }
  return { ok: true, result: JSON.parse(line) as TorchSpeed, python: py };
}
