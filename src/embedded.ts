/** Files only the single executable carries, set by its entry (binary.ts) before main.ts runs. */
export const embedded: {
  /** The `midge` module's bundled type declarations (one self-contained .d.ts). */
  typesFile?: string
} = {}
