import { UsageError } from '../core/errors.js';
import { closest, validateOptions } from '../core/options.js';
import type { AnyPlugin, Codec, Role } from '../core/plugin.js';

export interface RegistryEntry {
  role: Role;
  /** Canonical name, as --list shows it; matched case-insensitively. */
  name: string;
  aliases?: readonly string[];
  /** Loaded only when used, so heavy modules (zeromq) cost nothing otherwise. */
  load: () => Promise<{ default: AnyPlugin }>;
}

/** Every built-in plugin: one line each. */
export const registry: readonly RegistryEntry[] = [
  { role: 'input', name: 'STDIN', load: () => import('../inputs/stdin.js') },
  { role: 'input', name: 'File', load: () => import('../inputs/file.js') },
  { role: 'input', name: 'FileTail', load: () => import('../inputs/filetail.js') },
  { role: 'input', name: 'ZeroMQ', aliases: ['zmq'], load: () => import('../inputs/zeromq.js') },
  { role: 'input', name: 'Redis', load: () => import('../inputs/redis.js') },
  { role: 'input', name: 'PythonLogging', load: () => import('../inputs/pythonlogging.js') },
  { role: 'input', name: 'TCP', load: () => import('../inputs/tcp.js') },
  { role: 'input', name: 'UDP', aliases: ['Socket::UDP'], load: () => import('../inputs/udp.js') },
  { role: 'output', name: 'STDOUT', load: () => import('../outputs/stdout.js') },
  { role: 'output', name: 'STDERR', load: () => import('../outputs/stderr.js') },
  { role: 'output', name: 'File', load: () => import('../outputs/file.js') },
  { role: 'output', name: 'ZeroMQ', aliases: ['zmq'], load: () => import('../outputs/zeromq.js') },
  { role: 'output', name: 'Redis', load: () => import('../outputs/redis.js') },
  { role: 'output', name: 'Postgres', aliases: ['PostgreSQL'], load: () => import('../outputs/postgres.js') },
  { role: 'output', name: 'Null', load: () => import('../outputs/null.js') },
  { role: 'output', name: 'PythonLogging', load: () => import('../outputs/pythonlogging.js') },
  { role: 'output', name: 'TCP', load: () => import('../outputs/tcp.js') },
  { role: 'output', name: 'UDP', aliases: ['Socket::UDP'], load: () => import('../outputs/udp.js') },
  { role: 'filter', name: 'Null', load: () => import('../filters/null.js') },
  { role: 'filter', name: 'Decoder', load: () => import('../filters/decoder.js') },
  { role: 'filter', name: 'Encoder', load: () => import('../filters/encoder.js') },
  { role: 'filter', name: 'Parse', aliases: ['Regex'], load: () => import('../filters/parse.js') },
  { role: 'filter', name: 'Multiline', load: () => import('../filters/multiline.js') },
  { role: 'filter', name: 'Key', load: () => import('../filters/key.js') },
  { role: 'filter', name: 'All', load: () => import('../filters/all.js') },
  { role: 'filter', name: 'Delay', load: () => import('../filters/delay.js') },
  { role: 'filter', name: 'Dedupe', load: () => import('../filters/dedupe.js') },
  { role: 'filter', name: 'Threshold', load: () => import('../filters/threshold.js') },
  { role: 'filter', name: 'Inhibit', load: () => import('../filters/inhibit.js') },
  { role: 'codec', name: 'JSON', load: () => import('../codecs/json.js') },
  { role: 'codec', name: 'Null', aliases: ['raw'], load: () => import('../codecs/null.js') },
  { role: 'codec', name: 'Pickle', load: () => import('../codecs/pickle.js') },
];

/** Perl writes `+Full::Name` for a name that is not expanded; for ours the `+` means nothing. */
export function normalizeName(name: string): string {
  return name.startsWith('+') ? name.slice(1) : name;
}

export function findEntry(role: Role, name: string): RegistryEntry | undefined {
  const wanted = normalizeName(name).toLowerCase();
  return registry.find(
    (e) => e.role === role && (e.name.toLowerCase() === wanted || e.aliases?.some((a) => a.toLowerCase() === wanted)),
  );
}

const roleWord: Record<Role, string> = { input: 'input', output: 'output', filter: 'filter', codec: 'decoder/encoder' };

export function unknownPlugin(role: Role, name: string): UsageError {
  const names = registry.filter((e) => e.role === role).flatMap((e) => [e.name, ...(e.aliases ?? [])]);
  const hint = closest(normalizeName(name), names);
  return new UsageError(
    `unknown ${roleWord[role]} '${name}'` +
      (hint ? ` (did you mean '${hint}'?)` : ` (choose from ${names.join(', ')}; see --list)`),
  );
}

export async function loadPlugin<R extends Role>(role: R, name: string): Promise<{ entry: RegistryEntry; plugin: AnyPlugin<R> }> {
  const entry = findEntry(role, name);
  if (!entry) throw unknownPlugin(role, name);
  const { default: plugin } = await entry.load();
  return { entry, plugin: plugin as AnyPlugin<R> };
}

/** A codec with its default options, for filters that decode or encode mid-chain. */
export async function loadCodec(name: string): Promise<Codec> {
  const { plugin } = await loadPlugin('codec', name);
  return plugin.create(validateOptions(`codec ${name}`, plugin.options, {}), {});
}
