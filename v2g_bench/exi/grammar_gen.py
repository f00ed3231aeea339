"""Build EXI grammar tables from the XSDs shipped in the installed `iso15118` package.

Only this module needs `xmlschema`; the runtime (`codec.py`) reads the cached tables. We never vendor
ISO's XSDs: the tables are generated on first use from the installed dependency and cached under
the user cache dir, keyed by a hash of the XSD files and of this generator's version.

Grammar construction (EXI 1.0 section 8.5.4, for the schema features these XSDs use): each type's
normalized grammar is built as a Glushkov automaton over attributes (sorted by qname) followed by
the content particle, with bounded repeats expanded; one state per consumed position. Productions of
a state are ordered AT (qname order) < SE (schema order) < EE < CH, which is the EXI event-code order.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

GENERATOR_VERSION = "4"
XS = "http://www.w3.org/2001/XMLSchema"
DSIG = "http://www.w3.org/2000/09/xmldsig#"

# set name -> (xsd path relative to iso15118/shared/schemas, namespace the stack passes to the codec)
SCHEMA_SETS: dict[str, tuple[str, str]] = {
    "appprotocol": ("V2G_CI_AppProtocol.xsd", "urn:iso:15118:2:2010:AppProtocol"),
    "iso20_common": ("iso15118_20/V2G_CI_CommonMessages.xsd", "urn:iso:std:iso:15118:-20:CommonMessages"),
    "iso20_dc": ("iso15118_20/V2G_CI_DC.xsd", "urn:iso:std:iso:15118:-20:DC"),
    "iso20_ac": ("iso15118_20/V2G_CI_AC.xsd", "urn:iso:std:iso:15118:-20:AC"),
    "iso20_acdp": ("iso15118_20/V2G_CI_ACDP.xsd", "urn:iso:std:iso:15118:-20:ACDP"),
    "iso20_wpt": ("iso15118_20/V2G_CI_WPT.xsd", "urn:iso:std:iso:15118:-20:WPT"),
    "iso2": ("iso15118_2/V2G_CI_MsgDef.xsd", "urn:iso:15118:2:2013:MsgDef"),
    "din": ("din_spec/V2G_CI_MsgDef.xsd", "urn:din:70121:2012:MsgDef"),
    "xmldsig": ("xmldsig-core-schema.xsd", DSIG),
}

# production kinds in the tables
SE, AT, CH, EE, SE_ANY = 0, 1, 2, 3, 4


def schema_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("iso15118")
    if spec is None or not spec.submodule_search_locations:
        from v2g_bench.exi.errors import EXISchemaError

        raise EXISchemaError("the iso15118 package is not installed", fix="pip install iso15118")
    return Path(list(spec.submodule_search_locations)[0]) / "shared" / "schemas"


def source_hash() -> str:
    """Hash of every XSD in the installed package plus the generator version (the cache key)."""
    h = hashlib.sha256(GENERATOR_VERSION.encode())
    d = schema_dir()
    for p in sorted(d.rglob("*.xsd")):
        h.update(str(p.relative_to(d)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    base = os.environ.get("V2G_BENCH_EXI_CACHE")
    if base:
        return Path(base) / source_hash()
    import platformdirs

    return Path(platformdirs.user_cache_dir("v2g-bench")) / "exi" / source_hash()


def _qkey(qname: str) -> tuple[str, str]:
    """'{ns}local' -> (ns, local)."""
    if qname.startswith("{"):
        ns, local = qname[1:].split("}", 1)
        return ns, local
    return "", qname


def _lex(qname: str) -> tuple[str, str]:
    """EXI lexicographic order of qnames: local-name first, then uri."""
    ns, local = _qkey(qname)
    return local, ns


class _Builder:
    def __init__(self, schema):
        self.schema = schema
        self.qnames: list[list[str]] = []
        self._qidx: dict[tuple[str, str], int] = {}
        self.datatypes: list[list] = []
        self._dtidx: dict[str, int] = {}
        self.elements: list[list[int]] = []
        self._elidx: dict[tuple, int] = {}
        self.attributes: list[list[int]] = []
        self._atidx: dict[tuple, int] = {}
        self.types: list[dict | None] = []
        self._tyidx: dict[int, int] = {}
        self.wildcards: list[list] = []

    # ---- names, datatypes ------------------------------------------------------------------
    def qname(self, qn: str) -> int:
        key = _qkey(qn)
        if key not in self._qidx:
            self._qidx[key] = len(self.qnames)
            self.qnames.append(list(key))
        return self._qidx[key]

    def datatype(self, st) -> int:
        desc = self._describe(st)
        key = json.dumps(desc)
        if key not in self._dtidx:
            self._dtidx[key] = len(self.datatypes)
            self.datatypes.append(desc)
        return self._dtidx[key]

    def _describe(self, st) -> list:
        """EXI datatype representation of a simple type, plus facets the strict decoder checks."""
        if getattr(st, "is_list", lambda: False)():
            return ["list", self.datatype(st.item_type)]
        enum = getattr(st, "enumeration", None)
        prim = st.primitive_type.local_name if st.primitive_type is not None else "string"
        minl = getattr(st, "min_length", None)
        maxl = getattr(st, "max_length", None)
        if enum:
            vals = [v.hex().upper() if isinstance(v, bytes) else v for v in enum]
            vals = [str(v).lower() if isinstance(v, bool) else (v if isinstance(v, (int, str)) else str(v)) for v in vals]
            return ["enum", vals, max(0, (len(vals) - 1).bit_length())]
        if prim == "boolean":
            return ["bool"]
        if prim == "decimal":
            if self._is_integer(st):
                lo, hi = st.min_value, st.max_value
                lo = None if lo is None else int(lo)
                hi = None if hi is None else int(hi)
                base = self._java_range(st)
                if lo is not None and hi is not None and hi - lo < 4096:
                    return ["nbit", lo, hi, (hi - lo).bit_length(), base]
                if lo is not None and lo >= 0:
                    return ["uint", lo, hi, base]
                return ["int", lo, hi, base]
            return ["decimal"]
        if prim in ("float", "double"):
            return ["float"]
        if prim == "hexBinary":
            return ["hex", minl, maxl]
        if prim == "base64Binary":
            return ["b64", minl, maxl]
        if prim in ("string", "anyURI", "QName", "NOTATION") or prim is None:
            return ["str", minl, maxl]
        if prim in ("dateTime", "date", "time", "duration", "gYear"):
            return ["str", minl, maxl]  # not used by the ISO schemas; kept as text
        return ["str", minl, maxl]

    @staticmethod
    def _java_range(st) -> list:
        """Range of the built-in integer type the simple type derives from: what the jar (JAXB:
        xs:byte -> Java byte, ...) can hold at all. [None, None] = unbounded (BigInteger)."""
        t = st
        while t is not None:
            name = (t.name or "").rpartition("}")[2] if (t.name or "").startswith("{%s}" % XS) else None
            if name in _BUILTIN_INT_RANGES:
                return list(_BUILTIN_INT_RANGES[name])
            t = getattr(t, "base_type", None)
        return [None, None]

    @staticmethod
    def _is_integer(st) -> bool:
        t = st
        while t is not None:
            if t.name == "{%s}integer" % XS:
                return True
            t = getattr(t, "base_type", None)
        return False

    # ---- declarations ----------------------------------------------------------------------
    def element(self, el) -> int:
        """Index of an element declaration (global or local); keyed by name + type."""
        tidx = self.type_of(el.type)
        key = (el.name, tidx)
        if key not in self._elidx:
            self._elidx[key] = len(self.elements)
            self.elements.append([self.qname(el.name), tidx])
        return self._elidx[key]

    def attribute(self, at) -> int:
        dt = self.datatype(at.type)
        key = (at.name, dt)
        if key not in self._atidx:
            self._atidx[key] = len(self.attributes)
            self.attributes.append([self.qname(at.name), dt])
        return self._atidx[key]

    def type_of(self, t) -> int:
        k = id(t)
        if k in self._tyidx:
            return self._tyidx[k]
        idx = len(self.types)
        self._tyidx[k] = idx
        self.types.append(None)  # placeholder: recursion through the content model is allowed
        self.types[idx] = self._build_type(t)
        return idx

    # ---- grammars ---------------------------------------------------------------------------
    def _build_type(self, t) -> dict:
        name = t.name or ""
        if t.is_simple():
            dt = self.datatype(t)
            return {"name": name, "simple": dt, "multi": [],
                    "states": [[[CH, dt, 1]], [[EE, 0, -1]]], "nattr_states": 1}
        attrs = []
        for aname, at in t.attributes.items():
            if aname is None:
                continue  # attribute wildcard: not used by the ISO schemas
            attrs.append((aname, at))
        attrs.sort(key=lambda a: _lex(a[0]))
        expr_items = [("opt" if a.use != "required" else "one", ("at", self.attribute(a))) for _, a in attrs]
        multi: set[str] = set()
        simple = None
        if t.has_simple_content():
            simple = self.datatype(t.content)
            content = ("ch", simple)
        elif t.content is None or (hasattr(t.content, "__len__") and len(t.content) == 0 and not t.mixed):
            content = ("seq", [])
        else:
            content = self._particle(t.content, multi, False)
        expr = ("seq", [(("rep", x, 0, 1) if o == "opt" else x) for o, x in expr_items] + [content])
        states, nattr = _glushkov(expr, len(attrs))
        if t.mixed and not t.has_simple_content():
            # mixed content: CH[untyped] in every state from which content may start, i.e. once
            # every required attribute is consumed (state 0 = start, state k+1 = after attribute
            # k, later states = content positions). Adding it to a start state whose required
            # attribute is still pending would widen that state's event code (the jar: 1 bit).
            sdt = self.datatype(self.schema.maps.types["{%s}string" % XS])
            req = [k for k, (_, a) in enumerate(attrs) if a.use == "required"]
            last_req = req[-1] if req else -1
            for i, st in enumerate(states):
                if i == 0 and last_req >= 0:
                    continue
                if 1 <= i <= len(attrs) and i - 1 < last_req:
                    continue
                st.append([CH, sdt, i])
        return {"name": name, "simple": simple, "multi": sorted(multi), "states": states,
                "nattr_states": nattr, "mixed": bool(t.mixed)}

    def _particle(self, p, multi: set, repeated: bool):
        from xmlschema.validators import XsdAnyElement, XsdElement, XsdGroup

        mn = p.min_occurs
        mx = p.max_occurs  # None = unbounded
        rep = repeated or mx is None or mx > 1
        if isinstance(p, XsdElement):
            if rep:
                multi.add(p.local_name)
            members = self._substitutes(p)
            if len(members) == 1:
                term = ("el", self.element(members[0]))
            else:
                term = ("alt", [("el", self.element(m)) for m in members])
        elif isinstance(p, XsdAnyElement):
            term = ("any", self._wildcard(p))
        elif isinstance(p, XsdGroup):
            kids = [self._particle(c, multi, rep) for c in p]
            if p.model == "choice":
                term = ("alt", kids)
            elif p.model == "sequence":
                term = ("seq", kids)
            else:
                raise NotImplementedError("xs:all is not used by the ISO 15118 schemas")
        else:
            raise NotImplementedError(f"particle {p!r}")
        if mn == 1 and mx == 1:
            return term
        return ("rep", term, mn, mx)

    def _substitutes(self, el) -> list:
        """Element particle -> the element and every (transitive) member of its substitution group,
        sorted lexicographically (EXI 8.5.4.1.6). Abstract declarations stay in, as the jar
        (EXIficient) keeps them: -2's abstract BodyElement takes an event code."""
        g = el.ref if getattr(el, "ref", None) is not None else el
        out = [g]
        groups = self.schema.maps.substitution_groups
        todo = [g.name]
        seen = set()
        while todo:
            head = todo.pop()
            if head in seen:
                continue
            seen.add(head)
            for m in groups.get(head, ()):  # members
                out.append(m)
                todo.append(m.name)
        if len(out) > 1:
            out.sort(key=lambda e: _lex(e.name))
        return out

    def _wildcard(self, w) -> int:
        ns = w.namespace
        desc = [sorted(ns) if isinstance(ns, (list, tuple, set)) else [str(ns)],
                list(getattr(w, "not_namespace", ()) or ()), w.process_contents]
        self.wildcards.append(desc)
        return len(self.wildcards) - 1


