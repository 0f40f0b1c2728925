import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { FilePattern, Follower, cannotRead, errorCode, hasWildcard, originOf } from '../io/follow.js';
import { RuntimeError } from '../core/errors.js';
import { LineFramer, maxLineLengthOption, readDescriptor } from '../io/line-framer.js';
import type { Input, InputContext } from '../core/plugin.js';
import { defineInput } from '../core/plugin.js';

interface FileInputOptions {
  filename: string;
  follow: boolean;
  from: 'beginning' | 'end';
  poll_interval: number;
  max_line_length: number;
  origin: string | undefined;
}

/** The File input; FileTail is the same with `follow` on by default. */
export function fileInput(followByDefault: boolean) {
  return defineInput({
    summary: followByDefault
      ? 'Follow a file as it grows, like tail -F (File with follow: true).'
      : 'Read lines from a file, or follow it as it grows like tail -F (follow: true).',
    description:
      'Each line is one frame (LF ends a line, a CR before it is removed, a last line without LF still ' +
      'counts; empty lines are skipped). Without follow, the input ends at the end of the file. With ' +
      'follow, it behaves like tail -F: appended lines are read as they come; when the file is renamed ' +
      'away (log rotation), the rest of the old file is read, then the new file from its start; when it ' +
      'is truncated (copytruncate), reading starts again from the beginning; a file that does not exist ' +
      'yet is waited for; a last line without LF is held until its LF arrives. `filename` may hold the ' +
      'wildcards * and ? in its last part only (/var/log/app/*.log, not /var/log/*/app.log); every ' +
      'matching file is read, and with follow so are files that appear later. Error records name ' +
      'their origin as file:PATH:LINE.',
    examples: [
      `message-passing --input File --input_options '{filename: "events.ndjson"}'`,
      `message-passing --input File --input_options '{filename: "/var/log/app/*.log", follow: true, from: "end"}' --decoder Null`,
      `message-passing --input FileTail --input_options '{filename: "/var/log/app.log"}'`,
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
          'Where to start in the files that exist when following starts; files that appear later are read from their start.',
      },
      poll_interval: {
        type: 'integer',
        min: 10,
        default: 250,
        description:
          'With follow, how often (milliseconds) to look at the file when no change notice came (notices can be missed).',
      },
      max_line_length: maxLineLengthOption,
      origin: {
        type: 'string',
        description:
          'Name of a field to add to each message (when it is a JSON object) holding where it was read: {file, line}. Useful to assemble multi-line records later.',
        example: 'origin',
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

  constructor(
    private readonly options: FileInputOptions,
    private readonly context: InputContext,
  ) {
    this.pattern = new FilePattern(options.filename);
  }

  run(): Promise<void> {
    if (this.options.follow) {
      return new Follower(
        {
          pattern: this.pattern,
          fromEnd: this.options.from === 'end',
          pollInterval: this.options.poll_interval,
          maxLineLength: this.options.max_line_length,
          origin: this.options.origin,
        },
        this.context,
      ).run();
    }
    return this.readAll();
  }

  /** Without follow: every matching file once, in name order, then the input ends. */
  private async readAll(): Promise<void> {
    const paths = await this.pattern.list().catch((error: unknown) => {
      throw cannotRead(this.pattern.directory, error);
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
    const hint = this.pattern.isPattern ? '' : ' (check the path, or use follow: true to wait for it)';
    const handle = await open(path, 'r').catch((error: unknown) => {
      throw cannotRead(path, error, errorHint(error, hint));
    });
    try {
      const framer = new LineFramer(this.context, `file:${path}`, this.options.max_line_length, originOf(this.options.origin, path));
      // The reader STDIN uses: one reused buffer for files, a stream for pipes and devices (/dev/stdin).
      await readDescriptor(handle.fd, framer, this.context.stopping, () =>
        createReadStream('', { fd: handle.fd, autoClose: false, highWaterMark: 256 << 10 }),
      ).catch((error: unknown) => {
        throw cannotRead(path, error);
      });
    } finally {
      await handle.close().catch(() => {});
    }
  }
}

function errorHint(error: unknown, hint: string): string {
  return errorCode(error) === 'ENOENT' ? hint : '';
}
