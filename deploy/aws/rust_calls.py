"""Which AWS SDK operations a Rust entry point can reach: a call graph of eda's own sources.

check_iam.py asks it, for each principal (the daemon, each Lambda function), which SDK operations
that principal's code can call and on which adapter (`SqsDeadLetterQueue`, `SqsOwedQueue`, ...),
so the IAM policies are checked against the code rather than against a list someone keeps.

How the graph is built, and where it errs on the side of "reachable":

- The sources are tokenized (comments, strings and `#[cfg(test)]` items dropped) and split into
  functions, each knowing its file, its `impl` type and trait, and its generic parameters.
- From the roots (a binary's `main`, a command's function), a function's body reaches:
  `Type::f(..)` the functions `f` of `Type`'s impls; `module::f(..)` and `f(..)` the free
  functions named `f` (those of `module`'s file when it has one, the caller's own file first);
  `self.f(..)` the methods of the caller's own type; `x.f(..)` the methods named `f` of every type
  the reachable code names (rapid type analysis): inherent ones when visible from the caller
  (private ones only from their own file), and implementations of a port trait (the traits of
  `actors/src/ports.rs`) only when the caller's file or its parent module names that trait, as
  Rust needs the trait in scope (or a `dyn Port` in hand) to call it. Other trait impls of a named
  type (`Actor::handle`, `Display::fmt`) count as reachable: something outside eda calls them.
- An SDK operation is a fluent call `client.put_item()` (empty parentheses) in `actors/src/aws/`,
  whose receiver is a field or parameter declared as `aws_sdk_<service>::Client`; its name must be
  an operation module of that SDK crate (the version in Cargo.lock). It is charged to the adapter
  the path went through (`SqsOwedQueue::send` → `send_entries` → `SendMessageBatch` is the owed
  queue's), which decides the resource.
- So is a call of eda's lean client (`actors/src/aws/lean/`), `x.call(TARGET, body)` in
  `actors/src/aws/`, where `TARGET` is a constant of the same file holding an `X-Amz-Target`
  (`const PUT_ITEM: &str = "DynamoDB_20120810.PutItem";`): the target names the service and the
  operation.

The result over-approximates what runs (a call graph by names), never under-approximates it for
code written the way eda's is; check_iam.py then holds each policy to exactly that set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>//[^\n]*)
  | (?P<block>/\*)
  | (?P<rawstr>b?r(?P<hashes>\#*)")
  | (?P<str>b?"(?:[^"\\]|\\.)*")
  | (?P<char>b?'(?:[^'\\\n]|\\(?:[nrt0'"\\]|x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}))')
  | (?P<life>'[A-Za-z_][A-Za-z0-9_]*)
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<num>[0-9][0-9A-Za-z_.]*)
  | (?P<punct>::|->|=>|==|!=|<=|>=|&&|\|\||\.\.=?|[{}()\[\];:,.<>=!&|*+\-/%^?#@$~])
    """,
    re.X | re.S,
)

KEYWORDS = {
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum",
    "extern", "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move",
    "mut", "pub", "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true",
    "type", "unsafe", "use", "where", "while", "Some", "None", "Ok", "Err", "Box", "Arc", "Vec",
    "String", "Option", "Result",
}
# `X-Amz-Target` prefixes of the JSON protocols, by service as the SDK crates name it.
LEAN_TARGET_PREFIXES = {"DynamoDB_20120810": "dynamodb", "AWSEvents": "eventbridge"}
# The region fields of eda-config's RegionConfig that name a resource.
REGION_FIELDS = {"cdc_table", "metadata_table", "event_bus", "dlq_queue_url", "owed_queue_url"}


@dataclass
class Tok:
    kind: str
    text: str
    line: int


