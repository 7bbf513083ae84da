#!/usr/bin/env node
// Runs the built CLI when dist/ exists (an installed package), else the TypeScript source via tsx.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const built = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
if (existsSync(built)) {
  await import(pathToFileURL(built).href);
} else {
  await import('tsx/esm');
  await import(new URL('../src/cli/main.ts', import.meta.url).href);
}
