// Every call the console makes: the query service (same origin) and the ingest API (CORS).
// The session token goes in the Authorization header only: never in a URL, a log or storage.

let tokenSource = null;
let ingestBase = "";

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `the request failed (${status})`);
    this.status = status;
    this.code = error.code || "unknown";
    this.pointer = error.pointer ?? null;
  }
}

export function useToken(source) {
  tokenSource = source;
}

export function useIngest(url) {
  ingestBase = url || "";
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// One JSON request. 503 (storage or auth unavailable) is retried twice after Retry-After.
async function call(base, method, path, { body, etag } = {}) {
  const headers = { Accept: "application/json" };
  if (tokenSource) headers.Authorization = `Bearer ${await tokenSource()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (etag) headers["If-None-Match"] = etag;
  for (let attempt = 0; ; attempt++) {
    const answer = await fetch(base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
    if (answer.status === 503 && attempt < 2) {
      const wait = Math.min(Number(answer.headers.get("Retry-After")) || 1, 10);
      await sleep(wait * 1000);
      continue;
    }
    if (answer.status === 304) return { status: 304, etag, data: null };
    const text = await answer.text();
    const data = text ? JSON.parse(text) : null;
    if (!answer.ok) throw new ApiError(answer.status, data);
    return { status: answer.status, etag: answer.headers.get("ETag"), data };
  }
}

const query = (method, path, options) => call("", method, path, options);
const ingest = (method, path, options) => {
  if (!ingestBase) throw new ApiError(0, { error: { message: "the sources API URL is not configured (INGEST_API_URL)" } });
  return call(ingestBase, method, path, options);
};
const id = encodeURIComponent;

export const consoleConfig = async () => (await call("", "GET", "/console/config.json")).data;
export const devSession = async (who) =>
  (await call("", "POST", "/dev/console-session", { body: who })).data;
export const me = async () => (await query("GET", "/v1/me")).data;

export const listBlocks = (etag) => query("GET", "/v1/blocks", { etag });
export const getBlock = async (blockId) => (await query("GET", `/v1/blocks/${id(blockId)}`)).data;
export const putBlock = async (blockId, body) =>
  (await query("PUT", `/v1/blocks/${id(blockId)}`, { body })).data;
export const deleteBlock = (blockId) => query("DELETE", `/v1/blocks/${id(blockId)}`);

export const listSources = async () => (await ingest("GET", "/v1/sources")).data.items;
export const createSource = async (body) => (await ingest("POST", "/v1/sources", { body })).data;
export const rotateSecret = async (sourceId, body) =>
  (await ingest("POST", `/v1/sources/${id(sourceId)}/rotate-secret`, { body })).data;
export const deleteSource = (sourceId) => ingest("DELETE", `/v1/sources/${id(sourceId)}`);
export const deliveries = async (sourceId) =>
  (await ingest("GET", `/v1/sources/${id(sourceId)}/deliveries?limit=50`)).data.items;
