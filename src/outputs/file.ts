import { createWriteStream } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { RuntimeError, describe, frameCopy } from '../core/errors.js';
import type { Frame, Message, Output, OutputContext } from '../core/plugin.js';
import { defineOutput } from '../core/plugin.js';
import { parseRotation, Rotation, type RotatedFile } from '../common/rotation.js';
import { errorCode, systemReason } from '../io/system-errors.js';
import { asLines, DescriptorWriter } from '../io/writer.js';

interface FileOutputOptions {
  filename: string;
  append: boolean;
  mkdir: boolean;
  max_open_files: number;
  rotate: unknown;
  keep: number;
  compress: boolean;
}

export default defineOutput({
  summary: 'Append each message as a line to a file; the name may come from the message (%{field}).',
  description:
    'Writes one line per message. On SIGHUP the file is closed and opened again, so logrotate can move it ' +
    'away (mv, then kill -HUP) without losing a line. `filename` may hold %{field} placeholders, replaced ' +
    "by that field of each message (a dotted name such as %{host.name} reaches into objects); a message " +
    'without the field, or whose value is not a plain name (empty, "." or "..", or holding "/"), goes to the ' +
    'error output. At most max_open_files files stay open; the least recently used is closed first. ' +
    'Writes are batched and awaited, so a slow disk slows the input.',
  examples: [
    `message-passing --output File --output_options '{filename: "out.ndjson"}'`,
    `message-passing --input PythonLogging --output File --output_options '{filename: "logs/%{name}.log", mkdir: true, rotate: {max_bytes: "10MiB"}, keep: 5, compress: true}'`,
    `message-passing --input ZeroMQ --input_options '{socket_bind: "tcp://*:5552"}' --output File --output_options '{filename: "logs/%{host}.log", mkdir: true}'`,
  ],
  options: {
    filename: {
      type: 'string',
      required: true,
      description: 'The file to write; %{field} is replaced by that field of each message.',
      example: 'logs/%{host}.log',
    },
    append: {
      type: 'boolean',
      default: true,
      description: 'Keep what the file holds and add to it; false empties it when it is first opened.',
    },
    mkdir: {
      type: 'boolean',
      default: false,
      description: 'Create missing parent folders.',
    },
    max_open_files: {
      type: 'integer',
      min: 1,
      default: 64,
      description: 'With placeholders, how many files may stay open at once.',
    },
    rotate: {
      type: 'any',
      description:
        'Start a new file, as Python\'s RotatingFileHandler and TimedRotatingFileHandler do: {max_bytes: "10MiB"} before a file would grow past ' +
        'that size (old files become NAME.1, NAME.2 ...), or {when: "midnight"} or {when: "1h"} (any duration) at the start of each period of local ' +
        'time, by arrival (old files are named after their period, NAME.2024-05-01 or NAME.2024-05-01_13). Each file of a %{field} name rotates on its ' +
        'own. A rotation falls between two lines: no line is lost or cut.',
      example: '{max_bytes: "10MiB"}',
    },
    keep: {
      type: 'integer',
      min: 1,
      default: 7,
      description: 'With rotate: how many old files of each name to keep; older ones are deleted.',
    },
    compress: {
      type: 'boolean',
      default: false,
      description: 'With rotate: gzip each old file (NAME.1.gz), in the background.',
    },
  },
  check: (o) => {
    try {
      parseTemplate(o.filename);
      if (o.rotate !== undefined) parseRotation(o.rotate, o.keep, o.compress);
    } catch (error) {
      return describe(error);
    }
    return undefined;
  },
  create: async (o, context): Promise<Output> => {
    const output = new FileOutput(o, context);
    await output.start();
    return {
      // Lines may pass as bytes only when they all go to one file.
      passThrough: output.template.fields.length === 0 ? 'lines' : undefined,
      write: (f, m) => output.write(f, m),
      writeLines: (bytes) => output.writeLines(bytes),
      settled: () => output.settled(),
      close: () => output.close(),
    };
  },
});

/** `logs/%{host}.log` as literal text and field names, alternating: text, field, text, ... */
interface Template {
  texts: string[];
  fields: string[];
}

