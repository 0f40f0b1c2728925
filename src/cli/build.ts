// Builds a pipeline from settings, without touching the process (no signals,
// no exit): main.ts wires it to the process, and tests can build one in process.
import type { PluginChoice, Settings } from './args.js';
import { Chain, filterScope } from '../core/chain.js';
import { PROGRAM, UsageError } from '../core/errors.js';
import type { AnyPlugin, Codec, Filter, FilterContext, Frame, Input, Message, Output, Role } from '../core/plugin.js';
import { closest, validateOptions } from '../core/options.js';
import type { Clock } from '../core/state.js';
import { findEntry, loadCodec, loadPlugin, normalizeName, registry, unknownPlugin } from './registry.js';
import { importUserFilter, isModulePath, resolvePackage } from '../core/user-filter.js';

/** A plugin resolved and its options validated, ready to create. */
interface Prepared<R extends Role> {
  /** The plugin's own name, as --list shows it. */
  name: string;
  label: string;
  plugin: AnyPlugin<R>;
  options: Record<string, unknown>;
}

interface FilterMaker {
  name: string;
  create(context: FilterContext): Promise<Filter>;
}

async function prepare<R extends Role>(role: R, flag: string, choice: PluginChoice): Promise<Prepared<R>> {
  const { entry, plugin } = await loadPlugin(role, choice.name);
  const label = `--${flag} ${entry.name}`;
  const options = validateOptions(label, plugin.options, choice.options);
  const problem = plugin.check?.(options);
  if (problem) throw new UsageError(`${label}: ${problem}`);
  return { name: entry.name, label, plugin, options };
}

async function prepareFilter(choice: PluginChoice): Promise<FilterMaker> {
  if (findEntry('filter', choice.name)) {
    const prepared = await prepare('filter', 'filter', choice);
    return { name: choice.name, create: async (context) => prepared.plugin.create(prepared.options, context) };
  }
  const name = normalizeName(choice.name);
  // A near miss of a built-in name is a typo; anything else may be a package to install.
  if (!isModulePath(name) && !resolvePackage(name) && closest(name, builtinFilterNames()) !== undefined) {
    throw unknownPlugin('filter', choice.name);
  }
  // Timers and callbacks the module starts as it loads are the filter's too (cli/main.ts).
  const make = await filterScope.run(name, () => importUserFilter(name, choice.options));
  return { name, create: (context) => make(context) };
}

function builtinFilterNames(): string[] {
  return registry.filter((e) => e.role === 'filter').flatMap((e) => [e.name, ...(e.aliases ?? [])]);
}

export interface Pipeline {
  chain: Chain;
  input: Input;
  run(): Promise<void>;
}

/** `output` taking error records encoded by `encoder` (JSON when it cannot encode one). */
function encodedErrors(output: Output, encoder: Codec): Output {
  const encode = (record: Message): Frame => {
    try {
      const frame = encoder.encode(record);
      if (typeof frame === 'string' || Buffer.isBuffer(frame)) return frame;
    } catch {
      // A record is plain data; an encoder that refuses one should not lose it.
    }
    return JSON.stringify(record);
  };
  return {
    write: (_json, records) => output.write(records.map(encode), records),
    settled: output.settled && (() => output.settled!()),
    close: () => output.close(),
  };
}

/** Resolves and validates everything first, so a usage error starts nothing; then creates output, filters and input. */
export async function build(settings: Settings, clock?: Clock): Promise<Pipeline> {
  const input = await prepare('input', 'input', settings.input);
  const output = await prepare('output', 'output', settings.output);
  const decoder = await prepare('codec', 'decoder', settings.decoder);
  const encoder = await prepare('codec', 'encoder', settings.encoder);
  const errors = await prepare('output', 'error', settings.error);
  const errorEncoder = await prepare('codec', 'error_encoder', settings.errorEncoder);
  const filters: FilterMaker[] = [];
  for (const choice of settings.filters) filters.push(await prepareFilter(choice));

  const errorOutput = await errors.plugin.create(errors.options, {
    // Errors of the error output have nowhere else to go; they must never loop back.
    reportError: (record) => process.stderr.write(JSON.stringify(record) + '\n'),
    warn: (line) => process.stderr.write(`${PROGRAM}: ${line}\n`),
    destinationClosed: () => undefined,
    // It keeps taking records until the very end, stop or not.
    stopping: new AbortController().signal,
  });
  const chain = await Chain.build({
    decoder: await decoder.plugin.create(decoder.options, {}),
    encoder: await encoder.plugin.create(encoder.options, {}),
    // The chain writes records as JSON; another error encoder writes them its way.
    errorOutput: errorEncoder.name === 'JSON' ? errorOutput : encodedErrors(errorOutput, await errorEncoder.plugin.create(errorEncoder.options, {})),
    output: (context) => output.plugin.create(output.options, context),
    filters,
    clock,
    codec: loadCodec,
    names: { encoder: encoder.name, output: output.name },
  });
  const inputInstance = await input.plugin.create(input.options, chain.inputContext());
  return { chain, input: inputInstance, run: () => chain.run(inputInstance) };
}
