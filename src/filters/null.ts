import { defineFilter } from '../plugin.js';

export default defineFilter({
  summary: 'Pass every message on unchanged.',
  options: {},
  create: () => ({ filter: (message) => message }),
});
