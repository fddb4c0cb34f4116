/**
 * The HTML leaderboard renders in a real browser: headless Chromium loads the page built from
 * fake records and its DOM holds the tables and every inline SVG chart. Skipped, with the
 * reason printed, where no Chromium is installed (Debian: `apt-get install chromium`; or set
 * CHROMIUM_PATH).
 *
 * @module
 */
import assert from "node:assert/strict";
import { FAKE_SUITE_TWO_BUDGETS, runFakeCells } from "./fake_phases.ts";
import { writeLeaderboard } from "./leaderboard.ts";

const CANDIDATES = [
  Deno.env.get("CHROMIUM_PATH"),
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
  "/usr/bin/google-chrome",
  "/usr/bin/google-chrome-stable",
].filter((p): p is string => !!p);

function findChromium(): string | null {
  for (const p of CANDIDATES) {
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch { /* not here */ }
  }
  return null;
}

const chromium = findChromium();
if (!chromium) {
  console.log(
    `SKIP leaderboard_html_test: no Chromium found (looked for ${CANDIDATES.join(", ")}); ` +
      "install Debian's `chromium` package or set CHROMIUM_PATH to run it",
  );
}

Deno.test({
  name: "leaderboard.html renders in headless Chromium with its tables and SVG charts",
  ignore: !chromium,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "bench_html_test_" });
    await runFakeCells(root, FAKE_SUITE_TWO_BUDGETS);
    await writeLeaderboard(`${root}/runs`, root);
    const html = await Deno.readTextFile(`${root}/leaderboard.html`);
    const expectedSvgs = (html.match(/<svg /g) ?? []).length;
    // A chart per method and logged loss component (capi: loss, loss_capi, loss_clustering, target_entropy;
    // mae: loss), a bar chart per main metric (2), budget vs each main metric (2).
    assert.equal(expectedSvgs, 5 + 2 + 2);
    const out = await new Deno.Command(chromium!, {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        `--user-data-dir=${root}/profile`,
        `--screenshot=${root}/shot.png`,
        "--window-size=1000,3000",
        "--dump-dom",
        `file://${root}/leaderboard.html`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dom = new TextDecoder().decode(out.stdout);
    assert.ok(out.success, `chromium failed: ${new TextDecoder().decode(out.stderr).slice(0, 2000)}`);
    assert.match(dom, /<h1>MIM benchmark leaderboard<\/h1>/);
    assert.equal((dom.match(/<svg /g) ?? []).length, expectedSvgs, "every chart is in the rendered DOM");
    assert.equal((dom.match(/<table>/g) ?? []).length, 1);
    assert.match(dom, /random_init\.capi/);
    for (const c of ["loss", "loss_capi", "loss_clustering", "target_entropy"]) {
      assert.match(dom, new RegExp(`pretraining ${c}: capi \\(mean`), `the ${c} curve of capi is drawn`);
    }
    assert.doesNotMatch(dom, /pretraining loss_capi: mae/, "MAE logs only its loss");
    assert.ok((await Deno.stat(`${root}/shot.png`)).size > 10_000, "the screenshot is not blank");
    await Deno.remove(root, { recursive: true });
  },
});
