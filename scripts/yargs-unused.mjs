// Stands in, inside dist/message-passing.cjs (see scripts/bundle.mjs), for what
// yargs imports only to lay out its own help text (cliui, string-width) and for
// the two node:assert checks of its platform layer. The program's help is its
// own (src/cli/docs.ts) and yargs's help is turned off (src/cli/args.ts), so the
// layout packages are never called; leaving them out saves tens of ms at every
// start (string-width builds large Unicode tables when loaded), and so does not
// loading node:assert.
const unused = (name) =>
  function () {
    throw new Error(`${name} is not in this build: yargs's help output is turned off (src/cli/args.ts)`);
  };

export default unused('yargs help layout (cliui, string-width)');

export function strictEqual(actual, expected, message) {
  if (!Object.is(actual, expected)) throw new Error(message ?? `expected ${String(expected)}, got ${String(actual)}`);
}

export function notStrictEqual(actual, expected, message) {
  if (Object.is(actual, expected)) throw new Error(message ?? `expected anything but ${String(expected)}`);
}
