/** A key or certificate option given as PEM text, or as the path of a PEM file (read once, at start). */
import { readFileSync } from 'node:fs'

export function pemText(value: string): string {
  return value.includes('-----BEGIN') ? value : readFileSync(value, 'utf8')
}
