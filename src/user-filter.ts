import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, UsageError } from './errors.js';
import type { Filter, FilterContext } from './plugin.js';

/** A NAME with a slash or a JavaScript ending is a file path; anything else a package. */
export function isModulePath(name: string): boolean {
  return /[/\\]/.test(name) || /\.[cm]?js$/.test(name);
}

/** Whether an npm package of that name can be resolved from the current folder. */
export function resolvePackage(name: string): string | undefined {
  try {
    return createRequire(resolve('package.json')).resolve(name);
  } catch {
    return undefined;
  }
}

type Exports = Record<string, unknown>;

/**
 * Imports a user filter module (CommonJS or ES) and returns a maker that adapts
 * whichever shape it exports: a plain function, a class, an object with
 * filter(), or create(options).
 */
export async function importUserFilter(name: string): Promise<(options: Record<string, unknown>, context: FilterContext) => Promise<Filter>> {
  let location: string;
  if (isModulePath(name)) {
    const path = resolve(name);
    if (!existsSync(path)) throw new UsageError(`filter module ${name} not found (looked for ${path})`);
    location = pathToFileURL(path).href;
  } else {
    const path = resolvePackage(name);
    if (!path) throw new UsageError(`filter '${name}' is neither a built-in filter nor an installed npm package (see --list, or give a path like ./${name}.js)`);
    location = pathToFileURL(path).href;
  }
  let exported: Exports;
  try {
    exported = (await import(location)) as Exports;
  } catch (error) {
    throw new UsageError(`cannot load filter ${name}: ${describe(error).split('\n')[0]}`);
  }
  const main = exported.default ?? exported;
  if (typeof main !== 'function' && !isObject(main)) throw shapeError(name, main);
  return async (options, context) => {
    const made = await adapt(name, exported, options, context);
    if (typeof made?.filter !== 'function') throw shapeError(name, made);
    return made;
  };
}

async function adapt(name: string, exported: Exports, options: Record<string, unknown>, context: FilterContext): Promise<Filter> {
  // CommonJS arrives as { default: module.exports }; a transpiled ES module may nest one more default.
  let main: unknown = exported.default ?? exported;
  if (isObject(main) && !('filter' in main) && !('create' in main) && 'default' in main) main = main.default;
  const create = exported.create ?? (isObject(main) ? main.create : undefined);
  if (typeof create === 'function' && !(isObject(main) && typeof main.filter === 'function')) {
    return (await (create as (o: unknown, c: FilterContext) => unknown)(options, context)) as Filter;
  }
  if (typeof main === 'function') {
    if (/^class[\s{]/.test(Function.prototype.toString.call(main))) {
      const FilterClass = main as new (o: unknown, c: FilterContext) => Filter;
      const instance = new FilterClass(options, context);
      return bindMethods(instance);
    }
    const fn = main as (message: unknown, o: unknown) => unknown;
    return { filter: (message) => fn(message, options) };
  }
  if (isObject(main)) return bindMethods(main as unknown as Filter);
  throw shapeError(name, main);
}

function bindMethods(target: Filter): Filter {
  return {
    filter: target.filter?.bind(target),
    flush: target.flush?.bind(target),
    close: target.close?.bind(target),
  };
}

function isObject(value: unknown): value is Exports {
  return typeof value === 'object' && value !== null;
}

function shapeError(name: string, got: unknown): UsageError {
  const what = got === null ? 'null' : typeof got;
  return new UsageError(
    `filter ${name} must export a function, a class, an object with filter(message), or create(options); it exports ${what === 'object' ? 'an object without filter()' : what}`,
  );
}