def tokenize(text: str) -> list[Tok]:
    out, pos, line = [], 0, 1
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m:
            raise ValueError(f"line {line}: cannot tokenize {text[pos:pos + 20]!r}")
        kind = m.lastgroup if m.lastgroup != "hashes" else "rawstr"
        end = m.end()
        if m.group("block"):
            depth, end = 1, m.end()
            while depth:
                nxt = min((p for p in (text.find("/*", end), text.find("*/", end)) if p >= 0), default=-1)
                if nxt < 0:
                    raise ValueError(f"line {line}: unterminated comment")
                depth += 1 if text.startswith("/*", nxt) else -1
                end = nxt + 2
            kind = "comment"
        elif m.group("rawstr"):
            close = '"' + m.group("hashes")
            end = text.index(close, m.end()) + len(close)
            kind = "str"
        if kind not in ("ws", "comment"):
            out.append(Tok(kind, text[pos:end], line))
        line += text.count("\n", pos, end)
        pos = end
    return out


def matching(toks: list[Tok], i: int) -> int:
    """Index of the bracket closing the one at `i`."""
    pairs = {"{": "}", "(": ")", "[": "]"}
    open_, close = toks[i].text, pairs[toks[i].text]
    depth = 0
    for j in range(i, len(toks)):
        if toks[j].text == open_ and toks[j].kind == "punct":
            depth += 1
        elif toks[j].text == close and toks[j].kind == "punct":
            depth -= 1
            if depth == 0:
                return j
    raise ValueError(f"line {toks[i].line}: unbalanced {open_}")


@dataclass
class Fn:
    file: str
    name: str
    impl_type: str | None
    trait: str | None
    visibility: str  # "pub", "restricted" (pub(crate)/pub(super)), or "private"
    generics: set[str]
    body: list[Tok]
    line: int
    params: int = 0  # parameters besides self

    @property
    def key(self) -> str:
        owner = f"{self.impl_type}::" if self.impl_type else ""
        return f"{self.file}:{self.line} {owner}{self.name}"

    @property
    def label(self) -> str:
        return f"{self.impl_type}::{self.name}" if self.impl_type else self.name


@dataclass
class Crates:
    fns: list[Fn] = field(default_factory=list)
    types: set[str] = field(default_factory=set)
    traits: dict[str, str] = field(default_factory=dict)  # trait -> file
    texts: dict[str, str] = field(default_factory=dict)  # file -> source without comments


def generics_of(toks: list[Tok], i: int) -> tuple[set[str], int]:
    """Type parameter names of a `<...>` list starting at `i` (if any), and the index after it."""
    if i >= len(toks) or toks[i].text != "<":
        return set(), i
    depth, names, j, expect = 0, set(), i, True
    while j < len(toks):
        t = toks[j].text
        if t == "<":
            depth += 1
            expect = depth == 1
        elif t == ">":
            depth -= 1
            if depth == 0:
                return names, j + 1
        elif t == "," and depth == 1:
            expect = True
        elif expect and depth == 1 and toks[j].kind == "id" and t != "const":
            names.add(t)
            expect = False
        elif expect and depth == 1 and toks[j].kind == "life":
            expect = False
        j += 1
    return names, j


def count_params(toks: list[Tok], i: int) -> int:
    """Parameters of the list opening at `i`, `self` not counted."""
    end = matching(toks, i)
    chunks, depth, current = [], 0, []
    for t in toks[i + 1:end]:
        if t.text in ("<", "(", "["):
            depth += 1
        elif t.text in (">", ")", "]"):
            depth -= 1
        if t.text == "," and depth == 0:
            chunks.append(current)
            current = []
        else:
            current.append(t.text)
    chunks.append(current)
    chunks = [c for c in chunks if c]
    if chunks and "self" in chunks[0] and ":" not in chunks[0][: chunks[0].index("self")]:
        chunks = chunks[1:]
    return len(chunks)


def impl_header(toks: list[Tok]) -> tuple[str | None, str | None, set[str]]:
    """(trait, type, generics) of the tokens between `impl` and its `{`."""
    generics, i = generics_of(toks, 0)
    rest = toks[i:]
    cut = [k for k, t in enumerate(rest) if t.text == "where"]
    rest = rest[: cut[0]] if cut else rest
    depth, split = 0, None
    for k, t in enumerate(rest):
        if t.text == "<":
            depth += 1
        elif t.text == ">":
            depth -= 1
        elif t.text == "for" and depth == 0:
            split = k
    def last_name(part):
        depth, name = 0, None
        for t in part:
            if t.text == "<":
                depth += 1
            elif t.text == ">":
                depth -= 1
            elif depth == 0 and t.kind == "id" and t.text not in ("dyn", "mut"):
                name = t.text
        return name
    if split is None:
        return None, last_name(rest), generics
    return last_name(rest[:split]), last_name(rest[split + 1:]), generics


