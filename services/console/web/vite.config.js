// The console's browser app: built into dist/ and served by services/console (same origin as
// /api and /console). Nothing is loaded from outside at run time: every asset is bundled.
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

export default defineConfig({
  plugins: [vue()],
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 2000 },
})
