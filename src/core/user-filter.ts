import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, UsageError } from './errors.js';
import { validateOptions, type OptionsSchema } from './options.js';
import type { Filter, FilterContext } from './plugin.js';

/** A NAME with a slash or a JavaScript ending is a file path; anything else a package. */
export function isModulePath(name: string): boolean {
  return /[/\\]/.test(name) || /\.[cm]?js$/.test(name);
}

/** `@scope/name` has a slash but names a package when no such file exists. */
function isScopedPackage(name: string): boolean {
  return /^@[^/\\]+\/[^/\\]/.test(name) && !existsSync(resolve(name));
}

/** Whether an npm package of that name can be resolved from the current folder; its main file if so. */
export function resolvePackage(name: string): string | undefined {
  try {
    return createRequire(resolve('package.json')).resolve(name);
  } catch {
    // require.resolve misses packages that export only an `import` condition (ES-only).
    return resolveImportOnly(name);
  }
}

/** Finds node_modules/NAME from the current folder upwards and follows its `exports` as `import` would. */
function resolveImportOnly(name: string): string | undefined {
  const match = /^((?:@[^/]+\/)?[^/@][^/]*)(\/.+)?$/.exec(name);
  if (!match) return undefined;
  const [, packageName, subpath] = match;
  for (let dir = process.cwd(); ; dir = dirname(dir)) {
    const root = join(dir, 'node_modules', packageName!);
    const manifestPath = join(root, 'package.json');
    if (existsSync(manifestPath)) {
      let manifest: { exports?: unknown; main?: unknown };
      try {
        manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as typeof manifest;
      } catch {
        return undefined;
      }
      const target =
        manifest.exports !== undefined
          ? exportTarget(manifest.exports, subpath ? `.${subpath}` : '.')
          : subpath ? subpath.slice(1) : typeof manifest.main === 'string' ? manifest.main : 'index.js';
      const file = target === undefined ? undefined : join(root, target);
      return file !== undefined && existsSync(file) ? file : undefined;
    }
    if (dirname(dir) === dir) return undefined;
  }
}

function exportTarget(exports: unknown, subpath: string): string | undefined {
  if (typeof exports === 'string' || Array.isArray(exports)) return subpath === '.' ? conditionTarget(exports) : undefined;
  if (typeof exports !== 'object' || exports === null) return undefined;
  const map = exports as Record<string, unknown>;
  const keyed = Object.keys(map).some((key) => key.startsWith('.'));
  if (keyed) return conditionTarget(map[subpath]);
  return subpath === '.' ? conditionTarget(map) : undefined;
}

/** The target an ES import in Node picks: `import`, then `node`, then `default`. */
function conditionTarget(target: unknown): string | undefined {
  if (typeof target === 'string') return target;
  if (Array.isArray(target)) {
    for (const candidate of target) {
      const found = conditionTarget(candidate);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (typeof target !== 'object' || target === null) return undefined;
  const conditions = target as Record<string, unknown>;
  for (const condition of ['import', 'node', 'default']) {
    if (condition in conditions) {
      const found = conditionTarget(conditions[condition]);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

type Exports = Record<string, unknown>;

/**
 * Imports a user filter module (CommonJS or ES) and returns a maker that adapts
 * whichever shape it exports: a plain function, a class, an object with
 * filter(), or create(options).
 */
export async function importUserFilter(
  name: string,
  given: Record<string, unknown>,
): Promise<(context: FilterContext) => Promise<Filter>> {
  let location: string;
  if (isModulePath(name) && !isScopedPackage(name)) {
    const path = resolve(name);
    if (!existsSync(path)) throw new UsageError(`filter module ${name} not found (looked for ${path})`);
    location = pathToFileURL(path).href;
  } else {
    const path = resolvePackage(name);
    if (!path) {
      throw new UsageError(
        `filter '${name}' is neither a built-in filter (see --list) nor an npm package installed here (run: npm install ${name}; or give a file path like ./${name.replace(/^@[^/]+\//, '')}.js)`,
      );
    }
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
  // A module may declare its options as a built-in does: they are then checked the same way, defaults applied.
  const schema = optionsSchema(exported, main);
  const options = schema ? validateOptions(`--filter ${name}`, schema, given) : given;
  return async (context) => {
    const made = await adapt(name, exported, options, context);
    if (typeof made?.filter !== 'function') throw shapeError(name, made);
    return made;
  };
}

/** A named export `options`, or an `options` property of the default export: an options schema. */
function optionsSchema(exported: Exports, main: unknown): OptionsSchema | undefined {
  const schema = exported.options ?? (isObject(main) || typeof main === 'function' ? (main as Exports).options : undefined);
  if (schema === undefined) return undefined;
  const valid =
    isObject(schema) &&
    Object.values(schema).every((spec) => isObject(spec) && typeof spec.type === 'string' && typeof spec.description === 'string');
  if (!valid) throw new UsageError('a filter module\'s `options` export must be a schema: {name: {type, description, default?, required?}}');
  return schema as unknown as OptionsSchema;
}

async function adapt(name: string, exported: Exports, options: Record<string, unknown>, context: FilterContext): Promise<Filter> {
  // CommonJS arrives as { default: module.exports }; a transpiled ES module may nest one more default.
  let main: unknown = exported.default ?? exported;
  if (isObject(main) && !('filter' in main) && !('create' in main) && 'default' in main) main = main.default;
  const create = exported.create ?? (isObject(main) ? main.create : undefined);
  if (typeof create === 'function' && !(isObject(main) && typeof main.filter === 'function')) {
    const made = await (create as (o: unknown, c: FilterContext) => unknown)(options, context);
    if (!isObject(made) || typeof made.filter !== 'function') {
      throw new UsageError(`filter ${name}: create(options) must return an object with filter(message); it returned ${describeValue(made)}`);
    }
    return made as unknown as Filter;
  }
  if (typeof main === 'function') {
    if (/^class[\s{]/.test(Function.prototype.toString.call(main))) {
      const FilterClass = main as new (o: unknown, c: FilterContext) => Filter;
      const instance = new FilterClass(options, context);
      if (typeof instance.filter !== 'function') throw new UsageError(`filter ${name}: its class has no filter(message) method`);
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

function describeValue(got: unknown): string {
  const what = got === null ? 'null' : typeof got;
  return what === 'object' ? 'an object without filter()' : what;
}

function shapeError(name: string, got: unknown): UsageError {
  return new UsageError(
    `filter ${name} must export a function, a class, an object with filter(message), or create(options); it exports ${describeValue(got)}`,
  );
}
