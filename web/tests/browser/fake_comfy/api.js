// Stand-in for ComfyUI's scripts/api.js: the real apiURL prefixes "/api".
export const api = {
  apiURL: (path) => `/api${path}`,
};