_BUILTIN_INT_RANGES = {
    "byte": (-2**7, 2**7 - 1), "short": (-2**15, 2**15 - 1), "int": (-2**31, 2**31 - 1),
    "long": (-2**63, 2**63 - 1), "unsignedByte": (0, 2**8 - 1), "unsignedShort": (0, 2**16 - 1),
    "unsignedInt": (0, 2**32 - 1), "unsignedLong": (0, 2**64 - 1), "nonNegativeInteger": (0, None),
    "positiveInteger": (1, None), "nonPositiveInteger": (None, 0), "negativeInteger": (None, -1),
    "integer": (None, None),
}


def _glushkov(expr, nattr: int) -> tuple[list, int]:
    """Deterministic (UPA) Glushkov automaton of `expr`; returns the state list and the number of
    start-tag states (start + one per attribute position)."""
    positions: list[tuple] = []  # (kind, arg)
    follow: dict[int, list[int]] = {}

    def walk(e):
        """-> (nullable, first[list], last[set])"""
        kind = e[0]
        if kind in ("el", "at", "ch", "any"):
            i = len(positions)
            positions.append(e)
            follow[i] = []
            return False, [i], {i}
        if kind == "seq":
            nullable, first, last = True, [], set()
            for sub in e[1]:
                n, f, l = walk(sub)
                for p in last:
                    _extend(follow[p], f)
                if nullable:
                    _extend(first, f)
                last = (last | l) if n else set(l)
                nullable = nullable and n
            return nullable, first, last
        if kind == "alt":
            nullable, first, last = False, [], set()
            for sub in e[1]:
                n, f, l = walk(sub)
                nullable = nullable or n
                _extend(first, f)
                last |= l
            return nullable, first, last
        if kind == "rep":
            _, sub, mn, mx = e
            if mx is None:  # unbounded: min copies then a loop
                copies = [sub] * max(mn, 1)
                n_all, first, last = True, [], set()
                res = [walk(c) for c in copies]
                # sequence of copies, the last one loops onto itself
                for n, f, l in res:
                    for p in last:
                        _extend(follow[p], f)
                    if n_all:
                        _extend(first, f)
                    last = (last | l) if n else set(l)
                    n_all = n_all and n
                ln, lf, ll = res[-1]
                for p in ll:
                    _extend(follow[p], lf)
                nullable = n_all or mn == 0
                return nullable, first, last
            # bounded: sub{mn} followed by nested optionals (x (x (x)?)?)? -> deterministic
            n_all, first, last = True, [], set()
            for _ in range(mn):
                n, f, l = walk(sub)
                for p in last:
                    _extend(follow[p], f)
                if n_all:
                    _extend(first, f)
                last = (last | l) if n else set(l)
                n_all = n_all and n
            prev_last = last
            opt_lasts = set()
            for k in range(mx - mn):
                n, f, l = walk(sub)
                for p in prev_last:
                    _extend(follow[p], f)
                if k == 0 and n_all:
                    _extend(first, f)
                opt_lasts |= l
                prev_last = l
            last = last | opt_lasts
            return n_all, first, last
        raise ValueError(kind)

    nullable, first, last = walk(expr)
    # schema order = position order
    kind_code = {"el": SE, "at": AT, "ch": CH, "any": SE_ANY}

    def prods(nexts: list[int], can_end: bool) -> list:
        ats = [n for n in nexts if positions[n][0] == "at"]
        ses = [n for n in nexts if positions[n][0] in ("el", "any")]
        ses.sort()
        # SE(qname) before SE(*) wildcards
        ses = [n for n in ses if positions[n][0] == "el"] + [n for n in ses if positions[n][0] == "any"]
        chs = [n for n in nexts if positions[n][0] == "ch"]
        out = [[AT, positions[n][1], n + 1] for n in sorted(ats)]
        out += [[kind_code[positions[n][0]], positions[n][1], n + 1] for n in ses]
        if can_end:
            out.append([EE, 0, -1])
        out += [[CH, positions[n][1], n + 1] for n in chs]
        return out

    states = [prods(first, nullable)]
    for i in range(len(positions)):
        states.append(prods(follow[i], i in last))
    return states, max(nattr, 1)


