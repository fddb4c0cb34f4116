/**
 * `watchPeakBytes`: the most bytes of live tfjs tensors at once over a stretch of work (a step's
 * peak memory as the tfjs engine accounts it).
 *
 * tfjs keeps the current count (`tf.memory().numBytes`) but a high-water mark only under
 * `tf.profile`, which also reads every kernel's output back to the host: far too slow for a
 * training step. So the count itself is watched: tfjs-core 4.22 keeps it in `engine.state.numBytes`,
 * which becomes an accessor recording the maximum for every active watch. This reaches into
 * tfjs's internals (as the tape pause of ops/tf_ops.ts does), acceptable because it changes no
 * value and costs one comparison per allocation; if tfjs-core moves the field, the watch fails
 * in one line rather than reporting nothing.
 *
 * @module
 */
import { tf } from "./engine.ts";

interface CountState {
  numBytes: number;
}

const hooked = new WeakSet<object>();
const active = new Set<{ peak: number }>();

/** Turn `state.numBytes` into an accessor that feeds the active watches (once per engine state). */
function hook(state: CountState): void {
  if (hooked.has(state)) return;
  let value = state.numBytes;
  Object.defineProperty(state, "numBytes", {
    configurable: true,
    enumerable: true,
    get: () => value,
    set: (v: number) => {
      value = v;
      for (const w of active) if (v > w.peak) w.peak = v;
    },
  });
  hooked.add(state);
}

/** Start watching; `stop()` returns the peak of live tensor bytes since the start (watches may overlap). */
export function watchPeakBytes(): { stop(): number } {
  const state = (tf.engine() as unknown as { state?: Partial<CountState> }).state;
  if (!state || typeof state.numBytes !== "number") {
    throw new Error("watchPeakBytes: tfjs engine has no state.numBytes (tfjs-core changed; expected 4.22)");
  }
  hook(state as CountState);
  const w = { peak: state.numBytes };
  active.add(w);
  return {
    stop: () => {
      active.delete(w);
      return w.peak;
    },
  };
}
