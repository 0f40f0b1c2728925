import { defineOutput } from '../core/plugin.js';
import { descriptorOutput } from '../io/writer.js';

export default defineOutput({
  summary: 'Write one message per line on standard output.',
  description: 'A closed pipe (as with `| head`) ends the program quietly with status 0.',
  examples: ["message-passing --input STDIN --output STDOUT", "message-passing --decoder Null --encoder Null < app.log | head"],
  options: {},
  create: (_options, context) => descriptorOutput(1, 'standard output', context, () => process.stdout),
});
