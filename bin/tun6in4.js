#!/usr/bin/env node
// In a checkout (src/ present) runs the TypeScript source via tsx, so an old dist/ can never
// stand in for the code being edited; an installed package ships only dist/.
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/main.ts', import.meta.url);
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
} else {
  await import(new URL('../dist/cli/main.js', import.meta.url).href);
}
