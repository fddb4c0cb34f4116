/**
 * Bounded memory: the peak RSS of an attentive-probe evaluation (extraction of every patch token
 * + the probe, eval/peak_rss_run.ts) at N and 4N images, each in its own process, must not grow
 * by more than a fixed 32 MiB although 4N images hold ~96 MiB more patch tokens than N: the
 * tokens live in the disk store and only batches, chunks and one shard are ever in memory.
 */
import assert from "node:assert/strict";

const N = 250;
const BOUND = 32 * 2 ** 20;

async function peak(n: number): Promise<{ images: number; peakRssBytes: number; top1: number }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./peak_rss_run.ts", import.meta.url).pathname, String(n)],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) throw new Error(`peak_rss_run.ts ${n} failed:\n${new TextDecoder().decode(out.stderr)}`);
  return JSON.parse(text.split("\n").at(-1)!);
}

const linux = (() => {
  try {
    return /VmHWM/.test(Deno.readTextFileSync("/proc/self/status"));
  } catch {
    return false;
  }
})();
if (!linux) console.log("peak_rss_test: skipped, peak RSS is read from /proc/self/status (Linux only)");

Deno.test({
  name: `attentive probe: peak RSS at ${4 * N} images stays within ${BOUND / 2 ** 20} MiB of that at ${N}`,
  ignore: !linux,
  async fn() {
    const small = await peak(N), large = await peak(4 * N);
    const mib = (b: number) => (b / 2 ** 20).toFixed(1);
    const growth = large.peakRssBytes - small.peakRssBytes;
    assert.ok(
      growth <= BOUND,
      `peak RSS ${mib(small.peakRssBytes)} MiB at ${N} images, ${mib(large.peakRssBytes)} MiB at ${4 * N}: ` +
        `grew ${mib(growth)} MiB (bound ${mib(BOUND)}; the extra patch tokens are ~96 MiB)`,
    );
    assert.ok(small.top1 > 1 / 4 && large.top1 > 1 / 4, "the probe must learn something, or this measures nothing");
  },
});
