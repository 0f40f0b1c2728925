import { fileInput } from './file.js';

/** Perl's FileTail: the File input with follow on by default. */
export default fileInput(true);
