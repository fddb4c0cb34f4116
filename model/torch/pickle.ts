/**
 * A pickle interpreter that never executes anything: it knows the opcodes of protocols 0-5
 * (python `pickletools`) and builds plain values. Globals are never imported or called: a
 * caller-supplied table (`PickleGlobals.calls`) says what the few globals a state dict needs
 * build (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`, ...); every other
 * global becomes an inert `PyOpaque` placeholder that records what it would have built,
 * so a training checkpoint's yacs config or numpy scalar reads as a placeholder and only
 * a value that something needs (a tensor) fails, naming the global.
 *
 * Globals of modules that can run code (`os.system`, `builtins.eval`, `subprocess.*`, ...)
 * are refused outright: no state dict names them, so a file that does is hostile or broken.
 *
 * @module
 */

/** A python value as this reader represents it: dicts are `Map`s, lists and tuples arrays. */
export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyValue[]
  | Map<unknown, PyValue>
  | Set<unknown>
  | PyGlobal
  | PyOpaque
  | object;

/** A global named by the pickle (`module.name`), not imported. */
export class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get qualname(): string {
    return `${this.module}.${this.name}`;
  }
}

/** What an unknown global would have built: kept inert, with its arguments and state. */
export class PyOpaque {
  state: PyValue = null;
  constructor(readonly global: string, readonly args: PyValue) {}
}

/** How the caller resolves persistent ids and the globals it allows to be "called". */
export interface PickleGlobals {
  /** `module.name` -> builder of the value from the call's positional arguments. */
  calls: Record<string, (args: PyValue[]) => PyValue>;
  /** `BINPERSID`/`PERSID`: torch's storages. */
  persistentLoad?: (pid: PyValue) => PyValue;
}

/** What plain python containers unpickle to (protocol 2 writes bytes as `_codecs.encode(text, "latin1")`). */
export const PLAIN_CALLS: PickleGlobals["calls"] = {
  "collections.OrderedDict": (a) => new Map(Array.isArray(a[0]) ? (a[0] as [unknown, PyValue][]) : []),
  "builtins.set": (a) => new Set(Array.isArray(a[0]) ? a[0] : []),
  "builtins.frozenset": (a) => new Set(Array.isArray(a[0]) ? a[0] : []),
  "builtins.bytearray": (a) => (a[0] instanceof Uint8Array ? a[0] : new Uint8Array()),
  "_codecs.encode": (a) => Uint8Array.from(String(a[0]), (c) => c.charCodeAt(0) & 0xff),
};

/** Python 2 module names that protocols 0-2 write (pickle's `fix_imports`). */
const PY2_MODULES: Record<string, string> = { __builtin__: "builtins", copy_reg: "copyreg" };

/** Thrown when the buffer ends inside the pickle (a legacy reader then reads more bytes). */
export class PickleTruncated extends Error {}

/** Modules whose globals can run code or touch the system: never part of a checkpoint. */
const FORBIDDEN_MODULES =
  /^(os|posix|nt|subprocess|sys|shutil|socket|importlib|runpy|code|pty|ctypes|webbrowser|pickle|marshal|multiprocessing|threading|asyncio|signal|io|tempfile|pathlib|commands|platform|inspect|types|operator|functools|timeit|pdb|bdb|cProfile|profile|torch\.hub|torch\._C|numpy\.testing)(\.|$)/;
const FORBIDDEN_BUILTINS = new Set([
  "eval",
  "exec",
  "execfile",
  "compile",
  "open",
  "__import__",
  "getattr",
  "setattr",
  "delattr",
  "globals",
  "locals",
  "vars",
  "input",
  "breakpoint",
  "apply",
  "file",
  "reload",
]);

/** Throws for a global that a checkpoint never needs and that could run code if executed. */
export function assertHarmlessGlobal(module: string, name: string, where: string): void {
  const forbidden = FORBIDDEN_MODULES.test(module) ||
    (module === "builtins" && FORBIDDEN_BUILTINS.has(name));
  if (forbidden) {
    throw new Error(
      `${where}: the pickle names the global '${module}.${name}', which a checkpoint never needs and which could ` +
        `run code when unpickled; refusing the file (nothing was executed)`,
    );
  }
}

const textDecoder = new TextDecoder("utf-8", { fatal: true });

const latin1 = (b: Uint8Array) => Array.from(b, (c) => String.fromCharCode(c)).join("");

