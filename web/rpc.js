/* Rpc: the one message protocol of Upscale's workers, for both pairs: the page and the engine
 * worker (upscale.js, worker.js), the engine worker and its tile workers (tilepool.js,
 * tileworker.js).
 *
 * Every message is a plain object { ns: 'upscale', type, ... }:
 *   { type: 'request', id, method, params }   answered by exactly one reply
 *   { type: 'reply', id, ok: true, value }  |  { type: 'reply', id, ok: false, error }
 *   { type: 'event', id, name, data }         news of request `id` (progress); id null: of none
 *   { type: 'cancel', id }                    the caller stopped waiting for request `id`
 * and the notices a pair adds of its own (ping, pong, busy, info, fatal, csp: see worker.js).
 * Buffers are moved, never copied: a caller passes `transfer`, a handler returns
 * Rpc.moved(value, buffers). An error crosses as { name, message } and its own plain fields
 * (a cancelled job's `tiles`), and comes out as an Error of that name.
 *
 * A classic script: the workers run it with importScripts(), and the build writes it into
 * upscale.js for the page (and so into embed.js).
 */

const Rpc = (() => {
  const NS = 'upscale';

  /** An error as plain data: { name, message } and its own fields that are plain data. */
  function describe(error) {
    const fields = {};
    if (error && typeof error === 'object') {
      for (const [key, value] of Object.entries(error)) {
        if (typeof value !== 'function' && key !== 'stack') fields[key] = value;
      }
    }
    return {
      ...fields,
      name: (error && error.name) || 'Error',
      message: (error && error.message) || String(error),
    };
  }

  /** The Error a described one stands for; `make(message)` builds it (Error by default). */
  function revive({ name, message, ...fields }, make = (text) => new Error(text)) {
    return Object.assign(make(message), fields, { name });
  }

  class Moved {
    constructor(value, transfer) {
      this.value = value;
      this.transfer = transfer;
    }
  }

  /** What a handler returns to move `buffers` (ArrayBuffers inside `value`) to the caller. */
  function moved(value, buffers) {
    return new Moved(value, buffers);
  }

  function post(port, message, transfer = []) {
    port.postMessage({ ns: NS, ...message }, transfer);
  }

  /** The message, if it is one of ours. */
  function ours(data) {
    return data && data.ns === NS ? data : null;
  }

  /** Run `handle()` for request `id`, and post its one reply on `port`. */
  async function answer(port, id, handle) {
    try {
      const result = await handle();
      const { value, transfer } = result instanceof Moved ? result : { value: result, transfer: [] };
      post(port, { type: 'reply', id, ok: true, value }, transfer);
    } catch (error) {
      try {
        post(port, { type: 'reply', id, ok: false, error: describe(error) });
      } catch (unsendable) {
        post(port, { type: 'reply', id, ok: false, error: { name: error.name, message: String(error.message) } });
      }
    }
  }

  /**
   * The calling side of `port`: requests in flight, each settled by its reply. `makeError`
   * builds the Error a failed reply rejects with; `onStray(message)` gets each event that is
   * about no request (an id of null: the worker's uncaught errors).
   */
  class Client {
    constructor(port, { makeError = undefined, onStray = () => {} } = {}) {
      this.port = port;
      this.makeError = makeError;
      this.onStray = onStray;
      this.pending = new Map();
      this.nextId = 1;
    }

    get size() {
      return this.pending.size;
    }

    /**
     * Send request `method`; resolves with its value. With `signal`, an abort stops waiting at
     * once (rejecting with `aborted()`) and tells the other side to cancel.
     */
    call(method, params = {}, { transfer = [], onEvent = null, signal = null, aborted = null } = {}) {
      const id = this.nextId++;
      return new Promise((resolve, reject) => {
        const onAbort = () => {
          this.pending.delete(id);
          post(this.port, { type: 'cancel', id });
          reject(aborted());
        };
        const cleanup = () => signal && signal.removeEventListener('abort', onAbort);
        if (signal) signal.addEventListener('abort', onAbort, { once: true });
        this.pending.set(id, { resolve, reject, onEvent, cleanup });
        post(this.port, { type: 'request', id, method, params }, transfer);
      });
    }

    /** Settle or notify the call `message` is about; false when it is not a reply or event. */
    receive(message) {
      if (message.type !== 'reply' && message.type !== 'event') return false;
      const entry = this.pending.get(message.id);
      if (message.type === 'event') {
        // An event of a call given up on (cancelled) has nobody to hear it; one of no call does.
        if (entry && entry.onEvent) entry.onEvent(message.name, message.data);
        else if (message.id == null) this.onStray(message);
        return true;
      }
      if (!entry) return true; // a call given up on (cancelled): nobody waits for it
      this.pending.delete(message.id);
      entry.cleanup();
      if (message.ok) entry.resolve(message.value);
      else entry.reject(revive(message.error, this.makeError));
      return true;
    }

    /** Reject every call in flight with `error`. */
    failAll(error) {
      for (const entry of this.pending.values()) {
        entry.cleanup();
        entry.reject(error);
      }
      this.pending.clear();
    }
  }

  return { NS, describe, revive, moved, post, ours, answer, Client };
})();