def _extend(dst: list, src) -> None:
    for x in src:
        if x not in dst:
            dst.append(x)


def build_tables(set_name: str) -> dict:
    """Generate the grammar tables of one schema set (needs xmlschema)."""
    import xmlschema

    rel, ns = SCHEMA_SETS[set_name]
    schema = xmlschema.XMLSchema(str(schema_dir() / rel))
    b = _Builder(schema)
    globals_ = [e for q, e in schema.maps.elements.items() if not q.startswith("{%s}" % XS)]
    globals_.sort(key=lambda e: _lex(e.name))
    doc = [b.element(e) for e in globals_]
    # named types that no element uses still declare local elements (fragment grammar counts them)
    for q, t in sorted(schema.maps.types.items()):
        if not q.startswith("{%s}" % XS) and not t.is_simple():
            b.type_of(t)
    return {
        "format": 1, "set": set_name, "namespace": ns, "source": source_hash(),
        "qnames": b.qnames, "datatypes": b.datatypes, "elements": b.elements,
        "attributes": b.attributes, "types": b.types, "wildcards": b.wildcards, "doc": doc,
        "fragment": _fragment_table(b),
    }


def _fragment_table(b: _Builder) -> list[list[int]]:
    """Schema-informed fragment grammar (EXI 1.0 section 8.5.2): one SE per distinct qname among ALL
    element declarations (global and local), sorted by local name then uri. Each entry is
    [qname index, element index]; element index -1 marks a qname declared with different types,
    whose content would need the relaxed element-fragment grammar (not used by ISO 15118's signed
    parts, so the codec refuses it as a fragment root)."""
    by_q: dict[int, set[int]] = {}
    for idx, (q, _t) in enumerate(b.elements):
        by_q.setdefault(q, set()).add(idx)
    rows = []
    for q, idxs in by_q.items():
        types = {b.elements[i][1] for i in idxs}
        rows.append((_lex("{%s}%s" % tuple(b.qnames[q]) if b.qnames[q][0] else b.qnames[q][1]), q,
                     min(idxs) if len(types) == 1 else -1))
    rows.sort()
    return [[q, e] for _, q, e in rows]


def load_tables(set_name: str, *, rebuild: bool = False) -> dict:
    """Cached tables (JSON) of one schema set; built from the installed XSDs on first use."""
    if set_name not in SCHEMA_SETS:
        from v2g_bench.exi.errors import EXISchemaError

        raise EXISchemaError(f"unknown schema set {set_name!r}", fix=f"use one of {sorted(SCHEMA_SETS)}")
    d = cache_dir()
    path = d / f"{set_name}.json"
    if path.exists() and not rebuild:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass  # a torn cache file is rebuilt below
    tables = build_tables(set_name)
    d.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(tables, separators=(",", ":")))
    os.replace(tmp, path)  # atomic: parallel test workers never read half a file
    return tables
