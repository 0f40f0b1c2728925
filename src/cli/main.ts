import { parseArgs, type PluginChoice, type Settings } from './args.js';
import { Chain, type Counters, type NamedFilter } from '../core/chain.js';
import { describe, RuntimeError, UsageError } from '../core/errors.js';
import type { AnyPlugin, Filter, FilterContext, Role } from '../core/plugin.js';
import { closest, validateOptions } from '../core/options.js';
import { findEntry, loadPlugin, normalizeName, registry, unknownPlugin } from './registry.js';
import { importUserFilter, isModulePath, resolvePackage } from '../core/user-filter.js';

const PROGRAM = 'message-passing';

/** A plugin resolved and its options validated, ready to create. */
interface Prepared<R extends Role> {
  label: string;
  plugin: AnyPlugin<R>;
  options: Record<string, unknown>;
}

type FilterMaker = { name: string; make: (context: FilterContext) => Promise<Filter> };

async function prepare<R extends Role>(role: R, flag: string, choice: PluginChoice): Promise<Prepared<R>> {
  const { entry, plugin } = await loadPlugin(role, choice.name);
  const label = `--${flag} ${entry.name}`;
  const options = validateOptions(label, plugin.options, choice.options);
  const problem = plugin.check?.(options);
  if (problem) throw new UsageError(`${label}: ${problem}`);
  return { label, plugin, options };
}

async function prepareFilter(choice: PluginChoice): Promise<FilterMaker> {
  if (findEntry('filter', choice.name)) {
    const prepared = await prepare('filter', 'filter', choice);
    return { name: choice.name, make: async (context) => prepared.plugin.create(prepared.options, context) };
  }
  const name = normalizeName(choice.name);
  // A near miss of a built-in name is a typo; anything else may be a package to install.
  if (!isModulePath(name) && !resolvePackage(name) && closest(name, builtinFilterNames()) !== undefined) {
    throw unknownPlugin('filter', choice.name);
  }
  const make = await importUserFilter(name);
  return { name, make: (context) => make(choice.options, context) };
}

function builtinFilterNames(): string[] {
  return registry.filter((e) => e.role === 'filter').flatMap((e) => [e.name, ...(e.aliases ?? [])]);
}

/** Resolves and validates everything first, so a usage error starts nothing. */
async function build(settings: Settings): Promise<{ chain: Chain; run: () => Promise<void> }> {
  const input = await prepare('input', 'input', settings.input);
  const output = await prepare('output', 'output', settings.output);
  const decoder = await prepare('codec', 'decoder', settings.decoder);
  const encoder = await prepare('codec', 'encoder', settings.encoder);
  const errors = await prepare('output', 'error', settings.error);
  const filters: FilterMaker[] = [];
  for (const choice of settings.filters) filters.push(await prepareFilter(choice));

  const errorOutput = await errors.plugin.create(errors.options, {
    // Errors of the error output have nowhere else to go; they must never loop back.
    reportError: (record) => process.stderr.write(JSON.stringify(record) + '\n'),
    destinationClosed: () => undefined,
    // It keeps taking records until the very end, stop or not.
    stopping: new AbortController().signal,
  });
  const chain = new Chain(
    await decoder.plugin.create(decoder.options, {}),
    await encoder.plugin.create(encoder.options, {}),
    errorOutput,
  );
  chain.setOutput(await output.plugin.create(output.options, chain.outputContext()));
  const made: NamedFilter[] = [];
  for (const [i, maker] of filters.entries()) made.push({ name: maker.name, filter: await maker.make(chain.filterContext(i)) });
  chain.setFilters(made);
  const inputInstance = await input.plugin.create(input.options, chain.inputContext());
  return { chain, run: () => chain.run(inputInstance) };
}

function statsLine(counters: Counters, seconds: number, rate: number): string {
  const { in: read, out, dropped, errors } = counters;
  return `${PROGRAM}: stats in=${read} out=${out} dropped=${dropped} errors=${errors} rate=${Math.round(rate)}/s elapsed=${seconds.toFixed(1)}s\n`;
}

async function main(argv: readonly string[]): Promise<number> {
  const settings = parseArgs(argv);
  if (settings.completion !== undefined || settings.help !== undefined || settings.list || settings.version || settings.man) {
    const { printDocs } = await import('./docs.js');
    await printDocs(settings);
    return 0;
  }
  const { chain, run } = await build(settings);

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (++signals > 1) process.exit(signal === 'SIGINT' ? 130 : 143);
    chain.stopping.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  // The `performance` global loads perf_hooks (~2 ms of start-up): only for --stats.
  const started = settings.stats === undefined ? 0 : performance.now();
  let timer: NodeJS.Timeout | undefined;
  if (settings.stats !== undefined) {
    let last = { at: started, in: 0 };
    timer = setInterval(() => {
      const now = performance.now();
      process.stderr.write(statsLine(chain.counters, (now - started) / 1000, ((chain.counters.in - last.in) * 1000) / (now - last.at)));
      last = { at: now, in: chain.counters.in };
    }, settings.stats * 1000);
    timer.unref();
  }
  try {
    await run();
  } finally {
    clearInterval(timer);
    if (settings.stats !== undefined) {
      const seconds = (performance.now() - started) / 1000;
      process.stderr.write(statsLine(chain.counters, seconds, chain.counters.in / Math.max(seconds, 1e-3)));
    }
  }
  return 0;
}

/** One line a person can act on; the stack only when DEBUG is set. */
function report(error: unknown): number {
  if (process.env.DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  if (error instanceof UsageError) {
    process.stderr.write(`${PROGRAM}: ${error.message}\n`);
    return 2;
  }
  if (error instanceof RuntimeError) {
    process.stderr.write(`${PROGRAM}: ${error.message}\n`);
    return 1;
  }
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  process.stderr.write(`${PROGRAM}: ${describe(error).split('\n')[0]}${code ? ` (${code})` : ''}${process.env.DEBUG ? '' : ' (set DEBUG=1 for details)'}\n`);
  return 1;
}

let finished = false;
// Node is about to exit with nothing left to wait for, yet the run has not ended:
// a promise that never settles (a filter's, usually) holds messages that would be lost silently.
process.on('beforeExit', () => {
  if (finished) return;
  process.stderr.write(`${PROGRAM}: stopped with messages still in the chain: a filter or output returned a promise that never settles\n`);
  process.exit(1);
});
process.on('unhandledRejection', (error) => process.exit(report(error)));
main(process.argv.slice(2)).then(
  (code) => {
    finished = true;
    process.exit(code);
  },
  (error: unknown) => {
    finished = true;
    process.exit(report(error));
  },
);
