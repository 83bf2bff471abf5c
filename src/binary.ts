/**
 * The single executable's entry (`bun run build`): main.ts, carrying what only the executable needs: the bundled
 * type declarations of the `midge` module (dist/midge-types.txt, made by `bun run build:types` first), which
 * `midge init` writes beside a config so that an editor has its types with no node_modules there.
 */
import typesFile from '../dist/midge-types.txt' with { type: 'file' }
import { embedded } from './embedded.ts'

embedded.typesFile = typesFile
await import('./main.ts')
