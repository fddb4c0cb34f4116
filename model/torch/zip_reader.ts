/**
 * A read-only zip archive over a file handle that reads only what is asked for: the central
 * directory at open, then byte ranges of single entries. This is the container of
 * PyTorch's checkpoint format since 1.6 (`torch.save`: `archive/data.pkl` plus one stored,
 * uncompressed entry per storage, 64-byte aligned); ZIP64 records are understood, so files
 * past 4 GiB work. Entries may be stored or deflated (`data.pkl` of a re-zipped file), but
 * ranges can only be read from stored entries.
 *
 * @module
 */

export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflated. */
  method: number;
  compressedSize: number;
  size: number;
  /** Offset of the entry's local header. */
  headerOffset: number;
}

const EOCD = 0x06054b50, EOCD64 = 0x06064b50, EOCD64_LOCATOR = 0x07064b50, CENTRAL = 0x02014b50, LOCAL = 0x04034b50;

/** Pending reads per file: a seek and its read must not interleave with another's. */
const queues = new WeakMap<Deno.FsFile, Promise<unknown>>();

/** Reads `length` bytes at `offset` (one at a time per file); throws when the file is shorter. */
export function readAt(
  file: Deno.FsFile,
  offset: number,
  length: number,
  where: string,
): Promise<Uint8Array<ArrayBuffer>> {
  const run = async () => {
    const out = new Uint8Array(length);
    await file.seek(offset, Deno.SeekMode.Start);
    let got = 0;
    while (got < length) {
      const n = await file.read(out.subarray(got));
      if (n === null) {
        throw new Error(`${where}: the file ends at byte ${offset + got}, ${length - got} bytes too early`);
      }
      got += n;
    }
    return out;
  };
  const next = (queues.get(file) ?? Promise.resolve()).then(run, run);
  queues.set(file, next.catch(() => {}));
  return next;
}

export class ZipReader {
  readonly entries: Map<string, ZipEntry>;
  readonly #dataOffsets = new Map<string, number>();

  private constructor(
    readonly path: string,
    readonly file: Deno.FsFile,
    readonly size: number,
    entries: Map<string, ZipEntry>,
  ) {
    this.entries = entries;
  }

  /** Open `path` (an already open `file` is adopted and closed by `close()`). */
  static async open(path: string, file?: Deno.FsFile): Promise<ZipReader> {
    const f = file ?? await Deno.open(path, { read: true });
    try {
      const size = (await f.stat()).size;
      return new ZipReader(path, f, size, await readCentralDirectory(f, size, path));
    } catch (e) {
      f.close();
      throw e;
    }
  }

  /** The entry named `name`, or an error that says what the archive holds. */
  entry(name: string): ZipEntry {
    const e = this.entries.get(name);
    if (!e) {
      const some = [...this.entries.keys()].slice(0, 5).join(", ");
      throw new Error(`${this.path}: the zip archive has no entry '${name}' (it holds ${some}...)`);
    }
    return e;
  }

  /** File offset of the first byte of `name`'s data (after its local header). */
  async dataOffset(name: string): Promise<number> {
    const known = this.#dataOffsets.get(name);
    if (known !== undefined) return known;
    const e = this.entry(name);
    const h = await readAt(this.file, e.headerOffset, 30, `${this.path} (local header of '${name}')`);
    const v = new DataView(h.buffer);
    if (v.getUint32(0, true) !== LOCAL) throw new Error(`${this.path}: entry '${name}' has a corrupt local header`);
    const off = e.headerOffset + 30 + v.getUint16(26, true) + v.getUint16(28, true);
    if (off + e.compressedSize > this.size) {
      throw new Error(
        `${this.path}: entry '${name}' needs bytes up to ${off + e.compressedSize} but the file has ${this.size} ` +
          `(truncated download? delete it and fetch it again)`,
      );
    }
    this.#dataOffsets.set(name, off);
    return off;
  }