def parse_items(file: str, toks: list[Tok], crates: Crates, impl=None, trait=None, outer=frozenset()):
    i = 0
    skip_next = False
    while i < len(toks):
        t = toks[i]
        if t.text == "#" and i + 1 < len(toks) and toks[i + 1].text in ("[", "!"):
            j = i + 1 if toks[i + 1].text == "[" else i + 2
            end = matching(toks, j)
            attr = " ".join(x.text for x in toks[j:end + 1])
            if attr == "[ cfg ( test ) ]":
                skip_next = True
            i = end + 1
            continue
        if skip_next and t.kind == "id" and t.text not in ("pub", "async", "unsafe", "const", "extern", "crate", "super", "in"):
            # Drop the item: up to its `;` or through its body.
            j = i
            while j < len(toks) and toks[j].text not in (";", "{"):
                if toks[j].text in ("(", "["):
                    j = matching(toks, j)
                j += 1
            i = (matching(toks, j) + 1) if j < len(toks) and toks[j].text == "{" else j + 1
            skip_next = False
            continue
        if t.text in ("struct", "enum", "union") and i + 1 < len(toks) and toks[i + 1].kind == "id":
            crates.types.add(toks[i + 1].text)
        elif t.text == "type" and i + 2 < len(toks) and toks[i + 1].kind == "id" and impl is None and trait is None:
            crates.types.add(toks[i + 1].text)
        elif t.text == "trait" and i + 1 < len(toks) and toks[i + 1].kind == "id":
            name = toks[i + 1].text
            crates.traits[name] = file
            j = i + 2
            while toks[j].text not in ("{", ";"):
                j += 1
            if toks[j].text == "{":
                end = matching(toks, j)
                parse_items(file, toks[j + 1:end], crates, impl=None, trait=name)
                i = end + 1
                continue
        elif t.text == "impl" and (i == 0 or toks[i - 1].text not in ("->", "(", ",", ":", "<", "&", "=")):
            j = i + 1
            while toks[j].text not in ("{", ";"):
                if toks[j].text in ("(", "["):
                    j = matching(toks, j)
                j += 1
            if toks[j].text == "{":
                trait_name, type_name, generics = impl_header(toks[i + 1:j])
                end = matching(toks, j)
                parse_items(file, toks[j + 1:end], crates, impl=(type_name, trait_name), outer=frozenset(generics))
                i = end + 1
                continue
        elif t.text == "mod" and i + 2 < len(toks) and toks[i + 1].kind == "id" and toks[i + 2].text == "{":
            end = matching(toks, i + 2)
            parse_items(file, toks[i + 3:end], crates)
            i = end + 1
            continue
        elif t.text == "fn" and i + 1 < len(toks) and toks[i + 1].kind == "id":
            name = toks[i + 1].text
            generics, j = generics_of(toks, i + 2)
            params = count_params(toks, j) if j < len(toks) and toks[j].text == "(" else 0
            while j < len(toks) and toks[j].text not in ("{", ";"):
                if toks[j].text in ("(", "["):
                    j = matching(toks, j)
                j += 1
            back = i - 1
            while back >= 0 and toks[back].text in ("async", "const", "unsafe", "extern") or (back >= 0 and toks[back].kind == "str"):
                back -= 1
            if back >= 0 and toks[back].text == ")" and back >= 2 and toks[back - 2].text in ("(",):
                visibility = "restricted"  # pub(crate), pub(super)
            elif back >= 0 and toks[back].text == "pub":
                visibility = "pub"
            else:
                visibility = "private"
            if impl is not None and impl[1] is not None:
                visibility = "pub"  # trait methods are as visible as the trait
            if j < len(toks) and toks[j].text == "{":
                end = matching(toks, j)
                owner_type = impl[0] if impl else None
                owner_trait = impl[1] if impl else trait
                crates.fns.append(Fn(file, name, owner_type, owner_trait, visibility,
                                     set(generics) | set(outer), toks[j + 1:end], t.line, params))
                i = end + 1
                continue
            i = j + 1
            continue
        i += 1


