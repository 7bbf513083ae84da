/**
 * The package's entry points as a TypeScript user sees them: each exported name, whether it is a
 * value, where it is declared, and its @deprecated text (read from the export specifier, as an
 * editor reads it). One compiler program for all entries, built once per test file.
 */
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/** The package's entries by the specifier a program imports them with. */
export const ENTRIES = { tun6in4: `${SRC}index.ts`, 'tun6in4/engine': `${SRC}engine-api.ts`, 'tun6in4/testing': `${SRC}testing.ts` } as const;
export type Entry = keyof typeof ENTRIES;

export interface PublicName {
  name: string;
  /** Has a run-time value (not only a type). */
  value: boolean;
  /** The file that declares it, and its name there. */
  file: string;
  original: string;
  /** The text of its @deprecated tag; null when it is not deprecated. */
  deprecated: string | null;
}

let compiled: { checker: ts.TypeChecker; modules: Record<Entry, ts.Symbol> } | undefined;
let cache: Record<Entry, PublicName[]> | undefined;

function compile(): NonNullable<typeof compiled> {
  if (compiled) return compiled;
  const program = ts.createProgram(Object.values(ENTRIES), {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    skipLibCheck: true,
    noEmit: true,
    types: ['node'],
  });
  const checker = program.getTypeChecker();
  const modules = Object.fromEntries(Object.entries(ENTRIES).map(([entry, file]) => [entry, checker.getSymbolAtLocation(program.getSourceFile(file)!)!])) as Record<Entry, ts.Symbol>;
  return (compiled = { checker, modules });
}

function deprecation(s: ts.Symbol | undefined, checker: ts.TypeChecker): string | null {
  const tag = s?.getJsDocTags(checker).find((t) => t.name === 'deprecated');
  return tag ? ts.displayPartsToString(tag.text) : null;
}

function exported(entry: Entry, name: string): ts.Symbol {
  const { checker, modules } = compile();
  const s = checker.getExportsOfModule(modules[entry]).find((e) => e.getName() === name);
  if (!s) throw new Error(`${entry} does not export ${name}`);
  return s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s;
}

export function publicNames(): Record<Entry, PublicName[]> {
  if (cache) return cache;
  const { checker, modules } = compile();
  const out = {} as Record<Entry, PublicName[]>;
  for (const entry of Object.keys(ENTRIES) as Entry[]) {
    out[entry] = checker.getExportsOfModule(modules[entry]).map((s) => {
      const target = s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s;
      return {
        name: s.getName(),
        value: (target.flags & ts.SymbolFlags.Value) !== 0,
        file: target.declarations![0].getSourceFile().fileName,
        original: target.getName(),
        deprecated: deprecation(s, checker),
      };
    });
  }
  return (cache = out);
}

/** The @deprecated text of a member of an exported class's instances. */
export function memberDeprecation(entry: Entry, cls: string, member: string): string | null {
  const { checker } = compile();
  return deprecation(checker.getDeclaredTypeOfSymbol(exported(entry, cls)).getProperty(member), checker);
}

/** The @deprecated text of a key of an exported function's first argument, and of a key of what it resolves to. */
export function callDeprecation(entry: Entry, fn: string, where: 'argument' | 'result', key: string): string | null {
  const { checker } = compile();
  const s = exported(entry, fn);
  const sig = checker.getTypeOfSymbol(s).getCallSignatures()[0];
  const type = where === 'argument' ? checker.getTypeOfSymbol(sig.parameters[0]) : checker.getAwaitedType(sig.getReturnType())!;
  return deprecation(type.getProperty(key), checker);
}
