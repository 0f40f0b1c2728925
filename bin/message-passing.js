#!/usr/bin/env node
// CommonJS (see bin/package.json): with a CommonJS entry Node does not set up its
// ES module loader at start, ~5 ms saved. dist/message-passing.cjs is the whole
// program in one file (scripts/bundle.mjs, run by `npm run build`).
//
// In a working copy (src/ next to dist/), the bundle may be missing or older than
// dist/cli/main.js (a `tsc` alone since): the modules tsc made run instead, so what
// runs is never stale. An installed package has no src/ and nothing to compare:
// npm gives its files the times they were unpacked at, in no useful order, so it
// always runs the bundle (the modules only if the bundle is missing).
'use strict';
const { existsSync, statSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const dist = join(root, 'dist');
function bundled() {
  try {
    const bundle = statSync(join(dist, 'message-passing.cjs')).mtimeMs;
    if (!existsSync(join(root, 'src'))) return true;
    return bundle >= statSync(join(dist, 'cli/main.js')).mtimeMs;
  } catch {
    return false;
  }
}
if (bundled()) require('../dist/message-passing.cjs');
else import('../dist/cli/main.js');