/** Little-endian two's-complement integer of `bytes` (LONG1/LONG4), as a number when safe. */
function decodeLong(bytes: Uint8Array): number | bigint {
  if (bytes.length === 0) return 0;
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]);
  if (bytes[bytes.length - 1] & 0x80) v -= 1n << BigInt(8 * bytes.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** Python's repr of a protocol-0 string (`'abc'` or `"abc"`) with the common escapes. */
function unquote(s: string): string {
  const body = s.slice(1, -1);
  return body.replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|.)/g, (_, e: string) => {
    if (e[0] === "x" || e[0] === "u") return String.fromCharCode(parseInt(e.slice(1), 16));
    return ({ n: "\n", r: "\r", t: "\t", "\\": "\\", "'": "'", '"': '"' } as Record<string, string>)[e] ?? e;
  });
}

/**
 * Run the pickle in `bytes` starting at `start`; returns the value and the offset after STOP.
 * `where` labels errors (the file and the pickle's name).
 */
export function unpickle(
  bytes: Uint8Array,
  globals: PickleGlobals,
  where: string,
  start = 0,
): { value: PyValue; end: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = start;
  const stack: PyValue[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PyValue>();
  const fail = (msg: string): never => {
    throw new Error(`${where}: pickle byte ${pos}: ${msg}`);
  };
  const need = (n: number) => {
    if (pos + n > bytes.length) throw new PickleTruncated(`${where}: the pickle ends early (byte ${bytes.length})`);
  };
  const take = (n: number) => {
    need(n);
    const out = bytes.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  const u8 = () => take(1)[0];
  const u16 = () => (need(2), pos += 2, view.getUint16(pos - 2, true));
  const u32 = () => (need(4), pos += 4, view.getUint32(pos - 4, true));
  const i32 = () => (need(4), pos += 4, view.getInt32(pos - 4, true));
  const u64 = () => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(bytes.length)) fail(`a length of ${v} bytes exceeds the data`);
    return Number(v);
  };
  const line = () => {
    const nl = bytes.indexOf(0x0a, pos);
    if (nl < 0) throw new PickleTruncated(`${where}: the pickle ends early inside a text opcode`);
    const s = latin1(bytes.subarray(pos, nl));
    pos = nl + 1;
    return s;
  };
  const utf8 = (b: Uint8Array) => {
    try {
      return textDecoder.decode(b);
    } catch {
      return fail("a string is not valid UTF-8");
    }
  };
  const pop = (): PyValue => {
    if (stack.length <= (marks.at(-1) ?? 0)) fail("stack underflow");
    return stack.pop()!;
  };
  const top = (): PyValue => {
    if (!stack.length) fail("stack underflow");
    return stack[stack.length - 1];
  };
  const popMark = (): PyValue[] => {
    const m = marks.pop();
    if (m === undefined) fail("no MARK to pop to");
    return stack.splice(m!);
  };
  const global = (module: string, name: string): PyValue => {
    module = PY2_MODULES[module] ?? module;
    assertHarmlessGlobal(module, name, where);
    return new PyGlobal(module, name);
  };
  /** REDUCE / NEWOBJ: an allowed builder, or an inert placeholder. */
  const call = (fn: PyValue, args: PyValue): PyValue => {
    if (!(fn instanceof PyGlobal)) return new PyOpaque(fn instanceof PyOpaque ? fn.global : "<call>", args);
    const build = globals.calls[fn.qualname];
    if (!build) return new PyOpaque(fn.qualname, args);
    return build(Array.isArray(args) ? args : [args]);
  };
  const setItems = (d: PyValue, items: PyValue[]) => {
    if (d instanceof Map) { for (let i = 0; i + 1 < items.length; i += 2) d.set(items[i], items[i + 1]); }
    else if (d instanceof PyOpaque) d.state = items; // e.g. a dict subclass we do not know
    else fail("SETITEM(S) on a value that is not a dict");
  };

  for (;;) {
    const at = pos;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail("pickle protocol above 5");
        break;
      case 0x95: // FRAME
        take(8);
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) fail(`STOP with ${stack.length} values on the stack`);
        return { value: pop(), end: pos };
      case 0x28: // MARK
        marks.push(stack.length); // a mark is a stack height, not a stack value
        break;
      case 0x30: // POP
        if (stack.length) stack.pop();
        else fail("POP on an empty stack");
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: // LONG1
        stack.push(decodeLong(take(u8())));
        break;
      case 0x8b: // LONG4
        stack.push(decodeLong(take(u32())));
        break;
      case 0x49: { // INT (protocol 0): also "00"/"01" for booleans
        const s = line().trim();
        stack.push(s === "00" ? false : s === "01" ? true : decodeIntText(s, fail));
        break;
      }
      case 0x4c: // LONG (protocol 0)
        stack.push(decodeIntText(line().trim().replace(/L$/, ""), fail));
        break;
      case 0x46: // FLOAT
        stack.push(parseFloat(line()));
        break;
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        stack.push(utf8(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(utf8(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(utf8(take(u64())));
        break;
      case 0x56: // UNICODE (raw-unicode-escape)
        stack.push(line().replace(/\\u([0-9a-fA-F]{4})/g, (_, h) => String.fromCharCode(parseInt(h, 16))));
        break;
      case 0x53: // STRING (protocol 0, quoted)
        stack.push(unquote(line().trim()));
        break;
      case 0x54: // BINSTRING (python 2 str: read as latin-1)
        stack.push(latin1(take(i32())));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(latin1(take(u8())));
        break;
      case 0x42: // BINBYTES
        stack.push(take(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(take(u64()).slice());
        break;
      case 0x29: // EMPTY_TUPLE
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: { // TUPLE2
        const b = pop(), a = pop();
        stack.push([a, b]);
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop(), b = pop(), a = pop();
        stack.push([a, b, c]);
        break;
      }
      case 0x74: // TUPLE
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x64: { // DICT
        const d = new Map();
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case 0x8f: // EMPTY_SET
        stack.push(new Set());
        break;
      case 0x91: // FROZENSET
        stack.push(new Set(popMark()));
        break;
      case 0x90: { // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) fail("ADDITEMS on a value that is not a set");
        for (const x of items) (s as Set<unknown>).add(x);
        break;
      }
      case 0x61: { // APPEND
        const v = pop();
        const l = top();
        if (Array.isArray(l)) l.push(v);
        else if (!(l instanceof PyOpaque)) fail("APPEND on a value that is not a list");
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        const l = top();
        if (Array.isArray(l)) l.push(...items);
        else if (!(l instanceof PyOpaque)) fail("APPENDS on a value that is not a list");
        break;
      }
      case 0x73: { // SETITEM
        const v = pop(), k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x63: { // GLOBAL "module\nname\n"
        const module = line(), name = line();
        stack.push(global(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop(), module = pop();
        if (typeof module !== "string" || typeof name !== "string") fail("STACK_GLOBAL needs two strings");
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop(), fn = pop();
        stack.push(call(fn, args));
        break;
      }
      case 0x81: { // NEWOBJ: cls.__new__(cls, *args)
        const args = pop(), cls = pop();
        stack.push(call(cls, args));
        break;
      }
      case 0x92: { // NEWOBJ_EX
        pop(); // kwargs
        const args = pop(), cls = pop();
        stack.push(call(cls, args));
        break;
      }
      case 0x6f: { // OBJ
        const items = popMark();
        stack.push(call(items[0], items.slice(1)));
        break;
      }
      case 0x69: { // INST
        const module = line(), name = line();
        stack.push(call(global(module, name), popMark()));
        break;
      }
      case 0x62: { // BUILD: obj.__setstate__(state); inert here
        const state = pop();
        const obj = top();
        if (obj instanceof PyOpaque) obj.state = state;
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!globals.persistentLoad) fail("a persistent id, but this pickle should have none");
        stack.push(globals.persistentLoad!(pid));
        break;
      }
      case 0x50: { // PERSID
        const pid = line();
        if (!globals.persistentLoad) fail("a persistent id, but this pickle should have none");
        stack.push(globals.persistentLoad!(pid));
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x70: // PUT
        memo.set(Number(line()), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: // LONG_BINGET
      case 0x67: { // GET
        const k = op === 0x68 ? u8() : op === 0x6a ? u32() : Number(line());
        if (!memo.has(k)) fail(`memo key ${k} was never stored`);
        stack.push(memo.get(k)!);
        break;
      }
      default:
        pos = at;
        fail(
          `opcode 0x${op.toString(16).padStart(2, "0")} is not supported (extension registry or out-of-band buffers)`,
        );
    }
  }
}

function decodeIntText(s: string, fail: (m: string) => never): number | bigint {
  if (!/^[-+]?\d+$/.test(s)) return fail(`'${s}' is not an integer`);
  const v = BigInt(s);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}
