import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { RuntimeError, describe, frameCopy } from '../core/errors.js';
import { errorCode } from '../io/follow.js';
import type { Message, Output, OutputContext } from '../core/plugin.js';
import { defineOutput } from '../core/plugin.js';

interface FileOutputOptions {
  filename: string;
  append: boolean;
  mkdir: boolean;
  max_open_files: number;
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
  },
  check: (o) => {
    try {
      parseTemplate(o.filename);
    } catch (error) {
      return describe(error);
    }
    return undefined;
  },
  create: async (o, context): Promise<Output> => {
    const output = new FileOutput(o, context);
    await output.start();
    // The chain uses writeRaw whenever it exists, so offer it only when every line goes to one file.
    if (output.template.fields.length > 0) {
      return { write: (f, m) => output.write(f, m), close: () => output.close() };
    }
    return {
      write: (f, m) => output.write(f, m),
      writeRaw: (bytes) => output.writeRaw(bytes),
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
  /** The write in flight: the next one to this file waits for it (one in flight keeps order and memory bounded). */
  writing: Promise<void> | undefined;
}

class FileOutput {
  readonly template: Template;
  /** Open files, least recently used first. */
  private readonly files = new Map<string, OpenFile>();
  /** Paths already emptied in this run (append: false empties a file once, not at every reopen). */
  private readonly emptied = new Set<string>();
  /** Serializes writes, reopening and closing; a write holds it only until its data is handed to the file. */
  private lock: Promise<void> = Promise.resolve();
  /** A failed write: the next call reports it. */
  private failure: unknown;
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
  }

  /** A single file is opened now, so a path that cannot be written fails before anything runs. */
  async start(): Promise<void> {
    if (this.template.fields.length === 0) await this.acquire(this.options.filename);
    process.on('SIGHUP', this.onHangup);
  }

  write(frames: string[], messages: readonly Message[]): Promise<void> {
    return this.exclusive(async () => {
      this.throwFailure();
      if (this.template.fields.length === 0) {
        if (frames.length > 0) await this.send(this.options.filename, frames.join('\n') + '\n');
        return;
      }
      for (const [path, lines] of this.groupByPath(frames, messages)) {
        let file: OpenFile;
        try {
          file = await this.acquire(path);
        } catch (error) {
          for (const frame of lines) {
            this.context.reportError({ error: 'output', reason: describe(error), source: 'output:file', ...frameCopy(frame) });
          }
          continue;
        }
        await this.startWrite(file, path, Buffer.from(lines.join('\n') + '\n'));
      }
    });
  }

  writeRaw(bytes: Buffer): Promise<void> {
    return this.exclusive(async () => {
      this.throwFailure();
      if (bytes.length === 0) return;
      // The input reads into `bytes` again once this resolves: wait until they are written.
      const file = await this.acquire(this.options.filename);
      await this.startWrite(file, this.options.filename, bytes);
      await file.writing;
      this.throwFailure();
    });
  }

  close(): Promise<void> {
    process.removeListener('SIGHUP', this.onHangup);
    return this.exclusive(async () => {
      await this.closeAll();
      this.throwFailure();
    });
  }

  private groupByPath(frames: string[], messages: readonly Message[]): Map<string, string[]> {
    const { texts, fields } = this.template;
    const groups = new Map<string, string[]>();
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

  private async send(path: string, text: string): Promise<void> {
    const file = await this.acquire(path);
    await this.startWrite(file, path, Buffer.from(text));
  }

  /**
   * Waits for the write in flight to this file, then starts this one without
   * waiting for it (`data` must then stay untouched until `file.writing` settles).
   */
  private async startWrite(file: OpenFile, path: string, data: Buffer): Promise<void> {
    if (file.writing) await file.writing;
    this.throwFailure();
    file.writing = writeAll(file.handle, data).then(
      () => { file.writing = undefined; },
      (error: unknown) => {
        file.writing = undefined;
        this.failure ??= new RuntimeError(`File output: cannot write to ${path}: ${reasonOf(error)}`);
      },
    );
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
    const file: OpenFile = { handle: await this.openPath(path), writing: undefined };
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
          (folderMissing ? `its folder ${dirname(path)} does not exist (create it, or set mkdir: true)` : reasonOf(error)),
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
  if (file.writing) await file.writing;
  await file.handle.close().catch(() => {});
}

/** A regular file may take fewer bytes than asked: write until all are in. */
async function writeAll(handle: FileHandle, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await handle.write(data, offset, data.length - offset);
    offset += bytesWritten;
  }
}

function reasonOf(error: unknown): string {
  const reasons: Record<string, string> = {
    EACCES: 'permission denied (check its permissions and those of its folder)',
    EPERM: 'permission denied (check its permissions and those of its folder)',
    EISDIR: 'it is a folder (give a file name)',
    ENOTDIR: 'a part of the path is not a folder',
    ENOSPC: 'the disk is full',
    EROFS: 'the file system is read-only',
  };
  const code = errorCode(error);
  return (code && reasons[code]) ?? describe(error);
}
