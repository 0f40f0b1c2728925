// Becomes dist/message-passing-yargs.cjs (scripts/bundle.mjs copies it there):
// what src/cli/args.ts require()s for yargs. It runs message-passing-yargs-code.cjs,
// yargs bundled and minified, with the V8 code cache made for it at build time
// (message-passing-yargs-code.cjs.cache: the compiled code of everything a parse
// runs), so yargs is not compiled again at every start, about half its cost. A
// cache V8 rejects (another Node, other V8 flags) or a missing one is no matter:
// the code is then compiled as usual.
'use strict';
const { readFileSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { Script } = require('node:vm');

const file = join(__dirname, 'message-passing-yargs-code.cjs');
const cacheFile = `${file}.cache`;
let cachedData;
try {
  cachedData = readFileSync(cacheFile);
} catch {
  // No cache: compiled as usual.
}
const source = readFileSync(file, 'utf8');
const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: file, cachedData });
script.runInThisContext()(module.exports, require, module, file, __dirname);
/** 'accepted', 'rejected' or 'none': scripts/bundle.mjs checks it. */
module.exports.codeCache = cachedData === undefined ? 'none' : script.cachedDataRejected ? 'rejected' : 'accepted';
// scripts/bundle.mjs runs the program once with this set, and the cache is what that run compiled.
if (process.env.MESSAGE_PASSING_WRITE_CODE_CACHE === cacheFile) {
  process.once('exit', () => writeFileSync(cacheFile, script.createCachedData()));
}
