import { defineOutput } from '../core/plugin.js';
import { descriptorOutput } from './stdout.js';

export default defineOutput({
  summary: 'Write one message per line on standard error (the default error output).',
  examples: ['message-passing --output STDERR', "message-passing --error STDERR"],
  options: {},
  create: (_options, context) => descriptorOutput(2, 'standard error', context, () => process.stderr),
});
