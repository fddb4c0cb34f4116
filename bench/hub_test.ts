/**
 * The hub download cache against a local HTTP server on 127.0.0.1 (tests never reach the
 * network): progress lines, a resumed partial download (HTTP Range), the SHA-256 record,
 * and refusal of a file whose hash changed. Also `resolveCheckpoint` for run directories,
 * files and hub names.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { resolveCheckpoint } from "./checkpoint_arg.ts";
import { downloadCached, HUB, HubRecord } from "./hub.ts";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Serves `content()` with Range support; `cutNext` makes the next full response stop half-way. */
function server() {
  const state = {
    content: Uint8Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 251),
    cutNext: false,
    ranges: [] as string[],
  };
  const srv = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const range = req.headers.get("range");
    state.ranges.push(range ?? "");
    const body = state.content;
    if (range) {
      const start = Number(/bytes=(\d+)-/.exec(range)![1]);
      if (start >= body.length) return new Response(null, { status: 416, headers: { connection: "close" } });
      return new Response(body.slice(start), {
        status: 206,
        headers: {
          "content-range": `bytes ${start}-${body.length - 1}/${body.length}`,
          "content-length": `${body.length - start}`,
          connection: "close",
        },
      });
    }
    if (state.cutNext) {
      state.cutNext = false;
      const half = body.slice(0, body.length / 2);
      const stream = new ReadableStream({
        start(c) {
          c.enqueue(half);
          setTimeout(() => c.error(new Error("connection reset")), 20);
        },
      });
      return new Response(stream, { headers: { "content-length": `${body.length}`, connection: "close" } });
    }
    return new Response(body, { headers: { "content-length": `${body.length}`, connection: "close" } });
  });
  const url = `http://127.0.0.1:${(srv.addr as Deno.NetAddr).port}/weights.pth`;
  return { state, url, close: () => srv.shutdown() };
}

Deno.test("downloadCached: progress, resume after a cut, SHA-256 recorded, reuse, changed hashes refused", async () => {
  const s = server();
  const dir = await Deno.makeTempDir();
  const lines: string[] = [];
  const progress = (line: string) => lines.push(line);
  try {
    s.state.cutNext = true;
    await assert.rejects(() => downloadCached(s.url, dir, "w.pth", { progress }));
    const part = await Deno.stat(`${dir}/w.pth.part`);
    assert.ok(part.size > 0 && part.size < 300_000, `partial file of ${part.size} bytes kept`);

    const got = await downloadCached(s.url, dir, "w.pth", { progress });
    assert.equal(s.state.ranges.at(-1), `bytes=${part.size}-`, "resumed with a Range request");
    assert.deepEqual(await Deno.readFile(got.path), s.state.content);
    assert.match(lines.at(-1)!, /^w\.pth: 0\.3 MB done \(resumed at 0\.\d MB\)$/);
    const record = HubRecord.parse(JSON.parse(await Deno.readTextFile(`${dir}/w.pth.sha256.json`)));
    assert.deepEqual([record.sha256, record.bytes, record.url], [sha(s.state.content), 300_000, s.url]);

    const requests = s.state.ranges.length;
    await downloadCached(s.url, dir, "w.pth", { progress });
    assert.equal(s.state.ranges.length, requests, "a cached file with a matching hash is not fetched again");

    const bytes = await Deno.readFile(got.path);
    bytes[10] ^= 1;
    await Deno.writeFile(got.path, bytes);
    await assert.rejects(() => downloadCached(s.url, dir, "w.pth", { progress }), {
      message: new RegExp(`w.pth: SHA-256 ${sha(bytes)} differs from the one recorded at download \\(${record.sha256}`),
    });

    // The file deleted, the record kept: a download with other content is refused and not installed.
    await Deno.remove(got.path);
    s.state.content = s.state.content.map((b) => 255 - b);
    await assert.rejects(() => downloadCached(s.url, dir, "w.pth", { progress }), /the published file changed/);
    assert.equal(await Deno.stat(got.path).then(() => true, () => false), false);
  } finally {
    await s.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resolveCheckpoint: run directory, file, hub name (downloaded once), and one-line errors", async () => {
  const s = server();
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/run`);
    await Deno.writeTextFile(`${dir}/run/checkpoint.safetensors`, "x");
    assert.deepEqual(await resolveCheckpoint(`${dir}/run`), {
      path: `${dir}/run/checkpoint.safetensors`,
      kind: "run-dir",
    });
    assert.deepEqual(await resolveCheckpoint(`${dir}/run/checkpoint.safetensors`), {
      path: `${dir}/run/checkpoint.safetensors`,
      kind: "file",
    });
    await assert.rejects(() => resolveCheckpoint(dir), {
      message: `--checkpoint ${dir}: a directory without checkpoint.safetensors; expected a file or a run directory ` +
        `of 'deno task pretrain --out DIR' (has it written its first checkpoint yet?)`,
    });
    await assert.rejects(
      () => resolveCheckpoint(`${dir}/nope`),
      /--checkpoint .*nope: no such file or directory, and not a hub name \(hub names: capi_vitl14_lvd, /,
    );

    const hub = await resolveCheckpoint("mae_pretrain_vit_base", {
      hubCache: `${dir}/hub`,
      hubUrls: { mae_pretrain_vit_base: s.url },
    });
    assert.equal(hub.path, `${dir}/hub/mae_pretrain_vit_base.pth`);
    assert.deepEqual([hub.kind, hub.method, hub.preset, hub.hub?.sha256], [
      "hub",
      "mae",
      "vit_b",
      sha(s.state.content),
    ]);
  } finally {
    await s.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("HUB: every released file of issue 14, at its published URL", () => {
  assert.equal(HUB.capi_vitl14_in1k.url, "https://dl.fbaipublicfiles.com/capi/capi_vitl14_in1k.pth");
  assert.equal(HUB.capi_vitl14_in22k.url, "https://dl.fbaipublicfiles.com/capi/capi_vitl14_i22k.pth");
  assert.equal(HUB.mae_pretrain_vit_huge.url, "https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_huge.pth");
  for (
    const n of [
      "capi_vitl14_lvd",
      "capi_vitl14_p205",
      "mae_pretrain_vit_large",
      "simmim_pretrain__vit_base__img224__800ep",
    ]
  ) {
    assert.ok(HUB[n], n);
  }
  assert.deepEqual([HUB.mae_pretrain_vit_huge.preset, HUB.simmim_pretrain__vit_base__img224__800ep.method], [
    "vit_h",
    "simmim",
  ]);
});
