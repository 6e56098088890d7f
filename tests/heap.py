"""Heap counting for tests that check a structure keeps few garbage-collected objects."""


def tracked_reachable(root: object) -> int:
    """Objects the cyclic garbage collector tracks that are reachable from ``root`` (classes not followed)."""
    import gc

    seen, todo = {id(root)}, [root]
    count = 0
    while todo:
        obj = todo.pop()
        if gc.is_tracked(obj):
            count += 1
        for ref in gc.get_referents(obj):
            if id(ref) not in seen and not isinstance(ref, type):
                seen.add(id(ref))
                todo.append(ref)
    return count
