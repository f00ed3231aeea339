"""Table-driven, schema-informed EXI codec for ISO 15118 (runtime; no xmlschema needed).

EXI settings as the stack's Java codec uses them: header byte 0x80 (no cookie, no options),
bit-packed, schema-informed, NOT strict (an event code takes ceil(log2(n+1)) bits because every state
reserves an escape to second-level events), no value string table (a string is its length + 2
followed by its code points).

Messages are plain dicts in the stack's JSON shape: {"SessionSetupReq": {"Header": {...}, ...}};
repeated elements are lists, hexBinary is an upper-case hex string, base64Binary a base64 string,
a complex type with simple content and attributes is {"<attr>": ..., "value": ...}.

Modes:
  * "jar" (default): byte-identical to the jar, including its deviations: an empty value is written
    as a second-level EE, a value outside its facet as untyped text (second-level CH).
  * "cbv2g": empty values written as zero-length typed values (what EVerest's cbv2g writes).
  * strict=True (decoder): any deviation, facet violation or trailing data is an EXIDecodeError.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field

from v2g_bench.exi.errors import EXIDecodeError, EXIEncodeError, EXISchemaError
from v2g_bench.exi.grammar_gen import AT, CH, EE, SE, SE_ANY, SCHEMA_SETS

HEADER = 0x80
_FAST = object()  # marker: the encoder's fast path already wrote the child
# caps of the hardened decoder: no ISO 15118 value comes near these
MAX_STRING_CHARS = 4096
MAX_BINARY_BYTES = 8192
MAX_UINT_OCTETS = 10          # 70 bits: more than any xs:unsignedLong needs
MAX_DEPTH = 64
MAX_EVENTS = 200_000

# namespace the stack passes -> schema set
NAMESPACE_TO_SET = {ns: name for name, (_, ns) in SCHEMA_SETS.items()}

# second-level events (non-strict) as the jar orders them; see `_second_level`
L2_EE, L2_XSI_TYPE, L2_XSI_NIL, L2_AT_ANY, L2_AT_INVALID, L2_SE_ANY, L2_CH = range(7)


# ------------------------------------------------------------------------------------------------
# bit streams
class BitWriter:
    """Bits appended MSB first. Whole bytes go to a bytearray as soon as they are complete, so the
    pending integer stays small and writing is linear in the stream size (shifting one big integer
    per write made a 90 kB message cost seconds)."""
    __slots__ = ("buf", "acc", "n")

    def __init__(self):
        self.buf = bytearray()
        self.acc = 0        # pending bits (fewer than 8 after a flush)
        self.n = 0          # how many

    def bits(self, value: int, nbits: int) -> None:
        acc = (self.acc << nbits) | value
        n = self.n + nbits
        if n >= 32:
            keep = n & 7
            self.buf += (acc >> keep).to_bytes((n - keep) >> 3, "big")
            acc &= (1 << keep) - 1
            n = keep
        self.acc, self.n = acc, n

    def uint(self, v: int) -> None:
        # EXI unsigned integer: 7-bit groups, least significant first, high bit = more follow
        while v >= 0x80:
            self.bits(0x80 | (v & 0x7F), 8)
            v >>= 7
        self.bits(v, 8)

    def getvalue(self) -> bytes:
        pad = (-self.n) % 8
        return bytes(self.buf) + (self.acc << pad).to_bytes((self.n + pad) // 8, "big")


class BitReader:
    """Reads n bits at a bit offset from the bytes themselves: each read costs O(n), so decoding is
    linear in the stream size (shifting the whole stream as one integer per read was quadratic)."""
    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, start_bit: int = 0):
        self.data = data
        self.pos = start_bit
        self.end = len(data) * 8

    def bits(self, n: int) -> int:
        pos = self.pos
        stop = pos + n
        if stop > self.end:
            raise _Truncated(pos)
        self.pos = stop
        last = (stop + 7) >> 3
        chunk = int.from_bytes(self.data[pos >> 3:last], "big")
        return (chunk >> ((last << 3) - stop)) & ((1 << n) - 1)

    def uint(self, max_octets: int = MAX_UINT_OCTETS) -> int:
        v = 0
        shift = 0
        for _ in range(max_octets):
            b = self.bits(8)
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7
        raise _Oversized(self.pos, f"unsigned integer longer than {max_octets} octets")


class _Truncated(Exception):
    def __init__(self, pos):
        self.pos = pos


class _Oversized(Exception):
    def __init__(self, pos, what):
        self.pos, self.what = pos, what


# ------------------------------------------------------------------------------------------------
# compiled grammar
@dataclass(slots=True)
class State:
    prods: list            # [(kind, arg, next)]
    bits: int              # first-level event code width
    start_tag: bool        # second-level events of a start tag (xsi:type, xsi:nil, AT(*) ...)
    has_ee: bool
    by_name: dict = field(default_factory=dict)   # local name -> (code, kind, arg, next)
    ee_code: int = -1
    ch: tuple | None = None                      # (code, dt, next)
    eprods: tuple = ()   # (code, kind, name, arg, next, child type) for the encoder/decoder hot loops
    first: bool = False  # the type's first state: the only one with AT(xsi:type) / AT(xsi:nil)


@dataclass(slots=True)
class TypeGrammar:
    name: str
    states: list
    simple: int | None       # datatype of simple content / simple type
    is_simple_type: bool
    multi: frozenset
    attr_names: frozenset
    mixed: bool = False      # mixed content: text between children is kept under "#text"


class Grammar:
    """Compiled tables of one schema set."""

    def __init__(self, tables: dict):
        self.set_name = tables["set"]
        self.namespace = tables["namespace"]
        self.source = tables["source"]
        self.qnames = [tuple(q) for q in tables["qnames"]]
        self.datatypes = [tuple(_freeze(x) for x in d) for d in tables["datatypes"]]
        self.elements = [(self.qnames[q][1], self.qnames[q][0], t) for q, t in tables["elements"]]
        self.attributes = [(self.qnames[q][1], self.qnames[q][0], dt) for q, dt in tables["attributes"]]
        self.types: list[TypeGrammar] = []
        for t in tables["types"]:
            states = []
            nstart = t["nattr_states"]
            attr_names = set()
            for i, prods in enumerate(t["states"]):
                prods = [tuple(p) for p in prods]
                st = State(prods=prods, bits=len(prods).bit_length(), start_tag=i < nstart,
                           has_ee=any(p[0] == EE for p in prods))
                for code, (kind, arg, nxt) in enumerate(prods):
                    if kind == SE:
                        st.by_name.setdefault(self.elements[arg][0], (code, kind, arg, nxt))
                    elif kind == AT:
                        st.by_name.setdefault(self.attributes[arg][0], (code, kind, arg, nxt))
                        attr_names.add(self.attributes[arg][0])
                    elif kind == EE:
                        st.ee_code = code
                    elif kind == CH and st.ch is None:
                        st.ch = (code, arg, nxt)
                st.eprods = tuple(
                    (code, kind, self.elements[arg][0] if kind == SE else
                     self.attributes[arg][0] if kind == AT else None,
                     arg, nxt, self.elements[arg][2] if kind == SE else -1)
                    for code, (kind, arg, nxt) in enumerate(prods))
                states.append(st)
            # EXI 1.0 §8.5.4.4.1: every start-tag state, up to and including the one after the last
            # attribute, has the start-tag second-level events; xsi:type/xsi:nil only the first
            # (the jar: after SignatureValue/@Id an empty value's EE takes 3 bits, not 2)
            for i in range(min(len(attr_names) + 1, len(states))):
                states[i].start_tag = True
            states[0].first = True
            is_simple_type = len(states) == 2 and states[0].prods and states[0].prods[0][0] == CH \
                and not attr_names and t["simple"] is not None and not t["multi"]
            self.types.append(TypeGrammar(t.get("name", ""), states, t["simple"], is_simple_type,
                                          _multi(t, self.elements), frozenset(attr_names),
                                          bool(t.get("mixed"))))
        self.doc = list(tables["doc"])
        self.doc_bits = len(self.doc).bit_length()  # n roots + SE(*) -> ceil(log2(n+1))
        self.doc_by_name = {self.elements[e][0]: (i, e) for i, e in enumerate(self.doc)}
        # fragment grammar (signed parts): SE(F0..Fn-1), SE(*), ED -> ceil(log2(n+2)) bits
        self.fragment = [tuple(x) for x in tables.get("fragment", ())]
        self.frag_bits = (len(self.fragment) + 1).bit_length()
        self.frag_by_name: dict[str, tuple[int, int]] = {}
        for i, (q, e) in enumerate(self.fragment):
            self.frag_by_name.setdefault(self.qnames[q][1], (i, e))


def _multi(t: dict, elements: list) -> frozenset:
    """Children that are lists in the JSON shape: repeatable ones, and in a mixed type every child
    (the jar's JAXB maps mixed content to one list, e.g. "HMACOutputLength": [5])."""
    if not t.get("mixed"):
        return frozenset(t["multi"])
    names = {elements[a][0] for st in t["states"] for k, a, _ in st if k == SE}
    return frozenset(t["multi"]) | frozenset(names)


def _freeze(x):
    return tuple(x) if isinstance(x, list) else x


_GRAMMARS: dict[str, Grammar] = {}


def get_grammar(set_name_or_ns: str) -> Grammar:
    """Grammar of a schema set, by set name ('iso20_dc') or by the namespace the stack passes."""
    name = NAMESPACE_TO_SET.get(set_name_or_ns, set_name_or_ns)
    g = _GRAMMARS.get(name)
    if g is None:
        if name not in SCHEMA_SETS:
            raise EXISchemaError(f"unknown schema set or namespace {set_name_or_ns!r}",
                                 fix=f"use one of {sorted(SCHEMA_SETS)} or their namespaces")
        from v2g_bench.exi.grammar_gen import load_tables

        g = _GRAMMARS[name] = Grammar(load_tables(name))
    return g


# ------------------------------------------------------------------------------------------------
# second-level events (non-strict): the jar's order, checked against it in the unit tests
def _second_level(st: State) -> list[int]:
    ev = [] if st.has_ee else [L2_EE]
    if st.start_tag:
        ev += [L2_XSI_TYPE, L2_XSI_NIL, L2_AT_ANY, L2_AT_INVALID] if st.first else [L2_AT_ANY, L2_AT_INVALID]
    ev += [L2_SE_ANY, L2_CH]
    return ev


_TWINS: dict[int, State] = {}


def _content_twin(st: State) -> State:
    """The state a deviation leaves the element in: same productions, but element-content
    second-level events (the jar moves there after an untyped CH in a start tag)."""
    if not st.start_tag:
        return st
    tw = _TWINS.get(id(st))
    if tw is None:
        tw = _TWINS[id(st)] = State(prods=st.prods, bits=st.bits, start_tag=False, has_ee=st.has_ee,
                                    by_name=st.by_name, ee_code=st.ee_code, ch=st.ch)
    return tw


def _l2_code(st: State, event: int) -> tuple[int, int]:
    ev = _second_level(st)
    return ev.index(event), (len(ev) - 1).bit_length()


# ------------------------------------------------------------------------------------------------
# encoder
class Encoder:
    def __init__(self, grammar: Grammar, mode: str = "jar"):
        if mode not in ("jar", "cbv2g"):
            raise EXIEncodeError(f"unknown mode {mode!r}", expected="'jar' or 'cbv2g'")
        self.g = grammar
        self.mode = mode

    def encode(self, message: dict, *, fragment: bool | None = None) -> bytes:
        """`fragment`: None = as the jar decides (signed parts and every xmldsig root are EXI
        fragments, see `uses_fragment`), True/False to force."""
        if not isinstance(message, dict) or len(message) != 1:
            raise EXIEncodeError("a message is a dict with exactly one root element",
                                 expected="{'<RootElement>': {...}}", got=_short(message))
        (root, value), = message.items()
        if fragment is None:
            fragment = uses_fragment(self.g, root)
        if fragment:
            return self._encode_fragment(root, value)
        hit = self.g.doc_by_name.get(root)
        if hit is None:
            raise EXIEncodeError(f"{root!r} is not a root element of schema set {self.g.set_name}",
                                 path="/" + str(root), expected=f"one of {sorted(self.g.doc_by_name)}")
        w = BitWriter()
        w.bits(HEADER, 8)
        code, el = hit
        w.bits(code, self.g.doc_bits)
        self._element(w, self.g.elements[el][2], value, "/" + root)
        # DocEnd: ED is the only event and has no second level -> 0 bits
        return w.getvalue()

    def _encode_fragment(self, root: str, value) -> bytes:
        hit = self.g.frag_by_name.get(root)
        if hit is None:
            raise EXIEncodeError(f"{root!r} is not an element of schema set {self.g.set_name}",
                                 path="/" + str(root), expected="an element declared in the schema")
        code, el = hit
        if el < 0:
            raise EXIEncodeError(f"{root!r} is declared with several types in {self.g.set_name}; as a "
                                 "fragment root it needs the relaxed element-fragment grammar, which this "
                                 "codec does not implement", path="/" + root,
                                 fix="use codec 'jar' for this signed element")
        if self.mode == "jar" and self.g.set_name == "xmldsig" and root == "SignedInfo":
            value = jar_signed_info(value)
        w = BitWriter()
        w.bits(HEADER, 8)
        w.bits(code, self.g.frag_bits)          # SD (0 bits) then SE(F_code)
        self._element(w, self.g.elements[el][2], value, "/" + root)
        w.bits(len(self.g.fragment) + 1, self.g.frag_bits)  # ED
        return w.getvalue()

    def _element(self, w: BitWriter, tidx: int, value, path: str) -> None:
        t = self.g.types[tidx]
        if t.is_simple_type:
            self._simple(w, t, value, path)
            return
        text = None
        if t.simple is not None:  # simple content: scalar, or {"attr": .., "value": ..}
            if isinstance(value, dict):
                text = value.get("value")
                data = {k: v for k, v in value.items() if k != "value"}
            else:
                text, data = value, {}
        else:
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise EXIEncodeError("complex element needs an object", path=path,
                                     expected=f"object of type {t.name or 'anonymous'}", got=_short(value))
            data = value
            if t.mixed and "#text" in data:  # mixed text: written at the first point CH is allowed
                text = data["#text"]
                data = {k: v for k, v in data.items() if k != "#text"}
        # an empty (or absent) simple-content value: the jar ends the element with a second-level EE
        # where the value would be (cbv2g writes a zero-length value instead)
        l2_empty = t.simple is not None and (text is None or (self.mode == "jar" and _is_empty(text)))
        used: dict[str, int] = {}
        text_done = text is None and not l2_empty
        state = t.states[0]
        g = self.g
        types = g.types
        while True:
            chosen = None
            if not text_done and t.mixed and state.ch is not None:
                code, arg, nxt = state.ch
                text_done = True
                w.bits(code, state.bits)
                self._value(w, arg, text, f"{path}/#text")
                state = t.states[nxt]
                continue
            if t.mixed:
                # mixed content is one ordered list in the jar (JAXB): children go in the order
                # of the message's keys, not in schema order
                nxt_key = next((k for k in data if used.get(k, 0) < (len(data[k]) if type(data[k]) is list
                                                                     else 1) and k not in t.attr_names), None)
            for code, kind, name, arg, nxt, ctidx in state.eprods:
                if kind == SE:
                    if name in data and (not t.mixed or name == nxt_key):
                        v = data[name]
                        k = used.get(name, 0)
                        if type(v) is list:
                            if k < len(v):
                                v = v[k]
                                used[name] = k + 1
                                ct = types[ctidx]
                                if ct.is_simple_type and self._fast_simple(w, state.bits, code, ct, v):
                                    chosen = _FAST
                                    state = t.states[nxt]
                                    break
                                chosen = (code, kind, arg, nxt, v, f"{path}/{name}[{k}]")
                                break
                        elif k == 0:
                            used[name] = 1
                            ct = types[ctidx]
                            if ct.is_simple_type and self._fast_simple(w, state.bits, code, ct, v):
                                chosen = _FAST
                                state = t.states[nxt]
                                break
                            chosen = (code, kind, arg, nxt, v, f"{path}/{name}")
                            break
                elif kind == AT:
                    if name in data and name not in used:
                        used[name] = 1
                        chosen = (code, kind, arg, nxt, data[name], f"{path}/@{name}")
                        break
                elif kind == CH:
                    if not text_done:
                        if l2_empty:
                            self._check_all_used(data, used, state, path)
                            code2, nb = _l2_code(state, L2_EE)
                            w.bits(len(state.prods), state.bits)
                            w.bits(code2, nb)
                            return
                        text_done = True
                        chosen = (code, kind, arg, nxt, text, f"{path}/text()")
                        break
                elif kind == EE:
                    chosen = (code, kind, arg, nxt, None, path)
                    break
            if chosen is _FAST:
                continue
            if chosen is None:
                left = [k for k in data if used.get(k, 0) < (len(data[k]) if isinstance(data[k], list) else 1)]
                exp = [self._prod_name(p) for p in state.prods]
                if left:
                    raise EXIEncodeError(f"element {left[0]!r} is not allowed here (out of schema order, "
                                         "unknown, or too many)", path=path, expected=f"one of {exp}",
                                         got=left[0])
                raise EXIEncodeError("required content missing", path=path, expected=f"one of {exp}",
                                     got="end of element")
            code, kind, arg, nxt, v, p = chosen
            if kind == EE:
                left = [k for k in data if used.get(k, 0) < (len(data[k]) if isinstance(data[k], list) else 1)]
                if left:
                    raise EXIEncodeError(f"element {left[0]!r} is not allowed here (out of schema order, "
                                         "unknown, or too many)", path=path,
                                         expected=f"one of {[self._prod_name(p) for p in state.prods]}",
                                         got=left[0])
                if not text_done:
                    raise EXIEncodeError("text content not allowed", path=path, got=_short(text))
                w.bits(code, state.bits)
                return
            w.bits(code, state.bits)
            if kind == SE:
                self._element(w, g.elements[arg][2], v, p)
            elif kind == AT:
                self._value(w, g.attributes[arg][2], v, p)
            else:
                self._value(w, arg, v, p)
            state = t.states[nxt]

    def _check_all_used(self, data: dict, used: dict, state: State, path: str) -> None:
        left = [k for k in data if used.get(k, 0) < (len(data[k]) if isinstance(data[k], list) else 1)]
        if left:
            raise EXIEncodeError(f"element {left[0]!r} is not allowed here (out of schema order, unknown, or "
                                 "too many)", path=path,
                                 expected=f"one of {[self._prod_name(p) for p in state.prods]}", got=left[0])

    def _fast_simple(self, w: BitWriter, bits: int, code: int, t: TypeGrammar, v) -> bool:
        """Common case of a simple-typed child with a valid value: SE, CH, value, EE in few writes.
        Returns False (nothing written) for anything unusual; the general path handles it."""
        d = self.g.datatypes[t.simple]
        k = d[0]
        tv = type(v)
        if k == "nbit":
            if tv is not int or not d[1] <= v <= d[2]:
                return False
            nb = d[3]
            # SE code, CH code 0 (1 bit), value, EE code 0 (1 bit)
            w.bits((((code << 1) << nb) | (v - d[1])) << 1, bits + nb + 2)
            return True
        if k == "bool":
            if tv is not bool:
                return False
            w.bits(((code << 1) << 1 | v) << 1, bits + 3)
            return True
        if k == "int":
            if tv is not int or (d[1] is not None and v < d[1]) or (d[2] is not None and v > d[2]):
                return False
            if v < 0:
                w.bits((code << 2) | 1, bits + 2)
                w.uint(-v - 1)
            else:
                w.bits(code << 2, bits + 2)
                w.uint(v)
            w.bits(0, 1)
            return True
        if k == "uint":
            if tv is not int or v < d[1] or (d[2] is not None and v > d[2]):
                return False
            w.bits(code << 1, bits + 1)
            w.uint(v)
            w.bits(0, 1)
            return True
        if k == "enum":
            try:
                i = d[1].index(v)
            except ValueError:
                return False
            w.bits((((code << 1) << d[2]) | i) << 1, bits + d[2] + 2)
            return True
        return False

    def _prod_name(self, prod) -> str:
        kind, arg, _ = prod
        if kind == SE:
            return self.g.elements[arg][0]
        if kind == AT:
            return "@" + self.g.attributes[arg][0]
        return {EE: "end", CH: "text", SE_ANY: "any element"}.get(kind, "?")

    def _simple(self, w: BitWriter, t: TypeGrammar, value, path: str) -> None:
        """Element of simple type: CH then EE (codes 0 of 1-bit states), with the jar's deviations."""
        s0 = t.states[0]
        dt = t.simple
        if value is None or value == "" or (isinstance(value, (list, bytes)) and len(value) == 0):
            if self.mode == "jar" or value is None:
                # the jar: <X/> -> EE as a second-level event of the start tag
                code, nb = _l2_code(s0, L2_EE)
                w.bits(len(s0.prods), s0.bits)
                w.bits(code, nb)
                return
            w.bits(0, s0.bits)
            self._value(w, dt, value, path)   # cbv2g: zero-length typed value
            w.bits(0, t.states[1].bits)
            return
        if self.mode == "jar" and not self._fits(dt, value):
            why = self._jar_cannot_hold(dt, value)
            if why:
                raise EXIEncodeError(f"value the jar cannot represent ({why})", path=path,
                                     expected=self._describe_dt(dt), got=_short(value))
            # the jar writes a value outside its facet as untyped text (second-level CH)
            code, nb = _l2_code(s0, L2_CH)
            w.bits(len(s0.prods), s0.bits)
            w.bits(code, nb)
            _write_string(w, _lexical(value))
            tw = _content_twin(s0)  # the jar stays in the start state (as element content) ...
            code, nb = _l2_code(tw, L2_EE)  # ... so the end is a second-level EE
            w.bits(len(tw.prods), tw.bits)
            w.bits(code, nb)
            return
        w.bits(0, s0.bits)
        self._value(w, dt, value, path)
        w.bits(0, t.states[1].bits)

    def _fits(self, dt: int, v) -> bool:
        d = self.g.datatypes[dt]
        k = d[0]
        if isinstance(v, bool):
            return k == "bool"
        if k == "nbit":
            return isinstance(v, int) and d[1] <= v <= d[2]
        if k == "uint":
            return isinstance(v, int) and v >= d[1] and (d[2] is None or v <= d[2])
        if k == "int":
            return isinstance(v, int) and (d[1] is None or v >= d[1]) and (d[2] is None or v <= d[2])
        if k == "enum":
            return v in d[1]
        return True

    @staticmethod
    def _check_length_facet(d: tuple, v, path: str) -> None:
        """cbv2g's C structs have fixed-size arrays from the length facets: a longer value cannot be
        encoded there, so this mode refuses it (the jar does not check length facets)."""
        n = _length_of(d[0], v)
        lo, hi = d[1], d[2]
        if n is not None and ((lo is not None and n < lo) or (hi is not None and n > hi)):
            unit = "characters" if d[0] == "str" else "octets"
            raise EXIEncodeError(f"length {n} {unit} outside the schema's length facet", path=path,
                                 expected=f"{lo if lo is not None else 0}..{hi if hi is not None else 'inf'} {unit}",
                                 got=_short(v))

    def _jar_cannot_hold(self, dt: int, v) -> str | None:
        """Why the jar (JAXB types of the schema's built-in base type) cannot hold `v` at all, or
        None when it can and writes it as untyped text. A value no jar-based peer could produce
        is refused rather than written as text nobody can read back into the message."""
        d = self.g.datatypes[dt]
        k = d[0]
        if k in ("nbit", "uint", "int"):
            if isinstance(v, bool) or not isinstance(v, int):
                return "not an integer"
            base = d[-1] if isinstance(d[-1], tuple) else (None, None)
            if (base[0] is not None and v < base[0]) or (base[1] is not None and v > base[1]):
                return f"outside the base type's range {base[0]}..{base[1]}"
        elif k == "enum" and v not in d[1]:
            return "not a value of the enumeration"
        elif k == "bool" and not isinstance(v, bool):
            return "not a boolean"
        return None

    def _describe_dt(self, dt: int) -> str:
        d = self.g.datatypes[dt]
        k = d[0]
        if k in ("nbit", "uint", "int"):
            return f"integer {d[1]}..{d[2]}"
        if k == "enum":
            return f"one of {list(d[1])}"
        return k

    def _value(self, w: BitWriter, dt: int, v, path: str) -> None:
        d = self.g.datatypes[dt]
        k = d[0]
        if self.mode == "cbv2g" and k in ("str", "hex", "b64"):
            self._check_length_facet(d, v, path)
        try:
            if k == "nbit":
                if isinstance(v, bool) or not isinstance(v, int) or not d[1] <= v <= d[2]:
                    raise EXIEncodeError("integer out of range", path=path, expected=f"{d[1]}..{d[2]}", got=v)
                w.bits(v - d[1], d[3])
            elif k == "uint":
                if isinstance(v, bool) or not isinstance(v, int) or v < 0 or v < d[1] or \
                        (d[2] is not None and v > d[2]):
                    raise EXIEncodeError("unsigned integer out of range", path=path,
                                         expected=f"{d[1]}..{d[2] if d[2] is not None else 'inf'}", got=v)
                w.uint(v)
            elif k == "int":
                if isinstance(v, bool) or not isinstance(v, int) or (d[1] is not None and v < d[1]) or \
                        (d[2] is not None and v > d[2]):
                    raise EXIEncodeError("integer out of range", path=path, expected=f"{d[1]}..{d[2]}", got=v)
                if v < 0:
                    w.bits(1, 1)
                    w.uint(-v - 1)
                else:
                    w.bits(0, 1)
                    w.uint(v)
            elif k == "bool":
                if not isinstance(v, bool):
                    raise EXIEncodeError("boolean expected", path=path, expected="true/false", got=v)
                w.bits(1 if v else 0, 1)
            elif k == "enum":
                try:
                    w.bits(d[1].index(v), d[2])
                except ValueError:
                    raise EXIEncodeError("value not in enumeration", path=path,
                                         expected=f"one of {list(d[1])}", got=v) from None
            elif k == "str":
                if not isinstance(v, str):
                    raise EXIEncodeError("string expected", path=path, got=_short(v))
                _write_string(w, v)
            elif k in ("hex", "b64"):
                if isinstance(v, str):
                    raw = bytes.fromhex(v) if k == "hex" else base64.b64decode(v, validate=True)
                elif isinstance(v, (bytes, bytearray)):
                    raw = bytes(v)
                else:
                    raise EXIEncodeError("binary value expected", path=path,
                                         expected="hex string" if k == "hex" else "base64 string", got=_short(v))
                w.uint(len(raw))
                w.bits(int.from_bytes(raw, "big"), 8 * len(raw))
            elif k == "list":
                if not isinstance(v, list):
                    v = str(v).split()
                w.uint(len(v))
                for item in v:
                    self._value(w, d[1], item, path)
            else:
                raise EXIEncodeError(f"datatype {k} not supported by this codec", path=path)
        except (ValueError, binascii.Error) as exc:
            raise EXIEncodeError(f"malformed {k} value ({exc})", path=path, got=_short(v)) from None


def _length_of(k: str, v) -> int | None:
    """Length in the facet's unit: characters for strings, octets for binary."""
    if isinstance(v, (bytes, bytearray)):
        return len(v)
    if not isinstance(v, str):
        return None
    if k == "hex":
        return len(v) // 2
    if k == "b64":
        try:
            return len(base64.b64decode(v, validate=True))
        except (ValueError, binascii.Error):
            return None   # _value reports the malformed value
    return len(v)


def _is_empty(v) -> bool:
    return v is None or (isinstance(v, (str, bytes, bytearray, list)) and len(v) == 0)


def _write_string(w: BitWriter, s: str) -> None:
    w.uint(len(s) + 2)  # no string table: 0/1 would be table hits
    for ch in s:
        w.uint(ord(ch))


def _lexical(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _short(v) -> str:
    s = repr(v)
    return s if len(s) <= 80 else s[:77] + "..."


# ------------------------------------------------------------------------------------------------
# decoder
class Decoder:
    def __init__(self, grammar: Grammar, *, strict: bool = False):
        self.g = grammar
        self.strict = strict

    def decode(self, data: bytes, *, fragment: bool | None = None) -> dict:
        """`fragment`: None = fragment only for the xmldsig set (what the stack signs), True for
        the signed parts of -2/-20 (e.g. a received PnC_AReqAuthorizationMode's digest input)."""
        if fragment is None:
            fragment = self.g.set_name == "xmldsig"
        if fragment:
            return self._decode_fragment(data)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise EXIDecodeError("EXI stream must be bytes", position=0, got=type(data).__name__)
        data = bytes(data)
        r = BitReader(data)
        self._events = 0
        path = "/"
        try:
            hdr = r.bits(8)
            if hdr != HEADER:
                raise EXIDecodeError("bad EXI header (the ISO 15118 streams use 0x80: no cookie, "
                                     "no options, version 1)", position=0, expected="0x80", got=f"0x{hdr:02x}")
            code = r.bits(self.g.doc_bits)
            if code >= len(self.g.doc):
                raise EXIDecodeError("document starts with an element outside the schema (SE(*))",
                                     position=8, expected=f"a root element of {self.g.set_name}",
                                     got=f"event code {code}")
            el = self.g.doc[code]
            name = self.g.elements[el][0]
            path = "/" + name
            value = self._element(r, self.g.elements[el][2], path, 0)
        except _Truncated as exc:
            raise EXIDecodeError("stream truncated", position=exc.pos, path=self._path or path,
                                 fix="the stream ended inside an event or value") from None
        except _Oversized as exc:
            raise EXIDecodeError(exc.what, position=exc.pos, path=self._path or path) from None
        except RecursionError:
            raise EXIDecodeError("nesting too deep", position=r.pos, path=path) from None
        if self.strict:
            rest = len(data) * 8 - r.pos
            if rest >= 8 or (rest and r.bits(rest) != 0):
                raise EXIDecodeError("trailing data after the end of the document", position=r.pos,
                                     path=path, expected="only zero padding to the byte boundary",
                                     got=f"{rest} more bits")
        return {name: value}

    _path = ""

    def _decode_fragment(self, data: bytes) -> dict:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise EXIDecodeError("EXI stream must be bytes", position=0, got=type(data).__name__)
        data = bytes(data)
        r = BitReader(data)
        self._events = 0
        g = self.g
        n = len(g.fragment)
        path = "/"
        try:
            hdr = r.bits(8)
            if hdr != HEADER:
                raise EXIDecodeError("bad EXI header (the ISO 15118 streams use 0x80)", position=0,
                                     expected="0x80", got=f"0x{hdr:02x}")
            code = r.bits(g.frag_bits)
            if code >= n:
                raise EXIDecodeError("fragment does not start with an element of the schema", position=8,
                                     expected=f"SE(F0..F{n - 1}) of {g.set_name}",
                                     got="SE(*)" if code == n else "ED (empty fragment)" if code == n + 1
                                     else f"event code {code}")
            q, el = g.fragment[code]
            name = g.qnames[q][1]
            path = "/" + name
            if el < 0:
                raise EXIDecodeError(f"fragment root {name!r} needs the relaxed element-fragment grammar "
                                     "(declared with several types); not supported", position=8, path=path)
            value = self._element(r, g.elements[el][2], path, 0)
            pos = r.pos
            end = r.bits(g.frag_bits)
            if end != n + 1:
                raise EXIDecodeError("a fragment with more than one element is not supported (ISO 15118 "
                                     "signs one element per fragment)", position=pos, path=path,
                                     expected=f"ED (event code {n + 1})", got=f"event code {end}")
        except _Truncated as exc:
            raise EXIDecodeError("stream truncated", position=exc.pos, path=self._path or path,
                                 fix="the stream ended inside an event or value") from None
        except _Oversized as exc:
            raise EXIDecodeError(exc.what, position=exc.pos, path=self._path or path) from None
        except RecursionError:
            raise EXIDecodeError("nesting too deep", position=r.pos, path=path) from None
        if self.strict:
            rest = len(data) * 8 - r.pos
            if rest >= 8 or (rest and r.bits(rest) != 0):
                raise EXIDecodeError("trailing data after the end of the fragment", position=r.pos,
                                     path=path, expected="only zero padding to the byte boundary",
                                     got=f"{rest} more bits")
        return {name: value}

    def _element(self, r: BitReader, tidx: int, path: str, depth: int):
        if depth > MAX_DEPTH:
            raise EXIDecodeError("nesting too deep", position=r.pos, path=path, expected=f"<= {MAX_DEPTH}")
        self._events += 1
        if self._events > MAX_EVENTS:
            raise EXIDecodeError("too many events", position=r.pos, path=path, expected=f"<= {MAX_EVENTS}")
        g = self.g
        t = g.types[tidx]
        state = t.states[0]
        out: dict = {}
        text = None
        has_text = False
        while True:
            pos = r.pos
            code = r.bits(state.bits)
            if code < len(state.prods):
                kind, arg, nxt = state.prods[code]
                if kind == EE:
                    break
                if kind == SE:
                    name = g.elements[arg][0]
                    child_path = f"{path}/{name}"
                    child = self._element(r, g.elements[arg][2], child_path, depth + 1)
                    if name in t.multi:
                        out.setdefault(name, []).append(child)
                    else:
                        out[name] = child
                elif kind == AT:
                    name = g.attributes[arg][0]
                    self._path = f"{path}/@{name}"
                    out[name] = self._value(r, g.attributes[arg][2], self._path)
                elif kind == CH:
                    self._path = path
                    v = self._value(r, arg, path)
                    text = text + v if (has_text and t.mixed and text is not None) else v
                    has_text = True
                else:
                    raise EXIDecodeError("wildcard content is not supported", position=pos, path=path)
                state = t.states[nxt]
                continue
            if code > len(state.prods):
                raise EXIDecodeError("invalid event code", position=pos, path=path,
                                     expected=f"0..{len(state.prods)}", got=code)
            # escape: second-level event (a deviation from the schema)
            ev = _second_level(state)
            nb = (len(ev) - 1).bit_length()
            c2 = r.bits(nb)
            if c2 >= len(ev):
                raise EXIDecodeError("invalid second-level event code", position=pos, path=path,
                                     expected=f"0..{len(ev) - 1}", got=c2)
            e2 = ev[c2]
            if e2 == L2_EE:
                if self.strict:
                    raise EXIDecodeError("element ended early (deviation from the schema: second-level EE; "
                                         "an empty value or missing required content)", position=pos,
                                         path=path, expected=self._expected(state), got="end of element")
                if (t.is_simple_type or t.simple is not None) and not has_text:
                    text, has_text = "", True
                break
            if e2 == L2_CH:
                s = self._string(r, path)
                if self.strict:
                    raise EXIDecodeError("untyped value (deviation: the value does not fit its datatype)",
                                         position=pos, path=path, expected=self._expected(state), got=s)
                text, has_text = _untyped(s), True
                state = _content_twin(state)  # the jar's encoder stays in this state
                continue
            raise EXIDecodeError("schema deviation not supported (xsi:type, xsi:nil, unknown attribute "
                                 "or element)", position=pos, path=path, expected=self._expected(state),
                                 got=f"second-level event {c2}")
        if t.is_simple_type:
            return text
        if t.simple is not None:
            if t.attr_names:
                out["value"] = text
                return out
            return text
        if has_text and t.mixed:
            out["#text"] = text   # mixed content (xmldsig): kept, never dropped silently
        return out

    def _expected(self, state: State) -> str:
        names = []
        for kind, arg, _ in state.prods:
            if kind == SE:
                names.append(self.g.elements[arg][0])
            elif kind == AT:
                names.append("@" + self.g.attributes[arg][0])
            elif kind == CH:
                names.append(f"a {self.g.datatypes[arg][0]} value")
            elif kind == EE:
                names.append("end")
        return "one of " + ", ".join(names)

    def _string(self, r: BitReader, path: str) -> str:
        pos = r.pos
        n = r.uint()
        if n < 2:
            raise EXIDecodeError("string table reference, but these streams have no string table",
                                 position=pos, path=path, expected="length + 2 >= 2", got=n)
        n -= 2
        if n > MAX_STRING_CHARS:
            raise EXIDecodeError("string too long", position=pos, path=path,
                                 expected=f"<= {MAX_STRING_CHARS} characters", got=n)
        if n * 8 > r.end - r.pos:
            raise _Truncated(r.pos)
        chars = []
        for _ in range(n):
            cpos = r.pos
            c = r.uint(3)
            if c > 0x10FFFF or 0xD800 <= c <= 0xDFFF:
                raise EXIDecodeError("invalid character code point", position=cpos, path=path, got=c)
            chars.append(chr(c))
        return "".join(chars)

    def _value(self, r: BitReader, dt: int, path: str):
        d = self.g.datatypes[dt]
        k = d[0]
        pos = r.pos
        if k == "nbit":
            v = r.bits(d[3]) + d[1]
            if v > d[2] and self.strict:
                raise EXIDecodeError("integer above its facet", position=pos, path=path,
                                     expected=f"{d[1]}..{d[2]}", got=v)
            return v
        if k == "uint":
            v = r.uint()
            if self.strict and (v < d[1] or (d[2] is not None and v > d[2])):
                raise EXIDecodeError("unsigned integer outside its facet", position=pos, path=path,
                                     expected=f"{d[1]}..{d[2]}", got=v)
            return v
        if k == "int":
            neg = r.bits(1)
            v = r.uint()
            v = -v - 1 if neg else v
            if self.strict and ((d[1] is not None and v < d[1]) or (d[2] is not None and v > d[2])):
                raise EXIDecodeError("integer outside its facet", position=pos, path=path,
                                     expected=f"{d[1]}..{d[2]}", got=v)
            return v
        if k == "bool":
            return bool(r.bits(1))
        if k == "enum":
            i = r.bits(d[2])
            if i >= len(d[1]):
                raise EXIDecodeError("enumeration index out of range", position=pos, path=path,
                                     expected=f"0..{len(d[1]) - 1}", got=i)
            return d[1][i]
        if k == "str":
            s = self._string(r, path)
            if self.strict:
                self._check_len(len(s), d, pos, path)
            return s
        if k in ("hex", "b64"):
            n = r.uint()
            if n > MAX_BINARY_BYTES:
                raise EXIDecodeError("binary value too long", position=pos, path=path,
                                     expected=f"<= {MAX_BINARY_BYTES} bytes", got=n)
            if self.strict:
                self._check_len(n, d, pos, path)
            raw = r.bits(8 * n).to_bytes(n, "big") if n else b""
            return raw.hex().upper() if k == "hex" else base64.b64encode(raw).decode()
        if k == "list":
            n = r.uint()
            if n > MAX_STRING_CHARS:
                raise EXIDecodeError("list too long", position=pos, path=path, got=n)
            return [self._value(r, d[1], path) for _ in range(n)]
        raise EXIDecodeError(f"datatype {k} not supported", position=pos, path=path)

    @staticmethod
    def _check_len(n: int, d: tuple, pos: int, path: str) -> None:
        lo, hi = d[1], d[2]
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            raise EXIDecodeError("length outside its facet", position=pos, path=path,
                                 expected=f"{lo if lo is not None else 0}..{hi if hi is not None else 'inf'}",
                                 got=n)


def _untyped(s: str):
    """Untyped text as the jar's JSON shows it: numbers stay numbers."""
    try:
        return int(s)
    except ValueError:
        return s


# ------------------------------------------------------------------------------------------------
# signed parts: EXI fragments (ISO 15118-2 Annex J / -20: the digest and signature inputs)
# The jar's lists (its AbstractEXICodec): these roots are encoded with the fragment grammar.
FRAGMENT_ROOTS: dict[str, frozenset] = {
    "iso2": frozenset({"AuthorizationReq", "CertificateInstallationReq", "MeteringReceiptReq", "SignedInfo",
                       "ContractSignatureCertChain", "ContractSignatureEncryptedPrivateKey", "DHpublickey",
                       "eMAID", "SalesTariff"}),
    "iso20_common": frozenset({"OEMProvisioningCertificateChain", "PnC_AReqAuthorizationMode"}),
}
# the only algorithms ISO 15118 allows; the jar writes these whatever the message says
C14N_EXI = "http://www.w3.org/TR/canonical-exi/"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"


def uses_fragment(grammar: Grammar, root: str) -> bool:
    """True if `root` is encoded as an EXI fragment: every xmldsig root (SignedInfo is what gets
    signed), the signed parts of -2/-20, and elements that are not global (no document grammar)."""
    if grammar.set_name == "xmldsig" or root in FRAGMENT_ROOTS.get(grammar.set_name, ()):
        return True
    return root not in grammar.doc_by_name and root in grammar.frag_by_name


def jar_signed_info(value) -> dict:
    """SignedInfo as the jar rebuilds it before encoding (its SecurityPayloads.GetSignedInfo): the
    three ISO 15118 algorithms, and per Reference only URI and DigestValue; every Id and Type is
    dropped. Identical to the message for what ISO 15118 peers send (no Ids, these algorithms)."""
    if not isinstance(value, dict):
        raise EXIEncodeError("SignedInfo needs an object", path="/SignedInfo", got=_short(value))
    refs = value.get("Reference") or []
    if isinstance(refs, dict):
        refs = [refs]
    out_refs = []
    for i, ref in enumerate(refs):
        if not isinstance(ref, dict) or "URI" not in ref or "DigestValue" not in ref:
            raise EXIEncodeError("the jar needs URI and DigestValue in every Reference",
                                 path=f"/SignedInfo/Reference[{i}]", expected="URI and DigestValue",
                                 got=_short(ref))
        out_refs.append({"URI": ref["URI"], "Transforms": {"Transform": [{"Algorithm": C14N_EXI}]},
                         "DigestMethod": {"Algorithm": SHA256}, "DigestValue": ref["DigestValue"]})
    out = {"CanonicalizationMethod": {"Algorithm": C14N_EXI}, "SignatureMethod": {"Algorithm": ECDSA_SHA256}}
    if out_refs:
        out["Reference"] = out_refs
    return out


# ------------------------------------------------------------------------------------------------
# one-call API
def encode(message: dict, schema: str, *, mode: str = "jar", fragment: bool | None = None) -> bytes:
    """Encode a message dict with the schema set (name or stack namespace) to an EXI stream.
    Signed parts (SignedInfo, PnC_AReqAuthorizationMode, -2 AuthorizationReq, ...) become EXI
    fragments as the jar writes them; `fragment` forces either way."""
    return Encoder(get_grammar(schema), mode).encode(message, fragment=fragment)


def decode(data: bytes, schema: str, *, strict: bool = False, fragment: bool | None = None) -> dict:
    """Decode an EXI stream with the schema set (name or stack namespace) to a message dict.
    `fragment`: None = fragment for the xmldsig set only; True for a -2/-20 signed part."""
    return Decoder(get_grammar(schema), strict=strict).decode(data, fragment=fragment)


def encode_json(message: str, schema: str, *, mode: str = "jar") -> bytes:
    try:
        obj = json.loads(message)
    except ValueError as exc:
        raise EXIEncodeError(f"message is not valid JSON ({exc})") from None
    return encode(obj, schema, mode=mode)


def decode_json(data: bytes, schema: str, *, strict: bool = False) -> str:
    return json.dumps(decode(data, schema, strict=strict), separators=(",", ":"))