def load(root: Path, dirs: list[str]) -> Crates:
    crates = Crates()
    for d in dirs:
        for path in sorted((root / d).rglob("*.rs")):
            rel = str(path.relative_to(root))
            if path.name == "tests.rs" or "/tests/" in rel:
                continue
            toks = tokenize(path.read_text())
            crates.texts[rel] = " ".join(t.text for t in toks)
            parse_items(rel, toks, crates)
    return crates


@dataclass
class Ref:
    kind: str  # "path", "method", "call"
    name: str
    qualifier: str | None = None
    self_receiver: bool = False
    no_args: bool = False  # `f()`: cannot be a function that takes parameters


def references(body: list[Tok]) -> tuple[list[Ref], set[str]]:
    refs, mentions = [], set()
    i = 0
    n = len(body)
    while i < n:
        t = body[i]
        if t.kind == "id" and i + 1 < n and body[i + 1].text == "::":
            segs, j = [t.text], i
            while j + 2 < n and body[j + 1].text == "::" and body[j + 2].kind == "id":
                segs.append(body[j + 2].text)
                j += 2
            for s in segs:
                if s[:1].isupper():
                    mentions.add(s)
            name = segs[-1]
            if len(segs) >= 2 and name[:1].islower():
                no_args = j + 2 < n and body[j + 1].text == "(" and body[j + 2].text == ")"
                refs.append(Ref("path", name, segs[-2], no_args=no_args))
            i = j + 1
            continue
        if t.text == "." and i + 2 < n and body[i + 1].kind == "id" and body[i + 2].text in ("(", "::"):
            self_receiver = i >= 1 and body[i - 1].text == "self" and (i < 2 or body[i - 2].text != ".")
            no_args = i + 3 < n and body[i + 2].text == "(" and body[i + 3].text == ")"
            refs.append(Ref("method", body[i + 1].text, self_receiver=self_receiver, no_args=no_args))
            i += 2
            continue
        if t.kind == "id":
            if t.text[:1].isupper():
                mentions.add(t.text)
            elif (i + 1 < n and body[i + 1].text == "(" and t.text not in KEYWORDS
                  and (i == 0 or body[i - 1].text not in (".", "::", "fn"))):
                refs.append(Ref("call", t.text))
        i += 1
    return refs, mentions


def module_files(file: str) -> set[str]:
    """The file itself and its parent module's file (for `a/b.rs`: `a/mod.rs` or `a.rs`)."""
    p = Path(file)
    out = {file}
    if p.name != "mod.rs":
        out |= {str(p.parent / "mod.rs"), str(p.parent.with_suffix(".rs"))}
    return out


# The crates scanned, by folder.
CRATES = {"actors": "eda_actors", "lambda-shims": "eda_lambda_shims", "daemon": "eda_daemon"}


def crate_of(file: str) -> str | None:
    return CRATES.get(Path(file).parts[0])


def stem(file: str) -> str:
    p = Path(file)
    return p.parent.name if p.name in ("mod.rs", "lib.rs", "main.rs") else p.stem


@dataclass
class SdkCall:
    service: str
    operation: str  # PascalCase, as in the API
    adapter: str | None
    fn: Fn
    line: int


