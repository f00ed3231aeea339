"""In-process targets: the EXI codec (what the SECC and the conformance checks decode) and the
profile loader (bench, DUT, scenario files a user writes)."""
from __future__ import annotations

import random
import tempfile
from pathlib import Path

from v2g_bench.errors import BenchError
from v2g_bench.fuzz.campaign import Target, call_typed, hypothesis_examples, with_mutants

EXI_SETS = ("appprotocol", "iso20_common", "iso20_dc", "iso20_ac", "iso2", "din")
# Hypothesis' grammar walk costs ~45 ms per message; a mutant ~10 us: most of the volume is mutants
MUTANTS = 100


class ExiDecodeTarget(Target):
    """EXI streams into the decoder, lenient (what the SECC uses) and strict (the oracle):
    valid messages from the grammar walk (Hypothesis), encoded in both modes, and their mutants.
    Typed = EXIDecodeError; anything else (IndexError, a hang, memory blow-up) is a crash."""

    name = "exi"
    hang_s = 2.0

    def setup(self, workdir: Path) -> None:
        from v2g_bench.exi.codec import Decoder, Encoder, get_grammar
        from v2g_bench.exi.randmsg import MessageGenerator

        self.sets = []
        for s in EXI_SETS:
            g = get_grammar(s)
            self.sets.append((s, MessageGenerator(g, budget=30, max_bytes=40), Encoder(g, "jar"),
                              Encoder(g, "cbv2g"), Decoder(g), Decoder(g, strict=True)))

    def batches(self, rng: random.Random):
        from v2g_bench.exi.errors import EXIEncodeError
        while True:
            idx = rng.randrange(len(self.sets))
            name, gen, enc_jar, enc_cb, _, _ = self.sets[idx]
            seeds = []
            for msg in hypothesis_examples(gen.strategy(), 6, rng.getrandbits(32)):
                for enc in (enc_jar, enc_cb):
                    try:
                        seeds.append(enc.encode(msg))
                    except EXIEncodeError:
                        pass
            seeds.append(bytes([0x80]) + rng.randbytes(rng.randint(0, 64)))   # header + noise
            yield [(idx, b) for b in with_mutants(seeds, rng, MUTANTS)]

    def run_batch(self, inputs):
        from v2g_bench.exi.errors import EXIDecodeError
        out = []
        for idx, data in inputs:
            _, _, _, _, lenient, strict = self.sets[idx]

            def both(d, lenient=lenient, strict=strict):
                for dec in (lenient, strict):
                    try:
                        dec.decode(d)
                    except EXIDecodeError:
                        if dec is strict:
                            raise
                        strict.decode(d)   # lenient refused: strict must refuse too (typed)
                        raise AssertionError("strict decoder accepted what the lenient one refused")
            out.append(call_typed(both, data, (EXIDecodeError,), self.hang_s))
        return out


