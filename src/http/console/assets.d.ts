// Files imported `with { type: 'file' }` (console assets): Bun gives their path, embedded in a single executable.
declare module '*.css' {
  const path: string
  export default path
}
declare module '*/console.js' {
  const path: string
  export default path
}
declare module 'uplot/dist/uPlot.iife.min.js' {
  const path: string
  export default path
}
declare module 'mqtt/dist/mqtt.min.js' {
  const path: string
  export default path
}