function parseTemplate(filename: string): Template {
  const texts: string[] = [];
  const fields: string[] = [];
  let rest = filename;
  for (let at = rest.indexOf('%{'); at >= 0; at = rest.indexOf('%{')) {
    const end = rest.indexOf('}', at);
    if (end < 0) throw new Error(`filename: '%{' without a closing '}' in ${filename}`);
    const field = rest.slice(at + 2, end);
    if (field === '') throw new Error(`filename: empty placeholder %{} in ${filename}`);
    texts.push(rest.slice(0, at));
    fields.push(field);
    rest = rest.slice(end + 1);
  }
  texts.push(rest);
  return { texts, fields };
}

/** The field's value as a piece of a file name, or why it cannot be one. */
function fieldValue(message: Message, field: string): { value: string } | { problem: string } {
  let value: unknown = message;
  const steps = typeof message === 'object' && message !== null && field in message ? [field] : field.split('.');
  for (const step of steps) {
    value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[step] : undefined;
  }
  if (value === undefined || value === null) return { problem: 'missing' };
  if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
    return { problem: 'not a string or a number' };
  }
  const text = String(value);
  if (text === '' || text === '.' || text === '..' || text.includes('/') || text.includes('\0')) {
    return { problem: `${JSON.stringify(text.slice(0, 80))} is not usable in a file name` };
  }
  return { value: text };
}

interface OpenFile {
  handle: FileHandle;
  writer: DescriptorWriter;
}

class FileOutput {
  readonly template: Template;
  /** Open files, least recently used first. */
  private readonly files = new Map<string, OpenFile>();
  /** Paths already emptied in this run (append: false empties a file once, not at every reopen). */
  private readonly emptied = new Set<string>();
  /** Serializes writes, reopening and closing. */
  private lock: Promise<void> = Promise.resolve();
  /** A failed reopen (SIGHUP): the next call reports it. */
  private failure: unknown;
  private readonly rotation: Rotation | undefined;
  private readonly onHangup = () => {
    void this.exclusive(() => this.reopenAll()).catch((error: unknown) => {
      this.failure ??= error;
    });
  };

  constructor(
    private readonly options: FileOutputOptions,
    private readonly context: OutputContext,
  ) {
    this.template = parseTemplate(options.filename);
    if (options.rotate !== undefined) this.rotation = new Rotation(parseRotation(options.rotate, options.keep, options.compress), (line) => context.warn(line));
  }

  /** A single file is opened now, so a path that cannot be written fails before anything runs. */
  async start(): Promise<void> {
    if (this.template.fields.length === 0) await this.acquire(this.options.filename);
    process.on('SIGHUP', this.onHangup);
  }

  write(frames: readonly Frame[], messages: readonly Message[]): Promise<void> {
    return this.exclusive(async () => {
      this.throwFailure();
      if (this.template.fields.length === 0) {
        if (frames.length > 0) await this.send(this.options.filename, asLines(frames), false);
        return;
      }
      for (const [path, lines] of this.groupByPath(frames, messages)) {
        try {
          await this.acquire(path);
        } catch (error) {
          for (const frame of lines) {
            this.context.reportError({ error: 'output', reason: describe(error), source: 'output:file', ...frameCopy(frame) });
          }
          continue;
        }
        await this.send(path, asLines(lines), false);
      }
    });
  }

  writeLines(bytes: Buffer): Promise<void> {
    return this.exclusive(() => this.send(this.options.filename, bytes, true));
  }

  /** Resolves once what was written is in the files (a FIFO's stream flushed). */
  settled(): Promise<void> {
    return this.exclusive(async () => {
      for (const [path, file] of this.files) await file.writer.flushed()?.catch((error: unknown) => this.writeFailed(path, error));
    });
  }

  close(): Promise<void> {
    process.removeListener('SIGHUP', this.onHangup);
    return this.exclusive(async () => {
      await this.closeAll();
      await this.rotation?.close();
      this.throwFailure();
    });
  }

  private groupByPath(frames: readonly Frame[], messages: readonly Message[]): Map<string, Frame[]> {
    const { texts, fields } = this.template;
    const groups = new Map<string, Frame[]>();
    for (let i = 0; i < frames.length; i++) {
      let path = texts[0]!;
      let problem: string | undefined;
      for (let f = 0; f < fields.length; f++) {
        const found = fieldValue(messages[i], fields[f]!);
        if ('problem' in found) {
          problem = `field '${fields[f]}' ${found.problem} for filename ${this.options.filename}`;
          break;
        }
        path += found.value + texts[f + 1]!;
      }
      if (problem !== undefined) {
        this.context.reportError({ error: 'output', reason: problem, source: 'output:file', ...frameCopy(frames[i]!) });
        continue;
      }
      const group = groups.get(path);
      if (group) group.push(frames[i]!);
      else groups.set(path, [frames[i]!]);
    }
    return groups;
  }

