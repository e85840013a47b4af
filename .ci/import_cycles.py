"""Import cycles among ctxengine modules, counting imports anywhere (functions, TYPE_CHECKING)."""
import ast, sys
from pathlib import Path
root = Path(sys.argv[1] if len(sys.argv) > 1 else "core/ctxengine")
pkg = "ctxengine"
mods = {}
for f in root.rglob("*.py"):
    rel = f.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    mods[".".join(parts)] = f
def resolve(cur, is_pkg, level, module):
    base = cur.split(".")
    if not is_pkg:
        base = base[:-1]
    if level:
        base = base[: len(base) - (level - 1)]
        return ".".join(base + ([module] if module else []))
    return module
graph = {m: set() for m in mods}
for m, f in mods.items():
    is_pkg = f.name == "__init__.py"
    for node in ast.walk(ast.parse(f.read_text())):
        targets = []
        if isinstance(node, ast.ImportFrom):
            t = resolve(m, is_pkg, node.level, node.module)
            targets.append(t)
            for a in node.names:
                targets.append(f"{t}.{a.name}")
        elif isinstance(node, ast.Import):
            targets += [a.name for a in node.names]
        for t in targets:
            if t in mods and t != m:
                graph[m].add(t)
# package __init__ -> submodule edges are natural; drop edges from a package to its own children
def strip(g):
    out = {}
    for m, ts in g.items():
        out[m] = {t for t in ts if not (mods[m].name == "__init__.py" and t.startswith(m + "."))}
    return out
g = strip(graph)
# find SCCs (Tarjan)
index = {}; low = {}; stack = []; on = set(); sccs = []; i = [0]
sys.setrecursionlimit(10000)
def sc(v):
    index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
    for w in g[v]:
        if w not in index:
            sc(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(comp)
for v in g:
    if v not in index: sc(v)
for c in sccs:
    print(len(c), sorted(c))
print("cycles:", len(sccs))
