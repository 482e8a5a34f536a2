/* A zip archive of files that are already compressed (PNG, JPEG, WebP): stored, not deflated.
 *
 *   const blob = await zipFiles([{ name: 'photo@2x.png', blob }, ...]);
 *
 * Names are UTF-8 (general-purpose flag bit 11). The CRC-32 runs in slices that yield to the
 * event loop, so zipping a large batch never blocks the page for long.
 */

const SLICE = 1 << 21; // bytes hashed between yields
const LIMIT = 0xffffffff; // no zip64: every size and offset must fit in 32 bits

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

async function crc32(bytes) {
  let crc = 0xffffffff;
  for (let start = 0; start < bytes.length; start += SLICE) {
    const end = Math.min(bytes.length, start + SLICE);
    for (let i = start; i < end; i++) crc = CRC_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
    if (end < bytes.length) await new Promise((resolve) => setTimeout(resolve, 0));
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** MS-DOS time and date fields for `when`. */
function dosTime(when) {
  const time = (when.getHours() << 11) | (when.getMinutes() << 5) | (when.getSeconds() >> 1);
  const year = Math.max(1980, when.getFullYear());
  const date = ((year - 1980) << 9) | ((when.getMonth() + 1) << 5) | when.getDate();
  return { time, date };
}

function header(size, fill) {
  const bytes = new Uint8Array(size);
  fill(new DataView(bytes.buffer));
  return bytes;
}

/**
 * @param {{ name: string, blob: Blob }[]} files  distinct names, in archive order
 * @param {Date} [when]  modification time recorded for every entry
 * @returns {Promise<Blob>} an application/zip Blob
 */
export async function zipFiles(files, when = new Date()) {
  const encoder = new TextEncoder();
  const { time, date } = dosTime(when);
  const parts = [];
  const central = [];
  let offset = 0;
  for (const { name, blob } of files) {
    const nameBytes = encoder.encode(name);
    const data = new Uint8Array(await blob.arrayBuffer());
    const crc = await crc32(data);
    if (data.length > LIMIT || offset > LIMIT) throw new RangeError('the zip would be larger than 4 GB');
    const common = (view, at) => {
      view.setUint16(at, 20, true); // version needed: 2.0
      view.setUint16(at + 2, 0x0800, true); // UTF-8 names
      view.setUint16(at + 4, 0, true); // stored
      view.setUint16(at + 6, time, true);
      view.setUint16(at + 8, date, true);
      view.setUint32(at + 10, crc, true);
      view.setUint32(at + 14, data.length, true);
      view.setUint32(at + 18, data.length, true);
      view.setUint16(at + 22, nameBytes.length, true);
    };
    parts.push(header(30, (view) => {
      view.setUint32(0, 0x04034b50, true);
      common(view, 4);
    }), nameBytes, data);
    central.push(header(46, (view) => {
      view.setUint32(0, 0x02014b50, true);
      view.setUint16(4, 20, true); // made by: 2.0, MS-DOS attributes
      common(view, 6);
      view.setUint32(42, offset, true);
    }), nameBytes);
    offset += 30 + nameBytes.length + data.length;
  }
  const centralSize = central.reduce((sum, part) => sum + part.length, 0);
  if (offset + centralSize > LIMIT || files.length > 0xffff) {
    throw new RangeError('the zip would be larger than 4 GB or hold more than 65535 files');
  }
  const end = header(22, (view) => {
    view.setUint32(0, 0x06054b50, true);
    view.setUint16(8, files.length, true);
    view.setUint16(10, files.length, true);
    view.setUint32(12, centralSize, true);
    view.setUint32(16, offset, true);
  });
  return new Blob([...parts, ...central, end], { type: 'application/zip' });
}
