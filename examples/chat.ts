/**
 * The classic tutorial chat ("Building a Chat From Scratch With Go and MQTT"), on Midge.
 * Each user runs one client: it subscribes to the room's topic and publishes every typed line as `user: text`.
 *
 *   bun examples/chat.ts --user alice [--password secret] [--room lobby] [--url mqtt://127.0.0.1:1883]
 *
 * The username and password travel in the broker URL, as in the tutorial (mqtt://alice:secret@host:port).
 */
import mqtt from 'mqtt'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    user: { type: 'string', short: 'u' },
    password: { type: 'string', default: '' },
    room: { type: 'string', default: 'lobby' },
    url: { type: 'string', default: 'mqtt://127.0.0.1:1883' },
  },
})
if (!values.user) {
  console.error('usage: bun examples/chat.ts --user NAME [--password P] [--room ROOM] [--url mqtt://host:port]')
  process.exit(2)
}

const url = new URL(values.url!)
url.username = encodeURIComponent(values.user)
url.password = encodeURIComponent(values.password ?? '')
const topic = `chat/${values.room}`
const client = mqtt.connect(url.toString(), { clientId: `chat-${values.user}-${process.pid}` })

client.on('error', (error) => {
  console.error(`chat: ${error.message}`)
  process.exit(1)
})
client.on('connect', async () => {
  await client.subscribeAsync(topic, { qos: 1 })
  console.log(`* connected to ${url.host} as ${values.user}, room ${values.room}`)
})
client.on('message', (_topic, payload) => console.log(payload.toString()))

createInterface({ input: process.stdin })
  .on('line', (line) => {
    if (line.trim()) client.publish(topic, `${values.user}: ${line}`, { qos: 1 })
  })
  .on('close', () => client.end(false, {}, () => process.exit(0)))
