import { defineFilter, one } from '../core/plugin.js';

export default defineFilter({
  summary: 'Pass every message on unchanged.',
  examples: ['message-passing --filter Null'],
  options: {},
  create: () => ({ filter: one }),
});
