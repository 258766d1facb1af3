// Preloaded (NODE_OPTIONS=--require) into agent CLIs whose phone-home cannot be turned off by
// a setting: fetch() to anything but loopback fails at once, as it would offline.
"use strict";
const original = globalThis.fetch;
const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);
if (typeof original === "function") {
  globalThis.fetch = function fetch(input, init) {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input && input.url;
    let host = "";
    try { host = new URL(url).hostname; } catch { /* relative or odd: let fetch decide */ }
    if (host && !LOOPBACK.has(host)) {
      return Promise.reject(new TypeError(`fetch failed: ${host} is off limits in the agent tests`));
    }
    return original.call(this, input, init);
  };
}
