import { defineFilter } from '../core/plugin.js';

export default defineFilter({
  summary: "Drop every message (Perl's Filter::All).",
  description: 'Every message is dropped on purpose and counted as dropped in --stats; flush adds nothing. Useful to test an input, or to count what it reads with --stats.',
  examples: ['message-passing --input File --input_options \'{filename: "big.ndjson"}\' --filter All --stats'],
  options: {},
  create: () => ({ filter: () => undefined }),
});
