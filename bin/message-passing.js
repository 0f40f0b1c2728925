#!/usr/bin/env node
// CommonJS (see bin/package.json): with a CommonJS entry Node does not set up its
// ES module loader at start, ~5 ms saved. dist/message-passing.cjs is the whole
// program in one file (scripts/bundle.mjs, run by `npm run build`); when it is
// missing or older than dist/cli/main.js (a `tsc` alone since), the modules tsc made
// run instead, so what runs is never stale.
'use strict';
const { statSync } = require('node:fs');
const { join } = require('node:path');

const dist = join(__dirname, '..', 'dist');
function bundled() {
  try {
    return statSync(join(dist, 'message-passing.cjs')).mtimeMs >= statSync(join(dist, 'cli/main.js')).mtimeMs;
  } catch {
    return false;
  }
}
if (bundled()) require('../dist/message-passing.cjs');
else import('../dist/cli/main.js');
