/**
 * `@mim/bench`: the benchmark harness's public API (suites, cells, run records, leaderboard).
 * The real phases (`bench_phases.ts`) are left out on purpose: they load the models, datasets
 * and onnxruntime, which a tool that only reads records does not need.
 *
 * @module
 */
export { type Cell, expandSuite, parseShard, ProbeProtocol, selectShard, subjectName, Suite } from "./suite.ts";
export { loadSuite, SUITES } from "./suites/mod.ts";
export { type BenchPhases, cellIdentity, runCells } from "./cell_runner.ts";
export { parseRunRecord, readRunRecords, RunRecord, toModelIndex, writeRunRecord } from "./run_record.ts";
export { Leaderboard, LeaderboardRow } from "./leaderboard_schema.ts";
export { buildLeaderboard } from "./leaderboard_build.ts";
export { leaderboardMarkdown } from "./leaderboard_markdown.ts";
export { leaderboardHtml } from "./leaderboard_html.ts";
export { jsonSchemas } from "./json_schemas.ts";
export { RawPixelEncoder } from "./raw_pixels.ts";
export { downloadCached, HUB, hubCheckpoint, type HubEntry } from "./hub.ts";
export { resolveCheckpoint, type ResolvedCheckpoint } from "./checkpoint_arg.ts";
export { runEmbed } from "./embed.ts";
export { convertReleased } from "./convert.ts";
