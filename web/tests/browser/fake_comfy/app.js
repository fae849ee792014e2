// Stand-in for ComfyUI's scripts/app.js: just records registered extensions.
export const app = {
  extensions: [],
  registerExtension(extension) {
    this.extensions.push(extension);
  },
};
