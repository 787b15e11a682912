"""In which order the compiled engine runs a Program's ops, and which of them step together.

Ops outside any loop run a whole block of steps per call. The ops of a loop (a strongly connected
component through back edges, or through Loihi's one-step synapses) must advance one step at a
time together: each reads the others' values of this step or the last. Components run in a
topological order of the graph that joins them, ties broken by Program order.
"""

from __future__ import annotations

from spikestack.ir.program import Program


def _components(names: list[str], edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative); each listed in the order found."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in names:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                found.append(component)
    return found


def execution_units(program: Program) -> list[tuple[list[str], bool]]:
    """(op names in Program order, stepped) per unit, in an order where every source a unit reads
    without delay comes from an earlier unit or from inside it. stepped: the unit is a loop."""
    order = {op.name: k for k, op in enumerate(program.ops)}
    names = [op.name for op in program.ops]
    edges = {name: list(program.consumers(name)) for name in names}
    components = [sorted(c, key=order.__getitem__) for c in _components(names, edges)]
    unit_of = {name: k for k, c in enumerate(components) for name in c}
    waiting = {k: {unit_of[s.name] for n in c for s in program.op(n).sources} - {k} for k, c in enumerate(components)}
    units: list[tuple[list[str], bool]] = []
    done: set[int] = set()
    while len(done) < len(components):
        ready = [k for k in range(len(components)) if k not in done and waiting[k] <= done]
        k = min(ready, key=lambda j: order[components[j][0]])
        members = components[k]
        looped = len(members) > 1 or any(s.name == members[0] for s in program.op(members[0]).sources)
        units.append((members, looped))
        done.add(k)
    return units
