import { createReadStream, readdirSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { maxLineLengthOption } from '../core/common-options.js';
import { describe, RuntimeError } from '../core/errors.js';
import { formatDuration } from '../core/time.js';
import type { Acknowledge, FrameBatch, Input, InputContext } from '../core/plugin.js';
import { defineInput } from '../core/plugin.js';
import { CheckpointFile, fingerprintOf, sameFile, type CheckpointEntry } from '../io/checkpoint.js';
import { FileError, FilePattern, hasWildcard } from '../io/files.js';
import { Follower, type OpenedFile } from '../io/follow.js';
import { LineFramer } from '../io/line-framer.js';
import { readDescriptor } from '../io/reader.js';
import { errorCode, systemReason } from '../io/system-errors.js';

interface FileInputOptions {
  filename: string;
  follow: boolean;
  from: 'beginning' | 'end';
  poll_interval: number;
  max_line_length: number;
  origin: string | undefined;
  checkpoint: string | undefined;
  checkpoint_interval: number;
}

/** The File input; FileTail is the same with `follow` on by default. */
export function fileInput(followByDefault: boolean) {
  return defineInput({
    summary: followByDefault
      ? 'Follow a file as it grows, like tail -F (File with follow: true).'
      : 'Read lines from a file, or follow it as it grows like tail -F (follow: true).',
    description: [
      'Each line is one frame (LF ends a line, a CR before it is removed, a last line without LF still ' +
        'counts; empty lines are skipped). Without follow, the input ends at the end of the file. With ' +
        'follow, it behaves like tail -F: appended lines are read as they come; when the file is renamed ' +
        'away (log rotation), the rest of the old file is read, then the new file from its start; when it ' +
        'is truncated (copytruncate), reading starts again from the beginning; a file that does not exist ' +
        'yet is waited for; a last line without LF is held until its LF arrives. `filename` may hold the ' +
        'wildcards * and ? in its last part only (/var/log/app/*.log, not /var/log/*/app.log); every ' +
        'matching file is read, and with follow so are files that appear later. Error records name ' +
        'their origin as file:PATH:LINE.',
      'With `checkpoint`, the position after the last line the output has taken (written, dropped by a filter, ' +
        'or sent to the error output) is saved in that file, at most every checkpoint_interval and at exit, and a ' +
        'restart resumes there: after SIGTERM every line is delivered exactly once across the two runs; after ' +
        'kill -9, at least once (lines of the last interval may come again). A file is recognised by device, inode ' +
        'and its first 256 bytes, so a rotated or replaced file is not taken for the old one; with follow, the rest ' +
        'of a checkpointed file rotated away meanwhile (in the same folder) is read first. Line numbers in error ' +
        'records count from where reading resumed.',
    ].join('\n\n'),
    examples: [
      `message-passing --input File --input_options '{filename: "events.ndjson"}'`,
      `message-passing --input File --input_options '{filename: "/var/log/app/*.log", follow: true, from: "end"}' --decoder Null`,
      `message-passing --input FileTail --input_options '{filename: "/var/log/app.log", checkpoint: "/var/lib/mp/app.pos"}'`,
    ],
    options: {
      filename: {
        type: 'string',
        required: true,
        description: 'The file to read; * and ? in the last part of the path match several files.',
        example: '/var/log/app/*.log',
      },
      follow: {
        type: 'boolean',
        default: followByDefault,
        description: 'Keep reading as the file grows, across rotation and truncation (tail -F).',
      },
      from: {
        type: 'string',
        choices: ['beginning', 'end'],
        default: 'beginning',
        description:
          'Where to start in the files that exist when following starts (a checkpoint, when it knows the file, wins); files that appear later are read from their start.',
      },
      poll_interval: {
        type: 'duration',
        min: '10ms',
        default: '250ms',
        description: 'With follow, how often to look at the file when no change notice came (notices can be missed).',
      },
      max_line_length: maxLineLengthOption,
      origin: {
        type: 'string',
        description:
          'Name of a field to add to each message (when it is a JSON object) holding where it was read: {file, line}. Useful to assemble multi-line records later.',
        example: 'origin',
      },
      checkpoint: {
        type: 'string',
        description: 'A file where the position of the last acknowledged line is saved; a restart resumes there.',
        example: '/var/lib/message-passing/app.pos',
      },
      checkpoint_interval: {
        type: 'duration',
        min: '1ms',
        default: '1s',
        description: 'With checkpoint, the longest time between two saves; it is also saved at exit.',
      },
    },
    check: (o) => {
      if (hasWildcard(dirname(o.filename))) {
        return `filename: wildcards (* ?) work in the file's own name only, not in folder names (${o.filename})`;
      }
      if (o.from === 'end' && !o.follow) return 'from: "end" needs follow: true (without follow it would read nothing)';
      return undefined;
    },
    create: (o, context): Input => new FileInput(o, context),
  });
}

export default fileInput(false);

class FileInput implements Input {
  private readonly pattern: FilePattern;
  private readonly checkpoint: Checkpointer | undefined;

  constructor(
    private readonly options: FileInputOptions,
    private readonly context: InputContext,
  ) {
    this.pattern = new FilePattern(options.filename);
    if (options.checkpoint !== undefined) this.checkpoint = new Checkpointer(options.checkpoint, options.checkpoint_interval, context);
  }

  async run(): Promise<void> {
    try {
      if (this.options.follow) await this.follow();
      else await this.readAll();
    } catch (error) {
      if (error instanceof FileError) throw new RuntimeError(`File input: ${error.message}${this.hint(error.cause)}`);
      throw error;
    }
  }

  async close(): Promise<void> {
    this.checkpoint?.close();
  }

  private follow(): Promise<void> {
    const { checkpoint } = this;
    return new Follower(
      {
        pattern: this.pattern,
        fromEnd: this.options.from === 'end',
        pollInterval: this.options.poll_interval,
        framer: (file, handle) => this.framer(file, handle.fd),
        startAt: checkpoint && (async (file, handle, size) => checkpoint.startAt(file, handle.fd, size)),
        leftovers: checkpoint && (async () => checkpoint.leftovers(this.pattern)),
        report: (path, error) =>
          this.context.reportError({
            error: 'input',
            reason: `File input: ${error.message}; trying again every ${formatDuration(this.options.poll_interval)}`,
            source: `file:${path}`,
          }),
        // With a checkpoint, a line still being written is left for the next run, which reads it whole.
        endPartialOnStop: checkpoint === undefined,
      },
      this.context.stopping,
    ).run();
  }

  private framer(file: OpenedFile, fd: number): LineFramer {
    return new LineFramer(
      this.context.sink({
        source: `file:${file.path}`,
        annotate: originOf(this.options.origin, file.path),
        acknowledge: this.checkpoint?.track(file, fd),
      }),
      this.options.max_line_length,
    );
  }

  /** Without follow: every matching file once, in name order, then the input ends. */
  private async readAll(): Promise<void> {
    const paths = await this.pattern.list().catch((error: unknown) => {
      throw new FileError(this.pattern.directory, error);
    });
    if (paths.length === 0) {
      throw new RuntimeError(
        `File input: no file matches ${this.options.filename} (check the pattern, or use follow: true to wait for one)`,
      );
    }
    for (const path of paths) {
      if (this.context.stopping.aborted) return;
      await this.readOne(path);
    }
  }

  private async readOne(path: string): Promise<void> {
    const handle = await open(path, 'r').catch((error: unknown) => {
      throw new FileError(path, error);
    });
    try {
      const info = await handle.stat();
      const file: OpenedFile = { path, dev: info.dev, ino: info.ino, base: 0 };
      if (info.isFile() && this.checkpoint) file.base = this.checkpoint.startAt(file, handle.fd, info.size) ?? 0;
      // The reader STDIN uses: one reused buffer for files, a stream for pipes and devices (/dev/stdin).
      await readDescriptor(
        handle.fd,
        this.framer(file, handle.fd),
        this.context.stopping,
        () => createReadStream('', { fd: handle.fd, autoClose: false, highWaterMark: 256 << 10 }),
        file.base,
      ).catch((error: unknown) => {
        throw new FileError(path, error);
      });
    } finally {
      await handle.close().catch(() => {});
    }
  }

  private hint(cause: unknown): string {
    return errorCode(cause) === 'ENOENT' && !this.pattern.isPattern ? ' (check the path, or use follow: true to wait for it)' : '';
  }
}

/** Where a message came from, as the `origin` option asks: `{file, line}` under that field. */
function originOf(field: string | undefined, path: string): FrameBatch['annotate'] {
  if (field === undefined) return undefined;
  return (message, line) => {
    message[field] = { file: path, line };
  };
}

/** A file being read, and how far its lines have been acknowledged. */
interface Tracked {
  file: OpenedFile;
  fingerprint: string;
  position: number;
  /** Batches handed to the chain and not yet acknowledged, in stream order. */
  waiting: Array<{ end: number; done: boolean }>;
}

/**
 * Keeps the position of each file after its last acknowledged line, in order:
 * a batch acknowledged early (one a filter let through while an earlier one is
 * still held) moves nothing until those before it are acknowledged too.
 */
class Checkpointer {
  private readonly store: CheckpointFile;
  private readonly tracked = new Map<string, Tracked>();
  private timer: NodeJS.Timeout | undefined;
  private failed = false;

  constructor(
    path: string,
    private readonly interval: number,
    private readonly context: InputContext,
  ) {
    try {
      this.store = new CheckpointFile(path);
      // A checkpoint that cannot be written must stop the program now, not after hours of reading.
      this.store.save([]);
    } catch (error) {
      throw new RuntimeError(`File input: checkpoint ${path}: ${checkpointProblem(path, error)}`);
    }
  }

  /** Where to resume `file`, when the checkpoint knows it and it is the same file. */
  startAt(file: OpenedFile, fd: number, size: number): number | undefined {
    const entry = this.store.saved.find((e) => sameFile(e, fd, file.dev, file.ino));
    // Shorter than the saved position: truncated since, so it is read again from its start.
    if (entry === undefined || entry.position > size) return undefined;
    return entry.position;
  }

  /** Checkpointed files of this pattern rotated away under another name in the same folder, with their unread rest. */
  leftovers(pattern: FilePattern): Array<{ path: string; position: number }> {
    const found: Array<{ path: string; position: number }> = [];
    for (const entry of this.store.saved) {
      if (dirname(entry.path) !== pattern.directory || !pattern.matches(basename(entry.path))) continue;
      const atName = statOrUndefined(entry.path);
      if (atName && atName.dev === entry.dev && atName.ino === entry.ino) continue;
      for (const name of readdirOrEmpty(pattern.directory)) {
        const path = join(pattern.directory, name);
        const info = statOrUndefined(path);
        if (!info || info.dev !== entry.dev || info.ino !== entry.ino || !info.isFile() || info.size <= entry.position) continue;
        found.push({ path, position: entry.position });
      }
    }
    return found;
  }

  /** What the sink calls as it hands each batch of `file` to the chain. */
  track(file: OpenedFile, fd: number): (end: number) => Acknowledge {
    const key = `${file.dev}:${file.ino}`;
    // Taken once: a file shorter than FINGERPRINT_BYTES then is known by what it held.
    const tracked: Tracked = { file, fingerprint: fingerprintOf(fd), position: file.base, waiting: [] };
    this.tracked.set(key, tracked);
    return (end) => {
      const batch = { end, done: false };
      tracked.waiting.push(batch);
      return () => {
        batch.done = true;
        while (tracked.waiting.length > 0 && tracked.waiting[0]!.done) {
          const position = tracked.file.base + tracked.waiting.shift()!.end;
          // At or below 0: a batch from before a truncation, no longer in the file.
          if (position > 0) tracked.position = position;
        }
        this.saveSoon();
      };
    };
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.save();
  }

  private saveSoon(): void {
    if (this.timer || this.failed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.save();
    }, this.interval);
    this.timer.unref();
  }

  private save(): void {
    const entries: CheckpointEntry[] = [];
    for (const tracked of this.tracked.values()) {
      const { file } = tracked;
      entries.push({ path: file.path, dev: file.dev, ino: file.ino, fingerprint: tracked.fingerprint, position: tracked.position });
    }
    try {
      this.store.save(entries);
    } catch (error) {
      if (this.failed) return;
      this.failed = true;
      this.context.warn(`File input: cannot save checkpoint ${this.store.path}: ${describe(error)}`);
    }
  }
}

function statOrUndefined(path: string) {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function readdirOrEmpty(folder: string): string[] {
  try {
    return readdirSync(folder);
  } catch {
    return [];
  }
}

/** Why a checkpoint file cannot be used, said for a checkpoint (not for a file to read). */
function checkpointProblem(path: string, error: unknown): string {
  switch (errorCode(error)) {
    case 'ENOENT':
      return `its folder ${dirname(path)} does not exist (create it first)`;
    case 'EISDIR':
      return 'it is a folder (give the name of a file in it)';
    default:
      return `${systemReason(error)} (give a file in a writable folder; delete a damaged one to start over)`;
  }
}
