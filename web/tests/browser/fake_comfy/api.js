// Stand-in for ComfyUI's scripts/api.js: the real apiURL prefixes "/api", and fetchApi fetches
// apiURL(route). A test page may answer fetchApi itself by setting window.fakeFetchApi.
export const api = {
  apiURL: (path) => `/api${path}`,
  fetchApi(route, options) {
    return typeof window.fakeFetchApi === "function" ? window.fakeFetchApi(route, options) : fetch(this.apiURL(route), options);
  },
};
