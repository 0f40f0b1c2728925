import { maxLineLengthOption } from '../core/common-options.js';
import { defineInput } from '../core/plugin.js';
import { LineFramer } from '../io/line-framer.js';
import { readDescriptor } from '../io/reader.js';

export default defineInput({
  summary: 'Read one message per line from standard input, until end of file.',
  description: 'LF ends a line and a CR before it is removed; a last line without LF still counts; empty lines are skipped.',
  examples: ["tail -F app.log | message-passing --decoder Null --output ZeroMQ --output_options '{connect: \"tcp://logs:5552\"}'"],
  options: { max_line_length: maxLineLengthOption },
  create: (options, context) => ({
    run: () =>
      readDescriptor(0, new LineFramer(context.sink({ source: 'stdin' }), options.max_line_length), context.stopping, () => process.stdin),
  }),
});