class ExiEncodeTarget(Target):
    """Message dicts into the encoder: grammar-walk messages with values swapped for hostile ones
    (wrong types, huge numbers, long strings, bad base64/hex, unknown keys). Typed = EXIEncodeError."""

    name = "exi-encode"
    hang_s = 2.0
    HOSTILE = (None, "", "x" * 5000, -1, 2 ** 70, -2 ** 70, 1.5, float("nan"), True, [], {}, [1, 2],
               "ZZ", "====", "\ud800", "AAAA", 0)

    def setup(self, workdir: Path) -> None:
        from v2g_bench.exi.codec import Encoder, get_grammar
        from v2g_bench.exi.randmsg import MessageGenerator

        self.sets = [(MessageGenerator(get_grammar(s), budget=30, max_bytes=40),
                      Encoder(get_grammar(s), "jar"), Encoder(get_grammar(s), "cbv2g")) for s in EXI_SETS]

    def _corrupt(self, node, rng: random.Random):
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                r = rng.random()
                if r < 0.08:
                    out[k] = rng.choice(self.HOSTILE)
                elif r < 0.1:
                    out[k + "X"] = v
                elif r < 0.12:
                    continue
                else:
                    out[k] = self._corrupt(v, rng)
            return out
        if isinstance(node, list):
            return [self._corrupt(x, rng) for x in node] * (2 if rng.random() < 0.05 else 1)
        return rng.choice(self.HOSTILE) if rng.random() < 0.1 else node

    def batches(self, rng: random.Random):
        while True:
            idx = rng.randrange(len(self.sets))
            gen = self.sets[idx][0]
            msgs = hypothesis_examples(gen.strategy(), 6, rng.getrandbits(32))
            batch = []
            for m in msgs:
                batch.append((idx, m))
                batch.extend((idx, self._corrupt(m, rng)) for _ in range(MUTANTS // 2))
            yield batch

    def run_batch(self, inputs):
        from v2g_bench.exi.errors import EXIEncodeError
        out = []
        for idx, msg in inputs:
            _, jar, cb = self.sets[idx]

            def both(m, jar=jar, cb=cb):
                refused = None
                for enc in (jar, cb):
                    try:
                        enc.encode(m)
                    except EXIEncodeError as e:
                        refused = e
                if refused is not None:
                    raise refused
            out.append(call_typed(both, msg, (EXIEncodeError,), self.hang_s))
        return out


def _toml_value(rng: random.Random):
    from hypothesis import strategies as st  # noqa: F401  (kept for symmetry with the strategies below)
    return rng.choice(("1", "-1", "0", "1e400", "nan", "inf", "-inf", '"V2X"', '"x"', "true", "[1, 2]",
                       "{a = 1}", '""', "1.5", "99999999999999999999", '"\\u0000"', "[[1]]", '"TCPIP0::bad"'))


class ProfileTarget(Target):
    """Profile files into the loader: the shipped bench/DUT profiles and scenario files with keys
    renamed, values replaced, lines dropped/duplicated, bytes mutated, plus Hypothesis-generated
    TOML documents. Typed = BenchError (ProfileError with 'did you mean'); anything else is a crash."""

    name = "profiles"
    hang_s = 5.0

    def setup(self, workdir: Path) -> None:
        from v2g_bench import profiles

        root = Path(__file__).resolve().parents[2]
        self.seeds = [p.read_bytes() for p in sorted((root / "profiles").glob("*.toml"))]
        self.scenarios = [p.read_bytes() for p in sorted((root / "scenarios").glob("*.toml"))]
        self.dir = Path(tempfile.mkdtemp(prefix="fuzz-profiles-", dir=workdir))
        self.loaders = [profiles.check_profile, profiles.load_bench, profiles.load_dut]
        try:
            from v2g_bench.scheduler import scenario as sc
            self.scenario_loader = getattr(sc, "load_scenario", None) or getattr(sc, "load", None)
        except Exception:
            self.scenario_loader = None

    def _line_edit(self, text: bytes, rng: random.Random) -> bytes:
        lines = text.decode("utf-8", "replace").splitlines()
        if not lines:
            return text
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(lines))
            line = lines[i]
            op = rng.randrange(5)
            if op == 0 and "=" in line:          # misspell a key
                k, _, v = line.partition("=")
                k = k.rstrip()
                if len(k) > 1:
                    j = rng.randrange(len(k))
                    k = k[:j] + k[j + 1:] if rng.random() < 0.5 else k[:j] + k[j] + k[j:]
                lines[i] = f"{k} ={v}"
            elif op == 1 and "=" in line:        # hostile value
                lines[i] = line.partition("=")[0] + "= " + _toml_value(rng)
            elif op == 2:
                del lines[i]
            elif op == 3:
                lines.insert(i, line)
            else:
                lines[i] = "[" + line.strip("[] ") + "]" if rng.random() < 0.5 else line + " = 1"
            if not lines:
                break
        return "\n".join(lines).encode()

    def batches(self, rng: random.Random):
        from hypothesis import strategies as st
        keys = st.sampled_from(["roles", "dut", "claims", "bench", "lab", "limits", "ratings", "driver", "resource",
                                "options", "features", "settle_s", "timeout_s", "power_rel", "x"])
        scalars = st.one_of(st.integers(), st.floats(allow_nan=True), st.text(max_size=20), st.booleans())
        doc = st.recursive(st.dictionaries(keys, scalars, max_size=4),
                           lambda inner: st.dictionaries(keys, st.one_of(scalars, inner, st.lists(scalars, max_size=3)),
                                                         max_size=4), max_leaves=12)
        while True:
            seeds = []
            for d in hypothesis_examples(doc, 5, rng.getrandbits(32)):
                seeds.append(_dump_toml(d))
            base = rng.choice(self.seeds)
            seeds.extend(self._line_edit(base, rng) for _ in range(10))
            batch = [(rng.randrange(len(self.loaders)), b) for b in with_mutants(seeds, rng, 3)]
            if self.scenario_loader is not None and self.scenarios:
                sc = rng.choice(self.scenarios)
                batch.extend((-1, self._line_edit(sc, rng)) for _ in range(4))
            yield batch

    def run_batch(self, inputs):
        out = []
        for i, (which, data) in enumerate(inputs):
            path = self.dir / f"f{i % 8}.toml"
            path.write_bytes(data)
            loader = self.scenario_loader if which < 0 else self.loaders[which]
            out.append(call_typed(loader, path, (BenchError,), self.hang_s))
        return out


def _dump_toml(d: dict) -> bytes:
    """A small TOML writer for generated documents (values as TOML literals; floats incl. nan/inf)."""
    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            s = repr(v)
            return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(s, s)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"').encode("unicode_escape").decode("ascii") \
                .replace('\\\\"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v if not isinstance(x, dict)) + "]"
        return '""'

    lines: list[str] = []

    def table(prefix: str, t: dict):
        subs = []
        for k, v in t.items():
            if isinstance(v, dict):
                subs.append((k, v))
            else:
                lines.append(f"{k} = {val(v)}")
        for k, v in subs:
            lines.append(f"[{prefix + k}]")
            table(prefix + k + ".", v)
    table("", d)
    return "\n".join(lines).encode()
