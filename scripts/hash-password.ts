export {}

/**
 * Prints a password hash for the auth plugin's `users`:
 *   bun run hash-password             (asks for the password)
 *   bun run hash-password -- 's3cret' (takes it from the command line)
 *   echo 's3cret' | bun run hash-password
 */
const fromArgs = Bun.argv[2]
let password = fromArgs
if (password === undefined) {
  if (process.stdin.isTTY) password = prompt('Password:') ?? ''
  else password = (await new Response(Bun.stdin.stream()).text()).replace(/\r?\n$/, '')
}
if (!password) {
  console.error('hash-password: empty password')
  process.exit(2)
}
console.log(await Bun.password.hash(password, { algorithm: 'argon2id' }))
