/** The suite's one SHA-256 helper, on the FIPS 180-2 known answers. */
import assert from "node:assert/strict";
import { sha256File, sha256Hex } from "./sha256.ts";

Deno.test("sha256Hex: known answers for text and bytes", async () => {
  assert.equal(await sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  assert.equal(await sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  assert.equal(await sha256Hex(new Uint8Array([97, 98, 99])), await sha256Hex("abc"));
  // UTF-8, not UTF-16: "é" is the two bytes c3 a9.
  assert.equal(await sha256Hex("é"), await sha256Hex(new Uint8Array([0xc3, 0xa9])));
});

Deno.test("sha256File: streams a file larger than one chunk to the same digest as the bytes", async () => {
  const bytes = new Uint8Array((4 << 20) + 3).map((_, i) => (i * 31) & 255);
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeFile(path, bytes);
    assert.equal(await sha256File(path), await sha256Hex(bytes));
  } finally {
    await Deno.remove(path);
  }
});
