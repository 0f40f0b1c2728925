// Start-up bundle: after `tsc`, packs dist/ into dist/message-passing.cjs, the
// file bin/message-passing.js loads. Why: Node 20 spends ~1 ms per ES module it
// loads and ~5 ms setting up its ES module loader at all; the default path
// (`echo '{}' | message-passing`) touched ~17 modules. One CommonJS file cuts
// start-up by ~15 ms (measured: 30 -> 15 ms after Node's own boot).
//
// - The default plugins (STDIN, STDOUT, STDERR, JSON, Null) are in the main
//   file; every other plugin, --help and the man page are chunks loaded on use,
//   so their modules (fs/promises, watchers, zeromq) cost nothing otherwise.
// - npm packages and Node built-ins stay outside (require()d / import()ed).
// - `import.meta.url` keeps meaning the module's own place in dist/.
// - bin/message-passing.js falls back to dist/cli.js when this file is missing
//   or older than dist/cli.js (a `tsc` without this step), so a stale bundle
//   never runs.
import { rmSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rolldown } from 'rolldown';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
/** Plugins of the default command line, bundled in the main file. */
const CORE = ['cli/main.js', 'inputs/stdin.js', 'outputs/stdout.js', 'outputs/stderr.js', 'codecs/json.js', 'codecs/null.js'];
const ENTRY = '\0message-passing-entry';

// Chunks of an earlier build.
for (const name of readdirSync(dist)) if (name.endsWith('.cjs')) rmSync(join(dist, name));

const bundle = await rolldown({
  input: ENTRY,
  platform: 'node',
  logLevel: 'warn',
  onLog(level, log, handler) {
    // That the default plugins stay in the main file is the point.
    if (log.code === 'INEFFECTIVE_DYNAMIC_IMPORT') return;
    if (level === 'warn') throw new Error(`bundle: ${log.message}`);
    handler(level, log);
  },
  external: (id) => !id.startsWith('.') && !id.startsWith('/') && !id.startsWith('\0'),
  plugins: [
    {
      name: 'message-passing',
      resolveId: (id) => (id === ENTRY ? ENTRY : null),
      load: (id) => (id === ENTRY ? CORE.map((file) => `import ${JSON.stringify(join(dist, file))};`).join('\n') : null),
      transform(code, id) {
        if (!code.includes('import.meta')) return null;
        // In the bundle, import.meta.url would be the bundle's; each module keeps its own.
        const own = `require("node:url").pathToFileURL(require("node:path").join(__dirname, ${JSON.stringify(relative(dist, id))})).href`;
        const replaced = code.replaceAll('import.meta.url', `(${own})`);
        if (replaced.includes('import.meta')) throw new Error(`bundle: ${relative(root, id)} uses import.meta beyond import.meta.url`);
        return { code: replaced, map: null };
      },
    },
  ],
});
await bundle.write({
  dir: dist,
  format: 'cjs',
  entryFileNames: 'message-passing.cjs',
  chunkFileNames: 'message-passing-[name].cjs',
  banner: '// Built by scripts/bundle.mjs from dist/*.js: do not edit.',
});
await bundle.close();
