/// <reference path="./assets.d.ts" />
/**
 * The files the console's pages load, by the name they are served under, and where each one is. Imported as files
 * (Bun gives their path, and a single executable built with `bun run build` carries them). Bun only: the Deno
 * adapter finds the same files by path (runtime/deno/http.ts).
 */
import consoleJs from './console.js' with { type: 'file' }
import consoleCss from './console.css' with { type: 'file' }
import uplotJs from 'uplot/dist/uPlot.iife.min.js' with { type: 'file' }
import uplotCss from 'uplot/dist/uPlot.min.css' with { type: 'file' }
import mqttBrowserBundle from 'mqtt/dist/mqtt.min.js' with { type: 'file' }
import type { AssetName } from '../app.ts'

export const CONSOLE_FILES: Record<AssetName, string> = {
  'console.js': consoleJs,
  'console.css': consoleCss,
  'uplot.iife.min.js': uplotJs,
  'uplot.min.css': uplotCss,
  'mqtt.min.js': mqttBrowserBundle,
}
