/** The suite's one atomic-write helper: complete files only, parents created, temp files cleaned up. */
import assert from "node:assert/strict";
import { atomicWriteFile, atomicWriteJson } from "./atomic_write.ts";

Deno.test("atomicWriteFile writes text and bytes, replaces the target and leaves no temporary file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/a/b/out.json`;
    await atomicWriteJson(path, { x: 1 });
    assert.equal(await Deno.readTextFile(path), '{\n  "x": 1\n}\n');
    await atomicWriteFile(path, new Uint8Array([104, 105]));
    assert.equal(await Deno.readTextFile(path), "hi");
    assert.deepEqual([...Deno.readDirSync(`${dir}/a/b`)].map((e) => e.name), ["out.json"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("atomicWriteFile: a failed write names the target, keeps the old file and cleans up", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/keep.txt`;
    await atomicWriteFile(path, "old");
    await Deno.mkdir(`${dir}/target_is_a_folder`);
    await assert.rejects(atomicWriteFile(`${dir}/target_is_a_folder`, "new"), /could not write '.*target_is_a_folder'/);
    assert.equal(await Deno.readTextFile(path), "old");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["keep.txt", "target_is_a_folder"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
