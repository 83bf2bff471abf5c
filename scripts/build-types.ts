/**
 * Writes dist/midge-types.txt: the `midge` module's type declarations in one self-contained file, for the single
 * executable to put beside a config (`midge init`, `midge types`), where no node_modules give an editor the types.
 *
 * dts-bundle-generator bundles the declarations (mqtt-packet's inlined). The config and plugin option types are
 * zod's inferences (`z.input<typeof schema>`); with no zod beside the executable those would be `any`, so each is
 * replaced by its expanded form, printed by the TypeScript checker, and the schemas they came from are dropped.
 *   bun scripts/build-types.ts [out]
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import ts from 'typescript'

const root = join(import.meta.dir, '..')
const out = process.argv[2] ?? join(root, 'dist', 'midge-types.txt')
const entry = join(root, 'src', 'package.ts')
const project = join(root, 'tsconfig.types.json')

const scratch = mkdtempSync(join(tmpdir(), 'midge-types-'))
const bundled = join(scratch, 'midge.d.ts')
mkdirSync(dirname(out), { recursive: true })
const run = Bun.spawnSync([join(root, 'node_modules', '.bin', 'dts-bundle-generator'), '--silent', '--no-check', '--project', project, '--external-inlines', 'mqtt-packet', '--export-referenced-types', 'false', '--out-file', bundled, entry], { cwd: root, stderr: 'pipe' })
if (run.exitCode !== 0) throw new Error(`dts-bundle-generator failed: ${run.stderr.toString()}`)
let text = readFileSync(bundled, 'utf8')
rmSync(scratch, { recursive: true, force: true })

// The checker's view of the package's exports: every zod-inferred alias, expanded.
const config = ts.getParsedCommandLineOfConfigFile(project, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} })!
const program = ts.createProgram([entry], config.options)
const checker = program.getTypeChecker()
const moduleSymbol = checker.getSymbolAtLocation(program.getSourceFile(entry)!)!
const flags = ts.TypeFormatFlags.NoTruncation | ts.TypeFormatFlags.InTypeAlias | ts.TypeFormatFlags.UseSingleQuotesForStringLiteralType
const expanded = new Map<string, string>()
for (const symbol of checker.getExportsOfModule(moduleSymbol)) {
  const alias = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol
  if (!(alias.flags & ts.SymbolFlags.TypeAlias)) continue
  const declaration = alias.declarations?.[0]
  if (!declaration || !ts.isTypeAliasDeclaration(declaration) || !/\bz\.(input|output|infer)\b/.test(declaration.type.getText())) continue
  expanded.set(symbol.name, checker.typeToString(checker.getDeclaredTypeOfSymbol(alias), undefined, flags))
}

const replaced: string[] = []
text = text.replace(/^export type (\w+) = z\.(?:input|output|infer)<[^;]*>;$/gm, (line, name: string) => {
  const type = expanded.get(name)
  if (!type) throw new Error(`no expansion for ${name}`)
  replaced.push(name)
  return `export type ${name} = ${type};`
})
// The schemas (declared only for `typeof` above) and zod itself go; a plugin's own schema check types loosely.
text = text.replace(/^declare const \w+(\$\d+)?: z\.[\s\S]*?\n\}[^\n]*;\n/gm, '')
text = text.replace(/^export declare function validatePluginOptions<S extends z\.ZodType>\(pluginName: string, schema: S, options: unknown\): z\.output<S>;$/m, 'export declare function validatePluginOptions<T = any>(pluginName: string, schema: unknown, options: unknown): T;')
text = text.replace(/^import \{ z \} from 'zod';\n/m, '')
if (/\bz\./.test(text)) throw new Error(`zod is still named in the bundle: ${text.match(/.*\bz\..*/)?.[0]}`)
// Buffer is Node's and Bun's; where neither's types are present, it is a Uint8Array (merges with theirs where they are).
text = `${text.replace(/^export \{\};\n?$/m, '')}\ndeclare global {\n\tinterface Buffer extends Uint8Array {\n\t}\n}\n\nexport {};\n`
writeFileSync(out, `// The types of the 'midge' module (Midge's single executable writes this file: \`midge types\`).\n${text}`)
console.log(`wrote ${out}: ${replaced.join(', ')} expanded`)