  /** `borrowed`: the reader reuses `data` once this resolves (see FrameSink.lines). */
  private async send(path: string, data: string | Buffer, borrowed: boolean): Promise<void> {
    if (!this.rotation) return this.append(path, data, borrowed);
    const file: RotatedFile = {
      open: async (at) => {
        const info = await (await this.acquire(at)).handle.stat();
        return { size: info.size, mtimeMs: info.mtimeMs };
      },
      write: (at, bytes) => this.append(at, bytes, borrowed),
      close: async (at) => {
        const open = this.files.get(at);
        if (!open) return;
        this.files.delete(at);
        await closeFile(open);
      },
    };
    return this.rotation.write(path, data, file);
  }

  private async append(path: string, data: string | Buffer, borrowed: boolean): Promise<void> {
    const file = await this.acquire(path);
    try {
      await file.writer.write(data, borrowed);
    } catch (error) {
      this.writeFailed(path, error);
    }
  }

  private writeFailed(path: string, error: unknown): never {
    throw new RuntimeError(`File output: ${describe(error).startsWith('cannot write') ? describe(error) : `cannot write to ${path}: ${systemReason(error)}`}`);
  }

  /** The open file for `path`, opened (and the least recently used one closed) when needed. */
  private async acquire(path: string): Promise<OpenFile> {
    const known = this.files.get(path);
    if (known) {
      if (this.template.fields.length > 0) {
        this.files.delete(path);
        this.files.set(path, known);
      }
      return known;
    }
    while (this.files.size >= this.options.max_open_files) {
      const [oldestPath, oldest] = this.files.entries().next().value as [string, OpenFile];
      this.files.delete(oldestPath);
      await closeFile(oldest);
    }
    const handle = await this.openPath(path);
    const writer = new DescriptorWriter(handle.fd, path, () => createWriteStream('', { fd: handle.fd, autoClose: false }), () => {
      this.failure ??= new RuntimeError(`File output: ${path} was closed by its reader`);
    });
    const file: OpenFile = { handle, writer };
    this.files.set(path, file);
    return file;
  }

  private async openPath(path: string): Promise<FileHandle> {
    // Empty the file the first time only: after SIGHUP or an LRU close, reopening must not lose lines.
    const flags = this.options.append || this.emptied.has(path) ? 'a' : 'w';
    try {
      const handle = await this.openCreatingFolders(path, flags);
      this.emptied.add(path);
      return handle;
    } catch (error) {
      const folderMissing = errorCode(error) === 'ENOENT' && !this.options.mkdir;
      throw new RuntimeError(
        `File output: cannot open ${path} for writing: ` +
          (folderMissing ? `its folder ${dirname(path)} does not exist (create it, or set mkdir: true)` : systemReason(error)),
      );
    }
  }

  private async openCreatingFolders(path: string, flags: string): Promise<FileHandle> {
    try {
      return await open(path, flags, 0o666);
    } catch (error) {
      if (errorCode(error) !== 'ENOENT' || !this.options.mkdir) throw error;
      await mkdir(dirname(path), { recursive: true });
      return await open(path, flags, 0o666);
    }
  }

  /** SIGHUP: close every file; the next write (or now, for a single file) opens the path again. */
  private async reopenAll(): Promise<void> {
    await this.closeAll();
    this.rotation?.forget();
    if (this.template.fields.length === 0) await this.acquire(this.options.filename).catch(() => {});
  }

  private async closeAll(): Promise<void> {
    const files = [...this.files.values()];
    this.files.clear();
    for (const file of files) await closeFile(file);
  }

  private exclusive<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.lock.then(operation);
    this.lock = result.then(
      () => {},
      () => {},
    );
    return result;
  }

  private throwFailure(): void {
    if (this.failure !== undefined) throw this.failure;
  }
}

async function closeFile(file: OpenFile): Promise<void> {
  await file.writer.close().catch(() => {});
  await file.handle.close().catch(() => {});
}
