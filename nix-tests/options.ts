/**
 * The module option specs (modules/options-*.nix, plain data) as TypeScript values, shared by the
 * drift test (options.test.ts) and the docs generator (nixos-doc.ts).
 */
import { nixEvalJson } from './nix.ts';

export type TypeTag = string | { nullOr: TypeTag } | { listOf: TypeTag } | { enum: string[] };

export type OptionSpec = {
  type: TypeTag;
  description: string;
  default?: unknown;
  defaultText?: string;
  example?: unknown;
  moduleDefault?: boolean;
};
export type GroupSpec = { description: string; options: Record<string, Spec> };
export type Spec = OptionSpec | GroupSpec;
export type OptionsFile = { service: Record<string, Spec>; settings: Record<string, Spec> };

export const isGroup = (s: Spec): s is GroupSpec => 'options' in s;

export type ModuleName = 'agent' | 'control-plane';

/** Evaluate modules/options-<name>.nix with builtins only. */
export function loadOptions(name: ModuleName): OptionsFile {
  return nixEvalJson(`import ./modules/options-${name}.nix`) as OptionsFile;
}

/** Every leaf option as [dotted path, spec], in sorted order. */
export function leaves(specs: Record<string, Spec>, prefix = ''): [string, OptionSpec][] {
  return Object.keys(specs)
    .sort()
    .flatMap((k) => {
      const s = specs[k]!;
      return isGroup(s) ? leaves(s.options, `${prefix}${k}.`) : [[`${prefix}${k}`, s] as [string, OptionSpec]];
    });
}

/** The config a module would write when every option keeps its default (examples for the rest). */
export function sampleSettings(specs: Record<string, Spec>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, s] of Object.entries(specs)) {
    if (isGroup(s)) out[k] = sampleSettings(s.options);
    else if ('default' in s) out[k] = s.default;
    else if ('example' in s) out[k] = s.example;
    else throw new Error(`option ${k} has neither a default nor an example`);
  }
  return out;
}

/** NixOS-manual style type description. */
export function describeType(t: TypeTag): string {
  if (typeof t === 'string') {
    const names: Record<string, string> = {
      bool: 'boolean',
      int: 'signed integer',
      'ints.positive': 'positive integer, meaning >0',
      'ints.unsigned': 'unsigned integer, meaning >=0',
      port: '16 bit unsigned integer; between 0 and 65535 (both inclusive)',
      number: 'signed integer or floating point number',
      str: 'string',
      path: 'absolute path (a string)',
      package: 'package',
      json: 'attribute set of anything (JSON object)',
    };
    const n = names[t];
    if (n === undefined) throw new Error(`unknown type tag ${t}`);
    return n;
  }
  if ('nullOr' in t) return `null or ${describeType(t.nullOr)}`;
  if ('listOf' in t) return `list of ${describeType(t.listOf)}`;
  return `one of ${t.enum.map((v) => JSON.stringify(v)).join(', ')}`;
}

/** A JSON-able value as a Nix expression (for defaults and examples in the docs). */
export function toNix(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v).replace(/\$\{/g, '\\${');
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return v.length === 0 ? '[ ]' : `[ ${v.map(toNix).join(' ')} ]`;
  if (typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>);
    if (entries.length === 0) return '{ }';
    return `{ ${entries.map(([k, x]) => `${/^[A-Za-z_][A-Za-z0-9_'-]*$/.test(k) ? k : JSON.stringify(k)} = ${toNix(x)};`).join(' ')} }`;
  }
  throw new Error(`not JSON: ${String(v)}`);
}
