// Minimal static file server for the browser tests: 127.0.0.1, random free port.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize, sep } from "node:path";

const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".json": "application/json",
  ".png": "image/png",
  ".svg": "image/svg+xml",
};

/**
 * @param {string} root directory served at "/"
 * @param {Record<string, string>} mounts URL prefix -> directory (checked before root)
 * @param {Record<string, (url: URL) => {type: string, body: string}>} routes exact paths
 */
export async function startStaticServer(root, { mounts = {}, routes = {} } = {}) {
  const requests = [];
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    requests.push(url);
    try {
      if (routes[url.pathname]) {
        const { type, body } = routes[url.pathname](url);
        res.writeHead(200, { "content-type": type, "cache-control": "no-store" });
        return res.end(body);
      }
      const [prefix, dir] = Object.entries(mounts).find(([p]) => url.pathname.startsWith(p)) ?? ["/", root];
      const base = normalize(dir);
      const file = normalize(join(base, decodeURIComponent(url.pathname.slice(prefix.length))));
      if (file !== base && !file.startsWith(base + sep)) throw Object.assign(new Error("outside root"), { code: "ENOENT" });
      const body = await readFile(file);
      res.writeHead(200, { "content-type": MIME[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" });
      res.end(body);
    } catch (err) {
      res.writeHead(err.code === "ENOENT" || err.code === "EISDIR" ? 404 : 500);
      res.end(String(err.message));
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    requests,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
