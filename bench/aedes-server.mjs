// Aedes on Node's net, for the benchmark: node bench/aedes-server.mjs PORT
import { createServer } from 'node:net'
import { Aedes } from 'aedes'

const port = Number(process.argv[2] ?? 1885)
const aedes = await Aedes.createBroker()
const server = createServer(aedes.handle)
server.listen(port, '127.0.0.1', () => console.log(`aedes listening on ${port}`))
const stop = () => server.close(() => aedes.close(() => process.exit(0)))
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
