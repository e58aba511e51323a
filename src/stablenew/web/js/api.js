// The public HTTP API, and nothing else: JSON in and out, the API's own error messages.

export class ApiError extends Error {
  constructor(status, detail, type, body) {
    const messages = Array.isArray(detail) ? detail.map(String) : [String(detail ?? "")];
    super(messages.join("; ") || `HTTP ${status}`);
    this.status = status;
    this.messages = messages;
    this.type = type || "";
    this.body = body;
  }
}

let onUnauthorized = () => window.location.assign("/login");

export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

/** api("GET", "/api/v1/queue"), api("POST", path, body): the answer's JSON, or ApiError. */
export async function api(method, path, body, { signal } = {}) {
  const init = { method, headers: { Accept: "application/json" }, cache: "no-store", signal };
  if (method !== "GET" && method !== "DELETE") {
    // The API refuses a change that is not JSON ({} when there is nothing to say).
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body === undefined ? {} : body);
  }
  let answer;
  try {
    answer = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, `StableNew did not answer (${error.message})`, "NetworkError");
  }
  if (answer.status === 401) {
    onUnauthorized();
  }
  const text = await answer.text();
  let data = null;
  if (text && (answer.headers.get("content-type") || "").includes("json")) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!answer.ok) {
    throw new ApiError(answer.status, data ? data.detail : text, data ? data.type : "", data);
  }
  return data;
}

/** A file the API serves (an image of a job), as a Blob; 401 goes to the login page as in
 * api(), instead of failing quietly. */
export async function getBlob(path, what) {
  let answer;
  try {
    answer = await fetch(path, { cache: "no-store" });
  } catch (error) {
    throw new ApiError(0, `StableNew did not answer (${error.message})`, "NetworkError");
  }
  if (answer.status === 401) {
    onUnauthorized();
  }
  if (!answer.ok) throw new ApiError(answer.status, `${what}: HTTP ${answer.status}`);
  return answer.blob();
}

export const get = (path, options) => api("GET", path, undefined, options);
export const post = (path, body, options) => api("POST", path, body, options);
export const put = (path, body) => api("PUT", path, body);
export const del = (path) => api("DELETE", path);

export const jobPath = (id) => `/api/v1/jobs/${encodeURIComponent(id)}`;

/** An error the page need not report: the login page is on its way (401), or StableNew is
 * away (the connection pill already says "reconnecting…"). */
export function quiet(error) {
  return error instanceof ApiError && (error.status === 401 || error.status === 0);
}