class Graph:
    def __init__(self, crates: Crates, ports: set[str], adapters: set[str], aws_dir: str,
                 sdk_ops: dict[str, set[str]]):
        self.crates = crates
        self.ports = ports
        self.adapters = adapters
        self.aws_dir = aws_dir
        self.sdk_ops = sdk_ops
        self.refs = {}
        for fn in crates.fns:
            self.refs[id(fn)] = references(fn.body)
        self.by_name: dict[str, list[Fn]] = {}
        for fn in crates.fns:
            self.by_name.setdefault(fn.name, []).append(fn)
        self.clients = self._client_names()
        self.lean_targets = self._lean_targets()

    def _client_names(self) -> dict[str, dict[str, str]]:
        """{file: {field or parameter name: service}} for `name: [&]aws_sdk_<svc>::Client`."""
        out = {}
        for file, text in self.crates.texts.items():
            names = {}
            for m in re.finditer(r"\b([a-z_][a-z0-9_]*) : (?:& )?aws_sdk_([a-z0-9]+) :: Client\b", text):
                names[m.group(1)] = m.group(2)
            out[file] = names
        return out

    def _lean_targets(self) -> dict[str, dict[str, tuple[str, str]]]:
        """{file: {constant: (service, Operation)}} for `const NAME: &str = "<prefix>.<Op>";`
        whose prefix is a JSON-protocol target of a service eda calls."""
        out = {}
        for file, text in self.crates.texts.items():
            found = {}
            for m in re.finditer(r'\bconst ([A-Z][A-Z0-9_]*) : & str = "([A-Za-z0-9_]+)\.([A-Za-z]+)" ;', text):
                service = LEAN_TARGET_PREFIXES.get(m.group(2))
                if service:
                    found[m.group(1)] = (service, m.group(3))
            out[file] = found
        return out

    def service_of(self, file: str, receiver: str) -> str | None:
        own = self.clients.get(file, {})
        if receiver in own:
            return own[receiver]
        found = {names[receiver] for names in self.clients.values() if receiver in names}
        return found.pop() if len(found) == 1 else None

    def fns_of_type(self, type_name: str, name: str) -> list[Fn]:
        return [f for f in self.by_name.get(name, []) if f.impl_type == type_name]

    def resolve(self, caller: Fn, ref: Ref, live: set[str]) -> list[Fn]:
        candidates = self.by_name.get(ref.name, [])
        if ref.no_args:
            candidates = [f for f in candidates if f.params == 0]
        if not candidates:
            return []
        if ref.kind == "method":
            if ref.self_receiver and caller.impl_type:
                own = self.fns_of_type(caller.impl_type, ref.name)
                if own:
                    return own
            out = []
            scope = module_files(caller.file)
            for f in candidates:
                if f.impl_type is None or f.impl_type not in live:
                    continue
                if f.trait is None:
                    if f.visibility == "private" and f.file != caller.file:
                        continue
                    out.append(f)
                elif f.trait in self.ports:
                    if any(re.search(rf"\b{f.trait}\b", self.crates.texts.get(s, "")) for s in scope):
                        out.append(f)
                else:
                    out.append(f)
            return out
        q = ref.qualifier
        if q == "Self" and caller.impl_type:
            return self.fns_of_type(caller.impl_type, ref.name)
        if q and q[:1].isupper():
            if q in caller.generics:
                return [f for f in candidates if f.impl_type in live]
            if q in self.crates.traits:
                return [f for f in candidates if f.trait == q and f.impl_type in live]
            return [f for f in candidates if f.impl_type == q]
        free = [f for f in candidates if f.impl_type is None and f.trait is None]
        if ref.kind == "call" or q in (None, "self"):
            local = [f for f in free if f.file == caller.file]
            if local:
                return local
        if q in ("self", "super", "crate"):
            return [f for f in free if crate_of(f.file) == crate_of(caller.file)] or free
        if q in CRATES.values():
            return [f for f in free if crate_of(f.file) == q] or free
        if q:
            # A module of ours: its file's functions and, for a folder module, its submodules'
            # (what it re-exports); another crate's path (`tokio::spawn`, `lambda_runtime::run`):
            # nothing of ours.
            return [f for f in free if stem(f.file) == q or q in Path(f.file).parent.parts[1:]]
        return free

    def reach(self, roots: list[Fn]):
        """Every (function, adapter) reachable from `roots`, in the order first reached, with how
        each was reached ({key: parent key}), and the types the reachable code names."""
        live: set[str] = set()
        seen: dict[tuple[int, str | None], tuple[int, str | None] | None] = {}
        order: list[tuple[Fn, str | None]] = []
        for r in roots:
            self._add(r, None, None, seen, order)
        i, live_at_last_pass = 0, None
        while True:
            while i < len(order):
                fn, ctx = order[i]
                i += 1
                refs, mentions = self.refs[id(fn)]
                named = mentions - live
                if named:
                    live |= named
                    # Trait impls of a named type that something outside eda calls.
                    for f in self.crates.fns:
                        if f.impl_type in named and f.trait and f.trait not in self.ports:
                            self._add(f, None, (fn, ctx), seen, order)
                for ref in refs:
                    for target in self.resolve(fn, ref, live):
                        self._add(target, self._context(target, ctx), (fn, ctx), seen, order)
            if live == live_at_last_pass:
                return order, seen, live
            # Method calls resolved early saw fewer named types: resolve them all again.
            live_at_last_pass = set(live)
            for fn, ctx in list(order):
                for ref in self.refs[id(fn)][0]:
                    for target in self.resolve(fn, ref, live):
                        self._add(target, self._context(target, ctx), (fn, ctx), seen, order)

    def _context(self, fn: Fn, caller_ctx: str | None) -> str | None:
        if not fn.file.startswith(self.aws_dir):
            return None
        if fn.impl_type in self.adapters:
            return fn.impl_type
        if fn.impl_type is None and fn.name in self.adapters:
            return fn.name
        return caller_ctx

    @staticmethod
    def _add(fn, ctx, parent, seen, order):
        key = (id(fn), ctx)
        if key not in seen:
            seen[key] = (id(parent[0]), parent[1]) if parent else None
            order.append((fn, ctx))

    def sdk_calls(self, fn: Fn, ctx: str | None) -> list[SdkCall]:
        calls = []
        body = fn.body
        for i in range(2, len(body) - 2):
            if (body[i].text == "." and body[i + 1].kind == "id" and body[i + 2].text == "("
                    and i + 3 < len(body) and body[i + 3].text == ")" and body[i - 1].kind == "id"):
                service = self.service_of(fn.file, body[i - 1].text)
                op = body[i + 1].text
                if service and op in self.sdk_ops.get(service, set()):
                    pascal = "".join(p.capitalize() for p in op.split("_"))
                    calls.append(SdkCall(service, pascal, ctx, fn, body[i + 1].line))
            # The lean client: `x.call(TARGET, ..)` with TARGET an X-Amz-Target constant.
            if (fn.file.startswith(self.aws_dir) and body[i].text == "."
                    and body[i + 1].text == "call" and body[i + 2].text == "("
                    and i + 3 < len(body) and body[i + 3].kind == "id"):
                target = self.lean_targets.get(fn.file, {}).get(body[i + 3].text)
                if target:
                    calls.append(SdkCall(target[0], target[1], ctx, fn, body[i + 1].line))
        return calls

    def stray_sdk_calls(self) -> list[tuple[str, int, str]]:
        """SDK fluent calls outside the aws module: (file, line, operation)."""
        every = set().union(*self.sdk_ops.values())
        out = []
        for fn in self.crates.fns:
            if fn.file.startswith(self.aws_dir):
                continue
            body = fn.body
            for i in range(1, len(body) - 3):
                if (body[i].text == "." and body[i + 1].text in every and body[i + 2].text == "("
                        and body[i + 3].text == ")"):
                    rest = " ".join(t.text for t in body[i + 4:i + 80])
                    if re.match(r"^[^;]*\. send \( \)", rest):
                        out.append((fn.file, body[i + 1].line, body[i + 1].text))
        return out

    def constructor_keys(self, fns: list[Fn], adapter: str) -> list[tuple[str, int, set[str]]]:
        """For each `Adapter::new(..)` in `fns`: where, and the RegionConfig fields its
        arguments name."""
        out = []
        for fn in fns:
            body = fn.body
            for i in range(len(body) - 3):
                if body[i].text == adapter and body[i + 1].text == "::" and body[i + 2].text == "new" and body[i + 3].text == "(":
                    end = matching(body, i + 3)
                    names = {t.text for t in body[i + 4:end] if t.text in REGION_FIELDS}
                    out.append((fn.file, body[i].line, names))
        return out