  /** The whole (decompressed) content of `name`. */
  async read(name: string): Promise<Uint8Array> {
    const e = this.entry(name);
    const raw = await readAt(this.file, await this.dataOffset(name), e.compressedSize, `${this.path} ('${name}')`);
    if (e.method === 0) return raw;
    if (e.method !== 8) throw new Error(`${this.path}: entry '${name}' uses zip method ${e.method} (only 0, 8)`);
    const stream = new Blob([raw]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  /** Bytes `[start, start + length)` of the stored entry `name`. */
  async readRange(name: string, start: number, length: number): Promise<Uint8Array> {
    const e = this.entry(name);
    if (e.method !== 0) {
      throw new Error(`${this.path}: entry '${name}' is compressed; torch.save stores storages uncompressed`);
    }
    if (start < 0 || start + length > e.size) {
      throw new Error(
        `${this.path}: bytes [${start}, ${start + length}) are outside entry '${name}' (${e.size} bytes)`,
      );
    }
    return readAt(this.file, (await this.dataOffset(name)) + start, length, `${this.path} ('${name}')`);
  }

  close(): void {
    this.file.close();
  }
}

async function readCentralDirectory(f: Deno.FsFile, size: number, path: string): Promise<Map<string, ZipEntry>> {
  // The end record is the last 22 bytes plus a comment of up to 65535 bytes.
  const tailLen = Math.min(size, 22 + 65535);
  const tail = await readAt(f, size - tailLen, tailLen, path);
  const tv = new DataView(tail.buffer);
  let at = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === EOCD) {
      at = i;
      break;
    }
  }
  if (at < 0) {
    throw new Error(
      `${path}: not a zip archive, or truncated (no end-of-central-directory record in the last ${tailLen} bytes); ` +
        `re-download the file`,
    );
  }
  let count = tv.getUint16(at + 10, true);
  let cdSize = tv.getUint32(at + 12, true);
  let cdOffset = tv.getUint32(at + 16, true);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const loc = at - 20;
    if (loc < 0 || tv.getUint32(loc, true) !== EOCD64_LOCATOR) throw new Error(`${path}: ZIP64 locator missing`);
    const eocd64 = Number(tv.getBigUint64(loc + 8, true));
    const r = new DataView((await readAt(f, eocd64, 56, path)).buffer);
    if (r.getUint32(0, true) !== EOCD64) throw new Error(`${path}: corrupt ZIP64 end record`);
    count = Number(r.getBigUint64(32, true));
    cdSize = Number(r.getBigUint64(40, true));
    cdOffset = Number(r.getBigUint64(48, true));
  }
  if (cdOffset + cdSize > size) {
    throw new Error(`${path}: the zip central directory lies past the end of the file (truncated?)`);
  }
  const cd = await readAt(f, cdOffset, cdSize, path);
  const v = new DataView(cd.buffer);
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || v.getUint32(p, true) !== CENTRAL) {
      throw new Error(`${path}: corrupt zip central directory at entry ${i}`);
    }
    const method = v.getUint16(p + 10, true);
    let compressedSize = v.getUint32(p + 20, true);
    let sz = v.getUint32(p + 24, true);
    const nameLen = v.getUint16(p + 28, true), extraLen = v.getUint16(p + 30, true);
    const commentLen = v.getUint16(p + 32, true);
    let headerOffset = v.getUint32(p + 42, true);
    const name = new TextDecoder().decode(cd.subarray(p + 46, p + 46 + nameLen));
    // ZIP64 extra field (id 1): the 64-bit values of whichever fields are saturated, in order.
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = v.getUint16(e, true), len = v.getUint16(e + 2, true);
      if (id === 1) {
        let q = e + 4;
        const next = () => {
          const x = Number(v.getBigUint64(q, true));
          q += 8;
          return x;
        };
        if (sz === 0xffffffff) sz = next();
        if (compressedSize === 0xffffffff) compressedSize = next();
        if (headerOffset === 0xffffffff) headerOffset = next();
      }
      e += 4 + len;
    }
    entries.set(name, { name, method, compressedSize, size: sz, headerOffset });
    p = extraEnd + commentLen;
  }
  return entries;
}
