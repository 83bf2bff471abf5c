/**
 * A complete user plugin: refuses publishes to some topics with a reason the client sees (MQTT 5),
 * and logs each connection. Use it in mqtt.config.ts:
 *
 *   import { denyTopics } from './examples/plugins/deny-topics.ts'
 *   export default defineConfig({ plugins: [denyTopics({ topics: ['readonly/#'] })] })
 */
import { z } from 'zod'
import { type Plugin, Reason, topicMatches, validatePluginOptions } from '../../src/index.ts'

const Options = z.strictObject({
  /** Topic filters nobody may publish to. */
  topics: z.array(z.string().min(1)).min(1),
  /** Reason string sent to MQTT 5 clients with PUBACK 0x87. */
  reason: z.string().default('this topic is read-only'),
})

export function denyTopics(options: z.input<typeof Options>): Plugin {
  // Validated once, when mqtt.config.ts is loaded: a bad option stops start-up naming the field.
  const { topics, reason } = validatePluginOptions('denyTopics', Options, options)
  let denied = 0
  return {
    name: 'denyTopics',
    start(ctx) {
      ctx.logger.info('plugin.started', { topics })
    },
    authorizePublish(client, message) {
      if (!topics.some((filter) => topicMatches(filter, message.topic))) return 'abstain'
      denied++
      return { decision: 'deny', reasonCode: Reason.NotAuthorized, reasonString: `${reason} (${denied} refused so far)` }
    },
    onConnect(client) {
      console.log(`denyTopics: ${client.clientId} connected`)
    },
  }
}
