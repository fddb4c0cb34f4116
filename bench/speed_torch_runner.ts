/**
 * Runs bench/speed_torch.py (the PyTorch twin of the speed ViT) with the first python that imports torch.
 *
 * Python candidates: `$PYTHON`, `python3` on PATH (often pyenv's, without torch), then the system
 * `/usr/bin/python3` (where Debian's `python3-torch` lives).
 *
 * @module
 */
import type { SpeedVitConfig } from "../model/kernels/speed_vit.ts";

/** The JSON line speed_torch.py prints. */
export interface TorchSpeed {
  imgPerSec: number;
  msPerStep: number;
  /** CPU time of the torch process (all threads) per timed step. */
  cpuMsPerStep?: number;
  peakRssMb: number;
  torch: string;
  threads: number;
}

export type TorchRun = { ok: true; result: TorchSpeed; python: string } | { ok: false; reason: string };

const SCRIPT = new URL("./speed_torch.py", import.meta.url).pathname;

async function output(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
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

/** Train the torch twin with the same sizes, steps and thread count. */
export async function runTorchSpeed(
  o: { steps: number; warmup: number; batch: number; threads: number; cfg: SpeedVitConfig },
): Promise<TorchRun> {
  const py = await findTorchPython();
  if (!py) {
    return {
      ok: false,
      reason: "no python with torch (tried $PYTHON, python3, /usr/bin/python3); Debian: " +
        "`apt-get install python3-torch libopenblas0-pthread`",
    };
  }
  const c = o.cfg;
  const args = [SCRIPT, "--steps", o.steps, "--warmup", o.warmup, "--batch", o.batch, "--threads", o.threads]
    .concat(["--img", c.img, "--patch", c.patch, "--dim", c.dim, "--depth", c.depth, "--heads", c.heads])
    .concat(["--mlp-ratio", c.mlpRatio]).map(String);
  const r = await output(py, args);
  const line = r.stdout.trim().split("\n").pop() ?? "";
  if (r.code !== 0 || !line.startsWith("{")) {
    return { ok: false, reason: `${py} ${SCRIPT} exited ${r.code}: ${r.stderr.trim().split("\n").pop()}` };
  }
  return { ok: true, result: JSON.parse(line) as TorchSpeed, python: py };
}
