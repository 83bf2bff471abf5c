/**
 * The core's seams, checked from its imports: the core (sessions, routing, delivery, handlers, protocol, topics,
 * plugin API) depends on no transport, HTTP, cluster, plugin or runtime library, and has no import cycle.
 * The wiring (midge.ts, main.ts with its --nodes supervisor nodes.ts and init templates.ts, index.ts and the package
 * entry package.ts), the config schema (config.ts, on zod), the adapters (runtime/: Bun or Deno, http/, cluster/,
 * transport/ but its contract) and plugins/ sit outside it.
 */
import { describe, expect, test } from 'bun:test'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { repoRoot } from './helpers/process.ts'

const src = join(repoRoot, 'src')
const OUTSIDE = [/^src\/http\//, /^src\/cluster\//, /^src\/runtime\//, /^src\/transport\/(?!types\.ts$)/, /^src\/(main|midge|index|config|nodes|package|templates)\.ts$/]
/** Imports the core may not make: runtime libraries and the adapters. */
const FORBIDDEN = [/^zod(\/|$)/, /^hono(\/|$)/, /^bun:/, /^@nats-io\//, /^mqtt$/, /^src\/http\//, /^src\/cluster\//, /^src\/runtime\//, /^src\/transport\/(?!types\.ts$)/, /^plugins\//]
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []))
}

/** Every module a file imports or re-exports: repo-relative paths for its own files, package names for the rest. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  const out: string[] = []
  const pattern = /(?:^|\n)\s*(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g
  for (const m of text.matchAll(pattern)) {
    const spec = m[1] ?? m[2]!
    const target = spec.startsWith('.') ? relative(repoRoot, resolve(dirname(file), spec)) : spec
    out.push(target)
  }
  return out
}

const files = sources(src).map((f) => relative(repoRoot, f))
const core = files.filter((f) => !OUTSIDE.some((re) => re.test(f)))
const graph = new Map(core.map((f) => [f, importsOf(join(repoRoot, f))]))

/** Strongly connected components of the core's import graph with more than one file (Tarjan). */
function cycles(): string[][] {
  let index = 0
  const indices = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const out: string[][] = []
  const visit = (v: string) => {
    indices.set(v, index)
    low.set(v, index++)
    stack.push(v)
    onStack.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue
      if (!indices.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, indices.get(w)!))
    }
    if (low.get(v) === indices.get(v)) {
      const component: string[] = []
      let w: string
      do {
        w = stack.pop()!
        onStack.delete(w)
        component.push(w)
      } while (w !== v)
      if (component.length > 1) out.push(component.sort())
    }
  }
  for (const v of graph.keys()) if (!indices.has(v)) visit(v)
  return out
}

describe('architecture', () => {
  test('the scan sees the core: its files and their imports', () => {
    expect(core).toContain('src/broker.ts')
    expect(core).toContain('src/transport/types.ts')
    expect(core).not.toContain('src/http/app.ts')
    expect(graph.get('src/broker.ts')!).toContain('src/client.ts')
  })

  test('the core imports no runtime library, adapter or plugin', () => {
    const bad = [...graph].flatMap(([file, imports]) => imports.filter((i) => FORBIDDEN.some((re) => re.test(i))).map((i) => `${file} -> ${i}`))
    expect(bad).toEqual([])
  })

  test("the core uses neither runtime's globals (Bun, Deno): it runs on either, through runtime/", () => {
    const bad = core.filter((file) => /\b(Bun|Deno)\.[a-z]/.test(readFileSync(join(repoRoot, file), 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '')))
    expect(bad).toEqual([])
  })

  test('the core does not import the config schema: its types are plain interfaces (limits.ts) that the schema must produce', () => {
    const bad = [...graph].flatMap(([file, imports]) => imports.filter((i) => i === 'src/config.ts').map(() => file))
    expect(bad).toEqual([])
  })

  test('the core has no import cycle (type imports count: a cycle of types is a knot all the same)', () => {
    expect(cycles()).toEqual([])
  })

  test('handlers see the broker through its context, never the Broker class', () => {
    const bad = [...graph].filter(([file]) => file.startsWith('src/handlers/') || file === 'src/client.ts').flatMap(([file, imports]) => imports.filter((i) => i === 'src/broker.ts').map(() => file))
    expect(bad).toEqual([])
  })
})
