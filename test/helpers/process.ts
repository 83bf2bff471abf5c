/** Spawns a Bun process from the repo root and collects its stdout line by line as it arrives. */
import { join } from 'node:path'

export const repoRoot = join(import.meta.dir, '..', '..')

export function spawnLines(args: string[], env: Record<string, string> = {}) {
  const proc = Bun.spawn([process.execPath, ...args], { cwd: repoRoot, stdin: 'pipe', stdout: 'pipe', stderr: 'pipe', env: { ...process.env, ...env } })
  const lines: string[] = []
  void (async () => {
    const decoder = new TextDecoder()
    let rest = ''
    for await (const chunk of proc.stdout) {
      rest += decoder.decode(chunk)
      const parts = rest.split('\n')
      rest = parts.pop()!
      lines.push(...parts.filter((p) => p.trim() !== ''))
    }
  })()
  return { proc, lines, stderr: new Response(proc.stderr).text() }
}
