/** How to start our own Node programs inside a namespace: built JS when present, else TS through tsx. */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** [command, ...args] that runs the module `rel` (e.g. "cli/main") of this package. */
export function nodeProgram(rel: string): [string, string[]] {
  const here = new URL('.', import.meta.url);
  const asJs = fileURLToPath(new URL(`../${rel}.js`, here));
  if (import.meta.url.endsWith('.js') && existsSync(asJs)) return [process.execPath, [asJs]];
  const asTs = fileURLToPath(new URL(`../${rel}.ts`, here));
  return [process.execPath, ['--import', import.meta.resolve('tsx'), asTs]];
}
