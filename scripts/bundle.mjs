// Start-up bundle: after `tsc`, packs dist/ into dist/message-passing.cjs, the
// file bin/message-passing.js loads. Why: Node 20 spends ~1 ms per ES module it
// loads and ~5 ms setting up its ES module loader at all; the default path
// (`echo '{}' | message-passing`) touched ~17 modules. One CommonJS file cuts
// start-up by ~15 ms (measured: 30 -> 15 ms after Node's own boot).
//
// - The default plugins (STDIN, STDOUT, STDERR, JSON, Null) are in the main
//   file; every other plugin, --help and the man page are chunks loaded on use,
//   so their modules (fs/promises, watchers, zeromq) cost nothing otherwise.
// - Node built-ins and npm packages stay outside (require()d / import()ed),
//   except yargs, the command-line parser, which is bundled with what it
//   imports into dist/message-passing-yargs-code.cjs (minified), a file of its
//   own that src/cli/args.ts loads, through dist/message-passing-yargs.cjs
//   (scripts/yargs-loader.cjs) and with a V8 code cache made here, when there
//   is a command line to parse (not for an empty one). In that file y18n
//   (yargs's translations) is replaced by
//   scripts/y18n-en.mjs, which reads no locale file; what yargs imports only
//   for its own help output, and escalade, with which it looks for
//   package.json, are left out (scripts/yargs-unused.mjs,
//   scripts/yargs-find-nothing.mjs); and import.meta.url in those packages is
//   that file's own URL: nothing of node_modules is needed at run time.
// - `import.meta.url` keeps meaning the module's own place in dist/.
// - bin/message-passing.js falls back to dist/cli.js when this file is missing
//   or older than dist/cli.js (a `tsc` without this step), so a stale bundle
//   never runs.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { createRequire, isBuiltin } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rolldown } from 'rolldown';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
/** Plugins of the default command line, bundled in the main file. */
const CORE = ['cli/main.js', 'inputs/stdin.js', 'outputs/stdout.js', 'outputs/stderr.js', 'codecs/json.js', 'codecs/null.js'];
const ENTRY = '\0message-passing-entry';
/** npm packages bundled, with everything they import; each an entry file of its own, loaded on use. */
const BUNDLED = ['yargs'];
/** Where src/cli/args.ts loads yargs from: the bundled copy instead (see YARGS_MODULE there). */
const YARGS_MODULE = /^const YARGS_MODULE = (['"])yargs\1;$/m;
/** What bundled packages import that is replaced in the bundle (see each file). */
const REPLACED = {
  y18n: 'scripts/y18n-en.mjs',
  cliui: 'scripts/yargs-unused.mjs',
  'string-width': 'scripts/yargs-unused.mjs',
  assert: 'scripts/yargs-unused.mjs',
  'escalade/sync': 'scripts/yargs-find-nothing.mjs',
};
/** Text patched in bundled files: [file ending, from, to]; the build fails when one is not found. */
const PATCHES = [
  // yargs's platform layer reads the terminal width at load, which sets up process.stdout
  // (a few ms) although only yargs's help uses it: read it when asked.
  [
    'yargs/lib/platform-shims/esm.mjs',
    "stdColumns: typeof process.stdout.columns !== 'undefined' ? process.stdout.columns : null",
    'get stdColumns() { return process.stdout.columns ?? null; }',
  ],
];
const packageOf = (id) => id.split('/').slice(0, id.startsWith('@') ? 2 : 1).join('/');
const inNodeModules = (file) => file !== undefined && file.split(/[\\/]/).includes('node_modules');

// Chunks of an earlier build.
for (const name of readdirSync(dist)) if (name.endsWith('.cjs') || name.endsWith('.cjs.cache')) rmSync(join(dist, name));

const options = (input) => ({
  input,
  platform: 'node',
  logLevel: 'warn',
  onLog(level, log, handler) {
    // That the default plugins stay in the main file is the point.
    if (log.code === 'INEFFECTIVE_DYNAMIC_IMPORT') return;
    if (level === 'warn') throw new Error(`bundle: ${log.message}`);
    handler(level, log);
  },
  external: (id, importer) => {
    if (Object.hasOwn(REPLACED, id) && inNodeModules(importer)) return false;
    if (isBuiltin(id)) return true;
    if (id.startsWith('.') || id.startsWith('/') || id.startsWith('\0')) return false;
    // Only bundled packages' files are ever read from node_modules: what they import comes along.
    return !BUNDLED.includes(packageOf(id)) && !inNodeModules(importer);
  },
  plugins: [
    {
      name: 'message-passing',
      resolveId: (id, importer) => {
        if (id === ENTRY) return ENTRY;
        if (Object.hasOwn(REPLACED, id) && inNodeModules(importer)) return join(root, REPLACED[id]);
        return null;
      },
      load: (id) => (id === ENTRY ? CORE.map((file) => `import ${JSON.stringify(join(dist, file))};`).join('\n') : null),
      transform(code, id) {
        for (const [file, from, to] of PATCHES) {
          if (!id.split(sep).join('/').endsWith(`/node_modules/${file}`)) continue;
          if (!code.includes(from)) throw new Error(`bundle: ${file} has changed: no ${JSON.stringify(from)}`);
          code = code.replace(from, to);
        }
        if (id === join(dist, 'cli', 'args.js')) {
          if (!YARGS_MODULE.test(code)) throw new Error('bundle: dist/cli/args.js has no `const YARGS_MODULE = \'yargs\';`');
          code = code.replace(YARGS_MODULE, `const YARGS_MODULE = ${JSON.stringify(relative(dirname(id), join(dist, 'message-passing-yargs.cjs')).split(sep).join('/'))};`);
        }
        if (!code.includes('import.meta')) return { code, map: null };
        let replaced;
        if (inNodeModules(id)) {
          // A bundled package's files are the bundle now; import.meta.resolve serves only
          // yargs's config `extends`, which is not used.
          // (Imported, not require()d: the module may have a `require` of its own.)
          replaced =
            'import { pathToFileURL as __bundleFileURL } from "node:url";\n' +
            'import { createRequire as __bundleCreateRequire } from "node:module";\n' +
            code
              .replaceAll('import.meta.url', '__bundleFileURL(__filename).href')
              .replaceAll('import.meta.resolve', '__bundleCreateRequire(__filename).resolve');
        } else {
          // In the bundle, import.meta.url would be the bundle's; each of our modules keeps its own.
          const own = `require("node:url").pathToFileURL(require("node:path").join(__dirname, ${JSON.stringify(relative(dist, id))})).href`;
          replaced = code.replaceAll('import.meta.url', `(${own})`);
        }
        if (replaced.includes('import.meta')) throw new Error(`bundle: ${relative(root, id)} uses import.meta beyond import.meta.url`);
        return { code: replaced, map: null };
      },
    },
  ],
});

// The program, and each bundled package on its own (so each file has what it needs, and no more).
for (const [name, input] of [['message-passing', ENTRY], ...BUNDLED.map((pkg) => [`message-passing-${pkg}-code`, pkg])]) {
  const bundle = await rolldown(options(input));
  await bundle.write({
    dir: dist,
    format: 'cjs',
    exports: 'named',
    entryFileNames: `${name}.cjs`,
    chunkFileNames: 'message-passing-[name].cjs',
    // Less to read and compile; nobody reads yargs's own stack frames.
    minify: input !== ENTRY,
    banner: `// Built by scripts/bundle.mjs from ${input === ENTRY ? 'dist/*.js' : `the npm package ${input}`}: do not edit.`,
  });
  await bundle.close();
}

// yargs's loader, and the V8 code cache of what a parse runs: made by running the
// program once, as a user would, with a command line that goes through yargs.
copyFileSync(join(root, 'scripts', 'yargs-loader.cjs'), join(dist, 'message-passing-yargs.cjs'));
const cacheFile = join(dist, 'message-passing-yargs-code.cjs.cache');
const warmUp = ['--input', 'STDIN', '--input-options', '{}', '--filter', 'Null', '--filter_options', '{}', '--stats', '5', '--version'];
const ran = spawnSync(process.execPath, [join(root, 'bin', 'message-passing.js'), ...warmUp], {
  env: { ...process.env, MESSAGE_PASSING_WRITE_CODE_CACHE: cacheFile },
  encoding: 'utf8',
});
if (ran.status !== 0 || !existsSync(cacheFile)) throw new Error(`bundle: the run that makes yargs's code cache failed (${ran.status}): ${ran.stderr}`);
// Made by this very Node, it is taken (another Node or other V8 flags would compile as usual).
const { codeCache } = createRequire(import.meta.url)(join(dist, 'message-passing-yargs.cjs'));
if (codeCache !== 'accepted') throw new Error(`bundle: yargs's code cache was ${codeCache}`);
