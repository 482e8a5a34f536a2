/* ModelFiles: the engine worker downloads a model's files once, checks them, and holds them.
 *
 * Loaded with importScripts() into the engine worker; exposes one global, ModelFiles. Each
 * file is checked against the sha256 the catalogue lists for it (build.py writes them), and
 * the weights are handed to TF.js from memory: to this worker's TF.js, or copied to every
 * tile worker, so no tile worker downloads anything (with `Cache-Control: no-store` each
 * would fetch every shard itself, and concurrent no-store downloads of a multi-shard model
 * were seen never to finish). A download that stops moving for `stallMs` is aborted.
 */
'use strict';

const ModelFiles = (() => {
  function named(name, message) {
    return Object.assign(new Error(message), { name });
  }

  /** One ArrayBuffer holding `parts` (Uint8Arrays or ArrayBuffers) end to end, in order. */
  function joined(parts) {
    const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.byteLength, 0));
    let at = 0;
    for (const part of parts) {
      bytes.set(part instanceof Uint8Array ? part : new Uint8Array(part), at);
      at += part.byteLength;
    }
    return bytes.buffer;
  }

  /** The body of `url`, aborted with a `Stalled` error when no byte arrives for stallMs. */
  async function download(url, what, stallMs) {
    const controller = new AbortController();
    let timer = null;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => controller.abort(), stallMs);
    };
    arm();
    try {
      let response;
      try {
        response = await fetch(url, { signal: controller.signal });
      } catch (error) {
        if (controller.signal.aborted) throw error;
        throw named('FetchError', `could not download ${what}: ${error.message}`);
      }
      if (!response.ok) throw named('FetchError', `could not download ${what}: HTTP ${response.status}`);
      const reader = response.body.getReader();
      const chunks = [];
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        arm();
        chunks.push(value);
      }
      return joined(chunks);
    } catch (error) {
      if (!controller.signal.aborted) throw error;
      throw named('Stalled', `downloading ${what} stalled: no data for ${Math.round(stallMs / 1000)} s`);
    } finally {
      clearTimeout(timer);
    }
  }

  function hex(buffer) {
    return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('');
  }

  /**
   * `url`'s bytes, checked against `expected` (sha256 hex). `sha256(buffer)` computes the
   * digest where SubtleCrypto is missing (a page served over plain http from another host).
   */
  async function checked(url, what, expected, { stallMs, sha256 }) {
    const bytes = await download(url, what, stallMs);
    if (!expected) throw named('IntegrityError', `${what} has no sha256 in the model catalogue`);
    const got = self.crypto && crypto.subtle
      ? hex(await crypto.subtle.digest('SHA-256', bytes))
      : await sha256(bytes);
    if (got !== expected) {
      throw named('IntegrityError',
        `${what} is not the file this site was built with (sha256 ${got.slice(0, 12)}…, ` +
        `expected ${expected.slice(0, 12)}…)`);
    }
    return bytes;
  }

  /**
   * A catalogue model's topology and weights, as TF.js's in-memory artifacts
   * ({ modelTopology, weightSpecs, weightData, format }). Shards are fetched in parallel and
   * joined in the order of the weights manifest, as TF.js's own loader joins them.
   */
  async function fetchModel(manifest, base, options) {
    const url = new URL(manifest.url, base);
    const files = manifest.files || {};
    const name = (path) => decodeURIComponent(path.split('/').pop());
    const json = await checked(url.href, `${manifest.id}'s model.json`, files[name(url.pathname)], options);
    let model;
    try {
      model = JSON.parse(new TextDecoder().decode(json));
    } catch (error) {
      throw named('IntegrityError', `${manifest.id}'s model.json is not JSON: ${error.message}`);
    }
    const groups = model.weightsManifest || [];
    const paths = groups.flatMap((group) => group.paths);
    const shards = await Promise.all(paths.map((path) => checked(
      new URL(path, url).href, `${manifest.id}'s weights (${path})`, files[name(path)], options,
    )));
    return {
      modelTopology: model.modelTopology,
      weightSpecs: groups.flatMap((group) => group.weights),
      weightData: joined(shards),
      format: model.format,
      userDefinedMetadata: model.userDefinedMetadata,
      generatedBy: model.generatedBy,
      convertedBy: model.convertedBy,
    };
  }

  return { fetchModel };
})();
